//! Prometheus metrics (SPEC §8): one `Metrics` with its own registry. Task counters, gauges
//! and histograms are fed from the event bus (never by scanning tables per scrape); the
//! per-status gauge is seeded once from the store at start-up; HTTP metrics are labelled by
//! route pattern, not raw path; the `prometheus` crate's process collector adds process
//! metrics.

use std::sync::Arc;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::domain::TaskStatus;
use crate::events::{EventBody, EventBus};

const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0, 3600.0,
];
const HTTP_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

pub struct Metrics {
    registry: Registry,
    /// Exact task counts per type and status (indexed as `TaskStatus::ALL`), kept from the
    /// bus like the gauge: list totals for status/type filters come from here, not from a
    /// `COUNT(*)` over millions of rows.
    by_type: std::sync::Mutex<std::collections::HashMap<String, [i64; 6]>>,
    pub tasks_created: IntCounterVec,
    pub transitions: IntCounterVec,
    pub tasks: IntGaugeVec,
    pub task_duration: HistogramVec,
    pub queue_wait: HistogramVec,
    pub running: IntGauge,
    pub queue_depth: IntGauge,
    pub units: IntGaugeVec,
    pub unit_load: GaugeVec,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub ws_subscribers: IntGauge,
    pub alerts: IntCounterVec,
    pub db_pool: IntGaugeVec,
    pub events_published: IntGauge,
    /// The `seq` of the last event the counts have taken in (they follow the bus a little
    /// behind its publishers).
    seen: tokio::sync::watch::Sender<u64>,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    if let Err(e) = r.register(Box::new(c.clone())) {
        log::error!("metric registration failed: {e}");
    }
    c
}

