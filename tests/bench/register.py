#!/usr/bin/env python3
"""Registrar load: how many REGISTERs per second wasmswitch sustains, and Kamailio doing the
same job in the same run.

Every call sipp makes is one phone registering with digest: REGISTER, 401, REGISTER with
credentials (MD5, qop=auth), 200 (Expires 3600, one binding per user). The users come from an
injection file, so consecutive calls are different users (N users, then round again).

Contestants, each on the same N SIP users and the same sipp ladder:

* wasmswitch on SQLite and on PostgreSQL (release build, `wasmswitch serve`, its registrar:
  the tenant and the user are read once per challenge and answer (kept 10 s); an authenticated
  REGISTER also runs one write transaction that records the nonce count and reads and writes
  the user's bindings; the 200 is sent after the commit).
* Kamailio (Debian's package) with `auth_db` + `usrloc` + `registrar`
  (`tests/bench/kamailio/registrar.cfg`), 2 children: usrloc write-through (db_mode 1: every
  binding written to the location table before the 200, the same work as ours) on SQLite and
  on PostgreSQL, and in memory (db_mode 0, subscriber table in SQLite: Kamailio's fastest).
  On SQLite also with 1 child: Kamailio's db_sqlite sets no busy timeout, so with 2 children a
  write that meets the other child's fails at once ("database is locked", a 500); one child is
  one writer, as wasmswitch has one writer connection on SQLite.

For each contestant: N users registered once at a low rate (not measured: every binding is then
a refresh, as most REGISTERs are in production), then sipp at each rate of the ladder for
--seconds; the ladder stops after the first rate the contestant does not sustain (>= 1% failed
calls, or fewer than 90% of the calls asked for per second). Per rate: calls completed and
failed, the achieved rate, response times of both round trips (from sipp's -trace_rtt, every
call, in sipp's whole milliseconds), the CPU the server (and PostgreSQL) used and the server's
context switches per registration.

    python3 tests/bench/register.py                        # builds the release binary first
    python3 tests/bench/register.py --binary PATH --rates 200,1000 --seconds 5

Needs sipp (Debian's sip-tester) and Kamailio (installed with apt-get when missing; the script
says so), PostgreSQL at --postgres (trust auth; a database of its own is created and dropped per
contestant; --postgres '' skips the PostgreSQL runs). Prints a table and writes a Markdown
section for BENCHMARKS.md to --out.
"""

import argparse
import csv
import datetime
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

from common import (SIPP, busy_seconds, build, commit, ensure_kamailio, epoch, fmt, free_port,
                    kamailio_version, log, percentile, request, serve, sip_ready, sipp_version, stop,
                    usage)

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO = os.path.join(HERE, "sipp", "register-load.xml")
KAMAILIO_CFG = os.path.join(HERE, "kamailio", "registrar.cfg")
KAMAILIO_SCHEMA = "/usr/share/kamailio"
DOMAIN = "acme.wasmswitch.local"
PASSWORD = "bench-pass-1"
TENANT = "acme"


# ---------------------------------------------------------------------------------------------
# Contestants.


