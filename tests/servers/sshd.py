"""``sshd``: a private OpenSSH server on a free loopback port, for the SSH TPS source and SFTP targets.

The server is the installed ``/usr/sbin/sshd`` with a generated config and host key. It logs a
dedicated account, ``pdas-ssh-test``, in by password or by a generated ed25519 key; the account
is created when missing, which needs root (without root these fixtures skip).

Several test sessions may run at once (xdist workers, other checkouts), and a password set with
``chpasswd`` is machine-wide: so the first session that starts sets a random password, later
ones read it, and the last one to end locks the account again. Sessions announce themselves
with a shared ``flock`` that the kernel drops if a session dies.
"""
from __future__ import annotations

import fcntl
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.servers.ports import HOST, free_port
from tests.servers.process import ServerProcess, require_binary, start_on_free_port

TEST_USER = "pdas-ssh-test"
STATE_DIR = Path("/run/pdas-ssh-test")  # root-only: the current password and the session locks


@dataclass
class SshAccount:
    user: str
    password: str
    uid: int
    gid: int
    _session_lock: int  # fd holding a shared flock while this session uses the account


@contextmanager
def _state_mutex() -> Iterator[None]:
    STATE_DIR.mkdir(mode=0o700, exist_ok=True)
    with open(STATE_DIR / "mutex", "a") as mutex:
        fcntl.flock(mutex, fcntl.LOCK_EX)
        yield


def _run(argv: list[str], *, stdin: str | None = None) -> None:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()}")


def acquire_account() -> SshAccount:
    """Create the test account if needed and return it with this run's password (root only)."""
    with _state_mutex():
        try:
            pwd.getpwnam(TEST_USER)
        except KeyError:
            _run(["useradd", "--create-home", "--shell", "/bin/bash", "--comment", "PDAS test suite (SSH)",
                  TEST_USER])
        entry = pwd.getpwnam(TEST_USER)
        lock_fd = os.open(STATE_DIR / "sessions", os.O_RDWR | os.O_CREAT, 0o600)
        password_file = STATE_DIR / "password"
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            first = True
        except BlockingIOError:
            first = False  # another live session set the password: share it
        if first or not password_file.exists():
            password = secrets.token_urlsafe(18)
            _run(["chpasswd"], stdin=f"{TEST_USER}:{password}\n")
            password_file.write_text(password)
            password_file.chmod(0o600)
        password = password_file.read_text().strip()
        fcntl.flock(lock_fd, fcntl.LOCK_SH)
    return SshAccount(user=TEST_USER, password=password, uid=entry.pw_uid, gid=entry.pw_gid, _session_lock=lock_fd)


