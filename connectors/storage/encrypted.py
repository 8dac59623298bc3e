"""Encrypted targets: every object in the age v1 format (pyrage: X25519 recipients, ChaCha20-Poly1305 in
authenticated 64 KiB chunks), so the standard ``age`` tool alone gets a patient back::

    age -d -i key.txt <sha256>.tar.gz.age | tar -xz

No object name and no unencrypted object shows a patient. For an archive whose SHA-256 is ``<sha256>``
the target holds:

- ``<sha256>.tar.gz.age`` (``.tar.zst.age``): the archive, encrypted;
- ``<sha256>.tar.gz.age.sha256``: the SHA-256 of those encrypted bytes, ``sha256sum`` format, so a fixity
  check needs no key;
- ``<sha256>.manifest.json.age`` and ``<sha256>.manifest.json.age.sha256``: the manifest, likewise.

PDAS holds only the public recipients (``encrypt_to``); the private identity is needed to restore or to
rebuild the index from such a target, and a missing one is said as such (``IdentityMissing``). Every
object is uploaded like any other (temporary name, no overwrite). Decrypting checks every chunk: a
damaged or truncated object fails authentication, and ``decrypt_to_file`` then leaves nothing behind.
"""
from __future__ import annotations

import hashlib
import os
import queue
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from connectors.errors import SecretError
from connectors.storage.base import CHUNK, ObjectLock, ProgressFn, StorageBackend, StorageError

AGE = ".age"
SIDECAR = ".sha256"
MANIFEST = ".manifest.json"
ARCHIVE_EXTENSIONS = (".tar.gz", ".tar.zst")
_OBJECT = re.compile(r"([0-9a-f]{64})(\.tar\.gz|\.tar\.zst)\.age\Z")


class IdentityMissing(SecretError):
    """Restoring or rebuilding from an encrypted target needs its age identity, and none is configured."""


def recipients_problem(recipients: object) -> str | None:
    """Why ``recipients`` is not a list of age X25519 recipients (``age1...``), or None."""
    if not isinstance(recipients, list) or not all(isinstance(item, str) for item in recipients):
        return 'must be a list of age recipients, as in ["age1..."]'
    if len(set(recipients)) != len(recipients):
        return "names a recipient twice"
    from pyrage import x25519

    for recipient in recipients:
        if recipient.startswith("AGE-SECRET-KEY-"):
            return "holds a private identity (AGE-SECRET-KEY-...): give only public recipients (age1...)"
        try:
            x25519.Recipient.from_str(recipient.strip())
        except Exception:
            return f"{recipient[:12]!r}... is not an age X25519 recipient (age1 followed by 58 characters)"
    return None


def parse_recipients(recipients: Iterable[str]) -> list:
    from pyrage import x25519

    values = [item.strip() for item in recipients]
    if problem := recipients_problem(values):
        raise StorageError(f"encrypt_to {problem}")
    return [x25519.Recipient.from_str(value) for value in values]


def parse_identities(text: str, *, where: str) -> list:
    """The X25519 identities of an age key file's text (``AGE-SECRET-KEY-1...`` lines; ``#`` comments)."""
    from pyrage import x25519

    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.append(x25519.Identity.from_str(line))
        except Exception:
            raise SecretError(f"{where}: holds a line that is not an age identity (AGE-SECRET-KEY-1...)") from None
    if not found:
        raise SecretError(f"{where}: holds no age identity (AGE-SECRET-KEY-1...)")
    return found


