"""Editing the TPS root's ``Institution`` file: the PatientLite list Pinnacle shows its users.

Removal of originals takes the patient's entry out; a restore puts one back. Both forms of the file
are handled (one bare institution, or one ``Institution ={ };`` block per institution). The file is
rewritten atomically; a missing file is left missing on removal and created on restore.
"""
from __future__ import annotations

from pinnacle.syntax import Bare, Node, ParseError, decode, dumps, parse
from connectors.tps.base import TpsSource

FILE = "Institution"


def _load(source: TpsSource) -> tuple[Node | None, str]:
    if source.stat(FILE) is None:
        return None, "utf-8"
    text, encoding = decode(source.read_bytes(FILE))
    return parse(text), encoding


def _institution_blocks(root: Node) -> list[Node]:
    blocks = [b for b in root.get_all("Institution") if isinstance(b, Node)]
    return blocks or [root]


def _block_for(root: Node, institution_dir: str) -> Node | None:
    for block in _institution_blocks(root):
        path = block.get_str("InstitutionPath") or block.get_str("PinnInstitutionPath")
        if path == institution_dir:
            return block
    return None


def _write(source: TpsSource, root: Node, encoding: str) -> None:
    text = dumps(root)
    try:
        data = text.encode(encoding if encoding != "latin-1" else "utf-8")
    except UnicodeEncodeError:
        data = text.encode("utf-8")
    source.write_bytes_atomic(FILE, data)


def remove_patient_lite(source: TpsSource, *, institution_dir: str, patient_path: str) -> bool:
    """Drop the patient's PatientLite entry; True when the file changed. Parse errors raise ParseError."""
    root, encoding = _load(source)
    if root is None:
        return False
    block = _block_for(root, institution_dir)
    if block is None:
        return False
    lites = block.get("PatientLiteList")
    if not isinstance(lites, Node):
        return False
    kept = [(k, v) for k, v in lites.items
            if not (k == "PatientLite" and isinstance(v, Node) and v.get_str("PatientPath") == patient_path)]
    if len(kept) == len(lites.items):
        return False
    lites.items[:] = kept
    _write(source, root, encoding)
    return True


def add_patient_lite(source: TpsSource, *, institution_dir: str, institution_name: str, lite: Node) -> None:
    """Add (or replace) the PatientLite entry of ``lite``'s PatientPath under ``institution_dir``."""
    root, encoding = _load(source)
    if root is None:
        root = Node()
    block = _block_for(root, institution_dir)
    if block is None:
        try:
            institution_id = int(institution_dir.rsplit("_", 1)[1])
        except (IndexError, ValueError):
            institution_id = 0
        block = Node([
            ("InstitutionID", Bare(str(institution_id))),
            ("InstitutionPath", institution_dir),
            ("Name", institution_name or institution_dir),
            ("PatientLiteList", Node()),
        ])
        if not root.items:
            root = block
        elif "Institution" in root:
            root.items.append(("Institution", block))
        else:  # a bare single-institution file gains a second institution: switch to the block form
            root = Node([("Institution", root), ("Institution", block)])
    lites = block.get("PatientLiteList")
    if not isinstance(lites, Node):
        lites = Node()
        block.items.append(("PatientLiteList", lites))
    path = lite.get_str("PatientPath")
    lites.items[:] = [(k, v) for k, v in lites.items
                      if not (k == "PatientLite" and isinstance(v, Node) and v.get_str("PatientPath") == path)]
    lites.items.append(("PatientLite", lite))
    _write(source, root, encoding)


__all__ = ["ParseError", "add_patient_lite", "remove_patient_lite"]
