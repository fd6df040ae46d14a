"""
The cache layer against the real binary: the in-process LRU (the default),
a real standalone redis-server started here, and both as two levels.

- a repeated search is a hit (X-Cache: HIT, the hit counter moves) with the
  same results; a write to the collection makes the next search miss;
  `"cache": false` bypasses; a bad `cache` field is a 400 naming it;
- two ragd instances on one store and one Redis share hits;
- values in Redis are compact (an embedding is 384 float32 = 1536 bytes)
  and carry TTLs;
- Redis stopped: searches go on (200, X-Cache: BYPASS), the bypass and
  error counters move, ragd_cache_up is 0; Redis back on the same port:
  the cache works again by itself;
- ETag / Cache-Control on cacheable GETs, If-None-Match gives 304, and a
  write changes the collection's ETag.
"""
import http.client
import json
import re
import time

import pytest

from conftest import free_port
from redis_servers import RedisServer

DOCS = [
    ("eiffel", "The Eiffel Tower in Paris was finished in 1889 for the World Fair."),
    ("moon", "Apollo 11 landed on the Moon in July 1969; Armstrong walked first."),
    ("python", "Python is a programming language created by Guido van Rossum."),
    ("everest", "Mount Everest is the highest mountain above sea level, in the Himalayas."),
]


