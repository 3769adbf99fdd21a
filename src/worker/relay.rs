//! Relay: the worker's bookkeeping between its in-process unit and the server. It starts the
//! jobs the server sends on the worker's [`LocalUnit`], receives their reports, and forwards
//! them while connected. While the connection is down it keeps each job's latest progress
//! (with its checkpoint), a bounded tail of its logs, and its final status, and sends them
//! after the next registration for the jobs that are still the worker's.

use std::collections::HashMap;

use actix::prelude::*;
use tokio::sync::mpsc;

use crate::actors::units::{
    Cancel, GetStatus, LocalUnit, Pause, ReportBody, Resume, Start, UnitReport,
};
use crate::domain::TaskId;
use crate::units::wire::{self, FromWorker, JobRef, ToWorker};
use crate::units::{Job, Outcome};

/// Log lines kept per job while disconnected.
const MAX_BUFFERED_LOGS: usize = 1000;

/// A job the worker holds.
struct Held {
    job: JobRef,
    /// The latest progress not yet sent.
    progress: Option<FromWorker>,
    logs: Vec<FromWorker>,
    /// The final status not yet sent.
    finished: Option<FromWorker>,
}

/// Start a job from the server.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Track(pub Job);

/// A control message from the server about one job.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Control(pub ToWorker);

/// The connection is registered: frames go to `tx`; `drop` are jobs no longer ours.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attached {
    pub tx: mpsc::UnboundedSender<String>,
    pub drop: Vec<JobRef>,
}

/// The connection is gone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detached;

/// The jobs held, for the registration message.
#[derive(Message)]
#[rtype(result = "Vec<JobRef>")]
pub struct HeldJobs;

/// Stop every job (the unit was deregistered).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CancelAll;

pub struct Relay {
    unit: Addr<LocalUnit>,
    jobs: HashMap<TaskId, Held>,
    out: Option<mpsc::UnboundedSender<String>>,
}

impl Relay {
    pub fn new(unit: Addr<LocalUnit>) -> Self {
        Relay {
            unit,
            jobs: HashMap::new(),
            out: None,
        }
    }

    /// Sends a frame now; false when disconnected.
    fn send(&self, msg: &FromWorker) -> bool {
        let Some(out) = &self.out else {
            return false;
        };
        match serde_json::to_string(msg) {
            Ok(text) => out.send(text).is_ok(),
            Err(e) => {
                log::error!("cannot encode a message for the server: {e}");
                false
            }
        }
    }

    /// Sends what was kept for a job while disconnected; forgets a job whose end was sent.
    fn flush(&mut self, task_id: TaskId) {
        let Some(held) = self.jobs.get_mut(&task_id) else {
            return;
        };
        let mut pending: Vec<FromWorker> = held.progress.take().into_iter().collect();
        pending.append(&mut held.logs);
        let finished = held.finished.take();
        pending.extend(finished.clone());
        for msg in &pending {
            if !self.send(msg) {
                return;
            }
        }
        if finished.is_some() {
            self.jobs.remove(&task_id);
        }
    }

    fn on_report(&mut self, task_id: TaskId, body: ReportBody) {
        let Some(held) = self.jobs.get_mut(&task_id) else {
            return;
        };
        let job = held.job.clone();
        match body {
            ReportBody::Report(r) => {
                let Some(msg) = wire::report(&job, r) else {
                    return;
                };
                if self.send(&msg) {
                    return;
                }
                let Some(held) = self.jobs.get_mut(&task_id) else {
                    return;
                };
                match msg {
                    FromWorker::Log { .. } if held.logs.len() < MAX_BUFFERED_LOGS => {
                        held.logs.push(msg)
                    }
                    FromWorker::Log { .. } => {}
                    progress => held.progress = Some(merge(held.progress.take(), progress)),
                }
            }
            ReportBody::Finished(outcome) => {
                log_outcome(&job, &outcome);
                let msg = wire::finished(&job, &outcome);
                if self.send(&msg) {
                    self.jobs.remove(&task_id);
                } else if let Some(held) = self.jobs.get_mut(&task_id) {
                    held.finished = Some(msg);
                }
            }
            ReportBody::Lost(_) => {}
        }
    }
}

fn log_outcome(job: &JobRef, outcome: &Outcome) {
    match outcome {
        Outcome::Success(_) => log::info!("task {} succeeded", job.task_id),
        Outcome::Failed(e) => log::info!("task {} failed: {e}", job.task_id),
        Outcome::Cancelled => log::info!("task {} cancelled", job.task_id),
    }
}

/// Folds a newer progress report into an older one (later fields win, absent ones keep).
fn merge(old: Option<FromWorker>, new: FromWorker) -> FromWorker {
    match (old, new) {
        (
            Some(FromWorker::Progress {
                progress: p0,
                stage: s0,
                message: m0,
                checkpoint: c0,
                resources: r0,
                ..
            }),
            FromWorker::Progress {
                task_id,
                execution_id,
                progress,
                stage,
                message,
                checkpoint,
                resources,
            },
        ) => FromWorker::Progress {
            task_id,
            execution_id,
            progress: progress.or(p0),
            stage: stage.or(s0),
            message: message.or(m0),
            checkpoint: checkpoint.or(c0),
            resources: resources.or(r0),
        },
        (_, new) => new,
    }
}

