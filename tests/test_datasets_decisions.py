"""Decision rows: every trading decision's point-in-time context, its orders, its outcome and label, by hand on
a tiny tape; a look-ahead property test over decision rows; the store's publish and tick scan."""

from __future__ import annotations

import datetime as dt
import math
import random

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings

from analytics import dataquality, datasets, labels
from analytics.store import publish_version_dir, version_dirs
from tests.test_features import QUOTES, TRADES, T, bar, frame, quote, tapes, trade, ts

UTC = dt.UTC
DAY = dt.date(2026, 3, 2)
BARS = [
    bar(dt.date(2026, 2, 25), 100.0, 1e6),
    bar(dt.date(2026, 2, 26), 102.0, 2e6),
    bar(dt.date(2026, 2, 27), 99.96, 3e6),
    bar(DAY, 100.5, 4e6),  # bar 0: the decisions' own day
    bar(dt.date(2026, 3, 3), 101.0, 4e6),  # bar 1
    bar(dt.date(2026, 3, 4), 99.0, 4e6),  # bar 2
]


def decision(did, t=T, side="BUY", qty=20_000.0, price=None, alpha=25.0, horizon=1.0, sym="AAA", ev=None):
    return {"event_id": ev or f"e-{did}", "decision_id": did, "ts": t, "portfolio_id": "P1", "strategy": "momentum",
            "symbol": sym, "side": side, "quantity": qty, "decision_price": price, "urgency": "HIGH",
            "alpha_bps": alpha, "horizon_days": horizon, "model_id": "m-v1"}  # fmt: skip


def new_order(oid, did, t, qty, side="BUY", sym="AAA"):
    return {"event_id": f"e-{oid}", "order_id": oid, "ts": t, "action": "NEW", "symbol": sym, "side": side,
            "quantity": qty, "broker": "B", "algo": "VWAP", "decision_id": did}  # fmt: skip


DECISIONS = [
    decision("D1"),  # no price sent: the mid before T (100.05); led to two orders
    decision("D2", side="SELL", qty=10_000.0, price=100.0, alpha=10.0, horizon=2.0),  # led to no order
    decision("D3", price=100.0, horizon=5.0),  # its horizon's bar is not in the lake yet: pending
    decision("D1", t=T + dt.timedelta(minutes=5), ev="e-D1-late"),  # a later event of D1: not its first
    decision("D4", t=ts(15, 0, day=dt.date(2026, 3, 3)), price=100.0),  # the next day: outside start..end
]
ORDERS = [
    new_order("O1", "D1", T + dt.timedelta(seconds=60), 15_000.0),
    new_order("O2", "D1", T + dt.timedelta(seconds=120), 5_000.0),
]


def connect(quotes, trades, bars, decisions=DECISIONS, orders=ORDERS) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name, rows in (("quotes", quotes), ("trades", trades), ("bars", bars), ("decisions", decisions),
                       ("orders", orders)):  # fmt: skip
        con.register(f"_{name}", frame(name, rows).to_arrow())
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM _{name}")
    return con


def contexts(quotes=QUOTES, trades=TRADES, bars=BARS, decisions=DECISIONS, orders=ORDERS) -> pl.DataFrame:
    con = connect(quotes, trades, bars, decisions, orders)
    try:
        return datasets.decision_contexts(con, DAY, DAY)
    finally:
        con.close()


@pytest.fixture(scope="module")
def rows() -> dict:
    return {r["decision_id"]: r for r in contexts().iter_rows(named=True)}


def test_one_row_per_decision_in_range_with_its_first_event(rows):
    assert sorted(rows) == ["D1", "D2", "D3"]  # D4 is the next day; D1's later event is not a second row
    assert rows["D1"]["decision_ts"] == T


def test_context_at_the_decision_and_its_own_fields(rows):
    d1 = rows["D1"]
    # the same tape as test_features: last quote before T is 100.00 / 100.10, sizes 300 / 100
    assert d1["spread_bps"] == pytest.approx(0.10 / 100.05 * 1e4)
    assert d1["quote_imbalance"] == pytest.approx(0.5) and d1["volume_recent"] == 600
    assert d1["adv"] == pytest.approx(2e6) and d1["size_pct_adv"] == pytest.approx(20_000 / 2e6)
    assert (d1["alpha_bps"], d1["horizon_days"], d1["strategy"], d1["urgency"]) == (25.0, 1.0, "momentum", "HIGH")
    assert d1["side_sign"] == 1 and rows["D2"]["side_sign"] == -1
    assert d1["quote_ts"] < T and d1["trade_ts"] < T and d1["bar_day"] == dt.date(2026, 2, 27)
    assert d1["prev_close"] == pytest.approx(99.96)


