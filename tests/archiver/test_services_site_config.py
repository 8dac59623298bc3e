from __future__ import annotations

import json

import pytest

from sites.models import Institution, StorageTarget
from sites.services.site_config import (
    Change,
    SiteConfigError,
    institution_problems,
    load_site_config,
    storage_problems,
)
from audit.models import AuditEvent
from tests.archiver.site_toml import PASSWORD_ENV, PASSWORD_VALUE, make_site_toml
from tests.factories import InstitutionFactory, StorageTargetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def site_toml(tmp_path, monkeypatch):
    return make_site_toml(tmp_path, monkeypatch)


def test_spec_example_creates_one_institution_and_one_target(site_toml):
    report = load_site_config(path=site_toml.write())

    assert report.created == [Change("institution", "PUMCH"), Change("storage", "PUMCH/array-1")]
    institution = Institution.objects.get()
    root = site_toml.root
    assert institution.code == "PUMCH"
    assert institution.name == "Radiation Oncology"
    assert institution.tps_url == f"file://{root}/pinnacle/Patients"
    assert institution.pending_group == "ToArchive"
    assert institution.clinical_groups == ["Clinical"]
    assert institution.non_clinical_groups == ["Research", "Practice", "Training"]
    assert institution.recourse_gap_days == 90
    assert institution.rv_url == f"csv:{root}/rv/first_deliveries.csv"
    assert institution.lookback_days == 365  # absent keys take the model default
    target = StorageTarget.objects.get()
    assert target.institution == institution
    assert (target.name, target.url) == ("array-1", "sftp://archiver@storage-host:22/archive")
    assert target.password_env == PASSWORD_ENV
    assert target.known_hosts == f"{root}/known_hosts"
    assert target.enabled is True and target.allow_plain_ftp is False


def test_loading_the_same_file_twice_changes_nothing(site_toml):
    path = site_toml.write()
    load_site_config(path=path)
    stamp = Institution.objects.get().updated_at

    report = load_site_config(path=path)

    assert report.as_dict()["counts"] == {"created": 0, "updated": 0, "unchanged": 2, "not_in_file": 0}
    assert not report.changed
    assert Institution.objects.get().updated_at == stamp  # not even re-saved


def test_editing_a_value_updates_one_row_naming_the_field(site_toml):
    load_site_config(path=site_toml.write())

    report = load_site_config(path=site_toml.write({"recourse_gap_days = 90": "recourse_gap_days = 120"}))

    assert report.updated == [Change("institution", "PUMCH", ("recourse_gap_days",))]
    assert report.unchanged == [Change("storage", "PUMCH/array-1")]
    assert Institution.objects.get().recourse_gap_days == 120


def test_fields_are_named_by_their_file_keys_and_an_absent_key_returns_to_its_default(site_toml):
    load_site_config(path=site_toml.write())
    Institution.objects.update(lookback_days=30)  # as if edited in the admin

    report = load_site_config(path=site_toml.write({"file://": "file:///moved"}))

    assert report.updated == [Change("institution", "PUMCH", ("tps", "lookback_days"))]
    assert Institution.objects.get().lookback_days == 365


def test_extra_keys_fill_their_model_fields(site_toml, tmp_path):
    key_file = tmp_path / "id_ed25519"
    key_file.write_text("key")
    extras = f"""
tps_known_hosts = "{tmp_path}/known_hosts"
tps_key_file = "{key_file}"
restore_group = "Restored"
lookback_days = 400
skew_days = 2
time_zone = "Asia/Shanghai"
codec = "zstd"
codec_level = 19
pack_script = "/usr/local/bin/pdas-pack"
quarantine_dir = "/usr/local/adacnew/Patients/.quarantine"
quarantine_days = 60
worker_queue = "tps-host"
mrn_pattern = "^[0-9]{{6,10}}$"
notify_emails = ["physics@example.org"]
"""
    path = site_toml.write({
        'tps = "file://': extras + 'tps = "ssh://pinnacle@tps-host:2222/usr/local/adacnew/Patients"\n#',
        '  known_hosts = "': f'  key_file = "{key_file}"\n  priority = 3\n  enabled = false\n  known_hosts = "',
    })

    load_site_config(path=path)

    institution = Institution.objects.get()
    assert institution.tps_url == "ssh://pinnacle@tps-host:2222/usr/local/adacnew/Patients"
    assert (institution.tps_key_file, institution.restore_group) == (str(key_file), "Restored")
    assert (institution.lookback_days, institution.skew_days, institution.quarantine_days) == (400, 2, 60)
    assert (institution.codec, institution.codec_level, institution.time_zone) == ("zstd", 19, "Asia/Shanghai")
    assert institution.mrn_pattern == "^[0-9]{6,10}$"
    assert institution.notify_emails == ["physics@example.org"]
    assert (institution.quarantine_dir, institution.worker_queue) == ("/usr/local/adacnew/Patients/.quarantine",
                                                                      "tps-host")
    target = StorageTarget.objects.get()
    assert (target.key_file, target.priority, target.enabled) == (str(key_file), 3, False)


