//! `steward task submit | ls | show | logs | pause | resume | cancel | restart`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::client::{CliError, Client};
use super::follow::{follow, print_logs};
use super::output;

#[derive(Subcommand)]
pub enum TaskCmd {
    /// Submit a task; prints its id (with --wait, follows it to the end).
    Submit(SubmitArgs),
    /// List tasks, newest first.
    Ls(ListArgs),
    /// Show one task (with --follow, until it ends).
    Show {
        id: String,
        /// Follow the task with a progress bar until it ends.
        #[arg(long, short)]
        follow: bool,
    },
    /// Print a task's log (with --follow, as it is written, until the task ends).
    Logs {
        id: String,
        #[arg(long, short)]
        follow: bool,
        /// Only lines at this level or above: DEBUG, INFO, WARNING, ERROR.
        #[arg(long)]
        level: Option<String>,
    },
    /// Pause running tasks.
    Pause {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Resume paused tasks.
    Resume {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Cancel tasks.
    Cancel {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Restart failed or cancelled tasks (same id).
    Restart {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

#[derive(Args)]
pub struct SubmitArgs {
    /// The task type (see GET /api/v1/task-types).
    #[arg(long = "type", short = 't')]
    task_type: String,
    /// The task's config: JSON, @file.json, or @- for standard input.
    #[arg(long, short)]
    config: Option<String>,
    #[arg(long, short)]
    name: Option<String>,
    /// An integer (higher runs first) or low, normal, high, urgent.
    #[arg(long, short)]
    priority: Option<String>,
    /// A tag (repeat for more).
    #[arg(long = "tag")]
    tags: Vec<String>,
    #[arg(long)]
    max_retries: Option<u32>,
    #[arg(long)]
    timeout_secs: Option<f64>,
    /// Tasks with the same mutex never run at the same time.
    #[arg(long)]
    mutex: Option<String>,
    /// Wait for the task to end: exit 0 on success, 3 when it failed or was cancelled.
    #[arg(long, short)]
    wait: bool,
}

#[derive(Args)]
pub struct ListArgs {
    /// Status filter, a comma list (pending,running,…).
    #[arg(long, short)]
    status: Option<String>,
    #[arg(long = "type", short = 't')]
    task_type: Option<String>,
    #[arg(long)]
    tag: Option<String>,
    #[arg(long)]
    batch: Option<String>,
    /// Text search in names.
    #[arg(long, short)]
    query: Option<String>,
    /// created_at, priority, updated_at, … (a leading - sorts descending).
    #[arg(long, default_value = "-created_at")]
    sort: String,
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[arg(long, default_value_t = 1)]
    page: u32,
}

pub async fn run(client: &Client, json: bool, cmd: TaskCmd) -> Result<ExitCode, CliError> {
    match cmd {
        TaskCmd::Submit(args) => submit(client, json, args).await,
        TaskCmd::Ls(args) => list(client, json, args).await,
        TaskCmd::Show { id, follow: false } => {
            let task = client.get(&format!("/tasks/{}", enc(&id))).await?;
            if json {
                output::json(&task);
            } else {
                outln!("{}", describe(&task));
            }
            Ok(ExitCode::SUCCESS)
        }
        TaskCmd::Show { id, follow: true } => {
            let task = follow(client, &id, json, None).await?;
            finish(&task, json)
        }
        TaskCmd::Logs {
            id,
            follow: f,
            level,
        } => {
            let level = level.unwrap_or_default();
            if f {
                let task = follow(client, &id, json, Some(&level)).await?;
                if !json {
                    eprintln!("{}", summary(&task));
                }
                Ok(ExitCode::SUCCESS)
            } else {
                let mut after = 0;
                print_logs(client, &id, &level, &mut after, json, None).await?;
                Ok(ExitCode::SUCCESS)
            }
        }
        TaskCmd::Pause { ids } => control(client, json, "pause", ids).await,
        TaskCmd::Resume { ids } => control(client, json, "resume", ids).await,
        TaskCmd::Cancel { ids } => control(client, json, "cancel", ids).await,
        TaskCmd::Restart { ids } => control(client, json, "restart", ids).await,
    }
}

/// A path segment or query value, percent-encoded.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn submit(client: &Client, json: bool, a: SubmitArgs) -> Result<ExitCode, CliError> {
    let mut body = Map::new();
    body.insert("type".into(), json!(a.task_type));
    if let Some(c) = &a.config {
        body.insert("config".into(), super::json_arg("--config", c)?);
    }
    if let Some(n) = a.name {
        body.insert("name".into(), json!(n));
    }
    if let Some(p) = a.priority {
        let value = p.parse::<i64>().map(Value::from).unwrap_or(json!(p));
        body.insert("priority".into(), value);
    }
    if !a.tags.is_empty() {
        body.insert("tags".into(), json!(a.tags));
    }
    if let Some(r) = a.max_retries {
        body.insert("max_retries".into(), json!(r));
    }
    if let Some(t) = a.timeout_secs {
        body.insert("timeout_secs".into(), json!(t));
    }
    if let Some(m) = a.mutex {
        body.insert("mutex".into(), json!(m));
    }
    let task = client.post("/tasks", Some(&Value::Object(body))).await?;
    let id = output::text(&task["id"]);
    if !a.wait {
        if json {
            output::json(&task);
        } else {
            outln!("{id}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !json {
        outln!("{id}");
    }
    let task = follow(client, &id, json, None).await?;
    finish(&task, json)
}

/// Prints the end of a followed task; exit 0 on success, 3 otherwise.
fn finish(task: &Value, json: bool) -> Result<ExitCode, CliError> {
    if json {
        output::json(task);
    } else {
        outln!("{}", summary(task));
    }
    Ok(if task["status"] == "success" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// One line on how a task stands: `<id> failed: <error>`.
pub fn summary(task: &Value) -> String {
    let id = output::text(&task["id"]);
    let status = output::text(&task["status"]);
    match task["error"].as_str() {
        Some(e) if status != "success" => format!("{id} {status}: {e}"),
        _ => format!("{id} {status}"),
    }
}

async fn list(client: &Client, json: bool, a: ListArgs) -> Result<ExitCode, CliError> {
    let mut q = format!(
        "/tasks?limit={}&page={}&sort={}",
        a.limit,
        a.page,
        enc(&a.sort)
    );
    for (key, value) in [
        ("status", a.status),
        ("type", a.task_type),
        ("tag", a.tag),
        ("batch_id", a.batch),
        ("q", a.query),
    ] {
        if let Some(v) = value {
            q.push_str(&format!("&{key}={}", enc(&v)));
        }
    }
    let page = client.get(&q).await?;
    if json {
        output::json(&page);
        return Ok(ExitCode::SUCCESS);
    }
    print_task_table(&page);
    Ok(ExitCode::SUCCESS)
}

/// A page of tasks as a table, with a note when there are more.
pub fn print_task_table(page: &Value) {
    let items = page["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        outln!("no tasks");
        return;
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|t| {
            vec![
                output::text(&t["id"]),
                output::cell(&t["name"]),
                output::text(&t["type"]),
                output::text(&t["status"]),
                output::text(&t["priority"]),
                output::percent(&t["progress"]),
                output::time(&t["created_at"]),
            ]
        })
        .collect();
    outln!(
        "{}",
        output::table(
            &["ID", "NAME", "TYPE", "STATUS", "PRI", "PROGRESS", "CREATED"],
            &rows
        )
    );
    let total = page["total"].as_u64().unwrap_or(0);
    if total > items.len() as u64 {
        outln!("({} of {total}; see --page and --limit)", items.len());
    }
}

/// A task as `key: value` lines.
fn describe(t: &Value) -> String {
    let waiting = match (t["waiting_on"].as_str(), t["waiting_detail"].as_str()) {
        (Some(on), Some(detail)) => format!("{on}: {detail}"),
        (Some(on), None) => on.to_string(),
        _ => String::new(),
    };
    let attempt = format!(
        "{} of {}",
        output::text(&t["attempt"]),
        t["max_retries"].as_i64().map(|r| r + 1).unwrap_or(1)
    );
    output::fields(&[
        ("id", output::text(&t["id"])),
        ("name", output::text(&t["name"])),
        ("type", output::text(&t["type"])),
        ("status", output::text(&t["status"])),
        ("waiting on", waiting),
        ("priority", output::text(&t["priority"])),
        ("progress", output::percent(&t["progress"])),
        ("stage", output::text(&t["stage"])),
        ("message", output::text(&t["message"])),
        ("eta", output::secs(&t["eta_secs"])),
        ("attempt", attempt),
        ("error", output::text(&t["error"])),
        ("result", output::text(&t["result"])),
        ("config", output::text(&t["config"])),
        (
            "tags",
            t["tags"]
                .as_array()
                .map(|a| a.iter().map(output::text).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
        ),
        ("batch", output::text(&t["batch_id"])),
        ("schedule", output::text(&t["schedule_id"])),
        ("unit", output::text(&t["unit_id"])),
        ("created by", output::text(&t["created_by"])),
        ("created", output::time(&t["created_at"])),
        ("started", output::time(&t["started_at"])),
        ("finished", output::time(&t["finished_at"])),
        ("running", output::secs(&t["running_secs"])),
    ])
}

/// `pause`, `resume`, `cancel` or `restart` each id; exit 1 if any was refused.
async fn control(
    client: &Client,
    json: bool,
    action: &str,
    ids: Vec<String>,
) -> Result<ExitCode, CliError> {
    let mut failed = false;
    for id in ids {
        match client
            .post(&format!("/tasks/{}/{action}", enc(&id)), None)
            .await
        {
            Ok(task) if json => output::json(&task),
            Ok(task) => outln!("{}", summary(&task)),
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
