"""
A real nginx (Debian's nginx-light) for the e2e tests, on 127.0.0.1 only,
running one of the shipped files under deploy/nginx/ with only its
addresses replaced. The patterns are test_cache_nginx.py's: a throw-away
prefix with every temp path inside it, no master process, logs kept for the
failure message.
"""
import re
import shutil
import subprocess
import time
from pathlib import Path

from conftest import REPO, free_port, http_request

NGINX_DIR = REPO / "deploy" / "nginx"
START_TIMEOUT_S = 20.0


def nginx_bin():
    path = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(path).exists():
        raise AssertionError("nginx not found (install Debian's nginx-light)")
    return path


def main_conf(prefix, snippet, worker_connections=512):
    """A whole nginx.conf around an http-context snippet, all paths under prefix."""
    prefix = Path(prefix)
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "cache"):
        (prefix / d).mkdir(parents=True, exist_ok=True)
    return f"""
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections {worker_connections}; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{snippet}
}}
"""


def render_lb(upstream_ports, listen_port, path=NGINX_DIR / "ragd-lb.conf"):
    """ragd-lb.conf with its server addresses (in order) and listen port replaced."""
    text = path.read_text()
    addrs = re.findall(r"^\s*server\s+(\S+:\d+)", text, re.M)
    assert len(addrs) == len(upstream_ports), (addrs, upstream_ports)
    for addr, port in zip(addrs, upstream_ports):
        text = text.replace(f"server {addr} ", f"server 127.0.0.1:{port} ", 1)
    return text.replace("listen 80;", f"listen 127.0.0.1:{listen_port};")


def check_conf(prefix, snippet):
    """`nginx -t` on the snippet inside main_conf: (returncode, output)."""
    prefix = Path(prefix)
    conf = prefix / "nginx-test.conf"
    conf.write_text(main_conf(prefix, snippet))
    p = subprocess.run([nginx_bin(), "-t", "-c", str(conf), "-p", str(prefix)],
                       capture_output=True, timeout=30)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


class Nginx:
    def __init__(self, prefix, snippet, port):
        self.prefix = Path(prefix)
        self.port = port
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(main_conf(self.prefix, snippet))
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([nginx_bin(), "-c", str(self.conf), "-p", str(self.prefix)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("nginx exited: " + self.proc.stderr.read().decode()
                                     + self.error_log())
            try:
                http_request("127.0.0.1", self.port, "GET", "/health", timeout=5)
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx did not start: " + self.error_log())

    def error_log(self):
        try:
            return (self.prefix / "error.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def start_lb(prefix, upstream_ports):
    port = free_port()
    return Nginx(prefix, render_lb(upstream_ports, port), port).start()
