"""Live engine latency: publish -> figure in the engine's live state (and -> alert), P50 / P99, at 1x and 10x.

Scaled-down replay (stated in the output): one simulated day (``--symbols`` names, ``--orders`` parent orders;
the simulator's default ~2000 quotes and ~500 prints per name a day, i.e. about 1/250 of workload W1's 20M
quotes), of which a window of the busiest event-time hour is replayed: ``--seconds`` of wall time at each speed
(60 s at 1x = one minute of the hour; at 10x = ten minutes). The engine runs as ``python -m analytics live`` in
its own process (the real entry point) on a fresh lake holding the day's reference data; the publisher is this
process (feed.stream). Latency of an event = the wall time of the engine refresh whose state includes it minus
the wall time it was published (one clock, one machine). Orders and fills are timed (market data carry no id).
After each run: lake counts against what was published (nothing lost, nothing doubled) and the engine's RSS.

    .venv/bin/python benchmarks/live.py [--sources dir nats] [--speeds 1 10] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analytics.ingest import ingest  # noqa: E402
from analytics.live import feed, natsd  # noqa: E402
from analytics.live.config import load  # noqa: E402
from analytics.simulate import SimConfig, simulate  # noqa: E402
from analytics.store import Lake  # noqa: E402

DAY = dt.date(2026, 3, 2)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _busiest_hour(sim: Path) -> dt.datetime:
    q = pl.read_parquet(sim / f"quotes_{DAY}.parquet").select(pl.col("ts").dt.truncate("1h"))
    return q.group_by("ts").len().sort("len", descending=True)["ts"][0]


def run_one(sim: Path, work: Path, source: str, speed: float, seconds: float) -> dict:
    lake_root = work / f"lake-{source}-{speed:g}x"
    ref = work / "ref"
    if not ref.exists():
        ref.mkdir()
        for f in ("bars_1d.parquet", "securities.parquet"):
            shutil.copy(sim / f, ref / f)
    ingest([ref], lake=Lake(lake_root))
    start = _busiest_hour(sim)
    f = feed.build(sim, DAY, window=(start, start + dt.timedelta(seconds=seconds * speed)), anomalies=True)
    server = None
    if source == "nats":
        server = natsd.start(work / f"js-{speed:g}")
        src = f"{server.url}/desk.events"
    else:
        src = f"dir:{work / f'inbox-{speed:g}'}"
    log = work / f"latency-{source}-{speed:g}.jsonl"
    eng = subprocess.Popen(
        [sys.executable, "-m", "analytics", "live", "--source", src, "--lake", str(lake_root), "--commit-interval",
         "3", "--latency-log", str(log)], cwd=ROOT, stderr=open(work / "engine.log", "a"), start_new_session=True,  # noqa: SIM115
    )  # fmt: skip
    state = lake_root / "live" / "state.json"
    t_end = time.time() + 30
    while time.time() < t_end:  # warmed up (JAX imported for the expectations): steady-state latency
        try:
            if json.loads(state.read_text())["status"].get("ready"):
                break
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.1)
    rss0 = _rss_mb(eng.pid)
    sent_at = np.full(len(f.lines), np.nan)

    def on_sent(i, j, wall):
        sent_at[i:j] = wall

    async def go():
        if source == "nats":
            sink = await feed.NatsSink(server.url, "desk.events", load()["nats"]["stream"]).open()
        else:
            sink = feed.DirSink(Path(src[4:]), DAY)
        try:
            return await feed.stream(f, sink, speed, on_sent)
        finally:
            await sink.close()

    n = asyncio.run(go())
    time.sleep(4)  # the last events reach the state and a commit
    rss1 = _rss_mb(eng.pid)
    eng.send_signal(signal.SIGTERM)
    eng.wait(60)
    if server:
        server.stop()
    pub = {i: sent_at[k] for k, i in enumerate(f.ids) if i is not None}
    lat, ref = [], []
    for line in log.read_text().splitlines():
        r = json.loads(line)
        lat += [r["t"] - pub[i] for i in r["ids"] if i in pub]
        ref.append(r["refresh_ms"])
    lat = np.array(lat) * 1000
    al = [json.loads(x) for x in (lake_root / "live" / "alerts.jsonl").read_text().splitlines()] if (
        lake_root / "live" / "alerts.jsonl").exists() else []  # fmt: skip
    # publish -> alert: alerts tripped by a published fill (the order rules); intake -> alert: every alert's latency_ms
    # (raised minus its trigger's receipt; for a stale feed or an elapsed markout horizon, the clock-moving event).
    a_lat = [
        (dt.datetime.fromisoformat(a["ts"].replace("Z", "+00:00")).timestamp() - max(pub[i] for i in ids)) * 1000
        for a in al
        if a["rule"] in ("cost_vs_expectation", "participation_limit")  # tripped by a fill, not by time passing
        and (ids := [i for i in a["trigger_event_ids"] if i in pub])
    ]
    i_lat = [a["latency_ms"] for a in al]
    con = Lake(lake_root).connect()
    lake_counts = dict(con.execute("SELECT 'orders', count(*) FROM orders UNION ALL SELECT 'fills', count(*) FROM fills "
                                   "UNION ALL SELECT 'quotes', count(*) FROM quotes UNION ALL SELECT 'trades', count(*) "
                                   "FROM trades UNION ALL SELECT 'quarantine', count(*) FROM quarantine").fetchall())  # fmt: skip
    kinds = pl.Series([json.loads(x).get("kind") or json.loads(x)["event_type"] for x in f.lines]).value_counts()
    return {
        "source": source, "speed": speed, "events": n, "wall_s": seconds, "timed_events": int(lat.size),
        "state_p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
        "state_p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
        "alerts": len(al), "alert_p50_ms": float(np.percentile(a_lat, 50)) if a_lat else None,
        "alert_p99_ms": float(np.percentile(a_lat, 99)) if a_lat else None, "timed_alerts": len(a_lat),
        "intake_alert_p50_ms": float(np.percentile(i_lat, 50)) if i_lat else None,
        "intake_alert_p99_ms": float(np.percentile(i_lat, 99)) if i_lat else None,
        "alerts_by_rule": dict(pl.Series([a["rule"] for a in al], dtype=pl.String).value_counts().iter_rows()),
        "rss_start_mb": rss0, "rss_end_mb": rss1, "refresh_p50_ms": float(np.percentile(ref, 50)),
        "refresh_p99_ms": float(np.percentile(ref, 99)),
        "published": dict(kinds.iter_rows()), "lake": lake_counts,
        "planted": [{"rule": t["rule"], "subject": t["subject"],
                     "detected": any(a["rule"] == t["rule"] and a["subject"] == t["subject"] for a in al)}
                    for t in f.truth],
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", nargs="+", default=["dir", "nats"])
    ap.add_argument("--speeds", nargs="+", type=float, default=[1.0, 10.0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--symbols", type=int, default=40)
    ap.add_argument("--orders", type=int, default=400)
    ap.add_argument("--quotes", type=int, default=400_000, help="quotes per day over all names (W1: 20M)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (latency logs, lakes)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-live-"))
    sim = work / "sim"
    simulate(sim, SimConfig(days=1, symbols=a.symbols, orders_per_day=a.orders, seed=7, quotes_per_day=a.quotes,
                            trades_per_day=a.quotes // 4))  # fmt: skip
    print(f"scale: one simulated day of {a.symbols} names and {a.orders} orders ({a.quotes:,} quotes and "
          f"{a.quotes // 4:,} prints a day, 1/{20_000_000 // a.quotes} of W1's quotes); replay of the busiest hour for {a.seconds:g} s of wall "
          f"time per speed; commit every 3 s; 2 shared cores")  # fmt: skip
    rows = []
    for s in a.sources:
        for v in a.speeds:
            r = run_one(sim, work, s, v, a.seconds)
            rows.append(r)
            print(json.dumps(r))
    print()
    print(
        "state: publish -> the refresh whose state holds the order/fill; alert: publish -> alert (order rules, "
        "tripped by a published fill); intake: trigger receipt -> alert (all rules; a sequence gap waits its grace)"
    )
    print(f"{'source':6} {'speed':>5} {'events':>7} {'ev/s':>6} {'state P50':>10} {'state P99':>10} {'alerts':>6} "
          f"{'alert P50':>10} {'alert P99':>10} {'intake P99':>10} {'RSS MB':>13}")  # fmt: skip
    for r in rows:

        def ms(x):
            return "-" if x is None else f"{x:.0f} ms"

        print(f"{r['source']:6} {r['speed']:>4g}x {r['events']:>7} {r['events'] / r['wall_s']:>6.0f} "
              f"{ms(r['state_p50_ms']):>10} {ms(r['state_p99_ms']):>10} {r['alerts']:>6} {ms(r['alert_p50_ms']):>10} "
              f"{ms(r['alert_p99_ms']):>10} {ms(r['intake_alert_p99_ms']):>10} {r['rss_start_mb']:>5.0f}->{r['rss_end_mb']:<5.0f}")  # fmt: skip
    if a.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
