//! `database_backup` (seed 004 §2.3.3): a full backup of an SQLite database (SQLite's online
//! backup API, page by page) or a PostgreSQL database (`pg_dump`, custom format), optionally
//! gzipped, with a `<output>.sha256` file beside it and, with `verifyIntegrity`, a check that
//! the copy is readable (`PRAGMA integrity_check`; `pg_restore --list`). Credentials are never
//! part of a task: the config names environment variables of the server (`passwordEnv`,
//! `connectionUrlEnv`, which must start with [`SECRET_ENV_PREFIX`]), and a literal password is
//! refused at submission. The run is in [`super::db_backup_run`].

use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::{json, Value};

use super::artifact::require_tools;
use super::db_target::{pg_target_of, PgTarget, SECRET_ENV_PREFIX};
use super::fields::{self, bool_or, opt_int, opt_str, req_str};
use super::{ConfigError, Job, JobContext, Outcome, TaskHandler, UnitEnv};

pub struct DatabaseBackup;

const DEFAULT_PAGES_PER_STEP: i64 = 1024;
const PG_TOOLS: &[&str] = &["pg_dump", "pg_restore"];
const PG_HINT: &str = "install the PostgreSQL client tools (for example `apt-get install postgresql-client`) to back up PostgreSQL";
/// Config keys that would put a password into the task.
const PASSWORD_KEYS: &[&str] = &["password", "passwd", "pwd", "pgpassword"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DbKind {
    Sqlite,
    Postgres,
}

impl DbKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DbKind::Sqlite => "sqlite",
            DbKind::Postgres => "postgresql",
        }
    }
}

/// A checked config.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub kind: DbKind,
    pub database: Option<String>,
    pub pg: PgTarget,
    pub output: String,
    pub compression: bool,
    pub verify: bool,
    pub pages_per_step: i32,
    pub step_pause_ms: u64,
}

fn kind_of(config: &Value) -> Result<DbKind, ConfigError> {
    let raw = req_str(config, "dbType")?;
    match raw.to_ascii_lowercase().as_str() {
        "sqlite" | "sqlite3" => Ok(DbKind::Sqlite),
        "postgresql" | "postgres" | "pg" => Ok(DbKind::Postgres),
        _ => Err(ConfigError::new(
            "dbType",
            format!("'{raw}' is not supported; supported: sqlite, postgresql (or postgres)"),
        )),
    }
}

pub(crate) fn spec_of(config: &Value) -> Result<Spec, ConfigError> {
    fields::object(config)?;
    if let Some(obj) = config.as_object() {
        if let Some(key) = obj
            .keys()
            .find(|k| PASSWORD_KEYS.contains(&k.to_ascii_lowercase().as_str()))
        {
            return Err(ConfigError::new(key, format!(
                "is not accepted: a password in a task would be stored with it and shown to everyone who can read tasks; put it in an environment variable of the server named {SECRET_ENV_PREFIX}… and give that name in passwordEnv (or a whole connection URL in connectionUrlEnv)"
            )));
        }
    }
    for key in ["connectionUrl", "url"] {
        if config.get(key).is_some_and(|v| !v.is_null()) {
            return Err(ConfigError::new(key, "is not accepted: put the URL in an environment variable of the server and name it in connectionUrlEnv"));
        }
    }
    let kind = kind_of(config)?;
    match opt_str(config, "backupType")? {
        None => {}
        Some(t) if t.eq_ignore_ascii_case("full") => {}
        Some(t) => return Err(ConfigError::new("backupType", format!(
            "only \"full\" is supported, not '{t}': SQLite's backup API and pg_dump take complete, consistent snapshots; incremental backups need WAL archiving (pg_basebackup, WAL-G), which steward does not drive"
        ))),
    }
    let (database, pg) = match kind {
        DbKind::Sqlite => (Some(req_str(config, "database")?), PgTarget::default()),
        DbKind::Postgres => (None, pg_target_of(config)?),
    };
    Ok(Spec {
        kind,
        database,
        pg,
        output: req_str(config, "outputPath")?,
        compression: bool_or(config, "compression", false)?,
        verify: bool_or(config, "verifyIntegrity", true)?,
        pages_per_step: opt_int(config, "pagesPerStep", 1, 1_000_000)?
            .unwrap_or(DEFAULT_PAGES_PER_STEP) as i32,
        step_pause_ms: opt_int(config, "stepPauseMs", 0, 60_000)?.unwrap_or(0) as u64,
    })
}

