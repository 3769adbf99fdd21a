//! What runs when: priority order, mutual exclusion, dependencies, run_at, and truthful
//! `waiting_on` / `waiting_detail`.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    higher_priority_task_runs_first,
    tasks_sharing_a_mutex_never_overlap,
    mutex_policy_reject_refuses_while_the_key_is_held,
    dependencies_wait_and_failures_cascade,
    run_at_in_the_future_waits,
);

async fn higher_priority_task_runs_first(db: Db) {
    let Some(app) = spawn_app_with(db, |c| c.max_parallel_tasks = 1).await else {
        return;
    };
    let blocker = app
        .create(json!({"type": "sleep", "config": {"secs": 30}}))
        .await;
    app.wait_status(&id_of(&blocker), "running", 10.0).await;
    let mut ids = Vec::new();
    for p in [json!("low"), json!(1), json!("high"), json!(3), json!(0)] {
        ids.push(id_of(
            &app.create(json!({"type": "noop", "priority": p})).await,
        ));
    }
    let waiting = app.task(&ids[4]).await;
    assert_eq!(waiting["waiting_on"], "capacity");
    assert_eq!(
        waiting["waiting_detail"],
        "1 of 1 parallel slots busy; 4 tasks ahead of this one"
    );

    app.post_empty(&format!("/api/v1/tasks/{}/cancel", id_of(&blocker)))
        .await;
    let mut done: Vec<Value> = Vec::new();
    for id in &ids {
        done.push(app.wait_status(id, "success", 10.0).await);
    }

    // The order of the start events (a noop can start in the millisecond another started).
    let (_, events) = app.get("/api/v1/events?event=status&limit=1000").await;
    let priorities: Vec<i64> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["to"] == "running")
        .filter_map(|e| {
            let i = ids.iter().position(|id| e["task_id"] == id.as_str())?;
            done[i]["priority"].as_i64()
        })
        .collect();
    assert_eq!(
        priorities,
        [3, 2, 1, 0, 0],
        "started in this priority order"
    );
    let (a, b) = (&done[0], &done[4]);
    assert!(
        ms(a, "started_at") <= ms(b, "started_at"),
        "FIFO within a level"
    );
}

async fn tasks_sharing_a_mutex_never_overlap(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(id_of(
            &app.create(json!({"type": "sleep", "mutex": "market_data", "config": {"secs": 0.15}}))
                .await,
        ));
    }
    let free = app.create(json!({"type": "noop"})).await;
    let waiting = app.task(&ids[2]).await;
    if waiting["status"] == "pending" {
        assert_eq!(waiting["waiting_on"], "mutex", "{waiting}");
        assert!(waiting["waiting_detail"]
            .as_str()
            .unwrap()
            .starts_with("mutex 'market_data' is held by task "));
    }
    app.wait_status(&id_of(&free), "success", 10.0).await;
    let mut spans = Vec::new();
    for id in &ids {
        let t = app.wait_status(id, "success", 20.0).await;
        spans.push((ms(&t, "started_at"), ms(&t, "finished_at")));
    }
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "runs overlap: {spans:?}");
    }
}

async fn mutex_policy_reject_refuses_while_the_key_is_held(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let first = app
        .create(json!({"type": "sleep", "mutex": "nightly", "config": {"secs": 0.3}}))
        .await;
    let (status, e) = app
        .post(
            "/api/v1/tasks",
            json!({"type": "noop", "mutex": "nightly", "mutex_policy": "reject"}),
        )
        .await;
    assert_eq!(status, 409, "{e}");
    assert_eq!(e["error"]["code"], "mutex_held");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains(first["id"].as_str().unwrap()));
    app.wait_status(&id_of(&first), "success", 10.0).await;
    let (status, ok) = app
        .post(
            "/api/v1/tasks",
            json!({"type": "noop", "mutex": "nightly", "mutex_policy": "reject"}),
        )
        .await;
    assert_eq!(status, 201, "{ok}");
}

async fn dependencies_wait_and_failures_cascade(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let a = app
        .create(json!({"type": "sleep", "config": {"secs": 0.2}}))
        .await;
    let b = app
        .create(json!({"type": "noop", "depends_on": [a["id"]]}))
        .await;
    let waiting = app.task(&id_of(&b)).await;
    if waiting["status"] == "pending" {
        assert_eq!(waiting["waiting_on"], "dependencies");
    }
    let a_done = app.wait_status(&id_of(&a), "success", 10.0).await;
    let b_done = app.wait_status(&id_of(&b), "success", 10.0).await;
    assert!(ms(&b_done, "started_at") >= ms(&a_done, "finished_at"));

    let bad = app.create(json!({"type": "command", "max_retries": 0, "config": {"program": "sh", "args": ["-c", "sleep 0.2; exit 1"]}})).await;
    let child = app
        .create(json!({"type": "noop", "depends_on": [bad["id"]]}))
        .await;
    let grandchild = app
        .create(json!({"type": "noop", "depends_on": [child["id"]]}))
        .await;
    app.wait_status(&id_of(&bad), "failed", 10.0).await;
    let c = app.wait_status(&id_of(&child), "cancelled", 10.0).await;
    app.wait_status(&id_of(&grandchild), "cancelled", 10.0)
        .await;
    let h = app.history(&id_of(&c)).await;
    assert_eq!(
        h.last().unwrap()["reason"],
        format!("dependency {} failed", id_of(&bad))
    );
    // a dependency that already failed dooms a new dependent at once
    let late = app
        .create(json!({"type": "noop", "depends_on": [bad["id"]]}))
        .await;
    app.wait_status(&id_of(&late), "cancelled", 10.0).await;
    let (status, e) = app
        .post(
            "/api/v1/tasks",
            json!({"type": "noop", "depends_on": ["01a20000-0000-7000-8000-000000000000"]}),
        )
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("depends_on[0]"))
    );
}

async fn run_at_in_the_future_waits(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(400);
    let t = app
        .create(json!({"type": "noop", "run_at": at.to_rfc3339()}))
        .await;
    let id = id_of(&t);
    let w = app.task(&id).await;
    assert_eq!(
        (w["status"].as_str(), w["waiting_on"].as_str()),
        (Some("pending"), Some("run_at")),
        "{w}"
    );
    let done = app.wait_status(&id, "success", 10.0).await;
    assert!(ms(&done, "started_at") >= at.timestamp_millis());
}
