//! Seed 004 §6.2's execution-unit API (`/api/execution-units`): register
//! `{"unitType", "unitName", "capacity", "endpoint", "config"}` and
//! `POST /api/execution-units/{id}/heartbeat`, plus reading units back. Each alias renames
//! the body's keys (camelCase → the snake_case names of SPEC §5), calls the same functions as
//! `/api/v1/units`, and answers in camelCase. Seed 004's body names no task types: such a unit
//! is registered and listed, and gets work once it registers again with `taskTypes`.

use actix_web::{web, HttpResponse};
use serde_json::Value;

use super::{json_or_empty, seed_fields};
use crate::api::fields::{kind, Body};
use crate::api::units::{register_unit, unit_heartbeat, unit_json, units_json};
use crate::api::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};

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
/// Renames the keys of an object (or of each object in a list), and of the objects nested in
/// it, except the user's own maps (`config`, `labels`), whose keys are data.
fn rename_keys(v: Value, f: fn(&str) -> String) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("config" | "labels", v) => v,
                        (_, v @ Value::Object(_)) => rename_keys(v, f),
                        (_, v) => v,
                    };
                    (f(&k), v)
                })
                .collect(),
        ),
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

/// A v1 answer in seed 004's shape, or its error with seed 004's field names.
fn seed_answer(v: ApiResult<Value>) -> ApiResult<Value> {
    v.map(|v| rename_keys(v, camel))
        .map_err(|e| seed_fields(e, FIELDS))
}

/// `POST /api/execution-units` (as `POST /api/v1/units`).
async fn register(state: web::Data<AppState>, body: web::Bytes) -> ApiResult<HttpResponse> {
    let v1 = registration(json_or_empty(&body)?)?;
    let unit = seed_answer(register_unit(&state, v1).await)?;
    Ok(HttpResponse::Created().json(unit))
}

/// `POST /api/execution-units/{id}/heartbeat` (as `POST /api/v1/units/{id}/heartbeat`); a
/// body, if any, must be a JSON object (seed 004 sends none).
async fn heartbeat(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let body = json_or_empty(&body)?;
    if !body.is_object() {
        return Err(ApiError::new(
            ErrorCode::Validation,
            format!("the body must be a JSON object, not {}", kind(&body)),
        ));
    }
    Ok(HttpResponse::Ok().json(seed_answer(unit_heartbeat(&state, &path).await)?))
}

/// `GET /api/execution-units` (as `GET /api/v1/units`).
async fn list(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(seed_answer(units_json(&state).await)?))
}

/// `GET /api/execution-units/{id}` (as `GET /api/v1/units/{id}`).
async fn get(state: web::Data<AppState>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(seed_answer(unit_json(&state, &path).await)?))
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
    }
}
