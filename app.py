"""Post-trade analytics: the Streamlit entry point.

Builds the navigation and the shared sidebar filters; on the very first run against an empty lake it
builds the demo lake (simulated desk, with faults, through the normal ingest) before opening.
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import duckdb
import streamlit as st

from analytics.demo import ensure_demo_lake
from analytics.store import LakeCorrupt
from ui import filters, live_status, state

st.set_page_config(page_title="Post-trade analytics", page_icon="📈", layout="wide")


def _first_run() -> None:
    lake = state.lake()
    try:
        if lake.exists():  # a missing or corrupt CURRENT is LakeCorrupt, never an "empty" lake to rebuild
            return
    except LakeCorrupt as e:
        st.error(f"The lake cannot be read: {e}")
        st.stop()
    st.title("Post-trade analytics")
    st.info("The lake is empty: building a demo desk (simulated orders, fills and market data) for you.")
    bar = st.progress(0.0, text="starting")
    ensure_demo_lake(lake, progress=lambda f, m: bar.progress(min(max(f, 0.0), 1.0), text=m))
    st.cache_data.clear()
    st.rerun()


_first_run()

pages = {
    "Desk": [
        st.Page("app_pages/overview.py", title="Overview", icon="🧭", url_path="overview", default=True),
        st.Page("app_pages/reports.py", title="Reports", icon="📄", url_path="reports"),
    ],
    "Trading": [
        st.Page("app_pages/tca.py", title="TCA", icon="💸", url_path="tca"),
        st.Page("app_pages/quality.py", title="Execution quality", icon="🏁", url_path="quality"),
        st.Page("app_pages/impact.py", title="Impact & attribution", icon="📉", url_path="impact"),
        st.Page("app_pages/live.py", title="Live", icon="⏱️", url_path="live"),
    ],
    "Portfolio": [
        st.Page("app_pages/attribution.py", title="Attribution", icon="📊", url_path="attribution"),
    ],
    "Data": [
        st.Page("app_pages/data.py", title="Data", icon="🗄️", url_path="data"),
    ],
    "Models": [
        st.Page("app_pages/training_data.py", title="Training data", icon="🧪", url_path="training-data"),
        st.Page("app_pages/models.py", title="Cost models", icon="🧠", url_path="models"),
        st.Page("app_pages/pretrade.py", title="Pre-trade", icon="🎯", url_path="pretrade"),
    ],
}
nav = st.navigation(pages)
try:
    filters.sidebar()
    live_status.sidebar()
    nav.run()
except LakeCorrupt as e:  # a missing, short or changed data file: one clear message naming it and the fix
    st.error(f"The lake cannot be read: {e}")
except duckdb.IOException as e:  # a file removed under a cached connection: name it when the lake can
    st.error(f"The lake cannot be read: {state.lake().diagnose() or e}")
