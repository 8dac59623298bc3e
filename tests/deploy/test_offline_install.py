"""The offline bundle, installed, upgraded and rolled back on a server with no network
(docs/operations.md, "Installing from an offline bundle", "Upgrading").

``deploy/bundle`` builds this checkout's bundle (A) and the bundle of a copy of it with one more migration
and a new version (B, its wheels taken from A's: no registry needed the second time). Then
``tests/deploy/offline_site.py`` runs inside ``unshare -n`` (a network namespace with loopback only):
install A twice (the second run changes nothing), start the services as their units run them, log in
over HTTPS in headless Chromium, run an archive and a loss scan from the pages, read ``/healthz`` and
``/metrics``, upgrade to B with B's own script, roll back. The figures it prints (bundle size, install
time) are this issue's measurements, not assertions.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.servers.process import REPO_ROOT, require_binary

pytestmark = [
    pytest.mark.servers,
    pytest.mark.browser,
    pytest.mark.skipif(os.environ.get("DATABASE_URL", "").startswith("postgres"),
                       reason="runs once, in the suite's SQLite pass: it starts its own PostgreSQL in its namespace"),
]

PROBE_MIGRATION = '''from django.db import migrations


class Migration(migrations.Migration):
    """Only in the test's second bundle: a schema change for the upgrade to make and the rollback to undo."""

    dependencies = [("pdas", "{latest}")]
    operations = [migrations.RunSQL("CREATE TABLE pdas_upgrade_probe (id integer)",
                                    "DROP TABLE pdas_upgrade_probe")]
