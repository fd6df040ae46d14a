"""
Fixtures for the black-box end-to-end tests of ragd.

The binary under test is $RAGD_BIN (default <repo>/build/ragd) and the
embedding model $RAGD_MODEL (default <repo>/models/all-MiniLM-L6-v2.gguf), so
CI can run the same suite against the release and the ASan builds. Servers
listen on 127.0.0.1 only, each on its own free port and temporary data dir.

Every server and CLI process is checked after it ends: a non-zero exit code,
or "ERROR: AddressSanitizer" / "runtime error:" (UBSan) on its stderr, fails
the test that owns it.

With RAGD_VALGRIND=1, `ragd serve` and the CLI (run_cli) run under
valgrind's memcheck (see scripts/valgrind.sh): errors or definite leaks make it exit 99, which fails
the test like any bad exit (the report, written next to the server's stderr
as <stderr>.valgrind, is quoted), and every timeout is ten times longer,
the server's deadlines included (SLOW_ARGS).
"""
import atexit
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RAGD_BIN = os.environ.get("RAGD_BIN", str(REPO / "build" / "ragd"))
RAGD_MODEL = os.environ.get("RAGD_MODEL", str(REPO / "models" / "all-MiniLM-L6-v2.gguf"))
DATA = Path(__file__).resolve().parent / "data"

VALGRIND = os.environ.get("RAGD_VALGRIND") == "1"
SLOW = 10.0 if VALGRIND else 1.0
# --fair-sched: memcheck runs one thread at a time, and its default lock
# lets a busy thread (a resumed job embedding) take it back again and again:
# a server restarted with a job to resume was never ready in 600 s.
VALGRIND_CMD = ["valgrind", "--tool=memcheck", "--fair-sched=yes", "--leak-check=full",
                "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
                "--error-exitcode=99", "--num-callers=30",
                f"--suppressions={REPO / 'scripts' / 'valgrind.supp'}"]

READY_TIMEOUT_S = float(os.environ.get("RAGD_READY_TIMEOUT", "60")) * SLOW
REQUEST_TIMEOUT_S = 60.0 * SLOW
# Under valgrind the server's own deadlines stretch like the suite's: a
# search that takes 11 s there is slowness, not a 504 worth a failure. A
# test's own --set of these comes later on the command line and wins.
SLOW_ARGS = ["--set", "limits.search_timeout_ms=100000",
             "--set", "limits.ingest_timeout_ms=3000000", "--set", "rag.timeout_ms=600000",
             "--set", "sharding.timeout_ms=20000", "--set", "ingest.job_lease_ms=300000",
             "--set", "models.remote.timeout_ms=300000",
             "--set", "models.remote.deadline_ms=600000"] if VALGRIND else []
# The same for the CLI, whose commands take settings from the environment.
SLOW_CLI_ENV = {"RAGD_LIMITS_SEARCH_TIMEOUT_MS": "100000",
                "RAGD_LIMITS_INGEST_TIMEOUT_MS": "3000000"} if VALGRIND else {}
