"""AppTest of the Live page: the blotter, board and alert feed from an engine snapshot made by the engine's own
code on hand-made events; acknowledge; starting and stopping the embedded engine by pid."""

from __future__ import annotations

import time

import pandas as pd
import polars as pl
import pytest

from analytics.live import alerts, baseline, control
from analytics.live.config import load
from analytics.live.engine import Engine, live_dir, read_status
from analytics.live.sources import parse_source
from tests.live_helpers import events, wait_for
from tests.pages.conftest import frame_with, open_app


@pytest.fixture
def live_env(app_env, tmp_path):
    """The small page lake with an engine snapshot (one working order, 3 fills) and one open alert."""
    eng = Engine(app_env, parse_source(f"dir:{tmp_path / 'inbox'}"), load())
    eng.pending = [e | {"_recv": time.time()} for e in events(3, oid="OL1")]
    eng.refresh()
    eng._baseline_thread.join(120)  # the page lake has no earlier day: no trailing baseline; one set by hand ...
    assert eng.baseline.height == 0
    hand = {"dimension": ["venue"], "key": ["XNAS"], "base_markout_cost_bps_60s": [1.5],
            "base_markout_cost_bps_60s_lo": [0.5], "base_markout_cost_bps_60s_hi": [2.5]}  # fmt: skip
    eng.baseline = pl.concat([baseline.empty(), pl.DataFrame(hand)], how="diagonal_relaxed")
    eng.refresh()  # ... on the board
    eng.portfolios_state = pl.DataFrame({"portfolio_id": ["P1"], "strategy": ["MOM"], "pnl": [-210.0],
                                         "notional": [20010.0], "pnl_bps": [-104.9], "peak": [90.0],
                                         "drawdown": [300.0], "drawdown_bps": [149.9]})  # fmt: skip
    eng.snapshot()
    eng.alerts.update(
        alerts.quarantine_spike(100, 30, "b1", time.time(), load()["quarantine_spike"]), {"quarantine_spike"}
    )
    yield app_env
    for name in ("engine", "feed"):
        control.stop(app_env.root, name)
    for f in live_dir(app_env.root).glob("*"):
        if f.is_file():
            f.unlink()


def test_live_page_shows_blotter_board_and_alerts(live_env):
    at = open_app("app_pages/live.py")
    assert not at.exception
    assert at.title[0].value == "Live"
    blotter = frame_with(at, "order_id", "filled_qty", "arrival_cost_bps")
    row = blotter[blotter["order_id"] == "OL1"].iloc[0]
    assert row["filled_qty"] == 300 and bool(row["working"])
    # arrival mid 100.0, fills at 100.05: 5 bps
    assert row["arrival_cost_bps"] == pytest.approx(5.0)
    # The day's rows already in the lake (the page lake's O1 and its one valid fill) were loaded at day start.
    assert sorted(blotter["order_id"]) == ["O1", "OL1"]
    venue = frame_with(at, "key", "fills", "arrival_cost_bps")
    assert list(venue["key"]) == ["XNAS"] and venue.iloc[0]["fills"] == 3 + 1
    # beside today's figures, the venue's trailing baseline and its interval
    shown = venue.iloc[0]
    assert (shown["base_markout_cost_bps_60s"], shown["base_markout_cost_bps_60s_lo"]) == (1.5, 0.5)
    assert shown["base_markout_cost_bps_60s_hi"] == 2.5 and pd.isna(shown["base_arrival_cost_bps"])
    pf = frame_with(at, "portfolio_id", "drawdown_bps")  # portfolios intraday, from the snapshot
    assert list(pf["portfolio_id"]) == ["P1"] and pf.iloc[0]["drawdown"] == 300.0
    feed = frame_with(at, "rule", "subject", "message")
    # the planted spike only: O1's symbol ABC has no valid quote today (its only one was crossed), but the engine
    # watches quotes from the first market data it saw today (AAA's, at the clock), so ABC is not yet stale
    assert list(zip(feed["rule"], feed["subject"], strict=True)) == [("quarantine_spike", "intake")]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Working orders"] == "2" and metrics["Open alerts"] == "1"
    # the engine status in the sidebar (every page)
    assert any("Live engine" in c.value and "running" in c.value for c in at.sidebar.caption)
    other = open_app("app_pages/data.py")
    assert any("Live engine" in c.value for c in other.sidebar.caption)
    picked = at.selectbox(key="live_alert_pick").value
    at.button(key="live_ack").click().run()
    assert not at.exception
    acked = alerts.read(live_dir(live_env.root)).filter("acked")
    assert acked["alert_id"].to_list() == [picked]
    # the acknowledged alert is no longer offered (it was the only open one: nothing is left to act on)
    assert not [w for w in at.selectbox if w.key == "live_alert_pick"]


@pytest.mark.slow
def test_live_page_starts_and_stops_the_engine(app_env):
    at = open_app("app_pages/live.py")
    assert not at.exception
    at.button(key="live_start_engine").click().run()
    wait_for(lambda: control.status(app_env.root)["engine"]["running"], timeout=30)
    # the engine it started writes its own status (heartbeat) within seconds
    wait_for(lambda: (s := read_status(app_env.root)) and s["running"] and s["pid"] == control.status(app_env.root)[
        "engine"]["pid"], timeout=60)  # fmt: skip
    at.run()  # the page as it is now (the run after the click may have drawn before the child was seen alive)
    at.button(key="live_stop_engine").click().run()
    assert not at.exception
    # SIGTERM: the engine commits and exits (within seconds; longer on a loaded machine)
    wait_for(lambda: not control.status(app_env.root)["engine"]["running"], timeout=60)
