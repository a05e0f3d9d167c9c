"""Per-order transaction cost analysis: one ``TCACompletedEvent`` row per parent order (EVENTS.md).

Conventions (EVENTS.md): side sign s = +1 BUY, -1 SELL; a cost is positive when the client is worse off:
``cost_bps = s * (price - benchmark) / benchmark * 1e4``. All times UTC; the "day" of an event is its UTC
date (US sessions sit inside one UTC date).

Prices. The quote *prevailing at* time t is the last quote stamped strictly before t, the same day (``ts < t``),
for every probe: an arrival, a decision, a fill, an order's end and a mark at t + h. It is features.py's rule (the
point-in-time features read quotes with ``ts < t``), so TCA and the training features see one book at an event;
a quote stamped at the very microsecond of a fill is often the book's reaction to that fill, which the fill cannot
have met. (TWAP integrates the step function of mids exactly either way.)
- ``arrival_price`` P0: NBBO mid prevailing at the order's NEW (last quote with ts < arrival, same day);
  an order that arrives at or before the day's first quote takes that first mid (the opening quote).
- ``decision_price`` Pd: the decision's ``decision_price``, else the mid prevailing at the decision's ts,
  else P0.
- ``end_price`` Pn: mid prevailing at the order's first CANCEL/DONE, else at its last fill.
- ``interval_vwap``: market trades with arrival < ts <= end. ``day_vwap``: all trades of the arrival day.
  An order that ends on a later UTC day (``multi_day``) gets no interval VWAP, TWAP, PWP, RPM or
  participation (null, not a number computed over one day's running sums).
- ``twap``: time-weighted NBBO mid over [arrival, end], each mid weighted by how long it prevailed.
- ``pwp`` (participation-weighted price): VWAP of market trades after arrival until order_qty / rate shares
  have traded (rate = 10% by default), or until the close when the day's volume runs out
  (``pwp_complete`` = false).
- ``rpm`` (Kissell's relative performance measure, 0-1): the share of the interval's market volume that
  traded at a price worse for the order than its average fill price (trades at exactly that price count
  half). Higher is better: 0.8 means the order beat 80% of the volume.
- ``open_price, close_price, prev_close``: from daily bars.

Implementation shortfall (Perold 1988, split as in Wagner & Edwards 1993 / EVENTS.md), in currency:
``is_delay_cost = s (P0 - Pd) Q``, ``is_trading_cost = s sum_j (p_j - P0) q_j``,
``is_opportunity_cost = s (Pn - P0) unfilled_qty``, ``is_fees`` = commission + fees + taxes (settled values
override the execution-time ones, fill by fill), ``is_total_cost`` = their sum, which equals Perold's
paper-minus-real shortfall ``s (sum_j p_j q_j - Pd filled) + s (Pn - Pd) unfilled + fees``. The ``*_bps``
twins divide by the paper notional Pd * Q. Note: the CFA curriculum's split charges delay only on the filled
shares and measures missed-trade cost from Pd; the totals agree, the parts move (tests show both).

Markouts: ``markout_cost_bps_<h>`` = quantity-weighted over fills of s (p_j - mid at t_j + h) / p_j * 1e4
(positive: the fill paid more than the market soon after). A horizon past the day's last quote is marked at
that last quote (markout to the close), never at the next day's prices.

Post-trade impact, side-signed bps of P0 (positive = the price moved against the order): ``impact_during_bps`` =
s (Pn - P0) / P0; ``permanent_impact_bps`` = s (mid 30 min after the end - P0) / P0 (ATHL 2005's permanent impact
I); ``reverted_after_end_bps`` = s (Pn - mid 30 min after the end) / P0 = during - permanent, the move that came
back after the order ended (+ = it reverted). ``temporary_impact_bps`` is the same number under its former name,
kept because column names are a contract: it is a reversion after the end, NOT ATHL's temporary impact K (which
depends on the trading rate and is paid while trading; impact_models fits K from the realised cost J instead).
``reversion_bps_<h>`` = s (mid at end + h - Pn) / P0 (negative = came back).

Order features used by every later slice: ``participation_rate`` (filled / interval market volume),
``scheduled_participation`` (Kissell's POV = X / (X + V): the filled quantity X against the other participants'
volume V expected in the order's scheduled window [first fill, the algo's end_time if sent, else the order's end];
V = (the day's volume from the daily bar - the desk's own fills in the name that day) x the share of the day's
whole tape volume (every name with an order that day in the computation: all the desk's names in the stored TCA;
in 5-minute buckets) printed inside the window, so the closing cross
counts for an order that runs to the close; the tape is taken to be the consolidated one, desk prints included).
It is the regressor for impact fits and pre-trade participation: ``participation_rate``'s denominator is the
name's own prints in the window, a noisy sample on a thin tape, which biases a fitted exponent towards 0 (errors in
variables),
``size_pct_adv`` (order qty / 20-day ADV before the order's day), ``daily_volatility`` (stdev of the 20
daily log returns before the day, decimal per day), ``spread_at_arrival_bps``, ``arrival_bid`` / ``arrival_ask``
(the NBBO prevailing at arrival, as stored: Rule 605 order types compare limits with it), ``duration_s``,
``fill_count``.
"""

from __future__ import annotations

import bisect
import datetime as dt
import os
import uuid
from dataclasses import dataclass, field

import duckdb
import polars as pl

from analytics.conventions import (
    ADV_WINDOW_DAYS,
    BPS,
    MARKOUT_HORIZONS_S,
    PERMANENT_HORIZON_S,
    POST_TRADE_HORIZONS_S,
    PWP_TARGET_RATE,
    REALIZED_SPREAD_HORIZONS_S,
    horizon_label,
)
from analytics.filters import Filters
from analytics.store import query, quote_ident, sql_literal

# bump when the stored columns or their meaning change: stored results are keyed by it (8: arrival bid/ask for
# Rule 605 order types; 9: ADV, volatility and
# prev_close from the bars before the order's day, so same-day TCA has them; the quote prevailing at t is the
# last one strictly before t; reverted_after_end_bps)
CODE_VERSION = "tca-9"


@dataclass(frozen=True)
class TCAConfig:
    markout_horizons_s: tuple[float, ...] = MARKOUT_HORIZONS_S
    pwp_rate: float = PWP_TARGET_RATE
    adv_days: int = ADV_WINDOW_DAYS
    realized_spread_horizons_s: tuple[float, ...] = REALIZED_SPREAD_HORIZONS_S

    @property
    def mark_horizons_s(self) -> tuple[float, ...]:
        """Every horizon at which a fill's later mid is stored: markouts and Rule 605 realized spreads."""
        return tuple(sorted(set(self.markout_horizons_s) | set(self.realized_spread_horizons_s)))


@dataclass
class TCAResult:
    orders: pl.DataFrame  # one row per parent order
    fills: pl.DataFrame  # one row per fill, with its marks (mid, bid, ask at the fill and at t + h)
    horizons: tuple[float, ...] = field(default_factory=tuple)


def _orders_sql(f: Filters) -> tuple[str, list]:
    where, params = f.where(
        {"symbol": "symbol", "broker": "broker", "algo": "algo", "portfolio": "portfolio_id"}, time_col="arrival_ts"
    )
    sql = f"""
    CREATE OR REPLACE TEMP TABLE _tca_o AS
    WITH rep AS (
        SELECT order_id, arg_max(quantity, ts) AS rep_qty FROM orders
        WHERE action = 'REPLACE' AND quantity IS NOT NULL GROUP BY 1),
    term AS (
        SELECT order_id, min(ts) AS term_ts, arg_min(action, ts) AS term_action FROM orders
        WHERE action IN ('CANCEL', 'DONE') GROUP BY 1),
    dec AS (SELECT decision_id, any_value(ts) AS decision_ts, any_value(decision_price) AS decision_price_given,
                   any_value(portfolio_id) AS portfolio_id, any_value(strategy) AS strategy,
                   any_value(urgency) AS decision_urgency
            FROM decisions GROUP BY 1),
    o AS (
        SELECT n.order_id, n.ts AS arrival_ts, n.symbol, n.side, CASE n.side WHEN 'BUY' THEN 1 ELSE -1 END AS s,
               coalesce(rep.rep_qty, n.quantity) AS order_qty, n.broker, n.algo, n.decision_id, n.trader, n.desk,
               coalesce(n.urgency, dec.decision_urgency) AS urgency, n.limit_price,
               TRY_CAST(json_extract_string(n.algo_params, '$.end_time') AS TIMESTAMPTZ) AS sched_end,
               dec.decision_ts, dec.decision_price_given, dec.portfolio_id, dec.strategy,
               term.term_ts, term.term_action, sec.sector, sec.country
        FROM orders n LEFT JOIN rep USING (order_id) LEFT JOIN term USING (order_id)
        LEFT JOIN dec ON dec.decision_id = n.decision_id
        LEFT JOIN (SELECT symbol, any_value(sector) AS sector, any_value(country) AS country
                   FROM securities GROUP BY 1) sec ON sec.symbol = n.symbol
        WHERE n.action = 'NEW')
    SELECT row_number() OVER (ORDER BY arrival_ts, order_id) AS oid, * FROM o WHERE {where}"""
    return sql, params


# Fills of the selected orders (time-bounded so a year-long lake is not scanned whole) and the latest
# settlement of each (settled explicit costs override the execution-time estimates).
_FILLS_SQL = """
    CREATE OR REPLACE TEMP TABLE _tca_f AS
    WITH f AS (SELECT f.*, o.oid, o.s FROM fills f JOIN _tca_o o USING (order_id) WHERE f.ts >= ? AND f.ts < ?),
    st AS (SELECT fill_id, arg_max(commission, ts) AS commission, arg_max(fees, ts) AS fees,
                  arg_max(taxes, ts) AS taxes FROM settlements
           WHERE ts >= ? AND fill_id IN (SELECT fill_id FROM f) GROUP BY 1)
    SELECT row_number() OVER (ORDER BY f.ts, f.fill_id) AS fid, f.oid, f.fill_id, f.order_id, f.ts, f.symbol,
           f.s, f.quantity AS q, f.price AS p, f.venue, f.liquidity, f.received_ts,
           coalesce(st.commission, f.commission, 0) + coalesce(st.fees, f.fees, 0) + coalesce(st.taxes, 0) AS explicit
    FROM f LEFT JOIN st USING (fill_id)"""


