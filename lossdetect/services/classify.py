"""Matching first deliveries to plans and the six categories (docs/contracts.md §2.8 and §3), in pandas.

Pure functions over DataFrames: no database access, so the same code serves the scan service, the
benchmark and the tests. The whole R&V history is matched in a handful of vectorised merges
(deliveries x plan names on MRN and normalised label), never one lookup per record.

Choices where docs/contracts.md leaves room (docs/loss-detection.md):
- A record matches the single latest-created candidate among TPS plans and archived plans; its
  category follows from where that plan lives. When the same plan sits in several places with the
  same creation time (archived and restored, or copied), archived beats pending/clinical beats the
  other groups. Taking the latest candidate, rather than "archived if any candidate is archived",
  keeps an older archived plan of the same name (an earlier course) from hiding a newer delivered
  plan that was lost.
- A plan without a creation time cannot lie in the window and never matches.
- Any group that is neither clinical nor the pending-archive group counts as non-clinical:
  a matching plan there is reported in ``found_in``.
- The normalised label is right-trimmed after the cut to 16 characters, because DICOM drops the
  trailing space of a label cut just after a word.
- One patient, several MRNs (MRN aliases, docs/contracts.md §2.7): deliveries and plans carry a
  ``patient`` key (``lossdetect.services.alias_graph``: the same for every MRN of a patient, the MRN
  itself without aliases). Matching, the re-course rule and folding duplicate records use it; a
  record keeps its own MRN for what is reported.
- Records of another planning system (docs/contracts.md §2.6) are taken out before anything here
  (``split_other_tps``): they are neither matched nor part of a patient's course history.
"""
from __future__ import annotations

import itertools
import unicodedata
from dataclasses import dataclass
from typing import Callable, Collection, Iterable, Mapping

import numpy as np
import pandas as pd

from connectors.rv.base import FirstDelivery

LABEL_LENGTH = 16  # DICOM RT Plan Label (LO is 64, but MOSAIQ and the consoles cut at 16)
DAY = 86400.0

ARCHIVED, UNARCHIVED, LOST = "archived", "unarchived", "lost"
# Tie-break between candidates created at the same moment: lower wins.
_TIER_ARCHIVED, _TIER_ACTIVE, _TIER_OTHER = 0, 1, 2

DELIVERY_COLUMNS = ["mrn", "patient_name", "plan_label", "plan_uid", "course", "first_delivery", "ts", "machine",
                    "planning_system", "patient"]
TPS_PLAN_COLUMNS = ["plan_pk", "name", "trial_names", "created_ts", "mrn", "group", "tps_path"]
ARCHIVED_PLAN_COLUMNS = ["plan_pk", "name", "trial_names", "created_ts", "mrn", "archive_pk", "archive_name"]
UNSAFE_ARCHIVED_PLAN_COLUMNS = [*ARCHIVED_PLAN_COLUMNS, "where", "in_quarantine"]
RESULT_COLUMNS = ["status", "match", "found_in", "tps_plan_pk", "tps_path", "archive_pk"]


@dataclass(frozen=True)
class MatchRules:
    lookback_days: int = 365
    skew_days: int = 1
    recourse_gap_days: int = 90


def normalize_label(text: str) -> str:
    """NFKC, casefold, collapse whitespace, first 16 characters (right-trimmed)."""
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    return " ".join(folded.split())[:LABEL_LENGTH].rstrip()


def _normalized(labels: pd.Series) -> pd.Series:
    """Normalise each distinct label once: plan names repeat a lot."""
    mapping = {value: normalize_label(value) for value in pd.unique(labels)}
    return labels.map(mapping)


def category(*, is_recourse: bool, status: str) -> str:
    return f"{'recourse' if is_recourse else 'first_course'}_{status}"


def status_of(category_value: str) -> str:
    """``archived``, ``unarchived`` or ``lost`` of a category value."""
    return category_value.rsplit("_", 1)[1]


def patient_keys(mrns: pd.Series, patients: Mapping[str, str] | None) -> pd.Series:
    """The patient key of each (trimmed) MRN: one dictionary lookup per row, the MRN itself when it has no alias."""
    mrns = mrns.astype(object).str.strip()
    if not patients:
        return mrns
    return mrns.map(patients).fillna(mrns).astype(object)


