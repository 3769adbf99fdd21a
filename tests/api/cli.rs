//! The command-line client (SPEC §10), run as the real binary against a test server: what a
//! user sees on standard output and error, and the exit codes scripts rely on.

use std::process::Output;

use serde_json::{json, Value};
use steward::auth::tokens::sha256;
use steward::auth::{Role, TokenSpec};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    submit_prints_the_id_and_ls_shows_it_in_a_table,
    json_output_parses,
    pause_resume_and_cancel_change_the_status,
    wait_exits_zero_on_success_and_non_zero_on_failure,
    an_unknown_id_prints_the_servers_message_and_exits_non_zero,
    logs_follow_prints_the_log_until_the_task_ends,
    batch_commands_submit_list_show_and_cancel,
    schedule_commands_import_list_trigger_pause_and_export,
    the_token_flag_authenticates_and_its_absence_is_reported,
    a_reader_that_goes_away_ends_the_output_quietly,
);

/// `steward task ls --json | head -c 1`: when the reader has gone, the client stops with
/// status 0 and no panic, as Unix tools do.
async fn a_reader_that_goes_away_ends_the_output_quietly(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    for _ in 0..20 {
        app.create(json!({"type": "noop", "autostart": false}))
            .await;
    }
    let addr = app.addr.clone();
    let out = actix_web::rt::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_steward"))
            .args(["task", "ls", "--json", "--server", &addr])
            .env_remove("STEWARD_TOKEN")
            .env_remove("STEWARD_SERVER")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the steward binary runs");
        drop(child.stdout.take()); // the reader goes away before a byte is read
        child.wait_with_output()
    })
    .await
    .expect("join")
    .expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `steward <args> --server <app>` in the test's data dir, off the async thread (the
/// server's actors share it).
async fn steward(app: &TestApp, args: &[&str]) -> Run {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_steward"));
    cmd.args(args)
        .args(["--server", &app.addr])
        .current_dir(app.dir.path())
        .env_remove("STEWARD_TOKEN")
        .env_remove("STEWARD_SERVER");
    let out: Output = actix_web::rt::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("the steward binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(run: &Run) -> &str {
    assert_eq!(
        run.code, 0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    run.stdout.trim()
}

fn parse(run: &Run) -> Value {
    serde_json::from_str(ok(run)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout))
}

async fn submit_prints_the_id_and_ls_shows_it_in_a_table(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Act
    let submit = steward(
        &app,
        &[
            "task",
            "submit",
            "--type",
            "noop",
            "--name",
            "nightly-report",
            "--tag",
            "cli",
            "--priority",
            "high",
        ],
    )
    .await;
    let id = ok(&submit).to_string();
    let ls = steward(&app, &["task", "ls"]).await;
    let show = steward(&app, &["task", "show", &id]).await;

    // Assert
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "submit printed {id:?}");
    let task = app.task(&id).await;
    assert_eq!(task["name"], "nightly-report");
    assert_eq!(task["priority"], 2);
    assert_eq!(task["tags"], json!(["cli"]));
    let table = ok(&ls);
    let mut lines = table.lines();
    let header = lines.next().expect("a header");
    for column in ["ID", "NAME", "TYPE", "STATUS", "PROGRESS"] {
        assert!(header.contains(column), "{header}");
    }
    let row = lines
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} not in\n{table}"));
    assert!(
        row.contains("nightly-report") && row.contains("noop"),
        "{row}"
    );
    let shown = ok(&show);
    assert!(
        shown.contains(&id) && shown.contains("nightly-report"),
        "{shown}"
    );
}

