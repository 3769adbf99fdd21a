//! The TaskActor's live view beyond the state machine: the history half of the ETA and
//! stall detection (a running task silent for `stall_timeout_secs` is reported once per
//! stall with a `stalled` event, and shows `stalled_since` until progress resumes).

use std::time::{Duration, Instant};

use actix::prelude::*;

use super::{hot, TaskActor};
use crate::actors::Typical;
use crate::domain::{now_ms, rfc3339, LogLevel, TaskStatus};
use crate::events::EventBody;

/// Bounds of the stall check's period (a quarter of the stall timeout).
const MIN_CHECK: Duration = Duration::from_millis(50);
const MAX_CHECK: Duration = Duration::from_secs(5);

impl TaskActor {
    /// The clock (re)started: progress silence counts from now; check for stalls; learn
    /// how long this type usually takes (once).
    pub(super) fn watch_progress(&mut self, ctx: &mut Context<Self>) {
        self.last_progress = Some(Instant::now());
        if self.stall_check.is_none() {
            let timeout = self.shared.config().stall_timeout_secs;
            let period =
                Duration::from_secs_f64((timeout / 4.0).max(0.0)).clamp(MIN_CHECK, MAX_CHECK);
            self.stall_check = Some(ctx.run_interval(period, |act, _| act.check_stall()));
        }
        self.learn_typical(ctx);
    }

    /// Learns how long this type usually takes, once: from the shared cache, or by reading
    /// it (one task per type reads; the others look again at their next progress).
    pub(super) fn learn_typical(&mut self, ctx: &mut Context<Self>) {
        if self.typical_known {
            return;
        }
        let Some(ty) = self.task.as_ref().map(|t| t.task_type.clone()) else {
            return;
        };
        match self.shared.typical.claim(&ty) {
            Typical::Known(t) => {
                self.typical_known = true;
                self.typical_secs = t;
            }
            Typical::Wait => {}
            Typical::Read => {
                self.typical_known = true;
                let key = ty.clone();
                let read = self
                    .shared
                    .store
                    .read(move |c| crate::store::events::typical_secs(c, &key));
                ctx.spawn(read.into_actor(self).map(move |res, act, _| match res {
                    Ok(t) => {
                        act.shared.typical.put(ty, t);
                        act.typical_secs = t;
                    }
                    Err(e) => {
                        act.shared.typical.release(&ty);
                        log::warn!("task {}: no duration history ({e})", act.id);
                    }
                }));
            }
        }
    }

    /// Progress arrived: the task is no longer stalled.
    pub(super) fn progress_seen(&mut self) {
        self.last_progress = Some(Instant::now());
        if let Some(t) = hot(&mut self.task) {
            t.stalled_since = None;
        }
    }

    fn check_stall(&mut self) {
        let Some(last) = self.last_progress else {
            return;
        };
        if self.running_since.is_none() || self.ending.is_some() {
            return; // paused or finishing: silence is expected
        }
        let timeout = self.shared.config().stall_timeout_secs;
        let silent = last.elapsed();
        let Some(task) = hot(&mut self.task) else {
            return;
        };
        if task.status != TaskStatus::Running
            || task.stalled_since.is_some()
            || silent.as_secs_f64() < timeout
        {
            return;
        }
        let now = now_ms();
        let since = now - silent.as_millis() as i64;
        task.stalled_since = Some(since);
        let event = EventBody::Stalled {
            task_id: task.id,
            batch_id: task.batch_id.clone(),
            task_type: task.task_type.clone(),
            since: rfc3339(since),
            at: rfc3339(now),
        };
        self.emit(event);
        self.log(
            LogLevel::Warning,
            format!("stalled: no progress for {:.0} s", silent.as_secs_f64()),
        );
    }
}
