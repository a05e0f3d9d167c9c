"""Execution quality: venue/algo/broker leaderboard with 95% intervals (raw or difficulty-adjusted), scores and their
trend, cost vs difficulty, markouts by venue, recommendations (only significant ones) and the Rule 605 report."""

from __future__ import annotations

import altair as alt
import polars as pl
import streamlit as st

from analytics import quality as q
from ui import charts, filters, state


def _download(df: pl.DataFrame, label: str, name: str, key: str) -> None:
    # eager bytes: these tables are small, and a deferred (callable) download can hang on its spinner when the
    # page reruns between the render and the click (seen in the browser journey)
    st.download_button(label, df.write_csv(), name, "text/csv", key=key)


f = filters.current()
st.title("Execution quality")
st.caption(
    charts.COST_NOTE + " Intervals: 95%, clustered on parent orders (cluster-robust, Student t). Grey / blank: too "
    "few orders to judge. Raw = arrival_cost_bps, notional-weighted over filled orders (the TCA page's figure) in "
    "both views; adjusted = the regression's expected cost on the desk's average mix (each order weighted equally)."
)
orders = state.tca_orders(f)  # ensures the stored TCA of the filter's dates
if orders.is_empty():
    st.info("No orders in this range: widen the dates or clear filters in the sidebar.")
    st.stop()
v = state.version()
if missing := q.missing_sum_days(state.lake(), v, f.start, f.end):  # first visit after an ingest: sum the fills
    with st.status(f"Summing fills of {len(missing)} day(s)…", expanded=False) as status:
        bar = st.progress(0.0)
        q.ensure_sums(state.lake(), state.cursor(), f.start, f.end, v, lambda x, m: bar.progress(min(x, 1.0), text=m))
        status.update(label="Fill sums ready", state="complete")

c1, c2 = st.columns([2, 1])
dim = c1.segmented_control("Compare", ["venue", "algo", "broker", "broker+algo"], default="venue", key="q_dim")
dim = dim or "venue"
adjusted = c2.toggle("Difficulty-adjusted", value=False, key="q_adjusted",
                     help="Expected arrival cost on the desk's average order mix (regression on what was known at "
                          "arrival: size % ADV, spread, volatility, planned participation, urgency, time of day)")  # fmt: skip
an = state.quality_analysis(f, dim)
adj = state.quality_adjusted(f, dim)
if an.leaderboard.is_empty():
    st.info("No fills for these filters.")
    st.stop()

st.subheader(f"Leaderboard by {dim}" + (" — difficulty-adjusted" if adjusted else ""))
raw = an.leaderboard.select("key", "arrival_cost_bps", "arrival_cost_bps_lo", "arrival_cost_bps_hi")
if adjusted:  # the raw columns are the raw view's own (one definition of "raw")
    board = adj.table.select("key", pl.col("n").alias("orders"), "adjusted_bps", "adjusted_lo", "adjusted_hi",
                             "adjusted_rank", "small_sample").join(raw, on="key", how="left")  # fmt: skip
    bars = board.rename({"adjusted_bps": "cost_bps", "adjusted_lo": "cost_bps_lo", "adjusted_hi": "cost_bps_hi"})
    title = "Adjusted arrival cost (bps)"
else:
    cols = ["key", "orders", "fills", "rank", "score", "score_lo", "score_hi", "arrival_cost_bps", "arrival_cost_bps_lo",
            "arrival_cost_bps_hi", "effective_spread_bps", "eq_ratio", "price_improvement_bps", "pct_improved", "pct_size_improved",
            "realized_spread_bps_60s", "markout_cost_bps_60s", "markout_cost_bps_60s_lo", "markout_cost_bps_60s_hi",
            "fill_rate_qty", "avg_time_to_first_fill_s", "cancel_rate", "small_sample"]  # fmt: skip
    board = an.leaderboard.select(cols)
    bars = board.rename({"arrival_cost_bps": "cost_bps", "arrival_cost_bps_lo": "cost_bps_lo",
                         "arrival_cost_bps_hi": "cost_bps_hi"})  # fmt: skip
    title = "Arrival cost (bps, notional-weighted)"
metrics = [c for c in ("score", "adjusted_bps", "arrival_cost_bps", "markout_cost_bps_60s", "effective_spread_bps",
                        "price_improvement_bps", "fill_rate_qty") if c in board.columns]  # fmt: skip
sort_by = st.selectbox("Sort by", metrics, key=f"q_sort_{adjusted}",
                       help="Each recommendation names the column it rests on: sort by it to see the same order.")  # fmt: skip
board = board.sort(sort_by, descending=sort_by in ("score", "price_improvement_bps", "fill_rate_qty"), nulls_last=True)
shown = board.with_columns(  # small samples: figures hidden, the row kept with its counts
    pl.when(~pl.col("small_sample")).then(pl.col(c)).alias(c)
    for c in board.columns
    if c not in ("key", "orders", "fills", "small_sample") and board.schema[c].is_numeric()
)
left, right = st.columns([3, 2])
left.dataframe(shown, hide_index=True, width="stretch", column_config=charts.number_formats(shown), key="q_board")
charts.show(charts.bars_with_ci(bars, "key", "cost_bps", title), right)
_download(shown, "Download leaderboard (CSV)", f"quality_{dim}_{'adjusted' if adjusted else 'raw'}.csv", "dl_q_board")

