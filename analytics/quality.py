"""Execution quality: venues, algos and brokers compared with honest uncertainty (ExecutionQualityReportEvent).

Inputs are the stored TCA rows (:mod:`analytics.tca`): one row per parent order, one per fill with the NBBO
(``mid, bid, ask``) prevailing at the fill and the mid at later horizons (``mid_<h>``). Conventions
(EVENTS.md): s = +1 BUY, -1 SELL; a cost is positive when the client is worse off.

Fill-level metrics (share-weighted over the key's fills that have a quote, m = mid, bid, ask of the NBBO prevailing
at the fill's ``received_ts``, Rule 605's time of order receipt, when TCA stored one, else at the fill; the row's
``nbbo_at`` says ``receipt``, ``fill`` or ``mixed``. Measured at the fill, the price moves during the routing
latency would count as price improvement or its loss; the markouts stay at the fill time, as in TCA):
- ``effective_spread_bps`` = Σ q · 2 s (p - m) / m · 1e4 / Σ q  (as defined for SEC Rule 605 reports);
- ``quoted_spread_bps`` = Σ q (ask - bid) / m · 1e4 / Σ q;
- ``eq_ratio`` = Σ q · 2 s (p - m) / Σ q (ask - bid): effective over quoted as a ratio of the share-weighted
  sums in currency (not a mean of per-fill ratios). 1 = paid the full quoted spread, 0 = midpoint, < 0 = better;
- ``price_improvement_bps`` = (ask - p) / m · 1e4 for buys, (p - bid) / m · 1e4 for sells (+ = better than the
  quote), share-weighted; ``price_improvement_per_share`` the same in currency;
  ``pct_improved / pct_at_quote / pct_outside_quote``: share of shares with improvement > 0 / = 0 / < 0 (within
  1e-7 of the mid, so float noise does not count as improvement);
- ``realized_spread_bps_<h>`` = Σ q · 2 s (p - m_{t+h}) / m · 1e4 / Σ q for h in 50ms, 1s, 15s, 60s, 300s (the
  2024 amendments to Rule 605); the effective spread minus what the market took back within h: the part of
  the spread the liquidity provider kept. ``markout_cost_bps_<h>`` as in TCA (s (p - m_{t+h}) / p, positive =
  adverse selection: the price moved against the fill after it);
- ``arrival_cost_bps``: for order dimensions, notional-weighted over the key's orders (TCA's order arrival
  cost); for ``venue`` (an order is split across venues) the fills' own s (p - P0) / P0, notional-weighted.
Auction fills (``liquidity = 'AUCTION'``) are measured like every other fill against the NBBO prevailing at the
print (a closing cross can print outside the last quote: it then counts as outside the quote).

Order-level metrics (order dimensions only; null for venue, whose orders are routed by someone else):
``fill_rate_qty`` = Σ filled / Σ ordered; ``fill_rate_orders`` = share of orders completely filled;
``cancel_rate`` = share of orders ended by CANCEL; ``avg_time_to_first_fill_s`` over orders with a fill;
``avg_time_to_completion_s`` = mean duration of completely filled orders. ``pct_size_improved`` (size
improvement, as in Rule 605's amendments): of the shares in fills executed at or better than the quote, the share
in fills larger than the size displayed at the touch they executed against (the ask size for a buy, the bid size
for a sell), from the NBBO sizes TCA stores with each fill.

Speed: a lake's fills are summed once per lake version and day into per-(order, venue) sums stored beside
the TCA (:func:`ensure_sums`; a year: ~25M fills -> ~3M rows); every filter, dimension and period then sums
those sums (DuckDB), never the fills again.

Uncertainty: every ratio metric R = Σ N / Σ D gets a 95% interval clustered on ORDERS: fills of one parent share
its decision, symbol, time window and mid path, so they are not independent, while orders are the unit a router
decides on. The interval is closed form: R ± t_{G-1} sqrt(G/(G-1) Σ_g u_g²) with u_g = (N_g - R D_g) / Σ D the
linearised influence of cluster g (CR1; Student's t on G-1 df), 93-97% Monte Carlo coverage with 40 orders x 25
fills where the percentile cluster bootstrap gave ~92% (tests/test_intervals.py). (``cluster="day"`` clusters
whole days instead: safer against market-wide days, but a short history gives too few clusters to say anything.)
For speed the clusters are dealt at random into at most ``max_blocks`` blocks (a block's sum is a sum of
independent clusters, so the variance is unchanged). The 0-100 score keeps a percentile interval from a seeded
cluster bootstrap over the same blocks (replicates in one matrix product).

Comparisons: differences between keys use the clustered variance of the difference (blocks shared by two keys
carry their covariance) and Student's t; p-values are Holm-adjusted across every pair compared
(:func:`analytics.cost_attribution._holm`). Keys with fewer than ``min_orders`` orders (or ``min_fills`` fills)
are flagged ``small_sample`` and left out of comparisons.

Difficulty adjustment: OLS of each order's arrival cost on one dummy per key plus the centred difficulty
covariates, every one KNOWN WHEN THE ORDER ARRIVED: size % ADV, spread at arrival, daily volatility, the
square-root-law terms σ·√(size % ADV) and σ·√(planned participation) with the planned participation of
:func:`analytics.pretrade.planned_pov` (the desk's earlier orders of the same algo and urgency), urgency, time of
day. Never the realised participation or anything else the broker or algo being judged chose: such a control
explains the choice's effect away. A covariate set by the key (the planned participation for algos or urgencies,
urgency for urgencies) is left out. A key's coefficient is then its expected cost on the desk's average order
mix, so a broker that gets the hard orders is not punished for them (unweighted: each
order, or each (order, venue) pair for venues, is one observation; outcome not winsorised). Intervals from
the cluster-robust covariance (Liang & Zeger 1986, CR1 as Stata's) with Student's t on G-1 df.

Score (0-100) per key and period, relative to the whole desk in the same period: each component's value v
against the desk's d gives z = sign · (v - d) / scale (for speed: -ln(v / d) / ln 2); the component scores
100 Φ(z) are averaged with the weights of :data:`SCORE_COMPONENTS` (renormalised over the components a key
has). 50 = the desk's average; the score is descriptive, the adjusted comparison is the one to act on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import warnings
from dataclasses import dataclass, field

import duckdb
import numpy as np
import polars as pl

from analytics import tca
from analytics.conventions import BPS, MARKOUT_HORIZONS_S, REALIZED_SPREAD_HORIZONS_S, horizon_label
from analytics.cost_attribution import _holm
from analytics.filters import Filters
from analytics.store import query, quote_ident

CODE_VERSION = "quality-4"  # bump when the stored sums change: they are keyed by it
FILL_DIMS = ("venue",)
ORDER_DIMS = ("algo", "broker", "trader", "urgency")
DIMENSIONS = (*FILL_DIMS, *ORDER_DIMS)
RS = [horizon_label(h) for h in REALIZED_SPREAD_HORIZONS_S]  # 50ms, 1s, 15s, 60s, 300s
MK = [horizon_label(h) for h in MARKOUT_HORIZONS_S]  # 1s, 5s, 30s, 60s, 300s, 1800s
Z95 = 1.959963984540054
AT_QUOTE_TOL = 1e-7  # |improvement| / mid below this is "at the quote"

# (component, sign: +1 higher is better, scale of one "sigma" in the component's unit, weight)
SCORE_COMPONENTS: tuple[tuple[str, int, float, float], ...] = (
    ("arrival_cost_bps", -1, 5.0, 0.30),
    ("markout_cost_bps_60s", -1, 2.0, 0.20),
    ("eq_ratio", -1, 0.10, 0.15),
    ("price_improvement_bps", +1, 1.0, 0.10),
    ("fill_rate_qty", +1, 0.10, 0.15),
    ("avg_time_to_first_fill_s", -1, math.log(2), 0.10),  # log ratio: twice the desk's wait = one scale
)

EVENT_COLUMNS = [
    "period_start", "period_end", "dimension", "key", "orders", "fills", "shares", "notional", "fill_rate_qty",
    "fill_rate_orders", "avg_time_to_first_fill_s", "score", "effective_spread_bps", "quoted_spread_bps",
    "eq_ratio", "price_improvement_bps", "pct_improved", "pct_at_quote", "pct_outside_quote", "pct_size_improved",
    *[f"realized_spread_bps_{h}" for h in RS], *[f"markout_cost_bps_{h}" for h in MK], "arrival_cost_bps",
    "arrival_cost_bps_lo", "arrival_cost_bps_hi", "markout_cost_bps_60s_lo", "markout_cost_bps_60s_hi",
    "adjusted_cost_bps", "adjusted_cost_bps_lo", "adjusted_cost_bps_hi", "nbbo_at",
]  # fmt: skip


@dataclass(frozen=True)
class QualityConfig:
    min_orders: int = 30
    min_fills: int = 100
    n_boot: int = 400
    max_blocks: int = 1000
    seed: int = 7
    cluster: str = "order"  # "order" or "day"
    alpha: float = 0.05


# ---------------------------------------------------------------------------------------------------
# Sums: every metric is a ratio of two sums, so blocks, periods and keys all aggregate by addition
# ---------------------------------------------------------------------------------------------------
_QOK = "mid > 0 AND bid IS NOT NULL AND ask IS NOT NULL"
_PI = "(CASE WHEN s = 1 THEN ask - p ELSE p - bid END)"  # price improvement per share, currency
_DISPLAYED = "(CASE WHEN s = 1 THEN ask_size ELSE bid_size END)"  # shares shown at the touch the fill took
_SZOK = f"{_QOK} AND {_DISPLAYED} > 0 AND {_PI} >= -{AT_QUOTE_TOL} * mid"  # at or better than the quote


def _fill_sums() -> dict[str, str]:
    """SQL aggregate per sum column over fills (s, q, p, mid, bid, ask, mid_<h>, markout_cost_bps_<h>,
    arrival_cost_bps)."""
    e = {
        "orders": "count(DISTINCT order_id)",
        "fills": "count(*)",
        "shares": "sum(q)",
        "notional": "sum(p * q)",
        "q_quoted": f"coalesce(sum(q) FILTER ({_QOK}), 0)",
        "n_quoted": f"count(*) FILTER ({_QOK})",  # fills measured against a quote ...
        "n_receipt": f"count(*) FILTER ({_QOK} AND at_receipt)",  # ... of which against the quote at receipt
        "eff_bps_q": f"coalesce(sum(q * 2 * s * (p - mid) / mid) FILTER ({_QOK}), 0) * {BPS}",
        "quoted_bps_q": f"coalesce(sum(q * (ask - bid) / mid) FILTER ({_QOK}), 0) * {BPS}",
        "eff_cur": f"coalesce(sum(q * 2 * s * (p - mid)) FILTER ({_QOK}), 0)",
        "quoted_cur": f"coalesce(sum(q * (ask - bid)) FILTER ({_QOK}), 0)",
        "pi_bps_q": f"coalesce(sum(q * {_PI} / mid) FILTER ({_QOK}), 0) * {BPS}",
        "pi_cur": f"coalesce(sum(q * {_PI}) FILTER ({_QOK}), 0)",
        "q_improved": f"coalesce(sum(q) FILTER ({_QOK} AND {_PI} > {AT_QUOTE_TOL} * mid), 0)",
        "q_at_quote": f"coalesce(sum(q) FILTER ({_QOK} AND abs({_PI}) <= {AT_QUOTE_TOL} * mid), 0)",
        "q_outside": f"coalesce(sum(q) FILTER ({_QOK} AND {_PI} < -{AT_QUOTE_TOL} * mid), 0)",
        # size improvement: of the shares of fills at or better than the quote with a displayed size, those in
        # fills larger than the size displayed at the touch they executed against (ask for a buy, bid for a sell)
        "q_size_base": f"coalesce(sum(q) FILTER ({_SZOK}), 0)",
        "q_size_improved": f"coalesce(sum(q) FILTER ({_SZOK} AND q > {_DISPLAYED}), 0)",
        "arr_num_f": "coalesce(sum(p * q * arrival_cost_bps) FILTER (arrival_cost_bps IS NOT NULL), 0)",
        "arr_den_f": "coalesce(sum(p * q) FILTER (arrival_cost_bps IS NOT NULL), 0)",
    }
    for h in RS:
        ok = f"{_QOK} AND mid_{h} IS NOT NULL"
        e[f"rs_{h}"] = f"coalesce(sum(q * 2 * s * (p - mid_{h}) / mid) FILTER ({ok}), 0) * {BPS}"
        e[f"q_rs_{h}"] = f"coalesce(sum(q) FILTER ({ok}), 0)"
    for h in MK:
        c = f"markout_cost_bps_{h}"
        e[f"mk_{h}"] = f"coalesce(sum(q * {c}) FILTER ({c} IS NOT NULL), 0)"
        e[f"q_mk_{h}"] = f"coalesce(sum(q) FILTER ({c} IS NOT NULL), 0)"
    return e


FILL_SUMS = _fill_sums()
FILL_INPUTS = ("s", "q", "p", "mid", "bid", "ask", "bid_size", "ask_size", "mid_r", "bid_r", "ask_r", "arrival_cost_bps",
               *[f"mid_{h}" for h in RS], *[f"markout_cost_bps_{h}" for h in MK])  # fmt: skip
_RECEIPT_OK = "mid_r > 0 AND bid_r IS NOT NULL AND ask_r IS NOT NULL"


def _nbbo_source(table: str, columns: list[str], where: str = "true") -> str:
    """The fill rows of ``table`` with ``mid, bid, ask`` = the NBBO prevailing at the fill's ``received_ts`` when
    TCA found one (Rule 605 measures against the NBBO at the time of order receipt), else at the fill itself, and
    ``at_receipt`` saying which. Inputs missing from older stored rows come out null (:func:`_missing_inputs`)."""
    r = f"({_RECEIPT_OK})"
    return f"""(SELECT * REPLACE (CASE WHEN {r} THEN mid_r ELSE mid END AS mid, CASE WHEN {r} THEN bid_r ELSE bid END AS bid,
                                  CASE WHEN {r} THEN ask_r ELSE ask END AS ask),
                       coalesce({r}, false) AS at_receipt
                FROM (SELECT *{_missing_inputs(columns)} FROM {table} WHERE {where}))"""


def _missing_inputs(columns: list[str]) -> str:
    """``, NULL::DOUBLE AS c`` for each input the stored rows lack (rows stored by an older TCA code version):
    the metrics that need it come out null instead of failing."""
    return "".join(f", NULL::DOUBLE AS {c}" for c in FILL_INPUTS if c not in columns)


# metric -> (numerator sum, denominator sum)
FILL_RATIOS: dict[str, tuple[str, str]] = {
    "effective_spread_bps": ("eff_bps_q", "q_quoted"),
    "quoted_spread_bps": ("quoted_bps_q", "q_quoted"),
    "eq_ratio": ("eff_cur", "quoted_cur"),
    "price_improvement_bps": ("pi_bps_q", "q_quoted"),
    "price_improvement_per_share": ("pi_cur", "q_quoted"),
    "pct_improved": ("q_improved", "q_quoted"),
    "pct_at_quote": ("q_at_quote", "q_quoted"),
    "pct_outside_quote": ("q_outside", "q_quoted"),
    "pct_size_improved": ("q_size_improved", "q_size_base"),
    **{f"realized_spread_bps_{h}": (f"rs_{h}", f"q_rs_{h}") for h in RS},
    **{f"markout_cost_bps_{h}": (f"mk_{h}", f"q_mk_{h}") for h in MK},
}
ORDER_RATIOS: dict[str, tuple[str, str]] = {
    "fill_rate_qty": ("filled_qty", "order_qty"),
    "fill_rate_orders": ("n_full", "n_orders"),
    "cancel_rate": ("n_cancel", "n_orders"),
    "avg_time_to_first_fill_s": ("ttff_sum", "n_ttff"),
    "avg_time_to_completion_s": ("comp_sum", "n_comp"),
    "arrival_cost_bps": ("arr_num_o", "arr_den_o"),
}


def _order_sum_exprs() -> list[pl.Expr]:
    filled = pl.col("filled_qty").fill_null(0)
    full = filled >= pl.col("order_qty")
    ttff = pl.col("time_to_first_fill_s")
    arr_ok = pl.col("arrival_cost_bps").is_not_null() & (filled > 0)
    done = full & pl.col("duration_s").is_not_null()
    return [
        pl.len().cast(pl.Float64).alias("n_orders"),
        pl.col("order_qty").sum().cast(pl.Float64).alias("order_qty"),
        filled.sum().cast(pl.Float64).alias("filled_qty"),
        full.sum().cast(pl.Float64).alias("n_full"),
        (pl.col("end_action") == "CANCEL").fill_null(False).sum().cast(pl.Float64).alias("n_cancel"),
        ttff.sum().cast(pl.Float64).alias("ttff_sum"),
        ttff.is_not_null().sum().cast(pl.Float64).alias("n_ttff"),
        pl.col("duration_s").filter(done).sum().cast(pl.Float64).alias("comp_sum"),
        done.sum().cast(pl.Float64).alias("n_comp"),
        (pl.col("arrival_cost_bps") * pl.col("filled_notional")).filter(arr_ok).sum().alias("arr_num_o"),
        pl.col("filled_notional").filter(arr_ok).sum().cast(pl.Float64).alias("arr_den_o"),
    ]


def nbbo_at() -> pl.Expr:
    """``nbbo_at`` of a row from its sums: ``receipt`` when every quoted fill was measured against the NBBO at its
    received_ts, ``fill`` when none was (no received_ts, or no quote before it that day), else ``mixed``."""
    n, r = pl.col("n_quoted"), pl.col("n_receipt")
    return (
        pl.when(n.fill_null(0) == 0)
        .then(None)
        .when(r == 0)
        .then(pl.lit("fill"))
        .when(r >= n)
        .then(pl.lit("receipt"))
        .otherwise(pl.lit("mixed"))
        .alias("nbbo_at")
    )


def _ratios(df: pl.DataFrame, order_level: bool) -> pl.DataFrame:
    """Metric columns from summed columns (a ratio with a zero denominator is null)."""
    ratios = dict(FILL_RATIOS)
    if order_level:
        ratios |= ORDER_RATIOS
    else:
        ratios["arrival_cost_bps"] = ("arr_num_f", "arr_den_f")
    exprs = [
        pl.when(pl.col(d) > 0).then(pl.col(n) / pl.col(d)).otherwise(None).alias(m)
        for m, (n, d) in ratios.items()
        if n in df.columns and d in df.columns
    ]
    return df.with_columns(exprs)


# ---------------------------------------------------------------------------------------------------
# Tiny-data entry points (one formula source: the same SQL and expressions as the lake path)
# ---------------------------------------------------------------------------------------------------
def fill_sums(fills: pl.DataFrame, group: list[str]) -> pl.DataFrame:
    """The sum columns of an in-memory fills frame (stored fill rows) per ``group`` columns (or one row)."""
    con = duckdb.connect(":memory:")
    try:
        con.register("_f", fills.to_arrow())
        g = ", ".join(quote_ident(c) for c in group) if group else "'all' AS key"
        sums = ", ".join(f"{sql} AS {name}" for name, sql in FILL_SUMS.items())
        src = _nbbo_source("_f", fills.columns)
        return query(con, f"SELECT {g}, {sums} FROM {src} GROUP BY ALL ORDER BY ALL")
    finally:
        con.close()


def fill_metrics(fills: pl.DataFrame, by: str | None = None) -> pl.DataFrame:
    """Fill-level metrics of an in-memory fills frame (stored fill rows), per ``by`` column or overall."""
    df = fill_sums(fills, [by] if by else [])
    return _ratios(df.rename({by: "key"}) if by else df, order_level=False).with_columns(nbbo_at())


def order_metrics(orders: pl.DataFrame, by: str | None = None) -> pl.DataFrame:
    """Order-level metrics (fill rates, cancel rate, speed, notional-weighted arrival cost) per ``by``."""
    keys = [by] if by else []
    df = orders.group_by(keys).agg(_order_sum_exprs()) if keys else orders.select(_order_sum_exprs())
    return _ratios(df, order_level=True).sort(keys) if keys else _ratios(df, order_level=True)


# ---------------------------------------------------------------------------------------------------
# Keys, clusters and blocks
# ---------------------------------------------------------------------------------------------------
def parse_dims(by: str | tuple[str, ...]) -> tuple[str, ...]:
    """``"venue"``, ``"broker+algo"`` or a tuple: the dimension(s) of a comparison, checked against a whitelist
    (they become SQL identifiers)."""
    dims = tuple(by.split("+")) if isinstance(by, str) else tuple(by)
    bad = [d for d in dims if d not in DIMENSIONS]
    if not dims or bad or len(set(dims)) != len(dims):
        raise ValueError(f"unknown dimension(s) {bad or by!r}: use one or two of {', '.join(DIMENSIONS)}")
    return dims


def _key_expr(dims: tuple[str, ...]) -> pl.Expr:
    return pl.concat_str([pl.col(d).cast(pl.String).fill_null("(none)") for d in dims], separator=" / ")


def with_blocks(orders: pl.DataFrame, cfg: QualityConfig) -> pl.DataFrame:
    """Add ``block`` (the bootstrap's resampling unit: the order's cluster, or one of ``max_blocks`` random
    groups of clusters), ``week`` and ``month`` (UTC arrival date truncated)."""
    cl = pl.col("order_id") if cfg.cluster == "order" else pl.col("arrival_ts").dt.date().cast(pl.String)
    n = orders.select(cl.n_unique()).item() if orders.height else 0
    if n <= cfg.max_blocks:
        block = cl.rank("dense").cast(pl.Int64) - 1
    else:
        block = (cl.hash(cfg.seed) % cfg.max_blocks).cast(pl.Int64)
    d = pl.col("arrival_ts").dt.date()
    return orders.with_columns(
        block.alias("block"), d.dt.truncate("1w").alias("week"), d.dt.truncate("1mo").alias("month")
    )


# ---------------------------------------------------------------------------------------------------
# The lake path. Stage 1 (once per day's inputs, stored like the TCA): the fills of each order are summed per
# (order, venue) into derived/quality-*/day=*/<fingerprint>/order_venue.parquet, keyed by the fingerprint of the
# day's stored TCA rows, which are all it reads (so a day recomputes exactly when its TCA does) (a year: ~25M fills ->
# ~3M rows). Stage 2 (per filter): those sums joined to the filter's orders, grouped by (block, week, month,
# key), rolled up to (block, key), (week, key), (month, key). Sums of sums: the same figures as one pass.
# ---------------------------------------------------------------------------------------------------
SUMS = CODE_VERSION
SUM_COLS = [n for n in FILL_SUMS if n not in ("orders", "fills")]


def sum_fingerprints(lake, version: int | None, start: dt.date | None = None, end: dt.date | None = None):
    """Day -> the input fingerprint of its per-(order, venue) sums: this code version and the fingerprint of the
    day's TCA rows (the only thing the sums read), for the days whose TCA fills are stored for ``version``."""
    fps = tca.stored_fingerprints(lake, version, start, end, part="fills")
    return {d: lake.fingerprint([], SUMS, fp) for d, fp in fps.items()}


