"""Running a real server as a subprocess: start, wait until it answers, stop it for good.

Each server runs in its own session (process group) with its output in a log file; start-up
errors quote the log's tail so a failed fixture says why. ``stop`` and ``kill`` also reach
children that left the group (sshd's per-connection processes call ``setsid``), so a stopped
server really drops its open connections.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Sequence

import pytest


REPO_ROOT = Path(__file__).resolve().parents[2]  # cwd of servers started as ``python -m tests.servers...``


class ServerStartError(RuntimeError):
    """A test server did not come up; the message names it and quotes its log."""


def pytest_configure(config: pytest.Config) -> None:
    """Treat SIGTERM (a CI timeout, ``kill``) like Ctrl-C, so fixture teardown still stops the servers.

    The servers run in sessions of their own and would otherwise outlive a terminated pytest.
    """
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def interrupt(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, interrupt)


def require_binary(name: str, *candidates: str, package: str) -> str:
    """The path of a server binary; skip (or fail under ``PDAS_TEST_REQUIRE_SERVERS=1``) when absent."""
    for candidate in (*candidates, shutil.which(name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    message = f"{name} is not installed (Debian package {package}; `deploy/dev.sh setup` installs it)"
    if os.environ.get("PDAS_TEST_REQUIRE_SERVERS") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _stat_fields(pid: int | str) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (state, ppid, ...), or None when the process is gone."""
    try:
        stat = Path("/proc", str(pid), "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return stat.rpartition(")")[2].split()


def descendants(pid: int) -> list[tuple[int, str]]:
    """All processes below ``pid`` as (pid, start time), so a later signal can't hit a reused pid."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _stat_fields(entry.name)) is not None:
            children.setdefault(int(fields[1]), []).append((int(entry.name), fields[19]))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child[0])
    return found


def _signal_quietly(process: tuple[int, str], sig: int) -> None:
    pid, started = process
    fields = _stat_fields(pid)
    if fields is None or fields[19] != started:
        return  # gone, or the pid now belongs to someone else
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class ServerProcess:
    """One server subprocess. ``user``/``group`` drop privileges (PostgreSQL refuses to run as root)."""

    def __init__(self, name: str, argv: Sequence[str], *, log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | str | None = None, user: str | int | None = None, group: str | int | None = None,
                 stop_signal: int = signal.SIGTERM):
        self.name = name
        self.argv = [str(arg) for arg in argv]
        self.log_path = Path(log_path)
        self.env = env
        self.cwd = cwd
        self.user = user
        self.group = group
        self.stop_signal = stop_signal
        self.popen: subprocess.Popen | None = None

    def start(self) -> "ServerProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            extra = {"user": self.user, "group": self.group, "extra_groups": []} if self.user is not None else {}
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          env=self.env, cwd=self.cwd, start_new_session=True, **extra)
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.rstrip().splitlines()[-lines:]) or "(log is empty)"

    def wait_ready(self, probe: Callable[[], bool], *, timeout: float = 30) -> None:
        """Poll ``probe`` until it returns True; raise ServerStartError if the server exits or the deadline passes."""
        deadline = time.monotonic() + timeout
        interval = 0.02
        while True:
            if not self.alive:
                code = self.popen.returncode if self.popen else None
                raise ServerStartError(f"{self.name} exited with status {code} during start-up "
                                       f"(log {self.log_path}):\n{self.log_tail()}")
            if probe():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise ServerStartError(f"{self.name} did not answer within {timeout:.0f}s "
                                       f"(log {self.log_path}):\n{self.log_tail()}")
            time.sleep(interval)
            interval = min(interval * 1.5, 0.3)

    def _send(self, sig: int) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        below = descendants(self.popen.pid)
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for process in below:
            _signal_quietly(process, sig)

    def stop(self, timeout: float = 10) -> None:
        """Ask the server to stop; SIGKILL it (and what it started) if it has not after ``timeout``."""
        if self.popen is None:
            return
        leftovers = descendants(self.popen.pid) if self.popen.poll() is None else []
        self._send(self.stop_signal)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        for process in leftovers:  # children that outlived the parent (own session) still hold connections
            _signal_quietly(process, signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL the server and every process it started, as a crash would."""
        if self.popen is None:
            return
        self._send(signal.SIGKILL)
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            pass


def start_on_free_port(make: Callable[[int], ServerProcess], probe: Callable[[int], bool], *,
                       pick_port: Callable[[], int], timeout: float = 30, attempts: int = 3) -> tuple[ServerProcess, int]:
    """Start ``make(port)`` and wait for ``probe(port)``; on "address in use" try another port.

    The port is free when picked but another session may bind it first; only that race is retried.
    """
    for attempt in range(1, attempts + 1):
        port = pick_port()
        server = make(port).start()
        try:
            server.wait_ready(lambda: probe(port), timeout=timeout)
            return server, port
        except ServerStartError as exc:
            server.stop()
            if attempt == attempts or "in use" not in str(exc).lower():
                raise
    raise AssertionError("unreachable")
