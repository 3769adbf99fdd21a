//! SPEC §11 compatibility routes, driven the way each seed's client would: seed 000's
//! back-test RPC calls, seed 001's market-data task routes, seed 004's task model and
//! execution units. Seed 003 is in `compat_mystocks.rs`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    seed000_batch_runs_to_completed_and_serves_status_lists_and_results,
    seed000_cancel_batch_and_bad_requests,
    seed001_submit_is_mutually_exclusive_and_a_failed_task_is_retried,
    seed004_task_lifecycle_in_seed_shapes,
    seed004_unit_callback_finishes_a_task,
    seed004_execution_units_answer_what_the_v1_registry_answers,
    aliases_need_the_token_and_forward_it,
);

/// A command task whose result is `{"sharpe": <n>}`.
fn backtest(n: f64) -> Value {
    let line = format!("echo '@steward {{\"result\": {{\"sharpe\": {n}}}}}'");
    json!({"name": format!("bt-{n}"), "config": {"program": "sh", "args": ["-c", line]}})
}

fn assert_error(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

async fn seed000_batch_runs_to_completed_and_serves_status_lists_and_results(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange / Act: the seed's BatchRequest, with a batch-wide task type
    let (status, created) = app
        .post(
            "/api/v1/backtest/createBatch",
            json!({
                "batch_name": "ma-grid",
                "description": "moving-average grid",
                "priority": "high",
                "execution_strategy": "parallel",
                "task_type": "command",
                "tasks": [backtest(1.5), backtest(0.7)],
            }),
        )
        .await;

    // Assert
    assert_eq!(status, 200, "{created}");
    let batch = created["batch_id"].as_str().unwrap().to_string();
    assert_eq!(created["name"], "ma-grid");
    assert_eq!(created["priority"], 2);
    assert_eq!(created["total_tasks"], 2);
    let ids: Vec<String> = created["task_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);

    // getBatchStatus as a long poll until the batch is completed
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = created.clone();
    while seen["status"] != "completed" {
        assert!(Instant::now() < deadline, "batch never completed: {seen}");
        assert!(
            ["pending", "running"].contains(&seen["status"].as_str().unwrap()),
            "{seen}"
        );
        let (status, s) = app
            .get(&format!(
                "/api/v1/backtest/getBatchStatus?batch_id={batch}&after_version={}&timeout_secs=5",
                seen["version"]
            ))
            .await;
        assert_eq!(status, 200, "{s}");
        seen = s;
    }
    assert_eq!(
        (
            &seen["completed_tasks"],
            &seen["queued_tasks"],
            &seen["failed_tasks"]
        ),
        (&json!(2), &json!(0), &json!(0))
    );
    assert_eq!(seen["progress"], 100.0);
    assert!(seen["finished_at"].is_string());

    let (status, list) = app
        .get(&format!(
            "/api/v1/backtest/getTaskList?batch_id={batch}&status=completed&page=1&limit=10"
        ))
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        (list["total"].as_i64(), list["page"].as_i64()),
        (Some(2), Some(1))
    );
    for t in list["items"].as_array().unwrap() {
        assert_eq!(t["status"], "completed");
        assert_eq!(t["batch_id"], batch.as_str());
        assert_eq!(t["task_type"], "command");
    }
    let (_, none) = app
        .get(&format!(
            "/api/v1/backtest/getTaskList?batch_id={batch}&status=queued"
        ))
        .await;
    assert_eq!(none["total"], 0);

    let (status, one) = app
        .get(&format!(
            "/api/v1/backtest/getTaskStatus?task_id={}&include_history=true",
            ids[0]
        ))
        .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["status"], "completed");
    assert_eq!(one["progress"], 100.0);
    let history: Vec<&str> = one["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to"].as_str().unwrap())
        .collect();
    assert_eq!(history.last(), Some(&"success"), "{one}");

    let missing = "01a20000-0000-7000-8000-000000000000";
    let (status, bulk) = app
        .get(&format!(
            "/api/v1/backtest/getTaskStatus?task_ids={},{},{missing}",
            ids[0], ids[1]
        ))
        .await;
    assert_eq!(status, 200, "{bulk}");
    assert_eq!(bulk["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(bulk["not_found"], json!([missing]));

    let (status, result) = app
        .get(&format!(
            "/api/v1/backtest/getTaskResult?task_id={}",
            ids[0]
        ))
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], "completed");
    assert_eq!(result["result"]["sharpe"], 1.5);
}

