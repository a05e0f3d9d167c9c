"""Trailing baselines of the live board on a hand-made lake: the window, the fill-weighted means and the
order-clustered intervals computed by hand; the venue_markout rule against the venue's own baseline interval."""

from __future__ import annotations

import datetime as dt
import json
import math

import polars as pl
import pytest

from analytics.ingest import ingest
from analytics.live import baseline
from analytics.live.config import load
from analytics.store import Lake

T975 = {1: 12.706204736174704, 2: 4.302652729749464, 3: 3.182446305284263}
DAYS = [dt.date(2026, 3, 2), dt.date(2026, 3, 3), dt.date(2026, 3, 4)]  # Mon..Wed; Thursday is "today"
TODAY = dt.date(2026, 3, 5)
# per day: (order, broker, algo, side, [(venue, qty, price)]); the mid is 100 all day (arrival and t + 60 s)
ORDERS = {
    0: [("A0", "B1", "VWAP", "BUY", [("XNAS", 100, 100.50)])],
    1: [("A1", "B1", "VWAP", "BUY", [("XNAS", 100, 100.10), ("ARCA", 300, 100.02)]),
        ("C1", "B2", "POV", "SELL", [("XNAS", 200, 99.96)])],
    2: [("A2", "B1", "VWAP", "BUY", [("XNAS", 300, 100.04), ("XNAS", 100, 100.08)]),
        ("C2", "B2", "POV", "SELL", [("ARCA", 100, 99.90)])],
}  # fmt: skip


