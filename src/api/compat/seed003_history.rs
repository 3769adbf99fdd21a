//! Seed 003's execution history, statistics, maintenance, configuration files and health:
//! an execution is a steward task (its `execution_id` is the task id, its `task_id` the name
//! of the schedule that made it, or null for tasks made otherwise).
//!
//! `POST /api/tasks/import {"config_path"}` and `POST /api/tasks/export {"output_path"}` read
//! and write files on the server, so both paths must lie under the data roots (SPEC §5);
//! `.json` files are JSON, anything else YAML. Import also takes the document inline as
//! `{"config": {...}}`. Health is `healthy` once crash recovery is done (`starting` before).

use std::collections::{BTreeMap, HashMap};

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::{time, Data};
use crate::api::fields::{Body, Params, MAX_LIMIT};
use crate::api::schedules::{load, view};
use crate::api::schedules_io::{export_doc, import_text};
use crate::api::schedules_spec::from_row;
use crate::api::statistics::compute;
use crate::api::{task_id, AppState};
use crate::domain::{Task, TaskStatus};
use crate::error::{ApiError, ApiResult};
use crate::store::schedules as qs;
use crate::store::tasks::{self as q, TaskQuery};

/// How many executions a list answers when the client gives no `limit` (the seed's default).
const DEFAULT_EXECUTIONS: i64 = 100;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/tasks/executions/", web::get().to(executions))
        .route("/api/tasks/executions", web::get().to(executions))
        .route("/api/tasks/executions/cleanup", web::delete().to(cleanup))
        .route("/api/tasks/executions/{id}", web::get().to(execution))
        .route("/api/tasks/statistics/", web::get().to(statistics))
        .route("/api/tasks/statistics", web::get().to(statistics))
        .route("/api/tasks/import", web::post().to(import))
        .route("/api/tasks/export", web::post().to(export))
        .route("/api/tasks/health", web::get().to(health));
}

/// A task as seed 003's TaskExecution.
fn execution_json(t: &Task, names: &HashMap<String, String>) -> Value {
    let duration = match (t.started_at, t.finished_at) {
        (Some(s), Some(f)) => Some((f - s) as f64 / 1000.0),
        _ => None,
    };
    json!({
        "execution_id": t.id,
        "task_id": t.schedule_id.as_ref().and_then(|s| names.get(s)),
        "task_name": t.name,
        "status": t.status,
        "start_time": time(t.started_at),
        "end_time": time(t.finished_at),
        "duration": duration,
        "result": t.result,
        "error_message": t.error,
        "retry_count": (t.attempt - 1).max(0),
        "progress": t.progress,
        "created_at": crate::domain::rfc3339(t.created_at),
    })
}

/// Schedule id → name, for every schedule.
async fn schedule_names(state: &AppState) -> ApiResult<HashMap<String, String>> {
    let rows = state.shared.store.read(qs::all).await?;
    Ok(rows.into_iter().map(|r| (r.id, r.name)).collect())
}

