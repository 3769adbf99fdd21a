//! `command`: runs a program (argv, env, cwd) in its own process group. stdout lines become
//! INFO logs and stderr lines WARNING logs, except stdout lines `@steward {json}`, which report
//! `progress`, `stage`, `message`, `checkpoint` and `result`. Pause is SIGSTOP and resume
//! SIGCONT to the whole group; cancel is SIGTERM, then SIGKILL after the grace period. A
//! non-zero exit fails the task with the code in `error`.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;

use super::procstat::{group_usage, resources, GroupUsage};
use super::{
    opt_field, ConfigError, Control, Job, JobContext, Outcome, Report, TaskHandler, UnitEnv,
};
use crate::domain::LogLevel;

/// How often the process group's CPU, memory and I/O are sampled.
const RESOURCE_SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How long output may keep flowing after the process exited (grandchildren holding the pipes).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// The prefix of a progress-protocol line on stdout.
const PROTOCOL_PREFIX: &str = "@steward ";

pub struct CommandUnit;

struct Spec {
    program: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: Option<String>,
}

fn spec_of(config: &Value) -> Result<Spec, ConfigError> {
    if !config.is_object() {
        return Err(ConfigError {
            field: "config".into(),
            message: "must be an object".into(),
        });
    }
    let program = match opt_field(config, "program") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(v) => {
            return Err(ConfigError::new(
                "program",
                format!("must be a non-empty string, not {v}"),
            ))
        }
        None => return Err(ConfigError::new("program", "is required")),
    };
    let args = match opt_field(config, "args") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(ConfigError::new(
                    &format!("args[{i}]"),
                    format!("must be a string, not {other}"),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(ConfigError::new(
                "args",
                format!("must be an array of strings, not {v}"),
            ))
        }
    };
    let env = match opt_field(config, "env") {
        None => BTreeMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
                other => Err(ConfigError::new(
                    &format!("env.{k}"),
                    format!("must be a string, not {other}"),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(ConfigError::new(
                "env",
                format!("must be an object of strings, not {v}"),
            ))
        }
    };
    let cwd = match opt_field(config, "cwd") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => {
            return Err(ConfigError::new(
                "cwd",
                format!("must be a string, not {v}"),
            ))
        }
    };
    Ok(Spec {
        program,
        args,
        env,
        cwd,
    })
}

impl TaskHandler for CommandUnit {
    fn task_type(&self) -> &str {
        "command"
    }

    fn config_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["program"],
            "properties": {
                "program": {"type": "string"},
                "args": {"type": "array", "items": {"type": "string"}},
                "env": {"type": "object", "additionalProperties": {"type": "string"}},
                "cwd": {"type": "string", "description": "under the data roots; default: the first root"}
            }
        })
    }

    fn validate(&self, config: &Value, env: &UnitEnv) -> Result<(), ConfigError> {
        let spec = spec_of(config)?;
        if let Some(cwd) = &spec.cwd {
            env.path(cwd).map_err(|m| ConfigError::new("cwd", m))?;
        }
        Ok(())
    }

    fn run(&self, job: Job, ctx: JobContext) -> BoxFuture<'static, Outcome> {
        async move {
            let spec = match spec_of(&job.config) {
                Ok(s) => s,
                Err(e) => return Outcome::Failed(format!("{}: {}", e.field, e.message)),
            };
            run_command(spec, job, ctx).await
        }
        .boxed()
    }
}

fn signal_group(pgid: Option<Pid>, sig: Signal) {
    if let Some(pgid) = pgid {
        if let Err(e) = killpg(pgid, sig) {
            log::debug!("killpg({pgid}, {sig}) failed: {e}");
        }
    }
}

