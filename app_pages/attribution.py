"""Attribution: Brinson effects by any grouping, linked over the period (the CLI's PerformanceAttributionEvent rows),
effects over time, a drill into a group's securities, factor attribution, the tracking-error split and the strategy
comparison."""

from __future__ import annotations

import contextlib

import altair as alt
import polars as pl
import streamlit as st

from analytics import attribution as attr
from analytics import risk
from analytics.conventions import BPS
from ui import state

PCT = st.column_config.NumberColumn(format="percent")
BP = st.column_config.NumberColumn(format="%+.1f")
RATIO = st.column_config.NumberColumn(format="%.2f")


@st.cache_data(show_spinner=False, max_entries=8)
def _options(root: str, version: int) -> dict:
    con = state.cursor()
    return {
        "portfolios": dict(con.execute("SELECT portfolio_id, benchmark_id FROM portfolios ORDER BY 1").fetchall()),
        "benchmarks": [r[0] for r in con.execute("SELECT DISTINCT benchmark_id FROM benchmark_weights ORDER BY 1").fetchall()],
        "span": {r[0]: r[1:] for r in con.execute("SELECT portfolio_id, min(date), max(date) FROM holdings GROUP BY 1").fetchall()},
        "groupings": attr.grouping_columns(con),
    }  # fmt: skip


@st.cache_data(show_spinner=False, max_entries=32)
def _groups(root: str, version: int, group_by: str) -> pl.DataFrame:
    return attr.security_groups(state.cursor(), group_by)


# Positions (3 years x 500 names: ~400K rows) are loaded once per portfolio, benchmark and period and regrouped
# in memory for each grouping; cached as resources (immutable Polars frames: shared, never pickled).
@st.cache_resource(show_spinner=False, max_entries=8)
def _base(root: str, version: int, pid: str, bench: str, start, end) -> pl.DataFrame:
    return attr.load_positions(state.cursor(), pid, bench, start, end, "symbol")


@st.cache_resource(show_spinner=False, max_entries=16)
def _positions(root: str, version: int, pid: str, bench: str, start, end, group_by: str) -> pl.DataFrame:
    return attr.regroup(_base(root, version, pid, bench, start, end), _groups(root, version, group_by))


@st.cache_data(show_spinner=False, max_entries=64)
def _drill(root, version, pid, bench, start, end, group_by, group, method, linking) -> pl.DataFrame:
    return attr.drill(_positions(root, version, pid, bench, start, end, group_by), group, method, linking)


@st.cache_data(show_spinner=False, max_entries=64)
def _attribution(root, version, pid, bench, start, end, group_by, method, linking) -> dict:
    att = attr.attribute(_positions(root, version, pid, bench, start, end, group_by), method, linking)
    created = state.lake().manifest(version).created
    rows = attr.events(att, portfolio_id=pid, benchmark_id=bench, start=start, end=end, method=method, linking=linking,
                    grouping=group_by, version=version, snapshot_ts=created)  # fmt: skip
    over = attr.link(att.daily, att.totals, linking, over_time=True)
    return {"rows": rows, "over": over, "cum": attr.cumulative_returns(att.totals)}


@st.cache_resource(show_spinner=False, max_entries=8)
def _factor_model(root, version, pid, bench, start, end) -> dict:
    """What does not depend on the linking: daily exposures, the regression and the TE split."""
    pos = _base(root, version, pid, bench, start, end)
    exp, fr = attr.load_factors(state.cursor(), pos, start, end)
    if exp.is_empty() or fr.is_empty():
        return {}
    out = {"fr": fr, "xd": attr.factor_exposures_daily(pos, exp), "risk": attr.risk_decomposition(pos, exp, fr)}
    with contextlib.suppress(attr.AttributionError):  # too few days for the factors: the page says so
        out["regression"] = attr.returns_regression(attr.daily_totals(pos), fr)
    return out


@st.cache_data(show_spinner=False, max_entries=32)
def _factor_attribution(root, version, pid, bench, start, end, linking) -> pl.DataFrame:
    fm = _factor_model(root, version, pid, bench, start, end)
    pos = _base(root, version, pid, bench, start, end)
    return attr.factor_attribution(pos, None, fm["fr"], linking, exposures_daily=fm["xd"])


@st.cache_data(show_spinner=False, max_entries=16)
def _peers(root, version, start, end) -> pl.DataFrame:
    return risk.peer_table(risk.daily_returns(state.cursor(), start, end))


def _chart(df: pl.DataFrame, chart: alt.Chart) -> None:
    """Altair for the encoding, Arrow for the rows: Altair validates inline rows one by one (~0.5 ms a row), which
    made 3 years of daily points the slowest part of a rerun."""
    spec = {k: v for k, v in chart.to_dict().items() if k not in ("data", "datasets")}  # no bare calls: magic
    st.vega_lite_chart(df, spec, width="stretch")


