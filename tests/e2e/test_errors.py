"""
Bad input: every case is answered with a 4xx and an error body
{"error": {"code", "message", "field"}} naming the offending field, and
nothing is stored (collection seq/vectors, the collection list and the
documents visible to search and GET are unchanged).
"""
import http.client
import json
from urllib.parse import quote

import pytest

COLL = "errs"
DOCS = {
    "keep1": "Lighthouses warn ships away from rocky coastlines with rotating lamps.",
    "keep2": "Beekeepers harvest honey from wooden hives in late summer.",
}
PROBE = "ships and honey"


@pytest.fixture(scope="module")
def srv(ragd):
    ragd.create_collection(COLL)
    for doc_id, text in DOCS.items():
        ragd.add_doc(COLL, text, doc_id, {"k": doc_id})
    return ragd


def snapshot(s):
    """Everything a bad request must leave alone."""
    st, body = s.request("GET", "/v1/collections")
    assert st == 200, body
    colls = sorted((c["name"], c["seq"], c["vectors"]) for c in body["collections"])
    hits = s.search(COLL, PROBE, top_k=1000)
    found = sorted((h["document_id"], h["text"]) for h in hits)
    docs = {}
    for doc_id in DOCS:
        st, d = s.request("GET", f"/v1/collections/{COLL}/documents/{doc_id}")
        assert st == 200, d
        docs[doc_id] = (d["text"], json.dumps(d["metadata"], sort_keys=True), d["content_hash"])
    return colls, found, docs


@pytest.fixture
def unchanged(srv):
    """Fails the test if the server's stored state changed during it."""
    before = snapshot(srv)
    yield srv
    after = snapshot(srv)
    assert after == before, "a rejected request changed stored state"


def assert_error(status, body, want_status, field="__any__", raw=None):
    assert status == want_status, (status, body, raw)
    assert isinstance(body, dict) and set(body) == {"error"}, (body, raw)
    err = body["error"]
    assert set(err) == {"code", "message", "field"}, err
    assert isinstance(err["code"], str) and err["code"], err
    assert isinstance(err["message"], str) and err["message"], err
    assert err["field"] is None or isinstance(err["field"], str), err
    if isinstance(field, tuple):
        assert err["field"] in field, err
    elif field != "__any__":
        assert err["field"] == field, err


DOC_PATH = f"/v1/collections/{COLL}/documents"
SEARCH_PATH = f"/v1/collections/{COLL}/search"

# (id, body (dict → JSON, bytes → raw), field)
BAD_DOCUMENTS = [
    ("malformed-json", b'{"id": "m1", "text": "abc"', "body"),
    ("malformed-trailing-comma", b'{"text": "abc",}', "body"),
    ("malformed-garbage-after", b'{"text": "abc"} xyz', "body"),
    ("empty-body", b"", "body"),
    ("body-array", b'["text", "abc"]', "body"),
    ("body-string", b'"just a string"', "body"),
    ("body-number", b"42", "body"),
    ("body-null", b"null", "body"),
    ("duplicate-key", b'{"id": "d1", "text": "abc", "text": "def"}', "body"),
    ("missing-text", {"id": "m2", "metadata": {"a": 1}}, "text"),
    ("text-null", {"id": "m3", "text": None}, "text"),
    ("text-number", {"id": "m4", "text": 42}, "text"),
    ("text-array", {"id": "m5", "text": ["abc"]}, "text"),
    ("text-object", {"id": "m6", "text": {"a": "b"}}, "text"),
    ("text-bool", {"id": "m7", "text": True}, "text"),
    ("text-empty", {"id": "m8", "text": ""}, "text"),
    ("text-whitespace", {"id": "m9", "text": "  \n\t \r\n  "}, "text"),
    # jansson refuses \u0000 while parsing, so "body" is accepted as the field too
    ("text-nul", {"id": "m10", "text": "abc\u0000def"}, ("text", "body")),
    ("text-invalid-utf8", b'{"id": "u1", "text": "caf\xff is good"}', "text"),
    ("text-invalid-utf8-overlong", b'{"id": "u2", "text": "a\xc0\xafb"}', "text"),
    ("text-invalid-utf8-surrogate", b'{"id": "u3", "text": "a\xed\xa0\x80b"}', "text"),
    ("text-invalid-utf8-truncated", b'{"id": "u4", "text": "ab\xe2\x82"}', "text"),
    ("metadata-string", {"id": "m11", "text": "fine text", "metadata": "x"}, "metadata"),
    ("metadata-array", {"id": "m12", "text": "fine text", "metadata": [1, 2]}, "metadata"),
    ("metadata-number", {"id": "m13", "text": "fine text", "metadata": 7}, "metadata"),
    ("unknown-field", {"id": "m14", "text": "fine text", "colour": "red"}, "colour"),
    ("id-space", {"id": "bad id", "text": "fine text"}, "id"),
    ("id-slash", {"id": "a/b", "text": "fine text"}, "id"),
    ("id-bang", {"id": "bad!", "text": "fine text"}, "id"),
    ("id-unicode", {"id": "caf\u00e9", "text": "fine text"}, "id"),
    ("id-empty", {"id": "", "text": "fine text"}, "id"),
    ("id-too-long", {"id": "x" * 129, "text": "fine text"}, "id"),
    ("id-number", {"id": 5, "text": "fine text"}, "id"),
    ("id-nul", {"id": "a\u0000b", "text": "fine text"}, ("id", "body")),
    ("deep-nesting", {"id": "m15", "text": "fine text",
                      "metadata": json.loads('{"a":' * 200 + "1" + "}" * 200)}, "__any__"),
]


