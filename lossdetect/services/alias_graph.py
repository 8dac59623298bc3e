"""Which MRNs are one patient: the MRN aliases of an institution as a graph (docs/contracts.md §2.7).

Pure code over (old MRN, MRN) pairs, no database: the selector ``lossdetect.selectors.alias_graph``
reads an institution's pairs in one query and hands them here. Every MRN reached through aliases, in
either direction and across any number of merges (A -> B, then B -> C), belongs to one patient. A
scan maps each record's MRN to its patient with one dictionary lookup (``patients``), never a query
per record.

The rules a new alias must keep (``problem``): an MRN is never its own alias, an old MRN points to
one MRN only, and no chain of aliases comes back to where it started. So the aliases of a patient
form a tree whose root is the MRN the patient goes by now (``current_mrn``).
"""
from __future__ import annotations

from collections.abc import Iterable


class MrnAliasGraph:
    """The patients made of several MRNs. MRNs are compared as text after trimming spaces at either end."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()):
        self.points_to: dict[str, str] = {}
        self._patients: dict[str, str] | None = None
        self._members: dict[str, tuple[str, ...]] = {}
        for old, new in pairs:
            self.add(old, new)

    def add(self, old_mrn: str, mrn: str) -> None:
        """Take one more alias in (unchecked: ask ``problem`` first)."""
        old_mrn, mrn = old_mrn.strip(), mrn.strip()
        if old_mrn and mrn and old_mrn != mrn:
            self.points_to[old_mrn] = mrn
            self._patients = None

    @property
    def patients(self) -> dict[str, str]:
        """Every MRN named by an alias -> the key of its patient (its smallest MRN)."""
        if self._patients is None:
            parent: dict[str, str] = {}

            def root(mrn: str) -> str:
                parent.setdefault(mrn, mrn)
                while parent[mrn] != mrn:
                    parent[mrn] = parent[parent[mrn]]
                    mrn = parent[mrn]
                return mrn

            for old, new in self.points_to.items():
                a, b = root(old), root(new)
                if a != b:  # the smaller MRN stays the root: stable whatever order the aliases came in
                    parent[max(a, b)] = min(a, b)
            members: dict[str, list[str]] = {}
            for mrn in parent:
                members.setdefault(root(mrn), []).append(mrn)
            self._members = {key: tuple(sorted(group)) for key, group in members.items()}
            self._patients = {mrn: key for key, group in self._members.items() for mrn in group}
        return self._patients

    def __bool__(self) -> bool:
        return bool(self.points_to)

    def __len__(self) -> int:
        return len(self.points_to)

    def patient_of(self, mrn: str) -> str:
        """The key of ``mrn``'s patient: the same for all of that patient's MRNs (``mrn`` itself without aliases)."""
        mrn = mrn.strip()
        return self.patients.get(mrn, mrn)

    def mrns_of(self, mrn: str) -> tuple[str, ...]:
        """Every MRN of ``mrn``'s patient, ``mrn`` included, sorted."""
        mrn = mrn.strip()
        key = self.patients.get(mrn)
        return self._members[key] if key is not None else (mrn,)

    def also_known_as(self, mrn: str) -> list[str]:
        """The patient's other MRNs, sorted (empty without aliases)."""
        mrn = mrn.strip()
        return [other for other in self.mrns_of(mrn) if other != mrn]

    def expand(self, mrns: Iterable[str]) -> set[str]:
        """``mrns`` and every other MRN of their patients."""
        found: set[str] = set()
        for mrn in mrns:
            found.update(self.mrns_of(mrn))
        return found

    def current_mrn(self, mrn: str) -> str:
        """The MRN the patient goes by now: the end of the chain of aliases from ``mrn``."""
        return self.chain(mrn)[-1]

    def chain(self, mrn: str) -> list[str]:
        """``mrn`` and the MRNs its aliases lead to, in order: ``["A", "B", "C"]`` for A -> B -> C."""
        path, seen = [mrn.strip()], {mrn.strip()}
        while path[-1] in self.points_to and self.points_to[path[-1]] not in seen:
            path.append(self.points_to[path[-1]])
            seen.add(path[-1])
        return path

    def problem(self, old_mrn: str, mrn: str) -> str | None:
        """Why the alias ``old_mrn -> mrn`` may not be added, or None. An alias already there is no problem."""
        old_mrn, mrn = old_mrn.strip(), mrn.strip()
        if not old_mrn or not mrn:
            return "old_mrn and new_mrn must both be given"
        if old_mrn == mrn:
            return f"an MRN cannot be an alias of itself ({old_mrn!r})"
        if self.points_to.get(old_mrn) == mrn:
            return None
        if old_mrn in self.points_to:
            return (f"{old_mrn!r} is already an alias of {self.points_to[old_mrn]!r}; an MRN goes by one MRN only "
                    "(change or delete that alias first)")
        path = self.chain(mrn)
        if old_mrn in path:
            loop = " -> ".join([old_mrn, *path[:path.index(old_mrn) + 1]])
            return f"{old_mrn!r} -> {mrn!r} would make a cycle ({loop})"
        return None

    def without(self, old_mrn: str) -> "MrnAliasGraph":
        """The graph without the alias of ``old_mrn`` (to check a change of that alias)."""
        return MrnAliasGraph((old, new) for old, new in self.points_to.items() if old != old_mrn.strip())
