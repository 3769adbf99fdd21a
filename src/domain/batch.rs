//! Batches (SPEC §3): a set of tasks created together, run in parallel or in sequence, with a
//! failure policy, and an aggregate status derived from its tasks' statuses.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;

use super::task::text_enum;
use super::{Millis, TaskStatus};

text_enum!(
    /// The aggregate status of a batch.
    BatchStatus { Pending => "pending", Running => "running", Paused => "paused", Success => "success", Failed => "failed", Cancelled => "cancelled" }
);
text_enum!(
    /// How a batch's tasks run.
    BatchMode { Parallel => "parallel", Sequential => "sequential" }
);
text_enum!(
    /// What a task failing for good does to the rest of its batch.
    OnFailure { Continue => "continue", CancelRemaining => "cancel_remaining" }
);

impl BatchStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            BatchStatus::Success | BatchStatus::Failed | BatchStatus::Cancelled
        )
    }
}

/// A stored batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub status: BatchStatus,
    pub priority: i32,
    pub mode: BatchMode,
    pub max_parallel: Option<i32>,
    pub on_failure: OnFailure,
    pub depends_on: Vec<String>,
    pub callback_url: Option<String>,
    pub tags: Vec<String>,
    pub created_by: Option<String>,
    pub task_count: i32,
    pub paused: bool,
    pub cancelled: bool,
    pub version: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
}

impl Batch {
    /// The bound on its running tasks: 1 in sequence, else its `max_parallel`.
    pub fn parallel_limit(&self) -> Option<usize> {
        match self.mode {
            BatchMode::Sequential => Some(1),
            BatchMode::Parallel => self.max_parallel.map(|n| n.max(1) as usize),
        }
    }
}

/// How many of a batch's tasks are in each status, and their summed progress.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Counts {
    pub pending: i64,
    pub running: i64,
    pub paused: i64,
    pub success: i64,
    pub failed: i64,
    pub cancelled: i64,
    #[serde(skip)]
    pub progress_sum: f64,
}

impl Counts {
    pub fn add(&mut self, status: TaskStatus, n: i64, progress_sum: f64) {
        match status {
            TaskStatus::Pending => self.pending += n,
            TaskStatus::Running => self.running += n,
            TaskStatus::Paused => self.paused += n,
            TaskStatus::Success => self.success += n,
            TaskStatus::Failed => self.failed += n,
            TaskStatus::Cancelled => self.cancelled += n,
        }
        self.progress_sum += progress_sum;
    }

    pub fn total(&self) -> i64 {
        self.pending + self.running + self.paused + self.success + self.failed + self.cancelled
    }

    pub fn live(&self) -> i64 {
        self.pending + self.running + self.paused
    }

    /// Mean progress of the tasks, 0–100.
    pub fn progress(&self) -> f64 {
        if self.total() == 0 {
            0.0
        } else {
            (self.progress_sum / self.total() as f64).clamp(0.0, 100.0)
        }
    }

    /// The batch status these counts imply: live work makes it pending, running or paused;
    /// when nothing is live it is success if every task succeeded, failed if any failed,
    /// cancelled otherwise.
    pub fn status(&self, paused: bool, cancelled: bool) -> BatchStatus {
        if self.live() > 0 {
            if paused {
                BatchStatus::Paused
            } else if self.running + self.paused + self.success + self.failed + self.cancelled > 0 {
                BatchStatus::Running
            } else {
                BatchStatus::Pending
            }
        } else if cancelled {
            BatchStatus::Cancelled
        } else if self.total() > 0 && self.success == self.total() {
            BatchStatus::Success
        } else if self.failed > 0 {
            BatchStatus::Failed
        } else if self.total() == 0 {
            BatchStatus::Success
        } else {
            BatchStatus::Cancelled
        }
    }
}

/// A problem with the dependency graph of a batch's tasks.
#[derive(Debug, PartialEq)]
pub enum DagError {
    DuplicateKey(usize, String),
    UnknownKey {
        task: usize,
        entry: usize,
        key: String,
    },
    Cycle(Vec<String>),
}

