//! One integration binary driving real servers over HTTP, on SQLite and on PostgreSQL.

mod helpers;

mod bad_input;
mod batches;
mod control;
mod execution;
mod listing;
mod recovery;
mod schedules;
mod scheduling;
mod strategies;
