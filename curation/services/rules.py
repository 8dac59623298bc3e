"""The institution's naming rules and transitional-plan patterns: defaults, and applying them.

Defaults are created for an institution that has none (of that kind) when it is first curated;
to switch a default off, disable it in the admin (deleting every rule brings the defaults back).
The site's MRN pattern (``Institution.mrn_pattern``) is checked beside the rules, always from the
institution's current setting, so editing it there takes effect at once.

Expressions come from admins and run over names from the TPS, so each search has a time bound
(``SEARCH_SECONDS``, with the ``regex`` module: Python's ``re`` has none). A rule that runs out of time on
a value (catastrophic backtracking such as ``^(a|aa)+$``) is not guessed at: the patient gets a reason
naming the rule, so a person looks, and the curation of every other patient goes on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import regex
from django.db import transaction

from sites.models import Institution
from curation.models import NamingRule, TransitionalPattern

# Characters that break file systems or the tools around them (Windows shares, tar, shell scripts).
BAD_CHARACTERS = r'[/\\:*?"<>|\x00-\x1f\x7f]'
BAD_CHARACTER_MESSAGE = 'has a character that breaks file systems (/ \\ : * ? " < > | or a control character)'

A = NamingRule.AppliesTo
M = NamingRule.Mode
DEFAULT_NAMING_RULES: tuple[tuple[str, str, str, str], ...] = (
    (A.LAST_NAME, M.MUST_MATCH, r"\S", "last name is empty"),
    (A.FIRST_NAME, M.MUST_MATCH, r"\S", "first name is empty"),
    (A.MRN, M.MUST_MATCH, r"\S", "MRN is missing"),
    (A.PATIENT_NAME, M.MUST_NOT_MATCH, BAD_CHARACTERS, f"patient name {BAD_CHARACTER_MESSAGE}"),
    (A.MRN, M.MUST_NOT_MATCH, BAD_CHARACTERS, f"MRN {BAD_CHARACTER_MESSAGE}"),
    (A.PLAN_NAME, M.MUST_MATCH, r"\S", "plan name is empty"),
    (A.PLAN_NAME, M.MUST_NOT_MATCH, BAD_CHARACTERS, f"plan name {BAD_CHARACTER_MESSAGE}"),
    (A.TRIAL_NAME, M.MUST_NOT_MATCH, BAD_CHARACTERS, f"trial name {BAD_CHARACTER_MESSAGE}"),
)
DEFAULT_TRANSITIONAL_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"^CopyOf_", "a copy Pinnacle made (CopyOf_)"),
    (r"^Copy of", "a copy (Copy of ...)"),
    (r"\bTEST\b", "a test plan"),
    (r"\bQA\b", "a QA plan"),
)


def ensure_default_rules(*, institution: Institution) -> None:
    """Create the default naming rules and transitional patterns where the institution has none."""
    with transaction.atomic():
        if not NamingRule.objects.filter(institution=institution).exists():
            NamingRule.objects.bulk_create([
                NamingRule(institution=institution, applies_to=applies_to, mode=mode, regex=regex, message=message,
                           order=10 * (index + 1))
                for index, (applies_to, mode, regex, message) in enumerate(DEFAULT_NAMING_RULES)
            ])
        if not TransitionalPattern.objects.filter(institution=institution).exists():
            TransitionalPattern.objects.bulk_create([
                TransitionalPattern(institution=institution, regex=regex, message=message)
                for regex, message in DEFAULT_TRANSITIONAL_PATTERNS
            ])


# --- compiled rules ----------------------------------------------------------------------------------

SEARCH_SECONDS = 0.25  # per value: names are short, a sane expression takes microseconds


def compile_rule(text: str, *, ignore_case: bool = False) -> regex.Pattern:
    """An admin's expression, compiled as Python's ``re`` reads it (``regex.V0``); ``regex.error`` if bad."""
    return regex.compile(text, regex.V0 | (regex.IGNORECASE if ignore_case else 0))


class RuleTooSlow(Exception):
    """A rule's expression ran out of its time on one value; the message names the rule."""


def _search(pattern: regex.Pattern, value: str, *, whole: bool = False, rule: str):
    try:
        return (pattern.fullmatch if whole else pattern.search)(value, timeout=SEARCH_SECONDS)
    except TimeoutError:
        raise RuleTooSlow(f"{rule} ran out of time ({SEARCH_SECONDS} s) on {value[:80]!r} and was not applied; "
                          "simplify the expression") from None


@dataclass(frozen=True)
class CompiledRule:
    applies_to: str
    must_match: bool
    pattern: regex.Pattern
    message: str

    def broken_by(self, value: str) -> str | None:
        """None when ``value`` keeps the rule, else the reason's detail (what matched, if anything).
        ``RuleTooSlow`` when the expression runs out of time on ``value``."""
        found = _search(self.pattern, value, rule=f"naming rule {self.pattern.pattern!r} ({self.message})")
        if self.must_match:
            return None if found else ""
        return None if found is None else found.group()


@dataclass(frozen=True)
class CompiledPattern:
    pattern: regex.Pattern
    message: str


@dataclass(frozen=True)
class RuleBook:
    naming: tuple[CompiledRule, ...]
    transitional: tuple[CompiledPattern, ...]
    mrn_pattern: regex.Pattern | None
    mrn_pattern_text: str
    problems: tuple[str, ...]  # rules that could not be used (a bad expression saved by other means)


