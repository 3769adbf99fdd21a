//! `/api/v1/batches` (SPEC §3): create in one validated transaction, list, read, tasks of a
//! batch, patch (priority re-orders waiting tasks), delete when finished, and control.

use std::collections::HashMap;

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::dto::{BatchView, Page};
use super::fields::{Body, Params};
use super::tasks_control::parse_new_task;
use super::{caller, AppState};
use crate::actors::scheduler::batches::{batch_key, RegisterBatch, Reprioritize, SetBatchPaused};
use crate::actors::scheduler::Enqueue;
use crate::actors::supervisor::WatchBatch;
use crate::domain::batch::{resolve_dag, Batch, BatchMode, BatchStatus, DagError, OnFailure};
use crate::domain::{now_ms, Priority, Source, Task, TaskId, TaskStatus};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::events::{EventBody, Watched};
use crate::store::batches::{self as qb, BatchQuery};
use crate::store::tasks::{self as q, TaskQuery};
use crate::store::StoreError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/batches")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        web::resource("/batches/{id}")
            .route(web::get().to(get))
            .route(web::patch().to(patch))
            .route(web::delete().to(delete)),
    )
    .route("/batches/{id}/tasks", web::get().to(tasks))
    .route("/batches/{id}/wait", web::get().to(wait))
    .route("/batches/{id}/cancel", web::post().to(cancel))
    .route("/batches/{id}/pause", web::post().to(pause))
    .route("/batches/{id}/resume", web::post().to(resume))
    .route("/batches/{id}/restart", web::post().to(restart));
}

type Data = web::Data<AppState>;

/// Parses a batch id from a path or parameter; a malformed id is simply not found.
pub(crate) fn batch_id(raw: &str) -> ApiResult<String> {
    raw.parse::<uuid::Uuid>()
        .map(|u| u.to_string())
        .map_err(|_| ApiError::not_found("batch", format!("'{raw}'")))
}

async fn load(state: &AppState, id: &str) -> ApiResult<(Batch, crate::domain::batch::Counts)> {
    let key = id.to_string();
    state
        .shared
        .store
        .read(move |c| Ok(qb::get(c, &key)?.map(|b| (b, qb::counts(c, &key)))))
        .await?
        .map(|(b, counts)| Ok::<_, ApiError>((b, counts?)))
        .transpose()?
        .ok_or_else(|| ApiError::not_found("batch", id))
}

/// The batch as the API shows it now.
pub(crate) async fn view(state: &AppState, id: &str) -> ApiResult<BatchView> {
    let (b, counts) = load(state, id).await?;
    Ok(BatchView::new(b, counts, now_ms()))
}

/// The view a control route answers: the status its change implies now, from the counts and
/// flags it has just changed (the batch's actor records that status, with its event, moments
/// later; until then the stored one is the status from before the change).
async fn control_view(state: &AppState, id: &str) -> ApiResult<BatchView> {
    let (mut b, counts) = load(state, id).await?;
    let now = now_ms();
    let status = counts.status(b.paused, b.cancelled);
    if status != b.status {
        b.status = status;
        if status.is_terminal() {
            b.finished_at.get_or_insert(now);
        } else {
            b.finished_at = None;
        }
    }
    Ok(BatchView::new(b, counts, now))
}

/// Registers a batch with the scheduler and its actor (creation, restart, recovery).
pub fn register(state: &AppState, b: &Batch) {
    state.scheduler.do_send(RegisterBatch {
        id: b.id.clone(),
        limit: b.parallel_limit(),
        paused: b.paused,
        halt_on_failure: b.on_failure == crate::domain::batch::OnFailure::CancelRemaining,
        waits: b.depends_on.iter().filter_map(|d| batch_key(d)).collect(),
    });
    state.supervisor.do_send(WatchBatch::changed(b.id.clone()));
}

