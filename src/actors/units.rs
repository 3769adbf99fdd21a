//! The execution-unit protocol (seed 004's control interface as actor messages: `Start`,
//! `Pause`, `Resume`, `Cancel`, `GetStatus`), the [`UnitHandle`] through which task actors
//! reach any unit, and [`LocalUnit`], the in-process unit that runs the built-in types.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use serde::Serialize;
use tokio::sync::watch;

use crate::domain::TaskId;
use crate::units::{Control, Job, JobContext, Outcome, Registry, Report, UnitEnv};

/// Start a job; the unit reports to `reporter` until it sends `Finished`.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct Start {
    pub job: Job,
    pub reporter: Recipient<UnitReport>,
}

/// Pause a job at its next safe point (SIGSTOP for processes).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Pause {
    pub task_id: TaskId,
}

/// Resume a paused job where it stopped.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Resume {
    pub task_id: TaskId,
}

/// Stop a job and clean up its temporary output.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Cancel {
    pub task_id: TaskId,
}

/// What the unit knows of a job.
#[derive(Message)]
#[rtype(result = "Option<JobStatus>")]
pub struct GetStatus {
    pub task_id: TaskId,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct JobStatus {
    pub task_id: TaskId,
    pub attempt: i32,
    pub execution_id: uuid::Uuid,
    pub state: &'static str,
}

/// A report from a unit about one attempt of a task.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct UnitReport {
    pub task_id: TaskId,
    pub attempt: i32,
    /// The run this report belongs to ([`Job::execution_id`]).
    pub execution_id: uuid::Uuid,
    pub body: ReportBody,
}

#[derive(Debug)]
pub enum ReportBody {
    Report(Report),
    Finished(Outcome),
    /// The unit lost the work (it went offline, was deregistered, or came back without
    /// it): the task should go on elsewhere from its last checkpoint.
    Lost(String),
}

/// A job of this unit has ended (internal).
#[derive(Message)]
#[rtype(result = "()")]
struct JobEnded {
    task_id: TaskId,
    execution_id: uuid::Uuid,
}

/// Any unit, local or remote, as the task actors see it.
#[derive(Clone)]
pub struct UnitHandle {
    pub id: String,
    pub start: Recipient<Start>,
    pub pause: Recipient<Pause>,
    pub resume: Recipient<Resume>,
    pub cancel: Recipient<Cancel>,
    pub status: Recipient<GetStatus>,
}

impl UnitHandle {
    pub fn of<A>(id: impl Into<String>, addr: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>>
            + Handler<Start>
            + Handler<Pause>
            + Handler<Resume>
            + Handler<Cancel>
            + Handler<GetStatus>,
    {
        UnitHandle {
            id: id.into(),
            start: addr.clone().recipient(),
            pause: addr.clone().recipient(),
            resume: addr.clone().recipient(),
            cancel: addr.clone().recipient(),
            status: addr.clone().recipient(),
        }
    }
}

struct RunningJob {
    attempt: i32,
    execution_id: uuid::Uuid,
    control: watch::Sender<Control>,
}

/// Runs the registry's task types inside the server process.
pub struct LocalUnit {
    registry: Arc<Registry>,
    env: Arc<UnitEnv>,
    jobs: HashMap<TaskId, RunningJob>,
}

impl LocalUnit {
    pub const ID: &'static str = "local";

    pub fn new(registry: Arc<Registry>, env: Arc<UnitEnv>) -> Self {
        LocalUnit {
            registry,
            env,
            jobs: HashMap::new(),
        }
    }

    fn control(&self, task_id: TaskId, c: Control) -> bool {
        match self.jobs.get(&task_id) {
            Some(job) => job.control.send(c).is_ok(),
            None => false,
        }
    }
}

impl Actor for LocalUnit {
    type Context = Context<Self>;
}

/// Starts the job on the async runtime; its reports go straight to the reporter.
impl Handler<Start> for LocalUnit {
    type Result = Result<(), String>;

    fn handle(&mut self, msg: Start, ctx: &mut Context<Self>) -> Self::Result {
        let handler = self
            .registry
            .get(&msg.job.task_type)
            .ok_or_else(|| format!("this unit does not run '{}'", msg.job.task_type))?;
        handler.availability()?;
        let (tx, rx) = watch::channel(Control::Run);
        let (task_id, attempt, execution_id) =
            (msg.job.task_id, msg.job.attempt, msg.job.execution_id);
        if let Some(old) = self.jobs.insert(
            task_id,
            RunningJob {
                attempt,
                execution_id,
                control: tx,
            },
        ) {
            let _ = old.control.send(Control::Cancel);
        }
        let reporter = msg.reporter;
        let sink_reporter = reporter.clone();
        let sink: crate::units::ReportSink = Arc::new(move |r: Report| {
            sink_reporter.do_send(UnitReport {
                task_id,
                attempt,
                execution_id,
                body: ReportBody::Report(r),
            })
        });
        let job_ctx = JobContext::new(&msg.job, self.env.clone(), sink, rx);
        let run = handler.run(msg.job, job_ctx);
        let me = ctx.address();
        actix::spawn(async move {
            let outcome = run.await;
            reporter.do_send(UnitReport {
                task_id,
                attempt,
                execution_id,
                body: ReportBody::Finished(outcome),
            });
            me.do_send(JobEnded {
                task_id,
                execution_id,
            });
        });
        Ok(())
    }
}

/// Forgets a finished job (unless a newer attempt replaced it).
impl Handler<JobEnded> for LocalUnit {
    type Result = ();
    fn handle(&mut self, msg: JobEnded, _: &mut Context<Self>) {
        if self
            .jobs
            .get(&msg.task_id)
            .is_some_and(|j| j.execution_id == msg.execution_id)
        {
            self.jobs.remove(&msg.task_id);
        }
    }
}

/// Tells the job to pause at its next safe point.
impl Handler<Pause> for LocalUnit {
    type Result = bool;
    fn handle(&mut self, msg: Pause, _: &mut Context<Self>) -> bool {
        self.control(msg.task_id, Control::Pause)
    }
}

/// Tells a paused job to go on.
impl Handler<Resume> for LocalUnit {
    type Result = bool;
    fn handle(&mut self, msg: Resume, _: &mut Context<Self>) -> bool {
        self.control(msg.task_id, Control::Run)
    }
}

/// Tells the job to stop.
impl Handler<Cancel> for LocalUnit {
    type Result = bool;
    fn handle(&mut self, msg: Cancel, _: &mut Context<Self>) -> bool {
        self.control(msg.task_id, Control::Cancel)
    }
}

/// Reports whether the job runs here and in which state.
impl Handler<GetStatus> for LocalUnit {
    type Result = Option<JobStatus>;
    fn handle(&mut self, msg: GetStatus, _: &mut Context<Self>) -> Option<JobStatus> {
        self.jobs.get(&msg.task_id).map(|j| JobStatus {
            task_id: msg.task_id,
            attempt: j.attempt,
            execution_id: j.execution_id,
            state: match *j.control.borrow() {
                Control::Run => "running",
                Control::Pause => "paused",
                Control::Cancel => "cancelling",
            },
        })
    }
}
