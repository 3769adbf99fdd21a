//! Compatibility routes (SPEC §11): thin aliases that let clients of the systems in `seeds/`
//! talk to steward in their own request and response shapes. Each seed has its own module;
//! every alias parses the seed's shape, calls the same function the `/api/v1` handler calls
//! (no second engine), and writes the answer back in the seed's shape. Errors keep the SPEC §6
//! shape, with the seed's field names where the seed named the field.
//!
//! Seeds 003 and 004 share `/api/tasks/{id}`, `/api/tasks/{id}/start` and
//! `DELETE /api/tasks/{id}`: seed 004 addresses a task by its id, seed 003 a registered task
//! (a steward schedule) by its name. The dispatchers here look for a task with that id first
//! and then for a schedule with that name or id. `GET /api/tasks` (no slash) is seed 004's
//! paged task list; `GET /api/tasks/` (FastAPI's trailing slash) is seed 003's list of
//! registered tasks.

mod seed000;
mod seed001;
mod seed003;
mod seed003_history;
mod seed004;
mod seed004_units;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::AppState;
use crate::domain::schedule::Schedule;
use crate::domain::{Millis, Task, TaskId};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// (method, full path, summary) of every alias, for the OpenAPI document.
pub const ROUTES: &[(&str, &str, &str)] = &[
    (
        "post",
        "/api/v1/backtest/createBatch",
        "Seed 000: create a batch (POST /batches)",
    ),
    (
        "get",
        "/api/v1/backtest/getBatchStatus",
        "Seed 000: batch status by batch_id; long poll with after_version",
    ),
    (
        "post",
        "/api/v1/backtest/cancelBatch",
        "Seed 000: cancel a batch",
    ),
    (
        "get",
        "/api/v1/backtest/getTaskStatus",
        "Seed 000: status of task_id, or of task_ids (comma list)",
    ),
    (
        "get",
        "/api/v1/backtest/getTaskList",
        "Seed 000: tasks by batch_id, status, task_type; page, limit",
    ),
    (
        "get",
        "/api/v1/backtest/getTaskResult",
        "Seed 000: result of task_id",
    ),
    (
        "post",
        "/api/market-data/tasks",
        "Seed 001: submit under the market_data mutex (202)",
    ),
    (
        "get",
        "/api/market-data/tasks/{id}",
        "Seed 001: one task's status row",
    ),
    (
        "post",
        "/api/market-data/tasks/{id}/retry",
        "Seed 001: retry a failed task as a new task (202)",
    ),
    (
        "post",
        "/api/tasks/register",
        "Seed 003: register a task (a schedule)",
    ),
    (
        "get",
        "/api/tasks/",
        "Seed 003: registered tasks (task_type, tags)",
    ),
    (
        "post",
        "/api/tasks/{id}/stop",
        "Seed 003: cancel the live runs of a registered task",
    ),
    (
        "get",
        "/api/tasks/executions/",
        "Seed 003: execution history (task_id, limit)",
    ),
    (
        "get",
        "/api/tasks/executions/{id}",
        "Seed 003: one execution",
    ),
    (
        "delete",
        "/api/tasks/executions/cleanup",
        "Seed 003: delete finished executions older than days",
    ),
    (
        "get",
        "/api/tasks/statistics/",
        "Seed 003: statistics per registered task",
    ),
    (
        "post",
        "/api/tasks/import",
        "Seed 003: import a tasks.yaml under the data roots",
    ),
    (
        "post",
        "/api/tasks/export",
        "Seed 003: export every registered task to a file",
    ),
    (
        "get",
        "/api/tasks/health",
        "Seed 003: health with task and execution counts",
    ),
    (
        "post",
        "/api/tasks",
        "Seed 004: create a task (taskName, taskType, maxRetries); waits for start",
    ),
    (
        "get",
        "/api/tasks",
        "Seed 004: list tasks: status, taskType, page, limit",
    ),
    (
        "get",
        "/api/tasks/{id}",
        "Seed 004 task by id, or seed 003 registered task by name",
    ),
    (
        "delete",
        "/api/tasks/{id}",
        "Seed 004: delete a finished task; seed 003: unregister",
    ),
    (
        "post",
        "/api/tasks/{id}/start",
        "Seed 004: start a task; seed 003: run a registered task now",
    ),
    ("post", "/api/tasks/{id}/pause", "Seed 004: pause"),
    ("post", "/api/tasks/{id}/resume", "Seed 004: resume"),
    ("post", "/api/tasks/{id}/cancel", "Seed 004: cancel"),
    (
        "post",
        "/api/tasks/{id}/restart",
        "Seed 004: restart a failed or cancelled task",
    ),
    (
        "post",
        "/api/tasks/{id}/status",
        "Seed 004: execution-unit callback",
    ),
    (
        "post",
        "/api/execution-units",
        "Seed 004: register a unit (forwarded to POST /api/v1/units)",
    ),
    (
        "get",
        "/api/execution-units",
        "Seed 004: units (GET /api/v1/units)",
    ),
    (
        "get",
        "/api/execution-units/{id}",
        "Seed 004: one unit (GET /api/v1/units/{id})",
    ),
    (
        "post",
        "/api/execution-units/{id}/heartbeat",
        "Seed 004: heartbeat (forwarded to /api/v1/units/{id}/heartbeat)",
    ),
];

