//! BatchActor: one per live batch, owned by the Supervisor. It keeps the batch's aggregate
//! status true to its tasks (recounting them from the database whenever one of them
//! changes, with a short pause between recounts, cut short once every task counted live has
//! been heard to end), applies `on_failure: cancel_remaining`, and when the batch is over
//! records it, announces it, and releases batches waiting on it.

use std::time::Duration;

use actix::prelude::*;

use super::commander::Commander;
use super::scheduler::batches::BatchFinished;
use super::supervisor::BatchActorStopped;
use super::Shared;
use crate::domain::batch::{Batch, BatchStatus, Counts, OnFailure};
use crate::domain::{now_ms, rfc3339};
use crate::events::EventBody;
use crate::store::batches as qb;

/// Recount the batch's tasks: one of them changed (`ended`: it reached a final status), or
/// the batch itself did.
#[derive(Message, Default)]
#[rtype(result = "()")]
pub struct Refresh {
    pub ended: bool,
}

/// The shortest pause between two recounts; the pause is also at least twice as long as the
/// last recount took, so a large batch spends at most a third of a reader on its counts
/// while a small one sees its last task finish within milliseconds.
const REFRESH_PAUSE_MIN: Duration = Duration::from_millis(5);
const REFRESH_PAUSE_MAX: Duration = Duration::from_millis(200);

pub struct BatchActor {
    id: String,
    shared: Shared,
    commander: Commander,
    busy: bool,
    dirty: bool,
    /// The pause after the last recount, while it runs.
    pause: Option<SpawnHandle>,
    /// Tasks the last recount found not finished.
    live: i64,
    /// Tasks heard to finish since the last recount began (a task counted twice only
    /// brings the next recount forward).
    ended_since: i64,
    cancel_issued: bool,
    done: bool,
}

impl BatchActor {
    pub fn new(id: String, shared: Shared, commander: Commander) -> Self {
        BatchActor {
            id,
            shared,
            commander,
            busy: false,
            dirty: false,
            pause: None,
            live: i64::MAX,
            ended_since: 0,
            cancel_issued: false,
            done: false,
        }
    }

    /// Decides from fresh counts: starts, failure policy, the aggregate status, the end.
    /// Every task the last recount found live has since been heard to end: the batch may be
    /// over, and the next recount should not wait out the pause.
    fn all_live_ended(&self) -> bool {
        self.live > 0 && self.ended_since >= self.live
    }

    fn apply(&mut self, batch: Batch, counts: Counts, ctx: &mut Context<Self>) {
        if batch.on_failure == OnFailure::CancelRemaining
            && counts.failed > 0
            && counts.live() > 0
            && !self.cancel_issued
        {
            self.cancel_issued = true;
            let commander = self.commander.clone();
            let id = self.id.clone();
            actix::spawn(async move {
                let reason = "a task of the batch failed (on_failure: cancel_remaining)";
                if let Err(e) = commander.cancel_batch(&id, "batch", reason).await {
                    log::error!("batch {id}: cancelling the rest failed: {e}");
                }
            });
        }
        let status = counts.status(batch.paused, batch.cancelled);
        let started =
            counts.running + counts.paused + counts.success + counts.failed + counts.cancelled > 0;
        if status == batch.status && (batch.started_at.is_some() || !started) {
            if status.is_terminal() && !self.done {
                self.done = true;
                self.commander.supervisor.do_send(BatchActorStopped {
                    id: self.id.clone(),
                });
                ctx.stop();
            }
            return;
        }
        let id = self.id.clone();
        let now = now_ms();
        let progress = counts.progress();
        let write = self.shared.store.write(move |c| {
            qb::modify(c, &id, |b| {
                let from = b.status;
                b.status = status;
                b.updated_at = now;
                b.version += 1;
                if started && b.started_at.is_none() {
                    b.started_at = Some(now);
                }
                if status.is_terminal() {
                    b.finished_at.get_or_insert(now);
                } else {
                    // Running again after a restart.
                    b.finished_at = None;
                }
                from
            })
        });
        ctx.spawn(write.into_actor(self).map(move |res, act, ctx| match res {
            Ok((b, from)) => {
                if from != b.status {
                    act.shared.events.publish(EventBody::Batch {
                        batch_id: b.id.clone(),
                        from: Some(from.as_str().into()),
                        to: b.status.as_str().into(),
                        progress,
                        at: rfc3339(now),
                        callback_url: b.callback_url.clone(),
                    });
                }
                if b.status.is_terminal() && !act.done {
                    act.done = true;
                    act.commander.scheduler.do_send(BatchFinished {
                        id: b.id.clone(),
                        succeeded: b.status == BatchStatus::Success,
                    });
                    act.commander
                        .supervisor
                        .do_send(BatchActorStopped { id: b.id });
                    ctx.stop();
                }
            }
            Err(e) => log::error!("batch {}: status write failed: {e}", act.id),
        }));
    }
}

impl Actor for BatchActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.notify(Refresh::default());
    }
}

/// Recounts (coalescing bursts of changes into one read per pause).
impl Handler<Refresh> for BatchActor {
    type Result = ();

    fn handle(&mut self, msg: Refresh, ctx: &mut Context<Self>) {
        if self.done {
            return;
        }
        if msg.ended {
            self.ended_since += 1;
        }
        if self.busy {
            self.dirty = true;
            // The last live task has ended: the batch may be over, so its end need not wait
            // out the pause.
            if self.all_live_ended() {
                if let Some(h) = self.pause.take() {
                    ctx.cancel_future(h);
                    self.busy = false;
                    self.dirty = false;
                    ctx.notify(Refresh::default());
                }
            }
            return;
        }
        self.busy = true;
        self.ended_since = 0;
        let id = self.id.clone();
        let began = std::time::Instant::now();
        let read = self.shared.store.read(move |c| {
            let b = qb::get(c, &id)?;
            let counts = qb::counts(c, &id)?;
            Ok(b.map(|b| (b, counts)))
        });
        ctx.spawn(read.into_actor(self).map(move |res, act, ctx| {
            match res {
                Ok(Some((batch, counts))) => {
                    act.live = counts.pending + counts.running + counts.paused;
                    log::debug!(
                        "batch {}: recounted in {:?}, {} live (at {})",
                        act.id,
                        began.elapsed(),
                        act.live,
                        now_ms()
                    );
                    act.apply(batch, counts, ctx)
                }
                Ok(None) => {
                    act.done = true;
                    act.commander
                        .supervisor
                        .do_send(BatchActorStopped { id: act.id.clone() });
                    ctx.stop();
                }
                Err(e) => log::error!("batch {}: recount failed: {e}", act.id),
            }
            if act.dirty && act.all_live_ended() {
                act.busy = false;
                act.dirty = false;
                ctx.notify(Refresh::default());
                return;
            }
            let pause = (began.elapsed() * 2).clamp(REFRESH_PAUSE_MIN, REFRESH_PAUSE_MAX);
            act.pause = Some(ctx.run_later(pause, |act, ctx| {
                act.pause = None;
                act.busy = false;
                if std::mem::take(&mut act.dirty) {
                    ctx.notify(Refresh::default());
                }
            }));
        }));
    }
}
