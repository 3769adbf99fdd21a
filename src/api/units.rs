//! The unit registry over HTTP (SPEC §5, seed 004 §6.2): `GET /task-types` lists every type
//! with its config schema, whether it can run here and which units serve it; `GET /units` and
//! `GET /units/{id}` show each unit's kind, labels, types, status, capacity and load;
//! `POST /units` registers an HTTP-style unit, which then beats at `POST /units/{id}/heartbeat`;
//! `POST /units/{id}/drain` stops new work going to a unit and `DELETE /units/{id}` removes it
//! (its running tasks move to other units). Workers connect at `GET /units/connect`
//! (`crate::ws::units`).

use std::collections::{BTreeMap, HashMap};

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};

use super::dto::Page;
use super::fields::{Body, Params};
use super::AppState;
use crate::actors::scheduler::GetStats;
use crate::actors::unit_manager::{
    Deregister, DrainUnit, Heartbeat, ListUnits, RegisterHttp, UnitInfo, UnitSpec,
};
use crate::error::{ApiError, ApiResult};

/// The most task types or labels one unit may declare.
const MAX_TYPES: usize = 100;
const MAX_NAME: usize = 200;
const MAX_CAPACITY: i64 = 100_000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/task-types", web::get().to(task_types))
        .route("/units/connect", web::get().to(crate::ws::units::connect))
        .service(
            web::resource("/units")
                .route(web::get().to(list_units))
                .route(web::post().to(register)),
        )
        .service(
            web::resource("/units/{id}")
                .route(web::get().to(get_unit))
                .route(web::delete().to(deregister)),
        )
        .route("/units/{id}/heartbeat", web::post().to(heartbeat))
        .route("/units/{id}/drain", web::post().to(drain));
}

#[derive(Serialize)]
struct TaskTypeView {
    #[serde(rename = "type")]
    task_type: String,
    config_schema: Value,
    available: bool,
    /// Why the type cannot run here (a missing tool), when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    unavailable_reason: Option<String>,
    units: Vec<String>,
}

/// A unit as the API shows it: the registry's record with the scheduler's load.
#[derive(Serialize)]
pub(crate) struct UnitView {
    #[serde(flatten)]
    pub info: UnitInfo,
    pub status: &'static str,
    pub current_load: usize,
}

/// Every unit with its status and load.
pub(crate) async fn units_now(state: &AppState) -> ApiResult<Vec<UnitView>> {
    let infos = state.shared.units.send(ListUnits).await?;
    let loads: HashMap<String, usize> = state
        .scheduler
        .send(GetStats)
        .await?
        .units
        .into_iter()
        .map(|u| (u.id, u.load))
        .collect();
    Ok(infos.into_iter().map(|i| view(i, &loads)).collect())
}

fn view(info: UnitInfo, loads: &HashMap<String, usize>) -> UnitView {
    let load = if info.online {
        loads.get(&info.id).copied().unwrap_or(0)
    } else {
        0
    };
    let status = if !info.online {
        "OFFLINE"
    } else if load >= info.capacity {
        "BUSY"
    } else {
        "AVAILABLE"
    };
    UnitView {
        info,
        status,
        current_load: load,
    }
}

/// Every task type: schema, availability and the units that serve it.
async fn task_types(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let units = units_now(&state).await?;
    let mut types: BTreeMap<String, TaskTypeView> = BTreeMap::new();
    for h in state.shared.registry.handlers() {
        let reason = h.availability().err();
        types.insert(
            h.task_type().to_string(),
            TaskTypeView {
                task_type: h.task_type().to_string(),
                config_schema: h.config_schema(),
                available: reason.is_none(),
                unavailable_reason: reason,
                units: Vec::new(),
            },
        );
    }
    for u in &units {
        for t in &u.info.task_types {
            let view = types.entry(t.clone()).or_insert_with(|| TaskTypeView {
                task_type: t.clone(),
                config_schema: json!({"type": "object"}),
                available: false,
                unavailable_reason: Some("no unit that serves it is online".into()),
                units: Vec::new(),
            });
            view.units.push(u.info.id.clone());
            if u.info.online
                && view.unavailable_reason.as_deref() == Some("no unit that serves it is online")
            {
                view.available = true;
                view.unavailable_reason = None;
            }
        }
    }
    Ok(HttpResponse::Ok().json(types.into_values().collect::<Vec<_>>()))
}

/// `GET /units?page=&limit=`: a page of the registered units, the in-process one first.
async fn list_units(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let (page, limit, offset) = Params(query.into_inner()).page()?;
    let units = units_now(&state).await?;
    let total = units.len() as i64;
    let items: Vec<UnitView> = units
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(0))
        .collect();
    Ok(HttpResponse::Ok().json(Page {
        items,
        page,
        limit,
        total,
    }))
}

/// One unit.
async fn get_unit(state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(unit_json(&state, &id).await?))
}

/// Every unit as the API shows it, as a bare array (seed 004's `GET /api/execution-units`).
pub(crate) async fn units_json(state: &AppState) -> ApiResult<Value> {
    Ok(serde_json::to_value(units_now(state).await?).unwrap_or(Value::Null))
}

