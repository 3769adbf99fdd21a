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
    let mut schedules = Vec::with_capacity(rows.len());
    for r in rows {
        schedules.push(from_row(state, r)?);
    }
    let task_entries: std::collections::HashSet<String> = schedules
        .iter()
        .filter(|s| matches!(s.template, Template::Task(_)))
        .map(|s| s.name.clone())
        .collect();
    let (mut tasks, mut groups) = (Vec::new(), Vec::new());
    for s in &schedules {
        match seed_entry(s, &|name| task_entries.contains(name)) {
            SeedEntry::Task(t) => tasks.push(t),
            SeedEntry::Group(g) => groups.push(g),
        }
    }
    Ok(json!({"tasks": tasks, "task_groups": groups}))
}

/// One schedule as seed 003 writes it. A batch template's member is written as seed 003 does,
/// by name, when `is_task_entry` says a `tasks:` entry of that name goes with it; otherwise
/// inline, as a task entry of its own (`task_id` its key, `dependencies` the keys it waits
/// for), which steward's import reads back. `max_instances` and `misfire_policy` ride along
/// (seed 003 has neither; its import ignores what it does not know).
pub fn seed_entry(s: &Schedule, is_task_entry: &dyn Fn(&str) -> bool) -> SeedEntry {
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
            if matches!(s.trigger, Trigger::Manual) {
                o.insert("enabled".into(), json!(s.enabled));
            }
            limits(s, &mut o);
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
                .map(|l| {
                    l.iter()
                        .enumerate()
                        .map(|(i, t)| seed_member(t, i, is_task_entry))
                        .collect()
                })
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
            if !s.depends_on.is_empty() {
                o.insert("dependencies".into(), json!(s.depends_on));
            }
            limits(s, &mut o);
            SeedEntry::Group(Value::Object(o))
        }
    }
}

/// `max_instances` and `misfire_policy` where they differ from the defaults.
fn limits(s: &Schedule, o: &mut Map<String, Value>) {
    if s.max_instances != 1 {
        o.insert("max_instances".into(), json!(s.max_instances));
    }
    // `run_once` is what a schedule gets when it names none.
    if s.misfire_policy != crate::domain::schedule::MisfirePolicy::RunOnce {
        o.insert("misfire_policy".into(), json!(s.misfire_policy.as_str()));
    }
}

/// One member (the `i`-th) of a batch template: its key, or the whole task inline (named
/// `task-<n>` when it has no key: seed 003 names every task, and no other member can refer
/// to a task without one).
fn seed_member(t: &Value, i: usize, is_task_entry: &dyn Fn(&str) -> bool) -> Value {
    let key = t
        .get("key")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty());
    if let Some(k) = key.filter(|k| is_task_entry(k)) {
        return json!(k);
    }
    let mut o = Map::new();
    let name = key.map_or_else(|| format!("task-{}", i + 1), str::to_string);
    o.insert("task_id".into(), json!(name));
    seed_task(t, &json!({}), &mut o);
    if let Some(deps) = t
        .get("depends_on")
        .filter(|d| d.as_array().is_some_and(|a| !a.is_empty()))
    {
        o.insert("dependencies".into(), deps.clone());
    }
    Value::Object(o)
}
