"""
Authentication, tenancy, roles and quotas against the real binary.

- Off by default on loopback, with a warning at start; off on a
  non-loopback address refuses to start.
- 401 for a missing, malformed, unknown, wrong or revoked key (OpenAI's
  error shape on its routes), 403 for a role that may not, public routes
  open.
- Tenant isolation: another tenant's collections, documents, chunks,
  searches (with filters), answers, jobs, sessions, OpenAI `model` names,
  cached results and keys all answer as if they did not exist; the same
  names in two tenants are two things.
- Keys created through the admin API (the token shown once), listed
  without secrets, revoked at once, kept across a restart.
- 429 with Retry-After for the request rate, ingest bytes and generated
  tokens; usage and metrics show them.
"""
import json
import subprocess
import time

import pytest

from conftest import RAGD_BIN, RAGD_MODEL, REPO, free_port, ragd_env

GEN = str(REPO / "models" / "SmolLM2-135M-Instruct-Q4_1.gguf")

KEYS = {
    "admin_a": ("alpha", "admin"),
    "writer_a": ("alpha", "writer"),
    "reader_a": ("alpha", "reader"),
    "admin_b": ("beta", "admin"),
    "writer_b": ("beta", "writer"),
}


@pytest.fixture(scope="module")
def srv(ragd_module_factory):
    # Extractive answers: a follow-up's standalone query is the previous
    # question + this one, so a session's history is visible in "query".
    return ragd_module_factory(keys=KEYS, extra_args=["--set", "models.generator="])


def error_of(body):
    return body["error"]["code"] if body and "error" in body else None


# -- auth off -----------------------------------------------------------------

def test_off_by_default_on_loopback_with_a_warning(ragd):
    status, _ = ragd.request("GET", "/v1/collections")
    assert status == 200
    warn = [l for l in ragd.log_lines() if "authentication is OFF" in l.get("msg", "")]
    assert warn and warn[0]["level"] == "warn", ragd.stderr_text()[-2000:]


def test_off_on_a_public_address_refuses_to_start(tmp_path):
    cmd = [RAGD_BIN, "serve", "--data-dir", str(tmp_path / "d"), "--model", RAGD_MODEL,
           "--host", "0.0.0.0", "--port", str(free_port())]
    p = subprocess.run(cmd, capture_output=True, timeout=60, env=ragd_env())
    assert p.returncode != 0
    assert b"auth.enabled" in p.stderr and b"loopback" in p.stderr, p.stderr


# -- 401 / 403 ------------------------------------------------------------------

def test_missing_and_bad_keys_are_401(srv):
    bad = ["", "Basic YWxhZGRpbjpvcGVu", "Bearer nonsense",
           "Bearer ragd_0123456789abcdef_" + "0" * 64,                # unknown id
           "Bearer " + srv.tokens["admin_a"][:-1] + ("0" if srv.tokens["admin_a"][-1] != "0"
                                                    else "1")]  # wrong secret
    for hdr in bad:
        headers = {"Authorization": hdr} if hdr else {}
        status, body, raw = srv.raw_request("GET", "/v1/collections", headers=headers,
                                            key=False)
        assert status == 401, (hdr, status, raw)
        assert error_of(body) == "unauthorized", body
    # OpenAI's routes answer in OpenAI's shape, which its clients map to AuthenticationError.
    status, body = srv.request("GET", "/v1/models", key=False)
    assert status == 401 and body["error"]["type"] == "authentication_error", body


def test_www_authenticate_header(srv):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("GET", "/v1/collections")
    r = conn.getresponse()
    r.read()
    assert r.status == 401 and r.getheader("WWW-Authenticate", "").startswith("Bearer")
    conn.close()


def test_public_routes_need_no_key(srv):
    for path in ("/health", "/ready", "/metrics", "/openapi.json"):
        status, _, _ = srv.raw_request("GET", path, key=False)
        assert status == 200, path


