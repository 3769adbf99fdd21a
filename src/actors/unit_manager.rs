//! UnitManager: the registry of execution units (seed 004's ExecutionUnitManager). It owns one
//! [`RemoteUnit`] proxy per registered remote unit, records registrations in the `units`
//! table, watches heartbeats, and tells the SchedulerActor which units may take work. A unit
//! silent for `unit_heartbeat_timeout_secs` goes OFFLINE: the scheduler forgets it, its proxy
//! gives up its jobs (their task actors resume them elsewhere from their checkpoints), a
//! `unit` event goes out and a `unit_offline` alert is raised.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::prelude::*;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::remote_unit::{
    Attach, Link, LoseAll, ReclaimJob, RemoteUnit, TakeStale, Tell, Transport,
};
use super::scheduler::{RegisterUnit, SchedulerActor, SetUnitAccepting, UnitGone};
use super::units::{LocalUnit, UnitHandle, UnitReport};
use super::Shared;
use crate::domain::{now_ms, rfc3339, Millis, TaskId};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::events::EventBody;
use crate::scheduler::UnitSlot;
use crate::store::units::{self as qu, UnitRow};
use crate::units::wire::{JobRef, ToWorker};

mod messages;
pub use messages::*;

/// Task types that registered remote units serve (a valid `type` at submission).
pub type RemoteTypes = Arc<RwLock<BTreeSet<String>>>;

/// How steward reaches a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Local,
    Websocket,
    Http,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Local => "local",
            Kind::Websocket => "websocket",
            Kind::Http => "http",
        }
    }
}

/// What the registry knows of one unit.
struct Record {
    row: UnitRow,
    kind: Kind,
    task_types: Vec<String>,
    labels: BTreeMap<String, String>,
    online: bool,
    /// A worker connection is open (WebSocket), or the unit has been heard from (HTTP).
    connected: bool,
    last_heartbeat: Millis,
    addr: Option<Addr<RemoteUnit>>,
}

impl Record {
    fn from_row(row: UnitRow, now: Millis) -> Option<Record> {
        let kind = match row.kind.as_str() {
            "websocket" => Kind::Websocket,
            "http" => Kind::Http,
            _ => return None,
        };
        Some(Record {
            task_types: serde_json::from_str(&row.task_types).unwrap_or_default(),
            labels: serde_json::from_str(&row.labels).unwrap_or_default(),
            kind,
            // A unit known before a restart gets one heartbeat timeout to come back.
            online: row.status != "OFFLINE",
            connected: false,
            last_heartbeat: now,
            addr: None,
            row,
        })
    }

    fn slot(&self) -> UnitSlot {
        UnitSlot {
            id: self.row.id.clone(),
            types: self.task_types.iter().cloned().collect(),
            labels: self.labels.clone(),
            capacity: self.row.capacity.max(0) as usize,
            load: 0,
            accepting: self.online && self.connected && !self.row.draining,
        }
    }

    fn info(&self) -> UnitInfo {
        UnitInfo {
            id: self.row.id.clone(),
            kind: self.kind,
            unit_type: self.row.unit_type.clone(),
            unit_name: self.row.unit_name.clone(),
            endpoint: self.row.endpoint.clone(),
            config: serde_json::from_str(&self.row.config).unwrap_or(Value::Null),
            task_types: self.task_types.clone(),
            labels: self.labels.clone(),
            capacity: self.row.capacity.max(0) as usize,
            online: self.online,
            connected: self.connected,
            draining: self.row.draining,
            last_heartbeat: Some(rfc3339(self.last_heartbeat)),
            created_at: rfc3339(self.row.created_at),
        }
    }
}

/// A unit as the registry shows it (the API adds status and load from the scheduler).
#[derive(Clone, Debug, Serialize)]
pub struct UnitInfo {
    pub id: String,
    pub kind: Kind,
    pub unit_type: String,
    pub unit_name: String,
    pub endpoint: Option<String>,
    pub config: Value,
    pub task_types: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub capacity: usize,
    pub online: bool,
    pub connected: bool,
    pub draining: bool,
    pub last_heartbeat: Option<String>,
    pub created_at: String,
}

