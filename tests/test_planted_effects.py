"""The simulator's planted effects are recovered by the TCA, and its null effect is not (ground truth in
analytics/simulate: DRKB adverse selection, LIQSEEK's 1.6x temporary impact, VWAP == POV, Crescent slower)."""

from __future__ import annotations

import math

import polars as pl
import pytest

from analytics import impact, tca
from analytics.ingest import ingest
from analytics.simulate import SimConfig, simulate
from analytics.store import Lake

pytestmark = pytest.mark.slow
Z = 1.959963984540054


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    d = tmp_path_factory.mktemp("planted")
    cfg = SimConfig(days=2, symbols=40, orders_per_day=5000, fills_per_order=6, quotes_per_day=400_000,
                    trades_per_day=150_000, seed=21)  # fmt: skip
    simulate(d / "files", cfg)
    lake = Lake(d / "lake")
    ingest([d / "files"], lake)
    tca.ensure(lake)
    con = lake.connect()
    orders = tca.results(lake, con).pl().filter(pl.col("arrival_ts").is_not_null())
    fills = tca.results(lake, con, part="fills").pl().filter(pl.col("fill_id").is_not_null())
    return orders, fills, lake


def test_adverse_selection_venue_has_the_worst_markouts(desk):
    _, fills, _ = desk
    curve = tca.markout_curve(fills, (60.0,), "venue")
    drkb = curve.filter(pl.col("venue") == "DRKB").row(0, named=True)
    others = curve.filter(pl.col("venue") != "DRKB")
    assert drkb["lo"] > 0  # adverse: the CI excludes zero
    assert drkb["lo"] > others["hi"].max()  # and every other venue


def _difficulty_adjusted(orders: pl.DataFrame) -> pl.DataFrame:
    """Arrival cost minus what the fitted square-root law expects for the order's size and volatility."""
    fit = impact.fit_sqrt_law(orders)
    x = pl.col("daily_volatility") * 1e4 * pl.col("size_pct_adv").sqrt()
    return orders.with_columns((pl.col("arrival_cost_bps") - (fit.intercept + fit.coefficient * x)).alias("resid"))


def _diff(orders: pl.DataFrame, a: str, b: str) -> tuple[float, float]:
    s = orders.group_by("algo").agg(pl.col("resid").mean().alias("m"), (pl.col("resid").var() / pl.len()).alias("v"))
    ra, rb = (s.filter(pl.col("algo") == k).row(0, named=True) for k in (a, b))
    return ra["m"] - rb["m"], math.sqrt(ra["v"] + rb["v"])


def test_costlier_algo_is_costlier_on_comparable_orders(desk):
    orders = _difficulty_adjusted(desk[0])
    d, se = _diff(orders, "LIQSEEK", "VWAP")
    assert d - Z * se > 0


def test_equal_algos_are_not_declared_different(desk):
    orders = _difficulty_adjusted(desk[0])
    d, se = _diff(orders, "VWAP", "POV")
    assert d - Z * se < 0 < d + Z * se


def test_slow_broker_is_slowest_and_fills_least(desk):
    orders, _, _ = desk
    b = orders.group_by("broker").agg(
        pl.col("fill_rate").mean().alias("fill_rate"), pl.col("time_to_first_fill_s").median().alias("ttff")
    )
    assert b.sort("fill_rate")["broker"][0] == "Crescent"
    assert b.sort("ttff", descending=True)["broker"][0] == "Crescent"


def test_sql_fill_aggregates_equal_the_in_memory_ones(desk):
    """The pages aggregate fills in DuckDB over the stored files (a year never fits in memory); the same
    figures from the in-memory Polars functions must agree."""
    from analytics.filters import Filters

    _, fills, lake = desk
    con = lake.connect()
    sql_curve = tca.markouts_sql(lake, con, Filters(), by_venue=True).sort("venue", "horizon_s")
    mem_curve = tca.markout_curve(fills, group="venue").sort("venue", "horizon_s")
    for c in ("markout_bps", "lo", "hi"):
        assert sql_curve[c].to_list() == pytest.approx(mem_curve[c].to_list(), rel=1e-9)
    assert sql_curve["n"].to_list() == mem_curve["n"].to_list()
    sql_venue = tca.venue_costs(lake, con, Filters()).sort("venue")
    mem_venue = tca.clustered_mean_ci(fills, "arrival_cost_bps", pl.col("p") * pl.col("q"), ["venue"]).sort("venue")
    for c, m in (("arrival_cost_bps", "mean"), ("arrival_cost_bps_lo", "lo"), ("arrival_cost_bps_hi", "hi")):
        assert sql_venue[c].to_list() == pytest.approx(mem_venue[m].to_list(), rel=1e-9)
    assert sql_venue["orders"].to_list() == mem_venue["clusters"].to_list()


def test_fill_cube_answers_as_the_fill_scan(desk):
    """The pages read venue costs and markouts from the per-day fill cube (summed moments); under any
    broker/algo/venue/portfolio filter it must give the fill scan's figures (means, intervals, counts)."""
    from analytics.filters import Filters

    _, fills, lake = desk
    con = lake.connect()
    brokers = sorted(set(fills.join(tca.load_orders(lake, con, Filters()), on="order_id")["broker"].to_list()))
    venues = sorted(set(fills["venue"].to_list()))
    for f in (Filters(), Filters(broker=(brokers[0],)), Filters(broker=tuple(brokers[:2]), venue=(venues[0],))):
        for by_venue in (True, False):
            cube = tca.markouts_sql(lake, con, f, by_venue=by_venue)
            scan = tca.markouts_sql(lake, con, f, by_venue=by_venue, use_cube=False)
            assert cube.height == scan.height > 0
            for c in ("markout_bps", "lo", "hi"):
                assert cube[c].to_list() == pytest.approx(scan[c].to_list(), rel=1e-7)
            assert cube["n"].to_list() == scan["n"].to_list()
            assert cube["clusters"].to_list() == scan["clusters"].to_list()
        for cl in ("order", "day"):
            cube = tca.markouts_sql(lake, con, f, by_venue=True, cluster=cl)
            scan = tca.markouts_sql(lake, con, f, by_venue=True, use_cube=False, cluster=cl)
            assert cube["hi"].to_list() == pytest.approx(scan["hi"].to_list(), rel=1e-7)
        cube_v = tca.venue_costs(lake, con, f).sort("venue")
        scan_v = tca.venue_costs(lake, con, f, use_cube=False).sort("venue")
        assert cube_v["venue"].to_list() == scan_v["venue"].to_list()
        for c in ("arrival_cost_bps", "arrival_cost_bps_lo", "arrival_cost_bps_hi"):
            assert cube_v[c].to_list() == pytest.approx(scan_v[c].to_list(), rel=1e-7)
        assert cube_v["fills"].to_list() == scan_v["fills"].to_list()
