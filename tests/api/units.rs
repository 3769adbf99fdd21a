//! Execution units over HTTP: the task-type and unit registry views, and `data_processing`
//! on real CSV files (pause in the middle, rejects, path confinement).

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    task_types_list_schemas_availability_and_serving_units,
    units_show_the_local_unit_with_its_load,
    data_processing_paused_midway_writes_every_valid_row_once,
    data_processing_refuses_paths_outside_the_data_root_and_unknown_rules,
    data_processing_cancel_removes_partial_output,
    http_task_succeeds_on_expected_status_and_keeps_the_body,
    python_task_returns_the_function_result_and_reports_progress,
);

/// The size of the CSV the pause and kill -9 cases process (issue 6: a million rows).
const BIG_CSV_ROWS: u64 = 1_000_000;

/// Writes `rows` CSV rows; every 10th row has a bad email and every 25th a bad phone.
/// Returns the ids of the valid rows.
fn write_csv(path: &Path, rows: u64) -> HashSet<u64> {
    let f = std::fs::File::create(path).expect("create csv");
    let mut w = std::io::BufWriter::new(f);
    writeln!(w, "id,name,email,phone").unwrap();
    let mut valid = HashSet::new();
    for i in 0..rows {
        let email = if i % 10 == 3 {
            format!("user{i}-at-example.com")
        } else {
            format!("user{i}@example.com")
        };
        let phone = if i % 25 == 7 {
            "call me".to_string()
        } else {
            format!("+1 555 {:07}", i % 10_000_000)
        };
        if i % 10 != 3 && i % 25 != 7 {
            valid.insert(i);
        }
        writeln!(w, "{i},\"Name, {i}\",{email},{phone}").unwrap();
    }
    w.flush().unwrap();
    valid
}

async fn task_types_list_schemas_availability_and_serving_units(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Act
    let (status, body) = app.get("/api/v1/task-types").await;

    // Assert
    assert_eq!(status, 200, "{body}");
    let types = body.as_array().expect("an array");
    let dp = types
        .iter()
        .find(|t| t["type"] == "data_processing")
        .expect("data_processing listed");
    assert_eq!(dp["available"], true);
    assert_eq!(dp["units"], json!(["local"]));
    assert!(dp["config_schema"]["properties"]["inputPath"].is_object());
    for name in ["noop", "sleep", "command"] {
        assert!(types.iter().any(|t| t["type"] == name), "{name} missing");
    }
}

async fn units_show_the_local_unit_with_its_load(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange: one running task
    let t = app
        .create(json!({"type": "sleep", "config": {"secs": 5}}))
        .await;
    let id = id_of(&t);
    app.wait_status(&id, "running", 10.0).await;

    // Act
    let (status, list) = app.get("/api/v1/units").await;
    let (one_status, one) = app.get("/api/v1/units/local").await;
    let (missing, _) = app.get("/api/v1/units/nope").await;

    // Assert
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(one_status, 200, "{one}");
    assert_eq!(one["unit_type"], "local");
    assert_eq!(one["current_load"], 1, "{one}");
    assert!(one["capacity"].as_u64().unwrap() >= 1);
    assert!(one["task_types"]
        .as_array()
        .unwrap()
        .contains(&json!("data_processing")));
    assert!(["AVAILABLE", "BUSY"].contains(&one["status"].as_str().unwrap()));
    assert!(one["last_heartbeat"].is_string());
    assert_eq!(missing, 404);
    app.post_empty(&format!("/api/v1/tasks/{id}/cancel")).await;
}

