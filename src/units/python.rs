//! `python`: calls `function(params)` from `module` in a subprocess of the configured
//! interpreter (`python_path`, or `<venv_dir>/bin/python`) with `python_module_dirs` on
//! `sys.path`; the return value (as JSON) becomes the result. This is how seed 003's
//! `task_module` / `task_function` run. The function can `import steward` and call
//! `steward.progress(pct, stage=None, message=None)`, `steward.checkpoint(value)` and
//! `steward.log(message)`; those print `@steward {json}` lines, so the process is run and
//! controlled exactly like a `command` task (see [`super::command::supervise`]).

use std::path::PathBuf;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::{json, Value};

use super::command::{job_env, supervise};
use super::{opt_field, ConfigError, Job, JobContext, Outcome, TaskHandler, UnitEnv};

pub struct PythonUnit;

/// The helper module a task function can import.
const HELPER: &str = r#""""steward's helper for python tasks: progress, checkpoints and logs."""
import json as _json
import os as _os
import sys as _sys

task_id = _os.environ.get("STEWARD_TASK_ID")
attempt = int(_os.environ.get("STEWARD_ATTEMPT") or 0)
last_checkpoint = _json.loads(_os.environ["STEWARD_CHECKPOINT"]) if _os.environ.get("STEWARD_CHECKPOINT") else None


def _emit(msg):
    _sys.stdout.write("@steward " + _json.dumps(msg, default=str) + "\n")
    _sys.stdout.flush()


def progress(pct, stage=None, message=None, checkpoint=None):
    msg = {"progress": float(pct)}
    if stage is not None:
        msg["stage"] = str(stage)
    if message is not None:
        msg["message"] = str(message)
    if checkpoint is not None:
        msg["checkpoint"] = checkpoint
    _emit(msg)


def checkpoint(value):
    _emit({"checkpoint": value})


def log(message):
    _emit({"log": str(message)})
"#;

/// Imports the module, calls the function with the params and reports the return value.
const RUNNER: &str = r#"import importlib, json, os, sys
import steward
m = importlib.import_module(os.environ["STEWARD_PY_MODULE"])
f = getattr(m, os.environ["STEWARD_PY_FUNCTION"])
params = json.loads(os.environ["STEWARD_PY_PARAMS"])
r = f() if params is None else f(params)
steward._emit({"result": r})
"#;

struct Spec {
    module: String,
    function: String,
    params: Value,
}

fn dotted_name(config: &Value, field: &str, dots: bool) -> Result<String, ConfigError> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|part| {
                !part.is_empty()
                    && !part.starts_with(|c: char| c.is_ascii_digit())
                    && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
            && (dots || !s.contains('.'))
    };
    match opt_field(config, field) {
        Some(Value::String(s)) if ok(s) => Ok(s.clone()),
        Some(v) => Err(ConfigError::new(
            field,
            format!(
                "must be a Python identifier{}, not {v}",
                if dots { " (dotted)" } else { "" }
            ),
        )),
        None => Err(ConfigError::new(field, "is required")),
    }
}

fn spec_of(config: &Value) -> Result<Spec, ConfigError> {
    Ok(Spec {
        module: dotted_name(config, "module", true)?,
        function: dotted_name(config, "function", false)?,
        params: config.get("params").cloned().unwrap_or_else(|| json!({})),
    })
}

impl TaskHandler for PythonUnit {
    fn task_type(&self) -> &str {
        "python"
    }

    fn config_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["module", "function"],
            "properties": {
                "module": {"type": "string", "description": "imported from python_module_dirs (default: the first data root)"},
                "function": {"type": "string", "description": "called as function(params); its return value (JSON) is the result"},
                "params": {"description": "any JSON; null calls function()"}
            }
        })
    }

    fn validate(&self, config: &Value, _env: &UnitEnv) -> Result<(), ConfigError> {
        spec_of(config).map(|_| ())
    }

    fn run(&self, job: Job, ctx: JobContext) -> BoxFuture<'static, Outcome> {
        async move {
            let spec = match spec_of(&job.config) {
                Ok(s) => s,
                Err(e) => return Outcome::Failed(format!("{}: {}", e.field, e.message)),
            };
            // The helper lives in a temporary directory for the length of the run.
            let helper = tokio::task::spawn_blocking(|| -> std::io::Result<tempfile::TempDir> {
                let dir = tempfile::Builder::new().prefix("steward-py-").tempdir()?;
                std::fs::write(dir.path().join("steward.py"), HELPER)?;
                Ok(dir)
            })
            .await;
            let helper = match helper {
                Ok(Ok(dir)) => dir,
                Ok(Err(e)) => return Outcome::Failed(format!("cannot write the helper: {e}")),
                Err(e) => return Outcome::Failed(format!("cannot write the helper: {e}")),
            };
            let mut path: Vec<PathBuf> = vec![helper.path().to_path_buf()];
            path.extend(ctx.env.python_module_dirs.iter().cloned());
            if let Some(old) = std::env::var_os("PYTHONPATH") {
                path.extend(std::env::split_paths(&old));
            }
            let pythonpath = match std::env::join_paths(path) {
                Ok(p) => p,
                Err(e) => return Outcome::Failed(format!("bad python_module_dirs: {e}")),
            };
            let interpreter = ctx.env.python.clone();
            let mut cmd = tokio::process::Command::new(&interpreter);
            cmd.arg("-c")
                .arg(RUNNER)
                .env("PYTHONPATH", pythonpath)
                .env("PYTHONUNBUFFERED", "1")
                .env("STEWARD_PY_MODULE", &spec.module)
                .env("STEWARD_PY_FUNCTION", &spec.function)
                .env("STEWARD_PY_PARAMS", spec.params.to_string());
            if let Some(dir) = ctx.env.data_roots.first() {
                cmd.current_dir(dir);
            }
            job_env(&mut cmd, &job);
            let outcome = supervise(cmd, &interpreter.display().to_string(), ctx).await;
            drop(helper);
            match outcome {
                Outcome::Failed(e) => Outcome::Failed(format!(
                    "{}.{}: {e} (the traceback is in the task's logs)",
                    spec.module, spec.function
                )),
                other => other,
            }
        }
        .boxed()
    }
}
