//! The scheduler's operations: moving tasks between gates, dispatching, releasing, explaining.

use std::collections::HashSet;

use super::{Active, Dispatch, Entry, Gate, Park, Pending, Scheduler, UnitId, Waiting, AHEAD_CAP};
use crate::domain::{Millis, TaskId, WaitingOn};
use crate::scheduler::Ordering;

impl Scheduler {
    /// Adds a pending task behind the right gate. Dependencies listed in `wait_for` are
    /// waited on until [`Scheduler::dependency_finished`] reports them.
    pub fn enqueue(&mut self, task: Pending, now: Millis) {
        self.remove(task.id);
        self.seq += 1;
        let ordering = Ordering {
            priority: task.priority,
            ready_since: now,
            seq: self.seq,
            group: task.group.clone(),
        };
        let id = task.id;
        let deps: HashSet<TaskId> = task.wait_for.iter().copied().filter(|d| *d != id).collect();
        for d in &deps {
            self.dependents.entry(*d).or_default().push(id);
        }
        let gate = if task.held {
            Gate::Held
        } else {
            Gate::Deps(deps)
        };
        self.pending.insert(
            id,
            Entry {
                task,
                ordering,
                gate,
            },
        );
        if !matches!(self.pending[&id].gate, Gate::Held) {
            self.advance(id, now);
        }
    }

    /// Moves a task through deps -> timer -> ready as far as it can go.
    fn advance(&mut self, id: TaskId, now: Millis) {
        let Some(entry) = self.pending.get_mut(&id) else {
            return;
        };
        if let Gate::Deps(left) = &entry.gate {
            if !left.is_empty() {
                return;
            }
        }
        if let Some((at, why)) = entry.task.not_before {
            if at > now && !matches!(entry.gate, Gate::Timer(..)) {
                entry.gate = Gate::Timer(at, why);
                self.timers.insert((at, id));
                return;
            }
        }
        entry.gate = Gate::Ready;
        entry.ordering.ready_since = entry
            .ordering
            .ready_since
            .max(entry.task.not_before.map(|(at, _)| at).unwrap_or(0));
        let ordering = entry.ordering.clone();
        self.ready.push(id, &ordering);
    }

    /// Releases a held task (`POST .../start`). False when it was not held.
    pub fn start(&mut self, id: TaskId, now: Millis) -> bool {
        match self.pending.get_mut(&id) {
            Some(e) if e.gate == Gate::Held => {
                e.task.held = false;
                let deps: HashSet<TaskId> = e.task.wait_for.iter().copied().collect();
                e.gate = Gate::Deps(deps);
                e.ordering.ready_since = now;
                self.advance(id, now);
                true
            }
            _ => false,
        }
    }

    /// Forgets a pending task (cancelled or deleted). False when it was not pending here.
    pub fn remove(&mut self, id: TaskId) -> bool {
        let Some(entry) = self.pending.remove(&id) else {
            return false;
        };
        match entry.gate {
            Gate::Ready => {
                self.ready.remove(id);
            }
            Gate::Timer(at, _) => {
                self.timers.remove(&(at, id));
            }
            Gate::Parked(park) => {
                if let Some(lot) = self.lots.get_mut(&park) {
                    lot.retain(|_, v| *v != id);
                    if lot.is_empty() {
                        self.lots.remove(&park);
                    }
                }
            }
            Gate::Held | Gate::Deps(_) => {}
        }
        for d in &entry.task.wait_for {
            if let Some(list) = self.dependents.get_mut(d) {
                list.retain(|x| *x != id);
                if list.is_empty() {
                    self.dependents.remove(d);
                }
            }
        }
        true
    }

