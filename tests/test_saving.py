"""Tests of analytics/saving.py: the expected-cost candidates, the recommendation, the intervals and the walk-forward
measurement over the session's small simulated desk (hand-computed values in the comments)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from analytics import saving
from tests.test_replay import sim_config

Z = 1.959963984540054


def test_candidates_price_the_planted_law_by_hand():
    # Q = 10,000 shares, ADV = 1,000,000, sigma = 2%/day (200 bps), the window trades 10% of a day's volume:
    # permanent = 0.25 * 200 * sqrt(0.01) = 5 bps, half of it paid on average = 2.5 bps
    # horizon 1: POV = 10,000 / (100,000 + 10,000) = 1/11, ATHL rate = 10,000 / 100,000 = 0.1 = POV / (1 - POV),
    #            temporary = 0.15 * 200 * sqrt(0.1) = 9.4868 bps
    # horizon 2: rate = 10,000 / 200,000 = 0.05, temporary = 30 * sqrt(0.05) = 6.7082 bps
    # LIQSEEK x1.6: 15.1789 bps at horizon 1; timing risk = 200 * sqrt(0.1 * h / 3) = 36.515 bps at h = 1
    orders = pl.DataFrame({"order_id": ["A"], "order_qty": [10_000.0], "adv": [1e6], "daily_volatility": [0.02],
                           "share": [0.1]})  # fmt: skip
    cfg = saving.SavingConfig(algos=("VWAP", "LIQSEEK"), horizons=(1.0, 2.0), risk_aversion=0.1)
    c = saving.candidates(orders, saving.planted_fit(), cfg).sort("algo", "horizon")
    got = {(a, h): v for a, h, v in c.select("algo", "horizon", "expected_cost_bps").rows()}
    assert got[("VWAP", 1.0)] == pytest.approx(2.5 + 30 * math.sqrt(0.1), rel=1e-9)
    assert got[("VWAP", 2.0)] == pytest.approx(2.5 + 30 * math.sqrt(0.05), rel=1e-9)
    assert got[("LIQSEEK", 1.0)] == pytest.approx(2.5 + 48 * math.sqrt(0.1), rel=1e-9)
    risk = c.filter((pl.col("algo") == "VWAP") & (pl.col("horizon") == 1.0))["timing_risk_bps"][0]
    assert risk == pytest.approx(200 * math.sqrt(0.1 / 3), rel=1e-9)
    obj = c.filter((pl.col("algo") == "VWAP") & (pl.col("horizon") == 1.0))["objective_bps"][0]
    assert obj == pytest.approx(2.5 + 30 * math.sqrt(0.1) + 0.1 * risk, rel=1e-9)


def test_recommend_takes_the_cheapest_and_a_tie_keeps_what_was_done():
    # A (done as TWAP): VWAP and TWAP tie at 5 -> TWAP kept; B (done as LIQSEEK): the tie goes to the first, VWAP
    c = pl.DataFrame({
        "order_id": ["A"] * 3 + ["B"] * 3, "algo": ["VWAP", "TWAP", "LIQSEEK"] * 2, "horizon": [1.0] * 6,
        "pov": [0.1] * 6, "expected_cost_bps": [5.0, 5.0, 8.0] * 2, "objective_bps": [5.0, 5.0, 8.0] * 2,
    })  # fmt: skip
    rec = saving.recommend(c, pl.DataFrame({"order_id": ["A", "B"], "actual_algo": ["TWAP", "LIQSEEK"]}))
    assert dict(rec.select("order_id", "algo").rows()) == {"A": "TWAP", "B": "VWAP"}


def test_mean_ci_by_hand():
    # x = 1, 2, 3, 6: mean 3, SE = sqrt(4/3) sqrt(4 + 1 + 0 + 9) / 4 (CR1: n / (n - 1)), half-width t_3 SE with
    # t_3 = 3.18245 (tables; tca.t975's expansion is within 2e-3 of it)
    t3 = 3.182446305284263
    df = pl.DataFrame({"x": [1.0, 2.0, 3.0, 6.0], "w": [1.0, 1.0, 2.0, 0.0]})
    eq = saving.mean_ci(df, "x")
    assert eq["mean"] == pytest.approx(3.0) and eq["n"] == 4
    se = math.sqrt(4 / 3) * math.sqrt(14) / 4
    assert 3 - eq["lo"] == pytest.approx(t3 * se, rel=2e-3) and eq["hi"] - 3 == pytest.approx(t3 * se, rel=2e-3)
    # weights 1, 1, 2, 0: mean (1 + 2 + 6) / 4 = 2.25; SE = sqrt(4/3) sqrt(1.5625 + 0.0625 + 4 * 0.5625) / 4
    wt = saving.mean_ci(df, "x", "w")
    assert wt["mean"] == pytest.approx(2.25)
    assert wt["hi"] - wt["mean"] == pytest.approx(t3 * math.sqrt(4 / 3) * math.sqrt(3.875) / 4, rel=2e-3)


def test_planted_bound_is_the_liqseek_excess_by_hand():
    # LIQSEEK x1.6 vs the best x1.0: 16 bps of planted temporary impact -> 16 * (1 - 1/1.6) = 6 bps; VWAP: 0
    df = pl.DataFrame({"actual_algo": ["LIQSEEK", "VWAP"], "temp_bps": [16.0, 16.0]})
    assert df.select(saving.planted_bound(df))["temp_bps"].to_list() == pytest.approx([6.0, 0.0])


@pytest.fixture(scope="module")
def planted_run(sim_lake):
    seen = []

    def fit_fn(history, cfg):
        seen.append(history["day"].max())
        return saving.planted_fit(cfg)

    r = saving.measure(sim_lake, sim_config(sim_lake), saving.SavingConfig(train_days=1), fit_fn)
    return r, seen


def test_walk_forward_fits_only_on_earlier_days(planted_run):
    r, seen = planted_run
    days = r.orders["day"].unique().to_list()
    assert len(days) == 1 and len(seen) == 1 and seen[0] < days[0]


def test_the_planted_model_moves_exactly_the_liqseek_orders_and_the_rest_save_nothing(planted_run):
    # with the planted law the only lever at an unchanged window is the multiplier: LIQSEEK (x1.6) orders go to
    # the first x1.0 algo (VWAP), every other order keeps its algo, so its replay IS what was done: saving 0.0
    r, _ = planted_run
    o = r.orders
    assert (o["switched"] == (o["actual_algo"] == "LIQSEEK")).all()
    assert (o.filter(pl.col("switched"))["algo"] == "VWAP").all()
    assert (o.filter(~pl.col("switched"))["saving_bps"] == 0.0).all()
    s = r.summary
    assert s["switched"] == int((o["actual_algo"] == "LIQSEEK").sum()) > 0
    # the all-orders mean is the switched orders' savings spread over every order
    assert s["saving_bps"]["mean"] == pytest.approx(o["saving_bps"].sum() / o.height)
    assert np.isfinite([s["saving_bps_notional"]["lo"], s["saving_bps_notional"]["hi"]]).all()
