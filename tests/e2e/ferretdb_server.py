"""
A real MongoDB-wire-compatible server for the MongoDB store's tests:
FerretDB (v1.24, built by scripts/ferretdb.sh into the cache) with its
SQLite backend in a temporary directory, on a free 127.0.0.1 port. It needs
no other server.

    srv = FerretDB(tmp_dir).start()
    srv.uri                      # mongodb://127.0.0.1:PORT/
    srv.ragd_env(data_dir)       # env for a ragd on the MongoDB store
    srv.stop()

The binary is $RAGD_FERRETDB, else the cache's; scripts/ferretdb.sh is run
to build it when neither exists (it needs Go and the Go module proxy).
"""
import hashlib
import os
import socket
import subprocess
import time
from pathlib import Path

from conftest import REPO, free_port

FERRETDB_VERSION = "v1.24.2"  # scripts/ferretdb.sh builds this one
START_TIMEOUT_S = 30.0


def ferretdb_bin():
    """The FerretDB binary, building it with scripts/ferretdb.sh if needed."""
    env = os.environ.get("RAGD_FERRETDB")
    if env and Path(env).exists():
        return env
    cache = Path(os.environ.get("RAGD_CACHE", Path.home() / ".cache" / "ragd"))
    path = cache / f"ferretdb-{FERRETDB_VERSION}" / "ferretdb"
    if path.exists():
        return str(path)
    p = subprocess.run(["bash", str(REPO / "scripts" / "ferretdb.sh")], capture_output=True,
                       text=True, timeout=1200, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise AssertionError(f"FerretDB is not available and scripts/ferretdb.sh failed:\n"
                             f"{p.stderr[-2000:]}")
    return p.stdout.strip()


def db_name(key):
    """A database name for key (e.g. a ragd's data dir): stable, so a
    restarted ragd on the same data dir finds its data again."""
    return "ragd_" + hashlib.sha1(str(key).encode()).hexdigest()[:16]


class FerretDB:
    """One FerretDB process; start() again after stop() keeps port and data."""

    def __init__(self, workdir, port=None):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc = None
        self.log_path = self.dir / "ferretdb.log"

    @property
    def uri(self):
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self):
        assert self.proc is None
        log = open(self.log_path, "ab")
        cmd = [ferretdb_bin(), "--handler=sqlite", f"--sqlite-url=file:{self.dir}/",
               f"--state-dir={self.dir}", f"--listen-addr=127.0.0.1:{self.port}",
               "--debug-addr=-", "--telemetry=disable", "--log-level=warn"]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                raise AssertionError(f"ferretdb exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"ferretdb not listening on {self.port} in {START_TIMEOUT_S}s")

    def stop(self):
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def ragd_env(self, key, extra=None):
        """Environment settings for a ragd whose store is this server, in a
        database of its own named after key (its data dir, say)."""
        env = {"RAGD_STORE_BACKEND": "mongodb",
               "RAGD_MONGODB_URI": f"mongodb://127.0.0.1:{self.port}/{db_name(key)}"}
        env.update(extra or {})
        return env


def start_ferretdb(workdir):
    """Starts FerretDB in workdir on a free port; returns the running server
    (its .uri is the MongoDB URI). The caller stops it."""
    return FerretDB(workdir).start()
