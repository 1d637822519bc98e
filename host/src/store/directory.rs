//! The directory: what the call path asks of the store (whose is this number, which trunk is
//! this source address, what are this tenant's limits and fallback), answered from memory.
//!
//! A [`Directory`] is an immutable snapshot, loaded in one go by [`Store::load_directory`]
//! from one consistent read of the database. Every change to what it holds bumps a one-row
//! counter (`directory_version`) in the same transaction, so a host finds out whether its
//! snapshot is stale with one cheap read ([`Store::directory_version`]), and hosts sharing one
//! PostgreSQL each see the others' changes.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row};

use super::numbers::{CallerId, TRUNK_COLUMNS, Transport, trunk_address, trunk_inbound};
use super::tenants::{CallFallback, tenant_calls};
use super::{Backend, Store, StoreError};

/// Why a text is not an address or CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrError {
    /// The part before `/` is not an IPv4 or IPv6 address.
    #[error("not an IPv4 or IPv6 address")]
    BadAddress,
    /// The prefix length is not a number from 0 to 32 (IPv4) or 128 (IPv6).
    #[error("the prefix length must be 0-{max}")]
    BadPrefix { max: u8 },
    /// Bits are set past the prefix (`203.0.113.9/24`): which was meant, the block or the
    /// address, cannot be told.
    #[error("bits are set past the prefix: the block is {0}")]
    HostBits(String),
}

/// An IPv4 or IPv6 address block: an address and how many of its leading bits count. A bare
/// address is a block of one (`/32`, `/128`) and is written without the prefix. An
/// IPv4-mapped IPv6 block (`::ffff:192.0.2.0/120`) is kept as the IPv4 block it maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The block of `prefix` leading bits of `addr`; refused if bits are set past them.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr, CidrError> {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (addr, prefix),
            },
            _ => (addr, prefix),
        };
        let max = max_prefix(addr);
        if prefix > max {
            return Err(CidrError::BadPrefix { max });
        }
        let block = Cidr {
            addr: mask(addr, prefix),
            prefix,
        };
        if block.addr != addr {
            return Err(CidrError::HostBits(block.to_string()));
        }
        Ok(block)
    }

    /// The block's first address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// How many leading bits count.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the block. An IPv4-mapped IPv6 address (how a dual-stack socket
    /// shows an IPv4 peer) counts as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `addr` with every bit past the first `prefix` cleared (`prefix` at most the family's).
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let kept = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & kept))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let kept = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & kept))
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `198.51.100.7`, `203.0.113.0/24`, `2001:db8::1`, `2001:db8::/32`. The prefix is plain
    /// decimal digits (no sign, no leading zeros beyond `0` itself).
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::BadAddress)?;
        let max = max_prefix(addr);
        let prefix = match prefix {
            None => max,
            Some(p) => {
                let digits = !p.is_empty()
                    && p.len() <= 3
                    && p.bytes().all(|b| b.is_ascii_digit())
                    && (p == "0" || !p.starts_with('0'));
                if !digits {
                    return Err(CidrError::BadPrefix { max });
                }
                p.parse::<u8>().map_err(|_| CidrError::BadPrefix { max })?
            }
        };
        Cidr::new(addr, prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == max_prefix(self.addr) {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e| serde::de::Error::custom(format_args!("{text:?}: {e}")))
    }
}

/// A trunk as the call path sees it: how to reach it, how to recognise its calls, and its
/// credentials. `Debug` and `Serialize` leave the password out.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct DirTrunk {
    pub id: String,
    /// Unique per tenant: what routing plugins name it by.
    pub name: String,
    pub host: String,
    /// None: locate the trunk by RFC 3263 (SRV, then 5060, or 5061 over TLS).
    pub port: Option<u16>,
    pub transport: Transport,
    pub username: Option<String>,
    #[serde(skip_serializing)]
    pub password: Option<String>,
    /// The addresses its calls come from.
    pub inbound: Vec<Cidr>,
    /// Whether calls from `inbound` are also digest-challenged with the credentials.
    pub inbound_auth: bool,
    /// Where the caller's identity goes on calls out through it.
    pub caller_id: CallerId,
}

impl fmt::Debug for DirTrunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirTrunk")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("transport", &self.transport)
            .field("username", &self.username)
            .field("has_password", &self.password.is_some())
            .field("inbound", &self.inbound)
            .field("inbound_auth", &self.inbound_auth)
            .field("caller_id", &self.caller_id)
            .finish()
    }
}

