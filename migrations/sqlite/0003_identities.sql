-- Identities that are never reused (see ../postgres/0003_identities.sql for why).
ALTER TABLE tenants ADD COLUMN uid TEXT NOT NULL DEFAULT '';
UPDATE tenants SET uid = lower(hex(randomblob(16)));
CREATE UNIQUE INDEX tenants_uid ON tenants (uid);

CREATE TABLE plugin_names (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    last_version BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
INSERT INTO plugin_names (tenant_id, name, last_version)
    SELECT tenant_id, name, MAX(version) FROM plugins GROUP BY tenant_id, name;
