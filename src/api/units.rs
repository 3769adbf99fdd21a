//! The unit registry as the API shows it (SPEC §5): `GET /task-types` lists every type with
//! its config schema, whether it can run here and which units serve it; `GET /units` and
//! `GET /units/{id}` show each unit's kind, labels, types, status, capacity and load.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::Value;

use super::AppState;
use crate::actors::scheduler::{GetStats, UnitStat};
use crate::actors::units::LocalUnit;
use crate::domain::{now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/task-types", web::get().to(task_types))
        .route("/units", web::get().to(list_units))
        .route("/units/{id}", web::get().to(get_unit));
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

#[derive(Serialize)]
struct UnitView {
    id: String,
    unit_type: &'static str,
    unit_name: String,
    labels: BTreeMap<String, String>,
    task_types: Vec<String>,
    status: &'static str,
    capacity: usize,
    current_load: usize,
    last_heartbeat: String,
}

impl UnitView {
    fn new(u: UnitStat) -> Self {
        // Only the in-process unit exists so far; it is alive by definition.
        let kind = if u.id == LocalUnit::ID {
            "local"
        } else {
            "remote"
        };
        UnitView {
            unit_name: u.id.clone(),
            id: u.id,
            unit_type: kind,
            labels: u.labels,
            task_types: u.task_types,
            status: u.status,
            capacity: u.capacity,
            current_load: u.load,
            last_heartbeat: rfc3339(now_ms()),
        }
    }
}

async fn units_now(state: &AppState) -> ApiResult<Vec<UnitStat>> {
    Ok(state.scheduler.send(GetStats).await?.units)
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
        for t in &u.task_types {
            let view = types.entry(t.clone()).or_insert_with(|| TaskTypeView {
                task_type: t.clone(),
                config_schema: serde_json::json!({"type": "object"}),
                available: true,
                unavailable_reason: None,
                units: Vec::new(),
            });
            view.units.push(u.id.clone());
        }
    }
    Ok(HttpResponse::Ok().json(types.into_values().collect::<Vec<_>>()))
}

/// Every registered unit.
async fn list_units(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let units: Vec<UnitView> = units_now(&state)
        .await?
        .into_iter()
        .map(UnitView::new)
        .collect();
    Ok(HttpResponse::Ok().json(units))
}

/// One unit.
async fn get_unit(state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let unit = units_now(&state)
        .await?
        .into_iter()
        .find(|u| u.id == id)
        .ok_or_else(|| ApiError::not_found("unit", format!("'{id}'")))?;
    Ok(HttpResponse::Ok().json(UnitView::new(unit)))
}
