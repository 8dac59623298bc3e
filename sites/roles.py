"""The four roles (Django groups) and the custom permissions behind PDAS's actions: defined once, here.

- ``viewer`` reads every page of the institutions the user is a member of (sites.models.Membership);
- ``physicist`` also curates, acknowledges findings, edits the naming rules and the MRN aliases, restores and
  runs loss scans;
- ``archive admin`` also runs archives, purges the quarantine, reconciles the index, edits the MRN aliases
  and configures its institutions and storage targets in the admin (so the account needs "staff"), all but the
  connection settings (``CONNECTION_FIELDS``: hosts, secret names, key files, the pack script) and
  adding or deleting a target, which are a superuser's (sites/admin.py);
- ``auditor`` reads and exports the audit log, and reads the research exports' pseudonym maps (which
  re-identify patients: no other role reads them, not even the archive admin who exports), nothing else.
- Renditions: physicists and archive admins start them from the restore page (``make_dicom_rendition``);
  only archive admins export them anonymised for research or teaching (``export_research_dicom``).

Roles add up: a user may hold several. Adding an institution and managing users are superuser work.
The data migration ``pdas/migrations/0002_roles`` creates the groups; ``sync_roles`` runs again after
every ``migrate`` (and after a test flush) and only *adds* what is missing, so a permission an
administrator granted by hand survives, and a permission added here reaches existing sites.
"""
from __future__ import annotations

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS

VIEWER, PHYSICIST, ARCHIVE_ADMIN, AUDITOR = "viewer", "physicist", "archive admin", "auditor"

# (app_label, model, codename, name): actions that are not "add/change/delete a row".
CUSTOM_PERMISSIONS: tuple[tuple[str, str, str, str], ...] = (
    ("archiver", "archiverun", "run_archive", "Can start an archive run"),
    ("archiver", "restorerecord", "restore_patient", "Can restore a patient from an archive"),
    ("archiver", "archiverun", "purge_quarantine", "Can purge quarantined originals"),
    ("curation", "curationrun", "run_curation", "Can start a curation"),
    ("curation", "curationfinding", "acknowledge_finding", "Can acknowledge a curation finding"),
    ("lossdetect", "lossscan", "run_scan", "Can start a loss scan"),
    ("inventory", "archive", "set_legal_hold", "Can place or release a legal hold on an archive"),
    ("inventory", "dicomrendition", "make_dicom_rendition", "Can start a DICOM rendition of an archive"),
    ("inventory", "dicomrendition", "export_research_dicom",
     "Can export a rendition as anonymised DICOM for research or teaching"),
)

_READABLE = {
    "sites": ("institution", "storagetarget"),
    "inventory": ("tpspatient", "tpsplan", "archive", "archivedplan", "archivecopy", "fixitycheck",
                  "quarantinedpatient", "dicomrendition", "renditioncopy"),
    "archiver": ("archiverun", "patientarchivetask", "restorerecord", "restoredrill"),
    "curation": ("namingrule", "transitionalpattern", "curationrun", "curationfinding", "acknowledgement"),
    "lossdetect": ("lossscan", "lossfinding", "pendingplan", "othertpsrecord", "mrnalias"),
    "reports": ("reconciliationimport", "reconciliationentry"),
    "alerts": ("alert",),
}
_READ = tuple(f"{app}.view_{model}" for app, models in _READABLE.items() for model in models)

ROLES: dict[str, tuple[str, ...]] = {
    VIEWER: _READ,
    PHYSICIST: _READ + (
        "curation.run_curation", "curation.acknowledge_finding",
        *(f"curation.{action}_{model}" for model in ("namingrule", "transitionalpattern")
          for action in ("add", "change", "delete")),
        "archiver.restore_patient", "lossdetect.run_scan", "inventory.make_dicom_rendition",
        *(f"lossdetect.{action}_mrnalias" for action in ("add", "change", "delete")),
    ),
    ARCHIVE_ADMIN: _READ + (
        "archiver.run_archive", "archiver.purge_quarantine", "inventory.set_legal_hold", "sites.change_institution",
        "inventory.make_dicom_rendition", "inventory.export_research_dicom",
        "sites.change_storagetarget",
        "reports.add_reconciliationimport",
        *(f"lossdetect.{action}_mrnalias" for action in ("add", "change", "delete")),
    ),
    AUDITOR: ("audit.view_auditevent", "inventory.view_pseudonymmap"),
}


def _ensure_model_permissions(apps, using: str) -> None:
    """Django creates the default permissions only after all migrations ran; roles need them now."""
    for app_config in apps.get_app_configs():
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = models_module or True  # historical app configs have none
        try:
            create_permissions(app_config, verbosity=0, apps=apps, using=using)
        finally:
            app_config.models_module = models_module


def _in_history(apps, app_label: str, model: str) -> bool:
    try:
        apps.get_model(app_label, model)
    except LookupError:
        return False
    return True


def sync_roles(*, apps=global_apps, using: str = DEFAULT_DB_ALIAS) -> None:
    """Create the custom permissions and the role groups, adding any permission a role lacks.

    ``apps`` is the migration's historical registry in the data migration, the real one otherwise.
    A permission named here that does not exist is a programming error: it raises, naming it. In a
    data migration (a historical ``apps``) the permissions of apps that do not exist yet at that point
    of the history are skipped; ``migrate`` runs this again at its end (post_migrate), strictly.
    """
    strict = apps is global_apps
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    _ensure_model_permissions(apps, using)
    for app_label, model, codename, name in CUSTOM_PERMISSIONS:
        if not strict and not _in_history(apps, app_label, model):
            # Not yet at this point of the history: creating its content type now would make a later
            # migration that moves a model's content type into this app find one there already.
            continue
        content_type, _ = ContentType.objects.db_manager(using).get_or_create(app_label=app_label, model=model)
        Permission.objects.db_manager(using).get_or_create(content_type=content_type, codename=codename,
                                                           defaults={"name": name})
    existing = {f"{app}.{codename}": pk for pk, app, codename in Permission.objects.db_manager(using)
                .values_list("pk", "content_type__app_label", "codename")}
    for role, permissions in ROLES.items():
        missing = [p for p in permissions if p not in existing]
        if missing and not strict:
            permissions = tuple(p for p in permissions if p in existing)
        elif missing:
            raise ImproperlyConfigured(f"role {role!r} names unknown permissions: {', '.join(missing)}")
        group, _ = Group.objects.db_manager(using).get_or_create(name=role)
        group.permissions.add(*(existing[p] for p in permissions))
