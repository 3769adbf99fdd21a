//! Pure scheduling policy: which pending task runs next and on which unit, and why the others
//! wait. No actix, no diesel: the Scheduler actor feeds it facts and carries out its decisions.
//!
//! Every pending task sits behind exactly one gate: held (`autostart: false`), waiting on
//! dependencies, waiting on a timer (`run_at` or a retry delay), ready, or parked. A ready task
//! that cannot start because its mutex is held, its type or batch is at its limit, or no unit
//! can take it is *parked* in a lot for that reason and only comes back when that reason
//! clears, so each decision costs O(log n) however long the queue is.

pub mod queue;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

pub use queue::{Ordering, ReadyQueue, Strategy};

use crate::domain::{Millis, TaskId, WaitingOn};

pub type UnitId = String;

/// The knobs of the policy (a slice of the system configuration).
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub strategy: Strategy,
    pub max_parallel: usize,
    pub type_limits: BTreeMap<String, usize>,
    pub ageing_ms: i64,
    pub queue_enabled: bool,
}

/// What the scheduler knows of a pending task.
#[derive(Clone, Debug)]
pub struct Pending {
    pub id: TaskId,
    pub task_type: String,
    pub priority: i32,
    pub mutex: Option<String>,
    pub batch: Option<String>,
    /// Fairness group: batch id, else submitter.
    pub group: String,
    pub labels: BTreeMap<String, String>,
    pub held: bool,
    /// Dependencies not yet known to have succeeded.
    pub wait_for: Vec<TaskId>,
    /// Not before this time: `run_at` or the end of a retry delay.
    pub not_before: Option<(Millis, WaitingOn)>,
}

/// A unit as the scheduler sees it.
#[derive(Clone, Debug)]
pub struct UnitSlot {
    pub id: UnitId,
    /// The task types it takes.
    pub types: BTreeSet<String>,
    pub labels: BTreeMap<String, String>,
    pub capacity: usize,
    pub load: usize,
    /// False while draining or offline.
    pub accepting: bool,
}

impl UnitSlot {
    fn takes(&self, task_type: &str, labels: &BTreeMap<String, String>) -> bool {
        self.accepting
            && self.types.contains(task_type)
            && labels.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }
}

/// What a running or paused task holds.
#[derive(Clone, Debug)]
pub struct Active {
    pub task_type: String,
    pub mutex: Option<String>,
    pub batch: Option<String>,
    pub unit: Option<UnitId>,
}

/// A decision: start this task on this unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Dispatch {
    pub id: TaskId,
    pub unit: UnitId,
}