async fn json_output_parses(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Act
    let submitted = parse(&steward(&app, &["task", "submit", "--type", "noop", "--json"]).await);
    let id = submitted["id"].as_str().expect("id").to_string();
    let listed = parse(&steward(&app, &["task", "ls", "--json"]).await);
    let shown = parse(&steward(&app, &["--json", "task", "show", &id]).await);

    // Assert
    assert_eq!(submitted["type"], "noop");
    assert!(
        listed["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|t| t["id"] == id.as_str()),
        "{listed}"
    );
    assert_eq!(shown["id"], id.as_str());
}

async fn pause_resume_and_cancel_change_the_status(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange
    let submit = steward(
        &app,
        &[
            "task",
            "submit",
            "--type",
            "sleep",
            "--config",
            r#"{"secs": 60}"#,
        ],
    )
    .await;
    let id = ok(&submit).to_string();
    app.wait_status(&id, "running", 10.0).await;

    // Act / Assert
    for (action, status) in [
        ("pause", "paused"),
        ("resume", "running"),
        ("cancel", "cancelled"),
    ] {
        let run = steward(&app, &["task", action, &id]).await;
        let out = ok(&run);
        assert!(out.starts_with(&id), "{action}: {out}");
        app.wait_status(&id, status, 10.0).await;
    }
    // Refused control is the server's 409, and a non-zero exit.
    let again = steward(&app, &["task", "pause", &id]).await;
    assert_ne!(again.code, 0);
    assert!(
        again.stderr.contains("invalid_transition"),
        "{}",
        again.stderr
    );
}

async fn wait_exits_zero_on_success_and_non_zero_on_failure(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Act
    let good = steward(
        &app,
        &[
            "task",
            "submit",
            "--type",
            "sleep",
            "--config",
            r#"{"secs": 0.3}"#,
            "--wait",
        ],
    )
    .await;
    let config = app.dir.path().join("fail.json");
    std::fs::write(&config, r#"{"program": "sh", "args": ["-c", "exit 4"]}"#).expect("write");
    let bad = steward(
        &app,
        &[
            "task",
            "submit",
            "--type",
            "command",
            "--config",
            &format!("@{}", config.display()),
            "--max-retries",
            "0",
            "--wait",
        ],
    )
    .await;

    // Assert
    let out = ok(&good);
    let id = out.lines().next().expect("the id");
    assert!(
        out.lines().last().unwrap_or("").ends_with("success"),
        "{out}"
    );
    assert_eq!(app.task(id).await["status"], "success");
    assert_eq!(
        bad.code, 3,
        "stdout: {}\nstderr: {}",
        bad.stdout, bad.stderr
    );
    let bad_id = bad.stdout.lines().next().expect("the id");
    assert_eq!(app.task(bad_id).await["status"], "failed");
    assert!(bad.stdout.contains("failed"), "{}", bad.stdout);
}

async fn an_unknown_id_prints_the_servers_message_and_exits_non_zero(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let missing = "01900000-0000-7000-8000-000000000000";
    let (status, body) = app.get(&format!("/api/v1/tasks/{missing}")).await;
    assert_eq!(status, 404);
    let message = body["error"]["message"].as_str().expect("message");

    // Act
    let show = steward(&app, &["task", "show", missing]).await;
    let cancel = steward(&app, &["task", "cancel", missing]).await;
    let bad_type = steward(&app, &["task", "submit", "--type", "no-such-type"]).await;
    let bad_json = steward(
        &app,
        &["task", "submit", "--type", "noop", "--config", "{oops"],
    )
    .await;

    // Assert
    assert_eq!(show.code, 1);
    assert!(show.stderr.contains(message), "{}", show.stderr);
    assert!(show.stdout.is_empty(), "{}", show.stdout);
    assert_ne!(cancel.code, 0);
    assert!(cancel.stderr.contains(message), "{}", cancel.stderr);
    assert_eq!(bad_type.code, 1);
    assert!(bad_type.stderr.contains("type"), "{}", bad_type.stderr);
    assert_eq!(bad_json.code, 2, "a bad --config is a usage error");
    assert!(bad_json.stderr.contains("--config"), "{}", bad_json.stderr);
}

async fn logs_follow_prints_the_log_until_the_task_ends(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange
    let script = "for i in 1 2 3; do echo line-$i; sleep 0.2; done";
    let task = app
        .create(json!({"type": "command", "config": {"program": "sh", "args": ["-c", script]}}))
        .await;
    let id = id_of(&task);

    // Act
    let run = steward(&app, &["task", "logs", &id, "--follow"]).await;

    // Assert
    let out = ok(&run);
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("line-")).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].ends_with("line-1") && lines[2].ends_with("line-3"),
        "{out}"
    );
    assert!(
        run.stderr.contains("success"),
        "the end is reported: {}",
        run.stderr
    );
    assert_eq!(app.task(&id).await["status"], "success");
}