@pytest.mark.parametrize("body,field", [c[1:] for c in BAD_DOCUMENTS],
                         ids=[c[0] for c in BAD_DOCUMENTS])
def test_bad_document(unchanged, body, field):
    status, parsed, raw = unchanged.raw_request("POST", DOC_PATH, body)
    assert_error(status, parsed, 400, field, raw)
    if isinstance(body, dict) and isinstance(body.get("id"), str) and body["id"]:
        st, b = unchanged.request("GET", f"{DOC_PATH}/{quote(body['id'], safe='')}")
        assert st in (400, 404), (st, b)


def test_id_limits_accepted(srv):
    """The edges of the id grammar are accepted (then removed again)."""
    for doc_id in ("x" * 128, "A-z_0.9:Q", "9"):
        body = srv.add_doc(COLL, "Boundary id document about origami cranes.", doc_id)
        assert body["id"] == doc_id
        st, b = srv.request("DELETE", f"{DOC_PATH}/{doc_id}")
        assert st == 200, b


def test_replace_with_bad_text_keeps_old(unchanged):
    """A failed replace leaves the existing document as it was."""
    for body in ({"id": "keep1", "text": ""}, {"id": "keep1", "text": 3},
                 {"id": "keep1", "text": "new text", "metadata": []}):
        status, parsed = unchanged.request("POST", DOC_PATH, body)
        assert_error(status, parsed, 400)
    status, parsed, raw = unchanged.raw_request("POST", DOC_PATH,
                                                b'{"id": "keep1", "text": "\xff\xfe"}')
    assert_error(status, parsed, 400, "text", raw)


def test_unknown_collection(unchanged):
    for method, path, body in (
            ("POST", "/v1/collections/nope/documents", {"text": "fine text"}),
            ("POST", "/v1/collections/nope/search", {"query": "anything"}),
            ("GET", "/v1/collections/nope", None),
            ("DELETE", "/v1/collections/nope", None),
            ("GET", "/v1/collections/nope/documents/keep1", None),
            ("DELETE", "/v1/collections/nope/documents/keep1", None)):
        status, parsed = unchanged.request(method, path, body)
        assert_error(status, parsed, 404)
    st, body = unchanged.request("GET", "/v1/collections")
    assert "nope" not in [c["name"] for c in body["collections"]]


def test_unknown_document(unchanged):
    for method in ("GET", "DELETE"):
        status, parsed = unchanged.request(method, f"{DOC_PATH}/missing-doc")
        assert_error(status, parsed, 404)


