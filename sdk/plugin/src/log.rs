//! Log lines, attributed by the host to the tenant, the plugin and its version. They go to the
//! switch's log and to the simulate endpoint's and the harness's output; lines longer than
//! 4 KiB are cut.

use crate::__bindings::router::wasmswitch::plugin::log::{Level, log};

/// Writes a line at level `trace`.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Writes a line at level `debug`.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Writes a line at level `info`.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Writes a line at level `warn`.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Writes a line at level `error`.
pub fn error(message: &str) {
    log(Level::Error, message);
}
