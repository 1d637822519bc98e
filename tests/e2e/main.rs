//! Calls end to end: the real `wasmswitch serve` binary, configured by its environment, between
//! real SIP peers (sipp playing callers and trunks, scenarios in `tests/e2e/sipp/`), driven and
//! checked through its REST API. One test binary with modules, to link once.
//!
//! - [`harness`]: [`harness::Switch`] (the process, its database, its log), [`harness::Api`]
//!   (tenants, numbers, trunks, plugins, kv, CDRs), [`harness::Sipp`] (a peer: start, wait,
//!   statistics, the messages it saw, the digest a trunk was answered with).
//! - `signalling`: what the switch answers before any tenant routes a call.
//! - `peers`: the harness and scenarios against each other, without the switch (a check of the
//!   checker: what the switch's tests rely on fails when it should).
//!
//! Tests that use the store run on SQLite and on PostgreSQL (`WASMSWITCH_TEST_POSTGRES_URL`,
//! which `make test` sets; a database per test). `tests/e2e/sipp/check-pairs.sh` proves the
//! scenarios themselves, sipp to sipp.

#![allow(clippy::unwrap_used)]

mod harness;

mod calls;
mod peers;
mod signalling;
