"""Risk-adjusted returns against empyrical-reloaded (the oracle, imported only here) to 1e-9, hand examples for what
empyrical does not define (drawdown dates, parametric VaR), and the peer table over a hand-made lake."""

from __future__ import annotations

import datetime as dt
import json
import math

import empyrical as ep
import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from analytics import risk
from tests.test_attribution import write_two_day_lake

TOL = 1e-9


def _close(a: float, b: float) -> bool:
    if np.isnan(a) and np.isnan(b):
        return True
    if np.isinf(a) or np.isinf(b):
        return a == b
    return abs(a - b) <= TOL * max(1.0, abs(b))


def _series(seed: int, n: int, drift: float = 0.0004, vol: float = 0.012):
    rng = np.random.default_rng(seed)
    b = drift + vol * rng.standard_normal(n)
    r = 0.0001 + 1.1 * b + 0.004 * rng.standard_normal(n)
    return r, b


CASES = [_series(s, n) for s, n in [(1, 252), (2, 30), (3, 756), (4, 5)]] + [
    (np.array([0.01, -0.02, 0.015, 0.0, -0.005, 0.03]), np.array([0.005, -0.01, 0.01, 0.002, -0.004, 0.02])),
]


@pytest.mark.parametrize("r,b", CASES)
def test_metrics_equal_empyrical(r, b):
    checks = {
        "annual_return": (risk.annual_return(r), ep.annual_return(r)),
        "annual_volatility": (risk.annual_volatility(r), ep.annual_volatility(r)),
        "sharpe": (risk.sharpe_ratio(r), ep.sharpe_ratio(r)),
        "sharpe_rf": (risk.sharpe_ratio(r, 0.0001), ep.sharpe_ratio(r, risk_free=0.0001)),
        "sortino": (risk.sortino_ratio(r), ep.sortino_ratio(r)),
        "sortino_mar": (risk.sortino_ratio(r, 0.001), ep.sortino_ratio(r, required_return=0.001)),
        "downside": (risk.downside_risk(r), ep.downside_risk(r)),
        "max_drawdown": (risk.max_drawdown(r), ep.max_drawdown(r)),
        "calmar": (risk.calmar_ratio(r), ep.calmar_ratio(r)),
        "tracking_error": (risk.tracking_error(r, b), ep.annual_volatility(r - b)),
        "information_ratio": (risk.information_ratio(r, b), ep.excess_sharpe(r, b) * math.sqrt(252)),
        "alpha": (risk.alpha_beta(r, b)[0], ep.alpha(r, b)),
        "beta": (risk.alpha_beta(r, b)[1], ep.beta(r, b)),
        "var": (risk.value_at_risk(r), ep.value_at_risk(r)),
        "var_1pct": (risk.value_at_risk(r, 0.01), ep.value_at_risk(r, 0.01)),
        "cvar": (risk.conditional_value_at_risk(r), ep.conditional_value_at_risk(r)),
        "hit_rate": (risk.hit_rate(r, b), ep.batting_average(pd.Series(r), pd.Series(b))["batting average"]),
        "up_capture": (risk.up_capture(r, b), ep.up_capture(pd.Series(r), pd.Series(b))),
        "down_capture": (risk.down_capture(r, b), ep.down_capture(pd.Series(r), pd.Series(b))),
    }
    bad = {k: v for k, v in checks.items() if not _close(*v)}
    assert not bad, bad


@settings(max_examples=60, deadline=None)
@given(
    # daily returns on a 1e-8 grid (0.0001 bps): realistic values, not denormal noise such as 1e-15, where
    # a ratio of two rounding errors (e.g. a Sharpe of -126 vs -123) says nothing about either implementation
    r=st.lists(st.integers(-20_000_000, 20_000_000).map(lambda x: x * 1e-8), min_size=2, max_size=60),
    shift=st.floats(-0.01, 0.01),
)
def test_metrics_equal_empyrical_on_random_series(r, shift):
    r = np.array(r)
    b = r[::-1] * 0.5 + shift
    pairs = [
        (risk.annual_return(r), ep.annual_return(r)),
        (risk.annual_volatility(r), ep.annual_volatility(r)),
        (risk.sharpe_ratio(r), ep.sharpe_ratio(r)),
        (risk.sortino_ratio(r), ep.sortino_ratio(r)),
        (risk.max_drawdown(r), ep.max_drawdown(r)),
        (risk.calmar_ratio(r), ep.calmar_ratio(r)),
        (risk.alpha_beta(r, b)[1], ep.beta(r, b)),
        (risk.value_at_risk(r), ep.value_at_risk(r)),
        (risk.conditional_value_at_risk(r), ep.conditional_value_at_risk(r)),
        (risk.information_ratio(r, b), ep.excess_sharpe(r, b) * math.sqrt(252)),
    ]
    assert all(_close(a, e) for a, e in pairs), pairs


