//! `GET /events?after_seq=&limit=`: the event stream over HTTP, from the event log, in `seq`
//! order (what a WebSocket `subscribe` with `after_seq` replays).

use std::collections::HashMap;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::Value;

use super::fields::Params;
use super::AppState;
use crate::error::{ApiError, ApiResult};
use crate::events::{EventFilter, KINDS};
use crate::store::events as ev;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;
/// How long a read waits for events already published to reach the log.
const CATCH_UP: Duration = Duration::from_secs(2);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/events", web::get().to(list));
}

async fn list(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let p = Params(query.into_inner());
    let after = p.int("after_seq", 0, i64::MAX)?.unwrap_or(0) as u64;
    let limit = p.int("limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT);
    let filter = EventFilter {
        tasks: match p.str("task_id") {
            None => None,
            Some(raw) => Some(vec![raw.parse().map_err(|_| {
                ApiError::field("task_id", format!("'{raw}' is not a task id"))
            })?]),
        },
        batches: p.str("batch_id").map(|b| vec![b.to_string()]),
        types: p.str("type").map(|t| vec![t.to_string()]),
        kinds: match p.str("event") {
            None => None,
            Some(k) if KINDS.contains(&k) => Some(vec![k.to_string()]),
            Some(k) => {
                return Err(ApiError::field(
                    "event",
                    format!("'{k}' is not one of {}", KINDS.join(", ")),
                ))
            }
        },
    };
    // Answer with everything published before this request, even what the log has not
    // yet written.
    let bus = &state.shared.events;
    let published = bus.last_seq();
    bus.persisted_up_to(published, CATCH_UP).await;
    let rows = state
        .shared
        .store
        .read(move |c| ev::after(c, after, Some(published), &filter, limit))
        .await?;
    let last_seq = rows.last().map(|(s, _)| *s).unwrap_or(after);
    let mut items: Vec<Value> = Vec::with_capacity(rows.len());
    for (seq, body) in rows {
        match serde_json::from_str(&body) {
            Ok(raw) => items.push(raw),
            Err(e) => log::error!("event {seq} in the log is not JSON: {e}"),
        }
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"items": items, "last_seq": last_seq})))
}
