"""HL7 v2 ADT messages read into MRN aliases, and their ACKs (lossdetect.services.hl7_messages): pure, no database."""
from __future__ import annotations

import datetime as dt

import hl7
import pytest

from lossdetect.services.hl7_messages import (
    Decision, Header, Options, ack, codec_of, declared_charset, escape, framing_reject, pick_mrn, read_message,
)

NOW = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def msh(event: str = "A40", *, control: str = "MSG00001", charset: str = "UNICODE UTF-8", processing: str = "P",
        message_type: str = "ADT", sender: str = "HIS", facility: str = "PUMCH") -> str:
    structure = {"A40": "ADT_A39", "A47": "ADT_A30", "A08": "ADT_A01"}.get(event, "")
    return (f"MSH|^~\\&|{sender}|{facility}|PDAS|RT|20240301120000||{message_type}^{event}^{structure}|{control}|"
            f"{processing}|2.5|||||CHN|{charset}")


def message(*segments: str, encoding: str = "utf-8") -> bytes:
    return ("\r".join(segments) + "\r").encode(encoding)


def parsed_ack(data: bytes, encoding: str = "utf-8") -> hl7.Message:
    return hl7.parse(data.decode(encoding))


def test_a40_merge_gives_the_prior_mrn_an_alias_of_the_surviving_one():
    decision = read_message(message(msh("A40"), "EVN|A40|20240301120000",
                                    "PID|1||000200^^^HIS^MR~110101199001011234^^^^PI||WANG^WU",
                                    "MRG|000100^^^HIS^MR"))
    assert (decision.code, decision.aliases, decision.text) == ("AA", (("000100", "000200"),), "")
    header = decision.header
    assert (header.control_id, header.message_type, header.sender) == ("MSG00001", "ADT^A40", "HIS^PUMCH")


def test_a40_with_several_patients_merged_at_once():
    decision = read_message(message(msh("A40"), "EVN|A40", "PID|1||000200^^^^MR", "MRG|000100^^^^MR",
                                    "PID|2||000400^^^^MR", "PD1|", "MRG|000300^^^^MR", "PV1|1|N"))
    assert decision.aliases == (("000100", "000200"), ("000300", "000400"))


def test_a47_identifier_change():
    decision = read_message(message(msh("A47"), "EVN|A47", "PID|1||R0002^^^HIS^MR", "MRG|R0001^^^HIS^MR"))
    assert (decision.code, decision.aliases) == ("AA", (("R0001", "R0002"),))


def test_a08_with_a_prior_identifier_is_an_alias_and_without_one_changes_nothing():
    with_prior = read_message(message(msh("A08"), "EVN|A08", "PID|1||000200^^^^MR", "MRG|000100^^^^MR"))
    assert with_prior.aliases == (("000100", "000200"),)
    plain = read_message(message(msh("A08"), "EVN|A08", "PID|1|EXT99|000200^^^^MR||ZHANG^SAN"))
    assert (plain.code, plain.aliases, plain.text) == ("AA", (), "no prior identifier (MRG-1): nothing to record")
    empty_mrg = read_message(message(msh("A08"), "EVN|A08", "PID|1||000200", "MRG|"))
    assert (empty_mrg.code, empty_mrg.aliases) == ("AA", ())


def test_the_mrn_of_a_list_is_the_mr_typed_one_or_the_first_untyped():
    assert pick_mrn([("9", "PI"), ("1", "MR"), ("2", "MR")], frozenset({"MR"})) == "1"
    assert pick_mrn([("9", "PI"), ("3", ""), ("4", "")], frozenset({"MR"})) == "3"
    assert pick_mrn([("9", "PI"), ("8", "SS")], frozenset({"MR"})) is None
    assert pick_mrn([("9", "PI"), ("8", "MR")], frozenset({"PI"})) == "9"
    decision = read_message(message(msh(), "PID|1||110^^^^PI~000200^^^^MR", "MRG|000100"))
    assert decision.aliases == (("000100", "000200"),)
    typed = read_message(message(msh(), "PID|1||000200^^^^PI", "MRG|000100^^^^PI"), Options(frozenset({"PI"})))
    assert typed.aliases == (("000100", "000200"),)


def test_a_change_of_another_kind_of_identifier_records_nothing():
    decision = read_message(message(msh("A47"), "PID|1||000200^^^^MR~C2^^^^SS", "MRG|C1^^^^SS"))
    assert (decision.code, decision.aliases, decision.text) == (
        "AA", (), "MRG-1 has no identifier of type MR: nothing to record")


