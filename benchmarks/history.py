"""Benchmark: one year of history (250 days, 200 symbols, 500K parent orders, ~25M fills) through ingest, the
stored TCA and the TCA and Impact pages.

Steps (each expensive one cached under data/bench/, so a re-run only times what changed):

1. simulate the year once into data/bench/history-250d (reused while the simulator config is unchanged);
2. ingest it into data/bench/history-lake, one batch per calendar month (reference files with the first),
   as a desk would load its history; each batch is a fresh ``python -m analytics ingest`` process whose
   time and peak RSS are printed. Skipped when the lake already holds that input (a stamp in the lake);
3. ``tca.ensure(lake)`` for the whole year in a fresh process (the stored per-day TCA the pages read):
   time and peak RSS. When every day is stored already, the figures of the run that stored them are shown
   (``--recompute-tca`` drops the stored TCA of this lake version and times it again);
4. what the TCA and Impact pages compute per interaction, over the whole year and over one month, with
   the pages' own functions and without Streamlit (the OPS table says which steps a first run and a rerun
   do, as the pages stand at commit d38584c): the sidebar options, loading the stored orders with the
   sidebar filters (``tca.load_orders``, the SQL that was ``ui/state.py::_tca_rows``), the fill aggregates
   in DuckDB (``tca.venue_costs``, ``tca.markouts_sql``), then what every rerun does on the loaded frame
   (``tca.with_buckets``, ``tca.summary``, the histogram, ``tca.by_group`` broker/algo/size_bucket, the
   drill-down's sort, ``order_fills`` and ``order_tape``, the All-orders table; ``impact.fit_sqrt_law``,
   ``impact.buckets``, ``impact.reversion_curve``, ``cost_attribution.decompose`` and ``compare``). For
   comparison ("cf." rows): the in-memory fill path (``tca.load_fills`` + ``tca.markout_curve`` by venue;
   on the month only, extrapolated to the year by fill count because a year of fills does not fit the
   memory budget), what ``st.cache_data`` would cost (it pickles on a miss and unpickles on every hit),
   and ``order_tape`` over the order's day files only. Cold = the first call in a fresh process; warm =
   the same call repeated in that process (3 repeats, median). Figures are medians over ``--runs`` fresh
   processes (3); page totals add up the steps a run does;
5. the real pages once through ``streamlit.testing.v1.AppTest`` against the history lake
   (``ANALYTICS_LAKE``): the Overview landing page's first run (cold caches) and second run (warm), then
   the TCA page's first and second runs, a breakdown change and a switch to the Impact page. Page children
   are stopped above ``--mem-limit-gb`` (8) of RSS;
6. a monthly report through ``python -m analytics report --period`` (PDF and HTML), each in a fresh
   process: wall time, size and peak memory.

Targets (issues 4 and 9): a page interaction under 300 ms warm and under 2 s cold over one year; peaks well
below 8 GB (24 GB, 2 cores); a full monthly PDF report under 20 s. Figures to read, not a test.

    .venv/bin/python benchmarks/history.py [--runs 3] [--month 2026-06] [--skip-apptest] [--recompute-tca]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pickle
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CFG = {
    "days": 250,
    "symbols": 200,
    "orders_per_day": 2000,
    "fills_per_order": 50,
    "quotes_per_day": 200_000,
    "trades_per_day": 100_000,
    "events_format": "parquet",
    "seed": 3,
}
BENCH = ROOT / "data" / "bench"
SRC = BENCH / "history-250d"
LAKE = Path(os.environ.get("BENCH_HISTORY_LAKE", BENCH / "history-lake"))  # --lake sets it for the children
FIGURES = BENCH / "history-figures.json"  # figures of the cached steps, shown again when they are skipped
STAMP = ".bench-input.json"  # in the lake: the simulator config it was ingested from, and the version
WARM_TARGET_S, COLD_TARGET_S, MEM_TARGET_GB = 0.3, 2.0, 8.0
DATED = re.compile(r"_(\d{4}-\d{2})-\d{2}\.parquet$")


# -- helpers --------------------------------------------------------------------------------------------
def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB -> GB


def _rss_gb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _proc_rss_gb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def _child(args: list[str], env: dict | None = None, limit_gb: float | None = None) -> tuple[dict | None, float, float]:
    """Run this script's ``--child`` mode in a fresh process: its JSON answer (None when it was stopped for
    going over ``limit_gb`` of RSS), wall time and peak RSS (GB). The child's stderr (progress) passes through."""
    import tempfile

    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        p = subprocess.Popen(
            [sys.executable, __file__, "--child", *args],
            cwd=ROOT,
            stdout=out,
            text=True,
            env={**os.environ, **(env or {})},
        )
        killed = False
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if limit_gb and not killed and _proc_rss_gb(p.pid) > limit_gb:
                _log(f"  child {args} went over {limit_gb:.0f} GB of RSS: stopped")
                p.kill()
                killed = True
            time.sleep(0.1)
        p.returncode = os.waitstatus_to_exitcode(status)
        secs = time.perf_counter() - t
        peak = ru.ru_maxrss / 1e6
        if killed:
            return None, secs, peak
        if p.returncode != 0:
            raise SystemExit(f"child {args} failed with exit code {p.returncode}")
        out.seek(0)
        return json.loads(out.read().strip().splitlines()[-1]), secs, peak


def _figures() -> dict:
    return json.loads(FIGURES.read_text()) if FIGURES.exists() else {}


def _save_figures(key: str, value) -> None:
    d = _figures()
    d[key] = value
    FIGURES.write_text(json.dumps(d, indent=1, default=str))


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1e3:,.0f} ms" if s < 10 else f"{s:,.1f} s"


