"""Cost models: a pre-trade estimate for an order from every model (champions from the MLflow registry, else the
published parameters), the cost-risk frontier and the recommended horizon, realised vs expected cost over time
(drift, with a retrain flag), the registry's runs, and retraining from the app."""

from __future__ import annotations

import datetime as dt
import math

import altair as alt
import polars as pl
import streamlit as st

from analytics import expectation, pretrade, tca, tracking
from analytics import impact_models as im
from ui import charts, filters, jobs, state

f = filters.current()
lake = state.lake()
st.title("Cost models")
st.caption(charts.COST_NOTE + " Pre-trade estimates use the champion of each model in the lake's MLflow registry.")


ss = st.session_state
champs = state.champions()
opts = state.options()

st.subheader("Pre-trade estimate")
c = st.columns(5)
size = c[0].number_input("Size (% ADV)", 0.01, 100.0, 5.0, 0.5, key="m_size") / 100
vol = c[1].number_input("Daily volatility (%)", 0.1, 20.0, 2.0, 0.1, key="m_vol") / 100
pov = c[2].number_input("Participation (%)", 0.5, 100.0, 10.0, 0.5, key="m_pov") / 100
algo = c[3].selectbox("Algo", opts.get("algo") or ["VWAP"], key="m_algo")
spread = c[4].number_input("Spread (bps)", 0.1, 200.0, 5.0, 0.5, key="m_spread")
now = dt.datetime.combine(f.end or dt.date.today(), dt.time(15, 0), dt.UTC)
est = pretrade.model_estimates(champs, size, vol, pov, algo, spread, now)
charts.show(charts.estimate_bands(est))
for r in pretrade.model_disagreements(est, algo).iter_rows(named=True):
    st.warning(
        f"The models disagree: {r['model_a']} {r['bps_a']:.1f} bps vs {r['model_b']} {r['bps_b']:.1f} bps (one "
        f"outside the other's 90% band, or {pretrade.DISAGREE_RATIO:g}× apart).",
        icon="⚠️",
    )
st.dataframe(est, hide_index=True, width="stretch", column_config=charts.number_formats(est), key="m_estimates")
st.caption(
    "Each model's target is in the table: market impact (fills vs the arrival mid, spread excluded) unless it "
    "says otherwise; bands hold 90% of realised outcomes."
    + ("" if champs["learned"][0] is not None else " No learned model yet: train one below.")
)

st.subheader("Cost-risk frontier (Almgren-Chriss)")
lam = st.slider("Risk aversion λ (cost + λ · timing risk)", 0.0, 3.0, 0.5, 0.1, key="m_lambda")
front = im.frontier(champs["istar"][0], size, vol, risk_aversion=lam)
best = front.filter(pl.col("recommended")).row(0, named=True)
charts.show(charts.frontier(front))
st.markdown(
    f"Recommended: trade over **{best['horizon_days']:g} day(s)** (about {best['pov']:.0%} of volume): "
    f"expected impact {best['expected_cost_bps']:.1f} bps, timing risk {best['timing_risk_bps']:.1f} bps "
    f"(I-Star {champs['istar'][1] or 'published'})."
)

st.subheader("Realised vs expected over time")
orders = state.tca_orders(f)
fit, ver = champs["istar"]
rows = expectation.per_order(orders, fit)
if rows.height:
    e = expectation.summary(rows, fit)  # the Overview's and the report's figure (one definition)
    m = st.columns(3)
    m[0].metric("Realised impact", f"{e['realised_bps']:+.1f} bps", help="fills' mids vs arrival, notional-weighted")
    m[1].metric(f"Expected (I-Star {e['model_version']})", f"{e['expected_bps']:+.1f} bps")
    m[2].metric("Realised − expected", f"{e['gap_bps']:+.1f} bps", help=f"95% interval {e['gap_lo_bps']:+.1f} to "
                f"{e['gap_hi_bps']:+.1f} bps; + = worse than expected; notional-weighted over {e['orders']:,} orders")  # fmt: skip
    oos = rows.filter(pl.col("out_of_sample"))
    every = st.radio("Period", ["1d", "1w", "1mo"], index=1, horizontal=True, key="m_every",
                     format_func={"1d": "day", "1w": "week", "1mo": "month"}.get)  # fmt: skip
    st.caption(
        f"Drift is judged out of sample: {oos.height:,} of {rows.height:,} orders arrived after the champion's "
        f"training data ({fit.trained_through or 'published parameters: none'})."
    )
    if oos.height:
        dr = tracking.drift(rows, tracking.registered_name("istar"), ver, every)
        line = alt.Chart(charts.inline(dr)).encode(alt.X("period_start:T", title=None))
        charts.show(
            line.mark_area(opacity=0.2).encode(alt.Y("gap_lo_bps:Q", title="Realised − expected (bps), out of sample"), alt.Y2("gap_hi_bps:Q"))
            + line.mark_line(point=True).encode(alt.Y("gap_bps:Q"), tooltip=["period_start:T", "n:Q", "gap_bps:Q", "mae_bps:Q"])
        )  # fmt: skip
        cal, res = st.columns(2)
        y, pred = oos["realised_bps"], oos["expected_bps"]
        charts.show(
            tracking.calibration_chart(y, pred, "Calibration out of sample: realised by decile of expected (bps)"), cal
        )
        charts.show(charts.residuals(pred, y), res)
        if dr["retrain"].tail(1).item():
            st.warning("The latest period drifted beyond the threshold with a 95% interval excluding zero: retrain.")
        st.dataframe(dr, hide_index=True, width="stretch", column_config=charts.number_formats(dr), key="m_drift")
        st.download_button(
            "Download PredictiveAnalyticsEvents (CSV)", dr.write_csv(), "drift.csv", "text/csv", key="dl_m_drift"
        )
    else:
        st.info("Every order in this range was in the champion's training data: no out-of-sample drift to judge.")
