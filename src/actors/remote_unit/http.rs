//! The calls steward makes to an HTTP-style unit (seed 004 §8.1): `POST {endpoint}/execute`,
//! `POST /pause/{id}`, `/resume/{id}`, `/cancel/{id}` and `GET /status/{id}`. The unit reports
//! back at `POST /api/v1/tasks/{id}/status` (and `/progress`), whose URLs the execute body
//! carries.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::domain::TaskId;
use crate::units::wire::Execute;

/// How long a call to a unit may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The `/execute` body: the wire `Execute` plus where to report.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExecuteBody {
    #[serde(flatten)]
    execute: Execute,
    callback_url: String,
    progress_url: String,
}

fn client() -> awc::Client {
    awc::Client::builder().timeout(CALL_TIMEOUT).finish()
}

fn url(endpoint: &str, path: &str) -> String {
    format!("{}/{path}", endpoint.trim_end_matches('/'))
}

/// Starts a job; an error says why the unit refused or could not be reached.
pub fn execute(
    endpoint: &str,
    base_url: &str,
    execute: Execute,
) -> impl Future<Output = Result<(), String>> + 'static {
    let task = execute.task_id;
    let body = ExecuteBody {
        callback_url: format!("{base_url}/api/v1/tasks/{task}/status"),
        progress_url: format!("{base_url}/api/v1/tasks/{task}/progress"),
        execute,
    };
    let target = url(endpoint, "execute");
    async move {
        match client().post(&target).send_json(&body).await {
            Ok(res) if res.status().is_success() => Ok(()),
            Ok(res) => Err(format!("{target} answered {}", res.status())),
            Err(e) => Err(format!("{target}: {e}")),
        }
    }
}

/// `pause`, `resume` or `cancel`; true when the unit answered 2xx.
pub fn control(endpoint: &str, op: &str, task: TaskId) -> impl Future<Output = bool> + 'static {
    let target = url(endpoint, &format!("{op}/{task}"));
    async move {
        match client().post(&target).send().await {
            Ok(res) if res.status().is_success() => true,
            Ok(res) => {
                log::warn!("{target} answered {}", res.status());
                false
            }
            Err(e) => {
                log::warn!("{target}: {e}");
                false
            }
        }
    }
}

/// The job's state as the unit reports it (`running`, `paused`, or a final status), or `None`
/// when the unit does not know the job or cannot be reached.
pub fn status(
    endpoint: &str,
    task: TaskId,
) -> impl Future<Output = Option<&'static str>> + 'static {
    let target = url(endpoint, &format!("status/{task}"));
    async move {
        let mut res = client().get(&target).send().await.ok()?;
        if !res.status().is_success() {
            return None;
        }
        let body: Value = res.json().await.ok()?;
        let status = body.get("status")?.as_str()?.to_ascii_lowercase();
        Some(match status.as_str() {
            "running" | "pending" => "running",
            "paused" => "paused",
            "success" | "completed" => "success",
            "failed" => "failed",
            "cancelled" | "canceled" => "cancelled",
            _ => return None,
        })
    }
}