/// Why a pending task is not running, for people.
#[derive(Clone, Debug, PartialEq)]
pub struct Waiting {
    pub on: WaitingOn,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Park {
    Mutex(String),
    TypeLimit(String),
    BatchLimit(String),
    BatchPaused(String),
    NoUnit(String),
    /// The task's previous run (cancelled, then restarted at once) has not stopped yet.
    Stopping(TaskId),
}

#[derive(Clone, Debug, PartialEq)]
enum Gate {
    Held,
    Deps(HashSet<TaskId>),
    Timer(Millis, WaitingOn),
    Ready,
    Parked(Park),
}

struct Entry {
    task: Pending,
    ordering: Ordering,
    gate: Gate,
}

/// The most "tasks ahead" counted for an explanation.
const AHEAD_CAP: usize = 100_000;

pub struct Scheduler {
    limits: Limits,
    pending: HashMap<TaskId, Entry>,
    ready: ReadyQueue,
    lots: HashMap<Park, BTreeMap<queue::Key, TaskId>>,
    timers: BTreeSet<(Millis, TaskId)>,
    dependents: HashMap<TaskId, Vec<TaskId>>,
    active: HashMap<TaskId, Active>,
    mutex_holders: HashMap<String, TaskId>,
    type_running: HashMap<String, usize>,
    batch_running: HashMap<String, usize>,
    batch_limits: HashMap<String, usize>,
    paused_batches: HashSet<String>,
    units: BTreeMap<UnitId, UnitSlot>,
    admission_block: Option<String>,
    seq: u64,
}

mod ops;

impl Scheduler {
    pub fn new(limits: Limits) -> Self {
        Scheduler {
            ready: ReadyQueue::new(limits.strategy, limits.ageing_ms),
            limits,
            pending: HashMap::new(),
            lots: HashMap::new(),
            timers: BTreeSet::new(),
            dependents: HashMap::new(),
            active: HashMap::new(),
            mutex_holders: HashMap::new(),
            type_running: HashMap::new(),
            batch_running: HashMap::new(),
            batch_limits: HashMap::new(),
            paused_batches: HashSet::new(),
            units: BTreeMap::new(),
            admission_block: None,
            seq: 0,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Pending tasks known (behind any gate).
    pub fn queued(&self) -> usize {
        self.pending.len()
    }

    /// Tasks ready and waiting only for a slot.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Running and paused tasks.
    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    pub fn is_pending(&self, id: TaskId) -> bool {
        self.pending.contains_key(&id)
    }

    pub fn is_active(&self, id: TaskId) -> bool {
        self.active.contains_key(&id)
    }

    pub fn units(&self) -> impl Iterator<Item = &UnitSlot> {
        self.units.values()
    }

    /// The time of the earliest timer, for the actor to wake up then.
    pub fn next_wakeup(&self) -> Option<Millis> {
        self.timers.iter().next().map(|(t, _)| *t)
    }

    /// Sets or clears the admission-control block (CPU or memory above its threshold).
    pub fn set_admission_block(&mut self, reason: Option<String>) {
        self.admission_block = reason;
    }

    /// Per-batch bound on running tasks (`None` removes it).
    pub fn set_batch_limit(&mut self, batch: &str, limit: Option<usize>) {
        match limit {
            Some(n) => {
                self.batch_limits.insert(batch.to_string(), n.max(1));
            }
            None => {
                self.batch_limits.remove(batch);
            }
        }
        self.unpark_all(&Park::BatchLimit(batch.to_string()));
    }

    /// Holds (or releases) the pending tasks of a batch.
    pub fn set_batch_paused(&mut self, batch: &str, paused: bool) {
        if paused {
            self.paused_batches.insert(batch.to_string());
        } else if self.paused_batches.remove(batch) {
            self.unpark_all(&Park::BatchPaused(batch.to_string()));
        }
    }

    /// Forgets a finished batch's limits.
    pub fn forget_batch(&mut self, batch: &str) {
        self.batch_limits.remove(batch);
        self.paused_batches.remove(batch);
    }

    /// Applies new limits; a strategy change re-keys the ready queue.
    pub fn set_limits(&mut self, limits: Limits) {
        let rekey =
            limits.strategy != self.limits.strategy || limits.ageing_ms != self.limits.ageing_ms;
        self.limits = limits;
        if rekey {
            let pending = &self.pending;
            self.ready
                .rebuild(self.limits.strategy, self.limits.ageing_ms, |id| {
                    pending.get(&id).map(|e| e.ordering.clone())
                });
            let lots: Vec<Park> = self.lots.keys().cloned().collect();
            for park in lots {
                self.unpark_all(&park);
            }
        }
        let type_lots: Vec<Park> = self
            .lots
            .keys()
            .filter(|p| matches!(p, Park::TypeLimit(_)))
            .cloned()
            .collect();
        for park in type_lots {
            self.unpark_all(&park);
        }
    }

    /// Registers or replaces a unit (its load is the active tasks it holds); parked work it
    /// can take comes back.
    pub fn add_unit(&mut self, mut slot: UnitSlot) {
        slot.load = self
            .active
            .values()
            .filter(|a| a.unit.as_deref() == Some(slot.id.as_str()))
            .count();
        let types = slot.types.clone();
        self.units.insert(slot.id.clone(), slot);
        for t in types {
            self.unpark_all(&Park::NoUnit(t));
        }
    }

    /// Stops new work going to a unit (drain, offline) or lets it take work again.
    pub fn set_unit_accepting(&mut self, id: &str, accepting: bool) {
        let types = match self.units.get_mut(id) {
            Some(u) => {
                u.accepting = accepting;
                u.types.clone()
            }
            None => return,
        };
        if accepting {
            for t in types {
                self.unpark_all(&Park::NoUnit(t));
            }
        }
    }

    /// Forgets a unit; returns the active tasks that were on it (now without a unit).
    pub fn remove_unit(&mut self, id: &str) -> Vec<TaskId> {
        self.units.remove(id);
        let mut orphans = Vec::new();
        for (tid, a) in self.active.iter_mut() {
            if a.unit.as_deref() == Some(id) {
                a.unit = None;
                orphans.push(*tid);
            }
        }
        orphans
    }

    /// The least loaded unit that takes this type and these labels and has room.
    fn pick_unit(&self, task_type: &str, labels: &BTreeMap<String, String>) -> Option<UnitId> {
        self.units
            .values()
            .filter(|u| u.takes(task_type, labels) && u.load < u.capacity)
            .min_by(|a, b| {
                let ra = a.load as f64 / a.capacity.max(1) as f64;
                let rb = b.load as f64 / b.capacity.max(1) as f64;
                ra.total_cmp(&rb)
                    .then(a.load.cmp(&b.load))
                    .then(a.id.cmp(&b.id))
            })
            .map(|u| u.id.clone())
    }

    /// Whether any unit at all takes this type and labels (busy or not).
    pub fn any_unit_takes(&self, task_type: &str, labels: &BTreeMap<String, String>) -> bool {
        self.units.values().any(|u| u.takes(task_type, labels))
    }
}

#[cfg(test)]
mod tests;
