"""Monte Carlo coverage of every interval the product shows, on clustered synthetic data with a known mean.

Each test stacks R independent replications as groups of ONE call (a replication = a group key), so 1000
replications cost one group-by. Data: 40 parent orders x 25 fills, an order-level shock shared by the order's
fills (sd 4 bps) plus fill noise (sd 4 bps), fill weights independent of the costs: the weighted mean's target
is the planted mean. A 95% interval should cover it 95% of the time; with R = 1000 the Monte Carlo SE of the
coverage is 0.7 points, so the 93-97% band is a ~3 SE check (the order-clustered markout interval averaged
94.95% over 8 seeds of this data). Treating the fills as independent covered 44% here.
"""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import numpy as np
import polars as pl
import pytest

from analytics import tca
from analytics.store import query

pytestmark = pytest.mark.slow
R, ORDERS, FILLS, MU = 1000, 40, 25, 3.0


def clustered_fills(seed: int, reps: int = R, orders: int = ORDERS, fills: int = FILLS) -> pl.DataFrame:
    """Fill rows (venue = the replication) with an order-level shock: markout_cost_bps_60s and arrival_cost_bps."""
    rng = np.random.default_rng(seed)
    n_o = reps * orders
    shock = rng.normal(0, 4.0, n_o)
    oid = np.repeat(np.arange(n_o), fills)
    x = MU + shock[oid] + rng.normal(0, 4.0, n_o * fills)
    x2 = MU + shock[oid] + rng.normal(0, 4.0, n_o * fills)
    return pl.DataFrame({
        "fill_id": np.arange(n_o * fills), "order_id": oid,
        "venue": oid // orders, "q": rng.uniform(100, 1000, n_o * fills),
        "p": rng.uniform(20, 60, n_o * fills), "markout_cost_bps_60s": x, "arrival_cost_bps": x2,
    })  # fmt: skip


def coverage(lo: pl.Series, hi: pl.Series, truth: float = MU) -> float:
    assert lo.len() == R and lo.null_count() == 0
    return float(((lo < truth) & (truth < hi)).mean())


def test_fill_level_interval_without_clusters_undercovers():
    # the independent check of the defect: the old sandwich over single fills
    f = clustered_fills(1)
    ci = f.group_by("venue").agg(tca.weighted_mean_ci(pl.col("markout_cost_bps_60s"), pl.col("q")))
    assert coverage(ci["lo"], ci["hi"]) < 0.6


def test_markout_curve_covers():
    curve = tca.markout_curve(clustered_fills(12), (60.0,), "venue")
    assert 0.93 <= coverage(curve["lo"], curve["hi"]) <= 0.97
    assert (curve["clusters"] == ORDERS).all() and (curve["n"] == ORDERS * FILLS).all()


def _sql(frame: pl.DataFrame, measures: list[str], cluster: str, cube: bool) -> pl.DataFrame:
    con = duckdb.connect()
    con.register("_f", frame.to_arrow())
    src = "SELECT * FROM _f"
    ci = tca._clustered_ci_sql(src, measures, "venue", cluster, cube=cube)
    return query(con, f"SELECT grp, m0 - t0 * se0 AS lo, m0 + t0 * se0 AS hi, g0 FROM ({ci})")


def test_sql_fill_scan_covers():
    f = clustered_fills(3).with_columns(
        pl.col("arrival_cost_bps").alias("x0"), (pl.col("p") * pl.col("q")).alias("w0"), pl.lit(0).alias("day")
    )
    out = _sql(f, ["arrival_cost_bps"], "order", cube=False)
    assert 0.93 <= coverage(out["lo"], out["hi"]) <= 0.97


def test_fill_cube_covers_and_equals_the_scan():
    f = clustered_fills(4)
    orders = (
        f.select("order_id")
        .unique()
        .with_columns(pl.lit("B").alias("broker"), pl.lit("VWAP").alias("algo"), pl.lit("P").alias("portfolio_id"))
    )
    cube = tca.fill_cube(orders, f, dt.date(2026, 3, 2))
    assert cube.height == R * ORDERS  # one row per (order, venue)
    out = _sql(cube, ["arrival_cost_bps"], "order", cube=True)
    assert 0.93 <= coverage(out["lo"], out["hi"]) <= 0.97
    scan = _sql(
        f.with_columns(pl.col("arrival_cost_bps").alias("x0"), (pl.col("p") * pl.col("q")).alias("w0"),
                       pl.lit(dt.date(2026, 3, 2)).alias("day")),
        ["arrival_cost_bps"], "order", cube=False,
    ).with_columns(pl.col("grp").cast(pl.String)).sort("grp")  # fmt: skip
    out = out.sort("grp")
    assert out["lo"].to_list() == pytest.approx(scan["lo"].to_list(), rel=1e-9)


