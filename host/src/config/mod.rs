//! `wasmswitch.toml`: every setting, its default, and its `WASMSWITCH_*` override.
//!
//! Settings come, later ones winning, from: the defaults below, the file (`--config`, default
//! `wasmswitch.toml` if it exists), then the environment. An environment variable is
//! `WASMSWITCH_<SECTION>_<KEY>`, e.g. `WASMSWITCH_API_LISTEN=0.0.0.0:9090` or
//! `WASMSWITCH_PLUGINS_DEADLINE_MS=50`; `DATABASE_URL` also sets `database.url`. Lists take
//! TOML syntax: `WASMSWITCH_API_OPERATOR_KEYS='["..."]'`.
//!
//! The documented example with every setting is `wasmswitch.example.toml` at the repository
//! root; [`Config::example`] returns it, and a test checks that it parses to the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub api: ApiConfig,
    pub database: DatabaseConfig,
    pub sip: SipConfig,
    pub plugins: PluginsConfig,
    pub calls: CallsSettings,
    pub log: LogConfig,
}

/// `[api]`: the REST API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Where the API listens. Default `0.0.0.0:8080`.
    pub listen: String,
    /// Operator API keys accepted besides those in the database (e.g. from a secret store).
    /// Each at least 32 characters. Default none: on first start the host creates one in the
    /// database and prints it once.
    pub operator_keys: Vec<String>,
    /// Secret for HS256 bearer tokens (JWT) minted by `POST /v1/tokens` or by your own
    /// identity service. At least 32 bytes; empty turns tokens off. Default empty.
    pub jwt_secret: String,
    /// The longest lifetime `POST /v1/tokens` grants, in seconds. Default 86400 (a day).
    pub jwt_max_ttl_secs: u64,
    /// Requests per second each credential may make, sustained. Default 50. Live.
    pub rate_limit_per_second: u32,
    /// Requests a credential may make in a burst above the sustained rate. Default 100. Live.
    pub rate_limit_burst: u32,
    /// The largest JSON request body, in bytes. Default 1 MiB.
    pub max_body_bytes: usize,
    /// The largest plugin upload, in bytes. Default 64 MiB (a Python plugin is ~18 MB).
    pub max_upload_bytes: usize,
    /// Failed authentications per minute each source address may make, sustained (an IPv6
    /// address counts by its /64). Past it, its failures answer 429 and its credentials are
    /// checked only if that needs no database read. Default 60. Live.
    pub auth_failures_per_minute: u32,
    /// Failed authentications a source address may make in a burst. Default 20. Live.
    pub auth_failure_burst: u32,
    /// Seconds a client may take to send a request's headers, or pause while sending its
    /// body; also how long an idle connection stays open. Default 10.
    pub read_timeout_secs: u64,
    /// Addresses of proxies in front of the API (a load balancer, an ingress) whose
    /// `X-Forwarded-For` names the client, so failed authentications are counted per client
    /// rather than per proxy. Default none: the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
    /// Threads that run `simulate` requests' plugin code, apart from the API's own. Default
    /// 0: half the CPUs, at least 1.
    pub simulate_threads: usize,
    /// Simulations running at once on this host. Each may use the plugins' memory cap, so
    /// this bounds their memory too. Default 4.
    pub simulate_concurrency: usize,
    /// Simulations running at once for one tenant. Default 2.
    pub simulate_per_tenant: usize,
    /// Milliseconds a simulation waits for a free slot before it is answered 503 with
    /// Retry-After. Default 1000.
    pub simulate_queue_ms: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            operator_keys: Vec::new(),
            jwt_secret: String::new(),
            jwt_max_ttl_secs: 86_400,
            rate_limit_per_second: 50,
            rate_limit_burst: 100,
            max_body_bytes: 1 << 20,
            max_upload_bytes: 64 << 20,
            auth_failures_per_minute: 60,
            auth_failure_burst: 20,
            read_timeout_secs: 10,
            trusted_proxies: Vec::new(),
            simulate_threads: 0,
            simulate_concurrency: 4,
            simulate_per_tenant: 2,
            simulate_queue_ms: 1000,
        }
    }
}

