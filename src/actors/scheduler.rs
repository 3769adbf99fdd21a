//! SchedulerActor: owns the pending tasks (queue entries of the pure
//! [`crate::scheduler::Scheduler`]), dispatches them to units through the Supervisor, wakes
//! itself for the next timer, cancels pending tasks and cascades failed dependencies.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use actix::prelude::*;
use serde::Serialize;

use super::supervisor::{RunTask, Supervisor};
use super::units::UnitHandle;
use super::{Routed, Shared, TaskCommand};
use crate::config::Config;
use crate::domain::{now_ms, Millis, Task, TaskId, TaskStatus, WaitingOn};
use crate::error::{ApiError, ErrorCode};
use crate::events::EventBody;
use crate::scheduler::{Active, Limits, Pending, Scheduler, UnitSlot, Waiting};
use crate::store::tasks as q;

/// How an active task ended, as far as scheduling cares.
#[derive(Clone, Debug)]
pub enum Ended {
    Success,
    /// Failed for good.
    Failed,
    Cancelled,
    /// Failed with retries left: back to pending (the task as stored).
    Retry(Box<Task>),
    /// Never started (the task changed before dispatch completed).
    Abandoned,
}

/// An active task is over: free what it held and react.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TaskEnded {
    pub id: TaskId,
    pub ended: Ended,
}

/// New or re-queued pending tasks, already stored.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue {
    pub tasks: Vec<Task>,
}

/// A command for a task that may be pending here.
#[derive(Message)]
#[rtype(result = "Routed")]
pub struct PendingCommand {
    pub id: TaskId,
    pub cmd: TaskCommand,
    pub by: String,
}

/// Why these pending tasks wait.
#[derive(Message)]
#[rtype(result = "HashMap<TaskId, Waiting>")]
pub struct Explain {
    pub ids: Vec<TaskId>,
}

/// A unit for an active task that has none (recovered, or its unit went away).
#[derive(Message)]
#[rtype(result = "Option<UnitHandle>")]
pub struct AcquireUnit {
    pub id: TaskId,
    pub labels: BTreeMap<String, String>,
}

/// A unit joins (or re-joins).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterUnit {
    pub slot: UnitSlot,
    pub handle: UnitHandle,
}

/// A unit is gone (offline or removed): it takes no work and holds no tasks any more.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnitGone {
    pub id: String,
}

/// A unit stops taking new work (drain, disconnected) or takes it again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetUnitAccepting {
    pub id: String,
    pub accepting: bool,
}

/// A recovered active task is running on this unit again (re-attached after a restart).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachUnit {
    pub id: TaskId,
    pub unit: String,
}

/// A running or paused task found at start-up holds its slot and mutex.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Activate {
    pub id: TaskId,
    pub active: Active,
}

/// New configuration: limits and strategy take effect on the next decision.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ApplyConfig(pub Config);

/// Wire the supervisor in (it is created after the scheduler).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetSupervisor(pub Addr<Supervisor>);

/// Counters for status pages and metrics.
#[derive(Message)]
#[rtype(result = "SchedulerStats")]
pub struct GetStats;

#[derive(Clone, Debug, Serialize, Default)]
pub struct SchedulerStats {
    pub strategy: String,
    pub pending: usize,
    pub ready: usize,
    pub active: usize,
    pub max_parallel_tasks: usize,
    pub queue_enabled: bool,
    pub units: Vec<UnitStat>,
}

