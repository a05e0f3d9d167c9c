"""Pre-trade: market context from the bars before the date, participation from the desk's own orders, the
recommendation, by hand."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
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
    # VWAP at MEDIUM: participations 0.04..0.08 (median 0.06); TWAP: only 3 MEDIUM orders (too few) but 6 in all;
    # all on 4 March. On the as-of day (5 March) five more VWAP MEDIUM orders at 0.9 and five POV MEDIUM: not known
    # before the day, so they must not count (with them VWAP's median would be (0.08 + 0.9) / 2 = 0.49).
    rows = [("VWAP", "MEDIUM", p, 4) for p in (0.04, 0.05, 0.06, 0.07, 0.08)]
    rows += [("TWAP", "MEDIUM", p, 4) for p in (0.01, 0.02, 0.03)] + [("TWAP", "LOW", p, 4) for p in (0.10, 0.11, 0.12)]
    rows += [("VWAP", "MEDIUM", 0.9, 5)] * 5 + [("POV", "MEDIUM", 0.5, 5)] * 5
    return pl.DataFrame(
        {
            "algo": [r[0] for r in rows],
            "urgency": [r[1] for r in rows],
            "arrival_ts": [dt.datetime(2026, 3, r[3], 15, tzinfo=dt.UTC) for r in rows],
            "scheduled_participation": [r[2] for r in rows],
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
    assert pov["POV"] == pretrade.URGENCY_POV["MEDIUM"]  # no history before the day
    assert est["size_pct_adv"][0] == pytest.approx(0.05) and est["notional"][0] == pytest.approx(2.5e6)
    assert est["spread_bps"][0] == pytest.approx(4.0)
    one = im.pretrade_estimate("istar", pl.DataFrame({"size_adv": [0.05], "sigma_daily": [0.02], "pov": [0.06]}))
    assert est.filter(pl.col("algo") == "VWAP")["istar_bps"].item() == pytest.approx(one["expected_cost_bps"][0])


def _almgren_with_draws(mults: list[float], point: float = 0.8) -> im.ImpactFit:
    """An Almgren fit whose bootstrap draws differ only in POV's temporary-impact multiplier (VWAP = 1)."""
    base = {"gamma": 0.3, "alpha": 0.5, "eta": 0.15, "beta": 0.5}
    draws = tuple((*base.values(), m) for m in mults)
    return im.ImpactFit("almgren", {**base, "mult_POV": point}, {}, 500, 0.0, draws=draws, algos=("VWAP", "POV"))


def _two_algos(fit: im.ImpactFit) -> pl.DataFrame:
    ctx = {"symbol": "AAPL", "asof": dt.date(2026, 3, 5), "adv": 1e6, "sigma_daily": 0.02, "last_close": 50.0}
    hist = _history().filter(pl.col("algo") == "VWAP")  # VWAP's MEDIUM median 0.06; POV: its algo default 0.08
    hist = pl.concat([hist, hist.with_columns(pl.lit("POV").alias("algo"))])  # the same history: both at 0.06
    return pretrade.estimate(ctx, 50_000, "MEDIUM", ["VWAP", "POV"], hist, im.published("istar"), fit)


def _hand_saving(mults: list[float]) -> np.ndarray:
    """VWAP minus POV under each draw, by hand: the permanent part is the same for both algos (same size) and
    cancels; temporary = eta sigma_bps (pov / (1 - pov))^beta m, at pov 0.06, sigma 200 bps."""
    temp = 0.15 * 200 * (0.06 / 0.94) ** 0.5
    return temp * (1 - np.asarray(mults))


def test_recommend_only_when_the_saving_is_distinguishable_from_zero():
    """Issue 16: a recommendation needs the expected saving's 95% interval over the fit's draws to exclude zero.
    Draws of POV's multiplier all below 1: POV recommended, the interval by hand; draws straddling 1 (the point
    estimate still says POV is cheaper): the two algos are equivalent; published parameters: no uncertainty, no
    recommendation."""
    sure = [0.7 + 0.2 * k / 99 for k in range(100)]
    r = pretrade.recommend(_two_algos(_almgren_with_draws(sure)), _almgren_with_draws(sure))
    hand = _hand_saving(sure)
    assert (r["algo"], r["runner_up"], r["recommended"], r["equivalent"]) == ("POV", "VWAP", True, ["POV"])
    assert r["saving_bps"] == pytest.approx(_hand_saving([0.8])[0])
    assert (r["saving_lo_bps"], r["saving_hi_bps"]) == pytest.approx(tuple(np.quantile(hand, [0.025, 0.975])))
    unsure = [0.6 + 0.8 * k / 99 for k in range(100)]
    fit = _almgren_with_draws(unsure)
    r = pretrade.recommend(_two_algos(fit), fit)
    assert r["algo"] == "POV" and not r["recommended"] and sorted(r["equivalent"]) == ["POV", "VWAP"]
    assert r["saving_lo_bps"] == pytest.approx(np.quantile(_hand_saving(unsure), 0.025)) and r["saving_lo_bps"] < 0
    pub = pretrade.recommend(_two_algos(im.published("almgren")), im.published("almgren"))
    assert not pub["recommended"] and sorted(pub["equivalent"]) == ["POV", "VWAP"] and "published" in pub["basis"]
    assert pub["saving_lo_bps"] is None and pub["saving_hi_bps"] is None  # no draws: no interval, and no NaN shown


