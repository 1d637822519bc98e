-- Trunks the switch registers with (issue 10): which host keeps each one registered, and how
-- that is going, for the API and for the other hosts. A host holds a trunk by a lease it
-- renews; when it stops renewing (it died), another host takes the trunk over.
CREATE TABLE trunk_registrations (
    trunk_id         TEXT PRIMARY KEY REFERENCES trunks(id) ON DELETE CASCADE,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    host_id          TEXT NOT NULL,        -- the host keeping it registered
    lease_until      BIGINT NOT NULL,      -- that host's hold lapses then unless renewed
    state            TEXT NOT NULL,        -- registering | registered | failing
    last_error       TEXT,                 -- why the last attempt failed, if it did
    registered_until BIGINT,               -- when the trunk's grant lapses, if registered
    next_attempt     BIGINT,               -- when the host registers (or refreshes) next
    failures         BIGINT NOT NULL DEFAULT 0,  -- failed attempts in a row
    updated_at       BIGINT NOT NULL
);
