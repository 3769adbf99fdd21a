//! Webhooks and task callbacks, delivered to real HTTP receivers started by the tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    a_webhook_that_fails_once_gets_the_same_signed_event_again,
    a_callback_url_receives_its_tasks_status_events,
    a_batch_callback_url_receives_the_batch_status_events,
    webhook_urls_outside_http_or_on_metadata_addresses_are_refused,
);

#[derive(Clone, Debug)]
struct Received {
    event: String,
    delivery: String,
    signature: Option<String>,
    body: Vec<u8>,
}

/// An HTTP receiver on 127.0.0.1:0 that answers 500 to its first `fail_first` requests.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(fail_first: usize) -> Receiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let (g, c) = (got.clone(), calls.clone());
        let server = HttpServer::new(move || {
            let (g, c) = (g.clone(), c.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (g, c) = (g.clone(), c.clone());
                async move {
                    let h = |n: &str| {
                        req.headers()
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .map(String::from)
                    };
                    g.lock().unwrap().push(Received {
                        event: h("x-steward-event").unwrap_or_default(),
                        delivery: h("x-steward-delivery").unwrap_or_default(),
                        signature: h("x-steward-signature"),
                        body: body.to_vec(),
                    });
                    if c.fetch_add(1, Ordering::SeqCst) < fail_first {
                        HttpResponse::InternalServerError().body("not now")
                    } else {
                        HttpResponse::Ok().finish()
                    }
                }
            }))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .expect("receiver binds");
        let port = server.addrs()[0].port();
        actix_rt::spawn(server.run());
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            got,
        }
    }

    /// Waits until `pred` holds over what arrived, within `secs`.
    async fn wait(&self, secs: f64, pred: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        loop {
            let now = self.got.lock().unwrap().clone();
            if pred(&now) {
                return now;
            }
            assert!(Instant::now() < deadline, "receiver got only {now:?}");
            actix_rt::time::sleep(Duration::from_millis(20)).await; // polling a local Vec
        }
    }
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn json_of(r: &Received) -> Value {
    serde_json::from_slice(&r.body).expect("a JSON body")
}

