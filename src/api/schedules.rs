//! `/api/v1/schedules` (SPEC §4, §6): create, list, read, replace, patch, delete, pause,
//! resume, trigger now, the runs of a schedule, and seed 003's import/export. A schedule is
//! addressed by its id or its name.

use std::collections::HashMap;

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::dto::Page;
use super::fields::Params;
use super::schedules_io;
use super::schedules_spec::{from_row, parse_schedule, to_row, ScheduleView};
use super::{caller, AppState};
use crate::actors::schedule::{fire_slot, Reload};
use crate::domain::schedule::Schedule;
use crate::domain::{now_ms, rfc3339, TaskId};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::store::schedules::{self as qs, ScheduleQuery};
use crate::store::StoreError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/schedules")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .route("/schedules/import", web::post().to(import))
    .route("/schedules/export", web::get().to(export))
    .service(
        web::resource("/schedules/{id}")
            .route(web::get().to(get))
            .route(web::put().to(replace))
            .route(web::patch().to(patch))
            .route(web::delete().to(delete)),
    )
    .route("/schedules/{id}/pause", web::post().to(pause))
    .route("/schedules/{id}/resume", web::post().to(resume))
    .route("/schedules/{id}/trigger", web::post().to(trigger))
    .route("/schedules/{id}/runs", web::get().to(runs));
}

type Data = web::Data<AppState>;

pub async fn load(state: &AppState, key: &str) -> ApiResult<Schedule> {
    let k = key.to_string();
    let row = state
        .shared
        .store
        .read(move |c| qs::get(c, &k))
        .await?
        .ok_or_else(|| ApiError::not_found("schedule", format!("'{key}'")))?;
    from_row(state, row)
}

/// The view, with the latest run's time and the status of what it made.
pub async fn view(state: &AppState, s: &Schedule) -> ApiResult<ScheduleView> {
    let id = s.id.clone();
    let last = state
        .shared
        .store
        .read(move |c| qs::last_run(c, &id))
        .await?
        .map(|(r, made)| {
            let status = match r.status.as_str() {
                "fired" => made.unwrap_or_else(|| "deleted".into()),
                other => other.to_string(),
            };
            (r.slot_at, status)
        });
    Ok(ScheduleView::new(s, last, now_ms()))
}

fn conflict_on_name(name: &str) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::Db(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => ApiError::new(
            ErrorCode::Conflict,
            format!("a schedule named '{name}' exists already"),
        ),
        other => other.into(),
    }
}

/// Stores a new schedule (409 on a taken name) and plans it.
pub async fn insert(state: &AppState, mut s: Schedule) -> ApiResult<Schedule> {
    s.id = TaskId::new().to_string();
    let row = to_row(&s);
    let name = s.name.clone();
    state
        .shared
        .store
        .write(move |c| qs::insert(c, &row))
        .await
        .map_err(conflict_on_name(&name))?;
    state.schedules.do_send(Reload { id: s.id.clone() });
    Ok(s)
}

/// Replaces a schedule's definition, keeping its id, creation time and last handled slot.
pub async fn update(state: &AppState, old: &Schedule, mut s: Schedule) -> ApiResult<Schedule> {
    s.id = old.id.clone();
    s.created_at = old.created_at;
    s.last_slot = old.last_slot;
    s.updated_at = now_ms();
    let row = to_row(&s);
    let name = s.name.clone();
    state
        .shared
        .store
        .write(move |c| qs::save(c, &row))
        .await
        .map_err(conflict_on_name(&name))?;
    state.schedules.do_send(Reload { id: s.id.clone() });
    Ok(s)
}

async fn respond(state: &AppState, s: &Schedule, created: bool) -> ApiResult<HttpResponse> {
    let v = view(state, s).await?;
    Ok(if created {
        HttpResponse::Created()
            .insert_header((header::LOCATION, format!("/api/v1/schedules/{}", s.id)))
            .json(v)
    } else {
        HttpResponse::Ok().json(v)
    })
}

