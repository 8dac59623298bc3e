"""Services never import tasks: a service writes the job's row and returns it; views, commands and beat
start the work through ``core.dispatch`` (docs/background-work.md). Checked on the source with ``ast``,
imports inside functions included (a lazy import is still a cycle)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_PROJECT = {"tests", "bench", "build", "deploy", "docs", "var"}


def project_packages() -> list[Path]:
    return sorted(path.parent for path in ROOT.glob("*/__init__.py") if path.parent.name not in NOT_PROJECT)


def is_core_module(relative: Path) -> bool:
    """Models, services and selectors: the modules that may not start work."""
    parts = relative.with_suffix("").parts
    return "services" in parts or parts[-1] in {"models", "selectors"} or "models" in parts[:-1]


def imported_tasks(source: str, *, module: str) -> list[str]:
    """The ``tasks`` modules ``source`` imports (``module`` is its dotted name, for relative imports)."""
    found = []
    package = module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names = [base] if _is_tasks(base) else [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [name for name in names if _is_tasks(name)]
    return found


def _is_tasks(name: str) -> bool:
    return "tasks" in name.split(".")


def violations() -> list[str]:
    lines = []
    for package in project_packages():
        for path in sorted(package.rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "migrations" in relative.parts or not is_core_module(relative.relative_to(package.name)):
                continue
            module = ".".join(relative.with_suffix("").parts)
            for name in imported_tasks(path.read_text(encoding="utf-8"), module=module):
                lines.append(f"{relative} imports {name}: start work from a view, command or task (core.dispatch)")
    return lines


def test_no_service_selector_or_model_imports_a_tasks_module():
    assert project_packages(), "no project package found"
    assert violations() == []


def test_the_checker_finds_every_way_of_importing_tasks():
    found = imported_tasks(
        "import archiver.tasks\n"
        "from lossdetect.tasks import run_loss_scan_task\n"
        "def later():\n"
        "    from curation import tasks\n"
        "    from . import tasks as mine\n"
        "    from ..tasks import x\n",
        module="archiver.services.archiving.runs")
    assert found == ["archiver.tasks", "lossdetect.tasks", "curation.tasks", "archiver.services.archiving.tasks",
                     "archiver.services.tasks"]
    assert imported_tasks("from archiver.services import archiving\nimport taskset\n", module="x.services.y") == []


def test_the_modules_checked_are_models_services_and_selectors():
    assert is_core_module(Path("services/archiving/runs.py"))
    assert is_core_module(Path("selectors.py")) and is_core_module(Path("models.py"))
    assert not is_core_module(Path("views.py")) and not is_core_module(Path("tasks.py"))
    assert not is_core_module(Path("management/commands/archive.py"))
