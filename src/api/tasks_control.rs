//! Task creation and the operations on finished tasks (restart, retry, delete): validation
//! into [`NewTask`], the one-transaction store writes, and handing the result to the scheduler.

use serde_json::{json, Value};

use super::fields::Body;
use super::AppState;
use crate::actors::scheduler::Enqueue;
use crate::domain::{
    now_ms, MutexPolicy, NewTask, Priority, RetryBackoff, Source, Task, TaskId, TaskStatus,
};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::events::EventBody;
use crate::store::{tasks as q, StoreError};

const MAX_NAME: usize = 1000;
const MAX_RETRIES: i64 = 100;
const MAX_DELAY_SECS: f64 = 7.0 * 86_400.0;

/// Why the store refused a creation.
enum Refusal {
    MissingDependency(usize, TaskId),
    MutexHeld(String, TaskId),
}

/// For the first `reject` task of `items` whose mutex is taken: the key and its holder, a
/// live stored task or another task created with it (it will be pending). Reads only.
pub(crate) fn reject_conflict(
    c: &mut crate::store::DbConn,
    items: &[(Task, crate::domain::Transition)],
) -> Result<Option<(String, TaskId)>, StoreError> {
    for (i, (t, _)) in items.iter().enumerate() {
        let (Some(key), MutexPolicy::Reject) = (t.mutex.as_deref(), t.mutex_policy) else {
            continue;
        };
        if let Some(holder) = q::mutex_holder(c, key, None)? {
            return Ok(Some((key.to_string(), holder)));
        }
        let sibling = items
            .iter()
            .enumerate()
            .find(|(j, (o, _))| *j != i && o.mutex.as_deref() == Some(key));
        if let Some((_, (o, _))) = sibling {
            return Ok(Some((key.to_string(), o.id)));
        }
    }
    Ok(None)
}

/// `409 mutex_held` for a `reject` task.
pub(crate) fn mutex_held(key: &str, holder: TaskId) -> ApiError {
    ApiError::new(
        ErrorCode::MutexHeld,
        format!("mutex '{key}' is held by task {holder}"),
    )
}

fn remote_type_names(state: &AppState) -> Vec<String> {
    match state.shared.remote_types.read() {
        Ok(t) => t.iter().cloned().collect(),
        Err(_) => Vec::new(),
    }
}

/// The name of a type registered remote units serve, matched without regard to case.
fn remote_type(state: &AppState, raw: &str) -> Option<String> {
    remote_type_names(state)
        .into_iter()
        .find(|t| t.eq_ignore_ascii_case(raw))
}

