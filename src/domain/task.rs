//! The task model of SPEC §2: the fields, the enums they use, and the rules that change them
//! (transitions with history, monotonic progress, retry delays, restart).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::{InvalidTransition, Millis, TaskId, TaskStatus};

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL.iter().copied().find(|v| v.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| {
                    let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    format!("'{s}' is not one of {}", names.join(", "))
                })
            }
        }
    };
}
pub(crate) use text_enum;

text_enum!(
    /// How the delay before an automatic retry grows.
    RetryBackoff { Fixed => "fixed", Exponential => "exponential" }
);
text_enum!(
    /// What creating a task does while another live task holds the same mutex key.
    MutexPolicy { Queue => "queue", Reject => "reject" }
);
text_enum!(
    /// How a task came to exist.
    Source { Api => "api", Batch => "batch", Schedule => "schedule", Retry => "retry", Restart => "restart", Import => "import" }
);
text_enum!(
    /// Why a pending task is not running yet.
    WaitingOn {
        Start => "start", Dependencies => "dependencies", RunAt => "run_at", RetryDelay => "retry_delay",
        Mutex => "mutex", Capacity => "capacity", QueuePaused => "queue_paused"
    }
);
text_enum!(
    /// Severity of a task log line.
    LogLevel { Debug => "DEBUG", Info => "INFO", Warning => "WARNING", Error => "ERROR" }
);

impl LogLevel {
    /// Accepts the usual spellings (`warn`, `err`, any case).
    pub fn parse_loose(s: &str) -> Option<LogLevel> {
        match s.to_ascii_uppercase().as_str() {
            "DEBUG" | "TRACE" => Some(LogLevel::Debug),
            "INFO" => Some(LogLevel::Info),
            "WARNING" | "WARN" => Some(LogLevel::Warning),
            "ERROR" | "ERR" | "CRITICAL" => Some(LogLevel::Error),
            _ => None,
        }
    }

    /// Numeric rank for "at least this level" filters.
    pub fn rank(self) -> u8 {
        match self {
            LogLevel::Debug => 0,
            LogLevel::Info => 1,
            LogLevel::Warning => 2,
            LogLevel::Error => 3,
        }
    }
}

/// Task priority: an integer, higher runs first; `low`, `normal`, `high`, `urgent` name 0–3.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Priority(pub i32);

impl Priority {
    pub const DEFAULT: Priority = Priority(1);
    /// Bounds keep the ageing arithmetic of the scheduler far from overflow.
    pub const MIN: i32 = -1_000_000;
    pub const MAX: i32 = 1_000_000;

    /// Parses a JSON priority: an integer or one of the four names.
    pub fn from_json(v: &Value) -> Result<Priority, String> {
        let n = match v {
            Value::Number(n) => n
                .as_i64()
                .ok_or_else(|| format!("priority must be an integer, not {n}"))?,
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "low" => 0,
                "normal" => 1,
                "high" => 2,
                "urgent" | "critical" => 3,
                other => other.parse::<i64>().map_err(|_| {
                    format!("priority '{s}' is not an integer or one of low, normal, high, urgent")
                })?,
            },
            other => {
                return Err(format!(
                    "priority must be an integer or a name, not {other}"
                ))
            }
        };
        if !(i64::from(Self::MIN)..=i64::from(Self::MAX)).contains(&n) {
            return Err(format!(
                "priority {n} is outside {}..={}",
                Self::MIN,
                Self::MAX
            ));
        }
        Ok(Priority(n as i32))
    }
}

/// A row of the status history: one transition.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transition {
    pub from: Option<TaskStatus>,
    pub to: TaskStatus,
    pub at: Millis,
    pub by: String,
    pub reason: Option<String>,
    pub attempt: i32,
    /// The task's version right after this transition (its status event carries it; a write
    /// can carry several transitions, and the task has moved on by then).
    pub version: i64,
}

/// Everything needed to create a task, already validated.
#[derive(Clone, Debug)]
pub struct NewTask {
    pub name: String,
    pub task_type: String,
    pub config: Value,
    pub priority: i32,
    pub max_retries: i32,
    pub retry_delay_secs: f64,
    pub retry_backoff: RetryBackoff,
    pub timeout_secs: Option<f64>,
    pub mutex: Option<String>,
    pub mutex_policy: MutexPolicy,
    pub depends_on: Vec<TaskId>,
    pub run_at: Option<Millis>,
    pub tags: Vec<String>,
    pub batch_id: Option<String>,
    pub schedule_id: Option<String>,
    pub source: Source,
    pub retry_of: Option<TaskId>,
    pub created_by: Option<String>,
    pub callback_url: Option<String>,
    pub unit_labels: BTreeMap<String, String>,
    pub autostart: bool,
}