/// `[database]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (created on first start) or `postgres://USER:PASS@HOST:PORT/DB`.
    /// Default `sqlite://wasmswitch-data/wasmswitch.db`. `DATABASE_URL` overrides it.
    pub url: String,
    /// Run migrations at start-up. Default true; `wasmswitch migrate` runs them on demand.
    pub migrate_on_start: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://wasmswitch-data/wasmswitch.db".into(),
            migrate_on_start: true,
        }
    }
}

/// `[sip]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Where SIP listens, over UDP and TCP on the same address. Default `0.0.0.0:5060`; port 0
    /// picks a free port for each (tests do).
    pub listen: String,
    /// The switch's SIP domain. Each tenant's phones register in `<tenant>.<domain>` (its
    /// digest realm too), or in a domain the tenant sets through the API. Default
    /// `wasmswitch.local`.
    pub domain: String,
    /// The digest algorithms a REGISTER is challenged with, most preferred first (RFC 8760):
    /// `SHA-256`, `MD5`. Default both, SHA-256 first. Some phones, and sipp, answer only the
    /// first challenge and know only MD5: for them put `MD5` first or alone.
    pub digest_algorithms: Vec<String>,
    /// The shortest registration accepted, in seconds; a shorter one is answered 423 with
    /// Min-Expires. Default 60.
    pub min_expires_secs: u32,
    /// The longest registration granted, in seconds; a longer one is shortened. Default 3600.
    pub max_expires_secs: u32,
    /// What a REGISTER that names no expiry gets, in seconds. Default 3600.
    pub default_expires_secs: u32,
    /// Contacts one SIP user may have registered at once. Default 10.
    pub max_contacts: u32,
    /// REGISTERs being handled at once (each waits on the database); past it a REGISTER is
    /// answered 503 with Retry-After at once. Default 256.
    pub register_concurrency: u32,
    /// Failed digest authentications a source address may make in a burst before its
    /// REGISTERs are refused without a database read (an IPv6 address counts by its /64).
    /// Default 20.
    pub auth_failure_burst: u32,
    /// Failed digest authentications per minute a source address may make, sustained.
    /// Default 60.
    pub auth_failures_per_minute: u32,
    /// Requests per second one source address may send, sustained, before the rest are
    /// dropped unread (an IPv6 address counts by its /64); 0 turns the limit off. Default 100.
    pub rate_limit_per_second: u32,
    /// Requests a source address may send in a burst. Default 200.
    pub rate_limit_burst: u32,
    /// Addresses never rate-limited: trunks and proxies that carry many calls from one
    /// address. Default none.
    pub rate_limit_exempt: Vec<String>,
    /// The largest SIP message accepted, in bytes. Default 65535.
    pub max_message_bytes: usize,
    /// T1, the round-trip estimate retransmissions start from, in ms (RFC 3261). Default 500.
    pub t1_ms: u64,
    /// T2, the cap on retransmission intervals, in ms. Default 4000.
    pub t2_ms: u64,
    /// The address providers and phones should reach the switch at, `ip` or `ip:port`, for the
    /// `Via` and `Contact` of requests the switch sends (registering with trunks) when it sits
    /// behind NAT. Empty: the address SIP is bound to, or when bound to every interface the
    /// local address the system routes to the peer from. Default empty.
    pub public_address: String,
    /// The registration lifetime the switch asks of trunks it registers with, in seconds
    /// (they may grant less; it refreshes at 85% of the grant, and at least 37 s before it
    /// lapses). Default 3600.
    pub trunk_register_expires_secs: u32,
    /// Where SIP over TLS listens (port 5061 is SIP's); empty: no TLS. Default empty.
    pub tls_listen: String,
    /// The certificate chain served over TLS, PEM (the server's certificate first). Live: read
    /// again on every reload (SIGHUP, or when it or the configuration file changes), so a
    /// renewed certificate is served without a restart.
    pub tls_cert_file: String,
    /// The certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1). Live, as the certificate.
    pub tls_key_file: String,
    /// More certificate authorities (PEM) to trust, beside Mozilla's roots, when the switch
    /// opens a TLS connection (a trunk with `"transport": "tls"` whose certificate a private
    /// CA issued). Read at start. Default empty.
    pub tls_ca_file: String,
    /// How long opening a TCP or TLS connection to a peer may take, in ms; past it the
    /// request fails as unreachable. Default 5000.
    pub connect_timeout_ms: u64,
    /// TCP and TLS connections open at once, in all. Default 16384.
    pub max_connections: usize,
    /// TCP and TLS connections one address (an IPv6 /64) may hold open to the switch;
    /// addresses in `rate_limit_exempt` are not capped. Default 128.
    pub max_connections_per_address: usize,
    /// Seconds between RFC 5626 keep-alive pings (a double CRLF) on TCP and TLS connections
    /// the switch opens (to trunks), so NATs and firewalls keep them; a provider that answers
    /// pings and stops answering has its connection closed (10 s). 0: no pings. Default 90.
    pub keepalive_secs: u64,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:5060".into(),
            domain: "wasmswitch.local".into(),
            digest_algorithms: vec!["SHA-256".into(), "MD5".into()],
            min_expires_secs: 60,
            max_expires_secs: 3600,
            default_expires_secs: 3600,
            max_contacts: 10,
            register_concurrency: 256,
            auth_failure_burst: 20,
            auth_failures_per_minute: 60,
            rate_limit_per_second: 100,
            rate_limit_burst: 200,
            rate_limit_exempt: Vec::new(),
            max_message_bytes: 65535,
            t1_ms: 500,
            t2_ms: 4000,
            public_address: String::new(),
            trunk_register_expires_secs: 3600,
            tls_listen: String::new(),
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            tls_ca_file: String::new(),
            connect_timeout_ms: 5000,
            max_connections: 16_384,
            max_connections_per_address: 128,
            keepalive_secs: 90,
        }
    }
}

