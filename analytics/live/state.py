"""Live TCA of the current day: working orders and today's venue / broker / algo board, from the day's events.

Pure, set-based Polars functions over the typed frames of :class:`analytics.live.book.DayBook`. The engine calls
them after every batch of received events, so every event is in the state at the next refresh. Definitions are
those of ``analytics/tca.py`` (TCACompletedEvent, EVENTS.md), evaluated on what has arrived so far:

- side sign s = +1 BUY, -1 SELL; costs positive when the client is worse off, in bps (1e4 x decimal).
- ``arrival_price`` P0: NBBO mid (bid + ask) / 2 prevailing at the order's NEW (last quote with ts <= NEW of the
  same day; before the day's first quote, the first quote). Recomputed on every refresh, so a quote delivered
  late (out of order) still sets the arrival price it would set in batch.
- ``decision_price`` Pd: the decision's ``decision_price``, else the mid prevailing at the decision's ts, else P0.
- ``order_qty`` Q: the latest REPLACE quantity, else the NEW's. ``filled_qty``, ``avg_fill_price`` over the
  fills received so far.
- ``end_price`` Pn: for an ended order (CANCEL/DONE received), the mid prevailing at its first CANCEL/DONE; for
  a working order the latest mid (mark to market: the opportunity cost if it stopped now); with ``final`` (end of
  day) an order that never ended is marked at its last fill, as in batch.
- Implementation shortfall so far (Perold 1988, split as Wagner), currency: delay s (P0 - Pd) Q, trading
  s sum_j (p_j - P0) q_j, opportunity s (Pn - P0) (Q - filled), fees (commission + fees of the fills: the
  execution-time estimates; settlements arrive after the day); ``is_*_bps`` = the same / (Pd Q) x 1e4.
- ``arrival_cost_bps`` = s (avg_fill_price - P0) / P0 x 1e4.
- ``interval_vwap`` = VWAP of market prints with NEW < ts <= end (end = the order's end, or the event clock while
  it works); ``vwap_interval_cost_bps`` = s (avg_fill_price - interval_vwap) / interval_vwap x 1e4;
  ``participation_rate`` = filled / market volume of the same interval (decimal).
- ``impact_cost_bps`` = s sum_j (m_j - P0) q_j / sum_j p_j q_j x 1e4 with m_j the mid prevailing at fill j (spread
  excluded): what the impact models predict (``impact_models.impact_cost_bps``).
- ``markout_cost_bps_<h>`` (h = 1 s, 60 s) = quantity-weighted over fills of s (p_j - mid at t_j + h) / p_j x 1e4,
  over the fills whose horizon has elapsed on the event clock (the latest event time received); null until one has.

The event clock (not the wall clock) drives "so far": a replay at any speed gives the same figures. At the end of
the day (``final=True``) every figure equals the batch TCA of the same orders (tests/test_live_state.py).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from analytics.conventions import BPS, horizon_label

LIVE_MARKOUT_HORIZONS_S: tuple[float, ...] = (1, 60)
_US = 1_000_000


def _mids(quotes: pl.DataFrame) -> pl.DataFrame:
    """Mids sorted by (symbol, ts); of quotes with the same ts the ASOF joins take the last (as batch, whose ties are
    in no defined order either)."""
    return quotes.select("symbol", "ts", ((pl.col("bid") + pl.col("ask")) / 2).alias("mid")).sort(
        "symbol", "ts", maintain_order=True
    )


def _asof(left: pl.DataFrame, mids: pl.DataFrame, on: str, out: str) -> pl.DataFrame:
    """``left`` with ``out`` = the mid prevailing at ``left[on]`` (same symbol; the book holds one day)."""
    if left.height == 0:
        return left.with_columns(pl.lit(None, pl.Float64).alias(out))
    m = mids.rename({"ts": "_qts", "mid": out})
    idx = pl.int_range(pl.len()).alias("_row")
    l2 = left.with_columns(idx)
    probe = l2.select("_row", "symbol", pl.col(on).alias("_pts")).filter(pl.col("_pts").is_not_null())
    probe = probe.sort("symbol", "_pts")
    j = probe.join_asof(m, left_on="_pts", right_on="_qts", by="symbol", strategy="backward", check_sortedness=False)
    return l2.join(j.select("_row", out), on="_row", how="left").sort("_row").drop("_row")


def _cum_trades(trades: pl.DataFrame) -> pl.DataFrame:
    """Market prints with running sums cpv = sum(price x size), cv = sum(size) over ts <= this print's ts (ties
    share the sum, as tca.py's RANGE frame)."""
    t = trades.select("symbol", "ts", "price", "size").sort("symbol", "ts")
    t = t.with_columns(
        (pl.col("price") * pl.col("size")).cum_sum().over("symbol").alias("cpv"),
        pl.col("size").cum_sum().over("symbol").alias("cv"),
    )
    return t.group_by("symbol", "ts", maintain_order=True).agg(pl.col("cpv").last(), pl.col("cv").last())


