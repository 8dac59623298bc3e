"""Curation of generated pending groups: every category, the odd inputs real sites have, the run itself."""
from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inventory.models import TpsPatient
from connectors.tps.base import TpsError
from audit.models import AuditEvent
from curation.models import CurationRun, NamingRule, TransitionalPattern
from curation.services.curate import run_curation
from demo_site import ImageSetSpec, PlanSpec, edit_file, truncate_file
from demo_site.rv import rv_plan, write_csv

pytestmark = pytest.mark.django_db


def curate(site, **kwargs) -> CurationRun:
    return run_curation(institution=site.inst, actor="tester", **kwargs)


def by_path(run: CurationRun) -> dict[str, dict[str, list[str]]]:
    """{tps_path: {category: reasons}} of a run."""
    found: dict[str, dict[str, list[str]]] = {}
    for finding in run.findings.all():
        found.setdefault(finding.tps_path, {})[finding.category] = finding.reasons
    return found


def test_a_clean_patient_is_ready_with_a_chinese_gb18030_name(site, django_capture_on_commit_callbacks):
    path = site.add(7, mrn="000123", last_name="张", first_name="三", encoding="gb18030",
                    plans=[PlanSpec(0, "左乳 IMRT", trials=["调强"]), PlanSpec(1, "RT BREAST")])
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run = curate(site)
    assert run.status == "done"
    assert by_path(run) == {path: {"ready": []}}
    finding = run.findings.get()
    assert finding.mrn == "000123" and finding.patient_name == "张, 三" and finding.fingerprint
    assert run.counts["ready"] == 1 and run.counts["needs_person"] == 0
    assert not callbacks and not mail.outbox  # nothing to fix, nobody mailed


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"first_name": ""}, "first name is empty"),
    ({"last_name": ""}, "last name is empty"),
    ({"mrn": ""}, "MRN is missing"),
    ({"last_name": "WANG/LI"}, "patient name 'WANG/LI^FIRST': patient name has a character that breaks file systems"),
    ({"first_name": "MING*"}, "(found '*')"),
    ({"last_name": "王\x01"}, "(found '\\x01')"),
    ({"mrn": "12:34"}, "MRN '12:34': MRN has a character"),
    ({"plans": [PlanSpec(0, "PTV 50/25")]}, "plan Plan_0 'PTV 50/25': plan name has a character"),
    ({"plans": [PlanSpec(0, "")]}, "plan Plan_0 '': plan name is empty"),
    ({"plans": [PlanSpec(0, "LUNG", trials=["a|b"])]}, "plan Plan_0 'LUNG' trial 'a|b': trial name has a character"),
])
def test_naming_rules_flag_names_in_red(site, kwargs, expected):
    path = site.add(7, **{"mrn": "000123", **kwargs})
    found = by_path(curate(site))[path]
    assert list(found) == ["naming"]
    assert any(expected in reason for reason in found["naming"]), found["naming"]
    assert all("\n" not in reason for reason in found["naming"])


def test_the_sites_mrn_pattern_is_checked_as_a_whole(site):
    site.inst.mrn_pattern = r"[0-9]{6}"
    site.inst.save()
    good = site.add(1, mrn="000123")
    longer = site.add(2, mrn="0001234")
    found = by_path(curate(site))
    assert found[good] == {"ready": []}
    assert found[longer]["naming"] == ["MRN '0001234' does not match the site's MRN pattern '[0-9]{6}'"]


def test_two_patients_with_the_same_mrn_each_name_the_other(site):
    first = site.add(1, mrn="000555", last_name="LI", first_name="NA")
    second = site.add(2, mrn="000555", last_name="LI", first_name="NA")
    site.add(3, mrn="000555", group="Clinical")  # the same MRN outside the pending group is normal
    found = by_path(curate(site))
    assert found[first]["naming"] == [f"MRN '000555' is also the MRN of {second} (LI, NA) in the pending group"]
    assert found[second]["naming"] == [f"MRN '000555' is also the MRN of {first} (LI, NA) in the pending group"]


