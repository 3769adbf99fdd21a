//! RemoteUnit: the proxy actor of one remote execution unit — a `steward worker` connected over
//! WebSocket, or an HTTP-style unit (seed 004 §8). Task actors reach it with the messages every
//! unit takes (`Start`, `Pause`, `Resume`, `Cancel`, `GetStatus`); it turns them into the wire
//! protocol of [`crate::units::wire`] and turns the unit's reports back into `UnitReport`s. It
//! lives as long as the unit is registered, across reconnects, so the handles task actors hold
//! stay valid; only reports of the executions it handed out get through (stale ones are
//! refused and the unit is told to drop that work).

mod http;

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::unit_manager::{Beat, UnitManager, WorkerDisconnected};
use super::units::{Cancel, GetStatus, JobStatus, Pause, ReportBody, Resume, Start, UnitReport};
use crate::domain::TaskId;
use crate::units::wire::{self, Execute, FromWorker, JobNews, JobRef, ToWorker};
use crate::units::Outcome;

/// A worker connection: its number (a later connection replaces an earlier one) and the
/// queue of frames its writer sends.
pub struct Link {
    pub conn: u64,
    pub tx: mpsc::Sender<String>,
}

/// How steward reaches the unit.
pub enum Transport {
    /// A worker connected over WebSocket; `None` while it is away.
    Socket(Option<Link>),
    /// An HTTP-style unit: steward calls `{endpoint}/execute`, `/pause/{id}`, …
    Http { endpoint: String, base_url: String },
}

struct RemoteJob {
    attempt: i32,
    execution_id: Uuid,
    reporter: Recipient<UnitReport>,
    state: &'static str,
}

impl RemoteJob {
    fn send(&self, task_id: TaskId, body: ReportBody) {
        self.reporter.do_send(UnitReport {
            task_id,
            attempt: self.attempt,
            execution_id: self.execution_id,
            body,
        });
    }
}

/// A task actor, rebuilt after a server restart, waiting for its unit to come back with the work.
struct WaitingReclaim {
    task_id: TaskId,
    attempt: i32,
    reporter: Recipient<UnitReport>,
    reply: oneshot::Sender<Option<Uuid>>,
}

/// A worker connection takes over the unit; answers the reported jobs it must drop.
#[derive(Message)]
#[rtype(result = "Vec<JobRef>")]
pub struct Attach {
    pub link: Link,
    pub jobs: Vec<JobRef>,
}

/// A worker connection ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach {
    pub conn: u64,
}

/// A message from the worker on connection `conn`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FromLink {
    pub conn: u64,
    pub msg: FromWorker,
}

/// The unit went offline or was removed: every job it held goes on elsewhere. With
/// `farewell`, the worker is told so and disconnected.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LoseAll {
    pub reason: String,
    pub farewell: Option<ToWorker>,
}

/// Whether the unit still runs this attempt of the task (after a server restart); waits up to
/// `wait` for a disconnected worker to come back and say so.
#[derive(Message)]
#[rtype(result = "Option<Uuid>")]
pub struct ReclaimJob {
    pub task_id: TaskId,
    pub attempt: i32,
    pub reporter: Recipient<UnitReport>,
    pub wait: Duration,
}

/// Jobs taken from an HTTP unit while it was away (told at its next heartbeat).
#[derive(Message)]
#[rtype(result = "Vec<JobRef>")]
pub struct TakeStale;

/// A frame for the worker (drain).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Tell(pub ToWorker);

pub struct RemoteUnit {
    id: String,
    transport: Transport,
    jobs: HashMap<TaskId, RemoteJob>,
    reclaims: Vec<WaitingReclaim>,
    /// Jobs taken from this unit while it was away; an HTTP unit hears of them at its next
    /// heartbeat.
    stale: Vec<JobRef>,
    manager: Addr<UnitManager>,
}

impl RemoteUnit {
    pub fn new(id: String, transport: Transport, manager: Addr<UnitManager>) -> Self {
        RemoteUnit {
            id,
            transport,
            jobs: HashMap::new(),
            reclaims: Vec::new(),
            stale: Vec::new(),
            manager,
        }
    }

    /// Queues a frame for the connected worker; false when there is none or it is congested.
    fn tell(&self, msg: &ToWorker) -> bool {
        let Transport::Socket(Some(link)) = &self.transport else {
            return false;
        };
        match serde_json::to_string(msg) {
            Ok(text) => link.tx.try_send(text).is_ok(),
            Err(e) => {
                log::error!("unit {}: cannot encode a frame: {e}", self.id);
                false
            }
        }
    }

