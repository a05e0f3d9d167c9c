"""Journey: land on the Overview -> filter a broker -> follow a tile's link to TCA with the filter carried ->
Reports -> build a PDF -> download it."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import land, pick_option, wait_idle


def _metric(page: Page, label: str):
    return page.locator('[data-testid="stMetric"]').filter(has_text=label).locator('[data-testid="stMetricValue"]')


def test_overview_tile_to_tca_then_pdf_report(page: Page, fresh_server, tmp_path):
    page.set_default_timeout(120_000)
    land(page, fresh_server)
    orders_all = _metric(page, "Orders").inner_text()

    broker = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').filter(has_text="Broker")
    pick_option(page, "Broker", "Birchwood")
    expect(_metric(page, "Orders")).not_to_have_text(orders_all)
    wait_idle(page)
    orders_one = _metric(page, "Orders").inner_text()

    page.get_by_role("link", name="Costs in detail: TCA").click()
    expect(page.get_by_role("heading", name="Transaction cost analysis")).to_be_visible()
    wait_idle(page)
    # the filter travelled with the session: same broker, same order count
    expect(broker).to_contain_text("Birchwood")
    expect(_metric(page, "Orders")).to_have_text(orders_one)

    page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Reports").click()
    expect(page.get_by_role("heading", name="Reports")).to_be_visible()
    wait_idle(page)
    page.get_by_role("button", name="Build report").click()
    expect(page.get_by_text("Report ready")).to_be_visible(timeout=120_000)
    wait_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download the PDF report").click()
    path = tmp_path / "report.pdf"
    dl.value.save_as(path)
    assert path.read_bytes()[:5] == b"%PDF-"
    assert path.stat().st_size > 20_000
