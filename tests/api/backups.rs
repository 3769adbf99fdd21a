//! `database_backup` of SQLite databases the tests make: compressed and verified, paused
//! midway while the source takes writes, cancelled. PostgreSQL is in `backups_pg`.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    sqlite_backup_compressed_and_verified_is_an_identical_copy,
    sqlite_backup_paused_midway_still_yields_a_complete_copy,
    sqlite_backup_cancelled_leaves_no_files,
);

const TABLES: [&str; 3] = ["users", "orders", "events"];

/// An SQLite database in WAL mode with three tables: `rows` users, two orders each and an
/// event with a 200-byte payload each. Returns the row counts.
pub(crate) fn make_db(path: &Path, rows: usize) -> Vec<i64> {
    let mut c = rusqlite::Connection::open(path).expect("create db");
    c.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);
         CREATE TABLE orders(id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), amount REAL, note TEXT);
         CREATE TABLE events(id INTEGER PRIMARY KEY, kind TEXT, payload BLOB);
         CREATE INDEX orders_by_user ON orders(user_id);",
    )
    .expect("schema");
    let tx = c.transaction().unwrap();
    for i in 0..rows {
        tx.execute(
            "INSERT INTO users(id, name, email) VALUES (?1, ?2, ?3)",
            rusqlite::params![
                i as i64,
                format!("User {i}"),
                format!("user{i}@example.com")
            ],
        )
        .unwrap();
        for k in 0..2 {
            tx.execute(
                "INSERT INTO orders(user_id, amount, note) VALUES (?1, ?2, ?3)",
                rusqlite::params![
                    i as i64,
                    (i * 3 + k) as f64 / 7.0,
                    format!("order {k} of user {i}")
                ],
            )
            .unwrap();
        }
        tx.execute(
            "INSERT INTO events(kind, payload) VALUES ('signup', ?1)",
            rusqlite::params![vec![(i % 251) as u8; 200]],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    counts(path)
}

/// Rows per table of [`TABLES`].
fn counts(path: &Path) -> Vec<i64> {
    let c = rusqlite::Connection::open(path).expect("open copy");
    TABLES
        .iter()
        .map(|t| {
            c.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .expect("count")
        })
        .collect()
}

pub(crate) fn sha256_hex(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("read output")))
}

pub(crate) fn gunzip(from: &Path, to: &Path) {
    let mut gz = flate2::read::GzDecoder::new(std::fs::File::open(from).unwrap());
    let mut bytes = Vec::new();
    gz.read_to_end(&mut bytes).expect("a gzip file");
    std::fs::write(to, bytes).unwrap();
}

pub(crate) fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn sqlite_backup_compressed_and_verified_is_an_identical_copy(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange
    let rows = make_db(&app.dir.path().join("app.db"), 5_000);

    // Act
    let t = app
        .create(json!({"taskType": "DATABASE_BACKUP", "config": {
            "dbType": "sqlite", "host": "localhost", "database": "app.db",
            "backupType": "full", "outputPath": "backups/app_20240101.db",
            "compression": true, "verifyIntegrity": true}}))
        .await;
    let done = app.wait_status(&id_of(&t), "success", 60.0).await;

    // Assert: the result, the checksum file and the copy itself
    let r = &done["result"];
    let out = app.dir.path().join("backups/app_20240101.db.gz");
    assert_eq!(r["output"], out.display().to_string(), "{done}");
    assert!(r["pages"].as_u64().unwrap() > 100, "{r}");
    assert_eq!(r["page_size"], 4096, "{r}");
    assert_eq!(r["bytes"], std::fs::metadata(&out).unwrap().len(), "{r}");
    assert_eq!(
        (r["verified"].as_bool(), r["integrity_check"].as_str()),
        (Some(true), Some("ok"))
    );
    let hex = sha256_hex(&out);
    assert_eq!(r["sha256"], hex.as_str());
    let sum =
        std::fs::read_to_string(app.dir.path().join("backups/app_20240101.db.gz.sha256")).unwrap();
    assert_eq!(sum, format!("{hex}  app_20240101.db.gz\n"));
    let copy = app.dir.path().join("copy.db");
    gunzip(&out, &copy);
    assert_eq!(counts(&copy), rows);
    assert_eq!(
        entries(&app.dir.path().join("backups")),
        vec!["app_20240101.db.gz", "app_20240101.db.gz.sha256"]
    );
}

