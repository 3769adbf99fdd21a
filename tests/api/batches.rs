//! Batches over HTTP: creation in one validated transaction, modes, DAGs, failure policy,
//! control, limits, batch dependencies and priority changes.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    a_batch_runs_its_tasks_and_reports_counts_and_progress,
    sequential_batches_run_one_task_at_a_time_in_order,
    a_dag_runs_in_dependency_order_and_cycles_are_refused,
    an_invalid_batch_stores_nothing,
    cancel_remaining_stops_the_rest_after_a_failure,
    a_batch_with_a_held_reject_mutex_is_refused_whole,
    batch_pause_resume_and_cancel,
    batch_restart_reruns_failed_tasks,
    batch_max_parallel_is_never_exceeded,
    a_batch_waits_for_the_batches_it_depends_on,
    a_priority_change_lets_a_later_batch_overtake,
);

pub async fn create_batch(app: &TestApp, body: Value) -> Value {
    let (status, b) = app.post("/api/v1/batches", body).await;
    assert_eq!(status, 201, "batch create: {b}");
    b
}

pub async fn wait_batch(app: &TestApp, id: &str, status: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (code, b) = app.get(&format!("/api/v1/batches/{id}")).await;
        assert_eq!(code, 200, "{b}");
        if b["status"] == status {
            return b;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "batch never became {status}: {b}"
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub async fn batch_tasks(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, page) = app
        .get(&format!("/api/v1/batches/{id}/tasks?limit=1000"))
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

fn spans(tasks: &[Value]) -> Vec<(i64, i64)> {
    let mut s: Vec<(i64, i64)> = tasks
        .iter()
        .map(|t| (ms(t, "started_at"), ms(t, "finished_at")))
        .collect();
    s.sort();
    s
}

/// The most spans open at the same moment.
fn max_overlap(spans: &[(i64, i64)]) -> usize {
    spans
        .iter()
        .map(|(s, _)| spans.iter().filter(|(a, b)| a <= s && s < b).count())
        .max()
        .unwrap_or(0)
}

async fn a_batch_runs_its_tasks_and_reports_counts_and_progress(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let b = create_batch(&app, json!({"name": "nightly", "tags": ["n"], "tasks": [{"type": "noop", "name": "one"}, {"type": "sleep", "config": {"secs": 0.1}}, {"type": "noop", "name": "three"}]})).await;
    let id = b["id"].as_str().unwrap().to_string();
    let ids = b["task_ids"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 3);
    assert_eq!(b["task_count"], 3);
    // The answer shows the batch as created: every task pending, nothing done.
    assert_eq!(b["counts"]["pending"], 3, "{b}");
    assert_eq!(b["counts"]["success"], 0, "{b}");
    assert_eq!(b["progress"], 0.0, "{b}");
    let (status, polled) = app
        .get(&format!(
            "/api/v1/batches/{id}/wait?after_version={}&timeout_secs=20",
            b["version"]
        ))
        .await;
    assert_eq!(status, 200);
    assert!(
        polled["version"].as_i64() > b["version"].as_i64(),
        "the long poll answered on a change: {polled}"
    );
    let done = wait_batch(&app, &id, "success").await;
    assert_eq!(done["counts"]["success"], 3);
    assert_eq!(done["progress"], 100.0);
    assert!(done["started_at"].is_string() && done["finished_at"].is_string());
    let tasks = batch_tasks(&app, &id).await;
    let names: Vec<&str> = tasks.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["one", "sleep", "three"], "in the order given");
    assert_eq!(tasks[0]["id"], ids[0]);
    assert_eq!(
        (tasks[0]["batch_id"].as_str(), tasks[0]["source"].as_str()),
        (Some(id.as_str()), Some("batch"))
    );
    let (_, list) = app.get("/api/v1/batches?status=success&tag=n").await;
    assert_eq!(list["total"], 1);
    let (status, _) = app.delete(&format!("/api/v1/batches/{id}")).await;
    assert_eq!(status, 204);
    let (status, _) = app
        .get(&format!("/api/v1/tasks/{}", ids[0].as_str().unwrap()))
        .await;
    assert_eq!(status, 404, "deleting a batch deletes its tasks");
}

async fn sequential_batches_run_one_task_at_a_time_in_order(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let tasks: Vec<Value> = (0..4).map(|i| json!({"type": "sleep", "name": format!("s{i}"), "priority": 9 - i, "config": {"secs": 0.05}})).collect();
    let b = create_batch(&app, json!({"mode": "sequential", "tasks": tasks})).await;
    let id = b["id"].as_str().unwrap();
    wait_batch(&app, id, "success").await;
    let tasks = batch_tasks(&app, id).await;
    let mut by_start: Vec<(i64, i64, String)> = tasks
        .iter()
        .map(|t| {
            (
                ms(t, "started_at"),
                ms(t, "finished_at"),
                t["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    by_start.sort();
    let order: Vec<&str> = by_start.iter().map(|(_, _, n)| n.as_str()).collect();
    assert_eq!(order, ["s0", "s1", "s2", "s3"]);
    for w in by_start.windows(2) {
        assert!(
            w[0].1 <= w[1].0,
            "overlap in a sequential batch: {by_start:?}"
        );
    }
}

async fn a_dag_runs_in_dependency_order_and_cycles_are_refused(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let b = create_batch(&app, json!({"tasks": [
        {"key": "report", "type": "noop", "name": "report", "depends_on": ["load", "clean"]},
        {"key": "load", "type": "sleep", "name": "load", "config": {"secs": 0.1}},
        {"key": "clean", "type": "sleep", "name": "clean", "config": {"secs": 0.05}, "depends_on": ["load"]},
    ]})).await;
    let id = b["id"].as_str().unwrap();
    wait_batch(&app, id, "success").await;
    let tasks = batch_tasks(&app, id).await;
    let get = |n: &str| tasks.iter().find(|t| t["name"] == n).unwrap().clone();
    let (load, clean, report) = (get("load"), get("clean"), get("report"));
    assert!(ms(&clean, "started_at") >= ms(&load, "finished_at"));
    assert!(ms(&report, "started_at") >= ms(&clean, "finished_at"));
    assert_eq!(report["depends_on"].as_array().unwrap().len(), 2);

    let (status, e) = app
        .post(
            "/api/v1/batches",
            json!({"tasks": [
                {"key": "a", "type": "noop", "depends_on": ["b"]},
                {"key": "b", "type": "noop", "depends_on": ["a"]},
            ]}),
        )
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("tasks")),
        "{e}"
    );
    assert!(e["error"]["message"].as_str().unwrap().contains("cycle"));
    let (status, e) = app
        .post(
            "/api/v1/batches",
            json!({"tasks": [{"key": "a", "type": "noop", "depends_on": ["ghost"]}]}),
        )
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("tasks[0].depends_on")),
        "{e}"
    );
}

async fn an_invalid_batch_stores_nothing(db: Db) {
    let Some(app) = spawn_app_with(db, |c| c.max_batch_tasks = 5).await else {
        return;
    };
    let (status, e) = app
        .post(
            "/api/v1/batches",
            json!({"tasks": [{"type": "noop"}, {"type": "noop"}, {"type": "teleport"}]}),
        )
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("tasks[2].type")),
        "{e}"
    );
    let (status, e) = app
        .post(
            "/api/v1/batches",
            json!({"tasks": [{"type": "noop"}, {"type": "sleep", "config": {"secs": -1}}]}),
        )
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("tasks[1].config.secs")),
        "{e}"
    );
    let too_many: Vec<Value> = (0..6).map(|_| json!({"type": "noop"})).collect();
    let (status, e) = app
        .post("/api/v1/batches", json!({"tasks": too_many}))
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("tasks")),
        "{e}"
    );
    for (body, field) in [
        (json!({"tasks": []}), "tasks"),
        (json!({}), "tasks"),
        (
            json!({"mode": "zigzag", "tasks": [{"type": "noop"}]}),
            "mode",
        ),
        (
            json!({"on_failure": "panic", "tasks": [{"type": "noop"}]}),
            "on_failure",
        ),
        (
            json!({"max_parallel": 0, "tasks": [{"type": "noop"}]}),
            "max_parallel",
        ),
        (
            json!({"depends_on": ["01a20000-0000-7000-8000-000000000000"], "tasks": [{"type": "noop"}]}),
            "depends_on[0]",
        ),
    ] {
        let (status, e) = app.post("/api/v1/batches", body.clone()).await;
        assert_eq!(
            (status, e["error"]["field"].as_str()),
            (400, Some(field)),
            "{body}: {e}"
        );
    }
    let (_, tasks) = app.get("/api/v1/tasks").await;
    assert_eq!(tasks["total"], 0, "nothing was stored");
    let (_, batches) = app.get("/api/v1/batches").await;
    assert_eq!(batches["total"], 0);
}

