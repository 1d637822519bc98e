//! Write wasmswitch plugins in Rust, against plugin contract 0.2 (`wasmswitch:plugin@0.2.0`).
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2`. It takes calls, messages or
//! both: implement [`CallHandler`] (every event of a call, answered with the actions to take)
//! and/or [`Messaging`] (each SMS, and how the ones it let through were delivered) on a type,
//! and export it with [`export_call_handler!`], [`export_messaging!`] or [`export_switch!`]
//! (both):
//!
//! ```ignore
//! use wasmswitch_plugin::*;
//!
//! struct Plugin;
//!
//! impl CallHandler for Plugin {
//!     fn on_event(event: CallEvent) -> Vec<Action> {
//!         match event {
//!             CallEvent::Incoming(call) if call.to.starts_with("+1900") => {
//!                 vec![Action::reject(403, "Premium numbers are barred")]
//!             }
//!             CallEvent::Incoming(call) => {
//!                 let pbx = format!("sip:{}@pbx.example.com", call.to);
//!                 vec![Action::Dial(Dial::to([pbx]))]
//!             }
//!             // Leg progress, the dial's end, DTMF, the hangup: nothing to do. Once the bridge
//!             // is over the call has nothing left, and the switch ends it.
//!             _ => vec![],
//!         }
//!     }
//! }
//!
//! export_call_handler!(Plugin);
//! ```
//!
//! The types are the contract's own (`wit/types.wit`, re-exported here): read their docs for
//! what each field means, its range, and how an answer's actions run. Every setting with a
//! default is an `Option` whose `None` is the default the contract states (a gather waits 5 s
//! for the first digit, a target rings 30 s, ...), so the constructors here leave them `None`
//! and set only what they are named after.
//!
//! Build with `cargo build --release --target wasm32-wasip2` (in `Cargo.toml`:
//! `crate-type = ["cdylib"]`) and test the `.wasm` with the `wasmswitch-harness` crate or
//! `wasmswitch plugin test`.
//!
//! One instance of a call handler runs per call and hears all its events, so plain statics
//! (`thread_local!` or `static ... : Mutex<..>`) hold the call's state. A message policy gets a
//! fresh instance for each message and each delivery report. The host's [`kv`] store holds what
//! must outlive a call or a message.

#[doc(hidden)]
pub mod __bindings {
    /// World `router` (calls: `call-handler`); also the home of the shared types and the host
    /// imports.
    pub mod router {
        wit_bindgen::generate!({
            path: "wit",
            world: "router",
            pub_export_macro: true,
            export_macro_name: "export",
            default_bindings_module: "$crate::__bindings::router",
            additional_derives: [PartialEq, Eq],
        });
    }

    /// World `messaging` (`message-policy`), sharing the types and imports of `router`. A
    /// `switch` exports both worlds' interfaces: one world per interface keeps each export
    /// defined once (wit-bindgen names an export's glue after its interface, not its world).
    pub mod messaging {
        wit_bindgen::generate!({
            path: "wit",
            world: "messaging",
            pub_export_macro: true,
            export_macro_name: "export",
            default_bindings_module: "$crate::__bindings::messaging",
            with: {
                "wasmswitch:plugin/types@0.2.0": crate::__bindings::router::wasmswitch::plugin::types,
                "wasmswitch:plugin/log@0.2.0": crate::__bindings::router::wasmswitch::plugin::log,
                "wasmswitch:plugin/kv@0.2.0": crate::__bindings::router::wasmswitch::plugin::kv,
                "wasmswitch:plugin/metrics@0.2.0": crate::__bindings::router::wasmswitch::plugin::metrics,
            },
        });
    }
}

mod helpers;
pub mod kv;
pub mod log;
pub mod metrics;

/// Every type of the contract (`wit/types.wit`): call info, events, actions, messages and
/// decisions.
pub use __bindings::router::wasmswitch::plugin::types::*;

/// Handles calls (interface `call-handler`). One instance serves one call: it starts with
/// `incoming` (a new call) or `handed-over` (a call another plugin handed to it), then hears
/// every later event of the call, in order, until `hangup`.
pub trait CallHandler {
    /// The actions to take for `event`, in order. An empty list means "carry on": it leaves
    /// what is running or waiting alone, so it is the answer to every event that needs no
    /// action (how answers run is told on `call-handler` in `wit/host.wit`).
    fn on_event(event: CallEvent) -> Vec<Action>;
}

/// An SMS policy (interface `message-policy`). A fresh instance runs for each message and each
/// delivery report; keep state in [`kv`].
pub trait Messaging {
    /// Decide one message before the switch delivers it.
    fn on_message(msg: Message) -> SmsDecision;

    /// How a message the switch sent after this policy's `deliver`, `rewrite` or `reply`
    /// turned out. The default does nothing.
    fn on_delivery(report: DeliveryReport) {
        let _ = report;
    }
}

/// Exports a [`CallHandler`] implementation as the component's `call-handler` interface (world
/// `router`): a component that takes calls, first (`incoming`) or by hand-off (`handed-over`).
#[macro_export]
macro_rules! export_call_handler {
    ($t:ident) => {
        impl $crate::__bindings::router::exports::wasmswitch::plugin::call_handler::Guest for $t {
            fn on_event(event: $crate::CallEvent) -> ::std::vec::Vec<$crate::Action> {
                <$t as $crate::CallHandler>::on_event(event)
            }
        }
        $crate::__bindings::router::export!($t with_types_in $crate::__bindings::router);
    };
}

/// Exports a [`Messaging`] implementation as the component's `message-policy` interface (world
/// `messaging`).
#[macro_export]
macro_rules! export_messaging {
    ($t:ident) => {
        impl $crate::__bindings::messaging::exports::wasmswitch::plugin::message_policy::Guest
            for $t
        {
            fn on_message(msg: $crate::Message) -> $crate::SmsDecision {
                <$t as $crate::Messaging>::on_message(msg)
            }
            fn on_delivery(report: $crate::DeliveryReport) {
                <$t as $crate::Messaging>::on_delivery(report)
            }
        }
        $crate::__bindings::messaging::export!($t with_types_in $crate::__bindings::messaging);
    };
}

/// Exports a type implementing both [`CallHandler`] and [`Messaging`]: `call-handler` and
/// `message-policy`, which make world `switch`.
#[macro_export]
macro_rules! export_switch {
    ($t:ident) => {
        $crate::export_call_handler!($t);
        $crate::export_messaging!($t);
    };
}
