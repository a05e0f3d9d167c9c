"""The live engine's status in the sidebar of every page (a fragment: refreshes itself without rerunning the page).

Reads ``<lake>/live/status.json`` only (a few hundred bytes); draws nothing on a lake where no engine ever ran."""

from __future__ import annotations

import streamlit as st

from analytics.live.engine import read_status
from ui import state


@st.fragment(run_every=2.0)
def _status(root: str) -> None:
    s = read_status(root)
    if s is None:
        return
    lag = "—" if s.get("lag_ms") is None else f"{s['lag_ms']:.0f} ms"
    st.caption(
        f"**Live engine** {'🟢 running' if s['running'] else '⚪ stopped'} · {s['events_per_s']:.0f} events/s · "
        f"lag {lag} · last event {s.get('last_event_ts') or '—'} · lake v{s.get('last_commit_version')}"
    )


def sidebar() -> None:
    root = state.lake().root
    with st.sidebar:
        _status(str(root))
