"""
The OpenAI-compatible API through the official clients: the `openai`
package and LangChain's OpenAIEmbeddings / ChatOpenAI, pointed at ragd with
any API key. Raw HTTP checks the error shape and the corners the clients
hide (token arrays, float vs base64, unknown models).
"""
import base64
import json
import math
import struct

import openai
import pytest
from langchain_openai import OpenAIEmbeddings

from conftest import needs_local_tokenizer

MODEL = "all-MiniLM-L6-v2"
DIM = 384


@pytest.fixture(scope="module")
def client(ragd):
    return openai.OpenAI(base_url=ragd.url + "/v1", api_key="any-key", max_retries=0)


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / (
        math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_models_lists_embedder_and_collections(ragd, client):
    ragd.create_collection("oai_models")
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids
    assert "rag:oai_models" in ids
    m = client.models.retrieve(MODEL)
    assert m.id == MODEL and m.object == "model"
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("no-such-model")
    assert e.value.body["code"] == "model_not_found"


def test_embeddings_with_openai_client(ragd, client):
    texts = ["The cat sat on the mat.", "A kitten rested on the rug.",
             "Quarterly revenue grew by ten percent."]
    # The client asks for base64 unless told otherwise; check both formats agree.
    r64 = client.embeddings.create(model=MODEL, input=texts)
    rfl = client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
    assert [d.index for d in r64.data] == [0, 1, 2]
    assert r64.model == MODEL
    assert r64.usage.prompt_tokens > 0 and r64.usage.total_tokens == r64.usage.prompt_tokens
    for a, b in zip(r64.data, rfl.data):
        assert len(a.embedding) == DIM and len(b.embedding) == DIM
        assert max(abs(x - y) for x, y in zip(a.embedding, b.embedding)) < 1e-6
    v = [d.embedding for d in rfl.data]
    assert abs(math.sqrt(sum(x * x for x in v[0])) - 1.0) < 1e-4
    assert cosine(v[0], v[1]) > cosine(v[0], v[2])
    # The same text through ragd's own search path embeds identically.
    one = client.embeddings.create(model=MODEL, input=texts[0], encoding_format="float")
    assert max(abs(x - y) for x, y in zip(one.data[0].embedding, v[0])) < 1e-5


def test_embeddings_usage_counts_model_tokens(ragd):
    needs_local_tokenizer()
    status, body = ragd.request("POST", "/v1/embeddings",
                                {"model": MODEL, "input": ["hello world"],
                                 "encoding_format": "float"})
    assert status == 200, body
    # [CLS] hello world [SEP]
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}


def test_embeddings_base64_is_little_endian_float32(ragd):
    status, body = ragd.request("POST", "/v1/embeddings",
                                {"model": MODEL, "input": "hello", "encoding_format": "base64"})
    assert status == 200, body
    raw = base64.b64decode(body["data"][0]["embedding"])
    assert len(raw) == DIM * 4
    vec = struct.unpack(f"<{DIM}f", raw)
    assert abs(math.sqrt(sum(x * x for x in vec)) - 1.0) < 1e-4


def test_langchain_openai_embeddings(ragd):
    emb = OpenAIEmbeddings(model=MODEL, base_url=ragd.url + "/v1", api_key="any-key",
                           check_embedding_ctx_length=False, max_retries=0)
    docs = emb.embed_documents(["alpha beta", "gamma delta"])
    q = emb.embed_query("alpha beta")
    assert len(docs) == 2 and len(docs[0]) == DIM
    assert cosine(q, docs[0]) > 0.999


