"""Every chart the pages draw is a valid Vega-Lite spec: the pages skip Altair's per-rerun validation
(ui.charts.show), so it happens here, with real frames from a simulated desk, and each renders offline."""

from __future__ import annotations

import datetime as dt

import polars as pl
import vl_convert as vlc

from analytics import cost_attribution, expectation, impact, overview, pretrade, tca
from analytics import impact_models as im
from analytics.filters import Filters
from ui import charts


def test_every_chart_validates_and_renders(sim_lake):
    con = sim_lake.connect()
    orders = tca.with_buckets(tca.load_orders(sim_lake, con, Filters()))
    o = orders.sort("fill_count", descending=True).row(0, named=True)
    fills = tca.order_fills(sim_lake, con, o["order_id"], o["arrival_ts"].date())
    pad = dt.timedelta(minutes=5)
    quotes, prints = tca.order_tape(con, o["symbol"], o["arrival_ts"] - pad, o["end_ts"] + pad, sim_lake)
    levels = pl.DataFrame({"benchmark": ["Arrival", "End"], "price": [o["arrival_price"], o["end_price"]]})
    y = "arrival_cost_bps"
    profile = pretrade.volume_profile(con, orders["arrival_ts"].max().date() + dt.timedelta(days=1))
    built = {
        "histogram": charts.histogram(tca.histogram(orders, y), "Arrival cost (bps)"),
        "bars_with_ci": charts.bars_with_ci(tca.by_group(orders, "broker", y), "broker", y, "Arrival cost (bps)"),
        "markout_lines": charts.markout_lines(tca.markouts_sql(sim_lake, con, Filters(), True), "venue"),
        "waterfall": charts.waterfall(tca.waterfall(o)),
        "order_path": charts.order_path(quotes, prints, fills, levels),
        "law_fit": charts.law_fit(
            impact.buckets(orders, "size_pct_adv", (y,)), impact.fit_sqrt_law(orders, y), y, "Arrival cost (bps)"
        ),
        "stacked_components": charts.stacked_components(cost_attribution.decompose(orders, "algo"), "algo"),
        "reversion": charts.reversion(impact.reversion_curve(orders)),
        "trend": charts.trend(overview.daily(orders), "is_total_bps", "IS (bps)"),
        "frontier": charts.frontier(im.frontier("istar", 0.05, 0.02)),
        "estimate_bands": charts.estimate_bands(
            pretrade.model_estimates(
                {"istar": (im.published("istar"), None), "almgren": (im.published("almgren"), None)},
                0.05,
                0.02,
                0.1,
                "VWAP",
                5.0,
                dt.datetime(2026, 3, 5, 15, tzinfo=dt.UTC),
            )
        ),
        "residuals": charts.residuals(pl.Series([1.0, 2.0, 3.0]), pl.Series([1.5, 1.0, 4.0])),
        "start_times": charts.start_times(pretrade.start_times(profile, 0.05, 0.02, im.published("istar"))),
        "gap_over_time": charts.gap_over_time(
            expectation.post_vs_expected(orders, im.published("istar"), "day", min_orders=1), "day"
        ),
    }
    for name, chart in built.items():
        spec = chart.to_dict()  # validates against the Vega-Lite schema (raises on an invalid spec)
        svg = vlc.vegalite_to_svg(spec)
        assert svg.startswith("<svg") and len(svg) > 2000, name


def test_residuals_are_realised_minus_expected():
    chart = charts.residuals(pl.Series([1.0, 2.0, 3.0]), pl.Series([1.5, 1.0, 4.0]))
    rows = chart.to_dict()["layer"][0]["data"]["values"]
    assert [r["residual_bps"] for r in rows] == [0.5, -1.0, 1.0]  # + = cost above the model's expectation
