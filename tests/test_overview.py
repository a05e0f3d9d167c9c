"""overview: period comparison, best/worst claims, data status and the written summary, by hand."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from analytics import overview
from analytics.filters import Filters


def _orders(day: str, costs: list[tuple[float, float, float]]) -> pl.DataFrame:
    """Orders of one day: (paper notional, IS cost in currency, arrival cost bps), fully filled."""
    ts = dt.datetime.fromisoformat(f"{day}T15:00:00+00:00")
    n = len(costs)
    return pl.DataFrame(
        {
            "order_id": [f"{day}-{i}" for i in range(n)],
            "arrival_ts": [ts] * n,
            "broker": ["A", "B"] * (n // 2) + ["A"] * (n % 2),
            "paper_notional": [c[0] for c in costs],
            "filled_notional": [c[0] for c in costs],
            "filled_qty": [100.0] * n,
            "fill_count": [2] * n,
            "is_total_cost": [c[1] for c in costs],
            "is_delay_cost": [0.0] * n,
            "is_trading_cost": [c[1] for c in costs],
            "is_opportunity_cost": [0.0] * n,
            "is_fees": [0.0] * n,
            "arrival_cost_bps": [c[2] for c in costs],
            "vwap_interval_cost_bps": [0.0] * n,
            "vwap_day_cost_bps": [0.0] * n,
            "twap_cost_bps": [0.0] * n,
        }
    )


def test_previous_period_is_the_equally_long_span_just_before():
    f = Filters(start=dt.date(2026, 3, 10), end=dt.date(2026, 3, 16), broker=("A",))
    p = overview.previous_period(f)
    assert (p.start, p.end, p.broker) == (dt.date(2026, 3, 3), dt.date(2026, 3, 9), ("A",))
    assert overview.previous_period(Filters()) is None


def test_headline_changes_against_the_previous_period_by_hand():
    # current: 2 orders, paper 1,000,000 + 3,000,000, IS cost 100 + 500 -> 600 / 4e6 = 1.5 bps
    cur = _orders("2026-03-10", [(1e6, 100.0, 1.0), (3e6, 500.0, 2.0)])
    # previous: 1 order, paper 2,000,000, IS cost 100 -> 0.5 bps
    prev = _orders("2026-03-03", [(2e6, 100.0, 4.0)])
    h = overview.headline(cur, prev)
    assert h["is_total_bps"] == pytest.approx(1.5)
    assert h["is_total_bps_prev"] == pytest.approx(0.5)
    assert h["is_total_bps_change"] == pytest.approx(1.0)  # bps figures change in bps
    assert h["orders_change"] == pytest.approx(1.0)  # 2 vs 1 orders: +100%
    assert h["filled_notional_change"] == pytest.approx(4e6 / 2e6 - 1)
    # arrival cost is weighted by filled notional: (1 * 1e6 + 2 * 3e6) / 4e6 = 1.75
    assert h["arrival_cost_bps"] == pytest.approx(1.75)
    assert overview.headline(cur)["is_total_bps_change"] is None


def test_daily_is_bps_is_cost_over_paper_per_day():
    df = pl.concat([_orders("2026-03-02", [(1e6, 100.0, 1.0)]), _orders("2026-03-03", [(1e6, 300.0, 1.0)])])
    d = overview.daily(df)
    assert d["day"].to_list() == [dt.date(2026, 3, 2), dt.date(2026, 3, 3)]
    assert d["is_total_bps"].to_list() == pytest.approx([1.0, 3.0])


def _groups(rows):
    return pl.DataFrame(
        rows,
        schema=["broker", "arrival_cost_bps", "arrival_cost_bps_lo", "arrival_cost_bps_hi", "orders"],
        orient="row",
    ).with_columns((pl.col("orders") < 30).alias("small_sample"))


def test_leaders_only_claim_a_best_when_intervals_separate_and_samples_suffice():
    sep = overview.leaders(_groups([("A", 2.0, 1.0, 3.0, 50), ("B", 9.0, 8.0, 10.0, 50)]), "broker")
    assert (sep["best"]["key"], sep["worst"]["key"], sep["separated"]) == ("A", "B", True)
    overlap = overview.leaders(_groups([("A", 2.0, 0.0, 6.0, 50), ("B", 5.0, 3.0, 7.0, 50)]), "broker")
    assert overlap["best"]["key"] == "A" and overlap["separated"] is False
    # C is cheapest but has 5 orders: it is not ranked; one eligible group left -> no claim at all
    few = overview.leaders(_groups([("C", -9.0, -10.0, -8.0, 5), ("A", 2.0, 1.0, 3.0, 50)]), "broker")
    assert few["best"] is None
    text = " ".join(overview.narrative({"orders": 1, "filled_notional": 1.0, "fills": 1, "is_total_bps": 1.0,
                                        "is_total_cost": 1.0, "arrival_cost_bps": 1.0}, [sep, overlap]))  # fmt: skip
    assert "do not overlap" in text and "not conclusive" in text


def test_data_status_thresholds():
    def summ(acc, q):
        return {"version": 3, "tables": [{"table": "fills", "rows": acc}], "quarantine": [{"rows": q}] if q else []}

    assert overview.data_status(summ(995, 5))["status"] == "ok"  # 0.5%
    assert overview.data_status(summ(970, 30))["status"] == "check"  # 3%
    assert overview.data_status(summ(900, 100))["status"] == "poor"  # 10%
    assert overview.data_status(summ(900, 100))["quarantined_share"] == pytest.approx(0.1)


def test_portfolio_lines_equal_the_attribution_cli(sim_lake, capsys):
    """The overview's active return per portfolio is the TOTAL row of `python -m analytics attribution`."""
    import json

    from analytics.__main__ import main

    con = sim_lake.connect()
    lo, hi = con.execute("SELECT min(date), max(date) FROM holdings").fetchone()
    books = overview.portfolios(con, lo, hi)
    assert books.height >= 2
    for r in books.iter_rows(named=True):
        args = ["attribution", "--lake", str(sim_lake.root), "--portfolio", r["portfolio_id"], "--start", str(lo)]
        assert main([*args, "--end", str(hi), "--json"]) == 0
        rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        total = next(x for x in rows if x["group"] == "TOTAL")
        assert r["active_return"] == pytest.approx(total["total"], abs=1e-12)
        top = max((x for x in rows if x["group"] != "TOTAL"), key=lambda x: max(abs(x[e]) for e in
                  ("allocation", "selection", "interaction")))  # fmt: skip
        assert r["top_group"] == top["group"]


