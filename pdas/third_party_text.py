"""Text that Django's admin and django-axes show but whose own 简体中文 catalogues lack.

Listed here only so that ``makemessages`` puts them into PDAS's catalogue (pdas/locale), which Django
consults before the libraries' own: the admin's model-list column headers (new in Django 5.2) and the
lockout records of django-axes (which ships no Chinese), a filter of django-celery-beat's list. Nothing imports these names.
"""
from django.utils.translation import gettext_noop

DJANGO_ADMIN = [gettext_noop("Model name"), gettext_noop("Add link"), gettext_noop("Change or view list link")]

CELERY_BEAT = [gettext_noop("Task Name")]  # the periodic tasks' filter

AXES = [
    gettext_noop("Login lockouts"),  # the app's name in the admin (axes gives none; see PdasConfig.ready)
    gettext_noop("access attempt"), gettext_noop("access attempts"),
    gettext_noop("access attempt expiration"), gettext_noop("access attempt expirations"),
    gettext_noop("access failure"), gettext_noop("access failures"),
    gettext_noop("access log"), gettext_noop("access logs"),
    gettext_noop("Access Attempt"), gettext_noop("Access lock out"), gettext_noop("Attempt Remaining"),
    gettext_noop("Attempt Time"), gettext_noop("Clean up expired attempts"), gettext_noop("Expires At"),
    gettext_noop("Failed Logins"), gettext_noop("Form Data"), gettext_noop("GET Data"), gettext_noop("HTTP Accept"),
    gettext_noop("IP Address"), gettext_noop("Locked Out"), gettext_noop("Logout Time"), gettext_noop("Meta Data"),
    gettext_noop("Not set"), gettext_noop("POST Data"), gettext_noop("Path"), gettext_noop("Session key hash (sha256)"),
    gettext_noop("The time when access attempt expires and is no longer valid."), gettext_noop("User Agent"),
    gettext_noop("Username"),
]
