-- New tenants get their uid from the host (0003 backfilled existing ones). Without a default, a
-- host that does not set one fails loudly instead of writing '' (a second such tenant would
-- then collide on tenants_uid). gen_random_uuid() in 0003 needs PostgreSQL 13 or later.
ALTER TABLE tenants ALTER COLUMN uid DROP DEFAULT;
