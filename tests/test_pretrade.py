"""Pre-trade: market context from the bars before the date, participation from the desk's own orders, the
recommendation, by hand."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from analytics import impact_models as im
from analytics import pretrade
from analytics.ingest import ingest


def test_market_context_uses_only_bars_before_the_date(lake, files, ev):
    closes = [100.0, 102.0, 99.0, 101.0]
    bars = [
        ev.bar(ts=f"2026-03-0{2 + i}T00:00:00Z", close=c, volume=v)
        for i, (c, v) in enumerate(zip(closes, [1e6, 2e6, 3e6, 4e6], strict=True))
    ]
    ingest([files.jsonl("bars.jsonl", bars)], lake)
    ctx = pretrade.market_context(lake.connect(), "AAPL", dt.date(2026, 3, 5))  # bars of 2, 3 and 4 March
    assert ctx["adv"] == pytest.approx(2e6)  # (1 + 2 + 3) / 3 million
    r = [math.log(102 / 100), math.log(99 / 102)]
    mean = sum(r) / 2
    assert ctx["sigma_daily"] == pytest.approx(math.sqrt(sum((x - mean) ** 2 for x in r) / 1))
    assert ctx["last_close"] == 99.0 and ctx["bars"] == 3
    assert pretrade.market_context(lake.connect(), "AAPL", dt.date(2026, 3, 3)) is None  # one bar only


def _history():
    # VWAP at MEDIUM: participations 0.04..0.08 (median 0.06); TWAP: only 3 MEDIUM orders (too few) but 6 in all
    rows = [("VWAP", "MEDIUM", p) for p in (0.04, 0.05, 0.06, 0.07, 0.08)]
    rows += [("TWAP", "MEDIUM", p) for p in (0.01, 0.02, 0.03)] + [("TWAP", "LOW", p) for p in (0.10, 0.11, 0.12)]
    return pl.DataFrame(
        {
            "algo": [r[0] for r in rows],
            "urgency": [r[1] for r in rows],
            "participation_rate": [r[2] for r in rows],
            "filled_qty": [100.0] * len(rows),
            "symbol": ["AAPL"] * len(rows),
            "spread_at_arrival_bps": [4.0] * len(rows),
        }
    )


def test_estimate_prices_each_algo_at_the_desks_own_participation():
    ctx = {"symbol": "AAPL", "asof": dt.date(2026, 3, 5), "adv": 1e6, "sigma_daily": 0.02, "last_close": 50.0}
    est = pretrade.estimate(ctx, 50_000, "MEDIUM", ["VWAP", "TWAP", "POV"], _history(),
                            im.published("istar"), im.published("almgren"))  # fmt: skip
    pov = dict(zip(est["algo"], est["pov"], strict=True))
    assert pov["VWAP"] == pytest.approx(0.06)  # median of its 5 MEDIUM orders
    assert pov["TWAP"] == pytest.approx(0.065)  # 3 MEDIUM orders are too few: the algo's median over all 6
    assert pov["POV"] == pretrade.URGENCY_POV["MEDIUM"]  # no history at all
    assert est["size_pct_adv"][0] == pytest.approx(0.05) and est["notional"][0] == pytest.approx(2.5e6)
    assert est["spread_bps"][0] == pytest.approx(4.0)
    one = im.pretrade_estimate("istar", pl.DataFrame({"size_adv": [0.05], "sigma_daily": [0.02], "pov": [0.06]}))
    assert est.filter(pl.col("algo") == "VWAP")["istar_bps"].item() == pytest.approx(one["expected_cost_bps"][0])


def test_recommend_names_the_cheapest_and_the_saving():
    est = pl.DataFrame({"algo": ["A", "B", "C"], "almgren_bps": [9.0, 7.5, 12.0],
                        "almgren_lo_bps": [0.0, -2.5, 1.0], "almgren_hi_bps": [18.0, 17.5, 23.0]})  # fmt: skip
    r = pretrade.recommend(est)
    assert (r["algo"], r["runner_up"], r["model"]) == ("B", "A", "almgren")
    assert r["saving_bps"] == pytest.approx(1.5) and r["band_half_width_bps"] == pytest.approx(10.0)
