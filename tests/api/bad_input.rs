//! Bad input of every kind gets a SPEC §6 error naming what was wrong, never a 500.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    bad_input_gets_clear_errors_and_never_a_500,
    a_wrong_method_on_a_known_path_gets_a_405_error,
    unknown_alert_levels_and_event_kinds_are_refused,
    raw_bodies_and_websocket_routes_answer_the_error_shape
);

/// A YAML import over `max_body_bytes` is a JSON 413 like any JSON body, and a WebSocket route
/// asked without the upgrade is a JSON 400.
async fn raw_bodies_and_websocket_routes_answer_the_error_shape(db: Db) {
    let Some(app) = spawn_app_with(db, |c| c.max_body_bytes = 2000).await else {
        return;
    };
    let big = format!("tasks:\n{}", "# padding line\n".repeat(300));
    let res = app
        .client
        .post(app.url("/api/v1/schedules/import"))
        .insert_header(("content-type", "application/yaml"))
        .send_body(big)
        .await
        .expect("POST");
    let (status, e) = body_json(res).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{e}"
    );
    for (path, field) in [
        ("/api/v1/tasks?batch_id=notanid", "batch_id"),
        ("/api/v1/tasks?schedule_id=notanid", "schedule_id"),
        ("/api/v1/alerts?type=weather", "type"),
    ] {
        let (status, e) = app.get(path).await;
        assert_eq!(
            (status, e["error"]["field"].as_str()),
            (400, Some(field)),
            "{path}: {e}"
        );
    }
    let (status, e) = app
        .post("/api/v1/logs/search", json!({"query": "err"}))
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("query")),
        "an unknown filter is refused, not ignored: {e}"
    );
    for path in ["/api/v1/ws", "/api/v1/units/connect"] {
        let (status, e) = app.get(path).await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (400, Some("validation_error")),
            "{path}: {e}"
        );
    }
}

async fn a_wrong_method_on_a_known_path_gets_a_405_error(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let id = id_of(&app.create(json!({"type": "noop"})).await);
    // (method, path, a method the path takes)
    let cases = [
        ("PUT", "/api/v1/tasks".to_string(), "GET"),
        ("DELETE", "/api/v1/tasks".to_string(), "POST"),
        ("POST", format!("/api/v1/tasks/{id}"), "PATCH"),
        ("PUT", "/api/v1/batches".to_string(), "POST"),
        ("DELETE", "/api/v1/system/config".to_string(), "PUT"),
        ("PUT", "/api/v1/units".to_string(), "POST"),
        ("PATCH", "/api/v1/webhooks".to_string(), "GET"),
        ("POST", format!("/api/v1/tasks/{id}/history"), "GET"),
        ("DELETE", "/api/v1/events".to_string(), "GET"),
        ("PUT", "/api/v1/tasks/statistics".to_string(), "GET"),
    ];
    for (method, path, allowed) in cases {
        // Act
        let res = app
            .client
            .request(method.parse().unwrap(), app.url(&path))
            .insert_header(("content-type", "application/json"))
            .send_body("{}")
            .await
            .expect("request");
        let allow = res
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let (status, e) = body_json(res).await;

        // Assert
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (405, Some("method_not_allowed")),
            "{method} {path}: {e}"
        );
        let message = e["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("{method} is not allowed on {path}")),
            "{method} {path}: {e}"
        );
        let methods: Vec<&str> = allow.split(',').map(str::trim).collect();
        assert!(
            methods.contains(&allowed) && !methods.contains(&method),
            "{method} {path}: Allow is '{allow}'"
        );
    }
    // An unknown path is still a 404, whatever the method.
    let (status, e) = app.put("/api/v1/nowhere", json!({})).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{e}"
    );
}

async fn unknown_alert_levels_and_event_kinds_are_refused(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    for (path, field, named) in [
        ("/api/v1/alerts?level=bogus", "level", "critical"),
        ("/api/v1/events?event=bogus", "event", "progress"),
    ] {
        // Act
        let (status, e) = app.get(path).await;

        // Assert
        assert_eq!(
            (
                status,
                e["error"]["code"].as_str(),
                e["error"]["field"].as_str()
            ),
            (400, Some("validation_error"), Some(field)),
            "{path}: {e}"
        );
        let message = e["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("'bogus'") && message.contains(named),
            "{path}: the message names the value and the allowed ones: {e}"
        );
    }
    for path in [
        "/api/v1/alerts?level=warning",
        "/api/v1/alerts?level=CRITICAL",
        "/api/v1/events?event=status",
        "/api/v1/events?event=batch",
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body["items"].is_array(), "{path}: {body}");
    }
}

