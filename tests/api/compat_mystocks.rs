//! SPEC §11 compatibility routes for seed 003 (MyStocks): register, start, stop, execution
//! history, statistics, health, and the tasks.yaml import/export round trip through files.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    seed003_register_start_stop_and_read_history_statistics_and_health,
    seed003_export_and_import_round_trip_through_a_file_in_the_data_dir,
);

fn assert_error(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
}

/// Starts a registered task and returns the execution (task) id.
async fn start(app: &TestApp, name: &str, body: Value) -> String {
    let (status, r) = app.post(&format!("/api/tasks/{name}/start"), body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (r["success"].as_bool(), r["task_id"].as_str()),
        (Some(true), Some(name))
    );
    r["data"]["execution_id"]
        .as_str()
        .expect("execution id")
        .to_string()
}

async fn seed003_register_start_stop_and_read_history_statistics_and_health(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange: the seed's TaskConfig, with a steward task type and its params
    let config = json!({
        "task_id": "daily_data_sync",
        "task_name": "每日股票数据同步",
        "task_type": "sleep",
        "description": "sync after the close",
        "priority": 200,
        "params": {"secs": 0.05},
        "timeout": 300,
        "retry_count": 1,
        "tags": ["daily", "data_sync"],
    });

    // Act
    let (status, reg) = app.post("/api/tasks/register", config.clone()).await;

    // Assert
    assert_eq!(status, 200, "{reg}");
    assert_eq!(
        (reg["success"].as_bool(), reg["task_id"].as_str()),
        (Some(true), Some("daily_data_sync"))
    );
    let (status, dup) = app.post("/api/tasks/register", config).await;
    assert_error(status, &dup, 409, "conflict");
    let (status, shown) = app.get("/api/tasks/daily_data_sync").await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["task_name"], "每日股票数据同步");
    assert_eq!(
        (shown["priority"].as_i64(), shown["timeout"].as_f64()),
        (Some(200), Some(300.0))
    );
    assert_eq!(shown["params"], json!({"secs": 0.05}));
    assert_eq!(shown["tags"], json!(["daily", "data_sync"]));
    let (_, all) = app.get("/api/tasks/?task_type=sleep&tags=daily").await;
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    let (_, none) = app.get("/api/tasks/?tags=weekly").await;
    assert_eq!(none, json!([]));

    // start: one execution that succeeds; another with params merged for that run, stopped
    let first = start(&app, "daily_data_sync", json!({})).await;
    app.wait_status(&first, "success", 10.0).await;
    let second = start(&app, "daily_data_sync", json!({"params": {"secs": 30}})).await;
    app.wait_status(&second, "running", 10.0).await;
    assert_eq!(app.task(&second).await["config"]["secs"], 30.0);
    let (status, again) = app.post_empty("/api/tasks/daily_data_sync/start").await;
    assert_error(status, &again, 409, "conflict");
    let (status, stopped) = app.post_empty("/api/tasks/daily_data_sync/stop").await;
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["data"]["cancelled"], json!([second.as_str()]));
    app.wait_status(&second, "cancelled", 10.0).await;

    // execution history, newest first
    let (status, execs) = app
        .get("/api/tasks/executions/?task_id=daily_data_sync")
        .await;
    assert_eq!(status, 200, "{execs}");
    let execs = execs.as_array().unwrap().clone();
    assert_eq!(execs.len(), 2, "{execs:?}");
    assert_eq!(
        (
            execs[0]["execution_id"].as_str(),
            execs[0]["status"].as_str()
        ),
        (Some(second.as_str()), Some("cancelled"))
    );
    assert_eq!(
        (
            execs[1]["execution_id"].as_str(),
            execs[1]["status"].as_str()
        ),
        (Some(first.as_str()), Some("success"))
    );
    assert_eq!(execs[1]["task_id"], "daily_data_sync");
    assert!(
        execs[1]["duration"].as_f64().is_some_and(|d| d >= 0.04),
        "{}",
        execs[1]
    );
    let (status, one) = app.get(&format!("/api/tasks/executions/{first}")).await;
    assert_eq!(status, 200);
    assert_eq!(one["start_time"], execs[1]["start_time"]);
    let (_, limited) = app.get("/api/tasks/executions/?limit=1").await;
    assert_eq!(limited.as_array().map(Vec::len), Some(1));

    // statistics and health
    let (status, stats) = app.get("/api/tasks/statistics/").await;
    assert_eq!(status, 200, "{stats}");
    let s = &stats["daily_data_sync"];
    assert_eq!(
        (
            s["total_executions"].as_i64(),
            s["success_count"].as_i64(),
            s["failed_count"].as_i64()
        ),
        (Some(2), Some(1), Some(0)),
        "{stats}"
    );
    assert_eq!(s["success_rate"], 1.0);
    assert!(
        s["avg_duration"].as_f64().is_some() && s["last_execution_time"].is_string(),
        "{s}"
    );
    let (status, health) = app.get("/api/tasks/health").await;
    assert_eq!(status, 200);
    assert_eq!(
        health,
        json!({"status": "healthy", "total_tasks": 1, "running_tasks": 0, "total_executions": 2})
    );

    // unregistering keeps the history; bad input is a 4xx naming the field
    let (status, gone) = app.delete("/api/tasks/daily_data_sync").await;
    assert_eq!(
        (status, gone["success"].as_bool()),
        (200, Some(true)),
        "{gone}"
    );
    let (status, e) = app.get("/api/tasks/daily_data_sync").await;
    assert_error(status, &e, 404, "not_found");
    let (_, execs) = app.get("/api/tasks/executions/").await;
    assert_eq!(execs.as_array().map(Vec::len), Some(2));
    let (status, e) = app
        .post("/api/tasks/register", json!({"task_name": "no id"}))
        .await;
    assert_error(status, &e, 400, "validation_error");
    assert_eq!(e["error"]["field"], "task_id");
    let (status, e) = app
        .post(
            "/api/tasks/register",
            json!({"task_id": "x", "task_type": "manual"}),
        )
        .await;
    assert_error(status, &e, 400, "validation_error");
    assert_eq!(e["error"]["field"], "task_module");
    let (status, e) = app
        .post(
            "/api/tasks/register",
            json!({"task_id": "x", "task_type": "noop",
               "schedule": {"schedule_type": "cron", "cron_expression": "every day"}}),
        )
        .await;
    assert_error(status, &e, 400, "validation_error");
}

