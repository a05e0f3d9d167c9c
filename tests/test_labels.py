"""Outcome labels: thresholds, execution and decision labels by hand, the pluggable estimator."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics import labels


def test_threshold_boundaries():
    z = pl.DataFrame({"z": [-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, None]})
    got = z.select(labels.THRESHOLDS.classify(pl.col("z")).alias("z"))["z"].to_list()
    # z < -1.5 excellent; [-1.5, -0.5) good; [-0.5, 0.5] neutral; (0.5, 1.5] poor; > 1.5 bad
    assert got == ["excellent", "good", "good", "neutral", "neutral", "neutral", "poor", "poor", "bad", None]


def test_thresholds_are_one_frozen_config():
    t = labels.LabelThresholds(cuts=(-2.0, -1.0, 1.0, 2.0))
    with pytest.raises(AttributeError):
        t.cuts = (0, 0, 0, 0)  # type: ignore[misc]
    got = pl.DataFrame({"z": [-1.5, 1.5]}).select(t.classify(pl.col("z")).alias("z"))["z"].to_list()
    assert got == ["good", "poor"]


@given(st.lists(st.floats(-10, 10), min_size=1, max_size=50))
def test_labels_are_monotone_in_z(zs):
    rank = {c: i for i, c in enumerate(labels.CLASSES)}
    df = pl.DataFrame({"z": sorted(zs)}).select(labels.THRESHOLDS.classify(pl.col("z")).alias("z"))
    r = [rank[c] for c in df["z"]]
    assert r == sorted(r)


def order(**over) -> dict:
    # spread 10 bps, sigma 2% a day (200 bps), 1% of ADV, 0.3 day planned, no delay
    base = {"spread_bps": 10.0, "daily_volatility": 0.02, "size_pct_adv": 0.01, "planned_duration_s": 0.3 * 23_400,
            "delay_s": 0.0, "is_total_bps": 15.0}  # fmt: skip
    return base | over


def test_execution_label_by_hand():
    # expected = 0.5 x 10 + 0.5 x 200 x sqrt(0.01) = 5 + 10 = 15 bps
    # sd = sqrt((10/2)^2 + 200^2 x 0.3 / 3) = sqrt(25 + 4000) = 63.443 bps
    sd = math.sqrt(25 + 4000)
    rows = pl.DataFrame([order(is_total_bps=15 + k * sd) for k in (-2.0, -1.0, 0.0, 1.0, 2.0)])
    out = labels.execution_labels(rows)
    assert out["expected_cost_bps"].to_list() == pytest.approx([15.0] * 5)
    assert out["expected_cost_sd_bps"].to_list() == pytest.approx([sd] * 5)
    assert out["execution_z"].to_list() == pytest.approx([-2, -1, 0, 1, 2])
    assert out["execution_label"].to_list() == ["excellent", "good", "neutral", "poor", "bad"]


def test_delay_adds_price_risk_and_unknown_duration_defaults():
    # delay of a whole session: + sigma^2 x 1 day; unknown duration: 0.1 day
    out = labels.execution_labels(pl.DataFrame([order(delay_s=23_400.0, planned_duration_s=None)]))
    assert out["expected_cost_sd_bps"][0] == pytest.approx(math.sqrt(25 + 200**2 * (1 + 0.1 / 3)))


def test_estimator_is_pluggable():
    class Flat:
        name = "flat"

        def expected(self, df):
            return df.with_columns(pl.lit(10.0).alias("expected_cost_bps"), pl.lit(5.0).alias("expected_cost_sd_bps"))

        def params(self):
            return {}

    out = labels.execution_labels(pl.DataFrame([order(is_total_bps=20.0)]), Flat())
    assert out["execution_z"][0] == pytest.approx(2.0) and out["execution_label"][0] == "bad"


def test_fit_recovers_a_planted_law_and_falls_back_when_it_cannot():
    rng = np.random.default_rng(3)
    n = 400
    sigma = rng.uniform(0.01, 0.03, n)
    size = rng.uniform(0.001, 0.1, n)
    x = sigma * 1e4 * np.sqrt(size)
    y = 3.0 + 0.8 * x + rng.normal(0, 2.0, n)  # planted: intercept 3 bps, Y = 0.8
    df = pl.DataFrame({"daily_volatility": sigma, "size_pct_adv": size, "is_total_bps": y})
    est = labels.SquareRootEstimator.fit(df)
    assert est.name == "sqrt_law_fit" and est.y == pytest.approx(0.8, abs=0.05)
    assert est.intercept_bps == pytest.approx(3.0, abs=0.8) and est.spread_share == 0.0
    assert labels.SquareRootEstimator.fit(df.head(10)) == labels.SquareRootEstimator()  # too few orders
    flat = df.with_columns(pl.Series("is_total_bps", 3.0 - 0.5 * x + rng.normal(0, 2.0, n)))
    assert labels.SquareRootEstimator.fit(flat).name == "sqrt_law_default"  # negative slope: not a cost law


def test_decision_label_by_hand():
    # realized +100 bps, IS 10 bps -> net 90; alpha 50; sd = 100 bps x sqrt(4) = 200; z = (50 - 90) / 200 = -0.2
    rows = pl.DataFrame(
        {
            "realized_return_bps": [100.0, -400.0, None],
            "is_total_bps": [10.0, 10.0, 10.0],  # fully filled: no opportunity cost to revalue at the horizon
            "is_delay_bps": [2.0] * 3,
            "is_opportunity_bps": [0.0] * 3,
            "fill_rate": [1.0] * 3,
            "alpha_bps": [50.0] * 3,
            "daily_volatility": [0.01] * 3,
            "horizon_days": [4.0] * 3,
        }
    )
    out = labels.decision_labels(rows)
    assert out["decision_net_bps"].to_list()[:2] == pytest.approx([90.0, -410.0])
    assert out["decision_z"].to_list()[:2] == pytest.approx([-0.2, (50 + 410) / 200])  # 2.3 -> bad
    assert out["decision_label"].to_list() == ["neutral", "bad", labels.PENDING]


def test_distribution_lists_every_class():
    d = labels.distribution(pl.Series(["good", "good", "bad", None]))
    assert d == {"excellent": 0, "good": 2, "neutral": 0, "poor": 0, "bad": 1, "null": 1}


class Flat:
    """A pre-trade estimate of 10 bps +- 5 for every order (labels by hand)."""

    name = "flat"

    def expected(self, df):
        return df.with_columns(pl.lit(10.0).alias("expected_cost_bps"), pl.lit(5.0).alias("expected_cost_sd_bps"))

    def params(self):
        return {}


def test_decision_outcomes_by_cost_source():
    rows = pl.DataFrame(
        {
            "orders": [0, 2, 1, 0],
            "realized_cost_bps": [None, 15.0, None, None],  # the third's order is outside the dataset
            "realized_return_bps": [100.0, 100.0, 100.0, None],  # the fourth's horizon has not elapsed
            "alpha_bps": [50.0] * 4,
            "daily_volatility": [0.01] * 4,  # 100 bps a day
            "horizon_days": [4.0] * 4,  # sd = 100 x sqrt(4) = 200 bps
        }
    )
    out = labels.decision_outcomes(rows, Flat())
    assert out["cost_source"].to_list() == ["expected", "realized", "unavailable", "expected"]
    assert out["execution_cost_bps"].to_list() == [10.0, 15.0, None, 10.0]
    # no order: 100 - 10 = 90 net, z = (50 - 90) / 200 = -0.2; executed: 100 - 15 = 85, z = -0.175
    assert out["decision_net_bps"].to_list()[:3] == [90.0, 85.0, None]
    assert out["decision_z"].to_list()[:2] == pytest.approx([-0.2, -0.175])
    assert out["decision_label"].to_list() == ["neutral", "neutral", None, labels.PENDING]
    assert "planned_duration_s" not in out.columns  # the estimator's missing inputs are not left behind


def _real_return_bps(side: int, qty: float, filled: float, avg_px: float, p_dec: float, p_h: float, fees: float):
    """The real portfolio's return at the horizon close by hand (Perold 1988): the filled shares bought at avg_px
    and marked at p_h, the unfilled ones never held; minus fees; bps of the paper notional p_dec * qty."""
    return (side * (p_h - avg_px) * filled - fees) / (p_dec * qty) * 1e4


def _tca_row(side, qty, filled, avg_px, p_dec, p0, pn, p_h, fees):
    """The order row's IS components as tca.py computes them (opportunity at the cancel mid pn) and its paper
    return to the horizon close p_h, each in bps of p_dec * qty."""
    paper = p_dec * qty
    delay, trading = side * (p0 - p_dec) * qty, side * (avg_px - p0) * filled
    opp = side * (pn - p0) * (qty - filled)
    return {"is_total_bps": (delay + trading + opp + fees) / paper * 1e4, "is_delay_bps": delay / paper * 1e4,
            "is_opportunity_bps": opp / paper * 1e4, "fill_rate": filled / qty,
            "realized_return_bps": side * (p_h - p_dec) / p_dec * 1e4, "alpha_bps": 50.0, "daily_volatility": 0.02,
            "horizon_days": 1.0}  # fmt: skip


def test_unfilled_buy_whose_stock_rallied_is_not_excellent():
    """Issue 16, defect 7: a buy of 1,000 at decision price 100 never filled; the mid was 100.50 at the cancel
    and the stock closed the horizon at 110. The real portfolio earned nothing (minus nothing: no fees), so the
    decision delivered 0 bps against 50 expected: z = (50 - 0) / 200 = 0.25, neutral. Valuing the unfilled shares
    at the cancel mid in the IS but at 110 in the paper return made it +950 bps, z = -4.5, 'excellent'."""
    row = _tca_row(1, 1000, 0, float("nan"), 100.0, 100.0, 100.5, 110.0, 0.0)
    row["is_total_bps"] = 50.0  # delay 0 + trading 0 (no fills) + opportunity 0.5 x 1000 / 100,000
    out = labels.decision_labels(pl.DataFrame([row]))
    assert out["decision_net_bps"][0] == pytest.approx(_real_return_bps(1, 1000, 0, 0.0, 100.0, 110.0, 0.0))
    assert out["decision_z"][0] == pytest.approx(0.25)
    assert out["decision_label"][0] == "neutral"


@pytest.mark.parametrize(
    "side,filled,avg_px,p0,pn,p_h,fees",
    [(1, 400, 100.3, 100.1, 100.6, 104.0, 12.0), (-1, 700, 99.2, 99.5, 99.0, 95.0, 5.0), (1, 1000, 100.2, 100.1,
     100.4, 98.0, 3.0), (-1, 0, 1.0, 100.0, 101.0, 103.0, 0.0)],
)  # fmt: skip
def test_decision_net_is_the_real_portfolio_return_at_the_horizon(side, filled, avg_px, p0, pn, p_h, fees):
    """Partially filled, fully filled and unfilled orders, both sides: decision_net_bps equals the real portfolio's
    return marked at the horizon close, computed by hand from the fills (the paper and the real portfolio valued at
    one price)."""
    row = _tca_row(side, 1000, filled, avg_px, 100.0, p0, pn, p_h, fees)
    out = labels.decision_labels(pl.DataFrame([row]))
    assert out["decision_net_bps"][0] == pytest.approx(_real_return_bps(side, 1000, filled, avg_px, 100.0, p_h, fees))


def _desk_by_day() -> pl.DataFrame:
    """40 orders a day on 2026-03-02..05: days 1-3 cost exactly 3 + 0.8 x bps, day 4 costs 50 + 5 x (a regime the
    earlier days could not know), x = sigma_bps * sqrt(size_pct_adv)."""
    rng = np.random.default_rng(8)
    days = np.repeat(np.arange(4), 40)
    sigma, size = rng.uniform(0.01, 0.03, 160), rng.uniform(0.001, 0.1, 160)
    x = sigma * 1e4 * np.sqrt(size)
    ts = [dt.datetime(2026, 3, 2 + int(d), 15, tzinfo=dt.UTC) for d in days]
    return pl.DataFrame({"arrival_ts": ts, "daily_volatility": sigma, "size_pct_adv": size, "spread_bps": 4.0,
                         "planned_duration_s": 2340.0, "delay_s": 0.0,
                         "is_total_bps": np.where(days < 3, 3 + 0.8 * x, 50 + 5 * x)})  # fmt: skip


def test_walk_forward_expected_cost_never_sees_later_orders():
    """Issue 16, defect 8: each order's expected cost is fitted on the orders of earlier days only. Day 1 has no
    history: the documented default 0.5 x spread + 0.5 x x; days 2-4: the law of days 1-3, 3 + 0.8 x, exactly (by
    hand), day 4's own regime unseen. A whole-sample fit let day 4 move every earlier day's expectation."""
    desk = _desk_by_day()
    x = (desk["daily_volatility"] * 1e4 * desk["size_pct_adv"].sqrt()).to_numpy()
    day = np.repeat(np.arange(4), 40)
    want = np.where(day == 0, 0.5 * 4.0 + 0.5 * x, 3 + 0.8 * x)
    out = labels.execution_labels(desk, labels.WalkForwardEstimator(desk))
    assert out["expected_cost_bps"].to_numpy() == pytest.approx(want, abs=1e-6)
    # metamorphic: rewriting every later order leaves an earlier day's expectation unchanged
    later = desk.with_columns(
        pl.when(pl.col("arrival_ts").dt.day() >= 4).then(pl.col("is_total_bps") * -3).otherwise("is_total_bps")
    )
    again = labels.execution_labels(later, labels.WalkForwardEstimator(later))
    assert again["expected_cost_bps"][:120].to_list() == out["expected_cost_bps"][:120].to_list()


def test_walk_forward_prices_decisions_from_the_orders_before_their_day():
    desk = _desk_by_day()
    dec = pl.DataFrame({"decision_ts": [dt.datetime(2026, 3, 2, 14, tzinfo=dt.UTC), dt.datetime(2026, 3, 6, 14,
                        tzinfo=dt.UTC)], "daily_volatility": [0.02, 0.02], "size_pct_adv": [0.04, 0.04],
                        "spread_bps": [4.0, 4.0]})  # fmt: skip
    est = labels.WalkForwardEstimator(desk)
    got = est.expected(dec.with_columns(pl.lit(None, pl.Float64).alias(c) for c in ("planned_duration_s", "delay_s")))
    x = 200 * 0.2  # sigma_bps x sqrt(0.04)
    # 03-02: nothing before it (default); 03-06: every order of 03-02..05 (both regimes), fitted by OLS by hand
    xs = (desk["daily_volatility"] * 1e4 * desk["size_pct_adv"].sqrt()).to_numpy()
    b, a = np.polyfit(xs, desk["is_total_bps"].to_numpy(), 1)
    assert got["expected_cost_bps"].to_list() == pytest.approx([0.5 * 4 + 0.5 * x, a + b * x], rel=0.05)
    described = est.params()
    assert [d["fitted_on"] for d in described["days"]] == [0, 160] and described["rule"].startswith("walk-forward")
