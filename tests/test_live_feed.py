"""The live simulator feed: built from the simulator's own output, delivered out of order, with planted anomalies
whose ground truth holds in the stream, and the engine's alert rules finding the planted feed anomalies."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time

import numpy as np
import polars as pl
import pytest

from analytics.ingest import ingest
from analytics.live import feed
from analytics.live.config import load
from analytics.live.engine import Engine, live_dir
from analytics.live.sources import parse_source
from analytics.simulate import SimConfig, simulate
from analytics.store import Lake

DAY = dt.date(2026, 3, 2)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    simulate(out, SimConfig(days=1, symbols=6, orders_per_day=20, fills_per_order=10, seed=5))
    return out


def _ts(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def test_feed_is_the_simulated_day_out_of_order_with_its_anomalies(sim):
    f = feed.build(sim, DAY, seed=1)
    ev = [json.loads(x) for x in f.lines]
    assert (f.deliver_s[1:] >= f.deliver_s[:-1]).all()
    # every desk event of the simulator is there once; quotes less the planted withheld and dropped ones
    for name, et in (("orders", "OrderEvent"), ("fills", "TradeExecutedEvent"), ("decisions", "TradingDecisionEvent")):
        src = [json.loads(x)["event_id"] for x in (sim / f"{name}_{DAY}.jsonl").read_text().splitlines()]
        assert sorted(e["event_id"] for e in ev if e["event_type"] == et) == sorted(src)
    # delivered out of event-time order
    ts = [_ts(e["ts"]) for e in ev]
    assert sum(b < a for a, b in itertools.pairwise(ts)) > 0
    truth = {t["rule"]: t for t in f.truth}
    quotes = pl.DataFrame([e for e in ev if e.get("kind") == "quote"]).with_columns(
        pl.col("ts").str.to_datetime(time_zone="UTC")
    )
    # stale: no quote of the symbol inside the window
    st = truth["stale_quote"]
    sym = st["subject"].split(":")[1]
    inside = quotes.filter((pl.col("symbol") == sym) & pl.col("ts").is_between(_ts(st["from"]), _ts(st["to"]), "none"))
    assert inside.height == 0
    # the withheld quotes were never published: the stale symbol's sequence has no gap
    seqs = quotes.filter((pl.col("symbol") == sym) & pl.col("seq").is_not_null())["seq"].sort()
    assert seqs.to_list() == list(range(1, seqs.len() + 1))
    # sequence gap: exactly three consecutive numbers missing
    gsym = truth["sequence_gap"]["subject"].split(":")[1]
    gs = set(quotes.filter(pl.col("symbol") == gsym)["seq"].drop_nulls().to_list())
    missing = sorted(set(range(1, max(gs) + 1)) - gs)
    assert len(missing) == 3 and missing[2] - missing[0] == 2
    # the spike: 40 crossed quotes without seq
    assert quotes.filter(pl.col("bid") > pl.col("ask")).height == 40


@pytest.mark.slow
def test_engine_alerts_on_the_planted_feed_anomalies(sim, tmp_path):
    """The engine's own refresh over the delivered stream (no pacing) raises the planted stale_quote and
    sequence_gap alerts on their subjects, the stale one after its start."""
    lake = Lake(tmp_path / "lake")
    ref = tmp_path / "ref"
    ref.mkdir()
    for name in ("bars_1d.parquet", "securities.parquet"):
        (ref / name).write_bytes((sim / name).read_bytes())
    ingest([ref], lake=lake)
    f = feed.build(sim, DAY, seed=1)
    eng = Engine(lake, parse_source(f"dir:{tmp_path / 'inbox'}"), load())
    # Refresh every 5 s of delivery time around the stale window (as the engine would, far more often), every
    # 10 minutes elsewhere (keeps the test fast).
    t_first = _ts(json.loads(f.lines[0])["ts"]).timestamp() - f.deliver_s[0]
    st = {t["rule"]: t for t in f.truth}["stale_quote"]
    a, b = _ts(st["from"]).timestamp() - t_first - 60, _ts(st["to"]).timestamp() - t_first + 60
    cuts = np.unique(np.concatenate([np.arange(0, f.deliver_s[-1] + 600, 600), np.arange(a, b, 5.0)]))
    idx = np.searchsorted(f.deliver_s, cuts, side="right")
    for i, j in itertools.pairwise([0, *idx.tolist(), len(f.lines)]):
        if j > i:
            eng.pending = [json.loads(x) | {"_recv": time.time()} for x in f.lines[i:j]]
            eng.refresh()
    # every order carries its NEW-time I-Star expectation and the deviation from it in its own sigmas
    o = eng.orders_state
    assert o["expected_impact_bps"].null_count() == 0 and (o["sigma_impact_bps"] > 0).all()
    z = (o["impact_cost_bps"] - o["expected_impact_bps"]) / o["sigma_impact_bps"]
    assert ((z - o["impact_z"]).abs().drop_nulls() < 1e-12).all()
    raised = [json.loads(x) for x in (live_dir(lake.root) / "alerts.jsonl").read_text().splitlines()]
    truth = {t["rule"]: t for t in f.truth}
    stale = [a for a in raised if a["rule"] == "stale_quote" and a["subject"] == truth["stale_quote"]["subject"]]
    assert stale
    gap = [a for a in raised if a["rule"] == "sequence_gap"]
    assert [a["subject"] for a in gap] == [truth["sequence_gap"]["subject"]]


def test_simulate_live_cli_to_a_folder(tmp_path, run_cli):
    """As the Live page starts the demo feed: with ``--start`` (the page passes the day after the lake's last)."""
    inbox = tmp_path / "inbox"
    r = run_cli("simulate", "--live", "--speed", "100000", "--to", f"dir:{inbox}", "--out", str(tmp_path / "sim"),
                "--start", "2026-03-09", "--symbols", "4", "--orders-per-day", "5", "--fills-per-order", "3",
                "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    lines = (inbox / "live-2026-03-09.jsonl").read_text().splitlines()
    assert len(lines) == out["events"] > 0
    truth = json.loads((inbox / "_live_ground_truth.json").read_text())
    assert {t["rule"] for t in truth["anomalies"]} >= {"sequence_gap", "quarantine_spike"}