/// `POST /batches`: 201 with the batch view and `task_ids` in the order given.
async fn create(state: Data, req: HttpRequest, body: web::Json<Value>) -> ApiResult<HttpResponse> {
    let by = caller(&req);
    let mut body = body.into_inner();
    if crate::auth::identity(&req).is_some() {
        // An authenticated caller cannot attribute work to someone else: every task is its.
        if let Some(tasks) = body.get_mut("tasks").and_then(Value::as_array_mut) {
            for t in tasks.iter_mut().filter_map(Value::as_object_mut) {
                t.remove("created_by");
            }
        }
    }
    let (batch, ids) = create_batch(&state, body, &by, None).await?;
    let batch_id = batch.id.clone();
    // The batch as created: every task pending (no read needed to count them).
    let mut counts = crate::domain::batch::Counts::default();
    counts.add(TaskStatus::Pending, ids.len() as i64, 0.0);
    let mut v = serde_json::to_value(BatchView::new(batch, counts, now_ms()))
        .map_err(|_| ApiError::internal())?;
    v["task_ids"] = json!(ids);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/batches/{batch_id}")))
        .json(v))
}

/// A batch validated in full and ready to store in one transaction.
pub struct PreparedBatch {
    batch: Batch,
    ids: Vec<TaskId>,
    items: Vec<(Task, crate::domain::Transition)>,
    external_check: Vec<(usize, usize, TaskId)>,
}

/// Validates and stores a batch as `POST /batches` does (schedules reuse it, with the
/// schedule's id set on every task); answers the batch and its task ids in order.
pub async fn create_batch(
    state: &AppState,
    body: Value,
    by: &str,
    schedule_id: Option<String>,
) -> ApiResult<(Batch, Vec<TaskId>)> {
    let prepared = prepare_batch(state, body, by, schedule_id)?;
    store_batch(state, prepared).await
}