# -- 1. simulate ----------------------------------------------------------------------------------------
def child_simulate() -> dict:
    from analytics.simulate import SimConfig, simulate

    t = time.perf_counter()
    last = [0.0]

    def progress(frac: float, msg: str) -> None:
        if time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            _log(f"  simulate: {100 * frac:.0f}% {msg}")

    summary = simulate(SRC, SimConfig(**CFG), progress=progress)
    return {"secs": time.perf_counter() - t, "rows": summary["rows"], "peak_gb": _peak_gb()}


def simulate_once() -> None:
    stamp = SRC / ".config.json"
    size = lambda: sum(f.stat().st_size for f in SRC.rglob("*") if f.is_file())  # noqa: E731
    if stamp.exists() and json.loads(stamp.read_text()) == CFG:
        fig = _figures().get("simulate", {})
        rows = fig.get("rows", {})
        print(
            f"1. simulate: cached in {SRC.relative_to(ROOT)} ({size() / 1e9:.2f} GB"
            + (f"; took {fig['secs'] / 60:.1f} min, peak {fig['peak_gb']:.2f} GB" if fig else "")
            + ")"
        )
    else:
        shutil.rmtree(SRC, ignore_errors=True)
        SRC.mkdir(parents=True)
        _log("1. simulating one year (about 10 min) ...")
        res, secs, peak = _child(["simulate"])
        stamp.write_text(json.dumps(CFG))
        rows = res["rows"]
        _save_figures("simulate", {"secs": secs, "peak_gb": peak, "rows": rows})
        print(f"1. simulate: {secs / 60:.1f} min, peak RSS {peak:.2f} GB, {size() / 1e9:.2f} GB on disk")
    if rows:
        print(
            "   rows: "
            + ", ".join(f"{t} {rows[t]:,}" for t in ("decisions", "orders", "fills", "quotes", "trades", "bars"))
        )


# -- 2. ingest ------------------------------------------------------------------------------------------
def ingest_batches() -> list[tuple[str, list[Path]]]:
    """One batch per calendar month of the dated files; the undated (reference) files go with the first."""
    months: dict[str, list[Path]] = {}
    undated = []
    for p in sorted(SRC.glob("*.parquet")):
        m = DATED.search(p.name)
        if m:
            months.setdefault(m.group(1), []).append(p)
        else:
            undated.append(p)
    batches = [(k, v) for k, v in sorted(months.items())]
    batches[0] = (batches[0][0], undated + batches[0][1])
    return batches


