//! The store: diesel over SQLite or PostgreSQL. Reads run on a pooled connection in the
//! blocking thread pool; writes go to one writer thread that groups whatever is queued into a
//! single transaction (each write in its own savepoint) and answers each caller only after the
//! commit that makes its change durable. No database call ever runs on an async worker thread.

/// Inserts rows on the concrete connection (the multi-backend cannot express a batch
/// `INSERT`). SQLite gets one single-row `INSERT` per row: its prepared statement is cached,
/// while a multi-row `INSERT` is parsed again for every row count. PostgreSQL gets one
/// multi-row `INSERT` (one round trip).
macro_rules! batch_insert {
    ($conn:expr, $table:expr, $rows:expr) => {
        match $conn {
            $crate::store::DbConn::Sqlite(c) => {
                let mut n = 0;
                for row in $rows.iter() {
                    n += diesel::insert_into($table).values(row).execute(c)?;
                }
                Ok::<usize, diesel::result::Error>(n)
            }
            $crate::store::DbConn::Pg(c) => diesel::insert_into($table).values($rows).execute(c),
        }
    };
}

/// Runs a statement on the concrete connection. diesel's multi-backend wrapper renders the
/// whole statement to SQL text, and walks it several times more, at every execution; the
/// concrete connections look their cached statement up by type and only collect the binds.
/// For the hot statements (a task's save, reads by id).
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::store::DbConn::Sqlite($c) => $body,
            $crate::store::DbConn::Pg($c) => $body,
        }
    };
}

pub mod alerts;
pub mod batches;
pub mod conn;
pub mod events;
pub mod rows;
pub mod schedules;
pub mod schema;
pub mod system_logs;
pub mod tasks;
pub mod units;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use diesel::connection::SimpleConnection;
use diesel::Connection;

pub use conn::{Backend, DbConn};

use crate::domain::{Task, TaskId};

/// The most writes folded into one transaction.
const MAX_GROUP: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("the store is shut down")]
    Closed,
    #[error("the row changed since it was read")]
    Conflict,
}

type Deliver = Box<dyn FnOnce(&Result<(), String>) + Send>;
/// A queued write: it runs on the writer's connection and returns how to answer its caller
/// after the commit, and whether it spoiled the group (see [`Store::write_direct`]).
type Job = Box<dyn FnOnce(&mut DbConn) -> (Deliver, bool) + Send>;

/// How to answer a caller once the group's commit is known.
fn deliver<R: Send + 'static>(
    outcome: Result<R, StoreError>,
    tx: tokio::sync::oneshot::Sender<Result<R, StoreError>>,
) -> Deliver {
    Box::new(move |commit: &Result<(), String>| {
        let answer = match commit {
            Ok(()) => outcome,
            Err(e) => outcome.and(Err(StoreError::Commit(e.clone()))),
        };
        let _ = tx.send(answer);
    })
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    pool: conn::Pool,
    writer: mpsc::Sender<Job>,
    task_reads: Mutex<TaskReads>,
}

type TaskAnswer = tokio::sync::oneshot::Sender<Result<Option<Task>, StoreError>>;

/// Task reads asked for while the last lookup ran (see [`Store::get_task`]).
#[derive(Default)]
struct TaskReads {
    waiting: Vec<(TaskId, TaskAnswer)>,
    /// A blocking job is draining `waiting`.
    draining: bool,
}

