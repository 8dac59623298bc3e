"""Every URL the resolver knows, requested as anonymous, each role, a user of another institution and a
superuser: the status each must get. A URL without an entry in the table fails the test, so a new page
cannot ship without an access rule.

Users: ``viewer``, ``physicist``, ``archive admin`` (staff) and ``auditor`` are members of ALPHA, where
every object of the fixture lives; ``other`` holds all four roles and staff status but is a member of
BETA only, so every object of ALPHA must be absent for it (404, or the admin's "does not exist"
redirect); ``superuser`` sees all. POST-only actions are posted with an empty form: a permitted user gets
the form's error redirect (302) and nothing happens; the dedicated tests below show that a user of
another institution cannot act on ALPHA with a full form either.
"""
from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from archiver.models import ArchiveRun, RestoreRecord
from audit.models import AuditEvent
from audit.events import Event
from audit.services import record_event
from curation.models import Acknowledgement, CurationRun
from lossdetect.models import LossScan
from sites.access import institution_path
from sites.admin_base import InstitutionScopedAdmin
from sites.roles import ROLES, VIEWER
from tests.access_world import MRN, clients_of, world  # noqa: F401 - the fixture
from tests.factories import LossScanFactory, make_user
from tests.reports.factories import ArchiveRunFactory

pytestmark = pytest.mark.django_db

USERS = ("anonymous", "viewer", "physicist", "archive_admin", "auditor", "other", "superuser")
LOGIN = "login"  # a redirect to the log-in page
ADMIN_LOGIN = "admin-login"  # a redirect to the admin's log-in page


def _row(anonymous, viewer, physicist, archive_admin, auditor, other, superuser) -> dict[str, object]:
    return dict(zip(USERS, (anonymous, viewer, physicist, archive_admin, auditor, other, superuser)))


READ = _row(LOGIN, 200, 200, 200, 403, 200, 200)  # a list of the user's institutions (other: BETA's)
READ_ALPHA_OBJECT = _row(LOGIN, 200, 200, 200, 403, 404, 200)
AUDIT_READ = _row(LOGIN, 403, 403, 403, 200, 200, 200)
ANYONE_LOGGED_IN = _row(LOGIN, 200, 200, 200, 200, 200, 200)
PUBLIC = _row(200, 200, 200, 200, 200, 200, 200)

# (method, expected status per user). Path parameters are filled by _path_kwargs().
TABLE: dict[str, tuple[str, dict[str, object]]] = {
    "home": ("get", ANYONE_LOGGED_IN),
    "login": ("get", PUBLIC),
    "logout": ("get", _row(405, 405, 405, 405, 405, 405, 405)),  # a link cannot log anyone out
    "set_language": ("get", _row(302, 302, 302, 302, 302, 302, 302)),  # back to the page; POST sets it
    # No login: the test client's address is loopback, a monitoring address, and no check fails in the world
    # (tests/pdas/test_monitoring.py has the refusals and the failures).
    "healthz": ("get", PUBLIC),
    "metrics": ("get", PUBLIC),
    "archiver:run-list": ("get", READ),
    "archiver:run-start": ("post", _row(LOGIN, 403, 403, 302, 403, 302, 302)),
    "archiver:run-detail": ("get", READ_ALPHA_OBJECT),
    "archiver:run-progress": ("get", READ_ALPHA_OBJECT),
    "archiver:restore": ("get", READ),
    "archiver:restore-start": ("post", _row(LOGIN, 403, 302, 403, 403, 302, 302)),
    "archiver:restore-detail": ("get", READ_ALPHA_OBJECT),
    "archiver:restore-status": ("get", READ_ALPHA_OBJECT),
    # No rendition in the world: back to the restore page with a message, for whoever may read the archive.
    "archiver:rendition-download": ("get", _row(LOGIN, 302, 302, 302, 403, 404, 302)),
    # Physicists and archive admins start a rendition (back to the restore page); the world's archive has none.
    "archiver:rendition-make": ("post", _row(LOGIN, 403, 302, 302, 403, 404, 302)),
    # Archive admins only export anonymised DICOM; no rendition in the world: back to the restore page.
    "archiver:research-export": ("get", _row(LOGIN, 403, 403, 302, 403, 404, 302)),
    "archiver:target-list": ("get", READ),
    "archiver:target-detail": ("get", READ_ALPHA_OBJECT),
    "lossdetect:scan-list": ("get", READ),
    "lossdetect:scan-start": ("post", _row(LOGIN, 403, 302, 403, 403, 302, 302)),
    "lossdetect:scan-detail": ("get", READ_ALPHA_OBJECT),
    "lossdetect:scan-status": ("get", READ_ALPHA_OBJECT),
    "lossdetect:pending-list": ("get", READ),
    "lossdetect:alias-list": ("get", READ),
    "curation:index": ("get", READ),
    "curation:rerun": ("post", _row(LOGIN, 403, 302, 403, 403, 302, 302)),
    "curation:run-status": ("get", READ_ALPHA_OBJECT),
    "curation:patient": ("get", READ_ALPHA_OBJECT),
    "curation:acknowledge": ("post", _row(LOGIN, 403, 302, 403, 403, 404, 302)),
    "reports:index": ("get", READ),
    "reports:print": ("get", READ),
    "reports:reconcile-list": ("get", READ),
    "reports:reconcile-start": ("post", _row(LOGIN, 403, 403, 302, 403, 302, 302)),
    "reports:reconcile-detail": ("get", READ_ALPHA_OBJECT),
    "audit:log": ("get", AUDIT_READ),
    "audit:pseudonym-maps": ("get", AUDIT_READ),  # they re-identify patients: auditors only
}
# The admin is covered as a group (admin_expectation): only staff get in, each model admin checks the
# model permissions, and objects of another institution do not exist for the user.
ADMIN_PREFIX = "admin/"
CATCH_ALL = "admin/(?P<url>.*)$"  # any other admin path: 404 for staff, the log-in page for others


