//! Monitor: the alert engine and the resource sampler. It follows the event bus (a task that
//! failed for good raises a `task_failure` alert), samples CPU, memory and disk every
//! [`SAMPLE_EVERY`] (kept as trend history, checked against the alert thresholds, and
//! published as a `metrics` event),
//! checks the oldest queue wait, re-announces unacknowledged critical alerts, and prunes
//! finished work past `history_retention_days` in small transactions.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};

use crate::actors::Shared;
use crate::domain::{now_ms, rfc3339, TaskId, TaskStatus};
use crate::events::EventBody;
use crate::resources::Sampler;
use crate::store::alerts::{self as qa, AlertRow, AlertView};
use crate::store::tasks as q;

pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
const RENOTIFY_CHECK_EVERY: Duration = Duration::from_secs(30);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Tasks deleted per transaction when pruning.
pub const PRUNE_CHUNK: i64 = 1000;

/// One trend sample.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub timestamp: String,
    #[serde(skip)]
    pub at: i64,
    pub cpu_percent: f64,
    pub memory_percent: f64,
    pub disk_percent: f64,
    pub process_rss_bytes: u64,
}

/// Samples shared with the API.
pub type History = Arc<Mutex<VecDeque<Sample>>>;

/// What an alert says.
pub struct AlertSpec {
    pub level: &'static str,
    pub kind: &'static str,
    pub fingerprint: String,
    pub title: String,
    pub message: String,
    pub details: Value,
}

/// Raises (or folds) an alert and announces a new one on the event bus.
pub async fn raise(shared: &Shared, a: AlertSpec) {
    let now = now_ms();
    let row = AlertRow {
        id: TaskId::new().to_string(),
        fingerprint: a.fingerprint,
        level: a.level.into(),
        alert_type: a.kind.into(),
        title: a.title,
        message: a.message,
        details: a.details.to_string(),
        count: 1,
        acknowledged: false,
        acknowledged_by: None,
        acknowledged_at: None,
        created_at: now,
        last_seen_at: now,
        notified_at: now,
    };
    match shared.store.write(move |c| qa::raise(c, row)).await {
        Ok((row, true)) => {
            let view = serde_json::to_value(AlertView::from(row)).unwrap_or(Value::Null);
            shared.events.publish(EventBody::Alert {
                alert: view,
                at: rfc3339(now),
            });
        }
        Ok((_, false)) => {}
        Err(e) => log::error!("cannot record an alert: {e}"),
    }
}

/// Disk use of the file system holding `dir`, in percent, with total and used bytes.
pub fn disk_usage(dir: &std::path::Path) -> (f64, u64, u64) {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let disks = sysinfo::Disks::new_with_refreshed_list();
    let best = disks
        .list()
        .iter()
        .filter(|d| dir.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len());
    match best {
        Some(d) if d.total_space() > 0 => {
            let used = d.total_space() - d.available_space();
            (
                used as f64 / d.total_space() as f64 * 100.0,
                d.total_space(),
                used,
            )
        }
        _ => (0.0, 0, 0),
    }
}

/// Resident memory of this process, in bytes.
pub fn process_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

pub struct Monitor {
    shared: Shared,
    sampler: Sampler,
    history: History,
    data_dir: PathBuf,
    /// Recounted after the hourly prune deletes finished tasks.
    metrics: Arc<crate::metrics::Metrics>,
}

/// A running task stalled (internal).
#[derive(Message)]
#[rtype(result = "()")]
struct TaskStalled {
    task_id: TaskId,
    task_type: String,
    since: String,
}

/// A task failed: alert if it failed for good (internal).
#[derive(Message)]
#[rtype(result = "()")]
struct TaskFailed(TaskId);

impl Monitor {
    pub fn new(
        shared: Shared,
        history: History,
        data_dir: PathBuf,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Monitor {
            shared,
            sampler: Sampler::new(),
            history,
            data_dir,
            metrics,
        }
    }

    fn sample(&mut self, ctx: &mut Context<Self>) {
        let sampler = self.sampler.clone();
        let dir = self.data_dir.clone();
        let work = actix_rt::task::spawn_blocking(move || {
            let u = sampler.sample();
            let (disk, _, _) = disk_usage(&dir);
            (u, disk, process_rss())
        });
        ctx.spawn(work.into_actor(self).map(|res, act, _| {
            let Ok((u, disk, rss)) = res else { return };
            let now = now_ms();
            let c = act.shared.config();
            act.shared.events.publish(EventBody::Metrics {
                cpu_percent: u.cpu_percent,
                memory_percent: u.memory_percent,
                disk_percent: disk,
                process_rss_bytes: rss,
                running_tasks: act.metrics.count(None, &[TaskStatus::Running]),
                pending_tasks: act.metrics.count(None, &[TaskStatus::Pending]),
                at: rfc3339(now),
            });
            if let Ok(mut h) = act.history.lock() {
                h.push_back(Sample { timestamp: rfc3339(now), at: now, cpu_percent: u.cpu_percent, memory_percent: u.memory_percent, disk_percent: disk, process_rss_bytes: rss });
                let horizon = now - (c.metrics_history_secs * 1000.0) as i64;
                while h.front().is_some_and(|s| s.at < horizon) {
                    h.pop_front();
                }
            }
            let checks = [
                ("cpu", u.cpu_percent, c.alert_cpu_percent),
                ("memory", u.memory_percent, c.alert_memory_percent),
                ("disk", disk, c.alert_disk_percent),
            ];
            for (what, value, limit) in checks {
                if value > limit {
                    let shared = act.shared.clone();
                    actix::spawn(async move {
                        raise(&shared, AlertSpec {
                            level: "warning",
                            kind: "resource",
                            fingerprint: format!("resource:{what}"),
                            title: format!("{what} use above {limit}%"),
                            message: format!("{what} use is {value:.0}%, above the alert threshold {limit}%"),
                            details: json!({"resource": what, "percent": value, "threshold": limit}),
                        })
                        .await
                    });
                }
            }
        }));
        let shared = self.shared.clone();
        actix::spawn(async move {
            let limit = shared.config().alert_queue_wait_secs;
            if let Ok(Some(oldest)) = shared.store.read(q::oldest_waiting).await {
                let waited = (now_ms() - oldest) as f64 / 1000.0;
                if waited > limit {
                    raise(
                        &shared,
                        AlertSpec {
                            level: "warning",
                            kind: "performance",
                            fingerprint: "performance:queue_wait".into(),
                            title: format!("queue wait above {limit}s"),
                            message: format!(
                                "the oldest runnable pending task has waited {waited:.0}s"
                            ),
                            details: json!({"waited_secs": waited, "threshold_secs": limit}),
                        },
                    )
                    .await;
                }
            }
        });
    }
}