async fn bad_input_gets_clear_errors_and_never_a_500(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (json!({}), 400, "validation_error", Some("type")),
        (
            json!({"type": "warp_drive"}),
            400,
            "validation_error",
            Some("type"),
        ),
        (
            json!({"type": "noop", "priority": "sky-high"}),
            400,
            "validation_error",
            Some("priority"),
        ),
        (
            json!({"type": "noop", "priority": 1.5}),
            400,
            "validation_error",
            Some("priority"),
        ),
        (
            json!({"type": "sleep"}),
            400,
            "validation_error",
            Some("config.secs"),
        ),
        (
            json!({"type": "sleep", "config": {"secs": "long"}}),
            400,
            "validation_error",
            Some("config.secs"),
        ),
        (
            json!({"type": "command", "config": {}}),
            400,
            "validation_error",
            Some("config.program"),
        ),
        (
            json!({"type": "command", "config": {"program": "ls", "cwd": "/etc"}}),
            400,
            "validation_error",
            Some("config.cwd"),
        ),
        (
            json!({"type": "command", "config": {"program": "ls", "cwd": "../.."}}),
            400,
            "validation_error",
            Some("config.cwd"),
        ),
        (
            json!({"type": "noop", "config": [1]}),
            400,
            "validation_error",
            Some("config"),
        ),
        (
            json!({"type": "noop", "max_retries": -1}),
            400,
            "validation_error",
            Some("max_retries"),
        ),
        (
            json!({"type": "noop", "timeout_secs": 0}),
            400,
            "validation_error",
            Some("timeout_secs"),
        ),
        (
            json!({"type": "noop", "retry_backoff": "fibonacci"}),
            400,
            "validation_error",
            Some("retry_backoff"),
        ),
        (
            json!({"type": "noop", "mutex_policy": "maybe"}),
            400,
            "validation_error",
            Some("mutex_policy"),
        ),
        (
            json!({"type": "noop", "depends_on": ["not-an-id"]}),
            400,
            "validation_error",
            Some("depends_on[0]"),
        ),
        (
            json!({"type": "noop", "run_at": "tomorrow"}),
            400,
            "validation_error",
            Some("run_at"),
        ),
        (
            json!({"type": "noop", "tags": "x"}),
            400,
            "validation_error",
            Some("tags"),
        ),
        (
            json!({"type": "noop", "callback_url": "ftp://x"}),
            400,
            "validation_error",
            Some("callback_url"),
        ),
        (json!([1, 2]), 400, "validation_error", None),
    ];
    for (body, status, code, field) in cases {
        let (got, e) = app.post("/api/v1/tasks", body.clone()).await;
        assert_eq!(got, status, "{body} -> {e}");
        assert_eq!(e["error"]["code"], code, "{body} -> {e}");
        assert!(e["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        if let Some(f) = field {
            assert_eq!(e["error"]["field"], f, "{body} -> {e}");
        }
    }
    let (status, e) = app.post_raw("/api/v1/tasks", "{not json").await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("invalid_json")),
        "{e}"
    );

    let unknown = "01a20000-0000-7000-8000-000000000000";
    for path in [
        format!("/api/v1/tasks/{unknown}"),
        "/api/v1/tasks/nonsense".into(),
        format!("/api/v1/tasks/{unknown}/history"),
        "/api/v1/nowhere".into(),
    ] {
        let (status, e) = app.get(&path).await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{path}: {e}"
        );
    }
    for action in ["pause", "resume", "cancel", "restart", "retry", "start"] {
        let (status, e) = app
            .post_empty(&format!("/api/v1/tasks/{unknown}/{action}"))
            .await;
        assert_eq!(status, 404, "{action}: {e}");
    }
    for query in [
        "limit=100000",
        "limit=0",
        "page=0",
        "sort=name;DROP%20TABLE%20tasks",
        "sort=-bogus",
        "status=sleeping",
        "format=xml",
        "created_after=yesterday",
        "ids=1,2",
    ] {
        let (status, e) = app.get(&format!("/api/v1/tasks?{query}")).await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (400, Some("validation_error")),
            "{query}: {e}"
        );
    }
    let (status, _) = app.get("/api/v1/tasks").await;
    assert_eq!(status, 200, "the table survived");
}
