"""``manage.py scan_losses`` for an institution whose R&V source is a DICOM node (``dicom-qr://``).

The node is the test Orthanc holding ``tests/rv_dicom.py``'s objects; the TPS knows one of the
window's plans. A node that refuses PDAS makes the scan fail ("losses unknown"), never "0 lost".
"""
from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from tests import rv_dicom as data
from tests.commands import run_command
from tests.factories import InstitutionFactory, TpsPatientFactory, TpsPlanFactory

ZONE = ZoneInfo("Asia/Shanghai")
ARGS = ["--institution", "PUMCH", "--from", "2024-03-04", "--to", "2024-03-10", "--no-refresh", "--json"]
pytestmark = pytest.mark.servers


def institution(rv_url: str):
    inst = InstitutionFactory(code="PUMCH", rv_url=rv_url)
    patient = TpsPatientFactory(institution=inst, mrn=data.CHINESE.mrn, group="Clinical", last_name="张",
                                first_name="三")
    TpsPlanFactory(patient=patient, name=data.CHINESE.label, created=dt.datetime(2024, 2, 26, 10, tzinfo=ZONE))
    return inst


@pytest.mark.parametrize("rv_node", ["orthanc"], indirect=True)
def test_a_scan_reads_its_first_deliveries_from_a_dicom_node(db, rv_node):
    institution(rv_node.url())
    code, out, err = run_command("scan_losses", *ARGS)
    assert code == 1  # plans the TPS never had were delivered
    result = json.loads(out)
    categories = {(f["mrn"], f["plan_label"]): f["category"] for f in result["findings"]}
    assert categories == {
        ("000123", "左乳 IMRT"): "first_course_unarchived",  # in the TPS, not archived yet
        ("000790", "ABROAD"): "first_course_lost",
        ("000791", "RECORDS APART"): "first_course_lost",
        ("000792", "SUMMARY ONLY"): "first_course_lost",
        ("000793", "NO TIME"): "first_course_lost",
    }
    [other] = result["other_tps"]
    assert (other["mrn"], other["planning_system"]) == ("000456", "Elekta Monaco")
    assert result["summary"]["source_problems"] == 2  # the untimed record and the plan nobody holds
    assert "names RT Plan 1.2.826.0.1.3680043.10.1138.0.404, which is not on the node" in err


@pytest.mark.parametrize("rv_node", ["orthanc"], indirect=True)
def test_a_node_that_refuses_pdas_makes_the_losses_unknown(db, rv_node):
    institution(rv_node.url(aet="NOT-RVARCH"))
    code, out, err = run_command("scan_losses", *ARGS)
    assert code == 2
    assert json.loads(out)["status"] == "failed"
    assert err.strip().endswith(
        f" failed, losses unknown: R&V source of PUMCH cannot be read: DICOM node NOT-RVARCH@127.0.0.1:{rv_node.port}: "
        "association rejected (Called AE title not recognised; PDAS called NOT-RVARCH as PDAS)")
    assert "\n" not in err.strip()
