//! WebSocket subscriptions at `/api/v1/ws` (SPEC §7). Each connection is two local tasks:
//! the *session* reads the client's messages and the bus, filters, and queues frames in a
//! bounded [`outbox::Outbox`]; the *writer* takes frames from the outbox into the socket.
//! A client that does not read only ever stalls its own writer: its progress is coalesced,
//! and when its other events overflow the outbox it is sent `lagged` and disconnected.

pub mod outbox;
mod protocol;
pub mod units;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::Notify;

use crate::api::AppState;
use crate::events::{Event, EventFilter};
use outbox::{Out, Outbox};
use protocol::ClientOp;

/// How often the server pings.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// A peer silent this long is dropped.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Stored events replayed per read.
const REPLAY_PAGE: i64 = 500;
/// How long a replay waits for the event log to catch up with the live stream.
const REPLAY_CATCH_UP: Duration = Duration::from_secs(5);
/// The most live tasks a snapshot lists.
const SNAPSHOT_LIMIT: i64 = 1000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws", web::get().to(connect));
}

/// `GET /api/v1/ws`: upgrades and starts the session.
async fn connect(
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
    let shared = Rc::new(Shared {
        outbox: RefCell::new(Outbox::default()),
        ready: Notify::new(),
        space: Notify::new(),
        closing: Cell::new(false),
    });
    let writer = actix_rt::spawn(write_loop(session, shared.clone()));
    actix_rt::spawn(async move {
        let metrics = state.metrics.clone();
        metrics.ws_subscribers.inc();
        session_loop(state, stream, shared.clone()).await;
        metrics.ws_subscribers.dec();
        shared.closing.set(true);
        shared.ready.notify_one();
        // Give the writer a moment to send the last frames, then stop it even if the peer
        // never reads them.
        let abort = writer.abort_handle();
        if tokio::time::timeout(Duration::from_secs(1), writer)
            .await
            .is_err()
        {
            abort.abort();
        }
    });
    Ok(response)
}

/// What the two halves of a connection share.
struct Shared {
    outbox: RefCell<Outbox>,
    /// Frames are waiting.
    ready: Notify,
    /// The writer took a frame.
    space: Notify,
    /// The session ended: the writer sends what is queued, then closes.
    closing: Cell<bool>,
}

impl Shared {
    fn control(&self, v: serde_json::Value) {
        self.outbox
            .borrow_mut()
            .push_control(Out::Control(v.to_string()));
        self.ready.notify_one();
    }

    fn error(&self, message: impl std::fmt::Display) {
        self.control(json!({"op": "error", "message": message.to_string()}));
    }

    /// Tells the client it fell behind (with where to resume) and ends the session.
    fn lagged(&self) {
        let resume = {
            let mut o = self.outbox.borrow_mut();
            o.clear();
            o.last_sent_seq
        };
        self.control(json!({
            "op": "lagged",
            "message": "this subscriber fell behind; reconnect with after_seq to catch up",
            "after_seq": resume,
        }));
    }
}

async fn write_loop(mut session: Session, shared: Rc<Shared>) {
    loop {
        let next = shared.outbox.borrow_mut().pop();
        let Some(out) = next else {
            if shared.closing.get() {
                break;
            }
            shared.ready.notified().await;
            continue;
        };
        shared.space.notify_waiters();
        let sent = match out {
            Out::Control(text) => session.text(text).await,
            Out::Event { json, .. } => session.text(json.to_string()).await,
            Out::Ping => session.ping(b"").await,
            Out::Pong(bytes) => session.pong(&bytes).await,
        };
        if sent.is_err() {
            return;
        }
    }
    let _ = session
        .close(Some(CloseReason {
            code: CloseCode::Normal,
            description: None,
        }))
        .await;
}

/// A live subscription.
struct Subscription {
    rx: broadcast::Receiver<Arc<Event>>,
    filter: EventFilter,
}

