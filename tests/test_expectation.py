"""analytics.expectation: realised minus expected cost by group (hand-computed), the order-file validation rules,
and the batch's point-in-time context against analytics.pretrade's one-order implementation."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import expectation, pretrade, tca
from analytics import impact_models as im
from analytics.filters import Filters

Z95 = 1.959963984540054
D1, D2 = dt.date(2026, 3, 2), dt.date(2026, 3, 3)  # a Monday and the Tuesday after


def _rows() -> pl.DataFrame:
    """Four orders, gap = realised - expected (bps), weights = filled notional."""
    return pl.DataFrame(
        {
            "order_id": ["O1", "O2", "O3", "O4"],
            "day": [D1, D1, D2, D2],
            "broker": ["A", "A", "B", "B"],
            "algo": ["VWAP", "POV", "VWAP", "POV"],
            "filled_notional": [100.0, 300.0, 200.0, 200.0],
            "realised_bps": [10.0, 2.0, 8.0, 1.0],
            "expected_bps": [4.0, 4.0, 3.0, 4.0],
            "gap_bps": [6.0, -2.0, 5.0, -3.0],
        }
    )


def test_gap_by_broker_by_hand():
    g = expectation.gap_by(_rows(), "broker", min_orders=3)
    # B: (200*5 + 200*-3) / 400 = 1;  SE = sqrt(200^2*4^2 + 200^2*4^2) / 400 = sqrt(1.28e6) / 400 = 2.8284271
    # A: (100*6 + 300*-2) / 400 = 0;  SE = sqrt(100^2*6^2 + 300^2*2^2) / 400 = sqrt(7.2e5) / 400 = 2.1213203
    # times sqrt(n / (n - 1)) = sqrt(2) (CR1), half-width t_1 = tan(0.475 pi) = 12.7062 (two orders: one df)
    t1, c = 12.706204736174705, 2**0.5
    assert g["broker"].to_list() == ["B", "A"]  # largest gap first
    assert g["gap_bps"].to_list() == pytest.approx([1.0, 0.0])
    assert g["gap_bps_lo"].to_list() == pytest.approx([1 - t1 * c * 2.8284271, -t1 * c * 2.1213203])
    assert g["gap_bps_hi"].to_list() == pytest.approx([1 + t1 * c * 2.8284271, t1 * c * 2.1213203])
    # realised A = (100*10 + 300*2) / 400 = 4, expected A = (100*4 + 300*4) / 400 = 4
    a = g.filter(pl.col("broker") == "A").row(0, named=True)
    assert (a["realised_bps"], a["expected_bps"], a["orders"], a["n"], a["filled_notional"]) == (4.0, 4.0, 2, 2, 400.0)
    assert g["small_sample"].to_list() == [True, True]  # 2 orders < 3


def test_gap_by_algo_day_and_week_by_hand():
    algo = expectation.gap_by(_rows(), "algo", min_orders=2)
    # VWAP: (100*6 + 200*5) / 300 = 5.3333; POV: (300*-2 + 200*-3) / 500 = -2.4
    assert dict(algo.select("algo", "gap_bps").iter_rows()) == pytest.approx({"VWAP": 16 / 3, "POV": -2.4})
    assert not algo["small_sample"].any()
    day = expectation.gap_by(_rows(), "day")
    assert day["day"].to_list() == [D1, D2] and day["gap_bps"].to_list() == pytest.approx([0.0, 1.0])
    week = expectation.gap_by(_rows(), "week")
    # one ISO week starting Monday 2026-03-02: (600 - 600 + 1000 - 600) / 800 = 0.5
    assert week["week"].to_list() == [D1] and week["gap_bps"].to_list() == pytest.approx([0.5])


def test_gap_by_rejects_unknown_grouping():
    with pytest.raises(ValueError):
        expectation.gap_by(_rows(), "venue")


def _linear_almgren() -> im.ImpactFit:
    """gamma = 0, eta = beta = 1: expected = sigma_daily * 1e4 * pov / (1 - pov) (bps), easy by hand."""
    p = {"gamma": 0.0, "alpha": 1.0, "eta": 1.0, "beta": 1.0}
    return im.ImpactFit("almgren", p, {k: (v, v) for k, v in p.items()}, 0, math.nan, source="test")


def test_per_order_gap_is_realised_minus_expected_by_hand():
    t0 = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)
    orders = pl.DataFrame(
        {
            "order_id": ["O1", "O2", "O3"],
            "arrival_ts": [t0, t0 + dt.timedelta(hours=1), t0],
            "broker": ["A", "A", "B"],
            "algo": ["VWAP", "POV", "VWAP"],
            "filled_qty": [1000.0, 2000.0, 0.0],  # O3 unfilled: no realised cost, left out
            "adv": [1e5, 1e5, 1e5],
            "scheduled_participation": [0.10, 0.05, None],
            "daily_volatility": [0.02, 0.01, 0.02],
            "trading_impact_cost": [2500.0, 300.0, 0.0],
            "filled_notional": [1e6, 2e6, 0.0],
            "permanent_impact_bps": [1.0, 1.0, 1.0],
            "temporary_impact_bps": [1.0, 1.0, 1.0],
        }
    )
    rows = expectation.per_order(orders, _linear_almgren())
    assert rows["order_id"].to_list() == ["O1", "O2"]
    # expected = sigma_bps * ATHL's rate pov / (1 - pov) (beta = 1)
    # O1: realised 2500 / 1e6 * 1e4 = 25; expected 200 * 0.10 / 0.90 = 22.2222; gap +2.7778 (cost above expectation)
    # O2: realised 300 / 2e6 * 1e4 = 1.5; expected 100 * 0.05 / 0.95 = 5.26316; gap -3.76316
    assert rows["realised_bps"].to_list() == pytest.approx([25.0, 1.5])
    assert rows["expected_bps"].to_list() == pytest.approx([22.22222, 5.26316], abs=1e-4)
    assert rows["gap_bps"].to_list() == pytest.approx([2.77778, -3.76316], abs=1e-4)
    assert rows["broker"].to_list() == ["A", "A"] and rows["day"].to_list() == [D1, D1]
    g = expectation.gap_by(rows, "broker")
    assert g["gap_bps"].item() == pytest.approx((1e6 * 2.77778 - 2e6 * 3.76316) / 3e6, abs=1e-4)  # -1.58285


def test_out_of_sample_is_after_the_training_data_and_summary_by_hand():
    """An order on the last training day is in sample, one the day after is out; published parameters: every
    order out of sample. The summary: notional-weighted gap (+2.7778 x 1e6 - 3.7632 x 2e6) / 3e6, its saving
    -sum(gap x notional) / 1e4, and the model named."""
    t0 = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)
    orders = pl.DataFrame({
        "order_id": ["O1", "O2"], "arrival_ts": [t0, t0 + dt.timedelta(days=1)], "broker": ["A", "A"],
        "algo": ["VWAP", "POV"], "filled_qty": [1000.0, 2000.0], "adv": [1e5, 1e5],
        "scheduled_participation": [0.10, 0.05], "daily_volatility": [0.02, 0.01],
        "trading_impact_cost": [2500.0, 300.0], "filled_notional": [1e6, 2e6],
        "permanent_impact_bps": [1.0, 1.0], "temporary_impact_bps": [1.0, 1.0],
    })  # fmt: skip
    import dataclasses

    fit = dataclasses.replace(_linear_almgren(), trained_through="2026-03-02T20:00:00+00:00", version="3")
    rows = expectation.per_order(orders, fit)
    assert rows["out_of_sample"].to_list() == [False, True]
    assert expectation.per_order(orders, _linear_almgren())["out_of_sample"].to_list() == [True, True]
    s = expectation.summary(rows, fit)
    gap = (1e6 * 2.777778 - 2e6 * 3.763158) / 3e6
    assert s["gap_bps"] == pytest.approx(gap, abs=1e-5) and s["saving"] == pytest.approx(-gap * 3e6 / 1e4, rel=1e-5)
    assert (s["orders"], s["out_of_sample_orders"], s["model"], s["model_version"]) == (2, 1, "almgren", "3")
    assert s["gap_lo_bps"] < s["gap_bps"] < s["gap_hi_bps"]


def test_per_order_of_nothing_is_empty_with_columns():
    out = expectation.per_order(pl.DataFrame(), im.published("istar"))
    assert out.is_empty() and "gap_bps" in out.columns
    assert expectation.gap_by(out, "broker").is_empty()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["A", "B", "C"]),
            st.floats(1.0, 1e6),
            st.floats(-50, 50),
            st.floats(-50, 50),
        ),
        min_size=1,
        max_size=30,
    ),
    st.floats(-20, 20),
)
def test_groups_add_up_and_shifting_realised_shifts_every_gap(rows, c):
    df = pl.DataFrame(rows, schema=["broker", "filled_notional", "realised_bps", "expected_bps"], orient="row")
    df = df.with_columns((pl.col("realised_bps") - pl.col("expected_bps")).alias("gap_bps"))
    g = expectation.gap_by(df, "broker")
    w = df["filled_notional"]
    overall = float((df["gap_bps"] * w).sum() / w.sum())
    # the notional-weighted group means recombine into the overall mean
    assert float((g["gap_bps"] * g["filled_notional"]).sum() / g["filled_notional"].sum()) == pytest.approx(
        overall, abs=1e-6
    )
    # gap = realised - expected holds per group too (same weights)
    assert (g["gap_bps"] - (g["realised_bps"] - g["expected_bps"])).abs().max() < 1e-6
    assert (g["gap_bps_lo"] <= g["gap_bps"] + 1e-9).all() and (g["gap_bps"] <= g["gap_bps_hi"] + 1e-9).all()
    shifted = expectation.gap_by(df.with_columns(pl.col("gap_bps") + c), "broker")
    assert shifted.sort("broker")["gap_bps"].to_list() == pytest.approx(
        (g.sort("broker")["gap_bps"] + c).to_list(), abs=1e-6
    )


def test_inputs_are_not_mutated():
    rows = _rows()
    before = rows.clone()
    expectation.gap_by(rows, "broker")
    assert rows.equals(before)


# --- order files --------------------------------------------------------------------------------------------
def test_validate_orders_gives_each_bad_row_its_reason():
    raw = pl.DataFrame(
        {
            "line": [2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
            "order_id": ["A", "B", "C", "D", "E", "F", "G", "H", None, "J"],
            "symbol": ["ABC", "", "ABC", "ABC", "ABC", "ABC", "ABC", "ABC", "abc ", "ABC"],
            "side": ["buy", "BUY", "HOLD", "SELL", "SELL", "SELL", "SELL", "SELL", "Sell", "BUY"],
            "quantity": ["100", "100", "100", "x", "0", "100", "100", "100", "250", "100"],
            "arrival_ts": [None, None, None, None, None, "2026-03-02T14:30:00", None, None, None, "2026-03-02T15:00:00Z"],
            "urgency": [None, None, None, None, None, None, "SOON", None, "high", None],
            "pov": [None, None, None, None, None, None, None, "1.5", None, "0.2"],
        }
    )  # fmt: skip
    valid, rejected = expectation.validate_orders(raw, today=D2)
    assert dict(zip(rejected["line"], rejected["reason"], strict=True)) == {
        3: "missing_symbol", 4: "bad_side", 5: "bad_quantity", 6: "non_positive_quantity",
        7: "bad_timestamp",  # no zone: rejected, not guessed
        8: "bad_urgency", 9: "bad_pov",
    }  # fmt: skip
    assert rejected.filter(pl.col("line") == 5)["detail"].item() == "quantity x is not a number"
    assert valid["line"].to_list() == [2, 10, 11]
    assert valid["side"].to_list() == ["BUY", "SELL", "BUY"]  # case-insensitive on input
    assert valid["urgency"].to_list() == ["MEDIUM", "HIGH", "MEDIUM"]  # default MEDIUM
    assert valid["asof"].to_list() == [D2, D2, D1]  # the arrival's date, else today
    assert valid["pov"].to_list() == [None, None, 0.2]
    assert valid["order_id"][1] is None  # a hypothetical order


def test_read_orders_numbers_lines_like_the_ingest(tmp_path):
    p = tmp_path / "orders.csv"
    p.write_text("symbol,side,quantity\nABC,BUY,1\nABC,SELL,2\n")
    assert expectation.read_orders(p)["line"].to_list() == [2, 3]  # header = line 1
    j = tmp_path / "orders.jsonl"
    j.write_text('{"symbol": "ABC", "side": "BUY", "quantity": 1}\n{"symbol": "ABC", "side": "BUY", "quantity": 2}\n')
    assert expectation.read_orders(j)["line"].to_list() == [1, 2]
    with pytest.raises(expectation.PredictionError):
        expectation.read_orders(tmp_path / "orders.xlsx")


# --- point-in-time context of a batch = each (symbol, date) asked alone ---------------------------------------
def test_batch_context_equals_each_probe_alone(sim_lake):
    con = sim_lake.connect()
    symbols = con.sql("SELECT DISTINCT symbol FROM bars ORDER BY symbol LIMIT 4").pl()["symbol"].to_list()
    last = con.sql("SELECT max(ts) FROM bars").fetchall()[0][0].date()
    dates = [last - dt.timedelta(days=3), last, last + dt.timedelta(days=1)]
    probes = pl.DataFrame([(s, d) for s in symbols for d in dates], schema=["symbol", "asof"], orient="row")
    ctx = pretrade.market_contexts(con, probes)
    for s in symbols:
        for d in dates:
            ref = pretrade.market_context(con, s, d)  # the same probe alone: the batch must not mix symbols or dates
            got = ctx.filter((pl.col("symbol") == s) & (pl.col("asof") == d))
            if ref is None:
                assert got.is_empty()
                continue
            row = got.row(0, named=True)
            assert row["adv"] == pytest.approx(ref["adv"])
            assert row["sigma_daily"] == pytest.approx(ref["sigma_daily"])
            assert row["last_close"] == pytest.approx(ref["last_close"])
            assert row["bars"] == ref["bars"]


def test_batch_prediction_equals_the_pretrade_page_for_a_date_after_the_history(sim_lake):
    """An order dated after every stored order sees the whole desk history, as the Pre-trade page does; its
    I-Star expectation per algo must then equal pretrade.estimate's (participation and spread included)."""
    con = sim_lake.connect()
    history = tca.load_orders(sim_lake, con, Filters())
    symbol = history["symbol"].mode().sort()[0]
    algos = sorted(history["algo"].drop_nulls().unique().to_list())
    asof = history["arrival_ts"].max().date() + dt.timedelta(days=1)
    raw = pl.DataFrame(
        {
            "line": list(range(1, len(algos) + 1)),
            "symbol": [symbol] * len(algos),
            "side": ["BUY"] * len(algos),
            "quantity": [50_000] * len(algos),
            "date": [asof.isoformat()] * len(algos),
            "algo": algos,
            "urgency": ["MEDIUM"] * len(algos),
        }
    )
    fit = im.published("istar")
    pred, rejected = expectation.predict_orders(con, raw, "istar", fit, "impact-istar", None, history, "lake@1")
    assert rejected.is_empty() and pred.height == len(algos)
    ctx = pretrade.market_context(con, symbol, asof)
    ref = pretrade.estimate(ctx, 50_000.0, "MEDIUM", algos, history, fit, im.published("almgren"))
    assert pred["expected_cost_bps"].to_list() == pytest.approx(ref["istar_bps"].to_list())
    assert pred["pov"].to_list() == pytest.approx(ref["pov"].to_list())
    assert pred["spread_bps"].to_list() == pytest.approx(ref["spread_bps"].to_list())
    assert (pred["cost_lo_bps"] <= pred["expected_cost_bps"]).all()
    assert (pred["expected_cost_bps"] <= pred["cost_hi_bps"]).all()
    assert set(pred["event_type"]) == {"ExecutionCostPredictionEvent"} and pred["event_id"].n_unique() == pred.height


