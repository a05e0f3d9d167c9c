"""What the lake holds: filter options, the ingest history and the quarantine. Queries only."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import polars as pl

from analytics.store import query, write_text_atomic


def filter_options(con: duckdb.DuckDBPyConnection, lake=None, version: int | None = None) -> dict:
    """Distinct values for the shared sidebar filters, and the date span of the orders and fills.

    With ``lake`` and ``version``, the answer is kept under the fingerprint of the files it reads
    (:func:`options_key`): a year's lake scans ~25M fills for its venues once per change of those tables, not
    once per app start, and a rollback finds the options of the files it restores."""
    if lake is None or version is None:
        return _filter_options(con)
    kept = kept_options(lake, version)
    if kept is not None:
        return kept
    out = _filter_options(con)
    write_text_atomic(_options_path(lake, version), json.dumps(out, default=str))
    return out


OPTION_TABLES = ("orders", "fills", "portfolios", "decisions", "securities")  # what _filter_options reads
OPTIONS = "filter_options-1"  # bump when _filter_options changes


def _options_path(lake, version: int):
    key = lake.content_key(lake.manifest(version), OPTION_TABLES, OPTIONS)
    return lake.derived_dir(OPTIONS) / f"{key}.json"


def kept_options(lake, version: int) -> dict | None:
    """The options :func:`filter_options` kept for ``version``'s files, or None (no connection needed)."""
    path = _options_path(lake, version)
    if not path.exists():
        return None
    out = json.loads(path.read_text())
    return {**out, **{k: dt.date.fromisoformat(out[k]) if out[k] else None for k in ("start", "end")}}


def _filter_options(con: duckdb.DuckDBPyConnection) -> dict:

    def distinct(sql: str) -> list[str]:
        return [r[0] for r in con.execute(sql).fetchall() if r[0] is not None]

    span = con.execute(
        "SELECT min(ts)::DATE, max(ts)::DATE FROM (SELECT ts FROM orders UNION ALL SELECT ts FROM fills)"
    ).fetchone()
    return {
        "portfolio": distinct(
            "SELECT portfolio_id FROM portfolios UNION SELECT DISTINCT portfolio_id FROM decisions ORDER BY 1"
        ),
        "symbol": distinct("SELECT symbol FROM securities UNION SELECT DISTINCT symbol FROM orders ORDER BY 1"),
        "broker": distinct("SELECT DISTINCT broker FROM orders WHERE action = 'NEW' ORDER BY 1"),
        "algo": distinct("SELECT DISTINCT algo FROM orders WHERE action = 'NEW' ORDER BY 1"),
        "venue": distinct("SELECT DISTINCT venue FROM fills ORDER BY 1"),
        "start": span[0] if span else None,
        "end": span[1] if span else None,
    }


def recent_ingests(con: duckdb.DuckDBPyConnection, limit: int = 20) -> pl.DataFrame:
    """One row per ingest batch, newest first: when, lake version, files and row counts."""
    return query(
        con,
        """SELECT batch_id, max(ingested_at) AS ingested_at, max(version) AS version,
                  count(DISTINCT file_sha256) AS files, sum(read)::BIGINT AS read, sum(accepted)::BIGINT AS accepted,
                  sum(duplicate)::BIGINT AS duplicate, sum(quarantined)::BIGINT AS quarantined,
                  string_agg(DISTINCT "table", ', ' ORDER BY "table") AS tables
           FROM ingests GROUP BY batch_id ORDER BY ingested_at DESC LIMIT ?""",
        [limit],
    )


def ingest_files(con: duckdb.DuckDBPyConnection, batch_id: str) -> pl.DataFrame:
    """The files of one batch with their per-table counts."""
    return query(
        con,
        """SELECT source_file, format, "table", read, accepted, duplicate, quarantined, file_bytes
           FROM ingests WHERE batch_id = ? ORDER BY source_file, "table\"""",
        [batch_id],
    )


def quarantine_sources(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Source files with quarantined rows, most recent ingest first."""
    rows = con.execute("SELECT source_file FROM quarantine GROUP BY 1 ORDER BY max(ingested_at) DESC, 1").fetchall()
    return [r[0] for r in rows]


def quarantine_counts(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return query(
        con,
        'SELECT "table", reason, count(*) AS rows FROM quarantine GROUP BY ALL ORDER BY rows DESC, "table", reason',
    )


def quarantine_rows(
    con: duckdb.DuckDBPyConnection,
    reasons: list[str] | None = None,
    tables: list[str] | None = None,
    batch_id: str | None = None,
    sources: list[str] | None = None,
    limit: int = 1000,
) -> pl.DataFrame:
    """Quarantined rows, newest first, optionally by reason, table, source file and batch (all bound
    parameters)."""
    return query(
        con,
        """SELECT ingested_at, "table", reason, detail, source_file, line, event_id, raw, batch_id
           FROM quarantine
           WHERE (? IS NULL OR reason IN (SELECT unnest(?::VARCHAR[])))
             AND (? IS NULL OR "table" IN (SELECT unnest(?::VARCHAR[])))
             AND (? IS NULL OR source_file IN (SELECT unnest(?::VARCHAR[])))
             AND (? IS NULL OR batch_id = ?)
           ORDER BY ingested_at DESC, source_file, line LIMIT ?""",
        [
            reasons or None,
            reasons or [],
            tables or None,
            tables or [],
            sources or None,
            sources or [],
            batch_id,
            batch_id,
            limit,
        ],
    )