def test_istar_has_an_outcome_band_like_almgren():
    """The published I-Star's band: its residual quantiles (+-1.645 x 0.3 daily sigmas) x 200 bps around the
    estimate."""
    est = _two_algos(im.published("almgren"))
    half = 1.645 * 0.3 * 200
    assert (est["istar_hi_bps"] - est["istar_bps"]).to_list() == pytest.approx([half, half])
    assert (est["istar_bps"] - est["istar_lo_bps"]).to_list() == pytest.approx([half, half])


def test_size_above_the_stated_share_of_adv_is_flagged():
    """5,000,000 shares on an ADV of 1,319,261 (379% ADV, the issue's case) is flagged; 20% ADV is not."""
    w = pretrade.size_warning(5_000_000 / 1_319_261)
    assert w is not None and "379% of ADV" in w and "25%" in w
    assert pretrade.size_warning(0.20) is None and pretrade.size_warning(0.25) is None


def test_models_disagreement_is_listed():
    """Almgren 609 [511, 707] vs I-Star 300 [250, 350] for VWAP: each outside the other's band; TWAP: 100 [60, 140]
    vs 120 [90, 150]: they agree."""
    est = pl.DataFrame({"algo": ["VWAP", "TWAP"], "istar_bps": [300.0, 100.0], "istar_lo_bps": [250.0, 60.0],
                        "istar_hi_bps": [350.0, 140.0], "almgren_bps": [609.0, 120.0],
                        "almgren_lo_bps": [511.0, 90.0], "almgren_hi_bps": [707.0, 150.0]})  # fmt: skip
    d = pretrade.disagreements(est)
    assert d.rows() == [("VWAP", "I-Star", 300.0, "Almgren", 609.0, pytest.approx(2.03))]
    assert pretrade.disagreements(est.filter(pl.col("algo") == "TWAP")).is_empty()


def _trades_con(rows: list[tuple[str, float]]):
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE trades (ts TIMESTAMPTZ, size DOUBLE)")
    con.executemany("INSERT INTO trades VALUES (?::TIMESTAMPTZ, ?)", rows)
    return con


def test_volume_profile_by_hand_point_in_time_and_in_new_york_time():
    # February: New York is UTC-5. Day 1 (Feb 2): 100 sh at 09:35, 300 at 15:45 -> slot 0: 0.25, slot 12: 0.75.
    # Day 2 (Feb 3): 200 at 09:40, 200 in the 16:00 cross -> slot 0: 0.5, slot 13: 0.5. Averages over the 2 days:
    # slot 0 (0.25 + 0.5) / 2 = 0.375, slot 12 0.75 / 2 = 0.375, slot 13 0.5 / 2 = 0.25.
    # Left out: a pre-market print (09:29), and the whole of Feb 4 (the as-of day: not before it).
    con = _trades_con([
        ("2026-02-02 14:35:00+00", 100.0), ("2026-02-02 20:45:00+00", 300.0), ("2026-02-02 14:29:00+00", 999.0),
        ("2026-02-03 14:40:00+00", 200.0), ("2026-02-03 21:00:00+00", 200.0),
        ("2026-02-04 14:40:00+00", 5000.0),
    ])  # fmt: skip
    p = pretrade.volume_profile(con, dt.date(2026, 2, 4), days=5)
    assert p["slot"].to_list() == [0, 12, 13]
    assert p["start"].to_list() == ["09:30", "15:30", "16:00"]
    assert p["share"].to_list() == pytest.approx([0.375, 0.375, 0.25])
    # only the latest day before the as-of date
    assert pretrade.volume_profile(con, dt.date(2026, 2, 4), days=1)["share"].to_list() == pytest.approx([0.5, 0.5])