def test_roles(srv):
    assert srv.request("POST", "/v1/collections", {"name": "roles"}, key="writer_a")[0] == 201
    status, body = srv.request("POST", "/v1/collections/roles/documents",
                               {"id": "d", "text": "Roles decide what a key may do."},
                               key="writer_a")
    assert status in (200, 201), body
    # reader: reads, searches, answers
    for method, path, body in [
            ("GET", "/v1/collections", None),
            ("GET", "/v1/collections/roles", None),
            ("GET", "/v1/collections/roles/documents/d", None),
            ("GET", "/v1/collections/roles/documents", None),
            ("POST", "/v1/collections/roles/search", {"query": "roles"}),
            ("POST", "/v1/collections/roles/query", {"question": "What do roles decide?"}),
            ("GET", "/v1/models", None)]:
        status, resp = srv.request(method, path, body, key="reader_a")
        assert status == 200, (method, path, status, resp)
    # reader: no writes, no admin
    for method, path, body in [
            ("POST", "/v1/collections", {"name": "nope"}),
            ("DELETE", "/v1/collections/roles", None),
            ("PATCH", "/v1/collections/roles", {"embedding_model": "x"}),
            ("POST", "/v1/collections/roles/documents", {"text": "x"}),
            ("POST", "/v1/collections/roles/documents:batch", {"documents": [{"text": "x"}]}),
            ("DELETE", "/v1/collections/roles/documents/d", None),
            ("DELETE", "/v1/jobs/job_x", None),
            ("GET", "/v1/admin/keys", None),
            ("POST", "/v1/admin/keys", {"role": "admin"}),
            ("GET", "/v1/admin/usage", None)]:
        status, resp = srv.request(method, path, body, key="reader_a")
        assert status == 403 and error_of(resp) == "forbidden", (method, path, status, resp)
    # writer: no admin
    for method, path, body in [("GET", "/v1/admin/keys", None),
                               ("POST", "/v1/admin/keys", {"role": "reader"}),
                               ("GET", "/v1/admin/usage", None)]:
        status, resp = srv.request(method, path, body, key="writer_a")
        assert status == 403, (method, path, status, resp)
    # the document is still there: nothing a refused request did stuck
    assert srv.request("GET", "/v1/collections/roles/documents/d", key="reader_a")[0] == 200
    status, body = srv.request("GET", "/metrics")
    assert status == 200


# -- tenant isolation -------------------------------------------------------------

