//! Task, history and log queries. Functions take a connection and run synchronously; callers
//! reach them through [`super::Store::read`] and [`super::Store::write`].

use diesel::prelude::*;

use super::conn::{DbConn, MultiBackend};
use super::rows::{
    HistoryRow, LogLine, LogRow, NewHistoryRow, NewLogRow, NewTaskRow, TaskChanges, TaskRow,
};
use super::schema::{task_history, task_logs, tasks};
use super::StoreError;
use crate::domain::{LogLevel, Millis, Task, TaskId, TaskStatus, Transition};

/// Columns a task list may be sorted by; anything else is refused before SQL is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortColumn {
    CreatedAt,
    UpdatedAt,
    Priority,
    Name,
    Status,
    Progress,
    StartedAt,
    FinishedAt,
    Type,
}

impl SortColumn {
    pub const NAMES: &'static [&'static str] = &[
        "created_at",
        "updated_at",
        "priority",
        "name",
        "status",
        "progress",
        "started_at",
        "finished_at",
        "type",
    ];

    pub fn parse(s: &str) -> Option<SortColumn> {
        use SortColumn::*;
        Some(match s {
            "created_at" => CreatedAt,
            "updated_at" => UpdatedAt,
            "priority" => Priority,
            "name" => Name,
            "status" => Status,
            "progress" => Progress,
            "started_at" => StartedAt,
            "finished_at" => FinishedAt,
            "type" => Type,
            _ => return None,
        })
    }
}

/// Filters, order and page of a task list.
#[derive(Clone, Debug)]
pub struct TaskQuery {
    pub statuses: Vec<TaskStatus>,
    pub task_type: Option<String>,
    pub tag: Option<String>,
    pub batch_id: Option<String>,
    pub schedule_id: Option<String>,
    pub ids: Vec<TaskId>,
    pub text: Option<String>,
    pub created_after: Option<Millis>,
    pub created_before: Option<Millis>,
    pub sort: SortColumn,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
}

impl Default for TaskQuery {
    fn default() -> Self {
        TaskQuery {
            statuses: vec![],
            task_type: None,
            tag: None,
            batch_id: None,
            schedule_id: None,
            ids: vec![],
            text: None,
            created_after: None,
            created_before: None,
            sort: SortColumn::CreatedAt,
            descending: true,
            offset: 0,
            limit: 50,
        }
    }
}

/// Escapes LIKE wildcards so user text matches literally (with `\` as the escape character).
pub(crate) fn like_literal(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn filtered(q: &TaskQuery) -> tasks::BoxedQuery<'static, MultiBackend> {
    let mut query = tasks::table.into_boxed::<MultiBackend>();
    if !q.statuses.is_empty() {
        let names: Vec<&'static str> = q.statuses.iter().map(|s| s.as_str()).collect();
        query = query.filter(tasks::status.eq_any(names));
    }
    if let Some(t) = &q.task_type {
        query = query.filter(tasks::task_type.eq(t.clone()));
    }
    if let Some(tag) = &q.tag {
        let quoted = serde_json::to_string(tag).unwrap_or_default();
        query = query.filter(
            tasks::tags
                .like(format!("%{}%", like_literal(&quoted)))
                .escape('\\'),
        );
    }
    if let Some(b) = &q.batch_id {
        query = query.filter(tasks::batch_id.eq(b.clone()));
    }
    if let Some(s) = &q.schedule_id {
        query = query.filter(tasks::schedule_id.eq(s.clone()));
    }
    if !q.ids.is_empty() {
        let ids: Vec<String> = q.ids.iter().map(|i| i.to_string()).collect();
        query = query.filter(tasks::id.eq_any(ids));
    }
    if let Some(text) = &q.text {
        let pattern = format!("%{}%", like_literal(text));
        query = query.filter(
            tasks::name
                .like(pattern.clone())
                .escape('\\')
                .or(tasks::id.like(pattern.clone()).escape('\\'))
                .or(tasks::task_type.like(pattern).escape('\\')),
        );
    }
    if let Some(after) = q.created_after {
        query = query.filter(tasks::created_at.ge(after));
    }
    if let Some(before) = q.created_before {
        query = query.filter(tasks::created_at.lt(before));
    }
    query
}