async fn run_command(spec: Spec, job: Job, ctx: JobContext) -> Outcome {
    let cwd = match spec.cwd.as_deref() {
        Some(c) => match ctx.env.path(c) {
            Ok(p) => p,
            Err(e) => return Outcome::Failed(format!("cwd: {e}")),
        },
        None => match ctx.env.data_roots.first() {
            Some(p) => p.clone(),
            None => return Outcome::Failed("no data root to run in".into()),
        },
    };
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args).envs(&spec.env).current_dir(&cwd);
    job_env(&mut cmd, &job);
    supervise(cmd, &spec.program, ctx).await
}

/// The environment every task process gets: its id, attempt and last checkpoint.
pub(crate) fn job_env(cmd: &mut tokio::process::Command, job: &Job) {
    let checkpoint = job
        .checkpoint
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    cmd.env("STEWARD_TASK_ID", job.task_id.to_string())
        .env("STEWARD_ATTEMPT", job.attempt.to_string())
        .env("STEWARD_CHECKPOINT", checkpoint);
}

/// Runs a prepared command in its own process group under the job's control: output lines
/// become logs or protocol reports, pause/resume are SIGSTOP/SIGCONT, cancel is SIGTERM then
/// SIGKILL. Shared by every unit that runs a process (`command`, `python`).
pub(crate) async fn supervise(
    cmd: tokio::process::Command,
    label: &str,
    mut ctx: JobContext,
) -> Outcome {
    let mut result = None;
    let ended = run_process(cmd, label, &mut ctx, |ctx, output| match output {
        Output::Spawned(_) => {}
        Output::Out(l) => stdout_line(ctx, &l, &mut result),
        Output::Err(l) => ctx.log(LogLevel::Warning, l),
    })
    .await;
    match ended {
        Ended::Exited(status) if status.success() => {
            Outcome::Success(Some(result.unwrap_or_else(|| json!({"exit_code": 0}))))
        }
        Ended::Exited(status) => Outcome::Failed(exit_message(status)),
        Ended::Cancelled => Outcome::Cancelled,
        Ended::Failed(e) => Outcome::Failed(e),
    }
}

/// What a supervised process did: started (with its pid, which is also its process group),
/// or wrote a line to stdout or stderr.
pub(crate) enum Output {
    Spawned(u32),
    Out(String),
    Err(String),
}

/// How a supervised process ended.
pub(crate) enum Ended {
    Exited(std::process::ExitStatus),
    /// The job was cancelled and the process stopped.
    Cancelled,
    /// It could not be started or waited for.
    Failed(String),
}

/// "exit code N" or "killed by signal N".
pub(crate) fn exit_message(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "exited abnormally".into(),
    }
}

