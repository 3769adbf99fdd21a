//! Prometheus metrics and statistics as an operator sees them.

use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    prometheus_metrics_are_present_and_move_when_tasks_run,
    repeated_failures_fold_into_one_alert_that_can_be_acknowledged,
    logs_search_finds_a_line_a_command_printed,
    system_events_are_searchable_beside_task_logs,
    cleanup_removes_old_finished_tasks_and_nothing_live,
    config_changes_out_of_range_are_refused_and_change_nothing,
);

/// Durations no timer can hold (and pool sizes no database takes) are refused with the key
/// named, and neither applied nor stored: a task still runs after them.
async fn config_changes_out_of_range_are_refused_and_change_nothing(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let (_, before) = app.get("/api/v1/system/config").await;
    for (key, value) in [
        ("default_timeout_secs", json!(1e300)),
        ("stall_timeout_secs", json!(1e308)),
        ("kill_grace_secs", json!(1e308)),
        ("priority_ageing_secs", json!(1e20)),
        ("history_retention_days", json!(1e12)),
        ("db_pool_size", json!(100_000)),
        ("log_max_files", json!(0)),
    ] {
        let (status, e) = app
            .put("/api/v1/system/config", json!({ key: value }))
            .await;
        assert_eq!(
            (status, e["error"]["field"].as_str()),
            (400, Some(key)),
            "{key}: {e}"
        );
        let (status, e) = app
            .post("/api/v1/system/config/validate", json!({ key: value }))
            .await;
        assert_eq!(status, 400, "{key}: {e}");
    }
    let (_, after) = app.get("/api/v1/system/config").await;
    assert_eq!(before, after);
    // The units' interpreter is chosen at start-up: said so, not claimed applied.
    let (status, r) = app
        .put(
            "/api/v1/system/config",
            json!({"python_path": "/usr/bin/python3"}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (r["applied"].clone(), r["restart_required"].clone()),
        (json!([]), json!(["python_path"])),
        "{r}"
    );
    // So is the body limit (actix reads it once).
    let (_, r) = app
        .put("/api/v1/system/config", json!({"max_body_bytes": 1000}))
        .await;
    assert_eq!(r["restart_required"], json!(["max_body_bytes"]), "{r}");
    // Seed 003's cleanup takes `days` in the query, with no body.
    let res = app
        .client
        .post(app.url("/api/v1/maintenance/cleanup?days=30"))
        .send()
        .await
        .expect("POST");
    let (status, cleaned) = body_json(res).await;
    assert_eq!(
        (status, cleaned["days"].as_f64()),
        (200, Some(30.0)),
        "{cleaned}"
    );
    let (_, history) = app.get("/api/v1/metrics/history").await;
    assert_eq!(history["interval_secs"], 5.0, "{history}");
    let t = app.create(json!({"type": "noop"})).await;
    app.wait_status(&id_of(&t), "success", 10.0).await;
}

async fn repeated_failures_fold_into_one_alert_that_can_be_acknowledged(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    for _ in 0..2 {
        let t = app.create(json!({"type": "command", "name": "nightly-sync", "max_retries": 0, "config": {"program": "false"}})).await;
        app.wait_status(&id_of(&t), "failed", 10.0).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let alert = loop {
        let (status, page) = app.get("/api/v1/alerts?type=task_failure").await;
        assert_eq!(status, 200);
        if let Some(a) = page["items"]
            .as_array()
            .and_then(|i| i.first())
            .filter(|a| a["count"] == 2)
        {
            assert_eq!(page["total"], 1, "folded into one alert: {page}");
            break a.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no folded alert: {page}"
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(
        (alert["level"].as_str(), alert["acknowledged"].as_bool()),
        (Some("error"), Some(false))
    );
    assert!(
        alert["last_seen_at"].is_string()
            && alert["title"].as_str().unwrap().contains("nightly-sync")
    );
    let (status, acked) = app
        .post_empty(&format!(
            "/api/v1/alerts/{}/acknowledge",
            alert["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (status, acked["acknowledged"].as_bool()),
        (200, Some(true)),
        "{acked}"
    );
    assert!(acked["acknowledged_at"].is_string());
    // (Only task failures: a loaded machine may raise resource alerts meanwhile.)
    let (_, open) = app
        .get("/api/v1/alerts?acknowledged=false&type=task_failure")
        .await;
    assert_eq!(open["total"], 0);
    let (status, _) = app.post_empty("/api/v1/alerts/nope/acknowledge").await;
    assert_eq!(status, 404);
}

async fn logs_search_finds_a_line_a_command_printed(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let t = app.create(json!({"type": "command", "config": {"program": "sh", "args": ["-c", "echo needle-4711; echo hay"]}})).await;
    app.wait_status(&id_of(&t), "success", 10.0).await;
    let (status, found) = app
        .post("/api/v1/logs/search", json!({"q": "needle-4711"}))
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["total"], 1);
    assert_eq!(found["items"][0]["task_id"], t["id"]);
    let line = found["items"][0]["id"].as_i64().unwrap();
    let (status, one) = app.get(&format!("/api/v1/logs/{line}")).await;
    assert_eq!(
        (status, one["message"].as_str()),
        (200, Some("needle-4711"))
    );
    let (_, by_task) = app
        .get(&format!("/api/v1/logs?task_id={}&level=INFO", id_of(&t)))
        .await;
    assert_eq!(by_task["total"], 2);
    let (status, e) = app
        .post("/api/v1/logs/search", json!({"level": "LOUD"}))
        .await;
    assert_eq!((status, e["error"]["field"].as_str()), (400, Some("level")));
}

/// Polls a log search until it finds something.
async fn find_logs(app: &TestApp, query: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, found) = app.get(&format!("/api/v1/logs?{query}")).await;
        assert_eq!(status, 200, "{found}");
        if found["total"].as_i64() > Some(0) {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing found for {query}"
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

async fn system_events_are_searchable_beside_task_logs(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange: a configuration change, a task that prints, and a unit that goes away.
    let (status, _) = app
        .put("/api/v1/system/config", json!({"max_parallel_tasks": 3}))
        .await;
    assert_eq!(status, 200);
    let t = app.create(json!({"type": "command", "config": {"program": "sh", "args": ["-c", "echo from-the-task"]}})).await;
    app.wait_status(&id_of(&t), "success", 10.0).await;
    let (status, unit) = app
        .post(
            "/api/v1/units",
            json!({"unit_name": "gone", "endpoint": "http://127.0.0.1:9",
                                      "task_types": ["x"]}),
        )
        .await;
    assert_eq!(status, 201, "{unit}");
    app.delete(&format!("/api/v1/units/{}", unit["id"].as_str().unwrap()))
        .await;

    // Act
    let config = find_logs(&app, "source=system&q=configuration%20changed").await;
    let started = find_logs(&app, "source=system&q=started").await;
    let units = find_logs(&app, "source=system&q=DEREGISTERED").await;
    let both = find_logs(&app, "limit=1000").await;
    let line = config["items"][0]["id"].as_i64().unwrap();
    let (status, one) = app.get(&format!("/api/v1/logs/{line}")).await;
    let (bad, e) = app.get("/api/v1/logs?source=kernel").await;
    let (clash, _) = app
        .get(&format!("/api/v1/logs?source=system&task_id={}", id_of(&t)))
        .await;

    // Assert
    let c = &config["items"][0];
    assert_eq!(c["source"], "system");
    assert_eq!(c["component"], "config");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("max_parallel_tasks"),
        "{c}"
    );
    assert!(line < 0, "system lines have negative ids");
    assert_eq!((status, &one["message"]), (200, &c["message"]));
    assert_eq!(started["items"][0]["component"], "server");
    assert_eq!(units["items"][0]["component"], "units");
    let sources: std::collections::HashSet<&str> = both["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["source"].as_str())
        .collect();
    assert_eq!(sources, ["task", "system"].into_iter().collect());
    let stamps: Vec<&str> = both["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["timestamp"].as_str())
        .collect();
    let mut sorted = stamps.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(stamps, sorted, "newest first across both logs");
    assert_eq!((bad, e["error"]["field"].as_str()), (400, Some("source")));
    assert_eq!(clash, 400);
}

async fn cleanup_removes_old_finished_tasks_and_nothing_live(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let done = app.create(json!({"type": "noop"})).await;
    app.wait_status(&id_of(&done), "success", 10.0).await;
    let live = app
        .create(json!({"type": "noop", "autostart": false}))
        .await;
    let (status, r) = app
        .post("/api/v1/maintenance/cleanup", json!({"days": 1}))
        .await;
    assert_eq!(
        (status, r["deleted"].as_i64()),
        (200, Some(0)),
        "nothing is a day old: {r}"
    );
    let (status, r) = app
        .post("/api/v1/maintenance/cleanup", json!({"days": 0}))
        .await;
    assert_eq!((status, r["deleted"].as_i64()), (200, Some(1)), "{r}");
    let (status, _) = app.get(&format!("/api/v1/tasks/{}", id_of(&done))).await;
    assert_eq!(status, 404);
    assert_eq!(app.task(&id_of(&live)).await["status"], "pending");
    let (status, e) = app
        .post("/api/v1/maintenance/cleanup", json!({"days": -3}))
        .await;
    assert_eq!((status, e["error"]["field"].as_str()), (400, Some("days")));
    let (status, m) = app.get("/api/v1/metrics").await;
    assert_eq!(status, 200);
    for k in [
        "cpu_percent",
        "memory_percent",
        "disk_percent",
        "active_tasks",
        "pending_tasks",
        "completed_tasks_today",
    ] {
        assert!(m.get(k).is_some(), "{k} missing: {m}");
    }
    let (status, r) = app.get("/api/v1/system/resources").await;
    assert_eq!(status, 200);
    assert!(r["process"]["rss_bytes"].as_u64().unwrap() > 0);
    let (status, h) = app.get("/api/v1/metrics/history").await;
    assert_eq!(status, 200);
    assert!(h["items"].is_array());
}

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