def missing_sum_days(lake, version: int, start: dt.date | None = None, end: dt.date | None = None) -> list[dt.date]:
    """Days whose TCA fills are stored for ``version`` but whose per-(order, venue) sums are not yet."""
    fps = sum_fingerprints(lake, version, start, end)
    return sorted(d for d, fp in fps.items() if not lake.has_derived(SUMS, d, fp, "order_venue"))


def ensure_sums(lake, con: duckdb.DuckDBPyConnection, start=None, end=None, version: int | None = None, progress=None):
    """Store the per-(order, venue) sums of every day in ``start..end`` not yet stored (call tca.ensure first).
    ``q_tod`` = Σ q (ts - the order's arrival-day midnight) in seconds, for the share-weighted time to execution."""
    v = lake.version() if version is None else version
    lake.sweep_derived(SUMS)
    fps = sum_fingerprints(lake, v, start, end)
    days = sorted(d for d, fp in fps.items() if not lake.has_derived(SUMS, d, fp, "order_venue"))
    sums = ", ".join(f"{sql} AS {name}" for name, sql in FILL_SUMS.items() if name != "orders")
    for i, day in enumerate(days):  # one query per day file (not per row): ~0.1 s a day
        if progress:
            progress(i / len(days), f"fill sums of {day}")
        rel = tca.results(lake, con, day, day, part="fills", version=v)
        if rel is None or "q" not in rel.columns:
            df = pl.DataFrame(schema={"order_id": pl.String, "venue": pl.String, "fills": pl.Int64})
        else:
            con.register("_q_day", rel)
            midnight = dt.datetime.combine(day, dt.time(), dt.UTC)
            try:
                df = query(
                    con,
                    f"""SELECT order_id, venue, {sums}, sum(q * (epoch_us(ts) - epoch_us(?::TIMESTAMPTZ))) / 1e6 AS q_tod
                        FROM {_nbbo_source("_q_day", rel.columns, "fill_id IS NOT NULL")}
                        GROUP BY ALL""",
                    [midnight],
                )
            finally:
                con.unregister("_q_day")
        lake.write_derived(SUMS, day, fps[day], "order", _per_order(df))
        lake.write_derived(SUMS, day, fps[day], "order_venue", df)  # last: marks the day done
    return v


