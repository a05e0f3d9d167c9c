"""Benchmark: per-order TCA on workload W1 (20K orders, ~1M fills, 20M quotes, 5M trades), against its floor and
a pandas reference.

Steps, each run in a fresh spawned process with a fresh DuckDB connection over the lake (``Lake(root).connect()``):

(a) bare:   a bare DuckDB ASOF join of the fills to the quotes, fetched to Arrow: the floor any
            implementation pays (``fills f ASOF LEFT JOIN quotes q ON f.symbol = q.symbol AND f.ts >= q.ts``).
(b) ours:   the full ``analytics.tca.compute(con, lake=...)`` (as ``tca.ensure`` runs it).
(c) pandas: benchmarks/_pandas_tca.py, a straightforward pandas implementation (one sorted ``merge_asof``,
            cumsum VWAP) of arrival price, interval VWAP, arrival cost and the six markouts, reading the same
            Parquet files. With ``--pandas-sample F`` (default 1 = every symbol; 0.1 with ``--quick``) it runs
            on a random share of the symbols and its time is scaled up by the sample's share of the fills.

Wall time is measured inside the child around the step alone (after its imports; opening the connection is
included); peak memory is the child's ``ru_maxrss`` at the end of the step (it includes the interpreter and
imports, shown separately as the baseline). Each figure is the median of ``--runs`` runs (3; 1 with
``--quick``). Then it checks pandas' results against ours on the orders pandas covered, times each SQL
statement of ``tca.compute`` (through a timing proxy of the connection, no change to analytics/) and lists
the heaviest operators of the heaviest statements (DuckDB's JSON profiler, a separate run). Figures to read,
not a test.

    .venv/bin/python benchmarks/ingest.py --keep        # builds data/bench/lake (about 1.5 min)
    .venv/bin/python benchmarks/tca.py [--lake DIR] [--quick] [--runs N] [--pandas-sample F]

Targets (issue): W1 full TCA under 30 s, peak memory under 6 GB, at least 10x faster than pandas.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_LAKE = ROOT / "data" / "bench" / "lake"
TARGET_S, TARGET_GB, TARGET_X = 30.0, 6.0, 10.0
REL_TOL = 1e-6  # |ours - pandas| <= REL_TOL * max(1, |pandas|)
CHECK_COLS = ["arrival_price", "interval_vwap", "avg_fill_price", "arrival_cost_bps"]
BARE_SQL = """SELECT f.fill_id, f.ts, f.symbol, f.price, (q.bid + q.ask) / 2 AS mid
              FROM fills f ASOF LEFT JOIN quotes q ON f.symbol = q.symbol AND f.ts >= q.ts"""


# -- child side ---------------------------------------------------------------------------------------------
def _rss_gb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process (DuckDB's workers too)
    return r.ru_utime + r.ru_stime


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux


def _connect(lake: str):
    from analytics.store import Lake

    con = Lake(lake).connect()
    con.execute("SET enable_progress_bar = false")
    return con


def _step(name: str, lake: str, out: str | None, symbols: list[str] | None) -> dict:
    """Run one step in this (fresh) process: its wall time, peak RSS and, if ``out``, its result as Parquet."""
    import duckdb  # noqa: F401  (imports before the baseline and the clock)
    import polars as pl

    from analytics import tca
    from analytics.store import Lake

    if name == "pandas":
        import _pandas_tca as ptca
    base = _rss_gb()
    load = os.getloadavg()[0]
    c0, t0 = _cpu_s(), time.perf_counter()
    extra: dict = {}
    if name == "bare":
        con = _connect(lake)
        tbl = con.sql(BARE_SQL).to_arrow_table()
        extra["rows"] = tbl.num_rows
        extra["matched"] = tbl.num_rows - tbl.column("mid").null_count
    elif name == "ours":
        con = _connect(lake)
        res = tca.compute(con, lake=Lake(lake))  # as `tca.ensure` runs it: quotes read from the pruned files
        extra["rows"] = res.orders.height
    elif name == "pandas":
        df = ptca.run(lake, symbols)
        extra["rows"] = len(df)
    else:
        raise ValueError(name)
    secs, cpu = time.perf_counter() - t0, _cpu_s() - c0
    peak = _peak_gb()
    if out and name == "ours":
        res.orders.select("order_id", *CHECK_COLS, pl.selectors.starts_with("markout_cost_bps_")).write_parquet(out)
    elif out and name == "pandas":
        df.to_parquet(out)
    return {"secs": secs, "cpu": cpu, "peak_gb": peak, "base_gb": base, "load": load, **extra}


class _TimedRelation:
    def __init__(self, rel, log: list, label: str, prof: str | None):
        self._rel, self._log, self._label, self._prof = rel, log, label, prof

    def pl(self):
        t, c = time.perf_counter(), _cpu_s()
        df = self._rel.pl()
        self._log.append((self._label, time.perf_counter() - t, _cpu_s() - c, self._prof))
        return df


class _TimedConnection:
    """Passes every call to a DuckDB connection and logs the wall time of each statement (``execute``; for
    ``sql``, the statements it runs eagerly and the fetch of the relation it returns). With ``profile_dir``,
    DuckDB's JSON profile of each statement goes to its own file there."""

    def __init__(self, con, profile_dir: str | None = None):
        self._con, self.log, self._profile_dir, self._n = con, [], profile_dir, 0

    @staticmethod
    def _label(sql: str) -> str:
        m = re.search(r"TEMP TABLE (\w+)", sql)
        if m:
            return m.group(1)
        if "rpm" in sql:
            return "orders: RPM range join, fetch"
        if "FROM px2" in sql:
            return "orders: final SELECT, fetch"
        if "_tca_fm" in sql:
            return "fills: fetch _tca_fm to Polars"
        return " ".join(sql.split())[:38]

    def _profile_to(self) -> str | None:
        if not self._profile_dir:
            return None
        self._n += 1
        path = os.path.join(self._profile_dir, f"{self._n:03d}.json")
        self._con.execute(f"SET profiling_output = '{path}'")
        return path

    def execute(self, sql, params=None):
        prof = self._profile_to()
        t, c = time.perf_counter(), _cpu_s()
        r = self._con.execute(sql, params)
        self.log.append((self._label(sql), time.perf_counter() - t, _cpu_s() - c, prof))
        return r

    def sql(self, sql, params=None):
        import duckdb

        statements = [st.query for st in duckdb.extract_statements(sql)]
        prof = self._profile_to()
        t, c = time.perf_counter(), _cpu_s()
        rel = self._con.sql(sql, params=params)  # runs all but the last statement now
        if len(statements) > 1:
            self.log.append((self._label(statements[0]), time.perf_counter() - t, _cpu_s() - c, prof))
        return _TimedRelation(rel, self.log, self._label(statements[-1]), self._profile_to())

    def __getattr__(self, name):
        return getattr(self._con, name)