def _asof_sums(left: pl.DataFrame, cum: pl.DataFrame, on: str, suffix: str) -> pl.DataFrame:
    c = cum.rename({"ts": "_tts", "cpv": f"cpv_{suffix}", "cv": f"cv_{suffix}"})
    idx = pl.int_range(pl.len()).alias("_row")
    l2 = left.with_columns(idx)
    probe = l2.select("_row", "symbol", pl.col(on).alias("_pts")).sort("symbol", "_pts")
    j = probe.join_asof(c, left_on="_pts", right_on="_tts", by="symbol", strategy="backward", check_sortedness=False)
    return (
        l2.join(j.select("_row", f"cpv_{suffix}", f"cv_{suffix}"), on="_row", how="left")
        .sort("_row")
        .drop("_row")
        .with_columns(pl.col(f"cpv_{suffix}").fill_null(0.0), pl.col(f"cv_{suffix}").fill_null(0.0))
    )


def _qw(col: str) -> pl.Expr:
    """Quantity-weighted mean of ``col`` over the rows where it is known (null when none is)."""
    known = pl.col(col).is_not_null()
    den = pl.col("quantity").filter(known).sum()
    return pl.when(den > 0).then((pl.col(col) * pl.col("quantity")).filter(known).sum() / den).alias(col)


def _orders(orders: pl.DataFrame, decisions: pl.DataFrame) -> pl.DataFrame:
    new = orders.filter(pl.col("action") == "NEW").sort("ts").unique("order_id", keep="first", maintain_order=True)
    rep = (
        orders.filter((pl.col("action") == "REPLACE") & pl.col("quantity").is_not_null())
        .group_by("order_id")
        .agg(pl.col("quantity").sort_by("ts").last().alias("rep_qty"))
    )
    term = (
        orders.filter(pl.col("action").is_in(["CANCEL", "DONE"]))
        .group_by("order_id")
        .agg(pl.col("ts").min().alias("term_ts"), pl.col("action").sort_by("ts").first().alias("end_action"))
    )
    dec = decisions.group_by("decision_id").agg(
        pl.col("ts").first().alias("decision_ts"), pl.col("decision_price").first().alias("decision_price_given")
    )
    pov = pl.col("algo_params").str.json_path_match("$.target_pov").cast(pl.Float64, strict=False)
    return (
        new.select(
            "order_id",
            "symbol",
            "side",
            "broker",
            "algo",
            "decision_id",
            "urgency",
            pl.col("ts").alias("arrival_ts"),
            pl.col("quantity").alias("new_qty"),
            pov.alias("target_pov"),
            pl.when(pl.col("side") == "BUY").then(1.0).otherwise(-1.0).alias("s"),
        )
        .join(rep, on="order_id", how="left")
        .join(term, on="order_id", how="left")
        .join(dec, on="decision_id", how="left")
        .with_columns(pl.coalesce("rep_qty", "new_qty").alias("order_qty"))
        .drop("rep_qty", "new_qty")
    )


def fill_marks(
    fills: pl.DataFrame,
    orders: pl.DataFrame,
    mids: pl.DataFrame,
    clock: dt.datetime | None,
    final: bool,
    horizons: tuple[float, ...] = LIVE_MARKOUT_HORIZONS_S,
) -> pl.DataFrame:
    """Per fill of a known order: the order's s, P0, broker, algo; the mid at the fill and at t + h once t + h <=
    the event clock (every horizon with ``final``); ``arrival_cost_bps`` = s (p - P0) / P0 x 1e4 and
    ``markout_cost_bps_<h>`` = s (p - mid_h) / p x 1e4."""
    f = fills.unique("event_id", keep="first").join(
        orders.select("order_id", "s", "arrival_price", "broker", "algo"), on="order_id", how="inner"
    )
    f = _asof(f, mids, "ts", "mid")
    for h in horizons:
        lab = horizon_label(h)
        at = pl.col("ts") + pl.duration(microseconds=round(h * _US))
        elapsed = pl.lit(True) if final or clock is None else at <= pl.lit(clock)
        f = f.with_columns(pl.when(elapsed).then(at).alias(f"_t_{lab}"))
        f = _asof(f, mids, f"_t_{lab}", f"mid_{lab}").drop(f"_t_{lab}")
        f = f.with_columns((pl.col("s") * (pl.col("price") - pl.col(f"mid_{lab}")) / pl.col("price") * BPS).alias(
            f"markout_cost_bps_{lab}"
        ))  # fmt: skip
    return f.with_columns(
        (pl.col("s") * (pl.col("price") - pl.col("arrival_price")) / pl.col("arrival_price") * BPS).alias(
            "arrival_cost_bps"
        ),
        (pl.coalesce(pl.col("commission"), pl.lit(0.0)) + pl.coalesce(pl.col("fees"), pl.lit(0.0))).alias("explicit"),
    )


