-- wasmswitch schema, PostgreSQL flavour. The SQLite flavour (../sqlite) has the same tables,
-- columns and meaning; only the types differ. The code reads both through sqlx's `Any` driver,
-- which carries integers, text and bytes: timestamps are milliseconds since the Unix epoch
-- (BIGINT), flags are 0/1 (BIGINT), identifiers are text.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,          -- slug chosen at creation: [a-z0-9-], 1..63
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,         -- public part of the key (wsk_<id>_<secret>)
    tenant_id    TEXT REFERENCES tenants(id) ON DELETE CASCADE,  -- NULL: an operator key
    role         TEXT NOT NULL,            -- operator | tenant-admin | tenant-read
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,            -- hex sha256 of the secret part; the key is shown once
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE plugins (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    version      BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    size         BIGINT NOT NULL,
    world        TEXT NOT NULL,            -- router | ivr | messaging | switch
    uploaded_by  TEXT NOT NULL,            -- the key id or token subject
    uploaded_at  BIGINT NOT NULL,
    active       BIGINT NOT NULL DEFAULT 0,
    wasm         BYTEA NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
);

-- Every activation, in order: rollback goes back to the version that was active before.
CREATE TABLE plugin_activations (
    id           BIGSERIAL PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    version      BIGINT NOT NULL,
    previous     BIGINT,                   -- the version active before, if any
    kind         TEXT NOT NULL,            -- activate | rollback
    actor        TEXT NOT NULL,
    at           BIGINT NOT NULL
);
CREATE INDEX plugin_activations_plugin ON plugin_activations (tenant_id, name, id);

CREATE TABLE dids (
    number       TEXT PRIMARY KEY,         -- E.164, e.g. +14155550100
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    description  TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL
);
CREATE INDEX dids_tenant ON dids (tenant_id);

CREATE TABLE trunks (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    host         TEXT NOT NULL,
    port         BIGINT NOT NULL,
    transport    TEXT NOT NULL,            -- udp | tcp | tls
    username     TEXT,
    password     TEXT,                     -- digest credentials for the trunk; never returned
    register     BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE sip_users (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    username     TEXT NOT NULL,
    ha1          TEXT NOT NULL,            -- hex MD5(username:realm:password), RFC 2617 / 8760
    realm        TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    UNIQUE (tenant_id, username)
);

CREATE TABLE cdrs (
    id            TEXT PRIMARY KEY,        -- the call's id on this switch
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    from_number   TEXT NOT NULL,
    to_number     TEXT NOT NULL,
    direction     TEXT NOT NULL,           -- inbound | outbound
    disposition   TEXT NOT NULL,           -- answered | busy | no-answer | failed | rejected
    sip_status    BIGINT,
    started_at    BIGINT NOT NULL,
    answered_at   BIGINT,
    ended_at      BIGINT,
    duration_ms   BIGINT NOT NULL DEFAULT 0,
    trunk         TEXT,
    plugin        TEXT,                    -- name@version that routed the call
    hangup_cause  TEXT
);
CREATE INDEX cdrs_tenant_time ON cdrs (tenant_id, started_at, id);

-- SMS queue (the sending side comes with the SMS issue): one row per message and its state.
CREATE TABLE messages (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    from_number   TEXT NOT NULL,
    to_number     TEXT NOT NULL,
    body          TEXT NOT NULL,
    direction     TEXT NOT NULL,           -- inbound | outbound
    state         TEXT NOT NULL,           -- queued | sending | sent | failed | rejected
    attempts      BIGINT NOT NULL DEFAULT 0,
    next_attempt  BIGINT,
    last_error    TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX messages_due ON messages (state, next_attempt);
CREATE INDEX messages_tenant ON messages (tenant_id, created_at);

-- The plugins' `kv` import, per tenant.
CREATE TABLE kv (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    value        BYTEA NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

CREATE TABLE audit_log (
    id           BIGSERIAL PRIMARY KEY,
    at           BIGINT NOT NULL,
    actor        TEXT NOT NULL,            -- key id, token subject, or "system"
    tenant_id    TEXT,                     -- kept after the tenant is deleted
    action       TEXT NOT NULL,            -- e.g. plugin.activate
    target       TEXT NOT NULL,
    detail       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);