impl Store {
    /// Runs the migrations, opens the reader pool and starts the writer thread. Blocking: call
    /// it at start-up, before the async runtime serves requests, or from a blocking context.
    pub fn open(url: &str, pool_size: u32) -> Result<Store, StoreError> {
        let backend = Backend::from_url(url);
        if let Backend::Sqlite(path) = &backend {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
        }
        let ran = backend.migrate()?;
        if ran > 0 {
            log::info!("applied {ran} {} migration(s)", backend.name());
        }
        let pool = conn::pool(&backend, pool_size)?;
        let writer_conn = writer_connection(&backend)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let writer_backend = backend.clone();
        thread::Builder::new()
            .name("steward-writer".into())
            .spawn(move || write_loop(writer_conn, writer_backend, rx))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer: {e}")))?;
        let inner = Arc::new(Inner {
            backend,
            pool,
            writer: tx,
            task_reads: Mutex::default(),
        });
        let weak = Arc::downgrade(&inner);
        let (name, upkeep): (&str, fn(std::sync::Weak<Inner>)) = match &inner.backend {
            Backend::Sqlite(_) => ("steward-checkpoint", checkpoint_loop),
            Backend::Postgres(_) => ("steward-analyze", analyze_loop),
        };
        thread::Builder::new()
            .name(name.into())
            .spawn(move || upkeep(weak))
            .map_err(|e| StoreError::Unavailable(format!("cannot start {name}: {e}")))?;
        Ok(Store { inner })
    }

    pub fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// Connections of the reader pool: (open, idle).
    pub fn pool_state(&self) -> (u32, u32) {
        let s = self.inner.pool.state();
        (s.connections, s.idle_connections)
    }

    /// Runs a read on a pooled connection in the blocking pool.
    pub fn read<R, F>(
        &self,
        f: F,
    ) -> impl std::future::Future<Output = Result<R, StoreError>> + 'static
    where
        F: FnOnce(&mut DbConn) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let pool = self.inner.pool.clone();
        async move {
            actix_rt::task::spawn_blocking(move || {
                let mut conn = pool
                    .get()
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                f(&mut conn)
            })
            .await
            .map_err(|_| StoreError::Closed)?
        }
    }

    /// Reads one task, folding the reads asked for while the last one ran into one query: a
    /// thousand tasks dispatched together load with a few statements on one blocking job
    /// instead of a thousand jobs queued for the pool.
    pub fn get_task(
        &self,
        id: TaskId,
    ) -> impl std::future::Future<Output = Result<Option<Task>, StoreError>> + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let start = {
            let mut reads = self.inner.lock_task_reads();
            reads.waiting.push((id, tx));
            !std::mem::replace(&mut reads.draining, true)
        };
        if start {
            let inner = self.inner.clone();
            actix_rt::task::spawn_blocking(move || inner.drain_task_reads());
        }
        async move { rx.await.map_err(|_| StoreError::Closed)? }
    }

    /// Queues a write at once (so writes queued in order commit in order); it runs in its own
    /// savepoint inside the writer's next group transaction, and the returned future answers
    /// once that transaction has committed.
    pub fn write<R, F>(
        &self,
        f: F,
    ) -> impl std::future::Future<Output = Result<R, StoreError>> + 'static
    where
        F: FnOnce(&mut DbConn) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn: &mut DbConn| {
            let outcome = conn.transaction::<R, StoreError, _>(f);
            (deliver(outcome, tx), false)
        });
        self.queue(job, rx)
    }

    /// Like [`Store::write`] but without a savepoint of its own, for the hot paths (a
    /// savepoint costs two statements the database parses each time). The contract: `f`
    /// either succeeds or fails *before its first write* (a refusal, a conflict found by a
    /// read, a version check that updates nothing). A database error inside `f` rolls back
    /// the whole group, and every write in it answers with that error.
    pub fn write_direct<R, F>(
        &self,
        f: F,
    ) -> impl std::future::Future<Output = Result<R, StoreError>> + 'static
    where
        F: FnOnce(&mut DbConn) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn: &mut DbConn| {
            let outcome = f(conn);
            let spoiled = matches!(outcome, Err(StoreError::Db(_)));
            (deliver(outcome, tx), spoiled)
        });
        self.queue(job, rx)
    }

    fn queue<R: Send + 'static>(
        &self,
        job: Job,
        rx: tokio::sync::oneshot::Receiver<Result<R, StoreError>>,
    ) -> impl std::future::Future<Output = Result<R, StoreError>> + 'static {
        let sent = self.inner.writer.send(job).is_ok();
        async move {
            if !sent {
                return Err(StoreError::Closed);
            }
            rx.await.map_err(|_| StoreError::Closed)?
        }
    }

    /// A blocking write for start-up code that has no runtime yet.
    pub fn write_blocking<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut DbConn) -> Result<R, StoreError>,
    {
        let mut conn = self.inner.backend.connect()?;
        conn.transaction::<R, StoreError, _>(f)
    }
}

