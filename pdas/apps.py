from django.apps import AppConfig


class PdasConfig(AppConfig):
    name = "pdas"
    verbose_name = "PDAS"
