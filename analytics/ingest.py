"""Ingest contract files (JSON Lines, CSV, Parquet) into the lake: validate, quarantine, hold, deduplicate, commit.

One call of :func:`ingest` is one atomic batch: either every accepted, quarantined and held row of all its
files becomes visible as the next lake version, or (on any error, crash or kill) nothing does.

Accounting, per table and per file: ``read = accepted + duplicate + quarantined + held``, where
- accepted: new rows written to the table;
- duplicate: rows already in the lake, or repeating an accepted row of the batch, with the same key and
  content (and every accepted row of a file whose exact bytes were ingested before);
- quarantined: rows rejected with a reason. Each is counted every time it is sent; the ``quarantine``
  table keeps one row per distinct rejected event (same table, reason and raw content), with its source
  file, line and raw content. A repeat of a rejected row is quarantined with it, never a duplicate.
- held: rows that arrived before their parent (a fill before its order's NEW, a REPLACE/CANCEL/DONE
  before NEW, a settlement before its fill). They wait in ``held_<table>`` and are accepted, with no
  command, by the batch in which the parent arrives (the same batch or a later one). Past the hold limit
  (:class:`analytics.validate.Limits`, arrival time, default 24 h) they are quarantined as ``unknown_order``
  / ``unknown_fill`` and still accepted if the parent comes later (the quarantine row is then resolved:
  ``held_released`` records ``accepted`` after ``expired``). ``IngestResult.held_before`` reports what
  became of rows held by earlier batches; they are not part of this batch's ``read``.
Lines that cannot be attributed to a table (not JSON, no known ``event_type``) count under ``unknown``.
JSON Lines are read in blocks of :data:`JSONL_BLOCK_BYTES` and row rules run per block, so the raw text of a
large file is never held whole (the quarantine reads a released block's lines again when it needs them).
A file whose exact bytes were ingested before is a no-op reported with its rows' standing (accepted and
duplicates as duplicate, quarantined as quarantined, held as held while they wait).

Idempotency: rows are identified by the table's key (``event_id`` for events, natural keys for reference
data, ``(symbol, venue, seq)`` for market data that carries ``seq``); the same key with different content
is quarantined as ``conflict``.

Referential and plausibility rules (reason codes, beside the row rules of :mod:`analytics.validate`):
``duplicate_key`` (a key twice in one JSON object),
``unknown_order`` / ``unknown_fill`` (held past the hold limit), ``order_mismatch`` (a fill's symbol or side
differs from its order's), ``fill_before_order`` (a fill dated before its order's NEW), ``overfill`` (the
order's fills would add up to more than its quantity, across batches), ``conflict`` (same key, different
content; or a second NEW for an ``order_id`` / a reused ``fill_id`` or ``decision_id`` under another
``event_id``).

The live engine holds out-of-order events through this same code path: holding is a function of the batch
and the lake snapshot (the held rows and their tombstones), so a stream that ingests micro-batches gets
the same outcome as one bulk batch of the same events.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq

from analytics.schema import (
    EVENT_TYPES,
    HOLDABLE,
    INGEST_ORDER,
    INTERNAL_TABLES,
    MARKET_KINDS,
    QUARANTINE_SCHEMA,
    RELEASED_SCHEMA,
    TABLES,
    held_table,
    table_for_name,
)
from analytics.store import Lake, StaleBaseError, query, quote_ident, sql_literal
from analytics.validate import DEFAULT_LIMITS, Limits, typed_frame, validate

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
    held: int = 0  # arrived before their parent (order, fill): waiting, see the module docstring

    def add(self, other: TableCounts) -> None:
        self.read += other.read
        self.accepted += other.accepted
        self.duplicate += other.duplicate
        self.quarantined += other.quarantined
        self.held += other.held


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
    # Rows held by earlier batches, per table, by what became of them in this batch: accepted (their parent
    # arrived), quarantined (the hold limit passed, or another rule failed once the parent was known),
    # duplicate, or still held. Not part of this batch's ``read``.
    held_before: dict[str, dict[str, int]] = field(default_factory=dict)

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
            "held_before": {t: dict(c) for t, c in sorted(self.held_before.items())},
            "files": self.files,
        }


# ---------------------------------------------------------------------------------------------------
# Discovering and reading sources
# ---------------------------------------------------------------------------------------------------
def format_of(name: str) -> str | None:
    """The format a file name says (``.jsonl``, ``.ndjson``, ``.csv``, ``.parquet``, ``.pq``; JSON Lines and
    CSV also gzipped, ``.jsonl.gz``), else None."""
    low = name.lower()
    if low.endswith(".gz"):
        inner = Path(low[:-3]).suffix
        return FORMATS[inner] if FORMATS.get(inner) in ("jsonl", "csv") else None
    return FORMATS.get(Path(low).suffix)


def table_hint(name: str) -> str | None:
    """The table a file name's first word names: ``fills_2026-03-02.parquet`` -> fills, and whole table
    names that have an underscore (``benchmark_weights_2026-03.csv``, ``factor_returns.csv``)."""
    stem = name.split(".")[0].replace("-", "_").lower()
    word = next((t for t in TABLES if stem == t or stem.startswith(t + "_")), stem.split("_")[0])
    return table_for_name(word)


def _walk(folder: Path) -> tuple[list[Path], list[dict]]:
    """Every file under ``folder``: (the data files, the skipped ones with a reason). Symbolic links are
    never followed out of the folder (a linked folder is not entered; a linked file must resolve inside)."""
    root = folder.resolve()
    found, skipped = [], []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        d = Path(dirpath)
        for name in sorted(dirnames):
            if (d / name).is_symlink():
                skipped.append({"path": str(d / name), "reason": "a symbolic link to a folder (not followed)"})
        for name in filenames:
            f = d / name
            rel = f.relative_to(folder)
            if any(part.startswith(("_", ".")) for part in rel.parts):
                # Like Hive and Spark, names starting with "_" or "." are metadata, not data (_faults.jsonl).
                why = "name starts with '_' or '.' (metadata, not data)"
            elif f.is_symlink() and not f.resolve().is_relative_to(root):
                why = "a symbolic link to a file outside the folder"
            elif not f.is_file():
                why = "not a regular file"
            elif format_of(name) is None:
                why = "unknown format (expected .jsonl, .ndjson, .csv, .parquet, or .jsonl.gz / .csv.gz)"
            else:
                found.append(f)
                continue
            skipped.append({"path": str(f), "reason": why})
    return sorted(found), sorted(skipped, key=lambda x: x["path"])


def discover(
    paths: Iterable[str | Path], type_name: str | None = None, display_names: dict[str, str] | None = None
) -> tuple[list[Source], list[dict]]:
    """Expand folders, check every path is readable and its format known: (the sources, the files found in
    folders and skipped, each with a reason). Raises :class:`IngestError` before anything is read or
    written."""
    if type_name is not None and type_name not in TABLES:
        raise IngestError(f"unknown --type {type_name!r}; one of: {', '.join(TABLES)}")

    def shown(p: Path) -> str:  # the name the user gave the file (an upload lives under a name we chose)
        return (display_names or {}).get(str(p), str(p))

    files: list[Path] = []
    skipped: list[dict] = []
    for p in map(Path, paths):
        if p.is_dir():
            found, skip = _walk(p)
            if not found:
                why = "; ".join(f"{Path(k['path']).name}: {k['reason']}" for k in skip[:5])
                raise IngestError(
                    f"{p}: folder has no .jsonl, .ndjson, .csv or .parquet file" + (f" (skipped {why})" if why else "")
                )
            files.extend(found)
            skipped.extend(skip)
        elif p.is_file():
            if format_of(p.name) is None:
                raise IngestError(
                    f"{shown(p)}: unknown format {p.suffix!r} (expected .jsonl, .ndjson, .csv, .parquet, .jsonl.gz or .csv.gz)"
                )
            files.append(p)
        elif p.exists():
            raise IngestError(f"{shown(p)}: not a regular file or folder")
        else:
            raise IngestError(f"{shown(p)}: no such file or folder")
    out = []
    for i, f in enumerate(files):
        try:
            with open(f, "rb"):
                pass
        except OSError as e:
            raise IngestError(f"{shown(f)}: cannot be read ({e.strerror})") from e
        out.append(Source(f, format_of(f.name), type_name, table_hint(f.name), i, shown(f)))
    return out, skipped


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


JSONL_BLOCK_BYTES = 64 << 20  # JSON Lines are read in blocks of about this many bytes (bounded memory)


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _jsonl_blocks(path: Path, block: int | None = None) -> Iterable[tuple[int, list[bytes]]]:
    """(number of the first line, the lines) of a JSON Lines file, a block of whole lines at a time, with
    the line rules of :func:`_jsonl_lines` (BOM, CR, CRLF), so that line numbers never depend on the block
    size."""
    block = block or JSONL_BLOCK_BYTES
    first, carry, start = 1, b"", True
    with _open(path) as fh:
        while True:
            data = fh.read(block)
            if data and data.endswith(b"\r"):  # keep a CRLF pair in one block
                data += fh.read(1)
            if start:
                data, start = data.removeprefix(b"\xef\xbb\xbf"), False
            buf = carry + data
            if not data:
                if buf:
                    yield first, _jsonl_lines(buf)
                return
            if b"\r" in buf:
                buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            cut = buf.rfind(b"\n")
            if cut < 0:
                carry = buf
                continue
            lines, carry = buf[:cut].split(b"\n"), buf[cut + 1 :]
            yield first, lines
            first += len(lines)


def _pick_lines(path: Path, wanted: set[int]) -> pl.DataFrame:
    """(line, text) of the lines numbered ``wanted`` of a JSON Lines file, read again block by block (for
    the quarantine's raw content of rows rejected after their block was released)."""
    out: list[tuple[int, str]] = []
    for first, lines in _jsonl_blocks(path):
        for n in sorted(w for w in wanted if first <= w < first + len(lines)):
            out.append((n, _utf8_or_none(lines[n - first])))
    return pl.DataFrame(out, schema={"line": pl.Int64, "text": pl.String}, orient="row")


def _read_jsonl(src: Source, con: duckdb.DuckDBPyConnection) -> Iterable[Parsed]:
    """JSON Lines, a block of lines at a time (:data:`JSONL_BLOCK_BYTES`): one :class:`Parsed` per block."""
    for first, lines in _jsonl_blocks(src.path):
        yield _parse_jsonl_block(src, con, lines, first)


def _parse_jsonl_block(src: Source, con: duckdb.DuckDBPyConnection, lines: list[bytes], first: int) -> Parsed:
    """JSON Lines: each line one event; ``event_type`` (and ``kind`` for market data) picks the table,
    else the file's table hint. Blank lines are ignored; anything else that is not a JSON object is
    quarantined as ``unparseable``. Row frames carry ``_line`` but not the line itself: the text of the
    block's lines is kept once, in ``Parsed.lines``, for the few rows that end up in the quarantine."""
    raw = pl.Series("raw", lines, dtype=pl.Binary)
    try:
        text = raw.cast(pl.String)
        raw = None  # all UTF-8: the bytes are not needed again
    except pl.exceptions.ComputeError:  # a line is not UTF-8: the cast raises even with strict=False
        text = pl.Series([_utf8_or_none(b) for b in lines], dtype=pl.String)
    del lines
    lf = pl.DataFrame({"line": pl.int_range(first, first + len(text), eager=True, dtype=pl.Int64), "text": text})
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
        # A key twice in one object ({"quantity": 10, "quantity": -10}) has no single meaning: quarantined as
        # duplicate_key, whichever value a parser would keep (top-level keys).
        df = query(
            con,
            f"""SELECT line AS _line, {cols},
                       CASE WHEN len(list_filter(keys, lambda k: NOT list_contains(?::VARCHAR[], k))) > 0
                            THEN json_merge_patch(raw, {patch}) END AS extra,
                       CASE WHEN len(keys) > len(list_distinct(keys)) THEN array_to_string(
                            list_filter(list_distinct(keys), lambda x: len(list_filter(keys, lambda y: y = x)) > 1),
                            ', ') END AS _dupkeys
                FROM (SELECT line, raw, json_keys(raw) AS keys, {src_struct} AS v
                      FROM jt JOIN jl USING (line) WHERE tbl = ?) ORDER BY line""",
            [known, t.name],
        )
        dup = df.filter(pl.col("_dupkeys").is_not_null())
        if dup.height:
            parsed.rejects.append(
                dup.select(
                    pl.lit(t.name).alias("table"),
                    pl.col("_line").alias("line"),
                    pl.lit("duplicate_key").alias("reason"),
                    pl.concat_str(pl.lit("key appears more than once: "), pl.col("_dupkeys")).alias("detail"),
                    pl.lit(None, pl.String).alias("raw"),
                )
            )
        parsed.add(t.name, df.filter(pl.col("_dupkeys").is_null()).drop("_dupkeys"))
    con.execute("DROP VIEW IF EXISTS jt; DROP TABLE IF EXISTS jr")
    con.unregister("jl")
    con.unregister("jbad")
    return parsed


def _jsonl_lines(data: bytes) -> list[bytes]:
    """The lines of a JSON Lines text: a UTF-8 byte-order mark at the start is dropped, and ``\n``,
    ``\r\n`` and a lone ``\r`` (old Mac files) all end a line (JSON escapes CR and LF inside strings, so
    neither can be part of an event)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data.split(b"\n")


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
        f"{src.display}: cannot tell which table this file holds: name it after its table "
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


_USER = "\x00"  # prefix of a user column whose name starts with "_" or is "extra" (see _protect)


def _protect(df: pl.DataFrame) -> pl.DataFrame:
    """Rename the user's columns that could collide with internal ones (``_raw``, ``_line``, any name starting
    with ``_``, and ``extra``) before any internal column is added: they are kept as extra fields under their
    own names, and never taken for the row's line, source or raw content."""
    clash = {c: _USER + c for c in df.columns if c.startswith("_") or c == "extra"}
    return df.rename(clash) if clash else df


