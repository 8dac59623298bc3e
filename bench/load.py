"""Load on the web pages a department uses, beside the cheapest Django request, in the same run.

    .venv/bin/python bench/load.py [--users 8] [--seconds 30] [--workers 2]

Builds the demo site in a throw-away folder (as deploy/screenshots.py does: curated, archived, scanned,
one copy damaged and checked), serves it with gunicorn (``--workers`` processes, the embedded SQLite),
logs ``--users`` sessions in, and has them request the main pages in turn for ``--seconds``. The
baseline is ``/healthz?live=1`` (one ``SELECT 1`` through the same middleware) under the same load.
Prints p50/p95/max per page and overall, errors, and the ratio of the pages' p95 to the baseline's;
the target is a p95 under 250 ms with no errors. Asserts nothing.
"""
from __future__ import annotations

import argparse
import os
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

PAGES = ["/", "/curation/?institution=DEMO&tab=naming", "/archive/runs/", "/archive/runs/{run}/",
         "/archive/storage/", "/archive/storage/{target}/", "/loss/scan/{scan}/?tab=first_course_lost",
         "/loss/pending/", "/reports/", "/audit/"]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def start_gunicorn(env: dict, port: int, workers: int) -> subprocess.Popen:
    from screenshots import serve

    gunicorn = Path(sys.executable).parent / "gunicorn"
    return serve(env, port, [str(gunicorn), "pdas.wsgi", "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
                             "--log-level", "warning"])


def logged_in(base: str, username: str, password: str):
    import requests

    session = requests.Session()
    page = session.get(f"{base}/accounts/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    done = session.post(f"{base}/accounts/login/", data={"username": username, "password": password,
                                                         "csrfmiddlewaretoken": token},
                        headers={"Referer": f"{base}/accounts/login/"}, timeout=30)
    if done.url.rstrip("/") != base:
        sys.exit(f"could not log in (ended at {done.url})")
    return session


def hammer(sessions, paths: list[str], seconds: float) -> tuple[dict[str, list[float]], list[str]]:
    timings: dict[str, list[float]] = {path: [] for path in paths}
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def user(session, offset: int) -> None:
        n = offset
        while time.monotonic() < stop:
            path = paths[n % len(paths)]
            n += 1
            start = time.perf_counter()
            try:
                response = session.get(path, timeout=60)
                ok = response.status_code == 200
                detail = f"{path}: HTTP {response.status_code}"
            except Exception as exc:  # a refused or reset connection is an error to count, not a crash
                ok, detail = False, f"{path}: {type(exc).__name__}"
            elapsed = time.perf_counter() - start
            with lock:
                (timings[path].append(elapsed) if ok else errors.append(detail))

    threads = [threading.Thread(target=user, args=(session, i)) for i, session in enumerate(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return timings, errors


def main() -> None:
    from screenshots import free_port, manage, prepare

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pdas-load-") as scratch:
        data = Path(scratch)
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
        env.update({"PDAS_DATA_DIR": str(data), "PDAS_TIME_ZONE": "Asia/Shanghai"})
        mark = time.perf_counter()
        ids = prepare(data, env)
        print(f"demo site built in {time.perf_counter() - mark:.0f} s", flush=True)
        password = secrets.token_urlsafe(12)
        manage(env, "shell", "-v", "0", "-c", f"""
from django.contrib.auth import get_user_model
user, _ = get_user_model().objects.get_or_create(username="load")
user.is_staff = user.is_superuser = True
user.set_password({password!r})
user.save()
""", findings_ok=False)
        port = free_port()
        server = start_gunicorn(env, port, args.workers)
        base = f"http://127.0.0.1:{port}"
        try:
            sessions = [logged_in(base, "load", password) for _ in range(args.users)]

            class Based:
                def __init__(self, session):
                    self.session = session

                def get(self, path, **kwargs):
                    return self.session.get(base + path, **kwargs)

            clients = [Based(s) for s in sessions]
            pages = [p.format(**ids) for p in PAGES]
            base_timings, base_errors = hammer(clients, ["/healthz?live=1"], args.seconds / 3)
            timings, errors = hammer(clients, pages, args.seconds)
        finally:
            server.terminate()
            server.wait(10)
    everything = [t for values in timings.values() for t in values]
    baseline = base_timings["/healthz?live=1"]
    print(f"{args.users} users, {args.workers} gunicorn workers, {args.seconds:.0f} s of pages "
          f"({len(everything):,} requests, {len(everything) / args.seconds:.1f}/s), errors: {len(errors)}")
    for path, values in timings.items():
        if values:
            print(f"  {path:<48} n={len(values):4}  p50 {statistics.median(values) * 1e3:6.0f} ms  "
                  f"p95 {percentile(values, 0.95) * 1e3:6.0f} ms  max {max(values) * 1e3:6.0f} ms")
    p95, base_p95 = percentile(everything, 0.95), percentile(baseline, 0.95)
    print(f"all pages: p50 {statistics.median(everything) * 1e3:.0f} ms, p95 {p95 * 1e3:.0f} ms "
          f"({'under' if p95 < 0.25 else 'OVER'} 250 ms)")
    print(f"baseline /healthz?live=1: p95 {base_p95 * 1e3:.0f} ms ({len(baseline):,} requests, "
          f"{len(base_errors)} errors): the pages' p95 is x{p95 / base_p95:.1f} the baseline's")
    for error in sorted(set(errors))[:10]:
        print(f"  error: {error}")


if __name__ == "__main__":
    main()
