"""Execution quality: each metric by hand on tiny fills, the bootstrap and the difficulty adjustment on synthetic
data with a known answer, and the simulator's planted effects (tests/test_planted_effects.py's desk)."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import quality as q
from analytics import tca
from analytics.filters import Filters
from tests.test_planted_effects import desk  # noqa: F401  (module-scoped simulated desk, reused)

T = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)


def _fills(rows: list[dict]) -> pl.DataFrame:
    """Stored fill rows (the columns tca stores); horizons not given are null."""
    cols = {
        "fill_id": pl.String, "order_id": pl.String, "ts": pl.Datetime("us", "UTC"), "venue": pl.String,
        "liquidity": pl.String, "s": pl.Int64, "q": pl.Float64, "p": pl.Float64, "mid": pl.Float64,
        "bid": pl.Float64, "ask": pl.Float64, "bid_size": pl.Float64, "ask_size": pl.Float64,
        "arrival_cost_bps": pl.Float64,
        **{f"mid_{h}": pl.Float64 for h in q.RS}, **{f"markout_cost_bps_{h}": pl.Float64 for h in q.MK},
    }  # fmt: skip
    return pl.DataFrame([{"ts": T, **r} for r in rows], schema=cols)


# NBBO 99.98 x 100.02 (mid 100, quoted spread 0.04 = 4 bps) at every fill.
Q = {"mid": 100.0, "bid": 99.98, "ask": 100.02}
TINY = _fills([
    # F1 buy 100 at the ask: effective 2(100.02-100)/100 = 4 bps, improvement 0 (at the quote),
    #    realized 60s 2(100.02-100.03)/100 = -2 bps
    {"fill_id": "F1", "order_id": "O1", "venue": "A", "liquidity": "REMOVE", "s": 1, "q": 100, "p": 100.02, **Q,
     "mid_60s": 100.03, "markout_cost_bps_60s": -1.0, "arrival_cost_bps": 5.0},
    # F2 sell 200 at the midpoint: effective 0, improvement p - bid = 0.02 = 2 bps, realized 60s 0
    {"fill_id": "F2", "order_id": "O2", "venue": "A", "liquidity": "MIDPOINT", "s": -1, "q": 200, "p": 100.00, **Q,
     "mid_60s": 100.00, "markout_cost_bps_60s": 0.0, "arrival_cost_bps": -1.0},
    # F3 buy 100 in an auction-like print at 100.05, outside the quote: effective 10 bps, improvement
    #    100.02 - 100.05 = -0.03 = -3 bps, realized 60s 2(100.05-100.01)/100 = 8 bps
    {"fill_id": "F3", "order_id": "O3", "venue": "B", "liquidity": "AUCTION", "s": 1, "q": 100, "p": 100.05, **Q,
     "mid_60s": 100.01, "markout_cost_bps_60s": 4.0, "arrival_cost_bps": 10.0},
    # F4 sell 100 at 99.99 (inside the quote): effective 2(-1)(99.99-100)/100 = 2 bps, improvement 0.01 = 1 bp,
    #    realized 60s 2(-1)(99.99-99.97)/100 = -4 bps
    {"fill_id": "F4", "order_id": "O4", "venue": "B", "liquidity": "ADD", "s": -1, "q": 100, "p": 99.99, **Q,
     "mid_60s": 99.97, "markout_cost_bps_60s": -2.0, "arrival_cost_bps": 0.0},
    # F5 buy 50 with no quote: counted in shares and arrival cost, left out of every spread metric
    {"fill_id": "F5", "order_id": "O1", "venue": "A", "liquidity": "ADD", "s": 1, "q": 50, "p": 100.0,
     "arrival_cost_bps": 2.0},
])  # fmt: skip


def test_fill_metrics_by_hand_per_venue():
    m = {r["key"]: r for r in q.fill_metrics(TINY, "venue").to_dicts()}
    a, b = m["A"], m["B"]
    assert (a["fills"], a["shares"], a["orders"]) == (3, 350, 2)
    # A (quoted fills F1 100, F2 200): effective (100*4 + 200*0)/300; E/Q in currency (100*0.04 + 0)/(300*0.04)
    assert a["effective_spread_bps"] == pytest.approx(400 / 300)
    assert a["quoted_spread_bps"] == pytest.approx(4.0)
    assert a["eq_ratio"] == pytest.approx(4 / 12)
    assert a["price_improvement_bps"] == pytest.approx((100 * 0 + 200 * 2) / 300)
    assert a["price_improvement_per_share"] == pytest.approx(200 * 0.02 / 300)
    assert (a["pct_improved"], a["pct_at_quote"], a["pct_outside_quote"]) == pytest.approx((2 / 3, 1 / 3, 0.0))
    assert a["realized_spread_bps_60s"] == pytest.approx((100 * -2 + 200 * 0) / 300)
    assert a["markout_cost_bps_60s"] == pytest.approx((100 * -1.0 + 200 * 0.0 + 50 * 0) / 300)  # F5 has none
    # arrival cost weighted by notional: (10002*5 + 20000*(-1) + 5000*2) / (10002 + 20000 + 5000)
    assert a["arrival_cost_bps"] == pytest.approx(40010 / 35002)
    # B (F3 100, F4 100): effective (10 + 2)/2, E/Q (100*0.10 + 100*0.02)/(200*0.04), improvement (-3 + 1)/2
    assert b["effective_spread_bps"] == pytest.approx(6.0)
    assert b["eq_ratio"] == pytest.approx(1.5)
    assert b["price_improvement_bps"] == pytest.approx(-1.0)
    assert (b["pct_improved"], b["pct_at_quote"], b["pct_outside_quote"]) == pytest.approx((0.5, 0.0, 0.5))
    assert b["realized_spread_bps_60s"] == pytest.approx((8 - 4) / 2)
    assert b["markout_cost_bps_60s"] == pytest.approx((4.0 - 2.0) / 2)
    assert b["realized_spread_bps_1s"] is None and b["markout_cost_bps_1s"] is None  # no data: null, not 0


def test_size_improvement_by_hand():
    """NBBO 99.98 x 100.02 with 300 shown at the ask and 200 at the bid."""
    sz = {**Q, "bid_size": 200.0, "ask_size": 300.0}
    fills = _fills([
        # buy 500 at the ask, 300 shown: at the quote and larger than displayed -> improved (500)
        {"fill_id": "G1", "order_id": "O1", "venue": "A", "s": 1, "q": 500, "p": 100.02, **sz},
        # buy 100 at the ask: within the displayed size -> in the base only (100)
        {"fill_id": "G2", "order_id": "O1", "venue": "A", "s": 1, "q": 100, "p": 100.02, **sz},
        # sell 400 inside the quote at 99.99, 200 shown at the bid -> improved (400)
        {"fill_id": "G3", "order_id": "O2", "venue": "A", "s": -1, "q": 400, "p": 99.99, **sz},
        # buy 1000 outside the quote: no size improvement is possible, left out of the base
        {"fill_id": "G4", "order_id": "O3", "venue": "A", "s": 1, "q": 1000, "p": 100.05, **sz},
        # sell 100 with no displayed size: left out
        {"fill_id": "G5", "order_id": "O4", "venue": "A", "s": -1, "q": 100, "p": 99.98, **Q},
    ])  # fmt: skip
    m = q.fill_metrics(fills).row(0, named=True)
    assert m["pct_size_improved"] == pytest.approx((500 + 400) / (500 + 100 + 400))
    assert q.fill_metrics(TINY).row(0, named=True)["pct_size_improved"] is None  # no sizes at all: null, not 0


def test_fill_metrics_overall_is_a_ratio_of_sums_not_a_mean_of_venues():
    a = q.fill_metrics(TINY).row(0, named=True)
    # effective (400 + 0 + 1000 + 200)/500 = 3.2; E/Q (4 + 0 + 10 + 2)/(500 * 0.04) = 0.8 (the mean of the venues'
    # E/Q would be (1/3 + 1.5)/2 = 0.917)
    assert a["effective_spread_bps"] == pytest.approx(3.2)
    assert a["eq_ratio"] == pytest.approx(0.8)
    assert a["price_improvement_bps"] == pytest.approx((0 + 400 - 300 + 100) / 500)
    assert (a["pct_improved"], a["pct_at_quote"], a["pct_outside_quote"]) == pytest.approx((0.6, 0.2, 0.2))


def test_rows_stored_without_a_horizon_give_null_for_it_only():
    """TCA rows stored by an older code version lack mid_50ms: that realized spread is null, the rest unchanged."""
    old = q.fill_metrics(TINY.drop("mid_50ms", "markout_cost_bps_60s"), "venue").row(0, named=True)
    assert old["realized_spread_bps_50ms"] is None and old["markout_cost_bps_60s"] is None
    assert old["realized_spread_bps_60s"] == pytest.approx(-200 / 300)


def test_order_metrics_by_hand():
    orders = pl.DataFrame({
        "broker": ["X", "X", "X", "Y"], "order_qty": [1000, 1000, 500, 200], "filled_qty": [1000.0, 500.0, 0.0, 200.0],
        "end_action": ["DONE", "CANCEL", "CANCEL", "DONE"], "time_to_first_fill_s": [2.0, 6.0, None, 1.0],
        "duration_s": [100.0, 300.0, 50.0, 10.0], "arrival_cost_bps": [10.0, 20.0, None, -5.0],
        "filled_notional": [100_000.0, 50_000.0, 0.0, 2_000.0],
    })  # fmt: skip
    x = q.order_metrics(orders, "broker").row(0, named=True)
    assert x["fill_rate_qty"] == pytest.approx(1500 / 2500)
    assert x["fill_rate_orders"] == pytest.approx(1 / 3)  # only O1 completely filled
    assert x["cancel_rate"] == pytest.approx(2 / 3)
    assert x["avg_time_to_first_fill_s"] == pytest.approx((2 + 6) / 2)  # the unfilled order has no first fill
    assert x["avg_time_to_completion_s"] == pytest.approx(100.0)
    assert x["arrival_cost_bps"] == pytest.approx((10 * 100_000 + 20 * 50_000) / 150_000)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([1, -1]), st.integers(1, 1000), st.integers(-8, 8), st.integers(1, 6), st.integers(-9, 9)),
        min_size=1, max_size=25,
    )
)  # fmt: skip
def test_identities(rows):
    """improved + at + outside = 1; effective - realized(h) = 2 s (m_h - m)/m (price impact); and a sell mirrored
    around the mid (p -> 2m - p) has the buy's effective spread and improvement."""
    recs = []
    for i, (s, qty, off, half, move) in enumerate(rows):
        mid = 50.0
        recs.append({"fill_id": f"F{i}", "order_id": f"O{i}", "venue": "A", "s": s, "q": float(qty),
                     "p": mid + off / 100, "mid": mid, "bid": mid - half / 100, "ask": mid + half / 100,
                     "mid_60s": mid + move / 100})  # fmt: skip
    df = _fills(recs)
    m = q.fill_metrics(df).row(0, named=True)
    assert m["pct_improved"] + m["pct_at_quote"] + m["pct_outside_quote"] == pytest.approx(1.0)
    impact = (df["q"] * 2 * df["s"] * (df["mid_60s"] - df["mid"]) / df["mid"] * 1e4).sum() / df["q"].sum()
    assert m["effective_spread_bps"] - m["realized_spread_bps_60s"] == pytest.approx(impact, abs=1e-9)
    mirrored = q.fill_metrics(df.with_columns(-pl.col("s"), (2 * pl.col("mid") - pl.col("p")).alias("p"))).row(
        0, named=True
    )
    assert mirrored["effective_spread_bps"] == pytest.approx(m["effective_spread_bps"], abs=1e-9)
    assert mirrored["price_improvement_bps"] == pytest.approx(m["price_improvement_bps"], abs=1e-9)


