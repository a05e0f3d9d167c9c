"""Versioned, reproducible training datasets under the lake, and model feedback from their outcomes.

A version holds two tables:

- **order rows** (``data.parquet``): one per parent order arriving in the dates: its point-in-time features at
  arrival (features.py) and at its decision (``dec_``-prefixed market features), its realized outcome (TCA's IS
  and friends, tca.py), its two labels (labels.py) and lineage;
- **decision rows** (``decisions.parquet``): one per trading decision stamped in the dates, whether or not it led
  to an order: its market context at its own timestamp (the same registered features, strictly before it), its
  own alpha/horizon/strategy/urgency, the orders it led to (``orders``, ``order_id``: outcomes, not features), its
  realized return over the horizon net of execution cost and its decision label (labels.decision_outcomes: the
  realized IS when executed, the pre-trade estimate when not, ``pending`` until the horizon's bar exists).

Each decision is probed once: its context is its own row's features and the ``dec_`` features of the order rows
that name it. Candidate rows failing a quality rule (dataquality.py; order rules and decision rules) are excluded
and kept, with their reasons, beside the data.

Layout (under the lake root; published atomically by :func:`analytics.store.publish_version_dir`)::

    datasets/<name>/v0001/data.parquet                the order rows (sorted by arrival_ts, order_id)
    datasets/<name>/v0001/failures.parquet            the excluded order rows with ``reasons``
    datasets/<name>/v0001/decisions.parquet           the decision rows (sorted by decision_ts, decision_id)
    datasets/<name>/v0001/decision_failures.parquet   the excluded decision rows with ``reasons``
    datasets/<name>/v0001/feedback.parquet            ModelPerformanceFeedbackEvent rows (per model and month)
    datasets/<name>/v0001/manifest.json               lineage, definitions, quality, hashes

The manifest keeps the TrainingDatasetEvent keys for the order rows (rows, label_counts, quality_pct, schema_hash...)
and adds ``decisions`` (the decision rows' rows, label counts, cost sources, quality report, schema and content
hashes, features, schema) and ``order_rows_content_hash``.

Reproducible: the rows depend only on the lake version and the code version; each table's content hash is the
SHA-256 of its rows' canonical CSV text and schema (no write time in it), and ``content_hash`` combines both
tables'. Building again from the same lake version and code gives the same hash, and no new version is written
(the existing one is returned).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl

from analytics import dataquality, features, labels, tca
from analytics.conventions import BPS
from analytics.filters import Filters
from analytics.store import Lake, publish_version_dir, query, scan_day_files, sweep_temp, version_dirs

CODE_VERSION = f"datasets-2+{features.CODE_VERSION}+{labels.CODE_VERSION}+{dataquality.CODE_VERSION}+{tca.CODE_VERSION}"
DATASETS_DIR = "datasets"
EVENT_KEYS = (
    "name",
    "version",
    "rows",
    "label_counts",
    "quality_pct",
    "excluded_by_rule",
    "content_hash",
    "schema_hash",
    "lake_version",
    "code_version",
    "location",
    "features",
    "label_definition",
    "decisions",
)  # fmt: skip  the EVENTS.md keys, then "decisions" (the decision rows' figures: DECISION_EVENT_KEYS)
DECISION_EVENT_KEYS = (
    "rows", "label_counts", "cost_source_counts", "quality_pct", "excluded_by_rule", "content_hash", "schema_hash",
)  # fmt: skip
OUTCOME_COLUMNS = (
    "is_total_bps", "is_delay_bps", "is_trading_bps", "is_opportunity_bps", "is_fees_bps", "arrival_cost_bps",
    "vwap_interval_cost_bps", "fill_rate", "duration_s",
)  # fmt: skip
ORDER_COLUMNS = (
    "order_id", "decision_id", "symbol", "side", "portfolio_id", "broker", "algo", "arrival_ts", "end_ts",
    "decision_ts", "decision_price", "arrival_price", "prev_close", "order_qty", "filled_qty",
)  # fmt: skip
MARKET_PREFIX = "dec_"
QUOTE_COLUMNS = ["symbol", "ts", "bid", "ask", "bid_size", "ask_size"]
TRADE_COLUMNS = ["symbol", "ts", "price", "size"]
# Decision rows (decisions.parquet): one per trading decision stamped in the dataset's dates, whether or not it
# led to an order. Their feature columns are decision_feature_columns(); these are the rest.
DECISION_COLUMNS = (
    "decision_id", "portfolio_id", "symbol", "side", "quantity", "decision_ts", "decision_price",
    "decision_price_source", "model_id",
)  # fmt: skip
DECISION_LINK_COLUMNS = ("orders", "order_id", "mismatched_orders")  # outcomes: known after the decision
DECISION_OUTCOME_COLUMNS = (
    "realized_return_bps", "horizon_day", "realized_cost_bps", "executed_qty", "expected_cost_bps",
    "expected_cost_sd_bps", "execution_cost_bps", "cost_source", "decision_net_bps", "decision_z", "decision_label",
)  # fmt: skip
DECISION_LINEAGE_COLUMNS = ("quote_ts", "trade_ts", "bar_day", "prev_close")
DAYS_PER_RUN = 5  # probe days whose ticks are loaded at once (bounds memory; as tca.DAYS_PER_RUN)
# Point-in-time lineage of every row: the last quote, trade and daily bar its features read, at the order and at
# the decision (the no-look-ahead rule checks them; kept in the data so anyone can re-check).
LINEAGE_COLUMNS = ("quote_ts", "trade_ts", "bar_day", "dec_quote_ts", "dec_trade_ts", "dec_bar_day")


class DatasetError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------------
# Candidate rows
# ---------------------------------------------------------------------------------------------------
def _entity_sql() -> str:
    """Orders' NEW facts and their decisions' fields (planned duration from algo_params, known at arrival),
    and per order the fills whose symbol or side contradicts it. Decisions come from ``_ds_dec`` (one row per
    decision_id: its first event)."""
    return """
    SELECT t.order_id, n.quantity AS new_qty, d.decision_ts AS dec_ts, d.symbol AS decision_symbol,
           d.side AS decision_side, d.quantity AS decision_qty, d.alpha_bps, d.horizon_days, d.model_id,
           d.strategy AS decision_strategy, coalesce(n.urgency, d.urgency) AS urgency_any,
           epoch_us(TRY_CAST(json_extract_string(n.algo_params, '$.end_time') AS TIMESTAMPTZ))
             - epoch_us(TRY_CAST(json_extract_string(n.algo_params, '$.start_time') AS TIMESTAMPTZ)) AS planned_us,
           coalesce(fm.bad, 0) AS mismatched_fills
    FROM _ds_tca t
    LEFT JOIN (SELECT order_id, any_value(quantity) AS quantity, any_value(urgency) AS urgency,
                      any_value(algo_params) AS algo_params
               FROM orders WHERE action = 'NEW' AND order_id IN (SELECT order_id FROM _ds_tca) GROUP BY 1) n
           USING (order_id)
    LEFT JOIN _ds_dec d ON d.decision_id = t.decision_id
    LEFT JOIN (SELECT f.order_id, count(*) AS bad FROM fills f JOIN _ds_tca o USING (order_id)
               WHERE f.symbol <> o.symbol OR f.side <> o.side GROUP BY 1) fm USING (order_id)"""


def _decisions_sql() -> str:
    """One row per decision_id (its first event by ts, event_id) stamped in ``[$lo, $hi)`` (null = open) or named
    by an order of ``_ds_linked``; ``in_range`` tells the first kind (the dataset's decision rows)."""
    return """
    SELECT decision_id, ts AS decision_ts, portfolio_id, strategy, symbol, side, quantity,
           decision_price AS sent_price, urgency, alpha_bps, horizon_days, model_id,
           coalesce(ts >= $lo, true) AND coalesce(ts < $hi, true) AS in_range
    FROM decisions
    WHERE decision_id IS NOT NULL AND ts IS NOT NULL
      AND ((coalesce(ts >= $lo, true) AND coalesce(ts < $hi, true))
           OR decision_id IN (SELECT decision_id FROM _ds_linked))
    QUALIFY row_number() OVER (PARTITION BY decision_id ORDER BY ts, event_id) = 1"""


def _links_sql() -> str:
    """Per decision of ``_ds_dec``: the orders (NEW events in the lake) that name it, the first of them by arrival,
    and how many contradict its symbol or side. Outcomes, not features: known only after the decision."""
    return """
    SELECT o.decision_id, count(DISTINCT o.order_id) AS orders,
           first(o.order_id ORDER BY o.ts, o.order_id) AS order_id,
           count(DISTINCT o.order_id) FILTER (WHERE o.symbol <> d.symbol OR o.side <> d.side) AS mismatched_orders
    FROM orders o JOIN _ds_dec d USING (decision_id)
    WHERE o.action = 'NEW' AND o.decision_id IS NOT NULL GROUP BY 1"""


def _realized_sql(rel: str, key: str) -> str:
    """Decision's realized return: close of the daily bar ``horizon_days`` bars after the decision's day (the
    decision day's own bar is bar 0), side-signed against the decision price, bps. Null until that bar exists.
    Also ``prev_close``: the last daily close before the decision's day. ``rel`` has ``key, symbol, side,
    decision_price, horizon_days, dec_ts``."""
    return f"""
    WITH b AS (SELECT symbol, ts::DATE AS day, close,
                      row_number() OVER (PARTITION BY symbol ORDER BY ts) AS k
               FROM bars WHERE "interval" = '1d' AND symbol IN (SELECT symbol FROM {rel})),
    d AS (SELECT c.{key}, c.symbol, c.side, c.decision_price, c.horizon_days, c.dec_ts::DATE AS dday FROM {rel} c
          WHERE c.dec_ts IS NOT NULL),
    d0 AS (SELECT d.*, b.k AS k0 FROM d ASOF LEFT JOIN b ON d.symbol = b.symbol AND b.day >= d.dday),
    dp AS (SELECT d.{key}, b.close AS prev_close FROM d ASOF LEFT JOIN b ON d.symbol = b.symbol AND d.dday > b.day)
    SELECT d0.{key}, bh.day AS horizon_day, bh.close AS horizon_close, dp.prev_close,
           CASE d0.side WHEN 'BUY' THEN 1 ELSE -1 END * (bh.close - d0.decision_price) / d0.decision_price * {BPS}
             AS realized_return_bps
    FROM d0 LEFT JOIN b bh ON bh.symbol = d0.symbol AND d0.horizon_days IS NOT NULL
                           AND bh.k = d0.k0 + CAST(round(d0.horizon_days) AS BIGINT)
    LEFT JOIN dp USING ({key})"""


def _temp_table(con: duckdb.DuckDBPyConnection, name: str, df: pl.DataFrame) -> None:
    con.register(f"{name}_in", df.to_arrow())
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_in")
    con.unregister(f"{name}_in")


def _bounds(start: dt.date | None, end: dt.date | None) -> dict:
    """Half-open timestamp bounds of the inclusive UTC dates ``start..end`` (None = open)."""
    return {
        "lo": dt.datetime.combine(start, dt.time(), dt.UTC) if start else None,
        "hi": dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC) if end else None,
    }


