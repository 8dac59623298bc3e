"""HL7 v2 ADT messages that renumber or merge patients, read into MRN aliases, and their ACKs
(docs/loss-detection.md, "HL7 v2 messages"; docs/contracts.md §2.7).

Pure: bytes in, a ``Decision`` out (the aliases to record, or why not), and the ACK's bytes; no
database and no socket (``lossdetect.services.hl7_listener`` records the aliases and serves MLLP).
Messages are parsed with python-hl7 (``hl7``).

What is taken, and the answer (original-mode acknowledgement, MSA-1):

- ``ADT^A40`` (merge patient, identifier list) and ``ADT^A47`` (change patient identifier list):
  each MRG segment with the PID segment before it; MRG-1 is the prior MRN, PID-3 the MRN it now goes
  by: the alias MRG-1 -> PID-3. AA when recorded (or already recorded).
- ``ADT^A08`` (update patient information): the same when it carries an MRG segment whose MRG-1
  holds an MRN; without one it is an ordinary update: AA, nothing recorded. PID-2 is not read as a
  prior MRN: it is the "external ID" (kept only for backward compatibility since v2.3.1, often another
  system's number), and a wrong alias is worse than a missing one (``lossdetect.services.aliases``).
- **AR** (application reject): the listener does not take the message: not HL7, a message type or
  event other than those, a processing ID other than P (a test feed never merges real patients), a
  character set it cannot read, a receiving application or facility other than the configured
  one, a missing MSH-9 or MSH-10; or it cannot work now (the database: ERR-3 207; resend later).
- **AE** (application error): a message it takes whose content is wrong (a PID or MRG segment
  missing, PID-3 or MRG-1 empty, an MRN longer than 64 characters, undecodable bytes) or whose alias
  breaks a rule (a cycle, an MRN to itself, an old MRN that already goes by another).

AE and AR say why in MSA-3 and in an ERR segment (ERR-2 the field, ERR-3 the HL7 table 0357 code,
ERR-8 the same line as MSA-3); nothing is recorded. The message's MRN in a list of identifiers
(PID-3, MRG-1 repeat) is the first whose type (CX.5) is one of the identifier types (MR by
default), else the first without a type.

Character sets (MSH-18, table 0211): ``UNICODE UTF-8``, ``GB 18030-2000`` (``GB18030`` too),
``ASCII`` and ``8859/1`` ... ``8859/9``, ``8859/15``; none declared: UTF-8, else GB18030 (what Chinese
senders write without saying). The ACK is written in the message's character set with its MSH-18.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from dataclasses import dataclass, replace

import hl7

from lossdetect.models import MrnAlias

ACCEPT, ERROR, REJECT = "AA", "AE", "AR"
MRN_LENGTH = MrnAlias._meta.get_field("mrn").max_length
ALIAS_EVENTS = frozenset({"A40", "A47"})  # always carry a prior identifier (MRG-1)
EVENTS = ALIAS_EVENTS | {"A08"}

# HL7 table 0357 (message error condition codes) as ERR-3 writes them; a refused alias has a local code.
SEGMENT_ERROR = "100^Segment sequence error^HL70357"
FIELD_MISSING = "101^Required field missing^HL70357"
DATA_TYPE_ERROR = "102^Data type error^HL70357"
VALUE_NOT_FOUND = "103^Table value not found^HL70357"
UNSUPPORTED_TYPE = "200^Unsupported message type^HL70357"
UNSUPPORTED_EVENT = "201^Unsupported event code^HL70357"
UNSUPPORTED_PROCESSING = "202^Unsupported processing id^HL70357"
INTERNAL_ERROR = "207^Application internal error^HL70357"
ALIAS_REFUSED = "ALIAS^MRN alias refused^99PDAS"

_CHARSETS = {  # MSH-18 without spaces, hyphens and case -> Python codec
    "ASCII": "ascii", "UNICODEUTF8": "utf-8", "GB18030": "gb18030", "GB180302000": "gb18030",
    "GB180302005": "gb18030", **{f"8859/{n}": f"iso8859_{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 15)},
}
_NULL = '""'  # HL7's "present and empty"

# python-hl7 logs a field it cannot unescape whole, and that may be a patient's name: the listener logs no
# names, and answers such a message itself. Its loggers are named after its files.
for _module in (hl7.util, hl7.containers):
    logging.getLogger(_module.__file__).setLevel(logging.CRITICAL + 1)


@dataclass(frozen=True)
class Options:
    """How one listener reads messages: which identifier types are MRNs, and (when set) the receiving
    application and facility (MSH-5.1, MSH-6.1) messages must name."""

    identifier_types: frozenset[str] = frozenset({"MR"})
    receiving_application: str = ""
    receiving_facility: str = ""


DEFAULTS = Options()


@dataclass(frozen=True)
class Header:
    """What the ACK and the log need of the message's MSH segment (empty when it could not be read)."""

    control_id: str = ""  # MSH-10
    message_type: str = ""  # MSH-9.1 and .2: ``ADT^A40``
    event: str = ""  # MSH-9.2
    sending: tuple[str, str, str] = ("", "", "")  # MSH-3, MSH-4 (HD.1 .. HD.3 each), MSH-5, MSH-6 below
    sending_facility: tuple[str, str, str] = ("", "", "")
    receiving: tuple[str, str, str] = ("", "", "")
    receiving_facility: tuple[str, str, str] = ("", "", "")
    processing_id: str = ""  # MSH-11.1
    version: str = ""  # MSH-12.1
    charset: str = ""  # MSH-18 as written
    codec: str = "utf-8"  # what the message was read with and the ACK is written with

    @property
    def sender(self) -> str:
        """MSH-3.1^MSH-4.1: who sent it, for the log and the audit."""
        return f"{self.sending[0]}^{self.sending_facility[0]}".strip("^") or "unknown sender"


