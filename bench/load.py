"""Load on the production stack: many logged-in users over the main pages and exports, at 100,000 archives.

    .venv/bin/python bench/load.py [--users 50] [--seconds 120] [--think 2] [--scale 1.0] [--workers N]

Builds, in a throw-away folder, what an installed PDAS runs (docs/operations.md): a PostgreSQL cluster,
a Redis for the web processes' shared cache (``PDAS_CACHE_URL``, as deploy/install sets it), gunicorn in
production mode with ``deploy/gunicorn.conf.py`` (``--workers`` processes, default the
config's own), nginx running ``deploy/nginx/pdas.conf`` with TLS in front of it. The database holds the
demo site (curated, archived, checked, scanned) and a second institution of five years with 100,000
verified archives, their runs and patient tasks, restores, weekly loss scans with 150,000 findings and
a pending-archive table (``bench/reports.py``'s ``build_site``; ``--scale`` shrinks it).

Two runs of the same pages (``PAGES``) and exports (``EXPORTS``) over HTTPS, each request by a
logged-in user:
- the baseline: one user alone, each page and export ``--rounds`` times;
- the load: ``--users`` users at once for ``--seconds`` (several numbers: one load after the other on the
  same site, to find how many users the machine serves within the target), each waiting a random 0.5-1.5 × ``--think``
  seconds between requests (a person reads a page before the next click; with no wait at all, 50
  clients on this machine's cores only measure its queue); one request in 20 is an export.
Prints p50/p95/p99 per page and overall for both, the error rate, and the load's p95 over the
baseline's; the target is a p95 under 250 ms with no errors. Asserts nothing. The client runs on the
same machine and takes its share of the cores: on a 2-core machine that is a real part of the figure.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "deploy"))

# {bench_run}, {bench_scan}: of the 100,000-archive institution; {run}, {scan}, {target}: of the demo's.
PAGES = [
    "/", "/curation/?institution=DEMO&tab=naming", "/archive/runs/", "/archive/runs/{bench_run}/",
    "/archive/storage/", "/archive/storage/{target}/", "/archive/restore/?q={bench_mrn}",
    "/loss/scan/{bench_scan}/?tab=first_course_archived", "/loss/pending/", "/reports/?institution=BENCH",
    "/audit/",
]
# Downloads a physicist takes away now and then: in the load, one request in EXPORT_SHARE is one of these.
EXPORTS = ["/archive/runs/?_export=csv", "/loss/pending/?_export=xlsx",
           "/loss/scan/{bench_scan}/?tab=first_course_archived&_export=csv"]
EXPORT_SHARE = 0.05
HOST_NAME = "pdas.bench.test"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


class Stack:
    """PostgreSQL, Redis, gunicorn as pdas-web.service runs it, nginx with the shipped site and a certificate."""

    def __init__(self, scratch: Path, workers: int | None):
        self.scratch = scratch
        self.workers = workers
        self.processes: list = []

    def start_database(self) -> str:
        from tests.servers.postgres import start_postgres

        self.postgres = start_postgres()
        return self.postgres.url

    def start_cache(self) -> str:
        from tests.servers.redis import start_redis

        self.redis, url = start_redis(self.scratch / "redis")
        return url.rsplit("/", 1)[0] + "/1"

    def environment(self, database_url: str) -> dict[str, str]:
        data = self.scratch / "data"
        data.mkdir()
        key = self.scratch / "audit_mac_key"
        key.write_text(secrets.token_urlsafe(32))
        key.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PDAS_", "DJANGO_", "CELERY_"))}
        env.update({
            "PDAS_ENV": "production", "DJANGO_SETTINGS_MODULE": "pdas.settings", "PDAS_DATA_DIR": str(data),
            "DATABASE_URL": database_url, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": HOST_NAME, "PDAS_AUDIT_MAC_KEY_FILE": str(key), "PDAS_PROXY_COUNT": "1",
            "PDAS_TIME_ZONE": "Asia/Shanghai", "PYTHONPATH": str(REPO),
            "DATABASE_CONN_MAX_AGE": "60",  # as deploy/install writes it into pdas.env
            "PDAS_CACHE_URL": self.start_cache(),  # likewise
        })
        if self.workers:
            env["PDAS_WEB_WORKERS"] = str(self.workers)
        return env

    def start_web(self, env: dict[str, str]) -> int:
        from screenshots import free_port

        from tests.servers.nginx import nginx_config
        from tests.servers.ports import accepts_connections

        port = free_port()
        gunicorn = Path(sys.executable).parent / "gunicorn"
        log = open(self.scratch / "gunicorn.log", "w")
        self.processes.append(subprocess.Popen(
            [str(gunicorn), "--config", str(REPO / "deploy/gunicorn.conf.py")],
            env={**env, "PDAS_WEB_BIND": f"127.0.0.1:{port}"}, cwd=REPO, stdout=log, stderr=subprocess.STDOUT))
        wait(lambda: accepts_connections(port), "gunicorn")
        tls = self.scratch / "tls"
        subprocess.run(["bash", str(REPO / "deploy/selfsigned-cert.sh"), "--dir", str(tls), HOST_NAME],
                       check=True, capture_output=True)
        https_port, http_port = free_port(), free_port()
        (self.scratch / "nginx").mkdir()
        config = nginx_config(self.scratch / "nginx", https_port=https_port, http_port=http_port,
                              upstream_port=port, tls=tls, connections=1024)
        self.processes.append(subprocess.Popen(["nginx", "-p", str(self.scratch / "nginx"), "-c", str(config)],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait(lambda: accepts_connections(https_port), "nginx")
        return https_port

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            process.wait(30)
        if getattr(self, "redis", None):
            self.redis.stop()
        if getattr(self, "postgres", None):
            self.postgres.stop()


def wait(predicate, what: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    sys.exit(f"{what} did not start within {seconds:.0f} s")


def seed(env: dict, scale: float) -> dict:
    """The demo site, then the 100,000-archive institution; the ids the page paths need."""
    from screenshots import manage, prepare

    ids = prepare(Path(env["PDAS_DATA_DIR"]), env)
    done = manage(env, "shell", "-v", "0", "-c", f"""
