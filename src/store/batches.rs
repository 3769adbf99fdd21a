//! Batch queries, the per-status counts of a batch's tasks, and persisted settings.

use diesel::dsl::{count_star, sum};
use diesel::prelude::*;

use super::conn::{DbConn, MultiBackend};
use super::schema::{batches, settings, task_history, task_logs, tasks};
use super::StoreError;
use crate::domain::batch::{Batch, Counts};
use crate::domain::{TaskId, TaskStatus};

#[derive(Queryable, Selectable, Insertable, AsChangeset, Clone, Debug)]
#[diesel(table_name = batches, treat_none_as_null = true)]
pub struct BatchRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub status: String,
    pub priority: i32,
    pub mode: String,
    pub max_parallel: Option<i32>,
    pub on_failure: String,
    pub depends_on: String,
    pub callback_url: Option<String>,
    pub tags: String,
    pub created_by: Option<String>,
    pub task_count: i32,
    pub paused: bool,
    pub cancelled: bool,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

fn corrupt(field: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("batch {field}: {e}"))
}

impl From<&Batch> for BatchRow {
    fn from(b: &Batch) -> Self {
        BatchRow {
            id: b.id.clone(),
            name: b.name.clone(),
            description: b.description.clone(),
            status: b.status.as_str().into(),
            priority: b.priority,
            mode: b.mode.as_str().into(),
            max_parallel: b.max_parallel,
            on_failure: b.on_failure.as_str().into(),
            depends_on: serde_json::to_string(&b.depends_on).unwrap_or_else(|_| "[]".into()),
            callback_url: b.callback_url.clone(),
            tags: serde_json::to_string(&b.tags).unwrap_or_else(|_| "[]".into()),
            created_by: b.created_by.clone(),
            task_count: b.task_count,
            paused: b.paused,
            cancelled: b.cancelled,
            version: b.version,
            created_at: b.created_at,
            updated_at: b.updated_at,
            started_at: b.started_at,
            finished_at: b.finished_at,
        }
    }
}

impl TryFrom<BatchRow> for Batch {
    type Error = StoreError;
    fn try_from(r: BatchRow) -> Result<Batch, StoreError> {
        Ok(Batch {
            id: r.id,
            name: r.name,
            description: r.description,
            status: r.status.parse().map_err(|e| corrupt("status", e))?,
            priority: r.priority,
            mode: r.mode.parse().map_err(|e| corrupt("mode", e))?,
            max_parallel: r.max_parallel,
            on_failure: r.on_failure.parse().map_err(|e| corrupt("on_failure", e))?,
            depends_on: serde_json::from_str(&r.depends_on)
                .map_err(|e| corrupt("depends_on", e))?,
            callback_url: r.callback_url,
            tags: serde_json::from_str(&r.tags).map_err(|e| corrupt("tags", e))?,
            created_by: r.created_by,
            task_count: r.task_count,
            paused: r.paused,
            cancelled: r.cancelled,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        })
    }
}

pub fn insert(conn: &mut DbConn, b: &Batch) -> Result<(), StoreError> {
    let row = BatchRow::from(b);
    match conn {
        DbConn::Sqlite(c) => diesel::insert_into(batches::table)
            .values(&row)
            .execute(c)?,
        DbConn::Pg(c) => diesel::insert_into(batches::table)
            .values(&row)
            .execute(c)?,
    };
    Ok(())
}

pub fn get(conn: &mut DbConn, id: &str) -> Result<Option<Batch>, StoreError> {
    // No `LIMIT ?` (the id is unique): SQLite re-prepares a statement whose LIMIT is bound.
    let row: Option<BatchRow> = on_backend!(conn, c => batches::table
        .find(id)
        .select(BatchRow::as_select())
        .get_result(c)
        .optional())?;
    row.map(Batch::try_from).transpose()
}

pub fn save(conn: &mut DbConn, b: &Batch) -> Result<(), StoreError> {
    let row = BatchRow::from(b);
    diesel::update(batches::table.find(&row.id))
        .set(&row)
        .execute(conn)?;
    Ok(())
}

/// Filters and page of a batch list.
#[derive(Clone, Debug, Default)]
pub struct BatchQuery {
    pub statuses: Vec<String>,
    pub tag: Option<String>,
    pub offset: i64,
    pub limit: i64,
}

fn filtered(q: &BatchQuery) -> batches::BoxedQuery<'static, MultiBackend> {
    let mut query = batches::table.into_boxed::<MultiBackend>();
    if !q.statuses.is_empty() {
        query = query.filter(batches::status.eq_any(q.statuses.clone()));
    }
    if let Some(tag) = &q.tag {
        let quoted = serde_json::to_string(tag).unwrap_or_default();
        let lit = quoted
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        query = query.filter(batches::tags.like(format!("%{lit}%")).escape('\\'));
    }
    query
}

pub fn list(conn: &mut DbConn, q: &BatchQuery) -> Result<(Vec<Batch>, i64), StoreError> {
    let total: i64 = filtered(q).count().get_result(conn)?;
    let rows: Vec<BatchRow> = filtered(q)
        .order((batches::created_at.desc(), batches::id.desc()))
        .offset(q.offset)
        .limit(q.limit)
        .select(BatchRow::as_select())
        .load(conn)?;
    Ok((
        rows.into_iter()
            .map(Batch::try_from)
            .collect::<Result<_, _>>()?,
        total,
    ))
}

