//! Liveness and readiness probes at the root.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

/// The process is up.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Recovery is done and the database answers.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db = state.shared.store.read(|c| {
        use diesel::connection::SimpleConnection;
        c.batch_execute("SELECT 1").map_err(Into::into)
    });
    let db_ok = db.await.is_ok();
    let ready = state.is_ready() && db_ok;
    let body = json!({"status": if ready {"ready"} else {"starting"}, "recovered": state.is_ready(), "database": db_ok});
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