def test_order_level_by_group_covers_with_40_orders():
    rng = np.random.default_rng(5)
    n = R * ORDERS
    o = pl.DataFrame({"broker": (np.arange(n) // ORDERS).astype(str), "arrival_cost_bps": rng.normal(MU, 10, n),
                      "filled_notional": rng.uniform(0.5, 1.5, n) * 1e5, "filled_qty": 1.0})  # fmt: skip
    g = tca.by_group(o, "broker")
    assert 0.93 <= coverage(g["arrival_cost_bps_lo"], g["arrival_cost_bps_hi"]) <= 0.97


def test_day_clusters_when_the_market_moves_all_orders_of_a_day():
    # 30 days x 8 orders, a day shock (sd 6) shared by the day's orders: order-level intervals undercover,
    # day-clustered ones cover
    rng = np.random.default_rng(6)
    days, per = 30, 8
    n = R * days * per
    day_id = np.arange(n) // per
    shock = rng.normal(0, 6.0, R * days)
    t0 = dt.datetime(2026, 1, 1, 15, tzinfo=dt.UTC)
    o = pl.DataFrame({
        "broker": (np.arange(n) // (days * per)).astype(str), "arrival_cost_bps": MU + shock[day_id] + rng.normal(0, 6, n),
        "filled_notional": rng.uniform(0.5, 1.5, n) * 1e5, "filled_qty": 1.0,
        "arrival_ts": [t0 + dt.timedelta(days=int(d % days)) for d in day_id],
    })  # fmt: skip
    by_order = tca.by_group(o, "broker")
    by_day = tca.by_group(o, "broker", cluster="day")
    assert coverage(by_order["arrival_cost_bps_lo"], by_order["arrival_cost_bps_hi"]) < 0.85
    assert 0.93 <= coverage(by_day["arrival_cost_bps_lo"], by_day["arrival_cost_bps_hi"]) <= 0.97


def test_t_quantile_expansion():
    from scipy import stats

    nu = [1, 2, 3, 5, 10, 39, 200]
    got = pl.select(tca.t975(pl.Series(nu))).to_series().to_list()
    assert got == pytest.approx(stats.t.ppf(0.975, nu), rel=1.5e-3)
    assert got[4:] == pytest.approx(stats.t.ppf(0.975, nu[4:]), rel=1e-4)
    assert pl.select(tca.t975(pl.lit(0))).item() is None
    sql = duckdb.connect().execute(f"SELECT {', '.join(tca._t975_sql(str(v)) for v in nu)}").fetchone()
    assert list(sql) == pytest.approx(got, rel=1e-12)


# --- execution quality: the leaderboard's intervals and the difficulty-adjusted comparison ---------------------
def _quality_blocks(f: pl.DataFrame) -> pl.DataFrame:
    """Per (block = the order's index inside its replication, key = the replication) sums, as the lake path."""
    from analytics import quality as q

    f = f.with_columns((pl.col("order_id") % ORDERS).alias("block"), pl.lit(1).alias("s"))
    return q.fill_sums(f, ["block", "venue"]).rename({"venue": "key"})


def test_quality_leaderboard_intervals_cover():
    from analytics import quality as q

    f = clustered_fills(7, fills=5)  # 40 orders x 5 fills: the same clustering, a fifth of the rows
    an = q.bootstrap(_quality_blocks(f), "venue", False, q.QualityConfig(n_boot=50, min_fills=10))
    lb = an.leaderboard
    for m in ("markout_cost_bps_60s", "arrival_cost_bps"):
        assert 0.93 <= coverage(lb[f"{m}_lo"], lb[f"{m}_hi"]) <= 0.97, m


def _adjust_units(rng: np.random.Generator, gap: float = 0.0) -> pl.DataFrame:
    """40 orders, each split into 3 rows at key A and 3 at key B (as an order is split across venues), sharing an
    order shock; cost = 5 + 30 x + gap at B + shock(4) + noise(4), x ~ U(0, 1) a difficulty covariate."""
    n = ORDERS * 6
    block = np.repeat(np.arange(ORDERS), 6)
    key = np.tile(["A", "A", "A", "B", "B", "B"], ORDERS)
    x = rng.uniform(0, 1, n)
    y = 5 + 30 * x + np.where(key == "B", gap, 0.0) + rng.normal(0, 4, ORDERS)[block] + rng.normal(0, 4, n)
    return pl.DataFrame({"key": key, "block": block, "sqrt_size_pct_adv": x, "arrival_cost_bps": y})


def test_adjusted_difference_interval_covers():
    # The regression core of quality.adjust (its design matrix and cluster-robust covariance) on 1000 samples; one
    # full adjust call first, to show it gives the core's figures.
    from analytics import quality as q

    rng = np.random.default_rng(8)
    keys = ["A", "B"]
    u = _adjust_units(rng, gap=2.0)
    adj = q.adjust(u, cfg=q.QualityConfig(min_orders=10))
    z, _ = q._design(u, keys, True)
    beta, v, g = q._ols_cluster(z, u["arrival_cost_bps"].to_numpy(), u["block"].to_numpy(), ORDERS)
    t = float(q._t975(np.array(g - 1)))
    a = adj.table.filter(pl.col("key") == "A").row(0, named=True)
    assert a["adjusted_hi"] == pytest.approx(beta[0] + t * math.sqrt(v[0, 0]), rel=1e-12)
    hit_diff, hit_level = 0, 0
    for _ in range(R):  # ~0.2 ms each
        u = _adjust_units(rng, gap=2.0)
        z, _ = q._design(u, keys, True)
        beta, v, g = q._ols_cluster(z, u["arrival_cost_bps"].to_numpy(), u["block"].to_numpy(), ORDERS)
        t = float(q._t975(np.array(g - 1)))
        se_d = math.sqrt(v[0, 0] + v[1, 1] - 2 * v[0, 1])
        hit_diff += abs(beta[0] - beta[1] + 2.0) < t * se_d  # truth A - B = -2
        truth = 5 + 30 * float(u["sqrt_size_pct_adv"].mean())  # A's cost at the sample's mean mix
        hit_level += abs(beta[0] - truth) < t * math.sqrt(v[0, 0])
    assert 0.93 <= hit_diff / R <= 0.97
    assert 0.93 <= hit_level / R <= 0.97
