"""Pre-trade: an order described as a trader types it (symbol, side, quantity, urgency) turned into model inputs
from the lake, then expected cost per algo from every model, and a recommendation the numbers support.

Market context (point-in-time: only data before ``asof``): ADV = mean daily volume of the last
``ADV_WINDOW_DAYS`` daily bars before ``asof``; daily volatility = sample stdev of their close-to-close log
returns (decimal per day); the last close; the spread = median quoted spread at arrival (bps) of the desk's
stored TCA orders in the symbol (a 5 bps default when it has none).

Participation per algo (:func:`planned_pov`, the one rule every pre-trade price uses: this page, the expectation
of each executed order, the baselines of a model's evaluation): the median ``scheduled_participation`` (TCA; the
participation the impact models are fitted on) of the desk's orders with that algo and urgency that arrived
before the as-of date, if there are at least ``MIN_HISTORY``; else the algo's median over as many; else
URGENCY_POV. So "VWAP at MEDIUM" is priced at the participation this desk actually gets from it. The spread and
every history the page uses are cut at the as-of date too (point in time).

Units: bps of the order's notional, positive = cost (EVENTS.md). The impact models (I-Star, Almgren) estimate
market impact without the spread, and so does the learned model (its ``cfg.target``, ``impact_cost_bps``;
models trained on ``is_total_bps`` before estimate the whole implementation shortfall).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import polars as pl

from analytics import cost_model
from analytics import impact_models as im
from analytics.conventions import ADV_WINDOW_DAYS, BPS
from analytics.store import query

URGENCY_POV = {"LOW": 0.03, "MEDIUM": 0.08, "HIGH": 0.15}  # used only when the desk has no history to go by
DEFAULT_POV = 0.08  # an urgency outside URGENCY_POV
MIN_HISTORY = 5  # desk orders needed before their median participation replaces the urgency default
PARTICIPATION = "scheduled_participation"  # the TCA column a planned participation is the median of
DEFAULT_SPREAD_BPS = 5.0


_CONTEXT_SQL = """
WITH p AS (SELECT DISTINCT symbol, "asof", asof_ts FROM _probes),
ranked AS (
    SELECT p.symbol, p."asof", b.ts, b.close, b.volume,
           row_number() OVER (PARTITION BY p.symbol, p."asof" ORDER BY b.ts DESC) AS k
    FROM p JOIN bars b ON b.symbol = p.symbol AND b.interval = '1d' AND b.ts < p.asof_ts
),
last AS (
    SELECT *, ln(close / lag(close) OVER (PARTITION BY symbol, "asof" ORDER BY ts)) AS lr
    FROM ranked WHERE k <= ? + 1
)
SELECT symbol, "asof",
       avg(volume) FILTER (WHERE k <= ?) AS adv,
       stddev_samp(lr) AS sigma_daily,
       arg_max(close, ts) AS last_close,
       count(*) FILTER (WHERE k <= ?) AS bars,
       count(*) AS n_bars
FROM last GROUP BY symbol, "asof" HAVING count(*) >= 2
"""


def market_contexts(con: duckdb.DuckDBPyConnection, probes: pl.DataFrame) -> pl.DataFrame:
    """Per distinct (symbol, asof) of ``probes`` (asof: a date): ``adv`` = mean volume of the last
    ADV_WINDOW_DAYS daily bars strictly before asof (UTC midnight), ``sigma_daily`` = sample stdev of the log
    close-to-close returns of the last ADV_WINDOW_DAYS + 1 such bars (decimal per day; null with one return),
    ``last_close``, ``bars`` (in the ADV window), ``n_bars``; pairs with fewer than 2 such bars are absent. One
    query for the whole batch."""
    p = (
        probes.select("symbol", "asof")
        .unique()
        .with_columns(pl.col("asof").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("asof_ts"))
    )
    con.register("_probes", p)
    try:
        n = ADV_WINDOW_DAYS
        return query(con, _CONTEXT_SQL, [n, n, n])
    finally:
        con.unregister("_probes")


def market_context(con: duckdb.DuckDBPyConnection, symbol: str, asof: dt.date) -> dict | None:
    """:func:`market_contexts` of one (symbol, asof) as a dict (symbol, asof, adv, sigma_daily, last_close, bars),
    None when there are fewer than 2 daily bars before ``asof``."""
    rows = market_contexts(con, pl.DataFrame({"symbol": [symbol], "asof": [asof]}))
    if rows.is_empty():
        return None
    r = rows.row(0, named=True)
    return {k: r[k] for k in ("symbol", "asof", "adv", "sigma_daily", "last_close", "bars")}


_POV_SQL = """
WITH p AS (SELECT DISTINCT algo, urgency, asof_ts FROM _pp_rows),
h AS (SELECT algo, urgency, arrival_ts, pov FROM _pp_history WHERE isfinite(pov) AND pov > 0 AND filled_qty > 0)
SELECT p.algo, p.urgency, p.asof_ts,
       median(h.pov) FILTER (WHERE h.urgency IS NOT DISTINCT FROM p.urgency) AS pov_u,
       count(h.pov) FILTER (WHERE h.urgency IS NOT DISTINCT FROM p.urgency) AS n_u,
       median(h.pov) AS pov_a, count(h.pov) AS n_a