def _per_order(ov: pl.DataFrame) -> pl.DataFrame:
    """The (order, venue) sums collapsed per order: what order dimensions and Rule 605 read (~6x fewer rows)."""
    return ov.group_by("order_id").agg(pl.exclude("order_id", "venue").sum()).sort("order_id")


def _scope(lake, con, f: Filters, keyed: pl.DataFrame, dims: tuple[str, ...], version: int | None):
    """SQL (and params) of the filter's stored (order, venue) sums joined to ``keyed`` orders, with ``key``."""
    v = lake.version() if version is None else version
    ensure_sums(lake, con, f.start, f.end, v)
    by_venue = "venue" in dims
    fps = sum_fingerprints(lake, v, f.start, f.end)
    rel = lake.derived_scan(con, SUMS, fps, "order_venue" if by_venue else "order")
    if rel is None:
        return None
    con.register("_q_sums", rel)
    cols = ["order_id", "block", "week", "month", "arrival_ts", *[d for d in dims if d in ORDER_DIMS]]
    con.register("_q_keys", keyed.select(cols).to_arrow())
    parts = [
        "coalesce(CAST(r.venue AS VARCHAR), '(none)')"
        if d == "venue"
        else f"coalesce(CAST(k.{d} AS VARCHAR), '(none)')"
        for d in dims
    ]
    key = parts[0] if len(parts) == 1 else f"concat_ws(' / ', {', '.join(parts)})"
    # The other filters are the orders' (applied to ``keyed``). A venue filter needs the (order, venue) rows.
    if f.venue and not by_venue:
        rel = lake.derived_scan(con, SUMS, fps, "order_venue")
        con.register("_q_sums", rel)
    fw, fp = f.where({"venue": "venue"}, None)
    sql = f"""SELECT r.*, k.block, k.week, k.month, k.arrival_ts AS order_arrival_ts, {key} AS key
              FROM (SELECT * FROM _q_sums WHERE fills > 0 AND {fw}) r JOIN _q_keys k USING (order_id)"""
    return sql, fp


def _stage2(distinct: bool = False) -> str:
    """Aggregates of stage 2 (sums of the stored sums)."""
    return ", ".join(
        [
            # one row per (order, key) whenever a key holds the venue or rows are per order
            "count(DISTINCT order_id) AS orders" if distinct else "count(*) AS orders",
            "sum(fills) AS fills",
            *[f"coalesce(sum({c}), 0) AS {c}" for c in SUM_COLS],
        ]
    )


