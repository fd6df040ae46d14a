"""
Search modes: dense (embeddings), lexical (BM25 over FTS5) and hybrid
(reciprocal rank fusion), and that the lexical index follows deletes,
replacements and restarts like the vector index.
"""
import pytest

from conftest import run_cli

DOCS = {
    "volcano": "Volcanoes erupt when magma rises through the crust and lava pours out.",
    "quark": "The zyxquark protocol handshake uses three messages before data flows.",
    "bread": "Sourdough bread rises slowly because wild yeast ferments the dough.",
    "chess": "In chess the Sicilian defence answers the king's pawn opening.",
    "cafe": "A small café near the station serves espresso and croissants.",
}


@pytest.fixture(scope="module")
def modes(ragd):
    ragd.create_collection("modes")
    for doc_id, text in DOCS.items():
        ragd.add_doc("modes", text, doc_id)
    return ragd


def search(srv, query, mode, top_k=5, coll="modes"):
    status, body = srv.request("POST", f"/v1/collections/{coll}/search",
                               {"query": query, "top_k": top_k, "mode": mode})
    assert status == 200, body
    return body["results"]


def test_lexical_finds_rare_terms(modes):
    hits = search(modes, "zyxquark", "lexical")
    assert [h["document_id"] for h in hits] == ["quark"]
    assert hits[0]["score"] == pytest.approx(1.0)


def test_lexical_folds_case_and_diacritics(modes):
    assert search(modes, "CAFE", "lexical")[0]["document_id"] == "cafe"


def test_hybrid_is_the_default(modes):
    status, body = modes.request("POST", "/v1/collections/modes/search",
                                 {"query": "molten rock from a mountain", "top_k": 5})
    assert status == 200
    assert body["results"] == search(modes, "molten rock from a mountain", "hybrid")
    assert body["results"] != search(modes, "molten rock from a mountain", "dense")
    assert body["results"][0]["document_id"] == "volcano"


def test_hybrid_fuses_both_rankings(modes):
    """One word only BM25 can place, one phrase only the embeddings can:
    hybrid ranks both documents first."""
    hits = search(modes, "zyxquark molten rock from a mountain", "hybrid", top_k=2)
    assert {h["document_id"] for h in hits} == {"quark", "volcano"}
    status, body = modes.request("POST", "/v1/collections/modes/search",
                                 {"query": "zyxquark molten rock from a mountain", "top_k": 2,
                                  "mode": "hybrid", "fusion": "rrf"})
    assert status == 200
    assert {h["document_id"] for h in body["results"]} == {"quark", "volcano"}
    assert all(0 < h["score"] <= 2.0 / 61 for h in body["results"])


def test_mode_is_validated(modes):
    status, body = modes.request("POST", "/v1/collections/modes/search",
                                 {"query": "bread", "mode": "fuzzy"})
    assert status == 400 and body["error"]["field"] == "mode", body
    status, body = modes.request("POST", "/v1/collections/modes/search",
                                 {"query": "bread", "mode": 3})
    assert status == 400 and body["error"]["field"] == "mode", body


@pytest.mark.parametrize("query", ['"unbalanced', "NEAR(lava flow, 2)", "text: lava", "lava*",
                                   "a OR AND NOT", "(((", "-lava", "!!!"])
def test_fts_syntax_in_queries_is_plain_text(modes, query):
    for mode in ("lexical", "hybrid"):
        search(modes, query, mode)