impl Actor for Relay {
    type Context = Context<Self>;
}

/// Starts the job on the worker's unit; a refusal is reported as a failure at once.
impl Handler<Track> for Relay {
    type Result = ();
    fn handle(&mut self, msg: Track, ctx: &mut Context<Self>) {
        let job = msg.0;
        let r = JobRef {
            task_id: job.task_id,
            attempt: job.attempt,
            execution_id: job.execution_id,
        };
        log::info!("running task {} ({})", job.task_id, job.task_type);
        self.jobs.insert(
            job.task_id,
            Held {
                job: r.clone(),
                progress: None,
                logs: Vec::new(),
                finished: None,
            },
        );
        let start = self.unit.send(Start {
            job,
            reporter: ctx.address().recipient(),
        });
        ctx.spawn(start.into_actor(self).map(move |res, act, _| {
            let refused = match res {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e,
                Err(e) => e.to_string(),
            };
            act.on_report(r.task_id, ReportBody::Finished(Outcome::Failed(refused)));
        }));
    }
}

/// Reports from the worker's unit.
impl Handler<UnitReport> for Relay {
    type Result = ();
    fn handle(&mut self, msg: UnitReport, _: &mut Context<Self>) {
        let current = self
            .jobs
            .get(&msg.task_id)
            .is_some_and(|h| h.job.execution_id == msg.execution_id);
        if current {
            self.on_report(msg.task_id, msg.body);
        }
    }
}

/// Pause, resume, cancel, status and drop of one job.
impl Handler<Control> for Relay {
    type Result = ();
    fn handle(&mut self, msg: Control, ctx: &mut Context<Self>) {
        let (task_id, execution_id) = match &msg.0 {
            ToWorker::Pause {
                task_id,
                execution_id,
            }
            | ToWorker::Resume {
                task_id,
                execution_id,
            }
            | ToWorker::Cancel {
                task_id,
                execution_id,
            }
            | ToWorker::Status {
                task_id,
                execution_id,
            }
            | ToWorker::Drop {
                task_id,
                execution_id,
            } => (*task_id, *execution_id),
            _ => return,
        };
        if self
            .jobs
            .get(&task_id)
            .is_none_or(|h| h.job.execution_id != execution_id)
        {
            return;
        }
        match msg.0 {
            ToWorker::Pause { .. } => self.unit.do_send(Pause { task_id }),
            ToWorker::Resume { .. } => self.unit.do_send(Resume { task_id }),
            ToWorker::Cancel { .. } => self.unit.do_send(Cancel { task_id }),
            ToWorker::Drop { .. } => {
                log::info!("dropping task {task_id}: the server moved it elsewhere");
                self.jobs.remove(&task_id);
                self.unit.do_send(Cancel { task_id });
            }
            ToWorker::Status { .. } => {
                let ask = self.unit.send(GetStatus { task_id });
                ctx.spawn(ask.into_actor(self).map(move |res, act, _| {
                    let state = match res {
                        Ok(Some(s)) => s.state,
                        _ => return,
                    };
                    act.send(&FromWorker::Status {
                        task_id,
                        execution_id,
                        status: if state == "paused" {
                            "paused"
                        } else {
                            "running"
                        }
                        .into(),
                        result: None,
                        error_message: None,
                    });
                }));
            }
            _ => {}
        }
    }
}

/// A registered connection: drop what moved away, then send what was kept.
impl Handler<Attached> for Relay {
    type Result = ();
    fn handle(&mut self, msg: Attached, _: &mut Context<Self>) {
        self.out = Some(msg.tx);
        for d in msg.drop {
            if self
                .jobs
                .get(&d.task_id)
                .is_some_and(|h| h.job.execution_id == d.execution_id)
            {
                log::info!(
                    "dropping task {}: it moved to another unit while we were away",
                    d.task_id
                );
                self.jobs.remove(&d.task_id);
                self.unit.do_send(Cancel { task_id: d.task_id });
            }
        }
        let ids: Vec<TaskId> = self.jobs.keys().copied().collect();
        for id in ids {
            self.flush(id);
        }
    }
}

/// Keeps reports until the next connection.
impl Handler<Detached> for Relay {
    type Result = ();
    fn handle(&mut self, _: Detached, _: &mut Context<Self>) {
        self.out = None;
    }
}

/// The jobs held now.
impl Handler<HeldJobs> for Relay {
    type Result = MessageResult<HeldJobs>;
    fn handle(&mut self, _: HeldJobs, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.jobs.values().map(|h| h.job.clone()).collect())
    }
}

/// Stops every job and forgets it.
impl Handler<CancelAll> for Relay {
    type Result = ();
    fn handle(&mut self, _: CancelAll, _: &mut Context<Self>) {
        for (task_id, _) in self.jobs.drain() {
            self.unit.do_send(Cancel { task_id });
        }
    }
}
