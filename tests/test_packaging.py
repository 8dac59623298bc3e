"""The wheel: built offline from a copy of the source tree, it holds every file of every package
(modules, migrations, templates, static files, translations with the compiled ``.mo``), and once
installed it runs from a folder outside the repository.

"Installed" is a throw-away venv holding only the wheel; the third-party packages come from the
project venv through a ``.pth`` line (``--system-site-packages`` would give the base interpreter's
packages, not the project venv's, and pip runs with ``--no-index``: no network). A ``.pth`` line
adds a folder without running that folder's own ``.pth`` files, so the editable install of the
checkout stays out of the way.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.test_architecture import PACKAGES, REPO

NOT_SHIPPED = shutil.ignore_patterns("__pycache__", "*.pyc")


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of what the wheel is built from, so the build writes nothing into the checkout."""
    src = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for package in PACKAGES:
        shutil.copytree(REPO / package, src / package, ignore=NOT_SHIPPED)
    return src


@pytest.fixture(scope="module")
def wheel(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", out,
         source, cwd=source)
    [built] = out.glob("pdas-*.whl")
    return built


def test_the_wheel_holds_every_file_of_every_package(source, wheel):
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    expected = {path.relative_to(source).as_posix() for package in PACKAGES
                for path in (source / package).rglob("*") if path.is_file()}
    assert sorted(expected - shipped) == []  # a package missing from packages.find, or data from package-data
    assert {f"{package}/__init__.py" for package in PACKAGES} <= shipped
    for required in ("audit/migrations/0001_initial.py", "inventory/migrations/0001_initial.py",
                     "pdas/templates/base.html", "archiver/templates/archiver/run_list.html",
                     "pdas/static/vendor/bootstrap/css/bootstrap.min.css", "reports/static/reports/charts.js",
                     "pdas/locale/zh_Hans/LC_MESSAGES/django.mo"):
        assert required in shipped
    assert not any(name.startswith(("tests/", "bench/")) for name in shipped)


PROBE = """
import json
import django
from django.contrib.staticfiles import finders
from django.template.loader import get_template
from django.utils import translation

django.setup()
import pdas
with translation.override("zh-hans"):
    title = translation.gettext("Plan data archiving system")
print(json.dumps({
    "pdas": pdas.__file__,
    "base": get_template("base.html").origin.name,
    "app_template": get_template("archiver/run_list.html").origin.name,
    "bootstrap": finders.find("vendor/bootstrap/css/bootstrap.min.css"),
    "title": title,
}))
"""


def test_the_installed_wheel_runs_outside_the_repository(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    venv_site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                          cwd=tmp_path).stdout.strip())
    (venv_site / "project-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    _run(python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel, cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PDAS_", "DJANGO_", "DATABASE_"))
           and key not in ("PYTHONPATH", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")}
    env.update(DJANGO_SETTINGS_MODULE="pdas.settings", PDAS_DATA_DIR=str(tmp_path / "data"))
    _run(python, "-m", "django", "check", cwd=elsewhere, env=env)
    _run(python, "-m", "django", "migrate", "--noinput", "-v", "0", cwd=elsewhere, env=env)
    found = json.loads(_run(python, "-c", PROBE, cwd=elsewhere, env=env).stdout)
    for key in ("pdas", "base", "app_template", "bootstrap"):
        assert Path(found[key]).is_relative_to(venv_site), (key, found[key])
    assert found["title"] == "计划数据归档系统"  # the compiled catalogue shipped in the wheel
