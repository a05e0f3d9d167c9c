"""Each live alert rule on a small hand-made stream, with the expectation computed by hand; the open-alert book
(one open alert per (rule, subject) until it clears) and the alert log."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from analytics.live import alerts as al
from analytics.live.book import DayBook, typed_events
from analytics.live.config import load
from analytics.live.state import live_tca

DAY = dt.date(2026, 3, 2)
CFG = load()
T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)


def _t(s: float) -> str:
    return (T0 + dt.timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _quote(s, sym="AAA", mid=100.0, seq=None, half=0.05):
    q = {"event_type": "MarketDataEvent", "kind": "quote", "symbol": sym, "ts": _t(s), "bid": mid - half,
         "ask": mid + half, "bid_size": 100, "ask_size": 100}  # fmt: skip
    return q | ({"seq": seq} if seq is not None else {})


def _trade(s, size, price=100.0, sym="AAA"):
    return {"event_type": "MarketDataEvent", "kind": "trade", "symbol": sym, "ts": _t(s), "price": price, "size": size}


def _new(s, oid="O1", qty=10000, algo="POV", pov=0.10, sym="AAA"):
    return {"event_type": "OrderEvent", "event_id": f"{oid}-new", "order_id": oid, "ts": _t(s), "action": "NEW",
            "symbol": sym, "side": "BUY", "quantity": qty, "broker": "B1", "algo": algo,
            "algo_params": {"target_pov": pov}}  # fmt: skip


def _fill(s, k, qty, price, oid="O1", venue="XNAS", sym="AAA"):
    return {"event_type": "TradeExecutedEvent", "event_id": f"{oid}-f{k}", "fill_id": f"{oid}-F{k}", "order_id": oid,
            "ts": _t(s), "symbol": sym, "side": "BUY", "quantity": qty, "price": price, "venue": venue}  # fmt: skip


def _state(events, clock_s):
    book = DayBook(DAY)
    for t, df in typed_events([e | {"_recv": 1000.0 + i} for i, e in enumerate(events)]).items():
        book.add(t, df)
    f = {t: book.frame(t) for t in ("orders", "fills", "quotes", "trades", "decisions")}
    o, fm = live_tca(
        f["orders"], f["fills"], f["quotes"], f["trades"], f["decisions"], T0 + dt.timedelta(seconds=clock_s)
    )
    return f, o, fm, al.order_triggers(f["orders"], f["fills"])


def test_expectation_is_published_istar_by_hand():
    # size 10000 / ADV 1e6 = 1%, sigma_daily 2% -> annual 0.02 sqrt(250), pov 10%
    exp = al.expectations(
        pl.DataFrame(
            {"order_id": ["O1"], "symbol": ["AAA"], "order_qty": [10000.0], "target_pov": [0.10], "urgency": [None]},
            schema_overrides={"urgency": pl.String},
        ),
        pl.DataFrame({"symbol": ["AAA"], "adv": [1e6], "sigma_daily": [0.02]}),
    )
    sig_a = 0.02 * math.sqrt(250)
    istar = 708.0 * 0.01**0.55 * sig_a**0.71
    mi = 0.98 * istar * 0.10**0.50 + 0.02 * istar
    assert exp["expected_impact_bps"][0] == pytest.approx(mi, rel=1e-9)
    # published residual band +-1.645 x 0.3 daily sigma: sigma = 0.3 x 200 bps = 60 bps
    assert exp["sigma_impact_bps"][0] == pytest.approx(60.0, rel=1e-9)


def test_cost_vs_expectation():
    # Arrival mid 100; 4 fills of 500 while the mid walks to 100.2, 100.4, 100.6, 100.8 -> impact so far by hand.
    ev = [_quote(0), _new(1)]
    mids = [100.2, 100.4, 100.6, 100.8]
    for k, m in enumerate(mids):
        ev += [_quote(10 + 10 * k, mid=m), _fill(11 + 10 * k, k, 500, m + 0.05)]
    _f, o, _fm, trig = _state(ev, 60)
    pv = sum(500 * (m + 0.05) for m in mids)
    impact = sum(500 * (m - 100.0) for m in mids) / pv * 1e4  # ~49.9 bps
    assert o["impact_cost_bps"][0] == pytest.approx(impact)
    cfg = CFG["cost_vs_expectation"] | {"k_sigma": 3.0}
    exp = pl.DataFrame({"order_id": ["O1"], "expected_impact_bps": [10.0], "sigma_impact_bps": [13.0]})
    b = al.cost_vs_expectation(o, exp, trig, cfg)  # threshold 10 + 3 x 13 = 49 < 49.9
    assert b.height == 1 and b["threshold"][0] == pytest.approx(49.0) and b["value"][0] == pytest.approx(impact)
    assert b["trigger_event_ids"][0].to_list() == ["O1-f1", "O1-f2", "O1-f3"]
    exp2 = exp.with_columns(pl.lit(14.0).alias("sigma_impact_bps"))  # threshold 52 > 49.9
    assert al.cost_vs_expectation(o, exp2, trig, cfg).height == 0
    # fill_rate 2000 / 10000 = 0.2: with min_fill_rate 0.25 the order is not judged yet
    assert al.cost_vs_expectation(o, exp, trig, cfg | {"min_fill_rate": 0.25}).height == 0


def test_participation_limit():
    ev = [_quote(0), _new(1, pov=0.10), _trade(5, 30000), _fill(6, 0, 4000, 100.05), _trade(7, 10000)]
    _f, o, _fm, trig = _state(ev, 10)
    # market volume since NEW = 30000 + 10000 = 40000; participation 4000 / 40000 = 0.10 (the desk's fill is not
    # a market print here): limit = 0.10 x 2.0 = 0.20 -> no breach
    assert o["participation_rate"][0] == pytest.approx(0.10)
    cfg = CFG["participation_limit"]
    assert al.participation_limit(o, trig, cfg).height == 0
    ev += [_fill(8, 1, 5000, 100.05)]  # 9000 / 40000 = 0.225 > 0.20
    _f, o, _fm, trig = _state(ev, 10)
    b = al.participation_limit(o, trig, cfg)
    assert b.height == 1 and b["value"][0] == pytest.approx(0.225) and b["threshold"][0] == pytest.approx(0.20)
    # an algo limit listed in the config wins over target_pov x multiplier
    assert al.participation_limit(o, trig, cfg | {"limits": {"POV": 0.25}}).height == 0
    # below min_interval_volume the rate is not judged
    assert al.participation_limit(o, trig, cfg | {"min_interval_volume": 50000}).height == 0


def test_stale_quote():
    # quotes every 2 s from 0 to 20 s (median gap 2 s -> limit max(30, 10 x 2) = 30 s); order works from 1 s
    ev = [_quote(s) for s in range(0, 21, 2)] + [_new(1), _quote(0, sym="BBB")]
    f, o, _fm, _trig = _state(ev, 50)  # last quote at 20 s: age 30 s, not above 30
    cfg = CFG["stale_quote"]
    assert al.stale_quote(o, f["quotes"], T0 + dt.timedelta(seconds=50), 5.0, cfg).height == 0
    b = al.stale_quote(o, f["quotes"], T0 + dt.timedelta(seconds=51), 5.0, cfg)
    assert b["subject"].to_list() == ["quotes:AAA"] and b["value"][0] == pytest.approx(31.0)
    assert b["threshold"][0] == pytest.approx(30.0)
    # a thin name: quotes every 10 s from 0 to 50 (6 quotes, median gap 10 s -> limit 100 s)
    thin = [_quote(s) for s in range(0, 51, 10)] + [_new(1)]
    f, o, _fm, _trig = _state(thin, 150)
    assert al.stale_quote(o, f["quotes"], T0 + dt.timedelta(seconds=150), 5.0, cfg).height == 0  # age 100
    b = al.stale_quote(o, f["quotes"], T0 + dt.timedelta(seconds=151), 5.0, cfg)
    assert b["threshold"].to_list() == [100.0] and b["value"][0] == pytest.approx(101.0)
    # fewer than min_quotes_for_cadence (5) quotes: the cadence is unknown, the limit is no_cadence_age_s (300 s)
    few = [_quote(0), _quote(10), _new(1)]
    f, o, _fm, _trig = _state(few, 300)
    assert al.stale_quote(o, f["quotes"], T0 + dt.timedelta(seconds=310), 5.0, cfg).height == 0  # age 300
    assert al.stale_quote(o, f["quotes"], T0 + dt.timedelta(seconds=311), 5.0, cfg)["threshold"].to_list() == [300.0]
    # no quote at all: the age runs from the later of the arrival and the start of observation
    none = [_new(1, sym="ZZZ"), _quote(0)]
    f, o, _fm, _trig = _state(none, 400)
    at = T0 + dt.timedelta(seconds=400)
    assert al.stale_quote(o, f["quotes"], at, 5.0, cfg)["value"].to_list() == [pytest.approx(399.0)]
    assert al.stale_quote(o, f["quotes"], at, 5.0, cfg, T0 + dt.timedelta(seconds=200)).height == 0  # age 200
    # an ended order does not need quotes
    done = [*ev, {"event_type": "OrderEvent", "event_id": "O1-done", "order_id": "O1", "ts": _t(22), "action": "DONE"}]
    f, o, _fm, _trig = _state(done, 51)
    assert al.stale_quote(o, f["quotes"], T0 + dt.timedelta(seconds=51), 5.0, cfg).height == 0


def _market(events, clock_s):
    f, *_ = _state(events, clock_s)
    return f["quotes"].select("symbol", "venue", "seq", "ts", "_recv").with_columns(pl.lit("quote").alias("kind"))


def test_sequence_gap():
    cfg = CFG["sequence_gap"]  # grace 2 s
    ev = [_quote(s, seq=s + 1) for s in (0, 1, 2, 5, 6)]  # seq 1,2,3,6,7: 4 and 5 missing, 6 arrived at ts 5
    m = _market(ev, 7)
    assert al.sequence_gap(m, T0 + dt.timedelta(seconds=6.9), cfg).height == 0  # within the grace
    b = al.sequence_gap(m, T0 + dt.timedelta(seconds=7), cfg)
    assert b["subject"].to_list() == ["quote:AAA"] and b["value"][0] == 2.0
    # the late quotes arrive (out of order): the gap is gone
    m = _market([*ev, _quote(3, seq=4), _quote(4, seq=5)], 8)
    assert al.sequence_gap(m, T0 + dt.timedelta(seconds=8), cfg).height == 0


def test_quarantine_spike():
    cfg = CFG["quarantine_spike"]  # 5% of at least 20 rows
    assert al.quarantine_spike(100, 4, "b", 1.0, cfg).height == 0
    b = al.quarantine_spike(100, 5, "b", 1.0, cfg)
    assert b.height == 1 and b["value"][0] == pytest.approx(0.05)
    assert al.quarantine_spike(19, 19, "b", 1.0, cfg).height == 0


def _twenty_orders_at_xnas():
    """20 orders (one fill each) at XNAS, each 100 @ 100.05 with the mid 60 s later at 99.95 + 0.01 k (k = 0..19):
    markout_k = (100.05 - mid_k) / 100.05 x 1e4. Plus one order with 20 fills at DRKA, 100 @ 100.05 each: one
    parent order, so it has no interval (fills of one order are not independent observations) and is never judged.
    Equal quantities and one fill per order: the order-clustered interval is the plain t interval,
    mean - t_19 sqrt(sum (x - mean)^2 / (19 x 20)) (CR1 = the n - 1 sample variance; t_19 = 2.093024)."""
    ev = [_quote(0), _new(1, oid="D1", qty=100000, pov=0.5)]
    for k in range(20):
        ev += [_new(2, oid=f"O{k}", qty=1000, pov=0.5), _fill(10 + k, 0, 100, 100.05, oid=f"O{k}")]
        ev += [_fill(10 + k, k, 100, 100.05, oid="D1", venue="DRKA"), _quote(70 + k, mid=99.95 + 0.01 * k)]
    f, _o, fm, _trig = _state(ev, 200)
    xs = [(100.05 - (99.95 + 0.01 * k)) / 100.05 * 1e4 for k in range(20)]
    mean = sum(xs) / 20
    lo = mean - 2.093024 * math.sqrt(sum((x - mean) ** 2 for x in xs) / (19 * 20))
    return f, fm, mean, lo


def test_venue_markout():
    f, fm, mean, lo = _twenty_orders_at_xnas()
    cfg = CFG["venue_markout"]
    b = al.venue_markout(fm, f["fills"], cfg | {"default_baseline_bps": lo - 0.01})
    assert b["subject"].to_list() == ["XNAS"] and b["value"][0] == pytest.approx(mean)  # DRKA: one order, no call
    assert al.venue_markout(fm, f["fills"], cfg | {"default_baseline_bps": lo + 0.01}).height == 0
    assert al.venue_markout(fm, f["fills"], cfg | {"baselines": {"XNAS": lo + 0.01}}).height == 0
    assert al.venue_markout(fm, f["fills"], cfg | {"default_baseline_bps": 0.0, "min_fills": 21}).height == 0
    # DRKA's 20 fills of one order with a markout far above any baseline: still no alert (no independent evidence)
    assert "DRKA" not in al.venue_markout(fm, f["fills"], cfg | {"default_baseline_bps": -1e9})["subject"].to_list()


def test_alert_book_one_open_alert_until_it_clears(tmp_path):
    book = al.AlertBook(tmp_path, {"quarantine_spike": "critical"})
    spike = al.quarantine_spike(100, 10, "b1", 100.0, CFG["quarantine_spike"])
    raised = book.update(spike, {"quarantine_spike"}, now=100.25)
    assert len(raised) == 1 and raised[0]["severity"] == "critical" and raised[0]["latency_ms"] == pytest.approx(250)
    assert book.update(spike, {"quarantine_spike"}, now=101) == []  # still open: no second alert
    # a restart keeps it open
    book2 = al.AlertBook(tmp_path, {"quarantine_spike": "critical"})
    assert book2.update(spike, {"quarantine_spike"}, now=102) == []
    book2.update(al._empty(), {"sequence_gap"}, now=103)  # another rule evaluated: does not clear it
    assert len(book2.open) == 1
    book2.update(al._empty(), {"quarantine_spike"}, now=104)  # cleared
    assert book2.open == {}
    again = book2.update(spike, {"quarantine_spike"}, now=105)  # breaches again: a new alert
    assert len(again) == 1 and again[0]["alert_id"] != raised[0]["alert_id"]
    al.act(tmp_path, again[0]["alert_id"], "ack")
    al.act(tmp_path, raised[0]["alert_id"], "snooze", 3600)
    df = al.read(tmp_path)
    assert df.height == 2
    r = {x["alert_id"]: x for x in df.to_dicts()}
    assert r[raised[0]["alert_id"]]["open"] is False and r[raised[0]["alert_id"]]["snoozed"] is True
    assert r[again[0]["alert_id"]]["open"] is True and r[again[0]["alert_id"]]["acked"] is True
    assert set(al.BREACH_SCHEMA) - {"trigger_ts"} <= set(df.columns)
    # a torn last line (crash mid-write) is skipped
    with open(tmp_path / al.ALERTS_FILE, "a") as fh:
        fh.write('{"alert_id": "AL-x", "ru')
    assert al.read(tmp_path).height == 2


def test_venue_markout_against_the_venues_own_baseline_interval():
    # the stream of test_venue_markout (today's 95% lower bound lo); the trailing baseline's upper end replaces the
    # constant for a venue that has one, the constant stays for a venue without history
    f, fm, _mean, lo = _twenty_orders_at_xnas()
    cfg = CFG["venue_markout"] | {"default_baseline_bps": 1000.0}  # the constant alone would never alert

    def base(venue, m, hi):
        return pl.DataFrame({"dimension": ["venue"], "key": [venue], "base_markout_cost_bps_60s": [m],
                             "base_markout_cost_bps_60s_hi": [hi]})  # fmt: skip

    b = al.venue_markout(fm, f["fills"], cfg, baseline=base("XNAS", lo - 3, lo - 0.01))
    assert b.height == 1 and b["threshold"][0] == pytest.approx(lo - 0.01) and b["expected"][0] == pytest.approx(lo - 3)
    assert "trailing baseline" in b["message"][0]
    assert al.venue_markout(fm, f["fills"], cfg, baseline=base("XNAS", lo - 3, lo + 0.01)).height == 0
    # another venue's history, or a baseline without an interval (one order), leaves XNAS on the constant
    assert al.venue_markout(fm, f["fills"], cfg, baseline=base("ARCA", 0.0, 0.1)).height == 0
    assert al.venue_markout(fm, f["fills"], cfg, baseline=base("XNAS", 0.0, None)).height == 0
    b = al.venue_markout(fm, f["fills"], cfg | {"default_baseline_bps": lo - 0.01}, baseline=base("ARCA", 0.0, 0.1))
    assert b.height == 1 and b["threshold"][0] == pytest.approx(lo - 0.01) and "configured" in b["message"][0]
