//! One integration binary driving real servers over HTTP, on SQLite and on PostgreSQL.

mod helpers;
mod ws_client;

mod backups;
mod backups_pg;
mod bad_input;
mod batches;
mod cli;
mod compat;
mod compat_mystocks;
mod control;
mod events;
mod execution;
mod listing;
mod media;
mod media_recovery;
mod observability;
mod recovery;
mod remote_units;
mod schedules;
mod scheduling;
mod security;
mod strategies;
mod units;
mod webhooks;
mod workers;
