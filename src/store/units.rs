//! Registered remote execution units (WebSocket workers and HTTP-style units): kept so that a
//! restarted server knows them by id and name, and can wait for them to come back.

use diesel::prelude::*;

use super::conn::DbConn;
use super::schema::units;
use super::StoreError;

#[derive(Queryable, Selectable, Insertable, AsChangeset, Clone, Debug, PartialEq)]
#[diesel(table_name = units, treat_none_as_null = true)]
pub struct UnitRow {
    pub id: String,
    /// `websocket` or `http`.
    pub kind: String,
    /// Free-form, as registered (seed 004's `unitType`, e.g. `DOCKER_CONTAINER`).
    pub unit_type: String,
    pub unit_name: String,
    pub endpoint: Option<String>,
    /// JSON object.
    pub config: String,
    /// JSON array of task types.
    pub task_types: String,
    /// JSON object of labels.
    pub labels: String,
    pub capacity: i64,
    /// `AVAILABLE`, `BUSY` or `OFFLINE` as last recorded.
    pub status: String,
    pub draining: bool,
    pub last_heartbeat: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub fn all(conn: &mut DbConn) -> Result<Vec<UnitRow>, StoreError> {
    Ok(units::table
        .select(UnitRow::as_select())
        .order(units::created_at.asc())
        .load(conn)?)
}

pub fn by_name(conn: &mut DbConn, name: &str) -> Result<Option<UnitRow>, StoreError> {
    Ok(units::table
        .filter(units::unit_name.eq(name))
        .select(UnitRow::as_select())
        .first(conn)
        .optional()?)
}

/// Inserts a unit or replaces the one with the same id.
pub fn upsert(conn: &mut DbConn, row: &UnitRow) -> Result<(), StoreError> {
    let updated = diesel::update(units::table.find(&row.id))
        .set(row)
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(units::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

pub fn delete(conn: &mut DbConn, id: &str) -> Result<bool, StoreError> {
    Ok(diesel::delete(units::table.find(id)).execute(conn)? > 0)
}
