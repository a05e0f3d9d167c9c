"""The learned cost model on synthetic orders whose true cost law and noise are known."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from analytics import cost_model


def _orders(n: int, seed: int) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Orders with cost = 2 + 0.8 * sigma_bps * sqrt(size/ADV) (+10 bps for LIQSEEK) and noise whose standard
    deviation is 4 + 0.5 * sigma_bps * sqrt(size/ADV): returns the frame, the true mean and true sd."""
    rng = np.random.default_rng(seed)
    size = np.exp(rng.uniform(np.log(1e-3), np.log(0.1), n))
    vol = rng.uniform(0.01, 0.03, n)
    algo = rng.choice(["VWAP", "LIQSEEK", "TWAP"], n)
    law = vol * 1e4 * np.sqrt(size)
    mean = 2 + 0.8 * law + np.where(algo == "LIQSEEK", 10.0, 0.0)
    sd = 4 + 0.5 * law
    t0 = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)
    df = pl.DataFrame(
        {
            "arrival_ts": [t0 + dt.timedelta(minutes=int(m)) for m in rng.integers(0, 380, n)],
            "size_pct_adv": size,
            "daily_volatility": vol,
            "spread_at_arrival_bps": rng.uniform(2, 8, n),
            "algo": algo,
            "urgency": rng.choice(["LOW", "MEDIUM", "HIGH"], n),
            "paper_notional": np.full(n, 1e6),
            "impact_cost_bps": mean + sd * rng.standard_normal(n),
        }
    )
    return df, mean, sd


@pytest.fixture(scope="module")
def fitted():
    train, _, _ = _orders(4000, 1)
    return cost_model.fit(train, cost_model.CostModelConfig(seed=3))


def test_recovers_the_mean_and_the_noise_out_of_sample(fitted):
    test, mean, sd = _orders(3000, 2)
    p = cost_model.predict(fitted, test)
    err = p["expected_cost_bps"].to_numpy() - mean
    # the mean is learned to a fraction of the noise it is learned through
    assert np.sqrt(np.mean(err**2)) < 0.2 * np.mean(sd)
    assert abs(err.mean()) < 1.5
    # heteroscedastic: the predicted sd follows the true sd
    assert np.corrcoef(p["cost_std_bps"].to_numpy(), sd)[0, 1] > 0.8
    # a 90% interval holds about 90% of the outcomes
    y = test["impact_cost_bps"].to_numpy()
    inside = (y >= p["cost_lo_bps"].to_numpy()) & (y <= p["cost_hi_bps"].to_numpy())
    assert 0.85 <= inside.mean() <= 0.95
    # the planted LIQSEEK premium of 10 bps is priced
    liq = test["algo"].to_numpy() == "LIQSEEK"
    gap = (p["expected_cost_bps"].to_numpy() - (mean - np.where(liq, 10.0, 0.0)))[liq].mean()
    assert 6 < gap < 14


def test_same_data_and_seed_give_the_same_model_and_json_round_trips(fitted):
    train, _, _ = _orders(4000, 1)
    again = cost_model.fit(train, cost_model.CostModelConfig(seed=3))
    assert again.params == fitted.params
    back = cost_model.CostModel.from_json(fitted.to_json())
    test, _, _ = _orders(50, 9)
    assert cost_model.predict(back, test).equals(cost_model.predict(fitted, test))


def test_unseen_category_and_missing_inputs_still_predict(fitted):
    test, _, _ = _orders(10, 4)
    test = test.with_columns(pl.lit("NEWALGO").alias("algo"), pl.lit(None, pl.Float64).alias("spread_at_arrival_bps"))
    p = cost_model.predict(fitted, test)
    assert p.height == 10 and p["expected_cost_bps"].is_finite().all() and (p["cost_std_bps"] > 0).all()


def test_too_few_orders_is_a_clear_error():
    df, _, _ = _orders(10, 5)
    with pytest.raises(ValueError, match="at least 20"):
        cost_model.fit(df)


def test_offset_is_least_absolute_deviations_by_hand():
    # y = 1 + 2 f except one outlier: least squares is pulled by it, LAD (the median line) is not
    f = np.c_[np.ones(7), np.arange(7.0)]
    y = 1 + 2 * np.arange(7.0)
    y[3] += 100.0
    c = cost_model.fit_offset(f, y, lad=True)
    # the IRLS floor of 1 bps makes it Huber with delta = 1: the outlier (at mean x = 3, so the slope is untouched)
    # pulls the intercept with force 1, which the six inliers balance with residuals -d: 6 d = 1, d = 1/6
    assert c == pytest.approx([1.0 + 1 / 6, 2.0], abs=1e-6)
    ols = cost_model.fit_offset(f, y, lad=False)  # OLS: intercept 1 + 100 / 7 - 3 * slope shift; slope unchanged
    assert ols == pytest.approx([1 + 100 / 7, 2.0], abs=1e-9)


