//! `GET /api/v1/tasks/statistics` (seed 003's statistics, seed 000's performance figures):
//! counts per status and type, success rate, duration and queue-wait percentiles, throughput.

use std::collections::{BTreeMap, HashMap};

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::fields::Params;
use super::AppState;
use crate::domain::now_ms;
use crate::error::ApiResult;
use crate::store::tasks::{self as q, TaskQuery};

/// The most recent finished tasks the percentiles are computed over.
const SAMPLE: i64 = 100_000;

fn summary(mut xs: Vec<f64>) -> Value {
    if xs.is_empty() {
        return json!({"count": 0, "mean": null, "p50": null, "p95": null, "max": null});
    }
    xs.sort_by(f64::total_cmp);
    let at = |p: f64| xs[((xs.len() as f64 - 1.0) * p).round() as usize];
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    json!({"count": xs.len(), "mean": mean, "p50": at(0.5), "p95": at(0.95), "max": xs[xs.len() - 1]})
}

pub async fn statistics(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let p = Params(query.into_inner());
    let tq = TaskQuery {
        task_type: p.str("type").map(String::from),
        tag: p.str("tag").map(String::from),
        batch_id: p.str("batch_id").map(String::from),
        schedule_id: p.str("schedule_id").map(String::from),
        created_after: p.time("created_after")?,
        created_before: p.time("created_before")?,
        ..TaskQuery::default()
    };
    Ok(HttpResponse::Ok().json(compute(&state, tq).await?))
}

/// The statistics of the tasks `tq` selects (its filters; paging and sort are ignored).
pub(crate) async fn compute(state: &AppState, tq: TaskQuery) -> ApiResult<Value> {
    let now = now_ms();
    let (counts, times, hour, day) = state
        .shared
        .store
        .read(move |c| {
            Ok((
                q::counts_by_type_status(c, &tq)?,
                q::finished_times(c, &tq, SAMPLE)?,
                q::finished_since(c, &tq, now - 3_600_000)?,
                q::finished_since(c, &tq, now - 86_400_000)?,
            ))
        })
        .await?;
    let mut by_status: BTreeMap<String, i64> = [
        "pending",
        "running",
        "paused",
        "success",
        "failed",
        "cancelled",
    ]
    .iter()
    .map(|s| (s.to_string(), 0))
    .collect();
    let mut by_type: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for (ty, st, n) in counts {
        *by_status.entry(st.clone()).or_default() += n;
        let row = by_type.entry(ty).or_default();
        *row.entry(st).or_default() += n;
        *row.entry("total".into()).or_default() += n;
    }
    let total: i64 = by_status.values().sum();
    let (ok, failed) = (by_status["success"], by_status["failed"]);
    let success_rate = if ok + failed > 0 {
        Some(ok as f64 / (ok + failed) as f64)
    } else {
        None
    };
    let durations = times
        .iter()
        .map(|(_, s, f)| (f - s) as f64 / 1000.0)
        .collect();
    let waits = times
        .iter()
        .map(|(c, s, _)| ((s - c).max(0)) as f64 / 1000.0)
        .collect();
    Ok(json!({
        "total": total,
        "by_status": by_status,
        "by_type": by_type,
        "success_rate": success_rate,
        "duration_secs": summary(durations),
        "queue_wait_secs": summary(waits),
        "throughput": {"last_hour": hour, "last_day": day, "per_minute_last_hour": hour as f64 / 60.0},
    }))
}
