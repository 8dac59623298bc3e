"""gunicorn settings of the PDAS web service (deploy/systemd/pdas-web.service; docs/operations.md, "Services").

Read by ``gunicorn --config deploy/gunicorn.conf.py pdas.wsgi``. Every value can be changed in
/etc/pdas/pdas.env without editing this file:

    PDAS_WEB_BIND=127.0.0.1:8000      where gunicorn listens: loopback only, nginx is the front
    PDAS_WEB_WORKERS=                 worker processes (default: 2 per core plus 1, at most 8)
    PDAS_WEB_TIMEOUT=120              seconds a request may take before its worker is restarted

The test of the services (tests/deploy/test_services.py) starts gunicorn with this very file.
"""
import os


def _integer(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SystemExit(f"{name}={value!r} is not a whole number") from None
    if number < 1:
        raise SystemExit(f"{name}={value!r} must be at least 1")
    return number


wsgi_app = "pdas.wsgi:application"
bind = [os.environ.get("PDAS_WEB_BIND", "").strip() or "127.0.0.1:8000"]
# Pages wait on the database, not the CPU; more than 8 processes only multiply database connections.
workers = _integer("PDAS_WEB_WORKERS", min(2 * (os.cpu_count() or 1) + 1, 8))
# Exports and the reconcile page (a listing uploaded and compared) can take longer than gunicorn's 30 s.
timeout = _integer("PDAS_WEB_TIMEOUT", 120)
graceful_timeout = 30
proc_name = "pdas-web"
# The workers' heartbeat files: on tmpfs, so a slow disk never makes the master think a worker hung.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# No access log here: URLs carry patient names and MRNs in their query strings (the restore search), and
# nginx keeps the access log, without query strings (deploy/nginx/pdas.conf). Errors go to the journal.
accesslog = None
errorlog = "-"
# Only the proxy on this machine is believed about X-Forwarded-Proto; PDAS reads X-Forwarded-For itself
# (PDAS_PROXY_COUNT, core/client.py).
forwarded_allow_ips = "127.0.0.1,::1"
# A request line or header larger than this is refused before Django sees it (gunicorn's defaults, stated).
limit_request_line = 8190
limit_request_field_size = 8190