STOP_TIMEOUT_S = 30.0 * SLOW
# Under memcheck the model's arithmetic is 100-200 times slower and decides
# how long an ingest takes (a 1000-word document: over 10 minutes). With
# RAGD_VALGRIND_REMOTE_EMBED=1 the servers under memcheck embed through one
# plain ragd (not under valgrind) as their remote embedder (models.embedder
# =remote, the same model): ragd's own code still runs under memcheck.
VALGRIND_REMOTE_EMBED = VALGRIND and os.environ.get("RAGD_VALGRIND_REMOTE_EMBED") == "1"
_embed_server = {}

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def ragd_env(extra=None):
    """The environment for ragd processes: no stray RAGD_* settings from the
    caller (apart from those this suite owns), and sanitizers set to report."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RAGD_") or k in ("RAGD_BIN", "RAGD_MODEL")}
    asan = env.get("ASAN_OPTIONS", "")
    if "detect_leaks" not in asan:
        asan = (asan + ":" if asan else "") + "detect_leaks=1"
    env["ASAN_OPTIONS"] = asan
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    if extra:
        env.update(extra)
    return env


def sanitizer_findings(text):
    """The lines of text that carry a sanitizer report, or []."""
    return [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKERS)]


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_request(host, port, method, path, body=None, headers=None, timeout=REQUEST_TIMEOUT_S,
                 ssl_context=None):
    """One HTTP request (HTTPS with ssl_context). body: None, a dict/list (sent
    as JSON), str or bytes (sent as is). Returns (status, parsed JSON or None
    when the body is not JSON, raw body bytes)."""
    if ssl_context is not None:
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl_context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            if isinstance(body, (dict, list)):
                data = json.dumps(body).encode()
            elif isinstance(body, str):
                data = body.encode()
            else:
                data = bytes(body)
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return resp.status, parsed, raw
    finally:
        conn.close()


def new_api_key():
    """A fresh ragd API key token: ragd_<16 hex id>_<64 hex secret>."""
    return "ragd_" + secrets.token_hex(8) + "_" + secrets.token_hex(32)


def auth_args(keys, key_dir):
    """The serve flags that turn authentication on with the given keys:
    {name: (tenant, role)} or {name: (tenant, role, {limit: value})}. Each
    key's token is written to a key file (auth.keys key_file entries).
    Returns (flags, {name: token})."""
    tokens, entries = {}, []
    for name, spec in keys.items():
        tenant, role = spec[0], spec[1]
        limits = spec[2] if len(spec) > 2 else {}
        tokens[name] = new_api_key()
        path = Path(key_dir) / f"{name}.key"
        path.write_text(tokens[name] + "\n")
        entry = [f"tenant={tenant}", f"role={role}", f"key_file={path}", f"name={name}"]
        entry += [f"{k}={v}" for k, v in limits.items()]
        entries.append(";".join(entry))
    return ["--set", "auth.enabled=true", "--set", "auth.keys=" + ",".join(entries)], tokens


def valgrind_embed_args():
    """The --set arguments sending a server's embeddings to the plain
    embedding server (started on first use), or [] unless
    VALGRIND_REMOTE_EMBED."""
    if not VALGRIND_REMOTE_EMBED:
        return []
    if not _embed_server:
        tmp = Path(tempfile.mkdtemp(prefix="ragd-vg-embed-"))
        port = free_port()
        log = open(tmp / "stderr", "wb")
        proc = subprocess.Popen([RAGD_BIN, "serve", "--data-dir", str(tmp / "data"),
                                 "--port", str(port), "--host", "127.0.0.1", "--model", RAGD_MODEL,
                                 "--set", "models.generator="],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=ragd_env())
        atexit.register(lambda: (proc.terminate(), proc.wait(), log.close()))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if http_request("127.0.0.1", port, "GET", "/ready", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError(f"the embedding server never became ready: see {tmp}/stderr")
        _embed_server["url"] = f"http://127.0.0.1:{port}"
    return ["--set", "models.embedder=remote", "--set", "models.remote.urls=" + _embed_server["url"]]


def needs_local_tokenizer():
    """Skips a test that counts the local model's tokens when the servers
    embed remotely (RAGD_VALGRIND_REMOTE_EMBED): a remote embedder
    estimates tokens from bytes, so chunk boundaries differ."""
    if VALGRIND_REMOTE_EMBED:
        pytest.skip("counts the local tokenizer's tokens; the servers embed remotely here")


class RagdServer:
    """One `ragd serve` process on a data dir that outlives restarts.

    With keys (auth_args), requests carry `Authorization: Bearer` for
    self.default_key (the first admin key) unless told key=NAME, key=TOKEN or
    key=False (none)."""

    def __init__(self, data_dir, log_dir, extra_args=(), env=None, default_index=None,
                 tokens=None, ssl_context=None):
        self.tokens = dict(tokens or {})
        self.default_key = next(iter(self.tokens), None)
        self.ssl_context = ssl_context  # HTTPS (server.tls_cert) when set
        self.default_index = default_index  # the "index" of collections made by create_collection
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir)
        self.extra_args = list(extra_args)
        self.env = env
        self.port = None
        self.proc = None
        self.runs = 0
        self.stderr_path = None
        self._stderr_file = None
        self.problems = []  # failures found at stop time, reported by the fixture

    @property
    def url(self):
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout=READY_TIMEOUT_S, port=None):
        """Starts on a free port, or on `port` (e.g. to bring a killed model
        server back at the address its clients know)."""
        assert self.proc is None, "server already running"
        last_err = ""
        for _attempt in range(5):
            self.port = port or free_port()
            self.runs += 1
            self.stderr_path = self.log_dir / f"ragd-{self.port}-run{self.runs}.stderr"
            self._stderr_file = open(self.stderr_path, "wb")
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         stdout=self._stderr_file,
                                         stderr=subprocess.STDOUT, env=ragd_env(self.env))
            if self._wait_ready(timeout):
                return self
            rc = self.proc.poll()
            self._stderr_file.close()
            last_err = self.stderr_text()
            if rc is None:  # alive but never ready: give up
                self.proc.kill()
                self.proc.wait()
                self.proc = None
                raise AssertionError(f"ragd not ready within {timeout}s on port {self.port}:\n"
                                     f"{last_err[-4000:]}")
            self.proc = None
            if "cannot listen" not in last_err:  # a real start-up failure, not a port race
                break
        raise AssertionError(f"ragd serve exited before ready:\n{last_err[-4000:]}")

    def command(self):
        """The `ragd serve` command line for the port and stderr_path set."""
        cmd = [RAGD_BIN, "serve", "--data-dir", str(self.data_dir), "--port", str(self.port),
               "--host", "127.0.0.1", "--model", RAGD_MODEL, *SLOW_ARGS,
               *valgrind_embed_args(), *self.extra_args]
        if VALGRIND:  # its report in a file of its own: stderr stays JSON lines
            cmd = VALGRIND_CMD + [f"--log-file={self.stderr_path}.valgrind"] + cmd
        return cmd

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                status, body, _ = http_request("127.0.0.1", self.port, "GET", "/ready",
                                               timeout=5 * SLOW, ssl_context=self.ssl_context)
                if status == 200 and body and body.get("status") == "ready":
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self, check=True):
        """SIGTERM, wait, and check exit code and stderr. Returns the exit code.
        With check, a problem raises AssertionError at once (and is also kept in
        .problems so the owning fixture reports it even if the test swallowed it)."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "killed: did not exit within %ss of SIGTERM" % STOP_TIMEOUT_S
        self.proc = None
        self._stderr_file.close()
        text = self.stderr_text()
        found = sanitizer_findings(text)
        msgs = []
        if rc != 0:
            msgs.append(f"ragd serve exit status {rc}")
        if VALGRIND and rc == 99:
            try:
                vg = Path(f"{self.stderr_path}.valgrind").read_text(errors="replace")
            except OSError:
                vg = ""
            msgs.append(f"valgrind report:\n{vg[-8000:]}")
        if found:
            msgs.append("sanitizer reports:\n  " + "\n  ".join(found[:20]))
        if msgs:
            msg = "; ".join(msgs) + f"\n--- stderr ({self.stderr_path}) tail ---\n{text[-6000:]}"
            self.problems.append(msg)
            if check:
                raise AssertionError(msg)
        return rc

    def kill(self):
        """SIGKILL (a crash): no clean shutdown, so no exit-code check; the
        stderr so far is still checked for sanitizer reports."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self._stderr_file.close()
        found = sanitizer_findings(self.stderr_text())
        if found:
            msg = "sanitizer reports before SIGKILL:\n  " + "\n  ".join(found[:20])
            self.problems.append(msg)
            raise AssertionError(msg)

    def restart(self):
        self.stop()
        return self.start()

    def stderr_text(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_lines(self):
        """stderr parsed as JSON log lines (non-JSON lines skipped)."""
        out = []
        for line in self.stderr_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    # -- HTTP --------------------------------------------------------------
    def _auth_headers(self, headers, key):
        if key is None:
            key = self.default_key
        if not key:
            return headers
        token = self.tokens.get(key, key)
        hdrs = dict(headers or {})
        hdrs.setdefault("Authorization", f"Bearer {token}")
        return hdrs

    def request(self, method, path, body=None, headers=None, key=None):
        """(status, parsed JSON body or None)."""
        status, parsed, _ = http_request("127.0.0.1", self.port, method, path, body,
                                         self._auth_headers(headers, key),
                                         ssl_context=self.ssl_context)
        return status, parsed

    def raw_request(self, method, path, body=None, headers=None, key=None):
        """(status, parsed JSON or None, raw bytes)."""
        return http_request("127.0.0.1", self.port, method, path, body,
                            self._auth_headers(headers, key), ssl_context=self.ssl_context)

    # -- conveniences used by several test modules ---------------------------
    def create_collection(self, name, **kw):
        if self.default_index is not None:
            kw.setdefault("index", self.default_index)
        status, body = self.request("POST", "/v1/collections", {"name": name, **kw})
        assert status == 201, (status, body)
        return body

    def add_doc(self, coll, text, doc_id=None, metadata=None):
        req = {"text": text}
        if doc_id is not None:
            req["id"] = doc_id
        if metadata is not None:
            req["metadata"] = metadata
        status, body = self.request("POST", f"/v1/collections/{coll}/documents", req)
        assert status in (200, 201), (status, body)
        return body

    def search(self, coll, query, top_k=5, mode=None):
        req = {"query": query, "top_k": top_k}
        if mode is not None:
            req["mode"] = mode
        status, body = self.request("POST", f"/v1/collections/{coll}/search", req)
        assert status == 200, (status, body)
        return body["results"]

    def collection(self, name):
        status, body = self.request("GET", f"/v1/collections/{name}")
        assert status == 200, (status, body)
        return body


class ServerFactory:
    """Starts servers on fresh data dirs; stops them all (and reports what
    the stop checks found) at teardown."""

    def __init__(self, tmp_dir_fn):
        self._tmp_dir_fn = tmp_dir_fn
        self.servers = []

    def __call__(self, extra_args=(), data_dir=None, env=None, default_index=None, keys=None,
                 ssl_context=None):
        """keys: {name: (tenant, role[, limits])} turns authentication on
        (auth_args); the first key is the default one for requests."""
        base = self._tmp_dir_fn()
        data_dir = Path(data_dir) if data_dir else base / "data"
        tokens = None
        if keys:
            flags, tokens = auth_args(keys, base)
            extra_args = [*flags, *extra_args]
        srv = RagdServer(data_dir, base, extra_args, env, default_index, tokens, ssl_context)
        self.servers.append(srv)
        srv.start()
        return srv

    def close(self):
        problems = []
        for srv in self.servers:
            try:
                srv.stop(check=False)
            except Exception as e:  # noqa: BLE001 - report, keep stopping the rest
                problems.append(f"stopping server on {srv.data_dir}: {e!r}")
            problems.extend(srv.problems)
        self.servers.clear()
        if problems:
            pytest.fail("ragd server problems:\n" + "\n\n".join(problems), pytrace=False)


@pytest.fixture
def ragd_factory(tmp_path_factory):
    """Function-scoped factory: ragd_factory(extra_args=(...)) -> RagdServer."""
    f = ServerFactory(lambda: tmp_path_factory.mktemp("ragd"))
    yield f
    f.close()


@pytest.fixture(scope="module")
def ragd_module_factory(tmp_path_factory):
    """Module-scoped factory, for servers shared by a module's tests."""
    f = ServerFactory(lambda: tmp_path_factory.mktemp("ragd"))
    yield f
    f.close()