async fn data_processing_paused_midway_writes_every_valid_row_once(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange
    let valid = write_csv(&app.dir.path().join("users.csv"), BIG_CSV_ROWS);
    let t = app
        .create(json!({"taskType": "DATA_PROCESSING", "config": {
            "inputPath": "users.csv",
            "outputPath": "out/users.json",
            "batchSize": 100,
            "validationRules": ["email", "phone"],
            "checkpointInterval": 1000
        }}))
        .await;
    let id = id_of(&t);
    app.wait_until(&id, 30.0, |t| {
        t["status"] == "running" && t["progress"].as_f64().unwrap_or(0.0) > 0.0
    })
    .await;

    // Act: pause in the middle, then resume
    let (status, paused) = app.post_empty(&format!("/api/v1/tasks/{id}/pause")).await;
    assert_eq!(status, 200, "{paused}");
    let held = app
        .wait_until(&id, 10.0, |t| t["checkpoint"]["row"].as_u64().is_some())
        .await;
    let row_at_pause = held["checkpoint"]["row"].as_u64().unwrap();
    assert!(row_at_pause < BIG_CSV_ROWS, "paused too late: {held}");
    let (status, resumed) = app.post_empty(&format!("/api/v1/tasks/{id}/resume")).await;
    assert_eq!(status, 200, "{resumed}");
    let done = app.wait_status(&id, "success", 60.0).await;

    // Assert: every valid row exactly once, rejects counted and written
    let out = std::fs::read(app.dir.path().join("out/users.json")).expect("output");
    let rows: Vec<Value> = serde_json::from_slice(&out).expect("a JSON array");
    let ids: Vec<u64> = rows
        .iter()
        .map(|r| r["id"].as_str().unwrap().parse().unwrap())
        .collect();
    let unique: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "duplicated rows");
    assert_eq!(unique, valid);
    assert_eq!(rows[0]["name"], "Name, 0");
    let invalid = BIG_CSV_ROWS - valid.len() as u64;
    assert_eq!(done["result"]["valid"], valid.len() as u64, "{done}");
    assert_eq!(done["result"]["invalid"], invalid, "{done}");
    let rejects = std::fs::read_to_string(app.dir.path().join("out/users.rejects.jsonl"))
        .expect("rejects file");
    assert_eq!(rejects.lines().count() as u64, invalid);
    let first: Value = serde_json::from_str(rejects.lines().next().unwrap()).unwrap();
    assert_eq!(first["errors"], json!(["email:email"]), "{first}");
}

async fn data_processing_refuses_paths_outside_the_data_root_and_unknown_rules(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Act
    let (outside, body) = app
        .post(
            "/api/v1/tasks",
            json!({"type": "data_processing", "config": {
                "inputPath": "../../etc/passwd", "outputPath": "out.json"}}),
        )
        .await;
    let (absolute, _) = app
        .post(
            "/api/v1/tasks",
            json!({"type": "data_processing", "config": {
                "inputPath": "in.csv", "outputPath": "/tmp/elsewhere.json"}}),
        )
        .await;
    let (rule, rule_body) = app
        .post(
            "/api/v1/tasks",
            json!({"type": "data_processing", "config": {
                "inputPath": "in.csv", "outputPath": "out.json",
                "validationRules": ["email", "zipcode"]}}),
        )
        .await;
    // A symlink to a file outside that does not exist yet: writing would create it there.
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        elsewhere.path().join("new.json"),
        app.dir.path().join("dang.json"),
    )
    .unwrap();
    let (dangling, dangling_body) = app
        .post(
            "/api/v1/tasks",
            json!({"type": "data_processing", "config": {
                "inputPath": "in.csv", "outputPath": "dang.json"}}),
        )
        .await;

    // Assert
    assert_eq!(
        (dangling, dangling_body["error"]["field"].as_str()),
        (400, Some("config.outputPath")),
        "{dangling_body}"
    );
    assert!(!elsewhere.path().join("new.json").exists());
    assert_eq!(outside, 400, "{body}");
    assert!(body.to_string().contains("inputPath"), "{body}");
    assert_eq!(absolute, 400);
    assert_eq!(rule, 400, "{rule_body}");
    assert!(rule_body.to_string().contains("zipcode"), "{rule_body}");
}

async fn data_processing_cancel_removes_partial_output(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange: a paused run with output on disk
    write_csv(&app.dir.path().join("big.csv"), 100_000);
    let t = app
        .create(json!({"type": "data_processing", "config": {
            "inputPath": "big.csv", "outputPath": "big.jsonl", "batchSize": 100}}))
        .await;
    let id = id_of(&t);
    app.wait_until(&id, 30.0, |t| {
        t["status"] == "running" && t["progress"].as_f64().unwrap_or(0.0) > 0.0
    })
    .await;
    app.post_empty(&format!("/api/v1/tasks/{id}/pause")).await;
    app.wait_until(&id, 10.0, |t| t["checkpoint"]["row"].as_u64().is_some())
        .await;
    assert!(app.dir.path().join("big.jsonl").exists());

    // Act
    let (status, body) = app.post_empty(&format!("/api/v1/tasks/{id}/cancel")).await;

    // Assert: by the time the cancel is answered, the output is gone
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("cancelled")),
        "{body}"
    );
    assert!(!app.dir.path().join("big.jsonl").exists());
    assert!(!app.dir.path().join("big.rejects.jsonl").exists());

    // The same for a run cancelled while it works (it notices between batches)
    write_csv(&app.dir.path().join("bigger.csv"), 400_000);
    let t = app
        .create(json!({"type": "data_processing", "config": {
            "inputPath": "bigger.csv", "outputPath": "busy.jsonl", "batchSize": 25000}}))
        .await;
    let id = id_of(&t);
    app.wait_until(&id, 30.0, |t| {
        t["status"] == "running" && t["progress"].as_f64().unwrap_or(0.0) > 0.0
    })
    .await;
    let (status, body) = app.post_empty(&format!("/api/v1/tasks/{id}/cancel")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("cancelled")),
        "{body}"
    );
    assert!(!app.dir.path().join("busy.jsonl").exists());
    assert!(!app.dir.path().join("busy.rejects.jsonl").exists());
}