def wait_job(srv, job_id, key):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, job = srv.request("GET", f"/v1/jobs/{job_id}", key=key)
        assert status == 200, job
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_tenants_cannot_reach_each_others_data(srv):
    A, B = "writer_a", "writer_b"
    # alpha: a collection "shared-name" and one only it has
    for name in ("shared-name", "alpha-only-kept-secret"):
        assert srv.request("POST", "/v1/collections", {"name": name}, key=A)[0] == 201
    status, _ = srv.request("POST", "/v1/collections/shared-name/documents",
                            {"id": "doc1", "text": "The zebra vault code is 7741. Alpha's secret.",
                             "metadata": {"team": "red"}}, key=A)
    assert status in (200, 201)
    srv.request("POST", "/v1/collections/alpha-only-kept-secret/documents",
                {"id": "x", "text": "Only alpha has this collection."}, key=A)
    # beta: the same collection name is its own, empty collection
    assert srv.request("POST", "/v1/collections", {"name": "shared-name"}, key=B)[0] == 201
    srv.request("POST", "/v1/collections/shared-name/documents",
                {"id": "doc2", "text": "Beta keeps bicycles in the shed.",
                 "metadata": {"team": "red"}}, key=B)

    # listing
    _, lst = srv.request("GET", "/v1/collections", key=B)
    names = [c["name"] for c in lst["collections"]]
    assert "alpha-only-kept-secret" not in names and names.count("shared-name") == 1

    # every resource by name or id: 404
    gone = [("GET", "/v1/collections/alpha-only-kept-secret", None),
            ("PATCH", "/v1/collections/alpha-only-kept-secret", {"embedding_model": "x"}),
            ("DELETE", "/v1/collections/alpha-only-kept-secret", None),
            ("GET", "/v1/collections/alpha-only-kept-secret/documents", None),
            ("GET", "/v1/collections/alpha-only-kept-secret/documents/x", None),
            ("GET", "/v1/collections/alpha-only-kept-secret/documents/x/chunks", None),
            ("DELETE", "/v1/collections/alpha-only-kept-secret/documents/x", None),
            ("POST", "/v1/collections/alpha-only-kept-secret/documents", {"text": "intrude"}),
            ("POST", "/v1/collections/alpha-only-kept-secret/documents:batch",
             {"documents": [{"text": "intrude"}]}),
            ("POST", "/v1/collections/alpha-only-kept-secret/search", {"query": "alpha"}),
            ("POST", "/v1/collections/alpha-only-kept-secret/query", {"question": "alpha?"}),
            ("GET", "/v1/collections/shared-name/documents/doc1", None),
            ("GET", "/v1/collections/shared-name/documents/doc1/chunks", None),
            ("DELETE", "/v1/collections/shared-name/documents/doc1", None)]
    for method, path, body in gone:
        status, resp = srv.request(method, path, body, key=B)
        assert status == 404, (method, path, status, resp)
    assert srv.request("GET", "/v1/collections/alpha-only-kept-secret", key=A)[0] == 200
    assert srv.request("GET", "/v1/collections/shared-name/documents/doc1", key=A)[0] == 200

    # searches, with and without filters, see only beta's document
    for body in ({"query": "zebra vault code", "top_k": 10},
                 {"query": "zebra vault code", "top_k": 10, "mode": "lexical"},
                 {"query": "zebra", "top_k": 10, "filter": {"team": "red"}}):
        status, res = srv.request("POST", "/v1/collections/shared-name/search", body, key=B)
        assert status == 200, res
        assert all(r["document_id"] == "doc2" for r in res["results"]), res
        assert "7741" not in json.dumps(res)

    # a cached result of alpha's is not beta's: alpha searches twice (a hit),
    # beta asks the same and gets its own, computed
    q = {"query": "what is the vault code", "top_k": 5}
    srv.request("POST", "/v1/collections/shared-name/search", q, key=A)
    _, hit, _ = srv.raw_request("POST", "/v1/collections/shared-name/search", q, key=A)
    assert "7741" in json.dumps(hit)
    status, res = srv.request("POST", "/v1/collections/shared-name/search", q, key=B)
    assert status == 200 and "7741" not in json.dumps(res), res
    # the same for whole answers
    ask = {"question": "What is the zebra vault code?"}
    for _ in range(2):
        status, ans = srv.request("POST", "/v1/collections/shared-name/query", ask, key=A)
        assert status == 200
    status, ans = srv.request("POST", "/v1/collections/shared-name/query", ask, key=B)
    assert status == 200 and "7741" not in json.dumps(ans), ans

    # sessions: beta's session of the same id has none of alpha's history
    s = "session-shared-id"
    srv.request("POST", "/v1/collections/shared-name/query",
                {"question": "Tell me about the zebra vault", "session_id": s}, key=A)
    _, own = srv.request("POST", "/v1/collections/shared-name/query",
                         {"question": "and its code?", "session_id": s}, key=A)
    assert "zebra" in own["query"].lower(), own  # the control: history is used
    status, other = srv.request("POST", "/v1/collections/shared-name/query",
                                {"question": "and its code?", "session_id": s}, key=B)
    assert status == 200 and "zebra" not in other["query"].lower(), other

    # jobs: alpha's job id is not found for beta, not cancellable by beta
    status, job = srv.request("POST", "/v1/collections/shared-name/documents:batch",
                              {"documents": [{"id": "j1", "text": "Batch text for alpha."}]},
                              key=A)
    assert status == 202, job
    for method in ("GET", "DELETE"):
        status, resp = srv.request(method, f"/v1/jobs/{job['job_id']}", key=B)
        assert status == 404, (method, resp)
    assert wait_job(srv, job["job_id"], A)["state"] == "succeeded"

    # the OpenAI-compatible routes: "rag:<collection>" names only the caller's
    _, models = srv.request("GET", "/v1/models", key=B)
    ids = [m["id"] for m in models["data"]]
    assert "rag:alpha-only-kept-secret" not in ids and "rag:shared-name" in ids
    status, resp = srv.request("GET", "/v1/models/rag:alpha-only-kept-secret", key=B)
    assert status == 404
    status, resp = srv.request("POST", "/v1/chat/completions",
                               {"model": "rag:alpha-only-kept-secret",
                                "messages": [{"role": "user", "content": "secret?"}]}, key=B)
    assert status == 404 and resp["error"]["code"] == "model_not_found", resp
    status, resp = srv.request("POST", "/v1/chat/completions",
                               {"model": "rag:shared-name",
                                "messages": [{"role": "user", "content": "vault code?"}]},
                               key=B)
    assert status == 200 and "7741" not in json.dumps(resp), resp

    # a tenant's cacheable answers are private: no shared cache may hand them on
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("GET", "/v1/collections/shared-name",
                 headers={"Authorization": f"Bearer {srv.tokens[A]}"})
    r = conn.getresponse()
    r.read()
    conn.close()
    assert r.status == 200 and r.getheader("Cache-Control").startswith("private"), \
        r.getheader("Cache-Control")

    # metrics carry no other tenant's collection names
    _, _, raw = srv.raw_request("GET", "/metrics", key=False)
    assert b"alpha-only-kept-secret" not in raw

    # keys and usage: an admin sees and touches only its own tenant's
    _, keys_b = srv.request("GET", "/v1/admin/keys", key="admin_b")
    assert {k["tenant"] for k in keys_b["keys"]} == {"beta"}
    _, keys_a = srv.request("GET", "/v1/admin/keys", key="admin_a")
    a_id = next(k["id"] for k in keys_a["keys"] if k["name"] == "writer_a")
    status, _ = srv.request("DELETE", f"/v1/admin/keys/{a_id}", key="admin_b")
    assert status == 404
    status, _ = srv.request("GET", f"/v1/admin/usage/{a_id}", key="admin_b")
    assert status == 404
    _, usage_b = srv.request("GET", "/v1/admin/usage", key="admin_b")
    assert all(k["key_id"] != a_id for k in usage_b["keys"])
    status, resp = srv.request("POST", "/v1/admin/keys", {"role": "admin", "tenant": "alpha"},
                               key="admin_b")
    assert status == 403, resp


