//! The actor tree.
//!
//! ```text
//!                 HTTP handlers (api/*)
//!                  |  Route / Snapshot        | Enqueue / PendingCommand / Explain
//!                  v                          v
//!            +------------+  RunTask   +----------------+
//!            | Supervisor | <--------- | SchedulerActor |  (ready queue, limits, mutexes,
//!            +------------+            +----------------+   units' load; pure core in
//!              | owns (Supervised)        ^     ^            `crate::scheduler`)
//!              v                          |     | TaskEnded / AcquireUnit
//!         TaskActor (one per running      |     |
//!         or paused task) ----------------+-----+
//!              | Start / Pause / Resume / Cancel / GetStatus
//!              v
//!         execution units: LocalUnit (in-process built-in types), RemoteUnit proxies
//!              | UnitReport (progress, logs, checkpoints, Finished, Lost)
//!              +--------------------------> back to the TaskActor
//!
//!   UnitManager --RegisterUnit / SetUnitAccepting / UnitGone--> SchedulerActor
//!        | owns one RemoteUnit per remote unit (worker over WebSocket, or HTTP-style unit)
//! ```
//!
//! - The **SchedulerActor** owns every pending task (as a queue entry, not an actor) and
//!   decides what starts where; it cancels pending tasks and cascades failed dependencies.
//! - The **Supervisor** owns one **TaskActor** per running or paused task, starts them on
//!   `RunTask`, rebuilds them from the database at start-up, and routes control commands.
//! - A **TaskActor** holds the hot copy of its task, drives its unit, persists every change
//!   (through the store's group-commit writer) and publishes events; when its task ends it
//!   tells the scheduler (`TaskEnded`) so the slot, mutex and unit load free up.
//! - Units are reached only through the messages of `units.rs`.
//! - The **UnitManager** keeps the unit registry (the `units` table), watches heartbeats and
//!   tells the scheduler which units take work. It owns one **RemoteUnit** per registered
//!   remote unit; a RemoteUnit turns unit messages into the wire protocol and back, and
//!   reports work `Lost` when its unit goes OFFLINE or is removed, so the TaskActor carries on
//!   elsewhere from the checkpoint. After a server restart a TaskActor whose work was on a
//!   remote unit asks the UnitManager to `Reclaim` it when the unit comes back.
//! - The **ScheduleActor** (owned by the application, beside the scheduler) keeps a next-fire
//!   timeline of every enabled schedule and one timer for its earliest slot; when a slot is
//!   due it records the fire in `schedule_runs` (one row per slot, UNIQUE) and creates the
//!   template's task or batch through the same path as the API, which `Enqueue`s it with the
//!   SchedulerActor. Handlers send it `Reload { id }` after every change; start-up sends
//!   `LoadAll`, which applies the misfire policies to slots missed while steward was down.
//!
//! ```text
//!   schedules API --Reload--> ScheduleActor --(timer: Due)--> fire_slot --Enqueue--> SchedulerActor
//! ```

pub mod batch;
pub mod commander;
pub mod remote_unit;
pub mod schedule;
pub mod scheduler;
pub mod supervisor;
pub mod task;
pub mod unit_manager;
pub mod units;

use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::config::Config;
use crate::domain::{Task, TaskStatus};
use crate::error::ApiError;
use crate::events::EventBus;
use crate::store::Store;
use crate::units::{Registry, UnitEnv};

/// What every actor shares.
#[derive(Clone)]
pub struct Shared {
    pub store: Store,
    pub events: EventBus,
    pub registry: Arc<Registry>,
    /// The configuration in force, swapped whole when it changes (a read is a pointer copy).
    pub config: Arc<RwLock<Arc<Config>>>,
    pub env: Arc<UnitEnv>,
    /// Recent typical durations per task type (the ETA's history half), so that starting a
    /// task does not cost a query.
    pub typical: Arc<TypicalDurations>,
    /// The directory of task actors (how many there are spreads the progress writes).
    pub active: supervisor::ActiveTasks,
    /// The registry of execution units.
    pub units: actix::Addr<unit_manager::UnitManager>,
    /// Task types served by registered remote units.
    pub remote_types: unit_manager::RemoteTypes,
    /// steward's own notable events, searchable at `/api/v1/logs`.
    pub syslog: crate::syslog::SystemLog,
}

