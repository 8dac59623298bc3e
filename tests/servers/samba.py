"""``samba_server``: a private Samba ``smbd`` on a free loopback port, for ``smb://`` storage targets.

The server is the installed ``/usr/sbin/smbd`` with a generated ``smb.conf`` in a folder of its own:
its passdb, lock, state, cache and pid folders sit there too, so it shares nothing with a system Samba
(none needs to run) or with other test sessions. Signing is mandatory and encryption desired, as on
a hardened Windows file server; SMB 2.1 is the lowest dialect it speaks. NetBIOS is off.

It logs in the account ``pdas-smb-test`` (created when missing, no shell, no Unix password: which
needs root, so without root the fixture skips) with a random password written by ``smbpasswd`` into
the server's private passdb, never into the machine's. Several sessions may run at once, each with
its own passdb and password.
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.servers.ports import HOST, free_port
from tests.servers.process import ServerProcess, require_binary, start_on_free_port

TEST_USER = "pdas-smb-test"
SHARE = "pdas"


def _answers_negotiate(port: int) -> bool:
    """An SMB2 NEGOTIATE answered: the server speaks SMB, not only accepts TCP."""
    from smbprotocol.connection import Connection

    connection = Connection(uuid.uuid4(), HOST, port, require_signing=True)
    try:
        connection.connect(timeout=1)
    except Exception:  # refused, reset, or a half-started server: not ready yet
        return False
    try:
        connection.disconnect()
    except Exception:
        pass
    return True


def _account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        done = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                               "--comment", "PDAS test suite (SMB)", TEST_USER], capture_output=True, text=True)
        if done.returncode != 0 and "already exists" not in done.stderr:  # another session made it meanwhile
            raise RuntimeError(f"useradd {TEST_USER} failed: {done.stderr.strip()}") from None
        return pwd.getpwnam(TEST_USER)


@dataclass
class SambaServer:
    """A running smbd. ``share_root`` is the local folder behind ``//127.0.0.1:PORT/pdas``."""

    host: str
    port: int
    user: str
    password: str
    share: str
    share_root: Path
    conf: Path
    process: ServerProcess
    base: Path

    def url(self, folder: str = "") -> str:
        """``smb://user@127.0.0.1:PORT/pdas[/folder]``."""
        return f"smb://{self.user}@{self.host}:{self.port}/{self.share}" + (f"/{folder}" if folder else "")

    def new_dir(self, prefix: str = "t") -> str:
        """A fresh folder in the share for one test, owned by the account; returns its name in the share."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        path = self.share_root / name
        path.mkdir()
        account = pwd.getpwnam(self.user)
        os.chown(path, account.pw_uid, account.pw_gid)
        return name

    def stop(self) -> None:
        self.process.stop()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def _config(base: Path, port: int, share_root: Path, user: str) -> str:
    folders = {name: base / name for name in ("private", "lock", "state", "cache", "pid", "ncalrpc")}
    for folder in folders.values():
        folder.mkdir(exist_ok=True)
    return "\n".join([
        "[global]",
        "server role = standalone server",
        f"passdb backend = tdbsam:{base / 'private' / 'passdb.tdb'}",
        f"private dir = {folders['private']}", f"lock directory = {folders['lock']}",
        f"state directory = {folders['state']}", f"cache directory = {folders['cache']}",
        f"pid directory = {folders['pid']}", f"ncalrpc dir = {folders['ncalrpc']}",
        f"smb ports = {port}", f"interfaces = {HOST}", "bind interfaces only = yes", "disable netbios = yes",
        "server min protocol = SMB2_10", "server signing = mandatory", "server smb encrypt = desired",
        "map to guest = never", "restrict anonymous = 2",
        "load printers = no", "printing = bsd", "printcap name = /dev/null", "disable spoolss = yes",
        f"log file = {base / 'smbd.log'}", "log level = 1", "max log size = 0",
        "unix charset = UTF-8",
        "",
        f"[{SHARE}]",
        f"path = {share_root}", "read only = no", f"valid users = {user}", "create mask = 0644",
        "", ""])


def start_samba(base: Path | None = None) -> SambaServer:
    binary = require_binary("smbd", "/usr/sbin/smbd", package="samba")
    smbpasswd = require_binary("smbpasswd", "/usr/bin/smbpasswd", package="samba-common-bin")
    account = _account()
    # Outside pytest's 0700 temp tree: smbd reaches the share as the test account.
    base = base or Path(tempfile.mkdtemp(prefix="pdas-samba-"))
    base.chmod(0o755)
    share_root = base / "share"
    share_root.mkdir(exist_ok=True)
    os.chown(share_root, account.pw_uid, account.pw_gid)
    password = secrets.token_urlsafe(18)
    conf = base / "smb.conf"

    def make(port: int) -> ServerProcess:
        conf.write_text(_config(base, port, share_root, TEST_USER))
        return ServerProcess("smbd", [binary, "--foreground", "--no-process-group", "--debug-stdout",
                                      f"--configfile={conf}"], log_path=base / "smbd.stdout.log")

    try:
        # The passdb entry first (smbpasswd reads the same generated configuration), then the server.
        conf.write_text(_config(base, free_port(), share_root, TEST_USER))
        done = subprocess.run([smbpasswd, "-c", str(conf), "-s", "-a", TEST_USER], input=f"{password}\n{password}\n",
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"smbpasswd failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
        process, port = start_on_free_port(make, _answers_negotiate, pick_port=free_port)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    return SambaServer(host=HOST, port=port, user=TEST_USER, password=password, share=SHARE, share_root=share_root,
                       conf=conf, process=process, base=base)


@pytest.fixture(scope="session")
def samba_server() -> Iterator[SambaServer]:
    """An smbd for the whole session: host, port, user, password, share, share_root, ``url()``, ``new_dir()``."""
    if os.geteuid() != 0:
        pytest.skip("the samba fixture needs root: it creates the pdas-smb-test account and runs smbd")
    server = start_samba()
    try:
        yield server
    finally:
        server.cleanup()