def deliveries_frame(records: Iterable[FirstDelivery], *, patients: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Records as a DataFrame (``ts``: first delivery in epoch seconds), sorted by time, duplicates folded.

    ``patients`` maps MRNs with aliases to their patient's key (``MrnAliasGraph.patients``). The
    same plan UID of one patient listed twice keeps its earliest delivery; identical rows without a
    UID are kept once.
    """
    records = list(records)
    frame = pd.DataFrame({
        "mrn": [r.mrn.strip() for r in records],
        "patient_name": [r.patient_name for r in records],
        "plan_label": [r.plan_label for r in records],
        "plan_uid": [r.plan_uid for r in records],
        "course": pd.array([r.course for r in records], dtype="Int64"),
        # Kept as Python datetimes (object): they go back into the database unchanged.
        "first_delivery": pd.Series([r.first_delivery for r in records], dtype=object),
        "ts": np.array([r.first_delivery.timestamp() for r in records], dtype="float64"),
        "machine": [r.machine for r in records],
        "planning_system": [r.planning_system for r in records],
    }, columns=DELIVERY_COLUMNS[:-1])
    frame["patient"] = patient_keys(frame["mrn"], patients)
    frame = frame.iloc[np.argsort(frame["ts"].to_numpy(), kind="stable")]  # earliest first: kept
    has_uid = (frame["plan_uid"] != "").to_numpy()
    drop = np.zeros(len(frame), dtype=bool)
    # Duplicates are rare: a one-column check first, the multi-column one only when needed.
    if frame["plan_uid"][has_uid].duplicated().any():
        drop |= has_uid & frame.duplicated(["patient", "plan_uid"]).to_numpy()
    if not has_uid.all():
        drop |= ~has_uid & frame.duplicated(["mrn", "plan_label", "course", "ts"]).to_numpy()
    return frame[~drop].reset_index(drop=True)


def split_other_tps(frame: pd.DataFrame, *, is_other: Callable[[str], bool]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(records of our planning systems or naming none, records of another planning system).

    ``is_other`` (``Institution.is_other_planning_system``) is asked once per distinct name.
    """
    names = frame["planning_system"]
    verdict = {name: bool(is_other(name)) for name in pd.unique(names) if name}
    if not any(verdict.values()):
        return frame, frame.iloc[0:0]
    other = names.map(lambda name: verdict.get(name, False)).to_numpy(dtype=bool)
    return frame[~other], frame[other]


def mark_recourse(frame: pd.DataFrame, *, gap_days: int) -> pd.Series:
    """True for re-course deliveries (docs/contracts.md §2.8).

    ``course`` given: course >= 2. Empty: order the patient's plans (all history in ``frame``) by
    first delivery; a plan opens a new course when it comes more than ``gap_days`` after the
    latest earlier first delivery, and every course after the first is a re-course.
    """
    patients = pd.factorize(frame["patient"] if "patient" in frame else frame["mrn"])[0]
    ts = frame["ts"].to_numpy(dtype="float64")
    order = np.lexsort((ts, patients))
    patient, when = patients[order], ts[order]
    first_of_patient = np.r_[True, patient[1:] != patient[:-1]] if len(order) else np.zeros(0, dtype=bool)
    opens_course = ~first_of_patient & (np.diff(when, prepend=when[:1]) > gap_days * DAY)
    courses_so_far = np.cumsum(opens_course)
    # Restart the count at each patient: subtract the running total reached at the patient's first row.
    at_patient_start = np.maximum.accumulate(np.where(first_of_patient, courses_so_far, 0))
    inferred = np.empty(len(order), dtype=bool)
    inferred[order] = (courses_so_far - at_patient_start) >= 1
    given = frame["course"].to_numpy(dtype="float64", na_value=np.nan)
    return pd.Series(np.where(np.isnan(given), inferred, given >= 2), index=frame.index, dtype=bool)


_CANDIDATE_COLUMNS = ["mrn", "created_ts", "tier", "match", "where", "tps_plan_pk", "tps_path", "archive_pk"]


def candidates_frame(
    tps_plans: pd.DataFrame, archived_plans: pd.DataFrame, *, active_groups: Collection[str],
    mrns: Collection[str] | None = None, unsafe_plans: pd.DataFrame | None = None,
    patients: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """One row per (plan, normalised plan or trial name ``key``) with its creation time, tier and what to report.

    ``active_groups``: the pending-archive group and the clinical groups. ``mrns``: expand only the
    plans of these MRNs (None: the frames hold only wanted patients already; with aliases, give every
    MRN of the patients wanted). ``patients``: the MRN aliases, as for ``deliveries_frame``. ``unsafe_plans``:
    plans of archives with no verified copy left (``UNSAFE_ARCHIVED_PLAN_COLUMNS``): such a plan is
    unarchived while its originals wait in the quarantine and lost otherwise, and ``found_in`` says
    where the archive is and the state of each copy.
    """
    if mrns is not None:
        mrn_set = set(mrns)
        tps_plans = tps_plans[tps_plans["mrn"].isin(mrn_set)]
        archived_plans = archived_plans[archived_plans["mrn"].isin(mrn_set)]
        if unsafe_plans is not None:
            unsafe_plans = unsafe_plans[unsafe_plans["mrn"].isin(mrn_set)]
    parts = []
    tps = tps_plans[tps_plans["created_ts"].notna()].reset_index(drop=True)
    if not tps.empty:
        active = tps["group"].isin(set(active_groups)).to_numpy()
        tps = tps.assign(
            tier=np.where(active, _TIER_ACTIVE, _TIER_OTHER),
            where=np.where(active, "", (tps["group"] + ":" + tps["tps_path"]).to_numpy(dtype=object)),
            tps_plan_pk=tps["plan_pk"].astype("float64"), archive_pk=np.nan,
            match=np.where(active, tps["tps_path"].to_numpy(dtype=object), ""),
        )
        parts.append(tps)
    archived = archived_plans[archived_plans["created_ts"].notna()]
    if not archived.empty:
        archived = archived.reset_index(drop=True).assign(
            tier=_TIER_ARCHIVED, where="", tps_plan_pk=np.nan, tps_path="", match=archived["archive_name"].to_numpy(),
            archive_pk=archived["archive_pk"].astype("float64").to_numpy(),
        )
        parts.append(archived)
    unsafe = unsafe_plans[unsafe_plans["created_ts"].notna()] if unsafe_plans is not None else None
    if unsafe is not None and not unsafe.empty:
        unsafe = unsafe.reset_index(drop=True)
        unsafe = unsafe.assign(
            tier=np.where(unsafe["in_quarantine"].to_numpy(dtype=bool), _TIER_ACTIVE, _TIER_OTHER),
            tps_plan_pk=np.nan, tps_path="", match=unsafe["archive_name"].to_numpy(),
            archive_pk=unsafe["archive_pk"].astype("float64").to_numpy(),
        )
        parts.append(unsafe)
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ["key", *_CANDIDATE_COLUMNS, "patient"]})
    plans = pd.concat([p[["name", "trial_names", *_CANDIDATE_COLUMNS]] for p in parts], ignore_index=True)
    trials = plans["trial_names"].tolist()
    plan_row = np.concatenate([np.arange(len(plans)), np.repeat(np.arange(len(plans)), [len(t) for t in trials])])
    labels = pd.Series(plans["name"].tolist() + list(itertools.chain.from_iterable(trials)), dtype=object)
    keys = _normalized(labels).to_numpy(dtype=object)
    named = keys != ""
    keyed = plans[_CANDIDATE_COLUMNS].take(plan_row[named]).reset_index(drop=True)
    keyed.insert(0, "key", keys[named])
    keyed["patient"] = patient_keys(keyed["mrn"], patients)
    return keyed