/// A task as stored and served.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub id: TaskId,
    pub name: String,
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
    pub retry_backoff: RetryBackoff,
    pub timeout_secs: Option<f64>,
    pub mutex: Option<String>,
    pub mutex_policy: MutexPolicy,
    pub depends_on: Vec<TaskId>,
    pub run_at: Option<Millis>,
    pub tags: Vec<String>,
    pub batch_id: Option<String>,
    pub schedule_id: Option<String>,
    pub unit_id: Option<String>,
    pub source: Source,
    pub retry_of: Option<TaskId>,
    pub created_by: Option<String>,
    pub callback_url: Option<String>,
    pub version: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub unit_labels: BTreeMap<String, String>,
    /// Created with `autostart: false` and not yet started.
    pub held: bool,
    /// A retry waits until then.
    pub not_before: Option<Millis>,
    /// Seconds this attempt has spent running (not paused): the timeout clock.
    pub active_secs: f64,
    pub resources: Option<Value>,
    /// Since when a running task has reported no progress, once that passed
    /// `stall_timeout_secs`; kept by its TaskActor, not stored.
    pub stalled_since: Option<Millis>,
}

/// The longest exponential retry delay, before jitter.
pub const MAX_RETRY_DELAY_SECS: f64 = 3600.0;

impl Task {
    /// A new pending task from a validated spec, with its first history row.
    pub fn create(id: TaskId, spec: NewTask, now: Millis, by: &str) -> (Task, Transition) {
        let task = Task {
            id,
            name: spec.name,
            task_type: spec.task_type,
            config: spec.config,
            status: TaskStatus::Pending,
            priority: spec.priority,
            progress: 0.0,
            stage: None,
            message: None,
            eta_secs: None,
            checkpoint: None,
            result: None,
            error: None,
            attempt: 1,
            max_retries: spec.max_retries,
            retry_delay_secs: spec.retry_delay_secs,
            retry_backoff: spec.retry_backoff,
            timeout_secs: spec.timeout_secs,
            mutex: spec.mutex,
            mutex_policy: spec.mutex_policy,
            depends_on: spec.depends_on,
            run_at: spec.run_at,
            tags: spec.tags,
            batch_id: spec.batch_id,
            schedule_id: spec.schedule_id,
            unit_id: None,
            source: spec.source,
            retry_of: spec.retry_of,
            created_by: spec.created_by,
            callback_url: spec.callback_url,
            version: 1,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
            unit_labels: spec.unit_labels,
            held: !spec.autostart,
            not_before: None,
            active_secs: 0.0,
            resources: None,
            stalled_since: None,
        };
        let created = Transition {
            from: None,
            to: TaskStatus::Pending,
            at: now,
            by: by.to_string(),
            reason: Some("created".into()),
            attempt: 1,
            version: task.version,
        };
        (task, created)
    }

    /// Moves to `to` if the state machine allows it, stamping times and the version, and
    /// returns the history row to store with the change.
    pub fn transition(
        &mut self,
        to: TaskStatus,
        now: Millis,
        by: &str,
        reason: Option<String>,
    ) -> Result<Transition, InvalidTransition> {
        let from = self.status;
        from.check(to)?;
        self.status = to;
        self.touch(now);
        match to {
            TaskStatus::Running if self.started_at.is_none() || from == TaskStatus::Pending => {
                self.started_at = Some(now);
                self.finished_at = None;
            }
            TaskStatus::Success => {
                self.progress = 100.0;
                self.eta_secs = Some(0.0);
                self.finished_at = Some(now);
            }
            TaskStatus::Failed | TaskStatus::Cancelled => {
                self.eta_secs = None;
                self.finished_at = Some(now);
            }
            _ => {}
        }
        Ok(Transition {
            from: Some(from),
            to,
            at: now,
            by: by.to_string(),
            reason,
            attempt: self.attempt,
            version: self.version,
        })
    }

    /// A work's result as a task keeps it: an object (SPEC §2: "`result` (object or null)");
    /// anything else a unit returns (a list, a number, a string) is kept as `{"value": …}`.
    pub fn result_object(v: Value) -> Option<Value> {
        match v {
            Value::Null => None,
            o @ Value::Object(_) => Some(o),
            other => Some(serde_json::json!({ "value": other })),
        }
    }

    /// Bumps the version and `updated_at`: every change goes through here.
    pub fn touch(&mut self, now: Millis) {
        self.version += 1;
        self.updated_at = now.max(self.updated_at);
    }

