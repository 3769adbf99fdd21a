//! `steward schedule ls | show | pause | resume | trigger | import | export`.

use std::path::PathBuf;
use std::process::ExitCode;

use actix_web::http::Method;
use clap::{Subcommand, ValueEnum};
use serde_json::Value;

use super::client::{CliError, Client};
use super::output;
use super::task::enc;

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
        }
    }
}

#[derive(Subcommand)]
pub enum ScheduleCmd {
    /// List schedules.
    Ls {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long, default_value_t = 1)]
        page: u32,
    },
    /// Show a schedule (by id or name).
    Show { id: String },
    /// Stop a schedule from firing.
    Pause {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Let a paused schedule fire again.
    Resume {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Fire a schedule now.
    Trigger {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Import schedules from seed 003's YAML or JSON file (upserted by name).
    Import {
        file: PathBuf,
        /// Default: json for a .json file, yaml otherwise.
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Export every schedule as YAML (or JSON) to standard output or a file.
    Export {
        #[arg(long, value_enum, default_value = "yaml")]
        format: Format,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

pub async fn run(client: &Client, json: bool, cmd: ScheduleCmd) -> Result<ExitCode, CliError> {
    match cmd {
        ScheduleCmd::Ls { limit, page } => {
            let page = client
                .get(&format!("/schedules?limit={limit}&page={page}"))
                .await?;
            if json {
                output::json(&page);
            } else {
                print_table(&page);
            }
        }
        ScheduleCmd::Show { id } => {
            let s = client.get(&format!("/schedules/{}", enc(&id))).await?;
            if json {
                output::json(&s);
            } else {
                outln!("{}", describe(&s));
            }
        }
        ScheduleCmd::Pause { ids } => return control(client, json, "pause", ids).await,
        ScheduleCmd::Resume { ids } => return control(client, json, "resume", ids).await,
        ScheduleCmd::Trigger { ids } => return control(client, json, "trigger", ids).await,
        ScheduleCmd::Import { file, format } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| CliError::usage(format!("cannot read {}: {e}", file.display())))?;
            let format = format.unwrap_or(
                if file
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("json"))
                {
                    Format::Json
                } else {
                    Format::Yaml
                },
            );
            let content_type = match format {
                Format::Json => "application/json",
                Format::Yaml => "application/yaml",
            };
            let (bytes, _) = client
                .raw(
                    Method::POST,
                    &format!("/schedules/import?format={}", format.as_str()),
                    Some((content_type, text)),
                )
                .await?;
            let report: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if json {
                output::json(&report);
            } else {
                outln!("{}", import_report(&report));
            }
        }
        ScheduleCmd::Export { format, output } => {
            let (bytes, _) = client
                .raw(
                    Method::GET,
                    &format!("/schedules/export?format={}", format.as_str()),
                    None,
                )
                .await?;
            match output {
                Some(path) => {
                    std::fs::write(&path, &bytes).map_err(|e| {
                        CliError::request(format!("cannot write {}: {e}", path.display()))
                    })?;
                    eprintln!("wrote {}", path.display());
                }
                None => {
                    let text = String::from_utf8_lossy(&bytes);
                    out!("{text}");
                    if !text.ends_with('\n') {
                        outln!();
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `created: 2 (a, b); updated: 1 (c)` and any warnings, one per line.
fn import_report(r: &Value) -> String {
    let part = |key: &str| match &r[key] {
        Value::Array(names) => {
            let names: Vec<String> = names.iter().map(output::text).collect();
            if names.is_empty() {
                format!("{key}: 0")
            } else {
                format!("{key}: {} ({})", names.len(), names.join(", "))
            }
        }
        other => format!("{key}: {}", output::text(other)),
    };
    let mut out = format!("{}; {}", part("created"), part("updated"));
    for w in r["warnings"].as_array().into_iter().flatten() {
        out.push_str(&format!("\nwarning: {}", output::text(w)));
    }
    out
}

fn trigger(s: &Value) -> String {
    let t = &s["trigger"];
    match t["type"].as_str() {
        Some("cron") => format!(
            "cron '{}' {}",
            output::text(&t["cron"]),
            output::text(&t["timezone"])
        )
        .trim_end()
        .to_string(),
        Some("interval") => format!("every {}", output::secs(&t["interval_secs"])),
        Some("once") => format!("once at {}", output::time(&t["once_at"])),
        _ => output::text(t),
    }
}

fn print_table(page: &Value) {
    let items = page["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        outln!("no schedules");
        return;
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|s| {
            vec![
                output::text(&s["id"]),
                output::cell(&s["name"]),
                if s["enabled"] == Value::Bool(false) {
                    "paused".into()
                } else {
                    "enabled".into()
                },
                trigger(s),
                output::time(&s["next_run_at"]),
                output::time(&s["last_run_at"]),
                output::text(&s["last_status"]),
            ]
        })
        .collect();
    outln!(
        "{}",
        output::table(
            &[
                "ID",
                "NAME",
                "STATE",
                "TRIGGER",
                "NEXT RUN",
                "LAST RUN",
                "LAST STATUS"
            ],
            &rows
        )
    );
}

fn describe(s: &Value) -> String {
    let template = if s["batch"].is_object() {
        format!("batch {}", output::text(&s["batch"]))
    } else {
        format!("task {}", output::text(&s["task"]))
    };
    output::fields(&[
        ("id", output::text(&s["id"])),
        ("name", output::text(&s["name"])),
        ("description", output::text(&s["description"])),
        ("enabled", output::text(&s["enabled"])),
        ("trigger", trigger(s)),
        ("misfire", output::text(&s["misfire_policy"])),
        ("max instances", output::text(&s["max_instances"])),
        ("creates", template),
        ("next run", output::time(&s["next_run_at"])),
        ("last run", output::time(&s["last_run_at"])),
        ("last status", output::text(&s["last_status"])),
    ])
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
            .post(&format!("/schedules/{}/{action}", enc(&id)), None)
            .await
        {
            Ok(v) if json => output::json(&v),
            Ok(v) => outln!("{}", control_line(action, &id, &v)),
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

/// What a control call did, in words.
fn control_line(action: &str, id: &str, v: &Value) -> String {
    match action {
        "trigger" => {
            let made = v["task_id"]
                .as_str()
                .map(|t| format!("task {t}"))
                .or_else(|| v["batch_id"].as_str().map(|b| format!("batch {b}")));
            match made {
                Some(m) => format!("{id} triggered: {m}"),
                None => format!(
                    "{id} {}: {}",
                    output::text(&v["status"]),
                    output::text(&v["reason"])
                ),
            }
        }
        _ => {
            let state = if v["enabled"] == Value::Bool(false) {
                "paused"
            } else {
                "enabled"
            };
            format!("{} {state}", output::text(&v["name"]))
        }
    }
}
