"""The shared sidebar filters. Values live in ``st.session_state`` under ``f_*`` keys so every page (and a
link from one page to another) sees the same selection."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from analytics.filters import Filters
from ui import state

KEYS = ("portfolio", "symbol", "broker", "algo", "venue")


def sidebar() -> Filters:
    """Draw the filters in the sidebar and return the current selection."""
    opts = state.options()
    ss = st.session_state
    with st.sidebar:
        st.subheader("Filters")
        lo, hi = opts.get("start"), opts.get("end")
        if lo and hi:
            default = (ss.get("f_start", default_start(lo, hi)), ss.get("f_end", hi))
            picked = st.date_input("Date range", value=default, min_value=lo, max_value=hi, key="f_dates")
            if isinstance(picked, tuple | list) and len(picked) == 2:
                ss["f_start"], ss["f_end"] = picked
        for k in KEYS:
            st.multiselect(k.capitalize(), opts.get(k, []), key=f"f_{k}", placeholder="All")
        st.caption(f"Lake version {state.version()}")
    return current()


def default_start(lo: dt.date, hi: dt.date) -> dt.date:
    """The first day of the latest calendar month with data (not before ``lo``): every page opens on the desk's
    latest month, which the Overview compares with the month before; the date range widens it."""
    return max(lo, hi.replace(day=1))


def current() -> Filters:
    ss = st.session_state
    start, end = ss.get("f_start"), ss.get("f_end")
    return Filters(
        start=start if isinstance(start, dt.date) else None,
        end=end if isinstance(end, dt.date) else None,
        **{k: tuple(ss.get(f"f_{k}", []) or ()) for k in KEYS},
    )
