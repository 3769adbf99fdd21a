//! Crash recovery with a real server process: kill -9 in the middle of work, start again on
//! the same data, and check that running work resumes from its checkpoint, paused work stays
//! paused, pending work runs, and nothing the API acknowledged is lost.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use steward::domain::TaskId;
use steward::store::{tasks as q, Backend};

use crate::helpers::*;

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) app: TestApp,
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts the `steward` binary on `dir` (two parallel slots, a short kill grace) and waits
/// until it is ready.
pub(crate) async fn start(dir: &std::path::Path, database_url: Option<&str>) -> Server {
    let env = [
        ("STEWARD_MAX_PARALLEL_TASKS", "2"),
        ("STEWARD_KILL_GRACE_SECS", "1"),
    ];
    start_with(dir, database_url, &[], &env).await
}

/// Starts the `steward` binary with extra arguments and environment, and waits until ready.
pub(crate) async fn start_with(
    dir: &std::path::Path,
    database_url: Option<&str>,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Server {
    start_on(free_port(), dir, database_url, extra, env).await
}

/// Starts the `steward` binary on a given port (a restart on the same address).
pub(crate) async fn start_on(
    port: u16,
    dir: &std::path::Path,
    database_url: Option<&str>,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_steward"));
    cmd.args([
        "serve",
        "--bind",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(dir)
    .args(extra)
    .envs(env.iter().copied())
    .env("RUST_LOG", "warn")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    if let Some(url) = database_url {
        cmd.args(["--database-url", url]);
    }
    let child = cmd.spawn().expect("spawn steward");
    let app = TestApp {
        addr: format!("http://127.0.0.1:{port}"),
        client: awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish(),
        dir: tempfile::tempdir().expect("temp dir"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(res) = app.client.get(app.url("/readyz")).send().await {
            if res.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "steward did not become ready");
        actix_rt::time::sleep(Duration::from_millis(25)).await;
    }
    Server { child, app }
}

/// Polls the database itself (not the server) until the stored task satisfies `pred`.
pub(crate) async fn wait_stored(
    url: &str,
    id: &str,
    pred: impl Fn(&steward::domain::Task) -> bool,
) {
    let id: TaskId = id.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut conn = Backend::from_url(url).connect().expect("connect");
        if q::get(&mut conn, id).unwrap().is_some_and(|t| pred(&t)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the stored task never satisfied the condition"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn kill_nine_and_recover(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = match db {
        Db::Sqlite => None,
        Db::Postgres => match fresh_pg_schema() {
            Some(u) => Some(u),
            None => return,
        },
    };
    let store_url = url
        .clone()
        .unwrap_or_else(|| dir.path().join("steward.db").display().to_string());
    let mut s = start(dir.path(), url.as_deref()).await;

    // Arrange: one running command with a checkpoint, one paused sleep, one pending noop
    // (max_parallel_tasks = 2), and held tasks acknowledged just before the crash.
    let script = r#"if [ -n "$STEWARD_CHECKPOINT" ]; then echo "resumed with $STEWARD_CHECKPOINT"; exit 0; fi
echo '@steward {"progress": 50, "checkpoint": {"step": 1}}'; sleep 60"#;
    let running = s
        .app
        .create(json!({"type": "command", "config": {"program": "sh", "args": ["-c", script]}}))
        .await;
    let rid = id_of(&running);
    let paused = s
        .app
        .create(json!({"type": "sleep", "config": {"secs": 0.5}}))
        .await;
    let pid = id_of(&paused);
    s.app.wait_status(&pid, "running", 10.0).await;
    let (status, _) = s
        .app
        .post_empty(&format!("/api/v1/tasks/{pid}/pause"))
        .await;
    assert_eq!(status, 200);
    let pending = s.app.create(json!({"type": "noop"})).await;
    let nid = id_of(&pending);
    wait_stored(&store_url, &rid, |t| {
        t.checkpoint == Some(json!({"step": 1}))
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(id_of(
            &s.app
                .create(json!({"type": "noop", "autostart": false}))
                .await,
        ));
    }

    // Act: kill -9, then start again on the same data.
    s.child.kill().expect("SIGKILL");
    s.child.wait().expect("reap");
    let mut s = start(dir.path(), url.as_deref()).await;

    // Assert
    let r = s.app.wait_status(&rid, "success", 20.0).await;
    assert_eq!(r["attempt"], 1, "recovery resumes the same attempt");
    let logs: Vec<String> = s
        .app
        .logs(&rid)
        .await
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_string())
        .collect();
    assert!(
        logs.iter().any(|l| l == r#"resumed with {"step":1}"#),
        "resumed from the checkpoint: {logs:?}"
    );
    assert_eq!(
        s.app.task(&pid).await["status"],
        "paused",
        "paused stays paused"
    );
    s.app.wait_status(&nid, "success", 20.0).await;
    for id in &held {
        let t: Value = s.app.task(id).await;
        assert_eq!(
            (t["status"].as_str(), t["waiting_on"].as_str()),
            (Some("pending"), Some("start"))
        );
    }
    let (status, _) = s
        .app
        .post_empty(&format!("/api/v1/tasks/{pid}/resume"))
        .await;
    assert_eq!(status, 200);
    s.app.wait_status(&pid, "success", 20.0).await;
    let _ = s.child.kill();
    let _ = s.child.wait();
}

#[actix_web::test]
async fn kill_nine_recovery_sqlite() {
    kill_nine_and_recover(Db::Sqlite).await
}

#[actix_web::test]
async fn kill_nine_recovery_postgres() {
    kill_nine_and_recover(Db::Postgres).await
}

/// `PUT /system/config` takes effect on the next dispatch and survives a restart.
async fn config_changes_apply_at_once_and_survive_a_restart(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = match db {
        Db::Sqlite => None,
        Db::Postgres => match fresh_pg_schema() {
            Some(u) => Some(u),
            None => return,
        },
    };
    let mut s = start(dir.path(), url.as_deref()).await;
    let (status, r) = s
        .app
        .put("/api/v1/system/config", json!({"max_parallel_tasks": 1}))
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["applied"], json!(["max_parallel_tasks"]));
    let first = s
        .app
        .create(json!({"type": "sleep", "config": {"secs": 30}}))
        .await;
    s.app.wait_status(&id_of(&first), "running", 10.0).await;
    let second = s.app.create(json!({"type": "noop"})).await;
    let w = s.app.task(&id_of(&second)).await;
    assert_eq!(
        w["waiting_detail"], "1 of 1 parallel slots busy; next in line",
        "{w}"
    );

    s.child.kill().expect("SIGKILL");
    s.child.wait().expect("reap");
    let mut s = start(dir.path(), url.as_deref()).await;

    let (_, cfg) = s.app.get("/api/v1/system/config").await;
    assert_eq!(
        cfg["max_parallel_tasks"], 1,
        "the change outlived the restart"
    );
    let w = s.app.task(&id_of(&second)).await;
    assert_eq!(
        w["waiting_detail"], "1 of 1 parallel slots busy; next in line",
        "{w}"
    );
    s.app
        .post_empty(&format!("/api/v1/tasks/{}/cancel", id_of(&first)))
        .await;
    s.app.wait_status(&id_of(&second), "success", 10.0).await;
    let _ = s.child.kill();
    let _ = s.child.wait();
}

#[actix_web::test]
async fn config_changes_survive_a_restart_sqlite() {
    config_changes_apply_at_once_and_survive_a_restart(Db::Sqlite).await
}

#[actix_web::test]
async fn config_changes_survive_a_restart_postgres() {
    config_changes_apply_at_once_and_survive_a_restart(Db::Postgres).await
}

/// The binary's own warnings land in the system log: here, that it serves without a token.
#[actix_web::test]
async fn the_binary_records_its_warnings_in_the_system_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path(), None).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let found = loop {
        let (status, found) = s
            .app
            .get("/api/v1/logs?source=system&level=WARNING&q=WITHOUT%20authentication")
            .await;
        assert_eq!(status, 200, "{found}");
        if found["total"].as_i64() > Some(0) {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "the warning never reached the system log"
        );
        actix_rt::time::sleep(Duration::from_millis(25)).await;
    };
    let _ = s.child.kill();
    let _ = s.child.wait();
    assert_eq!(found["items"][0]["level"], "WARNING");
    assert_eq!(found["items"][0]["component"], "app");
}
