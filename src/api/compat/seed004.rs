//! Seed 004's task-model API (`/api/tasks`): camelCase fields (`taskName`, `taskType`,
//! `maxRetries`, `errorMessage`, `retryCount`, `completedAt`), upper-case statuses
//! (`PENDING`, `RUNNING`, ...) and task types (`DATA_PROCESSING`; any case is accepted).
//!
//! In seed 004 a created task waits in `PENDING` until `POST /api/tasks/{id}/start`, so this
//! alias creates with `autostart: false` unless the body says otherwise. `GET /api/tasks`
//! answers `{"items", "total", "page", "limit"}` (SPEC §6's list shape; the seed names none).
//! `POST /api/tasks/{id}/status` is the seed's execution-unit callback.

use std::collections::HashMap;

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{seed_fields, time, Data};
use crate::actors::units::LocalUnit;
use crate::actors::TaskCommand;
use crate::api::caller;
use crate::api::fields::Params;
use crate::api::tasks_control as ctl;
use crate::api::{task_id, AppState};
use crate::domain::{Task, TaskId};
use crate::error::{ApiError, ApiResult};
use crate::store::tasks as q;

/// steward's field names → seed 004's, for validation errors.
const FIELDS: &[(&str, &str)] = &[
    ("type", "taskType"),
    ("name", "taskName"),
    ("max_retries", "maxRetries"),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/tasks")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .route("/api/tasks/{id}/pause", web::post().to(pause))
    .route("/api/tasks/{id}/resume", web::post().to(resume))
    .route("/api/tasks/{id}/cancel", web::post().to(cancel))
    .route("/api/tasks/{id}/restart", web::post().to(restart))
    .route("/api/tasks/{id}/status", web::post().to(status_callback));
}

/// A task in seed 004's shape.
pub fn task_json(t: &Task) -> Value {
    let unit_type = t.unit_id.as_deref().map(|u| {
        if u == LocalUnit::ID {
            "LOCAL"
        } else {
            "REMOTE"
        }
    });
    json!({
        "id": t.id,
        "taskName": t.name,
        "taskType": t.task_type.to_uppercase(),
        "status": t.status.as_str().to_uppercase(),
        "priority": t.priority,
        "config": crate::domain::redact::redacted(&t.config),
        "progress": t.progress,
        "stage": t.stage,
        "message": t.message,
        "checkpoint": t.checkpoint,
        "result": t.result,
        "executionUnitId": t.unit_id,
        "executionUnitType": unit_type,
        "createdAt": crate::domain::rfc3339(t.created_at),
        "updatedAt": crate::domain::rfc3339(t.updated_at),
        "startedAt": time(t.started_at),
        "completedAt": time(t.finished_at),
        "errorMessage": t.error,
        "retryCount": (t.attempt - 1).max(0),
        "maxRetries": t.max_retries,
    })
}

/// `POST /api/tasks`: 201 with the task, `PENDING` until started.
async fn create(state: Data, req: HttpRequest, body: web::Json<Value>) -> ApiResult<HttpResponse> {
    let mut body = body.into_inner();
    if let Value::Object(o) = &mut body {
        o.entry("autostart").or_insert(Value::Bool(false));
    }
    let spec = ctl::parse_new_task(&state, body, "").map_err(|e| seed_fields(e, FIELDS))?;
    let mut made = ctl::create(&state, vec![spec], &caller(&req))
        .await
        .map_err(|e| seed_fields(e, FIELDS))?;
    let task = made.pop().ok_or_else(ApiError::internal)?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/tasks/{}", task.id)))
        .json(task_json(&task)))
}

/// `GET /api/tasks?status=RUNNING&taskType=&page=1&limit=10`.
async fn list(state: Data, query: web::Query<HashMap<String, String>>) -> ApiResult<HttpResponse> {
    let mut raw = query.into_inner();
    if let Some(t) = raw.remove("taskType") {
        raw.insert("type".into(), t);
    }
    if let Some(t) = raw.get_mut("type") {
        *t = t.to_lowercase();
    }
    let p = Params(raw);
    let (page, limit, _) = p.page()?;
    let tq =
        crate::api::tasks::task_query(&p).map_err(|e| seed_fields(e, &[("type", "taskType")]))?;
    let (tasks, total) = state.shared.store.read(move |c| q::list(c, &tq)).await?;
    let items: Vec<Value> = tasks.iter().map(task_json).collect();
    Ok(HttpResponse::Ok()
        .json(json!({"items": items, "total": total, "page": page, "limit": limit})))
}

/// `POST /api/tasks/{id}/start` for a task (the dispatcher in `mod.rs` decides).
pub async fn start(state: &AppState, req: &HttpRequest, id: TaskId) -> ApiResult<HttpResponse> {
    control(state, req, id, TaskCommand::Start).await
}

async fn control(
    state: &AppState,
    req: &HttpRequest,
    id: TaskId,
    cmd: TaskCommand,
) -> ApiResult<HttpResponse> {
    let task = state.command(id, cmd, &caller(req)).await?;
    Ok(HttpResponse::Ok().json(task_json(&task)))
}

async fn pause(state: Data, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    control(&state, &req, task_id(&path)?, TaskCommand::Pause).await
}

async fn resume(state: Data, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    control(&state, &req, task_id(&path)?, TaskCommand::Resume).await
}

async fn cancel(state: Data, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    control(&state, &req, task_id(&path)?, TaskCommand::Cancel).await
}

/// `POST /api/tasks/{id}/restart`: `FAILED`/`CANCELLED` → `PENDING`, same id.
async fn restart(
    state: Data,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let task = ctl::restart(&state, task_id(&path)?, &caller(&req)).await?;
    Ok(HttpResponse::Ok().json(task_json(&task)))
}

/// `POST /api/tasks/{id}/status`: the unit's callback (`status`, `result`, `errorMessage`).
async fn status_callback(
    state: Data,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> ApiResult<HttpResponse> {
    let id = task_id(&path)?;
    let cmd = crate::api::tasks::callback_command(body.into_inner())?;
    control(&state, &req, id, cmd).await
}
