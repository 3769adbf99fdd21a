//! `/api/v1/system` (seed 002): the configuration (read, validate, change — hot-applied where
//! possible and persisted across restarts) and the server's status.

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

use super::AppState;
use crate::actors::scheduler::{ApplyConfig, GetStats};
use crate::config::{log_filter, Config};
use crate::domain::now_ms;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::store::batches as qb;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/system/config")
            .route(web::get().to(get_config))
            .route(web::put().to(put_config))
            .route(web::patch().to(put_config)),
    )
    .route("/system/config/validate", web::post().to(validate))
    .route("/system/status", web::get().to(status))
    .route("/system/health", web::get().to(health));
}

/// The settings key under which `PUT /system/config` overrides are kept.
pub const SETTINGS_KEY: &str = "config";

/// Keys read only at start-up: changing them is stored but takes a restart.
const RESTART_KEYS: [&str; 17] = [
    "bind",
    "data_dir",
    "database_url",
    "data_roots",
    "db_pool_size",
    "http_workers",
    "local_unit_capacity",
    "kill_grace_secs",
    "public_url",
    // Read once as the server starts: the body limit, the log file, the event pruner.
    "max_body_bytes",
    "log_dir",
    "log_max_bytes",
    "log_max_files",
    "event_retention_secs",
    // The units' environment is built once at start-up.
    "python_path",
    "venv_dir",
    "python_module_dirs",
];

/// Credentials are set in steward.toml or the environment only: over the API they would be
/// stored in the database, and a stolen admin token could mint itself more.
const CREDENTIAL_KEYS: [&str; 2] = ["admin_token", "tokens"];

/// The configuration as shown: the admin token masked, the other tokens by name and role only.
fn masked(c: &Config) -> Map<String, Value> {
    let mut m = c.to_map();
    if c.admin_token.is_some() {
        m.insert("admin_token".into(), json!("***"));
    }
    let tokens: Vec<Value> = c
        .tokens
        .iter()
        .map(|t| json!({"name": t.name, "role": t.role}))
        .collect();
    m.insert("tokens".into(), Value::Array(tokens));
    if let Some(url) = &c.database_url {
        m.insert(
            "database_url".into(),
            json!(crate::domain::redact::url_without_password(url)),
        );
    }
    m
}

async fn get_config(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(masked(&state.shared.config()))
}

/// Merges a partial change over the configuration in force and validates the result.
fn merged(current: &Config, body: Value) -> ApiResult<(Config, Map<String, Value>)> {
    let Value::Object(mut change) = body else {
        return Err(ApiError::new(
            ErrorCode::Validation,
            "the body must be an object of configuration keys",
        ));
    };
    // A configuration read with GET and sent back whole carries the credentials as shown:
    // unchanged, so nothing to refuse (and nothing to store).
    let shown = masked(current);
    change.retain(|k, v| {
        !(CREDENTIAL_KEYS.contains(&k.as_str()) || k == "database_url") || shown.get(k) != Some(v)
    });
    let mut all = current.to_map();
    for (k, v) in &change {
        if !all.contains_key(k) {
            return Err(ApiError::field(k.clone(), "is not a configuration key"));
        }
        if CREDENTIAL_KEYS.contains(&k.as_str()) {
            return Err(ApiError::field(
                k.clone(),
                "credentials are set in steward.toml or the environment, not over the API",
            ));
        }
        all.insert(k.clone(), v.clone());
    }
    let config = Config::from_map(all).map_err(|e| ApiError::field(e.key, e.message))?;
    Ok((config, change))
}

/// `POST /system/config/validate`: would this change be accepted?
async fn validate(state: web::Data<AppState>, body: web::Json<Value>) -> ApiResult<HttpResponse> {
    let (config, _) = merged(&state.shared.config(), body.into_inner())?;
    Ok(HttpResponse::Ok().json(json!({"valid": true, "config": masked(&config)})))
}

/// `PUT /system/config`: applies what can be applied now, stores the change, and says which
/// keys need a restart.
async fn put_config(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    body: web::Json<Value>,
) -> ApiResult<HttpResponse> {
    let current = state.shared.config();
    let (config, change) = merged(&current, body.into_inner())?;
    let before = current.to_map();
    let after = config.to_map();
    let changed: Vec<String> = change
        .keys()
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect();
    let (restart, hot): (Vec<String>, Vec<String>) = changed
        .iter()
        .cloned()
        .partition(|k| RESTART_KEYS.contains(&k.as_str()));

    // Persist the accumulated overrides first: a 200 means it survives a restart.
    let store = state.shared.store.clone();
    let overrides = store
        .read(|c| {
            Ok(qb::settings_all(c)?
                .into_iter()
                .find(|(k, _)| k == SETTINGS_KEY)
                .map(|(_, v)| v))
        })
        .await?;
    let mut saved: Map<String, Value> = overrides
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default();
    for (k, v) in change {
        saved.insert(k, v);
    }
    let text = Value::Object(saved).to_string();
    store
        .write(move |c| qb::setting_put(c, SETTINGS_KEY, &text, now_ms()))
        .await?;

    let mut live = config.clone();
    for k in &restart {
        // Start-up-only keys keep their running value until the restart.
        let mut m = live.to_map();
        if let Some(v) = before.get(k) {
            m.insert(k.clone(), v.clone());
        }
        if let Ok(c) = serde_json::from_value(Value::Object(m)) {
            live = c;
        }
    }
    if let Some(level) = log_filter(&live.log_level) {
        log::set_max_level(level);
    }
    match state.shared.config.write() {
        Ok(mut c) => *c = std::sync::Arc::new(live.clone()),
        Err(p) => *p.into_inner() = std::sync::Arc::new(live.clone()),
    }
    state.scheduler.send(ApplyConfig(live.clone())).await?;
    let mut note = format!(
        "configuration changed by {}: {}",
        super::caller(&req),
        changed.join(", ")
    );
    if !restart.is_empty() {
        note.push_str(&format!(" (needs a restart: {})", restart.join(", ")));
    }
    state.shared.syslog.info("config", note);
    Ok(HttpResponse::Ok()
        .json(json!({"config": masked(&live), "applied": hot, "restart_required": restart})))
}

/// `GET /system/status`: version, uptime, backend, scheduler state.
async fn status(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let stats = state.scheduler.send(GetStats).await?;
    let (open, idle) = state.shared.store.pool_state();
    Ok(HttpResponse::Ok().json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.started.elapsed().as_secs_f64(),
        "backend": state.shared.store.backend().name(),
        "ready": state.is_ready(),
        "scheduler": stats,
        "db_pool": {"open": open, "idle": idle},
        "last_event_seq": state.shared.events.last_seq(),
    })))
}

async fn health(state: web::Data<AppState>) -> HttpResponse {
    let db = state.shared.store.read(|c| {
        use diesel::connection::SimpleConnection;
        c.batch_execute("SELECT 1").map_err(Into::into)
    });
    let ok = db.await.is_ok();
    let body = json!({"status": if ok { "healthy" } else { "unhealthy" }, "database": ok, "ready": state.is_ready()});
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