def _decision_entities(
    con: duckdb.DuckDBPyConnection, start: dt.date | None, end: dt.date | None, linked: pl.Series | None = None
) -> pl.DataFrame:
    """Temp table ``_ds_dec`` and its frame: every decision stamped in ``start..end`` and every decision named in
    ``linked`` (the order rows' decision ids), with the orders each led to (``orders``, ``order_id``,
    ``mismatched_orders``), sorted by (decision_ts, decision_id)."""
    ids = pl.DataFrame({"decision_id": (linked if linked is not None else pl.Series([], dtype=pl.String))})
    _temp_table(con, "_ds_linked", ids.select(pl.col("decision_id").cast(pl.String)).drop_nulls().unique())
    dec = query(con, _decisions_sql(), _bounds(start, end))
    _temp_table(con, "_ds_dec", dec)
    links = query(con, _links_sql())
    return (
        dec.join(links, on="decision_id", how="left")
        .with_columns(pl.col("orders").fill_null(0), pl.col("mismatched_orders").fill_null(0))
        .sort("decision_ts", "decision_id")
    )


def _decision_probes(dec: pl.DataFrame, first_id: int) -> pl.DataFrame:
    """One probe per decision at its own timestamp, with its own quantity, side, urgency, strategy, alpha and
    horizon; ids ``first_id, first_id + 1, ...`` in ``dec``'s order."""
    return dec.select(
        (pl.int_range(pl.len(), dtype=pl.Int64) + first_id).alias("probe_id"), pl.lit("decision").alias("anchor"),
        "symbol", pl.col("decision_ts").alias("ts"), pl.col("quantity").cast(pl.Float64),
        pl.when(pl.col("side") == "BUY").then(1).otherwise(-1).alias("side_sign"), "urgency", "strategy",
        "alpha_bps", "horizon_days", pl.lit(None, pl.Float64).alias("planned_duration_s"),
        pl.col("decision_ts").alias("decision_ts"),
    )  # fmt: skip


