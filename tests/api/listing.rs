//! Lists: filters, sorts, pagination, bulk status by ids, CSV and NDJSON exports.

use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    lists_filter_sort_paginate_and_export,
    the_openapi_document_lists_routes_that_exist,
    task_history_pages_like_every_list,
    units_and_webhooks_answer_the_list_shape
);

/// The values of `page`/`limit` every list refuses with a 400 naming the parameter.
const BAD_PAGING: [(&str, &str); 6] = [
    ("limit=-1", "limit"),
    ("limit=0", "limit"),
    ("limit=1001", "limit"),
    ("limit=ten", "limit"),
    ("page=abc", "page"),
    ("page=0", "page"),
];

/// Asserts a SPEC §6 page: `items` of `len`, and `page`, `limit`, `total` as given.
fn assert_page(body: &serde_json::Value, len: usize, page: i64, limit: i64, total: i64) {
    assert_eq!(
        (
            body["items"].as_array().map(Vec::len),
            body["page"].as_i64(),
            body["limit"].as_i64(),
            body["total"].as_i64()
        ),
        (Some(len), Some(page), Some(limit), Some(total)),
        "{body}"
    );
}

async fn assert_bad_paging_refused(app: &TestApp, path: &str) {
    for (query, field) in BAD_PAGING {
        let (status, e) = app.get(&format!("{path}?{query}")).await;
        assert_eq!(
            (
                status,
                e["error"]["code"].as_str(),
                e["error"]["field"].as_str()
            ),
            (400, Some("validation_error"), Some(field)),
            "{path}?{query}: {e}"
        );
    }
}

async fn task_history_pages_like_every_list(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange: a task with a few transitions (pending, running, paused, running, success).
    let t = app
        .create(json!({"type": "sleep", "config": {"secs": 0.5}}))
        .await;
    let id = id_of(&t);
    app.wait_status(&id, "running", 10.0).await;
    let (status, _) = app.post_empty(&format!("/api/v1/tasks/{id}/pause")).await;
    assert_eq!(status, 200);
    app.wait_status(&id, "paused", 10.0).await;
    let (status, _) = app.post_empty(&format!("/api/v1/tasks/{id}/resume")).await;
    assert_eq!(status, 200);
    app.wait_status(&id, "success", 20.0).await;
    let path = format!("/api/v1/tasks/{id}/history");

    // Act
    let (status, all) = app.get(&path).await;
    let (_, second) = app.get(&format!("{path}?page=2&limit=2")).await;
    let (_, past_end) = app.get(&format!("{path}?page=50&limit=10")).await;

    // Assert
    assert_eq!(status, 200, "{all}");
    let total = all["total"].as_i64().unwrap();
    assert!(
        total >= 5,
        "pending, running, paused, running, success: {all}"
    );
    assert_page(&all, total as usize, 1, 50, total);
    assert_page(&second, 2, 2, 2, total);
    assert_eq!(
        second["items"][0], all["items"][2],
        "oldest first: {second}"
    );
    assert_eq!(
        second["items"][1], all["items"][3],
        "oldest first: {second}"
    );
    assert_page(&past_end, 0, 50, 10, total);
    assert_eq!(all["items"][0]["to"], "pending", "{all}");
    assert_eq!(all["items"][total as usize - 1]["to"], "success", "{all}");
    assert_bad_paging_refused(&app, &path).await;
}

async fn units_and_webhooks_answer_the_list_shape(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    // Arrange: a second unit beside `local`, and three webhooks.
    let (status, unit) = app
        .post(
            "/api/v1/units",
            json!({"unit_name": "far", "endpoint": "http://127.0.0.1:9", "task_types": ["x"]}),
        )
        .await;
    assert_eq!(status, 201, "{unit}");
    let mut hooks = Vec::new();
    for i in 0..3 {
        let (status, hook) = app
            .post(
                "/api/v1/webhooks",
                json!({"url": format!("http://127.0.0.1:9/hook-{i}")}),
            )
            .await;
        assert_eq!(status, 201, "{hook}");
        hooks.push(hook["id"].as_str().unwrap().to_string());
    }

    // Act
    let (status, units) = app.get("/api/v1/units").await;
    let (_, first_unit) = app.get("/api/v1/units?limit=1").await;
    let (_, second_unit) = app.get("/api/v1/units?page=2&limit=1").await;
    let (status_hooks, all_hooks) = app.get("/api/v1/webhooks").await;
    let (_, last_hook) = app.get("/api/v1/webhooks?page=2&limit=2").await;

    // Assert
    assert_eq!(status, 200, "{units}");
    assert_page(&units, 2, 1, 50, 2);
    assert_page(&first_unit, 1, 1, 1, 2);
    assert_eq!(first_unit["items"][0]["id"], "local", "{first_unit}");
    assert_page(&second_unit, 1, 2, 1, 2);
    assert_eq!(second_unit["items"][0]["id"], unit["id"], "{second_unit}");
    assert_eq!(status_hooks, 200, "{all_hooks}");
    assert_page(&all_hooks, 3, 1, 50, 3);
    assert_page(&last_hook, 1, 2, 2, 3);
    assert_eq!(
        last_hook["items"][0]["id"],
        hooks[2].as_str(),
        "{last_hook}"
    );
    assert_bad_paging_refused(&app, "/api/v1/units").await;
    assert_bad_paging_refused(&app, "/api/v1/webhooks").await;
}