def _stages(lake: str, profile: bool) -> dict:
    """One instrumented ``tca.compute``: wall time per statement; with ``profile``, the top operators of each."""
    from analytics import tca
    from analytics.store import Lake

    con = _connect(lake)
    tmp = tempfile.mkdtemp(prefix="tca-prof-") if profile else None
    if profile:
        con.execute("SET enable_profiling = 'json'")
    tc = _TimedConnection(con, tmp)
    t0, c0 = time.perf_counter(), _cpu_s()
    tca.compute(tc, lake=Lake(lake))  # type: ignore[arg-type]
    total, cpu = time.perf_counter() - t0, _cpu_s() - c0
    stages = []
    for label, secs, cpu_s, prof in tc.log:
        ops = []
        if prof and os.path.exists(prof):
            ops = _top_operators(json.loads(Path(prof).read_text()))
        stages.append({"label": label, "secs": secs, "cpu": cpu_s, "ops": ops})
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    sizes = {}
    for t in ("_tca_o", "_tca_f", "_tca_p", "_tca_q", "_tca_m", "_tca_t"):
        sizes[t] = con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
    return {"total": total, "cpu": cpu, "stages": stages, "sizes": sizes}


def _top_operators(tree: dict, n: int = 3) -> list[tuple[str, float, int]]:
    """(operator, seconds, rows out) of the heaviest operators of a DuckDB JSON profile (timings are summed
    over threads)."""
    out = []

    def walk(node):
        if node.get("name") not in (None, "RESULT_COLLECTOR", "Query"):
            out.append((node["name"], float(node.get("timing", 0.0)), int(node.get("intermediate_rows", 0))))
        for c in node.get("children", []):
            walk(c)

    for op in tree.get("operator", tree.get("children", [])):
        walk(op)
    return sorted(out, key=lambda x: -x[1])[:n]


