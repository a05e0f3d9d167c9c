"""Ingest contract files (JSON Lines, CSV, Parquet) into the lake: validate, quarantine, deduplicate, commit.

One call of :func:`ingest` is one atomic batch: either every accepted row and every quarantined row of all
its files becomes visible as the next lake version, or (on any error, crash or kill) nothing does.

Accounting, per table: ``read = accepted + duplicate + quarantined``, where
- accepted: new rows written to the table;
- duplicate: rows already in the lake or earlier in the batch with the same key and content (and every row
  of a file whose exact bytes were ingested before), or an identical rejected row already quarantined;
- quarantined: rows written to the ``quarantine`` table with a reason, source file, line and raw content.
Lines that cannot be attributed to a table (not JSON, no known ``event_type``) count under ``unknown``.

Idempotency: a file whose SHA-256 was ingested before is a no-op; rows are identified by the table's key
(``event_id`` for events, natural keys for reference data, ``(symbol, venue, seq)`` for market data that
carries ``seq``); the same key with different content is quarantined as ``conflict``.

Referential rules (reason codes): ``unknown_order`` (an order's REPLACE/CANCEL/DONE or a fill whose
``order_id`` has no NEW in the lake or the batch), ``order_mismatch`` (a fill's symbol or side differs from
its order's), ``unknown_fill`` (a settlement of an unknown ``fill_id``), ``conflict`` (same key, different
content; or a second NEW for an ``order_id`` / a reused ``fill_id`` or ``decision_id`` under another
``event_id``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq

from analytics.schema import (
    EVENT_TYPES,
    INGEST_ORDER,
    MARKET_KINDS,
    QUARANTINE_SCHEMA,
    TABLES,
    table_for_name,
)
from analytics.store import Lake, query, quote_ident, sql_literal
from analytics.validate import typed_frame, validate

FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
UNKNOWN = "unknown"
STREAM_BATCH_ROWS = 2_000_000  # market data without keys is validated and written in chunks of this size
_ORD_FILE_STRIDE = 1 << 40  # _ord = file index * stride + line: arrival order across the batch's files


class IngestError(Exception):
    """An unreadable path or format: the whole batch is refused and the lake is untouched."""


@dataclass
class TableCounts:
    read: int = 0
    accepted: int = 0
    duplicate: int = 0
    quarantined: int = 0

    def add(self, other: TableCounts) -> None:
        self.read += other.read
        self.accepted += other.accepted
        self.duplicate += other.duplicate
        self.quarantined += other.quarantined


@dataclass
class Source:
    path: Path
    fmt: str
    type_name: str | None  # explicit --type
    name_hint: str | None  # the table the file name's first word names
    index: int
    display: str = ""  # how the file is named in the summary and the quarantine
    sha256: str = ""
    size: int = 0


@dataclass
class IngestResult:
    version_before: int
    version: int
    batch_id: str | None
    tables: dict[str, TableCounts] = field(default_factory=dict)
    files: list[dict] = field(default_factory=list)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        tables = {t: c.__dict__ for t, c in sorted(self.tables.items())}
        total = TableCounts()
        for c in self.tables.values():
            total.add(c)
        return {
            "version_before": self.version_before,
            "version": self.version,
            "lake_version": self.version,
            "batch_id": self.batch_id,
            "tables": tables,
            "totals": total.__dict__,
            "quarantine_reasons": dict(sorted(self.quarantine_reasons.items())),
            "files": self.files,
        }


# ---------------------------------------------------------------------------------------------------
# Discovering and reading sources
# ---------------------------------------------------------------------------------------------------
def discover(paths: Iterable[str | Path], type_name: str | None = None) -> list[Source]:
    """Expand folders (files with a known extension, sorted), check every path is readable and its
    format known. Raises :class:`IngestError` before anything is read or written."""
    if type_name is not None and type_name not in TABLES:
        raise IngestError(f"unknown --type {type_name!r}; one of: {', '.join(TABLES)}")
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            # Like Hive and Spark, names starting with "_" or "." are metadata, not data (_faults.jsonl).
            found = sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and f.suffix.lower() in FORMATS
                and not any(part.startswith(("_", ".")) for part in f.relative_to(p).parts)
            )
            if not found:
                raise IngestError(f"{p}: folder has no .jsonl, .ndjson, .csv or .parquet file")
            files.extend(found)
        elif p.is_file():
            if p.suffix.lower() not in FORMATS:
                raise IngestError(f"{p}: unknown format {p.suffix!r} (expected .jsonl, .ndjson, .csv or .parquet)")
            files.append(p)
        elif p.exists():
            raise IngestError(f"{p}: not a regular file or folder")
        else:
            raise IngestError(f"{p}: no such file or folder")
    out = []
    for i, f in enumerate(files):
        try:
            with open(f, "rb"):
                pass
        except OSError as e:
            raise IngestError(f"{f}: cannot be read ({e.strerror})") from e
        stem = f.name.split(".")[0].replace("-", "_").lower()
        # The first word, or a whole table name that has an underscore (benchmark_weights_2026-03.csv).
        word = next((t for t in TABLES if stem == t or stem.startswith(t + "_")), stem.split("_")[0])
        out.append(Source(f, FORMATS[f.suffix.lower()], type_name, table_for_name(word), i, str(f)))
    return out


def _sha256(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


@dataclass
class Parsed:
    """Rows of one source, grouped by target table, with pre-table rejects (broken lines etc.)."""

    frames: dict[str, list[pl.DataFrame]] = field(default_factory=dict)
    rejects: list[pl.DataFrame] = field(default_factory=list)  # columns: table, line, reason, detail, raw
    lines: pl.DataFrame | None = None  # JSON Lines: (line, text) of every non-blank line

    def add(self, table: str, df: pl.DataFrame) -> None:
        if df.height:
            self.frames.setdefault(table, []).append(df)


def _utf8_or_none(b: bytes) -> str | None:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _unparseable(src: Source, rows: pl.DataFrame, detail: str, raw: pl.Expr) -> pl.DataFrame:
    """Rejects of lines that never became rows, attributed to the file's table (else ``unknown``)."""
    return rows.select(
        pl.lit(src.type_name or src.name_hint or UNKNOWN).alias("table"),
        "line",
        pl.lit("unparseable").alias("reason"),
        pl.lit(detail).alias("detail"),
        raw.alias("raw"),
    )


