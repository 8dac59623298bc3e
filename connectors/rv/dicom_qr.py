"""``dicom-qr://<called-AE>@<host>:<port>?calling=<our-AE>``: a DICOM node holding the R&V records
(docs/contracts.md §2.5, docs/loss-detection.md).

One association per read, with the AE titles of the URL. PDAS walks the Study Root hierarchy with
C-FIND (studies, then their series, then the instances of RTPLAN and RTRECORD series) so that
servers that only answer hierarchical queries (dcmqrscp, pynetdicom's qrscp) work as well as
those that answer more (Orthanc). An instance's answer is used as it is only when it carries every
attribute the rules need; otherwise the objects are fetched with C-GET over the same association
(no inbound port, unlike C-MOVE). Either way, each dataset goes through the rules ``dicom-dir:``
uses (``dicom_records.FirstDeliveries``).

Nothing the server does with matching keys is trusted: studies are asked for by modality only as a
hint (every series' modality is checked again here), and no date key is sent at all. A server that
honoured a date key would hide a plan's earlier fractions and move its first delivery; one that
ignores it returns everything anyway. ``history_days`` is applied here, to plans' first
deliveries, after all their records are read.

A refused, aborted or silent association, or a query or fetch that fails, fails the whole read
(``RvError`` naming the node): the scan is then "unknown", never "0 lost".
"""
from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from zoneinfo import ZoneInfo

from pydicom.dataset import Dataset

from connectors.errors import unforeseen
from connectors.rv.base import RowProblem, RvError, RvReadResult, RvSource, clean_text
from connectors.rv.dicom_qr_url import DicomQrTarget
from connectors.rv.dicom_records import FirstDeliveries, sop_kind

RT_MODALITIES = ("RTPLAN", "RTRECORD")
# What C-GET may send us: the objects the rules read, and the brachy record an RTRECORD series may also
# hold (received so that it is reported as unused, rather than failing the fetch).
STORAGE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.481.5",  # RT Plan
    "1.2.840.10008.5.1.4.1.1.481.8",  # RT Ion Plan
    "1.2.840.10008.5.1.4.1.1.481.4",  # RT Beams Treatment Record
    "1.2.840.10008.5.1.4.1.1.481.9",  # RT Ion Beams Treatment Record
    "1.2.840.10008.5.1.4.1.1.481.7",  # RT Treatment Summary Record
    "1.2.840.10008.5.1.4.1.1.481.6",  # RT Brachy Treatment Record
)
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
PENDING = (0xFF00, 0xFF01)
SUCCESS = 0x0000
SOME_FAILED = 0xB000  # C-GET: some sub-operations failed; the instances not received are reported
UTF8 = "ISO_IR 192"

# Per kind, the attributes an answer must carry (non-empty) to be used without fetching the object.
# TimezoneOffsetFromUTC may be empty but must be present: a server that does not return it at all
# cannot say whether the record has one.
_NEEDED = {
    "plan": ("PatientID", "PatientName", "RTPlanLabel", "Manufacturer", "ManufacturerModelName"),
    "record": ("TreatmentDate", "TreatmentTime"),
    "summary": ("FirstTreatmentDate",),
}


class QueryRefused(RvError):
    """A C-FIND the node answered with a failure status (the association itself is still fine)."""


def _item(**values: str) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _query(level: str, **keys) -> Dataset:
    query = Dataset()
    query.SpecificCharacterSet = UTF8  # answers come back in UTF-8 from servers that convert
    query.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    return query


def instance_query(study: str, series: str, modality: str) -> Dataset:
    """The IMAGE-level C-FIND of one series, asking for what the rules read of its kind."""
    query = _query("IMAGE", StudyInstanceUID=study, SeriesInstanceUID=series, SOPInstanceUID="", SOPClassUID="",
                   PatientID="", PatientName="")
    if modality == "RTPLAN":
        for keyword in ("RTPlanLabel", "Manufacturer", "ManufacturerModelName"):
            setattr(query, keyword, "")
        query.BeamSequence = [_item(TreatmentMachineName="")]
    else:
        for keyword in ("TreatmentDate", "TreatmentTime", "TimezoneOffsetFromUTC", "FirstTreatmentDate",
                        "CurrentTreatmentStatus"):
            setattr(query, keyword, "")
        query.ReferencedRTPlanSequence = [_item(ReferencedSOPInstanceUID="")]
    return query