class Wasmswitch:
    def __init__(self, binary, db, work, pg_admin_url, users):
        self.binary = binary
        self.db = db  # "sqlite" or "postgres"
        self.name = f"wasmswitch, {'SQLite' if db == 'sqlite' else 'PostgreSQL'}"
        self.work = os.path.join(work, f"wasmswitch-{db}")
        os.makedirs(self.work)
        self.pg_admin_url = pg_admin_url
        self.pg_db = None
        self.users = users
        self.proc = None
        self.port = free_port()
        self.api = None

    def start(self):
        if self.db == "sqlite":
            db_url = "sqlite://" + os.path.join(self.work, "wasmswitch.db")
        else:
            self.pg_db = f"wasmswitch_bench_{os.getpid()}"
            psql(self.pg_admin_url, f"CREATE DATABASE {self.pg_db}")
            db_url = self.pg_admin_url.rsplit("/", 1)[0] + "/" + self.pg_db
        self.proc, self.api, self.operator, self.stderr = serve(self.binary, self.work, dict(
            WASMSWITCH_API_LISTEN="127.0.0.1:0",
            WASMSWITCH_SIP_LISTEN=f"127.0.0.1:{self.port}",
            WASMSWITCH_SIP_DIGEST_ALGORITHMS='["MD5"]',
            WASMSWITCH_SIP_RATE_LIMIT_PER_SECOND="0",
            WASMSWITCH_SIP_AUTH_FAILURE_BURST="1000000",
            # Only so that creating the users through the API does not wait on its per-key
            # budget; the API takes no part in the measurement.
            WASMSWITCH_API_RATE_LIMIT_PER_SECOND="1000000",
            WASMSWITCH_API_RATE_LIMIT_BURST="1000000",
            DATABASE_URL=db_url,
        ))
        request("POST", self.api + "/v1/tenants", self.operator, {"id": TENANT, "name": "Acme bench"})
        t = time.monotonic()
        for u in self.users:
            request("POST", f"{self.api}/v1/tenants/{TENANT}/sip-users", self.operator,
                    {"username": u, "password": PASSWORD})
        log(f"  {self.name}: {len(self.users)} SIP users created through the API in {time.monotonic() - t:.1f} s")
        if not sip_ready(self.port):
            sys.exit(f"{self.name}: SIP does not answer on {self.port}")

    def cpu(self):
        server = usage(root_pid=self.proc.pid)
        db = usage(comm="postgres") if self.db == "postgres" else (0.0, 0)
        return server + db

    def counters(self):
        text = request("GET", self.api + "/metrics").decode()
        out = {}
        for m in re.finditer(r'^sip_registers_total\{outcome="(\w+)"\}\s+(\S+)', text, re.M):
            out[m.group(1)] = int(float(m.group(2)))
        return out

    def bindings(self):
        body = request("GET", f"{self.api}/v1/tenants/{TENANT}/registrations", self.operator)
        return len(json.loads(body))

    def stop(self):
        stop(self.proc)
        if self.pg_db:
            psql(self.pg_admin_url, f"DROP DATABASE IF EXISTS {self.pg_db} WITH (FORCE)")
            self.pg_db = None