recs = q.recommendations(adj, q.venue_routing_pairs(an) if dim == "venue" else None)
st.subheader("Recommendations")
if recs.is_empty():
    st.info("No difference is significant after Holm's correction: nothing to recommend on this evidence.")
for t in recs["text"].to_list():
    st.success(t)
if not recs.is_empty():
    st.caption("Rests on: " + ", ".join(sorted(set(recs["metric"]))) + " (the leaderboard can be sorted by it).")
pairs = adj.pairs
with st.expander(f"All pairwise comparisons ({pairs.height}, Holm-adjusted)"):
    st.dataframe(pairs, hide_index=True, width="stretch", column_config=charts.number_formats(pairs), key="q_pairs")
_download(recs, "Download recommendations (CSV)", "quality_recommendations.csv", "dl_q_recs")
_download(pairs, "Download comparisons (CSV)", f"quality_{dim}_pairs.csv", "dl_q_pairs")

st.subheader("Score trend")
period = st.segmented_control("Period", ["week", "month"], default="week", key="q_period") or "week"
trend = an.trend.filter(pl.col("period") == period) if not an.trend.is_empty() else an.trend
if not trend.is_empty():
    data = trend.select("period_start", "key", "score", "orders", "changed", "change")
    base = alt.Chart(data).encode(alt.X("period_start:T", title=period.capitalize()),
                                                alt.Y("score:Q", title="Score (0-100, 50 = desk)"),
                                                alt.Color("key:N", title=dim))  # fmt: skip
    tip = ["key:N", "period_start:T", alt.Tooltip("score:Q", format=".1f"), "orders:Q", "changed:N"]
    pts = base.mark_point(filled=True, size=90).encode(shape=alt.Shape("changed:N", title="Change"), tooltip=tip)
    charts.show((base.mark_line() + pts).properties(height=280))
    flagged = trend.filter(pl.col("changed"))
    st.caption(
        f"{flagged.height} change(s) flagged: a score more than max(3 sd, 10 points) away from its previous 4 periods."
    )
    _download(trend, "Download score trend (CSV)", f"quality_{dim}_{period}.csv", "dl_q_trend")
with st.expander("How the score is built"):
    st.dataframe(
        pl.DataFrame(q.SCORE_COMPONENTS, schema=["component", "direction", "scale", "weight"], orient="row"),
        hide_index=True, key="q_weights",
    )  # fmt: skip
    st.caption(
        "Each component vs the desk in the same period: z = direction × (value − desk) / scale (speed: "
        "−ln(value / desk) / ln 2), scored 100·Φ(z), weighted; venues have no fill rate or speed components."
    )

st.subheader("Cost vs difficulty")
if not adj.scatter.is_empty():
    pick = st.selectbox("Highlight", sorted(adj.scatter["key"].unique().to_list()), key="q_highlight")
    sc = adj.scatter.with_columns((pl.col("key") == pick).alias("chosen"))
    charts.show(alt.Chart(sc).mark_circle(size=18).encode(
            alt.X("expected_cost_bps:Q", title="Expected cost from difficulty (bps)"),
            alt.Y("cost_bps:Q", title="Arrival cost (bps)"),
            color=alt.condition("datum.chosen", alt.value(charts.BAD), alt.value("#bdbdbd")),
            opacity=alt.condition("datum.chosen", alt.value(0.9), alt.value(0.3)),
            order=alt.Order("chosen:N"), tooltip=["key:N", alt.Tooltip("expected_cost_bps:Q", format=".1f"),
                                                  alt.Tooltip("cost_bps:Q", format=".1f")],
        ).properties(height=320))  # fmt: skip
    st.caption(
        f"Up to 3,000 sampled orders{' (per venue)' if dim == 'venue' else ''}; x = what the regression "
        "expects from size, spread, volatility, planned participation, urgency and time of day (all known at arrival)."
    )

st.subheader("Markouts by venue")
curve = q.markout_curve(state.quality_analysis(f, "venue"))
charts.show(charts.markout_lines(curve, "venue"))
_download(curve, "Download markouts (CSV)", "quality_markouts.csv", "dl_q_markouts")

st.subheader("Reports")
events = q.report(state.lake(), state.cursor(), f, dim, v, an=an, adjusted=adj)
r605 = state.rule605(f)
d1, d2 = st.columns(2)
with d1:
    _download(events, "Download ExecutionQualityReportEvents (CSV)", f"quality_events_{dim}.csv", "dl_q_events")
with d2:
    _download(r605, "Download Rule 605 report (CSV)", "rule605.csv", "dl_q_605")
st.caption(f"Source lake@{v} · {an.leaderboard.height} {dim} key(s) · Rule 605 rows: {r605.height}")
