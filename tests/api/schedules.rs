//! Schedules (SPEC §4): triggers, timing, max_instances, depends_on, trigger now, batch
//! templates, seed 003 import/export, and misfire policies across a real server restart.

use std::time::{Duration, Instant};

use chrono::{Datelike, TimeZone};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::recovery::{start_with, Server};

const SEED_003: &str = r#"
tasks:
  - task_id: "daily_data_sync"
    task_name: "每日股票数据同步"
    task_type: "cron"
    task_module: "app.tasks.data_sync"
    task_function: "sync_daily_stock_data"
    description: "每天收盘后同步当日股票交易数据"
    priority: 200

    schedule:
      schedule_type: "cron"
      cron_expression: "0 16 * * 1-5"
      enabled: true

    params:
      data_source: "akshare"
      include_basic: true
      include_kline: true

    timeout: 3600
    retry_count: 3
    retry_delay: 300

    tags:
      - "daily"
      - "data_sync"
      - "important"
  - task_id: "calc_technical_indicators"
    task_name: "计算技术指标"
    task_type: "manual"
    task_module: "app.tasks.indicators"
    task_function: "calc"
    priority: 500
    schedule:
      schedule_type: "interval"
      interval_seconds: 3600
      enabled: false
    params:
      window: 20
  - task_id: "calc_strategy_signals"
    task_name: "计算策略信号"
    task_type: "manual"
    task_module: "app.tasks.signals"
    task_function: "calc"
    priority: 900
    schedule:
      schedule_type: "once"
      start_time: "2025-10-17T09:00:00"
      enabled: true

task_groups:
  - group_id: "daily_job"
    group_name: "每日数据处理任务组"
    tasks:
      - "daily_data_sync"
      - "calc_technical_indicators"
      - "calc_strategy_signals"
    execution_mode: "sequential"
    enabled: true
"#;

async fn create_schedule(app: &TestApp, body: Value) -> Value {
    let (status, s) = app.post("/api/v1/schedules", body).await;
    assert_eq!(status, 201, "create schedule: {s}");
    s
}

async fn runs(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, page) = app
        .get(&format!("/api/v1/schedules/{id}/runs?limit=1000"))
        .await;
    assert_eq!(status, 200, "runs: {page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

fn fired(runs: &[Value]) -> Vec<Value> {
    runs.iter()
        .filter(|r| r["status"] == "fired")
        .cloned()
        .collect()
}

/// Waits until the schedule has at least `n` fired runs.
async fn wait_fired(app: &TestApp, id: &str, n: usize, secs: f64) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        let r = runs(app, id).await;
        if fired(&r).len() >= n {
            return r;
        }
        assert!(Instant::now() < deadline, "fewer than {n} fires: {r:?}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next weekday 16:00 in Shanghai after `now`, computed with chrono-tz alone.
fn next_weekday_1600_shanghai(now: chrono::DateTime<chrono::Utc>) -> i64 {
    let tz = chrono_tz::Asia::Shanghai;
    let local = now.with_timezone(&tz);
    let mut day = local.date_naive();
    loop {
        let candidate = tz
            .with_ymd_and_hms(day.year(), day.month(), day.day(), 16, 0, 0)
            .single()
            .unwrap();
        let weekday = candidate.weekday().num_days_from_monday();
        if weekday < 5 && candidate > local {
            return candidate.timestamp_millis();
        }
        day = day.succ_opt().unwrap();
    }
}

async fn cron_next_run_is_the_next_weekday_1600_in_shanghai(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let before = chrono::Utc::now();
    let s = create_schedule(
        &app,
        json!({"name": "close", "trigger": {"type": "cron", "cron": "0 16 * * 1-5", "timezone": "Asia/Shanghai"},
               "task": {"type": "noop"}, "tags": ["daily"]}),
    )
    .await;
    assert_eq!(s["type"], "cron");
    assert_eq!(ms(&s, "next_run_at"), next_weekday_1600_shanghai(before));
    // By name, too; filters.
    let (status, by_name) = app.get("/api/v1/schedules/close").await;
    assert_eq!((status, &by_name["id"]), (200, &s["id"]));
    let (_, l) = app
        .get("/api/v1/schedules?type=cron&tag=daily&enabled=true")
        .await;
    assert_eq!(l["total"], 1);
    let (_, l) = app.get("/api/v1/schedules?type=interval").await;
    assert_eq!(l["total"], 0);
}

async fn bad_cron_bad_zone_and_duplicate_name_are_refused(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let (status, e) = app
        .post(
            "/api/v1/schedules",
            json!({"name": "a", "cron": "61 * * * *", "task": {"type": "noop"}}),
        )
        .await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"]["field"], "trigger.cron");
    let (status, e) = app
        .post("/api/v1/schedules", json!({"name": "a", "cron": "0 * * * *", "timezone": "Mars/Base", "task": {"type": "noop"}}))
        .await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"]["field"], "trigger.timezone");
    let (status, e) = app
        .post(
            "/api/v1/schedules",
            json!({"name": "a", "cron": "0 * * * *", "task": {"type": "nope"}}),
        )
        .await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"]["field"], "task.type");
    let (status, e) = app
        .post(
            "/api/v1/schedules",
            json!({"name": "a", "cron": "0 1 * * *", "interval_secs": 5, "task": {"type": "noop"}}),
        )
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("trigger")),
        "{e}"
    );
    let (status, e) = app
        .post(
            "/api/v1/schedules",
            json!({"name": "a", "interval_secs": 5, "depends_on": ["nobody"], "task": {"type": "noop"}}),
        )
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("depends_on")),
        "{e}"
    );
    let (_, none) = app.get("/api/v1/schedules").await;
    assert_eq!(none["total"], 0, "nothing stored: {none}");
    create_schedule(
        &app,
        json!({"name": "a", "cron": "0 * * * *", "task": {"type": "noop"}}),
    )
    .await;
    let (status, e) = app
        .post(
            "/api/v1/schedules",
            json!({"name": "a", "interval_secs": 5, "task": {"type": "noop"}}),
        )
        .await;
    assert_eq!(status, 409, "{e}");
}

