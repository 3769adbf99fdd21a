//! steward-ws-bench: how fast live events reach many WebSocket subscribers.
//!
//! Starts a steward server (the `steward` binary next to this one, SQLite in a temporary
//! directory) unless `--server` names one, makes `--tasks` quiet running tasks, connects
//! `--subscribers` WebSocket clients subscribed to every progress event, then posts
//! `--reports` progress reports per task and measures, per delivered frame, the delay from
//! the event's `at` to its arrival. Prints one JSON object. Build with `--release`.

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{stream, SinkExt, StreamExt};
use serde_json::{json, Value};

#[derive(Parser, Debug, Clone)]
struct Args {
    #[arg(long, default_value_t = 500)]
    subscribers: usize,
    #[arg(long, default_value_t = 1000)]
    tasks: usize,
    #[arg(long, default_value_t = 10)]
    reports: usize,
    /// Client threads holding the subscribers.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Progress posts in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// An already running server (then `--pid` gives its process for the memory figure).
    #[arg(long)]
    server: Option<String>,
    #[arg(long)]
    pid: Option<u32>,
}

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let args = Args::parse();
    let dir = tempfile_dir()?;
    let (base, mut child, pid) = match &args.server {
        Some(s) => (s.trim_end_matches('/').to_string(), None, args.pid),
        None => {
            let (url, child) = start_server(&dir, args.tasks)?;
            let pid = child.id();
            (url, Some(child), Some(pid))
        }
    };
    let result = actix_rt::System::new().block_on(run(args.clone(), base.clone(), pid));
    if let Some(c) = child.as_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", serde_json::to_string_pretty(&result?)?);
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf, Error> {
    let dir = std::env::temp_dir().join(format!("steward-ws-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn start_server(dir: &std::path::Path, tasks: usize) -> Result<(String, Child), Error> {
    let exe = std::env::current_exe()?.with_file_name("steward");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(exe)
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("STEWARD_MAX_PARALLEL_TASKS", tasks.to_string())
        .env("STEWARD_LOCAL_UNIT_CAPACITY", tasks.max(1).to_string())
        .env("STEWARD_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    Ok((format!("http://127.0.0.1:{port}"), child))
}

fn rss_mb(pid: Option<u32>) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish()
}

async fn run(args: Args, base: String, pid: Option<u32>) -> Result<Value, Error> {
    let api = format!("{base}/api/v1");
    let http = client();
    let up = Instant::now() + Duration::from_secs(30);
    while !http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        if Instant::now() > up {
            return Err("the server did not become ready".into());
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }

    // Quiet running tasks: progress comes only from this benchmark.
    let body = json!({"type": "command", "config": {"program": "sleep", "args": ["3600"]}});
    let ids: Vec<String> = stream::iter(0..args.tasks)
        .map(|_| {
            let (http, api, body) = (http.clone(), api.clone(), body.clone());
            async move {
                let mut res = http
                    .post(format!("{api}/tasks"))
                    .send_json(&body)
                    .await
                    .ok()?;
                let v: Value = res.json().await.ok()?;
                v["id"].as_str().map(String::from)
            }
        })
        .buffer_unordered(args.concurrency)
        .filter_map(|x| async move { x })
        .collect()
        .await;
    loop {
        let mut res = http
            .get(format!("{api}/tasks?status=running&limit=1"))
            .send()
            .await?;
        let v: Value = res.json().await?;
        if v["total"].as_u64() == Some(ids.len() as u64) {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_idle = rss_mb(pid);

    // Subscribers, spread over client threads.
    let expected = ids.len() * args.reports;
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<Received>();
    let ws_url = format!("{}/ws", api.replacen("http://", "ws://", 1));
    for t in 0..args.threads {
        let n = args.subscribers / args.threads + usize::from(t < args.subscribers % args.threads);
        let (ws_url, ready_tx, done_tx) = (ws_url.clone(), ready_tx.clone(), done_tx.clone());
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let mut tasks = Vec::new();
                for _ in 0..n {
                    let (ws_url, ready_tx, done_tx) =
                        (ws_url.clone(), ready_tx.clone(), done_tx.clone());
                    tasks.push(actix_rt::spawn(async move {
                        let out = subscriber(&ws_url, expected, ready_tx).await;
                        let _ = done_tx.send(out.unwrap_or_default());
                    }));
                }
                for t in tasks {
                    let _ = t.await;
                }
            });
        });
    }
    drop((ready_tx, done_tx));
    for _ in 0..args.subscribers {
        ready_rx.recv_timeout(Duration::from_secs(60))?;
    }
    let rss_connected = rss_mb(pid);

    // The load.
    let started = Instant::now();
    let posts = ids
        .iter()
        .flat_map(|id| (1..=args.reports).map(move |r| (id.clone(), r)));
    let mut ordered: Vec<(String, usize)> = posts.collect();
    ordered.sort_by_key(|(_, r)| *r);
    let reports = args.reports as f64;
    stream::iter(ordered)
        .map(|(id, r)| {
            let (http, api) = (http.clone(), api.clone());
            async move {
                let p = 99.0 * r as f64 / reports;
                let _ = http
                    .post(format!("{api}/tasks/{id}/progress"))
                    .send_json(&json!({"progress": p}))
                    .await;
            }
        })
        .buffer_unordered(args.concurrency)
        .collect::<Vec<()>>()
        .await;
    let posted = started.elapsed();
    let rss_loaded = rss_mb(pid);

    let mut frames = 0usize;
    let mut delays = Vec::new();
    let mut last = started;
    for _ in 0..args.subscribers {
        let got = done_rx.recv_timeout(Duration::from_secs(300))?;
        frames += got.delays.len();
        delays.extend(got.delays);
        last = last.max(got.last.unwrap_or(started));
    }
    let elapsed = (last - started).as_secs_f64();
    delays.sort_unstable();
    let pct = |q: f64| {
        delays
            .get(((delays.len() as f64 * q) as usize).min(delays.len().saturating_sub(1)))
            .copied()
    };

    // Stop the tasks' processes before the server goes.
    stream::iter(ids.clone())
        .map(|id| {
            let (http, api) = (http.clone(), api.clone());
            async move {
                let _ = http.post(format!("{api}/tasks/{id}/cancel")).send().await;
            }
        })
        .buffer_unordered(args.concurrency)
        .collect::<Vec<()>>()
        .await;

    Ok(json!({
        "subscribers": args.subscribers,
        "tasks": ids.len(),
        "reports_per_task": args.reports,
        "progress_events": expected,
        "frames_expected": expected * args.subscribers,
        "frames_delivered": frames,
        "post_secs": posted.as_secs_f64(),
        "delivery_secs": elapsed,
        "frames_per_sec": frames as f64 / elapsed.max(1e-9),
        "events_per_sec_per_subscriber": frames as f64 / args.subscribers.max(1) as f64 / elapsed.max(1e-9),
        "delay_ms": {"p50": pct(0.50), "p99": pct(0.99), "max": delays.last()},
        "server_rss_mb": {"tasks_running": rss_idle, "subscribers_connected": rss_connected, "after_load": rss_loaded},
    }))
}

