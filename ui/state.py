"""Cached access to the lake for the pages.

The DuckDB connection is cached per (lake root, lake version): an ingest bumps the version, so the next
page run opens a connection over the new snapshot and every ``st.cache_data`` entry keyed by the version
is naturally bypassed. Each query runs on its own cursor (DuckDB connections are not shared across threads).
"""

from __future__ import annotations

import duckdb
import streamlit as st

from analytics import catalog
from analytics.store import Lake, default_lake_path


@st.cache_resource(show_spinner=False)
def _lake(root: str) -> Lake:
    return Lake(root)


def lake() -> Lake:
    """The lake of ``ANALYTICS_LAKE`` (else ``data/lake``), resolved on every run so tests can switch it."""
    return _lake(str(default_lake_path()))


@st.cache_resource(show_spinner=False, max_entries=4)
def _connection(root: str, version: int) -> duckdb.DuckDBPyConnection:
    return Lake(root).connect(Lake(root).manifest(version))


def cursor() -> duckdb.DuckDBPyConnection:
    """A cursor over the current lake snapshot."""
    lk = lake()
    return _connection(str(lk.root), lk.version()).cursor()


def version() -> int:
    return lake().version()


@st.cache_data(show_spinner=False, max_entries=8)
def filter_options(root: str, version: int) -> dict:
    return catalog.filter_options(_connection(root, version).cursor())


def options() -> dict:
    lk = lake()
    return filter_options(str(lk.root), lk.version())
