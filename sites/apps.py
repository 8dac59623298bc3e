from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _sync_roles(sender, using="default", **kwargs) -> None:
    """Keep the roles complete after every migrate, and after a test flush empties the groups."""
    if "auth_group" not in connections[using].introspection.table_names():
        return  # auth not migrated yet (a partial 'migrate app_label')
    from sites.roles import sync_roles

    sync_roles(using=using)


class SitesConfig(AppConfig):
    name = "sites"
    verbose_name = _("Site configuration")

    def ready(self) -> None:
        # sync_roles creates every app's permissions itself, so it need not wait for the others'.
        post_migrate.connect(_sync_roles, sender=self, dispatch_uid="pdas-sync-roles")