/// Every schedule `s` depends on must exist, or be among `coming` (the names an import
/// brings with it): a dependency on no schedule would hold `s` back for ever.
pub async fn check_depends_on(state: &AppState, s: &Schedule, coming: &[String]) -> ApiResult<()> {
    match missing_dependency(state, s, coming).await? {
        Some(name) => Err(ApiError::field(
            "depends_on",
            format!("no schedule is named '{name}'"),
        )),
        None => Ok(()),
    }
}

/// The first schedule `s` depends on that neither exists nor is among `coming`.
pub async fn missing_dependency(
    state: &AppState,
    s: &Schedule,
    coming: &[String],
) -> ApiResult<Option<String>> {
    let wanted: Vec<String> = s
        .depends_on
        .iter()
        .filter(|d| !coming.contains(d))
        .cloned()
        .collect();
    if wanted.is_empty() {
        return Ok(None);
    }
    Ok(state
        .shared
        .store
        .read(move |c| {
            for name in wanted {
                if qs::get(c, &name)?.is_none() {
                    return Ok(Some(name));
                }
            }
            Ok(None)
        })
        .await?)
}

/// `POST /schedules`: 201 with the view.
async fn create(state: Data, body: web::Json<Value>) -> ApiResult<HttpResponse> {
    let (s, _) = parse_schedule(&state, body.into_inner(), now_ms(), true)?;
    check_depends_on(&state, &s, &[]).await?;
    let s = insert(&state, s).await?;
    respond(&state, &s, true).await
}

/// `GET /schedules?type=&tag=&enabled=&page=&limit=`.
async fn list(state: Data, query: web::Query<HashMap<String, String>>) -> ApiResult<HttpResponse> {
    let p = Params(query.into_inner());
    let (page, limit, offset) = p.page()?;
    let enabled = match p.str("enabled") {
        None => None,
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(other) => {
            return Err(ApiError::field(
                "enabled",
                format!("'{other}' is not true or false"),
            ))
        }
    };
    let kind = p.str("type").map(String::from);
    if let Some(k) = &kind {
        if !["cron", "interval", "once", "manual"].contains(&k.as_str()) {
            return Err(ApiError::field(
                "type",
                format!("'{k}' is not one of cron, interval, once, manual"),
            ));
        }
    }
    let q = ScheduleQuery {
        kind,
        tag: p.str("tag").map(String::from),
        enabled,
        offset,
        limit,
    };
    let (rows, total) = state.shared.store.read(move |c| qs::list(c, &q)).await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let s = from_row(&state, r)?;
        items.push(view(&state, &s).await?);
    }
    Ok(HttpResponse::Ok().json(Page {
        items,
        page,
        limit,
        total,
    }))
}

async fn get(state: Data, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let s = load(&state, &path).await?;
    respond(&state, &s, false).await
}

