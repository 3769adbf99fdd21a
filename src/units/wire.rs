//! The remote-unit protocol (SPEC §5): the JSON messages a `steward worker` and the server
//! exchange over `/api/v1/units/connect`, and the body of an HTTP-style unit's `/execute`.
//! Field names follow seed 004 (`taskId`, `taskType`, `errorMessage`); every message names its
//! kind in `op`. Every message about a job carries its `executionId`: one start of one attempt
//! on one unit, the token that tells a current run from a stale one.
//!
//! ```text
//!   worker -> server: register, heartbeat, progress, log, status
//!   server -> worker: registered, execute, pause, resume, cancel, status, drop, drain,
//!                     deregistered, error
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{Job, Outcome, Report};
use crate::domain::{LogLevel, TaskId, TaskStatus};

/// A job a unit holds, named without its config.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JobRef {
    pub task_id: TaskId,
    pub attempt: i32,
    pub execution_id: Uuid,
}

/// The work to start: the WebSocket `execute` message and the HTTP `/execute` body.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Execute {
    pub task_id: TaskId,
    pub task_type: String,
    pub config: Value,
    pub checkpoint: Option<Value>,
    pub attempt: i32,
    pub execution_id: Uuid,
}

impl From<&Job> for Execute {
    fn from(j: &Job) -> Self {
        Execute {
            task_id: j.task_id,
            task_type: j.task_type.clone(),
            config: j.config.clone(),
            checkpoint: j.checkpoint.clone(),
            attempt: j.attempt,
            execution_id: j.execution_id,
        }
    }
}

impl From<Execute> for Job {
    fn from(e: Execute) -> Self {
        Job {
            task_id: e.task_id,
            attempt: e.attempt,
            execution_id: e.execution_id,
            task_type: e.task_type,
            config: e.config,
            checkpoint: e.checkpoint,
        }
    }
}

/// Server to worker.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum ToWorker {
    /// The registration is accepted; `drop` lists reported jobs that are no longer the
    /// worker's to run (they moved to another unit while it was away).
    Registered {
        unit_id: String,
        heartbeat_secs: f64,
        drop: Vec<JobRef>,
    },
    Execute(Execute),
    Pause {
        task_id: TaskId,
        execution_id: Uuid,
    },
    Resume {
        task_id: TaskId,
        execution_id: Uuid,
    },
    Cancel {
        task_id: TaskId,
        execution_id: Uuid,
    },
    /// Asks for a `status` message about the job.
    Status {
        task_id: TaskId,
        execution_id: Uuid,
    },
    /// Stop this job and forget it without reporting: it is not the worker's any more.
    Drop {
        task_id: TaskId,
        execution_id: Uuid,
    },
    /// Take no new work; finish what runs.
    Drain,
    /// The unit was removed: stop everything and do not reconnect.
    Deregistered {
        message: String,
    },
    Error {
        message: String,
    },
}

/// Worker to server.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum FromWorker {
    Register {
        name: String,
        #[serde(alias = "task_types")]
        task_types: Vec<String>,
        capacity: usize,
        #[serde(default)]
        labels: BTreeMap<String, String>,
        /// Jobs still running from before a reconnect.
        #[serde(default)]
        jobs: Vec<JobRef>,
        #[serde(default, alias = "unit_type")]
        unit_type: Option<String>,
    },
    Heartbeat {
        #[serde(default)]
        load: Option<usize>,
    },
    Progress {
        task_id: TaskId,
        execution_id: Uuid,
        #[serde(default)]
        progress: Option<f64>,
        #[serde(default)]
        stage: Option<String>,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        checkpoint: Option<Value>,
        #[serde(default)]
        resources: Option<Value>,
    },
    Log {
        task_id: TaskId,
        execution_id: Uuid,
        level: String,
        message: String,
    },
    /// `running` / `paused` answer a `status` request; `success`, `failed` and `cancelled` end
    /// the job (with `result` or `errorMessage`).
    Status {
        task_id: TaskId,
        execution_id: Uuid,
        status: String,
        #[serde(default)]
        result: Option<Value>,
        #[serde(default)]
        error_message: Option<String>,
    },
}

impl FromWorker {
    /// The job a message is about, if it is about one.
    pub fn job(&self) -> Option<(TaskId, Uuid)> {
        match self {
            FromWorker::Progress {
                task_id,
                execution_id,
                ..
            }
            | FromWorker::Log {
                task_id,
                execution_id,
                ..
            }
            | FromWorker::Status {
                task_id,
                execution_id,
                ..
            } => Some((*task_id, *execution_id)),
            FromWorker::Register { .. } | FromWorker::Heartbeat { .. } => None,
        }
    }
}