async fn cancel_remaining_stops_the_rest_after_a_failure(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let fail =
        json!({"type": "command", "max_retries": 0, "name": "bad", "config": {"program": "false"}});
    let b = create_batch(&app, json!({"mode": "sequential", "on_failure": "cancel_remaining", "tasks": [fail, {"type": "sleep", "config": {"secs": 0.1}}, {"type": "noop"}]})).await;
    let done = wait_batch(&app, b["id"].as_str().unwrap(), "failed").await;
    assert_eq!(
        (
            done["counts"]["failed"].as_i64(),
            done["counts"]["cancelled"].as_i64(),
            done["counts"]["success"].as_i64()
        ),
        (Some(1), Some(2), Some(0)),
        "{done}"
    );
    // Tasks that would end at once if started: none starts after the failure.
    let b = create_batch(&app, json!({"mode": "sequential", "on_failure": "cancel_remaining", "tasks": [fail, {"type": "noop"}, {"type": "noop"}]})).await;
    let done = wait_batch(&app, b["id"].as_str().unwrap(), "failed").await;
    assert_eq!(
        (
            done["counts"]["cancelled"].as_i64(),
            done["counts"]["success"].as_i64()
        ),
        (Some(2), Some(0)),
        "{done}"
    );
    for id in b["task_ids"].as_array().unwrap().iter().skip(1) {
        let history = app.history(id.as_str().unwrap()).await;
        assert!(
            history.iter().all(|h| h["to"] != "running"),
            "started after the failure: {history:?}"
        );
    }

    let b = create_batch(&app, json!({"mode": "sequential", "on_failure": "continue", "tasks": [fail, {"type": "noop"}, {"type": "noop"}]})).await;
    let done = wait_batch(&app, b["id"].as_str().unwrap(), "failed").await;
    assert_eq!(
        (
            done["counts"]["failed"].as_i64(),
            done["counts"]["success"].as_i64()
        ),
        (Some(1), Some(2)),
        "{done}"
    );
}

