"""What the control-plane probes (probe.py) and tests/bench/sim_isolation.py share: starting a
real `wasmswitch serve`, a small thread-safe HTTP client (keep-alive, one connection per thread),
PostgreSQL scratch databases, latency statistics and a load generator that runs in a process of
its own (so the Python client's own work does not skew what the measuring process sees).

Standard library only. Everything talks to 127.0.0.1.
"""

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

OPERATOR = "probe-operator-key-" + secrets.token_hex(16)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rand_id(prefix="p"):
    """A tenant id or plugin name no other run uses (runs may share a PostgreSQL database)."""
    return f"{prefix}-{secrets.token_hex(5)}"


class Resp:
    __slots__ = ("status", "headers", "body", "elapsed", "error")

    def __init__(self, status, headers, body, elapsed, error=None):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed
        self.error = error

    def json(self):
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    def detail(self):
        """A short description for a finding: status and the problem's detail."""
        if self.status == 0:
            return f"no answer ({self.error})"
        j = self.json()
        if isinstance(j, dict) and "detail" in j:
            return f"{self.status} {j.get('detail')!r}"
        text = self.body[:160].decode("utf-8", "replace") if self.body else ""
        return f"{self.status} {text!r}"


class Client:
    """HTTP/1.1 with keep-alive; each thread has its own connection. Never raises for a
    transport failure: the answer then has status 0 and `error` set."""

    def __init__(self, base, timeout=60.0):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.base = base
        self.timeout = timeout
        self.local = threading.local()

    def _conn(self, fresh=False):
        c = getattr(self.local, "conn", None)
        if c is None or fresh:
            if c is not None:
                c.close()
            c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.local.conn = c
            self.local.used = False
        return c

    def close(self):
        c = getattr(self.local, "conn", None)
        if c is not None:
            c.close()
            self.local.conn = None

    def req(self, method, path, key=None, body=None, ctype=None, headers=None, auth_scheme="Bearer",
            timeout=None):
        h = {}
        if key is not None:
            h["Authorization"] = f"{auth_scheme} {key}"
        data = None
        if body is not None:
            if isinstance(body, (bytes, bytearray)):
                data = bytes(body)
                h["Content-Type"] = ctype or "application/octet-stream"
            elif isinstance(body, str):
                data = body.encode()
                h["Content-Type"] = ctype or "application/json"
            else:
                data = json.dumps(body).encode()
                h["Content-Type"] = ctype or "application/json"
        if headers:
            h.update(headers)
        for attempt in (0, 1):
            c = self._conn()
            reused = self.local.used
            if timeout is not None:
                c.timeout = timeout
                if c.sock is not None:
                    c.sock.settimeout(timeout)
            t = time.perf_counter()
            try:
                c.request(method, path, body=data, headers=h)
                r = c.getresponse()
                payload = r.read()
                elapsed = time.perf_counter() - t
                self.local.used = True
                hdrs = {k.lower(): v for k, v in r.getheaders()}
                if r.will_close:
                    self._conn(fresh=True)
                if timeout is not None:
                    c.timeout = self.timeout
                    if c.sock is not None:
                        c.sock.settimeout(self.timeout)
                return Resp(r.status, hdrs, payload, elapsed)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self._conn(fresh=True)
                # A kept-alive connection the server had just closed: send again once.
                if reused and attempt == 0:
                    continue
                return Resp(0, {}, b"", time.perf_counter() - t, repr(e))
            except (OSError, http.client.HTTPException) as e:
                self._conn(fresh=True)
                return Resp(0, {}, b"", time.perf_counter() - t, repr(e))
        return Resp(0, {}, b"", 0.0, "unreachable")

    def get(self, path, key=None, **kw):
        return self.req("GET", path, key, **kw)

    def post(self, path, key=None, body=None, **kw):
        return self.req("POST", path, key, body, **kw)


class HostError(RuntimeError):
    """A host could not be started."""


