"""Issue 16: one realised-vs-expected figure (filled-notional weighted, realised − expected, + = worse than
expected) on the Overview, the Cost models page and the report, naming the model version that priced it; the
Overview says when the champion changed."""

from __future__ import annotations

import shutil

import pytest

from analytics import impact_models as im
from analytics import registry, tca
from analytics.filters import Filters
from analytics.store import Lake
from tests.pages.conftest import open_app


@pytest.fixture
def own_lake(sim_lake, tmp_path, monkeypatch) -> Lake:
    lake = Lake(shutil.copytree(sim_lake.root, tmp_path / "lake"))
    monkeypatch.setenv("ANALYTICS_LAKE", str(lake.root))
    return lake


def _by_hand(lake: Lake, f: Filters, fit: im.ImpactFit) -> float:
    """realised − expected over the filled orders, filled-notional weighted, from the TCA rows and the model's
    formula directly (not expectation.py)."""
    tf = im.training_frame(tca.load_orders(lake, lake.connect(), f))
    exp = im.market_impact_bps(fit, tf["exec_adv"], tf["sigma_daily"], tf["pov"], tf["algo"].to_list())
    w = tf["filled_notional"].to_numpy()
    return float(((tf["impact_cost_bps"].to_numpy() - exp) * w).sum() / w.sum())


def test_overview_models_page_and_report_show_one_figure_under_a_named_champion(own_lake):
    fit = im.published("istar")  # registered as champion v5: its parameters, a version to name
    registry.write(own_lake, {"impact-istar": ("5", "run-x", fit.to_json())})
    at = open_app()
    assert not at.exception
    start, end = at.session_state["f_dates"]  # the sidebar's dates (the latest month with data)
    f = Filters(start=start, end=end)
    gap = _by_hand(own_lake, f, fit)
    expected = next(m for m in at.metric if m.label.startswith("Expected (I-Star"))
    assert expected.label == "Expected (I-Star v5)"
    assert expected.delta == f"{gap:+.1f} bps realised − expected"
    assert any("Champion v5 since" in c.value and "replaced the published parameters" in c.value for c in at.caption)
    at.switch_page("app_pages/models.py").run()
    assert not at.exception
    assert next(m.value for m in at.metric if m.label == "Realised − expected") == f"{gap:+.1f} bps"
    assert any(m.label == "Expected (I-Star 5)" for m in at.metric)
    from ui import report

    rep = report.build(own_lake, f, ("summary", "models"))
    text = " ".join(p for s in rep.sections for p in s.paragraphs)
    assert f"realised − expected {gap:+.1f} bps" in text and "champion v5" in text and "I-Star 5" in text
