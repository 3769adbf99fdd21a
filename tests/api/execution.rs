//! Execution semantics: the command unit's protocol, retries, timeouts, progress and logs
//! routes, the unit callback, results and the long poll.

use std::time::Duration;

use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    command_output_becomes_logs_progress_and_result,
    failed_attempts_retry_until_max_retries,
    a_task_past_its_timeout_fails_with_timeout,
    the_timeout_clock_stops_while_paused,
    a_timed_out_attempt_retries_after_its_delay,
    progress_route_validates_and_never_goes_back,
    logs_can_be_posted_and_filtered_by_level,
    unit_callback_finishes_a_running_task,
    long_poll_answers_when_the_task_changes,
    command_pause_stops_the_process,
    a_command_tasks_cpu_memory_and_io_are_kept_on_the_task,
);

async fn a_command_tasks_cpu_memory_and_io_are_kept_on_the_task(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let script = "import os, time\nf = open('out.bin', 'wb'); f.write(b'x' * 20_000_000); f.flush(); os.fsync(f.fileno())\nheld = bytearray(60_000_000)\nfor i in range(len(held) // 4096): held[i * 4096] = 1\ntime.sleep(30)";
    let t = app
        .create(
            json!({"type": "command", "config": {"program": "python3", "args": ["-c", script]}}),
        )
        .await;
    let id = id_of(&t);
    let seen = app
        .wait_until(&id, 20.0, |t| {
            t["resources"]["memory_rss_bytes"].as_u64().unwrap_or(0) > 60_000_000
                && t["resources"]["io_write_bytes"].as_u64().unwrap_or(0) >= 20_000_000
        })
        .await;
    let r = &seen["resources"];
    assert!(
        r["cpu_seconds"].as_f64().is_some() && r["cpu_percent"].as_f64().is_some(),
        "{r}"
    );
    assert!(r["processes"].as_u64().unwrap() >= 1);
    app.post_empty(&format!("/api/v1/tasks/{id}/cancel")).await;
}

