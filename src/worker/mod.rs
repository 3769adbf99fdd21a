//! `steward worker`: a remote execution unit (SPEC §5). It connects to a server at
//! `/api/v1/units/connect`, registers its name, task types, capacity and labels, runs the jobs
//! it is given with the built-in task types (on the same in-process [`LocalUnit`] the server
//! uses) and beats. When the connection drops the work goes on; the worker reconnects with
//! backoff and lists the jobs it still holds, and the server says which of them moved
//! elsewhere meanwhile (those are dropped). `drain` makes it exit once its work is done;
//! `deregistered` stops everything.

mod relay;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use awc::ws::{Frame, Message as WsMessage};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::actors::units::LocalUnit;
use crate::units::wire::{FromWorker, ToWorker};
use crate::units::{Registry, UnitEnv};
use relay::{Attached, CancelAll, Control, Detached, HeldJobs, Relay, Track};

/// The first and the longest wait between reconnection attempts.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long the server may take to answer a registration.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// What `steward worker` was told.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// The server's base URL (`http://host:port`).
    pub server: String,
    pub token: Option<String>,
    pub name: String,
    /// Task types to run (empty: every built-in type).
    pub types: Vec<String>,
    pub capacity: usize,
    pub labels: BTreeMap<String, String>,
    /// Where the worker's files live (the root task paths are confined to).
    pub data_dir: PathBuf,
    pub kill_grace: Duration,
    pub python: PathBuf,
}

/// Why a connection ended.
enum End {
    /// Lost: reconnect.
    Lost(String),
    /// Drained or removed: exit.
    Done(String),
}