/// What a job message means for the task.
#[derive(Debug, PartialEq)]
pub enum JobNews {
    Reports(Vec<Report>),
    /// The job ended.
    Finished(Outcome),
    /// A non-final state (`running`, `paused`), as an answer to `status`.
    State(&'static str),
}

/// Translates a worker's job message (`None` for registration and heartbeats).
pub fn job_news(msg: FromWorker) -> Result<Option<JobNews>, String> {
    Ok(Some(match msg {
        FromWorker::Register { .. } | FromWorker::Heartbeat { .. } => return Ok(None),
        FromWorker::Progress {
            progress,
            stage,
            message,
            checkpoint,
            resources,
            ..
        } => {
            let mut reports = vec![Report::Progress {
                progress,
                stage,
                message,
                checkpoint,
            }];
            reports.extend(resources.map(Report::Resources));
            JobNews::Reports(reports)
        }
        FromWorker::Log { level, message, .. } => JobNews::Reports(vec![Report::Log {
            level: LogLevel::parse_loose(&level).unwrap_or(LogLevel::Info),
            message,
        }]),
        FromWorker::Status {
            status,
            result,
            error_message,
            ..
        } => match status.parse::<TaskStatus>()? {
            TaskStatus::Success => JobNews::Finished(Outcome::Success(result)),
            TaskStatus::Failed => JobNews::Finished(Outcome::Failed(
                error_message.unwrap_or_else(|| "the unit reported failure".into()),
            )),
            TaskStatus::Cancelled => JobNews::Finished(Outcome::Cancelled),
            TaskStatus::Paused => JobNews::State("paused"),
            TaskStatus::Running | TaskStatus::Pending => JobNews::State("running"),
        },
    }))
}

/// The message a finished job sends.
pub fn finished(job: &JobRef, outcome: &Outcome) -> FromWorker {
    let (status, result, error_message) = match outcome {
        Outcome::Success(r) => ("success", r.clone(), None),
        Outcome::Failed(e) => ("failed", None, Some(e.clone())),
        Outcome::Cancelled => ("cancelled", None, None),
    };
    FromWorker::Status {
        task_id: job.task_id,
        execution_id: job.execution_id,
        status: status.into(),
        result,
        error_message,
    }
}

/// The message a report of a running job sends (`None` for a bare result: results travel
/// with the final `status`).
pub fn report(job: &JobRef, r: Report) -> Option<FromWorker> {
    let (task_id, execution_id) = (job.task_id, job.execution_id);
    Some(match r {
        Report::Progress {
            progress,
            stage,
            message,
            checkpoint,
        } => FromWorker::Progress {
            task_id,
            execution_id,
            progress,
            stage,
            message,
            checkpoint,
            resources: None,
        },
        Report::Resources(v) => FromWorker::Progress {
            task_id,
            execution_id,
            progress: None,
            stage: None,
            message: None,
            checkpoint: None,
            resources: Some(v),
        },
        Report::Log { level, message } => FromWorker::Log {
            task_id,
            execution_id,
            level: level.as_str().into(),
            message,
        },
        Report::Result(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_use_the_seed_field_names() {
        let id = TaskId::new();
        let e = Uuid::now_v7();
        let v = serde_json::to_value(ToWorker::Cancel {
            task_id: id,
            execution_id: e,
        })
        .unwrap();
        assert_eq!(
            v,
            json!({"op": "cancel", "taskId": id.to_string(), "executionId": e.to_string()})
        );
        let reg: FromWorker = serde_json::from_value(json!({
            "op": "register", "name": "w1", "task_types": ["sleep"], "capacity": 2
        }))
        .unwrap();
        assert!(matches!(reg, FromWorker::Register { capacity: 2, .. }));
    }

    #[test]
    fn a_final_status_becomes_an_outcome_in_any_case() {
        let msg = FromWorker::Status {
            task_id: TaskId::new(),
            execution_id: Uuid::now_v7(),
            status: "FAILED".into(),
            result: None,
            error_message: Some("disk full".into()),
        };
        assert_eq!(
            job_news(msg),
            Ok(Some(JobNews::Finished(Outcome::Failed("disk full".into()))))
        );
    }
}