/// A unit's load as the scheduler tracks it.
#[derive(Clone, Debug, Serialize)]
pub struct UnitStat {
    pub id: String,
    pub status: &'static str,
    pub load: usize,
    pub capacity: usize,
    pub task_types: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct DepsChecked(Vec<(TaskId, TaskStatus)>);

#[derive(Message)]
#[rtype(result = "()")]
struct CancelDoomed {
    ids: Vec<TaskId>,
    because: TaskId,
}

pub struct SchedulerActor {
    core: Scheduler,
    shared: Shared,
    supervisor: Option<Addr<Supervisor>>,
    handles: HashMap<String, UnitHandle>,
    wake: Option<(Millis, SpawnHandle)>,
    /// Batches waited on by each batch's tasks (dependency keys).
    batch_waits: HashMap<String, Vec<TaskId>>,
    /// Batches with `on_failure: cancel_remaining`.
    halt_on_failure: std::collections::HashSet<String>,
    admission_reason: Option<String>,
}

/// The policy's slice of the configuration.
pub fn limits_of(c: &Config) -> Limits {
    Limits {
        strategy: c.scheduling_strategy,
        max_parallel: c.max_parallel_tasks,
        type_limits: c.type_limits.clone(),
        ageing_ms: (c.priority_ageing_secs * 1000.0) as i64,
        queue_enabled: c.queue_enabled,
    }
}

/// What the policy needs of a stored pending task.
pub fn pending_of(t: &Task) -> Pending {
    let timer = [
        t.not_before.map(|at| (at, WaitingOn::RetryDelay)),
        t.run_at.map(|at| (at, WaitingOn::RunAt)),
    ]
    .into_iter()
    .flatten()
    .max_by_key(|(at, _)| *at);
    Pending {
        id: t.id,
        task_type: t.task_type.clone(),
        priority: t.priority,
        mutex: t.mutex.clone(),
        batch: t.batch_id.clone(),
        group: t
            .batch_id
            .clone()
            .or_else(|| t.created_by.clone())
            .unwrap_or_else(|| "api".into()),
        labels: t.unit_labels.clone(),
        held: t.held,
        wait_for: t.depends_on.clone(),
        not_before: timer,
    }
}

impl SchedulerActor {
    pub fn new(shared: Shared) -> Self {
        let limits = limits_of(&shared.config());
        SchedulerActor {
            core: Scheduler::new(limits),
            shared,
            supervisor: None,
            handles: HashMap::new(),
            wake: None,
            batch_waits: HashMap::new(),
            halt_on_failure: Default::default(),
            admission_reason: None,
        }
    }

    /// The policy's view of a stored pending task, with its batch's dependencies.
    fn pending(&self, t: &Task) -> Pending {
        let mut p = pending_of(t);
        if let Some(waits) = t.batch_id.as_ref().and_then(|b| self.batch_waits.get(b)) {
            p.wait_for.extend(waits.iter().copied());
        }
        p
    }

    /// Starts whatever may start now and sets the wake-up for the next timer.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let now = now_ms();
        self.core.fire_timers(now);
        if let Some(sup) = &self.supervisor {
            while let Some(d) = self.core.next_dispatch() {
                match self.handles.get(&d.unit) {
                    Some(unit) => sup.do_send(RunTask {
                        id: d.id,
                        unit: unit.clone(),
                    }),
                    None => {
                        log::error!("unit {} has no handle; releasing task {}", d.unit, d.id);
                        self.core.release(d.id);
                    }
                }
            }
        }
        let next = self.core.next_wakeup();
        if self.wake.as_ref().map(|(t, _)| *t) != next {
            if let Some((_, h)) = self.wake.take() {
                ctx.cancel_future(h);
            }
            if let Some(at) = next {
                let delay = Duration::from_millis((at - now).max(0) as u64);
                let h = ctx.run_later(delay, |act, ctx| {
                    act.wake = None;
                    act.pump(ctx);
                });
                self.wake = Some((at, h));
            }
        }
    }

    /// Cancels pending tasks whose dependency failed, then their dependents in turn.
    fn cancel_doomed(&mut self, ids: Vec<TaskId>, because: TaskId, ctx: &mut Context<Self>) {
        if ids.is_empty() {
            return;
        }
        let store = self.shared.store.clone();
        let reason = format!("dependency {because} failed");
        let work = async move {
            let mut done = Vec::new();
            for id in ids {
                let reason = reason.clone();
                let res = store
                    .write(move |c| {
                        q::modify(c, id, |t| {
                            t.transition(TaskStatus::Cancelled, now_ms(), "scheduler", Some(reason))
                                .map(|h| vec![h])
                        })
                    })
                    .await;
                match res {
                    Ok(Ok(task)) => done.push(task),
                    Ok(Err(e)) => log::debug!("dependent {id} not cancelled: {e}"),
                    Err(e) => log::error!("cancelling dependent {id} failed: {e}"),
                }
            }
            done
        };
        ctx.spawn(work.into_actor(self).map(|cancelled, act, ctx| {
            let now = now_ms();
            for t in cancelled {
                act.shared.events.publish(EventBody::status(
                    &t,
                    Some(TaskStatus::Pending),
                    Some("dependency failed".into()),
                    now,
                ));
                let next = act.core.dependency_finished(t.id, false, now);
                if !next.is_empty() {
                    ctx.notify(CancelDoomed {
                        ids: next,
                        because: t.id,
                    });
                }
            }
        }));
    }
}

impl Actor for SchedulerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.start_admission(ctx);
    }
}

pub mod batches;
mod handlers;