async fn the_openapi_document_lists_routes_that_exist(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let (status, doc) = app.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() > 40, "{}", paths.len());
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let url = app.url(&path.replace("{id}", "01a20000-0000-7000-8000-000000000000"));
            let req = match method.as_str() {
                "get" => app.client.get(&url),
                "post" => app.client.post(&url),
                "put" => app.client.put(&url),
                "patch" => app.client.patch(&url),
                "delete" => app.client.delete(&url),
                other => panic!("method {other}"),
            };
            if path.ends_with("/ws") {
                continue; // a WebSocket upgrade
            }
            let res = req
                .insert_header(("content-type", "application/json"))
                .send_body("{}")
                .await
                .expect("request");
            let (code, body) = body_json(res).await;
            let no_route = code == 404
                && body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("no route"));
            assert!(
                !no_route && code != 405,
                "{method} {path} is in the document but not routed ({code})"
            );
            assert!(code < 500, "{method} {path} answered {code}: {body}");
        }
    }
}

async fn lists_filter_sort_paginate_and_export(db: Db) {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let mut ids = Vec::new();
    for i in 0..5 {
        let t = app
            .create(json!({"type": "noop", "name": format!("job-{i}"), "priority": i, "tags": if i % 2 == 0 { json!(["even"]) } else { json!(["odd"]) }}))
            .await;
        ids.push(id_of(&t));
    }
    let held = app.create(json!({"type": "sleep", "name": "held_100%", "autostart": false, "config": {"secs": 1}})).await;
    for id in &ids {
        app.wait_status(id, "success", 10.0).await;
    }

    let (status, page) = app.get("/api/v1/tasks?limit=2&page=2&sort=priority").await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            page["page"].as_i64(),
            page["limit"].as_i64(),
            page["total"].as_i64()
        ),
        (Some(2), Some(2), Some(6))
    );
    let prios: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["priority"].as_i64().unwrap())
        .collect();
    assert_eq!(prios, [1, 2], "page 2 of ascending priorities 0,1,1,2,3,4");

    let (_, succ) = app
        .get("/api/v1/tasks?status=success&type=noop&tag=even&sort=-priority")
        .await;
    let names: Vec<&str> = succ["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["job-4", "job-2", "job-0"]);
    let (_, both) = app.get("/api/v1/tasks?status=pending,success").await;
    assert_eq!(both["total"], 6);
    let (_, q) = app.get("/api/v1/tasks?q=100%25").await;
    assert_eq!(q["total"], 1, "q matches literally: {q}");
    let (_, bulk) = app
        .get(&format!(
            "/api/v1/tasks?ids={},{}",
            ids[0],
            held["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(bulk["total"], 2);
    let (_, none) = app
        .get("/api/v1/tasks?created_after=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(none["total"], 0);

    let (status, csv) = app
        .get_text("/api/v1/tasks?format=csv&status=success&sort=name")
        .await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("id,name,type,status"), "{csv}");
    assert_eq!(lines.len(), 6);
    assert!(lines[1].contains("job-0") && lines[1].contains("success"));
    let (status, stats) = app.get("/api/v1/tasks/statistics?type=noop").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        (
            stats["total"].as_i64(),
            stats["by_status"]["success"].as_i64()
        ),
        (Some(5), Some(5)),
        "{stats}"
    );
    assert_eq!(stats["by_type"]["noop"]["success"], 5);
    assert_eq!(stats["success_rate"], 1.0);
    assert_eq!(stats["duration_secs"]["count"], 5);
    assert!(
        stats["duration_secs"]["p95"].as_f64().is_some()
            && stats["queue_wait_secs"]["p50"].as_f64().is_some()
    );
    assert_eq!(stats["throughput"]["last_hour"], 5);
    let (_, all) = app.get("/api/v1/tasks/statistics").await;
    assert_eq!(
        (all["total"].as_i64(), all["by_status"]["pending"].as_i64()),
        (Some(6), Some(1))
    );
    let (status, nd) = app.get_text("/api/v1/tasks?format=ndjson").await;
    assert_eq!(status, 200);
    let rows: Vec<serde_json::Value> = nd
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 6);
}

/// PostgreSQL only: tasks stored in a burst get fresh planner statistics within seconds
/// (steward `ANALYZE`s a table that changed by more than a tenth), not after autovacuum's
/// next round: until then the planner takes the table for empty and sorts every matching
/// row of a list page.
#[actix_web::test]
async fn postgres_statistics_follow_a_burst_of_new_tasks() {
    use diesel::{Connection, PgConnection, RunQueryDsl};

    let mut url = None;
    let Some(app) = spawn_app_with(Db::Postgres, |c| url = c.database_url.clone()).await else {
        return;
    };
    let url = url.expect("a PostgreSQL URL");
    let tasks: Vec<_> = (0..1500).map(|_| json!({"type": "noop"})).collect();

    // Act
    let (status, batch) = app
        .post("/api/v1/batches", json!({"name": "burst", "tasks": tasks}))
        .await;
    assert_eq!(status, 201, "{batch}");
    let id = batch["id"].as_str().unwrap();
    let (_, done) = app
        .get(&format!(
            "/api/v1/batches/{id}/wait?after_version=1000000&timeout_secs=60"
        ))
        .await;

    // Assert
    assert_eq!(done["status"], "success", "{done}");
    let (status, page) = app
        .get("/api/v1/tasks?status=success&type=noop&sort=-created_at&limit=50")
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 50);
    assert_eq!(page["total"], 1500);
    let mut pg = PgConnection::establish(&url).expect("connect to the test schema");
    let analyzed = diesel::dsl::sql::<diesel::sql_types::Bool>(
        "EXISTS (SELECT 1 FROM pg_stat_user_tables WHERE schemaname = current_schema() \
         AND relname = 'tasks' AND last_analyze IS NOT NULL)",
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let yes: bool = diesel::select(analyzed.clone())
            .get_result(&mut pg)
            .expect("read pg_stat_user_tables");
        if yes {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the tasks table was not analyzed within 30 s of a 1,500-task burst"
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