pub struct UnitManager {
    shared: Shared,
    scheduler: Addr<SchedulerActor>,
    /// The server's own address, for HTTP units' callback URLs.
    base_url: String,
    local: UnitInfo,
    units: BTreeMap<String, Record>,
    next_conn: u64,
}

impl UnitManager {
    pub fn new(
        shared: Shared,
        scheduler: Addr<SchedulerActor>,
        base_url: String,
        local: UnitInfo,
        rows: Vec<UnitRow>,
    ) -> Self {
        let now = now_ms();
        let units = rows
            .into_iter()
            .filter_map(|r| Record::from_row(r, now))
            .map(|r| (r.row.id.clone(), r))
            .collect();
        UnitManager {
            shared,
            scheduler,
            base_url,
            local,
            units,
            next_conn: 0,
        }
    }

    /// The description of the in-process unit.
    pub fn local_info(types: Vec<String>, capacity: usize) -> UnitInfo {
        let now = rfc3339(now_ms());
        UnitInfo {
            id: LocalUnit::ID.into(),
            kind: Kind::Local,
            unit_type: "local".into(),
            unit_name: LocalUnit::ID.into(),
            endpoint: None,
            config: Value::Object(Default::default()),
            task_types: types,
            labels: BTreeMap::new(),
            capacity,
            online: true,
            connected: true,
            draining: false,
            last_heartbeat: Some(now.clone()),
            created_at: now,
        }
    }

    fn timeout_ms(&self) -> i64 {
        (self.shared.config().unit_heartbeat_timeout_secs * 1000.0) as i64
    }

    /// How often workers should beat: three beats per timeout.
    fn heartbeat_secs(&self) -> f64 {
        (self.shared.config().unit_heartbeat_timeout_secs / 3.0).max(0.2)
    }

    fn publish_types(&self) {
        let types: BTreeSet<String> = self
            .units
            .values()
            .flat_map(|r| r.task_types.iter().cloned())
            .collect();
        if let Ok(mut t) = self.shared.remote_types.write() {
            *t = types;
        }
    }

    fn persist(&mut self, id: &str, ctx: &mut Context<Self>) {
        let Some(r) = self.units.get_mut(id) else {
            return;
        };
        r.row.status = if r.online { "AVAILABLE" } else { "OFFLINE" }.into();
        r.row.last_heartbeat = Some(r.last_heartbeat);
        r.row.updated_at = now_ms();
        let row = r.row.clone();
        let write = self.shared.store.write(move |c| qu::upsert(c, &row));
        ctx.spawn(write.into_actor(self).map(|res, _, _| {
            if let Err(e) = res {
                log::error!("cannot record a unit: {e}");
            }
        }));
    }

    /// The proxy of a unit, started on first use.
    fn proxy(&mut self, id: &str, ctx: &mut Context<Self>) -> Option<Addr<RemoteUnit>> {
        let base_url = self.base_url.clone();
        let r = self.units.get_mut(id)?;
        if r.addr.is_none() {
            let transport = match r.kind {
                Kind::Http => Transport::Http {
                    endpoint: r.row.endpoint.clone().unwrap_or_default(),
                    base_url,
                },
                _ => Transport::Socket(None),
            };
            r.addr = Some(RemoteUnit::new(id.to_string(), transport, ctx.address()).start());
        }
        r.addr.clone()
    }

    /// Tells the scheduler what the unit may take now.
    fn sync_scheduler(&mut self, id: &str, ctx: &mut Context<Self>) {
        let Some(addr) = self.proxy(id, ctx) else {
            return;
        };
        let Some(r) = self.units.get(id) else {
            return;
        };
        if r.online {
            self.scheduler.do_send(RegisterUnit {
                slot: r.slot(),
                handle: UnitHandle::of(id, &addr),
            });
        } else {
            self.scheduler.do_send(UnitGone { id: id.into() });
        }
    }