def _decision_rows(con: duckdb.DuckDBPyConnection, dec: pl.DataFrame, fx: pl.DataFrame) -> pl.DataFrame:
    """Decision rows from the entities ``dec`` (with ``probe_id``) and the features of their probes ``fx``: the
    decision price (sent, else the mid of the last quote before the decision, point-in-time), its realized
    return over the horizon (null until the horizon's bar exists) and the previous close."""
    cols = [*decision_feature_columns(), "quote_ts", "trade_ts", "bar_day", "probe_mid"]
    own = [c for c in ("strategy", "urgency", "alpha_bps", "horizon_days") if c in decision_feature_columns()]
    rows = dec.drop(own).join(fx.select("probe_id", *cols), on="probe_id", how="left")
    rows = rows.with_columns(
        pl.coalesce("sent_price", "probe_mid").alias("decision_price"),
        pl.when(pl.col("sent_price").is_not_null())
        .then(pl.lit("sent"))
        .when(pl.col("probe_mid").is_not_null())
        .then(pl.lit("mid_before"))
        .alias("decision_price_source"),
    )
    _temp_table(
        con,
        "_ds_dreal",
        rows.select(
            "decision_id", "symbol", "side", "decision_price", "horizon_days", pl.col("decision_ts").alias("dec_ts")
        ),
    )
    realized = query(con, _realized_sql("_ds_dreal", "decision_id"))
    return rows.join(realized, on="decision_id", how="left").drop("sent_price", "probe_mid", "probe_id")


def decision_contexts(
    con: duckdb.DuckDBPyConnection,
    start: dt.date | None = None,
    end: dt.date | None = None,
    quotes: features.Source = "quotes",
    trades: features.Source = "trades",
    bars: str = "bars",
) -> pl.DataFrame:
    """Decision rows (before costs, labels and quality rules) of every decision stamped ``start..end`` from the
    relations ``decisions``, ``orders`` and ``bars`` of ``con`` and the tick sources ``quotes``/``trades``: one row
    per decision_id with its point-in-time market context at its timestamp (features.py: strictly before it), its
    own fields, the orders it led to and its realized return. The lake path (:func:`candidates`) computes the
    same rows with the ticks loaded a few days at a time."""
    dec = _decision_entities(con, start, end)
    dec = dec.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("probe_id"))
    fx = features.compute(con, _decision_probes(dec, 0), quotes, trades, bars)
    rows = _decision_rows(con, dec, fx).filter(pl.col("in_range")).drop("in_range")
    return rows.sort("decision_ts", "decision_id")


def candidates(lake: Lake, start: dt.date | None = None, end: dt.date | None = None, progress=None) -> pl.DataFrame:
    """Every parent order that arrived in ``start..end`` with features, outcomes and quality inputs (before
    the quality rules and labels). Computes and stores the TCA of missing days first."""
    return all_candidates(lake, start, end, progress)[0]


