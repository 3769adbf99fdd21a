//! Following a task to its end: the long poll `GET /tasks/{id}/wait?after_version=` drives a
//! progress bar, and with `logs --follow` the log is printed as it grows.

use serde_json::Value;

use super::client::{CliError, Client};
use super::output;
use super::task::enc;

/// How long one long poll of a followed task may last.
const POLL_SECS: f64 = 30.0;
/// With the log followed too, it is fetched at least this often (log lines do not change the
/// task's version, so the long poll does not wake for them).
const LOG_POLL_SECS: f64 = 1.0;
/// How long after a followed task ends its last log lines are looked for once more.
const LAST_LINES_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// Prints the log lines after `after` (a log id), moving `after` on.
pub async fn print_logs(
    client: &Client,
    id: &str,
    level: &str,
    after: &mut i64,
    json: bool,
    bar: Option<&indicatif::ProgressBar>,
) -> Result<(), CliError> {
    loop {
        let mut path = format!("/tasks/{}/logs?limit=1000&after={after}", enc(id));
        if !level.is_empty() {
            path.push_str(&format!("&level={}", enc(level)));
        }
        let page = client.get(&path).await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        for l in &items {
            *after = (*after).max(l["id"].as_i64().unwrap_or(0));
            let text = if json {
                l.to_string()
            } else {
                format!(
                    "{} {:<7} {}",
                    output::time(&l["timestamp"]),
                    output::text(&l["level"]),
                    output::text(&l["message"])
                )
            };
            match bar {
                Some(b) => output::line(b, &text),
                None => outln!("{text}"),
            }
        }
        if items.len() < 1000 {
            return Ok(());
        }
    }
}

/// Follows a task with the long poll until it ends, drawing a progress bar (not with
/// `--json`), and printing its log as it grows when `logs` is set. Answers the final task.
pub async fn follow(
    client: &Client,
    id: &str,
    json: bool,
    logs: Option<&str>,
) -> Result<Value, CliError> {
    let bar = output::progress_bar(json);
    let mut version = 0i64;
    let mut after = 0i64;
    let wait = if logs.is_some() {
        LOG_POLL_SECS
    } else {
        POLL_SECS
    };
    loop {
        let task = client
            .get(&format!(
                "/tasks/{}/wait?after_version={version}&timeout_secs={wait}",
                enc(id)
            ))
            .await?;
        if let Some(level) = logs {
            print_logs(client, id, level, &mut after, json, Some(&bar)).await?;
        }
        version = task["version"].as_i64().unwrap_or(version);
        bar.set_position(task["progress"].as_f64().unwrap_or(0.0).clamp(0.0, 100.0) as u64);
        let eta = output::secs(&task["eta_secs"]);
        let mut msg = output::text(&task["status"]);
        for part in [output::text(&task["stage"]), output::text(&task["message"])] {
            if !part.is_empty() {
                msg.push_str(" · ");
                msg.push_str(&part);
            }
        }
        if !eta.is_empty() && task["status"] == "running" {
            msg.push_str(&format!(" · eta {eta}"));
        }
        bar.set_message(msg);
        if matches!(
            task["status"].as_str(),
            Some("success" | "failed" | "cancelled")
        ) {
            if let Some(level) = logs {
                // The final state can be seen a moment before the lines written with it.
                actix_rt::time::sleep(LAST_LINES_GRACE).await;
                print_logs(client, id, level, &mut after, json, Some(&bar)).await?;
            }
            bar.finish_and_clear();
            return Ok(task);
        }
    }
}
