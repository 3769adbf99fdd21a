//! A schedule definition from a request body: aliases accepted, everything checked (the
//! template exactly as POST /tasks or POST /batches would), and the normalised form stored
//! as `spec` (PUT replaces it, PATCH merges into it). Also the wire view of a schedule.

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::batches::prepare_batch;
use super::fields::Body;
use super::tasks_control::parse_new_task;
use super::AppState;
use crate::domain::schedule::{
    parse_local_time, MisfirePolicy, Schedule, Template, Trigger, TriggerError,
    DEFAULT_MISFIRE_GRACE_SECS,
};
use crate::domain::{rfc3339, Millis};
use crate::error::{ApiError, ApiResult};
use crate::store::schedules::ScheduleRow;

const MAX_INSTANCES: i64 = 1000;
const MAX_INTERVAL_SECS: f64 = 366.0 * 86_400.0;

fn trigger_error(e: TriggerError) -> ApiError {
    match e {
        TriggerError::Cron(..) => ApiError::field("trigger.cron", e.to_string()),
        TriggerError::Timezone(_) => ApiError::field("trigger.timezone", e.to_string()),
    }
}

/// Reads the trigger from `trigger: {...}` or from the top level of the body.
fn parse_trigger(b: &Body, now: Millis) -> ApiResult<Trigger> {
    let src = match b.raw(&["trigger"]) {
        Some(Value::Object(o)) => Body::nested(Value::Object(o.clone()), "trigger.")?,
        Some(Value::String(kind)) => {
            let mut flat = b.raw_object().clone();
            flat.insert("type".into(), Value::String(kind.clone()));
            Body::nested(Value::Object(flat), "trigger.")?
        }
        Some(_) => return Err(ApiError::field("trigger", "must be an object")),
        None => Body::nested(Value::Object(b.raw_object().clone()), "trigger.")?,
    };
    let timezone = src
        .string(&["timezone", "tz"])?
        .unwrap_or_else(|| "UTC".into());
    let cron = src.string(&["cron", "cron_expression"])?;
    let interval = src.f64(&["interval_secs", "interval_seconds"])?;
    let once = src.string(&["once_at"])?;
    let start = src.string(&["start_at", "start_time"])?;
    let given: Vec<&str> = [
        ("cron", cron.is_some()),
        ("interval_secs", interval.is_some()),
        ("once_at", once.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if given.len() > 1 {
        return Err(ApiError::field(
            "trigger",
            format!(
                "give one of cron, interval_secs or once_at, not {}",
                given.join(" and ")
            ),
        ));
    }
    let kind = match src.string(&["type", "kind", "schedule_type"])? {
        Some(k) => k,
        None if cron.is_some() => "cron".into(),
        None if interval.is_some() => "interval".into(),
        None if once.is_some() => "once".into(),
        None => {
            return Err(ApiError::field(
                "trigger",
                "is required: give cron (with timezone), interval_secs or once_at",
            ))
        }
    };
    let time = |s: &str, field: &str| {
        parse_local_time(s, &timezone)
            .ok_or_else(|| ApiError::field(field, format!("'{s}' is not an RFC 3339 time")))
    };
    match kind.as_str() {
        "cron" => {
            let expr = cron.ok_or_else(|| ApiError::field("trigger.cron", "is required"))?;
            Trigger::cron(&expr, &timezone).map_err(trigger_error)
        }
        "interval" => {
            let secs =
                interval.ok_or_else(|| ApiError::field("trigger.interval_secs", "is required"))?;
            if !(0.1..=MAX_INTERVAL_SECS).contains(&secs) {
                return Err(ApiError::field(
                    "trigger.interval_secs",
                    format!("{secs} is outside 0.1..={MAX_INTERVAL_SECS}"),
                ));
            }
            let start_at = match start {
                Some(s) => time(&s, "trigger.start_at")?,
                None => now + (secs * 1000.0).round() as i64,
            };
            Ok(Trigger::Interval {
                interval_secs: secs,
                start_at,
            })
        }
        "once" | "date" => {
            let at = once
                .or(start)
                .ok_or_else(|| ApiError::field("trigger.once_at", "is required"))?;
            Ok(Trigger::Once {
                once_at: time(&at, "trigger.once_at")?,
            })
        }
        "manual" => Ok(Trigger::Manual),
        other => Err(ApiError::field(
            "trigger.type",
            format!("'{other}' is not one of cron, interval, once, manual"),
        )),
    }
}

fn trigger_json(t: &Trigger, tz_hint: Option<&str>) -> Value {
    match t {
        Trigger::Cron { cron, timezone } => {
            json!({"type": "cron", "cron": cron, "timezone": timezone})
        }
        Trigger::Interval {
            interval_secs,
            start_at,
        } => {
            json!({"type": "interval", "interval_secs": interval_secs, "start_at": rfc3339(*start_at)})
        }
        Trigger::Once { once_at } => {
            let mut v = json!({"type": "once", "once_at": rfc3339(*once_at)});
            if let Some(tz) = tz_hint {
                v["timezone"] = json!(tz);
            }
            v
        }
        Trigger::Manual => json!({"type": "manual"}),
    }
}

/// Checks a definition. `validate_template` is false when re-reading a stored spec (it was
/// checked when stored; a task type removed since then fails at fire time, recorded).
pub fn parse_schedule(
    state: &AppState,
    body: Value,
    now: Millis,
    validate_template: bool,
) -> ApiResult<(Schedule, String)> {
    let b = Body::new(body)?;
    let name = b
        .string(&["name"])?
        .ok_or_else(|| ApiError::field("name", "is required"))?;
    if name.trim().is_empty() || name.len() > 200 {
        return Err(ApiError::field("name", "must be 1 to 200 characters"));
    }
    let trigger = parse_trigger(&b, now)?;
    let misfire_policy = match b.string(&["misfire_policy"])? {
        None => MisfirePolicy::RunOnce,
        Some(s) => s
            .parse()
            .map_err(|m: String| ApiError::field("misfire_policy", m))?,
    };
    let grace = b
        .f64(&["misfire_grace_secs"])?
        .unwrap_or(DEFAULT_MISFIRE_GRACE_SECS);
    if !(0.0..=MAX_INTERVAL_SECS).contains(&grace) {
        return Err(ApiError::field("misfire_grace_secs", "must be 0 or more"));
    }
    let max_instances = b.i64(&["max_instances"])?.unwrap_or(1);
    if !(1..=MAX_INSTANCES).contains(&max_instances) {
        return Err(ApiError::field(
            "max_instances",
            format!("{max_instances} is outside 1..={MAX_INSTANCES}"),
        ));
    }
    let depends_on = b
        .strings(&["depends_on", "dependencies"])?
        .unwrap_or_default();
    if depends_on.contains(&name) {
        return Err(ApiError::field(
            "depends_on",
            "a schedule cannot depend on itself",
        ));
    }
    let tags = b.strings(&["tags"])?.unwrap_or_default();
    if tags.iter().any(|t| t.is_empty() || t.len() > 100) {
        return Err(ApiError::field(
            "tags",
            "each tag must be 1 to 100 characters",
        ));
    }
    let description = b.string(&["description"])?;
    let template = match (b.raw(&["task"]), b.raw(&["batch"])) {
        (Some(t @ Value::Object(_)), None) => Template::Task(t.clone()),
        (None, Some(bt @ Value::Object(_))) => Template::Batch(bt.clone()),
        (Some(_), Some(_)) => {
            return Err(ApiError::field("task", "give a task or a batch, not both"))
        }
        (Some(_), None) => return Err(ApiError::field("task", "must be an object (a task spec)")),
        (None, Some(_)) => {
            return Err(ApiError::field("batch", "must be an object (a batch spec)"))
        }
        (None, None) => return Err(ApiError::field("task", "is required (or batch)")),
    };
    if validate_template {
        match &template {
            Template::Task(t) => {
                parse_new_task(state, t.clone(), "task.")?;
            }
            Template::Batch(bt) => {
                prepare_batch(state, bt.clone(), "schedule", None).map_err(|mut e| {
                    e.field = e.field.map(|f| format!("batch.{f}"));
                    e.message = format!("batch: {}", e.message);
                    e
                })?;
            }
        }
    }
    let enabled = b.bool(&["enabled"])?.unwrap_or(true);
    let tz_hint = b
        .raw(&["trigger"])
        .and_then(|t| t.get("timezone"))
        .or_else(|| b.raw(&["timezone"]))
        .and_then(Value::as_str)
        .map(String::from);
    let mut spec = Map::new();
    spec.insert("name".into(), json!(name));
    spec.insert("description".into(), json!(description));
    spec.insert("enabled".into(), json!(enabled));
    spec.insert("trigger".into(), trigger_json(&trigger, tz_hint.as_deref()));
    spec.insert("misfire_policy".into(), json!(misfire_policy.as_str()));
    spec.insert("misfire_grace_secs".into(), json!(grace));
    spec.insert("max_instances".into(), json!(max_instances));
    spec.insert("depends_on".into(), json!(depends_on));
    spec.insert("tags".into(), json!(tags));
    match &template {
        Template::Task(t) => spec.insert("task".into(), t.clone()),
        Template::Batch(bt) => spec.insert("batch".into(), bt.clone()),
    };
    if let Some(meta) = b.raw(&["meta"]).filter(|m| m.is_object()) {
        spec.insert("meta".into(), meta.clone());
    }
    let schedule = Schedule {
        id: String::new(),
        name: name.clone(),
        enabled,
        trigger,
        misfire_policy,
        misfire_grace_secs: grace,
        max_instances: max_instances as i32,
        depends_on,
        tags,
        template,
        spec: Value::Object(spec),
        last_slot: None,
        created_at: now,
        updated_at: now,
    };
    Ok((schedule, name))
}

/// The row of a schedule.
pub fn to_row(s: &Schedule) -> ScheduleRow {
    ScheduleRow {
        id: s.id.clone(),
        name: s.name.clone(),
        trigger_kind: s.trigger.kind().into(),
        enabled: s.enabled,
        tags: serde_json::to_string(&s.tags).unwrap_or_else(|_| "[]".into()),
        spec: s.spec.to_string(),
        last_slot: s.last_slot,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

/// A stored row back to a schedule (its spec was checked when stored).
pub fn from_row(state: &AppState, r: ScheduleRow) -> ApiResult<Schedule> {
    let spec: Value = serde_json::from_str(&r.spec).map_err(|e| {
        log::error!("schedule {} has a corrupt spec: {e}", r.id);
        ApiError::internal()
    })?;
    let (mut s, _) = parse_schedule(state, spec, r.created_at, false)?;
    s.id = r.id;
    s.enabled = r.enabled;
    s.last_slot = r.last_slot;
    s.created_at = r.created_at;
    s.updated_at = r.updated_at;
    if let Value::Object(m) = &mut s.spec {
        m.insert("enabled".into(), json!(r.enabled));
    }
    Ok(s)
}

/// A schedule on the wire.
#[derive(Serialize)]
pub struct ScheduleView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub next_run_at: Option<String>,
    pub last_run_at: Option<String>,
    pub last_status: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(flatten)]
    pub spec: Map<String, Value>,
}

impl ScheduleView {
    pub fn new(s: &Schedule, last: Option<(Millis, String)>, now: Millis) -> Self {
        let spec = match &s.spec {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        let (last_run_at, last_status) = match last {
            Some((at, st)) => (Some(rfc3339(at)), Some(st)),
            None => (None, None),
        };
        ScheduleView {
            id: s.id.clone(),
            kind: s.trigger.kind(),
            next_run_at: s.next_run_at(now).map(rfc3339),
            last_run_at,
            last_status,
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
            spec,
        }
    }
}