def test_rows_missing_from_the_file_are_left_alone_and_reported(site_toml):
    institution = InstitutionFactory(code="PUMCH")
    StorageTargetFactory(institution=institution, name="old-array")
    InstitutionFactory(code="OTHER")

    report = load_site_config(path=site_toml.write())

    assert report.created == [Change("storage", "PUMCH/array-1")]
    assert report.not_in_file == [Change("storage", "PUMCH/old-array"), Change("institution", "OTHER")]
    assert StorageTarget.objects.filter(name="old-array").exists()
    assert Institution.objects.filter(code="OTHER").exists()


def test_audit_event_names_rows_and_fields_never_secret_values(site_toml):
    load_site_config(path=site_toml.write(), actor="alice")
    load_site_config(path=site_toml.write({'name = "Radiation Oncology"': 'name = "RT"'}), actor="alice")

    first, second = AuditEvent.objects.filter(event="config.load").order_by("id")
    assert first.actor == "alice" and first.institution == "PUMCH"
    assert first.detail["created"] == ["PUMCH", "PUMCH/array-1"]
    assert second.detail["updated"] == {"PUMCH": ["name"]}
    everything = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert PASSWORD_VALUE not in everything


def test_a_bad_second_institution_writes_nothing_at_all(site_toml):
    second = site_toml.text.replace('code = "PUMCH"', 'code = "PUMCH2"').replace("ToArchive", "Clinical")
    path = site_toml.write(append=second)

    with pytest.raises(SiteConfigError, match=r"institution #2 \(PUMCH2\): clinical_groups: 'Clinical' is the "):
        load_site_config(path=path)

    assert not Institution.objects.exists()
    assert not AuditEvent.objects.exists()


def test_two_institutions_each_with_their_targets(site_toml):
    # A target of the same name, in a folder of its own (one folder for two institutions is refused:
    # tests/sites/test_shared_target_folders.py).
    second = site_toml.text.replace('code = "PUMCH"', 'code = "CAMS"').replace(
        "storage-host:22/archive", "storage-host:22/archive-cams")

    report = load_site_config(path=site_toml.write(append=second))

    assert [change.key for change in report.created] == ["PUMCH", "PUMCH/array-1", "CAMS", "CAMS/array-1"]
    assert StorageTarget.objects.filter(name="array-1").count() == 2


def test_errors_are_one_line_even_when_a_value_holds_a_newline(site_toml):
    path = site_toml.write({'pending_group = "ToArchive"': 'pending_group = "ToArchive"\ntime_zone = "Mars/\\nBase"'})

    with pytest.raises(SiteConfigError) as caught:
        load_site_config(path=path)

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: institution #1 (PUMCH): time_zone: ")


def test_row_rules_for_the_admin_skip_checks_of_this_machine():
    values = {"url": "sftp://archiver@host/archive", "password_env": "PDAS_NOT_SET_ANYWHERE",
              "known_hosts": "/nonexistent/known_hosts"}

    assert storage_problems(values, check_local=False) == []
    assert [field for field, _ in storage_problems(values)] == ["password_env", "known_hosts"]
    assert institution_problems({"tps_url": "file://relative/Patients", "pending_group": "A"},
                                check_local=False)[0][0] == "tps_url"


def test_quarantine_outside_the_tps_root_is_refused(site_toml):
    path = site_toml.write({'pending_group = "': 'quarantine_dir = "/data/quarantine"\npending_group = "'})
    with pytest.raises(SiteConfigError) as err:
        load_site_config(path=path)
    assert "quarantine_dir" in str(err.value) and "inside the TPS root" in str(err.value)
    assert len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize("field, value", [("lookback_days", 10**9), ("lookback_days", 0), ("skew_days", 400),
                                          ("quarantine_days", 36500), ("retention_years", 1000)])
def test_day_and_year_settings_out_of_bounds_are_refused_with_their_name(site_toml, field, value):
    path = site_toml.write({'pending_group = "': f'{field} = {value}\npending_group = "'})
    with pytest.raises(SiteConfigError) as err:
        load_site_config(path=path)
    assert field in str(err.value) and "must be from" in str(err.value)
    assert len(str(err.value).splitlines()) == 1
