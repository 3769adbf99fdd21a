//! The ready queue: entries ordered by the strategy's key inside fairness groups, groups
//! served round robin. `priority` and `fifo` put everything in one group; `fair` groups by
//! batch (or submitter), so a 10,000-task batch and a 2-task batch alternate.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::domain::task::text_enum;
use crate::domain::TaskId;

text_enum!(
    /// How the ready queue orders work.
    Strategy { Priority => "priority", Fifo => "fifo", Fair => "fair" }
);

/// Ordering key: smaller runs first.
pub type Key = (i64, u64);

/// What the queue needs to know to order one pending task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ordering {
    pub priority: i32,
    /// When the task became ready to run, in ms; drives ageing.
    pub ready_since: i64,
    /// Tie-breaker in arrival order.
    pub seq: u64,
    /// Fairness group: the batch id, else the submitter.
    pub group: String,
}

impl Strategy {
    /// The key under this strategy. With `priority`, one level is worth `ageing_ms` of
    /// waiting: score = priority + waited / ageing, and since "now" is common to every entry,
    /// ordering by `ready_since - priority * ageing_ms` is the same order at any moment, so
    /// the key never needs recomputing as time passes.
    pub fn key(self, o: &Ordering, ageing_ms: i64) -> Key {
        match self {
            Strategy::Priority | Strategy::Fair => (
                o.ready_since
                    .saturating_sub(i64::from(o.priority).saturating_mul(ageing_ms)),
                o.seq,
            ),
            Strategy::Fifo => (0, o.seq),
        }
    }

    fn group_of(self, o: &Ordering) -> &str {
        match self {
            Strategy::Fair => &o.group,
            _ => "",
        }
    }
}

/// Ready entries in strategy order.
#[derive(Debug)]
pub struct ReadyQueue {
    strategy: Strategy,
    ageing_ms: i64,
    groups: HashMap<String, BTreeMap<Key, TaskId>>,
    /// Groups with entries, in serving order.
    turn: VecDeque<String>,
    index: HashMap<TaskId, (String, Key)>,
}

