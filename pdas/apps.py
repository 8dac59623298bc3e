from django.apps import AppConfig


class PdasConfig(AppConfig):
    name = "pdas"
    verbose_name = "PDAS"

    def ready(self) -> None:
        from pdas import signals  # noqa: F401 - connects the login audit receivers
