//! The contract versions the host speaks, and the one place it runs `bindgen!`.
//!
//! Each released version of `wasmswitch:plugin` has a module here (`v0_1`, `v0_2`) with its
//! generated bindings, the host's imports for it, and the conversions between its types and the
//! host's model ([`crate::model`], which follows the newest contract). A component's version is
//! read from the names of the interfaces it exports when it is loaded; [`Exports`] and
//! [`Guests`] then dispatch to that version's module, so the rest of the runtime never sees a
//! generated type. Releasing a new version adds a module and a [`Contract`] variant; the old
//! ones stay (0.1 through an adapter onto the 0.2 event model), so every plugin built against
//! them keeps loading and behaving the same.
//!
//! Versions are matched as semver says: `0.2.x` plugins are all contract 0.2 (wasmtime looks
//! exports and imports up the same way), so a plugin built against a later compatible patch
//! release loads.

use std::fmt;

use wasmtime::Store;
use wasmtime::component::{Instance, InstancePre, Linker};

use crate::error::LoadError;
use crate::instance::CallState;
use crate::model::{self, v0_1 as v01};
use crate::runtime::Capability;

/// The host side of `log`, `kv` and `metrics` for one contract version's generated traits:
/// the same in every version (only the package version differs), so written once. Each
/// version's module invokes it with its generated modules in scope as `wit_log`, `wit_kv`,
/// `wit_metrics` and `wit` (the types interface).
macro_rules! host_imports {
    () => {
        impl wit_log::Host for CallState {
            fn log(&mut self, level: wit_log::Level, message: String) {
                let level = match level {
                    wit_log::Level::Trace => crate::LogLevel::Trace,
                    wit_log::Level::Debug => crate::LogLevel::Debug,
                    wit_log::Level::Info => crate::LogLevel::Info,
                    wit_log::Level::Warn => crate::LogLevel::Warn,
                    wit_log::Level::Error => crate::LogLevel::Error,
                };
                self.guest_log(level, message);
            }
        }

        impl wit_metrics::Host for CallState {
            fn counter_add(&mut self, name: String, delta: u64) {
                self.guest_counter_add(name, delta);
            }
        }

        fn kv_error(e: crate::kv::KvError) -> wit_kv::Error {
            match e {
                crate::kv::KvError::TooLarge => wit_kv::Error::TooLarge,
                crate::kv::KvError::Unavailable(why) => wit_kv::Error::Unavailable(why),
            }
        }

        impl wit_kv::Host for CallState {
            async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, wit_kv::Error> {
                self.guest_kv()
                    .get(self.tenant(), &key)
                    .await
                    .map_err(kv_error)
            }

            async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), wit_kv::Error> {
                self.guest_kv()
                    .set(self.tenant(), &key, &value)
                    .await
                    .map_err(kv_error)
            }

            async fn delete(&mut self, key: String) -> Result<(), wit_kv::Error> {
                self.guest_kv()
                    .delete(self.tenant(), &key)
                    .await
                    .map_err(kv_error)
            }

            async fn list_keys(
                &mut self,
                prefix: String,
                limit: u32,
            ) -> Result<Vec<String>, wit_kv::Error> {
                self.guest_kv()
                    .list_keys(self.tenant(), &prefix, limit)
                    .await
                    .map_err(kv_error)
            }
        }

        impl wit::Host for CallState {}
    };
}

pub(crate) mod v0_1;
pub(crate) mod v0_2;

pub(crate) use v0_1::{Adapter as AdapterV0_1, Interface as InterfaceV0_1, Roles};

/// The package every plugin interface belongs to.
const PACKAGE: &str = "wasmswitch:plugin";

/// A release line of the plugin contract: the versions a plugin may target that the host
/// treats as one (semver-compatible) contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Contract {
    /// `wasmswitch:plugin@0.1.x`: `call-routing`, `ivr-flow`, `message-policy`. Runs through
    /// an adapter onto the 0.2 model.
    V0_1,
    /// `wasmswitch:plugin@0.2.x`: `call-handler`, `message-policy`.
    V0_2,
}

impl Contract {
    /// Every contract this host loads, oldest first.
    pub const SUPPORTED: &[Contract] = &[Contract::V0_1, Contract::V0_2];

    /// The newest contract: what `plugin new` and the SDK target.
    pub const NEWEST: Contract = Contract::V0_2;