def test_decision_price_sent_else_the_mid_before(rows):
    assert (rows["D1"]["decision_price"], rows["D1"]["decision_price_source"]) == (pytest.approx(100.05), "mid_before")
    assert (rows["D2"]["decision_price"], rows["D2"]["decision_price_source"]) == (100.0, "sent")


def test_orders_it_led_to(rows):
    assert (rows["D1"]["orders"], rows["D1"]["order_id"]) == (2, "O1")  # O1 arrived first
    assert (rows["D2"]["orders"], rows["D2"]["order_id"]) == (0, None)


def test_realized_return_over_the_horizon(rows):
    # D1 BUY, horizon 1 bar after its day's bar: close 101.0 vs 100.05 -> +94.95 bps
    assert rows["D1"]["realized_return_bps"] == pytest.approx((101.0 - 100.05) / 100.05 * 1e4)
    assert rows["D1"]["horizon_day"] == dt.date(2026, 3, 3)
    # D2 SELL, horizon 2: close 99.0 vs 100.0 -> +100 bps for a seller
    assert rows["D2"]["realized_return_bps"] == pytest.approx(100.0)
    assert rows["D3"]["realized_return_bps"] is None  # bar 5 does not exist yet


def order_rows(**is_bps) -> pl.DataFrame:
    """The dataset's order candidates that carry D1's realized cost: O1 15,000 and O2 5,000 at Pd 100.05; O2 left
    1,000 unfilled (opportunity 8 bps at the cancel mid); both 2 bps of delay; D1's horizon close 101."""
    return pl.DataFrame({"order_id": ["O1", "O2"], "decision_id": ["D1", "D1"], "decision_price": [100.05] * 2,
                         "order_qty": [15_000.0, 5_000.0], "filled_qty": [15_000.0, 4_000.0],
                         "fill_rate": [1.0, 0.8], "is_delay_bps": [2.0, 2.0], "is_opportunity_bps": [0.0, 8.0],
                         "realized_return_bps": [(101.0 - 100.05) / 100.05 * 1e4] * 2,
                         "is_total_bps": [is_bps.get("O1", 10.0), is_bps.get("O2", 30.0)]})  # fmt: skip


def test_decision_table_costs_and_labels_by_hand():
    dc = contexts()
    ok, bad, rep = datasets.decision_table(dc, order_rows(), order_rows().head(0), labels.SquareRootEstimator())
    assert bad.is_empty() and rep["quality_pct"] == 100.0 and rep["candidate_rows"] == 3
    r = {x["decision_id"]: x for x in ok.iter_rows(named=True)}
    assert ok.columns == datasets.decision_columns()
    # D1 executed: the IS with unfilled shares valued at the horizon close (labels.py), weighted by paper notional
    # (same Pd): O2's 1,000 unfilled revalued from the cancel mid (8 bps) to 101: 30 - 8 + (R - 2) x 0.2
    d1 = r["D1"]
    ret = (101.0 - 100.05) / 100.05 * 1e4
    cost1 = (10.0 * 15_000 + (30.0 - 8.0 + (ret - 2.0) * 0.2) * 5_000) / 20_000
    assert (d1["cost_source"], d1["executed_qty"]) == ("realized", 19_000.0)
    assert d1["execution_cost_bps"] == pytest.approx(cost1)
    sigma = abs(math.log(102 / 100) - math.log(99.96 / 102)) / math.sqrt(2) * 1e4  # daily vol before the day, bps
    net1 = ret - cost1
    assert d1["decision_net_bps"] == pytest.approx(net1)
    assert d1["decision_z"] == pytest.approx((25.0 - net1) / (sigma * 1.0))
    # D2 led to no order: net of the pre-trade estimate, 0.5 x spread + 0.5 x sigma x sqrt(10,000 / 2e6)
    spread = 0.10 / 100.05 * 1e4
    expected = 0.5 * spread + 0.5 * sigma * math.sqrt(10_000 / 2e6)
    d2 = r["D2"]
    assert d2["cost_source"] == "expected" and d2["execution_cost_bps"] == pytest.approx(expected)
    z2 = (10.0 - (100.0 - expected)) / (sigma * math.sqrt(2))
    assert d2["decision_z"] == pytest.approx(z2)
    assert d2["decision_label"] == pl.select(labels.THRESHOLDS.classify(pl.lit(z2)))[0, 0]
    # D3: horizon not reached
    assert r["D3"]["decision_label"] == labels.PENDING and r["D3"]["decision_net_bps"] is None


