//! Lists: filters, sorts, pagination, bulk status by ids, CSV and NDJSON exports.

use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    lists_filter_sort_paginate_and_export,
    the_openapi_document_lists_routes_that_exist
);

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
