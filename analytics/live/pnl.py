"""Intraday P&L of each portfolio / strategy from live mids, and its drawdown from the day's peak (issue 17, item 4).

Scope: the fills received today of orders whose NEW names a decision (``decision_id``) of the portfolio
(``decisions.portfolio_id, strategy``); orders without a known decision belong to no portfolio. With s = +1 for BUY,
-1 for SELL, q the fill quantity and p its price, at time t (the event clock):

    pnl(t)      = Σ_{fills with ts <= t} s · (mid_sym(t) - p) · q      (currency; + = the trades made money)
                = Σ_sym [pos_sym(t) · mid_sym(t) - cash_sym(t)],  pos = Σ s q, cash = Σ s p q
    notional(t) = Σ_{fills with ts <= t} p · q                          (currency, traded notional)
    pnl_bps(t)  = pnl(t) / notional(t) x 1e4

mid_sym(t) is the symbol's latest mid (bid + ask) / 2 at or before t; a symbol not yet quoted at t is marked at its
latest fill price. The P&L is the mark-to-market of today's trades only (not of positions held from before).

Drawdown: ``peak`` is the running maximum of pnl over a grid of event-clock times (every ``sample_s`` seconds, the
multiples of sample_s since midnight UTC) from the first fill, and the current value; drawdown = peak - pnl(clock)
>= 0 (currency) and drawdown_bps = drawdown / notional(clock) x 1e4. The grid makes the peak independent of how
often the engine refreshes (a replay at any speed gives the same peaks); each grid time is evaluated once, with the
events received by then (a fill delivered after a grid time it precedes does not revise that time's sample).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from analytics.conventions import BPS

KEYS = ["portfolio_id", "strategy"]
_US = 1_000_000
MAX_SAMPLES = 20_000  # grid times evaluated in one refresh (a clock jump of a whole day at 5 s is 17 280)


def strategy_fills(fills: pl.DataFrame, orders: pl.DataFrame, decisions: pl.DataFrame) -> pl.DataFrame:
    """Per fill (deduplicated on event_id) of an order whose decision is known: portfolio_id, strategy, symbol, ts,
    s, q, p."""
    new = orders.filter(pl.col("action") == "NEW").sort("ts").unique("order_id", keep="first")
    dec = decisions.group_by("decision_id").agg(pl.col("portfolio_id").first(), pl.col("strategy").first())
    o = new.select("order_id", "decision_id", pl.when(pl.col("side") == "BUY").then(1.0).otherwise(-1.0).alias("s"))
    return (
        fills.unique("event_id", keep="first")
        .join(o, on="order_id", how="inner")
        .join(dec, on="decision_id", how="inner")
        .select(*KEYS, "symbol", "ts", "s", pl.col("quantity").alias("q"), pl.col("price").alias("p"))
    )


def pnl_at(sf: pl.DataFrame, quotes: pl.DataFrame, times: list[dt.datetime]) -> pl.DataFrame:
    """pnl, notional and pnl_bps (module docstring) per (portfolio_id, strategy) at each of ``times`` (column
    ``t``), for the keys with a fill at or before t."""
    schema = {"portfolio_id": pl.String, "strategy": pl.String, "t": pl.Datetime("us", "UTC"), "pnl": pl.Float64,
              "notional": pl.Float64, "pnl_bps": pl.Float64}  # fmt: skip
    if sf.height == 0 or not times:
        return pl.DataFrame(schema=schema)
    cum = sf.sort("ts").with_columns(
        (pl.col("s") * pl.col("q")).cum_sum().over(*KEYS, "symbol").alias("pos"),
        (pl.col("s") * pl.col("p") * pl.col("q")).cum_sum().over(*KEYS, "symbol").alias("cash"),
        (pl.col("p") * pl.col("q")).cum_sum().over(*KEYS, "symbol").alias("ntl"),
    )
    # ties in ts: the last row of a (key, symbol, ts) carries the sums of all of them
    cum = cum.group_by(*KEYS, "symbol", "ts", maintain_order=True).agg(
        pl.col("pos").last(), pl.col("cash").last(), pl.col("ntl").last(), pl.col("p").last().alias("last_p")
    )
    grid = (
        cum.select(*KEYS, "symbol")
        .unique()
        .join(pl.DataFrame({"t": times}, schema={"t": pl.Datetime("us", "UTC")}), how="cross")
        .sort("t")
    )
    g = grid.join_asof(
        cum.sort("ts"), left_on="t", right_on="ts", by=[*KEYS, "symbol"], strategy="backward", check_sortedness=False
    ).filter(pl.col("pos").is_not_null())
    mids = quotes.select("symbol", "ts", ((pl.col("bid") + pl.col("ask")) / 2).alias("mid")).sort("ts")
    g = g.sort("t").join_asof(
        mids.rename({"ts": "_qts"}), left_on="t", right_on="_qts", by="symbol", strategy="backward",
        check_sortedness=False,
    )  # fmt: skip
    mark = pl.coalesce("mid", "last_p")
    return (
        g.group_by(*KEYS, "t")
        .agg((pl.col("pos") * mark - pl.col("cash")).sum().alias("pnl"), pl.col("ntl").sum().alias("notional"))
        .with_columns((pl.col("pnl") / pl.col("notional") * BPS).alias("pnl_bps"))
        .select(list(schema))
        .sort(*KEYS, "t")
    )


def grid_times(start: dt.datetime, end: dt.datetime, sample_s: float) -> list[dt.datetime]:
    """The multiples of ``sample_s`` seconds since midnight UTC of ``start``'s day in (start, end] (at most
    MAX_SAMPLES, the latest)."""
    midnight = dt.datetime.combine(start.date(), dt.time(), dt.UTC)
    step = round(sample_s * _US)
    a = int((start - midnight) / dt.timedelta(microseconds=1)) // step + 1
    b = int((end - midnight) / dt.timedelta(microseconds=1)) // step
    a = max(a, b - MAX_SAMPLES + 1)
    return [midnight + dt.timedelta(microseconds=k * step) for k in range(a, b + 1)]


class DrawdownTracker:
    """The day's running peaks per (portfolio_id, strategy) on the event-clock grid (module docstring)."""

    def __init__(self, sample_s: float):
        self.sample_s = float(sample_s)
        self.sampled_to: dt.datetime | None = None  # the latest grid time evaluated
        self.peaks = pl.DataFrame(schema={"portfolio_id": pl.String, "strategy": pl.String, "peak": pl.Float64})

    def update(self, sf: pl.DataFrame, quotes: pl.DataFrame, clock: dt.datetime | None) -> pl.DataFrame:
        """Sample the grid times in (sampled_to, clock], fold them into the peaks; returns per key the current
        ``pnl, notional, pnl_bps`` at ``clock`` with ``peak`` (including the current value), ``drawdown`` and
        ``drawdown_bps``."""
        if clock is None or sf.height == 0:
            return (
                pnl_at(sf, quotes, [])
                .drop("t")
                .with_columns(*(pl.lit(None, pl.Float64).alias(c) for c in ("peak", "drawdown", "drawdown_bps")))
            )
        start = self.sampled_to or (sf["ts"].min() - dt.timedelta(microseconds=1))
        times = grid_times(start, clock, self.sample_s) if clock > start else []
        if times:
            s = pnl_at(sf, quotes, times).group_by(KEYS).agg(pl.col("pnl").max().alias("peak"))
            self.peaks = (
                pl.concat([self.peaks, s], how="vertical_relaxed").group_by(KEYS).agg(pl.col("peak").max()).sort(KEYS)
            )
            self.sampled_to = times[-1]
        cur = pnl_at(sf, quotes, [clock]).drop("t").join(self.peaks, on=KEYS, how="left")
        peak = pl.max_horizontal("peak", "pnl")
        return cur.with_columns(peak.alias("peak")).with_columns(
            (pl.col("peak") - pl.col("pnl")).alias("drawdown"),
            ((pl.col("peak") - pl.col("pnl")) / pl.col("notional") * BPS).alias("drawdown_bps"),
        )
