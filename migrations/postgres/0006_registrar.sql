-- Phones registering with the switch (issue 10).
--
-- Each tenant's phones live in a SIP domain of the tenant's own, which is also their digest
-- realm: `<tenant-id>.<sip.domain>` always, and a domain the tenant sets through the API
-- besides (NULL: none). Domains are stored lower-case; two tenants cannot share one.
ALTER TABLE tenants ADD COLUMN sip_domain TEXT;
CREATE UNIQUE INDEX tenants_sip_domain ON tenants (sip_domain);

-- SHA-256 HA1 (RFC 7616 / 8760) beside the MD5 one. NULL for users created before this
-- column: they answer MD5 challenges only, until their password is set again.
ALTER TABLE sip_users ADD COLUMN ha1_sha256 TEXT;

-- The location service: one row per binding of a SIP user's address of record to a contact
-- (RFC 3261 section 10.3), with the flow the REGISTER arrived over so that calls reach a phone
-- behind NAT the same way (RFC 5626). A lapsed row is treated as absent and swept later.
CREATE TABLE registrations (
    user_id       TEXT NOT NULL REFERENCES sip_users(id) ON DELETE CASCADE,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    contact_uri   TEXT NOT NULL,           -- the Contact URI as received: the binding's key
    contact       TEXT NOT NULL,           -- the whole Contact value, parameters included
    expires_at    BIGINT NOT NULL,
    q             BIGINT,                  -- thousandths (0-1000), if the phone gave one
    call_id       TEXT NOT NULL,           -- of the REGISTER that made or refreshed it
    cseq          BIGINT NOT NULL,
    instance      TEXT,                    -- RFC 5626 +sip.instance
    transport     TEXT NOT NULL,           -- udp | tcp | tls
    source        TEXT NOT NULL,           -- the address the REGISTER came from (ip:port)
    host_id       TEXT NOT NULL,           -- the host that holds the connection, for tcp/tls
    connection    BIGINT,                  -- that host's connection id
    user_agent    TEXT NOT NULL DEFAULT '',
    registered_at BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (user_id, contact_uri)
);
CREATE INDEX registrations_tenant ON registrations (tenant_id, user_id);
CREATE INDEX registrations_expiry ON registrations (expires_at);

-- Secrets every host sharing this database must agree on, made by the first host that needs
-- one (e.g. the key that signs digest nonces, so a nonce one host issued verifies on another).
CREATE TABLE secrets (
    name          TEXT PRIMARY KEY,
    value         TEXT NOT NULL,           -- hex
    created_at    BIGINT NOT NULL
);
