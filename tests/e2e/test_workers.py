"""
Scale-out on one machine and between instances on one store:

- server.workers: N processes on one port (SO_REUSEPORT) under a
  supervisor; both serve, a killed worker is restarted, a write made
  through one is searchable through the other at once (the workers'
  shared nudge), and SIGTERM stops them all cleanly.
- server.max_connections and the keep-alive timeout are honoured.
- Replicas: an instance started while another writes is caught up when
  /ready turns 200; the change-log lag is exported; with
  replication.redis_url a write on one instance reaches the other's index
  long before its (here very slow) poll would.

Timings are printed, never asserted beyond generous bounds: figures go in
bench/RESULTS.md.
"""
import http.client
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest

from conftest import RAGD_BIN, free_port, http_request, ragd_env, sanitizer_findings
from redis_servers import RedisServer

LIGHT = ["--set", "models.generator="]  # workers load no LLM: they need no answers here
SLOW_POLL = ["--set", "replication.poll_ms=20000", "--set", "replication.max_backoff_ms=20000"]
VISIBLE_WITHIN_S = 5.0  # generous: without a nudge these tests would wait the 20 s poll


def children(pid):
    """The worker pids of a supervisor."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return sorted(int(p) for p in f.read().split())
    except OSError:
        return []


class Conn:
    """A keep-alive connection: every request on it reaches the same worker."""

    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method, path, body=None):
        import json
        data = json.dumps(body).encode() if body is not None else None
        self.c.request(method, path, body=data,
                       headers={"Content-Type": "application/json"} if data else {})
        r = self.c.getresponse()
        raw = r.read()
        return r.status, (json.loads(raw) if raw and raw[:1] in b"{[" else raw)

    def worker(self):
        """(index, starts) of the worker this connection is on."""
        status, text = self.request("GET", "/metrics")
        assert status == 200
        m = re.search(rb'^ragd_worker_starts\{worker="(\d+)"\} (\d+)', text, re.M)
        assert m, "no ragd_worker_starts in /metrics"
        return int(m.group(1)), int(m.group(2))

    def close(self):
        self.c.close()


def conns_by_worker(port, want, timeout=60):
    """Opens connections until one reaches each worker in want: {index: Conn}.
    (A worker listens once it has loaded, so the first may serve alone a while.)"""
    found = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = Conn(port)
        idx, _starts = c.worker()
        if idx in want and idx not in found:
            found[idx] = c
        else:
            c.close()
        if len(found) == len(want):
            return found
    raise AssertionError(f"connections reached only workers {sorted(found)} of {sorted(want)}")


def wait_found(conn, coll, query, doc_id, timeout):
    """Seconds until a lexical search on conn returns doc_id."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        status, body = conn.request("POST", f"/v1/collections/{coll}/search",
                                    {"query": query, "top_k": 3, "mode": "lexical"})
        assert status == 200, body
        if any(r["document_id"] == doc_id for r in body["results"]):
            return time.monotonic() - t0
        time.sleep(0.005)
    raise AssertionError(f"{doc_id} not searchable within {timeout}s")