impl Inner {
    fn lock_task_reads(&self) -> std::sync::MutexGuard<'_, TaskReads> {
        self.task_reads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Answers waiting task reads, a round at a time, until none are left.
    fn drain_task_reads(&self) {
        /// Lets the next read start a drain even if this one panicked.
        struct Reset<'a>(&'a Inner);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                if thread::panicking() {
                    self.0.lock_task_reads().draining = false;
                }
            }
        }
        let _reset = Reset(self);
        loop {
            let round = {
                let mut reads = self.lock_task_reads();
                if reads.waiting.is_empty() {
                    reads.draining = false;
                    return;
                }
                std::mem::take(&mut reads.waiting)
            };
            let ids: Vec<TaskId> = round.iter().map(|(id, _)| *id).collect();
            let found = self
                .pool
                .get()
                .map_err(|e| StoreError::Unavailable(e.to_string()))
                .and_then(|mut c| match ids.as_slice() {
                    [one] => Ok(tasks::get(&mut c, *one)?.into_iter().collect()),
                    many => tasks::get_many(&mut c, many),
                });
            match found {
                Ok(found) => {
                    let mut by_id: HashMap<TaskId, Task> =
                        found.into_iter().map(|t| (t.id, t)).collect();
                    let unique = by_id.len() == round.len();
                    for (id, tx) in round {
                        let t = if unique {
                            by_id.remove(&id)
                        } else {
                            by_id.get(&id).cloned()
                        };
                        let _ = tx.send(Ok(t));
                    }
                }
                Err(e) => {
                    let why = e.to_string();
                    for (_, tx) in round {
                        let _ = tx.send(Err(StoreError::Unavailable(why.clone())));
                    }
                }
            }
        }
    }
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Checkpoints SQLite's WAL (passively: never waiting for the writer) until the store is gone.
fn checkpoint_loop(store: std::sync::Weak<Inner>) {
    upkeep_loop(
        store,
        CHECKPOINT_EVERY,
        "PRAGMA wal_checkpoint(PASSIVE);",
        "WAL checkpoint",
    );
}

/// How often PostgreSQL's statistics are checked for tables that changed a lot.
const ANALYZE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// `ANALYZE`s each of steward's busy tables that changed by more than a tenth (and a
/// thousand rows) since its last analysis. Autovacuum does the same, but only once a minute
/// at best: until then a table filled in a burst keeps the statistics of an empty one, and
/// the planner, counting on one matching row, sorts every row of a filtered list (a list
/// page over 20,000 fresh tasks took 13 ms instead of 0.4).
const ANALYZE_STALE: &str = "DO $$
DECLARE t text;
BEGIN
  FOR t IN SELECT relname FROM pg_stat_user_tables
            WHERE schemaname = current_schema()
              AND relname IN ('tasks', 'task_history', 'task_logs', 'events', 'batches')
              AND n_mod_since_analyze > 1000 + n_live_tup / 10
  LOOP
    EXECUTE format('ANALYZE %I', t);
  END LOOP;
END $$;";

fn analyze_loop(store: std::sync::Weak<Inner>) {
    upkeep_loop(store, ANALYZE_EVERY, ANALYZE_STALE, "statistics upkeep");
}

/// Runs `sql` every `every` on a connection of its own, until the store is gone.
fn upkeep_loop(store: std::sync::Weak<Inner>, every: std::time::Duration, sql: &str, what: &str) {
    let mut conn = None;
    loop {
        thread::sleep(every);
        let Some(inner) = store.upgrade() else {
            return;
        };
        if conn.is_none() {
            conn = inner.backend.connect().ok();
        }
        drop(inner);
        if let Some(c) = conn.as_mut() {
            if let Err(e) = c.batch_execute(sql) {
                log::warn!("{what} failed: {e}");
                conn = None;
            }
        }
    }
}

