from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


def _default_schedules(sender, using="default", **kwargs) -> None:
    from pdas.schedules import ensure_default_schedules

    ensure_default_schedules(using=using)


class PdasConfig(AppConfig):
    name = "pdas"
    verbose_name = "PDAS"

    def ready(self) -> None:
        from django.utils.translation import gettext_lazy as _

        from pdas import signals  # noqa: F401 - connects the login audit receivers

        # django-axes names its app nothing the admin can translate ("Axes"): give it a name in both languages.
        apps.get_app_config("axes").verbose_name = _("Login lockouts")

        # The periodic tasks' default beat entries (pdas/schedules.py), once beat's tables exist. (The
        # project app has no models of its own, so Django sends it no post_migrate.)
        post_migrate.connect(_default_schedules, sender=apps.get_app_config("django_celery_beat"),
                             dispatch_uid="pdas-default-schedules")
