"""Data quality for training datasets: documented rules, a per-dataset report, exclusion with the reason kept,
and the rules' precision/recall against the simulator's injected faults.

Three rule sets, one vocabulary (every rule has a name, a category and a one-line definition):

1. **Dataset rules** (:data:`DATASET_RULES`) run on the candidate rows of a dataset (one per parent order,
   with its TCA outcome, its point-in-time features and its decision). A row failing any rule is excluded from
   the published data and kept in the dataset's ``failures`` file with every rule it failed. The report gives
   per rule the rows failing it, and ``quality_pct`` = share of candidate rows passing every rule (0-100).
2. **Row rules** (:data:`ROW_RULES`) run on raw contract rows as a producer sent them (the simulator's files:
   JSON Lines events and Parquet market data), before any ingest: they find the rows a fault corrupted.
   :func:`fault_scores` compares what they flag with the simulator's ``_faults.jsonl`` (file, line) and
   returns precision = flagged and faulty / flagged, recall = flagged and faulty / faulty, per fault type too.
   The lake's ingest quarantines the same rows, so a dataset built from the lake never sees them; measuring
   the rules on the raw files is what shows they would catch them.
3. **Decision rules** (:data:`DECISION_RULES`) run on a dataset's decision rows (one per trading decision, with
   its point-in-time context and outcome) and report the same way (``quality_pct`` of the decision rows).

A lake built from simulator files keeps that run's fault record and the rules' flags (:func:`lake_fault_scores`),
so its datasets are scored against their own faults; other lakes report a reference simulation's scores.

Thresholds live in :class:`QualityConfig` (frozen, defaults here).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import polars as pl

from analytics.schema import TABLES

CODE_VERSION = "dq-2"  # dq-2: decision-row rules


@dataclass(frozen=True)
class QualityConfig:
    """stale_quote_s: the prevailing quote at t is older than this -> stale. outlier_mads: a realized cost
    further than this many robust standard deviations (1.4826 MAD) from the dataset's median is an outlier;
    max_abs_cost_bps: and anything beyond this is one whatever the spread of the data. price_jump: arrival
    price vs the previous daily close, relative move beyond this is a bad price. min_quality_pct: the product
    promise (a dataset below it is flagged, not hidden)."""

    stale_quote_s: float = 300.0
    outlier_mads: float = 12.0
    max_abs_cost_bps: float = 2_000.0
    price_jump: float = 0.25
    min_quality_pct: float = 95.0


CONFIG = QualityConfig()


@dataclass(frozen=True)
class Rule:
    name: str
    category: str  # completeness | validity | consistency | coverage | staleness | outlier | look-ahead
    definition: str


DATASET_RULES: tuple[Rule, ...] = (
    Rule("missing_outcome", "completeness", "no realized IS (is_total_bps null or not finite) or no arrival price"),
    Rule("missing_pretrade", "completeness", "daily volatility, ADV or the touch spread before arrival is missing"),
    Rule(
        "invalid_values",
        "validity",
        "order quantity <= 0, arrival price <= 0, a crossed touch (spread < 0), or a side other than BUY/SELL",
    ),
    Rule("overfill", "consistency", "filled quantity > order quantity"),
    Rule("fill_mismatch", "consistency", "a fill's symbol or side differs from its order's"),
    Rule(
        "decision_mismatch",
        "consistency",
        "the order names a decision the lake does not hold, or whose symbol or side differs from the order's",
    ),
    Rule("no_market_data", "coverage", "no quote before the arrival on its day, or no daily bar before its day"),
    Rule("stale_quote", "staleness", "the prevailing quote at arrival is older than stale_quote_s"),
    Rule(
        "outlier_cost",
        "outlier",
        "realized IS beyond outlier_mads robust SDs of the dataset's median, or |IS| > max_abs_cost_bps",
    ),
    Rule("bad_price", "outlier", "arrival price moved more than price_jump from the previous daily close"),
    Rule(
        "look_ahead",
        "look-ahead",
        "a feature's last quote, trade or bar is not strictly before the row's timestamp (order or decision)",
    ),
)


def dataset_rule_exprs(df: pl.DataFrame, cfg: QualityConfig = CONFIG) -> dict[str, pl.Expr]:
    """Per dataset rule, a boolean expression that is True when the row FAILS it (null counts as pass)."""
    med = df["is_total_bps"].drop_nulls().drop_nans().median() if "is_total_bps" in df.columns else None
    mad = (
        (df["is_total_bps"].drop_nulls().drop_nans() - med).abs().median() if med is not None else None
    )  # robust spread of the dataset's costs
    scale = 1.4826 * (mad or 0.0)
    cost = pl.col("is_total_bps")
    outlier = cost.abs() > cfg.max_abs_cost_bps
    if med is not None and scale > 0:
        outlier = outlier | ((cost - med).abs() > cfg.outlier_mads * scale)

    def ahead(prefix: str) -> pl.Expr:
        ts = pl.col(f"{prefix}probe_ts")
        return (
            (pl.col(f"{prefix}quote_ts") >= ts).fill_null(False)
            | (pl.col(f"{prefix}trade_ts") >= ts).fill_null(False)
            | (pl.col(f"{prefix}bar_day") >= ts.dt.date()).fill_null(False)
        )

    return {
        "missing_outcome": ~cost.is_finite().fill_null(False) | pl.col("arrival_price").is_null(),
        "missing_pretrade": pl.any_horizontal(
            pl.col("daily_volatility").is_null(), pl.col("adv").is_null(), pl.col("spread_bps").is_null()
        ),
        "invalid_values": (
            (pl.col("order_qty") <= 0).fill_null(True)
            | (pl.col("arrival_price") <= 0).fill_null(False)
            | (pl.col("spread_bps") < 0).fill_null(False)
            | ~pl.col("side").is_in(["BUY", "SELL"]).fill_null(False)
        ),
        "overfill": (pl.col("filled_qty") > pl.col("order_qty") * (1 + 1e-9)).fill_null(False),
        "fill_mismatch": (pl.col("mismatched_fills") > 0).fill_null(False),
        "decision_mismatch": (
            (pl.col("decision_id").is_not_null() & pl.col("decision_ts").is_null())
            | (pl.col("decision_symbol") != pl.col("symbol")).fill_null(False)
            | (pl.col("decision_side") != pl.col("side")).fill_null(False)
        ),
        "no_market_data": pl.col("quote_ts").is_null() | pl.col("bar_day").is_null(),
        "stale_quote": (pl.col("quote_age_s") > cfg.stale_quote_s).fill_null(False),
        "outlier_cost": outlier.fill_null(False),
        "bad_price": ((pl.col("arrival_price") / pl.col("prev_close") - 1).abs() > cfg.price_jump).fill_null(False),
        "look_ahead": ahead("") | ahead("dec_"),
    }


DECISION_RULES: tuple[Rule, ...] = (
    Rule(
        "missing_pretrade", "completeness", "daily volatility, ADV or the touch spread before the decision is missing"
    ),
    Rule(
        "invalid_values",
        "validity",
        "quantity <= 0, decision price <= 0, horizon_days <= 0, a crossed touch (spread < 0), or a side other "
        "than BUY/SELL",
    ),
    Rule("order_mismatch", "consistency", "an order naming the decision has another symbol or side"),
    Rule(
        "order_excluded",
        "consistency",
        "an order the decision led to failed an order rule (its realized cost, the decision's execution cost, "
        "is not trusted)",
    ),
    Rule("no_market_data", "coverage", "no quote before the decision on its day, or no daily bar before its day"),
    Rule("stale_quote", "staleness", "the prevailing quote at the decision is older than stale_quote_s"),
    Rule("bad_price", "outlier", "decision price moved more than price_jump from the previous daily close"),
    Rule(
        "look_ahead",
        "look-ahead",
        "a feature's last quote, trade or bar is not strictly before the decision's timestamp",
    ),
)


def decision_rule_exprs(df: pl.DataFrame, cfg: QualityConfig = CONFIG) -> dict[str, pl.Expr]:
    """Per decision rule (:data:`DECISION_RULES`), a boolean expression True when a decision row FAILS it (null
    counts as pass). Columns: the decision row's (datasets.py), ``order_failed`` from the order rows' rules."""
    ts = pl.col("decision_ts")
    return {
        "missing_pretrade": pl.any_horizontal(
            pl.col("daily_volatility").is_null(), pl.col("adv").is_null(), pl.col("spread_bps").is_null()
        ),
        "invalid_values": (
            (pl.col("quantity") <= 0).fill_null(True)
            | (pl.col("decision_price") <= 0).fill_null(False)
            | (pl.col("horizon_days") <= 0).fill_null(False)
            | (pl.col("spread_bps") < 0).fill_null(False)
            | ~pl.col("side").is_in(["BUY", "SELL"]).fill_null(False)
        ),
        "order_mismatch": (pl.col("mismatched_orders") > 0).fill_null(False),
        "order_excluded": pl.col("order_failed").fill_null(False),
        "no_market_data": pl.col("quote_ts").is_null() | pl.col("bar_day").is_null(),
        "stale_quote": (pl.col("quote_age_s") > cfg.stale_quote_s).fill_null(False),
        "bad_price": ((pl.col("decision_price") / pl.col("prev_close") - 1).abs() > cfg.price_jump).fill_null(False),
        "look_ahead": (
            (pl.col("quote_ts") >= ts).fill_null(False)
            | (pl.col("trade_ts") >= ts).fill_null(False)
            | (pl.col("bar_day") >= ts.dt.date()).fill_null(False)
        ),
    }


def apply(
    df: pl.DataFrame, cfg: QualityConfig = CONFIG, key: str = "order_id", table: str = "orders"
) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Split candidate rows into (passing rows, failing rows with ``reasons`` = the rules failed, comma-joined)
    and the quality report: candidate rows, passing rows, quality_pct, rows failing each rule. ``table``:
    ``orders`` (:data:`DATASET_RULES`, one row per parent order) or ``decisions`` (:data:`DECISION_RULES`)."""
    rules = DECISION_RULES if table == "decisions" else DATASET_RULES
    exprs = (decision_rule_exprs if table == "decisions" else dataset_rule_exprs)(df, cfg)
    flags = df.select(pl.col(key), *(e.alias(f"_dq_{n}") for n, e in exprs.items()))
    names = list(exprs)
    reasons = pl.concat_str(
        [pl.when(pl.col(f"_dq_{n}")).then(pl.lit(n)) for n in names], separator=",", ignore_nulls=True
    )
    flags = flags.with_columns(
        pl.any_horizontal([f"_dq_{n}" for n in names]).alias("_dq_fail"), reasons.alias("reasons")
    )
    by_rule = {n: int(flags[f"_dq_{n}"].sum()) for n in names}
    tagged = df.with_columns(flags["_dq_fail"], flags["reasons"])
    ok = tagged.filter(~pl.col("_dq_fail")).drop("_dq_fail", "reasons")
    bad = tagged.filter(pl.col("_dq_fail")).drop("_dq_fail")
    n = df.height
    report = {
        "candidate_rows": n,
        "passing_rows": ok.height,
        "quality_pct": round(100.0 * ok.height / n, 4) if n else 100.0,
        "excluded_by_rule": by_rule,
        "meets_promise": (100.0 * ok.height / n if n else 100.0) > cfg.min_quality_pct,
        "rules": [asdict(r) for r in rules],
        "config": asdict(cfg),
        "code_version": CODE_VERSION,
    }
    return ok, bad, report