async fn interval_fires_on_time_and_stops_when_paused(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let s = create_schedule(
        &app,
        json!({"name": "tick", "interval_secs": 0.4, "task": {"type": "noop"}}),
    )
    .await;
    let id = s["id"].as_str().unwrap().to_string();
    let r = wait_fired(&app, &id, 2, 10.0).await;
    for run in fired(&r) {
        let lag = ms(&run, "created_at") - ms(&run, "slot_at");
        assert!((0..500).contains(&lag), "fired {lag} ms after its slot");
        let task = app.task(run["task_id"].as_str().unwrap()).await;
        assert_eq!(
            (&task["schedule_id"], &task["source"]),
            (&s["id"], &json!("schedule"))
        );
    }
    let (status, paused) = app
        .post_empty(&format!("/api/v1/schedules/{id}/pause"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (&paused["enabled"], &paused["next_run_at"]),
        (&json!(false), &Value::Null)
    );
    let count = runs(&app, &id).await.len();
    actix_rt::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(runs(&app, &id).await.len(), count, "fired while paused");
    let (_, resumed) = app
        .post_empty(&format!("/api/v1/schedules/{id}/resume"))
        .await;
    assert!(resumed["next_run_at"].is_string());
    wait_fired(&app, &id, fired(&runs(&app, &id).await).len() + 1, 10.0).await;
    let (_, v) = app.get(&format!("/api/v1/schedules/{id}")).await;
    assert!(
        v["last_run_at"].is_string() && v["last_status"].is_string(),
        "{v}"
    );
}

async fn max_instances_one_never_overlaps(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let s = create_schedule(
        &app,
        json!({"name": "slow", "interval_secs": 0.3, "task": {"type": "sleep", "config": {"secs": 1.0}}}),
    )
    .await;
    let id = s["id"].as_str().unwrap().to_string();
    actix_rt::time::sleep(Duration::from_millis(2600)).await;
    app.post_empty(&format!("/api/v1/schedules/{id}/pause"))
        .await;
    let all = runs(&app, &id).await;
    assert!(
        all.iter().any(|r| r["status"] == "skipped"
            && r["reason"].as_str().unwrap_or("").contains("max_instances")),
        "{all:?}"
    );
    let mut spans = Vec::new();
    for run in fired(&all) {
        let t = app
            .wait_until(run["task_id"].as_str().unwrap(), 10.0, |t| {
                is_terminal(t["status"].as_str().unwrap())
            })
            .await;
        spans.push((ms(&t, "created_at"), ms(&t, "finished_at")));
    }
    assert!(spans.len() >= 2, "{spans:?}");
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[1].0 >= w[0].1, "two runs overlapped: {spans:?}");
    }
}

