//! One integration binary driving real servers over HTTP, on SQLite and on PostgreSQL.

mod helpers;
mod ws_client;

mod bad_input;
mod control;
mod events;
mod execution;
mod listing;
mod recovery;
mod scheduling;
mod webhooks;
