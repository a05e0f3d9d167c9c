"""File formats of the simulator's output (the EVENTS.md contract).

Parquet: explicit Arrow schemas below (strings as ``string``, timestamps ``timestamp[us, UTC]``,
dates ``date32``, quantities ``int64``, prices ``float64``). JSON Lines: one event per line with
``event_type``; timestamps as ISO-8601 UTC strings with microseconds and ``Z``; a field that
is null for a row is omitted from that row's line (optional fields are absent, not null).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

TS = pa.timestamp("us", tz="UTC")
ISO_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"
S, F, I64, D = pa.string(), pa.float64(), pa.int64(), pa.date32()

SCHEMAS: dict[str, pa.Schema] = {
    "securities": pa.schema([("symbol", S), ("name", S), ("asset_class", S), ("sector", S), ("industry", S),
                             ("country", S), ("currency", S), ("shares_outstanding", I64), ("region", S),
                             ("exchange", S)]),
    "portfolios": pa.schema([("portfolio_id", S), ("name", S), ("strategy", S), ("benchmark_id", S),
                             ("base_currency", S)]),
    "holdings": pa.schema([("date", D), ("portfolio_id", S), ("symbol", S), ("weight", F), ("quantity", I64),
                           ("market_value", F), ("currency", S)]),
    "benchmark_weights": pa.schema([("date", D), ("benchmark_id", S), ("symbol", S), ("weight", F)]),
    "returns": pa.schema([("date", D), ("symbol", S), ("return", F)]),
    "factor_exposures": pa.schema([("date", D), ("symbol", S), ("factor", S), ("exposure", F)]),
    "factor_returns": pa.schema([("date", D), ("factor", S), ("return", F)]),
    "bars": pa.schema([("symbol", S), ("ts", TS), ("interval", S), ("open", F), ("high", F), ("low", F),
                       ("close", F), ("volume", I64), ("vwap", F)]),
    "quotes": pa.schema([("symbol", S), ("ts", TS), ("bid", F), ("ask", F), ("bid_size", I64), ("ask_size", I64)]),
    "trades": pa.schema([("symbol", S), ("ts", TS), ("price", F), ("size", I64), ("venue", S), ("condition", S)]),
    "decisions": pa.schema([("event_id", S), ("decision_id", S), ("ts", TS), ("portfolio_id", S), ("strategy", S),
                            ("symbol", S), ("side", S), ("quantity", I64), ("decision_price", F), ("urgency", S),
                            ("alpha_bps", F), ("horizon_days", I64), ("model_id", S)]),
    "orders": pa.schema([("event_id", S), ("order_id", S), ("ts", TS), ("action", S), ("symbol", S), ("side", S),
                         ("quantity", I64), ("broker", S), ("algo", S), ("decision_id", S), ("limit_price", F),
                         ("trader", S), ("desk", S), ("urgency", S), ("algo_params", S)]),
    "fills": pa.schema([("event_id", S), ("fill_id", S), ("order_id", S), ("ts", TS), ("received_ts", TS), ("symbol", S), ("side", S),
                        ("quantity", I64), ("price", F), ("venue", S), ("liquidity", S), ("child_order_id", S),
                        ("commission", F), ("fees", F), ("currency", S)]),
    "settlements": pa.schema([("event_id", S), ("fill_id", S), ("ts", TS), ("settle_date", D), ("commission", F),
                              ("fees", F), ("taxes", F), ("currency", S), ("fx_rate", F)]),
}  # fmt: skip
EVENT_TYPES = {
    "decisions": "TradingDecisionEvent",
    "orders": "OrderEvent",
    "fills": "TradeExecutedEvent",
    "settlements": "TradeSettledEvent",
}
PARQUET_OPTIONS = {"compression": "zstd"}


def to_arrow(df: pl.DataFrame, table: str) -> pa.Table:
    """Select the contract's columns in order and cast to the contract's Arrow schema."""
    schema = SCHEMAS[table]
    if "algo_params" in df.columns and df.schema["algo_params"] != pl.String:
        params = pl.col("algo_params")
        df = df.with_columns(pl.when(params.is_not_null()).then(params.struct.json_encode()))
    return df.select(schema.names).to_arrow().cast(schema)


def write_parquet(path: Path, table: pa.Table) -> None:
    pq.write_table(table, path, **PARQUET_OPTIONS)


def market_table(table: str, symbols: np.ndarray, cols: dict[str, np.ndarray]) -> pa.Table:
    """Arrow table for quotes/trades from numpy columns; ``sym`` indexes ``symbols``, ``ts``
    is microseconds since the epoch (UTC)."""
    schema = SCHEMAS[table]
    dictionary = pa.array(symbols.tolist(), type=S)
    arrays = []
    for field in schema:
        if field.name == "symbol":
            arrays.append(pa.DictionaryArray.from_arrays(pa.array(cols["sym"], pa.int32()), dictionary).cast(S))
        elif field.name == "ts":
            arrays.append(pa.array(cols["ts"], type=pa.int64()).cast(TS))
        elif field.type == S:
            arrays.append(pa.array(cols[field.name].tolist(), type=S))
        else:
            arrays.append(pa.array(cols[field.name], type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def iso_ts(col: str = "ts") -> pl.Expr:
    """ISO-8601 UTC text with microseconds and Z from an Int64 microseconds-since-epoch column."""
    return pl.col(col).cast(pl.Datetime("us", "UTC")).dt.strftime(ISO_FORMAT)


def json_frame(df: pl.DataFrame, table: str) -> pl.DataFrame:
    """The JSON Lines view of an event frame: ``event_type`` first, timestamps and dates as text."""
    cols = [pl.lit(EVENT_TYPES[table]).alias("event_type")]
    for name in SCHEMAS[table].names:
        if name in ("ts", "received_ts"):
            cols.append(iso_ts(name))
        elif name == "settle_date":
            cols.append(pl.col(name).cast(pl.String))
        else:
            cols.append(pl.col(name))
    return df.select(cols)


def json_lines(df: pl.DataFrame) -> list[str]:
    """One compact JSON object per row, omitting the keys that are null on that row."""
    null_cols = [c for c in df.columns if df[c].null_count() > 0]
    if not null_cols:
        return df.write_ndjson().splitlines()
    pattern = pl.sum_horizontal([pl.col(c).is_null().cast(pl.Int64) * (1 << j) for j, c in enumerate(null_cols)])
    codes = df.select(pattern.alias("p"))["p"].to_numpy()
    lines = np.empty(df.height, dtype=object)
    for code in np.unique(codes):  # a handful of null patterns, not rows
        rows = np.flatnonzero(codes == code)
        drop = [c for j, c in enumerate(null_cols) if code & (1 << j)]
        sub = df[rows].drop(drop)
        lines[rows] = sub.write_ndjson().splitlines()
    return lines.tolist()


def event_frame_for(df: pl.DataFrame, table: str, fmt: str) -> pl.DataFrame:
    """Frame in the layout of the output format: JSON view for jsonl, typed columns for parquet."""
    if fmt == "jsonl":
        return json_frame(df, table)
    return df.with_columns(pl.col(c).cast(pl.Datetime("us", "UTC")) for c in ("ts", "received_ts") if c in df.columns)
