//! A small WebSocket client for the tests: JSON in, JSON out, with deadlines.

use std::time::{Duration, Instant};

use actix_codec::Framed;
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use crate::helpers::TestApp;

pub struct Ws {
    conn: Framed<BoxedSocket, Codec>,
}

impl Ws {
    pub async fn connect(app: &TestApp) -> Ws {
        Self::connect_path(app, "/api/v1/ws").await
    }

    /// Connects to another WebSocket route of the server.
    pub async fn connect_path(app: &TestApp, path: &str) -> Ws {
        let url = app.url(path).replacen("http://", "ws://", 1);
        let (res, conn) = awc::Client::new()
            .ws(url)
            .max_frame_size(16 * 1024 * 1024)
            .connect()
            .await
            .expect("WebSocket connects");
        assert_eq!(res.status().as_u16(), 101);
        Ws { conn }
    }

    /// Opens `path` (with its query) with a handshake the caller adjusts (headers, origin);
    /// the handshake's HTTP status when the server refuses it.
    pub async fn open(
        app: &TestApp,
        path: &str,
        adjust: impl FnOnce(awc::ws::WebsocketsRequest) -> awc::ws::WebsocketsRequest,
    ) -> Result<Ws, u16> {
        let url = app.url(path).replacen("http://", "ws://", 1);
        match adjust(awc::Client::new().ws(url)).connect().await {
            Ok((res, conn)) => {
                assert_eq!(res.status().as_u16(), 101);
                Ok(Ws { conn })
            }
            Err(awc::error::WsClientError::InvalidResponseStatus(status)) => Err(status.as_u16()),
            Err(e) => panic!("WebSocket handshake failed: {e}"),
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.conn
            .send(Message::Text(text.to_string().into()))
            .await
            .expect("send");
    }

    pub async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    /// The next JSON text frame, or `None` if there is none within `secs`.
    pub async fn try_next(&mut self, secs: f64) -> Option<Value> {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = actix_rt::time::timeout(left, self.conn.next()).await.ok()?;
            match frame {
                Some(Ok(Frame::Text(bytes))) => {
                    return Some(serde_json::from_slice(&bytes).expect("a JSON frame"))
                }
                Some(Ok(Frame::Ping(b))) => {
                    let _ = self.conn.send(Message::Pong(b)).await;
                }
                Some(Ok(Frame::Close(_))) | None => return None,
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("WebSocket error: {e}"),
            }
        }
    }

    pub async fn next(&mut self, secs: f64) -> Value {
        self.try_next(secs)
            .await
            .unwrap_or_else(|| panic!("no frame within {secs}s"))
    }

    /// Frames up to and including the first one `pred` accepts.
    pub async fn until(&mut self, secs: f64, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let mut seen = Vec::new();
        loop {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .as_secs_f64();
            let Some(v) = self.try_next(left).await else {
                panic!("condition not met within {secs}s; frames: {seen:?}");
            };
            let done = pred(&v);
            seen.push(v);
            if done {
                return seen;
            }
        }
    }

    /// Subscribes and returns the snapshot's tasks (after checking `subscribed`).
    pub async fn subscribe(&mut self, mut request: Value) -> Vec<Value> {
        request["op"] = json!("subscribe");
        self.send(request).await;
        let ack = self.next(10.0).await;
        assert_eq!(ack["op"], "subscribed", "{ack}");
        let snap = self.next(10.0).await;
        assert_eq!(snap["op"], "snapshot", "{snap}");
        snap["tasks"].as_array().cloned().unwrap_or_default()
    }
}

/// Whether a frame is the status event of `task` reaching `to`.
pub fn is_status(v: &Value, task: &str, to: &str) -> bool {
    v["event"] == "status" && v["task_id"] == task && v["to"] == to
}