/// Batches not yet finished: what start-up rebuilds batch actors for.
pub fn live(conn: &mut DbConn) -> Result<Vec<Batch>, StoreError> {
    let rows: Vec<BatchRow> = batches::table
        .filter(batches::status.eq_any(["pending", "running", "paused"]))
        .order(batches::created_at.asc())
        .select(BatchRow::as_select())
        .load(conn)?;
    rows.into_iter().map(Batch::try_from).collect()
}

/// Per-status counts (and summed progress) of one batch's tasks. The counts come from the
/// `(batch_id, status)` index alone; only tasks whose progress can be anything (running,
/// paused, failed, cancelled) are read for it, since a pending task's progress is 0 (a new
/// attempt starts from nothing) and a successful one's is 100. A batch of 10,000 is recounted
/// many times while it runs, and reading every row for its progress was 13 % of the server's
/// CPU in W1.
pub fn counts(conn: &mut DbConn, id: &str) -> Result<Counts, StoreError> {
    let rows: Vec<(String, i64)> = on_backend!(conn, c => tasks::table
        .filter(tasks::batch_id.eq(id))
        .group_by(tasks::status)
        .select((tasks::status, count_star()))
        .load(c))?;
    let varying = [
        TaskStatus::Running.as_str(),
        TaskStatus::Paused.as_str(),
        TaskStatus::Failed.as_str(),
        TaskStatus::Cancelled.as_str(),
    ];
    let mut c = Counts::default();
    let mut any_varying = false;
    for (status, n) in rows {
        let st: TaskStatus = status.parse().map_err(|e| corrupt("task status", e))?;
        let known = if st == TaskStatus::Success {
            100.0 * n as f64
        } else {
            0.0
        };
        any_varying |= varying.contains(&st.as_str());
        c.add(st, n, known);
    }
    if any_varying {
        let partial: Option<f64> = on_backend!(conn, c => tasks::table
            .filter(tasks::batch_id.eq(id))
            .filter(tasks::status.eq_any(varying))
            .select(sum(tasks::progress))
            .first(c))?;
        c.progress_sum += partial.unwrap_or(0.0);
    }
    Ok(c)
}

/// The ids of a batch's tasks in the given statuses, in creation order.
pub fn task_ids(
    conn: &mut DbConn,
    id: &str,
    statuses: &[TaskStatus],
) -> Result<Vec<TaskId>, StoreError> {
    let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let ids: Vec<String> = tasks::table
        .select(tasks::id)
        .filter(tasks::batch_id.eq(id))
        .filter(tasks::status.eq_any(names))
        .order((tasks::created_at.asc(), tasks::id.asc()))
        .load(conn)?;
    ids.iter()
        .map(|s| s.parse().map_err(|e| corrupt("task id", e)))
        .collect()
}

/// Statuses of the given batches.
pub fn statuses(conn: &mut DbConn, ids: &[String]) -> Result<Vec<(String, String)>, StoreError> {
    Ok(batches::table
        .select((batches::id, batches::status))
        .filter(batches::id.eq_any(ids))
        .load(conn)?)
}

/// Deletes a finished batch with its tasks, their history and logs.
pub fn delete(conn: &mut DbConn, id: &str) -> Result<(), StoreError> {
    let ids = tasks::table
        .select(tasks::id)
        .filter(tasks::batch_id.eq(id));
    diesel::delete(task_history::table.filter(task_history::task_id.eq_any(ids))).execute(conn)?;
    let ids = tasks::table
        .select(tasks::id)
        .filter(tasks::batch_id.eq(id));
    diesel::delete(task_logs::table.filter(task_logs::task_id.eq_any(ids))).execute(conn)?;
    diesel::delete(tasks::table.filter(tasks::batch_id.eq(id))).execute(conn)?;
    diesel::delete(batches::table.find(id)).execute(conn)?;
    Ok(())
}

/// Sets the priority of a batch's pending tasks.
pub fn set_pending_priority(
    conn: &mut DbConn,
    id: &str,
    priority: i32,
    now: i64,
) -> Result<Vec<TaskId>, StoreError> {
    let ids = task_ids(conn, id, &[TaskStatus::Pending])?;
    diesel::update(
        tasks::table
            .filter(tasks::batch_id.eq(id))
            .filter(tasks::status.eq("pending")),
    )
    .set((
        tasks::priority.eq(priority),
        tasks::version.eq(tasks::version + 1),
        tasks::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(ids)
}

/// Every persisted setting (the overrides `PUT /system/config` stored).
pub fn settings_all(conn: &mut DbConn) -> Result<Vec<(String, String)>, StoreError> {
    Ok(settings::table
        .select((settings::key, settings::value))
        .load(conn)?)
}

/// Stores one setting, replacing an older value.
pub fn setting_put(conn: &mut DbConn, key: &str, value: &str, now: i64) -> Result<(), StoreError> {
    diesel::delete(settings::table.find(key)).execute(conn)?;
    let row = (
        settings::key.eq(key),
        settings::value.eq(value),
        settings::updated_at.eq(now),
    );
    match conn {
        DbConn::Sqlite(c) => diesel::insert_into(settings::table)
            .values(row)
            .execute(c)?,
        DbConn::Pg(c) => diesel::insert_into(settings::table)
            .values(row)
            .execute(c)?,
    };
    Ok(())
}

/// Read-modify-write of one batch inside a write job (atomic with every other write).
pub fn modify<T>(
    conn: &mut DbConn,
    id: &str,
    f: impl FnOnce(&mut Batch) -> T,
) -> Result<(Batch, T), StoreError> {
    let mut b = get(conn, id)?.ok_or(StoreError::NotFound)?;
    let out = f(&mut b);
    save(conn, &b)?;
    Ok((b, out))
}
