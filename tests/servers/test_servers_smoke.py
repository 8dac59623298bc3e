"""One real round trip per test server, so a broken harness fails here and not inside a feature test."""
from __future__ import annotations

import ftplib
import io
import os
import ssl
import subprocess
import sys

import paramiko
import psycopg
import pytest
import redis

from tests.servers.ports import accepts_connections, free_port_range
from tests.servers.process import REPO_ROOT

pytestmark = pytest.mark.servers


def test_free_port_range_is_consecutive_and_bindable():
    ports = free_port_range(5)
    assert len(ports) == 5 and ports.step == 1
    assert not any(accepts_connections(port) for port in ports)


def test_redis_stores_and_returns_a_value(redis_server):
    assert redis_server.startswith("redis://127.0.0.1:")
    client = redis.Redis.from_url(redis_server)
    client.set("pdas:smoke", "张三")
    assert client.get("pdas:smoke").decode() == "张三"
    client.close()


def test_celery_worker_runs_a_task_against_the_test_database(celery_worker):
    from django.db import connection

    from pdas.tasks import ping

    result = ping.delay()
    assert result.get(timeout=60) == {"pong": "pong", "database": str(connection.settings_dict["NAME"])}


def test_celery_worker_can_be_killed_and_restarted(celery_worker):
    from pdas.tasks import ping

    celery_worker.kill()
    assert not celery_worker.alive
    assert not celery_worker.answers_ping()
    celery_worker.restart()
    assert ping.delay().get(timeout=60)["pong"] == "pong"


def test_sshd_accepts_the_key_and_the_password_and_serves_sftp(sshd):
    folder = sshd.new_dir()
    (folder / "hello.txt").write_text("hi")
    sshd.give_to_user(folder / "hello.txt")
    for auth in ({"key_filename": sshd.key_file}, {"password": sshd.password}):
        client = paramiko.SSHClient()
        client.load_host_keys(sshd.known_hosts)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(sshd.host, port=sshd.port, username=sshd.user, allow_agent=False, look_for_keys=False,
                       timeout=10, **auth)
        with client.open_sftp() as sftp:
            assert sftp.listdir(str(folder)) == ["hello.txt"]
        _, stdout, _ = client.exec_command(f"cat {folder}/hello.txt; echo; id -un")
        assert stdout.read().decode().split() == ["hi", sshd.user]
        client.close()


def test_sshd_refuses_a_wrong_password(sshd):
    client = paramiko.SSHClient()
    client.load_host_keys(sshd.known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.AuthenticationException):
        client.connect(sshd.host, port=sshd.port, username=sshd.user, password=sshd.password + "x",
                       allow_agent=False, look_for_keys=False, timeout=10)
    client.close()


def _ftp_login(server) -> ftplib.FTP:
    if server.tls:
        ftp = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=server.ca_file), timeout=10, encoding="utf-8")
    else:
        ftp = ftplib.FTP(timeout=10, encoding="utf-8")
    ftp.connect(server.host, server.port)
    if server.tls:
        ftp.auth()
    ftp.login(server.user, server.password)
    if server.tls:
        ftp.prot_p()
    return ftp


@pytest.mark.parametrize("fixture", ["ftp_server", "ftp_server_plain"])
def test_ftp_upload_lands_in_the_home_directory(request, fixture):
    server = request.getfixturevalue(fixture)
    directory = server.new_dir()
    ftp = _ftp_login(server)
    ftp.cwd(directory)
    ftp.storbinary("STOR 张三.tar.gz", io.BytesIO(b"x" * 100_000))
    assert ftp.nlst() == ["张三.tar.gz"]
    ftp.quit()
    assert (server.root / directory.lstrip("/") / "张三.tar.gz").stat().st_size == 100_000
    assert server.passive_ports.start > 1024


def test_ftps_server_requires_tls(ftp_server):
    ftp = ftplib.FTP(timeout=10)
    ftp.connect(ftp_server.host, ftp_server.port)
    with pytest.raises(ftplib.error_perm, match="SSL/TLS required"):
        ftp.login(ftp_server.user, ftp_server.password)
    ftp.close()


def test_ftps_certificate_is_checked(ftp_server):
    ftp = ftplib.FTP_TLS(context=ssl.create_default_context(), timeout=10)  # system CAs only
    ftp.connect(ftp_server.host, ftp_server.port)
    with pytest.raises(ssl.SSLCertVerificationError):
        ftp.auth()
    ftp.close()


def test_postgres_server_creates_a_database(postgres_server):
    url = postgres_server.create_database("pdas_smoke")
    with psycopg.connect(url, connect_timeout=5) as conn:
        conn.execute("CREATE TABLE t (name text)")
        conn.execute("INSERT INTO t VALUES ('张三')")
        assert conn.execute("SELECT name FROM t").fetchone() == ("张三",)


def test_postgres_wrapper_runs_a_command_and_passes_its_status():
    command = [sys.executable, "-c", "import os, sys; print(os.environ['DATABASE_URL']); sys.exit(3)"]
    done = subprocess.run([sys.executable, "-m", "tests.servers.postgres", "--", *command], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"})
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith("postgres://pdas:")


@pytest.mark.parametrize("server", ["orthanc", "dcmqrscp", "qrscp"])
def test_dicom_node_answers_echo_and_stores_a_plan(request, server, tmp_path):
    import datetime as dt

    from demo_site.rv import rv_plan, write_rt_plan
    from tests.servers.dicom import answers_echo

    node = request.getfixturevalue(f"{server}_node")
    assert answers_echo(node.port, node.aet)
    node.store([write_rt_plan(tmp_path, rv_plan("000001", "SMOKE", dt.datetime(2024, 3, 4, 9)))])
    if server != "qrscp":  # qrscp answers whatever AE title it is called by
        assert not answers_echo(node.port, "NOT-" + node.aet)


@pytest.mark.browser
def test_browser_opens_the_login_page(browser, live_server, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(f"{live_server.url}/accounts/login/")
    assert browser.find_element(By.NAME, "username").is_displayed()
    screenshot = tmp_path / "login.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
