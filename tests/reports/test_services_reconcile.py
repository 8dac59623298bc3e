"""Reconciliation: a listing with missing, extra, duplicate and corrupt files against a known index."""
from __future__ import annotations

import hashlib

import pytest

from inventory.models import ArchiveCopy
from audit.models import AuditEvent
from reports.models import ReconciliationEntry, ReconciliationImport
from reports.services.reconcile import ReconcileError, import_listing, read_listing, reconcile_target
from tests.factories import ArchiveCopyFactory, ArchiveFactory, InstitutionFactory, StorageTargetFactory, TpsPatientFactory

pytestmark = pytest.mark.django_db
Outcome = ReconciliationEntry.Outcome


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


ZHANG = "ZHANG-SAN_000123_20240101000000.tar.gz"
LI = "LI-SI_000456_20240102000000.tar.gz"
WANG = "WANG-WU_000789_20240103000000.tar.gz"
ZHAO = "ZHAO-LIU_000999_20240104000000.tar.gz"


@pytest.fixture
def index(tmp_path):
    inst = InstitutionFactory(code="PUMCH")
    target = StorageTargetFactory(institution=inst, name="array", url=f"file://{tmp_path / 'array'}")
    for name, mrn, size in [(ZHANG, "000123", 1000), (LI, "000456", 2000), (WANG, "000789", 3000),
                            (ZHAO, "000999", 4000)]:
        ArchiveCopyFactory(archive=ArchiveFactory(institution=inst, name=name, mrn=mrn, size=size, checksum=sha(name)),
                           target=target)
    TpsPatientFactory(institution=inst, mrn="H0001", group="Clinical")  # a historical patient still in the TPS
    return inst, target


LISTING = f"""name,size,sha256
{ZHANG},1000,{sha(ZHANG)}
2019/{ZHANG},1000,
{LI},1999,
{WANG},3000,{sha("something else")}
old/H0001 CHEN 2015.tgz,5000,{sha("chen")}
old/copy of H0001.tgz,5000,{sha("chen")}
NEW-PAT_555_20200101000000.tar.gz,10,
random notes.txt,12,
broken.tar.gz,abc,
{ZHANG}.sha256,80,
empty_H0001.tar.gz,0,
bad-sum.tar.gz,10,xyz
"""


def outcomes(reconciliation: ReconciliationImport) -> dict[str, tuple[str, str, int | None]]:
    return {e.path or e.archive_name: (e.outcome, e.mrn, e.line) for e in reconciliation.entries.all()}


def test_listing_with_missing_extra_duplicate_and_corrupt_files(index):
    inst, _target = index
    result = import_listing(institution=inst, data=LISTING.encode(), listing_name="old-archive.csv", actor="qa")
    assert result.status == ReconciliationImport.Status.DONE and result.error == ""
    assert outcomes(result) == {
        ZHANG: (Outcome.MATCHED, "000123", 2),
        f"2019/{ZHANG}": (Outcome.DUPLICATE, "", 3),
        LI: (Outcome.SIZE_MISMATCH, "000456", 4),
        WANG: (Outcome.CHECKSUM_MISMATCH, "000789", 5),
        "old/H0001 CHEN 2015.tgz": (Outcome.ONLY_IN_LISTING, "H0001", 6),
        "old/copy of H0001.tgz": (Outcome.DUPLICATE, "", 7),
        "NEW-PAT_555_20200101000000.tar.gz": (Outcome.ONLY_IN_LISTING, "555", 8),
        "random notes.txt": (Outcome.UNPARSEABLE, "", 9),
        "broken.tar.gz": (Outcome.UNREADABLE, "", 10),
        "empty_H0001.tar.gz": (Outcome.UNREADABLE, "H0001", 12),
        "bad-sum.tar.gz": (Outcome.UNREADABLE, "", 13),
        ZHAO: (Outcome.ONLY_IN_PDAS, "000999", None),
    }
    assert (result.files, result.skipped) == (11, 1)  # the .sha256 sidecar is not an archive
    assert result.counts == {"matched": 1, "only_in_listing": 2, "only_in_pdas": 1, "duplicate": 2,
                             "size_mismatch": 1, "checksum_mismatch": 1, "unparseable": 1, "unreadable": 3}
    assert result.needs_attention == 11
    details = {e.path: e.detail for e in result.entries.all()}
    assert details["broken.tar.gz"] == "line 10: size 'abc' is not a whole number of bytes"
    assert details["bad-sum.tar.gz"] == "line 13: sha256 'xyz' is not 64 hexadecimal digits"
    assert details[LI] == "listed 1999 bytes, PDAS recorded 2000"
    assert "line 3" in details[f"2019/{ZHANG}"] and ZHANG in details[f"2019/{ZHANG}"]
    assert details["NEW-PAT_555_20200101000000.tar.gz"] == "patient not known to PDAS"
    assert details["old/H0001 CHEN 2015.tgz"] == "not a PDAS archive name; patient found by MRN"


def test_import_is_audited_with_the_patients(index):
    inst, _ = index
    result = import_listing(institution=inst, data=LISTING.encode(), listing_name="old-archive.csv", actor="qa")
    event = AuditEvent.objects.get(event="reconcile.import")
    assert (event.actor, event.institution, event.object_id) == ("qa", "PUMCH", str(result.pk))
    assert event.mrns == ["000123", "000456", "000789", "000999", "555", "H0001"]
    assert event.detail["counts"]["duplicate"] == 2