def ingest_once() -> None:
    from analytics.store import Lake

    lake = Lake(LAKE)
    stamp_path = LAKE / STAMP
    stamp = json.loads(stamp_path.read_text()) if stamp_path.exists() else None
    if stamp and stamp.get("cfg") == CFG and stamp.get("version") == lake.version() and lake.exists():
        fig = _figures().get("ingest")
        print(
            f"2. ingest: cached, {LAKE.relative_to(ROOT)} holds that input at lake@{lake.version()}"
            + (
                f" (took {fig['secs'] / 60:.1f} min in {fig['batches']} batches, peak RSS {fig['peak_gb']:.2f} GB)"
                if fig
                else ""
            )
        )
        if fig:
            _print_ingest(fig)
        return
    if stamp is None or stamp.get("cfg") != CFG:
        shutil.rmtree(LAKE, ignore_errors=True)  # another input: start over (an unstamped lake may be partial)
    LAKE.mkdir(parents=True, exist_ok=True)
    stamp_path.write_text(json.dumps({"cfg": CFG, "version": None}))
    rows = []
    for month, files in ingest_batches():
        t = time.perf_counter()
        p = subprocess.Popen(
            [sys.executable, "-m", "analytics", "ingest", *map(str, files), "--lake", str(LAKE), "--json"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        out = p.stdout.read() if p.stdout else ""
        _, status, ru = os.wait4(p.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"ingest of {month} failed")
        secs = time.perf_counter() - t
        res = json.loads(out)
        tab = res["tables"]
        row = {
            "month": month,
            "files": len(files),
            "secs": secs,
            "peak_gb": ru.ru_maxrss / 1e6,
            "read": res["totals"]["read"],
            "fills": tab.get("fills", {}).get("accepted", 0),
            "quotes": tab.get("quotes", {}).get("accepted", 0),
            "quarantined": res["totals"]["quarantined"],
            "duplicate": res["totals"]["duplicate"],
        }
        rows.append(row)
        _log(f"  ingest {month}: {secs:.1f} s, peak {row['peak_gb']:.2f} GB, {row['read']:,} rows")
    v = lake.version()
    stamp_path.write_text(json.dumps({"cfg": CFG, "version": v}))
    size = sum(f.stat().st_size for f in (LAKE / "tables").rglob("*") if f.is_file())
    fig = {
        "secs": sum(r["secs"] for r in rows),
        "batches": len(rows),
        "peak_gb": max(r["peak_gb"] for r in rows),
        "rows": rows,
        "lake_gb": size / 1e9,
        "version": v,
    }
    _save_figures("ingest", fig)
    print(f"2. ingest: {fig['secs'] / 60:.1f} min in {len(rows)} batches, peak RSS {fig['peak_gb']:.2f} GB")
    _print_ingest(fig)


def _print_ingest(fig: dict) -> None:
    rows = fig["rows"]
    read = sum(r["read"] for r in rows)
    print(
        f"   {read:,} rows read, {sum(r['quarantined'] for r in rows):,} quarantined, "
        f"{read / fig['secs']:,.0f} rows/s; lake tables {fig['lake_gb']:.2f} GB on disk"
    )
    print(f"   {'batch':<8} {'files':>5} {'time':>8} {'peak RSS':>9} {'rows':>12} {'fills':>11}")
    for r in rows:
        print(
            f"   {r['month']:<8} {r['files']:>5} {r['secs']:>6.1f} s {r['peak_gb']:>6.2f} GB"
            f" {r['read']:>12,} {r['fills']:>11,}"
        )


# -- 3. stored TCA --------------------------------------------------------------------------------------
def child_ensure() -> dict:
    from analytics import tca
    from analytics.store import Lake

    lake = Lake(LAKE)
    v = lake.version()
    before = len(set(tca.stored_fingerprints(lake, v)))
    t0 = time.perf_counter()
    runs: list[float] = []
    last = [t0]

    def progress(frac: float, msg: str) -> None:
        now = time.perf_counter()
        runs.append(now - last[0])
        last[0] = now
        _log(f"  ensure {100 * frac:3.0f}% {now - t0:7.1f} s  rss {_rss_gb():.2f} GB  {msg}")

    tca.ensure(lake, progress=progress)
    secs = time.perf_counter() - t0
    days = len(set(tca.stored_fingerprints(lake, v)))
    per_run = runs[1:-1]  # the intervals between progress calls are the 5-day passes
    return {
        "secs": secs,
        "days_computed": days - before,
        "days": days,
        "peak_gb": _peak_gb(),
        "pass_s_median": statistics.median(per_run) if per_run else None,
        "pass_s_first": per_run[0] if per_run else None,
        "pass_s_last": per_run[-1] if per_run else None,
        "passes": len(per_run),
        "version": v,
    }


class _TimedCon:
    """A DuckDB connection that logs the wall time of each statement ``tca.compute`` runs (by its temp table)."""

    def __init__(self, con):
        self._con, self.log = con, []

    def _note(self, sql: str, secs: float) -> None:
        m = re.search(r"TEMP TABLE (\w+)", sql)
        label = (
            m.group(1)
            if m
            else ("orders: RPM join" if "rpm" in sql else "orders: final SELECT" if "px2" in sql else "other")
        )
        self.log.append((label, secs))

    def execute(self, sql, params=None):
        t = time.perf_counter()
        r = self._con.execute(sql, params)
        self._note(sql, time.perf_counter() - t)
        return r

    def sql(self, sql, params=None):
        t = time.perf_counter()
        rel = self._con.sql(sql, params=params)
        df = rel.pl()  # analytics.store.query fetches at once
        self._note(sql, time.perf_counter() - t)
        return _Fetched(df)

    def __getattr__(self, name):
        return getattr(self._con, name)


class _Fetched:
    def __init__(self, df):
        self._df = df

    def pl(self):
        return self._df


def child_pass(day: str) -> dict:
    """One ``tca.compute`` pass of ``tca.DAYS_PER_RUN`` days starting at ``day`` over the whole lake, timed
    statement by statement (what each of ``tca.ensure``'s passes costs, and where)."""
    from analytics import tca
    from analytics.filters import Filters
    from analytics.store import Lake

    lake = Lake(LAKE)
    days = [d for d in lake.order_days() if d >= dt.date.fromisoformat(day)][: tca.DAYS_PER_RUN]
    con = _TimedCon(lake.connect())
    t = time.perf_counter()
    res = tca.compute(con, Filters(start=days[0], end=days[-1]))  # type: ignore[arg-type]
    secs = time.perf_counter() - t
    by: dict[str, float] = {}
    for label, s in con.log:
        by[label] = by.get(label, 0.0) + s
    return {"secs": secs, "orders": res.orders.height, "fills": res.fills.height, "stages": by, "peak_gb": _peak_gb()}


def ensure_once(recompute: bool) -> None:
    from analytics import tca
    from analytics.store import Lake

    lake = Lake(LAKE)
    v = lake.version()
    d = lake.derived_dir(tca.RESULTS)
    if recompute:
        shutil.rmtree(d, ignore_errors=True)
    key = f"ensure:{tca.RESULTS}:v{v}"
    stored = set(tca.stored_fingerprints(lake, v))
    others = sorted(k for k in _figures() if k.startswith("ensure:") and k.endswith(f":v{v}"))
    if stored and set(lake.order_days(version=v)) <= stored and (key in _figures() or others):
        key = key if key in _figures() else others[-1]
        res = _figures()[key]
        link = d.parent.is_symlink()
        print(
            f"3. tca.ensure: stored already for lake@{v}; figures of the run that stored them ({key.split(':')[1]} code)"
            + (f"; NOTE {d.parent.name} is a link to {os.readlink(d.parent)} made outside this script" if link else "")
        )
    else:
        _log("3. tca.ensure over the whole year ...")
        res, secs, peak = _child(["ensure"])
        res["wall_s"], res["peak_gb"] = secs, peak
        _save_figures(key, res)
        print(f"3. tca.ensure: computed the missing days for lake@{v} ({tca.RESULTS} code)")
    size = sum(f.stat().st_size for f in d.rglob("*.parquet"))
    print(
        f"   tca.ensure (year): {res['secs'] / 60:.1f} min for {res['days_computed']} days, peak RSS "
        f"{res['peak_gb']:.2f} GB; {res['passes']} passes of {tca.DAYS_PER_RUN} days, median "
        f"{_fmt_s(res['pass_s_median'])} (first {_fmt_s(res['pass_s_first'])}, last {_fmt_s(res['pass_s_last'])});"
        f" stored {size / 1e9:.2f} GB"
    )
    import hashlib

    code = hashlib.sha1((ROOT / "analytics" / "tca.py").read_bytes()).hexdigest()[:8]
    key = f"pass:{tca.RESULTS}:v{v}:{code}"  # re-timed whenever analytics/tca.py changes
    p = _figures().get(key)
    if p is None:
        mid = lake.order_days(version=v)[len(lake.order_days(version=v)) // 2]
        _log("3b. one tca.compute pass, statement by statement ...")
        p, secs, peak = _child(["pass", mid.isoformat()])
        _save_figures(key, p)
    top = sorted(p["stages"].items(), key=lambda kv: -kv[1])[:6]
    print(
        f"   one pass now ({tca.DAYS_PER_RUN} days, {p['orders']:,} orders, {p['fills']:,} fills; analytics/tca.py {code}): "
        f"{p['secs']:.1f} s, peak {p['peak_gb']:.2f} GB; heaviest statements: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in top)
    )
    n_passes = -(-len(lake.order_days(version=v)) // tca.DAYS_PER_RUN)
    print(f"   at {p['secs']:.1f} s a pass, the year's {n_passes} passes take ~{n_passes * p['secs'] / 60:.0f} min")


# -- 4. page interactions ------------------------------------------------------------------------------
def _span(name: str, month: str | None) -> tuple[dt.date | None, dt.date | None]:
    """``year``: the whole lake; ``month``: one calendar month (the sidebar opens on the latest month)."""
    from analytics.store import Lake

    days = Lake(LAKE).order_days()
    if name == "year":
        return days[0], days[-1]
    ym = month or sorted({d.strftime("%Y-%m") for d in days})[min(5, len({d.month for d in days}) - 1)]
    in_month = [d for d in days if d.strftime("%Y-%m") == ym]
    return in_month[0], in_month[-1]


FILL_COLS = ("order_id", "venue", "p", "q", "arrival_cost_bps")  # what the TCA page's fill views read (+ markouts)


def _load_rows(lake, con, version: int, part: str, f, orders=None, projected: bool = False):
    """``ui/state.py::_tca_rows`` without Streamlit: the stored rows of ``part`` with the sidebar filters.
    ``projected``: only the fill columns the page uses (no broker/algo join), for comparison."""
    import polars as pl

    from analytics import tca
    from analytics.store import query

    con = con.cursor()
    rel = tca.results(lake, con, f.start, f.end, part=part, version=version)
    if rel is None:
        return pl.DataFrame()
    con.register("_rows", rel)
    if part == "orders":
        where, params = f.where(
            {"symbol": "symbol", "broker": "broker", "algo": "algo", "portfolio": "portfolio_id"}, "arrival_ts"
        )
        sql = f"SELECT * FROM _rows WHERE arrival_ts IS NOT NULL AND {where}"
    else:
        where, params = f.where({"symbol": "symbol", "venue": "venue"}, "ts")
        if projected:
            cols = ", ".join([*FILL_COLS, "COLUMNS('^markout_cost_bps_')"])
            return query(con, f"SELECT {cols} FROM _rows WHERE fill_id IS NOT NULL AND {where}", params)
        con.register("_orders", orders.select("order_id", "broker", "algo").to_arrow())
        cols = ", ".join(f"r.{c}" for c in rel.columns if not c.startswith("mid_"))  # as the page (99507c9)
        sql = f"SELECT {cols}, o.broker, o.algo FROM _rows r JOIN _orders o USING (order_id) WHERE fill_id IS NOT NULL AND {where}"
    return query(con, sql, params)


def _ensure_check(lake, f) -> int:
    """What ``ui/state.py::ensure_tca`` does on every page run when nothing is missing."""
    from analytics import tca

    v = lake.version()
    missing = set(lake.order_days(f.start, f.end, version=v)) - set(tca.stored_fingerprints(lake, v))
    assert not missing, f"{len(missing)} TCA day(s) not stored: run tca.ensure first"
    return v


# name -> (page, label, in a first run, in a rerun): what a run of each page does, in its order, as the pages
# stand at this writing (commit d38584c: orders cached as a resource, fill aggregates in DuckDB and cached,
# drill-down reads one day file, All orders shows 1,000 rows). "-": not on a page, shown for comparison.
OPS = {
    "connect": ("both", "open the DuckDB connection over the lake", 1, 0),
    "filter_options": ("both", "sidebar filter options (catalog.filter_options)", 1, 0),
    "ensure_check": ("both", "ensure_tca check: stored days (TCA x3)", 1, 1),
    "load_orders": ("both", "load stored orders (tca.load_orders)", 1, 0),
    "pickle_orders": ("-", "  cf. st.cache_data would pickle.dumps the orders", 0, 0),
    "unpickle_orders": ("-", "  cf. a st.cache_data hit: pickle.loads", 0, 0),
    "with_buckets": ("both", "tca.with_buckets(orders)", 1, 1),
    "summary": ("tca", "tca.summary", 1, 1),
    "histogram": ("tca", "histogram bins + Vega-Lite spec", 1, 1),
    "by_group_broker": ("tca", "tca.by_group broker", 1, 1),
    "by_group_algo": ("tca", "tca.by_group algo (breakdown picked instead)", 0, 0),
    "by_group_size_bucket": ("tca", "tca.by_group size_bucket (picked instead)", 0, 0),
    "venue_costs": ("tca", "fills by venue: tca.venue_costs, DuckDB (cached)", 1, 0),
    "markouts_sql": ("tca", "markout curve by venue: tca.markouts_sql (cached)", 1, 0),
    "load_fills": ("-", "  cf. load the fills (tca.load_fills), as before d38584c", 0, 0),
    "pickle_fills": ("-", "  cf. st.cache_data would pickle.dumps the fills", 0, 0),
    "unpickle_fills": ("-", "  cf. a st.cache_data hit: pickle.loads", 0, 0),
    "by_group_venue_fills": ("-", "  cf. fills by venue in Polars: tca.by_group", 0, 0),
    "markout_curve_venue": ("-", "  cf. tca.markout_curve(fills, venue) in Polars", 0, 0),
    "drilldown_sort": ("tca", "drill-down: sort by IS + 500K-option list", 1, 1),
    "drilldown_fills": ("tca", "drill-down: one order's fills (tca.order_fills)", 1, 1),
    "order_tape": ("tca", "drill-down: tca.order_tape (quotes + prints)", 1, 1),
    "orders_arrow": ("tca", "All orders: top 1,000 by IS, st.dataframe Arrow bytes", 1, 1),
    "orders_csv": ("tca", "All orders: write_csv (only on a download click)", 0, 0),
    "fit_sqrt_law": ("impact", "impact.fit_sqrt_law", 1, 1),
    "buckets": ("impact", "impact.buckets participation_rate", 1, 1),
    "reversion_curve": ("impact", "impact.reversion_curve", 1, 1),
    "decompose": ("impact", "cost_attribution.decompose algo", 1, 1),
    "compare": ("impact", "cost_attribution.compare algo", 1, 1),
    "load_fills_projected": ("-", "  cf. load only the fill columns used", 0, 0),
    "order_tape_day": ("-", "  cf. order_tape over the order's day files only", 0, 0),
}
# what the brief names as the page interactions (the rest are what a page run also does)
CORE = {"load_orders", "load_fills", "summary", "by_group_broker", "by_group_algo", "by_group_size_bucket",
        "markout_curve_venue", "fit_sqrt_law", "buckets", "compare"}  # fmt: skip


def _order_tape_day(lake, con, symbol: str, start: dt.datetime, end: dt.datetime):
    """``tca.order_tape`` over only the files of the order's day (``Lake.scan``), not every quote file."""
    from analytics.store import query

    c = con.cursor()
    c.register("_q", lake.scan(c, "quotes", start.date(), end.date()))
    c.register("_t", lake.scan(c, "trades", start.date(), end.date()))
    quotes = query(
        c,
        """SELECT ts, bid, ask, (bid + ask) / 2 AS mid FROM _q
           WHERE symbol = ? AND ts >= (SELECT coalesce(max(ts), ?) FROM _q WHERE symbol = ? AND ts <= ?)
             AND ts <= ? ORDER BY ts""",
        [symbol, start, symbol, start, end],
    )
    trades = query(
        c,
        "SELECT ts, price, size, venue FROM _t WHERE symbol = ? AND ts >= ? AND ts <= ? ORDER BY ts",
        [symbol, start, end],
    )
    return quotes, trades


def child_pages(span: str, month: str, warm_reps: str, full_fills: str) -> dict:
    """One fresh process: the pages' steps once (cold), then ``warm_reps`` times (warm). ``full_fills`` "0":
    do not load the fills (a year of them does not fit the memory budget, even with only the used columns:
    the parent extrapolates those steps from the month); the DuckDB aggregate still runs."""
    import polars as pl
    from streamlit import dataframe_util

    from analytics import catalog, cost_attribution, impact, tca
    from analytics.filters import Filters
    from analytics.store import Lake
    from ui import charts

    start, end = _span(span, month or None)
    f = Filters(start=start, end=end)
    full = full_fills == "1"
    lake = Lake(LAKE)
    times: dict[str, list[float]] = {}
    rss: dict[str, float] = {}
    box: dict = {}

    def timed(name: str, fn):
        t = time.perf_counter()
        out = fn()
        times.setdefault(name, []).append(time.perf_counter() - t)
        rss[name] = max(rss.get(name, 0.0), _rss_gb())
        if len(times[name]) == 1:  # where a stopped child got to
            _log(f"    {span} {name}: {_fmt_s(times[name][0])}, rss {rss[name]:.2f} GB")
        return out

    base_gb = _rss_gb()
    v = lake.version()
    con = timed("connect", lambda: lake.connect(lake.manifest(v)))
    timed("filter_options", lambda: catalog.filter_options(con.cursor(), lake, v))

    def page_run(first: bool) -> None:
        timed("ensure_check", lambda: _ensure_check(lake, f))
        orders = timed("load_orders", lambda: tca.load_orders(lake, con.cursor(), f, v))
        po = timed("pickle_orders", lambda: pickle.dumps(orders, protocol=pickle.HIGHEST_PROTOCOL))
        timed("unpickle_orders", lambda: pickle.loads(po))
        o = timed("with_buckets", lambda: tca.with_buckets(orders))
        timed("summary", lambda: tca.summary(o))
        if hasattr(tca, "histogram"):  # the page ships ~60 pre-computed bins
            timed(
                "histogram", lambda: json.dumps(charts.histogram(tca.histogram(o, "arrival_cost_bps"), "x").to_dict())
            )
        for dim in ("broker", "algo", "size_bucket"):
            timed(f"by_group_{dim}", lambda dim=dim: tca.by_group(o, dim, "arrival_cost_bps", min_orders=30))
        if hasattr(tca, "venue_costs"):  # the page's fill aggregates, in DuckDB over the stored files (d38584c)
            timed("venue_costs", lambda: tca.venue_costs(lake, con.cursor(), f, v))
            timed("markouts_sql", lambda: tca.markouts_sql(lake, con.cursor(), f, True, v))
        if full:
            fills = timed("load_fills", lambda: tca.load_fills(lake, con.cursor(), f, orders, v))
            pf = timed("pickle_fills", lambda: pickle.dumps(fills, protocol=pickle.HIGHEST_PROTOCOL))
            timed("unpickle_fills", lambda: pickle.loads(pf))
            if first:
                box["fills_gb"], box["pickled_fills_gb"] = fills.estimated_size() / 1e9, len(pf) / 1e9
            pf = b""
            proj = timed("load_fills_projected", lambda: _load_rows(lake, con, v, "fills", f, projected=True))
            box["fills_projected_gb"] = proj.estimated_size() / 1e9
            proj = None
        if first:
            box["orders_gb"], box["pickled_orders_gb"] = orders.estimated_size() / 1e9, len(po) / 1e9
            box["n_orders"] = orders.height
            box["n_fills"] = int(o["fill_count"].sum())
        if full:
            timed(
                "by_group_venue_fills",
                lambda: (
                    fills.filter(pl.col("arrival_cost_bps").is_not_null())
                    .with_columns((pl.col("p") * pl.col("q")).alias("filled_notional"), pl.lit(1.0).alias("filled_qty"))
                    .pipe(tca.by_group, "venue", "arrival_cost_bps", min_orders=30)
                ),
            )
            timed("markout_curve_venue", lambda: tca.markout_curve(fills, group="venue"))
            fills = None  # frees the frame (the lambdas above hold the name)
        worst = timed(
            "drilldown_sort",
            lambda: (w := o.sort("is_total_bps", descending=True, nulls_last=True), [str(x) for x in w["order_id"]])[0],
        )
        od = worst.row(0, named=True)
        timed(
            "drilldown_fills",
            lambda: tca.order_fills(lake, con.cursor(), od["order_id"], od["arrival_ts"].date(), version=v),
        )
        pad = dt.timedelta(minutes=5)
        timed(
            "order_tape",
            lambda: tca.order_tape(con.cursor(), od["symbol"], od["arrival_ts"] - pad, od["end_ts"] + pad),
        )
        timed(
            "orders_arrow",
            lambda: dataframe_util.convert_anything_to_arrow_bytes(
                o.sort("is_total_bps", descending=True, nulls_last=True).head(1000)
            ),
        )
        timed("orders_csv", lambda: o.write_csv())
        timed("fit_sqrt_law", lambda: impact.fit_sqrt_law(o, "arrival_cost_bps"))
        timed(
            "buckets",
            lambda: impact.buckets(
                o, "participation_rate", ("arrival_cost_bps", "permanent_impact_bps", "temporary_impact_bps")
            ),
        )
        timed("reversion_curve", lambda: impact.reversion_curve(o))
        timed("decompose", lambda: cost_attribution.decompose(o, "algo"))
        timed("compare", lambda: cost_attribution.compare(o, "algo"))
        timed(
            "order_tape_day",
            lambda: _order_tape_day(lake, con, od["symbol"], od["arrival_ts"] - pad, od["end_ts"] + pad),
        )

    page_run(True)
    for _ in range(int(warm_reps)):
        page_run(False)
    return {
        "span": span,
        "start": str(start),
        "end": str(end),
        "cold": {k: v[0] for k, v in times.items()},
        "warm": {k: statistics.median(v[1:]) for k, v in times.items() if len(v) > 1},
        "rss_gb": rss,
        "base_gb": base_gb,
        "peak_gb": _peak_gb(),
        **box,
    }


def measure_pages(runs: int, month: str | None, limit_gb: float, year_full: bool) -> dict:
    """``runs`` fresh processes per span; medians of their cold (first call) and warm (repeat) figures.
    The month loads the fills as the page does; the year does too when the frame, its pickle (what
    st.cache_data keeps) and a transient copy fit in 6 GB, else it loads the used fill columns only and the
    full-fill figures are extrapolated from the month by the fill count (marked ~)."""
    out: dict = {}
    for span in ("month", "year"):
        full = True
        if span == "year" and "month" in out and not out["month"].get("killed"):
            m = out["month"]
            from analytics.store import Lake

            ratio = sum(e.rows for e in Lake(LAKE).manifest().entries("fills")) / m["n_fills"]
            full = year_full or (m["fills_gb"] + m["pickled_fills_gb"]) * ratio < 4.0
        res = []
        for i in range(runs):
            _log(f"4. page interactions, {span}, process {i + 1}/{runs} ...")
            r, secs, peak = _child(["pages", span, month or "", "3", "1" if full else "0"], limit_gb=limit_gb)
            if r is None:
                res.append({"killed": True, "peak_gb": peak, "secs": secs})
                break  # it will not fit the next time either
            r["child_peak_gb"] = peak
            res.append(r)
        ok = [r for r in res if not r.get("killed")]
        if not ok:
            out[span] = {"killed": True, "peak_gb": res[0]["peak_gb"]}
            continue
        med = {kind: {k: statistics.median(r[kind][k] for r in ok) for k in ok[0][kind]} for kind in ("cold", "warm")}
        keys = ("start", "end", "n_orders", "n_fills", "orders_gb", "fills_gb", "fills_projected_gb",
                "pickled_orders_gb", "pickled_fills_gb", "base_gb")  # fmt: skip
        out[span] = {
            **med,
            "runs": len(ok),
            "full_fills": full,
            "peak_gb": max(r["child_peak_gb"] for r in ok),
            "rss_gb": {k: max(r["rss_gb"][k] for r in ok) for k in ok[0]["rss_gb"]},
            **{k: ok[0].get(k) for k in keys},
            "extrapolated": [],
        }
        if not full:
            y, m = out[span], out["month"]
            ratio = y["n_fills"] / m["n_fills"]
            fill_steps = ("load_fills", "pickle_fills", "unpickle_fills", "load_fills_projected")
            fill_steps += ("by_group_venue_fills", "markout_curve_venue")
            for k in ("fills_gb", "pickled_fills_gb", "fills_projected_gb"):
                y[k] = m[k] * ratio
            for kind in ("cold", "warm"):
                for k in fill_steps:
                    y[kind][k] = m[kind][k] * ratio
            y["extrapolated"] = [*fill_steps, "fills_gb"]
    return out


def _page_total(fig: dict, page: str, kind: str, core_only: bool = False) -> float:
    """Sum of the steps a run of ``page`` does (OPS: first run for ``cold``, rerun for ``warm``)."""
    total = 0.0
    for k, (pg, _, first, rerun) in OPS.items():
        if pg not in ("both", page) or not (first if kind == "cold" else rerun):
            continue
        if core_only and k not in CORE | {"ensure_check", "unpickle_orders"}:
            continue
        n = 3 if (k == "ensure_check" and page == "tca") else 1  # tca_orders, venue_costs, markouts
        total += n * fig[kind].get(k, 0.0)
    return total


def print_pages(figs: dict) -> None:
    spans = [s for s in ("year", "month") if s in figs]
    for s in spans:
        f = figs[s]
        if f.get("killed"):
            print(f"   {s}: stopped at {f['peak_gb']:.1f} GB of RSS (over the --mem-limit-gb safety limit)")
            continue
        tilde = "~" if "fills_gb" in f["extrapolated"] else ""
        ptilde = tilde
        print(
            f"   {s} ({f['start']}..{f['end']}): {f['n_orders']:,} orders ({f['orders_gb']:.2f} GB in Polars, pickled "
            f"{f['pickled_orders_gb']:.2f} GB), {f['n_fills']:,} fills ({tilde}{f['fills_gb']:.2f} GB in Polars as the "
            f"page loads them, {ptilde}{f['fills_projected_gb']:.2f} GB with the used columns only; pickled "
            f"{tilde}{f['pickled_fills_gb']:.2f} GB); peak RSS {f['peak_gb']:.2f} GB (imports {f['base_gb']:.2f} GB); "
            f"medians of {f['runs']} processes"
        )
        if not f["full_fills"]:
            print(
                f"   {s}: the fills were not loaded: the frame and the pickle st.cache_data keeps would need "
                f"~{f['fills_gb'] + f['pickled_fills_gb']:.0f} GB (a trial run that loaded only the used columns went over "
                "8 GB); ~ = extrapolated from the month by "
                "fill count"
            )
    ok = [s for s in spans if not figs[s].get("killed")]
    head = "".join(f" {s + ' cold':>10} {s + ' warm':>10}" for s in ok)
    print(f"   {'step (* = named in the brief; [page: in a first run / a rerun])':<74}{head}")

    def cell(s: str, kind: str, k: str) -> str:
        v = figs[s][kind].get(k)
        return ("~" if k in figs[s]["extrapolated"] and v is not None else "") + _fmt_s(v)

    for k, (page, label, first, rerun) in OPS.items():
        cells = "".join(f" {cell(s, 'cold', k):>10} {cell(s, 'warm', k):>10}" for s in ok)
        when = {(1, 1): "first+rerun", (1, 0): "first", (0, 1): "rerun", (0, 0): "neither"}[(first, rerun)]
        tag = f"[{page} {when}]" if page != "-" else "[-]"
        print(f"   {('* ' if k in CORE else '  ') + label + ' ' + tag:<74}{cells}")
    print(
        f"   page totals (sum of the steps a run does; TCA checks ensure_tca 3 times); targets: first run "
        f"< {_fmt_s(COLD_TARGET_S)}, rerun < {_fmt_s(WARM_TARGET_S)}"
    )
    rows = [
        ("TCA page, first run (cold process, empty caches)", "tca", "cold", False, COLD_TARGET_S),
        ("TCA page, rerun (any widget click; cache hits)", "tca", "warm", False, WARM_TARGET_S),
        ("TCA page, rerun, the brief's steps only", "tca", "warm", True, WARM_TARGET_S),
        ("Impact page, first run (cold process)", "impact", "cold", False, COLD_TARGET_S),
        ("Impact page, rerun (cache hits)", "impact", "warm", False, WARM_TARGET_S),
    ]
    for label, page, kind, core, target in rows:
        cells = ""
        for s in ok:
            tot = _page_total(figs[s], page, kind, core)
            verdict = "ok" if tot < target else "OVER"
            cells += f" {_fmt_s(tot):>10} {verdict:>10}"
        print(f"   {label:<74}{cells}")


# -- 5. the real page through AppTest -------------------------------------------------------------------
def child_apptest(span: str, month: str) -> dict:
    from streamlit.testing.v1 import AppTest

    start, end = _span(span, month or None)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=1800)
    if start:
        at.session_state["f_start"], at.session_state["f_end"] = start, end
    out = {"span": span, "start": str(start), "end": str(end)}
    for name, act in (
        ("overview_first", lambda: at.run()),  # the landing page, cold caches
        ("overview_second", lambda: at.run()),
        ("first", lambda: at.switch_page("app_pages/tca.py").run()),
        ("second", lambda: at.run()),
        ("breakdown_algo", lambda: at.selectbox(key="tca_dim").select("algo").run()),
        ("impact_page", lambda: at.switch_page("app_pages/impact.py").run()),
        ("impact_second", lambda: at.run()),
        ("overview_again", lambda: at.switch_page("app_pages/overview.py").run()),
    ):
        t = time.perf_counter()
        act()
        out[name] = time.perf_counter() - t
        out[f"{name}_rss_gb"] = _rss_gb()
        if at.exception:
            out["exception"] = str(at.exception[0].message)[:300]
            break
    out["metrics"] = [m.value for m in at.metric]
    out["peak_gb"] = _peak_gb()
    return out


def run_apptest(month: str | None, limit_gb: float) -> dict:
    from analytics import overview
    from analytics.store import Lake

    figs = {}
    for span in ("month", "year"):
        # First visit of this lake version: the overview's figures are computed from the orders and stored
        # (what a user sees once after each ingest); then a fresh process reads them (every later cold start).
        shutil.rmtree(Lake(LAKE).derived_dir(overview.FIGURES), ignore_errors=True)
        _log(f"5. AppTest of the Overview, TCA and Impact pages, {span}: first visit of this lake version ...")
        first, _, _ = _child(["apptest", span, month or ""], env={"ANALYTICS_LAKE": str(LAKE)}, limit_gb=limit_gb)
        _log(f"5. ... {span}: a fresh process, the overview's figures stored ...")
        r, secs, peak = _child(["apptest", span, month or ""], env={"ANALYTICS_LAKE": str(LAKE)}, limit_gb=limit_gb)
        figs[span] = r or {"killed": True, "peak_gb": peak, "secs": secs}
        if r:
            figs[span]["child_peak_gb"] = peak
            figs[span]["overview_compute"] = (first or {}).get("overview_first")
    return figs


def print_apptest(figs: dict) -> None:
    for span, r in figs.items():
        if r.get("killed"):
            print(f"   {span}: stopped after {r['secs']:.0f} s at {r['peak_gb']:.1f} GB of RSS (safety limit)")
            continue
        print(
            f"   {span:<5} Overview (landing): first visit of the lake version (computes and stores the figures) "
            f"{_fmt_s(r.get('overview_compute'))}; cold process, figures stored {_fmt_s(r.get('overview_first'))}; "
            f"rerun {_fmt_s(r.get('overview_second'))}"
        )
        line = (
            f"   {span:<5} TCA: first run {_fmt_s(r.get('first'))}, second run {_fmt_s(r.get('second'))}, "
            f"breakdown -> algo {_fmt_s(r.get('breakdown_algo'))}, switch to Impact {_fmt_s(r.get('impact_page'))}, "
            f"Impact rerun {_fmt_s(r.get('impact_second'))}, back to Overview {_fmt_s(r.get('overview_again'))}; "
            f"peak RSS {r['child_peak_gb']:.2f} GB"
        )
        if r.get("exception"):
            line += f"; EXCEPTION: {r['exception']}"
        print(line)


def run_report(month: str | None) -> dict:
    """``python -m analytics report --period <month> --format pdf|html`` on the history lake, timed as a user
    runs it (a fresh process: imports, connection, the month's stored TCA, charts, layout)."""
    start, _ = _span("month", month)
    period = start.strftime("%Y-%m")
    out = {}
    for fmt in ("pdf", "html"):
        dest = BENCH / f"report-{period}.{fmt}"
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "analytics", "report", "--lake", str(LAKE), "--period", period,
             "--format", fmt, "--out", str(dest)],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        secs = time.perf_counter() - t
        del proc
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
        out[fmt] = {"month": period, "secs": secs, "kb": dest.stat().st_size // 1024, "peak_gb": peak}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="fresh processes per page measurement (median)")
    ap.add_argument("--month", default=None, help="the one-month span, YYYY-MM (default: the 6th month)")
    ap.add_argument("--skip-apptest", action="store_true")
    ap.add_argument("--recompute-tca", action="store_true", help="drop the stored TCA and time tca.ensure again")
    ap.add_argument("--until", choices=["simulate", "ingest", "ensure", "pages"], default=None)
    ap.add_argument("--only-pages", action="store_true", help="skip steps 1-3 (the lake must be ready)")
    ap.add_argument(
        "--mem-limit-gb",
        type=float,
        default=MEM_TARGET_GB,
        help="stop a page child above this RSS (protects the machine)",
    )
    ap.add_argument(
        "--year-full-fills", action="store_true", help="load a year of fills as the page did before d38584c (~11 GB)"
    )
    ap.add_argument("--lake", help="measure the pages on another (ready) lake; implies --only-pages")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.lake:
        global LAKE
        LAKE = Path(args.lake).resolve()
        os.environ["BENCH_HISTORY_LAKE"] = str(LAKE)
        args.only_pages = True
    if args.child:
        fn = {"simulate": child_simulate, "ensure": child_ensure, "pass": child_pass, "pages": child_pages}
        fn["apptest"] = child_apptest
        print(json.dumps(fn[args.child[0]](*args.child[1:]), default=str))
        return
    print(f"workload: {json.dumps(CFG)}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    if not args.only_pages:
        simulate_once()
        if args.until == "simulate":
            return
        ingest_once()
        if args.until == "ingest":
            return
        ensure_once(args.recompute_tca)
        if args.until == "ensure":
            return
    figs = measure_pages(args.runs, args.month, args.mem_limit_gb, args.year_full_fills)
    _save_figures("pages", figs)
    print("4. page interactions (cold = first call in a fresh process, warm = repeated in it; medians):")
    print_pages(figs)
    if args.until == "pages" or args.skip_apptest:
        return
    at = run_apptest(args.month, args.mem_limit_gb)
    _save_figures("apptest", at)
    print("5. the real pages through streamlit.testing.v1.AppTest (ANALYTICS_LAKE = the history lake):")
    print_apptest(at)
    rep = run_report(args.month)
    _save_figures("report", rep)
    print("6. a monthly report through the CLI (fresh process each; target: a full monthly PDF under 20 s):")
    for fmt, r in rep.items():
        print(f"   {fmt:<4} {r['month']}: {r['secs']:.1f} s wall, {r['kb']:,} KB, peak RSS {r['peak_gb']:.2f} GB")
    print(f"load average at the end {os.getloadavg()[0]:.1f} (other work on the machine skews the figures)")


if __name__ == "__main__":
    main()