# -- keys through the admin API -------------------------------------------------

def test_key_lifecycle_and_restart(ragd_factory):
    srv = ragd_factory(keys={"root": ("gamma", "admin")},
                       extra_args=["--set", "models.generator="])
    status, made = srv.request("POST", "/v1/admin/keys",
                               {"role": "writer", "name": "ci-bot"})
    assert status == 201, made
    token = made["token"]
    assert token.startswith("ragd_") and made["tenant"] == "gamma"
    status, usage = srv.request("GET", f"/v1/admin/usage/{made['id']}")  # not used yet
    assert status == 200 and usage["keys"][0]["usage"]["requests_total"] == 0, usage
    _, lst = srv.request("GET", "/v1/admin/keys")
    listed = next(k for k in lst["keys"] if k["id"] == made["id"])
    assert listed["role"] == "writer" and listed["source"] == "store"
    assert token not in json.dumps(lst) and token.split("_")[2] not in json.dumps(lst)
    assert srv.request("POST", "/v1/collections", {"name": "g"}, key=token)[0] == 201
    # bad requests change nothing
    for body, field in [({}, "role"), ({"role": "root"}, "role"),
                        ({"role": "reader", "limits": {"burst": -1}}, "limits"),
                        ({"role": "reader", "colour": 1}, "colour")]:
        status, resp = srv.request("POST", "/v1/admin/keys", body)
        assert status == 400 and resp["error"]["field"] == field, (body, resp)
    # the key survives a restart (it is in the store) ...
    srv.restart()
    assert srv.request("GET", "/v1/collections/g", key=token)[0] == 200
    # ... until revoked, which takes effect at once
    status, resp = srv.request("DELETE", f"/v1/admin/keys/{made['id']}")
    assert status == 200 and resp["revoked"] is True
    status, resp = srv.request("GET", "/v1/collections/g", key=token)
    assert status == 401, resp
    assert srv.request("DELETE", f"/v1/admin/keys/{made['id']}")[0] == 404
    # a configured key cannot be revoked through the API
    _, lst = srv.request("GET", "/v1/admin/keys")
    root = next(k for k in lst["keys"] if k["source"] == "config")
    assert srv.request("DELETE", f"/v1/admin/keys/{root['id']}")[0] == 409


