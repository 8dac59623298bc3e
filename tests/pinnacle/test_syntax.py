"""The Pinnacle text syntax: the real sample files, round trips, encodings and broken input."""
from __future__ import annotations

import random

import pytest

from pinnacle.syntax import Bare, Node, ParseError, decode, dumps, parse

PATIENT = "Institution_1/Mount_0/Patient_1"


def _read(root, rel):
    return decode((root / rel).read_bytes())[0]


# --- the real sample ------------------------------------------------------------------------------


def test_sample_patient_file_fields(pinnacle_sample):
    node = parse(_read(pinnacle_sample, f"{PATIENT}/Patient"))
    assert node.get_str("MedicalRecordNumber") == "000000"
    assert node.get_int("PatientID") == 10000
    plans = node.get_node("PlanList").get_all("Plan")
    assert [p.get_str("PlanName") for p in plans] == ["BRAIN", "CopyOf_1_BRAIN"]
    assert plans[0].get_node("ObjectVersion").get_str("LastModifiedTimeStamp") == "2020-01-01 10:00:00"
    assert node.get_node("ObjectVersion").get_str("LastModifiedTimeStamp") == ""
    assert node.get_node("ImageSetList").get_node("ImageSet").get_int("NumberOfImages") == 101


def test_sample_trial_file_blocks_dotted_keys_children_and_literals(pinnacle_sample):
    node = parse(_read(pinnacle_sample, f"{PATIENT}/Plan_0/plan.Trial"))
    trials = node.get_all("Trial")
    assert [t.get_str("Name") for t in trials] == ["Trial_1", "Trial_2"]
    assert trials[0].get_str("DoseGrid.VoxelSize.X") == "0.3"  # written "DoseGrid .VoxelSize .X"
    assert trials[0].get_str("RecordDoseData") == "\\XDR:0\\"
    assert any("#0" in child.keys() for _, child in _walk(trials[0]) if isinstance(child, Node))


def _walk(node):
    for key, value in node:
        yield key, value
        if isinstance(value, Node):
            yield from _walk(value)


def test_sample_institution_file_round_trips_keeping_numbers_bare(pinnacle_sample):
    text = _read(pinnacle_sample, "Institution")
    node = parse(text)
    written = dumps(node)
    assert parse(written) == node
    assert "InstitutionID = 1;" in written and 'InstitutionID = "1"' not in written
    assert "PatientID = 1;" in written
    assert 'Name = "16.2 Smart Enterprise";' in written
    # Apart from the trailing comment, the file comes back byte for byte.
    assert written.rsplit("/*", 1)[0] == text.rsplit("/*", 1)[0]


@pytest.mark.parametrize("rel", [f"{PATIENT}/Patient", f"{PATIENT}/Plan_0/plan.Trial", f"{PATIENT}/Plan_0/plan.Points",
                                 f"{PATIENT}/ImageSet_0.header", "Institution"])
def test_sample_files_survive_a_round_trip(pinnacle_sample, rel):
    node = parse(_read(pinnacle_sample, rel))
    assert parse(dumps(node)) == node


# --- values ---------------------------------------------------------------------------------------


def test_values_strings_bare_words_empty_and_comments():
    node = parse('A = "x;y /* not a comment */";\nB = 000123;\nC = ;\nD = -1.5e3; // trailing\n/* end */')
    assert node.get("A") == "x;y /* not a comment */"
    assert node.get("B") == "000123" and isinstance(node.get("B"), Bare)
    assert not isinstance(node.get("A"), Bare)
    assert node.get("C") == ""
    assert node.get("D") == "-1.5e3"


def test_arrays_and_repeated_blocks():
    node = parse("Points[] ={\n  1,2,\n  3,4,\n};\nL ={ P ={ X = 1; }; P ={ X = 2; }; };\nE ={\n};\n")
    assert node.get("Points") == ["1", "2", "3", "4"]
    assert [p.get_int("X") for p in node.get_node("L").get_all("P")] == [1, 2]
    assert node.get("E") == Node()
    assert parse(dumps(node)) == node


def test_escaped_quotes_round_trip():
    node = Node([("Name", 'say "hi" \\ there')])
    assert parse(dumps(node)).get("Name") == 'say "hi" \\ there'


def test_unterminated_trailing_comment_is_ignored():
    assert parse("A = 1;\n/* cut").get_int("A") == 1


