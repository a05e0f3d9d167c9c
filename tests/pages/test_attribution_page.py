"""AppTest of the Attribution page over the small simulated desk: its figures equal the CLI's rows (the same
analytics functions) for each grouping, method and linking; drill, factor, risk and peer views render."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from analytics import attribution as attr
from analytics.conventions import BPS
from tests.pages.conftest import frame_with, open_app

PAGE = "app_pages/attribution.py"


def _app() -> AppTest:
    return open_app(PAGE)


def _expected(lake, pid, group_by="sector", method="brinson_fachler", linking="carino") -> pl.DataFrame:
    con = lake.connect()
    bench = attr.benchmark_of(con, pid)
    lo, hi = con.execute("SELECT min(date), max(date) FROM holdings WHERE portfolio_id = ?", [pid]).fetchone()
    pos = attr.load_positions(con, pid, bench, lo, hi, group_by)
    return attr.attribute(pos, method, linking).groups


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_page_shows_effects_that_reconcile_with_the_cli(sim_env):
    at = _app()
    assert not at.exception, at.exception
    assert at.title[0].value == "Performance attribution"
    pid = at.selectbox(key="attr_portfolio").value
    assert at.selectbox(key="attr_benchmark").value == attr.benchmark_of(sim_env.connect(), pid)
    want = _expected(sim_env, pid)
    tot = want.filter(pl.col("group") == attr.TOTAL).row(0, named=True)
    assert _metric(at, "Active (bps)") == f"{tot['total'] * BPS:+.1f}"
    assert _metric(at, "Allocation (bps)") == f"{tot['allocation'] * BPS:+.1f}"
    shown = frame_with(at, "group", "allocation_bps", "total_bps")
    got = {r["group"]: r["total_bps"] for r in shown.to_dict("records")}
    for r in want.to_dicts():
        assert got[r["group"]] == pytest.approx(r["total"] * BPS, abs=1e-9)
    groups = shown[shown["group"] != attr.TOTAL]
    assert groups["total_bps"].sum() == pytest.approx(got[attr.TOTAL], abs=1e-9)
    assert len(at.get("vega_lite_chart")) >= 2
    labels = [b.proto.label for b in at.get("download_button")]
    assert any("PerformanceAttributionEvent" in x for x in labels)


@pytest.mark.parametrize(
    "group_by,method,linking", [("industry", "bhb", "grap"), ("country", "brinson_fachler", "menchero")]
)
def test_changing_grouping_method_and_linking(sim_env, group_by, method, linking):
    at = _app()
    at.selectbox(key="attr_group_by").select(group_by).run()
    at.selectbox(key="attr_method").select(method).run()
    at.selectbox(key="attr_linking").select(linking).run()
    assert not at.exception, at.exception
    pid = at.selectbox(key="attr_portfolio").value
    want = _expected(sim_env, pid, group_by, method, linking)
    shown = frame_with(at, "group", "allocation_bps", "total_bps")
    assert set(shown["group"]) == set(want["group"])
    got = {r["group"]: r["allocation_bps"] for r in shown.to_dict("records")}
    for r in want.to_dicts():
        assert got[r["group"]] == pytest.approx(r["allocation"] * BPS, abs=1e-9)
    over = frame_with(at, "date", "group", "interaction_bps")
    last = over[over["date"] == over["date"].max()]
    assert last["total_bps"].sum() == pytest.approx(got_total(want), abs=1e-9)


def got_total(want: pl.DataFrame) -> float:
    return want.filter(pl.col("group") == attr.TOTAL)["total"][0] * BPS


def test_drill_into_a_group_and_other_views(sim_env):
    at = _app()
    groups = at.selectbox(key="attr_drill").options
    assert groups
    at.selectbox(key="attr_drill").select(groups[-1]).run()
    assert not at.exception, at.exception
    pid = at.selectbox(key="attr_portfolio").value
    want = _expected(sim_env, pid).filter(pl.col("group") == groups[-1])["total"][0]
    sec = frame_with(at, "symbol", "active_weight", "contribution_bps")
    assert sec["contribution_bps"].sum() == pytest.approx(want * BPS, abs=1e-9)
    fac = frame_with(at, "factor", "active_exposure", "active_contribution_bps")
    assert {"market", "size", "specific", attr.TOTAL} <= set(fac["factor"])
    # the fixture desk has 2 days: too few to regress on 5 factors, and the page says so
    assert any("too few days" in i.value for i in at.info)
    te = frame_with(at, "factor", "contribution_te", "pct_te")
    assert te["pct_te"].sum() == pytest.approx(1.0)
    peers = frame_with(at, "portfolio_id", "information_ratio", "rank_ir")
    assert len(peers) == len(at.selectbox(key="attr_portfolio").options)
    assert sorted(peers["rank_ir"].dropna()) == list(range(1, peers["rank_ir"].notna().sum() + 1))


def test_other_portfolio_and_sidebar_dates(sim_env):
    at = _app()
    ports = at.selectbox(key="attr_portfolio").options
    at.selectbox(key="attr_portfolio").select(ports[-1]).run()
    assert not at.exception, at.exception
    own = {p: attr.benchmark_of(sim_env.connect(), p) for p in ports}
    assert at.selectbox(key="attr_benchmark").value == own[ports[-1]] != own[ports[0]]  # follows the portfolio
    other = next(b for b in at.selectbox(key="attr_benchmark").options if b != own[ports[-1]])
    at.selectbox(key="attr_benchmark").select(other).run()  # a benchmark picked by hand stays
    assert not at.exception and at.selectbox(key="attr_benchmark").value == other
    lo = sim_env.connect().execute("SELECT min(date) FROM holdings").fetchone()[0]
    at.date_input(key="f_dates").set_value((lo, lo)).run()  # the shared sidebar range
    assert not at.exception, at.exception
    assert any(f"{lo} → {lo} (1 days)" in c.value for c in at.caption)
    assert isinstance(lo, dt.date)
