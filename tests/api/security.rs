//! SPEC §9 over HTTP and WebSocket: tokens with roles (401 without a valid one, 403 naming the
//! role needed), token names in the history, single-use WebSocket tickets, the Origin check,
//! a configuration that shows no secret, and the webhook host lists.

use awc::http::Method;
use serde_json::{json, Value};
use steward::auth::tokens::sha256;
use steward::auth::{Role, TokenSpec};
use steward::config::Secret;

use crate::both_backends;
use crate::helpers::*;
use crate::ws_client::Ws;

both_backends!(
    viewer_reads_but_may_not_create_tasks,
    operator_controls_tasks_but_not_configuration_or_deletion,
    admin_may_do_everything,
    requests_without_a_valid_token_are_unauthorized,
    history_and_created_by_show_the_token_name,
    websocket_ticket_is_single_use,
    expired_websocket_ticket_is_refused,
    websocket_accepts_the_authorization_header,
    websocket_from_a_foreign_origin_is_forbidden,
    system_config_shows_no_token,
    webhook_and_callback_urls_follow_the_host_lists,
    secrets_in_a_task_config_are_masked_in_views_but_reach_the_work,
);

/// A credential in a task's config (a header, an environment variable, a URL's password) is
/// `***` in every view of the task, while the work itself still gets it.
async fn secrets_in_a_task_config_are_masked_in_views_but_reach_the_work(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let t = app
        .create(json!({"type": "command", "max_retries": 0, "config": {
            "program": "sh",
            "args": ["-c", "test \"$API_TOKEN\" = \"$(printf s3cr3t)value\" && echo token-arrived"],
            "env": {"API_TOKEN": "s3cr3tvalue", "MODE": "fast"}}}))
        .await;
    let id = id_of(&t);
    let done = app.wait_status(&id, "success", 10.0).await;
    let (_, listed) = app.get(&format!("/api/v1/tasks?ids={id}")).await;
    let (_, csv) = app.get_text("/api/v1/tasks?format=csv").await;
    let (_, seed004) = app.get(&format!("/api/tasks/{id}")).await;
    let logs = app.logs(&id).await;

    for view in [&t["config"], &done["config"], &listed["items"][0]["config"]] {
        assert_eq!(
            view["env"],
            json!({"API_TOKEN": "***", "MODE": "fast"}),
            "{view}"
        );
    }
    assert!(!csv.contains("s3cr3tvalue"), "{csv}");
    assert!(!seed004.to_string().contains("s3cr3tvalue"), "{seed004}");
    assert!(
        logs.iter().any(|l| l["message"] == "token-arrived"),
        "the work got the real value: {logs:?}"
    );
}

const ADMIN: &str = "root-secret-token";
const OPERATOR: &str = "ci-secret-token";
const VIEWER: &str = "grafana-secret-token";

fn spec(name: &str, role: Role, token: &str) -> TokenSpec {
    TokenSpec {
        name: name.into(),
        role,
        sha256: hex::encode(sha256(token.as_bytes())),
    }
}

/// A server with an admin token and an operator ("ci") and a viewer ("grafana") token.
async fn spawn_secured(db: Db, tweak: impl FnOnce(&mut steward::Config)) -> Option<TestApp> {
    spawn_app_with(db, |c| {
        c.admin_token = Some(Secret::new(ADMIN));
        c.tokens = vec![
            spec("ci", Role::Operator, OPERATOR),
            spec("grafana", Role::Viewer, VIEWER),
        ];
        tweak(c);
    })
    .await
}

/// One request with an optional bearer token.
async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    };
    body_json(res.expect("request")).await
}

fn sleep_task(secs: f64) -> Value {
    json!({"type": "sleep", "config": {"secs": secs}})
}

async fn create_as(app: &TestApp, token: &str, body: Value) -> String {
    let (status, task) = call(app, "POST", "/api/v1/tasks", Some(token), Some(body)).await;
    assert_eq!(status, 201, "{task}");
    id_of(&task)
}

