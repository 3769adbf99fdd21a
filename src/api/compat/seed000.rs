//! Seed 000's RPC-style back-test API under `/api/v1/backtest/`: `createBatch`,
//! `getBatchStatus`, `cancelBatch`, `getTaskStatus`, `getTaskList`, `getTaskResult`, with
//! snake_case fields and the seed's status words: a batch is `pending`, `running`, `paused`,
//! `completed`, `failed` or `cancelled`; a task is `queued`, `running`, `paused`,
//! `completed`, `failed` or `cancelled`.
//!
//! `createBatch` takes the seed's BatchRequest (`name` or `batch_name`, `description`,
//! `priority`, `execution_strategy` `parallel`|`sequential`, `max_parallel`, `on_failure`,
//! a default `task_type`, and `tasks`, each with `task_type`/`type`, `config`/`params`,
//! `name`, `priority`, `key`, `depends_on`) and answers 200 with the batch id and task ids.
//! `getBatchStatus` is a long poll when given `after_version` (and `timeout_secs`).

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{json_or_empty, seed_fields, time, Data};
use crate::api::batches::{batch_id, cancel_batch, create_batch, view, wait_view};
use crate::api::dto::{BatchView, HistoryView};
use crate::api::fields::Params;
use crate::api::{caller, task_id};
use crate::domain::{Task, TaskId, TaskStatus};
use crate::error::{ApiError, ApiResult};
use crate::store::tasks as q;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/backtest/createBatch", web::post().to(create))
        .route(
            "/api/v1/backtest/getBatchStatus",
            web::get().to(batch_status),
        )
        .route("/api/v1/backtest/cancelBatch", web::post().to(cancel))
        .route("/api/v1/backtest/getTaskStatus", web::get().to(task_status))
        .route("/api/v1/backtest/getTaskList", web::get().to(task_list))
        .service(
            web::resource("/api/v1/backtest/getTaskResult")
                .wrap(actix_web::middleware::Compress::default())
                .route(web::get().to(task_result)),
        );
}

/// A task status in seed 000's words.
pub fn task_word(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Pending => "queued",
        TaskStatus::Success => "completed",
        other => other.as_str(),
    }
}

/// A batch status in seed 000's words.
fn batch_word(s: &str) -> &str {
    if s == "success" {
        "completed"
    } else {
        s
    }
}

