"""The in-process packer: stream a patient's files through tar, SHA-256 and a compressor once.

The archive is written as two compressed frames: a *body* (the patient tree, hashed file by file as
it is read) and a *head* (the single-patient ``Institution`` header and ``PDAS-MANIFEST.json``, which
needs those hashes). The head frame comes first in the archive; frames concatenate into one tar
stream, so plain ``tar`` and Pinnacle's restore see the member order (docs/contracts.md §4.2) while
each source byte is read exactly once.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from archiver.packing import tarformat
from archiver.packing.codecs import FrameCompressor, compress_frame
from archiver.packing.manifest import build_manifest, manifest_bytes
from connectors.tps.base import TpsError, TpsSource

CHUNK = 1 << 20


class PackError(Exception):
    """Packing failed; the message names the file. ``changed`` is True when the source moved under us."""

    def __init__(self, message: str, *, changed: bool = False, retryable: bool = False):
        super().__init__(message)
        self.changed = changed
        self.retryable = retryable


@dataclass
class PackedArchive:
    """An archive on local disk, as the concatenation of ``parts``."""

    name: str
    codec: str
    parts: list[Path]
    size: int
    sha256: str
    raw_bytes: int
    manifest: dict
    files: list[dict] = field(default_factory=list)

    def iter_chunks(self, chunk: int = CHUNK) -> Iterator[bytes]:
        for part in self.parts:
            with open(part, "rb") as handle:
                while data := handle.read(chunk):
                    yield data

    def discard(self) -> None:
        for part in self.parts:
            part.unlink(missing_ok=True)


def _parent_dirs(paths: list[str], patient_root: str) -> list[str]:
    dirs = {patient_root}
    for path in paths:
        parent = path.rsplit("/", 1)[0]
        while parent.startswith(patient_root) and parent not in dirs:
            dirs.add(parent)
            parent = parent.rsplit("/", 1)[0]
    return sorted(dirs)


def pack_patient(
    *,
    source: TpsSource,
    patient,
    work_dir: Path,
    name: str,
    institution_code: str,
    institution_header: bytes,
    codec: str,
    level: int = 0,
    packed_at: dt.datetime,
    progress: Callable[[int], None] | None = None,
) -> PackedArchive:
    """Pack ``patient`` (a reader ``PatientInfo``) into ``work_dir/name`` parts.

    Every file is checked against the size and mtime the listing gave; a file that changed while it
    was read raises ``PackError(changed=True)`` and nothing is kept.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    body_path = work_dir / f"{name}.body"
    head_path = work_dir / f"{name}.head"
    for stale in (body_path, head_path):
        stale.unlink(missing_ok=True)
    files = sorted(patient.files, key=lambda f: f.path)
    entries: list[dict] = []
    raw_bytes = 0
    tar_offset = 0
    archive_hash = hashlib.sha256()
    try:
        compressor = FrameCompressor(codec, level)
        with open(body_path, "wb") as body:
            def emit(data: bytes) -> None:
                nonlocal tar_offset
                tar_offset += len(data)
                out = compressor.compress(data)
                if out:
                    body.write(out)

            for directory in _parent_dirs([f.path for f in files], patient.tps_path):
                emit(tarformat.dir_header(directory))
            for info in files:
                emit(tarformat.file_header(info.path, info.size, info.mtime))
                file_hash = hashlib.sha256()
                read = 0
                try:
                    with source.open_read(info.path) as stream:
                        while data := stream.read(CHUNK):
                            read += len(data)
                            if read > info.size:
                                break
                            file_hash.update(data)
                            emit(data)
                            if progress:
                                progress(len(data))
                except TpsError as exc:
                    raise PackError(f"{info.path}: {exc}", retryable=exc.retryable) from None
                except OSError as exc:
                    raise PackError(f"{info.path}: {exc.strerror or exc}") from None
                after = source.stat(info.path)
                if read != info.size or after is None or after.size != info.size or after.mtime != info.mtime:
                    raise PackError(f"{info.path} changed while it was being packed", changed=True)
                emit(tarformat.padding(info.size))
                raw_bytes += info.size
                entries.append({"path": info.path, "size": info.size, "sha256": file_hash.hexdigest()})
            manifest = build_manifest(
                institution_code=institution_code, patient=patient, files=entries, packed_at=packed_at, codec=codec
            )
            head_tar = tarformat.member("Institution", institution_header) + tarformat.member(
                "PDAS-MANIFEST.json", manifest_bytes(manifest)
            )
            # The end-of-archive padding depends on the whole tar stream, head frame included.
            emit(tarformat.closing(len(head_tar) + tar_offset))
            body.write(compressor.finish())
            body.flush()
            os.fsync(body.fileno())
        head = compress_frame(codec, level, head_tar)
        head_path.write_bytes(head)
        archive_hash.update(head)
        with open(body_path, "rb") as handle:
            while data := handle.read(CHUNK):
                archive_hash.update(data)
    except BaseException:
        body_path.unlink(missing_ok=True)
        head_path.unlink(missing_ok=True)
        raise
    size = head_path.stat().st_size + body_path.stat().st_size
    return PackedArchive(
        name=name, codec=codec, parts=[head_path, body_path], size=size, sha256=archive_hash.hexdigest(),
        raw_bytes=raw_bytes, manifest=manifest, files=entries,
    )