/// A subscriber stops once it has every frame, or after this long without one.
const IDLE_END: Duration = Duration::from_secs(3);

/// What one subscriber saw: the delay of each frame (ms) and when the last one came.
#[derive(Default)]
struct Received {
    delays: Vec<i64>,
    last: Option<Instant>,
}

async fn subscriber(url: &str, expected: usize, ready: mpsc::Sender<()>) -> Option<Received> {
    let (_, mut ws) = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish()
        .ws(url)
        .max_frame_size(64 * 1024 * 1024)
        .connect()
        .await
        .ok()?;
    let sub = json!({"op": "subscribe", "events": ["progress"], "snapshot": false});
    ws.send(awc::ws::Message::Text(sub.to_string().into()))
        .await
        .ok()?;
    let mut delays = Vec::with_capacity(expected);
    let mut subscribed = false;
    let mut last = None;
    loop {
        let frame = match actix_rt::time::timeout(IDLE_END, ws.next()).await {
            Ok(Some(Ok(f))) => f,
            _ => break,
        };
        match frame {
            awc::ws::Frame::Text(bytes) => {
                if !subscribed {
                    let v: Value = serde_json::from_slice(&bytes).ok()?;
                    if v["op"] == "subscribed" {
                        subscribed = true;
                        let _ = ready.send(());
                    }
                    continue;
                }
                // Only the event's `at` is read: a full parse of every frame would make this
                // client, on the server's cores, the slowest part of what is measured.
                let Some(at) =
                    field_at(&bytes).and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                else {
                    continue;
                };
                delays.push(chrono::Utc::now().timestamp_millis() - at.timestamp_millis());
                last = Some(Instant::now());
                if delays.len() >= expected {
                    break;
                }
            }
            awc::ws::Frame::Ping(b) => {
                let _ = ws.send(awc::ws::Message::Pong(b)).await;
            }
            _ => {}
        }
    }
    Some(Received { delays, last })
}

/// The top-level `"at"` string of an event frame (events put it before any nested object).
fn field_at(frame: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"at\":\"";
    let start = frame.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = frame[start..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&frame[start..start + len]).ok()
}