/// Long-polls a task with a token until it has `status`.
async fn wait_as(app: &TestApp, token: &str, id: &str, status: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut version = 0;
    loop {
        let path = format!("/api/v1/tasks/{id}/wait?after_version={version}&timeout_secs=5");
        let (code, t) = call(app, "GET", &path, Some(token), None).await;
        assert_eq!(code, 200, "{t}");
        if t["status"] == status {
            return t;
        }
        assert!(std::time::Instant::now() < deadline, "never {status}: {t}");
        version = t["version"].as_i64().unwrap_or(0);
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

async fn viewer_reads_but_may_not_create_tasks(db: Db) {
    let Some(app) = spawn_secured(db, |_| {}).await else {
        return;
    };
    // Act
    let (list, _) = call(&app, "GET", "/api/v1/tasks", Some(VIEWER), None).await;
    let (create, err) = call(
        &app,
        "POST",
        "/api/v1/tasks",
        Some(VIEWER),
        Some(sleep_task(0.1)),
    )
    .await;

    // Assert
    assert_eq!(list, 200);
    assert_eq!(create, 403, "{err}");
    assert_eq!(code(&err), "forbidden");
    let message = err["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("operator"), "{message}");
    let (_, tasks) = call(&app, "GET", "/api/v1/tasks", Some(VIEWER), None).await;
    assert_eq!(tasks["total"], 0, "nothing was created: {tasks}");
}

async fn operator_controls_tasks_but_not_configuration_or_deletion(db: Db) {
    let Some(app) = spawn_secured(db, |_| {}).await else {
        return;
    };
    // Arrange
    let id = create_as(&app, OPERATOR, sleep_task(30.0)).await;
    wait_as(&app, OPERATOR, &id, "running").await;

    // Act / Assert: control
    for (action, status) in [
        ("pause", "paused"),
        ("resume", "running"),
        ("cancel", "cancelled"),
    ] {
        let path = format!("/api/v1/tasks/{id}/{action}");
        let (code, t) = call(&app, "POST", &path, Some(OPERATOR), None).await;
        assert_eq!(code, 200, "{action}: {t}");
        wait_as(&app, OPERATOR, &id, status).await;
    }
    // Not administration.
    let (put, err) = call(
        &app,
        "PUT",
        "/api/v1/system/config",
        Some(OPERATOR),
        Some(json!({"max_parallel_tasks": 3})),
    )
    .await;
    assert_eq!(put, 403, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("admin"),
        "{err}"
    );
    let (delete, err) = call(
        &app,
        "DELETE",
        &format!("/api/v1/tasks/{id}"),
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(delete, 403, "{err}");
    let (hook, _) = call(
        &app,
        "POST",
        "/api/v1/webhooks",
        Some(OPERATOR),
        Some(json!({"url": "http://127.0.0.1:9/hook"})),
    )
    .await;
    assert_eq!(hook, 403);
    // The task is still there.
    let (get, _) = call(
        &app,
        "GET",
        &format!("/api/v1/tasks/{id}"),
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(get, 200);
}

async fn admin_may_do_everything(db: Db) {
    let Some(app) = spawn_secured(db, |_| {}).await else {
        return;
    };
    // Act
    let id = create_as(&app, ADMIN, sleep_task(30.0)).await;
    let (cancel, _) = call(
        &app,
        "POST",
        &format!("/api/v1/tasks/{id}/cancel"),
        Some(ADMIN),
        None,
    )
    .await;
    wait_as(&app, ADMIN, &id, "cancelled").await;
    let (put, body) = call(
        &app,
        "PUT",
        "/api/v1/system/config",
        Some(ADMIN),
        Some(json!({"max_parallel_tasks": 3})),
    )
    .await;
    let (hook, _) = call(
        &app,
        "POST",
        "/api/v1/webhooks",
        Some(ADMIN),
        Some(json!({"url": "http://127.0.0.1:9/hook"})),
    )
    .await;
    let (delete, _) = call(
        &app,
        "DELETE",
        &format!("/api/v1/tasks/{id}"),
        Some(ADMIN),
        None,
    )
    .await;

    // Assert
    assert_eq!(cancel, 200);
    assert_eq!(put, 200, "{body}");
    assert_eq!(body["config"]["max_parallel_tasks"], 3);
    assert_eq!(hook, 201);
    assert_eq!(delete, 204);
    let (gone, _) = call(
        &app,
        "GET",
        &format!("/api/v1/tasks/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(gone, 404);
}

async fn requests_without_a_valid_token_are_unauthorized(db: Db) {
    let Some(app) = spawn_secured(db, |_| {}).await else {
        return;
    };
    // Act
    let (none, none_body) = call(&app, "GET", "/api/v1/tasks", None, None).await;
    let (wrong, wrong_body) = call(&app, "GET", "/api/v1/tasks", Some("not-a-token"), None).await;
    let (in_url, url_body) = call(
        &app,
        "GET",
        &format!("/api/v1/tasks?token={ADMIN}"),
        None,
        None,
    )
    .await;
    let (post, _) = call(&app, "POST", "/api/v1/tasks", None, Some(sleep_task(0.1))).await;
    let (prom, _) = call(&app, "GET", "/metrics", None, None).await;
    let (health, _) = call(&app, "GET", "/healthz", None, None).await;

    // Assert
    assert_eq!(none, 401, "{none_body}");
    assert_eq!(code(&none_body), "unauthorized");
    assert_eq!(wrong, 401, "{wrong_body}");
    assert_eq!(code(&wrong_body), "unauthorized");
    assert_eq!(in_url, 401, "a token in the URL is refused: {url_body}");
    assert_eq!(post, 401);
    assert_eq!(prom, 401);
    assert_eq!(health, 200, "probes stay open");
}

async fn history_and_created_by_show_the_token_name(db: Db) {
    let Some(app) = spawn_secured(db, |_| {}).await else {
        return;
    };
    // Arrange: the body tries to name someone else.
    let mut body = sleep_task(30.0);
    body["created_by"] = json!("mallory");
    let id = create_as(&app, OPERATOR, body).await;
    wait_as(&app, OPERATOR, &id, "running").await;

    // Act
    call(
        &app,
        "POST",
        &format!("/api/v1/tasks/{id}/cancel"),
        Some(OPERATOR),
        None,
    )
    .await;
    let task = wait_as(&app, VIEWER, &id, "cancelled").await;
    let (_, history) = call(
        &app,
        "GET",
        &format!("/api/v1/tasks/{id}/history"),
        Some(VIEWER),
        None,
    )
    .await;
    let (status, batch) = call(
        &app,
        "POST",
        "/api/v1/batches",
        Some(ADMIN),
        Some(json!({"name": "b", "tasks": [{"type": "noop", "created_by": "mallory"}]})),
    )
    .await;

    // Assert
    assert_eq!(task["created_by"], "ci");
    let items = history["items"].as_array().expect("history items");
    let cancel = items
        .iter()
        .find(|h| h["to"] == "cancelled")
        .unwrap_or_else(|| panic!("no cancel in {history}"));
    assert_eq!(cancel["by"], "ci", "{history}");
    assert_eq!(status, 201, "{batch}");
    assert_eq!(batch["created_by"], "admin");
    let task_id = batch["task_ids"][0].as_str().expect("task id");
    let (_, t) = call(
        &app,
        "GET",
        &format!("/api/v1/tasks/{task_id}"),
        Some(VIEWER),
        None,
    )
    .await;
    assert_eq!(t["created_by"], "admin");
}

async fn ticket(app: &TestApp, token: &str) -> String {
    let (status, body) = call(app, "POST", "/api/v1/ws/ticket", Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["expires_at"].is_string(), "{body}");
    body["ticket"].as_str().expect("ticket").to_string()
}

async fn websocket_ticket_is_single_use(db: Db) {
    let Some(app) = spawn_secured(db, |_| {}).await else {
        return;
    };
    // Arrange
    let t = ticket(&app, VIEWER).await;
    let path = format!("/api/v1/ws?ticket={t}");

    // Act
    let first = Ws::open(&app, &path, |r| r).await;
    let second = Ws::open(&app, &path, |r| r).await;
    let bare = Ws::open(&app, "/api/v1/ws", |r| r).await;
    let in_url = Ws::open(&app, &format!("/api/v1/ws?token={VIEWER}"), |r| r).await;
    let (no_token, _) = call(&app, "POST", "/api/v1/ws/ticket", None, None).await;

    // Assert
    let mut ws = first.unwrap_or_else(|s| panic!("first use refused with {s}"));
    ws.subscribe(json!({})).await;
    assert_eq!(second.err(), Some(401), "a used ticket is refused");
    assert_eq!(bare.err(), Some(401));
    assert_eq!(in_url.err(), Some(401), "a token in the URL is refused");
    assert_eq!(no_token, 401, "a ticket needs a token");
}

async fn expired_websocket_ticket_is_refused(db: Db) {
    let Some(app) = spawn_secured(db, |c| c.ws_ticket_ttl_secs = 0.05).await else {
        return;
    };
    // Arrange
    let t = ticket(&app, VIEWER).await;
    // The ticket's lifetime is the thing under test: let it pass.
    actix_rt::time::sleep(std::time::Duration::from_millis(200)).await;

    // Act
    let late = Ws::open(&app, &format!("/api/v1/ws?ticket={t}"), |r| r).await;

    // Assert
    assert_eq!(late.err(), Some(401));
}

async fn websocket_accepts_the_authorization_header(db: Db) {
    let Some(app) = spawn_secured(db, |_| {}).await else {
        return;
    };
    // Arrange
    let id = create_as(&app, OPERATOR, sleep_task(30.0)).await;

    // Act
    let mut ws = Ws::open(&app, "/api/v1/ws", |r| r.bearer_auth(VIEWER))
        .await
        .unwrap_or_else(|s| panic!("refused with {s}"));
    let wrong = Ws::open(&app, "/api/v1/ws", |r| r.bearer_auth("nope")).await;

    // Assert
    ws.subscribe(json!({"tasks": [id]})).await;
    call(
        &app,
        "POST",
        &format!("/api/v1/tasks/{id}/cancel"),
        Some(OPERATOR),
        None,
    )
    .await;
    ws.until(10.0, |v| crate::ws_client::is_status(v, &id, "cancelled"))
        .await;
    assert_eq!(wrong.err(), Some(401));
}

async fn websocket_from_a_foreign_origin_is_forbidden(db: Db) {
    let Some(app) = spawn_secured(db, |c| {
        c.allowed_origins = vec!["https://dashboard.example".into()];
    })
    .await
    else {
        return;
    };
    let own = app.addr.clone();

    // Act
    let foreign = Ws::open(&app, "/api/v1/ws", |r| {
        r.bearer_auth(VIEWER).origin("http://evil.example")
    })
    .await;
    let same_host = Ws::open(&app, "/api/v1/ws", |r| {
        r.bearer_auth(VIEWER).origin(own.as_str())
    })
    .await;
    let listed = Ws::open(&app, "/api/v1/ws", |r| {
        r.bearer_auth(VIEWER).origin("https://dashboard.example")
    })
    .await;

    // Assert
    assert_eq!(foreign.err(), Some(403));
    assert!(same_host.is_ok(), "the server's own origin is allowed");
    assert!(listed.is_ok(), "an allowed_origins entry is allowed");
}

async fn system_config_shows_no_token(db: Db) {
    let Some(app) = spawn_secured(db, |_| {}).await else {
        return;
    };
    // Act
    let mut res = app
        .client
        .get(app.url("/api/v1/system/config"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("GET");
    let text = String::from_utf8_lossy(&res.body().await.expect("body")).into_owned();
    let config: Value = serde_json::from_str(&text).expect("JSON");
    let (put, err) = call(
        &app,
        "PUT",
        "/api/v1/system/config",
        Some(ADMIN),
        Some(json!({"admin_token": "new-one"})),
    )
    .await;
    // The configuration read and sent back whole is accepted.
    let (round_trip, _) = call(
        &app,
        "PUT",
        "/api/v1/system/config",
        Some(ADMIN),
        Some(config.clone()),
    )
    .await;

    // Assert
    for secret in [ADMIN, OPERATOR, VIEWER] {
        assert!(!text.contains(secret), "the token appears in {text}");
        let hash = hex::encode(sha256(secret.as_bytes()));
        assert!(!text.contains(&hash), "a token hash appears in {text}");
    }
    assert_eq!(config["admin_token"], "***");
    assert_eq!(
        config["tokens"],
        json!([{"name": "ci", "role": "operator"}, {"name": "grafana", "role": "viewer"}])
    );
    assert_eq!(put, 400, "{err}");
    assert_eq!(err["error"]["field"], "admin_token");
    assert_eq!(round_trip, 200);
}

async fn webhook_and_callback_urls_follow_the_host_lists(db: Db) {
    let Some(app) = spawn_app_with(db, |c| {
        c.webhook_deny_hosts = vec!["*.internal.example".into(), "10.0.0.0/8".into()];
    })
    .await
    else {
        return;
    };
    // Act
    let (denied, body) = app
        .post(
            "/api/v1/webhooks",
            json!({"url": "http://build.internal.example/hook"}),
        )
        .await;
    let (private, _) = app
        .post(
            "/api/v1/tasks",
            json!({"type": "noop", "callback_url": "http://10.2.3.4/cb"}),
        )
        .await;
    let (metadata, _) = app
        .post(
            "/api/v1/batches",
            json!({"callback_url": "http://169.254.169.254/latest", "tasks": [{"type": "noop"}]}),
        )
        .await;
    let (fine, _) = app
        .post(
            "/api/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/hook"}),
        )
        .await;

    // Assert
    assert_eq!(denied, 400, "{body}");
    assert_eq!(body["error"]["field"], "url");
    assert_eq!(private, 400);
    assert_eq!(metadata, 400);
    assert_eq!(fine, 201);
}
