#!/usr/bin/env python3
"""How much one tenant's misbehaving plugin costs everyone else: /healthz latency and another
tenant's `GET /v1/tenants/B/kv` latency, idle and while tenant A's read key runs looping
simulations (the faulty router, `to: "loop"`, each spinning until the plugin deadline) from
~20 concurrent clients as fast as its rate limit allows. The host runs with the DEFAULT rate
limits (the binary's own: 50/s, burst 100 at the time of writing); a 429 makes that client wait
for its Retry-After (at most 1 s), and 429s are counted, not errors.

    python3 tests/bench/sim_isolation.py BIN DBURL [--seconds N] [--faulty PATH] [--clients 20]

    DBURL: sqlite:///tmp/x/bench.db  or  postgres://postgres@127.0.0.1:5432/test (a database of
    its own is created beside it and dropped after)

The faulty component comes from --faulty or WASMSWITCH_PROBE_FAULTY (its path is printed by
`cargo run -q --locked -p wasmswitch-plugin-artifacts --example path -- faulty`). The load runs
in a process of its own, so the measuring client is not slowed by the load's Python. Standard
library only; shares its helpers with tests/probe/.
"""

import argparse
import os
import sys
import tempfile
import shutil
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "probe"))

import harness  # noqa: E402
from harness import Host, sim_body  # noqa: E402


def measure(host, b, b_read, seconds):
    hz = harness.Sampler(host.base, "/healthz").start()
    kv = harness.Sampler(host.base, f"/v1/tenants/{b}/kv", b_read).start()
    time.sleep(seconds)
    return hz.stop(), kv.stop()


def row(phase, endpoint, st):
    return (f"| {phase} | {endpoint} | {st['n']} | {st['p50']:.1f} | {st['p99']:.1f} | "
            f"{st['max']:.1f} | {st['errors']} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary")
    ap.add_argument("db_url")
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds per phase (default 20)")
    ap.add_argument("--clients", type=int, default=20, help="concurrent looping clients (default 20)")
    ap.add_argument("--faulty", help="the faulty router component (env WASMSWITCH_PROBE_FAULTY)")
    args = ap.parse_args()
    path = args.faulty or os.environ.get("WASMSWITCH_PROBE_FAULTY")
    if not path:
        sys.exit("give the faulty component with --faulty PATH or WASMSWITCH_PROBE_FAULTY")
    faulty = open(path, "rb").read()
    binary = os.path.abspath(args.binary)
    work = tempfile.mkdtemp(prefix="wasmswitch-simiso-")
    postgres = args.db_url.startswith("postgres")
    own_db = harness.pg_create(args.db_url, "wsbench") if postgres else None
    db_url = own_db or args.db_url
    # Default rate limits: the binary's own, not the harness's "off".
    host = Host(binary, db_url, work, "host", env={
        "WASMSWITCH_API_RATE_LIMIT_PER_SECOND": None,
        "WASMSWITCH_API_RATE_LIMIT_BURST": None,
        "WASMSWITCH_LOG_LEVEL": "warn"})
    try:
        host.start()
        c = host.client
        a = host.new_tenant()
        a_admin, _ = host.new_key(a)
        a_read, _ = host.new_key(a, role="tenant-read")
        v = host.must(lambda: host.upload(a, a_admin, "r", faulty, activate=True), 201)["version"]
        b = host.new_tenant()
        b_admin, _ = host.new_key(b)
        b_read, _ = host.new_key(b, role="tenant-read")
        for i in range(50):
            host.must(lambda: c.req("PUT", f"/v1/tenants/{b}/kv/entry-{i:02d}", b_admin,
                            f"value {i}".encode()), 204)
        # The first simulation compiles the version for the simulation runtime: not measured.
        c.post(f"/v1/tenants/{a}/simulate", a_read, sim_body("r", v, "loop"))
        time.sleep(1.0)

        idle_hz, idle_kv = measure(host, b, b_read, args.seconds)
        load = harness.start_load(host.base, f"/v1/tenants/{a}/simulate", a_read,
                                  sim_body("r", v, "loop"), clients=args.clients,
                                  seconds=args.seconds + 2.0)
        time.sleep(1.0)
        load_hz, load_kv = measure(host, b, b_read, args.seconds)
        stats = harness.finish_load(load, timeout=args.seconds + 120)
        rss = host.rss_kib("VmHWM") / 1024
    finally:
        host.stop()
        if own_db:
            harness.pg_drop(args.db_url, own_db)
    backend = "postgres" if postgres else "sqlite"
    print(f"binary: {binary}")
    print(f"database: {backend}; {args.seconds:.0f} s per phase; {args.clients} looping clients "
          f"with tenant A's read key; default rate limits; 2 cores: {os.cpu_count()} CPUs seen")
    print()
    print("| phase | endpoint | requests | p50 ms | p99 ms | max ms | errors |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    print(row("idle", "/healthz", idle_hz))
    print(row("idle", f"tenant B kv list", idle_kv))
    print(row(f"{args.clients} loops", "/healthz", load_hz))
    print(row(f"{args.clients} loops", "tenant B kv list", load_kv))
    print()
    if stats:
        status = ", ".join(f"{k}: {n}" for k, n in sorted(stats["status"].items()))
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(stats["kinds"].items())) or "none"
        print(f"looping simulations: {stats['sent']} sent; answers {status}; plugin errors "
              f"{kinds}; 429/503 without Retry-After: {stats['no_retry_after']}")
        if stats["examples"]:
            print(f"other answers, e.g.: {stats['examples']}")
    else:
        print("looping simulations: the load generator did not report")
    print(f"host peak RSS (VmHWM): {rss:.0f} MiB")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
