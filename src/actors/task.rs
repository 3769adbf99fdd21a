//! TaskActor: one per running or paused task. It holds the hot copy of the task, drives its
//! unit, keeps the timeout clock (stopped while paused), persists every change through the
//! store's group-commit writer and publishes the events. When the task's outcome is decided
//! *and* the unit has stopped, it tells the scheduler (`TaskEnded`) and the supervisor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::scheduler::{AcquireUnit, AttachUnit, Ended, SchedulerActor, TaskEnded};
use super::supervisor::{Supervisor, TaskActorStopped};
use super::unit_manager::Reclaim;
use super::units::{self as unitmsg, UnitHandle};
use super::{Shared, TaskCommand};
use crate::domain::{now_ms, LogLevel, Task, TaskId, TaskStatus, Transition};
use crate::error::ApiError;
use crate::events::EventBody;
use crate::store::rows::LogLine;
use crate::store::{tasks as q, StoreError};
use crate::units::{Job, Outcome};

/// A control command; answers with the task once the change is durable.
#[derive(Message)]
#[rtype(result = "Result<Task, ApiError>")]
pub struct Command {
    pub cmd: TaskCommand,
    pub by: String,
}

/// The hot copy of the task.
#[derive(Message)]
#[rtype(result = "Option<Task>")]
pub struct Snapshot;

/// A receiver that fires when the current run has ended for good: its outcome durable and its
/// unit stopped (a cancelled unit has cleaned up by then); `None` if that is already so.
#[derive(Message)]
#[rtype(result = "Option<tokio::sync::oneshot::Receiver<()>>")]
pub struct WhenRunEnds;

/// How progress and log writes are coalesced: at most one write per task per interval,
/// [`FLUSH_INTERVAL`] while few tasks have actors (running or paused), stretched so that
/// all of them together write about [`FLUSH_RATE`] times a second, up to
/// [`FLUSH_INTERVAL_MAX`].
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
const FLUSH_INTERVAL_MAX: Duration = Duration::from_secs(1);
const FLUSH_RATE: f64 = 1000.0;

/// The progress write interval with `live` task actors.
fn flush_interval(live: usize) -> Duration {
    Duration::from_secs_f64(live as f64 / FLUSH_RATE).clamp(FLUSH_INTERVAL, FLUSH_INTERVAL_MAX)
}

/// How long a start may wait to be written with the task's next change (a task that ends
/// within it writes its row once).
const START_WRITE_WINDOW: Duration = Duration::from_millis(2);
/// How often a running task without a unit asks for one again.
const UNIT_RETRY: Duration = Duration::from_millis(500);
/// Extra time a unit gets to confirm it stopped before the task is finalized regardless.
const STOP_CONFIRM_SLACK: Duration = Duration::from_secs(10);

/// How the actor comes to life.
pub enum Launch {
    /// The scheduler picked a pending task for this unit.
    Dispatch { unit: UnitHandle },
    /// Rebuilt at start-up (or after a crash of the actor): the task is running or paused.
    Adopt {
        task: Box<Task>,
        unit: Option<UnitHandle>,
    },
    /// Restarted by the actix supervisor: reload from the database.
    Resync,
}

/// The live task, to change: copied first while a snapshot (the durable one, or a write in
/// flight) still shares it.
fn hot(task: &mut Option<Arc<Task>>) -> Option<&mut Task> {
    task.as_mut().map(Arc::make_mut)
}

