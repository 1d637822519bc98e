-- The highest nonce count (`nc`) accepted with each digest nonce, shared by every host: a
-- REGISTER replayed to another host sharing this database, or to a host after its restart, is
-- refused as a replay, as on the host that accepted it first. Rows lapse with their nonce.
CREATE TABLE digest_nonces (
    nonce       TEXT PRIMARY KEY,
    nc          BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX digest_nonces_expiry ON digest_nonces (expires_at);
