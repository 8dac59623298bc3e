"""The production services as shipped (docs/operations.md, "Services", "TLS and the reverse proxy").

- The systemd units of ``deploy/systemd/`` pass ``systemd-analyze verify`` and say what every PDAS
  service must (user, folders, environment file, restart, hardening).
- The real thing, on free loopback ports: gunicorn started with the command line of
  ``pdas-web.service`` and ``deploy/gunicorn.conf.py``, PDAS in production mode on the test database,
  behind nginx running ``deploy/nginx/pdas.conf`` (its ports, upstream, certificate and log paths
  rewritten for the test) with a certificate from ``deploy/selfsigned-cert.sh``. Over HTTPS: the
  login page with HSTS and Secure cookies, HTTP redirected, a static file, ``/healthz`` through the
  proxy, Django seeing the request as secure, the upload limit, an access log without query strings.
- ``manage.py check --deploy`` in that production environment reports nothing.
"""
from __future__ import annotations

import http.client
import os
import re
import secrets
import shlex
import shutil
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.servers.celery_worker import worker_database_url
from tests.deploy.offline_site import unit_settings as unit_file_settings
from tests.servers.nginx import nginx_config
from tests.servers.ports import HOST, accepts_connections, free_port
from tests.servers.process import REPO_ROOT, ServerProcess, require_binary, start_on_free_port

pytestmark = pytest.mark.servers

UNITS = REPO_ROOT / "deploy" / "systemd"
PREFIX = "/opt/pdas/current"  # where the units expect the installed PDAS
SERVICES = ["pdas-web.service", "pdas-worker.service", "pdas-worker@.service", "pdas-beat.service",
            "pdas-hl7@.service"]
# Unit names as systemctl would be given them: templates with an instance.
INSTANCES = ["pdas.target", "pdas-web.service", "pdas-worker.service", "pdas-worker@pumch-tps.service",
             "pdas-beat.service", "pdas-hl7@PUMCH.service"]


def unit_settings(name: str) -> dict[str, list[str]]:
    """Each ``Key=value`` of a shipped unit file, every value of a repeated key in order (comments skipped)."""
    return unit_file_settings(UNITS / name)


# --- the units ------------------------------------------------------------------------------------

def _verify_root(tmp_path: Path) -> Path:
    """A file-system root for ``systemd-analyze verify --root``.

    verify checks that every command a unit runs exists and is executable, and that the units it
    names (sysinit.target, network-online.target, ...) exist. With ``--root`` it looks for both under
    the root, so the root gets a copy of systemd's own units, the PDAS units where they are installed
    (/etc/systemd/system) and an empty executable stub for each command; the units' paths stay as
    shipped (/opt/pdas/current), with no file created outside the test's folder.
    """
    root = tmp_path / "root"
    for system_units in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")):
        if system_units.is_dir():
            shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
            break
    installed = root / "etc/systemd/system"
    shutil.copytree(UNITS, installed)
    for unit in installed.iterdir():
        for key in ("ExecStart", "ExecReload"):
            for command in unit_settings(unit.name).get(key, []):
                stub = root / command.split()[0].lstrip("/")
                stub.parent.mkdir(parents=True, exist_ok=True)
                stub.write_text("#!/bin/sh\n")
                stub.chmod(0o755)
    return root


def _verify(root: Path) -> subprocess.CompletedProcess:
    binary = require_binary("systemd-analyze", "/usr/bin/systemd-analyze", package="systemd")
    # --man=no: the units' Documentation= is a file:// page of the installed PDAS, not a man page.
    return subprocess.run([binary, "verify", "--man=no", f"--root={root}", *INSTANCES], capture_output=True,
                          text=True, timeout=60)


def test_every_unit_passes_systemd_analyze_verify(tmp_path):
    root = _verify_root(tmp_path)
    done = _verify(root)
    # verify exits 0 even when it ignored a line it could not parse (an unknown key, a bad value) and
    # only says so on stderr: a clean run says nothing at all.
    assert done.returncode == 0 and done.stderr == "" and done.stdout == "", done.stderr + done.stdout

    # The check bites: a misspelt key is reported.
    broken = root / "etc/systemd/system/pdas-beat.service"
    broken.write_text(broken.read_text().replace("Restart=on-failure", "Restart=on-failur"))
    assert "pdas-beat.service" in _verify(root).stderr


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_runs_as_pdas_with_its_environment_file_and_hardening(name):
    unit = unit_settings(name)
    assert unit["User"] == ["pdas"] and unit["Group"] == ["pdas"]
    assert unit["WorkingDirectory"] == [PREFIX]
    assert unit["EnvironmentFile"][0] == "/etc/pdas/pdas.env"  # required: no leading "-"
    assert any("PDAS_ENV=production" in line for line in unit["Environment"])
    assert all(command.startswith(f"{PREFIX}/.venv/bin/") for command in unit["ExecStart"])
    assert unit["Restart"] == ["on-failure"]
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ReadWritePaths": "/var/lib/pdas",
                       "PrivateTmp": "yes", "ProtectHome": "yes"}.items():
        assert unit.get(key) == [value], key
    assert unit["PartOf"] == ["pdas.target"] and unit["WantedBy"] == ["pdas.target"]


