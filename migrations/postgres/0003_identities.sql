-- Identities that are never reused.
--
-- A tenant's id is a slug its operator chose, and can be chosen again after the tenant is
-- deleted; `uid` is random and tells the two apart, so a bearer token minted for the first
-- tenant (it carries the uid) is worthless for the second.
ALTER TABLE tenants ADD COLUMN uid TEXT NOT NULL DEFAULT '';
UPDATE tenants SET uid = replace(gen_random_uuid()::text, '-', '');
CREATE UNIQUE INDEX tenants_uid ON tenants (uid);

-- The last version number given to each plugin name. Uploads take the next number from here
-- (the row is locked while they do, so concurrent uploads queue rather than collide), and it
-- never goes down: deleting the highest version does not free its number for other code.
CREATE TABLE plugin_names (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    last_version BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
INSERT INTO plugin_names (tenant_id, name, last_version)
    SELECT tenant_id, name, MAX(version) FROM plugins GROUP BY tenant_id, name;