fn ordered(
    query: tasks::BoxedQuery<'static, MultiBackend>,
    col: SortColumn,
    desc: bool,
) -> tasks::BoxedQuery<'static, MultiBackend> {
    use SortColumn::*;
    macro_rules! by {
        ($c:expr) => {
            if desc {
                query.order(($c.desc(), tasks::id.desc()))
            } else {
                query.order(($c.asc(), tasks::id.asc()))
            }
        };
    }
    match col {
        CreatedAt => by!(tasks::created_at),
        UpdatedAt => by!(tasks::updated_at),
        Priority => by!(tasks::priority),
        Name => by!(tasks::name),
        Status => by!(tasks::status),
        Progress => by!(tasks::progress),
        StartedAt => by!(tasks::started_at),
        FinishedAt => by!(tasks::finished_at),
        Type => by!(tasks::task_type),
    }
}

fn to_tasks(rows: Vec<TaskRow>) -> Result<Vec<Task>, StoreError> {
    rows.into_iter().map(Task::try_from).collect()
}

/// One page of tasks and the total matching the filters.
pub fn list(conn: &mut DbConn, q: &TaskQuery) -> Result<(Vec<Task>, i64), StoreError> {
    let total: i64 = filtered(q).count().get_result(conn)?;
    let rows: Vec<TaskRow> = ordered(filtered(q), q.sort, q.descending)
        .offset(q.offset)
        .limit(q.limit)
        .select(TaskRow::as_select())
        .load(conn)?;
    Ok((to_tasks(rows)?, total))
}

/// Above this many matches a kept count stands in for `COUNT(*)`, which reads every
/// matching index entry (tens of milliseconds at a million rows).
pub const KEPT_COUNT_FROM: i64 = 50_000;

/// One page of tasks and the total matching the filters. A short page gives the total
/// exactly; otherwise `kept`, the caller's running count for these filters, serves when it
/// is large (it trails the store by the events not yet counted — at most a few), and the
/// store counts when it is not.
pub fn list_counted(
    conn: &mut DbConn,
    q: &TaskQuery,
    kept: Option<i64>,
) -> Result<(Vec<Task>, i64), StoreError> {
    let rows = list_chunk(conn, q, q.offset, q.limit)?;
    let seen = q.offset + rows.len() as i64;
    let total = match kept {
        _ if !rows.is_empty() && (rows.len() as i64) < q.limit => seen,
        Some(k) if k >= KEPT_COUNT_FROM => k.max(seen),
        _ => filtered(q).count().get_result(conn)?,
    };
    Ok((rows, total))
}

impl TaskQuery {
    /// Whether only status and type filter it: its total is then a sum of kept counts.
    pub fn by_status_and_type_only(&self) -> bool {
        // Spelled out field by field, so a new filter cannot be added without deciding here.
        let TaskQuery {
            statuses: _,
            task_type: _,
            tag,
            batch_id,
            schedule_id,
            ids,
            text,
            created_after,
            created_before,
            sort: _,
            descending: _,
            offset: _,
            limit: _,
        } = self;
        tag.is_none()
            && batch_id.is_none()
            && schedule_id.is_none()
            && ids.is_empty()
            && text.is_none()
            && created_after.is_none()
            && created_before.is_none()
    }
}

/// Every task matching the filters, in order, a chunk at a time (for exports).
pub fn list_chunk(
    conn: &mut DbConn,
    q: &TaskQuery,
    offset: i64,
    chunk: i64,
) -> Result<Vec<Task>, StoreError> {
    let rows: Vec<TaskRow> = ordered(filtered(q), q.sort, q.descending)
        .offset(offset)
        .limit(chunk)
        .select(TaskRow::as_select())
        .load(conn)?;
    to_tasks(rows)
}

pub fn get(conn: &mut DbConn, id: TaskId) -> Result<Option<Task>, StoreError> {
    // No `LIMIT ?` (the id is unique): SQLite re-prepares a statement whose LIMIT is bound,
    // at every execution, to plan for the value.
    let key = id.to_string();
    let row: Option<TaskRow> = on_backend!(conn, c => tasks::table
        .find(&key)
        .select(TaskRow::as_select())
        .get_result(c)
        .optional())?;
    row.map(Task::try_from).transpose()
}

