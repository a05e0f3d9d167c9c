"""Benchmark: ingest of workload W1 (one day, 500 symbols, 20K parent orders, ~1M fills, 20M quotes, 5M trades),
against the code of a baseline revision in the same run, and the memory of a large JSON Lines ingest.

Simulates W1 once (cached under data/bench/w1, reused while the simulator config is unchanged), then ingests
it into a fresh lake in a child process with this checkout's code and with the baseline's (``git archive``
of ``--baseline``, default the merge base with ``main``), and prints wall time, rows/s, the child's peak RSS
and the ratio new / baseline; then re-ingests it (the idempotent no-op path). Then writes a JSON Lines file
of ``--jsonl-gb`` GB (orders and their fills, one event per line) and prints the peak RSS of ingesting it.
Targets (issue 15): W1 within 20 s with the new checks; a 1 GB JSON Lines file must not need several GB.
These are figures to read, not a test.

    .venv/bin/python benchmarks/ingest.py [--days 1] [--baseline REV] [--jsonl-gb 1.0] [--skip-w1] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

W1 = {
    "days": 1,
    "symbols": 500,
    "orders_per_day": 20_000,
    "fills_per_order": 50,
    "quotes_per_day": 20_000_000,
    "trades_per_day": 5_000_000,
    "seed": 1,
}

# Runs the command and prints its peak RSS (KiB) last: the RSS of that child alone, not of earlier runs.
_MEASURE = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)"
)


def simulate_once(out: Path, cfg: dict) -> float:
    from analytics.simulate import SimConfig, simulate

    stamp = out / ".config.json"
    if stamp.exists() and json.loads(stamp.read_text()) == cfg:
        return 0.0
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t = time.perf_counter()
    simulate(out, SimConfig(**cfg))
    stamp.write_text(json.dumps(cfg))
    return time.perf_counter() - t


def run_ingest(paths: list[Path], lake: Path, code: Path = ROOT) -> tuple[float, float, dict]:
    """(wall seconds, peak RSS in GB, the --json result) of ``python -m analytics ingest`` with the code at
    ``code``."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    t = time.perf_counter()
    cmd = [sys.executable, "-m", "analytics", "ingest", *map(str, paths), "--lake", str(lake), "--json"]
    p = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
    )
    secs = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"ingest failed ({code}):\n{p.stderr[-3000:]}")
    rss_kib = int(p.stderr.strip().splitlines()[-1])
    return secs, rss_kib / 1e6 * 1.024, json.loads(p.stdout)


