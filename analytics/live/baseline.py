"""Trailing baselines of today's venue / broker / algo board (issue 17, item 3).

For the live day D, the baseline window is the ``days`` (default 20) most recent ORDER DAYS of the lake before D
(``Lake.order_days``: days with stored order events; weekends and holidays without orders do not count). Over the
stored batch TCA of those days (``tca.ensure`` computes what is missing, then ``tca.load_orders`` /
``tca.load_fills`` read it; nothing else of the lake is read), per venue, broker and algo:

- ``base_arrival_cost_bps`` = fill-notional-weighted mean of the fills' s (p - P0) / P0 x 1e4 (bps, + = cost; the
  board's ``arrival_cost_bps`` definition), weights p x q;
- ``base_markout_cost_bps_60s`` = quantity-weighted mean of the fills' s (p - mid_{t+60s}) / p x 1e4;
- each with an order-clustered 95% interval (``_lo``, ``_hi``: ``tca.clustered_mean_ci`` with cluster = parent order,
  t_{G-1} quantile; null with fewer than 2 orders), ``base_fills``, ``base_orders`` and ``base_days`` (days with
  fills of the key in the window).

The baseline is computed once at engine start and at each new day (in a background thread: the intake never waits
for it) and stays fixed for the day.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from analytics import tca
from analytics.filters import Filters
from analytics.live.state import BOARD_DIMENSIONS

BASELINE_DAYS = 20
BASE_MEASURES = {  # board column -> weight of the fill-level mean
    "arrival_cost_bps": pl.col("p") * pl.col("q"),
    "markout_cost_bps_60s": pl.col("q"),
}
SCHEMA = {
    "dimension": pl.String,
    "key": pl.String,
    **{f"base_{m}{s}": pl.Float64 for m in BASE_MEASURES for s in ("", "_lo", "_hi")},
    "base_fills": pl.UInt32,
    "base_orders": pl.UInt32,
    "base_days": pl.UInt32,
}


def empty() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def window(order_days: list[dt.date], day: dt.date, days: int = BASELINE_DAYS) -> list[dt.date]:
    """The ``days`` most recent of ``order_days`` strictly before ``day``, ascending."""
    return sorted(d for d in order_days if d < day)[-days:]


def from_fills(fills: pl.DataFrame) -> pl.DataFrame:
    """The baseline table (module docstring) of stored TCA fills (tca.py's columns order_id, ts, venue, broker, algo,
    p = price, q = quantity, arrival_cost_bps, markout_cost_bps_60s): one row per (dimension, key)."""
    if fills.height == 0:
        return empty()
    parts = []
    for d in BOARD_DIMENSIONS:
        f = fills.filter(pl.col(d).is_not_null()).with_columns(pl.col(d).cast(pl.String).alias("key"))
        counts = f.group_by("key").agg(
            pl.len().cast(pl.UInt32).alias("base_fills"),
            pl.col("order_id").n_unique().cast(pl.UInt32).alias("base_orders"),
            pl.col("ts").dt.date().n_unique().cast(pl.UInt32).alias("base_days"),
        )
        for m, w in BASE_MEASURES.items():
            ci = tca.clustered_mean_ci(f, m, w, by=["key"], cluster="order_id").select(
                "key",
                pl.col("mean").alias(f"base_{m}"),
                pl.col("lo").alias(f"base_{m}_lo"),
                pl.col("hi").alias(f"base_{m}_hi"),
            )
            counts = counts.join(ci, on="key", how="left")
        parts.append(counts.with_columns(pl.lit(d).alias("dimension")))
    return pl.concat(parts, how="diagonal_relaxed").select(list(SCHEMA)).cast(SCHEMA).sort("dimension", "key")


def compute(lake, day: dt.date, days: int = BASELINE_DAYS) -> pl.DataFrame:
    """The baseline of ``day`` from the lake's stored TCA of its trailing window (module docstring); empty when the
    lake has no order day before ``day``."""
    win = window(lake.order_days(end=day - dt.timedelta(days=1)), day, days)
    if not win:
        return empty()
    version = tca.ensure(lake, win[0], win[-1])
    f = Filters(start=win[0], end=win[-1])
    con = lake.connect(lake.manifest(version))
    try:
        orders = tca.load_orders(lake, con, f, version=version)
        if orders.height == 0:
            return empty()
        orders = orders.filter(pl.col("arrival_ts").dt.date().is_in(win))
        fills = tca.load_fills(lake, con, f, orders, version=version)
    finally:
        con.close()
    return from_fills(fills) if fills.height else empty()


def with_baseline(board: pl.DataFrame, base: pl.DataFrame) -> pl.DataFrame:
    """Today's board with the baseline columns beside each (dimension, key) (null where the key has no history)."""
    return board.join(base, on=["dimension", "key"], how="left")