async fn command_output_becomes_logs_progress_and_result(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let script = r#"echo "id=$STEWARD_TASK_ID attempt=$STEWARD_ATTEMPT"
echo '@steward {"progress": 30, "stage": "load", "message": "loading"}'
echo warn-line >&2
echo '@steward {"progress": 90, "checkpoint": {"row": 9}}'
echo '@steward {"result": {"rows": 10}}'"#;
    let t = app
        .create(json!({"type": "command", "config": {"program": "sh", "args": ["-c", script]}}))
        .await;
    let id = id_of(&t);

    let done = app.wait_status(&id, "success", 10.0).await;

    assert_eq!(done["result"], json!({"rows": 10}));
    // A result that is not an object is kept as {"value": …} (SPEC §2: object or null).
    let listed = app
        .create(json!({"type": "command", "config": {"program": "sh", "args": ["-c", "echo '@steward {\"result\": [1, 2]}'"]}}))
        .await;
    let listed = app.wait_status(&id_of(&listed), "success", 10.0).await;
    assert_eq!(listed["result"], json!({"value": [1, 2]}));
    assert_eq!(done["progress"], 100.0);
    assert_eq!(done["stage"], "load");
    assert_eq!(done["checkpoint"], json!({"row": 9}));
    let logs = app.logs(&id).await;
    let lines: Vec<(String, String)> = logs
        .iter()
        .map(|l| {
            (
                l["level"].as_str().unwrap().into(),
                l["message"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        lines.contains(&("INFO".into(), format!("id={id} attempt=1"))),
        "{lines:?}"
    );
    assert!(
        lines.contains(&("WARNING".into(), "warn-line".into())),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|(_, m)| m.contains("@steward")),
        "protocol lines are not logs: {lines:?}"
    );
}

async fn failed_attempts_retry_until_max_retries(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let t = app
        .create(json!({"type": "command", "max_retries": 2, "retry_delay_secs": 0.05, "retry_backoff": "fixed", "config": {"program": "sh", "args": ["-c", "exit 7"]}}))
        .await;
    let id = id_of(&t);

    let failed = app
        .wait_until(&id, 20.0, |t| t["status"] == "failed" && t["attempt"] == 3)
        .await;

    assert_eq!(failed["error"], "exit code 7");
    let tos: Vec<String> = app
        .history(&id)
        .await
        .iter()
        .map(|h| h["to"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        tos,
        [
            "pending", "running", "failed", "pending", "running", "failed", "pending", "running",
            "failed"
        ]
    );
    // waiting_on retry_delay is visible while a retry waits
    let slow = app
        .create(json!({"type": "command", "max_retries": 1, "retry_delay_secs": 30, "config": {"program": "false"}}))
        .await;
    let w = app
        .wait_until(&id_of(&slow), 10.0, |t| t["attempt"] == 2)
        .await;
    assert_eq!(
        (w["status"].as_str(), w["waiting_on"].as_str()),
        (Some("pending"), Some("retry_delay")),
        "{w}"
    );
    app.post_empty(&format!("/api/v1/tasks/{}/cancel", id_of(&slow)))
        .await;
}

async fn a_task_past_its_timeout_fails_with_timeout(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // A timeout no timer can hold is refused, not accepted to stall the task.
    for bad in [json!(1e300), json!(0), json!(-1)] {
        let (status, e) = app
            .post(
                "/api/v1/tasks",
                json!({"type": "noop", "timeout_secs": bad}),
            )
            .await;
        assert_eq!(
            (status, e["error"]["field"].as_str()),
            (400, Some("timeout_secs")),
            "{bad}: {e}"
        );
    }
    let t = app
        .create(
            json!({"type": "sleep", "timeout_secs": 0.3, "max_retries": 0, "config": {"secs": 20}}),
        )
        .await;
    let failed = app.wait_status(&id_of(&t), "failed", 10.0).await;
    assert_eq!(failed["error"], "timeout");
    let c = app.create(json!({"type": "command", "timeout_secs": 0.3, "max_retries": 0, "config": {"program": "sleep", "args": ["20"]}})).await;
    let failed = app.wait_status(&id_of(&c), "failed", 10.0).await;
    assert_eq!(failed["error"], "timeout");
}

/// The retry of a timed-out attempt starts once its delay has passed: the stopped run's
/// confirmation frees the slot (it was taken for a stale report and the slot was held until
/// the stop-confirmation deadline, 15 s later).
async fn a_timed_out_attempt_retries_after_its_delay(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let t = app
        .create(json!({"type": "sleep", "timeout_secs": 0.5, "max_retries": 1, "retry_delay_secs": 0.2, "retry_backoff": "fixed", "config": {"secs": 30}}))
        .await;
    let id = id_of(&t);
    let second = app
        .wait_until(&id, 6.0, |t| {
            t["attempt"].as_i64() == Some(2) && t["status"] != "pending"
        })
        .await;
    assert_eq!(second["status"], "running", "{second}");
    let history = app.history(&id).await;
    let retried = history
        .iter()
        .position(|h| h["from"] == "failed" && h["to"] == "pending")
        .expect("a retry in the history");
    assert_eq!(history[retried - 1]["reason"], "timeout", "{history:?}");
    assert_eq!(history[retried + 1]["to"], "running", "{history:?}");
    app.post_empty(&format!("/api/v1/tasks/{id}/cancel")).await;
}

async fn the_timeout_clock_stops_while_paused(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let t = app.create(json!({"type": "sleep", "timeout_secs": 0.9, "max_retries": 0, "config": {"secs": 0.6}})).await;
    let id = id_of(&t);
    app.wait_until(&id, 10.0, |t| t["progress"].as_f64().unwrap_or(0.0) > 20.0)
        .await;
    let (status, _) = app.post_empty(&format!("/api/v1/tasks/{id}/pause")).await;
    assert_eq!(status, 200);
    actix_rt::time::sleep(Duration::from_millis(1000)).await; // longer than the timeout
    assert_eq!(app.task(&id).await["status"], "paused");
    app.post_empty(&format!("/api/v1/tasks/{id}/resume")).await;
    app.wait_status(&id, "success", 10.0).await;
}

async fn progress_route_validates_and_never_goes_back(db: Db) {
    let Some(app) = spawn_app_with(db, |c| c.max_parallel_tasks = 1).await else {
        return;
    };
    let t = app
        .create(json!({"type": "command", "config": {"program": "sleep", "args": ["30"]}}))
        .await;
    let id = id_of(&t);
    app.wait_status(&id, "running", 10.0).await;
    let path = format!("/api/v1/tasks/{id}/progress");

    let (status, p) = app
        .post(
            &path,
            json!({"progress": 60, "stage": "s2", "message": "m", "checkpoint": {"k": 1}}),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        (p["progress"].as_f64(), p["stage"].as_str()),
        (Some(60.0), Some("s2"))
    );
    let (status, p) = app.post(&path, json!({"progress": 40})).await;
    assert_eq!(
        (status, p["progress"].as_f64()),
        (200, Some(60.0)),
        "a lower value is ignored"
    );
    let (status, e) = app.post(&path, json!({"progress": 150})).await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("progress"))
    );
    let (status, e) = app.post(&path, json!({"progress": -1})).await;
    assert_eq!(status, 400, "{e}");
    for bad in [json!("x"), json!(5), json!([1, 2])] {
        let (status, e) = app.post(&path, json!({"checkpoint": bad})).await;
        assert_eq!(
            (status, e["error"]["field"].as_str()),
            (400, Some("checkpoint")),
            "{e}"
        );
    }
    assert_eq!(app.task(&id).await["checkpoint"], json!({"k": 1}));
    let queued = app.create(json!({"type": "noop"})).await;
    let (status, e) = app
        .post(
            &format!("/api/v1/tasks/{}/progress", id_of(&queued)),
            json!({"progress": 5}),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("invalid_transition"))
    );
    app.post_empty(&format!("/api/v1/tasks/{id}/cancel")).await;
}