def _ts(d: dt.date, s: float) -> str:
    return (dt.datetime.combine(d, dt.time(15), dt.UTC) + dt.timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("lake")
    src = tmp_path_factory.mktemp("src")
    ev = []
    for i, d in enumerate(DAYS):
        for s in (0, 30, 120, 300):
            ev.append({"event_type": "MarketDataEvent", "kind": "quote", "symbol": "AAA", "ts": _ts(d, s), "bid": 99.99,
                       "ask": 100.01, "bid_size": 100, "ask_size": 100})  # fmt: skip
        for oid, broker, algo, side, fills in ORDERS[i]:
            ev.append({"event_type": "OrderEvent", "event_id": f"{oid}-new", "order_id": oid, "ts": _ts(d, 1),
                       "action": "NEW", "symbol": "AAA", "side": side, "quantity": 1000, "broker": broker,
                       "algo": algo})  # fmt: skip
            for k, (venue, q, p) in enumerate(fills):
                ev.append({"event_type": "TradeExecutedEvent", "event_id": f"{oid}-f{k}", "fill_id": f"{oid}-F{k}",
                           "order_id": oid, "ts": _ts(d, 10 + k), "symbol": "AAA", "side": side, "quantity": q,
                           "price": p, "venue": venue})  # fmt: skip
            ev.append({"event_type": "OrderEvent", "event_id": f"{oid}-done", "order_id": oid, "ts": _ts(d, 200),
                       "action": "DONE", "symbol": "AAA", "side": side})  # fmt: skip
    f = src / "events.jsonl"
    f.write_text("".join(json.dumps(e) + "\n" for e in ev))
    lk = Lake(root)
    res = ingest([f], lake=lk)
    assert res.to_dict()["totals"]["quarantined"] == 0
    return lk


def _fills(day_idx: list[int]) -> list[dict]:
    out = []
    for i in day_idx:
        for oid, broker, algo, side, fills in ORDERS[i]:
            s = 1 if side == "BUY" else -1
            for venue, q, p in fills:
                out.append({"oid": oid, "broker": broker, "algo": algo, "venue": venue, "q": q, "p": p,
                            "arr": s * (p - 100) / 100 * 1e4, "mk": s * (p - 100) / p * 1e4})  # fmt: skip
    return out


def _by_hand(fills: list[dict], measure: str, weight) -> tuple[float, float, float]:
    """Clustered (by order) weighted mean and 95% interval: m = ΣA/ΣB, V = G/(G-1) Σ(A_g - m B_g)² / (ΣB)²."""
    a, b = {}, {}
    for f in fills:
        a[f["oid"]] = a.get(f["oid"], 0) + weight(f) * f[measure]
        b[f["oid"]] = b.get(f["oid"], 0) + weight(f)
    m = sum(a.values()) / sum(b.values())
    g = len(a)
    if g < 2:
        return m, None, None
    v = g / (g - 1) * sum((a[k] - m * b[k]) ** 2 for k in a) / sum(b.values()) ** 2
    h = T975[g - 1] * math.sqrt(v)
    return m, m - h, m + h


def test_window_takes_the_last_order_days_before_today():
    days = [dt.date(2026, 2, 27), *DAYS, TODAY, dt.date(2026, 3, 6)]
    assert baseline.window(days, TODAY, 2) == DAYS[1:]
    assert baseline.window(days, TODAY) == [dt.date(2026, 2, 27), *DAYS]
    assert baseline.window(days, DAYS[0]) == [dt.date(2026, 2, 27)]


def test_baseline_from_the_lake_by_hand(lake):
    base = baseline.compute(lake, TODAY, days=2)  # days 1 and 2 (day 0's A0 at 100.50 is outside the window)
    fl = _fills([1, 2])
    rows = {(r["dimension"], r["key"]): r for r in base.to_dicts()}
    assert set(rows) == {("venue", "XNAS"), ("venue", "ARCA"), ("broker", "B1"), ("broker", "B2"), ("algo", "VWAP"),
                         ("algo", "POV")}  # fmt: skip
    for (dim, key), r in rows.items():
        sub = [f for f in fl if f[dim] == key]
        for col, meas, w in (("arrival_cost_bps", "arr", lambda f: f["p"] * f["q"]),
                             ("markout_cost_bps_60s", "mk", lambda f: f["q"])):  # fmt: skip
            m, lo, hi = _by_hand(sub, meas, w)
            assert r[f"base_{col}"] == pytest.approx(m, abs=1e-9), (dim, key, col)
            if lo is None:
                assert r[f"base_{col}_lo"] is None
            else:
                assert r[f"base_{col}_lo"] == pytest.approx(lo, abs=1e-9)
                assert r[f"base_{col}_hi"] == pytest.approx(hi, abs=1e-9)
        assert r["base_fills"] == len(sub) and r["base_orders"] == len({f["oid"] for f in sub})
    assert rows[("venue", "XNAS")]["base_days"] == 2 and rows[("venue", "XNAS")]["base_orders"] == 3
    # the full window (20 days) takes day 0 in: XNAS's mean moves by A0's 50 bps fill
    full = baseline.compute(lake, TODAY).filter((pl.col("dimension") == "venue") & (pl.col("key") == "XNAS"))
    m, _lo, _hi = _by_hand([f for f in _fills([0, 1, 2]) if f["venue"] == "XNAS"], "mk", lambda f: f["q"])
    assert full["base_markout_cost_bps_60s"][0] == pytest.approx(m, abs=1e-9)
    assert baseline.compute(lake, DAYS[0]).height == 0  # no history before the first day


def test_engine_computes_the_baseline_at_a_new_day_and_shows_it_on_the_board(lake, tmp_path):
    from analytics.live.engine import Engine
    from analytics.live.sources import parse_source

    eng = Engine(lake, parse_source(f"dir:{tmp_path / 'inbox'}"), load())
    d = TODAY
    eng.pending = [
        {"event_type": "MarketDataEvent", "kind": "quote", "symbol": "AAA", "ts": _ts(d, 0), "bid": 99.99,
         "ask": 100.01, "bid_size": 100, "ask_size": 100, "_recv": 1.0},
        {"event_type": "OrderEvent", "event_id": "T-new", "order_id": "T", "ts": _ts(d, 1), "action": "NEW",
         "symbol": "AAA", "side": "BUY", "quantity": 1000, "broker": "B1", "algo": "VWAP", "_recv": 1.0},
        {"event_type": "TradeExecutedEvent", "event_id": "T-f0", "fill_id": "T-F0", "order_id": "T", "ts": _ts(d, 5),
         "symbol": "AAA", "side": "BUY", "quantity": 100, "price": 100.02, "venue": "XNAS", "_recv": 1.0},
    ]  # fmt: skip
    eng.refresh()
    eng._baseline_thread.join(60)
    assert eng.baseline_day == TODAY
    eng.pending = [{"event_type": "MarketDataEvent", "kind": "quote", "symbol": "AAA", "ts": _ts(d, 90), "bid": 99.99,
                    "ask": 100.01, "bid_size": 100, "ask_size": 100, "_recv": 2.0}]  # fmt: skip
    eng.refresh()
    row = eng.board_state.filter((pl.col("dimension") == "venue") & (pl.col("key") == "XNAS")).to_dicts()[0]
    m, _lo, hi = _by_hand([f for f in _fills([0, 1, 2]) if f["venue"] == "XNAS"], "mk", lambda f: f["q"])
    assert row["markout_cost_bps_60s"] == pytest.approx(0.02 / 100.02 * 1e4)  # today: (100.02 - 100) / 100.02 x 1e4
    assert row["base_markout_cost_bps_60s"] == pytest.approx(m)
    # 4 orders: t_3, which tca.t975 approximates within 0.12% (Cornish-Fisher; exact t_3 = 3.1824 here)
    assert row["base_markout_cost_bps_60s_hi"] - m == pytest.approx(hi - m, rel=2e-3)
    assert row["base_days"] == 3