def test_workers_serve_restart_and_share_writes(ragd_factory):
    srv = ragd_factory(extra_args=[*LIGHT, *SLOW_POLL, "--set", "server.workers=2"])
    pids = children(srv.proc.pid)
    assert len(pids) == 2, pids
    conns = conns_by_worker(srv.port, {0, 1})

    status, body = conns[0].request("POST", "/v1/collections", {"name": "wk"})
    assert status == 201, body
    lat = []
    for i in range(10):
        word = f"zebra{uuid.uuid4().hex[:8]}"
        status, body = conns[0].request("POST", "/v1/collections/wk/documents",
                                        {"id": f"d{i}", "text": f"The {word} grazes by the river."})
        assert status in (200, 201), body
        lat.append(wait_found(conns[1], "wk", word, f"d{i}", VISIBLE_WITHIN_S))
    lat.sort()
    print(f"\nworker-to-worker visibility over 10 writes: median {lat[5] * 1000:.1f} ms, "
          f"max {lat[-1] * 1000:.1f} ms (poll 20 s: the nudge did it)")

    # SIGKILL worker 1: the supervisor starts another, which loads, catches
    # up and serves; worker 0 serves throughout.
    victim = pids[1] if conns[1].worker()[0] == 1 else pids[0]
    for c in conns.values():
        c.close()
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = children(srv.proc.pid)
        if len(now) == 2 and victim not in now:
            break
        try:
            status, _, _ = http_request("127.0.0.1", srv.port, "GET", "/health", timeout=5)
            assert status == 200
        except ConnectionResetError:
            pass  # queued on the killed worker's socket when it died
        time.sleep(0.05)
    else:
        raise AssertionError("the killed worker was not restarted")
    restarted = None
    deadline = time.monotonic() + 60
    while restarted is None and time.monotonic() < deadline:
        try:
            c = Conn(srv.port)
            idx, starts = c.worker()
        except OSError:
            time.sleep(0.05)
            continue
        if starts == 2:
            restarted = c
        else:
            c.close()
    assert restarted is not None, "no connection reached the restarted worker"
    assert wait_found(restarted, "wk", "grazes river", "d0", 1.0) < 1.0
    status, body = restarted.request("GET", "/v1/collections/wk")
    assert status == 200 and body["vectors"] >= 10, body
    restarted.close()
    assert any("restarts" in ln.get("msg", "") or "killed by signal 9" in ln.get("msg", "")
               for ln in srv.log_lines())
    # SIGTERM to the supervisor: the workers drain and everything exits 0.
    workers = children(srv.proc.pid)
    assert srv.stop() == 0
    assert not any(os.path.exists(f"/proc/{p}") for p in workers), workers


def test_workers_fail_fast_on_a_bad_start(tmp_path):
    # Every worker would fail the same way: the supervisor exits 1 instead of
    # restarting them forever.
    p = subprocess.run([RAGD_BIN, "serve", "--data-dir", str(tmp_path / "d"), "--port",
                        str(free_port()), "--model", str(tmp_path / "missing.gguf"),
                        "--set", "server.workers=2", *LIGHT],
                       capture_output=True, timeout=60, env=ragd_env())
    text = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode == 1, text
    assert "failed at its first start" in text
    assert not sanitizer_findings(text), text


def test_single_server_refuses_a_port_in_use(ragd_factory, tmp_path):
    # SO_REUSEPORT is for workers only: a second server on a taken port fails.
    srv = ragd_factory(extra_args=LIGHT)
    p = subprocess.run([RAGD_BIN, "serve", "--data-dir", str(tmp_path / "d"), "--port",
                        str(srv.port), "--host", "127.0.0.1", *LIGHT],
                       capture_output=True, timeout=60, env=ragd_env())
    text = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode == 1 and "cannot listen" in text, text