async fn batch_commands_submit_list_show_and_cancel(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange
    let spec = json!({"name": "cli-batch", "tasks": [
        {"type": "sleep", "config": {"secs": 60}}, {"type": "sleep", "config": {"secs": 60}}
    ]});

    // Act
    let submit = steward(&app, &["batch", "submit", &spec.to_string()]).await;
    let id = ok(&submit).to_string();
    let ls = steward(&app, &["batch", "ls"]).await;
    let show = steward(&app, &["batch", "show", &id]).await;
    let cancel = steward(&app, &["batch", "cancel", &id]).await;

    // Assert
    let (status, batch) = app.get(&format!("/api/v1/batches/{id}")).await;
    assert_eq!(status, 200, "{batch}");
    assert!(
        ok(&ls)
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("cli-batch")),
        "{}",
        ls.stdout
    );
    let shown = ok(&show);
    assert!(
        shown.contains("cli-batch") && shown.matches("sleep").count() >= 2,
        "{shown}"
    );
    assert!(ok(&cancel).contains(&id), "{}", cancel.stdout);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, b) = app
            .get(&format!(
                "/api/v1/batches/{id}/wait?after_version=0&timeout_secs=2"
            ))
            .await;
        if b["status"] == "cancelled" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "batch not cancelled: {b}"
        );
    }
}

async fn schedule_commands_import_list_trigger_pause_and_export(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange
    let file = app.dir.path().join("schedules.yaml");
    std::fs::write(
        &file,
        "tasks:\n- task_id: hourly-report\n  task_type: noop\n  schedule:\n    schedule_type: interval\n    interval_seconds: 3600\n    enabled: true\n",
    )
    .expect("write");

    // Act
    let import = steward(&app, &["schedule", "import", &file.display().to_string()]).await;
    let ls = steward(&app, &["schedule", "ls"]).await;
    let trigger = steward(&app, &["schedule", "trigger", "hourly-report"]).await;
    let pause = steward(&app, &["schedule", "pause", "hourly-report"]).await;
    let shown = parse(&steward(&app, &["schedule", "show", "hourly-report", "--json"]).await);
    let export = steward(&app, &["schedule", "export"]).await;

    // Assert
    assert!(ok(&import).contains("hourly-report"), "{}", import.stdout);
    assert!(
        ok(&ls)
            .lines()
            .any(|l| l.contains("hourly-report") && l.contains("every 1h")),
        "{}",
        ls.stdout
    );
    let triggered = ok(&trigger);
    let task_id = triggered.rsplit(' ').next().expect("a task id");
    app.wait_status(task_id, "success", 10.0).await;
    assert!(ok(&pause).contains("paused"), "{}", pause.stdout);
    assert_eq!(shown["enabled"], false);
    let yaml = ok(&export);
    assert!(yaml.contains("task_id: hourly-report"), "{yaml}");
}

async fn the_token_flag_authenticates_and_its_absence_is_reported(db: Db) {
    let Some(app) = spawn_app_with(db, |c| {
        c.tokens = vec![TokenSpec {
            name: "ci".into(),
            role: Role::Operator,
            sha256: hex::encode(sha256(b"cli-secret")),
        }];
    })
    .await
    else {
        return;
    };
    // Act
    let without = steward(&app, &["task", "ls"]).await;
    let with = steward(
        &app,
        &["task", "submit", "--type", "noop", "--token", "cli-secret"],
    )
    .await;

    // Assert
    assert_eq!(without.code, 1);
    assert!(without.stderr.contains("401"), "{}", without.stderr);
    let id = ok(&with).to_string();
    let (status, task) = app
        .client
        .get(app.url(&format!("/api/v1/tasks/{id}")))
        .bearer_auth("cli-secret")
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .expect("GET");
    assert_eq!(status, 200);
    let (_, task) = body_json(task).await;
    assert_eq!(task["created_by"], "ci");
}