/// A small HTTP server for `http` tasks to call; returns its base URL.
fn spawn_target() -> String {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(|| {
        App::new()
            .route(
                "/hello",
                web::get().to(|| async { HttpResponse::Ok().body("hello") }),
            )
            .route(
                "/echo",
                web::post().to(|req: HttpRequest, body: String| async move {
                    let tag = req
                        .headers()
                        .get("x-tag")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    HttpResponse::Created().body(format!("{tag}:{body}"))
                }),
            )
            .route(
                "/teapot",
                web::get().to(|| async { HttpResponse::ImATeapot().finish() }),
            )
            .route(
                "/broken",
                web::get().to(|| async { HttpResponse::InternalServerError().body("boom") }),
            )
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    actix_rt::spawn(server);
    format!("http://127.0.0.1:{port}")
}

async fn http_task_succeeds_on_expected_status_and_keeps_the_body(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange
    let base = spawn_target();
    let get = app
        .create(json!({"type": "http", "config": {"url": format!("{base}/hello")}}))
        .await;
    let post = app
        .create(json!({"type": "http", "config": {
            "method": "post", "url": format!("{base}/echo"),
            "headers": {"x-tag": "t1"}, "body": {"a": 1}}}))
        .await;
    let teapot = app
        .create(json!({"type": "http", "config": {
            "url": format!("{base}/teapot"), "expected_status": [418]}}))
        .await;
    let broken = app
        .create(
            json!({"type": "http", "max_retries": 0, "config": {"url": format!("{base}/broken")}}),
        )
        .await;

    // Act
    let get = app.wait_status(&id_of(&get), "success", 20.0).await;
    let post = app.wait_status(&id_of(&post), "success", 20.0).await;
    let teapot = app.wait_status(&id_of(&teapot), "success", 20.0).await;
    let broken = app.wait_status(&id_of(&broken), "failed", 20.0).await;

    // Assert
    assert_eq!(get["result"]["status"], 200, "{get}");
    assert_eq!(get["result"]["body"], "hello");
    assert_eq!(post["result"]["status"], 201, "{post}");
    assert_eq!(post["result"]["body"], "t1:{\"a\":1}");
    assert_eq!(teapot["result"]["status"], 418);
    assert!(
        broken["error"].as_str().unwrap().contains("500"),
        "{broken}"
    );
    let (bad, _) = app
        .post(
            "/api/v1/tasks",
            json!({"type": "http", "config": {"url": "ftp://x"}}),
        )
        .await;
    assert_eq!(bad, 400);
}

async fn python_task_returns_the_function_result_and_reports_progress(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange: a module in the data dir
    std::fs::write(
        app.dir.path().join("jobs.py"),
        "import steward\n\
         def add(params):\n\
         \x20   steward.progress(50, stage='half', message='adding')\n\
         \x20   print('plain output')\n\
         \x20   return {'sum': params['a'] + params['b'], 'task': steward.task_id}\n\
         def boom(params):\n\
         \x20   raise ValueError('no good')\n",
    )
    .unwrap();
    let ok = app
        .create(json!({"type": "python", "config": {
            "module": "jobs", "function": "add", "params": {"a": 2, "b": 3}}}))
        .await;
    let bad = app
        .create(json!({"type": "python", "max_retries": 0, "config": {
            "module": "jobs", "function": "boom"}}))
        .await;

    // Act
    let ok_id = id_of(&ok);
    let done = app.wait_status(&ok_id, "success", 20.0).await;
    let failed = app.wait_status(&id_of(&bad), "failed", 20.0).await;

    // Assert
    assert_eq!(done["result"]["sum"], 5, "{done}");
    assert_eq!(done["result"]["task"], ok_id.as_str());
    let logs = app.logs(&ok_id).await;
    assert!(
        logs.iter().any(|l| l["message"] == "plain output"),
        "{logs:?}"
    );
    assert!(
        failed["error"].as_str().unwrap().contains("jobs.boom"),
        "{failed}"
    );
    let bad_logs = app.logs(&id_of(&bad)).await;
    assert!(
        bad_logs
            .iter()
            .any(|l| l["message"].as_str().unwrap_or("").contains("ValueError")),
        "{bad_logs:?}"
    );
    let (status, _) = app
        .post(
            "/api/v1/tasks",
            json!({"type": "python", "config": {"module": "../etc", "function": "f"}}),
        )
        .await;
    assert_eq!(status, 400);
}

/// kill -9 of the server in the middle of a run: the restarted server resumes from the
/// stored checkpoint and the output still holds every valid row exactly once.
#[actix_web::test]
async fn data_processing_survives_kill_9_with_every_valid_row_once() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let valid = write_csv(&dir.path().join("users.csv"), BIG_CSV_ROWS);
    let store_url = dir.path().join("steward.db").display().to_string();
    let mut s = crate::recovery::start(dir.path(), None).await;
    let t = s
        .app
        .create(json!({"type": "data_processing", "config": {
            "inputPath": "users.csv", "outputPath": "users.jsonl",
            "batchSize": 200, "checkpointInterval": 2000,
            "validationRules": ["email", "phone"]}}))
        .await;
    let id = id_of(&t);
    crate::recovery::wait_stored(&store_url, &id, |t| {
        t.checkpoint
            .as_ref()
            .is_some_and(|c| c["row"].as_u64() > Some(0))
    })
    .await;

    // Act: kill -9 mid-run, start again on the same data
    s.child.kill().expect("SIGKILL");
    s.child.wait().expect("reap");
    let mut s = crate::recovery::start(dir.path(), None).await;
    let done = s.app.wait_status(&id, "success", 120.0).await;
    let logs = s.app.logs(&id).await;
    let _ = s.child.kill();
    let _ = s.child.wait();

    // Assert
    let out = std::fs::read_to_string(dir.path().join("users.jsonl")).expect("output");
    let mut seen = HashSet::new();
    for line in out.lines() {
        let row: Value = serde_json::from_str(line).expect("a JSON line");
        let id: u64 = row["id"].as_str().unwrap().parse().unwrap();
        assert!(seen.insert(id), "row {id} written twice");
    }
    assert_eq!(seen, valid);
    assert_eq!(done["result"]["valid"], valid.len() as u64, "{done}");
    assert_eq!(done["result"]["invalid"], BIG_CSV_ROWS - valid.len() as u64);
    assert_eq!(done["result"]["rows"], BIG_CSV_ROWS, "{done}");
    assert!(
        logs.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("resuming at row"))),
        "the run finished before the kill, so nothing was recovered: {logs:?}"
    );
}