# -- parent side --------------------------------------------------------------------------------------------
def _in_child(fn, *args):
    ctx = get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as ex:
        return ex.submit(fn, *args).result()


def _load_avg() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _workload(lake: str) -> dict:
    con = _connect(lake)
    n = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("quotes", "trades", "fills")}
    n["orders"] = con.execute("SELECT count(*) FROM orders WHERE action = 'NEW'").fetchone()[0]
    n["version"] = con.execute("SELECT version FROM lake_version").fetchone()[0]
    fills_by_symbol = dict(con.execute("SELECT symbol, count(*) FROM fills GROUP BY 1").fetchall())
    con.close()
    return {**n, "fills_by_symbol": fills_by_symbol}


def _summarise(res: list[dict]) -> dict:
    return {
        "secs": statistics.median(r["secs"] for r in res),
        "cpu": statistics.median(r["cpu"] for r in res),
        "all": [r["secs"] for r in res],
        "peak_gb": max(r["peak_gb"] for r in res),
        "base_gb": statistics.median(r["base_gb"] for r in res),
        **{k: v for k, v in res[0].items() if k not in ("secs", "cpu", "peak_gb", "base_gb", "load")},
    }


def _check(ours_path: str, pandas_path: str) -> list[str]:
    import polars as pl

    ours = pl.read_parquet(ours_path)
    ref = pl.read_parquet(pandas_path)
    cols = [c for c in ref.columns if c != "order_id"]
    j = ref.join(ours, on="order_id", how="left", suffix="_ours")
    lines = [f"check vs pandas on {ref.height:,} orders ({j.filter(pl.col(cols[0] + '_ours').is_null()).height} "
             f"without a row of ours with {cols[0]}); pass = |ours - pandas| <= {REL_TOL:g} * max(1, |pandas|)"]  # fmt: skip
    worst = []
    for c in cols:
        a, b = pl.col(c + "_ours"), pl.col(c)
        r = j.select(
            null_mismatch=(a.is_null() != b.is_null()).sum(),
            both=(a.is_not_null() & b.is_not_null()).sum(),
            max_abs=(a - b).abs().max(),
            max_rel=((a - b).abs() / pl.max_horizontal(b.abs(), pl.lit(1.0))).max(),
            bad=((a - b).abs() > REL_TOL * pl.max_horizontal(b.abs(), pl.lit(1.0))).sum(),
        ).row(0, named=True)
        ok = r["null_mismatch"] == 0 and r["bad"] == 0
        lines.append(
            f"  {c:<24} compared {r['both']:>6,}  null mismatches {r['null_mismatch']:>5}  "
            f"max abs diff {r['max_abs'] or 0:.3g}  max scaled diff {r['max_rel'] or 0:.3g}  "
            f"over tol {r['bad']:>5}  {'OK' if ok else 'MISMATCH'}"
        )
        if not ok:
            bad = j.filter((a.is_null() != b.is_null()) | ((a - b).abs() > REL_TOL * pl.max_horizontal(b.abs(), 1.0)))
            worst.append(f"    e.g. {c}: " + bad.select("order_id", c, c + "_ours").head(3).rows().__repr__())
    return lines + worst


