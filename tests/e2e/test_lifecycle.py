"""
Operations: request ids and the access log, graceful shutdown on SIGTERM,
log reopening on SIGHUP, readiness that follows the store, and
`ragd serve --check-config`.
"""
import json
import os
import signal
import threading
import time

import pytest

from conftest import RAGD_MODEL, http_request, run_cli


def request_lines(srv):
    return [line for line in srv.log_lines() if line.get("msg") == "request"]


def test_request_id_echoed_and_logged(ragd):
    status, body, raw = ragd.raw_request("GET", "/health", headers={"X-Request-ID": "abc-123"})
    assert status == 200
    lines = [l for l in request_lines(ragd) if l.get("request_id") == "abc-123"]
    assert lines, request_lines(ragd)[-3:]
    line = lines[-1]
    assert line["method"] == "GET" and line["route"] == "/health" and line["status"] == 200
    assert line["duration_ms"] >= 0


def test_request_id_header_in_responses(ragd):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", ragd.port, timeout=10)
    c.request("GET", "/health", headers={"X-Request-ID": "trace.42"})
    r = c.getresponse()
    r.read()
    assert r.getheader("X-Request-ID") == "trace.42"
    # absent or unusable ids are replaced by a generated one
    c.request("GET", "/nope", headers={"X-Request-ID": "bad id with spaces"})
    r = c.getresponse()
    r.read()
    rid = r.getheader("X-Request-ID")
    assert rid and rid != "bad id with spaces" and len(rid) == 16
    c.close()
    lines = [l for l in request_lines(ragd) if l.get("request_id") == rid]
    assert lines and lines[-1]["status"] == 404 and lines[-1]["route"] == "unmatched"


def test_access_log_can_be_switched_off(ragd_factory):
    srv = ragd_factory(extra_args=["--set", "log.access=false"])
    for _ in range(3):
        srv.request("GET", "/health")
    assert request_lines(srv) == []


def test_sigterm_finishes_in_flight_requests(ragd_factory, topics):
    """A slow ingest in flight when SIGTERM arrives is answered and stored;
    the server then exits 0, and after a restart the document is there."""
    srv = ragd_factory()
    srv.create_collection("drain", chunk_size=64, chunk_overlap=0)
    text = " ".join(d["text"] for d in topics) * 6
    result = {}

    def ingest():
        result["resp"] = http_request("127.0.0.1", srv.port, "POST",
                                      "/v1/collections/drain/documents",
                                      {"id": "big", "text": text}, timeout=120)
        result["done"] = time.monotonic()

    t = threading.Thread(target=ingest)
    t.start()
    time.sleep(0.5)
    signalled = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    t.join(120)
    status, body, _ = result["resp"]
    assert status == 201, body
    assert result["done"] > signalled + 0.2, "the ingest ended before SIGTERM: test proves nothing"
    rc = srv.proc.wait(60)
    assert rc == 0
    log = srv.stderr_text()
    assert "draining" in log
    srv.proc = None
    srv.start()
    st, doc = srv.request("GET", "/v1/collections/drain/documents/big")
    assert st == 200 and doc["chunks"] == body["chunks"]


def test_sigterm_refuses_new_connections(ragd_factory):
    srv = ragd_factory()
    port = srv.port
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(30) == 0
    srv.proc = None
    with pytest.raises(OSError):
        http_request("127.0.0.1", port, "GET", "/health", timeout=2)


def test_sighup_reopens_the_log_file(ragd_factory, tmp_path):
    log = tmp_path / "ragd.log"
    srv = ragd_factory(extra_args=["--set", f"log.file={log}"])
    srv.request("GET", "/health", headers={"X-Request-ID": "before-rotate"})
    rotated = tmp_path / "ragd.log.1"
    os.rename(log, rotated)
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while not log.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert log.exists(), "SIGHUP did not reopen the log file"
    srv.request("GET", "/health", headers={"X-Request-ID": "after-rotate"})
    time.sleep(0.2)
    assert "before-rotate" in rotated.read_text()
    new = log.read_text()
    assert "after-rotate" in new and "before-rotate" not in new
    for line in new.splitlines():
        json.loads(line)


def test_ready_follows_the_store(ragd_factory):
    """A data directory removed under a running server (an unmounted
    volume) turns /ready to 503 with the reason; putting it back turns it
    to 200 again. /health stays 200 throughout."""
    srv = ragd_factory()
    assert srv.request("GET", "/ready")[0] == 200
    moved = srv.data_dir.with_name(srv.data_dir.name + "-gone")
    os.rename(srv.data_dir, moved)
    try:
        status, body = srv.request("GET", "/ready")
        assert status == 503, body
        assert body["status"] == "not_ready" and "gone" in body["reason"], body
        assert srv.request("GET", "/health")[0] == 200
    finally:
        os.rename(moved, srv.data_dir)
    status, body = srv.request("GET", "/ready")
    assert status == 200, body


def test_check_config(tmp_path):
    ok = run_cli("serve", "--check-config", data_dir=tmp_path / "d")
    cfg = json.loads(ok.stdout)
    assert cfg["models"]["embedder"] == RAGD_MODEL
    assert "configuration OK" in ok.stderr
    bad = run_cli("serve", "--check-config", "--port", "70000", data_dir=tmp_path / "d",
                  expect_ok=False)
    assert bad.returncode != 0 and "server.port" in bad.stderr
    missing = run_cli("serve", "--check-config", "--set", "models.embedder=/nonexistent.gguf",
                      data_dir=tmp_path / "d", expect_ok=False)
    assert missing.returncode != 0 and "models.embedder" in missing.stderr
    env = run_cli("serve", "--check-config", "--set", "environment=staging",
                  data_dir=tmp_path / "d", expect_ok=False)
    assert env.returncode != 0 and "environment" in env.stderr