/// `mutex_policy: reject` holds for a batch's tasks as for a lone one: a key held by a live
/// task, or by another task of the same batch, refuses the whole batch.
async fn a_batch_with_a_held_reject_mutex_is_refused_whole(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let holder = app
        .create(json!({"type": "sleep", "config": {"secs": 30}, "mutex": "m1", "mutex_policy": "reject"}))
        .await;
    for tasks in [
        json!([{"type": "noop"}, {"type": "noop", "mutex": "m1", "mutex_policy": "reject"}]),
        json!([{"type": "noop", "mutex": "m2", "mutex_policy": "reject"}, {"type": "noop", "mutex": "m2"}]),
    ] {
        let (status, e) = app
            .post("/api/v1/batches", json!({"name": "mb", "tasks": tasks}))
            .await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (409, Some("mutex_held")),
            "{e}"
        );
    }
    let (_, batches) = app.get("/api/v1/batches").await;
    let (_, tasks) = app.get("/api/v1/tasks").await;
    assert_eq!(
        (batches["total"].as_i64(), tasks["total"].as_i64()),
        (Some(0), Some(1))
    );
    let ok = create_batch(
        &app,
        json!({"tasks": [{"type": "noop", "mutex": "m3", "mutex_policy": "reject"}]}),
    )
    .await;
    wait_batch(&app, ok["id"].as_str().unwrap(), "success").await;
    app.post_empty(&format!("/api/v1/tasks/{}/cancel", id_of(&holder)))
        .await;
}

