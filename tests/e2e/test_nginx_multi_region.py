"""
The shipped multi-region routing (deploy/nginx/ragd-multi-region.conf) in a
real nginx, only its addresses substituted: reads go to the client's region
(the X-Ragd-Region header here, the geo block's default otherwise), writes
to the primary region, and a region whose instances are down fails over to
its backup, the next region.

The six upstream instances are small HTTP servers on 127.0.0.1 that answer
every request with their own name: what is under test is nginx's routing,
and a server that says who it is shows it directly.
"""
import http.client
import re
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import REPO, free_port

SNIPPET = REPO / "deploy" / "nginx" / "ragd-multi-region.conf"
# The file's example addresses and the instance each stands for.
INSTANCES = {
    "192.0.2.11:8080": "us-east-1/a", "192.0.2.12:8080": "us-east-1/b",
    "198.51.100.11:8080": "eu-west-1/a", "198.51.100.12:8080": "eu-west-1/b",
    "203.0.113.11:8080": "ap-southeast-1/a", "203.0.113.12:8080": "ap-southeast-1/b",
}


class Named(BaseHTTPRequestHandler):
    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = do_PATCH = answer

    def log_message(self, *args):
        pass


@pytest.fixture
def edge(tmp_path):
    servers = {}
    for addr, name in INSTANCES.items():
        srv = ThreadingHTTPServer(("127.0.0.1", 0), Named)
        srv.name = name
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers[name] = srv
    port = free_port()
    snippet = SNIPPET.read_text()
    for addr, name in INSTANCES.items():
        snippet = snippet.replace(f"server {addr}", f"server 127.0.0.1:{servers[name].server_address[1]}")
    assert not re.search(r"server (192\.0\.2|198\.51\.100|203\.0\.113)\.", snippet)
    assert "listen 80;" in snippet
    snippet = snippet.replace("listen 80;", f"listen 127.0.0.1:{port};")
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / d).mkdir()
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
    deadline = time.monotonic() + 20
    while True:
        assert p.poll() is None, p.stderr.read().decode()
        try:
            request(port, "GET", "/health")
            break
        except OSError:
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
    yield port, servers
    p.terminate()
    p.wait(timeout=10)
    for srv in servers.values():
        srv.shutdown()
        srv.server_close()


def request(port, method, path, region=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"X-Ragd-Region": region} if region else {}
        body = b"{}" if method in ("POST", "PATCH") else None
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read().decode(), r.getheader("X-Ragd-Region")
    finally:
        conn.close()


def region_of(port, method, path, region=None):
    status, body, header = request(port, method, path, region)
    assert status == 200, (status, body)
    served = body.split("/")[0]
    return served, header


@pytest.mark.parametrize("method,path,region,expect", [
    # reads: the client's region; 127.0.0.1 falls in the geo default
    ("GET", "/v1/collections", None, "us-east-1"),
    ("GET", "/v1/collections/docs", "eu-west-1", "eu-west-1"),
    ("POST", "/v1/collections/docs/search", "ap-southeast-1", "ap-southeast-1"),
    ("POST", "/v1/collections/docs/query", "eu-west-1", "eu-west-1"),
    ("POST", "/v1/chat/completions", "eu-west-1", "eu-west-1"),
    ("POST", "/v1/embeddings", "ap-southeast-1", "ap-southeast-1"),
    # an unknown region name is ignored
    ("GET", "/v1/collections", "mars-1", "us-east-1"),
    # writes: the primary region
    ("POST", "/v1/collections", "eu-west-1", "us-east-1"),
    ("POST", "/v1/collections/docs/documents", "ap-southeast-1", "us-east-1"),
    ("POST", "/v1/collections/docs/documents:batch", "eu-west-1", "us-east-1"),
    ("DELETE", "/v1/collections/docs/documents/d1", "eu-west-1", "us-east-1"),
    ("PATCH", "/v1/collections/docs", "ap-southeast-1", "us-east-1"),
    ("DELETE", "/v1/collections/docs", "eu-west-1", "us-east-1"),
])
def test_routes_reads_to_the_region_and_writes_to_the_primary(edge, method, path, region, expect):
    port, _ = edge
    served, header = region_of(port, method, path, region)
    assert served == expect and header == expect


def test_both_instances_of_a_region_serve(edge):
    port, _ = edge
    seen = {request(port, "GET", "/v1/collections", "eu-west-1")[1] for _ in range(20)}
    assert seen == {"eu-west-1/a", "eu-west-1/b"}


def test_a_region_that_is_down_fails_over_to_the_next(edge):
    port, servers = edge
    for name in ("eu-west-1/a", "eu-west-1/b"):
        servers[name].shutdown()
        servers[name].server_close()
    for _ in range(5):
        status, body, _ = request(port, "GET", "/v1/collections", "eu-west-1")
        assert status == 200 and body == "ap-southeast-1/a", body
    # the primary region still takes the writes
    served, _ = region_of(port, "POST", "/v1/collections/docs/documents", "eu-west-1")
    assert served == "us-east-1"
