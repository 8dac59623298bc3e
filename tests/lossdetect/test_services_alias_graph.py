"""Which MRNs are one patient (docs/contracts.md §2.7): the alias graph, without a database."""
from __future__ import annotations

import pytest

from lossdetect.services.alias_graph import MrnAliasGraph


def test_one_patient_in_both_directions_and_across_merges():
    graph = MrnAliasGraph([("A", "B"), ("B", "C"), ("X", "C"), ("P", "Q")])
    assert graph.patient_of("A") == graph.patient_of("B") == graph.patient_of("C") == graph.patient_of("X")
    assert graph.patient_of("P") == graph.patient_of("Q") != graph.patient_of("A")
    assert graph.patient_of("LONE") == "LONE"
    assert graph.mrns_of("C") == ("A", "B", "C", "X")
    assert graph.also_known_as("B") == ["A", "C", "X"] and graph.also_known_as("LONE") == []
    assert graph.current_mrn("A") == "C" and graph.current_mrn("C") == "C"
    assert graph.chain("A") == ["A", "B", "C"]
    assert graph.expand({"X", "Q", "LONE"}) == {"A", "B", "C", "X", "P", "Q", "LONE"}


def test_the_patient_key_does_not_depend_on_the_order_aliases_came_in():
    pairs = [("A", "B"), ("B", "C"), ("D", "C")]
    assert MrnAliasGraph(pairs).patients == MrnAliasGraph(reversed(pairs)).patients
    assert set(MrnAliasGraph(pairs).patients.values()) == {"A"}


def test_mrns_are_trimmed():
    graph = MrnAliasGraph([(" 000123 ", "000456  ")])
    assert graph.patient_of("000456") == graph.patient_of(" 000123") and graph.also_known_as("000123 ") == ["000456"]


@pytest.mark.parametrize(("old", "new", "problem"), [
    ("A", "A", "an MRN cannot be an alias of itself ('A')"),
    ("", "A", "old_mrn and new_mrn must both be given"),
    ("C", "A", "'C' -> 'A' would make a cycle (C -> A -> B -> C)"),
    ("B", "A", "'B' is already an alias of 'C'; an MRN goes by one MRN only (change or delete that alias first)"),
    ("A", "X", "'A' is already an alias of 'B'; an MRN goes by one MRN only (change or delete that alias first)"),
    ("C", "B", "'C' -> 'B' would make a cycle (C -> B -> C)"),
])
def test_what_may_not_be_added(old, new, problem):
    assert MrnAliasGraph([("A", "B"), ("B", "C")]).problem(old, new) == problem


def test_what_may_be_added():
    graph = MrnAliasGraph([("A", "B"), ("B", "C")])
    assert graph.problem("A", "B") is None  # already there
    assert graph.problem("C", "D") is None  # the chain goes on
    assert graph.problem("X", "A") is None  # another old MRN of the same patient
    assert graph.without("B").problem("B", "X") is None  # a change of B's alias is checked without it
    assert graph.without("B").problem("B", "A") == "'B' -> 'A' would make a cycle (B -> A -> B)"
    graph.add("C", "D")
    assert graph.current_mrn("A") == "D" and graph.problem("D", "A") == "'D' -> 'A' would make a cycle (D -> A -> B -> C -> D)"