/// Everything `POST /batches` checks before storing (no database access).
pub fn prepare_batch(
    state: &AppState,
    body: Value,
    by: &str,
    schedule_id: Option<String>,
) -> ApiResult<PreparedBatch> {
    let by = by.to_string();
    let b = Body::new(body)?;
    let now = now_ms();
    let name = b
        .string(&["name", "group_name"])?
        .unwrap_or_else(|| "batch".into());
    if name.trim().is_empty() || name.len() > 1000 {
        return Err(ApiError::field("name", "must be 1 to 1000 characters"));
    }
    let priority = b.priority()?.unwrap_or(Priority::DEFAULT.0);
    let mode: BatchMode = match b.string(&["mode", "execution_mode"])? {
        None => BatchMode::Parallel,
        Some(s) => s.parse().map_err(|m| ApiError::field("mode", m))?,
    };
    let on_failure: OnFailure = match b.string(&["on_failure"])? {
        None => OnFailure::Continue,
        Some(s) => s.parse().map_err(|m| ApiError::field("on_failure", m))?,
    };
    let max_parallel = b.i64(&["max_parallel"])?;
    if let Some(m) = max_parallel {
        if !(1..=1_000_000).contains(&m) {
            return Err(ApiError::field(
                "max_parallel",
                format!("{m} is outside 1..=1000000"),
            ));
        }
    }
    let depends_on = b.strings(&["depends_on"])?.unwrap_or_default();
    for (i, d) in depends_on.iter().enumerate() {
        if d.parse::<uuid::Uuid>().is_err() {
            return Err(ApiError::field(
                format!("depends_on[{i}]"),
                format!("'{d}' is not a batch id"),
            ));
        }
    }
    let callback_url = b.string(&["callback_url"])?;
    if let Some(url) = &callback_url {
        crate::webhooks::target::check_url(url, &state.hooks.host_rules())
            .map_err(|m| ApiError::field("callback_url", m))?;
    }
    let specs = match b.raw(&["tasks"]) {
        Some(Value::Array(items)) if !items.is_empty() => items.clone(),
        Some(Value::Array(_)) => {
            return Err(ApiError::field("tasks", "must hold at least one task"))
        }
        Some(_) => return Err(ApiError::field("tasks", "must be an array of task specs")),
        None => return Err(ApiError::field("tasks", "is required")),
    };
    let limit = state.shared.config().max_batch_tasks;
    if specs.len() > limit {
        return Err(ApiError::field(
            "tasks",
            format!("{} tasks exceed max_batch_tasks ({limit})", specs.len()),
        ));
    }
    let batch_id = TaskId::new().to_string();

    // Every task validated before anything is stored; local keys resolved into a DAG.
    let mut keys = Vec::with_capacity(specs.len());
    let mut local_deps: Vec<Vec<(usize, String)>> = Vec::with_capacity(specs.len());
    let mut external_deps: Vec<Vec<(usize, TaskId)>> = Vec::with_capacity(specs.len());
    let mut new_tasks = Vec::with_capacity(specs.len());
    for (i, spec) in specs.into_iter().enumerate() {
        let prefix = format!("tasks[{i}].");
        let Value::Object(mut obj) = spec else {
            return Err(ApiError::field(format!("tasks[{i}]"), "must be an object"));
        };
        let key = match obj.remove("key") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(ApiError::field(format!("{prefix}key"), "must be a string")),
        };
        let mut raw_deps = Vec::new();
        match obj.remove("depends_on") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for (j, d) in list.into_iter().enumerate() {
                    match d {
                        Value::String(s) => raw_deps.push((j, s)),
                        _ => {
                            return Err(ApiError::field(
                                format!("{prefix}depends_on[{j}]"),
                                "must be a key or a task id",
                            ))
                        }
                    }
                }
            }
            Some(_) => {
                return Err(ApiError::field(
                    format!("{prefix}depends_on"),
                    "must be an array of keys",
                ))
            }
        }
        let own_priority = obj.contains_key("priority");
        let mut t = parse_new_task(state, Value::Object(obj), &prefix)?;
        t.schedule_id.clone_from(&schedule_id);
        if !own_priority || mode == BatchMode::Sequential {
            t.priority = priority;
        }
        t.batch_id = Some(batch_id.clone());
        t.source = Source::Batch;
        if t.created_by.is_none() {
            t.created_by = Some(by.clone());
        }
        keys.push(key);
        local_deps.push(raw_deps);
        new_tasks.push(t);
    }
    // A dependency naming a key of this batch is local; any other task id is an existing task.
    let key_set: std::collections::HashSet<&str> =
        keys.iter().flatten().map(|k| k.as_str()).collect();
    let mut local_deps: Vec<Vec<String>> = local_deps
        .into_iter()
        .map(|list| {
            let (local, external): (Vec<_>, Vec<_>) = list
                .into_iter()
                .partition(|(_, s)| key_set.contains(s.as_str()) || s.parse::<TaskId>().is_err());
            external_deps.push(
                external
                    .into_iter()
                    .filter_map(|(j, s)| s.parse::<TaskId>().ok().map(|id| (j, id)))
                    .collect::<Vec<_>>(),
            );
            local.into_iter().map(|(_, s)| s).collect()
        })
        .collect();
    let local_deps = std::mem::take(&mut local_deps);
    let edges = resolve_dag(&keys, &local_deps).map_err(|e| match e {
        DagError::DuplicateKey(i, k) => {
            ApiError::field(format!("tasks[{i}].key"), format!("'{k}' is used twice"))
        }
        DagError::UnknownKey { task, key, .. } => ApiError::field(
            format!("tasks[{task}].depends_on"),
            format!("'{key}' is not the key of a task in this batch"),
        ),
        DagError::Cycle(stuck) => ApiError::field(
            "tasks",
            format!("depends_on forms a cycle among {}", stuck.join(", ")),
        ),
    })?;
    let ids: Vec<TaskId> = (0..new_tasks.len()).map(|_| TaskId::new()).collect();
    let mut external_check = Vec::new();
    for (i, t) in new_tasks.iter_mut().enumerate() {
        t.depends_on = edges[i].iter().map(|&j| ids[j]).collect();
        for (j, ext) in &external_deps[i] {
            t.depends_on.push(*ext);
            external_check.push((i, *j, *ext));
        }
    }
    let batch = Batch {
        id: batch_id.clone(),
        name,
        description: b.string(&["description"])?,
        status: BatchStatus::Pending,
        priority,
        mode,
        max_parallel: max_parallel.map(|m| m as i32),
        on_failure,
        depends_on,
        callback_url,
        tags: b.strings(&["tags"])?.unwrap_or_default(),
        created_by: Some(by.clone()),
        task_count: new_tasks.len() as i32,
        paused: false,
        cancelled: false,
        version: 1,
        created_at: now,
        updated_at: now,
        started_at: None,
        finished_at: None,
    };
    let items: Vec<(Task, _)> = new_tasks
        .into_iter()
        .zip(ids.iter())
        .map(|(spec, id)| Task::create(*id, spec, now, &by))
        .collect();
    Ok(PreparedBatch {
        batch,
        ids,
        items,
        external_check,
    })
}

