//! Supervisor: owns one TaskActor per running or paused task (started under actix's
//! `Supervisor`, so a crashed one restarts and reloads from the database), creates them on
//! `RunTask` and at start-up (`Adopt`), and routes commands to them. Its directory of task
//! actors ([`ActiveTasks`]) is shared, so snapshot reads and "which of these run" go to the
//! actors without passing through its mailbox.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use actix::prelude::*;

use super::batch::{BatchActor, Refresh};
use super::commander::Commander;
use super::scheduler::SchedulerActor;
use super::task::{Command, Launch, Snapshot, TaskActor};
use super::units::UnitHandle;
use super::{Routed, Shared, TaskCommand};
use crate::domain::{Task, TaskId};

/// Start a dispatched task on a unit.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RunTask {
    pub id: TaskId,
    pub unit: UnitHandle,
}

/// Rebuild the actor of a task found running or paused at start-up.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Adopt {
    pub task: Task,
    pub unit: Option<UnitHandle>,
}

/// A command for a task that may be active here.
#[derive(Message)]
#[rtype(result = "Routed")]
pub struct Route {
    pub id: TaskId,
    pub cmd: TaskCommand,
    pub by: String,
}

/// A task actor is done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TaskActorStopped {
    pub id: TaskId,
}

/// Keep a batch's aggregate status: start its actor if it has none.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WatchBatch {
    pub id: String,
    /// A task of the batch reached a final status.
    pub ended: bool,
}

impl WatchBatch {
    /// The batch itself changed (created, paused, resumed, cancelled, restarted).
    pub fn changed(id: impl Into<String>) -> Self {
        WatchBatch {
            id: id.into(),
            ended: false,
        }
    }
}

/// A batch actor is done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct BatchActorStopped {
    pub id: String,
}

/// Every batch must recount (events were missed).
#[derive(Message)]
#[rtype(result = "()")]
struct RefreshAllBatches;

/// The supervisor's task actors by task, readable without a message: a read of a task asks
/// its actor for the hot copy directly, and a read of a task with no actor (most of them:
/// finished or still queued) goes straight to the store. Only the supervisor adds and removes.
#[derive(Clone, Default)]
pub struct ActiveTasks(Arc<Mutex<HashMap<TaskId, Addr<TaskActor>>>>);

impl ActiveTasks {
    fn lock(&self) -> MutexGuard<'_, HashMap<TaskId, Addr<TaskActor>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, id: &TaskId) -> Option<Addr<TaskActor>> {
        self.lock().get(id).cloned()
    }

    /// How many task actors there are (running or paused tasks).
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Which of these tasks have an actor (started, even if their start is not yet written).
    pub fn among(&self, ids: Vec<TaskId>) -> Vec<TaskId> {
        let map = self.lock();
        ids.into_iter().filter(|id| map.contains_key(id)).collect()
    }

    /// Waits (up to `limit`) until the task's current run has ended for good: its outcome
    /// durable and its unit stopped, having cleaned up after a cancel.
    pub async fn run_ended(&self, id: TaskId, limit: std::time::Duration) {
        let Some(addr) = self.get(&id) else {
            return;
        };
        if let Ok(Some(rx)) = addr.send(super::task::WhenRunEnds).await {
            let _ = tokio::time::timeout(limit, rx).await;
        }
    }

    /// The hot copy of an active task, if it has an actor.
    pub async fn peek(&self, id: TaskId) -> Option<Task> {
        let addr = self.get(&id)?;
        addr.send(Snapshot).await.ok().flatten()
    }

    /// The hot copies of those of these tasks that have an actor.
    pub async fn peek_many(&self, ids: &[TaskId]) -> Vec<Task> {
        let asks: Vec<_> = {
            let map = self.lock();
            ids.iter()
                .filter_map(|id| map.get(id))
                .map(|a| a.send(Snapshot))
                .collect()
        };
        futures_util::future::join_all(asks)
            .await
            .into_iter()
            .filter_map(|r| r.ok().flatten())
            .collect()
    }
}

