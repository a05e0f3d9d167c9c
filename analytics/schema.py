"""The lake's tables: one per input kind of docs/EVENTS.md.

Each table lists its contract fields with a logical kind, which fields are required, the key that makes
ingest idempotent, how its files are partitioned and how rows are sorted inside a file. This module is the
single place that knows the contract's column names; ingest, the store and the pages read it from here.

Storage types: timestamps are ``TIMESTAMP WITH TIME ZONE`` (UTC, microsecond precision: nanoseconds in
the input are truncated), dates are ``DATE``, prices, quantities and weights are ``DOUBLE`` (quantities are
shares or units and may be fractional for some asset classes), free text is ``VARCHAR``, nested objects
(``algo_params``) are JSON text. Fields a producer sends beyond the contract are kept, as a JSON object in
the ``extra`` column.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

# Logical kinds -> Polars storage dtype.
KIND_DTYPES: dict[str, pl.DataType] = {
    "str": pl.String(),
    "float": pl.Float64(),
    "int": pl.Int64(),
    "ts": pl.Datetime("us", "UTC"),
    "date": pl.Date(),
    "side": pl.String(),
    "enum": pl.String(),
    "json": pl.String(),
}
KIND_SQL: dict[str, str] = {
    "str": "VARCHAR",
    "float": "DOUBLE",
    "int": "BIGINT",
    "ts": "TIMESTAMPTZ",
    "date": "DATE",
    "side": "VARCHAR",
    "enum": "VARCHAR",
    "json": "VARCHAR",
}

SIDES = ("BUY", "SELL")
URGENCIES = ("LOW", "MEDIUM", "HIGH")

# Columns every stored row carries besides the contract fields.
META_COLUMNS: dict[str, pl.DataType] = {
    "extra": pl.String(),  # JSON object of the fields beyond the contract, else null
    "_batch": pl.String(),  # ingest batch id that wrote the row (lineage)
    "_hash": pl.String(),  # md5 of the row's contract content (idempotency / conflicts)
}


@dataclass(frozen=True)
class Field:
    """One contract field. ``positive``: must be > 0; ``nonneg``: >= 0; ``choices``: allowed
    values after upper-casing (case-insensitive on input)."""

    name: str
    kind: str = "str"
    required: bool = True
    positive: bool = False
    nonneg: bool = False
    choices: tuple[str, ...] | None = None


def req(name: str, kind: str = "str", **kw) -> Field:
    """A required field."""
    return Field(name, kind, **kw)


def opt(name: str, kind: str = "str", **kw) -> Field:
    """An optional field."""
    return Field(name, kind, required=False, **kw)


@dataclass(frozen=True)
class Table:
    """A lake table.

    key: fields identifying one event; re-sending the same key with the same content is a duplicate, with
      other content a conflict. ``None``: no row identity (market data without ``seq``: idempotency is then
      per file, by content hash).
    partition: "day" or "month" of ``time_col``, or None (one folder).
    weight_group: fields whose rows' ``weight`` must sum to 1 (portfolio or benchmark on a date).
    """

    name: str
    fields: tuple[Field, ...]
    key: tuple[str, ...] | None = None
    time_col: str | None = None
    partition: str | None = None
    sort: tuple[str, ...] = ()
    event_type: str | None = None
    weight_group: tuple[str, ...] | None = None
    extra_checks: tuple[str, ...] = field(default_factory=tuple)

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    @property
    def schema(self) -> dict[str, pl.DataType]:
        out = {f.name: KIND_DTYPES[f.kind] for f in self.fields}
        out.update(META_COLUMNS)
        return out


_SIDE = {"kind": "side", "choices": SIDES}

TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        Table(
            "quotes",
            (
                req("symbol"),
                req("ts", "ts"),
                req("bid", "float", positive=True),
                req("ask", "float", positive=True),
                req("bid_size", "float", positive=True),
                req("ask_size", "float", positive=True),
                opt("venue"),
                opt("seq", "int"),
            ),
            key=("symbol", "venue", "seq"),
            time_col="ts",
            partition="day",
            sort=("symbol", "ts"),
            event_type="MarketDataEvent",
            extra_checks=("crossed_quote",),
        ),
        Table(
            "trades",
            (
                req("symbol"),
                req("ts", "ts"),
                req("price", "float", positive=True),
                req("size", "float", positive=True),
                opt("venue"),
                opt("condition"),
                opt("seq", "int"),
            ),
            key=("symbol", "venue", "seq"),
            time_col="ts",
            partition="day",
            sort=("symbol", "ts"),
            event_type="MarketDataEvent",
        ),
        Table(
            "bars",
            (
                req("symbol"),
                req("ts", "ts"),
                req("interval"),
                req("open", "float", positive=True),
                req("high", "float", positive=True),
                req("low", "float", positive=True),
                req("close", "float", positive=True),
                req("volume", "float", nonneg=True),
                opt("vwap", "float", positive=True),
                opt("venue"),
                opt("seq", "int"),
            ),
            key=("symbol", "interval", "ts"),
            time_col="ts",
            partition="month",
            sort=("symbol", "ts"),
            event_type="MarketDataEvent",
            extra_checks=("bar_range",),
        ),
        Table(
            "decisions",
            (
                req("event_id"),
                req("decision_id"),
                req("ts", "ts"),
                req("portfolio_id"),
                req("strategy"),
                req("symbol"),
                req("side", **_SIDE),
                req("quantity", "float", positive=True),
                opt("decision_price", "float", positive=True),
                opt("urgency", "enum", choices=URGENCIES),
                opt("alpha_bps", "float"),
                opt("horizon_days", "float", positive=True),
                opt("model_id"),
            ),
            key=("event_id",),
            time_col="ts",
            partition="day",
            sort=("ts",),
            event_type="TradingDecisionEvent",
        ),
        Table(
            "orders",
            (
                req("event_id"),
                req("order_id"),
                req("ts", "ts"),
                req("action", "enum", choices=("NEW", "REPLACE", "CANCEL", "DONE")),
                # Required on NEW only (checked by the `new_order_fields` rule).
                opt("symbol"),
                opt("side", **_SIDE),
                opt("quantity", "float", positive=True),
                opt("broker"),
                opt("algo"),
                opt("decision_id"),
                opt("limit_price", "float", positive=True),
                opt("trader"),
                opt("desk"),
                opt("urgency", "enum", choices=URGENCIES),
                opt("algo_params", "json"),
            ),
            key=("event_id",),
            time_col="ts",
            partition="day",
            sort=("ts",),
            event_type="OrderEvent",
            extra_checks=("new_order_fields", "order_known"),
        ),
        Table(
            "fills",
            (
                req("event_id"),
                req("fill_id"),
                req("order_id"),
                req("ts", "ts"),
                req("symbol"),
                req("side", **_SIDE),
                req("quantity", "float", positive=True),
                req("price", "float", positive=True),
                req("venue"),
                opt(
                    "liquidity",
                    "enum",
                    choices=("ADD", "REMOVE", "AUCTION", "MIDPOINT"),
                ),
                opt("child_order_id"),
                opt("received_ts", "ts"),  # Rule 605's time of order receipt (of the child order that filled)
                opt("commission", "float", nonneg=True),
                opt("fees", "float"),  # may be negative: maker rebates
                opt("currency"),
            ),
            key=("event_id",),
            time_col="ts",
            partition="day",
            sort=("symbol", "ts"),
            event_type="TradeExecutedEvent",
            extra_checks=("fill_order",),
        ),
        Table(
            "settlements",
            (
                req("event_id"),
                req("fill_id"),
                req("ts", "ts"),
                req("settle_date", "date"),
                opt("commission", "float", nonneg=True),
                opt("fees", "float"),
                opt("taxes", "float", nonneg=True),
                opt("currency"),
                opt("fx_rate", "float", positive=True),
            ),
            key=("event_id",),
            time_col="ts",
            partition="day",
            sort=("ts",),
            event_type="TradeSettledEvent",
            extra_checks=("settlement_fill",),
        ),
        Table(
            "securities",
            (
                req("symbol"),
                req("name"),
                req("asset_class"),
                req("sector"),
                req("industry"),
                req("country"),
                req("currency"),
                opt("shares_outstanding", "float", positive=True),
                opt("region"),
                opt("exchange"),
            ),
            key=("symbol",),
            sort=("symbol",),
        ),
        Table(
            "portfolios",
            (
                req("portfolio_id"),
                req("name"),
                req("strategy"),
                req("benchmark_id"),
                req("base_currency"),
            ),
            key=("portfolio_id",),
            sort=("portfolio_id",),
        ),
        Table(
            "holdings",
            (
                req("date", "date"),
                req("portfolio_id"),
                req("symbol"),
                opt("weight", "float"),
                opt("market_value", "float"),
                opt("quantity", "float"),
                opt("currency"),
            ),
            key=("date", "portfolio_id", "symbol"),
            time_col="date",
            partition="month",
            sort=("date", "portfolio_id", "symbol"),
            weight_group=("date", "portfolio_id"),
        ),
        Table(
            "benchmark_weights",
            (
                req("date", "date"),
                req("benchmark_id"),
                req("symbol"),
                req("weight", "float"),
            ),
            key=("date", "benchmark_id", "symbol"),
            time_col="date",
            partition="month",
            sort=("date", "benchmark_id", "symbol"),
            weight_group=("date", "benchmark_id"),
        ),
        Table(
            "returns",
            (
                req("date", "date"),
                req("symbol"),
                req("return", "float"),
                opt("fx_return", "float"),
            ),
            key=("date", "symbol"),
            time_col="date",
            partition="month",
            sort=("date", "symbol"),
            extra_checks=("return_range",),
        ),
        Table(
            "factor_exposures",
            (
                req("date", "date"),
                req("symbol"),
                req("factor"),
                req("exposure", "float"),
            ),
            key=("date", "symbol", "factor"),
            time_col="date",
            partition="month",
            sort=("date", "symbol", "factor"),
        ),
        Table(
            "factor_returns",
            (req("date", "date"), req("factor"), req("return", "float")),
            key=("date", "factor"),
            time_col="date",
            partition="month",
            sort=("date", "factor"),
        ),
    ]
}

# Ingest order: referenced tables before the tables that reference them.
INGEST_ORDER: tuple[str, ...] = (
    "securities",
    "portfolios",
    "bars",
    "quotes",
    "trades",
    "returns",
    "factor_returns",
    "factor_exposures",
    "benchmark_weights",
    "holdings",
    "decisions",
    "orders",
    "fills",
    "settlements",
)
assert set(INGEST_ORDER) == set(TABLES)

EVENT_TYPES: dict[str, str] = {
    "TradingDecisionEvent": "decisions",
    "OrderEvent": "orders",
    "TradeExecutedEvent": "fills",
    "TradeSettledEvent": "settlements",
}
MARKET_KINDS: dict[str, str] = {"quote": "quotes", "trade": "trades", "bar": "bars"}

# Internal tables of the lake (not inputs): quarantine and the ingest log.
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "batch_id": pl.String(),
    "ingested_at": pl.Datetime("us", "UTC"),
    "source_file": pl.String(),
    "line": pl.Int64(),  # 1-based line for JSON Lines / CSV (header = line 1), 0-based row for Parquet
    "table": pl.String(),  # target table, or "unknown" when it cannot be told
    "reason": pl.String(),  # short code, e.g. "crossed_quote"
    "detail": pl.String(),  # every failed rule, human readable
    "event_id": pl.String(),
    "raw": pl.String(),  # the row as received (JSON line, or the row's fields as JSON)
    "raw_hash": pl.String(),
}
INGESTS_SCHEMA: dict[str, pl.DataType] = {
    "batch_id": pl.String(),
    "ingested_at": pl.Datetime("us", "UTC"),
    "version": pl.Int64(),
    "source_file": pl.String(),
    "file_sha256": pl.String(),
    "file_bytes": pl.Int64(),
    "format": pl.String(),
    "table": pl.String(),
    "read": pl.Int64(),
    "accepted": pl.Int64(),
    "duplicate": pl.Int64(),
    "quarantined": pl.Int64(),  # read - accepted - duplicate - quarantined = rows held (out of order)
}

# Out-of-order events (../shared/EVENTS.md): an order amendment before its NEW, a fill before its order, a
# settlement before its fill is *held*, not rejected. Held rows are appended to ``held_<table>`` (the typed
# row as it would be stored, plus when it arrived and where from); what became of each is appended to
# ``held_released`` (a tombstone keyed by table, event_id and content hash). Both tables are append-only:
# the rows still waiting are the held rows without a final tombstone. Outcomes: ``accepted`` (its parent
# arrived), ``rejected`` (quarantined for another reason once its parent was known, or a duplicate or
# conflict), and ``expired`` (the hold limit passed: quarantined as ``unknown_order``/``unknown_fill``, yet
# still waiting; a later ``accepted`` marks that quarantine row resolved).
HOLDABLE: dict[str, str] = {"orders": "unknown_order", "fills": "unknown_order", "settlements": "unknown_fill"}
HELD_META: dict[str, pl.DataType] = {
    "_held_at": pl.Datetime("us", "UTC"),  # arrival (wall clock of the batch that first held it)
    "_source_file": pl.String(),
    "_line": pl.Int64(),
    "_raw": pl.String(),  # the row as received, for the quarantine if it expires
}
RELEASED_SCHEMA: dict[str, pl.DataType] = {
    "batch_id": pl.String(),
    "released_at": pl.Datetime("us", "UTC"),
    "table": pl.String(),
    "event_id": pl.String(),
    "_hash": pl.String(),
    "outcome": pl.String(),  # accepted | rejected | expired
}


def held_table(table: str) -> str:
    return f"held_{table}"


INTERNAL_TABLES: dict[str, dict[str, pl.DataType]] = {
    "quarantine": QUARANTINE_SCHEMA,
    "ingests": INGESTS_SCHEMA,
    **{held_table(t): {**TABLES[t].schema, **HELD_META} for t in HOLDABLE},
    "held_released": RELEASED_SCHEMA,
}


def table_for_name(word: str) -> str | None:
    """Table named by a file name's first word (``fills_2026-03-02.parquet`` -> ``fills``)."""
    word = word.lower()
    return word if word in TABLES else None