def answer_is_complete(answer: Dataset) -> bool:
    """Whether a C-FIND answer holds all the rules need, so the object need not be fetched."""
    kind = sop_kind(clean_text(answer.get("SOPClassUID")))
    if not kind:
        return False  # no SOP class (dcmqrscp, qrscp), or one the rules do not read: fetch it to know
    if not all(clean_text(answer.get(keyword)) for keyword in _NEEDED[kind]):
        return False
    if kind == "plan":
        beams = answer.get("BeamSequence") or []
        return bool(beams) and bool(clean_text(beams[0].get("TreatmentMachineName")))
    references = answer.get("ReferencedRTPlanSequence") or []
    return "TimezoneOffsetFromUTC" in answer and any(clean_text(r.get("ReferencedSOPInstanceUID")) for r in references)


def no_delay(assoc) -> None:
    """No waiting on small writes. A query or answer goes out as two writes (its command, then its
    identifier); with Nagle's algorithm the second waits for the ACK of the first, which the other
    side delays by up to 40 ms: ~90 ms per C-FIND. TCP_NODELAY covers our writes; the node's we
    cannot change, so we ACK at once (TCP_QUICKACK, which Linux clears again: set after each read)."""
    try:
        wrapper = assoc.dul.socket
        raw = wrapper.socket
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):
        return  # a speed-up only
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if quickack is None:
        return
    read = wrapper.recv

    def recv(nr_bytes: int):
        data = read(nr_bytes)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, quickack, 1)
        except OSError:
            pass
        return data

    wrapper.recv = recv


def _answers_only_to_the_caller(assoc) -> None:
    """Leave every incoming DIMSE message to the call waiting for it.

    pynetdicom's association thread also takes messages off the queue (to serve requests a peer sends),
    and pauses for a ``send_c_find()`` through an unlocked flag: now and then it takes the first answer
    of the next query before that query's own loop does, and drops it as unexpected. The query then
    misses an answer without any error, or waits for a final status that never comes (seen with
    dcmqrscp, more often the faster the node answers). PDAS only asks, and the C-STOREs of a C-GET are
    served by the waiting ``send_c_get()`` itself, so the thread's non-blocking reads are turned off."""
    dimse = assoc.dimse
    get_msg = dimse.get_msg

    def blocking_only(block: bool = False):
        return get_msg(block=True) if block else (None, None)

    dimse.get_msg = blocking_only


def as_plain_client(assoc) -> None:
    """What every association PDAS opens gets, as soon as it is connected (``EVT_CONN_OPEN``)."""
    _answers_only_to_the_caller(assoc)
    no_delay(assoc)


