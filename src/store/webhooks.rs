//! Webhook subscriptions and their deliveries.

use diesel::prelude::*;

use super::conn::DbConn;
use super::schema::{webhook_deliveries as d, webhooks as w};
use super::StoreError;
use crate::domain::Millis;

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = w)]
pub struct WebhookRow {
    pub id: String,
    pub url: String,
    /// JSON lists (`null` = all): the filter of the subscription.
    pub events: String,
    pub tasks: String,
    pub batches: String,
    pub types: String,
    pub secret: Option<String>,
    pub created_at: i64,
}

#[derive(Queryable, Selectable, Insertable, AsChangeset, Clone, Debug)]
#[diesel(table_name = d, treat_none_as_null = true)]
pub struct DeliveryRow {
    pub id: String,
    pub webhook_id: Option<String>,
    pub task_id: Option<String>,
    pub url: String,
    pub event_seq: i64,
    pub event_kind: String,
    pub body: String,
    /// `pending`, `delivered` or `failed` (attempts used up).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<i64>,
    pub last_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub fn insert_webhook(conn: &mut DbConn, row: &WebhookRow) -> Result<(), StoreError> {
    diesel::insert_into(w::table).values(row).execute(conn)?;
    Ok(())
}

pub fn webhooks(conn: &mut DbConn) -> Result<Vec<WebhookRow>, StoreError> {
    Ok(w::table
        .order(w::created_at.asc())
        .select(WebhookRow::as_select())
        .load(conn)?)
}

/// Deletes a webhook; its delivery records stay (with their outcomes) until pruned.
pub fn delete_webhook(conn: &mut DbConn, id: &str) -> Result<bool, StoreError> {
    Ok(diesel::delete(w::table.filter(w::id.eq(id))).execute(conn)? == 1)
}

pub fn insert_delivery(conn: &mut DbConn, row: &DeliveryRow) -> Result<(), StoreError> {
    diesel::insert_into(d::table).values(row).execute(conn)?;
    Ok(())
}

pub fn update_delivery(conn: &mut DbConn, row: &DeliveryRow) -> Result<(), StoreError> {
    diesel::update(d::table.filter(d::id.eq(&row.id)))
        .set(row)
        .execute(conn)?;
    Ok(())
}

/// Deliveries still to be made (what start-up resumes).
pub fn pending_deliveries(conn: &mut DbConn) -> Result<Vec<DeliveryRow>, StoreError> {
    Ok(d::table
        .filter(d::status.eq("pending"))
        .order(d::created_at.asc())
        .select(DeliveryRow::as_select())
        .load(conn)?)
}

/// A webhook's deliveries, newest first.
pub fn deliveries(
    conn: &mut DbConn,
    webhook_id: &str,
    offset: i64,
    limit: i64,
) -> Result<(Vec<DeliveryRow>, i64), StoreError> {
    let total: i64 = d::table
        .filter(d::webhook_id.eq(webhook_id))
        .count()
        .get_result(conn)?;
    let rows = d::table
        .filter(d::webhook_id.eq(webhook_id))
        .order((d::created_at.desc(), d::id.desc()))
        .offset(offset)
        .limit(limit)
        .select(DeliveryRow::as_select())
        .load(conn)?;
    Ok((rows, total))
}

/// Deletes finished deliveries last touched before `cutoff`.
pub fn prune_deliveries(conn: &mut DbConn, cutoff: Millis) -> Result<usize, StoreError> {
    Ok(diesel::delete(
        d::table
            .filter(d::status.ne("pending"))
            .filter(d::updated_at.lt(cutoff)),
    )
    .execute(conn)?)
}
