"""Impact & attribution: temporary vs permanent impact, the square-root law fitted to the desk's orders, the
IS decomposition by slice, and the recommendations the data can support."""

from __future__ import annotations

import polars as pl
import streamlit as st

from ui import charts, filters, state

f = filters.current()
st.title("Impact & cost attribution")
st.caption(charts.COST_NOTE)
orders = state.tca_orders(f)
if orders.is_empty():
    st.info("No orders in this range: widen the dates or clear filters in the sidebar.")
    st.stop()

tab_impact, tab_attr, tab_rec = st.tabs(["Market impact", "Cost attribution", "Recommendations"])
with tab_impact:
    y_label = st.radio(
        "Cost measure",
        ["Arrival cost", "Impact during the order", "Permanent impact"],
        horizontal=True,
        key="impact_y",
    )
    y = {"Arrival cost": "arrival_cost_bps", "Impact during the order": "impact_during_bps",
         "Permanent impact": "permanent_impact_bps"}[y_label]  # fmt: skip
    by = st.radio("Bucket by", ["participation_rate", "size_pct_adv"], horizontal=True, key="impact_by")
    fit = state.on_orders(f, "fit_sqrt_law", y)
    b = state.on_orders(f, "buckets", by, (y, "permanent_impact_bps", "temporary_impact_bps"))
    left, right = st.columns(2)
    charts.show(charts.law_fit(b, fit, y, f"{y_label} (bps)"), left)
    if fit:
        left.markdown(
            f"**Square-root law**: {y_label.lower()} ≈ {fit.intercept:.1f} + **{fit.coefficient:.2f}** "
            f"(95% CI {fit.lo:.2f}–{fit.hi:.2f}) × σ·√(size/ADV), n = {fit.n:,} orders, R² = {fit.r2:.3f}"
        )
    else:
        left.info("Fewer than 30 orders with volatility and ADV: no fit.")
    charts.show(charts.reversion(state.on_orders(f, "reversion_curve")), right)
    right.caption("After the order ends the mid gives back its temporary impact; what stays after 30 min is permanent.")
    st.dataframe(b, hide_index=True, width="stretch", column_config=charts.number_formats(b), key="impact_buckets_df")
    st.download_button(
        "Download impact buckets (CSV)", b.write_csv(), "impact_buckets.csv", "text/csv", key="dl_impact"
    )

with tab_attr:
    dim = st.selectbox(
        "Slice by",
        ["algo", "broker", "size_bucket", "urgency", "strategy", "sector", "trader", "time_bucket"],
        key="attr_dim",
    )
    d = state.on_orders(f, "decompose", dim)
    charts.show(charts.stacked_components(d, dim))
    st.dataframe(d, hide_index=True, width="stretch", column_config=charts.number_formats(d), key="attr_df")
    st.caption(
        "Spread: fills vs the mid at the fill. Impact & timing: the mid at each fill vs arrival. The parts sum to the IS."
    )
    st.download_button(
        "Download attribution (CSV)", d.write_csv(), f"cost_attribution_by_{dim}.csv", "text/csv", key="dl_attr"
    )

with tab_rec:
    choice = st.radio("Compare", ["algo", "broker"], horizontal=True, key="rec_choice")
    cmp = state.on_orders(f, "compare", choice)
    found = cmp.filter(pl.col("significant"))
    if found.is_empty():
        st.info(
            f"No {choice} is significantly cheaper than another on comparable orders (same size bucket, at least 30 "
            "orders each, 5% level after Holm correction). The data cannot support a routing change yet."
        )
    for text in found["finding"].to_list():
        st.success(text)
    st.dataframe(cmp.drop("finding", strict=False), hide_index=True, width="stretch", key="rec_df")
    st.download_button("Download comparisons (CSV)", cmp.write_csv(), f"compare_{choice}.csv", "text/csv", key="dl_rec")
