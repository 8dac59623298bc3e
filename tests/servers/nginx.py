"""``deploy/nginx/pdas.conf`` as shipped, run on test ports: for tests/deploy/test_services.py and bench/load.py."""
from __future__ import annotations

import os
from pathlib import Path

from tests.servers.ports import HOST
from tests.servers.process import REPO_ROOT


def _rewrite(text: str, old: str, new: str, count: int = 1) -> str:
    """Replace ``old``; the test fails loudly when deploy/nginx/pdas.conf no longer holds it as expected."""
    assert text.count(old) == count, f"deploy/nginx/pdas.conf should hold {old!r} {count} time(s)"
    return text.replace(old, new)


def nginx_config(workdir: Path, *, https_port: int, http_port: int, upstream_port: int, tls: Path,
                 connections: int = 64) -> Path:
    """nginx.conf in ``workdir`` running the site as shipped, its ports, upstream, certificate and logs rewritten."""
    site = (REPO_ROOT / "deploy" / "nginx" / "pdas.conf").read_text(encoding="utf-8")
    site = _rewrite(site, "listen 80;", f"listen {HOST}:{http_port};")
    site = _rewrite(site, "listen 443 ssl;", f"listen {HOST}:{https_port} ssl;")
    site = _rewrite(site, "server 127.0.0.1:8000;", f"server {HOST}:{upstream_port};")
    site = _rewrite(site, "ssl_certificate /etc/pdas/tls/pdas.crt;", f"ssl_certificate {tls / 'pdas.crt'};")
    site = _rewrite(site, "ssl_certificate_key /etc/pdas/tls/pdas.key;", f"ssl_certificate_key {tls / 'pdas.key'};")
    # The test's HTTPS port is not 443, so the redirect must name it.
    site = _rewrite(site, "return 301 https://$host$request_uri;",
                    f"return 301 https://$host:{https_port}$request_uri;")
    site = _rewrite(site, "/var/log/nginx/", f"{workdir}/", count=4)
    (workdir / "pdas.conf").write_text(site, encoding="utf-8")
    temp = {kind: workdir / kind for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    # nginx's workers drop to an unprivileged user when the master runs as root; they could not then
    # write their temporary files in the test's private folder, so they stay root here.
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = f"""daemon off;
master_process on;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log info;
{user}events {{ worker_connections {connections}; }}
http {{
    {"".join(f"{kind}_temp_path {path};" for kind, path in temp.items())}
    access_log {workdir}/default-access.log;
    include {workdir}/pdas.conf;
}}
"""
    config = workdir / "nginx.conf"
    config.write_text(main, encoding="utf-8")
    return config
