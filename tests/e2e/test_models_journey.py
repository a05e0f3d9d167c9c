"""Journey: Cost models page -> Retrain -> a new run appears with its metrics -> Pre-trade page shows an estimate."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import go_to, land, wait_idle


def test_retrain_then_pretrade_estimate(page: Page, fresh_server):
    page.set_default_timeout(180_000)
    land(page, fresh_server)
    go_to(page, "Cost models", "Cost models")
    page.get_by_role("button", name="Retrain").click()
    wait_idle(page, timeout=300_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    expect(page.get_by_text("No training run yet.")).to_have_count(0)
    runs = page.locator('[data-testid="stDataFrame"]').last
    expect(runs).to_be_visible()
    expect(page.locator('[data-testid="stJson"]')).to_be_visible()  # the ModelUpdateEvent of the run

    page.get_by_role("link", name="Pre-trade", exact=True).click()
    expect(page.get_by_role("heading", name="Pre-trade estimate")).to_be_visible()
    wait_idle(page)
    expect(page.get_by_text("Lowest expected cost")).to_be_visible()
    size = page.locator('[data-testid="stMetric"]').filter(has_text="Size").locator('[data-testid="stMetricValue"]')
    expect(size).to_contain_text("% ADV")
    assert page.locator('[data-testid="stException"]').count() == 0
