"""The rules one institution or storage target must follow, by model field name.

The site.toml loader and the admin forms both call ``institution_problems`` and
``storage_problems``, so the browser and the command line accept exactly the same configurations.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.views.decorators.debug import sensitive_variables

from sites.models import Codec
from connectors.rv import url_problem as rv_url_problem
from connectors.secrets import secret_problem
from connectors.storage import same_place, url_problem as storage_url_problem
from connectors.urls import redact_url
from connectors.storage.encrypted import recipients_problem
from connectors.storage.s3 import s3_url_problem
from connectors.tps import url_problem as tps_url_problem

CODEC_LEVELS = {Codec.GZIP: range(0, 10), Codec.ZSTD: range(0, 23)}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
Problems = list[tuple[str, str]]  # (model field, problem), in the order found


@sensitive_variables()  # the lookup below reads the secret: no error report shows it
def _env_problem(name: str, *, check_local: bool) -> str | None:
    if not _ENV_NAME.match(name):
        return f"{name!r} is not an environment variable name"
    if check_local:
        return secret_problem(name)  # the same lookup the openers use: NAME or NAME_FILE
    return None


def _file_problem(name: str, *, check_local: bool) -> str | None:
    if not name.startswith("/"):
        return f"{name}: give an absolute path (the workers do not run in this folder)"
    if not check_local:
        return None
    path = Path(name)
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except FileNotFoundError:
        return f"{name} does not exist"
    except IsADirectoryError:
        return f"{name} is a folder, not a file"
    except OSError as exc:
        return f"cannot read {name}: {exc.strerror}"
    return None


def _group_problems(values: dict[str, Any]) -> Problems:
    problems: Problems = []
    pending = values.get("pending_group", "")
    clinical = list(values.get("clinical_groups") or [])
    non_clinical = list(values.get("non_clinical_groups") or [])
    for field_name, groups in (("clinical_groups", clinical), ("non_clinical_groups", non_clinical)):
        if pending and pending in groups:
            problems.append((field_name, f"{pending!r} is the pending_group; a group has one role"))
        if any(not group.strip() for group in groups):
            problems.append((field_name, "holds an empty group name"))
        if len(set(groups)) != len(groups):
            problems.append((field_name, "names a group twice"))
    for group in sorted(set(clinical) & set(non_clinical)):
        problems.append(("non_clinical_groups", f"{group!r} is also in clinical_groups; a group has one role"))
    return problems


def institution_problems(values: dict[str, Any], *, check_local: bool = True) -> Problems:
    """Problems with one institution's values, by model field name (``tps_url``, not ``tps``).

    ``check_local`` also checks that named environment variables are set and named files can be
    read here; the admin turns it off, since the web server need not hold the workers' secrets.
    """
    problems: Problems = []
    # The file loader checks types first; an admin form's JSON fields may still hold anything.
    for field_name in ("clinical_groups", "non_clinical_groups", "notify_emails", "planning_systems"):
        value = values.get(field_name) or []
        if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
            return [(field_name, 'must be a list of strings, as in ["Clinical"]')]
    tps_url = values.get("tps_url", "")
    if tps_url and (problem := tps_url_problem(tps_url)):
        problems.append(("tps_url", problem))
    is_ssh = urlsplit(tps_url).scheme == "ssh"
    for field_name in ("tps_password_env", "tps_key_file", "tps_known_hosts"):
        if values.get(field_name) and not is_ssh:
            problems.append((field_name, "only used with an ssh:// tps"))
    if is_ssh and not values.get("tps_known_hosts"):
        problems.append(("tps_known_hosts", "an ssh:// tps needs tps_known_hosts (host keys are pinned, "
                                            "never trusted on first use)"))
    if is_ssh and not (values.get("tps_password_env") or values.get("tps_key_file")):
        problems.append(("tps_key_file", "an ssh:// tps needs tps_key_file or tps_password_env to log in"))
    rv_url = values.get("rv_url", "")
    if rv_url and (problem := rv_url_problem(rv_url)):
        problems.append(("rv_url", problem))
    if values.get("rv_password_env") and not rv_url.startswith("mosaiq+"):
        problems.append(("rv_password_env", "only used with a mosaiq+ rv"))
    for field_name, check in (("tps_password_env", _env_problem), ("rv_password_env", _env_problem),
                              ("tps_key_file", _file_problem), ("tps_known_hosts", _file_problem)):
        if values.get(field_name) and (problem := check(values[field_name], check_local=check_local)):
            problems.append((field_name, problem))
    for field_name in ("pack_script", "quarantine_dir"):
        if values.get(field_name) and not values[field_name].startswith("/"):
            problems.append((field_name, f"{values[field_name]}: give an absolute path on the TPS host"))
    quarantine = values.get("quarantine_dir", "")
    if quarantine.startswith("/") and values.get("tps_url"):
        from connectors.tps import relative_to_root

        if relative_to_root(quarantine, values["tps_url"]) is None:
            problems.append(("quarantine_dir", f"{quarantine}: must be a folder inside the TPS root, so that "
                                               "removing originals is a rename on one file system"))
    if values.get("time_zone"):
        try:
            ZoneInfo(values["time_zone"])
        except Exception:  # zoneinfo raises several types for a bad key
            problems.append(("time_zone", f"{values['time_zone']!r} is not a time zone name "
                                          "(use an IANA name such as Asia/Shanghai)"))
    if values.get("mrn_pattern"):
        try:
            re.compile(values["mrn_pattern"])
        except re.error as exc:
            problems.append(("mrn_pattern", f"bad regular expression: {exc}"))
    # Bounds keep every date PDAS computes from these representable (a lookback of 10**9 days would
    # overflow the scan) and catch a typo before it deletes or keeps anything for decades.
    for field_name, lowest, highest in (("min_copies", 1, 20), ("fixity_cycle_days", 1, 3650),
                                        ("retention_years", 1, 100), ("quarantine_days", 0, 3650),
                                        ("recourse_gap_days", 1, 3650), ("lookback_days", 1, 3650),
                                        ("skew_days", 0, 365)):
        value = values.get(field_name)
        if isinstance(value, int) and not lowest <= value <= highest:
            problems.append((field_name, f"must be from {lowest} to {highest}, not {value}"))
    codec, level = values.get("codec", Codec.GZIP), values.get("codec_level", 0)
    if codec in CODEC_LEVELS and isinstance(level, int) and level not in CODEC_LEVELS[codec]:
        levels = CODEC_LEVELS[codec]
        problems.append(("codec_level", f"{codec} takes 0 (its default) to {levels[-1]}, not {level}"))
    for address in values.get("notify_emails") or []:
        try:
            validate_email(address)
        except ValidationError:
            problems.append(("notify_emails", f"{address!r} is not an e-mail address"))
    problems.extend(_group_problems(values))
    problems.extend(_planning_system_problems(values.get("planning_systems")))
    return problems


def _planning_system_problems(names) -> Problems:
    # An empty name would be part of every name: nothing would ever count as another planning system's.
    if names is None:
        return []
    if not names:
        return [("planning_systems", 'name at least one planning system, as in ["Pinnacle"]')]
    if any(not name.strip() for name in names):
        return [("planning_systems", "holds an empty name, which would match every planning system")]
    return []


def storage_problems(values: dict[str, Any], *, check_local: bool = True) -> Problems:
    """Problems with one storage target's values, by model field name; see institution_problems."""
    problems: Problems = []
    url = values.get("url", "")
    if url and (problem := storage_url_problem(url)):
        problems.append(("url", problem))
    scheme = urlsplit(url).scheme
    if scheme == "file":
        for field_name in ("password_env", "password_file", "key_file", "known_hosts", "ca_file", "access_key_env",
                           "secret_key_env"):
            if values.get(field_name):
                problems.append((field_name, "a file:// target takes no credentials"))
    if values.get("password_env") and values.get("password_file"):
        problems.append(("password_file", "set password_env or password_file, not both"))
    if scheme == "sftp" and not values.get("known_hosts"):
        problems.append(("known_hosts", "an sftp:// target needs known_hosts (host keys are pinned, "
                                        "never trusted on first use)"))
    if scheme == "sftp" and not any(values.get(f) for f in ("key_file", "password_env", "password_file")):
        problems.append(("key_file", "an sftp:// target needs key_file, password_env or password_file to log in"))
    if scheme == "smb" and not any(values.get(f) for f in ("password_env", "password_file")):
        problems.append(("password_env", "an smb:// target needs password_env or password_file to log in"))
    if scheme == "ftp" and not values.get("allow_plain_ftp"):
        problems.append(("url", "plain ftp:// sends the password and the archives in clear: use ftps://, "
                                "or set allow_plain_ftp = true on a private storage network"))
    if scheme in ("ftp", "sftp", "smb") and values.get("ca_file"):
        problems.append(("ca_file", "only used with ftps:// and s3:// (an https endpoint)"))
    if scheme != "ftp" and values.get("allow_plain_ftp"):
        problems.append(("allow_plain_ftp", "only used with ftp://"))
    problems.extend(_s3_problems(values, scheme))
    if values.get("password_env") and (problem := _env_problem(values["password_env"], check_local=check_local)):
        problems.append(("password_env", problem))
    for field_name in ("access_key_env", "secret_key_env", "identity_env"):
        if values.get(field_name) and (problem := _env_problem(values[field_name], check_local=check_local)):
            problems.append((field_name, problem))
    for field_name in ("password_file", "key_file", "known_hosts", "ca_file", "identity_file"):
        if values.get(field_name) and (problem := _file_problem(values[field_name], check_local=check_local)):
            problems.append((field_name, problem))
    problems.extend(_encryption_problems(values))
    return problems