/// A tenant as the call path sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirTenant {
    pub id: String,
    /// The tenant's own SIP domain, if it set one (its phones are also always in
    /// `<id>.<sip.domain>`).
    pub sip_domain: Option<String>,
    /// Concurrent calls at most; None: the host's default.
    pub max_calls: Option<u32>,
    /// New calls per second at most; None: the host's default.
    pub max_calls_per_second: Option<u32>,
    /// What to do with a call the tenant's router cannot decide (the default: reject 503).
    pub fallback: CallFallback,
}

/// One tenant's entry: the tenant, its trunks by name, and its trunks' inbound blocks in the
/// order a source address is tried against them.
#[derive(Debug, Clone)]
struct Entry {
    tenant: DirTenant,
    /// Sorted by name.
    trunks: Vec<DirTrunk>,
    /// (block, index in `trunks`): longest prefix first, then by trunk name, so the first
    /// block that holds an address names the most specific trunk.
    sources: Vec<(Cidr, usize)>,
}

/// An immutable snapshot of every tenant's numbers, trunks, limits and fallback. Cheap to
/// query, never touches the database; share it behind an `Arc` (or `ArcSwap`) and replace it
/// whole when [`Store::directory_version`] moves past [`Directory::version`].
#[derive(Debug, Clone, Default)]
pub struct Directory {
    version: i64,
    /// E.164 number -> tenant id.
    numbers: HashMap<String, String>,
    tenants: HashMap<String, Entry>,
}

impl Directory {
    /// The `directory_version` this snapshot was read at (0 for an empty default one).
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The tenant a number (E.164, exactly as stored) belongs to.
    pub fn owner_of(&self, number: &str) -> Option<&str> {
        self.numbers.get(number).map(String::as_str)
    }

    /// The tenant `id`.
    pub fn tenant(&self, id: &str) -> Option<&DirTenant> {
        self.tenants.get(id).map(|e| &e.tenant)
    }

    /// The tenant's trunk named `name`.
    pub fn trunk(&self, tenant: &str, name: &str) -> Option<&DirTrunk> {
        let entry = self.tenants.get(tenant)?;
        let i = entry
            .trunks
            .binary_search_by(|t| t.name.as_str().cmp(name))
            .ok()?;
        entry.trunks.get(i)
    }

    /// The tenant's trunk whose `inbound` holds `ip`: the one with the longest matching
    /// prefix, and of those the first by name.
    pub fn trunk_for_source(&self, tenant: &str, ip: IpAddr) -> Option<&DirTrunk> {
        let entry = self.tenants.get(tenant)?;
        let &(_, i) = entry.sources.iter().find(|(block, _)| block.contains(ip))?;
        entry.trunks.get(i)
    }

    /// Every tenant (in no order).
    pub fn tenants(&self) -> impl Iterator<Item = &DirTenant> {
        self.tenants.values().map(|e| &e.tenant)
    }

    /// How many numbers and tenants it holds (for logs and metrics).
    pub fn counts(&self) -> (usize, usize) {
        (self.numbers.len(), self.tenants.len())
    }

    /// Builds a snapshot from its parts; trunks of tenants not given are left out.
    fn build(
        version: i64,
        tenants: Vec<DirTenant>,
        trunks: Vec<(String, DirTrunk)>,
        numbers: Vec<(String, String)>,
    ) -> Directory {
        let mut entries: HashMap<String, Entry> = tenants
            .into_iter()
            .map(|t| {
                let entry = Entry {
                    tenant: t,
                    trunks: Vec::new(),
                    sources: Vec::new(),
                };
                (entry.tenant.id.clone(), entry)
            })
            .collect();
        for (tenant, trunk) in trunks {
            if let Some(e) = entries.get_mut(&tenant) {
                e.trunks.push(trunk);
            }
        }
        for e in entries.values_mut() {
            e.trunks.sort_by(|a, b| a.name.cmp(&b.name));
            e.sources = e
                .trunks
                .iter()
                .enumerate()
                .flat_map(|(i, t)| t.inbound.iter().map(move |b| (*b, i)))
                .collect();
            // Stable: equal prefixes stay in trunk-name order, which `trunks` already has.
            e.sources.sort_by_key(|s| std::cmp::Reverse(s.0.prefix()));
        }
        Directory {
            version,
            numbers: numbers
                .into_iter()
                .filter(|(_, t)| entries.contains_key(t))
                .collect(),
            tenants: entries,
        }
    }
}

/// Bumps the directory version: every write to what the directory holds does it, in the
/// transaction that makes the change, so a host that read the version after the commit
/// loads the change with it.
pub(super) async fn bump_version(conn: &mut AnyConnection) -> Result<(), StoreError> {
    sqlx::query("UPDATE directory_version SET version = version + 1 WHERE id = 1")
        .execute(conn)
        .await?;
    Ok(())
}