def test_two_folders_whose_mrns_are_aliases_are_treated_like_one_mrn(site):
    from lossdetect.models import MrnAlias

    MrnAlias.objects.create(institution=site.inst, old_mrn="000555", mrn="000556", reason="merged")
    MrnAlias.objects.create(institution=site.inst, old_mrn="000556", mrn="000557", reason="merged again")
    old = site.add(1, mrn="000555", last_name="LI", first_name="NA")
    new = site.add(2, mrn="000557", last_name="LI", first_name="NA")
    unrelated = site.add(3, mrn="000558", last_name="LI", first_name="NA")
    found = by_path(curate(site))
    assert found[old]["naming"] == [f"MRN '000555' is an alias of MRN '000557' of {new} (LI, NA) in the pending "
                                    "group (MRN aliases: one patient)"]
    assert found[new]["naming"] == [f"MRN '000557' is an alias of MRN '000555' of {old} (LI, NA) in the pending "
                                    "group (MRN aliases: one patient)"]
    assert found[unrelated] == {"ready": []}


def test_a_delivery_under_a_patients_new_mrn_counts_for_its_plans_under_the_old_one(site, tmp_path):
    from lossdetect.models import MrnAlias

    created = "2024-03-01 10:00:00"
    path = site.add(1, mrn="000111", plans=[PlanSpec(0, "LT BREAST", created=created, written=created),
                                            PlanSpec(1, "LT BREAST 2", created=created, written=created)])
    rv = write_csv(tmp_path / "rv.csv", [
        rv_plan("000999", "LT BREAST", dt.datetime(2024, 3, 5, 9)),  # the R&V system knows the new MRN
        rv_plan("000111", "LT BREAST 2", dt.datetime(2024, 3, 6, 9), tps="Monaco"),  # another TPS's plan
    ])
    site.inst.rv_url = f"csv:{rv}"
    site.inst.save()
    assert by_path(curate(site))[path] == {"ready": []}  # no alias: nothing of this patient was delivered
    MrnAlias.objects.create(institution=site.inst, old_mrn="000111", mrn="000999")
    assert by_path(curate(site))[path]["transitional"] == [
        "plan Plan_1 'LT BREAST 2' was never delivered, while 'LT BREAST' was (R&V)"]


def test_transitional_plans_by_name(site):
    names = ["LUNG", "CopyOf_1_LUNG", "lung test", "QA", "Copy of LUNG", "TESTICLE"]
    path = site.add(1, plans=[PlanSpec(i, name) for i, name in enumerate(names)])
    run = curate(site)
    finding = run.findings.get(tps_path=path, category="transitional")
    assert finding.plan_ids == [1, 2, 3, 4]  # "TESTICLE" is not a test plan: the default is a whole word
    assert finding.reasons[0] == ("plan Plan_1 'CopyOf_1_LUNG' looks like an intermediate plan: "
                                  "a copy Pinnacle made (CopyOf_)")


def test_plans_never_delivered_while_a_sibling_was_are_transitional(site, tmp_path):
    created = "2024-03-01 10:00:00"
    delivered = site.add(1, mrn="000111", plans=[PlanSpec(0, "LT BREAST", created=created, written=created),
                                                 PlanSpec(1, "LT BREAST 2", created=created, written=created)])
    untreated = site.add(2, mrn="000222", plans=[PlanSpec(0, "PROSTATE", created=created, written=created),
                                                 PlanSpec(1, "PROSTATE B", created=created, written=created)])
    both = site.add(3, mrn="000333", plans=[PlanSpec(0, "A", created=created, written=created),
                                            PlanSpec(1, "B", created=created, written=created)])
    rv = write_csv(tmp_path / "rv.csv", [
        rv_plan("000111", "LT BREAST", dt.datetime(2024, 3, 5, 9)),
        rv_plan("000333", "A", dt.datetime(2024, 3, 5, 9)), rv_plan("000333", "B", dt.datetime(2024, 3, 6, 9)),
        rv_plan("999999", "ELSEWHERE", dt.datetime(2024, 3, 6, 9)),
    ])
    site.inst.rv_url = f"csv:{rv}"
    site.inst.save()
    found = by_path(curate(site))
    assert found[delivered]["transitional"] == [
        "plan Plan_1 'LT BREAST 2' was never delivered, while 'LT BREAST' was (R&V)"]
    assert found[untreated] == {"ready": []}  # nothing delivered: no sibling to compare with
    assert found[both] == {"ready": []}


