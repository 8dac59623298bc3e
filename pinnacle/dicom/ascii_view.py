"""An ASCII view of a Pinnacle patient folder for pymedphys, and the way back to the real characters.

Pinnacle writes its text files in the workstation's encoding (GB18030 on a Chinese site, Latin-1 on old
European ones, UTF-8 on new ones; pinnacle.syntax.decode tells which). pymedphys reads its YAML-like files
as Latin-1 and ``plan.roi`` as the locale's encoding, so a Chinese name either stops it (a YAML control
character, a UTF-8 decoding error) or becomes mojibake. The view is a folder of links to the original
files, but for each text file with a character beyond ASCII, an ASCII copy where every such character
(and ``~`` itself) is written ``~U<hex>~``. Every reader passes that through untouched; ``restore_text``
turns it back in the objects pymedphys makes, and marks them UTF-8 (ISO_IR 192). Nothing of the original
folder is changed, and an all-ASCII folder is used as it is.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pydicom
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from pinnacle.syntax import decode

# Large binary files (image voxels, dose volumes) are linked without being read as text.
_BINARY_SUFFIXES = (".img", ".dcm")
_SNIFF_BYTES = 8192
_ESCAPED = re.compile(r"~U([0-9A-F]{1,6})~")
_TEXT_VRS = {"PN", "LO", "SH", "ST", "LT", "UT", "UC", "CS"}


def _escape(text: str) -> str:
    return "".join(c if c.isascii() and c != "~" else f"~U{ord(c):X}~" for c in text)


def _unescape(text: str) -> str:
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)


def _is_text(path: Path) -> bool:
    if path.suffix.lower() in _BINARY_SUFFIXES or ".binary." in path.name:
        return False
    with path.open("rb") as handle:
        return b"\x00" not in handle.read(_SNIFF_BYTES)


def ascii_view(patient_dir: Path, scratch: Path) -> tuple[Path, list[str]]:
    """(the folder to read, the files rewritten, as "name (encoding)"). ``scratch`` must be empty or absent."""
    files = [p for p in sorted(patient_dir.rglob("*")) if p.is_file() and not p.is_symlink()]
    rewrite = {}
    for path in files:
        if _is_text(path):
            data = path.read_bytes()
            if not data.isascii():
                rewrite[path] = decode(data)
    if not rewrite:
        return patient_dir, []
    view = scratch / patient_dir.name
    notes = []
    for path in files:
        relative = path.relative_to(patient_dir)
        target = view / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if path in rewrite:
            text, encoding = rewrite[path]
            target.write_text(_escape(text), encoding="ascii")
            notes.append(f"{relative.as_posix()} ({encoding})")
        else:
            os.symlink(path.resolve(), target)
    return view, notes


def restore_text(ds: pydicom.Dataset) -> bool:
    """Turn ``~U<hex>~`` back into its character in every text element (nested ones too); a dataset that
    then holds non-ASCII text is marked UTF-8. True when anything changed."""
    changed = False

    def visit(dataset: pydicom.Dataset, element: pydicom.DataElement) -> None:
        nonlocal changed
        if element.VR not in _TEXT_VRS or element.value is None:
            return
        values = element.value if isinstance(element.value, MultiValue) else [element.value]
        restored = [_unescape(str(v)) for v in values]
        if restored == [str(v) for v in values]:
            return
        restored_values: list = [PersonName(v) for v in restored] if element.VR == "PN" else restored
        element.value = restored_values if isinstance(element.value, MultiValue) else restored_values[0]
        changed = True

    ds.walk(visit)
    if changed:
        ds.SpecificCharacterSet = "ISO_IR 192"
    return changed
