#!/usr/bin/env bash
# Builds the container image and checks it the way a user runs it: the API answers, the first
# start prints an operator key, a plugin uploaded through the API routes a simulated call, a
# restart keeps the data (and prints no new key), and the same image runs on PostgreSQL.
#
#   tests/container.sh                 # builds wasmswitch:test from the repository
#   IMAGE=wasmswitch:dev SKIP_BUILD=1 tests/container.sh
#
# Needs docker, and the base images the Dockerfile names (RUST_IMAGE, RUNTIME_IMAGE build
# arguments, passed through from the environment). Set WASMSWITCH_TEST_POSTGRES_URL to a
# PostgreSQL on 127.0.0.1 for the PostgreSQL part (default: the one `make test` uses; empty
# skips it).
set -euo pipefail
cd "$(dirname "$0")/.."

image=${IMAGE:-wasmswitch:test}
pg=${WASMSWITCH_TEST_POSTGRES_URL-postgres://postgres@127.0.0.1:5432/test}
run_id=$(python3 -c 'import secrets; print(secrets.token_hex(4))')
name=wasmswitch-test-$run_id
volume=wasmswitch-test-$run_id
pgdb=wasmswitch_container_$run_id
router=$(cargo run -q --locked -p wasmswitch-plugin-artifacts --example path -- router)

cleanup() {
    docker rm -f "$name" "$name-pg" >/dev/null 2>&1 || true
    docker volume rm "$volume" >/dev/null 2>&1 || true
    if [ -n "$pg" ]; then
        psql "$pg" -qc "DROP DATABASE IF EXISTS $pgdb" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    docker logs "$name" 2>&1 | tail -30 >&2 || true
    exit 1
}

if [ -z "${SKIP_BUILD:-}" ]; then
    args=()
    [ -n "${RUST_IMAGE:-}" ] && args+=(--build-arg "RUST_IMAGE=$RUST_IMAGE")
    [ -n "${RUNTIME_IMAGE:-}" ] && args+=(--build-arg "RUNTIME_IMAGE=$RUNTIME_IMAGE")
    docker build "${args[@]}" -t "$image" .
fi

wait_ready() { # base-url
    for _ in $(seq 1 100); do
        curl -fsS "$1/readyz" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    fail "$1/readyz never answered"
}

# 1. SQLite in the volume, the published port.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
docker run -d --name "$name" -p "127.0.0.1:$port:8080" -v "$volume:/var/lib/wasmswitch" "$image" >/dev/null
wait_ready "$base"
op=$(docker logs "$name" 2>&1 | grep -o 'wsk_[A-Za-z0-9_]*' | head -1)
[ -n "$op" ] || fail "the first start printed no operator key"
[ "$(docker exec "$name" id -u)" != 0 ] || fail "the host runs as root"
# The image's HEALTHCHECK (`wasmswitch health`) reports the switch healthy.
for _ in $(seq 1 60); do
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$name")" = healthy ] && break
    sleep 0.5
done
[ "$(docker inspect -f '{{.State.Health.Status}}' "$name")" = healthy ] || fail "never healthy"

curl -fsS -X POST "$base/v1/tenants" -H "Authorization: Bearer $op" \
    -H 'content-type: application/json' -d '{"id": "acme", "name": "Acme"}' >/dev/null
key=$(curl -fsS -X POST "$base/v1/tenants/acme/keys" -H "Authorization: Bearer $op" \
    -H 'content-type: application/json' -d '{"name": "ci", "role": "tenant-admin"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])')
curl -fsS -X POST "$base/v1/tenants/acme/plugins/router?world=router&activate=true" \
    -H "Authorization: Bearer $key" -H 'content-type: application/wasm' \
    --data-binary "@$router" >/dev/null
curl -fsS -X PUT "$base/v1/tenants/acme/kv/routes" -H "Authorization: Bearer $key" \
    --data-binary $'+1 * us-trunk\n' >/dev/null
decision=$(curl -fsS -X POST "$base/v1/tenants/acme/simulate" -H "Authorization: Bearer $key" \
    -H 'content-type: application/json' \
    -d '{"events": [{"incoming": {"from": "+442071234567", "to": "+14155550100"}}]}')
python3 - "$decision" <<'PY' || fail "simulate did not dial through us-trunk: $decision"
import json, sys
out = json.loads(sys.argv[1])["steps"][0]["output"]
assert out[0]["dial"]["groups"][0]["targets"][0]["trunk"] == "us-trunk", out
PY
echo "ok: API, operator key, upload, simulate (SQLite)"

# 2. A restart keeps the tenant, its plugin and the key; no second operator key.
docker restart "$name" >/dev/null
wait_ready "$base"
keys=$(docker logs "$name" 2>&1 | grep -c 'created the first operator API key' || true)
[ "$keys" = 1 ] || fail "an operator key was created $keys times"
curl -fsS "$base/v1/tenants/acme/plugins" -H "Authorization: Bearer $key" | grep -q '"router"' ||
    fail "the plugin did not survive a restart"
# The compiled component came back from the cache in the volume, not a recompile.
docker exec "$name" sh -c 'ls /var/lib/wasmswitch/cache | grep -q .' || fail "no compiled-plugin cache"
echo "ok: restart keeps the data"

# 3. PostgreSQL (the machine's, through the host network).
if [ -n "$pg" ]; then
    psql "$pg" -qc "CREATE DATABASE $pgdb" >/dev/null
    pg_url="${pg%/*}/$pgdb"
    pg_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    docker run -d --name "$name-pg" --network host -e "DATABASE_URL=$pg_url" -e "WASMSWITCH_SIP_LISTEN=127.0.0.1:0" \
        -e "WASMSWITCH_API_LISTEN=127.0.0.1:$pg_port" "$image" >/dev/null
    name=$name-pg wait_ready "http://127.0.0.1:$pg_port"
    pg_op=$(docker logs "$name-pg" 2>&1 | grep -o 'wsk_[A-Za-z0-9_]*' | head -1)
    curl -fsS -X POST "http://127.0.0.1:$pg_port/v1/tenants" -H "Authorization: Bearer $pg_op" \
        -H 'content-type: application/json' -d '{"id": "acme", "name": "Acme"}' >/dev/null
    [ "$(psql "$pg_url" -tAc "SELECT count(*) FROM tenants WHERE id = 'acme'")" = 1 ] ||
        fail "the tenant is not in PostgreSQL"
    echo "ok: PostgreSQL"
fi
echo "container checks passed ($image)"
