//! Seed 004 §6.2's execution-unit API (`/api/execution-units`): register
//! `{"unitType", "unitName", "capacity", "endpoint", "config"}` and
//! `POST /api/execution-units/{id}/heartbeat`, plus reading units back.
//!
//! These aliases own no registry: each one translates the body (camelCase → the snake_case
//! names of SPEC §5) and forwards it to the `/api/v1/units` route of this same server over
//! loopback HTTP, with the caller's `Authorization` and `X-Steward-User` headers, then writes
//! the answer back in camelCase. Going through the v1 route (not a Rust call into its handler)
//! keeps the alias independent of how the registry is built: whatever `/api/v1/units`
//! answers, the alias answers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::{json_or_empty, seed_fields};
use crate::api::fields::{kind, Body};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// How long a forwarded call may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read back from the v1 route.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/execution-units")
            .route(web::post().to(register))
            .route(web::get().to(list)),
    )
    .route("/api/execution-units/{id}", web::get().to(get))
    .route(
        "/api/execution-units/{id}/heartbeat",
        web::post().to(heartbeat),
    );
}

/// `unitType` → `unit_type`.
fn snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `unit_type` → `unitType`.
fn camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        match (c, upper) {
            ('_', _) => upper = true,
            (c, true) => {
                out.push(c.to_ascii_uppercase());
                upper = false;
            }
            (c, false) => out.push(c),
        }
    }
    out
}

/// Renames the top-level keys of an object (or of each object in an array); nested values
/// such as `config` and `labels` are the client's own and stay as they are.
fn rename_keys(v: Value, f: fn(&str) -> String) -> Value {
    match v {
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (f(&k), v)).collect()),
        Value::Array(items) => Value::Array(items.into_iter().map(|i| rename_keys(i, f)).collect()),
        other => other,
    }
}

/// Seed 004's registration body, checked, as the body of `POST /api/v1/units`.
pub fn registration(body: Value) -> ApiResult<Value> {
    let b = Body::new(body)?;
    for required in ["unitType", "unitName"] {
        if b.string(&[required])?.is_none_or(|s| s.trim().is_empty()) {
            return Err(ApiError::field(required, "is required"));
        }
    }
    if let Some(c) = b.i64(&["capacity"])? {
        if c < 1 {
            return Err(ApiError::field(
                "capacity",
                format!("{c} must be at least 1"),
            ));
        }
    }
    b.string(&["endpoint"])?;
    b.object(&["config"])?;
    b.strings(&["taskTypes"])?;
    b.string_map(&["labels"])?;
    Ok(rename_keys(Value::Object(b.raw_object().clone()), |k| {
        snake(k)
    }))
}

/// The v1 field names a validation error may carry, as seed 004 spells them.
const FIELDS: &[(&str, &str)] = &[
    ("unit_type", "unitType"),
    ("unit_name", "unitName"),
    ("task_types", "taskTypes"),
    ("current_load", "currentLoad"),
];

/// Calls `method path` on this server (loopback) with `body`; the status and JSON answer.
async fn forward(
    req: &HttpRequest,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> ApiResult<(StatusCode, Value)> {
    let local = req.app_config().local_addr();
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let url = format!("http://{}{path}", SocketAddr::new(ip, local.port()));
    let client = awc::Client::builder().timeout(FORWARD_TIMEOUT).finish();
    let mut call = client.request(method, &url);
    for name in ["authorization", "x-steward-user"] {
        if let Some(v) = req.headers().get(name) {
            call = call.insert_header((name, v.clone()));
        }
    }
    let sent = match body {
        Some(b) => call.send_json(&b).await,
        None => call.send().await,
    };
    let mut res = sent.map_err(|e| {
        log::error!("forwarding to {url} failed: {e}");
        ApiError::new(ErrorCode::Unavailable, "the unit registry did not answer")
    })?;
    let bytes = res.body().limit(MAX_ANSWER_BYTES).await.map_err(|e| {
        log::error!("reading the answer of {url} failed: {e}");
        ApiError::new(ErrorCode::Unavailable, "the unit registry did not answer")
    })?;
    let answer = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            log::error!("{url} answered something that is not JSON: {e}");
            ApiError::internal()
        })?
    };
    Ok((res.status(), answer))
}