async fn seed003_export_and_import_round_trip_through_a_file_in_the_data_dir(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange: two registered tasks, one on a cron schedule
    let cron = json!({
        "task_id": "close_sync", "task_name": "收盘同步", "task_type": "noop", "priority": 100,
        "schedule": {"schedule_type": "cron", "cron_expression": "0 16 * * 1-5", "enabled": true},
        "retry_count": 3, "retry_delay": 300, "tags": ["daily"],
    });
    let manual = json!({"task_id": "backfill", "task_type": "sleep", "params": {"secs": 1}});
    for body in [&cron, &manual] {
        let (status, r) = app.post("/api/tasks/register", body.clone()).await;
        assert_eq!(status, 200, "{r}");
    }
    let (_, before) = app.get("/api/tasks/close_sync").await;
    assert_eq!(before["schedule"]["cron_expression"], "0 16 * * 1-5");
    assert!(before["next_run_time"].is_string(), "{before}");

    // Act: export to a file under the data dir, unregister, import the file back
    let (status, out) = app
        .post("/api/tasks/export", json!({"output_path": "tasks.yaml"}))
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        (out["success"].as_bool(), out["tasks"].as_i64()),
        (Some(true), Some(2))
    );
    let text = std::fs::read_to_string(app.dir.path().join("tasks.yaml")).expect("exported file");
    assert!(
        text.contains("close_sync") && text.contains("0 16 * * 1-5"),
        "{text}"
    );
    for name in ["close_sync", "backfill"] {
        let (status, _) = app.delete(&format!("/api/tasks/{name}")).await;
        assert_eq!(status, 200);
    }
    let (status, imported) = app
        .post("/api/tasks/import", json!({"config_path": "tasks.yaml"}))
        .await;

    // Assert
    assert_eq!(status, 200, "{imported}");
    let mut created: Vec<&str> = imported["data"]["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    created.sort();
    assert_eq!(created, ["backfill", "close_sync"]);
    let (_, after) = app.get("/api/tasks/close_sync").await;
    for key in [
        "task_name",
        "task_type",
        "priority",
        "schedule",
        "retry_count",
        "retry_delay",
        "tags",
    ] {
        assert_eq!(after[key], before[key], "{key}: {after} vs {before}");
    }
    let (_, backfill) = app.get("/api/tasks/backfill").await;
    assert_eq!(backfill["params"], json!({"secs": 1}));
    // Importing the same file again updates, never duplicates; inline documents work too
    let (_, again) = app
        .post("/api/tasks/import", json!({"config_path": "tasks.yaml"}))
        .await;
    assert_eq!(
        again["data"]["updated"].as_array().map(Vec::len),
        Some(2),
        "{again}"
    );
    let (status, inline) = app
        .post(
            "/api/tasks/import",
            json!({"config": {"tasks": [{"task_id": "inline", "task_type": "noop"}]}}),
        )
        .await;
    assert_eq!(
        (status, &inline["data"]["created"]),
        (200, &json!(["inline"]))
    );

    // Files outside the data roots are refused
    let (status, e) = app
        .post(
            "/api/tasks/export",
            json!({"output_path": "/etc/steward-tasks.yaml"}),
        )
        .await;
    assert_error(status, &e, 400, "validation_error");
    assert_eq!(e["error"]["field"], "output_path");
    let (status, e) = app
        .post(
            "/api/tasks/import",
            json!({"config_path": "../../etc/passwd"}),
        )
        .await;
    assert_error(status, &e, 400, "validation_error");
    assert_eq!(e["error"]["field"], "config_path");
    let (status, e) = app
        .post("/api/tasks/import", json!({"config_path": "missing.yaml"}))
        .await;
    assert_error(status, &e, 400, "validation_error");
    let (status, e) = app.post("/api/tasks/import", json!({})).await;
    assert_error(status, &e, 400, "validation_error");
}
