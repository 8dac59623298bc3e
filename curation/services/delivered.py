"""Which plans of the pending group were delivered, from the R&V first-delivery records.

Deliveries are matched to plans exactly as loss detection matches them (docs/contracts.md §3, the code
of ``lossdetect.services.classify``), so curation and the loss scan never disagree about which
plan a delivery belongs to: MRN aliases make one patient of several MRNs, and a record of another
planning system is no delivery of a Pinnacle plan.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lossdetect.services.alias_graph import MrnAliasGraph
from sites.models import Institution


@dataclass
class Deliveries:
    """``known`` False: no R&V data to judge by (none configured, or unreadable: see ``warning``)."""

    known: bool
    plan_pks: set[int] = field(default_factory=set)  # TpsPlan pks a first delivery matches
    warning: str = ""


def delivered_plans(*, institution: Institution, mrns: set[str], aliases: MrnAliasGraph | None = None) -> Deliveries:
    """The TPS plans (of any group) that the institution's first deliveries of ``mrns`` (of their patients,
    with ``aliases``) match."""
    if not institution.rv_url.strip():
        return Deliveries(known=False)
    # Loaded here: pandas and the R&V drivers cost nothing to sites without an R&V source.
    from connectors.rv import RvError
    from connectors.urls import redact_url
    from sites.connections import open_institution_rv
    from lossdetect.selectors import archived_plan_frame, tps_plan_frame
    from lossdetect.services.classify import candidates_frame, deliveries_frame, match_deliveries, split_other_tps
    from lossdetect.services.scan import rules_of

    try:
        with open_institution_rv(institution) as source:
            read = source.read()
    except RvError as exc:
        return Deliveries(known=False, warning=f"R&V source cannot be read ({exc}); undelivered plans not checked")
    if not read.records:
        return Deliveries(known=False, warning=f"R&V source {redact_url(institution.rv_url)} returned no first-delivery "
                                               "records; undelivered plans not checked")
    aliases = aliases or MrnAliasGraph()
    mrns = aliases.expand(mrns)
    records = [r for r in read.records if r.mrn.strip() in mrns]
    warning = f"{len(read.problems)} R&V row(s) skipped (first: {read.problems[0]})" if read.problems else ""
    deliveries, _other = split_other_tps(deliveries_frame(records, patients=aliases.patients),
                                         is_other=institution.is_other_planning_system)
    if deliveries.empty:
        return Deliveries(known=True, warning=warning)
    candidates = candidates_frame(
        tps_plan_frame(institution=institution), archived_plan_frame(institution=institution),
        active_groups=[institution.pending_group, *institution.clinical_groups], mrns=mrns,
        patients=aliases.patients,
    )
    matched = match_deliveries(deliveries, candidates, rules=rules_of(institution))
    return Deliveries(known=True, plan_pks={int(pk) for pk in matched["tps_plan_pk"].dropna()}, warning=warning)
