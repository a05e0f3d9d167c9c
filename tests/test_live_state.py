"""Live state: at the end of the day the live per-order figures equal the batch TCA (analytics.tca, an independent
SQL implementation) of the same orders; during the day, hand-computed figures on a tiny stream."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import polars as pl
import pytest

from analytics import tca
from analytics.ingest import ingest
from analytics.live.book import DayBook, typed_events
from analytics.live.state import board, live_tca
from analytics.simulate import SimConfig, simulate
from analytics.store import Lake

DAY = dt.date(2026, 3, 2)


def _events_of_files(folder) -> list[dict]:
    """The day's events as the live feed would deliver them (JSON objects), market data from the Parquet files."""
    ev = []
    for name in ("decisions", "orders", "fills"):
        ev += [json.loads(x) for x in (folder / f"{name}_{DAY}.jsonl").read_text().splitlines() if x.strip()]
    for name, kind in (("quotes", "quote"), ("trades", "trade")):
        df = pl.read_parquet(folder / f"{name}_{DAY}.parquet").with_columns(
            pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        )
        ev += [{"event_type": "MarketDataEvent", "kind": kind, **r} for r in df.to_dicts()]
    return ev


@pytest.fixture(scope="module")
def sim_day(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    simulate(out, SimConfig(days=1, symbols=6, orders_per_day=25, fills_per_order=12, seed=11))
    lake = Lake(tmp_path_factory.mktemp("lake"))
    # No settlements: the live state prices fees at execution time (settlements arrive after the day).
    keep = out / "keep"
    keep.mkdir()
    for f in out.iterdir():
        if f.is_file() and not f.name.startswith(("settlements", "_", "ground")):
            shutil.copy(f, keep / f.name)
    ingest([keep], lake=lake)
    return out, lake


def test_live_equals_batch_at_end_of_day(sim_day):
    out, lake = sim_day
    con = lake.connect()
    batch = tca.compute(con, lake=lake).orders
    book = DayBook(DAY)
    # Deliver in a shuffled order: the live state must not depend on arrival order.
    ev = _events_of_files(out)
    ev = [ev[i] for i in pl.Series(range(len(ev))).shuffle(seed=3).to_list()]
    for t, df in typed_events(ev).items():
        book.add(t, df)
    live, _ = live_tca(*(book.frame(t) for t in ("orders", "fills", "quotes", "trades", "decisions")), None, True)
    assert live.height == batch.height == 25
    j = live.join(batch, on="order_id", suffix="_b")
    cols = ["arrival_price", "decision_price", "end_price", "avg_fill_price", "filled_qty", "order_qty",
            "is_delay_bps", "is_trading_bps", "is_opportunity_bps", "is_fees_bps", "is_total_bps",
            "arrival_cost_bps", "interval_vwap", "vwap_interval_cost_bps", "participation_rate",
            "markout_cost_bps_1s", "markout_cost_bps_60s"]  # fmt: skip
    for c in cols:
        a, b = j[c].to_numpy(), j[f"{c}_b"].to_numpy()
        both = ~(pl.Series(a).is_null() | pl.Series(b).is_null()).to_numpy()
        assert (pl.Series(a).is_null() == pl.Series(b).is_null()).all(), c
        assert abs(a[both] - b[both]).max() <= 1e-9 * max(1.0, abs(b[both]).max()), c
    # impact_cost_bps as impact_models defines it from the batch columns
    ic = j.select(pl.col("trading_impact_cost") / pl.col("filled_notional") * 1e4 - pl.col("impact_cost_bps"))
    assert ic.to_series().abs().max() < 1e-9


def _q(sym, t, bid, ask):
    return {"event_type": "MarketDataEvent", "kind": "quote", "symbol": sym, "ts": t, "bid": bid, "ask": ask,
            "bid_size": 100, "ask_size": 100}  # fmt: skip


def test_working_order_by_hand():
    """One BUY order of 1000, two fills, market prints; figures by hand."""
    T = "2026-03-02T15:00:"
    ev = [
        _q("AAA", T + "00Z", 99.9, 100.1),  # mid 100.0
        {"event_type": "OrderEvent", "event_id": "o1", "order_id": "O1", "ts": T + "01Z", "action": "NEW",
         "symbol": "AAA", "side": "BUY", "quantity": 1000, "broker": "B1", "algo": "VWAP"},
        {"event_type": "MarketDataEvent", "kind": "trade", "symbol": "AAA", "ts": T + "01Z", "price": 99.0, "size": 50},
        {"event_type": "MarketDataEvent", "kind": "trade", "symbol": "AAA", "ts": T + "02Z", "price": 100.0, "size": 300},
        {"event_type": "TradeExecutedEvent", "event_id": "f1", "fill_id": "F1", "order_id": "O1", "ts": T + "03Z",
         "symbol": "AAA", "side": "BUY", "quantity": 100, "price": 100.1, "venue": "XNAS", "commission": 1.0},
        _q("AAA", T + "03.5Z", 100.0, 100.2),  # mid 100.1
        {"event_type": "MarketDataEvent", "kind": "trade", "symbol": "AAA", "ts": T + "04Z", "price": 100.2, "size": 700},
        {"event_type": "TradeExecutedEvent", "event_id": "f2", "fill_id": "F2", "order_id": "O1", "ts": T + "05Z",
         "symbol": "AAA", "side": "BUY", "quantity": 300, "price": 100.2, "venue": "ARCX"},
        _q("AAA", T + "10Z", 100.3, 100.5),  # mid 100.4
    ]  # fmt: skip
    book = DayBook(DAY)
    for t, df in typed_events(ev).items():
        book.add(t, df)
    clock = dt.datetime(2026, 3, 2, 15, 0, 10, tzinfo=dt.UTC)
    o, fm = live_tca(*(book.frame(t) for t in ("orders", "fills", "quotes", "trades", "decisions")), clock)
    r = o.row(0, named=True)
    assert r["working"] and r["arrival_price"] == pytest.approx(100.0)
    avg = (100 * 100.1 + 300 * 100.2) / 400  # 100.175
    assert r["avg_fill_price"] == pytest.approx(avg)
    assert r["arrival_cost_bps"] == pytest.approx((avg - 100) / 100 * 1e4)  # 17.5 bps
    # interval (01, 10]: prints at 02 (300 @ 100.0) and 04 (700 @ 100.2); the print at 01 is not after NEW
    vwap = (300 * 100.0 + 700 * 100.2) / 1000
    assert r["interval_vwap"] == pytest.approx(vwap)
    assert r["participation_rate"] == pytest.approx(400 / 1000)
    # IS so far: no decision -> Pd = P0; trading 100*0.1 + 300*0.2 = 70; opportunity 600 * (100.4 - 100) = 240; fees 1
    assert r["is_total_cost"] == pytest.approx(70 + 240 + 1)
    assert r["is_total_bps"] == pytest.approx(311 / (100 * 1000) * 1e4)
    # markouts: fill 1 at :03 -> mid at :04 = 100.1: (100.1 - 100.1)/100.1 = 0; fill 2 at :05 -> :06 mid 100.1
    m1 = (300 * (100.2 - 100.1) / 100.2 * 1e4) / 400
    assert r["markout_cost_bps_1s"] == pytest.approx(m1)
    assert r["markout_cost_bps_60s"] is None  # not elapsed on the event clock
    b = board(fm).filter(pl.col("dimension") == "venue").sort("key")
    assert b["key"].to_list() == ["ARCX", "XNAS"]
    assert b["arrival_cost_bps"].to_list() == pytest.approx([(100.2 - 100) / 100 * 1e4, (100.1 - 100) / 100 * 1e4])
    # A redelivered fill changes nothing.
    for t, df in typed_events(ev[4:5]).items():
        assert book.add(t, df) == 0