    /// Applies a progress report: values only move forward within an attempt (a lower one is
    /// ignored); the caller has already refused values outside 0–100. Returns whether it moved.
    pub fn advance_progress(&mut self, progress: f64) -> bool {
        if progress > self.progress {
            self.progress = progress.min(100.0);
            true
        } else {
            false
        }
    }

    /// Whether a failed attempt gets another one: `attempt <= max_retries`.
    pub fn has_retries_left(&self) -> bool {
        self.attempt <= self.max_retries
    }

    /// The delay before attempt `self.attempt + 1`, with `jitter` in [0, 1) adding up to 10 %
    /// to exponential delays so a crowd of failures does not retry in lock-step.
    pub fn retry_delay_secs(&self, jitter: f64) -> f64 {
        match self.retry_backoff {
            RetryBackoff::Fixed => self.retry_delay_secs,
            RetryBackoff::Exponential => {
                let exp = (self.attempt - 1).clamp(0, 30);
                let base = (self.retry_delay_secs * 2f64.powi(exp)).min(MAX_RETRY_DELAY_SECS);
                base * (1.0 + 0.1 * jitter.clamp(0.0, 1.0))
            }
        }
    }

    /// Turns a failed attempt into the next one: failed -> pending, attempt + 1, waiting until
    /// `not_before`. The caller checked [`Task::has_retries_left`].
    pub fn schedule_retry(
        &mut self,
        now: Millis,
        delay_secs: f64,
    ) -> Result<Transition, InvalidTransition> {
        let reason = format!(
            "automatic retry {} of {} in {:.1}s",
            self.attempt, self.max_retries, delay_secs
        );
        self.attempt += 1;
        let t = self.transition(TaskStatus::Pending, now, "system", Some(reason))?;
        self.reset_attempt_state();
        self.not_before = Some(now + (delay_secs * 1000.0) as Millis);
        Ok(t)
    }

    /// Restart (SPEC §2.1): same id, back to pending, progress, checkpoint, result and error
    /// cleared, and a fresh run: attempt 1 with the whole retry budget, `source: restart`
    /// (its batch or schedule, if any, still says where it came from). Allowed from failed
    /// and cancelled.
    pub fn restart(&mut self, now: Millis, by: &str) -> Result<Transition, InvalidTransition> {
        let t = self.transition(TaskStatus::Pending, now, by, Some("restart".into()))?;
        self.source = Source::Restart;
        self.attempt = 1;
        self.reset_attempt_state();
        self.not_before = None;
        self.held = false;
        Ok(Transition {
            attempt: self.attempt,
            ..t
        })
    }

    /// Why a pending task waits, judged from its own fields alone (the scheduler's answer is
    /// better; this one serves while the task is between owners).
    pub fn own_waiting(&self, now: Millis) -> Option<(WaitingOn, String)> {
        if self.status != TaskStatus::Pending {
            return None;
        }
        if self.held {
            return Some((
                WaitingOn::Start,
                "created with autostart false; waiting for POST /start".into(),
            ));
        }
        if let Some(at) = self.not_before.filter(|at| *at > now) {
            return Some((
                WaitingOn::RetryDelay,
                format!("retry delay: starts at {}", super::rfc3339(at)),
            ));
        }
        if let Some(at) = self.run_at.filter(|at| *at > now) {
            return Some((
                WaitingOn::RunAt,
                format!("run_at: starts at {}", super::rfc3339(at)),
            ));
        }
        if !self.depends_on.is_empty() {
            return Some((
                WaitingOn::Dependencies,
                format!("waiting for {} dependencies", self.depends_on.len()),
            ));
        }
        Some((WaitingOn::Capacity, "queued; about to be scheduled".into()))
    }

    fn reset_attempt_state(&mut self) {
        self.progress = 0.0;
        self.stage = None;
        self.message = None;
        self.eta_secs = None;
        self.checkpoint = None;
        self.result = None;
        self.error = None;
        self.unit_id = None;
        self.started_at = None;
        self.finished_at = None;
        self.active_secs = 0.0;
    }
}