def _quote_integral(quotes: pl.LazyFrame, need: pl.DataFrame) -> pl.DataFrame:
    """Quotes of the needed (symbol, day)s with the running time-integral of the mid:
    integ_k = sum_{i<k} mid_i (t_{i+1} - t_i) in price x microseconds, so that the integral up to any x in
    [t_k, t_{k+1}) is integ_k + mid_k (x - t_k): TWAP over [a, b] = (I(b) - I(a)) / (b - a), two ASOF probes.

    In Polars (a windowed shift + cumulative sum over 20M quotes is ~4x faster here than DuckDB's window
    operator). Rows must be in time order within each (symbol, day): checked, and sorted only when not (a
    Polars window over unsorted rows would silently give wrong values)."""
    q = (
        quotes.select("symbol", "ts", "bid", "ask", "bid_size", "ask_size")
        .with_columns(pl.col("ts").dt.date().alias("day"))
        .join(need.lazy(), on=["symbol", "day"], how="semi")
        .collect()
    )
    in_order = q.select(
        (pl.col("ts").diff().over("symbol", "day").fill_null(dt.timedelta(0)) >= dt.timedelta(0)).all()
    ).item()
    if not in_order:
        q = q.sort("symbol", "ts")
    us = pl.col("ts").dt.epoch("us")
    return (
        q.with_columns(((pl.col("bid") + pl.col("ask")) / 2).alias("mid"))
        .with_columns((pl.col("mid") * (us.shift(-1).over("symbol", "day") - us)).fill_null(0.0).alias("seg"))
        .with_columns((pl.col("seg").cum_sum().over("symbol", "day") - pl.col("seg")).alias("integ"))
        .drop("seg")
    )


# Market trades of the needed (symbol, day)s with running sums per day. RANGE frames give every trade at
# the same timestamp the same running sum, so a probe at time x sees every trade with ts <= x.
_TRADES_SQL = """
    CREATE OR REPLACE TEMP TABLE _tca_t AS
    WITH need AS (SELECT DISTINCT symbol, arrival_ts::DATE AS day FROM _tca_o)
    SELECT t.symbol, t.ts, t.ts::DATE AS day, t.price, t.size,
           sum(t.price * t.size) OVER w AS cpv, sum(t.size) OVER w AS cv
    FROM trades t SEMI JOIN need ON t.symbol = need.symbol AND t.ts::DATE = need.day
    WHERE t.ts >= ? AND t.ts < ?
    WINDOW w AS (PARTITION BY t.symbol, t.ts::DATE ORDER BY t.ts RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"""


# The share of a day's whole tape volume printed inside each order's scheduled window [first fill, end]: the end is
# the algo's scheduled end_time (algo_params) when it sent one (cut short by a CANCEL before it), else the order's
# end. The tape of every needed name summed by 5 minutes (78 rows per session day), F(x) = volume before x / day
# volume with linear interpolation inside x's bucket; share = F(end) - F(first fill^-). The desk's own volume per
# (symbol, day), over ALL its fills (not only the filtered orders'), so that V is the other participants' volume.
_WINDOW_SHARE_SQL = """
    CREATE OR REPLACE TEMP TABLE _tca_share AS
    WITH m AS (SELECT day, time_bucket(INTERVAL 5 MINUTES, ts) AS b, sum(size) AS v FROM _tca_t GROUP BY ALL),
    c AS (SELECT day, b, v, sum(v) OVER (PARTITION BY day ORDER BY b) - v AS before,
                 sum(v) OVER (PARTITION BY day) AS total FROM m),
    w0 AS (SELECT e.oid, o.arrival_ts::DATE AS day, min(f.ts) AS a, e.end_ts, o.sched_end, o.term_action
           FROM _tca_oe e JOIN _tca_o o USING (oid) JOIN _tca_f f USING (oid) GROUP BY ALL),
    w AS (SELECT oid, day, a,
                 CASE WHEN sched_end IS NULL OR sched_end <= a OR sched_end::DATE <> day THEN end_ts
                      WHEN term_action = 'CANCEL' THEN least(sched_end, end_ts)
                      ELSE sched_end END AS z FROM w0),
    fa AS (SELECT w.*, coalesce((c.before + c.v * least(1, (epoch_us(w.a) - epoch_us(c.b)) / 3e8)) / c.total, 0) AS fa
           FROM w ASOF LEFT JOIN c ON c.day = w.day AND w.a >= c.b),
    fz AS (SELECT fa.*, coalesce((c.before + c.v * least(1, (epoch_us(fa.z) - epoch_us(c.b)) / 3e8)) / c.total, 0) AS fz
           FROM fa ASOF LEFT JOIN c ON c.day = fa.day AND fa.z >= c.b)
    SELECT oid, greatest(fz - fa, 0) AS window_share FROM fz;
    CREATE OR REPLACE TEMP TABLE _tca_desk AS
    SELECT symbol, ts::DATE AS day, sum(quantity) AS desk_volume FROM fills
    WHERE ts >= $lo AND ts < $hi AND symbol IN (SELECT DISTINCT symbol FROM _tca_o) GROUP BY ALL"""


RECEIPT_K = 10_000  # the probe of a fill's received_ts (fills' k >= 0, beyond any horizon index)


def _probes_sql(horizons: tuple[float, ...]) -> str:
    """Every time at which a mid is needed, stacked into one relation for ONE ASOF join (TOOLCHAIN.md):
    k = 0 at the fill, k = i for the i-th horizon, k = RECEIPT_K at the fill's received_ts; orders: -1 arrival, -2 end, -3 decision, -10 - i the i-th
    post-trade horizon after the end."""
    post_probes = " ".join(
        f"UNION ALL SELECT symbol, end_ts::DATE, end_ts + INTERVAL (CAST({round(h * 1e6)} AS BIGINT)) MICROSECONDS, "
        f"oid, {-10 - i} FROM _tca_oe"
        for i, h in enumerate(POST_TRADE_HORIZONS_S)
    )
    fill_probes = " UNION ALL ".join(
        f"SELECT symbol, ts::DATE AS day, ts + INTERVAL (CAST({round(h * 1e6)} AS BIGINT)) MICROSECONDS AS pts, "
        f"fid AS id, {i} AS k FROM _tca_f"
        for i, h in enumerate((0.0, *horizons))
    )
    return f"""
    CREATE OR REPLACE TEMP TABLE _tca_p AS
    {fill_probes}
    UNION ALL SELECT symbol, received_ts::DATE, received_ts, fid, {RECEIPT_K} FROM _tca_f WHERE received_ts IS NOT NULL
    UNION ALL SELECT symbol, arrival_ts::DATE, arrival_ts, oid, -1 FROM _tca_o
    UNION ALL SELECT symbol, end_ts::DATE, end_ts, oid, -2 FROM _tca_oe
    UNION ALL SELECT symbol, decision_ts::DATE, decision_ts, oid, -3 FROM _tca_o
              WHERE decision_ts IS NOT NULL AND decision_price_given IS NULL
    {post_probes}"""


