from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ArchiverConfig(AppConfig):
    name = "archiver"
    verbose_name = _("Archiving")