@pytest.fixture(scope="module")
def ragd(ragd_module_factory):
    """A server shared by the module's tests, on its own data dir."""
    return ragd_module_factory()


# -- MongoDB store: FerretDB ----------------------------------------------------

@pytest.fixture(scope="session")
def ferretdb(tmp_path_factory):
    """A FerretDB server (MongoDB wire protocol, SQLite backend) for the
    session: .uri, .port, .ragd_env(key) for a ragd on the MongoDB store in
    a database named after key, .stop()/.start(). ferretdb_server.py's
    start_ferretdb(workdir) starts one of a test's own; mongo_fixtures.py
    moves a whole module's servers onto it."""
    from ferretdb_server import start_ferretdb
    srv = start_ferretdb(tmp_path_factory.mktemp("ferretdb"))
    yield srv
    srv.stop()


# -- Chroma, the second vector backend ----------------------------------------

CHROMA_BIN = os.environ.get("RAGD_CHROMA_BIN") or str(Path(sys.executable).parent / "chroma")


class ChromaServer:
    """`chroma run` on a loopback port with its own data directory; keeps
    both across stop/start so a restarted server has the same data."""

    def __init__(self, base_dir):
        self.path = Path(base_dir) / "chroma"
        self.log_path = Path(base_dir) / "chroma.log"
        self.port = None
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=READY_TIMEOUT_S):
        assert self.proc is None, "chroma already running"
        self.port = self.port or free_port()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [CHROMA_BIN, "run", "--path", str(self.path), "--host", "127.0.0.1",
             "--port", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, \
                f"chroma exited: {self.log_path.read_text(errors='replace')[-3000:]}"
            try:
                if self.api("GET", "/api/v2/heartbeat")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"chroma not answering within {timeout}s")

    def stop(self):
        if self.proc is None:
            return
        self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def pause(self):
        """SIGSTOP: connections are accepted by the kernel, never answered."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def api(self, method, path, body=None, timeout=10):
        """(status, parsed JSON) from Chroma's own HTTP API."""
        status, parsed, _ = http_request("127.0.0.1", self.port, method, path, body,
                                         timeout=timeout)
        return status, parsed

    def ragd_args(self, database=None, timeout_ms=None):
        """ragd flags pointing at this server, in a database of its own so
        that ragd servers sharing this Chroma never see each other's data."""
        args = ["--set", f"chroma.url={self.url}", "--set", "chroma.tenant=ragd_e2e",
                "--set", f"chroma.database={database or 'db_' + uuid.uuid4().hex[:12]}"]
        if timeout_ms:
            args += ["--set", f"chroma.timeout_ms={timeout_ms}"]
        return args


