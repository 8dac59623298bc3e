"""Archive file names (docs/contracts.md §4.1): ``<NAME>_<MRN>_<YYYYMMDDHHMMSS>.tar.gz``.

NAME is ``Last-First`` in ASCII: Chinese as toneless pinyin with one name part's syllables joined
(张三 -> ZHANG-SAN, 欧阳娜娜 -> OUYANG-NANA), accents folded (Müller -> MULLER), upper case, any run
of characters outside ``[A-Z0-9-]`` replaced by ``-``, at most 64 characters. An empty name part is
left out rather than leaving a dangling ``-`` (documented in docs/archive-format.md).
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata

from pypinyin import Style, lazy_pinyin

EXTENSIONS = {"gzip": ".tar.gz", "zstd": ".tar.zst"}
NAME_MAX = 64

# pypinyin reads characters as common words; these read differently as a family name.
_SURNAME_READINGS = {
    "万俟": "moqi", "尉迟": "yuchi", "单": "shan", "曾": "zeng", "解": "xie", "仇": "qiu", "朴": "piao",
    "查": "zha", "区": "ou", "盖": "ge", "繁": "po", "覃": "qin", "翟": "zhai", "乐": "yue", "缪": "miao",
    "种": "chong", "员": "yun", "折": "she", "黑": "he", "秘": "bi", "长孙": "zhangsun", "燕": "yan",
}
_NOT_NAME = re.compile(r"[^A-Z0-9-]+")
_NOT_MRN = re.compile(r"[^A-Za-z0-9-]+")
_ARCHIVE_NAME = re.compile(
    r"^(?P<name>[A-Z0-9-]{1,64})_(?P<mrn>[A-Za-z0-9-]+)_(?P<stamp>\d{14})(?:_(?P<clash>[2-9]|[1-9]\d+))?"
    r"(?P<ext>\.tar\.gz|\.tar\.zst)$"
)


def _ascii(text: str, *, surname: bool = False) -> str:
    text = unicodedata.normalize("NFKC", text).strip()
    prefix = ""
    if surname:
        for family, reading in sorted(_SURNAME_READINGS.items(), key=lambda kv: -len(kv[0])):
            if text.startswith(family):
                prefix, text = reading, text[len(family):]
                break
    # Syllables of one name part are joined; anything pypinyin leaves alone (Latin) passes through.
    romanised = prefix + "".join(lazy_pinyin(text, style=Style.NORMAL, errors="default"))
    folded = unicodedata.normalize("NFKD", romanised).encode("ascii", "ignore").decode("ascii")
    return folded.upper()


def name_part(last_name: str, first_name: str) -> str:
    parts = [p for p in (_ascii(last_name, surname=True), _ascii(first_name)) if p]
    name = _NOT_NAME.sub("-", "-".join(parts))
    return (name or "UNKNOWN")[:NAME_MAX]


def mrn_part(mrn: str) -> str:
    return _NOT_MRN.sub("-", mrn.strip()) or "NO-MRN"


def archive_name(*, last_name: str, first_name: str, mrn: str, edited: dt.datetime, codec: str = "gzip",
                 clash: int = 1) -> str:
    """The archive file name; ``clash`` >= 2 adds ``_2``, ``_3`` ... before the extension."""
    stamp = edited.strftime("%Y%m%d%H%M%S")
    suffix = f"_{clash}" if clash > 1 else ""
    return f"{name_part(last_name, first_name)}_{mrn_part(mrn)}_{stamp}{suffix}{EXTENSIONS[codec]}"


def parse_archive_name(name: str) -> dict | None:
    """The parts of a valid archive name, or None when the name breaks the rules."""
    match = _ARCHIVE_NAME.match(name)
    if not match:
        return None
    try:
        stamp = dt.datetime.strptime(match["stamp"], "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return {"name": match["name"], "mrn": match["mrn"], "edited": stamp, "clash": int(match["clash"] or 1),
            "codec": "gzip" if match["ext"] == ".tar.gz" else "zstd"}
