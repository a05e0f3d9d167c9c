"""The strategy intraday drawdown rule on a hand-made stream: P&L marked to live mids, the peak on the event-clock
grid, drawdown in currency and bps of traded notional computed by hand; one open alert per (rule, subject) until it
clears."""

from __future__ import annotations

import datetime as dt

import pytest

from analytics.live import alerts as al
from analytics.live.book import DayBook, typed_events
from analytics.live.config import load
from analytics.live.pnl import DrawdownTracker, grid_times, pnl_at, strategy_fills

DAY = dt.date(2026, 3, 2)
T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)
CFG = load()["strategy_drawdown"] | {"max_drawdown_bps": 100.0, "min_drawdown": 100.0}


def _t(s: float) -> str:
    return (T0 + dt.timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _quote(s, mid, sym="AAA"):
    return {"event_type": "MarketDataEvent", "kind": "quote", "symbol": sym, "ts": _t(s), "bid": mid - 0.01,
            "ask": mid + 0.01, "bid_size": 100, "ask_size": 100}  # fmt: skip


def _decision(did, pf, strat, side, sym="AAA"):
    return {"event_type": "TradingDecisionEvent", "event_id": f"{did}-ev", "decision_id": did, "ts": _t(0),
            "portfolio_id": pf, "strategy": strat, "symbol": sym, "side": side, "quantity": 1000}  # fmt: skip


def _new(oid, did, side, sym="AAA"):
    return {"event_type": "OrderEvent", "event_id": f"{oid}-new", "order_id": oid, "decision_id": did, "ts": _t(1),
            "action": "NEW", "symbol": sym, "side": side, "quantity": 1000, "broker": "B1", "algo": "VWAP"}  # fmt: skip


def _fill(oid, k, s, qty, price, side, sym="AAA"):
    return {"event_type": "TradeExecutedEvent", "event_id": f"{oid}-f{k}", "fill_id": f"{oid}-F{k}", "order_id": oid,
            "ts": _t(s), "symbol": sym, "side": side, "quantity": qty, "price": price, "venue": "XNAS"}  # fmt: skip


# P1/MOM buys AAA: 100 @ 100.00 (t = 10 s), 100 @ 100.10 (t = 20 s); P2/REV sells BBB: 100 @ 50.00 (t = 12 s).
# Orders O3 (no decision known) trade AAA too and belong to no portfolio.
# AAA mid: 100.00 from 0 s, 100.50 from 30 s, 99.00 from 60 s, 100.20 from 90 s. BBB mid: 50.00 from 0 s,
# 49.90 from 40 s.
STREAM = [
    _quote(0, 100.00), _quote(0, 50.00, "BBB"), _decision("D1", "P1", "MOM", "BUY"),
    _decision("D2", "P2", "REV", "SELL", "BBB"), _new("O1", "D1", "BUY"), _new("O2", "D2", "SELL", "BBB"),
    {**_new("O3", "D9", "BUY")}, _fill("O1", 0, 10, 100, 100.00, "BUY"), _fill("O2", 0, 12, 100, 50.00, "SELL", "BBB"),
    _fill("O3", 0, 15, 500, 100.00, "BUY"), _fill("O1", 1, 20, 100, 100.10, "BUY"), _quote(30, 100.50),
    _quote(40, 49.90, "BBB"), _quote(60, 99.00), _quote(90, 100.20),
]  # fmt: skip


def _frames(events):
    book = DayBook(DAY)
    for t, df in typed_events([e | {"_recv": 1000.0 + i} for i, e in enumerate(events)]).items():
        book.add(t, df)
    return {t: book.frame(t) for t in ("orders", "fills", "quotes", "decisions")}


def test_pnl_marked_to_live_mids_by_hand():
    f = _frames(STREAM)
    sf = strategy_fills(f["fills"], f["orders"], f["decisions"])
    assert sorted(sf["portfolio_id"].to_list()) == ["P1", "P1", "P2"]  # O3 has no known decision
    p = pnl_at(sf, f["quotes"], [T0 + dt.timedelta(seconds=s) for s in (5, 15, 35, 70)])
    got = {(r["portfolio_id"], round((r["t"] - T0).total_seconds())): r for r in p.to_dicts()}
    # P1 at 15 s: 100 x (100.00 - 100.00) = 0; at 35 s: 100 x (100.50 - 100.00) + 100 x (100.50 - 100.10) = 90;
    # at 70 s: 100 x (99 - 100) + 100 x (99 - 100.10) = -210; notional 20 010
    assert ("P1", 5) not in got  # no fill yet
    assert got[("P1", 15)]["pnl"] == pytest.approx(0.0) and got[("P1", 15)]["notional"] == pytest.approx(10000)
    assert got[("P1", 35)]["pnl"] == pytest.approx(90.0)
    assert got[("P1", 70)]["pnl"] == pytest.approx(-210.0)
    assert got[("P1", 70)]["pnl_bps"] == pytest.approx(-210.0 / 20010 * 1e4)
    # P2 sold 100 BBB @ 50: -1 x (49.90 - 50.00) x 100 = +10 once the mid is 49.90
    assert got[("P2", 35)]["pnl"] == pytest.approx(0.0) and got[("P2", 70)]["pnl"] == pytest.approx(10.0)


def test_grid_is_the_multiples_of_sample_s():
    g = grid_times(T0 + dt.timedelta(seconds=9.5), T0 + dt.timedelta(seconds=25), 5.0)
    assert [(x - T0).total_seconds() for x in g] == [10, 15, 20, 25]


def test_drawdown_alert_raised_once_and_cleared(tmp_path):
    book = al.AlertBook(tmp_path, {"strategy_drawdown": "warning"})
    tr = DrawdownTracker(5.0)
    raised = []
    # the stream arrives in order; the engine refreshes at these event clocks
    for clock_s, n_events, want in ((25, 11, None), (50, 13, None), (70, 14, "P1/MOM"), (80, 14, "P1/MOM"),
                                     (95, 15, None)):  # fmt: skip
        f = _frames(STREAM[:n_events])
        sf = strategy_fills(f["fills"], f["orders"], f["decisions"])
        cur = tr.update(sf, f["quotes"], T0 + dt.timedelta(seconds=clock_s))
        b = al.strategy_drawdown(cur, CFG, recv=2000.0)
        assert b["subject"].to_list() == ([want] if want else []), clock_s
        raised += book.update(b, {"strategy_drawdown"}, now=2000.5)
        if clock_s == 70:
            # peak 90 (sampled at 30..50 s), now -210: 300 down, 300 / 20 010 x 1e4 = 149.9 bps > 100
            r = cur.filter(cur["portfolio_id"] == "P1").to_dicts()[0]
            assert (r["peak"], r["pnl"], r["drawdown"]) == pytest.approx((90.0, -210.0, 300.0))
            assert b["value"][0] == pytest.approx(300 / 20010 * 1e4) and b["threshold"][0] == 100.0
    assert len(raised) == 1 and raised[0]["subject_type"] == "portfolio"  # one alert while it stayed open
    assert book.open == {}  # at 95 s P1 is at +30: 60 down = 30 bps, cleared
    # the currency floor: the same 150 bps drawdown is below a floor of 1 000
    tr2 = DrawdownTracker(5.0)
    f = _frames(STREAM[:14])
    sf = strategy_fills(f["fills"], f["orders"], f["decisions"])
    tr2.update(sf, f["quotes"], T0 + dt.timedelta(seconds=50))
    cur = tr2.update(sf, f["quotes"], T0 + dt.timedelta(seconds=70))
    assert al.strategy_drawdown(cur, CFG | {"min_drawdown": 1000.0}).height == 0


def test_the_peak_is_on_the_event_clock_grid_not_the_refresh_times():
    # refreshing only at 70 s (a replay at high speed) finds the same peak as refreshing every few seconds
    f = _frames(STREAM[:14])
    sf = strategy_fills(f["fills"], f["orders"], f["decisions"])
    once = DrawdownTracker(5.0).update(sf, f["quotes"], T0 + dt.timedelta(seconds=70))
    assert once.filter(once["portfolio_id"] == "P1")["peak"][0] == pytest.approx(90.0)