impl Actor for Monitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let mut rx = self.shared.events.subscribe();
        let me = ctx.address();
        actix::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match rx.recv().await {
                    Ok(ev) => match &ev.body {
                        EventBody::Status {
                            task_id,
                            to: TaskStatus::Failed,
                            ..
                        } => me.do_send(TaskFailed(*task_id)),
                        EventBody::Stalled {
                            task_id,
                            task_type,
                            since,
                            ..
                        } => me.do_send(TaskStalled {
                            task_id: *task_id,
                            task_type: task_type.clone(),
                            since: since.clone(),
                        }),
                        _ => {}
                    },
                    Err(RecvError::Lagged(n)) => log::warn!("monitor missed {n} events"),
                    Err(RecvError::Closed) => break,
                }
            }
        });
        self.sample(ctx);
        ctx.run_interval(SAMPLE_EVERY, |act, ctx| act.sample(ctx));
        ctx.run_interval(RENOTIFY_CHECK_EVERY, |act, _| {
            let shared = act.shared.clone();
            actix::spawn(async move {
                let now = now_ms();
                let before = now - (shared.config().alert_renotify_secs * 1000.0) as i64;
                if let Ok(rows) = shared
                    .store
                    .write(move |c| qa::due_renotify(c, before, now))
                    .await
                {
                    for row in rows {
                        let view =
                            serde_json::to_value(AlertView::from(row)).unwrap_or(Value::Null);
                        shared.events.publish(EventBody::Alert {
                            alert: view,
                            at: rfc3339(now),
                        });
                    }
                }
            });
        });
        ctx.run_interval(PRUNE_EVERY, |act, _| {
            let shared = act.shared.clone();
            let metrics = act.metrics.clone();
            actix::spawn(async move {
                let days = shared.config().history_retention_days;
                if days > 0.0 {
                    let n = prune(&shared, days).await;
                    if n > 0 {
                        shared.syslog.info(
                            "maintenance",
                            format!("pruned {n} finished task(s) older than {days} days"),
                        );
                        crate::app::seed_metrics(&shared.store, &metrics).await;
                    }
                }
            });
        });
    }
}

/// Deletes finished tasks older than `days`, a chunk per transaction; returns how many.
pub async fn prune(shared: &Shared, days: f64) -> usize {
    let before = now_ms() - (days * 86_400_000.0) as i64;
    if let Err(e) = shared
        .store
        .write(move |c| crate::store::system_logs::prune(c, before))
        .await
    {
        log::error!("pruning the system log failed: {e}");
    }
    let mut total = 0;
    loop {
        match shared
            .store
            .write(move |c| q::delete_finished_before(c, before, PRUNE_CHUNK))
            .await
        {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) => {
                log::error!("pruning failed: {e}");
                return total;
            }
        }
    }
}

/// A stall is a warning, one alert per task (repeats fold).
impl Handler<TaskStalled> for Monitor {
    type Result = ();
    fn handle(&mut self, msg: TaskStalled, _: &mut Context<Self>) {
        let shared = self.shared.clone();
        actix::spawn(async move {
            let timeout = shared.config().stall_timeout_secs;
            raise(&shared, AlertSpec {
                level: "warning",
                kind: "task_stalled",
                fingerprint: format!("task_stalled:{}", msg.task_id),
                title: format!("{} task {} stalled", msg.task_type, msg.task_id),
                message: format!("no progress since {} (stall_timeout_secs = {timeout})", msg.since),
                details: json!({"task_id": msg.task_id, "type": msg.task_type, "since": msg.since}),
            })
            .await;
        });
    }
}

/// A task failed: if it failed for good (no retry pending), alert, folded by type and name.
impl Handler<TaskFailed> for Monitor {
    type Result = ();
    fn handle(&mut self, msg: TaskFailed, _: &mut Context<Self>) {
        let shared = self.shared.clone();
        let id = msg.0;
        actix::spawn(async move {
            let Ok(Some(t)) = shared.store.read(move |c| q::get(c, id)).await else {
                return;
            };
            if t.status != TaskStatus::Failed {
                return; // retried
            }
            raise(&shared, AlertSpec {
                level: "error",
                kind: "task_failure",
                fingerprint: format!("task_failure:{}:{}", t.task_type, t.name),
                title: format!("task '{}' failed", t.name),
                message: format!("{} task '{}' failed after {} attempt(s): {}", t.task_type, t.name, t.attempt, t.error.clone().unwrap_or_default()),
                details: json!({"task_id": t.id, "type": t.task_type, "name": t.name, "error": t.error, "attempt": t.attempt}),
            })
            .await;
        });
    }
}
