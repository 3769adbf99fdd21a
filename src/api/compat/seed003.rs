//! Seed 003's MyStocks task API under `/api/tasks/`: a registered task (a TaskConfig with
//! `task_id`, `task_name`, `task_type`, `task_module`/`task_function` or a steward type with
//! `params`, `priority` 100–900, `schedule`, `timeout`, `retry_count`, `retry_delay`, `tags`,
//! `dependencies`) is a steward schedule named by its `task_id`, translated exactly as the
//! seed 003 file import does (`schedules_io`). A TaskConfig without `schedule` is a schedule
//! with a manual trigger that runs only when started.
//!
//! Mapping: `register` = create the schedule (409 when the name is taken); `start` = trigger
//! now, with the body's `params` merged over the template's for this run; `stop` = cancel
//! the live tasks that schedule made (steward has no other "stop"; the schedule stays
//! registered and enabled); `DELETE` = delete the schedule. Answers that the seed calls
//! TaskResponse are `{"success", "message", "task_id", "data"}`. Executions, statistics,
//! cleanup, import/export and health are in `seed003_history`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::{resolve, seed003_history, Data, Target};
use crate::actors::schedule::fire_slot;
use crate::actors::TaskCommand;
use crate::api::fields::{Body, Params};
use crate::api::schedules::{insert, remove, view};
use crate::api::schedules_export::{seed_entry, SeedEntry};
use crate::api::schedules_io::{bodies, IMPORT_AND_CALL};
use crate::api::schedules_spec::{from_row, parse_schedule};
use crate::api::tasks_control::parse_new_task;
use crate::api::{caller, AppState};
use crate::domain::schedule::{Schedule, Template};
use crate::domain::{now_ms, TaskStatus};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::store::schedules as qs;
use crate::store::tasks::{self as q, TaskQuery};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/tasks/register", web::post().to(register))
        .route("/api/tasks/", web::get().to(list))
        .route("/api/tasks/{id}/stop", web::post().to(stop))
        .configure(seed003_history::configure);
}

/// Seed 003's TaskResponse.
pub fn response(message: impl Into<String>, task_id: &str, data: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "success": true,
        "message": message.into(),
        "task_id": task_id,
        "data": data,
    }))
}

/// A registered task as seed 003's TaskConfig (or task group), with the schedule's state.
pub async fn config_json(state: &AppState, s: &Schedule) -> ApiResult<Value> {
    let mut entry = match seed_entry(s, &|_| true) {
        SeedEntry::Task(t) | SeedEntry::Group(t) => t,
    };
    let v = view(state, s).await?;
    entry["enabled"] = json!(s.enabled);
    entry["next_run_time"] = json!(v.next_run_at);
    entry["last_run_time"] = json!(v.last_run_at);
    entry["last_status"] = json!(v.last_status);
    Ok(entry)
}

/// `GET /api/tasks/{task_id}` for a registered task.
pub async fn describe(state: &AppState, s: &Schedule) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(config_json(state, s).await?))
}

/// An error about `tasks[0].x` of the one-entry file a registration is: about `x`.
fn unprefix(mut e: ApiError) -> ApiError {
    const PREFIX: &str = "tasks[0]";
    if let Some(f) = &e.field {
        let bare = f.strip_prefix(PREFIX).map(|r| r.trim_start_matches('.'));
        if let Some(bare) = bare.filter(|b| !b.is_empty()) {
            let msg = e.message.strip_prefix("tasks[0]: ").unwrap_or(&e.message);
            e.message = msg.replacen(f.as_str(), bare, 1);
            e.field = Some(bare.to_string());
        }
    }
    e
}

/// `POST /api/tasks/register`: a TaskConfig becomes a schedule (409 when the name is taken).
async fn register(state: Data, body: web::Json<Value>) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let Value::Object(o) = &body else {
        return Err(ApiError::new(
            ErrorCode::Validation,
            "the body must be a JSON object (a TaskConfig)",
        ));
    };
    if o.contains_key("group_id") {
        return Err(ApiError::field(
            "group_id",
            "task groups are registered through POST /api/tasks/import",
        ));
    }
    let tz = o
        .get("timezone")
        .and_then(Value::as_str)
        .unwrap_or("UTC")
        .to_string();
    let (mut made, _) = bodies(&state, json!({ "tasks": [body] }), &tz).map_err(unprefix)?;
    let one = made.pop().ok_or_else(ApiError::internal)?;
    let (s, name) = parse_schedule(&state, one, now_ms(), true)?;
    let s = insert(&state, s).await?;
    let data = config_json(&state, &s).await?;
    Ok(response(format!("task '{name}' registered"), &name, data))
}

/// `GET /api/tasks/?task_type=&tags=a,b`: every registered task (not groups).
async fn list(
    state: Data,
    query: web::Query<std::collections::HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let p = Params(query.into_inner());
    let task_type = p.str("task_type").map(String::from);
    let tags = p.list("tags");
    let rows = state.shared.store.read(qs::all).await?;
    let mut out = Vec::new();
    for r in rows {
        let s = from_row(&state, r)?;
        if !matches!(s.template, Template::Task(_)) {
            continue;
        }
        if !tags.iter().all(|t| s.tags.contains(t)) {
            continue;
        }
        let entry = config_json(&state, &s).await?;
        if task_type
            .as_deref()
            .is_some_and(|t| entry["task_type"].as_str() != Some(t))
        {
            continue;
        }
        out.push(entry);
    }
    Ok(HttpResponse::Ok().json(out))
}