class Host:
    """One `wasmswitch serve` on 127.0.0.1, its settings from environment variables."""

    def __init__(self, binary, db_url, work, name, env=None, jwt_secret=None):
        self.binary = binary
        self.db_url = db_url
        self.work = work
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(work, f"{name}.log")
        self.jwt_secret = jwt_secret or secrets.token_hex(32)
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("WASMSWITCH_"):
                del e[k]
        e.update(
            WASMSWITCH_API_LISTEN=f"127.0.0.1:{self.port}",
            DATABASE_URL=db_url,
            WASMSWITCH_PLUGINS_CACHE_DIR=os.path.join(work, f"cache-{name}"),
            WASMSWITCH_API_OPERATOR_KEYS=json.dumps([OPERATOR]),
            WASMSWITCH_API_JWT_SECRET=self.jwt_secret,
            WASMSWITCH_API_RATE_LIMIT_PER_SECOND="1000000",
            WASMSWITCH_API_RATE_LIMIT_BURST="1000000",
            WASMSWITCH_LOG_LEVEL="info",
            # Nothing here touches SIP; keep it off the default port.
            WASMSWITCH_SIP_LISTEN=f"127.0.0.1:{free_port()}",
        )
        e.update(env or {})
        # A value of None removes the setting: the binary's default applies.
        e = {k: v for k, v in e.items() if v is not None}
        self.env = e
        self.proc = None
        self.died = None  # the exit code, if the host exited before stop() was called
        self.client = Client(self.base)

    def command_line(self):
        keys = sorted(k for k in self.env if k.startswith("WASMSWITCH_") or k == "DATABASE_URL")
        return " ".join(f"{k}={self.env[k]!r}" for k in keys) + f" {self.binary} serve"

    def start(self, wait=90.0):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "serve"], env=self.env, cwd=self.work,
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HostError(f"host {self.name} exited with {self.proc.returncode}; "
                                   f"see {self.log_path}:\n{self.log_tail()}")
            r = self.client.get("/readyz", timeout=2)
            if r.status == 200:
                return self
            time.sleep(0.1)
        raise HostError(f"host {self.name} not ready after {wait:.0f} s; see {self.log_path}")

    def stop(self):
        if self.proc is None or getattr(self, "stopped", False):
            return
        self.stopped = True
        if self.proc.poll() is not None:
            self.died = self.proc.returncode
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "logf", None):
            self.logf.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=30):
        return "\n".join(self.log().splitlines()[-n:])

    def status_kib(self):
        """The kB fields of /proc/PID/status (VmRSS, VmHWM, RssAnon, RssFile, RssShmem ...)."""
        out = {}
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if v.strip().endswith("kB"):
                        out[k] = int(v.split()[0])
        except OSError:
            pass
        return out

    def rss_kib(self, field="VmRSS"):
        return self.status_kib().get(field, 0)

    # Set-up helpers (operator key); they raise on failure, as the probes cannot go on.
    def must(self, call, *ok):
        """A set-up request (a callable making it) that must answer one of `ok`. A 5xx or no
        answer is tried again a few times: set-up is not what is probed, and a probe running
        beside it may be provoking exactly that (those probes report it themselves)."""
        for attempt in range(6):
            r = call()
            if r.status in ok or not (r.status >= 500 or r.status == 0):
                break
            time.sleep(0.1 * (attempt + 1))
        if r.status not in ok:
            raise RuntimeError(f"set-up request failed: {r.detail()}")
        return r.json()

    def new_tenant(self, tid=None, name="probe"):
        tid = tid or rand_id("t")
        self.must(lambda: self.client.post("/v1/tenants", OPERATOR, {"id": tid, "name": name}), 201)
        return tid

    def new_key(self, tenant, role="tenant-admin", key=OPERATOR):
        j = self.must(lambda: self.client.post(f"/v1/tenants/{tenant}/keys", key,
                                       {"name": "probe", "role": role}), 201)
        return j["secret"], j["id"]

    def upload(self, tenant, key, name, wasm, activate=False, world="router"):
        q = f"?world={world}" + ("&activate=true" if activate else "")
        return self.client.post(f"/v1/tenants/{tenant}/plugins/{name}{q}", key, wasm,
                                ctype="application/wasm")


