"""Impact statistics against synthetic data with known answers."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from analytics import impact


def synthetic_orders(n: int, slope: float, intercept: float, noise: float, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    vol = rng.uniform(0.01, 0.04, n)  # daily volatility, decimal
    size = rng.uniform(0.001, 0.1, n)  # share of ADV
    x = vol * 1e4 * np.sqrt(size)
    y = intercept + slope * x + rng.normal(0, noise, n)
    return pl.DataFrame(
        {
            "daily_volatility": vol,
            "size_pct_adv": size,
            "participation_rate": rng.uniform(0.01, 0.5, n),
            "arrival_cost_bps": y,
            "permanent_impact_bps": 0.4 * y,
            "temporary_impact_bps": 0.6 * y,
        }
    )


def test_sqrt_law_fit_recovers_a_known_coefficient():
    fit = impact.fit_sqrt_law(synthetic_orders(4000, slope=0.7, intercept=3.0, noise=5.0))
    assert fit is not None
    assert fit.lo < 0.7 < fit.hi
    assert fit.coefficient == pytest.approx(0.7, abs=0.05)
    assert fit.intercept == pytest.approx(3.0, abs=0.5)
    assert 0 < fit.r2 < 1


def test_interval_covers_the_truth_about_95_percent_of_the_time():
    hits = sum(
        (f := impact.fit_sqrt_law(synthetic_orders(300, 0.5, 2.0, 8.0, seed=s))) is not None and f.lo < 0.5 < f.hi
        for s in range(200)
    )
    assert 0.90 <= hits / 200 <= 0.99


def test_fit_refuses_too_few_orders_and_is_robust_to_one_wild_order():
    assert impact.fit_sqrt_law(synthetic_orders(20, 0.7, 3.0, 1.0)) is None
    base = synthetic_orders(2000, 0.7, 3.0, 2.0)
    wild = base.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(1e6).otherwise(pl.col("arrival_cost_bps")).alias("arrival_cost_bps")
    )
    assert impact.fit_sqrt_law(wild).coefficient == pytest.approx(impact.fit_sqrt_law(base).coefficient, abs=0.05)


def test_buckets_partition_the_orders():
    d = synthetic_orders(1000, 0.7, 3.0, 5.0)
    b = impact.buckets(d, "participation_rate")
    assert b["orders"].sum() == 1000
    assert (b["arrival_cost_bps_lo"] <= b["arrival_cost_bps"]).all()
    assert b["mean_participation_rate"].is_sorted()
