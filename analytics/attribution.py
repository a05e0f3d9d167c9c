"""Performance attribution: Brinson by any grouping, multi-period linking, factor attribution and the tracking-error
decomposition. Pure functions over Polars frames; loading from the lake is one bound SQL query per input.

Units and signs. Weights and returns are decimals (0.0012 = 12 bps); every effect is a decimal return, positive =
it added to the portfolio's return relative to the benchmark. Conversion to bps happens at the page edge
(``analytics.conventions.BPS``).

Timing (EVENTS.md). Holdings and benchmark weights dated D are the start-of-day weights that earn the returns
dated D, so one day is one attribution period: ``w`` dated D times ``r`` dated D. A period ``start..end`` holds the
days in that inclusive range on which both the portfolio and the benchmark have weights. A security's return in the
base currency is ``(1 + return)(1 + fx_return) - 1`` (``fx_return`` absent = 0). A held name with no return that day
(cash, a missing price) earns 0: it still carries weight, so weights keep summing to 1.

Single period (one day), for group i with portfolio/benchmark weights w_p,i, w_b,i, group returns R_p,i, R_b,i and
total returns R_p = Σ w_p,i R_p,i, R_b = Σ w_b,i R_b,i:

* Brinson-Fachler (1985):   allocation_i = (w_p,i - w_b,i)(R_b,i - R_b)
* Brinson-Hood-Beebower (1986): allocation_i = (w_p,i - w_b,i) R_b,i
* both:  selection_i = w_b,i (R_p,i - R_b,i),   interaction_i = (w_p,i - w_b,i)(R_p,i - R_b,i)

Summed over groups, allocation + selection + interaction = R_p - R_b exactly when both weight sets sum to the same
total (1). The two allocations differ, group by group, by exactly (w_p,i - w_b,i) R_b and have the same sum (Bacon
2008, Practical Portfolio Performance Measurement and Attribution, 2nd ed., ch. 5).

Empty groups (a choice; any choice keeps the identity because the return is multiplied by a zero weight):
* a group the portfolio does not hold takes R_p,i := R_b,i, so its selection and interaction are 0 and the whole
  effect of leaving it out is allocation;
* a group the benchmark does not hold (an off-benchmark bet, cash, names missing from ``securities``) takes
  R_b,i := R_b, the benchmark's total return: under Brinson-Fachler its allocation is 0 and the bet's result
  w_p,i (R_p,i - R_b) is interaction (selection is 0 since w_b,i = 0).
Names missing from ``securities`` (or with a null in the grouping column) are grouped as ``(unclassified)``.

Multi-period linking. Daily effects e_t (summing to a_t = R_p,t - R_b,t) are scaled so that the linked effects sum
to the compounded active return R_p - R_b with R = Π(1 + R_t) - 1:

* Carino (1999): e · k_t / K, k_t = ln((1+R_p,t)/(1+R_b,t)) / (R_p,t - R_b,t), K likewise on the period returns
  (k = 1/(1+R_p) when the two returns are equal).
* Menchero (2000): e · (M + α_t), M = ((R_p - R_b)/T) / ((1+R_p)^(1/T) - (1+R_b)^(1/T)) (M = (1+R_p)^((T-1)/T)
  when equal), α_t = (R_p - R_b - M Σ a_t) a_t / Σ a_t².
* GRAP (Groupe de Recherche en Attribution de Performance, 1997): e · Π_{s<t}(1+R_p,s) · Π_{s>t}(1+R_b,s).

Factor model. A security's daily return r = Σ_f x_f f_f + u (exposures x from ``factor_exposures``, factor returns
f from ``factor_returns``, specific u the rest). A name without exposures has x = 0 (all its return is specific).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import numpy as np
import polars as pl

from analytics.conventions import TRADING_DAYS_PER_YEAR
from analytics.store import query, quote_ident

CODE_VERSION = "attribution-1"
METHODS = ("brinson_fachler", "bhb")
LINKINGS = ("carino", "menchero", "grap")
GROUPINGS = ("sector", "industry", "country", "currency", "asset_class", "region", "exchange", "symbol")
UNCLASSIFIED = "(unclassified)"
TOTAL = "TOTAL"
EFFECTS = ("allocation", "selection", "interaction")
_EPS = 1e-14


class AttributionError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------------
# Loading (bound SQL; identifiers only from an allowlist)
# ---------------------------------------------------------------------------------------------------
def benchmark_of(con: duckdb.DuckDBPyConnection, portfolio_id: str) -> str | None:
    """The ``benchmark_id`` the ``portfolios`` table gives ``portfolio_id`` (None when unknown)."""
    row = con.execute(
        "SELECT any_value(benchmark_id) FROM portfolios WHERE portfolio_id = ?", [portfolio_id]
    ).fetchone()
    return row[0] if row else None


def grouping_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Categorical columns of ``securities`` a grouping can use (plus ``symbol``)."""
    cols = [
        r[0]
        for r in con.execute("DESCRIBE securities").fetchall()
        if r[1] == "VARCHAR" and r[0] not in ("name", "extra") and not r[0].startswith("_")
    ]
    return [c for c in GROUPINGS if c in cols] + [c for c in cols if c not in GROUPINGS]


