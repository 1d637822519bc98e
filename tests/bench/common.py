"""What the load benchmarks (register.py, calls.py) share: ports, the API, a running
`wasmswitch serve`, sipp's statistics, and the accounting of CPU and memory by process.

Imported as `common` (the scripts run from tests/bench, which Python puts first on the path).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SIPP = "/usr/bin/sipp"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    """A port free on 127.0.0.1 for both UDP and TCP (the switch listens on both)."""
    while True:
        t = socket.socket()
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()


def udp_bound(port):
    """Whether something has bound udp 127.0.0.1:port (a peer that does not answer OPTIONS,
    such as a sipp UAS, is ready once it has)."""
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
        return False
    except OSError:
        return True
    finally:
        u.close()


def request(method, url, key=None, body=None, data=None, content_type=None):
    """An API request; `body` is sent as JSON, `data` as is. Returns the response's bytes and
    raises urllib.error.HTTPError on a status of 400 or more."""
    headers = {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if body is not None:
        data = json.dumps(body).encode()
        content_type = "application/json"
    if content_type:
        headers["content-type"] = content_type
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def request_status(method, url, key=None, body=None, data=None, content_type=None):
    """As `request`, but an error status is returned, not raised: (status, bytes)."""
    try:
        return 200, request(method, url, key, body, data, content_type)
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def sip_ready(port, domain="wasmswitch.local", timeout=30.0):
    """Waits until something answers an OPTIONS on udp 127.0.0.1:port (any response will do)."""
    deadline = time.monotonic() + timeout
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    lport = s.getsockname()[1]
    n = 0
    try:
        while time.monotonic() < deadline:
            n += 1
            msg = (
                f"OPTIONS sip:{domain} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK-ready-{os.getpid()}-{n};rport\r\n"
                f"From: <sip:probe@{domain}>;tag=r{n}\r\nTo: <sip:{domain}>\r\n"
                f"Call-ID: ready-{os.getpid()}-{n}\r\nCSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            s.sendto(msg.encode(), ("127.0.0.1", port))
            try:
                s.recvfrom(65535)
                return True
            except socket.timeout:
                continue
        return False
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------
# `wasmswitch serve`, started for a benchmark.


def serve(binary, work, env_settings, args=()):
    """Starts `binary serve` in `work` with the environment `env_settings` on top of this
    process's (every other WASMSWITCH_* variable and DATABASE_URL removed: the host refuses
    unknown ones, and a stray one would change the run). Returns (process, API base URL,
    operator key, stderr file); exits the script if it does not start."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WASMSWITCH_") and k != "DATABASE_URL"}
    env.update(env_settings)
    stderr = open(os.path.join(work, "stderr.log"), "w")
    proc = subprocess.Popen([binary, "serve", *args], cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=stderr, text=True)
    banner = []
    found = threading.Event()

    def read():
        for line in proc.stdout:
            banner.append(line.rstrip("\n"))
            if line.startswith("wasmswitch API on "):
                found.set()
        found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(120) or not any(l.startswith("wasmswitch API on ") for l in banner):
        stop(proc)
        sys.exit(f"wasmswitch did not start; it printed {banner}; see {stderr.name}")
    api = next(l for l in banner if l.startswith("wasmswitch API on "))[len("wasmswitch API on "):].strip()
    after = [l.strip() for l in banner]
    i = next(i for i, l in enumerate(after) if "operator API key" in l)
    operator = next(l for l in after[i:] if l.startswith("wsk_"))
    return proc, api, operator, stderr


def stop(proc, timeout=15):
    """SIGTERM, then SIGKILL after `timeout` seconds."""
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------------
# CPU accounting: utime + stime of a process tree (threads included), or of every process of
# a name (PostgreSQL's backends are separate processes, not our children).


def _proc_table():
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        rest = raw[raw.rindex(")") + 2 :].split()
        ppid = int(rest[1])
        ticks = int(rest[11]) + int(rest[12])
        table[int(d)] = (ppid, comm, ticks)
    return table


def _tree(table, root_pid=None, comm=None):
    if comm is not None:
        return {p for p, (_, c, _) in table.items() if c == comm}
    tree = {root_pid}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _, _) in table.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return {p for p in tree if p in table}


def tree_pids(root_pid):
    """The process `root_pid` and its descendants, alive now."""
    return _tree(_proc_table(), root_pid)