def _release(con) -> None:
    for t in ("_q_sums", "_q_keys"):
        with contextlib.suppress(duckdb.Error):
            con.unregister(t)


@dataclass
class Analysis:
    """Everything the leaderboard, trends, comparisons and the report need, for one dimension."""

    dimension: str
    keys: list[str]
    leaderboard: pl.DataFrame  # one row per key: metrics, 95% intervals, score, small_sample
    trend: pl.DataFrame  # one row per (period kind, period, key): metrics and score, change flag
    reps: dict[str, np.ndarray] = field(default_factory=dict)  # metric -> (B, K) bootstrap replicates (the score)
    infl: dict[str, np.ndarray] = field(default_factory=dict)  # ratio metric -> (G, K) block influences
    span: tuple[dt.date | None, dt.date | None] = (None, None)


def analyse(
    lake,
    con: duckdb.DuckDBPyConnection,
    f: Filters,
    by: str | tuple[str, ...] = "venue",
    version: int | None = None,
    orders: pl.DataFrame | None = None,
    cfg: QualityConfig | None = None,
) -> Analysis:
    """Metrics, order-clustered intervals, scores and trends per key of ``by`` over the filter's stored TCA rows
    (call :func:`analytics.tca.ensure` first). ``orders``: the filter's stored order rows if already loaded."""
    cfg = cfg or QualityConfig()
    dims = parse_dims(by)
    name = "+".join(dims)
    if orders is None:
        orders = tca.load_orders(lake, con, f, version)
    if orders.is_empty():
        return Analysis(name, [], pl.DataFrame(), pl.DataFrame())
    keyed = with_blocks(orders, cfg)
    scope = _scope(lake, con, f, keyed, dims, version)
    if scope is None:
        return Analysis(name, [], pl.DataFrame(), pl.DataFrame())
    sql, params = scope
    distinct = bool(f.venue) and "venue" not in dims  # (order, venue) rows of an order-level key
    try:  # finest grain first (orders nest in blocks, weeks and months: distinct counts add up), then roll-ups
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _q_fine AS SELECT block, week, month, key, {_stage2(distinct)} FROM ({sql}) GROUP BY ALL",
            params,
        )
        fs = query(
            con,
            f"""SELECT block, week, month, key, {", ".join(f"sum({c}) AS {c}" for c in ("orders", "fills", *SUM_COLS))}
                FROM _q_fine GROUP BY GROUPING SETS ((block, key), (week, key), (month, key))""",
        )
        con.execute("DROP TABLE IF EXISTS _q_fine")
    finally:
        _release(con)
    order_level = all(d in ORDER_DIMS for d in dims)
    fs = fs.with_columns(pl.col("orders").cast(pl.Float64))
    if order_level:
        ko = keyed.with_columns(_key_expr(dims).alias("key"))
        os_ = [ko.group_by(g, "key").agg(_order_sum_exprs()) for g in ("block", "week", "month")]
    else:
        os_ = [None, None, None]
    blocks = _join_sums(fs.filter(pl.col("block").is_not_null()), os_[0], "block")
    lo_d, hi_d = keyed["arrival_ts"].min().date(), keyed["arrival_ts"].max().date()
    an = bootstrap(blocks, name, order_level, cfg)
    an.span = (f.start or lo_d, f.end or hi_d)
    trends = []
    for i, kind in ((1, "week"), (2, "month")):
        per = _join_sums(fs.filter(pl.col(kind).is_not_null()), os_[i], kind).rename({kind: "period_start"})
        trends.append(_trend(per, kind, order_level, cfg))
    an.trend = pl.concat(trends, how="diagonal_relaxed") if trends else pl.DataFrame()
    return an


def _join_sums(fs: pl.DataFrame, os_: pl.DataFrame | None, g: str) -> pl.DataFrame:
    fs = fs.select(g, "key", *FILL_SUMS)
    if os_ is None:
        return fs
    return fs.join(os_, on=[g, "key"], how="full", coalesce=True).fill_null(0)


def _metric_arrays(sums: np.ndarray, cols: list[str], order_level: bool) -> dict[str, np.ndarray]:
    """Ratio metrics over the last axis of ``sums`` (any leading shape)."""
    ratios = dict(FILL_RATIOS)
    if order_level:
        ratios |= ORDER_RATIOS
    else:
        ratios["arrival_cost_bps"] = ("arr_num_f", "arr_den_f")
    ix = {c: i for i, c in enumerate(cols)}
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for m, (n, d) in ratios.items():
            den = sums[..., ix[d]]
            out[m] = np.where(den > 0, sums[..., ix[n]] / np.where(den > 0, den, 1.0), np.nan)
    return out


def _ratio_pairs(order_level: bool) -> dict[str, tuple[str, str]]:
    ratios = dict(FILL_RATIOS)
    if order_level:
        ratios |= ORDER_RATIOS
    else:
        ratios["arrival_cost_bps"] = ("arr_num_f", "arr_den_f")
    return ratios


def _influences(arr: np.ndarray, cols: list[str], order_level: bool) -> dict[str, np.ndarray]:
    """Per ratio metric R_k = Σ_g N_gk / Σ_g D_gk (blocks g, keys k): the linearised influence of each block,
    u_gk = (N_gk - R_k D_gk) / D_k, shape (G, K), nan where D_gk = 0 (no data of the key there). The clustered variance of R_k is G/(G-1) Σ_g u_gk² (CR1), of a
    difference R_a - R_b it is G/(G-1) Σ_g (u_ga - u_gb)² (blocks shared by both keys carry their covariance)."""
    ix = {c: i for i, c in enumerate(cols)}
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for m, (n, d) in _ratio_pairs(order_level).items():
            num, den = arr[..., ix[n]], arr[..., ix[d]]
            dk = den.sum(0)
            r = np.where(dk > 0, num.sum(0) / np.where(dk > 0, dk, 1.0), np.nan)
            # nan where the block holds no data for the key's metric: it is not one of the key's clusters
            out[m] = np.where((dk > 0) & (den > 0), (num - r * den) / np.where(dk > 0, dk, 1.0), np.nan)
    return out


def _t975(df: np.ndarray) -> np.ndarray:
    """Student's t 97.5% quantile (nan below 1 df)."""
    from scipy.special import stdtrit  # scipy.special, not scipy.stats: ~1 s less at a cold start

    df = np.asarray(df, dtype=np.float64)
    return np.where(df >= 1, stdtrit(np.where(df >= 1, df, 1.0), 0.975), np.nan)


def _p_t(z: float, df: float) -> float:
    """Two-sided p-value of a t statistic (normal when df is infinite)."""
    from scipy.special import ndtr, stdtr

    if not np.isfinite(z):
        return 1.0
    if not np.isfinite(df):
        return float(2 * ndtr(-abs(z)))
    return float(2 * stdtr(df, -abs(z))) if df >= 1 else 1.0


def score_arrays(values: dict[str, np.ndarray], desk: dict[str, np.ndarray]) -> np.ndarray:
    """0-100 score from component values against the desk's (arrays broadcast: keys x replicates)."""
    from scipy.special import ndtr  # imported here: scipy costs ~1 s at a cold start and only scores need it

    num, den = 0.0, 0.0
    for comp, sign, scale, w in SCORE_COMPONENTS:
        if comp not in values:
            continue
        v, d = values[comp], desk[comp]
        with np.errstate(divide="ignore", invalid="ignore"):
            if comp == "avg_time_to_first_fill_s":
                z = -np.log(v / d) / scale
            else:
                z = sign * (v - d) / scale
        ok = np.isfinite(z)
        num = num + np.where(ok, w * 100 * ndtr(np.where(ok, z, 0.0)), 0.0)
        den = den + np.where(ok, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.asarray(den) > 0, num / np.where(np.asarray(den) > 0, den, 1.0), np.nan)


