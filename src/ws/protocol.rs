//! The client side of the socket protocol: parsing `subscribe` / `unsubscribe` / `ping`,
//! and the replies that describe a subscription and its snapshot.

use actix_web::web;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::dto::TaskView;
use crate::api::AppState;
use crate::domain::{TaskId, TaskStatus};
use crate::error::ApiResult;
use crate::events::{EventFilter, KINDS};
use crate::store::tasks::{self as q, TaskQuery};

/// What a client may ask.
#[derive(Debug, PartialEq)]
pub enum ClientOp {
    Subscribe {
        filter: EventFilter,
        after_seq: Option<u64>,
        /// `"snapshot": false` skips the snapshot (a client that keeps its own state).
        snapshot: bool,
    },
    Unsubscribe,
    Ping,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeWire {
    #[serde(rename = "op")]
    _op: String,
    tasks: Option<Vec<String>>,
    batches: Option<Vec<String>>,
    types: Option<Vec<String>>,
    events: Option<Vec<String>>,
    after_seq: Option<u64>,
    snapshot: Option<bool>,
}

impl ClientOp {
    /// Parses a text frame; the error is a sentence for the client.
    pub fn parse(text: &str) -> Result<ClientOp, String> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| format!("the message is not JSON: {e}"))?;
        let op = v
            .get("op")
            .and_then(Value::as_str)
            .ok_or("the message needs an \"op\": subscribe, unsubscribe or ping")?;
        match op {
            "ping" => Ok(ClientOp::Ping),
            "unsubscribe" => Ok(ClientOp::Unsubscribe),
            "subscribe" => {
                let w: SubscribeWire =
                    serde_json::from_value(v).map_err(|e| format!("bad subscribe message: {e}"))?;
                let tasks = match w.tasks {
                    None => None,
                    Some(ids) => Some(
                        ids.iter()
                            .map(|s| {
                                s.parse::<TaskId>()
                                    .map_err(|_| format!("tasks: '{s}' is not a task id"))
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                    ),
                };
                if let Some(kinds) = &w.events {
                    if let Some(bad) = kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
                        return Err(format!(
                            "events: '{bad}' is not one of {}",
                            KINDS.join(", ")
                        ));
                    }
                }
                Ok(ClientOp::Subscribe {
                    filter: EventFilter {
                        tasks,
                        batches: w.batches,
                        types: w.types,
                        kinds: w.events,
                    },
                    after_seq: w.after_seq,
                    snapshot: w.snapshot.unwrap_or(true),
                })
            }
            other => Err(format!(
                "unknown op '{other}': use subscribe, unsubscribe or ping"
            )),
        }
    }
}

/// The `subscribed` reply: the filter in force and the `seq` live events start after.
pub fn subscribed(filter: &EventFilter, after_seq: Option<u64>, boundary: u64) -> Value {
    json!({
        "op": "subscribed",
        "tasks": filter.tasks.as_ref().map(|t| t.iter().map(|i| i.to_string()).collect::<Vec<_>>()),
        "batches": filter.batches,
        "types": filter.types,
        "events": filter.kinds,
        "after_seq": after_seq,
        "live_after_seq": boundary,
    })
}

/// The live (pending, running, paused) tasks the filter covers, running and paused ones as
/// their actors hold them now.
pub async fn snapshot(
    state: &web::Data<AppState>,
    filter: &EventFilter,
    limit: i64,
) -> ApiResult<Vec<TaskView>> {
    let query = TaskQuery {
        statuses: vec![TaskStatus::Pending, TaskStatus::Running, TaskStatus::Paused],
        ids: filter.tasks.clone().unwrap_or_default(),
        task_type: match filter.types.as_deref() {
            Some([one]) => Some(one.clone()),
            _ => None,
        },
        batch_id: match filter.batches.as_deref() {
            Some([one]) => Some(one.clone()),
            _ => None,
        },
        limit,
        ..TaskQuery::default()
    };
    if filter.tasks.as_ref().is_some_and(|t| t.is_empty()) {
        return Ok(Vec::new());
    }
    let (stored, _) = state.shared.store.read(move |c| q::list(c, &query)).await?;
    let mut tasks = Vec::with_capacity(stored.len());
    for t in stored {
        let keep = filter
            .batches
            .as_ref()
            .is_none_or(|b| t.batch_id.as_ref().is_some_and(|id| b.contains(id)))
            && filter
                .types
                .as_ref()
                .is_none_or(|ty| ty.contains(&t.task_type));
        if !keep {
            continue;
        }
        tasks.push(t);
    }
    // `views` lays the hot copies of active tasks over the stored rows.
    state.views(tasks).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscribe_with_every_filter_parses() {
        let op = ClientOp::parse(
            r#"{"op":"subscribe","tasks":["0193a000-0000-7000-8000-000000000001"],"batches":["b"],"types":["sleep"],"events":["status"],"after_seq":7}"#,
        )
        .unwrap();
        let ClientOp::Subscribe {
            filter, after_seq, ..
        } = op
        else {
            panic!("not a subscribe");
        };
        assert_eq!(after_seq, Some(7));
        assert_eq!(filter.kinds, Some(vec!["status".to_string()]));
        assert_eq!(filter.batches, Some(vec!["b".to_string()]));
    }

    #[test]
    fn bad_messages_are_refused_with_a_reason() {
        for bad in [
            "nope",
            r#"{"op":"fly"}"#,
            r#"{"op":"subscribe","tasks":["x"]}"#,
            r#"{"op":"subscribe","events":["weather"]}"#,
            r#"{"op":"subscribe","colour":"red"}"#,
            r#"{"op":"subscribe","after_seq":-1}"#,
        ] {
            assert!(ClientOp::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
