"""
CORS and TLS against the real binary.

- CORS is off by default: no Access-Control-* headers, OPTIONS is 405.
- With cors.allowed_origins: a preflight from an allowed origin gets 204
  with the allowances (no key needed: browsers send none on preflights),
  one from another origin 403; actual responses (errors and answers
  computed on a worker included) carry Access-Control-Allow-Origin for
  allowed origins only.
- HTTPS with server.tls_cert/tls_key (a self-signed certificate made by
  openssl here): the official openai client talks to ragd over TLS with a
  Bearer key; a wrong key is its AuthenticationError; plain HTTP to the
  port gets no answer.
"""
import http.client
import ssl
import subprocess

import openai
import pytest

ORIGIN = "https://app.example"


def raw(srv, method, path, headers=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def test_cors_off_by_default(ragd):
    status, hdrs, _ = raw(ragd, "OPTIONS", "/v1/collections",
                          {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert status == 405
    assert "access-control-allow-origin" not in hdrs
    status, hdrs, _ = raw(ragd, "GET", "/v1/collections", {"Origin": ORIGIN})
    assert status == 200 and "access-control-allow-origin" not in hdrs


@pytest.fixture(scope="module")
def cors_srv(ragd_module_factory):
    return ragd_module_factory(keys={"w": ("web", "writer")},
                               extra_args=["--set", f"cors.allowed_origins={ORIGIN}",
                                           "--set", "models.generator="])


def test_cors_preflight(cors_srv):
    status, hdrs, _ = raw(cors_srv, "OPTIONS", "/v1/collections/x/search",
                          {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                           "Access-Control-Request-Headers": "authorization, content-type"})
    assert status == 204, hdrs
    assert hdrs["access-control-allow-origin"] == ORIGIN
    assert "POST" in hdrs["access-control-allow-methods"]
    assert "authorization" in hdrs["access-control-allow-headers"].lower()
    assert int(hdrs["access-control-max-age"]) > 0
    assert "origin" in hdrs["vary"].lower()
    status, hdrs, _ = raw(cors_srv, "OPTIONS", "/v1/collections",
                          {"Origin": "https://evil.example",
                           "Access-Control-Request-Method": "POST"})
    assert status == 403 and "access-control-allow-origin" not in hdrs
    status, _, _ = raw(cors_srv, "OPTIONS", "/no/such/route", {"Origin": ORIGIN})
    assert status == 404


def test_cors_on_actual_responses(cors_srv):
    tok = cors_srv.tokens["w"]
    auth = {"Authorization": f"Bearer {tok}", "Origin": ORIGIN}
    status, hdrs, _ = raw(cors_srv, "GET", "/v1/collections", auth)
    assert status == 200 and hdrs["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in hdrs["access-control-expose-headers"].lower()
    # errors too (a browser must be able to read a 401)
    status, hdrs, _ = raw(cors_srv, "GET", "/v1/collections", {"Origin": ORIGIN})
    assert status == 401 and hdrs["access-control-allow-origin"] == ORIGIN
    # an answer computed on a worker thread
    cors_srv.request("POST", "/v1/collections", {"name": "c"})
    cors_srv.request("POST", "/v1/collections/c/documents", {"text": "CORS lets browsers in."})
    status, hdrs, _ = raw(cors_srv, "POST", "/v1/collections/c/query",
                          {**auth, "Content-Type": "application/json"},
                          b'{"question": "What lets browsers in?"}')
    assert status == 200 and hdrs["access-control-allow-origin"] == ORIGIN
    # other origins get nothing
    status, hdrs, _ = raw(cors_srv, "GET", "/v1/collections",
                          {"Authorization": f"Bearer {tok}", "Origin": "https://evil.example"})
    assert status == 200 and "access-control-allow-origin" not in hdrs


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return crt, key


def test_tls_with_the_openai_client(ragd_factory, cert):
    import httpx
    crt, key = cert
    ctx = ssl.create_default_context(cafile=str(crt))
    srv = ragd_factory(keys={"r": ("tls", "reader")}, ssl_context=ctx,
                       extra_args=["--set", f"server.tls_cert={crt}",
                                   "--set", f"server.tls_key={key}",
                                   "--set", "models.generator="])
    assert srv.url.startswith("https://")
    assert any("https://" in l.get("msg", "") for l in srv.log_lines())
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key=srv.tokens["r"], max_retries=0,
                           http_client=httpx.Client(verify=ctx))
    models = client.models.list()
    assert any(m.id for m in models.data)
    emb = client.embeddings.create(model=models.data[0].id, input="over TLS",
                                   encoding_format="float")
    assert len(emb.data[0].embedding) == 384
    bad = openai.OpenAI(base_url=srv.url + "/v1", api_key="ragd_" + "0" * 16 + "_" + "0" * 64,
                        max_retries=0, http_client=httpx.Client(verify=ctx))
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    # an untrusting client refuses the handshake; plain HTTP gets no HTTP answer
    with pytest.raises(openai.APIConnectionError):
        openai.OpenAI(base_url=srv.url + "/v1", api_key=srv.tokens["r"], max_retries=0,
                      http_client=httpx.Client(verify=True)).models.list()
    with pytest.raises((http.client.HTTPException, OSError)):
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        conn.request("GET", "/health")
        conn.getresponse()


def test_tls_misconfigured_refuses_to_start(tmp_path, cert):
    from conftest import RAGD_BIN, RAGD_MODEL, free_port, ragd_env
    crt, _ = cert
    base = [RAGD_BIN, "serve", "--data-dir", str(tmp_path / "d"), "--model", RAGD_MODEL,
            "--port", str(free_port())]
    p = subprocess.run(base + ["--set", f"server.tls_cert={crt}"], capture_output=True,
                       timeout=60, env=ragd_env())
    assert p.returncode != 0 and b"tls_key" in p.stderr, p.stderr
    p = subprocess.run(base + ["--set", f"server.tls_cert={crt}",
                               "--set", f"server.tls_key={tmp_path}/missing.pem"],
                       capture_output=True, timeout=60, env=ragd_env())
    assert p.returncode != 0 and b"server.tls_key" in p.stderr, p.stderr


def test_tls_at_nginx_with_the_shipped_config(ragd_factory, cert, tmp_path):
    """deploy/nginx/ragd-tls.conf (addresses and paths substituted) in front
    of ragd with auth on: the openai client speaks HTTPS to nginx with a
    Bearer key, which reaches ragd untouched; /metrics stays inside."""
    import shutil
    import time
    import httpx
    from conftest import REPO, free_port
    crt, key = cert
    srv = ragd_factory(keys={"r": ("edge", "reader")}, extra_args=["--set", "models.generator="])
    port, plain = free_port(), free_port()
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / d).mkdir()
    snippet = (REPO / "deploy" / "nginx" / "ragd-tls.conf").read_text() \
        .replace("127.0.0.1:8080", f"127.0.0.1:{srv.port}") \
        .replace("/etc/nginx/tls/ragd.example.com.crt", str(crt)) \
        .replace("/etc/nginx/tls/ragd.example.com.key", str(key)) \
        .replace("listen 80;", f"listen 127.0.0.1:{plain};") \
        .replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl http2;")
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
{snippet}
}}
""")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    p = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp_path)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ctx = ssl.create_default_context(cafile=str(crt))
        client = openai.OpenAI(base_url=f"https://127.0.0.1:{port}/v1",
                               api_key=srv.tokens["r"], max_retries=0,
                               http_client=httpx.Client(verify=ctx))
        deadline = time.monotonic() + 20
        while True:
            assert p.poll() is None, p.stderr.read().decode()
            try:
                models = client.models.list()
                break
            except openai.APIConnectionError:
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        assert models.data and models.data[0].object == "model"
        bad = openai.OpenAI(base_url=f"https://127.0.0.1:{port}/v1", api_key="wrong",
                            max_retries=0, http_client=httpx.Client(verify=ctx))
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        r.read()
        conn.close()
        assert r.status == 403
        conn = http.client.HTTPConnection("127.0.0.1", plain, timeout=10)
        conn.request("GET", "/v1/models")
        r = conn.getresponse()
        r.read()
        conn.close()
        assert r.status == 301 and r.getheader("Location").startswith("https://")
    finally:
        p.terminate()
        p.wait(timeout=10)