def load_identities(*, identity_file: str = "", identity_text: str | None = None, target: str) -> list:
    """The identities of a target, from its ``identity_file`` or the text its ``identity_env`` holds;
    ``IdentityMissing`` naming the target when it has neither."""
    if identity_text:
        return parse_identities(identity_text, where=f"storage {target}: identity_env")
    if identity_file:
        try:
            text = Path(identity_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise SecretError(f"storage {target}: cannot read identity_file {identity_file}: {exc.strerror}") from None
        return parse_identities(text, where=f"storage {target}: identity_file {identity_file}")
    raise IdentityMissing(f"storage {target} is encrypted (encrypt_to) and has no identity to decrypt it: set "
                          "identity_file or identity_env on the target (the private key, AGE-SECRET-KEY-1...)")


@dataclass(frozen=True)
class EncryptedNames:
    """The object names of one archive on an encrypted target, all derived from its SHA-256."""

    sha256: str
    extension: str  # ".tar.gz" or ".tar.zst"

    @classmethod
    def of(cls, sha256: str, extension: str) -> "EncryptedNames":
        if not re.fullmatch(r"[0-9a-f]{64}", sha256 or ""):
            raise StorageError(f"{sha256!r} is not a SHA-256 in hex: encrypted objects are named after it")
        if extension not in ARCHIVE_EXTENSIONS:
            raise StorageError(f"{extension!r} is not an archive extension ({', '.join(ARCHIVE_EXTENSIONS)})")
        return cls(sha256, extension)

    @classmethod
    def from_object(cls, name: str) -> "EncryptedNames | None":
        """The names of the archive whose encrypted object is ``name``; None for any other name."""
        found = _OBJECT.match(name)
        return cls(found.group(1), found.group(2)) if found else None

    @property
    def archive(self) -> str:
        return f"{self.sha256}{self.extension}{AGE}"

    @property
    def manifest(self) -> str:
        return f"{self.sha256}{MANIFEST}{AGE}"

    @property
    def archive_sidecar(self) -> str:
        return self.archive + SIDECAR

    @property
    def manifest_sidecar(self) -> str:
        return self.manifest + SIDECAR

    def all(self) -> tuple[str, str, str, str]:
        return self.archive, self.archive_sidecar, self.manifest, self.manifest_sidecar


def sidecar_line(sha256: str, name: str) -> bytes:
    """``sha256sum`` format, binary mode, as the plain targets' ``.sha256``."""
    return f"{sha256} *{name}\n".encode("utf-8")


def parse_sidecar_line(data: bytes, *, name: str) -> str | None:
    """The digest a ``.sha256`` sidecar gives for ``name``, or None when it is not such a line."""
    found = re.fullmatch(rb"([0-9a-fA-F]{64}) [ *](.+)\n?", data)
    if not found or found.group(2).decode("utf-8", "replace") != name:
        return None
    return found.group(1).decode("ascii").lower()


# --- streaming through pyrage ----------------------------------------------------------------------

class _Stop(Exception):
    """The consumer went away: the worker thread stops writing."""


_DONE = object()


def _pipe(run: Callable, chunks: Iterable[bytes], *, depth: int = 8) -> Iterator[bytes]:
    """``run(reader, writer)`` (pyrage's ``encrypt_io``/``decrypt_io``) in a thread, fed from ``chunks`` and
    yielding what it writes, with at most ``depth`` pieces in flight. An error of ``chunks`` (the producer)
    is raised as it is; an error of ``run`` as ``ValueError`` wrapping it (the caller says what failed)."""
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    producer_error: list[BaseException] = []
    source = iter(chunks)

    class Reader:
        """pyrage reads 8 KiB at a time: serve them from the current chunk by offset, never re-slicing it."""

        def __init__(self):
            self.chunk, self.offset = b"", 0

        def read(self, size: int = -1) -> bytes:
            if self.offset >= len(self.chunk):
                self.chunk, self.offset = b"", 0
                while not self.chunk and not stop.is_set():
                    try:
                        self.chunk = bytes(next(source))
                    except StopIteration:
                        return b""
                    except BaseException as exc:
                        producer_error.append(exc)
                        raise _Stop from None
            end = len(self.chunk) if size is None or size < 0 else self.offset + size
            data = self.chunk[self.offset:end]
            self.offset += len(data)
            return data

        def readinto(self, target) -> int:
            data = self.read(len(target))
            target[:len(data)] = data
            return len(data)

    class Writer:
        """Hands what pyrage writes (64 KiB at a time) on in pieces of about ``CHUNK``."""

        def __init__(self):
            self.pending = bytearray()

        def write(self, data) -> int:
            self.pending += data
            if len(self.pending) >= CHUNK:
                self.hand_on()
            return len(data)

        def hand_on(self) -> None:
            piece, self.pending = bytes(self.pending), bytearray()
            while True:
                if stop.is_set():
                    raise _Stop
                try:
                    out.put(piece, timeout=0.5)
                    return
                except queue.Full:
                    continue

        def flush(self) -> None:
            pass

    def work() -> None:
        writer = Writer()
        try:
            run(Reader(), writer)
            if writer.pending:
                writer.hand_on()
        except BaseException as exc:
            result: object = exc
        else:
            result = _DONE
        while not stop.is_set():
            try:
                out.put(result, timeout=0.5)
                return
            except queue.Full:
                continue

    thread = threading.Thread(target=work, name="pdas-age", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                if producer_error:
                    raise producer_error[0]
                raise ValueError(str(item) or type(item).__name__) from None
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                out.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()


def encrypt_chunks(chunks: Iterable[bytes], recipients: list) -> Iterator[bytes]:
    """``chunks`` encrypted to ``recipients`` (parsed by ``parse_recipients``), as an age v1 stream."""
    import pyrage

    try:
        yield from _pipe(lambda reader, writer: pyrage.encrypt_io(reader, writer, recipients), chunks)
    except ValueError as exc:
        raise StorageError(f"age encryption failed: {exc}") from None


def decrypt_chunks(chunks: Iterable[bytes], identities: list, *, name: str = "the object") -> Iterator[bytes]:
    """The plaintext of an age stream. Each chunk is authenticated before it is yielded, but only the end
    of the stream proves it whole: a consumer must discard what it got when this raises (a
    ``StorageError``, not retryable: the object is damaged or not encrypted to these identities)."""
    import pyrage

    try:
        yield from _pipe(lambda reader, writer: pyrage.decrypt_io(reader, writer, identities), chunks)
    except ValueError as exc:
        raise StorageError(f"{name}: age decryption failed (the object is damaged, truncated, or not encrypted "
                           f"to this identity): {exc}") from None


class _Measured:
    """Passes chunks through, hashing them and counting bytes."""

    def __init__(self, chunks: Iterable[bytes], progress: ProgressFn | None = None):
        self._chunks, self._progress = chunks, progress
        self.hasher, self.size = hashlib.sha256(), 0

    def __iter__(self) -> Iterator[bytes]:
        for data in self._chunks:
            self.hasher.update(data)
            self.size += len(data)
            if self._progress:
                self._progress(len(data))
            yield data

    @property
    def sha256(self) -> str:
        return self.hasher.hexdigest()


# --- one archive on an encrypted target --------------------------------------------------------------

@dataclass(frozen=True)
class EncryptedCopy:
    """What an encrypted target holds of one archive: its names, and the digests and sizes of the encrypted
    archive and manifest objects (what a fixity check compares, with no key)."""

    names: EncryptedNames
    sha256: str  # of the encrypted archive object
    size: int
    manifest_sha256: str
    manifest_size: int


def store_encrypted(backend: StorageBackend, *, sha256: str, extension: str, archive_chunks: Iterable[bytes],
                    manifest: bytes, recipients: list, lock: ObjectLock | None = None,
                    progress: ProgressFn | None = None) -> EncryptedCopy:
    """Encrypt the archive and its manifest to ``recipients`` and store them with their ``.sha256`` sidecars.

    The archive is hashed as it is encrypted: bytes whose SHA-256 is not ``sha256`` are refused and the
    object removed again. An object already stored under its name is kept (age output differs at each
    run, so it is never re-encrypted and replaced): its digest is measured there and its sidecar written
    if it is missing.
    """
    names = EncryptedNames.of(sha256, extension)
    plain = _Measured(archive_chunks)
    archive_sha, archive_size = _store_object(
        backend, names.archive, lambda: _progress_here(encrypt_chunks(plain, recipients), plain, progress), lock=lock)
    if plain.size and plain.sha256 != sha256:
        backend.remove(names.archive)
        raise StorageError(f"{names.archive}: the bytes encrypted have SHA-256 {plain.sha256}, not the archive's "
                           f"{sha256}; removed again", retryable=True)
    manifest_sha, manifest_size = _store_object(backend, names.manifest,
                                                lambda: encrypt_chunks([manifest], recipients), lock=lock)
    for name, digest in ((names.archive_sidecar, archive_sha), (names.manifest_sidecar, manifest_sha)):
        wanted = sidecar_line(digest, name[: -len(SIDECAR)])
        if backend.stat(name) is None:
            backend.write_bytes(name, wanted, lock=lock)
        elif backend.read_bytes(name) != wanted:
            raise StorageError(f"{name} already exists on {backend.url} with another digest", exists=True)
    return EncryptedCopy(names, archive_sha, archive_size, manifest_sha, manifest_size)


def _progress_here(encrypted: Iterable[bytes], plain: _Measured, progress: ProgressFn | None) -> Iterator[bytes]:
    """The encrypted chunks, with ``progress`` told the plain bytes taken so far, from the caller's thread:
    pyrage's thread is the one that reads the plain chunks, and a progress callback may write to the
    database, which must not happen from a thread of its own (a connection opened there, never closed)."""
    told = 0
    for data in encrypted:
        yield data
        if progress and plain.size > told:
            progress(plain.size - told)
            told = plain.size
    if progress and plain.size > told:
        progress(plain.size - told)


def _store_object(backend: StorageBackend, name: str, encrypted: Callable[[], Iterable[bytes]], *,
                  lock: ObjectLock | None) -> tuple[str, int]:
    if backend.stat(name) is not None:
        digest = backend.digest(name)
        return digest.sha256, digest.size
    measured = _Measured(encrypted())
    backend.upload(name, measured, lock=lock)
    return measured.sha256, measured.size


@dataclass
class EncryptedMeasurement:
    """A check of an encrypted copy with no key: what is missing, and what disagrees."""

    sha256: str = ""
    size: int | None = None
    method: str = "read_back"
    missing: list[str] | None = None
    problems: list[str] | None = None


def measure_encrypted(backend: StorageBackend, names: EncryptedNames, *, expected: EncryptedCopy | None = None
                      ) -> EncryptedMeasurement:
    """Measure the encrypted archive where it lies and compare it with its sidecar (and with ``expected``,
    the digests recorded at upload, when known): no key needed. Both manifest objects must be there and
    agree too."""
    found = EncryptedMeasurement(missing=[], problems=[])
    assert found.missing is not None and found.problems is not None
    for name in names.all():
        if backend.stat(name) is None:
            found.missing.append(name)
    if names.archive not in found.missing:
        digest = backend.digest(names.archive)
        found.sha256, found.size, found.method = digest.sha256, digest.size, digest.method
        if expected is not None and (digest.sha256 != expected.sha256 or digest.size != expected.size):
            found.problems.append(f"{names.archive}: SHA-256 or size on the target differs from the upload's")
        if names.archive_sidecar not in found.missing:
            said = parse_sidecar_line(backend.read_bytes(names.archive_sidecar), name=names.archive)
            if said != digest.sha256:
                found.problems.append(f"{names.archive_sidecar} does not hold the SHA-256 of {names.archive}")
    if names.manifest not in found.missing:
        manifest = backend.digest(names.manifest)
        if expected is not None and manifest.sha256 != expected.manifest_sha256:
            found.problems.append(f"{names.manifest}: SHA-256 on the target differs from the upload's")
        if names.manifest_sidecar not in found.missing:
            said = parse_sidecar_line(backend.read_bytes(names.manifest_sidecar), name=names.manifest)
            if said != manifest.sha256:
                found.problems.append(f"{names.manifest_sidecar} does not hold the SHA-256 of {names.manifest}")
    return found


def encrypted_archives(backend: StorageBackend) -> list[EncryptedNames]:
    """The archives an encrypted target holds (by their encrypted objects), in name order."""
    found = (EncryptedNames.from_object(remote.name) for remote in backend.list_files())
    return sorted((names for names in found if names is not None), key=lambda n: n.archive)


def read_manifest(backend: StorageBackend, names: EncryptedNames, identities: list) -> bytes:
    """The manifest's plaintext (a few kB, authenticated whole before it is returned)."""
    return b"".join(decrypt_chunks(backend.read_chunks(names.manifest), identities, name=names.manifest))


def read_archive(backend: StorageBackend, names: EncryptedNames, identities: list, *,
                 chunk: int = CHUNK) -> Iterator[bytes]:
    """The archive's plaintext, streamed: provisional until the stream ends (see ``decrypt_chunks``)."""
    return decrypt_chunks(backend.read_chunks(names.archive, chunk), identities, name=names.archive)


def decrypt_to_file(backend: StorageBackend, names: EncryptedNames, identities: list, path: Path, *,
                    progress: ProgressFn | None = None) -> str:
    """Decrypt the archive into ``path`` and return its SHA-256, which must be the one it is named after.
    Written to a temporary name beside ``path`` and renamed only once the whole stream authenticated and
    the digest matched: on any failure nothing is left at ``path`` nor beside it."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    measured = _Measured(read_archive(backend, names, identities), progress)
    try:
        with open(partial, "xb") as handle:
            for data in measured:
                handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if measured.sha256 != names.sha256:
            raise StorageError(f"{names.archive}: decrypts to bytes whose SHA-256 is {measured.sha256}, not the "
                               f"{names.sha256} it is named after")
        os.link(partial, path)  # never replaces a file already there
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.unlink()
    return measured.sha256


__all__ = ["AGE", "EncryptedCopy", "EncryptedMeasurement", "EncryptedNames", "IdentityMissing",
           "decrypt_chunks", "decrypt_to_file", "encrypt_chunks", "encrypted_archives", "load_identities",
           "measure_encrypted", "parse_identities", "parse_recipients", "read_archive", "read_manifest",
           "recipients_problem", "sidecar_line", "store_encrypted"]