    fn job_ref(task_id: TaskId, j: &RemoteJob) -> JobRef {
        JobRef {
            task_id,
            attempt: j.attempt,
            execution_id: j.execution_id,
        }
    }

    /// The job ended on the unit: report it and forget it.
    fn finish(&mut self, task_id: TaskId, outcome: Outcome) {
        if let Some(job) = self.jobs.remove(&task_id) {
            job.send(task_id, ReportBody::Finished(outcome));
        }
    }

    fn on_job_message(&mut self, msg: FromWorker) {
        let Some((task_id, execution_id)) = msg.job() else {
            return;
        };
        let current = self
            .jobs
            .get(&task_id)
            .is_some_and(|j| j.execution_id == execution_id);
        if !current {
            log::info!(
                "unit {}: refused a report for task {task_id} from a stale run ({execution_id})",
                self.id
            );
            self.tell(&ToWorker::Drop {
                task_id,
                execution_id,
            });
            return;
        }
        match wire::job_news(msg) {
            Ok(Some(JobNews::Reports(reports))) => {
                if let Some(job) = self.jobs.get(&task_id) {
                    for r in reports {
                        job.send(task_id, ReportBody::Report(r));
                    }
                }
            }
            Ok(Some(JobNews::Finished(outcome))) => self.finish(task_id, outcome),
            Ok(Some(JobNews::State(state))) => {
                if let Some(job) = self.jobs.get_mut(&task_id) {
                    job.state = state;
                }
            }
            Ok(None) => {}
            Err(e) => {
                self.tell(&ToWorker::Error { message: e });
            }
        }
    }
}

impl Actor for RemoteUnit {
    type Context = Context<Self>;
}

/// Hands the job to the worker (or POSTs it to the HTTP unit's `/execute`).
impl Handler<Start> for RemoteUnit {
    type Result = ResponseActFuture<Self, Result<(), String>>;

    fn handle(&mut self, msg: Start, _: &mut Context<Self>) -> Self::Result {
        let job = msg.job;
        let (task_id, attempt, execution_id) = (job.task_id, job.attempt, job.execution_id);
        let entry = RemoteJob {
            attempt,
            execution_id,
            reporter: msg.reporter,
            state: "running",
        };
        match &self.transport {
            Transport::Socket(_) => {
                let r = if self.tell(&ToWorker::Execute(Execute::from(&job))) {
                    self.jobs.insert(task_id, entry);
                    Ok(())
                } else {
                    Err(format!("unit {} is not connected", self.id))
                };
                Box::pin(fut::ready(r))
            }
            Transport::Http { endpoint, base_url } => {
                let call = http::execute(endpoint, base_url, Execute::from(&job));
                Box::pin(call.into_actor(self).map(move |r, act, _| {
                    if r.is_ok() {
                        act.jobs.insert(task_id, entry);
                    }
                    r
                }))
            }
        }
    }
}

/// The control calls of seed 004 §8 for one job; `op` is `pause`, `resume` or `cancel`.
fn control(
    unit: &mut RemoteUnit,
    task_id: TaskId,
    op: &'static str,
) -> ResponseActFuture<RemoteUnit, bool> {
    let Some(job) = unit.jobs.get(&task_id) else {
        return Box::pin(fut::ready(false));
    };
    let execution_id = job.execution_id;
    match &unit.transport {
        Transport::Socket(_) => {
            let frame = match op {
                "pause" => ToWorker::Pause {
                    task_id,
                    execution_id,
                },
                "resume" => ToWorker::Resume {
                    task_id,
                    execution_id,
                },
                _ => ToWorker::Cancel {
                    task_id,
                    execution_id,
                },
            };
            let told = unit.tell(&frame);
            if op == "cancel" && !told {
                // Nobody to tell: the work is given up here, and the worker drops it when it
                // comes back (its execution is unknown by then).
                unit.finish(task_id, Outcome::Cancelled);
            }
            Box::pin(fut::ready(told))
        }
        Transport::Http { endpoint, .. } => {
            let call = http::control(endpoint, op, task_id);
            Box::pin(call.into_actor(unit).map(move |ok, act, _| {
                if op == "cancel" {
                    // The unit was asked to stop; an unreachable unit cannot keep the task.
                    act.finish(task_id, Outcome::Cancelled);
                } else if ok {
                    if let Some(j) = act.jobs.get_mut(&task_id) {
                        j.state = if op == "pause" { "paused" } else { "running" };
                    }
                }
                ok
            }))
        }
    }
}

