//! Import and export of schedules in seed 003's (MyStocks) file shape: `tasks:` entries with
//! their `schedule`, and `task_groups:` with `execution_mode`, as YAML or JSON. Importing
//! upserts by name (re-loading a file updates, never duplicates); `steward serve --schedules
//! FILE` loads the same file at start-up.
//!
//! Seed 003's priorities (lower is more urgent) map onto steward's (higher runs first):
//! 100 critical → 3, 200 high → 2, 500 normal → 1, 800 low → 0, 900 batch → -1; values in
//! between take the next bucket up (150 → 2). Export maps back 3→100, 2→200, 1→500, 0→800,
//! -1→900.
//!
//! `task_module` / `task_function` make a `python` task when that type is registered; until
//! then a `command` task running `python3 -c <IMPORT_AND_CALL> module function params_json`
//! in the data root, which calls `module.function(params)` and reports its return value as
//! the task's result. Export reads either form back.

use serde_json::{json, Map, Value};

use super::schedules::{insert, load, missing_dependency, update};
pub use super::schedules_export::export_doc;
use super::schedules_spec::parse_schedule;
use super::AppState;
use crate::domain::now_ms;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// Calls `module.function(params)` and prints the result as a steward progress line.
pub const IMPORT_AND_CALL: &str = "import importlib,json,sys; m=importlib.import_module(sys.argv[1]); print('@steward '+json.dumps({'result': getattr(m, sys.argv[2])(json.loads(sys.argv[3]))}))";

/// Seed 003 priority (100–900, lower first) → steward priority (higher first).
pub fn priority_from_seed(p: i64) -> i64 {
    match p {
        i64::MIN..=100 => 3,
        101..=200 => 2,
        201..=500 => 1,
        501..=800 => 0,
        _ => -1,
    }
}

/// Steward priority → seed 003 priority.
pub fn priority_to_seed(p: i64) -> i64 {
    match p {
        3.. => 100,
        2 => 200,
        1 => 500,
        0 => 800,
        _ => 900,
    }
}

fn at(prefix: &str, mut e: ApiError) -> ApiError {
    e.field = Some(match e.field {
        Some(f) => format!("{prefix}.{f}"),
        None => prefix.to_string(),
    });
    e.message = format!("{prefix}: {}", e.message);
    e
}

fn str_of<'a>(o: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    o.get(k).and_then(Value::as_str)
}

/// A seed `schedule:` object → (trigger, enabled).
fn trigger_of(sched: Option<&Value>, default_tz: &str) -> Result<(Value, bool), String> {
    let Some(Value::Object(s)) = sched else {
        return Ok((json!({"type": "manual"}), false));
    };
    let tz = str_of(s, "timezone").unwrap_or(default_tz);
    let enabled = s.get("enabled").and_then(Value::as_bool).unwrap_or(true);
    let t = match str_of(s, "schedule_type").unwrap_or("cron") {
        "cron" => json!({"type": "cron", "cron": s.get("cron_expression"), "timezone": tz}),
        "interval" => json!({"type": "interval", "interval_secs": s.get("interval_seconds")}),
        "once" | "date" => json!({"type": "once", "once_at": s.get("start_time"), "timezone": tz}),
        other => {
            return Err(format!(
                "schedule_type '{other}' is not cron, interval or once"
            ))
        }
    };
    Ok((t, enabled))
}

/// `max_instances` and `misfire_policy`, which steward's export adds to an entry.
fn copy_limits(entry: &Map<String, Value>, body: &mut Value) {
    for key in ["max_instances", "misfire_policy"] {
        if let Some(v) = entry.get(key).filter(|v| !v.is_null()) {
            body[key] = v.clone();
        }
    }
}

