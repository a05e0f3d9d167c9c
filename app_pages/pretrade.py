"""Pre-trade: symbol, side, quantity and urgency -> expected cost per algo from every model with its interval,
the cost-risk frontier and a recommendation (from the lake's point-in-time market context and the champions)."""

from __future__ import annotations

import datetime as dt

import altair as alt
import polars as pl
import streamlit as st

from analytics import impact_models as im
from analytics import pretrade
from ui import charts, filters, state

f = filters.current()
st.title("Pre-trade estimate")
st.caption(
    charts.COST_NOTE + " Market context from the daily bars before the date; participation per algo is what this "
    "desk's own orders with that algo and urgency achieved."
)


opts = state.options()
symbols = opts.get("symbol") or []
if not symbols:
    st.info("No securities in the lake yet: ingest data on the Data page.")
    st.stop()
c = st.columns(5)
symbol = c[0].selectbox("Symbol", symbols, key="pt_symbol")
side = c[1].radio("Side", ["BUY", "SELL"], horizontal=True, key="pt_side")
qty = c[2].number_input("Quantity (shares)", 1, 100_000_000, 50_000, 1_000, key="pt_qty")
urgency = c[3].selectbox("Urgency", ["LOW", "MEDIUM", "HIGH"], index=1, key="pt_urgency")
asof = c[4].date_input("As of", value=f.end or opts.get("end") or dt.date.today(), key="pt_asof")

con = state.cursor()
ctx = pretrade.market_context(con, symbol, asof)
if ctx is None:
    st.info(f"Fewer than 2 daily bars for {symbol} before {asof}: pick a later date or another symbol.")
    st.stop()
champs = state.champions()
history = state.tca_orders(f)
algos = opts.get("algo") or ["VWAP"]
est = pretrade.estimate(
    ctx, float(qty), urgency, algos, history, champs["istar"][0], champs["almgren"][0], champs["learned"][0]
)
m = st.columns(4)
m[0].metric("Size", f"{100 * qty / ctx['adv']:.2f}% ADV", help=f"ADV {ctx['adv']:,.0f} shares ({ctx['bars']} bars)")
m[1].metric("Daily volatility", f"{100 * (ctx['sigma_daily'] or 0):.2f}%")
m[2].metric("Notional", charts.compact(qty * ctx["last_close"]), help=f"last close {ctx['last_close']:,.2f}")
m[3].metric("Spread", f"{est['spread_bps'][0]:.1f} bps", help="median quoted spread at the desk's arrivals in the name")

warn = pretrade.size_warning(qty / ctx["adv"])
if warn:
    st.warning(warn, icon="⚠️")
rec = pretrade.recommend(est, champs["almgren"][0])
if rec and rec["recommended"]:
    st.markdown(
        f"Lowest expected cost (Almgren model): **{rec['algo']}** at {rec['expected_bps']:+.1f} bps, "
        f"{rec['saving_bps']:.1f} bps less than {rec['runner_up']} ({rec['basis']}: "
        f"[{rec['saving_lo_bps']:.1f}, {rec['saving_hi_bps']:.1f}] bps). One order's outcome varies by about "
        f"±{rec['band_half_width_bps']:.0f} bps (90%), so the saving is an average over many orders."
    )
elif rec and rec["runner_up"]:
    gap = (f"; {rec['algo']}'s saving over {rec['runner_up']}: {rec['saving_bps']:.1f} bps, "
           f"[{rec['saving_lo_bps']:.1f}, {rec['saving_hi_bps']:.1f}] bps") if rec["saving_lo_bps"] is not None else ""  # fmt: skip
    st.markdown(
        f"**No recommendation: {', '.join(rec['equivalent'])} are equivalent** on the Almgren model's own "
        f"uncertainty ({rec['basis']}{gap}). Choose on other grounds."
    )
