//! The HTTP API under `/api/v1` (SPEC §6). Handlers are thin: they parse into domain types,
//! send to an actor or the store, and map the answer to a wire shape. Each resource module
//! exposes `configure`.

pub mod batches;
pub mod compat;
pub mod dto;
pub mod events;
pub mod fields;
pub mod health;
pub mod metrics_routes;
pub mod openapi;
pub mod ops;
pub mod schedules;
pub mod schedules_export;
pub mod schedules_io;
pub mod schedules_spec;
pub mod statistics;
pub mod system;
pub mod tasks;
pub mod tasks_control;
pub mod units;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{error::JsonPayloadError, web, HttpRequest, HttpResponse, ResponseError};

use crate::actors::commander::Commander;
use crate::actors::schedule::ScheduleActor;
use crate::actors::scheduler::{Explain, SchedulerActor};
use crate::actors::supervisor::{ActiveTasks, Supervisor};
use crate::actors::{Shared, TaskCommand};
use crate::domain::{Task, TaskId, TaskStatus};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::store::tasks as q;
use dto::TaskView;

/// What every handler can reach.
pub struct AppState {
    pub shared: Shared,
    pub scheduler: Addr<SchedulerActor>,
    pub supervisor: Addr<Supervisor>,
    /// The supervisor's task actors, for reads of hot copies.
    pub active: ActiveTasks,
    pub schedules: Addr<ScheduleActor>,
    pub started: Instant,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub history: crate::monitor::History,
    pub ready: Arc<AtomicBool>,
    /// Webhook subscriptions and their deliveries.
    pub hooks: crate::webhooks::Hooks,
}

impl AppState {
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The task as it is now: the hot copy of an active task, else the stored row.
    pub async fn load_task(&self, id: TaskId) -> ApiResult<Task> {
        if let Some(t) = self.active.peek(id).await {
            // A run that has ended, whose actor waits for its unit to stop, is read from the
            // store: its end is durable there, with anything since (a restart at once).
            if !t.status.is_terminal() {
                return Ok(t);
            }
        }
        self.shared
            .store
            .read(move |c| q::get(c, id))
            .await?
            .ok_or_else(|| ApiError::not_found("task", id))
    }

    /// Views with `waiting_on` / `waiting_detail` filled in for pending tasks, and the hot
    /// copy of every active task laid over its stored row (a task just started may still be
    /// stored as pending, and progress is stored at most every 100 ms).
    pub async fn views(&self, mut tasks: Vec<Task>) -> ApiResult<Vec<TaskView>> {
        let live: Vec<TaskId> = tasks
            .iter()
            .filter(|t| !t.status.is_terminal())
            .map(|t| t.id)
            .collect();
        if !live.is_empty() {
            let hot = self.active.peek_many(&live).await;
            if !hot.is_empty() {
                let mut hot: HashMap<TaskId, Task> = hot.into_iter().map(|t| (t.id, t)).collect();
                for t in tasks.iter_mut() {
                    // An actor still finishing an older run (cancelled, then restarted at
                    // once) holds an older version than the store: the store's is the truth.
                    if let Some(h) = hot.remove(&t.id).filter(|h| h.version >= t.version) {
                        *t = h;
                    }
                }
            }
        }
        let pending: Vec<TaskId> = tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Pending)
            .map(|t| t.id)
            .collect();
        let waiting = if pending.is_empty() {
            HashMap::new()
        } else {
            self.scheduler.send(Explain { ids: pending }).await?
        };
        let now = crate::domain::now_ms();
        Ok(tasks
            .into_iter()
            .map(|t| {
                let own = waiting.get(&t.id).cloned().or_else(|| {
                    t.own_waiting(now)
                        .map(|(on, detail)| crate::scheduler::Waiting { on, detail })
                });
                TaskView::new(t, own.as_ref())
            })
            .collect())
    }

    pub async fn view(&self, task: Task) -> ApiResult<TaskView> {
        let mut v = self.views(vec![task]).await?;
        v.pop().ok_or_else(ApiError::internal)
    }

    /// Sends a command to whoever owns the task now (see [`Commander`]).
    pub async fn command(&self, id: TaskId, cmd: TaskCommand, by: &str) -> ApiResult<Task> {
        self.commander().command(id, cmd, by).await
    }

    pub fn commander(&self) -> Commander {
        Commander {
            store: self.shared.store.clone(),
            scheduler: self.scheduler.clone(),
            supervisor: self.supervisor.clone(),
            active: self.active.clone(),
        }
    }
}

/// Parses a task id from the path; a malformed id is simply not found.
pub fn task_id(raw: &str) -> ApiResult<TaskId> {
    raw.parse()
        .map_err(|_| ApiError::not_found("task", format!("'{raw}'")))
}

/// Who is asking: the token's name when authentication is on, else the `X-Steward-User`
/// header or "api".
pub fn caller(req: &HttpRequest) -> String {
    if let Some(who) = crate::auth::identity(req) {
        return who.name;
    }
    req.headers()
        .get("x-steward-user")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 200)
        .unwrap_or("api")
        .to_string()
}

fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let e = match &err {
        JsonPayloadError::Overflow { limit } => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body is larger than {limit} bytes"),
        ),
        JsonPayloadError::OverflowKnownLength { length, limit } => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body ({length} bytes) is larger than {limit} bytes"),
        ),
        JsonPayloadError::Deserialize(e) => ApiError::new(
            ErrorCode::InvalidJson,
            format!("the body is not valid JSON: {e}"),
        ),
        other => ApiError::new(
            ErrorCode::InvalidJson,
            format!("cannot read the body: {other}"),
        ),
    };
    e.into()
}

