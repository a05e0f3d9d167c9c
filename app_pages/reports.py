"""Reports: build the period's report (the sidebar's dates and filters, the chosen sections) as a
self-contained HTML file or a PDF, with progress, and download it; save a definition to rerun it later."""

from __future__ import annotations

import dataclasses

import streamlit as st

from ui import filters, report, state

f = filters.current()
st.title("Reports")
st.caption(
    "The report uses the sidebar's dates and filters. HTML is one self-contained file (no network needed to "
    "open it); the PDF has the same content."
)
ss = st.session_state
saved, unreadable = report.scan_definitions(state.lake())
if unreadable:
    st.warning(
        "Saved report definitions that cannot be read (left as they are): "
        + "; ".join(f"{u['file']}: {u['problem']}" for u in unreadable)
    )


def _load_definition() -> None:
    """Callback (runs before the next script run, when widget values may still be set)."""
    d = next(x for x in saved if x.name == ss["rep_saved"])
    ss["rep_sections"] = list(d.sections)
    ss["rep_title"] = d.name
    saved_f = d.filters()
    if saved_f.start and saved_f.end:
        ss["f_start"], ss["f_end"] = saved_f.start, saved_f.end
        ss["f_dates"] = (saved_f.start, saved_f.end)
    for k in filters.KEYS:
        ss[f"f_{k}"] = list(getattr(d, k))


if saved:
    c1, c2 = st.columns([3, 1])
    c1.selectbox("Saved reports", [d.name for d in saved], key="rep_saved")
    c2.button("Load", on_click=_load_definition, key="rep_load", width="stretch")

sections = st.multiselect(
    "Sections",
    list(report.SECTIONS),
    default=list(report.SECTIONS),
    format_func=report.SECTIONS.get,
    key="rep_sections",
)
title = st.text_input("Title", value="Post-trade analytics report", key="rep_title")
fmt = st.radio("Format", ["pdf", "html"], horizontal=True, format_func=str.upper, key="rep_format")

if st.button("Build report", type="primary", disabled=not sections, key="rep_build"):
    with st.status("Building the report…", expanded=True) as status:
        bar = st.progress(0.0)
        rep = report.build(
            state.lake(), f, tuple(sections), title=title, progress=lambda x, m: bar.progress(min(x, 1.0), text=m)
        )
        bar.progress(1.0, text=f"rendering {fmt.upper()}")
        ss["rep_file"] = (report.render(rep, fmt), fmt, rep.source)
        status.update(label="Report ready", state="complete", expanded=False)

if "rep_file" in ss:
    data, kind, source = ss["rep_file"]
    st.success(f"{kind.upper()} report of {len(data) / 1024:,.0f} KB from {source}.")
    st.download_button(
        f"Download the {kind.upper()} report",
        data,
        file_name=f"report.{kind}",
        mime="application/pdf" if kind == "pdf" else "text/html",
        key="rep_download",
    )

with st.expander("Save this report definition"):
    name = st.text_input("Name", key="rep_name", placeholder="e.g. Monthly board pack")
    if st.button("Save", key="rep_save", disabled=not name.strip()):
        d = report.Definition(
            name=name.strip(),
            sections=tuple(sections),
            start=f.start.isoformat() if f.start else None,
            end=f.end.isoformat() if f.end else None,
            **{k: getattr(f, k) for k in filters.KEYS},
        )
        try:
            report.save_definition(state.lake(), d)
            st.success(f"Saved '{d.name}' ({', '.join(dataclasses.asdict(d)['sections'])}).")
        except ValueError as e:
            st.error(str(e))