impl ReadyQueue {
    pub fn new(strategy: Strategy, ageing_ms: i64) -> Self {
        ReadyQueue {
            strategy,
            ageing_ms: ageing_ms.max(1),
            groups: HashMap::new(),
            turn: VecDeque::new(),
            index: HashMap::new(),
        }
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn contains(&self, id: TaskId) -> bool {
        self.index.contains_key(&id)
    }

    pub fn push(&mut self, id: TaskId, o: &Ordering) {
        self.remove(id);
        let group = self.strategy.group_of(o).to_string();
        let key = self.strategy.key(o, self.ageing_ms);
        let queue = self.groups.entry(group.clone()).or_default();
        if queue.is_empty() {
            self.turn.push_back(group.clone());
        }
        queue.insert(key, id);
        self.index.insert(id, (group, key));
    }

    pub fn remove(&mut self, id: TaskId) -> bool {
        let Some((group, key)) = self.index.remove(&id) else {
            return false;
        };
        if let Some(queue) = self.groups.get_mut(&group) {
            queue.remove(&key);
            if queue.is_empty() {
                self.groups.remove(&group);
                self.turn.retain(|g| g != &group);
            }
        }
        true
    }

    /// The entry whose turn it is, without taking it.
    pub fn peek(&self) -> Option<TaskId> {
        let group = self.turn.front()?;
        self.groups.get(group)?.values().next().copied()
    }

    /// Takes the entry whose turn it is. `rotate` passes the turn to the next group (after a
    /// dispatch); without it the same group stays first (after its head was parked).
    pub fn pop(&mut self, rotate: bool) -> Option<TaskId> {
        let id = self.peek()?;
        let group = self.index.get(&id).map(|(g, _)| g.clone())?;
        self.remove(id);
        if rotate && self.groups.contains_key(&group) && self.turn.front() == Some(&group) {
            self.turn.rotate_left(1);
        }
        Some(id)
    }

    /// How many entries are served before `id` (exact in one group; within its own group
    /// under `fair`), counting at most `cap`.
    pub fn ahead_of(&self, id: TaskId, cap: usize) -> Option<usize> {
        let (group, key) = self.index.get(&id)?;
        let queue = self.groups.get(group)?;
        Some(queue.range(..*key).take(cap).count())
    }

    /// Re-keys everything under another strategy or ageing.
    pub fn rebuild(
        &mut self,
        strategy: Strategy,
        ageing_ms: i64,
        lookup: impl Fn(TaskId) -> Option<Ordering>,
    ) {
        let ids: Vec<TaskId> = self.index.keys().copied().collect();
        *self = ReadyQueue::new(strategy, ageing_ms);
        let mut entries: Vec<(TaskId, Ordering)> = ids
            .into_iter()
            .filter_map(|id| lookup(id).map(|o| (id, o)))
            .collect();
        entries.sort_by_key(|(_, o)| o.seq);
        for (id, o) in entries {
            self.push(id, &o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(priority: i32, ready_since: i64, seq: u64, group: &str) -> Ordering {
        Ordering {
            priority,
            ready_since,
            seq,
            group: group.into(),
        }
    }

    fn drain(q: &mut ReadyQueue) -> Vec<TaskId> {
        std::iter::from_fn(|| q.pop(true)).collect()
    }

    #[test]
    fn priority_runs_higher_first_and_fifo_within_a_level() {
        let mut q = ReadyQueue::new(Strategy::Priority, 60_000);
        let ids: Vec<TaskId> = (0..4).map(|_| TaskId::new()).collect();
        q.push(ids[0], &o(1, 0, 0, ""));
        q.push(ids[1], &o(3, 10, 1, ""));
        q.push(ids[2], &o(1, 20, 2, ""));
        q.push(ids[3], &o(3, 30, 3, ""));
        assert_eq!(drain(&mut q), vec![ids[1], ids[3], ids[0], ids[2]]);
    }

    #[test]
    fn ageing_lets_a_low_priority_task_overtake_after_waiting_long_enough() {
        let ageing = 60_000;
        let mut q = ReadyQueue::new(Strategy::Priority, ageing);
        let (old_low, new_high) = (TaskId::new(), TaskId::new());
        // waited 2 levels' worth longer than the newcomer is ahead by one level
        q.push(old_low, &o(0, 0, 0, ""));
        q.push(new_high, &o(1, 2 * ageing, 1, ""));
        assert_eq!(drain(&mut q), vec![old_low, new_high]);
        let (low, high) = (TaskId::new(), TaskId::new());
        q.push(low, &o(0, 0, 2, ""));
        q.push(high, &o(1, ageing / 2, 3, ""));
        assert_eq!(drain(&mut q), vec![high, low]);
    }

    #[test]
    fn fifo_ignores_priority() {
        let mut q = ReadyQueue::new(Strategy::Fifo, 60_000);
        let (a, b) = (TaskId::new(), TaskId::new());
        q.push(a, &o(0, 0, 0, ""));
        q.push(b, &o(9, 0, 1, ""));
        assert_eq!(drain(&mut q), vec![a, b]);
    }

    #[test]
    fn fair_alternates_between_a_big_and_a_small_group() {
        let mut q = ReadyQueue::new(Strategy::Fair, 60_000);
        let big: Vec<TaskId> = (0..100).map(|_| TaskId::new()).collect();
        for (i, id) in big.iter().enumerate() {
            q.push(*id, &o(1, 0, i as u64, "big"));
        }
        let small: Vec<TaskId> = (0..2).map(|_| TaskId::new()).collect();
        for (i, id) in small.iter().enumerate() {
            q.push(*id, &o(1, 5, 100 + i as u64, "small"));
        }
        let order = drain(&mut q);
        let pos = |id: TaskId| order.iter().position(|x| *x == id).unwrap();
        assert!(
            pos(small[0]) <= 2 && pos(small[1]) <= 4,
            "{} {}",
            pos(small[0]),
            pos(small[1])
        );
    }

    #[test]
    fn ahead_of_counts_entries_served_first() {
        let mut q = ReadyQueue::new(Strategy::Priority, 60_000);
        let ids: Vec<TaskId> = (0..5).map(|_| TaskId::new()).collect();
        for (i, id) in ids.iter().enumerate() {
            q.push(*id, &o(1, i as i64, i as u64, ""));
        }
        assert_eq!(q.ahead_of(ids[3], 100), Some(3));
        assert_eq!(q.ahead_of(ids[3], 2), Some(2));
        q.remove(ids[0]);
        assert_eq!(q.ahead_of(ids[3], 100), Some(2));
    }
}
