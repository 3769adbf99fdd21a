//! Alerts: raise (folding repeats of an unacknowledged fingerprint), list, acknowledge.

use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;

use super::conn::{DbConn, MultiBackend};
use super::schema::alerts;
use super::StoreError;
use crate::domain::rfc3339;

#[derive(Queryable, Selectable, Insertable, AsChangeset, Clone, Debug)]
#[diesel(table_name = alerts, treat_none_as_null = true)]
pub struct AlertRow {
    pub id: String,
    pub fingerprint: String,
    pub level: String,
    pub alert_type: String,
    pub title: String,
    pub message: String,
    pub details: String,
    pub count: i64,
    pub acknowledged: bool,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<i64>,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub notified_at: i64,
}

/// An alert as the API shows it.
#[derive(Serialize, Clone, Debug)]
pub struct AlertView {
    pub id: String,
    pub fingerprint: String,
    pub level: String,
    #[serde(rename = "type")]
    pub alert_type: String,
    pub title: String,
    pub message: String,
    pub details: Value,
    pub count: i64,
    pub acknowledged: bool,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<String>,
    pub created_at: String,
    pub last_seen_at: String,
}

impl From<AlertRow> for AlertView {
    fn from(r: AlertRow) -> Self {
        AlertView {
            id: r.id,
            fingerprint: r.fingerprint,
            level: r.level,
            alert_type: r.alert_type,
            title: r.title,
            message: r.message,
            details: serde_json::from_str(&r.details).unwrap_or(Value::Null),
            count: r.count,
            acknowledged: r.acknowledged,
            acknowledged_by: r.acknowledged_by,
            acknowledged_at: r.acknowledged_at.map(rfc3339),
            created_at: rfc3339(r.created_at),
            last_seen_at: rfc3339(r.last_seen_at),
        }
    }
}

/// Raises an alert: a repeat of an unacknowledged one with the same fingerprint bumps its
/// count and `last_seen_at`; otherwise a new row. Returns the row and whether it is new.
pub fn raise(conn: &mut DbConn, new: AlertRow) -> Result<(AlertRow, bool), StoreError> {
    let existing: Option<AlertRow> = alerts::table
        .filter(alerts::fingerprint.eq(&new.fingerprint))
        .filter(alerts::acknowledged.eq(false))
        .select(AlertRow::as_select())
        .first(conn)
        .optional()?;
    if let Some(mut row) = existing {
        row.count += 1;
        row.last_seen_at = new.last_seen_at;
        row.message = new.message;
        row.details = new.details;
        diesel::update(alerts::table.find(&row.id))
            .set(&row)
            .execute(conn)?;
        return Ok((row, false));
    }
    match conn {
        DbConn::Sqlite(c) => diesel::insert_into(alerts::table).values(&new).execute(c)?,
        DbConn::Pg(c) => diesel::insert_into(alerts::table).values(&new).execute(c)?,
    };
    Ok((new, true))
}

#[derive(Clone, Debug, Default)]
pub struct AlertQuery {
    pub level: Option<String>,
    pub alert_type: Option<String>,
    pub acknowledged: Option<bool>,
    pub offset: i64,
    pub limit: i64,
}

fn filtered(q: &AlertQuery) -> alerts::BoxedQuery<'static, MultiBackend> {
    let mut query = alerts::table.into_boxed::<MultiBackend>();
    if let Some(l) = &q.level {
        query = query.filter(alerts::level.eq(l.clone()));
    }
    if let Some(t) = &q.alert_type {
        query = query.filter(alerts::alert_type.eq(t.clone()));
    }
    if let Some(a) = q.acknowledged {
        query = query.filter(alerts::acknowledged.eq(a));
    }
    query
}

pub fn list(conn: &mut DbConn, q: &AlertQuery) -> Result<(Vec<AlertRow>, i64), StoreError> {
    let total = filtered(q).count().get_result(conn)?;
    let rows = filtered(q)
        .order((alerts::last_seen_at.desc(), alerts::id.desc()))
        .offset(q.offset)
        .limit(q.limit)
        .select(AlertRow::as_select())
        .load(conn)?;
    Ok((rows, total))
}

pub fn acknowledge(
    conn: &mut DbConn,
    id: &str,
    by: &str,
    now: i64,
) -> Result<Option<AlertRow>, StoreError> {
    let Some(mut row) = alerts::table
        .find(id)
        .select(AlertRow::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    if !row.acknowledged {
        row.acknowledged = true;
        row.acknowledged_by = Some(by.to_string());
        row.acknowledged_at = Some(now);
        diesel::update(alerts::table.find(id))
            .set(&row)
            .execute(conn)?;
    }
    Ok(Some(row))
}

/// Unacknowledged critical alerts last notified before `before`; marks them notified `now`.
pub fn due_renotify(conn: &mut DbConn, before: i64, now: i64) -> Result<Vec<AlertRow>, StoreError> {
    let rows: Vec<AlertRow> = alerts::table
        .filter(alerts::level.eq("critical"))
        .filter(alerts::acknowledged.eq(false))
        .filter(alerts::notified_at.lt(before))
        .select(AlertRow::as_select())
        .load(conn)?;
    for r in &rows {
        diesel::update(alerts::table.find(&r.id))
            .set(alerts::notified_at.eq(now))
            .execute(conn)?;
    }
    Ok(rows)
}