'''


def _bundle(source: Path, output: Path, *extra: str) -> Path:
    result = subprocess.run(["bash", str(source / "deploy/bundle"), "--output", str(output), *extra],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(result.stdout.strip().splitlines()[-1])


def _next_source(work: Path) -> Path:
    """A copy of this checkout's files (git's index, as deploy/bundle takes them) with a new version and one
    more migration; not a git checkout, so deploy/bundle takes every file of it."""
    source = work / "next-source"
    subprocess.run(["git", "-C", str(REPO_ROOT), "checkout-index", "--all", f"--prefix={source}/"], check=True)
    pyproject = source / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.1.0.post1"', 1))
    latest = sorted(p.stem for p in (source / "pdas/migrations").glob("0*.py"))[-1]
    (source / "pdas/migrations/9001_upgrade_probe.py").write_text(PROBE_MIGRATION.format(latest=latest))
    return source


# Set when the scenario failed: its folder (logs, configuration) stays for whoever reads the failure.
KEEP_FOR_INSPECTION: list[str] = []


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    # Under /var/tmp, world-traversable: the service user and postgres must reach their folders in it.
    folder = Path(tempfile.mkdtemp(prefix="pdas-offline-", dir="/var/tmp"))
    folder.chmod(0o755)
    yield folder
    if not KEEP_FOR_INSPECTION:
        shutil.rmtree(folder, ignore_errors=True)


def test_install_upgrade_and_rollback_without_network(work):
    if os.geteuid() != 0:
        pytest.fail("needs root: it makes a system user and a network namespace (run the suite as root)")
    for binary, package in (("unshare", "util-linux"), ("nginx", "nginx"), ("redis-server", "redis-server"),
                            ("runuser", "util-linux")):
        require_binary(binary, f"/usr/bin/{binary}", f"/usr/sbin/{binary}", package=package)

    started = time.monotonic()
    bundle = _bundle(REPO_ROOT, work / "dist")
    bundle_seconds = time.monotonic() - started
    wheels = work / "wheels-of-a"
    with tarfile.open(bundle) as archive:
        members = [m for m in archive.getmembers() if "/wheels/" in m.name]
        archive.extractall(wheels, members=members, filter="data")
    (wheel_dir,) = wheels.glob("*/wheels")
    next_bundle = _bundle(_next_source(work), work / "dist-next", "--find-links", str(wheel_dir))
    assert next_bundle.name != bundle.name

    site = work / "server"
    site.mkdir()
    site.chmod(0o755)
    completed = subprocess.run(
        ["unshare", "--net", "--", sys.executable, "-m", "tests.deploy.offline_site", "--work", str(site),
         "--bundle", str(bundle), "--next-bundle", str(next_bundle)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=2400)
    assert completed.stdout.strip(), completed.stderr[-5000:]
    seen = json.loads(completed.stdout.strip().splitlines()[-1])
    if completed.returncode != 0 or "error" in seen:
        KEEP_FOR_INSPECTION.append(str(site))
        pytest.fail(f"{seen.get('error')}\n{seen.get('logs')}\n(the servers' files: {site})", pytrace=False)

    figures = {"bundle": bundle.name, "bundle_megabytes": round(bundle.stat().st_size / 1e6, 1),
               "bundle_seconds": round(bundle_seconds), "install_seconds_offline": seen["install_seconds"],
               "upgrade_seconds": seen["upgrade_seconds"], "rollback_seconds": seen["rollback_seconds"]}
    print("offline install:", json.dumps(figures))  # the closing note's figures (pytest -s, or -rA)

    # Installed with no network, and the second run changed nothing.
    assert seen["interfaces"] == ["lo"]
    assert seen["second_install_changes"] == [], seen["second_install_changes"][:20]
    assert seen["env_file_mode"] == "0o600" and seen["secrets_printed"] == []
    assert seen["env_conn_max_age"] == ["DATABASE_CONN_MAX_AGE=60"]  # web processes keep their connection
    # ... and share what they keep: the home page's count went to the Redis of PDAS_CACHE_URL.
    shared = seen["shared_cache"]
    assert shared["set"] and shared["broker_redis_database_1"] and "unsafe-archives" in shared["kept"], shared
    # Rotating Redis's password as docs/operations.md says; /healthz below then runs on the new one.
    assert seen["redis_rotation"] == {"changed": True, "mode": "0o600", "cache_follows": True, "old_refused": True,
                                      "new_accepted": True}
    assert "self-signed" in seen["install_output"].lower()
    assert seen["redis_without_password"].startswith("-NOAUTH")

    # A physicist's browser over HTTPS: an archive run and a loss scan started and finished.
    browser = seen["browser"]
    assert browser["protocol"] == "https:" and "/accounts/login/" not in browser["logged_in_url"]
    assert browser["run_status"] == "done", browser
    assert browser["run_results"] and "×" not in browser["run_results"], browser
    assert "success" in browser["scan_badge_class"], browser

    # The hospital's monitoring, with the token the installer made; nobody else.
    assert seen["healthz"]["status"] == 200, seen["healthz"]
    assert seen["healthz"]["body"]["status"] == "ok"
    assert {name: check["status"] for name, check in seen["healthz"]["body"]["checks"].items()
            if name in ("database", "broker", "workers", "beat")} == {
        "database": "ok", "broker": "ok", "workers": "ok", "beat": "ok"}
    assert seen["metrics"] == {"status": 200, "pdas_up": ["pdas_up 1.0"]}
    assert seen["healthz_from_elsewhere"] == {"without_token": 403, "with_token": 200}

    # Upgrade: the new release, its migration, the data kept; rollback: the old release, the migration
    # undone, the data still kept.
    archives = seen["archives_before_upgrade"]
    assert archives > 0
    release_a, release_b = bundle.name.removesuffix(".tar.gz"), next_bundle.name.removesuffix(".tar.gz")
    assert seen["after_upgrade"] == {"current": f"releases/{release_b}", "archives": archives, "users": 1,
                                     "probe_table": True, "login_page": 200}
    assert seen["after_rollback"] == {"current": f"releases/{release_a}", "archives": archives, "users": 1,
                                      "probe_table": False, "login_page": 200}
    assert any(name.endswith(".dump") or name.startswith("pdas-") for name in seen["backups"]), seen["backups"]
