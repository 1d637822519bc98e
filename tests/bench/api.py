#!/usr/bin/env python3
"""Control-plane benchmarks against a real `wasmswitch serve` (release build):

1. Plugin upload-to-live: the time from the start of `POST .../plugins/NAME?activate=true`
   until it returns, when the version is live for new calls on this host. New bytes each time
   (a custom section appended, so every upload compiles) vs the same bytes again (the compiled
   cache answers). Then, with a second host on the same database, the time until that host
   routes with the new version (its sync loop).
2. API read throughput: wrk on `GET /v1/tenants/bench/cdrs?limit=50` (10,000 records, keyed,
   authenticated, one page per request) against `GET /healthz` (no key, no database) as the
   baseline, in the same run.

    python3 tests/bench/api.py target/release/wasmswitch sqlite
    python3 tests/bench/api.py target/release/wasmswitch postgres://postgres@127.0.0.1:5432/test

Needs wrk (Debian's package) and the example plugins (`make plugins`).
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "probe"))
from harness import free_port, with_custom_section  # noqa: E402  (shared with the probe suite)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OPERATOR = "bench-operator-key-0123456789abcdef0123456789"


def request(method, url, key=None, body=None, ctype="application/json"):
    data = None
    headers = {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["content-type"] = ctype
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req) as r:
        text = r.read()
        return json.loads(text) if text else None


def start(binary, db_url, work, name):
    port = free_port()
    env = dict(os.environ)
    env.update(
        WASMSWITCH_API_LISTEN=f"127.0.0.1:{port}",
        WASMSWITCH_SIP_LISTEN="127.0.0.1:0",
        DATABASE_URL=db_url,
        WASMSWITCH_PLUGINS_CACHE_DIR=os.path.join(work, f"cache-{name}"),
        WASMSWITCH_API_OPERATOR_KEYS=json.dumps([OPERATOR]),
        WASMSWITCH_API_RATE_LIMIT_PER_SECOND="10000000",
        WASMSWITCH_API_RATE_LIMIT_BURST="10000000",
        WASMSWITCH_LOG_LEVEL="warn",
    )
    log = open(os.path.join(work, f"{name}.log"), "w")
    proc = subprocess.Popen([binary, "serve"], env=env, cwd=work, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            request("GET", base + "/readyz")
            return proc, base
        except Exception:
            time.sleep(0.05)
    proc.kill()
    sys.exit(f"{name} did not start; see {log.name}")


def artifact(name):
    out = subprocess.run(
        ["cargo", "run", "-q", "--release", "-p", "wasmswitch-plugin-artifacts", "--example", "path", "--", name],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    return open(out.stdout.strip(), "rb").read()


def route_trunk(base, key):
    sim = request("POST", base + "/v1/tenants/bench/simulate", key, {"call": {"to": "+14155550100"}})
    return sim["version"]


def upload_to_live(base, key, component, label, n):
    times = []
    for i in range(n):
        body = with_custom_section(component, f"{label}-{i}-{time.time_ns()}") if label == "new" else component
        t = time.perf_counter()
        request("POST", base + "/v1/tenants/bench/plugins/router?activate=true", key, body, "application/wasm")
        times.append(time.perf_counter() - t)
    return times


def wrk(url, key, seconds):
    args = ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", url]
    if key:
        args[1:1] = ["-H", f"Authorization: Bearer {key}"]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit(f"wrk saw {errors.group(1)} error responses from {url}")
    return rps, lat.get("50"), lat.get("99")


def seed_cdrs(db_url, work, n):
    if db_url.startswith("sqlite"):
        path = db_url.split("://", 1)[1]
        sql = (
            "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < %d) "
            "INSERT INTO cdrs (id, tenant_id, from_number, to_number, direction, disposition, sip_status, "
            "started_at, duration_ms) SELECT 'c' || i, 'bench', '+15550001', '+1415555' || (i %% 10000), "
            "'inbound', 'answered', 200, 1700000000000 + i * 1000, 60000 FROM g;" % n
        )
        subprocess.run(["sqlite3", os.path.join(work, path)], input=sql, text=True, check=True)
    else:
        sql = (
            "INSERT INTO cdrs (id, tenant_id, from_number, to_number, direction, disposition, sip_status, "
            "started_at, duration_ms) SELECT 'c' || i, 'bench', '+15550001', '+1415555' || (i %% 10000), "
            "'inbound', 'answered', 200, 1700000000000 + i * 1000, 60000 FROM generate_series(1, %d) i;" % n
        )
        subprocess.run(["psql", "-q", db_url, "-c", sql], check=True)


def main():
    binary, db = sys.argv[1], sys.argv[2]
    binary = os.path.abspath(binary)
    work = tempfile.mkdtemp(prefix="wasmswitch-bench-")
    pg_db = None
    if db == "sqlite":
        db_url = "sqlite://bench.db"
    else:
        pg_db = f"wasmswitch_bench_{os.getpid()}"
        subprocess.run(["psql", "-q", db, "-c", f"CREATE DATABASE {pg_db}"], check=True)
        db_url = db.rsplit("/", 1)[0] + "/" + pg_db
    procs = []
    try:
        a, base = start(binary, db_url, work, "host-a")
        procs.append(a)
        request("POST", base + "/v1/tenants", OPERATOR, {"id": "bench", "name": "bench"})
        key = request("POST", base + "/v1/tenants/bench/keys", OPERATOR, {"name": "bench"})["secret"]
        request("PUT", base + "/v1/tenants/bench/kv/routes", key, b"+1 * us-trunk\n", "application/octet-stream")
        router = artifact("router")

        # Upload-to-live on this host.
        new = upload_to_live(base, key, router, "new", 20)
        same = upload_to_live(base, key, router, "same", 20)
        # Another host on the same database: until it routes with a new version.
        b, base_b = start(binary, db_url, work, "host-b")
        procs.append(b)
        remote = []
        for i in range(10):
            body = with_custom_section(router, f"remote-{i}-{time.time_ns()}")
            t = time.perf_counter()
            v = request("POST", base + "/v1/tenants/bench/plugins/router?activate=true", key, body, "application/wasm")["version"]
            while route_trunk(base_b, key) != v:
                time.sleep(0.005)
            remote.append(time.perf_counter() - t)

        def ms(xs):
            xs = sorted(xs)
            return f"median {statistics.median(xs) * 1000:.1f} ms, max {xs[-1] * 1000:.1f} ms"

        print(f"database: {'sqlite' if pg_db is None else 'postgres'}")
        print(f"upload-to-live, new component (compiles):      {ms(new)}")
        print(f"upload-to-live, same component (cache):        {ms(same)}  ({statistics.median(new) / statistics.median(same):.1f}x faster)")
        print(f"upload-to-live on a second host (sync loop):   {ms(remote)}")

        seed_cdrs(db_url, work, 10_000)
        cdr_url = base + "/v1/tenants/bench/cdrs?limit=50"
        request("GET", cdr_url, key)
        base_rps, b50, b99 = wrk(base + "/healthz", None, 10)
        cdr_rps, c50, c99 = wrk(cdr_url, key, 10)
        print(f"GET /healthz (baseline):                      {base_rps:9.0f} req/s  p50 {b50}  p99 {b99}")
        print(f"GET /v1/tenants/bench/cdrs?limit=50:          {cdr_rps:9.0f} req/s  p50 {c50}  p99 {c99}  ({cdr_rps / base_rps:.2f}x baseline)")
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        if pg_db:
            subprocess.run(["psql", "-q", db, "-c", f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)"])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
