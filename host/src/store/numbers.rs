//! What connects a tenant to the phone network: its numbers (DIDs), its trunks and the SIP
//! users its phones register as.

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::directory::{Cidr, bump_version};
use super::{Store, StoreError, check_text, new_id, now_ms};

/// A phone number routed to a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Did {
    /// E.164, e.g. `+14155550100`. A number belongs to one tenant at most.
    pub number: String,
    pub tenant_id: String,
    pub description: String,
    pub created_at: i64,
}

/// Whether `n` is an E.164 number: `+`, then 2 to 15 digits, not starting with 0.
pub fn valid_e164(n: &str) -> bool {
    n.strip_prefix('+').is_some_and(|d| {
        (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

/// Whether `name` is a SIP user's name: 1 to 64 letters, digits or `-_.+`.
pub fn valid_sip_username(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
}

/// How the switch reaches a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "udp" => Some(Transport::Udp),
            "tcp" => Some(Transport::Tcp),
            "tls" => Some(Transport::Tls),
            _ => None,
        }
    }
}

impl Transport {
    /// The port a trunk without one is reached at, once RFC 3263 found no SRV record: 5061
    /// over TLS, 5060 otherwise (RFC 3261 section 19.1.2).
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Udp | Transport::Tcp => 5060,
            Transport::Tls => 5061,
        }
    }
}

impl From<Transport> for wasmswitch_sip::transaction::FlowTransport {
    fn from(t: Transport) -> Self {
        match t {
            Transport::Udp => Self::Udp,
            Transport::Tcp => Self::Tcp,
            Transport::Tls => Self::Tls,
        }
    }
}

impl From<wasmswitch_sip::transaction::FlowTransport> for Transport {
    fn from(t: wasmswitch_sip::transaction::FlowTransport) -> Self {
        use wasmswitch_sip::transaction::FlowTransport;
        match t {
            FlowTransport::Udp => Transport::Udp,
            FlowTransport::Tcp => Transport::Tcp,
            FlowTransport::Tls => Transport::Tls,
        }
    }
}

/// Where the switch puts the caller's identity on calls out through a trunk.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum CallerId {
    /// In the From header (the default: what every provider reads).
    #[default]
    From,
    /// In a P-Asserted-Identity header (RFC 3325), the From left anonymous or as it came:
    /// for providers that trust the switch to assert who calls.
    Pai,
    /// In both.
    Both,
}

impl CallerId {
    pub fn as_str(self) -> &'static str {
        match self {
            CallerId::From => "from",
            CallerId::Pai => "pai",
            CallerId::Both => "both",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "from" => Some(CallerId::From),
            "pai" => Some(CallerId::Pai),
            "both" => Some(CallerId::Both),
            _ => None,
        }
    }
}

/// The most addresses or blocks one trunk's `inbound` may list: a provider's published
/// ranges fit in a handful; the bound keeps each call's source lookup short.
pub const MAX_INBOUND: usize = 32;

/// A SIP trunk of a tenant: where its outbound calls go, and where its inbound calls come
/// from. The password is write-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Trunk {
    pub id: String,
    pub tenant_id: String,
    /// Unique per tenant; routing plugins name trunks by it.
    pub name: String,
    pub host: String,
    /// `null`: the trunk is located by RFC 3263 (SRV records of `host`, else port 5060, or
    /// 5061 over TLS).
    pub port: Option<u16>,
    pub transport: Transport,
    /// Digest user name, when the trunk wants authentication.
    pub username: Option<String>,
    /// Whether a password is set (it is never returned).
    pub has_password: bool,
    /// Whether the switch registers to the trunk.
    pub register: bool,
    /// The addresses the trunk's calls come from: IPv4 or IPv6 addresses and CIDR blocks.
    /// A call from one of them to one of the tenant's numbers is the trunk's.
    #[schema(value_type = Vec<String>, example = json!(["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]))]
    pub inbound: Vec<Cidr>,
    /// Whether calls from `inbound` are also challenged for the trunk's digest credentials.
    pub inbound_auth: bool,
    /// Where the caller's identity goes on calls out through the trunk.
    pub caller_id: CallerId,
    /// How registering to the trunk is going (none while no host has tried yet, or when
    /// `register` is off).
    pub registration: Option<super::TrunkRegistration>,
    pub created_at: i64,
}

