"""``ssh://`` TPS sources: the Pinnacle ``$PATIENTS`` tree on the TPS host, over SFTP and exec.

SFTP does the listing, reading and changing; ``run`` and the fast ``walk_files`` use exec. The
host key is pinned by a ``known_hosts`` file and never added on first use.

Links are never followed. SFTP has no ``O_NOFOLLOW``, so before a path is used the server's
``realpath`` of it (or of its folder) must equal the path itself below the root's realpath:
then no component on the way is a link. Listings use ``lstat`` and report links as links. A
link swapped in between that check and the use is not caught; only Pinnacle writes in the
tree, and it does not make links.

File names are bytes on the TPS host. They are decoded as UTF-8 with ``surrogateescape`` (as
Python does for local names), so a GB18030 or latin-1 name is carried through, not refused.

Timestamps over SFTP (version 3) are whole seconds; ``walk_files`` truncates ``find``'s
fractions the same way, so a walk and a ``stat`` of the same file agree.
"""
from __future__ import annotations

import io
import posixpath
import select
import shlex
import socket
import stat as stat_mod
import threading
import time
import uuid
from contextlib import contextmanager
from typing import BinaryIO, Callable, Iterable, Iterator

import paramiko
from paramiko.sftp import CMD_NAME, CMD_REALPATH

from connectors.ssh import SshAddress, SshConnectError, connect, decode_name, encode_name, list_raw
from connectors.tps.base import CommandResult, Entry, EntryKind, TpsError, TpsSource, clean_relpath, entry_kind
from connectors.tps.local import TEMP_PREFIX
from connectors.urls import redact_url

CHUNK = 256 * 1024
# A broken link or a busy server, where trying again later may help.
_TRANSIENT = (socket.timeout, TimeoutError, ConnectionError, EOFError, paramiko.SSHException)
_FIND_KINDS: dict[bytes, EntryKind] = {b"f": "file", b"d": "dir", b"l": "symlink"}


