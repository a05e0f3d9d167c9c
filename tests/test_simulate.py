"""Tests of the desk simulator (analytics.simulate).

The planted effects are measured here independently, with plain polars on the written files,
the way an analyst would (ASOF joins against the NBBO), not by reading the simulator's state.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics.simulate import ImpactParams, SimConfig, simulate
from analytics.simulate.calendar import next_trading_day, session_open_us, trading_days
from analytics.simulate.market import impact_bps_grid

MAIN = SimConfig(days=2, symbols=24, orders_per_day=1500, fills_per_order=10, seed=3)
SMALL = SimConfig(days=2, symbols=8, orders_per_day=120, fills_per_order=6, seed=5, faults=0.03)
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
TS = pa.timestamp("us", tz="UTC")
S, F, I64, D = pa.string(), pa.float64(), pa.int64(), pa.date32()
# the EVENTS.md contract, written out independently of analytics.simulate.writer
PARQUET_SCHEMAS = {
    "securities": {"symbol": S, "name": S, "asset_class": S, "sector": S, "industry": S, "country": S,
                   "currency": S, "shares_outstanding": I64, "region": S, "exchange": S},
    "portfolios": {"portfolio_id": S, "name": S, "strategy": S, "benchmark_id": S, "base_currency": S},
    "holdings": {"date": D, "portfolio_id": S, "symbol": S, "weight": F, "quantity": I64, "market_value": F,
                 "currency": S},
    "benchmark_weights": {"date": D, "benchmark_id": S, "symbol": S, "weight": F},
    "returns": {"date": D, "symbol": S, "return": F},
    "factor_exposures": {"date": D, "symbol": S, "factor": S, "exposure": F},
    "factor_returns": {"date": D, "factor": S, "return": F},
    "bars": {"symbol": S, "ts": TS, "interval": S, "open": F, "high": F, "low": F, "close": F, "volume": I64,
             "vwap": F},
    "quotes": {"symbol": S, "ts": TS, "bid": F, "ask": F, "bid_size": I64, "ask_size": I64},
    "trades": {"symbol": S, "ts": TS, "price": F, "size": I64, "venue": S, "condition": S},
    "decisions": {"event_id": S, "decision_id": S, "ts": TS, "portfolio_id": S, "strategy": S, "symbol": S,
                  "side": S, "quantity": I64, "decision_price": F, "urgency": S, "alpha_bps": F,
                  "horizon_days": I64, "model_id": S},
    "orders": {"event_id": S, "order_id": S, "ts": TS, "action": S, "symbol": S, "side": S, "quantity": I64,
               "broker": S, "algo": S, "decision_id": S, "limit_price": F, "trader": S, "desk": S, "urgency": S,
               "algo_params": S},
    "fills": {"event_id": S, "fill_id": S, "order_id": S, "ts": TS, "received_ts": TS, "symbol": S, "side": S, "quantity": I64,
              "price": F, "venue": S, "liquidity": S, "child_order_id": S, "commission": F, "fees": F,
              "currency": S},
    "settlements": {"event_id": S, "fill_id": S, "ts": TS, "settle_date": D, "commission": F, "fees": F,
                    "taxes": F, "currency": S, "fx_rate": F},
}  # fmt: skip
REQUIRED_JSON = {
    "decisions": ("TradingDecisionEvent", {"event_id", "decision_id", "ts", "portfolio_id", "strategy", "symbol",
                                           "side", "quantity"}),
    "orders": ("OrderEvent", {"event_id", "order_id", "ts", "action"}),
    "fills": ("TradeExecutedEvent", {"event_id", "fill_id", "order_id", "ts", "symbol", "side", "quantity",
                                     "price", "venue", "liquidity", "child_order_id", "commission", "fees",
                                     "currency"}),
    "settlements": ("TradeSettledEvent", {"event_id", "fill_id", "ts", "settle_date", "commission", "fees",
                                          "taxes", "currency", "fx_rate"}),
}  # fmt: skip


@pytest.fixture(scope="module")
def main_run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("main")
    return out, simulate(out, MAIN)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("small")
    return out, simulate(out, SMALL)


@pytest.fixture(scope="module")
def parquet_run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("pq")
    cfg = SimConfig(days=1, symbols=6, orders_per_day=80, fills_per_order=5, seed=9, faults=0.05,
                    events_format="parquet")  # fmt: skip
    return out, simulate(out, cfg)


def _events(out: Path, table: str) -> pl.DataFrame:
    files = sorted(out.glob(f"{table}_*.jsonl"))
    if files:
        df = pl.concat([pl.read_ndjson(f, infer_schema_length=None) for f in files], how="diagonal_relaxed")
        return df.with_columns(
            pl.col(c).str.to_datetime(time_zone="UTC", time_unit="us") for c in ("ts", "received_ts") if c in df.columns
        )
    return pl.concat([pl.read_parquet(f) for f in sorted(out.glob(f"{table}_*.parquet"))])


def _market(out: Path, table: str) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(f) for f in sorted(out.glob(f"{table}_*.parquet"))])


def _quotes(out: Path) -> pl.DataFrame:
    return _market(out, "quotes").with_columns(mid=(pl.col("bid") + pl.col("ask")) / 2).sort("ts")


def _asof(probe: pl.DataFrame, quotes: pl.DataFrame, on: str) -> pl.DataFrame:
    """Prevailing NBBO at ``probe[on]`` per symbol (both sides sorted by time: see TOOLCHAIN.md)."""
    right = quotes.select("symbol", pl.col("ts").alias(on), "mid", "bid", "ask")
    return probe.sort(on).join_asof(right, on=on, by="symbol", strategy="backward", check_sortedness=False)


def _sign() -> pl.Expr:
    return pl.when(pl.col("side") == "BUY").then(1).otherwise(-1)


def _ny_minute() -> pl.Expr:
    ny = pl.col("ts").dt.convert_time_zone("America/New_York")
    return ny.dt.hour().cast(pl.Int32) * 60 + ny.dt.minute().cast(pl.Int32) - 570


def _hashes(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


# ---------------------------------------------------------------- calendar and impact law


def test_calendar_weekdays_and_dst():
    assert trading_days(date(2026, 3, 6), 2) == [date(2026, 3, 6), date(2026, 3, 9)]
    assert next_trading_day(date(2026, 3, 6)) == date(2026, 3, 9)
    est = datetime(2026, 3, 6, 14, 30, tzinfo=UTC)  # EST: 09:30 = 14:30Z
    edt = datetime(2026, 3, 9, 13, 30, tzinfo=UTC)  # after the 2026-03-08 switch
    assert session_open_us(date(2026, 3, 6)) == int(est.timestamp()) * 1_000_000
    assert session_open_us(date(2026, 3, 9)) == int(edt.timestamp()) * 1_000_000


def test_impact_grid_matches_the_law_by_hand():
    p = ImpactParams(tau_s=100)
    one = np.array([0])
    f = impact_bps_grid(
        1, np.array([2.0]), one, np.array([1]), np.array([1000]), np.array([2000]), np.array([10.0]),
        np.array([6.0]), one[:0], one[:0], one[:0], p,
    )[0]  # fmt: skip
    # computed by hand: carry 2 bps; temp 6 bps from second 1001 (the second after the first
    # fill); perm accrues 10 bps linearly, 10/999 per second over seconds 1002..2000
    assert f[1000] == pytest.approx(2.0)
    assert f[1001] == pytest.approx(2.0 + 6.0)
    assert f[1500] == pytest.approx(2.0 + 6.0 + 10.0 * 499 / 999)
    assert f[2000] == pytest.approx(2.0 + 6.0 + 10.0)
    assert f[2050] == pytest.approx(2.0 + 3.0 + 10.0)  # half-way through the linear decay
    assert f[2100] == pytest.approx(12.0) and f[-1] == pytest.approx(12.0)
    sell_drkb = impact_bps_grid(
        1, np.zeros(1), one[:0], one[:0], one[:0], one[:0], np.zeros(0), np.zeros(0), one, np.array([-1]),
        np.array([500]), ImpactParams(),
    )[0]  # fmt: skip
    assert sell_drkb[503] == pytest.approx(4.0)  # after a sell at DRKB the mid rises (against the desk)
    assert sell_drkb[500 + 90 + 60 + 1] == pytest.approx(0.0, abs=1e-9)


# ---------------------------------------------------------------- reproducibility and schemas


def test_same_seed_same_bytes_other_seed_differs(small_run, tmp_path):
    out, _ = small_run
    again = simulate(tmp_path / "again", SMALL)
    assert _hashes(tmp_path / "again") == _hashes(out)
    assert again["expected"] == small_run[1]["expected"]
    simulate(tmp_path / "other", SimConfig(**{**SMALL.__dict__, "seed": 6}))
    other = _hashes(tmp_path / "other")
    assert other.keys() == _hashes(out).keys()
    seeded = [k for k in other if k.endswith((".parquet", ".jsonl")) and k != "portfolios.parquet"]
    assert all(other[k] != _hashes(out)[k] for k in seeded)


def test_parquet_schemas_match_contract(main_run, parquet_run):
    for out, _ in (main_run, parquet_run):
        for path in sorted(out.glob("*.parquet")):
            table = path.stem if path.stem in PARQUET_SCHEMAS else path.stem.split("_")[0]
            schema = pq.read_schema(path)
            got = {f.name: f.type for f in schema}
            assert got == PARQUET_SCHEMAS[table], path.name


def test_json_lines_follow_contract(main_run):
    out, summary = main_run
    for table, (event_type, required) in REQUIRED_JSON.items():
        files = sorted(out.glob(f"{table}_*.jsonl"))
        assert len(files) == MAIN.days
        for path in files:
            for line in path.read_text().splitlines():
                row = json.loads(line)
                assert row["event_type"] == event_type
                assert required <= row.keys(), (path.name, required - row.keys())
                assert ISO.match(row["ts"]), row["ts"]
                assert None not in row.values()  # optional fields are absent, not null
                if table == "orders" and row["action"] in ("NEW", "REPLACE"):
                    assert {"symbol", "side", "quantity", "broker", "algo"} <= row.keys()
                    assert isinstance(row["algo_params"], dict)
    assert summary["rows"]["fills"] == sum(1 for p in out.glob("fills_*.jsonl") for _ in p.open())


# ---------------------------------------------------------------- clean data is valid


def test_market_data_clean_and_sorted(main_run):
    out, _ = main_run
    for path in sorted(out.glob("quotes_*.parquet")) + sorted(out.glob("trades_*.parquet")):
        df = pl.read_parquet(path)
        assert df.equals(df.sort(["symbol", "ts"], maintain_order=True)), path.name
        day = date.fromisoformat(path.stem.split("_")[1])
        open_us = session_open_us(day)
        ts = df["ts"].dt.epoch("us")
        assert ts.min() >= open_us and ts.max() <= open_us + 23_400 * 1_000_000
        if path.name.startswith("quotes"):
            assert (df["bid"] < df["ask"]).all() and (df["bid"] > 0).all()
            assert ((df["bid_size"] % 100 == 0) & (df["bid_size"] > 0) & (df["ask_size"] > 0)).all()
            cents = (df["bid"] * 100).round(6)
            assert (cents == cents.round(0)).all()
            assert df.group_by("symbol").agg(pl.col("ts").min())["ts"].dt.epoch("us").eq(open_us).all()
        else:
            assert (df["price"] > 0).all() and (df["size"] > 0).all()


def test_orders_and_fills_consistent(main_run):
    out, _ = main_run
    orders, fills, decisions = _events(out, "orders"), _events(out, "fills"), _events(out, "decisions")
    new = orders.filter(pl.col("action") == "NEW")
    end = orders.filter(pl.col("action").is_in(["DONE", "CANCEL"]))
    assert new["order_id"].is_unique().all() and fills["fill_id"].is_unique().all()
    assert orders["event_id"].is_unique().all() and decisions["decision_id"].is_unique().all()
    assert set(fills["order_id"]) <= set(new["order_id"])
    assert set(new["decision_id"]) == set(decisions["decision_id"])
    assert sorted(end["order_id"]) == sorted(new["order_id"])
    filled = fills.group_by("order_id").agg(filled=pl.col("quantity").sum(), first=pl.col("ts").min(),
                                            last=pl.col("ts").max())  # fmt: skip
    o = (
        new.select("order_id", "quantity", "ts", "decision_id")
        .join(end.select("order_id", "action", pl.col("ts").alias("end_ts")), on="order_id")
        .join(filled, on="order_id")
        .join(decisions.select("decision_id", pl.col("ts").alias("dec_ts"), pl.col("quantity").alias("dq")),
              on="decision_id")
    )  # fmt: skip
    assert (o["filled"] <= o["quantity"]).all()
    assert (o.filter(pl.col("action") == "DONE")["filled"] == o.filter(pl.col("action") == "DONE")["quantity"]).all()
    assert (o.filter(pl.col("action") == "CANCEL")["filled"] < o.filter(pl.col("action") == "CANCEL")["quantity"]).all()
    assert (o["dec_ts"] < o["ts"]).all() and (o["first"] > o["ts"]).all() and (o["end_ts"] >= o["last"]).all()
    assert (o["dq"] == o["quantity"]).all()
    assert (fills["quantity"] > 0).all() and (fills["price"] > 0).all()


def test_fills_carry_received_ts_with_the_planted_routing_latency(main_run):
    # every fill's child order was received before it executed; per venue the median latency is the planted one
    # (lognormal with the planted median: the sample median within 15% on hundreds of fills)
    out, _ = main_run
    truth = json.loads((out / "ground_truth.json").read_text())
    fills = _events(out, "fills")
    lat_ms = fills.select("venue", ((pl.col("ts") - pl.col("received_ts")).dt.total_microseconds() / 1e3).alias("ms"))
    assert fills["received_ts"].null_count() == 0 and (lat_ms["ms"] > 0).all()
    planted = truth["execution"]["routing_latency_ms"]
    med = {r["venue"]: r["ms"] for r in lat_ms.group_by("venue").agg(pl.col("ms").median()).to_dicts()}
    for v in ("XNAS", "BATS", "DRKA", "DRKB", "MIDP"):
        assert med[v] == pytest.approx(planted[v], rel=0.15), v
    assert med["DRKB"] > 10 * med["XNAS"]


def test_fill_prices_follow_the_prevailing_quote(main_run):
    out, _ = main_run
    f = _asof(_events(out, "fills").with_columns(s=_sign()), _quotes(out), "ts")
    buy = pl.col("s") == 1
    rem = f.filter(pl.col("liquidity") == "REMOVE")
    far = rem.select(pl.when(buy).then(pl.col("price") - pl.col("ask")).otherwise(pl.col("bid") - pl.col("price")))
    assert far.to_series().min() >= -1e-9 and far.to_series().max() <= 0.03 + 1e-9
    add = f.filter(pl.col("liquidity") == "ADD")
    assert (add.select(pl.when(buy).then(pl.col("bid")).otherwise(pl.col("ask"))).to_series() == add["price"]).all()
    mid = f.filter(pl.col("liquidity") == "MIDPOINT")
    assert ((mid["price"] - mid["mid"]).abs() < 1e-6).all()
    auction = f.filter(pl.col("liquidity") == "AUCTION")
    assert auction.height > 0
    assert (auction["ts"].dt.convert_time_zone("America/New_York").dt.hour() == 16).all()
    # the desk's fills are on the tape
    tape = _market(out, "trades").select("symbol", "ts", pl.col("price"), pl.col("size").alias("quantity"))
    assert f.select("symbol", "ts", "price", "quantity").join(tape, on=["symbol", "ts", "price", "quantity"],
                                                              how="anti").height == 0  # fmt: skip


def test_settlements_t_plus_one(main_run):
    out, _ = main_run
    fills, st = _events(out, "fills"), _events(out, "settlements")
    j = fills.join(st.select("fill_id", "settle_date", pl.col("commission").alias("c2"), pl.col("fees").alias("f2")),
                   on="fill_id")  # fmt: skip
    assert j.height == fills.height == st.height
    trade_day = j["ts"].dt.convert_time_zone("America/New_York").dt.date().to_list()
    assert [next_trading_day(d) for d in trade_day] == [date.fromisoformat(str(d)) for d in j["settle_date"]]
    assert ((j["c2"] - j["commission"]).abs() <= 0.02 * j["commission"] + 0.01).all()
    assert (j.filter(pl.col("side") == "BUY")["fees"] == 0).all()
    assert (j.filter(pl.col("side") == "SELL")["f2"] >= j.filter(pl.col("side") == "SELL")["fees"]).all()


def test_weights_sum_to_one_and_holdings_follow_fills(main_run):
    out, _ = main_run
    h = pl.read_parquet(out / "holdings.parquet")
    b = pl.read_parquet(out / "benchmark_weights.parquet")
    for df, key in ((h, "portfolio_id"), (b, "benchmark_id")):
        sums = df.group_by("date", key).agg(pl.col("weight").sum())["weight"]
        assert ((sums - 1.0).abs() < 1e-9).all()
    fills, orders, dec = _events(out, "fills"), _events(out, "orders"), _events(out, "decisions")
    d1, d2 = sorted(h["date"].unique())
    link = (
        orders.filter(pl.col("action") == "NEW")
        .select("order_id", "decision_id")
        .join(dec.select("decision_id", "portfolio_id"), on="decision_id")
    )
    flow = (
        fills.filter(pl.col("ts").dt.convert_time_zone("America/New_York").dt.date() == d1)
        .join(link, on="order_id")
        .group_by("portfolio_id", "symbol")
        .agg(flow=(pl.col("quantity") * _sign()).sum())
    )
    start = h.filter(pl.col("date") == d1).select("portfolio_id", "symbol", "quantity")
    nxt = h.filter(pl.col("date") == d2).select("portfolio_id", "symbol", pl.col("quantity").alias("q2"))
    chk = start.join(flow, on=["portfolio_id", "symbol"], how="full", coalesce=True).fill_null(0)
    chk = chk.join(nxt, on=["portfolio_id", "symbol"], how="full", coalesce=True).fill_null(0)
    assert (chk["quantity"] + chk["flow"] == chk["q2"]).all()
    assert (h["quantity"] > 0).all()


def test_returns_agree_with_bars_and_factors(main_run):
    out, _ = main_run
    bars = pl.read_parquet(out / "bars_1d.parquet").sort("symbol", "ts")
    ret = pl.read_parquet(out / "returns.parquet")
    first_day = MAIN.start
    assert bars.group_by("symbol").agg((pl.col("ts").dt.date() < first_day).sum())["ts"].min() >= 20
    chk = bars.with_columns(
        date=pl.col("ts").dt.date(), r=pl.col("close") / pl.col("close").shift(1).over("symbol") - 1
    )
    chk = chk.join(ret, on=["date", "symbol"]).drop_nulls("r")
    assert chk.height == ret.height - ret["symbol"].n_unique()
    assert ((chk["r"] - chk["return"]).abs() < 1e-12).all()
    assert ((bars["low"] <= bars["open"]) & (bars["open"] <= bars["high"]) & (bars["low"] <= bars["vwap"])
            & (bars["vwap"] <= bars["high"]) & (bars["low"] <= bars["close"]) & (bars["close"] <= bars["high"])).all()  # fmt: skip
    # returns regress back on the published factors: exposures x factor returns explain a good share
    fx = pl.read_parquet(out / "factor_exposures.parquet").join(pl.read_parquet(out / "factor_returns.parquet"),
                                                                on=["date", "factor"])  # fmt: skip
    fitted = fx.group_by("date", "symbol").agg(fit=(pl.col("exposure") * pl.col("return")).sum())
    j = ret.join(fitted, on=["date", "symbol"])
    assert np.corrcoef(j["return"], j["fit"])[0, 1] > 0.3


# ---------------------------------------------------------------- realism


def test_u_shaped_volume_and_wide_opening_spreads(main_run):
    out, _ = main_run
    t = _market(out, "trades").with_columns(minute=_ny_minute()).filter(pl.col("condition") != "6")
    per_min = lambda lo, hi: t.filter((pl.col("minute") >= lo) & (pl.col("minute") < hi))["size"].sum() / (hi - lo)  # noqa: E731
    midday = per_min(120, 300)
    assert per_min(0, 30) > 1.3 * midday and per_min(360, 390) > 1.3 * midday
    q = _quotes(out).with_columns(minute=_ny_minute(), bps=(pl.col("ask") - pl.col("bid")) / pl.col("mid") * 1e4)
    first5 = q.filter(pl.col("minute") < 5)["bps"].median()
    assert first5 > 1.5 * q.filter((pl.col("minute") >= 120) & (pl.col("minute") < 300))["bps"].median()


def test_spreads_ordered_by_tier(main_run):
    out, _ = main_run
    gt = json.loads((out / "ground_truth.json").read_text())
    tiers = pl.DataFrame(gt["symbols"]).select("symbol", "tier")
    q = _quotes(out).join(tiers, on="symbol").with_columns(bps=(pl.col("ask") - pl.col("bid")) / pl.col("mid") * 1e4)
    med = dict(q.group_by("tier").agg(pl.col("bps").median()).iter_rows())
    assert med["mega"] < med["large"] < med["mid"] < med["small"]
    assert 0.5 < med["mega"] < 4 and 20 < med["small"] < 80


# ---------------------------------------------------------------- planted effects


def _fills_with_markouts(out: Path) -> pl.DataFrame:
    q = _quotes(out)
    f = _events(out, "fills").with_columns(s=_sign(), t60=pl.col("ts") + pl.duration(seconds=60))
    f = _asof(f, q, "ts").rename({"mid": "mid0"}).drop("bid", "ask")
    f = _asof(f, q, "t60").rename({"mid": "mid60"}).drop("bid", "ask")
    return f.with_columns(
        markout=pl.col("s") * (pl.col("price") - pl.col("mid60")) / pl.col("price") * 1e4,
        mid_move=pl.col("s") * (pl.col("mid0") - pl.col("mid60")) / pl.col("mid0") * 1e4,
    )


def test_drkb_adverse_selection_visible_in_markouts(main_run):
    out, _ = main_run
    f = _fills_with_markouts(out).filter(pl.col("liquidity") != "AUCTION")
    by_venue = f.group_by("venue").agg(
        markout=(pl.col("markout") * pl.col("quantity")).sum() / pl.col("quantity").sum(),
        mid_move=pl.col("mid_move").mean(),
    )
    v = {r["venue"]: r for r in by_venue.iter_rows(named=True)}
    # same fill type (midpoint), different venue: DRKB's 60 s markout is clearly worse
    assert v["DRKB"]["markout"] > max(v["DRKA"]["markout"], v["MIDP"]["markout"]) + 2.5
    # the mid moves against the desk after DRKB fills, more than after any other venue's
    others = max(r["mid_move"] for k, r in v.items() if k != "DRKB")
    assert v["DRKB"]["mid_move"] > others + 2.5


def _order_costs(out: Path) -> pl.DataFrame:
    new = _events(out, "orders").filter(pl.col("action") == "NEW")
    fills = _events(out, "fills")
    agg = fills.group_by("order_id").agg(
        filled=pl.col("quantity").sum(),
        avg_price=(pl.col("price") * pl.col("quantity")).sum() / pl.col("quantity").sum(),
        first_fill=pl.col("ts").min(),
    )
    o = _asof(new.select("order_id", "symbol", "ts", "side", "algo", "broker", "quantity"), _quotes(out), "ts")
    return o.join(agg, on="order_id").with_columns(
        arrival_cost_bps=_sign() * (pl.col("avg_price") - pl.col("mid")) / pl.col("mid") * 1e4,
        first_fill_s=(pl.col("first_fill") - pl.col("ts")).dt.total_microseconds() / 1e6,
    )


def test_liqseek_costs_more_and_vwap_pov_null_pair(main_run):
    out, _ = main_run
    # windows and sizes are drawn independently of the algo, so orders are comparable across algos
    o = _order_costs(out)
    stats = {
        r["algo"]: r
        for r in o.group_by("algo")
        .agg(n=pl.len(), cost=pl.col("arrival_cost_bps").mean(), sd=pl.col("arrival_cost_bps").std())
        .iter_rows(named=True)
    }
    se = lambda a: stats[a]["sd"] / np.sqrt(stats[a]["n"])  # noqa: E731
    vwap, pov, liq = stats["VWAP"], stats["POV"], stats["LIQSEEK"]
    assert liq["cost"] > max(vwap["cost"], pov["cost"]) + 3 * np.hypot(se("LIQSEEK"), max(se("VWAP"), se("POV")))
    assert abs(vwap["cost"] - pov["cost"]) < 3 * np.hypot(se("VWAP"), se("POV"))
    assert 3 < vwap["cost"] < 40  # a realistic arrival cost for a mixed book


def test_crescent_is_slower_and_fills_less(main_run):
    out, _ = main_run
    o = _order_costs(out)
    b = {
        r["broker"]: r
        for r in o.group_by("broker")
        .agg(ttf=pl.col("first_fill_s").median(), fill_rate=pl.col("filled").sum() / pl.col("quantity").sum())
        .iter_rows(named=True)
    }
    others = [r for k, r in b.items() if k != "Crescent"]
    assert b["Crescent"]["ttf"] > 2.0 * max(r["ttf"] for r in others)
    assert b["Crescent"]["fill_rate"] < min(r["fill_rate"] for r in others) - 0.08


# ---------------------------------------------------------------- faults


def _check_faults(out: Path, summary: dict) -> list[dict]:
    records = [json.loads(x) for x in (out / "_faults.jsonl").read_text().splitlines()]
    assert records
    counted: dict = {}
    for r in records:
        if r["table"] == "unknown":
            counted["unknown"] = counted.get("unknown", 0) + 1
        else:
            counted.setdefault(r["table"], {"duplicate": 0, "quarantined": 0})[r["expected"]] += 1
    for table, exp in summary["expected"].items():
        if table == "unknown":
            assert exp == counted.get("unknown", 0)
        else:
            got = counted.get(table, {"duplicate": 0, "quarantined": 0})
            assert (exp["duplicate"], exp["quarantined"]) == (got["duplicate"], got["quarantined"]), table
            assert exp["accepted"] == summary["rows"][table]
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["expected"] == summary["expected"]
    return records


def test_faults_are_recorded_and_invalid_for_the_stated_reason(small_run):
    out, summary = small_run
    records = _check_faults(out, summary)
    lines = {p.name: p.read_text().splitlines() for p in out.glob("*.jsonl") if p.name != "_faults.jsonl"}
    total = sum(len(v) for v in lines.values())
    n_json_faults = sum(1 for r in records if r["file"].endswith(".jsonl"))
    assert total == sum(summary["rows"][t] for t in REQUIRED_JSON) + n_json_faults
    kinds = set()
    for r in records:
        kinds.add(r["fault"])
        if r["file"].endswith(".parquet"):
            row = pl.read_parquet(out / r["file"]).row(r["line"], named=True)
            assert row["bid"] > row["ask"] if r["fault"] == "crossed_quote" else row["price"] <= 0
            continue
        text = lines[r["file"]][r["line"] - 1]
        earlier = lines[r["file"]][: r["line"] - 1]
        if r["fault"] == "broken_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(text)
            continue
        row = json.loads(text)
        assert row["event_id"] == r["event_id"]
        same_id = [json.loads(x) for x in earlier if f'"{row["event_id"]}"' in x]
        if r["fault"] == "duplicate":
            assert text in earlier
        elif r["fault"] == "conflict":
            assert same_id and same_id[0] != row
        else:
            assert not same_id  # a new event, wrong for one reason only
            assert ISO.match(row["ts"]) or (r["fault"] == "naive_ts" and not row["ts"].endswith("Z"))
            if r["fault"] == "bad_side":
                assert row["side"] == "HOLD"
            elif r["fault"] == "non_positive_quantity":
                assert row["quantity"] <= 0
            elif r["fault"] == "non_positive_price":
                assert row["price"] <= 0
            elif r["fault"] == "unknown_order":
                assert all(f'"{row["order_id"]}"' not in x for x in lines[r["file"]] if x != text)
    assert {"duplicate", "conflict", "broken_json", "crossed_quote"} <= kinds


def test_parquet_events_mode(parquet_run):
    out, summary = parquet_run
    assert not list(out.glob("*_*.jsonl")) or list(out.glob("*.jsonl")) == [out / "_faults.jsonl"]
    records = _check_faults(out, summary)
    assert not {"naive_ts", "broken_json"} & {r["fault"] for r in records}
    fills = pl.read_parquet(next(out.glob("fills_*.parquet")))
    assert fills.height == summary["rows"]["fills"] + sum(1 for r in records if r["table"] == "fills")
    params = pl.read_parquet(next(out.glob("orders_*.parquet"))).drop_nulls("algo_params")["algo_params"]
    assert all(isinstance(json.loads(x), dict) for x in params)


def test_config_refuses_a_negative_adverse_selection():
    with pytest.raises(ValueError, match="adverse_bps"):
        SimConfig(adverse_bps=-1.0).validate()