else:
    st.info("No filled orders with volatility and ADV in this range: widen the dates.")

st.subheader("Registry and retraining")
c1, c2 = st.columns([1, 3])
which = c1.selectbox("Model", ["istar", "almgren", "learned"], key="m_train_model")
key = str(lake.root)
last = jobs.REGISTRY.get(key)
busy = last is not None and last.running
if c1.button("Retrain", type="primary", key="m_retrain", disabled=busy, help="Trains in the background"):
    busy = jobs.start_training(lake, which, f.start, f.end)[0].running


@st.fragment(run_every=jobs.POLL_SECONDS if busy else None)
def training_status() -> None:
    """Polls the lake's job while it runs; once it has finished, this session reloads the champions once."""
    job = jobs.REGISTRY.get(key)
    if job is None:
        return
    if job.running:
        st.progress(job.progress, text=f"Training {job.label} in the background: {job.message}")
        return
    if ss.get("m_job_applied") != job.seq:  # this session has not refreshed since that job finished
        ss["m_job_applied"] = job.seq
        if job.state == "done":
            ss["models_stamp"] = max(ss.get("models_stamp", 0) + 1, job.seq)
        st.rerun()  # the whole page: the estimates above now use the new champion
    if job.state == "failed":
        st.error(f"Training {job.label} failed: {job.error}")
    else:
        ev = job.result["event"]
        say = st.success if ev["decision"] == "promoted" else st.info
        say(f"{job.result['registered_model']} v{job.result['version']}: {ev['decision']} ({ev['reason']})")
        st.json(ev, expanded=False)


with c2:
    training_status()
runs = tracking.runs(lake)
if runs.height:
    st.dataframe(runs, hide_index=True, width="stretch", key="m_runs")
    st.download_button("Download runs (CSV)", runs.write_csv(), "model_runs.csv", "text/csv", key="dl_m_runs")
else:
    st.caption("No training run yet.")

ui = jobs.mlflow_ui(lake)
if ui is None and st.button(
    "Start the MLflow UI", key="m_mlflow_ui", help="mlflow server on 127.0.0.1, this lake's store"
):
    ui = jobs.start_mlflow_ui(lake)
if ui is not None:

    @st.fragment(run_every=None if ss.get("m_ui_ready") == ui.url else 2.0)
    def mlflow_link() -> None:
        if ss.get("m_ui_ready") == ui.url:
            st.link_button("Open the MLflow UI", ui.url, icon="↗")
            st.caption(f"{ui.url} (loopback only), serving {tracking.tracking_uri(lake)}")
        elif ui.ready():
            ss["m_ui_ready"] = ui.url
            st.rerun()  # once, to stop polling
        elif not ui.alive():
            st.error(f"The MLflow UI stopped: see {ui.log}")
        else:
            st.caption(f"Starting the MLflow UI on {ui.url} (10-30 s)…")

    mlflow_link()
st.caption(f"MLflow store: {tracking.tracking_uri(lake)} · source lake@{state.version()} · tca {tca.CODE_VERSION} · "
           f"I-Star uses σ annualised over {im.KISSELL_DAYS_PER_YEAR} days ({math.sqrt(im.KISSELL_DAYS_PER_YEAR):.2f}×)")  # fmt: skip
