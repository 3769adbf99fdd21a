//! The system log's table: insert in batches, search with the task-log filters, read one
//! line, prune by age.

use diesel::prelude::*;

use super::conn::{DbConn, MultiBackend};
use super::schema::system_logs;
use super::tasks::{like_literal, LogSearch};
use super::StoreError;
use crate::domain::LogLevel;

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = system_logs)]
pub struct SystemLogRow {
    pub id: i64,
    pub level: String,
    pub component: String,
    pub message: String,
    pub at: i64,
}

#[derive(Insertable, Clone, Debug)]
#[diesel(table_name = system_logs)]
pub struct NewSystemLog {
    pub level: String,
    pub component: String,
    pub message: String,
    pub at: i64,
}

pub fn insert(conn: &mut DbConn, rows: &[NewSystemLog]) -> Result<(), StoreError> {
    for chunk in rows.chunks(500) {
        batch_insert!(conn, system_logs::table, chunk)?;
    }
    Ok(())
}

fn filter(q: &LogSearch) -> system_logs::BoxedQuery<'static, MultiBackend> {
    let mut query = system_logs::table.into_boxed::<MultiBackend>();
    if let Some(min) = q.min_level {
        let levels: Vec<&'static str> = LogLevel::ALL
            .iter()
            .filter(|l| l.rank() >= min.rank())
            .map(|l| l.as_str())
            .collect();
        query = query.filter(system_logs::level.eq_any(levels));
    }
    if let Some(t) = &q.text {
        query = query.filter(
            system_logs::message
                .like(format!("%{}%", like_literal(t)))
                .escape('\\'),
        );
    }
    if let Some(a) = q.after {
        query = query.filter(system_logs::at.ge(a));
    }
    if let Some(b) = q.before {
        query = query.filter(system_logs::at.lt(b));
    }
    query
}

/// System log lines matching the search, newest first, and the total.
pub fn search(conn: &mut DbConn, q: &LogSearch) -> Result<(Vec<SystemLogRow>, i64), StoreError> {
    let total = filter(q).count().get_result(conn)?;
    let rows = filter(q)
        .order(system_logs::id.desc())
        .offset(q.offset)
        .limit(q.limit)
        .select(SystemLogRow::as_select())
        .load(conn)?;
    Ok((rows, total))
}

pub fn get(conn: &mut DbConn, id: i64) -> Result<Option<SystemLogRow>, StoreError> {
    Ok(system_logs::table
        .find(id)
        .select(SystemLogRow::as_select())
        .first(conn)
        .optional()?)
}

/// Deletes lines older than `before`; how many went.
pub fn prune(conn: &mut DbConn, before: i64) -> Result<usize, StoreError> {
    Ok(diesel::delete(system_logs::table.filter(system_logs::at.lt(before))).execute(conn)?)
}