def with_custom_section(component, tag):
    """The same component with a custom section appended: new bytes and sha256, same code."""
    name = b"wasmswitch-probe"
    payload = bytes([len(name)]) + name + tag.encode()
    size = len(payload)
    leb = bytearray()
    while True:
        b = size & 0x7F
        size >>= 7
        leb.append(b | (0x80 if size else 0))
        if not size:
            break
    return component + b"\x00" + bytes(leb) + payload


def sim_body(plugin, version, to, frm="+15550001"):
    # A new call's first event, on contract 0.2's model: answered the same by 0.1 plugins (through
    # the host's adapter) and 0.2 ones.
    body = {"events": [{"incoming": {"from": frm, "to": to}}], "kv": {"routes": "+1 * us-trunk\n"}}
    if plugin is not None:
        body["plugin"] = plugin
    if version is not None:
        body["version"] = version
    return body


def step_error(resp):
    """The error kind of a simulation's first failed step, if any."""
    j = resp.json()
    if resp.status == 200 and isinstance(j, dict):
        for step in j.get("steps") or []:
            if isinstance(step, dict) and step.get("error"):
                return step["error"].get("kind")
    return None


def simulate(c, tenant, key, body, tries=4):
    """POST .../simulate; tried again (at most `tries` times) when the host is busy (503 with
    Retry-After) or the plugin ran past its deadline (a router that takes a millisecond can
    still miss a 100 ms wall-clock deadline on a machine loaded by other work)."""
    for attempt in range(tries):
        r = c.post(f"/v1/tenants/{tenant}/simulate", key, body)
        if r.status == 503:
            try:
                wait = float(r.headers.get("retry-after", "1"))
            except ValueError:
                wait = 1.0
            time.sleep(min(max(wait, 0.1), 1.0))
            continue
        if step_error(r) == "timeout":
            time.sleep(0.2)
            continue
        return r
    return r


def sim_code(resp):
    """Which component answered a simulation of +14155550100: 'router' (dials), 'faulty'
    (rejects 486), or a description of anything else."""
    j = resp.json()
    if resp.status != 200 or not isinstance(j, dict):
        return f"HTTP {resp.detail()}"
    try:
        out = j["steps"][0]["output"]
    except (KeyError, IndexError, TypeError):
        return f"unexpected answer {resp.body[:200]!r}"
    first = out[0] if isinstance(out, list) and out else None
    if isinstance(first, dict) and "dial" in first:
        return "router"
    if isinstance(first, dict) and "reject" in first and first["reject"].get("code") == 486:
        return "faulty"
    kind = step_error(resp)
    if kind:
        return f"plugin error {kind!r} (output {out!r})"
    return f"unexpected output {out!r}"


# --- PostgreSQL scratch databases -------------------------------------------------------------

def pg_with_db(url, db):
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + db, u.query, u.fragment))


def psql(url, sql):
    return subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                          capture_output=True, text=True, timeout=60)


def pg_create(url, prefix="wsprobe"):
    """Creates a database of our own beside the one in `url`; returns its URL, or None when
    psql is missing or refuses (the caller then uses `url` with random tenant ids)."""
    db = f"{prefix}_{secrets.token_hex(4)}"
    try:
        r = psql(url, f"CREATE DATABASE {db}")
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"note: cannot run psql ({e}); using {url} with random tenant ids", file=sys.stderr)
        return None
    if r.returncode != 0:
        print(f"note: CREATE DATABASE failed ({r.stderr.strip()}); using {url} with random "
              "tenant ids", file=sys.stderr)
        return None
    return pg_with_db(url, db)