async fn seed000_cancel_batch_and_bad_requests(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange: a batch that would run for a long time
    let (status, created) = app
        .post(
            "/api/v1/backtest/createBatch",
            json!({"name": "slow", "task_type": "sleep",
                   "tasks": [{"config": {"secs": 30}}, {"config": {"secs": 30}}]}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let batch = created["batch_id"].as_str().unwrap();

    // Act
    let (status, cancelled) = app
        .post("/api/v1/backtest/cancelBatch", json!({"batch_id": batch}))
        .await;

    // Assert
    assert_eq!(status, 200, "{cancelled}");
    let (_, done) = app
        .get(&format!(
            "/api/v1/backtest/getBatchStatus?batch_id={batch}&after_version=0&timeout_secs=0"
        ))
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut done = done;
    while done["status"] != "cancelled" {
        assert!(Instant::now() < deadline, "never cancelled: {done}");
        let (_, d) = app
            .get(&format!(
                "/api/v1/backtest/getBatchStatus?batch_id={batch}&after_version={}&timeout_secs=5",
                done["version"]
            ))
            .await;
        done = d;
    }
    assert_eq!(done["cancelled_tasks"], 2);
    let (status, again) = app
        .post("/api/v1/backtest/cancelBatch", json!({"batch_id": batch}))
        .await;
    assert_error(status, &again, 409, "invalid_transition");

    // Bad input is a 4xx in the SPEC §6 shape, naming the field
    let (status, e) = app
        .post("/api/v1/backtest/createBatch", json!({"name": "empty"}))
        .await;
    assert_error(status, &e, 400, "validation_error");
    assert_eq!(e["error"]["field"], "tasks");
    let (status, e) = app
        .post(
            "/api/v1/backtest/createBatch",
            json!({"tasks": [{"config": {}}]}),
        )
        .await;
    assert_error(status, &e, 400, "validation_error");
    assert_eq!(e["error"]["field"], "tasks[0].type");
    let (status, e) = app
        .post(
            "/api/v1/backtest/createBatch",
            json!({"execution_strategy": "sideways", "task_type": "noop", "tasks": [{}]}),
        )
        .await;
    assert_error(status, &e, 400, "validation_error");
    assert_eq!(e["error"]["field"], "execution_strategy");
    let (status, e) = app.get("/api/v1/backtest/getBatchStatus").await;
    assert_error(status, &e, 400, "validation_error");
    assert_eq!(e["error"]["field"], "batch_id");
    let (status, e) = app
        .get("/api/v1/backtest/getTaskStatus?task_ids=not-an-id")
        .await;
    assert_error(status, &e, 400, "validation_error");
    let (status, e) = app
        .get("/api/v1/backtest/getTaskResult?task_id=01a20000-0000-7000-8000-000000000000")
        .await;
    assert_error(status, &e, 404, "not_found");
}

async fn seed001_submit_is_mutually_exclusive_and_a_failed_task_is_retried(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange: one download-like task running under the market_data mutex
    let (status, first) = app
        .post(
            "/api/market-data/tasks",
            json!({"task_type": "sleep", "config": {"secs": 30}}),
        )
        .await;
    assert_eq!(status, 202, "{first}");
    let first = first["task_id"].as_str().unwrap().to_string();
    app.wait_status(&first, "running", 10.0).await;

    // Act / Assert: a second submission is refused while the first holds the mutex
    let (status, refused) = app
        .post("/api/market-data/tasks", json!({"task_type": "noop"}))
        .await;
    assert_error(status, &refused, 409, "mutex_held");

    let (status, row) = app.get(&format!("/api/market-data/tasks/{first}")).await;
    assert_eq!(status, 200, "{row}");
    assert_eq!(row["task_id"], first.as_str());
    assert_eq!(
        (row["task_type"].as_str(), row["status"].as_str()),
        (Some("sleep"), Some("running"))
    );
    assert!(
        row["progress"].is_i64(),
        "the seed's progress is an integer: {row}"
    );
    assert!(row["started_at"].is_string() && row["finished_at"].is_null());
    assert_eq!(row["source"], "api");
    let (status, _) = app
        .post_empty(&format!("/api/v1/tasks/{first}/cancel"))
        .await;
    assert_eq!(status, 200);
    app.wait_status(&first, "cancelled", 10.0).await;

    // A failing task, retried as a new task with source "retry"
    let (status, failing) = app
        .post(
            "/api/market-data/tasks",
            json!({"task_type": "command", "max_retries": 0, "config": {"program": "false"}}),
        )
        .await;
    assert_eq!(status, 202, "{failing}");
    let failing = failing["task_id"].as_str().unwrap().to_string();
    app.wait_status(&failing, "failed", 10.0).await;
    let (_, row) = app.get(&format!("/api/market-data/tasks/{failing}")).await;
    assert_eq!(row["status"], "failed");
    assert!(row["error"].is_string(), "{row}");

    let (status, retried) = app
        .post_empty(&format!("/api/market-data/tasks/{failing}/retry"))
        .await;
    assert_eq!(status, 202, "{retried}");
    let new_id = retried["task_id"].as_str().unwrap();
    assert_ne!(new_id, failing);
    let (_, new_row) = app.get(&format!("/api/market-data/tasks/{new_id}")).await;
    assert_eq!(
        (new_row["source"].as_str(), new_row["task_type"].as_str()),
        (Some("retry"), Some("command"))
    );
    assert_eq!(app.task(new_id).await["retry_of"], failing.as_str());

    // Only failed tasks can be retried (SPEC: 409); unknown tasks are 404
    let (status, e) = app
        .post_empty(&format!("/api/market-data/tasks/{first}/retry"))
        .await;
    assert_error(status, &e, 409, "invalid_transition");
    let (status, e) = app
        .get("/api/market-data/tasks/01a20000-0000-7000-8000-000000000000")
        .await;
    assert_error(status, &e, 404, "not_found");
    let (status, e) = app
        .post("/api/market-data/tasks", json!({"task_type": "download"}))
        .await;
    assert_error(status, &e, 400, "validation_error");
    assert_eq!(e["error"]["field"], "task_type");
}

/// Polls `GET /api/tasks/{id}` until its seed-004 status is `want`.
async fn wait_seed004(app: &TestApp, id: &str, want: &str) -> Value {
    let lower = want.to_lowercase();
    app.wait_status(id, &lower, 15.0).await;
    let (status, t) = app.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["status"], want, "{t}");
    t
}

async fn seed004_task_lifecycle_in_seed_shapes(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange / Act: seed 004 creates tasks that wait for START
    let body = |name: &str| {
        json!({"taskName": name, "taskType": "SLEEP", "priority": 1,
               "config": {"secs": 30}, "maxRetries": 2})
    };
    let (status, a) = app.post("/api/tasks", body("数据处理任务")).await;
    assert_eq!(status, 201, "{a}");
    assert_eq!(
        (
            a["taskName"].as_str(),
            a["taskType"].as_str(),
            a["status"].as_str()
        ),
        (Some("数据处理任务"), Some("SLEEP"), Some("PENDING"))
    );
    assert_eq!(
        (a["maxRetries"].as_i64(), a["retryCount"].as_i64()),
        (Some(2), Some(0))
    );
    assert!(a["completedAt"].is_null() && a["errorMessage"].is_null());
    let a = a["id"].as_str().unwrap().to_string();
    let (_, b) = app.post("/api/tasks", body("second")).await;
    let b = b["id"].as_str().unwrap().to_string();
    assert_eq!(app.task(&a).await["waiting_on"], "start");

    // start, pause
    for id in [&a, &b] {
        let (status, t) = app.post_empty(&format!("/api/tasks/{id}/start")).await;
        assert_eq!(status, 200, "{t}");
        wait_seed004(&app, id, "RUNNING").await;
    }
    let (status, paused) = app.post_empty(&format!("/api/tasks/{b}/pause")).await;
    assert_eq!(status, 200, "{paused}");
    let paused = wait_seed004(&app, &b, "PAUSED").await;
    assert_eq!(paused["executionUnitId"], "local");

    // list with the seed's query
    let (status, running) = app.get("/api/tasks?status=RUNNING&page=1&limit=10").await;
    assert_eq!(status, 200, "{running}");
    assert_eq!(
        (running["page"].as_i64(), running["limit"].as_i64()),
        (Some(1), Some(10))
    );
    assert_eq!(running["total"], 1);
    assert_eq!(running["items"][0]["id"], a.as_str());
    assert_eq!(running["items"][0]["status"], "RUNNING");
    let (_, by_type) = app.get("/api/tasks?taskType=SLEEP&status=PAUSED").await;
    assert_eq!(by_type["total"], 1);
    assert_eq!(by_type["items"][0]["id"], b.as_str());

    // resume, cancel, restart, delete
    app.post_empty(&format!("/api/tasks/{b}/resume")).await;
    wait_seed004(&app, &b, "RUNNING").await;
    let (status, _) = app.post_empty(&format!("/api/tasks/{a}/cancel")).await;
    assert_eq!(status, 200);
    wait_seed004(&app, &a, "CANCELLED").await;
    let (status, restarted) = app.post_empty(&format!("/api/tasks/{a}/restart")).await;
    assert_eq!(status, 200, "{restarted}");
    assert_eq!(restarted["id"], a.as_str());
    let (status, e) = app.delete(&format!("/api/tasks/{a}")).await;
    assert_error(status, &e, 409, "not_terminal");
    for id in [&a, &b] {
        app.post_empty(&format!("/api/tasks/{id}/cancel")).await;
        wait_seed004(&app, id, "CANCELLED").await;
    }
    let (status, _) = app.delete(&format!("/api/tasks/{a}")).await;
    assert_eq!(status, 204);
    let (status, e) = app.get(&format!("/api/tasks/{a}")).await;
    assert_error(status, &e, 404, "not_found");

    // bad input names the seed's fields
    let (status, e) = app.post("/api/tasks", json!({"taskName": "x"})).await;
    assert_error(status, &e, 400, "validation_error");
    assert_eq!(e["error"]["field"], "taskType");
    let (status, e) = app
        .post(
            "/api/tasks",
            json!({"taskType": "NOOP", "maxRetries": "three"}),
        )
        .await;
    assert_error(status, &e, 400, "validation_error");
    assert_eq!(e["error"]["field"], "maxRetries");
    let (status, e) = app.get("/api/tasks?status=SLEEPING").await;
    assert_error(status, &e, 400, "validation_error");
    let (status, e) = app.post_empty(&format!("/api/tasks/{b}/pause")).await;
    assert_error(status, &e, 409, "invalid_transition");
}

async fn seed004_unit_callback_finishes_a_task(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange
    let (_, t) = app
        .post(
            "/api/tasks",
            json!({"taskName": "backup", "taskType": "sleep", "config": {"secs": 30}}),
        )
        .await;
    let id = t["id"].as_str().unwrap().to_string();
    app.post_empty(&format!("/api/tasks/{id}/start")).await;
    wait_seed004(&app, &id, "RUNNING").await;

    // Act: the unit's callback in seed 004 §8.2's shape
    let (status, _) = app
        .post(
            &format!("/api/tasks/{id}/status"),
            json!({"status": "SUCCESS", "result": {"tables": 12}, "errorMessage": null}),
        )
        .await;

    // Assert
    assert_eq!(status, 200);
    let done = wait_seed004(&app, &id, "SUCCESS").await;
    assert_eq!(done["result"], json!({"tables": 12}));
    assert!(done["completedAt"].is_string());
    let (status, e) = app
        .post(
            &format!("/api/tasks/{id}/status"),
            json!({"status": "DONE"}),
        )
        .await;
    assert_error(status, &e, 400, "validation_error");
    assert_eq!(e["error"]["field"], "status");
}

async fn seed004_execution_units_answer_what_the_v1_registry_answers(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Reading units: the v1 answer in camelCase
    let (status, units) = app.get("/api/execution-units").await;
    assert_eq!(status, 200, "{units}");
    let local = units
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == "local")
        .cloned()
        .expect("the local unit");
    assert!(
        local["unitName"].is_string() && local["currentLoad"].is_i64(),
        "{local}"
    );
    assert!(local.get("unit_name").is_none());
    let (status, one) = app.get("/api/execution-units/local").await;
    assert_eq!(status, 200);
    assert_eq!(one["unitType"], local["unitType"]);
    let (status, e) = app.get("/api/execution-units/nowhere").await;
    assert_error(status, &e, 404, "not_found");

    // Registering: checked in the seed's names, then answered as POST /api/v1/units answers
    let (status, e) = app
        .post(
            "/api/execution-units",
            json!({"unitType": "HTTP", "unitName": "p", "capacity": "five"}),
        )
        .await;
    assert_error(status, &e, 400, "validation_error");
    assert_eq!(e["error"]["field"], "capacity");
    let (status, e) = app
        .post("/api/execution-units", json!({"unitType": "HTTP"}))
        .await;
    assert_error(status, &e, 400, "validation_error");
    assert_eq!(e["error"]["field"], "unitName");

    let seed = json!({"unitType": "HTTP", "unitName": "processor-1", "capacity": 5,
                      "endpoint": "http://127.0.0.1:9/", "config": {}, "taskTypes": ["data_processing"]});
    let v1 = json!({"unit_type": "HTTP", "unit_name": "processor-2", "capacity": 5,
                    "endpoint": "http://127.0.0.1:9/", "config": {}, "task_types": ["data_processing"]});
    let (alias_status, alias) = app.post("/api/execution-units", seed).await;
    let (v1_status, _) = app.post("/api/v1/units", v1).await;
    assert_eq!((alias_status, v1_status), (201, 201), "{alias}");
    assert_eq!(alias["unitName"], "processor-1", "{alias}");
    assert_eq!(alias["unitType"], "HTTP", "{alias}");
    assert_eq!(alias["kind"], "http", "{alias}");
    let unit = alias["id"].as_str().expect("a unit id");
    let (status, beat) = app
        .post(&format!("/api/execution-units/{unit}/heartbeat"), json!({}))
        .await;
    assert_eq!(status, 200, "{beat}");
    assert_eq!(
        (&beat["unit"]["unitName"], &beat["unit"]["config"]),
        (&json!("processor-1"), &json!({})),
        "nested objects answer in camelCase too: {beat}"
    );
    assert!(beat["unit"].get("unit_name").is_none(), "{beat}");
    // Seed 004 §6.2.1's own example names no task types: registered, with none yet.
    let (status, bare) = app
        .post(
            "/api/execution-units",
            json!({"unitType": "DOCKER_CONTAINER", "unitName": "data-processor-1", "capacity": 5,
                   "endpoint": "http://127.0.0.1:9", "config": {}}),
        )
        .await;
    assert_eq!(status, 201, "{bare}");
    assert_eq!(
        (&bare["unitName"], &bare["taskTypes"]),
        (&json!("data-processor-1"), &json!([])),
        "{bare}"
    );
    let (status, e) = app
        .post("/api/execution-units/nowhere/heartbeat", json!({}))
        .await;
    assert_error(status, &e, 404, "not_found");
}

async fn aliases_need_the_token_and_forward_it(db: Db) {
    let Some(app) = spawn_app_with(db, |c| {
        c.admin_token = Some(steward::config::Secret::new("s3cret"))
    })
    .await
    else {
        return;
    };
    // Act / Assert: no token, no answer
    for path in [
        "/api/tasks",
        "/api/execution-units",
        "/api/tasks/health",
        "/api/v1/backtest/getTaskList",
    ] {
        let (status, e) = app.get(path).await;
        assert_error(status, &e, 401, "unauthorized");
    }
    // With the token, the alias answers
    let res = app
        .client
        .get(app.url("/api/execution-units"))
        .insert_header(("authorization", "Bearer s3cret"))
        .send()
        .await
        .expect("GET");
    let (status, units) = body_json(res).await;
    assert_eq!(status, 200, "{units}");
    assert!(units.as_array().is_some_and(|u| !u.is_empty()), "{units}");
}
