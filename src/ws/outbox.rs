//! A WebSocket session's bounded outbox: what the session has decided to send and its socket
//! has not yet taken. Progress for the same task is coalesced to the latest report; any
//! other event that would push the queue past its bound means the subscriber fell behind.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use crate::domain::TaskId;
use crate::events::{Event, EventBody};

/// The most events a session may hold unsent before it is told it lagged.
pub const OUTBOX_LIMIT: usize = 1024;

/// One frame to send.
#[derive(Clone, Debug, PartialEq)]
pub enum Out {
    /// A protocol reply (`subscribed`, `pong`, `error`, ...): never dropped.
    Control(String),
    Event {
        seq: u64,
        /// Set for progress events: the task whose latest report this is.
        progress_of: Option<TaskId>,
        json: Arc<str>,
    },
    Ping,
    Pong(Vec<u8>),
}

/// The subscriber cannot keep up.
#[derive(Debug, PartialEq, Eq)]
pub struct Lagged;

#[derive(Default)]
pub struct Outbox {
    queue: VecDeque<Out>,
    events: usize,
    queued_progress: HashSet<TaskId>,
    /// The `seq` of the last event handed to the socket: where a lagged client resumes.
    pub last_sent_seq: u64,
}

impl Outbox {
    /// Queues a protocol frame. A client that keeps asking (pings, bad messages) without
    /// reading the answers gets no more of them past twice the event bound.
    pub fn push_control(&mut self, out: Out) {
        if self.queue.len() < 2 * OUTBOX_LIMIT {
            self.queue.push_back(out);
        }
    }

    pub fn push_event(&mut self, event: &Event) -> Result<(), Lagged> {
        let progress_of = match &event.body {
            EventBody::Progress { task_id, .. } => Some(*task_id),
            _ => None,
        };
        self.push(event.seq, progress_of, event.json.clone())
    }

    /// Queues an event; a progress report replaces the one of the same task still queued
    /// (and moves to the back, so frames stay in `seq` order).
    pub fn push(
        &mut self,
        seq: u64,
        progress_of: Option<TaskId>,
        json: Arc<str>,
    ) -> Result<(), Lagged> {
        if let Some(task) = progress_of {
            if self.queued_progress.contains(&task) {
                if let Some(i) = self.queue.iter().position(
                    |o| matches!(o, Out::Event { progress_of: Some(t), .. } if *t == task),
                ) {
                    self.queue.remove(i);
                    self.events -= 1;
                }
            }
        }
        if self.events >= OUTBOX_LIMIT {
            return Err(Lagged);
        }
        if let Some(task) = progress_of {
            self.queued_progress.insert(task);
        }
        self.events += 1;
        self.queue.push_back(Out::Event {
            seq,
            progress_of,
            json,
        });
        Ok(())
    }

    pub fn pop(&mut self) -> Option<Out> {
        let out = self.queue.pop_front()?;
        if let Out::Event {
            seq, progress_of, ..
        } = &out
        {
            self.events -= 1;
            self.last_sent_seq = *seq;
            if let Some(t) = progress_of {
                self.queued_progress.remove(t);
            }
        }
        Some(out)
    }

    /// Events waiting.
    pub fn backlog(&self) -> usize {
        self.events
    }

    /// Drops every queued frame (on lag or unsubscribe).
    pub fn clear(&mut self) {
        self.queue.clear();
        self.events = 0;
        self.queued_progress.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> TaskId {
        "0193a000-0000-7000-8000-000000000001".parse().unwrap()
    }

    #[test]
    fn progress_of_one_task_is_coalesced_to_the_latest() {
        let mut o = Outbox::default();
        o.push(1, Some(id()), "p1".into()).unwrap();
        o.push(2, None, "s2".into()).unwrap();
        o.push(3, Some(id()), "p3".into()).unwrap();
        let seqs: Vec<u64> = std::iter::from_fn(|| o.pop())
            .filter_map(|x| match x {
                Out::Event { seq, .. } => Some(seq),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, vec![2, 3]);
        assert_eq!(o.last_sent_seq, 3);
    }

    #[test]
    fn too_many_status_events_is_lag_but_progress_never_is() {
        let mut o = Outbox::default();
        for s in 0..(OUTBOX_LIMIT as u64) {
            o.push(s, None, "s".into()).unwrap();
        }
        assert_eq!(o.push(9999, None, "s".into()), Err(Lagged));
        o.pop();
        for s in 0..10_000 {
            o.push(10_000 + s, Some(id()), "p".into()).unwrap();
        }
        assert_eq!(o.backlog(), OUTBOX_LIMIT);
    }

    #[test]
    fn control_frames_are_bounded_too() {
        let mut o = Outbox::default();
        for _ in 0..(10 * OUTBOX_LIMIT) {
            o.push_control(Out::Ping);
        }
        assert_eq!(std::iter::from_fn(|| o.pop()).count(), 2 * OUTBOX_LIMIT);
    }
}
