//! `database_backup` of PostgreSQL schemas on the test server (verified with
//! `pg_restore --list`, credentials from a server environment variable, a refused
//! connection), and backup configs refused at submission.

use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use serde_json::{json, Value};

use crate::backups::{entries, gunzip, sha256_hex};
use crate::both_backends;
use crate::helpers::*;

both_backends!(
    postgres_backup_is_verified_and_lists_the_tables,
    postgres_backup_failures_are_clear_and_leave_nothing,
    backup_configs_with_passwords_or_bad_fields_are_refused,
);

/// `(user, host:port, database)` of the test PostgreSQL's URL.
fn pg_parts() -> (String, String, String) {
    let url = pg_base_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let rest = rest.split('?').next().unwrap_or(rest);
    let (auth, db) = rest.split_once('/').unwrap_or((rest, "postgres"));
    let (user, host) = auth.rsplit_once('@').unwrap_or(("postgres", auth));
    let user = user.split(':').next().unwrap_or(user);
    (user.to_string(), host.to_string(), db.to_string())
}

/// A test schema on the test PostgreSQL, dropped when this goes out of scope (also when the
/// test fails).
struct TestSchema {
    conn: PgConnection,
    name: String,
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let _ = self
            .conn
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

/// A schema with tables `a` (1000 rows), `b` (500) and `c` (empty); `None` when PostgreSQL is
/// unreachable (the backend tests skip or fail the same way).
fn pg_schema() -> Option<TestSchema> {
    let mut conn = match PgConnection::establish(&pg_base_url()) {
        Ok(c) => c,
        Err(e) => {
            assert!(
                !crate::media::in_ci(),
                "PostgreSQL is unreachable and CI is set: {e}"
            );
            eprintln!("note: skipping a PostgreSQL backup test: {e}");
            return None;
        }
    };
    let schema = format!("bk_{}", uuid::Uuid::new_v4().simple());
    conn.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.a(id int PRIMARY KEY, name text);
         INSERT INTO {schema}.a SELECT g, 'name ' || g FROM generate_series(1, 1000) g;
         CREATE TABLE {schema}.b(id serial PRIMARY KEY, a_id int REFERENCES {schema}.a(id));
         INSERT INTO {schema}.b(a_id) SELECT g FROM generate_series(1, 500) g;
         CREATE TABLE {schema}.c(x jsonb);"
    ))
    .expect("make the test schema");
    Some(TestSchema { conn, name: schema })
}

fn pg_restore_list(archive: &Path) -> String {
    let out = std::process::Command::new("pg_restore")
        .arg("--list")
        .arg(archive)
        .output()
        .expect("run pg_restore");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn postgres_backup_is_verified_and_lists_the_tables(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let Some(test_schema) = pg_schema() else {
        return;
    };
    let schema = test_schema.name.clone();
    let (user, host, database) = pg_parts();

    // Act
    let t = app
        .create(json!({"type": "database_backup", "config": {
            "dbType": "postgresql", "host": host, "user": user, "database": database,
            "schema": schema, "backupType": "full", "outputPath": "pg/app.dump",
            "compression": true, "verifyIntegrity": true}}))
        .await;
    let id = id_of(&t);
    let done = app.wait_status(&id, "success", 60.0).await;
    let logs = app.logs(&id).await;

    // Assert
    let r = &done["result"];
    let out = app.dir.path().join("pg/app.dump.gz");
    assert_eq!(r["output"], out.display().to_string(), "{done}");
    assert_eq!(r["tables"], 3, "{r}");
    let mut tables: Vec<&str> = r["archive_tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    tables.sort();
    assert_eq!(
        tables,
        [
            format!("{schema}.a"),
            format!("{schema}.b"),
            format!("{schema}.c")
        ]
    );
    assert_eq!(r["sha256"], sha256_hex(&out).as_str());
    let sum = std::fs::read_to_string(app.dir.path().join("pg/app.dump.gz.sha256")).unwrap();
    assert_eq!(sum, format!("{}  app.dump.gz\n", sha256_hex(&out)));
    let plain = app.dir.path().join("app.dump");
    gunzip(&out, &plain);
    let listing = pg_restore_list(&plain);
    for table in ["a", "b", "c"] {
        assert!(
            listing.contains(&format!("TABLE DATA {schema} {table} ")),
            "{listing}"
        );
    }
    assert!(
        logs.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("dumping table") && m.ends_with("(3 of 3)"))),
        "{logs:?}"
    );
    assert_eq!(
        entries(&app.dir.path().join("pg")),
        vec!["app.dump.gz", "app.dump.gz.sha256"]
    );
}

