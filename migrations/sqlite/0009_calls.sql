-- Calls (issue 11): what the B2BUA needs from the store.
--
-- Trunks ---------------------------------------------------------------------------------
-- `port` becomes optional: NULL means "locate the trunk by RFC 3263" (SRV, then 5060, or 5061
-- for TLS). Rows that had a port keep it.
-- `inbound_addresses`: where the trunk's calls come from, as IPv4/IPv6 addresses or CIDR
-- blocks in canonical form, separated by single spaces ('' = none), e.g.
-- '203.0.113.0/24 2001:db8::/32 198.51.100.7'. The host parses and checks them on write; a
-- bare address stands for itself (/32 or /128).
-- `inbound_auth` (0/1): also digest-challenge INVITEs from those addresses with the trunk's
-- username and password.
-- `caller_id`: where the caller's identity goes on calls out through the trunk: `from`, `pai`
-- (P-Asserted-Identity) or `both`.
--
-- SQLite cannot drop a NOT NULL constraint: the table is rebuilt. Dropping the old `trunks`
-- deletes its rows first, and with them, by ON DELETE CASCADE, the trunks' registration
-- states; those are kept aside and put back once the new table has the trunks again.
CREATE TABLE trunk_registrations_kept AS SELECT * FROM trunk_registrations;

CREATE TABLE trunks_new (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    host               TEXT NOT NULL,
    port               BIGINT,                 -- NULL: RFC 3263 (SRV, then 5060/5061)
    transport          TEXT NOT NULL,          -- udp | tcp | tls
    username           TEXT,
    password           TEXT,                   -- digest credentials for the trunk; never returned
    register           BIGINT NOT NULL DEFAULT 0,
    created_at         BIGINT NOT NULL,
    inbound_addresses  TEXT NOT NULL DEFAULT '',   -- space-separated addresses / CIDR blocks
    inbound_auth       BIGINT NOT NULL DEFAULT 0,
    caller_id          TEXT NOT NULL DEFAULT 'from',  -- from | pai | both
    UNIQUE (tenant_id, name)
);
INSERT INTO trunks_new (id, tenant_id, name, host, port, transport, username, password, register,
                        created_at)
    SELECT id, tenant_id, name, host, port, transport, username, password, register, created_at
    FROM trunks;
DROP TABLE trunks;
ALTER TABLE trunks_new RENAME TO trunks;

INSERT INTO trunk_registrations (trunk_id, tenant_id, host_id, lease_until, state, last_error,
                                 registered_until, next_attempt, failures, updated_at)
    SELECT trunk_id, tenant_id, host_id, lease_until, state, last_error, registered_until,
           next_attempt, failures, updated_at
    FROM trunk_registrations_kept;
DROP TABLE trunk_registrations_kept;

-- Tenants --------------------------------------------------------------------------------
-- Call limits: concurrent calls and new calls per second (NULL: the host's defaults).
ALTER TABLE tenants ADD COLUMN max_calls BIGINT;
ALTER TABLE tenants ADD COLUMN max_calls_per_second BIGINT;
-- What the switch does with a call when the tenant's router cannot decide (it trapped, timed
-- out, answered invalidly, or there is none), as JSON: {"reject": {"code": 503, "reason": ..}}
-- or {"dial": {"target": .., "trunk": ..}}. NULL: reject with 503.
ALTER TABLE tenants ADD COLUMN call_fallback TEXT;

-- CDRs -----------------------------------------------------------------------------------
ALTER TABLE cdrs ADD COLUMN call_id TEXT;          -- SIP Call-ID of the caller's leg
ALTER TABLE cdrs ADD COLUMN sip_user TEXT;         -- the calling SIP user, if a phone placed it
ALTER TABLE cdrs ADD COLUMN sip_reason TEXT;       -- reason phrase of the final status
ALTER TABLE cdrs ADD COLUMN ended_by TEXT;         -- caller | callee | plugin | idle | switch ...
ALTER TABLE cdrs ADD COLUMN answered_target TEXT;  -- the outbound target that answered
ALTER TABLE cdrs ADD COLUMN host_id TEXT;          -- the host that ran the call
-- running: written at the call's start, replaced at its end; ended; interrupted: was running
-- on a host that stopped without ending it (marked when that host starts again).
ALTER TABLE cdrs ADD COLUMN state TEXT NOT NULL DEFAULT 'ended';
-- A starting host finds its calls left running, among all records, through this small index.
CREATE INDEX cdrs_running ON cdrs (host_id) WHERE state = 'running';

-- Directory version ------------------------------------------------------------------------
-- One row, bumped in the same transaction as every change to what routes calls (numbers,
-- trunks, tenants' SIP domains, call settings and limits, tenants created or deleted): each
-- host reads it often and reloads its in-memory directory only when it moved.
CREATE TABLE directory_version (
    id       BIGINT PRIMARY KEY CHECK (id = 1),
    version  BIGINT NOT NULL
);
INSERT INTO directory_version (id, version) VALUES (1, 1);
