//! The event log: every published event is written here (in `seq` order, in batches, off the
//! publisher's path), read back for replay, and pruned after the retention window.

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;

use super::conn::{DbConn, MultiBackend};
use super::schema::events;
use super::{Store, StoreError};
use crate::domain::Millis;
use crate::events::{Event, EventBus, EventFilter};

/// The most events written in one insert.
const WRITE_BATCH: usize = 1000;
/// The most events one prune statement deletes (so it never holds the writer long).
const PRUNE_CHUNK: i64 = 1000;

#[derive(Insertable)]
#[diesel(table_name = events, treat_none_as_default_value = false)]
struct NewEventRow {
    seq: i64,
    kind: String,
    task_id: Option<String>,
    batch_id: Option<String>,
    task_type: Option<String>,
    body: String,
    at: i64,
}

impl From<&Event> for NewEventRow {
    fn from(e: &Event) -> Self {
        NewEventRow {
            seq: e.seq as i64,
            kind: e.body.kind().into(),
            task_id: e.body.task_id().map(|t| t.to_string()),
            batch_id: e.body.batch_id().map(String::from),
            task_type: e.body.task_type().map(String::from),
            body: e.json.to_string(),
            at: e.at_ms,
        }
    }
}

/// The highest stored `seq` (0 when the log is empty): where the bus continues from.
pub fn max_seq(conn: &mut DbConn) -> Result<u64, StoreError> {
    let max: Option<i64> = events::table
        .select(diesel::dsl::max(events::seq))
        .first(conn)?;
    Ok(max.unwrap_or(0).max(0) as u64)
}

fn insert(conn: &mut DbConn, batch: &[Arc<Event>]) -> Result<(), StoreError> {
    let rows: Vec<NewEventRow> = batch.iter().map(|e| NewEventRow::from(&**e)).collect();
    batch_insert!(conn, events::table, &rows)?;
    Ok(())
}

/// Stored events after `after_seq` that pass `filter`, oldest first, as their JSON text.
pub fn after(
    conn: &mut DbConn,
    after_seq: u64,
    up_to: Option<u64>,
    filter: &EventFilter,
    limit: i64,
) -> Result<Vec<(u64, String)>, StoreError> {
    let mut q = events::table
        .select((events::seq, events::body))
        .filter(events::seq.gt(after_seq as i64))
        .into_boxed::<MultiBackend>();
    if let Some(top) = up_to {
        q = q.filter(events::seq.le(top as i64));
    }
    if let Some(kinds) = &filter.kinds {
        q = q.filter(events::kind.eq_any(kinds.clone()));
    }
    if let Some(tasks) = &filter.tasks {
        let ids: Vec<String> = tasks.iter().map(|t| t.to_string()).collect();
        q = q.filter(events::task_id.eq_any(ids));
    }
    if let Some(b) = &filter.batches {
        q = q.filter(events::batch_id.eq_any(b.clone()));
    }
    if let Some(t) = &filter.types {
        q = q.filter(events::task_type.eq_any(t.clone()));
    }
    let rows: Vec<(i64, String)> = q.order(events::seq.asc()).limit(limit).load(conn)?;
    Ok(rows.into_iter().map(|(s, b)| (s as u64, b)).collect())
}

/// Deletes up to [`PRUNE_CHUNK`] of the oldest events published before `cutoff`; returns
/// how many went.
pub fn prune(conn: &mut DbConn, cutoff: Millis) -> Result<usize, StoreError> {
    // Events are stored in `seq` order, which is time order: the oldest are the first rows
    // of the primary key, so no index on `at` is needed (and none is kept up per event).
    let oldest: Vec<(i64, i64)> = events::table
        .select((events::seq, events::at))
        .order(events::seq.asc())
        .limit(PRUNE_CHUNK)
        .load(conn)?;
    let seqs: Vec<i64> = oldest
        .into_iter()
        .take_while(|(_, at)| *at < cutoff)
        .map(|(seq, _)| seq)
        .collect();
    if seqs.is_empty() {
        return Ok(0);
    }
    Ok(diesel::delete(events::table.filter(events::seq.eq_any(seqs))).execute(conn)?)
}

/// Writes what the bus hands over, a batch per group commit, and tells the bus what is
/// durable. Runs until the bus is gone.
pub fn spawn_writer(store: Store, bus: EventBus) {
    let Some(mut rx) = bus.attach_log() else {
        return;
    };
    actix_rt::spawn(async move {
        let mut batch: Vec<Arc<Event>> = Vec::with_capacity(WRITE_BATCH);
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < WRITE_BATCH {
                match rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            let last = batch.last().map(|e| e.seq).unwrap_or(0);
            let rows = std::mem::take(&mut batch);
            match store.write_direct(move |c| insert(c, &rows)).await {
                Ok(()) => {}
                Err(e) => log::error!("event log: cannot write events up to {last}: {e}"),
            }
            // A failed write is not retried: the live stream is unaffected, and a replay
            // must not wait forever for events that will never be stored.
            bus.mark_persisted(last);
        }
    });
}

/// Deletes events older than the retention window every `every`, in small deletes.
pub fn spawn_pruner(store: Store, retention_secs: f64, every: Duration) {
    actix_rt::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let cutoff = crate::domain::now_ms() - (retention_secs * 1000.0) as i64;
            loop {
                match store.write(move |c| prune(c, cutoff)).await {
                    Ok(n) if n as i64 == PRUNE_CHUNK => continue,
                    Ok(_) => break,
                    Err(e) => {
                        log::warn!("event log: prune failed: {e}");
                        break;
                    }
                }
            }
        }
    });
}

/// How many recent successes of a type the ETA's history half averages.
const TYPICAL_SAMPLE: i64 = 50;

/// The mean running time (paused time excluded) of the latest successful tasks of a type.
pub fn typical_secs(conn: &mut DbConn, task_type: &str) -> Result<Option<f64>, StoreError> {
    use super::schema::tasks;
    let secs: Vec<f64> = tasks::table
        .select(tasks::active_secs)
        .filter(tasks::task_type.eq(task_type))
        .filter(tasks::status.eq(crate::domain::TaskStatus::Success.as_str()))
        .order(tasks::finished_at.desc())
        .limit(TYPICAL_SAMPLE)
        .load(conn)?;
    if secs.is_empty() {
        return Ok(None);
    }
    Ok(Some(secs.iter().sum::<f64>() / secs.len() as f64))
}
