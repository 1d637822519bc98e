//! The contract versions the host speaks, and the one place it runs `bindgen!`.
//!
//! Each released version of `wasmswitch:plugin` has a module here (`v0_1`, ...) with its
//! generated bindings, the host's imports for it, and the conversions between its types and the
//! host's own ([`crate::model`]). A component's version is read from the names of the interfaces
//! it exports when it is loaded; [`Exports`] and [`Guests`] then dispatch to that version's
//! module, so the rest of the runtime never sees a generated type. Releasing a new version adds
//! a module and a [`Contract`] variant; the old ones stay, so every plugin built against them
//! keeps loading and behaving the same.
//!
//! Versions are matched as semver says: `0.1.x` plugins are all contract 0.1 (wasmtime looks
//! exports and imports up the same way), so a plugin built against a later compatible patch
//! release loads.

use std::fmt;

use wasmtime::Store;
use wasmtime::component::{Instance, InstancePre, Linker};

use crate::error::LoadError;
use crate::instance::CallState;
use crate::model;
use crate::runtime::Capability;

pub(crate) mod v0_1;

/// The package every plugin interface belongs to.
const PACKAGE: &str = "wasmswitch:plugin";

/// A release line of the plugin contract: the versions a plugin may target that the host
/// treats as one (semver-compatible) contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Contract {
    /// `wasmswitch:plugin@0.1.x`: `call-routing`, `ivr-flow`, `message-policy`.
    V0_1,
}

impl Contract {
    /// Every contract this host loads, oldest first.
    pub const SUPPORTED: &[Contract] = &[Contract::V0_1];

    /// The release line as "major.minor" (`0.1`).
    pub fn line(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1",
        }
    }

    /// The version this host's bindings were generated from (`0.1.0`).
    pub fn bound_version(self) -> semver::Version {
        match self {
            Contract::V0_1 => semver::Version::new(0, 1, 0),
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

    /// The capability an interface of this contract gives, by the interface's name.
    fn capability(self, interface: &str) -> Option<Capability> {
        match self {
            Contract::V0_1 => v0_1::capability(interface),
        }
    }

    /// The interface a capability is exported as (unversioned, e.g. `call-routing`).
    pub fn interface(self, capability: Capability) -> &'static str {
        match self {
            Contract::V0_1 => v0_1::interface(capability),
        }
    }

    /// The supported release lines, for error messages: `0.1`.
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
    /// The version in the component's export names (`0.1.0`, or a later compatible `0.1.3`).
    pub version: semver::Version,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.version.fmt(f)
    }
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
pub(crate) fn detect(exports: &[String]) -> Result<(Target, Vec<Capability>), LoadError> {
    let mut target: Option<Target> = None;
    let mut capabilities = Vec::new();
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
        if let Some(c) = contract.capability(interface) {
            capabilities.push(c);
        }
    }
    capabilities.sort();
    capabilities.dedup();
    match target {
        Some(t) if !capabilities.is_empty() => Ok((t, capabilities)),
        _ => Err(LoadError::NoPluginExport {
            found: exports.to_vec(),
        }),
    }
}

/// Adds the host's imports of every supported contract to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    v0_1::add_to_linker(linker)
}

/// Where a loaded component's exports are, resolved once per plugin version.
#[derive(Clone)]
pub(crate) enum Exports {
    V0_1(v0_1::Exports),
}

impl Exports {
    pub(crate) fn new(
        contract: Contract,
        pre: &InstancePre<CallState>,
        capabilities: &[Capability],
    ) -> wasmtime::Result<Self> {
        Ok(match contract {
            Contract::V0_1 => Exports::V0_1(v0_1::Exports::new(pre, capabilities)?),
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
        })
    }
}

/// One instance's exports, ready to call. Each call converts the host's model to the guest's
/// version and the answer back; a capability the component lacks is `None`.
#[derive(Clone)]
pub(crate) enum Guests {
    V0_1(v0_1::Guests),
}

impl Guests {
    pub(crate) fn has(&self, capability: Capability) -> bool {
        match self {
            Guests::V0_1(g) => g.has(capability),
        }
    }

    pub(crate) async fn route(
        &self,
        store: &mut Store<CallState>,
        call: &model::CallInfo,
    ) -> wasmtime::Result<model::RouteDecision> {
        match self {
            Guests::V0_1(g) => g.route(store, call).await,
        }
    }

    pub(crate) async fn on_call_event(
        &self,
        store: &mut Store<CallState>,
        event: &model::CallEvent,
    ) -> wasmtime::Result<Vec<model::CallAction>> {
        match self {
            Guests::V0_1(g) => g.on_call_event(store, event).await,
        }
    }

    pub(crate) async fn on_ivr_event(
        &self,
        store: &mut Store<CallState>,
        event: &model::IvrEvent,
    ) -> wasmtime::Result<Vec<model::IvrAction>> {
        match self {
            Guests::V0_1(g) => g.on_ivr_event(store, event).await,
        }
    }

    pub(crate) async fn on_message(
        &self,
        store: &mut Store<CallState>,
        msg: &model::Message,
    ) -> wasmtime::Result<model::SmsDecision> {
        match self {
            Guests::V0_1(g) => g.on_message(store, msg).await,
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
        assert_eq!(Contract::of(&v("0.2.0")), None);
        assert_eq!(Contract::of(&v("1.1.0")), None);
        assert_eq!(Contract::of(&v("0.0.1")), None);
        assert_eq!(Contract::of(&v("0.1.1-rc.1")), None);
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn detect_reads_version_and_capabilities() {
        let (target, caps) = detect(&names(&[
            "wasi:cli/run@0.2.0",
            "wasmswitch:plugin/ivr-flow@0.1.2",
            "wasmswitch:plugin/call-routing@0.1.2",
            "wasmswitch:plugin/something-newer@0.1.2",
        ]))
        .unwrap();
        assert_eq!(target.contract, Contract::V0_1);
        assert_eq!(target.to_string(), "0.1.2");
        assert_eq!(caps, vec![Capability::Routing, Capability::Ivr]);
    }

    #[test]
    fn detect_refuses_unknown_and_mixed_versions() {
        let err = detect(&names(&["wasmswitch:plugin/call-routing@0.9.0"])).unwrap_err();
        assert!(
            matches!(&err, LoadError::UnsupportedContract { found, supported } if found == "0.9.0" && supported == "0.1"),
            "{err:?}"
        );
        let (mixed, _) = detect(&names(&[
            "wasmswitch:plugin/call-routing@0.1.0",
            "wasmswitch:plugin/ivr-flow@0.1.1",
        ]))
        .unwrap();
        assert_eq!(mixed.to_string(), "0.1.1");
        let err = detect(&names(&["wasmswitch:plugin/call-routing@x"])).unwrap_err();
        assert!(matches!(err, LoadError::Invalid(_)), "{err:?}");
        let err = detect(&names(&["wasi:cli/run@0.2.0"])).unwrap_err();
        assert!(matches!(err, LoadError::NoPluginExport { .. }), "{err:?}");
    }
}