@dataclass(frozen=True)
class Decision:
    """What to do with one message and what to answer. ``aliases`` (old MRN, MRN) are to be recorded,
    all or none, when ``code`` is AA; ``error`` and ``location`` fill the ERR segment of an AE or AR."""

    header: Header
    code: str
    text: str = ""
    error: str = ""
    location: str = ""  # ERR-2: ``PID^1^3``
    aliases: tuple[tuple[str, str], ...] = ()

    def refused(self, text: str, *, error: str = ALIAS_REFUSED, code: str = ERROR) -> "Decision":
        """The same message answered with an error: nothing is recorded."""
        return replace(self, code=code, text=text, error=error, aliases=())

    def recorded(self, added: list[tuple[str, str]]) -> "Decision":
        """AA, saying which aliases were added and which were there already."""
        pairs = ", ".join(f"{old} -> {new}" for old, new in self.aliases)
        known = [f"{old} -> {new}" for old, new in self.aliases if (old, new) not in added]
        plural = "es" if len(self.aliases) > 1 else ""
        if not known:
            text = f"MRN alias{plural} {pairs} recorded"
        elif len(known) == len(self.aliases):
            text = f"MRN alias{plural} {pairs} already recorded"
        else:
            text = f"MRN alias{plural} {pairs} recorded ({', '.join(known)} already)"
        return replace(self, code=ACCEPT, text=text)


class _Refuse(Exception):
    def __init__(self, code: str, text: str, error: str, location: str = ""):
        super().__init__(text)
        self.code, self.text, self.error, self.location = code, text, error, location


# --- reading ------------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def declared_charset(data: bytes) -> str:
    """MSH-18 (its first repetition) read from the raw bytes, before the message can be decoded: MSH-3 ..
    MSH-17 are ASCII in practice. ``read_message`` checks it again once the message is decoded."""
    first = re.split(rb"[\r\n]", data, maxsplit=1)[0]
    if len(first) < 8 or not first.startswith(b"MSH"):
        return ""
    fields = first.split(first[3:4])
    value = fields[17] if len(fields) > 17 else b""
    return value.split(first[5:6])[0].decode("latin-1").strip()


def codec_of(charset: str) -> str | None:
    """The Python codec of an MSH-18 value (None: not one the listener reads)."""
    return _CHARSETS.get(re.sub(r"[\s_-]", "", charset).upper())