/// Resolves each task's `depends_on` keys to task indexes and refuses cycles. `keys[i]` is the
/// optional key of task i; `deps[i]` its local dependency keys. Returns, per task, the indexes
/// it waits for.
pub fn resolve_dag(
    keys: &[Option<String>],
    deps: &[Vec<String>],
) -> Result<Vec<Vec<usize>>, DagError> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        if let Some(k) = k {
            if index.insert(k.as_str(), i).is_some() {
                return Err(DagError::DuplicateKey(i, k.clone()));
            }
        }
    }
    let mut edges = vec![Vec::new(); keys.len()];
    for (i, list) in deps.iter().enumerate() {
        for (j, key) in list.iter().enumerate() {
            let &target = index
                .get(key.as_str())
                .ok_or_else(|| DagError::UnknownKey {
                    task: i,
                    entry: j,
                    key: key.clone(),
                })?;
            edges[i].push(target);
        }
    }
    // Kahn's algorithm: whatever is never freed lies on a cycle.
    let mut indegree: Vec<usize> = edges.iter().map(|e| e.len()).collect();
    let mut dependents: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, e) in edges.iter().enumerate() {
        for &t in e {
            dependents.entry(t).or_default().push(i);
        }
    }
    let mut queue: VecDeque<usize> = (0..keys.len()).filter(|i| indegree[*i] == 0).collect();
    let mut seen = 0;
    while let Some(i) = queue.pop_front() {
        seen += 1;
        for &d in dependents.get(&i).map(|v| v.as_slice()).unwrap_or(&[]) {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                queue.push_back(d);
            }
        }
    }
    if seen < keys.len() {
        let stuck: Vec<String> = (0..keys.len())
            .filter(|i| indegree[*i] > 0)
            .map(|i| keys[i].clone().unwrap_or_else(|| format!("#{i}")))
            .collect();
        return Err(DagError::Cycle(stuck));
    }
    Ok(edges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &[&str]) -> Vec<Option<String>> {
        s.iter().map(|x| Some(x.to_string())).collect()
    }

    fn d(s: &[&[&str]]) -> Vec<Vec<String>> {
        s.iter()
            .map(|l| l.iter().map(|x| x.to_string()).collect())
            .collect()
    }

    #[test]
    fn a_dag_resolves_keys_to_indexes() {
        let edges = resolve_dag(&k(&["a", "b", "c"]), &d(&[&[], &["a"], &["a", "b"]])).unwrap();
        assert_eq!(edges, vec![vec![], vec![0], vec![0, 1]]);
    }

    #[test]
    fn cycles_unknown_keys_and_duplicates_are_refused() {
        assert!(matches!(
            resolve_dag(&k(&["a", "b"]), &d(&[&["b"], &["a"]])),
            Err(DagError::Cycle(_))
        ));
        assert!(matches!(
            resolve_dag(&k(&["a"]), &d(&[&["a"]])),
            Err(DagError::Cycle(_))
        ));
        assert_eq!(
            resolve_dag(&k(&["a"]), &d(&[&["zz"]])),
            Err(DagError::UnknownKey {
                task: 0,
                entry: 0,
                key: "zz".into()
            })
        );
        assert_eq!(
            resolve_dag(&k(&["a", "a"]), &d(&[&[], &[]])),
            Err(DagError::DuplicateKey(1, "a".into()))
        );
    }

    #[test]
    fn batch_status_follows_its_tasks() {
        let mut c = Counts::default();
        c.add(TaskStatus::Pending, 3, 0.0);
        assert_eq!(c.status(false, false), BatchStatus::Pending);
        assert_eq!(c.status(true, false), BatchStatus::Paused);
        c.add(TaskStatus::Running, 1, 50.0);
        assert_eq!(c.status(false, false), BatchStatus::Running);
        let mut done = Counts::default();
        done.add(TaskStatus::Success, 4, 400.0);
        assert_eq!(done.status(false, false), BatchStatus::Success);
        assert_eq!(done.progress(), 100.0);
        done.add(TaskStatus::Failed, 1, 10.0);
        assert_eq!(done.status(false, false), BatchStatus::Failed);
        let mut cancelled = Counts::default();
        cancelled.add(TaskStatus::Cancelled, 2, 0.0);
        cancelled.add(TaskStatus::Success, 1, 100.0);
        assert_eq!(cancelled.status(false, true), BatchStatus::Cancelled);
    }
}
