//! The SchedulerActor's batch messages: registration (limits, pause, batch dependencies),
//! completion, bulk cancel and re-prioritization of pending tasks; and admission control.

use std::time::Duration;

use actix::prelude::*;

use super::*;
use crate::resources::Sampler;

/// A batch's scheduling facts: its running-task bound, whether it is paused, and the batches
/// it waits for (as dependency keys).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterBatch {
    pub id: String,
    pub limit: Option<usize>,
    pub paused: bool,
    pub waits: Vec<TaskId>,
    /// `on_failure: cancel_remaining`: a task failing for good stops the batch's dispatch at
    /// once (its actor then cancels the rest), so nothing starts in between.
    pub halt_on_failure: bool,
}

/// A batch finished: batches waiting for it may go (or are doomed), and its limits go away.
#[derive(Message)]
#[rtype(result = "()")]
pub struct BatchFinished {
    pub id: String,
    pub succeeded: bool,
}

/// Holds or releases a batch's pending tasks.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetBatchPaused {
    pub id: String,
    pub paused: bool,
}

/// Cancels these tasks if they are pending here; answers with the ones it cancelled.
#[derive(Message)]
#[rtype(result = "Vec<TaskId>")]
pub struct CancelPending {
    pub ids: Vec<TaskId>,
    pub by: String,
    pub reason: String,
}

/// New priority for pending tasks (already stored).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reprioritize {
    pub ids: Vec<TaskId>,
    pub priority: i32,
}

/// The dependency key of a batch: batches are waited on like tasks, by their UUID.
pub fn batch_key(id: &str) -> Option<TaskId> {
    id.parse().ok()
}

/// How often admission control samples CPU and memory.
const ADMISSION_INTERVAL: Duration = Duration::from_secs(1);

impl SchedulerActor {
    /// Samples CPU and memory when a threshold is set, and blocks new starts above it.
    pub(super) fn start_admission(&mut self, ctx: &mut Context<Self>) {
        let sampler = Sampler::new();
        ctx.run_interval(ADMISSION_INTERVAL, move |act, ctx| {
            let c = act.shared.config();
            if c.max_cpu_percent >= 100.0 && c.max_memory_percent >= 100.0 {
                if act.admission_reason.take().is_some() {
                    act.core.set_admission_block(None);
                    act.pump(ctx);
                }
                return;
            }
            let sampler = sampler.clone();
            let read = actix_rt::task::spawn_blocking(move || sampler.sample());
            ctx.spawn(read.into_actor(act).map(move |usage, act, ctx| {
                let Ok(u) = usage else { return };
                let reason = if u.memory_percent > c.max_memory_percent {
                    Some(format!(
                        "memory use {:.0}% is above max_memory_percent {}",
                        u.memory_percent, c.max_memory_percent
                    ))
                } else if u.cpu_percent > c.max_cpu_percent {
                    Some(format!(
                        "CPU use {:.0}% is above max_cpu_percent {}",
                        u.cpu_percent, c.max_cpu_percent
                    ))
                } else {
                    None
                };
                if reason != act.admission_reason {
                    act.admission_reason = reason.clone();
                    act.core.set_admission_block(reason);
                    act.pump(ctx);
                }
            }));
        });
    }
}

/// Records a batch's limits, pause and dependencies.
impl Handler<RegisterBatch> for SchedulerActor {
    type Result = ();
    fn handle(&mut self, msg: RegisterBatch, ctx: &mut Context<Self>) {
        self.core.set_batch_limit(&msg.id, msg.limit);
        self.core.set_batch_paused(&msg.id, msg.paused);
        if msg.halt_on_failure {
            self.halt_on_failure.insert(msg.id.clone());
        } else {
            self.halt_on_failure.remove(&msg.id);
        }
        if msg.waits.is_empty() {
            self.batch_waits.remove(&msg.id);
        } else {
            self.batch_waits.insert(msg.id, msg.waits);
        }
        self.pump(ctx);
    }
}

/// Releases or dooms the tasks of batches that waited for this one.
impl Handler<BatchFinished> for SchedulerActor {
    type Result = ();
    fn handle(&mut self, msg: BatchFinished, ctx: &mut Context<Self>) {
        self.core.forget_batch(&msg.id);
        self.batch_waits.remove(&msg.id);
        self.halt_on_failure.remove(&msg.id);
        if let Some(key) = batch_key(&msg.id) {
            let doomed = self.core.dependency_finished(key, msg.succeeded, now_ms());
            self.cancel_doomed(doomed, key, ctx);
        }
        self.pump(ctx);
    }
}

/// Pauses or resumes a batch's pending tasks.
impl Handler<SetBatchPaused> for SchedulerActor {
    type Result = ();
    fn handle(&mut self, msg: SetBatchPaused, ctx: &mut Context<Self>) {
        self.core.set_batch_paused(&msg.id, msg.paused);
        self.pump(ctx);
    }
}

/// Cancels pending tasks in bulk (batch cancel, `cancel_remaining`).
impl Handler<CancelPending> for SchedulerActor {
    type Result = ResponseActFuture<Self, Vec<TaskId>>;
    fn handle(&mut self, msg: CancelPending, _: &mut Context<Self>) -> Self::Result {
        let ids: Vec<TaskId> = msg
            .ids
            .into_iter()
            .filter(|id| self.core.remove(*id))
            .collect();
        let store = self.shared.store.clone();
        let (by, reason) = (msg.by, msg.reason);
        let work = async move {
            let mut done = Vec::new();
            let writes: Vec<_> = ids
                .iter()
                .map(|&id| {
                    let (by, reason) = (by.clone(), reason.clone());
                    store.write(move |c| {
                        q::modify(c, id, |t| {
                            t.transition(TaskStatus::Cancelled, now_ms(), &by, Some(reason))
                                .map(|h| vec![h])
                        })
                    })
                })
                .collect();
            for w in writes {
                if let Ok(Ok(t)) = w.await {
                    done.push(t);
                }
            }
            done
        };
        Box::pin(work.into_actor(self).map(|cancelled, act, ctx| {
            let now = now_ms();
            let mut ids = Vec::with_capacity(cancelled.len());
            for t in cancelled {
                act.shared.events.publish(EventBody::status(
                    &t,
                    Some(TaskStatus::Pending),
                    Some("cancelled".into()),
                    now,
                ));
                let doomed = act.core.dependency_finished(t.id, false, now);
                act.cancel_doomed(doomed, t.id, ctx);
                ids.push(t.id);
            }
            act.pump(ctx);
            ids
        }))
    }
}

/// Re-orders pending tasks after a priority change.
impl Handler<Reprioritize> for SchedulerActor {
    type Result = ();
    fn handle(&mut self, msg: Reprioritize, ctx: &mut Context<Self>) {
        for id in msg.ids {
            self.core.reprioritize(id, msg.priority);
        }
        self.pump(ctx);
    }
}
