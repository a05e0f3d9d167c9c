"""Live: the engine's view of today, refreshed every second without rerunning the page (st.fragment).

Working-orders blotter, today's venue / broker / algo board, the alert feed with acknowledge and snooze, engine
status in the sidebar. Everything is read from the engine's snapshot (``<lake>/live/state.json``) and alert log;
the engine itself (``python -m analytics live``) runs in its own process. In the embedded default the page can
start it on the lake's watched folder, and a live demo feed, as child processes (stopped by their pid)."""

from __future__ import annotations

import polars as pl
import streamlit as st

from analytics.live import alerts, control
from analytics.live.engine import live_dir, read_snapshot
from ui import state

root = state.lake().root
st.title("Live")

procs = control.status(root)
running = {k: v["running"] for k, v in procs.items()}
with st.expander("Engine and demo feed", expanded=not running.get("engine")):
    st.caption(f"Watched folder: `{control.inbox(root)}`; for NATS run `python -m analytics live --source nats://...`.")
    c1, c2 = st.columns(2)
    if running.get("engine"):
        if c1.button("Stop engine", key="live_stop_engine"):
            control.stop(root, "engine")
            st.rerun()
    elif c1.button("Start engine (folder source)", key="live_start_engine"):
        control.start_engine(root)
        st.rerun()
    speed = c2.number_input("Demo speed (x real time)", 1.0, 100.0, 10.0, key="live_speed")
    if running.get("feed"):
        if c2.button("Stop demo feed", key="live_stop_feed"):
            control.stop(root, "feed")
            st.rerun()
    elif c2.button("Start demo feed", key="live_start_feed"):
        control.start_feed(root, speed)
        st.rerun()

BPS = st.column_config.NumberColumn(format="%.1f bps")
ORDER_COLS = {
    "order_id": None, "symbol": None, "side": None, "broker": None, "algo": None, "working": None,
    "order_qty": st.column_config.NumberColumn(format="%d"), "filled_qty": st.column_config.NumberColumn(format="%d"),
    "arrival_price": st.column_config.NumberColumn(format="%.4f"),
    "avg_fill_price": st.column_config.NumberColumn(format="%.4f"),
    "is_total_bps": BPS, "arrival_cost_bps": BPS, "vwap_interval_cost_bps": BPS,
    "participation_rate": st.column_config.NumberColumn(format="%.3f"), "impact_cost_bps": BPS,
    "expected_impact_bps": BPS, "impact_z": st.column_config.NumberColumn("impact z", format="%.1f σ"),
    "markout_cost_bps_1s": BPS,
    "markout_cost_bps_60s": BPS,
}  # fmt: skip


BOARD_COLS = {
    "key": None, "orders": None, "fills": None, "notional": st.column_config.NumberColumn(format="%.0f"),
    "arrival_cost_bps": st.column_config.NumberColumn("arrival today", format="%.1f bps"),
    "base_arrival_cost_bps": st.column_config.NumberColumn("arrival 20d", format="%.1f bps"),
    "base_arrival_cost_bps_lo": st.column_config.NumberColumn("lo", format="%.1f"),
    "base_arrival_cost_bps_hi": st.column_config.NumberColumn("hi", format="%.1f"),
    "markout_cost_bps_1s": st.column_config.NumberColumn("markout 1s today", format="%.1f bps"),
    "markout_cost_bps_60s": st.column_config.NumberColumn("markout 60s today", format="%.1f bps"),
    "base_markout_cost_bps_60s": st.column_config.NumberColumn("markout 60s 20d", format="%.1f bps"),
    "base_markout_cost_bps_60s_lo": st.column_config.NumberColumn("lo ", format="%.1f"),
    "base_markout_cost_bps_60s_hi": st.column_config.NumberColumn("hi ", format="%.1f"),
    "markout_fills_60s": None, "base_days": None, "base_orders": None,
}  # fmt: skip


@st.fragment(run_every=1.0)
def live_view() -> None:
    snap = read_snapshot(root)
    if snap is None:
        st.info("No live state yet: start the engine (above) or run `python -m analytics live`.")
        return
    orders, board = snap["orders"], snap["board"]
    c = st.columns(4)
    working = orders.filter(pl.col("working")) if orders.height else orders
    c[0].metric("Working orders", working.height)
    c[1].metric("Orders today", orders.height)
    c[2].metric("Events received", f"{snap['status']['events_received']:,}")
    feed = alerts.read(live_dir(root))
    c[3].metric("Open alerts", int(feed["open"].sum()) if feed.height else 0)
    st.subheader("Working orders")
    if orders.height:
        shown = orders.sort("working", "arrival_ts", descending=[True, True]).select(
            [c for c in ORDER_COLS if c in orders.columns]
        )
        st.dataframe(shown, column_config=ORDER_COLS, hide_index=True, height=300)
    st.subheader("Today by venue, broker, algo")
    tabs = st.tabs(["Venue", "Broker", "Algo"])
    st.caption(
        "Baseline: the last 20 order days' stored TCA (fill-weighted), with an order-clustered 95% interval "
        "(lo, hi); blank until computed, or without history."
    )
    for tab, dim in zip(tabs, ("venue", "broker", "algo"), strict=True):
        part = board.filter(pl.col("dimension") == dim).drop("dimension") if board.height else board
        tab.dataframe(part.select([c for c in BOARD_COLS if c in part.columns]), hide_index=True,
                      column_config=BOARD_COLS)  # fmt: skip
    pf = snap.get("portfolios")
    if pf is not None and pf.height:
        st.subheader("Portfolios intraday")
        st.caption("P&L of today's fills of each portfolio's decisions marked to live mids; drawdown from the "
                   "day's peak (currency, and bps of traded notional).")  # fmt: skip
        money = st.column_config.NumberColumn(format="%.0f")
        st.dataframe(pf, hide_index=True, column_config={"pnl": money, "notional": money, "peak": money,
                     "drawdown": money, "pnl_bps": BPS, "drawdown_bps": BPS})  # fmt: skip
    alert_feed(feed)


def alert_feed(feed: pl.DataFrame) -> None:
    st.subheader("Alerts")
    if feed.is_empty():
        st.caption("No alert raised.")
        return
    show_all = st.toggle("Show cleared and snoozed", key="live_alerts_all")
    view = feed if show_all else feed.filter(pl.col("open") & ~pl.col("snoozed"))
    st.dataframe(view.select("ts", "severity", "rule", "subject", "message", "open", "acked", "alert_id"),
                 hide_index=True)  # fmt: skip
    open_ids = feed.filter(pl.col("open") & ~pl.col("acked"))["alert_id"].to_list()
    if not open_ids:
        return
    a1, a2, a3 = st.columns([3, 1, 1])
    pick = a1.selectbox("Alert", open_ids, key="live_alert_pick")
    # Callbacks: the action is logged before the (fragment) rerun that the click starts.
    a2.button("Acknowledge", key="live_ack", on_click=alerts.act, args=(live_dir(root), pick, "ack"))
    a3.button("Snooze 15 min", key="live_snooze", on_click=alerts.act, args=(live_dir(root), pick, "snooze", 900))


live_view()
