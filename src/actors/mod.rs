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
    pub config: Arc<RwLock<Config>>,
    pub env: Arc<UnitEnv>,
    /// Recent typical durations per task type (the ETA's history half), so that starting a
    /// task does not cost a query.
    pub typical: Arc<TypicalDurations>,
    /// The registry of execution units.
    pub units: actix::Addr<unit_manager::UnitManager>,
    /// Task types served by registered remote units.
    pub remote_types: unit_manager::RemoteTypes,
    /// steward's own notable events, searchable at `/api/v1/logs`.
    pub syslog: crate::syslog::SystemLog,
}

/// A short-lived cache of the mean duration of recent successes, by task type.
#[derive(Default)]
pub struct TypicalDurations {
    by_type: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Option<f64>)>>,
}

impl TypicalDurations {
    /// How long a cached value is used before it is read again.
    const FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(10);

    pub fn get(&self, task_type: &str) -> Option<Option<f64>> {
        let map = self.by_type.lock().ok()?;
        map.get(task_type)
            .filter(|(at, _)| at.elapsed() < Self::FRESH_FOR)
            .map(|(_, v)| *v)
    }

    pub fn put(&self, task_type: String, value: Option<f64>) {
        if let Ok(mut map) = self.by_type.lock() {
            map.insert(task_type, (std::time::Instant::now(), value));
        }
    }
}

impl Shared {
    /// A copy of the configuration in force.
    pub fn config(&self) -> Config {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
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