/// A status filter in seed 000's words (or steward's) as steward's.
fn status_filter(raw: &str) -> String {
    raw.split(',')
        .map(|s| match s.trim().to_ascii_lowercase().as_str() {
            "queued" => "pending".to_string(),
            "completed" => "success".to_string(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The seed's BatchRequest as the body of `POST /api/v1/batches`.
fn batch_body(body: Value) -> ApiResult<Value> {
    let Value::Object(mut o) = body else {
        return Err(ApiError::new(
            crate::error::ErrorCode::Validation,
            "the body must be a JSON object (a BatchRequest)",
        ));
    };
    for (seed, ours) in [
        ("batch_name", "name"),
        ("execution_strategy", "mode"),
        ("strategy", "mode"),
        ("max_concurrent", "max_parallel"),
    ] {
        if let Some(v) = o.remove(seed) {
            o.entry(ours).or_insert(v);
        }
    }
    let default_type = o.remove("task_type");
    if let (Some(ty), Some(Value::Array(tasks))) = (default_type, o.get_mut("tasks")) {
        for t in tasks.iter_mut().filter_map(Value::as_object_mut) {
            if !["type", "task_type", "taskType"]
                .iter()
                .any(|k| t.contains_key(*k))
            {
                t.insert("type".into(), ty.clone());
            }
        }
    }
    Ok(Value::Object(o))
}

/// The seed's batch status answer.
fn batch_json(v: &BatchView) -> Value {
    json!({
        "batch_id": v.id,
        "name": v.name,
        "description": v.description,
        "status": batch_word(v.status),
        "priority": v.priority,
        "execution_strategy": v.mode,
        "progress": v.progress,
        "eta_secs": v.eta_secs,
        "total_tasks": v.task_count,
        "queued_tasks": v.counts.pending,
        "running_tasks": v.counts.running,
        "paused_tasks": v.counts.paused,
        "completed_tasks": v.counts.success,
        "failed_tasks": v.counts.failed,
        "cancelled_tasks": v.counts.cancelled,
        "version": v.version,
        "created_at": v.created_at,
        "started_at": v.started_at,
        "finished_at": v.finished_at,
    })
}

/// The seed's TaskInfo.
fn task_info(t: &Task) -> Value {
    json!({
        "task_id": t.id,
        "batch_id": t.batch_id,
        "name": t.name,
        "task_type": t.task_type,
        "status": task_word(t.status),
        "progress": t.progress,
        "stage": t.stage,
        "message": t.message,
        "eta_secs": t.eta_secs,
        "config": crate::domain::redact::redacted(&t.config),
        "error": t.error,
        "attempt": t.attempt,
        "created_at": crate::domain::rfc3339(t.created_at),
        "started_at": time(t.started_at),
        "finished_at": time(t.finished_at),
    })
}

/// `POST createBatch`: validated and stored in one transaction, as `POST /api/v1/batches`.
async fn create(state: Data, req: HttpRequest, body: web::Json<Value>) -> ApiResult<HttpResponse> {
    let body = batch_body(body.into_inner())?;
    let (batch, ids) = create_batch(&state, body, &caller(&req), None)
        .await
        .map_err(|e| seed_fields(e, &[("mode", "execution_strategy")]))?;
    let v = view(&state, &batch.id).await?;
    let mut out = batch_json(&v);
    out["task_ids"] = json!(ids);
    Ok(HttpResponse::Ok().json(out))
}

/// The batch id from the query string (`batch_id` or `batchId`).
fn batch_param(p: &Params) -> ApiResult<String> {
    let raw = p
        .str("batch_id")
        .or(p.str("batchId"))
        .ok_or_else(|| ApiError::field("batch_id", "is required"))?;
    batch_id(raw)
}

/// `GET getBatchStatus?batch_id=[&after_version=&timeout_secs=]`.
async fn batch_status(
    state: Data,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let p = Params(query.into_inner());
    let id = batch_param(&p)?;
    let after = p.int("after_version", 0, i64::MAX)?;
    let timeout = p.float("timeout_secs", 0.0, 300.0)?;
    let v = match (after, timeout) {
        (None, None) => view(&state, &id).await?,
        _ => wait_view(&state, &id, after, timeout.unwrap_or(30.0)).await?,
    };
    Ok(HttpResponse::Ok().json(batch_json(&v)))
}

/// `POST cancelBatch {"batch_id"}` (or `?batch_id=`).
async fn cancel(
    state: Data,
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let mut params = query.into_inner();
    if let Value::Object(o) = json_or_empty(&body)? {
        for k in ["batch_id", "batchId"] {
            if let Some(Value::String(s)) = o.get(k) {
                params.insert(k.into(), s.clone());
            }
        }
    }
    let id = batch_param(&Params(params))?;
    let v = cancel_batch(&state, &id, &caller(&req)).await?;
    Ok(HttpResponse::Ok().json(batch_json(&v)))
}

/// `GET getTaskStatus?task_id=[&include_history=true]`, or `?task_ids=a,b` for several
/// (`{"tasks": [...], "not_found": [...]}`).
async fn task_status(
    state: Data,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let p = Params(query.into_inner());
    let history = matches!(p.str("include_history"), Some("true" | "1"));
    if let Some(raw) = p.str("task_id").or(p.str("taskId")) {
        let t = state.load_task(task_id(raw)?).await?;
        let mut info = task_info(&t);
        if history {
            let id = t.id;
            let rows = state.shared.store.read(move |c| q::history(c, id)).await?;
            let items: Vec<HistoryView> = rows.into_iter().map(Into::into).collect();
            info["status_history"] = json!(items);
        }
        return Ok(HttpResponse::Ok().json(info));
    }
    let list = p.list("task_ids");
    if list.is_empty() {
        return Err(ApiError::field("task_id", "is required (or task_ids)"));
    }
    if list.len() > crate::api::fields::MAX_LIMIT as usize {
        return Err(ApiError::field("task_ids", "at most 1000 ids"));
    }
    let mut ids = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        ids.push(s.parse::<TaskId>().map_err(|_| {
            ApiError::field(format!("task_ids[{i}]"), format!("'{s}' is not a task id"))
        })?);
    }
    let mut tasks = Vec::new();
    let mut missing = Vec::new();
    for id in ids {
        match state.load_task(id).await {
            Ok(t) => tasks.push(task_info(&t)),
            Err(e) if e.code == crate::error::ErrorCode::NotFound => missing.push(id),
            Err(e) => return Err(e),
        }
    }
    Ok(HttpResponse::Ok().json(json!({"tasks": tasks, "not_found": missing})))
}

/// `GET getTaskList?batch_id=&status=&task_type=&sort=&page=&limit=`: SPEC §6's list shape.
async fn task_list(
    state: Data,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let mut raw = query.into_inner();
    if let Some(s) = raw.get_mut("status") {
        *s = status_filter(s);
    }
    if let Some(t) = raw.remove("task_type") {
        raw.insert("type".into(), t);
    }
    if let Some(b) = raw.get("batch_id").cloned() {
        raw.insert("batch_id".into(), batch_id(&b)?);
    }
    let p = Params(raw);
    let (page, limit, _) = p.page()?;
    let tq =
        crate::api::tasks::task_query(&p).map_err(|e| seed_fields(e, &[("type", "task_type")]))?;
    let (tasks, total) = state.shared.store.read(move |c| q::list(c, &tq)).await?;
    let items: Vec<Value> = tasks.iter().map(task_info).collect();
    Ok(HttpResponse::Ok()
        .json(json!({"items": items, "page": page, "limit": limit, "total": total})))
}

/// `GET getTaskResult?task_id=` (gzip when the client asks).
async fn task_result(
    state: Data,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let p = Params(query.into_inner());
    let raw = p
        .str("task_id")
        .or(p.str("taskId"))
        .ok_or_else(|| ApiError::field("task_id", "is required"))?;
    let t = state.load_task(task_id(raw)?).await?;
    Ok(HttpResponse::Ok().json(json!({
        "task_id": t.id,
        "batch_id": t.batch_id,
        "status": task_word(t.status),
        "result": t.result,
        "error": t.error,
        "finished_at": time(t.finished_at),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_request_becomes_a_v1_batch() {
        let v1 = batch_body(json!({
            "batch_name": "ma-grid",
            "execution_strategy": "sequential",
            "task_type": "noop",
            "tasks": [{"config": {"fast": 5}}, {"type": "sleep", "config": {"secs": 0}}]
        }))
        .unwrap();
        assert_eq!(v1["name"], "ma-grid");
        assert_eq!(v1["mode"], "sequential");
        assert_eq!(v1["tasks"][0]["type"], "noop");
        assert_eq!(v1["tasks"][1]["type"], "sleep");
        assert!(v1.get("task_type").is_none());
    }

    #[test]
    fn seed_status_words_map_both_ways() {
        assert_eq!(task_word(TaskStatus::Pending), "queued");
        assert_eq!(task_word(TaskStatus::Success), "completed");
        assert_eq!(batch_word("success"), "completed");
        assert_eq!(
            status_filter("queued, COMPLETED,failed"),
            "pending,success,failed"
        );
    }
}
