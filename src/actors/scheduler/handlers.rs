//! The SchedulerActor's message handlers.

use std::collections::HashMap;

use actix::prelude::*;

use super::*;

/// Adds stored pending tasks to the queue; dependencies are re-checked against the database
/// after they are registered, so a dependency that ended just before is not missed.
impl Handler<Enqueue> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, msg: Enqueue, ctx: &mut Context<Self>) {
        let now = now_ms();
        let mut deps = Vec::new();
        for t in &msg.tasks {
            if t.status != TaskStatus::Pending {
                continue;
            }
            let p = self.pending(t);
            deps.extend(p.wait_for.iter().copied());
            self.core.enqueue(p, now);
        }
        if !deps.is_empty() {
            deps.sort();
            deps.dedup();
            let read = self.shared.store.read(move |c| {
                let mut found = q::statuses(c, &deps)?;
                // Batches are waited on by their id too.
                let keys: Vec<String> = deps.iter().map(|d| d.to_string()).collect();
                for (id, status) in crate::store::batches::statuses(c, &keys)? {
                    let st = match status.as_str() {
                        "success" => TaskStatus::Success,
                        "failed" => TaskStatus::Failed,
                        "cancelled" => TaskStatus::Cancelled,
                        _ => continue,
                    };
                    if let Ok(key) = id.parse() {
                        found.push((key, st));
                    }
                }
                Ok(found)
            });
            ctx.spawn(read.into_actor(self).map(|res, _act, ctx| match res {
                Ok(statuses) => ctx.notify(DepsChecked(statuses)),
                Err(e) => log::error!("dependency check failed: {e}"),
            }));
        }
        self.pump(ctx);
    }
}

/// Applies dependency outcomes read from the database.
impl Handler<DepsChecked> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, msg: DepsChecked, ctx: &mut Context<Self>) {
        let now = now_ms();
        for (dep, status) in msg.0 {
            match status {
                TaskStatus::Success => {
                    self.core.dependency_finished(dep, true, now);
                }
                TaskStatus::Failed | TaskStatus::Cancelled => {
                    let doomed = self.core.dependency_finished(dep, false, now);
                    self.cancel_doomed(doomed, dep, ctx);
                }
                _ => {}
            }
        }
        self.pump(ctx);
    }
}

/// Continues a dependency-failure cascade.
impl Handler<CancelDoomed> for SchedulerActor {
    type Result = ();
    fn handle(&mut self, msg: CancelDoomed, ctx: &mut Context<Self>) {
        self.cancel_doomed(msg.ids, msg.because, ctx);
    }
}

/// Frees what an ended task held; re-queues retries; resolves or dooms dependents.
impl Handler<TaskEnded> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, msg: TaskEnded, ctx: &mut Context<Self>) {
        let now = now_ms();
        let batch = self.core.active_batch(msg.id);
        self.core.release(msg.id);
        match msg.ended {
            Ended::Success => {
                self.core.dependency_finished(msg.id, true, now);
            }
            Ended::Failed | Ended::Cancelled => {
                if let Some(b) = batch.filter(|b| {
                    matches!(msg.ended, Ended::Failed) && self.halt_on_failure.contains(b)
                }) {
                    // Nothing more of this batch starts; its actor cancels what is left.
                    self.core.set_batch_paused(&b, true);
                }
                let doomed = self.core.dependency_finished(msg.id, false, now);
                self.cancel_doomed(doomed, msg.id, ctx);
            }
            Ended::Retry(task) => {
                let p = self.pending(&task);
                self.core.enqueue(p, now)
            }
            Ended::Abandoned => {}
        }
        self.pump(ctx);
    }
}

fn invalid(from: TaskStatus, what: &str) -> Routed {
    Routed::Done(Err(ApiError::new(
        ErrorCode::InvalidTransition,
        format!("a {from} task cannot be {what}"),
    )))
}

