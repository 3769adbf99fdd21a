//! Built-in execution units and the trait behind them. A [`TaskHandler`] runs one task type:
//! it validates configs at submission, runs a job with a [`JobContext`] through which it
//! reports progress, logs, checkpoints and results, and honours pause and cancel at its safe
//! points. Rust users embedding steward register their own handlers in the [`Registry`].

pub mod artifact;
pub mod command;
pub mod data_processing;
pub mod data_rules;
pub mod data_writer;
pub mod db_backup;
pub mod db_backup_run;
pub mod db_postgres;
pub mod db_sqlite;
pub mod db_target;
pub mod ffmpeg;
pub mod fields;
pub mod http;
pub mod noop;
pub mod procstat;
pub mod python;
pub mod sleep;
pub mod stepper;
pub mod video;
pub mod video_run;
pub mod wire;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::watch;

use crate::domain::{LogLevel, TaskId};

/// A progress, log, checkpoint or result report from running work.
#[derive(Clone, Debug, PartialEq)]
pub enum Report {
    Progress {
        progress: Option<f64>,
        stage: Option<String>,
        message: Option<String>,
        checkpoint: Option<Value>,
    },
    Log {
        level: LogLevel,
        message: String,
    },
    Result(Value),
    /// Observed CPU, memory and I/O of the work (SPEC §2 `resources`).
    Resources(Value),
}

/// How a job ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Success(Option<Value>),
    Failed(String),
    Cancelled,
}

/// What the owner of a job wants it to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Run,
    Pause,
    Cancel,
}

/// The work to do.
#[derive(Clone, Debug)]
pub struct Job {
    pub task_id: TaskId,
    pub attempt: i32,
    /// One start of this attempt on one unit: the fencing token that tells a report of the
    /// current run from a stale one (a unit that went away and came back).
    pub execution_id: uuid::Uuid,
    pub task_type: String,
    pub config: Value,
    /// Where a previous run stopped (pause, crash, another unit), if anywhere.
    pub checkpoint: Option<Value>,
}

/// Settings units share.
#[derive(Clone, Debug)]
pub struct UnitEnv {
    pub data_roots: Vec<PathBuf>,
    pub kill_grace: Duration,
    /// The interpreter `python` tasks run under.
    pub python: PathBuf,
    /// Directories put on `sys.path` for `python` tasks.
    pub python_module_dirs: Vec<PathBuf>,
}

impl UnitEnv {
    /// A config path confined to the data roots.
    pub fn path(&self, raw: &str) -> Result<PathBuf, String> {
        crate::paths::confine(&self.data_roots, raw)
    }
}

/// Where reports go (the task's actor, in the server).
pub type ReportSink = Arc<dyn Fn(Report) + Send + Sync>;

/// The running job's line to its owner.
pub struct JobContext {
    pub task_id: TaskId,
    pub attempt: i32,
    pub env: Arc<UnitEnv>,
    sink: ReportSink,
    control: watch::Receiver<Control>,
}

impl JobContext {
    pub fn new(
        job: &Job,
        env: Arc<UnitEnv>,
        sink: ReportSink,
        control: watch::Receiver<Control>,
    ) -> Self {
        JobContext {
            task_id: job.task_id,
            attempt: job.attempt,
            env,
            sink,
            control,
        }
    }

    pub fn report(&self, r: Report) {
        (self.sink)(r)
    }

    /// Progress in percent (0–100).
    pub fn progress(&self, progress: f64) {
        self.report(Report::Progress {
            progress: Some(progress),
            stage: None,
            message: None,
            checkpoint: None,
        });
    }

    /// Progress with the checkpoint that resumes from it.
    pub fn progress_with_checkpoint(&self, progress: f64, checkpoint: Value) {
        self.report(Report::Progress {
            progress: Some(progress),
            stage: None,
            message: None,
            checkpoint: Some(checkpoint),
        });
    }

    pub fn checkpoint(&self, checkpoint: Value) {
        self.report(Report::Progress {
            progress: None,
            stage: None,
            message: None,
            checkpoint: Some(checkpoint),
        });
    }

    pub fn log(&self, level: LogLevel, message: impl Into<String>) {
        self.report(Report::Log {
            level,
            message: message.into(),
        });
    }

    /// The latest instruction.
    pub fn control(&self) -> Control {
        *self.control.borrow()
    }

    /// Waits for the next instruction; a vanished owner counts as cancel.
    pub async fn changed(&mut self) -> Control {
        match self.control.changed().await {
            Ok(()) => *self.control.borrow_and_update(),
            Err(_) => Control::Cancel,
        }
    }

    /// A safe point for cooperative units: returns at once when running, waits while paused,
    /// and returns `Err(Cancelled)` when the job should stop.
    pub async fn safe_point(&mut self) -> Result<(), Cancelled> {
        loop {
            match *self.control.borrow_and_update() {
                Control::Run => return Ok(()),
                Control::Cancel => return Err(Cancelled),
                Control::Pause => {}
            }
            if self.control.changed().await.is_err() {
                return Err(Cancelled);
            }
        }
    }
}

/// The job was told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

/// A config refused at submission, naming the field.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        ConfigError {
            field: format!("config.{field}"),
            message: message.into(),
        }
    }
}

/// One task type's implementation.
pub trait TaskHandler: Send + Sync + 'static {
    /// The `type` tasks name to reach this handler.
    fn task_type(&self) -> &str;

    /// A JSON Schema of the config, served by `GET /task-types`.
    fn config_schema(&self) -> Value;

    /// Checks a config at submission.
    fn validate(&self, config: &Value, env: &UnitEnv) -> Result<(), ConfigError>;

    /// Whether the type can run on this machine (a missing tool makes it unavailable).
    fn availability(&self) -> Result<(), String> {
        Ok(())
    }

    /// Runs one job to its end.
    fn run(&self, job: Job, ctx: JobContext) -> BoxFuture<'static, Outcome>;
}

/// The task types this server runs in-process.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<String, Arc<dyn TaskHandler>>,
}

impl Registry {
    /// The built-in types.
    pub fn builtin() -> Self {
        let mut r = Registry::default();
        r.register(noop::Noop);
        r.register(sleep::Sleep);
        r.register(command::CommandUnit);
        r.register(data_processing::DataProcessing);
        r.register(http::HttpUnit);
        r.register(python::PythonUnit);
        r.register(video::VideoProcessing);
        r.register(db_backup::DatabaseBackup);
        r
    }

    pub fn register(&mut self, handler: impl TaskHandler) {
        self.handlers
            .insert(handler.task_type().to_string(), Arc::new(handler));
    }

    pub fn get(&self, task_type: &str) -> Option<Arc<dyn TaskHandler>> {
        self.handlers.get(task_type).cloned()
    }

    pub fn types(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(|k| k.as_str())
    }

    pub fn handlers(&self) -> impl Iterator<Item = &Arc<dyn TaskHandler>> {
        self.handlers.values()
    }
}

/// Reads an optional field of a config object with the expected JSON type.
pub(crate) fn opt_field<'a>(config: &'a Value, field: &str) -> Option<&'a Value> {
    config.get(field).filter(|v| !v.is_null())
}