/// Mounts every alias. Called before the `/api/v1` scope so that seed 000's
/// `/api/v1/backtest/*` is matched here.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(seed000::configure)
        .configure(seed001::configure)
        .configure(seed003::configure)
        .service(
            web::resource("/api/tasks/{id}")
                .route(web::get().to(get_task))
                .route(web::delete().to(delete_task)),
        )
        .route("/api/tasks/{id}/start", web::post().to(start_task))
        .configure(seed004::configure)
        .configure(seed004_units::configure);
}

type Data = web::Data<AppState>;

/// What `/api/tasks/{id}` names: a task (seed 004) or a registered task (seed 003).
enum Target {
    Task(Box<Task>),
    Schedule(Box<Schedule>),
}

async fn resolve(state: &AppState, raw: &str) -> ApiResult<Target> {
    if let Ok(id) = raw.parse::<TaskId>() {
        match state.load_task(id).await {
            Ok(t) => return Ok(Target::Task(Box::new(t))),
            Err(e) if e.code == ErrorCode::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    match super::schedules::load(state, raw).await {
        Ok(s) => Ok(Target::Schedule(Box::new(s))),
        Err(e) if e.code == ErrorCode::NotFound => {
            Err(ApiError::not_found("task", format!("'{raw}'")))
        }
        Err(e) => Err(e),
    }
}

/// `GET /api/tasks/{id}`.
async fn get_task(state: Data, path: web::Path<String>) -> ApiResult<HttpResponse> {
    match resolve(&state, &path).await? {
        Target::Task(t) => Ok(HttpResponse::Ok().json(seed004::task_json(&t))),
        Target::Schedule(s) => seed003::describe(&state, &s).await,
    }
}

/// `DELETE /api/tasks/{id}`.
async fn delete_task(state: Data, path: web::Path<String>) -> ApiResult<HttpResponse> {
    match resolve(&state, &path).await? {
        Target::Task(t) => {
            super::tasks_control::delete(&state, t.id).await?;
            Ok(HttpResponse::NoContent().finish())
        }
        Target::Schedule(s) => seed003::unregister(&state, *s).await,
    }
}

/// `POST /api/tasks/{id}/start`: an optional body (seed 003's `{"params": {...}}`).
async fn start_task(
    state: Data,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let body = json_or_empty(&body)?;
    match resolve(&state, &path).await? {
        Target::Task(t) => seed004::start(&state, &req, t.id).await,
        Target::Schedule(s) => seed003::start(&state, &s, body).await,
    }
}

/// A body that may be empty (then `{}`), else a JSON value.
pub(crate) fn json_or_empty(bytes: &[u8]) -> ApiResult<Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("the body is not valid JSON: {e}"),
        )
    })
}

/// An optional time as RFC 3339.
fn time(ms: Option<Millis>) -> Option<String> {
    ms.map(crate::domain::rfc3339)
}

/// Renames the fields a validation error names (steward's name → the seed's).
fn seed_fields(mut e: ApiError, names: &[(&str, &str)]) -> ApiError {
    let Some(field) = e.field.clone() else {
        return e;
    };
    for (ours, theirs) in names {
        let renamed = if field == *ours {
            Some(theirs.to_string())
        } else {
            field
                .strip_prefix(&format!("{ours}["))
                .map(|rest| format!("{theirs}[{rest}"))
                .or_else(|| {
                    field
                        .strip_prefix(&format!("{ours}."))
                        .map(|rest| format!("{theirs}.{rest}"))
                })
        };
        if let Some(new) = renamed {
            e.message = match e.message.strip_prefix(&format!("{field}:")) {
                Some(rest) => format!("{new}:{rest}"),
                None => e.message,
            };
            e.field = Some(new);
            return e;
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_name_the_seed_field() {
        let e = seed_fields(
            ApiError::field("type", "is required"),
            &[("type", "taskType")],
        );
        assert_eq!(e.field.as_deref(), Some("taskType"));
        assert_eq!(e.message, "taskType: is required");
        let e = seed_fields(
            ApiError::field("tasks[2].type", "is required"),
            &[("tasks", "task_configs")],
        );
        assert_eq!(e.field.as_deref(), Some("task_configs[2].type"));
        let untouched = seed_fields(ApiError::field("config.secs", "bad"), &[("type", "x")]);
        assert_eq!(untouched.field.as_deref(), Some("config.secs"));
    }

    #[test]
    fn an_empty_body_is_an_empty_object_and_bad_json_a_400() {
        assert_eq!(json_or_empty(b"  ").unwrap(), serde_json::json!({}));
        let e = json_or_empty(b"{nope").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidJson);
    }
}
