"""MLflow round trip in a temporary lake (log, register, champion alias, load, predict), the promotion rule and
its ModelUpdateEvent, and the time-ordered evaluation helpers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os

import numpy as np
import polars as pl
import pytest

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # before mlflow is imported (tracking also sets it)

from analytics import impact_models as im
from analytics import tracking as tk
from analytics.store import Lake

NAME = "impact-istar"


def _fit(a1: float = 600.0) -> im.ImpactFit:
    p = {"a1": a1, "a2": 0.55, "a3": 0.71, "a4": 0.5, "b1": 0.98}
    return im.ImpactFit("istar", p, {k: (v * 0.9, v * 1.1) for k, v in p.items()}, n=100, loss=0.01,
                        resid_q=(-0.2, 0.2), draws=((a1 * 0.95, 0.55, 0.71, 0.5, 0.98), (a1 * 1.05, 0.55, 0.71, 0.5, 0.98)))  # fmt: skip


@pytest.fixture
def lake(tmp_path):
    return Lake(tmp_path / "lake")


def test_store_is_local_sqlite_under_the_lake(lake):
    uri = tk.tracking_uri(lake)
    assert uri.startswith("sqlite:///") and uri.endswith("lake/mlflow/mlflow.db")
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_log_register_alias_load_predict(lake):
    chart = tk.calibration_chart(np.arange(20.0), np.arange(20.0) + 1)
    out = tk.log_fit(
        lake, NAME, _fit(), "tca@3", {"holdout_mae_bps": 10.0, "holdout_coverage": 0.9}, {"calibration": chart}
    )
    assert out["version"] == "1"
    art = lake.root / "mlflow" / "artifacts"
    pngs = list(art.rglob("calibration.png"))
    assert len(pngs) == 1 and pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(art.rglob("fit.json"))
    runs = tk.runs(lake)
    assert runs.height == 1 and runs["dataset"][0] == "tca@3" and runs["holdout_mae_bps"][0] == 10.0
    # no champion yet: the published parameters
    fit, ver = tk.load_champion(lake, "istar")
    assert ver is None and fit.source == "published"
    ev = tk.promote_if_better(lake, NAME, out["run_id"], 10.0, margin=0.5)
    assert ev["decision"] == "promoted" and ev["previous_champion"] is None and ev["reason"] == "no champion yet"
    fit, ver = tk.load_champion(lake, "istar")
    assert ver == "1" and fit == dataclasses.replace(_fit(), version="1")  # the champion names its version
    # the loaded model predicts as the logged one
    orders = pl.DataFrame({"size_adv": [0.1], "sigma_daily": [0.02], "pov": [0.2]})
    assert im.predict(fit, orders)["expected_cost_bps"][0] == im.predict(_fit(), orders)["expected_cost_bps"][0]


def test_worse_challenger_is_not_promoted_better_one_is(lake):
    first = tk.log_fit(lake, NAME, _fit(600.0), "tca@1", {"holdout_mae_bps": 10.0})
    tk.promote_if_better(lake, NAME, first["run_id"], 10.0, margin=0.5)
    worse = tk.log_fit(lake, NAME, _fit(650.0), "tca@1", {"holdout_mae_bps": 10.2})
    ev = tk.promote_if_better(lake, NAME, worse["run_id"], 10.2, margin=0.5)
    assert ev["decision"] == "rejected" and ev["champion"] == "1" and ev["model_version"] == "2"
    assert str(tk.champion(lake, NAME).version) == "1"
    # better, but not by the margin: 9.7 > 10.0 - 0.5
    close = tk.log_fit(lake, NAME, _fit(660.0), "tca@1", {"holdout_mae_bps": 9.7})
    assert tk.promote_if_better(lake, NAME, close["run_id"], 9.7, margin=0.5)["decision"] == "rejected"
    better = tk.log_fit(lake, NAME, _fit(700.0), "tca@2", {"holdout_mae_bps": 9.0})
    ev = tk.promote_if_better(lake, NAME, better["run_id"], 9.0, margin=0.5)
    assert ev["decision"] == "promoted" and ev["previous_champion"] == "1" and ev["champion"] == "4"
    assert ev["event_type"] == "ModelUpdateEvent" and ev["code_version"] == tk.CODE_VERSION
    assert ev["metrics"] == {"metric": "holdout_mae_bps", "challenger": 9.0, "champion": 10.0, "margin": 0.5}
    assert dt.datetime.fromisoformat(ev["ts"]).tzinfo is not None
    assert str(tk.champion(lake, NAME).version) == "4"
    assert tk.load_champion(lake, "istar")[0].params["a1"] == 700.0
    # the champion re-scored on the challenger's holdout overrides its stored figure
    again = tk.log_fit(lake, NAME, _fit(710.0), "tca@2", {"holdout_mae_bps": 9.0})
    ev = tk.promote_if_better(lake, NAME, again["run_id"], 9.0, margin=0.5, champion_metric=12.0)
    assert ev["decision"] == "promoted" and ev["metrics"]["champion"] == 12.0


def test_cold_pages_read_the_champions_from_the_mirror_without_mlflow(lake, monkeypatch):
    from analytics import registry

    first = tk.log_fit(lake, NAME, _fit(600.0), "tca@1", {"holdout_mae_bps": 10.0})
    tk.promote_if_better(lake, NAME, first["run_id"], 10.0, margin=0.5)
    worse = tk.log_fit(lake, NAME, _fit(650.0), "tca@1", {"holdout_mae_bps": 12.0})
    tk.promote_if_better(lake, NAME, worse["run_id"], 12.0, margin=0.5)  # rejected: the mirror keeps v1
    assert registry.versions(lake) == {NAME: {"version": "1", "run_id": first["run_id"]}}
    # a lake trained before the mirror existed: no index, so ask MLflow; sync_mirror writes it from the registry
    (lake.root / "mlflow" / registry.INDEX).unlink()
    assert registry.versions(lake) is None
    assert tk.sync_mirror(lake) == {NAME: {"version": "1", "run_id": first["run_id"]}}

    def no_mlflow(_lake):
        raise AssertionError("MLflow was asked")

    monkeypatch.setattr(tk, "client", no_mlflow)
    fit, ver = tk.load_champion(lake, "istar")
    assert ver == "1" and fit == dataclasses.replace(_fit(600.0), version="1")
    fit, ver = tk.load_champion(lake, "almgren")  # never trained: the published parameters, still no MLflow
    assert ver is None and fit.source == "published"
    assert tk.load_learned_champion(lake) == (None, None)


# --------------------------------------------------------------------------- evaluation helpers
def _ts(days: list[int]) -> pl.Series:
    base = dt.datetime(2026, 3, 2, 15, tzinfo=dt.UTC)
    return pl.Series([base + dt.timedelta(days=d, minutes=i) for i, d in enumerate(days)])


def test_walk_forward_splits_are_time_ordered():
    ts = _ts([0, 0, 1, 2, 2, 3, 4, 5, 5, 6])  # 7 distinct days
    splits = tk.walk_forward_splits(ts, n_splits=3, min_train_frac=0.5)
    assert len(splits) == 3
    days = ts.dt.date().to_numpy()
    covered = np.zeros(len(ts), dtype=bool)
    for train, test in splits:
        assert train.any() and test.any() and not (train & test).any()
        assert days[train].max() < days[test].min()  # never a random split: the past predicts the future
        assert not (set(days[train]) & set(days[test]))
        covered |= test
    # the first 4 days (round(7 * .5) = 4) only ever train; each later day is tested exactly once
    assert covered.tolist() == [False] * 6 + [True] * 4  # rows of days 0-3, then of days 4, 5, 5, 6
    assert tk.walk_forward_splits(_ts([0, 0]), 3) == []


def test_holdout_split_is_the_last_days():
    ts = _ts([0, 1, 2, 3, 3])
    train, test = tk.holdout_split(ts, 0.25)  # round(4 * .25) = 1 day: day 3
    assert train.tolist() == [True, True, True, False, False] and test.tolist() == [False, False, False, True, True]
    with pytest.raises(ValueError):
        tk.holdout_split(_ts([0, 0]))


def test_evaluate_by_hand():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([2.0, 2.0, 2.0, 6.0])  # errors +1, 0, -1, +2
    m = tk.evaluate(y, pred, lo=pred - 1.5, hi=pred + 1.5)
    assert m["mae_bps"] == pytest.approx(1.0)  # (1 + 0 + 1 + 2) / 4
    assert m["rmse_bps"] == pytest.approx(np.sqrt(6 / 4))  # (1 + 0 + 1 + 4) / 4
    assert m["bias_bps"] == pytest.approx(0.5)  # (1 + 0 - 1 + 2) / 4: over-estimates on average
    assert m["coverage"] == pytest.approx(0.75)  # 4 is outside [4.5, 7.5]
    # ranks of pred: 2, 2, 2, 4 (ties averaged) vs 1..4: Spearman = Pearson of (2,2,2,4) and (1,2,3,4) = 0.7746
    assert m["spearman"] == pytest.approx(0.7745967, abs=1e-6)
    assert m["n"] == 4


def test_bucket_accuracy_by_hand():
    # training quintile edges of 1..10 are 2.8, 4.6, 6.4, 8.2: buckets 0..4
    y_train = np.arange(1.0, 11.0)
    y = np.array([1.0, 5.0, 9.0, 3.0])  # buckets 0, 2, 4, 1
    pred = np.array([2.0, 6.0, 2.0, 4.0])  # buckets 0, 2, 0, 1
    assert tk.bucket_accuracy(y_train, y, pred) == 0.75


def test_train_learned_end_to_end_then_a_rerun_is_not_promoted(sim_lake, tmp_path):
    import shutil

    lake = Lake(shutil.copytree(sim_lake.root, tmp_path / "lake"))  # MLflow writes under the lake
    first = tk.train(lake, "learned", seed=1)
    assert first["registered_model"] == "cost-learned" and first["event"]["decision"] == "promoted"
    m = first["metrics"]
    assert 0.0 <= m["holdout_coverage"] <= 1.0 and 0.0 <= m["holdout_bucket_accuracy"] <= 1.0
    assert m["holdout_n"] == first["n_test"] > 0 and "baseline_constant_mae_bps" in m
    model, version = tk.load_learned_champion(lake)
    assert version == first["version"] and model.train_rows == first["n_train"]
    # the learned model and its baselines side by side, on the same target (impact cost, bps)
    assert first["target"] == "impact_cost_bps"
    side = first["comparison"]
    assert {"learned", "constant", "sqrt_law"} <= set(side)
    for row in side.values():
        assert set(row) == {"mae_bps", "rmse_bps", "bias_bps", "coverage", "spearman", "bucket_accuracy"}
    assert (
        side["learned"]["mae_bps"] == m["holdout_mae_bps"]
        and side["constant"]["mae_bps"] == m["baseline_constant_mae_bps"]
    )
    # the constant baseline by hand from the stored TCA rows: impact cost = trading_impact_cost / filled_notional,
    # the sim desk has 2 days, the holdout is the last one; constant = the training day's median
    from analytics import tca
    from analytics.filters import Filters

    con = lake.connect()
    o = tca.load_orders(lake, con, Filters())
    con.close()
    o = (
        o.filter(pl.col("filled_notional") > 0)
        .with_columns((pl.col("trading_impact_cost") / pl.col("filled_notional") * 1e4).alias("y"))
        .filter(pl.col("y").is_finite())
    )
    last = o["arrival_ts"].dt.date().max()
    y_tr = o.filter(pl.col("arrival_ts").dt.date() < last)["y"].to_numpy()
    y_te = o.filter(pl.col("arrival_ts").dt.date() == last)["y"].to_numpy()
    assert m["baseline_constant_mae_bps"] == pytest.approx(np.mean(np.abs(y_te - np.median(y_tr))))
    assert m["holdout_n"] == len(y_te)
    again = tk.train(lake, "learned", seed=1)  # the same model again: no gain, no promotion
    assert again["event"]["decision"] == "rejected"
    assert tk.load_learned_champion(lake)[1] == first["version"]


def _gap_rows(days, realised, expected, notional, oos=None) -> pl.DataFrame:
    return pl.DataFrame({"arrival_ts": days, "filled_notional": notional, "realised_bps": realised,
                         "expected_bps": expected, "gap_bps": np.asarray(realised) - np.asarray(expected),
                         "out_of_sample": np.ones(len(days), bool) if oos is None else oos})  # fmt: skip


def test_drift_flags_only_a_real_and_large_gap():
    import datetime as dt

    rng = np.random.default_rng(0)
    days = [dt.datetime(2026, 3, 2, tzinfo=dt.UTC) + dt.timedelta(days=int(d)) for d in np.repeat(np.arange(21), 200)]
    y = rng.normal(10, 5, len(days))
    pred = y + rng.normal(0, 5, len(days))  # unbiased: no week asks for a retrain
    pred[-200:] -= 6.0  # the last day the model under-estimates by 6 bps: realised - expected = +6
    rows = _gap_rows(days, y, pred, np.ones(len(days)))
    weekly = tk.drift(rows, "impact-istar", "3", every="1w")
    assert weekly["n"].sum() == len(days)
    assert not weekly["retrain"][:-1].any()
    daily = tk.drift(rows, "impact-istar", "3", every="1d")
    assert daily["retrain"].to_list() == [False] * 20 + [True]  # by day the drift is found, and only there
    assert daily["gap_bps"][-1] == pytest.approx(6.0, abs=1.0) and daily["bias_bps"][-1] == -daily["gap_bps"][-1]


def test_drift_is_notional_weighted_realised_minus_expected_and_out_of_sample_only():
    """One day, by hand: orders (realised, expected, notional) = (10, 4, 3e6), (2, 4, 1e6) out of sample, and an
    in-sample order (100, 0, 1e9) the model was fitted on, which must not count. Gap = (6 x 3 - 2 x 1) / 4 = 4 bps
    (positive: costlier than expected); equal-weighted it would be 2."""
    import datetime as dt

    t = [dt.datetime(2026, 3, 2, 15, tzinfo=dt.UTC)] * 3
    rows = _gap_rows(t, [10.0, 2.0, 100.0], [4.0, 4.0, 0.0], [3e6, 1e6, 1e9], oos=[True, True, False])
    d = tk.drift(rows, "impact-istar", None, every="1d").row(0, named=True)
    assert (d["n"], d["model_version"]) == (2, "published")
    assert d["gap_bps"] == pytest.approx(4.0) and d["bias_bps"] == pytest.approx(-4.0)
    assert d["realised_bps"] == pytest.approx((10 * 3 + 2) / 4) and d["mae_bps"] == pytest.approx(4.0)
    # the sandwich SE by hand, with the small-sample factor n / (n - 1) = 2, and Student t on 1 df (12.7062)
    se = math.sqrt((3e6**2) * (6 - 4) ** 2 + (1e6**2) * (-2 - 4) ** 2) / 4e6 * math.sqrt(2)
    assert (d["gap_lo_bps"], d["gap_hi_bps"]) == pytest.approx((4 - 12.7062 * se, 4 + 12.7062 * se), rel=1e-4)


def test_without_a_champion_the_published_parameters_are_the_one_to_beat(lake):
    # the pages price with the published parameters until a champion exists: a first fit scoring 10.0 on the
    # holdout where the published model scores 9.0 is rejected (10.0 is not < 9.0 - 0.5); one scoring 8.4 is promoted
    worse = tk.log_fit(lake, NAME, _fit(600.0), "tca@1", {"holdout_mae_bps": 10.0})
    ev = tk.promote_if_better(lake, NAME, worse["run_id"], 10.0, margin=0.5, published_metric=9.0)
    assert ev["decision"] == "rejected" and ev["champion"] is None and ev["metrics"]["champion"] == 9.0
    assert "published" in ev["reason"] and tk.champion(lake, NAME) is None
    assert tk.load_champion(lake, "istar")[1] is None  # the pages keep the published parameters
    better = tk.log_fit(lake, NAME, _fit(650.0), "tca@1", {"holdout_mae_bps": 8.4})
    ev = tk.promote_if_better(lake, NAME, better["run_id"], 8.4, margin=0.5, published_metric=9.0)
    assert ev["decision"] == "promoted" and ev["champion"] == better["version"] == "2"


def test_cli_train_fits_with_the_chosen_weights_and_judges_against_the_published(sim_lake, tmp_path, run_cli):
    import json
    import shutil

    lake = shutil.copytree(sim_lake.root, tmp_path / "lake")
    r = run_cli("train", "--model", "almgren", "--weights", "notional", "--n-boot", "0", "--json", "--lake", str(lake),
                timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["weights"] == "notional" and out["model"] == "almgren"
    m, ev = out["metrics"], out["event"]
    assert {"holdout_mae_bps", "holdout_mae_notional_bps", "published_holdout_mae_bps"} <= set(m)
    beats = m["holdout_mae_bps"] < m["published_holdout_mae_bps"] - tk.DEFAULT_MARGIN_BPS
    assert ev["decision"] == ("promoted" if beats else "rejected")
    bad = run_cli("train", "--weights", "bogus", "--lake", str(lake))
    assert bad.returncode == 2 and "--weights" in bad.stderr
