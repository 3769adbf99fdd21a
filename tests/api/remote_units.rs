//! Remote execution units driven the way a worker would: a WebSocket worker written here
//! (register, execute, progress, pause/resume, result), units going OFFLINE when silent with
//! their work moving elsewhere from its checkpoint and stale results refused, deregistration,
//! drain, and an HTTP-style unit (seed 004 §8) served by an actix-web app in the test.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::ws_client::Ws;

both_backends!(
    a_worker_runs_a_remote_only_type_with_progress_pause_and_result,
    a_silent_worker_goes_offline_and_its_work_moves_on_from_the_checkpoint,
    deregistering_a_unit_moves_its_running_task_to_another,
    a_draining_unit_takes_no_new_work,
    an_http_unit_receives_execute_and_calls_back,
    bad_unit_registrations_are_refused,
);

/// A worker speaking the protocol by hand.
struct FakeWorker {
    ws: Ws,
    unit_id: String,
    registered: Value,
}

impl FakeWorker {
    async fn register(app: &TestApp, name: &str, types: &[&str], jobs: Value) -> FakeWorker {
        let mut ws = Ws::connect_path(app, "/api/v1/units/connect").await;
        ws.send(
            json!({"op": "register", "name": name, "task_types": types, "capacity": 2,
                       "labels": {"zone": "test"}, "jobs": jobs}),
        )
        .await;
        let registered = ws.next(10.0).await;
        assert_eq!(registered["op"], "registered", "{registered}");
        let unit_id = registered["unitId"].as_str().expect("unitId").to_string();
        FakeWorker {
            ws,
            unit_id,
            registered,
        }
    }

    /// The next frame with this `op` (others are skipped).
    async fn expect(&mut self, op: &str) -> Value {
        let frames = self.ws.until(15.0, |v| v["op"] == op).await;
        frames.last().cloned().expect("a frame")
    }

    async fn beat(&mut self) {
        self.ws.send(json!({"op": "heartbeat", "load": 1})).await;
    }
}

fn exec_of(frame: &Value) -> (String, String) {
    (
        frame["taskId"].as_str().expect("taskId").to_string(),
        frame["executionId"]
            .as_str()
            .expect("executionId")
            .to_string(),
    )
}

async fn unit(app: &TestApp, id: &str) -> Value {
    let (status, u) = app.get(&format!("/api/v1/units/{id}")).await;
    assert_eq!(status, 200, "{u}");
    u
}

