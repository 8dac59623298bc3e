"""Code and docs are self-contained: they cite the project's own ``docs/``, never a file outside the
repository, and every repository path a document names exists.

- No file of the repository refers outside it: no relative path climbs out of the checkout, every
  Markdown document a file names is one of the repository's, and a numbered section is cited only
  together with the page of ``docs/`` that holds it (the contracts are docs/contracts.md).
- The docs (``README.md`` and ``docs/*.md``) name only paths that exist: Markdown links, paths such
  as ``archiver/services/restore/`` whose first folder is one of the repository's, source files
  anywhere (``*.py``, ``*.sh``, ``*.sql``, ``*.po``, ``*.html``), migrations written ``app/0002_name``,
  and dotted names of the project's modules (``sites.access.scope``).
- Every ``docs/<name>.md`` that a file mentions exists; every ``docs/contracts.md §N`` names a
  numbered heading of that page; the README's documentation table lists every page of ``docs/``.

Each failure lists the offenders, one ``file:line: what`` per line.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THIS = Path(__file__).resolve().relative_to(ROOT).as_posix()

# Third-party files kept as they were published, and folders that are never the project's own.
NOT_OURS = ("pdas/static/vendor/",)
SKIPPED_DIRS = {".git", ".venv", "var", "build", "dist", "node_modules", "__pycache__", "staticfiles", "demo"}

# ``../`` runs and what follows them: a path relative to the file that names it.
CLIMBING = re.compile(r"(?<![\w.])((?:\.\./)+[\w.-]*)")
MARKDOWN_NAME = re.compile(r"(?<![\w/.-])([\w-]+\.md)\b")
SECTION = re.compile(r"\bsection\s+\d+", re.IGNORECASE)

SOURCE_SUFFIXES = (".py", ".sh", ".sql", ".po", ".html")
# A run of path characters holding a slash, not inside a URL, an absolute path or user@host/path.
PATH_TOKEN = re.compile(r"(?<![\w./:~$@<>*-])([A-Za-z_.][\w.-]*(?:/[\w.*<>-]*)+)")
MIGRATION = re.compile(r"^(\w+)/(\d{4}_\w+)$")
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
DOTTED = re.compile(r"(?<![\w./-])([a-z_][a-z0-9_]*(?:\.[A-Za-z_]\w*){2,})(?![\w/-])")
# app.Model labels and the default model permissions (app.view_model, app.add/change/delete_model).
MODEL_LABEL = re.compile(r"(?<![\w./-])([a-z_]+)\.([A-Z]\w*)\b")
PERMISSION = re.compile(r"(?<![\w./-])([a-z_]+)\.((?:add|change|delete|view)(?:/(?:add|change|delete|view))*)_([a-z]+)\b")
HOST_ENDINGS = {"example", "com", "org", "net", "cn", "local", "internal", "localdomain"}
DOC_MENTION = re.compile(r"(?<![\w./-])(docs/[\w./-]*?\.md)\b")
CONTRACT_SECTION = re.compile(r"docs/contracts\.md`?,? §(\d+(?:\.\d+)*)((?:,? (?:and )?§\d+(?:\.\d+)*)*)")
NUMBERED_HEADING = re.compile(r"^#{2,4} (\d+(?:\.\d+)*)\.? ", re.MULTILINE)


def repository_files() -> list[str]:
    """Tracked and new (not ignored) files, as paths relative to the repository; a walk without git."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        listed = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*")
                  if p.is_file() and not SKIPPED_DIRS & set(p.relative_to(ROOT).parts)
                  and not any(part.endswith(".egg-info") for part in p.relative_to(ROOT).parts)]
    return sorted({name for name in listed if name and (ROOT / name).is_file() and not name.startswith(NOT_OURS)})


def text_of(name: str) -> str | None:
    """The file's text, or None for a binary file."""
    data = (ROOT / name).read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def top_folders(files: list[str]) -> set[str]:
    return {name.split("/", 1)[0] for name in files if "/" in name}


def forbidden_mentions(name: str, text: str, *, markdown_names: set[str] | None = None) -> list[str]:
    """Lines of ``name`` that refer outside the repository. ``markdown_names``: the file names of the
    repository's own Markdown pages (default: read from the repository)."""
    if markdown_names is None:
        markdown_names = {Path(f).name for f in repository_files() if f.endswith(".md")}
    folder = (ROOT / name).parent
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{name}:{number}"
        # A path that leaves the checkout and names something there (hostile names in tests, such as
        # ``../../../../outside``, name nothing that exists).
        climbing = [m for m in CLIMBING.findall(line) if m.rstrip("/").rsplit("/", 1)[-1] not in ("", "..", ".")
                    and not (folder / m).resolve().is_relative_to(ROOT) and (folder / m).exists()]
        if climbing:
            found.append(f"{where}: {climbing[0]!r} names a path outside the repository")
            continue
        unknown = [m for m in MARKDOWN_NAME.findall(line) if m not in markdown_names]
        if unknown:
            found.append(f"{where}: {unknown[0]!r} names a document that is not in the repository")
            continue
        section = SECTION.search(line)
        if section and not DOC_MENTION.search(line):
            found.append(f"{where}: {section.group(0)!r} cites a numbered section without naming its page of docs/")
    return found