def load_rule_book(*, institution: Institution) -> RuleBook:
    """The enabled rules of the institution, compiled (two queries)."""
    problems: list[str] = []
    naming = []
    for rule in NamingRule.objects.filter(institution=institution, enabled=True).order_by("order", "pk"):
        try:
            naming.append(CompiledRule(rule.applies_to, rule.mode == M.MUST_MATCH, compile_rule(rule.regex),
                                       rule.message))
        except regex.error as exc:
            problems.append(f"naming rule {rule.pk} {rule.regex!r}: bad regular expression: {exc}; not applied")
    transitional = []
    for pattern in TransitionalPattern.objects.filter(institution=institution, enabled=True).order_by("pk"):
        try:
            transitional.append(CompiledPattern(compile_rule(pattern.regex, ignore_case=True), pattern.message))
        except regex.error as exc:
            problems.append(f"transitional pattern {pattern.pk} {pattern.regex!r}: bad regular expression: {exc}; "
                            "not applied")
    mrn_pattern = None
    if institution.mrn_pattern:
        try:
            mrn_pattern = compile_rule(institution.mrn_pattern)
        except regex.error as exc:
            problems.append(f"institution {institution.code} mrn_pattern {institution.mrn_pattern!r}: bad regular "
                            f"expression: {exc}; not applied")
    return RuleBook(tuple(naming), tuple(transitional), mrn_pattern, institution.mrn_pattern, tuple(problems))


# --- applying them -------------------------------------------------------------------------------------


def person_name(last: str, first: str, middle: str) -> str:
    """DICOM PN style ``Last^First^Middle``, trailing empty parts dropped."""
    return "^".join([last, first, middle]).rstrip("^")


def _reason(what: str, value: str, message: str, detail: str, *, show_empty: bool) -> str:
    text = f"{what} {value!r}: {message}" if value or show_empty else message
    return f"{text} (found {detail!r})" if detail else text


@dataclass(frozen=True)
class PlanNames:
    plan_id: int
    name: str
    trial_names: tuple[str, ...]


def naming_reasons(book: RuleBook, *, last_name: str, first_name: str, middle_name: str, mrn: str,
                   plans: Iterable[PlanNames]) -> tuple[list[str], list[int]]:
    """Every broken naming rule as a one-line reason, and the PlanIDs concerned."""
    plans = list(plans)
    patient_values = {
        A.LAST_NAME: ("last name", last_name),
        A.FIRST_NAME: ("first name", first_name),
        A.PATIENT_NAME: ("patient name", person_name(last_name, first_name, middle_name)),
        A.MRN: ("MRN", mrn),
    }
    reasons: list[str] = []
    plan_ids: list[int] = []
    for rule in book.naming:
        if rule.applies_to in patient_values:
            what, value = patient_values[rule.applies_to]
            try:
                detail = rule.broken_by(value)
            except RuleTooSlow as exc:
                reasons.append(f"{what}: {exc}")
                continue
            if detail is not None:
                reasons.append(_reason(what, value, rule.message, detail, show_empty=False))
            continue
        for plan in plans:
            if rule.applies_to == A.PLAN_NAME:
                checks = [(f"plan Plan_{plan.plan_id}", plan.name)]
            else:
                checks = [(f"plan Plan_{plan.plan_id} {plan.name!r} trial", t) for t in plan.trial_names]
            for what, value in checks:
                try:
                    detail = rule.broken_by(value)
                except RuleTooSlow as exc:
                    reason = f"{what}: {exc}"
                else:
                    if detail is None:
                        continue
                    reason = _reason(what, value, rule.message, detail, show_empty=True)
                reasons.append(reason)
                if plan.plan_id not in plan_ids:
                    plan_ids.append(plan.plan_id)
    if book.mrn_pattern is not None and mrn:
        try:
            if not _search(book.mrn_pattern, mrn, whole=True, rule=f"the site's MRN pattern {book.mrn_pattern_text!r}"):
                reasons.append(f"MRN {mrn!r} does not match the site's MRN pattern {book.mrn_pattern_text!r}")
        except RuleTooSlow as exc:
            reasons.append(f"MRN: {exc}")
    return reasons, plan_ids


def transitional_name_reasons(book: RuleBook, plans: Iterable[PlanNames]) -> tuple[list[str], list[int]]:
    """Plans whose name looks like an intermediate (copies, tests, QA)."""
    reasons: list[str] = []
    plan_ids: list[int] = []
    for plan in plans:
        for pattern in book.transitional:
            try:
                found = _search(pattern.pattern, plan.name, rule=f"transitional pattern {pattern.pattern.pattern!r}")
            except RuleTooSlow as exc:
                # Not guessed either way: the plan is named in the reasons so a person decides.
                reasons.append(f"plan Plan_{plan.plan_id} {plan.name!r}: {exc}")
                plan_ids.append(plan.plan_id)
                break
            if found:
                reasons.append(f"plan Plan_{plan.plan_id} {plan.name!r} looks like an intermediate plan: "
                               f"{pattern.message}")
                plan_ids.append(plan.plan_id)
                break  # one reason per plan is enough
    return reasons, plan_ids