# ---------------------------------------------------------------------------------------------------
# Row rules on raw contract files, and their precision/recall against the simulator's faults
# ---------------------------------------------------------------------------------------------------
ROW_RULES: tuple[Rule, ...] = (
    Rule("unparseable", "completeness", "the line is not a JSON object"),
    Rule("missing_field", "completeness", "a field the contract requires is absent or empty"),
    Rule("ts_without_zone", "validity", "the timestamp has no UTC offset (Z or +hh:mm): its instant is unknown"),
    Rule("invalid_side", "validity", "side other than BUY or SELL"),
    Rule("non_positive", "validity", "quantity, price or size <= 0"),
    Rule("crossed_quote", "validity", "bid > ask"),
    Rule("duplicate_event", "consistency", "an event_id already sent earlier with the same content"),
    Rule("conflicting_event", "consistency", "an event_id already sent earlier with other content"),
    Rule("unknown_order", "consistency", "a fill whose order_id has no NEW order in the files"),
)
EVENT_TABLES = ("decisions", "orders", "fills", "settlements")


def _event_lines(folder: Path) -> pl.DataFrame:
    """Every line of the folder's JSON Lines event files: (file, line 1-based, table, raw)."""
    frames = []
    for p in sorted(folder.glob("*.jsonl")):
        table = p.name.split("_")[0].split(".")[0]
        if table not in EVENT_TABLES:
            continue
        text = p.read_text(errors="replace")
        lines = pl.Series("raw", text.split("\n"))
        frames.append(
            pl.DataFrame({"raw": lines})
            .with_row_index("line", offset=1)
            .filter(pl.col("raw").str.strip_chars() != "")
            .with_columns(pl.lit(p.name).alias("file"), pl.lit(table).alias("tbl"))
        )
    if not frames:
        return pl.DataFrame(schema={"line": pl.UInt32, "raw": pl.String, "file": pl.String, "tbl": pl.String})
    return pl.concat(frames)