async fn next_event(sub: &mut Option<Subscription>) -> Result<Arc<Event>, RecvError> {
    match sub {
        Some(s) => s.rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn session_loop(state: web::Data<AppState>, mut stream: MessageStream, shared: Rc<Shared>) {
    let mut sub: Option<Subscription> = None;
    let mut last_heard = Instant::now();
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    loop {
        tokio::select! {
            msg = stream.next() => {
                last_heard = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        if !on_text(&state, &shared, &mut sub, &text).await {
                            return;
                        }
                    }
                    Some(Ok(Message::Ping(bytes))) => {
                        shared.outbox.borrow_mut().push_control(Out::Pong(bytes.to_vec()));
                        shared.ready.notify_one();
                    }
                    Some(Ok(Message::Binary(_))) => shared.error("send JSON text frames"),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(_)) => {}
                }
            }
            ev = next_event(&mut sub) => match ev {
                Ok(event) => {
                    let Some(s) = sub.as_ref() else { continue };
                    if s.filter.matches(&event.body) {
                        let pushed = shared.outbox.borrow_mut().push_event(&event);
                        if pushed.is_err() {
                            return shared.lagged();
                        }
                        shared.ready.notify_one();
                    }
                }
                Err(RecvError::Lagged(_)) => return shared.lagged(),
                Err(RecvError::Closed) => return,
            },
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > CLIENT_TIMEOUT {
                    log::debug!("ws: dropping a silent peer");
                    return;
                }
                shared.outbox.borrow_mut().push_control(Out::Ping);
                shared.ready.notify_one();
            }
        }
    }
}

/// Handles one client message; false ends the session.
async fn on_text(
    state: &web::Data<AppState>,
    shared: &Rc<Shared>,
    sub: &mut Option<Subscription>,
    text: &str,
) -> bool {
    let op = match ClientOp::parse(text) {
        Ok(op) => op,
        Err(message) => {
            shared.error(message);
            return true;
        }
    };
    match op {
        ClientOp::Ping => shared.control(json!({"op": "pong"})),
        ClientOp::Unsubscribe => {
            *sub = None;
            shared.outbox.borrow_mut().clear();
            shared.control(json!({"op": "unsubscribed"}));
        }
        ClientOp::Subscribe {
            filter,
            after_seq,
            snapshot,
        } => {
            // Subscribe first, so that nothing published from here on is missed; the
            // replay covers what came before, up to exactly this point.
            let (rx, boundary) = state.shared.events.subscribe_at();
            *sub = None;
            shared.outbox.borrow_mut().clear();
            shared.control(protocol::subscribed(&filter, after_seq, boundary));
            if snapshot {
                match protocol::snapshot(state, &filter, SNAPSHOT_LIMIT).await {
                    Ok(tasks) => shared.control(json!({"op": "snapshot", "tasks": tasks})),
                    Err(e) => shared.error(format!("no snapshot: {e}")),
                }
            }
            if let Some(after) = after_seq {
                if !replay(state, shared, &filter, after, boundary).await {
                    return false;
                }
            }
            *sub = Some(Subscription { rx, filter });
        }
    }
    true
}

/// Queues the stored events in `(after, boundary]` that pass the filter, a page at a time,
/// waiting for the writer to make room between pages. False when the client lagged.
async fn replay(
    state: &web::Data<AppState>,
    shared: &Rc<Shared>,
    filter: &EventFilter,
    after: u64,
    boundary: u64,
) -> bool {
    let bus = &state.shared.events;
    if !bus.persisted_up_to(boundary, REPLAY_CATCH_UP).await {
        shared.error("the event log is behind; the replay may be incomplete");
    }
    let mut from = after;
    while from < boundary {
        let f = filter.clone();
        let page = state
            .shared
            .store
            .read(move |c| crate::store::events::after(c, from, Some(boundary), &f, REPLAY_PAGE))
            .await;
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                log::error!("ws replay: {e}");
                shared.error("the replay failed; the server log has the details");
                return true;
            }
        };
        let Some(last) = page.last().map(|(s, _)| *s) else {
            break;
        };
        for (seq, body) in page {
            // Stored progress is replayed as it was: coalescing applies to live traffic.
            if shared
                .outbox
                .borrow_mut()
                .push(seq, None, body.into())
                .is_err()
            {
                shared.lagged();
                return false;
            }
        }
        shared.ready.notify_one();
        from = last;
        let waiting = Instant::now();
        while shared.outbox.borrow().backlog() > outbox::OUTBOX_LIMIT / 2 {
            if waiting.elapsed() > CLIENT_TIMEOUT {
                shared.lagged();
                return false;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), shared.space.notified()).await;
        }
    }
    true
}
