//! The errors the API returns. The rule for the whole crate: a client gets
//! `{"error": {"code", "message"[, "field"]}}` with the status from the one table below; bad
//! input is a 4xx naming what was wrong, and internal causes are logged, never sent.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::domain::InvalidTransition;
use crate::store::StoreError;

/// Machine-readable error codes and the HTTP status each maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    Validation,
    InvalidJson,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    InvalidTransition,
    MutexHeld,
    NotTerminal,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        self.row().0
    }

    pub fn status(self) -> StatusCode {
        self.row().1
    }

    fn row(self) -> (&'static str, StatusCode) {
        use ErrorCode::*;
        match self {
            Validation => ("validation_error", StatusCode::BAD_REQUEST),
            InvalidJson => ("invalid_json", StatusCode::BAD_REQUEST),
            Unauthorized => ("unauthorized", StatusCode::UNAUTHORIZED),
            Forbidden => ("forbidden", StatusCode::FORBIDDEN),
            NotFound => ("not_found", StatusCode::NOT_FOUND),
            MethodNotAllowed => ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED),
            InvalidTransition => ("invalid_transition", StatusCode::CONFLICT),
            MutexHeld => ("mutex_held", StatusCode::CONFLICT),
            NotTerminal => ("not_terminal", StatusCode::CONFLICT),
            Conflict => ("conflict", StatusCode::CONFLICT),
            PayloadTooLarge => ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            UnsupportedMediaType => ("unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE),
            Unprocessable => ("unprocessable", StatusCode::UNPROCESSABLE_ENTITY),
            Unavailable => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
            Internal => ("internal_error", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

/// An error as the API returns it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// A 400 naming the offending field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        ApiError {
            code: ErrorCode::Validation,
            message: format!("{field}: {message}"),
            field: Some(field),
        }
    }

    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        ApiError::new(ErrorCode::NotFound, format!("{what} {id} not found"))
    }

    pub fn internal() -> Self {
        ApiError::new(
            ErrorCode::Internal,
            "internal error; the server log has the details",
        )
    }
}

impl From<InvalidTransition> for ApiError {
    fn from(e: InvalidTransition) -> Self {
        ApiError::new(ErrorCode::InvalidTransition, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::new(ErrorCode::NotFound, "not found"),
            StoreError::Unavailable(msg) => {
                log::error!("store unavailable: {msg}");
                ApiError::new(ErrorCode::Unavailable, "the database is unavailable")
            }
            other => {
                log::error!("store error: {other}");
                ApiError::internal()
            }
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> Self {
        log::error!("actor mailbox error: {e}");
        ApiError::new(ErrorCode::Unavailable, "the server is shutting down")
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = json!({"code": self.code.as_str(), "message": self.message});
        if let Some(f) = &self.field {
            body["field"] = json!(f);
        }
        HttpResponse::build(self.status_code()).json(json!({ "error": body }))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