def _reason(exc: BaseException) -> str:
    """An exception as one line (server messages may carry newlines), never empty."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


class _RemoteReader(io.RawIOBase):
    """A read-only stream over an SFTP file that turns link failures into ``TpsError``."""

    def __init__(self, handle: paramiko.SFTPFile, fail: Callable[[Exception], TpsError]):
        super().__init__()
        self._handle = handle
        self._fail = fail

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self._handle.read(None if size is None or size < 0 else size)
        except (OSError, *_TRANSIENT) as exc:
            raise self._fail(exc) from None

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._handle.close()
            except (OSError, *_TRANSIENT):
                pass  # nothing was written: a failed close loses nothing
        super().close()


class SshTpsSource(TpsSource):
    """A TPS tree at ``ssh://user@host:port/abs/path/Patients``.

    Authentication is by ``key_file`` or ``password``; ``known_hosts`` is required. Connection,
    socket and timeout failures raise ``TpsError(retryable=True)``; a refused login, a wrong or
    unknown host key, a missing path and permission problems are not retryable.
    """

    def __init__(self, url: str, *, password: str | None = None, key_file: str | None = None,
                 known_hosts: str | None = None, connect_timeout: float = 15, io_timeout: float = 300):
        self.url = redact_url(url)
        try:
            self.address = SshAddress.from_url(url, schemes=("ssh",))
        except ValueError as exc:
            raise TpsError(f"TPS URL {exc}") from None
        self.root = self.address.path
        self._root_b = encode_name(self.root)
        self._io_timeout = io_timeout
        self._connect_timeout = connect_timeout
        self._find_printf: bool | None = None  # does the host have GNU find? (asked once)
        self._client: paramiko.SSHClient | None = None
        try:
            self._client = connect(self.address, password=password, key_file=key_file, known_hosts=known_hosts,
                                   timeout=connect_timeout)
            self._sftp = self._client.open_sftp()
            self._sftp.get_channel().settimeout(io_timeout)
        except SshConnectError as exc:
            raise TpsError(str(exc), retryable=exc.retryable) from None
        except _TRANSIENT as exc:
            self.close()
            raise TpsError(f"{self.address}: cannot open SFTP: {_reason(exc)}", retryable=True) from None
        try:
            root_attrs = self._sftp.stat(self._root_b)  # the root itself may be a link
            self._root_real = self._realpath(self._root_b)
        except (OSError, *_TRANSIENT) as exc:
            failure = self._fail(exc, "open the TPS root", self.root)
            self.close()
            # A missing root is usually an unmounted disk on the TPS host: worth another try.
            raise TpsError(str(failure), retryable=failure.retryable or isinstance(exc, FileNotFoundError)) from None
        if not stat_mod.S_ISDIR(root_attrs.st_mode or 0):
            self.close()
            raise TpsError(f"{self._where}: TPS root {self.root} is not a folder")

    # --- plumbing -----------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"{self.address.user}@{self.address.host}:{self.address.port}"

    def _connected(self) -> bool:
        transport = self._client.get_transport() if self._client else None
        return transport is not None and transport.is_active()

    def _fail(self, exc: Exception, what: str, rel: str) -> TpsError:
        place = f"{self._where}: cannot {what} {rel or '/'}"
        if isinstance(exc, _TRANSIENT) or not self._connected():
            return TpsError(f"{place}: connection failed: {_reason(exc)}", retryable=True)
        if isinstance(exc, FileNotFoundError):
            return TpsError(f"{place}: does not exist")
        if isinstance(exc, PermissionError):
            return TpsError(f"{place}: permission denied")
        return TpsError(f"{place}: {_reason(exc)}")

    @contextmanager
    def _failing_as(self, what: str, rel: str) -> Iterator[None]:
        """Turn SFTP and connection errors inside the block into one-line ``TpsError``."""
        try:
            yield
        except TpsError:
            raise
        except (OSError, paramiko.SFTPError, *_TRANSIENT) as exc:
            raise self._fail(exc, what, rel) from None

    def _remote(self, clean: str) -> bytes:
        return self._root_b.rstrip(b"/") + b"/" + encode_name(clean) if clean else self._root_b

    def _real(self, clean: str) -> bytes:
        return self._root_real.rstrip(b"/") + b"/" + encode_name(clean) if clean else self._root_real

    def _realpath(self, path: bytes) -> bytes:
        # paramiko's normalize() decodes the answer as strict UTF-8; ask for the raw bytes instead.
        kind, msg = self._sftp._request(CMD_REALPATH, path)
        if kind != CMD_NAME or msg.get_int() != 1:
            raise paramiko.SFTPError("unexpected answer to realpath")
        return msg.get_string()

    def _refuse_links(self, clean: str, what: str) -> None:
        """Raise unless nothing on the way from the root to ``clean`` (included) is a link."""
        real = self._realpath(self._remote(clean))
        if real != self._real(clean):
            raise TpsError(f"{self._where}: cannot {what} {clean or '/'}: is or passes through a symbolic link "
                           "(PDAS never follows links)")

    def _split(self, rel: str) -> tuple[str, str, str]:
        """(clean path, parent, last name); refuses the root where a name is needed."""
        clean = clean_relpath(rel)
        if not clean:
            raise TpsError(f"{self._where}: the TPS root itself cannot be used here")
        parent, _, name = clean.rpartition("/")
        return clean, parent, name

    def _lstat(self, clean: str) -> paramiko.SFTPAttributes | None:
        try:
            return self._sftp.lstat(self._remote(clean))
        except FileNotFoundError:
            return None

    def _listdir(self, clean: str) -> list[Entry]:
        entries = [Entry(name, _join(clean, name), entry_kind(attrs.st_mode), attrs.st_size or 0,
                         float(attrs.st_mtime or 0))
                   for name, attrs in list_raw(self._sftp, self._remote(clean), connected=self._connected)]
        return sorted(entries, key=lambda e: e.name)

    # --- reading -------------------------------------------------------------------------------

    def list_dir(self, rel: str) -> list[Entry]:
        clean = clean_relpath(rel)
        with self._failing_as("list", clean):
            self._refuse_links(clean, "list")
            return self._listdir(clean)

    def stat(self, rel: str) -> Entry | None:
        clean = clean_relpath(rel)
        with self._failing_as("stat", clean):
            if not clean:
                attrs = self._sftp.stat(self._root_b)
                return Entry("", "", "dir", attrs.st_size or 0, float(attrs.st_mtime or 0))
            _, parent, name = self._split(clean)
            attrs = self._lstat(clean)
            if attrs is None:
                return None
            self._refuse_links(parent, "stat")
        return Entry(name, clean, entry_kind(attrs.st_mode), attrs.st_size or 0, float(attrs.st_mtime or 0))

    def _open(self, clean: str) -> paramiko.SFTPFile:
        self._refuse_links(clean, "read")
        handle = self._sftp.open(self._remote(clean), "rb")
        size = handle.stat()
        if not stat_mod.S_ISREG(size.st_mode or 0):
            handle.close()
            raise TpsError(f"{self._where}: cannot read {clean}: not a regular file")
        handle.prefetch(size.st_size)  # pipelined reads: one round trip's latency, not one per block
        return handle

    def open_read(self, rel: str) -> BinaryIO:
        clean, _, _ = self._split(rel)
        with self._failing_as("read", clean):
            handle = self._open(clean)
        return _RemoteReader(handle, lambda exc: self._fail(exc, "read", clean))  # type: ignore[return-value]

    def read_bytes(self, rel: str) -> bytes:
        with self.open_read(rel) as stream:
            return stream.read()

    # --- changing ------------------------------------------------------------------------------

    def write_bytes_atomic(self, rel: str, data: bytes) -> None:
        self.write_stream_atomic(rel, [data])

    def write_stream_atomic(self, rel: str, chunks: Iterable[bytes], *, mtime: float | None = None) -> int:
        clean, parent, name = self._split(rel)
        temp = _join(parent, f"{TEMP_PREFIX}{uuid.uuid4().hex}-{name}"[:255])
        written = 0
        with self._failing_as("write", clean):
            self._refuse_links(parent, "write")
            try:
                with self._sftp.open(self._remote(temp), "wbx") as handle:  # x: never reuse an existing name
                    handle.set_pipelined(True)
                    for data in chunks:
                        handle.write(data)
                        written += len(data)
                    handle.flush()
                    # paramiko drops the answers to pipelined writes, so a write the server refused (a
                    # full disk) raises nothing: the size the server reports is the proof, before the rename.
                    stored = handle.stat().st_size
                    if stored != written:
                        raise TpsError(f"{self._where}: cannot write {clean}: the server stored {stored} of "
                                       f"{written} bytes (is the disk full?)")
                    if mtime is not None:
                        handle.utime((mtime, mtime))
                # posix-rename replaces the name itself: a link at ``name`` is replaced, never written through.
                self._sftp.posix_rename(self._remote(temp), self._remote(clean))
            except BaseException:
                self._remove_quietly(temp)
                raise
        return written

    def _remove_quietly(self, clean: str) -> None:
        try:
            self._sftp.remove(self._remote(clean))
        except (OSError, paramiko.SFTPError, *_TRANSIENT):
            pass

    def make_dirs(self, rel: str) -> None:
        clean = clean_relpath(rel)
        done = ""
        with self._failing_as("create folder", clean):
            for part in clean.split("/") if clean else []:
                done = _join(done, part)
                attrs = self._lstat(done)
                if attrs is None:
                    try:
                        self._sftp.mkdir(self._remote(done), 0o755)
                        continue
                    except OSError:
                        attrs = self._lstat(done)  # made by someone else meanwhile?
                        if attrs is None:
                            raise
                if stat_mod.S_ISLNK(attrs.st_mode or 0):
                    raise TpsError(f"{self._where}: cannot create folder {clean}: {done} is a symbolic link "
                                   "(PDAS never follows links)")
                if not stat_mod.S_ISDIR(attrs.st_mode or 0):
                    raise TpsError(f"{self._where}: cannot create folder {clean}: {done} is not a folder")

    def rename(self, src: str, dst: str) -> None:
        src_clean, src_parent, _ = self._split(src)
        dst_clean, dst_parent, _ = self._split(dst)
        with self._failing_as(f"move {src_clean} to", dst_clean):
            if self._lstat(src_clean) is None:
                raise TpsError(f"{self._where}: cannot move {src_clean}: it does not exist")
            if self._lstat(dst_clean) is not None:
                raise TpsError(f"{self._where}: cannot move {src_clean} to {dst_clean}: {dst_clean} already exists")
            self._refuse_links(src_parent, "move")
            self._refuse_links(dst_parent, "move to")
            # SSH_FXP_RENAME (not posix-rename): OpenSSH refuses it when the target appeared meanwhile.
            self._sftp.rename(self._remote(src_clean), self._remote(dst_clean))

    def remove_tree(self, rel: str) -> None:
        clean, _, _ = self._split(rel)
        entry = self.stat(clean)
        if entry is None:
            return
        if entry.kind != "dir":
            raise TpsError(f"{self._where}: cannot remove {clean}: not a folder")
        with self._failing_as("remove", clean):
            self._refuse_links(clean, "remove")
        if self._has_gnu_find():
            # GNU find walks by descriptors (fts, physical): a folder swapped for a link to another
            # patient's folder while the removal runs is unlinked, never entered.
            argv = ["find", "-P", clean, "-depth", "-delete"]
            done = self._exec(self._command_in_root(argv), stdin=None, timeout=3600, what="find")
            if done.exit_status != 0 or self._lstat(clean) is not None:
                first = decode_name(done.stderr).strip().splitlines()[:1] or [f"exit status {done.exit_status}"]
                raise TpsError(f"{self._where}: cannot remove {clean}: {first[0]}")
            return
        with self._failing_as("remove", clean):
            # SFTP follows a link given as a folder to open, so each folder is proved link-free (its real
            # path is where it should be) right before it is listed. Post-order: a folder goes once it is
            # empty. Links are unlinked, never entered.
            stack: list[tuple[str, bool]] = [(clean, False)]
            while stack:
                current, emptied = stack.pop()
                if emptied:
                    self._sftp.rmdir(self._remote(current))
                    continue
                stack.append((current, True))
                self._refuse_links(current, "remove")
                for child in self._listdir(current):
                    if child.kind == "dir":
                        stack.append((child.path, False))
                    else:
                        self._sftp.remove(self._remote(child.path))

    # --- commands ------------------------------------------------------------------------------

    def _exec(self, command: bytes, *, stdin: bytes | None, timeout: float, what: str) -> CommandResult:
        transport = self._client.get_transport() if self._client else None
        if transport is None or not transport.is_active():
            raise TpsError(f"{self._where}: cannot run {what}: the connection is closed", retryable=True)
        try:
            channel = transport.open_session(timeout=self._connect_timeout)
        except (OSError, *_TRANSIENT) as exc:
            raise TpsError(f"{self._where}: cannot run {what}: {_reason(exc)}", retryable=True) from None
        out, err = bytearray(), bytearray()
        writer: threading.Thread | None = None
        deadline = time.monotonic() + timeout
        try:
            channel.exec_command(command)

            def feed() -> None:
                try:
                    if stdin:
                        channel.sendall(stdin)
                    channel.shutdown_write()
                except (OSError, *_TRANSIENT):
                    pass  # the command stopped reading; its exit status tells the rest

            # A thread feeds stdin while this one drains the output, so neither side's buffer can fill up and stall.
            writer = threading.Thread(target=feed, daemon=True)
            writer.start()
            while True:
                while channel.recv_ready():
                    out += channel.recv(CHUNK)
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(CHUNK)
                # sshd may send the exit status before the output it still buffers: the end is the
                # EOF (or close) that follows the last output, with our buffers drained.
                if ((channel.eof_received or channel.closed) and channel.exit_status_ready()
                        and not channel.recv_ready() and not channel.recv_stderr_ready()):
                    break
                if time.monotonic() > deadline:
                    raise TpsError(f"{self._where}: {what} did not finish within {timeout:g} s", retryable=True)
                select.select([channel], [], [], 0.05)
            status = channel.recv_exit_status()
        except TpsError:
            raise
        except (OSError, *_TRANSIENT) as exc:
            raise TpsError(f"{self._where}: {what} failed: {_reason(exc)}", retryable=True) from None
        finally:
            channel.close()
            if writer is not None:
                writer.join(5)
        if status == -1 and not self._connected():
            raise TpsError(f"{self._where}: {what}: connection lost before the command finished", retryable=True)
        return CommandResult(status, bytes(out), bytes(err))

    def _command_in_root(self, argv: list[str]) -> bytes:
        return encode_name(f"cd {shlex.quote(self.root)} && exec {shlex.join(argv)}")

    def run(self, argv: list[str], *, stdin: bytes | None = None, timeout: float = 3600) -> CommandResult:
        if not argv:
            raise TpsError(f"{self._where}: no command to run")
        return self._exec(self._command_in_root(argv), stdin=stdin, timeout=timeout, what=argv[0])

    def host_path(self, rel: str) -> str:
        clean = clean_relpath(rel)
        return posixpath.join(self.root, clean) if clean else self.root

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()  # closes the SFTP channel with the transport

    # --- walking -------------------------------------------------------------------------------

    def _has_gnu_find(self) -> bool:
        if self._find_printf is None:
            probe = self._exec(self._command_in_root(["find", "-P", ".", "-maxdepth", "0", "-printf", "%y"]),
                               stdin=None, timeout=60, what="find")
            self._find_printf = probe.exit_status == 0 and probe.stdout == b"d"
        return self._find_printf

    def walk_files(self, rel: str) -> Iterator[Entry]:
        """As ``TpsSource.walk_files``, with one remote ``find`` where GNU find is there (else SFTP)."""
        clean = clean_relpath(rel)
        with self._failing_as("walk", clean):
            self._refuse_links(clean, "walk")
            attrs = self._sftp.lstat(self._remote(clean))
        if not stat_mod.S_ISDIR(attrs.st_mode or 0):
            raise TpsError(f"{self._where}: cannot walk {clean or '/'}: not a folder")
        if not self._has_gnu_find():
            yield from super().walk_files(clean)
            return
        # -P: never follow links; %P: path below the start; NUL ends a record, as names may hold newlines.
        argv = ["find", "-P", clean or ".", "-mindepth", "1", "-printf", r"%y\t%s\t%T@\t%P\0"]
        found = self._exec(self._command_in_root(argv), stdin=None, timeout=3600, what="find")
        if found.exit_status != 0:
            first = decode_name(found.stderr).strip().splitlines()[:1] or [f"exit status {found.exit_status}"]
            # A partial listing is not a listing: what find could not read may hold patient files.
            raise TpsError(f"{self._where}: cannot walk {clean or '/'}: {first[0]}")
        yield from _walk_order(clean, _parse_find(clean, found.stdout))


def _parse_find(start: str, output: bytes) -> dict[str, list[Entry]]:
    """``find -printf '%y\\t%s\\t%T@\\t%P\\0'`` records as entries grouped by their folder."""
    children: dict[str, list[Entry]] = {}
    for record in output.split(b"\0"):
        if not record:
            continue
        kind, size, mtime, below = record.split(b"\t", 3)
        path = _join(start, decode_name(below))
        parent, _, name = path.rpartition("/")
        # Whole seconds, as SFTP reports them (see the module docstring).
        entry = Entry(name, path, _FIND_KINDS.get(kind, "other"), int(size), float(int(float(mtime))))
        children.setdefault(parent, []).append(entry)
    return children


def _walk_order(start: str, children: dict[str, list[Entry]]) -> Iterator[Entry]:
    """The order of ``TpsSource.walk_files``: a folder's files by name, then its folders depth first."""
    stack = [start]
    while stack:
        entries = sorted(children.get(stack.pop(), []), key=lambda e: e.name)
        stack.extend(entry.path for entry in reversed(entries) if entry.kind == "dir")
        yield from (entry for entry in entries if entry.kind != "dir")