def test_an_unreadable_rv_source_is_a_warning_not_a_verdict(site, tmp_path):
    path = site.add(1, plans=[PlanSpec(0, "A"), PlanSpec(1, "B")])
    site.inst.rv_url = f"csv:{tmp_path / 'missing.csv'}"
    site.inst.save()
    run = curate(site)
    assert by_path(run)[path] == {"ready": []}
    assert len(run.warnings) == 1 and "R&V source cannot be read" in run.warnings[0]


def test_image_only_patients_are_grey(site):
    images = site.add(1, plans=[], image_sets=[ImageSetSpec(0, "CT", z_dim=98), ImageSetSpec(1, "MR", z_dim=40)])
    empty = site.add(2, plans=[], image_sets=[])
    found = by_path(curate(site))
    assert found[images] == {"image_only": ["image sets but no plan: CT (98 images), MR (40 images)"]}
    assert found[empty] == {"image_only": ["no plans and no image sets"]}


def test_unreadable_patients_keep_the_reason_verbatim(site):
    missing_plan = site.add(1, plans=[PlanSpec(0, "A"), PlanSpec(1, "MISSING", directory=False)])
    truncated = site.add(2, last_name="")  # would be a naming finding too, if it could be trusted
    truncate_file(site.root / truncated / "Patient", keep=60)
    run = curate(site)
    found = by_path(run)
    assert found[missing_plan] == {"unreadable": [site.row(missing_plan).read_error]}
    assert "plan Plan_1 'MISSING' is in PlanList but has no Plan_1 directory" in found[missing_plan]["unreadable"][0]
    assert list(found[truncated]) == ["unreadable"] and found[truncated]["unreadable"][0].startswith("Patient: ")


def test_an_unchanged_pdas_restore_is_green_and_a_changed_one_is_curated_again(site):
    path = site.add(1)
    curate(site)
    row = site.row(path)
    archive = site.verified_archive_of(path, name="LAST-FIRST_000123_20190301100000.tar.gz")
    TpsPatient.objects.filter(pk=row.pk).update(restored_from=archive, restored_fingerprint=row.fingerprint)
    found = by_path(curate(site))
    assert found[path] == {"restored": [
        "restored by PDAS from LAST-FIRST_000123_20190301100000.tar.gz and unchanged since: not archived again"]}

    edit_file(site.root / path / "Plan_0" / "plan.roi", append=b"\n")
    found = by_path(curate(site))
    assert list(found[path]) == ["ready"]  # edited after the restore: its content is new


def test_duplicates_by_fingerprint_and_by_identical_content(site):
    same_files = site.add(1, mrn="000001")
    same_bytes = site.add(2, mrn="000002")
    different = site.add(3, mrn="000003")
    curate(site)
    site.verified_archive_of(same_files, name="A.tar.gz", source_fingerprint=site.row(same_files).fingerprint,
                             manifest={})
    site.verified_archive_of(same_bytes, name="B.tar.gz")  # new mtimes (a hand restore), same bytes
    site.verified_archive_of(different, name="C.tar.gz")
    site.verified_archive_of(different, name="D.tar.gz", status="failed",
                             source_fingerprint=site.row(different).fingerprint)
    roi = site.root / different / "Plan_0" / "plan.roi"
    roi.write_bytes(roi.read_bytes().replace(b"PTV", b"CTV"))  # same size: only the sha256 tells
    found = by_path(curate(site))
    assert found[same_files] == {"duplicate": ["the same files (names, sizes, times) are in verified archive A.tar.gz"]}
    assert found[same_bytes] == {"duplicate": [
        "identical content (every file's sha256) is in verified archive B.tar.gz"]}
    assert found[different] == {"ready": []}  # same sizes, other bytes; the failed archive does not count


