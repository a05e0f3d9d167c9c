"""Benchmark: building the training dataset of workload W1 (20K parent orders and their decisions' contexts from
20M quotes and 5M trades a day), and how it grows with 1, 5 and 20 such days.

For each size the W1 lake is simulated and ingested once (the 1-day lake of ``benchmarks/ingest.py --keep``,
``data/bench/lake``, is reused when present), then hard-linked into a private working copy (data files are
immutable, so the copy costs nothing and the shared lake is never written). The copy includes the source lake's
stored results (``derived/``): TCA already stored there for the current TCA code version is reused, so only the
dataset build is timed (``--fresh-tca`` leaves it out and recomputes). Each step runs in a fresh spawned
process; wall time is measured inside it around the step; peak memory is its ``ru_maxrss``:

(a) tca:     ``tca.ensure`` (stored per-order TCA, the outcome columns; a dataset build runs it when missing);
             skipped (reported ``stored``) when every order day is already stored
(b) dataset: ``datasets.build`` with the TCA stored: contexts (features at the orders' arrivals and at every
             decision), quality rules, labels (order and decision rows), hashing and the atomic write
(c) again:   the same build again (same lake version: recomputed, hash compared, no new version written)

The rules' precision/recall on the reference simulation is computed once beforehand and cached (it does not
depend on the workload). Figures to read, not a test.

    .venv/bin/python benchmarks/dataset.py [--days 1 5 20] [--scale 1.0]

``--scale`` shrinks orders, quotes and trades per day (e.g. 0.1 to see the growth curve quickly). Target
(issue): W1 (1 day, scale 1) under 30 s and 6 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

TARGET_S, TARGET_GB = 30.0, 6.0


def _child(step: str, lake: str) -> dict:
    from analytics import datasets, tca
    from analytics.store import Lake

    lk = Lake(lake)
    t = time.perf_counter()
    out: dict = {}
    if step == "tca":
        out["stored"] = not tca.missing_days(lk, lk.version())
        if not out["stored"]:
            tca.ensure(lk)
    else:
        ev = datasets.build(lk, "w1")
        out = {k: ev[k] for k in ("version", "rows", "quality_pct", "content_hash")} | {
            "versions": datasets.versions(lk, "w1"),
            "decision_rows": ev["decisions"]["rows"],
            "decision_quality_pct": ev["decisions"]["quality_pct"],
        }
    out["wall_s"] = time.perf_counter() - t
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out["peak_gb"] = ru.ru_maxrss / 1e6
    out["cpu_s"] = ru.ru_utime + ru.ru_stime  # the process's CPU time (imports included): readable under load
    return out


def run(step: str, lake: Path) -> dict:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as ex:
        return ex.submit(_child, step, str(lake)).result()


def source_lake(days: int, scale: float) -> Path:
    """The ingested W1 lake of ``days`` days at ``scale`` (built once, kept under data/bench)."""
    from ingest import W1, run_ingest, simulate_once

    if days == 1 and scale == 1.0 and (ROOT / "data/bench/lake/_manifest/CURRENT").exists():
        return ROOT / "data" / "bench" / "lake"
    cfg = {**W1, "days": days}
    for k in ("orders_per_day", "quotes_per_day", "trades_per_day"):
        cfg[k] = int(cfg[k] * scale)
    tag = f"{days}d" + ("" if scale == 1.0 else f"-x{scale:g}")
    src, lake = ROOT / "data" / "bench" / f"w1-{tag}", ROOT / "data" / "bench" / f"dataset-src-{tag}"
    if simulate_once(src, cfg) or not (lake / "_manifest" / "CURRENT").exists():
        shutil.rmtree(lake, ignore_errors=True)
        secs, _ = run_ingest(src, lake)
        print(f"  ingested {tag} in {secs:.1f} s")
    return lake


def working_copy(src: Path, days: int, scale: float, fresh_tca: bool = False) -> Path:
    """Hard-linked copy of the lake's tables, manifests and (unless ``fresh_tca``) stored results, never its
    datasets. Writers only ever add files or rename new ones over old names, so the source stays untouched."""
    dst = ROOT / "data" / "bench" / f"dataset-work-{days}d-x{scale:g}"
    shutil.rmtree(dst, ignore_errors=True)
    skip = ["datasets", "_lock", *(["derived"] if fresh_tca else [])]
    shutil.copytree(src, dst, copy_function=os.link, ignore=shutil.ignore_patterns(*skip))
    return dst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, nargs="+", default=[1])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--keep", action="store_true", help="keep the working copies")
    ap.add_argument("--fresh-tca", action="store_true", help="recompute the TCA even when the lake has it stored")
    args = ap.parse_args()
    from analytics import dataquality

    t = time.perf_counter()
    ref = dataquality.reference_scores(ROOT / "data" / "bench" / "dataset-cache")
    print(f"rule precision/recall on the reference simulation: {ref['precision']:.3f}/{ref['recall']:.3f} "
          f"({ref['faults']} faults; {time.perf_counter() - t:.1f} s, cached)")  # fmt: skip
    rows = []
    for days in args.days:
        print(f"W1 x {days} day(s), scale {args.scale:g}:")
        lake = working_copy(source_lake(days, args.scale), days, args.scale, args.fresh_tca)
        cache = lake / "datasets" / "_cache"
        cache.mkdir(parents=True)
        for f in (ROOT / "data" / "bench" / "dataset-cache").glob("*.json"):
            shutil.copy(f, cache / f.name)
        a = run("tca", lake)
        b = run("dataset", lake)
        c = run("dataset", lake)
        rows.append({"days": days, "tca_s": 0.0 if a["stored"] else a["wall_s"], "tca_stored": a["stored"],
                     "dataset_s": b["wall_s"], "dataset_cpu_s": b["cpu_s"], "again_s": c["wall_s"],
                     "decision_rows": b["decision_rows"],
                     "decision_quality_pct": b["decision_quality_pct"],
                     "peak_gb": max(a["peak_gb"], b["peak_gb"]), "tca_gb": a["peak_gb"], "dataset_gb": b["peak_gb"], "rows": b["rows"], "quality_pct": b["quality_pct"],
                     "same_hash": b["content_hash"] == c["content_hash"], "new_version": c["versions"] != b["versions"]})  # fmt: skip
        r = rows[-1]
        tca_txt = "stored" if r["tca_stored"] else f"{r['tca_s']:.1f} s"
        print(f"  tca {tca_txt} · dataset {r['dataset_s']:.1f} s, {r['dataset_cpu_s']:.1f} s CPU "
              f"(again {r['again_s']:.1f} s) · "
              f"peak {r['tca_gb']:.2f} GB (tca) / {r['dataset_gb']:.2f} GB (dataset) · {r['rows']:,} order rows "
              f"({r['quality_pct']:.2f}%) · {r['decision_rows']:,} decision rows ({r['decision_quality_pct']:.2f}%) · "
              f"same hash {r['same_hash']} · new version on rebuild {r['new_version']}")  # fmt: skip
        if not args.keep:
            shutil.rmtree(lake, ignore_errors=True)
    base = rows[0]
    print("\ndays  tca_s  dataset_s  total_s  x_first  peak_gb  rows")
    for r in rows:
        total = r["tca_s"] + r["dataset_s"]
        print(f"{r['days']:>4}  {r['tca_s']:5.1f}  {r['dataset_s']:9.1f}  {total:7.1f}  "
              f"{total / (base['tca_s'] + base['dataset_s']):7.2f}  {r['peak_gb']:7.2f}  {r['rows']:,}")  # fmt: skip
    if args.scale == 1.0 and rows[0]["days"] == 1:
        w1 = rows[0]["tca_s"] + rows[0]["dataset_s"]
        print(f"targets (W1, TCA + dataset): under {TARGET_S:.0f} s -> {'met' if w1 < TARGET_S else 'MISSED'} "
              f"({w1:.1f} s); under {TARGET_GB:.0f} GB -> {'met' if rows[0]['peak_gb'] < TARGET_GB else 'MISSED'}")  # fmt: skip
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