/// A run paused across a server restart (kill -9) still cleans up when it is cancelled: no unit
/// holds it after the restart, so one starts it from its checkpoint only to cancel it there.
#[actix_web::test]
async fn a_run_paused_across_a_restart_removes_its_output_when_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let store_url = dir.path().join("steward.db").display().to_string();
    write_csv(&dir.path().join("big.csv"), 100_000);
    let mut s = crate::recovery::start(dir.path(), None).await;
    let t = s
        .app
        .create(json!({"type": "data_processing", "config": {
            "inputPath": "big.csv", "outputPath": "big.jsonl", "batchSize": 100}}))
        .await;
    let id = id_of(&t);
    s.app
        .wait_until(&id, 30.0, |t| {
            t["status"] == "running" && t["progress"].as_f64().unwrap_or(0.0) > 0.0
        })
        .await;
    s.app.post_empty(&format!("/api/v1/tasks/{id}/pause")).await;
    crate::recovery::wait_stored(&store_url, &id, |t| {
        t.status.as_str() == "paused" && t.checkpoint.is_some()
    })
    .await;
    assert!(dir.path().join("big.jsonl").exists());
    let _ = s.child.kill();
    let _ = s.child.wait();

    // Act
    let mut s = crate::recovery::start(dir.path(), None).await;
    let before = s.app.task(&id).await;
    let (status, body) = s
        .app
        .post_empty(&format!("/api/v1/tasks/{id}/cancel"))
        .await;
    let _ = s.child.kill();
    let _ = s.child.wait();

    // Assert
    assert_eq!(before["status"], "paused", "{before}");
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("cancelled")),
        "{body}"
    );
    assert!(!dir.path().join("big.jsonl").exists());
    assert!(!dir.path().join("big.rejects.jsonl").exists());
}