/// The process supervision behind [`supervise`], for units that read the output themselves
/// (`video_processing` parses ffmpeg's progress, `database_backup` pg_dump's): every output
/// line (and the pid, once started) goes to `on_output`; pause, resume, cancel and resource sampling are handled here.
pub(crate) async fn run_process(
    mut cmd: tokio::process::Command,
    label: &str,
    ctx: &mut JobContext,
    mut on_output: impl FnMut(&JobContext, Output),
) -> Ended {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Ended::Failed(format!("cannot start '{label}': {e}")),
    };
    let pgid = child.id().map(|p| Pid::from_raw(p as i32));
    if let Some(pid) = child.id() {
        on_output(ctx, Output::Spawned(pid));
    }
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Ended::Failed("the process has no output pipes".into());
    };
    let mut out = BufReader::new(stdout).lines();
    let mut err = BufReader::new(stderr).lines();
    let (mut out_done, mut err_done) = (false, false);
    let mut exit = None;
    let mut cancelled = false;
    let mut kill_at: Option<Instant> = None;
    let mut drain_until: Option<Instant> = None;
    let mut sampler = tokio::time::interval(RESOURCE_SAMPLE_EVERY);
    sampler.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_usage: Option<(std::time::Instant, GroupUsage)> = None;
    let mut peak_rss = 0u64;
    let far = || Instant::now() + Duration::from_secs(86_400 * 365);
    if ctx.control() == Control::Pause {
        signal_group(pgid, Signal::SIGSTOP);
    }
    while !(out_done && err_done && exit.is_some()) {
        tokio::select! {
            _ = sampler.tick(), if exit.is_none() => {
                if let Some(pg) = pgid {
                    let pg = i64::from(pg.as_raw());
                    if let Ok(now) = tokio::task::spawn_blocking(move || group_usage(pg)).await {
                        peak_rss = peak_rss.max(now.rss_bytes);
                        if let Some((at, before)) = last_usage {
                            ctx.report(Report::Resources(resources(now, before, at.elapsed().as_secs_f64(), peak_rss)));
                        }
                        last_usage = Some((std::time::Instant::now(), now));
                    }
                }
            },
            line = out.next_line(), if !out_done => match line {
                Ok(Some(l)) => on_output(ctx, Output::Out(l)),
                _ => out_done = true,
            },
            line = err.next_line(), if !err_done => match line {
                Ok(Some(l)) => on_output(ctx, Output::Err(l)),
                _ => err_done = true,
            },
            status = child.wait(), if exit.is_none() => {
                exit = Some(status);
                drain_until = Some(Instant::now() + DRAIN_AFTER_EXIT);
                if cancelled {
                    signal_group(pgid, Signal::SIGKILL);
                }
            },
            c = ctx.changed(), if !cancelled && exit.is_none() => match c {
                Control::Pause => signal_group(pgid, Signal::SIGSTOP),
                Control::Run => signal_group(pgid, Signal::SIGCONT),
                Control::Cancel => {
                    cancelled = true;
                    signal_group(pgid, Signal::SIGTERM);
                    signal_group(pgid, Signal::SIGCONT);
                    kill_at = Some(Instant::now() + ctx.env.kill_grace);
                }
            },
            _ = tokio::time::sleep_until(kill_at.unwrap_or_else(far)), if kill_at.is_some() && exit.is_none() => {
                ctx.log(LogLevel::Warning, "did not stop within the grace period; sending SIGKILL");
                signal_group(pgid, Signal::SIGKILL);
                kill_at = None;
            },
            _ = tokio::time::sleep_until(drain_until.unwrap_or_else(far)), if drain_until.is_some() => {
                break;
            },
        }
    }
    if cancelled {
        return Ended::Cancelled;
    }
    match exit {
        Some(Ok(status)) => Ended::Exited(status),
        Some(Err(e)) => Ended::Failed(format!("cannot wait for the process: {e}")),
        None => Ended::Failed("the process did not exit".into()),
    }
}

/// Handles one stdout line: a protocol report or an INFO log line.
fn stdout_line(ctx: &JobContext, line: &str, result: &mut Option<Value>) {
    let Some(body) = line.strip_prefix(PROTOCOL_PREFIX) else {
        ctx.log(LogLevel::Info, line);
        return;
    };
    let msg: Value = match serde_json::from_str(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            ctx.log(
                LogLevel::Warning,
                format!("ignored a malformed progress line: {line}"),
            );
            return;
        }
    };
    let progress = msg
        .get("progress")
        .and_then(Value::as_f64)
        .filter(|p| (0.0..=100.0).contains(p));
    let text = |k: &str| msg.get(k).and_then(Value::as_str).map(String::from);
    let checkpoint = match msg.get("checkpoint") {
        None | Some(Value::Null) => None,
        Some(c @ Value::Object(_)) => Some(c.clone()),
        Some(other) => {
            ctx.log(
                LogLevel::Warning,
                format!("ignored a checkpoint that is not a JSON object: {other}"),
            );
            None
        }
    };
    if progress.is_some()
        || checkpoint.is_some()
        || msg.get("stage").is_some()
        || msg.get("message").is_some()
    {
        ctx.report(Report::Progress {
            progress,
            stage: text("stage"),
            message: text("message"),
            checkpoint,
        });
    }
    if let Some(r) = msg.get("result").filter(|v| !v.is_null()) {
        *result = Some(r.clone());
        ctx.report(Report::Result(r.clone()));
    }
    if let Some(l) = text("log") {
        ctx.log(LogLevel::Info, l);
    }
}
