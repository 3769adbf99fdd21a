//! steward-bench: starts a steward server (the `steward` binary next to this one) on a
//! temporary data dir and drives it over HTTP as a client would, printing one JSON line per
//! workload (issue 8's W1–W4 and W6; W3 also reports the server's peak RSS).
//!
//! `cargo build --release && target/release/steward-bench [--only w1,w2] [--database-url URL]
//! [--w4-tasks N]`

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Server {
    child: Child,
    base: String,
    client: awc::Client,
    _dir: Option<tempfile::TempDir>,
}

struct Opts {
    only: Vec<String>,
    database_url: Option<String>,
    w4_tasks: usize,
}

fn server_binary() -> PathBuf {
    let me = std::env::current_exe().expect("current exe");
    me.parent().expect("bin dir").join("steward")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// A fresh PostgreSQL schema for this run, as a URL (PostgreSQL runs only).
/// The PostgreSQL schemas this run made (dropped when it ends).
static SCHEMAS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Drops the schemas this run made, once its servers are stopped.
fn drop_schemas(url: &str) {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let schemas = std::mem::take(&mut *SCHEMAS.lock().unwrap_or_else(|p| p.into_inner()));
    if schemas.is_empty() {
        return;
    }
    match diesel::PgConnection::establish(url) {
        Ok(mut c) => {
            for schema in schemas {
                if let Err(e) = c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")) {
                    eprintln!("could not drop schema {schema}: {e}");
                }
            }
        }
        Err(e) => eprintln!("could not drop this run's schemas: {e}"),
    }
}

fn fresh_schema(url: &str) -> String {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let mut c = diesel::PgConnection::establish(url).expect("connect to PostgreSQL");
    let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
    c.batch_execute(&format!("CREATE SCHEMA {schema}"))
        .expect("create schema");
    SCHEMAS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(schema.clone());
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

async fn start(
    opts: &Opts,
    dir: Option<tempfile::TempDir>,
    env: &[(&str, &str)],
    db_url: Option<&str>,
) -> Server {
    let dir = dir.unwrap_or_else(|| tempfile::tempdir().expect("temp dir"));
    let port = free_port();
    let mut cmd = Command::new(server_binary());
    cmd.args([
        "serve",
        "--bind",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(dir.path())
    .env("RUST_LOG", "error")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    let url = db_url
        .map(String::from)
        .or_else(|| opts.database_url.as_deref().map(fresh_schema));
    if let Some(url) = url {
        cmd.args(["--database-url", &url]);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .expect("start steward (build it with cargo build --release)");
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(120))
        .connector(awc::Connector::new().limit(64))
        .finish();
    let s = Server {
        child,
        base: format!("http://127.0.0.1:{port}/api/v1"),
        client,
        _dir: Some(dir),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = s
            .client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            if r.status().is_success() {
                return s;
            }
        }
        assert!(Instant::now() < deadline, "server did not start");
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
}

impl Server {
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let mut r = self
            .client
            .post(format!("{}{path}", self.base))
            .send_json(body)
            .await
            .expect("POST");
        let v = r
            .json::<Value>()
            .limit(256 * 1024 * 1024)
            .await
            .unwrap_or(Value::Null);
        (r.status().as_u16(), v)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let mut r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET");
        let v = r
            .json::<Value>()
            .limit(256 * 1024 * 1024)
            .await
            .unwrap_or(Value::Null);
        (r.status().as_u16(), v)
    }

    /// Long-polls until the batch is finished (as a client should: a tight poll of the
    /// batch view would load the server it measures); returns its status.
    async fn wait_batch(&self, id: &str) -> String {
        let mut version = 0;
        loop {
            let (_, b) = self
                .get(&format!(
                    "/batches/{id}/wait?after_version={version}&timeout_secs=60"
                ))
                .await;
            let st = b["status"].as_str().unwrap_or("").to_string();
            if matches!(st.as_str(), "success" | "failed" | "cancelled") {
                return st;
            }
            version = b["version"].as_i64().unwrap_or(version);
        }
    }

    async fn count(&self, status: &str) -> i64 {
        self.get(&format!("/tasks?status={status}&limit=1")).await.1["total"]
            .as_i64()
            .unwrap_or(0)
    }

    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let kib: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0);
        kib / 1024.0
    }

    /// CPU time the server has used so far, user and system, in seconds (from
    /// `/proc/<pid>/stat`, whose clock ticks are USER_HZ = 100 on Linux).
    fn cpu_secs(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // The fields after the command name (which may hold spaces) start at the state, so
        // utime and stime (fields 14 and 15) are the 12th and 13th of them.
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let ticks: f64 = after
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|n| n.parse::<f64>().ok())
            .sum();
        ticks / 100.0
    }

    fn stop(mut self) -> Option<tempfile::TempDir> {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        self._dir.take()
    }
}

