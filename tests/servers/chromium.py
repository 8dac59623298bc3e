"""``chromium`` (session) and ``browser`` (per test): headless Chromium driven by Selenium.

The Debian ``chromium`` and ``chromium-driver`` binaries are used directly; Selenium Manager is
kept offline so nothing is downloaded. Pair ``browser`` with pytest-django's ``live_server``.
One browser serves the whole session; ``browser`` clears cookies and storage after each test.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from tests.servers.process import ServerStartError, require_binary

FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--window-size=1280,900", "--lang=en-US",
]


def start_chromium(profile_dir: Path, log_path: Path, extra_flags: tuple[str, ...] = ()):
    """A new headless Chromium session with a fresh profile (and ``extra_flags`` beside the usual ones)."""
    browser_binary = require_binary("chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser", package="chromium")
    driver_binary = require_binary("chromedriver", "/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver",
                                   package="chromium-driver")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not fetch a browser or driver
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser_binary
    for flag in (*FLAGS, *extra_flags):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    service = Service(executable_path=driver_binary, log_output=str(log_path))
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except WebDriverException as exc:
        try:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            tail = "(no log)"
        raise ServerStartError(f"chromium did not start: {exc.msg or exc} (log {log_path}):\n{tail}") from None
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture(scope="session")
def chromium(tmp_path_factory) -> Iterator:
    workdir = tmp_path_factory.mktemp("chromium")
    driver = start_chromium(workdir / "profile", workdir / "chromedriver.log")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium) -> Iterator:
    """The session's Chromium (a Selenium WebDriver), left clean for the next test."""
    yield chromium
    chromium.get("about:blank")
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})
    chromium.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": "*", "storageTypes": "all"})
