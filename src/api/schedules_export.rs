//! Export of every schedule in seed 003's file shape (the reverse of `schedules_io`'s
//! import): task templates under `tasks:`, batch templates under `task_groups:`.

use serde_json::{json, Map, Value};

use super::schedules_io::{priority_from_seed, priority_to_seed, IMPORT_AND_CALL};
use super::schedules_spec::from_row;
use super::AppState;
use crate::domain::schedule::{format_local_time, Schedule, Template, Trigger};
use crate::error::ApiResult;
use crate::store::schedules as qs;

fn seed_schedule(trigger: &Trigger, enabled: bool, tz: Option<&str>) -> Option<Value> {
    let mut s = match trigger {
        Trigger::Cron { cron, timezone } => {
            let mut v = json!({"schedule_type": "cron", "cron_expression": cron});
            if timezone != "UTC" {
                v["timezone"] = json!(timezone);
            }
            v
        }
        Trigger::Interval { interval_secs, .. } => {
            let secs = if interval_secs.fract() == 0.0 {
                json!(*interval_secs as i64)
            } else {
                json!(interval_secs)
            };
            json!({"schedule_type": "interval", "interval_seconds": secs})
        }
        Trigger::Once { once_at } => {
            let mut v = json!({"schedule_type": "once", "start_time": format_local_time(*once_at, tz.unwrap_or("UTC"))});
            if let Some(tz) = tz.filter(|t| *t != "UTC") {
                v["timezone"] = json!(tz);
            }
            v
        }
        Trigger::Manual => return None,
    };
    s["enabled"] = json!(enabled);
    Some(s)
}

/// A task template back to a seed task's fields.
fn seed_task(t: &Value, meta: &Value, out: &mut Map<String, Value>) {
    let config = t.get("config").cloned().unwrap_or_else(|| json!({}));
    let ty = t.get("type").and_then(Value::as_str).unwrap_or("");
    if let Some(name) = t.get("name").filter(|n| !n.is_null()) {
        out.insert("task_name".into(), name.clone());
    }
    out.insert(
        "task_type".into(),
        meta.get("task_type")
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or_else(|| json!(ty)),
    );
    let args = config.get("args").and_then(Value::as_array);
    match (ty, args) {
        ("python", _) => {
            out.insert(
                "task_module".into(),
                config.get("module").cloned().unwrap_or(Value::Null),
            );
            out.insert(
                "task_function".into(),
                config.get("function").cloned().unwrap_or(Value::Null),
            );
            out.insert(
                "params".into(),
                config.get("params").cloned().unwrap_or_else(|| json!({})),
            );
        }
        ("command", Some(a)) if a.len() == 5 && a[1].as_str() == Some(IMPORT_AND_CALL) => {
            out.insert("task_module".into(), a[2].clone());
            out.insert("task_function".into(), a[3].clone());
            let params = a[4]
                .as_str()
                .and_then(|p| serde_json::from_str(p).ok())
                .unwrap_or_else(|| json!({}));
            out.insert("params".into(), params);
        }
        _ => {
            out.insert("params".into(), config);
        }
    }
    if out
        .get("params")
        .is_some_and(|p| p.as_object().is_some_and(Map::is_empty))
    {
        out.remove("params");
    }
    if let Some(p) = t.get("priority").and_then(Value::as_i64) {
        let seed = meta
            .get("priority")
            .and_then(Value::as_i64)
            .filter(|s| priority_from_seed(*s) == p);
        out.insert(
            "priority".into(),
            json!(seed.unwrap_or_else(|| priority_to_seed(p))),
        );
    }
    for (from, to) in [
        ("timeout_secs", "timeout"),
        ("max_retries", "retry_count"),
        ("retry_delay_secs", "retry_delay"),
    ] {
        if let Some(v) = t.get(from).filter(|v| !v.is_null()) {
            out.insert(to.into(), v.clone());
        }
    }
}

/// A schedule in seed 003's file shape: a `tasks:` entry or a `task_groups:` entry.
pub enum SeedEntry {
    Task(Value),
    Group(Value),
}

/// Every schedule in seed 003's shape: task templates under `tasks:`, batch templates under
/// `task_groups:`.
pub async fn export_doc(state: &AppState) -> ApiResult<Value> {
    let rows = state.shared.store.read(qs::all).await?;
    let (mut tasks, mut groups) = (Vec::new(), Vec::new());
    for r in rows {
        match seed_entry(&from_row(state, r)?) {
            SeedEntry::Task(t) => tasks.push(t),
            SeedEntry::Group(g) => groups.push(g),
        }
    }
    Ok(json!({"tasks": tasks, "task_groups": groups}))
}

/// One schedule as seed 003 writes it.
pub fn seed_entry(s: &Schedule) -> SeedEntry {
    let meta = s.spec.get("meta").cloned().unwrap_or_else(|| json!({}));
    let tz = s.spec.pointer("/trigger/timezone").and_then(Value::as_str);
    let mut o = Map::new();
    match &s.template {
        Template::Task(t) => {
            o.insert("task_id".into(), json!(s.name));
            seed_task(t, &meta, &mut o);
            if let Some(d) = s.spec.get("description").filter(|d| !d.is_null()) {
                o.insert("description".into(), d.clone());
            }
            if let Some(sched) = seed_schedule(&s.trigger, s.enabled, tz) {
                o.insert("schedule".into(), sched);
            }
            if !s.tags.is_empty() {
                o.insert("tags".into(), json!(s.tags));
            }
            if !s.depends_on.is_empty() {
                o.insert("dependencies".into(), json!(s.depends_on));
            }
            SeedEntry::Task(Value::Object(o))
        }
        Template::Batch(b) => {
            o.insert("group_id".into(), json!(s.name));
            o.insert(
                "group_name".into(),
                b.get("name").cloned().unwrap_or_else(|| json!(s.name)),
            );
            let members: Vec<Value> = b
                .get("tasks")
                .and_then(Value::as_array)
                .map(|l| l.iter().filter_map(|t| t.get("key").cloned()).collect())
                .unwrap_or_default();
            o.insert("tasks".into(), json!(members));
            o.insert(
                "execution_mode".into(),
                b.get("mode").cloned().unwrap_or_else(|| json!("parallel")),
            );
            let enabled = match s.trigger {
                Trigger::Manual => meta
                    .get("group_enabled")
                    .and_then(Value::as_bool)
                    .unwrap_or(s.enabled),
                _ => s.enabled,
            };
            o.insert("enabled".into(), json!(enabled));
            if let Some(sched) = seed_schedule(&s.trigger, s.enabled, tz) {
                o.insert("schedule".into(), sched);
            }
            SeedEntry::Group(Value::Object(o))
        }
    }
}