/// Mounts every route.
pub fn configure(cfg: &mut web::ServiceConfig, max_body: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(max_body)
            .content_type_required(false)
            .error_handler(json_error),
    )
    // Routes that read raw bytes (YAML imports, seed bodies) take the same limit as JSON.
    .app_data(web::PayloadConfig::new(max_body))
    .app_data(web::QueryConfig::default().error_handler(|err, _| {
        ApiError::new(ErrorCode::Validation, format!("bad query string: {err}")).into()
    }))
    .app_data(web::PathConfig::default().error_handler(|err, _| {
        ApiError::new(ErrorCode::NotFound, format!("bad path: {err}")).into()
    }))
    .configure(health::configure)
    .configure(metrics_routes::configure)
    .configure(compat::configure)
    .service(
        web::scope("/api/v1")
            .configure(tasks::configure)
            .configure(batches::configure)
            .configure(schedules::configure)
            .configure(system::configure)
            .configure(ops::configure)
            .configure(openapi::configure)
            .configure(events::configure)
            .configure(webhooks::configure)
            .configure(units::configure)
            .configure(crate::ws::configure)
            .configure(crate::auth::configure)
            .default_service(web::to(no_route))
            .wrap(
                ErrorHandlers::new()
                    .handler(StatusCode::METHOD_NOT_ALLOWED, method_not_allowed_body)
                    .handler(StatusCode::PAYLOAD_TOO_LARGE, too_large_body),
            ),
    )
    .service(actix_files::Files::new("/", static_dir()).index_file("index.html"))
    .default_service(web::to(not_found));
}

/// The dashboard's files: `STEWARD_STATIC_DIR`, else `static/` beside the working directory,
/// else the one in the source tree this binary was built from.
fn static_dir() -> std::path::PathBuf {
    if let Ok(dir) = std::env::var("STEWARD_STATIC_DIR") {
        return dir.into();
    }
    let local = std::path::PathBuf::from("static");
    if local.join("index.html").exists() {
        return local;
    }
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/static"))
}

async fn not_found(req: HttpRequest) -> ApiResult<HttpResponse> {
    Err(ApiError::new(
        ErrorCode::NotFound,
        format!("no route for {} {}", req.method(), req.path()),
    ))
}

/// What no route under `/api/v1` answers: 405 when the path is routed for other methods (a
/// route added with `.route(path, web::get())` carries its method as a guard, so a wrong
/// method falls through to here rather than to the resource's own 405), else 404.
async fn no_route(req: HttpRequest) -> ApiResult<HttpResponse> {
    if !req.resource_map().has_resource(req.path()) {
        return not_found(req).await;
    }
    let allowed = documented_methods(req.path()).join(", ");
    let mut res = method_not_allowed(&req, &allowed).error_response();
    if !allowed.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&allowed) {
            res.headers_mut().insert(header::ALLOW, v);
        }
    }
    Ok(res)
}

/// The 405 every wrong method under `/api/v1` gets.
fn method_not_allowed(req: &HttpRequest, allowed: &str) -> ApiError {
    let mut message = format!("{} is not allowed on {}", req.method(), req.path());
    if !allowed.is_empty() {
        message.push_str(&format!("; allowed: {allowed}"));
    }
    ApiError::new(ErrorCode::MethodNotAllowed, message)
}

/// The methods the route table ([`openapi::ROUTES`]) lists for a path under `/api/v1`, for
/// an `Allow` header.
fn documented_methods(path: &str) -> Vec<String> {
    let Some(rest) = path.strip_prefix("/api/v1") else {
        return Vec::new();
    };
    let mut methods: Vec<String> = openapi::ROUTES
        .iter()
        .filter(|(_, pattern, _)| pattern_matches(pattern, rest))
        .map(|(method, _, _)| method.to_ascii_uppercase())
        .collect();
    methods.sort();
    methods.dedup();
    methods
}

/// Whether `/a/{x}/b` matches `path` segment by segment.
fn pattern_matches(pattern: &str, path: &str) -> bool {
    let (mut want, mut got) = (pattern.split('/'), path.split('/'));
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w == g || (w.starts_with('{') && !g.is_empty()) => {}
            _ => return false,
        }
    }
}

/// Gives a 413 that actix's byte extractor answered in plain text the JSON error body.
fn too_large_body<B: MessageBody>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let json = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let (req, _) = res.into_parts();
    let new = ApiError::new(
        ErrorCode::PayloadTooLarge,
        "the body is larger than max_body_bytes allows",
    )
    .error_response();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, new).map_into_right_body(),
    ))
}

/// Gives the empty 405 of a `web::resource` (a known path, another method) the JSON error
/// body, keeping its `Allow` header. A 405 that already has a body is left as it is.
fn method_not_allowed_body<B: MessageBody>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    if !matches!(
        res.response().body().size(),
        BodySize::None | BodySize::Sized(0)
    ) {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let (req, old) = res.into_parts();
    let allow = old.headers().get(header::ALLOW).cloned();
    let shown = allow
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut new = method_not_allowed(&req, shown).error_response();
    if let Some(v) = allow {
        new.headers_mut().insert(header::ALLOW, v);
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, new).map_into_right_body(),
    ))
}
