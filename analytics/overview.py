"""The desk's period at a glance: headline figures against the previous period, daily trends, the best and
worst choices, the lake's data-quality status and a plain-sentence summary built from these figures.

Every figure comes from the same functions the detail pages and the CLI use (``tca.summary``,
``tca.by_group``), so the overview, the TCA page and ``python -m analytics tca`` agree by construction.
Units: costs in bps, positive = the client is worse off (EVENTS.md); notional in the orders' currency.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict

import duckdb
import polars as pl

from analytics import attribution, tca
from analytics.conventions import BPS
from analytics.filters import Filters
from analytics.store import read_bundle, write_bundle

HEADLINE = ("filled_notional", "orders", "fills", "is_total_bps", "is_total_cost", "arrival_cost_bps")
MIN_ORDERS = 30  # a best/worst claim needs at least this many orders on the side named


def previous_period(f: Filters) -> Filters | None:
    """The same filters over the equally long span of calendar days just before ``f.start`` (None without
    both dates)."""
    if f.start is None or f.end is None:
        return None
    days = (f.end - f.start).days + 1
    return Filters(
        start=f.start - dt.timedelta(days=days),
        end=f.start - dt.timedelta(days=1),
        portfolio=f.portfolio,
        symbol=f.symbol,
        broker=f.broker,
        algo=f.algo,
        venue=f.venue,
    )


def headline(orders: pl.DataFrame, previous: pl.DataFrame | None = None) -> dict:
    """``tca.summary`` of the period with, for each HEADLINE figure, the previous period's value and the
    change (``<name>_prev``, ``<name>_change``; bps figures change in bps, counts and notional as a ratio)."""
    cur = tca.summary(orders)
    out = dict(cur)
    prev = tca.summary(previous) if previous is not None and not previous.is_empty() else {}
    for k in HEADLINE:
        a, b = cur.get(k), prev.get(k)
        out[f"{k}_prev"] = b
        if a is None or b is None:
            out[f"{k}_change"] = None
        elif k.endswith("_bps"):
            out[f"{k}_change"] = round(a - b, 4)
        else:
            out[f"{k}_change"] = (a / b - 1) if b else None
    return out


def daily(orders: pl.DataFrame) -> pl.DataFrame:
    """Per arrival day: orders, filled notional, IS in bps (Σ IS cost / Σ paper notional) and arrival cost
    (filled-notional weighted), for the trend sparklines."""
    if orders.is_empty():
        return pl.DataFrame(
            schema={"day": pl.Date, "orders": pl.UInt32, "filled_notional": pl.Float64, "is_total_bps": pl.Float64}
        )
    w = pl.col("filled_notional")
    ok = pl.col("arrival_cost_bps").is_not_null() & (pl.col("filled_qty") > 0)
    return (
        orders.group_by(pl.col("arrival_ts").dt.date().alias("day"))
        .agg(
            pl.len().alias("orders"),
            w.sum().alias("filled_notional"),
            (pl.col("is_total_cost").sum() / pl.col("paper_notional").sum() * BPS).alias("is_total_bps"),
            ((pl.col("arrival_cost_bps") * w).filter(ok).sum() / w.filter(ok).sum()).alias("arrival_cost_bps"),
        )
        .sort("day")
    )


def leaders(groups: pl.DataFrame, dim: str, metric: str = "arrival_cost_bps") -> dict:
    """The cheapest and the costliest value of ``dim`` by ``metric`` from a ``tca.by_group``-shaped frame
    (``<metric>``, ``<metric>_lo``/``_hi`` 95% interval, ``small_sample``; ``orders`` or ``fills``), among
    values with enough observations; ``best``/``worst`` are None when fewer than two qualify. ``separated``
    says whether their intervals do not overlap: only then is "best" a claim the data supports."""
    none = {"dimension": dim, "best": None, "worst": None, "separated": False}
    if groups.is_empty() or metric not in groups.columns:
        return none
    g = groups.filter(~pl.col("small_sample")) if "small_sample" in groups.columns else groups
    g = g.drop_nulls(metric).sort(metric)
    if g.height < 2:
        return none
    count = "orders" if "orders" in g.columns else "fills"
    pick = (count, metric, f"{metric}_lo", f"{metric}_hi")
    best, worst = g.row(0, named=True), g.row(-1, named=True)
    return {
        "dimension": dim,
        "best": {"key": best[dim], **{k: best[k] for k in pick}},
        "worst": {"key": worst[dim], **{k: worst[k] for k in pick}},
        "separated": best[f"{metric}_hi"] < worst[f"{metric}_lo"],
    }


def adjusted_groups(orders: pl.DataFrame, dim: str, units: pl.DataFrame | None = None) -> pl.DataFrame:
    """Difficulty-adjusted arrival cost per value of an order dimension (broker, algo): the execution-quality
    regression (``quality.adjust``: expected cost on the desk's average order mix, cluster-bootstrap 95%
    intervals), in the ``tca.by_group`` shape :func:`leaders` reads. ``units``: ``quality.adjustment_units``
    of ``orders`` for any dimensions that include ``dim`` (re-keyed here), to share them between dimensions."""
    from analytics import quality

    if units is None:
        units = quality.adjustment_units(None, None, Filters(), dim, orders)
    else:
        units = units.with_columns(pl.col(dim).cast(pl.String).fill_null("(none)").alias("key"))
    adj = quality.adjust(units, dimension=dim)
    if adj.table.is_empty():
        return pl.DataFrame()
    return adj.table.select(
        pl.col("key").alias(dim),
        pl.col("adjusted_bps").alias("arrival_cost_bps"),
        pl.col("adjusted_lo").alias("arrival_cost_bps_lo"),
        pl.col("adjusted_hi").alias("arrival_cost_bps_hi"),
        pl.col("n").alias("orders"),
        "small_sample",
    )


def board(
    orders: pl.DataFrame, venues: pl.DataFrame | None = None, min_orders: int = MIN_ORDERS, adjusted: bool = True
) -> list[dict]:
    """Best and worst broker and algo by arrival cost, difficulty-adjusted (``adjusted``; else raw, notional-
    weighted), and venue by its fills' raw arrival cost (``venues`` as ``tca.venue_costs`` returns it; a venue
    does not choose its orders' difficulty the way a broker's mix does). Each entry says which (``basis``)."""
    from analytics import quality

    out = []
    # the blocks and difficulty features of the orders, computed once for both dimensions
    units = quality.adjustment_units(None, None, Filters(), "broker+algo", orders) if adjusted else None
    for d in ("broker", "algo"):
        g = adjusted_groups(orders, d, units) if adjusted else tca.by_group(orders, d, min_orders=min_orders)
        out.append({**leaders(g, d), "basis": "difficulty-adjusted" if adjusted else "raw"})
    if venues is not None:
        out.append({**leaders(venues, "venue"), "basis": "raw"})
    return out


def portfolios(
    con: duckdb.DuckDBPyConnection,
    start: dt.date | None,
    end: dt.date | None,
    ids: tuple[str, ...] = (),
    group_by: str = "sector",
) -> pl.DataFrame:
    """Each portfolio's compounded return, its benchmark's and the active return over ``start..end`` (returns
    dated in the range; the holdings' span when a date is missing), with the largest Brinson-Fachler effect
    (Carino-linked, by ``group_by``) by absolute size: ``top_group``, ``top_effect`` (allocation, selection or
    interaction) and ``top_value`` (decimal). Same functions as the Attribution page and CLI."""
    lo, hi = con.execute("SELECT min(date), max(date) FROM holdings").fetchone()
    if lo is None:
        return pl.DataFrame()
    start, end = start or lo, end or hi
    pf = con.execute("SELECT portfolio_id, benchmark_id FROM portfolios ORDER BY 1").fetchall()
    rows = []
    for pid, bench in pf:
        if ids and pid not in ids:
            continue
        try:
            att = attribution.attribute(attribution.load_positions(con, pid, bench, start, end, group_by))
        except attribution.AttributionError:
            continue
        g = att.groups.filter(pl.col("group") != attribution.TOTAL)
        total = att.groups.filter(pl.col("group") == attribution.TOTAL).row(0, named=True)
        effects = g.unpivot(list(attribution.EFFECTS), index="group", variable_name="effect", value_name="value")
        top = effects.sort(pl.col("value").abs(), descending=True).row(0, named=True) if effects.height else {}
        rows.append(
            {
                "portfolio_id": pid,
                "benchmark_id": bench,
                "portfolio_return": total["portfolio_return"],
                "benchmark_return": total["benchmark_return"],
                "active_return": total["total"],
                "top_group": top.get("group"),
                "top_effect": top.get("effect"),
                "top_value": top.get("value"),
            }
        )
    return pl.DataFrame(rows)


def expectation(orders: pl.DataFrame, fit) -> dict:
    """Realised vs expected market impact of the period's filled orders under an impact model ``fit`` (the
    I-Star champion on the pages): :func:`analytics.expectation.realised_vs_expected`, the one definition the
    Cost models page, the TCA page, the report and the drift events share (filled-notional weighted; ``gap_bps``
    = realised - expected, positive = worse than expected, with its 95% interval; ``saving`` in currency, positive
    = better than expected; ``model`` and ``model_version``: the model that priced it), plus ``difference_bps``,
    the gap's former name here."""
    from analytics import expectation as ex

    e = ex.realised_vs_expected(orders, fit)
    return {**e, "difference_bps": e["gap_bps"]} if e.get("orders") else e


