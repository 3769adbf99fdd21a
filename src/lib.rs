//! steward: a task orchestration server. See README.md for the tour and `actors` for the
//! actor tree.

pub mod config;
pub mod domain;
pub mod error;
pub mod scheduler;
pub mod store;
