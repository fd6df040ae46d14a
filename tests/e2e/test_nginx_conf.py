"""
`nginx -t` (Debian's nginx-light) on the files shipped in deploy/nginx/
that need no certificates, so a typo or a directive this nginx lacks fails
here, not in production. scripts/validate-deploy.sh (tests/e2e/test_deploy.py)
checks every file, those with TLS too, with a throw-away certificate.
"""
import re

import pytest

from nginx_servers import NGINX_DIR, check_conf, render_lb

SHIPPED = sorted(p for p in NGINX_DIR.glob("*.conf") if "ssl_certificate" not in p.read_text())


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_conf_passes_nginx_t(path, tmp_path):
    snippet = path.read_text().replace("/var/cache/nginx/ragd", str(tmp_path / "cache"))
    snippet = snippet.replace("listen 80;", "listen 127.0.0.1:80;").replace(
        "listen 8081;", "listen 127.0.0.1:8081;")
    rc, out = check_conf(tmp_path, snippet)
    assert rc == 0, out
    assert "syntax is ok" in out


def test_lb_conf_has_the_design_upstream(tmp_path):
    text = (NGINX_DIR / "ragd-lb.conf").read_text()
    assert "least_conn;" in text
    assert len(re.findall(r"^\s*server \S+ max_fails=3 fail_timeout=30s;$", text, re.M)) == 3
    assert "keepalive 64;" in text and 'proxy_set_header Connection "";' in text
    rendered = render_lb([18080, 18081, 18082], 18090)
    assert "server 127.0.0.1:18081 max_fails=3 fail_timeout=30s;" in rendered
    rc, out = check_conf(tmp_path, rendered)
    assert rc == 0, out