def test_board_ranks_brokers_and_algos_difficulty_adjusted_and_venues_raw(sim_lake):
    from analytics import tca

    con = sim_lake.connect()
    orders = tca.load_orders(sim_lake, con, Filters())
    b = overview.board(orders, tca.venue_costs(sim_lake, con, Filters()), min_orders=5)
    assert [x["dimension"] for x in b] == ["broker", "algo", "venue"]
    assert [x["basis"] for x in b] == ["difficulty-adjusted", "difficulty-adjusted", "raw"]
    g = overview.adjusted_groups(orders, "broker")
    assert set(g["broker"]) <= set(orders["broker"]) and (g["arrival_cost_bps_lo"] <= g["arrival_cost_bps_hi"]).all()
    for x in b:
        if x["best"]:
            assert x["best"]["arrival_cost_bps"] <= x["worst"]["arrival_cost_bps"]
    # the board shares one set of regression units between broker and algo: the same figures as each
    # dimension's own regression (the Execution quality page's)
    for x in b[:2]:
        assert x == {**overview.leaders(overview.adjusted_groups(orders, x["dimension"]), x["dimension"]),
                     "basis": "difficulty-adjusted"}  # fmt: skip


def test_expectation_weights_by_notional_and_prices_the_saving():
    from analytics import impact_models as im

    t = dt.datetime(2026, 3, 2, 15, tzinfo=dt.UTC)
    orders = pl.DataFrame(
        {
            "order_id": ["a", "b"], "arrival_ts": [t, t], "algo": ["VWAP", "VWAP"], "broker": ["X", "X"],
            "filled_qty": [1e4, 3e4], "adv": [1e6, 1e6], "scheduled_participation": [0.05, 0.10],
            "daily_volatility": [0.02, 0.02], "filled_notional": [1e6, 3e6],
            "trading_impact_cost": [100.0, 600.0],  # 1 bps and 2 bps of their filled notional
            "permanent_impact_bps": [0.0, 0.0], "temporary_impact_bps": [0.0, 0.0],
        }
    )  # fmt: skip
    fit = im.published("istar")
    e = overview.expectation(orders, fit)
    assert e["orders"] == 2
    assert e["realised_bps"] == pytest.approx((1 * 1e6 + 2 * 3e6) / 4e6)  # 1.75 bps
    pred = im.predict(fit, im.training_frame(orders))["expected_cost_bps"].to_list()
    assert e["expected_bps"] == pytest.approx((pred[0] * 1e6 + pred[1] * 3e6) / 4e6)
    assert e["saving"] == pytest.approx(((pred[0] - 1) * 1e6 + (pred[1] - 2) * 3e6) / 1e4)
    # one definition: realised - expected, notional weighted, positive = worse than expected; the model named
    assert e["gap_bps"] == pytest.approx(e["realised_bps"] - e["expected_bps"]) == e["difference_bps"]
    assert (e["model"], e["model_version"]) == ("istar", "published")
    assert overview.expectation(orders.head(0), fit) == {"orders": 0, "model": "istar", "model_version": "published"}
    # a registered champion names its version
    import dataclasses

    assert overview.expectation(orders, dataclasses.replace(fit, version="4"))["model_version"] == "4"


def test_dataset_status_keeps_the_latest_version_and_checks_the_promise():
    listing = [
        {"name": "exec", "version": 1, "rows": 10, "quality_pct": 99.0},
        {"name": "exec", "version": 2, "rows": 12, "quality_pct": 94.0},
        {"name": "dec", "version": 1, "rows": 5, "quality_pct": 100.0},
    ]
    s = overview.dataset_status(listing)
    assert [(d["name"], d["version"], d["meets_promise"]) for d in s] == [("dec", 1, True), ("exec", 2, False)]