/// A short-lived cache of the mean duration of recent successes, by task type. One read per
/// type is in flight at a time: a thousand tasks of a type starting together ask once, and
/// the rest pick the answer up from here when it lands.
#[derive(Default)]
pub struct TypicalDurations {
    by_type: std::sync::Mutex<std::collections::HashMap<String, TypicalEntry>>,
}

enum TypicalEntry {
    Known(std::time::Instant, Option<f64>),
    Reading(std::time::Instant),
}

/// What a task should do about its type's typical duration.
#[derive(Debug, PartialEq)]
pub enum Typical {
    /// The cached value (`None`: no history).
    Known(Option<f64>),
    /// Nobody is reading it: this caller reads it, then calls [`TypicalDurations::put`].
    Read,
    /// Another task is reading it: look again later.
    Wait,
}

impl TypicalDurations {
    /// How long a cached value is used before it is read again.
    const FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(10);
    /// A read not answered within this is presumed lost, and another caller reads.
    const READ_FOR: std::time::Duration = std::time::Duration::from_secs(5);

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, TypicalEntry>> {
        self.by_type.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached value if fresh; otherwise claims the read unless someone else holds it.
    pub fn claim(&self, task_type: &str) -> Typical {
        let mut map = self.lock();
        match map.get(task_type) {
            Some(TypicalEntry::Known(at, v)) if at.elapsed() < Self::FRESH_FOR => {
                Typical::Known(*v)
            }
            Some(TypicalEntry::Reading(at)) if at.elapsed() < Self::READ_FOR => Typical::Wait,
            _ => {
                map.insert(
                    task_type.to_string(),
                    TypicalEntry::Reading(std::time::Instant::now()),
                );
                Typical::Read
            }
        }
    }

    pub fn put(&self, task_type: String, value: Option<f64>) {
        self.lock().insert(
            task_type,
            TypicalEntry::Known(std::time::Instant::now(), value),
        );
    }

    /// The claimed read failed: the next caller tries again.
    pub fn release(&self, task_type: &str) {
        let mut map = self.lock();
        if matches!(map.get(task_type), Some(TypicalEntry::Reading(_))) {
            map.remove(task_type);
        }
    }
}

impl Shared {
    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        match self.config.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// A control command on one task, from the API or a unit callback.
#[derive(Clone, Debug)]
pub enum TaskCommand {
    Start,
    Pause,
    Resume,
    Cancel,
    Patch {
        priority: Option<i32>,
        name: Option<String>,
        tags: Option<Vec<String>>,
    },
    Progress {
        progress: Option<f64>,
        stage: Option<String>,
        message: Option<String>,
        checkpoint: Option<Value>,
        /// From a unit: the run it reports for (a stale run is refused).
        execution_id: Option<uuid::Uuid>,
    },
    /// A unit's callback (seed 004 §8.2): the final status with result or error.
    Callback {
        status: TaskStatus,
        result: Option<Value>,
        error: Option<String>,
        /// The run it reports for (a stale run is refused).
        execution_id: Option<uuid::Uuid>,
    },
}

/// Whether an actor handled a command or the task is not its to handle.
#[derive(Debug)]
pub enum Routed {
    Done(Result<Box<Task>, ApiError>),
    NotHere,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_read_of_a_typical_duration_is_in_flight_per_type() {
        let t = TypicalDurations::default();
        assert_eq!(t.claim("sleep"), Typical::Read);
        assert_eq!(t.claim("sleep"), Typical::Wait);
        assert_eq!(t.claim("noop"), Typical::Read, "each type has its own read");
        t.put("sleep".into(), Some(1.5));
        assert_eq!(t.claim("sleep"), Typical::Known(Some(1.5)));
        // A failed read hands the claim to the next caller; a known value is kept.
        t.release("noop");
        assert_eq!(t.claim("noop"), Typical::Read);
        t.release("sleep");
        assert_eq!(t.claim("sleep"), Typical::Known(Some(1.5)));
    }
}