/// Stores a prepared batch in one transaction, registers it and queues its tasks.
pub async fn store_batch(
    state: &AppState,
    prepared: PreparedBatch,
) -> ApiResult<(Batch, Vec<TaskId>)> {
    let PreparedBatch {
        batch,
        ids,
        items,
        external_check,
    } = prepared;
    let now = batch.created_at;
    let stored_batch = batch.clone();
    let stored = state
        .shared
        .store
        .write_direct(move |c| {
            if !stored_batch.depends_on.is_empty() {
                let found = qb::statuses(c, &stored_batch.depends_on)?;
                if let Some((i, d)) = stored_batch
                    .depends_on
                    .iter()
                    .enumerate()
                    .find(|(_, d)| !found.iter().any(|(f, _)| f == *d))
                {
                    return Ok(Err(ApiError::field(
                        format!("depends_on[{i}]"),
                        format!("batch {d} does not exist"),
                    )));
                }
            }
            if !external_check.is_empty() {
                let wanted: Vec<TaskId> = external_check.iter().map(|(_, _, id)| *id).collect();
                let found = q::statuses(c, &wanted)?;
                if let Some((i, j, id)) = external_check
                    .iter()
                    .find(|(_, _, id)| !found.iter().any(|(f, _)| f == id))
                {
                    return Ok(Err(ApiError::field(
                        format!("tasks[{i}].depends_on[{j}]"),
                        format!("task {id} does not exist"),
                    )));
                }
            }
            if let Some((key, holder)) = super::tasks_control::reject_conflict(c, &items)? {
                return Ok(Err(super::tasks_control::mutex_held(&key, holder)));
            }
            qb::insert(c, &stored_batch)?;
            q::insert(c, &items)?;
            Ok::<_, StoreError>(Ok(items.into_iter().map(|(t, _)| t).collect::<Vec<_>>()))
        })
        .await??;
    for t in &stored {
        state
            .shared
            .events
            .publish(EventBody::status(t, None, Some("created".into()), now));
    }
    register(state, &batch);
    state.scheduler.do_send(Enqueue { tasks: stored });
    Ok((batch, ids))
}

/// `GET /batches?status=&tag=&page=&limit=`.
async fn list(state: Data, query: web::Query<HashMap<String, String>>) -> ApiResult<HttpResponse> {
    let p = Params(query.into_inner());
    let (page, limit, offset) = p.page()?;
    let mut statuses = Vec::new();
    for s in p.list("status") {
        statuses.push(
            s.parse::<BatchStatus>()
                .map_err(|m| ApiError::field("status", m))?
                .as_str()
                .to_string(),
        );
    }
    let bq = BatchQuery {
        statuses,
        tag: p.str("tag").map(String::from),
        offset,
        limit,
    };
    let rows = state
        .shared
        .store
        .read(move |c| {
            let (list, total) = qb::list(c, &bq)?;
            let mut out = Vec::with_capacity(list.len());
            for b in list {
                let counts = qb::counts(c, &b.id)?;
                out.push((b, counts));
            }
            Ok((out, total))
        })
        .await?;
    let now = now_ms();
    let items: Vec<BatchView> = rows
        .0
        .into_iter()
        .map(|(b, c)| BatchView::new(b, c, now))
        .collect();
    Ok(HttpResponse::Ok().json(Page {
        items,
        page,
        limit,
        total: rows.1,
    }))
}

async fn get(state: Data, path: web::Path<String>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(view(&state, &batch_id(&path)?).await?))
}

/// `GET /batches/{id}/wait?after_version=&timeout_secs=`: answers when the batch's version
/// passes `after_version` (its status changed), it is finished, or the timeout passes.
async fn wait(
    state: Data,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let id = batch_id(&path)?;
    let p = Params(query.into_inner());
    let after = p.int("after_version", 0, i64::MAX)?;
    let timeout = p.float("timeout_secs", 0.0, 300.0)?.unwrap_or(30.0);
    Ok(HttpResponse::Ok().json(wait_view(&state, &id, after, timeout).await?))
}

