"""
Request limits, each set low through its config key and checked against the
real binary: JSON nesting depth and element counts (bodies, the metadata
query parameter, filters in the query string), request header size (431),
open connections (503 with Retry-After and Connection: close), the deadlines
of searches, ingests and generation (504 deadline_exceeded; a generation cut
at its deadline), and the largest top_k and max_tokens (400 naming the
field). Every refusal is a JSON error, changes nothing, and leaves the server
serving.
"""
import json
import socket
import time
from urllib.parse import quote

import pytest

from conftest import http_request

DOC = "Lighthouses warn ships away from rocky coastlines with rotating lamps."


def assert_error(status, body, want_status, field="__any__", code=None):
    assert status == want_status, (status, body)
    assert isinstance(body, dict) and "error" in body, body
    err = body["error"]
    assert isinstance(err.get("message"), str) and err["message"], err
    if field != "__any__":
        assert err.get("field", err.get("param")) == field, err
    if code is not None:
        assert err["code"] == code, err
    return err


def nested(depth):
    """A filter-like object nested `depth` JSON levels deep (the body adds one)."""
    v = 1
    for _ in range(depth - 1):
        v = {"a": v}
    return v


# -- JSON depth and elements ---------------------------------------------------------

@pytest.fixture(scope="module")
def jsonlim(ragd_module_factory):
    s = ragd_module_factory(extra_args=["--set", "limits.max_json_depth=6",
                                        "--set", "limits.max_json_elements=200",
                                        "--set", "models.generator="])
    s.create_collection("j")
    s.add_doc("j", DOC, "d1", {"k": "v"})
    return s


def test_json_depth_limit(jsonlim):
    # body (1) + filter object (1) + 3 more = 5 levels: inside the limit
    st, body = jsonlim.request("POST", "/v1/collections/j/search",
                               {"query": "ships", "filter": {"k": {"$in": ["v"]}}})
    assert st == 200, body
    st, body = jsonlim.request("POST", "/v1/collections/j/search",
                               {"query": "ships", "filter": nested(7)})
    err = assert_error(st, body, 400, "body", "invalid_argument")
    assert "limits.max_json_depth" in err["message"], err
    # 100k levels: refused before parsing, the server stays up
    raw = b'{"query":"x","filter":' + b"[" * 100000 + b"]" * 100000 + b"}"
    st, body, _ = jsonlim.raw_request("POST", "/v1/collections/j/search", raw)
    assert_error(st, body, 400, "body")
    # OpenAI routes answer in their shape, naming the param
    st, body = jsonlim.request("POST", "/v1/embeddings",
                               {"model": "all-MiniLM-L6-v2", "input": nested(8)})
    assert st == 400 and body["error"]["param"] == "body", body


def test_json_elements_limit(jsonlim):
    st, body = jsonlim.request("POST", "/v1/embeddings",
                               {"model": "all-MiniLM-L6-v2", "input": ["a"] * 100})
    assert st == 200, body
    st, body = jsonlim.request("POST", "/v1/embeddings",
                               {"model": "all-MiniLM-L6-v2", "input": ["a"] * 300})
    assert st == 413 and body["error"]["param"] == "body", body
    assert "limits.max_json_elements" in body["error"]["message"], body
    st, body = jsonlim.request("POST", "/v1/collections/j/documents:batch",
                               {"documents": [{"text": "x", "id": f"b{i}"} for i in range(150)]})
    assert_error(st, body, 413, "body", "too_large")
    st, body = jsonlim.request("GET", "/v1/collections/j/documents/b0")
    assert st == 404, body


def test_json_limits_on_query_string_json(jsonlim):
    meta = quote(json.dumps(nested(8)))
    st, body = jsonlim.request("POST", f"/v1/collections/j/documents?id=raw1&metadata={meta}",
                               DOC, headers={"Content-Type": "text/plain"})
    assert_error(st, body, 400, "metadata")
    st, body = jsonlim.request("GET", "/v1/collections/j/documents/raw1")
    assert st == 404, body
    # a filter in the listing's query string: the filter's own bound (depth 8 filters)
    flt = quote(json.dumps({"$or": [nested(30)]}))
    st, body = jsonlim.request("GET", f"/v1/collections/j/documents?filter={flt}")
    assert_error(st, body, 400, "filter")


# -- header size --------------------------------------------------------------------

def test_header_size_431(ragd_factory):
    s = ragd_factory(extra_args=["--set", "limits.max_header_bytes=4k",
                                 "--set", "models.generator="])
    st, body = s.request("GET", "/health", headers={"X-Fill": "a" * 3000})
    assert st == 200, body
    st, body = s.request("GET", "/health", headers={"X-Fill": "a" * 5000})
    err = assert_error(st, body, 431, "headers", "too_large")
    assert "limits.max_header_bytes" in err["message"], err
    # a long query string counts as well
    st, body = s.request("GET", "/v1/collections?x=" + "b" * 5000)
    assert_error(st, body, 431, "headers")
    # far past the connection's memory: still refused, and the server lives on
    st, _, _ = http_request("127.0.0.1", s.port, "GET", "/health",
                            headers={"X-Fill": "c" * 40000})
    assert st == 431, st
    st, body = s.request("GET", "/health")
    assert st == 200, body


# -- open connections ---------------------------------------------------------------

