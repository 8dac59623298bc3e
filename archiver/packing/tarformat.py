"""Raw tar members in POSIX pax format, written by hand so members can stream through a hasher.

Python's ``tarfile`` needs the whole member as a file object; here a header is built from the size
known from the directory listing and the data follows in chunks.
"""
from __future__ import annotations

import tarfile

BLOCK = 512
RECORD = 20 * BLOCK
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)


def file_header(path: str, size: int, mtime: float, mode: int = 0o644) -> bytes:
    info = tarfile.TarInfo(path)
    info.size = size
    info.mtime = int(mtime)
    info.mode = mode
    info.type = tarfile.REGTYPE
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def dir_header(path: str, mtime: float = 0, mode: int = 0o755) -> bytes:
    info = tarfile.TarInfo(path.rstrip("/") + "/")
    info.mtime = int(mtime)
    info.mode = mode
    info.type = tarfile.DIRTYPE
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def member(path: str, data: bytes, mtime: float = 0) -> bytes:
    return file_header(path, len(data), mtime) + data + padding(len(data))


def closing(total_so_far: int) -> bytes:
    """End-of-archive blocks, then zeros up to a whole tar record (what tar itself writes)."""
    end = total_so_far + len(END_OF_ARCHIVE)
    return END_OF_ARCHIVE + b"\0" * (-end % RECORD)
