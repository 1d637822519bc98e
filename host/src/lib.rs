//! wasmswitch: a programmable telephone switch. The native host does the real-time work (SIP,
//! RTP, media); tenants' decisions run as WebAssembly components in [`plugins`].
//!
//! Modules, one per concern: [`plugins`] (the WebAssembly runtime), [`store`] (SQLite or
//! PostgreSQL), [`api`] (REST), [`registrar`] (phones' REGISTERs, on the `wasmswitch-sip`
//! stack), [`config`], [`metrics`]; [`service`] wires them into a host.

pub mod api;
pub mod calls;
pub mod config;
mod failures;
pub mod metrics;
pub use wasmswitch_plugins as plugins;
pub mod registrar;
pub mod service;
pub mod store;
pub mod trunks;