def _required_check(table: str) -> str:
    req = [f.name for f in TABLES[table].fields if f.required]
    if table == "orders":  # symbol, side, quantity, broker, algo are required on NEW only
        new = ["symbol", "side", "quantity", "broker", "algo"]
        base = " OR ".join(f"nullif(j->>'{c}', '') IS NULL" for c in req)
        on_new = " OR ".join(f"nullif(j->>'{c}', '') IS NULL" for c in new)
        return f"(({base}) OR (j->>'action' = 'NEW' AND ({on_new})))"
    return "(" + " OR ".join(f"nullif(j->>'{c}', '') IS NULL" for c in req) + ")"


def row_rule_flags(con: duckdb.DuckDBPyConnection, folder: str | Path) -> pl.DataFrame:
    """Rows of the folder's raw files that fail a row rule: (file, line, tbl, rule). JSON Lines events and the
    Parquet ``quotes_*``/``trades_*`` files (``line``: 1-based for JSON Lines, 0-based row for Parquet, as the
    simulator's ``_faults.jsonl``)."""
    folder = Path(folder)
    con.register("_dq_lines", _event_lines(folder).to_arrow())
    req = " ".join(f"WHEN '{t}' THEN {_required_check(t)}" for t in EVENT_TABLES)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _dq_ev AS
            WITH p AS (SELECT file, line, tbl, raw, coalesce(json_valid(raw) AND starts_with(ltrim(raw), '{{'), false) AS ok FROM _dq_lines),
            j AS (SELECT *, CASE WHEN ok THEN raw END AS j FROM p)
            SELECT file, line, tbl, ok, j->>'event_id' AS event_id, j->>'action' AS action, j->>'order_id' AS order_id,
                   md5(raw) AS h, j->>'ts' AS ts_txt, j->>'side' AS side,
                   TRY_CAST(j->>'quantity' AS DOUBLE) AS qty, TRY_CAST(j->>'price' AS DOUBLE) AS price,
                   CASE WHEN ok THEN CASE tbl {req} END END AS missing
            FROM j"""
    )
    con.unregister("_dq_lines")
    ev = """
        WITH seq AS (SELECT *, row_number() OVER (PARTITION BY tbl, event_id ORDER BY file, line) AS nth,
                            first_value(h) OVER (PARTITION BY tbl, event_id ORDER BY file, line) AS first_h
                     FROM _dq_ev WHERE ok AND event_id IS NOT NULL),
        known AS (SELECT DISTINCT order_id FROM _dq_ev WHERE ok AND tbl = 'orders' AND action = 'NEW')
        SELECT file, line, tbl, 'unparseable' AS rule FROM _dq_ev WHERE NOT ok
        UNION ALL SELECT file, line, tbl, 'missing_field' FROM _dq_ev WHERE ok AND missing
        UNION ALL SELECT file, line, tbl, 'ts_without_zone' FROM _dq_ev
                  WHERE ok AND ts_txt IS NOT NULL AND NOT regexp_matches(ts_txt, '(Z|z|[+-]\\d\\d:?\\d\\d)$')
        UNION ALL SELECT file, line, tbl, 'invalid_side' FROM _dq_ev
                  WHERE ok AND side IS NOT NULL AND upper(side) NOT IN ('BUY', 'SELL')
        UNION ALL SELECT file, line, tbl, 'non_positive' FROM _dq_ev WHERE ok AND (qty <= 0 OR price <= 0)
        UNION ALL SELECT file, line, tbl, CASE WHEN h = first_h THEN 'duplicate_event' ELSE 'conflicting_event' END
                  FROM seq WHERE nth > 1
        UNION ALL SELECT e.file, e.line, e.tbl, 'unknown_order' FROM _dq_ev e
                  WHERE e.ok AND e.tbl = 'fills' AND e.order_id IS NOT NULL AND e.order_id NOT IN (SELECT order_id FROM known)"""
    parts = [ev]
    for table, rules in (
        ("quotes", "CASE WHEN bid > ask THEN 'crossed_quote' WHEN bid <= 0 OR ask <= 0 OR bid_size <= 0 OR ask_size <= 0 "
                   "THEN 'non_positive' END"),
        ("trades", "CASE WHEN price <= 0 OR size <= 0 THEN 'non_positive' END"),
    ):  # fmt: skip
        files = sorted(folder.glob(f"{table}_*.parquet"))
        if files:
            lst = "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"
            parts.append(
                f"""SELECT parse_filename(filename) AS file, file_row_number AS line, '{table}' AS tbl, rule FROM (
                    SELECT filename, file_row_number, {rules} AS rule
                    FROM read_parquet({lst}, filename = true, file_row_number = true)) WHERE rule IS NOT NULL"""
            )
    return con.sql(" UNION ALL ".join(f"({p})" for p in parts)).pl()


def _read_faults(path: Path) -> pl.DataFrame:
    """The simulator's fault record (``_faults.jsonl``): file, line, table, fault (empty when absent)."""
    if path.exists() and path.stat().st_size:
        return pl.read_ndjson(path, infer_schema_length=None).select("file", "line", "table", "fault")
    return pl.DataFrame(schema={"file": pl.String, "line": pl.Int64, "table": pl.String, "fault": pl.String})


