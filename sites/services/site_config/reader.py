"""Reading site.toml into checked rows: every key known, typed and valid before anything is written."""
from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from django.core.exceptions import ValidationError

from sites.models import Institution, StorageTarget
from sites.services.site_config.rules import Problems, institution_problems, shared_folder_problem, storage_problems


class SiteConfigError(Exception):
    """The file cannot be loaded. The message is one line naming the file, the row and the key."""


@dataclass(frozen=True)
class Key:
    """One key of the file: its TOML name, the model field it fills, its type, whether required."""

    name: str
    field: str
    kind: str  # "str", "int", "bool" or "str_list"
    required: bool = False


INSTITUTION_KEYS = {
    key.name: key
    for key in (
        Key("code", "code", "str", required=True),
        Key("name", "name", "str", required=True),
        Key("tps", "tps_url", "str", required=True),
        Key("tps_password_env", "tps_password_env", "str"),
        Key("tps_key_file", "tps_key_file", "str"),
        Key("tps_known_hosts", "tps_known_hosts", "str"),
        Key("pending_group", "pending_group", "str", required=True),
        Key("clinical_groups", "clinical_groups", "str_list"),
        Key("non_clinical_groups", "non_clinical_groups", "str_list"),
        Key("restore_group", "restore_group", "str"),
        Key("rv", "rv_url", "str"),
        Key("rv_password_env", "rv_password_env", "str"),
        Key("recourse_gap_days", "recourse_gap_days", "int"),
        Key("planning_systems", "planning_systems", "str_list"),
        Key("lookback_days", "lookback_days", "int"),
        Key("skew_days", "skew_days", "int"),
        Key("time_zone", "time_zone", "str"),
        Key("codec", "codec", "str"),
        Key("codec_level", "codec_level", "int"),
        Key("pack_script", "pack_script", "str"),
        Key("worker_queue", "worker_queue", "str"),
        Key("quarantine_dir", "quarantine_dir", "str"),
        Key("quarantine_days", "quarantine_days", "int"),
        Key("min_copies", "min_copies", "int"),
        Key("fixity_cycle_days", "fixity_cycle_days", "int"),
        Key("retention_years", "retention_years", "int"),
        Key("mrn_pattern", "mrn_pattern", "str"),
        Key("notify_emails", "notify_emails", "str_list"),
    )
}
STORAGE_KEYS = {
    key.name: key
    for key in (
        Key("name", "name", "str", required=True),
        Key("url", "url", "str", required=True),
        Key("password_env", "password_env", "str"),
        Key("password_file", "password_file", "str"),
        Key("key_file", "key_file", "str"),
        Key("known_hosts", "known_hosts", "str"),
        Key("ca_file", "ca_file", "str"),
        Key("allow_plain_ftp", "allow_plain_ftp", "bool"),
        Key("access_key_env", "access_key_env", "str"),
        Key("secret_key_env", "secret_key_env", "str"),
        Key("allow_plain_http", "allow_plain_http", "bool"),
        Key("encrypt_to", "encrypt_to", "str_list"),
        Key("identity_file", "identity_file", "str"),
        Key("identity_env", "identity_env", "str"),
        Key("priority", "priority", "int"),
        Key("enabled", "enabled", "bool"),
    )
}
TOP_LEVEL_KEYS = ("institution",)
STORAGE_TABLE = "storage"  # [[institution.storage]]

# Keys people write when they put a secret inline, and where the secret belongs instead.
SECRET_KEYS = {
    "password": "password_env or password_file",
    "passwd": "password_env or password_file",
    "passphrase": "password_env or password_file",
    "secret": "password_env or password_file",
    "token": "password_env or password_file",
    "tps_password": "tps_password_env",
    "rv_password": "rv_password_env",
    "access_key": "access_key_env",
    "secret_key": "secret_key_env",
    "aws_access_key_id": "access_key_env",
    "aws_secret_access_key": "secret_key_env",
    "identity": "identity_file or identity_env",
}

_TYPE_NAMES = {"str": "a string", "int": "an integer", "bool": "true or false", "str_list": "a list of strings"}



@dataclass
class Row:
    """A checked table of the file: the model values it sets and where it sits, for messages."""

    where: str  # "institution #1 (PUMCH)" or "institution #1 (PUMCH) storage #2 (array-1)"
    keys: dict[str, Key]
    values: dict[str, Any]  # by model field; every key of the table, defaults for absent ones
    targets: list["Row"] = field(default_factory=list)

    def key_name(self, field_name: str) -> str:
        return next((key.name for key in self.keys.values() if key.field == field_name), field_name)


