//! Counters the host exports to Prometheus as `wasmswitch_plugin_counter_total{name=...}`.

/// Adds `delta` to the counter `name` (letters, digits and `_`, at most 64 bytes; other names
/// are ignored by the host with a warning).
pub fn counter_add(name: &str, delta: u64) {
    crate::__bindings::router::wasmswitch::plugin::metrics::counter_add(name, delta);
}

/// Adds one to the counter `name`.
pub fn incr(name: &str) {
    counter_add(name, 1);
}
