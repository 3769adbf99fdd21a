//! Commander: sends a command to whoever owns a task now — its TaskActor when it is running
//! or paused, the scheduler when it is pending, its stored state when it is finished — and
//! does the same for every task of a batch. Used by the API and by batch actors.

use std::time::Duration;

use actix::Addr;

use super::scheduler::batches::CancelPending;
use super::scheduler::{PendingCommand, SchedulerActor};
use super::supervisor::{ActiveTasks, Route, Supervisor};
use super::{Routed, TaskCommand};
use crate::domain::{Task, TaskId, TaskStatus};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::store::{batches as qb, tasks as q, Store};

/// How often a command retries while its task moves between owners.
const ROUTE_ATTEMPTS: usize = 20;
/// Rounds of a batch-wide command (tasks may start while it runs).
const BATCH_ROUNDS: usize = 5;

#[derive(Clone)]
pub struct Commander {
    pub store: Store,
    pub scheduler: Addr<SchedulerActor>,
    pub supervisor: Addr<Supervisor>,
    /// The supervisor's task actors, read directly.
    pub active: ActiveTasks,
}

impl Commander {
    pub async fn command(&self, id: TaskId, cmd: TaskCommand, by: &str) -> ApiResult<Task> {
        for _ in 0..ROUTE_ATTEMPTS {
            let routed = self
                .supervisor
                .send(Route {
                    id,
                    cmd: cmd.clone(),
                    by: by.to_string(),
                })
                .await?;
            if let Routed::Done(r) = routed {
                return r.map(|t| *t);
            }
            let routed = self
                .scheduler
                .send(PendingCommand {
                    id,
                    cmd: cmd.clone(),
                    by: by.to_string(),
                })
                .await?;
            if let Routed::Done(r) = routed {
                return r.map(|t| *t);
            }
            let task = self
                .store
                .read(move |c| q::get(c, id))
                .await?
                .ok_or_else(|| ApiError::not_found("task", id))?;
            if task.status.is_terminal() {
                return on_finished_task(task, &cmd);
            }
            // Between owners (just created, dispatched or ending): ask again shortly.
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
        Err(ApiError::new(
            ErrorCode::Conflict,
            "the task is changing state; try again",
        ))
    }

    async fn batch_tasks(
        &self,
        batch: &str,
        statuses: &'static [TaskStatus],
    ) -> ApiResult<Vec<TaskId>> {
        let b = batch.to_string();
        Ok(self
            .store
            .read(move |c| qb::task_ids(c, &b, statuses))
            .await?)
    }

    /// The batch's tasks stored with these statuses, plus those stored as pending that have
    /// in fact started (their start is written with their next change).
    async fn active_batch_tasks(
        &self,
        batch: &str,
        statuses: &'static [TaskStatus],
    ) -> ApiResult<Vec<TaskId>> {
        let mut ids = self.batch_tasks(batch, statuses).await?;
        let pending = self.batch_tasks(batch, &[TaskStatus::Pending]).await?;
        if !pending.is_empty() {
            ids.extend(self.active.among(pending));
        }
        Ok(ids)
    }

    /// Cancels every live task of a batch; answers with how many it cancelled.
    pub async fn cancel_batch(&self, batch: &str, by: &str, reason: &str) -> ApiResult<usize> {
        let mut cancelled = 0;
        for _ in 0..BATCH_ROUNDS {
            let pending = self.batch_tasks(batch, &[TaskStatus::Pending]).await?;
            if !pending.is_empty() {
                let done = self
                    .scheduler
                    .send(CancelPending {
                        ids: pending,
                        by: by.into(),
                        reason: reason.into(),
                    })
                    .await?;
                cancelled += done.len();
            }
            let active = self
                .active_batch_tasks(batch, &[TaskStatus::Running, TaskStatus::Paused])
                .await?;
            for id in &active {
                if self.command(*id, TaskCommand::Cancel, by).await.is_ok() {
                    cancelled += 1;
                }
            }
            let left = self
                .batch_tasks(
                    batch,
                    &[TaskStatus::Pending, TaskStatus::Running, TaskStatus::Paused],
                )
                .await?;
            if left.is_empty() {
                break;
            }
        }
        Ok(cancelled)
    }

    /// Pauses (or resumes) a batch's running (or paused) tasks.
    pub async fn pause_batch_tasks(&self, batch: &str, by: &str, pause: bool) -> ApiResult<usize> {
        let (from, cmd): (&'static [TaskStatus], TaskCommand) = if pause {
            (&[TaskStatus::Running], TaskCommand::Pause)
        } else {
            (&[TaskStatus::Paused], TaskCommand::Resume)
        };
        let mut n = 0;
        for id in self.active_batch_tasks(batch, from).await? {
            if self.command(id, cmd.clone(), by).await.is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// A command on a task that is finished: refused, except a unit's callback repeating the
/// status the task ended with (a retried delivery, or the report of a run the task's own
/// timeout or cancel stopped), which is answered with the task unchanged.
pub fn on_finished_task(task: Task, cmd: &TaskCommand) -> ApiResult<Task> {
    let to = match cmd {
        TaskCommand::Callback { status, .. } if *status == task.status => return Ok(task),
        TaskCommand::Callback { status, .. } => {
            return Err(ApiError::new(
                ErrorCode::InvalidTransition,
                format!(
                    "the task is already {}; a unit's report that it is {status} is refused",
                    task.status
                ),
            ))
        }
        TaskCommand::Start | TaskCommand::Resume => TaskStatus::Running,
        TaskCommand::Pause => TaskStatus::Paused,
        TaskCommand::Cancel => TaskStatus::Cancelled,
        TaskCommand::Patch { .. } => {
            return Err(ApiError::new(
                ErrorCode::InvalidTransition,
                format!(
                    "only live tasks can be changed; this one is {}",
                    task.status
                ),
            ))
        }
        TaskCommand::Progress { .. } => {
            return Err(ApiError::new(
                ErrorCode::InvalidTransition,
                format!(
                    "progress is reported for running tasks; this one is {}",
                    task.status
                ),
            ))
        }
    };
    Err(task
        .status
        .check(to)
        .err()
        .map(ApiError::from)
        .unwrap_or_else(ApiError::internal))
}
