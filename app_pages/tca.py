"""TCA: headline costs, their distribution, cost by broker/algo/venue/size with 95% intervals, markouts, and an
order drill-down (fills on the price path with the NBBO, the benchmarks and the IS waterfall)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import streamlit as st

from analytics import tca
from ui import charts, filters, state

f = filters.current()
st.title("Transaction cost analysis")
st.caption(
    charts.COST_NOTE + " IS = implementation shortfall vs the decision price (Perold), in bps of paper notional."
)
orders = state.tca_orders(f)
if orders.is_empty():
    st.info("No orders in this range: widen the dates or clear filters in the sidebar.")
    st.stop()
head = state.on_orders(f, "summary")

c = st.columns(5)
c[0].metric("Orders", f"{head['orders']:,}", help=f"{head['fills']:,} fills")
c[1].metric("IS", f"{head['is_total_bps']:+.1f} bps", help="Implementation shortfall: Σ IS cost / Σ paper notional")
c[2].metric(
    "Arrival cost", f"{head['arrival_cost_bps']:+.1f} bps", help="vs NBBO mid at arrival, filled-notional weighted"
)
c[3].metric("VWAP slippage", f"{head['vwap_interval_cost_bps']:+.1f} bps", help="vs interval VWAP (arrival to end)")
c[4].metric("IS cost", f"{head['is_total_cost'] / 1e6:,.2f}M", help="Currency: delay + trading + opportunity + fees")
st.caption(
    f"IS parts: delay {head['is_delay_bps']:+.1f}, trading {head['is_trading_bps']:+.1f}, "
    f"opportunity {head['is_opportunity_bps']:+.1f}, fees {head['is_fees_bps']:+.1f} bps · "
    f"filled notional {head['filled_notional']:,.0f} · source {orders['source_version'][0]}"
)

METRICS = {
    "Arrival cost (bps)": "arrival_cost_bps",
    "IS total (bps)": "is_total_bps",
    "Interval VWAP (bps)": "vwap_interval_cost_bps",
    "Day VWAP (bps)": "vwap_day_cost_bps",
    "TWAP (bps)": "twap_cost_bps",
    "PWP (bps)": "pwp_cost_bps",
    "Close (bps)": "close_cost_bps",
}
tab_cost, tab_expect, tab_markout, tab_order, tab_rows = st.tabs(
    ["Costs", "Vs expectation", "Markouts", "Order drill-down", "All orders"]
)

with tab_cost:
    label = st.selectbox("Metric", list(METRICS), key="tca_metric")
    metric = METRICS[label]
    left, right = st.columns(2)
    charts.show(charts.histogram(state.on_orders(f, "histogram", metric), label), left)
    left.caption("Bins span the 0.5th-99.5th percentiles; the end bins hold the tails.")
    dim = right.selectbox(
        "Break down by",
        ["broker", "algo", "size_bucket", "urgency", "strategy", "sector", "time_bucket"],
        key="tca_dim",
    )
    grp = state.on_orders(f, "by_group", dim, metric, 30)
    charts.show(charts.bars_with_ci(grp, dim, metric, label), right)
    right.caption(
        "Whiskers: 95% interval of the notional-weighted mean, each order one unit (Student t). Grey: fewer than 30 "
        "orders."
    )
    st.dataframe(grp, hide_index=True, width="stretch", column_config=charts.number_formats(grp), key="tca_group_df")
    st.download_button("Download breakdown (CSV)", grp.write_csv(), f"tca_by_{dim}.csv", "text/csv", key="dl_group")
    venue = state.venue_costs(f)
    st.subheader("Fills by venue: cost vs arrival")
    charts.show(charts.bars_with_ci(venue, "venue", "arrival_cost_bps", "Arrival cost (bps)"))
    st.caption(
        "Fill notional-weighted; whiskers: 95% interval resampling whole parent orders (orders = parent orders with "
        "fills at the venue), never single fills. Grey: fewer than 30 fills."
    )

with tab_expect:
    # Behind a toggle: the comparison loads the cost model (JAX, and MLflow once trained): seconds that a cold
    # first run of the page should not spend on a tab the user may never open (Streamlit runs every tab).
    if not st.toggle("Compare with the cost model's expectation", key="tca_expect_on"):
        st.caption("Realised impact cost against the I-Star champion's expectation, by broker, by algo and over time.")
    else:
        gaps = {by: state.post_vs_expected(f, by) for by in ("broker", "algo")}
        champ = state.champions()["istar"][1]
        st.caption(
            f"Realised impact cost (fills vs the arrival mid, spread excluded) minus the I-Star "
            f"{f'v{champ}' if champ else '(published)'} expectation at each order's executed size, volatility and "
            "participation: **+ = the order cost more than expected**. Filled-notional weighted; whiskers and band: 95% "
            "interval; grey: fewer than 30 orders."
        )
        if gaps["broker"].is_empty():
            st.info("No filled orders with ADV, volatility and participation in this range.")
        else:
            cols = st.columns(2)
            for col, (by, g) in zip(cols, gaps.items(), strict=True):
                charts.show(charts.bars_with_ci(g, by, "gap_bps", f"Realised − expected (bps), by {by}"), col)
            period = st.radio("Over time, by", ["day", "week"], horizontal=True, key="tca_gap_period")
            charts.show(charts.gap_over_time(state.post_vs_expected(f, period), period))
            table = pl.concat(
                [g.rename({by: "key"}).select(pl.lit(by).alias("dimension"), pl.all()) for by, g in gaps.items()]
            )
            st.dataframe(
                table, hide_index=True, width="stretch", column_config=charts.number_formats(table), key="tca_gap_df"
            )
            st.download_button("Download (CSV)", table.write_csv(), "tca_vs_expectation.csv", "text/csv", key="dl_gap")

with tab_markout:
    by_venue = st.toggle("By venue", value=True, key="tca_markout_venue")
    curve = state.markouts(f, by_venue)
    charts.show(charts.markout_lines(curve, "venue" if by_venue else None))
    st.caption(
        "Markout = side-signed (fill price − mid at t + h) / fill price; a curve that keeps rising after the fill is "
        "adverse selection. Band: 95% interval resampling whole parent orders (clusters = orders in the CSV)."
    )
    st.download_button("Download markouts (CSV)", curve.write_csv(), "markouts.csv", "text/csv", key="dl_markouts")

with tab_order:
    # The 500 costliest orders to pick from (a year holds ~1M: too many for a list), or any id typed in.
    worst = state.top_orders(f, 500)
    typed = st.text_input("Order id (optional)", key="tca_order_id", placeholder="or pick below").strip()
    options = worst["order_id"].to_list()
    if typed and orders.filter(pl.col("order_id") == typed).height:
        options = [typed, *[x for x in options if x != typed]]
    elif typed:
        st.warning(f"No order '{typed}' in the current filters.")
    oid = st.selectbox("Order (500 highest IS first)", options, key="tca_order")
    o = orders.filter(pl.col("order_id") == oid).row(0, named=True)
    st.markdown(
        f"**{o['side']} {o['order_qty']:,.0f} {o['symbol']}** via {o['broker']} / {o['algo']} · "
        f"filled {o['filled_qty']:,.0f} in {o['fill_count']} fills · IS {o['is_total_bps']:+.1f} bps · "
        f"arrival {o['arrival_cost_bps']:+.1f} bps · size {100 * (o['size_pct_adv'] or 0):.2f}% ADV"
    )
    of = state.order_fills(oid, o["arrival_ts"].date())
    pad = dt.timedelta(minutes=5)
    names = ("Decision", "Arrival", "Interval VWAP", "TWAP", "End")
    prices = (o["decision_price"], o["arrival_price"], o["interval_vwap"], o["twap"], o["end_price"])
    levels = tuple((n, p) for n, p in zip(names, prices, strict=True) if p is not None)
    left, right = st.columns([3, 2])
    spec = state.order_path_spec(
        oid, o["arrival_ts"].date(), o["symbol"], o["arrival_ts"] - pad, o["end_ts"] + pad, levels
    )
    left.vega_lite_chart(spec, width="stretch")
    steps = tca.waterfall(o)
    charts.show(charts.waterfall(steps), right)
    right.dataframe(steps.select("step", "bps", "currency"), hide_index=True, key="tca_waterfall_df")
    st.dataframe(of.drop("s", strict=False), hide_index=True, width="stretch", key="tca_order_fills")
    st.download_button(
        "Download this order's fills (CSV)", of.write_csv(), f"fills_{oid}.csv", "text/csv", key="dl_order"
    )

with tab_rows:
    shown = state.top_orders(f, 1000)
    if not st.toggle("All columns", value=False, key="tca_all_columns"):
        shown = shown.select([c for c in tca.KEY_COLUMNS if c in shown.columns])
    st.caption(
        f"{shown.height:,} of {orders.height:,} orders shown (highest IS first); the download has them all, "
        "with every column."
    )
    st.dataframe(
        shown, hide_index=True, width="stretch", column_config=charts.number_formats(shown), key="tca_orders_df"
    )
    st.download_button(
        "Download TCA rows (CSV)", lambda: orders.write_csv(), "tca_results.csv", "text/csv", key="dl_orders"
    )
