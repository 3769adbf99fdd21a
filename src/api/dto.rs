//! Wire shapes: what the API returns, converted from domain types.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::domain::batch::{Batch, Counts};
use crate::domain::{rfc3339, Millis, Task, TaskId, TaskStatus};
use crate::scheduler::Waiting;
use crate::store::rows::{HistoryRow, LogRow};

/// A task as the API shows it (SPEC §2).
#[derive(Serialize, Debug, Clone)]
pub struct TaskView {
    pub id: TaskId,
    pub name: String,
    #[serde(rename = "type")]
    pub task_type: String,
    pub config: Value,
    pub status: TaskStatus,
    pub priority: i32,
    pub progress: f64,
    pub stage: Option<String>,
    pub message: Option<String>,
    pub eta_secs: Option<f64>,
    pub checkpoint: Option<Value>,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub attempt: i32,
    pub max_retries: i32,
    pub retry_delay_secs: f64,
    pub retry_backoff: &'static str,
    pub timeout_secs: Option<f64>,
    pub mutex: Option<String>,
    pub mutex_policy: &'static str,
    pub depends_on: Vec<TaskId>,
    pub run_at: Option<String>,
    pub tags: Vec<String>,
    pub batch_id: Option<String>,
    pub schedule_id: Option<String>,
    pub unit_id: Option<String>,
    pub source: &'static str,
    pub retry_of: Option<TaskId>,
    pub created_by: Option<String>,
    pub callback_url: Option<String>,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub unit_labels: BTreeMap<String, String>,
    pub waiting_on: Option<&'static str>,
    pub waiting_detail: Option<String>,
    pub running_secs: f64,
    pub resources: Option<Value>,
    /// Set while a running task has been silent past `stall_timeout_secs`.
    pub stalled_since: Option<String>,
}

impl TaskView {
    pub fn new(t: Task, waiting: Option<&Waiting>) -> Self {
        let (waiting_on, waiting_detail) = match (t.status, waiting) {
            (TaskStatus::Pending, Some(w)) => (Some(w.on.as_str()), Some(w.detail.clone())),
            _ => (None, None),
        };
        TaskView {
            id: t.id,
            name: t.name,
            task_type: t.task_type,
            config: crate::domain::redact::redacted(&t.config),
            status: t.status,
            priority: t.priority,
            progress: t.progress,
            stage: t.stage,
            message: t.message,
            eta_secs: t.eta_secs,
            checkpoint: t.checkpoint,
            result: t.result,
            error: t.error,
            attempt: t.attempt,
            max_retries: t.max_retries,
            retry_delay_secs: t.retry_delay_secs,
            retry_backoff: t.retry_backoff.as_str(),
            timeout_secs: t.timeout_secs,
            mutex: t.mutex,
            mutex_policy: t.mutex_policy.as_str(),
            depends_on: t.depends_on,
            run_at: t.run_at.map(rfc3339),
            tags: t.tags,
            batch_id: t.batch_id,
            schedule_id: t.schedule_id,
            unit_id: t.unit_id,
            source: t.source.as_str(),
            retry_of: t.retry_of,
            created_by: t.created_by,
            callback_url: t.callback_url,
            version: t.version,
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
            started_at: t.started_at.map(rfc3339),
            finished_at: t.finished_at.map(rfc3339),
            unit_labels: t.unit_labels,
            waiting_on,
            waiting_detail,
            running_secs: t.active_secs,
            resources: t.resources,
            stalled_since: t.stalled_since.map(rfc3339),
        }
    }
}

/// A page of a list.
#[derive(Serialize)]
pub struct Page<T: Serialize> {
    pub items: Vec<T>,
    pub page: i64,
    pub limit: i64,
    pub total: i64,
}

#[derive(Serialize)]
pub struct HistoryView {
    pub from: Option<String>,
    pub to: String,
    pub at: String,
    pub by: String,
    pub reason: Option<String>,
    pub attempt: i32,
}

impl From<HistoryRow> for HistoryView {
    fn from(r: HistoryRow) -> Self {
        HistoryView {
            from: r.from_status,
            to: r.to_status,
            at: rfc3339(r.at),
            by: r.by_whom,
            reason: r.reason,
            attempt: r.attempt,
        }
    }
}

#[derive(Serialize)]
pub struct LogView {
    /// Task log lines have positive ids, system log lines negative ones (unique across both).
    pub id: i64,
    /// `task` or `system`.
    pub source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i32>,
    /// The part of steward a system line comes from (`units`, `alerts`, `config`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    pub level: String,
    pub message: String,
    pub timestamp: String,
    #[serde(skip)]
    pub at: i64,
}

impl From<LogRow> for LogView {
    fn from(r: LogRow) -> Self {
        LogView {
            id: r.id,
            source: "task",
            task_id: Some(r.task_id),
            attempt: Some(r.attempt),
            component: None,
            level: r.level,
            message: r.message,
            timestamp: rfc3339(r.at),
            at: r.at,
        }
    }
}

impl From<crate::store::system_logs::SystemLogRow> for LogView {
    fn from(r: crate::store::system_logs::SystemLogRow) -> Self {
        LogView {
            id: -r.id,
            source: "system",
            task_id: None,
            attempt: None,
            component: Some(r.component),
            level: r.level,
            message: r.message,
            timestamp: rfc3339(r.at),
            at: r.at,
        }
    }
}

/// A batch as the API shows it: its fields, counts per task status, progress and ETA.
#[derive(Serialize, Debug, Clone)]
pub struct BatchView {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub status: &'static str,
    pub priority: i32,
    pub mode: &'static str,
    pub max_parallel: Option<i32>,
    pub on_failure: &'static str,
    pub depends_on: Vec<String>,
    pub callback_url: Option<String>,
    pub tags: Vec<String>,
    pub created_by: Option<String>,
    pub task_count: i32,
    pub counts: Counts,
    pub progress: f64,
    pub eta_secs: Option<f64>,
    pub paused: bool,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl BatchView {
    pub fn new(b: Batch, counts: Counts, now: Millis) -> Self {
        let progress = counts.progress();
        // The batch's own rate so far: progress per second since it started.
        let eta_secs = match (b.started_at, b.status.is_terminal()) {
            (_, true) => Some(0.0),
            (Some(start), false) if progress > 0.0 && now > start => {
                let rate = progress / ((now - start) as f64 / 1000.0);
                Some(((100.0 - progress) / rate).max(0.0))
            }
            _ => None,
        };
        BatchView {
            id: b.id,
            name: b.name,
            description: b.description,
            status: b.status.as_str(),
            priority: b.priority,
            mode: b.mode.as_str(),
            max_parallel: b.max_parallel,
            on_failure: b.on_failure.as_str(),
            depends_on: b.depends_on,
            callback_url: b.callback_url,
            tags: b.tags,
            created_by: b.created_by,
            task_count: b.task_count,
            counts,
            progress,
            eta_secs,
            paused: b.paused,
            version: b.version,
            created_at: rfc3339(b.created_at),
            updated_at: rfc3339(b.updated_at),
            started_at: b.started_at.map(rfc3339),
            finished_at: b.finished_at.map(rfc3339),
        }
    }
}
