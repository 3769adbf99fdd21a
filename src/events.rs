//! The event bus: every status change, progress update, log line, alert and unit change is
//! published here once, stamped with a server-wide increasing `seq`, and fanned out to
//! whoever listens (WebSocket sessions, long polls, webhooks, metrics) without the publisher
//! ever waiting on a listener.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, watch, Notify};

use crate::domain::{rfc3339, Millis, Task, TaskId, TaskStatus};

/// How many events a slow listener may fall behind before it is told it lagged.
const CHANNEL_CAPACITY: usize = 4096;

/// What happened.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventBody {
    Status {
        task_id: TaskId,
        batch_id: Option<String>,
        #[serde(rename = "type")]
        task_type: String,
        from: Option<TaskStatus>,
        to: TaskStatus,
        at: String,
        version: i64,
        reason: Option<String>,
        /// For a finished attempt: its run time (paused time excluded).
        #[serde(skip_serializing_if = "Option::is_none")]
        duration_secs: Option<f64>,
        /// For a first start: the time the task waited in the queue.
        #[serde(skip_serializing_if = "Option::is_none")]
        queue_wait_secs: Option<f64>,
        /// The task's `callback_url`, for the webhook dispatcher only: never serialized
        /// (a URL may carry a credential), and it spares a lookup per event.
        #[serde(skip)]
        callback_url: Option<String>,
    },
    Progress {
        task_id: TaskId,
        batch_id: Option<String>,
        #[serde(rename = "type")]
        task_type: String,
        progress: f64,
        stage: Option<String>,
        message: Option<String>,
        eta_secs: Option<f64>,
        at: String,
    },
    Log {
        task_id: TaskId,
        batch_id: Option<String>,
        #[serde(rename = "type")]
        task_type: String,
        level: String,
        message: String,
        at: String,
    },
    Batch {
        batch_id: String,
        from: Option<String>,
        to: String,
        progress: f64,
        at: String,
        /// The batch's `callback_url` (never serialized).
        #[serde(skip)]
        callback_url: Option<String>,
    },
    Unit {
        unit_id: String,
        status: String,
        at: String,
    },
    Alert {
        alert: Value,
        at: String,
    },
    /// The server's vital signs, every few seconds: the resources it samples and the work
    /// in hand.
    Metrics {
        cpu_percent: f64,
        memory_percent: f64,
        disk_percent: f64,
        process_rss_bytes: u64,
        running_tasks: i64,
        pending_tasks: i64,
        at: String,
    },
    /// A running task reported no progress for `stall_timeout_secs` (sent once per stall).
    Stalled {
        task_id: TaskId,
        batch_id: Option<String>,
        #[serde(rename = "type")]
        task_type: String,
        since: String,
        at: String,
    },
}

impl EventBody {
    pub fn status(
        task: &Task,
        from: Option<TaskStatus>,
        reason: Option<String>,
        at: Millis,
    ) -> Self {
        EventBody::Status {
            task_id: task.id,
            batch_id: task.batch_id.clone(),
            task_type: task.task_type.clone(),
            from,
            to: task.status,
            at: rfc3339(at),
            version: task.version,
            reason,
            callback_url: task.callback_url.clone(),
            duration_secs: task
                .status
                .is_terminal()
                .then_some(task.active_secs)
                .filter(|_| task.started_at.is_some()),
            queue_wait_secs: match (task.status, task.started_at) {
                (TaskStatus::Running, Some(s))
                    if from == Some(TaskStatus::Pending) && task.attempt == 1 =>
                {
                    Some(((s - task.created_at).max(0)) as f64 / 1000.0)
                }
                _ => None,
            },
        }
    }

    /// The status event of one transition of `task` (which may have moved on since: a
    /// write can carry a start and an end together).
    pub fn transition(task: &Task, h: &crate::domain::Transition) -> Self {
        let mut e = Self::status(task, h.from, h.reason.clone(), h.at);
        if let EventBody::Status {
            to,
            version,
            duration_secs,
            queue_wait_secs,
            ..
        } = &mut e
        {
            *to = h.to;
            *version = h.version;
            if !h.to.is_terminal() {
                *duration_secs = None;
            }
            if h.to != TaskStatus::Running || h.from != Some(TaskStatus::Pending) {
                *queue_wait_secs = None;
            } else if let Some(s) = task.started_at.filter(|_| task.attempt == 1) {
                *queue_wait_secs = Some(((s - task.created_at).max(0)) as f64 / 1000.0);
            }
        }
        e
    }

