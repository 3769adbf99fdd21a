//! `GET /api/v1/openapi.json`: an OpenAPI 3 document of the HTTP API, built from one route
//! table (a test checks that every route in it answers something other than "no route").

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

/// (method, path under /api/v1, summary).
pub const ROUTES: &[(&str, &str, &str)] = &[
    ("post", "/tasks", "Create a task (201, Location)"),
    (
        "get",
        "/tasks",
        "List tasks: filters, sort, page/limit, format=csv|ndjson",
    ),
    (
        "get",
        "/tasks/statistics",
        "Counts, success rate, duration and queue-wait percentiles, throughput",
    ),
    ("get", "/tasks/{id}", "One task"),
    (
        "patch",
        "/tasks/{id}",
        "Change priority, name, tags of a live task",
    ),
    ("delete", "/tasks/{id}", "Delete a finished task"),
    (
        "get",
        "/tasks/{id}/wait",
        "Long poll: answers when the version passes after_version",
    ),
    (
        "post",
        "/tasks/{id}/start",
        "Start a task created with autostart false",
    ),
    ("post", "/tasks/{id}/pause", "Pause running work"),
    ("post", "/tasks/{id}/resume", "Resume paused work"),
    ("post", "/tasks/{id}/cancel", "Cancel"),
    (
        "post",
        "/tasks/{id}/restart",
        "Restart a failed or cancelled task (same id)",
    ),
    (
        "post",
        "/tasks/{id}/retry",
        "A new task of the same type and config (from failed)",
    ),
    (
        "get",
        "/tasks/{id}/history",
        "Status transitions: page, limit",
    ),
    (
        "get",
        "/tasks/{id}/logs",
        "Log lines: level, after, page, limit",
    ),
    ("post", "/tasks/{id}/logs", "Append a log line"),
    (
        "post",
        "/tasks/{id}/progress",
        "Report progress, stage, message, checkpoint",
    ),
    (
        "post",
        "/tasks/{id}/status",
        "Execution-unit callback: status, result, errorMessage",
    ),
    ("get", "/tasks/{id}/result", "The result (gzip when asked)"),
    (
        "post",
        "/batches",
        "Create a batch in one transaction (201, task_ids)",
    ),
    ("get", "/batches", "List batches"),
    (
        "get",
        "/batches/{id}",
        "One batch with counts, progress, eta",
    ),
    (
        "patch",
        "/batches/{id}",
        "Change priority (re-orders waiting tasks), name, description, tags",
    ),
    (
        "delete",
        "/batches/{id}",
        "Delete a finished batch with its tasks",
    ),
    ("get", "/batches/{id}/tasks", "The batch's tasks"),
    ("get", "/batches/{id}/wait", "Long poll on the batch status"),
    ("post", "/batches/{id}/cancel", "Cancel every live task"),
    (
        "post",
        "/batches/{id}/pause",
        "Hold pending tasks and pause running ones",
    ),
    ("post", "/batches/{id}/resume", "Resume"),
    (
        "post",
        "/batches/{id}/restart",
        "Re-run failed and cancelled tasks",
    ),
    ("post", "/schedules", "Create a schedule"),
    ("get", "/schedules", "List schedules"),
    ("get", "/schedules/{id}", "One schedule (id or name)"),
    ("put", "/schedules/{id}", "Replace a schedule"),
    ("patch", "/schedules/{id}", "Change a schedule"),
    ("delete", "/schedules/{id}", "Delete a schedule"),
    ("post", "/schedules/{id}/pause", "Pause"),
    ("post", "/schedules/{id}/resume", "Resume"),
    ("post", "/schedules/{id}/trigger", "Fire now"),
    (
        "get",
        "/schedules/{id}/runs",
        "Tasks and batches it created",
    ),
    ("post", "/schedules/import", "Import seed 003 YAML/JSON"),
    ("get", "/schedules/export", "Export as YAML or JSON"),
    (
        "get",
        "/task-types",
        "Task types, config schemas, availability, units",
    ),
    ("get", "/units", "Execution units: page, limit"),
    ("post", "/units", "Register an HTTP unit"),
    ("get", "/units/{id}", "One unit"),
    ("delete", "/units/{id}", "Deregister a unit"),
    (
        "post",
        "/units/{id}/heartbeat",
        "A unit's heartbeat (answers the jobs to drop)",
    ),
    ("post", "/units/{id}/drain", "Drain: no new work"),
    (
        "get",
        "/units/connect",
        "WebSocket: a remote worker's connection",
    ),
    ("get", "/events", "Event replay: after_seq, limit"),
    ("get", "/ws", "WebSocket: live events"),
    (
        "post",
        "/ws/ticket",
        "A single-use WebSocket ticket for ?ticket= (any token)",
    ),
    ("post", "/webhooks", "Subscribe a URL to events"),
    ("get", "/webhooks", "List webhooks"),
    ("get", "/webhooks/{id}", "One webhook"),
    ("delete", "/webhooks/{id}", "Delete a webhook"),
    (
        "get",
        "/webhooks/{id}/deliveries",
        "Deliveries and their outcomes",
    ),
    ("get", "/system/config", "The configuration in force"),
    (
        "put",
        "/system/config",
        "Change (hot-applied where possible, persisted)",
    ),
    ("post", "/system/config/validate", "Validate a change"),
    (
        "get",
        "/system/status",
        "Version, uptime, backend, scheduler state",
    ),
    ("get", "/system/resources", "CPU, memory, disk, process"),
    ("get", "/system/health", "Health"),
    ("get", "/alerts", "Alerts: level, type, acknowledged"),
    ("post", "/alerts/{id}/acknowledge", "Acknowledge an alert"),
    ("get", "/logs", "Log lines of every task"),
    ("get", "/logs/{id}", "One log line"),
    ("post", "/logs/search", "Search log lines"),
    ("get", "/metrics", "JSON metrics snapshot"),
    ("get", "/metrics/history", "Trend samples"),
    (
        "post",
        "/maintenance/cleanup",
        "Delete finished tasks older than N days",
    ),
    ("get", "/openapi.json", "This document"),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(document));
}

/// The OpenAPI document.
pub fn spec() -> Value {
    let mut paths = Map::new();
    let v1 = ROUTES
        .iter()
        .map(|(m, p, s)| (*m, format!("/api/v1{p}"), *s));
    let compat = super::compat::ROUTES
        .iter()
        .map(|(m, p, s)| (*m, p.to_string(), *s));
    for (method, path, summary) in v1.chain(compat) {
        let entry = paths.entry(path.clone()).or_insert_with(|| json!({}));
        let mut op = json!({
            "summary": summary,
            "responses": {
                "default": {"description": "JSON; errors are {\"error\": {\"code\", \"message\", \"field\"?}}"}
            }
        });
        if path.contains("{id}") {
            op["parameters"] = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
        }
        entry[method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "steward", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    })
}

async fn document() -> HttpResponse {
    HttpResponse::Ok().json(spec())
}
