//! The event bus: every status change, progress update, log line, alert and unit change is
//! published here once, stamped with a server-wide increasing `seq`, and fanned out to
//! whoever listens (WebSocket sessions, long polls, webhooks, metrics) without the publisher
//! ever waiting on a listener.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::domain::{rfc3339, Millis, Task, TaskId, TaskStatus};

/// How many events a slow listener may fall behind before it is told it lagged.
const CHANNEL_CAPACITY: usize = 65_536;

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
            | EventBody::Log { task_id, .. } => Some(*task_id),
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
}

/// The one publication point; cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

struct BusInner {
    seq: AtomicU64,
    tx: broadcast::Sender<Arc<Event>>,
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
                seq: AtomicU64::new(last_seq),
                tx,
            }),
        }
    }

    /// Publishes an event and returns its `seq`. Never blocks.
    pub fn publish(&self, body: EventBody) -> u64 {
        let seq = self.inner.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.inner.tx.send(Arc::new(Event { seq, body }));
        seq
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.inner.tx.subscribe()
    }

    pub fn last_seq(&self) -> u64 {
        self.inner.seq.load(Ordering::SeqCst)
    }
}