    /// The release line as "major.minor" (`0.1`).
    pub fn line(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1",
            Contract::V0_2 => "0.2",
        }
    }

    /// The version this host's bindings were generated from (`0.1.0`).
    pub fn bound_version(self) -> semver::Version {
        match self {
            Contract::V0_1 => semver::Version::new(0, 1, 0),
            Contract::V0_2 => semver::Version::new(0, 2, 0),
        }
    }

    /// The contract a version belongs to, if the host supports it. Like wasmtime's own export
    /// and import lookups: for 1.0 and later the major version must match, before 1.0 the
    /// minor; pre-releases match only themselves.
    pub fn of(version: &semver::Version) -> Option<Contract> {
        Contract::SUPPORTED.iter().copied().find(|c| {
            let bound = c.bound_version();
            if *version == bound {
                return true;
            }
            if !version.pre.is_empty() || !bound.pre.is_empty() {
                return *version == bound;
            }
            match (bound.major, version.major) {
                // 0.0.x matches only itself (above); 0.y.x matches 0.y.*.
                (0, 0) => bound.minor == version.minor && bound.minor != 0,
                (b, v) => b == v,
            }
        })
    }

    /// Whether this contract has an interface of that (unversioned) name.
    fn knows(self, interface: &str) -> bool {
        match self {
            Contract::V0_1 => v0_1::knows(interface),
            Contract::V0_2 => v0_2::capability(interface).is_some(),
        }
    }

    /// The interface a capability is exported as (unversioned, e.g. `call-handler`).
    pub fn interface(self, capability: Capability) -> &'static str {
        match self {
            Contract::V0_1 => v0_1::interface(capability),
            Contract::V0_2 => v0_2::interface(capability),
        }
    }

    /// The supported release lines, for error messages: `0.1, 0.2`.
    pub fn supported_list() -> String {
        Contract::SUPPORTED
            .iter()
            .map(|c| c.line())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.line())
    }
}

/// The exact contract version a component was built against, as its exports name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The contract whose bindings run it.
    pub contract: Contract,
    /// The version in the component's export names (`0.2.0`, or a later compatible `0.2.3`).
    pub version: semver::Version,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.version.fmt(f)
    }
}

/// What a component's exports say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Detected {
    pub(crate) target: Target,
    /// What it can do, in a stable order.
    pub(crate) capabilities: Vec<Capability>,
    /// The world its exports make (`router`, `ivr`, `messaging`, `switch`, or 0.1's joined
    /// worlds such as `router+messaging`). In 0.2 `router` and `ivr` export the same interface
    /// and cannot be told apart: a 0.2 call handler is a `router`.
    pub(crate) world: String,
    /// For 0.1: which of its interfaces it exports.
    pub(crate) roles: v0_1::Roles,
    /// The contract's interfaces it exports, unversioned (`call-handler`), in a stable order.
    pub(crate) interfaces: Vec<String>,
}

/// Splits `wasmswitch:plugin/<interface>@<version>` into its interface and version; none for
/// any other export name.
fn plugin_export(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    rest.split_once('@')
}

/// Reads the contract a component targets and what it can do from the names of the interface
/// instances it exports.
///
/// Exports outside `wasmswitch:plugin` are ignored (a language's runtime may export its own);
/// so are interfaces a compatible later release added that this host does not know. A version
/// the host does not support, or exports from two contracts, refuse the component.
pub(crate) fn detect(exports: &[String]) -> Result<Detected, LoadError> {
    let mut target: Option<Target> = None;
    let mut interfaces = Vec::new();
    for name in exports {
        let Some((interface, version)) = plugin_export(name) else {
            continue;
        };
        let parsed = semver::Version::parse(version).map_err(|e| {
            LoadError::Invalid(format!("the export {name} has an invalid version: {e}"))
        })?;
        let contract = Contract::of(&parsed).ok_or_else(|| LoadError::UnsupportedContract {
            found: parsed.to_string(),
            supported: Contract::supported_list(),
        })?;
        match &mut target {
            Some(t) if t.contract != contract => {
                return Err(LoadError::Invalid(format!(
                    "the component exports interfaces of two contract versions ({} and {parsed}); build it against one",
                    t.version
                )));
            }
            // Compatible patch releases may mix (a composed component); the newest names it.
            Some(t) => t.version = t.version.clone().max(parsed),
            None => {
                target = Some(Target {
                    contract,
                    version: parsed,
                })
            }
        }
        if contract.knows(interface) {
            interfaces.push(interface);
        }
    }
    let Some(target) = target.filter(|_| !interfaces.is_empty()) else {
        return Err(LoadError::NoPluginExport {
            found: exports.to_vec(),
        });
    };
    interfaces.sort();
    interfaces.dedup();
    let (capabilities, world, roles) = match target.contract {
        Contract::V0_1 => {
            let roles = v0_1::Roles::of(&interfaces);
            (roles.capabilities(), roles.world(), roles)
        }
        Contract::V0_2 => {
            let mut caps: Vec<Capability> = interfaces
                .iter()
                .filter_map(|i| v0_2::capability(i))
                .collect();
            caps.sort();
            caps.dedup();
            let world = match caps.as_slice() {
                [Capability::Calls] => "router",
                [Capability::Messaging] => "messaging",
                _ => "switch",
            };
            (caps, world.to_string(), v0_1::Roles::default())
        }
    };
    Ok(Detected {
        target,
        capabilities,
        world,
        roles,
        interfaces: interfaces.into_iter().map(String::from).collect(),
    })
}