/// A seed task entry → its task template.
fn task_template(state: &AppState, o: &Map<String, Value>) -> Result<Value, ApiError> {
    let params = o.get("params").cloned().unwrap_or_else(|| json!({}));
    let seed_type = str_of(o, "task_type").unwrap_or("manual");
    let (task_type, config) = match (str_of(o, "task_module"), str_of(o, "task_function")) {
        (Some(m), Some(f)) if state.shared.registry.get("python").is_some() => (
            "python".to_string(),
            json!({"module": m, "function": f, "params": params}),
        ),
        (Some(m), Some(f)) => (
            "command".to_string(),
            json!({"program": "python3", "args": ["-c", IMPORT_AND_CALL, m, f, params.to_string()]}),
        ),
        _ if state.shared.registry.get(seed_type).is_some() => (seed_type.to_string(), params),
        _ => {
            return Err(ApiError::field(
                "task_module",
                format!("is required: task_type '{seed_type}' is not a steward task type"),
            ))
        }
    };
    let mut t = Map::new();
    t.insert(
        "name".into(),
        json!(str_of(o, "task_name").or(str_of(o, "task_id"))),
    );
    t.insert("type".into(), json!(task_type));
    t.insert("config".into(), config);
    if let Some(p) = o.get("priority").and_then(Value::as_i64) {
        t.insert("priority".into(), json!(priority_from_seed(p)));
    }
    for (from, to) in [
        ("timeout", "timeout_secs"),
        ("retry_count", "max_retries"),
        ("retry_delay", "retry_delay_secs"),
        ("tags", "tags"),
    ] {
        if let Some(v) = o.get(from).filter(|v| !v.is_null()) {
            t.insert(to.into(), v.clone());
        }
    }
    Ok(Value::Object(t))
}

/// The parsed file as schedule bodies, and warnings for what was left out (a group's member
/// must be a task of the same file: its template is copied into the group's batch).
pub(crate) fn bodies(
    state: &AppState,
    doc: Value,
    tz: &str,
) -> ApiResult<(Vec<Value>, Vec<String>)> {
    let (tasks, groups) = match doc {
        Value::Array(list) => (list, Vec::new()),
        Value::Object(mut o) => {
            let list = |v: Option<Value>, key: &str| match v {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(l)) => Ok(l),
                Some(_) => Err(ApiError::field(key, "must be a list")),
            };
            (
                list(o.remove("tasks"), "tasks")?,
                list(o.remove("task_groups"), "task_groups")?,
            )
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::Validation,
                "the file must hold tasks: and/or task_groups:",
            ))
        }
    };
    let mut out = Vec::new();
    let mut templates: Map<String, Value> = Map::new();
    let mut warnings = Vec::new();
    for (i, entry) in tasks.into_iter().enumerate() {
        let prefix = format!("tasks[{i}]");
        let Value::Object(o) = entry else {
            return Err(ApiError::field(prefix, "must be an object"));
        };
        let name = str_of(&o, "task_id")
            .ok_or_else(|| ApiError::field(format!("{prefix}.task_id"), "is required"))?
            .to_string();
        let template = task_template(state, &o).map_err(|e| at(&prefix, e))?;
        let (trigger, enabled) = trigger_of(o.get("schedule"), tz)
            .map_err(|m| ApiError::field(format!("{prefix}.schedule"), m))?;
        // Without a `schedule:` the task runs by hand; an `enabled` of its own (steward's
        // export writes one) says whether it is listed as enabled.
        let enabled = match o.get("schedule") {
            None => o.get("enabled").and_then(Value::as_bool).unwrap_or(enabled),
            Some(_) => enabled,
        };
        templates.insert(name.clone(), template.clone());
        let mut body = json!({
            "name": name,
            "description": o.get("description"),
            "enabled": enabled,
            "trigger": trigger,
            "depends_on": o.get("dependencies").cloned().unwrap_or_else(|| json!([])),
            "tags": o.get("tags").cloned().unwrap_or_else(|| json!([])),
            "task": template,
            "meta": {"task_type": o.get("task_type"), "priority": o.get("priority")},
        });
        copy_limits(&o, &mut body);
        out.push(body);
    }
    for (i, entry) in groups.into_iter().enumerate() {
        let prefix = format!("task_groups[{i}]");
        let Value::Object(o) = entry else {
            return Err(ApiError::field(prefix, "must be an object"));
        };
        let name = str_of(&o, "group_id")
            .ok_or_else(|| ApiError::field(format!("{prefix}.group_id"), "is required"))?
            .to_string();
        let mut members = Vec::new();
        let ids = o
            .get("tasks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (j, id) in ids.iter().enumerate() {
            // steward's export writes a member no `tasks:` entry holds inline.
            if let Value::Object(inline) = id {
                let at_j = format!("{prefix}.tasks[{j}]");
                let key = str_of(inline, "task_id")
                    .ok_or_else(|| ApiError::field(format!("{at_j}.task_id"), "is required"))?;
                let mut t = task_template(state, inline).map_err(|e| at(&at_j, e))?;
                t["key"] = json!(key);
                if let Some(deps) = inline.get("dependencies") {
                    t["depends_on"] = deps.clone();
                }
                members.push(t);
                continue;
            }
            let Some(id) = id.as_str() else {
                return Err(ApiError::field(
                    format!("{prefix}.tasks[{j}]"),
                    "must be a task_id or a task entry",
                ));
            };
            match templates.get(id).cloned() {
                Some(mut t) => {
                    t["key"] = json!(id);
                    members.push(t);
                }
                None => warnings.push(format!(
                    "{prefix}.tasks[{j}]: '{id}' is not a task of this file; left out of the group"
                )),
            }
        }
        if members.is_empty() {
            return Err(ApiError::field(
                format!("{prefix}.tasks"),
                "names no task of this file",
            ));
        }
        let in_file = o.get("enabled").and_then(Value::as_bool).unwrap_or(true);
        let (trigger, enabled) = trigger_of(o.get("schedule"), tz)
            .map_err(|m| ApiError::field(format!("{prefix}.schedule"), m))?;
        let group_name = str_of(&o, "group_name").unwrap_or(&name).to_string();
        // A group without a `schedule:` runs by hand and is as enabled as the file says.
        let enabled = match o.get("schedule") {
            None => in_file,
            Some(_) => enabled && in_file,
        };
        let member_names: Vec<Value> = ids
            .iter()
            .map(|m| match m {
                Value::Object(inline) => inline.get("task_id").cloned().unwrap_or(Value::Null),
                other => other.clone(),
            })
            .collect();
        let mut body = json!({
            "name": name,
            "description": o.get("description").cloned().unwrap_or_else(|| json!(group_name)),
            "enabled": enabled,
            "trigger": trigger,
            "depends_on": o.get("dependencies").cloned().unwrap_or_else(|| json!([])),
            "tags": o.get("tags").cloned().unwrap_or_else(|| json!([])),
            "batch": {
                "name": group_name,
                "mode": str_of(&o, "execution_mode").unwrap_or("parallel"),
                "tasks": members,
            },
            "meta": {"group_enabled": in_file, "members": member_names},
        });
        copy_limits(&o, &mut body);
        out.push(body);
    }
    Ok((out, warnings))
}

