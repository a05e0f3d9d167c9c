"""AppTest of the Training data page: build a dataset from the page, then browse its report."""

from __future__ import annotations

import shutil

import pytest

from analytics import datasets
from analytics.store import Lake
from tests.pages.conftest import frame_with, open_app

PAGE = "app_pages/training_data.py"


@pytest.fixture(scope="module")
def td_lake(sim_lake, tmp_path_factory) -> Lake:
    """A private copy of the shared simulated lake (the page writes datasets under the lake root)."""
    dst = tmp_path_factory.mktemp("td") / "lake"
    shutil.copytree(sim_lake.root, dst)
    return Lake(dst)


@pytest.fixture
def td_env(td_lake, monkeypatch) -> Lake:
    monkeypatch.setenv("ANALYTICS_LAKE", str(td_lake.root))
    return td_lake


def _submit(at):
    return next(b for b in at.button if b.label == "Build dataset")


def test_build_from_the_page_then_browse(td_env):
    at = open_app(PAGE)
    assert not at.exception
    assert at.title[0].value == "Training data"
    if not datasets.versions(td_env, "execution"):
        assert any("No dataset yet" in i.value for i in at.info)
    at.text_input(key="td_name").set_value("execution")
    _submit(at).click().run()
    assert not at.exception
    m = datasets.manifest(td_env, "execution")
    status = at.get("status")[0]
    assert status.label.startswith(f"execution@{m['version']}") and status.state == "complete"
    assert at.get("progress"), "the build shows its progress"
    assert at.selectbox(key="td_ref").value == f"execution@{m['version']}"
    # The listing shows the version with its row count; the headline metrics are the manifest's figures.
    listing = frame_with(at, "name", "version", "rows", "quality_pct")
    assert listing.loc[listing["name"] == "execution", "rows"].iloc[0] == m["rows"]
    metrics = {x.label: x.value for x in at.metric}
    assert metrics["Rows"] == f"{m['rows']:,}"
    assert metrics["Quality"] == f"{m['quality_pct']:.2f}%"
    assert metrics["Lake version"] == f"lake@{td_env.version()}"
    assert float(metrics["Rule recall"].rstrip("%")) > 95
    # The quality report lists every rule with its failing count, and the failing rows table is there.
    rules = frame_with(at, "name", "category", "definition", "rows_failing")
    assert set(rules["name"]) == {r.name for r in datasets.dataquality.DATASET_RULES}
    frame_with(at, "reasons", "order_id")
    frame_with(at, "fault", "faults", "caught", "recall")
    frame_with(at, "model_id", "period")
    assert at.get("vega_lite_chart"), "label, distribution and correlation charts are drawn"
    assert status.label.endswith(f"{m['decisions']['rows']:,} decision rows")


def test_decision_rows_are_browsable(td_env):
    at = open_app(PAGE)
    if not datasets.versions(td_env, "execution"):
        _submit(at).click().run()
    m = datasets.manifest(td_env, "execution")
    at.segmented_control(key="td_table").set_value("decisions").run()
    assert not at.exception
    d = m["decisions"]
    metrics = {x.label: x.value for x in at.metric}
    assert metrics["Rows"] == f"{d['rows']:,}" and metrics["Quality"] == f"{d['quality_pct']:.2f}%"
    # The rules table is the decision rules', the label table the decision outcome's, the schema the decision rows'.
    rules = frame_with(at, "name", "category", "definition", "rows_failing")
    assert set(rules["name"]) == {r.name for r in datasets.dataquality.DECISION_RULES}
    labels = frame_with(at, "outcome", "label", "rows")
    assert set(labels["outcome"]) == {"decision"} and labels["rows"].sum() == d["rows"]
    schema = frame_with(at, "column", "dtype")
    assert {"decision_id", "cost_source", "decision_label", "spread_bps"} <= set(schema["column"])
    at.selectbox(key="td_feature").select("spread_bps").run()
    assert not at.exception


def test_rebuild_is_unchanged_and_feature_picker_works(td_env):
    at = open_app(PAGE)
    _submit(at).click().run()
    before = datasets.versions(td_env, "execution")
    _submit(at).click().run()
    assert not at.exception
    assert datasets.versions(td_env, "execution") == before, "same lake version and code: no new version"
    assert any("unchanged, same content hash" in s.label for s in at.get("status"))
    at.selectbox(key="td_feature").select("rv_bps_300s").run()
    assert not at.exception


def test_bad_name_is_reported_not_raised(td_env):
    at = open_app(PAGE)
    at.text_input(key="td_name").set_value("../evil")
    _submit(at).click().run()
    assert not at.exception
    assert not (td_env.root / "evil").exists()
    assert "Build failed" in at.get("status")[0].label
