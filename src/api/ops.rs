//! Operator routes: alerts, the cross-task log search, retention cleanup, resources, and the
//! JSON metrics snapshot and trend history (seed 002's monitoring API).

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Timelike;
use serde_json::{json, Value};

use super::dto::{LogView, Page};
use super::fields::{Body, Params};
use super::{caller, AppState};
use crate::actors::scheduler::GetStats;
use crate::domain::{now_ms, LogLevel};
use crate::error::{ApiError, ApiResult};
use crate::monitor::{disk_usage, process_rss, prune};
use crate::resources::Sampler;
use crate::store::alerts::{self as qa, AlertQuery, AlertView};
use crate::store::system_logs as qs;
use crate::store::tasks::{self as q, LogSearch, TaskQuery};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/alerts", web::get().to(alerts))
        .route("/alerts/{id}/acknowledge", web::post().to(acknowledge))
        .route("/logs", web::get().to(logs))
        .route("/logs/search", web::post().to(search_logs))
        .route("/logs/{id}", web::get().to(log_line))
        .route("/maintenance/cleanup", web::post().to(cleanup))
        .route("/system/resources", web::get().to(resources))
        .route("/metrics", web::get().to(metrics_snapshot))
        .route("/metrics/history", web::get().to(metrics_history));
}

type Data = web::Data<AppState>;

/// Alert levels, as stored (SPEC §8); `level=` may name one in any case.
const ALERT_LEVELS: [&str; 4] = ["info", "warning", "error", "critical"];
/// SPEC §8's alert types.
const ALERT_TYPES: [&str; 6] = [
    "resource",
    "task_failure",
    "system_error",
    "performance",
    "unit_offline",
    "task_stalled",
];

async fn alerts(
    state: Data,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let p = Params(query.into_inner());
    let (page, limit, offset) = p.page()?;
    let acknowledged = match p.str("acknowledged") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(ApiError::field(
                "acknowledged",
                format!("'{other}' is not true or false"),
            ))
        }
    };
    let level = match p.str("level") {
        None => None,
        Some(raw) => {
            let l = raw.to_ascii_lowercase();
            if !ALERT_LEVELS.contains(&l.as_str()) {
                return Err(ApiError::field(
                    "level",
                    format!("'{raw}' is not one of {}", ALERT_LEVELS.join(", ")),
                ));
            }
            Some(l)
        }
    };
    let alert_type = match p.str("type") {
        Some(t) if !ALERT_TYPES.contains(&t) => {
            return Err(ApiError::field(
                "type",
                format!("'{t}' is not one of {}", ALERT_TYPES.join(", ")),
            ))
        }
        t => t.map(String::from),
    };
    let aq = AlertQuery {
        level,
        alert_type,
        acknowledged,
        offset,
        limit,
    };
    let (rows, total) = state.shared.store.read(move |c| qa::list(c, &aq)).await?;
    let items: Vec<AlertView> = rows.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(Page {
        items,
        page,
        limit,
        total,
    }))
}

async fn acknowledge(
    state: Data,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let by = caller(&req);
    let key = id.clone();
    let row = state
        .shared
        .store
        .write(move |c| qa::acknowledge(c, &key, &by, now_ms()))
        .await?;
    let row = row.ok_or_else(|| ApiError::not_found("alert", &id))?;
    Ok(HttpResponse::Ok().json(AlertView::from(row)))
}

/// Which logs a search covers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sources {
    Tasks,
    System,
    Both,
}

/// How deep a search over both sources may page (each source is read up to this far).
const MERGE_WINDOW: i64 = 10_000;

fn log_search(b: &Body, p: Option<&Params>) -> ApiResult<(LogSearch, Sources)> {
    let get = |k: &str| -> ApiResult<Option<String>> {
        match p {
            Some(p) => Ok(p.str(k).map(String::from)),
            None => b.string(&[k]),
        }
    };
    let min_level = match get("level")? {
        None => None,
        Some(l) => Some(LogLevel::parse_loose(&l).ok_or_else(|| {
            ApiError::field(
                "level",
                format!("'{l}' is not one of DEBUG, INFO, WARNING, ERROR"),
            )
        })?),
    };
    let task_id = match get("task_id")? {
        None => None,
        Some(t) => Some(
            t.parse()
                .map_err(|_| ApiError::field("task_id", format!("'{t}' is not a task id")))?,
        ),
    };
    let time = |k: &str| -> ApiResult<Option<i64>> {
        match get(k)? {
            None => Ok(None),
            Some(s) => crate::domain::parse_rfc3339(&s)
                .map(Some)
                .ok_or_else(|| ApiError::field(k, format!("'{s}' is not an RFC 3339 time"))),
        }
    };
    let sources = match (get("source")?.as_deref(), task_id.is_some()) {
        (None, true) | (Some("task"), _) => Sources::Tasks,
        (Some("system"), false) => Sources::System,
        (None, false) => Sources::Both,
        (Some("system"), true) => {
            return Err(ApiError::field(
                "source",
                "system log lines belong to no task; drop task_id or the source",
            ))
        }
        (Some(other), _) => {
            return Err(ApiError::field(
                "source",
                format!("'{other}' is not task or system"),
            ))
        }
    };
    let search = LogSearch {
        task_id,
        min_level,
        text: get("q")?.or(get("text")?),
        after: time("after")?,
        before: time("before")?,
        offset: 0,
        limit: 50,
    };
    Ok((search, sources))
}