/// The writer's connection. On SQLite it never stops to checkpoint the WAL: a thread of its
/// own does.
fn writer_connection(backend: &Backend) -> Result<DbConn, StoreError> {
    let mut conn = backend.connect()?;
    if let Backend::Sqlite(_) = backend {
        conn.batch_execute("PRAGMA wal_autocheckpoint = 0;")
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    }
    Ok(conn)
}

fn write_loop(mut conn: DbConn, backend: Backend, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut delivers: Vec<Deliver> = Vec::with_capacity(jobs.len());
        let mut spoiled = false;
        let began = std::time::Instant::now();
        let commit = conn
            .transaction::<(), diesel::result::Error, _>(|c| {
                for job in jobs {
                    let (deliver, spoils) = job(c);
                    delivers.push(deliver);
                    spoiled |= spoils;
                }
                if spoiled {
                    // A write without a savepoint failed halfway: none of the group stands.
                    return Err(diesel::result::Error::RollbackTransaction);
                }
                Ok(())
            })
            .map_err(|e| {
                if spoiled {
                    "rolled back: another write in the same transaction failed".to_string()
                } else {
                    e.to_string()
                }
            });
        if let Err(e) = &commit {
            log::error!("group commit of {} write(s) failed: {e}", delivers.len());
            if conn.batch_execute("SELECT 1").is_err() {
                match writer_connection(&backend) {
                    Ok(fresh) => {
                        log::warn!("writer reconnected to the database");
                        conn = fresh;
                    }
                    Err(e) => log::error!("writer cannot reconnect: {e}"),
                }
            }
        }
        log::debug!(
            "group of {} write(s) committed in {:?} (at {})",
            delivers.len(),
            began.elapsed(),
            crate::domain::now_ms()
        );
        for deliver in delivers {
            deliver(&commit);
        }
    }
    log::debug!("writer stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{NewTask, TaskStatus};

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = dir.path().join("steward.db").display().to_string();
        let store = Store::open(&url, 2).expect("open store");
        (dir, store)
    }

    fn stored(store: &Store, n: usize) -> Vec<TaskId> {
        let items: Vec<_> = (0..n)
            .map(|_| Task::create(TaskId::new(), NewTask::example("noop"), 1_000, "test"))
            .collect();
        let ids = items.iter().map(|(t, _)| t.id).collect();
        store
            .write_blocking(|c| tasks::insert(c, &items))
            .expect("insert");
        ids
    }

    #[actix_rt::test]
    async fn task_reads_asked_together_each_get_their_own_answer() {
        let (_dir, store) = open();
        let ids = stored(&store, 5);
        let missing = TaskId::new();
        let mut asks = ids.clone();
        asks.push(ids[2]);
        asks.push(missing);
        let answers =
            futures_util::future::join_all(asks.iter().map(|id| store.get_task(*id))).await;
        for (id, answer) in asks.iter().zip(answers) {
            let found = answer.expect("read");
            if *id == missing {
                assert!(found.is_none(), "a task never stored is not found");
            } else {
                assert_eq!(found.map(|t| t.id), Some(*id));
            }
        }
        // The next read after a drained round starts a new one.
        let again = store.get_task(ids[4]).await.expect("read");
        assert_eq!(again.map(|t| t.id), Some(ids[4]));
    }

    #[actix_rt::test]
    async fn a_save_changes_what_can_change_and_keeps_what_creation_fixed() {
        let (_dir, store) = open();
        let id = stored(&store, 1)[0];
        let saved = store
            .write(move |c| {
                tasks::modify(c, id, |t| {
                    t.name = "renamed".into();
                    t.progress = 0.5;
                    t.transition(TaskStatus::Running, 2_000, "test", None)
                        .map(|h| vec![h])
                })
            })
            .await
            .expect("write")
            .expect("transition");
        let read = store.get_task(id).await.expect("read").expect("found");
        assert_eq!(read.status, TaskStatus::Running);
        assert_eq!(read.name, "renamed");
        assert_eq!(read.progress, 0.5);
        assert_eq!(read.version, saved.version);
        assert_eq!(read.task_type, "noop");
        assert_eq!(read.created_at, 1_000);
        assert_eq!(read.config, serde_json::json!({}));
    }
}
