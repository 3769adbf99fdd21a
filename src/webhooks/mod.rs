//! Webhooks (SPEC §7): subscriptions that receive events by HTTP `POST`, and the per-task
//! `callback_url` that receives its task's status events. A dispatcher listens to the bus,
//! records one delivery row per matching receiver and runs each delivery on its own (see
//! [`deliver`]); the publisher never waits on any of it.

pub mod deliver;
pub mod target;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::Config;
use crate::domain::{now_ms, rfc3339, Millis, TaskId};
use crate::events::{Event, EventBody, EventBus, EventFilter};
use crate::store::webhooks::{self as q, DeliveryRow, WebhookRow};
use crate::store::{Store, StoreError};

/// Finished deliveries are kept this long.
const DELIVERY_RETENTION_MS: Millis = 7 * 24 * 3600 * 1000;

/// A webhook subscription.
#[derive(Clone, Debug)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub filter: EventFilter,
    pub secret: Option<String>,
    pub created_at: Millis,
}

impl Webhook {
    /// Its public shape: the secret never leaves the server.
    pub fn view(&self) -> Value {
        json!({
            "id": self.id,
            "url": self.url,
            "events": self.filter.kinds,
            "tasks": self.filter.tasks.as_ref().map(|t| t.iter().map(|i| i.to_string()).collect::<Vec<_>>()),
            "batches": self.filter.batches,
            "types": self.filter.types,
            "has_secret": self.secret.is_some(),
            "created_at": rfc3339(self.created_at),
        })
    }

    fn to_row(&self) -> WebhookRow {
        let list =
            |v: &Option<Vec<String>>| serde_json::to_string(v).unwrap_or_else(|_| "null".into());
        WebhookRow {
            id: self.id.clone(),
            url: self.url.clone(),
            events: list(&self.filter.kinds),
            tasks: list(
                &self
                    .filter
                    .tasks
                    .as_ref()
                    .map(|t| t.iter().map(|i| i.to_string()).collect()),
            ),
            batches: list(&self.filter.batches),
            types: list(&self.filter.types),
            secret: self.secret.clone(),
            created_at: self.created_at,
        }
    }
}

impl TryFrom<WebhookRow> for Webhook {
    type Error = StoreError;
    fn try_from(r: WebhookRow) -> Result<Self, StoreError> {
        let list = |s: &str| -> Result<Option<Vec<String>>, StoreError> {
            serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("webhook list: {e}")))
        };
        let tasks = match list(&r.tasks)? {
            None => None,
            Some(ids) => Some(
                ids.iter()
                    .map(|s| {
                        s.parse()
                            .map_err(|e| StoreError::Corrupt(format!("id: {e}")))
                    })
                    .collect::<Result<Vec<TaskId>, _>>()?,
            ),
        };
        Ok(Webhook {
            filter: EventFilter {
                tasks,
                batches: list(&r.batches)?,
                types: list(&r.types)?,
                kinds: list(&r.events)?,
            },
            id: r.id,
            url: r.url,
            secret: r.secret,
            created_at: r.created_at,
        })
    }
}

/// The webhook service; cheap to clone.
#[derive(Clone)]
pub struct Hooks {
    store: Store,
    config: Arc<RwLock<Arc<Config>>>,
    /// Every subscription, read by the dispatcher on each event.
    hooks: Arc<RwLock<Vec<Webhook>>>,
}

