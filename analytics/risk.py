"""Risk-adjusted returns of portfolios against their benchmarks, and the peer comparison table.

Conventions (matching empyrical-reloaded 0.7, ``empyrical.stats``, so its functions are the test oracle):

* Inputs are daily simple returns (decimals), not log returns; a day is the EVENTS.md period (start-of-day weights
  earn that day's returns). Annualisation: ``TRADING_DAYS_PER_YEAR`` = 252 (analytics/conventions.py).
* annual_return: geometric (CAGR), (Π(1+r))^(252/n) - 1.
* annual_volatility: sample standard deviation (ddof 1) × √252.
* sharpe_ratio: mean(r - rf) / std(r - rf, ddof 1) × √252 (0 dispersion -> ±inf/nan as empyrical).
* sortino_ratio: mean(r - MAR) × 252 / downside_risk, downside_risk = √(mean(min(r - MAR, 0)²)) × √252.
* tracking_error: std(r_p - r_b, ddof 1) × √252 (= empyrical.annual_volatility of the active returns).
* information_ratio: mean(r_p - r_b) / std(r_p - r_b, ddof 1) × √252 (= empyrical.excess_sharpe × √252;
  empyrical's own is not annualised).
* max_drawdown: the most negative (V_t - peak_t)/peak_t of V = Π(1+r) with the start (V = 1) as first peak;
  negative decimal. Its dates: ``peak_date`` (the last day whose close set the peak, or the first day when the peak
  is the start value), ``trough_date``, ``recovery_date`` (first day back at the peak; None if never).
* calmar_ratio: annual_return / |max_drawdown| (nan when there is no drawdown).
* alpha/beta: beta = cov(r_p, r_b) / var(r_b) (population moments); alpha = (1 + mean(r_p - β r_b))^252 - 1.
* VaR/CVaR (one day, decimal returns, negative = loss, cutoff 5%): historical VaR = the 5th percentile
  (numpy linear interpolation); historical CVaR = mean of the int((n-1)·0.05) + 1 worst days (empyrical).
  Parametric (Gaussian): VaR = μ + σ z_c, CVaR = μ - σ φ(z_c)/c with σ the sample std (ddof 1), z_c = Φ⁻¹(c).
* hit_rate: share of days the portfolio beat its benchmark (empyrical.batting_average's "batting average").
* up/down capture: annual_return of the portfolio on days the benchmark was up (down) over the benchmark's
  annual_return on those days (empyrical.up_capture / down_capture).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import polars as pl
from scipy import stats

from analytics.conventions import TRADING_DAYS_PER_YEAR as ANN
from analytics.store import query

CUTOFF = 0.05  # VaR/CVaR tail probability
CODE_VERSION = "risk-1"


def _a(x) -> np.ndarray:
    return np.asarray(x, dtype=float)


def annual_return(r, ann: int = ANN) -> float:
    r = _a(r)
    if r.size < 1:
        return float("nan")
    return float(np.prod(1 + r) ** (ann / r.size) - 1)


def annual_volatility(r, ann: int = ANN) -> float:
    r = _a(r)
    return float(np.std(r, ddof=1) * np.sqrt(ann)) if r.size >= 2 else float("nan")


def _std(x: np.ndarray) -> float:
    return 0.0 if x.max() == x.min() else float(np.std(x, ddof=1))


def sharpe_ratio(r, risk_free: float = 0.0, ann: int = ANN) -> float:
    x = _a(r) - risk_free
    if x.size < 2:
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.divide(x.mean(), _std(x)) * np.sqrt(ann))


def downside_risk(r, required_return: float = 0.0, ann: int = ANN) -> float:
    x = _a(r)
    if x.size < 1:
        return float("nan")
    return float(np.sqrt(np.mean(np.minimum(x - required_return, 0.0) ** 2)) * np.sqrt(ann))


def sortino_ratio(r, required_return: float = 0.0, ann: int = ANN) -> float:
    x = _a(r)
    if x.size < 2:
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.divide((x - required_return).mean() * ann, downside_risk(x, required_return, ann)))


def tracking_error(r, b, ann: int = ANN) -> float:
    return annual_volatility(_a(r) - _a(b), ann)


def information_ratio(r, b, ann: int = ANN) -> float:
    x = _a(r) - _a(b)
    if x.size < 2:
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.divide(x.mean(), _std(x)) * np.sqrt(ann))


def drawdown(r) -> np.ndarray:
    """Drawdown after each day: (V_t - max(1, V_1..V_t)) / max(1, V_1..V_t), decimal, <= 0."""
    v = np.concatenate([[1.0], np.cumprod(1 + _a(r))])
    peak = np.maximum.accumulate(v)
    return ((v - peak) / peak)[1:]


def max_drawdown(r) -> float:
    r = _a(r)
    return float(drawdown(r).min()) if r.size else float("nan")


def drawdown_dates(r, dates) -> dict:
    """``peak_date, trough_date, recovery_date`` of the maximum drawdown (see the module docstring)."""
    r = _a(r)
    dates = list(dates)
    if r.size == 0 or drawdown(r).min() >= 0:
        return {"peak_date": None, "trough_date": None, "recovery_date": None}
    v = np.concatenate([[1.0], np.cumprod(1 + r)])
    dd = drawdown(r)
    trough = int(np.argmin(dd))  # index into r
    peak_v = np.maximum.accumulate(v)[trough + 1]
    at_peak = np.flatnonzero(v[: trough + 2] >= peak_v)
    peak_i = int(at_peak[-1])  # index into v (0 = start)
    after = np.flatnonzero(v[trough + 2 :] >= peak_v)
    return {
        "peak_date": dates[max(peak_i - 1, 0)],
        "trough_date": dates[trough],
        "recovery_date": dates[trough + 1 + int(after[0])] if after.size else None,
    }


def calmar_ratio(r, ann: int = ANN) -> float:
    mdd = max_drawdown(r)
    if not mdd < 0:
        return float("nan")
    out = annual_return(r, ann) / abs(mdd)
    return float("nan") if np.isinf(out) else out


def alpha_beta(r, b, risk_free: float = 0.0, ann: int = ANN) -> tuple[float, float]:
    """(annualised alpha, beta) of ``r`` on ``b`` (see the module docstring)."""
    y, x = _a(r) - risk_free, _a(b) - risk_free
    if y.size < 2:
        return float("nan"), float("nan")
    xr = x - x.mean()
    var = float(np.mean(xr**2))
    beta = float(np.mean(xr * y) / var) if var >= 1e-30 else float("nan")
    return float((1 + np.mean(y - beta * x)) ** ann - 1), beta


def value_at_risk(r, cutoff: float = CUTOFF) -> float:
    r = _a(r)
    return float(np.percentile(r, 100 * cutoff)) if r.size else float("nan")


def conditional_value_at_risk(r, cutoff: float = CUTOFF) -> float:
    r = _a(r)
    r = r[~np.isnan(r)]
    if r.size == 0:
        return float("nan")
    k = int((r.size - 1) * cutoff)
    return float(np.mean(np.partition(r, k)[: k + 1]))


def parametric_var(r, cutoff: float = CUTOFF) -> float:
    r = _a(r)
    if r.size < 2:
        return float("nan")
    return float(r.mean() + np.std(r, ddof=1) * stats.norm.ppf(cutoff))


def parametric_cvar(r, cutoff: float = CUTOFF) -> float:
    r = _a(r)
    if r.size < 2:
        return float("nan")
    return float(r.mean() - np.std(r, ddof=1) * stats.norm.pdf(stats.norm.ppf(cutoff)) / cutoff)


def hit_rate(r, b) -> float:
    x = _a(r) - _a(b)
    x = x[np.isfinite(x)]
    return float((x > 0).mean()) if x.size else float("nan")


def _capture(r, b, mask) -> float:
    rb = annual_return(_a(b)[mask])
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.divide(annual_return(_a(r)[mask]), rb))


def up_capture(r, b) -> float:
    return _capture(r, b, _a(b) > 0)


def down_capture(r, b) -> float:
    return _capture(r, b, _a(b) < 0)


METRIC_COLUMNS = (
    "days", "total_return", "benchmark_total_return", "active_return", "annual_return", "benchmark_annual_return",
    "annual_volatility", "sharpe_ratio", "sortino_ratio", "information_ratio", "tracking_error", "max_drawdown",
    "peak_date", "trough_date", "recovery_date", "calmar_ratio", "alpha", "beta", "var_hist", "cvar_hist",
    "var_param", "cvar_param", "hit_rate", "up_capture", "down_capture",
)  # fmt: skip


def metrics(r, b, dates, risk_free: float = 0.0) -> dict:
    """Every metric of the module docstring for daily portfolio returns ``r`` against benchmark returns ``b``."""
    r, b = _a(r), _a(b)
    alpha, beta = alpha_beta(r, b, risk_free)
    tr, tb = float(np.prod(1 + r) - 1), float(np.prod(1 + b) - 1)
    return {
        "days": int(r.size),
        "total_return": tr,
        "benchmark_total_return": tb,
        "active_return": tr - tb,
        "annual_return": annual_return(r),
        "benchmark_annual_return": annual_return(b),
        "annual_volatility": annual_volatility(r),
        "sharpe_ratio": sharpe_ratio(r, risk_free),
        "sortino_ratio": sortino_ratio(r, risk_free),
        "information_ratio": information_ratio(r, b),
        "tracking_error": tracking_error(r, b),
        "max_drawdown": max_drawdown(r),
        **drawdown_dates(r, dates),
        "calmar_ratio": calmar_ratio(r),
        "alpha": alpha,
        "beta": beta,
        "var_hist": value_at_risk(r),
        "cvar_hist": conditional_value_at_risk(r),
        "var_param": parametric_var(r),
        "cvar_param": parametric_cvar(r),
        "hit_rate": hit_rate(r, b),
        "up_capture": up_capture(r, b),
        "down_capture": down_capture(r, b),
    }


def daily_returns(
    con: duckdb.DuckDBPyConnection,
    start: dt.date | None = None,
    end: dt.date | None = None,
    portfolios: list[str] | None = None,
    benchmark: str | None = None,
) -> pl.DataFrame:
    """``date, portfolio_id, strategy, benchmark_id, r_p, r_b``: each portfolio's and its benchmark's daily return
    (Σ w r over the start-of-day weights dated D and the returns dated D, base currency; a name with no return
    earns 0) on the days both have weights. ``benchmark`` overrides every portfolio's own benchmark."""
    lo = start or dt.date(1900, 1, 1)
    hi = end or dt.date(2999, 12, 31)
    # One aggregate pass per side (no window): a portfolio given by market values only (no weights) uses
    # Σ mv r / Σ mv. Ingest keeps one row per natural key, so nothing is deduplicated here.
    sql = """
    WITH r AS (SELECT date, symbol, (1 + "return") * (1 + coalesce(fx_return, 0.0)) - 1 AS r
               FROM returns WHERE date BETWEEN ? AND ?),
    pf AS (SELECT portfolio_id, strategy, coalesce(?, benchmark_id) AS benchmark_id FROM portfolios),
    p AS (SELECT h.date, h.portfolio_id,
                 CASE WHEN count(h.weight) = count(*) THEN sum(h.weight * coalesce(r.r, 0.0))
                      ELSE sum(h.market_value * coalesce(r.r, 0.0)) / sum(h.market_value) END AS r_p
          FROM holdings h LEFT JOIN r ON r.date = h.date AND r.symbol = h.symbol
          WHERE h.date BETWEEN ? AND ? AND (? IS NULL OR h.portfolio_id IN (SELECT unnest(?::VARCHAR[])))
          GROUP BY ALL),
    b AS (SELECT bw.date, bw.benchmark_id, sum(bw.weight * coalesce(r.r, 0.0)) AS r_b
          FROM benchmark_weights bw LEFT JOIN r ON r.date = bw.date AND r.symbol = bw.symbol
          WHERE bw.date BETWEEN ? AND ? AND bw.benchmark_id IN (SELECT benchmark_id FROM pf) GROUP BY ALL)
    SELECT p.date, p.portfolio_id, pf.strategy, pf.benchmark_id, p.r_p, b.r_b
    FROM p JOIN pf USING (portfolio_id) JOIN b ON b.date = p.date AND b.benchmark_id = pf.benchmark_id
    ORDER BY p.portfolio_id, p.date"""
    ids = list(portfolios) if portfolios else None
    return query(con, sql, [lo, hi, benchmark, lo, hi, ids, ids, lo, hi])