impl SipConfig {
    fn validate(&self, bad: &mut Vec<String>) {
        if !crate::store::valid_sip_domain(&self.domain) {
            bad.push(format!(
                "sip.domain: {:?} must be a lower-case DNS name such as wasmswitch.local",
                self.domain
            ));
        }
        if self.digest_algorithms.is_empty() {
            bad.push("sip.digest_algorithms: name at least one of SHA-256, MD5".into());
        }
        for a in &self.digest_algorithms {
            if wasmswitch_sip::digest::Algorithm::parse(a.as_bytes()).is_none() {
                bad.push(format!(
                    "sip.digest_algorithms: {a:?} is not SHA-256 or MD5"
                ));
            }
        }
        if !(1..=86_400).contains(&self.min_expires_secs) {
            bad.push("sip.min_expires_secs: must be 1-86400".into());
        }
        if self.max_expires_secs < self.min_expires_secs || self.max_expires_secs > 604_800 {
            bad.push("sip.max_expires_secs: must be min_expires_secs-604800".into());
        }
        if !(self.min_expires_secs..=self.max_expires_secs).contains(&self.default_expires_secs) {
            bad.push(
                "sip.default_expires_secs: must be between min_expires_secs and max_expires_secs"
                    .into(),
            );
        }
        if !(1..=1000).contains(&self.max_contacts) {
            bad.push("sip.max_contacts: must be 1-1000".into());
        }
        if !(1..=100_000).contains(&self.register_concurrency) {
            bad.push("sip.register_concurrency: must be 1-100000".into());
        }
        if self.auth_failure_burst == 0 || self.auth_failures_per_minute == 0 {
            bad.push(
                "sip.auth_failure_burst, sip.auth_failures_per_minute: must be at least 1".into(),
            );
        }
        if self.rate_limit_per_second > 0 && self.rate_limit_burst == 0 {
            bad.push("sip.rate_limit_burst: must be at least 1 when the rate limit is on".into());
        }
        for (i, a) in self.rate_limit_exempt.iter().enumerate() {
            if a.parse::<std::net::IpAddr>().is_err() {
                bad.push(format!(
                    "sip.rate_limit_exempt[{i}]: {a:?} is not an IP address"
                ));
            }
        }
        if !(1500..=1_048_576).contains(&self.max_message_bytes) {
            bad.push("sip.max_message_bytes: must be 1500-1048576".into());
        }
        if !(50..=10_000).contains(&self.t1_ms) {
            bad.push("sip.t1_ms: must be 50-10000".into());
        }
        if self.t2_ms < self.t1_ms || self.t2_ms > 60_000 {
            bad.push("sip.t2_ms: must be t1_ms-60000".into());
        }
        if !self.public_address.is_empty() && self.public_address(5060).is_none() {
            bad.push(format!(
                "sip.public_address: {:?} is not an IP address, with or without a port",
                self.public_address
            ));
        }
        if !(60..=86_400).contains(&self.trunk_register_expires_secs) {
            bad.push("sip.trunk_register_expires_secs: must be 60-86400".into());
        }
        if self.keepalive_secs > 3600 {
            bad.push("sip.keepalive_secs: must be 0-3600".into());
        }
        if !(100..=60_000).contains(&self.connect_timeout_ms) {
            bad.push("sip.connect_timeout_ms: must be 100-60000".into());
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            bad.push("sip.max_connections: must be 1-1000000".into());
        }
        if !(1..=self.max_connections.max(1)).contains(&self.max_connections_per_address) {
            bad.push("sip.max_connections_per_address: must be 1-max_connections".into());
        }
        if !self.tls_listen.is_empty() {
            if self.tls_listen.parse::<SocketAddr>().is_err() {
                bad.push(format!(
                    "sip.tls_listen: {:?} is not an address like 0.0.0.0:5061",
                    self.tls_listen
                ));
            }
            if self.tls_cert_file.is_empty() || self.tls_key_file.is_empty() {
                bad.push(
                    "sip.tls_cert_file, sip.tls_key_file: TLS (sip.tls_listen) needs a certificate and its key".into(),
                );
            }
        }
    }

