//! Bad input of every kind gets a SPEC §6 error naming what was wrong, never a 500.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(bad_input_gets_clear_errors_and_never_a_500);

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
