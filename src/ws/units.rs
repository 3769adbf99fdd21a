//! Worker connections at `/api/v1/units/connect` (SPEC §5). The first frame must be the
//! worker's `register`; the UnitManager answers with the unit id, the heartbeat period and the
//! reported jobs to drop. From then on the connection relays: the worker's frames go to the
//! unit's [`RemoteUnit`] proxy, and the frames the proxy queues go to the worker. When the
//! proxy lets go of the connection (the unit went offline or was removed) it closes.

use std::time::Duration;

use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::actors::remote_unit::{Detach, FromLink, RemoteUnit};
use crate::actors::unit_manager::{ConnectWorker, UnitSpec};
use crate::api::AppState;
use crate::units::wire::{FromWorker, ToWorker};

/// How long a new connection may take to register.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames queued for a worker before the connection counts as congested.
const OUTBOX: usize = 4096;
/// How often the server pings at the WebSocket level.
const PING_EVERY: Duration = Duration::from_secs(10);

/// `GET /api/v1/units/connect`: upgrades and runs the connection.
pub async fn connect(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|e| {
        crate::error::ApiError::new(
            crate::error::ErrorCode::Validation,
            format!("this route takes a WebSocket upgrade: {e}"),
        )
    })?;
    actix_rt::spawn(run(state, session, stream));
    Ok(response)
}

async fn send(session: &mut Session, msg: &ToWorker) -> bool {
    match serde_json::to_string(msg) {
        Ok(text) => session.text(text).await.is_ok(),
        Err(_) => false,
    }
}

async fn close(mut session: Session, message: String) {
    let _ = send(&mut session, &ToWorker::Error { message }).await;
    let _ = session
        .close(Some(CloseReason {
            code: CloseCode::Policy,
            description: None,
        }))
        .await;
}

/// The worker's first frame, which must be `register`.
async fn registration(stream: &mut MessageStream) -> Result<FromWorker, String> {
    let first = tokio::time::timeout(REGISTER_TIMEOUT, async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(text))) => return Some(text),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => return None,
            }
        }
    })
    .await
    .map_err(|_| "no register message within 10 s".to_string())?
    .ok_or_else(|| "the connection closed before registering".to_string())?;
    let msg: FromWorker =
        serde_json::from_str(&first).map_err(|e| format!("not a register message: {e}"))?;
    match msg {
        FromWorker::Register { .. } => Ok(msg),
        _ => Err("the first message must be {\"op\": \"register\", ...}".into()),
    }
}

async fn run(state: web::Data<AppState>, mut session: Session, mut stream: MessageStream) {
    let register = match registration(&mut stream).await {
        Ok(r) => r,
        Err(e) => return close(session, e).await,
    };
    let FromWorker::Register {
        name,
        task_types,
        capacity,
        labels,
        jobs,
        unit_type,
    } = register
    else {
        return;
    };
    let spec = UnitSpec {
        name,
        unit_type: unit_type.or_else(|| Some("worker".into())),
        endpoint: None,
        config: serde_json::json!({}),
        task_types,
        labels,
        capacity,
    };
    if let Err(e) = crate::api::units::check_spec(&spec) {
        return close(session, e.message).await;
    }
    let (tx, mut rx) = mpsc::channel::<String>(OUTBOX);
    let connected = match state
        .shared
        .units
        .send(ConnectWorker { spec, jobs, tx })
        .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return close(session, e.message).await,
        Err(e) => return close(session, format!("the server is shutting down: {e}")).await,
    };
    let registered = ToWorker::Registered {
        unit_id: connected.unit_id.clone(),
        heartbeat_secs: connected.heartbeat_secs,
        drop: connected.drop,
    };
    if !send(&mut session, &registered).await {
        connected.proxy.do_send(Detach {
            conn: connected.conn,
        });
        return;
    }
    relay(
        &mut session,
        &mut stream,
        &mut rx,
        &connected.proxy,
        connected.conn,
    )
    .await;
    connected.proxy.do_send(Detach {
        conn: connected.conn,
    });
    let _ = session.close(None).await;
}

/// Relays frames both ways until either side lets go.
async fn relay(
    session: &mut Session,
    stream: &mut MessageStream,
    rx: &mut mpsc::Receiver<String>,
    proxy: &Addr<RemoteUnit>,
    conn: u64,
) {
    let mut ping = tokio::time::interval(PING_EVERY);
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<FromWorker>(&text) {
                    Ok(msg) => proxy.do_send(FromLink { conn, msg }),
                    Err(e) => {
                        let reply = ToWorker::Error { message: format!("cannot read that message: {e}") };
                        if !send(session, &reply).await {
                            return;
                        }
                    }
                },
                Some(Ok(Message::Ping(bytes))) => {
                    if session.pong(&bytes).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            out = rx.recv() => match out {
                Some(text) => {
                    if session.text(text).await.is_err() {
                        return;
                    }
                }
                // The proxy let go of this connection.
                None => return,
            },
            _ = ping.tick() => {
                if session.ping(b"").await.is_err() {
                    return;
                }
            }
        }
    }
}