def _decode(data: bytes, charset: str) -> tuple[str, str]:
    """(text, codec); raises ``_Refuse``."""
    if not charset:
        for codec in ("utf-8", "gb18030"):
            try:
                return data.decode(codec), codec
            except UnicodeDecodeError:
                continue
        raise _Refuse(ERROR, "the message is neither UTF-8 nor GB18030 and MSH-18 names no character set",
                      DATA_TYPE_ERROR, "MSH^1^18")
    known = codec_of(charset)
    if known is None:
        raise _Refuse(REJECT, f"MSH-18: character set {charset!r} is not read here (UNICODE UTF-8, GB 18030-2000, "
                              "ASCII or 8859/n)", VALUE_NOT_FOUND, "MSH^1^18")
    try:
        return data.decode(known), known
    except UnicodeDecodeError as exc:
        raise _Refuse(ERROR, f"the message is not {charset} as MSH-18 says (undecodable byte at offset {exc.start})",
                      DATA_TYPE_ERROR, "MSH^1^18") from None


def _value(segment: hl7.Segment, field_num: int, component: int = 1, repeat: int = 1) -> str:
    """One component of a field, unescaped and trimmed ("" when absent or HL7's null ``""``)."""
    try:
        value = str(segment.extract_field(field_num=field_num, repeat_num=repeat, component_num=component)).strip()
    except IndexError:  # a leaf reached before the component: the component is absent
        return ""
    return "" if value == _NULL else value


def _hd(segment: hl7.Segment, field_num: int) -> tuple[str, str, str]:
    return (_value(segment, field_num, 1), _value(segment, field_num, 2), _value(segment, field_num, 3))


def _header(message: hl7.Message, codec: str) -> Header:
    msh = message.segment("MSH")
    code, event = _value(msh, 9, 1), _value(msh, 9, 2)
    return Header(
        control_id=_value(msh, 10), message_type="^".join(part for part in (code, event) if part), event=event,
        sending=_hd(msh, 3), sending_facility=_hd(msh, 4), receiving=_hd(msh, 5), receiving_facility=_hd(msh, 6),
        processing_id=_value(msh, 11), version=_value(msh, 12), charset=_value(msh, 18), codec=codec,
    )


def _rough_header(data: bytes, charset: str) -> Header:
    """What can be read of the MSH segment of a message that cannot be decoded or parsed (for the ACK)."""
    first = re.split(rb"[\r\n]", data, maxsplit=1)[0].decode("latin-1")
    if len(first) < 8 or not first.startswith("MSH"):
        return Header(charset=charset)
    fields = first.split(first[3])
    component = first[4]

    def get(number: int, part: int = 0) -> str:
        value = fields[number - 1] if len(fields) >= number else ""
        parts = value.split(component)
        return parts[part].strip() if len(parts) > part else ""

    return Header(control_id=get(10), message_type="^".join(p for p in (get(9), get(9, 1)) if p), event=get(9, 1),
                  sending=(get(3), "", ""), sending_facility=(get(4), "", ""), receiving=(get(5), "", ""),
                  receiving_facility=(get(6), "", ""), processing_id=get(11), version=get(12), charset=charset,
                  codec=codec_of(charset) or "utf-8")


def _identifiers(segment: hl7.Segment, field_num: int) -> list[tuple[str, str]]:
    """(CX.1 ID, CX.5 identifier type) of each repetition of a CX field that has an ID."""
    if field_num >= len(segment):
        return []
    found = []
    for repeat in range(1, len(segment(field_num)) + 1):
        identifier = _value(segment, field_num, 1, repeat)
        if identifier:
            found.append((identifier, _value(segment, field_num, 5, repeat).upper()))
    return found


def pick_mrn(identifiers: list[tuple[str, str]], types: frozenset[str]) -> str | None:
    """The MRN of a list of identifiers: the first whose type is one of ``types``, else the first without a
    type; None when every identifier has another type."""
    for identifier, kind in identifiers:
        if kind in types:
            return identifier
    for identifier, kind in identifiers:
        if not kind:
            return identifier
    return None