def test_tsv_in_gb18030_with_chinese_names_and_a_header_in_any_order(index):
    inst, _ = index
    listing = f"SHA256\tSize\tFile Name\n\t1000\t{ZHANG}\n\t77\t张三 000123 2015.tar.gz\n".encode("gb18030")
    result = import_listing(institution=inst, data=listing, listing_name="列表.tsv", actor="qa")
    found = outcomes(result)
    assert found[ZHANG][0] == Outcome.MATCHED
    assert found["张三 000123 2015.tar.gz"] == (Outcome.ONLY_IN_LISTING, "000123", 3)
    detail = result.entries.get(file_name="张三 000123 2015.tar.gz").detail
    assert "PDAS has 1 archive(s) of this patient under other names" in detail


def test_a_name_holding_two_known_mrns_names_no_patient(index):
    inst, _ = index
    result = import_listing(institution=inst, data=b"name,size\n000123+000456.zip,9\n", listing_name="l.csv",
                            actor="qa")
    entry = result.entries.get(line=2)
    assert entry.outcome == Outcome.UNPARSEABLE and "000123, 000456" in entry.detail


@pytest.mark.parametrize(("data", "error"), [
    (b"", "l.csv: the listing is empty"),
    (b"\n\n", "l.csv: the listing is empty"),
    (b"file,bytes\n", "l.csv: no file rows after the header"),
    (b"size,sha256\nx,1\n", "l.csv: line 1: the header has no name column (one of name, file_name, filename, file, "
                            "path)"),
    (b"name,sha256\nx,1\n", "l.csv: line 1: the header has no size column (one of size, bytes, size_bytes)"),
    (b"name,file,size\nx,y,1\n", "l.csv: line 1: the header has several name columns (name, file)"),
    (b"name,size\n\x81\xff\xfe,1\n", "l.csv: neither UTF-8 nor GB18030 (undecodable byte at offset 10)"),
])
def test_a_listing_that_cannot_be_read_is_refused_in_one_line(data, error):
    with pytest.raises(ReconcileError) as caught:
        read_listing(data, name="l.csv")
    assert str(caught.value) == error


def test_short_rows_and_empty_names_are_unreadable_rows():
    files = read_listing(b"name,size,sha256\nonly-a-name\n,5,\n", name="l.csv")
    assert [f.problem for f in files] == ["line 2: 1 fields, the header has 3", "line 3: the file name is empty"]


def test_a_failed_import_is_stored_and_audited(index):
    inst, _ = index
    result = import_listing(institution=inst, data=b"", listing_name="l.csv", actor="qa")
    assert result.status == ReconciliationImport.Status.FAILED and result.error == "l.csv: the listing is empty"
    assert not result.entries.exists()
    event = AuditEvent.objects.get(event="reconcile.import")
    assert event.outcome == AuditEvent.Outcome.FAILED and event.detail["error"] == result.error


def test_a_target_of_another_institution_is_refused(index):
    inst, _ = index
    other = StorageTargetFactory(institution=InstitutionFactory(code="OTHER"), name="x")
    result = import_listing(institution=inst, data=LISTING.encode(), listing_name="l.csv", target=other, actor="qa")
    assert result.error == "storage x belongs to OTHER, not PUMCH"


def test_listing_of_a_target_compares_with_the_copies_on_it(index, tmp_path):
    inst, target = index
    array = tmp_path / "array"
    array.mkdir()
    (array / ZHANG).write_bytes(b"z" * 1000)
    (array / f"{ZHANG}.sha256").write_text(f"{sha(ZHANG)}  {ZHANG}\n")
    (array / f".{LI}.0123456789ab.part").write_bytes(b"half")  # an upload under way
    (array / LI).write_bytes(b"l" * 10)  # truncated
    (array / "HAND-MADE_000123.tar.gz").write_bytes(b"h" * 5)
    ArchiveCopy.objects.filter(archive__name=WANG).update(status=ArchiveCopy.Status.MISSING)  # PDAS knows it is gone
    result = reconcile_target(institution=inst, target=target, actor="qa")
    assert result.source == ReconciliationImport.Source.TARGET and result.listing_name == "array"
    assert {k: v[0] for k, v in outcomes(result).items()} == {
        ZHANG: Outcome.MATCHED, LI: Outcome.SIZE_MISMATCH, "HAND-MADE_000123.tar.gz": Outcome.ONLY_IN_LISTING,
        ZHAO: Outcome.ONLY_IN_PDAS,
    }
    assert result.skipped == 2


def test_an_empty_or_unreachable_target_is_unknown_not_everything_missing(index, tmp_path):
    inst, target = index
    result = reconcile_target(institution=inst, target=target, actor="qa")
    assert result.status == ReconciliationImport.Status.FAILED and "storage array:" in result.error
    (tmp_path / "array").mkdir()
    result = reconcile_target(institution=inst, target=target, actor="qa")
    assert result.status == ReconciliationImport.Status.FAILED
    assert result.error.startswith("storage array: the listing is empty")


def test_a_target_file_name_that_is_not_utf8_is_an_unreadable_row(index, tmp_path):
    inst, target = index
    array = tmp_path / "array"
    array.mkdir()
    (array / ZHANG).write_bytes(b"z" * 1000)
    with open(bytes(array) + b"/\xc0\xfe_000123.tar.gz", "wb") as raw_name:  # GBK-era bytes, not UTF-8
        raw_name.write(b"x")
    result = reconcile_target(institution=inst, target=target, actor="qa")
    entry = result.entries.get(outcome=Outcome.UNREADABLE)
    assert entry.path == "\ufffd\ufffd_000123.tar.gz" and "is not valid UTF-8" in entry.detail


def test_a_field_over_128_kib_is_one_unreadable_row():
    files = read_listing(b"name,size\na.tar.gz,5\n" + b"b" * 200_000 + b",6\nc.tar.gz,7\n", name="l.csv")
    assert [(f.path, f.problem) for f in files] == [
        ("a.tar.gz", ""), ("", "line 3: not CSV (field larger than field limit (131072))"), ("c.tar.gz", "")]