def test_duplicate_collection(unchanged):
    status, parsed = unchanged.request("POST", "/v1/collections", {"name": COLL})
    assert_error(status, parsed, 409)
    # with different settings too
    status, parsed = unchanged.request("POST", "/v1/collections",
                                       {"name": COLL, "chunk_size": 64, "chunk_overlap": 0})
    assert_error(status, parsed, 409)
    info = unchanged.collection(COLL)
    assert info["chunk_size"] != 64 or info["chunk_overlap"] != 0


BAD_COLLECTIONS = [
    ("name-missing", {"chunk_size": 64}, "name"),
    ("name-empty", {"name": ""}, "name"),
    ("name-space", {"name": "has space"}, "name"),
    ("name-slash", {"name": "a/b"}, "name"),
    ("name-leading-dash", {"name": "-abc"}, "name"),
    ("name-leading-dot", {"name": ".abc"}, "name"),
    ("name-dotdot", {"name": ".."}, "name"),
    ("name-unicode", {"name": "caf\u00e9"}, "name"),
    ("name-too-long", {"name": "n" * 1000}, "name"),
    ("name-number", {"name": 5}, "name"),
    ("name-null", {"name": None}, "name"),
    ("unknown-field", {"name": "okname", "dims": 3}, "dims"),
    ("overlap-equal", {"name": "okname", "chunk_size": 64, "chunk_overlap": 64}, "chunk_overlap"),
    ("overlap-bigger", {"name": "okname", "chunk_size": 64, "chunk_overlap": 100},
     "chunk_overlap"),
    ("overlap-negative", {"name": "okname", "chunk_overlap": -1}, "chunk_overlap"),
    ("overlap-string", {"name": "okname", "chunk_overlap": "8"}, "chunk_overlap"),
    ("chunk-size-huge", {"name": "okname", "chunk_size": 100000}, "chunk_size"),
    ("chunk-size-over-window", {"name": "okname", "chunk_size": 1000}, "chunk_size"),
    ("chunk-size-zero", {"name": "okname", "chunk_size": 0}, "chunk_size"),
    ("chunk-size-negative", {"name": "okname", "chunk_size": -5}, "chunk_size"),
    ("chunk-size-string", {"name": "okname", "chunk_size": "64"}, "chunk_size"),
    ("chunk-size-float", {"name": "okname", "chunk_size": 64.5}, "chunk_size"),
    ("embedding-model-unknown", {"name": "okname", "embedding_model": "gpt-9"},
     "embedding_model"),
    ("embedding-model-number", {"name": "okname", "embedding_model": 3}, "embedding_model"),
    ("malformed", b'{"name": "okname"', "body"),
    ("not-object", b'["okname"]', "body"),
    ("invalid-utf8-name", b'{"name": "ok\xffname"}', "name"),
]


@pytest.mark.parametrize("body,field", [c[1:] for c in BAD_COLLECTIONS],
                         ids=[c[0] for c in BAD_COLLECTIONS])
def test_bad_collection(unchanged, body, field):
    status, parsed, raw = unchanged.raw_request("POST", "/v1/collections", body)
    assert_error(status, parsed, 400, field, raw)
    st, b = unchanged.request("GET", "/v1/collections/okname")
    assert st == 404, b


def test_bad_collection_name_in_path(unchanged):
    for path in ("/v1/collections/bad%20name", "/v1/collections/-x",
                 "/v1/collections/bad%20name/documents/keep1"):
        status, parsed = unchanged.request("GET", path)
        assert status in (400, 404), (path, status, parsed)
        assert_error(status, parsed, status)


