"""AppTest of the Cost models page: estimates from the published models before any training, the frontier,
drift, and a retrain from the page that registers a champion the estimates then use."""

from __future__ import annotations

import shutil

import pytest

from analytics import impact_models as im
from analytics import tracking
from analytics.store import Lake
from tests.pages.conftest import frame_with, open_app

PAGE = "app_pages/models.py"


@pytest.fixture
def own_lake(sim_lake, tmp_path, monkeypatch) -> Lake:
    """A copy of the simulated lake (training writes MLflow runs under the lake)."""
    lake = Lake(shutil.copytree(sim_lake.root, tmp_path / "lake"))
    monkeypatch.setenv("ANALYTICS_LAKE", str(lake.root))
    return lake


def test_estimates_frontier_and_drift_before_any_training(own_lake):
    at = open_app(PAGE)
    assert not at.exception
    assert at.title[0].value == "Cost models"
    est = frame_with(at, "model", "expected_cost_bps", "lo_bps")
    assert est["model"].to_list() == ["istar", "almgren"] and set(est["version"]) == {"published"}
    # I-Star with the published parameters, by the module's own hand-checked formula at the page's inputs
    ref = im.pretrade_estimate("istar", im.pl.DataFrame({"size_adv": [0.05], "sigma_daily": [0.02], "pov": [0.10],
                                                         "algo": [est["model"][0]]}))  # fmt: skip
    assert est["expected_cost_bps"][0] == pytest.approx(ref["expected_cost_bps"][0])
    at.number_input(key="m_size").set_value(20.0).run()
    bigger = frame_with(at, "model", "expected_cost_bps", "lo_bps")
    assert (bigger["expected_cost_bps"] > est["expected_cost_bps"]).all()  # a bigger order costs more
    drift = frame_with(at, "period_start", "bias_bps", "retrain")
    assert drift["n"].sum() > 0
    assert any("Recommended: trade over" in m.value for m in at.markdown)


def test_retrain_from_the_page_promotes_a_champion(own_lake):
    at = open_app(PAGE)
    at.selectbox(key="m_train_model").select("istar")
    at.button(key="m_retrain").click().run()
    assert not at.exception
    _, version = tracking.load_champion(own_lake, "istar")
    assert version is not None
    est = frame_with(at, "model", "expected_cost_bps", "lo_bps")
    assert est.loc[est["model"] == "istar", "version"].iloc[0] == version  # the estimate now uses it
    runs = frame_with(at, "run_id", "model")
    assert len(runs) == 1


def test_pretrade_page_prices_every_algo_and_recommends(own_lake):
    at = open_app("app_pages/pretrade.py")
    assert not at.exception
    assert at.title[0].value == "Pre-trade estimate"
    est = frame_with(at, "algo", "istar_bps", "almgren_bps", "pov")
    assert len(est) >= 3  # one row per algo of the lake
    assert any("Lowest expected cost" in m.value for m in at.markdown)
    at.number_input(key="pt_qty").set_value(500_000).run()
    bigger = frame_with(at, "algo", "istar_bps", "almgren_bps", "pov")
    assert (bigger["istar_bps"].to_numpy() > est["istar_bps"].to_numpy()).all()
