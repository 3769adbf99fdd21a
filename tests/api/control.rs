//! Pause, resume, cancel, restart, retry, delete, start, patch: over HTTP, as a user would.

use std::time::Duration;

use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    sleep_task_pauses_and_resumes_without_counting_paused_time,
    cancelling_a_pending_or_running_task_stops_it,
    restart_keeps_the_id_and_clears_the_outcome,
    retry_makes_a_new_task_only_from_failed,
    delete_is_allowed_only_for_finished_tasks,
    autostart_false_waits_for_start,
    invalid_transitions_are_refused_with_409,
    patch_changes_a_live_task,
    the_caller_named_by_x_steward_user_is_recorded,
    a_restart_right_after_a_cancel_runs_once_the_old_run_stopped,
);

/// Cancel then restart at once: the answer is the restarted task, the new run starts after
/// the old one has stopped, and the unit's load comes back to zero.
async fn a_restart_right_after_a_cancel_runs_once_the_old_run_stopped(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // The first run takes 0.3 s to stop after its SIGTERM; the second finds the marker and
    // ends at once.
    let script = "m=marker.$STEWARD_TASK_ID; if [ -f $m ]; then exit 0; fi; touch $m; trap 'sleep 0.3; kill $!; exit 1' TERM; sleep 30 & wait";
    for _ in 0..3 {
        let t = app
            .create(json!({"type": "command", "max_retries": 0, "config": {"program": "sh", "args": ["-c", script]}}))
            .await;
        let id = id_of(&t);
        app.wait_status(&id, "running", 10.0).await;
        let (status, c) = app.post_empty(&format!("/api/v1/tasks/{id}/cancel")).await;
        assert_eq!(status, 200, "{c}");
        let (status, r) = app.post_empty(&format!("/api/v1/tasks/{id}/restart")).await;
        assert_eq!(status, 200, "{r}");
        assert!(
            r["status"] == "pending" || r["status"] == "running",
            "the restarted task, not the cancelled one: {r}"
        );
        assert!(
            r["version"].as_i64() > c["version"].as_i64(),
            "{c} then {r}"
        );
        app.wait_status(&id, "success", 10.0).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, units) = app.get("/api/v1/units").await;
        let local = units["items"]
            .as_array()
            .and_then(|u| u.iter().find(|u| u["id"] == "local"))
            .cloned()
            .unwrap_or_default();
        if local["current_load"] == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the unit's load never came back to zero: {local}"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Without tokens, `X-Steward-User` names the caller: the task's `created_by` and the `by` of
/// what the caller did; with no header both say `api`, for a lone task as for a batch's.
async fn the_caller_named_by_x_steward_user_is_recorded(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let res = app
        .client
        .post(app.url("/api/v1/tasks"))
        .insert_header(("X-Steward-User", "alice"))
        .send_json(&json!({"type": "noop", "autostart": false}))
        .await
        .expect("POST");
    let (status, t) = body_json(res).await;
    assert_eq!(status, 201, "{t}");
    let id = id_of(&t);
    let res = app
        .client
        .post(app.url(&format!("/api/v1/tasks/{id}/cancel")))
        .insert_header(("X-Steward-User", "alice"))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status().as_u16(), 200);
    let plain = app
        .create(json!({"type": "noop", "autostart": false}))
        .await;

    let cancel = app
        .history(&id)
        .await
        .into_iter()
        .find(|h| h["to"] == "cancelled")
        .expect("the cancel in the history");
    assert_eq!(
        (t["created_by"].as_str(), cancel["by"].as_str()),
        (Some("alice"), Some("alice"))
    );
    assert_eq!(plain["created_by"], "api");
}

