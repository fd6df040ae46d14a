"""
Real Redis servers for the cache tests, on 127.0.0.1 only: a standalone
`redis-server`, and a 6-node Redis Cluster (3 masters, 3 replicas) made
with `redis-cli --cluster create`, as the design deploys it. Debian's
redis-server and redis-tools are required; they are spoken to with
redis-cli, so the tests need no Python client.
"""
import shutil
import subprocess
import time
from pathlib import Path

from conftest import free_port

START_TIMEOUT_S = 20.0


def _need(tool):
    path = shutil.which(tool)
    if not path:
        raise AssertionError(f"{tool} not found (install Debian's redis-server and redis-tools)")
    return path


def cli(port, *args, check=True, timeout=30, password=None):
    """redis-cli -p PORT ARGS... -> stdout (stripped)."""
    auth = ["-a", password, "--no-auth-warning"] if password else []
    p = subprocess.run([_need("redis-cli"), "-h", "127.0.0.1", "-p", str(port), *auth,
                        *map(str, args)],
                       capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    out = p.stdout.decode(errors="replace").strip()
    if check and p.returncode != 0:
        raise AssertionError(f"redis-cli -p {port} {args}: rc {p.returncode}: {out} "
                             f"{p.stderr.decode(errors='replace')}")
    return out


class RedisServer:
    """One redis-server process; start() again after stop() reuses its port.
    With a password, the server requires it (requirepass) and cli() sends it."""

    def __init__(self, workdir, port=None, extra=(), password=None):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.password = password
        self.extra = list(extra) + (["--requirepass", password] if password else [])
        self.proc = None
        self.log = None

    def start(self):
        assert self.proc is None
        self.log = open(self.dir / f"redis-{self.port}.log", "ab")
        cmd = [_need("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", str(self.dir),
               "--protected-mode", "no", *self.extra]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server on {self.port} exited: "
                                     f"{(self.dir / f'redis-{self.port}.log').read_text()[-2000:]}")
            if cli(self.port, "PING", check=False, password=self.password) == "PONG":
                return self
            time.sleep(0.05)
        raise AssertionError(f"redis-server on {self.port} did not answer PING")

    def stop(self):
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.log.close()

    def kill(self):
        """SIGKILL: a crash, as a failover test wants."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self.log.close()

    def cli(self, *args, check=True):
        return cli(self.port, *args, check=check, password=self.password)


class RedisCluster:
    """Six cluster-enabled servers joined by `redis-cli --cluster create ... --cluster-replicas 1`."""

    def __init__(self, workdir, n=6):
        self.dir = Path(workdir)
        self.nodes = []
        for _ in range(n):
            port = free_port()
            while port + 10000 > 65535 or any(s.port == port for s in self.nodes):
                port = free_port()  # the cluster bus listens on port + 10000
            self.nodes.append(RedisServer(self.dir / str(port), port,
                                          ["--cluster-enabled", "yes",
                                           "--cluster-config-file", f"nodes-{port}.conf",
                                           "--cluster-node-timeout", "1000"]))

    @property
    def seeds(self):
        return ",".join(f"127.0.0.1:{s.port}" for s in self.nodes)

    def start(self):
        for s in self.nodes:
            s.start()
        addrs = [f"127.0.0.1:{s.port}" for s in self.nodes]
        p = subprocess.run([_need("redis-cli"), "--cluster", "create", *addrs,
                            "--cluster-replicas", "1", "--cluster-yes"],
                           capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        out = p.stdout.decode(errors="replace")
        assert p.returncode == 0, out + p.stderr.decode(errors="replace")
        self.wait_ok()
        return self

    def wait_ok(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [s for s in self.nodes if s.proc is not None]
            states = [s.cli("CLUSTER", "INFO", check=False) for s in live]
            if all("cluster_state:ok" in st for st in states) and len(self.masters()) == 3:
                return
            time.sleep(0.2)
        raise AssertionError("cluster never reached cluster_state:ok with 3 masters")

    def nodes_table(self):
        """CLUSTER NODES from a live node, as dicts {id, port, flags, master, slots}."""
        for s in self.nodes:
            if s.proc is None:
                continue
            out = s.cli("CLUSTER", "NODES", check=False)
            if not out:
                continue
            rows = []
            for line in out.splitlines():
                f = line.split()
                rows.append({"id": f[0], "port": int(f[1].split(":")[1].split("@")[0]),
                             "flags": f[2].split(","), "master": f[3], "slots": f[8:]})
            return rows
        return []

    def masters(self):
        """Ports of the live masters that serve slots."""
        return [r["port"] for r in self.nodes_table()
                if "master" in r["flags"] and "fail" not in r["flags"] and r["slots"]]

    def node(self, port):
        return next(s for s in self.nodes if s.port == port)

    def stop(self):
        for s in self.nodes:
            s.stop()