BAD_SEARCHES = [
    ("top_k-zero", {"query": PROBE, "top_k": 0}, "top_k"),
    ("top_k-negative", {"query": PROBE, "top_k": -1}, "top_k"),
    ("top_k-huge", {"query": PROBE, "top_k": 10 ** 9}, "top_k"),
    ("top_k-over-limit", {"query": PROBE, "top_k": 1001}, "top_k"),
    ("top_k-beyond-int64", {"query": PROBE, "top_k": 10 ** 30}, "__any__"),
    # a real beyond long long: range-checked before the conversion (UB found by fuzz_request)
    ("top_k-real-beyond-int64", {"query": PROBE, "top_k": 6.2e64}, "top_k"),
    ("top_k-real-negative-huge", {"query": PROBE, "top_k": -1e300}, "top_k"),
    ("top_k-string", {"query": PROBE, "top_k": "5"}, "top_k"),
    ("top_k-float", {"query": PROBE, "top_k": 2.5}, "top_k"),
    ("top_k-bool", {"query": PROBE, "top_k": True}, "top_k"),
    ("query-missing", {"top_k": 3}, "query"),
    ("query-null", {"query": None}, "query"),
    ("query-empty", {"query": ""}, "query"),
    ("query-whitespace", {"query": " \t\n "}, "query"),
    ("query-number", {"query": 12}, "query"),
    ("query-array", {"query": ["ships"]}, "query"),
    ("query-invalid-utf8", b'{"query": "sh\xffips"}', "query"),
    ("unknown-field", {"query": PROBE, "where": {}}, "where"),
    ("malformed", b'{"query": ', "body"),
    ("not-object", b'"ships"', "body"),
    ("empty-body", b"", "body"),
]


@pytest.mark.parametrize("body,field", [c[1:] for c in BAD_SEARCHES],
                         ids=[c[0] for c in BAD_SEARCHES])
def test_bad_search(unchanged, body, field):
    status, parsed, raw = unchanged.raw_request("POST", SEARCH_PATH, body)
    assert_error(status, parsed, 400, field, raw)


def test_top_k_limits_accepted(srv):
    for k in (1, 1000):
        st, body = srv.request("POST", SEARCH_PATH, {"query": PROBE, "top_k": k})
        assert st == 200, body
        assert len(body["results"]) == min(k, len(DOCS))


ROUTES_404 = [
    ("GET", "/"),
    ("GET", "/nope"),
    ("GET", "/v1"),
    ("GET", "/v2/collections"),
    ("POST", "/v1/collection"),
    ("GET", f"/v1/collections/{COLL}/documents/keep1/extra"),
    ("POST", f"/v1/collections/{COLL}/searchx"),
    ("GET", "/healthz"),
]
ROUTES_405 = [
    ("PUT", "/v1/collections"),
    ("DELETE", "/v1/collections"),
    ("POST", "/health"),
    ("DELETE", "/ready"),
    ("PUT", f"/v1/collections/{COLL}"),  # PATCH changes the model
    ("POST", f"/v1/collections/{COLL}"),
    ("PUT", f"/v1/collections/{COLL}/documents"),  # GET lists them
    ("DELETE", f"/v1/collections/{COLL}/documents"),
    ("PUT", f"/v1/collections/{COLL}/documents/keep1"),
    ("GET", f"/v1/collections/{COLL}/search"),
]


@pytest.mark.parametrize("method,path", ROUTES_404, ids=[f"{m} {p}" for m, p in ROUTES_404])
def test_unknown_route(unchanged, method, path):
    body = {"text": "x"} if method == "POST" else None
    status, parsed = unchanged.request(method, path, body)
    assert_error(status, parsed, 404, None)


@pytest.mark.parametrize("method,path", ROUTES_405, ids=[f"{m} {p}" for m, p in ROUTES_405])
def test_wrong_method(unchanged, method, path):
    body = {"id": "keep1", "text": "replacement"} if method in ("PUT", "POST", "PATCH") else None
    status, parsed = unchanged.request(method, path, body)
    assert_error(status, parsed, 405, None)


# -- body size limit -------------------------------------------------------------

@pytest.fixture(scope="module")
def small(ragd_module_factory):
    s = ragd_module_factory(extra_args=["--set", "server.max_body_bytes=1k"])
    s.create_collection("small")
    return s


def small_state(s):
    info = s.collection("small")
    return info["seq"], info["vectors"], len(s.search("small", "anything", top_k=1000))


def test_body_over_limit_413(small):
    before = small_state(small)
    text = "The quick brown fox jumps over the lazy dog. " * 92  # ~4 KiB
    body = json.dumps({"id": "big", "text": text}).encode()
    assert 4000 <= len(body) <= 4300
    status, parsed, raw = small.raw_request("POST", "/v1/collections/small/documents", body)
    assert_error(status, parsed, 413, "body", raw)
    st, b = small.request("GET", "/v1/collections/small/documents/big")
    assert st == 404, b
    # search and collection bodies are limited too
    status, parsed = small.request("POST", "/v1/collections/small/search",
                                   {"query": text, "top_k": 3})
    assert_error(status, parsed, 413, "body")
    status, parsed = small.request("POST", "/v1/collections", {"name": "x" * 4096})
    assert_error(status, parsed, 413, "body")
    assert small_state(small) == before
    # the server still works afterwards
    st, b = small.request("GET", "/health")
    assert st == 200, b