@pytest.mark.parametrize("body, param", [
    ({"model": MODEL, "input": [1, 2, 3]}, "input"),
    ({"model": MODEL, "input": [[1, 2], [3]]}, "input"),
    ({"model": MODEL, "input": []}, "input"),
    ({"model": MODEL, "input": ""}, "input"),
    ({"model": MODEL, "input": ["ok", 5]}, "input"),
    ({"model": MODEL}, "input"),
    ({"input": "x"}, "model"),
    ({"model": MODEL, "input": "x", "encoding_format": "int8"}, "encoding_format"),
    ({"model": MODEL, "input": "x", "dimensions": 128}, "dimensions"),
    ({"model": MODEL, "input": "x", "bogus": 1}, "bogus"),
])
def test_embeddings_bad_input_openai_error_shape(ragd, body, param):
    status, resp = ragd.request("POST", "/v1/embeddings", body)
    assert status == 400, resp
    err = resp["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    assert err["message"]


def test_embeddings_unknown_model_is_404(ragd, client):
    with pytest.raises(openai.NotFoundError) as e:
        client.embeddings.create(model="text-embedding-ada-002", input="x")
    assert e.value.body["param"] == "model"


def test_openai_error_shape_for_malformed_json_and_methods(ragd):
    status, resp, _ = ragd.raw_request("POST", "/v1/embeddings", b"{not json")
    assert status == 400 and resp["error"]["type"] == "invalid_request_error"
    assert "param" in resp["error"]
    status, resp = ragd.request("DELETE", "/v1/models")
    assert status == 405 and resp["error"]["code"] == "method_not_allowed"
    # The rest of the API keeps ragd's own shape.
    status, resp = ragd.request("POST", "/v1/collections", {"name": ""})
    assert status == 400 and set(resp["error"]) == {"code", "message", "field"}


def metric(srv, name):
    status, _, raw = srv.raw_request("GET", "/metrics")
    assert status == 200
    for line in raw.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_models_named_by_requests_load_through_the_lru(ragd_factory, tmp_path):
    """models.dir/<name>.gguf loads on demand into the LRU (capacity 1 here):
    a hit does not reload, a second model evicts the first, load time is in
    model_loading_time_ms, and names outside the directory are not found."""
    from conftest import RAGD_MODEL
    mdir = tmp_path / "gguf"
    mdir.mkdir()
    (mdir / "mini-a.gguf").symlink_to(RAGD_MODEL)
    (mdir / "mini-b.gguf").symlink_to(RAGD_MODEL)
    (mdir / "not-a-model.gguf").write_bytes(b"GGUF but not really")
    srv = ragd_factory(extra_args=["--set", f"models.dir={mdir}",
                                   "--set", "models.cache_capacity=1"])
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="k", max_retries=0)
    base = client.embeddings.create(model=MODEL, input="cache me", encoding_format="float")
    loads0 = metric(srv, "model_loading_time_ms_count")

    a = client.embeddings.create(model="mini-a", input="cache me", encoding_format="float")
    assert a.model == "mini-a"
    assert max(abs(x - y) for x, y in zip(a.data[0].embedding, base.data[0].embedding)) < 1e-5
    assert metric(srv, "model_loading_time_ms_count") == loads0 + 1
    assert metric(srv, "model_loading_time_ms_sum") > 0
    client.embeddings.create(model="mini-a", input="again")
    assert metric(srv, "model_loading_time_ms_count") == loads0 + 1  # cached
    assert metric(srv, "ragd_model_cache_hits_total") >= 1

    client.embeddings.create(model="mini-b", input="other")
    assert metric(srv, "ragd_model_cache_evictions_total") == 1
    assert metric(srv, "ragd_model_cache_models") == 1
    client.embeddings.create(model="mini-a", input="back")
    assert metric(srv, "ragd_model_cache_loads_total") == 3

    for name in ("../gguf/mini-a", "nope", ".hidden"):
        with pytest.raises(openai.NotFoundError):
            client.embeddings.create(model=name, input="x")
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="not-a-model", input="x")
    assert e.value.body["param"] == "model"


# -- chat completions ----------------------------------------------------------

GEN_MODEL = "SmolLM2-135M-Instruct-Q4_1"


