"""Versioned, reproducible training datasets under the lake, and model feedback from their outcomes.

A dataset row is one parent order: its point-in-time features at arrival (features.py) and at its decision
(``dec_``-prefixed market features), its realized outcome (TCA's IS and friends, tca.py), its two labels
(labels.py) and lineage. Candidate rows failing a quality rule (dataquality.py) are excluded and kept, with
their reasons, beside the data.

Layout (under the lake root; written here with atomic renames, see the note in :func:`_publish`)::

    datasets/<name>/v0001/data.parquet       the published rows (sorted by arrival_ts, order_id)
    datasets/<name>/v0001/failures.parquet   the excluded candidate rows with ``reasons``
    datasets/<name>/v0001/feedback.parquet   ModelPerformanceFeedbackEvent rows (per model and month)
    datasets/<name>/v0001/manifest.json      lineage, definitions, quality, hashes

Reproducible: the rows depend only on the lake version and the code version; ``content_hash`` is the SHA-256
of the rows' canonical CSV text and their schema (no write time in it). Building again from the same lake
version and code gives the same hash, and no new version is written (the existing one is returned).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import polars as pl

from analytics import dataquality, features, labels, tca
from analytics.conventions import BPS
from analytics.filters import Filters
from analytics.store import Lake, query

CODE_VERSION = f"datasets-1+{features.CODE_VERSION}+{labels.CODE_VERSION}+{dataquality.CODE_VERSION}+{tca.CODE_VERSION}"
DATASETS_DIR = "datasets"
EVENT_KEYS = (
    "name", "version", "rows", "label_counts", "quality_pct", "excluded_by_rule", "content_hash", "schema_hash",
    "lake_version", "code_version", "location", "features", "label_definition",
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
    and per order the fills whose symbol or side contradicts it."""
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
    LEFT JOIN (SELECT decision_id, any_value(ts) AS decision_ts, any_value(symbol) AS symbol, any_value(side) AS side,
                      any_value(quantity) AS quantity, any_value(alpha_bps) AS alpha_bps,
                      any_value(horizon_days) AS horizon_days, any_value(model_id) AS model_id,
                      any_value(strategy) AS strategy, any_value(urgency) AS urgency
               FROM decisions WHERE decision_id IN (SELECT decision_id FROM _ds_tca) GROUP BY 1) d
           ON d.decision_id = t.decision_id
    LEFT JOIN (SELECT f.order_id, count(*) AS bad FROM fills f JOIN _ds_tca o USING (order_id)
               WHERE f.symbol <> o.symbol OR f.side <> o.side GROUP BY 1) fm USING (order_id)"""


def _realized_sql() -> str:
    """Decision's realized return: close of the daily bar ``horizon_days`` bars after the decision's day (the
    decision day's own bar is bar 0), side-signed against the decision price, bps. Null until that bar exists."""
    return f"""
    WITH b AS (SELECT symbol, ts::DATE AS day, close,
                      row_number() OVER (PARTITION BY symbol ORDER BY ts) AS k
               FROM bars WHERE "interval" = '1d' AND symbol IN (SELECT symbol FROM _ds_cand)),
    d AS (SELECT c.order_id, c.symbol, c.side, c.decision_price, c.horizon_days, c.dec_ts::DATE AS dday FROM _ds_cand c
          WHERE c.dec_ts IS NOT NULL AND c.horizon_days IS NOT NULL),
    d0 AS (SELECT d.*, b.k AS k0 FROM d ASOF LEFT JOIN b ON d.symbol = b.symbol AND b.day >= d.dday)
    SELECT d0.order_id, bh.day AS horizon_day, bh.close AS horizon_close,
           CASE d0.side WHEN 'BUY' THEN 1 ELSE -1 END * (bh.close - d0.decision_price) / d0.decision_price * {BPS}
             AS realized_return_bps
    FROM d0 LEFT JOIN b bh ON bh.symbol = d0.symbol AND bh.k = d0.k0 + CAST(round(d0.horizon_days) AS BIGINT)"""


def _ticks(lake: Lake, m, table: str, lo: dt.date, hi: dt.date) -> pl.LazyFrame:
    """Quotes or trades of ``lo..hi`` straight from the snapshot's date-pruned Parquet files (as tca.py reads
    quotes), half-open on timestamps."""
    from analytics.store import table_schema

    files = [str(p) for p in lake.files(table, lo, hi, m)]
    cols = {
        c: d
        for c, d in table_schema(table).items()
        if c in ("symbol", "ts", "bid", "ask", "bid_size", "ask_size", "price", "size")
    }
    if not files:
        return pl.LazyFrame(schema=cols)
    start = dt.datetime.combine(lo, dt.time(), dt.UTC)
    end = dt.datetime.combine(hi + dt.timedelta(days=1), dt.time(), dt.UTC)
    return pl.scan_parquet(files).select(list(cols)).filter((pl.col("ts") >= start) & (pl.col("ts") < end))


def candidates(lake: Lake, start: dt.date | None = None, end: dt.date | None = None, progress=None) -> pl.DataFrame:
    """Every parent order that arrived in ``start..end`` with features, outcomes and quality inputs (before
    the quality rules and labels). Computes and stores the TCA of missing days first."""
    say = progress or (lambda f, m: None)
    v = tca.ensure(lake, start, end, progress=lambda f, m: say(0.05 + 0.35 * f, m))
    m = lake.manifest(v)
    con = lake.connect(m)
    try:
        orders = tca.load_orders(lake, con, Filters(start=start, end=end), v)
        if orders.is_empty():
            return pl.DataFrame()
        say(0.45, "decision contexts")
        con.register("_ds_tca_in", orders.select(*ORDER_COLUMNS, *OUTCOME_COLUMNS, "strategy", "urgency").to_arrow())
        con.execute("CREATE OR REPLACE TEMP TABLE _ds_tca AS SELECT * FROM _ds_tca_in")
        con.unregister("_ds_tca_in")
        ent = query(con, _entity_sql())
        cand = orders.select(*ORDER_COLUMNS, *OUTCOME_COLUMNS, "strategy", "urgency").join(
            ent, on="order_id", how="left"
        )
        cand = cand.with_columns(
            pl.coalesce("strategy", "decision_strategy").alias("strategy"),
            pl.coalesce("urgency", "urgency_any").alias("urgency"),
            (pl.col("planned_us") / 1e6).alias("planned_duration_s"),
            pl.when(pl.col("side") == "BUY").then(1).otherwise(-1).alias("side_sign"),
        ).drop("decision_strategy", "urgency_any", "planned_us")
        cand = cand.sort("arrival_ts", "order_id").with_row_index("row_id")
        probes = pl.concat(
            [
                cand.select(
                    (pl.col("row_id").cast(pl.Int64) * 2).alias("probe_id"), pl.lit("order").alias("anchor"), "symbol",
                    pl.col("arrival_ts").alias("ts"), pl.col("order_qty").alias("quantity"), "side_sign", "urgency",
                    "strategy", "alpha_bps", "horizon_days", "planned_duration_s", pl.col("dec_ts").alias("decision_ts"),
                ),
                cand.filter(pl.col("dec_ts").is_not_null()).select(
                    (pl.col("row_id").cast(pl.Int64) * 2 + 1).alias("probe_id"), pl.lit("decision").alias("anchor"),
                    "symbol", pl.col("dec_ts").alias("ts"), pl.coalesce("decision_qty", "order_qty").alias("quantity"),
                    "side_sign", "urgency", "strategy", "alpha_bps", "horizon_days", "planned_duration_s",
                    pl.col("dec_ts").alias("decision_ts"),
                ),
            ],
            how="vertical_relaxed",
        )  # fmt: skip
        lo = min(cand["arrival_ts"].min(), cand["dec_ts"].min() or cand["arrival_ts"].min()).date()
        hi = cand["arrival_ts"].max().date()
        lake.scan(con, "bars", lo - dt.timedelta(days=3 * features.ADV_WINDOW_DAYS), hi).create_view("_ds_bars")
        # A few probe days at a time: memory stays bounded by DAYS_PER_RUN days of ticks, whatever the range.
        probes = probes.with_columns(pl.col("ts").dt.date().alias("_day"))
        days = probes["_day"].unique().sort().to_list()
        parts = []
        for i in range(0, len(days), DAYS_PER_RUN):
            run = days[i : i + DAYS_PER_RUN]
            say(0.45 + 0.3 * i / len(days), f"decision contexts {run[0]}..{run[-1]}")
            quotes = _ticks(lake, m, "quotes", run[0], run[-1])
            trades = _ticks(lake, m, "trades", run[0] - dt.timedelta(days=features.PROFILE_LOOKBACK_DAYS), run[-1])
            chunk = probes.filter(pl.col("_day").is_in(run)).drop("_day")
            parts.append(features.compute(con, chunk, quotes, trades, "_ds_bars"))
        fx = pl.concat(parts, how="vertical_relaxed").sort("probe_id")
        say(0.75, "labels and quality")
        order_fx = fx.filter(pl.col("anchor") == "order").drop("anchor")
        market = [
            f.name
            for f in features.REGISTRY.values()
            if f.source in features.MARKET_SOURCES and "decision" in f.anchors
        ]
        dec_fx = fx.filter(pl.col("anchor") == "decision").select(
            (pl.col("probe_id") - 1).alias("probe_id"),
            *(pl.col(c).alias(MARKET_PREFIX + c) for c in [*market, "probe_ts", "quote_ts", "trade_ts", "bar_day"]),
        )
        drop = [
            c
            for c in ("strategy", "urgency", "alpha_bps", "horizon_days", "planned_duration_s", "side_sign")
            if c in cand.columns
        ]
        cand = (
            cand.drop(drop)
            .with_columns((pl.col("row_id").cast(pl.Int64) * 2).alias("probe_id"))
            .join(order_fx, on="probe_id", how="left")
            .join(dec_fx, on="probe_id", how="left")
            .drop("probe_id", "row_id")
        )
        con.register(
            "_ds_cand_in",
            cand.select("order_id", "symbol", "side", "decision_price", "horizon_days", "dec_ts").to_arrow(),
        )
        con.execute("CREATE OR REPLACE TEMP TABLE _ds_cand AS SELECT * FROM _ds_cand_in")
        con.unregister("_ds_cand_in")
        realized = query(con, _realized_sql())
        return cand.join(realized, on="order_id", how="left").with_columns(pl.lit(v).alias("lake_version"))
    finally:
        con.close()


def feature_columns() -> list[str]:
    out = [f.name for f in features.REGISTRY.values()]
    out += [
        MARKET_PREFIX + f.name
        for f in features.REGISTRY.values()
        if f.source in features.MARKET_SOURCES and "decision" in f.anchors
    ]
    return out


def feature_catalog() -> list[dict]:
    """The dataset's feature columns with their definitions (``dec_`` = the same feature at the decision)."""
    out = [{"column": f.name, "anchor": "order arrival", **f.describe()} for f in features.REGISTRY.values()]
    out += [
        {"column": MARKET_PREFIX + f.name, "anchor": "decision", **f.describe()}
        for f in features.REGISTRY.values()
        if f.source in features.MARKET_SOURCES and "decision" in f.anchors
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


def root(lake: Lake, name: str | None = None) -> Path:
    d = lake.root / DATASETS_DIR
    return d / name if name else d


def _check_name(name: str) -> str:
    if not name or not all(ch.isalnum() or ch in "-_." for ch in name) or name.startswith((".", "_")):
        raise DatasetError(f"dataset name {name!r}: use letters, digits, '-', '_' or '.'")
    return name


def versions(lake: Lake, name: str) -> list[int]:
    d = root(lake, _check_name(name))  # a typed name never reaches the file system unchecked
    return (
        sorted(int(p.name[1:]) for p in d.glob("v[0-9]*") if p.is_dir() and (p / "manifest.json").exists())
        if d.exists()
        else []
    )


def _publish(lake: Lake, name: str, files: dict[str, Callable[[Path], None]], manifest: dict) -> int:
    """Write a new version atomically: everything goes to a hidden temp folder, then one rename makes it
    visible (a crash leaves only a temp folder that readers ignore). Two concurrent builders race on the
    rename; the loser takes the next number. (Belongs in store.py as ``Lake.publish_dir`` once shared.)"""
    base = root(lake, name)
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        for fname, write in files.items():
            write(tmp / fname)
        for _ in range(100):
            v = (versions(lake, name) or [0])[-1] + 1
            manifest["version"] = v
            manifest["location"] = str(base / f"v{v:04d}")
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))
            try:
                os.rename(tmp, base / f"v{v:04d}")
                return v
            except OSError:
                continue
        raise DatasetError("could not claim a version number")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@VERSION`` (``v3`` or ``3``)."""
    name, _, ver = ref.partition("@")
    return name, (int(ver.lstrip("v")) if ver else None)


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
                | {"content_hash": m["content_hash"][:12], "built": m.get("built"), "code_version": m["code_version"]}
            )
    return out


def event(m: dict) -> dict:
    """The TrainingDatasetEvent of a manifest (EVENTS.md keys, nothing else)."""
    return {k: m[k] for k in EVENT_KEYS}


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
    """Build dataset ``name`` from the lake's current version for orders arriving ``start..end`` (inclusive UTC
    dates; None = all) and return its TrainingDatasetEvent. ``estimator``: the pre-trade cost model for the
    execution label (default: the square-root law fitted on the dataset's passing rows). ``faults_dir``: a
    simulator output folder whose ``_faults.jsonl`` the row rules are scored against (default: a small
    reference simulation). Reuses the latest version (returns its event, writes nothing) when the content hash,
    lake version and code version are unchanged."""
    _check_name(name)
    say = progress or (lambda f, m: None)
    say(0.0, "reading the lake")
    v = lake.version()
    if v == 0:
        raise DatasetError(f"the lake {lake.root} is empty")
    cand = candidates(lake, start, end, progress=say)
    if cand.is_empty():
        raise DatasetError(f"no orders arrived in {start or 'the beginning'}..{end or 'now'}")
    ok, bad, report = dataquality.apply(cand)
    est = estimator or labels.SquareRootEstimator.fit(ok)
    ok = labels.decision_labels(labels.execution_labels(ok, est))
    bad = labels.decision_labels(labels.execution_labels(bad, est))
    cols = [*ORDER_COLUMNS, "model_id", *feature_columns(), *OUTCOME_COLUMNS, "realized_return_bps", "horizon_day",
            "expected_cost_bps", "expected_cost_sd_bps", "execution_z", "execution_label", "decision_net_bps",
            "decision_z", "decision_label", *LINEAGE_COLUMNS]  # fmt: skip
    data = ok.select(cols).sort("arrival_ts", "order_id")
    failures = bad.select("reasons", *cols).sort("arrival_ts", "order_id")
    say(0.85, "scoring the quality rules against simulator faults")
    faults = dataquality.fault_scores(faults_dir) if faults_dir else dataquality.reference_scores(root(lake) / "_cache")
    fb = model_feedback(data)
    chash, shash = content_hash(data), schema_hash(data)
    name_versions = versions(lake, name)
    if name_versions:
        last = manifest(lake, f"{name}@{name_versions[-1]}")
        if last["content_hash"] == chash and last["lake_version"] == v and last["code_version"] == CODE_VERSION:
            say(1.0, f"{name}@{last['version']} unchanged (same content hash)")
            return event(last)
    label_def = labels.LabelDefinition().describe(est)
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
        "lake_root": str(lake.root),
        "code_version": CODE_VERSION,
        "location": None,
        "features": feature_catalog(),
        "label_definition": label_def,
        "quality": report | {"fault_detection": {k: faults[k] for k in faults if k != "false_positives"}},
        "schema": [[c, str(d)] for c, d in data.schema.items()],
        "start": str(start) if start else str(data["arrival_ts"].min().date()),
        "end": str(end) if end else str(data["arrival_ts"].max().date()),
        "feedback_events": feedback_events(fb, name),
        "built": dt.datetime.now(dt.UTC).isoformat(),
    }
    say(0.95, "writing")
    ver = _publish(
        lake,
        name,
        {
            "data.parquet": lambda p: data.write_parquet(p, compression="zstd", statistics=True),
            "failures.parquet": lambda p: failures.write_parquet(p, compression="zstd"),
            "feedback.parquet": lambda p: fb.write_parquet(p),
        },
        man,
    )
    say(1.0, f"{name}@{ver}: {data.height} rows, quality {report['quality_pct']:.2f}%")
    return event(manifest(lake, f"{name}@{ver}"))


# ---------------------------------------------------------------------------------------------------
# Diff
# ---------------------------------------------------------------------------------------------------
def diff(lake: Lake, ref_a: str, ref_b: str) -> dict:
    """What changed from version A to B: lineage and definitions (lake and code versions, schema, features,
    label definition), rows added/removed/changed (by order_id and a per-row hash), labels that changed, and
    the label distributions side by side."""
    ma, mb = manifest(lake, ref_a), manifest(lake, ref_b)
    a, b = load(lake, ref_a), load(lake, ref_b)
    common = [c for c in a.columns if c in b.columns]
    ha = a.select("order_id", a.select(common).hash_rows(seed=0).alias("h_a"), pl.col("execution_label").alias("l_a"))
    hb = b.select("order_id", b.select(common).hash_rows(seed=0).alias("h_b"), pl.col("execution_label").alias("l_b"))
    j = ha.join(hb, on="order_id", how="full", coalesce=True)
    fa, fb_ = {f["column"] for f in ma["features"]}, {f["column"] for f in mb["features"]}
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
        "rows_added": int(j["h_a"].is_null().sum()),
        "rows_removed": int(j["h_b"].is_null().sum()),
        "rows_changed": int((j["h_a"].is_not_null() & j["h_b"].is_not_null() & (j["h_a"] != j["h_b"])).sum()),
        "labels_changed": int((j["l_a"].is_not_null() & j["l_b"].is_not_null() & (j["l_a"] != j["l_b"])).sum()),
        "label_counts": {"a": ma["label_counts"], "b": mb["label_counts"]},
        "quality_pct": [ma["quality_pct"], mb["quality_pct"]],
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
def numeric_features(df: pl.DataFrame) -> list[str]:
    return [c for c in feature_columns() if c in df.columns and df.schema[c].is_numeric()]


def feature_summary(df: pl.DataFrame) -> pl.DataFrame:
    """Per numeric feature: non-null rows, mean, stdev, 1st/50th/99th percentiles."""
    cols = numeric_features(df)
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
