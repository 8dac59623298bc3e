"""``site.toml`` for the demo site (docs/contracts.md §6), loadable as it is with ``manage.py load_site_config``."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SiteConfig:
    code: str
    tps_root: Path
    pending_group: str
    clinical_groups: tuple[str, ...]
    non_clinical_groups: tuple[str, ...]
    csv_path: Path
    mosaiq_path: Path
    dicom_dir: Path
    storage_dir: Path
    recourse_gap_days: int = 90
    time_zone: str = "Asia/Shanghai"
    storage_name: str = "local-array"


def _string(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value, ensure_ascii=False)


def _strings(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(_string(v) for v in values) + "]"


def site_toml_text(config: SiteConfig, *, seed: int) -> str:
    csv_url = f"csv:{config.csv_path}"
    mosaiq_url = f"mosaiq+sqlite://{config.mosaiq_path}"
    dicom_url = f"dicom-dir:{config.dicom_dir}"
    return "\n".join([
        f"# PDAS demo site (synthetic patients, seed {seed}), written by manage.py make_demo_site.",
        "# Load it with: manage.py load_site_config <this file>",
        "",
        "[[institution]]",
        f"code = {_string(config.code)}",
        f"name = {_string('Demo Radiation Oncology (synthetic data)')}",
        f"tps = {_string(config.tps_root.as_uri())}",
        f"pending_group = {_string(config.pending_group)}",
        f"clinical_groups = {_strings(config.clinical_groups)}",
        f"non_clinical_groups = {_strings(config.non_clinical_groups)}",
        f"recourse_gap_days = {config.recourse_gap_days}",
        f"time_zone = {_string(config.time_zone)}",
        "# The same first deliveries are also in a MOSAIQ-like database and in DICOM files:",
        f"# rv = {_string(mosaiq_url)}",
        f"# rv = {_string(dicom_url)}",
        f"rv = {_string(csv_url)}",
        "",
        "  [[institution.storage]]",
        f"  name = {_string(config.storage_name)}",
        f"  url = {_string(config.storage_dir.as_uri())}",
        "",
    ])


def write_site_toml(path: Path, config: SiteConfig, *, seed: int) -> Path:
    path.write_text(site_toml_text(config, seed=seed), encoding="utf-8")
    return path