# -- quotas -------------------------------------------------------------------------

def metric(srv, name):
    _, _, raw = srv.raw_request("GET", "/metrics", key=False)
    for line in raw.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            if line.split(" ")[0] == name:
                return float(line.split(" ")[1])
    return 0.0


def test_quotas_answer_429_with_retry_after(ragd_factory):
    srv = ragd_factory(keys={"root": ("delta", "admin")},
                       extra_args=["--set", f"models.generator={GEN}",
                                   "--set", "models.gen_threads=1"])
    # request rate: 1 per 10 s with a burst of 2
    _, made = srv.request("POST", "/v1/admin/keys",
                          {"role": "writer", "limits": {"requests_per_s": 0.1, "burst": 2}})
    tok = made["token"]
    assert srv.request("GET", "/v1/collections", key=tok)[0] == 200
    assert srv.request("GET", "/v1/collections", key=tok)[0] == 200
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("GET", "/v1/collections", headers={"Authorization": f"Bearer {tok}"})
    r = conn.getresponse()
    body = json.loads(r.read())
    conn.close()
    assert r.status == 429 and body["error"]["code"] == "rate_limited", body
    assert 1 <= int(r.getheader("Retry-After")) <= 10
    # other keys are not affected
    assert srv.request("GET", "/v1/collections")[0] == 200

    # ingest bytes per day
    srv.request("POST", "/v1/collections", {"name": "q"})
    _, made = srv.request("POST", "/v1/admin/keys",
                          {"role": "writer", "limits": {"ingest_bytes_per_day": 400}})
    ing = made["token"]
    doc = {"text": "A short document about quotas and limits. " * 6}
    status, resp = srv.request("POST", "/v1/collections/q/documents", doc, key=ing)
    assert status in (200, 201), resp
    status, resp = srv.request("POST", "/v1/collections/q/documents", doc, key=ing)
    assert status == 429 and "ingest" in resp["error"]["message"], resp
    status, _, raw = srv.raw_request("GET", "/v1/collections/q/documents", key=ing)
    assert status == 200 and len(json.loads(raw)["documents"]) == 1  # nothing stored

    # generated tokens per day: refused once the day's are spent
    _, made = srv.request("POST", "/v1/admin/keys",
                          {"role": "reader", "limits": {"tokens_per_day": 3}})
    gen = made["token"]
    chat = {"model": "SmolLM2-135M-Instruct-Q4_1", "max_tokens": 4, "temperature": 0,
            "messages": [{"role": "user", "content": "Count to ten."}]}
    status, resp = srv.request("POST", "/v1/chat/completions", chat, key=gen)
    assert status == 200, resp
    used = resp["usage"]["completion_tokens"]
    assert used >= 3
    status, resp = srv.request("POST", "/v1/chat/completions", chat, key=gen)
    assert status == 429 and resp["error"]["type"] == "rate_limit_error", resp

    # usage and metrics show it
    _, usage = srv.request("GET", "/v1/admin/usage")
    by_id = {k["key_id"]: k for k in usage["keys"]}
    assert by_id[made["id"]]["usage"]["tokens_today"] == used
    assert by_id[made["id"]]["usage"]["rejections"]["generated_tokens"] == 1
    assert by_id[made["id"]]["limits"]["tokens_per_day"] == 3
    status, one = srv.request("GET", f"/v1/admin/usage/{made['id']}")
    assert status == 200 and len(one["keys"]) == 1
    _, _, raw = srv.raw_request("GET", "/metrics", key=False)
    text = raw.decode()
    assert 'ragd_quota_rejections_total{kind="requests"} 1' in text
    assert 'ragd_quota_rejections_total{kind="ingest_bytes"} 1' in text
    assert 'ragd_quota_rejections_total{kind="generated_tokens"} 1' in text
    assert f'ragd_key_generated_tokens_total{{key="{made["id"]}"}} {used}' in text
    assert "delta" not in text  # labelled by key id, never the tenant
    assert gen not in text


# -- `ragd key` -----------------------------------------------------------------------