@pytest.fixture(scope="session")
def chroma(tmp_path_factory):
    """A Chroma server shared by the session (started on first use)."""
    srv = ChromaServer(tmp_path_factory.mktemp("chroma")).start()
    yield srv
    srv.stop()


@pytest.fixture
def chroma_own(tmp_path_factory):
    """A Chroma server of the test's own, to stop, pause and restart."""
    srv = ChromaServer(tmp_path_factory.mktemp("chroma")).start()
    yield srv
    srv.stop()


class Backend:
    """A vector index backend the search tests run on: "flat" (in process)
    or "chroma" (collections on the session's Chroma server)."""

    def __init__(self, name, chroma=None):
        self.name, self.chroma = name, chroma

    @property
    def index(self):
        return {"type": "chroma"} if self.name == "chroma" else None

    def server_args(self):
        return self.chroma.ragd_args() if self.chroma else []

    def start(self, factory, extra_args=()):
        """A server from factory whose create_collection uses this backend."""
        return factory(extra_args=[*self.server_args(), *extra_args],
                       default_index=self.index)

    def __repr__(self):
        return self.name


BACKENDS = ("flat", "chroma")


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    """Each vector backend in turn (module-scoped: a module's tests run on
    one backend, then on the other)."""
    if request.param == "flat":
        return Backend("flat")
    return Backend("chroma", request.getfixturevalue("chroma"))