pub fn get_many(conn: &mut DbConn, ids: &[TaskId]) -> Result<Vec<Task>, StoreError> {
    let keys: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(500) {
        let rows: Vec<TaskRow> = on_backend!(conn, c => tasks::table
            .filter(tasks::id.eq_any(chunk))
            .select(TaskRow::as_select())
            .load(c))?;
        out.extend(to_tasks(rows)?);
    }
    Ok(out)
}

/// Inserts new tasks with their first history rows.
pub fn insert(conn: &mut DbConn, items: &[(Task, Transition)]) -> Result<(), StoreError> {
    for chunk in items.chunks(500) {
        let rows: Vec<NewTaskRow> = chunk.iter().map(|(t, _)| NewTaskRow::from(t)).collect();
        batch_insert!(conn, tasks::table, &rows)?;
        let hist: Vec<NewHistoryRow> = chunk
            .iter()
            .map(|(t, h)| NewHistoryRow::new(t.id, h))
            .collect();
        batch_insert!(conn, task_history::table, &hist)?;
    }
    Ok(())
}

/// Writes a changed task if nobody else changed it since `expected_version`, with the history
/// rows of its transitions. Returns false (and writes nothing) on a version conflict.
pub fn save(
    conn: &mut DbConn,
    task: &Task,
    expected_version: i64,
    history: &[Transition],
) -> Result<bool, StoreError> {
    let changes = TaskChanges::from(task);
    let id = task.id.to_string();
    let n = on_backend!(conn, c => SaveTask {
        changes: (&changes).as_changeset(),
        id: &id,
        version: expected_version,
    }
    .execute(c))?;
    if n == 0 {
        return Ok(false);
    }
    if !history.is_empty() {
        let hist: Vec<NewHistoryRow> = history
            .iter()
            .map(|h| NewHistoryRow::new(task.id, h))
            .collect();
        batch_insert!(conn, task_history::table, &hist)?;
    }
    Ok(true)
}

/// `UPDATE tasks SET <every changeable column> WHERE id = ? AND version = ?`. diesel never
/// caches its own `UPDATE` statements (a changeset's columns may vary); this one's never do, so
/// it has a static query id and is prepared once per connection.
struct SaveTask<'a> {
    changes: <&'a TaskChanges as AsChangeset>::Changeset,
    id: &'a str,
    version: i64,
}

impl diesel::query_builder::QueryId for SaveTask<'_> {
    type QueryId = SaveTask<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB> diesel::query_builder::QueryFragment<DB> for SaveTask<'_>
where
    DB: diesel::backend::Backend,
    for<'a> <&'a TaskChanges as AsChangeset>::Changeset: diesel::query_builder::QueryFragment<DB>,
    DB: diesel::sql_types::HasSqlType<diesel::sql_types::Text>
        + diesel::sql_types::HasSqlType<diesel::sql_types::BigInt>,
    str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
    i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> diesel::QueryResult<()> {
        out.push_sql("UPDATE tasks SET ");
        self.changes.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<diesel::sql_types::Text, str>(self.id)?;
        out.push_sql(" AND version = ");
        out.push_bind_param::<diesel::sql_types::BigInt, i64>(&self.version)?;
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for SaveTask<'_> {}

/// The live holder (pending, running or paused) of a mutex key other than `except`.
pub fn mutex_holder(
    conn: &mut DbConn,
    key: &str,
    except: Option<TaskId>,
) -> Result<Option<TaskId>, StoreError> {
    let live = [
        TaskStatus::Pending.as_str(),
        TaskStatus::Running.as_str(),
        TaskStatus::Paused.as_str(),
    ];
    let mut q = tasks::table
        .select(tasks::id)
        .filter(tasks::mutex_key.eq(key))
        .filter(tasks::status.eq_any(live))
        .into_boxed::<MultiBackend>();
    if let Some(me) = except {
        q = q.filter(tasks::id.ne(me.to_string()));
    }
    let id: Option<String> = q.first(conn).optional()?;
    id.map(|s| {
        s.parse()
            .map_err(|e| StoreError::Corrupt(format!("id: {e}")))
    })
    .transpose()
}

/// Which of `ids` exist, with their status.
pub fn statuses(
    conn: &mut DbConn,
    ids: &[TaskId],
) -> Result<Vec<(TaskId, TaskStatus)>, StoreError> {
    let keys: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let mut out = Vec::with_capacity(ids.len());
    for chunk in keys.chunks(500) {
        let rows: Vec<(String, String)> = tasks::table
            .select((tasks::id, tasks::status))
            .filter(tasks::id.eq_any(chunk))
            .load(conn)?;
        for (id, st) in rows {
            let id = id
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("id: {e}")))?;
            let st = st.parse().map_err(StoreError::Corrupt)?;
            out.push((id, st));
        }
    }
    Ok(out)
}