def bootstrap(blocks: pl.DataFrame, name: str, order_level: bool, cfg: QualityConfig) -> Analysis:
    """Point estimates, 95% intervals and scores per key from per-(block, key) sums. Ratio metrics: the closed-form
    cluster-robust interval R ± t_{G-1} sqrt(G/(G-1) Σ_g u_g²) with the blocks' linearised influences u
    (:func:`_influences`; G = the key's blocks with data). The percentile cluster bootstrap it replaces covered
    ~92% at "95%" with 40 orders (tests/test_intervals.py). Score: percentile interval of replicates that weight
    block g by w_bg ~ Multinomial(G, 1/G) (the cluster bootstrap), all replicates in one einsum."""
    cols = [c for c in blocks.columns if c not in ("block", "key")]
    keys = sorted(blocks["key"].unique().to_list())
    kix = {k: i for i, k in enumerate(keys)}
    nb = int(blocks["block"].max()) + 1
    arr = np.zeros((nb, len(keys), len(cols)))
    bi = blocks["block"].to_numpy().astype(np.int64)
    ki = np.array([kix[k] for k in blocks["key"].to_list()], dtype=np.int64)
    arr[bi, ki, :] = blocks.select(cols).to_numpy().astype(np.float64)
    w = _multinomial_weights(nb, cfg.n_boot, cfg.seed)  # (B, G)
    rep = np.einsum("bg,gkm->bkm", w, arr, optimize=True)  # (B, K, m)
    point = arr.sum(0)  # (K, m)
    pm = _metric_arrays(point, cols, order_level)
    rm = _metric_arrays(rep, cols, order_level)
    dm = _metric_arrays(point.sum(0), cols, order_level)
    drm = _metric_arrays(rep.sum(1), cols, order_level)
    pscore = score_arrays(pm, dm)
    rscore = score_arrays(rm, {k: v[:, None] for k, v in drm.items()})
    rm["score"], pm["score"] = rscore, pscore
    ix = {c: i for i, c in enumerate(cols)}
    data: dict[str, object] = {
        "dimension": [name] * len(keys),
        "key": keys,
        "orders": point[:, ix["n_orders" if order_level else "orders"]].astype(np.int64),
        "fills": point[:, ix["fills"]].astype(np.int64),
        "shares": point[:, ix["shares"]],
        "notional": point[:, ix["notional"]],
        "n_quoted": point[:, ix["n_quoted"]],
        "n_receipt": point[:, ix["n_receipt"]],
    }
    infl = _influences(arr, cols, order_level)
    with warnings.catch_warnings():  # a key with no data for a metric: all-NaN replicates give a null interval
        warnings.simplefilter("ignore", RuntimeWarning)
        for m, v in pm.items():
            data[m] = v
            if m in infl:  # ratio metrics: closed-form clustered interval, m ± t_{G-1} sqrt(G/(G-1) Σ u²)
                g_k = np.isfinite(infl[m]).sum(0).astype(np.float64)  # the key's blocks with data for m
                se = np.sqrt(g_k / (g_k - 1) * np.nansum(infl[m] ** 2, axis=0))
                data[f"{m}_lo"], data[f"{m}_hi"] = v - _t975(g_k - 1) * se, v + _t975(g_k - 1) * se
            else:  # the score: percentile interval of the cluster bootstrap (descriptive)
                data[f"{m}_lo"] = np.nanpercentile(rm[m], 2.5, axis=0) if len(rm[m]) else v
                data[f"{m}_hi"] = np.nanpercentile(rm[m], 97.5, axis=0) if len(rm[m]) else v
    lb = pl.DataFrame(data).with_columns(pl.col(pl.Float64).fill_nan(None))
    lb = lb.with_columns(nbbo_at()).drop("n_quoted", "n_receipt")
    missing = [f"{m}{x}" for m in ORDER_RATIOS for x in ("", "_lo", "_hi") if f"{m}{x}" not in lb.columns]
    lb = lb.with_columns(pl.lit(None, pl.Float64).alias(c) for c in missing)  # venue rows: not a venue's metric
    lb = lb.with_columns(
        ((pl.col("orders") < cfg.min_orders) | (pl.col("fills") < (cfg.min_fills if not order_level else 0))).alias(
            "small_sample"
        )
    ).sort("score", descending=True, nulls_last=True)
    lb = lb.with_columns(
        pl.when(~pl.col("small_sample")).then(pl.col("score").rank("ordinal", descending=True)).alias("rank")
    )
    an = Analysis(name, keys, lb, pl.DataFrame(), {**rm, "_keys": np.array(keys, dtype=object)})
    an.infl = infl
    return an


def _trend(per: pl.DataFrame, kind: str, order_level: bool, cfg: QualityConfig) -> pl.DataFrame:
    """Per (period, key): metrics and score against the desk of the period, and a change flag."""
    if per.is_empty():
        return pl.DataFrame()
    cols = [c for c in per.columns if c not in ("period_start", "key")]
    desk = per.group_by("period_start").agg(pl.col(cols).sum())
    m = _ratios(per, order_level)
    d = _ratios(desk, order_level).select(
        "period_start", *[pl.col(c).alias(f"_d_{c}") for c, *_ in SCORE_COMPONENTS if c in m.columns]
    )
    m = m.join(d, on="period_start", how="left")
    vals = {c: m[c].to_numpy().astype(np.float64) for c, *_ in SCORE_COMPONENTS if c in m.columns}
    desk_v = {c: m[f"_d_{c}"].to_numpy().astype(np.float64) for c in vals}
    n_col = "n_orders" if order_level else "orders"
    out = m.select(
        pl.lit(kind).alias("period"), "period_start", "key", pl.col(n_col).cast(pl.Int64).alias("orders"),
        pl.col("fills").cast(pl.Int64), "shares", "notional", *[c for c in (*FILL_RATIOS, *ORDER_RATIOS) if c in m.columns],
        nbbo_at(),
    ).with_columns(pl.Series("score", score_arrays(vals, desk_v)).fill_nan(None))  # fmt: skip
    return detect_changes(out.with_columns((pl.col("orders") < cfg.min_orders).alias("small_sample")))


def detect_changes(trend: pl.DataFrame, lookback: int = 4, k_sd: float = 3.0, floor: float = 10.0) -> pl.DataFrame:
    """Flag a period whose score moved more than max(k_sd x sd, floor points) from the mean of the key's
    previous ``lookback`` periods (at least 3 of them, small-sample periods ignored): a simple, explainable
    control-chart rule. Adds ``baseline``, ``change`` (score - baseline) and ``changed``."""
    t = trend.sort("key", "period_start")
    s = pl.when(~pl.col("small_sample")).then(pl.col("score"))
    prev = s.shift(1)
    base = prev.rolling_mean(lookback, min_samples=3).over("key")
    sd = prev.rolling_std(lookback, min_samples=3).over("key")
    return (
        t.with_columns(base.alias("baseline"), sd.alias("_sd"))
        .with_columns(
            (pl.col("score") - pl.col("baseline")).alias("change"),
        )
        .with_columns(
            (
                (pl.col("change").abs() > pl.max_horizontal(k_sd * pl.col("_sd"), pl.lit(floor)))
                & ~pl.col("small_sample")
            )
            .fill_null(False)
            .alias("changed")
        )
        .drop("_sd")
    )


def markout_curve(an: Analysis) -> pl.DataFrame:
    """The leaderboard's markouts as a curve, long form (key, horizon_s, markout_bps, lo, hi, n = fills), for
    charts.markout_lines: from the stored sums, so a year's curve never rescans the fills."""
    lb = an.leaderboard
    if lb.is_empty():
        return pl.DataFrame()
    frames = [
        lb.select(
            pl.col("key").alias(an.dimension),
            pl.lit(float(h)).alias("horizon_s"),
            pl.col(f"markout_cost_bps_{lb_}").alias("markout_bps"),
            pl.col(f"markout_cost_bps_{lb_}_lo").alias("lo"),
            pl.col(f"markout_cost_bps_{lb_}_hi").alias("hi"),
            pl.col("fills").cast(pl.UInt32).alias("n"),
        )
        for h, lb_ in zip(MARKOUT_HORIZONS_S, MK, strict=True)
    ]
    return pl.concat(frames).sort(an.dimension, "horizon_s")


# ---------------------------------------------------------------------------------------------------
# Comparisons between keys (raw, from the bootstrap replicates) with Holm's correction
# ---------------------------------------------------------------------------------------------------
def compare_keys(an: Analysis, metric: str, alpha: float = 0.05) -> pl.DataFrame:
    """Every pair of keys with enough data: ``diff`` = metric(a) - metric(b) with its 95% interval from the
    clustered variance of the difference, G/(G-1) Σ_g (u_ga - u_gb)² over the G blocks where either key has data
    (orders split across both keys carry their covariance), Student's t on G-1 df, p-values Holm-adjusted over
    all pairs, ``significant``. The score (not a ratio) falls back on its bootstrap replicates."""
    lb = an.leaderboard
    if lb.is_empty() or (metric not in an.infl and metric not in an.reps):
        return pl.DataFrame()
    keys = list(an.reps["_keys"])
    ok = lb.filter(~pl.col("small_sample") & pl.col(metric).is_not_null())
    point = dict(zip(ok["key"], ok[metric], strict=True))
    good = [k for k in keys if k in point]
    rows = []
    for i, a in enumerate(good):
        for b in good[i + 1 :]:
            diff = point[a] - point[b]
            if metric in an.infl:
                u = an.infl[metric]
                ua, ub = u[:, keys.index(a)], u[:, keys.index(b)]
                has = np.isfinite(ua) | np.isfinite(ub)
                d = np.nan_to_num(ua) - np.nan_to_num(ub)
                g = float(has.sum())
                se = float(np.sqrt(g / (g - 1) * (d[has] ** 2).sum())) if g > 1 else float("nan")
                tq = float(_t975(np.array(g - 1)))
            else:
                rd = an.reps[metric][:, keys.index(a)] - an.reps[metric][:, keys.index(b)]
                rd = rd[np.isfinite(rd)]
                se, g, tq = (float(rd.std(ddof=1)) if rd.size > 2 else float("nan")), float("inf"), Z95
            lo, hi = (diff - tq * se, diff + tq * se) if np.isfinite(se) else (None, None)
            p = _p_t(diff / se, g - 1) if se and se > 0 else 1.0
            rows.append({"key_a": a, "key_b": b, "diff": diff, "diff_lo": lo, "diff_hi": hi, "se": se, "p_value": p})
    return _finish_pairs(rows, metric, an.dimension, alpha)