    pub fn progress(task: &Task, at: Millis) -> Self {
        EventBody::Progress {
            task_id: task.id,
            batch_id: task.batch_id.clone(),
            task_type: task.task_type.clone(),
            progress: task.progress,
            stage: task.stage.clone(),
            message: task.message.clone(),
            eta_secs: task.eta_secs,
            at: rfc3339(at),
        }
    }

    /// The task this event is about, if any.
    pub fn task_id(&self) -> Option<TaskId> {
        match self {
            EventBody::Status { task_id, .. }
            | EventBody::Progress { task_id, .. }
            | EventBody::Log { task_id, .. }
            | EventBody::Stalled { task_id, .. } => Some(*task_id),
            _ => None,
        }
    }

    /// The `event` name this body serializes with.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::Status { .. } => "status",
            EventBody::Progress { .. } => "progress",
            EventBody::Log { .. } => "log",
            EventBody::Unit { .. } => "unit",
            EventBody::Alert { .. } => "alert",
            EventBody::Stalled { .. } => "stalled",
            EventBody::Batch { .. } => "batch",
            EventBody::Metrics { .. } => "metrics",
        }
    }

    pub fn batch_id(&self) -> Option<&str> {
        match self {
            EventBody::Status { batch_id, .. }
            | EventBody::Progress { batch_id, .. }
            | EventBody::Log { batch_id, .. }
            | EventBody::Stalled { batch_id, .. } => batch_id.as_deref(),
            EventBody::Batch { batch_id, .. } => Some(batch_id),
            _ => None,
        }
    }

    pub fn task_type(&self) -> Option<&str> {
        match self {
            EventBody::Status { task_type, .. }
            | EventBody::Progress { task_type, .. }
            | EventBody::Log { task_type, .. }
            | EventBody::Stalled { task_type, .. } => Some(task_type),
            _ => None,
        }
    }
}

/// An event as delivered: the body plus its sequence number.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub seq: u64,
    #[serde(flatten)]
    pub body: EventBody,
    /// The event as JSON, serialized once at publication for every listener to share.
    #[serde(skip)]
    pub json: Arc<str>,
    /// Milliseconds since the epoch at publication (what retention counts from).
    #[serde(skip)]
    pub at_ms: Millis,
}

/// The one publication point; cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

struct BusInner {
    /// The last `seq` handed out. Assigning a `seq` and sending happen under this lock, so
    /// every listener (and the event log) sees events in `seq` order; nothing slow runs
    /// under it.
    seq: Mutex<u64>,
    tx: broadcast::Sender<Arc<Event>>,
    /// Where the event log's writer takes events from, once attached.
    log: OnceLock<mpsc::UnboundedSender<Arc<Event>>>,
    /// Listeners that must see every event (webhooks, the system log): fed through their
    /// own queues, so they never lag out of the broadcast ring.
    attached: Mutex<Vec<mpsc::UnboundedSender<Arc<Event>>>>,
    /// The highest `seq` the event log has made durable.
    persisted: watch::Sender<u64>,
    /// Long polls waiting on one task or batch, woken by its events only (a long poll that
    /// listened to every event would be woken, across threads, for each one).
    watches: Mutex<HashMap<Watched, Vec<Arc<Notify>>>>,
}

/// What a [`Watch`] waits on: events about one task (any kind), or one batch's own events.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Watched {
    Task(TaskId),
    Batch(String),
}

impl Watched {
    fn of(body: &EventBody) -> Option<Watched> {
        match body {
            EventBody::Batch { batch_id, .. } => Some(Watched::Batch(batch_id.clone())),
            other => other.task_id().map(Watched::Task),
        }
    }
}

/// A long poll's interest in one task or batch: [`Watch::changed`] returns once an event
/// about it is published after the watch began (or after the last `changed`), or at the
/// deadline. Dropping it stops the watch.
pub struct Watch {
    bus: EventBus,
    key: Watched,
    notify: Arc<Notify>,
}

