//! `/api/v1/tasks`: create, list (filters, sorts, CSV/NDJSON export), read, long-poll, patch,
//! delete, control, history, logs, progress, the unit callback and results.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use futures_util::stream;
use serde_json::{json, Value};

use super::dto::{HistoryView, LogView, Page, TaskView};
use super::fields::{Body, Params};
use super::tasks_control as ctl;
use super::{caller, task_id, AppState};
use crate::actors::TaskCommand;
use crate::domain::{now_ms, rfc3339, LogLevel, TaskStatus};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::events::{EventBody, Watched};
use crate::store::rows::LogLine;
use crate::store::tasks::{self as q, LogQuery, SortColumn, TaskQuery};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tasks")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .route(
        "/tasks/statistics",
        web::get().to(super::statistics::statistics),
    )
    .service(
        web::resource("/tasks/{id}")
            .route(web::get().to(get))
            .route(web::patch().to(patch))
            .route(web::delete().to(delete)),
    )
    .route("/tasks/{id}/wait", web::get().to(wait))
    .route("/tasks/{id}/start", web::post().to(start))
    .route("/tasks/{id}/pause", web::post().to(pause))
    .route("/tasks/{id}/resume", web::post().to(resume))
    .route("/tasks/{id}/cancel", web::post().to(cancel))
    .route("/tasks/{id}/restart", web::post().to(restart))
    .route("/tasks/{id}/retry", web::post().to(retry))
    .route("/tasks/{id}/history", web::get().to(history))
    .service(
        web::resource("/tasks/{id}/logs")
            .route(web::get().to(logs))
            .route(web::post().to(add_log)),
    )
    .route("/tasks/{id}/progress", web::post().to(progress))
    .route("/tasks/{id}/status", web::post().to(status_callback))
    .service(
        web::resource("/tasks/{id}/result")
            .wrap(actix_web::middleware::Compress::default())
            .route(web::get().to(result)),
    );
}

type Data = web::Data<AppState>;

/// `POST /tasks`: 201 with `Location`.
async fn create(state: Data, req: HttpRequest, body: web::Json<Value>) -> ApiResult<HttpResponse> {
    let mut spec = ctl::parse_new_task(&state, body.into_inner(), "")?;
    if let Some(who) = crate::auth::identity(&req) {
        // An authenticated caller cannot attribute work to someone else.
        spec.created_by = Some(who.name);
    } else if spec.created_by.is_none() {
        // As a batch's tasks are: the `X-Steward-User` header, else `api`.
        spec.created_by = Some(caller(&req));
    }
    let mut tasks = ctl::create(&state, vec![spec], &caller(&req)).await?;
    let task = tasks.pop().ok_or_else(ApiError::internal)?;
    let location = format!("/api/v1/tasks/{}", task.id);
    let view = state.view(task).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(view))
}

/// A filter naming a batch or a schedule by id (a UUID): anything else is a 400, not an
/// empty list.
fn uuid_filter(p: &Params, key: &str) -> ApiResult<Option<String>> {
    match p.str(key) {
        None => Ok(None),
        Some(v) if v.parse::<uuid::Uuid>().is_ok() => Ok(Some(v.to_string())),
        Some(v) => Err(ApiError::field(key, format!("'{v}' is not an id"))),
    }
}

pub(crate) fn task_query(p: &Params) -> ApiResult<TaskQuery> {
    let (_, limit, offset) = p.page()?;
    let mut statuses = Vec::new();
    for s in p.list("status") {
        statuses.push(
            s.parse::<TaskStatus>()
                .map_err(|m| ApiError::field("status", m))?,
        );
    }
    let mut ids = Vec::new();
    for s in p.list("ids") {
        ids.push(
            s.parse()
                .map_err(|_| ApiError::field("ids", format!("'{s}' is not a task id")))?,
        );
    }
    let (sort, descending) = match p.str("sort") {
        None => (SortColumn::CreatedAt, true),
        Some(raw) => {
            let (name, desc) = match raw.strip_prefix('-') {
                Some(n) => (n, true),
                None => (raw.strip_prefix('+').unwrap_or(raw), false),
            };
            let col = SortColumn::parse(name).ok_or_else(|| {
                let allowed: Vec<String> =
                    SortColumn::NAMES.iter().map(|n| n.to_string()).collect();
                ApiError::field(
                    "sort",
                    format!(
                        "'{raw}' is not one of {} (prefix - for descending)",
                        allowed.join(", ")
                    ),
                )
            })?;
            (col, desc)
        }
    };
    Ok(TaskQuery {
        statuses,
        task_type: p.str("type").map(String::from),
        tag: p.str("tag").map(String::from),
        batch_id: uuid_filter(p, "batch_id")?,
        schedule_id: uuid_filter(p, "schedule_id")?,
        ids,
        text: p.str("q").map(String::from),
        created_after: p.time("created_after")?,
        created_before: p.time("created_before")?,
        sort,
        descending,
        offset,
        limit,
    })
}

