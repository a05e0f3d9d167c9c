"""One name per definition across the report: the raw arrival cost of a broker or algo is the same figure in the
TCA section and in the execution quality section (the quality section adds the adjusted cost beside it)."""

from __future__ import annotations

import pytest

from analytics.filters import Filters
from ui import report


def test_tca_and_quality_sections_give_one_raw_cost_per_algo(sim_lake):
    rep = report.build(sim_lake, Filters(), ("tca", "quality"))
    tables = {title: df for s in rep.sections for title, df in s.tables}
    for dim in ("algo", "broker"):
        tca_t = next(df for t, df in tables.items() if t.startswith(f"Arrival cost by {dim}"))
        q_t = tables[f"{dim.capitalize()}s, difficulty-adjusted arrival cost (bps)"]
        assert "raw_bps" not in q_t.columns
        raw = dict(zip(tca_t[dim], tca_t["arrival_cost_bps"], strict=True))
        assert q_t.height > 1
        for r in q_t.to_dicts():
            assert r["arrival_cost_bps"] == pytest.approx(raw[r["key"]], rel=1e-12)
    doc = report.to_html(rep)
    assert "one name per definition" in doc and "nbbo_at" in doc
