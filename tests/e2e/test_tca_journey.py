"""Journey: TCA page -> pick a broker -> drill into an order -> chart and waterfall visible -> download."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import go_to, land, pick_option, wait_idle


def test_tca_broker_drill_down_and_download(page: Page, fresh_server, tmp_path):
    page.set_default_timeout(120_000)
    land(page, fresh_server)
    go_to(page, "TCA", "Transaction cost analysis")
    orders_metric = page.locator('[data-testid="stMetric"]').filter(has_text="Orders")
    orders_before = orders_metric.inner_text()

    # Pick a broker in the shared sidebar filters.
    pick_option(page, "Broker", "Birchwood")
    expect(orders_metric).not_to_have_text(orders_before)  # fewer orders for one broker
    wait_idle(page)

    # Drill into the worst order.
    page.get_by_role("tab", name="Order drill-down").click()
    wait_idle(page)
    panel = page.get_by_role("tabpanel", name="Order drill-down")
    expect(panel.get_by_text("Order (500 highest IS first)")).to_be_visible()
    expect(panel.locator('[data-testid="stVegaLiteChart"]')).to_have_count(2)  # price path + IS waterfall
    expect(panel.locator("canvas, svg").first).to_be_visible()
    assert page.locator('[data-testid="stException"]').count() == 0

    with page.expect_download() as dl:
        panel.get_by_role("button", name="Download this order's fills (CSV)").click()
    path = tmp_path / "fills.csv"
    dl.value.save_as(path)
    header = path.read_text().splitlines()[0]
    assert "fill_id" in header and "markout_cost_bps_60s" in header
    assert len(path.read_text().splitlines()) >= 2