class DicomQrSource(RvSource):
    def __init__(self, target: DicomQrTarget, *, url: str, zone: ZoneInfo):
        super().__init__(url=url, zone=zone)
        self.target = target
        self._received: dict[str, Dataset] = {}
        self._lock = threading.Lock()

    # --- the association ----------------------------------------------------------------------

    def _fail(self, what: str, *, retryable: bool = True) -> RvError:
        return RvError(f"DICOM node {self.target.name}: {what}", retryable=retryable)

    def _on_store(self, event) -> int:
        """C-GET's sub-operations: keep each object in memory until its series is read."""
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            uid = clean_text(ds.get("SOPInstanceUID"))
        except Exception:
            return 0xC210  # cannot understand: the instance stays missing and is reported
        with self._lock:
            self._received[uid] = ds
        return SUCCESS

    @contextmanager
    def _association(self) -> Iterator:
        from pynetdicom import AE, build_role, evt

        target = self.target
        ae = AE(ae_title=target.calling_ae)
        ae.acse_timeout = target.acse_timeout
        ae.connection_timeout = target.acse_timeout
        ae.dimse_timeout = target.dimse_timeout
        ae.network_timeout = target.network_timeout
        ae.add_requested_context(STUDY_ROOT_FIND)
        ae.add_requested_context(STUDY_ROOT_GET)
        for sop_class in STORAGE_CLASSES:
            ae.add_requested_context(sop_class)
        seen: dict[str, object] = {}

        def on_acse(event) -> None:
            primitive = getattr(event, "primitive", None)
            if getattr(primitive, "result", None) in (0x01, 0x02):
                seen["rejected"] = primitive

        def on_connect(event) -> None:
            seen["connected"] = True
            as_plain_client(event.assoc)

        handlers: list = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_ACSE_RECV, on_acse),
                          (evt.EVT_CONN_OPEN, on_connect)]
        started = time.monotonic()
        try:
            assoc = ae.associate(target.host, target.port, ae_title=target.called_ae,
                                 ext_neg=[build_role(c, scp_role=True) for c in STORAGE_CLASSES], evt_handlers=handlers)
        except Exception as exc:  # a host name that does not resolve, and the like
            raise self._fail(f"cannot connect ({unforeseen(exc)})") from None
        if not assoc.is_established:
            raise self._not_established(seen, time.monotonic() - started)
        try:
            if not any(cx.abstract_syntax == STUDY_ROOT_FIND for cx in assoc.accepted_contexts):
                raise self._fail("does not offer Study Root C-FIND to "
                                 f"{target.calling_ae}", retryable=False)
            yield assoc
        finally:
            if assoc.is_established:
                assoc.release()
            ae.shutdown()

    def _not_established(self, seen: dict, waited: float) -> RvError:
        target = self.target
        if rejection := seen.get("rejected"):
            reason = getattr(rejection, "reason_str", "no reason given")
            transient = getattr(rejection, "result", 1) == 0x02
            return self._fail(f"association rejected ({reason}; PDAS called {target.called_ae} as "
                              f"{target.calling_ae})", retryable=transient)
        if not seen.get("connected"):
            return self._fail(f"cannot connect (nothing answers at {target.host}:{target.port}, "
                              f"or not within {target.acse_timeout:g}s)")
        if waited >= target.acse_timeout:
            return self._fail(f"association not established (no answer within {target.acse_timeout:g}s)")
        return self._fail("association not established (the node closed the connection or aborted without "
                          "accepting or rejecting it)")

    # --- queries ------------------------------------------------------------------------------

    def _status(self, status: Dataset | None, what: str) -> int:
        code = status.get("Status") if status else None
        if code is None:
            raise self._fail(f"{what}: no answer within {self.target.dimse_timeout:g}s, or the association "
                             "was aborted")
        return int(code)

    def _find(self, assoc, query: Dataset, what: str) -> list[Dataset]:
        """Every answer of one C-FIND; ``RvError`` unless it ends in success."""
        answers = []
        for status, identifier in assoc.send_c_find(query, STUDY_ROOT_FIND):
            code = self._status(status, what)
            if code in PENDING:
                if identifier is not None:
                    answers.append(identifier)
            elif code == SUCCESS:
                break
            else:
                comment = clean_text(status.get("ErrorComment"))
                raise QueryRefused(f"DICOM node {self.target.name}: {what} failed (C-FIND status 0x{code:04X}"
                                   f"{': ' + comment if comment else ''})", retryable=True)
        return answers

    def _get(self, assoc, query: Dataset, what: str) -> None:
        """One C-GET; its objects arrive in ``_received``. A partial success is fine: what did not
        arrive is reported per instance by the caller."""
        if not any(cx.abstract_syntax == STUDY_ROOT_GET for cx in assoc.accepted_contexts):
            raise self._fail(f"{what}: the node's C-FIND answers lack what PDAS needs and it does not offer "
                             "Study Root C-GET", retryable=False)
        for status, _identifier in assoc.send_c_get(query, STUDY_ROOT_GET):
            code = self._status(status, what)
            if code in PENDING:
                continue
            if code not in (SUCCESS, SOME_FAILED):
                raise self._fail(f"{what} failed (C-GET status 0x{code:04X})")
            break

    @staticmethod
    def _unique(answers: list[Dataset], keyword: str) -> dict[str, Dataset]:
        """Answers by their UID, first one kept: some servers answer a study once per instance."""
        found: dict[str, Dataset] = {}
        for answer in answers:
            uid = clean_text(answer.get(keyword))
            if uid and uid not in found:
                found[uid] = answer
        return found

    # --- the read -----------------------------------------------------------------------------

    def read(self) -> RvReadResult:
        result = RvReadResult()
        deliveries = FirstDeliveries(self.zone, missing_plan="not on the node")
        with self._association() as assoc:
            try:
                try:
                    studies = self._studies(assoc, RT_MODALITIES)
                except QueryRefused:  # a strict server may refuse the optional ModalitiesInStudy key: ask for all
                    studies = self._studies(assoc, (None,))
                for study in studies:
                    self._read_study(assoc, study, deliveries, result)
            except RvError:
                raise
            except Exception as exc:  # pynetdicom refusing a request on a broken association, and the like
                raise self._fail(f"reading stopped ({unforeseen(exc)})") from None
        deliveries.result(result)
        return self._within_history(result)

    def _studies(self, assoc, modalities: tuple[str | None, ...]) -> list[str]:
        """The study UIDs, asked by ``ModalitiesInStudy``: a hint only, which a server may ignore (every
        series' modality is checked again)."""
        studies: set[str] = set()
        for modality in modalities:
            keys = {} if modality is None else {"ModalitiesInStudy": modality}
            answers = self._find(assoc, _query("STUDY", StudyInstanceUID="", **keys), "C-FIND of studies")
            studies.update(self._unique(answers, "StudyInstanceUID"))
        return sorted(studies)

    def _read_study(self, assoc, study: str, deliveries: FirstDeliveries, result: RvReadResult) -> None:
        query = _query("SERIES", StudyInstanceUID=study, SeriesInstanceUID="", Modality="")
        series = self._unique(self._find(assoc, query, f"C-FIND of the series of study {study}"), "SeriesInstanceUID")
        for uid, answer in sorted(series.items()):
            modality = clean_text(answer.get("Modality")).upper()
            if modality in RT_MODALITIES:
                self._read_series(assoc, study, uid, modality, deliveries, result)

    def _read_series(self, assoc, study: str, series: str, modality: str, deliveries: FirstDeliveries,
                     result: RvReadResult) -> None:
        what = f"series {series}"
        answers = self._unique(self._find(assoc, instance_query(study, series, modality), f"C-FIND of {what}"),
                               "SOPInstanceUID")
        missing = [uid for uid, answer in answers.items() if not answer_is_complete(answer)]
        datasets = {uid: answer for uid, answer in answers.items() if uid not in missing}
        if missing:
            self._received.clear()
            if len(missing) == len(answers):  # the usual case with a server that answers from an index
                self._get(assoc, _query("SERIES", StudyInstanceUID=study, SeriesInstanceUID=series),
                          f"C-GET of {what}")
            else:
                for uid in missing:
                    self._get(assoc, _query("IMAGE", StudyInstanceUID=study, SeriesInstanceUID=series,
                                            SOPInstanceUID=uid), f"C-GET of instance {uid}")
            with self._lock:
                received, self._received = self._received, {}
            for uid in missing:
                if uid in received:
                    datasets[uid] = received[uid]
                else:
                    result.problems.append(RowProblem(f"instance {uid}", "the node did not send it (C-GET)"))
        for uid, ds in sorted(datasets.items()):
            try:
                deliveries.add(ds, f"instance {uid}")
            except ValueError as exc:
                result.problems.append(RowProblem(f"instance {uid}", str(exc)))
            except Exception as exc:  # a value pydicom cannot decode: report it, read the rest
                result.problems.append(RowProblem(f"instance {uid}", f"unreadable DICOM ({unforeseen(exc)})"))

    def _within_history(self, result: RvReadResult) -> RvReadResult:
        """Drop the plans first delivered before the history window (``history_days``), here and never
        on the server (see the module's doc)."""
        if self.target.history_days is None:
            return result
        today = dt.datetime.now(self.zone).date()
        cutoff = dt.datetime.combine(today - dt.timedelta(days=self.target.history_days), dt.time.min,
                                     tzinfo=self.zone)
        result.records = [record for record in result.records if record.first_delivery >= cutoff]
        return result