    /// `public_address` as a socket address, with `port` when it names none; `None` when it
    /// is empty or not an address.
    pub fn public_address(&self, port: u16) -> Option<SocketAddr> {
        let a = self.public_address.as_str();
        a.parse::<SocketAddr>().ok().or_else(|| {
            a.parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, port))
        })
    }

    /// The digest algorithms offered, parsed (names that do not parse were refused by
    /// `validate`).
    pub fn digest_algorithms(&self) -> Vec<wasmswitch_sip::digest::Algorithm> {
        self.digest_algorithms
            .iter()
            .filter_map(|a| wasmswitch_sip::digest::Algorithm::parse(a.as_bytes()))
            .collect()
    }
}

/// `[plugins]`: the WebAssembly runtime's limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// How long one call into a plugin may run, in ms (1-10000). Default 100. Live.
    pub deadline_ms: u64,
    /// The most linear memory one plugin instance may use, in MiB (1-4096). Default 128.
    /// Live, up to the value the host started with (the pool reserves address space for it).
    pub max_memory_mib: u64,
    /// The most plugin instances alive at once (one per call). Default 10000.
    pub max_instances: u32,
    /// The most plugin instances one tenant may have alive at once, so one tenant's flood of
    /// calls cannot take every slot from the others; past it the decision is a 503, not the
    /// tenant's fallback. Default 2000 (with a smaller max_instances it does nothing).
    pub max_instances_per_tenant: u32,
    /// Fresh instances kept ready per plugin version that carries calls, so a call does not
    /// wait for instantiation. Default 0 (off): it slows Rust plugins down and speeds Python
    /// and JavaScript ones up (BENCHMARKS.md).
    pub warm_instances: usize,
    /// Where compiled components are cached. Default `wasmswitch-data/cache`; empty turns the
    /// cache off. Must be writable only by the host: its files are loaded as machine code.
    pub cache_dir: String,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            deadline_ms: 100,
            max_memory_mib: 128,
            max_instances: 10_000,
            max_instances_per_tenant: 2_000,
            warm_instances: 0,
            cache_dir: "wasmswitch-data/cache".into(),
        }
    }
}

/// `[calls]`: the B2BUA's caps and shutdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsSettings {
    /// The most calls this host carries at once (1-1000000); a new call past it gets `503`
    /// with `Retry-After`. Default 10000, the plugin runtime's default instance pool: every
    /// call holds a router instance while it may still hear events.
    pub max_calls: u32,
    /// A tenant's cap on concurrent calls when the tenant has none of its own (the operator
    /// sets one with `PUT /v1/tenants/{id}/limits`). Default 2000, a fifth of the host, so
    /// one tenant's flood cannot take every slot.
    pub tenant_max_calls: u32,
    /// A tenant's cap on new calls per second (a burst of one second's worth) when it has none
    /// of its own. Default 200.
    pub tenant_calls_per_second: u32,
    /// On SIGTERM, how long running calls may go on, in seconds, before the switch ends them
    /// with BYE (0-86400). New calls are refused at once and OPTIONS answers 503. Default 60.
    pub drain_secs: u64,
    /// This host's name in CDRs (`host_id`): a restart marks the calls its previous run
    /// left `running` as `interrupted`. Default: the machine's host name. Hosts sharing a
    /// database need different names.
    pub host_id: String,
}