/// One unit as the API shows it.
pub(crate) async fn unit_json(state: &AppState, id: &str) -> ApiResult<Value> {
    let unit = units_now(state)
        .await?
        .into_iter()
        .find(|u| u.info.id == id)
        .ok_or_else(|| ApiError::not_found("unit", format!("'{id}'")))?;
    Ok(serde_json::to_value(unit).unwrap_or(Value::Null))
}

/// Checks what every registration must say.
pub fn check_spec(spec: &UnitSpec) -> ApiResult<()> {
    if spec.name.trim().is_empty() || spec.name.len() > MAX_NAME {
        return Err(ApiError::field(
            "unit_name",
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    // An HTTP unit may register before it says what it runs; a worker says it as it connects.
    let least = usize::from(spec.endpoint.is_none());
    if spec.task_types.len() < least || spec.task_types.len() > MAX_TYPES {
        return Err(ApiError::field(
            "task_types",
            format!("must list {least} to {MAX_TYPES} task types the unit runs"),
        ));
    }
    if let Some(t) = spec
        .task_types
        .iter()
        .find(|t| t.trim().is_empty() || t.len() > MAX_NAME)
    {
        return Err(ApiError::field(
            "task_types",
            format!("'{t}' is not a task type name"),
        ));
    }
    if spec.capacity == 0 || spec.capacity as i64 > MAX_CAPACITY {
        return Err(ApiError::field(
            "capacity",
            format!("must be 1 to {MAX_CAPACITY}"),
        ));
    }
    Ok(())
}

/// `POST /units`: seed 004's registration of an HTTP-style unit.
async fn register(state: web::Data<AppState>, body: web::Json<Value>) -> ApiResult<HttpResponse> {
    let view = register_unit(&state, body.into_inner()).await?;
    let location = format!("/api/v1/units/{}", view["id"].as_str().unwrap_or_default());
    Ok(HttpResponse::Created()
        .insert_header(("Location", location))
        .json(view))
}

/// Registers an HTTP-style unit from a `POST /units` body; answers its view.
pub(crate) async fn register_unit(state: &AppState, body: Value) -> ApiResult<Value> {
    let b = Body::new(body)?;
    let endpoint = b
        .string(&["endpoint"])?
        .ok_or_else(|| ApiError::field("endpoint", "is required: the URL steward calls"))?;
    if endpoint.starts_with("https://") {
        return Err(ApiError::field(
            "endpoint",
            "https endpoints are not supported by this build; use http:// on a trusted network",
        ));
    }
    crate::webhooks::target::check_url(&endpoint, &state.hooks.host_rules())
        .map_err(|m| ApiError::field("endpoint", m))?;
    let capacity = b.i64(&["capacity"])?.unwrap_or(1);
    let spec = UnitSpec {
        name: b
            .string(&["unit_name", "unitName", "name"])?
            .ok_or_else(|| ApiError::field("unit_name", "is required"))?,
        unit_type: b.string(&["unit_type", "unitType"])?,
        endpoint: Some(endpoint.trim_end_matches('/').to_string()),
        config: b.object(&["config"])?.unwrap_or_else(|| json!({})),
        // Seed 004's registration names none: the unit is listed, and gets work once it
        // registers again with the types it runs.
        task_types: b.strings(&["task_types", "taskTypes"])?.unwrap_or_default(),
        labels: b.string_map(&["labels"])?.unwrap_or_default(),
        capacity: usize::try_from(capacity).unwrap_or(0),
    };
    check_spec(&spec)?;
    let info = state.shared.units.send(RegisterHttp(spec)).await??;
    Ok(serde_json::to_value(view(info, &HashMap::new())).unwrap_or(Value::Null))
}

/// `POST /units/{id}/heartbeat`: the unit is alive; the answer lists work it must drop.
async fn heartbeat(state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(unit_heartbeat(&state, &id).await?))
}

/// Notes a unit's heartbeat; answers the unit, the heartbeat period and the work to drop.
pub(crate) async fn unit_heartbeat(state: &AppState, id: &str) -> ApiResult<Value> {
    let (info, drop) = state
        .shared
        .units
        .send(Heartbeat {
            unit_id: id.to_string(),
        })
        .await??;
    let heartbeat_secs = state.shared.config().unit_heartbeat_timeout_secs / 3.0;
    Ok(json!({
        "unit": info,
        "heartbeat_secs": heartbeat_secs,
        "drop": drop,
    }))
}

/// `POST /units/{id}/drain`: no new work for the unit; what runs finishes.
async fn drain(state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let unit_id = id.into_inner();
    state
        .shared
        .units
        .send(DrainUnit {
            unit_id: unit_id.clone(),
        })
        .await??;
    Ok(HttpResponse::Ok().json(unit_json(&state, &unit_id).await?))
}

/// `DELETE /units/{id}`: the unit is removed; its running tasks move to other units.
async fn deregister(state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    state
        .shared
        .units
        .send(Deregister {
            unit_id: id.into_inner(),
        })
        .await??;
    Ok(HttpResponse::NoContent().finish())
}