def test_escapes_and_spaces_in_an_mrn_are_read_as_meant():
    decision = read_message(message(msh(), "PID|1|| 00\\T\\200 ^^^^MR", "MRG|000100"))
    assert decision.aliases == (("000100", "00&200"),)


def test_segments_ended_by_newlines_are_read_too():
    data = ("\r\n".join([msh(), "PID|1||000200", "MRG|000100"]) + "\n").encode()
    assert read_message(data).aliases == (("000100", "000200"),)


@pytest.mark.parametrize("message_type, event, error", [
    ("ADT", "A01", "201^Unsupported event code^HL70357"),
    ("ORU", "R01", "200^Unsupported message type^HL70357"),
])
def test_other_message_types_are_rejected(message_type, event, error):
    decision = read_message(message(msh(event, message_type=message_type), "PID|1||000200", "MRG|000100"))
    assert (decision.code, decision.error, decision.aliases) == ("AR", error, ())
    assert decision.text == f"unsupported message type '{message_type}^{event}' (ADT^A40, ADT^A47 and ADT^A08 only)"
    reply = parsed_ack(ack(decision, now=NOW))
    assert str(reply.segment("MSA")(1)) == "AR" and str(reply.segment("MSA")(2)) == "MSG00001"
    assert reply["MSA.F3"] == decision.text  # escaped in the ACK, read back as written


@pytest.mark.parametrize("segments, code, text, location", [
    ([msh(control=""), "PID|1||000200", "MRG|000100"], "AR", "MSH-10 (message control ID) is empty", "MSH^1^10"),
    ([msh(processing="T"), "PID|1||000200", "MRG|000100"], "AR",
     "MSH-11: processing ID 'T' is not taken (P, production, only)", "MSH^1^11"),
    ([msh(), "EVN|A40"], "AE", "the PID segment is missing", "PID"),
    ([msh(), "PID|1||000200"], "AE", "the MRG segment is missing", "MRG"),
    ([msh(), "PID|1||", "MRG|000100"], "AE", "PID-3 (patient identifier list) is empty", "PID^1^3"),
    ([msh(), "PID|1||000200", "MRG|\"\""], "AE", "MRG-1 (prior patient identifier list) is empty", "MRG^1^1"),
    ([msh(), "MRG|000100", "PID|1||000200"], "AE", "MRG segment 1 comes before any PID segment", "MRG^1"),
    ([msh(), "PID|1||000200", "MRG|000100", "PID|2||000400"], "AE", "PID segment 2 has no MRG segment", "PID^2"),
    ([msh(), "PID|1||000200^^^^SS", "MRG|000100^^^^MR"], "AE", "PID-3 has no identifier of type MR while MRG-1 has",
     "PID^1^3"),
    ([msh(), "PID|1||" + "9" * 65, "MRG|000100"], "AE", "PID-3: the MRN is longer than 64 characters", "PID^1^3"),
])
def test_malformed_messages_get_an_error_naming_the_field(segments, code, text, location):
    decision = read_message(message(*segments))
    assert (decision.code, decision.text, decision.location, decision.aliases) == (code, text, location, ())
    reply = parsed_ack(ack(decision, now=NOW))
    assert reply["MSA.F3"] == text and reply["ERR.F2"] == location.split("^")[0] and reply["ERR.F8"] == text


@pytest.mark.parametrize("data, code, text", [
    (b"", "AR", "not an HL7 v2 message (it does not begin with an MSH segment)"),
    (b"PID|1||000200\rMRG|000100\r", "AR", "not an HL7 v2 message (it does not begin with an MSH segment)"),
    (b"MSH|^~", "AR", "not an HL7 v2 message (the MSH segment is cut short)"),
    (b"MSH|^~\\&|", "AR", "MSH-9 (message type) is empty"),
    (b"MSH|^~\\&|\xff\xfe", "AE", "the message is neither UTF-8 nor GB18030 and MSH-18 names no character set"),
])
def test_bytes_that_are_no_hl7_message_are_refused(data, code, text):
    decision = read_message(data)
    assert (decision.code, decision.text, decision.aliases) == (code, text, ())
    reply = parsed_ack(ack(decision, now=NOW))
    assert reply["MSA.F1"] == code and reply["MSA.F2"] == ""


def test_the_receiving_application_and_facility_are_checked_when_configured():
    data = message(msh(), "PID|1||000200", "MRG|000100")
    assert read_message(data, Options(receiving_application="PDAS", receiving_facility="RT")).code == "AA"
    decision = read_message(data, Options(receiving_facility="CAMS"))
    assert (decision.code, decision.text) == ("AR", "MSH-6: 'RT' is not this listener's ('CAMS')")


