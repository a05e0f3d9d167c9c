"""Shared fixtures for the lake and ingest tests.

- ``lake``: an empty :class:`analytics.store.Lake` under the test's tmp dir; ``seeded``: the same lake
  holding order O1 and its fill F1 (``seed_lake(lake, files)`` does it for module-scoped fixtures).
- ``files``: writes contract files (JSON Lines, CSV, Parquet) from lists of dicts into one input folder
  (``files_at(folder)`` for module-scoped fixtures).
- ``ev``: the smallest valid event of each kind (JSON Lines form, with ``event_type``); keyword arguments
  override fields and ``ev.DROP`` removes one. ``ev.bare(row)`` strips ``event_type``/``kind`` for batch files.
- ``table_counts(result, table)``: (read, accepted, duplicate, quarantined); ``quarantine(lake)``: the
  quarantine in (file, line) order; ``tables(lake, *names)``: several tables through one connection.
- ``lake_state``: everything a reader can see of a lake (version, manifest, every table's rows), to assert
  that a failed or killed ingest left the lake exactly as it was.
- ``run_cli``: ``python -m analytics ...`` in a subprocess (the real entry point, exit code, stdout, stderr).

Every event here is dated 2026-03-02 around 14:30 UTC unless a test says otherwise.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analytics.ingest import IngestResult, ingest
from analytics.store import Lake, all_table_names

REPO = Path(__file__).resolve().parents[1]
T0 = "2026-03-02T14:30:00Z"


class Files:
    """Writes contract files into one folder; every method returns the written path."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def jsonl(self, name: str, rows: list[dict | str | bytes]) -> Path:
        """One line per item: a dict as JSON, a str or bytes verbatim (broken lines, blank lines)."""
        out = bytearray()
        for r in rows:
            if isinstance(r, bytes):
                out += r
            elif isinstance(r, str):
                out += r.encode()
            else:
                out += json.dumps(r).encode()
            out += b"\n"
        return self.raw(name, bytes(out))

    def csv(self, name: str, rows: list[dict], columns: list[str] | None = None) -> Path:
        """Header = ``columns`` or the union of the rows' keys in first-seen order; a missing key or None
        is an empty cell."""
        cols = columns or list(dict.fromkeys(k for r in rows for k in r))
        p = self.root / name
        with open(p, "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(cols)
            for r in rows:
                w.writerow(["" if r.get(c) is None else r[c] for c in cols])
        return p

    def parquet(self, name: str, rows: list[dict] | pl.DataFrame, schema: dict | None = None) -> Path:
        """A Parquet file from rows (types inferred by Polars, or ``schema``) or a ready frame."""
        df = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(rows, schema=schema, infer_schema_length=None)
        p = self.root / name
        df.write_parquet(p)
        return p

    def raw(self, name: str, data: bytes) -> Path:
        p = self.root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p


class Events:
    """Minimal valid contract events. ``ev.fill(price=DROP)`` removes ``price``."""

    DROP = object()

    @staticmethod
    def _make(base: dict, over: dict) -> dict:
        row = {**base, **over}
        return {k: v for k, v in row.items() if v is not Events.DROP}

    @staticmethod
    def bare(row: dict) -> dict:
        """The row as a batch-file record: no ``event_type``/``kind`` (the file name says the table)."""
        return {k: v for k, v in row.items() if k not in ("event_type", "kind")}

    @classmethod
    def quote(cls, **over: Any) -> dict:
        base = {"event_type": "MarketDataEvent", "kind": "quote", "symbol": "AAPL", "ts": T0}
        base |= {"bid": 100.0, "ask": 100.02, "bid_size": 300, "ask_size": 500}
        return cls._make(base, over)

    @classmethod
    def trade(cls, **over: Any) -> dict:
        base = {"event_type": "MarketDataEvent", "kind": "trade", "symbol": "AAPL", "ts": T0}
        return cls._make(base | {"price": 100.01, "size": 200}, over)

    @classmethod
    def bar(cls, **over: Any) -> dict:
        base = {"event_type": "MarketDataEvent", "kind": "bar", "symbol": "AAPL", "ts": "2026-03-02T00:00:00Z"}
        base |= {"interval": "1d", "open": 100.0, "high": 102.0, "low": 99.0, "close": 101.0, "volume": 1e6}
        return cls._make(base, over)

    @classmethod
    def decision(cls, **over: Any) -> dict:
        base = {"event_type": "TradingDecisionEvent", "event_id": "d1", "decision_id": "D1", "ts": T0}
        base |= {"portfolio_id": "P1", "strategy": "momo", "symbol": "AAPL", "side": "BUY", "quantity": 1000}
        return cls._make(base, over)

    @classmethod
    def order(cls, **over: Any) -> dict:
        """A NEW parent order O1: BUY 1000 AAPL."""
        base = {"event_type": "OrderEvent", "event_id": "o1", "order_id": "O1", "ts": T0, "action": "NEW"}
        base |= {"symbol": "AAPL", "side": "BUY", "quantity": 1000, "broker": "GS", "algo": "VWAP"}
        return cls._make(base, over)

    @classmethod
    def order_action(cls, action: str, **over: Any) -> dict:
        """A REPLACE/CANCEL/DONE of O1 (no order fields: they are required on NEW only)."""
        base = {"event_type": "OrderEvent", "event_id": f"o-{action.lower()}", "order_id": "O1"}
        return cls._make(base | {"ts": "2026-03-02T15:00:00Z", "action": action}, over)

    @classmethod
    def fill(cls, **over: Any) -> dict:
        """Fill F1 of O1: BUY 100 AAPL at 100.01 on XNAS."""
        base = {"event_type": "TradeExecutedEvent", "event_id": "f1", "fill_id": "F1", "order_id": "O1"}
        base |= {"ts": "2026-03-02T14:31:00Z", "symbol": "AAPL", "side": "BUY", "quantity": 100}
        return cls._make(base | {"price": 100.01, "venue": "XNAS"}, over)

    @classmethod
    def settlement(cls, **over: Any) -> dict:
        base = {"event_type": "TradeSettledEvent", "event_id": "s1", "fill_id": "F1"}
        return cls._make(base | {"ts": "2026-03-04T10:00:00Z", "settle_date": "2026-03-04"}, over)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path / "in")


