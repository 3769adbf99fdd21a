//! The task state machine of SPEC §2.1: exactly these transitions, everything else refused.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a task is in its life.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Pending,
    Running,
    Paused,
    Success,
    Failed,
    Cancelled,
}

/// A transition the state machine does not allow.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("a {from} task cannot become {to}")]
pub struct InvalidTransition {
    pub from: TaskStatus,
    pub to: TaskStatus,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Paused,
        TaskStatus::Success,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Paused => "paused",
            TaskStatus::Success => "success",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Success, failed and cancelled: nothing runs, and the task may be deleted.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Success | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }

    /// Running or paused: a TaskActor owns the task and a unit holds (or held) its work.
    pub fn is_active(self) -> bool {
        matches!(self, TaskStatus::Running | TaskStatus::Paused)
    }

    /// The statuses this one may move to.
    pub fn successors(self) -> &'static [TaskStatus] {
        use TaskStatus::*;
        match self {
            Pending => &[Running, Cancelled],
            Running => &[Success, Failed, Paused, Cancelled],
            Paused => &[Running, Cancelled],
            Failed => &[Pending],
            Cancelled => &[Pending],
            Success => &[],
        }
    }

    /// Ok when `self -> to` is one of the allowed transitions.
    pub fn check(self, to: TaskStatus) -> Result<(), InvalidTransition> {
        if self.successors().contains(&to) {
            Ok(())
        } else {
            Err(InvalidTransition { from: self, to })
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskStatus::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .or_else(|| {
                s.eq_ignore_ascii_case("completed")
                    .then_some(TaskStatus::Success)
            })
            .ok_or_else(|| format!("unknown status '{s}'"))
    }
}

#[cfg(test)]
mod tests {
    use super::TaskStatus::{self, *};

    const ALLOWED: [(TaskStatus, TaskStatus); 10] = [
        (Pending, Running),
        (Pending, Cancelled),
        (Running, Success),
        (Running, Failed),
        (Running, Paused),
        (Running, Cancelled),
        (Paused, Running),
        (Paused, Cancelled),
        (Failed, Pending),
        (Cancelled, Pending),
    ];

    fn allowed(from: TaskStatus, to: TaskStatus) -> bool {
        ALLOWED.contains(&(from, to))
    }

    #[test]
    fn every_allowed_transition_is_accepted_and_every_other_refused() {
        for from in TaskStatus::ALL {
            for to in TaskStatus::ALL {
                let result = from.check(to);
                assert_eq!(result.is_ok(), allowed(from, to), "{from} -> {to}");
                if let Err(e) = result {
                    assert_eq!((e.from, e.to), (from, to));
                }
            }
        }
    }

    #[test]
    fn success_is_the_only_status_without_successors() {
        for st in TaskStatus::ALL {
            assert_eq!(st.successors().is_empty(), st == Success, "{st}");
        }
    }

    #[test]
    fn status_names_round_trip_case_insensitively() {
        for st in TaskStatus::ALL {
            assert_eq!(st.as_str().to_uppercase().parse::<TaskStatus>(), Ok(st));
        }
        assert_eq!("COMPLETED".parse::<TaskStatus>(), Ok(Success));
        assert!("sky".parse::<TaskStatus>().is_err());
    }
}
