"""PDAS settings: everything comes from environment variables (docs/configuration.md).

``PDAS_ENV=production`` turns on the production rules: no debug, a secret key and allowed hosts
are required, cookies are secure. The default, ``development``, is the embedded mode: SQLite under
``var/``, tasks run in-process unless ``CELERY_BROKER_URL`` is set. Debug pages are off in both unless
``DJANGO_DEBUG=1`` (development only).
"""
from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from audit.mac import keys_from_environment
from core import env
from pdas.caches import caches

BASE_DIR = Path(__file__).resolve().parent.parent
# The site-wide templates, static files and translations ship inside the pdas package (and its wheel).
PROJECT_DIR = Path(__file__).resolve().parent
PDAS_ENV = env.string("PDAS_ENV", "development")
if PDAS_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"PDAS_ENV={PDAS_ENV!r} must be 'development' or 'production'")
PRODUCTION = PDAS_ENV == "production"

# Where PDAS keeps its own files (SQLite database, development secret key, work folders).
DATA_DIR = Path(env.string("PDAS_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _development_secret_key() -> str:
    """A random key kept under DATA_DIR, so development logins survive a restart."""
    key_file = DATA_DIR / "secret_key"
    try:
        return key_file.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(50)
        key_file.write_text(key, encoding="ascii")
        key_file.chmod(0o600)
        return key


if PRODUCTION:
    SECRET_KEY = env.required_secret("DJANGO_SECRET_KEY")
    DEBUG = False
    ALLOWED_HOSTS = env.string_list("DJANGO_ALLOWED_HOSTS", [])
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must be set in production (comma-separated)")
else:
    SECRET_KEY = env.secret("DJANGO_SECRET_KEY") or _development_secret_key()
    # Off unless asked for (DJANGO_DEBUG=1), in development too: a debug page shows every variable of
    # every frame (Django's filter of sensitive variables is off while DEBUG is on), storage passwords
    # included, to whoever reached the failing page.
    DEBUG = env.boolean("DJANGO_DEBUG", False)
    ALLOWED_HOSTS = env.string_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])

# The audit log's MAC key (docs/audit.md, "Keyed MACs"): kept out of the database, so a database writer
# cannot forge audit rows. Production: PDAS_AUDIT_MAC_KEY or PDAS_AUDIT_MAC_KEY_FILE (mode 0600), no
# default (``manage.py check --deploy`` says when it is missing); development: a random key kept in
# DATA_DIR. Earlier keys, still needed to check older rows: PDAS_AUDIT_MAC_OLD_KEYS(_FILE).
PDAS_AUDIT_MAC_KEY, PDAS_AUDIT_MAC_OLD_KEYS = keys_from_environment(
    os.environ, development_dir=None if PRODUCTION else DATA_DIR)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tables2",
    "django_filters",
    "django_celery_beat",
    "axes",
    "audit",
    "sites",
    "alerts",
    "inventory",
    "lossdetect",
    "curation",
    "archiver",
    "reports",
    "demo_site",
    "pdas",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    *(["whitenoise.middleware.WhiteNoiseMiddleware"] if PRODUCTION else []),  # development: runserver serves static
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "pdas.middleware.SiteTimeZoneMiddleware",  # after authentication: the user's institutions decide
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out login into the lockout page
]

ROOT_URLCONF = "pdas.urls"
WSGI_APPLICATION = "pdas.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [PROJECT_DIR / "templates"],  # first, before the apps' templates
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "pdas.navigation.navigation",
                "pdas.middleware.site_time_zone",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env.string("DATABASE_URL", f"sqlite:///{DATA_DIR / 'pdas.sqlite3'}"),
        conn_max_age=env.integer("DATABASE_CONN_MAX_AGE", 0),
        # A connection kept open between requests (DATABASE_CONN_MAX_AGE) is checked before a request
        # reuses it: after a database restart the dead one is replaced instead of failing the request.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Workers, threads and the web process share the file: take the write lock when a transaction
    # starts (a deferred one fails at once when two writers meet) and wait for it; WAL lets pages read
    # while an archive run writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=30, transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login lockout (django-axes, docs/access.md, pdas/lockout.py): after PDAS_LOGIN_FAILURE_LIMIT failed attempts