/// `GET /tasks`: a page, or every match as `format=csv` / `format=ndjson`.
async fn list(state: Data, query: web::Query<HashMap<String, String>>) -> ApiResult<HttpResponse> {
    let p = Params(query.into_inner());
    let tq = task_query(&p)?;
    match p.str("format") {
        None | Some("json") => {}
        Some("csv") => return Ok(export(state, tq, true)),
        Some("ndjson") => return Ok(export(state, tq, false)),
        Some(other) => {
            return Err(ApiError::field(
                "format",
                format!("'{other}' is not one of json, csv, ndjson"),
            ))
        }
    }
    let (page, limit, _) = p.page()?;
    let q2 = tq.clone();
    // With only status and type filters the total can come from the kept counts: a
    // COUNT(*) over millions of rows is the slow part of a page.
    let kept = if tq.by_status_and_type_only() {
        // Counted from the bus: first let the counts take in what was published before.
        let published = state.shared.events.last_seq();
        state.metrics.caught_up(published, KEPT_COUNTS_WAIT).await;
        Some(state.metrics.count(tq.task_type.as_deref(), &tq.statuses))
    } else {
        None
    };
    let (tasks, total) = state
        .shared
        .store
        .read(move |c| q::list_counted(c, &q2, kept))
        .await?;
    let items = state.views(tasks).await?;
    Ok(HttpResponse::Ok().json(Page {
        items,
        page,
        limit,
        total,
    }))
}

/// The longest a list waits for the kept counts to catch up with the bus.
const KEPT_COUNTS_WAIT: Duration = Duration::from_secs(2);

const CSV_COLUMNS: [&str; 14] = [
    "id",
    "name",
    "type",
    "status",
    "priority",
    "progress",
    "stage",
    "attempt",
    "created_at",
    "started_at",
    "finished_at",
    "error",
    "tags",
    "batch_id",
];
const EXPORT_CHUNK: i64 = 1000;

/// Streams every matching task, a chunk per database read.
fn export(state: Data, mut tq: TaskQuery, csv: bool) -> HttpResponse {
    tq.limit = EXPORT_CHUNK;
    let header_line = csv.then(|| format!("{}\n", CSV_COLUMNS.join(",")));
    let body = stream::unfold(
        (state, tq, 0i64, header_line, false),
        move |(state, tq, offset, head, done)| async move {
            if let Some(h) = head {
                return Some((
                    Ok::<_, actix_web::Error>(web::Bytes::from(h)),
                    (state, tq, offset, None, done),
                ));
            }
            if done {
                return None;
            }
            let q2 = tq.clone();
            let chunk = match state
                .shared
                .store
                .read(move |c| q::list_chunk(c, &q2, offset, EXPORT_CHUNK))
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    log::error!("export failed: {e}");
                    return None;
                }
            };
            let last = (chunk.len() as i64) < EXPORT_CHUNK;
            let mut out = Vec::new();
            for t in &chunk {
                if csv {
                    let mut w = ::csv::WriterBuilder::new()
                        .has_headers(false)
                        .from_writer(Vec::new());
                    let row = [
                        t.id.to_string(),
                        t.name.clone(),
                        t.task_type.clone(),
                        t.status.to_string(),
                        t.priority.to_string(),
                        t.progress.to_string(),
                        t.stage.clone().unwrap_or_default(),
                        t.attempt.to_string(),
                        rfc3339(t.created_at),
                        t.started_at.map(rfc3339).unwrap_or_default(),
                        t.finished_at.map(rfc3339).unwrap_or_default(),
                        t.error.clone().unwrap_or_default(),
                        t.tags.join(";"),
                        t.batch_id.clone().unwrap_or_default(),
                    ];
                    if w.write_record(&row).is_ok() {
                        if let Ok(bytes) = w.into_inner() {
                            out.extend(bytes);
                        }
                    }
                } else if let Ok(line) = serde_json::to_vec(&TaskView::new(t.clone(), None)) {
                    out.extend(line);
                    out.push(b'\n');
                }
            }
            Some((
                Ok(web::Bytes::from(out)),
                (state, tq, offset + EXPORT_CHUNK, None, last),
            ))
        },
    );
    let ct = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    HttpResponse::Ok().content_type(ct).streaming(body)
}

/// `GET /tasks/{id}`.
async fn get(state: Data, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let task = state.load_task(task_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(state.view(task).await?))
}

const DEFAULT_WAIT_SECS: f64 = 30.0;
const MAX_WAIT_SECS: f64 = 300.0;

