//! `data_processing` (seed 004 §2.3.1): reads a CSV in batches, checks each row against the
//! `validationRules`, writes valid rows as JSON objects keyed by the header and rejected rows
//! to a rejects file beside the output. Batches run on the blocking pool, so memory stays
//! constant and async threads never wait on the disk. Pause takes effect at a batch boundary;
//! the checkpoint (`row`, `input_offset`, `output_bytes`, `rejects_bytes`) lets a resumed or
//! recovered run truncate its outputs and seek its input so every row lands exactly once.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::{json, Value};

use super::data_rules::{self, Rule};
use super::data_writer::{Checkpoint, Format, Work};
use super::{opt_field, ConfigError, Control, Job, JobContext, Outcome, TaskHandler, UnitEnv};
use crate::domain::LogLevel;

/// Rows per batch unless `batchSize` says otherwise.
const DEFAULT_BATCH: u64 = 1000;
const MAX_BATCH: u64 = 1_000_000;
/// Rows between checkpoints unless `checkpointInterval` says otherwise.
const DEFAULT_CHECKPOINT_INTERVAL: u64 = 10_000;
/// Progress reports are at most this frequent (checkpoints are not limited).
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

pub struct DataProcessing;

/// A checked config.
pub(crate) struct Spec {
    input: String,
    output: String,
    format: Format,
    batch: u64,
    checkpoint_interval: u64,
    rules: Vec<Rule>,
}

fn path_field(config: &Value, field: &str) -> Result<String, ConfigError> {
    match opt_field(config, field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(v) => Err(ConfigError::new(
            field,
            format!("must be a non-empty path, not {v}"),
        )),
        None => Err(ConfigError::new(field, "is required")),
    }
}

fn count_field(config: &Value, field: &str, default: u64, max: u64) -> Result<u64, ConfigError> {
    match opt_field(config, field) {
        None => Ok(default),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ConfigError::new(
                field,
                format!("must be an integer in 1..={max}, not {v}"),
            )),
        },
    }
}

fn spec_of(config: &Value) -> Result<Spec, ConfigError> {
    if !config.is_object() {
        return Err(ConfigError {
            field: "config".into(),
            message: "must be an object".into(),
        });
    }
    let input = path_field(config, "inputPath")?;
    let output = path_field(config, "outputPath")?;
    let format = match opt_field(config, "outputFormat").map(|v| (v, v.as_str())) {
        None => Format::for_path(&output),
        Some((_, Some("jsonl"))) => Format::JsonLines,
        Some((_, Some("json"))) => Format::JsonArray,
        Some((v, _)) => {
            return Err(ConfigError::new(
                "outputFormat",
                format!("must be \"json\" or \"jsonl\", not {v}"),
            ))
        }
    };
    Ok(Spec {
        input,
        output,
        format,
        batch: count_field(config, "batchSize", DEFAULT_BATCH, MAX_BATCH)?,
        checkpoint_interval: count_field(
            config,
            "checkpointInterval",
            DEFAULT_CHECKPOINT_INTERVAL,
            u64::MAX,
        )?,
        rules: data_rules::parse(opt_field(config, "validationRules"))?,
    })
}

/// The rejects file beside the output: `users.json` → `users.rejects.jsonl`.
pub fn rejects_path(output: &Path) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    output.with_file_name(format!("{stem}.rejects.jsonl"))
}

impl TaskHandler for DataProcessing {
    fn task_type(&self) -> &str {
        "data_processing"
    }

    fn config_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["inputPath", "outputPath"],
            "properties": {
                "inputPath": {"type": "string", "description": "a CSV file with a header row, under the data roots"},
                "outputPath": {"type": "string", "description": "under the data roots; rejected rows go to <stem>.rejects.jsonl beside it"},
                "outputFormat": {"enum": ["json", "jsonl"], "description": "default: json (one array) for a .json output, else jsonl (one object per line)"},
                "batchSize": {"type": "integer", "minimum": 1, "maximum": MAX_BATCH, "default": DEFAULT_BATCH},
                "validationRules": {"type": "array", "items": {"anyOf": [
                    {"enum": data_rules::KNOWN_RULES},
                    {"type": "object", "required": ["rule"], "properties": {"rule": {"enum": data_rules::KNOWN_RULES}, "field": {"type": "string"}}}
                ]}},
                "checkpointInterval": {"type": "integer", "minimum": 1, "default": DEFAULT_CHECKPOINT_INTERVAL, "description": "rows between checkpoints"}
            }
        })
    }

    fn validate(&self, config: &Value, env: &UnitEnv) -> Result<(), ConfigError> {
        let spec = spec_of(config)?;
        let input = env
            .path(&spec.input)
            .map_err(|m| ConfigError::new("inputPath", m))?;
        let output = env
            .path(&spec.output)
            .map_err(|m| ConfigError::new("outputPath", m))?;
        if input == output || input == rejects_path(&output) {
            return Err(ConfigError::new(
                "outputPath",
                "must differ from inputPath (and from its rejects file)",
            ));
        }
        Ok(())
    }

    fn run(&self, job: Job, ctx: JobContext) -> BoxFuture<'static, Outcome> {
        async move {
            let spec = match spec_of(&job.config) {
                Ok(s) => s,
                Err(e) => return Outcome::Failed(format!("{}: {}", e.field, e.message)),
            };
            let paths = (ctx.env.path(&spec.input), ctx.env.path(&spec.output));
            let (input, output) = match paths {
                (Ok(i), Ok(o)) => (i, o),
                (Err(e), _) => return Outcome::Failed(format!("inputPath: {e}")),
                (_, Err(e)) => return Outcome::Failed(format!("outputPath: {e}")),
            };
            let checkpoint = job
                .checkpoint
                .as_ref()
                .and_then(|c| serde_json::from_value::<Checkpoint>(c.clone()).ok());
            run_job(spec, input, output, checkpoint, ctx).await
        }
        .boxed()
    }
}

