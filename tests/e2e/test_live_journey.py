"""Journey: the Live page starts the engine on the lake's watched folder; an order and its fill dropped into the
folder (as the desk's feed would) show up on the page without any click; a burst of bad quotes raises an alert
that the trader acknowledges; the engine is stopped from the page."""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import Page, expect

from analytics.live import alerts, control
from analytics.live.engine import live_dir
from analytics.store import Lake
from tests.e2e.conftest import Server, go_to, land, wait_idle

DAY = "2026-03-09"  # the Monday after the demo week


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """Its own server and lake: the live engine commits to the lake, which the other journeys must not see."""
    srv = Server(tmp_path_factory.mktemp("e2e-live") / "lake")
    yield srv
    srv.stop()
    control.stop(srv.lake, "engine")  # by its recorded pid, should the test have failed before its own stop


def _append(path, events: list[dict]) -> None:
    with open(path, "a") as fh:
        fh.write("".join(json.dumps(e) + "\n" for e in events))


def _metric(page: Page, label: str):
    return page.locator('[data-testid="stMetric"]').filter(has_text=label)


def test_live_page_shows_a_published_fill_without_a_click_and_an_alert_is_acknowledged(page: Page, live_server):
    page.set_default_timeout(120_000)
    land(page, live_server)
    go_to(page, "Live", "Live")
    page.get_by_role("button", name="Start engine (folder source)").click()
    wait_idle(page)
    expect(page.locator('[data-testid="stSidebar"]')).to_contain_text("running", timeout=60_000)
    expect(_metric(page, "Working orders")).to_contain_text("0", timeout=60_000)  # the engine's first snapshot

    sym = Lake(live_server.lake).read("securities")["symbol"].sort()[0]
    inbox = control.inbox(live_server.lake)
    feed = inbox / "desk.jsonl"
    quote = {"event_type": "MarketDataEvent", "kind": "quote", "symbol": sym, "bid": 50.00, "ask": 50.02,
             "bid_size": 500, "ask_size": 500}  # fmt: skip
    events = [
        {**quote, "ts": f"{DAY}T14:30:00Z"},
        {"event_type": "OrderEvent", "event_id": "e2e-o1", "order_id": "E2E-1", "ts": f"{DAY}T14:30:01Z",
         "action": "NEW", "symbol": sym, "side": "BUY", "quantity": 1000, "broker": "Crescent", "algo": "VWAP"},
        {"event_type": "TradeExecutedEvent", "event_id": "e2e-f1", "fill_id": "E2E-F1", "order_id": "E2E-1",
         "ts": f"{DAY}T14:30:02Z", "symbol": sym, "side": "BUY", "quantity": 400, "price": 50.03, "venue": "XNAS"},
    ]  # fmt: skip
    t0 = time.monotonic()
    _append(feed, events)
    # No click: the page's fragment refreshes itself from the engine's snapshot.
    expect(_metric(page, "Working orders")).to_contain_text("1", timeout=2_000)
    expect(_metric(page, "Orders today")).to_contain_text("1")
    shown_after = time.monotonic() - t0
    print(f"published fill on the Live page after {shown_after:.2f} s")

    # 20 crossed quotes in one commit: every row of it quarantined, the quarantine-spike rule fires.
    _append(feed, [{**quote, "bid": 50.05, "ask": 50.00, "ts": f"{DAY}T14:31:{i:02d}Z"} for i in range(20)])
    expect(_metric(page, "Open alerts")).to_contain_text("1", timeout=30_000)
    expect(page.get_by_role("button", name="Acknowledge")).to_be_visible()
    page.get_by_role("button", name="Acknowledge").click()
    # Acknowledged: no open, unacknowledged alert is left to act on.
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0, timeout=10_000)
    feed_rows = alerts.read(live_dir(live_server.lake))
    spike = feed_rows.filter(feed_rows["rule"] == "quarantine_spike")
    assert spike.height == 1 and spike["acked"].to_list() == [True]

    # The order and its fill reached the lake through the batch path.
    fills = Lake(live_server.lake).read("fills")
    assert fills.filter(fills["fill_id"] == "E2E-F1")["quantity"].to_list() == [400]

    page.get_by_text("Engine and demo feed").click()
    page.get_by_role("button", name="Stop engine").click()
    wait_idle(page)
    expect(page.get_by_role("button", name="Start engine (folder source)")).to_be_visible(timeout=60_000)
