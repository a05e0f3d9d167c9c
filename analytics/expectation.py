"""Expected cost of orders: pre-trade predictions for a batch of (real or hypothetical) orders
(``ExecutionCostPredictionEvent``, EVENTS.md) and, after the fact, realised minus expected cost by broker,
algo and period ("post-trade vs expectation").

Units: bps, **positive = cost** (EVENTS.md: the client is worse off).

Predictions (:func:`predict_orders`). Each order's context is point-in-time, computed set-based for every
(symbol, date) of the batch in one query, with the same definitions as :mod:`analytics.pretrade` for one order:
ADV = mean daily volume of the last ``ADV_WINDOW_DAYS`` daily bars strictly before the order's date, daily
volatility = sample stdev of the log close-to-close returns of the last ``ADV_WINDOW_DAYS + 1`` such bars
(decimal per day), the spread = median ``spread_at_arrival_bps`` of the desk's stored TCA orders in the symbol
that arrived before the date (``pretrade.DEFAULT_SPREAD_BPS`` without any), and, when the order gives no
``pov``, :func:`analytics.pretrade.planned_pov` (the desk's earlier orders' median scheduled participation with
that algo and urgency, at least 5 orders; else the algo's; else ``pretrade.URGENCY_POV``). The models: I-Star and Almgren (market impact,
spread excluded; the interval is the model's 90% band for the realised outcome) or the learned cost model (its
target, implementation shortfall or market impact, named in ``cost_measure``; its predictive interval), from the
lake's MLflow champion (published parameters before any training for I-Star and Almgren).

Post-trade vs expectation: ONE definition, implemented here once and used by the Overview, the Cost models page,
the TCA page, the report and the drift events (:func:`analytics.tracking.drift`). Per filled order
(:func:`per_order`), realised = ``impact_cost_bps`` (fills against the arrival mid, per filled notional: what the
impact models predict; ``impact_models.training_frame``) and expected = the impact model at the order's executed
size, volatility and scheduled participation (TCA); ``gap_bps`` = realised - expected (**positive = the order cost
more than expected**); ``out_of_sample`` = the order arrived on a day after the model's training data
(``ImpactFit.trained_through``; every order for published parameters). Over a set of orders (:func:`summary`, per
group :func:`gap_by`, per period :func:`gap_over_time`): the filled-notional-weighted mean of each, the gap's 95%
interval (sandwich standard error, ``tca.weighted_mean_ci``), n, and ``saving`` = -sum(gap x filled notional) /
1e4 (currency; positive = the desk traded better than the model expected). Every summary names the model and the
version that priced it. Source for the expectation: Kissell (2013), *The Science of Algorithmic
Trading and Portfolio Management*, ch. 5 (I-Star); Almgren et al. (2005).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import duckdb
import polars as pl

from analytics import impact_models as im
from analytics import pretrade
from analytics.conventions import BPS
from analytics.store import query
from analytics.tca import weighted_mean_ci

# bump when a prediction's or a gap's meaning changes (2: out_of_sample rows, summary, gap_over_time)
CODE_VERSION = "expectation-2"
INTERVAL_LEVEL = 0.90  # the intervals' level unless the model states its own (impact models: PREDICTION_LEVEL)
MODELS = ("istar", "almgren", "learned")
TARGET_MEASURE = {"impact_cost_bps": "market_impact", "is_total_bps": "implementation_shortfall"}  # learned targets
URGENCIES = ("LOW", "MEDIUM", "HIGH")
READERS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


class PredictionError(ValueError):
    """An unreadable orders file, or no usable model."""


# ---------------------------------------------------------------------------------------------------
# Post-trade vs expectation
# ---------------------------------------------------------------------------------------------------
def per_order(orders: pl.DataFrame, fit: im.ImpactFit) -> pl.DataFrame:
    """One row per filled TCA order (``tca.load_orders`` rows) with the impact model's inputs: order_id,
    arrival_ts, day, broker, algo, filled_notional, ``realised_bps`` (= impact_cost_bps), ``expected_bps``
    (``fit`` at the executed size, volatility and participation) and ``gap_bps`` = realised - expected
    (positive = cost above expectation). Orders without those inputs (unfilled, no ADV...) are left out."""
    tf = im.training_frame(orders)
    if tf.is_empty():
        return pl.DataFrame(
            schema={"order_id": pl.String, "arrival_ts": pl.Datetime("us", "UTC"), "day": pl.Date,
                    "broker": pl.String, "algo": pl.String, "filled_notional": pl.Float64,
                    "realised_bps": pl.Float64, "expected_bps": pl.Float64, "gap_bps": pl.Float64,
                    "out_of_sample": pl.Boolean}
        )  # fmt: skip
    pred = im.predict(fit, tf)["expected_cost_bps"]
    brokers = orders.select("order_id", pl.col("broker").cast(pl.String)).unique("order_id", keep="first")
    through = dt.datetime.fromisoformat(fit.trained_through).date() if fit.trained_through else None
    oos = pl.lit(True) if through is None else pl.col("arrival_ts").dt.date() > through
    return (
        tf.select("order_id", "arrival_ts", "algo", "filled_notional", pl.col("impact_cost_bps").alias("realised_bps"))
        .with_columns(pred.alias("expected_bps"), oos.alias("out_of_sample"))
        .with_columns((pl.col("realised_bps") - pl.col("expected_bps")).alias("gap_bps"))
        .join(brokers, on="order_id", how="left", maintain_order="left")
        .select(
            "order_id",
            "arrival_ts",
            pl.col("arrival_ts").dt.date().alias("day"),
            "broker",
            "algo",
            "filled_notional",
            "realised_bps",
            "expected_bps",
            "gap_bps",
            "out_of_sample",
        )
    )


def _weighted(rows: pl.DataFrame) -> list[pl.Expr]:
    w = pl.col("filled_notional")
    return [
        pl.len().alias("orders"),
        w.sum().alias("filled_notional"),
        ((pl.col("realised_bps") * w).sum() / w.sum()).alias("realised_bps"),
        ((pl.col("expected_bps") * w).sum() / w.sum()).alias("expected_bps"),
        *weighted_mean_ci(pl.col("gap_bps"), w),
        (-(pl.col("gap_bps") * w).sum() / BPS).alias("saving"),
    ]


def summary(rows: pl.DataFrame, fit: im.ImpactFit | None = None) -> dict:
    """The realised-vs-expected figures of :func:`per_order` ``rows`` (module docstring): orders,
    filled_notional, realised_bps, expected_bps, ``gap_bps`` = realised - expected (positive = worse than
    expected) with ``gap_lo_bps``/``gap_hi_bps`` (95%), ``saving`` (currency, positive = better than expected),
    ``out_of_sample_orders``; with ``fit``, ``model`` and ``model_version`` ("published" without a registry
    version). ``{"orders": 0}`` (plus the model) without rows."""
    named = {} if fit is None else {"model": fit.model, "model_version": fit.version or "published"}
    if rows.is_empty():
        return {"orders": 0, **named}
    r = rows.select(*_weighted(rows), pl.col("out_of_sample").sum().alias("out_of_sample_orders")).row(0, named=True)
    return {
        "orders": int(r["orders"]), "filled_notional": float(r["filled_notional"]),
        "realised_bps": float(r["realised_bps"]), "expected_bps": float(r["expected_bps"]),
        "gap_bps": float(r["mean"]), "gap_lo_bps": r["lo"], "gap_hi_bps": r["hi"], "saving": float(r["saving"]),
        "out_of_sample_orders": int(r["out_of_sample_orders"]), **named,
    }  # fmt: skip


def realised_vs_expected(orders: pl.DataFrame, fit: im.ImpactFit) -> dict:
    """:func:`summary` of the TCA ``orders`` under ``fit``: the one realised-vs-expected figure of the pages and
    the report."""
    return summary(per_order(orders, fit), fit)


def gap_over_time(rows: pl.DataFrame, every: str = "1w") -> pl.DataFrame:
    """:func:`summary`'s figures per period (``every``: a Polars duration, 1d, 1w, 1mo) of the rows' arrival:
    period_start, orders, filled_notional, realised_bps, expected_bps, gap_bps, gap_lo_bps, gap_hi_bps, n,
    saving."""
    return (
        rows.sort("arrival_ts")
        .group_by_dynamic("arrival_ts", every=every)
        .agg(*_weighted(rows))
        .rename({"arrival_ts": "period_start", "mean": "gap_bps", "lo": "gap_lo_bps", "hi": "gap_hi_bps"})
    )


GROUPINGS = ("broker", "algo", "day", "week")


def gap_by(rows: pl.DataFrame, by: str, min_orders: int = 30) -> pl.DataFrame:
    """Realised minus expected cost per ``by`` (``broker``, ``algo``, ``day`` or ``week``: the Monday of the
    arrival's ISO week) over :func:`per_order` rows, filled-notional weighted: ``orders``, ``filled_notional``,
    ``realised_bps``, ``expected_bps``, ``gap_bps`` (positive = cost above expectation) with ``gap_bps_lo`` /
    ``gap_bps_hi`` (95%), ``n`` and ``small_sample`` (fewer than ``min_orders``). Sorted by the gap (largest
    first), or by time for ``day``/``week``."""
    if by not in GROUPINGS:
        raise ValueError(f"group by one of {GROUPINGS}, not {by!r}")
    key = pl.col("day").dt.truncate("1w").alias("week") if by == "week" else pl.col(by)
    g = (
        rows.with_columns(key)
        .group_by(by)
        .agg(*_weighted(rows))
        .drop("saving")
        .rename({"mean": "gap_bps", "lo": "gap_bps_lo", "hi": "gap_bps_hi"})
        .with_columns((pl.col("n") < min_orders).alias("small_sample"))
    )
    return g.sort(by) if by in ("day", "week") else g.sort("gap_bps", descending=True, nulls_last=True)


def post_vs_expected(orders: pl.DataFrame, fit: im.ImpactFit, by: str, min_orders: int = 30) -> pl.DataFrame:
    """:func:`gap_by` of the TCA ``orders`` under ``fit`` (the pages' cached entry point)."""
    return gap_by(per_order(orders, fit), by, min_orders)


# ---------------------------------------------------------------------------------------------------
# Pre-trade predictions of a batch of orders
# ---------------------------------------------------------------------------------------------------
def read_orders(path: str | Path) -> pl.DataFrame:
    """The orders file as read (CSV: every column as text; JSON Lines; Parquet) plus ``line``: the 1-based line
    of a CSV (header = 1) or JSON Lines file, the 0-based row of a Parquet file (as the ingest's quarantine)."""
    p = Path(path)
    kind = READERS.get(p.suffix.lower())
    if kind is None:
        raise PredictionError(f"{p}: unknown orders format {p.suffix!r} (use .csv, .jsonl or .parquet)")
    try:
        if kind == "csv":
            raw, first = pl.read_csv(p, infer_schema=False), 2
        elif kind == "jsonl":
            raw, first = pl.read_ndjson(p, infer_schema_length=None), 1
        else:
            raw, first = pl.read_parquet(p), 0
    except (OSError, pl.exceptions.PolarsError) as e:
        raise PredictionError(f"{p}: cannot read the orders: {e}") from e
    return raw.with_row_index("line", offset=first).with_columns(pl.col("line").cast(pl.Int64))


def _text(raw: pl.DataFrame, name: str) -> pl.Expr:
    return pl.col(name).cast(pl.String).str.strip_chars() if name in raw.columns else pl.lit(None, pl.String)


def _number(raw: pl.DataFrame, name: str) -> pl.Expr:
    if name not in raw.columns:
        return pl.lit(None, pl.Float64)
    if raw.schema[name] == pl.String:
        return pl.col(name).str.strip_chars().cast(pl.Float64, strict=False)
    return pl.col(name).cast(pl.Float64, strict=False)


def _timestamp(raw: pl.DataFrame) -> tuple[pl.Expr, pl.Expr]:
    """(parsed UTC arrival time, given-but-invalid flag) from ``arrival_ts``, ``ts`` or ``arrival_time``. A time
    without a zone is invalid (EVENTS.md: rejected, not guessed)."""
    name = next((c for c in ("arrival_ts", "ts", "arrival_time") if c in raw.columns), None)
    if name is None:
        return pl.lit(None, pl.Datetime("us", "UTC")), pl.lit(False)
    d = raw.schema[name]
    if isinstance(d, pl.Datetime):
        if d.time_zone is None:
            return pl.lit(None, pl.Datetime("us", "UTC")), pl.col(name).is_not_null()
        parsed = pl.col(name).dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    else:
        text = pl.col(name).cast(pl.String).str.strip_chars().str.replace(r"Z$", "+00:00")
        parsed = text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_unit="us", time_zone="UTC")
    return parsed, pl.col(name).is_not_null() & parsed.is_null()


def _date(raw: pl.DataFrame) -> tuple[pl.Expr, pl.Expr]:
    if "date" not in raw.columns:
        return pl.lit(None, pl.Date), pl.lit(False)
    d = raw.schema["date"]
    parsed = pl.col("date").cast(pl.Date) if d == pl.Date else pl.col("date").cast(pl.String).str.to_date(strict=False)
    return parsed, pl.col("date").is_not_null() & parsed.is_null()


def validate_orders(raw: pl.DataFrame, today: dt.date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(valid, rejected) rows of an orders frame (:func:`read_orders`). Valid rows have: line, order_id (null =
    a hypothetical order), symbol, side (BUY|SELL, case-insensitive on input), quantity (> 0), asof (the
    order's date: of ``arrival_ts``/``ts``, else ``date``, else ``today``), arrival_ts (or null), algo, urgency
    (LOW|MEDIUM|HIGH, default MEDIUM), pov (decimal in (0, 1], or null). Rejected rows keep their raw values
    as text with ``reason`` and ``detail`` (the first failing rule)."""
    ts, bad_ts = _timestamp(raw)
    day, bad_day = _date(raw)
    norm = raw.select(
        "line",
        _text(raw, "order_id").alias("order_id"),
        _text(raw, "symbol").alias("symbol"),
        _text(raw, "side").str.to_uppercase().alias("side"),
        _number(raw, "quantity").alias("quantity"),
        _text(raw, "quantity").alias("quantity_raw"),
        ts.alias("arrival_ts"),
        bad_ts.alias("_bad_ts"),
        day.alias("_day"),
        bad_day.alias("_bad_day"),
        _text(raw, "algo").alias("algo"),
        _text(raw, "urgency").str.to_uppercase().alias("urgency"),
        _number(raw, "pov").alias("pov"),
        _text(raw, "pov").alias("pov_raw"),
    )
    q, pov = pl.col("quantity"), pl.col("pov")
    reason = (
        pl.when(pl.col("symbol").is_null() | (pl.col("symbol") == ""))
        .then(pl.lit("missing_symbol"))
        .when(~pl.col("side").is_in(["BUY", "SELL"]).fill_null(False))
        .then(pl.lit("bad_side"))
        .when(q.is_null() | ~q.is_finite())
        .then(pl.lit("bad_quantity"))
        .when(q <= 0)
        .then(pl.lit("non_positive_quantity"))
        .when(pl.col("_bad_ts") | pl.col("_bad_day"))
        .then(pl.lit("bad_timestamp"))
        .when(pl.col("urgency").is_not_null() & ~pl.col("urgency").is_in(URGENCIES))
        .then(pl.lit("bad_urgency"))
        .when(pl.col("pov_raw").is_not_null() & (pov.is_null() | (pov <= 0) | (pov > 1)))
        .then(pl.lit("bad_pov"))
    )
    detail = (
        pl.when(pl.col("reason") == "missing_symbol")
        .then(pl.lit("no symbol"))
        .when(pl.col("reason") == "bad_side")
        .then(pl.format("side {} is not BUY or SELL", pl.col("side").fill_null("(missing)")))
        .when(pl.col("reason") == "bad_quantity")
        .then(pl.format("quantity {} is not a number", pl.col("quantity_raw").fill_null("(missing)")))
        .when(pl.col("reason") == "non_positive_quantity")
        .then(pl.format("quantity {} must be positive", pl.col("quantity_raw")))
        .when(pl.col("reason") == "bad_timestamp")
        .then(pl.lit("arrival time or date unreadable, or a time without a zone (UTC ISO-8601 expected)"))
        .when(pl.col("reason") == "bad_urgency")
        .then(pl.format("urgency {} is not LOW, MEDIUM or HIGH", pl.col("urgency")))
        .when(pl.col("reason") == "bad_pov")
        .then(pl.format("pov {} is not a participation rate in (0, 1]", pl.col("pov_raw")))
    )
    checked = norm.with_columns(reason.alias("reason")).with_columns(detail.alias("detail"))
    rejected = checked.filter(pl.col("reason").is_not_null()).select(
        "line", "order_id", "symbol", "side", pl.col("quantity_raw").alias("quantity"), "reason", "detail"
    )
    valid = checked.filter(pl.col("reason").is_null()).select(
        "line", "order_id", "symbol", "side", "quantity", "quantity_raw",
        pl.coalesce(pl.col("arrival_ts").dt.date(), pl.col("_day"), pl.lit(today)).alias("asof"),
        "arrival_ts", "algo", pl.col("urgency").fill_null("MEDIUM"), "pov",
    )  # fmt: skip
    return valid, rejected


_SPREAD_SQL = """
SELECT p.symbol, p."asof", median(h.spread_at_arrival_bps) AS spread_bps
FROM (SELECT DISTINCT symbol, "asof", asof_ts FROM _probes) p
JOIN _history h ON h.symbol = p.symbol AND h.arrival_ts < p.asof_ts AND h.spread_at_arrival_bps IS NOT NULL
GROUP BY p.symbol, p."asof"
"""


def _probe_frame(rows: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    return (
        rows.select(*keys, "asof")
        .unique()
        .with_columns(pl.col("asof").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("asof_ts"))
    )


HISTORY_COLUMNS = ("symbol", "algo", "urgency", "arrival_ts", pretrade.PARTICIPATION, "filled_qty",
                   "spread_at_arrival_bps")  # fmt: skip


def desk_history(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    """``rows`` (valid orders) with ``spread_bps`` (median spread at arrival of the desk's earlier orders in the
    symbol, else the default) and ``pov_used`` (the order's pov, else :func:`analytics.pretrade.planned_pov` as
    of the order's date). "Earlier" = arrived before the order's date."""
    spread = pl.DataFrame(schema={"symbol": pl.String, "asof": pl.Date, "spread_bps": pl.Float64})
    ok = history.height and all(c in history.columns for c in HISTORY_COLUMNS)
    if ok:
        con.register("_history", history.select(HISTORY_COLUMNS))
        try:
            con.register("_probes", _probe_frame(rows, ["symbol"]))
            spread = query(con, _SPREAD_SQL)
        finally:
            con.unregister("_probes")
            con.unregister("_history")
    planned = pretrade.planned_pov(history if ok else pl.DataFrame(), rows.select("algo", "urgency", "asof"), con)
    return (
        rows.join(spread, on=["symbol", "asof"], how="left", maintain_order="left")
        .with_columns(planned.alias("_planned"))
        .with_columns(
            pl.col("spread_bps").fill_null(pretrade.DEFAULT_SPREAD_BPS),
            pl.coalesce(pl.col("pov").clip(im.POV_FLOOR, im.POV_MAX), "_planned").alias("pov_used"),
        )
        .drop("_planned")
    )


def predict_frame(rows: pl.DataFrame, model: str, fit) -> pl.DataFrame:
    """``expected_cost_bps`` and its interval (``cost_lo_bps``, ``cost_hi_bps``, ``interval_level``) for every row at once, and
    ``cost_measure``. Rows need size_pct_adv, daily_volatility, pov_used, algo, urgency, spread_bps, asof,
    arrival_ts. ``fit``: an ``ImpactFit`` (istar, almgren: the outcome band) or a ``CostModel`` (learned: its
    predictive interval, ``cost_measure`` from its target; arrival time defaults to 14:30 UTC of asof, as the Pre-trade page)."""
    if model == "learned":
        from analytics import cost_model

        x = rows.select(
            pl.coalesce("arrival_ts", pl.col("asof").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
                        + pl.duration(hours=14, minutes=30)).alias("arrival_ts"),
            "size_pct_adv", "daily_volatility", pl.col("spread_bps").alias("spread_at_arrival_bps"), "algo", "urgency",
        )  # fmt: skip
        p = cost_model.predict(fit, x)
        return p.select(
            "expected_cost_bps", "cost_lo_bps", "cost_hi_bps",
            pl.lit(TARGET_MEASURE.get(fit.cfg.target, fit.cfg.target)).alias("cost_measure"),
            pl.lit(float(getattr(fit.cfg, "level", INTERVAL_LEVEL))).alias("interval_level"),
        )  # fmt: skip
    frame = rows.select(
        pl.col("size_pct_adv").alias("size_adv"), pl.col("daily_volatility").alias("sigma_daily"),
        pl.col("pov_used").alias("pov"), "algo",
    )  # fmt: skip
    p = im.predict(fit, frame)
    return p.select(
        "expected_cost_bps",
        pl.col("outcome_lo_bps").alias("cost_lo_bps"),
        pl.col("outcome_hi_bps").alias("cost_hi_bps"),
        pl.lit("market_impact").alias("cost_measure"),
        pl.lit(im.PREDICTION_LEVEL).alias("interval_level"),
    )


def predict_orders(
    con: duckdb.DuckDBPyConnection,
    raw: pl.DataFrame,
    model: str,
    fit,
    model_name: str,
    model_version: str | None,
    history: pl.DataFrame,
    source_version: str,
    today: dt.date | None = None,
    produced: dt.datetime | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(predictions, rejected) for the orders ``raw`` (:func:`read_orders`): one ``ExecutionCostPredictionEvent``
    per valid order, computed for the whole batch at once; rows that cannot be predicted are returned with a
    reason (the :func:`validate_orders` rules, ``unknown_symbol``: no daily bars at all, ``no_market_context``:
    fewer than 2 daily bars before the order's date). ``event_id`` is a hash of the batch, the model and the
    lake version plus the input line, so re-predicting the same file gives the same ids. ``size_above_limit``:
    the order is above ``pretrade.MAX_SIZE_ADV`` of ADV (the models extrapolate; the Pre-trade page warns)."""
    if model not in MODELS:
        raise PredictionError(f"unknown model {model!r} (one of {MODELS})")
    produced = produced or dt.datetime.now(dt.UTC)
    valid, rejected = validate_orders(raw, today or produced.date())
    ctx = pretrade.market_contexts(con, valid.select("symbol", "asof")) if valid.height else pl.DataFrame()
    known = query(con, "SELECT DISTINCT symbol FROM bars WHERE interval = '1d'")["symbol"].to_list()
    if ctx.height:
        valid = valid.join(ctx.drop("n_bars"), on=["symbol", "asof"], how="left", maintain_order="left")
    else:
        valid = valid.with_columns(
            pl.lit(None, pl.Float64).alias(c) for c in ("adv", "sigma_daily", "last_close")
        ).with_columns(pl.lit(None, pl.Int64).alias("bars"))
    no_ctx = valid.filter(pl.col("adv").is_null() | (pl.col("adv") <= 0))
    if no_ctx.height:
        unknown = ~pl.col("symbol").is_in(known)
        rejected = pl.concat(
            [
                rejected,
                no_ctx.select(
                    "line", "order_id", "symbol", "side", pl.col("quantity_raw").alias("quantity"),
                    pl.when(unknown).then(pl.lit("unknown_symbol")).otherwise(pl.lit("no_market_context")).alias("reason"),
                    pl.when(unknown).then(pl.format("no daily bars for {} in the lake", "symbol"))
                    .otherwise(pl.format("fewer than 2 daily bars of {} before {}", "symbol", "asof")).alias("detail"),
                ),
            ]
        )  # fmt: skip
    valid = valid.filter(pl.col("adv").is_not_null() & (pl.col("adv") > 0))
    rejected = rejected.sort("line")
    if valid.is_empty():
        return pl.DataFrame(), rejected
    valid = desk_history(con, valid, history).with_columns(
        (pl.col("quantity") / pl.col("adv")).alias("size_pct_adv"),
        pl.col("sigma_daily").fill_null(0.02).alias("daily_volatility"),  # pretrade's default for a 2-bar history
    )
    pred = predict_frame(valid, model, fit)
    token = hashlib.sha256(
        "|".join([model_name, model_version or "published", source_version, CODE_VERSION]).encode()
        + raw.hash_rows().to_numpy().tobytes()
    ).hexdigest()[:16]
    out = pl.concat([valid, pred], how="horizontal").select(
        pl.lit("ExecutionCostPredictionEvent").alias("event_type"),
        pl.format("{}-{}", pl.lit(token), "line").alias("event_id"),
        pl.lit(produced).cast(pl.Datetime("us", "UTC")).alias("ts"),
        "order_id",
        pl.col("order_id").is_null().alias("hypothetical"),
        "line", "symbol", "side", "quantity", "asof", "arrival_ts", "algo", "urgency",
        pl.col("pov_used").alias("pov"), "adv", "size_pct_adv",
        (pl.col("size_pct_adv") > pretrade.MAX_SIZE_ADV).alias("size_above_limit"), "daily_volatility", "spread_bps",
        (pl.col("quantity") * pl.col("last_close")).alias("notional"),
        pl.lit(model).alias("model"), pl.lit(model_name).alias("model_name"),
        pl.lit(model_version or "published").alias("model_version"),
        "cost_measure", "expected_cost_bps", "cost_lo_bps", "cost_hi_bps",
        "interval_level",
        pl.lit(source_version).alias("source_version"), pl.lit(CODE_VERSION).alias("code_version"),
    )  # fmt: skip
    return out.sort("line"), rejected


def rejected_path(out: str | Path) -> Path:
    """Where the rows that could not be predicted go: beside ``out``, ``<stem>.rejected<suffix>``."""
    p = Path(out)
    return p.with_name(f"{p.stem}.rejected{p.suffix}")