impl Default for CallsSettings {
    fn default() -> Self {
        Self {
            max_calls: 10_000,
            tenant_max_calls: 2_000,
            tenant_calls_per_second: 200,
            drain_secs: 60,
            host_id: String::new(),
        }
    }
}

impl CallsSettings {
    /// The host id in force: the setting, else the machine's host name, else `wasmswitch`.
    pub fn host_id(&self) -> String {
        if !self.host_id.is_empty() {
            return self.host_id.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "wasmswitch".to_owned())
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `wasmswitch=debug,info` ... Default `info`. Live.
    pub level: String,
    /// `text` or `json`. Default `text`.
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Why the configuration was refused: one message per bad field.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

/// The sections whose keys an environment variable can name.
const SECTIONS: [&str; 6] = ["api", "database", "sip", "plugins", "calls", "log"];

impl Config {
    /// The documented example file (every setting at its default).
    pub fn example() -> &'static str {
        include_str!("../../../wasmswitch.example.toml")
    }

    /// Reads the defaults, then `file` (if given, it must exist; if not, `wasmswitch.toml` is
    /// read when present), then the environment; then checks every field.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// [`Config::load`] with the environment passed in (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError(vec![format!(
                        "config file {} does not exist",
                        path.display()
                    )]));
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None if Path::new("wasmswitch.toml").exists() => {
                figment = figment.merge(Toml::file_exact("wasmswitch.toml"));
            }
            None => {}
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        let mut overrides = Vec::new();
        for (name, value) in &env {
            if name == "DATABASE_URL" {
                overrides.push(("database.url".to_string(), value.clone()));
                continue;
            }
            let Some(rest) = name.strip_prefix("WASMSWITCH_") else {
                continue;
            };
            let rest = rest.to_ascii_lowercase();
            let Some((section, key)) = rest.split_once('_') else {
                continue;
            };
            if SECTIONS.contains(&section) {
                overrides.push((format!("{section}.{key}"), value.clone()));
            } else if !matches!(rest.as_str(), "config" | "test_postgres_url") {
                return Err(ConfigError(vec![format!(
                    "{name}: unknown section {section:?} (expected one of {SECTIONS:?})"
                )]));
            }
        }
        let defaults = toml::Value::try_from(Config::default())
            .map_err(|e| ConfigError(vec![format!("defaults: {e}")]))?;
        for (key, raw) in overrides {
            let Some(default) = key.split('.').try_fold(&defaults, |v, part| v.get(part)) else {
                return Err(ConfigError(vec![format!(
                    "{key}: no such setting (from the environment)"
                )]));
            };
            figment = figment.merge(Serialized::default(&key, env_value(default, &raw)));
        }
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError(e.into_iter().map(|e| e.to_string()).collect()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut bad = Vec::new();
        if self.api.listen.parse::<SocketAddr>().is_err() {
            bad.push(format!(
                "api.listen: {:?} is not an address like 0.0.0.0:8080",
                self.api.listen
            ));
        }
        if self.sip.listen.parse::<SocketAddr>().is_err() {
            bad.push(format!(
                "sip.listen: {:?} is not an address like 0.0.0.0:5060",
                self.sip.listen
            ));
        }
        self.sip.validate(&mut bad);
        for (i, key) in self.api.operator_keys.iter().enumerate() {
            if key.len() < 32 {
                bad.push(format!(
                    "api.operator_keys[{i}]: must be at least 32 characters"
                ));
            }
        }
        if !self.api.jwt_secret.is_empty() && self.api.jwt_secret.len() < 32 {
            bad.push(
                "api.jwt_secret: must be at least 32 bytes (or empty to turn tokens off)".into(),
            );
        }
        if self.api.rate_limit_per_second == 0 {
            bad.push("api.rate_limit_per_second: must be at least 1".into());
        }
        if self.api.auth_failures_per_minute == 0 || self.api.auth_failure_burst == 0 {
            bad.push(
                "api.auth_failures_per_minute, api.auth_failure_burst: must be at least 1".into(),
            );
        }
        for (i, p) in self.api.trusted_proxies.iter().enumerate() {
            if p.parse::<std::net::IpAddr>().is_err() {
                bad.push(format!(
                    "api.trusted_proxies[{i}]: {p:?} is not an IP address"
                ));
            }
        }
        if !(1..=3600).contains(&self.api.read_timeout_secs) {
            bad.push("api.read_timeout_secs: must be 1-3600".into());
        }
        if self.api.simulate_threads > 256 {
            bad.push("api.simulate_threads: must be 0-256".into());
        }
        if !(1..=1024).contains(&self.api.simulate_concurrency) {
            bad.push("api.simulate_concurrency: must be 1-1024".into());
        }
        if !(1..=1024).contains(&self.api.simulate_per_tenant) {
            bad.push("api.simulate_per_tenant: must be 1-1024".into());
        }
        if self.api.simulate_queue_ms > 60_000 {
            bad.push("api.simulate_queue_ms: must be 0-60000".into());
        }
        if self.api.max_upload_bytes < 1024 {
            bad.push("api.max_upload_bytes: must be at least 1024".into());
        }
        if self.api.max_body_bytes < 1024 {
            bad.push("api.max_body_bytes: must be at least 1024".into());
        }
        if crate::store::Backend::from_url(&self.database.url).is_err() {
            bad.push(format!(
                "database.url: {:?} must start with sqlite:// or postgres://",
                redact_url(&self.database.url)
            ));
        }
        if !(1..=10_000).contains(&self.plugins.deadline_ms) {
            bad.push("plugins.deadline_ms: must be 1-10000".into());
        }
        if !(1..=4096).contains(&self.plugins.max_memory_mib) {
            bad.push("plugins.max_memory_mib: must be 1-4096".into());
        }
        if self.plugins.warm_instances > 64 {
            bad.push("plugins.warm_instances: must be 0-64".into());
        }
        if !(1..=1_000_000).contains(&self.calls.max_calls) {
            bad.push("calls.max_calls: must be 1-1000000".into());
        }
        if !(1..=1_000_000).contains(&self.calls.tenant_max_calls) {
            bad.push("calls.tenant_max_calls: must be 1-1000000".into());
        }
        if !(1..=1_000_000).contains(&self.calls.tenant_calls_per_second) {
            bad.push("calls.tenant_calls_per_second: must be 1-1000000".into());
        }
        if self.calls.drain_secs > 86_400 {
            bad.push("calls.drain_secs: must be 0-86400".into());
        }
        if self.calls.host_id.len() > 128 || self.calls.host_id.chars().any(char::is_control) {
            bad.push(
                "calls.host_id: at most 128 characters, none of them control characters".into(),
            );
        }
        if !(1..=1_000_000).contains(&self.plugins.max_instances) {
            bad.push("plugins.max_instances: must be 1-1000000".into());
        }
        if !(1..=1_000_000).contains(&self.plugins.max_instances_per_tenant) {
            bad.push("plugins.max_instances_per_tenant: must be 1-1000000".into());
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            bad.push(format!(
                "log.level: {:?} is not a filter like info or wasmswitch=debug",
                self.log.level
            ));
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(bad))
        }
    }

    pub fn api_listen(&self) -> SocketAddr {
        self.api
            .listen
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 8080)))
    }

    /// `api.trusted_proxies`, parsed (entries that do not parse were refused by `validate`).
    pub fn trusted_proxies(&self) -> Vec<std::net::IpAddr> {
        self.api
            .trusted_proxies
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// The rate limits of `[api]`.
    pub fn rate_limits(&self) -> crate::api::RateLimits {
        crate::api::RateLimits {
            per_second: self.api.rate_limit_per_second,
            burst: self.api.rate_limit_burst,
            failures_per_minute: self.api.auth_failures_per_minute,
            failure_burst: self.api.auth_failure_burst,
        }
    }

    /// How simulations are bounded, with `simulate_threads = 0` made concrete.
    pub fn simulator_limits(&self) -> crate::api::SimulatorLimits {
        let threads = match self.api.simulate_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            n => n,
        };
        crate::api::SimulatorLimits {
            threads,
            concurrency: self.api.simulate_concurrency,
            per_tenant: self.api.simulate_per_tenant,
            queue_wait: Duration::from_millis(self.api.simulate_queue_ms),
        }
    }

    pub fn plugin_deadline(&self) -> Duration {
        Duration::from_millis(self.plugins.deadline_ms)
    }

    pub fn cache_dir(&self) -> Option<PathBuf> {
        (!self.plugins.cache_dir.is_empty()).then(|| PathBuf::from(&self.plugins.cache_dir))
    }
}

