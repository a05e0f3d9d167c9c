"""Overview: the desk's period on one screen against the previous period, the best and worst choices, the
lake's data quality and a written summary; every tile links to the page with the detail (the sidebar
filters travel with the session)."""

from __future__ import annotations

import polars as pl
import streamlit as st

from analytics import overview, registry
from analytics.conventions import BPS
from ui import charts, filters, state

f = filters.current()
st.title("Desk overview")
period = f"{f.start} to {f.end}" if f.start and f.end else "all dates"
st.caption(f"{period} · {charts.COST_NOTE} Changes are against the equally long period just before.")
figs = state.overview_figures(f)
head = figs["headline"]
if not head.get("orders"):
    st.info("No orders in this range: widen the dates or clear filters in the sidebar.")
    st.stop()

board, books, expect, expect_version = figs["board"], figs["portfolios"], figs["expectation"], figs["champion"]
status = overview.data_status(state.lake_summary())


def _pct(x: float | None) -> str | None:
    return None if x is None else f"{100 * x:+.1f}%"


def _d_bps(x: float | None) -> str | None:
    return None if x is None else f"{x:+.1f} bps"


c = st.columns(4)
c[0].metric("Traded notional", charts.compact(head["filled_notional"]), _pct(head["filled_notional_change"]))
c[1].metric("Orders", f"{head['orders']:,}", _pct(head["orders_change"]), help=f"{head['fills']:,} fills")
c[2].metric(
    "Implementation shortfall",
    _d_bps(head["is_total_bps"]) or "—",  # no priced order in the period (no quote at arrival): no figure
    _d_bps(head["is_total_bps_change"]),
    delta_color="inverse",
    help="Σ IS cost / Σ paper notional (Perold); a rise is a cost increase",
)
c[3].metric(
    "IS in currency", charts.compact(head["is_total_cost"]), _pct(head["is_total_cost_change"]), delta_color="inverse"
)
st.page_link("app_pages/tca.py", label="Costs in detail: TCA", icon="💸")
if expect.get("orders"):
    version = expect.get("model_version") or expect_version or "published"
    e = st.columns(3)
    e[0].metric(
        "Realised impact", f"{expect['realised_bps']:+.1f} bps", help="fills' mids vs arrival, notional-weighted"
    )
    e[1].metric(
        f"Expected (I-Star {'published' if version == 'published' else 'v' + version})",
        f"{expect['expected_bps']:+.1f} bps",
        f"{expect['gap_bps']:+.1f} bps realised − expected",
        delta_color="inverse",
        help=(
            f"95% interval {expect['gap_lo_bps']:+.1f} to {expect['gap_hi_bps']:+.1f} bps; "
            if expect.get("gap_lo_bps") is not None
            else ""
        )
        + "+ = worse than expected (notional-weighted)",
    )
    e[2].metric("Saving vs expectation", charts.compact(expect["saving"]), help="(expected − realised) × notional")
    note = registry.champion_note(state.lake(), "impact-istar")
    st.caption(
        (note + " " if note else "")
        + "These figures move when the champion changes: they are priced by the version named above."
    )
    st.page_link("app_pages/models.py", label="Models and drift: Cost models", icon="🧠")

st.subheader("Summary")
st.markdown("\n".join(f"- {s}" for s in overview.narrative(head, board, status, books, expect)))

st.subheader("Best and worst (arrival cost, 95% intervals)")
st.caption("Brokers and algos difficulty-adjusted (expected cost on the desk's average order mix); venues raw.")
cols = st.columns(len(board))
for col, b in zip(cols, board, strict=True):
    with col.container(border=True):
        st.markdown(f"**{b['dimension'].capitalize()}** · {b.get('basis', 'raw')}")
        if not b["best"]:
            st.caption("Too few orders to rank.")
            continue
        m = "arrival_cost_bps"
        st.markdown(f"Cheapest: **{b['best']['key']}** {b['best'][m]:+.1f} bps")
        st.markdown(f"Costliest: **{b['worst']['key']}** {b['worst'][m]:+.1f} bps")
        st.caption("Intervals do not overlap." if b["separated"] else "Intervals overlap: not conclusive.")
st.page_link("app_pages/quality.py", label="Leaderboards with intervals: Execution quality", icon="🏁")

if books.height:
    st.subheader("Portfolios: active return and its largest effect")
    st.dataframe(
        books.with_columns((pl.col(c) * BPS).alias(f"{c}_bps") for c in ("active_return", "top_value")).select(
            "portfolio_id",
            "benchmark_id",
            "portfolio_return",
            "benchmark_return",
            "active_return_bps",
            "top_group",
            "top_effect",
            "top_value_bps",
        ),
        hide_index=True,
        width="stretch",
        column_config={
            "portfolio_return": st.column_config.NumberColumn("Portfolio", format="percent"),
            "benchmark_return": st.column_config.NumberColumn("Benchmark", format="percent"),
            "active_return_bps": st.column_config.NumberColumn("Active (bps)", format="%+.0f"),
            "top_value_bps": st.column_config.NumberColumn("Largest effect (bps)", format="%+.0f"),
        },
        key="ov_books",
    )
    st.page_link("app_pages/attribution.py", label="Where it came from: Attribution", icon="📊")

left, right = st.columns(2)
day = figs["daily"]
charts.show(charts.trend(day, "is_total_bps", "IS (bps)"), left)
charts.show(charts.trend(day, "filled_notional", "Traded notional"), right)

with st.container(border=True):
    icon = {"ok": "✅", "check": "⚠️", "poor": "❌"}[status["status"]]
    st.markdown(
        f"{icon} **Data quality: {status['status']}** · {status['quarantined']:,} rows quarantined "
        f"({100 * status['quarantined_share']:.2f}% of input) · lake version {status['version']}"
    )
    st.page_link("app_pages/data.py", label="Quarantine and ingest history: Data", icon="🗄️")
    for d in state.dataset_status():
        mark = "✅" if d["meets_promise"] else "❌"
        st.markdown(
            f"{mark} Dataset **{d['name']}@{d['version']}**: {d['rows']:,} rows, quality {d['quality_pct']:.2f}%"
        )
    st.page_link("app_pages/training_data.py", label="Datasets and their quality: Training data", icon="🧪")
state.prewarm_orders(f)  # the next page's orders load while the figures are read