def test_the_templates_take_their_queue_and_institution_from_the_instance_name():
    worker = unit_settings("pdas-worker@.service")["ExecStart"][0].split()
    assert worker[worker.index("-Q") + 1] == "%i"
    hl7 = unit_settings("pdas-hl7@.service")["ExecStart"][0].split()
    assert hl7[hl7.index("hl7_listener") + 1:hl7.index("hl7_listener") + 3] == ["--institution", "%i"]
    beat = unit_settings("pdas-beat.service")["ExecStart"][0]
    assert "--scheduler django_celery_beat.schedulers:DatabaseScheduler" in beat


# --- gunicorn and nginx -----------------------------------------------------------------------------

@dataclass
class ProductionSite:
    env: dict[str, str]
    gunicorn_port: int
    https_port: int
    http_port: int
    certificate: Path
    access_log: Path

    @property
    def https(self) -> str:
        return f"https://{HOST}:{self.https_port}"


def _production_env(workdir: Path) -> dict[str, str]:
    """What /etc/pdas/pdas.env would hold, for the test database and a throw-away data folder."""
    data = workdir / "data"
    data.mkdir()
    mac_key = workdir / "audit_mac_key"
    mac_key.write_text(secrets.token_urlsafe(32))
    mac_key.chmod(0o600)
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("PDAS_", "DJANGO_", "CELERY_")) and name != "DATABASE_URL"}
    env.update({
        "PDAS_ENV": "production",
        "DJANGO_SETTINGS_MODULE": "pdas.settings",
        "PDAS_DATA_DIR": str(data),
        "DATABASE_URL": worker_database_url(),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": f"{HOST},localhost",
        "PDAS_AUDIT_MAC_KEY_FILE": str(mac_key),
        "PDAS_PROXY_COUNT": "1",
        "PDAS_WEB_WORKERS": "2",
        "PYTHONPATH": str(REPO_ROOT),
    })
    return env


def _gunicorn_argv() -> list[str]:
    """pdas-web.service's ExecStart, with the installed prefix replaced by this checkout and its .venv."""
    (command,) = unit_settings("pdas-web.service")["ExecStart"]
    argv = shlex.split(command)
    assert argv[0] == f"{PREFIX}/.venv/bin/gunicorn"
    venv_bin = Path(sys.executable).parent
    return [str(venv_bin / "gunicorn")] + [arg.replace(PREFIX, str(REPO_ROOT)) for arg in argv[1:]]


def _answers_http(port: int) -> bool:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment for a loopback request
    try:
        session.get(f"http://{HOST}:{port}/healthz?live=1", timeout=2, allow_redirects=False)
        return True
    except requests.RequestException:
        return False
    finally:
        session.close()


