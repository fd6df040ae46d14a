"""
Remote model backends against real model servers: three ragd instances
serve /v1/embeddings, a fourth (models.embedder=remote) uses them as a pool.
One server is killed mid-test: requests keep succeeding (retried on the
others), the pool ejects it, and when it comes back on the same port a
health check readmits it. With the hash policy equal inputs reach the same
instance, counted from each model server's own /metrics.
"""
import json
import re
import threading
import time
from pathlib import Path

import pytest

from conftest import RAGD_MODEL

MODEL = "all-MiniLM-L6-v2"
HEALTH_MS = 200


def route_count(srv, route="/v1/embeddings"):
    """POSTs a model server answered on route, from its /metrics."""
    status, _, raw = srv.raw_request("GET", "/metrics")
    assert status == 200
    total = 0
    for line in raw.decode().splitlines():
        if line.startswith("ragd_http_requests_total{") and f'route="{route}"' in line \
                and 'method="POST"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def upstream_up(client):
    """{instance URL: 0/1} from the client's ragd_model_upstream_up gauge."""
    status, _, raw = client.raw_request("GET", "/metrics")
    assert status == 200
    out = {}
    for m in re.finditer(r'^ragd_model_upstream_up\{[^}]*instance="([^"]+)"[^}]*\} (\S+)$',
                         raw.decode(), re.M):
        out[m.group(1)] = float(m.group(2))
    return out


def embed(srv, texts):
    status, body = srv.request("POST", "/v1/embeddings",
                               {"model": MODEL, "input": texts, "encoding_format": "float"})
    assert status == 200, body
    return [d["embedding"] for d in body["data"]]