def _user_name(c: str) -> str:
    return c.removeprefix(_USER)


def _row_json(df: pl.DataFrame) -> pl.Expr:
    """The row's received fields (not the internal ``_``/``__t_`` columns) as a JSON object."""
    cols = [c for c in df.columns if not c.startswith("_")]
    return pl.struct([pl.col(c).cast(pl.String).alias(_user_name(c)) for c in cols]).struct.json_encode()


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
        own = pl.struct(
            [pl.col(c).cast(pl.String).alias(_user_name(c)) for c in cols if c in df.columns]
        ).struct.json_encode()
        as_json = pl.when(pl.col("_src") == i).then(own).otherwise(as_json)
    return pl.coalesce(pl.col("_raw"), as_json) if "_raw" in df.columns else as_json


def _with_extra(df: pl.DataFrame, table: str) -> pl.DataFrame:
    """Pack columns beyond the contract into the ``extra`` JSON column (kept, not rejected)."""
    known = set(TABLES[table].columns) | {"event_type", "kind"}
    extras = [c for c in df.columns if c not in known and not c.startswith("_")]
    if not extras:
        return df.with_columns(pl.lit(None, pl.String).alias("extra"))
    enc = pl.struct([pl.col(c).alias(_user_name(c)) for c in extras]).struct.json_encode()
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
        raise IngestError(f"{src.display}: not a readable CSV file ({str(e).splitlines()[0]})") from e
    df = _protect(df)
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
        raise IngestError(f"{src.display}: not a readable Parquet file ({e})") from e
    scan = pl.scan_parquet(src.path)
    for offset in range(0, max(n, 1), STREAM_BATCH_ROWS):
        df = _protect(scan.slice(offset, STREAM_BATCH_ROWS).collect())
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
    def __init__(self, lake: Lake, writer, sources: list[Source], limits: Limits, now: dt.datetime):
        self.lake = lake
        self.w = writer
        self.sources = sources
        self.limits = limits
        self.now = now
        self.tally: list[pl.DataFrame] = []  # columns: _src, table, status, n
        self.released: list[pl.DataFrame] = []  # the same, for rows held by earlier batches (_src < 0)
        self.quarantine: list[pl.DataFrame] = []
        self.tombstones: list[pl.DataFrame] = []  # held_released rows of this batch
        self.reasons: list[pl.DataFrame] = []  # (reason, n) of this batch's quarantined rows
        self.echoes: pl.DataFrame | None = None
        self.rejected_ords: list[pl.DataFrame] = []  # (_ord, reason) of the current table's rejected rows
        self.accepted: dict[str, list[pl.DataFrame]] = {}  # key columns of rows accepted in this batch
        self.src_cols: dict[str, dict[int, list[str]]] = {}  # table -> file index -> the file's columns
        self.raw_lines: dict[int, pl.DataFrame] = {}  # JSON Lines file index -> (line, text)
        self.waiting: dict[str, pl.DataFrame] = {}  # table -> (_ord, _expired) of rows still held after it
        self.con = lake.connect(writer.base)

    # -- accounting ------------------------------------------------------------------------------
    def count(self, src: pl.Expr | int, table: str, status: str, df: pl.DataFrame) -> None:
        """Tally ``df``'s rows under ``status``; rows held by an earlier batch (``_src`` < 0) go to the
        released tally, not to this batch's counts."""
        if df.height == 0:
            return
        s = pl.lit(src) if isinstance(src, int) else src
        n = (
            df.with_columns(s.cast(pl.Int64).alias("_src"))  # with_columns: a literal fills every row
            .group_by("_src")
            .len("n")
            .with_columns(pl.lit(table).alias("table"), pl.lit(status).alias("status"))
            .select("_src", "table", "status", pl.col("n").cast(pl.Int64))
        )
        self.tally.append(n.filter(pl.col("_src") >= 0))
        self.released.append(n.filter(pl.col("_src") < 0))

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
    def received(self, q: pl.DataFrame) -> pl.DataFrame:
        """``q`` (columns _src, line, raw) with ``raw`` replaced, for rows of JSON Lines files, by the line
        itself exactly as received."""
        for idx, lines in self.raw_lines.items():
            if q["_src"].eq(idx).any():
                first = lines["line"].min() if lines.height else None
                want = {n for n in q.filter(pl.col("_src") == idx)["line"].to_list() if first is None or n < first}
                if want:  # rejected after their block was released: read those lines again
                    src = next(s for s in self.sources if s.index == idx)
                    lines = pl.concat([lines, _pick_lines(src.path, want)])
                own = lines.select(pl.lit(idx, pl.Int64).alias("_src"), "line", pl.col("text").alias("_text"))
                q = (
                    q.join(own, on=["_src", "line"], how="left")
                    .with_columns(pl.coalesce("_text", "raw").alias("raw"))
                    .drop("_text")
                )
        return q

    def source_names(self, q: pl.DataFrame) -> pl.Expr:
        """The file each row came from, as shown to the user (rows held earlier carry theirs)."""
        names = {s.index: s.display for s in self.sources}
        own = pl.col("_src").replace_strict(names, default=None, return_dtype=pl.String)
        return pl.coalesce(pl.col("_source_file"), own) if "_source_file" in q.columns else own

    def reject(self, q: pl.DataFrame) -> None:
        """Quarantine rows (columns _src, table, line, reason, detail, raw, event_id; optional _dedupe,
        _source_file).

        Every rejected row counts as quarantined. An identical rejected row (same table, reason and raw
        content) already in the quarantine, in the lake or earlier in this batch, is not stored a second
        time: the quarantine keeps one row per distinct bad event. Rows with ``_dedupe`` false are stored
        every time: market data without ``seq`` and unparseable lines have no identity, so two equal bad
        quotes are two bad quotes (as two equal good quotes are two quotes)."""
        if q.height == 0:
            return
        q = q.with_columns(
            pl.col("raw").cast(pl.String).fill_null(""),
            pl.col("line").cast(pl.Int64),
            pl.int_range(pl.len(), dtype=pl.Int64).alias("_qi"),
        )
        if "_dedupe" not in q.columns:
            q = q.with_columns(pl.lit(True).alias("_dedupe"))
        q = self.received(q)
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
        for (table,), part in q.partition_by("table", as_dict=True).items():
            self.count(pl.col("_src"), table, "quarantined", part)
        self.reasons.append(q.filter(pl.col("_src") >= 0).group_by("reason").len("n"))
        new = q.filter(~pl.col("seen"))
        self.quarantine.append(
            new.select(
                pl.lit(self.w.batch_id).alias("batch_id"),
                self._now_lit().alias("ingested_at"),
                self.source_names(new).alias("source_file"),
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
        v = validate(table, df, self.limits, self.now)
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
        return pl.concat([typed_frame(table, good), good.select("_src", "_line", "_ord")], how="horizontal")

    def _reject_rows(self, table: str, rows: pl.DataFrame, reason: str, detail: pl.Expr) -> None:
        if rows.height == 0:
            return
        self.rejected_ords.append(rows.select("_ord", pl.lit(reason).alias("reason")))
        raw = _raw_expr(rows, self.src_cols.get(table))
        eid = pl.col("event_id") if "event_id" in rows.columns else pl.lit(None, pl.String)
        keep = ["_source_file"] if "_source_file" in rows.columns else []
        self.reject(
            rows.select(
                "_src",
                pl.lit(table).alias("table"),
                pl.col("_line").alias("line"),
                pl.lit(reason).alias("reason"),
                detail.alias("detail"),
                raw.alias("raw"),
                eid.cast(pl.String).alias("event_id"),
                *keep,
            )
        )

    # -- dedupe and references --------------------------------------------------------------------
    def dedupe(self, table: str, df: pl.DataFrame) -> pl.DataFrame:
        """Split rows by key into new / duplicate / conflict; returns the new rows with ``_hash``.

        A row equal to an earlier row of this batch, or to a row still held from an earlier batch (an
        "echo": the same fill sent twice, or again while its order is still missing), is not counted here:
        it shares the first row's fate, which :meth:`settle` reports once the references are checked (a
        duplicate if that row is accepted, held or quarantined with it otherwise)."""
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
                   WHEN i._hash = first_value(i._hash) OVER w THEN 'echo'
                   ELSE 'conflict' END AS _status,
                   first_value(i._ord) OVER w AS _first_ord
               FROM i LEFT JOIN ex USING (_k)
               WINDOW w AS (PARTITION BY i._k ORDER BY i._ord)""",
        )
        self.con.unregister("inc_raw")
        out = df.join(status, on="_ord", how="left")
        if "seq" in t.key:  # market data without seq: recognised by content against the lake
            loose = out.filter(pl.col("_status").eq("new") & pl.col("seq").is_null())
            seen = self.content_seen(table, loose)
            if seen.len():
                out = out.with_columns(
                    pl.when(pl.col("_ord").is_in(seen.implode()))
                    .then(pl.lit("duplicate"))
                    .otherwise("_status")
                    .alias("_status")
                )
        self.count(pl.col("_src"), table, "duplicate", out.filter(pl.col("_status") == "duplicate"))
        self._reject_rows(
            table,
            out.filter(pl.col("_status") == "conflict"),
            "conflict",
            pl.lit(f"{'/'.join(t.key)} already ingested with different content"),
        )
        self.echoes = out.filter(pl.col("_status") == "echo").select("_src", "_ord", "_first_ord")
        return out.filter(pl.col("_status") == "new").drop("_status", "_first_ord").sort("_ord")

    def content_seen(self, table: str, df: pl.DataFrame) -> pl.Series:
        """``_ord`` of the rows of ``df`` (typed market data with ``_hash``, no ``seq``) whose content the lake
        already holds: a re-sent feed without sequence numbers (issue 15 item 11).

        Rows are compared as a multiset of content hashes over the lake's rows of the same days and symbols:
        a content the lake holds n times makes at most the first n equal rows of the batch duplicates (two
        equal trades in one second are two trades; the same file sent twice is all duplicates). Costs nothing
        when the lake has no file of this table in the rows' date range (a first load)."""
        none = pl.Series("_ord", [], dtype=pl.Int64)
        if df.height == 0:
            return none
        lo, hi = df["ts"].min().date(), df["ts"].max().date()
        if not self.lake.files(table, lo, hi, self.w.base):
            return none
        self.con.register("c_in", df.select("_ord", "_hash", "symbol").to_arrow())
        rel = self.lake.scan(self.con, table, lo, hi)
        lake_counts = rel.query(
            "lk",
            f"""SELECT {_hash_sql(table)} AS _hash, count(*) AS n FROM lk
                WHERE symbol IN (SELECT DISTINCT symbol FROM c_in) AND seq IS NULL GROUP BY 1""",
        ).pl()
        self.con.unregister("c_in")
        if lake_counts.height == 0:
            return none
        d = df.select("_ord", "_hash").join(lake_counts, on="_hash", how="inner")
        return d.filter(pl.int_range(pl.len()).over("_hash", order_by="_ord") < pl.col("n"))["_ord"]

    def references(self, table: str, df: pl.DataFrame) -> pl.DataFrame:
        """Referential, uniqueness and plausibility rules against the lake and this batch's accepted rows.
        Rows whose parent is missing are held (:meth:`hold`), not rejected."""
        if table in ("orders", "fills"):
            need = df if table == "fills" else df.filter(pl.col("action") != "NEW")
            if need.height:
                self.con.register("need", need.select("order_id").unique().to_arrow())
                known = query(
                    self.con,
                    "SELECT order_id, any_value(symbol) AS o_symbol, any_value(side) AS o_side, min(ts) AS o_ts "
                    "FROM orders WHERE action = 'NEW' AND order_id IN (SELECT order_id FROM need) GROUP BY order_id",
                )
                sizes = query(
                    self.con,
                    """SELECT o.order_id, o.o_qty, coalesce(f.filled, 0) AS o_filled
                       FROM (SELECT order_id, max(quantity) AS o_qty FROM orders
                             WHERE order_id IN (SELECT order_id FROM need) GROUP BY 1) o
                       LEFT JOIN (SELECT order_id, sum(quantity) AS filled FROM fills
                                  WHERE order_id IN (SELECT order_id FROM need) GROUP BY 1) f USING (order_id)""",
                )
                self.con.unregister("need")
                batch_orders = [*self.accepted.get("orders", [])]
                if table == "orders":
                    batch_orders.append(df.select("order_id", "symbol", "side", "action", "quantity", "ts"))
                batch_new = [
                    f.filter(pl.col("action") == "NEW").select(
                        "order_id",
                        pl.col("symbol").alias("o_symbol"),
                        pl.col("side").alias("o_side"),
                        pl.col("ts").alias("o_ts"),
                    )
                    for f in batch_orders
                ]
                known = pl.concat([known, *batch_new], how="vertical_relaxed").unique("order_id", keep="first")
                df = df.join(known, on="order_id", how="left")
                needs_order = pl.col("action") != "NEW" if table == "orders" else pl.lit(True)
                unknown = needs_order & pl.col("o_side").is_null()
                self.hold(
                    table,
                    df.filter(unknown).drop("o_symbol", "o_side", "o_ts"),
                    pl.concat_str(
                        pl.lit("order_id '"),
                        pl.col("order_id"),
                        pl.lit("' has no NEW order event"),
                    ),
                )
                df = df.filter(~unknown)
                if table == "fills":
                    df = self._fill_rules(df, sizes, batch_orders)
                df = df.drop("o_symbol", "o_side", "o_ts")
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
            self.hold(
                table,
                df.filter(unknown),
                pl.concat_str(
                    pl.lit("fill_id '"),
                    pl.col("fill_id"),
                    pl.lit("' is not a known fill"),
                ),
            )
            df = df.filter(~unknown)
        return df

    def _fill_rules(self, df: pl.DataFrame, sizes: pl.DataFrame, batch_orders: list[pl.DataFrame]) -> pl.DataFrame:
        """Fills of known orders: ``order_mismatch`` (symbol or side differs from the order's),
        ``fill_before_order`` (``ts`` before the order's NEW), then ``overfill``.

        Overfill: the order's quantity is the largest it ever had (NEW or REPLACE, in the lake or this batch);
        the fills already in the lake count first, then this batch's fills in time order (ties by arrival):
        a fill is accepted while the order's filled total stays within its quantity (1e-9 relative
        tolerance), and a fill that would take it past is quarantined, leaving room for later smaller fills.
        """
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
        internal = ["o_symbol", "o_side", "o_ts"]
        bad = df.filter(mismatch).with_columns(detail.alias("_detail")).drop(internal)
        self._reject_rows("fills", bad, "order_mismatch", pl.col("_detail"))
        df = df.filter(~mismatch)
        early = pl.col("ts") < pl.col("o_ts")
        early_detail = pl.concat_str(
            pl.lit("fill at "),
            pl.col("ts").cast(pl.String),
            pl.lit(" is before its order's NEW at "),
            pl.col("o_ts").cast(pl.String),
        )
        bad = df.filter(early).with_columns(early_detail.alias("_detail")).drop(internal)
        self._reject_rows("fills", bad, "fill_before_order", pl.col("_detail"))
        df = df.filter(~early)
        # Order quantities: the lake's, raised by any NEW/REPLACE quantity of this batch.
        qty = (
            pl.concat(
                [
                    sizes.select("order_id", "o_qty"),
                    *[f.select("order_id", pl.col("quantity").alias("o_qty")) for f in batch_orders],
                ],
                how="vertical_relaxed",
            )
            .group_by("order_id")
            .agg(pl.col("o_qty").max())
        )
        # Only orders whose lake total plus this batch's fills pass their quantity need the fill-by-fill
        # walk below (nearly always none): the per-order sums are small, the fills are not copied.
        totals = (
            df.group_by("order_id")
            .agg(pl.col("quantity").sum().alias("batch_qty"))
            .join(qty, on="order_id", how="left")
            .join(sizes.select("order_id", "o_filled"), on="order_id", how="left")
            .with_columns(pl.col("o_filled").fill_null(0.0))
        )
        suspect = totals.filter(pl.col("o_filled") + pl.col("batch_qty") > pl.col("o_qty") * (1 + 1e-9))
        if suspect.height == 0:
            return df
        d = (
            df.filter(pl.col("order_id").is_in(suspect["order_id"].implode()))
            .join(suspect.select("order_id", "o_qty", "o_filled"), on="order_id", how="left")
            .sort("ts", "_ord")
        )
        cap = pl.col("o_qty") * (1 + 1e-9)
        over = (pl.col("o_filled") + pl.col("quantity").cum_sum().over("order_id")) > cap
        viol = d.filter(over)["order_id"].unique()
        if viol.len() == 0:
            return df
        # Only orders whose running total passes their quantity (rare) are walked fill by fill.
        bad_ords: list[int] = []
        for part in d.filter(pl.col("order_id").is_in(viol.implode())).partition_by("order_id"):
            room = part["o_qty"][0] * (1 + 1e-9) - part["o_filled"][0]
            for o, q in zip(part["_ord"], part["quantity"], strict=True):
                if q <= room:
                    room -= q
                else:
                    bad_ords.append(o)
        bad = d.filter(pl.col("_ord").is_in(pl.Series(bad_ords, dtype=pl.Int64).implode()))
        self._reject_rows(
            "fills",
            bad.drop("o_qty", "o_filled", "o_symbol", "o_side", "o_ts"),
            "overfill",
            pl.lit("the order's fills would add up to more than its quantity"),
        )
        return df.filter(~pl.col("_ord").is_in(pl.Series(bad_ords, dtype=pl.Int64).implode()))

    # -- rows that arrived before their parent ------------------------------------------------------
    def pending(self, table: str) -> pl.DataFrame | None:
        """Rows of ``table`` held by earlier batches and still waiting (no final tombstone), oldest first,
        as typed rows with ``_src`` = -1 and negative ``_ord`` (they arrived before this batch)."""
        name = held_table(table)
        if not self.w.base.entries(name):
            return None
        cols = ", ".join(f"h.{quote_ident(c)}" for c in [*TABLES[table].columns, "extra"])
        df = query(
            self.con,
            f"""WITH r AS (SELECT event_id, _hash, bool_or(outcome <> 'expired') AS final,
                                  bool_or(outcome = 'expired') AS expired
                           FROM held_released WHERE "table" = ? GROUP BY ALL)
                SELECT {cols}, h._held_at, h._source_file, h._line, h._raw, coalesce(r.expired, false) AS _expired
                FROM {quote_ident(name)} h LEFT JOIN r ON r.event_id = h.event_id AND r._hash = h._hash
                WHERE NOT coalesce(r.final, false)
                QUALIFY row_number() OVER (PARTITION BY h.event_id, h._hash ORDER BY h._held_at, h._line) = 1
                ORDER BY h._held_at, h._source_file, h._line""",
            [table],
        )
        if df.height == 0:
            return None
        return df.with_columns(
            pl.lit(-1, pl.Int64).alias("_src"),
            (pl.int_range(pl.len(), dtype=pl.Int64) - pl.len()).alias("_ord"),
        )

    def hold(self, table: str, rows: pl.DataFrame, detail: pl.Expr) -> None:
        """Rows whose parent is missing. Rows of this batch are written to ``held_<table>``; a row held
        longer than the hold limit (arrival time) is quarantined as ``unknown_order``/``unknown_fill`` once
        (tombstone ``expired``) and keeps waiting for its parent."""
        self.waiting[table] = pl.DataFrame(schema={"_ord": pl.Int64, "_expired": pl.Boolean})
        if rows.height == 0:
            return
        if "_held_at" not in rows.columns:
            rows = rows.with_columns(pl.lit(None, pl.Datetime("us", "UTC")).alias("_held_at"))
        if "_expired" not in rows.columns:
            rows = rows.with_columns(pl.lit(None, pl.Boolean).alias("_expired"))
        now = self._now_lit()
        rows = rows.with_columns(pl.col("_held_at").fill_null(now), pl.col("_expired").fill_null(False))
        expire = ~pl.col("_expired") & (pl.col("_held_at") + pl.lit(self.limits.hold_limit) <= now)
        new = rows.filter(pl.col("_src") >= 0)
        if new.height:
            raw = self.received(
                new.select("_src", pl.col("_line").alias("line"), _raw_expr(new, self.src_cols.get(table)).alias("raw"))
            )["raw"]
            stored = new.with_columns(
                raw.alias("_raw"),
                self.source_names(new).alias("_source_file"),
                pl.lit(self.w.batch_id).alias("_batch"),
            )
            self.w.append(
                held_table(table),
                stored.select([pl.col(c).cast(d) for c, d in INTERNAL_TABLES[held_table(table)].items()]),
            )
        gone = rows.filter(expire)
        self._reject_rows(table, gone, HOLDABLE[table], detail)
        self.tombstone(table, gone, "expired")
        self.count(pl.col("_src"), table, "held", rows.filter(~expire & ~pl.col("_expired")))
        self.waiting[table] = rows.select("_ord", (pl.col("_expired") | expire).alias("_expired"))

    def _now_lit(self) -> pl.Expr:
        """The batch's arrival time as the lake stores timestamps (UTC, microseconds)."""
        return pl.lit(self.now).dt.cast_time_unit("us").dt.convert_time_zone("UTC")

    def tombstone(self, table: str, rows: pl.DataFrame, outcome: str) -> None:
        if rows.height:
            self.tombstones.append(
                rows.select(
                    pl.lit(self.w.batch_id).alias("batch_id"),
                    self._now_lit().alias("released_at"),
                    pl.lit(table).alias("table"),
                    "event_id",
                    "_hash",
                    pl.lit(outcome).alias("outcome"),
                ).cast(RELEASED_SCHEMA)
            )

    def settle(self, table: str, pend: pl.DataFrame | None, accepted: pl.DataFrame) -> None:
        """Tombstones for the rows held earlier that this batch settled, and the counts of echoes (rows
        equal to an earlier row of the batch or to a held row): duplicate if that row was accepted, held if
        it is still waiting, quarantined if it expired or was rejected."""
        echoes = self.echoes
        self.echoes = None
        waiting = self.waiting.get(table, pl.DataFrame(schema={"_ord": pl.Int64, "_expired": pl.Boolean}))
        if pend is not None:
            acc = accepted.filter(pl.col("_src") < 0)
            self.tombstone(table, acc, "accepted")
            # _hash of the held rows: recomputed by dedupe for every row, kept on the accepted ones; the others
            # get it from the held table (the same content gives the same hash).
            done = set(acc["_ord"].to_list()) | set(waiting["_ord"].to_list())
            rejected = pend.filter(~pl.col("_ord").is_in(list(done)))
            if rejected.height:
                hashes = self._hashes(table, rejected)
                self.tombstone(table, rejected.with_columns(hashes), "rejected")
        if echoes is None or echoes.height == 0:
            return
        fate = pl.concat(
            [
                accepted.select("_ord", pl.lit("duplicate").alias("fate")),
                waiting.select(
                    "_ord",
                    pl.when(pl.col("_expired")).then(pl.lit("quarantined")).otherwise(pl.lit("held")).alias("fate"),
                ),
            ]
        ).rename({"_ord": "_first_ord"})
        e = echoes.join(fate, on="_first_ord", how="left").with_columns(pl.col("fate").fill_null("quarantined"))
        for (status,), part in e.partition_by("fate", as_dict=True).items():
            self.count(pl.col("_src"), table, status, part)
        # A quarantined echo counts under its first row's reason (an expired held row: unknown_order/_fill).
        why = pl.concat([*self.rejected_ords, pl.DataFrame(schema={"_ord": pl.Int64, "reason": pl.String})])
        q = e.filter((pl.col("fate") == "quarantined") & (pl.col("_src") >= 0))
        if q.height:
            q = q.join(why.rename({"_ord": "_first_ord"}), on="_first_ord", how="left")
            self.reasons.append(
                q.select(pl.col("reason").fill_null(HOLDABLE.get(table, "conflict"))).group_by("reason").len("n")
            )

    def _hashes(self, table: str, df: pl.DataFrame) -> pl.Series:
        self.con.register("h_in", df.select([*TABLES[table].columns, "extra", "_ord"]).to_arrow())
        h = query(self.con, f"SELECT _ord, {_hash_sql(table)} AS _hash FROM h_in")
        self.con.unregister("h_in")
        return df.select("_ord").join(h, on="_ord", how="left")["_hash"]

    # -- the whole table -------------------------------------------------------------------------
    def process(self, table: str, df: pl.DataFrame | None) -> None:
        """Validate, deduplicate, check references and write one table's rows of the batch, together with
        the rows of that table still held from earlier batches (which may now find their parent)."""
        self.rejected_ords = []
        if df is not None and TABLES[table].weight_group:
            df = self.validated(table, df)
        pend = self.pending(table) if table in HOLDABLE else None
        if pend is not None:
            df = pend if df is None else pl.concat([pend, df], how="diagonal_relaxed")
        if df is None:
            return
        df = self.dedupe(table, df)
        df = self.references(table, df)
        self.count(pl.col("_src"), table, "accepted", df)
        self.settle(table, pend, df)
        if table in ("orders", "fills"):
            keep = ["order_id", "symbol", "side", "action", "quantity", "ts"] if table == "orders" else ["fill_id"]
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
            lo, hi = (good["ts"].min(), good["ts"].max()) if good.height else (None, None)
            if lo is not None and self.lake.files(table, lo.date(), hi.date(), self.w.base):
                good = good.drop("_hash").with_columns(self._hashes(table, good))
                seen = self.content_seen(table, good)
                dup = pl.col("_ord").is_in(seen.implode())
                self.count(src.index, table, "duplicate", good.filter(dup))
                good = good.filter(~dup)
            self.count(src.index, table, "accepted", good)
            self.w.append(table, self._stored(table, good))

    # -- the ingest log --------------------------------------------------------------------------
    def ingested_files(self) -> dict[str, pl.DataFrame]:
        """Per-table counts of the first ingest of every file committed before, by its SHA-256 (later sends
        of the same bytes were no-ops: their log rows repeat, they do not add)."""
        log = query(
            self.con,
            """SELECT file_sha256, batch_id, source_file, "table", read, accepted, duplicate, quarantined FROM ingests
               QUALIFY batch_id = first_value(batch_id) OVER (PARTITION BY file_sha256 ORDER BY ingested_at, batch_id)""",
        )
        return {sha: part for (sha,), part in log.partition_by("file_sha256", as_dict=True).items()}

    def resent_counts(self, src: int, prior: pl.DataFrame) -> pl.DataFrame:
        """Counts of a file whose bytes were ingested before, as things stand now: what was accepted or a
        duplicate then is a duplicate; what was quarantined is quarantined again; of the rows it had held,
        those still waiting are held, those that expired are quarantined, and those since accepted are
        duplicates."""
        rows = []
        for r in prior.iter_rows(named=True):
            t, held = r["table"], r["read"] - r["accepted"] - r["duplicate"] - r["quarantined"]
            waiting = expired = 0
            if held and t in HOLDABLE and self.w.base.entries(held_table(t)):
                waiting, expired = self.con.execute(
                    f"""WITH r AS (SELECT event_id, _hash, bool_or(outcome <> 'expired') AS final,
                                          bool_or(outcome = 'expired') AS expired
                                   FROM held_released WHERE "table" = ? GROUP BY ALL)
                        SELECT count(*) FILTER (WHERE r.event_id IS NULL),
                               count(*) FILTER (WHERE r.expired AND NOT r.final)
                        FROM {quote_ident(held_table(t))} h
                        LEFT JOIN r ON r.event_id = h.event_id AND r._hash = h._hash
                        WHERE h._batch = ? AND h._source_file = ?""",
                    [t, r["batch_id"], r["source_file"]],
                ).fetchall()[0]
            n = {
                "duplicate": r["accepted"] + r["duplicate"] + held - waiting - expired,
                "quarantined": r["quarantined"] + expired,
                "held": waiting,
            }
            rows += [{"_src": src, "table": t, "status": k, "n": v} for k, v in n.items() if v]
        return pl.DataFrame(rows, schema={"_src": pl.Int64, "table": pl.String, "status": pl.String, "n": pl.Int64})

    def log_rows(self, version: int) -> pl.DataFrame:
        c = self.counts().pivot("status", index=["_src", "table"], values="n", aggregate_function="sum")
        for s in ("accepted", "duplicate", "quarantined", "held"):
            if s not in c.columns:
                c = c.with_columns(pl.lit(0, pl.Int64).alias(s))
        c = c.fill_null(0).with_columns(
            (pl.col("accepted") + pl.col("duplicate") + pl.col("quarantined") + pl.col("held")).alias("read")
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
            self._now_lit().alias("ingested_at"),
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
    limits: Limits = DEFAULT_LIMITS,
    now: dt.datetime | None = None,
) -> IngestResult:
    """Ingest files or folders as one atomic batch. See the module docstring for the accounting.

    ``limits``: plausibility limits and the hold limit (:class:`analytics.validate.Limits`); ``now``: the
    batch's arrival time (default the wall clock), which the time window and the hold limit are measured
    from.

    ``display_names`` maps a path (as given) to the name shown in the summary and the quarantine (the
    upload widget passes the uploaded file's name; the file itself lives under a name we chose).
    Raises :class:`IngestError` for an unreadable path or format, before the lake is touched.
    """
    lake = lake or Lake()
    paths = list(paths)
    return _retry_on_stale_base(
        lambda: _ingest_once(paths, lake, type_name, display_names, progress, limits, now or dt.datetime.now(dt.UTC))
    )


BATCH_ATTEMPTS = 5  # a batch re-run on a newer version when another writer committed under it (a broken lock)


def _retry_on_stale_base(run: Callable):
    """Run ``run()`` and re-run it from scratch when its writer finds that another writer committed after it read
    its base (:class:`StaleBaseError`: nothing of the attempt was committed; its files are swept later)."""
    for attempt in range(BATCH_ATTEMPTS):
        try:
            return run()
        except StaleBaseError:
            if attempt == BATCH_ATTEMPTS - 1:
                raise


def _ingest_once(
    paths: list,
    lake: Lake,
    type_name: str | None,
    display_names: dict[str, str] | None,
    progress: Callable[[float, str], None] | None,
    limits: Limits,
    now: dt.datetime,
) -> IngestResult:
    sources, skipped = discover(paths, type_name, display_names)
    with lake.writer(rebase=False) as w:
        b = _Batch(lake, w, sources, limits, now or dt.datetime.now(dt.UTC))
        done = b.ingested_files()
        pending: dict[str, list[pl.DataFrame]] = {}
        file_status: dict[int, str] = {}
        seen_now: set[str] = set()
        # Market data that streams (Parquet quotes/trades without row keys) goes first, while nothing else is
        # held in memory; the order of processing changes no result.
        for i, src in enumerate(sorted(sources, key=lambda s: (not _streams(s), s.index))):
            if progress:
                progress(i / max(len(sources), 1) * 0.8, f"reading {Path(src.display).name}")
            src.sha256, src.size = _sha256(src.path)
            if src.sha256 in done or src.sha256 in seen_now:
                # The very same bytes were ingested before: a no-op, reported with what became of its rows.
                file_status[src.index] = "already_ingested"
                prior = done.get(src.sha256)
                if prior is not None:
                    b.tally.append(b.resent_counts(src.index, prior))
                continue
            seen_now.add(src.sha256)
            file_status[src.index] = "ingested"
            if src.fmt == "jsonl":
                blocks = _read_jsonl(src, b.con)
            elif src.fmt == "csv":
                blocks = [_read_csv(src, b.con)]
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
                del df
                blocks = [parsed]
            for parsed in blocks:
                if parsed.lines is not None:
                    b.raw_lines[src.index] = parsed.lines  # this block's lines (earlier ones are re-read)
                for rej in parsed.rejects:
                    b.reject_parsed(src, rej)
                for table, frames in parsed.frames.items():
                    for f in frames:
                        if src.fmt != "jsonl":
                            cols = [c for c in f.columns if not c.startswith("_")]
                            b.src_cols.setdefault(table, {})[src.index] = cols
                        f = f.with_columns(
                            pl.lit(src.index, pl.Int64).alias("_src"),
                            (pl.col("_line").cast(pl.Int64) + src.index * _ORD_FILE_STRIDE).alias("_ord"),
                        )
                        # Row rules run as each block is read, so only typed rows are kept (the raw text
                        # is released); weight groups are judged over the whole batch, at the end.
                        pending.setdefault(table, []).append(f if TABLES[table].weight_group else b.validated(table, f))
                del parsed
        for k, table in enumerate(INGEST_ORDER):
            # Tables that can hold rows run on every batch: their held rows may find their parent now.
            if table in pending or table in HOLDABLE:
                if progress:
                    progress(0.8 + 0.15 * k / len(INGEST_ORDER), f"validating {table}")
                frames = pending.pop(table, None)
                b.process(table, pl.concat(frames, how="diagonal_relaxed", rechunk=False) if frames else None)
                del frames
        if b.quarantine:
            w.append("quarantine", pl.concat(b.quarantine))
        if b.tombstones:
            w.append("held_released", pl.concat(b.tombstones))
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
    if b.released:
        rel = pl.concat(b.released)
        for table, status, n in rel.group_by("table", "status").agg(pl.col("n").sum()).sort("table").iter_rows():
            result.held_before.setdefault(table, {})[status] = n
    per_file = counts.group_by("_src", "status").agg(pl.col("n").sum())
    for s in sources:
        fc = {st: 0 for st in ("accepted", "duplicate", "quarantined", "held")}
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
    for k in skipped:  # found in a folder, not ingested: listed with the reason, never dropped silently
        result.files.append({"path": k["path"], "format": None, "status": "skipped", "reason": k["reason"], "read": 0})
    if b.reasons:
        result.quarantine_reasons = dict(
            pl.concat(b.reasons).group_by("reason").agg(pl.col("n").sum()).sort("reason").iter_rows()
        )
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
        raise IngestError(f"{src.display}: not a readable Parquet file ({e})") from e


def purge_quarantine(lake: Lake, before: dt.date) -> tuple[int, int]:
    """Retention: drop the quarantine rows ingested before ``before`` (UTC date) from the next lake version;
    returns (rows removed, rows kept). The kept rows are rewritten as one new file and the table's older
    files leave the manifest (earlier versions still list them until the store sweeps them). Held rows and
    their tombstones are not touched: an expired held row stays resolvable."""
    return _retry_on_stale_base(lambda: _purge_once(lake, dt.datetime.combine(before, dt.time(), dt.UTC)))


def _purge_once(lake: Lake, cutoff: dt.datetime) -> tuple[int, int]:
    with lake.writer(rebase=False) as w:
        con = lake.connect(w.base)
        try:
            q = query(con, "SELECT * FROM quarantine")
        finally:
            con.close()
        keep = q.filter(pl.col("ingested_at") >= cutoff)
        removed = q.height - keep.height
        if removed:
            w.replace("quarantine")
            w.append("quarantine", keep.select([pl.col(c).cast(d) for c, d in QUARANTINE_SCHEMA.items()]))
    return removed, keep.height


def held_status(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per table, rows held now (waiting for their parent, within the hold limit), expired (quarantined as
    ``unknown_order``/``unknown_fill`` and still waiting) and resolved (quarantined, then accepted when the
    parent came: their quarantine rows are resolved). ``con``: a connection from :meth:`Lake.connect`."""
    parts = " UNION ALL ".join(
        f"SELECT '{t}' AS \"table\", event_id, _hash FROM {quote_ident(held_table(t))}" for t in HOLDABLE
    )  # table names from the schema, never user text
    return query(
        con,
        f"""WITH h AS (SELECT DISTINCT * FROM ({parts})),
                 r AS (SELECT "table", event_id, _hash, bool_or(outcome = 'expired') AS expired,
                              bool_or(outcome = 'accepted') AS accepted, bool_or(outcome <> 'expired') AS final
                       FROM held_released GROUP BY ALL)
            SELECT h."table",
                   count(*) FILTER (WHERE r.event_id IS NULL)::BIGINT AS held,
                   count(*) FILTER (WHERE r.expired AND NOT r.final)::BIGINT AS expired,
                   count(*) FILTER (WHERE r.expired AND r.accepted)::BIGINT AS resolved
            FROM h LEFT JOIN r USING ("table", event_id, _hash) GROUP BY 1 ORDER BY 1""",
    )
