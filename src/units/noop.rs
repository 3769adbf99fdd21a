//! `noop`: succeeds at once. The unit of measure for the scheduler's own overhead.

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::{json, Value};

use super::{ConfigError, Job, JobContext, Outcome, TaskHandler, UnitEnv};

pub struct Noop;

impl TaskHandler for Noop {
    fn task_type(&self) -> &str {
        "noop"
    }

    fn config_schema(&self) -> Value {
        json!({"type": "object", "description": "Does nothing and succeeds; any config is accepted."})
    }

    fn validate(&self, config: &Value, _env: &UnitEnv) -> Result<(), ConfigError> {
        if config.is_object() {
            Ok(())
        } else {
            Err(ConfigError {
                field: "config".into(),
                message: "must be an object".into(),
            })
        }
    }

    fn run(&self, _job: Job, _ctx: JobContext) -> BoxFuture<'static, Outcome> {
        async { Outcome::Success(None) }.boxed()
    }
}