def _finish_pairs(rows: list[dict], metric: str, dimension: str, alpha: float) -> pl.DataFrame:
    if not rows:
        return pl.DataFrame()
    df = pl.DataFrame(rows)
    df = df.with_columns(pl.Series("p_holm", _holm(df["p_value"].to_list())))
    return df.with_columns(
        pl.lit(dimension).alias("dimension"),
        pl.lit(metric).alias("metric"),
        (pl.col("p_holm") < alpha).alias("significant"),
    ).sort("p_holm", "diff")


# ---------------------------------------------------------------------------------------------------
# Difficulty adjustment: regression with key dummies and centred difficulty covariates
# ---------------------------------------------------------------------------------------------------
NUMERIC_FEATURES = (
    "sqrt_size_pct_adv", "spread_at_arrival_bps", "volatility_bps", "sigma_sqrt_size_bps", "sqrt_planned_pov",
    "sigma_sqrt_planned_pov_bps",
)  # fmt: skip


def planned_participation(orders: pl.DataFrame) -> pl.Series:
    """Each order's PLANNED participation (decimal): :func:`analytics.pretrade.planned_pov` of its algo and urgency
    from the ``orders`` (TCA rows) that arrived before its day, the rule every pre-trade price uses. Known at
    arrival, unlike the order's realised participation, which the broker or algo being judged chose."""
    from analytics import pretrade  # imported here: pretrade pulls in the impact models (JAX)

    rows = orders.select(
        pl.col("algo"), pl.col("urgency"), pl.col("arrival_ts").dt.convert_time_zone("UTC").dt.date().alias("asof")
    )
    return pretrade.planned_pov(orders, rows)


def difficulty_features(orders: pl.DataFrame) -> pl.DataFrame:
    """The covariates of the adjustment, all known when the order arrived (square-root law terms as in Almgren et
    al. 2005): √(size % ADV), spread at arrival, daily volatility (bps), σ√(size % ADV), and from the column
    ``planned_pov`` when present (:func:`planned_participation`) √pov and σ√pov; ``tod`` (NY time of day: open
    before 10:30, close from 15:00, else mid). Never the realised participation or anything else the broker or
    algo being judged chose: a control that is an outcome of the choice explains the choice's effect away (two
    brokers with the same orders at 20% and 5% of volume under a square-root law differ by ~36 bps; controlling
    for realised participation said -1.5 bps, p 0.57)."""
    vol = pl.col("daily_volatility") * BPS
    ny = pl.col("arrival_ts").dt.convert_time_zone("America/New_York")
    mins = ny.dt.hour().cast(pl.Int32) * 60 + ny.dt.minute().cast(pl.Int32)
    planned = (
        [
            pl.col("planned_pov").clip(0, 1).sqrt().alias("sqrt_planned_pov"),
            (vol * pl.col("planned_pov").clip(0, 1).sqrt()).alias("sigma_sqrt_planned_pov_bps"),
        ]
        if "planned_pov" in orders.columns
        else []
    )
    return orders.with_columns(
        pl.col("size_pct_adv").clip(0).sqrt().alias("sqrt_size_pct_adv"),
        vol.alias("volatility_bps"),
        (vol * pl.col("size_pct_adv").clip(0).sqrt()).alias("sigma_sqrt_size_bps"),
        *planned,
        pl.when(mins < 630).then(pl.lit("open")).when(mins >= 900).then(pl.lit("close")).otherwise(pl.lit("mid"))
        .alias("tod"),
    )  # fmt: skip


def _design(
    units: pl.DataFrame, keys: list[str], adjust: bool, exclude: tuple[str, ...] = ()
) -> tuple[np.ndarray, list[str]]:
    """Z = [one dummy per key | centred covariates]: the key coefficients are the expected outcome of each
    key at the sample's average covariates. Numeric covariates are clipped to their 1st-99th percentiles;
    missing values take the median plus a missing indicator."""
    code = units["key"].replace_strict({k: i for i, k in enumerate(keys)}, return_dtype=pl.Int64).to_numpy()
    cols: list[np.ndarray] = []
    names = list(keys)
    if adjust:
        # Controls that are a function of the key would absorb the key's effect: the planned participation is set
        # by (algo, urgency), so it is no control when comparing algos or urgencies; urgency none for urgencies.
        set_by_key = {"algo", "urgency"} & set(exclude)
        for c in NUMERIC_FEATURES:
            if c not in units.columns or (set_by_key and "planned" in c):
                continue
            x = units[c].cast(pl.Float64).to_numpy().astype(np.float64)
            miss = ~np.isfinite(x)
            if miss.all():
                continue
            lo, hi, med = np.nanpercentile(x[~miss], [1, 99, 50])
            x = np.where(miss, med, np.clip(x, lo, hi))
            cols.append(x)
            names.append(c)
            if miss.any():
                cols.append(miss.astype(np.float64))
                names.append(f"{c}_missing")
        for c in ("urgency", "tod"):
            if c not in units.columns or c in exclude:  # the key itself is no control
                continue
            col = units[c].cast(pl.String).fill_null("(none)")
            levels = sorted(col.unique().to_list())
            lv = col.replace_strict({x: i for i, x in enumerate(levels)}, return_dtype=pl.Int64).to_numpy()
            for i, level in enumerate(levels[1:], start=1):
                cols.append((lv == i).astype(np.float64))
                names.append(f"{c}={level}")
    # Filled column by column into one preallocated matrix (column_stack of many columns copies twice).
    z = np.empty((len(code), len(keys) + len(cols)))
    z[:, : len(keys)] = code[:, None] == np.arange(len(keys))[None, :]
    for j, x in enumerate(cols):
        z[:, len(keys) + j] = x - x.mean()  # centred: a key's coefficient = its cost at the mean mix
    return z, names


@dataclass
class Adjusted:
    table: pl.DataFrame  # per key: n, raw and adjusted cost with 95% intervals, ranks
    pairs: pl.DataFrame  # pairwise differences (raw and adjusted), Holm-adjusted
    coefficients: pl.DataFrame  # the difficulty covariates' coefficients (bps per unit)
    scatter: pl.DataFrame  # sample of units: expected cost from difficulty vs realised cost, key


