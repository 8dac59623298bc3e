"""``file://`` TPS sources: the Pinnacle ``$PATIENTS`` tree on a local disk or a mounted share.

Every path is opened one component at a time below the root with ``O_NOFOLLOW``, so a symbolic
link anywhere below the root (not only the last component) is refused instead of followed, even
if it was swapped in after the listing. The root itself may be a link (``/usr/local/adacnew/Patients``
often is).
"""
from __future__ import annotations

import errno
import os
import shutil
import stat as stat_mod
import subprocess
import uuid
from pathlib import Path
from typing import BinaryIO, Iterable

from connectors.tps.base import CommandResult, Entry, TpsError, TpsSource, clean_relpath, entry_kind
from connectors.urls import redact_url

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# Errors of a flaky mount or a busy server, where trying again later may work.
_RETRYABLE = {errno.EIO, errno.ETIMEDOUT, errno.ESTALE, errno.EAGAIN, errno.EBUSY, errno.ENOTCONN,
              errno.EHOSTDOWN, errno.EHOSTUNREACH}
TEMP_PREFIX = ".pdas-tmp-"


def _open_nofollow(name: str, flags: int, dir_fd: int) -> int:
    """``os.open`` below ``dir_fd`` that reports a link as ELOOP whatever the flags made the kernel say."""
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        # O_DIRECTORY on a link yields ENOTDIR on Linux; say what really stopped us.
        if exc.errno == errno.ENOTDIR:
            try:
                is_link = stat_mod.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
            except OSError:
                is_link = False
            if is_link:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP)) from None
        raise


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


