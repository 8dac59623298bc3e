"""Packing where the data lives, behind one result type.

A local TPS tree is packed in-process by the streaming packer (each source byte read once). A TPS
reached over SSH is packed on its own host by the pack script (``deploy/pinnacle/pdas-pack.sh`` or
the institution's own), so only the compressed archive crosses the network.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from archiver.packing.manifest import build_manifest, institution_header, manifest_bytes
from archiver.packing.stream_packer import CHUNK, PackedArchive, PackError, pack_patient
from connectors.tps.base import TpsError, TpsSource

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "pinnacle" / "pdas-pack.sh"


class _ConcatReader(io.RawIOBase):
    """One readable stream over several files, in order."""

    def __init__(self, paths: list[Path]):
        self._files = [open(p, "rb") for p in paths]
        self._index = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._index < len(self._files):
            n = self._files[self._index].readinto(buffer)
            if n:
                return n
            self._index += 1
        return 0

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        super().close()


class LocalPacked:
    """An archive packed on this host: the head and body frames in the work folder."""

    def __init__(self, archive: PackedArchive):
        self.archive = archive
        self.name, self.size, self.sha256 = archive.name, archive.size, archive.sha256
        self.raw_bytes, self.manifest = archive.raw_bytes, archive.manifest

    def iter_chunks(self) -> Iterator[bytes]:
        return self.archive.iter_chunks()

    def open(self) -> BinaryIO:
        return io.BufferedReader(_ConcatReader(self.archive.parts), buffer_size=CHUNK)

    def discard(self) -> None:
        self.archive.discard()


class RemotePacked:
    """An archive packed on the TPS host by the pack script; read through the TPS source."""

    def __init__(self, *, tps: TpsSource, rel_path: str, name: str, size: int, sha256: str, raw_bytes: int,
                 manifest: dict):
        self.tps, self.rel_path = tps, rel_path
        self.name, self.size, self.sha256, self.raw_bytes, self.manifest = name, size, sha256, raw_bytes, manifest

    def iter_chunks(self) -> Iterator[bytes]:
        with self.tps.open_read(self.rel_path) as stream:
            while data := stream.read(CHUNK):
                yield data

    def open(self) -> BinaryIO:
        return self.tps.open_read(self.rel_path)

    def discard(self) -> None:
        self.tps.run(["rm", "-rf", "--", self.tps.host_path(self.rel_path),
                      self.tps.host_path(self.rel_path + ".stage")])


def _is_local(tps: TpsSource) -> bool:
    from connectors.tps.local import LocalTpsSource

    return isinstance(tps, LocalTpsSource)


def pack(*, tps: TpsSource, work_dir: str, info, name: str, institution, institution_id: int | None,
         institution_name: str, packed_at, progress: Callable[[int], None] | None = None):
    header = institution_header(institution_dir=info.institution_dir, institution_id=institution_id,
                                name=institution_name, patient=info)
    if _is_local(tps) and not institution.pack_script:
        packed = pack_patient(
            source=tps, patient=info, work_dir=Path(tps.host_path(work_dir)), name=name,
            institution_code=institution.code, institution_header=header, codec=institution.codec,
            level=institution.codec_level, packed_at=packed_at, progress=progress,
        )
        return LocalPacked(packed)
    return _pack_with_script(tps=tps, work_dir=work_dir, info=info, name=name, institution=institution,
                             header=header, packed_at=packed_at, progress=progress)


def _run_script(tps: TpsSource, script: str, args: list[str]) -> str:
    result = tps.run(["sh", script, *args], timeout=6 * 3600)
    if result.exit_status != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise PackError(f"pack script {args[0]} failed (exit {result.exit_status}): "
                        f"{message[-1] if message else 'no message'}")
    # Names are the host's bytes: undecodable ones (a GB18030 name) keep them as surrogate escapes,
    # as the TPS source lists them, so the two listings compare name for name.
    return result.stdout.decode("utf-8", "surrogateescape")


def _hash_line(line: str) -> tuple[str, str, str]:
    parts = line.split(" ", 2)
    if len(parts) != 3 or len(parts[0]) != 64 or not parts[1].isdigit():
        raise PackError(f"pack script printed {line[:200]!r}, expected '<sha256> <size> <path>'")
    return parts[0], parts[1], parts[2]


def _pack_with_script(*, tps: TpsSource, work_dir: str, info, name: str, institution, header: bytes, packed_at,
                      progress) -> RemotePacked:
    tps.make_dirs(work_dir)
    script = institution.pack_script
    if not script:
        script_rel = f"{work_dir}/pdas-pack.sh"
        tps.write_bytes_atomic(script_rel, SCRIPT.read_bytes())
        script = tps.host_path(script_rel)
    root = tps.host_path("")
    listed = {f.path: f.size for f in info.files}
    entries = []
    # One line per file, split on "\n" only: a name may hold any other character (the script refuses
    # names with a line break), and the path is everything after the second space.
    for line in _run_script(tps, script, ["hash", root, info.tps_path]).split("\n"):
        if not line:
            continue
        digest, size, path = _hash_line(line)
        if listed.get(path) != int(size):
            raise PackError(f"{path} changed while it was being packed", changed=True)
        entries.append({"path": path, "size": int(size), "sha256": digest})
    if {e["path"] for e in entries} != set(listed):
        raise PackError(f"the files of {info.tps_path} changed while it was being packed", changed=True)
    manifest = build_manifest(institution_code=institution.code, patient=info, files=entries, packed_at=packed_at,
                              codec=institution.codec)
    stage = f"{work_dir}/{name}.stage"
    tps.make_dirs(stage)
    tps.write_bytes_atomic(f"{stage}/Institution", header)
    tps.write_bytes_atomic(f"{stage}/PDAS-MANIFEST.json", manifest_bytes(manifest))
    out_rel = f"{work_dir}/{name}"
    output = _run_script(tps, script, ["pack", root, info.tps_path, tps.host_path(stage), tps.host_path(out_rel),
                                       institution.codec, str(institution.codec_level or "")]).split()
    if len(output) < 2 or len(output[0]) != 64:
        raise PackError(f"pack script printed {' '.join(output)!r}, expected '<sha256> <size>'")
    raw_bytes = sum(e["size"] for e in entries)
    if progress:
        progress(raw_bytes)
    return RemotePacked(tps=tps, rel_path=out_rel, name=name, size=int(output[1]), sha256=output[0],
                        raw_bytes=raw_bytes, manifest=manifest)


def find_packed(*, tps: TpsSource, work_dir: str, archive) -> LocalPacked | RemotePacked | None:
    """The packed file of an earlier attempt, if it is still there and still has the recorded digest."""
    if _is_local(tps):
        base = Path(tps.host_path(work_dir))
        parts = [base / f"{archive.name}.head", base / f"{archive.name}.body"]
        if not all(p.is_file() for p in parts):
            return None
        hasher = hashlib.sha256()
        for part in parts:
            with open(part, "rb") as handle:
                while data := handle.read(CHUNK):
                    hasher.update(data)
        if hasher.hexdigest() != archive.checksum:
            return None
        return LocalPacked(PackedArchive(name=archive.name, codec=archive.codec, parts=parts, size=archive.size,
                                         sha256=archive.checksum, raw_bytes=archive.raw_bytes or 0,
                                         manifest=archive.manifest))
    rel = f"{work_dir}/{archive.name}"
    try:
        result = tps.run(["sha256sum", "-b", "--", tps.host_path(rel)], timeout=3600)
    except TpsError:
        return None
    if result.exit_status != 0 or result.stdout.split()[:1] != [archive.checksum.encode()]:
        return None
    return RemotePacked(tps=tps, rel_path=rel, name=archive.name, size=archive.size, sha256=archive.checksum,
                        raw_bytes=archive.raw_bytes or 0, manifest=archive.manifest)


def discard_packed_files(*, tps: TpsSource, work_dir: str, name: str) -> None:
    """Remove whatever an attempt packed under ``name`` in the work folder (whole, partial or staged).
    Never follows a link; a file that is not there is fine."""
    if _is_local(tps):
        base = Path(tps.host_path(work_dir))
        for suffix in (".head", ".body"):
            path = base / f"{name}{suffix}"
            if path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)
        return
    rel = f"{work_dir}/{name}"
    tps.run(["rm", "-rf", "--", tps.host_path(rel), tps.host_path(rel + ".stage")])


__all__ = ["LocalPacked", "PackError", "RemotePacked", "discard_packed_files", "find_packed", "pack"]