/// A database URL with its password hidden, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// An environment value as the setting's type: strings stay verbatim (a numeric-looking secret
/// is still a string); numbers, booleans and lists are read as TOML.
fn env_value(default: &toml::Value, raw: &str) -> toml::Value {
    if default.is_str() {
        return toml::Value::String(raw.into());
    }
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_example_file_is_the_defaults() {
        let parsed: Config = toml::from_str(Config::example()).expect("example parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wasmswitch.toml");
        std::fs::write(
            &file,
            "[api]\nlisten = \"127.0.0.1:9000\"\nrate_limit_per_second = 5\n",
        )
        .unwrap();
        let c = Config::load_from(
            Some(&file),
            env(&[
                ("WASMSWITCH_API_RATE_LIMIT_PER_SECOND", "7"),
                // A numeric-looking secret stays a string.
                (
                    "WASMSWITCH_API_JWT_SECRET",
                    "12345678901234567890123456789012",
                ),
                (
                    "WASMSWITCH_API_OPERATOR_KEYS",
                    r#"["0123456789abcdef0123456789abcdef"]"#,
                ),
                ("DATABASE_URL", "postgres://u:pw@db/wasmswitch"),
                ("WASMSWITCH_PLUGINS_DEADLINE_MS", "50"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(c.api.listen, "127.0.0.1:9000");
        assert_eq!(c.api.rate_limit_per_second, 7);
        assert_eq!(c.api.jwt_secret, "12345678901234567890123456789012");
        assert_eq!(c.api.operator_keys.len(), 1);
        assert_eq!(c.database.url, "postgres://u:pw@db/wasmswitch");
        assert_eq!(c.plugin_deadline(), Duration::from_millis(50));
    }

    #[test]
    fn every_bad_field_is_named() {
        let err = Config::load_from(
            None,
            env(&[
                ("WASMSWITCH_API_LISTEN", "nowhere"),
                ("WASMSWITCH_PLUGINS_DEADLINE_MS", "0"),
                ("WASMSWITCH_API_JWT_SECRET", "short"),
                ("DATABASE_URL", "mysql://x"),
                ("WASMSWITCH_LOG_LEVEL", "[[["),
            ]),
        )
        .unwrap_err();
        let text = err.to_string();
        for field in [
            "api.listen",
            "plugins.deadline_ms",
            "api.jwt_secret",
            "database.url",
            "log.level",
        ] {
            assert!(text.contains(field), "{field} missing from: {text}");
        }
        assert_eq!(err.0.len(), 5, "{text}");
    }

    #[test]
    fn unknown_settings_and_wrong_types_are_refused() {
        let err = Config::load_from(None, env(&[("WASMSWITCH_API_LISTN", "x")])).unwrap_err();
        assert!(err.to_string().contains("api.listn"), "{err}");
        let err = Config::load_from(None, env(&[("WASMSWITCH_NOPE_X", "1")])).unwrap_err();
        assert!(err.to_string().contains("unknown section"), "{err}");
        let err = Config::load_from(None, env(&[("WASMSWITCH_API_RATE_LIMIT_BURST", "lots")]))
            .unwrap_err();
        assert!(err.to_string().contains("rate_limit_burst"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[api]\nlisen = \"x\"\n").unwrap();
        let err = Config::load_from(Some(&file), env(&[])).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
        assert!(Config::load_from(Some(&dir.path().join("missing.toml")), env(&[])).is_err());
    }

    #[test]
    fn passwords_are_hidden_in_urls() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