class Kamailio:
    def __init__(self, db, db_mode, work, pg_admin_url, users, children=2):
        self.db = db  # "sqlite" or "postgres"
        self.db_mode = db_mode
        self.children = children
        where = "SQLite" if db == "sqlite" else "PostgreSQL"
        self.name = (f"Kamailio, write-through to {where}" if db_mode == 1
                     else f"Kamailio, in memory (subscribers in {where})")
        if children != 2:
            self.name += f", {children} child" + ("ren" if children > 1 else "")
        self.work = os.path.join(work, f"kamailio-{db}-{db_mode}-{children}")
        os.makedirs(self.work)
        self.pg_admin_url = pg_admin_url
        self.pg_db = None
        self.users = users
        self.proc = None
        self.port = free_port()

    def start(self):
        ha1 = lambda u: hashlib.md5(f"{u}:{DOMAIN}:{PASSWORD}".encode()).hexdigest()  # noqa: E731
        files = ["standard-create.sql", "auth_db-create.sql", "usrloc-create.sql"]
        if self.db == "sqlite":
            path = os.path.join(self.work, "kamailio.db")
            con = sqlite3.connect(path)
            # WAL, as wasmswitch's SQLite (sticks to the file); synchronous stays at SQLite's
            # default (FULL) on both.
            con.execute("PRAGMA journal_mode=WAL")
            for f in files:
                con.executescript(open(os.path.join(KAMAILIO_SCHEMA, "db_sqlite", f)).read())
            con.executemany("INSERT INTO subscriber (username, domain, ha1) VALUES (?, ?, ?)",
                            [(u, DOMAIN, ha1(u)) for u in self.users])
            con.commit()
            con.close()
            db_url = f"sqlite://{path}"
            module = "WITH_SQLITE"
        else:
            self.pg_db = f"kamailio_bench_{os.getpid()}"
            psql(self.pg_admin_url, f"CREATE DATABASE {self.pg_db}")
            db_url = self.pg_admin_url.rsplit("/", 1)[0] + "/" + self.pg_db
            sql = "".join(open(os.path.join(KAMAILIO_SCHEMA, "postgres", f)).read() for f in files)
            sql += "INSERT INTO subscriber (username, domain, ha1) VALUES " + ",".join(
                f"('{u}', '{DOMAIN}', '{ha1(u)}')" for u in self.users) + ";\n"
            subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", db_url], input=sql, text=True,
                           check=True, capture_output=True)
            module = "WITH_POSTGRES"
        self.stderr = open(os.path.join(self.work, "kamailio.log"), "w")
        self.proc = subprocess.Popen(
            ["kamailio", "-f", KAMAILIO_CFG, "-DD", "-E", "-n", str(self.children), "-m", "256",
             "-l", f"udp:127.0.0.1:{self.port}", "-Y", self.work,
             "-A", module, "-A", f'DBURL="{db_url}"', "-A", f"ULDBMODE={self.db_mode}"],
            cwd=self.work, stdout=self.stderr, stderr=self.stderr,
        )
        if not sip_ready(self.port):
            self.stop()
            sys.exit(f"{self.name} did not start; see {self.stderr.name}")

    def cpu(self):
        server = usage(root_pid=self.proc.pid)
        db = usage(comm="postgres") if self.db == "postgres" else (0.0, 0)
        return server + db

    def counters(self):
        return None

    def bindings(self):
        if self.db_mode == 0:
            return None
        if self.db == "sqlite":
            con = sqlite3.connect(os.path.join(self.work, "kamailio.db"))
            try:
                return con.execute("SELECT COUNT(*) FROM location").fetchone()[0]
            finally:
                con.close()
        out = subprocess.run(["psql", "-Atc", "SELECT COUNT(*) FROM location",
                              self.pg_admin_url.rsplit("/", 1)[0] + "/" + self.pg_db],
                             capture_output=True, text=True, check=True)
        return int(out.stdout.strip())

    def stop(self):
        stop(self.proc)
        if self.pg_db:
            psql(self.pg_admin_url, f"DROP DATABASE IF EXISTS {self.pg_db} WITH (FORCE)")
            self.pg_db = None


def psql(url, sql):
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True,
                   capture_output=True)


# ---------------------------------------------------------------------------------------------
# sipp.