def release_account(account: SshAccount) -> None:
    """The last session to leave locks the account, so the password works only while tests run."""
    with _state_mutex():
        try:
            fcntl.flock(account._session_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # other sessions still use it
        else:
            _run(["usermod", "--lock", TEST_USER])
            (STATE_DIR / "password").unlink(missing_ok=True)
        finally:
            os.close(account._session_lock)


def _keygen(path: Path, comment: str) -> str:
    """A new ed25519 key pair at ``path``; returns the public key line without its comment."""
    binary = require_binary("ssh-keygen", "/usr/bin/ssh-keygen", package="openssh-client")
    _run([binary, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return " ".join(path.with_name(path.name + ".pub").read_text().split()[:2])


def _answers_banner(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1) as sock:
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


@dataclass
class SshServer:
    """A running sshd. ``root`` is a directory the test account owns, for the test's files."""

    host: str
    port: int
    user: str
    password: str
    key_file: str  # the account's private key (ed25519, no passphrase)
    known_hosts: str  # pins this server's host key for [host]:port
    root: Path
    host_public_key: str
    process: ServerProcess
    base: Path

    def url(self, path: str | Path | None = None, *, scheme: str = "ssh") -> str:
        return f"{scheme}://{self.user}@{self.host}:{self.port}{path or self.root}"

    def give_to_user(self, path: Path) -> None:
        """Make ``path`` (and everything below it) the test account's, as files on a real host would be."""
        account = pwd.getpwnam(self.user)
        for item in [path, *path.rglob("*")]:
            os.lchown(item, account.pw_uid, account.pw_gid)

    def new_dir(self, prefix: str = "t") -> Path:
        """A fresh folder in ``root`` for one test, owned by the account (``root`` is shared by the session)."""
        path = self.root / f"{prefix}-{uuid.uuid4().hex[:10]}"
        path.mkdir()
        self.give_to_user(path)
        return path

    def put_tree(self, source: Path, name: str) -> Path:
        """Copy a local tree into ``root/name`` (links copied as links), owned by the account."""
        target = self.root / name
        shutil.copytree(source, target, symlinks=True)
        self.give_to_user(target)
        return target

    def stop(self) -> None:
        """Stop the server and drop its open connections (they live in child processes)."""
        self.process.stop()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def start_sshd(account: SshAccount) -> SshServer:
    binary = require_binary("sshd", "/usr/sbin/sshd", package="openssh-server")
    # Outside pytest's 0700 temp tree: sshd reads authorized_keys as the test account.
    base = Path(tempfile.mkdtemp(prefix="pdas-sshd-"))
    base.chmod(0o755)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    host_public = _keygen(base / "ssh_host_ed25519_key", "pdas-test-host")
    client_public = _keygen(base / "client_ed25519", "pdas-test-client")
    (base / "authorized_keys").write_text(client_public + "\n")
    (base / "authorized_keys").chmod(0o644)
    root = base / "data"
    root.mkdir(mode=0o700)
    os.chown(root, account.uid, account.gid)
    sftp_server = "/usr/lib/openssh/sftp-server"
    subsystem = sftp_server if os.access(sftp_server, os.X_OK) else "internal-sftp"

    def make(port: int) -> ServerProcess:
        config = base / "sshd_config"
        config.write_text("\n".join([
            f"Port {port}", f"ListenAddress {HOST}", f"HostKey {base / 'ssh_host_ed25519_key'}", "PidFile none",
            f"AuthorizedKeysFile {base / 'authorized_keys'}", "PasswordAuthentication yes",
            "PubkeyAuthentication yes", "KbdInteractiveAuthentication no", "UsePAM no", "PermitRootLogin no",
            f"AllowUsers {account.user}",
            # The key files sit under /tmp (world-writable), which StrictModes would refuse.
            "StrictModes no", "UseDNS no", "MaxStartups 64", "MaxSessions 32", "LogLevel VERBOSE",
            f"Subsystem sftp {subsystem}", "",
        ]))
        return ServerProcess("sshd", [binary, "-D", "-e", "-f", config], log_path=base / "sshd.log")

    try:
        process, port = start_on_free_port(make, _answers_banner, pick_port=free_port)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    known_hosts = base / "known_hosts"
    known_hosts.write_text(f"[{HOST}]:{port} {host_public}\n")
    return SshServer(host=HOST, port=port, user=account.user, password=account.password,
                     key_file=str(base / "client_ed25519"), known_hosts=str(known_hosts), root=root,
                     host_public_key=host_public, process=process, base=base)


@pytest.fixture(scope="session")
def ssh_account() -> Iterator[SshAccount]:
    if os.geteuid() != 0:
        pytest.skip("the sshd fixtures need root: they create the pdas-ssh-test account and set its password")
    require_binary("sshd", "/usr/sbin/sshd", package="openssh-server")
    account = acquire_account()
    try:
        yield account
    finally:
        release_account(account)


@pytest.fixture(scope="session")
def sshd(ssh_account: SshAccount) -> Iterator[SshServer]:
    """An sshd for the whole session: host, port, user, password, key_file, known_hosts, root."""
    server = start_sshd(ssh_account)
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def sshd_disposable(ssh_account: SshAccount) -> Iterator[SshServer]:
    """An sshd of the test's own, for tests that stop it or break its keys."""
    server = start_sshd(ssh_account)
    try:
        yield server
    finally:
        server.cleanup()
