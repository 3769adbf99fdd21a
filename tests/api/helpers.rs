//! Test harness: `spawn_app` starts a real server on 127.0.0.1:0 with its own data dir and,
//! for PostgreSQL, its own schema; `TestApp` has request helpers. PostgreSQL cases run against
//! STEWARD_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres); when it is
//! unreachable they fail under CI=true and are skipped, with a printed reason, otherwise.

use std::io::Write;
use std::sync::Once;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use serde_json::Value;
use steward::{Application, Config};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub addr: String,
    pub client: awc::Client,
    pub dir: tempfile::TempDir,
}

static LOG: Once = Once::new();
static SKIP_NOTE: Once = Once::new();

pub fn pg_base_url() -> String {
    std::env::var("STEWARD_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| !v.is_empty() && v != "false" && v != "0")
        .unwrap_or(false)
}

/// A fresh schema on the test PostgreSQL, as a URL whose search_path points at it; `None`
/// (with a note on stderr) when PostgreSQL is unreachable outside CI.
pub fn fresh_pg_schema() -> Option<String> {
    let base = pg_base_url();
    let mut conn = match PgConnection::establish(&base) {
        Ok(c) => c,
        Err(e) => {
            if in_ci() {
                panic!("PostgreSQL is unreachable at {base} and CI is set, so its tests cannot be skipped: {e}");
            }
            SKIP_NOTE.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "note: skipping PostgreSQL tests: cannot connect to {base} ({e}); set STEWARD_TEST_PG_URL to run them"
                );
            });
            return None;
        }
    };
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    conn.batch_execute(&format!("CREATE SCHEMA {schema}"))
        .expect("create test schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-csearch_path%3D{schema}"))
}

/// A configuration for a test server on a random port in `dir`.
pub fn test_config(db: Db, dir: &std::path::Path) -> Option<Config> {
    let mut config = Config {
        bind: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        kill_grace_secs: 1.0,
        db_pool_size: 4,
        http_workers: 2,
        ..Config::default()
    };
    if db == Db::Postgres {
        config.database_url = Some(fresh_pg_schema()?);
    }
    Some(config)
}

pub async fn spawn_app(db: Db) -> Option<TestApp> {
    spawn_app_with(db, |_| {}).await
}

pub async fn spawn_app_with(db: Db, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    LOG.call_once(|| {
        let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("off"))
            .is_test(true)
            .try_init();
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(db, dir.path())?;
    tweak(&mut config);
    let app = Application::build(config).await.expect("server starts");
    let addr = format!("http://127.0.0.1:{}", app.port());
    actix_rt::spawn(app.run_until_stopped());
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    Some(TestApp { addr, client, dir })
}

/// Decodes a response body as JSON (`null` when empty).
pub async fn body_json(
    mut res: awc::ClientResponse<
        impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>
            + Unpin,
    >,
) -> (u16, Value) {
    let status = res.status().as_u16();
    let bytes = res
        .body()
        .limit(64 * 1024 * 1024)
        .await
        .expect("response body");
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, v)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        body_json(self.client.get(self.url(path)).send().await.expect("GET")).await
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let mut res = self.client.get(self.url(path)).send().await.expect("GET");
        let bytes = res.body().limit(64 * 1024 * 1024).await.expect("body");
        (
            res.status().as_u16(),
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        body_json(
            self.client
                .post(self.url(path))
                .send_json(&body)
                .await
                .expect("POST"),
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, body: &'static str) -> (u16, Value) {
        body_json(
            self.client
                .post(self.url(path))
                .insert_header(("content-type", "application/json"))
                .send_body(body)
                .await
                .expect("POST"),
        )
        .await
    }

    pub async fn post_empty(&self, path: &str) -> (u16, Value) {
        body_json(self.client.post(self.url(path)).send().await.expect("POST")).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        body_json(
            self.client
                .put(self.url(path))
                .send_json(&body)
                .await
                .expect("PUT"),
        )
        .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        body_json(
            self.client
                .patch(self.url(path))
                .send_json(&body)
                .await
                .expect("PATCH"),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        body_json(
            self.client
                .delete(self.url(path))
                .send()
                .await
                .expect("DELETE"),
        )
        .await
    }

    /// Creates a task and returns it (asserting 201).
    pub async fn create(&self, body: Value) -> Value {
        let (status, task) = self.post("/api/v1/tasks", body).await;
        assert_eq!(status, 201, "create failed: {task}");
        task
    }

    pub async fn task(&self, id: &str) -> Value {
        let (status, t) = self.get(&format!("/api/v1/tasks/{id}")).await;
        assert_eq!(status, 200, "GET task {id}: {t}");
        t
    }

    /// Long-polls the task until `pred` holds, failing after `secs`.
    pub async fn wait_until(&self, id: &str, secs: f64, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let mut version = 0i64;
        loop {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .as_secs_f64();
            let (status, t) = self
                .get(&format!(
                    "/api/v1/tasks/{id}/wait?after_version={version}&timeout_secs={:.3}",
                    left.min(5.0)
                ))
                .await;
            assert_eq!(status, 200, "wait: {t}");
            if pred(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "condition not met within {secs}s; task is {t}"
            );
            let v = t["version"].as_i64().unwrap_or(0);
            if t["status"].as_str().is_some_and(is_terminal) && v <= version {
                panic!("task finished without meeting the condition: {t}");
            }
            version = v;
        }
    }

    pub async fn wait_status(&self, id: &str, status: &str, secs: f64) -> Value {
        self.wait_until(id, secs, |t| t["status"] == status).await
    }

    pub async fn history(&self, id: &str) -> Vec<Value> {
        let (status, h) = self.get(&format!("/api/v1/tasks/{id}/history")).await;
        assert_eq!(status, 200);
        h["items"].as_array().cloned().unwrap_or_default()
    }

    pub async fn logs(&self, id: &str) -> Vec<Value> {
        let (status, l) = self
            .get(&format!("/api/v1/tasks/{id}/logs?limit=1000"))
            .await;
        assert_eq!(status, 200);
        l["items"].as_array().cloned().unwrap_or_default()
    }
}

pub fn is_terminal(s: &str) -> bool {
    matches!(s, "success" | "failed" | "cancelled")
}

pub fn id_of(t: &Value) -> String {
    t["id"].as_str().expect("task id").to_string()
}

/// Milliseconds since the epoch of an RFC 3339 field.
pub fn ms(t: &Value, field: &str) -> i64 {
    let s = t[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing in {t}"));
    chrono::DateTime::parse_from_rfc3339(s)
        .expect("rfc3339")
        .timestamp_millis()
}

/// Runs each named case (an `async fn(Db)`) once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[actix_web::test]
                async fn sqlite() {
                    super::$case($crate::helpers::Db::Sqlite).await
                }
                #[actix_web::test]
                async fn postgres() {
                    super::$case($crate::helpers::Db::Postgres).await
                }
            }
        )*
    };
}
