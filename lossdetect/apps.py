from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _default_schedule(sender, using="default", **kwargs):
    from lossdetect.services.schedule import ensure_default_schedule

    ensure_default_schedule(using=using)


class LossdetectConfig(AppConfig):
    name = "lossdetect"
    verbose_name = _("Loss detection")

    def ready(self):
        # The weekly scan's default beat entry, created once after migrate (services/schedule.py).
        post_migrate.connect(_default_schedule, sender=self, dispatch_uid="lossdetect-default-schedule")
