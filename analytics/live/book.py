"""The engine's memory of the current trading day: every received event, typed exactly as ingest types it.

Events arrive as parsed JSON objects (EVENTS.md). :func:`typed_events` routes them to their table by
``event_type`` (and ``kind`` for market data) and types them with the same contract and row rules as batch
ingest (``analytics.validate``): a row that ingest would quarantine for its own content never enters the live
state. Referential rules (a fill before its order's NEW) are not applied here: the live state joins fills to
orders, so a fill that arrives early simply waits for its order in the next refresh.

The book keeps one UTC day. It deduplicates on the lake's keys (``event_id`` for events, ``(symbol, venue,
seq)`` for market data that carries ``seq``), so a redelivered event (at-least-once delivery) or a day reloaded
from the lake after a restart never counts twice.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable

import polars as pl

from analytics.schema import EVENT_TYPES, KIND_DTYPES, MARKET_KINDS, TABLES
from analytics.validate import typed_frame, validate

LIVE_TABLES = ("quotes", "trades", "decisions", "orders", "fills")  # what the live state reads
COMPACT_EVERY = 64  # chunks per table before they are concatenated into one


def table_of(event: dict) -> str | None:
    """The lake table an event object belongs to (None: not one the contract knows)."""
    et = event.get("event_type")
    if et == "MarketDataEvent":
        return MARKET_KINDS.get(str(event.get("kind", "")).lower())
    return EVENT_TYPES.get(et)


def _as_text(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, dict | list):
        return json.dumps(v, separators=(",", ":"))
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def typed_events(events: Iterable[dict]) -> dict[str, pl.DataFrame]:
    """Per table, the valid rows of ``events`` typed as the lake stores them (contract columns + ``extra``),
    plus ``_recv`` (the wall time the intake received the event, epoch seconds) when the events carry it."""
    by_table: dict[str, list[dict]] = {}
    for e in events:
        t = table_of(e)
        if t in LIVE_TABLES:
            by_table.setdefault(t, []).append(e)
    out = {}
    for table, rows in by_table.items():
        fields = [f.name for f in TABLES[table].fields]
        raw = pl.DataFrame(
            {f: [_as_text(r.get(f)) for r in rows] for f in fields},
            schema=dict.fromkeys(fields, pl.String),
        )
        v = validate(table, raw).with_columns(pl.Series("_recv", [r.get("_recv") for r in rows], dtype=pl.Float64))
        good = v.filter(pl.col("_reason").is_null())
        out[table] = pl.concat([typed_frame(table, good), good.select("_recv")], how="horizontal")
    return out


def _key(table: str) -> list[str] | None:
    key = TABLES[table].key
    return list(key) if key else None


class DayBook:
    """Append-only per-table frames of one UTC day, deduplicated on the lake's keys."""

    def __init__(self, day: dt.date | None = None):
        self.day = day
        self._chunks: dict[str, list[pl.DataFrame]] = {t: [] for t in LIVE_TABLES}
        self._seen: dict[str, set] = {t: set() for t in LIVE_TABLES}
        self.rows = 0

    def _fresh(self, table: str, df: pl.DataFrame) -> pl.DataFrame:
        """Rows whose key was not seen before (rows without a key, e.g. quotes without seq, are always new)."""
        key = _key(table)
        if key is None or df.height == 0:
            return df
        has = pl.col("seq").is_not_null() if "seq" in key else pl.lit(True)
        kcol = pl.concat_str([pl.col(c).cast(pl.String).fill_null("") for c in key], separator="\x1f")
        df = df.with_columns(pl.when(has).then(kcol).alias("_k"))
        df = df.filter(pl.col("_k").is_null() | pl.col("_k").is_first_distinct())
        seen = self._seen[table]
        keys = df["_k"].to_list()
        keep = [k is None or k not in seen for k in keys]
        seen.update(k for k in keys if k is not None)
        return df.filter(pl.Series(keep, dtype=pl.Boolean)).drop("_k")

    def add(self, table: str, df: pl.DataFrame) -> int:
        """Append the rows of ``df`` dated ``self.day`` that are new; returns how many were added."""
        if self.day is not None and "ts" in df.columns:
            df = df.filter(pl.col("ts").dt.date() == self.day)
        df = self._fresh(table, df)
        if df.height:
            if "_recv" not in df.columns:
                df = df.with_columns(pl.lit(None, pl.Float64).alias("_recv"))
            chunks = self._chunks[table]
            chunks.append(df)
            if len(chunks) >= COMPACT_EVERY:
                self._chunks[table] = [pl.concat(chunks, how="diagonal_relaxed")]
            self.rows += df.height
        return df.height

    def frame(self, table: str) -> pl.DataFrame:
        """Every row of ``table`` held for the day (empty with the lake's schema when none)."""
        chunks = self._chunks[table]
        if not chunks:
            schema = {f.name: KIND_DTYPES[f.kind] for f in TABLES[table].fields} | {
                "extra": pl.String,
                "_recv": pl.Float64,
            }
            return pl.DataFrame(schema=schema)
        if len(chunks) > 1:
            self._chunks[table] = [pl.concat(chunks, how="diagonal_relaxed")]
        return self._chunks[table][0]