/// `GET /api/tasks/executions/?task_id=&status=&limit=`: newest first.
async fn executions(
    state: Data,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let p = Params(query.into_inner());
    let limit = p.int("limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_EXECUTIONS);
    let mut statuses = Vec::new();
    for s in p.list("status") {
        statuses.push(
            s.parse::<TaskStatus>()
                .map_err(|m| ApiError::field("status", m))?,
        );
    }
    let schedule_id = match p.str("task_id") {
        Some(name) => Some(load(&state, name).await?.id),
        None => None,
    };
    let tq = TaskQuery {
        statuses,
        schedule_id,
        limit,
        ..TaskQuery::default()
    };
    let (tasks, _) = state.shared.store.read(move |c| q::list(c, &tq)).await?;
    let names = schedule_names(&state).await?;
    let items: Vec<Value> = tasks.iter().map(|t| execution_json(t, &names)).collect();
    Ok(HttpResponse::Ok().json(items))
}

/// `GET /api/tasks/executions/{execution_id}`.
async fn execution(state: Data, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let t = state.load_task(task_id(&path)?).await?;
    let names = schedule_names(&state).await?;
    Ok(HttpResponse::Ok().json(execution_json(&t, &names)))
}

/// `DELETE /api/tasks/executions/cleanup?days=7`: finished tasks older than `days` go.
async fn cleanup(
    state: Data,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let p = Params(query.into_inner());
    let days = p.float("days", 0.0, 36_500.0)?.unwrap_or(7.0);
    let count = crate::monitor::prune(&state.shared, days).await;
    crate::app::reseed_metrics(&state).await;
    Ok(HttpResponse::Ok().json(json!({"success": true, "count": count})))
}

/// `GET /api/tasks/statistics/?task_id=`: `{task_id: TaskStatistics}` per registered task.
async fn statistics(
    state: Data,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let p = Params(query.into_inner());
    let schedules = match p.str("task_id") {
        Some(name) => vec![load(&state, name).await?],
        None => {
            let rows = state.shared.store.read(qs::all).await?;
            rows.into_iter()
                .map(|r| from_row(&state, r))
                .collect::<ApiResult<Vec<_>>>()?
        }
    };
    let mut out = BTreeMap::new();
    for s in schedules {
        let tq = TaskQuery {
            schedule_id: Some(s.id.clone()),
            ..TaskQuery::default()
        };
        let st = compute(&state, tq).await?;
        let v = view(&state, &s).await?;
        let count = |k: &str| st["by_status"][k].as_i64().unwrap_or(0);
        out.insert(
            s.name.clone(),
            json!({
                "task_id": s.name,
                "total_executions": st["total"],
                "success_count": count("success"),
                "failed_count": count("failed"),
                "running_count": count("running") + count("paused"),
                "cancelled_count": count("cancelled"),
                "success_rate": st["success_rate"],
                "avg_duration": st["duration_secs"]["mean"],
                "p95_duration": st["duration_secs"]["p95"],
                "max_duration": st["duration_secs"]["max"],
                "last_execution_time": v.last_run_at,
                "last_status": v.last_status,
                "next_run_time": v.next_run_at,
            }),
        );
    }
    Ok(HttpResponse::Ok().json(out))
}

/// A path from the body, confined to the data roots.
fn confined(b: &Body, field: &str, state: &AppState) -> ApiResult<Option<std::path::PathBuf>> {
    match b.string(&[field])? {
        None => Ok(None),
        Some(raw) => state
            .shared
            .env
            .path(&raw)
            .map(Some)
            .map_err(|m| ApiError::field(field, m)),
    }
}

fn is_json(path: &std::path::Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// `POST /api/tasks/import {"config_path"}` (or `{"config": {...}}`): upserts by `task_id`.
async fn import(
    state: Data,
    req: actix_web::HttpRequest,
    body: web::Json<Value>,
) -> ApiResult<HttpResponse> {
    let b = Body::new(body.into_inner())?;
    let (text, json, source) = match (confined(&b, "config_path", &state)?, b.object(&["config"])?)
    {
        (Some(path), _) => {
            let p = path.clone();
            let text = web::block(move || std::fs::read_to_string(&p))
                .await
                .map_err(|_| ApiError::internal())?
                .map_err(|e| {
                    ApiError::field(
                        "config_path",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
            (text, is_json(&path), path.display().to_string())
        }
        (None, Some(doc)) => (doc.to_string(), true, "the request".to_string()),
        (None, None) => {
            return Err(ApiError::field("config_path", "is required (or config)"));
        }
    };
    let report = import_text(&state, &text, json, &crate::api::caller(&req)).await?;
    let n = |k: &str| report[k].as_array().map_or(0, Vec::len);
    let message = format!(
        "imported {source}: {} created, {} updated",
        n("created"),
        n("updated")
    );
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "message": message,
        "data": report,
    })))
}

/// `POST /api/tasks/export {"output_path"}`: writes every registered task and group.
async fn export(state: Data, body: web::Json<Value>) -> ApiResult<HttpResponse> {
    let b = Body::new(body.into_inner())?;
    let path = confined(&b, "output_path", &state)?
        .ok_or_else(|| ApiError::field("output_path", "is required"))?;
    let doc = export_doc(&state).await?;
    let text = if is_json(&path) {
        serde_json::to_string_pretty(&doc).map_err(|_| ApiError::internal())?
    } else {
        serde_yaml::to_string(&doc).map_err(|e| {
            log::error!("cannot write YAML: {e}");
            ApiError::internal()
        })?
    };
    let p = path.clone();
    web::block(move || std::fs::write(&p, text))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|e| {
            ApiError::field(
                "output_path",
                format!("cannot write {}: {e}", path.display()),
            )
        })?;
    let n = |k: &str| doc[k].as_array().map_or(0, Vec::len);
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "path": path.display().to_string(),
        "tasks": n("tasks"),
        "task_groups": n("task_groups"),
    })))
}

/// `GET /api/tasks/health`.
async fn health(state: Data) -> ApiResult<HttpResponse> {
    let (registered, counts) = state
        .shared
        .store
        .read(|c| {
            let registered = qs::list(
                c,
                &qs::ScheduleQuery {
                    limit: 1,
                    ..Default::default()
                },
            )?
            .1;
            Ok((
                registered,
                q::counts_by_type_status(c, &TaskQuery::default())?,
            ))
        })
        .await?;
    let running: i64 = counts
        .iter()
        .filter(|(_, s, _)| s == TaskStatus::Running.as_str())
        .map(|(_, _, n)| n)
        .sum();
    let total: i64 = counts.iter().map(|(_, _, n)| n).sum();
    let status = if state.is_ready() {
        "healthy"
    } else {
        "starting"
    };
    Ok(HttpResponse::Ok().json(json!({
        "status": status,
        "total_tasks": registered,
        "running_tasks": running,
        "total_executions": total,
    })))
}