def test_an_excluded_order_excludes_its_decision_and_an_unknown_cost_gives_no_label():
    dc = contexts()
    ok, bad, rep = datasets.decision_table(dc, order_rows(), order_rows().filter(pl.col("order_id") == "O2"),
                                           labels.SquareRootEstimator())  # fmt: skip
    assert bad["decision_id"].to_list() == ["D1"] and bad["reasons"][0] == "order_excluded"
    assert rep["excluded_by_rule"]["order_excluded"] == 1 and rep["quality_pct"] == pytest.approx(200 / 3)
    # D1's orders arrived outside the dataset's dates: no realized cost, no guess
    ok, _, _ = datasets.decision_table(dc, order_rows().head(0), order_rows().head(0), labels.SquareRootEstimator())
    d1 = ok.filter(pl.col("decision_id") == "D1").row(0, named=True)
    assert d1["cost_source"] == "unavailable" and d1["decision_label"] is None and d1["decision_net_bps"] is None


def test_a_decision_whose_order_contradicts_it_fails_order_mismatch():
    orders = [*ORDERS, new_order("O3", "D2", T + dt.timedelta(seconds=30), 10_000.0, side="BUY")]  # D2 is a SELL
    dc = contexts(orders=orders)
    assert dc.filter(pl.col("decision_id") == "D2")["mismatched_orders"][0] == 1
    _, bad, _ = datasets.decision_table(dc, order_rows(), order_rows().head(0), labels.SquareRootEstimator())
    assert bad["decision_id"].to_list() == ["D2"] and bad["reasons"][0] == "order_mismatch"


# --- look-ahead: perturb every tick at or after the decisions' timestamp; no decision row may move ---------------
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tapes())
def test_no_look_ahead_in_decision_rows(tape):
    quotes, trades, t, seed = tape
    rnd = random.Random(seed)
    decs = [decision("DA", t=t), decision("DB", t=t, side="SELL", price=15.0, horizon=2.0)]
    orders = [new_order("OA", "DA", t + dt.timedelta(seconds=1), 20_000.0)]
    before = contexts(quotes, trades, BARS, decs, orders)

    q2 = [q | {"bid": (b := rnd.uniform(1, 1000)), "ask": b + rnd.uniform(0.01, 5), "bid_size": rnd.uniform(1, 1e6)}
          if q["ts"] >= t else q for q in quotes if q["ts"] < t or rnd.random() < 0.7]  # fmt: skip
    q2 += [quote(t, 1.0, 900.0, 5, 5), quote(t + dt.timedelta(seconds=1), 2.0, 3.0)]
    t2 = [tr | {"price": rnd.uniform(1, 1000), "size": rnd.uniform(1, 1e6)} if tr["ts"] >= t else tr for tr in trades]
    t2 += [trade(t, 1.0, 1e7), trade(t + dt.timedelta(minutes=3), 2.0, 5e6)]
    key = lambda r: r["ts"]  # noqa: E731
    after = contexts(sorted(q2, key=key), sorted(t2, key=key), BARS, decs, orders)
    assert after.equals(before), "a decision row changed when only ticks at/after its timestamp changed"
    # Bars of the decision's day and later move only the outcome (the realized return), never the context.
    bars2 = [b if b["ts"].date() < t.date() else b | {"close": rnd.uniform(1, 50), "volume": 1.0} for b in BARS]
    moved = contexts(sorted(q2, key=key), sorted(t2, key=key), bars2, decs, orders)
    outcome = ["realized_return_bps", "horizon_day", "horizon_close"]
    assert moved.drop(outcome).equals(before.drop(outcome))
    assert (before["quote_ts"].drop_nulls() < t).all() and (before["trade_ts"].drop_nulls() < t).all()


# --- store: atomic publish of a numbered folder ----------------------------------------------------------------
def test_publish_version_dir(tmp_path):
    base = tmp_path / "ds"
    m1, m2 = {"a": 1}, {"a": 2}
    assert publish_version_dir(base, {"x.txt": lambda p: p.write_text("one")}, m1) == 1
    assert publish_version_dir(base, {"x.txt": lambda p: p.write_text("two")}, m2) == 2
    assert version_dirs(base) == [1, 2] and (base / "v0002" / "x.txt").read_text() == "two"
    assert m2["location"] == str(base / "v0002") and m2["version"] == 2

    def boom(p):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        publish_version_dir(base, {"x.txt": boom}, {})
    assert version_dirs(base) == [1, 2] and not list(base.glob(".tmp-*"))  # nothing half-written is left


def test_quality_rules_of_decision_rows_are_documented():
    assert {r.name for r in dataquality.DECISION_RULES} == set(dataquality.decision_rule_exprs(pl.DataFrame()))
