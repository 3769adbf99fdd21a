//! The UnitManager's messages: registration (workers and HTTP units), heartbeats, drain,
//! deregistration and the registry view.

use actix::prelude::*;

use super::*;

/// A worker registers on a new connection; `tx` queues the frames its writer sends.
#[derive(Message)]
#[rtype(result = "Result<Connected, ApiError>")]
pub struct ConnectWorker {
    pub spec: UnitSpec,
    pub jobs: Vec<JobRef>,
    pub tx: tokio::sync::mpsc::Sender<String>,
}

/// A worker's connection ended; its work stays with it until the heartbeat timeout.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WorkerDisconnected {
    pub unit_id: String,
}

/// A worker's heartbeat frame.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Beat {
    pub unit_id: String,
}

/// `POST /units`: an HTTP-style unit registers (or re-registers under the same name).
#[derive(Message)]
#[rtype(result = "Result<UnitInfo, ApiError>")]
pub struct RegisterHttp(pub UnitSpec);

/// `POST /units/{id}/heartbeat`: answers the unit and the jobs it must drop.
#[derive(Message)]
#[rtype(result = "Result<(UnitInfo, Vec<JobRef>), ApiError>")]
pub struct Heartbeat {
    pub unit_id: String,
}

/// `POST /units/{id}/drain`: no new work; running work finishes.
#[derive(Message)]
#[rtype(result = "Result<UnitInfo, ApiError>")]
pub struct DrainUnit {
    pub unit_id: String,
}

/// `DELETE /units/{id}`: the unit is removed and its running tasks move elsewhere.
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct Deregister {
    pub unit_id: String,
}

/// Every unit, the in-process one first.
#[derive(Message)]
#[rtype(result = "Vec<UnitInfo>")]
pub struct ListUnits;

/// Registers the worker, re-attaches what it still runs and tells it what to drop.
impl Handler<ConnectWorker> for UnitManager {
    type Result = ResponseActFuture<Self, Result<Connected, ApiError>>;

    fn handle(&mut self, msg: ConnectWorker, ctx: &mut Context<Self>) -> Self::Result {
        let id = match self.upsert_record(msg.spec, Kind::Websocket) {
            Ok(id) => id,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let Some(addr) = self.proxy(&id, ctx) else {
            return Box::pin(fut::ready(Err(ApiError::internal())));
        };
        self.next_conn += 1;
        let conn = self.next_conn;
        let link = Link { conn, tx: msg.tx };
        let heartbeat_secs = self.heartbeat_secs();
        let work = attach(addr.clone(), link, msg.jobs);
        Box::pin(work.into_actor(self).map(move |res, act, ctx| {
            let drop = res.map_err(ApiError::from)?;
            if let Some(r) = act.units.get(&id) {
                log::info!(
                    "worker {} connected as unit {id} (types {:?}, capacity {})",
                    r.row.unit_name,
                    r.task_types,
                    r.row.capacity
                );
            }
            act.announce(&id, "AVAILABLE");
            act.persist(&id, ctx);
            act.sync_scheduler(&id, ctx);
            Ok(Connected {
                unit_id: id,
                heartbeat_secs,
                drop,
                conn,
                proxy: addr,
            })
        }))
    }
}

/// Stops new work going to a disconnected worker.
impl Handler<WorkerDisconnected> for UnitManager {
    type Result = ();
    fn handle(&mut self, msg: WorkerDisconnected, _: &mut Context<Self>) {
        if let Some(r) = self.units.get_mut(&msg.unit_id) {
            r.connected = false;
            log::info!("worker {} disconnected", r.row.unit_name);
            self.scheduler.do_send(SetUnitAccepting {
                id: msg.unit_id,
                accepting: false,
            });
        }
    }
}

/// Notes a worker's heartbeat.
impl Handler<Beat> for UnitManager {
    type Result = ();
    fn handle(&mut self, msg: Beat, ctx: &mut Context<Self>) {
        if let Some(r) = self.units.get_mut(&msg.unit_id) {
            let back = !r.online;
            r.last_heartbeat = now_ms();
            if back {
                self.heard(&msg.unit_id, ctx);
            }
        }
    }
}

/// Records an HTTP unit; durable before the answer.
impl Handler<RegisterHttp> for UnitManager {
    type Result = ResponseActFuture<Self, Result<UnitInfo, ApiError>>;