pub struct TaskActor {
    id: TaskId,
    /// The task as it is now. Shared with `durable` and with the write in flight until it
    /// next changes ([`hot`] copies it then), so a settled task is held once.
    task: Option<Arc<Task>>,
    /// The task as last committed: what readers see (with live progress laid over it).
    durable: Option<Arc<Task>>,
    shared: Shared,
    scheduler: Addr<SchedulerActor>,
    supervisor: Addr<Supervisor>,
    launch: Option<Launch>,
    unit: Option<UnitHandle>,
    /// The current run on `unit`: reports of any other run are stale and ignored.
    execution: Option<uuid::Uuid>,
    /// Transitions not yet written (the start, for at most [`START_WRITE_WINDOW`]).
    unsaved_history: Vec<Transition>,
    /// Events of the work held back until its start is durable (so none precedes the
    /// `running` event).
    held_events: Option<Vec<EventBody>>,
    /// A unit is being asked for.
    acquiring: bool,
    /// Since when the running task has had no unit to run on.
    waiting_for_unit: Option<Instant>,
    persisted_version: i64,
    running_since: Option<Instant>,
    timeout: Option<SpawnHandle>,
    flush: Option<SpawnHandle>,
    pending_logs: Vec<LogLine>,
    /// The outcome, once decided; the actor ends when it is durable and the unit has stopped.
    ending: Option<Ended>,
    final_committed: bool,
    unit_stopped: bool,
    done: bool,
    /// Told when the run has ended for good ([`WhenRunEnds`]).
    run_end_waiters: Vec<tokio::sync::oneshot::Sender<()>>,
    /// (active seconds, progress) when progress was first seen this attempt: the ETA's base.
    eta_origin: Option<(f64, f64)>,
    /// Mean running time of earlier successes of this type: the ETA's history half.
    typical_secs: Option<f64>,
    /// The typical duration is known (or being read by this actor).
    typical_known: bool,
    /// When progress last arrived (or the clock last started): what a stall counts from.
    last_progress: Option<Instant>,
    stall_check: Option<SpawnHandle>,
}

impl TaskActor {
    pub fn new(
        id: TaskId,
        launch: Launch,
        shared: Shared,
        scheduler: Addr<SchedulerActor>,
        supervisor: Addr<Supervisor>,
    ) -> Self {
        TaskActor {
            id,
            task: None,
            durable: None,
            shared,
            scheduler,
            supervisor,
            launch: Some(launch),
            unit: None,
            execution: None,
            unsaved_history: Vec::new(),
            held_events: None,
            acquiring: false,
            waiting_for_unit: None,
            persisted_version: 0,
            running_since: None,
            timeout: None,
            flush: None,
            pending_logs: Vec::new(),
            ending: None,
            final_committed: false,
            unit_stopped: true,
            done: false,
            run_end_waiters: Vec::new(),
            eta_origin: None,
            typical_secs: None,
            typical_known: false,
            last_progress: None,
            stall_check: None,
        }
    }

    fn unit_name(&self) -> String {
        self.unit
            .as_ref()
            .map(|u| u.id.clone())
            .unwrap_or_else(|| "system".into())
    }

    /// Seconds this attempt has run, paused time excluded.
    fn active_secs(&self) -> f64 {
        let base = self.task.as_ref().map(|t| t.active_secs).unwrap_or(0.0);
        base + self
            .running_since
            .map(|s| s.elapsed().as_secs_f64())
            .unwrap_or(0.0)
    }

    fn start_clock(&mut self, ctx: &mut Context<Self>) {
        self.running_since = Some(Instant::now());
        self.arm_timeout(ctx);
        self.watch_progress(ctx);
    }

    fn stop_clock(&mut self, ctx: &mut Context<Self>) {
        let active = self.active_secs();
        if let Some(t) = hot(&mut self.task) {
            t.active_secs = active;
        }
        self.running_since = None;
        if let Some(h) = self.timeout.take() {
            ctx.cancel_future(h);
        }
    }

    fn arm_timeout(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.timeout.take() {
            ctx.cancel_future(h);
        }
        let Some(task) = self.task.as_ref() else {
            return;
        };
        let limit = task
            .timeout_secs
            .unwrap_or_else(|| self.shared.config().default_timeout_secs);
        if limit <= 0.0 {
            return;
        }
        let left = (limit - self.active_secs()).max(0.0);
        self.timeout = Some(ctx.run_later(Duration::from_secs_f64(left), |act, ctx| {
            act.timeout = None;
            act.on_timeout(ctx);
        }));
    }