@pytest.fixture(scope="session")
def files_at() -> type[Files]:
    """``files_at(folder)``: a :class:`Files` writer for module-scoped fixtures (no tmp_path there)."""
    return Files


@pytest.fixture(scope="session")
def ev() -> type[Events]:
    return Events


def counts(res: IngestResult, table: str) -> tuple[int, int, int, int]:
    """(read, accepted, duplicate, quarantined) of one table in an ingest result."""
    c = res.tables[table]
    return (c.read, c.accepted, c.duplicate, c.quarantined)


@pytest.fixture
def table_counts():
    return counts


@pytest.fixture
def quarantine():
    """The lake's quarantine table, in (source_file, line) order."""

    def read(lake: Lake) -> pl.DataFrame:
        return lake.read("quarantine").sort("source_file", "line")

    return read


def state(lake: Lake) -> dict:
    """What a reader can see: version, CURRENT's manifest, every table's rows (sorted, all columns)."""
    m = lake.manifest()
    con = lake.connect(m)
    try:
        tables = {}
        for name in all_table_names():
            df = lake.scan(con, name).pl()
            tables[name] = df.sort(df.columns).to_dicts() if df.height else []
    finally:
        con.close()
    return {"version": lake.version(), "manifest": m.to_json() if m.version else None, "tables": tables}


def read_tables(lake: Lake, *names: str) -> dict[str, pl.DataFrame]:
    """Several tables through one connection (a connection costs more than reading a tiny table)."""
    con = lake.connect()
    try:
        return {n: lake.scan(con, n).pl() for n in names}
    finally:
        con.close()


@pytest.fixture(scope="session")
def tables():
    return read_tables


@pytest.fixture
def lake_state():
    return state


@pytest.fixture
def run_cli():
    """``python -m analytics ARGS`` from the repo, as a subprocess (the real entry point)."""

    def run(
        *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        base = {k: v for k, v in os.environ.items() if k != "ANALYTICS_LAKE"}
        env = {**base, "PYTHONPATH": str(REPO), **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "analytics", *args],
            cwd=cwd or REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def seed(lake: Lake, files: Files) -> Lake:
    """Put order O1 (NEW, BUY 1000 AAPL) and its fill F1 in ``lake`` (version 1), so that fill and
    settlement rows can pass the referential rules."""
    res = ingest([files.jsonl("seed_events.jsonl", [Events.order(), Events.fill()])], lake)
    assert res.to_dict()["totals"]["accepted"] == 2 and lake.version() == 1
    return lake


@pytest.fixture(scope="session")
def seed_lake():
    return seed


@pytest.fixture
def seeded(lake: Lake, files: Files) -> Lake:
    return seed(lake, files)


@pytest.fixture(scope="session")
def sim_lake(tmp_path_factory) -> Lake:
    """A small simulated desk (2 days, 10 symbols, 80 orders a day), ingested, with its TCA stored."""
    from analytics import tca
    from analytics.simulate import SimConfig, simulate

    d = tmp_path_factory.mktemp("sim")
    simulate(d / "files", SimConfig(days=2, symbols=10, orders_per_day=80, seed=5, fills_per_order=20))
    lake = Lake(d / "lake")
    ingest([d / "files"], lake)
    tca.ensure(lake)
    return lake
