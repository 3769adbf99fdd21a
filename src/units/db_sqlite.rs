//! SQLite backups through SQLite's online backup API (rusqlite's `backup` feature, on the same
//! bundled libsqlite3 diesel links): `pagesPerStep` pages at a time, with the job's safe point
//! between steps, so a pause holds the copy (and its connections) between two steps and the
//! source stays usable by everyone else. Writes to the source by other connections make SQLite
//! restart the copy, so what lands is one consistent snapshot.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Map, Value};

use super::db_backup::Spec;
use super::db_backup_run::scaled;
use super::stepper::{drive, Halt, Step, Stepper};
use super::JobContext;

/// How long to wait before retrying a step the source's writers kept busy.
const BUSY_RETRY: Duration = Duration::from_millis(50);

fn describe(what: &str, path: &Path, e: &rusqlite::Error) -> String {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
        format!("disk full: {what} {}: {e}", path.display())
    } else {
        format!("{what} {}: {e}", path.display())
    }
}

fn read_only(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

/// Copies `src` into a new `dst`, step by step (runs on the stepper's thread).
fn copy(
    src: &Path,
    dst: &Path,
    pages_per_step: i32,
    pause: Duration,
    stepper: &Stepper,
) -> Result<Map<String, Value>, String> {
    let from = read_only(src).map_err(|e| describe("cannot open the SQLite database", src, &e))?;
    from.busy_timeout(Duration::from_secs(10))
        .map_err(|e| describe("cannot open the SQLite database", src, &e))?;
    let mut to = Connection::open(dst).map_err(|e| describe("cannot create", dst, &e))?;
    {
        let backup =
            Backup::new(&from, &mut to).map_err(|e| describe("cannot back up", src, &e))?;
        loop {
            let r = backup
                .step(pages_per_step)
                .map_err(|e| describe("the backup failed reading", src, &e))?;
            let p = backup.progress();
            let total = u64::try_from(p.pagecount).unwrap_or(0);
            let remaining = u64::try_from(p.remaining).unwrap_or(0);
            let step = Step {
                stage: "backing up",
                done: total.saturating_sub(remaining),
                total,
            };
            stepper.step(step).map_err(|_| "stopped".to_string())?;
            match r {
                StepResult::Done => break,
                StepResult::Busy | StepResult::Locked => std::thread::sleep(BUSY_RETRY),
                _ => {}
            }
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
    }
    // The copy stands alone: a rollback-journal database in one file, even from a WAL source.
    let finish = |e: rusqlite::Error| describe("cannot finish", dst, &e);
    to.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get::<_, String>(0))
        .map_err(finish)?;
    let number = |sql: &str| {
        to.query_row(sql, [], |r| r.get::<_, i64>(0))
            .map_err(finish)
    };
    let (pages, page_size) = (number("PRAGMA page_count")?, number("PRAGMA page_size")?);
    to.close()
        .map_err(|(_, e)| describe("cannot finish", dst, &e))?;
    let mut facts = Map::new();
    facts.insert("pages".into(), json!(pages));
    facts.insert("page_size".into(), json!(page_size));
    Ok(facts)
}

/// Backs up the SQLite database `src` into `dst` (0–80 % of the job).
pub(crate) async fn backup(
    ctx: &mut JobContext,
    spec: &Spec,
    src: &Path,
    dst: &Path,
) -> Result<Map<String, Value>, Halt> {
    let (src, dst): (PathBuf, PathBuf) = (src.to_path_buf(), dst.to_path_buf());
    let (pages, pause) = (
        spec.pages_per_step,
        Duration::from_millis(spec.step_pause_ms),
    );
    drive(
        ctx,
        "steward-sqlite-backup",
        move |s| copy(&src, &dst, pages, pause, s),
        |st| scaled(0.0, 80.0, st.done, st.total),
    )
    .await
}

/// `PRAGMA integrity_check` on a copy (blocking): `ok`, or the problems it found.
pub(crate) fn integrity_check(path: &Path) -> Result<Map<String, Value>, String> {
    let fail = |e: rusqlite::Error| {
        format!(
            "verification failed: {}",
            describe("cannot read the copy", path, &e)
        )
    };
    let conn = read_only(path).map_err(fail)?;
    let mut stmt = conn.prepare("PRAGMA integrity_check").map_err(fail)?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(fail)?;
    if rows != ["ok"] {
        return Err(format!(
            "verification failed: PRAGMA integrity_check on the copy says: {}",
            rows.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
        ));
    }
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .map_err(fail)?;
    let mut facts = Map::new();
    facts.insert("integrity_check".into(), json!("ok"));
    facts.insert("tables".into(), json!(tables));
    Ok(facts)
}