def test_connection_limit_503(ragd_factory):
    s = ragd_factory(extra_args=["--set", "server.max_connections=2",
                                 "--set", "models.generator="])
    idle = []
    try:
        for _ in range(2):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            idle.append(c)
        time.sleep(0.3)  # let the server accept them
        c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = b""
        while b"\r\n\r\n" not in raw or len(raw.split(b"\r\n\r\n", 1)[1]) < 20:
            chunk = c.recv(65536)
            if not chunk:
                break
            raw += chunk
        c.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        assert lines[0].split()[1] == "503", raw
        headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        assert headers.get("retry-after") == "1", headers
        assert headers.get("connection", "").lower() == "close", headers
        err = json.loads(payload[:int(headers["content-length"])])["error"]
        assert err["code"] == "unavailable" and "server.max_connections" in err["message"], err
    finally:
        for c in idle:
            c.close()
    deadline = time.monotonic() + 10
    while True:  # the idle ones are closed: served again
        st, body = s.request("GET", "/health")
        if st == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert st == 200, body


# -- deadlines ----------------------------------------------------------------------

def test_search_and_ingest_deadlines_504(ragd_factory):
    s = ragd_factory(extra_args=["--set", "limits.search_timeout_ms=1",
                                 "--set", "limits.ingest_timeout_ms=1",
                                 "--set", "models.generator="])
    s.create_collection("t")
    # embedding even one chunk takes longer than 1 ms
    st, body = s.request("POST", "/v1/collections/t/documents", {"id": "d1", "text": DOC})
    err = assert_error(st, body, 504, None, "deadline_exceeded")
    assert "limits.ingest_timeout_ms" in err["message"], err
    st, body = s.request("GET", "/v1/collections/t/documents/d1")
    assert st == 404, body  # nothing stored past the deadline
    assert s.collection("t")["vectors"] == 0
    # embedding the query alone takes longer than 1 ms
    st, body = s.request("POST", "/v1/collections/t/search",
                         {"query": "ships on rocky coasts", "mode": "dense", "cache": False})
    err = assert_error(st, body, 504, None, "deadline_exceeded")
    assert "limits.search_timeout_ms" in err["message"], err


def test_deadlines_off_by_default_values(ragd_factory):
    """The same requests pass under the defaults (10 s search, 300 s ingest)."""
    s = ragd_factory(extra_args=["--set", "models.generator="])
    s.create_collection("t")
    s.add_doc("t", " ".join([DOC] * 3), "d1")
    assert s.search("t", "ships on rocky coasts", mode="dense")


def test_generation_deadline_stops_generation(ragd_factory):
    s = ragd_factory(extra_args=["--set", "rag.timeout_ms=1", "--set", "rag.min_score=-1",
                                 "--set", "models.gen_threads=1", "--set", "models.gen_ctx=1024"])
    s.create_collection("g")
    s.add_doc("g", DOC, "d1")
    st, body = s.request("POST", "/v1/collections/g/query",
                         {"question": "What do lighthouses do? Explain at length.",
                          "max_tokens": 200, "cache": False})
    if st == 200:  # cut after the first token
        assert body["finish_reason"] == "timeout", body
        assert body["usage"]["completion_tokens"] <= 2, body
    else:  # the prompt itself ran past the deadline
        err = assert_error(st, body, 504, None, "deadline_exceeded")
        assert "rag.timeout_ms" in err["message"], err
    st, body = s.request("POST", "/v1/chat/completions",
                         {"model": "SmolLM2-135M-Instruct-Q4_1", "max_tokens": 200,
                          "messages": [{"role": "user", "content": "Count to one hundred."}]})
    if st == 200:
        assert body["choices"][0]["finish_reason"] == "length", body
        assert body["usage"]["completion_tokens"] <= 2, body
    else:
        assert st == 504 and body["error"]["code"] == "deadline_exceeded", body


# -- top_k and max_tokens -------------------------------------------------------------

def test_max_top_k_and_max_tokens_400(ragd_factory):
    s = ragd_factory(extra_args=["--set", "limits.max_top_k=10", "--set", "rag.top_k=5",
                                 "--set", "limits.max_tokens=64", "--set", "rag.max_tokens=32",
                                 "--set", "models.generator="])
    s.create_collection("k")
    s.add_doc("k", DOC, "d1")
    assert len(s.search("k", "ships", top_k=10)) == 1
    st, body = s.request("POST", "/v1/collections/k/search", {"query": "ships", "top_k": 11})
    assert_error(st, body, 400, "top_k", "invalid_argument")
    st, body = s.request("POST", "/v1/collections/k/query", {"question": "ships?", "top_k": 11})
    assert_error(st, body, 400, "top_k")
    st, body = s.request("POST", "/v1/collections/k/query",
                         {"question": "ships?", "max_tokens": 65})
    assert_error(st, body, 400, "max_tokens")
    st, body = s.request("POST", "/v1/chat/completions",
                         {"model": "rag:k", "max_tokens": 65,
                          "messages": [{"role": "user", "content": "hi"}]})
    assert st == 400 and body["error"]["param"] == "max_tokens", body
    assert "limits.max_tokens" in body["error"]["message"], body
    st, body = s.request("POST", "/v1/collections/k/query",
                         {"question": "What warns ships?", "max_tokens": 64, "top_k": 10})
    assert st == 200, body


def test_answer_defaults_over_limits_refused_at_start(tmp_path):
    import subprocess
    from conftest import RAGD_BIN, ragd_env
    p = subprocess.run([RAGD_BIN, "serve", "--check-config", "--data-dir", str(tmp_path),
                        "--set", "limits.max_tokens=16"],
                       capture_output=True, text=True, env=ragd_env(), timeout=60)
    assert p.returncode != 0, p
    assert "rag.max_tokens" in p.stderr + p.stdout, p
