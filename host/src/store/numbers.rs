//! What connects a tenant to the phone network: its numbers (DIDs), its trunks and the SIP
//! users its phones register as.

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sqlx::Row;
use sqlx::any::AnyRow;

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

/// A SIP trunk of a tenant: where its outbound calls go. The password is write-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Trunk {
    pub id: String,
    pub tenant_id: String,
    /// Unique per tenant; routing plugins name trunks by it.
    pub name: String,
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    /// Digest user name, when the trunk wants authentication.
    pub username: Option<String>,
    /// Whether a password is set (it is never returned).
    pub has_password: bool,
    /// Whether the switch registers to the trunk.
    pub register: bool,
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
    #[serde(default = "default_sip_port")]
    pub port: u16,
    #[serde(default = "default_transport")]
    pub transport: Transport,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub register: bool,
}

fn default_sip_port() -> u16 {
    5060
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
        if self.port == 0 {
            return bad("port must be 1-65535");
        }
        for (field, value) in [("username", &self.username), ("password", &self.password)] {
            if let Some(v) = value {
                check_text(field, v)?;
            }
        }
        if self.register && (self.username.is_none() || self.password.is_none()) {
            return bad("a trunk that registers needs a username and a password");
        }
        Ok(())
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

const TRUNK_COLUMNS: &str =
    "id, tenant_id, name, host, port, transport, username, password, register, created_at";

/// A trunk row's `port` and `transport`, checked: the one place they are decoded.
pub(super) fn trunk_address(row: &AnyRow) -> Result<(u16, Transport), sqlx::Error> {
    let transport: String = row.try_get("transport")?;
    let port: i64 = row.try_get("port")?;
    Ok((
        u16::try_from(port).map_err(|_| decode_err("port", format!("{port}")))?,
        Transport::parse(&transport).ok_or_else(|| decode_err("transport", transport))?,
    ))
}

fn trunk(row: &AnyRow) -> Result<Trunk, sqlx::Error> {
    let (port, transport) = trunk_address(row)?;
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
        sqlx::query(
            "INSERT INTO dids (number, tenant_id, description, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&d.number)
        .bind(&d.tenant_id)
        .bind(&d.description)
        .bind(d.created_at)
        .execute(self.writer())
        .await
        .map_err(tenant_fk("number"))?;
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
        let done = sqlx::query("DELETE FROM dids WHERE tenant_id = $1 AND number = $2")
            .bind(tenant)
            .bind(number)
            .execute(self.writer())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("number"));
        }
        Ok(())
    }

    pub async fn create_trunk(&self, tenant: &str, t: &NewTrunk) -> Result<Trunk, StoreError> {
        t.validate()?;
        let sql = format!(
            "INSERT INTO trunks ({TRUNK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {TRUNK_COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(new_id("trk")?)
            .bind(tenant)
            .bind(&t.name)
            .bind(&t.host)
            .bind(i64::from(t.port))
            .bind(t.transport.as_str())
            .bind(&t.username)
            .bind(&t.password)
            .bind(i64::from(t.register))
            .bind(now_ms())
            .fetch_one(self.writer())
            .await
            .map_err(tenant_fk("trunk name"))?;
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
             password = COALESCE($8, password), register = $9 \
             WHERE tenant_id = $1 AND id = $2 RETURNING {TRUNK_COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(id)
            .bind(&t.name)
            .bind(&t.host)
            .bind(i64::from(t.port))
            .bind(t.transport.as_str())
            .bind(&t.username)
            .bind(&t.password)
            .bind(i64::from(t.register))
            .fetch_optional(self.writer())
            .await
            .map_err(tenant_fk("trunk name"))?
            .ok_or(StoreError::NotFound("trunk"))?;
        Ok(trunk(&row)?)
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
        let done = sqlx::query("DELETE FROM trunks WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(self.writer())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("trunk"));
        }
        Ok(())
    }

    /// Creates a SIP user in `realm` (the tenant's SIP domain).
    pub async fn create_sip_user(
        &self,
        tenant: &str,
        realm: &str,
        u: &NewSipUser,
    ) -> Result<SipUser, StoreError> {
        let name_ok = (1..=64).contains(&u.username.len())
            && u.username
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b));
        if !name_ok {
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