def idle_socket(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


def closed_by_server(s, within):
    """True when the server closes s (EOF or reset) within `within` seconds."""
    s.settimeout(within)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_max_connections_and_keep_alive_timeout(ragd_factory):
    srv = ragd_factory(extra_args=[*LIGHT, "--set", "server.max_connections=4",
                                   "--set", "server.threads=1",
                                   "--set", "server.keep_alive_timeout_s=2"])
    # At the limit a request on one more connection is answered 503 with
    # Retry-After and the connection closed (limits; test_limits.py has the
    # details); once a slot is free a new connection is served.
    held = [idle_socket(srv.port) for _ in range(4)]
    time.sleep(0.3)
    extra = idle_socket(srv.port)
    extra.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    extra.settimeout(5)
    assert extra.recv(64).startswith(b"HTTP/1.1 503"), "over the limit, not refused"
    extra.close()
    held.pop().close()
    time.sleep(0.3)
    again = idle_socket(srv.port)
    again.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    again.settimeout(5)
    assert again.recv(64).startswith(b"HTTP/1.1 200"), "not served once a slot was free"
    again.close()
    for s in held:
        s.close()

    # Keep-alive: a second request on the same connection within the timeout
    # is served on it; after the timeout the server has closed it.
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    c.request("GET", "/health")
    r = c.getresponse()
    r.read()
    assert r.status == 200 and r.getheader("Connection", "").lower() != "close"
    sock = c.sock
    time.sleep(0.5)
    c.request("GET", "/health")
    r = c.getresponse()
    r.read()
    assert r.status == 200 and c.sock is sock, "keep-alive connection not reused"
    t0 = time.monotonic()
    assert closed_by_server(sock, 6), "idle connection outlived keep_alive_timeout_s=2"
    waited = time.monotonic() - t0
    assert 1.0 <= waited <= 5.0, waited
    c.close()


@pytest.fixture
def redis(tmp_path):
    r = RedisServer(tmp_path / "redis").start()
    yield r
    r.stop()


def test_replica_catches_up_before_ready(ragd_factory, tmp_path):
    data = tmp_path / "shared"
    a = ragd_factory(extra_args=LIGHT, data_dir=data)
    a.create_collection("rep")
    acked = []  # (doc id, seq) in acknowledgement order
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            body = a.add_doc("rep", f"Document tok{i:05d}q about replicas and logs.",
                             doc_id=f"r{i}")
            acked.append((f"r{i}", body["seq"]))
            i += 1

    for i in range(40):
        acked.append((f"p{i}", a.add_doc("rep", f"Preloaded note {i}.", doc_id=f"p{i}")["seq"]))
    t = threading.Thread(target=writer)
    t.start()
    try:
        time.sleep(0.5)
        before = list(acked)  # all committed before B even started
        b = ragd_factory(extra_args=[*LIGHT, *SLOW_POLL], data_dir=data)
        info = b.collection("rep")  # first request after /ready turned 200
    finally:
        stop.set()
        t.join()
    assert info["vectors"] >= len(before), (info, len(before))
    last = before[-1][0]
    if last.startswith("r"):
        hits = b.search("rep", f"tok{int(last[1:]):05d}q", top_k=1, mode="lexical")
        assert hits and hits[0]["document_id"] == last, hits
    # The lag is exported: sequence and seconds, per collection.
    status, _, text = b.raw_request("GET", "/metrics")
    assert status == 200
    assert re.search(rb'^ragd_changelog_lag_seq\{collection="rep"\} \d+$', text, re.M)
    assert re.search(rb'^ragd_changelog_lag_seconds\{collection="rep"\} [\d.]+$', text, re.M)


def test_redis_nudge_between_instances(ragd_factory, redis, tmp_path):
    data = tmp_path / "shared"
    nudge = ["--set", f"replication.redis_url=redis://127.0.0.1:{redis.port}"]
    a = ragd_factory(extra_args=[*LIGHT, *SLOW_POLL, *nudge], data_dir=data)
    b = ragd_factory(extra_args=[*LIGHT, *SLOW_POLL, *nudge], data_dir=data)
    a.create_collection("nudged")
    cb = Conn(b.port)
    lat = []
    for i in range(20):
        word = f"okapi{uuid.uuid4().hex[:8]}"
        a.add_doc("nudged", f"An {word} walks through the forest.", doc_id=f"n{i}")
        lat.append(wait_found(cb, "nudged", word, f"n{i}", VISIBLE_WITHIN_S))
    cb.close()
    lat.sort()
    print(f"\ncross-instance visibility with the Redis nudge over 20 writes: "
          f"median {lat[10] * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms (poll 20 s)")


def test_idle_follower_backs_off_but_stays_bounded(ragd_factory, tmp_path):
    # No nudge at all: B's follower, idle long enough to have backed off to
    # max_backoff_ms, still finds A's write within about that long.
    data = tmp_path / "shared"
    poll = ["--set", "replication.poll_ms=50", "--set", "replication.max_backoff_ms=400"]
    a = ragd_factory(extra_args=[*LIGHT, *poll], data_dir=data)
    b = ragd_factory(extra_args=[*LIGHT, *poll], data_dir=data)
    a.create_collection("idle")
    cb = Conn(b.port)
    lat = []
    for i in range(5):
        time.sleep(1.5)  # idle: 50, 100, 200, 400, 400 ms...
        word = f"tapir{uuid.uuid4().hex[:8]}"
        a.add_doc("idle", f"A {word} sleeps in the shade.", doc_id=f"i{i}")
        lat.append(wait_found(cb, "idle", word, f"i{i}", VISIBLE_WITHIN_S))
    cb.close()
    print(f"\nvisibility by polling alone (max_backoff_ms 400): "
          f"{', '.join(f'{x * 1000:.0f}' for x in lat)} ms")
    assert max(lat) < 2.0, lat