/// A task template with `params` merged over its own for one run: into `config.params` of a
/// `python` task, into the call's JSON argument of the `command` form the import writes,
/// else into `config`.
fn with_params(mut t: Value, params: &Map<String, Value>) -> Value {
    let merge = |target: &mut Value| {
        if !target.is_object() {
            *target = json!({});
        }
        if let Value::Object(m) = target {
            for (k, v) in params {
                m.insert(k.clone(), v.clone());
            }
        }
    };
    let ty = t
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let config = &mut t["config"];
    match ty.as_str() {
        "python" => merge(&mut config["params"]),
        "command" if config.pointer("/args/1").and_then(Value::as_str) == Some(IMPORT_AND_CALL) => {
            let mut own: Value = config
                .pointer("/args/4")
                .and_then(Value::as_str)
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_else(|| json!({}));
            merge(&mut own);
            config["args"][4] = json!(own.to_string());
        }
        _ => merge(config),
    }
    t
}

/// `POST /api/tasks/{task_id}/start` for a registered task: fire now (a paused or unscheduled
/// one too); 409 when the fire is skipped (`max_instances` runs live, a dependency unmet).
pub async fn start(state: &AppState, s: &Schedule, body: Value) -> ApiResult<HttpResponse> {
    let b = Body::new(body)?;
    let mut s = s.clone();
    if let Some(Value::Object(params)) = b.object(&["params"])? {
        let Template::Task(t) = &s.template else {
            return Err(ApiError::field("params", "a task group takes no params"));
        };
        let merged = with_params(t.clone(), &params);
        parse_new_task(state, merged.clone(), "task.").map_err(|mut e| {
            e.field = Some("params".into());
            e
        })?;
        s.template = Template::Task(merged);
    }
    let run = fire_slot(state, &s, now_ms(), true).await?;
    let reason = run.reason.clone().unwrap_or_default();
    match run.status.as_str() {
        "skipped" => Err(ApiError::new(
            ErrorCode::Conflict,
            format!("task '{}' was not started: {reason}", s.name),
        )),
        "failed" => Err(ApiError::new(
            ErrorCode::Unprocessable,
            format!("task '{}' could not start: {reason}", s.name),
        )),
        _ => Ok(response(
            format!("task '{}' started", s.name),
            &s.name,
            json!({
                "execution_id": run.task_id.clone().or(run.batch_id.clone()),
                "task_ids": run.task_id.iter().collect::<Vec<_>>(),
                "batch_id": run.batch_id,
                "run_id": run.id,
            }),
        )),
    }
}

/// `POST /api/tasks/{task_id}/stop`: cancels its live runs (for a task id: that task).
async fn stop(state: Data, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let by = caller(&req);
    let (name, ids) = match resolve(&state, &path).await? {
        Target::Task(t) => (t.id.to_string(), vec![t.id]),
        Target::Schedule(s) => {
            let tq = TaskQuery {
                statuses: vec![TaskStatus::Pending, TaskStatus::Running, TaskStatus::Paused],
                schedule_id: Some(s.id.clone()),
                limit: crate::api::fields::MAX_LIMIT,
                ..TaskQuery::default()
            };
            let (live, _) = state.shared.store.read(move |c| q::list(c, &tq)).await?;
            (s.name.clone(), live.into_iter().map(|t| t.id).collect())
        }
    };
    let mut cancelled = Vec::new();
    for id in ids {
        match state.command(id, TaskCommand::Cancel, &by).await {
            Ok(t) => cancelled.push(t.id),
            // It finished on its own meanwhile: nothing left to stop.
            Err(e) if e.code == ErrorCode::InvalidTransition => {}
            Err(e) => return Err(e),
        }
    }
    let message = match cancelled.len() {
        0 => format!("task '{name}' has no running execution"),
        n => format!("task '{name}' stopped ({n} execution(s) cancelled)"),
    };
    Ok(response(message, &name, json!({"cancelled": cancelled})))
}

/// `DELETE /api/tasks/{task_id}` for a registered task: unregisters it (its past runs stay).
pub async fn unregister(state: &AppState, s: Schedule) -> ApiResult<HttpResponse> {
    let name = s.name.clone();
    remove(state, s).await?;
    Ok(response(
        format!("task '{name}' unregistered"),
        &name,
        Value::Null,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn start_params_merge_into_each_template_form() {
        let p = params(json!({"date": "2025-01-02"}));
        let py = with_params(
            json!({"type": "python", "config": {"module": "m", "function": "f", "params": {"a": 1}}}),
            &p,
        );
        assert_eq!(
            py["config"]["params"],
            json!({"a": 1, "date": "2025-01-02"})
        );
        let cmd = with_params(
            json!({"type": "command", "config": {"program": "python3", "args": ["-c", IMPORT_AND_CALL, "m", "f", "{\"a\":1}"]}}),
            &p,
        );
        let arg: Value = serde_json::from_str(cmd["config"]["args"][4].as_str().unwrap()).unwrap();
        assert_eq!(arg, json!({"a": 1, "date": "2025-01-02"}));
        let plain = with_params(json!({"type": "sleep", "config": {"secs": 1}}), &p);
        assert_eq!(plain["config"], json!({"secs": 1, "date": "2025-01-02"}));
    }

    #[test]
    fn registration_errors_name_the_task_config_field() {
        let e = unprefix(ApiError::field("tasks[0].task_id", "is required"));
        assert_eq!(e.field.as_deref(), Some("task_id"));
        assert_eq!(e.message, "task_id: is required");
        let mut nested = ApiError::field("task_module", "is required");
        nested.field = Some("tasks[0].task_module".into());
        nested.message = "tasks[0]: task_module: is required".into();
        let e = unprefix(nested);
        assert_eq!(e.field.as_deref(), Some("task_module"));
        assert_eq!(e.message, "task_module: is required");
    }
}
