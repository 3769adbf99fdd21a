//! Strategies switchable at run time, ageing, fairness, per-type limits and admission control.

use serde_json::{json, Value};

use crate::batches::{batch_tasks, create_batch, wait_batch};
use crate::both_backends;
use crate::helpers::*;

both_backends!(
    fifo_ignores_priority_after_a_switch_at_run_time,
    ageing_lets_a_long_waiting_low_priority_task_go_first,
    fair_strategy_does_not_let_a_big_batch_starve_a_small_one,
    type_limits_bound_running_tasks_of_a_type,
    admission_control_holds_new_work_above_the_memory_threshold,
);

async fn blocked(app: &TestApp) -> String {
    let blocker = app
        .create(json!({"type": "sleep", "config": {"secs": 30}}))
        .await;
    let id = id_of(&blocker);
    app.wait_status(&id, "running", 10.0).await;
    id
}

async fn fifo_ignores_priority_after_a_switch_at_run_time(db: Db) {
    let Some(app) = spawn_app_with(db, |c| c.max_parallel_tasks = 1).await else {
        return;
    };
    let (status, r) = app
        .put(
            "/api/v1/system/config",
            json!({"scheduling_strategy": "fifo"}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["applied"], json!(["scheduling_strategy"]));
    let blocker = blocked(&app).await;
    let low = app.create(json!({"type": "noop", "priority": "low"})).await;
    let high = app
        .create(json!({"type": "noop", "priority": "urgent"}))
        .await;
    app.post_empty(&format!("/api/v1/tasks/{blocker}/cancel"))
        .await;
    let (l, h) = (
        app.wait_status(&id_of(&low), "success", 10.0).await,
        app.wait_status(&id_of(&high), "success", 10.0).await,
    );
    assert!(
        ms(&l, "started_at") <= ms(&h, "started_at"),
        "fifo: first come first served"
    );
    let (_, cfg) = app.get("/api/v1/system/config").await;
    assert_eq!(cfg["scheduling_strategy"], "fifo");
    let (status, e) = app
        .put(
            "/api/v1/system/config",
            json!({"scheduling_strategy": "random"}),
        )
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("scheduling_strategy")),
        "{e}"
    );
}

async fn ageing_lets_a_long_waiting_low_priority_task_go_first(db: Db) {
    let Some(app) = spawn_app_with(db, |c| {
        c.max_parallel_tasks = 1;
        c.priority_ageing_secs = 0.1;
    })
    .await
    else {
        return;
    };
    let blocker = blocked(&app).await;
    let low = app.create(json!({"type": "noop", "priority": 0})).await;
    // wait until the low task has aged past two levels (0.1 s each): poll its wait time
    app.wait_until(&id_of(&low), 5.0, |_| true).await;
    actix_rt::time::sleep(std::time::Duration::from_millis(400)).await; // ageing is time itself
    let high = app.create(json!({"type": "noop", "priority": 2})).await;
    app.post_empty(&format!("/api/v1/tasks/{blocker}/cancel"))
        .await;
    let (l, h) = (
        app.wait_status(&id_of(&low), "success", 10.0).await,
        app.wait_status(&id_of(&high), "success", 10.0).await,
    );
    assert!(
        ms(&l, "started_at") <= ms(&h, "started_at"),
        "the aged low-priority task went first"
    );
}

async fn fair_strategy_does_not_let_a_big_batch_starve_a_small_one(db: Db) {
    let Some(app) = spawn_app_with(db, |c| {
        c.max_parallel_tasks = 1;
        c.scheduling_strategy = steward::scheduler::Strategy::Fair;
    })
    .await
    else {
        return;
    };
    let blocker = blocked(&app).await;
    let big: Vec<Value> = (0..30).map(|_| json!({"type": "noop"})).collect();
    let big = create_batch(&app, json!({"name": "big", "tasks": big})).await;
    let small = create_batch(
        &app,
        json!({"name": "small", "tasks": [{"type": "noop"}, {"type": "noop"}]}),
    )
    .await;
    app.post_empty(&format!("/api/v1/tasks/{blocker}/cancel"))
        .await;
    wait_batch(&app, big["id"].as_str().unwrap(), "success").await;
    wait_batch(&app, small["id"].as_str().unwrap(), "success").await;
    let mut all: Vec<(i64, String)> = Vec::new();
    for (name, b) in [("big", &big), ("small", &small)] {
        for t in batch_tasks(&app, b["id"].as_str().unwrap()).await {
            all.push((ms(&t, "started_at"), name.to_string()));
        }
    }
    all.sort();
    let small_positions: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(_, (_, n))| n == "small")
        .map(|(i, _)| i)
        .collect();
    assert!(
        small_positions.iter().all(|p| *p < 6),
        "small batch positions {small_positions:?} of {}",
        all.len()
    );
}

async fn type_limits_bound_running_tasks_of_a_type(db: Db) {
    let Some(app) = spawn_app_with(db, |c| {
        c.type_limits.insert("sleep".into(), 1);
    })
    .await
    else {
        return;
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(id_of(
            &app.create(json!({"type": "sleep", "config": {"secs": 0.1}}))
                .await,
        ));
    }
    let free = app.create(json!({"type": "noop"})).await;
    let w = app.task(&ids[2]).await;
    if w["status"] == "pending" {
        assert!(
            w["waiting_detail"]
                .as_str()
                .unwrap()
                .contains("type limit for 'sleep'"),
            "{w}"
        );
    }
    app.wait_status(&id_of(&free), "success", 10.0).await;
    let mut spans = Vec::new();
    for id in &ids {
        let t = app.wait_status(id, "success", 10.0).await;
        spans.push((ms(&t, "started_at"), ms(&t, "finished_at")));
    }
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "two sleeps at once: {spans:?}");
    }
}

async fn admission_control_holds_new_work_above_the_memory_threshold(db: Db) {
    let Some(app) = spawn_app_with(db, |c| c.max_memory_percent = 0.001).await else {
        return;
    };
    // The first sample comes within a second; a task created after it waits.
    let probe = app
        .create(json!({"type": "noop", "autostart": false}))
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let t = loop {
        let t = app.create(json!({"type": "noop"})).await;
        let now = app.task(&id_of(&t)).await;
        if now["status"] == "pending"
            && now["waiting_detail"]
                .as_str()
                .is_some_and(|d| d.contains("memory use"))
        {
            break now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "admission never held work: {now}"
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(t["waiting_on"], "capacity");
    let _ = probe;
    let (status, _) = app
        .put("/api/v1/system/config", json!({"max_memory_percent": 100}))
        .await;
    assert_eq!(status, 200);
    app.wait_status(&id_of(&t), "success", 10.0).await;
}