def _walk(patterns, prefix: str = "", namespace: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}:{pattern.namespace}".strip(":") if pattern.namespace else namespace
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}:{pattern.name}".strip(":") if pattern.name else None
            yield name, prefix + str(pattern.pattern), pattern


def all_url_patterns() -> list[tuple[str | None, str, URLPattern]]:
    return list(_walk(get_resolver().url_patterns))


def _path_kwargs(name: str, route: str, world) -> dict:
    """Ids of ALPHA's objects for a page's path parameters."""
    objects = world["objects"]
    by_page = {"archiver:run-detail": "archiverun", "archiver:run-progress": "archiverun",
               "archiver:restore-detail": "restorerecord", "archiver:restore-status": "restorerecord",
               "archiver:target-detail": "storagetarget", "archiver:rendition-download": "archive",
               "archiver:rendition-make": "archive", "archiver:research-export": "archive",
               "lossdetect:scan-detail": "lossscan", "lossdetect:scan-status": "lossscan",
               "curation:run-status": "curationrun", "curation:patient": "tpspatient",
               "curation:acknowledge": "tpspatient", "reports:reconcile-detail": "reconciliationimport"}
    if "<" not in route:
        return {}
    return {"pk": objects[by_page[name]].pk}


def _outcome(response) -> object:
    if response.status_code == 302:
        location = response["Location"]
        if location.startswith(reverse("admin:login")):
            return ADMIN_LOGIN
        if location.startswith(reverse("login")):
            return LOGIN
    return response.status_code


def test_every_page_has_an_access_rule_and_keeps_it(world):
    clients, wrong = clients_of(world), []
    for name, route, _pattern in all_url_patterns():
        if route.startswith(ADMIN_PREFIX):
            continue  # test_every_admin_url_keeps_the_admin_rules
        assert name in TABLE, f"URL {route!r} ({name}) has no entry in the access table of {__name__}"
        method, expected = TABLE[name]
        url = reverse(name, kwargs=_path_kwargs(name, route, world))
        for user in USERS:
            got = _outcome(getattr(clients[user], method)(url))
            if got != expected[user]:
                wrong.append(f"{method.upper()} {url} as {user}: {got}, expected {expected[user]}")
    assert not wrong, "\n".join(wrong)


def test_the_table_names_no_page_that_does_not_exist():
    names = {name for name, route, _ in all_url_patterns() if not route.startswith(ADMIN_PREFIX)}
    assert set(TABLE) - names == set()


# --- the admin ---------------------------------------------------------------------------------------------


def _model_admin_url(name: str):
    """(model admin, kind) for ``admin:<app>_<model>_<kind>``; None for the site's own pages."""
    for model, model_admin in admin.site._registry.items():
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}_"
        if name.startswith(prefix):
            return model_admin, name[len(prefix):]
    return None


class _Request:
    def __init__(self, user):
        self.user = user


