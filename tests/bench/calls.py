#!/usr/bin/env python3
"""Call load: how many calls per second wasmswitch carries from one SIP peer to another, with
none failed and nothing retransmitted, and how much memory it holds per established call;
Kamailio doing the proxy's share of the same job, and sipp alone, in the same run.

The call (tests/bench/sipp/call-uac.xml -> call-uas.xml, UDP on 127.0.0.1): the caller sends
an INVITE with an SDP offer to the DID +15550100000; the callee answers 180, then 200 with an
SDP answer; the caller ACKs, holds the call for --hold-ms (500 ms by default: at R calls/s
about R/2 calls are up at once), sends BYE, and gets 200. Set-up time = INVITE to 200, every
call (sipp's -trace_rtt, rtd 1), in whole milliseconds: sipp's clock ticks in milliseconds.

Contestants, each on the same sipp ladder:

* direct: the caller sipp straight to the callee sipp (no server): what sipp itself allows on
  this machine, the ceiling of the others.
* Kamailio (Debian's package) as a transaction-stateful proxy, tuned as its users tune it for
  load (tests/bench/kamailio/proxy.cfg; `-m 1024 -x tlsf -n CORES`): record-routes the INVITE,
  t_relay()s it to the callee, loose-routes the ACK and the BYE.
* wasmswitch (release build, `wasmswitch serve` with a config of its own): a tenant owning the
  DID, an inbound trunk "carrier" (the caller's address), an outbound trunk "uas" (the
  callee), the example router plugin active with the table "+1 * uas" in its kv: every call is
  decided by the plugin and bridged by the B2BUA to the callee.

For each: sipp at each rate of the ladder for --seconds; the ladder stops after the first rate
not met. Met = every call asked for completed, none failed (the caller's and the callee's
sipp), no retransmission by either sipp nor received by either (on loopback a retransmission
means a datagram was dropped or a peer was 500 ms late), and at least 95% of the asked rate
achieved. Per rate: calls asked, completed and failed, the achieved rate, set-up p50 / p99 /
max, retransmissions, the kernel's UDP buffer drops, the server's CPU and context switches per
call, sipp's CPU (both), and the CPU every other process used meanwhile.

--memory instead: calls placed at --memory-rate (500/s) and held (-d 120000) until
--memory-calls (10,000) are established (the caller sent every ACK and the callee received
every one; sipp's current calls say the same), then the server's memory: VmRSS and Pss summed
over all its processes, idle (before the first call) and loaded; per call = (loaded - idle) /
established calls. Contestants: Kamailio with tm alone (it forgets a call once the INVITE's
transaction ends), Kamailio tracking every dialog (the dialog module, in memory: the state a
B2BUA keeps), and wasmswitch.

    python3 tests/bench/calls.py                         # builds the release binary first
    python3 tests/bench/calls.py --binary PATH --rates 250,1000 --seconds 5 --only kam,direct
    python3 tests/bench/calls.py --memory --binary PATH

Until wasmswitch carries calls (it answers INVITE 501) its rows show the calls as failed and
why; the other contestants run as usual. Needs sipp (Debian's sip-tester) and Kamailio
(installed with apt-get when missing; the script says so). Prints a Markdown section for
BENCHMARKS.md and writes it to --out.
"""

import argparse
import csv
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib

from common import (ROOT, SIPP, busy_seconds, build, commit, ensure_kamailio, epoch, fmt, free_port,
                    kamailio_version, log, map_count, max_map_count, memory_kib, percentile, request,
                    request_status, serve, sip_ready, sipp_version, stop, tree_pids, udp_bound, udp_errors,
                    udp_socket_drops, usage)

HERE = os.path.dirname(os.path.abspath(__file__))
UAC_SCENARIO = os.path.join(HERE, "sipp", "call-uac.xml")
UAS_SCENARIO = os.path.join(HERE, "sipp", "call-uas.xml")
KAMAILIO_CFG = os.path.join(HERE, "kamailio", "proxy.cfg")
TENANT = "bench"
DID = "+15550100000"
# The callee's sipp keeps a call this long after the BYE's 200 (the scenario's timewait), so a
# rung ends this long after its last call.
UAS_TIMEWAIT_S = 4.0
# sipp's send and receive buffer (-buff_size; its default is 64 KiB). 1 MiB so that a burst
# to or from one sipp does not overflow it: the figures are then the server's, not sipp's
# socket's. The servers keep their own defaults.
SIPP_BUFFER = 1 << 20
# The share of the asked rate a rung must achieve to be met.
ACHIEVED_SHARE = 0.95


# ---------------------------------------------------------------------------------------------
# Contestants. Each has `port` (where the caller sends), `uas_port` (where the callee listens),
# start(), stop(), cpu() -> (seconds, switches), pids() (for memory) and notes (said in the
# Markdown).


class Direct:
    key = "direct"
    name = "direct (sipp to sipp)"

    def __init__(self, work):
        self.work = os.path.join(work, self.key)
        os.makedirs(self.work)
        self.uas_port = free_port()
        self.port = self.uas_port
        self.notes = []

    def start(self):
        pass

    def alive(self):
        return True

    def cpu(self):
        return 0.0, 0

    def pids(self):
        return set()

    def counters(self):
        return None

    def figures(self):
        return {}

    def stop(self):
        pass


