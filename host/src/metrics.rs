//! The Prometheus recorder behind `/metrics`. Metrics are recorded with the `metrics` facade
//! wherever they happen (plugin calls, API requests, later calls and SMS); this installs the
//! process-wide recorder once and renders it.
//!
//! Series (all `wasmswitch_` prefixed):
//! - `plugin_calls_total{tenant,plugin,version,function}`: plugin invocations that answered;
//! - `plugin_failures_total{tenant,plugin,version,kind}`: traps, timeouts, out-of-memory,
//!   bad returns, instantiation failures;
//! - `plugin_call_seconds{tenant,plugin,version,function}`: histogram of one call into a plugin;
//! - `plugin_counter_total{tenant,plugin,name}`: counters plugins add to;
//! - `api_requests_total{method,route,status}`, `api_request_seconds{method,route}`.
//!
//! - SIP (from `wasmswitch-sip`'s endpoint): `sip_requests_received_total{method}`,
//!   `sip_responses_received_total{status}`, `sip_rejected_total{status}`,
//!   `sip_dropped_total{reason}`, `sip_rate_limited_total`, `sip_parse_errors_total{transport}`,
//!   `sip_overload_total`, `sip_retransmissions_total{direction}`, `sip_transactions{side}`;
//! - the registrar: `sip_registers_total{outcome}` and `sip_registrations` (live bindings in the
//!   store, read every 30 s);
//! - trunk registration: `sip_trunk_registrations{state}` (this host's registering trunks by
//!   state) and `sip_trunk_register_attempts_total{outcome}`.
//!
//! - calls: `calls_total{tenant}` (calls taken), `calls_refused_total{reason}` (unknown number
//!   or source, draining, over a cap), `calls_live{tenant}` and `calls_live_total` (calls up now),
//!   `calls_plugin_failures_total{tenant}` (routers that failed: the fallback ran),
//!   `calls_mailbox_full_total` (a call's task too far behind to take a request: 503);
//! - CDRs: `cdr_written_total`, `cdr_dropped_total`, `cdr_rejected_total`,
//!   `cdr_write_errors_total`, `cdr_waiting`.
//!
//! SMS series arrive with the SMS module.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets, in seconds: from 10 µs (a Rust plugin call) to 10 s (a slow API request).
const BUCKETS: [f64; 16] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.5, 1.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder (once per process) and returns its handle; none if another recorder
/// was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot install the Prometheus recorder");
                    None
                }
            }
        })
        .clone()
}
