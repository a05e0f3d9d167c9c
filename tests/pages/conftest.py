"""Fixtures for the page tests: a small hand-made lake, pointed at through ANALYTICS_LAKE."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analytics.ingest import ingest
from analytics.store import Lake
from analytics.validate import Limits

ROOT = Path(__file__).resolve().parents[2]

EVENTS = [
    {
        "event_type": "OrderEvent",
        "event_id": "o1",
        "order_id": "O1",
        "ts": "2026-03-02T14:30:00Z",
        "action": "NEW",
        "symbol": "ABC",
        "side": "BUY",
        "quantity": 1000,
        "broker": "Northbridge",
        "algo": "VWAP",
    },
    {
        "event_type": "TradeExecutedEvent",
        "event_id": "f1",
        "fill_id": "F1",
        "order_id": "O1",
        "ts": "2026-03-02T14:31:00Z",
        "symbol": "ABC",
        "side": "BUY",
        "quantity": 400,
        "price": 50.01,
        "venue": "XNAS",
    },
    {
        "event_type": "TradeExecutedEvent",
        "event_id": "f2",
        "fill_id": "F2",
        "order_id": "O1",
        "ts": "2026-03-02T14:32:00",
        "symbol": "ABC",
        "side": "BUY",
        "quantity": 600,
        "price": 50.02,
        "venue": "XNAS",
    },
    {
        "event_type": "TradeExecutedEvent",
        "event_id": "f3",
        "fill_id": "F3",
        "order_id": "O7",
        "ts": "2026-03-02T14:33:00Z",
        "symbol": "ABC",
        "side": "BUY",
        "quantity": 600,
        "price": 50.02,
        "venue": "XNAS",
    },
    {
        "event_type": "MarketDataEvent",
        "kind": "quote",
        "symbol": "ABC",
        "ts": "2026-03-02T14:30:00Z",
        "bid": 50.05,
        "ask": 50.00,
        "bid_size": 100,
        "ask_size": 100,
    },
]


@pytest.fixture(scope="session")
def small_lake(tmp_path_factory) -> Lake:
    """Lake with one order, one good fill and three quarantined rows (naive ts, unknown order, crossed)."""
    d = tmp_path_factory.mktemp("pages")
    src = d / "events.jsonl"
    src.write_text("\n".join(json.dumps(e) for e in EVENTS) + "\n")
    lake = Lake(d / "lake")
    res = ingest([src], lake, limits=Limits(hold_limit=dt.timedelta(0)))  # the unknown order: quarantined now
    assert res.tables["fills"].quarantined == 2
    return lake


@pytest.fixture
def app_env(small_lake, monkeypatch) -> Lake:
    monkeypatch.setenv("ANALYTICS_LAKE", str(small_lake.root))
    return small_lake


@pytest.fixture
def sim_env(sim_lake, monkeypatch) -> Lake:
    monkeypatch.setenv("ANALYTICS_LAKE", str(sim_lake.root))
    return sim_lake


def open_app(page: str | None = None) -> AppTest:
    """Run app.py (the Overview landing page), then switch to ``page`` (e.g. "app_pages/data.py") if given."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    if page:
        at.switch_page(page).run()
    return at


def frame_with(at: AppTest, *columns: str):
    """The first dataframe showing all ``columns`` (AppTest exposes no keys for dataframes)."""
    for d in at.dataframe:
        df = d.value
        if all(c in df.columns for c in columns):
            return df
    raise AssertionError(f"no dataframe with columns {columns}")