    /// Writes the task (if it changed) with its history rows and any buffered log lines, in
    /// call order with every other write of this actor; yields the snapshot now durable.
    fn persist(
        &mut self,
        history: Vec<Transition>,
    ) -> impl std::future::Future<Output = Result<Option<Arc<Task>>, StoreError>> + 'static {
        let task = self.task.clone();
        let expected = self.persisted_version;
        if let Some(t) = &task {
            self.persisted_version = t.version;
        }
        let logs = std::mem::take(&mut self.pending_logs);
        // No savepoint: the version check refuses before anything is written.
        self.shared.store.write_direct(move |c| {
            if let Some(t) = task
                .as_ref()
                .filter(|t| t.version != expected || !history.is_empty())
            {
                if !q::save(c, t, expected, &history)? {
                    return Err(StoreError::Conflict);
                }
            }
            if !logs.is_empty() {
                q::insert_logs(c, &logs)?;
            }
            Ok(task)
        })
    }

    /// What a reader sees: the last durable state, with the live progress of the same
    /// attempt laid over it (progress is coalesced into writes, see [`flush_interval`]).
    pub(super) fn readable(&self) -> Option<Task> {
        let hot = self.task.as_ref()?;
        let mut t = Task::clone(self.durable.as_ref().unwrap_or(hot));
        if t.status == hot.status && t.attempt == hot.attempt {
            t.progress = hot.progress;
            t.stage = hot.stage.clone();
            t.message = hot.message.clone();
            t.eta_secs = hot.eta_secs;
            t.checkpoint = hot.checkpoint.clone();
            t.stalled_since = hot.stalled_since;
        }
        if t.status == TaskStatus::Running {
            t.active_secs = self.active_secs();
        }
        Some(t)
    }

    /// Persists, then publishes the status events of `history`; a failed write restarts the
    /// actor, which reloads the truth from the database.
    fn commit(
        &mut self,
        history: Vec<Transition>,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<Task, ApiError>> {
        let write = self.write_through(history, ctx);
        Self::answered(write)
    }

    /// A write's future that answers with the task once the write is durable.
    fn answered(
        write: ResponseActFuture<Self, Result<(), ApiError>>,
    ) -> ResponseActFuture<Self, Result<Task, ApiError>> {
        Box::pin(write.map(|res, act, _| res.and_then(|()| act.answer())))
    }

    /// The task as a control command answers it.
    fn answer(&self) -> Result<Task, ApiError> {
        self.task.as_deref().cloned().ok_or_else(ApiError::internal)
    }

    /// [`TaskActor::commit`] for a caller that needs no answer (no copy of the task made).
    fn write_through(
        &mut self,
        history: Vec<Transition>,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<(), ApiError>> {
        let mut history = history;
        if !self.unsaved_history.is_empty() {
            let mut all = std::mem::take(&mut self.unsaved_history);
            all.append(&mut history);
            history = all;
        }
        // Each status event, and whether it announces the start (the work's held events
        // follow it).
        let events: Vec<(EventBody, bool)> = match self.task.as_ref() {
            Some(t) => history
                .iter()
                .map(|h| {
                    let start = h.to == TaskStatus::Running && h.from == Some(TaskStatus::Pending);
                    (EventBody::transition(t, h), start)
                })
                .collect(),
            None => Vec::new(),
        };
        let fut = self.persist(history);
        let _ = ctx;
        Box::pin(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(snapshot) => {
                if snapshot.is_some() {
                    act.durable = snapshot;
                }
                for (e, start) in events {
                    act.shared.events.publish(e);
                    if start {
                        // The start is durable and announced: what the work reported
                        // meanwhile follows it.
                        for held in act.held_events.take().unwrap_or_default() {
                            act.shared.events.publish(held);
                        }
                    }
                }
                act.maybe_finalize(ctx);
                Ok(())
            }
            Err(e) => {
                log::error!(
                    "task {}: write failed ({e}); reloading from the database",
                    act.id
                );
                ctx.stop();
                Err(ApiError::from(e))
            }
        }))
    }

    fn schedule_flush(&mut self, ctx: &mut Context<Self>) {
        if self.flush.is_none() {
            let every = flush_interval(self.shared.active.count());
            self.flush = Some(ctx.run_later(every, |act, ctx| {
                act.flush = None;
                if !act.unsaved_history.is_empty() {
                    // The start is still unwritten: write it with its events.
                    let write = act.write_through(Vec::new(), ctx);
                    ctx.spawn(write.map(|_, _, _| ()));
                    return;
                }
                let fut = act.persist(Vec::new());
                ctx.spawn(fut.into_actor(act).map(|res, act, ctx| match res {
                    Ok(snapshot) => {
                        if snapshot.is_some() {
                            act.durable = snapshot;
                        }
                    }
                    Err(e) => {
                        log::error!("task {}: progress write failed ({e}); reloading", act.id);
                        ctx.stop();
                    }
                }));
            }));
        }
    }

    fn start_unit(&mut self, ctx: &mut Context<Self>) {
        let (Some(unit), Some(task)) = (self.unit.clone(), self.task.as_ref()) else {
            return;
        };
        let execution_id = uuid::Uuid::now_v7();
        self.execution = Some(execution_id);
        let job = Job {
            task_id: task.id,
            attempt: task.attempt,
            execution_id,
            task_type: task.task_type.clone(),
            config: task.config.clone(),
            checkpoint: task.checkpoint.clone(),
        };
        self.unit_stopped = false;
        let start = unit.start.send(unitmsg::Start {
            job,
            reporter: ctx.address().recipient(),
        });
        ctx.spawn(start.into_actor(self).map(|res, act, ctx| {
            let refused = match res {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e,
                Err(e) => format!("unit unreachable: {e}"),
            };
            act.unit_stopped = true;
            if act.ending.is_some() {
                // A clean-up start the unit refused: nothing more to wait for.
                return act.maybe_finalize(ctx);
            }
            act.fail(format!("the unit could not start the task: {refused}"), ctx);
        }));
    }

    /// The scheduler chose this task: read it and start it on the unit at once. `running`
    /// is written with the task's next change, or after [`START_WRITE_WINDOW`] (a fast task
    /// writes its row once); readers see it, and its event goes out, once it is durable.
    /// Until then the stored row says `pending`, so a crash runs the task again (at least
    /// once); a write that finds the row changed reloads the actor, which stops the work it
    /// began. A task that stopped being pending meanwhile is let go.
    fn begin_dispatch(&mut self, unit: UnitHandle, ctx: &mut Context<Self>) {
        let read = self.shared.store.get_task(self.id);
        self.unit = Some(unit);
        ctx.wait(read.into_actor(self).map(|res, act, ctx| {
            let mut task = match res {
                Ok(Some(t)) if t.status == TaskStatus::Pending => t,
                Ok(Some(t)) => {
                    log::debug!(
                        "task {}: no longer pending ({}); not starting it",
                        act.id,
                        t.status
                    );
                    return act.abandon(ctx);
                }
                Ok(None) => return act.abandon(ctx),
                Err(e) => {
                    log::error!("task {}: cannot start ({e})", act.id);
                    return act.abandon(ctx);
                }
            };
            let unit_id = act.unit.as_ref().map(|u| u.id.clone()).unwrap_or_default();
            act.persisted_version = task.version;
            act.durable = Some(Arc::new(task.clone()));
            let reason = format!("started on unit {unit_id}");
            let started = task.transition(TaskStatus::Running, now_ms(), "scheduler", Some(reason));
            let h = match started {
                Ok(h) => h,
                Err(e) => {
                    log::debug!("task {}: cannot start ({e})", act.id);
                    return act.abandon(ctx);
                }
            };
            task.unit_id = Some(unit_id);
            task.held = false;
            task.not_before = None;
            act.task = Some(Arc::new(task));
            act.held_events = Some(Vec::new());
            act.unsaved_history.push(h);
            act.start_clock(ctx);
            act.start_unit(ctx);
            // A task that ends within the window writes its start with its end.
            ctx.run_later(START_WRITE_WINDOW, |act, ctx| {
                if !act.unsaved_history.is_empty() && act.ending.is_none() {
                    let write = act.write_through(Vec::new(), ctx);
                    ctx.spawn(write.map(|_, _, _| ()));
                }
            });
        }));
    }

    /// The dispatch could not happen (the task changed meanwhile): free the slot.
    fn abandon(&mut self, ctx: &mut Context<Self>) {
        self.done = true;
        self.scheduler.do_send(TaskEnded {
            id: self.id,
            ended: Ended::Abandoned,
        });
        self.supervisor.do_send(TaskActorStopped { id: self.id });
        ctx.stop();
    }

    /// The task is still pending in the database (its start never became durable): free the
    /// slot and put it back in the queue.
    fn give_back(&mut self, task: Task, ctx: &mut Context<Self>) {
        self.done = true;
        self.scheduler.do_send(TaskEnded {
            id: self.id,
            ended: Ended::Retry(Box::new(task)),
        });
        self.supervisor.do_send(TaskActorStopped { id: self.id });
        ctx.stop();
    }

    fn adopt(&mut self, task: Task, unit: Option<UnitHandle>, ctx: &mut Context<Self>) {
        self.persisted_version = task.version;
        let status = task.status;
        let remote = task
            .unit_id
            .clone()
            .filter(|u| u != super::units::LocalUnit::ID && unit.is_none());
        // As recovered, the live task is the durable one: one copy for both.
        let task = Arc::new(task);
        self.durable = Some(task.clone());
        self.task = Some(task);
        match status {
            TaskStatus::Running | TaskStatus::Paused if remote.is_some() => {
                if status == TaskStatus::Running {
                    self.start_clock(ctx);
                }
                self.reclaim(remote.unwrap_or_default(), ctx);
            }
            TaskStatus::Running => {
                self.start_clock(ctx);
                self.log(
                    LogLevel::Info,
                    "resumed from its last checkpoint after a server restart".into(),
                );
                self.schedule_flush(ctx);
                match unit {
                    Some(u) => {
                        self.unit = Some(u);
                        self.start_unit(ctx);
                    }
                    None => self.acquire_and_start(ctx),
                }
            }
            TaskStatus::Paused => {}
            other => {
                log::warn!("task {}: adopted in status {other}; releasing", self.id);
                self.abandon(ctx);
            }
        }
    }

    /// After a server restart, waits for the remote unit the task ran on to come back with
    /// the work (up to one heartbeat timeout); otherwise the work goes on elsewhere from its
    /// checkpoint (at once if running, at resume if paused).
    fn reclaim(&mut self, unit_id: String, ctx: &mut Context<Self>) {
        let Some(attempt) = self.task.as_ref().map(|t| t.attempt) else {
            return;
        };
        let ask = self.shared.units.send(Reclaim {
            unit_id: unit_id.clone(),
            task_id: self.id,
            attempt,
            reporter: ctx.address().recipient(),
        });
        ctx.spawn(ask.into_actor(self).map(move |res, act, ctx| {
            let status = act.task.as_ref().map(|t| t.status);
            match res {
                Ok(Some((handle, execution))) => {
                    act.scheduler.do_send(AttachUnit {
                        id: act.id,
                        unit: handle.id.clone(),
                    });
                    if act.ending.is_some() {
                        handle.cancel.do_send(unitmsg::Cancel { task_id: act.id });
                    } else {
                        if status == Some(TaskStatus::Paused) {
                            handle.pause.do_send(unitmsg::Pause { task_id: act.id });
                        }
                        act.unit = Some(handle);
                        act.execution = Some(execution);
                        act.unit_stopped = false;
                        act.log(
                            LogLevel::Info,
                            format!("unit {unit_id} still runs this task after a server restart; carrying on there"),
                        );
                        act.schedule_flush(ctx);
                    }
                }
                _ if act.ending.is_some() => {}
                _ if status == Some(TaskStatus::Running) => {
                    act.log(
                        LogLevel::Info,
                        format!("unit {unit_id} did not come back with this task after a server restart; resuming from its last checkpoint"),
                    );
                    act.schedule_flush(ctx);
                    act.acquire_and_start(ctx);
                }
                _ => {}
            }
        }));
    }

    /// The unit lost the work: it goes on elsewhere from the last checkpoint (a paused task
    /// does so when it is resumed).
    pub(super) fn on_unit_lost(&mut self, reason: String, ctx: &mut Context<Self>) {
        self.unit_stopped = true;
        self.execution = None;
        self.unit = None;
        if self.ending.is_some() {
            return self.maybe_finalize(ctx);
        }
        if let Some(t) = hot(&mut self.task) {
            t.unit_id = None;
            t.touch(now_ms());
        }
        match self.task.as_ref().map(|t| t.status) {
            Some(TaskStatus::Running) => {
                self.log(
                    LogLevel::Warning,
                    format!("{reason}; resuming on another unit from the last checkpoint"),
                );
                self.schedule_flush(ctx);
                self.acquire_and_start(ctx);
            }
            Some(TaskStatus::Paused) => {
                self.log(
                    LogLevel::Warning,
                    format!("{reason}; on resume the task goes on from its last checkpoint on another unit"),
                );
                self.schedule_flush(ctx);
            }
            _ => {}
        }
    }

    /// Publishes an event of the work (progress, log, stall), or holds it until the start
    /// is durable and announced.
    pub(super) fn emit(&mut self, e: EventBody) {
        match self.held_events.as_mut() {
            Some(held) => held.push(e),
            None => {
                self.shared.events.publish(e);
            }
        }
    }

    /// Refuses a unit's report for another run than the current one.
    pub(super) fn current_run(&self, execution: Option<uuid::Uuid>) -> Result<(), ApiError> {
        match execution {
            Some(e) if Some(e) != self.execution => Err(ApiError::new(
                crate::error::ErrorCode::Conflict,
                format!("execution {e} is not the current run of this task (it moved to another unit); the report is refused"),
            )),
            _ => Ok(()),
        }
    }

    /// Asks the scheduler for a unit and starts the work there from its checkpoint.
    fn acquire_and_start(&mut self, ctx: &mut Context<Self>) {
        if self.acquiring {
            return;
        }
        let labels = self
            .task
            .as_ref()
            .map(|t| t.unit_labels.clone())
            .unwrap_or_default();
        self.acquiring = true;
        let ask = self.scheduler.send(AcquireUnit {
            id: self.id,
            labels,
        });
        ctx.spawn(ask.into_actor(self).map(|res, act, ctx| {
            act.acquiring = false;
            let wanted = act.ending.is_none()
                && act.unit.is_none()
                && act.task.as_ref().map(|t| t.status) == Some(TaskStatus::Running);
            match res {
                Ok(Some(unit)) if wanted => {
                    if let Some(t) = hot(&mut act.task) {
                        t.unit_id = Some(unit.id.clone());
                        t.touch(now_ms());
                    }
                    if act.waiting_for_unit.take().is_some() {
                        act.log(LogLevel::Info, format!("unit {} takes over", unit.id));
                    }
                    act.schedule_flush(ctx);
                    act.unit = Some(unit);
                    act.start_unit(ctx);
                }
                // Paused meanwhile: resume starts the work there. (Ended meanwhile: the
                // scheduler frees the slot with the rest when the task ends.)
                Ok(Some(unit)) if act.ending.is_none() && act.unit.is_none() => {
                    act.unit = Some(unit);
                }
                _ if wanted => {
                    // No unit takes this type now (the one that ran it went away): the task
                    // keeps running and waits for one; its timeout still counts.
                    if act.waiting_for_unit.is_none() {
                        act.waiting_for_unit = Some(Instant::now());
                        let t = act
                            .task
                            .as_ref()
                            .map(|t| t.task_type.clone())
                            .unwrap_or_default();
                        act.log(
                            LogLevel::Warning,
                            format!("no execution unit can run '{t}' tasks now; waiting for one"),
                        );
                        act.schedule_flush(ctx);
                    }
                    ctx.run_later(UNIT_RETRY, |act, ctx| act.acquire_and_start(ctx));
                }
                _ => {}
            }
        }));
    }

    fn log(&mut self, level: LogLevel, message: String) {
        let Some(task) = self.task.as_ref() else {
            return;
        };
        let at = now_ms();
        let event = EventBody::Log {
            task_id: task.id,
            batch_id: task.batch_id.clone(),
            task_type: task.task_type.clone(),
            level: level.as_str().into(),
            message: message.clone(),
            at: crate::domain::rfc3339(at),
        };
        self.pending_logs.push(LogLine {
            task_id: task.id,
            attempt: task.attempt,
            level,
            message,
            at,
        });
        self.emit(event);
    }

    /// Applies a progress report; returns whether anything changed.
    fn apply_progress(
        &mut self,
        progress: Option<f64>,
        stage: Option<String>,
        message: Option<String>,
        checkpoint: Option<serde_json::Value>,
    ) -> bool {
        let active = self.active_secs();
        let Some(task) = hot(&mut self.task) else {
            return false;
        };
        let mut changed = false;
        if let Some(p) = progress {
            if task.advance_progress(p) {
                changed = true;
                let (a0, p0) = *self.eta_origin.get_or_insert((active, task.progress));
                let by_rate = (task.progress > p0 && active > a0).then(|| {
                    let rate = (task.progress - p0) / (active - a0);
                    ((100.0 - task.progress) / rate).max(0.0)
                });
                task.eta_secs =
                    crate::domain::eta::blend(task.progress, active, by_rate, self.typical_secs);
            }
        }
        if stage.is_some() && stage != task.stage {
            task.stage = stage;
            changed = true;
        }
        if message.is_some() && message != task.message {
            task.message = message;
            changed = true;
        }
        if let Some(cp) = checkpoint {
            task.checkpoint = Some(cp);
            changed = true;
        }
        if changed {
            task.touch(now_ms());
            self.progress_seen();
        }
        changed
    }

    /// The attempt failed: failed, and back to pending after the retry delay if retries are left.
    fn fail(&mut self, error: String, ctx: &mut Context<Self>) {
        if self.ending.is_some() {
            return;
        }
        self.stop_clock(ctx);
        let by = self.unit_name();
        let Some(task) = hot(&mut self.task) else {
            return;
        };
        let now = now_ms();
        if task.status == TaskStatus::Paused {
            if let Ok(h) = task.transition(
                TaskStatus::Running,
                now,
                &by,
                Some("failed while paused".into()),
            ) {
                let _ = h;
            }
        }
        task.error = Some(error.clone());
        let mut history = Vec::new();
        match task.transition(TaskStatus::Failed, now, &by, Some(error)) {
            Ok(h) => history.push(h),
            Err(e) => {
                log::warn!("task {}: cannot fail ({e})", self.id);
                return;
            }
        }
        let ended = if task.has_retries_left() {
            let delay = task.retry_delay_secs(rand::random::<f64>());
            match task.schedule_retry(now, delay) {
                Ok(h) => {
                    history.push(h);
                    Ended::Retry(Box::new(task.clone()))
                }
                Err(_) => Ended::Failed,
            }
        } else {
            Ended::Failed
        };
        self.end_detached(ended, history, ctx);
    }

    /// Records the decided outcome; the returned future answers once it is durable. The
    /// actor ends when that has happened and the unit has stopped.
    fn end_with(
        &mut self,
        ended: Ended,
        history: Vec<Transition>,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<(), ApiError>> {
        self.ending = Some(ended);
        let slack = self.shared.config().kill_grace_secs;
        ctx.run_later(
            Duration::from_secs_f64(slack) + STOP_CONFIRM_SLACK,
            |act, ctx| {
                if !act.unit_stopped {
                    log::warn!(
                        "task {}: the unit did not confirm it stopped; finalizing anyway",
                        act.id
                    );
                    act.unit_stopped = true;
                    act.maybe_finalize(ctx);
                }
            },
        );
        let fut = self.write_through(history, ctx);
        Box::pin(fut.map(|res, act, ctx| {
            if res.is_ok() {
                act.final_committed = true;
                act.maybe_finalize(ctx);
            }
            res
        }))
    }

    fn end_detached(&mut self, ended: Ended, history: Vec<Transition>, ctx: &mut Context<Self>) {
        let fut = self.end_with(ended, history, ctx);
        ctx.spawn(fut.map(|_, _, _| ()));
    }

    fn maybe_finalize(&mut self, ctx: &mut Context<Self>) {
        if self.done || !self.final_committed || !self.unit_stopped {
            return;
        }
        let Some(ended) = self.ending.clone() else {
            return;
        };
        self.done = true;
        for w in self.run_end_waiters.drain(..) {
            let _ = w.send(());
        }
        if let Some(h) = self.flush.take() {
            ctx.cancel_future(h);
        }
        if !self.pending_logs.is_empty() {
            let fut = self.persist(Vec::new());
            actix::spawn(async move {
                if let Err(e) = fut.await {
                    log::error!("final log write failed: {e}");
                }
            });
        }
        self.scheduler.do_send(TaskEnded { id: self.id, ended });
        self.supervisor.do_send(TaskActorStopped { id: self.id });
    }

    fn on_unit_finished(&mut self, outcome: Outcome, ctx: &mut Context<Self>) {
        self.unit_stopped = true;
        if self.ending.is_some() {
            return self.maybe_finalize(ctx);
        }
        match outcome {
            Outcome::Success(result) => self.succeed(result, ctx),
            Outcome::Failed(e) => self.fail(e, ctx),
            Outcome::Cancelled => {
                let by = self.unit_name();
                if let Ok(fut) = self.cancel_by(by, "cancelled by the unit".into(), ctx) {
                    ctx.spawn(fut.map(|_, _, _| ()));
                }
            }
        }
    }

    fn succeed(&mut self, result: Option<serde_json::Value>, ctx: &mut Context<Self>) {
        self.stop_clock(ctx);
        let by = self.unit_name();
        let Some(task) = hot(&mut self.task) else {
            return;
        };
        let now = now_ms();
        let mut history = Vec::new();
        if task.status == TaskStatus::Paused {
            if let Ok(h) = task.transition(
                TaskStatus::Running,
                now,
                &by,
                Some("finished while pausing".into()),
            ) {
                history.push(h);
            }
        }
        if result.is_some() {
            task.result = result.and_then(Task::result_object);
        }
        match task.transition(TaskStatus::Success, now, &by, None) {
            Ok(h) => history.push(h),
            Err(e) => return log::warn!("task {}: cannot succeed ({e})", self.id),
        }
        self.end_detached(Ended::Success, history, ctx);
    }

    fn cancel_by(
        &mut self,
        by: String,
        reason: String,
        ctx: &mut Context<Self>,
    ) -> Result<ResponseActFuture<Self, Result<Task, ApiError>>, ApiError> {
        let task = hot(&mut self.task).ok_or_else(ApiError::internal)?;
        let left_output = task.status == TaskStatus::Paused && task.checkpoint.is_some();
        let h = task.transition(TaskStatus::Cancelled, now_ms(), &by, Some(reason))?;
        self.stop_clock(ctx);
        if let Some(unit) = self.unit.as_ref().filter(|_| !self.unit_stopped) {
            unit.cancel.do_send(unitmsg::Cancel { task_id: self.id });
        } else if self.unit.is_none() && left_output {
            // Paused across a server restart: no unit holds the work, but its output from
            // before the restart is on disk. A unit starts the job from its checkpoint and is
            // told at once to cancel it, which cleans up as any cancel does.
            self.unit_stopped = false;
            self.clean_up_on_a_unit(ctx);
        } else {
            self.unit_stopped = true;
        }
        let end = self.end_with(Ended::Cancelled, vec![h], ctx);
        Ok(Self::answered(end))
    }

    /// Starts the (cancelled) job on a unit only to cancel it there, so the unit removes what
    /// its earlier run left; the actor ends when the unit says it stopped, or gives up on it
    /// after the usual grace (see [`TaskActor::end_with`]).
    fn clean_up_on_a_unit(&mut self, ctx: &mut Context<Self>) {
        let labels = self
            .task
            .as_ref()
            .map(|t| t.unit_labels.clone())
            .unwrap_or_default();
        let ask = self.scheduler.send(AcquireUnit {
            id: self.id,
            labels,
        });
        ctx.spawn(ask.into_actor(self).map(|res, act, ctx| match res {
            Ok(Some(unit)) => {
                act.unit = Some(unit.clone());
                act.start_unit(ctx);
                unit.cancel.do_send(unitmsg::Cancel { task_id: act.id });
            }
            _ => {
                act.unit_stopped = true;
                act.maybe_finalize(ctx);
            }
        }));
    }

    fn on_timeout(&mut self, ctx: &mut Context<Self>) {
        if self.task.as_ref().map(|t| t.status) != Some(TaskStatus::Running)
            || self.ending.is_some()
        {
            return;
        }
        log::info!("task {} timed out", self.id);
        self.log(LogLevel::Error, "timed out; cancelling the work".into());
        if let Some(unit) = self.unit.as_ref().filter(|_| !self.unit_stopped) {
            unit.cancel.do_send(unitmsg::Cancel { task_id: self.id });
        }
        self.fail("timeout".into(), ctx);
    }
}

mod handlers;
mod live;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_writes_stretch_with_the_running_tasks() {
        assert_eq!(flush_interval(0), FLUSH_INTERVAL);
        assert_eq!(flush_interval(100), FLUSH_INTERVAL);
        assert_eq!(flush_interval(500), Duration::from_millis(500));
        assert_eq!(flush_interval(1000), FLUSH_INTERVAL_MAX);
        assert_eq!(flush_interval(50_000), FLUSH_INTERVAL_MAX);
    }
}