/// Polls the unit until `pred` holds.
async fn wait_unit(app: &TestApp, id: &str, secs: f64, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        let u = unit(app, id).await;
        if pred(&u) {
            return u;
        }
        assert!(Instant::now() < deadline, "unit never got there: {u}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_worker_runs_a_remote_only_type_with_progress_pause_and_result(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange: a type no built-in unit runs is refused until a worker serves it.
    let (status, _) = app.post("/api/v1/tasks", json!({"type": "render"})).await;
    assert_eq!(status, 400);
    let mut w = FakeWorker::register(&app, "w1", &["render"], json!([])).await;
    assert!(w.registered["heartbeatSecs"].as_f64().unwrap() > 0.0);

    // Act: submit; the worker gets `execute` with seed 004's fields.
    let t = app
        .create(json!({"type": "render", "config": {"scene": 1}}))
        .await;
    let id = id_of(&t);
    let exec = w.expect("execute").await;
    assert_eq!(exec["taskId"], id.as_str());
    assert_eq!(exec["taskType"], "render");
    assert_eq!(exec["config"], json!({"scene": 1}));
    assert_eq!(exec["attempt"], 1);
    assert!(exec["checkpoint"].is_null());
    let (_, e) = exec_of(&exec);
    let running = app.wait_status(&id, "running", 10.0).await;
    assert_eq!(running["unit_id"], w.unit_id.as_str());

    w.ws.send(
        json!({"op": "progress", "taskId": id, "executionId": e, "progress": 40.0,
                     "stage": "frames", "checkpoint": {"frame": 40}}),
    )
    .await;
    w.ws.send(
        json!({"op": "log", "taskId": id, "executionId": e, "level": "INFO",
                     "message": "rendering frame 40"}),
    )
    .await;
    app.wait_until(&id, 10.0, |t| t["progress"] == 40.0).await;
    let (status, _) = app.post_empty(&format!("/api/v1/tasks/{id}/pause")).await;
    assert_eq!(status, 200);
    let pause = w.expect("pause").await;
    assert_eq!(exec_of(&pause), (id.clone(), e.clone()));
    let (status, _) = app.post_empty(&format!("/api/v1/tasks/{id}/resume")).await;
    assert_eq!(status, 200);
    w.expect("resume").await;
    let u = unit(&app, &w.unit_id).await;
    w.ws.send(
        json!({"op": "status", "taskId": id, "executionId": e, "status": "SUCCESS",
                     "result": {"frames": 100}}),
    )
    .await;

    // Assert
    let done = app.wait_status(&id, "success", 10.0).await;
    assert_eq!(done["result"], json!({"frames": 100}));
    assert_eq!(done["checkpoint"], json!({"frame": 40}));
    assert!(app
        .logs(&id)
        .await
        .iter()
        .any(|l| l["message"] == "rendering frame 40"));
    assert_eq!(u["kind"], "websocket");
    assert_eq!(u["unit_name"], "w1");
    assert_eq!(u["status"], "AVAILABLE");
    assert_eq!(u["current_load"], 1, "{u}");
    assert_eq!(u["labels"], json!({"zone": "test"}));
    assert_eq!(u["connected"], true);
    let (_, types) = app.get("/api/v1/task-types").await;
    let render = types
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "render")
        .cloned()
        .expect("render is listed");
    assert_eq!(render["units"], json!([w.unit_id]));
    assert_eq!(render["available"], true);
}

async fn a_silent_worker_goes_offline_and_its_work_moves_on_from_the_checkpoint(db: Db) {
    let Some(app) = spawn_app_with(db, |c| c.unit_heartbeat_timeout_secs = 1.0).await else {
        return;
    };
    // Arrange: the task runs on w1, which reports a checkpoint and then falls silent.
    let mut w1 = FakeWorker::register(&app, "w1", &["render"], json!([])).await;
    let t = app.create(json!({"type": "render"})).await;
    let id = id_of(&t);
    let first = w1.expect("execute").await;
    let (_, e1) = exec_of(&first);
    w1.ws
        .send(
            json!({"op": "progress", "taskId": id, "executionId": e1, "progress": 7.0,
                      "checkpoint": {"frame": 7}}),
        )
        .await;
    app.wait_until(&id, 10.0, |t| t["progress"] == 7.0).await;

    // Act: w1 misses its heartbeats; then w2 joins.
    let offline = wait_unit(&app, &w1.unit_id, 10.0, |u| u["status"] == "OFFLINE").await;
    let waiting = app.wait_until(&id, 10.0, |t| t["unit_id"].is_null()).await;
    let mut w2 = FakeWorker::register(&app, "w2", &["render"], json!([])).await;
    let second = w2.expect("execute").await;
    let (_, e2) = exec_of(&second);

    // w1 comes back still holding its old run, which it is told to drop, and its late
    // result is refused (over the socket and over HTTP).
    let old = json!([{"taskId": id, "attempt": 1, "executionId": e1}]);
    let mut w1b = FakeWorker::register(&app, "w1", &["render"], old.clone()).await;
    w1b.ws
        .send(
            json!({"op": "status", "taskId": id, "executionId": e1, "status": "success",
                       "result": {"by": "w1"}}),
        )
        .await;
    let dropped = w1b.expect("drop").await;
    let (status, refused) = app
        .post(
            &format!("/api/v1/tasks/{id}/status"),
            json!({"status": "SUCCESS", "result": {"by": "w1"}, "executionId": e1}),
        )
        .await;
    w2.beat().await;
    w2.ws
        .send(
            json!({"op": "status", "taskId": id, "executionId": e2, "status": "success",
                      "result": {"by": "w2"}}),
        )
        .await;

    // Assert
    assert_eq!(waiting["status"], "running", "{waiting}");
    assert_eq!(offline["current_load"], 0);
    assert_eq!(second["taskId"], id.as_str());
    assert_eq!(second["attempt"], 1, "the move is not a retry");
    assert_eq!(second["checkpoint"], json!({"frame": 7}));
    assert_ne!(e1, e2);
    assert_eq!(w1b.registered["drop"], old);
    assert_eq!(w1b.unit_id, w1.unit_id, "a worker keeps its id by name");
    assert_eq!(exec_of(&dropped), (id.clone(), e1.clone()));
    assert_eq!(status, 409, "{refused}");
    let done = app.wait_status(&id, "success", 10.0).await;
    assert_eq!(done["result"], json!({"by": "w2"}));
    assert_eq!(done["unit_id"], w2.unit_id.as_str());
    let logs = app.logs(&id).await;
    assert!(
        logs.iter()
            .any(|l| l["message"].as_str().unwrap_or("").contains("went offline")),
        "{logs:?}"
    );
    let (_, alerts) = app.get("/api/v1/alerts?type=unit_offline").await;
    let items = alerts["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{alerts}");
    assert_eq!(items[0]["details"]["unit_id"], w1.unit_id.as_str());
    assert_eq!(items[0]["level"], "error");
}