async fn sleep_task_pauses_and_resumes_without_counting_paused_time(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange
    let t = app
        .create(json!({"type": "sleep", "config": {"secs": 0.8}}))
        .await;
    let id = id_of(&t);
    app.wait_until(&id, 10.0, |t| {
        t["status"] == "running" && t["progress"].as_f64().unwrap_or(0.0) > 10.0
    })
    .await;

    // Act: pause
    let (status, paused) = app.post_empty(&format!("/api/v1/tasks/{id}/pause")).await;

    // Assert: paused, checkpoint kept, progress frozen
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["status"], "paused");
    actix_rt::time::sleep(Duration::from_millis(150)).await; // let the last tick land
    let before = app.task(&id).await;
    assert!(
        before["checkpoint"]["slept_secs"].as_f64().unwrap() > 0.0,
        "{before}"
    );
    actix_rt::time::sleep(Duration::from_millis(600)).await; // paused time must not count
    let after = app.task(&id).await;
    assert_eq!(
        before["progress"], after["progress"],
        "progress moved while paused"
    );
    assert_eq!(after["status"], "paused");

    // Act: resume
    let (status, resumed) = app.post_empty(&format!("/api/v1/tasks/{id}/resume")).await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["status"], "running");
    let done = app.wait_status(&id, "success", 10.0).await;

    // Assert: finished at 100 % with less running time than wall time
    assert_eq!(done["progress"], 100.0);
    let running = done["running_secs"].as_f64().unwrap();
    let wall = (ms(&done, "finished_at") - ms(&done, "started_at")) as f64 / 1000.0;
    assert!(running < wall - 0.4, "running {running}s vs wall {wall}s");
    let tos: Vec<_> = app
        .history(&id)
        .await
        .iter()
        .map(|h| h["to"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tos, ["pending", "running", "paused", "running", "success"]);
}

async fn cancelling_a_pending_or_running_task_stops_it(db: Db) {
    let Some(app) = spawn_app_with(db, |c| c.max_parallel_tasks = 1).await else {
        return;
    };
    let pidfile = app.dir.path().join("pid");
    let running = app
        .create(json!({"type": "command", "config": {"program": "sh", "args": ["-c", format!("echo $$ > {}; sleep 30", pidfile.display())]}}))
        .await;
    let queued = app.create(json!({"type": "noop"})).await;
    let rid = id_of(&running);
    app.wait_status(&rid, "running", 10.0).await;
    let pid = wait_for_file(&pidfile).await;

    let (status, c) = app
        .post_empty(&format!("/api/v1/tasks/{}/cancel", id_of(&queued)))
        .await;
    assert_eq!(
        (status, c["status"].as_str()),
        (200, Some("cancelled")),
        "{c}"
    );
    let (status, c) = app.post_empty(&format!("/api/v1/tasks/{rid}/cancel")).await;
    assert_eq!(
        (status, c["status"].as_str()),
        (200, Some("cancelled")),
        "{c}"
    );

    // The process group is gone (SIGTERM) within the deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} survived cancel"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let h = app.history(&rid).await;
    assert_eq!(h.last().unwrap()["to"], "cancelled");
    assert_eq!(app.task(&id_of(&queued)).await["status"], "cancelled");
}

pub async fn wait_for_file(path: &std::path::Path) -> u32 {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if let Ok(pid) = s.trim().parse() {
                return pid;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.contains(") Z "))
        .unwrap_or(true)
}

async fn restart_keeps_the_id_and_clears_the_outcome(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let t = app
        .create(json!({"type": "command", "max_retries": 0, "config": {"program": "sh", "args": ["-c", "echo '@steward {\"progress\": 40, \"checkpoint\": {\"at\": 4}}'; exit 2"]}}))
        .await;
    let id = id_of(&t);
    let failed = app.wait_status(&id, "failed", 10.0).await;
    assert_eq!(failed["error"], "exit code 2");
    assert_eq!(failed["progress"], 40.0);

    let (status, restarted) = app.post_empty(&format!("/api/v1/tasks/{id}/restart")).await;

    assert_eq!(status, 200, "{restarted}");
    assert_eq!(restarted["id"], id.as_str());
    assert_eq!(
        restarted["attempt"], 1,
        "a restart is a fresh run with the whole retry budget"
    );
    assert!(
        restarted["checkpoint"].is_null()
            && restarted["error"].is_null()
            && restarted["result"].is_null()
    );
    assert_eq!(
        (failed["source"].as_str(), restarted["source"].as_str()),
        (Some("api"), Some("restart"))
    );
    let again = app.wait_status(&id, "failed", 10.0).await;
    assert_eq!(again["attempt"], 1);
    assert_eq!(
        app.history(&id)
            .await
            .iter()
            .filter(|h| h["to"] == "running")
            .count(),
        2
    );
    // success is terminal: no restart
    let ok = app.create(json!({"type": "noop"})).await;
    app.wait_status(&id_of(&ok), "success", 10.0).await;
    let (status, e) = app
        .post_empty(&format!("/api/v1/tasks/{}/restart", id_of(&ok)))
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("invalid_transition"))
    );
}

