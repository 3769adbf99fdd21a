//! `POST/GET /webhooks`, `DELETE /webhooks/{id}`, `GET /webhooks/{id}/deliveries`.

use std::collections::HashMap;

use actix_web::{http::header, web, HttpResponse};
use serde_json::{json, Value};

use super::dto::Page;
use super::fields::{Body, Params};
use super::AppState;
use crate::domain::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::events::{EventFilter, KINDS};
use crate::webhooks::{delivery_view, target, Webhook};

/// Secrets longer than this are refused (they are HMAC keys, not documents).
const MAX_SECRET: usize = 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/webhooks")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        web::resource("/webhooks/{id}")
            .route(web::get().to(one))
            .route(web::delete().to(delete)),
    )
    .route("/webhooks/{id}/deliveries", web::get().to(deliveries));
}

async fn create(state: web::Data<AppState>, body: web::Json<Value>) -> ApiResult<HttpResponse> {
    let b = Body::new(body.into_inner())?;
    let url = b
        .string(&["url"])?
        .ok_or_else(|| ApiError::field("url", "is required"))?;
    target::check_url(&url, &state.hooks.host_rules()).map_err(|m| ApiError::field("url", m))?;
    let kinds = b.strings(&["events"])?;
    if let Some(bad) = kinds
        .iter()
        .flatten()
        .find(|k| !KINDS.contains(&k.as_str()))
    {
        return Err(ApiError::field(
            "events",
            format!("'{bad}' is not one of {}", KINDS.join(", ")),
        ));
    }
    let secret = b.string(&["secret"])?;
    if secret
        .as_ref()
        .is_some_and(|s| s.is_empty() || s.len() > MAX_SECRET)
    {
        return Err(ApiError::field(
            "secret",
            format!("must be 1 to {MAX_SECRET} characters"),
        ));
    }
    let hook = Webhook {
        id: uuid::Uuid::now_v7().to_string(),
        url,
        filter: EventFilter {
            tasks: b.task_ids(&["tasks"])?,
            batches: b.strings(&["batches"])?,
            types: b.strings(&["types"])?,
            kinds,
        },
        secret,
        created_at: now_ms(),
    };
    let hook = state.hooks.create(hook).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/webhooks/{}", hook.id)))
        .json(hook.view()))
}

/// `GET /webhooks?page=&limit=`: a page of the subscriptions, oldest first.
async fn list(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let (page, limit, offset) = Params(query.into_inner()).page()?;
    let hooks = state.hooks.list();
    let total = hooks.len() as i64;
    let items: Vec<Value> = hooks
        .iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(0))
        .map(Webhook::view)
        .collect();
    Ok(HttpResponse::Ok().json(Page {
        items,
        page,
        limit,
        total,
    }))
}

fn found(state: &AppState, id: &str) -> ApiResult<Webhook> {
    state
        .hooks
        .get(id)
        .ok_or_else(|| ApiError::not_found("webhook", id))
}

async fn one(state: web::Data<AppState>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(found(&state, &path)?.view()))
}

async fn delete(state: web::Data<AppState>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    found(&state, &id)?;
    state.hooks.delete(id).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn deliveries(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    found(&state, &id)?;
    let (page, limit, offset) = Params(query.into_inner()).page()?;
    let (rows, total) = state.hooks.deliveries(id, offset, limit).await?;
    let items: Vec<Value> = rows.iter().map(delivery_view).collect();
    Ok(HttpResponse::Ok()
        .json(json!({"items": items, "page": page, "limit": limit, "total": total})))
}