impl Hooks {
    /// Loads the subscriptions, resumes the deliveries a restart interrupted and starts the
    /// dispatcher. Must run inside an actix `System`.
    pub async fn start(
        store: Store,
        bus: &EventBus,
        config: Arc<RwLock<Arc<Config>>>,
    ) -> Result<Hooks, StoreError> {
        let rows = store.read(q::webhooks).await?;
        let list = rows
            .into_iter()
            .map(Webhook::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let hooks = Hooks {
            store: store.clone(),
            config,
            hooks: Arc::new(RwLock::new(list)),
        };
        let pending = store.read(q::pending_deliveries).await?;
        if !pending.is_empty() {
            log::info!("resuming {} webhook deliveries", pending.len());
        }
        for row in pending {
            actix_rt::spawn(deliver::run(hooks.clone(), row));
        }
        actix_rt::spawn(dispatch(hooks.clone(), bus.attach()));
        let pruner = store.clone();
        actix_rt::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tick.tick().await;
                let cutoff = now_ms() - DELIVERY_RETENTION_MS;
                if let Err(e) = pruner.write(move |c| q::prune_deliveries(c, cutoff)).await {
                    log::warn!("webhook deliveries: prune failed: {e}");
                }
            }
        });
        Ok(hooks)
    }

    pub fn list(&self) -> Vec<Webhook> {
        self.hooks.read().map(|h| h.clone()).unwrap_or_default()
    }

    pub fn get(&self, id: &str) -> Option<Webhook> {
        self.list().into_iter().find(|h| h.id == id)
    }

    /// The allow and deny lists in force (they may change at run time).
    pub fn host_rules(&self) -> target::HostRules {
        match self.config.read() {
            Ok(c) => target::HostRules::from_config(&c),
            Err(p) => target::HostRules::from_config(&p.into_inner()),
        }
    }

    fn retry_policy(&self) -> (u32, f64) {
        match self.config.read() {
            Ok(c) => (c.webhook_max_attempts, c.webhook_backoff_secs),
            Err(p) => {
                let c = p.into_inner();
                (c.webhook_max_attempts, c.webhook_backoff_secs)
            }
        }
    }

    pub async fn create(&self, hook: Webhook) -> Result<Webhook, StoreError> {
        let row = hook.to_row();
        self.store
            .write(move |c| q::insert_webhook(c, &row))
            .await?;
        if let Ok(mut h) = self.hooks.write() {
            h.push(hook.clone());
        }
        Ok(hook)
    }

    pub async fn delete(&self, id: String) -> Result<bool, StoreError> {
        let key = id.clone();
        let gone = self
            .store
            .write(move |c| q::delete_webhook(c, &key))
            .await?;
        if let Ok(mut h) = self.hooks.write() {
            h.retain(|w| w.id != id);
        }
        Ok(gone)
    }

    pub async fn deliveries(
        &self,
        id: String,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<DeliveryRow>, i64), StoreError> {
        self.store
            .read(move |c| q::deliveries(c, &id, offset, limit))
            .await
    }

    /// Records a delivery, then runs it.
    fn enqueue(&self, event: &Event, url: String, webhook_id: Option<String>) {
        let now = now_ms();
        let row = DeliveryRow {
            id: uuid::Uuid::now_v7().to_string(),
            webhook_id,
            task_id: event.body.task_id().map(|t| t.to_string()),
            url,
            event_seq: event.seq as i64,
            event_kind: event.body.kind().into(),
            body: event.json.to_string(),
            status: "pending".into(),
            attempts: 0,
            next_attempt_at: None,
            last_code: None,
            last_error: None,
            created_at: now,
            updated_at: now,
        };
        let hooks = self.clone();
        actix_rt::spawn(async move {
            let saved = row.clone();
            match hooks
                .store
                .write(move |c| q::insert_delivery(c, &saved))
                .await
            {
                Ok(()) => deliver::run(hooks, row).await,
                Err(e) => log::error!("webhook delivery to {}: cannot record it: {e}", row.url),
            }
        });
    }
}

/// A delivery view for the API.
pub fn delivery_view(r: &DeliveryRow) -> Value {
    json!({
        "id": r.id,
        "webhook_id": r.webhook_id,
        "task_id": r.task_id,
        "url": r.url,
        "event_seq": r.event_seq,
        "event": r.event_kind,
        "status": r.status,
        "attempts": r.attempts,
        "next_attempt_at": r.next_attempt_at.map(rfc3339),
        "last_code": r.last_code,
        "last_error": r.last_error,
        "created_at": rfc3339(r.created_at),
        "updated_at": rfc3339(r.updated_at),
    })
}

/// Matches every event against the subscriptions and the tasks' callback URLs.
async fn dispatch(hooks: Hooks, mut rx: tokio::sync::mpsc::UnboundedReceiver<Arc<Event>>) {
    while let Some(event) = rx.recv().await {
        // A resource sample every few seconds is sent only to hooks that name `metrics`: a
        // hook with no `events` list means every change, not a heartbeat.
        let sample = matches!(event.body, EventBody::Metrics { .. });
        for hook in hooks.list() {
            if sample && hook.filter.kinds.is_none() {
                continue;
            }
            if hook.filter.matches(&event.body) {
                hooks.enqueue(&event, hook.url.clone(), Some(hook.id.clone()));
            }
        }
        // Per-task and per-batch callback URLs travel with the event itself.
        let url = match &event.body {
            EventBody::Status { callback_url, .. } | EventBody::Batch { callback_url, .. } => {
                callback_url.clone()
            }
            _ => None,
        };
        if let Some(url) = url {
            hooks.enqueue(&event, url, None);
        }
    }
}