def _multinomial_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) resampling counts: each replicate draws n of the n clusters with replacement (seeded)."""
    idx = np.random.default_rng(seed).integers(0, n, (n_boot, n))
    return np.bincount((idx + n * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * n).reshape(n_boot, n) * 1.0


def _ols_cluster(z: np.ndarray, y: np.ndarray, block: np.ndarray, nb: int) -> tuple[np.ndarray, np.ndarray, int]:
    """OLS and its cluster-robust covariance (Liang & Zeger 1986; CR1 as Stata's): (beta, V, G) with
    V = c (Z'Z)⁻¹ (Σ_g h_g h_g') (Z'Z)⁻¹, h_g = Σ_{i∈g} z_i e_i, c = G/(G-1) (N-1)/(N-p), G the clusters (blocks)."""
    # Normal equations through einsum: BLAS's threaded dgemm on a tall, thin transposed matrix was 5-10x slower
    # here on 2 busy cores. pinv: a key or level with no rows cannot break the solve.
    a_inv = np.linalg.pinv(np.einsum("ij,ik->jk", z, z))
    beta = a_inv @ np.einsum("ij,i->j", z, y)
    e = y - np.einsum("ij,j->i", z, beta)
    ze = z * e[:, None]
    h = np.column_stack([np.bincount(block, weights=ze[:, j], minlength=nb) for j in range(z.shape[1])])
    g = int(np.unique(block).size)
    n, p = z.shape
    c = g / max(g - 1, 1) * (n - 1) / max(n - p, 1)
    v = c * a_inv @ (h.T @ h) @ a_inv.T
    return beta, v, g


def adjust(
    units: pl.DataFrame, outcome: str = "arrival_cost_bps", cfg: QualityConfig | None = None, dimension: str = ""
) -> Adjusted:
    """Raw and difficulty-adjusted mean ``outcome`` (bps, + = cost) per ``key`` of ``units`` (one row per order,
    or per order and venue, with ``key``, ``block`` and the :func:`difficulty_features`), with cluster-bootstrap
    intervals (:func:`_ols_cluster`: the cluster-robust CR1 covariance, Student's t on G-1 df), ranks, and every pair's
    difference Holm-adjusted (separately for raw and adjusted)."""
    cfg = cfg or QualityConfig()
    u = units.filter(pl.col(outcome).is_not_null() & pl.col(outcome).is_finite())
    if u.is_empty():
        return Adjusted(pl.DataFrame(), pl.DataFrame(), pl.DataFrame(), pl.DataFrame())
    counts = u.group_by("key").agg(pl.len().alias("n"), pl.col("block").n_unique().alias("clusters"))
    keys = sorted(counts["key"].to_list())
    y = u[outcome].to_numpy().astype(np.float64)
    block = u["block"].to_numpy().astype(np.int64)
    block = np.unique(block, return_inverse=True)[1]
    nb = int(block.max()) + 1
    out, pairs = {"key": keys}, []
    coefs = pl.DataFrame()
    scatter = pl.DataFrame()
    n_by = dict(zip(counts["key"], counts["n"], strict=True))
    small = {k: n_by[k] < cfg.min_orders for k in keys}
    for mode, adj in (("raw", False), ("adjusted", True)):
        z, names = _design(u, keys, adj, tuple(dimension.split("+")))
        beta, v, g_all = _ols_cluster(z, y, block, nb)
        se_all = np.sqrt(np.clip(np.diag(v), 0, None))
        tq = float(_t975(np.array(g_all - 1)))
        g = beta[: len(keys)]
        out[f"{mode}_bps"] = g
        out[f"{mode}_lo"] = g - tq * se_all[: len(keys)]
        out[f"{mode}_hi"] = g + tq * se_all[: len(keys)]
        rows = []
        good = [i for i, k in enumerate(keys) if not small[k]]
        for ii, i in enumerate(good):
            for j in good[ii + 1 :]:
                se = float(np.sqrt(max(v[i, i] + v[j, j] - 2 * v[i, j], 0.0)))
                diff = float(g[i] - g[j])
                rows.append({"key_a": keys[i], "key_b": keys[j], "diff": diff, "diff_lo": diff - tq * se,
                             "diff_hi": diff + tq * se, "se": se,
                             "p_value": _p_t(diff / se, g_all - 1) if se > 0 else 1.0})  # fmt: skip
        p = _finish_pairs(rows, outcome, dimension, cfg.alpha)
        if not p.is_empty():
            pairs.append(
                p.with_columns(
                    pl.lit(mode).alias("mode"),
                    pl.col("key_a").replace_strict(n_by, default=0).alias("n_a"),
                    pl.col("key_b").replace_strict(n_by, default=0).alias("n_b"),
                )
            )
        if adj:
            coefs = pl.DataFrame(
                {"covariate": names[len(keys) :], "coef": beta[len(keys) :], "se": se_all[len(keys) :]}
            )
            expected = y.mean() + z[:, len(keys) :] @ beta[len(keys) :]
            sc = u.select("key").with_columns(pl.Series("expected_cost_bps", expected), pl.Series("cost_bps", y))
            scatter = sc.sample(min(sc.height, 3000), seed=cfg.seed) if sc.height > 3000 else sc
    table = (
        pl.DataFrame(out)
        .join(counts, on="key")
        .with_columns(pl.col("n").lt(cfg.min_orders).alias("small_sample"), pl.lit(dimension).alias("dimension"))
        .with_columns(
            pl.when(~pl.col("small_sample")).then(pl.col("raw_bps").rank("ordinal")).alias("raw_rank"),
            pl.when(~pl.col("small_sample")).then(pl.col("adjusted_bps").rank("ordinal")).alias("adjusted_rank"),
        )
        .sort("adjusted_bps", nulls_last=True)
    )
    return Adjusted(table, pl.concat(pairs) if pairs else pl.DataFrame(), coefs, scatter)


def adjustment_units(
    lake, con: duckdb.DuckDBPyConnection, f: Filters, by, orders: pl.DataFrame, version: int | None = None,
    cfg: QualityConfig | None = None,
) -> pl.DataFrame:  # fmt: skip
    """Units of the adjusted comparison: filled orders (order dimensions) or (order, venue) pairs whose outcome
    is the fills' notional-weighted arrival cost there (venue), with their order's difficulty features: only what
    was known at arrival (:func:`difficulty_features`, with ``planned_pov`` unless the key holds algo or urgency,
    which set it). :func:`adjust` never uses a dimension of its ``dimension`` as a control."""
    cfg = cfg or QualityConfig()
    dims = parse_dims(by)
    if orders.is_empty():
        return pl.DataFrame()
    plan = all(c in orders.columns for c in ("algo", "urgency"))
    if plan:
        orders = orders.with_columns(planned_participation(orders).alias("planned_pov"))
    feats = [c for c in NUMERIC_FEATURES if plan or "planned" not in c]
    keep = ["order_id", "block", "arrival_ts", "arrival_cost_bps", "filled_qty", "week", "month", "urgency", "tod",
            *feats, *[d for d in dims if d in ORDER_DIMS and d != "urgency"]]  # fmt: skip
    keyed = difficulty_features(with_blocks(orders, cfg)).select(keep)
    if all(d in ORDER_DIMS for d in dims):
        return keyed.filter(pl.col("filled_qty") > 0).with_columns(_key_expr(dims).alias("key"))
    scope = _scope(lake, con, f, keyed, dims, version)
    if scope is None:
        return pl.DataFrame()
    sql, params = scope
    try:
        per = query(
            con,
            # one stored row per (order, venue), so one per (order, key): no GROUP BY over millions of ids
            f"""SELECT order_id, key, arr_num_f / arr_den_f AS arrival_cost_bps FROM ({sql}) WHERE arr_den_f > 0""",
            params,
        )
    finally:
        _release(con)
    # sorted: the regression's sums then run in one order, so the same lake gives the same figures to the last bit
    return per.sort("order_id", "key").join(
        keyed.drop("arrival_cost_bps"), on="order_id", how="inner", maintain_order="left"
    )


# ---------------------------------------------------------------------------------------------------
# Recommendations: only differences significant after Holm's correction
# ---------------------------------------------------------------------------------------------------
def recommendations(adj: Adjusted, markouts: pl.DataFrame | None = None) -> pl.DataFrame:
    """Sentences with the expected saving (bps, 95% interval) for each significant adjusted difference against
    the best key, and (venues) for each venue with significantly worse 60 s markouts than the best venue. Each
    row names the leaderboard column it rests on (``metric``: ``adjusted_bps`` or ``markout_cost_bps_60s``), so
    the leaderboard sorted by that column agrees with it (the score, a blend, may rank differently). Every pair
    is tested and Holm-adjusted before any is kept: the family-wise error stays <= 5% under the null.
    ``markouts``: :func:`compare_keys` on ``markout_cost_bps_60s``. Empty when nothing is significant."""
    out = []
    if not adj.pairs.is_empty() and not adj.table.is_empty():
        p = adj.pairs.filter((pl.col("mode") == "adjusted") & pl.col("significant"))
        best = adj.table.filter(~pl.col("small_sample"))["key"].to_list()[:1]
        for r in p.iter_rows(named=True):  # a handful of significant pairs, not data rows
            if not best or best[0] not in (r["key_a"], r["key_b"]):
                continue
            good, bad = (r["key_a"], r["key_b"]) if r["diff"] < 0 else (r["key_b"], r["key_a"])
            d, lo, hi = (
                abs(r["diff"]),
                min(abs(r["diff_lo"]), abs(r["diff_hi"])),
                max(abs(r["diff_lo"]), abs(r["diff_hi"])),
            )
            out.append({
                "kind": "choice", "metric": "adjusted_bps", "prefer": good, "instead_of": bad, "saving_bps": d,
                "saving_lo": lo, "saving_hi": hi, "p_holm": r["p_holm"],
                "text": f"Prefer {good} over {bad}: on comparable orders (difficulty-adjusted arrival cost, the "
                        f"leaderboard's adjusted_bps) {bad} costs {d:.1f} bps more (95% CI {lo:.1f} to {hi:.1f}; "
                        f"Holm p = {r['p_holm']:.3g}).",
            })  # fmt: skip
    if markouts is not None and not markouts.is_empty():
        m = markouts.filter(pl.col("significant"))
        for r in m.iter_rows(named=True):
            bad, good = (r["key_a"], r["key_b"]) if r["diff"] > 0 else (r["key_b"], r["key_a"])
            d = abs(r["diff"])
            lo, hi = sorted((abs(r["diff_lo"]), abs(r["diff_hi"])))
            out.append({
                "kind": "routing", "metric": "markout_cost_bps_60s", "prefer": good, "instead_of": bad,
                "saving_bps": d, "saving_lo": lo, "saving_hi": hi, "p_holm": r["p_holm"],
                "text": f"Route away from {bad} toward {good}: fills at {bad} lose {d:.1f} bps more to adverse "
                        f"selection within 60 s (the leaderboard's markout_cost_bps_60s; 95% CI {lo:.1f} to "
                        f"{hi:.1f}; Holm p = {r['p_holm']:.3g}).",
            })  # fmt: skip
    schema = {"kind": pl.String, "metric": pl.String, "prefer": pl.String, "instead_of": pl.String, "saving_bps": pl.Float64,
              "saving_lo": pl.Float64, "saving_hi": pl.Float64, "p_holm": pl.Float64, "text": pl.String}  # fmt: skip
    return pl.DataFrame(out, schema=schema).sort("saving_bps", descending=True)


def venue_routing_pairs(an: Analysis, alpha: float = 0.05) -> pl.DataFrame:
    """Markout comparisons worth a routing note: each venue against the venue with the lowest 60 s markout."""
    pairs = compare_keys(an, "markout_cost_bps_60s", alpha)
    if pairs.is_empty():
        return pairs
    lb = an.leaderboard.filter(~pl.col("small_sample")).sort("markout_cost_bps_60s")
    best = lb["key"][0]
    return pairs.filter((pl.col("key_a") == best) | (pl.col("key_b") == best))


# ---------------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------------
def report(
    lake,
    con: duckdb.DuckDBPyConnection,
    f: Filters,
    by: str = "venue",
    version: int | None = None,
    period: str | None = None,
    an: Analysis | None = None,
    cfg: QualityConfig | None = None,
    adjusted: Adjusted | None = None,
) -> pl.DataFrame:
    """ExecutionQualityReportEvent rows (EVENTS.md columns, then ``event_id, ts, source_version,
    code_version``): one per key over the filter's whole range (``period=None``) or per week/month. The whole-range
    rows carry ``adjusted_cost_bps`` with its interval (:func:`adjust` of :func:`adjustment_units`, or
    ``adjusted`` if already computed); per-period rows leave it null (one regression per period would mostly
    say "too few orders")."""
    v = lake.version() if version is None else version
    an = an or analyse(lake, con, f, by, v, cfg=cfg)
    if an.leaderboard.is_empty():
        return pl.DataFrame(schema={c: pl.String for c in EVENT_COLUMNS})
    if period is None:
        rows = an.leaderboard.with_columns(
            pl.lit(an.span[0]).alias("period_start"), pl.lit(an.span[1]).alias("period_end")
        )
        if adjusted is None:
            orders = tca.load_orders(lake, con, f, v)
            adjusted = adjust(adjustment_units(lake, con, f, by, orders, v, cfg), cfg=cfg, dimension=an.dimension)
        if not adjusted.table.is_empty():
            adj = adjusted.table.select(
                "key",
                pl.col("adjusted_bps").alias("adjusted_cost_bps"),
                pl.col("adjusted_lo").alias("adjusted_cost_bps_lo"),
                pl.col("adjusted_hi").alias("adjusted_cost_bps_hi"),
            )
            rows = rows.join(adj, on="key", how="left")
    else:
        t = an.trend.filter(pl.col("period") == period)
        step = "1w" if period == "week" else "1mo"
        rows = t.with_columns(
            pl.lit(an.dimension).alias("dimension"),
            (pl.col("period_start").dt.offset_by(step) - pl.duration(days=1)).alias("period_end"),
        )
    for c in EVENT_COLUMNS:
        if c not in rows.columns:
            rows = rows.with_columns(pl.lit(None, pl.Float64).alias(c))
    m = lake.manifest(v)
    ts = dt.datetime.fromisoformat(m.created) if m.created else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    sv = f"lake@{v}"
    return rows.select(EVENT_COLUMNS).with_columns(
        pl.concat_str(
            pl.lit("eq:"), pl.col("dimension"), pl.lit(":"), pl.col("key"), pl.lit(":"),
            pl.col("period_start").cast(pl.String), pl.lit(f"@{sv}"),
        ).alias("event_id"),
        pl.lit(ts).dt.cast_time_unit("us").alias("ts"),
        pl.lit(sv).alias("source_version"),
        pl.lit(CODE_VERSION).alias("code_version"),
    ).sort("period_start", "score", descending=[False, True], nulls_last=True)  # fmt: skip


NOTIONAL_BUCKETS = (250.0, 1_000.0, 5_000.0, 20_000.0, 50_000.0, 200_000.0)
NOTIONAL_LABELS = ("<$250", "$250-1K", "$1K-5K", "$5K-20K", "$20K-50K", "$50K-200K", ">=$200K")
NEAR_QUOTE = 0.10  # a limit within $0.10 outside the quote is "near the quote" (Rule 605)


def _tick(price: pl.Expr) -> pl.Expr:
    """The minimum quoting increment of Reg NMS Rule 612: $0.01 at $1.00 and above, $0.0001 below."""
    return pl.when(price >= 1.0).then(pl.lit(0.01)).otherwise(pl.lit(0.0001))


def order_types(orders: pl.DataFrame) -> pl.DataFrame:
    """Rule 605 order type from the limit price against the NBBO at arrival: market (no limit), marketable limit
    (buy limit >= ask, sell <= bid), inside-the-quote, at-the-quote (buy limit = bid, sell = ask), near-the-quote
    (within $0.10 outside the quote) and other limit; and the notional size bucket (order qty x arrival mid; the
    2024 amendments' buckets up to $200K, plus >= $200K for parent orders, which the rule itself does not cover).
    The quote is the stored ``arrival_bid`` / ``arrival_ask`` (TCA rows from tca-8 on; tca-9 today); older rows rebuild it from
    the arrival mid and spread. Prices are compared with a tolerance of half a tick (:func:`_tick`), never by
    float equality: a bid rebuilt as 100.01000000000001 must still be "at the quote" for a 100.01 limit."""
    half = pl.col("arrival_price") * pl.col("spread_at_arrival_bps").fill_null(0) / BPS / 2
    stored = "arrival_bid" in orders.columns and "arrival_ask" in orders.columns
    bid = (
        pl.coalesce(pl.col("arrival_bid"), pl.col("arrival_price") - half) if stored else pl.col("arrival_price") - half
    )
    ask = (
        pl.coalesce(pl.col("arrival_ask"), pl.col("arrival_price") + half) if stored else pl.col("arrival_price") + half
    )
    lim, buy = pl.col("limit_price"), pl.col("side") == "BUY"
    tol = _tick(pl.col("arrival_price")) / 2
    near = pl.lit(NEAR_QUOTE)
    touch = pl.when(buy).then(ask).otherwise(bid)  # the quote a marketable order takes
    same = pl.when(buy).then(bid).otherwise(ask)  # the quote a resting order joins
    # signed distance from the touch toward a more aggressive price (+ = crosses), and from the same-side quote
    cross = pl.when(buy).then(lim - touch).otherwise(touch - lim)
    join = pl.when(buy).then(lim - same).otherwise(same - lim)
    typ = (
        pl.when(lim.is_null()).then(pl.lit("market"))
        .when(cross >= -tol).then(pl.lit("marketable limit"))
        .when(join > tol).then(pl.lit("inside-the-quote limit"))
        .when(join >= -tol).then(pl.lit("at-the-quote limit"))
        .when(join >= -near - tol).then(pl.lit("near-the-quote limit"))
        .otherwise(pl.lit("other limit"))
    )  # fmt: skip
    notional = pl.col("order_qty") * pl.col("arrival_price")
    return orders.with_columns(
        typ.alias("order_type"),
        notional.bin_intervals(list(NOTIONAL_BUCKETS), labels=list(NOTIONAL_LABELS))
        .cast(pl.String)
        .alias("size_bucket"),
        pl.col("arrival_ts").dt.date().dt.truncate("1mo").alias("month"),
    )


def rule605(
    lake, con: duckdb.DuckDBPyConnection, f: Filters, version: int | None = None, orders: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Rule 605-style monthly report by order type and notional size bucket: orders, shares ordered, cancelled
    and executed shares, E/Q, average realized spread (bps, share-weighted, 50 ms .. 5 min), price improvement
    (per share and bps; shares improved / at / outside the quote) and the share-weighted time to execution."""
    if orders is None:
        orders = tca.load_orders(lake, con, f, version)
    if orders.is_empty():
        return pl.DataFrame()
    lim = query(
        con, "SELECT order_id, any_value(limit_price) AS limit_price FROM orders WHERE action = 'NEW' GROUP BY 1"
    )
    typed = order_types(orders.drop("limit_price", strict=False).join(lim, on="order_id", how="left"))
    per_order = typed.group_by("month", "order_type", "size_bucket").agg(
        pl.len().alias("orders"),
        pl.col("order_qty").sum().alias("shares"),
        pl.col("unfilled_qty").filter(pl.col("end_action") == "CANCEL").sum().alias("cancelled_shares"),
        pl.col("filled_qty").sum().alias("executed_shares"),
    )
    v = lake.version() if version is None else version
    ensure_sums(lake, con, f.start, f.end, v)
    rel = lake.derived_scan(con, SUMS, sum_fingerprints(lake, v, f.start, f.end), "order_venue" if f.venue else "order")
    if rel is None:
        return per_order
    midnight = pl.col("arrival_ts").dt.truncate("1d")
    tod = (pl.col("arrival_ts") - midnight).dt.total_microseconds() / 1e6  # arrival, s after its day's midnight
    keys = typed.select("order_id", "month", "order_type", "size_bucket", tod.alias("arr_tod"))
    con.register("_r605_sums", rel)
    con.register("_r605_keys", keys.to_arrow())
    fw, fp = f.where({"venue": "venue"}, None)
    try:
        fs = query(
            con,
            f"""SELECT month, order_type, size_bucket, {_stage2(bool(f.venue))},
                       sum(q_tod - arr_tod * shares) AS tte_q
                FROM (SELECT * FROM _r605_sums WHERE fills > 0 AND {fw}) r JOIN _r605_keys k USING (order_id)
                GROUP BY ALL""",
            fp,
        )
    finally:
        con.unregister("_r605_sums")
        con.unregister("_r605_keys")
    fs = _ratios(fs.drop("orders"), order_level=False).with_columns(
        (pl.col("tte_q") / pl.col("shares")).alias("avg_time_to_execution_s")
    )
    keep = ["eq_ratio", "effective_spread_bps", *[f"realized_spread_bps_{h}" for h in RS], "price_improvement_per_share",
            "price_improvement_bps", "q_improved", "q_at_quote", "q_outside", "avg_time_to_execution_s"]  # fmt: skip
    fs = (
        fs.with_columns(nbbo_at())
        .select("month", "order_type", "size_bucket", *keep, "nbbo_at")
        .rename(
            {
                "q_improved": "price_improved_shares",
                "q_at_quote": "at_quote_shares",
                "q_outside": "outside_quote_shares",
            }
        )
    )
    out = per_order.join(fs, on=["month", "order_type", "size_bucket"], how="left")
    rank = {k: i for i, k in enumerate(NOTIONAL_LABELS)}
    return (
        out.with_columns(pl.col("size_bucket").replace_strict(rank, default=99).alias("_r"))
        .sort("month", "order_type", "_r")
        .drop("_r")
    )