def test_an_archive_under_another_mrn_of_the_patient_counts_as_under_its_own(site):
    """Archived under one MRN, in the pending group under another, the two MRNs aliases of each other: found as
    already archived the same as with one MRN, in both directions and along a chain, both numbers named."""
    from lossdetect.models import MrnAlias

    same_files = site.add(1, mrn="000201")  # archived under 000101 -> 000201
    same_bytes = site.add(2, mrn="000102")  # archived under 000302, along 000102 -> 000202 -> 000302
    unfinished = site.add(3, mrn="000203")  # a run under 000103 stopped before moving the originals
    stranger = site.add(4, mrn="000204")  # an archive of 000104 with the same files, and no alias
    curate(site)
    site.verified_archive_of(same_files, name="A.tar.gz", mrn="000101", manifest={},
                             source_fingerprint=site.row(same_files).fingerprint)
    site.verified_archive_of(same_bytes, name="B.tar.gz", mrn="000302")
    site.verified_archive_of(unfinished, name="C.tar.gz", mrn="000103", patient=site.row(unfinished),
                             source_fingerprint=site.row(unfinished).fingerprint)
    site.verified_archive_of(stranger, name="D.tar.gz", mrn="000104", manifest={},
                             source_fingerprint=site.row(stranger).fingerprint)
    found = by_path(curate(site))
    assert [found[path] for path in (same_files, same_bytes, unfinished, stranger)] == [{"ready": []}] * 4

    for old, new in (("000101", "000201"), ("000102", "000202"), ("000202", "000302"), ("000103", "000203")):
        MrnAlias.objects.create(institution=site.inst, old_mrn=old, mrn=new)
    found = by_path(curate(site))
    assert found[same_files] == {"duplicate": [
        "the same files (names, sizes, times) are in verified archive A.tar.gz (archived under MRN '000101', an "
        "MRN alias of this patient's '000201')"]}
    assert found[same_bytes] == {"duplicate": [
        "identical content (every file's sha256) is in verified archive B.tar.gz (archived under MRN '000302', an "
        "MRN alias of this patient's '000102')"]}
    assert found[unfinished] == {"ready": [
        "archived in C.tar.gz (archived under MRN '000103', an MRN alias of this patient's '000203') by a run that "
        "stopped before moving the originals: the next run checks the copies on their targets again and finishes "
        "the removal"]}
    assert found[stranger] == {"ready": []}  # another patient's number: never a duplicate


def test_a_restore_of_an_archive_under_another_mrn_of_the_patient_is_restored_with_both_numbers(site):
    """"Restored" is known by the restore's record, not by MRN: an alias changes nothing but the words."""
    from lossdetect.models import MrnAlias

    path = site.add(1, mrn="000201")
    curate(site)
    row = site.row(path)
    archive = site.verified_archive_of(path, name="OLD_000101.tar.gz", mrn="000101")
    TpsPatient.objects.filter(pk=row.pk).update(restored_from=archive, restored_fingerprint=row.fingerprint)
    assert by_path(curate(site))[path] == {"restored": [
        "restored by PDAS from OLD_000101.tar.gz (archived under MRN '000101'; the folder's MRN is '000201') and "
        "unchanged since: not archived again"]}
    MrnAlias.objects.create(institution=site.inst, old_mrn="000101", mrn="000201")
    assert by_path(curate(site))[path] == {"restored": [
        "restored by PDAS from OLD_000101.tar.gz (archived under MRN '000101', an MRN alias of this patient's "
        "'000201') and unchanged since: not archived again"]}


@pytest.mark.parametrize("copy_status", ["missing", "corrupt", "unreachable"])
def test_an_archive_whose_only_copy_is_gone_holds_nobody_back(site, copy_status):
    """Verified once, its only copy now bad: the patient is ready to be archived again, not a duplicate."""
    path = site.add(1, mrn="000001")
    curate(site)
    site.verified_archive_of(path, name="A.tar.gz", source_fingerprint=site.row(path).fingerprint,
                             copy_status=copy_status)
    assert by_path(curate(site))[path] == {"ready": []}


def test_several_findings_are_listed_once_per_category(site):
    path = site.add(1, mrn="", plans=[PlanSpec(0, "CopyOf_1_A"), PlanSpec(1, "B/C")])
    finding = {f.category: f for f in curate(site).findings.filter(tps_path=path)}
    assert sorted(finding) == ["naming", "transitional"]
    assert finding["naming"].reasons == ["MRN is missing", "plan Plan_1 'B/C': plan name has a character that breaks "
                                         "file systems (/ \\ : * ? \" < > | or a control character) (found '/')"]
    assert finding["naming"].plan_ids == [1] and finding["transitional"].plan_ids == [0]


