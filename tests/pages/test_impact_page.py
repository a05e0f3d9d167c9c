"""AppTest of the Impact & attribution page over a small simulated desk."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from analytics import cost_attribution, impact, tca
from tests.pages.conftest import frame_with, open_app


def _app() -> AppTest:
    return open_app("app_pages/impact.py")


def test_impact_page_fit_and_buckets(sim_env):
    at = _app()
    assert not at.exception
    assert at.title[0].value == "Impact & cost attribution"
    orders = tca.results(sim_env, sim_env.connect()).pl()
    fit = impact.fit_sqrt_law(orders.drop_nulls("arrival_ts"))
    text = " ".join(m.value for m in at.markdown)
    assert f"**{fit.coefficient:.2f}**" in text
    b = frame_with(at, "bucket", "orders", "arrival_cost_bps")
    assert b["orders"].sum() == orders.drop_nulls("participation_rate").height


@pytest.mark.parametrize("y", ["Impact during the order", "Permanent impact"])
def test_switching_cost_measure(sim_env, y):
    at = _app()
    at.radio(key="impact_y").set_value(y).run()
    assert not at.exception


def test_attribution_sums_and_recommendations_are_honest(sim_env):
    at = _app()
    at.selectbox(key="attr_dim").select("broker").run()
    d = frame_with(at, "broker", "spread_bps", "total_bps")
    parts = sum(d[f"{k}_bps"] for k in cost_attribution.COMPONENTS)
    assert (parts - d["total_bps"]).abs().max() < 1e-6
    # 160 orders cannot support a routing claim at 30 orders a bucket: the page must say so.
    assert any("cannot support" in i.value for i in at.info) or len(at.success) > 0