def compute(
    con: duckdb.DuckDBPyConnection, filters: Filters | None = None, cfg: TCAConfig | None = None, lake=None
) -> TCAResult:
    """TCA of the orders that arrived in the filter's date range (and match its symbol, broker, algo and
    portfolio filters) over the lake views of ``con``. Set-based: one ASOF join for every mid. With ``lake``
    the quotes are read straight from its date-pruned files."""
    f = filters or Filters()
    cfg = cfg or TCAConfig()
    sql, params = _orders_sql(f)
    con.execute(sql, params)
    span = con.execute(
        """SELECT least(min(arrival_ts), min(decision_ts))::DATE, max(arrival_ts)::DATE, min(arrival_ts),
                  -- fills end with their order's CANCEL/DONE (+1 day of slack); an order never ended: no bound
                  CASE WHEN bool_and(term_ts IS NOT NULL) THEN max(term_ts) + INTERVAL 1 DAY END
           FROM _tca_o"""
    ).fetchone()
    if span is None or span[0] is None:
        return _empty(cfg)
    lo = dt.datetime.combine(span[0], dt.time(), dt.UTC)
    hi = dt.datetime.combine(span[1] + dt.timedelta(days=3), dt.time(), dt.UTC)
    fills_end = span[3] or dt.datetime.max.replace(tzinfo=dt.UTC)
    con.execute(_FILLS_SQL, [span[2], fills_end, span[2]])
    # Order end: first CANCEL/DONE, else last fill, else arrival.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _tca_oe AS
           SELECT o.oid, o.symbol, coalesce(o.term_ts, lf.last_fill_ts, o.arrival_ts) AS end_ts
           FROM _tca_o o LEFT JOIN (SELECT oid, max(ts) AS last_fill_ts FROM _tca_f GROUP BY 1) lf USING (oid)"""
    )
    con.execute(_probes_sql(cfg.mark_horizons_s))
    need = query(con, "SELECT DISTINCT symbol, day FROM _tca_p WHERE day IS NOT NULL")
    if lake is not None:
        files = [str(p) for p in lake.files("quotes", lo.date(), hi.date())]
        src = (
            pl.scan_parquet(files)
            if files
            else pl.LazyFrame(
                schema={
                    "symbol": pl.String,
                    "ts": pl.Datetime("us", "UTC"),
                    "bid": pl.Float64,
                    "ask": pl.Float64,
                    "bid_size": pl.Float64,
                    "ask_size": pl.Float64,
                }
            )
        )
        src = src.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))
    else:
        src = query(
            con, "SELECT symbol, ts, bid, ask, bid_size, ask_size FROM quotes WHERE ts >= ? AND ts < ?", [lo, hi]
        ).lazy()
    con.register("_tca_q", _quote_integral(src, need).to_arrow())
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _tca_m AS
           SELECT p.id, p.k, p.pts, q.mid, q.bid, q.ask, q.bid_size, q.ask_size,
                  q.integ + q.mid * (epoch_us(p.pts) - epoch_us(q.ts)) AS integ_at
           FROM _tca_p p ASOF LEFT JOIN _tca_q q ON p.symbol = q.symbol AND p.day = q.day AND p.pts > q.ts"""
    )
    # Orders arriving before the day's first quote take the day's first quote (the opening quote): a small
    # aggregate over just those (symbol, day)s, not a second ASOF join over every quote.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _tca_open AS
           WITH pre AS (SELECT p.id AS oid, p.symbol, p.day FROM _tca_p p JOIN _tca_m m ON m.id = p.id AND m.k = p.k
                        WHERE p.k = -1 AND m.mid IS NULL),
           first AS (SELECT q.symbol, q.day, arg_min(q.mid, q.ts) AS first_mid, arg_min(q.ask - q.bid, q.ts) AS first_spread,
                            arg_min(q.bid, q.ts) AS first_bid, arg_min(q.ask, q.ts) AS first_ask,
                            arg_min(q.integ, q.ts) AS integ, min(q.ts) AS first_ts
                     FROM _tca_q q SEMI JOIN pre ON q.symbol = pre.symbol AND q.day = pre.day GROUP BY ALL)
           SELECT pre.oid, first.first_mid, first.first_spread, first.first_bid, first.first_ask, first.integ,
                  first.first_ts
           FROM pre JOIN first ON pre.symbol = first.symbol AND pre.day = first.day"""
    )
    con.execute(_TRADES_SQL, [lo, hi])
    # Running trade sums at arrival and end; PWP's target is reached at the first trade whose running volume
    # is >= volume at arrival + order_qty / rate.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _tca_tp AS
           WITH p AS (SELECT o.oid, o.symbol, o.arrival_ts::DATE AS day, o.arrival_ts, e.end_ts, o.order_qty
                      FROM _tca_o o JOIN _tca_oe e USING (oid)),
           a AS (SELECT p.*, coalesce(t.cpv, 0) AS cpv_a, coalesce(t.cv, 0) AS cv_a FROM p
                 ASOF LEFT JOIN _tca_t t ON p.symbol = t.symbol AND p.day = t.day AND p.arrival_ts >= t.ts),
           e AS (SELECT a.*, coalesce(t.cpv, 0) AS cpv_e, coalesce(t.cv, 0) AS cv_e FROM a
                 ASOF LEFT JOIN _tca_t t ON a.symbol = t.symbol AND a.day = t.day AND a.end_ts >= t.ts),
           w AS (SELECT e.*, e.cv_a + e.order_qty / ? AS pwp_target FROM e)
           SELECT w.*, t.cpv AS cpv_w, t.cv AS cv_w FROM w
           ASOF LEFT JOIN _tca_t t ON w.symbol = t.symbol AND w.day = t.day AND w.pwp_target <= t.cv""",
        [cfg.pwp_rate],
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _tca_day AS
           SELECT symbol, day, sum(price * size) AS day_pv, sum(size) AS day_v FROM _tca_t GROUP BY ALL"""
    )
    # The order day's own bar gives the day's open, close and volume (outcomes); ADV, volatility and the previous
    # close come from the bars strictly before the day (point-in-time, as features.py): the statistics of the last
    # adv_days bars up to each bar, taken at the last bar before the order's day, so same-day TCA (before the day's
    # bar exists) keeps them.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _tca_bars AS
           WITH b AS (SELECT symbol, ts::DATE AS day, open, close, volume,
                             ln(close / lag(close) OVER (PARTITION BY symbol ORDER BY ts)) AS lr
                      FROM bars WHERE "interval" = '1d' AND ts < ?)
           SELECT symbol, day, open, close, volume AS day_volume,
                  avg(volume) OVER w AS adv, stddev_samp(lr) OVER w AS vol_d, count(lr) OVER w AS n_lr
           FROM b WINDOW w AS (PARTITION BY symbol ORDER BY day
                               ROWS BETWEEN {int(cfg.adv_days) - 1} PRECEDING AND CURRENT ROW)""",
        [hi],
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _tca_prior AS
           SELECT o.oid, b.close AS prev_close, b.adv, b.vol_d, b.n_lr
           FROM _tca_o o ASOF LEFT JOIN _tca_bars b ON b.symbol = o.symbol AND o.arrival_ts::DATE > b.day"""
    )
    con.execute(_WINDOW_SHARE_SQL, {"lo": lo, "hi": hi})
    fills = _fill_marks(con, cfg.mark_horizons_s, cfg.markout_horizons_s)
    orders = _order_rows(con, cfg)
    return TCAResult(orders=orders, fills=fills, horizons=cfg.markout_horizons_s)


def _fill_marks(
    con: duckdb.DuckDBPyConnection, mark_horizons: tuple[float, ...], markout_horizons: tuple[float, ...]
) -> pl.DataFrame:
    """Per fill: mid, bid, ask and the displayed bid_size, ask_size prevailing at the fill, ``mid_r, bid_r, ask_r``
    prevailing at its ``received_ts`` (Rule 605's time of order receipt; null without one), the mid at t + h
    for every mark horizon (``mid_<h>``,
    markouts and Rule 605 realized-spread horizons), and ``markout_cost_bps_<h>`` for the markout horizons."""
    marks = ", ".join(
        f"max(m.mid) FILTER (WHERE m.k = {i + 1}) AS mid_{horizon_label(h)}" for i, h in enumerate(mark_horizons)
    )
    markouts = ", ".join(
        f"f.s * (f.p - mid_{horizon_label(h)}) / f.p * {BPS} AS markout_cost_bps_{horizon_label(h)}"
        for h in markout_horizons
    )
    return query(
        con,
        f"""CREATE OR REPLACE TEMP TABLE _tca_fm AS
            WITH m AS (SELECT m.id AS fid, max(m.mid) FILTER (WHERE m.k = 0) AS mid, max(m.bid) FILTER (WHERE m.k = 0) AS bid,
                              max(m.ask) FILTER (WHERE m.k = 0) AS ask,
                              max(m.bid_size) FILTER (WHERE m.k = 0) AS bid_size,
                              max(m.ask_size) FILTER (WHERE m.k = 0) AS ask_size,
                              max(m.mid) FILTER (WHERE m.k = {RECEIPT_K}) AS mid_r,
                              max(m.bid) FILTER (WHERE m.k = {RECEIPT_K}) AS bid_r,
                              max(m.ask) FILTER (WHERE m.k = {RECEIPT_K}) AS ask_r, {marks}
                       FROM _tca_m m WHERE m.k >= 0 GROUP BY 1)
            SELECT f.*, m.* EXCLUDE (fid), {markouts},
                   f.s * (f.p - o_arr.arrival_mid) / o_arr.arrival_mid * {BPS} AS arrival_cost_bps
            FROM _tca_f f LEFT JOIN m USING (fid)
            LEFT JOIN (SELECT m.id AS oid, coalesce(m.mid, op.first_mid) AS arrival_mid FROM _tca_m m
                       LEFT JOIN _tca_open op ON op.oid = m.id WHERE m.k = -1) o_arr USING (oid)
            ORDER BY f.ts, f.fill_id;
            SELECT * EXCLUDE (fid, oid) FROM _tca_fm ORDER BY ts, fill_id""",
    )


def _order_rows(con: duckdb.DuckDBPyConnection, cfg: TCAConfig) -> pl.DataFrame:
    hz = [horizon_label(h) for h in cfg.markout_horizons_s]
    mk = ", ".join(
        f"sum(q * markout_cost_bps_{h}) FILTER (WHERE markout_cost_bps_{h} IS NOT NULL) / "
        f"nullif(sum(q) FILTER (WHERE markout_cost_bps_{h} IS NOT NULL), 0) AS markout_cost_bps_{h}"
        for h in hz
    )
    return query(
        con,
        f"""
        WITH fa AS (SELECT oid, sum(q) AS filled_qty, sum(p * q) AS pv, count(*) AS fill_count,
                           sum((p - mid) * q) AS spread_pv, sum(mid * q) AS mid_pv,
                           sum(explicit) AS is_fees, min(ts) AS first_fill_ts, max(ts) AS last_fill_ts, {mk}
                    FROM _tca_fm GROUP BY oid),
        mids AS (SELECT id AS oid, max(mid) FILTER (WHERE k = -1) AS arr_mid,
                        max(ask - bid) FILTER (WHERE k = -1) AS arr_spread,
                        max(bid) FILTER (WHERE k = -1) AS arr_bid, max(ask) FILTER (WHERE k = -1) AS arr_ask,
                        max(integ_at) FILTER (WHERE k = -1) AS integ_a,
                        max(mid) FILTER (WHERE k = -2) AS end_mid,
                        max(integ_at) FILTER (WHERE k = -2) AS integ_e,
                        max(mid) FILTER (WHERE k = -3) AS dec_mid,
                        {", ".join(f"max(mid) FILTER (WHERE k = {-10 - i}) AS post_mid_{horizon_label(h)}" for i, h in enumerate(POST_TRADE_HORIZONS_S))}
                 FROM _tca_m WHERE k < 0 GROUP BY 1),
        base AS (
            SELECT o.*, e.end_ts, fa.*, m.*, op.first_mid, op.first_spread, op.first_bid, op.first_ask,
                   op.integ AS first_integ, op.first_ts,
                   tp.cpv_a, tp.cv_a, tp.cpv_e, tp.cv_e, tp.cpv_w, tp.cv_w, d.day_pv, d.day_v,
                   b.open AS open_price, b.close AS close_price, pb.prev_close, pb.adv, pb.vol_d, pb.n_lr,
                   greatest(b.day_volume - coalesce(dv.desk_volume, 0), 0) AS other_volume, sh.window_share
            FROM _tca_o o JOIN _tca_oe e USING (oid) LEFT JOIN fa USING (oid) LEFT JOIN mids m USING (oid)
            LEFT JOIN _tca_share sh USING (oid)
            LEFT JOIN _tca_desk dv ON dv.symbol = o.symbol AND dv.day = o.arrival_ts::DATE
            LEFT JOIN _tca_open op USING (oid) LEFT JOIN _tca_tp tp USING (oid) LEFT JOIN _tca_prior pb USING (oid)
            LEFT JOIN _tca_day d ON d.symbol = o.symbol AND d.day = o.arrival_ts::DATE
            LEFT JOIN _tca_bars b ON b.symbol = o.symbol AND b.day = o.arrival_ts::DATE),
        px AS (
            SELECT *,
                coalesce(arr_mid, first_mid) AS arrival_price,
                coalesce(arr_spread, first_spread) AS arr_spread_px,
                CASE WHEN arr_mid IS NOT NULL THEN arr_bid ELSE first_bid END AS arrival_bid,
                CASE WHEN arr_mid IS NOT NULL THEN arr_ask ELSE first_ask END AS arrival_ask,
                coalesce(filled_qty, 0) AS filled,
                pv / filled_qty AS avg_fill_price,
                end_mid AS end_price,
                (cpv_e - cpv_a) / nullif(cv_e - cv_a, 0) AS interval_vwap,
                day_pv / nullif(day_v, 0) AS day_vwap,
                CASE WHEN cv_w IS NOT NULL THEN (cpv_w - cpv_a) / nullif(cv_w - cv_a, 0)
                     ELSE (day_pv - cpv_a) / nullif(day_v - cv_a, 0) END AS pwp,
                cv_w IS NOT NULL AS pwp_complete,
                end_ts::DATE <> arrival_ts::DATE AS multi_day,
                -- TWAP: integral over [max(arrival, first quote), end]; arrival before the open starts at the open.
                CASE WHEN arr_mid IS NOT NULL AND end_ts > arrival_ts
                          THEN (integ_e - integ_a) / (epoch_us(end_ts) - epoch_us(arrival_ts))
                     WHEN arr_mid IS NULL AND first_ts IS NOT NULL AND end_ts > first_ts
                          THEN (integ_e - first_integ) / (epoch_us(end_ts) - epoch_us(first_ts))
                     ELSE coalesce(arr_mid, first_mid) END AS twap
            FROM base),
        px2 AS (SELECT * REPLACE (
                           -- An order that runs past its arrival day: the per-day running sums cannot span the
                           -- night, so its interval benchmarks are left empty rather than wrong (multi_day).
                           CASE WHEN NOT multi_day THEN interval_vwap END AS interval_vwap,
                           CASE WHEN NOT multi_day THEN twap END AS twap,
                           CASE WHEN NOT multi_day THEN pwp END AS pwp),
                       coalesce(decision_price_given, dec_mid, arrival_price) AS decision_price,
                       order_qty - filled AS unfilled FROM px)
        SELECT
            order_id, symbol, side, decision_id, portfolio_id, strategy, broker, algo, trader, desk, urgency, sector, country,
            'USD' AS currency, arrival_ts, end_ts, decision_ts, term_action AS end_action,
            decision_price, arrival_price, end_price, avg_fill_price, interval_vwap, day_vwap, twap, pwp, pwp_complete,
            open_price, close_price, prev_close,
            order_qty, filled AS filled_qty, greatest(unfilled, 0) AS unfilled_qty, filled / order_qty AS fill_rate,
            s * (arrival_price - decision_price) * order_qty AS is_delay_cost,
            coalesce(s * (pv - arrival_price * filled), 0) AS is_trading_cost,
            s * (end_price - arrival_price) * greatest(unfilled, 0) AS is_opportunity_cost,
            coalesce(is_fees, 0) AS is_fees,
            s * (arrival_price - decision_price) * order_qty + coalesce(s * (pv - arrival_price * filled), 0)
              + s * (end_price - arrival_price) * greatest(unfilled, 0) + coalesce(is_fees, 0) AS is_total_cost,
            decision_price * order_qty AS paper_notional,
            coalesce(pv, 0) AS filled_notional,
            s * (avg_fill_price - arrival_price) / arrival_price * {BPS} AS arrival_cost_bps,
            s * (avg_fill_price - interval_vwap) / interval_vwap * {BPS} AS vwap_interval_cost_bps,
            s * (avg_fill_price - day_vwap) / day_vwap * {BPS} AS vwap_day_cost_bps,
            s * (avg_fill_price - twap) / twap * {BPS} AS twap_cost_bps,
            s * (avg_fill_price - pwp) / pwp * {BPS} AS pwp_cost_bps,
            s * (avg_fill_price - open_price) / open_price * {BPS} AS open_cost_bps,
            s * (avg_fill_price - close_price) / close_price * {BPS} AS close_cost_bps,
            s * (avg_fill_price - prev_close) / prev_close * {BPS} AS prev_close_cost_bps,
            {", ".join(f"markout_cost_bps_{h}" for h in hz)},
            CASE WHEN NOT multi_day THEN filled / nullif(cv_e - cv_a, 0) END AS participation_rate,
            CASE WHEN multi_day THEN NULL WHEN filled = 0 THEN 0.0
                 ELSE filled / (other_volume * window_share + filled) END AS scheduled_participation,
            order_qty / adv AS size_pct_adv,
            CASE WHEN n_lr >= 2 THEN vol_d END AS daily_volatility,
            adv,
            arr_spread_px / arrival_price * {BPS} AS spread_at_arrival_bps, arrival_bid, arrival_ask,
            (epoch_us(end_ts) - epoch_us(arrival_ts)) / 1e6 AS duration_s,
            (epoch_us(first_fill_ts) - epoch_us(arrival_ts)) / 1e6 AS time_to_first_fill_s,
            coalesce(fill_count, 0) AS fill_count,
            CASE WHEN NOT multi_day THEN cv_e - cv_a END AS interval_volume, multi_day,
            -- Impact from the mid path (Almgren et al. 2005): during = arrival -> end, permanent = arrival ->
            -- end + 30 min, reverted_after_end = what came back in the 30 min after the end (during - permanent;
            -- temporary_impact_bps is its former name, kept with the same value: it is a post-trade reversion,
            -- not ATHL's temporary impact K, which is a function of the trading rate); all side-signed bps.
            s * (end_price - arrival_price) / arrival_price * {BPS} AS impact_during_bps,
            s * (post_mid_{horizon_label(PERMANENT_HORIZON_S)} - arrival_price) / arrival_price * {BPS} AS permanent_impact_bps,
            s * (end_price - post_mid_{horizon_label(PERMANENT_HORIZON_S)}) / arrival_price * {BPS} AS temporary_impact_bps,
            s * (end_price - post_mid_{horizon_label(PERMANENT_HORIZON_S)}) / arrival_price * {BPS} AS reverted_after_end_bps,
            {", ".join(f"s * (post_mid_{horizon_label(h)} - end_price) / arrival_price * {BPS} AS reversion_bps_{horizon_label(h)}" for h in POST_TRADE_HORIZONS_S)},
            -- Trading cost split at each fill's prevailing mid: spread (fill vs its mid) + impact/timing (mid vs
            -- arrival); the two sum exactly to is_trading_cost.
            coalesce(s * spread_pv, 0) AS trading_spread_cost,
            coalesce(s * (mid_pv - arrival_price * filled), 0) AS trading_impact_cost
        FROM px2 ORDER BY arrival_ts, order_id""",
    ).pipe(_with_bps_and_rpm, con)


def _with_bps_and_rpm(df: pl.DataFrame, con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Add the IS components in bps of the paper notional, and RPM (a range join of the interval's trades)."""
    bps = [
        (pl.col(c) / pl.col("paper_notional") * BPS).alias(c.replace("_cost", "_bps"))
        for c in (
            "is_delay_cost",
            "is_trading_cost",
            "is_opportunity_cost",
            "is_total_cost",
            "trading_spread_cost",
            "trading_impact_cost",
        )
    ]
    df = df.with_columns(*bps, (pl.col("is_fees") / pl.col("paper_notional") * BPS).alias("is_fees_bps"))
    rpm = query(
        con,
        """SELECT o.order_id,
                  (coalesce(sum(t.size) FILTER (WHERE o.s * (t.price - o.avg_p) > 0), 0)
                   + 0.5 * coalesce(sum(t.size) FILTER (WHERE t.price = o.avg_p), 0)) / sum(t.size) AS rpm
           FROM (SELECT o.oid, o.order_id, o.s, o.symbol, o.arrival_ts, e.end_ts, sum(f.p * f.q) / sum(f.q) AS avg_p
                 FROM _tca_o o JOIN _tca_oe e USING (oid) JOIN _tca_f f USING (oid) GROUP BY ALL) o
           JOIN _tca_t t ON t.symbol = o.symbol AND t.day = o.arrival_ts::DATE
                         AND t.ts > o.arrival_ts AND t.ts <= o.end_ts
           WHERE o.end_ts::DATE = o.arrival_ts::DATE
           GROUP BY 1""",
    )
    return df.join(rpm, on="order_id", how="left")


def _empty(cfg: TCAConfig) -> TCAResult:
    return TCAResult(orders=pl.DataFrame(), fills=pl.DataFrame(), horizons=cfg.markout_horizons_s)


# ---------------------------------------------------------------------------------------------------
# Stored results: TCACompletedEvent rows per order day, keyed by the fingerprint of exactly what that day's TCA
# reads (store.py, "derived results"), computed on first use:
#   derived/tca-7/day=YYYY-MM-DD/<fingerprint>/{orders,fills,fill_cube}.parquet
# What the TCA of the orders that arrived on day D reads (compute() above), and so what the fingerprint covers:
# - every order, fill, settlement and decision event of those orders, wherever they are dated (a CANCEL or a
#   fill on a later day, a settlement dated after D that overrides the fees, a decision taken days before):
#   a content hash of those rows per arrival day (_EVENTS_SQL), so a later day's events change D's
#   fingerprint only when they concern D's orders;
# - quotes and trades of the days from the earliest decision to the last event of those orders (marks,
#   VWAPs, the scheduled window's tape) and the fills dated D (the desk's own volume that day): their files;
# - daily bars dated up to that last day (open/close, ADV and volatility over the days before; a superset of
#   "bars before D") and the securities (sector, country): their files;
# - this code version.
# A commit that touches one day thus recomputes only the days whose inputs changed; a rollback finds the
# results of the files it restores; re-running is a lookup. Lineage (source_version, event_id, ts) names the
# snapshot a reader asked for and is added when the rows are read (results()).
# ---------------------------------------------------------------------------------------------------
RESULTS = CODE_VERSION  # derived/<code version>/...: new code never reads old rows
DAYS_PER_RUN = 5  # days computed per pass: amortises the fixed cost, bounds memory
EVENT_TABLES = ("orders", "fills", "settlements", "decisions")
_EVENTS_SQL = """
    WITH od AS (SELECT order_id, min(ts)::DATE AS day FROM orders WHERE action = 'NEW' GROUP BY 1),
    dd AS (SELECT DISTINCT n.decision_id, od.day FROM orders n JOIN od USING (order_id)
           WHERE n.action = 'NEW' AND n.decision_id IS NOT NULL),
    fe AS (SELECT od.day, x.fill_id, x.ts, hash(x)::HUGEINT AS h FROM fills x JOIN od USING (order_id)),
    ev AS (
        SELECT od.day, 'o' AS k, x.ts, hash(x)::HUGEINT AS h,
               TRY_CAST(json_extract_string(x.algo_params, '$.end_time') AS TIMESTAMPTZ) AS te
        FROM orders x JOIN od USING (order_id)
        UNION ALL SELECT day, 'f', ts, h, NULL FROM fe
        UNION ALL SELECT fe.day, 's', NULL, hash(x)::HUGEINT, NULL FROM settlements x JOIN fe USING (fill_id)
        UNION ALL SELECT dd.day, 'd', x.ts, hash(x)::HUGEINT, NULL FROM decisions x JOIN dd USING (decision_id))
    SELECT day, (sum(hash(k, h)::HUGEINT) % 18446744073709551557)::VARCHAR || ':' || count(*)::VARCHAR AS events,
           least(day, min(ts)::DATE) AS lo_day, greatest(day, max(ts)::DATE, max(te)::DATE) AS hi_day
    FROM ev GROUP BY day"""
_EVENTS_CACHE: dict[tuple[str, str], pl.DataFrame] = {}


def _event_hashes(lake, m) -> pl.DataFrame:
    """Per arrival day: the content hash of its orders' events, and the span of days they touch (lo_day..hi_day).
    Kept per (lake, event files) in memory and on disk: one scan of the event tables per change of them. The
    files are hash-checked first (a flipped byte is an error, not a different hash)."""
    key = lake.tables_fingerprint(EVENT_TABLES, m, RESULTS)
    cached = _EVENTS_CACHE.get((str(lake.root), key))
    if cached is not None:
        return cached
    path = lake.derived_dir(RESULTS, "_events") / f"{key}.parquet"
    entries = [e for t in EVENT_TABLES for e in m.entries(t) if e.rows]
    lake.check_hashes(entries)
    if path.exists():
        out = pl.read_parquet(path)
    else:
        con = lake.connect(m)
        try:
            out = query(con, _EVENTS_SQL)
        finally:
            con.close()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        out.write_parquet(tmp)
        os.replace(tmp, path)
    if len(_EVENTS_CACHE) > 16:
        _EVENTS_CACHE.clear()
    _EVENTS_CACHE[(str(lake.root), key)] = out
    return out


def _day_inputs(lake, m, day: dt.date, lo: dt.date, hi: dt.date) -> list:
    """The manifest entries (besides the event rows) the TCA of ``day``'s orders reads (see the section comment)."""
    by_day, days = _by_day(m)
    out = []
    for t in ("quotes", "trades"):  # the partitions present in lo..hi (an absurd end_time spans no empty days)
        ds = days.get(t, [])
        for d in ds[bisect.bisect_left(ds, lo.isoformat()) : bisect.bisect_right(ds, hi.isoformat())]:
            out += by_day[(t, d)]
    out += by_day.get(("fills", day.isoformat()), [])
    out += [e for e in m.entries("bars") if e.rows and (e.min_t is None or e.min_t[:10] <= hi.isoformat())]
    return out + [e for e in m.entries("securities") if e.rows]


def _by_day(m) -> tuple[dict[tuple[str, str], list], dict[str, list[str]]]:
    """(table, day) -> entries of the day-partitioned tables TCA reads by day, and each table's sorted days
    (built once per manifest)."""
    idx = m.__dict__.get("_tca_by_day")
    if idx is None:
        by: dict[tuple[str, str], list] = {}
        for t in ("quotes", "trades", "fills"):
            for e in m.entries(t):
                if e.rows:
                    by.setdefault((t, e.part), []).append(e)
        days = {t: sorted(d for (tt, d) in by if tt == t) for t in ("quotes", "trades", "fills")}
        idx = m.__dict__["_tca_by_day"] = (by, days)
    return idx


_FP_CACHE: dict[tuple, dict[dt.date, str]] = {}


def input_fingerprints(
    lake, version: int | None = None, start: dt.date | None = None, end: dt.date | None = None
) -> dict[dt.date, str]:
    """Order day -> the fingerprint of the inputs of that day's TCA (section comment), for the order days of
    lake ``version`` (default: current) in ``start..end``. The stable key other stored results build on (quality
    sums of a day are keyed by the TCA fingerprint of that day). Computed once per snapshot and process."""
    m = lake.manifest(version)
    key = (str(lake.root), m.version, m.created, m.batch)
    fps = _FP_CACHE.get(key)
    if fps is None:
        days = lake.order_days(version=m.version)
        ev = {r[0]: r[1:] for r in _event_hashes(lake, m).iter_rows()} if days else {}
        fps = {}
        for d in days:
            events, lo, hi = ev.get(d, ("none", d, d))
            fps[d] = lake.fingerprint(_day_inputs(lake, m, d, lo, hi), RESULTS, events)
        if len(_FP_CACHE) > 16:
            _FP_CACHE.clear()
        _FP_CACHE[key] = fps
    return {d: fp for d, fp in fps.items() if (start is None or d >= start) and (end is None or d <= end)}


def missing_days(lake, version: int, start: dt.date | None = None, end: dt.date | None = None) -> list[dt.date]:
    """Order days in ``start..end`` of lake ``version`` whose TCA (for their inputs and this code) is not stored."""
    fps = input_fingerprints(lake, version, start, end)
    return sorted(d for d, fp in fps.items() if not lake.has_derived(RESULTS, d, fp, "orders"))


def ensure(
    lake,
    start: dt.date | None = None,
    end: dt.date | None = None,
    cfg: TCAConfig | None = None,
    progress=None,
    version: int | None = None,
) -> int:
    """Compute and store the TCA of every order day in ``start..end`` of lake ``version`` (default: current)
    whose inputs have no stored result yet. Returns that version: the snapshot the caller then reads
    (``results(..., version=)``). Idempotent: a day is computed once per input fingerprint. Input files are
    hash-checked before they are computed from; temp files of a killed run are removed first."""
    if cfg is not None and cfg != TCAConfig():  # the stored rows' key holds the code version, not a config
        raise ValueError("stored TCA results use the default TCAConfig: call compute() for another configuration")
    m = lake.manifest(version)
    v = m.version
    lake.sweep_derived(RESULTS)
    fps = input_fingerprints(lake, v, start, end)
    missing = sorted(d for d, fp in fps.items() if not lake.has_derived(RESULTS, d, fp, "orders"))
    if not missing:
        _backfill_cubes(lake, fps)
        return v
    ev = {r[0]: r[1:] for r in _event_hashes(lake, m).iter_rows()}
    con = lake.connect(m)
    try:
        runs = [missing[i : i + DAYS_PER_RUN] for i in range(0, len(missing), DAYS_PER_RUN)]
        for n, run in enumerate(runs):
            if progress:
                progress(n / len(runs), f"TCA of {run[0]}..{run[-1]} ({len(missing)} day(s) to compute)")
            lake.check_hashes([e for d in run for e in _day_inputs(lake, m, d, *ev.get(d, ("", d, d))[1:])])
            res = compute(con, Filters(start=run[0], end=run[-1]), cfg, lake=lake)
            for day in run:
                if res.orders.height:
                    o_day = res.orders.filter(pl.col("arrival_ts").dt.date() == day)
                    ids = o_day["order_id"]
                    f_day = res.fills.filter(pl.col("order_id").is_in(ids.implode()))
                else:  # no order arrived in this run: an empty day, marked done
                    o_day = pl.DataFrame(schema={"order_id": pl.String})
                    f_day = pl.DataFrame(schema={"order_id": pl.String, "fill_id": pl.String})
                o_day = o_day.with_columns(pl.lit(fps[day]).alias("input_fingerprint"))
                lake.write_derived(RESULTS, day, fps[day], "fills", f_day)
                lake.write_derived(RESULTS, day, fps[day], CUBE, fill_cube(o_day, f_day, day))
                lake.write_derived(RESULTS, day, fps[day], "orders", o_day)  # last: marks the day done
    finally:
        con.close()
    _backfill_cubes(lake, fps)
    if progress:
        progress(1.0, "TCA ready")
    return v


# ---------------------------------------------------------------------------------------------------
# Fill cube: per day and (order, venue) (with the order's broker, algo and portfolio), the sums of every
# fill-level weighted mean the pages show (n, Σw, Σwx), so that a year's venue costs and markout curves add up
# ~3M small rows instead of scanning ~25M fills. Per-order sums are what an order-clustered interval needs: an
# order's fills share its decision, symbol, window and mid path, so the cluster's residual Σ_{i∈g} w_i (x_i - m)
# = Σwx - m Σw is the unit of the variance (see :func:`clustered_mean_ci`); per-day sums (cluster = day) add the
# same rows up by day. Means and intervals from these sums equal the fill scan's exactly (tests check both paths).
# ---------------------------------------------------------------------------------------------------
CUBE = "fill_cube"
CUBE_KEYS = ("order_id", "broker", "algo", "venue", "portfolio_id")
_MOMENTS = ("n", "sw", "swx")
_CUBE_HORIZONS = {horizon_label(h) for h in MARKOUT_HORIZONS_S}
CLUSTERS = ("order", "day")  # the resampling unit of every fill-level interval


def cube_measures(horizons: tuple[float, ...] = MARKOUT_HORIZONS_S) -> dict[str, tuple[str, pl.Expr]]:
    """Fill-level measure -> (its column, its weight): arrival cost by fill notional, markouts by quantity."""
    out = {"arrival_cost_bps": ("arrival_cost_bps", pl.col("p") * pl.col("q"))}
    for h in horizons:
        c = f"markout_cost_bps_{horizon_label(h)}"
        out[c] = (c, pl.col("q"))
    return out


def fill_cube(orders: pl.DataFrame, fills: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    """The fill cube of the orders that arrived on ``day`` (all their fills, as the stored fill rows of that
    day hold them), from the stored order and fill rows (see the section comment)."""
    measures = cube_measures()
    schema = {"day": pl.Date, **{k: pl.String for k in CUBE_KEYS}}
    schema |= {f"{m}__{s}": (pl.UInt32 if s == "n" else pl.Float64) for m in measures for s in _MOMENTS}
    if orders.is_empty() or fills.is_empty() or "fill_id" not in fills.columns or fills["fill_id"].is_null().all():
        return pl.DataFrame(schema=schema)
    keys = [k for k in CUBE_KEYS if k not in ("venue", "order_id")]
    f = fills.filter(pl.col("fill_id").is_not_null()).join(orders.select("order_id", *keys), on="order_id", how="inner")
    aggs = []
    for name, (col, w) in measures.items():
        if col not in f.columns:
            continue
        x = pl.col(col)
        ok = x.is_not_null() & w.is_not_null()
        xs, ws = x.filter(ok), w.filter(ok)
        aggs += [
            ok.sum().cast(pl.UInt32).alias(f"{name}__n"),
            ws.sum().alias(f"{name}__sw"),
            (ws * xs).sum().alias(f"{name}__swx"),
        ]
    out = f.group_by(list(CUBE_KEYS)).agg(aggs).with_columns(pl.lit(day).alias("day"))
    return pl.concat(
        [pl.DataFrame(schema=schema), out.select([c for c in schema if c in out.columns])], how="diagonal_relaxed"
    ).sort("order_id", "venue")


def _backfill_cubes(lake, fps: dict[dt.date, str]) -> None:
    """Cubes of stored days that lack one (days stored by a build before the cube existed)."""
    for day, fp in sorted(fps.items()):
        if lake.has_derived(RESULTS, day, fp, CUBE) or not lake.has_derived(RESULTS, day, fp, "orders"):
            continue
        orders = pl.read_parquet(lake.derived_path(RESULTS, day, fp, "orders"))
        f_path = lake.derived_path(RESULTS, day, fp, "fills")
        fills = pl.read_parquet(f_path) if f_path.exists() else pl.DataFrame()
        lake.write_derived(RESULTS, day, fp, CUBE, fill_cube(orders, fills, day))


def stored_fingerprints(
    lake, version: int | None = None, start: dt.date | None = None, end: dt.date | None = None, part: str = "orders"
) -> dict[dt.date, str]:
    """The order days of ``version`` in ``start..end`` whose ``part`` is stored, with their fingerprints."""
    fps = input_fingerprints(lake, version, start, end)
    return {d: fp for d, fp in fps.items() if lake.has_derived(RESULTS, d, fp, part)}


def _cube_scope_sql(lake, con: duckdb.DuckDBPyConnection, f: Filters, version: int | None) -> tuple[str, list] | None:
    """The filter's cube rows as SQL (text, params), or None when the cube cannot answer: a symbol filter
    (the cube has no symbol key) or a stored day without its cube."""
    if f.symbol:
        return None
    fps = stored_fingerprints(lake, version, f.start, f.end)
    if not fps or not all(lake.has_derived(RESULTS, d, fp, CUBE) for d, fp in fps.items()):
        return None
    con.register("_scope_cube", lake.derived_scan(con, RESULTS, fps, CUBE))
    where, params = f.where({"broker": "broker", "algo": "algo", "venue": "venue", "portfolio": "portfolio_id"})
    return f"SELECT * FROM _scope_cube WHERE {where}", params


def results(lake, con, start: dt.date | None = None, end: dt.date | None = None, part: str = "orders", version=None):
    """Relation over the stored TCA rows (``orders`` or ``fills``) of ``start..end`` for the inputs of lake
    ``version`` (default: current; call :func:`ensure` with it first). Order rows carry the lineage of that
    snapshot (EVENTS.md): ``event_id`` = ``tca:<order_id>@lake@N``, ``ts`` = the snapshot's time,
    ``source_version`` = ``lake@N``, ``code_version``; and ``input_fingerprint`` (the day's input identity)."""
    m = lake.manifest(version)
    rel = lake.derived_scan(con, RESULTS, stored_fingerprints(lake, m.version, start, end, part), part)
    if rel is None or part != "orders" or "arrival_ts" not in rel.columns:
        return rel
    sv = sql_literal(f"lake@{int(m.version)}")
    ts = dt.datetime.fromisoformat(m.created) if m.created else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    lineage = {"event_id": f"concat('tca:', order_id, '@', {sv})", "ts": f"{sql_literal(ts.isoformat())}::TIMESTAMPTZ",
               "source_version": sv, "code_version": sql_literal(CODE_VERSION)}  # fmt: skip
    cols = [quote_ident(c) for c in rel.columns if c not in lineage]
    return rel.project(", ".join([*cols, *(f"{sql} AS {c}" for c, sql in lineage.items())]))


# ---------------------------------------------------------------------------------------------------
# Aggregates for the page and the CLI (pure Polars over the stored rows)
# ---------------------------------------------------------------------------------------------------
SIZE_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.10)  # size as a share of ADV: <0.5%, 0.5-1%, 1-2%, 2-5%, 5-10%, >10%
SIZE_LABELS = ("<0.5% ADV", "0.5-1% ADV", "1-2% ADV", "2-5% ADV", "5-10% ADV", ">10% ADV")
Z95 = 1.959963984540054


def with_buckets(df: pl.DataFrame) -> pl.DataFrame:
    """Add ``size_bucket`` (order size as % of ADV) and ``time_bucket`` (arrival half-hour, New York time)."""
    return df.with_columns(
        pl.col("size_pct_adv")
        .bin_intervals(list(SIZE_BUCKETS), labels=list(SIZE_LABELS))
        .cast(pl.String)
        .alias("size_bucket"),
        pl.col("arrival_ts")
        .dt.convert_time_zone("America/New_York")
        .dt.truncate("30m")
        .dt.strftime("%H:%M")
        .alias("time_bucket"),
    )


T975_NU1 = 12.706204736174705  # tan(0.475 pi)
T975_NU2 = 4.302652729749464  # 0.95 / sqrt(2 x 0.975 x 0.025)


# Cornish-Fisher terms g1..g4 of Student's t quantile about the normal quantile z = Z95 (A&S 26.7.5):
# t = z + g1 / nu + g2 / nu^2 + g3 / nu^3 + g4 / nu^4
_CF_TERMS = (
    (Z95**3 + Z95) / 4,
    (5 * Z95**5 + 16 * Z95**3 + 3 * Z95) / 96,
    (3 * Z95**7 + 19 * Z95**5 + 17 * Z95**3 - 15 * Z95) / 384,
    (79 * Z95**9 + 776 * Z95**7 + 1482 * Z95**5 - 1920 * Z95**3 - 945 * Z95) / 92160,
)


def t975(nu: pl.Expr) -> pl.Expr:
    """The 97.5% quantile of Student's t with ``nu`` degrees of freedom (null below 1) as a Polars expression:
    exact for nu = 1 (tan(0.475 pi) = 12.706) and nu = 2 ((2p - 1) / sqrt(2p(1 - p)) = 4.303), else the
    Cornish-Fisher expansion about the normal quantile z (Abramowitz & Stegun 1964, 26.7.5), four terms: within
    0.12% of the exact value at nu = 3, 1e-4 from nu = 10 (t_39 = 2.0227)."""
    z, g = Z95, _CF_TERMS
    v = nu.cast(pl.Float64)
    return (
        pl.when(v < 1)
        .then(None)
        .when(v < 2)
        .then(T975_NU1)
        .when(v < 3)
        .then(T975_NU2)
        .otherwise(z + g[0] / v + g[1] / v**2 + g[2] / v**3 + g[3] / v**4)
    )


def _t975_sql(nu: str) -> str:
    """:func:`t975` in SQL (the same expansion)."""
    z, g = Z95, _CF_TERMS
    v = f"CAST({nu} AS DOUBLE)"
    cf = f"{z} + {g[0]} / {v} + {g[1]} / {v}^2 + {g[2]} / {v}^3 + {g[3]} / {v}^4"
    return f"CASE WHEN {v} < 1 THEN NULL WHEN {v} < 2 THEN {T975_NU1} WHEN {v} < 3 THEN {T975_NU2} ELSE {cf} END"


def weighted_mean_ci(x: pl.Expr, w: pl.Expr) -> list[pl.Expr]:
    """Weighted mean of ``x`` with weights ``w`` and its 95% interval, each ROW an independent observation (an
    order, never a fill: fills of one order share its mid path; use :func:`clustered_mean_ci` for them):
    SE = sqrt(n / (n - 1) · Σ w² (x - mean)²) / Σ w (the sandwich with the small-sample factor, CR1), interval
    mean ± t_{n-1} SE (:func:`t975`): 95% coverage with 40 orders, where the normal 1.96 gave ~94%. Nulls are
    skipped; fewer than two rows: no interval."""
    ok = x.is_not_null() & w.is_not_null()
    xs, ws = x.filter(ok), w.filter(ok)
    n = ok.sum()
    mean = (xs * ws).sum() / ws.sum()
    se = ((ws**2) * (xs - mean) ** 2).sum().sqrt() / ws.sum() * (n / (n - 1)).sqrt()
    half = t975(n - 1) * se
    return [mean.alias("mean"), (mean - half).alias("lo"), (mean + half).alias("hi"), n.alias("n")]


def clustered_mean_ci(
    df: pl.DataFrame, x: str, w: str | pl.Expr, by: list[str] | None = None, cluster: str = "order_id"
) -> pl.DataFrame:
    """Weighted mean of column ``x`` (weights ``w``, e.g. fill quantity) per ``by`` with a 95% interval that
    treats whole ``cluster`` values (parent orders, or days) as the independent units: with A_g = Σ_{i∈g} w x,
    B_g = Σ_{i∈g} w over the G clusters of a group, mean m = Σ A_g / Σ B_g and the linearised (sandwich)
    variance V = G / (G - 1) · Σ_g (A_g - m B_g)² / (Σ B_g)² (Liang & Zeger 1986, CR1); interval m ± t_{G-1} √V.
    Columns: ``by``, mean, lo, hi, n (rows), clusters. Fills of one order share its mid path: treating them as
    independent covered the truth ~1 time in 3 at "95%" with 40 orders x 25 fills."""
    by = by or []
    wx = pl.col(w) if isinstance(w, str) else w
    ok = pl.col(x).is_not_null() & wx.is_not_null()
    per = (
        df.filter(ok)
        .group_by(*by, cluster)
        .agg((wx * pl.col(x)).sum().alias("_a"), wx.sum().alias("_b"), pl.len().alias("_n"))
    )
    tot = (
        per.group_by(by).agg(pl.col("_a").sum(), pl.col("_b").sum(), pl.col("_n").sum(), pl.len().alias("_g"))
        if by
        else per.select(pl.col("_a").sum(), pl.col("_b").sum(), pl.col("_n").sum(), pl.len().alias("_g"))
    )
    tot = tot.with_columns((pl.col("_a") / pl.col("_b")).alias("mean"))
    u = (pl.col("_a") - pl.col("mean") * pl.col("_b")) ** 2
    j = (
        per.join(tot.select(*by, "mean"), on=by, how="left")
        if by
        else per.with_columns(pl.lit(tot["mean"][0]).alias("mean"))
    )
    ss = j.group_by(by).agg(u.sum().alias("_ss")) if by else j.select(u.sum().alias("_ss"))
    out = tot.join(ss, on=by, how="left") if by else pl.concat([tot, ss], how="horizontal")
    g = pl.col("_g")
    se = (g / (g - 1) * pl.col("_ss")).sqrt() / pl.col("_b")
    half = pl.when(g >= 2).then(t975(g - 1) * se)
    return out.select(
        *by,
        "mean",
        (pl.col("mean") - half).alias("lo"),
        (pl.col("mean") + half).alias("hi"),
        pl.col("_n").cast(pl.UInt32).alias("n"),
        g.cast(pl.UInt32).alias("clusters"),
    )


def summary(df: pl.DataFrame) -> dict:
    """Headline figures, notional-weighted: IS in bps is total IS cost over total paper notional; arrival,
    VWAP and TWAP costs are weighted by filled notional."""
    if df.is_empty():
        return {"orders": 0}
    filled = df.filter(pl.col("filled_qty") > 0)
    w = pl.col("filled_notional")

    def wavg(c: str) -> float | None:
        v = filled.select((pl.col(c) * w).sum() / w.filter(pl.col(c).is_not_null()).sum()).item()
        return None if v is None else round(float(v), 4)

    paper = float(df["paper_notional"].sum())
    return {
        "orders": df.height,
        "filled_orders": filled.height,
        "fills": int(df["fill_count"].sum()),
        "filled_notional": round(float(df["filled_notional"].sum()), 2),
        "is_total_cost": round(float(df["is_total_cost"].sum()), 2),
        "is_total_bps": round(float(df["is_total_cost"].sum()) / paper * BPS, 4) if paper else None,
        "is_delay_bps": round(float(df["is_delay_cost"].sum()) / paper * BPS, 4) if paper else None,
        "is_trading_bps": round(float(df["is_trading_cost"].sum()) / paper * BPS, 4) if paper else None,
        "is_opportunity_bps": round(float(df["is_opportunity_cost"].sum()) / paper * BPS, 4) if paper else None,
        "is_fees_bps": round(float(df["is_fees"].sum()) / paper * BPS, 4) if paper else None,
        "arrival_cost_bps": wavg("arrival_cost_bps"),
        "vwap_interval_cost_bps": wavg("vwap_interval_cost_bps"),
        "vwap_day_cost_bps": wavg("vwap_day_cost_bps"),
        "twap_cost_bps": wavg("twap_cost_bps"),
    }


def by_group(
    df: pl.DataFrame, group: str, metric: str = "arrival_cost_bps", min_orders: int = 1, cluster: str = "order"
) -> pl.DataFrame:
    """Per value of ``group``: orders, filled notional, and ``metric`` weighted by filled notional with its
    95% interval, each order one independent unit (``cluster="order"``, :func:`weighted_mean_ci`) or each
    arrival day (``cluster="day"``: orders of one day share the market's moves; :func:`clustered_mean_ci`).
    Groups with fewer than ``min_orders`` orders keep their row, flagged ``small_sample``."""
    w = pl.col("filled_notional")
    filled = df.filter(pl.col("filled_qty") > 0)
    if cluster == "day":
        ci = clustered_mean_ci(
            filled.with_columns(pl.col("arrival_ts").dt.date().alias("_day")),
            metric,
            "filled_notional",
            [group],
            "_day",
        ).drop("clusters")
        out = (
            filled.group_by(group)
            .agg(pl.len().alias("orders"), w.sum().alias("filled_notional"))
            .join(ci, on=group, how="left", nulls_equal=True)
        )
    elif cluster == "order":
        out = filled.group_by(group).agg(
            pl.len().alias("orders"), w.sum().alias("filled_notional"), *weighted_mean_ci(pl.col(metric), w)
        )
    else:
        raise ValueError(f"cluster must be one of {CLUSTERS}")
    out = out.with_columns((pl.col("n") < min_orders).alias("small_sample")).sort(
        "mean", descending=True, nulls_last=True
    )
    return out.rename({"mean": metric, "lo": f"{metric}_lo", "hi": f"{metric}_hi"})


def markout_curve(
    fills: pl.DataFrame,
    horizons: tuple[float, ...] = MARKOUT_HORIZONS_S,
    group: str | None = None,
    cluster: str = "order_id",
) -> pl.DataFrame:
    """Quantity-weighted mean markout (bps, positive = the price came back against the fill) at each
    horizon, optionally per ``group`` (e.g. venue), long form: horizon_s, [group], markout_bps, lo, hi, n
    (fills), clusters. The interval resamples whole parent orders (``cluster``: a column of ``fills``, e.g. the
    order's arrival day instead) with :func:`clustered_mean_ci`."""
    keys = [group] if group else []
    cols = [(h, f"markout_cost_bps_{horizon_label(h)}") for h in horizons]
    cols = [(h, c) for h, c in cols if c in fills.columns]
    if not cols or fills.is_empty():
        return pl.DataFrame()
    frames = [
        clustered_mean_ci(fills, c, "q", keys, cluster).select(
            *keys,
            pl.lit(float(h)).alias("horizon_s"),
            pl.col("mean").alias("markout_bps"),
            "lo",
            "hi",
            "n",
            "clusters",
        )
        for h, c in cols  # one per horizon: a handful of group-bys, not a loop over rows
    ]
    return pl.concat(frames).sort([*keys, "horizon_s"])


KEY_COLUMNS = (  # the columns a trader reads first; exports always carry every column
    "order_id", "symbol", "side", "broker", "algo", "arrival_ts", "order_qty", "filled_qty", "fill_rate",
    "filled_notional", "is_total_bps", "is_delay_bps", "is_trading_bps", "is_opportunity_bps", "is_fees_bps",
    "arrival_cost_bps", "vwap_interval_cost_bps", "twap_cost_bps", "markout_cost_bps_60s", "size_pct_adv",
    "participation_rate", "spread_at_arrival_bps", "duration_s", "fill_count",
)  # fmt: skip


def top(df: pl.DataFrame, n: int, by: str = "is_total_bps") -> pl.DataFrame:
    """The ``n`` rows with the highest ``by`` (nulls left out), highest first. Sorts the one column and
    gathers ``n`` rows: a year of orders (~500K rows x 85 columns) is never copied whole."""
    key = df[by]
    idx = key.arg_sort(descending=True, nulls_last=True).head(min(n, key.len() - key.null_count()))
    return df[idx]


def histogram(df: pl.DataFrame, col: str, bins: int = 60, clip: float = 0.005) -> pl.DataFrame:
    """Counts of ``col`` in ``bins`` equal bins over its [clip, 1 - clip] quantile range (values beyond are
    counted in the end bins), for a chart that ships bins, not rows: bin_start, bin_end, count."""
    x = df[col].drop_nulls()
    if x.is_empty():
        return pl.DataFrame(schema={"bin_start": pl.Float64, "bin_end": pl.Float64, "count": pl.UInt32})
    lo, hi = x.quantile(clip), x.quantile(1 - clip)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    width = (hi - lo) / bins
    idx = ((x.clip(lo, hi) - lo) / width).floor().clip(0, bins - 1).cast(pl.Int32)
    counts = idx.value_counts().rename({idx.name: "bin"})
    return (
        counts.with_columns(
            (lo + pl.col("bin") * width).alias("bin_start"), (lo + (pl.col("bin") + 1) * width).alias("bin_end")
        )
        .select("bin_start", "bin_end", pl.col("count").cast(pl.UInt32))
        .sort("bin_start")
    )


def order_tape(
    con: duckdb.DuckDBPyConnection, symbol: str, start: dt.datetime, end: dt.datetime, lake=None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """NBBO quotes (with the one prevailing at ``start``, same day) and market prints of ``symbol`` in
    [start, end], for the order drill-down chart. With ``lake``, only the files of those days are read."""
    if lake is not None:
        con.register("_tape_quotes", lake.scan(con, "quotes", start.date(), end.date()))
        con.register("_tape_trades", lake.scan(con, "trades", start.date(), end.date()))
        qsrc, tsrc = "_tape_quotes", "_tape_trades"
    else:
        qsrc, tsrc = "quotes", "trades"
    quotes = query(
        con,
        f"""SELECT ts, bid, ask, (bid + ask) / 2 AS mid FROM {qsrc}
           WHERE symbol = ? AND ts >= (SELECT coalesce(max(ts), ?) FROM {qsrc} WHERE symbol = ? AND ts <= ?)
             AND ts <= ? ORDER BY ts""",
        [symbol, start, symbol, start, end],
    )
    trades = query(
        con,
        f"SELECT ts, price, size, venue FROM {tsrc} WHERE symbol = ? AND ts >= ? AND ts <= ? ORDER BY ts",
        [symbol, start, end],
    )
    return quotes, trades


def waterfall(order: dict) -> pl.DataFrame:
    """The IS decomposition of one order as waterfall steps (bps of paper notional and currency)."""
    steps = [
        ("Delay", order["is_delay_bps"], order["is_delay_cost"]),
        ("Trading", order["is_trading_bps"], order["is_trading_cost"]),
        ("Opportunity", order["is_opportunity_bps"], order["is_opportunity_cost"]),
        ("Fees", order["is_fees_bps"], order["is_fees"]),
    ]
    rows, run = [], 0.0
    for name, bps, cur in steps:
        bps = bps or 0.0
        rows.append({"step": name, "start": run, "end": run + bps, "bps": bps, "currency": cur or 0.0})
        run += bps
    rows.append({"step": "Total IS", "start": 0.0, "end": run, "bps": run, "currency": order["is_total_cost"] or 0.0})
    return pl.DataFrame(rows)


def order_fills(
    lake, con: duckdb.DuckDBPyConnection, order_id: str, day: dt.date, version: int | None = None
) -> pl.DataFrame:
    """The stored fills (with their marks) of one order, read from its arrival day only."""
    rel = results(lake, con, day, day, part="fills", version=version)
    if rel is None:
        return pl.DataFrame()
    con.register("_day_fills", rel)
    try:
        return query(con, "SELECT * FROM _day_fills WHERE order_id = ? ORDER BY ts, fill_id", [order_id])
    finally:
        con.unregister("_day_fills")


def load_orders(lake, con: duckdb.DuckDBPyConnection, f: Filters, version: int | None = None) -> pl.DataFrame:
    """Stored TCA rows of the orders matching the shared filters (dates on arrival; symbol, broker, algo,
    portfolio), bound parameters only. Call :func:`ensure` first for the dates."""
    rel = results(lake, con, f.start, f.end, part="orders", version=version)
    if rel is None:
        return pl.DataFrame()
    where, params = f.where(
        {"symbol": "symbol", "broker": "broker", "algo": "algo", "portfolio": "portfolio_id"}, "arrival_ts"
    )
    con.register("_tca_rows", rel)
    try:
        return query(con, f"SELECT * FROM _tca_rows WHERE arrival_ts IS NOT NULL AND {where}", params)
    finally:
        con.unregister("_tca_rows")


def load_fills(
    lake, con: duckdb.DuckDBPyConnection, f: Filters, orders: pl.DataFrame, version: int | None = None
) -> pl.DataFrame:
    """Stored fills of ``orders`` (the frame :func:`load_orders` returned) matching the venue/symbol filters,
    with the order's broker and algo. The per-horizon mids are left out (they only audit a markout)."""
    rel = results(lake, con, f.start, f.end, part="fills", version=version)
    if rel is None or orders.is_empty():
        return pl.DataFrame()
    where, params = f.where({"symbol": "symbol", "venue": "venue"})  # dates: the orders' arrival (as stored)
    cols = ", ".join(f"r.{c}" for c in rel.columns if not c.startswith("mid_"))
    con.register("_tca_fill_rows", rel)
    con.register("_tca_order_keys", orders.select("order_id", "broker", "algo").to_arrow())
    try:
        return query(
            con,
            f"SELECT {cols}, o.broker, o.algo FROM _tca_fill_rows r JOIN _tca_order_keys o USING (order_id) "
            f"WHERE r.fill_id IS NOT NULL AND {where}",
            params,
        )
    finally:
        con.unregister("_tca_fill_rows")
        con.unregister("_tca_order_keys")


def _fill_scope_sql(lake, con: duckdb.DuckDBPyConnection, f: Filters, version: int | None) -> tuple[str, list] | None:
    """Registers the stored orders and fills of the filter's dates and returns a SQL relation (text, params)
    of the matching fills with their order's broker and algo: fill-level aggregates then run in DuckDB over
    the Parquet files, never materialising a year's fills in memory."""
    o_rel = results(lake, con, f.start, f.end, part="orders", version=version)
    f_rel = results(lake, con, f.start, f.end, part="fills", version=version)
    if o_rel is None or f_rel is None:
        return None
    con.register("_scope_orders", o_rel)
    con.register("_scope_fills", f_rel)
    ow, op = f.where(
        {"symbol": "symbol", "broker": "broker", "algo": "algo", "portfolio": "portfolio_id"}, "arrival_ts"
    )
    # The stored fills of a day are those of the orders that arrived that day (all of them, also after
    # midnight for a multi-day order): the date range applies to the order's arrival, as everywhere.
    fw, fp = f.where({"symbol": "symbol", "venue": "venue"})
    sql = f"""SELECT r.*, o.broker, o.algo, o.day FROM _scope_fills r
              JOIN (SELECT order_id, broker, algo, arrival_ts::DATE AS day FROM _scope_orders
                    WHERE arrival_ts IS NOT NULL AND {ow}) o
              USING (order_id) WHERE r.fill_id IS NOT NULL AND {fw}"""
    return sql, [*op, *fp]


def _clustered_ci_sql(src: str, measures: list[str], group: str, cluster: str, cube: bool) -> str:
    """Weighted means with order- (or day-) clustered 95% intervals per ``group`` (SQL expression over ``src``),
    as :func:`clustered_mean_ci`, for several measures in one scan. ``src``: fill rows with columns x<i> and
    w<i> for each measure i (``cube=False``), or fill-cube rows with <measure>__n/__sw/__swx (``cube=True``).
    Stage 1 sums each cluster (A_g = Σwx, B_g = Σw; from the cube, sums of its per-(order, venue) sums), stage 2
    the group's mean and its G clusters with data, stage 3 the cluster residuals Σ_g (A_g - m B_g)². Columns:
    grp, m<i>, se<i> (with the G/(G-1) factor), n<i> (fills), g<i> (clusters), t<i> (t_{G-1} 97.5%)."""
    cl = "order_id" if cluster == "order" else "day"
    if cluster not in CLUSTERS:
        raise ValueError(f"cluster must be one of {CLUSTERS}")
    if cube:
        s1 = [f"sum({m}__swx) AS a{i}, sum({m}__sw) AS b{i}, sum({m}__n) AS n{i}" for i, m in enumerate(measures)]
    else:
        ok = [f"x{i} IS NOT NULL AND w{i} IS NOT NULL" for i in range(len(measures))]
        s1 = [
            f"sum(w{i} * x{i}) FILTER (WHERE {o}) AS a{i}, sum(w{i}) FILTER (WHERE {o}) AS b{i}, "
            f"count(*) FILTER (WHERE {o}) AS n{i}"
            for i, o in enumerate(ok)
        ]
    k = range(len(measures))
    s2 = ", ".join(
        f"sum(a{i}) / nullif(sum(b{i}), 0) AS m{i}, sum(b{i}) AS sb{i}, sum(n{i}) AS n{i}, "
        f"count(*) FILTER (WHERE n{i} > 0) AS g{i}"
        for i in k
    )
    s3 = ", ".join(
        f"any_value(t.m{i}) AS m{i}, sqrt(any_value(t.g{i}) / nullif(any_value(t.g{i}) - 1, 0) "
        f"* sum((c.a{i} - t.m{i} * c.b{i}) ^ 2) FILTER (WHERE c.n{i} > 0)) / any_value(t.sb{i}) AS se{i}, "
        f"any_value(t.n{i}) AS n{i}, any_value(t.g{i}) AS g{i}, {_t975_sql(f'any_value(t.g{i}) - 1')} AS t{i}"
        for i in k
    )
    return f"""WITH c AS (SELECT {group} AS grp, {cl} AS cl, {", ".join(s1)} FROM ({src}) GROUP BY ALL),
                t AS (SELECT grp, {s2} FROM c GROUP BY grp)
           SELECT grp, {s3} FROM c JOIN t USING (grp) GROUP BY grp"""


def venue_costs(
    lake,
    con: duckdb.DuckDBPyConnection,
    f: Filters,
    version: int | None = None,
    min_fills: int = 30,
    use_cube: bool = True,
    cluster: str = "order",
) -> pl.DataFrame:
    """Fill arrival cost by venue, weighted by fill notional, with 95% intervals that resample whole parent
    orders (``cluster="order"``) or arrival days (``"day"``): :func:`_clustered_ci_sql`. From the fill cube when
    it can answer the filters, else in SQL over the stored fills (the same figures either way). Columns: venue,
    arrival_cost_bps, _lo, _hi, n = fills, orders (clusters; days for ``cluster="day"``), small_sample."""
    cube = _cube_scope_sql(lake, con, f, version) if use_cube else None
    if cube is not None:
        sql, params = cube
        ci = _clustered_ci_sql(sql, ["arrival_cost_bps"], "venue", cluster, cube=True)
    else:
        scope = _fill_scope_sql(lake, con, f, version)
        if scope is None:
            return pl.DataFrame()
        sql, params = scope
        src = f"SELECT venue, order_id, day, arrival_cost_bps AS x0, p * q AS w0 FROM ({sql})"
        ci = _clustered_ci_sql(src, ["arrival_cost_bps"], "venue", cluster, cube=False)
    out = query(
        con,
        f"""SELECT grp AS venue, m0 AS mean, m0 - t0 * se0 AS lo, m0 + t0 * se0 AS hi, n0 AS n, g0 AS orders
            FROM ({ci}) WHERE n0 > 0""",
        params,
    )
    return (
        out.rename({"mean": "arrival_cost_bps", "lo": "arrival_cost_bps_lo", "hi": "arrival_cost_bps_hi"})
        .with_columns(pl.col("n").alias("fills"), (pl.col("n") < min_fills).alias("small_sample"))
        .sort("arrival_cost_bps", descending=True, nulls_last=True)
    )


def markouts_sql(
    lake,
    con: duckdb.DuckDBPyConnection,
    f: Filters,
    by_venue: bool,
    version: int | None = None,
    horizons: tuple[float, ...] = MARKOUT_HORIZONS_S,
    use_cube: bool = True,
    cluster: str = "order",
) -> pl.DataFrame:
    """The markout curve (as :func:`markout_curve`) computed in DuckDB over the stored fills, or from the fill
    cube when it can answer the filters: one scan for every horizon, intervals clustered by parent order (or
    arrival day) as :func:`_clustered_ci_sql`."""
    g = "venue" if by_venue else "'all'"
    labels = [horizon_label(h) for h in horizons]
    cube = _cube_scope_sql(lake, con, f, version) if use_cube and set(labels) <= _CUBE_HORIZONS else None
    if cube is not None:
        sql, params = cube
        ci = _clustered_ci_sql(sql, [f"markout_cost_bps_{lb}" for lb in labels], g, cluster, cube=True)
    else:
        scope = _fill_scope_sql(lake, con, f, version)
        if scope is None:
            return pl.DataFrame()
        sql, params = scope
        cols = ", ".join(f"markout_cost_bps_{lb} AS x{i}, q AS w{i}" for i, lb in enumerate(labels))
        ci = _clustered_ci_sql(f"SELECT venue, order_id, day, {cols} FROM ({sql})", labels, g, cluster, cube=False)
    return _markout_frames(query(con, ci, params), horizons, by_venue)


def _markout_frames(wide: pl.DataFrame, horizons: tuple[float, ...], by_venue: bool) -> pl.DataFrame:
    """Wide per-group means (m<i>), standard errors (se<i>), t quantiles (t<i>), fills (n<i>) and clusters (g<i>)
    -> the long markout curve."""
    wide = wide.filter(pl.any_horizontal([pl.col(f"n{i}") > 0 for i in range(len(horizons))]))
    frames = [
        wide.select(
            pl.col("grp").alias("venue"),
            pl.lit(float(h)).alias("horizon_s"),
            pl.col(f"m{i}").alias("markout_bps"),
            (pl.col(f"m{i}") - pl.col(f"t{i}") * pl.col(f"se{i}")).alias("lo"),
            (pl.col(f"m{i}") + pl.col(f"t{i}") * pl.col(f"se{i}")).alias("hi"),
            pl.col(f"n{i}").cast(pl.UInt32).alias("n"),
            pl.col(f"g{i}").cast(pl.UInt32).alias("clusters"),
        )
        for i, h in enumerate(horizons)
    ]
    out = pl.concat(frames)
    keys = ["venue"] if by_venue else []
    return out.select(*keys, "horizon_s", "markout_bps", "lo", "hi", "n", "clusters").sort([*keys, "horizon_s"])