/// Pauses the job on the unit.
impl Handler<Pause> for RemoteUnit {
    type Result = ResponseActFuture<Self, bool>;
    fn handle(&mut self, msg: Pause, _: &mut Context<Self>) -> Self::Result {
        control(self, msg.task_id, "pause")
    }
}

/// Resumes the job on the unit.
impl Handler<Resume> for RemoteUnit {
    type Result = ResponseActFuture<Self, bool>;
    fn handle(&mut self, msg: Resume, _: &mut Context<Self>) -> Self::Result {
        control(self, msg.task_id, "resume")
    }
}

/// Cancels the job on the unit.
impl Handler<Cancel> for RemoteUnit {
    type Result = ResponseActFuture<Self, bool>;
    fn handle(&mut self, msg: Cancel, _: &mut Context<Self>) -> Self::Result {
        control(self, msg.task_id, "cancel")
    }
}

/// The job's state as last heard (a socket unit is asked to report again; an HTTP unit is
/// asked `GET /status/{id}`).
impl Handler<GetStatus> for RemoteUnit {
    type Result = ResponseActFuture<Self, Option<JobStatus>>;
    fn handle(&mut self, msg: GetStatus, _: &mut Context<Self>) -> Self::Result {
        let task_id = msg.task_id;
        let Some(job) = self.jobs.get(&task_id) else {
            return Box::pin(fut::ready(None));
        };
        let known = JobStatus {
            task_id,
            attempt: job.attempt,
            execution_id: job.execution_id,
            state: job.state,
        };
        match &self.transport {
            Transport::Socket(_) => {
                self.tell(&ToWorker::Status {
                    task_id,
                    execution_id: known.execution_id,
                });
                Box::pin(fut::ready(Some(known)))
            }
            Transport::Http { endpoint, .. } => {
                let call = http::status(endpoint, task_id);
                Box::pin(call.into_actor(self).map(move |state, act, _| {
                    let state = state?;
                    if let Some(j) = act.jobs.get_mut(&task_id) {
                        j.state = state;
                    }
                    Some(JobStatus { state, ..known })
                }))
            }
        }
    }
}

/// A worker (re)connects: keeps the jobs that are still its own, re-attaches the ones task
/// actors are waiting to reclaim, and tells it to drop the rest.
impl Handler<Attach> for RemoteUnit {
    type Result = MessageResult<Attach>;

    fn handle(&mut self, msg: Attach, _: &mut Context<Self>) -> Self::Result {
        self.transport = Transport::Socket(Some(msg.link));
        let mut drops = Vec::new();
        let mut kept = std::collections::HashSet::new();
        for j in msg.jobs {
            if self
                .jobs
                .get(&j.task_id)
                .is_some_and(|k| k.execution_id == j.execution_id)
            {
                kept.insert(j.task_id);
                continue;
            }
            let waiting = self
                .reclaims
                .iter()
                .position(|r| r.task_id == j.task_id && r.attempt == j.attempt);
            if let Some(pos) = waiting {
                let r = self.reclaims.swap_remove(pos);
                self.jobs.insert(
                    j.task_id,
                    RemoteJob {
                        attempt: j.attempt,
                        execution_id: j.execution_id,
                        reporter: r.reporter,
                        state: "running",
                    },
                );
                kept.insert(j.task_id);
                let _ = r.reply.send(Some(j.execution_id));
                continue;
            }
            drops.push(j);
        }
        // Work handed to the worker that it no longer has (it restarted, or an execute was
        // lost with the old connection) goes on elsewhere.
        let lost: Vec<TaskId> = self
            .jobs
            .keys()
            .filter(|t| !kept.contains(t))
            .copied()
            .collect();
        for t in lost {
            if let Some(job) = self.jobs.remove(&t) {
                let reason = format!("unit {} came back without the work", self.id);
                job.send(t, ReportBody::Lost(reason));
            }
        }
        for r in self.reclaims.drain(..) {
            let _ = r.reply.send(None);
        }
        MessageResult(drops)
    }
}

/// Forgets a connection that ended (unless a newer one replaced it).
impl Handler<Detach> for RemoteUnit {
    type Result = ();
    fn handle(&mut self, msg: Detach, _: &mut Context<Self>) {
        if let Transport::Socket(link) = &mut self.transport {
            if link.as_ref().is_some_and(|l| l.conn == msg.conn) {
                *link = None;
                self.manager.do_send(WorkerDisconnected {
                    unit_id: self.id.clone(),
                });
            }
        }
    }
}