async fn logs_can_be_posted_and_filtered_by_level(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let t = app.create(json!({"type": "noop"})).await;
    let id = id_of(&t);
    for (level, msg) in [
        ("DEBUG", "d"),
        ("INFO", "i"),
        ("WARNING", "w"),
        ("ERROR", "e"),
    ] {
        let (status, l) = app
            .post(
                &format!("/api/v1/tasks/{id}/logs"),
                json!({"level": level, "message": msg}),
            )
            .await;
        assert_eq!(status, 201, "{l}");
    }
    let (status, l) = app
        .get(&format!("/api/v1/tasks/{id}/logs?level=WARNING"))
        .await;
    assert_eq!(status, 200);
    let msgs: Vec<&str> = l["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["message"].as_str().unwrap())
        .collect();
    assert_eq!(msgs, ["w", "e"]);
    assert!(l["items"][0]["timestamp"].as_str().is_some());
    let (status, e) = app
        .post(
            &format!("/api/v1/tasks/{id}/logs"),
            json!({"level": "LOUD", "message": "x"}),
        )
        .await;
    assert_eq!((status, e["error"]["field"].as_str()), (400, Some("level")));
    let (status, e) = app
        .post(
            &format!("/api/v1/tasks/{id}/logs"),
            json!({"level": "INFO"}),
        )
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("message"))
    );
}