/// A page of log lines from the task logs, the system log, or both (newest first).
async fn find_logs(
    state: &AppState,
    s: LogSearch,
    sources: Sources,
) -> ApiResult<(Vec<LogView>, i64)> {
    let store = &state.shared.store;
    match sources {
        Sources::Tasks => {
            let (rows, total) = store.read(move |c| q::search_logs(c, &s)).await?;
            Ok((rows.into_iter().map(Into::into).collect(), total))
        }
        Sources::System => {
            let (rows, total) = store.read(move |c| qs::search(c, &s)).await?;
            Ok((rows.into_iter().map(Into::into).collect(), total))
        }
        Sources::Both => {
            let (offset, limit) = (s.offset, s.limit);
            if offset + limit > MERGE_WINDOW {
                return Err(ApiError::field(
                    "page",
                    format!("pages beyond line {MERGE_WINDOW} of both logs together need source=task or source=system, or a narrower time range"),
                ));
            }
            // Each source's first offset+limit lines hold the merged page.
            let mut window = s;
            window.offset = 0;
            window.limit = offset + limit;
            let (tasks, system) = store
                .read(move |c| Ok((q::search_logs(c, &window)?, qs::search(c, &window)?)))
                .await?;
            let total = tasks.1 + system.1;
            let mut all: Vec<LogView> = tasks.0.into_iter().map(LogView::from).collect();
            all.extend(system.0.into_iter().map(LogView::from));
            all.sort_by(|a, b| b.at.cmp(&a.at).then(b.id.abs().cmp(&a.id.abs())));
            Ok((
                all.into_iter()
                    .skip(offset as usize)
                    .take(limit as usize)
                    .collect(),
                total,
            ))
        }
    }
}

/// `GET /logs?level=&task_id=&source=&q=&after=&before=&page=&limit=`: task and system log
/// lines, newest first.
async fn logs(state: Data, query: web::Query<HashMap<String, String>>) -> ApiResult<HttpResponse> {
    let p = Params(query.into_inner());
    let (page, limit, offset) = p.page()?;
    let (mut s, sources) = log_search(&Body::new(json!({}))?, Some(&p))?;
    s.offset = offset;
    s.limit = limit;
    let (items, total) = find_logs(&state, s, sources).await?;
    Ok(HttpResponse::Ok().json(Page {
        items,
        page,
        limit,
        total,
    }))
}

/// `POST /logs/search` with the same filters in a JSON body (`page`, `limit` too).
async fn search_logs(state: Data, body: web::Json<Value>) -> ApiResult<HttpResponse> {
    let b = Body::new(body.into_inner())?;
    // A filter misspelled or from another system would otherwise be ignored in silence, and
    // the answer would look like its result.
    const KNOWN: [&str; 9] = [
        "level", "task_id", "source", "q", "text", "after", "before", "page", "limit",
    ];
    if let Some(k) = b.raw_object().keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::field(
            k.clone(),
            format!("is not a search filter (known: {})", KNOWN.join(", ")),
        ));
    }
    let page = b.i64(&["page"])?.unwrap_or(1);
    let limit = b.i64(&["limit"])?.unwrap_or(50);
    if page < 1 {
        return Err(ApiError::field("page", "must be at least 1"));
    }
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            format!("{limit} is outside 1..=1000"),
        ));
    }
    let (mut s, sources) = log_search(&b, None)?;
    s.offset = (page - 1) * limit;
    s.limit = limit;
    let (items, total) = find_logs(&state, s, sources).await?;
    Ok(HttpResponse::Ok().json(Page {
        items,
        page,
        limit,
        total,
    }))
}