    fn announce(&self, id: &str, status: &str) {
        self.shared.events.publish(EventBody::Unit {
            unit_id: id.into(),
            status: status.into(),
            at: rfc3339(now_ms()),
        });
    }

    /// The unit was heard from: it is online (again).
    fn heard(&mut self, id: &str, ctx: &mut Context<Self>) {
        let Some(r) = self.units.get_mut(id) else {
            return;
        };
        let changed = !r.online || (r.kind == Kind::Http && !r.connected);
        r.last_heartbeat = now_ms();
        if r.kind == Kind::Http {
            r.connected = true;
        }
        if !r.online {
            r.online = true;
            log::info!("unit {} ({}) is back online", r.row.unit_name, id);
            self.announce(id, "AVAILABLE");
            self.persist(id, ctx);
        }
        if changed {
            self.sync_scheduler(id, ctx);
        }
    }

    /// No heartbeat for the timeout: the unit's work goes elsewhere.
    fn go_offline(&mut self, id: &str, ctx: &mut Context<Self>) {
        let timeout = self.shared.config().unit_heartbeat_timeout_secs;
        let Some(r) = self.units.get_mut(id) else {
            return;
        };
        r.online = false;
        r.connected = false;
        let name = r.row.unit_name.clone();
        log::info!("unit {name} ({id}) missed its heartbeats for {timeout} s: OFFLINE");
        if let Some(addr) = &r.addr {
            addr.do_send(LoseAll {
                reason: format!("unit {name} went offline (no heartbeat for {timeout} s)"),
                farewell: Some(ToWorker::Error {
                    message: "missed heartbeats: this unit is OFFLINE; reconnect".into(),
                }),
            });
        }
        self.scheduler.do_send(UnitGone { id: id.into() });
        self.announce(id, "OFFLINE");
        self.persist(id, ctx);
        let shared = self.shared.clone();
        let alert = crate::monitor::AlertSpec {
            level: "error",
            kind: "unit_offline",
            fingerprint: format!("unit_offline:{id}"),
            title: format!("Unit {name} is offline"),
            message: format!("unit {name} sent no heartbeat for {timeout} s; its running tasks moved to other units"),
            details: serde_json::json!({"unit_id": id, "unit_name": name}),
        };
        actix::spawn(async move { crate::monitor::raise(&shared, alert).await });
    }

    fn check_heartbeats(&mut self, ctx: &mut Context<Self>) {
        let deadline = now_ms() - self.timeout_ms();
        let silent: Vec<String> = self
            .units
            .values()
            .filter(|r| r.online && r.last_heartbeat < deadline)
            .map(|r| r.row.id.clone())
            .collect();
        for id in silent {
            self.go_offline(&id, ctx);
        }
    }

    fn find(&self, id: &str) -> ApiResult<&Record> {
        self.units
            .get(id)
            .ok_or_else(|| ApiError::not_found("unit", format!("'{id}'")))
    }

    /// A new record, or the one registered under the same name and kind.
    fn upsert_record(&mut self, spec: UnitSpec, kind: Kind) -> ApiResult<String> {
        let now = now_ms();
        let existing = self
            .units
            .values()
            .find(|r| r.row.unit_name == spec.name)
            .map(|r| (r.row.id.clone(), r.kind));
        let id = match existing {
            Some((_, k)) if k != kind => {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!(
                        "a {} unit is already registered as '{}'",
                        k.as_str(),
                        spec.name
                    ),
                ))
            }
            Some((id, Kind::Websocket)) if self.units.get(&id).is_some_and(|r| r.connected) => {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!("a worker named '{}' is already connected", spec.name),
                ))
            }
            Some((id, _)) => id,
            None => Uuid::now_v7().to_string(),
        };
        let created_at = self.units.get(&id).map_or(now, |r| r.row.created_at);
        // A worker keeps its proxy across reconnects; an HTTP unit keeps it unless it moved.
        let addr = self
            .units
            .get_mut(&id)
            .filter(|r| kind == Kind::Websocket || r.row.endpoint == spec.endpoint)
            .and_then(|r| r.addr.take());
        let row = UnitRow {
            id: id.clone(),
            kind: kind.as_str().into(),
            unit_type: spec.unit_type.unwrap_or_else(|| kind.as_str().into()),
            unit_name: spec.name,
            endpoint: spec.endpoint,
            config: spec.config.to_string(),
            task_types: serde_json::to_string(&spec.task_types).unwrap_or_default(),
            labels: serde_json::to_string(&spec.labels).unwrap_or_default(),
            capacity: spec.capacity as i64,
            status: "AVAILABLE".into(),
            draining: false,
            last_heartbeat: Some(now),
            created_at,
            updated_at: now,
        };
        let mut record = Record::from_row(row, now).ok_or_else(ApiError::internal)?;
        record.connected = true;
        record.addr = addr;
        self.units.insert(id.clone(), record);
        self.publish_types();
        Ok(id)
    }
}