/// The long poll behind `GET /batches/{id}/wait`: the view once the version passes `after`,
/// the batch is finished, or `timeout_secs` passes.
pub(crate) async fn wait_view(
    state: &AppState,
    id: &str,
    after: Option<i64>,
    timeout_secs: f64,
) -> ApiResult<BatchView> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs_f64(timeout_secs);
    let watch = state.shared.events.watch(Watched::Batch(id.to_string()));
    loop {
        let v = view(state, id).await?;
        let finished = matches!(v.status, "success" | "failed" | "cancelled");
        if after.is_none_or(|a| v.version > a)
            || finished
            || tokio::time::Instant::now() >= deadline
        {
            return Ok(v);
        }
        watch.changed(deadline).await;
    }
}

/// `GET /batches/{id}/tasks`: the batch's tasks (filters and sorts as `GET /tasks`).
async fn tasks(
    state: Data,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let id = batch_id(&path)?;
    load(&state, &id).await?;
    let p = Params(query.into_inner());
    let (page, limit, offset) = p.page()?;
    let mut statuses = Vec::new();
    for s in p.list("status") {
        statuses.push(
            s.parse::<TaskStatus>()
                .map_err(|m| ApiError::field("status", m))?,
        );
    }
    let tq = TaskQuery {
        statuses,
        batch_id: Some(id),
        sort: crate::store::tasks::SortColumn::CreatedAt,
        descending: false,
        offset,
        limit,
        ..TaskQuery::default()
    };
    let (list, total) = state.shared.store.read(move |c| q::list(c, &tq)).await?;
    let items = state.views(list).await?;
    Ok(HttpResponse::Ok().json(Page {
        items,
        page,
        limit,
        total,
    }))
}