def test_gb18030_and_utf8_chinese_round_trip():
    for charset, encoding in (("GB 18030-2000", "gb18030"), ("UNICODE UTF-8", "utf-8"), ("", "utf-8"),
                              ("", "gb18030")):
        data = message(msh(charset=charset, sender="协和信息科", facility="北京协和医院"),
                       "PID|1||000200^^^^MR||张^三丰", "MRG|000100^^^^MR", encoding=encoding)
        decision = read_message(data)
        assert decision.aliases == (("000100", "000200"),), charset
        assert decision.header.codec == encoding and decision.header.sender == "协和信息科^北京协和医院"
        reply = parsed_ack(ack(decision.recorded([("000100", "000200")]), now=NOW), encoding)
        assert reply["MSH.F5"] == "协和信息科" and reply["MSH.F6"] == "北京协和医院"  # back to the sender
        assert reply["MSH.F18"] == charset
        assert reply["MSA.F3"] == "MRN alias 000100 -> 000200 recorded"


def test_character_sets_that_cannot_be_read():
    decision = read_message(message(msh(charset="UNICODE UTF-16"), "PID|1||000200", "MRG|000100"))
    assert (decision.code, decision.location) == ("AR", "MSH^1^18")
    assert decision.text.startswith("MSH-18: character set 'UNICODE UTF-16' is not read here")
    lying = read_message(message(msh(charset="UNICODE UTF-8"), "PID|1||000200||张", "MRG|000100", encoding="gb18030"))
    assert lying.code == "AE" and lying.text.startswith("the message is not UNICODE UTF-8 as MSH-18 says "
                                                         "(undecodable byte at offset ")
    ascii_only = read_message(message(msh(charset="ASCII"), "PID|1||000200||张", "MRG|000100"))
    assert ascii_only.code == "AE" and ascii_only.header.control_id == "MSG00001"  # the ACK still names it


def test_msh18_values():
    assert [codec_of(v) for v in ("UNICODE UTF-8", "GB 18030-2000", "gb18030", "8859/1", "ASCII", "UNICODE")] == [
        "utf-8", "gb18030", "gb18030", "iso8859_1", "ascii", None]
    assert declared_charset(message(msh(charset="GB 18030-2000~UNICODE UTF-8"), "PID|1")) == "GB 18030-2000"
    assert declared_charset(b"MSH|^~\\&|A|B\r") == ""


def test_the_ack_segments():
    decision = read_message(message(msh(), "PID|1||000200", "MRG|000100"))
    text = ack(decision.recorded([]), now=NOW, control_id="ACK1").decode()
    assert text.split("\r") == [
        "MSH|^~\\&|PDAS|RT|HIS|PUMCH|20240301120000+0800||ACK^A40^ACK|ACK1|P|2.5||||||UNICODE UTF-8",
        "MSA|AA|MSG00001|MRN alias 000100 -> 000200 already recorded", ""]
    refused = decision.refused("'000100' -> '000200' would make a cycle (000100 -> 000200 -> 000100)")
    lines = ack(refused, now=NOW, control_id="ACK2").decode().split("\r")
    assert lines[1] == "MSA|AE|MSG00001|'000100' -> '000200' would make a cycle (000100 -> 000200 -> 000100)"
    assert lines[2] == ("ERR|||ALIAS^MRN alias refused^99PDAS|E||||'000100' -> '000200' would make a cycle "
                        "(000100 -> 000200 -> 000100)")


def test_what_several_aliases_say():
    decision = Decision(Header(), "AA", aliases=(("A", "B"), ("C", "D")))
    assert decision.recorded([("A", "B"), ("C", "D")]).text == "MRN aliases A -> B, C -> D recorded"
    assert decision.recorded([("A", "B")]).text == "MRN aliases A -> B, C -> D recorded (C -> D already)"
    assert decision.recorded([]).text == "MRN aliases A -> B, C -> D already recorded"


def test_escape_and_the_framing_reject():
    assert escape("a|b^c~d&e\\f\r\ng") == "a\\F\\b\\S\\c\\R\\d\\T\\e\\E\\f g"
    reply = hl7.parse(framing_reject("an MLLP frame larger than 1048576 bytes").decode())
    assert reply["MSA.F1"] == "AR" and reply["MSA.F3"] == "an MLLP frame larger than 1048576 bytes"