def search(srv, coll, query, **kw):
    """(status, body, X-Cache header or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    try:
        conn.request("POST", f"/v1/collections/{coll}/search",
                     body=json.dumps({"query": query, **kw}),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        raw = r.read()
        return r.status, json.loads(raw), r.getheader("X-Cache")
    finally:
        conn.close()


def metric(srv, name, **labels):
    """The value of one sample of /metrics (0 when absent)."""
    status, _, raw = srv.raw_request("GET", "/metrics")
    assert status == 200
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in raw.decode().splitlines():
        m = re.match(r"^([a-z_:]+)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = ",".join(sorted((m.group(2) or "").split(","))) if m.group(2) else ""
        if got == want:
            return float(m.group(3))
    return 0.0


def fill(srv, coll):
    srv.create_collection(coll)
    for doc_id, text in DOCS:
        srv.add_doc(coll, text, doc_id=doc_id)


def ids(body):
    return [(h["document_id"], h["chunk_id"]) for h in body["results"]]


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    srv = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield srv
    srv.stop()


# A generous timeout: on a loaded test machine a 100 ms one would make a
# slow reply a bypass and the hit/miss assertions flaky.
TIMEOUT = ["--set", "cache.redis.timeout_ms=2000"]


def redis_args(redis, backend="redis"):
    return ["--set", f"cache.backend={backend}",
            "--set", f"cache.redis.url=redis://127.0.0.1:{redis.port}", *TIMEOUT]


# -- the default in-process LRU ------------------------------------------------

def test_lru_hit_miss_and_writes(ragd_factory):
    srv = ragd_factory()
    fill(srv, "lru")
    hits0 = metric(srv, "ragd_cache_hits_total", cache="search")
    misses0 = metric(srv, "ragd_cache_misses_total", cache="search")

    st, first, xc = search(srv, "lru", "when was the tower in paris built", top_k=2)
    assert (st, xc) == (200, "MISS")
    st, second, xc = search(srv, "lru", "when was the tower in paris built", top_k=2)
    assert (st, xc) == (200, "HIT")
    assert second["results"] == first["results"]
    assert second["timings"]["embed_ms"] == 0
    assert metric(srv, "ragd_cache_hits_total", cache="search") == hits0 + 1
    assert metric(srv, "ragd_cache_misses_total", cache="search") == misses0 + 1

    # Every query field is in the key: another top_k, mode or filter misses.
    assert search(srv, "lru", "when was the tower in paris built", top_k=3)[2] == "MISS"
    assert search(srv, "lru", "when was the tower in paris built", top_k=2,
                  mode="lexical")[2] == "MISS"
    assert search(srv, "lru", "when was the tower in paris built", top_k=2,
                  mode="hybrid", alpha=0.3)[2] == "MISS"
    assert search(srv, "lru", "when was the tower in paris built", top_k=2,
                  mode="hybrid", alpha=0.3)[2] == "HIT"
    assert search(srv, "lru", "when was the tower in paris built", top_k=2,
                  filter={"lang": "en"})[2] == "MISS"
    assert search(srv, "lru", "when was the tower in paris built", top_k=2,
                  filter={"lang": "en"})[2] == "HIT"
    # The embedding is cached by normalised text: other spacing, same vector.
    emb_hits = metric(srv, "ragd_cache_hits_total", cache="embedding")
    st, spaced, xc = search(srv, "lru", "  when was the tower   in paris built ", top_k=2)
    assert (st, xc) == (200, "MISS")
    assert ids(spaced) == ids(first)
    assert metric(srv, "ragd_cache_hits_total", cache="embedding") == emb_hits + 1

    # A write makes the next search miss, and its result has the new document.
    srv.add_doc("lru", "The tower in Paris was built by Gustave Eiffel's company.",
                doc_id="builder")
    st, after, xc = search(srv, "lru", "when was the tower in paris built", top_k=2)
    assert (st, xc) == (200, "MISS")
    assert "builder" in [h["document_id"] for h in after["results"]]
    assert search(srv, "lru", "when was the tower in paris built", top_k=2)[2] == "HIT"
    # So does a delete.
    st, _ = srv.request("DELETE", "/v1/collections/lru/documents/builder")
    assert st == 200
    st, gone, xc = search(srv, "lru", "when was the tower in paris built", top_k=2)
    assert (st, xc) == (200, "MISS")
    assert "builder" not in [h["document_id"] for h in gone["results"]]
    assert ids(gone) == ids(first)

    # cache: false bypasses and is counted; the answer is the same.
    bypass0 = metric(srv, "ragd_cache_bypass_total", cache="search", reason="request")
    st, body, xc = search(srv, "lru", "when was the tower in paris built", top_k=2, cache=False)
    assert (st, xc) == (200, "BYPASS")
    assert ids(body) == ids(first)
    assert metric(srv, "ragd_cache_bypass_total", cache="search",
                  reason="request") == bypass0 + 1
    assert search(srv, "lru", "when was the tower in paris built", top_k=2,
                  cache=True)[2] == "HIT"

    assert metric(srv, "ragd_cache_entries", backend="lru") > 0
    assert metric(srv, "ragd_cache_memory_bytes", backend="lru") > 0


def test_bad_cache_field(ragd):
    ragd.create_collection("badcache")
    for bad in ("no", 0, {"a": 1}):
        st, body = ragd.request("POST", "/v1/collections/badcache/search",
                                {"query": "x", "cache": bad})
        assert st == 400, body
        assert body["error"]["field"] == "cache"


def test_backend_none(ragd_factory):
    srv = ragd_factory(extra_args=["--set", "cache.backend=none"])
    fill(srv, "none")
    for _ in range(2):
        st, _, xc = search(srv, "none", "highest mountain")
        assert (st, xc) == (200, None)
    assert metric(srv, "ragd_cache_hits_total", cache="search") == 0


def test_bad_backend_config(ragd_cli, tmp_path):
    res = ragd_cli("serve", "--set", "cache.backend=memcached", "--check-config",
                   data_dir=tmp_path, expect_ok=False)
    assert res.returncode != 0
    assert "cache.backend" in res.stderr
    res = ragd_cli("serve", "--port", str(free_port()), "--set", "cache.backend=redis", "--set",
                   "cache.redis.url=redis://127.0.0.1:notaport", data_dir=tmp_path,
                   expect_ok=False, timeout=60)
    assert res.returncode != 0
    assert "cache.redis.url" in res.stderr
    # Credentials that are not [user]:password: refused, and not echoed.
    res = ragd_cli("serve", "--port", str(free_port()), "--set", "cache.backend=redis", "--set",
                   "cache.redis.url=redis://hunter2@127.0.0.1:6379", data_dir=tmp_path,
                   expect_ok=False, timeout=60)
    assert res.returncode != 0
    assert "cache.redis.url" in res.stderr and "[user]:password" in res.stderr
    assert "hunter2" not in res.stderr + res.stdout


# -- HTTP caching headers -------------------------------------------------------

def get(srv, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        conn.close()


def test_etag_and_cache_control(ragd_factory):
    srv = ragd_factory(extra_args=["--set", "cache.http_max_age_s=5"])
    fill(srv, "etag")
    st, h, body = get(srv, "/v1/collections/etag")
    assert st == 200
    tag = h["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', tag)
    assert h["cache-control"] == "public, max-age=5, must-revalidate"
    st, h2, body2 = get(srv, "/v1/collections/etag", {"If-None-Match": tag})
    assert st == 304 and body2 == b""
    assert h2["etag"] == tag
    st, _, _ = get(srv, "/v1/collections/etag", {"If-None-Match": '"other", ' + tag})
    assert st == 304
    st, _, _ = get(srv, "/v1/collections/etag", {"If-None-Match": '"0000"'})
    assert st == 200
    # A write changes the collection, so its ETag.
    srv.add_doc("etag", "Another document.", doc_id="another")
    st, h3, _ = get(srv, "/v1/collections/etag", {"If-None-Match": tag})
    assert st == 200 and h3["etag"] != tag

    st, h, _ = get(srv, "/v1/collections/etag/documents/moon")
    assert st == 200 and "etag" in h and "cache-control" in h
    assert get(srv, "/v1/collections/etag/documents/moon",
               {"If-None-Match": h["etag"]})[0] == 304
    st, h, _ = get(srv, "/openapi.json")
    assert st == 200 and h["cache-control"] == "public, max-age=3600"
    assert get(srv, "/openapi.json", {"If-None-Match": h["etag"]})[0] == 304
    # Errors and writes are not cacheable.
    st, h, _ = get(srv, "/v1/collections/nope")
    assert st == 404 and "etag" not in h
    st, h, _ = get(srv, "/v1/collections")
    assert st == 200 and "etag" not in h
    # 304s are counted under their own status.
    assert metric(srv, "ragd_http_requests_total", method="GET",
                  route="/v1/collections/{name}", status="304") >= 2


# -- standalone Redis -----------------------------------------------------------

def test_redis_shared_by_two_instances(ragd_factory, redis_server, tmp_path):
    data = tmp_path / "shared"
    a = ragd_factory(extra_args=redis_args(redis_server), data_dir=data)
    b = ragd_factory(extra_args=redis_args(redis_server), data_dir=data)
    fill(a, "shared")
    # b follows the store's change log; wait until its index has every change.
    deadline = time.monotonic() + 30
    while b.collection("shared")["seq"] < a.collection("shared")["seq"] or \
            b.collection("shared")["vectors"] < len(DOCS):
        assert time.monotonic() < deadline, "instance b never caught up"
        time.sleep(0.1)
    time.sleep(1.0)  # the follower polls every 500 ms: let it settle past the last change

    st, from_a, xc = search(a, "shared", "who walked on the moon first", top_k=3)
    assert (st, xc) == (200, "MISS")
    st, from_b, xc = search(b, "shared", "who walked on the moon first", top_k=3)
    assert (st, xc) == (200, "HIT")
    assert from_b["results"] == from_a["results"]
    assert metric(b, "ragd_cache_hits_total", cache="search") >= 1
    assert metric(b, "ragd_cache_up", backend="redis") == 1

    # Values are compact and expire: one search key, one 384-float embedding.
    keys = redis_server.cli("--scan", "--pattern", "ragd:v1:e:*").split()
    assert keys
    assert int(redis_server.cli("STRLEN", keys[0])) == 384 * 4
    assert 0 < int(redis_server.cli("TTL", keys[0])) <= 86400
    skeys = redis_server.cli("--scan", "--pattern", "ragd:v1:s:*").split()
    assert skeys
    assert 0 < int(redis_server.cli("TTL", skeys[0])) <= 3600

    # A write through b makes a's next search miss, and shows the new document.
    b.add_doc("shared", "Buzz Aldrin walked on the Moon second, after Armstrong.",
              doc_id="aldrin")
    deadline = time.monotonic() + 30
    while a.collection("shared")["vectors"] < len(DOCS) + 1:
        assert time.monotonic() < deadline, "instance a never saw the write"
        time.sleep(0.1)
    st, after, xc = search(a, "shared", "who walked on the moon first", top_k=3)
    assert (st, xc) == (200, "MISS")
    assert "aldrin" in [h["document_id"] for h in after["results"]]


def test_redis_down_and_back(ragd_factory, tmp_path):
    redis = RedisServer(tmp_path / "redis").start()
    try:
        srv = ragd_factory(extra_args=redis_args(redis))
        fill(srv, "down")
        assert search(srv, "down", "programming language")[2] == "MISS"
        assert search(srv, "down", "programming language")[2] == "HIT"

        redis.stop()
        bypass0 = metric(srv, "ragd_cache_bypass_total", cache="search", reason="unavailable")
        for i in range(5):
            st, body, xc = search(srv, "down", f"programming language {i}")
            assert (st, xc) == (200, "BYPASS"), body
            assert body["results"]
        assert metric(srv, "ragd_cache_bypass_total", cache="search",
                      reason="unavailable") >= bypass0 + 5
        assert metric(srv, "ragd_cache_errors_total", backend="redis") >= 1
        assert metric(srv, "ragd_cache_up", backend="redis") == 0
        assert any("unavailable" in str(line.get("msg", "")) for line in srv.log_lines())

        redis.start()  # same port, empty
        deadline = time.monotonic() + 10
        while search(srv, "down", "programming language")[2] != "HIT":
            assert time.monotonic() < deadline, "the cache never came back"
            time.sleep(0.2)
        assert metric(srv, "ragd_cache_up", backend="redis") == 1
    finally:
        redis.stop()


def test_redis_with_password(ragd_factory, ragd_cli, tmp_path):
    """requirepass on the server; the password, percent-escaped in the URL,
    reaches the cache and the replication nudges, and never a log line or
    the printed configuration. A wrong one is a bypass and a clear log line."""
    password = "pa:ss@w/rd"
    redis = RedisServer(tmp_path / "redis", password=password).start()
    url = f"redis://:pa%3Ass%40w%2Frd@127.0.0.1:{redis.port}"
    args = ["--set", "cache.backend=redis", "--set", f"cache.redis.url={url}",
            "--set", f"replication.redis_url={url}", *TIMEOUT]
    try:
        srv = ragd_factory(extra_args=args)
        fill(srv, "pw")
        assert search(srv, "pw", "programming language")[2] == "MISS"
        assert search(srv, "pw", "programming language")[2] == "HIT"
        assert metric(srv, "ragd_cache_up", backend="redis") == 1
        assert redis.cli("--scan", "--pattern", "ragd:v1:s:*").split()
        assert int(redis.cli("PUBSUB", "NUMSUB", "ragd:changes").split()[-1]) >= 1
        assert password not in srv.stderr_text() and "pa%3Ass" not in srv.stderr_text()

        res = ragd_cli("serve", "--check-config", *args, data_dir=tmp_path / "check")
        cfg = json.loads(res.stdout)
        assert cfg["cache"]["redis.url"] == "(set with credentials, not shown)"
        assert cfg["replication"]["redis_url"] == "(set with credentials, not shown)"
        assert "pa%3Ass" not in res.stdout + res.stderr

        bad = f"redis://:nope@127.0.0.1:{redis.port}"
        wrong = ragd_factory(extra_args=["--set", "cache.backend=redis", "--set",
                                         f"cache.redis.url={bad}", "--set",
                                         f"replication.redis_url={bad}"])
        answers_without_cache(wrong, "pw2")
        assert metric(wrong, "ragd_cache_up", backend="redis") == 0
        msgs = [str(line.get("msg", "")) for line in wrong.log_lines()]
        assert any("unavailable (AUTH refused" in m for m in msgs), msgs
        assert any("cannot subscribe" in m and "AUTH refused" in m for m in msgs), msgs
        assert "nope" not in wrong.stderr_text()
    finally:
        redis.stop()


def answers_without_cache(srv, coll):
    fill(srv, coll)
    st, body, xc = search(srv, coll, "highest mountain")
    assert (st, xc) == (200, "BYPASS")
    assert body["results"][0]["document_id"] == "everest"


def test_redis_unreachable_at_start(ragd_factory):
    # Nothing listens there: ragd starts and answers, without the cache.
    answers_without_cache(ragd_factory(extra_args=["--set", "cache.backend=redis", "--set",
                                                   f"cache.redis.url=127.0.0.1:{free_port()}"]),
                          "nocache")


def test_two_level(ragd_factory, redis_server, tmp_path):
    data = tmp_path / "two"
    a = ragd_factory(extra_args=redis_args(redis_server, "two-level"), data_dir=data)
    fill(a, "two")
    assert search(a, "two", "highest mountain in the world")[2] == "MISS"
    redis_server.cli("FLUSHALL")
    # The LRU in front answers without Redis.
    assert search(a, "two", "highest mountain in the world")[2] == "HIT"
    assert search(a, "two", "who created python")[2] == "MISS"
    # A second instance finds it in Redis, then in its own LRU.
    b = ragd_factory(extra_args=redis_args(redis_server, "two-level"), data_dir=data)
    assert search(b, "two", "who created python")[2] == "HIT"
    redis_server.cli("FLUSHALL")
    assert search(b, "two", "who created python")[2] == "HIT"
    assert metric(b, "ragd_cache_entries", backend="lru") >= 1