# --- the bootstrap on synthetic data with a known answer ------------------------------------------
def _clustered_fills(n_orders: int, mus: dict[str, float], sigma: float, fills_per_order: int, seed: int):
    """Each order's fills share one markout drawn N(mu_key, sigma): the fills of an order are perfectly
    correlated, so the standard error of a key's mean is sigma / sqrt(orders), not / sqrt(fills)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, mu in mus.items():
        x = rng.normal(mu, sigma, n_orders)
        rows.append(pl.DataFrame({"order_id": [f"{k}{i}" for i in range(n_orders)], "venue": k, "x": x}))
    o = pl.concat(rows)
    f = o.join(pl.DataFrame({"j": range(fills_per_order)}), how="cross")
    return f.select(
        "order_id", "venue", pl.lit(1).alias("s"), pl.lit(100.0).alias("q"), pl.lit(10.0).alias("p"),
        pl.lit(10.0).alias("mid"), pl.lit(9.99).alias("bid"), pl.lit(10.01).alias("ask"),
        pl.col("x").alias("markout_cost_bps_60s"), pl.lit(0.0).alias("arrival_cost_bps"),
    )  # fmt: skip


def _analysis(fills: pl.DataFrame, cfg: q.QualityConfig) -> q.Analysis:
    fills = fills.join(
        q.with_blocks(fills.select("order_id").unique().with_columns(pl.lit(T).alias("arrival_ts")), cfg).select(
            "order_id", "block"
        ),
        on="order_id",
    )
    fills = pl.concat([_fills([]), fills], how="diagonal_relaxed")  # the stored columns, null where not given
    sums = q.fill_sums(fills, ["block", "venue"]).rename({"venue": "key"})
    return q.bootstrap(sums, "venue", order_level=False, cfg=cfg)


def test_cluster_bootstrap_interval_has_the_cluster_width():
    cfg = q.QualityConfig(n_boot=800, max_blocks=400, seed=3, min_orders=30, min_fills=10)
    an = _analysis(_clustered_fills(1000, {"A": 0.0, "B": 0.0}, 4.0, 10, seed=1), cfg)
    a = an.leaderboard.filter(pl.col("key") == "A").row(0, named=True)
    # known answer: half-width 1.96 * 4 / sqrt(1000) = 0.248 (fill-level i.i.d. would say 0.078)
    width = (a["markout_cost_bps_60s_hi"] - a["markout_cost_bps_60s_lo"]) / 2
    assert width == pytest.approx(1.96 * 4 / math.sqrt(1000), rel=0.2)
    assert a["markout_cost_bps_60s_lo"] < 0 < a["markout_cost_bps_60s_hi"]


def test_bootstrap_comparisons_find_a_real_difference_and_not_a_null_one():
    cfg = q.QualityConfig(n_boot=600, max_blocks=300, seed=4, min_orders=30, min_fills=10)
    an = _analysis(_clustered_fills(600, {"A": 0.0, "B": 0.0, "C": 1.5}, 4.0, 5, seed=2), cfg)
    pairs = q.compare_keys(an, "markout_cost_bps_60s")
    sig = {(r["key_a"], r["key_b"]): r["significant"] for r in pairs.to_dicts()}
    assert sig[("A", "B")] is False  # equal keys: not declared different after Holm
    assert sig[("A", "C")] and sig[("B", "C")]  # 1.5 bps with SE 4*sqrt(2/600) = 0.23: found
    ac = pairs.filter((pl.col("key_a") == "A") & (pl.col("key_b") == "C")).row(0, named=True)
    assert ac["diff_lo"] < -1.5 < ac["diff_hi"] or abs(ac["diff"] + 1.5) < 3 * ac["se"]
    assert (pairs["p_holm"] >= pairs["p_value"]).all()


def test_small_samples_are_flagged_and_left_out_of_comparisons():
    cfg = q.QualityConfig(n_boot=200, max_blocks=200, seed=5, min_orders=30, min_fills=10)
    f = pl.concat([_clustered_fills(200, {"A": 0.0}, 2.0, 3, 1), _clustered_fills(10, {"Z": 9.0}, 2.0, 3, 2)])
    an = _analysis(f, cfg)
    z = an.leaderboard.filter(pl.col("key") == "Z").row(0, named=True)
    assert z["small_sample"] and z["rank"] is None
    assert q.compare_keys(an, "markout_cost_bps_60s").is_empty()  # one key left: nothing to compare


# --- the difficulty adjustment on synthetic data with a known answer -------------------------------
def _units(seed: int = 0) -> pl.DataFrame:
    """Cost = 2 + 100 sqrt(size % ADV) + 3 bps for broker C + noise(5). Broker B gets the big (hard) orders and
    is no worse; broker C is 3 bps worse on any order."""
    rng = np.random.default_rng(seed)
    n = 1500
    key = np.repeat(["A", "B", "C"], n)
    size = np.where(key == "B", rng.uniform(0.02, 0.10, 3 * n), rng.uniform(0.001, 0.03, 3 * n))
    cost = 2 + 100 * np.sqrt(size) + np.where(key == "C", 3.0, 0.0) + rng.normal(0, 5, 3 * n)
    return pl.DataFrame({"key": key, "block": np.arange(3 * n), "sqrt_size_pct_adv": np.sqrt(size),
                         "arrival_cost_bps": cost})  # fmt: skip


def test_adjustment_does_not_punish_the_broker_with_hard_orders():
    adj = q.adjust(_units(), cfg=q.QualityConfig(n_boot=500, seed=1), dimension="broker")
    t = {r["key"]: r for r in adj.table.to_dicts()}
    pairs = {(r["mode"], r["key_a"], r["key_b"]): r for r in adj.pairs.to_dicts()}
    raw_ab, adj_ab = pairs[("raw", "A", "B")], pairs[("adjusted", "A", "B")]
    assert raw_ab["significant"] and raw_ab["diff"] < -5  # raw: B looks far worse (its orders are bigger)
    assert not adj_ab["significant"] and adj_ab["diff_lo"] < 0 < adj_ab["diff_hi"]  # adjusted: no difference
    assert t["B"]["raw_rank"] == 3 and t["B"]["adjusted_rank"] < 3
    # C's true 3 bps penalty is recovered inside its interval, and is significant
    adj_ac = pairs[("adjusted", "A", "C")]
    assert adj_ac["diff_lo"] < -3 < adj_ac["diff_hi"] and adj_ac["significant"]
    assert t["C"]["adjusted_rank"] == 3
    coef = adj.coefficients.filter(pl.col("covariate") == "sqrt_size_pct_adv").row(0, named=True)
    assert abs(coef["coef"] - 100) < 3 * coef["se"]  # the planted law's slope


def test_recommendations_only_for_significant_differences():
    adj = q.adjust(_units(), cfg=q.QualityConfig(n_boot=500, seed=1), dimension="broker")
    rec = q.recommendations(adj)
    assert rec["instead_of"].to_list() == ["C"]  # B is not worse once adjusted, so no advice about it
    r = rec.row(0, named=True)
    assert r["saving_lo"] < 3 < r["saving_hi"] and "C" in r["text"]


def test_change_detection_flags_a_jump_not_noise():
    scores = [50, 52, 49, 51, 50, 75, 51, 50]
    t = pl.DataFrame({"key": "A", "period_start": [dt.date(2026, 1, 5) + dt.timedelta(weeks=i) for i in range(8)],
                      "score": [float(s) for s in scores], "small_sample": False})  # fmt: skip
    out = q.detect_changes(t)
    assert out["changed"].to_list() == [False] * 5 + [True, False, False]
    assert out["change"][5] == pytest.approx(75 - (52 + 49 + 51 + 50) / 4)


def test_score_is_50_at_the_desk_average_and_monotone():
    avg = {"arrival_cost_bps": np.array(10.0), "eq_ratio": np.array(0.5)}
    assert q.score_arrays(avg, avg) == pytest.approx(50.0)
    better = q.score_arrays({"arrival_cost_bps": np.array(5.0), "eq_ratio": np.array(0.5)}, avg)
    # cost 5 bps below the desk = one scale (5 bps): 100 * Phi(1) = 84.13 on a 0.30 weight, 50 on 0.15
    assert better == pytest.approx((0.30 * 84.1344746 + 0.15 * 50) / 0.45, abs=1e-4)


def test_order_types_and_notional_buckets():
    o = pl.DataFrame({
        "side": ["BUY", "BUY", "BUY", "SELL", "BUY", "SELL"], "limit_price": [None, 100.05, 100.01, 100.02, 99.95, 110.0],
        "arrival_price": [100.0] * 6, "spread_at_arrival_bps": [4.0] * 6, "order_qty": [1, 5, 60, 2000, 100, 5000],
        "arrival_ts": [T] * 6,
    })  # fmt: skip
    t = q.order_types(o)
    # NBBO 99.98 x 100.02: no limit; buy >= ask; inside; sell at the ask; buy 0.03 below the bid; sell far above
    assert t["order_type"].to_list() == ["market", "marketable limit", "inside-the-quote limit", "at-the-quote limit",
                                         "near-the-quote limit", "other limit"]  # fmt: skip
    # notional qty x 100: 100, 500, 6000, 200000, 10000, 500000
    assert t["size_bucket"].to_list() == ["<$250", "$250-1K", "$5K-20K", ">=$200K", "$5K-20K", ">=$200K"]


def test_dimensions_are_whitelisted():
    assert q.parse_dims("broker+algo") == ("broker", "algo")
    with pytest.raises(ValueError):
        q.parse_dims("venue; DROP TABLE fills")


# --- the simulator's planted effects ----------------------------------------------------------------
@pytest.fixture(scope="module")
def sim(desk):  # noqa: F811
    orders, _, lake = desk
    con = lake.connect()
    return lake, con, orders


@pytest.mark.slow
def test_adverse_selection_venue_has_the_worst_markouts_with_ci_excluding_zero(sim):
    lake, con, orders = sim
    an = q.analyse(lake, con, Filters(), "venue", orders=orders)
    lb = an.leaderboard
    drkb = lb.filter(pl.col("key") == "DRKB").row(0, named=True)
    others = lb.filter(pl.col("key") != "DRKB")
    assert drkb["markout_cost_bps_60s_lo"] > 0
    assert drkb["markout_cost_bps_60s_lo"] > others["markout_cost_bps_60s_hi"].max()
    routing = q.recommendations(q.Adjusted(pl.DataFrame(), pl.DataFrame(), pl.DataFrame(), pl.DataFrame()),
                                q.venue_routing_pairs(an))  # fmt: skip
    assert "DRKB" in routing.filter(pl.col("kind") == "routing")["instead_of"].to_list()


@pytest.mark.slow
def test_costlier_algo_ranks_worse_after_adjustment_and_equal_pair_is_not_different(sim):
    lake, con, orders = sim
    adj = q.adjust(q.adjustment_units(lake, con, Filters(), "algo", orders), dimension="algo")
    t = {r["key"]: r for r in adj.table.to_dicts()}
    assert t["LIQSEEK"]["adjusted_rank"] == len(t)  # worst of the five
    p = {(r["mode"], r["key_a"], r["key_b"]): r for r in adj.pairs.to_dicts()}
    assert p[("adjusted", "LIQSEEK", "VWAP")]["significant"] and p[("adjusted", "LIQSEEK", "VWAP")]["diff"] > 0
    vp = p.get(("adjusted", "POV", "VWAP")) or p[("adjusted", "VWAP", "POV")]
    assert not vp["significant"] and vp["diff_lo"] < 0 < vp["diff_hi"]
    rec = q.recommendations(adj)
    assert "LIQSEEK" in rec["instead_of"].to_list()
    assert not rec.filter(pl.col("instead_of").is_in(["VWAP", "POV"]) & pl.col("prefer").is_in(["VWAP", "POV"])).height


@pytest.mark.slow
def test_slow_broker_has_the_lowest_fill_rate_and_slowest_first_fill(sim):
    lake, con, orders = sim
    an = q.analyse(lake, con, Filters(), "broker", orders=orders)
    lb = an.leaderboard
    assert lb.sort("fill_rate_qty")["key"][0] == "Crescent"
    assert lb.sort("avg_time_to_first_fill_s", descending=True)["key"][0] == "Crescent"
    c = lb.filter(pl.col("key") == "Crescent").row(0, named=True)
    assert c["fill_rate_qty_hi"] < lb.filter(pl.col("key") != "Crescent")["fill_rate_qty_lo"].min()
    pairs = q.compare_keys(an, "fill_rate_qty")
    crescent = pairs.filter((pl.col("key_a") == "Crescent") | (pl.col("key_b") == "Crescent"))
    assert crescent["significant"].all() and crescent.height == 4
    assert lb.sort("score")["key"][0] == "Crescent"


@pytest.mark.slow
def test_report_rows_have_the_event_columns_and_add_up(sim, desk):  # noqa: F811
    lake, con, orders = sim
    fills = desk[1]
    rows = q.report(lake, con, Filters(), "venue")
    assert rows.columns == [*q.EVENT_COLUMNS, "event_id", "ts", "source_version", "code_version"]
    assert rows["fills"].sum() == fills.height
    assert rows["shares"].sum() == pytest.approx(fills["q"].sum())
    assert rows["event_id"].n_unique() == rows.height and rows["source_version"][0] == f"lake@{lake.version()}"
    assert rows.filter(pl.col("key") == "DRKB")["fill_rate_qty"][0] is None  # not a venue's metric
    assert set(rows["nbbo_at"]) == {"receipt"}  # the simulator sends received_ts on every fill
    big = rows.filter(pl.col("orders") >= 30)
    for m in ("arrival_cost_bps", "markout_cost_bps_60s", "adjusted_cost_bps"):
        assert (big[f"{m}_lo"] < big[m]).all() and (big[m] < big[f"{m}_hi"]).all(), m
    again = q.report(lake, con, Filters(), "venue")
    assert again.equals(rows)  # same lake version, same rows (seeded bootstrap, snapshot ts)
    weekly = q.report(lake, con, Filters(), "algo", period="week")
    assert weekly["orders"].sum() == orders.height


@pytest.mark.slow
def test_rule605_totals_match_the_orders_and_fills(sim, desk):  # noqa: F811
    lake, con, orders = sim
    fills = desk[1]
    r = q.rule605(lake, con, Filters(), orders=orders)
    assert r["orders"].sum() == orders.height
    assert r["executed_shares"].sum() == pytest.approx(fills["q"].sum())
    assert r["shares"].sum() == pytest.approx(orders["order_qty"].sum())
    assert set(r["order_type"]) <= {"market", "marketable limit", "inside-the-quote limit", "at-the-quote limit",
                                    "near-the-quote limit", "other limit"}  # fmt: skip
    assert (
        r["price_improved_shares"] + r["at_quote_shares"] + r["outside_quote_shares"] <= r["executed_shares"] + 1e-6
    ).all()


@pytest.mark.slow
def test_cli_writes_events_and_the_605_csv(desk, run_cli, tmp_path):  # noqa: F811
    lake = desk[2]
    out, r605 = tmp_path / "q.jsonl", tmp_path / "r605.csv"
    res = run_cli("quality", "--lake", str(lake.root), "--by", "broker", "--out", str(out), "--rule605", str(r605))
    assert res.returncode == 0, res.stderr
    rows = pl.read_ndjson(out)
    assert set(rows["key"]) == {"Alder", "Birchwood", "Crescent", "Dovetail", "Eastgate"}
    first = json.loads(out.read_text().splitlines()[0])
    assert list(first)[: len(q.EVENT_COLUMNS)] == q.EVENT_COLUMNS
    assert pl.read_csv(r605)["orders"].sum() == desk[0].height
    js = run_cli("quality", "--lake", str(lake.root), "--by", "broker", "--json")
    row = json.loads(js.stdout)[0]  # quality --json rows carry the intervals, the adjusted cost and nbbo_at
    for c in ("arrival_cost_bps", "markout_cost_bps_60s", "adjusted_cost_bps"):
        assert row[f"{c}_lo"] < row[c] < row[f"{c}_hi"], c
    assert row["nbbo_at"] == "receipt"
    bad = run_cli("quality", "--lake", str(lake.root), "--by", "nope")
    assert bad.returncode == 2 and "unknown dimension" in bad.stderr


@pytest.mark.slow
def test_stored_sums_give_the_same_figures_as_one_pass_over_the_fills(sim, desk):  # noqa: F811
    """The lake path sums per-(order, venue) day sums; one pass of the same formulas over every fill agrees."""
    lake, con, orders = sim
    fills = desk[1]
    lb = q.analyse(lake, con, Filters(), "venue", orders=orders).leaderboard.sort("key")
    mem = q.fill_metrics(fills, "venue").sort("key")
    for c in ("effective_spread_bps", "eq_ratio", "price_improvement_bps", "pct_improved", "realized_spread_bps_50ms",
              "markout_cost_bps_60s", "arrival_cost_bps"):  # fmt: skip
        assert lb[c].to_list() == pytest.approx(mem[c].to_list(), rel=1e-9)
    assert lb["orders"].to_list() == mem["orders"].to_list()
    an = q.analyse(lake, con, Filters(), "venue", orders=orders)
    curve = q.markout_curve(an).sort("venue", "horizon_s")
    tca_curve = tca.markouts_sql(lake, con, Filters(), by_venue=True).sort("venue", "horizon_s")  # TCA's SQL
    assert curve["markout_bps"].to_list() == pytest.approx(tca_curve["markout_bps"].to_list(), rel=1e-9)


@pytest.mark.slow
def test_venue_filter_counts_each_order_once(sim, desk):  # noqa: F811
    lake, con, orders = sim
    fills = desk[1].filter(pl.col("venue") == "DRKB")
    lb = q.analyse(lake, con, Filters(venue=("DRKB",)), "broker", orders=orders).leaderboard
    exp = (
        fills.join(orders.select("order_id", "broker"), on="order_id")
        .group_by("broker")
        .agg(pl.col("order_id").n_unique().alias("with_fills"), pl.len().alias("fills"))
    )
    got = lb.select("key", "fills").join(exp, left_on="key", right_on="broker")
    assert got.height == 5 and (got["fills"] == got["fills_right"]).all()


def _typed(side: str, bid: float, ask: float, limit: float) -> str:
    """Order type of one order as the stored TCA row holds it: arrival mid, spread in bps (both rebuilt by float
    arithmetic from the quote) and the quote itself."""
    mid = (bid + ask) / 2
    o = pl.DataFrame({"side": [side], "limit_price": [limit], "arrival_price": [mid], "order_qty": [100],
                      "spread_at_arrival_bps": [(ask - bid) / mid * 1e4], "arrival_bid": [bid], "arrival_ask": [ask],
                      "arrival_ts": [T]})  # fmt: skip
    return q.order_types(o)["order_type"][0]


def test_order_types_on_penny_quotes_use_the_stored_quote():
    # Independent check: the classes by hand on the quotes of the issue (a rebuilt bid/ask compared with ==
    # called 100.01 x 100.03 buy limit 100.01 "near the quote")
    assert _typed("BUY", 100.01, 100.03, 100.01) == "at-the-quote limit"
    assert _typed("BUY", 33.33, 33.35, 33.35) == "marketable limit"
    assert _typed("SELL", 33.33, 33.35, 33.33) == "marketable limit"
    assert _typed("SELL", 33.33, 33.35, 33.35) == "at-the-quote limit"
    assert _typed("BUY", 33.33, 33.35, 33.34) == "inside-the-quote limit"
    assert _typed("BUY", 33.33, 33.35, 33.32) == "near-the-quote limit"  # a cent below the bid
    assert _typed("BUY", 33.33, 33.35, 33.23) == "near-the-quote limit"  # $0.10 below: still near
    assert _typed("BUY", 33.33, 33.35, 33.22) == "other limit"


def test_order_types_on_a_grid_of_penny_quotes():
    # Every penny quote from $1 to $200 (2 and 3 cent spreads), limits exactly at the touch and at the same-side
    # quote: all must classify as marketable / at the quote (float equality on the rebuilt quote missed ~6% / 27%).
    rng = np.random.default_rng(5)
    cents = rng.integers(100, 20_000, 2000)
    bid = cents / 100
    ask = (cents + rng.integers(2, 4, 2000)) / 100
    mid = (bid + ask) / 2
    o = pl.DataFrame({"side": ["BUY"] * 2000, "arrival_price": mid, "spread_at_arrival_bps": (ask - bid) / mid * 1e4,
                      "arrival_bid": bid, "arrival_ask": ask, "order_qty": 100, "arrival_ts": T})  # fmt: skip
    touch = q.order_types(o.with_columns(pl.col("arrival_ask").alias("limit_price")))
    same = q.order_types(o.with_columns(pl.col("arrival_bid").alias("limit_price")))
    assert (touch["order_type"] == "marketable limit").all()
    assert (same["order_type"] == "at-the-quote limit").all()
    # rows stored before the quote was (no arrival_bid/ask): the rebuilt quote, with the same tick tolerance
    old = q.order_types(o.drop("arrival_bid", "arrival_ask").with_columns(pl.lit(None, pl.Float64).alias("x"))
                        .with_columns(pl.Series("limit_price", bid)))  # fmt: skip
    assert (old["order_type"] == "at-the-quote limit").all()


def _same_orders_two_paces(seed: int = 0, n: int = 300) -> pl.DataFrame:
    """The bad-control case: the same n orders worked by broker FAST at 20% of volume and by broker SLOW at 5%
    (same algo and urgency: the pace is the broker's choice), cost = 0.8 σ √POV (square-root law, bps) + a size
    term + noise(5). True gap FAST - SLOW = 0.8 x 200 x (√0.20 - √0.05) = 35.78 bps at σ = 2%."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(0.001, 0.05, n)
    spread = rng.uniform(2, 10, n)
    day = np.arange(n) % 20
    frames = []
    for broker, pov in (("FAST", 0.20), ("SLOW", 0.05)):
        realised = pov * np.exp(rng.normal(0, 0.1, n))
        cost = 0.8 * 0.02 * np.sqrt(realised) * 1e4 + 300 * np.sqrt(size) + rng.normal(0, 5, n)
        frames.append(pl.DataFrame({
            "order_id": [f"{broker}-{i}" for i in range(n)], "broker": broker, "algo": "POV", "urgency": "MEDIUM",
            "arrival_ts": [dt.datetime(2026, 3, 2, 15, tzinfo=dt.UTC) + dt.timedelta(days=int(d)) for d in day],
            "size_pct_adv": size, "daily_volatility": 0.02, "spread_at_arrival_bps": spread,
            "participation_rate": realised, "scheduled_participation": realised, "arrival_cost_bps": cost,
            "filled_qty": 100.0, "order_qty": 100.0, "filled_notional": 1e4,
        }))  # fmt: skip
    return pl.concat(frames)


def test_adjustment_never_controls_for_how_the_order_was_worked():
    # Independent check: the planted gap 35.78 bps (see _same_orders_two_paces). Controlling for the realised
    # participation (the broker's own choice) explained the gap away (-1 bps, p 0.65, no recommendation).
    orders = _same_orders_two_paces()
    units = q.adjustment_units(None, None, Filters(), "broker", orders)
    assert "sqrt_participation" not in units.columns and "sigma_sqrt_pov_bps" not in units.columns
    adj = q.adjust(units, cfg=q.QualityConfig(), dimension="broker")
    p = adj.pairs.filter(pl.col("mode") == "adjusted").row(0, named=True)
    assert (p["key_a"], p["key_b"]) == ("FAST", "SLOW")
    assert p["significant"] and p["diff_lo"] < 35.78 < p["diff_hi"]
    assert abs(p["diff"] - 35.78) < 3
    rec = q.recommendations(adj)
    assert rec.filter(pl.col("kind") == "choice")["prefer"].to_list() == ["SLOW"]
    assert not any(c.startswith(("sqrt_participation", "sigma_sqrt_pov")) for c in adj.coefficients["covariate"])


def test_a_control_set_by_the_key_is_left_out():
    # the planned participation is a function of (algo, urgency): a control when comparing brokers, never when
    # comparing algos or urgencies (it would absorb the algo's own pace); urgency is no control for urgencies
    o = _same_orders_two_paces(n=60).with_columns(
        pl.when(pl.col("broker") == "FAST").then(pl.lit("POV")).otherwise(pl.lit("TWAP")).alias("algo"),
        pl.when(pl.col("order_id").str.ends_with("1")).then(pl.lit("HIGH")).otherwise(pl.lit("LOW")).alias("urgency"),
    )  # fmt: skip
    covs = {
        d: q.adjust(q.adjustment_units(None, None, Filters(), d, o), dimension=d).coefficients["covariate"].to_list()
        for d in ("broker", "algo", "urgency")
    }
    assert "sigma_sqrt_planned_pov_bps" in covs["broker"] and "urgency=LOW" in covs["broker"]
    assert not any("planned" in c for c in covs["algo"]) and "urgency=LOW" in covs["algo"]
    assert not any("planned" in c or c.startswith("urgency") for c in covs["urgency"])


def test_rule605_figures_use_the_nbbo_at_receipt(tmp_path):
    # Hand calculation. NBBO 99.98 x 100.02 until 14:31:00.000, then 100.08 x 100.12. F1 (XNAS) buys 100 at
    # 100.12 at 14:31:00.050, its child order received at 14:30:59.990 (before the quote moved): against the NBBO
    # at receipt (mid 100) the fill paid 10 bps outside the quote (the routing latency's cost), effective spread
    # 2 x 0.12 / 100 = 24 bps, quoted 4 bps; against the NBBO at the fill it would be "at the quote" with 4.0 bps.
    # F2 (BATS) has no received_ts: measured at its own time. Fills and orders go through ingest and TCA.
    from tests.test_tca import fill, order, quote, run_tca

    d = "2026-03-02T14:"
    f1 = fill("F1", "O1", f"{d}31:00.050Z", "XYZ", "BUY", 100, 100.12) | {"received_ts": f"{d}30:59.990Z"}
    f2 = fill("F2", "O1", f"{d}32:00Z", "XYZ", "BUY", 100, 100.10, venue="BATS")
    ev = [quote("XYZ", f"{d}30:00Z", 99.98, 100.02), quote("XYZ", f"{d}31:00Z", 100.08, 100.12),
          order("O1", f"{d}30:30Z", "XYZ", "BUY", 200), f1, f2]  # fmt: skip
    res = run_tca(tmp_path, ev)
    r1 = res.fills.filter(pl.col("fill_id") == "F1").row(0, named=True)
    assert (r1["bid_r"], r1["ask_r"], r1["mid_r"]) == (99.98, 100.02, 100.0) and r1["ask"] == 100.12
    m = {r["key"]: r for r in q.fill_metrics(res.fills, by="venue").to_dicts()}
    assert m["XNAS"]["price_improvement_bps"] == pytest.approx(-10.0)
    assert m["XNAS"]["pct_outside_quote"] == 1.0 and m["XNAS"]["pct_at_quote"] == 0.0
    assert m["XNAS"]["effective_spread_bps"] == pytest.approx(24.0)
    assert m["XNAS"]["quoted_spread_bps"] == pytest.approx(4.0)
    assert m["XNAS"]["nbbo_at"] == "receipt" and m["BATS"]["nbbo_at"] == "fill"
    # BATS at its fill: NBBO 100.08 x 100.12, mid 100.10, p 100.10: effective 0, improvement 2 bps
    assert m["BATS"]["effective_spread_bps"] == pytest.approx(0.0, abs=1e-9)
    assert m["BATS"]["price_improvement_bps"] == pytest.approx(0.02 / 100.10 * 1e4)
    assert q.fill_metrics(res.fills)["nbbo_at"][0] == "mixed"


def _null_units(rng: np.random.Generator, keys: int = 5, n: int = 40) -> pl.DataFrame:
    """keys x n orders, the same cost law for every key (the null): cost = 5 + 60 sqrt(size) + noise(8)."""
    size = rng.uniform(0.001, 0.05, keys * n)
    return pl.DataFrame({"key": np.repeat([f"K{i}" for i in range(keys)], n), "block": np.arange(keys * n),
                         "sqrt_size_pct_adv": np.sqrt(size),
                         "arrival_cost_bps": 5 + 60 * np.sqrt(size) + rng.normal(0, 8, keys * n)})  # fmt: skip


@pytest.mark.slow
def test_recommendations_family_wise_error_under_the_null():
    # 5 equal keys: a run errs when it recommends anything. Every pair is Holm-adjusted before the best key's
    # pairs are kept, so the rate is <= 5% by construction. 500 runs: Monte Carlo SE 1 point at 5%; the bound
    # allows 2 SE.
    rng = np.random.default_rng(11)
    runs, cfg = 500, q.QualityConfig(min_orders=30)
    errs = sum(not q.recommendations(q.adjust(_null_units(rng), cfg=cfg, dimension="broker")).is_empty()
               for _ in range(runs))  # fmt: skip
    assert errs / runs <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / runs)


