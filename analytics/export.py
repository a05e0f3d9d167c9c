"""Write a result frame as JSON Lines, CSV or Parquet, chosen by the file's extension. Same columns in all
three; timestamps are ISO-8601 UTC in the text formats."""

from __future__ import annotations

from pathlib import Path

import polars as pl

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


class ExportError(ValueError):
    pass


def write_frame(df: pl.DataFrame, path: str | Path) -> Path:
    p = Path(path)
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise ExportError(f"{p}: unknown output format {p.suffix!r} (use .jsonl, .csv or .parquet)")
    p.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        df.write_parquet(p)
        return p
    text = df.with_columns(
        pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ") for c, d in df.schema.items() if isinstance(d, pl.Datetime)
    )
    if fmt == "csv":
        text.write_csv(p)
    else:
        text.write_ndjson(p)
    return p
