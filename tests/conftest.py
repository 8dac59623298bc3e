"""Project-wide fixtures. Server fixtures (redis, celery, sshd, ftp, samba, s3, postgres, chromium, the DICOM
nodes) live in ``tests/servers/`` and are registered here as a plugin; ``tests/rv_dicom.py`` loads the DICOM nodes."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parent.parent.parent / "shared" / "samples"

pytest_plugins = [
    "tests.servers.process",
    "tests.servers.redis",
    "tests.servers.celery_worker",
    "tests.servers.sshd",
    "tests.servers.ftp",
    "tests.servers.samba",
    "tests.servers.s3",
    "tests.servers.postgres",
    "tests.servers.chromium",
    "tests.servers.smtp",
    "tests.servers.orthanc",
    "tests.servers.dcmqrscp",
    "tests.servers.qrscp",
    "tests.rv_dicom",
]

_TEST_DB_DIR = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """Put the SQLite test database in a file instead of Django's in-memory default.

    A Celery worker (tests/servers/celery_worker.py) is another process and must open the same
    database as the test. PostgreSQL test databases are shared that way already.
    """
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        directory = Path(tempfile.mkdtemp(prefix="pdas-testdb-"))
        database.setdefault("TEST", {})["NAME"] = str(directory / "test.sqlite3")
        config.stash[_TEST_DB_DIR] = directory


def pytest_unconfigure(config: pytest.Config) -> None:
    directory = config.stash.get(_TEST_DB_DIR, None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def pinnacle_sample(tmp_path: Path) -> Path:
    """A private copy of the real Pinnacle 16.2 sample tree (docs/testing.md, "Sample data")."""
    source = SAMPLES / "pinnacle-16.2"
    if not source.is_dir():
        pytest.skip(f"sample tree {source} is absent (it is not in the repository: docs/testing.md)")
    target = tmp_path / "pinnacle-16.2"
    shutil.copytree(source, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the shared copy is read-only
    return target


@pytest.fixture(autouse=True)
def _empty_cache():
    """Nothing a page kept (the Reports page's reports) outlives its test: row ids repeat between tests."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def redis_cache(redis_server, settings):
    """Django's cache in a real Redis, shared by every process, as deploy/install sets it (PDAS_CACHE_URL,
    pdas/caches.py); database 3 of the session's Redis, apart from Celery's."""
    from django.core.cache import cache

    from pdas.caches import caches

    settings.CACHES = caches(redis_server.rsplit("/", 1)[0] + "/3")
    cache.clear()
    yield settings.CACHES["default"]["LOCATION"]
    cache.clear()


@pytest.fixture(autouse=True)
def _dispatch_inline(settings):
    """Background work runs at once in the test's thread and transaction (core.dispatch), so a test reads
    its outcome when the page or command returns. A test of the embedded pool sets it False (and needs
    ``transactional_db``: the pool's threads see committed rows only); with a broker it has no effect."""
    settings.PDAS_DISPATCH_INLINE = True