def _path_exists(path: str, base: Path = ROOT) -> bool:
    path = path.split("#", 1)[0]
    if "<" in path:  # a placeholder: the folders before it must exist
        path = path.split("<", 1)[0].rsplit("/", 1)[0]
    if "*" in path:
        return any(base.glob(path))
    if (base / path).exists():
        return True
    migration = MIGRATION.match(path.rstrip("/"))
    return bool(migration) and (base / migration[1] / "migrations" / f"{migration[2]}.py").is_file()


def _dotted_problem(name: str, packages: set[str]) -> str | None:
    """Why a dotted module name does not resolve in the repository, or None when it does."""
    parts = name.split(".")
    if parts[0] not in packages or parts[-1] in HOST_ENDINGS:
        return None
    folder = ROOT / parts[0]
    for index, part in enumerate(parts[1:], 1):
        if (folder / part / "__init__.py").is_file():
            folder = folder / part
            continue
        module = folder / f"{part}.py"
        rest = parts[index + 1:]
        if not module.is_file():
            module, rest = folder / "__init__.py", parts[index:]
        if rest and not re.search(rf"\b{re.escape(rest[0])}\b", module.read_text(encoding="utf-8")):
            return f"{module.relative_to(ROOT).as_posix()} has no {rest[0]!r}"
        return None
    return None


def app_models(packages: set[str]) -> dict[str, set[str]]:
    """The model class names (lower case) of each app with a ``models`` module or package."""
    found = {}
    for app in packages:
        sources = [ROOT / app / "models.py", *sorted((ROOT / app / "models").glob("*.py"))]
        texts = [path.read_text(encoding="utf-8") for path in sources if path.is_file()]
        if texts:
            found[app] = {name.lower() for text in texts for name in re.findall(r"^class (\w+)\(", text, re.MULTILINE)}
    return found


def missing_paths(doc: str, text: str, *, top: set[str], packages: set[str]) -> list[str]:
    """Paths, module names, model labels and model permissions the doc mentions that the repository lacks."""
    models = app_models(packages)
    problems = []
    folder = (ROOT / doc).parent
    for number, line in enumerate(text.splitlines(), 1):
        for target in MD_LINK.findall(line):
            if re.match(r"^(?:[a-z]+:|#)", target):
                continue
            if not _path_exists(target, folder):
                problems.append(f"{doc}:{number}: link to {target!r}, which does not exist")
        for token in PATH_TOKEN.findall(line):
            token = re.sub(r"(?:\.\.\.|[.,:;])+$", "", token)
            relative = token.startswith(("./", "../"))  # from the doc's folder, as a link would be
            named_here = token.endswith(SOURCE_SUFFIXES) or (not relative and token.split("/", 1)[0] in top)
            if named_here and not _path_exists(token, folder if relative else ROOT):
                problems.append(f"{doc}:{number}: {token!r} does not exist")
        for app, actions, model in PERMISSION.findall(line):
            if app in models and model not in models[app]:
                problems.append(f"{doc}:{number}: {app}.{actions}_{model}: {app} has no model {model!r}")
        for app, model in MODEL_LABEL.findall(line):
            if app in models and model.lower() not in models[app]:
                problems.append(f"{doc}:{number}: {app}.{model}: {app} has no model {model!r}")
        for dotted in DOTTED.findall(line):
            why = _dotted_problem(dotted, packages)
            if why:
                problems.append(f"{doc}:{number}: {dotted!r}: {why}")
    return problems


def missing_doc_mentions(name: str, text: str, *, headings: set[str]) -> list[str]:
    """``docs/<page>.md`` mentions of pages that do not exist, and ``docs/contracts.md §N`` of no heading."""
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        for page in DOC_MENTION.findall(line):
            if not (ROOT / page).is_file():
                problems.append(f"{name}:{number}: {page} does not exist")
        for first, more in CONTRACT_SECTION.findall(line):
            for section in [first, *re.findall(r"§(\d+(?:\.\d+)*)", more)]:
                if section not in headings:
                    problems.append(f"{name}:{number}: docs/contracts.md has no section {section}")
    return problems