def _read_jsonl(src: Source, con: duckdb.DuckDBPyConnection) -> Parsed:
    """JSON Lines: each line one event; ``event_type`` (and ``kind`` for market data) picks the table,
    else the file's table hint. Blank lines are ignored; anything else that is not a JSON object is
    quarantined as ``unparseable``. Row frames carry ``_line`` but not the line itself: the text of every
    line is kept once, in ``Parsed.lines``, for the few rows that end up in the quarantine."""
    lines = src.path.read_bytes().split(b"\n")
    raw = pl.Series("raw", lines, dtype=pl.Binary)
    try:
        text = raw.cast(pl.String)
        raw = None  # all UTF-8: the bytes are not needed again
    except pl.exceptions.ComputeError:  # a line is not UTF-8: the cast raises even with strict=False
        text = pl.Series([_utf8_or_none(b) for b in lines], dtype=pl.String)
    del lines
    lf = pl.DataFrame({"line": pl.int_range(1, len(text) + 1, eager=True, dtype=pl.Int64), "text": text})
    del text
    parsed = Parsed()
    if raw is not None:
        bad_enc = lf.with_columns(raw).filter(pl.col("text").is_null())
        parsed.rejects.append(_unparseable(src, bad_enc, "line is not valid UTF-8", pl.col("raw").bin.encode("hex")))
        del raw
    lf = lf.filter(pl.col("text").is_not_null()).with_columns(pl.col("text").str.strip_suffix("\r"))
    parsed.lines = lf.filter(pl.col("text").str.strip_chars() != "")  # blank lines are not events
    del lf
    con.register("jl", parsed.lines.select("line", pl.col("text").alias("raw")).to_arrow())
    # Broken lines first (few), so that the JSON parse below only ever sees valid objects.
    broken = query(
        con,
        "SELECT line, raw FROM jl WHERE NOT (json_valid(raw) AND starts_with(ltrim(raw), '{')) ORDER BY line",
    )
    con.register("jbad", broken.select("line").to_arrow())
    if broken.height:
        parsed.rejects.append(_unparseable(src, broken, "line is not a JSON object", pl.col("raw")))
    # Route each valid line to its table: event_type (and kind), else --type, else the file name. One JSON
    # parse per line (json_transform) gives the routing fields and, for a file that names its table, that
    # table's fields; lines of other tables are parsed again for theirs.
    hint = src.type_name or src.name_hint
    struct = {"event_type": "VARCHAR", "kind": "VARCHAR", **(_json_struct(hint) if hint else {})}
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE jr AS SELECT line, json_transform(raw, {sql_literal(json.dumps(struct))}) "
        "AS s FROM jl ANTI JOIN jbad USING (line)"
    )
    routes = " ".join(f"WHEN s.event_type = '{et}' THEN '{t}'" for et, t in EVENT_TYPES.items())
    kinds = " ".join(f"WHEN lower(s.kind) = '{k}' THEN '{t}'" for k, t in MARKET_KINDS.items())
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW jt AS SELECT line, s, s.event_type AS et, CASE {routes}
            WHEN s.event_type = 'MarketDataEvent' THEN (CASE {kinds} ELSE NULL END)
            WHEN s.event_type IS NULL THEN {sql_literal(hint) if hint else "NULL"} ELSE NULL END AS tbl FROM jr"""
    )  # a view cannot take parameters; hint is a table name from TABLES, never user text
    unrouted = query(
        con,
        """SELECT line, NULL::VARCHAR AS raw, et, CASE
             WHEN et = 'MarketDataEvent' THEN 'MarketDataEvent kind must be quote, trade or bar'
             WHEN et IS NULL THEN 'no event_type and the file name names no table'
             ELSE 'unknown event_type ''' || et || '''' END AS detail
           FROM jt WHERE tbl IS NULL ORDER BY line""",
    )
    if unrouted.height:
        parsed.rejects.append(
            unrouted.select(
                pl.lit(UNKNOWN).alias("table"),
                "line",
                pl.lit("unknown_event_type").alias("reason"),
                "detail",
                "raw",
            )
        )
    for (table,) in con.execute("SELECT DISTINCT tbl FROM jt WHERE tbl IS NOT NULL ORDER BY 1").fetchall():
        t = TABLES[table]
        known = [f.name for f in t.fields] + ["event_type", "kind"]
        patch = sql_literal(json.dumps(dict.fromkeys(known)))
        src_struct = "s" if table == hint else f"json_transform(raw, {sql_literal(json.dumps(_json_struct(table)))})"
        cols = ", ".join(f"v.{quote_ident(f.name)} AS {quote_ident(f.name)}" for f in t.fields)
        # Fields beyond the contract are kept in `extra` (merge-patching the known keys to null removes
        # them); json_keys is cheap next to the patch, which runs only on lines that carry such fields.
        df = query(
            con,
            f"""SELECT line AS _line, {cols},
                       CASE WHEN len(list_filter(json_keys(raw), lambda k: NOT list_contains(?::VARCHAR[], k))) > 0
                            THEN json_merge_patch(raw, {patch}) END AS extra
                FROM (SELECT line, raw, {src_struct} AS v FROM jt JOIN jl USING (line) WHERE tbl = ?) ORDER BY line""",
            [known, t.name],
        )
        parsed.add(t.name, df)
    con.execute("DROP VIEW IF EXISTS jt; DROP TABLE IF EXISTS jr")
    con.unregister("jl")
    con.unregister("jbad")
    return parsed


def _json_struct(table: str) -> dict[str, str]:
    """json_transform structure reading every contract field of ``table`` as text (JSON for objects):
    types come from the contract in validate.py, never from what the producer happened to send."""
    return {f.name: ("JSON" if f.kind == "json" else "VARCHAR") for f in TABLES[table].fields}


def _table_of_frame(src: Source, columns: list[str]) -> str:
    """Which table a CSV/Parquet batch holds: ``--type``, else its ``event_type`` column (routed row by
    row, returned as ``__by_event_type``), else the file name's first word."""
    if src.type_name:
        return src.type_name
    if "event_type" in columns:
        return "__by_event_type"
    if src.name_hint:
        return src.name_hint
    raise IngestError(
        f"{src.path}: cannot tell which table this file holds: name it after its table "
        f"(e.g. fills_2026-03-02.{src.fmt}), add an event_type column, or pass --type"
    )


def _split_by_event_type(df: pl.DataFrame, parsed: Parsed) -> None:
    """Route rows of a batch file with an ``event_type`` column (and ``kind`` for market data)."""
    et = pl.col("event_type").cast(pl.String)
    kind = pl.col("kind").cast(pl.String).str.to_lowercase() if "kind" in df.columns else pl.lit(None, pl.String)
    tbl = pl.when(et == "MarketDataEvent").then(kind.replace_strict(MARKET_KINDS, default=None))
    for e, t in EVENT_TYPES.items():
        tbl = tbl.when(et == e).then(pl.lit(t))
    df = df.with_columns(tbl.otherwise(None).alias("__tbl"))
    bad = df.filter(pl.col("__tbl").is_null())
    if bad.height:
        parsed.rejects.append(
            bad.select(
                pl.lit(UNKNOWN).alias("table"),
                pl.col("_line").alias("line"),
                pl.lit("unknown_event_type").alias("reason"),
                pl.concat_str(pl.lit("unknown event_type/kind '"), et.fill_null(""), pl.lit("'")).alias("detail"),
                _row_json(bad.drop("__tbl", "_line")).alias("raw"),
            )
        )
    for (t,), part in df.filter(pl.col("__tbl").is_not_null()).partition_by("__tbl", as_dict=True).items():
        part = part.drop("__tbl")
        # The other event types' columns are null on this table's rows: they are not extra fields.
        empty = [c for c in part.columns if c not in TABLES[t].columns and part[c].null_count() == part.height]
        parsed.add(t, _with_extra(part.drop(empty), t))


def _row_json(df: pl.DataFrame) -> pl.Expr:
    """The row's received fields (not the internal ``_``/``__t_`` columns) as a JSON object."""
    cols = [c for c in df.columns if not c.startswith("_")]
    return pl.struct([pl.col(c).cast(pl.String) for c in cols]).struct.json_encode()


def _has_identity(table: str) -> pl.Expr:
    """Whether a row of ``table`` has an identity (for quarantine dedupe): market data only with ``seq``."""
    key = TABLES[table].key
    if key is None or "seq" in key:
        return pl.col("__t_seq").is_not_null() if key else pl.lit(False)
    return pl.lit(True)


def _raw_expr(df: pl.DataFrame, cols_by_src: dict[int, list[str]] | None = None) -> pl.Expr:
    """The row as received: its JSON line where it came as one, else its fields as a JSON object.
    ``cols_by_src``: each file's own columns, so that a row concatenated with other files' rows does not
    pick up their columns as nulls (its raw content, hence its quarantine dedupe, must not depend on which
    other files share the batch)."""
    as_json = _row_json(df)
    present = set(df["_src"].unique().to_list()) if cols_by_src else set()
    for i, cols in (cols_by_src or {}).items():
        if i not in present:
            continue
        own = pl.struct([pl.col(c).cast(pl.String) for c in cols if c in df.columns]).struct.json_encode()
        as_json = pl.when(pl.col("_src") == i).then(own).otherwise(as_json)
    return pl.coalesce(pl.col("_raw"), as_json) if "_raw" in df.columns else as_json


def _with_extra(df: pl.DataFrame, table: str) -> pl.DataFrame:
    """Pack columns beyond the contract into the ``extra`` JSON column (kept, not rejected)."""
    known = set(TABLES[table].columns) | {"event_type", "kind"}
    extras = [c for c in df.columns if c not in known and not c.startswith("_")]
    if not extras:
        return df.with_columns(pl.lit(None, pl.String).alias("extra"))
    enc = pl.struct([pl.col(c) for c in extras]).struct.json_encode()
    return df.with_columns(enc.alias("extra")).drop(extras)


def _read_csv(src: Source, con: duckdb.DuckDBPyConnection) -> Parsed:
    """CSV with a header line, read as text (types come from the contract, not from guessing). Lines that
    break the CSV structure (wrong field count, bad quoting) are quarantined as ``unparseable``. ``line``
    is the record's line number with the header as line 1 (records spanning lines shift it)."""
    parsed = Parsed()
    try:
        df = query(
            con,
            "SELECT * FROM read_csv(?, all_varchar = true, header = true, store_rejects = true, "
            "strict_mode = true, parallel = false, rejects_scan = 'csv_scan', rejects_table = 'csv_errors')",
            [str(src.path)],
        )
    except duckdb.Error as e:
        raise IngestError(f"{src.path}: not a readable CSV file ({str(e).splitlines()[0]})") from e
    errs = query(con, "SELECT line, error_type, csv_line, error_message FROM csv_errors ORDER BY line")
    con.execute("DROP TABLE IF EXISTS csv_errors; DROP TABLE IF EXISTS csv_scan")
    err_lines = errs["line"].unique().sort().to_list() if errs.height else []
    # Valid records take the line numbers not used by header or rejected lines, in order.
    total = df.height + len(err_lines)
    bad = set(err_lines)
    line_nos = [n for n in range(2, total + 2) if n not in bad] if bad else None
    df = df.with_columns(
        pl.Series("_line", line_nos, dtype=pl.Int64)
        if line_nos is not None
        else pl.int_range(2, df.height + 2).alias("_line")
    )
    table = _table_of_frame(src, df.columns)
    if errs.height:
        parsed.rejects.append(
            errs.group_by("line", maintain_order=True)
            .agg(pl.col("csv_line").first(), pl.col("error_message").str.join("; "))
            .select(
                pl.lit(table if table != "__by_event_type" else UNKNOWN).alias("table"),
                pl.col("line").cast(pl.Int64),
                pl.lit("unparseable").alias("reason"),
                pl.col("error_message").alias("detail"),
                pl.col("csv_line").alias("raw"),
            )
        )
    if table == "__by_event_type":
        _split_by_event_type(df, parsed)
    else:
        parsed.add(table, _with_extra(df, table))
    return parsed


def _parquet_batches(src: Source) -> Iterable[pl.DataFrame]:
    """The file in slices of STREAM_BATCH_ROWS rows (a slice of a Parquet scan reads only its row groups),
    each with ``_line`` = its 0-based row number in the file."""
    try:
        n = pq.ParquetFile(src.path).metadata.num_rows
    except Exception as e:  # pyarrow raises several types for a broken file
        raise IngestError(f"{src.path}: not a readable Parquet file ({e})") from e
    scan = pl.scan_parquet(src.path)
    for offset in range(0, max(n, 1), STREAM_BATCH_ROWS):
        df = scan.slice(offset, STREAM_BATCH_ROWS).collect()
        yield df.with_columns(pl.int_range(offset, offset + df.height, dtype=pl.Int64).alias("_line"))


# ---------------------------------------------------------------------------------------------------
# The batch: validate, deduplicate, check references, write
# ---------------------------------------------------------------------------------------------------
def _key_sql(cols: Iterable[str], prefix: str = "") -> str:
    cols = list(cols)
    if len(cols) == 1:
        return f"CAST({prefix}{quote_ident(cols[0])} AS VARCHAR)"
    parts = ", ".join(f"coalesce(CAST({prefix}{quote_ident(c)} AS VARCHAR), '')" for c in cols)
    return f"concat_ws(chr(31), {parts})"


def _hash_sql(table: str) -> str:
    """md5 of a row's contract content (and its extra fields): the identity of 'the same event'."""
    cols = [*TABLES[table].columns, "extra"]
    parts = ", ".join(f"coalesce(CAST({quote_ident(c)} AS VARCHAR), chr(0))" for c in cols)
    return f"md5(concat_ws(chr(31), {parts}))"


# Secondary identifiers that must not be reused by another event: table -> (column, only where).
_UNIQUE_IDS: dict[str, tuple[str, str]] = {
    "decisions": ("decision_id", "true"),
    "orders": ("order_id", "action = 'NEW'"),
    "fills": ("fill_id", "true"),
}


class _Batch:
    def __init__(self, lake: Lake, writer, sources: list[Source]):
        self.lake = lake
        self.w = writer
        self.sources = sources
        self.now = dt.datetime.now(dt.UTC)
        self.tally: list[pl.DataFrame] = []  # columns: _src, table, status, n
        self.quarantine: list[pl.DataFrame] = []
        self.accepted: dict[str, list[pl.DataFrame]] = {}  # key columns of rows accepted in this batch
        self.src_cols: dict[str, dict[int, list[str]]] = {}  # table -> file index -> the file's columns
        self.raw_lines: dict[int, pl.DataFrame] = {}  # JSON Lines file index -> (line, text)
        self.con = lake.connect(writer.base)

    # -- accounting ------------------------------------------------------------------------------
    def count(self, src: pl.Expr | int, table: str, status: str, df: pl.DataFrame) -> None:
        if df.height == 0:
            return
        s = pl.lit(src) if isinstance(src, int) else src
        self.tally.append(
            df.with_columns(s.cast(pl.Int64).alias("_src"))  # with_columns: a literal fills every row
            .group_by("_src")
            .len("n")
            .with_columns(pl.lit(table).alias("table"), pl.lit(status).alias("status"))
            .select("_src", "table", "status", pl.col("n").cast(pl.Int64))
        )

    def counts(self) -> pl.DataFrame:
        if not self.tally:
            return pl.DataFrame(
                schema={
                    "_src": pl.Int64,
                    "table": pl.String,
                    "status": pl.String,
                    "n": pl.Int64,
                }
            )
        return pl.concat(self.tally).group_by("_src", "table", "status").agg(pl.col("n").sum())

    # -- quarantine ------------------------------------------------------------------------------
    def reject(self, q: pl.DataFrame) -> None:
        """Quarantine rows (columns _src, table, line, reason, detail, raw, event_id; optional _dedupe).

        An identical rejected row (same table, reason and raw content) already quarantined, in the lake or
        earlier in this batch, counts as a duplicate instead: it is the same event sent again. Rows with
        ``_dedupe`` false are never duplicates: market data without ``seq`` and unparseable lines have no
        identity, so two equal bad quotes are two bad quotes (as two equal good quotes are two quotes)."""
        if q.height == 0:
            return
        q = q.with_columns(
            pl.col("raw").cast(pl.String).fill_null(""),
            pl.col("line").cast(pl.Int64),
            pl.int_range(pl.len(), dtype=pl.Int64).alias("_qi"),
        )
        if "_dedupe" not in q.columns:
            q = q.with_columns(pl.lit(True).alias("_dedupe"))
        # Rows from JSON Lines files: the raw content is the line itself, exactly as received.
        for idx, lines in self.raw_lines.items():
            if q["_src"].eq(idx).any():
                own = lines.select(pl.lit(idx, pl.Int64).alias("_src"), "line", pl.col("text").alias("_text"))
                q = (
                    q.join(own, on=["_src", "line"], how="left")
                    .with_columns(pl.coalesce("_text", "raw").alias("raw"))
                    .drop("_text")
                )
        self.con.register("q_in", q.select("_qi", "table", "reason", "raw").to_arrow())
        flags = query(
            self.con,
            """SELECT i._qi, md5(i.raw) AS raw_hash, EXISTS (
                   SELECT 1 FROM quarantine z
                   WHERE z."table" = i."table" AND z.reason = i.reason AND z.raw_hash = md5(i.raw)) AS seen
               FROM q_in i ORDER BY i._qi""",
        )
        self.con.unregister("q_in")
        q = q.join(flags, on="_qi", how="left")
        first = pl.int_range(pl.len()).over("table", "reason", "raw_hash") == 0
        q = q.with_columns((pl.col("_dedupe") & (pl.col("seen") | ~first)).alias("seen"))
        for (table, seen), part in q.partition_by("table", "seen", as_dict=True).items():
            self.count(pl.col("_src"), table, "duplicate" if seen else "quarantined", part)
        new = q.filter(~pl.col("seen"))
        names = {s.index: s.display for s in self.sources}
        self.quarantine.append(
            new.select(
                pl.lit(self.w.batch_id).alias("batch_id"),
                pl.lit(self.now).dt.cast_time_unit("us").dt.convert_time_zone("UTC").alias("ingested_at"),
                pl.col("_src").replace_strict(names, return_dtype=pl.String).alias("source_file"),
                "line",
                "table",
                "reason",
                "detail",
                pl.col("event_id").cast(pl.String),
                "raw",
                "raw_hash",
            ).cast(QUARANTINE_SCHEMA)
        )

    def reject_parsed(self, src: Source, rej: pl.DataFrame) -> None:
        """Rows rejected before reaching a table. A line that is not even JSON has no identity: two
        truncated lines can look alike, so they are never counted as duplicates of each other."""
        self.reject(
            rej.with_columns(
                pl.lit(src.index).alias("_src"),
                pl.lit(None, pl.String).alias("event_id"),
                (pl.col("reason") != "unparseable").alias("_dedupe"),
            )
        )

    # -- validation ------------------------------------------------------------------------------
    def validated(self, table: str, df: pl.DataFrame) -> pl.DataFrame:
        """Row rules; rejected rows are quarantined, the typed valid rows returned (with _src, _line,
        _ord)."""
        v = validate(table, df)
        bad = v.filter(pl.col("_reason").is_not_null())
        if bad.height:
            raw = _raw_expr(bad, self.src_cols.get(table))
            eid = pl.col("__t_event_id") if "event_id" in TABLES[table].columns else pl.lit(None, pl.String)
            self.reject(
                bad.select(
                    "_src",
                    pl.lit(table).alias("table"),
                    pl.col("_line").alias("line"),
                    pl.col("_reason").alias("reason"),
                    pl.col("_detail").alias("detail"),
                    raw.alias("raw"),
                    eid.alias("event_id"),
                    _has_identity(table).alias("_dedupe"),
                )
            )
        good = v.filter(pl.col("_reason").is_null())
        raw_keep = [pl.col("_raw")] if "_raw" in good.columns else []
        return pl.concat(
            [typed_frame(table, good), good.select("_src", "_line", "_ord", *raw_keep)],
            how="horizontal",
        )

    def _reject_rows(self, table: str, rows: pl.DataFrame, reason: str, detail: pl.Expr) -> None:
        if rows.height == 0:
            return
        raw = _raw_expr(rows, self.src_cols.get(table))
        eid = pl.col("event_id") if "event_id" in rows.columns else pl.lit(None, pl.String)
        self.reject(
            rows.select(
                "_src",
                pl.lit(table).alias("table"),
                pl.col("_line").alias("line"),
                pl.lit(reason).alias("reason"),
                detail.alias("detail"),
                raw.alias("raw"),
                eid.cast(pl.String).alias("event_id"),
            )
        )

    # -- dedupe and references --------------------------------------------------------------------
    def dedupe(self, table: str, df: pl.DataFrame) -> pl.DataFrame:
        """Split rows by key into new / duplicate / conflict; returns the new rows with ``_hash``."""
        t = TABLES[table]
        cols = [*t.columns, "extra", "_ord"]
        self.con.register("inc_raw", df.select(cols).to_arrow())
        if t.key is None:
            hashes = query(self.con, f"SELECT {_hash_sql(table)} AS _hash FROM inc_raw ORDER BY _ord")
            self.con.unregister("inc_raw")
            return df.sort("_ord").with_columns(hashes["_hash"])
        keyed = "seq IS NOT NULL" if "seq" in t.key else "true"
        k_sql = _key_sql(t.key)
        status = query(
            self.con,
            f"""WITH i AS MATERIALIZED (
                   SELECT _ord, {_hash_sql(table)} AS _hash, CASE WHEN {keyed} THEN {k_sql} END AS _k FROM inc_raw),
                 ex AS (SELECT {k_sql} AS _k, list(_hash) AS hs FROM {quote_ident(table)}
                        WHERE {keyed} AND {k_sql} IN (SELECT _k FROM i WHERE _k IS NOT NULL) GROUP BY 1)
               SELECT i._ord, i._hash, CASE
                   WHEN i._k IS NULL THEN 'new'
                   WHEN ex.hs IS NOT NULL THEN CASE WHEN list_contains(ex.hs, i._hash) THEN 'duplicate'
                                                    ELSE 'conflict' END
                   WHEN row_number() OVER w = 1 THEN 'new'
                   WHEN i._hash = first_value(i._hash) OVER w THEN 'duplicate'
                   ELSE 'conflict' END AS _status
               FROM i LEFT JOIN ex USING (_k)
               WINDOW w AS (PARTITION BY i._k ORDER BY i._ord)""",
        )
        self.con.unregister("inc_raw")
        out = df.join(status, on="_ord", how="left")
        self.count(
            pl.col("_src"),
            table,
            "duplicate",
            out.filter(pl.col("_status") == "duplicate"),
        )
        self._reject_rows(
            table,
            out.filter(pl.col("_status") == "conflict"),
            "conflict",
            pl.lit(f"{'/'.join(t.key)} already ingested with different content"),
        )
        return out.filter(pl.col("_status") == "new").drop("_status").sort("_ord")

    def references(self, table: str, df: pl.DataFrame) -> pl.DataFrame:
        """Referential and uniqueness rules against the lake and this batch's accepted rows."""
        if table in ("orders", "fills"):
            need = df if table == "fills" else df.filter(pl.col("action") != "NEW")
            if need.height:
                self.con.register("need", need.select("order_id").unique().to_arrow())
                known = query(
                    self.con,
                    "SELECT order_id, any_value(symbol) AS o_symbol, any_value(side) AS o_side FROM orders "
                    "WHERE action = 'NEW' AND order_id IN (SELECT order_id FROM need) GROUP BY order_id",
                )
                self.con.unregister("need")
                batch_new = [
                    f.filter(pl.col("action") == "NEW").select(
                        "order_id",
                        pl.col("symbol").alias("o_symbol"),
                        pl.col("side").alias("o_side"),
                    )
                    for f in self.accepted.get("orders", [])
                ]
                if table == "orders":
                    batch_new.append(
                        df.filter(pl.col("action") == "NEW").select(
                            "order_id",
                            pl.col("symbol").alias("o_symbol"),
                            pl.col("side").alias("o_side"),
                        )
                    )
                known = pl.concat([known, *batch_new]).unique("order_id", keep="first")
                df = df.join(known, on="order_id", how="left")
                needs_order = pl.col("action") != "NEW" if table == "orders" else pl.lit(True)
                unknown = needs_order & pl.col("o_side").is_null()
                self._reject_rows(
                    table,
                    df.filter(unknown).drop("o_symbol", "o_side"),
                    "unknown_order",
                    pl.concat_str(
                        pl.lit("order_id '"),
                        pl.col("order_id"),
                        pl.lit("' has no NEW order event"),
                    ),
                )
                df = df.filter(~unknown)
                if table == "fills":
                    mismatch = (pl.col("symbol") != pl.col("o_symbol")) | (pl.col("side") != pl.col("o_side"))
                    # The detail needs the order's columns, which must not leak into the raw row.
                    detail = pl.concat_str(
                        pl.lit("fill is "),
                        pl.col("side"),
                        pl.lit(" "),
                        pl.col("symbol"),
                        pl.lit(" but its order is "),
                        pl.col("o_side"),
                        pl.lit(" "),
                        pl.col("o_symbol"),
                    )
                    self._reject_rows(
                        table,
                        df.filter(mismatch).with_columns(detail.alias("_detail")).drop("o_symbol", "o_side"),
                        "order_mismatch",
                        pl.col("_detail"),
                    )
                    df = df.filter(~mismatch)
                df = df.drop("o_symbol", "o_side")
        # After the order checks: a fill rejected for its order does not take its fill_id from a later fill.
        if table in _UNIQUE_IDS:
            col, where = _UNIQUE_IDS[table]
            cand = df.filter(pl.col("action") == "NEW") if table == "orders" else df
            self.con.register("ids", cand.select(col).unique().to_arrow())
            taken = query(
                self.con,
                f"SELECT DISTINCT {quote_ident(col)} FROM {quote_ident(table)} WHERE {where} "
                f"AND {quote_ident(col)} IN (SELECT {quote_ident(col)} FROM ids)",
            )
            self.con.unregister("ids")
            # Taken in the lake, or by an earlier event of this batch: the later event is the conflict.
            clash_ords = cand.sort("_ord").filter(
                pl.col(col).is_in(taken[col].implode()) | (pl.int_range(pl.len()).over(col) > 0)
            )["_ord"]
            clash = pl.col("_ord").is_in(clash_ords.implode())
            self._reject_rows(
                table,
                df.filter(clash),
                "conflict",
                pl.concat_str(
                    pl.lit(f"{col} '"),
                    pl.col(col),
                    pl.lit("' is already used by another event"),
                ),
            )
            df = df.filter(~clash)
        if table == "settlements" and df.height:
            self.con.register("need", df.select("fill_id").unique().to_arrow())
            known = query(self.con, "SELECT DISTINCT fill_id FROM fills WHERE fill_id IN (SELECT fill_id FROM need)")
            self.con.unregister("need")
            ids = pl.concat([known, *[f.select("fill_id") for f in self.accepted.get("fills", [])]])
            unknown = ~pl.col("fill_id").is_in(ids["fill_id"].implode())
            self._reject_rows(
                table,
                df.filter(unknown),
                "unknown_fill",
                pl.concat_str(
                    pl.lit("fill_id '"),
                    pl.col("fill_id"),
                    pl.lit("' is not a known fill"),
                ),
            )
            df = df.filter(~unknown)
        return df

    # -- the whole table -------------------------------------------------------------------------
    def process(self, table: str, df: pl.DataFrame) -> None:
        df = self.validated(table, df)
        df = self.dedupe(table, df)
        df = self.references(table, df)
        self.count(pl.col("_src"), table, "accepted", df)
        if table in ("orders", "fills"):
            keep = ["order_id", "symbol", "side", "action"] if table == "orders" else ["fill_id"]
            self.accepted.setdefault(table, []).append(df.select(keep))
        self.w.append(table, self._stored(table, df))

    def _stored(self, table: str, df: pl.DataFrame) -> pl.DataFrame:
        schema = TABLES[table].schema
        return df.with_columns(pl.lit(self.w.batch_id).alias("_batch")).select(
            [pl.col(c).cast(d) for c, d in schema.items()]
        )

    def stream_parquet(self, src: Source, table: str) -> None:
        """Market data without row keys: validate and write chunk by chunk (bounded memory)."""
        for chunk in _parquet_batches(src):
            chunk = _with_extra(chunk, table).with_columns(
                pl.lit(src.index, pl.Int64).alias("_src"),
                (pl.col("_line") + src.index * _ORD_FILE_STRIDE).alias("_ord"),
            )
            good = self.validated(table, chunk).with_columns(pl.lit(None, pl.String).alias("_hash"))
            self.count(src.index, table, "accepted", good)
            self.w.append(table, self._stored(table, good))

    # -- the ingest log --------------------------------------------------------------------------
    def ingested_files(self) -> dict[str, pl.DataFrame]:
        """Per-table read counts of every file committed before, by its SHA-256."""
        log = query(self.con, 'SELECT file_sha256, "table", read FROM ingests')
        return {sha: part for (sha,), part in log.partition_by("file_sha256", as_dict=True).items()}

    def log_rows(self, version: int) -> pl.DataFrame:
        c = self.counts().pivot("status", index=["_src", "table"], values="n", aggregate_function="sum")
        for s in ("accepted", "duplicate", "quarantined"):
            if s not in c.columns:
                c = c.with_columns(pl.lit(0, pl.Int64).alias(s))
        c = c.fill_null(0).with_columns(
            (pl.col("accepted") + pl.col("duplicate") + pl.col("quarantined")).alias("read")
        )
        meta = pl.DataFrame(
            {
                "_src": [s.index for s in self.sources],
                "source_file": [s.display for s in self.sources],
                "file_sha256": [s.sha256 for s in self.sources],
                "file_bytes": [s.size for s in self.sources],
                "format": [s.fmt for s in self.sources],
            },
            schema_overrides={"_src": pl.Int64, "file_bytes": pl.Int64},
        )
        return c.join(meta, on="_src").select(
            pl.lit(self.w.batch_id).alias("batch_id"),
            pl.lit(self.now).dt.cast_time_unit("us").dt.convert_time_zone("UTC").alias("ingested_at"),
            pl.lit(version, pl.Int64).alias("version"),
            "source_file",
            "file_sha256",
            "file_bytes",
            "format",
            "table",
            "read",
            "accepted",
            "duplicate",
            "quarantined",
        )


def ingest(
    paths: Iterable[str | Path],
    lake: Lake | None = None,
    type_name: str | None = None,
    display_names: dict[str, str] | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> IngestResult:
    """Ingest files or folders as one atomic batch. See the module docstring for the accounting.

    ``display_names`` maps a path (as given) to the name shown in the summary and the quarantine (the
    upload widget passes the uploaded file's name; the file itself lives under a name we chose).
    Raises :class:`IngestError` for an unreadable path or format, before the lake is touched.
    """
    lake = lake or Lake()
    sources = discover(paths, type_name)
    for s in sources:
        if display_names and str(s.path) in display_names:
            s.display = display_names[str(s.path)]
    with lake.writer() as w:
        b = _Batch(lake, w, sources)
        done = b.ingested_files()
        pending: dict[str, list[pl.DataFrame]] = {}
        file_status: dict[int, str] = {}
        seen_now: set[str] = set()
        # Market data that streams (Parquet quotes/trades without row keys) goes first, while nothing else is
        # held in memory; the order of processing changes no result.
        for i, src in enumerate(sorted(sources, key=lambda s: (not _streams(s), s.index))):
            if progress:
                progress(i / max(len(sources), 1) * 0.8, f"reading {src.path.name}")
            src.sha256, src.size = _sha256(src.path)
            if src.sha256 in done or src.sha256 in seen_now:
                # The very same bytes were ingested before: a no-op; its rows count as duplicates.
                file_status[src.index] = "already_ingested"
                prior = done.get(src.sha256)
                if prior is not None:
                    for table, n in prior.group_by("table").agg(pl.col("read").sum()).iter_rows():
                        b.tally.append(
                            pl.DataFrame(
                                {
                                    "_src": [src.index],
                                    "table": [table],
                                    "status": ["duplicate"],
                                    "n": [n],
                                }
                            )
                        )
                continue
            seen_now.add(src.sha256)
            file_status[src.index] = "ingested"
            if src.fmt == "jsonl":
                parsed = _read_jsonl(src, b.con)
            elif src.fmt == "csv":
                parsed = _read_csv(src, b.con)
            else:
                parsed = Parsed()
                schema_cols = pq.read_schema(src.path).names if _readable_parquet(src) else []
                table = _table_of_frame(src, schema_cols)
                if _streams(src):
                    b.stream_parquet(src, table)
                    continue
                df = pl.concat(list(_parquet_batches(src)), how="vertical_relaxed")
                if table == "__by_event_type":
                    _split_by_event_type(df, parsed)
                else:
                    parsed.add(table, _with_extra(df, table))
            if parsed.lines is not None:
                b.raw_lines[src.index] = parsed.lines
            for rej in parsed.rejects:
                b.reject_parsed(src, rej)
            for table, frames in parsed.frames.items():
                for f in frames:
                    if src.fmt != "jsonl":
                        b.src_cols.setdefault(table, {})[src.index] = [c for c in f.columns if not c.startswith("_")]
                    pending.setdefault(table, []).append(
                        f.with_columns(
                            pl.lit(src.index, pl.Int64).alias("_src"),
                            (pl.col("_line").cast(pl.Int64) + src.index * _ORD_FILE_STRIDE).alias("_ord"),
                        )
                    )
        for k, table in enumerate(INGEST_ORDER):
            if table in pending:
                if progress:
                    progress(0.8 + 0.15 * k / len(INGEST_ORDER), f"validating {table}")
                b.process(table, pl.concat(pending.pop(table), how="diagonal_relaxed"))
        if b.quarantine:
            w.append("quarantine", pl.concat(b.quarantine))
        if w.changed:
            w.append_at_commit("ingests", b.log_rows)  # stamped with the version the commit really produces
        counts = b.counts()
        b.con.close()
    version = w.committed_version or w.version_before
    result = IngestResult(w.version_before, version, w.batch_id if w.committed_version else None)
    for table, status, n in counts.group_by("table", "status").agg(pl.col("n").sum()).iter_rows():
        c = result.tables.setdefault(table, TableCounts())
        setattr(c, status, getattr(c, status) + n)
        c.read += n
    per_file = counts.group_by("_src", "status").agg(pl.col("n").sum())
    for s in sources:
        fc = {st: 0 for st in ("accepted", "duplicate", "quarantined")}
        for _, st, n in per_file.filter(pl.col("_src") == s.index).iter_rows():
            fc[st] += n
        result.files.append(
            {
                "path": s.display,
                "format": s.fmt,
                "status": file_status.get(s.index, "ingested"),
                "read": sum(fc.values()),
                **fc,
            }
        )
    if b.quarantine:
        q = pl.concat(b.quarantine)
        result.quarantine_reasons = dict(q.group_by("reason").len().iter_rows())
    if progress:
        progress(1.0, f"lake version {version}")
    return result


def _streams(src: Source) -> bool:
    """Whether a file is market data without row keys (Parquet quotes/trades, no ``seq``), which is
    validated and written in chunks instead of being held whole for deduplication."""
    if src.fmt != "parquet" or not _readable_parquet(src):
        return False
    cols = pq.read_schema(src.path).names
    return _table_of_frame(src, cols) in ("quotes", "trades") and "seq" not in cols


def _readable_parquet(src: Source) -> bool:
    try:
        pq.read_schema(src.path)
        return True
    except Exception as e:  # pyarrow raises several types for a broken file
        raise IngestError(f"{src.path}: not a readable Parquet file ({e})") from e
