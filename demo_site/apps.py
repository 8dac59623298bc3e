from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DemoSiteConfig(AppConfig):
    name = "demo_site"
    verbose_name = _("Demo site")
