"""The Overview (landing page) as an executive meets it: a fresh Streamlit server, headless Chromium, time from
navigation until the page is drawn and its script idle.

    .venv/bin/python benchmarks/overview_browser.py [--lake data/bench/history-lake] [--runs 3] [--first-visit]

Each run starts a new server process (empty caches: a cold start) and loads the landing page once (cold), then
reloads it (warm: a new browser session on the same server, every cache hit). ``--first-visit`` deletes the
stored overview figures before the first run, so it also times the first visit of a lake version (the figures
computed from the orders and stored). Targets (issue 9): under 2 s cold, under 300 ms warm; the warm figure
includes the browser's own page load and websocket handshake, which the AppTest figures of history.py do not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analytics import overview  # noqa: E402
from analytics.store import Lake  # noqa: E402
from tests.e2e.conftest import CHROMIUM, QUIET_FLAGS, Server, wait_idle  # noqa: E402


def load(page, url: str) -> float:
    """Seconds from navigation until the Overview's summary is drawn and the script is idle."""
    t = time.perf_counter()
    page.goto(url)
    page.get_by_role("heading", name="Summary").wait_for(timeout=600_000)
    wait_idle(page, timeout=600_000)
    return time.perf_counter() - t - 0.3  # wait_idle first sleeps 300 ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lake", default=str(ROOT / "data" / "bench" / "history-lake"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--first-visit", action="store_true", help="drop the stored figures before the first run")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    lake = Lake(args.lake)
    if args.first_visit:
        shutil.rmtree(lake.derived_dir(overview.FIGURES), ignore_errors=True)
    print(f"lake {lake.root} (version {lake.version()}), load average {os.getloadavg()[0]:.1f}")
    cold, warm = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=QUIET_FLAGS)
        for i in range(args.runs):
            srv = Server(lake.root)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                cold.append(load(page, srv.url))
                page.close()
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                warm.append(load(page, srv.url))
                page.close()
            finally:
                srv.stop()
            tag = (
                " (first visit of this lake version: figures computed and stored)" if args.first_visit and not i else ""
            )
            print(f"run {i + 1}: cold {cold[-1]:.2f} s{tag}, warm {warm[-1]:.2f} s", flush=True)
        browser.close()
    later = cold[1:] if args.first_visit and len(cold) > 1 else cold
    print(f"cold start (figures stored): median {statistics.median(later):.2f} s (target 2 s)")
    print(f"warm reload: median {statistics.median(warm):.2f} s (target 0.3 s)")


if __name__ == "__main__":
    main()