impl Actor for UnitManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let ids: Vec<String> = self.units.keys().cloned().collect();
        for id in ids {
            self.proxy(&id, ctx);
        }
        self.publish_types();
        let every = Duration::from_millis((self.timeout_ms() / 4).clamp(100, 1000) as u64);
        ctx.run_interval(every, |act, ctx| act.check_heartbeats(ctx));
    }
}

/// What a registration says, from a worker's `register` or `POST /units`.
#[derive(Clone, Debug)]
pub struct UnitSpec {
    pub name: String,
    pub unit_type: Option<String>,
    pub endpoint: Option<String>,
    pub config: Value,
    pub task_types: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub capacity: usize,
}

/// The answer to a worker's registration.
#[derive(Debug)]
pub struct Connected {
    pub unit_id: String,
    pub heartbeat_secs: f64,
    pub drop: Vec<JobRef>,
    pub conn: u64,
    /// Where the connection sends what the worker says.
    pub proxy: Addr<RemoteUnit>,
}

/// Re-attach a task that was running on a remote unit before a restart.
#[derive(Message)]
#[rtype(result = "Option<(UnitHandle, Uuid)>")]
pub struct Reclaim {
    pub unit_id: String,
    pub task_id: TaskId,
    pub attempt: i32,
    pub reporter: Recipient<UnitReport>,
}

/// Re-attaches through the unit's proxy; waits up to one heartbeat timeout for it to return.
impl Handler<Reclaim> for UnitManager {
    type Result = ResponseActFuture<Self, Option<(UnitHandle, Uuid)>>;
    fn handle(&mut self, msg: Reclaim, ctx: &mut Context<Self>) -> Self::Result {
        let Some(addr) = self
            .units
            .contains_key(&msg.unit_id)
            .then(|| self.proxy(&msg.unit_id, ctx))
            .flatten()
        else {
            return Box::pin(fut::ready(None));
        };
        let handle = UnitHandle::of(msg.unit_id.clone(), &addr);
        let ask = addr.send(ReclaimJob {
            task_id: msg.task_id,
            attempt: msg.attempt,
            reporter: msg.reporter,
            wait: Duration::from_millis(self.timeout_ms().max(0) as u64),
        });
        Box::pin(ask.into_actor(self).map(move |res, _, _| {
            let exec = res.ok().flatten()?;
            Some((handle, exec))
        }))
    }
}

/// Hands stale jobs of an HTTP unit to its heartbeat.
async fn take_stale(addr: Option<Addr<RemoteUnit>>) -> Vec<JobRef> {
    match addr {
        Some(a) => a.send(TakeStale).await.unwrap_or_default(),
        None => Vec::new(),
    }
}

/// Sends a drain notice to a connected worker.
fn tell_drain(addr: &Option<Addr<RemoteUnit>>) {
    if let Some(a) = addr {
        a.do_send(Tell(ToWorker::Drain));
    }
}

/// Starts the work of a new connection.
fn attach(addr: Addr<RemoteUnit>, link: Link, jobs: Vec<JobRef>) -> Request<RemoteUnit, Attach> {
    addr.send(Attach { link, jobs })
}
