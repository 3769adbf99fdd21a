//! `steward batch submit | ls | show | cancel | pause | resume | restart`.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;

use super::client::{CliError, Client};
use super::output;
use super::task::{enc, print_task_table};

/// How long one long poll of a followed batch may last (its progress is redrawn as often).
const POLL_SECS: f64 = 1.0;

#[derive(Subcommand)]
pub enum BatchCmd {
    /// Submit a batch (the body of POST /api/v1/batches); prints its id.
    Submit {
        /// The batch as JSON, @file.json, or @- for standard input.
        spec: String,
        /// Wait for the batch to end: exit 0 when it succeeded, 3 otherwise.
        #[arg(long, short)]
        wait: bool,
    },
    /// List batches, newest first.
    Ls {
        #[arg(long, short)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long, default_value_t = 1)]
        page: u32,
    },
    /// Show a batch and its tasks.
    Show { id: String },
    /// Cancel every live task of batches.
    Cancel {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Hold pending tasks and pause running ones.
    Pause {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    Resume {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Re-run failed and cancelled tasks.
    Restart {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

pub async fn run(client: &Client, json: bool, cmd: BatchCmd) -> Result<ExitCode, CliError> {
    match cmd {
        BatchCmd::Submit { spec, wait } => {
            let body = super::json_arg("the batch", &spec)?;
            let batch = client.post("/batches", Some(&body)).await?;
            let id = output::text(&batch["id"]);
            if !wait {
                if json {
                    output::json(&batch);
                } else {
                    outln!("{id}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            if !json {
                outln!("{id}");
            }
            let batch = follow(client, &id, json).await?;
            if json {
                output::json(&batch);
            } else {
                outln!("{}", summary(&batch));
            }
            Ok(if batch["status"] == "success" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            })
        }
        BatchCmd::Ls {
            status,
            limit,
            page,
        } => {
            let mut path = format!("/batches?limit={limit}&page={page}");
            if let Some(s) = status {
                path.push_str(&format!("&status={}", enc(&s)));
            }
            let page = client.get(&path).await?;
            if json {
                output::json(&page);
            } else {
                print_table(&page);
            }
            Ok(ExitCode::SUCCESS)
        }
        BatchCmd::Show { id } => {
            let batch = client.get(&format!("/batches/{}", enc(&id))).await?;
            let tasks = client
                .get(&format!("/batches/{}/tasks?limit=100", enc(&id)))
                .await?;
            if json {
                output::json(&serde_json::json!({"batch": batch, "tasks": tasks}));
            } else {
                outln!("{}\n", describe(&batch));
                print_task_table(&tasks);
            }
            Ok(ExitCode::SUCCESS)
        }
        BatchCmd::Cancel { ids } => control(client, json, "cancel", ids).await,
        BatchCmd::Pause { ids } => control(client, json, "pause", ids).await,
        BatchCmd::Resume { ids } => control(client, json, "resume", ids).await,
        BatchCmd::Restart { ids } => control(client, json, "restart", ids).await,
    }
}

fn counts(b: &Value) -> String {
    let c = &b["counts"];
    [
        "pending",
        "running",
        "paused",
        "success",
        "failed",
        "cancelled",
    ]
    .iter()
    .filter(|k| c[**k].as_i64().unwrap_or(0) > 0)
    .map(|k| format!("{} {k}", c[*k]))
    .collect::<Vec<_>>()
    .join(", ")
}

fn summary(b: &Value) -> String {
    format!(
        "{} {} ({})",
        output::text(&b["id"]),
        output::text(&b["status"]),
        counts(b)
    )
}

fn print_table(page: &Value) {
    let items = page["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        outln!("no batches");
        return;
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|b| {
            vec![
                output::text(&b["id"]),
                output::cell(&b["name"]),
                output::text(&b["status"]),
                output::text(&b["mode"]),
                format!(
                    "{}/{}",
                    b["counts"]["success"].as_i64().unwrap_or(0),
                    output::text(&b["task_count"])
                ),
                output::percent(&b["progress"]),
                output::time(&b["created_at"]),
            ]
        })
        .collect();
    outln!(
        "{}",
        output::table(
            &["ID", "NAME", "STATUS", "MODE", "DONE", "PROGRESS", "CREATED"],
            &rows
        )
    );
    let total = page["total"].as_u64().unwrap_or(0);
    if total > items.len() as u64 {
        outln!("({} of {total}; see --page and --limit)", items.len());
    }
}

fn describe(b: &Value) -> String {
    output::fields(&[
        ("id", output::text(&b["id"])),
        ("name", output::text(&b["name"])),
        ("status", output::text(&b["status"])),
        ("mode", output::text(&b["mode"])),
        ("on failure", output::text(&b["on_failure"])),
        ("priority", output::text(&b["priority"])),
        ("progress", output::percent(&b["progress"])),
        ("eta", output::secs(&b["eta_secs"])),
        (
            "tasks",
            format!("{} ({})", output::text(&b["task_count"]), counts(b)),
        ),
        ("created by", output::text(&b["created_by"])),
        ("created", output::time(&b["created_at"])),
        ("finished", output::time(&b["finished_at"])),
    ])
}

/// Follows a batch until it ends, with a progress bar (not with `--json`).
async fn follow(client: &Client, id: &str, json: bool) -> Result<Value, CliError> {
    let bar = output::progress_bar(json);
    let mut version = 0i64;
    loop {
        let b = client
            .get(&format!(
                "/batches/{}/wait?after_version={version}&timeout_secs={POLL_SECS}",
                enc(id)
            ))
            .await?;
        version = b["version"].as_i64().unwrap_or(version);
        bar.set_position(b["progress"].as_f64().unwrap_or(0.0).clamp(0.0, 100.0) as u64);
        bar.set_message(format!("{} · {}", output::text(&b["status"]), counts(&b)));
        if matches!(
            b["status"].as_str(),
            Some("success" | "failed" | "cancelled")
        ) {
            bar.finish_and_clear();
            return Ok(b);
        }
    }
}

async fn control(
    client: &Client,
    json: bool,
    action: &str,
    ids: Vec<String>,
) -> Result<ExitCode, CliError> {
    let mut failed = false;
    for id in ids {
        match client
            .post(&format!("/batches/{}/{action}", enc(&id)), None)
            .await
        {
            Ok(b) if json => output::json(&b),
            Ok(b) => outln!("{}", summary(&b)),
            Err(e) => {
                eprintln!("error: {id}: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