async fn retry_makes_a_new_task_only_from_failed(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let t = app.create(json!({"type": "command", "max_retries": 0, "tags": ["x"], "config": {"program": "false"}})).await;
    let id = id_of(&t);
    app.wait_status(&id, "failed", 10.0).await;

    let (status, retried) = app.post_empty(&format!("/api/v1/tasks/{id}/retry")).await;

    assert_eq!(status, 201, "{retried}");
    assert_ne!(retried["id"], id.as_str());
    assert_eq!(retried["source"], "retry");
    assert_eq!(retried["retry_of"], id.as_str());
    assert_eq!(retried["type"], "command");
    assert_eq!(retried["config"], t["config"]);
    let ok = app.create(json!({"type": "noop"})).await;
    app.wait_status(&id_of(&ok), "success", 10.0).await;
    let (status, e) = app
        .post_empty(&format!("/api/v1/tasks/{}/retry", id_of(&ok)))
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("invalid_transition"))
    );
}

async fn delete_is_allowed_only_for_finished_tasks(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let long = app
        .create(json!({"type": "sleep", "config": {"secs": 30}}))
        .await;
    let lid = id_of(&long);
    app.wait_status(&lid, "running", 10.0).await;
    let (status, e) = app.delete(&format!("/api/v1/tasks/{lid}")).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("not_terminal"))
    );

    let done = app.create(json!({"type": "noop"})).await;
    let did = id_of(&done);
    app.wait_status(&did, "success", 10.0).await;
    let (status, _) = app.delete(&format!("/api/v1/tasks/{did}")).await;
    assert_eq!(status, 204);
    let (status, e) = app.get(&format!("/api/v1/tasks/{did}")).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    app.post_empty(&format!("/api/v1/tasks/{lid}/cancel")).await;
}

async fn autostart_false_waits_for_start(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let t = app
        .create(json!({"type": "noop", "autostart": false}))
        .await;
    let id = id_of(&t);
    let held = app.task(&id).await;
    assert_eq!(held["status"], "pending");
    assert_eq!(held["waiting_on"], "start");

    let (status, started) = app.post_empty(&format!("/api/v1/tasks/{id}/start")).await;

    assert_eq!(status, 200, "{started}");
    app.wait_status(&id, "success", 10.0).await;
}

async fn invalid_transitions_are_refused_with_409(db: Db) {
    let Some(app) = spawn_app_with(db, |c| c.max_parallel_tasks = 1).await else {
        return;
    };
    let blocker = app
        .create(json!({"type": "sleep", "config": {"secs": 30}}))
        .await;
    let bid = id_of(&blocker);
    app.wait_status(&bid, "running", 10.0).await;
    let pending = app.create(json!({"type": "noop"})).await;
    let pid = id_of(&pending);
    for (path, id) in [
        ("pause", &pid),
        ("resume", &pid),
        ("resume", &bid),
        ("start", &bid),
        ("restart", &bid),
        ("retry", &pid),
    ] {
        let (status, e) = app.post_empty(&format!("/api/v1/tasks/{id}/{path}")).await;
        assert_eq!(status, 409, "{path} on {id}: {e}");
        assert_eq!(e["error"]["code"], "invalid_transition", "{path}: {e}");
    }
    app.post_empty(&format!("/api/v1/tasks/{bid}/cancel")).await;
    app.wait_status(&pid, "success", 10.0).await;
    let (status, e) = app.post_empty(&format!("/api/v1/tasks/{pid}/cancel")).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("invalid_transition"))
    );
}

async fn patch_changes_a_live_task(db: Db) {
    let Some(app) = spawn_app_with(db, |c| c.max_parallel_tasks = 1).await else {
        return;
    };
    let blocker = app
        .create(json!({"type": "sleep", "config": {"secs": 30}}))
        .await;
    app.wait_status(&id_of(&blocker), "running", 10.0).await;
    let t = app.create(json!({"type": "noop", "name": "before"})).await;
    let id = id_of(&t);
    let (status, p) = app
        .patch(
            &format!("/api/v1/tasks/{id}"),
            json!({"priority": "urgent", "name": "after", "tags": ["a"]}),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        (
            p["priority"].as_i64(),
            p["name"].as_str(),
            p["tags"][0].as_str()
        ),
        (Some(3), Some("after"), Some("a"))
    );
    let (status, p) = app
        .patch(
            &format!("/api/v1/tasks/{}", id_of(&blocker)),
            json!({"name": "renamed"}),
        )
        .await;
    assert_eq!((status, p["name"].as_str()), (200, Some("renamed")));
    let (status, e) = app
        .patch(
            &format!("/api/v1/tasks/{id}"),
            json!({"priority": "sky-high"}),
        )
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("priority"))
    );
    app.post_empty(&format!("/api/v1/tasks/{}/cancel", id_of(&blocker)))
        .await;
}