    /// The ids of pending tasks of a batch (any gate).
    pub fn pending_of_batch(&self, batch: &str) -> Vec<TaskId> {
        self.pending
            .iter()
            .filter(|(_, e)| e.task.batch.as_deref() == Some(batch))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Changes a pending task's priority, re-ordering it.
    pub fn reprioritize(&mut self, id: TaskId, priority: i32) -> bool {
        let Some(entry) = self.pending.get_mut(&id) else {
            return false;
        };
        entry.task.priority = priority;
        entry.ordering.priority = priority;
        let ordering = entry.ordering.clone();
        match entry.gate.clone() {
            Gate::Ready => self.ready.push(id, &ordering),
            Gate::Parked(park) => {
                let key = self.ready.strategy().key(&ordering, self.limits.ageing_ms);
                if let Some(lot) = self.lots.get_mut(&park) {
                    lot.retain(|_, v| *v != id);
                    lot.insert(key, id);
                }
            }
            _ => {}
        }
        true
    }

    /// A task this scheduler may know dependents of has ended. On success its dependents
    /// stop waiting for it; on a final failure or cancellation the dependents are returned,
    /// removed, for the caller to cancel (which reports them here in turn).
    pub fn dependency_finished(
        &mut self,
        dep: TaskId,
        succeeded: bool,
        now: Millis,
    ) -> Vec<TaskId> {
        let Some(waiting) = self.dependents.remove(&dep) else {
            return Vec::new();
        };
        let mut doomed = Vec::new();
        for id in waiting {
            if succeeded {
                if let Some(Entry {
                    gate: Gate::Deps(left),
                    ..
                }) = self.pending.get_mut(&id)
                {
                    left.remove(&dep);
                    if left.is_empty() {
                        self.advance(id, now);
                    }
                } else if let Some(e) = self.pending.get_mut(&id) {
                    e.task.wait_for.retain(|d| *d != dep);
                }
            } else if self.remove(id) {
                doomed.push(id);
            }
        }
        doomed
    }

    /// Moves tasks whose timer has come due to the ready queue.
    pub fn fire_timers(&mut self, now: Millis) {
        while let Some(&(at, id)) = self.timers.iter().next() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, id));
            if let Some(e) = self.pending.get_mut(&id) {
                e.task.not_before = None;
                e.gate = Gate::Deps(HashSet::new());
                self.advance(id, now);
            }
        }
    }

    fn park(&mut self, id: TaskId, park: Park) {
        if let Some(e) = self.pending.get_mut(&id) {
            let key = self
                .ready
                .strategy()
                .key(&e.ordering, self.limits.ageing_ms);
            e.gate = Gate::Parked(park.clone());
            self.lots.entry(park).or_default().insert(key, id);
        }
    }

    fn unpark(&mut self, park: &Park, count: usize) {
        for _ in 0..count {
            let Some(lot) = self.lots.get_mut(park) else {
                return;
            };
            let Some((_, id)) = lot.pop_first() else {
                self.lots.remove(park);
                return;
            };
            if lot.is_empty() {
                self.lots.remove(park);
            }
            if let Some(e) = self.pending.get_mut(&id) {
                e.gate = Gate::Ready;
                let ordering = e.ordering.clone();
                self.ready.push(id, &ordering);
            }
        }
    }

    pub(super) fn unpark_all(&mut self, park: &Park) {
        self.unpark(park, usize::MAX);
    }

    /// The next task to start and its unit, if one may start now.
    pub fn next_dispatch(&mut self) -> Option<Dispatch> {
        if !self.limits.queue_enabled
            || self.admission_block.is_some()
            || self.active.len() >= self.limits.max_parallel
        {
            return None;
        }
        while let Some(id) = self.ready.peek() {
            let entry = &self.pending[&id];
            let task = &entry.task;
            let blocked = if self.active.contains_key(&id) {
                Some(Park::Stopping(id))
            } else if let Some(b) = task
                .batch
                .as_ref()
                .filter(|b| self.paused_batches.contains(*b))
            {
                Some(Park::BatchPaused(b.clone()))
            } else if let Some(m) = task
                .mutex
                .as_ref()
                .filter(|m| self.mutex_holders.contains_key(*m))
            {
                Some(Park::Mutex(m.clone()))
            } else if self
                .limits
                .type_limits
                .get(&task.task_type)
                .is_some_and(|lim| {
                    self.type_running.get(&task.task_type).copied().unwrap_or(0) >= *lim
                })
            {
                Some(Park::TypeLimit(task.task_type.clone()))
            } else {
                task.batch
                    .as_ref()
                    .filter(|b| {
                        self.batch_limits.get(*b).is_some_and(|lim| {
                            self.batch_running.get(*b).copied().unwrap_or(0) >= *lim
                        })
                    })
                    .map(|b| Park::BatchLimit(b.clone()))
            };
            if let Some(park) = blocked {
                self.ready.pop(false);
                self.park(id, park);
                continue;
            }
            let Some(unit) = self.pick_unit(&task.task_type, &task.labels) else {
                let park = Park::NoUnit(task.task_type.clone());
                self.ready.pop(false);
                self.park(id, park);
                continue;
            };
            self.ready.pop(true);
            let entry = self.pending.remove(&id)?;
            let t = entry.task;
            self.activate(
                id,
                Active {
                    task_type: t.task_type,
                    mutex: t.mutex,
                    batch: t.batch,
                    unit: Some(unit.clone()),
                },
            );
            return Some(Dispatch { id, unit });
        }
        None
    }

    /// Records a running or paused task: at start-up for recovered work, and on dispatch.
    pub fn activate(&mut self, id: TaskId, active: Active) {
        if let Some(m) = &active.mutex {
            self.mutex_holders.insert(m.clone(), id);
        }
        *self
            .type_running
            .entry(active.task_type.clone())
            .or_default() += 1;
        if let Some(b) = &active.batch {
            *self.batch_running.entry(b.clone()).or_default() += 1;
        }
        if let Some(u) = active.unit.as_ref().and_then(|u| self.units.get_mut(u)) {
            u.load += 1;
        }
        self.active.insert(id, active);
    }

    /// Gives an active task without a unit (recovered, or its unit went away) the least loaded
    /// unit that takes it, even past its capacity: the work already holds its parallel slot.
    pub fn acquire_unit(
        &mut self,
        id: TaskId,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Option<UnitId> {
        let task_type = self.active.get(&id)?.task_type.clone();
        let unit = self.pick_unit(&task_type, labels).or_else(|| {
            self.units
                .values()
                .filter(|u| u.takes(&task_type, labels))
                .min_by_key(|u| u.load)
                .map(|u| u.id.clone())
        })?;
        self.detach_unit(id);
        if let Some(u) = self.units.get_mut(&unit) {
            u.load += 1;
        }
        if let Some(a) = self.active.get_mut(&id) {
            a.unit = Some(unit.clone());
        }
        Some(unit)
    }

    /// A recovered active task runs on `unit` again (its work survived a restart there).
    /// The unit need not be registered yet: [`Scheduler::add_unit`] counts its tasks.
    pub fn attach_unit(&mut self, id: TaskId, unit: &str) {
        self.detach_unit(id);
        let Some(a) = self.active.get_mut(&id) else {
            return;
        };
        a.unit = Some(unit.to_string());
        if let Some(u) = self.units.get_mut(unit) {
            u.load += 1;
        }
    }

    /// The task no longer occupies its unit (its work was lost with the unit).
    pub fn detach_unit(&mut self, id: TaskId) {
        let Some(unit) = self.active.get_mut(&id).and_then(|a| a.unit.take()) else {
            return;
        };
        self.free_unit_slot(&unit);
    }

    fn free_unit_slot(&mut self, unit: &str) {
        let types = match self.units.get_mut(unit) {
            Some(u) => {
                u.load = u.load.saturating_sub(1);
                u.types.clone()
            }
            None => return,
        };
        for t in types {
            self.unpark(&Park::NoUnit(t), 1);
        }
    }

    /// The batch of a running task.
    pub fn active_batch(&self, id: TaskId) -> Option<String> {
        self.active.get(&id).and_then(|a| a.batch.clone())
    }

    /// An active task has ended: its slot, mutex, type and batch counts and unit load free up.
    pub fn release(&mut self, id: TaskId) -> bool {
        let Some(a) = self.active.remove(&id) else {
            return false;
        };
        if let Some(m) = &a.mutex {
            if self.mutex_holders.get(m) == Some(&id) {
                self.mutex_holders.remove(m);
                self.unpark_all(&Park::Mutex(m.clone()));
            }
        }
        if let Some(n) = self.type_running.get_mut(&a.task_type) {
            *n = n.saturating_sub(1);
            self.unpark(&Park::TypeLimit(a.task_type.clone()), 1);
        }
        if let Some(b) = &a.batch {
            if let Some(n) = self.batch_running.get_mut(b) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.batch_running.remove(b);
                }
            }
            self.unpark(&Park::BatchLimit(b.clone()), 1);
        }
        if let Some(u) = &a.unit {
            self.free_unit_slot(u);
        }
        self.unpark(&Park::Stopping(id), 1);
        true
    }

    /// Why a pending task is not running, in words a person understands.
    pub fn explain(&self, id: TaskId, now: Millis) -> Option<Waiting> {
        let e = self.pending.get(&id)?;
        let w = |on: WaitingOn, detail: String| Some(Waiting { on, detail });
        match &e.gate {
            Gate::Held => w(
                WaitingOn::Start,
                "created with autostart false; waiting for POST /start".into(),
            ),
            Gate::Deps(left) => {
                let mut ids: Vec<String> = left.iter().map(|d| d.to_string()).collect();
                ids.sort();
                w(
                    WaitingOn::Dependencies,
                    format!(
                        "waiting for {} of {} dependencies to succeed: {}",
                        left.len(),
                        e.task.wait_for.len().max(left.len()),
                        ids.join(", ")
                    ),
                )
            }
            Gate::Timer(at, why) => {
                let secs = ((*at - now) as f64 / 1000.0).max(0.0);
                let what = if *why == WaitingOn::RetryDelay {
                    "retry delay"
                } else {
                    "run_at"
                };
                w(
                    *why,
                    format!(
                        "{what}: starts at {} (in {secs:.1}s)",
                        crate::domain::rfc3339(*at)
                    ),
                )
            }
            Gate::Ready | Gate::Parked(_)
                if e.task
                    .batch
                    .as_ref()
                    .is_some_and(|b| self.paused_batches.contains(b)) =>
            {
                w(
                    WaitingOn::QueuePaused,
                    format!(
                        "batch {} is paused",
                        e.task.batch.as_deref().unwrap_or_default()
                    ),
                )
            }
            Gate::Parked(Park::Mutex(m)) => {
                let holder = self
                    .mutex_holders
                    .get(m)
                    .map(|h| format!("task {h}"))
                    .unwrap_or_else(|| "another task".into());
                w(WaitingOn::Mutex, format!("mutex '{m}' is held by {holder}"))
            }
            Gate::Parked(Park::TypeLimit(t)) => w(
                WaitingOn::Capacity,
                format!(
                    "type limit for '{t}' reached: {} of {} running",
                    self.type_running.get(t).copied().unwrap_or(0),
                    self.limits.type_limits.get(t).copied().unwrap_or(0)
                ),
            ),
            Gate::Parked(Park::BatchLimit(b)) => w(
                WaitingOn::Capacity,
                format!(
                    "batch {b} max_parallel reached: {} of {} running",
                    self.batch_running.get(b).copied().unwrap_or(0),
                    self.batch_limits.get(b).copied().unwrap_or(0)
                ),
            ),
            Gate::Parked(Park::BatchPaused(b)) => {
                w(WaitingOn::QueuePaused, format!("batch {b} is paused"))
            }
            Gate::Parked(Park::Stopping(_)) => w(
                WaitingOn::Capacity,
                "its previous run is still stopping".into(),
            ),
            Gate::Parked(Park::NoUnit(t)) => {
                let detail = if self.any_unit_takes(t, &e.task.labels) {
                    format!("every execution unit that serves '{t}' is at capacity")
                } else if e.task.labels.is_empty() {
                    format!("no execution unit serving '{t}' is connected")
                } else {
                    format!(
                        "no execution unit serving '{t}' carries labels {:?}",
                        e.task.labels
                    )
                };
                w(WaitingOn::Capacity, detail)
            }
            Gate::Ready => {
                if !self.limits.queue_enabled {
                    return w(
                        WaitingOn::QueuePaused,
                        "the queue is paused (queue_enabled = false)".into(),
                    );
                }
                let ahead = self.ready.ahead_of(id, AHEAD_CAP).unwrap_or(0);
                let ahead_text = match ahead {
                    0 => "next in line".to_string(),
                    1 => "1 task ahead of this one".to_string(),
                    n if n >= AHEAD_CAP => format!("more than {AHEAD_CAP} tasks ahead of this one"),
                    n => format!("{n} tasks ahead of this one"),
                };
                if let Some(reason) = &self.admission_block {
                    return w(
                        WaitingOn::Capacity,
                        format!("admission paused: {reason}; {ahead_text}"),
                    );
                }
                w(
                    WaitingOn::Capacity,
                    format!(
                        "{} of {} parallel slots busy; {ahead_text}",
                        self.active.len(),
                        self.limits.max_parallel
                    ),
                )
            }
        }
    }
}
