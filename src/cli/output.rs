//! How the client prints: aligned tables and `key: value` blocks for people, pretty JSON for
//! scripts, and the progress bar that follows running work.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

/// Widest a free-text cell gets in a table.
const MAX_CELL: usize = 40;

/// Prints a value as pretty JSON.
pub fn json(v: &Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// A table with a header row; columns are as wide as their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = vec![line(headers.to_vec())];
    for row in rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

/// `key: value` lines, aligned, skipping empty values.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let shown: Vec<_> = pairs.iter().filter(|(_, v)| !v.is_empty()).collect();
    let width = shown.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    shown
        .into_iter()
        .map(|(k, v)| format!("{k:<width$}  {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A field as text: strings as they are, null as empty, anything else as compact JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Free text cut to fit a table cell.
pub fn cell(v: &Value) -> String {
    let t = text(v);
    if t.chars().count() > MAX_CELL {
        let cut: String = t.chars().take(MAX_CELL - 1).collect();
        format!("{cut}…")
    } else {
        t
    }
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM:SS` in local time (empty when absent).
pub fn time(v: &Value) -> String {
    v.as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

/// A percentage such as `42%`.
pub fn percent(v: &Value) -> String {
    v.as_f64()
        .map(|p| format!("{}%", p.floor() as i64))
        .unwrap_or_default()
}

/// A duration in seconds as `1h02m`, `3m05s` or `12s`.
pub fn secs(v: &Value) -> String {
    let Some(s) = v.as_f64().filter(|s| s.is_finite() && *s >= 0.0) else {
        return String::new();
    };
    let s = s.round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// A bar from 0 to 100 on standard error; hidden when that is not a terminal.
pub fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(100);
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{bar:30}] {pos:>3}% {wide_msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Prints a line above the bar, or plainly when the bar is hidden.
pub fn line(bar: &ProgressBar, text: &str) {
    if bar.is_hidden() {
        outln!("{text}");
    } else {
        bar.println(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["ID", "STATUS", "NAME"],
            &[
                vec!["1".into(), "running".into(), "a".into()],
                vec!["22".into(), "ok".into(), "bb".into()],
            ],
        );
        assert_eq!(t, "ID  STATUS   NAME\n1   running  a\n22  ok       bb");
    }

    #[test]
    fn values_print_for_people() {
        assert_eq!(percent(&json!(42.9)), "42%");
        assert_eq!(secs(&json!(3725.0)), "1h02m");
        assert_eq!(secs(&json!(65)), "1m05s");
        assert_eq!(cell(&json!("x".repeat(50))).chars().count(), MAX_CELL);
        assert_eq!(text(&json!({"a": 1})), r#"{"a":1}"#);
        assert_eq!(
            fields(&[("id", "1".into()), ("error", String::new())]),
            "id  1"
        );
    }
}
