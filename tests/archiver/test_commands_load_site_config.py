from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from sites.models import Institution, StorageTarget
from tests.archiver.site_toml import PASSWORD_ENV, PASSWORD_VALUE, make_site_toml

pytestmark = pytest.mark.django_db


@pytest.fixture
def site_toml(tmp_path, monkeypatch):
    return make_site_toml(tmp_path, monkeypatch)


REPO = Path(__file__).resolve().parents[2]
WHERE = "institution #1 (PUMCH)"
TARGET = f"{WHERE} storage #1 (array-1)"
TPS_LINE = 'tps = "file://{root}/pinnacle/Patients"'
URL_LINE = 'url = "sftp://archiver@storage-host:22/archive"'
PASSWORD_LINE = f'password_env = "{PASSWORD_ENV}"'
KNOWN_HOSTS_LINE = 'known_hosts = "{root}/known_hosts"'


def run(path: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("load_site_config", str(path), *args, stdout=out)
    return out.getvalue()


def test_prints_what_it_created_then_nothing_on_a_second_load(site_toml):
    path = site_toml.write()

    first = run(path)
    second = run(path)

    assert first.splitlines() == [f"{path}: 2 created, 0 updated, 0 unchanged", "  created institution PUMCH",
                                  "  created storage PUMCH/array-1"]
    assert second.splitlines() == [f"{path}: 0 created, 0 updated, 2 unchanged"]


def test_json_report(site_toml):
    path = site_toml.write()
    run(path)

    report = json.loads(run(site_toml.write({"recourse_gap_days = 90": "recourse_gap_days = 60"}), "--json"))

    assert report["counts"] == {"created": 0, "updated": 1, "unchanged": 1, "not_in_file": 0}
    assert report["updated"] == [{"kind": "institution", "key": "PUMCH", "fields": ["recourse_gap_days"]}]


def test_an_unset_password_variable_is_named_and_nothing_is_written(site_toml, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV)
    path = site_toml.write()

    with pytest.raises(CommandError) as caught:
        run(path)

    assert caught.value.returncode == 2
    assert str(caught.value) == f"{path}: {TARGET}: password_env: {PASSWORD_ENV} is not set (nor {PASSWORD_ENV}_FILE)"
    assert not Institution.objects.exists() and not StorageTarget.objects.exists()


def test_a_password_in_a_file_named_by_NAME_FILE_is_accepted_as_the_openers_accept_it(site_toml, monkeypatch,
                                                                                       tmp_path):
    """The loader checks secrets with the lookup the openers use: NAME, or the file NAME_FILE names."""
    secret_file = tmp_path / "array-password"
    secret_file.write_text("s3cret\n", encoding="utf-8")
    monkeypatch.delenv(PASSWORD_ENV)
    monkeypatch.setenv(f"{PASSWORD_ENV}_FILE", str(secret_file))

    run(site_toml.write())

    from sites.connections import target_password

    assert target_password(StorageTarget.objects.get(name="array-1")) == "s3cret"


# (case, replacements with {root} for the tmp folder, text appended to the file, the message after "file: ")
ERRORS = [
    ("toml syntax", {"recourse_gap_days = 90": "recourse_gap_days = = 90"}, "",
     "TOML syntax error: Invalid value (at line 8, column 21)"),
    ("top-level typo", {"[[institution]]": "[[institutions]]"}, "",
     "institutions: unknown key (did you mean 'institution'?)"),
    ("single table", {"[[institution]]": "[institution]", "[[institution.storage]]": "[institution.storage]"}, "",
     "institution: must be an array of tables, written [[institution]]"),
    ("unknown key", {"pending_group": "pending_grup"}, "",
     f"{WHERE}: pending_grup: unknown key (did you mean 'pending_group'?)"),
    ("unknown storage key", {"known_hosts =": "known_host ="}, "",
     f"{TARGET}: known_host: unknown key (did you mean 'known_hosts'?)"),
    ("missing key", {TPS_LINE: ""}, "", f"{WHERE}: tps: missing (required)"),
    ("missing storage url", {URL_LINE: ""}, "", f"{TARGET}: url: missing (required)"),
    ("wrong type", {"recourse_gap_days = 90": 'recourse_gap_days = "90"'}, "",
     f"{WHERE}: recourse_gap_days: must be an integer, not a string"),
    ("wrong list type", {'clinical_groups = ["Clinical"]': 'clinical_groups = "Clinical"'}, "",
     f"{WHERE}: clinical_groups: must be a list of strings, not a string"),
    ("negative", {"recourse_gap_days = 90": "recourse_gap_days = -1"}, "",
     f"{WHERE}: recourse_gap_days: must be 0 or more, not -1"),
    ("empty code", {'code = "PUMCH"': 'code = " "'}, "", "institution #1: code: must not be empty"),
    ("bad code", {'code = "PUMCH"': 'code = "PU MCH"'}, "", "institution #1 (PU MCH): code: Enter a valid “slug”"),
    ("duplicate code", {}, "SECOND", "institution #2 (PUMCH): code: duplicate institution code 'PUMCH' "
                                     f"(also in {WHERE})"),
    ("duplicate target", {}, '\n  [[institution.storage]]\n  name = "array-1"\n  url = "file:///srv/a"\n',
     f"{WHERE} storage #2 (array-1): name: duplicate storage name 'array-1' (also in {TARGET})"),
    ("tps relative file", {TPS_LINE: 'tps = "file://data/Patients"'}, "",
     f"{WHERE}: tps: file://data/Patients: a file URL takes no host; write file:///absolute/path"),
    ("tps other scheme", {TPS_LINE: 'tps = "smb://server/Patients"'}, "",
     f"{WHERE}: tps: smb://server/Patients: unsupported scheme 'smb': use file:///absolute/path or "
     "ssh://user@host[:port]/absolute/path"),
    ("tps ssh without user", {TPS_LINE: 'tps = "ssh://tps-host/Patients"'}, "",
     f"{WHERE}: tps: ssh://tps-host/Patients: expected ssh://user@host[:port]/absolute/path"),
    ("tps ssh without known_hosts",
     {TPS_LINE: 'tps = "ssh://p@tps-host/Patients"\ntps_key_file = "{root}/known_hosts"'}, "",
     f"{WHERE}: tps_known_hosts: an ssh:// tps needs tps_known_hosts (host keys are pinned"),
    ("rv scheme", {'rv = "csv:': 'rv = "sql:'}, "",
     f"{WHERE}: rv: sql:{{root}}/rv/first_deliveries.csv: unsupported R&V source: use csv:PATH, dicom-dir:PATH, "
     "dicom-qr://CALLED-AE@host:port?calling=OUR-AE or mosaiq+<database URL>"),
    ("rv password in url", {'rv = "csv:{root}/rv/first_deliveries.csv"': 'rv = "mosaiq+mssql://sa:hunter2-secret@db/M"'},
     "", f"{WHERE}: rv: the URL holds a password (user:password@host); remove it and use rv_password_env"),
    ("tps password inline", {"recourse_gap_days = 90": 'tps_password = "hunter2-secret"'}, "",
     f"{WHERE}: tps_password: secrets are never written in the file; name an environment variable or a file with "
     "tps_password_env"),
    ("rv relative", {"rv = \"csv:{root}/": "rv = \"csv:"}, "", f"{WHERE}: rv: csv:rv/first_deliveries.csv: csv: "
                                                               "needs an absolute path"),
    ("rv mosaiq", {"rv = \"csv:{root}/rv/first_deliveries.csv\"": 'rv = "mosaiq+mssql:host"'}, "",
     f"{WHERE}: rv: mosaiq+mssql:host: mosaiq+ must be followed by a database URL"),
    ("storage scheme", {URL_LINE: 'url = "http://storage-host/archive"'}, "",
     f"{TARGET}: url: http://storage-host/archive: unsupported target 'http': use file:///absolute/path, ftps://"),
    ("storage without host", {URL_LINE: 'url = "ftps:///archive"', PASSWORD_LINE: "", KNOWN_HOSTS_LINE: ""}, "",
     f"{TARGET}: url: ftps:///archive: names no host"),
    ("password file missing", {PASSWORD_LINE: 'password_file = "{root}/no-such-file"'}, "",
     f"{TARGET}: password_file: {{root}}/no-such-file does not exist"),
    ("key file is a folder", {PASSWORD_LINE: 'key_file = "{root}"'}, "",
     f"{TARGET}: key_file: {{root}} is a folder, not a file"),
    ("known_hosts missing", {KNOWN_HOSTS_LINE: 'known_hosts = "{root}/nope"'}, "",
     f"{TARGET}: known_hosts: {{root}}/nope does not exist"),
    ("relative key file", {PASSWORD_LINE: 'key_file = "id_rsa"'}, "",
     f"{TARGET}: key_file: id_rsa: give an absolute path"),
    ("password inline", {PASSWORD_LINE: 'password = "hunter2-secret"'}, "",
     f"{TARGET}: password: secrets are never written in the file; name an environment variable or a file with "
     "password_env or password_file"),
    ("password in url", {URL_LINE: 'url = "sftp://archiver:hunter2-secret@storage-host/archive"'}, "",
     f"{TARGET}: url: the URL holds a password (user:password@host); remove it and use password_env or "
     "password_file"),
    ("password in an unsupported url", {URL_LINE: 'url = "https://archiver:hunter2-secret@storage-host/a"'}, "",
     f"{TARGET}: url: the URL holds a password (user:password@host); remove it and use password_env or "
     "password_file"),
    ("password in a tps url", {TPS_LINE: 'tps = "sftp://p:hunter2-secret@tps-host/Patients"'}, "",
     f"{WHERE}: tps: the URL holds a password (user:password@host); remove it and use tps_password_env or "
     "tps_key_file"),
    ("sftp without known_hosts", {KNOWN_HOSTS_LINE: ""}, "",
     f"{TARGET}: known_hosts: an sftp:// target needs known_hosts (host keys are pinned"),
    ("plain ftp", {URL_LINE: 'url = "ftp://archiver@storage-host/archive"', KNOWN_HOSTS_LINE: ""}, "",
     f"{TARGET}: url: plain ftp:// sends the password and the archives in clear: use ftps://, or set "
     "allow_plain_ftp = true"),
    ("bad time zone", {"recourse_gap_days = 90": 'time_zone = "Asia/Beijing"'}, "",
     f"{WHERE}: time_zone: 'Asia/Beijing' is not a time zone name"),
    ("bad mrn pattern", {"recourse_gap_days = 90": 'mrn_pattern = "^[0-9+$"'}, "",
     f"{WHERE}: mrn_pattern: bad regular expression: unterminated character set"),
    ("pending group also clinical", {'clinical_groups = ["Clinical"]': 'clinical_groups = ["Clinical", "ToArchive"]'},
     "", f"{WHERE}: clinical_groups: 'ToArchive' is the pending_group; a group has one role"),
    ("pending group also non-clinical", {'"Training"]': '"Training", "ToArchive"]'}, "",
     f"{WHERE}: non_clinical_groups: 'ToArchive' is the pending_group; a group has one role"),
    ("codec level", {"recourse_gap_days = 90": "codec_level = 12"}, "",
     f"{WHERE}: codec_level: gzip takes 0 (its default) to 9, not 12"),
    ("bad codec", {"recourse_gap_days = 90": 'codec = "xz"'}, "",
     f"{WHERE}: codec: Value 'xz' is not a valid choice."),
    ("bad email", {"recourse_gap_days = 90": 'notify_emails = ["physics at example.org"]'}, "",
     f"{WHERE}: notify_emails: 'physics at example.org' is not an e-mail address"),
]


@pytest.mark.parametrize(("replace", "append", "expected"), [case[1:] for case in ERRORS],
                         ids=[case[0] for case in ERRORS])
def test_bad_configuration_exits_2_with_one_line_naming_row_and_key(site_toml, replace, append, expected):
    root = str(site_toml.root)
    replace = {old.replace("{root}", root): new.replace("{root}", root) for old, new in replace.items()}
    if append == "SECOND":
        append = "\n" + site_toml.text
    path = site_toml.write(replace, append=append)
    with pytest.raises(CommandError) as caught:
        run(path)

    message = str(caught.value)
    assert caught.value.returncode == 2
    assert "\n" not in message
    assert message.startswith(f"{path}: {expected.replace('{root}', root)}"), message
    assert "hunter2-secret" not in message and PASSWORD_VALUE not in message
    assert not Institution.objects.exists()


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "institution = []\n"])
def test_a_file_without_institutions_is_refused(tmp_path, text):
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(CommandError, match=r"site\.toml: institution: the file has no \[\[institution\]\] table$"):
        run(path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(CommandError, match=r"nope\.toml: no such file$") as caught:
        run(tmp_path / "nope.toml")
    assert caught.value.returncode == 2


def test_a_file_not_in_utf8_is_refused(site_toml):
    path = site_toml.write({"Radiation Oncology": "放射治疗科"})
    path.write_bytes(path.read_text(encoding="utf-8").encode("gb18030"))

    with pytest.raises(CommandError, match=r"site\.toml: not UTF-8 \(byte \d+\); save the file as UTF-8$"):
        run(path)


@pytest.mark.parametrize(("text", "expected"), [
    ('[[institution]]\ncode = "PUMCH"\ntps = "file:///x"\nname = \n',
     "{file}: TOML syntax error: Invalid value (at line 4, column 8)"),
    # A good file against a database that was never migrated.
    ('[[institution]]\ncode = "PUMCH"\nname = "RT"\ntps = "file:///x"\npending_group = "ToArchive"\n',
     "database error: no such table: archiver_institution (is the database migrated? run 'manage.py migrate')"),
], ids=["bad file", "unmigrated database"])
def test_no_traceback_reaches_stderr(tmp_path, text, expected):
    site = tmp_path / "site.toml"
    site.write_text(text, encoding="utf-8")
    env = {**os.environ, "PDAS_DATA_DIR": str(tmp_path / "data"), "PDAS_ENV": "development"}
    env.pop("DATABASE_URL", None)  # the empty SQLite database under PDAS_DATA_DIR

    done = subprocess.run([sys.executable, "manage.py", "load_site_config", str(site)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [f"CommandError: {expected.format(file=site)}"]
