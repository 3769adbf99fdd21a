//! Unit tests of the pure policy.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::domain::WaitingOn;

fn limits(max_parallel: usize) -> Limits {
    Limits {
        strategy: Strategy::Priority,
        max_parallel,
        type_limits: BTreeMap::new(),
        ageing_ms: 60_000,
        queue_enabled: true,
    }
}

fn sched(max_parallel: usize) -> Scheduler {
    let mut s = Scheduler::new(limits(max_parallel));
    s.add_unit(UnitSlot {
        id: "local".into(),
        types: ["noop", "sleep"]
            .into_iter()
            .map(String::from)
            .collect::<BTreeSet<_>>(),
        labels: BTreeMap::new(),
        capacity: 100,
        load: 0,
        accepting: true,
    });
    s
}

fn task(priority: i32) -> Pending {
    Pending {
        id: TaskId::new(),
        task_type: "noop".into(),
        priority,
        mutex: None,
        batch: None,
        group: "api".into(),
        labels: BTreeMap::new(),
        held: false,
        wait_for: vec![],
        not_before: None,
    }
}

fn drain(s: &mut Scheduler) -> Vec<TaskId> {
    let mut out = vec![];
    while let Some(d) = s.next_dispatch() {
        out.push(d.id);
        s.release(d.id);
    }
    out
}

#[test]
fn max_parallel_bounds_dispatch_and_release_frees_a_slot() {
    let mut s = sched(2);
    let ids: Vec<TaskId> = (0..3)
        .map(|_| {
            let t = task(1);
            let id = t.id;
            s.enqueue(t, 0);
            id
        })
        .collect();
    let a = s.next_dispatch().unwrap();
    let b = s.next_dispatch().unwrap();
    assert_eq!((a.id, b.id), (ids[0], ids[1]));
    assert!(s.next_dispatch().is_none());
    let w = s.explain(ids[2], 0).unwrap();
    assert_eq!(w.on, WaitingOn::Capacity);
    assert_eq!(w.detail, "2 of 2 parallel slots busy; next in line");
    s.release(a.id);
    assert_eq!(s.next_dispatch().unwrap().id, ids[2]);
}

#[test]
fn higher_priority_dispatches_first() {
    let mut s = sched(1);
    let low = task(0);
    let high = task(3);
    let (l, h) = (low.id, high.id);
    s.enqueue(low, 0);
    s.enqueue(high, 1);
    assert_eq!(drain(&mut s), vec![h, l]);
}

#[test]
fn tasks_sharing_a_mutex_never_run_together() {
    let mut s = sched(10);
    let mut a = task(1);
    a.mutex = Some("m".into());
    let mut b = task(1);
    b.mutex = Some("m".into());
    let c = task(1);
    let (ia, ib, ic) = (a.id, b.id, c.id);
    s.enqueue(a, 0);
    s.enqueue(b, 1);
    s.enqueue(c, 2);
    assert_eq!(s.next_dispatch().unwrap().id, ia);
    assert_eq!(
        s.next_dispatch().unwrap().id,
        ic,
        "b is parked, c overtakes"
    );
    assert!(s.next_dispatch().is_none());
    let w = s.explain(ib, 0).unwrap();
    assert_eq!(w.on, WaitingOn::Mutex);
    assert_eq!(w.detail, format!("mutex 'm' is held by task {ia}"));
    s.release(ia);
    assert_eq!(s.next_dispatch().unwrap().id, ib);
}

#[test]
fn type_limits_park_and_release_one_at_a_time() {
    let mut s = sched(10);
    let mut l = limits(10);
    l.type_limits.insert("sleep".into(), 1);
    s.set_limits(l);
    let ids: Vec<TaskId> = (0..3)
        .map(|_| {
            let mut t = task(1);
            t.task_type = "sleep".into();
            let id = t.id;
            s.enqueue(t, 0);
            id
        })
        .collect();
    assert_eq!(s.next_dispatch().unwrap().id, ids[0]);
    assert!(s.next_dispatch().is_none());
    assert!(s
        .explain(ids[1], 0)
        .unwrap()
        .detail
        .contains("type limit for 'sleep'"));
    s.release(ids[0]);
    assert_eq!(s.next_dispatch().unwrap().id, ids[1]);
}

#[test]
fn dependencies_gate_until_success_and_failure_dooms_dependents() {
    let mut s = sched(10);
    let dep = TaskId::new();
    let mut t = task(1);
    t.wait_for = vec![dep];
    let id = t.id;
    s.enqueue(t, 0);
    assert!(s.next_dispatch().is_none());
    assert_eq!(s.explain(id, 0).unwrap().on, WaitingOn::Dependencies);
    assert!(s.dependency_finished(dep, true, 5).is_empty());
    assert_eq!(s.next_dispatch().unwrap().id, id);

    let dep2 = TaskId::new();
    let mut t2 = task(1);
    t2.wait_for = vec![dep2];
    let id2 = t2.id;
    s.enqueue(t2, 0);
    assert_eq!(s.dependency_finished(dep2, false, 5), vec![id2]);
    assert!(!s.is_pending(id2));
}