def all_candidates(
    lake: Lake, start: dt.date | None = None, end: dt.date | None = None, progress=None, version: int | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(order rows, decision rows) before quality rules and labels: every parent order that arrived in
    ``start..end`` and every decision stamped in ``start..end``, from lake ``version`` (default: current; one
    snapshot for everything read). Each decision is probed once: its context is both its own row's features and
    the ``dec_`` features of the orders that name it."""
    say = progress or (lambda f, m: None)
    v = tca.ensure(lake, start, end, progress=lambda f, m: say(0.05 + 0.35 * f, m), version=version)
    m = lake.manifest(v)
    con = lake.connect(m)
    try:
        orders = tca.load_orders(lake, con, Filters(start=start, end=end), v)
        say(0.45, "decision contexts")
        sel = [*ORDER_COLUMNS, *OUTCOME_COLUMNS, "strategy", "urgency"]
        if orders.is_empty():
            orders = pl.DataFrame(schema={"order_id": pl.String, "decision_id": pl.String})
        else:
            orders = orders.select(sel)
        _temp_table(con, "_ds_tca", orders)
        dec = _decision_entities(con, start, end, orders["decision_id"])
        if not orders.is_empty():
            ent = query(con, _entity_sql())
            cand = orders.join(ent, on="order_id", how="left")
            cand = cand.with_columns(
                pl.coalesce("strategy", "decision_strategy").alias("strategy"),
                pl.coalesce("urgency", "urgency_any").alias("urgency"),
                (pl.col("planned_us") / 1e6).alias("planned_duration_s"),
                pl.when(pl.col("side") == "BUY").then(1).otherwise(-1).alias("side_sign"),
            ).drop("decision_strategy", "urgency_any", "planned_us")
            cand = cand.sort("arrival_ts", "order_id").with_row_index("row_id")
            oprobes = cand.select(
                pl.col("row_id").cast(pl.Int64).alias("probe_id"), pl.lit("order").alias("anchor"), "symbol",
                pl.col("arrival_ts").alias("ts"), pl.col("order_qty").alias("quantity"), "side_sign", "urgency",
                "strategy", "alpha_bps", "horizon_days", "planned_duration_s", pl.col("dec_ts").alias("decision_ts"),
            )  # fmt: skip
        else:
            cand, oprobes = pl.DataFrame(), pl.DataFrame(schema=features.PROBE_SCHEMA)
        if dec.is_empty() and cand.is_empty():
            return pl.DataFrame(), pl.DataFrame()
        dec = dec.with_columns((pl.int_range(pl.len(), dtype=pl.Int64) + oprobes.height).alias("probe_id"))
        probes = pl.concat([oprobes, _decision_probes(dec, oprobes.height)], how="vertical_relaxed")
        lo, hi = probes["ts"].min().date(), probes["ts"].max().date()
        lake.scan(con, "bars", lo - dt.timedelta(days=3 * features.ADV_WINDOW_DAYS), hi).create_view("_ds_bars")
        # A few probe days at a time: memory stays bounded by DAYS_PER_RUN days of ticks, whatever the range.
        probes = probes.with_columns(pl.col("ts").dt.date().alias("_day"))
        days = probes["_day"].unique().sort().to_list()
        parts = []
        for i in range(0, len(days), DAYS_PER_RUN):
            run = days[i : i + DAYS_PER_RUN]
            say(0.45 + 0.3 * i / len(days), f"decision contexts {run[0]}..{run[-1]}")
            quotes = scan_day_files(lake, "quotes", run[0], run[-1], QUOTE_COLUMNS, m)
            trades = scan_day_files(
                lake, "trades", run[0] - dt.timedelta(days=features.PROFILE_LOOKBACK_DAYS), run[-1], TRADE_COLUMNS, m
            )
            chunk = probes.filter(pl.col("_day").is_in(run)).drop("_day")
            parts.append(features.compute(con, chunk, quotes, trades, "_ds_bars"))
        fx = pl.concat(parts, how="vertical_relaxed").sort("probe_id")
        say(0.75, "labels and quality")
        drows = _decision_rows(con, dec, fx.filter(pl.col("anchor") == "decision"))
        drows = drows.filter(pl.col("in_range")).drop("in_range").with_columns(pl.lit(v).alias("lake_version"))
        if cand.is_empty():
            return cand, drows
        order_fx = fx.filter(pl.col("anchor") == "order").drop("anchor", "probe_mid")
        dec_fx = fx.join(dec.select("probe_id", "decision_id"), on="probe_id").select(
            "decision_id",
            *(pl.col(c).alias(MARKET_PREFIX + c) for c in [*market_features(), "probe_ts", "quote_ts", "trade_ts",
                                                           "bar_day"]),
        )  # fmt: skip
        drop = [
            c
            for c in ("strategy", "urgency", "alpha_bps", "horizon_days", "planned_duration_s", "side_sign")
            if c in cand.columns
        ]
        cand = (
            cand.drop(drop)
            .with_columns(pl.col("row_id").cast(pl.Int64).alias("probe_id"))
            .join(order_fx, on="probe_id", how="left")
            .join(dec_fx, on="decision_id", how="left")
            .drop("probe_id", "row_id")
        )
        _temp_table(
            con, "_ds_cand", cand.select("order_id", "symbol", "side", "decision_price", "horizon_days", "dec_ts")
        )
        realized = query(con, _realized_sql("_ds_cand", "order_id")).drop("prev_close")
        cand = cand.join(realized, on="order_id", how="left").with_columns(pl.lit(v).alias("lake_version"))
        return cand, drows
    finally:
        con.close()


def market_features() -> list[str]:
    """Features read from market data and defined at a decision: the ``dec_`` columns of an order row."""
    return [
        f.name for f in features.REGISTRY.values() if f.source in features.MARKET_SOURCES and "decision" in f.anchors
    ]


def decision_feature_columns() -> list[str]:
    """Every registered feature defined at a decision: a decision row's feature columns."""
    return [f.name for f in features.features_for("decision")]


def decision_feature_catalog() -> list[dict]:
    return [{"column": f.name, "anchor": "decision", **f.describe()} for f in features.features_for("decision")]


def feature_columns() -> list[str]:
    """An order row's feature columns: every feature at arrival, then the market ones at its decision."""
    return [f.name for f in features.REGISTRY.values()] + [MARKET_PREFIX + c for c in market_features()]


def feature_catalog() -> list[dict]:
    """The dataset's feature columns with their definitions (``dec_`` = the same feature at the decision)."""
    out = [{"column": f.name, "anchor": "order arrival", **f.describe()} for f in features.REGISTRY.values()]
    out += [
        {"column": MARKET_PREFIX + f.name, "anchor": "decision", **f.describe()}
        for f in features.REGISTRY.values()
        if f.name in market_features()
    ]
    return out


# ---------------------------------------------------------------------------------------------------
# Hashes, storage
# ---------------------------------------------------------------------------------------------------
def schema_hash(df: pl.DataFrame) -> str:
    return hashlib.sha256(json.dumps([[c, str(d)] for c, d in df.schema.items()]).encode()).hexdigest()


def content_hash(df: pl.DataFrame) -> str:
    """SHA-256 of the schema and the rows' canonical CSV text (rows in key order): independent of write time
    and of the Parquet encoder."""
    h = hashlib.sha256(schema_hash(df).encode())
    h.update(df.write_csv(float_precision=None, datetime_format="%Y-%m-%dT%H:%M:%S%.6fZ").encode())
    return h.hexdigest()


def combined_hash(hashes: dict[str, str]) -> str:
    """The version's ``content_hash``: SHA-256 over each table's content hash, by table name (order rows
    ``data`` and decision rows ``decisions``), so a change in either table changes it."""
    return hashlib.sha256(json.dumps(sorted(hashes.items())).encode()).hexdigest()


def root(lake: Lake, name: str | None = None) -> Path:
    d = lake.root / DATASETS_DIR
    return d / name if name else d


def _check_name(name: str) -> str:
    if not name or not all(ch.isalnum() or ch in "-_." for ch in name) or name.startswith((".", "_")):
        raise DatasetError(f"dataset name {name!r}: use letters, digits, '-', '_' or '.'")
    return name


def versions(lake: Lake, name: str) -> list[int]:
    return version_dirs(root(lake, _check_name(name)))  # a typed name never reaches the file system unchecked


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@VERSION`` (``v3`` or ``3``); :class:`DatasetError` for anything else."""
    name, _, ver = ref.partition("@")
    if not ver:
        return _check_name(name), None
    if not ver.lstrip("v").isdigit():
        raise DatasetError(f"{ref!r}: the version after '@' must be a number (NAME@3 or NAME@v3)")
    return _check_name(name), int(ver.lstrip("v"))


def manifest(lake: Lake, ref: str) -> dict:
    name, v = parse_ref(ref)
    vs = versions(lake, name)
    if not vs:
        raise DatasetError(f"no dataset named {name!r}")
    v = vs[-1] if v is None else v
    p = root(lake, name) / f"v{v:04d}" / "manifest.json"
    if not p.exists():
        raise DatasetError(f"{name} has no version {v} (versions: {vs})")
    return json.loads(p.read_text())


def load(lake: Lake, ref: str, part: str = "data") -> pl.DataFrame:
    """A version's rows (``data``), excluded rows (``failures``) or model feedback (``feedback``)."""
    m = manifest(lake, ref)
    p = Path(m["location"]) / f"{part}.parquet"
    return pl.read_parquet(p) if p.exists() else pl.DataFrame()


def list_datasets(lake: Lake) -> list[dict]:
    """Every version of every dataset: name, version, rows, quality, lake version, content hash, built."""
    out = []
    d = root(lake)
    for nd in sorted(d.iterdir()) if d.exists() else []:
        if not nd.is_dir() or nd.name.startswith((".", "_")):
            continue
        for v in versions(lake, nd.name):
            m = manifest(lake, f"{nd.name}@{v}")
            out.append(
                {k: m.get(k) for k in ("name", "version", "rows", "quality_pct", "lake_version", "start", "end")}
                | {
                    "decision_rows": (m.get("decisions") or {}).get("rows"),
                    "decision_quality_pct": (m.get("decisions") or {}).get("quality_pct"),
                    "content_hash": m["content_hash"][:12],
                    "built": m.get("built"),
                    "code_version": m["code_version"],
                }
            )
    return out


def event(m: dict) -> dict:
    """The TrainingDatasetEvent of a manifest: the EVENTS.md keys, then ``decisions`` (rows, label counts, quality
    and hashes of the decision rows; null for a version built before decision rows existed)."""
    d = m.get("decisions")
    return {k: m[k] for k in EVENT_KEYS if k != "decisions"} | {
        "decisions": {k: d.get(k) for k in DECISION_EVENT_KEYS} if d else None
    }


# ---------------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------------
def build(
    lake: Lake,
    name: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    estimator: labels.CostEstimator | None = None,
    faults_dir: str | Path | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> dict:
    """Build dataset ``name`` from the lake's current version for orders arriving (and decisions stamped)
    ``start..end`` (inclusive UTC dates; None = all) and return its TrainingDatasetEvent. ``estimator``: the
    pre-trade cost model for the execution label and for decisions without an order (default: the square-root
    law fitted walk-forward on the dataset's passing order rows: a row of day D from the orders before D). ``faults_dir``: a simulator output folder whose
    ``_faults.jsonl`` the row rules are scored against (default: the lake's own simulator faults when it keeps
    them, as the demo lake does, else a small reference simulation). Reuses the latest version (returns its
    event, writes nothing) when the content hash, lake version and code version are unchanged."""
    _check_name(name)
    say = progress or (lambda f, m: None)
    say(0.0, "reading the lake")
    sweep_temp(root(lake))  # what a killed build left (.tmp-* folders older than this process)
    v = lake.version()  # the one snapshot everything below reads (an ingest meanwhile does not mix in)
    if v == 0:
        raise DatasetError(f"the lake {lake.root} is empty")
    input_key = lake.content_key(lake.manifest(v))
    cand, dcand = all_candidates(lake, start, end, progress=say, version=v)
    if cand.is_empty():
        raise DatasetError(f"no orders arrived in {start or 'the beginning'}..{end or 'now'}")
    ok, bad, report = dataquality.apply(cand)
    est = estimator or labels.WalkForwardEstimator(ok)
    ok = labels.decision_labels(labels.execution_labels(ok, est))
    bad = labels.decision_labels(labels.execution_labels(bad, est))
    cols = [*ORDER_COLUMNS, "model_id", *feature_columns(), *OUTCOME_COLUMNS, "realized_return_bps", "horizon_day",
            "expected_cost_bps", "expected_cost_sd_bps", "execution_z", "execution_label", "decision_net_bps",
            "decision_z", "decision_label", *LINEAGE_COLUMNS]  # fmt: skip
    data = ok.select(cols).sort("arrival_ts", "order_id")
    failures = bad.select("reasons", *cols).sort("arrival_ts", "order_id")
    decisions, dfailures, dreport = decision_table(dcand, cand, bad, est)
    say(0.85, "scoring the quality rules against simulator faults")
    faults = (
        dataquality.fault_scores(faults_dir)
        if faults_dir
        else dataquality.lake_fault_scores(lake.root) or dataquality.reference_scores(root(lake) / "_cache")
    )
    fb = model_feedback(data)
    ohash, shash = content_hash(data), schema_hash(data)
    dhash = content_hash(decisions)
    chash = combined_hash({"data": ohash, "decisions": dhash})
    name_versions = versions(lake, name)
    if name_versions:
        last = manifest(lake, f"{name}@{name_versions[-1]}")
        # the same lake files (by fingerprint; a version built before it was recorded: the same version number)
        same_inputs = last["input_key"] == input_key if "input_key" in last else last["lake_version"] == v
        if last["content_hash"] == chash and same_inputs and last["code_version"] == CODE_VERSION:
            say(1.0, f"{name}@{last['version']} unchanged (same content hash)")
            return event(last)
    label_def = labels.LabelDefinition().describe(est)
    start_s = str(start) if start else str(data["arrival_ts"].min().date())
    end_s = str(end) if end else str(data["arrival_ts"].max().date())
    dsummary = {
        "file": "decisions.parquet",
        "failures_file": "decision_failures.parquet",
        "rows": decisions.height,
        "label_counts": labels.distribution(decisions["decision_label"]),
        "cost_source_counts": {
            k: int(n) for k, n in decisions["cost_source"].value_counts().sort("cost_source").iter_rows() if k
        },
        "with_order": int((decisions["orders"] > 0).sum()),
        "quality_pct": dreport["quality_pct"],
        "excluded_by_rule": dreport["excluded_by_rule"],
        "content_hash": dhash,
        "schema_hash": schema_hash(decisions),
        "quality": dreport,
        "features": decision_feature_catalog(),
        "schema": [[c, str(d)] for c, d in decisions.schema.items()],
        "key": "decision_id",
        "definition": "one row per trading decision stamped in start..end (its first event), whether or not it led "
        "to an order: its point-in-time market context at its timestamp, its own fields, the orders it led to and "
        "its decision outcome (label_definition.decision_rows)",
    }
    man = {
        "name": name,
        "version": None,
        "rows": data.height,
        "label_counts": labels.distribution(data["execution_label"]),
        "decision_label_counts": labels.distribution(data["decision_label"]),
        "quality_pct": report["quality_pct"],
        "excluded_by_rule": report["excluded_by_rule"],
        "content_hash": chash,
        "schema_hash": shash,
        "lake_version": v,
        "source_version": f"lake@{v}",
        "input_key": input_key,  # fingerprint of every lake file of that version (Lake.content_key)
        "lake_root": str(lake.root),
        "code_version": CODE_VERSION,
        "location": None,
        "features": feature_catalog(),
        "label_definition": label_def,
        "quality": report | {"fault_detection": {k: faults[k] for k in faults if k != "false_positives"}},
        "schema": [[c, str(d)] for c, d in data.schema.items()],
        "order_rows_content_hash": ohash,
        "decisions": dsummary,
        "start": start_s,
        "end": end_s,
        "feedback_events": feedback_events(fb, name),
        "built": dt.datetime.now(dt.UTC).isoformat(),
    }
    say(0.95, "writing")
    try:
        ver = publish_version_dir(
            root(lake, name),
            {
                "data.parquet": lambda p: data.write_parquet(p, compression="zstd", statistics=True),
                "failures.parquet": lambda p: failures.write_parquet(p, compression="zstd"),
                "decisions.parquet": lambda p: decisions.write_parquet(p, compression="zstd", statistics=True),
                "decision_failures.parquet": lambda p: dfailures.write_parquet(p, compression="zstd"),
                "feedback.parquet": lambda p: fb.write_parquet(p),
            },
            man,
        )
    except OSError as e:
        raise DatasetError(str(e)) from e
    say(1.0, f"{name}@{ver}: {data.height} order rows, {decisions.height} decision rows, "
             f"quality {report['quality_pct']:.2f}% / {dreport['quality_pct']:.2f}%")  # fmt: skip
    return event(manifest(lake, f"{name}@{ver}"))


def decision_columns() -> list[str]:
    """A decision row's columns, in order."""
    return [*DECISION_COLUMNS, *decision_feature_columns(), *DECISION_LINK_COLUMNS, *DECISION_OUTCOME_COLUMNS,
            *DECISION_LINEAGE_COLUMNS]  # fmt: skip


def decision_table(
    dcand: pl.DataFrame, orders: pl.DataFrame, failed_orders: pl.DataFrame, estimator: labels.CostEstimator
) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """(passing decision rows, failing ones with ``reasons``, quality report) from the decision candidates, the
    order candidates (their realized IS is the executed decisions' cost) and the order rows that failed a rule.

    ``realized_cost_bps``: the IS of the decision's orders in the dataset with the unfilled shares valued at the
    horizon close (labels.horizon_is_bps; TCA's IS at the cancel mid while the horizon is pending), weighted by
    paper notional Pd * Q (bps, positive = cost); ``executed_qty``: their filled quantity; then
    labels.decision_outcomes."""
    w = pl.col("decision_price") * pl.col("order_qty")
    order_cost = pl.coalesce(labels.horizon_is_bps(), pl.col("is_total_bps"))
    cost = (
        orders.filter(pl.col("decision_id").is_not_null() & pl.col("is_total_bps").is_finite())
        .group_by("decision_id")
        .agg(
            ((order_cost * w).sum() / w.sum()).alias("realized_cost_bps"),
            pl.col("filled_qty").sum().alias("executed_qty"),
        )
    )
    failed = failed_orders.filter(pl.col("decision_id").is_not_null()).select("decision_id").unique()
    d = (
        dcand.join(cost, on="decision_id", how="left")
        .join(failed.with_columns(pl.lit(True).alias("order_failed")), on="decision_id", how="left")
        .with_columns(pl.col("order_failed").fill_null(False))
    )
    ok, bad, report = dataquality.apply(d, key="decision_id", table="decisions")
    cols = decision_columns()
    ok = labels.decision_outcomes(ok, estimator).select(cols).sort("decision_ts", "decision_id")
    bad = labels.decision_outcomes(bad, estimator).select("reasons", *cols).sort("decision_ts", "decision_id")
    return ok, bad, report


# ---------------------------------------------------------------------------------------------------
# Diff
# ---------------------------------------------------------------------------------------------------
def _row_diff(a: pl.DataFrame, b: pl.DataFrame, key: str, label: str) -> dict:
    """Rows added/removed/changed between two versions of a table (by ``key`` and a hash of the common
    columns), and rows whose ``label`` changed."""
    if a.is_empty() or b.is_empty() or key not in a.columns or key not in b.columns:
        return {"rows_added": b.height, "rows_removed": a.height, "rows_changed": 0, "labels_changed": 0}
    common = [c for c in a.columns if c in b.columns]
    ha = a.select(key, a.select(common).hash_rows(seed=0).alias("h_a"), pl.col(label).alias("l_a"))
    hb = b.select(key, b.select(common).hash_rows(seed=0).alias("h_b"), pl.col(label).alias("l_b"))
    j = ha.join(hb, on=key, how="full", coalesce=True)
    return {
        "rows_added": int(j["h_a"].is_null().sum()),
        "rows_removed": int(j["h_b"].is_null().sum()),
        "rows_changed": int((j["h_a"].is_not_null() & j["h_b"].is_not_null() & (j["h_a"] != j["h_b"])).sum()),
        "labels_changed": int((j["l_a"].is_not_null() & j["l_b"].is_not_null() & (j["l_a"] != j["l_b"])).sum()),
    }


def diff(lake: Lake, ref_a: str, ref_b: str) -> dict:
    """What changed from version A to B: lineage and definitions (lake and code versions, schema, features,
    label definition), order rows added/removed/changed (by order_id and a per-row hash), execution labels that
    changed, the label distributions side by side; and under ``decisions`` the same for the decision rows (by
    decision_id, decision labels)."""
    ma, mb = manifest(lake, ref_a), manifest(lake, ref_b)
    a, b = load(lake, ref_a), load(lake, ref_b)
    fa, fb_ = {f["column"] for f in ma["features"]}, {f["column"] for f in mb["features"]}
    da, db = ma.get("decisions") or {}, mb.get("decisions") or {}
    return {
        "a": f"{ma['name']}@{ma['version']}",
        "b": f"{mb['name']}@{mb['version']}",
        "same_content": ma["content_hash"] == mb["content_hash"],
        "lake_version": [ma["lake_version"], mb["lake_version"]],
        "code_version": [ma["code_version"], mb["code_version"]],
        "schema_changed": ma["schema_hash"] != mb["schema_hash"],
        "columns_added": sorted(set(b.columns) - set(a.columns)),
        "columns_removed": sorted(set(a.columns) - set(b.columns)),
        "features_added": sorted(fb_ - fa),
        "features_removed": sorted(fa - fb_),
        "label_definition_changed": ma["label_definition"] != mb["label_definition"],
        "rows": [ma["rows"], mb["rows"]],
        **_row_diff(a, b, "order_id", "execution_label"),
        "label_counts": {"a": ma["label_counts"], "b": mb["label_counts"]},
        "quality_pct": [ma["quality_pct"], mb["quality_pct"]],
        "decisions": {
            "same_content": bool(da) and da.get("content_hash") == db.get("content_hash"),
            "schema_changed": da.get("schema_hash") != db.get("schema_hash"),
            "rows": [da.get("rows"), db.get("rows")],
            **_row_diff(
                load(lake, ref_a, "decisions"), load(lake, ref_b, "decisions"), "decision_id", "decision_label"
            ),
            "label_counts": {"a": da.get("label_counts"), "b": db.get("label_counts")},
            "quality_pct": [da.get("quality_pct"), db.get("quality_pct")],
        },
    }


# ---------------------------------------------------------------------------------------------------
# Model feedback
# ---------------------------------------------------------------------------------------------------
def model_feedback(rows: pl.DataFrame, period: str = "1mo") -> pl.DataFrame:
    """Per decision model (``model_id``) and period of the decision's date (calendar month by default): how
    the decisions' expected alpha compared with what happened over their horizon.

    - ``expected_alpha_bps``: mean alpha_bps; ``realized_return_bps``: mean side-signed return over the horizon
      (gross of execution); ``realized_net_bps``: the same net of IS.
    - ``hit_rate``: share of decisions whose realized return has the alpha's sign.
    - ``ic``: Spearman rank correlation of alpha_bps with the realized return (Grinold & Kahn's information
      coefficient); null under 3 matured decisions.
    - ``calibration_slope``: OLS slope of realized on expected alpha (1 = calibrated; < 1 = overconfident),
      ``calibration_ratio``: mean realized / mean expected.
    Decisions whose horizon has not elapsed count in ``pending`` only."""
    schema = {"model_id": pl.String, "period": pl.Date}
    if rows.is_empty() or "model_id" not in rows.columns:
        return pl.DataFrame(schema=schema)
    d = rows.filter(pl.col("model_id").is_not_null()).with_columns(
        pl.col("decision_ts").dt.truncate(period).dt.date().alias("period")
    )
    m = d.filter(pl.col("realized_return_bps").is_not_null())
    x, y = pl.col("alpha_bps"), pl.col("realized_return_bps")
    cov = ((x - x.mean()) * (y - y.mean())).sum()
    var = ((x - x.mean()) ** 2).sum()
    agg = m.group_by("model_id", "period").agg(
        pl.len().alias("decisions"),
        x.mean().alias("expected_alpha_bps"),
        y.mean().alias("realized_return_bps"),
        pl.col("decision_net_bps").mean().alias("realized_net_bps"),
        ((y.sign() == x.sign()).mean()).alias("hit_rate"),
        pl.when(pl.len() >= 3).then(pl.corr(x, y, method="spearman")).alias("ic"),
        pl.when(var > 0).then(cov / var).alias("calibration_slope"),
        (y.mean() / x.mean()).alias("calibration_ratio"),
        ((y - x) ** 2).mean().sqrt().alias("rmse_bps"),
    )
    pend = d.group_by("model_id", "period").agg(
        pl.col("realized_return_bps").is_null().sum().alias("pending"), pl.col("decision_ts").max().alias("last_ts")
    )
    return (
        pend.join(agg, on=["model_id", "period"], how="left")
        .with_columns(pl.col("decisions").fill_null(0))
        .sort("model_id", "period")
    )


def feedback_events(fb: pl.DataFrame, dataset: str) -> list[dict]:
    """ModelPerformanceFeedbackEvent per model and period (EVENTS.md: model name and version, period, error
    metrics against realized outcomes). ``model_id`` ``mom-v3`` -> name ``mom``, version ``v3``."""
    if fb.is_empty():
        return []
    ev = fb.with_columns(
        pl.lit("ModelPerformanceFeedbackEvent").alias("event_type"),
        pl.col("model_id").str.replace(r"-v\d+$", "").alias("model_name"),
        pl.col("model_id").str.extract(r"-(v\d+)$").alias("model_version"),
        pl.col("period").cast(pl.String).alias("period"),
        pl.lit(dataset).alias("dataset"),
    ).with_columns(pl.concat_str("model_id", pl.lit("@"), "period").alias("event_id"))
    return ev.drop("last_ts").to_dicts()


# ---------------------------------------------------------------------------------------------------
# Summaries for the page
# ---------------------------------------------------------------------------------------------------
TABLES = {"orders": "Order rows", "decisions": "Decision rows"}


def table_view(m: dict, table: str = "orders") -> dict | None:
    """What one table of a version shows: ``orders`` (one row per parent order: data.parquet) or ``decisions``
    (one row per decision: decisions.parquet; None for a version built before decision rows existed). Keys:
    part, failures (file stems), key, rows, quality (report), labels (outcome -> label counts), features, z (the
    label's standardized residual), columns (feature columns), schema, table_content_hash, table_schema_hash."""
    if table == "decisions":
        d = m.get("decisions")
        return d and {
            "part": "decisions", "failures": "decision_failures", "key": "decision_id", "rows": d["rows"],
            "quality": d["quality"], "labels": {"decision": d["label_counts"]}, "features": d["features"],
            "z": "decision_z", "columns": decision_feature_columns(), "schema": d["schema"],
            "table_content_hash": d["content_hash"], "table_schema_hash": d["schema_hash"],
        }  # fmt: skip
    return {
        "part": "data", "failures": "failures", "key": "order_id", "rows": m["rows"], "quality": m["quality"],
        "labels": {"execution": m["label_counts"], "decision": m["decision_label_counts"]}, "features": m["features"],
        "z": "execution_z", "columns": feature_columns(), "schema": m["schema"],
        "table_content_hash": m.get("order_rows_content_hash", m["content_hash"]), "table_schema_hash": m["schema_hash"],
    }  # fmt: skip


def numeric_features(df: pl.DataFrame, columns: list[str] | None = None) -> list[str]:
    """The numeric feature columns of ``df`` (among ``columns``, default an order row's features)."""
    return [c for c in (columns or feature_columns()) if c in df.columns and df.schema[c].is_numeric()]


def feature_summary(df: pl.DataFrame, columns: list[str] | None = None) -> pl.DataFrame:
    """Per numeric feature: non-null rows, mean, stdev, 1st/50th/99th percentiles."""
    cols = numeric_features(df, columns)
    if not cols or df.is_empty():
        return pl.DataFrame(schema={"feature": pl.String})
    return pl.concat(
        [
            df.select(
                pl.lit(c).alias("feature"),
                pl.col(c).count().alias("rows"),
                pl.col(c).mean().alias("mean"),
                pl.col(c).std().alias("std"),
                pl.col(c).quantile(0.01).alias("p01"),
                pl.col(c).median().alias("p50"),
                pl.col(c).quantile(0.99).alias("p99"),
            ).cast({"mean": pl.Float64, "std": pl.Float64, "p01": pl.Float64, "p50": pl.Float64, "p99": pl.Float64})
            for c in cols
        ]
    )


def correlations(df: pl.DataFrame, cols: list[str] | None = None) -> pl.DataFrame:
    """Pearson correlation of every pair of numeric features (and the execution z), long form (a, b, corr)."""
    cols = [c for c in (cols or [*numeric_features(df), "execution_z"]) if c in df.columns]
    if df.height < 3 or not cols:
        return pl.DataFrame(schema={"a": pl.String, "b": pl.String, "corr": pl.Float64})
    wide = df.select(pl.corr(pl.col(a), pl.col(b)).alias(f"{a}\t{b}") for a in cols for b in cols)
    return (
        wide.unpivot(variable_name="pair", value_name="corr")
        .with_columns(pl.col("pair").str.split_exact("\t", 1).struct.rename_fields(["a", "b"]))
        .unnest("pair")
    )