impl Watch {
    /// True when an event came, false when the deadline passed first.
    pub async fn changed(&self, deadline: tokio::time::Instant) -> bool {
        tokio::time::timeout_at(deadline, self.notify.notified())
            .await
            .is_ok()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut watches = self.bus.lock_watches();
        if let Some(list) = watches.get_mut(&self.key) {
            list.retain(|n| !Arc::ptr_eq(n, &self.notify));
            if list.is_empty() {
                watches.remove(&self.key);
            }
        }
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(0)
    }
}

impl EventBus {
    /// A bus whose next event gets `last_seq + 1`.
    pub fn new(last_seq: u64) -> Self {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        EventBus {
            inner: Arc::new(BusInner {
                seq: Mutex::new(last_seq),
                tx,
                log: OnceLock::new(),
                attached: Mutex::new(Vec::new()),
                persisted: watch::Sender::new(last_seq),
                watches: Mutex::default(),
            }),
        }
    }

    /// Publishes an event and returns its `seq`. Never waits on a listener.
    pub fn publish(&self, body: EventBody) -> u64 {
        let at_ms = crate::domain::now_ms();
        let body_json = serde_json::to_string(&body).unwrap_or_else(|_| "{}".into());
        let mut last = self.lock_seq();
        *last += 1;
        let seq = *last;
        let json = match body_json.strip_prefix('{') {
            Some(rest) if rest != "}" => format!("{{\"seq\":{seq},{rest}"),
            _ => format!("{{\"seq\":{seq}}}"),
        };
        let event = Arc::new(Event {
            seq,
            body,
            json: json.into(),
            at_ms,
        });
        if let Some(log) = self.inner.log.get() {
            let _ = log.send(event.clone());
        }
        {
            let mut attached = match self.inner.attached.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            attached.retain(|l| l.send(event.clone()).is_ok());
        }
        {
            let watches = self.lock_watches();
            if !watches.is_empty() {
                let woken = Watched::of(&event.body).and_then(|k| watches.get(&k));
                for n in woken.into_iter().flatten() {
                    // Stores a permit if the poll is between its read and its wait.
                    n.notify_one();
                }
            }
        }
        let _ = self.inner.tx.send(event);
        seq
    }

    /// Starts watching one task or batch (before reading it, so no event between the read
    /// and the wait is missed).
    pub fn watch(&self, key: Watched) -> Watch {
        let notify = Arc::new(Notify::new());
        self.lock_watches()
            .entry(key.clone())
            .or_default()
            .push(notify.clone());
        Watch {
            bus: self.clone(),
            key,
            notify,
        }
    }

    fn lock_watches(&self) -> MutexGuard<'_, HashMap<Watched, Vec<Arc<Notify>>>> {
        self.inner
            .watches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A listener that gets every event from now on, in `seq` order, however far behind it
    /// falls (for work that must not miss any, and keeps up on average).
    pub fn attach(&self) -> mpsc::UnboundedReceiver<Arc<Event>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let _seq = self.lock_seq();
        match self.inner.attached.lock() {
            Ok(mut g) => g.push(tx),
            Err(poisoned) => poisoned.into_inner().push(tx),
        }
        rx
    }

    fn lock_seq(&self) -> std::sync::MutexGuard<'_, u64> {
        match self.inner.seq.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.inner.tx.subscribe()
    }

    /// A receiver plus the `seq` it starts after: it gets exactly the events above it.
    pub fn subscribe_at(&self) -> (broadcast::Receiver<Arc<Event>>, u64) {
        let last = self.lock_seq();
        (self.inner.tx.subscribe(), *last)
    }

    pub fn last_seq(&self) -> u64 {
        *self.lock_seq()
    }

    /// Hands every event published from now on to the event log's writer (once).
    pub fn attach_log(&self) -> Option<mpsc::UnboundedReceiver<Arc<Event>>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.log.set(tx).ok().map(|_| rx)
    }

    /// The event log's writer reports what is durable.
    pub fn mark_persisted(&self, seq: u64) {
        self.inner.persisted.send_if_modified(|p| {
            let moved = seq > *p;
            if moved {
                *p = seq;
            }
            moved
        });
    }

    /// Waits until events up to `seq` are in the event log (at most `limit`); true when they
    /// are, or when there is no event log to wait for.
    pub async fn persisted_up_to(&self, seq: u64, limit: Duration) -> bool {
        if self.inner.log.get().is_none() {
            return true;
        }
        let mut rx = self.inner.persisted.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|p| *p >= seq))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Which events a listener wants (a WebSocket subscription, a webhook): every list is