pub struct Supervisor {
    tasks: ActiveTasks,
    batches: HashMap<String, Addr<BatchActor>>,
    shared: Shared,
    scheduler: Addr<SchedulerActor>,
}

impl Supervisor {
    pub fn new(shared: Shared, scheduler: Addr<SchedulerActor>, tasks: ActiveTasks) -> Self {
        Supervisor {
            tasks,
            batches: HashMap::new(),
            shared,
            scheduler,
        }
    }

    fn spawn(&mut self, id: TaskId, launch: Launch, ctx: &mut Context<Self>) {
        let shared = self.shared.clone();
        let scheduler = self.scheduler.clone();
        let me = ctx.address();
        let addr =
            actix::Supervisor::start(move |_| TaskActor::new(id, launch, shared, scheduler, me));
        self.tasks.lock().insert(id, addr);
    }
}

impl Supervisor {
    fn watch_batch(&mut self, id: String, ended: bool, ctx: &mut Context<Self>) {
        if let Some(addr) = self.batches.get(&id) {
            addr.do_send(Refresh { ended });
            return;
        }
        let commander = Commander {
            store: self.shared.store.clone(),
            scheduler: self.scheduler.clone(),
            supervisor: ctx.address(),
            active: self.tasks.clone(),
        };
        let addr = BatchActor::new(id.clone(), self.shared.clone(), commander).start();
        self.batches.insert(id, addr);
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    /// Follows the event bus so batch actors hear of their tasks' status changes.
    fn started(&mut self, ctx: &mut Context<Self>) {
        let mut events = self.shared.events.subscribe();
        let me = ctx.address();
        actix::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match events.recv().await {
                    Ok(ev) => {
                        if let crate::events::EventBody::Status {
                            batch_id: Some(b),
                            to,
                            ..
                        } = &ev.body
                        {
                            me.do_send(WatchBatch {
                                id: b.clone(),
                                ended: to.is_terminal(),
                            });
                        }
                    }
                    Err(RecvError::Lagged(_)) => me.do_send(RefreshAllBatches),
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }
}

/// Starts or pokes a batch's actor.
impl Handler<WatchBatch> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: WatchBatch, ctx: &mut Context<Self>) {
        self.watch_batch(msg.id, msg.ended, ctx);
    }
}

/// Drops a finished batch actor.
impl Handler<BatchActorStopped> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: BatchActorStopped, _: &mut Context<Self>) {
        self.batches.remove(&msg.id);
    }
}

/// Makes every batch actor recount.
impl Handler<RefreshAllBatches> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: RefreshAllBatches, _: &mut Context<Self>) {
        for addr in self.batches.values() {
            addr.do_send(Refresh::default());
        }
    }
}

/// Creates the TaskActor of a dispatched task.
impl Handler<RunTask> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: RunTask, ctx: &mut Context<Self>) {
        self.spawn(msg.id, Launch::Dispatch { unit: msg.unit }, ctx);
    }
}

/// Rebuilds the TaskActor of a recovered task.
impl Handler<Adopt> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: Adopt, ctx: &mut Context<Self>) {
        let id = msg.task.id;
        self.spawn(
            id,
            Launch::Adopt {
                task: Box::new(msg.task),
                unit: msg.unit,
            },
            ctx,
        );
    }
}

/// Forwards a command to the task's actor, if it has one.
impl Handler<Route> for Supervisor {
    type Result = ResponseFuture<Routed>;
    fn handle(&mut self, msg: Route, _: &mut Context<Self>) -> Self::Result {
        let Some(addr) = self.tasks.get(&msg.id) else {
            return Box::pin(async { Routed::NotHere });
        };
        Box::pin(async move {
            match addr
                .send(Command {
                    cmd: msg.cmd,
                    by: msg.by,
                })
                .await
            {
                Ok(r) => Routed::Done(r.map(Box::new)),
                Err(_) => Routed::NotHere,
            }
        })
    }
}

/// Drops a finished task actor.
impl Handler<TaskActorStopped> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: TaskActorStopped, _: &mut Context<Self>) {
        self.tasks.lock().remove(&msg.id);
    }
}