/// Tasks that are not finished (pending, running, paused), oldest first: what start-up
/// rebuilds the scheduler and the task actors from.
pub fn live(conn: &mut DbConn) -> Result<Vec<Task>, StoreError> {
    let live = [
        TaskStatus::Pending.as_str(),
        TaskStatus::Running.as_str(),
        TaskStatus::Paused.as_str(),
    ];
    let rows: Vec<TaskRow> = tasks::table
        .filter(tasks::status.eq_any(live))
        .order((tasks::created_at.asc(), tasks::id.asc()))
        .select(TaskRow::as_select())
        .load(conn)?;
    to_tasks(rows)
}

/// Deletes a terminal task with its history and logs. Ok(false) when it is not terminal.
pub fn delete_terminal(conn: &mut DbConn, id: TaskId) -> Result<bool, StoreError> {
    let terminal = [
        TaskStatus::Success.as_str(),
        TaskStatus::Failed.as_str(),
        TaskStatus::Cancelled.as_str(),
    ];
    let key = id.to_string();
    diesel::delete(task_history::table.filter(task_history::task_id.eq(&key))).execute(conn)?;
    diesel::delete(task_logs::table.filter(task_logs::task_id.eq(&key))).execute(conn)?;
    let n = diesel::delete(
        tasks::table
            .filter(tasks::id.eq(&key))
            .filter(tasks::status.eq_any(terminal)),
    )
    .execute(conn)?;
    Ok(n == 1)
}

pub fn history(conn: &mut DbConn, id: TaskId) -> Result<Vec<HistoryRow>, StoreError> {
    Ok(task_history::table
        .filter(task_history::task_id.eq(id.to_string()))
        .order(task_history::id.asc())
        .select(HistoryRow::as_select())
        .load(conn)?)
}

/// A page of a task's history (oldest first) and how many rows it has in all.
pub fn history_page(
    conn: &mut DbConn,
    id: TaskId,
    offset: i64,
    limit: i64,
) -> Result<(Vec<HistoryRow>, i64), StoreError> {
    let key = id.to_string();
    let total: i64 = task_history::table
        .filter(task_history::task_id.eq(&key))
        .count()
        .get_result(conn)?;
    let rows = task_history::table
        .filter(task_history::task_id.eq(&key))
        .order(task_history::id.asc())
        .offset(offset)
        .limit(limit)
        .select(HistoryRow::as_select())
        .load(conn)?;
    Ok((rows, total))
}

pub fn insert_logs(conn: &mut DbConn, lines: &[LogLine]) -> Result<(), StoreError> {
    for chunk in lines.chunks(500) {
        let rows: Vec<NewLogRow> = chunk.iter().map(NewLogRow::from).collect();
        batch_insert!(conn, task_logs::table, &rows)?;
    }
    Ok(())
}

/// Log filters: at least `min_level`, ids after `after`, at most `limit` lines.
#[derive(Clone, Debug)]
pub struct LogQuery {
    pub min_level: Option<LogLevel>,
    pub after: Option<i64>,
    pub limit: i64,
}