async fn batch_pause_resume_and_cancel(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let tasks: Vec<Value> = (0..4)
        .map(|_| json!({"type": "sleep", "config": {"secs": 0.4}}))
        .collect();
    let b = create_batch(&app, json!({"max_parallel": 2, "tasks": tasks})).await;
    let id = b["id"].as_str().unwrap().to_string();
    let first = b["task_ids"][0].as_str().unwrap().to_string();
    app.wait_status(&first, "running", 10.0).await;
    let (status, p) = app.post_empty(&format!("/api/v1/batches/{id}/pause")).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        (p["status"].as_str(), &p["paused"]),
        (Some("paused"), &json!(true)),
        "{p}"
    );
    let (again, e) = app.post_empty(&format!("/api/v1/batches/{id}/pause")).await;
    assert_eq!(
        (again, e["error"]["code"].as_str()),
        (409, Some("invalid_transition")),
        "{e}"
    );
    let paused = wait_batch(&app, &id, "paused").await;
    assert_eq!(paused["counts"]["running"], 0, "{paused}");
    let queued = batch_tasks(&app, &id)
        .await
        .into_iter()
        .find(|t| t["status"] == "pending")
        .unwrap();
    assert_eq!(queued["waiting_on"], "queue_paused", "{queued}");
    let (status, r) = app
        .post_empty(&format!("/api/v1/batches/{id}/resume"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        r["status"], "running",
        "the answer says what the resume made it: {r}"
    );
    let (again, e) = app
        .post_empty(&format!("/api/v1/batches/{id}/resume"))
        .await;
    assert_eq!(
        (again, e["error"]["code"].as_str()),
        (409, Some("invalid_transition")),
        "a running batch is not paused: {e}"
    );
    wait_batch(&app, &id, "success").await;

    let tasks: Vec<Value> = (0..3)
        .map(|_| json!({"type": "sleep", "config": {"secs": 30}}))
        .collect();
    let b = create_batch(&app, json!({"tasks": tasks})).await;
    let id = b["id"].as_str().unwrap().to_string();
    app.wait_status(b["task_ids"][0].as_str().unwrap(), "running", 10.0)
        .await;
    let (status, c) = app
        .post_empty(&format!("/api/v1/batches/{id}/cancel"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (c["status"].as_str(), c["counts"]["cancelled"].as_i64()),
        (Some("cancelled"), Some(3)),
        "{c}"
    );
    let done = wait_batch(&app, &id, "cancelled").await;
    assert_eq!(done["counts"]["cancelled"], 3);
    let (status, e) = app.post_empty(&format!("/api/v1/batches/{id}/pause")).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("invalid_transition"))
    );
}

async fn batch_restart_reruns_failed_tasks(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let flaky = json!({"type": "command", "max_retries": 0, "config": {"program": "sh", "args": ["-c", "test -f marker && exit 0; touch marker; exit 1"]}});
    let b = create_batch(&app, json!({"tasks": [flaky, {"type": "noop"}]})).await;
    let id = b["id"].as_str().unwrap().to_string();
    let failed = wait_batch(&app, &id, "failed").await;
    assert!(failed["finished_at"].is_string(), "{failed}");
    let (status, r) = app
        .post_empty(&format!("/api/v1/batches/{id}/restart"))
        .await;
    assert_eq!(status, 200, "{r}");
    assert!(
        r["status"] != "failed" && r["finished_at"].is_null(),
        "a restarted batch is live again: {r}"
    );
    let done = wait_batch(&app, &id, "success").await;
    assert_eq!(done["counts"]["success"], 2);
    assert!(done["finished_at"].is_string(), "{done}");
    let (status, e) = app
        .post_empty(&format!("/api/v1/batches/{id}/restart"))
        .await;
    assert_eq!(status, 409, "nothing to restart: {e}");
}

