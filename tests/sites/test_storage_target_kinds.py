"""site.toml and the admin for SMB shares, S3 object stores and encrypted targets: the keys they take, what
is refused (naming the key), and that an archive admin can change none of their connection settings."""
from __future__ import annotations

import pytest
from django.test import Client
from pyrage import x25519

from sites.models import StorageTarget
from sites.roles import ARCHIVE_ADMIN
from sites.services.site_config import SiteConfigError, load_site_config, storage_problems
from tests.archiver.site_toml import make_site_toml
from tests.factories import InstitutionFactory, StorageTargetFactory, make_user
from tests.sites.test_admin_connection_settings import _institution_form

pytestmark = pytest.mark.django_db

RECIPIENT = "age15hphghlzfextkq9gqg3py4kp5typqqlt7vah88r6gnzpwdt7razq4vmjmy"  # a public key only (its identity was thrown away); fixed: it is in test ids
S3_URL = "s3://pdas-archive/pumch?endpoint=https://objects.hospital.example:9000&region=us-east-1"


@pytest.fixture
def site_toml(tmp_path, monkeypatch):
    monkeypatch.setenv("PDAS_TEST_SMB_PASSWORD", "smb-secret")
    monkeypatch.setenv("PDAS_TEST_S3_ACCESS", "AKIAEXAMPLE")
    monkeypatch.setenv("PDAS_TEST_S3_SECRET", "s3-secret")
    (tmp_path / "offsite.key").write_text("AGE-SECRET-KEY-1...\n")
    return make_site_toml(tmp_path, monkeypatch)


def _targets(root) -> str:
    return f'''
  [[institution.storage]]
  name = "share"
  url = "smb://HOSPITAL;pdas@nas-3.hospital.example/archive/pdas"
  password_env = "PDAS_TEST_SMB_PASSWORD"

  [[institution.storage]]
  name = "objects"
  url = "{S3_URL}"
  access_key_env = "PDAS_TEST_S3_ACCESS"
  secret_key_env = "PDAS_TEST_S3_SECRET"
  ca_file = "{root}/known_hosts"

  [[institution.storage]]
  name = "offsite"
  url = "file://{root}"
  encrypt_to = ["{RECIPIENT}"]
  identity_file = "{root}/offsite.key"
'''


def test_smb_s3_and_encrypted_targets_load(site_toml):
    report = load_site_config(path=site_toml.write(append=_targets(site_toml.root)))
    assert [c.key for c in report.created][-3:] == ["PUMCH/share", "PUMCH/objects", "PUMCH/offsite"]
    share, objects, offsite = (StorageTarget.objects.get(name=n) for n in ("share", "objects", "offsite"))
    assert share.password_env == "PDAS_TEST_SMB_PASSWORD"
    assert (objects.access_key_env, objects.secret_key_env, objects.allow_plain_http) == (
        "PDAS_TEST_S3_ACCESS", "PDAS_TEST_S3_SECRET", False)
    assert offsite.encrypt_to == [RECIPIENT] and offsite.identity_file.endswith("offsite.key")
    assert not load_site_config(path=site_toml.write(append=_targets(site_toml.root))).changed