async fn sqlite_backup_paused_midway_still_yields_a_complete_copy(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange: a database of ~7 MB copied 20 pages at a time, with a breather after each step
    let mut rows = make_db(&app.dir.path().join("big.db"), 20_000);
    let t = app
        .create(json!({"type": "database_backup", "config": {
            "dbType": "sqlite", "database": "big.db", "outputPath": "big.backup.db",
            "pagesPerStep": 20, "stepPauseMs": 20}}))
        .await;
    let id = id_of(&t);
    app.wait_until(&id, 30.0, |t| {
        t["status"] == "running" && t["progress"].as_f64().unwrap_or(0.0) > 0.0
    })
    .await;

    // Act: pause; while paused the source takes writes (a paused backup locks nothing);
    // then resume
    let (status, body) = app.post_empty(&format!("/api/v1/tasks/{id}/pause")).await;
    assert_eq!(status, 200, "{body}");
    app.wait_status(&id, "paused", 10.0).await;
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let held = app.task(&id).await["progress"].as_f64().unwrap();
    let writer = rusqlite::Connection::open(app.dir.path().join("big.db")).unwrap();
    writer.busy_timeout(Duration::from_secs(5)).unwrap();
    for i in 0..10 {
        writer
            .execute("INSERT INTO users(name) VALUES (?1)", [format!("late {i}")])
            .expect("the source stays writable during a paused backup");
    }
    drop(writer);
    rows[0] += 10;
    actix_rt::time::sleep(Duration::from_millis(800)).await;
    let still = app.task(&id).await;
    let (status, body) = app.post_empty(&format!("/api/v1/tasks/{id}/resume")).await;
    assert_eq!(status, 200, "{body}");
    let done = app.wait_status(&id, "success", 60.0).await;

    // Assert
    assert!(held < 80.0, "paused too late: {held}");
    assert_eq!(
        still["progress"].as_f64(),
        Some(held),
        "progress moved while paused"
    );
    let logs = app.logs(&id).await;
    assert!(
        logs.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("paused while backing up"))),
        "{logs:?}"
    );
    let copy = app.dir.path().join("big.backup.db");
    assert_eq!(
        counts(&copy),
        rows,
        "the copy is the source as it was at the end"
    );
    assert_eq!(done["result"]["integrity_check"], "ok", "{done}");
    assert_eq!(done["result"]["sha256"], sha256_hex(&copy).as_str());
}

async fn sqlite_backup_cancelled_leaves_no_files(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange: a paused backup with its temporary on disk
    make_db(&app.dir.path().join("app.db"), 10_000);
    std::fs::create_dir_all(app.dir.path().join("b")).unwrap();
    let t = app
        .create(json!({"type": "database_backup", "config": {
            "dbType": "sqlite", "database": "app.db", "outputPath": "b/app.db",
            "compression": true, "pagesPerStep": 10, "stepPauseMs": 20}}))
        .await;
    let id = id_of(&t);
    app.wait_until(&id, 30.0, |t| t["progress"].as_f64().unwrap_or(0.0) > 0.0)
        .await;
    app.post_empty(&format!("/api/v1/tasks/{id}/pause")).await;
    app.wait_status(&id, "paused", 10.0).await;
    assert!(
        !entries(&app.dir.path().join("b")).is_empty(),
        "nothing to clean up"
    );

    // Act
    let (status, body) = app.post_empty(&format!("/api/v1/tasks/{id}/cancel")).await;

    // Assert
    assert_eq!(status, 200, "{body}");
    app.wait_status(&id, "cancelled", 10.0).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !entries(&app.dir.path().join("b")).is_empty() && Instant::now() < deadline {
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(entries(&app.dir.path().join("b")), Vec::<String>::new());
}
