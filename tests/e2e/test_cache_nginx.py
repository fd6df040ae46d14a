"""
Edge caching with a real nginx in front of ragd, configured by the shipped
deploy/nginx/ragd-edge-cache.conf (addresses and paths substituted): nginx
keeps what ragd marks cacheable for cache.http_max_age_s, revalidates it
with If-None-Match (ragd answers 304), fetches afresh after a write, and
never caches what ragd does not mark (lists, searches).
"""
import http.client
import shutil
import subprocess
import time

import pytest

from conftest import REPO, free_port
from test_cache import metric

SNIPPET = REPO / "deploy" / "nginx" / "ragd-edge-cache.conf"
MAX_AGE_S = 2
# nginx keeps whole seconds: an entry stored at t is fresh until second
# floor(t) + max-age has fully passed, so a second more makes it stale for sure.
STALE_AFTER_S = MAX_AGE_S + 1.5


@pytest.fixture
def nginx_for(tmp_path):
    procs = []

    def start(ragd):
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        port = free_port()
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "cache"):
            (tmp_path / d).mkdir()
        snippet = SNIPPET.read_text() \
            .replace("127.0.0.1:8080", f"127.0.0.1:{ragd.port}") \
            .replace("/var/cache/nginx/ragd", str(tmp_path / "cache")) \
            .replace("listen 8081;", f"listen 127.0.0.1:{port};")
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
        p = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp_path)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(p)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert p.poll() is None, p.stderr.read().decode()
            try:
                get(port, "/health")
                return port
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx did not start")

    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.getheader("X-Cache-Status"), r.read()
    finally:
        conn.close()


def test_nginx_edge_cache(ragd_factory, nginx_for):
    srv = ragd_factory(extra_args=["--set", f"cache.http_max_age_s={MAX_AGE_S}"])
    srv.create_collection("edge")
    srv.add_doc("edge", "The Eiffel Tower was finished in 1889.", doc_id="eiffel")
    port = nginx_for(srv)
    path = "/v1/collections/edge"

    st, cs, first = get(port, path)
    assert (st, cs) == (200, "MISS")
    st, cs, again = get(port, path)
    assert (st, cs, again) == (200, "HIT", first)
    st, cs, _ = get(port, "/v1/collections/edge/documents/eiffel")
    assert (st, cs) == (200, "MISS")
    assert get(port, "/v1/collections/edge/documents/eiffel")[1] == "HIT"

    # Stale: nginx revalidates with If-None-Match, ragd says 304, the body stays.
    revalidated0 = metric(srv, "ragd_http_requests_total", method="GET",
                          route="/v1/collections/{name}", status="304")
    time.sleep(STALE_AFTER_S)
    st, cs, body = get(port, path)
    assert (st, cs, body) == (200, "REVALIDATED", first)
    assert metric(srv, "ragd_http_requests_total", method="GET",
                  route="/v1/collections/{name}", status="304") == revalidated0 + 1

    # A write changes the collection: once stale, nginx fetches the new one.
    srv.add_doc("edge", "Paris is the capital of France.", doc_id="paris")
    time.sleep(STALE_AFTER_S)
    st, cs, body = get(port, path)
    assert (st, cs) == (200, "EXPIRED")
    assert body != first and b'"seq":2' in body

    # What ragd does not mark is never kept.
    for _ in range(2):
        st, cs, _ = get(port, "/v1/collections")
        assert st == 200 and cs in (None, "MISS", "BYPASS")