/// `PATCH /batches/{id}`: `priority` (re-orders its waiting tasks), `name`, `description`, `tags`.
async fn patch(
    state: Data,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> ApiResult<HttpResponse> {
    let id = batch_id(&path)?;
    let b = Body::new(body.into_inner())?;
    let priority = b.priority()?;
    let name = b.string(&["name"])?;
    let description = b.string(&["description"])?;
    let tags = b.strings(&["tags"])?;
    if priority.is_none() && name.is_none() && description.is_none() && tags.is_none() {
        return Err(ApiError::new(
            ErrorCode::Validation,
            "nothing to change: give priority, name, description or tags",
        ));
    }
    load(&state, &id).await?;
    let key = id.clone();
    let now = now_ms();
    let changed = state
        .shared
        .store
        .write(move |c| {
            let (_, ()) = qb::modify(c, &key, |bt| {
                if let Some(p) = priority {
                    bt.priority = p;
                }
                if let Some(n) = name {
                    bt.name = n;
                }
                if description.is_some() {
                    bt.description = description;
                }
                if let Some(t) = tags {
                    bt.tags = t;
                }
                bt.updated_at = now;
                bt.version += 1;
            })?;
            match priority {
                Some(p) => qb::set_pending_priority(c, &key, p, now),
                None => Ok(Vec::new()),
            }
        })
        .await?;
    if let Some(p) = priority {
        state.scheduler.do_send(Reprioritize {
            ids: changed,
            priority: p,
        });
    }
    Ok(HttpResponse::Ok().json(control_view(&state, &id).await?))
}

/// `DELETE /batches/{id}`: finished batches only, with their tasks.
async fn delete(state: Data, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = batch_id(&path)?;
    let (b, counts) = load(&state, &id).await?;
    if counts.live() > 0 || !b.status.is_terminal() {
        return Err(ApiError::new(
            ErrorCode::NotTerminal,
            format!(
                "only finished batches can be deleted; this one is {}",
                b.status
            ),
        ));
    }
    state
        .shared
        .store
        .write(move |c| qb::delete(c, &id))
        .await?;
    for (status, n) in [
        ("success", counts.success),
        ("failed", counts.failed),
        ("cancelled", counts.cancelled),
    ] {
        state.metrics.tasks.with_label_values(&[status]).sub(n);
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn set_flags(
    state: &AppState,
    id: &str,
    paused: Option<bool>,
    cancelled: Option<bool>,
) -> ApiResult<Batch> {
    let key = id.to_string();
    let now = now_ms();
    let (b, ()) = state
        .shared
        .store
        .write(move |c| {
            qb::modify(c, &key, |b| {
                if let Some(p) = paused {
                    b.paused = p;
                }
                if let Some(x) = cancelled {
                    b.cancelled = x;
                }
                b.updated_at = now;
                b.version += 1;
            })
        })
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("batch", id),
            other => other.into(),
        })?;
    Ok(b)
}

fn refuse_if_finished(
    b: &Batch,
    counts: &crate::domain::batch::Counts,
    what: &str,
) -> ApiResult<()> {
    if counts.live() == 0 && b.status.is_terminal() {
        return Err(ApiError::new(
            ErrorCode::InvalidTransition,
            format!("a {} batch cannot be {what}", b.status),
        ));
    }
    Ok(())
}

/// `POST /batches/{id}/cancel`: every live task is cancelled.
async fn cancel(state: Data, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = batch_id(&path)?;
    Ok(HttpResponse::Ok().json(cancel_batch(&state, &id, &caller(&req)).await?))
}

/// Cancels every live task of a batch (refused when it is finished); the view after.
pub(crate) async fn cancel_batch(state: &AppState, id: &str, by: &str) -> ApiResult<BatchView> {
    let (b, counts) = load(state, id).await?;
    refuse_if_finished(&b, &counts, "cancelled")?;
    set_flags(state, id, None, Some(true)).await?;
    state
        .commander()
        .cancel_batch(id, by, "batch cancelled")
        .await?;
    state
        .supervisor
        .do_send(WatchBatch::changed(id.to_string()));
    control_view(state, id).await
}

/// `POST /batches/{id}/pause`: nothing new starts and running tasks pause.
async fn pause(state: Data, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = batch_id(&path)?;
    let (b, counts) = load(&state, &id).await?;
    refuse_if_finished(&b, &counts, "paused")?;
    if b.paused {
        return Err(ApiError::new(
            ErrorCode::InvalidTransition,
            "the batch is already paused",
        ));
    }
    set_flags(&state, &id, Some(true), None).await?;
    state
        .scheduler
        .send(SetBatchPaused {
            id: id.clone(),
            paused: true,
        })
        .await?;
    state
        .commander()
        .pause_batch_tasks(&id, &caller(&req), true)
        .await?;
    state.supervisor.do_send(WatchBatch::changed(id.clone()));
    Ok(HttpResponse::Ok().json(control_view(&state, &id).await?))
}

/// `POST /batches/{id}/resume`.
async fn resume(state: Data, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = batch_id(&path)?;
    let (b, counts) = load(&state, &id).await?;
    refuse_if_finished(&b, &counts, "resumed")?;
    if !b.paused {
        return Err(ApiError::new(
            ErrorCode::InvalidTransition,
            format!("a {} batch that is not paused cannot be resumed", b.status),
        ));
    }
    set_flags(&state, &id, Some(false), None).await?;
    state
        .commander()
        .pause_batch_tasks(&id, &caller(&req), false)
        .await?;
    state
        .scheduler
        .send(SetBatchPaused {
            id: id.clone(),
            paused: false,
        })
        .await?;
    state.supervisor.do_send(WatchBatch::changed(id.clone()));
    Ok(HttpResponse::Ok().json(control_view(&state, &id).await?))
}

/// `POST /batches/{id}/restart`: failed and cancelled tasks run again (same ids).
async fn restart(
    state: Data,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = batch_id(&path)?;
    let (_, counts) = load(&state, &id).await?;
    if counts.failed + counts.cancelled == 0 {
        return Err(ApiError::new(
            ErrorCode::InvalidTransition,
            "the batch has no failed or cancelled tasks to restart",
        ));
    }
    let b = set_flags(&state, &id, Some(false), Some(false)).await?;
    register(&state, &b);
    let key = id.clone();
    let again = state
        .shared
        .store
        .read(move |c| qb::task_ids(c, &key, &[TaskStatus::Failed, TaskStatus::Cancelled]))
        .await?;
    let by = caller(&req);
    for tid in again {
        super::tasks_control::restart(&state, tid, &by).await?;
    }
    state.supervisor.do_send(WatchBatch::changed(id.clone()));
    Ok(HttpResponse::Ok().json(control_view(&state, &id).await?))
}