def _mrn(segment: hl7.Segment, name: str, field_num: int, sequence: int, options: Options) -> str | None:
    """The MRN of PID-3 or MRG-1: ``_Refuse`` when the field is empty or the MRN too long; None when it names
    only identifiers of other types."""
    location = f"{name}^{sequence}^{field_num}"
    identifiers = _identifiers(segment, field_num)
    if not identifiers:
        what = "patient identifier list" if name == "PID" else "prior patient identifier list"
        raise _Refuse(ERROR, f"{name}-{field_num} ({what}) is empty", FIELD_MISSING, location)
    mrn = pick_mrn(identifiers, options.identifier_types)
    if mrn is not None and len(mrn) > MRN_LENGTH:
        raise _Refuse(ERROR, f"{name}-{field_num}: the MRN is longer than {MRN_LENGTH} characters", DATA_TYPE_ERROR,
                      location)
    return mrn


def _pairs(message: hl7.Message, event: str, options: Options) -> tuple[list[tuple[str, str]], str]:
    """(aliases, why none) of the message's PID/MRG segments."""
    types = "/".join(sorted(options.identifier_types))
    groups: list[tuple[int, hl7.Segment, int, hl7.Segment]] = []  # PID sequence, PID, MRG sequence, MRG
    pid: tuple[int, hl7.Segment] | None = None
    pid_count = mrg_count = 0
    paired: set[int] = set()
    for segment in message:
        name = str(segment[0]).strip()
        if name == "PID":
            pid_count += 1
            pid = (pid_count, segment)
        elif name == "MRG":
            mrg_count += 1
            if pid is None:
                raise _Refuse(ERROR, f"MRG segment {mrg_count} comes before any PID segment", SEGMENT_ERROR,
                              f"MRG^{mrg_count}")
            if pid[0] in paired:
                raise _Refuse(ERROR, f"PID segment {pid[0]} is followed by two MRG segments", SEGMENT_ERROR,
                              f"MRG^{mrg_count}")
            paired.add(pid[0])
            groups.append((pid[0], pid[1], mrg_count, segment))
    if not pid_count:
        raise _Refuse(ERROR, "the PID segment is missing", SEGMENT_ERROR, "PID")
    if event in ALIAS_EVENTS:
        if not mrg_count:
            raise _Refuse(ERROR, "the MRG segment is missing", SEGMENT_ERROR, "MRG")
        unpaired = sorted(set(range(1, pid_count + 1)) - paired)
        if unpaired:
            raise _Refuse(ERROR, f"PID segment {unpaired[0]} has no MRG segment", SEGMENT_ERROR, f"PID^{unpaired[0]}")
    elif not groups or not _identifiers(groups[0][3], 1):
        return [], "no prior identifier (MRG-1): nothing to record"
    aliases: list[tuple[str, str]] = []
    for pid_seq, pid_segment, mrg_seq, mrg in groups:
        old = _mrn(mrg, "MRG", 1, mrg_seq, options)
        new = _mrn(pid_segment, "PID", 3, pid_seq, options)
        if old is None:
            continue  # another kind of identifier changed (a card number): no MRN to alias
        if new is None:
            raise _Refuse(ERROR, f"PID-3 has no identifier of type {types} while MRG-1 has", FIELD_MISSING,
                          f"PID^{pid_seq}^3")
        aliases.append((old, new))
    if not aliases:
        return [], f"MRG-1 has no identifier of type {types}: nothing to record"
    return aliases, ""


def _check_header(header: Header, options: Options) -> None:
    if not header.message_type.split("^")[0]:
        raise _Refuse(REJECT, "MSH-9 (message type) is empty", FIELD_MISSING, "MSH^1^9")
    if not header.control_id:
        raise _Refuse(REJECT, "MSH-10 (message control ID) is empty", FIELD_MISSING, "MSH^1^10")
    if header.processing_id != "P":
        raise _Refuse(REJECT, f"MSH-11: processing ID {header.processing_id!r} is not taken (P, production, only)",
                      UNSUPPORTED_PROCESSING, "MSH^1^11")
    for wanted, got, number in ((options.receiving_application, header.receiving[0], 5),
                                (options.receiving_facility, header.receiving_facility[0], 6)):
        if wanted and got != wanted:
            raise _Refuse(REJECT, f"MSH-{number}: {got!r} is not this listener's ({wanted!r})", VALUE_NOT_FOUND,
                          f"MSH^1^{number}")
    code = header.message_type.split("^")[0]
    if code != "ADT":
        raise _Refuse(REJECT, f"unsupported message type {header.message_type!r} (ADT^A40, ADT^A47 and ADT^A08 "
                              "only)", UNSUPPORTED_TYPE, "MSH^1^9")
    if header.event not in EVENTS:
        raise _Refuse(REJECT, f"unsupported message type {header.message_type!r} (ADT^A40, ADT^A47 and ADT^A08 "
                              "only)", UNSUPPORTED_EVENT, "MSH^1^9^1^2")


