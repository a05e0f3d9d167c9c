"""Real-browser tests: a Streamlit server on loopback and Debian's Chromium driven by Playwright.

pytest-playwright's own browser download cannot run here, so the launch points at /usr/bin/chromium
(TOOLCHAIN.md). Every browser test carries the ``browser`` marker.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
QUIET_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": QUIET_FLAGS}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, lake: Path):
        self.lake = lake
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ANALYTICS_LAKE": str(lake), "MLFLOW_DISABLE_TELEMETRY": "true"}
        self.log = open(lake.parent / f"streamlit-{self.port}.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
                "--server.address", "127.0.0.1", "--server.port", str(self.port),
                "--server.headless", "true", "--browser.gatherUsageStats", "false",
            ],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("streamlit did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
        self.log.close()


@pytest.fixture(scope="session")
def fresh_server(tmp_path_factory) -> Iterator[Server]:
    """A server over an empty lake: its first page view builds the demo lake."""
    d = tmp_path_factory.mktemp("e2e")
    srv = Server(d / "lake")
    yield srv
    srv.stop()


def wait_idle(page, timeout: float = 120_000) -> None:
    """Wait until Streamlit has finished running the script."""
    page.wait_for_timeout(300)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout)


def pick_option(page, label: str, option: str, tries: int = 3) -> None:
    """Open the sidebar multiselect ``label`` and choose ``option`` (by exact name: the list also holds
    "Select all"); reopens it if a rerun closed the list before the click."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').filter(has_text=label)
    for i in range(tries):
        wait_idle(page)
        box.locator("input").click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=15_000)
            break
        except PlaywrightTimeout:
            if i == tries - 1:
                raise
            page.keyboard.press("Escape")
    page.keyboard.press("Escape")


def download(page, label: str, path, tries: int = 2):
    """Click the download button ``label`` (after the script is idle) and save the file to ``path``; clicks
    again if no download started (a rerun can replace the button under the click)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for i in range(tries):
        wait_idle(page)
        try:
            with page.expect_download(timeout=60_000) as dl:
                page.get_by_role("button", name=label).click()
            dl.value.save_as(path)
            return path
        except PlaywrightTimeout:
            if i == tries - 1:
                raise
    return path


def land(page, server) -> None:
    """Open the app and wait for the Overview landing page (a fresh server builds the demo lake first)."""
    from playwright.sync_api import expect

    page.goto(server.url)
    expect(page.get_by_role("heading", name="Desk overview")).to_be_visible(timeout=240_000)
    wait_idle(page)


def go_to(page, link: str, heading: str, idle_timeout: float = 120_000) -> None:
    """Follow the sidebar link ``link`` and wait until the page shows ``heading`` and its script is idle."""
    from playwright.sync_api import expect

    page.get_by_role("link", name=link, exact=True).click()
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    wait_idle(page, timeout=idle_timeout)