def admin_expectation(name: str | None, route: str, user_name: str, user, world) -> object:
    """The status a user gets for an admin URL, from the admin's rules as PDAS sets them."""
    if name == "admin:logout":  # POST only; the admin sends others to its index (and so to its log-in)
        return 405 if user is not None and user.is_staff else 302
    if user is None or not user.is_staff:
        return 200 if name == "admin:login" else ADMIN_LOGIN
    fixed = {"admin:index": 200, "admin:login": 302, "admin:password_change": 200,
             "admin:password_change_done": 200, "admin:jsi18n": 200, "admin:autocomplete": 403,
             "admin:view_on_site": 302, "admin:app_list": 200}
    if name in fixed:
        return fixed[name]
    if route == CATCH_ALL:
        return 404
    if name is None:  # <object_id>/ redirects to the change page
        return 302
    model_admin, kind = _model_admin_url(name)
    model, request = model_admin.model, _Request(user)
    exists = model._default_manager.filter(pk=_object_id(model._meta.model_name, world)).exists()
    # Every object of the fixture lives in ALPHA (the audit event names ALPHA): "other" is of BETA.
    scoped = institution_path(model) is not None or model is AuditEvent
    visible = exists and (not scoped or user_name != "other")
    may_view = model_admin.has_view_or_change_permission(request)
    if kind == "changelist":
        return 200 if may_view else 403
    if kind == "add":
        return 200 if model_admin.has_add_permission(request) else 403
    if kind == "change":
        return 403 if not may_view else 200 if visible else 302
    if kind == "history":
        return 302 if not visible else 200 if may_view else 403
    if kind == "password_change":  # a user's password: changing users is superuser work
        return 200 if model_admin.has_change_permission(request) else 403
    if kind == "delete":
        return 403 if not model_admin.has_delete_permission(request) else 200 if visible else 302
    raise AssertionError(f"admin URL {name} has no rule in admin_expectation")


def _admin_kwargs(name: str | None, route: str, world) -> dict:
    kwargs = {}
    if "<app_label>" in route or "(?P<app_label>" in route:
        kwargs["app_label"] = "archiver"
    if "content_type_id>" in route:
        kwargs["content_type_id"] = ContentType.objects.get_for_model(LossScan).pk
        kwargs["object_id"] = world["objects"]["lossscan"].pk
    elif "<path:object_id>" in route or "<id>" in route:
        found = _model_admin_url(name) if name else None
        model_name = found[0].model._meta.model_name if found else _model_of_unnamed(route)
        kwargs["id" if "<id>" in route else "object_id"] = _object_id(model_name, world)
    return kwargs


def _object_id(model_name: str, world) -> int:
    """The fixture's row of the model; models PDAS does not fill (schedules, lockouts) get an id of none."""
    obj = world["objects"].get(model_name)
    return obj.pk if obj is not None else 999_999


def _model_of_unnamed(route: str) -> str:
    # admin/<app>/<model>/<path:object_id>/ (the redirect to the change page has no name)
    return route.split("/")[2]


def test_every_admin_url_keeps_the_admin_rules(world):
    clients, wrong = clients_of(world), []
    for name, route, _pattern in all_url_patterns():
        if not route.startswith(ADMIN_PREFIX):
            continue
        kwargs = _admin_kwargs(name, route, world)
        if route == CATCH_ALL:
            url = "/admin/no-such-page/"
        else:
            url = reverse(name, kwargs=kwargs) if name else "/" + route.replace("<path:object_id>", str(
                kwargs["object_id"]))
        for user_name in USERS:
            user = world["users"].get(user_name)
            expected = admin_expectation(name, route, user_name, user, world)
            got = _outcome(clients[user_name].get(url))
            if got != expected:
                wrong.append(f"GET {url} ({name}) as {user_name}: {got}, expected {expected}")
    assert not wrong, "\n".join(wrong)


def test_every_model_admin_with_institution_data_is_scoped():
    for model, model_admin in admin.site._registry.items():
        if institution_path(model) is not None:
            assert isinstance(model_admin, InstitutionScopedAdmin), model._meta.label
    # The audit log has no key to an institution: its admin scopes by the code the rows carry.
    assert type(admin.site._registry[AuditEvent]).scope_queryset is not InstitutionScopedAdmin.scope_queryset


# --- another institution cannot act or read through forms and lists -------------------------------------------


def test_lists_show_only_the_users_institutions(world):
    beta = world["beta"]
    ArchiveRunFactory(institution=beta)
    LossScanFactory(institution=beta)
    client = Client()
    client.force_login(world["users"]["other"])

    runs = client.get(reverse("archiver:run-list")).context["table"].data.data
    scans = client.get(reverse("lossdetect:scan-list")).context["table"].data.data
    assert {r.institution.code for r in runs} == {"BETA"} and {s.institution.code for s in scans} == {"BETA"}
    assert client.get(reverse("lossdetect:pending-list")).context["table"].data.data.count() == 0
    html = client.get(reverse("archiver:run-list")).content.decode()
    assert "ALPHA" not in html  # neither a row nor a choice of the start form or the filter
    assert client.get(reverse("curation:index"), {"institution": "ALPHA"}).status_code == 404
    assert client.get(reverse("reports:index"), {"institution": "ALPHA"}).status_code == 404