/// The file the backup ends up in: `outputPath`, with `.gz` appended when compressing (unless
/// it already ends in `.gz`).
pub(crate) fn final_output(spec: &Spec, confined: &Path) -> PathBuf {
    let gz = confined
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    if spec.compression && !gz {
        let mut os = confined.as_os_str().to_owned();
        os.push(".gz");
        PathBuf::from(os)
    } else {
        confined.to_path_buf()
    }
}

impl TaskHandler for DatabaseBackup {
    fn task_type(&self) -> &str {
        "database_backup"
    }

    fn config_schema(&self) -> Value {
        let pg_note = match require_tools(PG_TOOLS, PG_HINT) {
            Ok(()) => "pg_dump and pg_restore are installed".to_string(),
            Err(e) => format!("unavailable here: {e}"),
        };
        json!({
            "type": "object",
            "required": ["dbType", "outputPath"],
            "properties": {
                "dbType": {"enum": ["sqlite", "postgresql", "postgres"], "description": format!("postgresql: {pg_note}")},
                "database": {"type": "string", "description": "sqlite: the database file, under the data roots; postgresql: the database name, or a postgresql:// URL without a password"},
                "host": {"type": "string", "description": "postgresql: host or host:port (default: libpq's)"},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "user": {"type": "string"},
                "passwordEnv": {"type": "string", "pattern": format!("^{SECRET_ENV_PREFIX}[A-Za-z0-9_]+$"), "description": "the server environment variable holding the password"},
                "connectionUrlEnv": {"type": "string", "pattern": format!("^{SECRET_ENV_PREFIX}[A-Za-z0-9_]+$"), "description": "the server environment variable holding a whole postgresql:// URL"},
                "schema": {"type": "string", "description": "postgresql: back up only this schema"},
                "backupType": {"enum": ["full"], "default": "full"},
                "outputPath": {"type": "string", "description": "under the data roots; .gz is appended when compressing; <output>.sha256 is written beside it"},
                "compression": {"type": "boolean", "default": false},
                "verifyIntegrity": {"type": "boolean", "default": true},
                "pagesPerStep": {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": DEFAULT_PAGES_PER_STEP, "description": "sqlite: pages copied between two safe points"},
                "stepPauseMs": {"type": "integer", "minimum": 0, "maximum": 60000, "default": 0, "description": "sqlite: pause between steps, to leave room for writers"}
            }
        })
    }

    fn validate(&self, config: &Value, env: &UnitEnv) -> Result<(), ConfigError> {
        let spec = spec_of(config)?;
        let output = env
            .path(&spec.output)
            .map_err(|m| ConfigError::new("outputPath", m))?;
        let output = final_output(&spec, &output);
        env.path(&output.display().to_string())
            .map_err(|m| ConfigError::new("outputPath", m))?;
        match spec.kind {
            DbKind::Sqlite => {
                let db = env
                    .path(spec.database.as_deref().unwrap_or_default())
                    .map_err(|m| ConfigError::new("database", m))?;
                if db == output {
                    return Err(ConfigError::new("outputPath", "must differ from database"));
                }
            }
            DbKind::Postgres => {
                require_tools(PG_TOOLS, PG_HINT).map_err(|m| ConfigError::new("dbType", m))?;
            }
        }
        Ok(())
    }

    fn run(&self, job: Job, ctx: JobContext) -> BoxFuture<'static, Outcome> {
        async move {
            let spec = match spec_of(&job.config) {
                Ok(s) => s,
                Err(e) => return Outcome::Failed(format!("{}: {}", e.field, e.message)),
            };
            let output = match ctx.env.path(&spec.output) {
                Ok(o) => final_output(&spec, &o),
                Err(e) => return Outcome::Failed(format!("outputPath: {e}")),
            };
            let database = match (spec.kind, spec.database.as_deref()) {
                (DbKind::Sqlite, Some(db)) => match ctx.env.path(db) {
                    Ok(p) => Some(p),
                    Err(e) => return Outcome::Failed(format!("database: {e}")),
                },
                _ => None,
            };
            if spec.kind == DbKind::Postgres {
                if let Err(e) = require_tools(PG_TOOLS, PG_HINT) {
                    return Outcome::Failed(e);
                }
            }
            super::db_backup_run::run_job(spec, database, output, job.checkpoint, ctx).await
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(config: Value) -> Option<String> {
        spec_of(&config).err().map(|e| e.field)
    }

    #[test]
    fn passwords_never_get_into_a_task() {
        let base = json!({"dbType": "postgresql", "database": "app", "outputPath": "a.dump"});
        let with = |k: &str, v: Value| {
            let mut c = base.clone();
            c[k] = v;
            field(c)
        };
        assert_eq!(
            with("password", json!("s3cret")).as_deref(),
            Some("config.password")
        );
        assert_eq!(
            with("Password", json!("s3cret")).as_deref(),
            Some("config.Password")
        );
        assert_eq!(
            with("database", json!("postgresql://u:pw@h/db")).as_deref(),
            Some("config.database")
        );
        assert_eq!(
            with("database", json!("postgres://h/db?password=x")).as_deref(),
            Some("config.database")
        );
        assert_eq!(
            with("host", json!("u:pw@db.example")).as_deref(),
            Some("config.host")
        );
        assert_eq!(
            with("passwordEnv", json!("HOME")).as_deref(),
            Some("config.passwordEnv")
        );
        assert_eq!(
            with("connectionUrl", json!("postgres://h/db")).as_deref(),
            Some("config.connectionUrl")
        );
        assert!(with("passwordEnv", json!("STEWARD_SECRET_APP_DB")).is_none());
        assert!(with("database", json!("postgresql://u@h:5433/db")).is_none());
    }

    #[test]
    fn types_hosts_and_outputs() {
        let s = spec_of(&json!({"dbType": "Postgres", "host": "db.example:6543",
            "database": "app", "outputPath": "x"}))
        .unwrap();
        assert_eq!(
            (s.pg.host.as_deref(), s.pg.port),
            (Some("db.example"), Some(6543))
        );
        let s = spec_of(&json!({"dbType": "postgresql", "host": "[::1]:5432", "database": "a", "outputPath": "x"})).unwrap();
        assert_eq!((s.pg.host.as_deref(), s.pg.port), (Some("::1"), Some(5432)));
        assert_eq!(
            field(json!({"dbType": "mysql", "database": "a", "outputPath": "x"})).as_deref(),
            Some("config.dbType")
        );
        assert_eq!(field(json!({"dbType": "sqlite", "database": "a", "outputPath": "x", "backupType": "incremental"})).as_deref(), Some("config.backupType"));
        assert_eq!(
            field(json!({"dbType": "sqlite", "outputPath": "x"})).as_deref(),
            Some("config.database")
        );
        assert_eq!(
            field(
                json!({"dbType": "sqlite", "database": "a", "outputPath": "x", "pagesPerStep": 0})
            )
            .as_deref(),
            Some("config.pagesPerStep")
        );
        let s = spec_of(&json!({"dbType": "sqlite", "database": "a.db", "outputPath": "b.db", "compression": true})).unwrap();
        assert_eq!(
            final_output(&s, Path::new("/d/b.db")),
            PathBuf::from("/d/b.db.gz")
        );
        assert_eq!(
            final_output(&s, Path::new("/d/b.gz")),
            PathBuf::from("/d/b.gz")
        );
        assert!(s.verify, "verification is on unless turned off");
    }
}