fn noop_batch(n: usize) -> Value {
    json!({"name": "bench", "tasks": (0..n).map(|_| json!({"type": "noop"})).collect::<Vec<_>>()})
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn emit(v: Value) {
    println!("{v}");
}

async fn w1(opts: &Opts) {
    let s = start(opts, None, &[("STEWARD_MAX_PARALLEL_TASKS", "256")], None).await;
    let body = noop_batch(10_000);
    let t0 = Instant::now();
    let (status, b) = s.post("/batches", &body).await;
    let created = t0.elapsed().as_secs_f64();
    assert_eq!(status, 201, "{b}");
    let st = s.wait_batch(b["id"].as_str().unwrap_or_default()).await;
    let secs = t0.elapsed().as_secs_f64();
    emit(
        json!({"workload": "W1_batch", "tasks": 10_000, "status": st, "create_ms": created * 1000.0, "secs": secs, "tasks_per_sec": 10_000.0 / secs}),
    );
    let _ = s.stop();

    let s = start(opts, None, &[("STEWARD_MAX_PARALLEL_TASKS", "256")], None).await;
    let s = std::rc::Rc::new(s);
    let t0 = Instant::now();
    let per_worker = 10_000 / 16;
    let mut handles = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        handles.push(actix_rt::spawn(async move {
            for _ in 0..per_worker {
                let (code, _) = s.post("/tasks", &json!({"type": "noop"})).await;
                assert_eq!(code, 201);
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
    let submitted = t0.elapsed().as_secs_f64();
    while s.count("success").await < (per_worker * 16) as i64 {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    emit(
        json!({"workload": "W1_single", "tasks": per_worker * 16, "connections": 16, "submit_secs": submitted, "secs": secs, "tasks_per_sec": (per_worker * 16) as f64 / secs}),
    );
    if let Ok(s) = std::rc::Rc::try_unwrap(s) {
        let _ = s.stop();
    }
}

async fn w2(opts: &Opts) {
    let s = start(opts, None, &[], None).await;
    let mut lat = Vec::with_capacity(200);
    for _ in 0..200 {
        let t0 = Instant::now();
        let (_, t) = s.post("/tasks", &json!({"type": "noop"})).await;
        let id = t["id"].as_str().unwrap_or_default().to_string();
        let mut version = t["version"].as_i64().unwrap_or(0);
        loop {
            let (_, t) = s
                .get(&format!(
                    "/tasks/{id}/wait?after_version={version}&timeout_secs=10"
                ))
                .await;
            if t["status"] == "success" {
                break;
            }
            version = t["version"].as_i64().unwrap_or(version);
        }
        lat.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    emit(
        json!({"workload": "W2_latency", "tasks": 200, "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99)}),
    );
    let _ = s.stop();
}

async fn w3(opts: &Opts) {
    let s = start(
        opts,
        None,
        &[
            ("STEWARD_MAX_PARALLEL_TASKS", "1000"),
            ("STEWARD_LOCAL_UNIT_CAPACITY", "1000"),
        ],
        None,
    )
    .await;
    let body = json!({"name": "sleeps", "tasks": (0..1000).map(|_| json!({"type": "sleep", "config": {"secs": 1.0}})).collect::<Vec<_>>()});
    let cpu0 = s.cpu_secs();
    let t0 = Instant::now();
    let (_, b) = s.post("/batches", &body).await;
    let st = s.wait_batch(b["id"].as_str().unwrap_or_default()).await;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = s.cpu_secs() - cpu0;
    emit(
        json!({"workload": "W3_concurrency", "tasks": 1000, "status": st, "secs": secs, "server_peak_rss_mib": s.peak_rss_mib(), "server_cpu_secs": cpu}),
    );
    let _ = s.stop();
}

async fn w4(opts: &Opts) {
    let s = start(opts, None, &[("STEWARD_MAX_PARALLEL_TASKS", "256")], None).await;
    let n = opts.w4_tasks;
    let t0 = Instant::now();
    let mut ids: Vec<String> = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(10_000) {
        let size = (n - chunk * 10_000).min(10_000);
        let (_, b) = s.post("/batches", &noop_batch(size)).await;
        ids.extend(
            b["task_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from)),
        );
        s.wait_batch(b["id"].as_str().unwrap_or_default()).await;
    }
    let fill = t0.elapsed().as_secs_f64();
    let mut one = Vec::new();
    for i in 0..2000 {
        let id = &ids[(i * 7919) % ids.len()];
        let t = Instant::now();
        let (code, _) = s.get(&format!("/tasks/{id}")).await;
        assert_eq!(code, 200);
        one.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    one.sort_by(f64::total_cmp);
    let mut page = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let (code, _) = s
            .get("/tasks?status=success&type=noop&sort=-created_at&limit=50")
            .await;
        assert_eq!(code, 200);
        page.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    page.sort_by(f64::total_cmp);
    let metrics_url = s.base.replace("/api/v1", "/metrics");
    let mut scrape = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let mut r = s.client.get(&metrics_url).send().await.expect("scrape");
        let _ = r.body().limit(16 * 1024 * 1024).await;
        scrape.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    scrape.sort_by(f64::total_cmp);
    emit(
        json!({"workload": "W4_metrics_scrape", "stored": n, "p50_ms": percentile(&scrape, 0.5), "p99_ms": percentile(&scrape, 0.99)}),
    );
    emit(
        json!({"workload": "W4_lookups", "stored": n, "fill_secs": fill,
        "get_p50_ms": percentile(&one, 0.5), "get_p99_ms": percentile(&one, 0.99),
        "list_p50_ms": percentile(&page, 0.5), "list_p99_ms": percentile(&page, 0.99)}),
    );
    let _ = s.stop();
}

async fn w6(opts: &Opts) {
    let db = opts.database_url.as_deref().map(fresh_schema);
    let s = start(
        opts,
        None,
        &[("STEWARD_QUEUE_ENABLED", "false")],
        db.as_deref(),
    )
    .await;
    for _ in 0..10 {
        let (code, b) = s.post("/batches", &noop_batch(10_000)).await;
        assert_eq!(code, 201, "{b}");
    }
    let pending = s.count("pending").await;
    let dir = s.stop();
    let t0 = Instant::now();
    let s = start(
        opts,
        dir,
        &[("STEWARD_QUEUE_ENABLED", "true")],
        db.as_deref(),
    )
    .await;
    let ready = t0.elapsed().as_secs_f64();
    while s.count("success").await == 0 && s.count("running").await == 0 {
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    }
    emit(
        json!({"workload": "W6_recovery", "pending": pending, "ready_secs": ready, "first_dispatch_secs": t0.elapsed().as_secs_f64()}),
    );
    let _ = s.stop();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let opts = Opts {
        only: arg("--only")
            .map(|s| s.split(',').map(String::from).collect())
            .unwrap_or_default(),
        database_url: arg("--database-url"),
        w4_tasks: arg("--w4-tasks")
            .and_then(|s| s.parse().ok())
            .unwrap_or(100_000),
    };
    let run = |w: &str| opts.only.is_empty() || opts.only.iter().any(|o| o == w);
    actix_rt::System::new().block_on(async {
        if opts.database_url.is_some() {
            emit(json!({"backend": "postgres"}));
        }
        if run("w1") {
            w1(&opts).await;
        }
        if run("w2") {
            w2(&opts).await;
        }
        if run("w3") {
            w3(&opts).await;
        }
        if run("w4") {
            w4(&opts).await;
        }
        if run("w6") {
            w6(&opts).await;
        }
    });
    if let Some(url) = &opts.database_url {
        drop_schemas(url);
    }
}