def baseline_code(rev: str, into: Path) -> Path:
    """The ``analytics`` package of revision ``rev``, exported under ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    tar = subprocess.run(["git", "archive", rev, "analytics"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=tar, check=True)
    return into


def write_jsonl(path: Path, gb: float) -> tuple[int, int]:
    """Orders and their fills as JSON Lines (orders first), about ``gb`` GB; returns (orders, fills)."""
    import polars as pl

    per_order, line_bytes = 20, 255  # measured line size of the fills below
    n_fills = int(gb * 1e9 / line_bytes)
    n_orders = max(n_fills // per_order, 1)
    ts = "2026-03-02T14:30:00Z"
    o = pl.DataFrame({"i": pl.int_range(n_orders, eager=True)}).select(
        event_type=pl.lit("OrderEvent"),
        event_id=pl.format("o{}", "i"),
        order_id=pl.format("O{}", "i"),
        ts=pl.lit(ts),
        action=pl.lit("NEW"),
        symbol=pl.format("S{}", pl.col("i") % 500),
        side=pl.lit("BUY"),
        quantity=pl.lit(per_order * 100.0),
        broker=pl.lit("GS"),
        algo=pl.lit("VWAP"),
    )
    f = pl.DataFrame({"j": pl.int_range(n_orders * per_order, eager=True)}).select(
        event_type=pl.lit("TradeExecutedEvent"),
        event_id=pl.format("f{}", "j"),
        fill_id=pl.format("F{}", "j"),
        order_id=pl.format("O{}", pl.col("j") // per_order),
        ts=pl.format(
            "2026-03-02T14:{}:{}.{}Z", 31 + pl.col("j") % 20, 10 + pl.col("j") % 50, 100000 + pl.col("j") % 899999
        ),
        symbol=pl.format("S{}", (pl.col("j") // per_order) % 500),
        side=pl.lit("BUY"),
        quantity=pl.lit(100.0),
        price=100.0 + (pl.col("j") % 997) / 100,
        venue=pl.lit("XNAS"),
        liquidity=pl.lit("REMOVE"),
        child_order_id=pl.format("C{}", pl.col("j") // 4),
        commission=pl.lit(0.35),
    )
    with open(path, "wb") as fh:
        o.write_ndjson(fh)
        f.write_ndjson(fh)
    return o.height, f.height


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--baseline", default=None, help="git revision to compare with (default: merge base with main)")
    ap.add_argument("--jsonl-gb", type=float, default=1.0, help="size of the JSON Lines file (0 = skip)")
    ap.add_argument("--skip-w1", action="store_true")
    ap.add_argument("--repeat", type=int, default=2, help="W1 runs per code, interleaved; the fastest is kept")
    ap.add_argument("--keep", action="store_true", help="keep the benchmark lakes")
    args = ap.parse_args()
    bench = ROOT / "data" / "bench"
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=bench if bench.exists() else None))
    rev = (
        args.baseline
        or subprocess.run(
            ["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    try:
        base = baseline_code(rev, tmp / "base")
        if not args.skip_w1:
            cfg = {**W1, "days": args.days}
            src = bench / f"w1-{args.days}d"
            sim_s = simulate_once(src, cfg)
            size = sum(f.stat().st_size for f in src.rglob("*") if f.is_file())
            print(f"workload: {json.dumps(cfg)}")
            print(
                f"input: {size / 1e9:.2f} GB in {sum(1 for _ in src.rglob('*.*'))} files"
                + (f", simulated in {sim_s:.1f} s" if sim_s else " (cached)")
            )
            figures: dict[str, tuple[float, float]] = {}
            runs = [("baseline " + rev[:10], base), ("this checkout", ROOT)] * args.repeat
            for k, (label, code) in enumerate(runs):
                lake = tmp / f"lake-{k}"
                secs, gb, res = run_ingest([src], lake, code)
                rows = res["totals"]["read"]
                best = figures.get(label, (float("inf"), 0.0))
                figures[label] = (min(best[0], secs), max(best[1], gb))
                print(f"{label}: {secs:.1f} s wall, {rows:,} rows, {rows / secs:,.0f} rows/s, peak RSS {gb:.2f} GB")
                if code == ROOT and k == len(runs) - 1:
                    for t, c in res["tables"].items():
                        print(
                            f"  {t:<18} read {c['read']:>12,}  accepted {c['accepted']:>12,}  "
                            f"quarantined {c['quarantined']:>8,}  held {c.get('held', 0):>6,}"
                        )
                    secs2, _, res2 = run_ingest([src], lake, code)
                    print(
                        f"  re-ingest (no-op): {secs2:.1f} s wall, version unchanged: "
                        f"{res2['version'] == res['version']}, duplicates {res2['totals']['duplicate']:,}"
                    )
                if not args.keep:
                    shutil.rmtree(lake, ignore_errors=True)
            (b_s, b_gb), (n_s, n_gb) = figures.values()
            print(f"fastest of {args.repeat}: baseline {b_s:.1f} s, this {n_s:.1f} s")
            print(f"ratio this / baseline: time {n_s / b_s:.2f}, peak RSS {n_gb / b_gb:.2f}")
            print(f"target W1 within 20 s: {'met' if n_s <= 20 else 'MISSED'} ({n_s:.1f} s)")
        if args.jsonl_gb > 0:
            path = tmp / "events.jsonl"
            n_o, n_f = write_jsonl(path, args.jsonl_gb)
            gb_in = path.stat().st_size / 1e9
            print(f"JSON Lines: {gb_in:.2f} GB, {n_o:,} orders + {n_f:,} fills")
            for label, code in (("baseline " + rev[:10], base), ("this checkout", ROOT)):
                lake = tmp / f"lake-jsonl-{label[:4]}"
                secs, gb, res = run_ingest([path], lake, code)
                print(
                    f"  {label}: {secs:.1f} s wall, peak RSS {gb:.2f} GB ({gb / gb_in:.1f}x the file); "
                    f"accepted {res['totals']['accepted']:,}"
                )
                shutil.rmtree(lake, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