async fn deregistering_a_unit_moves_its_running_task_to_another(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange
    let mut w1 = FakeWorker::register(&app, "w1", &["render"], json!([])).await;
    let t = app.create(json!({"type": "render"})).await;
    let id = id_of(&t);
    let (_, e1) = exec_of(&w1.expect("execute").await);
    w1.ws
        .send(
            json!({"op": "progress", "taskId": id, "executionId": e1, "progress": 30.0,
                      "checkpoint": {"frame": 30}}),
        )
        .await;
    app.wait_until(&id, 10.0, |t| t["progress"] == 30.0).await;
    let mut w2 = FakeWorker::register(&app, "w2", &["render"], json!([])).await;

    // Act
    let (status, _) = app.delete(&format!("/api/v1/units/{}", w1.unit_id)).await;

    // Assert
    assert_eq!(status, 204);
    let bye = w1.expect("deregistered").await;
    assert!(bye["message"].is_string());
    let moved = w2.expect("execute").await;
    assert_eq!(moved["taskId"], id.as_str());
    assert_eq!(moved["checkpoint"], json!({"frame": 30}));
    let (_, e2) = exec_of(&moved);
    w2.ws
        .send(json!({"op": "status", "taskId": id, "executionId": e2, "status": "success"}))
        .await;
    app.wait_status(&id, "success", 10.0).await;
    let (missing, _) = app.get(&format!("/api/v1/units/{}", w1.unit_id)).await;
    assert_eq!(missing, 404);
}

async fn a_draining_unit_takes_no_new_work(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange: one task running on the unit.
    let mut w = FakeWorker::register(&app, "w1", &["render"], json!([])).await;
    let first = id_of(&app.create(json!({"type": "render"})).await);
    let (_, e) = exec_of(&w.expect("execute").await);

    // Act
    let (status, drained) = app
        .post_empty(&format!("/api/v1/units/{}/drain", w.unit_id))
        .await;
    w.expect("drain").await;
    let second = id_of(&app.create(json!({"type": "render"})).await);
    w.ws.send(json!({"op": "status", "taskId": first, "executionId": e, "status": "success"}))
        .await;

    // Assert: the running task finishes; the new one waits for a unit.
    assert_eq!(status, 200, "{drained}");
    assert_eq!(drained["draining"], true);
    app.wait_status(&first, "success", 10.0).await;
    let waiting = app.task(&second).await;
    assert_eq!(waiting["status"], "pending");
    assert!(w
        .ws
        .try_next(0.5)
        .await
        .is_none_or(|f| f["op"] != "execute"));
    let (local, _) = app.post_empty("/api/v1/units/local/drain").await;
    assert_eq!(local, 409);
}