/// A trunk's settings, for create and update.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTrunk {
    /// Unique per tenant: 1-63 of a-z, 0-9, `-`.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub name: String,
    /// A host name or an IP address.
    pub host: String,
    /// 1-65535. Left out (or `null`): the trunk is located by RFC 3263, SRV records of
    /// `host` first, else port 5060 (5061 over TLS). Before calls, a missing port meant 5060.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default = "default_transport")]
    pub transport: Transport,
    #[serde(default)]
    pub username: Option<String>,
    /// Left out on update: the stored password stays.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub register: bool,
    /// The addresses the trunk's calls come from, at most 32: IPv4 or IPv6 addresses, or
    /// CIDR blocks with no bits set past the prefix (`203.0.113.0/24`, not `203.0.113.9/24`).
    #[serde(default)]
    #[schema(value_type = Vec<String>, example = json!(["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]))]
    pub inbound: Vec<Cidr>,
    /// Also challenge calls from `inbound` for the trunk's digest credentials (the trunk then
    /// needs a username and a password). Default false: the address alone identifies the
    /// trunk.
    #[serde(default)]
    pub inbound_auth: bool,
    /// `from` (default), `pai` or `both`: where the caller's identity goes on calls out
    /// through the trunk (the From header, P-Asserted-Identity, or both).
    #[serde(default)]
    pub caller_id: CallerId,
}

fn default_transport() -> Transport {
    Transport::Udp
}

impl NewTrunk {
    fn validate(&self) -> Result<(), StoreError> {
        let bad = |m: &str| Err(StoreError::Invalid(m.to_string()));
        if !super::tenants::valid_tenant_id(&self.name) {
            return bad("trunk name must be 1-63 lowercase letters, digits or '-'");
        }
        let host_ok = !self.host.is_empty()
            && self.host.len() <= 253
            && self
                .host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
        if !host_ok {
            return bad("host must be a host name or an IP address");
        }
        if self.port == Some(0) {
            return bad("port must be 1-65535");
        }
        for (field, value) in [("username", &self.username), ("password", &self.password)] {
            if let Some(v) = value {
                check_text(field, v)?;
            }
        }
        if self.inbound.len() > MAX_INBOUND {
            return Err(StoreError::Invalid(format!(
                "inbound lists at most {MAX_INBOUND} addresses or blocks"
            )));
        }
        for (i, a) in self.inbound.iter().enumerate() {
            if self.inbound[..i].contains(a) {
                return Err(StoreError::Invalid(format!("inbound lists {a} twice")));
            }
        }
        Ok(())
    }

    /// What the trunk needs its credentials for, if anything: checked against the password
    /// given, or on update the stored one.
    fn needs_credentials(&self) -> Option<&'static str> {
        if self.register {
            Some("a trunk that registers needs a username and a password")
        } else if self.inbound_auth {
            Some("a trunk with inbound_auth needs a username and a password")
        } else {
            None
        }
    }

    /// `inbound` as stored: canonical forms separated by spaces.
    fn inbound_text(&self) -> String {
        let mut text = String::new();
        for a in &self.inbound {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&a.to_string());
        }
        text
    }
}

/// A phone or softphone account of a tenant (digest auth at the registrar).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SipUser {
    pub id: String,
    pub tenant_id: String,
    pub username: String,
    pub realm: String,
    pub display_name: String,
    /// The digest algorithms the user's stored hashes answer: `SHA-256` and `MD5`, or only
    /// `MD5` for a user created before the switch kept SHA-256 hashes (set the password again
    /// to add it).
    pub algorithms: Vec<String>,
    pub created_at: i64,
}

/// What the registrar needs to check a SIP user's digest response: never the password, only
/// its hashes (HA1) in the user's realm. An HA1 answers challenges as the password does, so
/// `Debug` leaves them out.
#[derive(Clone, PartialEq, Eq)]
pub struct SipCredentials {
    /// The user's id.
    pub user_id: String,
    pub tenant_id: String,
    pub username: String,
    /// The digest realm the hashes were made in: the tenant's SIP domain when the password
    /// was last set.
    pub realm: String,
    /// Hex MD5(username:realm:password).
    pub ha1_md5: String,
    /// Hex SHA-256(username:realm:password), for users whose password was set since the
    /// switch kept it.
    pub ha1_sha256: Option<String>,
}

/// Changes to a SIP user; what is missing stays.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SipUserUpdate {
    /// A new password (at least 8 characters). Its hashes are made in the tenant's current
    /// SIP domain, which becomes the user's realm.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A SIP user to create. The password is kept only as its digest hashes (HA1).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSipUser {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub display_name: String,
}

fn did(row: &AnyRow) -> Result<Did, sqlx::Error> {
    Ok(Did {
        number: row.try_get("number")?,
        tenant_id: row.try_get("tenant_id")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
    })
}

