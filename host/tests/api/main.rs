//! The control plane end to end: a real host (store, runtime, API) on 127.0.0.1:0, driven over
//! HTTP. Every test runs twice, on SQLite and on PostgreSQL.
//!
//! PostgreSQL comes from `WASMSWITCH_TEST_POSTGRES_URL` (`make test` sets it to the local
//! server, `postgres://postgres@127.0.0.1:5432/test`); each test gets a database of its own,
//! dropped afterwards. Without the variable the PostgreSQL runs report that they were skipped.

#![allow(clippy::unwrap_used)]

mod util;

mod auth;
mod calls_store;
mod contract;
mod fuzzish;
mod hardening;
mod plugins;
mod registrar;
mod resources;
mod store;
mod trunks;
