"""Screenshots of the main pages, in English and 简体中文, into docs/screens/ (referenced from the README).

    .venv/bin/python deploy/screenshots.py [--out docs/screens]

Builds the demo site in a throw-away data folder (its own database, its own copy of the synthetic
Pinnacle tree and R&V data: nothing of var/ or a running demo is touched), curates, archives, damages
one stored copy and checks the archives so the storage pages show a failure, scans for losses, then
serves it on a free loopback port and photographs each page with headless Chromium (Debian's
``chromium`` and ``chromium-driver``; nothing is downloaded). Needs what the demo needs.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
WIDTH, HEIGHT = 1400, 900

# (file name, path, what to wait for on the page); "{run}", "{scan}", "{target}" are filled in.
PAGES = [
    ("home", "/", "section.pdas-institution"),
    ("curation", "/curation/?institution=DEMO&tab=naming", "table"),
    ("archive-runs", "/archive/runs/", "table"),
    ("archive-run", "/archive/runs/{run}/", "table"),
    ("restore", "/archive/restore/?institution={institution_id}&mrn={mrn}", "table"),
    ("storage", "/archive/storage/", "table"),
    ("storage-target", "/archive/storage/{target}/", "table"),
    ("loss-scan", "/loss/scan/{scan}/?tab=first_course_lost", "table"),
    ("pending-archive", "/loss/pending/", "table"),
    ("report", "/reports/", "#report-charts"),
]


def manage(env: dict, *args: str, findings_ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([PYTHON, str(REPO / "manage.py"), *args], env=env, cwd=REPO, capture_output=True,
                          text=True)
    if done.returncode > (1 if findings_ok else 0):  # 1: findings for a person, expected in a demo
        sys.exit(f"manage.py {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare(data: Path, env: dict) -> dict:
    """The demo site, archived, checked (one copy damaged) and scanned; returns ids for the page paths."""
    demo = data / "demo"
    manage(env, "migrate", "--noinput")
    manage(env, "make_demo_site", str(demo), "--force")
    manage(env, "load_site_config", str(demo / "site.toml"))
    window = json.loads((demo / "expected.json").read_text(encoding="utf-8"))["scan_window"]
    manage(env, "curate", "--institution", "DEMO")
    manage(env, "archive", "--institution", "DEMO")
    manage(env, "scan_losses", "--institution", "DEMO", "--from", window["from"], "--to", window["to"])
    manage(env, "curate", "--institution", "DEMO")
    ids = json.loads(manage(env, "shell", "-v", "0", "-c", """
import json
from archiver.models import ArchiveRun
from inventory.models import ArchiveCopy
from lossdetect.models import LossScan
verified = ArchiveCopy.objects.filter(status="verified").select_related("archive", "target")
copy, damaged = verified.order_by("pk").first(), verified.order_by("-pk").first()
print(json.dumps({"run": ArchiveRun.objects.latest("created_at").pk, "scan": LossScan.objects.latest("created_at").pk,
                  "target": damaged.target.pk, "target_url": damaged.target.url, "archive": damaged.archive.name,
                  "mrn": copy.archive.mrn, "institution": copy.archive.institution.code,
                  "institution_id": copy.archive.institution_id}))
""").stdout.strip().splitlines()[-1])
    # The restore page's patient (not the one whose copy is damaged below) has its DICOM rendition made.
    manage(env, "render_dicom", "--institution", ids["institution"], "--mrn", ids["mrn"])
    folder = Path(ids["target_url"].removeprefix("file://"))
    stored = folder / ids["archive"]
    data_bytes = bytearray(stored.read_bytes())
    data_bytes[len(data_bytes) // 2] ^= 0xFF  # a bit flip on the array: the check finds it, the page shows it
    stored.write_bytes(bytes(data_bytes))
    manage(env, "check_archives", "--institution", "DEMO", "--all")
    return ids


def serve(env: dict, port: int, argv: list[str] | None = None) -> subprocess.Popen:
    """Start the demo's web server (``argv``, default runserver) and wait until it answers on ``port``."""
    argv = argv or [PYTHON, str(REPO / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload", "--insecure"]
    server = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=2)
            return server
        except OSError:
            time.sleep(0.3)
    server.kill()
    sys.exit("the demo server did not answer within 60 s")


def photograph(port: int, password: str, ids: dict, out: Path, profile: Path) -> list[Path]:
    sys.path.insert(0, str(REPO))
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.servers.chromium import start_chromium

    browser = start_chromium(profile, profile.parent / "chromedriver.log")
    written = []
    try:
        browser.set_window_size(WIDTH, HEIGHT)
        base = f"http://127.0.0.1:{port}"
        browser.get(f"{base}/accounts/login/")
        browser.find_element(By.NAME, "username").send_keys("screens")
        browser.find_element(By.NAME, "password").send_keys(password)
        browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()  # not the language switcher
        try:
            WebDriverWait(browser, 20).until(expected_conditions.url_to_be(f"{base}/"))
        except Exception:
            import re
            source = browser.page_source
            shown = re.findall(r'class="[^"]*(?:alert|errorlist|invalid-feedback)[^"]*"[^>]*>(.*?)<', source, re.S)
            sys.exit(f"could not log in: still at {browser.current_url}: {shown[:3]}; cookies "
                     f"{[c['name'] for c in browser.get_cookies()]}")
        for language in ("en", "zh-hans"):
            browser.add_cookie({"name": "django_language", "value": language, "path": "/"})
            for name, path, ready in PAGES:
                browser.get(base + path.format(**ids))
                WebDriverWait(browser, 20).until(expected_conditions.presence_of_element_located(
                    (By.CSS_SELECTOR, ready)))
                time.sleep(0.5)  # charts and live tables settle
                target = out / f"{name}.{language}.png"
                browser.save_screenshot(str(target))
                written.append(target)
    finally:
        browser.quit()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screens")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pdas-screens-") as scratch:
        data = Path(scratch)
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
        env.update({"PDAS_DATA_DIR": str(data), "PDAS_TIME_ZONE": "Asia/Shanghai", "SE_OFFLINE": "true"})
        ids = prepare(data, env)
        password = secrets.token_urlsafe(12)
        manage(env, "shell", "-v", "0", "-c", f"""
from django.contrib.auth import get_user_model
user, _ = get_user_model().objects.get_or_create(username="screens")
user.is_staff = user.is_superuser = True
user.set_password({password!r})
user.save()
print("user", user.pk, user.check_password({password!r}))
""", findings_ok=False)
        port = free_port()
        server = serve(env, port)
        try:
            written = photograph(port, password, ids, args.out, data / "chromium-profile")
        finally:
            server.terminate()
            server.wait(10)
    for path in written:
        print(f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}  {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