def test_actions_on_another_institution_are_refused_and_change_nothing(world):
    alpha, objects = world["alpha"], world["objects"]
    client = Client()
    client.force_login(world["users"]["other"])
    runs, scans, curations = ArchiveRun.objects.count(), LossScan.objects.count(), CurationRun.objects.count()
    restores = RestoreRecord.objects.count()

    client.post(reverse("archiver:run-start"), {"institution": alpha.pk})
    client.post(reverse("archiver:restore-start"), {"institution": alpha.pk, "archive": objects["archive"].name})
    client.post(reverse("lossdetect:scan-start"), {"institution": alpha.pk, "window_from": "2024-01-01",
                                                   "window_to": "2024-01-07"})
    client.post(reverse("curation:rerun"), {"institution": "ALPHA"})
    acknowledged = client.post(reverse("curation:acknowledge", args=[objects["tpspatient"].pk]),
                               {"finding": objects["curationfinding"].pk, "note": "reviewed"})

    assert acknowledged.status_code == 404
    assert (ArchiveRun.objects.count(), LossScan.objects.count(), CurationRun.objects.count(),
            RestoreRecord.objects.count()) == (runs, scans, curations, restores)
    assert Acknowledgement.objects.count() == 1  # the fixture's own


def test_refusals_and_other_institution_lookups_are_audited(world):
    client = Client()
    client.force_login(world["users"]["auditor"])
    client.get(reverse("archiver:run-list"))
    client.force_login(world["users"]["other"])
    client.get(reverse("curation:patient", args=[world["objects"]["tpspatient"].pk]))

    refused, hidden = AuditEvent.objects.filter(event="access.denied").order_by("id")
    assert (refused.actor, refused.outcome, refused.detail["reason"]) == ("auditor", "denied", "permission")
    assert refused.detail["permissions"] == ["archiver.view_archiverun"]
    assert (hidden.actor, hidden.institution, hidden.detail["reason"]) == ("other", "ALPHA", "other institution")


def test_a_user_without_institutions_is_told_so(world, client):
    client.force_login(make_user("newcomer", roles=[VIEWER]))
    html = client.get(reverse("home")).content.decode()
    assert "not a member of any institution" in html


def test_auditors_see_their_institutions_events_and_those_naming_no_patient(world):
    record_event(actor="x", event=Event.PATIENT_VIEW, institution="BETA", mrns=["B00001"])
    record_event(actor="x", event=Event.ACCESS_CHANGE)
    record_event(actor="x", event=Event.AUTH_LOGIN)  # logins: superusers only (tests/pdas/test_login_audit_privacy.py)
    record_event(actor="x", event=Event.PATIENT_VIEW, mrns=["C00001"])  # patients of no known institution
    client = Client()
    client.force_login(world["users"]["auditor"])

    shown = [row.record for row in client.get(reverse("audit:log")).context["table"].paginated_rows]
    assert MRN in {mrn for row in shown for mrn in row.mrns}  # the world's event of ALPHA
    assert "access.change" in {row.event for row in shown}
    assert "auth.login" not in {row.event for row in shown}
    assert not {mrn for row in shown for mrn in row.mrns} & {"B00001", "C00001"}


def test_roles_hold_what_the_issue_lists(world):
    users = world["users"]
    assert users["viewer"].has_perms(["inventory.view_tpspatient", "lossdetect.view_lossscan"])
    assert not users["viewer"].has_perm("archiver.restore_patient")
    assert users["physicist"].has_perms(["curation.acknowledge_finding", "curation.run_curation",
                                         "archiver.restore_patient", "lossdetect.run_scan"])
    assert not users["physicist"].has_perm("archiver.run_archive")
    assert users["archive_admin"].has_perms(["archiver.run_archive", "archiver.purge_quarantine",
                                             "sites.change_institution", "sites.change_storagetarget"])
    assert not users["archive_admin"].has_perm("sites.add_institution")  # new institutions: superusers
    assert users["auditor"].get_all_permissions() == {"audit.view_auditevent", "inventory.view_pseudonymmap"}
    assert users["physicist"].has_perm("inventory.make_dicom_rendition")
    assert not users["physicist"].has_perm("inventory.export_research_dicom")
    assert users["archive_admin"].has_perms(["inventory.make_dicom_rendition", "inventory.export_research_dicom"])
    assert not users["archive_admin"].has_perm("inventory.view_pseudonymmap")  # the exporter never sees the map
    assert not users["viewer"].has_perm("inventory.view_pseudonymmap")


def test_roles_come_back_after_a_flush(world):
    """A test flush (or a fresh database) empties the groups; the next migrate's post_migrate restores them."""
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    Group.objects.all().delete()
    call_command("migrate", verbosity=0)
    assert set(Group.objects.values_list("name", flat=True)) == set(ROLES)

