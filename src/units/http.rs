//! `http`: one request (`method`, `url`, `headers`, `body`); the task succeeds when the answer's
//! status is `expected_status` (a code or a list of codes; default any 2xx). The result holds
//! the status and the body (text, cut at [`MAX_BODY`] bytes). A request cannot be paused, so a
//! pause waits for the answer; cancel drops the request at once.

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::{opt_field, ConfigError, Control, Job, JobContext, Outcome, TaskHandler, UnitEnv};

/// The most of the response body kept in the result.
pub const MAX_BODY: usize = 64 * 1024;
const DEFAULT_TIMEOUT_SECS: f64 = 30.0;
const MAX_TIMEOUT_SECS: f64 = 3600.0;
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

pub struct HttpUnit;

struct Spec {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
    expected: Option<Vec<u16>>,
    timeout: Duration,
}

fn spec_of(config: &Value) -> Result<Spec, ConfigError> {
    let url = match opt_field(config, "url") {
        Some(Value::String(s)) if s.starts_with("http://") => s.clone(),
        Some(Value::String(s)) if s.starts_with("https://") => {
            return Err(ConfigError::new(
                "url",
                "https is not supported by this build (no TLS client); use http://",
            ))
        }
        Some(v) => {
            return Err(ConfigError::new(
                "url",
                format!("must be an http:// URL, not {v}"),
            ))
        }
        None => return Err(ConfigError::new("url", "is required")),
    };
    let method = match opt_field(config, "method") {
        None => "GET".to_string(),
        Some(Value::String(m)) if METHODS.contains(&m.to_ascii_uppercase().as_str()) => {
            m.to_ascii_uppercase()
        }
        Some(v) => {
            return Err(ConfigError::new(
                "method",
                format!("must be one of {}, not {v}", METHODS.join(", ")),
            ))
        }
    };
    let headers = match opt_field(config, "headers") {
        None => Vec::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(ConfigError::new(
                    &format!("headers.{k}"),
                    format!("must be a string, not {other}"),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(ConfigError::new(
                "headers",
                format!("must be an object of strings, not {v}"),
            ))
        }
    };
    let code = |v: &Value| {
        v.as_u64()
            .filter(|c| (100..=599).contains(c))
            .map(|c| c as u16)
    };
    let expected = match opt_field(config, "expected_status") {
        None => None,
        Some(Value::Array(items)) => Some(items.iter().map(code).collect::<Option<Vec<_>>>()),
        Some(v) => Some(code(v).map(|c| vec![c])),
    };
    let expected = match expected {
        None => None,
        Some(Some(codes)) if !codes.is_empty() => Some(codes),
        Some(_) => {
            return Err(ConfigError::new(
                "expected_status",
                "must be a status code (100–599) or a non-empty list of them",
            ))
        }
    };
    let timeout = match opt_field(config, "timeout_secs") {
        None => DEFAULT_TIMEOUT_SECS,
        Some(v) => v
            .as_f64()
            .filter(|t| *t > 0.0 && *t <= MAX_TIMEOUT_SECS)
            .ok_or_else(|| {
                ConfigError::new(
                    "timeout_secs",
                    format!("must be in (0, {MAX_TIMEOUT_SECS}]"),
                )
            })?,
    };
    Ok(Spec {
        method,
        url,
        headers,
        body: opt_field(config, "body").cloned(),
        expected,
        timeout: Duration::from_secs_f64(timeout),
    })
}

impl TaskHandler for HttpUnit {
    fn task_type(&self) -> &str {
        "http"
    }

    fn config_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["url"],
            "properties": {
                "method": {"enum": METHODS, "default": "GET"},
                "url": {"type": "string", "description": "http:// only"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "body": {"description": "a string is sent as is; anything else as JSON"},
                "expected_status": {"description": "a code or a list of codes; default: any 2xx"},
                "timeout_secs": {"type": "number", "default": DEFAULT_TIMEOUT_SECS}
            }
        })
    }

    fn validate(&self, config: &Value, _env: &UnitEnv) -> Result<(), ConfigError> {
        spec_of(config).map(|_| ())
    }

    fn run(&self, job: Job, ctx: JobContext) -> BoxFuture<'static, Outcome> {
        async move {
            let spec = match spec_of(&job.config) {
                Ok(s) => s,
                Err(e) => return Outcome::Failed(format!("{}: {}", e.field, e.message)),
            };
            run_request(spec, ctx).await
        }
        .boxed()
    }
}

/// What came back.
struct Answer {
    status: u16,
    body: String,
    truncated: bool,
}

/// The request itself. `awc` futures are not `Send`, so the request runs as a local task on
/// this thread and hands its answer back over a channel.
async fn run_request(spec: Spec, mut ctx: JobContext) -> Outcome {
    let (tx, rx) = oneshot::channel::<Result<Answer, String>>();
    let (method, url, headers, body, timeout) = (
        spec.method.clone(),
        spec.url.clone(),
        spec.headers.clone(),
        spec.body.clone(),
        spec.timeout,
    );
    let request = actix_rt::spawn(async move {
        let _ = tx.send(send(method, url, headers, body, timeout).await);
    });
    let mut rx = rx;
    let answer = loop {
        tokio::select! {
            a = &mut rx => break a,
            c = ctx.changed() => if c == Control::Cancel {
                request.abort();
                return Outcome::Cancelled;
            },
        }
    };
    let answer = match answer {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return Outcome::Failed(e),
        Err(_) => return Outcome::Failed("the request was dropped".into()),
    };
    let ok = match &spec.expected {
        Some(codes) => codes.contains(&answer.status),
        None => (200..300).contains(&answer.status),
    };
    let result = json!({
        "status": answer.status,
        "body": answer.body,
        "body_truncated": answer.truncated,
    });
    if ok {
        Outcome::Success(Some(result))
    } else {
        ctx.report(super::Report::Result(result));
        Outcome::Failed(format!(
            "{} {} answered {}",
            spec.method, spec.url, answer.status
        ))
    }
}

async fn send(
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
    timeout: Duration,
) -> Result<Answer, String> {
    let client = awc::Client::builder().timeout(timeout).finish();
    let method = awc::http::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let mut req = client.request(method, &url);
    for (k, v) in &headers {
        req = req.insert_header((k.as_str(), v.as_str()));
    }
    let sent = match body {
        None => req.send().await,
        Some(Value::String(s)) => req.send_body(s).await,
        Some(v) => req.send_json(&v).await,
    };
    let mut res = sent.map_err(|e| format!("{url}: {e}"))?;
    let status = res.status().as_u16();
    let bytes = res
        .body()
        .limit(16 * 1024 * 1024)
        .await
        .map_err(|e| format!("{url}: cannot read the body: {e}"))?;
    let truncated = bytes.len() > MAX_BODY;
    let kept = &bytes[..bytes.len().min(MAX_BODY)];
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(kept).into_owned(),
        truncated,
    })
}
