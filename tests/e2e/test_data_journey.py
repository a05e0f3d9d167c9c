"""Journey: fresh app -> demo lake built -> Overview landing -> Data page -> upload a bad file -> its rows in quarantine."""

from __future__ import annotations

import json

from playwright.sync_api import Page, expect

from tests.e2e.conftest import go_to, land, wait_idle


def test_fresh_app_builds_demo_then_upload_quarantines(page: Page, fresh_server, tmp_path):
    page.set_default_timeout(120_000)
    land(page, fresh_server)
    go_to(page, "Data", "Data")
    assert page.locator('[data-testid="stException"]').count() == 0
    metrics = page.locator('[data-testid="stMetric"]')
    expect(metrics.first).to_contain_text("Lake version")
    # The demo was simulated with faults: the quarantine is not empty.
    page.get_by_role("tab", name="Quarantine").click()
    expect(page.get_by_text("The quarantine is empty")).to_have_count(0)

    # Upload a file with one good and two bad rows.
    bad = tmp_path / "my upload.jsonl"
    rows = [
        {
            "event_type": "MarketDataEvent",
            "kind": "quote",
            "symbol": "ZZTEST",
            "ts": "2026-03-02T15:00:00Z",
            "bid": 10.0,
            "ask": 10.01,
            "bid_size": 100,
            "ask_size": 100,
        },
        {
            "event_type": "MarketDataEvent",
            "kind": "quote",
            "symbol": "ZZTEST",
            "ts": "2026-03-02T15:00:01Z",
            "bid": 10.05,
            "ask": 10.00,
            "bid_size": 100,
            "ask_size": 100,
        },
    ]
    bad.write_text("\n".join(json.dumps(r) for r in rows) + '\n{"event_type": "Trade\n')
    page.get_by_role("tab", name="Upload").click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(bad))
    page.get_by_role("button", name="Ingest").click()
    wait_idle(page)
    expect(page.get_by_text("1 accepted, 0 duplicate, 2 quarantined")).to_be_visible()

    summary = page.locator('[data-testid="stMainBlockContainer"]')
    expect(summary).to_contain_text("crossed_quote (1)")
    expect(summary).to_contain_text("unparseable (1)")

    # The quarantine browser finds the uploaded rows under the uploaded file's own name.
    page.get_by_role("tab", name="Quarantine").click()
    source = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Source file")
    source.locator("input").fill("my upload.jsonl")
    page.keyboard.press("Enter")
    wait_idle(page)
    expect(page.get_by_text("2 row(s) shown")).to_be_visible()
    assert page.locator('[data-testid="stException"]').count() == 0