def contract_headings(text: str | None = None) -> set[str]:
    text = text if text is not None else (ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")
    return set(NUMBERED_HEADING.findall(text))


def documents() -> list[str]:
    return ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md"))]


def _report(problems: list[str]) -> str:
    return f"{len(problems)} problem(s):\n" + "\n".join(problems)


# --- the checks on the repository ---------------------------------------------------------------------


def test_no_file_refers_outside_the_repository():
    files = repository_files()
    markdown_names = {Path(f).name for f in files if f.endswith(".md")}
    problems = []
    for name in files:
        text = text_of(name) if name != THIS else None
        if text is not None:
            problems += forbidden_mentions(name, text, markdown_names=markdown_names)
    assert not problems, _report(problems)


def test_the_docs_name_only_paths_that_exist():
    files = repository_files()
    top = top_folders(files)
    packages = {folder for folder in top if (ROOT / folder / "__init__.py").is_file()}
    problems = []
    for doc in documents():
        problems += missing_paths(doc, (ROOT / doc).read_text(encoding="utf-8"), top=top, packages=packages)
    assert not problems, _report(problems)


def test_cited_docs_and_contract_sections_exist():
    headings = contract_headings()
    assert {"1", "2.2", "3", "4.1", "7"} <= headings  # the headings are found at all
    problems = []
    for name in repository_files():
        text = text_of(name) if name != THIS else None
        if text is not None:
            problems += missing_doc_mentions(name, text, headings=headings)
    assert not problems, _report(problems)


def test_the_readme_lists_every_doc():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Documentation", 1)[1].split("\n## ", 1)[0]
    unlisted = [doc for doc in documents()[1:] if f"`{doc}`" not in table]
    assert not unlisted, "README.md's documentation table lacks: " + ", ".join(unlisted)


# --- the checks catch what they are for ---------------------------------------------------------------


def test_the_checks_catch_offenders(tmp_path):
    files = repository_files()
    top = top_folders(files)
    packages = {folder for folder in top if (ROOT / folder / "__init__.py").is_file()}
    (tmp_path / "beside" / "samples").mkdir(parents=True)  # a folder next to a file that is not in the checkout
    (tmp_path / "docs").mkdir()
    elsewhere = str(tmp_path / "docs" / "x.md")
    outside = ("see ../beside/samples\nas OUTSIDE-CONTRACT.md says\nhabit 3 of GUIDE.md\n"
               "per the contract, section 6\n"
               "fine: docs/contracts.md §4, ../deploy/dev.sh, README.md, docs/keeping.md, ../../../../nowhere\n")
    doc = "\n".join([
        "`archiver/storage/sftp.py` and sites/access.py",  # 1: moved away; exists
        "[format](archive-format.md) and [gone](gone.md), [web](https://toml.io)",  # 2: gone.md
        "`lossdetect/rv/` and `pdas/exports.py` and `rv/mosaiq.sqlite`",  # 3: two gone; a demo-site path
        "`audit/0002_append_only_trigger`, `audit/0009_nothing`",  # 4: migrations
        "`pdas.admin.InstitutionScopedAdmin`, `sites.access.scope`, `pdas.hospital.example`",  # 5
        "`tests/archiver/test_services_*.py`, `Institution_<I>/Mount_0`, `/etc/pdas/site.toml`",  # 6: fine
        "`curation.add/change/delete_namingrule`, `gone/old/x.py`",  # 7: a source file anywhere
        "`archiver.add/change/delete_storagetarget`, `sites.view_storagetarget`, `inventory.Archive`",  # 8
        "`archiver.QuarantinedPatient`, `Scans -> ../../outside`, `../deploy/postgresql-app-role.sql`",  # 9
    ])
    mentions = "docs/contracts.md §4.1 and docs/contracts.md §9, docs/nothing.md\n"

    assert [p.split(": ", 1)[0] for p in forbidden_mentions("docs/x.md", outside)] == [
        "docs/x.md:2", "docs/x.md:3", "docs/x.md:4"]  # from inside the checkout ../beside names nothing
    assert [p.split(": ", 1)[0] for p in forbidden_mentions(elsewhere, outside)] == [
        f"{elsewhere}:1", f"{elsewhere}:2", f"{elsewhere}:3", f"{elsewhere}:4"]
    found = missing_paths("docs/x.md", doc, top=top, packages=packages)
    assert found == [
        "docs/x.md:1: 'archiver/storage/sftp.py' does not exist",
        "docs/x.md:2: link to 'gone.md', which does not exist",
        "docs/x.md:3: 'lossdetect/rv/' does not exist",
        "docs/x.md:3: 'pdas/exports.py' does not exist",
        "docs/x.md:4: 'audit/0009_nothing' does not exist",
        "docs/x.md:5: 'pdas.admin.InstitutionScopedAdmin': pdas/admin.py has no 'InstitutionScopedAdmin'",
        "docs/x.md:7: 'gone/old/x.py' does not exist",
        "docs/x.md:8: archiver.add/change/delete_storagetarget: archiver has no model 'storagetarget'",
        "docs/x.md:9: archiver.QuarantinedPatient: archiver has no model 'QuarantinedPatient'",
    ], found
    assert missing_doc_mentions("x.py", mentions, headings=contract_headings()) == [
        "x.py:1: docs/nothing.md does not exist", "x.py:1: docs/contracts.md has no section 9"]
    assert contract_headings("## 1. One\n### 1.2 Two\n## Three\n") == {"1", "1.2"}
