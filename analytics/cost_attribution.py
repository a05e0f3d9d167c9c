"""Cost attribution and recommendations from the stored TCA rows.

Decomposition (currency, then bps of paper notional; the parts sum exactly to ``is_total_cost``):
- spread: each fill against the mid prevailing at the fill, s (p_j - m_j) q_j (crossing / half-spread);
- impact & timing: each fill's mid against arrival, s (m_j - P0) q_j (our impact plus drift while trading);
- delay: s (P0 - Pd) Q; opportunity: s (Pn - P0) unfilled; fees: commissions + fees + taxes.

Recommendations compare choices (algo, broker) on comparable orders: within the same size bucket
(% ADV), each choice's mean arrival cost against the bucket's best choice, with a Welch-style normal 95%
interval for the difference. p-values are Holm-adjusted across every comparison made, and only differences
significant at 5% after adjustment, with at least ``min_orders`` orders on each side, become sentences.
"""

from __future__ import annotations

import math

import polars as pl

from analytics.conventions import BPS
from analytics.tca import with_buckets

COMPONENTS = {
    "spread": "trading_spread_cost",
    "impact_timing": "trading_impact_cost",
    "delay": "is_delay_cost",
    "opportunity": "is_opportunity_cost",
    "fees": "is_fees",
}


def decompose(orders: pl.DataFrame, by: str | None = None) -> pl.DataFrame:
    """IS components in bps of paper notional (sum over orders of currency / sum of paper notional), per
    value of ``by`` (or one row for all), with ``total_bps`` = their sum = Σ is_total_cost / Σ paper notional."""
    keys = [by] if by else []
    paper = pl.col("paper_notional").sum()
    aggs = [(pl.col(c).sum() / paper * BPS).alias(f"{k}_bps") for k, c in COMPONENTS.items()]
    aggs += [(pl.col("is_total_cost").sum() / paper * BPS).alias("total_bps"), pl.len().alias("orders")]
    out = orders.group_by(keys).agg(aggs) if keys else orders.select(aggs)
    return out.sort(keys) if keys else out


def _p_two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def _holm(p: list[float]) -> list[float]:
    order = sorted(range(len(p)), key=lambda i: p[i])
    adj, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adj[i] = running
    return adj


def compare(
    orders: pl.DataFrame,
    choice: str = "algo",
    metric: str = "arrival_cost_bps",
    within: str = "size_bucket",
    min_orders: int = 30,
    alpha: float = 0.05,
) -> pl.DataFrame:
    """For each ``within`` bucket, each ``choice`` against the bucket's cheapest choice: difference of mean
    ``metric`` (bps, positive = costlier than the best), its 95% interval, raw and Holm-adjusted p-values,
    ``significant`` and a plain-English ``finding``. Choices with fewer than ``min_orders`` orders in a
    bucket are left out of that bucket."""
    d = with_buckets(orders) if within not in orders.columns else orders
    stats = (
        d.filter(pl.col(metric).is_not_null() & pl.col(within).is_not_null())
        .group_by(within, choice)
        .agg(pl.len().alias("n"), pl.col(metric).mean().alias("mean"), pl.col(metric).var().alias("var"))
        .filter(pl.col("n") >= min_orders)
    )
    best = (
        stats.sort("mean")
        .group_by(within, maintain_order=True)
        .first()
        .select(
            within,
            pl.col(choice).alias("best"),
            pl.col("mean").alias("best_mean"),
            pl.col("var").alias("best_var"),
            pl.col("n").alias("best_n"),
        )
    )
    cmp = stats.join(best, on=within).filter(pl.col(choice) != pl.col("best"))
    if cmp.is_empty():
        return pl.DataFrame(
            schema={
                within: pl.String,
                choice: pl.String,
                "best": pl.String,
                "diff_bps": pl.Float64,
                "significant": pl.Boolean,
                "finding": pl.String,
            }
        )
    cmp = cmp.with_columns(
        (pl.col("mean") - pl.col("best_mean")).alias("diff_bps"),
        (pl.col("var") / pl.col("n") + pl.col("best_var") / pl.col("best_n")).sqrt().alias("se"),
    ).with_columns(
        (pl.col("diff_bps") - 1.959963984540054 * pl.col("se")).alias("diff_lo"),
        (pl.col("diff_bps") + 1.959963984540054 * pl.col("se")).alias("diff_hi"),
    )
    p = [_p_two_sided(d_ / s) if s and s > 0 else 1.0 for d_, s in zip(cmp["diff_bps"], cmp["se"], strict=True)]
    cmp = cmp.with_columns(pl.Series("p_value", p), pl.Series("p_holm", _holm(p)))
    cmp = cmp.with_columns((pl.col("p_holm") < alpha).alias("significant"))
    finding = pl.format(
        "Orders {}: {} cost {} bps (±{}) less than {} on comparable orders (n = {} vs {}, Holm p = {})",
        pl.col(within),
        pl.col("best"),
        pl.col("diff_bps").round(1),
        (1.959963984540054 * pl.col("se")).round(1),
        pl.col(choice),
        pl.col("best_n"),
        pl.col("n"),
        pl.col("p_holm").round(4),
    )
    return cmp.with_columns(pl.when(pl.col("significant")).then(finding).alias("finding")).sort(
        "p_holm", "diff_bps", descending=[False, True]
    )
