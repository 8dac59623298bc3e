"""Matching and the six categories (docs/contracts.md §2.8 and §3), on DataFrames: no database."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from connectors.rv.base import FirstDelivery
from lossdetect.services.classify import (
    ARCHIVED_PLAN_COLUMNS, TPS_PLAN_COLUMNS, MatchRules, candidates_frame, classify, deliveries_frame,
    mark_recourse, normalize_label,
)

ZONE = ZoneInfo("Asia/Shanghai")
ACTIVE = ["ToArchive", "Clinical"]


def at(year, month, day, hour=9, minute=0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=ZONE)


def delivery(mrn, label, when, course=None, uid="") -> FirstDelivery:
    return FirstDelivery(mrn=mrn, patient_name="P", plan_label=label, plan_uid=uid, course=course, first_delivery=when)


class Plans:
    """TPS and archive index rows, as the selectors build them."""

    def __init__(self):
        self.tps, self.archived = [], []

    def tps_plan(self, mrn, name, created, *, group="Clinical", trials=(), path=None):
        pk = len(self.tps) + 1
        self.tps.append((pk, name, list(trials), created.timestamp() if created else float("nan"), mrn, group,
                         path or f"Institution_1/Mount_0/Patient_{pk}"))
        return pk

    def archived_plan(self, mrn, name, created, *, trials=(), archive="A.tar.gz"):
        pk = len(self.archived) + 1
        self.archived.append((pk, name, list(trials), created.timestamp(), mrn, 100 + pk, archive))
        return pk

    def classify(self, records, rules=MatchRules()):
        deliveries = deliveries_frame(records)
        candidates = candidates_frame(
            pd.DataFrame.from_records(self.tps, columns=TPS_PLAN_COLUMNS),
            pd.DataFrame.from_records(self.archived, columns=ARCHIVED_PLAN_COLUMNS),
            active_groups=ACTIVE, mrns=set(deliveries["mrn"]))
        return classify(deliveries, candidates, rules=rules).set_index("plan_uid")


@pytest.mark.parametrize("text, expected", [
    ("LT BREAST", "lt breast"),
    ("  Lt   Breast\t", "lt breast"),
    ("ＬＴ　ＢＲＥＡＳＴ", "lt breast"),  # full-width letters and ideographic space (NFKC)
    ("STRASSE", "strasse"),
    ("Straße", "strasse"),  # casefold, not lower
    ("LEFT BREAST BOOST PHASE 2", "left breast boos"),
    ("ABCDEFGHIJKLMNO PQ", "abcdefghijklmno"),  # cut just after a word: DICOM drops the trailing space
    ("肺癌 IMRT 放疗计划 第一阶段 加量", "肺癌 imrt 放疗计划 第一阶"),
    ("", ""),
])
def test_normalize_label(text, expected):
    assert normalize_label(text) == expected


def test_each_status_and_what_it_reports():
    plans = Plans()
    plans.archived_plan("001", "LT BREAST", at(2024, 2, 1), archive="ZHANG-SAN_001_20240301.tar.gz")
    plans.tps_plan("002", "PROSTATE", at(2024, 2, 1), group="ToArchive", path="Institution_1/Mount_0/Patient_2")
    plans.tps_plan("003", "LUNG", at(2024, 2, 1), group="Research", path="Institution_4/Mount_0/Patient_3")
    result = plans.classify([
        delivery("001", "LT BREAST", at(2024, 3, 4), uid="a"),
        delivery("002", "PROSTATE", at(2024, 3, 4), uid="b"),
        delivery("003", "LUNG", at(2024, 3, 4), uid="c"),
        delivery("004", "HEAD", at(2024, 3, 4), uid="d"),
    ])
    assert result.loc["a", ["category", "match", "found_in"]].tolist() == [
        "first_course_archived", "ZHANG-SAN_001_20240301.tar.gz", ""]
    assert result.loc["b", ["category", "match", "found_in"]].tolist() == [
        "first_course_unarchived", "Institution_1/Mount_0/Patient_2", ""]
    assert result.loc["c", ["category", "match", "found_in"]].tolist() == [
        "first_course_lost", "", "Research:Institution_4/Mount_0/Patient_3"]
    assert result.loc["d", ["category", "match", "found_in"]].tolist() == ["first_course_lost", "", ""]


def test_sixteen_character_label_matches_long_plan_name():
    plans = Plans()
    plans.tps_plan("001", "Left Breast Boost Phase 2", at(2024, 2, 1))
    plans.tps_plan("002", "Left Breast Boost Phase 2", at(2024, 2, 1))
    result = plans.classify([
        delivery("001", "LEFT BREAST BOOS", at(2024, 3, 4), uid="cut"),
        delivery("002", "LEFT BREAST BOOX", at(2024, 3, 4), uid="other"),  # differs inside the 16
    ])
    assert result.loc["cut", "category"] == "first_course_unarchived"
    assert result.loc["other", "category"] == "first_course_lost"


def test_full_width_label_matches_and_trial_names_count():
    plans = Plans()
    plans.tps_plan("001", "Plan A", at(2024, 2, 1), trials=["ＩＭＲＴ　７Ｆ"])
    result = plans.classify([delivery("001", "imrt 7f", at(2024, 3, 4), uid="x")])
    assert result.loc["x", "category"] == "first_course_unarchived"


def test_mrn_is_an_exact_string_after_trimming():
    plans = Plans()
    plans.tps_plan("000123", "LUNG", at(2024, 2, 1))
    result = plans.classify([
        delivery(" 000123 ", "LUNG", at(2024, 3, 4), uid="padded"),
        delivery("123", "LUNG", at(2024, 3, 4), uid="no-zeros"),
    ])
    assert result.loc["padded", "category"] == "first_course_unarchived"
    assert result.loc["no-zeros", "category"] == "first_course_lost"


def test_creation_time_window_edges():
    plans = Plans()
    t = at(2024, 3, 4, 9, 0)
    plans.tps_plan("late", "P", t + dt.timedelta(days=1, seconds=1))  # after T + skew: created after delivery
    plans.tps_plan("skew", "P", t + dt.timedelta(hours=23))  # clocks differ: still inside
    plans.tps_plan("old", "P", t - dt.timedelta(days=365, seconds=1))
    plans.tps_plan("year", "P", t - dt.timedelta(days=365))
    plans.tps_plan("none", "P", None)  # no creation time: cannot lie in the window
    result = plans.classify([delivery(m, "P", t, uid=m) for m in ["late", "skew", "old", "year", "none"]])
    assert result["status"].to_dict() == {
        "late": "lost", "skew": "unarchived", "old": "lost", "year": "unarchived", "none": "lost"}


def test_institution_windows_apply():
    plans = Plans()
    t = at(2024, 3, 4)
    plans.tps_plan("001", "P", t - dt.timedelta(days=40))
    rules = MatchRules(lookback_days=30, skew_days=1)
    assert plans.classify([delivery("001", "P", t, uid="x")], rules=rules).loc["x", "status"] == "lost"


def test_two_plans_with_the_same_name_in_two_courses_match_their_own_delivery():
    plans = Plans()
    plans.archived_plan("001", "BREAST", at(2024, 1, 2), archive="first-course.tar.gz")
    plans.tps_plan("001", "BREAST", at(2024, 7, 1), path="Institution_1/Mount_0/Patient_9")
    result = plans.classify([
        delivery("001", "BREAST", at(2024, 1, 10), course=1, uid="c1"),
        delivery("001", "BREAST", at(2024, 7, 8), course=2, uid="c2"),
    ])
    assert result.loc["c1", ["category", "match"]].tolist() == ["first_course_archived", "first-course.tar.gz"]
    # The older archived plan of the same name lies in c2's window too; the later one is the match.
    assert result.loc["c2", ["category", "match"]].tolist() == ["recourse_unarchived", "Institution_1/Mount_0/Patient_9"]


def test_several_candidates_latest_created_wins_and_ties_prefer_archived():
    plans = Plans()
    plans.tps_plan("001", "P", at(2024, 1, 1), group="Research")
    plans.tps_plan("001", "P", at(2024, 2, 1), group="Clinical", path="newest")
    plans.tps_plan("002", "P", at(2024, 2, 1), group="Clinical", path="restored")
    plans.archived_plan("002", "P", at(2024, 2, 1), archive="same-plan.tar.gz")  # same plan, archived
    plans.tps_plan("003", "P", at(2024, 2, 1), group="Research", path="copy")
    plans.tps_plan("003", "P", at(2024, 2, 1), group="ToArchive", path="original")
    result = plans.classify([delivery(m, "P", at(2024, 3, 4), uid=m) for m in ["001", "002", "003"]])
    assert result.loc["001", ["status", "match"]].tolist() == ["unarchived", "newest"]
    assert result.loc["002", ["status", "match"]].tolist() == ["archived", "same-plan.tar.gz"]
    assert result.loc["003", ["status", "match"]].tolist() == ["unarchived", "original"]


def test_plan_moved_to_research_is_lost_with_where_it_sits():
    plans = Plans()
    plans.tps_plan("001", "P", at(2024, 2, 1), group="Research", path="Institution_7/Mount_0/Patient_1")
    plans.tps_plan("002", "P", at(2024, 2, 1), group="Unlisted", path="Institution_8/Mount_0/Patient_2")
    result = plans.classify([delivery("001", "P", at(2024, 3, 4), uid="a"), delivery("002", "P", at(2024, 3, 4), uid="b")])
    assert result.loc["a", ["category", "found_in"]].tolist() == [
        "first_course_lost", "Research:Institution_7/Mount_0/Patient_1"]
    assert result.loc["b", "found_in"] == "Unlisted:Institution_8/Mount_0/Patient_2"


def test_recourse_gap_rule_uses_all_history():
    frame = deliveries_frame([
        delivery("001", "A", at(2023, 1, 1), uid="a1"),
        delivery("001", "B", at(2023, 1, 20), uid="a2"),  # boost, same course
        delivery("001", "C", at(2023, 4, 20), uid="a3"),  # exactly 90 days after the latest: same course
        delivery("001", "D", at(2023, 7, 20), uid="a4"),  # 91 days after: a new course
        delivery("002", "A", at(2023, 1, 1), uid="b1"),
        delivery("002", "B", at(2023, 6, 1), course=1, uid="b2"),  # the R&V course wins over the gap
        delivery("003", "A", at(2023, 1, 1), course=2, uid="c1"),
    ])
    recourse = dict(zip(frame["plan_uid"], mark_recourse(frame, gap_days=90)))
    assert recourse == {"a1": False, "a2": False, "a3": False, "a4": True, "b1": False, "b2": False, "c1": True}
    shorter = dict(zip(frame["plan_uid"], mark_recourse(frame, gap_days=30)))
    assert shorter["a3"] and not shorter["a2"]


def test_window_limits_findings_but_history_decides_the_course():
    plans = Plans()
    result = plans.classify([delivery("001", "A", at(2023, 1, 1), uid="old"),
                             delivery("001", "B", at(2024, 3, 4), uid="new")])
    assert result.loc["new", "category"] == "recourse_lost"
    frame = deliveries_frame([delivery("001", "A", at(2023, 1, 1), uid="old"),
                              delivery("001", "B", at(2024, 3, 4), uid="new")])
    window = (at(2024, 3, 1).timestamp(), at(2024, 3, 8).timestamp())
    inside = classify(frame, candidates_frame(pd.DataFrame(columns=TPS_PLAN_COLUMNS),
                                              pd.DataFrame(columns=ARCHIVED_PLAN_COLUMNS),
                                              active_groups=ACTIVE, mrns={"001"}),
                      rules=MatchRules(), window=window)
    assert inside["plan_uid"].tolist() == ["new"]
    assert inside["category"].tolist() == ["recourse_lost"]


def test_duplicate_records_of_one_plan_keep_the_earliest():
    frame = deliveries_frame([
        delivery("001", "A", at(2024, 3, 5), uid="u"),
        delivery("001", "A", at(2024, 3, 4), uid="u"),
        delivery("001", "B", at(2024, 3, 4)),
        delivery("001", "B", at(2024, 3, 4)),
    ])
    assert len(frame) == 2
    assert frame.loc[frame["plan_uid"] == "u", "first_delivery"].item() == at(2024, 3, 4)