@pytest.fixture(scope="module")
def chat_srv(ragd_module_factory, tmp_path_factory):
    from conftest import REPO
    gguf = REPO / "models" / f"{GEN_MODEL}.gguf"
    if not gguf.is_file():
        pytest.fail(f"generation model missing: {gguf} (run `make models`)")
    mdir = tmp_path_factory.mktemp("gguf")
    (mdir / "smol-copy.gguf").symlink_to(gguf)
    # One thread per generation: ggml's spinning threads crawl on a shared, busy CPU.
    return ragd_module_factory(extra_args=["--set", f"models.generator={gguf}",
                                           "--set", "models.gen_threads=1",
                                           "--set", f"models.dir={mdir}"])


@pytest.fixture(scope="module")
def chat_client(chat_srv):
    return openai.OpenAI(base_url=chat_srv.url + "/v1", api_key="any-key", max_retries=0)


def test_chat_completion_with_openai_client(chat_client):
    r = chat_client.chat.completions.create(
        model=GEN_MODEL, max_tokens=16, temperature=0,
        messages=[{"role": "system", "content": "Answer in a few words."},
                  {"role": "user", "content": "What is the capital of France?"}])
    assert r.object == "chat.completion"
    assert r.model == GEN_MODEL
    assert r.choices[0].message.role == "assistant"
    assert "Paris" in r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    ids = [m.id for m in chat_client.models.list()]
    assert GEN_MODEL in ids


def test_chat_streaming_matches_whole_answer(chat_client):
    msgs = [{"role": "user", "content": "Name three colours."}]
    whole = chat_client.chat.completions.create(model=GEN_MODEL, messages=msgs, max_tokens=24,
                                                temperature=0)
    chunks = list(chat_client.chat.completions.create(
        model=GEN_MODEL, messages=msgs, max_tokens=24, temperature=0, stream=True,
        stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    pieces = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 3  # streamed piece by piece, not in one go
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_chat_stream_raw_sse_ends_with_done(chat_srv):
    status, _, raw = chat_srv.raw_request(
        "POST", "/v1/chat/completions",
        {"model": GEN_MODEL, "messages": [{"role": "user", "content": "Hi"}],
         "max_tokens": 4, "stream": True})
    assert status == 200
    events = [e for e in raw.decode().split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events), events
    assert events[-1] == "data: [DONE]"
    for e in events[:-1]:
        json.loads(e[len("data: "):])


def test_langchain_chat_openai_invoke_and_stream(chat_srv):
    from langchain_openai import ChatOpenAI
    llm = ChatOpenAI(model=GEN_MODEL, base_url=chat_srv.url + "/v1", api_key="any-key",
                     temperature=0, max_tokens=16, max_retries=0)
    msg = llm.invoke("What is the capital of France? Answer in one word.")
    assert "Paris" in msg.content
    parts = [c.content for c in llm.stream("Count from one to five.")]
    assert len(parts) > 3 and "".join(parts).strip()


def test_chat_model_from_models_dir_via_cache(chat_srv, chat_client):
    """A GGUF under models.dir that is not the loaded generator loads on demand
    through the model cache, sharing nothing but the answer's shape."""
    loads = metric(chat_srv, "ragd_model_cache_loads_total")
    r = chat_client.chat.completions.create(
        model="smol-copy", max_tokens=8, temperature=0,
        messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert r.model == "smol-copy" and r.choices[0].message.content
    chat_client.chat.completions.create(model="smol-copy", max_tokens=2,
                                        messages=[{"role": "user", "content": "Hi"}])
    assert metric(chat_srv, "ragd_model_cache_loads_total") == loads + 1


@pytest.mark.parametrize("body, param, status", [
    ({"model": GEN_MODEL, "messages": []}, "messages", 400),
    ({"model": GEN_MODEL}, "messages", 400),
    ({"model": GEN_MODEL, "messages": [{"role": "tool", "content": "x"}]}, "messages", 400),
    ({"model": GEN_MODEL, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "x"}}]}]}, "messages", 400),
    ({"model": GEN_MODEL, "messages": [{"role": "user", "content": "x"}], "n": 2}, "n", 400),
    ({"model": GEN_MODEL, "messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "function", "function": {"name": "f"}}]}, "tools", 400),
    ({"model": GEN_MODEL, "messages": [{"role": "user", "content": "x"}],
      "temperature": 5}, "temperature", 400),
    ({"model": GEN_MODEL, "messages": [{"role": "user", "content": "x"}],
      "max_tokens": 0}, "max_tokens", 400),
    ({"model": GEN_MODEL, "messages": [{"role": "user", "content": "x"}],
      "stop": ["a", "b", "c", "d", "e"]}, "stop", 400),
    ({"model": GEN_MODEL, "messages": [{"role": "user", "content": "x"}],
      "stream": "yes"}, "stream", 400),
    ({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}, "model", 404),
    ({"model": "rag:no_such_collection",
      "messages": [{"role": "user", "content": "x"}]}, "model", 404),
])
def test_chat_bad_requests_openai_errors(chat_srv, body, param, status):
    got, resp = chat_srv.request("POST", "/v1/chat/completions", body)
    assert got == status, resp
    assert set(resp["error"]) == {"message", "type", "param", "code"}
    assert resp["error"]["param"] == param


