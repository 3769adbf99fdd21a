//! The system log (seed 002's log aggregation): steward's own notable events — start-up,
//! recovery, configuration changes, cleanups, units coming and going, alerts — kept in the
//! `system_logs` table and searchable beside task logs at `/api/v1/logs`. [`SystemLog::record`]
//! writes a line to the server log (stderr) and to the table; a background writer inserts
//! them in batches. In the `steward` binary a [`Tap`] on the logger also records every warning
//! and error steward logs elsewhere.

use std::sync::OnceLock;

use log::{Level, Log, Metadata, Record};
use tokio::sync::mpsc;

use crate::domain::{now_ms, LogLevel};
use crate::events::{EventBody, EventBus};
use crate::store::system_logs::{self as qs, NewSystemLog};
use crate::store::Store;

/// The most lines written in one transaction.
const BATCH: usize = 500;
/// The log target of recorded lines (the tap does not record them twice).
const TARGET: &str = "steward::system";
/// The writer's own target: its failures are logged but not recorded (no feedback loop).
const WRITER_TARGET: &str = "steward::syslog";

/// Where system log lines go; cheap to clone.
#[derive(Clone)]
pub struct SystemLog {
    tx: mpsc::UnboundedSender<NewSystemLog>,
}

impl SystemLog {
    /// Starts the writer and the follower of the event bus (alerts, units).
    pub fn start(store: Store, events: &EventBus) -> SystemLog {
        let (tx, rx) = mpsc::unbounded_channel();
        actix_rt::spawn(write_loop(store, rx));
        let log = SystemLog { tx };
        actix_rt::spawn(follow(log.clone(), events.attach()));
        log
    }

    /// Logs a line to stderr and records it.
    pub fn record(&self, level: LogLevel, component: &str, message: impl Into<String>) {
        let message = message.into();
        let lvl = match level {
            LogLevel::Debug => Level::Debug,
            LogLevel::Info => Level::Info,
            LogLevel::Warning => Level::Warn,
            LogLevel::Error => Level::Error,
        };
        log::log!(target: TARGET, lvl, "[{component}] {message}");
        self.send(level, component, message);
    }

    pub fn info(&self, component: &str, message: impl Into<String>) {
        self.record(LogLevel::Info, component, message)
    }

    pub fn warn(&self, component: &str, message: impl Into<String>) {
        self.record(LogLevel::Warning, component, message)
    }

    fn send(&self, level: LogLevel, component: &str, message: String) {
        let _ = self.tx.send(NewSystemLog {
            level: level.as_str().into(),
            component: component.into(),
            message,
            at: now_ms(),
        });
    }
}

async fn write_loop(store: Store, mut rx: mpsc::UnboundedReceiver<NewSystemLog>) {
    while let Some(first) = rx.recv().await {
        let mut rows = vec![first];
        while rows.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => rows.push(r),
                Err(_) => break,
            }
        }
        if let Err(e) = store.write_direct(move |c| qs::insert(c, &rows)).await {
            log::error!(target: WRITER_TARGET, "cannot record system log lines: {e}");
        }
    }
}

/// Records alerts and unit changes from the event bus.
async fn follow(
    log: SystemLog,
    mut rx: mpsc::UnboundedReceiver<std::sync::Arc<crate::events::Event>>,
) {
    while let Some(event) = rx.recv().await {
        match &event.body {
            EventBody::Alert { alert, .. } => {
                let level = match alert["level"].as_str() {
                    Some("critical") | Some("error") => LogLevel::Error,
                    Some("warning") => LogLevel::Warning,
                    _ => LogLevel::Info,
                };
                let text = format!(
                    "alert [{}] {}: {}",
                    alert["type"].as_str().unwrap_or("?"),
                    alert["title"].as_str().unwrap_or(""),
                    alert["message"].as_str().unwrap_or("")
                );
                log.record(level, "alerts", text);
            }
            EventBody::Unit {
                unit_id, status, ..
            } => {
                let level = if status == "OFFLINE" {
                    LogLevel::Warning
                } else {
                    LogLevel::Info
                };
                log.record(level, "units", format!("unit {unit_id} is {status}"));
            }
            _ => {}
        }
    }
}

static TAPPED: OnceLock<SystemLog> = OnceLock::new();

/// Points the [`Tap`] at the application's system log (once per process: the binary runs
/// one application).
pub fn tap_into(log: &SystemLog) {
    let _ = TAPPED.set(log.clone());
}

/// A logger that passes everything to `inner` and also records steward's warnings and errors
/// in the system log.
pub struct Tap<L> {
    pub inner: L,
}

impl<L: Log> Log for Tap<L> {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        self.inner.log(record);
        let target = record.target();
        if record.level() > Level::Warn
            || !target.starts_with("steward")
            || target == TARGET
            || target == WRITER_TARGET
        {
            return;
        }
        if let Some(sys) = TAPPED.get() {
            let level = if record.level() == Level::Error {
                LogLevel::Error
            } else {
                LogLevel::Warning
            };
            let component = target.rsplit("::").next().unwrap_or(target);
            sys.send(level, component, record.args().to_string());
        }
    }

    fn flush(&self) {
        self.inner.flush()
    }
}
