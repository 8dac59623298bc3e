from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate


def _sync_roles(sender, using="default", **kwargs) -> None:
    """Keep the roles complete after every migrate, and after a test flush empties the groups."""
    if "auth_group" not in connections[using].introspection.table_names():
        return  # auth not migrated yet (a partial 'migrate app_label')
    from pdas.roles import sync_roles

    sync_roles(using=using)


def _default_schedules(sender, using="default", **kwargs) -> None:
    from pdas.schedules import ensure_default_schedules

    ensure_default_schedules(using=using)


class PdasConfig(AppConfig):
    name = "pdas"
    verbose_name = "PDAS"

    def ready(self) -> None:
        from pdas import signals  # noqa: F401 - connects the login audit receivers

        # After the other apps' own post_migrate work: sync_roles creates whatever permissions it needs.
        post_migrate.connect(_sync_roles, sender=self, dispatch_uid="pdas-sync-roles")
        # The periodic tasks' default beat entries (pdas/schedules.py).
        post_migrate.connect(_default_schedules, sender=self, dispatch_uid="pdas-default-schedules")