/// Validates a task spec (SPEC §2 field names, with the seeds' aliases).
pub fn parse_new_task(state: &AppState, v: Value, prefix: &str) -> ApiResult<NewTask> {
    let b = Body::nested(v, prefix)?;
    let raw_type = b
        .string(&["type", "task_type", "taskType"])?
        .ok_or_else(|| ApiError::field(b.field_name("type"), "is required"))?;
    let handler = state
        .shared
        .registry
        .types()
        .find(|t| t.eq_ignore_ascii_case(&raw_type))
        .and_then(|t| state.shared.registry.get(t));
    let config = b
        .object(&["config", "params"])?
        .unwrap_or_else(|| json!({}));
    let task_type = match handler {
        Some(handler) => {
            // A type this server cannot run (a missing tool) is refused here, unless a
            // registered unit serves it, rather than accepted to fail at every attempt.
            if let Err(reason) = handler.availability() {
                if remote_type(state, &raw_type).is_none() {
                    return Err(ApiError::field(
                        b.field_name("type"),
                        format!(
                            "task type '{}' is unavailable on this server: {reason}",
                            handler.task_type()
                        ),
                    ));
                }
            }
            handler
                .validate(&config, &state.shared.env)
                .map_err(|e| ApiError::field(format!("{prefix}{}", e.field), e.message))?;
            handler.task_type().to_string()
        }
        // A type only remote units run: they validate the config when they run it.
        None => remote_type(state, &raw_type).ok_or_else(|| {
            let mut known: Vec<String> = state.shared.registry.types().map(String::from).collect();
            known.extend(remote_type_names(state));
            known.sort();
            known.dedup();
            ApiError::field(
                b.field_name("type"),
                format!(
                    "unknown task type '{raw_type}' (known: {})",
                    known.join(", ")
                ),
            )
        })?,
    };
    let name = b
        .string(&["name", "task_name", "taskName"])?
        .unwrap_or_else(|| task_type.clone());
    if name.trim().is_empty() || name.len() > MAX_NAME {
        return Err(ApiError::field(
            b.field_name("name"),
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    let priority = b.priority()?.unwrap_or(Priority::DEFAULT.0);
    let max_retries = b
        .i64(&["max_retries", "maxRetries", "retry_count"])?
        .unwrap_or(3);
    if !(0..=MAX_RETRIES).contains(&max_retries) {
        return Err(ApiError::field(
            b.field_name("max_retries"),
            format!("{max_retries} is outside 0..={MAX_RETRIES}"),
        ));
    }
    let retry_delay_secs = b.f64(&["retry_delay_secs", "retry_delay"])?.unwrap_or(5.0);
    if !(0.0..=MAX_DELAY_SECS).contains(&retry_delay_secs) {
        return Err(ApiError::field(
            b.field_name("retry_delay_secs"),
            format!("{retry_delay_secs} is outside 0..={MAX_DELAY_SECS}"),
        ));
    }
    let retry_backoff = match b.string(&["retry_backoff"])? {
        None => RetryBackoff::Exponential,
        Some(s) => s
            .parse()
            .map_err(|m| ApiError::field(b.field_name("retry_backoff"), m))?,
    };
    let timeout_secs = b.f64(&["timeout_secs", "timeout"])?;
    if let Some(t) = timeout_secs {
        if !(t > 0.0 && t <= crate::config::MAX_SECS) {
            return Err(ApiError::field(
                b.field_name("timeout_secs"),
                format!(
                    "{t} must be greater than 0 and at most {}",
                    crate::config::MAX_SECS
                ),
            ));
        }
    }
    let mutex = b.string(&["mutex", "mutex_key"])?;
    if mutex
        .as_deref()
        .is_some_and(|m| m.trim().is_empty() || m.len() > 200)
    {
        return Err(ApiError::field(
            b.field_name("mutex"),
            "must be 1 to 200 characters",
        ));
    }
    let mutex_policy = match b.string(&["mutex_policy"])? {
        None => MutexPolicy::Queue,
        Some(s) => s
            .parse()
            .map_err(|m| ApiError::field(b.field_name("mutex_policy"), m))?,
    };
    let depends_on = b.task_ids(&["depends_on"])?.unwrap_or_default();
    let callback_url = b.string(&["callback_url"])?;
    if let Some(url) = &callback_url {
        crate::webhooks::target::check_url(url, &state.hooks.host_rules())
            .map_err(|m| ApiError::field(b.field_name("callback_url"), m))?;
    }
    let tags = b.strings(&["tags"])?.unwrap_or_default();
    if tags.iter().any(|t| t.is_empty() || t.len() > 100) {
        return Err(ApiError::field(
            b.field_name("tags"),
            "each tag must be 1 to 100 characters",
        ));
    }
    Ok(NewTask {
        name,
        task_type,
        config,
        priority,
        max_retries: max_retries as i32,
        retry_delay_secs,
        retry_backoff,
        timeout_secs,
        mutex,
        mutex_policy,
        depends_on,
        run_at: b.time(&["run_at"])?,
        tags,
        batch_id: None,
        schedule_id: None,
        source: Source::Api,
        retry_of: None,
        created_by: b.string(&["created_by"])?,
        callback_url,
        unit_labels: b.string_map(&["unit_labels"])?.unwrap_or_default(),
        autostart: b.bool(&["autostart"])?.unwrap_or(true),
    })
}

/// Stores new tasks in one transaction (after checking dependencies and `reject` mutexes),
/// then queues them and announces them.
pub async fn create(state: &AppState, specs: Vec<NewTask>, by: &str) -> ApiResult<Vec<Task>> {
    let now = now_ms();
    let items: Vec<(Task, _)> = specs
        .into_iter()
        .map(|s| Task::create(TaskId::new(), s, now, by))
        .collect();
    // No savepoint: every refusal is found by reading, before the inserts.
    let stored = state
        .shared
        .store
        .write_direct(move |c| {
            let new_ids: std::collections::HashSet<TaskId> =
                items.iter().map(|(t, _)| t.id).collect();
            for (t, _) in &items {
                let external: Vec<TaskId> = t
                    .depends_on
                    .iter()
                    .copied()
                    .filter(|d| !new_ids.contains(d))
                    .collect();
                if !external.is_empty() {
                    let found = q::statuses(c, &external)?;
                    if let Some((i, missing)) =
                        t.depends_on.iter().enumerate().find(|(_, d)| {
                            !new_ids.contains(d) && !found.iter().any(|(f, _)| f == *d)
                        })
                    {
                        return Ok(Err(Refusal::MissingDependency(i, *missing)));
                    }
                }
            }
            if let Some((key, holder)) = reject_conflict(c, &items)? {
                return Ok(Err(Refusal::MutexHeld(key, holder)));
            }
            q::insert(c, &items)?;
            Ok::<_, StoreError>(Ok(items.into_iter().map(|(t, _)| t).collect::<Vec<_>>()))
        })
        .await?;
    let tasks = match stored {
        Ok(t) => t,
        Err(Refusal::MissingDependency(i, id)) => {
            return Err(ApiError::field(
                format!("depends_on[{i}]"),
                format!("task {id} does not exist"),
            ));
        }
        Err(Refusal::MutexHeld(key, holder)) => return Err(mutex_held(&key, holder)),
    };
    for t in &tasks {
        state
            .shared
            .events
            .publish(EventBody::status(t, None, Some("created".into()), now));
    }
    state.scheduler.do_send(Enqueue {
        tasks: tasks.clone(),
    });
    Ok(tasks)
}

/// Restart (SPEC §2.1): same id, back to pending with progress, checkpoint, result and error
/// cleared; from failed or cancelled.
pub async fn restart(state: &AppState, id: TaskId, by: &str) -> ApiResult<Task> {
    let by = by.to_string();
    let (task, restarted) = state
        .shared
        .store
        .write(move |c| {
            let mut restarted = None;
            let task = q::modify(c, id, |t| {
                t.restart(now_ms(), &by).map(|h| {
                    restarted = Some(h.clone());
                    vec![h]
                })
            })?;
            Ok(task.map(|t| (t, restarted)))
        })
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("task", id),
            other => other.into(),
        })??;
    if let Some(h) = restarted {
        // From failed or cancelled: the gauges move the task out of its old status.
        state
            .shared
            .events
            .publish(EventBody::transition(&task, &h));
    }
    state.scheduler.do_send(Enqueue {
        tasks: vec![task.clone()],
    });
    Ok(task)
}

/// Retry (seed 001): a new task of the same type and config, `source: retry`, `retry_of` set;
/// only from failed.
pub async fn retry(state: &AppState, id: TaskId, by: &str) -> ApiResult<Task> {
    let old = state.load_task(id).await?;
    if old.status != TaskStatus::Failed {
        return Err(ApiError::new(
            ErrorCode::InvalidTransition,
            format!(
                "only failed tasks can be retried; this one is {}",
                old.status
            ),
        ));
    }
    let spec = NewTask {
        name: old.name,
        task_type: old.task_type,
        config: old.config,
        priority: old.priority,
        max_retries: old.max_retries,
        retry_delay_secs: old.retry_delay_secs,
        retry_backoff: old.retry_backoff,
        timeout_secs: old.timeout_secs,
        mutex: old.mutex,
        mutex_policy: MutexPolicy::Queue,
        depends_on: Vec::new(),
        run_at: None,
        tags: old.tags,
        batch_id: old.batch_id,
        schedule_id: old.schedule_id,
        source: Source::Retry,
        retry_of: Some(id),
        created_by: old.created_by,
        callback_url: old.callback_url,
        unit_labels: old.unit_labels,
        autostart: true,
    };
    let mut created = create(state, vec![spec], by).await?;
    created.pop().ok_or_else(ApiError::internal)
}

/// Delete: terminal tasks only.
pub async fn delete(state: &AppState, id: TaskId) -> ApiResult<()> {
    let task = state.load_task(id).await?;
    let deleted = state
        .shared
        .store
        .write(move |c| q::delete_terminal(c, id))
        .await?;
    if deleted {
        state.metrics.forget(&task.task_type, task.status);
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::NotTerminal,
        format!(
            "only finished tasks can be deleted; this one is {}",
            task.status
        ),
    ))
}