fn decode_err(col: &str, what: String) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: col.into(),
        source: what.into(),
    }
}

pub(super) const TRUNK_COLUMNS: &str = "id, tenant_id, name, host, port, transport, username, \
     password, register, created_at, inbound_addresses, inbound_auth, caller_id";

/// A trunk row's `port` and `transport`, checked: the one place they are decoded.
pub(super) fn trunk_address(row: &AnyRow) -> Result<(Option<u16>, Transport), sqlx::Error> {
    let transport: String = row.try_get("transport")?;
    let port: Option<i64> = row.try_get("port")?;
    let port = port
        .map(|p| u16::try_from(p).map_err(|_| decode_err("port", format!("{p}"))))
        .transpose()?;
    Ok((
        port,
        Transport::parse(&transport).ok_or_else(|| decode_err("transport", transport))?,
    ))
}

/// A trunk row's inbound recognition (`inbound_addresses`, `inbound_auth`, `caller_id`),
/// checked: the one place they are decoded.
pub(super) fn trunk_inbound(row: &AnyRow) -> Result<(Vec<Cidr>, bool, CallerId), sqlx::Error> {
    let text: String = row.try_get("inbound_addresses")?;
    let inbound = text
        .split_ascii_whitespace()
        .map(|a| {
            a.parse::<Cidr>()
                .map_err(|e| decode_err("inbound_addresses", format!("{a:?}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let caller_id: String = row.try_get("caller_id")?;
    Ok((
        inbound,
        row.try_get::<i64, _>("inbound_auth")? != 0,
        CallerId::parse(&caller_id).ok_or_else(|| decode_err("caller_id", caller_id))?,
    ))
}

fn trunk(row: &AnyRow) -> Result<Trunk, sqlx::Error> {
    let (port, transport) = trunk_address(row)?;
    let (inbound, inbound_auth, caller_id) = trunk_inbound(row)?;
    Ok(Trunk {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        host: row.try_get("host")?,
        port,
        transport,
        username: row.try_get("username")?,
        has_password: row.try_get::<Option<String>, _>("password")?.is_some(),
        register: row.try_get::<i64, _>("register")? != 0,
        inbound,
        inbound_auth,
        caller_id,
        registration: None,
        created_at: row.try_get("created_at")?,
    })
}

const SIP_USER_COLUMNS: &str =
    "id, tenant_id, username, realm, display_name, created_at, ha1, ha1_sha256";

fn sip_user(row: &AnyRow) -> Result<SipUser, sqlx::Error> {
    let mut algorithms = Vec::with_capacity(2);
    if row.try_get::<Option<String>, _>("ha1_sha256")?.is_some() {
        algorithms.push("SHA-256".to_string());
    }
    algorithms.push("MD5".to_string());
    Ok(SipUser {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        username: row.try_get("username")?,
        realm: row.try_get("realm")?,
        display_name: row.try_get("display_name")?,
        algorithms,
        created_at: row.try_get("created_at")?,
    })
}

impl std::fmt::Debug for SipCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipCredentials")
            .field("user_id", &self.user_id)
            .field("tenant_id", &self.tenant_id)
            .field("username", &self.username)
            .field("realm", &self.realm)
            .field("sha256", &self.ha1_sha256.is_some())
            .finish_non_exhaustive()
    }
}

/// RFC 2617 HA1: MD5 of `username:realm:password`, hex.
pub fn digest_ha1(username: &str, realm: &str, password: &str) -> String {
    hex::encode(Md5::digest(format!("{username}:{realm}:{password}")))
}

/// RFC 7616 HA1 for SHA-256: SHA-256 of `username:realm:password`, hex.
pub fn digest_ha1_sha256(username: &str, realm: &str, password: &str) -> String {
    hex::encode(Sha256::digest(format!("{username}:{realm}:{password}")))
}

fn check_sip_password(password: &str) -> Result<(), StoreError> {
    if password.len() < 8 {
        return Err(StoreError::Invalid(
            "password must be at least 8 characters".into(),
        ));
    }
    check_text("password", password)
}

fn tenant_fk(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::NotFound("tenant")
        }
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::from(e),
    }
}

impl Store {
    pub async fn create_did(
        &self,
        tenant: &str,
        number: &str,
        description: &str,
    ) -> Result<Did, StoreError> {
        if !valid_e164(number) {
            return Err(StoreError::Invalid(format!(
                "number {number:?} is not E.164 (+ and 2-15 digits)"
            )));
        }
        check_text("description", description)?;
        let d = Did {
            number: number.to_string(),
            tenant_id: tenant.to_string(),
            description: description.to_string(),
            created_at: now_ms(),
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO dids (number, tenant_id, description, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&d.number)
        .bind(&d.tenant_id)
        .bind(&d.description)
        .bind(d.created_at)
        .execute(&mut *tx)
        .await
        .map_err(tenant_fk("number"))?;
        bump_version(&mut tx).await?;
        tx.commit().await?;
        Ok(d)
    }

    pub async fn dids(&self, tenant: &str) -> Result<Vec<Did>, StoreError> {
        let rows = sqlx::query(
            "SELECT number, tenant_id, description, created_at FROM dids WHERE tenant_id = $1 ORDER BY number",
        )
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(did).collect::<Result<_, _>>()?)
    }

    /// The tenant a dialled number belongs to (the call path's first question).
    pub async fn did_owner(&self, number: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT tenant_id FROM dids WHERE number = $1")
            .bind(number)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.try_get("tenant_id")).transpose()?)
    }

    pub async fn delete_did(&self, tenant: &str, number: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM dids WHERE tenant_id = $1 AND number = $2")
            .bind(tenant)
            .bind(number)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("number"));
        }
        bump_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn create_trunk(&self, tenant: &str, t: &NewTrunk) -> Result<Trunk, StoreError> {
        t.validate()?;
        if let Some(why) = t.needs_credentials()
            && (t.username.is_none() || t.password.is_none())
        {
            return Err(StoreError::Invalid(why.into()));
        }
        let sql = format!(
            "INSERT INTO trunks ({TRUNK_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING {TRUNK_COLUMNS}"
        );
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(new_id("trk")?)
            .bind(tenant)
            .bind(&t.name)
            .bind(&t.host)
            .bind(t.port.map(i64::from))
            .bind(t.transport.as_str())
            .bind(&t.username)
            .bind(&t.password)
            .bind(i64::from(t.register))
            .bind(now_ms())
            .bind(t.inbound_text())
            .bind(i64::from(t.inbound_auth))
            .bind(t.caller_id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(tenant_fk("trunk name"))?;
        bump_version(&mut tx).await?;
        tx.commit().await?;
        Ok(trunk(&row)?)
    }

    /// Replaces a trunk's settings. A missing password keeps the stored one.
    pub async fn update_trunk(
        &self,
        tenant: &str,
        id: &str,
        t: &NewTrunk,
    ) -> Result<Trunk, StoreError> {
        t.validate()?;
        let sql = format!(
            "UPDATE trunks SET name = $3, host = $4, port = $5, transport = $6, username = $7, \
             password = COALESCE($8, password), register = $9, inbound_addresses = $10, \
             inbound_auth = $11, caller_id = $12 \
             WHERE tenant_id = $1 AND id = $2 RETURNING {TRUNK_COLUMNS}"
        );
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(id)
            .bind(&t.name)
            .bind(&t.host)
            .bind(t.port.map(i64::from))
            .bind(t.transport.as_str())
            .bind(&t.username)
            .bind(&t.password)
            .bind(i64::from(t.register))
            .bind(t.inbound_text())
            .bind(i64::from(t.inbound_auth))
            .bind(t.caller_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(tenant_fk("trunk name"))?
            .ok_or(StoreError::NotFound("trunk"))?;
        let updated = trunk(&row)?;
        // Checked against the password now stored, which the update may have kept: dropping
        // the transaction undoes the update.
        if let Some(why) = t.needs_credentials()
            && (updated.username.is_none() || !updated.has_password)
        {
            return Err(StoreError::Invalid(why.into()));
        }
        bump_version(&mut tx).await?;
        tx.commit().await?;
        Ok(updated)
    }

    pub async fn trunks(&self, tenant: &str) -> Result<Vec<Trunk>, StoreError> {
        let sql = format!("SELECT {TRUNK_COLUMNS} FROM trunks WHERE tenant_id = $1 ORDER BY name");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .fetch_all(self.pool())
            .await?;
        let mut trunks: Vec<Trunk> = rows.iter().map(trunk).collect::<Result<_, _>>()?;
        let sql = format!(
            "SELECT trunk_id, {} FROM trunk_registrations WHERE tenant_id = $1",
            super::trunk_registrations::REGISTRATION_COLUMNS
        );
        let states = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .fetch_all(self.pool())
            .await?;
        for row in &states {
            let id: String = row.try_get("trunk_id")?;
            if let Some(t) = trunks.iter_mut().find(|t| t.id == id && t.register) {
                t.registration = Some(super::trunk_registrations::registration(row)?);
            }
        }
        Ok(trunks)
    }

    pub async fn trunk(&self, tenant: &str, id: &str) -> Result<Trunk, StoreError> {
        let sql = format!("SELECT {TRUNK_COLUMNS} FROM trunks WHERE tenant_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("trunk"))?;
        let mut t = trunk(&row)?;
        if t.register {
            let sql = format!(
                "SELECT {} FROM trunk_registrations WHERE trunk_id = $1",
                super::trunk_registrations::REGISTRATION_COLUMNS
            );
            let state = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
            t.registration = state
                .as_ref()
                .map(super::trunk_registrations::registration)
                .transpose()?;
        }
        Ok(t)
    }

    pub async fn delete_trunk(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM trunks WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("trunk"));
        }
        bump_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates a SIP user in `realm` (the tenant's SIP domain).
    pub async fn create_sip_user(
        &self,
        tenant: &str,
        realm: &str,
        u: &NewSipUser,
    ) -> Result<SipUser, StoreError> {
        if !valid_sip_username(&u.username) {
            return Err(StoreError::Invalid(
                "username must be 1-64 letters, digits or -_.+".into(),
            ));
        }
        check_sip_password(&u.password)?;
        check_text("display_name", &u.display_name)?;
        let sql = format!(
            "INSERT INTO sip_users (id, tenant_id, username, realm, display_name, created_at, ha1, ha1_sha256) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {SIP_USER_COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(new_id("usr")?)
            .bind(tenant)
            .bind(&u.username)
            .bind(realm)
            .bind(&u.display_name)
            .bind(now_ms())
            .bind(digest_ha1(&u.username, realm, &u.password))
            .bind(digest_ha1_sha256(&u.username, realm, &u.password))
            .fetch_one(self.writer())
            .await
            .map_err(tenant_fk("sip user"))?;
        // The username may have been looked up, and remembered as no one's.
        self.identities.clear();
        Ok(sip_user(&row)?)
    }

    /// Changes a SIP user's password (hashed in `realm`, which becomes the user's realm) or
    /// display name.
    pub async fn update_sip_user(
        &self,
        tenant: &str,
        id: &str,
        realm: &str,
        u: &SipUserUpdate,
    ) -> Result<SipUser, StoreError> {
        if let Some(p) = &u.password {
            check_sip_password(p)?;
        }
        if let Some(d) = &u.display_name {
            check_text("display_name", d)?;
        }
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT username FROM sip_users WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("sip user"))?;
        let username: String = row.try_get("username")?;
        if let Some(p) = &u.password {
            sqlx::query(
                "UPDATE sip_users SET realm = $3, ha1 = $4, ha1_sha256 = $5 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(id)
            .bind(realm)
            .bind(digest_ha1(&username, realm, p))
            .bind(digest_ha1_sha256(&username, realm, p))
            .execute(&mut *tx)
            .await?;
        }
        if let Some(d) = &u.display_name {
            sqlx::query("UPDATE sip_users SET display_name = $3 WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .bind(d)
                .execute(&mut *tx)
                .await?;
        }
        let sql =
            format!("SELECT {SIP_USER_COLUMNS} FROM sip_users WHERE tenant_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        self.identities.clear();
        Ok(sip_user(&row)?)
    }

    pub async fn sip_users(&self, tenant: &str) -> Result<Vec<SipUser>, StoreError> {
        let sql = format!(
            "SELECT {SIP_USER_COLUMNS} FROM sip_users WHERE tenant_id = $1 ORDER BY username"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(sip_user).collect::<Result<_, _>>()?)
    }

    pub async fn delete_sip_user(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM sip_users WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(self.writer())
            .await?;
        self.identities.clear();
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("sip user"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164() {
        assert!(valid_e164("+14155550100"));
        assert!(!valid_e164("14155550100"));
        assert!(!valid_e164("+0123"));
        assert!(!valid_e164("+1415555010012345"));
        assert!(!valid_e164("+1 415"));
    }

    #[test]
    fn sha256_ha1_matches_rfc_7616_example() {
        // RFC 7616 section 3.9.1: Mufasa / http-auth@example.org / Circle of Life, whose
        // SHA-256 HA1 is the first hash of the example's response computation.
        assert_eq!(
            digest_ha1_sha256("Mufasa", "http-auth@example.org", "Circle of Life"),
            "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
        );
    }

    #[test]
    fn ha1_matches_rfc_2617_example() {
        // RFC 2617 section 3.5: Mufasa / testrealm@host.com / Circle Of Life.
        assert_eq!(
            digest_ha1("Mufasa", "testrealm@host.com", "Circle Of Life"),
            "939e7578ed9e3c518a452acee763bce9"
        );
    }
}
