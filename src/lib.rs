//! steward: a task orchestration server. See README.md for the tour and `actors` for the
//! actor tree.

pub mod actors;
pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod paths;
pub mod scheduler;
pub mod store;
pub mod syslog;
pub mod units;
pub mod webhooks;
pub mod worker;
pub mod ws;

pub use app::Application;
pub use config::Config;
pub mod logfile;
pub mod metrics;
pub mod monitor;
pub mod resources;