def _fmt_runs(r: dict) -> str:
    return "(" + ", ".join(f"{s:.2f}" for s in r["all"]) + ")"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lake", default=str(DEFAULT_LAKE), help="lake holding W1 (default data/bench/lake)")
    ap.add_argument("--quick", action="store_true", help="1 run per step, pandas on 10%% of the symbols")
    ap.add_argument("--runs", type=int, default=None, help="runs per step, median reported (default 3, quick 1)")
    ap.add_argument("--pandas-sample", type=float, default=None, help="share of symbols for pandas (default 1)")
    ap.add_argument("--seed", type=int, default=7, help="symbol sample seed")
    ap.add_argument("--no-profile", action="store_true", help="skip the per-operator profile of tca.compute")
    args = ap.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    share = args.pandas_sample if args.pandas_sample is not None else (0.1 if args.quick else 1.0)
    lake = str(Path(args.lake).resolve())
    if not (Path(lake) / "_manifest" / "CURRENT").exists():
        sys.exit(f"no lake at {lake}: run `.venv/bin/python benchmarks/ingest.py --keep` first")

    import duckdb
    import pandas as pd
    import polars as pl

    w = _workload(lake)
    print(
        f"TCA benchmark, lake {lake} (lake@{w['version']}): {w['orders']:,} orders, {w['fills']:,} fills, "
        f"{w['quotes']:,} quotes, {w['trades']:,} trades"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; "
        f"Python {platform.python_version()}, duckdb {duckdb.__version__}, pandas {pd.__version__}, "
        f"polars {pl.__version__}; load average at start {_load_avg()}"
    )
    print(
        f"each step: {runs} run(s), median wall time, each run in a fresh spawned process with a fresh DuckDB "
        "connection; files in the OS page cache (warm)"
    )

    symbols = None
    fill_share = 1.0
    if share < 1.0:
        syms = sorted(w["fills_by_symbol"])
        symbols = sorted(random.Random(args.seed).sample(syms, max(1, round(share * len(syms)))))
        fill_share = sum(w["fills_by_symbol"][s] for s in symbols) / w["fills"]

    tmp = Path(tempfile.mkdtemp(prefix="tca-bench-"))
    out = {"ours": str(tmp / "ours.parquet"), "pandas": str(tmp / "pandas.parquet")}
    print("running (steps interleaved run by run, so that load from other processes hits them alike):", flush=True)
    res: dict[str, list[dict]] = {"bare": [], "ours": [], "pandas": []}
    for i in range(runs):
        for name in res:
            r = _in_child(_step, name, lake, out.get(name) if i == 0 else None, symbols if name == "pandas" else None)
            res[name].append(r)
            print(
                f"    run {i + 1} {name:<7} wall {r['secs']:6.2f} s  CPU {r['cpu']:6.2f} s  peak {r['peak_gb']:.2f} GB"
                f"  (1-min load average before it {r['load']:.1f})",
                flush=True,
            )
    bare, ours, pdr = (_summarise(res[n]) for n in ("bare", "ours", "pandas"))
    stages = _in_child(_stages, lake, False)
    prof = None if args.no_profile else _in_child(_stages, lake, True)

    pandas_full = pdr["secs"] / fill_share
    pandas_full_cpu = pdr["cpu"] / fill_share
    print()
    print(
        f"{'step':<44}{'wall s':>8}{'min':>7}{'CPU s':>8}  {'wall s of each run':<24}{'peak RSS GB':>12}"
        f"{'of which imports':>17}"
    )
    rows = [
        ("(a) bare ASOF join fills->quotes, to Arrow", bare),
        ("(b) analytics.tca.compute (full TCA)", ours),
        (f"(c) pandas reference{'' if symbols is None else f' on {len(symbols)} symbols'}", pdr),
    ]
    for label, r in rows:
        print(
            f"{label:<44}{r['secs']:>8.2f}{min(r['all']):>7.2f}{r['cpu']:>8.2f}  {_fmt_runs(r):<24}{r['peak_gb']:>12.2f}"
            f"{r['base_gb']:>17.2f}"
        )
    print(
        f"    (wall and CPU: medians of {runs}; min: fastest run; peak: highest of the runs.) (a) {bare['rows']:,} rows, {bare['matched']:,} with a "
        f"quote; (b) {ours['rows']:,} orders; (c) {pdr['rows']:,} orders"
    )
    if symbols is not None:
        print(
            f"    pandas ran on a sample of {len(symbols)} symbols = {fill_share:.1%} of the fills; its times scaled "
            f"by 1/{fill_share:.3f}: {pandas_full:.2f} s wall, {pandas_full_cpu:.2f} s CPU for the full workload "
            "(memory NOT scaled; fixed costs such as scanning the Parquet files and the orders do not shrink with "
            "the sample, so this overstates pandas' full-workload time)"
        )
    print()
    print("ratios (wall; CPU in brackets):")
    print(
        f"  ours / pandas      = {ours['secs'] / pandas_full:.3f} [{ours['cpu'] / pandas_full_cpu:.3f}]"
        f"   i.e. ours is {pandas_full / ours['secs']:.2f}x [{pandas_full_cpu / ours['cpu']:.2f}x] as fast as pandas"
    )
    print(f"  ours / bare join   = {ours['secs'] / bare['secs']:.2f} [{ours['cpu'] / bare['cpu']:.2f}]")
    print(
        f"  pandas / bare join = {pandas_full / bare['secs']:.2f} [{pandas_full_cpu / bare['cpu']:.2f}]"
        "   (the most any implementation that pays the bare join can gain on pandas)"
    )
    print()
    print("targets:")
    ok_s, ok_m = ours["secs"] < TARGET_S, ours["peak_gb"] < TARGET_GB
    print(f"  W1 full TCA under {TARGET_S:.0f} s:        {ours['secs']:.2f} s -> {'met' if ok_s else 'MISSED'}")
    print(f"  peak memory under {TARGET_GB:.0f} GB:       {ours['peak_gb']:.2f} GB -> {'met' if ok_m else 'MISSED'}")
    x = pandas_full / ours["secs"]
    print(f"  >= {TARGET_X:.0f}x faster than pandas: {x:.2f}x -> {'met' if x >= TARGET_X else 'MISSED'}")
    if x < TARGET_X:
        floor_x = pandas_full / bare["secs"]
        print(
            f"    10x needs the full TCA in {pandas_full / TARGET_X:.2f} s; the bare ASOF join alone takes "
            f"{bare['secs']:.2f} s, so a TCA costing nothing beyond that join would be {floor_x:.2f}x faster than "
            "pandas" + (": 10x is out of reach on this floor." if floor_x < TARGET_X else ".")
        )
    print()
    for line in _check(out["ours"], out["pandas"]):
        print(line)
    shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(
        f"where the time goes in tca.compute (one instrumented run: wall and CPU s per statement; total "
        f"{stages['total']:.2f} s wall, {stages['cpu']:.2f} s CPU):"
    )
    accounted = accounted_cpu = 0.0
    ops = {(i, s["label"]): s["ops"] for i, s in enumerate(prof["stages"])} if prof else {}
    for i, s in enumerate(stages["stages"]):
        accounted += s["secs"]
        accounted_cpu += s["cpu"]
        share_s = s["secs"] / stages["total"]
        line = f"  {s['label']:<40}{s['secs']:>7.2f} s {share_s:>6.1%}  CPU {s['cpu']:>6.2f} s"
        top = ops.get((i, s["label"]), [])
        if top and share_s >= 0.04:
            line += "   top operators (profiled run; s summed over threads, rows out): " + "; ".join(
                f"{n} {t:.2f} ({r:,})" for n, t, r in top
            )
        print(line)
    print(
        f"  {'Python/Polars glue (not in a statement)':<40}{stages['total'] - accounted:>7.2f} s {'':>6}  "
        f"CPU {stages['cpu'] - accounted_cpu:>6.2f} s"
    )
    print("  rows: " + ", ".join(f"{t} {n:,}" for t, n in stages["sizes"].items()))
    print(f"load average at end {_load_avg()}")


if __name__ == "__main__":
    main()