async fn unit_callback_finishes_a_running_task(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let t = app
        .create(json!({"type": "sleep", "config": {"secs": 30}}))
        .await;
    let id = id_of(&t);
    app.wait_status(&id, "running", 10.0).await;
    let (status, done) = app
        .post(
            &format!("/api/v1/tasks/{id}/status"),
            json!({"status": "SUCCESS", "result": {"ok": true}, "errorMessage": null}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    let done = app.wait_status(&id, "success", 10.0).await;
    assert_eq!(done["result"], json!({"ok": true}));
    let (status, r) = app.get(&format!("/api/v1/tasks/{id}/result")).await;
    assert_eq!((status, r["result"].clone()), (200, json!({"ok": true})));
    let (status, e) = app
        .post(
            &format!("/api/v1/tasks/{id}/status"),
            json!({"status": "EXPLODED"}),
        )
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("status"))
    );

    let t2 = app
        .create(json!({"type": "sleep", "max_retries": 0, "config": {"secs": 30}}))
        .await;
    let id2 = id_of(&t2);
    app.wait_status(&id2, "running", 10.0).await;
    app.post(
        &format!("/api/v1/tasks/{id2}/status"),
        json!({"status": "failed", "errorMessage": "disk full"}),
    )
    .await;
    let failed = app.wait_status(&id2, "failed", 10.0).await;
    assert_eq!(failed["error"], "disk full");

    // A finished task: the status it ended with again is answered unchanged, another is refused.
    let path2 = format!("/api/v1/tasks/{id2}/status");
    let (status, same) = app.post(&path2, json!({"status": "FAILED"})).await;
    assert_eq!((status, same["status"].as_str()), (200, Some("failed")));
    for other in ["SUCCESS", "cancelled", "running"] {
        let (status, e) = app
            .post(&path2, json!({"status": other, "result": {"x": 1}}))
            .await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (409, Some("invalid_transition")),
            "{other}: {e}"
        );
    }
    let after = app.task(&id2).await;
    assert_eq!(
        (after["status"].as_str(), after["result"].clone()),
        (Some("failed"), serde_json::Value::Null)
    );
    // A running task cannot be reported back to pending.
    let t3 = app
        .create(json!({"type": "sleep", "config": {"secs": 30}}))
        .await;
    let id3 = id_of(&t3);
    app.wait_status(&id3, "running", 10.0).await;
    let (status, e) = app
        .post(
            &format!("/api/v1/tasks/{id3}/status"),
            json!({"status": "pending"}),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("invalid_transition")),
        "{e}"
    );
    assert_eq!(app.task(&id3).await["status"], "running");
    app.post_empty(&format!("/api/v1/tasks/{id3}/cancel")).await;
}

async fn long_poll_answers_when_the_task_changes(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let t = app
        .create(json!({"type": "noop", "autostart": false}))
        .await;
    let id = id_of(&t);
    let v = app.task(&id).await["version"].as_i64().unwrap();
    let (status, same) = app
        .get(&format!(
            "/api/v1/tasks/{id}/wait?after_version={v}&timeout_secs=0.2"
        ))
        .await;
    assert_eq!(
        (status, same["version"].as_i64()),
        (200, Some(v)),
        "timeout answers with the task as it is"
    );
    let waiter = app
        .client
        .get(app.url(&format!(
            "/api/v1/tasks/{id}/wait?after_version={v}&timeout_secs=20"
        )))
        .send();
    let started = std::time::Instant::now();
    let (res, _) = futures_util::join!(waiter, async {
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        app.post_empty(&format!("/api/v1/tasks/{id}/start")).await
    });
    let (status, changed) = body_json(res.expect("wait")).await;
    assert_eq!(status, 200);
    assert!(changed["version"].as_i64().unwrap() > v);
    assert!(started.elapsed() < Duration::from_secs(10));
}

async fn command_pause_stops_the_process(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let counter = app.dir.path().join("count");
    let script = format!(
        "i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo $i > {}; sleep 0.01; done",
        counter.display()
    );
    let t = app
        .create(json!({"type": "command", "config": {"program": "sh", "args": ["-c", script]}}))
        .await;
    let id = id_of(&t);
    crate::control::wait_for_file(&counter).await;
    app.post_empty(&format!("/api/v1/tasks/{id}/pause")).await;
    actix_rt::time::sleep(Duration::from_millis(150)).await;
    let a = std::fs::read_to_string(&counter).unwrap();
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let b = std::fs::read_to_string(&counter).unwrap();
    assert_eq!(a, b, "the process kept running while paused");
    app.post_empty(&format!("/api/v1/tasks/{id}/resume")).await;
    app.wait_status(&id, "success", 30.0).await;
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "400");
}
