"""AppTest of the Data page over a small hand-made lake."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.pages.conftest import frame_with, open_app


def _app() -> AppTest:
    return open_app("app_pages/data.py")


def test_data_page_shows_tables_version_and_quarantine(app_env):
    at = _app()
    assert not at.exception
    assert at.title[0].value == "Data"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Lake version"] == "1"
    assert metrics["Fills"] == "1"
    assert metrics["Quarantined rows"] == "3"
    tables = frame_with(at, "table", "rows", "files")
    fills = tables[tables["table"] == "fills"].iloc[0]
    assert fills["rows"] == 1 and fills["start"] == "2026-03-02"
    rows = frame_with(at, "raw", "reason")
    assert sorted(rows["reason"]) == ["crossed_quote", "naive_timestamp", "unknown_order"]
    # The raw row travels with the reason.
    naive = rows[rows["reason"] == "naive_timestamp"].iloc[0]
    assert '"event_id": "f2"' in naive["raw"] or '"event_id":"f2"' in naive["raw"]
    assert naive["line"] == 3


def test_quarantine_filter_by_reason(app_env):
    at = _app()
    at.multiselect(key="q_reason").select("unknown_order").run()
    assert not at.exception
    rows = frame_with(at, "raw", "reason")
    assert list(rows["reason"]) == ["unknown_order"]
    assert "O7" in rows.iloc[0]["detail"]


def test_recent_ingests_lists_the_batch(app_env):
    at = _app()
    ing = frame_with(at, "batch_id", "version")
    assert len(ing) == 1
    assert ing.iloc[0]["read"] == 5 and ing.iloc[0]["quarantined"] == 3 and ing.iloc[0]["accepted"] == 2


def test_sidebar_filters_offer_lake_values(app_env):
    at = _app()
    assert at.multiselect(key="f_broker").options == ["Northbridge"]
    assert at.multiselect(key="f_venue").options == ["XNAS"]