/// `PUT`: the whole definition again.
async fn replace(
    state: Data,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> ApiResult<HttpResponse> {
    let old = load(&state, &path).await?;
    let (s, _) = parse_schedule(&state, body.into_inner(), now_ms(), true)?;
    check_depends_on(&state, &s, &[]).await?;
    let s = update(&state, &old, s).await?;
    respond(&state, &s, false).await
}

/// `PATCH`: the given fields over the stored definition (`trigger` is replaced whole).
async fn patch(
    state: Data,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> ApiResult<HttpResponse> {
    let old = load(&state, &path).await?;
    let Value::Object(changes) = body.into_inner() else {
        return Err(ApiError::new(
            ErrorCode::Validation,
            "the body must be a JSON object",
        ));
    };
    let mut merged = old.spec.clone();
    if let Value::Object(m) = &mut merged {
        for (k, v) in changes {
            if k == "task" {
                m.remove("batch");
            }
            if k == "batch" {
                m.remove("task");
            }
            m.insert(k, v);
        }
    }
    let (s, _) = parse_schedule(&state, merged, now_ms(), true)?;
    check_depends_on(&state, &s, &[]).await?;
    let s = update(&state, &old, s).await?;
    respond(&state, &s, false).await
}

async fn delete(state: Data, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let s = load(&state, &path).await?;
    remove(&state, s).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Deletes a schedule and stops planning it.
pub(crate) async fn remove(state: &AppState, s: Schedule) -> ApiResult<()> {
    let id = s.id.clone();
    state
        .shared
        .store
        .write(move |c| qs::delete(c, &id))
        .await?;
    state.schedules.do_send(Reload { id: s.id });
    Ok(())
}

/// Pause / resume: resuming counts from now, so the slots of the pause are not misfires.
async fn set_enabled(state: &AppState, key: &str, enabled: bool) -> ApiResult<HttpResponse> {
    let old = load(state, key).await?;
    let mut s = old.clone();
    s.enabled = enabled;
    if let Value::Object(m) = &mut s.spec {
        m.insert("enabled".into(), json!(enabled));
    }
    if enabled && !old.enabled {
        s.last_slot = Some(now_ms());
    }
    s.updated_at = now_ms();
    let row = to_row(&s);
    state.shared.store.write(move |c| qs::save(c, &row)).await?;
    state.schedules.do_send(Reload { id: s.id.clone() });
    respond(state, &s, false).await
}

async fn pause(state: Data, path: web::Path<String>) -> ApiResult<HttpResponse> {
    set_enabled(&state, &path, false).await
}

async fn resume(state: Data, path: web::Path<String>) -> ApiResult<HttpResponse> {
    set_enabled(&state, &path, true).await
}

fn run_json(r: &qs::RunRow, made: Option<String>) -> Value {
    json!({
        "id": r.id,
        "slot_at": rfc3339(r.slot_at),
        "manual": r.manual,
        "status": r.status,
        "reason": r.reason,
        "task_id": r.task_id,
        "batch_id": r.batch_id,
        "run_status": made,
        "created_at": rfc3339(r.created_at),
    })
}

/// `POST .../trigger`: fire now (paused schedules too); the run, 201.
async fn trigger(state: Data, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let s = load(&state, &path).await?;
    let run = fire_slot(&state, &s, now_ms(), true).await?;
    Ok(HttpResponse::Created().json(run_json(&run, None)))
}

/// `GET .../runs`: newest first, with what each run made and its status now.
async fn runs(
    state: Data,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let s = load(&state, &path).await?;
    let p = Params(query.into_inner());
    let (page, limit, offset) = p.page()?;
    let (rows, total) = state
        .shared
        .store
        .read(move |c| qs::runs(c, &s.id, offset, limit))
        .await?;
    let items: Vec<Value> = rows.into_iter().map(|(r, m)| run_json(&r, m)).collect();
    Ok(HttpResponse::Ok().json(Page {
        items,
        page,
        limit,
        total,
    }))
}

/// `POST /schedules/import?format=yaml|json`: seed 003's file; upserts by name.
async fn import(
    state: Data,
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let p = Params(query.into_inner());
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(ErrorCode::Validation, "the body is not UTF-8 text"))?;
    let json = match p.str("format") {
        Some("json") => true,
        Some("yaml" | "yml") => false,
        Some(other) => {
            return Err(ApiError::field(
                "format",
                format!("'{other}' is not yaml or json"),
            ))
        }
        None => req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.contains("json")),
    };
    let report = schedules_io::import_text(&state, text, json, &caller(&req)).await?;
    Ok(HttpResponse::Ok().json(report))
}

/// `GET /schedules/export?format=yaml|json` (default yaml).
async fn export(
    state: Data,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let p = Params(query.into_inner());
    let doc = schedules_io::export_doc(&state).await?;
    match p.str("format").unwrap_or("yaml") {
        "json" => Ok(HttpResponse::Ok().json(doc)),
        "yaml" | "yml" => {
            let text = serde_yaml::to_string(&doc).map_err(|e| {
                log::error!("cannot write YAML: {e}");
                ApiError::internal()
            })?;
            Ok(HttpResponse::Ok()
                .content_type("application/yaml; charset=utf-8")
                .body(text))
        }
        other => Err(ApiError::field(
            "format",
            format!("'{other}' is not yaml or json"),
        )),
    }
}