def test_edge_cases_empty_one_row_flat():
    empty, one, flat = np.array([]), np.array([0.01]), np.full(10, 0.001)
    assert math.isnan(risk.annual_return(empty)) and math.isnan(ep.annual_return(empty))
    assert math.isnan(risk.annual_volatility(one)) and math.isnan(risk.sharpe_ratio(one))
    assert math.isnan(risk.max_drawdown(empty))
    # flat positive returns: zero dispersion -> Sharpe +inf (empyrical's convention), no drawdown -> Calmar nan
    assert risk.sharpe_ratio(flat) == ep.sharpe_ratio(flat) == np.inf
    assert risk.max_drawdown(flat) == 0.0 and math.isnan(risk.calmar_ratio(flat))
    assert risk.drawdown_dates(flat, range(10)) == {"peak_date": None, "trough_date": None, "recovery_date": None}


def test_inputs_are_not_mutated():
    r, b = _series(9, 50)
    r0, b0 = r.copy(), b.copy()
    risk.metrics(r, b, list(range(50)))
    assert np.array_equal(r, r0) and np.array_equal(b, b0)


def test_drawdown_dates_by_hand():
    # Values after each day: 1.10, 0.99, 0.891, 1.0692, 1.1227. Peak 1.10 (day 0), trough 0.891 (day 2):
    # max drawdown 0.891/1.1 - 1 = -19%; first back at >= 1.10 on day 4 (1.0692 * 1.05 = 1.12266).
    r = [0.10, -0.10, -0.10, 0.20, 0.05]
    days = [dt.date(2026, 3, d) for d in (2, 3, 4, 5, 6)]
    assert risk.max_drawdown(r) == pytest.approx(-0.19, abs=1e-15)
    assert risk.drawdown_dates(r, days) == {"peak_date": days[0], "trough_date": days[2], "recovery_date": days[4]}
    # a loss on the first day: the peak is the start value (reported as the first day); never recovered
    assert risk.drawdown_dates([-0.05, 0.01], days[:2]) == {"peak_date": days[0], "trough_date": days[0],
                                                         "recovery_date": None}  # fmt: skip


def test_parametric_var_and_cvar_by_hand():
    # returns 1%, -1%, 2%, -2%: mean 0, sample std √((1+1+4+4)e-4 / 3) = √(10/3)·1e-2
    r = [0.01, -0.01, 0.02, -0.02]
    sd = math.sqrt(10 / 3) * 0.01
    z = sps.norm.ppf(0.05)  # -1.6449
    assert risk.parametric_var(r) == pytest.approx(sd * z, abs=1e-15)
    assert risk.parametric_cvar(r) == pytest.approx(-sd * sps.norm.pdf(z) / 0.05, abs=1e-15)
    assert risk.parametric_cvar(r) < risk.parametric_var(r) < 0


@pytest.fixture(scope="module")
def two_day_lake(tmp_path_factory, files_at):
    return write_two_day_lake(files_at, tmp_path_factory.mktemp("risk"))


def test_daily_returns_and_peer_table(two_day_lake):
    # P1: day 1 2.5%, day 2 0.2% (tests/test_attribution.py hand calculation); P2 holds the benchmark: 1.5%, 1.0%
    con = two_day_lake.connect()
    s = risk.daily_returns(con)
    p1 = s.filter(pl.col("portfolio_id") == "P1").sort("date")
    assert p1["r_p"].to_list() == pytest.approx([0.025, 0.002], abs=1e-15)
    assert p1["r_b"].to_list() == pytest.approx([0.015, 0.010], abs=1e-15)
    p2 = s.filter(pl.col("portfolio_id") == "P2")
    assert (p2["r_p"] - p2["r_b"]).abs().max() < 1e-15
    table = risk.peer_table(s)
    assert table["portfolio_id"].to_list() == ["P1", "P2"]  # P1 has the better IR (P2's is undefined)
    row = table.row(0, named=True)
    assert row["total_return"] == pytest.approx(1.025 * 1.002 - 1, abs=1e-15)
    assert row["active_return"] == pytest.approx(0.0019, abs=1e-15)
    assert row["hit_rate"] == 0.5 and row["rank_ir"] == 1
    only = risk.daily_returns(con, dt.date(2026, 3, 3), dt.date(2026, 3, 3), ["P1"])
    assert only.height == 1 and only["r_p"][0] == pytest.approx(0.002, abs=1e-15)


def test_risk_cli(two_day_lake, run_cli, tmp_path):
    out = tmp_path / "risk.jsonl"
    p = run_cli("risk", "--portfolio", "P1", "--lake", str(two_day_lake.root), "--out", str(out))
    assert p.returncode == 0, p.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["portfolio_id"] == "P1" and rows[0]["source_version"] == "lake@1"
    assert set(risk.METRIC_COLUMNS) <= set(rows[0])
    assert rows[0]["active_return"] == pytest.approx(0.0019, abs=1e-15)