def test_chinese_values_round_trip_in_gb18030():
    text = dumps([("LastName", "张"), ("FirstName", "三")])
    node = parse(decode(text.encode("gb18030"))[0])
    assert (node.get("LastName"), node.get("FirstName")) == ("张", "三")


# --- broken input -----------------------------------------------------------------------------------


def test_truncated_file_names_the_outermost_open_block_and_its_line():
    text = "A = 1;\nPlanList ={\n  Plan ={\n    ObjectVersion ={\n      X = 1;\n"
    with pytest.raises(ParseError) as caught:
        parse(text)
    assert str(caught.value) == "line 2: file ends inside block 'PlanList' (truncated file?)"
    assert caught.value.line == 2


def test_truncated_in_the_middle_of_a_key_is_a_truncation_not_a_syntax_error():
    with pytest.raises(ParseError, match=r"line 1: file ends inside block 'L' \(truncated file\?\)"):
        parse("L ={\n  X = 1;\n  PlanNa")
    with pytest.raises(ParseError, match="file ends after 'A ='"):
        parse("A =")


def test_truncated_sample_patient_file(pinnacle_sample):
    text = _read(pinnacle_sample, f"{PATIENT}/Patient")
    cut = text[: text.index('PlanName = "CopyOf_1_BRAIN"')]
    with pytest.raises(ParseError) as caught:
        parse(cut)
    line = text[: text.index("PlanList ={")].count("\n") + 1
    assert str(caught.value) == f"line {line}: file ends inside block 'PlanList' (truncated file?)"


@pytest.mark.parametrize("text, message", [
    ('A = "abc', "line 1: unterminated string"),
    ("A = 1;\n};", "line 2: '};' without an open block"),
    ("A = 1 B = 2;", "line 1: missing ';' after 'A'"),
    ("just words here;", "line 1: unexpected 'just'"),
    ("A = 1;\nDirSi", "line 2: file ends after 'DirSi' (truncated file?)"),
    ("A = {", "line 1: file ends inside block 'A'"),
    ("L ={\n X = 1;\n 5\n};", "line 3: unexpected '5' in block 'L'"),
])
def test_malformed_text_raises_one_line_parse_error(text, message):
    with pytest.raises(ParseError) as caught:
        parse(text)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_random_damage_never_raises_anything_but_parse_error(pinnacle_sample):
    """Byte flips and cuts of the real Patient file: parse() either works or raises ParseError."""
    data = (pinnacle_sample / PATIENT / "Patient").read_bytes()
    rng = random.Random(1234)
    outcomes = set()
    for _ in range(300):
        damaged = bytearray(data[: rng.randrange(len(data))])
        for _ in range(rng.randrange(4)):
            if damaged:
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        try:
            parse(decode(bytes(damaged))[0])
            outcomes.add("parsed")
        except ParseError:
            outcomes.add("error")
    assert outcomes == {"parsed", "error"}


# --- decoding ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, text, encoding", [
    ("张三".encode("utf-8"), "张三", "utf-8"),
    ("\ufeffLAST".encode("utf-8"), "LAST", "utf-8"),
    ("欧阳娜娜".encode("gb18030"), "欧阳娜娜", "gb18030"),
    ('Name = "José";'.encode("latin-1"), 'Name = "José";', "latin-1"),
])
def test_decode_order_utf8_gb18030_latin1(raw, text, encoding):
    assert decode(raw) == (text, encoding)


def test_decode_never_fails_on_any_bytes():
    rng = random.Random(99)
    for _ in range(200):
        text, encoding = decode(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))))
        assert isinstance(text, str) and encoding in {"utf-8", "gb18030", "latin-1"}


def test_blocks_nested_beyond_any_real_file_are_a_parse_error_not_a_crash():
    deep = "".join(f"B{n} ={{\n" for n in range(5000)) + "".join("};\n" for _ in range(5000))
    with pytest.raises(ParseError, match=r"line 65: blocks nested more than 64 deep \(at 'B64'\)"):
        parse(deep)
    fine = "".join(f"B{n} ={{\n" for n in range(64)) + "X = 1;\n" + "".join("};\n" for _ in range(64))
    node = parse(fine)
    for n in range(64):
        node = node.get_node(f"B{n}")
    assert node.get_int("X") == 1
