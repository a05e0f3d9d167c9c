"""Market impact from the stored TCA rows: temporary vs permanent, the post-trade reversion curve, and a
fitted square-root law.

Per order (see tca.py, all side-signed bps of the arrival mid): ``impact_during_bps`` = mid move arrival ->
end, ``permanent_impact_bps`` = arrival -> end + 30 min, ``temporary_impact_bps`` = during - permanent (what
reverted), ``reversion_bps_<h>`` = end -> end + h.

Square-root law (Almgren et al. 2005; Torre's "square-root model"; Kissell's I-Star has the same shape):
``cost_bps = c + Y * sigma_bps * sqrt(Q / ADV)`` with sigma_bps the daily volatility in bps and Q / ADV the order's
share of average daily volume. ``c`` absorbs the half-spread. Fitted by ordinary least squares over orders,
refitted with the residuals winsorised at their 1st/99th percentiles until the fit stops moving (one wild order must not
move the law), with heteroscedasticity-robust (HC1) standard errors and a normal 95% interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from analytics.conventions import BPS, POST_TRADE_HORIZONS_S, horizon_label
from analytics.tca import weighted_mean_ci

Z95 = 1.959963984540054
PARTICIPATION_BUCKETS = (0.02, 0.05, 0.10, 0.20, 0.30)
PARTICIPATION_LABELS = ("<2%", "2-5%", "5-10%", "10-20%", "20-30%", ">30%")


@dataclass(frozen=True)
class SqrtFit:
    coefficient: float  # Y
    se: float
    lo: float
    hi: float
    intercept: float  # c, bps
    n: int
    r2: float
    y: str

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.intercept + self.coefficient * x


def sqrt_x(orders: pl.DataFrame) -> pl.Expr:
    """The law's regressor: daily volatility in bps times the square root of size as a share of ADV."""
    return (pl.col("daily_volatility") * BPS * pl.col("size_pct_adv").sqrt()).alias("sqrt_x")


def fit_sqrt_law(orders: pl.DataFrame, y: str = "arrival_cost_bps") -> SqrtFit | None:
    """OLS of ``y`` on sigma_bps * sqrt(Q/ADV) with an intercept, HC1 robust errors. None with < 30 orders."""
    d = (
        orders.select(sqrt_x(orders), pl.col(y))
        .drop_nulls()
        .filter(pl.col("sqrt_x").is_finite() & pl.col(y).is_finite())
    )
    if d.height < 30:
        return None
    x = d["sqrt_x"].to_numpy()
    X = np.column_stack([np.ones_like(x), x])
    y0 = d[y].to_numpy()
    # Robust to a wild order without biasing the slope: winsorise the first fit's residuals at their 1st/99th
    # percentiles (not y itself, whose extremes carry the signal), then refit.
    beta, *_ = np.linalg.lstsq(X, y0, rcond=None)
    for _ in range(50):  # iterate to the fixed point (a Huber-like M-estimate), usually a handful of steps
        r0 = y0 - X @ beta
        yy = X @ beta + np.clip(r0, np.percentile(r0, 1), np.percentile(r0, 99))
        new, *_ = np.linalg.lstsq(X, yy, rcond=None)
        done = np.allclose(new, beta, rtol=1e-10, atol=1e-10)
        beta = new
        if done:
            break
    resid = yy - X @ beta
    n, k = X.shape
    xtx_inv = np.linalg.inv(X.T @ X)
    meat = X.T @ (X * (resid**2)[:, None])
    cov = xtx_inv @ meat @ xtx_inv * n / (n - k)  # HC1
    se = float(np.sqrt(cov[1, 1]))
    ss_tot = float(((yy - yy.mean()) ** 2).sum())
    r2 = 1 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else 0.0
    b = float(beta[1])
    return SqrtFit(b, se, b - Z95 * se, b + Z95 * se, float(beta[0]), n, r2, y)


def buckets(
    orders: pl.DataFrame,
    by: str = "participation_rate",
    metrics: tuple[str, ...] = ("arrival_cost_bps", "permanent_impact_bps", "temporary_impact_bps"),
) -> pl.DataFrame:
    """Mean of each of ``metrics`` (equal-weighted over orders, 95% intervals) per bucket of participation
    rate (or of ``size_pct_adv``), with the order count and the bucket's mean law regressor."""
    if by == "participation_rate":
        cut = pl.col(by).bin_intervals(list(PARTICIPATION_BUCKETS), labels=list(PARTICIPATION_LABELS))
    else:
        from analytics.tca import SIZE_BUCKETS, SIZE_LABELS

        cut = pl.col(by).bin_intervals(list(SIZE_BUCKETS), labels=list(SIZE_LABELS))
    d = orders.filter(pl.col(by).is_not_null()).with_columns(cut.cast(pl.String).alias("bucket"), sqrt_x(orders))
    one = pl.lit(1.0)
    aggs = []
    for col in dict.fromkeys(metrics):
        m, lo, hi, _ = weighted_mean_ci(pl.col(col), one)
        aggs += [m.alias(col), lo.alias(f"{col}_lo"), hi.alias(f"{col}_hi")]
    return (
        d.group_by("bucket")
        .agg(
            *aggs,
            pl.len().alias("orders"),
            pl.col("sqrt_x").mean().alias("sqrt_x"),
            pl.col(by).mean().alias(f"mean_{by}"),
        )
        .sort(f"mean_{by}")
    )


def reversion_curve(orders: pl.DataFrame) -> pl.DataFrame:
    """Mean post-trade mid move after the order's end at each horizon (side-signed bps; negative = the price
    came back = temporary impact), with 95% intervals. Horizon 0 is the end itself."""
    rows = [pl.DataFrame({"horizon_s": [0.0], "mean": [0.0], "lo": [0.0], "hi": [0.0], "n": [orders.height]})]
    for h in POST_TRADE_HORIZONS_S:
        col = f"reversion_bps_{horizon_label(h)}"
        agg = orders.select(*weighted_mean_ci(pl.col(col), pl.lit(1.0)))
        rows.append(agg.with_columns(pl.lit(float(h)).alias("horizon_s")).select("horizon_s", "mean", "lo", "hi", "n"))
    return pl.concat(rows, how="vertical_relaxed").rename({"mean": "reversion_bps"})