impl Metrics {
    /// All metrics, registered. Panics only on a programming error in the metric definitions.
    pub fn new() -> Arc<Metrics> {
        let r = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(
                &r,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                &r,
                IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let gauge =
            |name: &str, help: &str| register(&r, IntGauge::new(name, help).expect("valid metric"));
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                    labels,
                )
                .expect("valid metric"),
            )
        };
        #[cfg(target_os = "linux")]
        if let Err(e) = r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )) {
            log::error!("process metrics unavailable: {e}");
        }
        Arc::new(Metrics {
            by_type: Default::default(),
            tasks_created: counter(
                "steward_tasks_created_total",
                "Tasks created, by type.",
                &["type"],
            ),
            transitions: counter(
                "steward_task_transitions_total",
                "Task status transitions, by type and target status.",
                &["type", "to"],
            ),
            tasks: gauge_vec("steward_tasks", "Tasks stored, by status.", &["status"]),
            task_duration: histogram(
                "steward_task_duration_seconds",
                "Run time of finished attempts.",
                &["type", "status"],
                &DURATION_BUCKETS,
            ),
            queue_wait: histogram(
                "steward_task_queue_wait_seconds",
                "Time from creation to first start.",
                &["type"],
                &DURATION_BUCKETS,
            ),
            running: gauge(
                "steward_running_tasks",
                "Running and paused tasks (holding a slot).",
            ),
            queue_depth: gauge("steward_queue_depth", "Pending tasks."),
            units: gauge_vec("steward_units", "Execution units, by status.", &["status"]),
            unit_load: register(
                &r,
                GaugeVec::new(
                    Opts::new("steward_unit_load_ratio", "Load over capacity, per unit."),
                    &["unit"],
                )
                .expect("valid metric"),
            ),
            http_requests: counter(
                "steward_http_requests_total",
                "HTTP requests, by method, route pattern and status.",
                &["method", "route", "status"],
            ),
            http_duration: histogram(
                "steward_http_request_duration_seconds",
                "HTTP request duration, by route pattern.",
                &["route"],
                &HTTP_BUCKETS,
            ),
            ws_subscribers: gauge("steward_ws_subscribers", "Connected WebSocket subscribers."),
            alerts: counter(
                "steward_alerts_total",
                "Alerts raised, by level and type.",
                &["level", "type"],
            ),
            db_pool: gauge_vec(
                "steward_db_pool_connections",
                "Reader pool connections, by state.",
                &["state"],
            ),
            events_published: gauge(
                "steward_events_published",
                "Sequence number of the last event published.",
            ),
            seen: tokio::sync::watch::Sender::new(0),
            registry: r,
        })
    }

    /// Waits (up to `limit`) until the counts have taken in every event up to `seq`, so a
    /// count read after a change includes it.
    pub async fn caught_up(&self, seq: u64, limit: std::time::Duration) {
        let mut rx = self.seen.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|s| *s >= seq)).await;
    }

    /// Seeds the per-status gauge from stored counts.
    /// Sets every count from `(type, status, n)` rows (start-up, and after bulk deletes).
    pub fn seed_counts(&self, rows: &[(String, String, i64)]) {
        let mut by_type: std::collections::HashMap<String, [i64; 6]> = Default::default();
        for (task_type, status, n) in rows {
            if let Some(i) = status_index(status) {
                by_type.entry(task_type.clone()).or_default()[i] += n;
            }
        }
        for (i, st) in TaskStatus::ALL.iter().enumerate() {
            let n: i64 = by_type.values().map(|c| c[i]).sum();
            self.tasks.with_label_values(&[st.as_str()]).set(n);
        }
        *self.lock_counts() = by_type;
    }

    fn lock_counts(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, [i64; 6]>> {
        match self.by_type.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn count_change(&self, task_type: &str, status: TaskStatus, delta: i64) {
        self.tasks.with_label_values(&[status.as_str()]).add(delta);
        if let Some(i) = status_index(status.as_str()) {
            let mut counts = self.lock_counts();
            // Every transition passes here: allocate the key only for a type not seen yet.
            match counts.get_mut(task_type) {
                Some(c) => c[i] += delta,
                None => counts.entry(task_type.to_string()).or_default()[i] += delta,
            }
        }
    }

    /// A finished task was deleted.
    pub fn forget(&self, task_type: &str, status: TaskStatus) {
        self.count_change(task_type, status, -1);
    }

    /// How many tasks of `task_type` (any type when `None`) are in one of `statuses` (any
    /// status when empty).
    pub fn count(&self, task_type: Option<&str>, statuses: &[TaskStatus]) -> i64 {
        let wanted: Vec<usize> = if statuses.is_empty() {
            (0..TaskStatus::ALL.len()).collect()
        } else {
            statuses
                .iter()
                .filter_map(|s| status_index(s.as_str()))
                .collect()
        };
        let counts = self.lock_counts();
        let sum = |c: &[i64; 6]| wanted.iter().map(|&i| c[i]).sum::<i64>();
        match task_type {
            Some(t) => counts.get(t).map(sum).unwrap_or(0),
            None => counts.values().map(sum).sum(),
        }
    }

    /// Applies one event.
    pub fn observe(&self, body: &EventBody) {
        match body {
            EventBody::Status {
                task_type,
                from,
                to,
                duration_secs,
                queue_wait_secs,
                ..
            } => {
                match from {
                    None => self.tasks_created.with_label_values(&[task_type]).inc(),
                    Some(f) => self.count_change(task_type, *f, -1),
                }
                self.count_change(task_type, *to, 1);
                self.transitions
                    .with_label_values(&[task_type, to.as_str()])
                    .inc();
                if let (Some(d), true) = (duration_secs, to.is_terminal()) {
                    self.task_duration
                        .with_label_values(&[task_type, to.as_str()])
                        .observe(*d);
                }
                if let (Some(w), TaskStatus::Running) = (queue_wait_secs, to) {
                    self.queue_wait.with_label_values(&[task_type]).observe(*w);
                }
            }
            EventBody::Alert { alert, .. } => {
                let level = alert
                    .get("level")
                    .and_then(|v| v.as_str())
                    .unwrap_or("info");
                let kind = alert
                    .get("type")
                    .and_then(|v| v.as_str())
                    .unwrap_or("system_error");
                self.alerts.with_label_values(&[level, kind]).inc();
            }
            _ => {}
        }
    }

    /// Follows every event on the bus (as an attached listener: counters miss none).
    pub fn follow(self: &Arc<Self>, bus: &EventBus) {
        let mut rx = bus.attach();
        // What was published before (a restarted server's sequence goes on) is in the counts
        // seeded from the store.
        self.seen.send_replace(bus.last_seq());
        let me = self.clone();
        actix_rt::spawn(async move {
            while let Some(ev) = rx.recv().await {
                me.events_published.set(ev.seq as i64);
                me.observe(&ev.body);
                me.seen.send_replace(ev.seq);
            }
        });
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            log::error!("metrics encoding failed: {e}");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

fn status_index(status: &str) -> Option<usize> {
    TaskStatus::ALL.iter().position(|s| s.as_str() == status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{NewTask, Task, TaskId};

    /// A count read right after a burst of creations includes all of them: the reader waits
    /// for the follower, which on one thread has not run at all yet.
    #[actix_rt::test]
    async fn counts_read_after_catching_up_include_every_published_event() {
        let bus = EventBus::default();
        let metrics = Metrics::new();
        metrics.follow(&bus);
        for _ in 0..1000 {
            let (t, _) = Task::create(TaskId::new(), NewTask::example("noop"), 0, "api");
            bus.publish(EventBody::status(&t, None, Some("created".into()), 0));
        }
        metrics
            .caught_up(bus.last_seq(), std::time::Duration::from_secs(5))
            .await;
        assert_eq!(metrics.count(None, &[TaskStatus::Pending]), 1000);
        assert_eq!(metrics.count(Some("noop"), &[]), 1000);
    }
}
