//! PostgreSQL backups with `pg_dump` (custom format, uncompressed by pg_dump itself: the
//! `compression` option gzips it afterwards). Progress is by table: a schema-only dump listed
//! by `pg_restore --list` gives the tables first, then pg_dump's `--verbose` lines
//! ("dumping contents of table …") say which table it is on. Pause is SIGSTOP of pg_dump (it
//! keeps its connection and snapshot), cancel stops it. Passwords reach pg_dump only through
//! its environment (`PGPASSWORD`), never its command line; the server's own `PGPASSWORD` is
//! not passed on.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::Path;

use serde_json::{json, Map, Value};

use super::artifact::describe_tool_failure;
use super::command::{exit_message, run_process, Ended, Output};
use super::db_backup::Spec;
use super::db_backup_run::{scaled, Temps};
use super::stepper::Halt;
use super::JobContext;
use crate::domain::LogLevel;

/// How long pg_dump may take to connect unless the server's environment says otherwise.
const CONNECT_TIMEOUT_SECS: &str = "10";
/// The verbose line pg_dump writes as it starts on a table's rows.
const TABLE_LINE: &str = "dumping contents of table ";

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A connection URL without its password, and the password (from the user info or a
/// `password=` parameter).
pub(crate) fn split_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let mut password = None;
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, pw)) => {
                password = Some(percent_decode(pw));
                format!("{user}@{host}")
            }
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|kv| match kv.strip_prefix("password=") {
                    Some(v) => {
                        password = Some(percent_decode(v));
                        false
                    }
                    None => true,
                })
                .collect();
            if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_string(),
    };
    (format!("{scheme}://{authority}{tail}"), password)
}

/// pg_dump's connection arguments and environment.
struct Conn {
    args: Vec<OsString>,
    env: Vec<(String, String)>,
}

fn conn_of(spec: &Spec) -> Result<Conn, String> {
    let pg = &spec.pg;
    let secret = |name: &str, field: &str| {
        std::env::var(name)
            .map_err(|_| format!("{field}: the server has no environment variable {name}"))
    };
    let mut args = vec!["--no-password".to_string()];
    let mut env = Vec::new();
    if let Some(name) = &pg.url_env {
        let (url, pw) = split_password(&secret(name, "connectionUrlEnv")?);
        args.push(format!("--dbname={url}"));
        env.extend(pw.map(|p| ("PGPASSWORD".to_string(), p)));
    } else if let Some(db) = &pg.database {
        args.push(format!("--dbname={db}"));
    }
    if let Some(h) = &pg.host {
        args.push(format!("--host={h}"));
    }
    if let Some(p) = pg.port {
        args.push(format!("--port={p}"));
    }
    if let Some(u) = &pg.user {
        args.push(format!("--username={u}"));
    }
    if let Some(name) = &pg.password_env {
        env.push(("PGPASSWORD".to_string(), secret(name, "passwordEnv")?));
    }
    if let Some(schema) = &pg.schema {
        args.push(format!("--schema={schema}"));
    }
    Ok(Conn {
        args: args.into_iter().map(OsString::from).collect(),
        env,
    })
}

/// Runs a PostgreSQL client tool under the job's control; stdout and stderr lines go to
/// `on_line` (with `true` for stderr). Its pid is checkpointed so the successor of a crashed
/// server can stop it.
async fn run_tool(
    ctx: &mut JobContext,
    program: &str,
    args: Vec<OsString>,
    env: &[(String, String)],
    mut on_line: impl FnMut(&JobContext, bool, &str),
) -> Result<(), Halt> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_remove("PGPASSWORD")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if std::env::var_os("PGCONNECT_TIMEOUT").is_none() {
        cmd.env("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_SECS);
    }
    let mut tail: VecDeque<String> = VecDeque::new();
    let ended = run_process(cmd, program, ctx, |ctx, out| match out {
        Output::Spawned(pid) => ctx.checkpoint(json!({"pid": pid})),
        Output::Out(l) => on_line(ctx, false, &l),
        Output::Err(l) => {
            on_line(ctx, true, &l);
            tail.push_back(l.trim().to_string());
            if tail.len() > 3 {
                tail.pop_front();
            }
        }
    })
    .await;
    match ended {
        Ended::Exited(s) if s.success() => Ok(()),
        Ended::Exited(s) => Err(Halt::Failed(describe_tool_failure(
            program,
            &exit_message(s),
            &Vec::from(tail).join(" "),
        ))),
        Ended::Cancelled => Err(Halt::Cancelled),
        Ended::Failed(e) => Err(Halt::Failed(e)),
    }
}

/// One entry of a `pg_restore --list` table of contents: its kind and `schema.name`.
pub(crate) fn toc_entry(line: &str) -> Option<(&'static str, String)> {
    if line.starts_with(';') {
        return None;
    }
    let t: Vec<&str> = line.split_whitespace().collect();
    match t.get(3..) {
        Some(["TABLE", "DATA", schema, name, ..]) => {
            Some(("TABLE DATA", format!("{schema}.{name}")))
        }
        Some(["TABLE", schema, name, ..]) => Some(("TABLE", format!("{schema}.{name}"))),
        Some([_, ..]) => Some(("OTHER", String::new())),
        _ => None,
    }
}