class Reader:
    """Turns the parsed TOML into checked rows, raising SiteConfigError at the first problem."""

    def __init__(self, path: Path, *, check_local: bool = True):
        self.path = path
        self.check_local = check_local

    def fail(self, where: str, key: str, problem: str) -> SiteConfigError:
        parts = [str(self.path), where, key, problem]
        message = ": ".join(part for part in parts if part)
        return SiteConfigError(" ".join(message.split()))  # one line, whatever a value held

    def load(self) -> list[Row]:
        try:
            # utf-8-sig: Windows editors (Notepad) save UTF-8 with a byte-order mark, which TOML forbids.
            data = tomllib.loads(self.path.read_bytes().decode("utf-8-sig"))
        except FileNotFoundError:
            raise self.fail("", "", "no such file") from None
        except IsADirectoryError:
            raise self.fail("", "", "is a folder, not a TOML file") from None
        except OSError as exc:
            raise self.fail("", "", f"cannot read: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise self.fail("", "", f"not UTF-8 (byte {exc.start}); save the file as UTF-8") from None
        except tomllib.TOMLDecodeError as exc:
            raise self.fail("", "", f"TOML syntax error: {exc}") from None
        self._check_keys(data, "", {name: None for name in TOP_LEVEL_KEYS})
        tables = self._tables(data, "institution", "", "[[institution]]")
        if not tables:
            raise self.fail("", "institution", "the file has no [[institution]] table")
        rows = [self._institution(index, table) for index, table in enumerate(tables, start=1)]
        self._check_unique(rows, "code", "institution code")
        self.check_shared_folders(rows, others=[])
        return rows

    def check_shared_folders(self, rows: list[Row], *, others: list[tuple[str, str, str]]) -> None:
        """No target of the file stores into the folder of another institution's target, in the file or
        in ``others`` (institution code, target name, URL: the database's targets of other institutions)."""
        seen = list(others)
        for row in rows:
            code = row.values["code"]
            for target in row.targets:
                url = target.values["url"]
                if problem := shared_folder_problem(url, institution=code, others=seen):
                    raise self.fail(target.where, "url", problem)
            seen += [(code, target.values["name"], target.values["url"]) for target in row.targets]

    def _tables(self, data: dict, key: str, where: str, form: str) -> list[dict]:
        tables = data.get(key, [])
        if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables):
            raise self.fail(where, key, f"must be an array of tables, written {form}")
        return tables

    def _institution(self, index: int, table: dict) -> Row:
        code = table.get("code")
        where = f"institution #{index}" + (f" ({code})" if isinstance(code, str) and code.strip() else "")
        keys = dict(INSTITUTION_KEYS)
        self._check_keys(table, where, {**keys, STORAGE_TABLE: None})
        row = Row(where=where, keys=keys, values=self._values(table, where, keys, Institution))
        if not row.values["code"].strip():
            raise self.fail(where, "code", "must not be empty")
        self._check_row(row, Institution, institution_problems)
        storage_tables = self._tables(table, STORAGE_TABLE, where, "[[institution.storage]]")
        for number, storage in enumerate(storage_tables, start=1):
            name = storage.get("name")
            target_where = f"{where} storage #{number}" + (f" ({name})" if isinstance(name, str) and name else "")
            self._check_keys(storage, target_where, STORAGE_KEYS)
            target = Row(where=target_where, keys=dict(STORAGE_KEYS),
                          values=self._values(storage, target_where, STORAGE_KEYS, StorageTarget))
            self._check_row(target, StorageTarget, storage_problems)
            row.targets.append(target)
        self._check_unique(row.targets, "name", "storage name")
        return row

    def _check_keys(self, table: dict, where: str, known: dict[str, Any]) -> None:
        for key in table:
            if key in SECRET_KEYS:
                raise self.fail(where, key, "secrets are never written in the file; name an environment "
                                            f"variable or a file with {SECRET_KEYS[key]}")
            if key not in known:
                close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(known)})"
                raise self.fail(where, key, f"unknown key{hint}")

    def _values(self, table: dict, where: str, keys: dict[str, Key], model) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key in keys.values():
            if key.name not in table:
                if key.required:
                    raise self.fail(where, key.name, "missing (required)")
                values[key.field] = model._meta.get_field(key.field).get_default()
                continue
            value = table[key.name]
            if not _has_kind(value, key.kind):
                raise self.fail(where, key.name, f"must be {_TYPE_NAMES[key.kind]}, not {_toml_type(value)}")
            if key.kind == "int" and value < 0:
                raise self.fail(where, key.name, f"must be 0 or more, not {value}")
            values[key.field] = value.strip() if key.kind == "str" else value
        return values

    def _check_row(self, row: Row, model, rules: Callable[..., Problems]) -> None:
        for field_name, problem in rules(row.values, check_local=self.check_local):
            raise self.fail(row.where, row.key_name(field_name), problem)
        # The model's own field rules (slugs, lengths, choices) before any database work.
        instance = model(**row.values)
        try:
            instance.clean_fields(exclude=["institution"])
        except ValidationError as exc:
            raise self.validation_error(row, exc) from None

    def validation_error(self, row: Row, exc: ValidationError) -> SiteConfigError:
        field_name, messages = next(iter(exc.message_dict.items()))
        key = "" if field_name == "__all__" else row.key_name(field_name)
        return self.fail(row.where, key, " ".join(str(message) for message in messages))

    def _check_unique(self, rows: list[Row], field_name: str, what: str) -> None:
        seen: dict[str, Row] = {}
        for row in rows:
            value = row.values[field_name]
            if value in seen:
                raise self.fail(row.where, row.key_name(field_name),
                                f"duplicate {what} {value!r} (also in {seen[value].where})")
            seen[value] = row


def _has_kind(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _toml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array" if all(isinstance(item, str) for item in value) else "an array with non-strings"
    if isinstance(value, dict):
        return "a table"
    return "a date or time"
