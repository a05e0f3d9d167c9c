"""Versioned datasets: event and manifest, reproducibility, no leak, quality vs the simulator's faults, diff,
model feedback, CLI."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import polars as pl
import pytest

from analytics import datasets, features
from analytics.ingest import ingest
from analytics.store import Lake

DAY1 = dt.date(2026, 3, 2)


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    """A small simulated desk with 2% faults, ingested (files kept for the fault scoring)."""
    from analytics.simulate import SimConfig, simulate

    d = tmp_path_factory.mktemp("ds")
    simulate(d / "files", SimConfig(days=2, symbols=8, orders_per_day=60, seed=13, faults=0.02, fills_per_order=10))
    lake = Lake(d / "lake")
    ingest([d / "files"], lake)
    return lake, d / "files"


@pytest.fixture(scope="module")
def built(desk):
    lake, files = desk
    return datasets.build(lake, "exec", faults_dir=files)


def test_event_and_manifest(desk, built):
    lake, _ = desk
    assert tuple(built) == datasets.EVENT_KEYS  # TrainingDatasetEvent: EVENTS.md keys exactly
    assert built["version"] == 1 and built["lake_version"] == lake.version()
    assert sum(built["label_counts"].values()) == built["rows"] > 100
    assert set(built["label_counts"]) == {"excellent", "good", "neutral", "poor", "bad"}
    assert built["quality_pct"] > 95
    m = datasets.manifest(lake, "exec@1")
    fd = m["quality"]["fault_detection"]
    assert fd["precision"] > 0.95 and fd["recall"] > 0.95 and fd["faults"] > 50
    data = datasets.load(lake, "exec")
    assert data.height == built["rows"]
    assert {f["column"] for f in built["features"]} <= set(data.columns)
    assert all(f["definition"] and f["unit"] and f["window"] for f in built["features"])
    fails = datasets.load(lake, "exec", "failures")
    assert fails.height == m["quality"]["candidate_rows"] - m["quality"]["passing_rows"]
    assert m["label_definition"]["thresholds"]["cuts"] == [-1.5, -0.5, 0.5, 1.5]


def test_no_feature_reads_data_at_or_after_its_timestamp(desk, built):
    d = datasets.load(desk[0], "exec")
    assert (d["quote_ts"] < d["arrival_ts"]).all() and (d["trade_ts"].drop_nulls() < d["arrival_ts"].drop_nulls()).all()
    assert (d["bar_day"] < d["arrival_ts"].dt.date()).all()
    dec = d.drop_nulls("dec_quote_ts")
    assert dec.height and (dec["dec_quote_ts"] < dec["decision_ts"]).all()


def test_building_twice_gives_the_same_hash_and_no_new_version(desk, built):
    lake, files = desk
    again = datasets.build(lake, "exec", faults_dir=files)
    assert again["content_hash"] == built["content_hash"] and again["version"] == 1
    other = datasets.build(lake, "exec_copy", faults_dir=files)
    assert datasets.versions(lake, "exec") == [1]
    assert other["content_hash"] == built["content_hash"]  # the name and write time are not in the hash


def test_day_by_day_contexts_give_the_same_rows(desk, built, monkeypatch):
    lake, files = desk
    monkeypatch.setattr(datasets, "DAYS_PER_RUN", 1)  # ticks loaded one probe day at a time
    assert datasets.build(lake, "exec_daily", faults_dir=files)["content_hash"] == built["content_hash"]


def test_same_hash_from_a_fresh_copy_of_the_lake(desk, built, tmp_path):
    lake, files = desk
    dst = tmp_path / "copy"
    shutil.copytree(lake.root, dst, ignore=shutil.ignore_patterns("derived", "datasets"))
    fresh = datasets.build(Lake(dst), "exec", faults_dir=files)  # TCA and features recomputed from scratch
    assert fresh["content_hash"] == built["content_hash"]


def test_versions_and_diff(desk, built):
    lake, files = desk
    day1 = datasets.build(lake, "grow", end=DAY1, faults_dir=files)
    both = datasets.build(lake, "grow", faults_dir=files)
    assert (day1["version"], both["version"]) == (1, 2)
    d = datasets.diff(lake, "grow@1", "grow@2")
    n1 = datasets.load(lake, "grow@1").height
    assert d["rows"] == [day1["rows"], both["rows"]]
    assert d["rows_removed"] == 0 and d["rows_added"] == both["rows"] - n1
    assert d["lake_version"] == [lake.version(), lake.version()] and not d["schema_changed"]
    same = datasets.diff(lake, "grow@2", "exec@1")
    assert same["same_content"] and same["rows_added"] == same["rows_removed"] == same["rows_changed"] == 0
    assert same["decisions"]["same_content"] and same["decisions"]["rows_changed"] == 0
    assert d["decisions"]["rows_removed"] == 0 and d["decisions"]["rows"][0] <= d["decisions"]["rows"][1]
    names = {(r["name"], r["version"]) for r in datasets.list_datasets(lake)}
    assert {("exec", 1), ("grow", 1), ("grow", 2)} <= names


def test_bad_refs_and_names(desk):
    lake, _ = desk
    with pytest.raises(datasets.DatasetError):
        datasets.manifest(lake, "nope")
    with pytest.raises(datasets.DatasetError):
        datasets.build(lake, "../x")
    assert datasets.parse_ref("a@v3") == ("a", 3) and datasets.parse_ref("a") == ("a", None)


def test_content_hash_sees_one_changed_value():
    df = pl.DataFrame({"order_id": ["a", "b"], "x": [1.0, 2.0]})
    assert datasets.content_hash(df) == datasets.content_hash(df.clone())
    assert datasets.content_hash(df) != datasets.content_hash(df.with_columns(pl.Series("x", [1.0, 2.0000001])))


def test_model_feedback_by_hand():
    ts = dt.datetime(2026, 3, 2, 15, tzinfo=dt.UTC)
    rows = pl.DataFrame(
        {
            "model_id": ["m-v1"] * 4 + [None],
            "decision_ts": [ts] * 5,
            "alpha_bps": [10.0, 20.0, 30.0, 40.0, 5.0],
            "realized_return_bps": [-5.0, 10.0, 20.0, None, 1.0],
            "decision_net_bps": [-6.0, 9.0, 19.0, None, 0.0],
        }
    )
    fb = datasets.model_feedback(rows)
    r = fb.row(0, named=True)
    assert fb.height == 1 and r["model_id"] == "m-v1" and r["period"] == dt.date(2026, 3, 1)
    assert (r["decisions"], r["pending"]) == (3, 1)  # the fourth has not reached its horizon
    assert r["expected_alpha_bps"] == pytest.approx(20.0) and r["realized_return_bps"] == pytest.approx(25 / 3)
    assert r["hit_rate"] == pytest.approx(2 / 3)  # -5 has the wrong sign
    assert r["ic"] == pytest.approx(1.0)  # ranks agree exactly
    # OLS slope of (-5, 10, 20) on (10, 20, 30): cov = 250 / var = 200 = 1.25
    assert r["calibration_slope"] == pytest.approx(1.25)
    ev = datasets.feedback_events(fb, "exec")[0]
    assert ev["event_type"] == "ModelPerformanceFeedbackEvent" and (ev["model_name"], ev["model_version"]) == (
        "m",
        "v1",
    )


def test_registry_and_dataset_columns_agree():
    cols = datasets.feature_columns()
    assert len(cols) == len(set(cols))
    assert all(c in cols for c in features.REGISTRY)


def test_cli_build_list_show_diff(desk, built, run_cli):
    lake, files = desk
    args = ("--lake", str(lake.root))
    r = run_cli("dataset", "build", "cli", "--faults-from", str(files), *args)
    assert r.returncode == 0, r.stderr
    ev = json.loads(r.stdout)
    assert ev["content_hash"] == built["content_hash"] and ev["name"] == "cli"
    r = run_cli("dataset", "list", *args)
    assert any(d["name"] == "cli" for d in json.loads(r.stdout))
    r = run_cli("dataset", "show", "cli@1", *args)
    shown = json.loads(r.stdout)
    assert shown["rows"] == built["rows"] and shown["decisions"]["rows"] == built["decisions"]["rows"]
    r = run_cli("dataset", "diff", "cli@1", "exec@1", *args)
    assert json.loads(r.stdout)["same_content"] is True
    r = run_cli("dataset", "show", "missing", *args)
    assert r.returncode == 2 and "no dataset" in r.stderr


def test_a_typed_name_never_becomes_a_path(tmp_path):
    from analytics.store import Lake

    lake = Lake(tmp_path / "lake")
    for bad in ("..", "../x", "a/b", ".hidden", ""):
        with pytest.raises(datasets.DatasetError):
            datasets.versions(lake, bad)


# --- decision rows ---------------------------------------------------------------------------------------------
def test_decision_rows_in_manifest_event_and_hash(desk, built):
    lake, _ = desk
    m = datasets.manifest(lake, "exec@1")
    d = m["decisions"]
    rows, fails = datasets.load(lake, "exec", "decisions"), datasets.load(lake, "exec", "decision_failures")
    assert built["decisions"] == {k: d[k] for k in datasets.DECISION_EVENT_KEYS}
    assert d["rows"] == rows.height > 100 and sum(d["label_counts"].values()) == rows.height
    assert d["quality"]["candidate_rows"] == rows.height + fails.height and d["quality_pct"] > 95
    assert set(d["excluded_by_rule"]) == {r.name for r in datasets.dataquality.DECISION_RULES}
    # every decision of the lake is a decision row or an excluded one, once
    lake_ids = lake.read("decisions")["decision_id"].unique()
    assert sorted(rows["decision_id"].to_list() + fails["decision_id"].to_list()) == sorted(lake_ids.to_list())
    # the version's content hash covers both tables; each table keeps its own hashes
    assert d["content_hash"] == datasets.content_hash(rows) and d["schema_hash"] == datasets.schema_hash(rows)
    assert m["order_rows_content_hash"] == datasets.content_hash(datasets.load(lake, "exec"))
    assert m["content_hash"] == datasets.combined_hash(
        {"data": m["order_rows_content_hash"], "decisions": d["content_hash"]}
    )
    assert rows.columns == datasets.decision_columns()
    assert (rows["quote_ts"] < rows["decision_ts"]).all() and (rows["bar_day"] < rows["decision_ts"].dt.date()).all()


def test_a_decision_is_probed_once_for_its_row_and_its_orders(desk, built):
    lake, _ = desk
    o = datasets.load(lake, "exec").select("decision_id", "dec_spread_bps", "dec_rv_bps_300s", "dec_quote_ts")
    d = datasets.load(lake, "exec", "decisions").select("decision_id", "spread_bps", "rv_bps_300s", "quote_ts")
    j = o.join(d, on="decision_id")
    assert j.height > 100
    assert (j["dec_spread_bps"] == j["spread_bps"]).all() and (j["dec_quote_ts"] == j["quote_ts"]).all()
    assert (j["dec_rv_bps_300s"] == j["rv_bps_300s"]).all()


def test_decision_rows_change_the_content_hash(desk, built, monkeypatch):
    lake, files = desk
    real = datasets.decision_table

    def drop_one(*a):
        ok, bad, rep = real(*a)
        return ok.tail(-1), bad, rep

    monkeypatch.setattr(datasets, "decision_table", drop_one)
    other = datasets.build(lake, "exec_fewer_decisions", faults_dir=files)
    m = datasets.manifest(lake, "exec_fewer_decisions")
    assert m["order_rows_content_hash"] == datasets.manifest(lake, "exec@1")["order_rows_content_hash"]
    assert other["content_hash"] != built["content_hash"]  # same order rows, one decision row fewer
    diff = datasets.diff(lake, "exec@1", "exec_fewer_decisions@1")
    assert not diff["same_content"] and diff["rows_changed"] == diff["rows_added"] == diff["rows_removed"] == 0
    assert diff["decisions"]["rows_removed"] == 1 and diff["decisions"]["rows_added"] == 0


def test_the_lake_own_faults_score_the_rules(desk, built, tmp_path):
    from analytics.demo import keep_faults

    lake, files = desk
    dst = tmp_path / "copy"
    shutil.copytree(lake.root, dst, ignore=shutil.ignore_patterns("datasets"))
    keep_faults(files, dst)  # what demo.py keeps beside the lake: the fault record and the rules' flags
    ev = datasets.build(Lake(dst), "exec")  # no faults_dir: the lake's own
    fd = datasets.manifest(Lake(dst), "exec")["quality"]["fault_detection"]
    ref = datasets.dataquality.fault_scores(files)
    assert "own simulator faults" in fd["source"]
    assert (fd["faults"], fd["flagged"], fd["true_positives"]) == (ref["faults"], ref["flagged"], ref["true_positives"])
    assert ev["content_hash"] == built["content_hash"]


def test_the_demo_lake_keeps_its_faults(tmp_path):
    from analytics.demo import build_demo_lake

    lake = Lake(tmp_path / "demo")
    build_demo_lake(lake, days=1, symbols=4, orders_per_day=30, faults=0.05)
    own = datasets.dataquality.lake_fault_scores(lake.root)
    assert own is not None and own["faults"] > 10 and own["recall"] == 1.0 and own["precision"] == 1.0
    assert (lake.root / "demo_faults.jsonl").exists() and not list(lake.root.glob(".*.tmp"))


def test_lake_path_and_relation_path_give_the_same_decision_rows(desk):
    lake, _ = desk
    _, chunked = datasets.all_candidates(lake)  # ticks read from pruned files a few days at a time
    con = lake.connect()
    try:
        whole = datasets.decision_contexts(con)  # the lake's views, all at once
    finally:
        con.close()
    cols = [c for c in whole.columns if c in chunked.columns]
    key = ["decision_ts", "decision_id"]
    assert whole.height == chunked.height > 100
    assert whole.select(cols).sort(key).equals(chunked.select(cols).sort(key))
