"""Point-in-time features: each one by hand on a tiny tape, and a look-ahead property test."""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import features
from analytics.store import table_schema

UTC = dt.UTC
DAY = dt.date(2026, 3, 2)  # EST (UTC-5): 09:30 New York = 14:30 UTC
T = dt.datetime(2026, 3, 2, 14, 36, tzinfo=UTC)  # the probe: 09:36 New York


def ts(h: int, m: int, s: float = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, h, m, tzinfo=UTC) + dt.timedelta(seconds=s)


def frame(table: str, rows: list[dict]) -> pl.DataFrame:
    schema = {c: d for c, d in table_schema(table).items() if c not in ("extra", "_batch", "_hash")}
    return pl.DataFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema)


def quote(t, bid, ask, bs=100.0, as_=100.0, sym="AAA"):
    return {"symbol": sym, "ts": t, "bid": bid, "ask": ask, "bid_size": bs, "ask_size": as_}


def trade(t, price, size, sym="AAA"):
    return {"symbol": sym, "ts": t, "price": price, "size": size}


def bar(day, close, volume, sym="AAA"):
    t = dt.datetime.combine(day, dt.time(), UTC)
    return {"symbol": sym, "ts": t, "interval": "1d", "open": close, "high": close, "low": close, "close": close,
            "volume": volume}  # fmt: skip


QUOTES = [
    quote(ts(14, 30), 99.95, 100.05),  # mid 100.00
    quote(ts(14, 31), 100.05, 100.15),  # mid 100.10
    quote(ts(14, 34), 99.95, 100.05),  # mid 100.00
    quote(ts(14, 35, 30), 100.00, 100.10, 300, 100),  # mid 100.05: the last quote before T
    quote(T, 150.0, 250.0, 9e9, 1.0),  # at T: must be ignored
    quote(ts(14, 40), 1.0, 2.0),  # after T
]
TRADES = [
    trade(ts(14, 31, day=dt.date(2026, 2, 27)), 100.0, 600),  # previous day, bucket 0 (09:30-09:35)
    trade(ts(14, 37, day=dt.date(2026, 2, 27)), 100.0, 999),  # previous day, bucket 1: outside the span
    trade(ts(14, 32), 100.0, 100),
    trade(ts(14, 33), 100.0, 200),
    trade(ts(14, 35, 59), 100.0, 300),
    trade(T, 100.0, 1000),  # at T: ignored
]
BARS = [
    bar(dt.date(2026, 2, 25), 100.0, 1e6),
    bar(dt.date(2026, 2, 26), 102.0, 2e6),
    bar(dt.date(2026, 2, 27), 99.96, 3e6),
    bar(DAY, 500.0, 9e9),  # the probe's own day: ignored
]


def probe(pid=1, anchor="order", t=T, **over) -> dict:
    row = {"probe_id": pid, "anchor": anchor, "symbol": "AAA", "ts": t, "quantity": 20_000.0, "side_sign": 1,
           "urgency": "HIGH", "strategy": "momentum", "alpha_bps": 25.0, "horizon_days": 20.0,
           "planned_duration_s": 1800.0, "decision_ts": t - dt.timedelta(seconds=60)}  # fmt: skip
    return row | over


def compute(quotes, trades, bars, probes) -> pl.DataFrame:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name, rows in (("quotes", quotes), ("trades", trades), ("bars", bars)):
        con.register(f"_{name}", frame(name, rows).to_arrow())
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM _{name}")
    out = features.compute(con, pl.DataFrame(probes, schema=features.PROBE_SCHEMA))
    con.close()
    return out


@pytest.fixture(scope="module")
def tiny() -> dict:
    out = compute(QUOTES, TRADES, BARS, [probe(1), probe(2, "decision", planned_duration_s=None)])
    return {a: out.filter(pl.col("anchor") == a).row(0, named=True) for a in ("order", "decision")}


def test_touch_features(tiny):
    f = tiny["order"]
    # last quote before T: bid 100.00, ask 100.10, sizes 300/100 (the quote AT T is not used)
    assert f["spread_bps"] == pytest.approx(0.10 / 100.05 * 1e4)  # 9.995 bps
    assert f["depth_touch"] == 400
    assert f["quote_imbalance"] == pytest.approx((300 - 100) / 400)
    assert f["quote_age_s"] == pytest.approx(30.0)
    assert f["quote_ts"] < T


def test_realized_volatility_and_returns(tiny):
    f = tiny["order"]
    lr2, lr3, lr4 = math.log(100.10 / 100.00), math.log(100.00 / 100.10), math.log(100.05 / 100.00)
    # [T-60s, T) holds only the 14:35:30 quote
    assert f["rv_bps_60s"] == pytest.approx(abs(lr4) * 1e4)
    # [T-300s, T) = [14:31, 14:36) holds the 14:31, 14:34 and 14:35:30 quotes
    assert f["rv_bps_300s"] == pytest.approx(math.sqrt(lr2**2 + lr3**2 + lr4**2) * 1e4)
    # 30 min back is before the day's first quote: the part of the window inside the day
    assert f["rv_bps_1800s"] == pytest.approx(math.sqrt(lr2**2 + lr3**2 + lr4**2) * 1e4)
    assert f["ret_bps_60s"] == pytest.approx(lr4 * 1e4)  # 100.00 (before 14:35) -> 100.05
    assert f["ret_bps_300s"] == pytest.approx(lr4 * 1e4)  # 100.00 (14:30, before 14:31) -> 100.05
    assert f["ret_bps_1800s"] is None