/// `GET /tasks/{id}/wait`: answers when the version passes `after_version`, the task is
/// finished, or `timeout_secs` passes.
async fn wait(
    state: Data,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let id = task_id(&path)?;
    let p = Params(query.into_inner());
    let after = p.int("after_version", 0, i64::MAX)?;
    let timeout = p
        .float("timeout_secs", 0.0, MAX_WAIT_SECS)?
        .unwrap_or(DEFAULT_WAIT_SECS);
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(timeout);
    let watch = state.shared.events.watch(Watched::Task(id));
    loop {
        let task = state.load_task(id).await?;
        let changed = after.is_none_or(|v| task.version > v);
        if changed || task.status.is_terminal() || tokio::time::Instant::now() >= deadline {
            return Ok(HttpResponse::Ok().json(state.view(task).await?));
        }
        watch.changed(deadline).await;
    }
}

/// `PATCH /tasks/{id}`: priority, name, tags of a live task.
async fn patch(
    state: Data,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> ApiResult<HttpResponse> {
    let id = task_id(&path)?;
    let b = Body::new(body.into_inner())?;
    let priority = b.priority()?;
    let name = b.string(&["name"])?;
    if name
        .as_deref()
        .is_some_and(|n| n.trim().is_empty() || n.len() > 1000)
    {
        return Err(ApiError::field("name", "must be 1 to 1000 characters"));
    }
    let tags = b.strings(&["tags"])?;
    if priority.is_none() && name.is_none() && tags.is_none() {
        return Err(ApiError::new(
            ErrorCode::Validation,
            "nothing to change: give priority, name or tags",
        ));
    }
    let task = state
        .command(
            id,
            TaskCommand::Patch {
                priority,
                name,
                tags,
            },
            &caller(&req),
        )
        .await?;
    Ok(HttpResponse::Ok().json(state.view(task).await?))
}

/// `DELETE /tasks/{id}`: finished tasks only.
async fn delete(state: Data, path: web::Path<String>) -> ApiResult<HttpResponse> {
    ctl::delete(&state, task_id(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn control(
    state: Data,
    req: HttpRequest,
    path: web::Path<String>,
    cmd: TaskCommand,
) -> ApiResult<HttpResponse> {
    let task = state.command(task_id(&path)?, cmd, &caller(&req)).await?;
    Ok(HttpResponse::Ok().json(state.view(task).await?))
}

async fn start(state: Data, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    control(state, req, path, TaskCommand::Start).await
}

async fn pause(state: Data, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    control(state, req, path, TaskCommand::Pause).await
}

async fn resume(state: Data, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    control(state, req, path, TaskCommand::Resume).await
}

/// `POST /tasks/{id}/cancel`: answered once the unit has stopped the work and cleaned up its
/// temporary output (or after the kill grace period and a little more, if it says nothing).
async fn cancel(state: Data, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = task_id(&path)?;
    let task = state
        .command(id, TaskCommand::Cancel, &caller(&req))
        .await?;
    let limit = Duration::from_secs_f64(state.shared.config().kill_grace_secs) + CANCEL_SLACK;
    state.active.run_ended(id, limit).await;
    Ok(HttpResponse::Ok().json(state.view(task).await?))
}

/// How long past the kill grace period a cancel waits for its unit.
const CANCEL_SLACK: Duration = Duration::from_secs(2);

async fn restart(
    state: Data,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let task = ctl::restart(&state, task_id(&path)?, &caller(&req)).await?;
    Ok(HttpResponse::Ok().json(state.view(task).await?))
}

/// `POST /tasks/{id}/retry`: 201 with the new task.
async fn retry(state: Data, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let task = ctl::retry(&state, task_id(&path)?, &caller(&req)).await?;
    let location = format!("/api/v1/tasks/{}", task.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(state.view(task).await?))
}

/// `GET /tasks/{id}/history?page=&limit=`: a page of the transitions, oldest first.
async fn history(
    state: Data,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let id = task_id(&path)?;
    let (page, limit, offset) = Params(query.into_inner()).page()?;
    state.load_task(id).await?;
    let (rows, total) = state
        .shared
        .store
        .read(move |c| q::history_page(c, id, offset, limit))
        .await?;
    let items: Vec<HistoryView> = rows.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(Page {
        items,
        page,
        limit,
        total,
    }))
}

/// `GET /tasks/{id}/logs?level=&after=&limit=`.
async fn logs(
    state: Data,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let id = task_id(&path)?;
    let p = Params(query.into_inner());
    let min_level = match p.str("level") {
        None => None,
        Some(l) => Some(LogLevel::parse_loose(l).ok_or_else(|| {
            ApiError::field(
                "level",
                format!("'{l}' is not one of DEBUG, INFO, WARNING, ERROR"),
            )
        })?),
    };
    let (page, limit, offset) = p.page()?;
    let after = p.int("after", 0, i64::MAX)?;
    state.load_task(id).await?;
    let lq = LogQuery {
        min_level,
        after,
        limit,
    };
    let (rows, total) = state
        .shared
        .store
        .read(move |c| q::logs(c, id, &lq, offset))
        .await?;
    let items: Vec<LogView> = rows.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok()
        .json(json!({"items": items, "page": page, "limit": limit, "total": total})))
}

/// `POST /tasks/{id}/logs`: appends a line (`level`, `message`).
async fn add_log(
    state: Data,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> ApiResult<HttpResponse> {
    let id = task_id(&path)?;
    let b = Body::new(body.into_inner())?;
    let level = match b.string(&["level"])? {
        None => LogLevel::Info,
        Some(l) => LogLevel::parse_loose(&l).ok_or_else(|| {
            ApiError::field(
                "level",
                format!("'{l}' is not one of DEBUG, INFO, WARNING, ERROR"),
            )
        })?,
    };
    let message = b
        .string(&["message"])?
        .ok_or_else(|| ApiError::field("message", "is required"))?;
    if message.len() > 64 * 1024 {
        return Err(ApiError::field("message", "is longer than 64 KiB"));
    }
    let task = state.load_task(id).await?;
    let at = now_ms();
    let line = LogLine {
        task_id: id,
        attempt: task.attempt,
        level,
        message: message.clone(),
        at,
    };
    state
        .shared
        .store
        .write(move |c| q::insert_logs(c, &[line]))
        .await?;
    state.shared.events.publish(EventBody::Log {
        task_id: id,
        batch_id: task.batch_id.clone(),
        task_type: task.task_type.clone(),
        level: level.as_str().into(),
        message: message.clone(),
        at: rfc3339(at),
    });
    Ok(HttpResponse::Created().json(json!({"task_id": id, "level": level.as_str(), "message": message, "timestamp": rfc3339(at)})))
}

/// `POST /tasks/{id}/progress`: `progress` (0–100), `stage`, `message`, `checkpoint`.
async fn progress(
    state: Data,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> ApiResult<HttpResponse> {
    let id = task_id(&path)?;
    let b = Body::new(body.into_inner())?;
    let progress = b.f64(&["progress"])?;
    if let Some(p) = progress {
        if !(0.0..=100.0).contains(&p) {
            return Err(ApiError::field(
                "progress",
                format!("{p} is outside 0..=100"),
            ));
        }
    }
    let checkpoint = b.raw(&["checkpoint"]).cloned();
    if checkpoint
        .as_ref()
        .is_some_and(|c| !(c.is_object() || c.is_null()))
    {
        return Err(ApiError::field(
            "checkpoint",
            "must be a JSON object or null",
        ));
    }
    let cmd = TaskCommand::Progress {
        progress,
        stage: b.string(&["stage", "current_step"])?,
        message: b.string(&["message"])?,
        checkpoint,
        execution_id: execution_id(&b)?,
    };
    let task = state.command(id, cmd, &caller(&req)).await?;
    Ok(HttpResponse::Ok().json(state.view(task).await?))
}

/// The run a unit's report is for (`executionId` from its execute call), if it says.
fn execution_id(b: &Body) -> ApiResult<Option<uuid::Uuid>> {
    b.string(&["executionId", "execution_id"])?
        .map(|raw| {
            raw.parse()
                .map_err(|_| ApiError::field("executionId", "is not a UUID"))
        })
        .transpose()
}

/// `POST /tasks/{id}/status`: a unit's callback (seed 004 §8.2).
async fn status_callback(
    state: Data,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> ApiResult<HttpResponse> {
    let id = task_id(&path)?;
    let cmd = callback_command(body.into_inner())?;
    let task = state.command(id, cmd, &caller(&req)).await?;
    Ok(HttpResponse::Ok().json(state.view(task).await?))
}

/// A unit's callback body (`status` in any case, `result`, `errorMessage`) as a command.
pub(crate) fn callback_command(body: Value) -> ApiResult<TaskCommand> {
    let b = Body::new(body)?;
    let raw = b
        .string(&["status"])?
        .ok_or_else(|| ApiError::field("status", "is required"))?;
    let status: TaskStatus = raw.parse().map_err(|m| ApiError::field("status", m))?;
    Ok(TaskCommand::Callback {
        status,
        result: b.raw(&["result"]).cloned(),
        error: b.string(&["errorMessage", "error_message", "error"])?,
        execution_id: execution_id(&b)?,
    })
}

/// `GET /tasks/{id}/result` (gzip when the client asks).
async fn result(state: Data, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let task = state.load_task(task_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(json!({
        "task_id": task.id,
        "status": task.status,
        "result": task.result,
        "error": task.error,
        "finished_at": task.finished_at.map(rfc3339),
    })))
}