async fn batch_max_parallel_is_never_exceeded(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let tasks: Vec<Value> = (0..6)
        .map(|_| json!({"type": "sleep", "config": {"secs": 0.08}}))
        .collect();
    let b = create_batch(&app, json!({"max_parallel": 2, "tasks": tasks})).await;
    let id = b["id"].as_str().unwrap();
    wait_batch(&app, id, "success").await;
    let s = spans(&batch_tasks(&app, id).await);
    assert!(max_overlap(&s) <= 2, "more than 2 at once: {s:?}");
}

async fn a_batch_waits_for_the_batches_it_depends_on(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let a = create_batch(
        &app,
        json!({"tasks": [{"type": "sleep", "config": {"secs": 0.2}}]}),
    )
    .await;
    let b = create_batch(
        &app,
        json!({"depends_on": [a["id"]], "tasks": [{"type": "noop"}]}),
    )
    .await;
    let waiting = app.task(b["task_ids"][0].as_str().unwrap()).await;
    if waiting["status"] == "pending" {
        assert_eq!(waiting["waiting_on"], "dependencies", "{waiting}");
    }
    let a_done = wait_batch(&app, a["id"].as_str().unwrap(), "success").await;
    let b_done = wait_batch(&app, b["id"].as_str().unwrap(), "success").await;
    assert!(ms(&b_done, "started_at") >= ms(&a_done, "finished_at"));

    let bad = create_batch(
        &app,
        json!({"tasks": [{"type": "command", "max_retries": 0, "config": {"program": "false"}}]}),
    )
    .await;
    let after = create_batch(
        &app,
        json!({"depends_on": [bad["id"]], "tasks": [{"type": "noop"}]}),
    )
    .await;
    wait_batch(&app, bad["id"].as_str().unwrap(), "failed").await;
    wait_batch(&app, after["id"].as_str().unwrap(), "cancelled").await;
}

async fn a_priority_change_lets_a_later_batch_overtake(db: Db) {
    let Some(app) = spawn_app_with(db, |c| c.max_parallel_tasks = 1).await else {
        return;
    };
    let blocker = app
        .create(json!({"type": "sleep", "config": {"secs": 30}}))
        .await;
    app.wait_status(&id_of(&blocker), "running", 10.0).await;
    let tasks: Vec<Value> = (0..3).map(|_| json!({"type": "noop"})).collect();
    let early = create_batch(&app, json!({"name": "early", "tasks": tasks.clone()})).await;
    let late = create_batch(&app, json!({"name": "late", "tasks": tasks})).await;
    let (status, p) = app
        .patch(
            &format!("/api/v1/batches/{}", late["id"].as_str().unwrap()),
            json!({"priority": "urgent"}),
        )
        .await;
    assert_eq!((status, p["priority"].as_i64()), (200, Some(3)), "{p}");
    app.post_empty(&format!("/api/v1/tasks/{}/cancel", id_of(&blocker)))
        .await;
    wait_batch(&app, early["id"].as_str().unwrap(), "success").await;
    wait_batch(&app, late["id"].as_str().unwrap(), "success").await;
    let last_late = spans(&batch_tasks(&app, late["id"].as_str().unwrap()).await)
        .last()
        .unwrap()
        .1;
    let first_early = spans(&batch_tasks(&app, early["id"].as_str().unwrap()).await)[0].0;
    assert!(
        last_late <= first_early,
        "the re-prioritized batch ran first"
    );
}
