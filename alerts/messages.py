"""The sentence of each alert kind, in the active language."""
from __future__ import annotations

from django.utils.translation import gettext as _


def alert_message(kind: str, subject: str, detail: dict) -> str:
    last = detail.get("last") or _("never")
    if kind == "archive_unsafe":
        copies = ", ".join(f"{target}: {state}" for target, state in sorted((detail.get("copies") or {}).items()))
        return _("The archive of patient %(mrn)s (archive id %(id)s) has no verified copy left (%(copies)s).") % {
            "mrn": detail.get("mrn", "?"), "id": subject.removeprefix("archive:"), "copies": copies or _("no copy")}
    if kind == "no_archive_run":
        return _("No archive run has finished for %(days)s days (last: %(last)s).") % {
            "days": detail.get("days", "?"), "last": last}
    if kind == "no_loss_scan":
        return _("No loss scan has succeeded for %(days)s days (last: %(last)s): losses are unknown.") % {
            "days": detail.get("days", "?"), "last": last}
    if kind == "fixity_behind":
        return _("%(n)s archive copies were not checked within the %(cycle)s-day cycle (oldest check: %(last)s).") % {
            "n": detail.get("copies", "?"), "cycle": detail.get("cycle_days", "?"), "last": last}
    if kind == "target_unreachable":
        return _("Storage target %(target)s has been unreachable for %(days)s days (last answered: %(last)s).") % {
            "target": subject, "days": detail.get("days", "?"), "last": last}
    return f"{kind} {subject}".strip()
