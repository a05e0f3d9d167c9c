"""Benchmark: the execution-quality report over W1 and over one year of history, and the Quality page's interactions.

For each lake (W1: data/bench/lake from benchmarks/ingest.py; the year: data/bench/history-lake from
benchmarks/history.py) and span, a fresh child process times, after ``tca.ensure`` (stored TCA; computed and
stored first if missing):

- stage 1, ``ensure_sums``: the fills summed per (order, venue) and day, stored once per lake version (the days
  already stored cost nothing; ``--recompute-sums`` drops this module's stored sums first to time it);
- ``load_orders``: the stored order rows of the span (the page shares ui.state's cached copy);
- ``analyse`` by venue, algo and broker: stage 2, the stored sums of the span joined to its orders and grouped
  by (block, week, month, key), rolled up, then the seeded cluster bootstrap (400 replicates) in numpy;
- ``adjust``: the difficulty regression with its score bootstrap (venue: a per-(order, venue) DuckDB aggregate);
- ``rule605`` and ``report`` (the ExecutionQualityReportEvent rows);
- what a warm page rerun costs: the st.cache_data hit (unpickling the cached results, as Streamlit does on
  every hit) plus the page's own per-rerun work (recommendations, comparisons, the events frame, the shown
  table);
- peak RSS of the child.

Then (``--apptest``) the real page through ``streamlit.testing.v1.AppTest`` on the year: first run (cold caches),
rerun (warm), flip the adjustment toggle, switch to algo. Figures to read, not a test.

    .venv/bin/python benchmarks/quality.py [--w1 DIR] [--history DIR] [--month 2026-06] [--apptest] [--skip-w1]

Targets (issue): page interactions under 300 ms warm over a year of history.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pickle
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def _timed(fn, reps: int = 1):
    times, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def child(lake_dir: str, start: str | None, end: str | None) -> dict:
    import polars as pl

    from analytics import quality as q
    from analytics import tca
    from analytics.filters import Filters
    from analytics.store import Lake

    lake = Lake(lake_dir)
    s, e = (dt.date.fromisoformat(start) if start else None), (dt.date.fromisoformat(end) if end else None)
    fig: dict = {}
    v, fig["tca_ensure_s"] = _timed(lambda: tca.ensure(lake, s, e))
    con = lake.connect(lake.manifest(v))
    if os.environ.get("BENCH_RECOMPUTE_SUMS") == "1":  # only this module's own derived output is dropped
        shutil.rmtree(lake.derived_dir(q.SUMS), ignore_errors=True)
    fig["sum_days"] = len(q.missing_sum_days(lake, v, s, e))
    _, fig["stage1_sums_s"] = _timed(lambda: q.ensure_sums(lake, con, s, e, v))
    f = Filters(start=s, end=e)
    orders, fig["load_orders_s"] = _timed(lambda: tca.load_orders(lake, con, f, v))
    fig["orders"] = orders.height
    res = {}
    for dim in ("venue", "algo", "broker"):
        an, fig[f"analyse_{dim}_s"] = _timed(lambda d=dim: q.analyse(lake, con, f, d, v, orders=orders))
        adj, fig[f"adjust_{dim}_s"] = _timed(
            lambda d=dim: q.adjust(q.adjustment_units(lake, con, f, d, orders, v), dimension=d)
        )
        res[dim] = (an, adj)
    fig["fills"] = int(res["venue"][0].leaderboard["fills"].sum())
    _, fig["rule605_s"] = _timed(lambda: q.rule605(lake, con, f, v, orders=orders))
    _, fig["report_s"] = _timed(lambda: q.report(lake, con, f, "venue", v, an=res["venue"][0]))
    # A warm rerun: the cache hits (unpickle) and the page's own work on the cached results.
    for dim, (an, adj) in res.items():
        blob = pickle.dumps((an, adj))
        fig[f"cache_hit_{dim}_s"] = _timed(lambda b=blob: pickle.loads(b), reps=5)[1]
        fig[f"cache_bytes_{dim}"] = len(blob)

        def rerun(an=an, adj=adj, dim=dim):
            routing = q.venue_routing_pairs(an) if dim == "venue" else None
            q.recommendations(adj, routing)
            q.report(lake, con, f, dim, v, an=an)
            lb = an.leaderboard
            lb.with_columns(pl.when(~pl.col("small_sample")).then(pl.col("score")).alias("score")).write_csv()
            return an.trend.filter(pl.col("period") == "week")

        fig[f"rerun_work_{dim}_s"] = _timed(rerun, reps=5)[1]
    fig["peak_rss_gb"] = _peak_gb()
    drkb = res["venue"][0].leaderboard.filter(pl.col("key") == "DRKB")
    if drkb.height:
        r = drkb.row(0, named=True)
        fig["drkb_markout_60s"] = [
            r["markout_cost_bps_60s"],
            r["markout_cost_bps_60s_lo"],
            r["markout_cost_bps_60s_hi"],
        ]
    t = res["algo"][1].table
    fig["algo_adjusted"] = {k: round(x, 2) for k, x in zip(t["key"], t["adjusted_bps"], strict=True)}
    return fig


def run_child(lake: Path, start: str | None, end: str | None) -> dict:
    p = subprocess.run(
        [sys.executable, __file__, "--child", str(lake), start or "", end or ""],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    if p.returncode != 0:
        print(p.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"child failed on {lake}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def show(name: str, fig: dict) -> None:
    print(f"\n== {name}: {fig['orders']:,} orders, {fig['fills']:,} fills, peak RSS {fig['peak_rss_gb']:.2f} GB")
    print(f"  stage 1 (once per lake version): {fig['sum_days']} day(s) of fills summed per (order, venue)")
    for k, val in fig.items():
        if k.endswith("_s"):
            print(f"  {k:<28} {val * 1000:>10.1f} ms")
    for dim in ("venue", "algo", "broker"):
        warm = fig[f"cache_hit_{dim}_s"] + fig[f"rerun_work_{dim}_s"]
        cold = fig[f"analyse_{dim}_s"] + fig[f"adjust_{dim}_s"] + warm  # stage 1 stored already
        print(f"  page by {dim:<7} cold ≈ {cold:6.2f} s (+ load_orders), warm rerun ≈ {warm * 1000:6.1f} ms "
              f"(cached {fig[f'cache_bytes_{dim}'] / 1e6:.1f} MB)")  # fmt: skip
    if "drkb_markout_60s" in fig:
        m, lo, hi = fig["drkb_markout_60s"]
        print(f"  DRKB 60s markout {m:.2f} bps [{lo:.2f}, {hi:.2f}]; algo adjusted cost {fig['algo_adjusted']}")


def apptest(lake: Path) -> None:
    from streamlit.testing.v1 import AppTest

    os.environ["ANALYTICS_LAKE"] = str(lake)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=900)
    t = time.perf_counter()
    at.run()
    print(f"\n== AppTest on {lake.name}: app.py default page {time.perf_counter() - t:.2f} s")
    steps = [
        ("Quality page, first run (cold)", lambda: at.switch_page("app_pages/quality.py").run()),
        ("rerun (warm)", lambda: at.run()),
        ("toggle difficulty-adjusted", lambda: at.toggle(key="q_adjusted").set_value(True).run()),
        ("switch to algo (cold)", lambda: at.segmented_control(key="q_dim").set_value("algo").run()),
        ("switch back to venue (warm)", lambda: at.segmented_control(key="q_dim").set_value("venue").run()),
        ("toggle raw (warm)", lambda: at.toggle(key="q_adjusted").set_value(False).run()),
    ]
    for name, fn in steps:
        t = time.perf_counter()
        fn()
        print(f"  {name:<34} {(time.perf_counter() - t) * 1000:>9.0f} ms  exception={bool(at.exception)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--w1", default=str(ROOT / "data" / "bench" / "lake"))
    ap.add_argument("--history", default=str(ROOT / "data" / "bench" / "history-lake"))
    ap.add_argument("--month", default="2026-06", help="a month of the history to time as well")
    ap.add_argument("--apptest", action="store_true")
    ap.add_argument("--skip-w1", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("LAKE", "START", "END"))
    ap.add_argument("--recompute-sums", action="store_true", help="drop and time the stored per-(order, venue) sums")
    a = ap.parse_args()
    if a.recompute_sums:
        os.environ["BENCH_RECOMPUTE_SUMS"] = "1"
    if a.child:
        print(json.dumps(child(a.child[0], a.child[1] or None, a.child[2] or None)))
        return
    if not a.skip_w1 and Path(a.w1).exists():
        show("W1 (all days)", run_child(Path(a.w1), None, None))
    hist = Path(a.history)
    if hist.exists():
        m0 = dt.date.fromisoformat(a.month + "-01")
        m1 = (m0.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
        show(f"history, one month ({a.month})", run_child(hist, m0.isoformat(), m1.isoformat()))
        show("history, one year", run_child(hist, None, None))
        if a.apptest:
            apptest(hist)


if __name__ == "__main__":
    main()