fn log_filter(id: TaskId, q: &LogQuery) -> task_logs::BoxedQuery<'static, MultiBackend> {
    let mut query = task_logs::table
        .filter(task_logs::task_id.eq(id.to_string()))
        .into_boxed::<MultiBackend>();
    if let Some(min) = q.min_level {
        let levels: Vec<&'static str> = LogLevel::ALL
            .iter()
            .filter(|l| l.rank() >= min.rank())
            .map(|l| l.as_str())
            .collect();
        query = query.filter(task_logs::level.eq_any(levels));
    }
    if let Some(after) = q.after {
        query = query.filter(task_logs::id.gt(after));
    }
    query
}

/// A page of a task's log lines (oldest first) and how many match in all.
pub fn logs(
    conn: &mut DbConn,
    id: TaskId,
    q: &LogQuery,
    offset: i64,
) -> Result<(Vec<LogRow>, i64), StoreError> {
    let total: i64 = log_filter(id, q).count().get_result(conn)?;
    let rows = log_filter(id, q)
        .order(task_logs::id.asc())
        .offset(offset)
        .limit(q.limit)
        .select(LogRow::as_select())
        .load(conn)?;
    Ok((rows, total))
}

/// Read-modify-write of one task inside a write job: atomic with respect to every other
/// steward write, since they all go through the one writer. `f` returns the history rows of
/// its change, or its own refusal (nothing is written then).
pub fn modify<E>(
    conn: &mut DbConn,
    id: TaskId,
    f: impl FnOnce(&mut Task) -> Result<Vec<Transition>, E>,
) -> Result<Result<Task, E>, StoreError> {
    let Some(mut task) = get(conn, id)? else {
        return Err(StoreError::NotFound);
    };
    let before = task.version;
    let history = match f(&mut task) {
        Ok(h) => h,
        Err(e) => return Ok(Err(e)),
    };
    if task.version != before || !history.is_empty() {
        if task.version == before {
            task.version += 1;
        }
        if !save(conn, &task, before, &history)? {
            return Err(StoreError::Conflict);
        }
    }
    Ok(Ok(task))
}

type Predicate =
    Box<dyn BoxableExpression<tasks::table, MultiBackend, SqlType = diesel::sql_types::Bool>>;

/// The statistics filters as one boxed predicate (a boxed *query* cannot be grouped).
fn predicate(q: &TaskQuery) -> Predicate {
    let mut p: Predicate = Box::new(tasks::created_at.ge(0i64));
    if let Some(t) = &q.task_type {
        p = Box::new(p.and(tasks::task_type.eq(t.clone())));
    }
    if let Some(tag) = &q.tag {
        let quoted = serde_json::to_string(tag).unwrap_or_default();
        p = Box::new(
            p.and(
                tasks::tags
                    .like(format!("%{}%", like_literal(&quoted)))
                    .escape('\\'),
            ),
        );
    }
    if let Some(b) = &q.batch_id {
        p = Box::new(p.and(tasks::batch_id.eq(b.clone()).assume_not_null()));
    }
    if let Some(s) = &q.schedule_id {
        p = Box::new(p.and(tasks::schedule_id.eq(s.clone()).assume_not_null()));
    }
    if let Some(after) = q.created_after {
        p = Box::new(p.and(tasks::created_at.ge(after)));
    }
    if let Some(before) = q.created_before {
        p = Box::new(p.and(tasks::created_at.lt(before)));
    }
    p
}

/// Counts by (type, status) of the tasks matching the filters.
pub fn counts_by_type_status(
    conn: &mut DbConn,
    q: &TaskQuery,
) -> Result<Vec<(String, String, i64)>, StoreError> {
    Ok(tasks::table
        .filter(predicate(q))
        .group_by((tasks::task_type, tasks::status))
        .select((tasks::task_type, tasks::status, diesel::dsl::count_star()))
        .load(conn)?)
}

