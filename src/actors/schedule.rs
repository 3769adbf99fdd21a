//! The ScheduleActor: a next-fire timeline (a `BTreeSet` of `(slot, schedule id)`) and one
//! timer armed for its first entry, so fires land on their slot without polling. A due
//! schedule is handled by a job that reads it fresh, works out which slots to fire (the
//! misfire policy of `domain::schedule`), claims each slot in `schedule_runs` (UNIQUE per
//! slot: a slot never fires twice, across restarts too) and instantiates the template.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use actix::prelude::*;
use actix_web::web;

use crate::api::batches::create_batch;
use crate::api::schedules_spec::from_row;
use crate::api::tasks_control::{create, parse_new_task};
use crate::api::AppState;
use crate::domain::schedule::{slots_to_fire, Schedule, Template};
use crate::domain::{now_ms, Millis, Source, TaskId};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::store::schedules::{self as qs, RunRow};

/// Re-read one schedule and plan its next fire (after create, edit, pause, resume, delete).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reload {
    pub id: String,
}

/// Start-up: fire what was missed while steward was down (per misfire policy), then plan.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LoadAll;

/// A schedule's slot(s) came due: handle them, then plan the next.
#[derive(Message)]
#[rtype(result = "()")]
struct Due {
    id: String,
}

pub struct ScheduleActor {
    state: web::Data<AppState>,
    timeline: BTreeSet<(Millis, String)>,
    planned: HashMap<String, Millis>,
    timer: Option<SpawnHandle>,
}

impl ScheduleActor {
    pub fn new(state: web::Data<AppState>) -> Self {
        ScheduleActor {
            state,
            timeline: BTreeSet::new(),
            planned: HashMap::new(),
            timer: None,
        }
    }

    fn plan(&mut self, id: &str, next: Option<Millis>, ctx: &mut Context<Self>) {
        if let Some(old) = self.planned.remove(id) {
            self.timeline.remove(&(old, id.to_string()));
        }
        if let Some(at) = next {
            self.planned.insert(id.to_string(), at);
            self.timeline.insert((at, id.to_string()));
        }
        self.arm(ctx);
    }

    /// Arms the one timer for the earliest planned slot.
    fn arm(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.timer.take() {
            ctx.cancel_future(h);
        }
        let Some((at, _)) = self.timeline.first() else {
            return;
        };
        let wait = (*at - now_ms()).max(0) as u64;
        self.timer = Some(ctx.run_later(Duration::from_millis(wait), |act, ctx| {
            act.timer = None;
            let now = now_ms();
            while let Some((at, id)) = act.timeline.first().cloned() {
                if at > now {
                    break;
                }
                act.timeline.pop_first();
                act.planned.remove(&id);
                ctx.notify(Due { id });
            }
            act.arm(ctx);
        }));
    }

    fn handle_due(&self, id: String, ctx: &mut Context<Self>) {
        let state = self.state.clone();
        let me = ctx.address();
        actix_rt::spawn(async move {
            if let Err(e) = handle_due_slots(&state, &id).await {
                log::error!("schedule {id}: {e}");
            }
            me.do_send(Reload { id });
        });
    }
}

impl Actor for ScheduleActor {
    type Context = Context<Self>;
}

/// Plans a schedule's next fire from what is stored now.
impl Handler<Reload> for ScheduleActor {
    type Result = ();
    fn handle(&mut self, msg: Reload, ctx: &mut Context<Self>) {
        let state = self.state.clone();
        let id = msg.id;
        let lookup = id.clone();
        let logged = id.clone();
        let fut = async move {
            let row = state.shared.store.read(move |c| qs::get(c, &lookup)).await;
            match row {
                Ok(Some(r)) => from_row(&state, r)
                    .ok()
                    .and_then(|s| s.next_run_at(now_ms())),
                Ok(None) => None,
                Err(e) => {
                    log::error!("cannot read schedule {logged}: {e}");
                    None
                }
            }
        };
        ctx.spawn(fut.into_actor(self).map(move |next, act, ctx| {
            act.plan(&id, next, ctx);
        }));
    }
}

/// Handles every schedule once: missed slots per policy, then the next fire is planned.
impl Handler<LoadAll> for ScheduleActor {
    type Result = ();
    fn handle(&mut self, _: LoadAll, ctx: &mut Context<Self>) {
        let state = self.state.clone();
        ctx.spawn(
            async move {
                match state.shared.store.write(qs::fail_interrupted).await {
                    Ok(0) => {}
                    Ok(n) => log::warn!("{n} schedule run(s) were interrupted by a stop"),
                    Err(e) => log::error!("cannot close interrupted schedule runs: {e}"),
                }
                state.shared.store.read(qs::all).await
            }
            .into_actor(self)
            .map(|rows, act, ctx| match rows {
                Ok(rows) => {
                    for r in rows.into_iter().filter(|r| r.enabled) {
                        act.handle_due(r.id, ctx);
                    }
                }
                Err(e) => log::error!("cannot load schedules: {e}"),
            }),
        );
    }
}

/// Handles a due schedule in a job of its own.
impl Handler<Due> for ScheduleActor {
    type Result = ();
    fn handle(&mut self, msg: Due, ctx: &mut Context<Self>) {
        self.handle_due(msg.id, ctx);
    }
}