@pytest.fixture(scope="module")
def production_env(django_db_setup, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A folder and the production environment of the processes started from it."""
    workdir = tmp_path_factory.mktemp("production")
    return workdir, _production_env(workdir)


@pytest.fixture(scope="module")
def production_site(production_env) -> Iterator[ProductionSite]:
    nginx = require_binary("nginx", "/usr/sbin/nginx", package="nginx")
    openssl = require_binary("openssl", "/usr/bin/openssl", package="openssl")
    workdir, env = production_env

    # collectstatic as in production (compressed, hashed names): the pages need its manifest.
    subprocess.run([sys.executable, str(REPO_ROOT / "manage.py"), "collectstatic", "--noinput", "-v", "0"],
                   env=env, cwd=REPO_ROOT, check=True, capture_output=True, timeout=120)

    def make_gunicorn(port: int) -> ServerProcess:
        return ServerProcess("gunicorn", _gunicorn_argv(), log_path=workdir / "gunicorn.log",
                             env={**env, "PDAS_WEB_BIND": f"{HOST}:{port}"}, cwd=REPO_ROOT)

    gunicorn, gunicorn_port = start_on_free_port(make_gunicorn, _answers_http, pick_port=free_port, timeout=60)
    try:
        tls = workdir / "tls"
        made = subprocess.run(["bash", str(REPO_ROOT / "deploy" / "selfsigned-cert.sh"), "--dir", str(tls),
                               "localhost", HOST], capture_output=True, text=True, timeout=60,
                              env={"PATH": f"{Path(openssl).parent}:/usr/bin:/bin"})
        assert made.returncode == 0, made.stderr
        assert "SELF-SIGNED" in made.stderr and "browser" in made.stderr.lower()
        assert (tls / "pdas.key").stat().st_mode & 0o077 == 0

        http_port = free_port()

        def make_nginx(port: int) -> ServerProcess:
            config = nginx_config(workdir, https_port=port, http_port=http_port, upstream_port=gunicorn_port,
                                   tls=tls)
            # -t first: a configuration error is reported as such, not as a start-up that never answered.
            argv = [nginx, "-p", str(workdir), "-c", str(config), "-e", str(workdir / "error.log")]
            tested = subprocess.run([*argv, "-t"], capture_output=True, text=True, timeout=30)
            assert tested.returncode == 0, tested.stderr
            return ServerProcess("nginx", argv, log_path=workdir / "nginx.log")

        proxy, https_port = start_on_free_port(make_nginx, accepts_connections, pick_port=free_port)
        try:
            yield ProductionSite(env=env, gunicorn_port=gunicorn_port, https_port=https_port, http_port=http_port,
                                 certificate=tls / "pdas.crt", access_log=workdir / "pdas.access.log")
        finally:
            proxy.stop()
    finally:
        gunicorn.stop()


def test_pdas_behind_nginx_over_https(production_site):
    site = production_site
    session = requests.Session()
    # Not the environment's: REQUESTS_CA_BUNDLE would override the certificate to trust, a proxy variable
    # would send loopback requests elsewhere.
    session.trust_env = False
    session.verify = str(site.certificate)

    # The login page, over HTTPS through the proxy: 200, not Django's redirect to HTTPS, so Django took
    # the request as secure (X-Forwarded-Proto); one HSTS header; the CSRF cookie marked Secure.
    login = session.get(f"{site.https}/accounts/login/?next=/restore/%3Fq%3DMRN-SECRET-42", allow_redirects=False,
                        timeout=10)
    assert login.status_code == 200, login.text[:500]
    assert login.headers["Strict-Transport-Security"].count("max-age=31536000") == 1
    cookies = login.raw.headers.getlist("Set-Cookie")
    assert any(cookie.startswith("csrftoken=") and "Secure" in cookie for cookie in cookies), cookies

    # The same request straight to gunicorn, without the proxy's header, is sent to HTTPS by Django.
    direct = session.get(f"http://{HOST}:{site.gunicorn_port}/accounts/login/", allow_redirects=False, timeout=10)
    assert direct.status_code == 301
    assert direct.headers["Location"] == f"https://{HOST}:{site.gunicorn_port}/accounts/login/"

    # A page that needs a login sends the browser to the login page on the same HTTPS site.
    home = session.get(f"{site.https}/", allow_redirects=True, timeout=10)
    assert home.status_code == 200 and home.url.startswith(f"{site.https}/accounts/login/")

    # Plain HTTP only redirects, to the same path over HTTPS.
    plain = session.get(f"http://{HOST}:{site.http_port}/accounts/login/?next=/", allow_redirects=False, timeout=10)
    assert plain.status_code == 301
    assert plain.headers["Location"] == f"https://{HOST}:{site.https_port}/accounts/login/?next=/"

    # A static file the page names, served through the proxy (WhiteNoise), cached for ever by its hashed name.
    stylesheet = re.search(r'href="(/static/[^"]+\.css)"', login.text)
    assert stylesheet, "the login page names a stylesheet"
    static = session.get(f"{site.https}{stylesheet.group(1)}", timeout=10)
    assert static.status_code == 200 and static.headers["Content-Type"].startswith("text/css")
    assert "immutable" in static.headers["Cache-Control"]

    # /healthz through the proxy: PDAS takes the address nginx appended (127.0.0.1, allowed), not the
    # one the client wrote in front of it.
    health = session.get(f"{site.https}/healthz?live=1", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=10)
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"

    # nginx's own answers carry HSTS too: a listing over the upload limit is refused before any byte is sent.
    context = ssl.create_default_context(cafile=str(site.certificate))
    connection = http.client.HTTPSConnection(HOST, site.https_port, context=context, timeout=10)
    try:
        connection.putrequest("POST", "/reports/reconcile/")
        connection.putheader("Content-Type", "text/csv")
        connection.putheader("Content-Length", str(65 * 1024 * 1024))
        connection.endheaders()
        refused = connection.getresponse()
        assert refused.status == 413
        assert refused.getheader("Strict-Transport-Security") == "max-age=31536000; includeSubDomains"
    finally:
        connection.close()

    # The access log has the paths but no query string: no MRN lands in it.
    log = site.access_log.read_text(encoding="utf-8")
    assert '"GET /accounts/login/ HTTP/1.1" 200' in log
    assert "MRN-SECRET-42" not in log and "next=" not in log


def test_check_deploy_reports_nothing_in_production(production_env):
    _, env = production_env
    command = [sys.executable, str(REPO_ROOT / "manage.py"), "check", "--deploy", "--fail-level", "WARNING"]
    done = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout
