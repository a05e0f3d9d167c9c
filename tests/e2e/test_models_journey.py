"""Journey: Cost models page -> Retrain (in the background; the app stays usable) -> a new run appears with its
metrics -> Pre-trade page shows an estimate."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.conftest import go_to, land, wait_idle


def test_retrain_then_pretrade_estimate(page: Page, fresh_server):
    page.set_default_timeout(180_000)
    land(page, fresh_server)
    go_to(page, "Cost models", "Cost models")
    page.get_by_role("button", name="Retrain").click()
    # the training runs in the background: the page is idle again at once, shows the job's progress, and its
    # polling fragment reruns the page when the job is done
    expect(page.locator('[data-testid="stProgress"]')).to_be_visible(timeout=60_000)
    wait_idle(page)
    page.get_by_role("link", name="TCA", exact=True).click()  # the app stays usable meanwhile
    expect(page.get_by_role("heading", name="Transaction cost analysis")).to_be_visible()
    page.get_by_role("link", name="Cost models", exact=True).click()
    # promoted or rejected: the first fit must beat the published parameters on the holdout (tracking)
    expect(page.get_by_text(re.compile(r"impact-istar v\d+: (promoted|rejected)"))).to_be_visible(timeout=300_000)
    wait_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    expect(page.get_by_text("No training run yet.")).to_have_count(0)
    runs = page.locator('[data-testid="stDataFrame"]').last
    expect(runs).to_be_visible()
    expect(page.locator('[data-testid="stJson"]')).to_be_visible()  # the ModelUpdateEvent of the run

    page.get_by_role("link", name="Pre-trade", exact=True).click()
    expect(page.get_by_role("heading", name="Pre-trade estimate")).to_be_visible()
    wait_idle(page)
    # a recommendation only when the saving's interval excludes zero, else the equivalent algos are named
    expect(page.get_by_text(re.compile("Lowest expected cost|No recommendation: .* are equivalent"))).to_be_visible()
    size = page.locator('[data-testid="stMetric"]').filter(has_text="Size").locator('[data-testid="stMetricValue"]')
    expect(size).to_contain_text("% ADV")
    assert page.locator('[data-testid="stException"]').count() == 0