/// (created_at, started_at, finished_at) of the most recently finished tasks matching the
/// filters, newest first, at most `limit`: the sample for duration and wait percentiles.
pub fn finished_times(
    conn: &mut DbConn,
    q: &TaskQuery,
    limit: i64,
) -> Result<Vec<(i64, i64, i64)>, StoreError> {
    let rows: Vec<(i64, Option<i64>, Option<i64>)> = filtered(q)
        .filter(tasks::status.eq_any(["success", "failed"]))
        .filter(tasks::started_at.is_not_null())
        .filter(tasks::finished_at.is_not_null())
        .order(tasks::finished_at.desc())
        .limit(limit)
        .select((tasks::created_at, tasks::started_at, tasks::finished_at))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(c, s, f)| Some((c, s?, f?)))
        .collect())
}

/// How many tasks matching the filters finished at or after `since`.
pub fn finished_since(conn: &mut DbConn, q: &TaskQuery, since: i64) -> Result<i64, StoreError> {
    Ok(filtered(q)
        .filter(tasks::finished_at.ge(since))
        .count()
        .get_result(conn)?)
}

/// Creation time of the oldest pending task that is free to run (not held, no retry delay).
pub fn oldest_waiting(conn: &mut DbConn) -> Result<Option<i64>, StoreError> {
    Ok(tasks::table
        .filter(tasks::status.eq("pending"))
        .filter(tasks::held.eq(false))
        .filter(tasks::not_before.is_null())
        .select(diesel::dsl::min(tasks::created_at))
        .first(conn)?)
}

/// Deletes up to `chunk` finished tasks that finished before `before` (with their history
/// and logs); returns how many. Small chunks keep each transaction short.
pub fn delete_finished_before(
    conn: &mut DbConn,
    before: i64,
    chunk: i64,
) -> Result<usize, StoreError> {
    let ids: Vec<String> = tasks::table
        .select(tasks::id)
        .filter(tasks::status.eq_any(["success", "failed", "cancelled"]))
        .filter(tasks::finished_at.lt(before))
        .limit(chunk)
        .load(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::delete(task_history::table.filter(task_history::task_id.eq_any(&ids))).execute(conn)?;
    diesel::delete(task_logs::table.filter(task_logs::task_id.eq_any(&ids))).execute(conn)?;
    Ok(diesel::delete(tasks::table.filter(tasks::id.eq_any(&ids))).execute(conn)?)
}

/// Filters of the cross-task log search.
#[derive(Clone, Debug, Default)]
pub struct LogSearch {
    pub task_id: Option<TaskId>,
    pub min_level: Option<LogLevel>,
    pub text: Option<String>,
    pub after: Option<i64>,
    pub before: Option<i64>,
    pub offset: i64,
    pub limit: i64,
}

fn log_search_filter(q: &LogSearch) -> task_logs::BoxedQuery<'static, MultiBackend> {
    let mut query = task_logs::table.into_boxed::<MultiBackend>();
    if let Some(id) = q.task_id {
        query = query.filter(task_logs::task_id.eq(id.to_string()));
    }
    if let Some(min) = q.min_level {
        let levels: Vec<&'static str> = LogLevel::ALL
            .iter()
            .filter(|l| l.rank() >= min.rank())
            .map(|l| l.as_str())
            .collect();
        query = query.filter(task_logs::level.eq_any(levels));
    }
    if let Some(t) = &q.text {
        query = query.filter(
            task_logs::message
                .like(format!("%{}%", like_literal(t)))
                .escape('\\'),
        );
    }
    if let Some(a) = q.after {
        query = query.filter(task_logs::at.ge(a));
    }
    if let Some(b) = q.before {
        query = query.filter(task_logs::at.lt(b));
    }
    query
}

/// Log lines of every task matching the search, newest first, and the total.
pub fn search_logs(conn: &mut DbConn, q: &LogSearch) -> Result<(Vec<LogRow>, i64), StoreError> {
    let total = log_search_filter(q).count().get_result(conn)?;
    let rows = log_search_filter(q)
        .order(task_logs::id.desc())
        .offset(q.offset)
        .limit(q.limit)
        .select(LogRow::as_select())
        .load(conn)?;
    Ok((rows, total))
}

pub fn log_line(conn: &mut DbConn, id: i64) -> Result<Option<LogRow>, StoreError> {
    Ok(task_logs::table
        .find(id)
        .select(LogRow::as_select())
        .first(conn)
        .optional()?)
}