/// optional, and an absent list lets everything through.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventFilter {
    pub tasks: Option<Vec<TaskId>>,
    pub batches: Option<Vec<String>>,
    pub types: Option<Vec<String>>,
    pub kinds: Option<Vec<String>>,
}

/// Event kinds a filter may name.
pub const KINDS: &[&str] = &[
    "status", "progress", "log", "alert", "metrics", "unit", "stalled", "batch",
];

impl EventFilter {
    pub fn matches(&self, body: &EventBody) -> bool {
        fn allows<T: PartialEq + ?Sized>(list: &Option<Vec<impl AsRef<T>>>, v: Option<&T>) -> bool {
            match list {
                None => true,
                Some(l) => v.is_some_and(|v| l.iter().any(|x| x.as_ref() == v)),
            }
        }
        let kind_ok = match &self.kinds {
            None => true,
            Some(k) => k.iter().any(|k| k == body.kind()),
        };
        let task_ok = match &self.tasks {
            None => true,
            Some(ids) => body.task_id().is_some_and(|t| ids.contains(&t)),
        };
        kind_ok
            && task_ok
            && allows::<str>(&self.batches, body.batch_id())
            && allows::<str>(&self.types, body.task_type())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_event(id: &str) -> EventBody {
        EventBody::Batch {
            batch_id: id.into(),
            from: None,
            to: "running".into(),
            progress: 0.0,
            at: rfc3339(0),
            callback_url: None,
        }
    }

    fn log_event(task_id: TaskId) -> EventBody {
        EventBody::Log {
            task_id,
            batch_id: Some("b1".into()),
            task_type: "noop".into(),
            level: "info".into(),
            message: "hello".into(),
            at: rfc3339(0),
        }
    }

    /// True when the watch has an event waiting (a deadline already passed still lets a
    /// stored wake-up through: the wait is polled before its deadline).
    async fn woken(w: &Watch) -> bool {
        w.changed(tokio::time::Instant::now()).await
    }

    #[actix_rt::test]
    async fn a_watch_wakes_for_its_own_task_or_batch_only() {
        let bus = EventBus::default();
        let mine = TaskId::new();
        let task = bus.watch(Watched::Task(mine));
        let batch = bus.watch(Watched::Batch("b1".into()));

        bus.publish(log_event(TaskId::new()));
        bus.publish(batch_event("b2"));
        assert!(
            !woken(&task).await,
            "another task's event woke the task watch"
        );
        assert!(
            !woken(&batch).await,
            "another batch's event woke the batch watch"
        );

        // Published before the wait began: kept for it, not lost.
        bus.publish(log_event(mine));
        assert!(woken(&task).await);
        assert!(
            !woken(&batch).await,
            "a task's event is not its batch's own event"
        );
        bus.publish(batch_event("b1"));
        assert!(woken(&batch).await);
        assert!(!woken(&task).await, "one event wakes a watch once");
    }

    #[actix_rt::test]
    async fn a_waiting_watch_is_woken_and_a_dropped_one_is_forgotten() {
        let bus = EventBus::default();
        let id = TaskId::new();
        let w = bus.watch(Watched::Task(id));
        let other = bus.watch(Watched::Task(id));
        let publisher = bus.clone();
        let wait = tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            w.changed(deadline).await
        });
        tokio::task::yield_now().await;
        publisher.publish(log_event(id));
        assert!(wait.await.expect("join"), "the waiting watch was not woken");
        assert_eq!(
            bus.lock_watches().get(&Watched::Task(id)).map(Vec::len),
            Some(1)
        );
        drop(other);
        assert!(bus.lock_watches().is_empty());
    }
}
