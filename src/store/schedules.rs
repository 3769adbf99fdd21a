//! Schedule rows and the record of every slot a schedule handled (`schedule_runs`, whose
//! UNIQUE (schedule_id, slot_at) is the guarantee that a slot fires at most once).

use diesel::prelude::*;

use super::conn::{DbConn, MultiBackend};
use super::schema::{batches, schedule_runs, schedules, tasks};
use super::StoreError;
use crate::domain::Millis;

/// A schedule as stored: the definition is the normalised request body (`spec`, JSON text).
#[derive(Queryable, Selectable, Insertable, AsChangeset, Clone, Debug)]
#[diesel(table_name = schedules, treat_none_as_null = true)]
pub struct ScheduleRow {
    pub id: String,
    pub name: String,
    pub trigger_kind: String,
    pub enabled: bool,
    pub tags: String,
    pub spec: String,
    pub last_slot: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One handled slot: `fired` (with the task or batch it made), `skipped` (with the reason),
/// or `failed` (the template could not be instantiated).
#[derive(Queryable, Selectable, Insertable, AsChangeset, Clone, Debug)]
#[diesel(table_name = schedule_runs, treat_none_as_null = true)]
pub struct RunRow {
    pub id: String,
    pub schedule_id: String,
    pub slot_at: i64,
    pub manual: bool,
    pub status: String,
    pub reason: Option<String>,
    pub task_id: Option<String>,
    pub batch_id: Option<String>,
    pub created_at: i64,
}

pub fn insert(conn: &mut DbConn, row: &ScheduleRow) -> Result<(), StoreError> {
    // The multi-backend cannot express INSERT; each backend gets its own copy.
    match conn {
        DbConn::Sqlite(c) => diesel::insert_into(schedules::table)
            .values(row)
            .execute(c)?,
        DbConn::Pg(c) => diesel::insert_into(schedules::table)
            .values(row)
            .execute(c)?,
    };
    Ok(())
}

pub fn save(conn: &mut DbConn, row: &ScheduleRow) -> Result<(), StoreError> {
    let n = diesel::update(schedules::table.find(&row.id))
        .set(row)
        .execute(conn)?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// By id, else by name.
pub fn get(conn: &mut DbConn, key: &str) -> Result<Option<ScheduleRow>, StoreError> {
    let by_id = schedules::table
        .find(key)
        .select(ScheduleRow::as_select())
        .first(conn)
        .optional()?;
    if by_id.is_some() {
        return Ok(by_id);
    }
    Ok(schedules::table
        .filter(schedules::name.eq(key))
        .select(ScheduleRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn all(conn: &mut DbConn) -> Result<Vec<ScheduleRow>, StoreError> {
    Ok(schedules::table
        .order(schedules::name.asc())
        .select(ScheduleRow::as_select())
        .load(conn)?)
}

/// Filters and page of a schedule list.
#[derive(Clone, Debug, Default)]
pub struct ScheduleQuery {
    pub kind: Option<String>,
    pub tag: Option<String>,
    pub enabled: Option<bool>,
    pub offset: i64,
    pub limit: i64,
}

fn filtered(q: &ScheduleQuery) -> schedules::BoxedQuery<'static, MultiBackend> {
    let mut query = schedules::table.into_boxed::<MultiBackend>();
    if let Some(k) = &q.kind {
        query = query.filter(schedules::trigger_kind.eq(k.clone()));
    }
    if let Some(e) = q.enabled {
        query = query.filter(schedules::enabled.eq(e));
    }
    if let Some(tag) = &q.tag {
        let quoted = serde_json::to_string(tag).unwrap_or_default();
        let lit = quoted
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        query = query.filter(schedules::tags.like(format!("%{lit}%")).escape('\\'));
    }
    query
}

pub fn list(conn: &mut DbConn, q: &ScheduleQuery) -> Result<(Vec<ScheduleRow>, i64), StoreError> {
    let total: i64 = filtered(q).count().get_result(conn)?;
    let rows = filtered(q)
        .order((schedules::name.asc(), schedules::id.asc()))
        .offset(q.offset)
        .limit(q.limit)
        .select(ScheduleRow::as_select())
        .load(conn)?;
    Ok((rows, total))
}

/// Deletes a schedule and its run records (the tasks and batches it made stay).
pub fn delete(conn: &mut DbConn, id: &str) -> Result<bool, StoreError> {
    diesel::delete(schedule_runs::table.filter(schedule_runs::schedule_id.eq(id))).execute(conn)?;
    Ok(diesel::delete(schedules::table.find(id)).execute(conn)? > 0)
}

/// Whether this slot of this schedule was already handled.
pub fn slot_taken(conn: &mut DbConn, schedule_id: &str, slot: Millis) -> Result<bool, StoreError> {
    let n: i64 = schedule_runs::table
        .filter(schedule_runs::schedule_id.eq(schedule_id))
        .filter(schedule_runs::slot_at.eq(slot))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Records a handled slot and moves the schedule's `last_slot` forward (for a timed slot).
/// Fails with a unique violation when the slot was handled already: run it inside a write so
/// the savepoint rolls back.
pub fn record_run(conn: &mut DbConn, run: &RunRow) -> Result<(), StoreError> {
    match conn {
        DbConn::Sqlite(c) => diesel::insert_into(schedule_runs::table)
            .values(run)
            .execute(c)?,
        DbConn::Pg(c) => diesel::insert_into(schedule_runs::table)
            .values(run)
            .execute(c)?,
    };
    if !run.manual {
        diesel::update(
            schedules::table.find(&run.schedule_id).filter(
                schedules::last_slot
                    .is_null()
                    .or(schedules::last_slot.lt(run.slot_at)),
            ),
        )
        .set(schedules::last_slot.eq(run.slot_at))
        .execute(conn)?;
    }
    Ok(())
}

/// Marks slots as handled without a run (pause, resume, and slots dropped by `skip`).
pub fn advance(conn: &mut DbConn, id: &str, slot: Millis) -> Result<(), StoreError> {
    diesel::update(schedules::table.find(id))
        .set(schedules::last_slot.eq(slot))
        .execute(conn)?;
    Ok(())
}

pub fn finish_run(
    conn: &mut DbConn,
    run_id: &str,
    status: &str,
    reason: Option<String>,
    task_id: Option<String>,
    batch_id: Option<String>,
) -> Result<(), StoreError> {
    diesel::update(schedule_runs::table.find(run_id))
        .set((
            schedule_runs::status.eq(status),
            schedule_runs::reason.eq(reason),
            schedule_runs::task_id.eq(task_id),
            schedule_runs::batch_id.eq(batch_id),
        ))
        .execute(conn)?;
    Ok(())
}

/// A run and the current status of the task or batch it made.
pub type RunWithStatus = (RunRow, Option<String>);

/// The runs of a schedule, newest first, with the current status of what each one made.
pub fn runs(
    conn: &mut DbConn,
    schedule_id: &str,
    offset: i64,
    limit: i64,
) -> Result<(Vec<RunWithStatus>, i64), StoreError> {
    let total: i64 = schedule_runs::table
        .filter(schedule_runs::schedule_id.eq(schedule_id))
        .count()
        .get_result(conn)?;
    let rows: Vec<RunRow> = schedule_runs::table
        .filter(schedule_runs::schedule_id.eq(schedule_id))
        .order((
            schedule_runs::created_at.desc(),
            schedule_runs::slot_at.desc(),
        ))
        .offset(offset)
        .limit(limit)
        .select(RunRow::as_select())
        .load(conn)?;
    let with_status = rows
        .into_iter()
        .map(|r| {
            let s = made_status(conn, &r)?;
            Ok((r, s))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok((with_status, total))
}

/// The status of the task or batch a run made (none for a skipped run).
fn made_status(conn: &mut DbConn, r: &RunRow) -> Result<Option<String>, StoreError> {
    if let Some(t) = &r.task_id {
        return Ok(tasks::table
            .find(t)
            .select(tasks::status)
            .first(conn)
            .optional()?);
    }
    if let Some(b) = &r.batch_id {
        return Ok(batches::table
            .find(b)
            .select(batches::status)
            .first(conn)
            .optional()?);
    }
    Ok(None)
}

/// The newest run of a schedule and the status of what it made (`skipped` / `failed` runs
/// report their own status).
pub fn last_run(conn: &mut DbConn, schedule_id: &str) -> Result<Option<RunWithStatus>, StoreError> {
    let (mut rows, _) = runs(conn, schedule_id, 0, 1)?;
    Ok(rows.pop())
}

/// The newest run that made something, with that thing's status (for `depends_on`).
pub fn last_fired_status(
    conn: &mut DbConn,
    schedule_id: &str,
) -> Result<Option<String>, StoreError> {
    let row: Option<RunRow> = schedule_runs::table
        .filter(schedule_runs::schedule_id.eq(schedule_id))
        .filter(schedule_runs::status.eq("fired"))
        .order((
            schedule_runs::created_at.desc(),
            schedule_runs::slot_at.desc(),
        ))
        .select(RunRow::as_select())
        .first(conn)
        .optional()?;
    match row {
        None => Ok(None),
        Some(r) => made_status(conn, &r),
    }
}

/// How many tasks or batches made by this schedule are still live.
pub fn live_runs(conn: &mut DbConn, schedule_id: &str) -> Result<i64, StoreError> {
    let live = ["pending", "running", "paused"];
    let task_ids = schedule_runs::table
        .filter(schedule_runs::schedule_id.eq(schedule_id))
        .filter(schedule_runs::task_id.is_not_null())
        .select(schedule_runs::task_id.assume_not_null());
    let t: i64 = tasks::table
        .filter(tasks::id.eq_any(task_ids))
        .filter(tasks::status.eq_any(live))
        .count()
        .get_result(conn)?;
    let batch_ids = schedule_runs::table
        .filter(schedule_runs::schedule_id.eq(schedule_id))
        .filter(schedule_runs::batch_id.is_not_null())
        .select(schedule_runs::batch_id.assume_not_null());
    let b: i64 = batches::table
        .filter(batches::id.eq_any(batch_ids))
        .filter(batches::status.eq_any(live))
        .count()
        .get_result(conn)?;
    // A run claimed a moment ago whose task is not stored yet is live too.
    let claimed: i64 = schedule_runs::table
        .filter(schedule_runs::schedule_id.eq(schedule_id))
        .filter(schedule_runs::status.eq("claimed"))
        .count()
        .get_result(conn)?;
    Ok(t + b + claimed)
}

/// Start-up: runs claimed by a process that stopped before it made their task or batch are
/// failed (the slot stays handled: a slot fires at most once).
pub fn fail_interrupted(conn: &mut DbConn) -> Result<usize, StoreError> {
    Ok(
        diesel::update(schedule_runs::table.filter(schedule_runs::status.eq("claimed")))
            .set((
                schedule_runs::status.eq("failed"),
                schedule_runs::reason.eq("steward stopped before the run was created"),
            ))
            .execute(conn)?,
    )
}