# on one user name from one address, that name is refused from that address for PDAS_LOGIN_LOCKOUT_MINUTES
# (the person still logs in from elsewhere); after PDAS_LOGIN_ADDRESS_FAILURE_LIMIT failures from one address,
# whatever the names, every name is refused from there. A success resets its own pair's count. The login
# page and the admin's are both covered; each lockout is an ``auth.lockout`` audit event. Unlock early:
# manage.py axes_reset_ip_username ADDRESS NAME (or axes_reset_username NAME, axes_reset_ip ADDRESS).
AUTHENTICATION_BACKENDS = ["pdas.backends.LockoutBackend", "pdas.backends.PasswordBackend"]  # error reports hide their variables
AXES_HANDLER = "pdas.lockout.PairLockoutHandler"
AXES_FAILURE_LIMIT = env.integer("PDAS_LOGIN_FAILURE_LIMIT", 5)
PDAS_LOGIN_ADDRESS_FAILURE_LIMIT = env.integer("PDAS_LOGIN_ADDRESS_FAILURE_LIMIT", 20)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.integer("PDAS_LOGIN_LOCKOUT_MINUTES", 30))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # successful logins are in the audit log already
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_LOCKOUT_CALLABLE = "pdas.lockout.lockout_response"  # says what was locked, and for how many minutes
AXES_VERBOSE = False
# Reverse proxies in front of PDAS (each appends to X-Forwarded-For): the client address is read
# through them for lockouts and the audit log (core/client.py). 0: use REMOTE_ADDR.
PDAS_PROXY_COUNT = env.integer("PDAS_PROXY_COUNT", 1 if PRODUCTION else 0)
AXES_CLIENT_IP_CALLABLE = "core.client.client_address"
# /healthz and /metrics (pdas/monitoring): a bearer token (no default: none set, none accepted) or an
# address in these networks may read them; the checks' waits and how old beat's last tick may be.
PDAS_MONITORING_TOKEN = env.secret("PDAS_MONITORING_TOKEN")
PDAS_MONITORING_ALLOW = env.string_list("PDAS_MONITORING_ALLOW", ["127.0.0.1/32", "::1/128"])
PDAS_HEALTH_TIMEOUT = float(env.integer("PDAS_HEALTH_TIMEOUT_SECONDS", 2))
PDAS_HEALTH_BEAT_MINUTES = env.integer("PDAS_HEALTH_BEAT_MINUTES", 45)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = env.string("PDAS_LANGUAGE", "en")
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [PROJECT_DIR / "locale"]  # first, before the apps' and Django's catalogues
TIME_ZONE = env.string("PDAS_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# pdas/static is found as an installed app's static folder (no STATICFILES_DIRS, so nothing is found twice).
STATIC_ROOT = Path(env.string("PDAS_STATIC_ROOT", str(DATA_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Celery: without a broker every task runs in-process (the embedded mode).
CELERY_BROKER_URL = env.string("CELERY_BROKER_URL") or None
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env.string("CELERY_RESULT_BACKEND", CELERY_BROKER_URL) or None
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.integer("PDAS_TASK_TIME_LIMIT", 6 * 3600)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60
# A late-acked task is redelivered after the visibility timeout: it must exceed the longest task.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 3600}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# The Reports page keeps a report it counted for this many seconds (0: counts on every
# view); the page says when it was counted and offers to count again. Exports and the printable report
# are always counted anew.
PDAS_REPORT_CACHE_SECONDS = env.integer("PDAS_REPORT_CACHE_SECONDS", 300)
# The same for the counts over every archive on the home page (archives without a verified copy) and the
# storage page (copies by state): kept this many seconds (core.kept; 0: every view).
PDAS_COUNTS_CACHE_SECONDS = env.integer("PDAS_COUNTS_CACHE_SECONDS", 60)
# Where both are kept: in each web process, or in the Redis PDAS_CACHE_URL names, shared by all of them
# (pdas/caches.py; deploy/install sets it).
CACHES = caches(env.string("PDAS_CACHE_URL"))

# Archiving: a worker's claim on a patient lasts this long unless renewed (it is renewed as work
# progresses), so the claim of a killed worker runs out and a rerun can take the patient over.
PDAS_CLAIM_LEASE_SECONDS = env.integer("PDAS_CLAIM_LEASE_SECONDS", 900)
# Background work (core.dispatch), with a broker and in the embedded mode alike: an error that says
# a later try may help is retried after this many seconds, doubled for each retry up to the maximum.
PDAS_RETRY_BACKOFF_SECONDS = float(env.integer("PDAS_RETRY_BACKOFF_SECONDS", 30))
PDAS_RETRY_BACKOFF_MAX_SECONDS = float(env.integer("PDAS_RETRY_BACKOFF_MAX_SECONDS", 900))
# A queued or running job (archive run, restore, curation, loss scan, reconciliation) that shows no
# progress for this long is closed as failed by the stale-job sweep (beat): its worker died.
PDAS_STALE_JOB_MINUTES = env.integer("PDAS_STALE_JOB_MINUTES", 120)
# The nightly archive check stops starting full checks after this many seconds (what is left stays due and
# comes first the next night); the presence check of every copy always runs (docs/keeping.md).
PDAS_FIXITY_NIGHTLY_SECONDS = env.integer("PDAS_FIXITY_NIGHTLY_SECONDS", 4 * 3600)
# The watchdog (hourly, docs/keeping.md "Alerts") raises an alert when something expected did not happen:
# no archive run finished for this many days, no loss scan succeeded, a target answered no check, or
# a copy's full check is this many days past its institution's fixity_cycle_days.
PDAS_ALERT_ARCHIVE_RUN_DAYS = env.integer("PDAS_ALERT_ARCHIVE_RUN_DAYS", 35)
PDAS_ALERT_LOSS_SCAN_DAYS = env.integer("PDAS_ALERT_LOSS_SCAN_DAYS", 8)
PDAS_ALERT_TARGET_UNREACHABLE_DAYS = env.integer("PDAS_ALERT_TARGET_UNREACHABLE_DAYS", 3)
PDAS_ALERT_FIXITY_GRACE_DAYS = env.integer("PDAS_ALERT_FIXITY_GRACE_DAYS", 2)
# Tests only: embedded-mode work runs at once in the caller's thread and transaction.
PDAS_DISPATCH_INLINE = False
# Embedded mode: patients archived at once (threads). Celery deployments scale with worker concurrency.
PDAS_ARCHIVE_WORKERS = env.integer("PDAS_ARCHIVE_WORKERS", os.cpu_count() or 1)

EMAIL_BACKEND = env.string("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env.string("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = env.integer("DJANGO_EMAIL_PORT", 25)
EMAIL_HOST_USER = env.string("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env.secret("DJANGO_EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env.boolean("DJANGO_EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env.string("DJANGO_DEFAULT_FROM_EMAIL", "pdas@localhost")
PDAS_BASE_URL = env.string("PDAS_BASE_URL", "http://127.0.0.1:8000")

SESSION_COOKIE_AGE = env.integer("PDAS_SESSION_SECONDS", 30 * 60)
SESSION_SAVE_EVERY_REQUEST = True  # idle timeout, not absolute: shared workstations
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.boolean("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env.integer("DJANGO_SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

DJANGO_TABLES2_TEMPLATE = "includes/table.html"  # bootstrap5, with "Nothing here." in an empty table

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        # Full traces of unexpected command errors go here; the user sees one line (core/commands.py).
        "file": {"class": "logging.handlers.RotatingFileHandler", "filename": str(DATA_DIR / "pdas.log"),
                 "maxBytes": 10_000_000, "backupCount": 5, "delay": True, "encoding": "utf-8"},
    },
    "root": {"handlers": ["console"], "level": env.string("PDAS_LOG_LEVEL", "INFO")},
    "loggers": {
        "paramiko": {"level": "WARNING"},
        "pynetdicom": {"level": "WARNING"},  # dicom-qr:// logs every query and answer, attribute by attribute, at INFO
        "axes": {"level": "WARNING"},  # a line per login otherwise; lockouts are in the audit log
        "core.commands": {"handlers": ["file"], "level": "ERROR", "propagate": False},
    },
}