def test_lexical_follows_deletes_replacements_and_restarts(ragd_factory):
    srv = ragd_factory()
    srv.create_collection("lx")
    srv.add_doc("lx", "The zyxquark protocol handshake uses three messages.", "q")
    srv.add_doc("lx", "Chess openings such as the Sicilian defence.", "c")
    assert [h["document_id"] for h in search(srv, "zyxquark", "lexical", coll="lx")] == ["q"]
    srv.add_doc("lx", "Now about gardening and tomatoes instead.", "q")  # replace
    assert search(srv, "zyxquark", "lexical", coll="lx") == []
    assert search(srv, "tomatoes", "lexical", coll="lx")[0]["document_id"] == "q"
    assert srv.request("DELETE", "/v1/collections/lx/documents/c")[0] == 200
    assert search(srv, "sicilian", "lexical", coll="lx") == []
    srv.restart()
    assert search(srv, "tomatoes", "lexical", coll="lx")[0]["document_id"] == "q"
    assert search(srv, "sicilian", "lexical", coll="lx") == []


def test_cli_search_modes(tmp_path):
    doc = tmp_path / "quark.txt"
    doc.write_text(DOCS["quark"])
    other = tmp_path / "bread.txt"
    other.write_text(DOCS["bread"])
    run_cli("ingest", str(doc), str(other), data_dir=tmp_path / "d")
    res = run_cli("search", "--mode", "lexical", "--json", "zyxquark", data_dir=tmp_path / "d")
    assert [h["document_id"] for h in res.json_lines()] == ["quark.txt"]
    bad = run_cli("search", "--mode", "fuzzy", "x", data_dir=tmp_path / "d", expect_ok=False)
    assert bad.returncode == 2 and "mode" in bad.stderr


def test_porter_stemming_per_collection(ragd_factory):
    srv = ragd_factory()
    assert srv.create_collection("stem")["stemming"] == "porter"  # the default
    assert srv.create_collection("plain", stemming="none")["stemming"] == "none"
    for coll in ("stem", "plain"):
        srv.add_doc(coll, "Fresh bagels are baked every morning.", "b")
    assert [h["document_id"] for h in search(srv, "bagel baking", "lexical", coll="stem")] == ["b"]
    assert search(srv, "bagel baking", "lexical", coll="plain") == []
    status, body = srv.request("POST", "/v1/collections", {"name": "bad", "stemming": "snowball"})
    assert status == 400 and body["error"]["field"] == "stemming", body
    srv.restart()
    assert srv.collection("stem")["stemming"] == "porter"
    assert [h["document_id"] for h in search(srv, "bagel", "lexical", coll="stem")] == ["b"]


def test_weighted_fusion(modes):
    """Weighted fusion: alpha 1 is the dense ranking, alpha 0 the lexical
    one; scores lie in [0, 1]."""
    q = "zyxquark molten rock from a mountain"

    def ranked(body):
        status, res = modes.request("POST", "/v1/collections/modes/search",
                                    {"query": q, "top_k": 5, "mode": "hybrid", **body})
        assert status == 200, res
        return res["results"]

    dense_top = search(modes, q, "dense", top_k=1)[0]["document_id"]
    assert ranked({"fusion": "weighted", "alpha": 1})[0]["document_id"] == dense_top
    assert ranked({"fusion": "weighted", "alpha": 0})[0]["document_id"] == "quark"
    both = ranked({"fusion": "weighted", "alpha": 0.5})
    assert {h["document_id"] for h in both[:2]} == {"quark", "volcano"}
    assert all(0 <= h["score"] <= 1 for h in both)
    assert ranked({"fusion": "rrf", "rrf_k": 1})[0]["score"] <= 1.0


@pytest.mark.parametrize("body, field", [
    ({"fusion": "max"}, "fusion"), ({"fusion": 1}, "fusion"),
    ({"alpha": 1.5}, "alpha"), ({"alpha": -0.1}, "alpha"), ({"alpha": "0.5"}, "alpha"),
    ({"rrf_k": 0}, "rrf_k"), ({"rrf_k": 100000}, "rrf_k"),
])
def test_fusion_parameters_validated(modes, body, field):
    status, res = modes.request("POST", "/v1/collections/modes/search",
                                {"query": "bread", "mode": "hybrid", **body})
    assert status == 400 and res["error"]["field"] == field, res
