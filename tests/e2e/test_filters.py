"""
Metadata filters on search: POST /v1/collections/{name}/search {"filter": ...}
and `ragd search --filter JSON`.

Every filter is checked against the set of documents a Python reference
evaluator (`matches` below, written from the spec) selects from the very
metadata that was ingested, in each search mode: every hit must satisfy the
filter, and the number of hits must be min(top_k, matching chunks) -- the
corpus texts are short, so each document is one chunk, and they all share
the word "lighthouse", so every document is a lexical match too.
"""
import json

import pytest

from conftest import run_cli

MODES = ("dense", "lexical", "hybrid")
QUERY = "lighthouse"
WIDE = 100  # a top_k above the corpus size: every matching chunk comes back

# -- the reference evaluator ---------------------------------------------------

MISSING = object()
RANGE_OPS = ("$gt", "$gte", "$lt", "$lte")


def get_path(meta, path):
    cur = meta
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return MISSING
        cur = cur[part]
    return cur


def kind(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "num"
    if isinstance(v, str):
        return "str"
    return "other"


def eq(a, b):
    return kind(a) == kind(b) != "other" and a == b


def op_ok(v, op, arg):
    present = v is not MISSING
    if op == "$eq":
        return present and eq(v, arg)
    if op == "$ne":
        return not present or not eq(v, arg)
    if op == "$in":
        return present and any(eq(v, a) for a in arg)
    if op == "$nin":
        return not present or not any(eq(v, a) for a in arg)
    assert op in RANGE_OPS, op
    if not present or kind(v) != kind(arg) or kind(v) not in ("num", "str"):
        return False
    return {"$gt": v > arg, "$gte": v >= arg, "$lt": v < arg, "$lte": v <= arg}[op]


def matches(meta, flt):
    for key, cond in flt.items():
        if key == "$and":
            ok = all(matches(meta, f) for f in cond)
        elif key == "$or":
            ok = any(matches(meta, f) for f in cond)
        else:
            v = get_path(meta, key)
            if isinstance(cond, dict):
                ok = all(op_ok(v, op, arg) for op, arg in cond.items())
            else:
                ok = v is not MISSING and eq(v, cond)
        if not ok:
            return False
    return True


# -- the corpus ------------------------------------------------------------------

SUBJECTS = [
    "the keeper trims the wick before a winter storm",
    "gulls nest on the rocks below the tower",
    "a cargo ship steers clear of the reef at night",
    "the lens was ground by hand in a Paris workshop",
    "tourists climb two hundred steps to the gallery",
    "fog horns sound when visibility drops at sea",
    "the granite walls were quarried on the mainland",
    "a solar panel now powers the automated lamp",
    "painters love the red and white striped tower",
    "the keeper's cottage became a small museum",
    "waves broke over the lantern room in the great gale",
    "a postage stamp shows the tower at sunset",
    "the island has no trees, only grass and sheep",
    "radio beacons replaced many coastal lights",
    "a wedding was held on the windy headland",
    "the lamp rotates once every ten seconds",
    "seals bask on the shingle beach nearby",
    "the foundations were laid at low spring tide",
    "a novel tells of two keepers and a lost boat",
    "the brass fittings are polished every week",
    "lightning struck the copper dome last summer",
    "a rowing race rounds the point each August",
    "the tower leans slightly after the earthquake",
    "children drew the beam sweeping over the bay",
    "a supply boat brought coal and fresh water",
    "the light is visible for twenty nautical miles",
    "a telescope on the balcony watches for whales",
    "fishermen's wives waited by the harbour wall",
    "the staircase spirals around a central column",
    "a restoration fund repaired the cracked glass",
]
assert len(SUBJECTS) == 30

LANGS = ["en", "fr", "de"]
AUTHORS = ["Ada", "Grace", "O'Brien", "Zoë"]
CITIES = ["Zürich", "Paris", "Lyon"]
GOLD = (2, 13, 21, 26, 28)


def make_meta(i):
    m = {"n": i}
    if i % 10 != 9:                       # 9, 19, 29 have no lang
        m["lang"] = LANGS[i % 3]
    if i % 7 != 3:                        # 3, 10, 17, 24 have no year
        m["year"] = 1990 + (i * 11) % 35  # distinct years in 1990..2024
    m["published"] = f"{2015 + (i * 7) % 10}-{(i * 5) % 12 + 1:02d}-{(i * 3) % 28 + 1:02d}"
    if i % 6 != 5:                        # 5, 11, 17, 23, 29 have no draft
        m["draft"] = i % 4 == 0
    m["rating"] = round(-2 + i * 0.35, 2)  # -2.0 .. 8.15, fractional and negative
    if i % 5 != 4:                        # 4, 9, 14, 19, 24, 29 have no author
        a = {"name": AUTHORS[i % 4]}
        if i % 2 == 0:
            a["address"] = {"city": CITIES[i % 3]}
        m["author"] = a
    if i in GOLD:
        m["tier"] = "gold"
    if i % 8 == 0:
        m["région"] = "Bretagne"
    if i % 2 == 0:
        m["page count"] = i * 10
    m["title"] = f'Note "{i}"'
    return m


DOCS = {f"d{i:02d}": (f"Lighthouse note {i}: {SUBJECTS[i]}.", make_meta(i)) for i in range(30)}
META = {doc_id: meta for doc_id, (_text, meta) in DOCS.items()}
P9 = META["d09"]["published"]


def expected(flt, meta=META):
    return {doc_id for doc_id, m in meta.items() if matches(m, flt)}


CASES = [
    # equality
    ("eq-string", {"lang": "fr"}),
    ("eq-number", {"year": 2019}),
    ("eq-number-as-float", {"year": 2019.0}),
    ("eq-float", {"rating": 1.5}),
    ("eq-true", {"draft": True}),
    ("eq-false", {"draft": False}),
    ("eq-apostrophe", {"author.name": "O'Brien"}),
    ("eq-double-quotes", {"title": 'Note "7"'}),
    ("eq-unicode-value", {"author.name": "Zoë"}),
    ("eq-unicode-key", {"région": "Bretagne"}),
    ("eq-key-with-space", {"page count": 120}),
    ("eq-keys-anded", {"lang": "en", "draft": False}),
    ("eq-three-keys-anded", {"lang": "de", "draft": False, "author.name": "O'Brien"}),
    ("$eq", {"lang": {"$eq": "de"}}),
    ("$eq-bool", {"draft": {"$eq": False}}),
    # $ne (also matches a missing field)
    ("$ne-string", {"lang": {"$ne": "en"}}),
    ("$ne-number", {"year": {"$ne": 2019}}),
    ("$ne-bool", {"draft": {"$ne": True}}),
    ("$ne-absent-everywhere", {"nosuchfield": {"$ne": 1}}),
    ("$ne-minority-field", {"tier": {"$ne": "gold"}}),
    # ranges, numbers
    ("$gt", {"year": {"$gt": 2019}}),
    ("$gte", {"year": {"$gte": 2019}}),
    ("$lt", {"year": {"$lt": 2000}}),
    ("$lte", {"year": {"$lte": 2000}}),
    ("range-anded", {"year": {"$gte": 2000, "$lt": 2010}}),
    ("range-empty-interval", {"year": {"$gt": 2010, "$lt": 2005}}),
    ("$gt-float", {"rating": {"$gt": 1.5}}),
    ("$gte-float", {"rating": {"$gte": 1.5}}),
    ("$lt-negative", {"rating": {"$lt": 0}}),
    ("$lte-negative-boundary", {"rating": {"$lte": -2}}),
    ("$lt-huge-skips-missing", {"year": {"$lt": 1e12}}),
    ("$gte-key-with-space", {"page count": {"$gte": 100}}),
    # ranges, strings (lexicographic; ISO dates)
    ("dates-in-2020", {"published": {"$gte": "2020-01-01", "$lt": "2021-01-01"}}),
    ("dates-lte-boundary", {"published": {"$lte": P9}}),
    ("dates-gt-boundary", {"published": {"$gt": P9}}),
    ("string-lt", {"lang": {"$lt": "en"}}),
    ("string-range-skips-missing", {"tier": {"$lt": "zzz"}}),
    # $in / $nin
    ("$in-strings", {"lang": {"$in": ["en", "fr"]}}),
    ("$in-numbers", {"year": {"$in": [1990, 2000, 2019, 1800]}}),
    ("$in-bool", {"draft": {"$in": [True]}}),
    ("$in-single", {"author.name": {"$in": ["Zoë"]}}),
    ("$in-none-present", {"lang": {"$in": ["es", "it"]}}),
    ("$nin-strings", {"lang": {"$nin": ["en", "fr"]}}),
    ("$nin-numbers", {"year": {"$nin": [2000, 2019]}}),
    ("$nin-dotted", {"author.name": {"$nin": ["Ada", "Grace"]}}),
    ("$in-and-$nin", {"lang": {"$in": ["en", "de"], "$nin": ["de"]}}),
    # dotted paths
    ("dotted-eq", {"author.name": "Ada"}),
    ("dotted-two-levels", {"author.address.city": "Zürich"}),
    ("dotted-$ne-missing", {"author.address.city": {"$ne": "Paris"}}),
    ("dotted-range", {"author.address.city": {"$gte": "Paris"}}),
    ("dotted-into-scalar-eq", {"lang.x": "en"}),
    ("dotted-into-scalar-$ne", {"lang.x": {"$ne": "en"}}),
    # $and / $or
    ("$and", {"$and": [{"lang": "en"}, {"year": {"$gte": 2000}}]}),
    ("$or", {"$or": [{"lang": "de"}, {"draft": True}]}),
    ("$or-single", {"$or": [{"tier": "gold"}]}),
    ("$and-single", {"$and": [{"author.name": "Grace"}]}),
    ("$or-of-$and", {"$or": [{"$and": [{"lang": "fr"}, {"year": {"$lt": 2005}}]},
                             {"$and": [{"author.name": "Ada"}, {"draft": {"$ne": True}}]}]}),
    ("$and-of-$or", {"$and": [{"$or": [{"lang": "en"}, {"lang": "de"}]},
                              {"$or": [{"draft": True}, {"year": {"$gt": 2015}}]}]}),
    ("field-beside-$or", {"lang": "en", "$or": [{"year": {"$lt": 2000}}, {"rating": {"$gt": 6}}]}),
    ("$and-beside-$or", {"$and": [{"year": {"$gte": 1995}}],
                         "$or": [{"tier": "gold"}, {"author.name": "Zoë"}]}),
    ("deep-nesting", {"$or": [{"$and": [{"$or": [{"$and": [{"lang": "fr"}, {"draft": False}]},
                                                  {"tier": "gold"}]},
                                         {"year": {"$ne": 2004}}]},
                              {"n": 0}]}),
    ("$and-of-$ne", {"$and": [{"lang": {"$ne": "en"}}, {"year": {"$nin": [2000, 1990]}}]}),
    # matching nothing
    ("none-eq", {"lang": "xx"}),
    ("none-range", {"year": {"$gt": 3000}}),
    ("none-contradiction", {"$and": [{"lang": "en"}, {"lang": "fr"}]}),
    ("none-absent-field", {"nosuchfield": "x"}),
]


def test_corpus_covers_the_cases():
    """Guard against a corpus edit that makes the checks vacuous."""
    sizes = {name: len(expected(flt)) for name, flt in CASES}
    assert sum(1 for s in sizes.values() if 3 < s < 30) >= 40, sizes
    assert {name for name, s in sizes.items() if s == 0} == \
        {"range-empty-interval", "dotted-into-scalar-eq", "$in-none-present", "none-eq",
         "none-range", "none-contradiction", "none-absent-field"}, sizes
    assert sizes["$ne-number"] == 29        # includes the 4 documents without a year
    assert sizes["$ne-absent-everywhere"] == 30


@pytest.fixture(scope="module")
def corpus(ragd_backend):
    ragd_backend.create_collection("filt")
    for doc_id, (text, meta) in DOCS.items():
        body = ragd_backend.add_doc("filt", text, doc_id, meta)
        assert body["chunks"] == 1, body
    return ragd_backend


def search(srv, flt, mode="dense", top_k=WIDE, query=QUERY, coll="filt", expect=200):
    req = {"query": query, "top_k": top_k, "mode": mode}
    if flt is not None:
        req["filter"] = flt
    status, body = srv.request("POST", f"/v1/collections/{coll}/search", req)
    assert status == expect, f"POST /v1/collections/{coll}/search {json.dumps(req)} -> {status} {body}"
    return body["results"] if expect == 200 else body


def check_hits(hits, flt, meta, top_k, ctx):
    exp = expected(flt, meta)
    ids = [h["document_id"] for h in hits]
    assert len({(h["document_id"], h["chunk_id"]) for h in hits}) == len(hits), (ctx, ids)
    wrong = [i for i in ids if i not in exp]
    assert not wrong, f"{ctx}: hits that fail the filter: {wrong} (expected only {sorted(exp)})"
    for h in hits:
        assert h["metadata"] == meta[h["document_id"]], (ctx, h)
    assert len(hits) == min(top_k, len(exp)), \
        f"{ctx}: {len(hits)} hits, want min({top_k}, {len(exp)}): got {sorted(ids)}, want {sorted(exp)}"
    if top_k >= len(exp):
        assert set(ids) == exp


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name,flt", CASES, ids=[c[0] for c in CASES])
def test_filter(corpus, name, flt, mode):
    for top_k in (WIDE, 3):
        hits = search(corpus, flt, mode, top_k)
        check_hits(hits, flt, META, top_k, f"{mode} top_k={top_k} filter={json.dumps(flt)}")
    if not expected(flt):
        assert hits == []


@pytest.mark.parametrize("mode", MODES)
def test_no_filter_is_unfiltered(corpus, mode):
    hits = search(corpus, None, mode)
    assert {h["document_id"] for h in hits} == set(DOCS)


@pytest.mark.parametrize("mode", MODES)
def test_results_stay_ranked(corpus, mode):
    """A filtered list is the unfiltered ranking with the failures taken
    out (same scores, same order), not some other ordering."""
    flt = {"lang": {"$in": ["en", "de"]}}
    query = "a ship at sea in a storm at night by the lighthouse"
    full = search(corpus, None, mode, query=query)
    part = search(corpus, flt, mode, query=query)
    scores = [h["score"] for h in part]
    assert scores == sorted(scores, reverse=True), part
    if mode == "dense":  # BM25 is renormalised and fused ranks shift when candidates drop out
        want = [(h["document_id"], pytest.approx(h["score"], abs=1e-5))
                for h in full if matches(h["metadata"], flt)]
        assert [(h["document_id"], h["score"]) for h in part] == want


TYPED = {"t-true": {"flag": True, "code": 2019}, "t-one": {"flag": 1, "code": "2019"},
         "t-false": {"flag": False, "code": 2019.0}, "t-zero": {"flag": 0},
         "t-str1": {"flag": "1", "code": "x"}, "t-strtrue": {"flag": "true"},
         "t-obj": {"flag": {"a": 1}, "code": ["x"]}}


@pytest.fixture(scope="module")
def typed(ragd_backend):
    ragd_backend.create_collection("typed")
    for doc_id, meta in TYPED.items():
        ragd_backend.add_doc("typed", f"Lighthouse typed {doc_id}.", doc_id, meta)
    return ragd_backend


TYPED_CASES = [{"flag": 1}, {"flag": 0}, {"flag": True}, {"flag": False}, {"flag": "1"},
               {"flag": {"$eq": 1}}, {"flag": {"$in": [1]}}, {"flag": {"$in": [True]}},
               {"flag": {"$in": [0, "true"]}}, {"flag": {"$ne": 1}}, {"flag": {"$ne": True}},
               {"flag": {"$nin": [0]}}, {"flag": {"$gte": 1}}, {"flag": {"$lt": 1}},
               {"code": 2019}, {"code": "2019"}, {"code": {"$gte": 2000}}, {"code": {"$gte": "2000"}},
               {"flag": '{"a":1}'}, {"code": '["x"]'}, {"code": {"$in": ['["x"]', "x"]}},
               {"flag": {"$ne": '{"a":1}'}}]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("flt", TYPED_CASES, ids=[json.dumps(f) for f in TYPED_CASES])
def test_values_compare_only_within_their_type(typed, flt, mode):
    """Strings, numbers and booleans are three kinds of value: 1 is not true,
    0 is not false, "2019" is not 2019, and an object or array field equals
    no string (not even its own JSON text) -- as the server already has it
    for boolean operands and for ranges."""
    hits = search(typed, flt, mode, coll="typed")
    check_hits(hits, flt, TYPED, WIDE, f"{mode} filter={json.dumps(flt)}")


# -- few matches: still a full top_k ---------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_minority_filter_fills_top_k(corpus, mode):
    """The 5 documents furthest from the query are the only ones the filter
    keeps: top_k 5 must still return all 5 of them."""
    query = "a cargo ship steers clear of the reef at night near the lighthouse"
    ranking = [h["document_id"] for h in search(corpus, None, mode, query=query)]
    assert len(ranking) == 30
    worst = ranking[-5:]
    flt = {"n": {"$in": [META[d]["n"] for d in worst]}}
    hits = search(corpus, flt, mode, top_k=5, query=query)
    assert sorted(h["document_id"] for h in hits) == sorted(worst), (flt, hits)
    hits = search(corpus, {"tier": "gold"}, mode, top_k=5, query=query)
    assert sorted(h["document_id"] for h in hits) == [f"d{i:02d}" for i in GOLD], hits
    hits = search(corpus, {"tier": "gold"}, mode, top_k=2, query=query)
    assert len(hits) == 2 and all(h["metadata"].get("tier") == "gold" for h in hits), hits


MANY = 300
RARE = ["a recipe for plum cake with cinnamon", "the rules of underwater hockey",
        "tax law for small bakeries", "a sonnet about autumn leaves", "quantum chromodynamics"]


@pytest.fixture(scope="module")
def many(ragd_backend):
    """A bigger collection in which the filter keeps 5 of 300 documents, far
    from the query: an implementation that over-fetches a few times top_k
    and then filters comes back short."""
    ragd_backend.create_collection("many")
    for i in range(MANY):
        subj = SUBJECTS[i % 30]
        text = f"Lighthouse log {i}, variant {i // 30}: {subj}."
        meta = {"n": i, "group": "common"}
        ragd_backend.add_doc("many", text, f"m{i:03d}", meta)
    return ragd_backend


@pytest.mark.parametrize("mode", MODES)
def test_rare_matches_in_a_big_collection(many, mode):
    query = "the keeper trims the wick before a winter storm in the lighthouse"
    ranking = [h["document_id"] for h in search(many, None, mode, top_k=MANY, query=query,
                                                coll="many")]
    assert len(ranking) == MANY
    worst = ranking[-5:]
    flt = {"n": {"$in": [int(d[1:]) for d in worst]}}
    for top_k in (5, 3, 1, 50):
        hits = search(many, flt, mode, top_k=top_k, query=query, coll="many")
        got = [h["document_id"] for h in hits]
        assert len(got) == min(top_k, 5) and set(got) <= set(worst), \
            f"{mode} top_k={top_k} filter={json.dumps(flt)}: {got} (want from {worst})"
    one = ranking[-1]
    hits = search(many, {"n": int(one[1:])}, mode, top_k=10, query=query, coll="many")
    assert [h["document_id"] for h in hits] == [one]
    hits = search(many, {"group": "common", "n": {"$gte": 290}}, mode, top_k=10, query=query,
                  coll="many")
    assert sorted(h["document_id"] for h in hits) == [f"m{i}" for i in range(290, 300)]
    assert search(many, {"group": "rare"}, mode, top_k=10, query=query, coll="many") == []


# -- invalid filters ---------------------------------------------------------------

def nest_and(levels, leaf):
    f = leaf
    for _ in range(levels):
        f = {"$and": [f]}
    return f


BAD = [
    ("string", "lang=en"),
    ("number", 5),
    ("true", True),
    ("array", [{"lang": "en"}]),
    ("empty-array", []),
    ("$regex", {"lang": {"$regex": "e.*"}}),
    ("unknown-top-level-op", {"$where": "1"}),
    ("$not", {"$not": {"lang": "en"}}),
    ("unknown-op-beside-known", {"year": {"$gt": 2000, "$foo": 1}}),
    ("$in-string", {"lang": {"$in": "en"}}),
    ("$in-number", {"year": {"$in": 2000}}),
    ("$in-object", {"lang": {"$in": {"en": 1}}}),
    ("$in-empty", {"lang": {"$in": []}}),
    ("$nin-string", {"lang": {"$nin": "en"}}),
    ("$nin-empty", {"lang": {"$nin": []}}),
    ("$in-object-element", {"lang": {"$in": ["en", {"x": 1}]}}),
    ("$in-array-element", {"lang": {"$in": [["en"]]}}),
    ("$and-empty", {"$and": []}),
    ("$or-empty", {"$or": []}),
    ("$and-object", {"$and": {"lang": "en"}}),
    ("$or-string", {"$or": "lang"}),
    ("$and-scalar-element", {"$and": ["lang"]}),
    ("$or-array-element", {"$or": [[{"lang": "en"}]]}),
    ("$gt-array", {"year": {"$gt": [1]}}),
    ("$gt-true", {"year": {"$gt": True}}),
    ("$lt-object", {"year": {"$lt": {"a": 1}}}),
    ("$lte-null", {"year": {"$lte": None}}),
    ("$gte-false", {"draft": {"$gte": False}}),
    ("eq-object", {"author": {"name": "Ada"}}),
    ("eq-empty-object", {"lang": {}}),
    ("eq-array", {"lang": ["en"]}),
    ("$eq-object", {"lang": {"$eq": {"a": 1}}}),
    ("$eq-array", {"lang": {"$eq": ["en"]}}),
    ("$ne-array", {"lang": {"$ne": ["en"]}}),
    ("empty-field", {"": "en"}),
    ("empty-field-in-$or", {"$or": [{"lang": "en"}, {"": 1}]}),
    ("bad-deep-inside", {"$or": [{"lang": "en"}, {"$and": [{"year": {"$regex": "x"}}]}]}),
    ("empty-$or-deep-inside", {"$and": [{"lang": "en"}, {"$or": []}]}),
    ("too-deep", nest_and(12, {"lang": "en"})),
    ("too-many-conditions-$or", {"$or": [{"n": i} for i in range(100)]}),
    ("too-many-conditions-keys", {f"k{i}": i for i in range(70)}),
    ("too-many-conditions-$and", {"$and": [{"year": {"$ne": 1000 + i}} for i in range(65)] +
                                  [{"lang": "en"}]}),
]


def assert_bad_filter(srv, flt, mode, coll="filt"):
    req = {"query": QUERY, "top_k": 5, "mode": mode, "filter": flt}
    status, body = srv.request("POST", f"/v1/collections/{coll}/search", req)
    ctx = f"POST /v1/collections/{coll}/search {json.dumps(req)} -> {status} {body}"
    assert status == 400, ctx
    err = (body or {}).get("error") or {}
    assert err.get("code") == "invalid_argument", ctx
    assert err.get("field") == "filter", ctx
    assert isinstance(err.get("message"), str) and err["message"], ctx


@pytest.mark.parametrize("name,flt", BAD, ids=[c[0] for c in BAD])
def test_bad_filter(corpus, name, flt):
    assert_bad_filter(corpus, flt, "dense")
    # and the server still serves
    hits = search(corpus, {"lang": "fr"}, "dense", 5)
    check_hits(hits, {"lang": "fr"}, META, 5, "after a bad filter")


BAD_SAMPLE = [c for c in BAD if c[0] in ("string", "$regex", "$in-empty", "$or-empty", "$gt-true",
                                         "eq-object", "empty-field", "too-deep",
                                         "too-many-conditions-$or")]


@pytest.mark.parametrize("mode", ("lexical", "hybrid"))
@pytest.mark.parametrize("name,flt", BAD_SAMPLE, ids=[c[0] for c in BAD_SAMPLE])
def test_bad_filter_other_modes(corpus, name, flt, mode):
    assert_bad_filter(corpus, flt, mode)


def test_bad_filter_on_missing_collection_is_still_an_error(corpus):
    status, body = corpus.request("POST", "/v1/collections/nope/search",
                                  {"query": QUERY, "filter": {"lang": {"$regex": "x"}}})
    assert status in (400, 404), (status, body)


def test_limits_leave_room_for_real_filters(corpus):
    """Well inside the limits is fine: a few levels of nesting, a few dozen
    conditions."""
    flt = nest_and(5, {"lang": "en"})
    check_hits(search(corpus, flt), flt, META, WIDE, json.dumps(flt))
    flt = {"$or": [{"n": i} for i in range(0, 30, 2)]}
    check_hits(search(corpus, flt), flt, META, WIDE, json.dumps(flt))
    flt = {f"k{i}": {"$ne": i} for i in range(20)}
    check_hits(search(corpus, flt), flt, META, WIDE, json.dumps(flt))
    flt = {"n": {"$in": list(range(0, 200, 3))}}  # one condition, many values
    check_hits(search(corpus, flt), flt, META, WIDE, json.dumps(flt))


@pytest.mark.parametrize("field", ['x") OR 1=1 --', "x' OR '1'='1", "lang'", 'lang"', "a[0]",
                                   "*", "lang\\", "lang\u0000junk", "$.lang", "lang..x",
                                   ".lang", "lang.", "lang[#-1]", "é" * 300])
def test_odd_field_names_never_leak_documents(corpus, field):
    """Field names that would break a naive SQL or JSON-path rendering: a 400
    naming the filter is fine, and so is an empty result (no document has
    such a field); unfiltered results or a 5xx are not."""
    req = {"query": QUERY, "top_k": 5, "filter": {field: "en"}}
    status, body = corpus.request("POST", "/v1/collections/filt/search", req)
    ctx = f"POST /v1/collections/filt/search {json.dumps(req)} -> {status} {body}"
    if status == 400:
        # a NUL in any object key is refused by the JSON reader itself, for the whole body
        assert body["error"]["field"] == ("body" if "\0" in field else "filter"), ctx
    else:
        assert status == 200 and body["results"] == [], ctx
    check_hits(search(corpus, {"lang": "de"}, "dense", 5), {"lang": "de"}, META, 5, "afterwards")


# -- filters follow writes -----------------------------------------------------------

def check_sets(srv, coll, cases):
    for flt, want in cases:
        for mode in MODES:
            hits = search(srv, flt, mode, coll=coll)
            got = sorted(h["document_id"] for h in hits)
            assert got == sorted(want), f"{coll} {mode} filter={json.dumps(flt)}: {got} != {sorted(want)}"


def test_filters_follow_replace_and_delete(corpus):
    srv = corpus
    srv.create_collection("mut")
    ta, tb, tc = ("Lighthouse a: the keeper rows ashore for bread.",
                  "Lighthouse b: gulls wheel over the rocks.",
                  "Lighthouse c: the lamp turns all night.")
    srv.add_doc("mut", ta, "a", {"lang": "en", "year": 2000, "author": {"name": "Ada"}})
    srv.add_doc("mut", tb, "b", {"lang": "fr"})
    srv.add_doc("mut", tc, "c", {"lang": "en"})
    check_sets(srv, "mut", [({"lang": "en"}, ["a", "c"]), ({"year": 2000}, ["a"]),
                            ({"author.name": "Ada"}, ["a"])])

    # same id, same text, new metadata
    body = srv.add_doc("mut", ta, "a", {"lang": "fr", "year": 2010})
    assert body["replaced"] is True, body
    check_sets(srv, "mut", [({"lang": "en"}, ["c"]), ({"lang": "fr"}, ["a", "b"]),
                            ({"year": 2000}, []), ({"year": {"$gt": 2005}}, ["a"]),
                            ({"author.name": "Ada"}, []),
                            ({"author.name": {"$ne": "Ada"}}, ["a", "b", "c"])])
    hit = [h for h in search(srv, {"lang": "fr"}, coll="mut") if h["document_id"] == "a"][0]
    assert hit["metadata"] == {"lang": "fr", "year": 2010}, hit

    # same id, new text, no metadata at all
    srv.add_doc("mut", "Lighthouse a again: now about the foghorn.", "a")
    check_sets(srv, "mut", [({"lang": "fr"}, ["b"]), ({"lang": {"$ne": "en"}}, ["a", "b"]),
                            ({"year": {"$gt": 0}}, []), ({"lang": {"$nin": ["fr"]}}, ["a", "c"])])

    assert srv.request("DELETE", "/v1/collections/mut/documents/b")[0] == 200
    check_sets(srv, "mut", [({"lang": "fr"}, []), ({"lang": {"$ne": "en"}}, ["a"]),
                            ({"$or": [{"lang": "fr"}, {"lang": "en"}]}, ["c"])])
    assert srv.request("DELETE", "/v1/collections/mut/documents/c")[0] == 200
    check_sets(srv, "mut", [({"lang": "en"}, []), ({"lang": {"$ne": "en"}}, ["a"])])


def test_filters_survive_restart(ragd_factory, backend):
    srv = backend.start(ragd_factory)
    srv.create_collection("rs")
    meta = {}
    for i in range(8):
        meta[f"r{i}"] = {"lang": LANGS[i % 3], "year": 2000 + i}
        srv.add_doc("rs", f"Lighthouse {i}: {SUBJECTS[i]}.", f"r{i}", meta[f"r{i}"])
    srv.add_doc("rs", "Lighthouse 0: replaced text.", "r0", {"lang": "de", "year": 1999})
    meta["r0"] = {"lang": "de", "year": 1999}
    srv.restart()
    for flt in ({"lang": "de"}, {"year": {"$lt": 2003}}, {"$or": [{"lang": "fr"}, {"year": 1999}]}):
        for mode in MODES:
            check_hits(search(srv, flt, mode, coll="rs"), flt, meta, WIDE, f"{mode} {flt}")


# -- CLI ------------------------------------------------------------------------------

def test_cli_search_filter(ragd_factory):
    srv = ragd_factory()
    srv.create_collection("kb")
    for doc_id in ("d00", "d01", "d02", "d03", "d04", "d05", "d06", "d07", "d08", "d09"):
        text, meta = DOCS[doc_id]
        srv.add_doc("kb", text, doc_id, meta)
    sub = {d: META[d] for d in ("d00", "d01", "d02", "d03", "d04", "d05", "d06", "d07", "d08", "d09")}
    data = srv.data_dir
    srv.stop()

    def cli(*args, **kw):
        return run_cli("search", "--collection", "kb", *args, data_dir=data, **kw)

    for mode in MODES:
        for flt in ({"lang": "fr"}, {"year": {"$gte": 2010}}, {"author.name": {"$nin": ["Ada"]}},
                    {"$or": [{"draft": True}, {"tier": "gold"}]}):
            res = cli("--mode", mode, "--json", "--top-k", "20", "--filter", json.dumps(flt), QUERY)
            hits = res.json_lines()
            check_hits(hits, flt, sub, 20, f"CLI {mode} --filter {json.dumps(flt)}")
        res = cli("--mode", mode, "--json", "--top-k", "2", "--filter", '{"lang": "en"}', QUERY)
        check_hits(res.json_lines(), {"lang": "en"}, sub, 2, f"CLI {mode} top-k 2")

    res = cli("--json", "--filter", '{"lang": "xx"}', QUERY)
    assert res.stdout.strip() == "", res
    res = cli("--filter", '{"lang": "de"}', QUERY)  # human-readable output
    assert "d02" in res.stdout and "d05" in res.stdout and "d01" not in res.stdout, res

    for bad_json in ('{lang', '{"lang": "en"', "", "lang=en", '{"lang": en}'):
        res = cli("--filter", bad_json, QUERY, expect_ok=False)
        assert res.returncode == 2 and "filter" in res.stderr.lower(), res
    for bad in ('{"lang": {"$regex": "e"}}', '"en"', '{"lang": {"$in": []}}', '{"": 1}'):
        res = cli("--filter", bad, QUERY, expect_ok=False)
        assert res.returncode != 0 and "filter" in res.stderr.lower(), res
        assert res.stdout.strip() == "", res
