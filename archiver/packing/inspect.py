"""Reading an archive back: does it open, list, and hold exactly what its manifest says?

Used to verify a packed archive before originals are removed, and to validate an archive before a
restore writes anything. Nothing is extracted: members are streamed and hashed.
"""
from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

import zstandard

from archiver.packing.codecs import open_decompressed

HEADER_LIMIT = 16 << 20  # the Institution header and manifest are small; refuse absurd ones
CHUNK = 1 << 20


@dataclass
class ArchiveMember:
    path: str
    kind: str  # "file" or "dir"
    size: int
    sha256: str = ""


@dataclass
class ArchiveListing:
    header: bytes = b""
    manifest: dict = field(default_factory=dict)
    members: list[ArchiveMember] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    size: int | None = None  # bytes read and their SHA-256 (inspect_packed only)
    sha256: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def _unsafe_path(name: str) -> str | None:
    if name.startswith("/") or name.startswith("\\") or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return "a '..' component"
    if "\x00" in name:
        return "a NUL byte"
    return None


def inspect_archive(raw: BinaryIO, codec: str) -> ArchiveListing:
    """List and hash every member of an archive stream; ``problems`` says what is wrong, if anything."""
    listing = ArchiveListing()
    try:
        with tarfile.open(fileobj=open_decompressed(codec, raw), mode="r|") as tar:
            for index, info in enumerate(tar):
                reason = _unsafe_path(info.name)
                if reason:
                    listing.problems.append(f"member {info.name!r} has {reason}")
                    continue
                if info.issym() or info.islnk():
                    listing.problems.append(f"member {info.name!r} is a link (to {info.linkname!r})")
                    continue
                if not (info.isreg() or info.isdir()):
                    listing.problems.append(f"member {info.name!r} is not a regular file or folder")
                    continue
                name = posixpath.normpath(info.name)
                if info.isdir():
                    listing.members.append(ArchiveMember(name, "dir", 0))
                    continue
                handle = tar.extractfile(info)
                if index in (0, 1):
                    expected = "Institution" if index == 0 else "PDAS-MANIFEST.json"
                    if name != expected:
                        listing.problems.append(f"member {index + 1} is {name!r}, expected {expected!r}")
                    elif info.size > HEADER_LIMIT:
                        listing.problems.append(f"{name} is {info.size} bytes, larger than any real one")
                        continue
                    else:
                        data = handle.read()
                        if index == 0:
                            listing.header = data
                        else:
                            try:
                                listing.manifest = json.loads(data.decode("utf-8"))
                            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                                listing.problems.append(f"PDAS-MANIFEST.json is not valid JSON: {exc}")
                        continue
                hasher = hashlib.sha256()
                size = 0
                while data := handle.read(CHUNK):
                    hasher.update(data)
                    size += len(data)
                listing.members.append(ArchiveMember(name, "file", size, hasher.hexdigest()))
    except (tarfile.TarError, EOFError, OSError, zlib.error, zstandard.ZstdError) as exc:
        listing.problems.append(f"archive cannot be read: {exc}")
    if not listing.manifest and not any(p.startswith("PDAS-MANIFEST") for p in listing.problems):
        listing.problems.append("archive has no PDAS-MANIFEST.json")
    return listing


class _HashingReader(io.RawIOBase):
    """Counts and hashes every byte read through it."""

    def __init__(self, raw: BinaryIO):
        super().__init__()
        self._raw, self.hasher, self.size = raw, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.hasher.update(data)
        self.size += n
        return n


def inspect_packed(raw: BinaryIO, codec: str, *, sha256: str, size: int) -> ArchiveListing:
    """``inspect_archive`` of a packed file before it is uploaded, also proving that the bytes read are
    the ones packing measured (the same SHA-256 and size): a listing of other bytes proves nothing."""
    reader = _HashingReader(raw)
    listing = inspect_archive(io.BufferedReader(reader, buffer_size=CHUNK), codec)
    while reader.read(CHUNK):  # the tar reader may stop before the compressed stream's last bytes
        pass
    listing.size, listing.sha256 = reader.size, reader.hasher.hexdigest()
    if listing.size != size or listing.sha256 != sha256:
        listing.problems.append(f"the file read is {listing.size} bytes with SHA-256 {listing.sha256}, "
                                f"packing measured {size} bytes with {sha256}")
    listing.problems += compare_with_manifest(listing)
    return listing


def compare_with_manifest(listing: ArchiveListing) -> list[str]:
    """Problems between the archive's file members and its manifest's ``files`` (one to one)."""
    problems: list[str] = []
    manifest_files = {f.get("path"): f for f in listing.manifest.get("files", [])}
    patient_path = (listing.manifest.get("patient") or {}).get("tps_path", "")
    seen: set[str] = set()
    for member in listing.members:
        if member.kind != "file":
            if patient_path and not (member.path == patient_path or member.path.startswith(patient_path + "/")
                                     or patient_path.startswith(member.path + "/")):
                problems.append(f"folder {member.path} is outside the patient {patient_path}")
            continue
        if member.path in seen:
            problems.append(f"{member.path} appears twice")
            continue
        seen.add(member.path)
        expected = manifest_files.get(member.path)
        if expected is None:
            problems.append(f"{member.path} is in the archive but not in the manifest")
        elif expected.get("size") != member.size:
            problems.append(f"{member.path}: {member.size} bytes, manifest says {expected.get('size')}")
        elif expected.get("sha256") != member.sha256:
            problems.append(f"{member.path}: SHA-256 differs from the manifest")
    for path in manifest_files.keys() - seen:
        problems.append(f"{path} is in the manifest but not in the archive")
    return problems