/// Fires the slots due now (the misfire policy decides which of several), and marks the
/// rest as handled.
async fn handle_due_slots(state: &AppState, id: &str) -> ApiResult<()> {
    let key = id.to_string();
    let Some(row) = state.shared.store.read(move |c| qs::get(c, &key)).await? else {
        return Ok(());
    };
    let s = from_row(state, row)?;
    if !s.enabled {
        return Ok(());
    }
    let now = now_ms();
    let (due, dropped) = s.due(now);
    let Some(&newest) = due.last() else {
        return Ok(());
    };
    let grace = (s.misfire_grace_secs * 1000.0) as i64;
    let fire = slots_to_fire(&due, now, grace, s.misfire_policy);
    let missed = due.len() + dropped - fire.len();
    if missed > 0 {
        log::info!(
            "schedule '{}': {missed} missed slot(s) not fired ({})",
            s.name,
            s.misfire_policy.as_str()
        );
    }
    for slot in fire {
        match fire_slot(state, &s, slot, false).await {
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::Conflict => {
                log::debug!("schedule '{}': slot {slot} was handled already", s.name)
            }
            Err(e) => log::error!("schedule '{}': slot {slot}: {e}", s.name),
        }
    }
    let sid = s.id.clone();
    state
        .shared
        .store
        .write(move |c| {
            let current = qs::get(c, &sid)?.and_then(|r| r.last_slot);
            if current.is_none_or(|l| l < newest) {
                qs::advance(c, &sid, newest)?;
            }
            Ok(())
        })
        .await?;
    Ok(())
}

/// Why a fire is skipped now, if it is: a `depends_on` schedule whose latest run did not
/// succeed, or `max_instances` runs still live.
async fn skip_reason(state: &AppState, s: &Schedule) -> ApiResult<Option<String>> {
    let deps = s.depends_on.clone();
    let id = s.id.clone();
    let max = i64::from(s.max_instances);
    Ok(state
        .shared
        .store
        .read(move |c| {
            for d in &deps {
                let Some(dep) = qs::get(c, d)? else {
                    return Ok(Some(format!(
                        "depends on schedule '{d}', which does not exist"
                    )));
                };
                let status = qs::last_fired_status(c, &dep.id)?;
                if status.as_deref() != Some("success") {
                    return Ok(Some(format!(
                        "depends on schedule '{d}', whose latest run has {}",
                        status.map_or("not run yet".into(), |st| format!("status {st}"))
                    )));
                }
            }
            let live = qs::live_runs(c, &id)?;
            if live >= max {
                return Ok(Some(format!(
                    "{live} run(s) still live (max_instances {max})"
                )));
            }
            Ok(None)
        })
        .await?)
}

/// Fires one slot: records it (once: a slot already recorded is a `409 conflict`), then makes
/// the task or batch of the template. A manual fire (`trigger`) is recorded at `slot` = now.
pub async fn fire_slot(
    state: &AppState,
    s: &Schedule,
    slot: Millis,
    manual: bool,
) -> ApiResult<RunRow> {
    let reason = skip_reason(state, s).await?;
    let mut run = RunRow {
        id: TaskId::new().to_string(),
        schedule_id: s.id.clone(),
        slot_at: slot,
        manual,
        status: if reason.is_some() {
            "skipped"
        } else {
            "claimed"
        }
        .into(),
        reason,
        task_id: None,
        batch_id: None,
        created_at: now_ms(),
    };
    let mut claimed = false;
    for attempt in 0..5 {
        let r = run.clone();
        let ok = state
            .shared
            .store
            .write(move |c| {
                if qs::slot_taken(c, &r.schedule_id, r.slot_at)? {
                    return Ok(false);
                }
                qs::record_run(c, &r)?;
                Ok(true)
            })
            .await?;
        if ok {
            claimed = true;
            break;
        }
        if !manual || attempt == 4 {
            break;
        }
        run.slot_at += 1;
    }
    if !claimed {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "slot {} of schedule '{}' was handled already",
                run.slot_at, s.name
            ),
        ));
    }
    if run.status == "skipped" {
        log::info!(
            "schedule '{}' skipped a fire: {}",
            s.name,
            run.reason.as_deref().unwrap_or("")
        );
        return Ok(run);
    }
    let by = format!("schedule:{}", s.name);
    let made = match &s.template {
        Template::Task(t) => match parse_new_task(state, t.clone(), "task.") {
            Ok(mut spec) => {
                spec.schedule_id = Some(s.id.clone());
                spec.source = Source::Schedule;
                create(state, vec![spec], &by)
                    .await
                    .map(|mut ts| (ts.pop().map(|t| t.id.to_string()), None))
            }
            Err(e) => Err(e),
        },
        Template::Batch(b) => create_batch(state, b.clone(), &by, Some(s.id.clone()))
            .await
            .map(|(batch, _)| (None, Some(batch.id))),
    };
    match made {
        Ok((task_id, batch_id)) => {
            run.status = "fired".into();
            run.task_id = task_id;
            run.batch_id = batch_id;
        }
        Err(e) => {
            log::warn!("schedule '{}' could not create its run: {e}", s.name);
            run.status = "failed".into();
            run.reason = Some(e.message);
        }
    }
    let r = run.clone();
    state
        .shared
        .store
        .write(move |c| {
            qs::finish_run(
                c,
                &r.id,
                &r.status,
                r.reason.clone(),
                r.task_id.clone(),
                r.batch_id.clone(),
            )
        })
        .await?;
    Ok(run)
}