def test_trade_features(tiny):
    f = tiny["order"]
    # [14:31, 14:36): 100 + 200 + 300 shares in 3 prints over 5 minutes (the print AT T is not counted)
    assert f["volume_recent"] == 600
    assert f["trade_rate_per_min"] == pytest.approx(3 / 5)
    assert f["trade_ts"] == ts(14, 35, 59)
    # T is 09:36 NY, bucket 1; span = bucket 0 (09:30-09:35): today 100 + 200, the previous day 600
    assert f["volume_vs_profile"] == pytest.approx(300 / 600)


def test_bar_and_order_features(tiny):
    f = tiny["order"]
    r1, r2 = math.log(102 / 100), math.log(99.96 / 102)
    assert f["adv"] == pytest.approx(2e6)  # mean of 1e6, 2e6, 3e6 (the day's own bar is not used)
    assert f["daily_volatility"] == pytest.approx(abs(r1 - r2) / math.sqrt(2))  # stdev of two returns
    assert f["bar_day"] == dt.date(2026, 2, 27)
    assert f["size_pct_adv"] == pytest.approx(20_000 / 2e6)
    # 20,000 / (2e6 x 30 min / 390 min)
    assert f["expected_participation"] == pytest.approx(20_000 / (2e6 * 30 / 390))
    assert f["planned_duration_s"] == 1800
    assert f["minutes_since_open"] == pytest.approx(6.0)
    assert f["delay_s"] == pytest.approx(60.0)
    assert (f["side_sign"], f["urgency"], f["strategy"]) == (1, "HIGH", "momentum")
    assert (f["alpha_bps"], f["horizon_days"]) == (25.0, 20.0)


def test_decision_anchor_has_market_features_but_no_order_ones(tiny):
    d = tiny["decision"]
    assert d["spread_bps"] == pytest.approx(tiny["order"]["spread_bps"])
    assert d["expected_participation"] is None and d["delay_s"] is None and d["planned_duration_s"] is None


def test_empty_tape_gives_nulls_not_errors():
    out = compute([], [], [], [probe(1)]).row(0, named=True)
    assert out["spread_bps"] is None and out["adv"] is None and out["volume_recent"] == 0


def test_registry_describes_every_feature_and_takes_new_ones():
    for f in features.REGISTRY.values():
        assert f.definition and f.unit and f.window and f.source
    assert {"spread_bps", "quote_imbalance", "rv_bps_60s", "rv_bps_1800s", "volume_vs_profile", "size_pct_adv",
            "expected_participation", "urgency", "strategy", "alpha_bps"} <= set(features.REGISTRY)  # fmt: skip

    features.feature("mid_price_test", "mid of the last quote", "last quote", "price", "quotes")(
        lambda: "(bid + ask) / 2"
    )
    try:
        out = compute(QUOTES, TRADES, BARS, [probe(1)])
        assert out["mid_price_test"][0] == pytest.approx(100.05)
    finally:
        del features.REGISTRY["mid_price_test"]


# --- look-ahead: perturb every tick at or after t; nothing may move ------------------------------------
offsets = st.lists(st.integers(min_value=0, max_value=7200), min_size=1, max_size=25)


@st.composite
def tapes(draw):
    q_off, t_off = sorted(draw(offsets)), sorted(draw(offsets))
    base = ts(14, 30)
    prices = st.floats(min_value=10, max_value=20, allow_nan=False)
    quotes = []
    for o in q_off:
        bid = draw(prices)
        quotes.append(quote(base + dt.timedelta(seconds=o), bid, bid + draw(st.floats(0.01, 0.5)),
                            draw(st.integers(1, 900)), draw(st.integers(1, 900))))  # fmt: skip
    trades = [trade(base + dt.timedelta(seconds=o), draw(prices), float(draw(st.integers(1, 900)))) for o in t_off]
    trades += [trade(ts(14, 30, o, day=dt.date(2026, 2, 27)), 15.0, 100.0) for o in (60, 400, 900)]
    t = base + dt.timedelta(seconds=draw(st.integers(0, 7200)), microseconds=draw(st.sampled_from([0, 1, 500_000])))
    return quotes, trades, t, draw(st.integers(0, 2**31))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tapes())
def test_no_look_ahead(tape):
    quotes, trades, t, seed = tape
    import random

    rnd = random.Random(seed)
    probes = [probe(1, t=t), probe(2, "decision", t=t)]
    before = compute(quotes, trades, BARS, probes)

    def scramble_q(q):
        bid = rnd.uniform(1, 1000)
        return q | {"bid": bid, "ask": bid + rnd.uniform(0.01, 5), "bid_size": rnd.uniform(1, 1e6), "ask_size": 3.0}

    # Every tick at/after t changes, some vanish, new ones appear at t exactly and later; the day's bar too.
    q2 = [scramble_q(q) if q["ts"] >= t else q for q in quotes if q["ts"] < t or rnd.random() < 0.7]
    q2 += [quote(t, 1.0, 900.0, 5, 5), quote(t + dt.timedelta(seconds=1), 2.0, 3.0)]
    t2 = [tr | {"price": rnd.uniform(1, 1000), "size": rnd.uniform(1, 1e6)} if tr["ts"] >= t else tr for tr in trades]
    t2 += [trade(t, 1.0, 1e7), trade(t + dt.timedelta(minutes=3), 2.0, 5e6)]
    bars2 = [b if b["ts"].date() < t.date() else b | {"close": 1.0, "volume": 1.0} for b in BARS]
    bars2 += [bar(t.date() + dt.timedelta(days=1), 3.0, 7.0)]
    after = compute(sorted(q2, key=lambda r: r["ts"]), sorted(t2, key=lambda r: r["ts"]), bars2, probes)
    assert after.equals(before), "a feature changed when only data at/after t changed"
    assert (before["quote_ts"].drop_nulls() < t).all() and (before["trade_ts"].drop_nulls() < t).all()