/// A plain task of `task_type` for tests.
#[cfg(test)]
impl NewTask {
    pub(crate) fn example(task_type: &str) -> NewTask {
        NewTask {
            name: "t".into(),
            task_type: task_type.into(),
            config: serde_json::json!({}),
            priority: 1,
            max_retries: 2,
            retry_delay_secs: 5.0,
            retry_backoff: RetryBackoff::Exponential,
            timeout_secs: None,
            mutex: None,
            mutex_policy: MutexPolicy::Queue,
            depends_on: vec![],
            run_at: None,
            tags: vec![],
            batch_id: None,
            schedule_id: None,
            source: Source::Api,
            retry_of: None,
            created_by: None,
            callback_url: None,
            unit_labels: BTreeMap::new(),
            autostart: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> NewTask {
        NewTask::example("noop")
    }

    #[test]
    fn priority_accepts_integers_and_the_four_names() {
        assert_eq!(Priority::from_json(&json!(7)), Ok(Priority(7)));
        assert_eq!(Priority::from_json(&json!("urgent")), Ok(Priority(3)));
        assert_eq!(Priority::from_json(&json!("LOW")), Ok(Priority(0)));
        assert_eq!(Priority::from_json(&json!("2")), Ok(Priority(2)));
        assert!(Priority::from_json(&json!("sky-high")).is_err());
        assert!(Priority::from_json(&json!(1.5)).is_err());
        assert!(Priority::from_json(&json!(10_000_000)).is_err());
        assert!(Priority::from_json(&json!(null)).is_err());
    }

    #[test]
    fn each_transition_bumps_the_version_and_records_history() {
        let (mut t, created) = Task::create(TaskId::new(), spec(), 1000, "alice");
        assert_eq!(created.from, None);
        let h = t
            .transition(TaskStatus::Running, 2000, "scheduler", None)
            .unwrap();
        assert_eq!(
            (h.from, h.to, h.at, h.by.as_str()),
            (
                Some(TaskStatus::Pending),
                TaskStatus::Running,
                2000,
                "scheduler"
            )
        );
        assert_eq!((t.version, t.started_at), (2, Some(2000)));
        t.transition(TaskStatus::Success, 3000, "unit", None)
            .unwrap();
        assert_eq!((t.progress, t.finished_at), (100.0, Some(3000)));
        let err = t
            .transition(TaskStatus::Running, 4000, "x", None)
            .unwrap_err();
        assert_eq!(err.from, TaskStatus::Success);
        assert_eq!(t.version, 3, "a refused transition changes nothing");
    }

    #[test]
    fn progress_never_goes_back_within_an_attempt() {
        let (mut t, _) = Task::create(TaskId::new(), spec(), 0, "a");
        assert!(t.advance_progress(40.0));
        assert!(!t.advance_progress(30.0));
        assert_eq!(t.progress, 40.0);
    }

    #[test]
    fn exponential_retry_delay_doubles_and_is_capped() {
        let (mut t, _) = Task::create(TaskId::new(), spec(), 0, "a");
        assert_eq!(t.retry_delay_secs(0.0), 5.0);
        t.attempt = 3;
        assert_eq!(t.retry_delay_secs(0.0), 20.0);
        assert!((t.retry_delay_secs(0.999) - 21.998).abs() < 0.01);
        t.attempt = 40;
        assert_eq!(t.retry_delay_secs(0.0), MAX_RETRY_DELAY_SECS);
        t.retry_backoff = RetryBackoff::Fixed;
        assert_eq!(t.retry_delay_secs(0.5), 5.0);
    }

    #[test]
    fn retries_run_while_attempt_is_at_most_max_retries() {
        let (mut t, _) = Task::create(TaskId::new(), spec(), 0, "a");
        t.transition(TaskStatus::Running, 1, "s", None).unwrap();
        t.progress = 50.0;
        t.transition(TaskStatus::Failed, 2, "u", None).unwrap();
        assert!(t.has_retries_left());
        let h = t.schedule_retry(10, 5.0).unwrap();
        assert_eq!(
            (t.status, t.attempt, t.progress),
            (TaskStatus::Pending, 2, 0.0)
        );
        assert_eq!(t.not_before, Some(5010));
        assert_eq!(h.to, TaskStatus::Pending);
        t.attempt = 3;
        assert!(!t.has_retries_left());
    }

    #[test]
    fn restart_keeps_the_id_and_clears_the_outcome() {
        let (mut t, _) = Task::create(TaskId::new(), spec(), 0, "a");
        let id = t.id;
        t.transition(TaskStatus::Running, 1, "s", None).unwrap();
        t.checkpoint = Some(json!({"at": 3}));
        t.error = Some("boom".into());
        t.transition(TaskStatus::Failed, 2, "u", None).unwrap();
        t.restart(3, "bob").unwrap();
        assert_eq!(t.id, id);
        assert_eq!(
            (t.status, t.checkpoint.clone(), t.error.clone(), t.source),
            (TaskStatus::Pending, None, None, Source::Restart)
        );
        let (mut ok, _) = Task::create(TaskId::new(), spec(), 0, "a");
        assert!(ok.restart(1, "bob").is_err(), "pending cannot restart");
    }
}