/// The table of contents of an archive.
async fn toc(ctx: &mut JobContext, archive: &Path) -> Result<Vec<(&'static str, String)>, Halt> {
    let mut entries = Vec::new();
    let args = vec![OsString::from("--list"), archive.as_os_str().to_owned()];
    run_tool(ctx, "pg_restore", args, &[], |_, is_err, line| {
        if !is_err {
            entries.extend(toc_entry(line));
        }
    })
    .await?;
    Ok(entries)
}

/// Dumps the database into `temps.raw` (0–80 % of the job).
pub(crate) async fn dump(
    ctx: &mut JobContext,
    spec: &Spec,
    temps: &Temps,
) -> Result<Map<String, Value>, Halt> {
    let conn = conn_of(spec).map_err(Halt::Failed)?;
    let file_arg = |p: &Path| {
        let mut a = OsString::from("--file=");
        a.push(p);
        a
    };
    // The tables, from a schema-only dump.
    let mut args = conn.args.clone();
    args.extend(["--schema-only", "--format=custom", "--compress=0"].map(OsString::from));
    args.push(file_arg(&temps.listing));
    run_tool(ctx, "pg_dump", args, &conn.env, |_, _, _| {}).await?;
    let tables = toc(ctx, &temps.listing)
        .await?
        .into_iter()
        .filter(|(k, _)| *k == "TABLE")
        .count() as u64;
    ctx.progress(scaled(0.0, 80.0, 1, 16));
    ctx.log(LogLevel::Info, format!("{tables} tables to dump"));
    // The dump itself.
    let mut args = conn.args;
    args.extend(["--format=custom", "--compress=0", "--verbose"].map(OsString::from));
    args.push(file_arg(&temps.raw));
    let mut seen: Vec<String> = Vec::new();
    run_tool(ctx, "pg_dump", args, &conn.env, |ctx, is_err, line| {
        let Some(table) = line
            .split_once(TABLE_LINE)
            .map(|(_, t)| t.trim_matches('"').to_string())
        else {
            if is_err && line.contains("error") {
                ctx.log(LogLevel::Error, line);
            }
            return;
        };
        seen.push(table.clone());
        let k = seen.len() as u64;
        let total = tables.max(k);
        ctx.report(super::Report::Progress {
            progress: Some(scaled(5.0, 80.0, k - 1, total)),
            stage: Some("dumping".into()),
            message: Some(format!("table {k} of {total}: {table}")),
            checkpoint: None,
        });
        ctx.log(
            LogLevel::Info,
            format!("dumping table {table} ({k} of {total})"),
        );
    })
    .await?;
    let mut facts = Map::new();
    facts.insert("format".into(), json!("custom"));
    facts.insert("tables".into(), json!(seen.len()));
    facts.insert("table_names".into(), json!(seen));
    Ok(facts)
}

/// `pg_restore --list` of a finished archive: it must read, and its entries are counted.
pub(crate) async fn restore_list(
    ctx: &mut JobContext,
    archive: &Path,
) -> Result<Map<String, Value>, Halt> {
    let entries = toc(ctx, archive).await.map_err(|h| match h {
        Halt::Failed(e) => Halt::Failed(format!("verification failed: {e}")),
        other => other,
    })?;
    let data: Vec<&String> = entries
        .iter()
        .filter(|(k, _)| *k == "TABLE DATA")
        .map(|(_, n)| n)
        .collect();
    let mut facts = Map::new();
    facts.insert("archive_entries".into(), json!(entries.len()));
    facts.insert("archive_tables".into(), json!(data));
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_leave_urls_for_the_environment() {
        assert_eq!(
            split_password("postgresql://app:p%40ss@db:5432/prod?sslmode=require"),
            (
                "postgresql://app@db:5432/prod?sslmode=require".to_string(),
                Some("p@ss".to_string())
            )
        );
        assert_eq!(
            split_password("postgres://db/prod?password=x&sslmode=disable"),
            (
                "postgres://db/prod?sslmode=disable".to_string(),
                Some("x".to_string())
            )
        );
        assert_eq!(split_password("postgres://db/prod").1, None);
    }

    #[test]
    fn toc_lines_name_tables_and_their_data() {
        assert_eq!(
            toc_entry("1400; 1259 26816 TABLE bk a postgres"),
            Some(("TABLE", "bk.a".into()))
        );
        assert_eq!(
            toc_entry("6424; 0 26816 TABLE DATA bk a postgres"),
            Some(("TABLE DATA", "bk.a".into()))
        );
        assert_eq!(toc_entry(";     Format: CUSTOM"), None);
        assert_eq!(
            toc_entry("85; 2615 26815 SCHEMA - bk postgres").map(|e| e.0),
            Some("OTHER")
        );
    }
}