@pytest.fixture(scope="module")
def ragd_backend(request, backend):
    """The module's shared server for tests that run on every backend: the
    module's `ragd` itself for flat, a second server for chroma."""
    if backend.name == "flat":
        return request.getfixturevalue("ragd")
    return backend.start(request.getfixturevalue("ragd_module_factory"))


def pytest_collection_modifyitems(config, items):
    """Lexical search never touches the vector index: its cases run on the
    flat backend only, so the chroma pass does not repeat them."""
    keep, drop = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        params = params.params if params else {}
        if params.get("backend") == "chroma" and params.get("mode") == "lexical":
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# -- CLI ---------------------------------------------------------------------

class CliResult:
    def __init__(self, args, returncode, stdout, stderr):
        self.args, self.returncode, self.stdout, self.stderr = args, returncode, stdout, stderr

    def json_lines(self):
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def __repr__(self):
        return (f"CliResult(args={self.args!r}, rc={self.returncode}, "
                f"stdout={self.stdout[-2000:]!r}, stderr={self.stderr[-2000:]!r})")


_cli_valgrind_dir = [None]  # set per session: under the run's basetemp


@pytest.fixture(scope="session", autouse=True)
def _cli_valgrind_logs(tmp_path_factory):
    """CLI valgrind reports go under the basetemp, beside the servers' (where
    scripts/valgrind.sh counts them)."""
    if VALGRIND:
        _cli_valgrind_dir[0] = tmp_path_factory.mktemp("cli-valgrind")