class LocalTpsSource(TpsSource):
    def __init__(self, root: Path, *, url: str = ""):
        self.root = Path(root)
        self.url = redact_url(url) if url else f"file://{self.root}"
        if not self.root.is_dir():
            raise TpsError(f"{self.url}: TPS root is not a reachable folder (share not mounted?)", retryable=True)

    # --- path handling -------------------------------------------------------------------------

    def _fail(self, exc: OSError, what: str, rel: str) -> TpsError:
        if exc.errno == errno.ELOOP:
            reason = "is or passes through a symbolic link (PDAS never follows links)"
        elif exc.errno == errno.ENOENT:
            reason = "does not exist"
        elif exc.errno == errno.ENOTDIR:
            reason = "passes through something that is not a folder"
        else:
            reason = exc.strerror or str(exc)
        return TpsError(f"{self.url}: cannot {what} {rel or '/'}: {reason}", retryable=exc.errno in _RETRYABLE)

    def _open_dir(self, parts: list[str]) -> int:
        """A descriptor of the folder ``parts`` below the root, refusing links on the way."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        try:
            for part in parts:
                child = _open_nofollow(part, _DIR_FLAGS, fd)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _split(self, rel: str) -> tuple[str, list[str], str]:
        """(clean path, parent components, last name); refuses the root where a name is needed."""
        clean = clean_relpath(rel)
        if not clean:
            raise TpsError(f"{self.url}: the TPS root itself cannot be used here")
        parts = clean.split("/")
        return clean, parts[:-1], parts[-1]

    # --- reading -------------------------------------------------------------------------------

    def list_dir(self, rel: str) -> list[Entry]:
        clean = clean_relpath(rel)
        try:
            fd = self._open_dir(clean.split("/") if clean else [])
            try:
                with os.scandir(fd) as it:
                    entries = []
                    for item in it:
                        st = item.stat(follow_symlinks=False)
                        entries.append(Entry(item.name, _join(clean, item.name), entry_kind(st.st_mode),
                                             st.st_size, st.st_mtime))
            finally:
                os.close(fd)
        except OSError as exc:
            raise self._fail(exc, "list", clean) from None
        return sorted(entries, key=lambda e: e.name)

    def stat(self, rel: str) -> Entry | None:
        clean = clean_relpath(rel)
        if not clean:
            try:
                st = os.stat(self.root)
            except OSError as exc:
                raise self._fail(exc, "stat", "") from None
            return Entry("", "", "dir", st.st_size, st.st_mtime)
        _, parents, name = self._split(clean)
        try:
            fd = self._open_dir(parents)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._fail(exc, "stat", clean) from None
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._fail(exc, "stat", clean) from None
        finally:
            os.close(fd)
        return Entry(name, clean, entry_kind(st.st_mode), st.st_size, st.st_mtime)

    def open_read(self, rel: str) -> BinaryIO:
        clean, parents, name = self._split(rel)
        try:
            fd = self._open_dir(parents)
            try:
                file_fd = _open_nofollow(name, _FILE_FLAGS, fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise self._fail(exc, "read", clean) from None
        if not stat_mod.S_ISREG(os.fstat(file_fd).st_mode):
            os.close(file_fd)
            raise TpsError(f"{self.url}: cannot read {clean}: not a regular file")
        return os.fdopen(file_fd, "rb")

    def read_bytes(self, rel: str) -> bytes:
        with self.open_read(rel) as handle:
            try:
                return handle.read()
            except OSError as exc:
                raise self._fail(exc, "read", clean_relpath(rel)) from None

    # --- changing ------------------------------------------------------------------------------

    def write_bytes_atomic(self, rel: str, data: bytes) -> None:
        self.write_stream_atomic(rel, [data])

    def write_stream_atomic(self, rel: str, chunks: Iterable[bytes], *, mtime: float | None = None) -> int:
        clean, parents, name = self._split(rel)
        temp = f"{TEMP_PREFIX}{uuid.uuid4().hex}-{name}"[:255]
        written = 0
        try:
            dir_fd = self._open_dir(parents)
        except OSError as exc:
            raise self._fail(exc, "write", clean) from None
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
            try:
                with os.fdopen(fd, "wb") as handle:
                    for data in chunks:
                        handle.write(data)
                        written += len(data)
                    handle.flush()
                    if mtime is not None:
                        os.utime(handle.fileno(), (mtime, mtime))
                    os.fsync(handle.fileno())
                # replace() swaps the name itself: a link at ``name`` is replaced, never written through.
                os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                try:
                    os.unlink(temp, dir_fd=dir_fd)
                except OSError:
                    pass
                raise
            os.fsync(dir_fd)
        except OSError as exc:
            raise self._fail(exc, "write", clean) from None
        finally:
            os.close(dir_fd)
        return written

    def make_dirs(self, rel: str) -> None:
        clean = clean_relpath(rel)
        if not clean:
            return
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in clean.split("/"):
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                child = _open_nofollow(part, _DIR_FLAGS, fd)
                os.close(fd)
                fd = child
        except OSError as exc:
            raise self._fail(exc, "create folder", clean) from None
        finally:
            os.close(fd)

    def rename(self, src: str, dst: str) -> None:
        src_clean, src_parents, src_name = self._split(src)
        dst_clean, dst_parents, dst_name = self._split(dst)
        if self.stat(src_clean) is None:
            raise TpsError(f"{self.url}: cannot move {src_clean}: it does not exist")
        # Checked, then renamed: only Pinnacle itself could create the name in between, and a
        # folder rename onto a non-empty folder fails anyway.
        if self.stat(dst_clean) is not None:
            raise TpsError(f"{self.url}: cannot move {src_clean} to {dst_clean}: {dst_clean} already exists")
        try:
            src_fd = self._open_dir(src_parents)
            try:
                dst_fd = self._open_dir(dst_parents)
                try:
                    os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
                    os.fsync(dst_fd)
                    os.fsync(src_fd)
                finally:
                    os.close(dst_fd)
            finally:
                os.close(src_fd)
        except OSError as exc:
            raise self._fail(exc, f"move {src_clean} to", dst_clean) from None

    def remove_tree(self, rel: str) -> None:
        clean, parents, name = self._split(rel)
        entry = self.stat(clean)
        if entry is None:
            return
        if entry.kind != "dir":
            raise TpsError(f"{self.url}: cannot remove {clean}: not a folder")
        try:
            fd = self._open_dir(parents)
            try:
                # rmtree with dir_fd works on descriptors and removes links without following them.
                shutil.rmtree(name, dir_fd=fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise self._fail(exc, "remove", clean) from None

    def run(self, argv: list[str], *, stdin: bytes | None = None, timeout: float = 3600) -> CommandResult:
        try:
            done = subprocess.run(argv, cwd=self.root, input=stdin if stdin is not None else b"",
                                  capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise TpsError(f"{self.url}: {argv[0]} did not finish within {timeout:g} s", retryable=True) from None
        except OSError as exc:
            raise TpsError(f"{self.url}: cannot run {argv[0]}: {exc.strerror or exc}") from None
        return CommandResult(done.returncode, done.stdout, done.stderr)

    def host_path(self, rel: str) -> str:
        clean = clean_relpath(rel)
        return str(self.root / clean) if clean else str(self.root)

    def free_bytes(self, rel: str) -> int | None:
        try:
            return shutil.disk_usage(self.host_path(rel)).free
        except OSError:
            return None

    def close(self) -> None:
        pass
