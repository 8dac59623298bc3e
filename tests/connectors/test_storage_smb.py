"""SMB targets beyond the shared contract (tests/connectors/test_storage.py): the login, signing and
encryption, the URL rules, and a server that goes away. Against a real Samba smbd (tests/servers/samba.py)."""
from __future__ import annotations

import pytest

from connectors.storage import StorageError, open_storage, url_problem
from connectors.storage.smb import SmbStorage, _user, smb_url_problem
from tests.servers.samba import start_samba

pytestmark = pytest.mark.servers


def test_the_session_is_signed_and_encrypted_when_the_server_offers_it(samba_server):
    with open_storage(samba_server.url(samba_server.new_dir()), password=samba_server.password) as storage:
        assert isinstance(storage, SmbStorage)
        assert storage.encrypted  # Samba's "server smb encrypt = desired": SMB 3 encryption is on offer
        storage.write_bytes("a.tar.gz", b"archive")
    assert storage._connection is None  # closed with the context


def test_a_wrong_password_is_refused_and_not_retried(samba_server):
    with pytest.raises(StorageError) as err:
        open_storage(samba_server.url(), password="wrong-password")
    assert not err.value.retryable and "login refused" in str(err.value)
    assert "wrong-password" not in str(err.value)


def test_a_missing_folder_or_share_is_a_lasting_error(samba_server):
    with pytest.raises(StorageError) as err:
        open_storage(samba_server.url("no-such-folder"), password=samba_server.password)
    assert not err.value.retryable and "does not exist" in str(err.value)
    with pytest.raises(StorageError) as err:
        open_storage(samba_server.url().replace("/pdas", "/noshare"), password=samba_server.password)
    assert not err.value.retryable


def test_files_written_there_are_the_bytes_sent(samba_server):
    folder = samba_server.new_dir()
    data = bytes(range(256)) * 40_000  # 10 MB: several 4 MiB writes
    with open_storage(samba_server.url(folder), password=samba_server.password) as storage:
        storage.upload("big.tar.gz", [data[i:i + (1 << 20)] for i in range(0, len(data), 1 << 20)])
    assert (samba_server.share_root / folder / "big.tar.gz").read_bytes() == data


def test_a_stopped_server_is_a_retryable_error():
    server = start_samba()
    try:
        url, password = server.url(), server.password
        server.stop()
        with pytest.raises(StorageError) as err:
            open_storage(url, password=password, timeout=3)
        assert err.value.retryable
    finally:
        server.cleanup()


@pytest.mark.parametrize("url, problem", [
    ("smb://host/share", "names no user"),
    ("smb://user@/share", "names no host"),
    ("smb://user@host", "names no share"),
    ("smb://user@host/share/../x", "'.', '..'"),
    ("smb://user@host:99999/share", "bad port"),
    ("smb://user@host/share?x=1", "no ?query"),
])
def test_url_rules(url, problem):
    assert problem in (smb_url_problem(url) or "")


def test_a_password_in_the_url_is_refused_and_a_domain_account_is_written_with_a_semicolon():
    assert "password_env or password_file" in url_problem("smb://user:secret@host/share")
    assert url_problem("smb://HOSPITAL;pdas@nas.hospital.example:445/archive/pdas") is None
    assert _user("HOSPITAL;pdas") == "HOSPITAL\\pdas" and _user("pdas") == "pdas"
