-- kv keys become bytes: PostgreSQL text cannot hold NUL, which a plugin's key (any WIT string)
-- may contain, and byte order is then the column's own order on both databases.
ALTER TABLE kv ALTER COLUMN key TYPE BYTEA USING convert_to(key, 'UTF8');