def _switches(pids):
    """Context switches (voluntary + involuntary) of every thread of `pids`."""
    n = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{pid}/task/{t}/status") as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                            n += int(line.split()[1])
            except OSError:
                continue
    return n


def busy_seconds():
    """CPU time the whole machine spent busy (every core; user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK


def usage(root_pid=None, comm=None):
    """(CPU seconds, context switches) of a process tree, or of every process named `comm`."""
    table = _proc_table()
    pids = _tree(table, root_pid, comm)
    return sum(table[p][2] for p in pids) / CLK_TCK, _switches(pids)


def memory_kib(pids):
    """(sum of VmRSS, sum of Pss) of `pids`, in KiB. VmRSS counts a page shared by n processes
    n times (Kamailio's shared memory is mapped by each of its processes); Pss charges each
    process 1/n of it, so the sum of Pss is what the processes hold together."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            continue
    return rss, pss


def map_count(pids):
    """Memory mappings of `pids` in all (lines of /proc/PID/maps): the kernel refuses a
    process more than vm.max_map_count of them (65,530 by default), whatever memory is free."""
    n = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps") as f:
                n += sum(1 for _ in f)
        except OSError:
            continue
    return n


def max_map_count():
    with open("/proc/sys/vm/max_map_count") as f:
        return int(f.read())


def udp_errors():
    """The kernel's count of UDP datagrams dropped for a full socket buffer (receive + send,
    every socket of the machine; on loopback a drop shows as a retransmission)."""
    with open("/proc/net/snmp") as f:
        rows = [l.split() for l in f if l.startswith("Udp:")]
    fields = dict(zip(rows[0][1:], (int(x) for x in rows[1][1:])))
    return fields.get("RcvbufErrors", 0) + fields.get("SndbufErrors", 0)


def udp_socket_drops(ports):
    """{port: datagrams dropped} of the UDP sockets bound to those ports on 127.0.0.1 now (the
    kernel counts per socket, for the socket's life: read it while its owner runs)."""
    out = {}
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            cols = line.split()
            addr, port = cols[1].split(":")
            port = int(port, 16)
            if port in ports and addr == "0100007F":
                out[port] = out.get(port, 0) + int(cols[-1])
    return out


# ---------------------------------------------------------------------------------------------
# Figures.


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def epoch(text):
    """sipp's time columns: "2026-12-07\t18:49:59.295808\t1796669399.295808"."""
    return float(text.split("\t")[-1])


def fmt(v, spec=".1f", none="-"):
    return none if v is None else format(v, spec)


# ---------------------------------------------------------------------------------------------
# Versions, the peers' packages and the release build.


def commit():
    """HEAD's short id, with -dirty when tracked files differ from it."""
    c = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                       text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return c + ("-dirty" if dirty else "")


def kamailio_version():
    k = subprocess.run(["kamailio", "-v"], capture_output=True, text=True).stdout.splitlines()[0]
    return " ".join(k.replace("version: ", "").split())


def sipp_version():
    s = subprocess.run([SIPP, "-v"], capture_output=True, text=True)
    return next((l.strip().rstrip(".") for l in (s.stdout + s.stderr).splitlines() if "SIPp" in l), "?")


def ensure_kamailio(packages=("kamailio",)):
    """Installs Debian's Kamailio packages with apt-get when missing (the script says so)."""
    missing = [p for p in packages
               if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                                 text=True).stdout.strip() != "install ok installed"]
    if not missing:
        return
    log(f"Kamailio is not installed: installing {' '.join(missing)} with apt-get (Debian's packages)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "install", "-y", "--no-install-recommends"] + missing, check=True, env=env)
    # The package enables a system service; the benchmarks start their own.
    subprocess.run(sudo + ["sh", "-c", "systemctl stop kamailio 2>/dev/null || true"], env=env)


def target_dir():
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                          check=True, capture_output=True, text=True).stdout
    return json.loads(meta)["target_directory"]


def build():
    """The release binary of wasmswitch, built now (at low priority: the machine is shared)."""
    log("building: nice -n 19 cargo build --release -p wasmswitch --locked")
    subprocess.run(["nice", "-n", "19", "cargo", "build", "--release", "-p", "wasmswitch", "--locked"],
                   cwd=ROOT, check=True)
    return os.path.join(target_dir(), "release", "wasmswitch")