/// Parses `k=v,k2=v2`.
pub fn parse_labels(raw: &str) -> Result<BTreeMap<String, String>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("label '{pair}' is not key=value"))?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Runs the worker until it is drained or deregistered. Must run inside an actix `System`.
pub async fn run(opts: WorkerOptions) -> Result<(), String> {
    let builtin = Registry::builtin();
    let types: Vec<String> = if opts.types.is_empty() {
        builtin.types().map(String::from).collect()
    } else {
        opts.types.clone()
    };
    if let Some(unknown) = types.iter().find(|t| builtin.get(t).is_none()) {
        let known: Vec<&str> = builtin.types().collect();
        return Err(format!(
            "unknown task type '{unknown}' (this worker runs: {})",
            known.join(", ")
        ));
    }
    if opts.capacity == 0 {
        return Err("--capacity must be at least 1".into());
    }
    std::fs::create_dir_all(&opts.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", opts.data_dir.display()))?;
    let root = std::fs::canonicalize(&opts.data_dir).unwrap_or(opts.data_dir.clone());
    let env = Arc::new(UnitEnv {
        data_roots: vec![root.clone()],
        kill_grace: opts.kill_grace,
        python: opts.python.clone(),
        python_module_dirs: vec![root],
    });
    let unit = LocalUnit::new(Arc::new(builtin), env).start();
    let relay = Relay::new(unit).start();
    let mut backoff = MIN_BACKOFF;
    loop {
        let (end, registered) = session(&opts, &types, &relay).await;
        relay.do_send(Detached);
        match end {
            End::Done(why) => {
                log::info!("{why}; exiting");
                return Ok(());
            }
            End::Lost(why) => log::warn!("connection to {} lost: {why}", opts.server),
        }
        if registered {
            backoff = MIN_BACKOFF;
        }
        let jitter = rand::random::<f64>() * 0.5 + 0.75;
        tokio::time::sleep(backoff.mul_f64(jitter)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn connect_url(server: &str) -> String {
    let base = server.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    };
    format!("{ws}/api/v1/units/connect")
}

/// One connection: register, then relay until it ends. Says whether it got registered.
async fn session(opts: &WorkerOptions, types: &[String], relay: &Addr<Relay>) -> (End, bool) {
    let url = connect_url(&opts.server);
    let mut req = awc::Client::builder()
        .timeout(REGISTER_TIMEOUT)
        .finish()
        .ws(&url)
        .max_frame_size(64 * 1024 * 1024);
    if let Some(t) = &opts.token {
        req = req.bearer_auth(t);
    }
    let mut conn = match req.connect().await {
        Ok((_, conn)) => conn,
        Err(e) => return (End::Lost(format!("cannot connect to {url}: {e}")), false),
    };
    let jobs = relay.send(HeldJobs).await.unwrap_or_default();
    let register = FromWorker::Register {
        name: opts.name.clone(),
        task_types: types.to_vec(),
        capacity: opts.capacity,
        labels: opts.labels.clone(),
        jobs,
        unit_type: Some("worker".into()),
    };
    let Ok(text) = serde_json::to_string(&register) else {
        return (End::Lost("cannot encode the registration".into()), false);
    };
    if let Err(e) = conn.send(WsMessage::Text(text.into())).await {
        return (End::Lost(format!("cannot register: {e}")), false);
    }
    // The registration answer.
    let answer = tokio::time::timeout(REGISTER_TIMEOUT, async {
        loop {
            match conn.next().await {
                Some(Ok(Frame::Text(bytes))) => {
                    return serde_json::from_slice::<ToWorker>(&bytes).ok()
                }
                Some(Ok(Frame::Ping(b))) => {
                    let _ = conn.send(WsMessage::Pong(b)).await;
                }
                Some(Ok(Frame::Pong(_))) => {}
                _ => return None,
            }
        }
    })
    .await;
    let (unit_id, heartbeat_secs, drop) = match answer {
        Ok(Some(ToWorker::Registered {
            unit_id,
            heartbeat_secs,
            drop,
        })) => (unit_id, heartbeat_secs, drop),
        Ok(Some(ToWorker::Error { message })) => {
            return (End::Lost(format!("registration refused: {message}")), false)
        }
        _ => return (End::Lost("no registration answer".into()), false),
    };
    log::info!(
        "registered with {} as unit {unit_id} ({} task type(s), capacity {})",
        opts.server,
        types.len(),
        opts.capacity
    );
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    relay.do_send(Attached { tx, drop });
    let mut beat = tokio::time::interval(Duration::from_secs_f64(heartbeat_secs.max(0.1)));
    let mut draining = false;
    loop {
        tokio::select! {
            frame = conn.next() => match frame {
                Some(Ok(Frame::Text(bytes))) => match serde_json::from_slice::<ToWorker>(&bytes) {
                    Ok(ToWorker::Execute(e)) => relay.do_send(Track(e.into())),
                    Ok(ToWorker::Drain) => {
                        log::info!("draining: no new work; exiting when the running work is done");
                        draining = true;
                    }
                    Ok(ToWorker::Deregistered { message }) => {
                        relay.do_send(CancelAll);
                        return (End::Done(format!("deregistered by the server: {message}")), true);
                    }
                    Ok(ToWorker::Error { message }) => log::warn!("server: {message}"),
                    Ok(ToWorker::Registered { .. }) => {}
                    Ok(control) => relay.do_send(Control(control)),
                    Err(e) => log::warn!("cannot read a server message: {e}"),
                },
                Some(Ok(Frame::Ping(b))) => {
                    if conn.send(WsMessage::Pong(b)).await.is_err() {
                        return (End::Lost("cannot answer a ping".into()), true);
                    }
                }
                Some(Ok(Frame::Close(reason))) => {
                    return (End::Lost(format!("closed by the server ({reason:?})")), true)
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return (End::Lost(e.to_string()), true),
                None => return (End::Lost("the server closed the connection".into()), true),
            },
            out = rx.recv() => {
                let Some(text) = out else { continue };
                if let Err(e) = conn.send(WsMessage::Text(text.into())).await {
                    return (End::Lost(format!("cannot send: {e}")), true);
                }
            }
            _ = beat.tick() => {
                let load = relay.send(HeldJobs).await.map(|j| j.len()).unwrap_or(0);
                if draining && load == 0 {
                    // The last final statuses may still be queued.
                    while let Ok(text) = rx.try_recv() {
                        let _ = conn.send(WsMessage::Text(text.into())).await;
                    }
                    let _ = conn.close().await;
                    return (End::Done("drained: all work is done".into()), true);
                }
                let Ok(text) = serde_json::to_string(&FromWorker::Heartbeat { load: Some(load) }) else {
                    continue;
                };
                if let Err(e) = conn.send(WsMessage::Text(text.into())).await {
                    return (End::Lost(format!("cannot send a heartbeat: {e}")), true);
                }
            }
        }
    }
}