def read_message(data: bytes, options: Options = DEFAULTS) -> Decision:
    """The decision about one message (the bytes of one MLLP frame)."""
    charset = declared_charset(data)
    header = _rough_header(data, charset)
    try:
        text, codec = _decode(data, charset)
        text = text.replace("\r\n", "\r").replace("\n", "\r").strip()  # some senders end segments with LF
        if not text.startswith("MSH"):
            raise _Refuse(REJECT, "not an HL7 v2 message (it does not begin with an MSH segment)", SEGMENT_ERROR,
                          "MSH")
        if len(text) < 8:
            raise _Refuse(REJECT, "not an HL7 v2 message (the MSH segment is cut short)", SEGMENT_ERROR, "MSH")
        try:
            message = hl7.parse(text)
            header = _header(message, codec)
        except Exception as exc:  # python-hl7 raises what its parse reaches: IndexError, ParseException, ...
            raise _Refuse(REJECT, f"not an HL7 v2 message ({_one_line(str(exc)) or type(exc).__name__})",
                          SEGMENT_ERROR, "MSH") from None
        if header.charset != charset:  # both the first repetition
            raise _Refuse(ERROR, "MSH-18 cannot be read before the message is decoded (MSH-3 to MSH-17 hold "
                                 "non-ASCII characters)", DATA_TYPE_ERROR, "MSH^1^18")
        _check_header(header, options)
        aliases, nothing = _pairs(message, header.event, options)
    except _Refuse as refusal:
        return Decision(header, refusal.code, _one_line(refusal.text), refusal.error, refusal.location)
    if not aliases:
        return Decision(header, ACCEPT, nothing)
    return Decision(header, ACCEPT, aliases=tuple(aliases))


# --- answering ------------------------------------------------------------------------------------------


def escape(value: str) -> str:
    """A value for a field of the ACK (standard separators ``|^~\\&``), on one line."""
    value = _one_line(value).replace("\\", "\\E\\")
    for character, sequence in (("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\")):
        value = value.replace(character, sequence)
    return value


def _hd_text(parts: tuple[str, str, str]) -> str:
    return "^".join(escape(part) for part in parts).rstrip("^")


def ack(decision: Decision, *, now: dt.datetime | None = None, control_id: str | None = None) -> bytes:
    """The ACK of a decision, in the message's character set: MSH (the message's receiving application and
    facility as sender, and the other way round), MSA (code, the message's control ID, the text) and, for
    AE and AR, ERR."""
    header = decision.header
    now = now or dt.datetime.now().astimezone()
    trigger = escape(header.event)
    fields = ["MSH", "^~\\&", _hd_text(header.receiving) or "PDAS", _hd_text(header.receiving_facility),
              _hd_text(header.sending), _hd_text(header.sending_facility), now.strftime("%Y%m%d%H%M%S%z"), "",
              f"ACK^{trigger}^ACK" if trigger else "ACK", escape(control_id or uuid.uuid4().hex[:20]),
              escape(header.processing_id) or "P", escape(header.version) or "2.5"]
    if header.charset:
        fields += [""] * 5 + [escape(header.charset)]  # MSH-13 .. MSH-17 empty, then MSH-18
    segments = ["|".join(fields), "|".join(["MSA", decision.code, escape(header.control_id), escape(decision.text)])
                .rstrip("|")]
    if decision.code != ACCEPT:
        segments.append("|".join(["ERR", "", decision.location, decision.error, "E", "", "", "",
                                  escape(decision.text)]))
    return ("\r".join(segments) + "\r").encode(header.codec, errors="replace")


def framing_reject(reason: str) -> bytes:
    """The ACK (AR) for bytes that are no message: a frame too large, bytes outside a frame."""
    return ack(Decision(Header(), REJECT, _one_line(reason), SEGMENT_ERROR))

