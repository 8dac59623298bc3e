"""The dependency order of the packages (README, "Layout"), checked over the import graph.

Left to right::

    connectors, pinnacle, core -> audit -> sites -> alerts -> inventory -> lossdetect -> curation -> archiver
    -> reports -> demo_site -> pdas

* The plain packages hold no Django app: ``connectors`` imports nothing of the project but itself,
  ``pinnacle`` only ``connectors``, ``core`` only ``connectors``. ``connectors`` and ``pinnacle`` do
  not import Django at all (pure libraries, usable and testable without settings).
* In an app, the *core* modules (models, services, selectors and every other library module such as
  ``archiver/naming.py`` or ``sites/access.py``) import only their own package and what stands to
  its left; a model's string reference (``ForeignKey("app.Model")``, ``get_model("app", ...)``)
  counts as an import of that app.
* *Interface* modules may import anything: they are the shells through which a person, the command
  line or the scheduler reaches the services, and they wire the apps together. A module is one when
  its name or a folder on its path is one of ``INTERFACE`` (views, admin, admin_base, forms, tables,
  filters, urls, apps, tasks, management commands, templatetags, migrations).

Modules are parsed with ``ast``, never imported (no import-time side effects), and every import
counts: one inside a function or under ``TYPE_CHECKING`` is still a dependency.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Left to right; the packages of one group stand side by side.
ORDER: tuple[tuple[str, ...], ...] = (
    ("connectors", "pinnacle", "core"),
    ("audit",), ("sites",), ("alerts",), ("inventory",), ("lossdetect",), ("curation",), ("archiver",), ("reports",),
    ("demo_site",), ("pdas",),
)
PACKAGES = tuple(package for group in ORDER for package in group)
RANK = {package: rank for rank, group in enumerate(ORDER) for package in group}

# What each plain package may import of the project besides itself, and whether it may import Django.
PLAIN = {
    "connectors": (frozenset(), False),
    "pinnacle": (frozenset({"connectors"}), False),
    "core": (frozenset({"connectors"}), True),
}

INTERFACE = frozenset({
    "views", "admin", "admin_base", "forms", "tables", "filters", "urls", "apps", "tasks", "management",
    "templatetags", "migrations",
})

# Top-level folders with an __init__.py that are not part of the application.
NOT_APPLICATION = frozenset({"tests"})

MODEL_REFERENCES = frozenset({"ForeignKey", "OneToOneField", "ManyToManyField"})


@dataclass(frozen=True)
class Import:
    module: str  # dotted name as written (relative imports resolved)
    line: int

    @property
    def package(self) -> str:
        return self.module.split(".")[0]


def is_interface(relpath: Path) -> bool:
    """Whether the module (path relative to the repository, ``archiver/management/commands/x.py``) is an interface."""
    parts = relpath.with_suffix("").parts[1:]
    return any(part in INTERFACE for part in parts)


def module_name(relpath: Path) -> str:
    parts = relpath.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(relpath: Path, source: str) -> list[Import]:
    """Every module the source imports, and every app named by a string model reference."""
    tree = ast.parse(source, filename=str(relpath))
    package_parts = module_name(relpath).split(".")
    if relpath.name != "__init__.py":
        package_parts = package_parts[:-1]
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[:len(package_parts) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append(Import(module, node.lineno))
        elif isinstance(node, ast.Call):
            found += _model_reference(node)
    return sorted(found, key=lambda each: each.line)


def _model_reference(call: ast.Call) -> list[Import]:
    # The app labels are the package names (no AppConfig sets a label).
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
    first = call.args[0] if call.args else None
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return []
    if name in MODEL_REFERENCES and first.value.count(".") == 1:  # ForeignKey("app_label.Model")
        return [Import(first.value, call.lineno)]
    if name == "get_model":  # apps.get_model("app_label", "Model") or ("app_label.Model")
        return [Import(first.value, call.lineno)]
    return []


def violations_of(relpath: Path, source: str) -> list[str]:
    """One line per import of ``relpath`` that breaks the order (empty for an interface module)."""
    own = relpath.parts[0]
    if own in PLAIN:
        allowed, django = PLAIN[own]
        problems = []
        for found in imports_of(relpath, source):
            if found.package in PACKAGES and found.package != own and found.package not in allowed:
                may = f"may import only {', '.join(sorted(allowed))}" if allowed else "imports nothing of the project"
                problems.append(f"{relpath}:{found.line} imports {found.module} ({own} {may} besides itself)")
            elif found.package == "django" and not django:
                problems.append(f"{relpath}:{found.line} imports {found.module} ({own} is a plain library without "
                                f"Django)")
        return problems
    if is_interface(relpath):
        return []
    return [f"{relpath}:{found.line} imports {found.module} ({found.package} stands right of {own})"
            for found in imports_of(relpath, source)
            if found.package in RANK and found.package != own and RANK[found.package] >= RANK[own]]


def violations(root: Path) -> list[str]:
    problems = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relpath = path.relative_to(root)
            problems += violations_of(relpath, path.read_text(encoding="utf-8"))
    return problems


def test_every_package_imports_only_what_stands_to_its_left():
    problems = violations(REPO)
    assert not problems, "the dependency order (README, Layout) is broken:\n" + "\n".join(problems)


def test_every_application_package_has_a_place_in_the_order():
    packages = {path.parent.name for path in REPO.glob("*/__init__.py")} - NOT_APPLICATION
    assert packages == set(PACKAGES), "place new packages in ORDER and in the README's Layout section"


def test_the_readme_states_the_same_order():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    stated = " → ".join(", ".join(f"`{package}`" for package in group) for group in ORDER)
    assert stated in readme.replace("\n", " "), f"README's Layout section should state: {stated}"


def _write(root: Path, relpath: str, source: str) -> None:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")


def test_the_checker_catches_each_kind_of_violation(tmp_path):
    for package in PACKAGES:
        _write(tmp_path, f"{package}/__init__.py", "")
    _write(tmp_path, "inventory/services/x.py", "from archiver.models import Run\n")
    _write(tmp_path, "inventory/models.py", "def f():\n    from reports import selectors\n\n"
                                            "class A:\n    run = models.ForeignKey('curation.CurationRun')\n")
    _write(tmp_path, "archiver/services/__init__.py", "from . import quarantine\nfrom ..models import Run\n")
    _write(tmp_path, "sites/access.py", "import pdas.schedules\n")
    _write(tmp_path, "connectors/tps/x.py", "from sites.models import Institution\nfrom django.db import models\n")
    _write(tmp_path, "pinnacle/reader.py", "from connectors.tps.base import TpsError\nfrom core.env import Env\n")
    _write(tmp_path, "core/env.py", "from django.conf import settings\nfrom audit.services import record_event\n")
    _write(tmp_path, "lossdetect/services/scan.py", "from inventory.models import TpsPlan\nfrom lossdetect import models\n"
                                                    "import connectors.rv\nimport pinnacle.reader\nimport core.env\n")
    _write(tmp_path, "audit/views.py", "from pdas.navigation import menu\n")
    _write(tmp_path, "audit/management/commands/verify_audit.py", "from reports.models import X\n")
    assert violations(tmp_path) == [
        "connectors/tps/x.py:1 imports sites.models (connectors imports nothing of the project besides itself)",
        "connectors/tps/x.py:2 imports django.db (connectors is a plain library without Django)",
        "pinnacle/reader.py:2 imports core.env (pinnacle may import only connectors besides itself)",
        "core/env.py:2 imports audit.services (core may import only connectors besides itself)",
        "sites/access.py:1 imports pdas.schedules (pdas stands right of sites)",
        "inventory/models.py:2 imports reports (reports stands right of inventory)",
        "inventory/models.py:5 imports curation.CurationRun (curation stands right of inventory)",
        "inventory/services/x.py:1 imports archiver.models (archiver stands right of inventory)",
    ]


def test_interface_modules_are_told_apart_from_core_modules():
    interface = ["archiver/views.py", "archiver/management/commands/archive.py", "sites/admin_base.py",
                 "reports/templatetags/reports_format.py", "lossdetect/tasks.py", "audit/migrations/0001_initial.py"]
    core = ["archiver/models.py", "archiver/services/archiving/runs.py", "curation/selectors.py",
            "sites/access.py", "archiver/naming.py", "archiver/packing/packed.py"]
    assert [is_interface(Path(p)) for p in interface] == [True] * len(interface)
    assert [is_interface(Path(p)) for p in core] == [False] * len(core)