/// The v1 answer in seed 004's shape: camelCase on success; otherwise v1's status and SPEC §6
/// error, with seed field names. A v1 route that does not exist yet says so plainly.
fn answer(status: StatusCode, mut v: Value, v1_path: &str) -> ApiResult<HttpResponse> {
    if status.is_success() {
        return Ok(HttpResponse::build(status).json(rename_keys(v, camel)));
    }
    let text = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(String::from);
    let Some(message) = text(&v, "/error/message") else {
        let code = match status {
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::NOT_FOUND => ErrorCode::NotFound,
            s if s.is_client_error() => ErrorCode::Validation,
            _ => ErrorCode::Unavailable,
        };
        return Err(ApiError::new(
            code,
            format!("{v1_path} answered {status} without an error body"),
        ));
    };
    if status == StatusCode::NOT_FOUND && message.starts_with("no route") {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("this alias forwards to {v1_path}, which this server does not serve"),
        ));
    }
    if let Some(field) = text(&v, "/error/field") {
        let mut e = ApiError::new(ErrorCode::Validation, message);
        e.field = Some(field);
        let e = seed_fields(e, FIELDS);
        v["error"]["field"] = Value::from(e.field);
        v["error"]["message"] = Value::from(e.message);
    }
    Ok(HttpResponse::build(status).json(v))
}

/// `POST /api/execution-units` → `POST /api/v1/units`.
async fn register(req: HttpRequest, body: web::Bytes) -> ApiResult<HttpResponse> {
    let v1 = registration(json_or_empty(&body)?)?;
    let (status, v) = forward(&req, Method::POST, "/api/v1/units", Some(v1)).await?;
    answer(status, v, "POST /api/v1/units")
}

/// `POST /api/execution-units/{id}/heartbeat` → `POST /api/v1/units/{id}/heartbeat`; an
/// optional body (e.g. `currentLoad`) is passed on in snake_case.
async fn heartbeat(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let body = match json_or_empty(&body)? {
        v @ Value::Object(_) => rename_keys(v, snake),
        other => {
            return Err(ApiError::new(
                ErrorCode::Validation,
                format!("the body must be a JSON object, not {}", kind(&other)),
            ))
        }
    };
    let path = format!("/api/v1/units/{}/heartbeat", encode(&path));
    let (status, v) = forward(&req, Method::POST, &path, Some(body)).await?;
    answer(status, v, "POST /api/v1/units/{id}/heartbeat")
}

/// `GET /api/execution-units` → `GET /api/v1/units`.
async fn list(req: HttpRequest) -> ApiResult<HttpResponse> {
    let (status, v) = forward(&req, Method::GET, "/api/v1/units", None).await?;
    answer(status, v, "GET /api/v1/units")
}

/// `GET /api/execution-units/{id}` → `GET /api/v1/units/{id}`.
async fn get(req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let path = format!("/api/v1/units/{}", encode(&path));
    let (status, v) = forward(&req, Method::GET, &path, None).await?;
    answer(status, v, "GET /api/v1/units/{id}")
}

/// A path segment with everything but unreserved characters percent-encoded.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_seed_registration_becomes_the_v1_body() {
        let v1 = registration(json!({
            "unitType": "DOCKER_CONTAINER",
            "unitName": "data-processor-1",
            "capacity": 5,
            "endpoint": "http://processor:8080",
            "config": {"innerKey": 1},
            "taskTypes": ["data_processing"]
        }))
        .unwrap();
        assert_eq!(
            v1,
            json!({
                "unit_type": "DOCKER_CONTAINER",
                "unit_name": "data-processor-1",
                "capacity": 5,
                "endpoint": "http://processor:8080",
                "config": {"innerKey": 1},
                "task_types": ["data_processing"]
            })
        );
    }

    #[test]
    fn bad_registrations_name_the_seed_field() {
        let e = registration(json!({"unitType": "X"})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("unitName"));
        let e = registration(json!({"unitType": "X", "unitName": "u", "capacity": "five"}))
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("capacity"));
        let e = registration(json!({"unitType": "X", "unitName": "u", "capacity": 0})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("capacity"));
    }

    #[test]
    fn v1_answers_come_back_in_camel_case() {
        let v = rename_keys(
            json!([{"unit_name": "a", "current_load": 2, "labels": {"zone_name": "x"}}]),
            camel,
        );
        assert_eq!(
            v,
            json!([{"unitName": "a", "currentLoad": 2, "labels": {"zone_name": "x"}}])
        );
        assert_eq!(snake("lastHeartbeat"), "last_heartbeat");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