def load_positions(
    con: duckdb.DuckDBPyConnection,
    portfolio_id: str,
    benchmark_id: str,
    start: dt.date,
    end: dt.date,
    group_by: str = "sector",
    mapping: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per (date, symbol) held by the portfolio or the benchmark on the days both have weights in
    ``start..end``: ``date, symbol, group, w_p, w_b, r`` (decimals; weights of an absent side are 0; ``r`` in base
    currency, 0 when the lake has no return). ``group_by`` is a column of ``securities``; ``mapping`` (columns
    ``symbol, group``) overrides it with a custom classification."""
    if mapping is None and group_by not in grouping_columns(con):
        raise AttributionError(f"unknown grouping column {group_by!r}")
    grp = "NULL::VARCHAR" if mapping is not None else f"s.{quote_ident(group_by)}"
    # Ingest keeps one row per natural key (date, portfolio/benchmark, symbol; date, symbol; symbol): no dedupe.
    sql = f"""
    WITH h AS (
        SELECT date, symbol, weight, market_value FROM holdings WHERE portfolio_id = ? AND date BETWEEN ? AND ?),
    p AS (
        SELECT date, symbol, coalesce(weight, market_value / sum(market_value) OVER (PARTITION BY date)) AS w FROM h),
    b AS (
        SELECT date, symbol, weight AS w FROM benchmark_weights WHERE benchmark_id = ? AND date BETWEEN ? AND ?),
    d AS (SELECT DISTINCT date FROM p INTERSECT SELECT DISTINCT date FROM b),
    pos AS (
        SELECT coalesce(p.date, b.date) AS date, coalesce(p.symbol, b.symbol) AS symbol,
               coalesce(p.w, 0.0) AS w_p, coalesce(b.w, 0.0) AS w_b
        FROM p FULL JOIN b ON p.date = b.date AND p.symbol = b.symbol)
    SELECT pos.date, pos.symbol, coalesce({grp}, '{UNCLASSIFIED}') AS "group", pos.w_p, pos.w_b,
           coalesce((1 + r."return") * (1 + coalesce(r.fx_return, 0.0)) - 1, 0.0) AS r
    FROM pos SEMI JOIN d ON pos.date = d.date
    LEFT JOIN (SELECT date, symbol, "return", fx_return FROM returns WHERE date BETWEEN ? AND ?) r
           ON r.date = pos.date AND r.symbol = pos.symbol
    LEFT JOIN securities s ON s.symbol = pos.symbol"""
    out = query(con, sql, [portfolio_id, start, end, benchmark_id, start, end, start, end])
    return regroup(out, mapping) if mapping is not None else out


def security_groups(con: duckdb.DuckDBPyConnection, group_by: str) -> pl.DataFrame:
    """``symbol, group``: each security's value of the ``securities`` column ``group_by``."""
    if group_by not in grouping_columns(con):
        raise AttributionError(f"unknown grouping column {group_by!r}")
    return query(con, f'SELECT symbol, {quote_ident(group_by)} AS "group" FROM securities')


def regroup(positions: pl.DataFrame, groups: pl.DataFrame) -> pl.DataFrame:
    """``positions`` with ``group`` taken from ``groups`` (``symbol, group``; a custom mapping or
    :func:`security_groups`); symbols it does not name are ``(unclassified)``. Lets one load serve every grouping."""
    m = groups.select(pl.col("symbol").cast(pl.String), pl.col("group").cast(pl.String).alias("__g"))
    return (
        positions.join(m, on="symbol", how="left")
        .with_columns(pl.col("__g").fill_null(UNCLASSIFIED).alias("group"))
        .drop("__g")
        .select(positions.columns)
    )


# ---------------------------------------------------------------------------------------------------
# Single period: Brinson by group and date
# ---------------------------------------------------------------------------------------------------
def daily_totals(positions: pl.DataFrame) -> pl.DataFrame:
    """``date, r_p, r_b``: the portfolio's and the benchmark's return each day (Σ w r)."""
    return (
        positions.group_by("date")
        .agg((pl.col("w_p") * pl.col("r")).sum().alias("r_p"), (pl.col("w_b") * pl.col("r")).sum().alias("r_b"))
        .sort("date")
    )


def group_returns(positions: pl.DataFrame, key: str = "group", totals: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per (date, ``key``): ``w_p, w_b`` (group weights), ``R_p, R_b`` (group returns, with the empty-group
    convention of the module docstring) and the day's totals ``r_p, r_b`` (``totals``, default: from
    ``positions``; give them when ``positions`` is a subset of the portfolio)."""
    totals = daily_totals(positions) if totals is None else totals
    g = positions.group_by("date", key).agg(
        pl.col("w_p").sum(),
        pl.col("w_b").sum(),
        (pl.col("w_p") * pl.col("r")).sum().alias("c_p"),
        (pl.col("w_b") * pl.col("r")).sum().alias("c_b"),
    )
    return (
        g.join(totals, on="date", how="left")
        .with_columns(
            pl.when(pl.col("w_b").abs() > _EPS)
            .then(pl.col("c_b") / pl.col("w_b"))
            .otherwise(pl.col("r_b"))
            .alias("R_b")
        )
        .with_columns(
            pl.when(pl.col("w_p").abs() > _EPS)
            .then(pl.col("c_p") / pl.col("w_p"))
            .otherwise(pl.col("R_b"))
            .alias("R_p")
        )
        .drop("c_p", "c_b")
        .sort("date", key)
    )


def brinson(groups: pl.DataFrame, method: str = "brinson_fachler") -> pl.DataFrame:
    """Add ``allocation, selection, interaction, total`` to a frame with ``w_p, w_b, R_p, R_b`` and the period's
    benchmark total ``r_b`` (decimal returns; formulas, sources and sign in the module docstring)."""
    if method not in METHODS:
        raise AttributionError(f"unknown method {method!r} (use {', '.join(METHODS)})")
    dw = pl.col("w_p") - pl.col("w_b")
    ref = pl.col("R_b") - pl.col("r_b") if method == "brinson_fachler" else pl.col("R_b")
    return groups.with_columns(
        (dw * ref).alias("allocation"),
        (pl.col("w_b") * (pl.col("R_p") - pl.col("R_b"))).alias("selection"),
        (dw * (pl.col("R_p") - pl.col("R_b"))).alias("interaction"),
    ).with_columns((pl.col("allocation") + pl.col("selection") + pl.col("interaction")).alias("total"))


# ---------------------------------------------------------------------------------------------------
# Multi-period linking
# ---------------------------------------------------------------------------------------------------
def link_coefficients(totals: pl.DataFrame, linking: str) -> pl.DataFrame:
    """Per date (sorted): ``u, v, A, B`` such that the effect e linked over the days up to and including T is
    ``A_T Σ_{t<=T} e_t u_t + B_T Σ_{t<=T} e_t v_t`` (the period's linked effect is the last date's value). Needs
    ``date, r_p, r_b``. Carino: u = k_t, A = 1/K_T; Menchero: u = 1, v = a_t, A = M_T, B = (A_T - M_T Σa)/Σa²;
    GRAP: u = Π_{s<t}(1+r_p) / Π_{s<=t}(1+r_b), A = Π_{s<=T}(1+r_b). Sources in the module docstring."""
    if linking not in LINKINGS:
        raise AttributionError(f"unknown linking {linking!r} (use {', '.join(LINKINGS)})")
    t = totals.sort("date").select("date", "r_p", "r_b")
    lp, lb = pl.col("r_p").log1p(), pl.col("r_b").log1p()
    t = t.with_columns(
        lp.cum_sum().alias("Lp"),  # ln(1 + R_p) to date
        lb.cum_sum().alias("Lb"),
        (pl.col("r_p") - pl.col("r_b")).alias("a"),
        pl.int_range(1, pl.len() + 1).cast(pl.Float64).alias("n"),
    ).with_columns((pl.col("Lp").exp() - pl.col("Lb").exp()).alias("A_cum"))  # compounded active return to date
    zero = pl.lit(0.0)
    if linking == "carino":
        k_t = pl.when(pl.col("a").abs() > _EPS).then((lp - lb) / pl.col("a")).otherwise(1.0 / (1.0 + pl.col("r_p")))
        big_k = (
            pl.when(pl.col("A_cum").abs() > _EPS)
            .then((pl.col("Lp") - pl.col("Lb")) / pl.col("A_cum"))
            .otherwise((-pl.col("Lp")).exp())
        )
        return t.select("date", k_t.alias("u"), zero.alias("v"), (1.0 / big_k).alias("A"), zero.alias("B"))
    if linking == "menchero":
        # (1+R_p)^(1/T) - (1+R_b)^(1/T) = e^(Lb/T) (e^((Lp-Lb)/T) - 1), accurate when the two are close
        den = (pl.col("Lb") / pl.col("n")).exp() * ((pl.col("Lp") - pl.col("Lb")) / pl.col("n")).exp().sub(1.0)
        m = (
            pl.when(pl.col("A_cum").abs() > _EPS)
            .then(pl.col("A_cum") / pl.col("n") / den)
            .otherwise((pl.col("Lp") * (pl.col("n") - 1) / pl.col("n")).exp())
        )
        s1, s2 = pl.col("a").cum_sum(), (pl.col("a") ** 2).cum_sum()
        c = pl.when(s2 > 0).then((pl.col("A_cum") - pl.col("M") * s1) / s2).otherwise(0.0)
        return t.with_columns(m.alias("M")).select(
            "date", pl.lit(1.0).alias("u"), pl.col("a").alias("v"), pl.col("M").alias("A"), c.alias("B")
        )
    # GRAP
    u = (pl.col("Lp") - lp - pl.col("Lb")).exp()  # Π_{s<t}(1+r_p) / Π_{s<=t}(1+r_b)
    return t.select("date", u.alias("u"), zero.alias("v"), pl.col("Lb").exp().alias("A"), zero.alias("B"))


def link(
    daily: pl.DataFrame,
    totals: pl.DataFrame,
    linking: str,
    key: str = "group",
    effects: tuple[str, ...] = (*EFFECTS, "total"),
    over_time: bool = False,
) -> pl.DataFrame:
    """Link daily ``effects`` (columns of ``daily``, one row per date and ``key``) over the period of ``totals``
    (``date, r_p, r_b``). Returns one row per ``key`` with the linked effects; with ``over_time``, one row per
    (date, ``key``) holding the effects linked from the first day through that date (each date's rows sum to the
    compounded active return to that date)."""
    coef = link_coefficients(totals, linking)
    if not over_time:
        last = coef.tail(1)
        a_t, b_t = float(last["A"][0]), float(last["B"][0])
        return (
            daily.join(coef.select("date", "u", "v"), on="date", how="inner")
            .group_by(key)
            .agg(
                (a_t * (pl.col(e) * pl.col("u")).sum() + b_t * (pl.col(e) * pl.col("v")).sum()).alias(e)
                for e in effects
            )
            .sort(key)
        )
    grid = coef.select("date").join(daily.select(key).unique(), how="cross")
    full = grid.join(daily.select("date", key, *effects), on=["date", key], how="left").fill_null(0.0)
    return (
        full.join(coef, on="date", how="left")
        .sort(key, "date")
        .with_columns(
            (
                pl.col("A") * (pl.col(e) * pl.col("u")).cum_sum().over(key)
                + pl.col("B") * (pl.col(e) * pl.col("v")).cum_sum().over(key)
            ).alias(e)
            for e in effects
        )
        .select("date", key, *effects)
        .sort("date", key)
    )


# ---------------------------------------------------------------------------------------------------
# The attribution of a period (what the CLI exports and the page shows)
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attribution:
    """``groups``: one row per group plus ``TOTAL`` (PerformanceAttributionEvent columns without lineage);
    ``daily``: the unlinked daily Brinson rows; ``totals``: the daily portfolio/benchmark returns."""

    groups: pl.DataFrame
    daily: pl.DataFrame
    totals: pl.DataFrame


def attribute(
    positions: pl.DataFrame,
    method: str = "brinson_fachler",
    linking: str = "carino",
    key: str = "group",
) -> Attribution:
    """Brinson (``method``) per day by ``key``, linked (``linking``) over the days of ``positions``. Group weights
    are the first day's; group returns are compounded daily group returns; the TOTAL row's ``total`` equals the
    compounded portfolio return minus the compounded benchmark return."""
    if method not in METHODS:
        raise AttributionError(f"unknown method {method!r} (use {', '.join(METHODS)})")
    if positions.is_empty():
        raise AttributionError("no day in the period has both portfolio and benchmark weights")
    daily = brinson(group_returns(positions, key), method)
    totals = daily_totals(positions)
    linked = link(daily, totals, linking, key)
    first = daily.filter(pl.col("date") == pl.col("date").min()).select(key, "w_p", "w_b")
    comp = daily.group_by(key).agg(
        ((1 + pl.col("R_p")).product() - 1).alias("portfolio_return"),
        ((1 + pl.col("R_b")).product() - 1).alias("benchmark_return"),
    )
    rows = (
        linked.join(comp, on=key, how="left")
        .join(first, on=key, how="left")
        .with_columns(pl.col("w_p", "w_b").fill_null(0.0))
        .rename({"w_p": "portfolio_weight", "w_b": "benchmark_weight"})
    )
    rp = float((1 + totals["r_p"]).product() - 1)
    rb = float((1 + totals["r_b"]).product() - 1)
    total = rows.select(
        pl.lit(TOTAL).alias(key),
        *(pl.col(e).sum() for e in EFFECTS),
        pl.lit(rp - rb).alias("total"),
        pl.lit(rp).alias("portfolio_return"),
        pl.lit(rb).alias("benchmark_return"),
        pl.col("portfolio_weight").sum(),
        pl.col("benchmark_weight").sum(),
    )
    cols = [key, "portfolio_weight", "benchmark_weight", "portfolio_return", "benchmark_return", *EFFECTS, "total"]
    groups = pl.concat([rows.sort("total", descending=True).select(cols), total.select(cols)])
    return Attribution(groups=groups, daily=daily, totals=totals)


def cumulative_returns(totals: pl.DataFrame) -> pl.DataFrame:
    """``date, portfolio, benchmark, active``: compounded returns from the first day through each date."""
    return (
        totals.sort("date")
        .select(
            "date",
            ((1 + pl.col("r_p")).cum_prod() - 1).alias("portfolio"),
            ((1 + pl.col("r_b")).cum_prod() - 1).alias("benchmark"),
        )
        .with_columns((pl.col("portfolio") - pl.col("benchmark")).alias("active"))
    )


def drill(
    positions: pl.DataFrame, group: str, method: str = "brinson_fachler", linking: str = "carino"
) -> pl.DataFrame:
    """The securities of ``group``: each one's first-day weights, compounded return and its linked contribution to
    the group's total effect. A single security is its own group, so its selection and interaction are 0 and its
    allocation ((w_p - w_b)(r - R_b) for BF, (w_p - w_b) r for BHB) is its contribution; the securities' totals
    sum to the group's linked total (same linking coefficients, which depend only on the portfolio totals)."""
    totals = daily_totals(positions)
    daily = brinson(group_returns(positions.filter(pl.col("group") == group), "symbol", totals), method)
    if daily.is_empty():
        return pl.DataFrame(schema={"symbol": pl.String, "total": pl.Float64})
    linked = link(daily, totals, linking, "symbol", ("total",))
    first = daily.filter(pl.col("date") == pl.col("date").min()).select("symbol", "w_p", "w_b")
    comp = daily.group_by("symbol").agg(((1 + pl.col("R_p")).product() - 1).alias("security_return"))
    return (
        linked.join(comp, on="symbol", how="left")
        .join(first, on="symbol", how="left")
        .with_columns(pl.col("w_p", "w_b").fill_null(0.0))
        .select(
            "symbol",
            pl.col("w_p").alias("portfolio_weight"),
            pl.col("w_b").alias("benchmark_weight"),
            (pl.col("w_p") - pl.col("w_b")).alias("active_weight"),
            "security_return",
            pl.col("total").alias("contribution"),
        )
        .sort("contribution", descending=True)
    )


def events(
    att: Attribution,
    *,
    portfolio_id: str,
    benchmark_id: str,
    start: dt.date,
    end: dt.date,
    method: str,
    linking: str,
    grouping: str,
    version: int,
    snapshot_ts: str = "",
    key: str = "group",
) -> pl.DataFrame:
    """PerformanceAttributionEvent rows (EVENTS.md): one per group plus TOTAL, with lineage columns. ``linking``
    is ``none`` when the period is a single day (nothing to link)."""
    sv = f"lake@{version}"
    link_name = "none" if att.totals.height <= 1 else linking
    ts = dt.datetime.fromisoformat(snapshot_ts) if snapshot_ts else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    stem = f"attr:{portfolio_id}:{benchmark_id}:{start}:{end}:{method}:{link_name}:{grouping}:"
    return att.groups.select(
        pl.concat_str(pl.lit(stem), pl.col(key), pl.lit(f"@{sv}")).alias("event_id"),
        pl.lit(ts).dt.cast_time_unit("us").alias("ts"),
        pl.lit(portfolio_id).alias("portfolio_id"),
        pl.lit(benchmark_id).alias("benchmark_id"),
        pl.lit(start).alias("start"),
        pl.lit(end).alias("end"),
        pl.lit(method).alias("method"),
        pl.lit(link_name).alias("linking"),
        pl.lit(grouping).alias("grouping"),
        pl.col(key).alias("group"),
        "portfolio_weight",
        "benchmark_weight",
        "portfolio_return",
        "benchmark_return",
        *EFFECTS,
        "total",
        pl.lit(sv).alias("source_version"),
        pl.lit(CODE_VERSION).alias("code_version"),
    )


# ---------------------------------------------------------------------------------------------------
# Factor attribution
# ---------------------------------------------------------------------------------------------------
def load_factors(
    con: duckdb.DuckDBPyConnection, positions: pl.DataFrame, start: dt.date, end: dt.date
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(exposures, factor_returns)`` for the symbols and dates of ``positions``: ``date, symbol, factor,
    exposure`` and ``date, factor, return``."""
    syms = positions["symbol"].unique().to_list()
    exp = query(
        con,
        """SELECT date, symbol, factor, exposure FROM factor_exposures
           WHERE date BETWEEN ? AND ? AND symbol IN (SELECT unnest(?::VARCHAR[]))""",
        [start, end, syms],
    )
    fr = query(
        con,
        """SELECT date, factor, "return" FROM factor_returns WHERE date BETWEEN ? AND ? ORDER BY date, factor""",
        [start, end],
    )
    return exp, fr


def factor_exposures_daily(positions: pl.DataFrame, exposures: pl.DataFrame) -> pl.DataFrame:
    """Per (date, factor): portfolio and benchmark exposures ``x_p = Σ w_p x``, ``x_b = Σ w_b x`` and active."""
    return (
        positions.select("date", "symbol", "w_p", "w_b")
        .join(exposures, on=["date", "symbol"], how="inner")
        .group_by("date", "factor")
        .agg(
            (pl.col("w_p") * pl.col("exposure")).sum().alias("x_p"),
            (pl.col("w_b") * pl.col("exposure")).sum().alias("x_b"),
        )
        .with_columns((pl.col("x_p") - pl.col("x_b")).alias("x_active"))
        .sort("date", "factor")
    )


SPECIFIC = "specific"


def factor_attribution(
    positions: pl.DataFrame,
    exposures: pl.DataFrame | None,
    factor_returns: pl.DataFrame,
    linking: str = "carino",
    exposures_daily: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Holdings-based factor attribution over the period, one row per factor plus ``specific`` and ``TOTAL``.

    Daily: contribution of factor f = x_f · f_f (x: Σ w exposure; f: the factor's return that day, decimal); the
    specific contribution is the return left over (R - Σ_f x_f f_f). Portfolio (``portfolio_contribution``) and
    benchmark contributions are linked against a zero return (so they sum to the compounded portfolio / benchmark
    return); active contributions are linked against the benchmark (they sum to R_p - R_b), all with ``linking``.
    ``*_exposure`` columns are averages over the days; ``factor_return`` is compounded. Decimal returns.
    ``exposures_daily`` (:func:`factor_exposures_daily`, the costly join) may be given instead of ``exposures``.
    """
    totals = daily_totals(positions)
    xd = (factor_exposures_daily(positions, exposures) if exposures_daily is None else exposures_daily).join(
        factor_returns.rename({"return": "f"}), on=["date", "factor"], how="inner"
    )
    fac = xd.select(
        "date",
        "factor",
        (pl.col("x_p") * pl.col("f")).alias("port"),
        (pl.col("x_b") * pl.col("f")).alias("bench"),
        (pl.col("x_active") * pl.col("f")).alias("active"),
    )
    spec = (
        totals.join(fac.group_by("date").agg(pl.col("port", "bench", "active").sum()), on="date", how="left")
        .fill_null(0.0)
        .select(
            "date",
            pl.lit(SPECIFIC).alias("factor"),
            (pl.col("r_p") - pl.col("port")).alias("port"),
            (pl.col("r_b") - pl.col("bench")).alias("bench"),
            (pl.col("r_p") - pl.col("r_b") - pl.col("active")).alias("active"),
        )
    )
    daily = pl.concat([fac, spec])
    z = totals.with_columns(pl.lit(0.0).alias("r_b"))
    port = link(daily, z, linking, "factor", ("port",))
    bench = link(
        daily,
        totals.select("date", pl.col("r_b").alias("r_p"), pl.lit(0.0).alias("r_b")),
        linking,
        "factor",
        ("bench",),
    )
    active = link(daily, totals, linking, "factor", ("active",))
    avg = xd.group_by("factor").agg(
        pl.col("x_p").mean().alias("portfolio_exposure"),
        pl.col("x_b").mean().alias("benchmark_exposure"),
        pl.col("x_active").mean().alias("active_exposure"),
        ((1 + pl.col("f")).product() - 1).alias("factor_return"),
    )
    out = (
        port.join(bench, on="factor")
        .join(active, on="factor")
        .join(avg, on="factor", how="left")
        .rename({"port": "portfolio_contribution", "bench": "benchmark_contribution", "active": "active_contribution"})
        .with_columns((pl.col("factor") == SPECIFIC).alias("_s"))
        .sort("_s", "factor")
        .drop("_s")
    )
    cols = ["factor", "portfolio_exposure", "benchmark_exposure", "active_exposure", "factor_return",
            "portfolio_contribution", "benchmark_contribution", "active_contribution"]  # fmt: skip
    total = out.select(
        pl.lit(TOTAL).alias("factor"),
        *(pl.lit(None, pl.Float64).alias(c) for c in cols[1:5]),
        *(pl.col(c).sum() for c in cols[5:]),
    )
    return pl.concat([out.select(cols), total])


@dataclass(frozen=True)
class Regression:
    """Returns-based factor regression: ``table`` (term, coefficient, std_error, t_stat), ``r2``, ``adj_r2``, ``n``."""

    table: pl.DataFrame
    r2: float
    adj_r2: float
    n: int


def returns_regression(returns: pl.DataFrame, factor_returns: pl.DataFrame, y: str = "r_p") -> Regression:
    """OLS of the daily series ``y`` (a column of ``returns``, with ``date``) on the daily factor returns plus an
    intercept (Sharpe 1992 returns-based style analysis, unconstrained). Classical standard errors
    (σ² (X'X)⁻¹, σ² = RSS / (n - k)), t = coefficient / standard error, R² = 1 - RSS/TSS. The intercept is a daily
    decimal alpha; coefficients are the series' loadings on each factor (dimensionless)."""
    wide = factor_returns.pivot(on="factor", index="date", values="return").sort("date")
    factors = [c for c in wide.columns if c != "date"]
    data = returns.select("date", y).join(wide, on="date", how="inner").drop_nulls()
    n, k = data.height, len(factors) + 1
    if n <= k:
        raise AttributionError(f"{n} days are too few to regress on {len(factors)} factors")
    x = np.column_stack([np.ones(n), data.select(factors).to_numpy()])
    yv = data[y].to_numpy()
    beta, *_ = np.linalg.lstsq(x, yv, rcond=None)
    resid = yv - x @ beta
    rss = float(resid @ resid)
    tss = float(((yv - yv.mean()) ** 2).sum())
    sigma2 = rss / (n - k)
    se = np.sqrt(np.diag(sigma2 * np.linalg.pinv(x.T @ x)))
    r2 = 1 - rss / tss if tss > 0 else float("nan")
    table = pl.DataFrame(
        {
            "term": ["alpha", *factors],
            "coefficient": beta,
            "std_error": se,
            "t_stat": beta / np.where(se > 0, se, np.nan),
        }
    )
    return Regression(table=table, r2=r2, adj_r2=1 - (1 - r2) * (n - 1) / (n - k), n=n)


# ---------------------------------------------------------------------------------------------------
# Tracking-error decomposition (ex ante, factor model)
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RiskDecomposition:
    """Annualised ex-ante tracking error and its Euler split: ``by_factor`` (factors + specific) and
    ``by_position`` (securities), each with ``contribution_te`` summing to ``te``, and ``pct_te`` summing to 1."""

    te: float
    factor_te: float
    specific_te: float
    by_factor: pl.DataFrame
    by_position: pl.DataFrame
    as_of: dt.date


def risk_decomposition(
    positions: pl.DataFrame,
    exposures: pl.DataFrame,
    factor_returns: pl.DataFrame,
    annualization: int = TRADING_DAYS_PER_YEAR,
    window: int = TRADING_DAYS_PER_YEAR,
) -> RiskDecomposition:
    """Ex-ante tracking error of the last day's active weights a = w_p - w_b under the factor model estimated over
    the last ``window`` days of the period (default 252): Σ = X F Xᵀ + D with X the last day's exposures, F the
    sample covariance (ddof 1) of daily factor returns, D the sample variance of each security's daily specific
    return r - Σ_f x_f f_f (0 for a security with fewer than 2 days). TE² = aᵀ Σ a, annualised by √252
    (conventions.TRADING_DAYS_PER_YEAR).

    Euler (Grinold & Kahn 2000, ch. 3) contributions, in annualised TE units, that sum to TE: factor f:
    x_a,f (F x_a)_f / TE with x_a = Xᵀ a; specific: aᵀ D a / TE; position j: a_j (Σ a)_j / TE."""
    last = positions["date"].max()
    days = positions.select(pl.col("date").unique().sort().tail(window))
    active = positions.filter((pl.col("date") == last) & ((pl.col("w_p") - pl.col("w_b")).abs() > 0)).select("symbol")
    positions = positions.join(days, on="date", how="semi").join(active, on="symbol", how="semi")
    exposures = exposures.join(days, on="date", how="semi").join(active, on="symbol", how="semi")
    factor_returns = factor_returns.join(days, on="date", how="semi")
    wide_f = factor_returns.pivot(on="factor", index="date", values="return").sort("date")
    factors = [c for c in wide_f.columns if c != "date"]
    fmat = wide_f.select(factors).to_numpy()
    cov = np.atleast_2d(np.cov(fmat, rowvar=False, ddof=1)) if fmat.shape[0] > 1 else np.zeros((len(factors),) * 2)
    spec = (
        positions.select("date", "symbol", "r")
        .unique(["date", "symbol"])
        .join(
            exposures.join(factor_returns.rename({"return": "f"}), on=["date", "factor"], how="inner")
            .group_by("date", "symbol")
            .agg((pl.col("exposure") * pl.col("f")).sum().alias("fx")),
            on=["date", "symbol"],
            how="left",
        )
        .with_columns((pl.col("r") - pl.col("fx").fill_null(0.0)).alias("u"))
        .group_by("symbol")
        .agg(pl.col("u").var(ddof=1).fill_null(0.0).fill_nan(0.0).alias("spec_var"))
    )
    today = positions.filter(pl.col("date") == last).select(
        "symbol", "group", (pl.col("w_p") - pl.col("w_b")).alias("active_weight")
    )
    x_last = exposures.filter(pl.col("date") == last)
    x_today = (
        x_last.pivot(on="factor", index="symbol", values="exposure")
        if x_last.height
        else pl.DataFrame(schema={"symbol": pl.String})
    )
    x_today = x_today.select("symbol", *(pl.col(f) if f in x_today.columns else pl.lit(0.0).alias(f) for f in factors))
    pos = (
        today.join(x_today, on="symbol", how="left")
        .join(spec, on="symbol", how="left")
        .with_columns(pl.col(factors).fill_null(0.0), pl.col("spec_var").fill_null(0.0))
        .sort("symbol")
    )
    a = pos["active_weight"].to_numpy()
    x = pos.select(factors).to_numpy() if factors else np.zeros((pos.height, 0))
    d = pos["spec_var"].to_numpy()
    xa = x.T @ a
    f_xa = cov @ xa
    sigma_a = x @ f_xa + d * a  # Σ a
    var = float(a @ sigma_a)
    scale = np.sqrt(annualization)
    te_daily = np.sqrt(max(var, 0.0))
    te = te_daily * scale
    div = te_daily if te_daily > 0 else np.nan
    fac_c = xa * f_xa / div * scale
    spec_c = float(a @ (d * a)) / div * scale
    by_factor = pl.DataFrame(
        {
            "factor": [*factors, SPECIFIC],
            "active_exposure": [*xa.tolist(), None],
            "contribution_te": [*fac_c.tolist(), spec_c],
        }
    ).with_columns((pl.col("contribution_te") / te if te > 0 else pl.lit(None, pl.Float64)).alias("pct_te"))
    by_pos = pos.select(
        "symbol",
        "group",
        "active_weight",
        (pl.col("spec_var").sqrt() * scale).alias("specific_vol"),
        pl.Series("contribution_te", a * sigma_a / div * scale),
    ).with_columns((pl.col("contribution_te") / te if te > 0 else pl.lit(None, pl.Float64)).alias("pct_te"))
    factor_var = float(xa @ f_xa)
    return RiskDecomposition(
        te=te,
        factor_te=np.sqrt(max(factor_var, 0.0)) * scale,
        specific_te=np.sqrt(max(float(a @ (d * a)), 0.0)) * scale,
        by_factor=by_factor,
        by_position=by_pos.sort("contribution_te", descending=True),
        as_of=last,
    )
