//! Row types, separate from domain types, with the conversions between them.

use diesel::prelude::*;
use serde_json::Value;

use super::schema::{task_history, task_logs, tasks};
use super::StoreError;
use crate::domain::{LogLevel, Task, TaskId, Transition};

/// A stored task as read.
#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = tasks)]
pub struct TaskRow {
    pub id: String,
    pub name: String,
    pub task_type: String,
    pub config: String,
    pub status: String,
    pub priority: i32,
    pub progress: f64,
    pub stage: Option<String>,
    pub message: Option<String>,
    pub eta_secs: Option<f64>,
    pub checkpoint: Option<String>,
    pub result: Option<String>,
    pub error: Option<String>,
    pub attempt: i32,
    pub max_retries: i32,
    pub retry_delay_secs: f64,
    pub retry_backoff: String,
    pub timeout_secs: Option<f64>,
    pub mutex_key: Option<String>,
    pub mutex_policy: String,
    pub depends_on: String,
    pub run_at: Option<i64>,
    pub tags: String,
    pub batch_id: Option<String>,
    pub schedule_id: Option<String>,
    pub unit_id: Option<String>,
    pub source: String,
    pub retry_of: Option<String>,
    pub created_by: Option<String>,
    pub callback_url: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub unit_labels: String,
    pub held: bool,
    pub not_before: Option<i64>,
    pub active_secs: f64,
    pub resources: Option<String>,
}

fn json_text(v: &Value) -> String {
    v.to_string()
}

fn opt_json(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(json_text)
}

fn parse_json(field: &str, s: &str) -> Result<Value, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{field}: {e}")))
}

fn parse<T: std::str::FromStr>(field: &str, s: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("{field} '{s}': {e}")))
}

/// A task as inserted: what creation fixed, plus the changeable columns as a save writes
/// them (so an insert and a save serialise those one way).
#[derive(Insertable)]
#[diesel(table_name = tasks, treat_none_as_default_value = false)]
pub struct NewTaskRow {
    pub id: String,
    pub task_type: String,
    pub config: String,
    pub mutex_key: Option<String>,
    pub mutex_policy: String,
    pub depends_on: String,
    pub batch_id: Option<String>,
    pub schedule_id: Option<String>,
    pub retry_of: Option<String>,
    pub created_by: Option<String>,
    pub callback_url: Option<String>,
    pub created_at: i64,
    #[diesel(embed)]
    pub changes: TaskChanges,
}

impl From<&Task> for NewTaskRow {
    fn from(t: &Task) -> Self {
        NewTaskRow {
            id: t.id.to_string(),
            task_type: t.task_type.clone(),
            config: json_text(&t.config),
            mutex_key: t.mutex.clone(),
            mutex_policy: t.mutex_policy.as_str().into(),
            depends_on: serde_json::to_string(&t.depends_on).unwrap_or_else(|_| "[]".into()),
            batch_id: t.batch_id.clone(),
            schedule_id: t.schedule_id.clone(),
            retry_of: t.retry_of.map(|r| r.to_string()),
            created_by: t.created_by.clone(),
            callback_url: t.callback_url.clone(),
            created_at: t.created_at,
            changes: TaskChanges::from(t),
        }
    }
}

/// The columns a stored task can change: everything but what its creation fixed (identity,
/// type, config, batch, schedule, mutex, dependencies, creation time; the source changes
/// once, to `restart`, when a task is restarted in place). An `UPDATE`
/// rewrites the entries of every index that holds a column it sets, so leaving the fixed
/// ones out spares the type, creation-time, batch and schedule indexes on each save (and
/// re-serialising the config and dependencies).
#[derive(AsChangeset, Insertable)]
#[diesel(table_name = tasks, treat_none_as_null = true, treat_none_as_default_value = false)]
pub struct TaskChanges {
    pub name: String,
    pub status: String,
    pub priority: i32,
    pub progress: f64,
    pub stage: Option<String>,
    pub message: Option<String>,
    pub eta_secs: Option<f64>,
    pub checkpoint: Option<String>,
    pub result: Option<String>,
    pub error: Option<String>,
    pub attempt: i32,
    pub max_retries: i32,
    pub retry_delay_secs: f64,
    pub retry_backoff: String,
    pub timeout_secs: Option<f64>,
    pub run_at: Option<i64>,
    pub tags: String,
    pub unit_id: Option<String>,
    pub version: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub unit_labels: String,
    pub held: bool,
    pub not_before: Option<i64>,
    pub active_secs: f64,
    pub resources: Option<String>,
    pub source: String,
}

