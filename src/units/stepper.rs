//! Long blocking work (an SQLite online backup, compressing, hashing) on a thread of its own,
//! in lock-step with the job: after each step the thread reports and waits; the job shows the
//! progress, passes its safe point (so pause holds the thread between two steps, with its
//! connections open, and cancel stops it there) and lets it go on. Values the work cannot
//! move between threads (rusqlite's `Backup`) live on that one thread.

use std::time::{Duration, Instant};

use super::{JobContext, Report};
use crate::domain::LogLevel;

/// Progress reports are at most this frequent (the safe point is passed at every step).
const REPORT_EVERY: Duration = Duration::from_millis(100);

/// One step's report: what stage the work is in and how far.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub stage: &'static str,
    pub done: u64,
    pub total: u64,
}

/// The work thread's end of the line.
pub struct Stepper {
    reports: tokio::sync::mpsc::UnboundedSender<Step>,
    go: std::sync::mpsc::Receiver<bool>,
}

/// The job said stop (cancel, or its owner went away).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

impl Stepper {
    /// Reports a step and waits until the job lets the work go on.
    pub fn step(&self, step: Step) -> Result<(), Stopped> {
        self.reports.send(step).map_err(|_| Stopped)?;
        match self.go.recv() {
            Ok(true) => Ok(()),
            _ => Err(Stopped),
        }
    }
}

/// How driven work ended, when it did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub enum Halt {
    Cancelled,
    Failed(String),
}

/// Runs `work` on a new thread named `name`; each step goes to `progress` (which returns the
/// job's overall percent) and then through the job's safe point.
pub async fn drive<T: Send + 'static>(
    ctx: &mut JobContext,
    name: &str,
    work: impl FnOnce(&Stepper) -> Result<T, String> + Send + 'static,
    mut progress: impl FnMut(&Step) -> f64,
) -> Result<T, Halt> {
    let (report_tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let stepper = Stepper {
                reports: report_tx,
                go: go_rx,
            };
            let result = work(&stepper);
            drop(stepper);
            let _ = done_tx.send(result);
        })
        .map_err(|e| Halt::Failed(format!("cannot start a worker thread: {e}")))?;
    let mut cancelled = false;
    let mut last_report: Option<(Instant, &'static str)> = None;
    while let Some(step) = reports.recv().await {
        let due = last_report.is_none_or(|(at, stage)| {
            at.elapsed() >= REPORT_EVERY || stage != step.stage || step.done >= step.total
        });
        if due {
            ctx.report(Report::Progress {
                progress: Some(progress(&step)),
                stage: Some(step.stage.to_string()),
                message: None,
                checkpoint: None,
            });
            last_report = Some((Instant::now(), step.stage));
        }
        if ctx.control() == super::Control::Pause {
            ctx.log(
                LogLevel::Info,
                format!(
                    "paused while {} ({} of {})",
                    step.stage, step.done, step.total
                ),
            );
        }
        let go = ctx.safe_point().await.is_ok();
        cancelled |= !go;
        if go_tx.send(go).is_err() {
            break;
        }
    }
    let result = done_rx.await;
    if cancelled {
        return Err(Halt::Cancelled);
    }
    match result {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(Halt::Failed(e)),
        Err(_) => Err(Halt::Failed("the worker thread died".into())),
    }
}
