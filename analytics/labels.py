"""Outcome labels: the desk's five classes ``excellent | good | neutral | poor | bad`` for executions and decisions.

Both labels threshold a *standardized residual* ``z`` (positive = worse than expected) at the cut points of
:class:`LabelThresholds`, the one place the desk's thresholds live:

    z < -1.5 excellent · -1.5 <= z < -0.5 good · -0.5 <= z <= 0.5 neutral · 0.5 < z <= 1.5 poor · z > 1.5 bad

Execution outcome (per parent order). ``z_exec = (is_total_bps - expected_cost_bps) / expected_cost_sd_bps``:
realized implementation shortfall (Perold 1988, bps of the paper notional, positive = cost, tca.py) against the
order's pre-trade expected cost and its uncertainty. The expectation comes from a pluggable
:class:`CostEstimator`; until issue 8's models exist the default is :class:`SquareRootEstimator`, the
square-root law (Almgren et al. 2005; Tóth et al. 2011; Kissell's I-Star has the same shape):

    expected_cost_bps = intercept_bps + spread_share * spread_bps + Y * sigma_bps * sqrt(size_pct_adv)
    expected_cost_sd_bps = sqrt((spread_bps / 2)^2 + sigma_bps^2 * (delay_days + T_days / 3))  (floored)

with sigma_bps the daily volatility in bps, T_days the planned duration in trading days (algo_params horizon /
390 min; 0.1 day when unknown) and delay_days decision -> arrival. The variance term is Almgren & Chriss's
(2000) timing risk of a linear schedule (sigma^2 T / 3) plus the price risk carried while waiting. Defaults:
Y = 0.5, spread_share = 0.5, intercept 0 (a documented round value of the order-one coefficient the
literature reports); :meth:`SquareRootEstimator.fit` replaces Y and the intercept by
:func:`analytics.impact.fit_sqrt_law` on the dataset's own orders (the intercept then absorbs the half spread) when that slope's 95% interval is
above zero, and keeps the defaults otherwise (a small or noisy sample must not produce a negative law).
Every input is a point-in-time feature (features.py), and a dataset fits the law walk-forward
(:class:`WalkForwardEstimator`: each day's rows from the orders of earlier days only), so the expectation is what
was knowable at arrival.

Decision outcome (per decision). ``realized_return_bps`` = s (P_h - Pd) / Pd * 1e4, Pd the decision price and
P_h the close ``horizon_days`` daily bars after the decision's day (the paper portfolio's return);
``decision_net_bps`` = realized_return_bps - horizon IS = the real portfolio's return at P_h (Perold 1988: paper
and real portfolio valued at one price). The horizon IS is TCA's IS with the unfilled shares valued at P_h instead
of the cancel mid Pn (:func:`horizon_is_bps`):

    horizon_is_bps = is_total_bps - is_opportunity_bps + (realized_return_bps - is_delay_bps) * unfilled / Q

(s (P_h - P0) / Pd = s (P_h - Pd) / Pd - s (P0 - Pd) / Pd, P0 the arrival mid), so decision_net_bps = (s (P_h -
avg fill) filled - fees) / (Pd Q) * 1e4: an unfilled order earns nothing, whatever the stock did after the cancel
(valuing the unfilled shares at Pn in the IS and at P_h in the paper return labelled an unfilled buy whose stock
rallied "excellent"). ``z_dec = (alpha_bps - decision_net_bps) / (sigma_bps * sqrt(horizon_days))``, positive when
the decision fell short of its expected alpha by more than its horizon's noise. Null (label ``pending``) until the
horizon's bar exists.

Decision rows (one per trading decision, whether or not it led to an order; :func:`decision_outcomes`) use the
same z with ``execution_cost_bps`` in place of is_total_bps, chosen by ``cost_source``:

- ``realized``: the decision led to order(s) with a realized IS: their horizon IS in bps (the IS at the cancel
  mid while the horizon is pending), weighted by paper notional Pd * Q (so one order is exactly its horizon IS);
- ``expected``: the decision led to no order: the pre-trade estimate (the same :class:`CostEstimator` as the
  execution label, on the decision's point-in-time features: its quantity % ADV, spread, volatility; unknown
  duration -> the default 0.1 day, no delay). The label then says how good the decision was *had it been
  executed at the expected cost* (a paper decision is judged on the same scale as a traded one; the flag keeps
  it tellable apart, and ``realized_return_bps`` keeps the gross return);
- ``unavailable``: it led to an order whose realized cost is not in the dataset (the order arrived outside the
  dataset's dates, or its IS is not finite): ``decision_net_bps`` and the label stay null rather than guess.

Until the horizon's bar exists the label is ``pending`` whatever the cost source.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol

import polars as pl

from analytics.conventions import BPS

CODE_VERSION = "labels-2"  # 2: decision net at one evaluation price (horizon IS)
CLASSES: tuple[str, ...] = ("excellent", "good", "neutral", "poor", "bad")
PENDING = "pending"  # decision label whose horizon has not elapsed in the lake yet
SESSION_SECONDS = 23_400.0  # 09:30-16:00: one trading day
DEFAULT_DURATION_DAYS = 0.1  # planned duration when the order does not say


@dataclass(frozen=True)
class LabelThresholds:
    """Cut points on the standardized residual z (positive = worse than expected): ``z < cuts[0]`` excellent,
    ``< cuts[1]`` good, ``<= cuts[2]`` neutral, ``<= cuts[3]`` poor, else bad. ``min_sd_bps`` floors the
    uncertainty so a near-zero sigma cannot make every small residual extreme."""

    cuts: tuple[float, float, float, float] = (-1.5, -0.5, 0.5, 1.5)
    min_sd_bps: float = 1.0

    def classify(self, z: pl.Expr) -> pl.Expr:
        c = self.cuts
        return (
            pl.when(z.is_null() | z.is_nan())
            .then(None)
            .when(z < c[0])
            .then(pl.lit("excellent"))
            .when(z < c[1])
            .then(pl.lit("good"))
            .when(z <= c[2])
            .then(pl.lit("neutral"))
            .when(z <= c[3])
            .then(pl.lit("poor"))
            .otherwise(pl.lit("bad"))
        )


THRESHOLDS = LabelThresholds()


class CostEstimator(Protocol):
    """A pre-trade cost model: adds ``expected_cost_bps`` and ``expected_cost_sd_bps`` from point-in-time
    features (spread_bps, daily_volatility, size_pct_adv, planned_duration_s, delay_s)."""

    name: str

    def expected(self, df: pl.DataFrame) -> pl.DataFrame: ...

    def params(self) -> dict: ...


def _sigma_bps() -> pl.Expr:
    return pl.col("daily_volatility") * BPS


@dataclass(frozen=True)
class SquareRootEstimator:
    """Square-root law with Almgren-Chriss timing risk (module docstring)."""

    y: float = 0.5
    intercept_bps: float = 0.0
    spread_share: float = 0.5
    min_sd_bps: float = THRESHOLDS.min_sd_bps
    name: str = "sqrt_law_default"
    fitted_on: int = 0

    @classmethod
    def fit(cls, df: pl.DataFrame, y: str = "is_total_bps") -> SquareRootEstimator:
        """Y and the intercept from :func:`analytics.impact.fit_sqrt_law` on ``df`` (its spread term then
        lives in the intercept); the defaults with fewer than 30 usable orders or a slope whose 95% interval
        reaches zero."""
        from analytics.impact import fit_sqrt_law

        fit = fit_sqrt_law(df.filter(pl.col(y).is_finite()), y=y) if df.height else None
        if fit is None or fit.lo <= 0:  # too few orders, or a slope not clearly positive: the documented default
            return cls()
        return cls(
            y=fit.coefficient, intercept_bps=fit.intercept, spread_share=0.0, name="sqrt_law_fit", fitted_on=fit.n
        )

    def expected(self, df: pl.DataFrame) -> pl.DataFrame:
        t_days = (pl.col("planned_duration_s") / SESSION_SECONDS).fill_null(DEFAULT_DURATION_DAYS).clip(0.0, 1.0)
        delay_days = (pl.col("delay_s").fill_null(0.0).clip(0.0, None) / SESSION_SECONDS).clip(0.0, 1.0)
        spread = pl.col("spread_bps").fill_null(0.0)
        mean = self.intercept_bps + self.spread_share * spread + self.y * _sigma_bps() * pl.col("size_pct_adv").sqrt()
        var = (spread / 2) ** 2 + _sigma_bps() ** 2 * (delay_days + t_days / 3)
        return df.with_columns(
            mean.alias("expected_cost_bps"), var.sqrt().clip(self.min_sd_bps, None).alias("expected_cost_sd_bps")
        )

    def params(self) -> dict:
        return asdict(self)


class WalkForwardEstimator:
    """The square-root law fitted walk-forward: a row of day D (UTC date of ``arrival_ts``, or of ``decision_ts``
    for a decision row) is priced by :meth:`SquareRootEstimator.fit` on the ``history`` orders that arrived
    before D (its defaults while fewer than 30 usable orders precede D), so no label's expectation is fitted on
    its own order or on any later one. ``history``: order rows with arrival_ts, daily_volatility, size_pct_adv
    and ``y`` (default is_total_bps). One fit per distinct day (memoised)."""

    name = "sqrt_law_walk_forward"

    def __init__(self, history: pl.DataFrame, y: str = "is_total_bps"):
        self._y = y
        self._hist = history.select(
            pl.col("arrival_ts").dt.date().alias("_day"), "daily_volatility", "size_pct_adv", y
        ).filter(pl.col("_day").is_not_null())
        self._fits: dict = {}

    def fit_for(self, day) -> SquareRootEstimator:
        """The estimator for rows of ``day`` (a date; None = no history: the defaults)."""
        if day not in self._fits:
            before = self._hist.filter(pl.col("_day") < day) if day is not None else self._hist.head(0)
            self._fits[day] = SquareRootEstimator.fit(before, y=self._y)
        return self._fits[day]

    def expected(self, df: pl.DataFrame) -> pl.DataFrame:
        ts = "arrival_ts" if "arrival_ts" in df.columns else "decision_ts"
        d = df.with_row_index("_wf_row").with_columns(pl.col(ts).dt.date().alias("_wf_day"))
        parts = [
            self.fit_for(key[0]).expected(part)
            for key, part in d.group_by("_wf_day", maintain_order=True)  # one fit per day, not per row
        ]
        return (
            pl.concat(parts).sort("_wf_row").drop("_wf_row", "_wf_day") if parts else SquareRootEstimator().expected(df)
        )

    def params(self) -> dict:
        return {
            "rule": "walk-forward: the square-root law refitted for each day on the orders that arrived before it",
            "days": [
                {
                    "day": str(k),
                    "y": e.y,
                    "intercept_bps": e.intercept_bps,
                    "spread_share": e.spread_share,
                    "fitted_on": e.fitted_on,
                    "name": e.name,
                }
                for k, e in sorted(self._fits.items(), key=lambda kv: (kv[0] is None, str(kv[0])))
            ],
        }


@dataclass(frozen=True)
class LabelDefinition:
    thresholds: LabelThresholds = field(default_factory=LabelThresholds)

    def describe(self, estimator: CostEstimator) -> dict:
        return {
            "classes": list(CLASSES),
            "thresholds": asdict(self.thresholds),
            "execution": "z = (is_total_bps - expected_cost_bps) / expected_cost_sd_bps; positive = costlier than expected",
            "decision": "z = (alpha_bps - (realized_return_bps - is_total_bps)) / (sigma_bps * sqrt(horizon_days)); "
            f"'{PENDING}' until the horizon's bar exists",
            "decision_rows": "the same z with execution_cost_bps for is_total_bps, by cost_source: realized (the "
            "IS of the orders the decision led to, weighted by paper notional) | expected (no order: the pre-trade "
            "estimate at the decision) | unavailable (its order's cost is not in the dataset: null label)",
            "estimator": {"name": estimator.name, **estimator.params()},
            "code_version": CODE_VERSION,
        }


def execution_labels(
    df: pl.DataFrame, estimator: CostEstimator | None = None, thresholds: LabelThresholds = THRESHOLDS
) -> pl.DataFrame:
    """Add ``expected_cost_bps, expected_cost_sd_bps, execution_z, execution_label`` (needs is_total_bps and the
    estimator's features)."""
    est = estimator or SquareRootEstimator()
    out = est.expected(df)
    z = (pl.col("is_total_bps") - pl.col("expected_cost_bps")) / pl.col("expected_cost_sd_bps")
    return out.with_columns(z.alias("execution_z")).with_columns(
        thresholds.classify(pl.col("execution_z")).alias("execution_label")
    )


def horizon_is_bps() -> pl.Expr:
    """The order's implementation shortfall with its unfilled shares valued at the horizon close P_h (bps of the
    paper notional Pd * Q, positive = cost; module docstring): delay + trading + fees as TCA, opportunity
    s (P_h - P0) * unfilled. Needs is_total_bps, is_opportunity_bps, is_delay_bps, fill_rate (filled / Q) and
    realized_return_bps (null until the horizon's bar exists: then null)."""
    unfilled = (1 - pl.col("fill_rate").fill_null(0.0)).clip(0.0, None)
    return (
        pl.col("is_total_bps")
        - pl.col("is_opportunity_bps").fill_null(0.0)
        + (pl.col("realized_return_bps") - pl.col("is_delay_bps")) * unfilled
    )


def decision_labels(
    df: pl.DataFrame, thresholds: LabelThresholds = THRESHOLDS, cost: str | None = None
) -> pl.DataFrame:
    """Add ``decision_net_bps, decision_z, decision_label`` from realized_return_bps (null = horizon not
    reached: label ``pending``), the execution cost (bps, positive = cost; null cost = null net and label),
    alpha_bps, daily_volatility and horizon_days. ``cost``: the column holding the execution cost at the horizon
    close (decision rows: ``execution_cost_bps``); None = an order row's :func:`horizon_is_bps` from its IS
    components."""
    net = pl.col("realized_return_bps") - (horizon_is_bps() if cost is None else pl.col(cost))
    sd = (_sigma_bps() * pl.col("horizon_days").sqrt()).clip(thresholds.min_sd_bps, None)
    z = (pl.col("alpha_bps") - pl.col("decision_net_bps")) / sd
    return (
        df.with_columns(net.alias("decision_net_bps"))
        .with_columns(z.alias("decision_z"))
        .with_columns(
            pl.when(pl.col("realized_return_bps").is_null() & pl.col("alpha_bps").is_not_null())
            .then(pl.lit(PENDING))
            .otherwise(thresholds.classify(pl.col("decision_z")))
            .alias("decision_label")
        )
    )


COST_SOURCES = ("realized", "expected", "unavailable")


def decision_outcomes(
    df: pl.DataFrame, estimator: CostEstimator | None = None, thresholds: LabelThresholds = THRESHOLDS
) -> pl.DataFrame:
    """Decision rows: add ``expected_cost_bps, expected_cost_sd_bps`` (the pre-trade estimate at the decision),
    ``execution_cost_bps`` and ``cost_source`` (module docstring: realized IS when the decision was executed, the
    estimate when it led to no order, null when its order's cost is unknown), then the decision label.

    Needs ``orders`` (how many orders the decision led to), ``realized_cost_bps`` (their notional-weighted IS,
    null when unknown) and the estimator's features (spread_bps, daily_volatility, size_pct_adv)."""
    est = estimator or SquareRootEstimator()
    added = [c for c in ("planned_duration_s", "delay_s") if c not in df.columns]  # not known at a decision
    out = est.expected(df.with_columns(pl.lit(None, pl.Float64).alias(c) for c in added)).drop(added)
    traded = pl.col("orders").fill_null(0) > 0
    source = (
        pl.when(~traded)
        .then(pl.lit("expected"))
        .when(pl.col("realized_cost_bps").is_finite().fill_null(False))
        .then(pl.lit("realized"))
        .otherwise(pl.lit("unavailable"))
    )
    out = out.with_columns(source.alias("cost_source")).with_columns(
        pl.when(pl.col("cost_source") == "realized")
        .then(pl.col("realized_cost_bps"))
        .when(pl.col("cost_source") == "expected")
        .then(pl.col("expected_cost_bps"))
        .alias("execution_cost_bps")
    )
    return decision_labels(out, thresholds, cost="execution_cost_bps")


def distribution(labels: pl.Series) -> dict[str, int]:
    """Rows per class (every class present, zero included), plus ``pending``/null counts when any."""
    counts = {c: 0 for c in CLASSES}
    for k, n in labels.value_counts().iter_rows():
        counts["null" if k is None else k] = int(n)
    return counts