fn dir_trunk(row: &AnyRow) -> Result<(String, DirTrunk), sqlx::Error> {
    let (port, transport) = trunk_address(row)?;
    let (inbound, inbound_auth, caller_id) = trunk_inbound(row)?;
    Ok((
        row.try_get("tenant_id")?,
        DirTrunk {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            host: row.try_get("host")?,
            port,
            transport,
            username: row.try_get("username")?,
            password: row.try_get("password")?,
            inbound,
            inbound_auth,
            caller_id,
        },
    ))
}

fn dir_tenant(row: &AnyRow) -> Result<DirTenant, sqlx::Error> {
    let calls = tenant_calls(row)?;
    Ok(DirTenant {
        id: row.try_get("id")?,
        sip_domain: row.try_get("sip_domain")?,
        max_calls: calls.limits.max_calls,
        max_calls_per_second: calls.limits.max_calls_per_second,
        fallback: calls.fallback.unwrap_or_default(),
    })
}

impl Store {
    /// The directory version now: one single-row read, cheap enough to poll often.
    pub async fn directory_version(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT version FROM directory_version WHERE id = 1")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("version")?)
    }

    /// Reads the whole directory in one consistent snapshot of the database (a read-only
    /// repeatable-read transaction on PostgreSQL, a read transaction on SQLite), the version
    /// included, so the snapshot is exactly the database at that version.
    pub async fn load_directory(&self) -> Result<Directory, StoreError> {
        let mut tx: sqlx::Transaction<'static, Any> = match self.backend {
            Backend::Postgres => {
                self.pool()
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?
            }
            Backend::Sqlite => self.pool().begin().await?,
        };
        let version: i64 = sqlx::query("SELECT version FROM directory_version WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get("version")?;
        let tenants = sqlx::query(
            "SELECT id, sip_domain, max_calls, max_calls_per_second, call_fallback FROM tenants",
        )
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(dir_tenant)
        .collect::<Result<Vec<_>, _>>()?;
        let sql = format!("SELECT {TRUNK_COLUMNS} FROM trunks");
        let trunks = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(dir_trunk)
            .collect::<Result<Vec<_>, _>>()?;
        let numbers = sqlx::query("SELECT number, tenant_id FROM dids")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("number")?, r.try_get("tenant_id")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        tx.commit().await?;
        Ok(Directory::build(version, tenants, trunks, numbers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn blocks_parse_strictly_and_print_canonically() {
        for (input, printed) in [
            ("198.51.100.7", "198.51.100.7"),
            ("198.51.100.7/32", "198.51.100.7"),
            ("203.0.113.0/24", "203.0.113.0/24"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("2001:0db8:0000::/32", "2001:db8::/32"),
            ("2001:db8::1", "2001:db8::1"),
            ("2001:db8::1/128", "2001:db8::1"),
            ("::/0", "::/0"),
            ("::ffff:192.0.2.0/120", "192.0.2.0/24"),
            ("::ffff:192.0.2.1", "192.0.2.1"),
        ] {
            let c = cidr(input);
            assert_eq!(c.to_string(), printed, "{input}");
            // What it prints parses back to itself.
            assert_eq!(cidr(printed), c, "{input}");
        }
        for (input, err) in [
            ("", CidrError::BadAddress),
            ("example.com", CidrError::BadAddress),
            ("198.51.100", CidrError::BadAddress),
            ("198.51.100.7 ", CidrError::BadAddress),
            ("[2001:db8::1]", CidrError::BadAddress),
            ("198.51.100.0/33", CidrError::BadPrefix { max: 32 }),
            ("198.51.100.0/", CidrError::BadPrefix { max: 32 }),
            ("198.51.100.0/+24", CidrError::BadPrefix { max: 32 }),
            ("198.51.100.0/024", CidrError::BadPrefix { max: 32 }),
            ("198.51.100.0/24/", CidrError::BadPrefix { max: 32 }),
            ("2001:db8::/129", CidrError::BadPrefix { max: 128 }),
            ("2001:db8::/1000", CidrError::BadPrefix { max: 128 }),
            (
                "203.0.113.9/24",
                CidrError::HostBits("203.0.113.0/24".into()),
            ),
            (
                "2001:db8::1/32",
                CidrError::HostBits("2001:db8::/32".into()),
            ),
        ] {
            assert_eq!(input.parse::<Cidr>(), Err(err), "{input:?}");
        }
    }

    #[test]
    fn blocks_hold_their_addresses_only() {
        let v4 = cidr("203.0.113.0/24");
        assert!(v4.contains(ip("203.0.113.0")));
        assert!(v4.contains(ip("203.0.113.255")));
        assert!(!v4.contains(ip("203.0.114.0")));
        assert!(!v4.contains(ip("203.0.112.255")));
        // A dual-stack socket's view of an IPv4 peer.
        assert!(v4.contains(ip("::ffff:203.0.113.9")));
        assert!(!v4.contains(ip("2001:db8::1")));
        let one = cidr("198.51.100.7");
        assert!(one.contains(ip("198.51.100.7")));
        assert!(!one.contains(ip("198.51.100.6")));
        let v6 = cidr("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("32.1.13.184")), "the same bits as IPv4");
        let odd = cidr("2001:db8:8000::/33");
        assert!(odd.contains(ip("2001:db8:8000::1")));
        assert!(!odd.contains(ip("2001:db8:7fff::1")));
        assert!(cidr("0.0.0.0/0").contains(ip("1.2.3.4")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
        assert!(cidr("::/0").contains(ip("::1")));
    }

    fn trunk(name: &str, inbound: &[&str]) -> (String, DirTrunk) {
        (
            "t".into(),
            DirTrunk {
                id: format!("trk_{name}"),
                name: name.into(),
                host: "sip.example.com".into(),
                port: None,
                transport: Transport::Udp,
                username: None,
                password: Some("secret".into()),
                inbound: inbound.iter().map(|s| cidr(s)).collect(),
                inbound_auth: false,
                caller_id: CallerId::From,
            },
        )
    }

    fn tenant(id: &str) -> DirTenant {
        DirTenant {
            id: id.into(),
            sip_domain: None,
            max_calls: None,
            max_calls_per_second: None,
            fallback: CallFallback::default(),
        }
    }

    #[test]
    fn the_most_specific_block_names_the_trunk() {
        let dir = Directory::build(
            7,
            vec![tenant("t"), tenant("u")],
            vec![
                trunk("wide", &["203.0.0.0/16", "2001:db8::/32"]),
                trunk("narrow", &["203.0.113.0/24"]),
                trunk("single", &["203.0.113.7", "2001:db8::7"]),
                trunk("b-tie", &["198.51.100.0/24"]),
                trunk("a-tie", &["198.51.100.0/24"]),
                trunk("v6", &["2001:db8:1::/48"]),
                ("u".into(), trunk("other", &["192.0.2.0/24"]).1),
            ],
            vec![
                ("+14155550100".into(), "t".into()),
                ("+14155550199".into(), "gone".into()),
            ],
        );
        let name = |t: &str, a: &str| dir.trunk_for_source(t, ip(a)).map(|x| x.name.as_str());
        assert_eq!(dir.version(), 7);
        assert_eq!(name("t", "203.0.113.7"), Some("single"));
        assert_eq!(name("t", "203.0.113.8"), Some("narrow"));
        assert_eq!(name("t", "203.0.1.1"), Some("wide"));
        assert_eq!(name("t", "::ffff:203.0.113.7"), Some("single"));
        assert_eq!(name("t", "203.1.0.1"), None);
        assert_eq!(name("t", "198.51.100.1"), Some("a-tie"), "ties go by name");
        assert_eq!(name("t", "2001:db8::7"), Some("single"));
        assert_eq!(name("t", "2001:db8:1::9"), Some("v6"));
        assert_eq!(name("t", "2001:db8:2::9"), Some("wide"));
        assert_eq!(name("t", "192.0.2.1"), None, "another tenant's trunk");
        assert_eq!(name("u", "192.0.2.1"), Some("other"));
        assert_eq!(name("nobody", "192.0.2.1"), None);

        assert_eq!(dir.owner_of("+14155550100"), Some("t"));
        assert_eq!(dir.owner_of("14155550100"), None);
        assert_eq!(
            dir.owner_of("+14155550199"),
            None,
            "a number of no loaded tenant"
        );
        assert_eq!(
            dir.trunk("t", "narrow").map(|x| x.id.as_str()),
            Some("trk_narrow")
        );
        assert_eq!(dir.trunk("u", "narrow"), None);
        assert_eq!(dir.tenant("u").map(|x| x.id.as_str()), Some("u"));
        assert_eq!(dir.counts(), (1, 2));
    }

    #[test]
    fn a_trunk_password_is_never_shown() {
        let (_, t) = trunk("x", &[]);
        assert!(!format!("{t:?}").contains("secret"));
        let json = serde_json::to_string(&t).unwrap_or_default();
        assert!(
            json.contains("\"name\":\"x\"") && !json.contains("secret"),
            "{json}"
        );
    }
}