import importlib.util, json, random, sys
sys.path.insert(0, {str(REPO / 'bench')!r})
spec = importlib.util.spec_from_file_location("bench_reports", {str(REPO / 'bench/reports.py')!r})
bench_reports = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_reports)  # bench/reports.py: its name is the reports app's
build_site = bench_reports.build_site
from archiver.models import ArchiveRun
from inventory.models import Archive
from lossdetect.models import LossScan
inst = build_site({scale!r}, random.Random(7))
print(json.dumps({{"bench_run": ArchiveRun.objects.filter(institution=inst).latest("started_at").pk,
                  "bench_scan": LossScan.objects.filter(institution=inst).latest("started_at").pk,
                  "bench_mrn": Archive.objects.filter(institution=inst).order_by("pk")[int(12345 * {scale!r})].mrn,
                  "archives": Archive.objects.count()}}))
""", findings_ok=False)
    ids.update(json.loads(done.stdout.strip().splitlines()[-1]))
    # What autovacuum does on a live server some minutes after a bulk load: without the statistics the
    # planner takes the freshly filled tables for empty ones (the runs page took 2.8 s instead of 0.1 s).
    manage(env, "shell", "-v", "0", "-c", "from django.db import connection; connection.cursor().execute('ANALYZE')",
           findings_ok=False)
    return ids


def logged_in(base: str, username: str, password: str):
    import requests
    import urllib3

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    session = requests.Session()
    session.trust_env = False  # no proxy, and no CA bundle from the environment overriding the next line
    session.verify = False  # the bench's self-signed certificate
    session.headers["Host"] = HOST_NAME
    page = session.get(f"{base}/accounts/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    done = session.post(f"{base}/accounts/login/", data={"username": username, "password": password,
                                                         "csrfmiddlewaretoken": token},
                        headers={"Referer": f"https://{HOST_NAME}/accounts/login/", "Origin": f"https://{HOST_NAME}"},
                        timeout=30, allow_redirects=False)
    if done.status_code != 302 or "/accounts/login/" in done.headers.get("Location", ""):
        sys.exit(f"could not log in (HTTP {done.status_code})")
    return session


def get(session, base: str, path: str) -> tuple[bool, float, str]:
    start = time.perf_counter()
    try:
        response = session.get(base + path, timeout=120, allow_redirects=False)
        ok, detail = response.status_code == 200, f"{path}: HTTP {response.status_code}"
    except Exception as exc:  # a refused or reset connection is an error to count, not a crash
        ok, detail = False, f"{path}: {type(exc).__name__}"
    return ok, time.perf_counter() - start, detail


def alone(session, base: str, paths: list[str], rounds: int) -> tuple[dict[str, list[float]], list[str]]:
    timings: dict[str, list[float]] = {path: [] for path in paths}
    errors: list[str] = []
    for _ in range(rounds):
        for path in paths:
            ok, elapsed, detail = get(session, base, path)
            (timings[path].append(elapsed) if ok else errors.append(detail))
    return timings, errors


def crowd(sessions, base: str, paths: list[str], seconds: float, think: float) -> tuple[dict, list[str]]:
    timings: dict[str, list[float]] = {path: [] for path in paths}
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    exports = [path for path in paths if "_export=" in path]
    pages = [path for path in paths if path not in exports]

    def user(session, number: int) -> None:
        rng = random.Random(number)
        time.sleep(rng.uniform(0, think))  # users do not all click in the same instant
        while time.monotonic() < stop:
            path = rng.choice(exports if rng.random() < EXPORT_SHARE else pages)
            ok, elapsed, detail = get(session, base, path)
            with lock:
                (timings[path].append(elapsed) if ok else errors.append(detail))
            time.sleep(rng.uniform(0.5, 1.5) * think)

    threads = [threading.Thread(target=user, args=(session, n)) for n, session in enumerate(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return timings, errors


def line(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label:<62} no answers"
    return (f"  {label:<62} n={len(values):5}  p50 {statistics.median(values) * 1e3:6.0f}  "
            f"p95 {percentile(values, 0.95) * 1e3:6.0f}  p99 {percentile(values, 0.99) * 1e3:6.0f} ms")


def report_crowd(users: int, think: float, seconds: float, loaded: dict, errors: list[str], base_p95: float) -> None:
    everything = [t for values in loaded.values() for t in values]
    page_times = [t for path, values in loaded.items() if "_export=" not in path for t in values]
    requests_made = len(everything) + len(errors)
    print(f"load: {users} users, {think:g} s mean think time, {seconds:.0f} s: "
          f"{requests_made:,} requests ({requests_made / seconds:.1f}/s), "
          f"errors {len(errors)} ({100 * len(errors) / max(requests_made, 1):.2f} %)")
    for path, values in loaded.items():
        print(line(path, values))
    print(line(f"pages (no exports), {users} users", page_times))
    print(line(f"all requests, {users} users", everything))
    if everything:
        p95 = percentile(everything, 0.95)
        print(f"p95 under load {p95 * 1e3:.0f} ms ({'under' if p95 < 0.25 else 'OVER'} the 250 ms target), "
              f"x{p95 / base_p95:.2f} the single user's p95 ({base_p95 * 1e3:.0f} ms)")
    for error in sorted(set(errors))[:10]:
        print(f"  error: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="50",
                        help="users at once; several, comma-separated (10,20,50), load the same site in turn")
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--think", type=float, default=2.0, help="mean seconds between a user's pages")
    parser.add_argument("--rounds", type=int, default=3, help="the baseline's visits of each page")
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: 100,000 archives")
    parser.add_argument("--workers", type=int, help="gunicorn processes (default: deploy/gunicorn.conf.py's)")
    args = parser.parse_args()
    crowds = [int(n) for n in args.users.split(",")]
    with tempfile.TemporaryDirectory(prefix="pdas-load-") as scratch:
        stack = Stack(Path(scratch), args.workers)
        try:
            env = stack.environment(stack.start_database())
            mark = time.perf_counter()
            ids = seed(env, args.scale)
            from screenshots import manage

            manage(env, "collectstatic", "--noinput", "-v", "0", findings_ok=False)
            print(f"site built in {time.perf_counter() - mark:.0f} s: {ids['archives']:,} archives", flush=True)
            password = secrets.token_urlsafe(12)
            manage(env, "shell", "-v", "0", "-c", f"""
