//! Test wasmswitch plugins without a phone network.
//!
//! Load any plugin component (Rust, Python, JavaScript, ...) with in-memory host imports, then
//! drive it: send a call its events, send a message, and assert on what it decides.
//! Every call reports the fuel it used; `kv` can be preloaded and inspected; log lines and
//! counters are captured.
//!
//! ```no_run
//! use wasmswitch_harness::{Harness, model::*};
//!
//! #[tokio::test]
//! async fn menu_greets() {
//!     let h = Harness::load("target/wasm32-wasip2/release/ivr_menu.wasm").unwrap();
//!     let mut call = h.call().await.unwrap();
//!     let answer = call
//!         .on_event(&CallEvent::HandedOver(HandOver::default()))
//!         .await
//!         .unwrap();
//!     assert!(matches!(answer.actions[0], Action::Answer));
//!     assert!(call.last_fuel().unwrap() > 0);
//! }
//! ```
//!
//! Scenario files (YAML or JSON) run the same checks without Rust; see [`scenario`].

pub use wasmswitch_plugins::harness::{Harness, HarnessError, TENANT, default_config};
pub use wasmswitch_plugins::model;
pub use wasmswitch_plugins::scenario;
pub use wasmswitch_plugins::{
    Answer, CallInstance, Capability, Contract, LogLevel, LogLine, PluginError, RuntimeConfig,
};
