//! The rules of the product as plain data and functions: ids, the task model, the state
//! machine. Nothing here knows about actix, diesel or HTTP, so it is tested in milliseconds.

pub mod batch;
pub mod eta;
pub mod ids;
pub mod redact;
pub mod schedule;
pub mod status;
pub mod task;

pub use ids::TaskId;
pub use status::{InvalidTransition, TaskStatus};
pub use task::{
    LogLevel, MutexPolicy, NewTask, Priority, RetryBackoff, Source, Task, Transition, WaitingOn,
};

/// Milliseconds since the Unix epoch, UTC: the one time representation stored and compared.
pub type Millis = i64;

/// The current time in [`Millis`].
pub fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// Renders [`Millis`] as RFC 3339 with millisecond precision, the wire format of every time.
pub fn rfc3339(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 time into [`Millis`].
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}