def fault_scores(folder: str | Path) -> dict:
    """Precision and recall of :data:`ROW_RULES` at catching the rows the simulator corrupted in ``folder``
    (its ``_faults.jsonl``): a row counts as flagged when any rule fails on it; matching is by (file, line)."""
    folder = Path(folder)
    con = duckdb.connect(":memory:")
    con.execute("SET enable_progress_bar = false")
    try:
        flags = row_rule_flags(con, folder)
    finally:
        con.close()
    return score_flags(flags, _read_faults(folder / "_faults.jsonl"), str(folder))


# A lake built from simulator files (the demo lake) keeps, beside the simulator's ground truth, the record of the
# faults it injected and what the row rules flagged on the raw files before ingest (analytics/demo.py writes
# them; the raw files themselves are not kept). The flags are named by this module's code version: rules that
# changed since make them stale, and the dataset falls back to the reference simulation.
LAKE_FAULTS = "demo_faults.jsonl"


def lake_flags_name() -> str:
    return f"demo_fault_flags-{CODE_VERSION}.parquet"


def lake_fault_scores(lake_root: str | Path) -> dict | None:
    """The row rules' precision/recall against the lake's own simulator faults (:data:`LAKE_FAULTS` and the
    flags of this code version beside the lake), or None when the lake does not keep them."""
    root = Path(lake_root)
    faults, flags = root / LAKE_FAULTS, root / lake_flags_name()
    if not (faults.exists() and flags.exists()):
        return None
    return score_flags(pl.read_parquet(flags), _read_faults(faults), f"this lake's own simulator faults ({faults})")


