//! Authentication and authorisation (SPEC §9). With no token configured every request passes,
//! and the configuration refuses any non-loopback bind address. With tokens, every route but
//! the probes and the dashboard's files needs `Authorization: Bearer <token>` (or, on a
//! WebSocket upgrade under `/api/v1`, a single-use `?ticket=`), and the [`roles`] table decides
//! whether the token's role may make the request: `401 unauthorized` without a valid
//! credential, `403 forbidden` naming the role needed otherwise. WebSocket handshakes that
//! carry an `Origin` must come from the server's own host or `allowed_origins`, tokens or not.

pub mod origin;
pub mod roles;
pub mod tickets;
pub mod tokens;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

use crate::api::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};
pub use tickets::Tickets;
pub use tokens::{Identity, Role, TokenSpec, Tokens};

const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];
/// Query parameters that would carry a long-lived token in a URL.
const TOKEN_PARAMS: [&str; 2] = ["token", "access_token"];

/// `POST /api/v1/ws/ticket`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws/ticket", web::post().to(issue_ticket));
}

/// The authenticated caller of a request, when authentication is on.
pub fn identity(req: &HttpRequest) -> Option<Identity> {
    req.extensions().get::<Identity>().cloned()
}

fn refuse(req: ServiceRequest, code: ErrorCode, message: String) -> ServiceResponse<BoxBody> {
    let err = ApiError::new(code, message);
    req.into_response(err.error_response())
}

fn is_websocket(req: &ServiceRequest) -> bool {
    req.headers()
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn query_param(req: &ServiceRequest, name: &str) -> Option<String> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .ok()?
        .into_inner()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn bearer(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// The middleware: Origin check on WebSocket upgrades, then credentials and role.
pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let websocket = is_websocket(&req);
    if websocket {
        if let Some(origin) = req.headers().get("origin") {
            let allowed = req
                .app_data::<web::Data<AppState>>()
                .map(|s| s.shared.config().allowed_origins.clone())
                .unwrap_or_default();
            let info = req.connection_info().clone();
            let ok = origin
                .to_str()
                .is_ok_and(|o| origin::allowed(o, info.host(), info.scheme(), &allowed));
            if !ok {
                let shown = String::from_utf8_lossy(origin.as_bytes()).into_owned();
                return Ok(refuse(
                    req,
                    ErrorCode::Forbidden,
                    format!("the origin '{shown}' may not open a WebSocket here; add it to allowed_origins"),
                ));
            }
        }
    }
    let path = req.path();
    let open = OPEN_PATHS.contains(&path) || !path.starts_with("/api/") && path != "/metrics";
    let tokens = req
        .app_data::<web::Data<Tokens>>()
        .map(|t| t.get_ref().clone())
        .unwrap_or_default();
    if open || !tokens.enabled() {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    if TOKEN_PARAMS.iter().any(|p| query_param(&req, p).is_some()) {
        return Ok(refuse(
            req,
            ErrorCode::Unauthorized,
            "a token in the URL is refused (access logs keep URLs): send it as Authorization: Bearer, or use a ticket from POST /api/v1/ws/ticket for a WebSocket".into(),
        ));
    }
    let who = if let Some(token) = bearer(&req) {
        match tokens.authenticate(&token) {
            Some(who) => who,
            None => {
                return Ok(refuse(
                    req,
                    ErrorCode::Unauthorized,
                    "the bearer token is not valid".into(),
                ))
            }
        }
    } else if let (true, true, Some(ticket)) = (
        websocket,
        path.starts_with("/api/v1/"),
        query_param(&req, "ticket"),
    ) {
        let redeemed = req
            .app_data::<web::Data<Tickets>>()
            .and_then(|t| t.redeem(&ticket))
            .flatten();
        match redeemed {
            Some(who) => who,
            None => {
                return Ok(refuse(
                    req,
                    ErrorCode::Unauthorized,
                    "the ticket is unknown, already used or expired; ask POST /api/v1/ws/ticket for a new one".into(),
                ))
            }
        }
    } else {
        return Ok(refuse(
            req,
            ErrorCode::Unauthorized,
            "a valid bearer token is required (Authorization: Bearer <token>)".into(),
        ));
    };
    let needed = roles::required(req.method().as_str(), path);
    if who.role < needed {
        let message = format!(
            "{} {} needs the {} role; the token '{}' has the {} role",
            req.method(),
            path,
            needed.as_str(),
            who.name,
            who.role.as_str()
        );
        return Ok(refuse(req, ErrorCode::Forbidden, message));
    }
    req.extensions_mut().insert(who);
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// `POST /api/v1/ws/ticket`: a single-use ticket for `?ticket=` on a WebSocket under
/// `/api/v1`, with the rights of the token that asked.
async fn issue_ticket(req: HttpRequest, tickets: web::Data<Tickets>) -> ApiResult<HttpResponse> {
    let issued = tickets.issue(identity(&req)).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unavailable,
            "too many outstanding tickets; try again shortly",
        )
    })?;
    let expires_at = chrono::Utc::now()
        + chrono::Duration::from_std(issued.expires_in).unwrap_or(chrono::Duration::zero());
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(json!({
            "ticket": issued.ticket,
            "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "expires_in_secs": issued.expires_in.as_secs_f64(),
        })))
}