def test_default_rules_are_created_once_and_edits_change_the_result(site):
    path = site.add(1, plans=[PlanSpec(0, "PTV 50/25")])
    assert list(by_path(curate(site))[path]) == ["naming"]
    assert NamingRule.objects.filter(institution=site.inst).count() == 8
    assert TransitionalPattern.objects.filter(institution=site.inst).count() == 4

    plan_characters = NamingRule.objects.filter(institution=site.inst, applies_to="plan_name", mode="must_not_match")
    plan_characters.update(enabled=False)
    TransitionalPattern.objects.create(institution=site.inst, regex=r"/25$", message="a fraction-scheme trial")
    found = by_path(curate(site))[path]
    assert found == {"transitional": [
        "plan Plan_0 'PTV 50/25' looks like an intermediate plan: a fraction-scheme trial"]}
    assert NamingRule.objects.filter(institution=site.inst).count() == 8  # disabled rules stay; no new defaults


def test_a_bad_rule_saved_behind_the_admins_back_is_a_warning(site):
    site.add(1)
    curate(site)
    NamingRule.objects.create(institution=site.inst, applies_to="mrn", regex="[0-9", message="x")
    run = curate(site)
    assert run.status == "done" and any("bad regular expression" in w for w in run.warnings)


def test_an_unreadable_tps_fails_the_run_and_raises(site):
    site.add(1)
    site.inst.tps_url = f"file://{site.root}/gone"
    site.inst.save()
    with pytest.raises(TpsError):
        curate(site)
    run = CurationRun.objects.get()
    assert run.status == "failed" and run.error and not run.findings.exists()
    assert AuditEvent.objects.filter(event="curation.run", outcome="failed").exists()


def test_a_pending_group_the_tps_lacks_is_a_configuration_error(site):
    site.add(1, group="Clinical")
    with pytest.raises(TpsError, match="pending_group 'ToArchive' is not a group of the TPS"):
        curate(site)


def test_a_repeat_run_rereads_nothing_and_queries_do_not_grow_with_patients(site):
    for n in range(1, 4):
        site.add(n, mrn=f"00000{n}")
    first = curate(site)
    assert first.counts["patients_parsed"] == 3
    with CaptureQueriesContext(connection) as small:
        repeat = curate(site)
    assert repeat.counts["patients_parsed"] == 0 and repeat.counts["patients_unchanged"] == 3
    for n in range(4, 20):
        site.add(n, mrn=f"0000{n:02d}")
    curate(site)
    with CaptureQueriesContext(connection) as large:
        curate(site)
    # The sync writes in chunks and the findings in batches; nothing is done per patient.
    assert len(large.captured_queries) == len(small.captured_queries)


def test_the_run_is_audited_and_findings_are_mailed_with_a_link(site, settings, django_capture_on_commit_callbacks):
    settings.PDAS_BASE_URL = "https://pdas.example.org"
    site.add(1, mrn="000123")
    site.add(2, mrn="000124", first_name="")
    with django_capture_on_commit_callbacks(execute=True):
        run = curate(site)
    event = AuditEvent.objects.filter(event="curation.run").latest("id")
    assert event.mrns == ["000123", "000124"] and event.detail["needs_person"] == 1
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["physics@example.org"] and "1 patient(s)" in message.subject
    assert "000124" in message.body and "000123" not in message.body and "FIRST" not in message.body
    assert "https://pdas.example.org/curation/?institution=PUMCH&tab=naming" in message.body
    assert AuditEvent.objects.filter(event="curation.notify", mrns=["000124"]).exists()
    assert run.counts["naming"] == 1


def test_findings_of_old_runs_are_pruned(site, monkeypatch):
    monkeypatch.setattr("curation.services.curate.KEEP_FINDINGS_OF_RUNS", 2)
    site.add(1)
    runs = [curate(site)] + [curate(site, refresh_tps=False) for _ in range(3)]
    assert [r.findings.count() for r in runs] == [0, 0, 1, 1]
    assert all(CurationRun.objects.get(pk=r.pk).counts["ready"] == 1 for r in runs)