def score_flags(flags: pl.DataFrame, faults: pl.DataFrame, source: str) -> dict:
    """Precision/recall of the rows ``flags`` (file, line, rule: :func:`row_rule_flags`) against ``faults`` (file,
    line, table, fault): flagged = distinct (file, line) with any rule; true positive = a flagged faulty row."""
    flagged = (
        flags.with_columns(pl.col("line").cast(pl.Int64))
        .group_by("file", "line")
        .agg(pl.col("rule").unique().sort().str.join(",").alias("rules"))
    )
    faults = faults.with_columns(pl.col("line").cast(pl.Int64))
    hit = faults.join(flagged, on=["file", "line"], how="left")
    tp = int(hit["rules"].is_not_null().sum())
    per_fault = (
        hit.group_by("fault")
        .agg(pl.len().alias("faults"), pl.col("rules").is_not_null().sum().alias("caught"))
        .with_columns((pl.col("caught") / pl.col("faults")).alias("recall"))
        .sort("fault")
    )
    false_pos = flagged.join(faults, on=["file", "line"], how="anti")
    n_flag, n_fault = flagged.height, faults.height
    return {
        "faults": n_fault,
        "flagged": n_flag,
        "true_positives": tp,
        "precision": tp / n_flag if n_flag else 1.0,
        "recall": tp / n_fault if n_fault else 1.0,
        "by_fault": per_fault.to_dicts(),
        "by_rule": flags.group_by("rule").len().sort("rule").rename({"len": "rows"}).to_dicts(),
        "false_positives": false_pos.head(20).to_dicts(),
        "source": source,
        "rules": [asdict(r) for r in ROW_RULES],
        "code_version": CODE_VERSION,
    }


def reference_scores(cache_dir: Path | None = None, seed: int = 11) -> dict:
    """The rules' precision/recall on a small reference desk simulated with faults (2 days, 8 symbols, 2%
    faults, fixed seed): deterministic for a code version, so every dataset can report it. Cached as JSON in
    ``cache_dir`` (keyed by this module's code version) when given."""
    import tempfile

    from analytics.simulate import SimConfig, simulate

    cache = cache_dir / f"fault_scores-{CODE_VERSION}-seed{seed}.json" if cache_dir else None
    if cache is not None and cache.exists():
        return json.loads(cache.read_text())
    with tempfile.TemporaryDirectory(prefix="dq-ref-") as tmp:
        cfg = SimConfig(days=2, symbols=8, orders_per_day=60, seed=seed, faults=0.02, fills_per_order=10)
        simulate(Path(tmp), cfg)
        out = fault_scores(tmp)
    out["source"] = f"reference simulation {asdict(cfg) | {'start': str(cfg.start)}}"
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmpf = cache.with_suffix(".tmp")
        tmpf.write_text(json.dumps(out, default=str))
        tmpf.replace(cache)
    return out