/// Commands on pending tasks: cancel, start (release a held task), patch.
impl Handler<PendingCommand> for SchedulerActor {
    type Result = ResponseActFuture<Self, Routed>;

    fn handle(&mut self, msg: PendingCommand, _ctx: &mut Context<Self>) -> Self::Result {
        let ready = |r: Routed| -> Self::Result { Box::pin(fut::ready(r)) };
        let id = msg.id;
        if !self.core.is_pending(id) {
            return ready(Routed::NotHere);
        }
        let store = self.shared.store.clone();
        let now = now_ms();
        match msg.cmd {
            TaskCommand::Cancel => {
                self.core.remove(id);
                let by = msg.by;
                let write = store.write(move |c| {
                    q::modify(c, id, |t| {
                        t.transition(TaskStatus::Cancelled, now, &by, Some("cancelled".into()))
                            .map(|h| vec![h])
                    })
                });
                Box::pin(write.into_actor(self).map(move |res, act, ctx| match res {
                    Ok(Ok(task)) => {
                        act.shared.events.publish(EventBody::status(
                            &task,
                            Some(TaskStatus::Pending),
                            Some("cancelled".into()),
                            now,
                        ));
                        let doomed = act.core.dependency_finished(id, false, now);
                        act.cancel_doomed(doomed, id, ctx);
                        act.pump(ctx);
                        Routed::Done(Ok(Box::new(task)))
                    }
                    Ok(Err(e)) => Routed::Done(Err(e.into())),
                    Err(e) => Routed::Done(Err(e.into())),
                }))
            }
            TaskCommand::Start => {
                // Durable first, then released: a dispatch must find the row as it will stay.
                let write = store.write(move |c| {
                    q::modify(c, id, |t| {
                        if t.held {
                            t.held = false;
                            t.touch(now);
                        }
                        Ok::<_, ApiError>(Vec::new())
                    })
                });
                Box::pin(write.into_actor(self).map(move |res, act, ctx| match res {
                    Ok(r) => {
                        act.core.start(id, now_ms());
                        act.pump(ctx);
                        Routed::Done(r.map(Box::new))
                    }
                    Err(e) => Routed::Done(Err(e.into())),
                }))
            }
            TaskCommand::Patch {
                priority,
                name,
                tags,
            } => {
                let write = store.write(move |c| {
                    q::modify(c, id, |t| {
                        if let Some(p) = priority {
                            t.priority = p;
                        }
                        if let Some(n) = name {
                            t.name = n;
                        }
                        if let Some(tags) = tags {
                            t.tags = tags;
                        }
                        t.touch(now);
                        Ok::<_, ApiError>(Vec::new())
                    })
                });
                Box::pin(write.into_actor(self).map(move |res, act, ctx| match res {
                    Ok(r) => {
                        if let Some(p) = priority {
                            act.core.reprioritize(id, p);
                        }
                        act.pump(ctx);
                        Routed::Done(r.map(Box::new))
                    }
                    Err(e) => Routed::Done(Err(e.into())),
                }))
            }
            TaskCommand::Pause => ready(invalid(TaskStatus::Pending, "paused")),
            TaskCommand::Resume => ready(invalid(TaskStatus::Pending, "resumed")),
            TaskCommand::Progress { .. } => ready(Routed::Done(Err(ApiError::new(
                ErrorCode::InvalidTransition,
                "progress is reported for running tasks; this one is pending",
            )))),
            TaskCommand::Callback { .. } => ready(Routed::Done(Err(ApiError::new(
                ErrorCode::InvalidTransition,
                "the task is pending; no unit runs it",
            )))),
        }
    }
}

/// Explanations for pending tasks (absent ids are not pending here).
impl Handler<Explain> for SchedulerActor {
    type Result = MessageResult<Explain>;
    fn handle(&mut self, msg: Explain, _: &mut Context<Self>) -> Self::Result {
        let now = now_ms();
        let map: HashMap<TaskId, Waiting> = msg
            .ids
            .into_iter()
            .filter_map(|id| self.core.explain(id, now).map(|w| (id, w)))
            .collect();
        MessageResult(map)
    }
}

