//! Prometheus metrics and statistics as an operator sees them.

use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

both_backends!(prometheus_metrics_are_present_and_move_when_tasks_run);

/// The value of the sample `name{labels}` in a Prometheus text page.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn prometheus_metrics_are_present_and_move_when_tasks_run(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let (status, before) = app.get_text("/metrics").await;
    assert_eq!(status, 200);
    let ok = app.create(json!({"type": "noop"})).await;
    let bad = app
        .create(json!({"type": "command", "max_retries": 0, "config": {"program": "false"}}))
        .await;
    app.wait_status(&id_of(&ok), "success", 10.0).await;
    app.wait_status(&id_of(&bad), "failed", 10.0).await;
    app.get(&format!("/api/v1/tasks/{}", id_of(&ok))).await;

    let (status, text) = app.get_text("/metrics").await;

    assert_eq!(status, 200);
    for name in [
        "steward_tasks_created_total",
        "steward_task_transitions_total",
        "steward_tasks",
        "steward_task_duration_seconds",
        "steward_task_queue_wait_seconds",
        "steward_running_tasks",
        "steward_queue_depth",
        "steward_units",
        "steward_unit_load_ratio",
        "steward_http_requests_total",
        "steward_http_request_duration_seconds",
        "steward_ws_subscribers",
        "steward_db_pool_connections",
        "process_resident_memory_bytes",
    ] {
        assert!(
            text.contains(&format!("\n{name}")) || text.starts_with(name),
            "{name} missing from /metrics"
        );
    }
    assert_eq!(
        sample(&before, "steward_tasks_created_total{type=\"noop\"}"),
        None
    );
    assert_eq!(
        sample(&text, "steward_tasks_created_total{type=\"noop\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "steward_task_transitions_total{to=\"success\",type=\"noop\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "steward_task_transitions_total{to=\"failed\",type=\"command\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "steward_tasks{status=\"success\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "steward_tasks{status=\"failed\"}"), Some(1.0));
    assert_eq!(
        sample(
            &text,
            "steward_task_duration_seconds_count{status=\"success\",type=\"noop\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "steward_units{status=\"AVAILABLE\"}"),
        Some(1.0)
    );
    assert!(sample(&text, "steward_http_requests_total{method=\"GET\",route=\"/api/v1/tasks/{id}\",status=\"200\"}").unwrap_or(0.0) >= 1.0, "route patterns, not raw paths");
    assert!(!text.contains(&id_of(&ok)), "no raw ids in labels");
    let (status, _) = app.delete(&format!("/api/v1/tasks/{}", id_of(&ok))).await;
    assert_eq!(status, 204);
    let (_, after) = app.get_text("/metrics").await;
    assert_eq!(
        sample(&after, "steward_tasks{status=\"success\"}"),
        Some(0.0)
    );
}