/// `GET /logs/{id}`: a task log line (positive id) or a system log line (negative id).
async fn log_line(state: Data, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let raw = path.into_inner();
    let id: i64 = raw
        .parse()
        .map_err(|_| ApiError::not_found("log line", &raw))?;
    let view = if id < 0 {
        let row = state.shared.store.read(move |c| qs::get(c, -id)).await?;
        row.map(LogView::from)
    } else {
        let row = state.shared.store.read(move |c| q::log_line(c, id)).await?;
        row.map(LogView::from)
    };
    Ok(HttpResponse::Ok().json(view.ok_or_else(|| ApiError::not_found("log line", id))?))
}

/// `POST /maintenance/cleanup {"days": N}`: deletes finished tasks older than N days.
/// `POST /maintenance/cleanup?days=N` (seed 003's form), or `{"days": N}` in the body; the body
/// is optional, and `days` defaults to 7.
async fn cleanup(
    state: Data,
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let b = Body::new(super::compat::json_or_empty(&body)?)?;
    let p = Params(query.into_inner());
    let days = match p.float("days", 0.0, crate::config::MAX_SECS / 86_400.0)? {
        Some(d) => d,
        None => b.f64(&["days"])?.unwrap_or(7.0),
    };
    if days < 0.0 {
        return Err(ApiError::field(
            "days",
            format!("{days} must not be negative"),
        ));
    }
    let deleted = prune(&state.shared, days).await;
    state.shared.syslog.info(
        "maintenance",
        format!(
            "cleanup by {} removed {deleted} finished task(s) older than {days} days",
            caller(&req)
        ),
    );
    crate::app::reseed_metrics(&state).await;
    Ok(HttpResponse::Ok().json(json!({"success": true, "deleted": deleted, "days": days})))
}

async fn usage(state: &AppState) -> (crate::resources::Usage, (f64, u64, u64)) {
    let dir = state.shared.config().data_dir.clone();
    actix_rt::task::spawn_blocking(move || {
        let s = Sampler::new();
        (s.sample(), disk_usage(&dir))
    })
    .await
    .unwrap_or_default()
}

/// `GET /system/resources`: CPU, memory, the data dir's disk, this process.
async fn resources(state: Data) -> ApiResult<HttpResponse> {
    let (u, (disk_pct, disk_total, disk_used)) = usage(&state).await;
    Ok(HttpResponse::Ok().json(json!({
        "cpu": {"percent": u.cpu_percent, "count": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)},
        "memory": {"total": u.memory_total, "used": u.memory_used, "percent": u.memory_percent},
        "disk": {"path": state.shared.config().data_dir, "total": disk_total, "used": disk_used, "percent": disk_pct},
        "process": {"pid": std::process::id(), "rss_bytes": process_rss(), "uptime_secs": state.started.elapsed().as_secs_f64()},
    })))
}

/// `GET /api/v1/metrics`: a snapshot in the shape of seed 002's `SystemMetrics`.
async fn metrics_snapshot(state: Data) -> ApiResult<HttpResponse> {
    let (u, (disk_pct, disk_total, disk_used)) = usage(&state).await;
    let stats = state.scheduler.send(GetStats).await?;
    let now = chrono::Utc::now();
    let midnight = now.timestamp_millis() - i64::from(now.num_seconds_from_midnight()) * 1000;
    let q = TaskQuery {
        created_after: None,
        ..TaskQuery::default()
    };
    let (done, failed) = state
        .shared
        .store
        .read(move |c| {
            let mut ok = q.clone();
            ok.statuses = vec![crate::domain::TaskStatus::Success];
            let mut bad = q;
            bad.statuses = vec![crate::domain::TaskStatus::Failed];
            Ok((
                q::finished_since(c, &ok, midnight)?,
                q::finished_since(c, &bad, midnight)?,
            ))
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "timestamp": now.to_rfc3339(),
        "cpu_percent": u.cpu_percent,
        "cpu_count": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "memory_total": u.memory_total,
        "memory_used": u.memory_used,
        "memory_percent": u.memory_percent,
        "disk_total": disk_total,
        "disk_used": disk_used,
        "disk_percent": disk_pct,
        "active_tasks": stats.active,
        "pending_tasks": stats.pending,
        "completed_tasks_today": done,
        "failed_tasks_today": failed,
        "process_rss_bytes": process_rss(),
    })))
}

/// `GET /api/v1/metrics/history`: the trend samples kept for `metrics_history_secs`.
async fn metrics_history(state: Data) -> HttpResponse {
    let samples: Vec<crate::monitor::Sample> = state
        .history
        .lock()
        .map(|h| h.iter().cloned().collect())
        .unwrap_or_default();
    HttpResponse::Ok().json(
        json!({"interval_secs": crate::monitor::SAMPLE_EVERY.as_secs_f64(), "items": samples}),
    )
}
