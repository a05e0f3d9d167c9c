"""AppTest of the Overview (landing) page: its figures equal the CLI's for the same filters."""

from __future__ import annotations

import json

from analytics import tca
from analytics.__main__ import main
from analytics.filters import Filters
from tests.pages.conftest import open_app
from ui import charts


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_overview_is_the_landing_page_and_equals_the_cli(sim_env, tmp_path, capsys):
    at = open_app()
    assert not at.exception
    assert at.title[0].value == "Desk overview"
    assert main(["tca", "--lake", str(sim_env.root), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert _metric(at, "Orders") == f"{cli['orders']:,}"
    assert _metric(at, "Implementation shortfall") == f"{cli['is_total_bps']:+.1f} bps"
    assert _metric(at, "Traded notional") == charts.compact(cli["filled_notional"])
    summary = next(m.value for m in at.markdown if "The desk traded" in m.value)
    assert f"{cli['orders']:,} orders" in summary and "Data quality" in summary


def test_overview_follows_the_sidebar_filters(sim_env):
    at = open_app()
    broker = at.multiselect(key="f_broker").options[0]
    at.multiselect(key="f_broker").select(broker).run()
    assert not at.exception
    rows = tca.load_orders(sim_env, sim_env.connect(), Filters(broker=(broker,)))
    assert _metric(at, "Orders") == f"{rows.height:,}"


def test_overview_says_what_to_do_on_an_empty_selection(sim_env):
    at = open_app()
    rows = tca.load_orders(sim_env, sim_env.connect(), Filters())
    # a (symbol, broker) pair without orders in the simulated desk (its seed is fixed)
    pairs = {(s, b) for s in rows["symbol"].unique() for b in rows["broker"].unique()}
    empty = sorted(pairs - set(rows.select("symbol", "broker").unique().iter_rows()))
    assert empty, "the fixture desk has an order for every symbol and broker"
    symbol, broker = empty[0]
    at.multiselect(key="f_symbol").select(symbol)
    at.multiselect(key="f_broker").select(broker).run()
    assert not at.exception
    assert any("No orders in this range" in i.value for i in at.info)
    assert not at.metric


def test_a_fresh_process_draws_the_overview_from_the_stored_figures(sim_env):
    """The first visit stores the figures of (lake version, filters, champion) under derived/; a later process
    (caches cleared) reads them instead of reloading the orders. Proof: a figure planted in the stored file is
    what the page shows."""
    import streamlit as st

    from analytics import overview

    open_app()
    days = tca.load_orders(sim_env, sim_env.connect(), Filters())["arrival_ts"].dt.date()
    # the sidebar's default is the lake's whole date range; no training in this lake: published I-Star
    key = overview.figures_key(Filters(start=days.min(), end=days.max()), None)
    path = overview._figures_dir(sim_env, sim_env.version()) / f"{key}.json"
    original = path.read_text()
    try:
        figs = overview.stored_figures(sim_env, sim_env.version(), key)
        assert figs["headline"]["orders"] == days.len()
        figs["headline"]["orders"] = 123_456_789
        overview.store_figures(sim_env, sim_env.version(), key, figs)
        st.cache_data.clear()
        st.cache_resource.clear()
        at = open_app()
        assert not at.exception
        assert _metric(at, "Orders") == "123,456,789"
    finally:  # the lake is shared by the session's tests
        path.write_text(original)
        st.cache_data.clear()


def test_pages_open_on_the_latest_month_of_data():
    import datetime as dt

    from ui.filters import default_start

    # a year of data: the latest calendar month; a lake shorter than its month: from its first day
    assert default_start(dt.date(2025, 9, 1), dt.date(2026, 8, 28)) == dt.date(2026, 8, 1)
    assert default_start(dt.date(2026, 3, 2), dt.date(2026, 3, 3)) == dt.date(2026, 3, 2)
    assert default_start(dt.date(2026, 2, 20), dt.date(2026, 3, 3)) == dt.date(2026, 3, 1)