def shared_folder_problem(url: str, *, institution: str, others: Iterable[tuple[str, str, str]]) -> str | None:
    """Why ``url`` may not be a target of ``institution``: it stores into the folder of another institution's
    target (or inside it, or around it). ``others``: (institution code, target name, URL) of other targets.
    Two institutions in one folder would each find the other's patients in a restore search or a
    rebuild_index there, and one's purge could trust the other's copies."""
    for code, name, other in others:
        if code != institution and same_place(url, other):
            return (f"{redact_url(url)} stores into the folder of institution {code}'s target {name!r} "
                    f"({redact_url(other)}), or inside or around it: institutions never share a target folder")
    return None


def _s3_problems(values: dict[str, Any], scheme: str) -> Problems:
    problems: Problems = []
    if scheme == "s3":
        for field_name in ("password_env", "password_file", "key_file", "known_hosts"):
            if values.get(field_name):
                problems.append((field_name, "not used with s3:// (the key pair is access_key_env and secret_key_env)"))
        for field_name in ("access_key_env", "secret_key_env"):
            if not values.get(field_name):
                problems.append((field_name, "an s3:// target needs access_key_env and secret_key_env"))
        url = values.get("url", "")
        if not s3_url_problem(url) and (problem := s3_url_problem(url, allow_plain_http=bool(
                values.get("allow_plain_http")))):
            problems.append(("url", problem))
    else:
        for field_name in ("access_key_env", "secret_key_env", "allow_plain_http"):
            if values.get(field_name):
                problems.append((field_name, "only used with s3://"))
    return problems


def _encryption_problems(values: dict[str, Any]) -> Problems:
    recipients = values.get("encrypt_to") or []
    if recipients and (problem := recipients_problem(recipients)):
        return [("encrypt_to", problem)]
    problems: Problems = []
    if not recipients:
        for field_name in ("identity_file", "identity_env"):
            if values.get(field_name):
                problems.append((field_name, "only used with encrypt_to (the identity decrypts an encrypted target)"))
    if values.get("identity_file") and values.get("identity_env"):
        problems.append(("identity_env", "set identity_file or identity_env, not both"))
    return problems
