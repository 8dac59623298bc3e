"""Two institutions never share a target folder: a restore search or rebuild_index there would find the
other institution's patients. site.toml and the admin refuse it, however the URL is spelled (the runtime
check of each archive's manifest is in tests/archiver/test_services_restore.py)."""
from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from connectors.storage import same_place, target_location
from sites.admin import StorageTargetForm
from sites.models import StorageTarget
from sites.services.site_config import SiteConfigError, load_site_config
from tests.archiver.site_toml import make_site_toml
from tests.factories import InstitutionFactory, StorageTargetFactory, make_user

SECOND = """
[[institution]]
code = "PKU"
name = "Peking University"
tps = "file://{root}/pinnacle-pku/Patients"
pending_group = "ToArchive"

  [[institution.storage]]
  name = "array"
  url = "{url}"
  password_env = "PDAS_TEST_PKU"
  known_hosts = "{root}/known_hosts"
"""


@pytest.mark.parametrize(("one", "other", "shared"), [
    ("file:///srv/array", "file:///srv/array/", True),
    ("file:///srv/array", "file:///srv/array/pku", True),  # inside
    ("file:///srv/array/pku", "file:///srv", True),  # around
    ("file:///srv/array", "file:///srv/array-2", False),
    ("sftp://a@Storage-Host:22/archive", "sftp://b@storage-host/archive/./", True),
    ("sftp://a@storage-host/archive", "sftp://a@storage-host:2222/archive", False),
    ("ftps://h/archive", "ftp://h:21/archive", True),
    ("smb://a@nas/Archive/PDAS", "smb://b@NAS/archive/pdas", True),
    ("s3://bucket/pdas?endpoint=https://s3.local", "s3://bucket/pdas/pku?endpoint=https://s3.local", True),
    ("s3://bucket/pdas?endpoint=https://s3.local", "s3://other/pdas?endpoint=https://s3.local", False),
])
def test_two_spellings_of_one_folder_are_one_place(one, other, shared):
    assert same_place(one, other) is shared and same_place(other, one) is shared
    assert target_location("sftp://u@HOST/a/b/../c") == ("sftp", "host:22", "/a/c")


@pytest.mark.django_db
def test_site_toml_refuses_a_folder_of_another_institution_in_the_file(tmp_path, monkeypatch):
    site_toml = make_site_toml(tmp_path, monkeypatch)
    path = site_toml.write(append=SECOND.format(root=tmp_path, url="sftp://pku@STORAGE-HOST/archive/pku"))
    monkeypatch.setenv("PDAS_TEST_PKU", "x")
    with pytest.raises(SiteConfigError) as caught:
        load_site_config(path=path)
    message = str(caught.value)
    assert message.startswith(f"{path}: institution #2 (PKU) storage #1 (array): url: ")
    assert "institution PUMCH's target 'array-1'" in message and "never share a target folder" in message
    assert "\n" not in message


@pytest.mark.django_db
def test_site_toml_refuses_a_folder_of_an_institution_already_in_the_database(tmp_path, monkeypatch):
    other = InstitutionFactory(code="PKU")
    StorageTargetFactory(institution=other, name="nas", url=f"file://{tmp_path}/shared")
    site_toml = make_site_toml(tmp_path, monkeypatch)
    path = site_toml.write(replace={'url = "sftp://archiver@storage-host:22/archive"':
                                    f'url = "file://{tmp_path}/shared/pumch"',
                                    f'password_env = "{"PDAS_TEST_ARRAY1_PASSWORD"}"\n': "",
                                    f'known_hosts = "{tmp_path}/known_hosts"\n': ""})
    with pytest.raises(SiteConfigError, match="stores into the folder of institution PKU's target 'nas'"):
        load_site_config(path=path)
    assert not StorageTarget.objects.exclude(institution=other).exists()  # nothing written


@pytest.mark.django_db
def test_the_admin_refuses_it_too():
    alpha, beta = InstitutionFactory(code="ALPHA"), InstitutionFactory(code="BETA")
    StorageTargetFactory(institution=alpha, name="array", url="file:///srv/array")
    form = StorageTargetForm(data={"institution": beta.pk, "name": "array", "url": "file:///srv/array/beta/",
                                   "enabled": "on", "priority": 0})
    assert not form.is_valid()
    assert "institution ALPHA's target 'array'" in " ".join(form.errors["url"])
    same = StorageTargetForm(data={"institution": alpha.pk, "name": "second", "url": "file:///srv/array-2",
                                   "enabled": "on", "priority": 1})
    assert same.is_valid(), same.errors

    superuser = Client()
    superuser.force_login(make_user("head", is_staff=True, is_superuser=True))
    response = superuser.post(reverse("admin:sites_storagetarget_add"), {
        "institution": beta.pk, "name": "array", "url": "file:///srv/array", "enabled": "on", "priority": 0})
    assert response.status_code == 200 and not StorageTarget.objects.filter(institution=beta).exists()