@pytest.mark.slow
def test_routing_recommendations_family_wise_error_under_the_null():
    # 5 venues with equal markouts (40 orders x 5 fills each, an order shock): any routing note is an error.
    # 400 runs share one pass: run r's venues are keys "r/V0".."r/V4" with its orders in blocks 0..199 (a key's
    # interval only uses the blocks where it has data), then each run is compared on its own five keys.
    runs = 400
    f = pl.concat([
        _clustered_fills(40, {f"{r}/V{i}": 0.0 for i in range(5)}, 4.0, 5, seed=1000 + r).with_columns(
            (pl.int_range(pl.len()) // 5).alias("block")
        )
        for r in range(runs)
    ])  # fmt: skip
    sums = q.fill_sums(pl.concat([_fills([]), f], how="diagonal_relaxed"), ["block", "venue"]).rename({"venue": "key"})
    big = q.bootstrap(sums, "venue", False, q.QualityConfig(n_boot=10, min_orders=30, min_fills=10))
    keys = list(big.reps["_keys"])
    errs = 0
    for r in range(runs):
        mine = [k for k in keys if k.startswith(f"{r}/")]
        idx = [keys.index(k) for k in mine]
        sub = q.Analysis("venue", mine, big.leaderboard.filter(pl.col("key").is_in(mine)), pl.DataFrame(),
                         {"_keys": np.array(mine, dtype=object)}, infl={m: u[:, idx] for m, u in big.infl.items()})  # fmt: skip
        errs += not q.recommendations(q.Adjusted(*[pl.DataFrame()] * 4), q.venue_routing_pairs(sub)).is_empty()
    assert errs / runs <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / runs)  # Monte Carlo SE 1.1 points
