//! Seed 001's market-data TaskManager routes: `GET /api/market-data/tasks/{task_id}` answers
//! the task's row of `market_data_tasks` (`task_id`, `task_type`, `status`, `source`,
//! `progress` as an integer 0–100, `stage`, `message`, `error`, `result`, times), and
//! `POST /api/market-data/tasks/{task_id}/retry` makes a new task of the same type and config
//! (`source: retry`) and answers 202 `{"task_id": <new id>}`.
//!
//! Where seed 001 and SPEC differ, SPEC wins: retrying a task that is not `failed` is
//! `409 invalid_transition` (the seed answers 400), and errors have the SPEC §6 shape.
//!
//! The seed submits tasks from Python, not over HTTP. `POST /api/market-data/tasks`
//! (`task_type`, `config` or `params`) is added here so its clients get its mutual exclusion:
//! the task holds the mutex `market_data` with `mutex_policy: reject`, so a second
//! submission while one is pending, running or paused is `409 mutex_held` (the seed's
//! "已有任务正在运行"). Both can be overridden in the body.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{seed_fields, time, Data};
use crate::api::tasks_control as ctl;
use crate::api::{caller, task_id};
use crate::domain::Task;
use crate::error::{ApiError, ApiResult};

/// The mutex every submission through this alias holds unless it names another.
const MUTEX: &str = "market_data";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/market-data/tasks", web::post().to(submit))
        .route("/api/market-data/tasks/{id}", web::get().to(get))
        .route("/api/market-data/tasks/{id}/retry", web::post().to(retry));
}

/// The task as seed 001's `market_data_tasks` row.
fn row(t: &Task) -> Value {
    json!({
        "task_id": t.id,
        "task_type": t.task_type,
        "status": t.status,
        "source": t.source.as_str(),
        "progress": t.progress.floor() as i64,
        "stage": t.stage,
        "message": t.message,
        "error": t.error,
        "result": t.result,
        "created_at": crate::domain::rfc3339(t.created_at),
        "started_at": time(t.started_at),
        "finished_at": time(t.finished_at),
    })
}

fn accepted(t: &Task) -> HttpResponse {
    HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/api/market-data/tasks/{}", t.id)))
        .json(json!({"task_id": t.id}))
}

/// `POST /api/market-data/tasks`: 202 `{"task_id"}`, or 409 while another holds the mutex.
async fn submit(state: Data, req: HttpRequest, body: web::Json<Value>) -> ApiResult<HttpResponse> {
    let mut body = body.into_inner();
    if let Value::Object(o) = &mut body {
        o.entry("mutex").or_insert(json!(MUTEX));
        o.entry("mutex_policy").or_insert(json!("reject"));
    }
    let spec = ctl::parse_new_task(&state, body, "")
        .map_err(|e| seed_fields(e, &[("type", "task_type")]))?;
    let mut made = ctl::create(&state, vec![spec], &caller(&req)).await?;
    let task = made.pop().ok_or_else(ApiError::internal)?;
    Ok(accepted(&task))
}

/// `GET /api/market-data/tasks/{task_id}`.
async fn get(state: Data, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let t = state.load_task(task_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(row(&t)))
}

/// `POST /api/market-data/tasks/{task_id}/retry`: 202 with the new task's id.
async fn retry(state: Data, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let t = ctl::retry(&state, task_id(&path)?, &caller(&req)).await?;
    Ok(accepted(&t))
}
