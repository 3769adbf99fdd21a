//! `sleep`: waits `secs` seconds, reporting the fraction slept at least every 100 ms (but
//! not the 100 % its success reports anyway). Truly
//! pausable: paused time does not count, and the checkpoint is the time already slept, so a
//! resumed or recovered task sleeps only what is left.

use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::{json, Value};

use super::{ConfigError, Control, Job, JobContext, Outcome, TaskHandler, UnitEnv};

/// The interval between progress reports: SPEC §5 asks for one at least every 100 ms, and a
/// timer wakes a millisecond or two late, so the step is a little shorter.
const TICK: Duration = Duration::from_millis(95);
/// Less than this left to sleep counts as done.
const DONE_EPSILON_SECS: f64 = 0.001;
/// The longest sleep accepted: a week.
const MAX_SECS: f64 = 7.0 * 86_400.0;

pub struct Sleep;

fn secs_of(config: &Value) -> Result<f64, ConfigError> {
    let v = config
        .get("secs")
        .ok_or_else(|| ConfigError::new("secs", "is required (seconds to sleep)"))?;
    let secs = v
        .as_f64()
        .ok_or_else(|| ConfigError::new("secs", format!("must be a number, not {v}")))?;
    if !(0.0..=MAX_SECS).contains(&secs) {
        return Err(ConfigError::new(
            "secs",
            format!("{secs} is outside 0..={MAX_SECS}"),
        ));
    }
    Ok(secs)
}

impl TaskHandler for Sleep {
    fn task_type(&self) -> &str {
        "sleep"
    }

    fn config_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["secs"],
            "properties": {"secs": {"type": "number", "minimum": 0, "maximum": MAX_SECS}}
        })
    }

    fn validate(&self, config: &Value, _env: &UnitEnv) -> Result<(), ConfigError> {
        secs_of(config).map(|_| ())
    }

    fn run(&self, job: Job, ctx: JobContext) -> BoxFuture<'static, Outcome> {
        // Read here, so the future holds two numbers rather than the job for the whole sleep.
        let total = match secs_of(&job.config) {
            Ok(s) => s,
            Err(e) => {
                return futures_util::future::ready(Outcome::Failed(format!(
                    "{}: {}",
                    e.field, e.message
                )))
                .boxed()
            }
        };
        let slept = job
            .checkpoint
            .as_ref()
            .and_then(|c| c.get("slept_secs"))
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        run_sleep(total, slept.clamp(0.0, total), ctx).boxed()
    }
}

async fn run_sleep(total: f64, mut slept: f64, mut ctx: JobContext) -> Outcome {
    let pct = |slept: f64| {
        if total > 0.0 {
            slept / total * 100.0
        } else {
            100.0
        }
    };
    loop {
        // Float steps never add up exactly: anything under a millisecond left is done.
        if total - slept < DONE_EPSILON_SECS {
            return Outcome::Success(Some(json!({"slept_secs": total})));
        }
        match ctx.control() {
            Control::Cancel => return Outcome::Cancelled,
            Control::Pause => {
                ctx.checkpoint(json!({"slept_secs": slept}));
                ctx.changed().await;
            }
            Control::Run => {
                let step = TICK.min(Duration::from_secs_f64(total - slept));
                let started = Instant::now();
                tokio::select! {
                    _ = tokio::time::sleep(step) => {}
                    _ = ctx.changed() => {}
                }
                // Wall time, overshoot included: a wake-up late by a few ms on a busy loop is
                // time slept, and dropping it made ten steps add up to more than `secs`.
                slept = (slept + started.elapsed().as_secs_f64()).min(total);
                // The last step reports nothing: the success that follows says 100 %, and
                // a thousand sleeps ending together need not announce it twice each.
                if total - slept >= DONE_EPSILON_SECS {
                    ctx.progress_with_checkpoint(pct(slept), json!({"slept_secs": slept}));
                }
            }
        }
    }
}