/// What the test's HTTP unit received.
#[derive(Default)]
struct Received {
    calls: Vec<(String, Value)>,
}

/// An HTTP-style unit (seed 004 §8.1) that records every call.
async fn http_unit() -> (String, Arc<Mutex<Received>>) {
    let seen: Arc<Mutex<Received>> = Default::default();
    let data = web::Data::new(seen.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route(
                "/execute",
                web::post().to(|s: web::Data<Arc<Mutex<Received>>>, b: web::Json<Value>| async move {
                    s.lock().unwrap().calls.push(("execute".into(), b.into_inner()));
                    HttpResponse::Accepted().json(json!({"accepted": true}))
                }),
            )
            .route(
                "/{op}/{id}",
                web::post().to(|s: web::Data<Arc<Mutex<Received>>>, p: web::Path<(String, String)>| async move {
                    let (op, id) = p.into_inner();
                    s.lock().unwrap().calls.push((op, json!(id)));
                    HttpResponse::Ok().finish()
                }),
            )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_rt::spawn(server);
    (format!("http://127.0.0.1:{port}"), seen)
}

async fn wait_call(seen: &Arc<Mutex<Received>>, op: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some((_, v)) = seen.lock().unwrap().calls.iter().find(|(o, _)| o == op) {
            return v.clone();
        }
        assert!(Instant::now() < deadline, "the unit never got /{op}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn an_http_unit_receives_execute_and_calls_back(db: Db) {
    let Some(app) = spawn_app_with(db, |c| c.unit_heartbeat_timeout_secs = 1.0).await else {
        return;
    };
    let (endpoint, seen) = http_unit().await;
    // Arrange: seed 004 §6.2 registration.
    let (status, u) = app
        .post(
            "/api/v1/units",
            json!({"unit_type": "DOCKER_CONTAINER", "unit_name": "proc-1",
            "capacity": 2, "endpoint": endpoint, "config": {"gpu": false},
            "task_types": ["transcode"]}),
        )
        .await;
    assert_eq!(status, 201, "{u}");
    let unit_id = u["id"].as_str().unwrap().to_string();
    assert_eq!(u["kind"], "http");
    assert_eq!(u["unit_type"], "DOCKER_CONTAINER");

    // Act: a task of its type goes to its /execute; the unit reports progress and the result
    // at the URLs it was given.
    let id = id_of(
        &app.create(json!({"type": "transcode", "config": {"file": "a.mp4"}}))
            .await,
    );
    let exec = wait_call(&seen, "execute").await;
    let (status, beat) = app
        .post_empty(&format!("/api/v1/units/{unit_id}/heartbeat"))
        .await;
    assert_eq!(status, 200, "{beat}");
    let progress_url = exec["progressUrl"].as_str().unwrap().to_string();
    let res = app
        .client
        .post(&progress_url)
        .send_json(&json!({"progress": 50, "executionId": exec["executionId"]}))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    app.post_empty(&format!("/api/v1/tasks/{id}/pause")).await;
    let paused = wait_call(&seen, "pause").await;
    app.post_empty(&format!("/api/v1/tasks/{id}/resume")).await;
    wait_call(&seen, "resume").await;
    let callback = exec["callbackUrl"].as_str().unwrap().to_string();
    let res = app
        .client
        .post(&callback)
        .send_json(&json!({"status": "SUCCESS", "result": {"out": "a.webm"}, "errorMessage": null}))
        .await
        .unwrap();

    // Assert
    assert_eq!(exec["taskId"], id.as_str());
    assert_eq!(exec["taskType"], "transcode");
    assert_eq!(exec["config"], json!({"file": "a.mp4"}));
    assert_eq!(exec["attempt"], 1);
    assert!(exec["executionId"].is_string());
    assert_eq!(paused, json!(id));
    assert_eq!(res.status().as_u16(), 200);
    let done = app.wait_status(&id, "success", 10.0).await;
    assert_eq!(done["result"], json!({"out": "a.webm"}));
    assert_eq!(done["unit_id"], unit_id.as_str());
    assert_eq!(beat["unit"]["id"], unit_id.as_str());
    // No more heartbeats: the unit goes OFFLINE and a heartbeat brings it back.
    wait_unit(&app, &unit_id, 10.0, |u| u["status"] == "OFFLINE").await;
    let (_, offline_metrics) = app.get_text("/metrics").await;
    app.post_empty(&format!("/api/v1/units/{unit_id}/heartbeat"))
        .await;
    let back = unit(&app, &unit_id).await;
    assert_eq!(back["status"], "AVAILABLE", "{back}");
    let (_, back_metrics) = app.get_text("/metrics").await;
    // The local unit and this one: the offline one is counted as such, then as available.
    let units = |text: &str, status: &str| {
        let key = format!("steward_units{{status=\"{status}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .map(|v| v.trim().to_string())
    };
    assert_eq!(
        (
            units(&offline_metrics, "OFFLINE").as_deref(),
            units(&offline_metrics, "AVAILABLE").as_deref()
        ),
        (Some("1"), Some("1")),
        "{offline_metrics}"
    );
    assert_eq!(
        (
            units(&back_metrics, "OFFLINE").as_deref(),
            units(&back_metrics, "AVAILABLE").as_deref()
        ),
        (Some("0"), Some("2"))
    );
}

async fn bad_unit_registrations_are_refused(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let ok = json!({"unit_name": "u", "endpoint": "http://127.0.0.1:9", "task_types": ["x"]});
    let cases = [
        (json!({"unit_name": "u", "task_types": ["x"]}), "endpoint"),
        (
            json!({"unit_name": "u", "endpoint": "http://127.0.0.1:9", "task_types": "x"}),
            "task_types",
        ),
        (
            json!({"endpoint": "http://127.0.0.1:9", "task_types": ["x"]}),
            "unit_name",
        ),
        (
            json!({"unit_name": "u", "endpoint": "http://169.254.169.254", "task_types": ["x"]}),
            "endpoint",
        ),
        (
            json!({"unit_name": "u", "endpoint": "ftp://x", "task_types": ["x"]}),
            "endpoint",
        ),
        (
            json!({"unit_name": "u", "endpoint": "http://127.0.0.1:9", "task_types": ["x"], "capacity": 0}),
            "capacity",
        ),
        (
            json!({"unit_name": "u", "endpoint": "http://127.0.0.1:9", "task_types": [""]}),
            "task_types",
        ),
    ];
    for (body, field) in cases {
        let (status, err) = app.post("/api/v1/units", body.clone()).await;
        assert_eq!(status, 400, "{body} -> {err}");
        assert_eq!(err["error"]["field"], field, "{body} -> {err}");
    }
    let (status, _) = app.post("/api/v1/units", ok).await;
    assert_eq!(status, 201);
    let (status, _) = app.post_empty("/api/v1/units/nope/heartbeat").await;
    assert_eq!(status, 404);
    let (status, _) = app.delete("/api/v1/units/local").await;
    assert_eq!(status, 409);
    let (status, _) = app.delete("/api/v1/units/nope").await;
    assert_eq!(status, 404);
    // A worker whose first message is not a registration is told so.
    let mut ws = Ws::connect_path(&app, "/api/v1/units/connect").await;
    ws.send(json!({"op": "heartbeat"})).await;
    let err = ws.next(5.0).await;
    assert_eq!(err["op"], "error", "{err}");
}