/// Imports a seed 003 file's text: every entry validated first, then each upserted by name.
pub async fn import_text(
    state: &AppState,
    text: &str,
    is_json: bool,
    _by: &str,
) -> ApiResult<Value> {
    let doc: Value = if is_json {
        serde_json::from_str(text).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidJson,
                format!("the file is not valid JSON: {e}"),
            )
        })?
    } else {
        serde_yaml::from_str(text).map_err(|e| {
            ApiError::new(
                ErrorCode::Validation,
                format!("the file is not valid YAML: {e}"),
            )
        })?
    };
    let tz = match &doc {
        Value::Object(o) => str_of(o, "timezone").unwrap_or("UTC").to_string(),
        _ => "UTC".into(),
    };
    let (bodies, mut warnings) = bodies(state, doc, &tz)?;
    let now = now_ms();
    let mut parsed = Vec::with_capacity(bodies.len());
    for (i, body) in bodies.into_iter().enumerate() {
        let (s, _) =
            parse_schedule(state, body, now, true).map_err(|e| at(&format!("entry {i}"), e))?;
        parsed.push(s);
    }
    // A seed 003 file may name dependencies registered elsewhere: kept, and said.
    let names: Vec<String> = parsed.iter().map(|s| s.name.clone()).collect();
    for s in &parsed {
        if let Some(missing) = missing_dependency(state, s, &names).await? {
            warnings.push(format!(
                "{}: depends on '{missing}', which is not a schedule yet; it waits until one of that name runs successfully",
                s.name
            ));
        }
    }
    let (mut created, mut updated) = (Vec::new(), Vec::new());
    for s in parsed {
        let name = s.name.clone();
        match load(state, &name).await {
            Ok(old) => {
                update(state, &old, s).await?;
                updated.push(name);
            }
            Err(e) if e.code == ErrorCode::NotFound => {
                insert(state, s).await?;
                created.push(name);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(json!({"created": created, "updated": updated, "warnings": warnings}))
}

/// Reads a file for `steward serve --schedules FILE` (JSON when it ends in `.json`).
pub async fn import_file(state: &AppState, path: &std::path::Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    import_text(state, &text, is_json, "system")
        .await
        .map_err(|e| format!("{}: {}", path.display(), e.message))
}