class Kamailio:
    def __init__(self, work, children, dialog=False, ctl=False):
        self.key = "kam-dialog" if dialog else "kam"
        self.name = "Kamailio, stateful proxy" + (" + dialog module" if dialog else "")
        self.work = os.path.join(work, self.key)
        os.makedirs(self.work)
        self.children = children
        self.dialog = dialog
        self.port = free_port()
        self.uas_port = free_port()
        self.proc = None
        self.notes = []
        # kamcmd's socket, for the memory run: Kamailio's own count of shared memory in use,
        # transactions and dialogs.
        self.ctl = f"unixs:{os.path.join(self.work, 'ctl.sock')}" if ctl else None

    def command(self):
        cmd = ["kamailio", "-f", KAMAILIO_CFG, "-DD", "-E", "-m", "1024", "-x", "tlsf",
               "-n", str(self.children), "-l", f"udp:127.0.0.1:{self.port}", "-Y", self.work,
               "-A", f'UAS="sip:127.0.0.1:{self.uas_port}"']
        if self.dialog:
            cmd += ["-A", "WITH_DIALOG"]
        if self.ctl:
            cmd += ["-A", f'CTL="{self.ctl}"']
        return cmd

    def start(self):
        self.log = open(os.path.join(self.work, "kamailio.log"), "w")
        self.proc = subprocess.Popen(self.command(), cwd=self.work, stdout=self.log, stderr=self.log)
        if not sip_ready(self.port):
            self.stop()
            sys.exit(f"{self.name} did not start; see {self.log.name}")

    def alive(self):
        return self.proc.poll() is None

    def cpu(self):
        return usage(root_pid=self.proc.pid)

    def pids(self):
        return tree_pids(self.proc.pid)

    def counters(self):
        return None

    def figures(self):
        """Kamailio's own count: shared memory in use (KiB allocated, by its allocator's books:
        RSS counts instead every page ever touched, and TLSF keeps them), transactions in
        progress, and dialogs (with the dialog module)."""
        if not self.ctl:
            return {}
        out = {}
        for cmd, keys in (("core.shmmem", {"real_used": "shared memory in use KiB"}),
                          ("tm.stats", {"current": "transactions"}),
                          ("dlg.stats_active", {"all": "dialogs"})):
            if cmd == "dlg.stats_active" and not self.dialog:
                continue
            r = subprocess.run(["kamcmd", "-s", self.ctl, cmd], capture_output=True, text=True)
            for m in re.finditer(r"^\s*(\w+): (\d+)$", r.stdout, re.M):
                if m.group(1) in keys:
                    v = int(m.group(2))
                    out[keys[m.group(1)]] = v // 1024 if keys[m.group(1)].endswith("KiB") else v
        return out

    def stop(self):
        stop(self.proc)


class Wasmswitch:
    key = "ws"
    name = "wasmswitch"

    def __init__(self, binary, router, work, uac_port, extra_env, max_calls, instances):
        self.binary = binary
        self.router = router
        self.work = os.path.join(work, self.key)
        os.makedirs(self.work)
        self.uac_port = uac_port
        self.extra_env = extra_env
        self.max_calls = max_calls
        self.instances = instances
        self.port = free_port()
        self.uas_port = free_port()
        self.proc = None
        self.api = None
        self.notes = []

    def known_settings(self):
        """The settings this binary knows, from its own example configuration (`wasmswitch
        config`): a binary from before the calls layer has no [calls] section, and refuses a
        file that has one."""
        out = subprocess.run([self.binary, "config"], capture_output=True, text=True, check=True).stdout
        return tomllib.loads(out)

    def config(self):
        """The host's settings for the run, written to wasmswitch.toml in its directory."""
        path = os.path.join(self.work, "wasmswitch.toml")
        calls = self.known_settings().get("calls", {})
        # The host's caps on calls, when it has them: out of the way (what is measured is how
        # many calls it carries, not where it refuses them).
        caps = {"max_calls": self.max_calls, "tenant_max_calls": self.max_calls,
                "tenant_calls_per_second": 100000}
        self.calls_settings = {k: v for k, v in caps.items() if k in calls}
        if "drain_secs" in calls:
            # Stopping the host at the end of a run: no grace for the calls left up.
            self.calls_settings["drain_secs"] = 0
        with open(path, "w") as f:
            f.write(f"""# Written by tests/bench/calls.py for one run.
[api]
listen = "127.0.0.1:0"
# Only so that the set-up through the API does not wait on the per-key budget; the API takes
# no part in the measurement.
rate_limit_per_second = 1000000
rate_limit_burst = 1000000

[database]
url = "sqlite://{os.path.join(self.work, 'wasmswitch.db')}"

[sip]
listen = "127.0.0.1:{self.port}"
# The per-source limit (100/s by default) would hold the one caller sipp to 100 requests/s.
rate_limit_per_second = 0

[plugins]
# A router instance per call up; the per-tenant default (2,000) would refuse the calls beyond
# it, all of one tenant. Not more than needed: the pool keeps 2 memory maps per slot, and a
# process may have only vm.max_map_count of them (each call up adds ~4).
max_instances = {self.instances}
max_instances_per_tenant = {self.instances}
cache_dir = "{os.path.join(self.work, 'cache')}"
""")
            if self.calls_settings:
                f.write("\n[calls]\n" + "".join(f"{k} = {v}\n" for k, v in self.calls_settings.items()))
        if calls and not set(caps) <= set(self.calls_settings):
            self.notes.append("[calls] of this binary lacks " + ", ".join(sorted(set(caps) - set(self.calls_settings)))
                              + ": left at its defaults")
        return path

    def start(self):
        config = self.config()
        self.proc, self.api, self.operator, self.stderr = serve(
            self.binary, self.work, self.extra_env, args=("--config", config))
        self.set_up()
        if not sip_ready(self.port):
            self.stop()
            sys.exit(f"{self.name}: SIP does not answer on {self.port}; see {self.stderr.name}")

    def call(self, method, path, body=None, data=None, content_type=None):
        return request_status(method, self.api + path, self.operator, body, data, content_type)

    def set_up(self):
        """The tenant, its DID, the two trunks, the router plugin and its table, through the
        API. A step this binary does not know yet is said in the notes, not fatal: the calls
        then fail, and the rows say how."""
        t = f"/v1/tenants/{TENANT}"
        request("POST", self.api + "/v1/tenants", self.operator, {"id": TENANT, "name": "Call bench"})
        # The tenant's call limits (only the operator may set them): high enough not to be
        # what is measured. Absent on a binary without the calls layer.
        status, body = self.call("PUT", t + "/limits",
                                 {"max_calls": self.max_calls, "max_calls_per_second": 100000})
        if status >= 300:
            self.notes.append(f"PUT {t}/limits answered {status} ({body[:200].decode(errors='replace')}): "
                              "the host's default call limits applied")
        request("POST", self.api + t + "/numbers", self.operator, {"number": DID})
        carrier = {"name": "carrier", "host": "127.0.0.1", "port": self.uac_port, "transport": "udp",
                   "inbound": ["127.0.0.1"]}
        status, body = self.call("POST", t + "/trunks", carrier)
        if status == 422:
            # A binary from before trunks had `inbound` refuses the field (422, unknown field):
            # create the trunk without it, so that the run still goes on to the calls.
            self.notes.append(f"the trunk \"carrier\" with inbound [\"127.0.0.1\"] was refused "
                              f"({body[:200].decode(errors='replace')}); created without it")
            del carrier["inbound"]
            status, body = self.call("POST", t + "/trunks", carrier)
        if status >= 300:
            raise RuntimeError(f"creating the trunk \"carrier\" answered {status}: {body[:300]!r}")
        request("POST", self.api + t + "/trunks", self.operator,
                {"name": "uas", "host": "127.0.0.1", "port": self.uas_port, "transport": "udp"})
        with open(self.router, "rb") as f:
            wasm = f.read()
        record = json.loads(request("POST", self.api + t + "/plugins/router?world=router&activate=true",
                                    self.operator, data=wasm, content_type="application/wasm"))
        if not record.get("active"):
            request("POST", f"{self.api}{t}/plugins/router/versions/{record['version']}/activate",
                    self.operator, body={})
        request("PUT", self.api + t + "/kv/routes", self.operator, data=b"+1 * uas\n",
                content_type="application/octet-stream")
        # What the plugin decides for the benchmark's call, before any call: a dial to DID
        # through "uas".
        status, body = self.call("POST", t + "/simulate",
                                 {"events": [{"incoming": {"from": "+15550199999", "to": DID}}]})
        decided = None
        if status < 300:
            try:
                dial = json.loads(body)["steps"][0]["output"][0]["dial"]
                target = dial["groups"][0]["targets"][0]
                decided = (target["target"], target["trunk"])
            except (KeyError, IndexError, TypeError, ValueError):
                pass
        if decided != (DID, "uas"):
            self.notes.append(f"simulating the call did not give a dial to {DID} through \"uas\" "
                              f"({status}: {body[:300].decode(errors='replace')})")
        log(f"  {self.name}: tenant {TENANT}, DID {DID}, trunks carrier (127.0.0.1:{self.uac_port}) "
            f"and uas (127.0.0.1:{self.uas_port}), router plugin active; simulated decision {decided}")

    def alive(self):
        return self.proc.poll() is None

    def cpu(self):
        return usage(root_pid=self.proc.pid)

    def pids(self):
        return tree_pids(self.proc.pid)

    def counters(self):
        """Every counter of /metrics about calls, SIP or plugins (to say why calls failed)."""
        status, body = request_status("GET", self.api + "/metrics")
        if status >= 300:
            return None
        text = body.decode(errors="replace")
        counters = set(re.findall(r"^# TYPE (\S+) counter", text, re.M))
        out = {}
        for m in re.finditer(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)", text, re.M):
            name = m.group(1)
            if name in counters and re.search(r"call|invite|sip_|plugin|cdr|dialog", name):
                try:
                    out[name + (m.group(2) or "")] = float(m.group(3))
                except ValueError:
                    pass
        return out

    def figures(self):
        """The host's own gauges about calls, dialogs and plugin instances from /metrics."""
        status, body = request_status("GET", self.api + "/metrics")
        if status >= 300:
            return {}
        text = body.decode(errors="replace")
        gauges = set(re.findall(r"^# TYPE (\S+) gauge", text, re.M))
        out = {}
        for m in re.finditer(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)", text, re.M):
            if m.group(1) in gauges and re.search(r"call|dialog|instance", m.group(1)):
                try:
                    out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
                except ValueError:
                    pass
        return out

    def stop(self):
        stop(self.proc, timeout=30)