# --- The overview's figures, stored per lake version ----------------------------------------------
# Everything the landing page draws from the orders (headline against the previous period, best and worst,
# daily trends, portfolios, realised vs expected) in one bundle, written under derived/ the first time a
# (lake version, filters, champion) is asked for: a fresh app process then draws the landing page from one
# small file instead of loading a year of orders and re-running the adjusted regressions. A new lake version
# or a new champion is a new key, so a stored bundle is never stale.
# bump when a figure's definition changes: old bundles are then ignored (2: the expectation names its model
# version and carries the gap's interval)
FIGURES = "overview-2"


def figures(
    orders: pl.DataFrame,
    previous: pl.DataFrame | None,
    venues: pl.DataFrame | None,
    books: pl.DataFrame,
    fit,
) -> dict:
    """The landing page's figures: :func:`headline` (against ``previous``), :func:`board`, :func:`daily`,
    ``portfolios`` (as :func:`portfolios` returned them) and :func:`expectation` under ``fit``."""
    return {
        "headline": headline(orders, previous),
        "board": board(orders, venues) if orders.height else [],
        "daily": daily(orders),
        "portfolios": books,
        "expectation": expectation(orders, fit) if orders.height else {"orders": 0},
    }


def figures_key(f: Filters, champion: str | None) -> str:
    """A stable name for the figures of filters ``f`` under the I-Star ``champion`` version (None: the
    published parameters); the previous period follows from ``f``."""
    spec = {k: (v.isoformat() if isinstance(v, dt.date) else list(v)) for k, v in asdict(f).items() if v}
    from analytics import quality

    # the code versions of what the figures are computed from: a TCA or quality change is a new key too
    code = [FIGURES, tca.CODE_VERSION, quality.CODE_VERSION]
    text = json.dumps({"filters": spec, "champion": champion, "code": code}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _figures_dir(lake, version: int):
    """The figures read the whole lake (orders, fills, positions, models' inputs...): they are stored under the
    fingerprint of every file of ``version`` (not its number), so a rollback finds the figures of the files it
    restores and any commit is a new key."""
    return lake.derived_dir(FIGURES, lake.content_key(lake.manifest(version)))


def stored_figures(lake, version: int, key: str) -> dict | None:
    """The figures stored for ``key`` over the files of lake ``version``, or None."""
    return read_bundle(_figures_dir(lake, version) / f"{key}.json")


def store_figures(lake, version: int, key: str, figs: dict) -> None:
    lake.sweep_derived(FIGURES)  # temp files of a killed run
    write_bundle(_figures_dir(lake, version) / f"{key}.json", figs)


def dataset_status(listing: list[dict]) -> list[dict]:
    """The latest version of each training dataset with its quality (% of candidate rows passing every rule)
    and whether it meets the product's promise of more than 95%."""
    latest: dict[str, dict] = {}
    for d in listing:
        if d["name"] not in latest or d["version"] > latest[d["name"]]["version"]:
            latest[d["name"]] = d
    return [
        {**d, "meets_promise": d.get("quality_pct") is not None and d["quality_pct"] > 95.0}
        for d in sorted(latest.values(), key=lambda x: x["name"])
    ]


def data_status(lake_summary: dict) -> dict:
    """The lake's quality status from ``Lake.summary()``: rows accepted, rows quarantined and their share,
    the top reasons; ``status`` is ``ok`` below 1% quarantined, ``check`` up to 5%, else ``poor``."""
    accepted = sum(t["rows"] for t in lake_summary["tables"] if t["table"] not in ("quarantine", "ingests"))
    quarantined = sum(q["rows"] for q in lake_summary["quarantine"])
    share = quarantined / (accepted + quarantined) if accepted + quarantined else 0.0
    status = "ok" if share < 0.01 else "check" if share < 0.05 else "poor"
    return {
        "version": lake_summary["version"],
        "rows": accepted,
        "quarantined": quarantined,
        "quarantined_share": share,
        "status": status,
        "top_reasons": lake_summary["quarantine"][:3],
    }


def _bps(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1f} bps"


def narrative(
    head: dict,
    board: list[dict],
    status: dict | None = None,
    books: pl.DataFrame | None = None,
    expect: dict | None = None,
) -> list[str]:
    """Plain sentences with the numbers (no model): what was traded, what it cost against the previous
    period, which choices were cheapest and costliest (hedged when their intervals overlap), data quality."""
    if not head.get("orders"):
        return ["No orders in this period: widen the dates or clear filters in the sidebar."]
    out = [
        f"The desk traded {head['filled_notional']:,.0f} in {head['orders']:,} orders ({head['fills']:,} fills). "
        f"Implementation shortfall was {_bps(head['is_total_bps'])} of paper notional "
        f"({head['is_total_cost']:,.0f} in currency); arrival cost {_bps(head['arrival_cost_bps'])}."
    ]
    ch = head.get("is_total_bps_change")
    if ch is not None:
        word = "worse" if ch > 0 else "better"
        out.append(
            f"That is {abs(ch):.1f} bps {word} than the previous period ({_bps(head['is_total_bps_prev'])})."
            if abs(ch) >= 0.05
            else "That is unchanged from the previous period."
        )
    for b in board:
        if not b["best"]:
            continue
        lo, hi = b["best"], b["worst"]
        m = "arrival_cost_bps"
        basis = f" ({b['basis']})" if b.get("basis") else ""
        sentence = (
            f"By {b['dimension']}{basis}: {lo['key']} was cheapest at {_bps(lo[m])} and {hi['key']} costliest "
            f"at {_bps(hi[m])}"
        )
        sentence += (
            " (the 95% intervals do not overlap)."
            if b["separated"]
            else "; the intervals overlap, so the ranking is not conclusive."
        )
        out.append(sentence)
    for r in books.iter_rows(named=True) if books is not None else []:
        line = (
            f"Portfolio {r['portfolio_id']} returned {100 * r['portfolio_return']:+.2f}% against "
            f"{100 * r['benchmark_return']:+.2f}% for {r['benchmark_id']} "
            f"(active {BPS * r['active_return']:+.0f} bps)"
        )
        if r["top_group"] is not None:
            line += f"; the largest effect was {r['top_effect']} in {r['top_group']} ({BPS * r['top_value']:+.0f} bps)"
        out.append(line + ".")
    if expect and expect.get("orders"):
        gap = expect["gap_bps"]
        word = "better" if gap < 0 else "worse"
        lo, hi = expect.get("gap_lo_bps"), expect.get("gap_hi_bps")
        sure = lo is not None and hi is not None and (lo > 0 or hi < 0)
        version = expect.get("model_version", "published")
        name = "published parameters" if version == "published" else f"champion v{version}"
        out.append(
            f"Market impact was {expect['realised_bps']:+.1f} bps against {expect['expected_bps']:+.1f} bps expected by "
            f"the I-Star model ({name}): realised − expected {gap:+.1f} bps, {abs(gap):.1f} bps {word} than expected"
            + (
                f" (95% interval {lo:+.1f} to {hi:+.1f} bps{'' if sure else ', which includes zero'})"
                if lo is not None
                else ""
            )
            + f"; {expect['saving']:+,.0f} in currency."
        )
    if status:
        out.append(
            f"Data quality: {status['quarantined']:,} rows quarantined "
            f"({100 * status['quarantined_share']:.2f}% of input) in lake version {status['version']} "
            f"— status {status['status']}."
        )
    return out