    fn handle(&mut self, msg: RegisterHttp, ctx: &mut Context<Self>) -> Self::Result {
        let id = match self.upsert_record(msg.0, Kind::Http) {
            Ok(id) => id,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        // A re-registration may change the endpoint: start a fresh proxy.
        self.proxy(&id, ctx);
        let Some(row) = self.units.get(&id).map(|r| r.row.clone()) else {
            return Box::pin(fut::ready(Err(ApiError::internal())));
        };
        let write = self.shared.store.write(move |c| qu::upsert(c, &row));
        Box::pin(write.into_actor(self).map(move |res, act, ctx| {
            res.map_err(ApiError::from)?;
            act.announce(&id, "AVAILABLE");
            act.sync_scheduler(&id, ctx);
            act.find(&id).map(Record::info)
        }))
    }
}

/// Notes an HTTP unit's heartbeat (bringing it back online if it was offline).
impl Handler<Heartbeat> for UnitManager {
    type Result = ResponseActFuture<Self, Result<(UnitInfo, Vec<JobRef>), ApiError>>;

    fn handle(&mut self, msg: Heartbeat, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.find(&msg.unit_id) {
            return Box::pin(fut::ready(Err(e)));
        }
        self.heard(&msg.unit_id, ctx);
        let addr = self.units.get(&msg.unit_id).and_then(|r| r.addr.clone());
        let id = msg.unit_id;
        Box::pin(
            take_stale(addr)
                .into_actor(self)
                .map(move |stale, act, _| Ok((act.find(&id)?.info(), stale))),
        )
    }
}

/// Stops new work going to the unit; a worker is told to exit once its work is done.
impl Handler<DrainUnit> for UnitManager {
    type Result = Result<UnitInfo, ApiError>;
    fn handle(&mut self, msg: DrainUnit, ctx: &mut Context<Self>) -> Self::Result {
        if msg.unit_id == LocalUnit::ID {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "the in-process unit cannot be drained; set queue_enabled to false instead",
            ));
        }
        let r = self
            .units
            .get_mut(&msg.unit_id)
            .ok_or_else(|| ApiError::not_found("unit", format!("'{}'", msg.unit_id)))?;
        r.row.draining = true;
        tell_drain(&r.addr);
        log::info!("unit {} is draining", r.row.unit_name);
        self.scheduler.do_send(SetUnitAccepting {
            id: msg.unit_id.clone(),
            accepting: false,
        });
        self.announce(&msg.unit_id, "DRAINING");
        self.persist(&msg.unit_id, ctx);
        self.find(&msg.unit_id).map(Record::info)
    }
}

/// Removes the unit: its work moves elsewhere and a connected worker is told to stop.
impl Handler<Deregister> for UnitManager {
    type Result = ResponseActFuture<Self, Result<(), ApiError>>;

    fn handle(&mut self, msg: Deregister, _: &mut Context<Self>) -> Self::Result {
        let id = msg.unit_id;
        if id == LocalUnit::ID {
            return Box::pin(fut::ready(Err(ApiError::new(
                ErrorCode::Conflict,
                "the in-process unit cannot be removed",
            ))));
        }
        let Some(r) = self.units.remove(&id) else {
            return Box::pin(fut::ready(Err(ApiError::not_found(
                "unit",
                format!("'{id}'"),
            ))));
        };
        log::info!("unit {} ({id}) deregistered", r.row.unit_name);
        self.publish_types();
        self.scheduler.do_send(UnitGone { id: id.clone() });
        if let Some(addr) = &r.addr {
            addr.do_send(LoseAll {
                reason: format!("unit {} was deregistered", r.row.unit_name),
                farewell: Some(ToWorker::Deregistered {
                    message: "this unit was removed from steward".into(),
                }),
            });
        }
        self.announce(&id, "DEREGISTERED");
        let write = self.shared.store.write(move |c| qu::delete(c, &id));
        Box::pin(
            write
                .into_actor(self)
                .map(|res, _, _| res.map(|_| ()).map_err(ApiError::from)),
        )
    }
}

/// The registry view.
impl Handler<ListUnits> for UnitManager {
    type Result = MessageResult<ListUnits>;
    fn handle(&mut self, _: ListUnits, _: &mut Context<Self>) -> Self::Result {
        let mut all = vec![self.local.clone()];
        all.extend(self.units.values().map(Record::info));
        MessageResult(all)
    }
}