def match_deliveries(
    deliveries: pd.DataFrame, candidates: pd.DataFrame, *, rules: MatchRules
) -> pd.DataFrame:
    """For each delivery (``mrn`` or ``patient``, ``plan_label``, ``ts``): status, match, found_in and the plan matched.

    The result has ``deliveries``' index and ``RESULT_COLUMNS``. Pairs are joined on one integer
    code of (patient, key) and the latest candidate picked with a numeric sort: no string sorting.
    Without a ``patient`` column a frame is matched by its trimmed MRN.
    """
    n = len(deliveries)
    status = np.full(n, LOST, dtype=object)
    match, found_in, tps_path = np.full(n, "", dtype=object), np.full(n, "", dtype=object), np.full(n, "", dtype=object)
    tps_plan_pk, archive_pk = np.full(n, np.nan), np.full(n, np.nan)
    if n and not candidates.empty:
        mrn_codes = pd.factorize(np.concatenate([
            _patients_of(deliveries).to_numpy(dtype=object), _patients_of(candidates).to_numpy(dtype=object)]))[0]
        key_codes = pd.factorize(np.concatenate([
            _normalized(deliveries["plan_label"].astype(object)).to_numpy(dtype=object),
            candidates["key"].to_numpy(dtype=object)]))[0]
        codes = mrn_codes.astype("int64") * (int(key_codes.max()) + 1) + key_codes
        ts = deliveries["ts"].to_numpy(dtype="float64")
        wanted = pd.DataFrame({"row": np.arange(n), "code": codes[:n],
                               "lo": ts - rules.lookback_days * DAY, "hi": ts + rules.skew_days * DAY})
        offered = pd.DataFrame({"candidate": np.arange(len(candidates)), "code": codes[n:],
                                "created": candidates["created_ts"].to_numpy(dtype="float64"),
                                "tier": candidates["tier"].to_numpy(dtype="int64"),
                                "tps_plan_pk": candidates["tps_plan_pk"].to_numpy(dtype="float64"),
                                "archive_pk": candidates["archive_pk"].to_numpy(dtype="float64")})
        pairs = wanted.merge(offered, on="code")
        pairs = pairs[(pairs["created"] >= pairs["lo"]) & (pairs["created"] <= pairs["hi"])]
        # Per delivery: latest created first, then archived > active > other, then the lowest pk.
        order = np.lexsort((np.nan_to_num(pairs["archive_pk"].to_numpy(), nan=np.inf),
                            np.nan_to_num(pairs["tps_plan_pk"].to_numpy(), nan=np.inf),
                            pairs["tier"].to_numpy(), -pairs["created"].to_numpy(), pairs["row"].to_numpy()))
        rows, chosen = pairs["row"].to_numpy()[order], pairs["candidate"].to_numpy()[order]
        first = np.r_[True, rows[1:] != rows[:-1]] if len(rows) else np.zeros(0, dtype=bool)
        rows, chosen = rows[first], chosen[first]
        tier = candidates["tier"].to_numpy(dtype="int64")[chosen]
        status[rows] = np.select([tier == _TIER_ARCHIVED, tier == _TIER_ACTIVE], [ARCHIVED, UNARCHIVED], default=LOST)
        match[rows] = candidates["match"].to_numpy(dtype=object)[chosen]
        found_in[rows] = candidates["where"].to_numpy(dtype=object)[chosen]
        tps_path[rows] = candidates["tps_path"].to_numpy(dtype=object)[chosen]
        tps_plan_pk[rows] = candidates["tps_plan_pk"].to_numpy(dtype="float64")[chosen]
        archive_pk[rows] = candidates["archive_pk"].to_numpy(dtype="float64")[chosen]
    return pd.DataFrame({
        "status": status, "match": match, "found_in": found_in,
        "tps_plan_pk": pd.array(tps_plan_pk, dtype="Float64").astype("Int64"), "tps_path": tps_path,
        "archive_pk": pd.array(archive_pk, dtype="Float64").astype("Int64"),
    }, index=deliveries.index, columns=RESULT_COLUMNS)


def _patients_of(frame: pd.DataFrame) -> pd.Series:
    return frame["patient"] if "patient" in frame else frame["mrn"].astype(object).str.strip()


def within(frame: pd.DataFrame, window: tuple[float, float]) -> pd.DataFrame:
    """The rows whose ``ts`` lies in ``window`` (epoch seconds, start inclusive, end exclusive)."""
    return frame[(frame["ts"] >= window[0]) & (frame["ts"] < window[1])]


def classify(
    deliveries: pd.DataFrame, candidates: pd.DataFrame, *, rules: MatchRules,
    window: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """``deliveries`` with ``is_recourse``, the match columns and ``category`` added.

    Courses are inferred from all of ``deliveries``; with ``window`` (epoch seconds, start
    inclusive, end exclusive) only the deliveries inside it are matched and returned.
    """
    frame = deliveries.assign(is_recourse=mark_recourse(deliveries, gap_days=rules.recourse_gap_days))
    if window is not None:
        frame = within(frame, window)
    frame = frame.join(match_deliveries(frame, candidates, rules=rules))
    frame["category"] = np.where(frame["is_recourse"], "recourse_", "first_course_") + frame["status"]
    return frame