dis = pretrade.disagreements(est)
if not dis.is_empty():
    r0 = dis.row(0, named=True)
    st.warning(
        f"The models disagree: for {r0['algo']}, {r0['model_a']} {r0['bps_a']:.0f} bps vs {r0['model_b']} "
        f"{r0['bps_b']:.0f} bps (one outside the other's 90% band, or {pretrade.DISAGREE_RATIO:g}× apart; "
        f"{dis.height} such pair(s) below). Their forms "
        "differ most for large orders; weigh them by their holdout errors on the Cost models page.",
        icon="⚠️",
    )
    st.dataframe(dis, hide_index=True, column_config=charts.number_formats(dis), key="pt_disagree")
long = pl.concat(
    [
        est.select("algo", pl.lit("I-Star (impact)").alias("model"), pl.col("istar_bps").alias("bps"),
                   pl.col("istar_lo_bps").alias("lo"), pl.col("istar_hi_bps").alias("hi")),
        est.select("algo", pl.lit("Almgren (impact)").alias("model"), pl.col("almgren_bps").alias("bps"),
                   pl.col("almgren_lo_bps").alias("lo"), pl.col("almgren_hi_bps").alias("hi")),
        *([est.select("algo", pl.lit("Learned").alias("model"), pl.col("learned_bps").alias("bps"),
                      pl.col("learned_lo_bps").alias("lo"), pl.col("learned_hi_bps").alias("hi"))]
          if "learned_bps" in est.columns else []),
    ]
)  # fmt: skip
base = alt.Chart(charts.inline(long)).encode(alt.Y("algo:N", title=None), alt.YOffset("model:N"), alt.Color("model:N"))
charts.show(
    (base.mark_rule().encode(alt.X("lo:Q", title="Expected cost (bps), 90% band"), alt.X2("hi:Q"))
     + base.mark_point(filled=True, size=80).encode(alt.X("bps:Q"), tooltip=["algo:N", "model:N", alt.Tooltip("bps:Q", format=".1f")]))
    .properties(height=60 * est.height)
)  # fmt: skip
st.dataframe(est, hide_index=True, width="stretch", column_config=charts.number_formats(est), key="pt_table")
st.caption("Priced by " + ", ".join(f"{n} {'v' + v if v else 'published parameters'}" for n, v in (
    ("I-Star", champs["istar"][1]), ("Almgren", champs["almgren"][1]), ("Learned", champs["learned"][1]))
    if n != "Learned" or champs["learned"][0] is not None) + "; bands hold 90% of one order's outcomes.")  # fmt: skip
st.download_button("Download estimates (CSV)", est.write_csv(), f"pretrade_{symbol}.csv", "text/csv", key="dl_pt")

st.subheader("Cost-risk frontier")
lam = st.slider("Risk aversion λ", 0.0, 3.0, 0.5, 0.1, key="pt_lambda")
front = im.frontier(champs["istar"][0], qty / ctx["adv"], ctx["sigma_daily"] or 0.02, risk_aversion=lam)
best = front.filter(pl.col("recommended")).row(0, named=True)
charts.show(charts.frontier(front))
st.markdown(
    f"With λ = {lam}: trade over **{best['horizon_days']:g} day(s)** (~{best['pov']:.0%} of volume), expected impact "
    f"{best['expected_cost_bps']:.1f} bps, timing risk {best['timing_risk_bps']:.1f} bps. {side} side: impact is "
    "symmetric in these models."
)

st.subheader("When to start")
profile = state.volume_profile(asof)
if profile.is_empty():
    st.info(f"No market trades in the lake before {asof} to draw the day's volume profile from.")
else:
    starts = pretrade.start_times(profile, qty / ctx["adv"], ctx["sigma_daily"] or 0.02, champs["istar"][0], lam)
    first = starts.filter(pl.col("recommended")).row(0, named=True)
    charts.show(charts.start_times(starts))
    st.markdown(
        f"With λ = {lam}: start at **{first['start']}** New York and trade to the close at about {first['pov']:.0%} "
        f"of the volume ({first['remaining_volume_share']:.0%} of the day's volume is left then): expected impact "
        f"{first['expected_cost_bps']:.1f} bps, timing risk {first['timing_risk_bps']:.1f} bps. A later start leaves "
        f"less volume (more impact) and less time exposed to the price (less risk). Volume profile: the market's "
        f"average over the {pretrade.PROFILE_DAYS} trading days before {asof}."
    )
