"""``python -m analytics predict``: one ExecutionCostPredictionEvent per valid order, the rest beside the output
with a reason, exit 2 only when nothing could be predicted."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest

from analytics import expectation
from analytics.__main__ import main
from analytics.store import Lake


@pytest.fixture(scope="module")
def lake(sim_lake, tmp_path_factory) -> Lake:
    """A copy of the simulated lake (predict opens the lake's MLflow store, which creates it)."""
    return Lake(shutil.copytree(sim_lake.root, tmp_path_factory.mktemp("predict") / "lake"))


@pytest.fixture(scope="module")
def symbols(lake) -> list[str]:
    con = lake.connect()
    return con.sql("SELECT DISTINCT symbol FROM bars ORDER BY symbol LIMIT 2").pl()["symbol"].to_list()


def _predict(capsys, *args: str) -> tuple[int, dict]:
    rc = main(["predict", *args])
    out = capsys.readouterr().out.strip().splitlines()
    return rc, json.loads(out[-1]) if out else {}


def test_mixed_file_predicts_the_good_rows_and_reports_the_rest(lake, symbols, tmp_path, capsys):
    a, b = symbols
    src = tmp_path / "orders.csv"
    src.write_text(
        "order_id,symbol,side,quantity,date,algo,urgency,pov\n"
        f"P1,{a},buy,50000,2026-03-04,VWAP,HIGH,\n"  # line 2
        f"P2,{b},SELL,10000,2026-03-04,POV,,0.1\n"  # line 3
        f",{a},BUY,50000000,,,,\n"  # line 4: hypothetical, undated (today), far above 25% of ADV
        "P4,NOPE,BUY,100,2026-03-04,VWAP,,\n"  # line 5: unknown symbol
        f"P5,{a},HOLD,100,2026-03-04,VWAP,,\n"  # line 6: bad side
        f"P6,{a},BUY,-5,2026-03-04,VWAP,,\n"  # line 7: quantity <= 0
        f"P7,{a},BUY,100,2020-01-01,VWAP,,\n"  # line 8: no bars before that date
    )
    out = tmp_path / "pred.jsonl"
    rc, summary = _predict(capsys, "--orders", str(src), "--out", str(out), "--lake", str(lake.root))
    assert rc == 0
    assert (summary["read"], summary["predicted"], summary["rejected"]) == (7, 3, 4)
    assert summary["rejected_by_reason"] == {
        "no_market_context": 1, "non_positive_quantity": 1, "bad_side": 1, "unknown_symbol": 1,
    }  # fmt: skip
    assert summary["model"] == "impact-istar" and summary["model_version"] == "published"
    pred = pl.read_ndjson(out)
    assert pred["line"].to_list() == [2, 3, 4]
    assert pred["order_id"].to_list() == ["P1", "P2", None] and pred["hypothetical"].to_list() == [False, False, True]
    assert set(pred["event_type"]) == {"ExecutionCostPredictionEvent"}
    assert pred["pov"][1] == pytest.approx(0.1)  # the order's own participation is used
    assert pred["size_above_limit"].to_list() == (pred["quantity"] / pred["adv"] > 0.25).to_list() == [False, False,
                                                                                                        True]  # fmt: skip
    assert (pred["cost_lo_bps"] <= pred["expected_cost_bps"]).all() and (
        pred["expected_cost_bps"] <= pred["cost_hi_bps"]
    ).all()
    assert set(pred["model_version"]) == {"published"} and set(pred["interval_level"]) == {0.9}
    rej = pl.read_ndjson(expectation.rejected_path(out))
    assert dict(zip(rej["line"], rej["reason"], strict=True)) == {
        5: "unknown_symbol", 6: "bad_side", 7: "non_positive_quantity", 8: "no_market_context",
    }  # fmt: skip
    assert rej.filter(pl.col("line") == 7)["quantity"].item() == "-5"  # the raw value, as sent
    # the same file again: the same event ids (hash of the batch, model and lake version)
    out2 = tmp_path / "pred2.jsonl"
    _predict(capsys, "--orders", str(src), "--out", str(out2), "--lake", str(lake.root))
    assert pl.read_ndjson(out2)["event_id"].to_list() == pred["event_id"].to_list()


def test_parquet_in_csv_out_with_almgren(lake, symbols, tmp_path, capsys):
    src = tmp_path / "orders.parquet"
    pl.DataFrame({"symbol": symbols, "side": ["BUY", "SELL"], "quantity": [1000, 2000]}).write_parquet(src)
    out = tmp_path / "pred.csv"
    rc, summary = _predict(capsys, "--orders", str(src), "--out", str(out), "--model", "almgren",
                           "--lake", str(lake.root))  # fmt: skip
    assert rc == 0 and summary["predicted"] == 2 and summary["rejected_out"] is None
    pred = pl.read_csv(out)
    assert pred["line"].to_list() == [0, 1]  # Parquet rows are 0-based, as in the quarantine
    assert set(pred["model_name"]) == {"impact-almgren"} and set(pred["cost_measure"]) == {"market_impact"}
    assert not expectation.rejected_path(out).exists()


def test_nothing_predictable_exits_2_and_still_reports(lake, tmp_path, capsys):
    src = tmp_path / "orders.jsonl"
    src.write_text('{"symbol": "NOPE", "side": "BUY", "quantity": 10}\n{"symbol": "X", "side": "BUY", "quantity": 0}\n')
    out = tmp_path / "pred.parquet"
    rc, summary = _predict(capsys, "--orders", str(src), "--out", str(out), "--lake", str(lake.root))
    assert rc == 2 and summary["predicted"] == 0 and not out.exists()
    rej = pl.read_parquet(expectation.rejected_path(out))
    assert rej["reason"].to_list() == ["unknown_symbol", "non_positive_quantity"]


def test_bad_usage_exits_2(lake, symbols, tmp_path, capsys):
    src = tmp_path / "orders.csv"
    src.write_text(f"symbol,side,quantity\n{symbols[0]},BUY,100\n")
    assert main(["predict", "--orders", str(src), "--out", str(tmp_path / "p.xlsx"), "--lake", str(lake.root)]) == 2
    assert main(["predict", "--orders", str(tmp_path / "none.csv"), "--out", str(tmp_path / "p.csv"),
                 "--lake", str(lake.root)]) == 2  # fmt: skip
    # no learned model trained yet: said, not guessed
    assert main(["predict", "--orders", str(src), "--out", str(tmp_path / "p.csv"), "--model", "learned",
                 "--lake", str(lake.root)]) == 2  # fmt: skip
    assert "no learned model yet" in capsys.readouterr().err


def test_real_entry_point(lake, symbols, tmp_path, run_cli):
    src = tmp_path / "orders.csv"
    src.write_text(f"order_id,symbol,side,quantity\nR1,{symbols[0]},BUY,1000\n")
    out = tmp_path / "pred.jsonl"
    res = run_cli("predict", "--orders", str(src), "--out", str(out), "--lake", str(lake.root), timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["predicted"] == 1
    assert pl.read_ndjson(out)["order_id"].to_list() == ["R1"]
