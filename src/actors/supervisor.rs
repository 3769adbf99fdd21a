//! Supervisor: owns one TaskActor per running or paused task (started under actix's
//! `Supervisor`, so a crashed one restarts and reloads from the database), creates them on
//! `RunTask` and at start-up (`Adopt`), and routes commands and snapshot reads to them.

use std::collections::HashMap;

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

/// The hot copy of an active task, if it is active here.
#[derive(Message)]
#[rtype(result = "Option<Task>")]
pub struct Peek {
    pub id: TaskId,
}

/// The hot copies of those of these tasks that are active here.
#[derive(Message)]
#[rtype(result = "Vec<Task>")]
pub struct PeekMany {
    pub ids: Vec<TaskId>,
}

/// Which of these tasks are active here (started, even if their start is not yet written).
#[derive(Message)]
#[rtype(result = "Vec<TaskId>")]
pub struct ActiveAmong {
    pub ids: Vec<TaskId>,
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

/// How many task actors are alive.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountActive;

pub struct Supervisor {
    tasks: HashMap<TaskId, Addr<TaskActor>>,
    batches: HashMap<String, Addr<BatchActor>>,
    shared: Shared,
    scheduler: Addr<SchedulerActor>,
}

impl Supervisor {
    pub fn new(shared: Shared, scheduler: Addr<SchedulerActor>) -> Self {
        Supervisor {
            tasks: HashMap::new(),
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
        self.tasks.insert(id, addr);
    }
}

impl Supervisor {
    fn watch_batch(&mut self, id: String, ctx: &mut Context<Self>) {
        if let Some(addr) = self.batches.get(&id) {
            addr.do_send(Refresh);
            return;
        }
        let commander = Commander {
            store: self.shared.store.clone(),
            scheduler: self.scheduler.clone(),
            supervisor: ctx.address(),
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
                            batch_id: Some(b), ..
                        } = &ev.body
                        {
                            me.do_send(WatchBatch { id: b.clone() });
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
        self.watch_batch(msg.id, ctx);
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
            addr.do_send(Refresh);
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
        let Some(addr) = self.tasks.get(&msg.id).cloned() else {
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

/// Reads the hot copy of an active task.
impl Handler<Peek> for Supervisor {
    type Result = ResponseFuture<Option<Task>>;
    fn handle(&mut self, msg: Peek, _: &mut Context<Self>) -> Self::Result {
        let addr = self.tasks.get(&msg.id).cloned();
        Box::pin(async move {
            match addr {
                Some(a) => a.send(Snapshot).await.ok().flatten(),
                None => None,
            }
        })
    }
}

/// Reads the hot copies of the active ones among many tasks.
impl Handler<PeekMany> for Supervisor {
    type Result = ResponseFuture<Vec<Task>>;
    fn handle(&mut self, msg: PeekMany, _: &mut Context<Self>) -> Self::Result {
        let asks: Vec<_> = msg
            .ids
            .iter()
            .filter_map(|id| self.tasks.get(id))
            .map(|a| a.send(Snapshot))
            .collect();
        Box::pin(async move {
            futures_util::future::join_all(asks)
                .await
                .into_iter()
                .filter_map(|r| r.ok().flatten())
                .collect()
        })
    }
}

/// Filters the ids down to the tasks with an actor.
impl Handler<ActiveAmong> for Supervisor {
    type Result = MessageResult<ActiveAmong>;
    fn handle(&mut self, msg: ActiveAmong, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            msg.ids
                .into_iter()
                .filter(|id| self.tasks.contains_key(id))
                .collect(),
        )
    }
}

/// Drops a finished task actor.
impl Handler<TaskActorStopped> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: TaskActorStopped, _: &mut Context<Self>) {
        self.tasks.remove(&msg.id);
    }
}

/// Counts live task actors.
impl Handler<CountActive> for Supervisor {
    type Result = usize;
    fn handle(&mut self, _: CountActive, _: &mut Context<Self>) -> usize {
        self.tasks.len()
    }
}
