from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LossdetectConfig(AppConfig):
    name = "lossdetect"
    verbose_name = _("Loss detection")

