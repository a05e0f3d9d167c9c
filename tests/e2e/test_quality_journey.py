"""Journey: Execution quality page -> toggle the difficulty adjustment -> the leaderboard changes -> download
the Rule 605 report."""

from __future__ import annotations

import csv

from playwright.sync_api import Page, expect

from tests.e2e.conftest import download, go_to, land, wait_idle


def _download(page: Page, label: str, path):
    with open(download(page, label, path), newline="") as fh:
        return list(csv.DictReader(fh))


def test_quality_toggle_adjustment_and_download_605(page: Page, fresh_server, tmp_path):
    page.set_default_timeout(180_000)
    land(page, fresh_server)
    go_to(page, "Execution quality", "Execution quality", idle_timeout=180_000)
    heading = page.get_by_role("heading", name="Leaderboard by")
    expect(heading).not_to_contain_text("difficulty-adjusted")
    raw = _download(page, "Download leaderboard (CSV)", tmp_path / "raw.csv")

    page.get_by_text("Difficulty-adjusted", exact=True).click()
    wait_idle(page, timeout=180_000)
    expect(heading).to_contain_text("difficulty-adjusted")
    adjusted = _download(page, "Download leaderboard (CSV)", tmp_path / "adjusted.csv")
    assert raw and adjusted
    assert raw != adjusted  # the adjusted leaderboard is another ranking or other figures
    assert page.locator('[data-testid="stException"]').count() == 0

    rule605 = _download(page, "Download Rule 605 report (CSV)", tmp_path / "rule605.csv")
    assert rule605
    cols = set(rule605[0])
    assert {"order_type", "orders", "shares"} <= cols, cols
