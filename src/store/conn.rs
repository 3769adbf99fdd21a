//! Database connections: one enum over SQLite and PostgreSQL, a pool manager that picks the
//! backend by URL scheme (so a connect error names the real cause), SQLite pragmas per
//! connection, and the embedded migrations of each backend.

use std::path::PathBuf;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::StoreError;

/// A connection to whichever backend the URL chose.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// How long a SQLite connection waits for a lock before reporting busy.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 10_000;

/// The backend a database URL selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Backend {
    /// `postgres://` or `postgresql://` is PostgreSQL; `sqlite://PATH`, `sqlite:PATH` or a
    /// bare path is SQLite.
    pub fn from_url(url: &str) -> Backend {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Backend::Postgres(url.to_string());
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        Backend::Sqlite(PathBuf::from(path))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Opens one connection, with SQLite's pragmas applied.
    pub fn connect(&self) -> Result<DbConn, StoreError> {
        match self {
            Backend::Postgres(url) => PgConnection::establish(url)
                .map(DbConn::Pg)
                .map_err(|e| StoreError::Unavailable(format!("postgres: {e}"))),
            Backend::Sqlite(path) => {
                let path_str = path.to_string_lossy();
                let mut conn = SqliteConnection::establish(&path_str).map_err(|e| {
                    StoreError::Unavailable(format!("sqlite {}: {e}", path.display()))
                })?;
                conn.batch_execute(&format!(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA foreign_keys = ON; \
                     PRAGMA temp_store = MEMORY; PRAGMA cache_size = -2000;"
                ))?;
                Ok(DbConn::Sqlite(conn))
            }
        }
    }

    /// Runs the pending migrations of this backend; returns how many ran.
    pub fn migrate(&self) -> Result<usize, StoreError> {
        let run = |r: Result<Vec<_>, Box<dyn std::error::Error + Send + Sync>>| {
            r.map(|v| v.len())
                .map_err(|e| StoreError::Migration(e.to_string()))
        };
        match self.connect()? {
            DbConn::Pg(mut c) => run(c.run_pending_migrations(PG_MIGRATIONS)),
            DbConn::Sqlite(mut c) => run(c.run_pending_migrations(SQLITE_MIGRATIONS)),
        }
    }
}

/// r2d2 manager over [`Backend::connect`].
pub struct ConnManager {
    pub backend: Backend,
}

impl r2d2::ManageConnection for ConnManager {
    type Connection = DbConn;
    type Error = StoreError;

    fn connect(&self) -> Result<DbConn, StoreError> {
        self.backend.connect()
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), StoreError> {
        conn.batch_execute("SELECT 1").map_err(StoreError::from)
    }

    fn has_broken(&self, _conn: &mut DbConn) -> bool {
        false
    }
}

pub type Pool = r2d2::Pool<ConnManager>;

/// Builds the reader pool.
pub fn pool(backend: &Backend, size: u32) -> Result<Pool, StoreError> {
    r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(10))
        .build(ConnManager {
            backend: backend.clone(),
        })
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}