FROM p JOIN h ON h.algo = p.algo AND h.arrival_ts < p.asof_ts
GROUP BY ALL
"""


def planned_pov(history: pl.DataFrame, rows: pl.DataFrame, con: duckdb.DuckDBPyConnection | None = None) -> pl.Series:
    """The participation (decimal, Kissell's X / (X + V)) a pre-trade estimate assumes for each row of ``rows``
    (columns ``algo``, ``urgency`` and optionally ``asof``, a date): the median PARTICIPATION of the ``history``
    orders (TCA rows: algo, urgency, arrival_ts, filled_qty, PARTICIPATION) with the same algo and urgency that
    arrived before asof (UTC midnight; all of them without asof), when there are at least MIN_HISTORY; else the
    same for the algo alone; else URGENCY_POV of the urgency. Clipped to [POV_FLOOR, POV_MAX]; in ``rows``' order.
    Never an order's own participation (an outcome). One set-based query for any number of rows and dates."""
    far = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
    asof = (
        pl.col("asof").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        if "asof" in rows.columns
        else pl.lit(far, pl.Datetime("us", "UTC"))
    )
    r = rows.select(pl.col("algo").cast(pl.String), pl.col("urgency").cast(pl.String), asof.alias("asof_ts"))
    stats = pl.DataFrame(schema={"algo": pl.String, "urgency": pl.String, "asof_ts": pl.Datetime("us", "UTC"),
                                 "pov_u": pl.Float64, "n_u": pl.Int64, "pov_a": pl.Float64, "n_a": pl.Int64})  # fmt: skip
    need = ("algo", "urgency", "arrival_ts", "filled_qty", PARTICIPATION)
    if history.height and all(c in history.columns for c in need):
        con = con or duckdb.connect()
        h = history.select(*need[:-1], pl.col(PARTICIPATION).cast(pl.Float64).alias("pov"))
        con.register("_pp_history", h)
        con.register("_pp_rows", r)
        try:
            stats = query(con, _POV_SQL).with_columns(pl.col("asof_ts").dt.convert_time_zone("UTC"))
        finally:
            con.unregister("_pp_history")
            con.unregister("_pp_rows")
    default = pl.col("urgency").replace_strict(URGENCY_POV, default=DEFAULT_POV, return_dtype=pl.Float64)
    return (
        r.join(stats, on=["algo", "urgency", "asof_ts"], how="left", nulls_equal=True, maintain_order="left")
        .select(
            pl.coalesce(
                pl.when(pl.col("n_u") >= MIN_HISTORY).then(pl.col("pov_u")),
                pl.when(pl.col("n_a") >= MIN_HISTORY).then(pl.col("pov_a")),
                default,
            )
            .clip(im.POV_FLOOR, im.POV_MAX)
            .alias("pov")
        )
        .to_series()
    )


def estimate(
    ctx: dict,
    quantity: float,
    urgency: str,
    algos: list[str],
    history: pl.DataFrame,
    istar: im.ImpactFit,
    almgren: im.ImpactFit,
    learned: cost_model.CostModel | None = None,
    spread_bps: float | None = None,
    arrival: dt.datetime | None = None,
) -> pl.DataFrame:
    """Expected cost per algo (one row each): ``pov`` used, ``istar_bps`` and ``almgren_bps`` each with its 90%
    outcome band (``*_lo_bps``, ``*_hi_bps``: the estimate plus the fit's residual quantiles times the order's
    daily sigma), and (with a learned model) ``learned_bps`` with its 90% interval; ``size_pct_adv``,
    ``sigma_daily`` (decimal per day) and notional."""
    size = quantity / ctx["adv"]
    sigma = ctx["sigma_daily"] or 0.02
    if history.height and "arrival_ts" in history.columns:  # point in time: only what was known before the as-of day
        history = history.filter(pl.col("arrival_ts").dt.convert_time_zone("UTC").dt.date() < ctx["asof"])
    sym_spread = spread_bps
    if sym_spread is None and history.height:
        s = history.filter(pl.col("symbol") == ctx["symbol"])["spread_at_arrival_bps"].drop_nulls()
        sym_spread = float(s.median()) if s.len() else None
    sym_spread = sym_spread if sym_spread is not None else DEFAULT_SPREAD_BPS

    frame = pl.DataFrame(
        {
            "algo": algos,
            "size_adv": [size] * len(algos),
            "sigma_daily": [sigma] * len(algos),
            "pov": planned_pov(history, pl.DataFrame({"algo": algos, "urgency": [urgency] * len(algos)})),
        }
    )
    i = im.predict(istar, frame)
    a = im.predict(almgren, frame)
    out = frame.select(
        "algo",
        "pov",
        pl.lit(size).alias("size_pct_adv"),
        pl.lit(sigma).alias("sigma_daily"),
        pl.lit(quantity * ctx["last_close"]).alias("notional"),
        i["expected_cost_bps"].alias("istar_bps"),
        i["outcome_lo_bps"].alias("istar_lo_bps"),
        i["outcome_hi_bps"].alias("istar_hi_bps"),
        a["expected_cost_bps"].alias("almgren_bps"),
        a["outcome_lo_bps"].alias("almgren_lo_bps"),
        a["outcome_hi_bps"].alias("almgren_hi_bps"),
    )
    if learned is not None:
        ts = arrival or dt.datetime.combine(ctx["asof"], dt.time(14, 30), dt.UTC)
        x = pl.DataFrame(
            {
                "arrival_ts": [ts] * len(algos),
                "size_pct_adv": [size] * len(algos),
                "daily_volatility": [sigma] * len(algos),
                "spread_at_arrival_bps": [sym_spread] * len(algos),
                "algo": algos,
                "urgency": [urgency] * len(algos),
            }
        )
        p = cost_model.predict(learned, x)
        out = out.with_columns(
            p["expected_cost_bps"].alias("learned_bps"),
            p["cost_lo_bps"].alias("learned_lo_bps"),
            p["cost_hi_bps"].alias("learned_hi_bps"),
        )
    return out.with_columns(pl.lit(sym_spread).alias("spread_bps"))


MEASURES = {"impact_cost_bps": "impact (spread excluded)", "is_total_bps": "implementation shortfall"}


def model_estimates(
    champions: dict, size_adv: float, sigma_daily: float, pov: float, algo: str, spread_bps: float, arrival: dt.datetime
) -> pl.DataFrame:
    """One order described by its inputs (size as a decimal of ADV, daily volatility as a decimal, participation,
    algo, spread in bps, arrival time) priced by every model of ``champions`` (name -> (fit, version); I-Star and
    Almgren always, the learned model when there is one): model, version ("published" without a champion),
    target (what the cost measures), expected_cost_bps and its 90% band lo_bps, hi_bps."""
    order = pl.DataFrame({"size_adv": [size_adv], "sigma_daily": [sigma_daily], "pov": [pov], "algo": [algo]})
    rows = []
    for m in ("istar", "almgren"):
        fit, ver = champions[m]
        e = im.pretrade_estimate(fit, order).row(0, named=True)
        rows.append({"model": m, "version": ver or "published", "target": MEASURES["impact_cost_bps"],
                     "expected_cost_bps": e["expected_cost_bps"], "lo_bps": e["outcome_lo_bps"],
                     "hi_bps": e["outcome_hi_bps"]})  # fmt: skip
    learned, ver = champions.get("learned", (None, None))
    if learned is not None:
        x = pl.DataFrame({"arrival_ts": [arrival], "size_pct_adv": [size_adv], "daily_volatility": [sigma_daily],
                          "spread_at_arrival_bps": [spread_bps], "algo": [algo], "urgency": ["MEDIUM"]})  # fmt: skip
        p = cost_model.predict(learned, x).row(0, named=True)
        rows.append({"model": "learned", "version": ver, "target": MEASURES.get(learned.cfg.target, learned.cfg.target),
                     "expected_cost_bps": p["expected_cost_bps"], "lo_bps": p["cost_lo_bps"],
                     "hi_bps": p["cost_hi_bps"]})  # fmt: skip
    return pl.DataFrame(rows)


SAVING_LEVEL = 0.95  # the expected saving's interval over the model's parameter draws
MAX_SIZE_ADV = 0.25  # an order above this share of ADV is flagged (module docstring of size_warning)
MODELS = {"istar": "I-Star", "almgren": "Almgren", "learned": "Learned"}


def recommend(est: pl.DataFrame, almgren: im.ImpactFit | None = None, level: float = SAVING_LEVEL) -> dict:
    """The algo to use, only when the model's own uncertainty supports it.

    The choice rests on the Almgren model (it prices algos through its fitted temporary-impact multipliers and
    carries bootstrap draws of its parameters; the learned model's interval is an outcome interval, with no
    uncertainty of its expectation to compare algos by). For the cheapest algo by the point estimate, the expected
    saving against each other algo, s = E[cost(other)] - E[cost(best)] (bps, positive = best is cheaper), is
    computed under every draw of ``almgren`` (one order, both algos priced by the same draw); its ``level``
    percentile interval is ``saving_lo_bps, saving_hi_bps`` (against the runner-up). The algos whose saving
    interval reaches zero are ``equivalent`` to the best (the best included); ``recommended`` is True only when no
    other algo is. Without draws (published parameters: no uncertainty to judge by) every algo is equivalent.
    ``band_half_width_bps``: half the best algo's 90% band for ONE order's outcome (a real saving smaller than it
    pays off on average over many orders, not visibly on each). Needs est's algo, pov, size_pct_adv, sigma_daily,
    almgren_bps, almgren_lo_bps, almgren_hi_bps."""
    ranked = est.drop_nulls("almgren_bps").sort("almgren_bps", "algo")
    if ranked.is_empty():
        return {}
    best = ranked.row(0, named=True)
    nxt = ranked.row(1, named=True) if ranked.height > 1 else None
    frame = ranked.select("algo", pl.col("size_pct_adv").alias("size_adv"), "sigma_daily", "pov")
    draws = im.draw_costs(almgren, frame) if almgren is not None else np.empty((0, ranked.height))
    algos = ranked["algo"].to_list()
    a = (1 - level) / 2
    if len(draws):
        saving = draws - draws[:, [0]]  # per draw: other algo's cost - best's (column 0 = the best)
        lo, hi = np.quantile(saving, a, axis=0), np.quantile(saving, 1 - a, axis=0)
        equivalent = [x for x, low in zip(algos, lo, strict=True) if low <= 0]
        basis = f"{level:.0%} interval of the expected saving over {len(draws)} bootstrap draws of the Almgren fit"
    else:
        lo = hi = np.full(len(algos), np.nan)
        equivalent = algos
        basis = "published parameters: no estimate of their uncertainty, so no algo is shown to be cheaper"
    return {
        "algo": best["algo"],
        "model": "almgren",
        "expected_bps": best["almgren_bps"],
        "runner_up": nxt["algo"] if nxt else None,
        "saving_bps": (nxt["almgren_bps"] - best["almgren_bps"]) if nxt else None,
        # None, not NaN, when there is no interval (no runner-up, or published parameters without draws)
        "saving_lo_bps": float(lo[1]) if nxt and len(draws) else None,
        "saving_hi_bps": float(hi[1]) if nxt and len(draws) else None,
        "equivalent": equivalent,
        "recommended": len(equivalent) == 1 and ranked.height > 1,
        "basis": basis,
        "band_half_width_bps": (best["almgren_hi_bps"] - best["almgren_lo_bps"]) / 2,
    }


def size_warning(size_adv: float, limit: float = MAX_SIZE_ADV) -> str | None:
    """A warning when the order is above ``limit`` of ADV (decimal; default 25%), else None. Past a quarter of a
    day's volume the impact laws are extrapolated beyond the orders they were estimated on (ATHL 2005's sample
    and the desk's own fits are orders of a few % ADV), the order is a large share of the day's liquidity, and
    a single-day schedule (what the per-algo participation assumes) is itself doubtful."""
    if size_adv is None or not np.isfinite(size_adv) or size_adv <= limit:
        return None
    return (
        f"This order is {size_adv:.0%} of ADV, above the {limit:.0%} the estimates are meant for: the models "
        f"extrapolate beyond the orders they were fitted on; treat every figure as indicative and consider a "
        f"multi-day schedule (the frontier below)."
    )


DISAGREE_RATIO = 1.5  # two models' expected costs this far apart (larger / smaller) disagree ...
DISAGREE_MIN_BPS = 10.0  # ... when they also differ by at least this much (1 vs 2 bps is no disagreement)


def disagreements(est: pl.DataFrame) -> pl.DataFrame:
    """Per algo, every pair of models whose estimates disagree: one model's point estimate outside the other's
    90% band (``*_lo_bps``..``*_hi_bps``), or the larger estimate at least DISAGREE_RATIO times the smaller
    (both positive) and DISAGREE_MIN_BPS above it (the outcome bands hold one order's noise, wide enough to hide
    a factor of two between two expectations). Columns algo, model_a, bps_a, model_b, bps_b, ratio (the larger
    over the smaller estimate; null when one is <= 0), in bps, positive = cost. Empty when the models agree."""
    have = [m for m in MODELS if f"{m}_bps" in est.columns and f"{m}_lo_bps" in est.columns]
    parts = []
    for i, m1 in enumerate(have):
        for m2 in have[i + 1 :]:
            e1, e2 = pl.col(f"{m1}_bps"), pl.col(f"{m2}_bps")
            outside = (
                (e1 < pl.col(f"{m2}_lo_bps")) | (e1 > pl.col(f"{m2}_hi_bps"))
                | (e2 < pl.col(f"{m1}_lo_bps")) | (e2 > pl.col(f"{m1}_hi_bps"))
            )  # fmt: skip
            big, small = pl.max_horizontal(e1, e2), pl.min_horizontal(e1, e2)
            apart = (small > 0) & (big >= DISAGREE_RATIO * small) & (big - small >= DISAGREE_MIN_BPS)
            parts.append(
                est.filter((outside | apart).fill_null(False)).select(
                    "algo",
                    pl.lit(MODELS[m1]).alias("model_a"),
                    e1.alias("bps_a"),
                    pl.lit(MODELS[m2]).alias("model_b"),
                    e2.alias("bps_b"),
                    pl.when(small > 0).then(big / small).alias("ratio"),
                )
            )
    schema = {"algo": pl.String, "model_a": pl.String, "bps_a": pl.Float64, "model_b": pl.String,
              "bps_b": pl.Float64, "ratio": pl.Float64}  # fmt: skip
    return pl.concat(parts) if parts else pl.DataFrame(schema=schema)


def model_disagreements(est: pl.DataFrame, algo: str) -> pl.DataFrame:
    """:func:`disagreements` of :func:`model_estimates` rows (one order priced by each model: model,
    expected_cost_bps, lo_bps, hi_bps) for ``algo``."""
    cols = [pl.lit(r["expected_cost_bps"]).alias(f"{r['model']}_bps") for r in est.iter_rows(named=True)] + [
        pl.lit(r[k]).alias(f"{r['model']}_{k}") for r in est.iter_rows(named=True) for k in ("lo_bps", "hi_bps")
    ]
    return disagreements(pl.DataFrame({"algo": [algo]}).with_columns(cols))


# ---------------------------------------------------------------------------------------------------
# When to start: the intraday volume profile and the cost-risk trade-off of each start time
# ---------------------------------------------------------------------------------------------------
SLOT_MINUTES = 30
SESSION_MINUTES = 390  # 09:30-16:00 New York
PROFILE_DAYS = 5


def volume_profile(con: duckdb.DuckDBPyConnection, asof: dt.date, days: int = PROFILE_DAYS) -> pl.DataFrame:
    """Share of the day's traded volume in each 30-minute slot of the New York session (slot 0 = 09:30-10:00, ...,
    slot 12 = 15:30-16:00; the 16:00 closing cross is slot 13), averaged over the ``days`` latest trading days
    strictly before ``asof``, across all symbols (the market's shape: one name's tape is too sparse for it).
    Columns ``slot``, ``start`` ("HH:MM" New York), ``share`` (decimal, sums to 1); empty without trades."""
    lo = dt.datetime.combine(asof - dt.timedelta(days=3 * days + 7), dt.time(), dt.UTC)
    hi = dt.datetime.combine(asof, dt.time(), dt.UTC)
    rows = query(
        con,
        f"""WITH t AS (
                SELECT timezone('America/New_York', ts) AS ny, size FROM trades WHERE ts >= ? AND ts < ?),
            m AS (SELECT ny::DATE AS day, date_diff('minute', ny::DATE + TIME '09:30', ny) AS minute, size FROM t),
            d AS (SELECT day, least(minute // {SLOT_MINUTES}, {SESSION_MINUTES // SLOT_MINUTES}) AS slot,
                         sum(size) AS v
                  FROM m WHERE minute >= 0 AND minute <= {SESSION_MINUTES} GROUP BY ALL),
            recent AS (SELECT day FROM d GROUP BY day ORDER BY day DESC LIMIT ?),
            s AS (SELECT day, slot, v / sum(v) OVER (PARTITION BY day) AS share FROM d WHERE day IN (SELECT day FROM recent))
            SELECT slot::INTEGER AS slot, sum(share) / (SELECT count(*) FROM recent) AS share FROM s GROUP BY slot
            ORDER BY slot""",
        [lo, hi, days],
    )
    if rows.is_empty():
        return rows
    return rows.with_columns(
        pl.format(
            "{}:{}",
            ((570 + pl.col("slot") * SLOT_MINUTES) // 60).cast(pl.String).str.zfill(2),
            ((570 + pl.col("slot") * SLOT_MINUTES) % 60).cast(pl.String).str.zfill(2),
        ).alias("start")
    ).select("slot", "start", "share")


def start_times(
    profile: pl.DataFrame, size_adv: float, sigma_daily: float, fit: im.ImpactFit, risk_aversion: float = 0.5
) -> pl.DataFrame:
    """Expected cost and risk of starting the order at each slot of ``profile`` (:func:`volume_profile`) and
    trading it to the close at a constant share of the volume (VWAP to the close).

    For a start at slot s: remaining volume share R(s) = the shares of slots >= s (the closing cross included);
    participation pov(s) = X / (ADV R(s) + X) (``size_adv`` = X / ADV); ``expected_cost_bps`` = the model's market
    impact at that pov (as :func:`impact_models.frontier`); ``timing_risk_bps`` = sigma_daily_bps sqrt(T(s) / 3),
    T(s) = the trading days left (session minutes left / 390; Almgren & Chriss 2000, a linear liquidation);
    ``objective_bps`` = cost + ``risk_aversion`` x risk; ``recommended`` marks its minimum. Starting later leaves
    less volume (higher participation, more impact) and less time exposed to the price (less risk). Units: bps of
    the order's notional, positive = cost; side-symmetric."""
    if profile.is_empty():
        return pl.DataFrame()
    p = profile.sort("slot").filter(pl.col("slot") < SESSION_MINUTES // SLOT_MINUTES)  # starts: 09:30 ... 15:30
    total = profile["share"].sum()
    remaining = (total - profile.sort("slot")["share"].cum_sum().shift(1, fill_value=0.0))[: p.height].to_numpy()
    pov = size_adv / (size_adv + remaining)
    n = p.height
    cost = im.market_impact_bps(fit, size_adv, sigma_daily, pov)
    days_left = (SESSION_MINUTES - p["slot"].to_numpy() * SLOT_MINUTES) / SESSION_MINUTES
    risk = sigma_daily * BPS * np.sqrt(days_left / 3)
    obj = cost + risk_aversion * risk
    return p.select("start").with_columns(
        pl.Series("remaining_volume_share", remaining),
        pl.Series("pov", pov),
        pl.Series("expected_cost_bps", cost),
        pl.Series("timing_risk_bps", risk),
        pl.Series("objective_bps", obj),
        pl.Series("recommended", np.arange(n) == int(np.argmin(obj))),
    )
