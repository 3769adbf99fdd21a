//! The client's HTTP side: JSON requests to `/api/v1` with the bearer token, and the server's
//! SPEC §6 error (`{"error": {"code", "message"}}`) turned into a [`CliError`].

use std::time::Duration;

use actix_web::http::Method;
use serde_json::Value;

/// Longest a request may take; long polls ask the server for less.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest response read (a CSV export is not read through here).
const MAX_RESPONSE: usize = 256 * 1024 * 1024;

/// Why a command failed, and the exit code that says so.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    pub message: String,
    code: u8,
}

impl CliError {
    /// The server refused, or could not be reached.
    pub fn request(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: 1,
        }
    }

    /// The command line itself is wrong.
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: 2,
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

/// A connection to one server.
pub struct Client {
    base: String,
    token: Option<String>,
    http: awc::Client,
}

impl Client {
    /// `server` is `http(s)://host:port`, with or without a trailing `/api/v1`.
    pub fn new(server: &str, token: Option<String>) -> Result<Self, CliError> {
        let base = server.trim().trim_end_matches('/');
        let base = base.strip_suffix("/api/v1").unwrap_or(base);
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::usage(format!(
                "--server '{server}' is not an http:// or https:// URL"
            )));
        }
        Ok(Client {
            base: format!("{base}/api/v1"),
            token: token.filter(|t| !t.is_empty()),
            http: awc::Client::builder().timeout(REQUEST_TIMEOUT).finish(),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Option<&Value>) -> Result<Value, CliError> {
        self.send(Method::POST, path, body).await
    }

    /// One request with an optional JSON body; the parsed JSON answer (`null` when empty).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let (bytes, _) = match body {
            Some(b) => self.raw(method, path, Some(("application/json", b.to_string()))),
            None => self.raw(method, path, None),
        }
        .await?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            CliError::request(format!("the server's answer to {path} is not JSON: {e}"))
        })
    }

    /// One request with a body of any type; the answer's bytes and content type.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, String)>,
    ) -> Result<(Vec<u8>, String), CliError> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method, &url)
            .insert_header(("accept", "application/json"));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let sent = match body {
            Some((content_type, text)) => {
                req.insert_header(("content-type", content_type))
                    .send_body(text)
                    .await
            }
            None => req.send().await,
        };
        let mut res = sent.map_err(|e| {
            CliError::request(format!("cannot reach the server at {}: {e}", self.base))
        })?;
        let status = res.status();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = res
            .body()
            .limit(MAX_RESPONSE)
            .await
            .map_err(|e| CliError::request(format!("cannot read the answer to {path}: {e}")))?;
        if status.is_success() {
            return Ok((bytes.to_vec(), content_type));
        }
        Err(CliError::request(server_error(status.as_u16(), &bytes)))
    }
}

/// The server's error message, as SPEC §6 shapes it, with the status and code after it.
fn server_error(status: u16, body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    match parsed.as_ref().map(|v| &v["error"]) {
        Some(err) if err["message"].is_string() => {
            let message = err["message"].as_str().unwrap_or("");
            let code = err["code"].as_str().unwrap_or("error");
            match err["field"].as_str() {
                Some(field) if !message.contains(field) => {
                    format!("{field}: {message} (HTTP {status} {code})")
                }
                _ => format!("{message} (HTTP {status} {code})"),
            }
        }
        _ => {
            let text: String = String::from_utf8_lossy(body).chars().take(300).collect();
            format!("the server answered HTTP {status}: {}", text.trim())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_show_the_message_then_status_and_code() {
        let body = br#"{"error":{"code":"not_found","message":"task 42 not found"}}"#;
        assert_eq!(
            server_error(404, body),
            "task 42 not found (HTTP 404 not_found)"
        );
        let field =
            br#"{"error":{"code":"validation_error","message":"is required","field":"type"}}"#;
        assert_eq!(
            server_error(400, field),
            "type: is required (HTTP 400 validation_error)"
        );
        assert_eq!(
            server_error(502, b"bad gateway"),
            "the server answered HTTP 502: bad gateway"
        );
    }

    #[test]
    fn the_server_url_may_carry_the_api_prefix() {
        let c = Client::new("http://h:1/api/v1/", None).unwrap();
        assert_eq!(c.base, "http://h:1/api/v1");
        assert!(Client::new("h:1", None).is_err());
    }
}