@pytest.mark.parametrize(("old", "new", "message"), [
    ('  access_key_env = "PDAS_TEST_S3_ACCESS"\n', "", "access_key_env: an s3:// target needs"),
    ('  access_key_env = "PDAS_TEST_S3_ACCESS"', '  access_key_env = "PDAS_TEST_S3_UNSET"', "PDAS_TEST_S3_UNSET is not set"),
    ("endpoint=https://", "endpoint=http://", "url: .*allow_plain_http"),
    ('  secret_key_env = "PDAS_TEST_S3_SECRET"', '  secret_key = "s3-secret"', "secret_key: secrets are never written"),
    ('  password_env = "PDAS_TEST_SMB_PASSWORD"\n', "", "password_env: an smb:// target needs"),
    ('  password_env = "PDAS_TEST_SMB_PASSWORD"', '  password_env = "PDAS_TEST_SMB_PASSWORD"\n  access_key_env = "X"',
     "access_key_env: only used with s3://"),
    ("smb://HOSPITAL;pdas@", "smb://", "names no user"),
    (f'encrypt_to = ["{RECIPIENT}"]', 'encrypt_to = ["age1notarecipient"]', "encrypt_to: .*not an age X25519"),
    (f'encrypt_to = ["{RECIPIENT}"]', 'encrypt_to = []', "identity_file: only used with encrypt_to"),
    ('identity_file = "', 'identity_env = "PDAS_TEST_SMB_PASSWORD"\n  identity_file = "',
     "identity_env: set identity_file or identity_env, not both"),
    ("/offsite.key", "/no-such.key", "identity_file: .*does not exist"),
])
def test_wrong_target_settings_are_refused_naming_the_key(site_toml, old, new, message):
    text = _targets(site_toml.root)
    assert old in text
    with pytest.raises(SiteConfigError, match=message):
        load_site_config(path=site_toml.write(append=text.replace(old, new, 1)))
    assert not StorageTarget.objects.exists()


def test_an_http_endpoint_is_accepted_when_allowed():
    values = {"name": "objects", "url": S3_URL.replace("https://", "http://"), "access_key_env": "A",
              "secret_key_env": "B"}
    assert [f for f, _ in storage_problems(values, check_local=False)] == ["url"]
    assert storage_problems({**values, "allow_plain_http": True}, check_local=False) == []


def test_an_archive_admin_cannot_change_keys_encryption_or_identity():
    inst = InstitutionFactory(code="ALPHA", tps_url="file:///srv/tps/Patients")
    target = StorageTargetFactory(institution=inst, name="objects", url=S3_URL, access_key_env="PDAS_A",
                                  secret_key_env="PDAS_B", encrypt_to=[RECIPIENT])
    client = Client()
    client.force_login(make_user("aa", roles=[ARCHIVE_ADMIN], institutions=[inst], is_staff=True))
    page = client.get(f"/admin/sites/institution/{inst.pk}/change/").content.decode()
    for field in ("access_key_env", "secret_key_env", "allow_plain_http", "encrypt_to", "identity_file", "identity_env"):
        assert f'name="storage_targets-0-{field}"' not in page, field
    other = str(x25519.Identity.generate().to_public())
    response = client.post(f"/admin/sites/institution/{inst.pk}/change/", _institution_form(
        inst, target, **{"storage_targets-0-url": S3_URL, "storage_targets-0-access_key_env": "DJANGO_SECRET_KEY",
                         "storage_targets-0-secret_key_env": "DJANGO_SECRET_KEY",
                         "storage_targets-0-encrypt_to": f'["{other}"]', "storage_targets-0-allow_plain_http": "on",
                         "storage_targets-0-identity_env": "DJANGO_SECRET_KEY"}))
    assert response.status_code == 302, response.content.decode()[:2000]
    target.refresh_from_db()
    assert (target.access_key_env, target.secret_key_env, target.encrypt_to, target.allow_plain_http,
            target.identity_env) == ("PDAS_A", "PDAS_B", [RECIPIENT], False, "")


def test_a_target_with_encrypt_to_opens_and_its_copies_are_encrypted(tmp_path):
    """Such a target opens like any other; its copies say they are encrypted, and name only encrypted
    objects (what archiving puts there: tests/archiver/test_encrypted_targets.py)."""
    from inventory.models import ArchiveCopy
    from sites.connections import open_target
    from tests.factories import ArchiveFactory

    inst = InstitutionFactory(code="ALPHA", tps_url="file:///srv/tps/Patients")
    target = StorageTargetFactory(institution=inst, name="offsite", url=f"file://{tmp_path}", encrypt_to=[RECIPIENT])
    with open_target(target):
        pass
    assert list(tmp_path.iterdir()) == []
    archive = ArchiveFactory(institution=inst, checksum="ab" * 32)
    copy = ArchiveCopy(archive=archive, target=target, path="")
    assert copy.encrypted and all(name.startswith("ab" * 32) and ".age" in name for name in copy.object_names())