def test_cli_key_new_and_create(ragd_factory, tmp_path):
    from conftest import run_cli
    out = run_cli("key", "new", "--tenant", "eps", "--role", "reader").stdout
    token = out.split("token: ")[1].split()[0]
    entry = out.split("auth.keys entry: ")[1].strip()
    assert token.split("_")[2] not in entry  # the entry holds no secret
    data = tmp_path / "data"
    made = run_cli("key", "create", "--tenant", "eps", "--role", "admin", "--name", "boot",
                   data_dir=data).stdout
    admin = made.split("token: ")[1].split()[0]
    bad = run_cli("key", "new", "--tenant", "no spaces", "--role", "reader", expect_ok=False)
    assert bad.returncode != 0 and "--tenant" in bad.stderr
    srv = ragd_factory(data_dir=data, extra_args=["--set", "auth.enabled=true",
                                                  "--set", f"auth.keys={entry}",
                                                  "--set", "models.generator="])
    status, _ = srv.request("GET", "/v1/collections", key=token)
    assert status == 200
    assert srv.request("POST", "/v1/collections", {"name": "x"}, key=token)[0] == 403
    _, keys = srv.request("GET", "/v1/admin/keys", key=admin)
    assert {k["source"] for k in keys["keys"]} == {"config", "store"}


# -- sharding with keys -------------------------------------------------------------

def test_sharded_search_forwards_the_callers_tenant(tmp_path, topics):
    """Two instances, one shard each, on one store, auth on with the same
    configured keys: a search fans out with the caller's own key, so the
    other shard answers for the same tenant; another tenant's same-named
    collection stays its own; the internal route wants a key too."""
    from conftest import RagdServer, auth_args, http_request
    ports = [free_port(), free_port()]
    peers = " ".join(f"http://127.0.0.1:{p}={i}" for i, p in enumerate(ports))
    flags, tokens = auth_args({"t1": ("one", "writer"), "t2": ("two", "writer")}, tmp_path)
    nodes = []
    try:
        for i, port in enumerate(ports):
            (tmp_path / f"n{i}").mkdir()
            srv = RagdServer(tmp_path / "shared", tmp_path / f"n{i}",
                             [*flags, "--set", "cache.backend=none", "--set", "index.snapshot=false",
                              "--set", "index.follow_interval_ms=100", "--set", "sharding.shards=2",
                              "--set", f"sharding.peers={peers}", "--set", f"sharding.holds={i}",
                              "--set", "models.generator="], tokens=tokens)
            nodes.append(srv)
            srv.start(port=port)
        a, b = nodes
        assert a.request("POST", "/v1/collections", {"name": "c"}, key="t1")[0] == 201
        docs = topics[:12]
        for d in docs:
            assert a.request("POST", "/v1/collections/c/documents",
                             {"id": d["id"], "text": d["text"]}, key="t1")[0] in (200, 201)
        assert b.request("POST", "/v1/collections", {"name": "c"}, key="t2")[0] == 201
        b.request("POST", "/v1/collections/c/documents",
                  {"id": "other", "text": "Tenant two keeps one note here."}, key="t2")
        deadline = time.monotonic() + 30
        while True:  # both shards indexed (each node holds part of tenant one's documents)
            va = a.request("GET", "/v1/collections/c", key="t1")[1]["vectors"]
            vb = b.request("GET", "/v1/collections/c", key="t1")[1]["vectors"]
            if va + vb >= len(docs) and va > 0 and vb > 0:
                break
            assert time.monotonic() < deadline, (va, vb)
            time.sleep(0.1)
        status, res = a.request("POST", "/v1/collections/c/search",
                                {"query": "anything", "top_k": 50, "mode": "dense"}, key="t1")
        assert status == 200, res
        assert {r["document_id"] for r in res["results"]} == {d["id"] for d in docs}
        status, res = a.request("POST", "/v1/collections/c/search",
                                {"query": "anything", "top_k": 50, "mode": "dense"}, key="t2")
        assert status == 200, res
        assert {r["document_id"] for r in res["results"]} == {"other"}
        status, body, _ = http_request("127.0.0.1", b.port, "POST", "/v1/internal/shard-search",
                                       {"collection": "c", "vector": [0.0] * 384, "k": 5})
        assert status == 401, body
    finally:
        for srv in nodes:
            srv.stop()