def test_chat_accepts_client_extras(chat_srv):
    """Fields clients send that only tune OpenAI's service are accepted."""
    status, body = chat_srv.request("POST", "/v1/chat/completions", {
        "model": GEN_MODEL, "messages": [{"role": "developer", "content": "Be brief."},
                                         {"role": "user", "content": [
                                             {"type": "text", "text": "Hi"}]}],
        "max_completion_tokens": 3, "presence_penalty": 0, "frequency_penalty": 0,
        "user": "u", "n": 1, "logprobs": False, "response_format": {"type": "text"},
        "seed": 7, "stop": "\n\n"})
    assert status == 200, body
    assert body["usage"]["completion_tokens"] <= 3


def test_chat_rag_over_a_collection(chat_srv, chat_client):
    chat_srv.create_collection("oai_rag")
    chat_srv.add_doc("oai_rag", "The Eiffel Tower was completed in 1889 for the World Fair "
                     "in Paris. It is 330 metres tall.", doc_id="eiffel")
    chat_srv.add_doc("oai_rag", "Photosynthesis lets plants turn sunlight, water and carbon "
                     "dioxide into sugar and oxygen.", doc_id="plants")
    assert "rag:oai_rag" in [m.id for m in chat_client.models.list()]
    msgs = [{"role": "user", "content": "When was the Eiffel Tower completed?"}]
    r = chat_client.chat.completions.create(model="rag:oai_rag", messages=msgs, max_tokens=48,
                                            temperature=0)
    assert r.model == "rag:oai_rag"
    assert r.choices[0].message.content
    # The citations the answer makes, validated by the pipeline (a 135M model
    # does not always cite: the list may be empty, never wrong).
    cites = r.model_extra["citations"]
    assert isinstance(cites, list)
    assert all(c["document_id"] in ("eiffel", "plants") and c["text"] for c in cites), cites
    # Streamed: the same pipeline, citations on the finishing chunk.
    chunks = list(chat_client.chat.completions.create(
        model="rag:oai_rag", messages=msgs, max_tokens=48, temperature=0, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(final) == 1 and isinstance(final[0].model_extra["citations"], list)


def test_langchain_chat_openai_rag(chat_srv):
    from langchain_openai import ChatOpenAI
    chat_srv.create_collection("oai_rag_lc")
    chat_srv.add_doc("oai_rag_lc", "Mount Everest is 8,849 metres high and lies in Nepal "
                     "and China.", doc_id="everest")
    llm = ChatOpenAI(model="rag:oai_rag_lc", base_url=chat_srv.url + "/v1", api_key="k",
                     temperature=0, max_tokens=32, max_retries=0)
    assert llm.invoke("How high is Mount Everest?").content
    assert "".join(c.content for c in llm.stream("How high is Mount Everest?")).strip()
