//! The TaskActor's lifecycle and message handlers.

use std::sync::Arc;

use actix::prelude::*;

use super::{hot, Command, Launch, Snapshot, TaskActor, WhenRunEnds};
use crate::actors::scheduler::Ended;
use crate::actors::units::{self as unitmsg, ReportBody, UnitReport};
use crate::actors::TaskCommand;
use crate::domain::{now_ms, Task, TaskStatus};
use crate::error::{ApiError, ErrorCode};
use crate::events::EventBody;
use crate::store::tasks as q;
use crate::units::Report;

impl Actor for TaskActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match self.launch.take() {
            Some(Launch::Dispatch { unit }) => self.begin_dispatch(unit, ctx),
            Some(Launch::Adopt { task, unit }) => self.adopt(*task, unit, ctx),
            Some(Launch::Resync) | None => {
                let id = self.id;
                let load = self.shared.store.read(move |c| q::get(c, id));
                ctx.wait(load.into_actor(self).map(|res, act, ctx| match res {
                    Ok(Some(task)) => {
                        act.persisted_version = task.version;
                        let status = task.status;
                        if status == TaskStatus::Pending {
                            // Its start never became durable: stop the work it began.
                            if let Some(unit) = act.unit.as_ref().filter(|_| !act.unit_stopped) {
                                unit.cancel.do_send(unitmsg::Cancel { task_id: act.id });
                            }
                            return act.give_back(task, ctx);
                        }
                        // As read, the live task is the durable one: one copy for both.
                        let task = Arc::new(task);
                        act.durable = Some(task.clone());
                        act.task = Some(task);
                        if status.is_terminal() && !act.done {
                            act.final_committed = true;
                            act.unit_stopped = true;
                            act.ending.get_or_insert(match status {
                                TaskStatus::Success => Ended::Success,
                                TaskStatus::Cancelled => Ended::Cancelled,
                                _ => Ended::Failed,
                            });
                            act.maybe_finalize(ctx);
                        } else if status == TaskStatus::Running {
                            act.start_clock(ctx);
                        }
                    }
                    other => {
                        log::error!("task {}: cannot reload ({:?})", act.id, other.err());
                        act.abandon(ctx);
                    }
                }));
            }
        }
    }
}

/// After a crash of the actor (a failed write), reload the task from the database; the unit
/// keeps reporting to the same mailbox.
impl actix::Supervised for TaskActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        log::warn!("task actor {} restarting", self.id);
        self.launch = Some(Launch::Resync);
        self.unsaved_history.clear();
        self.flush = None;
        self.timeout = None;
        self.running_since = None;
        self.stall_check = None;
    }
}

/// Progress, logs, results and the end of the work, from the unit.
impl Handler<UnitReport> for TaskActor {
    type Result = ();

    fn handle(&mut self, msg: UnitReport, ctx: &mut Context<Self>) {
        let Some(task) = self.task.as_ref() else {
            return;
        };
        // The execution id names the run; the attempt alone does not (a failed attempt with
        // retries left counts the next one before its own run has confirmed it stopped).
        let ending_run = self.ending.is_some() && matches!(msg.body, ReportBody::Finished(_));
        if (msg.attempt != task.attempt && !ending_run)
            || msg.task_id != task.id
            || Some(msg.execution_id) != self.execution
        {
            log::debug!(
                "task {}: ignoring a report of a stale run ({})",
                self.id,
                msg.execution_id
            );
            return;
        }
        match msg.body {
            ReportBody::Finished(outcome) => self.on_unit_finished(outcome, ctx),
            ReportBody::Lost(reason) => self.on_unit_lost(reason, ctx),
            ReportBody::Report(_) if self.ending.is_some() => {}
            ReportBody::Report(Report::Log { level, message }) => {
                self.log(level, message);
                self.schedule_flush(ctx);
            }
            ReportBody::Report(Report::Resources(v)) => {
                if let Some(t) = hot(&mut self.task) {
                    t.resources = Some(v);
                    t.touch(now_ms());
                }
                self.schedule_flush(ctx);
            }
            ReportBody::Report(Report::Result(v)) => {
                if let Some(t) = hot(&mut self.task) {
                    t.result = Task::result_object(v);
                    t.touch(now_ms());
                }
                self.schedule_flush(ctx);
            }
            ReportBody::Report(Report::Progress {
                progress,
                stage,
                message,
                checkpoint,
            }) => {
                let visible = progress.is_some() || stage.is_some() || message.is_some();
                self.learn_typical(ctx);
                if self.apply_progress(progress, stage, message, checkpoint) {
                    if visible {
                        if let Some(t) = self.task.as_ref() {
                            let e = EventBody::progress(t, now_ms());
                            self.emit(e);
                        }
                    }
                    self.schedule_flush(ctx);
                }
            }
        }
    }
}

/// The task as readers should see it.
impl Handler<WhenRunEnds> for TaskActor {
    type Result = Option<tokio::sync::oneshot::Receiver<()>>;
    fn handle(&mut self, _: WhenRunEnds, _: &mut Context<Self>) -> Self::Result {
        if self.done {
            return None;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.run_end_waiters.push(tx);
        Some(rx)
    }
}

impl Handler<Snapshot> for TaskActor {
    type Result = Option<Task>;
    fn handle(&mut self, _: Snapshot, _: &mut Context<Self>) -> Option<Task> {
        self.readable()
    }
}

fn refuse(task: &Task, to: TaskStatus) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidTransition,
        format!("a {} task cannot become {to}", task.status),
    )
}

