"""
What only the MongoDB store does: several ragd instances on one database
(each follows the others' writes through the change log), an index
rebuilt from MongoDB on a fresh data dir, readiness that follows the
server, the CLI on the same database, and the store.* settings
(credentials from a file, bad values refused at start-up).
"""
import json
import time

import pytest

from conftest import RagdServer, run_cli
from mongo_fixtures import *  # noqa: F401,F403
from ferretdb_server import db_name

FOLLOW_TIMEOUT_S = 20.0


def hit_ids(srv, coll, query, mode="dense", top_k=5, flt=None):
    body = {"query": query, "top_k": top_k, "mode": mode}
    if flt:
        body["filter"] = flt
    status, res = srv.request("POST", f"/v1/collections/{coll}/search", body)
    assert status == 200, res
    return [h["document_id"] for h in res["results"]]


def n_docs(srv, coll):
    status, page = srv.request("GET", f"/v1/collections/{coll}/documents?limit=1000")
    assert status == 200, page
    return len(page["documents"])


def wait_for(fn, what, timeout=FOLLOW_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def shared_server(factory_tmp, ferretdb, key, extra_args=()):
    """A ragd on its own data dir whose store is the database named by key."""
    base = factory_tmp()
    srv = RagdServer(base / "data", base, ["--set", "index.follow_interval_ms=100",
                                           *extra_args], ferretdb.ragd_env(key))
    return srv.start()


@pytest.fixture
def pair(tmp_path_factory, ferretdb):
    """Two instances on one MongoDB database, each with its own data dir."""
    servers = [shared_server(lambda: tmp_path_factory.mktemp("ragd"), ferretdb, "pair")
               for _ in range(2)]
    yield servers
    problems = []
    for srv in servers:
        srv.stop(check=False)
        problems += srv.problems
    assert not problems, problems


def test_instances_follow_each_other(pair):
    a, b = pair
    a.create_collection("shared")
    a.add_doc("shared", "Volcanoes erupt when magma rises through the crust.", "volcano",
              {"topic": "geo"})
    a.add_doc("shared", "Sourdough bread rises because wild yeast ferments the dough.", "bread",
              {"topic": "food"})
    # b learns of the collection and its documents from the store alone.
    wait_for(lambda: b.request("GET", "/v1/collections/shared")[0] == 200, "b sees the collection")
    wait_for(lambda: hit_ids(b, "shared", "lava and magma")[:1] == ["volcano"],
             "b finds a's document")
    wait_for(lambda: hit_ids(b, "shared", "yeast", mode="lexical") == ["bread"],
             "b finds a's second document")
    assert hit_ids(b, "shared", "anything", flt={"topic": "food"}) == ["bread"]
    # b replaces and deletes; a follows.
    b.add_doc("shared", "Chess openings such as the Sicilian defence.", "volcano")
    assert b.request("DELETE", "/v1/collections/shared/documents/bread")[0] == 200
    wait_for(lambda: hit_ids(a, "shared", "yeast", mode="lexical") == [], "a drops bread")
    wait_for(lambda: hit_ids(a, "shared", "chess opening")[:1] == ["volcano"],
             "a sees the replacement")
    assert hit_ids(a, "shared", "magma", mode="lexical") == []
    # Both agree on the collection's state.
    assert n_docs(a, "shared") == n_docs(b, "shared") == 1
    wait_for(lambda: a.collection("shared")["vectors"] == b.collection("shared")["vectors"] == 1,
             "both indexes hold the one chunk left")


def test_fresh_instance_rebuilds_from_the_store(tmp_path_factory, ferretdb):
    """A new instance on an empty data dir (no snapshot) builds its index
    from MongoDB and answers like the one that wrote it."""
    mk = lambda: tmp_path_factory.mktemp("ragd")  # noqa: E731
    first = shared_server(mk, ferretdb, "rebuild")
    first.create_collection("kb")
    for i in range(20):
        first.add_doc("kb", f"Note {i}: the lighthouse keeper counted {i} ships at dawn.",
                      f"n{i}", {"i": i})
    first.add_doc("kb", "Note 3 replaced: tomatoes grow in the greenhouse.", "n3", {"i": 3})
    want = [hit_ids(first, "kb", q, mode=m) for q in ("ships at dawn", "tomatoes")
            for m in ("dense", "lexical", "hybrid")]
    first.stop()
    second = shared_server(mk, ferretdb, "rebuild")
    try:
        got = [hit_ids(second, "kb", q, mode=m) for q in ("ships at dawn", "tomatoes")
               for m in ("dense", "lexical", "hybrid")]
        assert got == want
        assert n_docs(second, "kb") == 20
        assert second.collection("kb")["vectors"] == 20
    finally:
        second.stop()


def test_ready_follows_the_server(ragd_factory, ferretdb):
    srv = ragd_factory()
    assert srv.request("GET", "/ready")[0] == 200
    ferretdb.stop()
    try:
        status, body = srv.request("GET", "/ready")
        assert status == 503 and body["status"] == "not_ready", body
        assert srv.request("GET", "/health")[0] == 200
    finally:
        ferretdb.start()
    wait_for(lambda: srv.request("GET", "/ready")[0] == 200, "ready again")
    srv.create_collection("after")
    assert srv.add_doc("after", "The store is back.", "x")["chunks"] == 1


def test_cli_shares_the_database(ragd_factory, ferretdb, tmp_path):
    """`ragd ingest` and `ragd search` on the server's database: what the
    CLI writes, the server serves, and the other way round."""
    srv = ragd_factory()
    srv.create_collection("cli")
    srv.add_doc("cli", "Espresso is brewed by forcing hot water through coffee.", "coffee")
    (tmp_path / "tea.md").write_text("# Tea\n\nGreen tea leaves are steamed, not fermented.\n")
    env = ferretdb.ragd_env(srv.data_dir)
    run_cli("ingest", "--collection", "cli", str(tmp_path / "tea.md"), data_dir=tmp_path / "d",
            env=env)
    res = run_cli("search", "--collection", "cli", "--top-k", "2", "--json", "steamed leaves",
                  data_dir=tmp_path / "d", env=env)
    assert "tea.md" in res.stdout or "Green tea" in res.stdout, res
    assert n_docs(srv, "cli") == 2
    wait_for(lambda: srv.collection("cli")["vectors"] >= 2, "server indexes the CLI's document")


def test_uri_from_a_secret_file(ragd_factory, ferretdb, tmp_path):
    secret = tmp_path / "mongodb-uri"
    secret.write_text(f"mongodb://127.0.0.1:{ferretdb.port}/{db_name('secret')}\n")
    srv = ragd_factory(env={"RAGD_MONGODB_URI": "", "RAGD_STORE_MONGODB_URI_FILE": str(secret)})
    srv.create_collection("s")
    assert srv.add_doc("s", "Kept in the database the file names.", "d")["chunks"] == 1


@pytest.mark.parametrize("settings,field", [
    ({"RAGD_STORE_BACKEND": "cassandra"}, "store.backend"),
    ({"RAGD_STORE_BACKEND": "mongodb", "RAGD_MONGODB_URI": ""}, "store.mongodb.uri"),
    ({"RAGD_STORE_MONGODB_READ_PREFERENCE": "fastest"}, "store.mongodb.read_preference"),
    ({"RAGD_STORE_MONGODB_MAX_POOL_SIZE": "0"}, "store.mongodb.max_pool_size"),
    ({"RAGD_STORE_MONGODB_HEARTBEAT_FREQUENCY_MS": "10"}, "store.mongodb.heartbeat_frequency_ms"),
])
def test_bad_settings_refused(tmp_path, settings, field):
    res = run_cli("serve", "--check-config", data_dir=tmp_path / "d", env=settings,
                  expect_ok=False)
    assert res.returncode != 0 and field in res.stderr, res


def test_settings_dump_hides_the_uri(tmp_path):
    res = run_cli("serve", "--check-config", data_dir=tmp_path / "d",
                  env={"RAGD_STORE_BACKEND": "mongodb",
                       "RAGD_MONGODB_URI": "mongodb://ragd:hunter2@127.0.0.1:1/x",
                       "RAGD_STORE_MONGODB_READ_PREFERENCE": "secondaryPreferred"})
    assert "hunter2" not in res.stdout + res.stderr
    cfg = json.loads(res.stdout)
    assert cfg["store"]["backend"] == "mongodb"
    assert cfg["store"]["mongodb.read_preference"] == "secondaryPreferred"
    assert cfg["store"]["mongodb.uri"] == "(set, not shown)"


def test_unreachable_server_fails_fast(tmp_path):
    start = time.monotonic()
    res = run_cli("search", "--collection", "x", "anything", data_dir=tmp_path / "d",
                  env={"RAGD_STORE_BACKEND": "mongodb",
                       "RAGD_MONGODB_URI": "mongodb://127.0.0.1:1/x",
                       "RAGD_STORE_MONGODB_SERVER_SELECTION_TIMEOUT_MS": "500"},
                  expect_ok=False)
    assert res.returncode != 0 and "store" in res.stderr, res
    assert time.monotonic() - start < 30


def test_keys_mongodb_refuses_are_stored_and_filtered(ragd_factory):
    """Empty keys, dots and dollars in metadata keys: MongoDB refuses them
    as field names, the store escapes them; they round-trip and filter as
    with SQLite."""
    srv = ragd_factory()
    srv.create_collection("keys")
    meta = {"": 3, "$x": 2, "a.b": 1, "p%q": 4, "n": {"$y": [1, {"z.w": 2}], "w%": 5}}
    srv.add_doc("keys", "Keys with odd characters.", "odd", meta)
    srv.add_doc("keys", "Plain keys only.", "plain", {"p%q": 0, "n": {"w%": 0}})
    status, doc = srv.request("GET", "/v1/collections/keys/documents/odd")
    assert status == 200 and doc["metadata"] == meta, doc
    assert hit_ids(srv, "keys", "keys", flt={"p%q": 4}) == ["odd"]
    assert hit_ids(srv, "keys", "keys", flt={"n.w%": 5}) == ["odd"]
    assert hit_ids(srv, "keys", "keys", flt={"n.w%": {"$lt": 1}}) == ["plain"]
    assert sorted(hit_ids(srv, "keys", "keys", flt={"p%q": {"$ne": 4}})) == ["plain"]