impl From<&Task> for TaskChanges {
    fn from(t: &Task) -> Self {
        TaskChanges {
            name: t.name.clone(),
            status: t.status.as_str().into(),
            priority: t.priority,
            progress: t.progress,
            stage: t.stage.clone(),
            message: t.message.clone(),
            eta_secs: t.eta_secs,
            checkpoint: opt_json(&t.checkpoint),
            result: opt_json(&t.result),
            error: t.error.clone(),
            attempt: t.attempt,
            max_retries: t.max_retries,
            retry_delay_secs: t.retry_delay_secs,
            retry_backoff: t.retry_backoff.as_str().into(),
            timeout_secs: t.timeout_secs,
            run_at: t.run_at,
            tags: serde_json::to_string(&t.tags).unwrap_or_else(|_| "[]".into()),
            unit_id: t.unit_id.clone(),
            version: t.version,
            updated_at: t.updated_at,
            started_at: t.started_at,
            finished_at: t.finished_at,
            unit_labels: serde_json::to_string(&t.unit_labels).unwrap_or_else(|_| "{}".into()),
            held: t.held,
            not_before: t.not_before,
            active_secs: t.active_secs,
            resources: opt_json(&t.resources),
            source: t.source.as_str().into(),
        }
    }
}

impl TryFrom<TaskRow> for Task {
    type Error = StoreError;
    fn try_from(r: TaskRow) -> Result<Task, StoreError> {
        Ok(Task {
            id: parse("id", &r.id)?,
            name: r.name,
            task_type: r.task_type,
            config: parse_json("config", &r.config)?,
            status: parse("status", &r.status)?,
            priority: r.priority,
            progress: r.progress,
            stage: r.stage,
            message: r.message,
            eta_secs: r.eta_secs,
            checkpoint: r
                .checkpoint
                .as_deref()
                .map(|s| parse_json("checkpoint", s))
                .transpose()?,
            result: r
                .result
                .as_deref()
                .map(|s| parse_json("result", s))
                .transpose()?,
            error: r.error,
            attempt: r.attempt,
            max_retries: r.max_retries,
            retry_delay_secs: r.retry_delay_secs,
            retry_backoff: parse("retry_backoff", &r.retry_backoff)?,
            timeout_secs: r.timeout_secs,
            mutex: r.mutex_key,
            mutex_policy: parse("mutex_policy", &r.mutex_policy)?,
            depends_on: serde_json::from_str(&r.depends_on)
                .map_err(|e| StoreError::Corrupt(format!("depends_on: {e}")))?,
            run_at: r.run_at,
            tags: serde_json::from_str(&r.tags)
                .map_err(|e| StoreError::Corrupt(format!("tags: {e}")))?,
            batch_id: r.batch_id,
            schedule_id: r.schedule_id,
            unit_id: r.unit_id,
            source: parse("source", &r.source)?,
            retry_of: r
                .retry_of
                .as_deref()
                .map(|s| parse::<TaskId>("retry_of", s))
                .transpose()?,
            created_by: r.created_by,
            callback_url: r.callback_url,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            unit_labels: serde_json::from_str(&r.unit_labels)
                .map_err(|e| StoreError::Corrupt(format!("unit_labels: {e}")))?,
            held: r.held,
            not_before: r.not_before,
            active_secs: r.active_secs,
            resources: r
                .resources
                .as_deref()
                .map(|s| parse_json("resources", s))
                .transpose()?,
            stalled_since: None,
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = task_history, treat_none_as_default_value = false)]
pub struct NewHistoryRow<'a> {
    pub task_id: String,
    pub attempt: i32,
    pub from_status: Option<&'a str>,
    pub to_status: &'a str,
    pub at: i64,
    pub by_whom: &'a str,
    pub reason: Option<&'a str>,
}

impl<'a> NewHistoryRow<'a> {
    pub fn new(task: TaskId, t: &'a Transition) -> Self {
        NewHistoryRow {
            task_id: task.to_string(),
            attempt: t.attempt,
            from_status: t.from.map(|s| s.as_str()),
            to_status: t.to.as_str(),
            at: t.at,
            by_whom: &t.by,
            reason: t.reason.as_deref(),
        }
    }
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = task_history)]
pub struct HistoryRow {
    pub id: i64,
    pub task_id: String,
    pub attempt: i32,
    pub from_status: Option<String>,
    pub to_status: String,
    pub at: i64,
    pub by_whom: String,
    pub reason: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = task_logs)]
pub struct NewLogRow {
    pub task_id: String,
    pub attempt: i32,
    pub level: String,
    pub message: String,
    pub at: i64,
}

/// A log line to store.
#[derive(Clone, Debug)]
pub struct LogLine {
    pub task_id: TaskId,
    pub attempt: i32,
    pub level: LogLevel,
    pub message: String,
    pub at: i64,
}

impl From<&LogLine> for NewLogRow {
    fn from(l: &LogLine) -> Self {
        NewLogRow {
            task_id: l.task_id.to_string(),
            attempt: l.attempt,
            level: l.level.as_str().into(),
            message: l.message.clone(),
            at: l.at,
        }
    }
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = task_logs)]
pub struct LogRow {
    pub id: i64,
    pub task_id: String,
    pub attempt: i32,
    pub level: String,
    pub message: String,
    pub at: i64,
}
