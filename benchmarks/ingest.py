"""Benchmark: ingest of workload W1 (one day, 500 symbols, 20K parent orders, ~1M fills, 20M quotes, 5M trades).

Simulates W1 once (cached under data/bench/w1, reused while the simulator config is unchanged), then
ingests it into a fresh lake in a child process and prints wall time, rows/s and the child's peak RSS,
then re-ingests it (the idempotent no-op path). Targets (issue 3): under 60 s and under 4 GB on 2 cores.
These are figures to read, not a test.

    .venv/bin/python benchmarks/ingest.py [--days 1] [--keep]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
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


def run_ingest(src: Path, lake: Path) -> tuple[float, dict]:
    t = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "analytics", "ingest", str(src), "--lake", str(lake), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - t, json.loads(p.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the benchmark lake")
    args = ap.parse_args()
    cfg = {**W1, "days": args.days}
    src = ROOT / "data" / "bench" / f"w1-{args.days}d"
    sim_s = simulate_once(src, cfg)
    size = sum(f.stat().st_size for f in src.rglob("*") if f.is_file())
    print(f"workload: {json.dumps(cfg)}")
    print(
        f"input: {size / 1e9:.2f} GB in {sum(1 for _ in src.rglob('*.*'))} files"
        + (f", simulated in {sim_s:.1f} s" if sim_s else " (cached)")
    )

    lake = ROOT / "data" / "bench" / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    secs, res = run_ingest(src, lake)
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6  # KiB -> GB
    rows = res["totals"]["read"]
    print(f"ingest: {secs:.1f} s wall, {rows:,} rows, {rows / secs:,.0f} rows/s, peak RSS {peak_gb:.2f} GB")
    for t, c in res["tables"].items():
        print(f"  {t:<18} read {c['read']:>12,}  accepted {c['accepted']:>12,}  quarantined {c['quarantined']:>8,}")
    secs2, res2 = run_ingest(src, lake)
    same = res2["version"] == res["version"]
    print(
        f"re-ingest (no-op): {secs2:.1f} s wall, version unchanged: {same}, duplicates {res2['totals']['duplicate']:,}"
    )
    lake_size = sum(f.stat().st_size for f in lake.rglob("*") if f.is_file())
    print(f"lake on disk: {lake_size / 1e9:.2f} GB")
    print(
        f"targets: under 60 s -> {'met' if secs < 60 else 'MISSED'}; under 4 GB -> {'met' if peak_gb < 4 else 'MISSED'}"
    )
    if not args.keep:
        shutil.rmtree(lake, ignore_errors=True)


if __name__ == "__main__":
    main()