/// Control commands; each answers with the task once its change is durable.
impl Handler<Command> for TaskActor {
    type Result = ResponseActFuture<Self, Result<Task, ApiError>>;

    fn handle(&mut self, msg: Command, ctx: &mut Context<Self>) -> Self::Result {
        let ready = |r: Result<Task, ApiError>| -> Self::Result { Box::pin(fut::ready(r)) };
        // The task before this command (a shared reference: changing the live one copies it).
        let Some(task) = self.task.clone() else {
            return ready(Err(ApiError::new(
                ErrorCode::Unavailable,
                "the task is being loaded; try again",
            )));
        };
        let now = now_ms();
        match msg.cmd {
            TaskCommand::Start => ready(Err(refuse(&task, TaskStatus::Running))),
            TaskCommand::Pause => {
                if task.status != TaskStatus::Running || self.ending.is_some() {
                    return ready(Err(refuse(&task, TaskStatus::Paused)));
                }
                self.stop_clock(ctx);
                let Some(t) = hot(&mut self.task) else {
                    return ready(Err(ApiError::internal()));
                };
                let h = match t.transition(TaskStatus::Paused, now, &msg.by, Some("paused".into()))
                {
                    Ok(h) => h,
                    Err(e) => return ready(Err(e.into())),
                };
                if let Some(unit) = &self.unit {
                    unit.pause.do_send(unitmsg::Pause { task_id: self.id });
                }
                self.commit(vec![h], ctx)
            }
            TaskCommand::Resume => {
                if task.status != TaskStatus::Paused || self.ending.is_some() {
                    return ready(Err(refuse(&task, TaskStatus::Running)));
                }
                let Some(t) = hot(&mut self.task) else {
                    return ready(Err(ApiError::internal()));
                };
                let h =
                    match t.transition(TaskStatus::Running, now, &msg.by, Some("resumed".into())) {
                        Ok(h) => h,
                        Err(e) => return ready(Err(e.into())),
                    };
                self.start_clock(ctx);
                match (&self.unit, self.unit_stopped) {
                    (Some(unit), false) => {
                        unit.resume.do_send(unitmsg::Resume { task_id: self.id })
                    }
                    (Some(_), true) => self.start_unit(ctx),
                    (None, _) => self.acquire_and_start(ctx),
                }
                self.commit(vec![h], ctx)
            }
            TaskCommand::Cancel => {
                if self.ending.is_some() {
                    return ready(Err(refuse(&task, TaskStatus::Cancelled)));
                }
                match self.cancel_by(msg.by, "cancelled".into(), ctx) {
                    Ok(fut) => fut,
                    Err(e) => ready(Err(e)),
                }
            }
            TaskCommand::Patch {
                priority,
                name,
                tags,
            } => {
                let Some(t) = hot(&mut self.task) else {
                    return ready(Err(ApiError::internal()));
                };
                if let Some(p) = priority {
                    t.priority = p;
                }
                if let Some(n) = name {
                    t.name = n;
                }
                if let Some(tags) = tags {
                    t.tags = tags;
                }
                t.touch(now);
                self.commit(Vec::new(), ctx)
            }
            TaskCommand::Progress {
                progress,
                stage,
                message,
                checkpoint,
                execution_id,
            } => {
                if let Err(e) = self.current_run(execution_id) {
                    return ready(Err(e));
                }
                if !task.status.is_active() || self.ending.is_some() {
                    return ready(Err(ApiError::new(
                        ErrorCode::InvalidTransition,
                        format!(
                            "progress is reported for running tasks; this one is {}",
                            task.status
                        ),
                    )));
                }
                let visible = progress.is_some() || stage.is_some() || message.is_some();
                self.learn_typical(ctx);
                if self.apply_progress(progress, stage, message, checkpoint) && visible {
                    if let Some(t) = self.task.as_ref() {
                        let e = EventBody::progress(t, now);
                        self.emit(e);
                    }
                }
                self.commit(Vec::new(), ctx)
            }
            TaskCommand::Callback {
                status,
                result,
                error,
                execution_id,
            } => {
                if let Err(e) = self.current_run(execution_id) {
                    return ready(Err(e));
                }
                if self.ending.is_some() {
                    return ready(Ok(Task::clone(&task)));
                }
                match status {
                    TaskStatus::Success => {
                        self.unit_stopped = true;
                        self.succeed(result, ctx);
                    }
                    TaskStatus::Failed => {
                        self.unit_stopped = true;
                        self.fail(
                            error.unwrap_or_else(|| "the unit reported failure".into()),
                            ctx,
                        );
                    }
                    TaskStatus::Cancelled => {
                        self.unit_stopped = true;
                        let by = self.unit_name();
                        match self.cancel_by(by, "cancelled by the unit".into(), ctx) {
                            Ok(fut) => ctx.spawn(fut.map(|_, _, _| ())),
                            Err(e) => return ready(Err(e)),
                        };
                    }
                    TaskStatus::Pending => {
                        return ready(Err(ApiError::new(
                            ErrorCode::InvalidTransition,
                            format!("a {} task cannot become pending", task.status),
                        )))
                    }
                    TaskStatus::Running | TaskStatus::Paused => {}
                }
                ready(self.answer())
            }
        }
    }
}