def _bps(df: pl.DataFrame, cols) -> pl.DataFrame:
    return df.with_columns((pl.col(c) * BPS).alias(f"{c}_bps") for c in cols)


def _table(df: pl.DataFrame, name: str, key: str, **cfg) -> None:
    """A table with units in column_config and its CSV download (decimal returns, as the CLI writes them)."""
    conf = {c: PCT for c in df.columns if c.endswith(("_weight", "_return", "_te", "_vol")) or c.startswith("pct")}
    conf |= {c: BP for c in df.columns if c.endswith("_bps")} | {"date": st.column_config.DateColumn()} | cfg
    st.dataframe(df, hide_index=True, width="stretch", column_config=conf, key=f"{key}_df")
    st.download_button(
        f"Download {name} (CSV)", df.write_csv(), f"{name.replace(' ', '_')}.csv", "text/csv", key=f"dl_{key}"
    )


lake = state.lake()
root, version = str(lake.root), lake.version()
st.title("Performance attribution")
opts = _options(root, version)
if not opts["portfolios"] or not opts["benchmarks"]:
    st.info("No portfolios in the lake: ingest portfolios, holdings, benchmark weights and returns first.")
    st.stop()
c, benches = st.columns(5), opts["benchmarks"]
pid = c[0].selectbox("Portfolio", list(opts["portfolios"]), key="attr_portfolio")
ss, own = st.session_state, opts["portfolios"][pid]
if ss.get("attr_bench_of") != pid:  # a newly picked portfolio starts on its own benchmark
    ss["attr_bench_of"], ss["attr_benchmark"] = pid, own if own in benches else benches[0]
bench = c[1].selectbox("Benchmark", benches, key="attr_benchmark")
group_by = c[2].selectbox("Group by", opts["groupings"], key="attr_group_by")
method = c[3].selectbox("Method", attr.METHODS, key="attr_method", format_func={"brinson_fachler": "Brinson-Fachler",
                        "bhb": "Brinson-Hood-Beebower"}.get)  # fmt: skip
linking = c[4].selectbox("Linking", attr.LINKINGS, key="attr_linking", format_func=str.capitalize)
lo, hi = opts["span"].get(pid, (None, None))
start = max(ss.get("f_start") or lo, lo) if lo else None
end = min(ss.get("f_end") or hi, hi) if hi else None
if not (start and end and bench) or start > end:
    st.info("No holdings for this portfolio in the sidebar's date range: widen the dates.")
    st.stop()
try:
    res = _attribution(root, version, pid, bench, start, end, group_by, method, linking)
except attr.AttributionError as e:
    st.info(f"Nothing to attribute: {e}.")
    st.stop()
rows = res["rows"]
tot = rows.filter(pl.col("group") == attr.TOTAL).row(0, named=True)
st.caption(f"{start} → {end} ({res['cum'].height} days) · effects in bps of the portfolio, + = added to the active "
           f"return · linked effects sum to compounded portfolio − benchmark return · source lake@{version}")  # fmt: skip
m = st.columns(6)
m[0].metric("Portfolio", f"{tot['portfolio_return']:+.2%}")
m[1].metric("Benchmark", f"{tot['benchmark_return']:+.2%}")
for i, e in enumerate(("total", *attr.EFFECTS)):
    m[2 + i].metric(f"{'Active' if e == 'total' else e.capitalize()} (bps)", f"{tot[e] * BPS:+.1f}")

t_eff, t_time, t_drill, t_fac, t_risk, t_peer = st.tabs(
    ["Effects", "Over time", "Drill-down", "Factors", "Risk", "Strategies"]
)
with t_eff:
    cum = res["cum"].unpivot(index="date", on=["portfolio", "benchmark"], variable_name="series", value_name="return")
    _chart(cum, alt.Chart().mark_line().encode(
        alt.X("date:T", title=None), alt.Y("return:Q", title="Cumulative return", axis=alt.Axis(format="%")),
        alt.Color("series:N", title=None), tooltip=["date:T", "series:N", alt.Tooltip("return:Q", format=".2%")],
    ).properties(height=260))  # fmt: skip
    shown = _bps(rows.filter(pl.col("group") != attr.TOTAL), (*attr.EFFECTS, "total"))
    long = shown.unpivot(index="group", on=[f"{e}_bps" for e in attr.EFFECTS], variable_name="effect", value_name="bps")
    _chart(long, alt.Chart().mark_bar().encode(
        alt.Y("group:N", sort=shown["group"].to_list(), title=None), alt.X("bps:Q", title="Effect (bps, + = added)"),
        alt.Color("effect:N", title=None), tooltip=["group:N", "effect:N", alt.Tooltip("bps:Q", format="+.1f")],
    ).properties(height=max(160, 28 * shown.height)))  # fmt: skip
    cols = ["group", "portfolio_weight", "benchmark_weight", "portfolio_return", "benchmark_return"]
    _table(_bps(rows, (*attr.EFFECTS, "total")).select(*cols, *(f"{e}_bps" for e in (*attr.EFFECTS, "total"))),
           "attribution bps", "attr_groups")  # fmt: skip
    st.download_button("Download PerformanceAttributionEvent rows (CSV, as the CLI)", rows.write_csv(),
                       f"attribution_{pid}_{group_by}.csv", "text/csv", key="dl_attr_events")  # fmt: skip