def run_sipp(target, rate, seconds, sipp_port, users_csv, rundir, limit=None):
    """One rung: `rate` calls/s for `seconds`. Returns the figures."""
    os.makedirs(rundir)
    calls = int(rate * seconds)
    limit = limit or max(200, rate // 2)
    args = [
        SIPP, "-sf", SCENARIO, "-inf", users_csv,
        "-key", "domain", DOMAIN, "-auth_uri", DOMAIN,
        "-i", "127.0.0.1", "-p", str(sipp_port), "-t", "u1",
        "-r", str(rate), "-rp", "1000", "-m", str(calls), "-l", str(limit),
        "-recv_timeout", "5000", "-max_recv_loops", "10000", "-max_sched_loops", "10000",
        "-nostdin", "-trace_stat", "-stf", "stat.csv", "-fd", "1",
        "-trace_rtt", "-rtt_freq", "100", "-trace_error_codes",
        f"127.0.0.1:{target.port}",
    ]
    cpu0 = target.cpu()
    counters0 = target.counters()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0 = busy_seconds()
    t0 = time.monotonic()
    with open(os.path.join(rundir, "sipp.out"), "w") as out:
        proc = subprocess.Popen(args, cwd=rundir, stdout=out, stderr=subprocess.STDOUT)
        try:
            proc.wait(seconds * 4 + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    wall = time.monotonic() - t0
    busy1 = busy_seconds()
    cpu1 = target.cpu()
    counters1 = target.counters()
    # sipp's own CPU time: the only child of ours that ended during the rung.
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    sipp_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)

    rows = list(csv.DictReader(open(os.path.join(rundir, "stat.csv")), delimiter=";"))
    if not rows:
        raise RuntimeError(f"sipp wrote no statistics; see {rundir}/sipp.out")
    last = rows[-1]
    ok = int(last["SuccessfulCall(C)"])
    failed = int(last["FailedCall(C)"])
    retrans = int(last.get("Retransmissions(C)", 0) or 0)
    # ElapsedTime(C) is in whole seconds; StartTime and CurrentTime carry the epoch in µs.
    elapsed = epoch(last["CurrentTime"]) - epoch(last["StartTime"])
    rtt = {"1": [], "2": []}
    for name in os.listdir(rundir):
        if name.endswith("_rtt.csv"):
            for line in open(os.path.join(rundir, name)):
                parts = line.strip().split(";")
                if len(parts) >= 3 and parts[2] in rtt:
                    try:
                        rtt[parts[2]].append(float(parts[1]))
                    except ValueError:
                        pass
    # -trace_error_codes: one line per second, "<time>;<elapsed>;<code>,<code>,..."
    codes = {}
    for name in os.listdir(rundir):
        if "_error_codes" in name:
            for line in open(os.path.join(rundir, name)):
                for code in line.strip().rsplit(";", 1)[-1].split(","):
                    if code.strip():
                        codes[code.strip()] = codes.get(code.strip(), 0) + 1
    fail_kinds = {k[len("Failed"):-3]: int(v) for k, v in last.items()
                  if k.startswith("Failed") and k.endswith("(C)") and k != "FailedCall(C)" and v and int(v)}
    r1 = sorted(rtt["1"])
    r2 = sorted(rtt["2"])
    done = ok + failed
    server_cpu = cpu1[0] - cpu0[0]
    server_switches = cpu1[1] - cpu0[1]
    db_cpu = cpu1[2] - cpu0[2]
    result = {
        "rate": rate,
        "calls": calls,
        "ok": ok,
        "failed": failed,
        "unfinished": calls - done,
        "failed_pct": 100.0 * (calls - ok) / calls if calls else 0.0,
        "elapsed": elapsed,
        "wall": wall,
        "achieved": ok / elapsed if elapsed else 0.0,
        "retrans": retrans,
        "challenge_p50": percentile(r1, 50), "challenge_p99": percentile(r1, 99),
        "register_p50": percentile(r2, 50), "register_p99": percentile(r2, 99),
        "register_max": r2[-1] if r2 else None,
        "samples": len(r2),
        "server_cpu_ms_per_reg": 1000.0 * server_cpu / ok if ok else None,
        "db_cpu_ms_per_reg": 1000.0 * db_cpu / ok if ok and db_cpu else None,
        "server_switches_per_reg": server_switches / ok if ok else None,
        "server_cpu_pct": 100.0 * server_cpu / elapsed if elapsed else None,
        "sipp_cpu_pct": 100.0 * sipp_cpu / elapsed if elapsed else None,
        # Everything else the machine ran meanwhile (other users of the machine, this script,
        # the kernel's own threads), in % of one core: a check that the rung had the machine.
        "other_cpu_pct": 100.0 * max(0.0, (busy1 - busy0) - server_cpu - db_cpu - sipp_cpu) / wall,
        "fail_kinds": fail_kinds,
        "unexpected_codes": codes,
        "rundir": rundir,
    }
    if counters0 is not None and counters1 is not None:
        result["outcomes"] = {k: counters1.get(k, 0) - counters0.get(k, 0) for k in counters1
                              if counters1.get(k, 0) - counters0.get(k, 0)}
    return result


def sustained(r):
    return r["failed_pct"] < 1.0 and r["achieved"] >= 0.9 * r["rate"]


# ---------------------------------------------------------------------------------------------


def versions(pg_url):
    pg = ""
    if pg_url:
        pg = "PostgreSQL " + subprocess.run(["psql", "-Atc", "SHOW server_version", pg_url], capture_output=True,
                                            text=True).stdout.strip()
    return {"kamailio": kamailio_version(), "sipp": sipp_version(), "commit": commit(), "pg": pg}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", help="the wasmswitch release binary (default: build it)")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--rates", default="200,500,1000,1500,2000,3000,4000")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/test",
                    help="an existing database to connect to for CREATE/DROP DATABASE ('' skips PostgreSQL)")
    ap.add_argument("--only", default="", help="comma-separated contestant keys: ws-sqlite, ws-pg, kam-sqlite, kam-sqlite-1, kam-pg, kam-mem")
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "wasmswitch-bench-register.md"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()

    rates = [int(r) for r in args.rates.split(",") if r]
    if not os.path.exists(SIPP):
        sys.exit("sipp not found at /usr/bin/sipp (Debian: apt-get install sip-tester)")
    ensure_kamailio(["kamailio", "kamailio-sqlite-modules", "kamailio-postgres-modules"])
    binary = os.path.abspath(args.binary) if args.binary else build()
    vers = versions(args.postgres)
    work = tempfile.mkdtemp(prefix="wasmswitch-bench-register-")
    log(f"work directory: {work}")
    users = [f"user{i:04d}" for i in range(args.users)]
    users_csv = os.path.join(work, "users.csv")
    with open(users_csv, "w") as f:
        f.write("SEQUENTIAL\n")
        for u in users:
            # sipp 3.6.1 expands an [authentication] keyword that comes from an injected field,
            # not [field0] inside one written in the scenario (see the scenario's comment).
            f.write(f"{u};{PASSWORD};[authentication username={u} password={PASSWORD}]\n")
    sipp_port = free_port()

    pg = args.postgres
    contestants = [("ws-sqlite", lambda: Wasmswitch(binary, "sqlite", work, pg, users))]
    if pg:
        contestants.append(("ws-pg", lambda: Wasmswitch(binary, "postgres", work, pg, users)))
    contestants.append(("kam-sqlite", lambda: Kamailio("sqlite", 1, work, pg, users)))
    # Kamailio's db_sqlite sets no busy timeout: with two children, a write that meets the other
    # child's write fails at once ("database is locked", 500). One child is one writer, as
    # wasmswitch has one writer connection on SQLite.
    contestants.append(("kam-sqlite-1", lambda: Kamailio("sqlite", 1, work, pg, users, children=1)))
    if pg:
        contestants.append(("kam-pg", lambda: Kamailio("postgres", 1, work, pg, users)))
    contestants.append(("kam-mem", lambda: Kamailio("sqlite", 0, work, pg, users)))
    if args.only:
        keep = set(args.only.split(","))
        contestants = [c for c in contestants if c[0] in keep]

    started = time.time()
    results = []
    for key, make in contestants:
        target = make()
        log(f"{target.name}: starting")
        try:
            target.start()
            # Every user registered once (not measured): the ladder's REGISTERs refresh bindings.
            warm = run_sipp(target, 200, len(users) / 200.0, sipp_port, users_csv,
                            os.path.join(target.work, "warm-up"))
            log(f"  warm-up: {warm['ok']}/{warm['calls']} registered, {target.bindings()} bindings stored")
            ladder = []
            for rate in rates:
                time.sleep(1)
                r = run_sipp(target, rate, args.seconds, sipp_port, users_csv,
                             os.path.join(target.work, f"rate-{rate}"))
                ladder.append(r)
                log(f"  {rate:>5}/s: ok {r['ok']}, failed {r['failed']}, unfinished {r['unfinished']}, "
                    f"achieved {r['achieved']:.0f}/s, 200 p50/p99 {fmt(r['register_p50'], '.0f')}/"
                    f"{fmt(r['register_p99'], '.0f')} ms, sipp CPU {fmt(r['sipp_cpu_pct'], '.0f')}%, server CPU {fmt(r['server_cpu_ms_per_reg'], '.3f')} ms/reg, "
                    f"{fmt(r['server_switches_per_reg'], '.1f')} cs/reg, other CPU {r['other_cpu_pct']:.0f}%"
                    + (f", outcomes {r['outcomes']}" if r.get("outcomes") else "")
                    + (f", failures {r['fail_kinds']}" if r["fail_kinds"] else "")
                    + (f", unexpected {r['unexpected_codes']}" if r["unexpected_codes"] else ""))
                if r["other_cpu_pct"] > 15:
                    log(f"  warning: other processes used {r['other_cpu_pct']:.0f}% of a core during this rate")
                if not sustained(r):
                    break
            results.append((key, target.name, warm, ladder, target.bindings()))
        finally:
            target.stop()
    took = time.time() - started

    md = markdown(results, vers, args, took)
    print(md)
    with open(args.out, "w") as f:
        f.write(md)
    log(f"Markdown written to {args.out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        log(f"kept {work}")


def markdown(results, vers, args, took):
    today = datetime.date.today().isoformat()
    cmd = "python3 tests/bench/register.py" + "".join(
        f" {a}" for a in sys.argv[1:])
    lines = [
        f"## Registrar (issue 10, session 9) — {today}, Kamailio in the same run",
        "",
        f"Command: `{cmd}` (`make bench-register`); {args.users} SIP users, sipp ladder "
        f"{args.rates} calls/s, {args.seconds:g} s each, stopping after the first rate not sustained "
        "(sustained = under 1% of the calls failed and at least 90% of the asked rate achieved). "
        f"Whole run: {took / 60:.1f} min.",
        "",
        f"Versions: wasmswitch {vers['commit']} (release build); {vers['kamailio']} (Debian package); "
        f"{vers['sipp']} (Debian sip-tester)" + (f"; {vers['pg']} on this machine" if vers["pg"] else "") + ".",
        "",
        f"Machine: {os.cpu_count()} cores ({platform.machine()}); sipp, the server and PostgreSQL share them.",
        "",
        "Settings: wasmswitch `serve` with `WASMSWITCH_SIP_DIGEST_ALGORITHMS='[\"MD5\"]'` (sipp knows only "
        "MD5 and answers only the first challenge), `WASMSWITCH_SIP_RATE_LIMIT_PER_SECOND=0` (the per-source "
        "limit would hold one sipp to 100/s), `WASMSWITCH_SIP_AUTH_FAILURE_BURST=1000000`, "
        "`sip.register_concurrency` at its default (256), log level at its default (info), the API's "
        "per-key budget raised only to create the users; the database a fresh SQLite file "
        "(WAL, synchronous FULL: sqlx's defaults) or a fresh PostgreSQL database. Kamailio: "
        "`tests/bench/kamailio/registrar.cfg`, `kamailio -DD -E -n 2 -m 256 -l udp:127.0.0.1:PORT` "
        "(`-n 1` where said), HA1 stored as wasmswitch stores it, usrloc `db_mode` 1 (write-through: "
        "the binding is in the database before the 200, as in wasmswitch) unless `in memory` "
        "(`db_mode` 0); its SQLite file in WAL mode (synchronous FULL, SQLite's default). sipp: "
        "`tests/bench/sipp/register-load.xml`, `-t u1 -rp 1000 -l max(200, rate/2) -recv_timeout 5000`, "
        "one process. Every user registered once before the ladder (the `first registrations` rows), so "
        "the ladder's REGISTERs refresh existing bindings.",
        "",
        "Columns: calls asked for (rate x seconds) and completed (`ok`: REGISTER, 401, REGISTER, 200), "
        "failed (sipp's count, plus calls sipp never finished), the achieved rate (completed calls over "
        "sipp's run, first call to last answer), response times from sipp's `-trace_rtt` "
        "(every call but the last partial hundred; `401` = REGISTER to challenge, `200` = REGISTER "
        "with credentials to 200: the check and the binding's write) in whole milliseconds — sipp's "
        "clock ticks in milliseconds, so 0 means under 1 ms and n means n-1 to n+1 ms; sipp's "
        "retransmissions (500 ms without an answer); the CPU time (user + system) the server's processes "
        "used per completed registration, the context switches of the server's threads per registration "
        "(voluntary + involuntary, from /proc), PostgreSQL's CPU (all its processes) for the PostgreSQL runs; "
        "sipp's CPU (one core is 100%), and what every other process on the machine used meanwhile "
        "(a check that nothing else was running: the machine is shared).",
        "",
        "| contestant | asked /s | ok | failed | achieved /s | 401 p50 / p99 ms | 200 p50 / p99 / max ms | retrans | server CPU ms/reg | server ctx sw/reg | PG CPU ms/reg | sipp CPU | other CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    best = {}
    for key, name, warm, ladder, _ in results:
        for r in [warm] + ladder:
            mark = " (first registrations)" if r is warm else "" if sustained(r) else " (not sustained)"
            fails = r["failed"] + r["unfinished"]
            lines.append(
                f"| {name} | {r['rate']}{mark} | {r['ok']} | {fails} ({r['failed_pct']:.1f}%) | {r['achieved']:.0f} | "
                f"{fmt(r['challenge_p50'], '.0f')} / {fmt(r['challenge_p99'], '.0f')} | "
                f"{fmt(r['register_p50'], '.0f')} / {fmt(r['register_p99'], '.0f')} / {fmt(r['register_max'], '.0f')} | "
                f"{r['retrans']} | {fmt(r['server_cpu_ms_per_reg'], '.3f')} | {fmt(r['server_switches_per_reg'], '.1f')} | "
                f"{fmt(r['db_cpu_ms_per_reg'], '.3f')} | "
                f"{fmt(r['sipp_cpu_pct'], '.0f')}% | {r['other_cpu_pct']:.0f}% |")
            if sustained(r) and r is not warm:
                best[key] = (name, r)
    lines += ["", "Best sustained rate:", ""]
    for key, name, *_ in results:
        if key in best:
            r = best[key][1]
            lines.append(f"* {name}: {r['rate']}/s asked, {r['achieved']:.0f}/s achieved, "
                         f"200 p50 {fmt(r['register_p50'], '.0f')} ms, p99 {fmt(r['register_p99'], '.0f')} ms, "
                         f"server CPU {fmt(r['server_cpu_ms_per_reg'], '.3f')} ms per registration, "
                         f"{fmt(r['server_switches_per_reg'], '.1f')} context switches per registration")
        else:
            lines.append(f"* {name}: none of the ladder's rates")
    pairs = [("ws-sqlite", "kam-sqlite"), ("ws-sqlite", "kam-sqlite-1"), ("ws-pg", "kam-pg"),
             ("ws-sqlite", "kam-mem"), ("ws-pg", "kam-mem")]
    ratio_lines = []
    for a, b in pairs:
        if a in best and b in best:
            ra, rb = best[a][1], best[b][1]
            ratio_lines.append(f"* {best[a][0]} / {best[b][0]}: {ra['achieved']:.0f} / {rb['achieved']:.0f} = "
                               f"{ra['achieved'] / rb['achieved']:.2f}")
    if ratio_lines:
        lines += ["", "Ratio wasmswitch / Kamailio at the best sustained rates (achieved):", ""] + ratio_lines
    failures = []
    for key, name, warm, ladder, _ in results:
        for r in ladder:
            if r["fail_kinds"] or r["unexpected_codes"] or r["unfinished"]:
                extra = []
                if r["fail_kinds"]:
                    extra.append("sipp failures " + ", ".join(f"{k} {v}" for k, v in r["fail_kinds"].items()))
                if r["unexpected_codes"]:
                    extra.append("unexpected responses " + ", ".join(f"{k} x{v}" for k, v in r["unexpected_codes"].items()))
                if r.get("outcomes"):
                    extra.append("sip_registers_total " + ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items())))
                failures.append(f"* {name}, {r['rate']}/s: " + "; ".join(extra))
    if failures:
        lines += ["", "What failed:", ""] + failures
    busy = [f"{name} at {r['rate']}/s ({r['other_cpu_pct']:.0f}%)"
            for _, name, warm, ladder, _ in results for r in [warm] + ladder if r["other_cpu_pct"] > 15]
    if busy:
        lines += ["", "**Other processes used more than 15% of a core during:** " + "; ".join(busy)
                  + ". Those rows are suspect; run again on a quiet machine."]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