def wait_for(pred, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def remote_args(servers, policy):
    return ["--set", "models.embedder=remote",
            "--set", "models.remote.urls=" + ",".join(s.url for s in servers),
            "--set", f"models.remote.policy={policy}",
            "--set", f"models.remote.health_interval_ms={HEALTH_MS}",
            "--set", "models.remote.connect_timeout_ms=500",
            "--set", "models.remote.deadline_ms=10000"]


@pytest.fixture
def model_servers(ragd_factory):
    return [ragd_factory() for _ in range(3)]


def test_remote_embedder_matches_local_and_serves_rag(ragd_factory, model_servers):
    client = ragd_factory(extra_args=remote_args(model_servers, "round_robin"))
    texts = ["The Eiffel Tower is in Paris.", "Photosynthesis turns light into sugar."]
    local = embed(model_servers[0], texts)
    remote = embed(client, texts)
    for a, b in zip(local, remote):
        assert max(abs(x - y) for x, y in zip(a, b)) < 1e-5
    # The whole RAG path (ingest, search) works through the remote embedder.
    client.create_collection("pooled")
    client.add_doc("pooled", "The Eiffel Tower was finished in 1889 in Paris.", doc_id="eiffel")
    client.add_doc("pooled", "Plants make sugar from light by photosynthesis.", doc_id="plants")
    hits = client.search("pooled", "Where is the Eiffel Tower?", top_k=1)
    assert hits[0]["document_id"] == "eiffel"
    status, models = client.request("GET", "/v1/models")
    assert MODEL in [m["id"] for m in models["data"]]


def test_remote_vectors_record_their_model_and_a_local_one_can_follow(ragd_factory,
                                                                      model_servers, tmp_path):
    """Chunks embedded remotely record the remote model (name and dimension),
    llama.cpp's log still goes through ragd's, and a collection can move to a local model of models.embedders while the
    default embedder is remote: the local one is loaded with the embedder
    settings, not with the remote default's (pool sizes of 0)."""
    other = tmp_path / "other-minilm.gguf"
    other.write_bytes(Path(RAGD_MODEL).read_bytes())
    client = ragd_factory(extra_args=remote_args(model_servers[:1], "round_robin") +
                          ["--set", f"models.embedders=other={other}"])
    client.create_collection("moving", chunk_size=24, chunk_overlap=0)
    client.add_doc("moving", "The Eiffel Tower was finished in 1889 in Paris.", doc_id="eiffel")
    _, before = client.request("GET", "/v1/collections/moving/documents/eiffel/chunks")
    assert [c["model"] for c in before["chunks"]] == [f"{MODEL}@remote/384"], before
    status, job = client.request("PATCH", "/v1/collections/moving", {"embedding_model": "other"})
    assert status == 202, job
    assert wait_for(lambda: client.request("GET", f"/v1/jobs/{job['job_id']}")[1]["state"]
                    not in ("queued", "running"), timeout=120)
    _, job = client.request("GET", f"/v1/jobs/{job['job_id']}")
    assert job["state"] == "succeeded", job
    _, after = client.request("GET", "/v1/collections/moving/documents/eiffel/chunks")
    assert all(c["model"].startswith("other-minilm@") for c in after["chunks"]), after
    assert client.search("moving", "Where is the Eiffel Tower?", top_k=1)[0]["document_id"] \
        == "eiffel"
    # With no local embedder, the generator's llama.cpp still logs through
    # ragd: stderr stays JSON lines.
    for line in client.stderr_text().splitlines():
        if line.strip():
            json.loads(line)


def test_round_robin_spreads_and_survives_a_kill(ragd_factory, model_servers):
    client = ragd_factory(extra_args=remote_args(model_servers, "round_robin"))
    before = [route_count(s) for s in model_servers]
    for k in range(9):
        embed(client, [f"spread {k}"])
    after = [route_count(s) for s in model_servers]
    assert all(a - b >= 2 for a, b in zip(after, before)), (before, after)

    # Requests run continuously while one model server is killed.
    errors, done = [], []
    stop = threading.Event()

    def load():
        k = 0
        while not stop.is_set():
            status, body = client.request("POST", "/v1/embeddings",
                                          {"model": MODEL, "input": f"load {k}"})
            (done if status == 200 else errors).append((status, body))
            k += 1

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    victim = model_servers[1]
    port = victim.port
    victim.kill()
    assert wait_for(lambda: upstream_up(client).get(victim.url) == 0), upstream_up(client)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert len(done) > 10

    # Back on the same port: readmitted by a health check, and used again.
    victim.start(port=port)
    assert wait_for(lambda: upstream_up(client).get(victim.url) == 1), upstream_up(client)
    base = route_count(victim)
    for k in range(6):
        embed(client, [f"again {k}"])
    assert route_count(victim) - base >= 1


def test_hash_policy_pins_equal_inputs(ragd_factory, model_servers):
    client = ragd_factory(extra_args=remote_args(model_servers, "hash"))
    before = [route_count(s) for s in model_servers]
    for _ in range(6):
        embed(client, ["the same prompt every time"])
    after = [route_count(s) for s in model_servers]
    deltas = [a - b for a, b in zip(after, before)]
    assert sorted(deltas) == [0, 0, 6], deltas
    # Different inputs spread over more than one instance.
    before = after
    for k in range(30):
        embed(client, [f"prompt number {k}"])
    after = [route_count(s) for s in model_servers]
    assert sum(1 for a, b in zip(after, before) if a > b) >= 2, (before, after)


def test_remote_pool_all_down_is_503(ragd_factory, model_servers):
    client = ragd_factory(extra_args=remote_args(model_servers, "least_inflight") +
                          ["--set", "models.remote.deadline_ms=2000"])
    embed(client, ["warm"])
    for s in model_servers:
        s.kill()
    status, body = client.request("POST", "/v1/embeddings", {"model": MODEL, "input": "x"})
    assert status == 503, body
    assert body["error"]["type"] == "server_error"


def test_remote_config_errors(ragd_cli, tmp_path):
    res = ragd_cli("serve", "--set", "models.embedder=remote", "--check-config",
                   data_dir=tmp_path, expect_ok=False)
    assert res.returncode != 0 and "models.remote.urls" in res.stderr, res
    res = ragd_cli("serve", "--set", "models.remote.policy=random", "--check-config",
                   data_dir=tmp_path, expect_ok=False)
    assert res.returncode != 0 and "models.remote.policy" in res.stderr, res


# -- the remote generator -------------------------------------------------------

GEN_MODEL = "SmolLM2-135M-Instruct-Q4_1"


def chat(srv, content, max_tokens=4, stream=False):
    status, _, raw = srv.raw_request("POST", "/v1/chat/completions", {
        "model": GEN_MODEL, "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens, "temperature": 0, "stream": stream})
    assert status == 200, raw[:500]
    if stream:
        events = [e[len("data: "):] for e in raw.decode().split("\n\n") if e]
        assert events[-1] == "[DONE]"
        return "".join(json.loads(e)["choices"][0]["delta"].get("content", "")
                       for e in events[:-1] if json.loads(e).get("choices"))
    return json.loads(raw)["choices"][0]["message"]["content"]


def test_remote_generator_pool_hash_and_failover(ragd_factory):
    from conftest import REPO
    gguf = str(REPO / "models" / f"{GEN_MODEL}.gguf")
    servers = [ragd_factory(extra_args=["--set", f"models.generator={gguf}",
                                        "--set", "models.gen_threads=1"]) for _ in range(3)]
    client = ragd_factory(extra_args=[
        "--set", "models.generator=remote",
        "--set", "models.remote.urls=" + ",".join(s.url for s in servers),
        "--set", "models.remote.policy=hash",
        "--set", f"models.remote.chat_model={GEN_MODEL}",
        "--set", f"models.remote.health_interval_ms={HEALTH_MS}",
        "--set", "models.remote.connect_timeout_ms=500"])
    route = "/v1/chat/completions"
    local = chat(servers[0], "What is the capital of France?", max_tokens=6)
    assert chat(client, "What is the capital of France?", max_tokens=6) == local
    assert chat(client, "What is the capital of France?", max_tokens=6, stream=True) == local

    # Equal prompts reach one instance.
    before = [route_count(s, route) for s in servers]
    for _ in range(4):
        chat(client, "the same prompt")
    deltas = [a - b for a, b in zip((route_count(s, route) for s in servers), before)]
    assert sorted(deltas) == [0, 0, 4], deltas

    # Kill the instance that prompt lives on: it moves, answers keep coming.
    victim = servers[deltas.index(4)]
    victim.kill()
    for k in range(4):
        assert chat(client, "the same prompt") is not None
        chat(client, f"another prompt {k}")
    assert wait_for(lambda: upstream_up(client).get(victim.url) == 0)
