-- kv keys become bytes (see ../postgres/0002_kv_keys_as_bytes.sql). SQLite cannot change a
-- column's type in place, so the table is rebuilt.
CREATE TABLE kv_new (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    key          BLOB NOT NULL,
    value        BLOB NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
INSERT INTO kv_new (tenant_id, key, value, updated_at)
    SELECT tenant_id, CAST(key AS BLOB), value, updated_at FROM kv;
DROP TABLE kv;
ALTER TABLE kv_new RENAME TO kv;
