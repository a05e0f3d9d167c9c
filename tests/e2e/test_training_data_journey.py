"""Journey: Training data page -> build a dataset with progress -> it appears with its quality report."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import go_to, land, wait_idle


def test_build_a_dataset_from_the_page(page: Page, fresh_server):
    page.set_default_timeout(180_000)
    land(page, fresh_server)
    go_to(page, "Training data", "Training data")
    name = page.get_by_label("Dataset name")
    name.fill("e2e-journey")
    page.get_by_role("button", name="Build dataset").click()
    expect(page.get_by_text("e2e-journey@1 built")).to_be_visible(timeout=300_000)
    wait_idle(page, timeout=300_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    rows = page.locator('[data-testid="stMetric"]').filter(has_text="Rows").locator('[data-testid="stMetricValue"]')
    assert int(rows.inner_text().replace(",", "")) > 100
    quality = (
        page.locator('[data-testid="stMetric"]').filter(has_text="Quality").locator('[data-testid="stMetricValue"]')
    )
    assert float(quality.inner_text().rstrip("%")) > 95.0
    page.get_by_role("tab", name="Quality").click()
    expect(page.get_by_role("tabpanel", name="Quality").locator('[data-testid="stDataFrame"]').first).to_be_visible()