def test_offset_design_columns_by_hand():
    # one order: size 1% ADV, sigma 2% (200 bps), algo LIQSEEK of (LIQSEEK, VWAP), urgency HIGH of (HIGH, LOW)
    df = pl.DataFrame(
        {
            "arrival_ts": [dt.datetime(2026, 3, 2, 15, tzinfo=dt.UTC)],
            "size_pct_adv": [0.01],
            "daily_volatility": [0.02],
            "spread_at_arrival_bps": [4.0],
            "algo": ["LIQSEEK"],
            "urgency": ["HIGH"],
        }
    )
    x, _, names = cost_model.design(df, {"algo": ["LIQSEEK", "VWAP"], "urgency": ["HIGH", "LOW"]})
    f = cost_model.offset_design(x, names)
    # 1, sigma_bps sqrt(size) = 200 * 0.1 = 20, then sigma_bps x (LIQSEEK, VWAP, HIGH, LOW) indicators
    assert f.tolist() == [[1.0, pytest.approx(20.0), 200.0, 0.0, 200.0, 0.0]]


def test_conformal_multiplier_by_hand():
    z = np.arange(1.0, 20.0)  # 19 normalised residuals 1..19: ceil(20 * 0.9) = 18th smallest = 18
    assert cost_model.conformal_z(z, 0.9) == 18.0
    assert cost_model.conformal_z(np.arange(1.0, 5.0), 0.9) == float("inf")  # ceil(5 * .9) = 5 > 4 residuals


def test_minibatch_training_still_learns_the_law():
    train, _, _ = _orders(6000, 11)
    m = cost_model.fit(train, cost_model.CostModelConfig(seed=3, batch_size=512))
    test, mean, sd = _orders(2000, 12)
    err = cost_model.predict(m, test)["expected_cost_bps"].to_numpy() - mean
    assert np.sqrt(np.mean(err**2)) < 0.2 * np.mean(sd)


def test_a_model_saved_before_the_offset_loads_as_a_plain_network(fitted):
    import json

    raw = json.loads(fitted.to_json())
    for k in ("offset", "interval_z", "mean_weight"):
        raw.pop(k)
    for k in ("residual", "loss", "weights", "level", "batch_size"):
        raw["cfg"].pop(k)
    raw["cfg"]["target"] = "is_total_bps"
    old = cost_model.CostModel.from_json(json.dumps(raw))
    assert old.offset == [0.0] and old.interval_z == cost_model.Z90 and old.mean_weight == 1.0
    assert old.cfg.loss == "gaussian" and not old.cfg.residual


def _orders_over_days(n_days: int, per_day: int, seed: int) -> pl.DataFrame:
    df, _, _ = _orders(n_days * per_day, seed)
    day = np.repeat(np.arange(n_days), per_day)
    return df.with_columns(pl.col("arrival_ts") + pl.Series([dt.timedelta(days=int(d)) for d in day]))


def test_time_split_keeps_whole_days_apart():
    """10 days of 50 orders, 10% validation and 10% calibration: the cuts fall on day boundaries (day 8 starts at
    row 400, day 9 at 450); one day only: the share's positions."""
    df = _orders_over_days(10, 50, 4).sort("arrival_ts")
    assert cost_model.time_split(df["arrival_ts"], 0.1, 0.1) == (400, 450)
    one_day = _orders(100, 4)[0].sort("arrival_ts")
    assert cost_model.time_split(one_day["arrival_ts"], 0.1, 0.1) == (80, 90)


def test_interval_is_calibrated_on_days_not_used_for_early_stopping():
    """Issue 16, defect 10. (a) The calibration days' outcomes choose nothing about the network: rewriting them
    leaves its weights and mean weight unchanged. (b) The interval multiplier is the split-conformal quantile of
    exactly those orders: with n calibration orders, exactly ceil((n + 1) 0.9) of them lie inside their 90%
    interval (counted by hand from the model's predictions), whatever the validation orders do."""
    df = _orders_over_days(10, 120, 5)
    cfg = cost_model.CostModelConfig(seed=1, steps=600)
    m = cost_model.fit(df, cfg)
    assert m.split["train_rows"] == 960 and m.split["validation_rows"] == 120 and m.split["calibration_rows"] == 120
    assert m.split["calibration_from"].startswith("2026-03-11")
    cal = df.sort("arrival_ts").tail(120)
    p = cost_model.predict(m, cal)
    y = cal["impact_cost_bps"].to_numpy()
    inside = int(((y >= p["cost_lo_bps"].to_numpy() - 1e-9) & (y <= p["cost_hi_bps"].to_numpy() + 1e-9)).sum())
    assert inside == int(np.ceil(121 * 0.9))
    last_day = pl.col("arrival_ts").dt.day() == 11
    moved = df.with_columns(pl.when(last_day).then(pl.col("impact_cost_bps") * 3 + 40).otherwise("impact_cost_bps"))
    m2 = cost_model.fit(moved, cfg)
    assert m2.params == m.params and m2.mean_weight == m.mean_weight and m2.interval_z != m.interval_z
