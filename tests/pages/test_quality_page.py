"""AppTest of the Execution quality page over a small simulated desk: its leaderboard equals the CLI's report
rows, the adjustment toggle switches the table to the adjusted figures, downloads are offered."""

from __future__ import annotations

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from analytics import quality as q
from analytics import tca
from analytics.filters import Filters
from tests.pages.conftest import frame_with, open_app


def _app() -> AppTest:
    return open_app("app_pages/quality.py")


def test_quality_page_leaderboard_equals_the_report(sim_env):
    at = _app()
    assert not at.exception
    assert at.title[0].value == "Execution quality"
    board = pl.from_pandas(frame_with(at, "key", "orders", "fills", "score", "markout_cost_bps_60s"))
    rows = q.report(sim_env, sim_env.connect(), Filters(), "venue")  # what `python -m analytics quality` writes
    assert sorted(board["key"].to_list()) == sorted(rows["key"].to_list())
    exp = {r["key"]: r for r in rows.to_dicts()}
    for r in board.to_dicts():
        assert r["fills"] == exp[r["key"]]["fills"]
        if not r["small_sample"]:
            assert r["score"] == pytest.approx(exp[r["key"]]["score"])
            assert r["markout_cost_bps_60s"] == pytest.approx(exp[r["key"]]["markout_cost_bps_60s"])
    fills = tca.results(sim_env, sim_env.connect(), part="fills").pl().filter(pl.col("fill_id").is_not_null())
    assert board["fills"].sum() == fills.height
    assert len(at.get("vega_lite_chart")) >= 4  # leaderboard bars, trend, scatter, markouts
    assert len(at.get("download_button")) >= 6  # leaderboard, recommendations, pairs, trend, markouts, events, 605


def test_adjustment_toggle_changes_the_leaderboard(sim_env):
    at = _app()
    at.segmented_control(key="q_dim").set_value("algo").run()
    raw = pl.from_pandas(frame_with(at, "key", "score", "arrival_cost_bps"))
    assert "adjusted_bps" not in raw.columns
    at.toggle(key="q_adjusted").set_value(True).run()
    assert not at.exception
    adj = pl.from_pandas(frame_with(at, "key", "adjusted_bps", "arrival_cost_bps"))
    assert "raw_bps" not in adj.columns  # one "raw": the raw view's notional-weighted arrival cost, unchanged
    both = raw.join(adj, on="key", suffix="_adj").filter(pl.col("arrival_cost_bps").is_not_null())
    assert both.height and both["arrival_cost_bps"].to_list() == both["arrival_cost_bps_adj"].to_list()
    # the leaderboard sorts by the column a recommendation rests on
    at.selectbox(key="q_sort_True").set_value("adjusted_bps").run()
    srt = pl.from_pandas(frame_with(at, "key", "adjusted_bps")).filter(~pl.col("small_sample"))
    assert srt["adjusted_bps"].to_list() == sorted(srt["adjusted_bps"].to_list())
    adj = pl.from_pandas(frame_with(at, "key", "adjusted_bps", "arrival_cost_bps"))
    orders = tca.results(sim_env, sim_env.connect()).pl().filter(pl.col("arrival_ts").is_not_null())
    assert set(adj["key"]) == set(orders.filter(pl.col("filled_qty") > 0)["algo"])
    assert (
        adj["orders"].sum()
        == orders.filter((pl.col("filled_qty") > 0) & pl.col("arrival_cost_bps").is_not_null()).height
    )
    big = adj.filter(~pl.col("small_sample"))
    assert (big["adjusted_lo"] <= big["adjusted_bps"]).all() and (big["adjusted_bps"] <= big["adjusted_hi"]).all()
    assert any("Leaderboard by algo — difficulty-adjusted" in s.value for s in at.subheader)


def test_broker_dimension_and_period_switch(sim_env):
    at = _app()
    at.segmented_control(key="q_dim").set_value("broker").run()
    at.segmented_control(key="q_period").set_value("month").run()
    assert not at.exception
    board = frame_with(at, "key", "fill_rate_qty", "avg_time_to_first_fill_s")
    orders = tca.results(sim_env, sim_env.connect()).pl().filter(pl.col("arrival_ts").is_not_null())
    assert set(board["key"]) == set(orders["broker"])
    assert at.selectbox(key="q_highlight").value in set(orders["broker"])


def test_broker_filter_narrows_the_page(sim_env):
    at = _app()
    brokers = at.multiselect(key="f_broker").options
    at.multiselect(key="f_broker").select(brokers[0]).run()
    at.segmented_control(key="q_dim").set_value("broker").run()
    assert not at.exception
    assert list(frame_with(at, "key", "fill_rate_qty")["key"]) == [brokers[0]]
