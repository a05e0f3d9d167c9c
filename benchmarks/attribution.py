"""Benchmark: three years of daily attribution of a 500-name portfolio (756 days), by sector and by industry,
linked with each method, plus the page's other views, and the Attribution page itself through AppTest.

1. Build once (cached under data/bench/attribution-lake; a stamp says which config built it) a lake of contract
   tables: 500 securities from the simulator's universe, the simulator's factor model for 756 days (returns,
   5 exposures per name and day, factor returns), a cap-weighted benchmark of all names and 4 portfolios of
   ~350 names whose weights drift with returns and are rebalanced a little every day. Written as Parquet batch
   files and loaded with the normal ingest (validation included).
2. In this process, time each step the page runs (cold = first call, warm = median of 3 repeats):
   ``load_positions`` (the SQL), ``attribute`` by sector and industry with Carino / Menchero / GRAP, the linked
   effects over time, a drill into a sector, holdings-based factor attribution, the returns regression, the TE
   decomposition, and the peer table (4 portfolios x 3 years).
3. The Attribution page through ``streamlit.testing.v1.AppTest`` on that lake: first run, warm rerun, a change of
   grouping, of linking, of method, and a drill into another sector (target: each warm interaction under 1 s).

    .venv/bin/python benchmarks/attribution.py [--skip-apptest] [--rebuild]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

CFG = {"days": 756, "symbols": 500, "portfolios": 4, "seed": 17}
BENCH = ROOT / "data" / "bench"
LAKE = BENCH / "attribution-lake"


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def build(rebuild: bool) -> None:
    from analytics.ingest import ingest
    from analytics.simulate.calendar import trading_days
    from analytics.simulate.market import FACTORS, daily_model
    from analytics.simulate.universe import build_universe
    from analytics.store import Lake

    stamp = LAKE / "_bench_config.json"
    if not rebuild and stamp.exists() and json.loads(stamp.read_text()) == CFG:
        print(f"lake: reusing {LAKE}")
        return
    shutil.rmtree(LAKE, ignore_errors=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(CFG["seed"])
    uni = build_universe(CFG["symbols"], rng)
    days = trading_days(dt.date(2023, 1, 2), CFG["days"])
    n, d_n, f_n = uni.n, len(days), len(FACTORS)
    model = daily_model(uni, d_n, rng)
    r = model.returns  # (D, N)
    growth = np.vstack([np.ones(n), np.cumprod(1 + r, axis=0)[:-1]])  # start-of-day value of 1 invested
    cap = uni.shares_outstanding * uni.price0 * growth
    bw = cap / cap.sum(axis=1, keepdims=True)
    date_col = np.repeat(np.array(days, dtype="datetime64[D]"), n)
    sym_col = np.tile(uni.symbols, d_n)
    src = BENCH / "attribution-src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    uni.securities.write_parquet(src / "securities.parquet")
    pl.DataFrame({
        "portfolio_id": [f"P{i + 1}" for i in range(CFG["portfolios"])], "name": [f"Fund {i + 1}" for i in range(CFG["portfolios"])],
        "strategy": ["momentum", "value", "quality", "index_plus"][: CFG["portfolios"]], "benchmark_id": ["BM_ALL"] * CFG["portfolios"],
        "base_currency": ["USD"] * CFG["portfolios"],
    }).write_parquet(src / "portfolios.parquet")  # fmt: skip
    pl.DataFrame({"date": date_col, "benchmark_id": "BM_ALL", "symbol": sym_col, "weight": bw.ravel()}).write_parquet(
        src / "benchmark_weights.parquet"
    )
    hold = []
    for p in range(CFG["portfolios"]):  # loop over portfolios only
        held = rng.random(n) < 0.7
        tilt = np.exp(0.6 * rng.standard_normal(n)) * held
        w = bw * tilt  # benchmark weights tilted, drifting with the cap weights (trades every day)
        w = w / w.sum(axis=1, keepdims=True)
        m = (w > 0).ravel()
        hold.append(pl.DataFrame({"date": date_col[m], "portfolio_id": f"P{p + 1}", "symbol": sym_col[m],
                                  "weight": w.ravel()[m]}))  # fmt: skip
    pl.concat(hold).write_parquet(src / "holdings.parquet")
    pl.DataFrame({"date": date_col, "symbol": sym_col, "return": r.ravel()}).write_parquet(src / "returns.parquet")
    pl.DataFrame({
        "date": np.repeat(np.array(days, dtype="datetime64[D]"), n * f_n), "symbol": np.tile(np.repeat(uni.symbols, f_n), d_n),
        "factor": np.tile(np.asarray(FACTORS), d_n * n), "exposure": model.exposures.ravel(),
    }).write_parquet(src / "factor_exposures.parquet")  # fmt: skip
    pl.DataFrame({"date": np.repeat(np.array(days, dtype="datetime64[D]"), f_n), "factor": np.tile(np.asarray(FACTORS), d_n),
                  "return": model.factor_returns.ravel()}).write_parquet(src / "factor_returns.parquet")  # fmt: skip
    t1 = time.perf_counter()
    res = ingest([src], Lake(LAKE))
    t2 = time.perf_counter()
    tot = res.to_dict()["totals"]
    print(f"lake: generated in {t1 - t0:.1f} s, ingested {tot['accepted']:,} rows ({tot['quarantined']} quarantined) "
          f"in {t2 - t1:.1f} s")  # fmt: skip
    stamp.write_text(json.dumps(CFG))


def _time(fn, repeats: int = 3):
    t = time.perf_counter()
    out = fn()
    cold = time.perf_counter() - t
    warm = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - t)
    return out, cold, statistics.median(warm)


def reference_carino(pos: pl.DataFrame) -> dict[str, float]:
    """An independent, loop-per-day pandas implementation of BF + Carino (the obvious way), for the ratio and an
    equality check at scale."""
    df = pos.to_pandas()
    df["cp"], df["cb"] = df.w_p * df.r, df.w_b * df.r
    daily, k = {}, []
    for day, g in df.groupby("date"):  # the reference loops over days on purpose
        rp, rb = g.cp.sum(), g.cb.sum()
        s = g.groupby("group")[["w_p", "w_b", "cp", "cb"]].sum()
        big_rb = np.where(s.w_b.abs() > 1e-14, s.cb / s.w_b.where(s.w_b.abs() > 1e-14, 1), rb)
        big_rp = np.where(s.w_p.abs() > 1e-14, s.cp / s.w_p.where(s.w_p.abs() > 1e-14, 1), big_rb)
        eff = (s.w_p - s.w_b) * (big_rb - rb) + s.w_b * (big_rp - big_rb) + (s.w_p - s.w_b) * (big_rp - big_rb)
        kt = (np.log1p(rp) - np.log1p(rb)) / (rp - rb) if abs(rp - rb) > 1e-14 else 1 / (1 + rp)
        daily[day] = eff * kt
        k.append((rp, rb))
    rp = np.prod([1 + a for a, _ in k]) - 1
    rb = np.prod([1 + b for _, b in k]) - 1
    big_k = (np.log1p(rp) - np.log1p(rb)) / (rp - rb)
    out: dict[str, float] = {}
    for eff in daily.values():
        for g, v in eff.items():
            out[g] = out.get(g, 0.0) + v / big_k
    return out


def steps() -> None:
    from analytics import attribution as attr
    from analytics import risk
    from analytics.store import Lake

    lake = Lake(LAKE)
    con = lake.connect()
    lo, hi = con.execute("SELECT min(date), max(date) FROM holdings").fetchone()
    print(f"\nperiod {lo} .. {hi}; rows: holdings {con.execute('SELECT count(*) FROM holdings').fetchone()[0]:,}, "
          f"factor_exposures {con.execute('SELECT count(*) FROM factor_exposures').fetchone()[0]:,}")  # fmt: skip
    rows = []

    def rec(name, fn):
        out, cold, warm = _time(fn)
        rows.append((name, cold, warm))
        return out

    pos = {}
    for g in ("sector", "industry"):
        pos[g] = rec(f"load_positions P1 by {g} (SQL)", lambda g=g: attr.load_positions(con, "P1", "BM_ALL", lo, hi, g))
    print(f"positions: {pos['sector'].height:,} (date, symbol) rows")
    groups = attr.security_groups(con, "industry")
    rec(
        "regroup loaded positions to industry (the page's grouping change)", lambda: attr.regroup(pos["sector"], groups)
    )
    for g in ("sector", "industry"):
        for link in attr.LINKINGS:
            att = rec(
                f"attribute by {g}, BF, {link}", lambda g=g, link=link: attr.attribute(pos[g], "brinson_fachler", link)
            )
            tot = att.groups.filter(pl.col("group") == attr.TOTAL).row(0, named=True)
            t = att.totals
            active = float((1 + t["r_p"]).product() - (1 + t["r_b"]).product())
            err = abs(att.groups.filter(pl.col("group") != attr.TOTAL)["total"].sum() - active)
            rows[-1] = (
                *rows[-1],
                f"{att.groups.height - 1} groups, active {tot['total'] * 1e4:+.1f} bps, |Σ - active| {err:.1e}",
            )
    t = time.perf_counter()
    ref = reference_carino(pos["sector"])
    t_ref = time.perf_counter() - t
    t = time.perf_counter()
    ours = attr.attribute(pos["sector"], "brinson_fachler", "carino").groups
    t_ours = time.perf_counter() - t
    diff = max(abs(v - ref[g]) for g, v in zip(ours["group"], ours["total"], strict=True) if g != attr.TOTAL)
    rows.append(("reference: pandas loop over days, BF + Carino by sector", t_ref, t_ref,
                 f"{t_ref / t_ours:.0f}x slower than attribute(); max |diff| {diff:.1e}"))  # fmt: skip
    att = attr.attribute(pos["sector"], "bhb", "grap")
    rec("effects over time (sector, GRAP)", lambda: attr.link(att.daily, att.totals, "grap", over_time=True))
    sector = att.groups["group"][0]
    rec(f"drill into {sector}", lambda: attr.drill(pos["sector"], sector, "bhb", "grap"))
    exp, fr = rec("load_factors (SQL)", lambda: attr.load_factors(con, pos["sector"], lo, hi))
    rec("factor attribution (holdings)", lambda: attr.factor_attribution(pos["sector"], exp, fr, "carino"))
    rec("factor regression (returns)", lambda: attr.returns_regression(attr.daily_totals(pos["sector"]), fr))
    rec("TE decomposition", lambda: attr.risk_decomposition(pos["sector"], exp, fr))
    rec(
        "peer table (daily_returns SQL + metrics, 4 portfolios)",
        lambda: risk.peer_table(risk.daily_returns(con, lo, hi)),
    )
    print(f"\n{'step':66s} {'cold':>8s} {'warm':>8s}")
    for name, cold, warm, *note in rows:
        print(f"{name:66s} {cold * 1e3:7.0f}ms {warm * 1e3:7.0f}ms  {note[0] if note else ''}")
    print(f"peak RSS {_peak_gb():.2f} GB")


def apptest() -> None:
    from streamlit.testing.v1 import AppTest

    os.environ["ANALYTICS_LAKE"] = str(LAKE)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.run()
    t = time.perf_counter()
    at.switch_page("app_pages/attribution.py").run()
    out = [("first run (cold caches)", time.perf_counter() - t)]

    def step(name, fn):
        t = time.perf_counter()
        fn()
        out.append((name, time.perf_counter() - t))
        assert not at.exception, at.exception

    step("rerun (warm)", lambda: at.run())
    step("group by industry (new attribution)", lambda: at.selectbox(key="attr_group_by").select("industry").run())
    step("linking GRAP", lambda: at.selectbox(key="attr_linking").select("grap").run())
    step("method BHB", lambda: at.selectbox(key="attr_method").select("bhb").run())
    drill = at.selectbox(key="attr_drill").options
    step("drill into another group", lambda: at.selectbox(key="attr_drill").select(drill[-1]).run())
    step("back to sector (cached)", lambda: at.selectbox(key="attr_group_by").select("sector").run())
    print("\nAttribution page (AppTest, whole script run incl. the sidebar):")
    for name, s in out:
        print(f"  {name:40s} {s * 1e3:7.0f} ms")
    print(f"peak RSS {_peak_gb():.2f} GB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-apptest", action="store_true")
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    build(args.rebuild)
    steps()
    if not args.skip_apptest:
        apptest()


if __name__ == "__main__":
    main()
