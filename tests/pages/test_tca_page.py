"""AppTest of the TCA page over a small simulated desk: its figures equal the CLI's for the same filters."""

from __future__ import annotations

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from analytics import impact_models as im
from analytics import tca
from analytics.ingest import ingest
from analytics.store import Lake
from tests.pages.conftest import frame_with, open_app


def _app() -> AppTest:
    return open_app("app_pages/tca.py")


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_tca_page_headline_equals_the_stored_results(sim_env):
    at = _app()
    assert not at.exception
    assert at.title[0].value == "Transaction cost analysis"
    rows = tca.results(sim_env, sim_env.connect()).pl().filter(pl.col("arrival_ts").is_not_null())
    head = tca.summary(rows)
    assert _metric(at, "Orders") == f"{head['orders']:,}"
    assert _metric(at, "IS") == f"{head['is_total_bps']:+.1f} bps"
    assert _metric(at, "Arrival cost") == f"{head['arrival_cost_bps']:+.1f} bps"


def test_broker_filter_narrows_everything(sim_env):
    at = _app()
    brokers = at.multiselect(key="f_broker").options
    assert len(brokers) >= 3
    at.multiselect(key="f_broker").select(brokers[0]).run()
    assert not at.exception
    rows = tca.results(sim_env, sim_env.connect()).pl().filter(pl.col("broker") == brokers[0])
    assert _metric(at, "Orders") == f"{rows.height:,}"
    grp = frame_with(at, "broker", "orders", "arrival_cost_bps_lo")
    assert list(grp["broker"]) == [brokers[0]]


@pytest.mark.parametrize("dim", ["algo", "size_bucket", "time_bucket"])
def test_breakdowns_have_intervals_that_contain_the_mean(sim_env, dim):
    at = _app()
    at.selectbox(key="tca_dim").select(dim).run()
    assert not at.exception
    grp = frame_with(at, dim, "orders", "arrival_cost_bps_lo")
    assert len(grp) >= 2
    assert (grp["arrival_cost_bps_lo"] <= grp["arrival_cost_bps"]).all()
    assert (grp["arrival_cost_bps"] <= grp["arrival_cost_bps_hi"]).all()


def test_order_drill_down_shows_chart_and_waterfall(sim_env):
    at = _app()
    oid = at.selectbox(key="tca_order").value
    assert oid
    wf = frame_with(at, "step", "bps", "currency")
    assert list(wf["step"]) == ["Delay", "Trading", "Opportunity", "Fees", "Total IS"]
    assert wf["bps"][:4].sum() == pytest.approx(wf["bps"][4])
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 4  # histogram, breakdown, venue, markouts, price path, waterfall
    fills = frame_with(at, "fill_id", "venue", "markout_cost_bps_60s")
    assert set(fills["order_id"]) == {oid}


def test_date_range_filter(sim_env):
    at = _app()
    days = sorted({d for d in tca.results(sim_env, sim_env.connect()).pl()["arrival_ts"].dt.date().to_list()})
    at.date_input(key="f_dates").set_value((days[-1], days[-1])).run()
    assert not at.exception
    rows = tca.results(sim_env, sim_env.connect(), days[-1], days[-1]).pl()
    assert _metric(at, "Orders") == f"{rows.height:,}"


def test_lake_without_orders_says_what_to_do(tmp_path, monkeypatch):
    src = tmp_path / "quotes.jsonl"
    src.write_text(
        '{"event_type": "MarketDataEvent", "kind": "quote", "symbol": "ABC", "ts": "2026-03-02T15:00:00Z", '
        '"bid": 10.0, "ask": 10.01, "bid_size": 100, "ask_size": 100}\n'
    )
    ingest([src], Lake(tmp_path / "lake"))
    monkeypatch.setenv("ANALYTICS_LAKE", str(tmp_path / "lake"))
    at = _app()
    assert not at.exception
    assert any("No orders in this range" in i.value for i in at.info)


def test_all_orders_tab_shows_key_columns_then_every_column(sim_env):
    at = _app()
    table = frame_with(at, "order_id", "is_total_bps", "broker")
    assert "decision_price" not in table.columns and len(table.columns) == len(tca.KEY_COLUMNS)
    assert table["is_total_bps"].is_monotonic_decreasing
    at.toggle(key="tca_all_columns").set_value(True).run()
    assert not at.exception
    table = frame_with(at, "order_id", "is_total_bps", "decision_price")
    assert "event_id" in table.columns and "source_version" in table.columns


def test_vs_expectation_by_broker_and_algo_under_the_istar_champion(sim_env):
    """Realised minus expected (I-Star published before any training) per broker and per algo: every usable
    order counted once per dimension, gap = realised - expected per group (+ = cost above expectation)."""
    at = _app()
    assert not at.exception
    at.toggle(key="tca_expect_on").set_value(True).run()
    assert not at.exception
    table = frame_with(at, "dimension", "key", "gap_bps", "gap_bps_lo", "gap_bps_hi")
    usable = im.training_frame(tca.results(sim_env, sim_env.connect()).pl())
    for dim in ("broker", "algo"):
        part = table[table["dimension"] == dim]
        assert part["n"].sum() == usable.height
        assert ((part["realised_bps"] - part["expected_bps"] - part["gap_bps"]).abs() < 1e-9).all()
        assert ((part["gap_bps_lo"] <= part["gap_bps"]) & (part["gap_bps"] <= part["gap_bps_hi"])).all()
    assert set(table.loc[table["dimension"] == "broker", "key"]) == set(usable.join(
        tca.results(sim_env, sim_env.connect()).pl().select("order_id", "broker"), on="order_id")["broker"])  # fmt: skip
    at.radio(key="tca_gap_period").set_value("week").run()
    assert not at.exception