async fn once_fires_once_and_trigger_fires_now(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(400);
    let s = create_schedule(
        &app,
        json!({"name": "one", "once_at": at.to_rfc3339(), "task": {"type": "noop"}}),
    )
    .await;
    let id = s["id"].as_str().unwrap().to_string();
    assert_eq!(ms(&s, "next_run_at"), at.timestamp_millis());
    wait_fired(&app, &id, 1, 5.0).await;
    actix_rt::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(runs(&app, &id).await.len(), 1);
    let (_, v) = app.get(&format!("/api/v1/schedules/{id}")).await;
    assert_eq!(v["next_run_at"], Value::Null);

    // Trigger now, on a paused cron schedule.
    let c = create_schedule(&app, json!({"name": "manual", "cron": "0 0 1 1 *", "enabled": false, "task": {"type": "noop", "priority": "high"}})).await;
    let (status, run) = app
        .post_empty(&format!(
            "/api/v1/schedules/{}/trigger",
            c["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["status"], "fired");
    let t = app
        .wait_status(run["task_id"].as_str().unwrap(), "success", 10.0)
        .await;
    assert_eq!(t["priority"], 2);
    let (_, v) = app.get("/api/v1/schedules/manual").await;
    assert_eq!(v["last_status"], "success");
}

async fn depends_on_waits_for_a_successful_run(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    create_schedule(
        &app,
        json!({"name": "first", "trigger": {"type": "manual"}, "task": {"type": "noop"}}),
    )
    .await;
    create_schedule(&app, json!({"name": "second", "trigger": {"type": "manual"}, "depends_on": ["first"], "task": {"type": "noop"}})).await;
    let (_, run) = app.post_empty("/api/v1/schedules/second/trigger").await;
    assert_eq!(run["status"], "skipped", "{run}");
    assert!(run["reason"].as_str().unwrap().contains("first"));
    let (_, run) = app.post_empty("/api/v1/schedules/first/trigger").await;
    app.wait_status(run["task_id"].as_str().unwrap(), "success", 10.0)
        .await;
    let (_, run) = app.post_empty("/api/v1/schedules/second/trigger").await;
    assert_eq!(run["status"], "fired", "{run}");
}

async fn a_batch_template_makes_a_batch(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let s = create_schedule(
        &app,
        json!({"name": "group", "trigger": {"type": "manual"}, "batch": {"name": "nightly", "mode": "sequential",
               "tasks": [{"key": "a", "type": "noop"}, {"key": "b", "type": "noop", "depends_on": ["a"]}]}}),
    )
    .await;
    let (status, e) = app
        .post(
            "/api/v1/schedules",
            json!({"name": "bad", "interval_secs": 60, "batch": {"tasks": []}}),
        )
        .await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"]["field"], "batch.tasks");
    let (status, run) = app
        .post_empty(&format!(
            "/api/v1/schedules/{}/trigger",
            s["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 201, "{run}");
    let bid = run["batch_id"].as_str().expect("a batch").to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, b) = app.get(&format!("/api/v1/batches/{bid}")).await;
        if b["status"] == "success" {
            break;
        }
        assert!(Instant::now() < deadline, "batch never succeeded: {b}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, tasks) = app
        .get(&format!(
            "/api/v1/tasks?schedule_id={}",
            s["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(tasks["total"], 2, "{tasks}");
    let (_, v) = app.get("/api/v1/schedules/group").await;
    assert_eq!(v["last_status"], "success");
}

async fn edit_and_delete_by_id_or_name(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let s = create_schedule(
        &app,
        json!({"name": "e", "interval_secs": 60, "task": {"type": "noop"}}),
    )
    .await;
    let id = s["id"].as_str().unwrap().to_string();
    let (status, v) = app
        .patch(
            "/api/v1/schedules/e",
            json!({"tags": ["x"], "max_instances": 2, "description": "d"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (&v["tags"], &v["max_instances"], &v["trigger"]),
        (&json!(["x"]), &json!(2), &s["trigger"])
    );
    let (status, v) = app
        .put(
            &format!("/api/v1/schedules/{id}"),
            json!({"name": "e2", "cron": "*/5 * * * *", "task": {"type": "noop"}}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (&v["id"], &v["type"], &v["tags"]),
        (&s["id"], &json!("cron"), &json!([]))
    );
    let (status, e) = app
        .patch(
            "/api/v1/schedules/e2",
            json!({"misfire_policy": "sometimes"}),
        )
        .await;
    assert_eq!(
        (status, &e["error"]["field"]),
        (400, &json!("misfire_policy"))
    );
    let (status, _) = app.delete("/api/v1/schedules/e2").await;
    assert_eq!(status, 204);
    let (status, _) = app.get(&format!("/api/v1/schedules/{id}")).await;
    assert_eq!(status, 404);
}

async fn import_text(app: &TestApp, text: &str, format: &str) -> (u16, Value) {
    body_json(
        app.client
            .post(app.url(&format!("/api/v1/schedules/import?format={format}")))
            .insert_header(("content-type", "application/yaml"))
            .send_body(text.to_string())
            .await
            .expect("POST import"),
    )
    .await
}

/// The seed's keys of one entry (what a round trip must keep).
fn seed_keys(v: &Value, keys: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for k in keys {
        out.insert((*k).into(), v[*k].clone());
    }
    Value::Object(out)
}

async fn seed_003_yaml_imports_and_round_trips(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let (status, report) = import_text(&app, SEED_003, "yaml").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["created"].as_array().unwrap().len(), 4, "{report}");
    let (_, sync) = app.get("/api/v1/schedules/daily_data_sync").await;
    assert_eq!(sync["task"]["priority"], 2);
    assert_eq!(sync["trigger"]["cron"], "0 16 * * 1-5");
    let (_, group) = app.get("/api/v1/schedules/daily_job").await;
    assert_eq!(
        (&group["type"], &group["enabled"]),
        (&json!("manual"), &json!(true)),
        "a group without a schedule runs by hand, enabled as the file says"
    );
    assert_eq!(group["batch"]["mode"], "sequential");

    let (status, text) = app.get_text("/api/v1/schedules/export?format=yaml").await;
    assert_eq!(status, 200);
    let exported: Value = serde_yaml::from_str(&text).expect("export is YAML");
    let original: Value = serde_yaml::from_str(SEED_003).unwrap();
    let task_keys = [
        "task_id",
        "task_name",
        "task_type",
        "task_module",
        "task_function",
        "description",
        "priority",
        "schedule",
        "params",
        "timeout",
        "retry_count",
        "retry_delay",
        "tags",
    ];
    for t in original["tasks"].as_array().unwrap() {
        let out = exported["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["task_id"] == t["task_id"])
            .expect("exported");
        assert_eq!(
            seed_keys(out, &task_keys),
            seed_keys(t, &task_keys),
            "{}",
            t["task_id"]
        );
    }
    let group_keys = [
        "group_id",
        "group_name",
        "tasks",
        "execution_mode",
        "enabled",
    ];
    assert_eq!(
        seed_keys(&exported["task_groups"][0], &group_keys),
        seed_keys(&original["task_groups"][0], &group_keys)
    );

    // Re-importing (the export itself, as JSON) updates and never duplicates.
    let (_, json_doc) = app.get("/api/v1/schedules/export?format=json").await;
    let (status, report) = import_text(&app, &json_doc.to_string(), "json").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["updated"].as_array().unwrap().len(), 4, "{report}");
    let (_, l) = app.get("/api/v1/schedules").await;
    assert_eq!(l["total"], 4);

    // steward's own schedules survive the same round trip: a batch template whose members
    // are no task entry (written inline), a manual schedule, limits and misfire policy; and a
    // dependency on a schedule not in the file is imported with a warning.
    create_schedule(&app, json!({"name": "etl", "trigger": {"type": "manual"}, "max_instances": 3, "misfire_policy": "skip",
        "batch": {"name": "etl-run", "mode": "parallel", "tasks": [
            {"key": "extract", "type": "noop"},
            {"key": "load", "type": "sleep", "config": {"secs": 0.1}, "depends_on": ["extract"]}]}}))
    .await;
    create_schedule(
        &app,
        json!({"name": "by-hand", "trigger": {"type": "manual"}, "task": {"type": "noop"}}),
    )
    .await;
    create_schedule(
        &app,
        json!({"name": "keyless", "trigger": {"type": "manual"},
               "batch": {"tasks": [{"type": "noop"}, {"type": "noop"}]}}),
    )
    .await;
    let (_, before) = app.get("/api/v1/schedules/etl").await;
    let (_, doc) = app.get("/api/v1/schedules/export?format=json").await;
    for name in ["etl", "by-hand", "keyless"] {
        let (status, _) = app.delete(&format!("/api/v1/schedules/{name}")).await;
        assert_eq!(status, 204);
    }
    let (status, report) = import_text(&app, &doc.to_string(), "json").await;
    assert_eq!(status, 200, "{report}");
    let (_, etl) = app.get("/api/v1/schedules/etl").await;
    let (_, by_hand) = app.get("/api/v1/schedules/by-hand").await;
    assert_eq!(
        (
            &etl["batch"]["tasks"][1]["depends_on"],
            &etl["max_instances"],
            &etl["misfire_policy"]
        ),
        (&json!(["extract"]), &json!(3), &json!("skip")),
        "{etl}"
    );
    assert_eq!(
        etl["batch"]["tasks"][1]["config"],
        before["batch"]["tasks"][1]["config"]
    );
    assert_eq!(by_hand["enabled"], true, "{by_hand}");
    let (_, keyless) = app.get("/api/v1/schedules/keyless").await;
    assert_eq!(
        keyless["batch"]["tasks"].as_array().map(Vec::len),
        Some(2),
        "{keyless}"
    );
    let (status, r) = app.post_empty("/api/v1/schedules/etl/trigger").await;
    assert!(status < 300, "{r}");
    let needs =
        json!({"tasks": [{"task_id": "later", "task_type": "noop", "dependencies": ["not-yet"]}]});
    let (status, report) = import_text(&app, &needs.to_string(), "json").await;
    assert_eq!(status, 200, "{report}");
    assert!(
        report["warnings"].to_string().contains("not-yet"),
        "{report}"
    );
}

/// The real binary with extra arguments (see `recovery::start_with`).
async fn start(dir: &std::path::Path, url: Option<&str>, extra: &[&str]) -> Server {
    start_with(dir, url, extra, &[]).await
}

/// Stops steward across three 3-second slots and counts the fires for those slots (it is
/// back 0.7 s after the third, well before the fourth).
async fn fires_after_outage(db: Db, policy: &str) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let url = match db {
        Db::Sqlite => None,
        Db::Postgres => match fresh_pg_schema() {
            Some(u) => Some(u),
            None => return usize::MAX,
        },
    };
    let mut s = start(dir.path(), url.as_deref(), &[]).await;
    let sched = create_schedule(
        &s.app,
        json!({"name": "p", "interval_secs": 3, "misfire_policy": policy, "misfire_grace_secs": 0.5,
               "max_instances": 5, "task": {"type": "noop"}}),
    )
    .await;
    let id = sched["id"].as_str().unwrap().to_string();
    let first = wait_fired(&s.app, &id, 1, 10.0).await;
    let last_slot = ms(&fired(&first)[0], "slot_at");
    s.child.kill().expect("SIGKILL");
    s.child.wait().expect("reap");
    let back = last_slot + 9_700;
    let wait = back - chrono::Utc::now().timestamp_millis();
    actix_rt::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
    let mut s = start(dir.path(), url.as_deref(), &[]).await;
    actix_rt::time::sleep(Duration::from_millis(800)).await;
    let all = runs(&s.app, &id).await;
    let _ = s.child.kill();
    let _ = s.child.wait();
    let missed = [last_slot + 3_000, last_slot + 6_000, last_slot + 9_000];
    fired(&all)
        .iter()
        .filter(|r| missed.contains(&ms(r, "slot_at")))
        .count()
}

async fn misfire_run_once_fires_once(db: Db) {
    let n = fires_after_outage(db, "run_once").await;
    assert!(n == 1 || n == usize::MAX, "run_once fired {n} times");
}

async fn misfire_skip_fires_nothing(db: Db) {
    let n = fires_after_outage(db, "skip").await;
    assert!(n == 0 || n == usize::MAX, "skip fired {n} times");
}

async fn misfire_catch_up_fires_every_slot(db: Db) {
    let n = fires_after_outage(db, "catch_up").await;
    assert!(n == 3 || n == usize::MAX, "catch_up fired {n} times");
}

#[actix_web::test]
async fn serve_loads_the_schedules_file_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tasks.yaml");
    std::fs::write(&file, SEED_003).unwrap();
    let file = file.display().to_string();
    for _ in 0..2 {
        let mut s = start(dir.path(), None, &["--schedules", &file]).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let total = loop {
            let (_, l) = s.app.get("/api/v1/schedules").await;
            if l["total"] == 4 || Instant::now() > deadline {
                break l["total"].clone();
            }
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        };
        // Stays at 4: the second start updated what the first created.
        actix_rt::time::sleep(Duration::from_millis(300)).await;
        let (_, l) = s.app.get("/api/v1/schedules").await;
        let _ = s.child.kill();
        let _ = s.child.wait();
        assert_eq!((total, &l["total"]), (json!(4), &json!(4)), "{l}");
    }
}

both_backends!(
    cron_next_run_is_the_next_weekday_1600_in_shanghai,
    bad_cron_bad_zone_and_duplicate_name_are_refused,
    interval_fires_on_time_and_stops_when_paused,
    max_instances_one_never_overlaps,
    once_fires_once_and_trigger_fires_now,
    depends_on_waits_for_a_successful_run,
    a_batch_template_makes_a_batch,
    edit_and_delete_by_id_or_name,
    seed_003_yaml_imports_and_round_trips,
    misfire_run_once_fires_once,
    misfire_skip_fires_nothing,
    misfire_catch_up_fires_every_slot,
);