/// Picks a unit for an active task without one.
impl Handler<AcquireUnit> for SchedulerActor {
    type Result = Option<UnitHandle>;
    fn handle(&mut self, msg: AcquireUnit, _: &mut Context<Self>) -> Option<UnitHandle> {
        let unit = self.core.acquire_unit(msg.id, &msg.labels)?;
        self.handles.get(&unit).cloned()
    }
}

/// Registers a unit and dispatches work it can take.
impl Handler<RegisterUnit> for SchedulerActor {
    type Result = ();
    fn handle(&mut self, msg: RegisterUnit, ctx: &mut Context<Self>) {
        self.handles.insert(msg.slot.id.clone(), msg.handle);
        self.core.add_unit(msg.slot);
        self.pump(ctx);
    }
}

/// Forgets a unit; its tasks' actors learn it from the unit's proxy and move on.
impl Handler<UnitGone> for SchedulerActor {
    type Result = ();
    fn handle(&mut self, msg: UnitGone, _: &mut Context<Self>) {
        self.handles.remove(&msg.id);
        let orphans = self.core.remove_unit(&msg.id);
        if !orphans.is_empty() {
            log::info!(
                "unit {} is gone with {} active task(s)",
                msg.id,
                orphans.len()
            );
        }
    }
}

/// Opens or closes a unit to new work.
impl Handler<SetUnitAccepting> for SchedulerActor {
    type Result = ();
    fn handle(&mut self, msg: SetUnitAccepting, ctx: &mut Context<Self>) {
        self.core.set_unit_accepting(&msg.id, msg.accepting);
        self.pump(ctx);
    }
}

/// Counts a re-attached task on its unit.
impl Handler<AttachUnit> for SchedulerActor {
    type Result = ();
    fn handle(&mut self, msg: AttachUnit, _: &mut Context<Self>) {
        self.core.attach_unit(msg.id, &msg.unit);
    }
}

/// Records a recovered active task.
impl Handler<Activate> for SchedulerActor {
    type Result = ();
    fn handle(&mut self, msg: Activate, _: &mut Context<Self>) {
        self.core.activate(msg.id, msg.active);
    }
}

/// Applies new limits and strategy.
impl Handler<ApplyConfig> for SchedulerActor {
    type Result = ();
    fn handle(&mut self, msg: ApplyConfig, ctx: &mut Context<Self>) {
        self.core.set_limits(limits_of(&msg.0));
        self.pump(ctx);
    }
}

/// Wires the supervisor in and starts dispatching.
impl Handler<SetSupervisor> for SchedulerActor {
    type Result = ();
    fn handle(&mut self, msg: SetSupervisor, ctx: &mut Context<Self>) {
        self.supervisor = Some(msg.0);
        self.pump(ctx);
    }
}

/// Queue and slot counters.
impl Handler<GetStats> for SchedulerActor {
    type Result = MessageResult<GetStats>;
    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        let l = self.core.limits();
        MessageResult(SchedulerStats {
            strategy: l.strategy.as_str().into(),
            pending: self.core.queued(),
            ready: self.core.ready_len(),
            active: self.core.active_len(),
            max_parallel_tasks: l.max_parallel,
            queue_enabled: l.queue_enabled,
            units: self
                .core
                .units()
                .map(|u| UnitStat {
                    id: u.id.clone(),
                    status: if !u.accepting {
                        "OFFLINE"
                    } else if u.load >= u.capacity {
                        "BUSY"
                    } else {
                        "AVAILABLE"
                    },
                    load: u.load,
                    capacity: u.capacity,
                    task_types: u.types.iter().cloned().collect(),
                    labels: u.labels.clone(),
                })
                .collect(),
        })
    }
}