#[test]
fn timers_hold_work_until_due() {
    let mut s = sched(10);
    let mut t = task(1);
    t.not_before = Some((1_000, WaitingOn::RunAt));
    let id = t.id;
    s.enqueue(t, 0);
    assert!(s.next_dispatch().is_none());
    assert_eq!(s.next_wakeup(), Some(1_000));
    assert_eq!(s.explain(id, 0).unwrap().on, WaitingOn::RunAt);
    s.fire_timers(999);
    assert!(s.next_dispatch().is_none());
    s.fire_timers(1_000);
    assert_eq!(s.next_dispatch().unwrap().id, id);
}

#[test]
fn held_tasks_wait_for_start() {
    let mut s = sched(10);
    let mut t = task(1);
    t.held = true;
    let id = t.id;
    s.enqueue(t, 0);
    assert!(s.next_dispatch().is_none());
    assert_eq!(s.explain(id, 0).unwrap().on, WaitingOn::Start);
    assert!(s.start(id, 1));
    assert_eq!(s.next_dispatch().unwrap().id, id);
}

#[test]
fn work_without_a_unit_parks_until_one_registers() {
    let mut s = sched(10);
    let mut t = task(1);
    t.task_type = "remote_only".into();
    let id = t.id;
    s.enqueue(t, 0);
    assert!(s.next_dispatch().is_none());
    assert!(s
        .explain(id, 0)
        .unwrap()
        .detail
        .contains("no execution unit serving 'remote_only'"));
    s.add_unit(UnitSlot {
        id: "w1".into(),
        types: ["remote_only".to_string()].into_iter().collect(),
        labels: BTreeMap::new(),
        capacity: 1,
        load: 0,
        accepting: true,
    });
    assert_eq!(
        s.next_dispatch(),
        Some(Dispatch {
            id,
            unit: "w1".into()
        })
    );
}

#[test]
fn a_long_queue_does_not_slow_decisions_with_a_parked_mutex() {
    let mut s = sched(1_000_000);
    for i in 0..10_000 {
        let mut t = task(1);
        if i > 0 {
            t.mutex = Some("one".into());
        }
        s.enqueue(t, 0);
    }
    // The first takes no mutex; the next takes "one"; the rest park on it once each.
    assert!(s.next_dispatch().is_some());
    assert!(s.next_dispatch().is_some());
    assert!(s.next_dispatch().is_none());
    assert_eq!(s.ready_len(), 0);
}

#[test]
fn a_paused_batch_holds_its_pending_tasks() {
    let mut s = sched(10);
    let mut t = task(1);
    t.batch = Some("b1".into());
    let id = t.id;
    s.set_batch_paused("b1", true);
    s.enqueue(t, 0);
    assert!(s.next_dispatch().is_none());
    let w = s.explain(id, 0).unwrap();
    assert_eq!(
        (w.on, w.detail.as_str()),
        (WaitingOn::QueuePaused, "batch b1 is paused")
    );
    s.set_batch_paused("b1", false);
    assert_eq!(s.next_dispatch().unwrap().id, id);
}

#[test]
fn per_batch_limits_bound_running_tasks() {
    let mut s = sched(10);
    s.set_batch_limit("b", Some(2));
    for _ in 0..4 {
        let mut t = task(1);
        t.batch = Some("b".into());
        s.enqueue(t, 0);
    }
    let a = s.next_dispatch().unwrap();
    assert!(s.next_dispatch().is_some());
    assert!(s.next_dispatch().is_none());
    s.release(a.id);
    assert!(s.next_dispatch().is_some());
}

/// A task restarted while its cancelled run is still stopping starts only once that run has
/// ended, and the unit's load counts one run at a time (it used to count the old run for good).
#[test]
fn a_restarted_task_waits_for_its_previous_run_to_stop() {
    let mut s = sched(4);
    let t = task(1);
    let id = t.id;
    s.enqueue(t.clone(), 0);
    assert_eq!(s.next_dispatch().unwrap().id, id);
    s.enqueue(t, 1);
    assert!(s.next_dispatch().is_none(), "the first run is still active");
    assert_eq!(
        s.explain(id, 1).unwrap().detail,
        "its previous run is still stopping"
    );
    let load = |s: &Scheduler| s.units().map(|u| u.load).sum::<usize>();
    assert_eq!(load(&s), 1);
    s.release(id);
    assert_eq!(s.next_dispatch().unwrap().id, id);
    assert_eq!(load(&s), 1);
    s.release(id);
    assert_eq!(load(&s), 0);
}
