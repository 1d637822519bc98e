//! Write wasmswitch plugins in Rust.
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2`. Implement one or more of
//! [`Router`], [`Ivr`] and [`Messaging`] on a type and export it:
//!
//! ```ignore
//! use wasmswitch_plugin::*;
//!
//! struct Plugin;
//!
//! impl Router for Plugin {
//!     fn route(call: CallInfo) -> RouteDecision {
//!         if call.to.starts_with("+1900") {
//!             return RouteDecision::reject(403, "Premium numbers are barred");
//!         }
//!         RouteDecision::forward(Forward::to([format!("sip:{}@pbx.example.com", call.to)]))
//!     }
//! }
//!
//! export_router!(Plugin);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2` (in `Cargo.toml`:
//! `crate-type = ["cdylib"]`) and test the `.wasm` with the `wasmswitch-harness` crate or
//! `wasmswitch plugin test`.
//!
//! One instance of the plugin runs per call, so plain statics (`thread_local!` or
//! `static ... : Mutex<..>`) hold per-call state. The host's [`kv`] store holds what must outlive
//! a call.

#[doc(hidden)]
pub mod __bindings {
    /// World `router`; also the home of the shared types and the host imports.
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

    /// World `ivr`, sharing the types and imports of `router`.
    pub mod ivr {
        wit_bindgen::generate!({
            path: "wit",
            world: "ivr",
            pub_export_macro: true,
            export_macro_name: "export",
            default_bindings_module: "$crate::__bindings::ivr",
            with: {
                "wasmswitch:plugin/types@0.1.0": crate::__bindings::router::wasmswitch::plugin::types,
                "wasmswitch:plugin/log@0.1.0": crate::__bindings::router::wasmswitch::plugin::log,
                "wasmswitch:plugin/kv@0.1.0": crate::__bindings::router::wasmswitch::plugin::kv,
                "wasmswitch:plugin/metrics@0.1.0": crate::__bindings::router::wasmswitch::plugin::metrics,
            },
        });
    }

    /// World `messaging`, sharing the types and imports of `router`.
    pub mod messaging {
        wit_bindgen::generate!({
            path: "wit",
            world: "messaging",
            pub_export_macro: true,
            export_macro_name: "export",
            default_bindings_module: "$crate::__bindings::messaging",
            with: {
                "wasmswitch:plugin/types@0.1.0": crate::__bindings::router::wasmswitch::plugin::types,
                "wasmswitch:plugin/log@0.1.0": crate::__bindings::router::wasmswitch::plugin::log,
                "wasmswitch:plugin/kv@0.1.0": crate::__bindings::router::wasmswitch::plugin::kv,
                "wasmswitch:plugin/metrics@0.1.0": crate::__bindings::router::wasmswitch::plugin::metrics,
            },
        });
    }
}

mod helpers;
pub mod kv;
pub mod log;
pub mod metrics;

/// Every type of the contract (`wit/types.wit`): call info, decisions, events and actions.
pub use __bindings::router::wasmswitch::plugin::types::*;

/// A call router (world `router`). One instance serves one call: `route` first, then
/// `on_call_event` for everything that happens on the call if it was forwarded.
pub trait Router {
    /// Decide what to do with a new inbound call.
    fn route(call: CallInfo) -> RouteDecision;

    /// React to an event on a bridged call (answer, DTMF, hangup). The default does nothing.
    fn on_call_event(event: CallEvent) -> Vec<CallAction> {
        let _ = event;
        Vec::new()
    }
}

/// An IVR flow (world `ivr`). One instance serves one call; each event gets the actions to carry
/// out, in order. The flow hears the outcome of the *last* action of a list (e.g. the result of
/// the `gather` that ends it).
pub trait Ivr {
    fn on_event(event: IvrEvent) -> Vec<IvrAction>;
}

/// An SMS policy (world `messaging`): decides each message before delivery.
pub trait Messaging {
    fn on_message(msg: Message) -> SmsDecision;
}

/// Exports a [`Router`] implementation as the component's `call-routing` interface.
#[macro_export]
macro_rules! export_router {
    ($t:ident) => {
        impl $crate::__bindings::router::exports::wasmswitch::plugin::call_routing::Guest for $t {
            fn route(call: $crate::CallInfo) -> $crate::RouteDecision {
                <$t as $crate::Router>::route(call)
            }
            fn on_call_event(event: $crate::CallEvent) -> ::std::vec::Vec<$crate::CallAction> {
                <$t as $crate::Router>::on_call_event(event)
            }
        }
        $crate::__bindings::router::export!($t with_types_in $crate::__bindings::router);
    };
}

/// Exports an [`Ivr`] implementation as the component's `ivr-flow` interface.
#[macro_export]
macro_rules! export_ivr {
    ($t:ident) => {
        impl $crate::__bindings::ivr::exports::wasmswitch::plugin::ivr_flow::Guest for $t {
            fn on_event(event: $crate::IvrEvent) -> ::std::vec::Vec<$crate::IvrAction> {
                <$t as $crate::Ivr>::on_event(event)
            }
        }
        $crate::__bindings::ivr::export!($t with_types_in $crate::__bindings::ivr);
    };
}

/// Exports a [`Messaging`] implementation as the component's `message-policy` interface.
#[macro_export]
macro_rules! export_messaging {
    ($t:ident) => {
        impl $crate::__bindings::messaging::exports::wasmswitch::plugin::message_policy::Guest
            for $t
        {
            fn on_message(msg: $crate::Message) -> $crate::SmsDecision {
                <$t as $crate::Messaging>::on_message(msg)
            }
        }
        $crate::__bindings::messaging::export!($t with_types_in $crate::__bindings::messaging);
    };
}

/// Exports a type implementing all of [`Router`], [`Ivr`] and [`Messaging`] (world `switch`).
#[macro_export]
macro_rules! export_switch {
    ($t:ident) => {
        $crate::export_router!($t);
        $crate::export_ivr!($t);
        $crate::export_messaging!($t);
    };
}
