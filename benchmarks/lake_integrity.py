"""Benchmark: what the lake's integrity machinery costs (issue 15), on synthetic frames in a temp folder.

1. Writer append of ``--trades`` market-data rows (W1: 5M trades): the Writer (Parquet serialised once in
   memory, SHA-256 of those bytes, one write + fsync) against the previous way (``write_parquet`` to the file,
   fsync, no hash), same partitioning and sort, in the same process, best of 2 each.
2. ``Lake.verify`` over that lake (reads and hashes every byte).
3. ``tca.input_fingerprints`` over ``--orders`` orders and ``--fills`` fills (W1: 20K and 1M): cold (hash check
   of the event files + one DuckDB scan of orders/fills/settlements/decisions), from the on-disk cache (a new
   process), warm (memory).
4. A writer's start (lock, CURRENT, orphan sweep) on a lake of 300 versions, and after a rollback to v150.

    .venv/bin/python benchmarks/lake_integrity.py [--trades 5000000] [--orders 20000] [--fills 1000000]

Figures to read, not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics import store, tca
from analytics.schema import TABLES
from analytics.store import Lake, empty_frame


def frame(table: str, cols: dict) -> pl.DataFrame:
    """``cols`` in the table's schema, every other column null."""
    e = empty_frame(table)
    n = len(next(iter(cols.values())))
    return pl.DataFrame(
        [pl.Series(c, cols[c], dtype=d) if c in cols else pl.repeat(None, n, dtype=d, eager=True).alias(c)
         for c, d in e.schema.items()]
    )  # fmt: skip


def plain_write(root: Path, table: str, df: pl.DataFrame) -> None:
    """The writer before hashes: partition, sort, write_parquet to the file, fsync (no hash, no manifest)."""
    spec = TABLES[table]
    df = df.with_columns(pl.col(spec.time_col).dt.date().alias("__part"))
    for (day,), chunk in df.partition_by("__part", as_dict=True, maintain_order=True).items():
        chunk = chunk.drop("__part").sort(list(spec.sort), nulls_last=True, maintain_order=True)
        path = root / f"{table}-{day}.parquet"
        chunk.write_parquet(path, compression="zstd", compression_level=1, row_group_size=122_880)
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trades", type=int, default=5_000_000)
    ap.add_argument("--orders", type=int, default=20_000)
    ap.add_argument("--fills", type=int, default=1_000_000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp(prefix="lake-integrity-"))
    try:
        t0 = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)
        n = args.trades
        ts = t0 + pl.Series(rng.integers(0, 20 * 86_400_000_000, n)).cast(pl.Duration("us"))
        trades = frame("trades", {"symbol": rng.choice([f"S{i}" for i in range(500)], n), "ts": ts,
                                  "price": 100 + rng.random(n), "size": rng.integers(1, 1000, n).astype(float)})  # fmt: skip
        times: dict[str, list[float]] = {"plain": [], "writer": []}
        for _ in range(2):
            d = tmp / "plain"
            d.mkdir()
            t = time.perf_counter()
            plain_write(d, "trades", trades)
            times["plain"].append(time.perf_counter() - t)
            shutil.rmtree(d)
            lk = Lake(tmp / "w")
            t = time.perf_counter()
            with lk.writer() as w:
                w.append("trades", trades)
            times["writer"].append(time.perf_counter() - t)
            t = time.perf_counter()
            rep = lk.verify()
            t_verify = time.perf_counter() - t
            size = sum(e.size for e in lk.manifest().all_entries())
            shutil.rmtree(tmp / "w")
        p, w = min(times["plain"]), min(times["writer"])
        print(f"1. append {n:,} trades: plain write {p:.2f} s, Writer with SHA-256 {w:.2f} s (ratio {w / p:.2f}; "
              f"runs {[round(x, 2) for x in times['plain']]} / {[round(x, 2) for x in times['writer']]})")  # fmt: skip
        print(f"2. verify: {rep['files']} files, {size / 1e6:.0f} MB in {t_verify:.2f} s, ok={rep['ok']}")

        no, nf = args.orders, args.fills
        oid = np.array([f"O{i}" for i in range(no)])
        ots = t0 + pl.Series((np.arange(no) % 20) * 86_400_000_000 + rng.integers(0, 6 * 3600_000_000, no)).cast(
            pl.Duration("us")
        )
        orders = frame("orders", {"event_id": [f"o{i}" for i in range(no)], "order_id": oid, "ts": ots,
                                  "action": ["NEW"] * no, "symbol": [f"S{i % 500}" for i in range(no)],
                                  "side": ["BUY"] * no, "quantity": [1000.0] * no})  # fmt: skip
        fo = rng.integers(0, no, nf)
        fts = ots.gather(fo) + pl.Series(rng.integers(1, 3_000_000_000, nf)).cast(pl.Duration("us"))
        fills = frame("fills", {"event_id": [f"f{i}" for i in range(nf)], "fill_id": [f"F{i}" for i in range(nf)],
                                "order_id": oid[fo], "ts": fts, "symbol": [f"S{j % 500}" for j in fo],
                                "side": ["BUY"] * nf, "quantity": rng.integers(1, 100, nf).astype(float),
                                "price": 100 + rng.random(nf)})  # fmt: skip
        lk = Lake(tmp / "events")
        with lk.writer() as w:
            w.append("orders", orders)
            w.append("fills", fills)
        t = time.perf_counter()
        fps = tca.input_fingerprints(lk)
        cold = time.perf_counter() - t
        tca._FP_CACHE.clear()
        tca._EVENTS_CACHE.clear()
        store._VERIFIED.clear()
        t = time.perf_counter()
        tca.input_fingerprints(lk)
        disk = time.perf_counter() - t
        t = time.perf_counter()
        tca.input_fingerprints(lk)
        warm = time.perf_counter() - t
        print(f"3. input_fingerprints, {no:,} orders / {nf:,} fills / {len(fps)} days: cold {cold:.2f} s, "
              f"new process (events from disk, files re-hashed) {disk:.2f} s, warm {warm * 1e3:.2f} ms")  # fmt: skip

        lk = Lake(tmp / "many")
        cols = list(empty_frame("returns").columns)
        for i in range(300):
            df = pl.DataFrame(
                {"date": [dt.date(2025, 1, 1) + dt.timedelta(days=i)], "symbol": [f"S{i}"], "return": [0.01]}
            )
            df = df.with_columns(fx_return=pl.lit(None, pl.Float64), extra=pl.lit(None, pl.String),
                                 _batch=pl.lit("b"), _hash=pl.lit(None, pl.String))  # fmt: skip
            with lk.writer() as w:
                w.append("returns", df.select(cols))
        t = time.perf_counter()
        with lk.writer():
            pass
        start = time.perf_counter() - t
        lk.repair(to=150)
        t = time.perf_counter()
        with lk.writer():
            pass
        after = time.perf_counter() - t
        print(
            f"4. a writer's start and sweep at v300: {start * 1e3:.0f} ms; after a rollback to v150: {after * 1e3:.0f} ms"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