def test_body_over_limit_chunked_413(small):
    """Chunked uploads (no Content-Length) are measured as they arrive."""
    before = small_state(small)
    text = "Pack my box with five dozen liquor jugs. " * 100
    data = json.dumps({"id": "bigchunked", "text": text}).encode()

    def pieces():
        for i in range(0, len(data), 512):
            yield data[i:i + 512]

    conn = http.client.HTTPConnection("127.0.0.1", small.port, timeout=30)
    try:
        conn.request("POST", "/v1/collections/small/documents", body=pieces(),
                     headers={"Content-Type": "application/json"}, encode_chunked=True)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    assert_error(resp.status, json.loads(raw), 413, "body", raw)
    st, b = small.request("GET", "/v1/collections/small/documents/bigchunked")
    assert st == 404, b
    assert small_state(small) == before


def test_body_under_limit_accepted(small):
    text = "Sea otters hold hands while sleeping so they do not drift apart. " * 10
    body = json.dumps({"id": "fits", "text": text}).encode()
    assert len(body) < 1024
    status, parsed = small.request("POST", "/v1/collections/small/documents", body)
    assert status == 201, parsed
    assert small.search("small", "marine mammals resting", top_k=1)[0]["document_id"] == "fits"
    st, b = small.request("DELETE", "/v1/collections/small/documents/fits")
    assert st == 200, b


# -- path NULs and nested invalid UTF-8 ---------------------------------------

def test_percent_nul_in_path_is_rejected(ragd):
    ragd.create_collection("nulvictim")
    ragd.add_doc("nulvictim", "Kites fly on windy beaches.", "doc1")
    try:
        for method, path in (("DELETE", "/v1/collections/nulvictim/documents/doc1%00junk"),
                             ("GET", "/v1/collections/nulvictim%00junk"),
                             ("DELETE", "/v1/collections/nulvictim%00junk")):
            status, body = ragd.request(method, path)
            assert status in (400, 404), (method, path, status, body)
        st, body = ragd.request("GET", "/v1/collections/nulvictim/documents/doc1")
        assert st == 200, body
    finally:
        ragd.request("DELETE", "/v1/collections/nulvictim")


def test_invalid_utf8_in_metadata_names_metadata(unchanged):
    status, parsed, raw = unchanged.raw_request(
        "POST", DOC_PATH, b'{"id": "mu", "text": "fine", "metadata": {"text": "\xff"}}')
    assert_error(status, parsed, 400, "metadata", raw)


def test_dot_only_ids_rejected(unchanged):
    for doc_id in (".", "..", "..."):
        status, parsed, raw = unchanged.raw_request("POST", DOC_PATH,
                                                    {"id": doc_id, "text": "dots"})
        assert_error(status, parsed, 400, "id", raw)


def test_integral_floats_are_integers(ragd):
    ragd.create_collection("floats", chunk_size=32.0, chunk_overlap=4.0)
    ragd.add_doc("floats", "Whole numbers written with a decimal point.", "w")
    status, body = ragd.request("POST", "/v1/collections/floats/search",
                                {"query": "decimal point", "top_k": 3.0})
    assert status == 200 and len(body["results"]) == 1, body
    status, body = ragd.request("POST", "/v1/collections/floats/search",
                                {"query": "decimal point", "top_k": 2.5})
    assert status == 400 and body["error"]["field"] == "top_k", body
    ragd.request("DELETE", "/v1/collections/floats")


def test_shard_search_vector_beyond_float_range(unchanged):
    """A vector element no float can hold is a 400 naming the field (converting
    it would be undefined behaviour)."""
    status, parsed, raw = unchanged.raw_request(
        "POST", "/v1/internal/shard-search",
        {"collection": "docs", "k": 1, "vector": [0.5, 1e300]})
    assert_error(status, parsed, 400, "vector", raw)