async fn a_webhook_that_fails_once_gets_the_same_signed_event_again(db: Db) {
    let Some(app) = spawn_app_with(db, |c| c.webhook_backoff_secs = 0.05).await else {
        return;
    };
    let receiver = Receiver::start(1);
    let (s, hook) = app
        .post(
            "/api/v1/webhooks",
            json!({"url": receiver.url, "events": ["status"], "types": ["noop"], "secret": "s3cret"}),
        )
        .await;
    assert_eq!(s, 201, "{hook}");
    assert_eq!(hook["has_secret"], true);
    assert!(hook.get("secret").is_none(), "the secret leaked: {hook}");
    let hook_id = hook["id"].as_str().unwrap().to_string();

    // Act
    let t = app.create(json!({"type": "noop"})).await;
    let id = id_of(&t);
    let got = receiver
        .wait(15.0, |r| {
            r.iter().any(|x| json_of(x)["to"] == "success") && r.len() >= 4 // three status events plus the one retried
        })
        .await;

    // Assert: the failed delivery came again, identical and validly signed
    let first = &got[0];
    let again: Vec<&Received> = got
        .iter()
        .filter(|r| r.delivery == first.delivery)
        .collect();
    assert_eq!(again.len(), 2, "{got:?}");
    assert_eq!(again[0].body, again[1].body);
    for r in &got {
        assert_eq!(r.event, "status");
        assert_eq!(
            r.signature.as_deref(),
            Some(hmac_hex("s3cret", &r.body).as_str())
        );
        assert_eq!(json_of(r)["task_id"], id.as_str());
        assert!(json_of(r)["seq"].as_u64().is_some());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let list = loop {
        let (s, list) = app
            .get(&format!("/api/v1/webhooks/{hook_id}/deliveries"))
            .await;
        assert_eq!(s, 200, "{list}");
        let items = list["items"].as_array().unwrap().clone();
        if items.len() == 3 && items.iter().all(|d| d["status"] == "delivered") {
            break items;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries never settled: {list}"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await; // outcomes are written after the reply
    };
    let retried = list
        .iter()
        .find(|d| d["id"] == first.delivery.as_str())
        .expect("the retried delivery is listed");
    assert_eq!(retried["attempts"], 2);
    assert_eq!(retried["last_code"], 200);
    let (s, hooks) = app.get("/api/v1/webhooks").await;
    assert_eq!(s, 200);
    assert_eq!(hooks["items"].as_array().unwrap().len(), 1);
    let (s, _) = app.delete(&format!("/api/v1/webhooks/{hook_id}")).await;
    assert_eq!(s, 204);
    let (s, _) = app.get(&format!("/api/v1/webhooks/{hook_id}")).await;
    assert_eq!(s, 404);
}

async fn a_callback_url_receives_its_tasks_status_events(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let receiver = Receiver::start(0);

    let t = app
        .create(json!({"type": "noop", "callback_url": receiver.url}))
        .await;
    let other = app.create(json!({"type": "noop"})).await;
    let id = id_of(&t);
    app.wait_status(&id_of(&other), "success", 10.0).await;
    let got = receiver
        .wait(15.0, |r| r.iter().any(|x| json_of(x)["to"] == "success"))
        .await;

    let mut to: Vec<String> = got
        .iter()
        .map(|r| json_of(r)["to"].as_str().unwrap().to_string())
        .collect();
    to.sort();
    assert_eq!(to, vec!["pending", "running", "success"], "{got:?}");
    for r in &got {
        assert_eq!(r.event, "status");
        assert_eq!(json_of(r)["task_id"], id.as_str());
        assert!(r.signature.is_none());
        assert!(!r.delivery.is_empty());
    }
}

async fn webhook_urls_outside_http_or_on_metadata_addresses_are_refused(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    for url in [
        "ftp://example.com/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/x",
        "http://100.100.100.200/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "not a url",
    ] {
        let (s, e) = app.post("/api/v1/webhooks", json!({"url": url})).await;
        assert_eq!(s, 400, "{url}: {e}");
        assert_eq!(e["error"]["field"], "url", "{url}: {e}");
    }
    let (s, e) = app
        .post(
            "/api/v1/tasks",
            json!({"type": "noop", "callback_url": "http://169.254.169.254/"}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = app
        .post(
            "/api/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/x", "events": ["weather"]}),
        )
        .await;
    assert_eq!((s, e["error"]["field"].as_str()), (400, Some("events")));
}

async fn a_batch_callback_url_receives_the_batch_status_events(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let receiver = Receiver::start(0);
    let (status, b) = app
        .post(
            "/api/v1/batches",
            json!({"callback_url": receiver.url, "tasks": [{"type": "noop"}, {"type": "noop"}]}),
        )
        .await;
    assert_eq!(status, 201, "{b}");

    let got = receiver
        .wait(15.0, |r| {
            r.iter()
                .any(|x| x.event == "batch" && json_of(x)["to"] == "success")
        })
        .await;

    let done = got
        .iter()
        .find(|x| x.event == "batch" && json_of(x)["to"] == "success")
        .unwrap();
    assert_eq!(json_of(done)["batch_id"], b["id"]);
    assert_eq!(json_of(done)["progress"], 100.0);
    assert!(
        json_of(done).get("callback_url").is_none(),
        "the URL itself is never sent"
    );
}

/// A delivery that failed just before a crash is sent again after the restart, with the same
/// delivery id.
async fn pending_deliveries_survive_a_restart(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = match db {
        Db::Sqlite => None,
        Db::Postgres => match fresh_pg_schema() {
            Some(u) => Some(u),
            None => return,
        },
    };
    let receiver = Receiver::start(1);
    let env = [("STEWARD_WEBHOOK_BACKOFF_SECS", "2")];
    let mut s = crate::recovery::start_with(dir.path(), url.as_deref(), &[], &env).await;
    let (status, hook) = s
        .app
        .post(
            "/api/v1/webhooks",
            json!({"url": receiver.url, "events": ["status"]}),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    s.app
        .create(json!({"type": "noop", "autostart": false}))
        .await;
    let first = receiver.wait(10.0, |r| !r.is_empty()).await;
    let failed_id = first[0].delivery.clone();

    // Act: crash before the retry is due, then start again.
    s.child.kill().expect("SIGKILL");
    s.child.wait().expect("reap");
    let mut s = crate::recovery::start_with(dir.path(), url.as_deref(), &[], &env).await;

    // Assert
    let got = receiver
        .wait(20.0, |r| {
            r.iter().filter(|x| x.delivery == failed_id).count() >= 2
        })
        .await;
    let again: Vec<&Received> = got.iter().filter(|x| x.delivery == failed_id).collect();
    assert_eq!(again[0].body, again[1].body, "the same event again");
    let id = hook["id"].as_str().unwrap();
    let (status, deliveries) = s
        .app
        .get(&format!("/api/v1/webhooks/{id}/deliveries"))
        .await;
    assert_eq!(status, 200, "{deliveries}");
    let _ = s.child.kill();
    let _ = s.child.wait();
}

#[actix_web::test]
async fn pending_deliveries_survive_a_restart_sqlite() {
    pending_deliveries_survive_a_restart(Db::Sqlite).await
}

#[actix_web::test]
async fn pending_deliveries_survive_a_restart_postgres() {
    pending_deliveries_survive_a_restart(Db::Postgres).await
}
