"""Quality rules: each dataset rule with a bad row, each row rule with a bad line, and precision/recall
against the simulator's faults."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from analytics import dataquality as dq

UTC = dt.UTC
T = dt.datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def good(i: int) -> dict:
    return {
        "order_id": f"O{i}", "symbol": "AAA", "side": "BUY", "order_qty": 1000.0, "filled_qty": 900.0,
        "arrival_price": 100.0, "prev_close": 99.0, "is_total_bps": float(i % 11 - 5), "daily_volatility": 0.02,
        "adv": 1e6, "spread_bps": 5.0, "mismatched_fills": 0, "decision_id": f"D{i}",
        "decision_ts": T - dt.timedelta(minutes=1), "decision_symbol": "AAA", "decision_side": "BUY",
        "probe_ts": T, "quote_ts": T - dt.timedelta(seconds=2), "trade_ts": T - dt.timedelta(seconds=5),
        "bar_day": dt.date(2026, 2, 27), "quote_age_s": 2.0, "dec_probe_ts": T - dt.timedelta(minutes=1),
        "dec_quote_ts": T - dt.timedelta(minutes=1, seconds=3), "dec_trade_ts": None, "dec_bar_day": dt.date(2026, 2, 27),
    }  # fmt: skip


BAD = {
    "missing_outcome": {"is_total_bps": None},
    "missing_pretrade": {"daily_volatility": None},
    "invalid_values": {"spread_bps": -1.0},  # a crossed touch
    "overfill": {"filled_qty": 1000.5},
    "fill_mismatch": {"mismatched_fills": 1},
    "decision_mismatch": {"decision_side": "SELL"},
    "no_market_data": {"quote_ts": None, "quote_age_s": None},
    "stale_quote": {"quote_age_s": 301.0},
    "outlier_cost": {"is_total_bps": 2500.0},
    "bad_price": {"arrival_price": 130.0},  # +31% vs the previous close
    "look_ahead": {"dec_quote_ts": T - dt.timedelta(minutes=1)},  # a decision feature stamped AT the decision
}


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, infer_schema_length=None)


def test_every_rule_is_documented_and_tested():
    assert {r.name for r in dq.DATASET_RULES} == set(BAD)
    assert all(r.definition and r.category for r in (*dq.DATASET_RULES, *dq.ROW_RULES))


@pytest.mark.parametrize("rule", sorted(BAD))
def test_dataset_rule_catches_its_bad_row(rule):
    rows = [good(i) for i in range(40)]
    rows.append(good(99) | BAD[rule] | {"order_id": "BAD"})
    ok, bad, rep = dq.apply(frame(rows))
    assert bad["order_id"].to_list() == ["BAD"]
    assert bad["reasons"][0] == rule
    assert ok.height == 40 and "reasons" not in ok.columns
    assert rep["excluded_by_rule"][rule] == 1 and sum(rep["excluded_by_rule"].values()) == 1
    assert rep["quality_pct"] == pytest.approx(100 * 40 / 41, abs=1e-3)  # 97.561%


def test_a_row_failing_two_rules_keeps_both_reasons_and_counts_once():
    rows = [good(i) for i in range(10)] + [good(99) | BAD["overfill"] | BAD["stale_quote"] | {"order_id": "BAD"}]
    _ok, bad, rep = dq.apply(frame(rows))
    assert bad["reasons"][0] == "overfill,stale_quote"
    assert rep["candidate_rows"] == 11 and rep["passing_rows"] == 10


def test_outlier_rule_is_robust_to_the_outlier_itself():
    # costs -5..5 bps: median 0, MAD ~3 -> 12 x 1.4826 x 3 ~ 53 bps; 60 bps is out, 40 bps is in
    rows = [good(i) for i in range(40)] + [good(98) | {"is_total_bps": 40.0}, good(99) | {"is_total_bps": 60.0}]
    _, bad, _ = dq.apply(frame(rows))
    assert bad["order_id"].to_list() == ["O99"]


# --- row rules on raw files ---------------------------------------------------------------------
def dec(eid: str, **over) -> dict:
    base = {"event_type": "TradingDecisionEvent", "event_id": eid, "decision_id": eid.upper(), "ts": "2026-03-02T15:00:00Z",
            "portfolio_id": "P1", "strategy": "momentum", "symbol": "AAA", "side": "BUY", "quantity": 100}  # fmt: skip
    return base | over


@pytest.fixture
def raw_folder(tmp_path):
    lines = [
        json.dumps(dec("d1")),  # 1 good
        '{"event_type":"TradingDecisionEvent","event_id":"d2","ts"',  # 2 unparseable
        json.dumps(dec("d3", ts="2026-03-02T15:00:00")),  # 3 ts_without_zone
        json.dumps(dec("d4", side="HOLD")),  # 4 invalid_side
        json.dumps(dec("d5", quantity=0)),  # 5 non_positive
        json.dumps(dec("d1")),  # 6 duplicate_event
        json.dumps(dec("d1", quantity=200)),  # 7 conflicting_event
        json.dumps({k: v for k, v in dec("d8").items() if k != "symbol"}),  # 8 missing_field
        json.dumps(dec("d9", ts="2026-03-02T10:00:00-05:00")),  # 9 good: an offset is a zone
    ]
    (tmp_path / "decisions_2026-03-02.jsonl").write_text("\n".join(lines) + "\n")
    orders = [{"event_type": "OrderEvent", "event_id": "o1", "order_id": "O1", "ts": "2026-03-02T15:00:01Z", "action": "NEW",
               "symbol": "AAA", "side": "BUY", "quantity": 100, "broker": "B", "algo": "VWAP"},
              {"event_type": "OrderEvent", "event_id": "o2", "order_id": "O1", "ts": "2026-03-02T15:09:00Z", "action": "DONE"}]  # fmt: skip
    (tmp_path / "orders_2026-03-02.jsonl").write_text("\n".join(json.dumps(o) for o in orders) + "\n")
    fill = {"event_type": "TradeExecutedEvent", "event_id": "f1", "fill_id": "F1", "order_id": "O1", "ts": "2026-03-02T15:01:00Z",
            "symbol": "AAA", "side": "BUY", "quantity": 100, "price": 10.0, "venue": "X"}  # fmt: skip
    bad_fill = fill | {"event_id": "f2", "fill_id": "F2", "order_id": "O404"}
    (tmp_path / "fills_2026-03-02.jsonl").write_text(json.dumps(fill) + "\n" + json.dumps(bad_fill) + "\n")
    t = dt.datetime(2026, 3, 2, 15, tzinfo=UTC)
    pl.DataFrame({"symbol": ["AAA"] * 2, "ts": [t, t], "bid": [10.0, 10.2], "ask": [10.1, 10.1],
                  "bid_size": [1.0, 1.0], "ask_size": [1.0, 1.0]}).write_parquet(tmp_path / "quotes_2026-03-02.parquet")  # fmt: skip
    pl.DataFrame({"symbol": ["AAA"] * 2, "ts": [t, t], "price": [10.0, 0.0], "size": [5.0, 5.0]}).write_parquet(
        tmp_path / "trades_2026-03-02.parquet"
    )
    return tmp_path


def test_each_row_rule_flags_its_bad_line(raw_folder):
    import duckdb

    flags = dq.row_rule_flags(duckdb.connect(), raw_folder)
    got = {(r["file"], int(r["line"])): r["rule"] for r in flags.to_dicts()}
    d = "decisions_2026-03-02.jsonl"
    assert got == {
        (d, 2): "unparseable", (d, 3): "ts_without_zone", (d, 4): "invalid_side", (d, 5): "non_positive",
        (d, 6): "duplicate_event", (d, 7): "conflicting_event", (d, 8): "missing_field",
        ("fills_2026-03-02.jsonl", 2): "unknown_order",
        ("quotes_2026-03-02.parquet", 1): "crossed_quote",  # 0-based Parquet row, as the simulator counts
        ("trades_2026-03-02.parquet", 1): "non_positive",
    }  # fmt: skip
    assert {r.name for r in dq.ROW_RULES} == set(got.values())


def test_fault_scores_by_hand(raw_folder):
    # Declare three faults: two the rules flag, one on a clean line (missed); the rules flag 10 lines in all.
    faults = [{"file": "decisions_2026-03-02.jsonl", "line": 2, "table": "decisions", "fault": "broken_json"},
              {"file": "quotes_2026-03-02.parquet", "line": 1, "table": "quotes", "fault": "crossed_quote"},
              {"file": "decisions_2026-03-02.jsonl", "line": 1, "table": "decisions", "fault": "made_up"}]  # fmt: skip
    (raw_folder / "_faults.jsonl").write_text("\n".join(json.dumps(f) for f in faults) + "\n")
    s = dq.fault_scores(raw_folder)
    assert (s["faults"], s["flagged"], s["true_positives"]) == (3, 10, 2)
    assert s["precision"] == pytest.approx(2 / 10) and s["recall"] == pytest.approx(2 / 3)


@pytest.fixture(scope="module")
def faulty_sim(tmp_path_factory):
    from analytics.simulate import SimConfig, simulate

    d = tmp_path_factory.mktemp("dq_sim")
    simulate(d, SimConfig(days=2, symbols=8, orders_per_day=60, seed=21, faults=0.03, fills_per_order=10))
    return d


def test_rules_catch_the_simulators_faults(faulty_sim):
    s = dq.fault_scores(faulty_sim)
    assert s["faults"] > 100
    assert s["precision"] > 0.95 and s["recall"] > 0.95
    assert all(f["recall"] > 0.95 for f in s["by_fault"])


def test_reference_scores_are_cached_per_code_version(tmp_path):
    a = dq.reference_scores(tmp_path)
    assert a["precision"] > 0.95 and a["recall"] > 0.95
    cached = list(tmp_path.glob("fault_scores-*.json"))
    assert len(cached) == 1 and dq.CODE_VERSION in cached[0].name
    assert dq.reference_scores(tmp_path) == json.loads(cached[0].read_text())


# --- decision rows ---------------------------------------------------------------------------------------------
def good_decision(i: int) -> dict:
    return {
        "decision_id": f"D{i}", "symbol": "AAA", "side": "BUY", "quantity": 1000.0, "decision_price": 100.0,
        "prev_close": 99.0, "horizon_days": 5.0, "daily_volatility": 0.02, "adv": 1e6, "spread_bps": 5.0,
        "mismatched_orders": 0, "order_failed": False, "decision_ts": T, "quote_ts": T - dt.timedelta(seconds=2),
        "trade_ts": None, "bar_day": dt.date(2026, 2, 27), "quote_age_s": 2.0,
    }  # fmt: skip


BAD_DECISION = {
    "missing_pretrade": {"adv": None},
    "invalid_values": {"horizon_days": 0.0},
    "order_mismatch": {"mismatched_orders": 1},
    "order_excluded": {"order_failed": True},
    "no_market_data": {"bar_day": None},
    "stale_quote": {"quote_age_s": 600.0},
    "bad_price": {"decision_price": 70.0},  # -29% vs the previous close
    "look_ahead": {"trade_ts": T},  # a print stamped AT the decision
}


def test_every_decision_rule_is_documented_and_tested():
    assert {r.name for r in dq.DECISION_RULES} == set(BAD_DECISION)


@pytest.mark.parametrize("rule", sorted(BAD_DECISION))
def test_decision_rule_catches_its_bad_row(rule):
    rows = [good_decision(i) for i in range(10)] + [good_decision(99) | BAD_DECISION[rule] | {"decision_id": "BAD"}]
    _, bad, rep = dq.apply(frame(rows), key="decision_id", table="decisions")
    assert bad["decision_id"].to_list() == ["BAD"] and bad["reasons"][0] == rule
    assert rep["quality_pct"] == pytest.approx(100 * 10 / 11) and rep["excluded_by_rule"][rule] == 1
    assert {r["name"] for r in rep["rules"]} == set(BAD_DECISION)


def test_lake_fault_scores_need_the_record_and_this_versions_flags(tmp_path):
    assert dq.lake_fault_scores(tmp_path) is None
    (tmp_path / dq.LAKE_FAULTS).write_text(
        json.dumps({"file": "fills_x.jsonl", "line": 3, "table": "fills", "fault": "bad_side"}) + "\n"
    )
    assert dq.lake_fault_scores(tmp_path) is None  # no flags of this code version
    flags = pl.DataFrame({"file": ["fills_x.jsonl", "fills_x.jsonl"], "line": [3, 9], "tbl": ["fills"] * 2,
                          "rule": ["invalid_side", "non_positive"]})  # fmt: skip
    flags.write_parquet(tmp_path / dq.lake_flags_name())
    s = dq.lake_fault_scores(tmp_path)
    # 2 rows flagged, 1 of them the one fault: precision 1/2, recall 1/1
    assert (s["flagged"], s["faults"], s["true_positives"]) == (2, 1, 1)
    assert s["precision"] == 0.5 and s["recall"] == 1.0 and "own simulator faults" in s["source"]
