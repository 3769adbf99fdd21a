//! `steward worker` processes against a server: a worker killed with kill -9 mid-task while
//! another finishes the task from its checkpoint, a drained worker that finishes its work and
//! exits, and a worker that keeps its task while the server is killed and restarted.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::recovery::{free_port, start_on};

both_backends!(
    two_workers_one_killed_mid_task_the_task_finishes_on_the_other,
    a_drained_worker_finishes_its_work_and_exits,
);

/// A counting `command` that honours its checkpoint: it says where it starts, then reports
/// ten steps with a checkpoint after each.
const STEPS: &str = r#"step=$(printf '%s' "$STEWARD_CHECKPOINT" | sed -n 's/.*"step": *\([0-9]*\).*/\1/p')
step=${step:-0}
echo "starting at step $step"
while [ "$step" -lt 10 ]; do
  step=$((step + 1))
  echo "@steward {\"progress\": $((step * 10)), \"checkpoint\": {\"step\": $step}}"
  sleep 0.3
done"#;

fn steps_task() -> Value {
    json!({"type": "command", "config": {"program": "sh", "args": ["-c", STEPS]},
           "unit_labels": {"pool": "remote"}})
}

/// A `steward worker` process, killed when dropped.
struct Worker {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_worker(server: &str, name: &str) -> Worker {
    let dir = tempfile::tempdir().expect("temp dir");
    let child = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["worker", "--server", server, "--name", name])
        .args([
            "--types",
            "sleep,command",
            "--capacity",
            "2",
            "--labels",
            "pool=remote",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn steward worker");
    Worker { child, _dir: dir }
}

/// Waits until a worker of that name is connected; returns its unit.
async fn connected(app: &TestApp, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, units) = app.get("/api/v1/units").await;
        let found = units["items"].as_array().and_then(|us| {
            us.iter()
                .find(|u| {
                    u["unit_name"] == name && u["connected"] == true && u["status"] != "OFFLINE"
                })
                .cloned()
        });
        if let Some(u) = found {
            return u;
        }
        assert!(
            Instant::now() < deadline,
            "worker {name} never connected: {units}"
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

fn starts(logs: &[Value]) -> Vec<String> {
    logs.iter()
        .filter_map(|l| l["message"].as_str())
        .filter(|m| m.starts_with("starting at step"))
        .map(String::from)
        .collect()
}

async fn two_workers_one_killed_mid_task_the_task_finishes_on_the_other(db: Db) {
    let Some(app) = spawn_app_with(db, |c| c.unit_heartbeat_timeout_secs = 1.5).await else {
        return;
    };
    // Arrange: the task runs on worker a; worker b stands by.
    let mut a = spawn_worker(&app.addr, "a");
    let unit_a = connected(&app, "a").await;
    let id = id_of(&app.create(steps_task()).await);
    let running = app
        .wait_until(&id, 20.0, |t| t["progress"].as_f64().unwrap_or(0.0) >= 20.0)
        .await;
    let _b = spawn_worker(&app.addr, "b");
    let unit_b = connected(&app, "b").await;

    // Act
    a.child.kill().expect("kill -9 worker a");
    let _ = a.child.wait();

    // Assert: b finishes the task, carrying on from a's last checkpoint.
    let done = app.wait_status(&id, "success", 30.0).await;
    assert_eq!(running["unit_id"], unit_a["id"]);
    assert_eq!(done["unit_id"], unit_b["id"]);
    assert_eq!(done["attempt"], 1);
    let logs = app.logs(&id).await;
    let starts = starts(&logs);
    assert_eq!(starts.len(), 2, "{logs:?}");
    assert_eq!(starts[0], "starting at step 0");
    assert_ne!(
        starts[1], "starting at step 0",
        "b resumed from the checkpoint: {starts:?}"
    );
    let (_, a_now) = app
        .get(&format!("/api/v1/units/{}", unit_a["id"].as_str().unwrap()))
        .await;
    assert_eq!(a_now["status"], "OFFLINE");
}

async fn a_drained_worker_finishes_its_work_and_exits(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange
    let mut w = spawn_worker(&app.addr, "w");
    let unit = connected(&app, "w").await;
    let unit_id = unit["id"].as_str().unwrap().to_string();
    let first = id_of(
        &app.create(json!({"type": "sleep", "config": {"secs": 1.0},
        "unit_labels": {"pool": "remote"}}))
            .await,
    );
    app.wait_status(&first, "running", 20.0).await;

    // Act
    let (status, drained) = app
        .post_empty(&format!("/api/v1/units/{unit_id}/drain"))
        .await;
    let second = id_of(
        &app.create(json!({"type": "sleep", "config": {"secs": 1.0},
        "unit_labels": {"pool": "remote"}}))
            .await,
    );

    // Assert
    assert_eq!(status, 200, "{drained}");
    app.wait_status(&first, "success", 20.0).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(code) = w.child.try_wait().expect("wait") {
            break code;
        }
        assert!(Instant::now() < deadline, "the drained worker did not exit");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
    let waiting = app.task(&second).await;
    assert_eq!(waiting["status"], "pending", "{waiting}");
}

#[actix_web::test]
async fn a_worker_keeps_its_task_across_a_server_restart_sqlite() {
    keeps_across_restart(None).await
}

#[actix_web::test]
async fn a_worker_keeps_its_task_across_a_server_restart_postgres() {
    if let Some(url) = fresh_pg_schema() {
        keeps_across_restart(Some(url)).await
    }
}

async fn keeps_across_restart(url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let env = [("STEWARD_UNIT_HEARTBEAT_TIMEOUT_SECS", "10")];
    let mut s = start_on(port, dir.path(), url.as_deref(), &[], &env).await;
    // Arrange: the task runs on the worker.
    let _w = spawn_worker(&s.app.addr, "keeper");
    let unit = connected(&s.app, "keeper").await;
    let id = id_of(&s.app.create(steps_task()).await);
    s.app
        .wait_until(&id, 20.0, |t| t["progress"].as_f64().unwrap_or(0.0) >= 20.0)
        .await;

    // Act: kill -9 the server and start it again on the same address and data.
    s.child.kill().expect("kill -9 the server");
    let _ = s.child.wait();
    let mut s = start_on(port, dir.path(), url.as_deref(), &[], &env).await;

    // Assert: the worker came back with the task, which went on there without a restart.
    let done = s.app.wait_status(&id, "success", 30.0).await;
    assert_eq!(done["unit_id"], unit["id"]);
    let logs = s.app.logs(&id).await;
    assert_eq!(
        starts(&logs),
        vec!["starting at step 0".to_string()],
        "{logs:?}"
    );
    assert!(
        logs.iter().any(|l| l["message"]
            .as_str()
            .unwrap_or("")
            .contains("still runs this task after a server restart")),
        "{logs:?}"
    );
    let _ = s.child.kill();
    let _ = s.child.wait();
}
