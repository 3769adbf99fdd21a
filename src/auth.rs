//! Bearer-token authentication (SPEC §9). With no token configured every request passes, and
//! the configuration refuses any non-loopback bind address; with a token, every route but the
//! probes needs `Authorization: Bearer <token>`. Tokens are compared in constant time.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error, ResponseError};

use crate::config::Config;
use crate::error::{ApiError, ErrorCode};

/// The accepted tokens.
#[derive(Clone, Default)]
pub struct Tokens {
    admin: Option<Vec<u8>>,
}

impl Tokens {
    pub fn from_config(c: &Config) -> Self {
        Tokens {
            admin: c
                .admin_token
                .as_ref()
                .filter(|t| !t.is_empty())
                .map(|t| t.as_bytes().to_vec()),
        }
    }

    fn accepts(&self, presented: Option<&[u8]>) -> bool {
        match (&self.admin, presented) {
            (None, _) => true,
            (Some(expected), Some(given)) => constant_time_eq(expected, given),
            (Some(_), None) => false,
        }
    }
}

/// Equal-length byte comparison whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let tokens = req.app_data::<web::Data<Tokens>>().cloned();
    let open = OPEN_PATHS.contains(&req.path())
        || !req.path().starts_with("/api/") && req.path() != "/metrics";
    if let (Some(tokens), false) = (tokens, open) {
        let presented = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| t.trim().as_bytes().to_vec());
        if !tokens.accepts(presented.as_deref()) {
            let err = ApiError::new(ErrorCode::Unauthorized, "a valid bearer token is required");
            return Ok(req.into_response(err.error_response()));
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}