def test_start_times_trade_impact_against_risk_by_hand():
    # Volume shares: 09:30 slot 0.5, 15:30 slot 0.3, closing cross 0.2. Start 09:30: R = 1.0 of the day's volume
    # left and 1 day exposed; start 15:30: R = 0.5 and 30/390 of a day. Order: 5% of ADV, daily sigma 2%.
    profile = pl.DataFrame({"slot": [0, 12, 13], "start": ["09:30", "15:30", "16:00"], "share": [0.5, 0.3, 0.2]})
    fit = im.published("istar")
    s = pretrade.start_times(profile, 0.05, 0.02, fit, risk_aversion=0.5)
    assert s["start"].to_list() == ["09:30", "15:30"]  # no start at the close itself
    pov = [0.05 / (0.05 + 1.0), 0.05 / (0.05 + 0.5)]
    assert s["pov"].to_list() == pytest.approx(pov)
    risk = [200 * math.sqrt(1.0 / 3), 200 * math.sqrt((30 / 390) / 3)]  # sigma 200 bps x sqrt(T / 3)
    assert s["timing_risk_bps"].to_list() == pytest.approx(risk)
    cost = [float(im.market_impact_bps(fit, 0.05, 0.02, p)) for p in pov]
    assert cost[1] > cost[0]  # less volume left: more impact
    assert s["expected_cost_bps"].to_list() == pytest.approx(cost)
    obj = [c + 0.5 * r for c, r in zip(cost, risk, strict=True)]
    assert s["objective_bps"].to_list() == pytest.approx(obj)
    assert s["recommended"].to_list() == [obj[0] < obj[1], obj[1] <= obj[0]]
    # risk-neutral: the cheapest start is the earliest (most volume left); very risk-averse: the latest
    assert pretrade.start_times(profile, 0.05, 0.02, fit, 0.0)["recommended"].to_list() == [True, False]
    assert pretrade.start_times(profile, 0.05, 0.02, fit, 100.0)["recommended"].to_list() == [False, True]


def test_model_estimates_prices_the_order_with_every_champion():
    # no champion: the published parameters; I-Star at 5% ADV, 2%/day, 10% POV is the hand value of
    # test_impact_models (pretrade_estimate), and no learned row without a learned model
    champs = {
        "istar": (im.published("istar"), None),
        "almgren": (im.published("almgren"), "3"),
        "learned": (None, None),
    }
    est = pretrade.model_estimates(champs, 0.05, 0.02, 0.10, "VWAP", 5.0, dt.datetime(2026, 3, 5, 15, tzinfo=dt.UTC))
    assert est["model"].to_list() == ["istar", "almgren"] and est["version"].to_list() == ["published", "3"]
    ref = im.pretrade_estimate("istar", pl.DataFrame({"size_adv": [0.05], "sigma_daily": [0.02], "pov": [0.10]}))
    assert est["expected_cost_bps"][0] == pytest.approx(ref["expected_cost_bps"][0])
    assert (est["lo_bps"] <= est["expected_cost_bps"]).all() and (est["expected_cost_bps"] <= est["hi_bps"]).all()


def test_model_disagreements_of_one_order_priced_by_each_model():
    est = pl.DataFrame({"model": ["istar", "almgren"], "expected_cost_bps": [300.0, 609.0], "lo_bps": [250.0, 511.0],
                        "hi_bps": [350.0, 707.0]})  # fmt: skip
    assert pretrade.model_disagreements(est, "VWAP").rows() == [("VWAP", "I-Star", 300.0, "Almgren", 609.0,
                                                                pytest.approx(609 / 300))]  # fmt: skip
    close = est.with_columns(pl.Series("expected_cost_bps", [300.0, 320.0]), pl.Series("lo_bps", [250.0, 270.0]))
    assert pretrade.model_disagreements(close, "VWAP").is_empty()
    # inside each other's (wide) bands, but 2.5x apart and 60 bps: a disagreement; 2 vs 5 bps: too small to matter
    wide = pl.DataFrame({"model": ["istar", "almgren"], "expected_cost_bps": [40.0, 100.0], "lo_bps": [-60.0, 0.0],
                         "hi_bps": [140.0, 200.0]})  # fmt: skip
    assert pretrade.model_disagreements(wide, "VWAP")["ratio"].to_list() == [pytest.approx(2.5)]
    small = wide.with_columns(pl.Series("expected_cost_bps", [2.0, 5.0]))
    assert pretrade.model_disagreements(small, "VWAP").is_empty()