/// Adds the host's imports of every supported contract to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    v0_1::add_to_linker(linker)?;
    v0_2::add_to_linker(linker)
}

/// Where a loaded component's exports are, resolved once per plugin version.
#[derive(Clone)]
pub(crate) enum Exports {
    V0_1(v0_1::Exports),
    V0_2(v0_2::Exports),
}

impl Exports {
    pub(crate) fn new(detected: &Detected, pre: &InstancePre<CallState>) -> wasmtime::Result<Self> {
        Ok(match detected.target.contract {
            Contract::V0_1 => Exports::V0_1(v0_1::Exports::new(pre, detected.roles)?),
            Contract::V0_2 => Exports::V0_2(v0_2::Exports::new(pre, &detected.capabilities)?),
        })
    }

    /// The handles to one instance's exports.
    pub(crate) fn load(
        &self,
        store: &mut Store<CallState>,
        instance: &Instance,
    ) -> wasmtime::Result<Guests> {
        Ok(match self {
            Exports::V0_1(e) => Guests::V0_1(e.load(store, instance)?),
            Exports::V0_2(e) => Guests::V0_2(e.load(store, instance)?),
        })
    }
}

/// One instance's exports, ready to call. Each call converts the host's model to the guest's
/// version and the answer back.
#[derive(Clone)]
pub(crate) enum Guests {
    V0_1(v0_1::Guests),
    V0_2(v0_2::Guests),
}

/// A contract-0.1 function called on a component of another contract.
fn not_v0_1() -> wasmtime::Error {
    wasmtime::format_err!("the component is not a contract 0.1 plugin")
}

impl Guests {
    pub(crate) fn has(&self, capability: Capability) -> bool {
        match self {
            Guests::V0_1(g) => g.has(capability),
            Guests::V0_2(g) => g.has(capability),
        }
    }

    /// Whether a 0.1 component exports the 0.1 interface of that name.
    pub(crate) fn exports_v0_1(&self, interface: InterfaceV0_1) -> bool {
        match self {
            Guests::V0_1(g) => g.exports(interface),
            Guests::V0_2(_) => false,
        }
    }

    pub(crate) async fn on_event(
        &self,
        store: &mut Store<CallState>,
        event: &model::CallEvent,
    ) -> wasmtime::Result<Vec<model::Action>> {
        match self {
            Guests::V0_1(g) => g.on_event(store, event).await,
            Guests::V0_2(g) => g.on_event(store, event).await,
        }
    }

    pub(crate) async fn on_message(
        &self,
        store: &mut Store<CallState>,
        msg: &model::Message,
    ) -> wasmtime::Result<model::SmsDecision> {
        match self {
            Guests::V0_1(g) => g.on_message(store, msg).await,
            Guests::V0_2(g) => g.on_message(store, msg).await,
        }
    }

    pub(crate) async fn on_delivery(
        &self,
        store: &mut Store<CallState>,
        report: &model::DeliveryReport,
    ) -> wasmtime::Result<()> {
        match self {
            // 0.1 has no delivery reports: nothing to tell.
            Guests::V0_1(_) => Ok(()),
            Guests::V0_2(g) => g.on_delivery(store, report).await,
        }
    }

    pub(crate) async fn route_v0_1(
        &self,
        store: &mut Store<CallState>,
        call: &v01::CallInfo,
    ) -> wasmtime::Result<v01::RouteDecision> {
        match self {
            Guests::V0_1(g) => g.route(store, call).await,
            Guests::V0_2(_) => Err(not_v0_1()),
        }
    }