from django.contrib.auth import get_user_model
user, _ = get_user_model().objects.get_or_create(username="load")
user.is_staff = user.is_superuser = True
user.set_password({password!r})
user.save()
""", findings_ok=False)
            base = f"https://127.0.0.1:{stack.start_web(env)}"
            paths = [page.format(**ids) for page in PAGES + EXPORTS]
            first = logged_in(base, "load", password)
            alone(first, base, paths, 1)  # warm-up: every worker's first request of a page imports and caches
            single, single_errors = alone(first, base, paths, args.rounds)
            sessions = [first] + [logged_in(base, "load", password) for _ in range(max(crowds) - 1)]
            loads = [(users, *crowd(sessions[:users], base, paths, args.seconds, args.think)) for users in crowds]
        finally:
            stack.stop()
    baseline = [t for values in single.values() for t in values]
    print(f"\nPostgreSQL, gunicorn ({args.workers or 'default'} workers) behind nginx over HTTPS, "
          f"{ids['archives']:,} archives; {os.cpu_count()} cores shared with the clients")
    print(f"baseline: one user, each page {args.rounds} times ({len(single_errors)} errors)")
    for path, values in single.items():
        print(line(path, values))
    print(line("all requests, one user", baseline))
    for users, loaded, errors in loads:
        report_crowd(users, args.think, args.seconds, loaded, errors, percentile(baseline, 0.95))


if __name__ == "__main__":
    main()