/// Runs a blocking step on the blocking pool, handing the work back with the step's result.
async fn blocking<T: Send + 'static>(
    mut work: Work,
    step: impl FnOnce(&mut Work) -> std::io::Result<T> + Send + 'static,
) -> Result<(Work, T), String> {
    tokio::task::spawn_blocking(move || {
        let r = step(&mut work);
        r.map(|t| (work, t))
    })
    .await
    .map_err(|e| format!("the batch worker failed: {e}"))?
    .map_err(|e| e.to_string())
}

fn remove_outputs(output: &Path) {
    for p in [output.to_path_buf(), rejects_path(output)] {
        if let Err(e) = std::fs::remove_file(&p) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!("cannot remove {}: {e}", p.display());
            }
        }
    }
}

async fn run_job(
    spec: Spec,
    input: PathBuf,
    output: PathBuf,
    checkpoint: Option<Checkpoint>,
    mut ctx: JobContext,
) -> Outcome {
    let started = Instant::now();
    let rejects = rejects_path(&output);
    let (rules, format) = (spec.rules.clone(), spec.format);
    let (inp, out) = (input.clone(), output.clone());
    let opened = tokio::task::spawn_blocking(move || {
        Work::open(&inp, &out, &rejects, format, &rules, checkpoint)
    })
    .await;
    let (mut work, notes) = match opened {
        Ok(Ok(w)) => w,
        Ok(Err(e)) => return Outcome::Failed(e),
        Err(e) => return Outcome::Failed(format!("the batch worker failed: {e}")),
    };
    for note in notes {
        ctx.log(LogLevel::Warning, note);
    }
    let start_row = work.row();
    if start_row > 0 {
        ctx.log(
            LogLevel::Info,
            format!("resuming at row {start_row} from the checkpoint"),
        );
    }
    let mut last_checkpoint_row = start_row;
    let mut last_progress = Instant::now();
    loop {
        match ctx.control() {
            Control::Cancel => {
                drop(work);
                remove_outputs(&output);
                return Outcome::Cancelled;
            }
            Control::Pause => {
                work = match blocking(work, |w| w.flush()).await {
                    Ok((w, ())) => w,
                    Err(e) => return Outcome::Failed(e),
                };
                ctx.progress_with_checkpoint(work.percent(), work.checkpoint_json());
                ctx.log(LogLevel::Info, format!("paused after row {}", work.row()));
                last_checkpoint_row = work.row();
                if ctx.safe_point().await.is_err() {
                    drop(work);
                    remove_outputs(&output);
                    return Outcome::Cancelled;
                }
                continue;
            }
            Control::Run => {}
        }
        let batch = spec.batch;
        let due = work.row() + batch - last_checkpoint_row >= spec.checkpoint_interval;
        let step = blocking(work, move |w| {
            let more = w.run_batch(batch)?;
            if due || !more {
                w.flush()?;
            }
            Ok(more)
        })
        .await;
        let more;
        (work, more) = match step {
            Ok(x) => x,
            Err(e) => return Outcome::Failed(format!("{}: {e}", input.display())),
        };
        if !more {
            break;
        }
        if due {
            last_checkpoint_row = work.row();
            ctx.progress_with_checkpoint(work.percent(), work.checkpoint_json());
            last_progress = Instant::now();
        } else if last_progress.elapsed() >= PROGRESS_EVERY {
            ctx.progress(work.percent());
            last_progress = Instant::now();
        }
    }
    let finished = match blocking(work, |w| w.finish()).await {
        Ok((w, ())) => w,
        Err(e) => return Outcome::Failed(format!("{}: {e}", output.display())),
    };
    let secs = started.elapsed().as_secs_f64();
    let this_run = finished.row() - start_row;
    Outcome::Success(Some(json!({
        "rows": finished.row(),
        "valid": finished.valid(),
        "invalid": finished.invalid(),
        "output": output.display().to_string(),
        "rejects": rejects_path(&output).display().to_string(),
        "format": spec.format.as_str(),
        "elapsed_secs": secs,
        "rows_per_sec": if secs > 0.0 { this_run as f64 / secs } else { 0.0 },
    })))
}