    pub(crate) async fn on_call_event_v0_1(
        &self,
        store: &mut Store<CallState>,
        event: &v01::CallEvent,
    ) -> wasmtime::Result<Vec<v01::CallAction>> {
        match self {
            Guests::V0_1(g) => g.on_call_event(store, event).await,
            Guests::V0_2(_) => Err(not_v0_1()),
        }
    }

    pub(crate) async fn on_ivr_event_v0_1(
        &self,
        store: &mut Store<CallState>,
        event: &v01::IvrEvent,
    ) -> wasmtime::Result<Vec<v01::IvrAction>> {
        match self {
            Guests::V0_1(g) => g.on_ivr_event(store, event).await,
            Guests::V0_2(_) => Err(not_v0_1()),
        }
    }

    pub(crate) async fn on_message_v0_1(
        &self,
        store: &mut Store<CallState>,
        msg: &v01::Message,
    ) -> wasmtime::Result<v01::SmsDecision> {
        match self {
            Guests::V0_1(g) => g.on_message_v0_1(store, msg).await,
            Guests::V0_2(_) => Err(not_v0_1()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).unwrap()
    }

    #[test]
    fn versions_match_by_semver_track() {
        assert_eq!(Contract::of(&v("0.1.0")), Some(Contract::V0_1));
        assert_eq!(Contract::of(&v("0.1.7")), Some(Contract::V0_1));
        assert_eq!(Contract::of(&v("0.2.0")), Some(Contract::V0_2));
        assert_eq!(Contract::of(&v("0.2.9")), Some(Contract::V0_2));
        assert_eq!(Contract::of(&v("0.3.0")), None);
        assert_eq!(Contract::of(&v("1.1.0")), None);
        assert_eq!(Contract::of(&v("0.0.1")), None);
        assert_eq!(Contract::of(&v("0.1.1-rc.1")), None);
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn detect_reads_version_and_capabilities() {
        let d = detect(&names(&[
            "wasi:cli/run@0.2.0",
            "wasmswitch:plugin/ivr-flow@0.1.2",
            "wasmswitch:plugin/call-routing@0.1.2",
            "wasmswitch:plugin/something-newer@0.1.2",
        ]))
        .unwrap();
        assert_eq!(d.target.contract, Contract::V0_1);
        assert_eq!(d.target.to_string(), "0.1.2");
        assert_eq!(d.capabilities, vec![Capability::Calls]);
        assert_eq!(d.world, "router+ivr");
        assert!(d.roles.routing && d.roles.ivr && !d.roles.messaging);

        let d = detect(&names(&[
            "wasmswitch:plugin/call-handler@0.2.1",
            "wasmswitch:plugin/message-policy@0.2.1",
        ]))
        .unwrap();
        assert_eq!(d.target.contract, Contract::V0_2);
        assert_eq!(
            d.capabilities,
            vec![Capability::Calls, Capability::Messaging]
        );
        assert_eq!(d.world, "switch");
        let d = detect(&names(&["wasmswitch:plugin/call-handler@0.2.0"])).unwrap();
        assert_eq!(d.world, "router");
        // A 0.1 interface name under a 0.2 version is nothing the host knows.
        let err = detect(&names(&["wasmswitch:plugin/call-routing@0.2.0"])).unwrap_err();
        assert!(matches!(err, LoadError::NoPluginExport { .. }), "{err:?}");
    }

    #[test]
    fn detect_refuses_unknown_and_mixed_versions() {
        let err = detect(&names(&["wasmswitch:plugin/call-routing@0.9.0"])).unwrap_err();
        assert!(
            matches!(&err, LoadError::UnsupportedContract { found, supported } if found == "0.9.0" && supported == "0.1, 0.2"),
            "{err:?}"
        );
        let mixed = detect(&names(&[
            "wasmswitch:plugin/call-routing@0.1.0",
            "wasmswitch:plugin/ivr-flow@0.1.1",
        ]))
        .unwrap();
        assert_eq!(mixed.target.to_string(), "0.1.1");
        let err = detect(&names(&[
            "wasmswitch:plugin/call-routing@0.1.0",
            "wasmswitch:plugin/call-handler@0.2.0",
        ]))
        .unwrap_err();
        assert!(matches!(err, LoadError::Invalid(_)), "{err:?}");
        let err = detect(&names(&["wasmswitch:plugin/call-routing@x"])).unwrap_err();
        assert!(matches!(err, LoadError::Invalid(_)), "{err:?}");
        let err = detect(&names(&["wasi:cli/run@0.2.0"])).unwrap_err();
        assert!(matches!(err, LoadError::NoPluginExport { .. }), "{err:?}");
    }
}
