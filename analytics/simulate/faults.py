"""Fault injection: extra, deliberately invalid or repeated rows added to the clean streams.

The clean stream is always complete, so an ingest should accept exactly the clean rows. Each
extra row is invalid for exactly one stated reason and otherwise well-formed:

* ``duplicate``: an exact copy of a clean line/row (expected outcome: duplicate);
* ``conflict``: the same ``event_id`` with an altered quantity/price/commission, placed after
  the original (quarantined);
* ``naive_ts``: a new event whose ``ts`` has no zone, e.g. ``2026-03-02T14:30:00.123456``
  (JSON Lines only; quarantined);
* ``bad_side``: side ``HOLD`` (quarantined); ``non_positive_quantity`` / ``non_positive_price``;
* ``unknown_order``: a fill whose ``order_id`` matches no order (quarantined);
* ``broken_json``: a truncated line that is not JSON, so its table cannot be told (counted
  under ``unknown``; quarantined);
* market data (Parquet rows): ``crossed_quote`` (bid > ask) and ``non_positive_price`` trades.

New-id faults carry a fresh ``event_id`` and a fresh entity id (decision/order/fill id), so
nothing else about them is wrong. ``line`` in _faults.jsonl is 1-based for JSON Lines and the
0-based row index for Parquet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import polars as pl

EVENT_FAULTS: dict[str, tuple[str, ...]] = {
    "decisions": ("duplicate", "conflict", "naive_ts", "bad_side", "non_positive_quantity", "broken_json"),
    "orders": ("duplicate", "conflict", "naive_ts", "bad_side", "non_positive_quantity", "broken_json"),
    "fills": ("duplicate", "conflict", "naive_ts", "bad_side", "non_positive_quantity",
              "non_positive_price", "unknown_order", "broken_json"),
    "settlements": ("duplicate", "conflict", "naive_ts", "broken_json"),
}  # fmt: skip
JSON_ONLY = ("naive_ts", "broken_json")
ENTITY_ID = {"decisions": "decision_id", "orders": "order_id", "fills": "fill_id", "settlements": None}


@dataclass(frozen=True)
class Fault:
    """One injected fault, as written to _faults.jsonl."""

    file: str
    line: int
    table: str
    event_id: str | None
    fault: str
    expected: str

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "table": self.table,
            "event_id": self.event_id,
            "fault": self.fault,
            "expected": self.expected,
        }


def _merge_order(n_clean: int, positions: np.ndarray) -> np.ndarray:
    """Permutation of [clean rows..., extra rows...] placing extra j before clean row positions[j]."""
    keys = np.concatenate([2 * np.arange(n_clean), 2 * positions - 1])
    return np.argsort(keys, kind="stable")


def _mutate(table: str, fault: str, row: dict, k: int, tag: str) -> dict:
    row = dict(row)
    if fault == "conflict":
        if table in ("decisions", "orders"):
            row["quantity"] = int(row["quantity"]) + 100
        elif table == "fills":
            row["price"] = round(float(row["price"]) + 0.01, 4)
        else:
            row["commission"] = round(float(row["commission"]) + 0.01, 2)
        return row
    row["event_id"] = f"EV-X-{tag}-{k:06d}"
    entity = ENTITY_ID[table]
    if entity is not None:
        row[entity] = f"{row[entity]}-X{k}"
    if fault == "naive_ts":
        row["ts"] = str(row["ts"]).removesuffix("Z")
    elif fault == "bad_side":
        row["side"] = "HOLD"
    elif fault == "non_positive_quantity":
        row["quantity"] = 0 if k % 2 else -int(row["quantity"])
    elif fault == "non_positive_price":
        row["price"] = 0.0 if k % 2 else -float(row["price"])
    elif fault == "unknown_order":
        row["order_id"] = f"O-UNKNOWN-{tag}-{k:06d}"
    return row


def inject_event_faults(
    table: str,
    frame: pl.DataFrame,
    lines: list[str] | None,
    rate: float,
    rng: np.random.Generator,
    tag: str,
) -> tuple[list[str] | pl.DataFrame, list[tuple[int, str | None, str, str, str]]]:
    """Add faults to one event file.

    ``frame`` is the file's clean content (JSON view when ``lines`` is given, typed Parquet
    frame otherwise). Returns the merged lines (or frame) and, per fault, (line or row index,
    event_id, table or "unknown", fault type, expected outcome).
    """
    n = frame.height
    kinds = [f for f in EVENT_FAULTS[table] if lines is not None or f not in JSON_ONLY]
    n_faults = int(rng.binomial(n, rate)) if n and rate > 0 else 0
    if n_faults == 0:
        return (lines if lines is not None else frame), []
    types = np.asarray(kinds)[rng.integers(0, len(kinds), n_faults)]
    eligible = np.arange(n)
    if table == "orders":
        eligible = np.flatnonzero(frame["action"].to_numpy() == "NEW")
    # Distinct source rows: two faults copied from the same event could be byte-identical, and an exact
    # re-send of a rejected line is (rightly) counted as a duplicate by ingest, not quarantined twice.
    src = _distinct(rng, eligible, n_faults)
    dup_src = _distinct(rng, np.arange(n), n_faults)
    src = np.where(types == "duplicate", dup_src, src)
    positions = src + 1 + np.floor(rng.random(n_faults) * (n - src)).astype(np.int64)
    extra_lines: list[str] = []
    extra_rows: list[dict] = []
    meta: list[tuple[str | None, str, str, str]] = []
    for k, (fault, i) in enumerate(zip(types.tolist(), src.tolist(), strict=True)):  # per fault
        row = frame.row(i, named=True)
        if fault == "duplicate":
            new = row
            text = lines[i] if lines is not None else None
        elif fault == "broken_json":
            new = row
            text = lines[i][: int(rng.integers(10, len(lines[i]) - 2))]
        else:
            new = _mutate(table, fault, row, k, tag)
            text = None
            if lines is not None:
                text = json.dumps({c: v for c, v in new.items() if v is not None}, separators=(",", ":"))
        extra_lines.append(text)
        extra_rows.append(new)
        expected = "duplicate" if fault == "duplicate" else "quarantined"
        # A broken line still sits in a file named after its table: ingest attributes it there.
        meta.append((new.get("event_id"), table, fault, expected))
    perm = _merge_order(n, positions)
    where = np.empty(len(perm), dtype=np.int64)
    where[perm] = np.arange(len(perm))
    base = 1 if lines is not None else 0
    records = [(int(where[n + j]) + base, *m) for j, m in enumerate(meta)]
    if lines is not None:
        merged = np.asarray(lines + extra_lines, dtype=object)[perm].tolist()
        return merged, records
    extra = pl.from_dicts(extra_rows, schema=frame.schema)
    return pl.concat([frame, extra])[perm], records


def _distinct(rng: np.random.Generator, pool: np.ndarray, k: int) -> np.ndarray:
    """``k`` rows drawn from ``pool`` without replacement (with replacement only if the pool is smaller)."""
    return rng.choice(pool, size=k, replace=k > len(pool))


def inject_market_faults(
    table: str, cols: dict[str, np.ndarray], rate: float, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], list[tuple[int, str]]]:
    """Insert crossed quotes (``quotes``) or non-positive-price prints (``trades``) right after
    the clean row they copy, so the file stays sorted by (symbol, ts). Returns the new columns
    and (0-based row index in this chunk, fault type) per fault."""
    n = len(cols["ts"])
    n_faults = int(rng.binomial(n, rate)) if n and rate > 0 else 0
    if n_faults == 0:
        return cols, []
    src = np.sort(_distinct(rng, np.arange(n), n_faults))
    extra = {k: v[src].copy() for k, v in cols.items()}
    if table == "quotes":
        extra["bid"] = np.round(extra["ask"] + 0.01 * rng.integers(1, 5, n_faults), 2)
        fault = "crossed_quote"
    else:
        extra["price"] = np.where(np.arange(n_faults) % 2 == 0, 0.0, -extra["price"])
        fault = "non_positive_price"
    out = {k: np.insert(v, src + 1, extra[k]) for k, v in cols.items()}
    rows = src + 1 + np.arange(n_faults)
    return out, [(int(r), fault) for r in rows]