async fn postgres_backup_failures_are_clear_and_leave_nothing(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Act: nothing listens on port 1; the password variable is not set
    let refused = app
        .create(
            json!({"type": "database_backup", "max_retries": 0, "config": {
            "dbType": "postgres", "host": "127.0.0.1:1", "database": "app",
            "outputPath": "pg/refused.dump"}}),
        )
        .await;
    let unset = app
        .create(
            json!({"type": "database_backup", "max_retries": 0, "config": {
            "dbType": "postgres", "host": "127.0.0.1", "database": "app",
            "passwordEnv": "STEWARD_SECRET_NOT_SET_ANYWHERE", "outputPath": "pg/unset.dump"}}),
        )
        .await;
    let refused = app.wait_status(&id_of(&refused), "failed", 30.0).await;
    let unset = app.wait_status(&id_of(&unset), "failed", 30.0).await;

    // Assert
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.starts_with("pg_dump failed") && error.contains("Connection refused"),
        "{error}"
    );
    let error = unset["error"].as_str().unwrap();
    assert!(
        error.contains("passwordEnv") && error.contains("STEWARD_SECRET_NOT_SET_ANYWHERE"),
        "{error}"
    );
    assert_eq!(entries(&app.dir.path().join("pg")), Vec::<String>::new());
}

async fn backup_configs_with_passwords_or_bad_fields_are_refused(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let pg = |extra: Value| {
        let mut c = json!({"dbType": "postgresql", "host": "db.example", "database": "app", "outputPath": "x.dump"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let cases = [
        (pg(json!({"password": "hunter2"})), "config.password"),
        (
            pg(json!({"database": "postgresql://app:hunter2@db.example/app"})),
            "config.database",
        ),
        (
            pg(json!({"passwordEnv": "STEWARD_ADMIN_TOKEN"})),
            "config.passwordEnv",
        ),
        (pg(json!({"host": "app:hunter2@db.example"})), "config.host"),
        (pg(json!({"dbType": "mysql"})), "config.dbType"),
        (
            pg(json!({"backupType": "incremental"})),
            "config.backupType",
        ),
        (
            pg(json!({"outputPath": "/etc/backup.dump"})),
            "config.outputPath",
        ),
        (pg(json!({"compression": "yes"})), "config.compression"),
        (
            json!({"dbType": "sqlite", "database": "../../etc/app.db", "outputPath": "x.db"}),
            "config.database",
        ),
        (
            json!({"dbType": "sqlite", "database": "app.db", "outputPath": "app.db"}),
            "config.outputPath",
        ),
        (
            json!({"dbType": "sqlite", "database": "app.db"}),
            "config.outputPath",
        ),
    ];
    for (config, field) in cases {
        // Act
        let (status, e) = app
            .post(
                "/api/v1/tasks",
                json!({"type": "database_backup", "config": config}),
            )
            .await;
        // Assert
        assert_eq!(status, 400, "{config} -> {e}");
        assert_eq!(e["error"]["field"], field, "{config} -> {e}");
        assert!(
            !e.to_string().contains("hunter2"),
            "a refusal repeats the secret: {e}"
        );
    }
    let (_, e) = app
        .post(
            "/api/v1/tasks",
            json!({"type": "database_backup", "config": pg(json!({"password": "hunter2"}))}),
        )
        .await;
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("passwordEnv") && !message.contains("hunter2"),
        "{message}"
    );
    let (_, types) = app.get("/api/v1/task-types").await;
    let backup = types
        .as_array()
        .and_then(|t| t.iter().find(|t| t["type"] == "database_backup"))
        .expect("database_backup listed");
    assert_eq!(backup["available"], true);
    assert!(backup["config_schema"]["properties"]["verifyIntegrity"].is_object());
}

/// The connection comes from a server environment variable named by the task: the URL's
/// password goes to pg_dump through its environment and shows up nowhere in the task.
#[actix_web::test]
async fn postgres_backup_reads_its_connection_from_a_server_environment_variable() {
    let Some(test_schema) = pg_schema() else {
        return;
    };
    let schema = test_schema.name.clone();
    // Arrange
    let (user, host, database) = pg_parts();
    let url = format!("postgresql://{user}:not-a-real-secret@{host}/{database}");
    let dir = tempfile::tempdir().unwrap();
    let env = [("STEWARD_SECRET_TEST_PG", url.as_str())];
    let mut s = crate::recovery::start_with(dir.path(), None, &[], &env).await;

    // Act
    let t = s
        .app
        .create(json!({"type": "database_backup", "config": {
            "dbType": "postgres", "connectionUrlEnv": "STEWARD_SECRET_TEST_PG",
            "schema": schema, "outputPath": "app.dump"}}))
        .await;
    let id = id_of(&t);
    let done = s.app.wait_status(&id, "success", 60.0).await;
    let logs = s.app.logs(&id).await;
    let _ = s.child.kill();
    let _ = s.child.wait();

    // Assert
    assert_eq!(done["result"]["tables"], 3, "{done}");
    assert_eq!(done["result"]["compressed"], false);
    let listing = pg_restore_list(&dir.path().join("app.dump"));
    assert!(
        listing.contains(&format!("TABLE DATA {schema} a ")),
        "{listing}"
    );
    let everything = format!("{done} {logs:?}");
    assert!(!everything.contains("not-a-real-secret"), "{everything}");
}