def live_tca(
    orders: pl.DataFrame,
    fills: pl.DataFrame,
    quotes: pl.DataFrame,
    trades: pl.DataFrame,
    decisions: pl.DataFrame,
    clock: dt.datetime | None,
    final: bool = False,
    horizons: tuple[float, ...] = LIVE_MARKOUT_HORIZONS_S,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per-order state, per-fill marks) of the day so far. See the module docstring for every definition.
    ``clock``: the event clock (latest event ts received); ``final``: end of day (batch semantics)."""
    o = _orders(orders, decisions)
    mids = _mids(quotes)
    # Arrival: the mid prevailing at NEW, else the day's first quote of the symbol (the opening quote).
    first = mids.group_by("symbol").agg(pl.col("mid").first().alias("first_mid"))
    o = _asof(o, mids, "arrival_ts", "arr_mid").join(first, on="symbol", how="left")
    o = o.with_columns(pl.coalesce("arr_mid", "first_mid").alias("arrival_price")).drop("arr_mid", "first_mid")
    fm = fill_marks(fills, o, mids, clock, final, horizons)
    hz = [horizon_label(h) for h in horizons]
    agg = fm.group_by("order_id").agg(
        pl.col("quantity").sum().alias("filled_qty"),
        (pl.col("price") * pl.col("quantity")).sum().alias("pv"),
        (pl.col("mid") * pl.col("quantity")).sum().alias("mid_pv"),
        pl.col("explicit").sum().alias("is_fees"),
        pl.len().alias("fill_count"),
        pl.col("ts").max().alias("last_fill_ts"),
        *[
            _qw(f"markout_cost_bps_{h}") for h in hz
        ],
    )  # fmt: skip
    o = o.join(agg, on="order_id", how="left").with_columns(
        pl.col("filled_qty").fill_null(0.0), pl.col("pv").fill_null(0.0), pl.col("is_fees").fill_null(0.0),
        pl.col("fill_count").fill_null(0),
    )  # fmt: skip
    working = pl.col("term_ts").is_null()
    end_ts = pl.coalesce("term_ts", "last_fill_ts", "arrival_ts") if final else pl.col("term_ts")
    latest = mids.group_by("symbol").agg(pl.col("mid").last().alias("last_mid"))
    o = o.with_columns(working.alias("working"), end_ts.alias("end_ts"))
    o = _asof(o, mids, "end_ts", "end_mid").join(latest, on="symbol", how="left")
    o = _asof(o, mids, "decision_ts", "dec_mid")
    clock_lit = pl.lit(clock, pl.Datetime("us", "UTC")) if clock is not None else pl.col("arrival_ts")
    o = o.with_columns(
        pl.coalesce("end_mid", "last_mid").alias("end_price"),
        pl.coalesce("decision_price_given", "dec_mid", "arrival_price").alias("decision_price"),
        pl.coalesce("end_ts", pl.max_horizontal(clock_lit, "arrival_ts")).alias("_iv_end"),
    )
    cum = _cum_trades(trades)
    o = _asof_sums(o, cum, "arrival_ts", "a")
    o = _asof_sums(o, cum, "_iv_end", "e")
    s, q, p0, pd = pl.col("s"), pl.col("order_qty"), pl.col("arrival_price"), pl.col("decision_price")
    filled, pv = pl.col("filled_qty"), pl.col("pv")
    unfilled = pl.max_horizontal(q - filled, pl.lit(0.0))
    avg = pl.when(filled > 0).then(pv / filled)
    ivol = pl.col("cv_e") - pl.col("cv_a")
    ivwap = pl.when(ivol > 0).then((pl.col("cpv_e") - pl.col("cpv_a")) / ivol)
    o = o.with_columns(
        avg.alias("avg_fill_price"),
        ivwap.alias("interval_vwap"),
        ivol.alias("interval_volume"),
        unfilled.alias("unfilled_qty"),
        (s * (p0 - pd) * q).alias("is_delay_cost"),
        (s * (pv - p0 * filled)).alias("is_trading_cost"),
        (s * (pl.col("end_price") - p0) * unfilled).alias("is_opportunity_cost"),
        (pd * q).alias("paper_notional"),
    )
    o = o.with_columns(
        (pl.col("is_delay_cost") + pl.col("is_trading_cost") + pl.col("is_opportunity_cost") + pl.col("is_fees")).alias(
            "is_total_cost"
        ),
        (s * (pl.col("avg_fill_price") - p0) / p0 * BPS).alias("arrival_cost_bps"),
        (s * (pl.col("avg_fill_price") - pl.col("interval_vwap")) / pl.col("interval_vwap") * BPS).alias(
            "vwap_interval_cost_bps"
        ),
        pl.when(ivol > 0).then(filled / ivol).alias("participation_rate"),
        pl.when(pv > 0).then(s * (pl.col("mid_pv") - p0 * filled) / pv * BPS).alias("impact_cost_bps"),
        (filled / q).alias("fill_rate"),
    )
    o = o.with_columns(
        *[
            (pl.col(c) / pl.col("paper_notional") * BPS).alias(c.replace("_cost", "_bps").replace("is_fees", "is_fees_bps"))
            for c in ("is_delay_cost", "is_trading_cost", "is_opportunity_cost", "is_total_cost", "is_fees")
        ]
    )  # fmt: skip
    cols = [
        "order_id", "symbol", "side", "broker", "algo", "urgency", "working", "end_action", "arrival_ts", "end_ts",
        "target_pov", "order_qty", "filled_qty", "unfilled_qty", "fill_rate", "fill_count", "decision_price",
        "arrival_price", "avg_fill_price", "end_price", "interval_vwap", "interval_volume", "participation_rate",
        "is_delay_cost", "is_trading_cost", "is_opportunity_cost", "is_fees", "is_total_cost", "paper_notional",
        "is_delay_bps", "is_trading_bps", "is_opportunity_bps", "is_fees_bps", "is_total_bps", "arrival_cost_bps",
        "vwap_interval_cost_bps", "impact_cost_bps", *[f"markout_cost_bps_{h}" for h in hz],
    ]  # fmt: skip
    return o.select(cols).sort("arrival_ts", "order_id"), fm


BOARD_DIMENSIONS = ("venue", "broker", "algo")


def board(fill_marks_df: pl.DataFrame, horizons: tuple[float, ...] = LIVE_MARKOUT_HORIZONS_S) -> pl.DataFrame:
    """Today's board, one row per (dimension, key) for venue, broker and algo: ``orders``, ``fills``, ``shares``,
    ``notional``; ``arrival_cost_bps`` = fill notional-weighted mean of the fills' s (p - P0) / P0 x 1e4 (as
    ``tca.venue_costs``); ``markout_cost_bps_<h>`` quantity-weighted over the fills whose horizon has elapsed, with
    ``markout_fills_<h>`` the number of such fills."""
    hz = [horizon_label(h) for h in horizons]
    if fill_marks_df.height == 0:
        schema = {"dimension": pl.String, "key": pl.String, "orders": pl.UInt32, "fills": pl.UInt32,
                  "shares": pl.Float64, "notional": pl.Float64, "arrival_cost_bps": pl.Float64}  # fmt: skip
        for h in hz:
            schema |= {f"markout_cost_bps_{h}": pl.Float64, f"markout_fills_{h}": pl.UInt32}
        return pl.DataFrame(schema=schema)
    f = fill_marks_df.with_columns((pl.col("price") * pl.col("quantity")).alias("_n"))
    parts = []
    for d in BOARD_DIMENSIONS:
        parts.append(
            f.group_by(pl.col(d).alias("key"))
            .agg(
                pl.col("order_id").n_unique().alias("orders"),
                pl.len().alias("fills"),
                pl.col("quantity").sum().alias("shares"),
                pl.col("_n").sum().alias("notional"),
                ((pl.col("arrival_cost_bps") * pl.col("_n")).sum() / pl.col("_n").sum()).alias("arrival_cost_bps"),
                *[
                    e
                    for h in hz
                    for e in (
                        _qw(f"markout_cost_bps_{h}"),
                        pl.col(f"markout_cost_bps_{h}").is_not_null().sum().alias(f"markout_fills_{h}"),
                    )
                ],
            )
            .with_columns(pl.lit(d).alias("dimension"))
        )
    out = pl.concat(parts, how="diagonal_relaxed")
    return out.select("dimension", "key", *[c for c in out.columns if c not in ("dimension", "key")]).sort(
        "dimension", "key"
    )