# ---------------------------------------------------------------------------------------------
# sipp.


def raise_nofile():
    """In sipp's process: as many open files as the hard limit allows (sipp wants more than
    -l of them)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def uas_command(port, calls, hold_ms):
    return [
        SIPP, "-sf", UAS_SCENARIO, "-i", "127.0.0.1", "-p", str(port), "-t", "u1",
        "-m", str(calls), "-l", str(max(100000, 2 * calls)),
        # A call the caller gave up on still ends at the callee's sipp.
        "-recv_timeout", str(hold_ms + 10000),
        "-buff_size", str(SIPP_BUFFER), "-max_recv_loops", "10000", "-max_sched_loops", "10000",
        "-nostdin", "-trace_stat", "-stf", "uas.csv", "-fd", "1", "-trace_counts", "-trace_error_codes",
    ]


def uac_command(dest_port, uac_port, rate, calls, limit, hold_ms):
    return [
        SIPP, "-sf", UAC_SCENARIO, "-s", DID, "-i", "127.0.0.1", "-p", str(uac_port), "-t", "u1",
        "-r", str(rate), "-rp", "1000", "-m", str(calls), "-l", str(limit), "-d", str(hold_ms),
        "-recv_timeout", "5000",
        "-buff_size", str(SIPP_BUFFER), "-max_recv_loops", "10000", "-max_sched_loops", "10000",
        "-nostdin", "-trace_stat", "-stf", "uac.csv", "-fd", "1",
        "-trace_rtt", "-rtt_freq", "1", "-trace_counts", "-trace_error_codes",
        f"127.0.0.1:{dest_port}",
    ]


def start_uas(target, calls, hold_ms, rundir):
    out = open(os.path.join(rundir, "uas.out"), "w")
    proc = subprocess.Popen(uas_command(target.uas_port, calls, hold_ms), cwd=rundir, stdout=out,
                            stderr=subprocess.STDOUT, preexec_fn=raise_nofile)
    deadline = time.monotonic() + 10
    while not udp_bound(target.uas_port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the callee's sipp did not start; see {rundir}/uas.out")
        time.sleep(0.05)
    return proc


def end(proc, wait_s):
    """Lets a sipp end by itself for `wait_s`, then SIGTERM (it writes its last statistics),
    then SIGKILL."""
    try:
        proc.wait(wait_s)
        return
    except subprocess.TimeoutExpired:
        pass
    proc.send_signal(signal.SIGCONT)  # one frozen by the memory run
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stat_rows(path):
    try:
        with open(path) as f:
            return list(csv.DictReader(f, delimiter=";"))
    except FileNotFoundError:
        return []


def last_counts(rundir, scenario):
    """The last row of sipp's -trace_counts file for `scenario` ("call-uac" or "call-uas"):
    message counts by column, e.g. 5_ACK_Sent, 0_INVITE_Retrans."""
    for name in os.listdir(rundir):
        if name.startswith(scenario + "_") and name.endswith("_counts.csv"):
            with open(os.path.join(rundir, name)) as f:
                lines = [l.rstrip("\n") for l in f if l.strip()]
            if len(lines) < 2:
                return {}
            head = lines[0].split(";")
            # The first column is a date with tabs; the message counts follow.
            vals = lines[-1].split(";")
            out = {}
            for k, v in zip(head, vals):
                if k and re.match(r"^\d+_", k):
                    try:
                        out[k] = int(v)
                    except ValueError:
                        pass
            return out
    return {}


def counts_of(counts, suffix):
    return sum(v for k, v in counts.items() if k.endswith(suffix))


def error_codes(rundir):
    """-trace_error_codes: one line per second, "<time>;<elapsed>;<code>,<code>,..."."""
    codes = {}
    for name in os.listdir(rundir):
        if "_error_codes" in name:
            for line in open(os.path.join(rundir, name)):
                for code in line.strip().rsplit(";", 1)[-1].split(","):
                    if code.strip():
                        codes[code.strip()] = codes.get(code.strip(), 0) + 1
    return codes


def fail_kinds(row, who):
    return {f"{who} {k[len('Failed'):-3]}": int(v) for k, v in row.items()
            if k.startswith("Failed") and k.endswith("(C)") and k != "FailedCall(C)" and v and int(v)}


def setup_times(rundir):
    times = []
    for name in os.listdir(rundir):
        if name.endswith("_rtt.csv"):
            for line in open(os.path.join(rundir, name)):
                parts = line.strip().split(";")
                if len(parts) >= 3 and parts[2] == "1":
                    try:
                        times.append(float(parts[1]))
                    except ValueError:
                        pass
    return sorted(times)


def delta(after, before):
    if after is None or before is None:
        return {}
    return {k: after[k] - before.get(k, 0.0) for k in after if after[k] - before.get(k, 0.0)}


def run_rung(target, rate, seconds, hold_ms, uac_port, rundir):
    """One rung: `rate` calls/s for `seconds`, each held `hold_ms`. Returns the figures."""
    os.makedirs(rundir)
    calls = int(rate * seconds)
    # Room for twice the calls that should be up at once (rate x (hold + a second)): a server
    # that falls behind makes sipp hold back new calls at this cap, which shows as a rate not
    # achieved, not as an unbounded pile of calls.
    limit = max(500, int(2 * rate * (hold_ms / 1000.0 + 1.0)))
    cpu0 = target.cpu()
    counters0 = target.counters()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0 = busy_seconds()
    drops0 = udp_errors()
    t0 = time.monotonic()
    uas = start_uas(target, calls, hold_ms, rundir)
    # Which socket the kernel dropped datagrams at: the caller's, the server's, the callee's
    # (read every half second while they run; sipp's sockets go with it).
    ports = {"caller": uac_port, "server": target.port, "callee": target.uas_port}
    if target.key == "direct":
        del ports["server"]
    base = udp_socket_drops(set(ports.values()))
    seen = {}

    def watch():
        now = udp_socket_drops(set(ports.values()))
        for who, port in ports.items():
            if port in now:
                seen[who] = max(seen.get(who, 0), now[port] - base.get(port, 0))

    with open(os.path.join(rundir, "uac.out"), "w") as out:
        uac = subprocess.Popen(uac_command(target.port, uac_port, rate, calls, limit, hold_ms), cwd=rundir,
                               stdout=out, stderr=subprocess.STDOUT, preexec_fn=raise_nofile)
        deadline = time.monotonic() + seconds * 3 + hold_ms / 1000.0 + 60
        while uac.poll() is None and time.monotonic() < deadline:
            watch()
            time.sleep(0.5)
        end(uac, 0)
    watch()
    end(uas, UAS_TIMEWAIT_S + 6)
    wall = time.monotonic() - t0
    busy1 = busy_seconds()
    drops1 = udp_errors()
    cpu1 = target.cpu()
    counters1 = target.counters()
    # Both sipps' CPU time: the only children of ours that ended during the rung.
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    sipp_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)

    uac_rows = stat_rows(os.path.join(rundir, "uac.csv"))
    uas_rows = stat_rows(os.path.join(rundir, "uas.csv"))
    if not uac_rows:
        raise RuntimeError(f"sipp wrote no statistics; see {rundir}/uac.out")
    last = uac_rows[-1]
    uas_last = uas_rows[-1] if uas_rows else {}
    ok = int(last["SuccessfulCall(C)"])
    failed_uac = int(last["FailedCall(C)"])
    failed_uas = int(uas_last.get("FailedCall(C)", 0) or 0)
    uac_counts = last_counts(rundir, "call-uac")
    uas_counts = last_counts(rundir, "call-uas")
    # Retransmissions each sipp sent and each received (a server's retransmission of the 200
    # to the caller, or of the INVITE or BYE to the callee).
    retrans_uac = counts_of(uac_counts, "_Retrans")
    retrans_uas = counts_of(uas_counts, "_Retrans")
    # sipp's run, first call to last answer (StartTime and CurrentTime carry the epoch in µs),
    # less the last call's hold: the span over which calls were placed.
    elapsed = epoch(last["CurrentTime"]) - epoch(last["StartTime"])
    placing = max(elapsed - hold_ms / 1000.0, 1e-3)
    setup = setup_times(rundir)
    server_cpu = cpu1[0] - cpu0[0]
    server_switches = cpu1[1] - cpu0[1]
    kinds = fail_kinds(last, "caller")
    kinds.update(fail_kinds(uas_last, "callee"))
    detail = {f"caller {k}": v for k, v in uac_counts.items()
              if v and k.endswith(("_Retrans", "_Timeout", "_Unexp"))}
    detail.update({f"callee {k}": v for k, v in uas_counts.items()
                   if v and k.endswith(("_Retrans", "_Timeout", "_Unexp"))})
    return {
        "rate": rate,
        "calls": calls,
        "ok": ok,
        "failed": failed_uac + failed_uas,
        "failed_uas": failed_uas,
        "unfinished": calls - ok - failed_uac,
        "callee_calls": int(uas_last.get("IncomingCall(C)", 0) or 0),
        "elapsed": elapsed,
        "wall": wall,
        "achieved": ok / placing,
        "retrans_uac": retrans_uac,
        "retrans_uas": retrans_uas,
        "udp_drops": drops1 - drops0,
        "udp_drops_at": {k: v for k, v in seen.items() if v},
        "setup_p50": percentile(setup, 50), "setup_p99": percentile(setup, 99),
        "setup_max": setup[-1] if setup else None,
        "samples": len(setup),
        "server_cpu_ms_per_call": 1000.0 * server_cpu / ok if ok and target.key != "direct" else None,
        "server_switches_per_call": server_switches / ok if ok and target.key != "direct" else None,
        "server_cpu_pct": 100.0 * server_cpu / elapsed if elapsed else None,
        "sipp_cpu_pct": 100.0 * sipp_cpu / elapsed if elapsed else None,
        # Everything else the machine ran meanwhile (other users of the machine, this script,
        # the kernel's own threads), in % of one core: a check that the rung had the machine.
        "other_cpu_pct": 100.0 * max(0.0, (busy1 - busy0) - server_cpu - sipp_cpu) / wall,
        "fail_kinds": kinds,
        "detail": detail,
        "unexpected_codes": error_codes(rundir),
        "server_counters": delta(counters1, counters0),
        "server_alive": target.alive(),
        "rundir": rundir,
    }


def met(r):
    return (r["failed"] == 0 and r["unfinished"] == 0 and r["ok"] == r["calls"]
            and r["retrans_uac"] == 0 and r["retrans_uas"] == 0
            and r["achieved"] >= ACHIEVED_SHARE * r["rate"])


# ---------------------------------------------------------------------------------------------
# Memory: calls held at once.


def hold_calls(target, calls, rate, hold_ms, uac_port, rundir):
    """Places `calls` calls at `rate` held `hold_ms`, measures the server's memory once all are
    established, then ends both sipps. Returns the figures."""
    os.makedirs(rundir)
    pids = target.pids()
    time.sleep(2)
    idle = memory_kib(target.pids()) if pids else (0, 0)
    maps_idle = map_count(target.pids()) if pids else 0
    figures_idle = target.figures()
    uas = start_uas(target, calls, hold_ms, rundir)
    out = open(os.path.join(rundir, "uac.out"), "w")
    uac = subprocess.Popen(uac_command(target.port, uac_port, rate, calls, calls + 1000, hold_ms), cwd=rundir,
                           stdout=out, stderr=subprocess.STDOUT, preexec_fn=raise_nofile)
    t0 = time.monotonic()
    deadline = t0 + calls / rate * 2 + 60
    established = stalled = None
    progress, progress_at = -1, t0
    while True:
        time.sleep(1)
        uac_counts = last_counts(rundir, "call-uac")
        uas_counts = last_counts(rundir, "call-uas")
        acks_sent = counts_of(uac_counts, "_ACK_Sent")
        acks_recv = counts_of(uas_counts, "_ACK_Recv")
        rows = stat_rows(os.path.join(rundir, "uac.csv"))
        failed = int(rows[-1]["FailedCall(C)"]) if rows else 0
        if acks_sent >= calls and acks_recv >= calls:
            established = time.monotonic() - t0
            break
        if failed:
            stalled = f"{failed} calls failed"
            break
        if uac.poll() is not None:
            stalled = "the caller's sipp ended"
            break
        if acks_sent != progress:
            progress, progress_at = acks_sent, time.monotonic()
        elif time.monotonic() - progress_at > 30:
            stalled = f"no call established in 30 s ({acks_sent} up)"
            break
        if time.monotonic() > deadline:
            stalled = f"only {acks_sent} calls up after {deadline - t0:.0f} s"
            break
    # A run that stalled: the caller frozen (SIGSTOP: no new calls, and no BYE for those up),
    # so that the calls up can be measured as they are.
    if uac.poll() is None:
        uac.send_signal(signal.SIGSTOP)
    # Let the last transactions end (Kamailio keeps an INVITE's transaction 5 s after its
    # answer), so that what is measured is calls held, not set-ups in flight.
    time.sleep(6)
    loaded = memory_kib(target.pids()) if pids else (0, 0)
    maps_loaded = map_count(target.pids()) if pids else 0
    processes = len(target.pids()) if pids else 0
    figures_loaded = target.figures()
    uac_rows = stat_rows(os.path.join(rundir, "uac.csv"))
    uas_rows = stat_rows(os.path.join(rundir, "uas.csv"))
    uac_counts = last_counts(rundir, "call-uac")
    uas_counts = last_counts(rundir, "call-uas")
    result = {
        "calls": calls,
        "rate": rate,
        "established_s": established,
        "stalled": stalled,
        "acks_sent": counts_of(uac_counts, "_ACK_Sent"),
        "acks_recv": counts_of(uas_counts, "_ACK_Recv"),
        "uac_current": int(uac_rows[-1]["CurrentCall"]) if uac_rows else 0,
        "uas_current": int(uas_rows[-1]["CurrentCall"]) if uas_rows else 0,
        "failed": (int(uac_rows[-1]["FailedCall(C)"]) if uac_rows else 0)
        + (int(uas_rows[-1]["FailedCall(C)"]) if uas_rows else 0),
        "retrans": counts_of(uac_counts, "_Retrans") + counts_of(uas_counts, "_Retrans"),
        "idle_rss": idle[0], "idle_pss": idle[1],
        "loaded_rss": loaded[0], "loaded_pss": loaded[1],
        "processes": processes,
        "maps": (maps_idle, maps_loaded),
        "figures": {k: (figures_idle.get(k), v) for k, v in figures_loaded.items()},
        "unexpected_codes": error_codes(rundir),
        "fail_kinds": {**fail_kinds(uac_rows[-1], "caller")} if uac_rows else {},
    }
    up = min(result["acks_sent"], result["acks_recv"])
    result["up"] = up
    # Per call up, also when not all are (the row says how many were).
    result["rss_per_call"] = (loaded[0] - idle[0]) / up if up and pids else None
    result["pss_per_call"] = (loaded[1] - idle[1]) / up if up and pids else None
    for p in (uac, uas):
        end(p, 0)
    out.close()
    return result


# ---------------------------------------------------------------------------------------------


def router_plugin():
    """The example router plugin's component, built if need be."""
    log("building the router plugin: cargo run -q --locked -p wasmswitch-plugin-artifacts --example path -- router")
    out = subprocess.run(["nice", "-n", "19", "cargo", "run", "-q", "--locked", "-p", "wasmswitch-plugin-artifacts",
                          "--example", "path", "--", "router"], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    return out.strip().splitlines()[-1]


def caps(args):
    """wasmswitch's caps for the run: (calls, plugin instances). Calls: twice the memory run's,
    out of the way. Instances: a slot per call up and 5% to spare, at least the default 10,000
    (each slot costs address space and 2 memory maps even unused)."""
    return max(20000, 2 * args.memory_calls), max(10000, args.memory_calls * 21 // 20)


def contestants(args, work, uac_port):
    chosen = []
    keys = args.only.split(",") if args.only else (
        ["kam", "kam-dialog", "ws"] if args.memory else ["direct", "kam", "ws"])
    for key in keys:
        if key == "direct":
            chosen.append(lambda: Direct(work))
        elif key == "kam":
            chosen.append(lambda: Kamailio(work, args.kamailio_children, ctl=args.memory))
        elif key == "kam-dialog":
            chosen.append(lambda: Kamailio(work, args.kamailio_children, dialog=True, ctl=args.memory))
        elif key == "ws":
            chosen.append(lambda: Wasmswitch(args.binary, args.router, work, uac_port, args.ws_env,
                                             *caps(args)))
        else:
            sys.exit(f"--only: no contestant {key!r} (direct, kam, kam-dialog, ws)")
    return chosen


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", help="the wasmswitch release binary (default: build it)")
    ap.add_argument("--router", help="the router plugin's component (default: build it)")
    ap.add_argument("--rates", default="250,500,1000,1500,2000,2500,3000,4000")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--hold-ms", type=int, default=500, help="how long each call is held (sipp -d)")
    ap.add_argument("--only", default="", help="comma-separated contestants: direct, kam, kam-dialog, ws "
                    "(default: direct,kam,ws; with --memory kam,kam-dialog,ws)")
    ap.add_argument("--kamailio-children", type=int, default=os.cpu_count(),
                    help="Kamailio's UDP children (-n; default: one per core)")
    ap.add_argument("--ws-env", action="append", default=[], metavar="KEY=VALUE",
                    help="an environment variable for wasmswitch serve (repeatable), e.g. a WASMSWITCH_* setting")
    ap.add_argument("--memory", action="store_true", help="hold --memory-calls calls and measure memory instead")
    ap.add_argument("--memory-calls", type=int, default=10000)
    ap.add_argument("--memory-rate", type=int, default=500)
    ap.add_argument("--memory-hold-ms", type=int, default=120000)
    ap.add_argument("--out", default=None, help="where the Markdown goes (default: a file in the temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    args.ws_env = dict(kv.split("=", 1) for kv in args.ws_env)
    if args.out is None:
        args.out = os.path.join(tempfile.gettempdir(),
                                "wasmswitch-bench-calls-memory.md" if args.memory else "wasmswitch-bench-calls.md")
    rates = [int(r) for r in args.rates.split(",") if r]
    if not os.path.exists(SIPP):
        sys.exit("sipp not found at /usr/bin/sipp (Debian: apt-get install sip-tester)")
    ensure_kamailio(["kamailio"])
    wanted = args.only.split(",") if args.only else ["ws"]
    args.built = "ws" in wanted and not args.binary
    if "ws" in wanted:
        args.binary = os.path.abspath(args.binary) if args.binary else build()
        args.router = os.path.abspath(args.router) if args.router else router_plugin()
    vers = {"kamailio": kamailio_version(), "sipp": sipp_version(), "commit": commit()}
    work = tempfile.mkdtemp(prefix="wasmswitch-bench-calls-")
    log(f"work directory: {work}")
    uac_port = free_port()

    started = time.time()
    results = []
    for make in contestants(args, work, uac_port):
        target = make()
        log(f"{target.name}: starting")
        try:
            target.start()
            if args.memory:
                r = hold_calls(target, args.memory_calls, args.memory_rate, args.memory_hold_ms, uac_port,
                               os.path.join(target.work, "memory"))
                log(f"  {r['up']}/{r['calls']} calls up"
                    + (f" in {r['established_s']:.0f} s" if r["established_s"] is not None else f" ({r['stalled']})")
                    + f"; RSS {r['idle_rss'] / 1024:.1f} -> {r['loaded_rss'] / 1024:.1f} MiB, "
                    f"maps {r['maps'][0]} -> {r['maps'][1]}, "
                    f"Pss {r['idle_pss'] / 1024:.1f} -> {r['loaded_pss'] / 1024:.1f} MiB"
                    + (f", {r['rss_per_call']:.1f} KiB RSS / {r['pss_per_call']:.1f} KiB Pss per call"
                       if r["rss_per_call"] is not None else "")
                    + (f"; {r['figures']}" if r["figures"] else ""))
                results.append((target.key, target.name, r, list(target.notes)))
                continue
            ladder = []
            for rate in rates:
                time.sleep(1)
                r = run_rung(target, rate, args.seconds, args.hold_ms, uac_port,
                             os.path.join(target.work, f"rate-{rate}"))
                ladder.append(r)
                log(f"  {rate:>5}/s: ok {r['ok']}/{r['calls']}, failed {r['failed']}, unfinished {r['unfinished']}, "
                    f"achieved {r['achieved']:.0f}/s, set-up p50/p99/max {fmt(r['setup_p50'], '.0f')}/"
                    f"{fmt(r['setup_p99'], '.0f')}/{fmt(r['setup_max'], '.0f')} ms, retrans {r['retrans_uac']}/"
                    f"{r['retrans_uas']}, UDP drops {r['udp_drops']}{' ' + str(r['udp_drops_at']) if r['udp_drops_at'] else ''}, "
                    f"server CPU "
                    f"{fmt(r['server_cpu_ms_per_call'], '.3f')} ms/call, sipp CPU {fmt(r['sipp_cpu_pct'], '.0f')}%, "
                    f"other CPU {r['other_cpu_pct']:.0f}%"
                    + (f", failures {r['fail_kinds']}" if r["fail_kinds"] else "")
                    + (f", unexpected {r['unexpected_codes']}" if r["unexpected_codes"] else ""))
                if r["other_cpu_pct"] > 15:
                    log(f"  warning: other processes used {r['other_cpu_pct']:.0f}% of a core during this rate")
                if not r["server_alive"]:
                    log(f"  {target.name} is no longer running")
                    break
                if not met(r):
                    break
            results.append((target.key, target.name, ladder, list(target.notes)))
        finally:
            target.stop()
    took = time.time() - started

    md = (memory_markdown if args.memory else markdown)(results, vers, args, took)
    print(md)
    with open(args.out, "w") as f:
        f.write(md)
    log(f"Markdown written to {args.out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        log(f"kept {work}")


def command_line():
    return "python3 tests/bench/calls.py" + "".join(f" {a}" for a in sys.argv[1:])


def common_lines(vers, args, took):
    calls, instances = (f"{n:,}" for n in caps(args))
    return [
        "Versions: "
        + (f"wasmswitch {vers['commit']} (release build, built by the script); " if args.built
           else f"scripts at {vers['commit']}, wasmswitch `{args.binary}` (`--binary`, release build); "
           if args.binary else f"scripts at {vers['commit']}; ")
        + f"{vers['kamailio']} (Debian package); {vers['sipp']} (Debian sip-tester).",
        "",
        f"Machine: {os.cpu_count()} cores ({platform.machine()}); both sipps and the server share them. "
        f"Whole run: {took / 60:.1f} min.",
        "",
        "Settings: Kamailio `tests/bench/kamailio/proxy.cfg`, "
        f"`kamailio -DD -E -m 1024 -x tlsf -n {args.kamailio_children} -l udp:127.0.0.1:PORT "
        "-A UAS=\"sip:127.0.0.1:UAS_PORT\"` (1 GiB of shared memory, the TLSF allocator, one UDP child "
        "per core; `-A WITH_DIALOG` adds the dialog module); tm at its defaults. wasmswitch `serve "
        "--config` a file of its own: SQLite, `sip.rate_limit_per_second = 0` (the per-source limit "
        "would hold the one caller to 100/s), `plugins.max_instances` and `max_instances_per_tenant` "
        f"{instances}, where the binary has them `calls.max_calls` and `tenant_max_calls` raised to "
        f"{calls} and `tenant_calls_per_second` to 100,000 (the caps are not what is measured) and "
        "`drain_secs` to 0, log level "
        "at its default (info)"
        + (", and " + ", ".join(f"`{k}={v}`" for k, v in args.ws_env.items()) if args.ws_env else "")
        + "; set up through the API: tenant `bench` (its call limits `PUT .../limits` raised out of the "
        "way), DID +15550100000, trunks `carrier` (`inbound` 127.0.0.1) and `uas` (the callee), the "
        "example router plugin active with kv `routes` = `+1 * uas`. sipp: "
        "`tests/bench/sipp/call-uac.xml` and `call-uas.xml`, UDP (`-t u1`), "
        f"`-buff_size {SIPP_BUFFER}`, one process each.",
        "",
    ]


def markdown(results, vers, args, took):
    today = datetime.date.today().isoformat()
    lines = [
        f"## Calls (issue 11) — {today}, Kamailio and sipp alone in the same run",
        "",
        f"Command: `{command_line()}` (`make bench-calls`); each call INVITE (SDP) / 180 / 200 / ACK, "
        f"held {args.hold_ms} ms, BYE / 200; sipp ladder {args.rates} calls/s, {args.seconds:g} s each, "
        "stopping after the first rate not met (met = every call asked for completed, none failed at "
        "either sipp, no retransmission sent or received by either, at least "
        f"{ACHIEVED_SHARE:.0%} of the asked rate achieved).",
        "",
    ] + common_lines(vers, args, took) + [
        "Columns: calls asked for (rate x seconds), completed (`ok`), failed (both sipps' count, plus "
        "calls the caller never finished); the achieved rate (completed calls over the caller's run, "
        "first INVITE to last BYE's 200, less one hold); set-up time INVITE to 200 from sipp's "
        "`-trace_rtt` (every call) in whole milliseconds — sipp's clock ticks in milliseconds, so 0 "
        "means under 1 ms and n means n-1 to n+1 ms; retransmissions sent or received by the caller's / "
        "the callee's sipp; datagrams the kernel dropped for a full UDP buffer (all sockets); the CPU "
        "time (user + system) the server's processes used per completed call and its threads' context "
        "switches per call; both sipps' CPU (one core is 100%); what every other process on the "
        "machine used meanwhile (the machine is shared: a check that nothing else ran).",
        "",
        "| contestant | asked /s | ok | failed | achieved /s | set-up p50 / p99 / max ms | retrans caller / callee | UDP drops | server CPU ms/call | server ctx sw/call | sipp CPU | other CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    best = {}
    for key, name, ladder, _ in results:
        for r in ladder:
            mark = "" if met(r) else " (not met)"
            lines.append(
                f"| {name} | {r['rate']}{mark} | {r['ok']} of {r['calls']} | {r['failed'] + r['unfinished']} | "
                f"{r['achieved']:.0f} | {fmt(r['setup_p50'], '.0f')} / {fmt(r['setup_p99'], '.0f')} / "
                f"{fmt(r['setup_max'], '.0f')} | {r['retrans_uac']} / {r['retrans_uas']} | {r['udp_drops']} | "
                f"{fmt(r['server_cpu_ms_per_call'], '.3f')} | {fmt(r['server_switches_per_call'], '.1f')} | "
                f"{fmt(r['sipp_cpu_pct'], '.0f')}% | {r['other_cpu_pct']:.0f}% |")
            if met(r):
                best[key] = (name, r)
    lines += ["", "Highest rate met, and set-up time at half of it (the highest ladder rate at or below half):", ""]
    for key, name, ladder, _ in results:
        if key not in best:
            lines.append(f"* {name}: none of the ladder's rates")
            continue
        r = best[key][1]
        half = [x for x in ladder if met(x) and x["rate"] <= r["rate"] / 2]
        h = half[-1] if half else None
        lines.append(
            f"* {name}: {r['rate']}/s asked, {r['achieved']:.0f}/s achieved, set-up p50 {fmt(r['setup_p50'], '.0f')} ms, "
            f"p99 {fmt(r['setup_p99'], '.0f')} ms"
            + (f", server CPU {fmt(r['server_cpu_ms_per_call'], '.3f')} ms per call" if r["server_cpu_ms_per_call"] else "")
            + (f"; at {h['rate']}/s: p99 {fmt(h['setup_p99'], '.0f')} ms" if h else ""))
    ratios = []
    for a, b in (("ws", "kam"), ("ws", "direct"), ("kam", "direct")):
        if a in best and b in best:
            ra, rb = best[a][1], best[b][1]
            ratios.append(f"* {best[a][0]} / {best[b][0]}: {ra['achieved']:.0f} / {rb['achieved']:.0f} = "
                          f"{ra['achieved'] / rb['achieved']:.2f}")
    if ratios:
        lines += ["", "Ratios at the highest rates met (achieved):", ""] + ratios
    ws = [x for x in results if x[0] == "ws"]
    if ws:
        r = best.get("ws", (None, None))[1]
        half = [x for x in ws[0][2] if r and met(x) and x["rate"] <= r["rate"] / 2]
        rate_ok = bool(r) and r["rate"] >= 2000
        p99_ok = bool(half) and half[-1]["setup_p99"] is not None and half[-1]["setup_p99"] < 10
        lines += ["", f"Targets (issue 11): at least 2,000 calls/s with none failed: "
                  f"{'met' if rate_ok else 'not met'}; p99 set-up under 10 ms at half the highest rate: "
                  f"{'met' if p99_ok else 'not met'}."]
    failures = []
    for key, name, ladder, notes in results:
        for note in notes:
            failures.append(f"* {name}: {note}")
        for r in ladder:
            extra = []
            if r["fail_kinds"]:
                extra.append("sipp failures " + ", ".join(f"{k} {v}" for k, v in r["fail_kinds"].items()))
            if r["unexpected_codes"]:
                extra.append("unexpected responses " + ", ".join(f"{k} x{v}" for k, v in r["unexpected_codes"].items()))
            if r["unfinished"]:
                extra.append(f"{r['unfinished']} calls unfinished")
            if r["udp_drops_at"]:
                extra.append("UDP drops at the " + ", ".join(f"{k}'s socket {v}" for k, v in r["udp_drops_at"].items()))
            if r["detail"]:
                extra.append("message counts " + ", ".join(f"{k} {v}" for k, v in sorted(r["detail"].items())))
            if not r["server_alive"]:
                extra.append("the server was no longer running")
            if extra and r["server_counters"]:
                extra.append("server counters " + ", ".join(f"{k} {v:g}" for k, v in sorted(r["server_counters"].items())))
            if extra:
                failures.append(f"* {name}, {r['rate']}/s: " + "; ".join(extra))
    if failures:
        lines += ["", "What failed or was retransmitted:", ""] + failures
    busy = [f"{name} at {r['rate']}/s ({r['other_cpu_pct']:.0f}%)"
            for _, name, ladder, _ in results for r in ladder if r["other_cpu_pct"] > 15]
    if busy:
        lines += ["", "**Other processes used more than 15% of a core during:** " + "; ".join(busy)
                  + ". Those rows are suspect; run again on a quiet machine."]
    lines.append("")
    return "\n".join(lines)


def memory_markdown(results, vers, args, took):
    today = datetime.date.today().isoformat()
    mib = lambda kib: f"{kib / 1024:.1f}"  # noqa: E731
    lines = [
        f"## Calls held at once, memory (issue 11) — {today}, Kamailio in the same run",
        "",
        f"Command: `{command_line()}`; {args.memory_calls} calls placed at {args.memory_rate}/s, each "
        f"held {args.memory_hold_ms} ms (signalling only: no media), the server's memory read before the "
        "first call (idle) and 6 s after the last call was established (loaded: set-up transactions "
        "over); established = the caller sent every ACK and the callee received every one. A run "
        "where calls failed first is measured the same way 6 s after the caller's sipp was frozen "
        "(SIGSTOP: no new calls, no BYE), per call up then.",
        "",
    ] + common_lines(vers, args, took) + [
        "Columns: VmRSS summed over the server's processes (a page shared by n processes counts n "
        "times: Kamailio's shared memory is mapped by each of its processes) and Pss summed (each "
        "shared page split between its processes: what they hold together); per call = (loaded - "
        f"idle) / calls established, in KiB; the memory maps of the server's processes (the kernel "
        f"refuses a process more than vm.max_map_count, {max_map_count():,} on this machine). The "
        "server's own figures: Kamailio's (kamcmd: shared "
        "memory allocated, by its allocator's books — RSS counts every page ever touched, and the "
        "set-up's transactions touch more than the calls then hold; transactions in progress; "
        "dialogs), wasmswitch's gauges about calls from /metrics.",
        "",
        "| contestant | calls up (caller ACKs / callee ACKs / caller current / callee current) | failed | processes | RSS idle / loaded MiB | RSS per call KiB | Pss idle / loaded MiB | Pss per call KiB | memory maps idle / loaded | the server's own figures, idle / loaded |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for key, name, r, ns in results:
        up = (f"{r['up']} of {r['calls']} ({r['acks_sent']} / {r['acks_recv']} / {r['uac_current']} / "
              f"{r['uas_current']})")
        if r["stalled"]:
            up += f", {r['stalled']}"
        lines.append(
            f"| {name} | {up} | {r['failed']} | {r['processes']} | {mib(r['idle_rss'])} / {mib(r['loaded_rss'])} | "
            f"{fmt(r['rss_per_call'], '.1f')} | {mib(r['idle_pss'])} / {mib(r['loaded_pss'])} | "
            f"{fmt(r['pss_per_call'], '.1f')} | {r['maps'][0]} / {r['maps'][1]} | "
            + (", ".join(f"{k} {fmt(a, 'g')} / {fmt(b, 'g')}" for k, (a, b) in sorted(r["figures"].items())) or "-")
            + " |")
        notes += [f"* {name}: {n}" for n in ns]
        if r["fail_kinds"] or r["unexpected_codes"]:
            notes.append(f"* {name}: " + "; ".join(
                x for x in ("sipp failures " + ", ".join(f"{k} {v}" for k, v in r["fail_kinds"].items())
                            if r["fail_kinds"] else "",
                            "unexpected responses " + ", ".join(f"{k} x{v}" for k, v in r["unexpected_codes"].items())
                            if r["unexpected_codes"] else "") if x))
    ws = [r for key, _, r, _ in results if key == "ws"]
    if ws:
        r = ws[0]
        ok = r["established_s"] is not None and r["up"] >= r["calls"] and r["loaded_rss"] < 2 * 1024 * 1024
        lines += ["", f"Target (issue 11): {args.memory_calls} established calls in under 2 GiB in all: "
                  f"{'met' if ok else 'not met'} (wasmswitch's RSS loaded {mib(r['loaded_rss'])} MiB, "
                  f"{r['up']} calls up)."]
    if notes:
        lines += ["", "Notes:", ""] + notes
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