def pg_drop(admin_url, db_url):
    db = urllib.parse.urlsplit(db_url).path.lstrip("/")
    r = psql(admin_url, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    if r.returncode != 0:
        print(f"warning: could not drop {db}: {r.stderr.strip()}", file=sys.stderr)


# --- statistics -----------------------------------------------------------------------------

def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summarize(samples):
    """samples: list of (seconds, ok). Latencies in ms."""
    lat = [s * 1000 for s, _ in samples]
    return {
        "n": len(samples),
        "p50": percentile(lat, 50),
        "p99": percentile(lat, 99),
        "max": max(lat) if lat else float("nan"),
        "errors": sum(1 for _, ok in samples if not ok),
    }


class Sampler:
    """Sends one request after another (a pause between) in a thread of its own, recording
    latency and whether the answer was the expected status, until stopped."""

    def __init__(self, base, path, key=None, expect=200, pause=0.02, timeout=20.0):
        self.client = Client(base, timeout=timeout)
        self.path, self.key, self.expect, self.pause = path, key, expect, pause
        self.samples = []
        self.statuses = {}
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop_flag.is_set():
            r = self.client.get(self.path, self.key)
            ok = r.status == self.expect
            self.samples.append((r.elapsed, ok))
            self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
            self.stop_flag.wait(self.pause)
        self.client.close()

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_flag.set()
        self.thread.join(30)
        return summarize(self.samples)


class RssSampler:
    def __init__(self, host, every=0.05):
        self.host, self.every = host, every
        self.max_kib = 0
        self.at_max = {}  # the status fields when VmRSS was highest
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop_flag.is_set():
            st = self.host.status_kib()
            if st.get("VmRSS", 0) > self.max_kib:
                self.max_kib = st["VmRSS"]
                self.at_max = st
            self.stop_flag.wait(self.every)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_flag.set()
        self.thread.join(5)
        return self.max_kib


# --- a load generator in a process of its own ------------------------------------------------

def load_worker(base, path, key, body, clients, seconds, max_requests, out):
    """Runs in a child process: `clients` threads POST `body` to `path` until `seconds` pass
    or `max_requests` are sent. A 429 or 503 makes that client wait for Retry-After (at most
    1 s), as a well-behaved client would. Puts a summary dict on the queue `out`."""
    lock = threading.Lock()
    stats = {"sent": 0, "status": {}, "kinds": {}, "no_retry_after": 0, "instantiate_200": 0,
             "examples": {}}
    deadline = time.monotonic() + seconds
    payload = json.dumps(body).encode()

    def client():
        c = Client(base, timeout=60)
        while time.monotonic() < deadline:
            with lock:
                if stats["sent"] >= max_requests:
                    break
                stats["sent"] += 1
            r = c.req("POST", path, key, payload, ctype="application/json")
            kind = None
            if r.status == 200:
                j = r.json() or {}
                for step in j.get("steps", []):
                    if step.get("error"):
                        kind = step["error"].get("kind")
            with lock:
                stats["status"][r.status] = stats["status"].get(r.status, 0) + 1
                if kind:
                    stats["kinds"][kind] = stats["kinds"].get(kind, 0) + 1
                    if kind == "instantiate":
                        stats["instantiate_200"] += 1
                if r.status in (429, 503) and "retry-after" not in r.headers:
                    stats["no_retry_after"] += 1
                if r.status not in (200, 429) and str(r.status) not in stats["examples"]:
                    stats["examples"][str(r.status)] = r.detail()
            if r.status in (429, 503):
                try:
                    wait = float(r.headers.get("retry-after", "1"))
                except ValueError:
                    wait = 1.0
                time.sleep(min(max(wait, 0.05), 1.0))
            elif r.status == 0:
                time.sleep(0.1)
        c.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(stats)


def start_load(base, path, key, body, clients, seconds, max_requests=100000):
    import multiprocessing
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=load_worker,
                    args=(base, path, key, body, clients, seconds, max_requests, q), daemon=True)
    p.start()
    return p, q


def finish_load(proc_queue, timeout):
    p, q = proc_queue
    try:
        stats = q.get(timeout=timeout)
    except Exception:
        stats = None
    p.join(10)
    if p.is_alive():
        p.kill()
    return stats
