//! `GET /metrics` (Prometheus text, at the root) and the HTTP metrics middleware.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpResponse};

use super::AppState;
use crate::actors::scheduler::GetStats;
use crate::error::ApiResult;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(prometheus_text));
}

/// Refreshes the pulled gauges (cheap: one scheduler message) and renders every metric.
async fn prometheus_text(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let m = &state.metrics;
    let stats = state.scheduler.send(GetStats).await?;
    m.running.set(stats.active as i64);
    m.queue_depth.set(stats.pending as i64);
    for status in ["AVAILABLE", "BUSY", "OFFLINE"] {
        m.units.with_label_values(&[status]).set(0);
    }
    // Every registered unit, offline ones included (the scheduler knows only those online);
    // a unit that is gone leaves no load series behind.
    m.unit_load.reset();
    for u in super::units::units_now(&state).await? {
        m.units.with_label_values(&[u.status]).inc();
        m.unit_load
            .with_label_values(&[&u.info.id])
            .set(u.current_load as f64 / u.info.capacity.max(1) as f64);
    }
    let (open, idle) = state.shared.store.pool_state();
    m.db_pool.with_label_values(&["open"]).set(i64::from(open));
    m.db_pool.with_label_values(&["idle"]).set(i64::from(idle));
    m.db_pool
        .with_label_values(&["busy"])
        .set(i64::from(open.saturating_sub(idle)));
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(m.render()))
}

/// Counts and times every request by method, route pattern and status.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let method = req.method().to_string();
    let res = next.call(req).await?;
    if let Some(m) = metrics {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        let status = res.status().as_u16().to_string();
        m.http_requests
            .with_label_values(&[&method, &route, &status])
            .inc();
        m.http_duration
            .with_label_values(&[&route])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(res)
}