def run_cli(*args, data_dir=None, expect_ok=True, timeout=300, env=None):
    """Runs `ragd ARGS...` (with --data-dir and --model added). Fails on any
    sanitizer report; with expect_ok also on a non-zero exit."""
    cmd = [RAGD_BIN, args[0]]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    cmd += ["--model", RAGD_MODEL, *args[1:]]
    vg_log = None
    if VALGRIND:  # the CLI's own process under memcheck too; %p: one report per run
        vg_dir = _cli_valgrind_dir[0] or Path(tempfile.gettempdir())
        vg_log = vg_dir / f"cli-{args[0]}-{time.monotonic_ns()}.valgrind"
        cmd = VALGRIND_CMD + [f"--log-file={vg_log}"] + cmd
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout * SLOW, env=ragd_env({**SLOW_CLI_ENV, **(env or {})}))
    res = CliResult(cmd, p.returncode, p.stdout.decode(errors="replace"),
                    p.stderr.decode(errors="replace"))
    found = sanitizer_findings(res.stderr)
    assert not found, f"sanitizer reports from {cmd!r}:\n" + "\n".join(found) + \
        f"\n--- stderr ---\n{res.stderr[-6000:]}"
    assert not (vg_log and p.returncode == 99), \
        f"valgrind report from {cmd!r}:\n{vg_log.read_text(errors='replace')[-8000:]}"
    if expect_ok:
        assert res.returncode == 0, res
    return res


@pytest.fixture(scope="session")
def ragd_cli():
    """ragd_cli("ingest", "--collection", "c", FILE, data_dir=D) -> CliResult."""
    return run_cli


# -- data --------------------------------------------------------------------

@pytest.fixture(scope="session")
def topics():
    """The 50-topic corpus: a list of {id, text, query}."""
    with open(DATA / "topics.json", encoding="utf-8") as f:
        docs = json.load(f)["documents"]
    assert len(docs) == 50
    return docs


def pytest_report_header(config):
    return [f"ragd binary: {RAGD_BIN}", f"ragd model: {RAGD_MODEL}"]


def pytest_sessionstart(session):
    # A missing binary is an error, not a skip: CI must not pass vacuously.
    if not os.access(RAGD_BIN, os.X_OK):
        raise pytest.UsageError(f"ragd binary not found or not executable: {RAGD_BIN} (set RAGD_BIN)")
    if not Path(RAGD_MODEL).is_file():
        raise pytest.UsageError(f"embedding model not found: {RAGD_MODEL} (set RAGD_MODEL)")
