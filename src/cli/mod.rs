//! The command-line client (SPEC §10): `steward task …`, `steward batch …` and
//! `steward schedule …` talk to a running server over its HTTP API (`--server`, `--token`),
//! print tables for people and JSON with `--json`, and follow running work with a progress
//! bar. The client never starts a server: it runs an actix `System` only for `awc`.
//!
//! Exit codes: 0 done; 1 the server refused the request (its message is printed) or could not
//! be reached; 2 bad usage; 3 the work waited for (`--wait`) ended failed or cancelled.

/// `println!` for what the client prints: a reader that went away (`steward task ls --json |
/// head`) ends the program quietly, as Unix tools do, instead of a panic on a broken pipe.
macro_rules! outln {
    () => {
        $crate::cli::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` likewise.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!($($arg)*))
    };
}

/// Writes to standard output; a closed pipe ends the program with status 0.
pub(crate) fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

mod batch;
mod client;
mod follow;
mod output;
mod schedule;
mod task;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use client::{CliError, Client};

/// The first arguments that make `steward` a client rather than a server.
pub const CLIENT_COMMANDS: [&str; 3] = ["task", "batch", "schedule"];

/// A line for the server's `--help`.
pub const CLIENT_HELP: &str = "Client commands (against a running server; see `steward task --help`):\n  task      submit | ls | show | logs | pause | resume | cancel | restart\n  batch     submit | ls | show | cancel | pause | resume | restart\n  schedule  ls | show | pause | resume | trigger | import | export";

#[derive(Parser)]
#[command(name = "steward", version, about = "The steward command-line client")]
struct ClientCli {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    resource: Resource,
}

/// Where the server is and how to talk to it.
#[derive(Args, Clone)]
pub struct Connection {
    /// The server's address.
    #[arg(
        long,
        global = true,
        env = "STEWARD_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// A bearer token, when the server requires one.
    #[arg(long, global = true, env = "STEWARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
enum Resource {
    /// Tasks: submit, list, show, follow, control.
    #[command(subcommand)]
    Task(task::TaskCmd),
    /// Batches of tasks.
    #[command(subcommand)]
    Batch(batch::BatchCmd),
    /// Schedules that create tasks and batches.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCmd),
}

/// Whether `args` (program name first) name a client command, perhaps after the client's
/// own flags (`steward --json task ls`).
fn is_client(args: &[OsString]) -> bool {
    let mut rest = args.iter().skip(1).filter_map(|a| a.to_str());
    while let Some(arg) = rest.next() {
        match arg {
            "--json" => {}
            "--server" | "--token" => {
                rest.next();
            }
            a if a.starts_with("--server=") || a.starts_with("--token=") => {}
            a => return CLIENT_COMMANDS.contains(&a),
        }
    }
    false
}

/// Runs a client command when `args` (program name first) asks for one; `None` otherwise,
/// so the server's own parser takes over.
pub fn run_if_client(args: Vec<OsString>) -> Option<ExitCode> {
    if !is_client(&args) {
        return None;
    }
    let cli = match ClientCli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return Some(ExitCode::from(if e.use_stderr() { 2 } else { 0 }));
        }
    };
    Some(run(cli))
}

fn run(cli: ClientCli) -> ExitCode {
    let conn = cli.conn;
    let outcome = actix_rt::System::new().block_on(async move {
        let client = Client::new(&conn.server, conn.token.clone())?;
        match cli.resource {
            Resource::Task(cmd) => task::run(&client, conn.json, cmd).await,
            Resource::Batch(cmd) => batch::run(&client, conn.json, cmd).await,
            Resource::Schedule(cmd) => schedule::run(&client, conn.json, cmd).await,
        }
    });
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Reads a JSON argument: the text itself, `@file`, or `@-` for standard input.
pub fn json_arg(what: &str, raw: &str) -> Result<serde_json::Value, CliError> {
    let text = match raw.strip_prefix('@') {
        Some("-") => std::io::read_to_string(std::io::stdin())
            .map_err(|e| CliError::usage(format!("{what}: cannot read standard input: {e}")))?,
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| CliError::usage(format!("{what}: cannot read {path}: {e}")))?,
        None => raw.to_string(),
    };
    serde_json::from_str(&text)
        .map_err(|e| CliError::usage(format!("{what} is not valid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::is_client;

    fn args(s: &str) -> Vec<std::ffi::OsString> {
        s.split_whitespace().map(Into::into).collect()
    }

    #[test]
    fn client_commands_are_told_from_server_flags() {
        assert!(is_client(&args("steward task ls")));
        assert!(is_client(&args(
            "steward --json --server http://h:1 batch ls"
        )));
        assert!(is_client(&args("steward --token=t schedule export")));
        assert!(!is_client(&args("steward")));
        assert!(!is_client(&args("steward serve --bind 0.0.0.0:1")));
        assert!(!is_client(&args("steward --config task")));
        assert!(!is_client(&args("steward worker --server http://h:1")));
    }
}