with t_time:
    over = res["over"].group_by("date").agg(pl.col(*attr.EFFECTS, "total").sum()).sort("date")
    ol = _bps(over, (*attr.EFFECTS, "total")).unpivot(index="date", on=[f"{e}_bps" for e in (*attr.EFFECTS, "total")],
                                                   variable_name="effect", value_name="bps")  # fmt: skip
    _chart(ol, alt.Chart().mark_line().encode(
        alt.X("date:T", title=None), alt.Y("bps:Q", title=f"Linked cumulative effect (bps, {linking})"),
        alt.Color("effect:N", title=None), tooltip=["date:T", "effect:N", alt.Tooltip("bps:Q", format="+.1f")],
    ).properties(height=300))  # fmt: skip
    _table(_bps(res["over"], (*attr.EFFECTS, "total")).drop(*attr.EFFECTS, "total"), "effects over time", "attr_time")
with t_drill:
    grp = st.selectbox("Group", rows.filter(pl.col("group") != attr.TOTAL)["group"].to_list(), key="attr_drill")
    d = _drill(root, version, pid, bench, start, end, group_by, grp, method, linking)
    st.caption(f"Each security's linked contribution to {grp}'s total effect; they sum to the group's total.")
    _table(_bps(d, ("contribution",)).drop("contribution"), f"securities {grp}", "attr_drill")
fac = _factor_model(root, version, pid, bench, start, end)
with t_fac:
    if not fac:
        st.info("No factor exposures or factor returns in this period.")
    else:
        st.subheader("Holdings-based: exposures × factor returns + specific")
        _table(_bps(_factor_attribution(root, version, pid, bench, start, end, linking), ("portfolio_contribution", "benchmark_contribution", "active_contribution"))
               .drop("portfolio_contribution", "benchmark_contribution", "active_contribution"), "factor attribution",
               "attr_factor", portfolio_exposure=RATIO, benchmark_exposure=RATIO, active_exposure=RATIO)  # fmt: skip
        if "regression" in fac:
            reg = fac["regression"]
            st.subheader(f"Returns-based: regression on factor returns (R² {reg.r2:.3f}, n = {reg.n} days)")
            _table(reg.table, "factor regression", "attr_regression", coefficient=RATIO, t_stat=RATIO)
        else:
            st.info("Returns-based regression: too few days for the number of factors; widen the dates.")
with t_risk:
    if fac:
        rd = fac["risk"]
        st.metric("Ex-ante tracking error (annualised)", f"{rd.te:.2%}",
                  help=f"factor {rd.factor_te:.2%} · specific {rd.specific_te:.2%} · weights of {rd.as_of}")  # fmt: skip
        _chart(rd.by_factor, alt.Chart().mark_bar().encode(
            alt.Y("factor:N", title=None, sort=None), alt.X("contribution_te:Q", title="Contribution to TE",
            axis=alt.Axis(format="%")), tooltip=["factor:N", alt.Tooltip("contribution_te:Q", format=".3%")],
        ).properties(height=200))  # fmt: skip
        _table(rd.by_factor, "te by factor", "attr_te_factor", active_exposure=RATIO)
        _table(attr.regroup(rd.by_position, _groups(root, version, group_by)), "te by position", "attr_te_position")
with t_peer:
    peers = _peers(root, version, start, end)
    st.caption("Every portfolio against its own benchmark over the same dates, ranked by information ratio.")
    _table(peers, "strategy comparison", "attr_peers", sharpe_ratio=RATIO, sortino_ratio=RATIO,
           information_ratio=RATIO, calmar_ratio=RATIO, percentile_ir=PCT, beta=RATIO, up_capture=RATIO, down_capture=RATIO,
           annual_volatility=PCT, tracking_error=PCT, max_drawdown=PCT, alpha=PCT, hit_rate=PCT, active_return=PCT)  # fmt: skip