def test_learned_model_prediction_equals_the_pretrade_page(sim_lake):
    """The learned model (a short fit: the check is the plumbing, not the model) through the batch path equals
    pretrade.estimate's learned column for the same order (arrival 14:30 UTC of the date, the symbol's spread)."""
    from analytics import cost_model

    con = sim_lake.connect()
    history = tca.load_orders(sim_lake, con, Filters())
    model = cost_model.fit(history, cost_model.CostModelConfig(steps=200, seed=1, target="is_total_bps"))
    symbol = history["symbol"].mode().sort()[0]
    algos = sorted(history["algo"].drop_nulls().unique().to_list())[:2]
    asof = history["arrival_ts"].max().date() + dt.timedelta(days=1)
    raw = pl.DataFrame({"line": [1, 2], "symbol": [symbol] * 2, "side": ["SELL"] * 2, "quantity": [20_000] * 2,
                        "date": [asof.isoformat()] * 2, "algo": algos, "urgency": ["HIGH"] * 2})  # fmt: skip
    pred, rejected = expectation.predict_orders(con, raw, "learned", model, "cost-learned", "3", history, "lake@1")
    assert rejected.is_empty()
    ctx = pretrade.market_context(con, symbol, asof)
    fit_i, fit_a = im.published("istar"), im.published("almgren")
    ref = pretrade.estimate(ctx, 20_000.0, "HIGH", algos, history, fit_i, fit_a, model)
    assert pred["expected_cost_bps"].to_list() == pytest.approx(ref["learned_bps"].to_list(), rel=1e-6)
    assert pred["cost_lo_bps"].to_list() == pytest.approx(ref["learned_lo_bps"].to_list(), rel=1e-6)
    assert set(pred["cost_measure"]) == {"implementation_shortfall"} and set(pred["model_version"]) == {"3"}
    assert (pred["cost_lo_bps"] < pred["expected_cost_bps"]).all() and (
        pred["expected_cost_bps"] < pred["cost_hi_bps"]
    ).all()
