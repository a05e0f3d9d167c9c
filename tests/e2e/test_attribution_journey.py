"""Journey: Attribution page -> change grouping -> change linking -> drill into a group -> download its securities.
The active return is the compounded portfolio minus benchmark return: neither grouping nor linking may move it."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import go_to, land, wait_idle


def _choose(page: Page, label: str, option: str) -> None:
    page.locator('[data-testid="stSelectbox"]').filter(has_text=label).click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def test_attribution_grouping_linking_drill_download(page: Page, fresh_server, tmp_path):
    page.set_default_timeout(120_000)
    land(page, fresh_server)
    go_to(page, "Attribution", "Performance attribution")
    active = (
        page.locator('[data-testid="stMetric"]')
        .filter(has_text="Active (bps)")
        .locator('[data-testid="stMetricValue"]')
    )
    before = active.inner_text()
    effects = page.get_by_role("tabpanel", name="Effects").locator('[data-testid="stDataFrame"]').first
    expect(effects).to_be_visible()

    _choose(page, "Group by", "industry")
    expect(active).to_have_text(before)
    _choose(page, "Linking", "Grap")
    expect(active).to_have_text(before)
    assert page.locator('[data-testid="stException"]').count() == 0

    page.get_by_role("tab", name="Drill-down").click()
    panel = page.get_by_role("tabpanel", name="Drill-down")
    panel.locator('[data-testid="stSelectbox"]').filter(has_text="Group").click()
    page.get_by_role("option").nth(1).click()
    wait_idle(page)
    expect(panel.locator('[data-testid="stDataFrame"]')).to_be_visible()
    with page.expect_download() as dl:
        panel.get_by_role("button", name="Download securities").click()
    path = tmp_path / "drill.csv"
    dl.value.save_as(path)
    lines = path.read_text().splitlines()
    assert "symbol" in lines[0] and "contribution_bps" in lines[0]
    assert len(lines) >= 2
    assert page.locator('[data-testid="stException"]').count() == 0