def peer_table(series: pl.DataFrame, risk_free: float = 0.0) -> pl.DataFrame:
    """One row per portfolio (``daily_returns`` rows) with every metric, ranked: ``rank_ir`` by information ratio,
    ``rank_sharpe`` by Sharpe ratio (1 = best), and ``percentile_ir`` (share of peers it beats, 0-1)."""
    rows = []
    for (pid,), g in series.sort("portfolio_id", "date").partition_by("portfolio_id", as_dict=True).items():
        m = metrics(g["r_p"].to_numpy(), g["r_b"].to_numpy(), g["date"].to_list(), risk_free)
        rows.append({"portfolio_id": pid, "strategy": g["strategy"][0], "benchmark_id": g["benchmark_id"][0], **m})
    schema = {"portfolio_id": pl.String, "strategy": pl.String, "benchmark_id": pl.String}
    if not rows:
        return pl.DataFrame(schema=schema)
    df = pl.DataFrame(rows, infer_schema_length=None)
    n = df.height
    return (
        df.with_columns(
            pl.col("information_ratio").fill_nan(None).rank("min", descending=True).cast(pl.Int64).alias("rank_ir"),
            pl.col("sharpe_ratio").fill_nan(None).rank("min", descending=True).cast(pl.Int64).alias("rank_sharpe"),
            ((n - pl.col("information_ratio").fill_nan(None).rank("max", descending=True)) / max(n - 1, 1)).alias(
                "percentile_ir"
            ),
        )
        .select("portfolio_id", "strategy", "benchmark_id", "rank_ir", "rank_sharpe", "percentile_ir", *METRIC_COLUMNS)
        .sort("rank_ir", nulls_last=True)
    )