/// Heartbeats go to the manager; job reports go to their task actors.
impl Handler<FromLink> for RemoteUnit {
    type Result = ();
    fn handle(&mut self, msg: FromLink, _: &mut Context<Self>) {
        let current = matches!(&self.transport, Transport::Socket(Some(l)) if l.conn == msg.conn);
        if !current {
            return;
        }
        match msg.msg {
            FromWorker::Heartbeat { .. } => self.manager.do_send(Beat {
                unit_id: self.id.clone(),
            }),
            FromWorker::Register { .. } => {
                self.tell(&ToWorker::Error {
                    message: "already registered on this connection".into(),
                });
            }
            other => self.on_job_message(other),
        }
    }
}

/// Gives up every job: their task actors go on elsewhere from their checkpoints.
impl Handler<LoseAll> for RemoteUnit {
    type Result = ();
    fn handle(&mut self, msg: LoseAll, _: &mut Context<Self>) {
        for (task_id, job) in self.jobs.drain() {
            self.stale.push(Self::job_ref(task_id, &job));
            job.send(task_id, ReportBody::Lost(msg.reason.clone()));
        }
        for r in self.reclaims.drain(..) {
            let _ = r.reply.send(None);
        }
        if let Some(farewell) = &msg.farewell {
            self.tell(farewell);
        }
        // A silent or removed worker is disconnected; when it comes back, whatever it still
        // runs is unknown here and it is told to drop it.
        if let Transport::Socket(link) = &mut self.transport {
            *link = None;
        }
    }
}

/// Re-attaches a job after a server restart, if the unit still runs it.
impl Handler<ReclaimJob> for RemoteUnit {
    type Result = ResponseActFuture<Self, Option<Uuid>>;

    fn handle(&mut self, msg: ReclaimJob, ctx: &mut Context<Self>) -> Self::Result {
        let task_id = msg.task_id;
        if let Some(job) = self
            .jobs
            .get_mut(&task_id)
            .filter(|j| j.attempt == msg.attempt)
        {
            job.reporter = msg.reporter;
            return Box::pin(fut::ready(Some(job.execution_id)));
        }
        match &self.transport {
            Transport::Socket(Some(_)) => Box::pin(fut::ready(None)),
            Transport::Socket(None) => {
                let (tx, rx) = oneshot::channel();
                self.reclaims.push(WaitingReclaim {
                    task_id,
                    attempt: msg.attempt,
                    reporter: msg.reporter,
                    reply: tx,
                });
                ctx.run_later(msg.wait, move |act, _| {
                    act.reclaims.retain(|r| r.task_id != task_id);
                });
                Box::pin(async move { rx.await.ok().flatten() }.into_actor(self))
            }
            Transport::Http { endpoint, .. } => {
                let call = http::status(endpoint, task_id);
                let (attempt, reporter) = (msg.attempt, msg.reporter);
                Box::pin(call.into_actor(self).map(move |state, act, _| {
                    let state = state.filter(|s| *s == "running" || *s == "paused")?;
                    let execution_id = Uuid::now_v7();
                    act.jobs.insert(
                        task_id,
                        RemoteJob {
                            attempt,
                            execution_id,
                            reporter,
                            state,
                        },
                    );
                    Some(execution_id)
                }))
            }
        }
    }
}

/// Hands over (and forgets) the jobs taken away while the unit was away; an HTTP unit is
/// also asked to cancel each of them.
impl Handler<TakeStale> for RemoteUnit {
    type Result = MessageResult<TakeStale>;
    fn handle(&mut self, _: TakeStale, ctx: &mut Context<Self>) -> Self::Result {
        let stale = std::mem::take(&mut self.stale);
        if let Transport::Http { endpoint, .. } = &self.transport {
            for j in &stale {
                ctx.spawn(
                    http::control(endpoint, "cancel", j.task_id)
                        .into_actor(self)
                        .map(|_, _, _| ()),
                );
            }
        }
        MessageResult(stale)
    }
}

/// Sends a frame to the worker, if connected.
impl Handler<Tell> for RemoteUnit {
    type Result = ();
    fn handle(&mut self, msg: Tell, _: &mut Context<Self>) {
        self.tell(&msg.0);
    }
}
