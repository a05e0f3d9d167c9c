"""Altair charts shared by the pages and the reports: one look, tooltips everywhere, units in the axis titles.

Pure Altair (Streamlit is imported only by :func:`number_formats`), so ``python -m analytics report`` renders
the same charts offline with vl-convert."""

from __future__ import annotations

import altair as alt
import polars as pl

COST_NOTE = "Costs in bps; positive = the client is worse off (side-signed against the benchmark)."


def number_formats(df: pl.DataFrame) -> dict:
    """column_config for a results table: bps to 2 decimals, notional with thousands separators, counts as
    integers; one number format per unit across pages."""
    import streamlit as st

    cfg = {}
    for c, d in df.schema.items():
        if not d.is_numeric():
            continue
        if (
            c.endswith("_bps")
            or c.endswith("_bps_lo")
            or c.endswith("_bps_hi")
            or c.endswith("_lo")
            or c.endswith("_hi")
        ):
            cfg[c] = st.column_config.NumberColumn(format="%.2f")
        elif c in ("score", "score_lo", "score_hi"):  # 0-100
            cfg[c] = st.column_config.NumberColumn(format="%.1f")
        elif "notional" in c or c.endswith("_cost") or c == "is_fees":
            cfg[c] = st.column_config.NumberColumn(format="localized")
        elif c in ("orders", "fills", "n") or d.is_integer():
            cfg[c] = st.column_config.NumberColumn(format="%d")
    return cfg


def show(chart: alt.TopLevelMixin, where=None, key: str | None = None) -> None:
    """Draw ``chart`` in ``where`` (a Streamlit container; default the page) at full width.

    The spec is built with ``validate=False``: Altair's JSON-schema validation walks every inline data row and
    cost ~1-3 s per rerun for an order's price path (thousands of quotes), while the charts here are fixed
    code, validated once by their tests (tests/test_charts.py renders each through vl-convert)."""
    import streamlit as st

    (where or st).vega_lite_chart(chart.to_dict(validate=False), width="stretch", key=key)


def compact(x: float | None) -> str:
    """Currency amounts for tiles: 1,234 / 12.3K / 84.0M / 84.0B (thousands separators in tables instead)."""
    if x is None:
        return "n/a"
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= div:
            return f"{x / div:,.1f}{suffix}"
    return f"{x:,.0f}"


GOOD, BAD, NEUTRAL = "#2e7d32", "#c62828", "#1f4e79"


def inline(df: pl.DataFrame) -> alt.Data:
    """Inline records for Vega-Lite (no pandas): times as ISO-8601 UTC strings, dates as YYYY-MM-DD; also for
    charts built on a page."""
    df = df.with_columns(
        [pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ") for c, d in df.schema.items() if isinstance(d, pl.Datetime)]
        + [pl.col(c).cast(pl.String) for c, d in df.schema.items() if d == pl.Date]
    )
    return alt.Data(values=df.to_dicts())


def histogram(bins: pl.DataFrame, title: str) -> alt.Chart:
    """Bars of pre-computed bins (analytics.tca.histogram): the spec carries ~60 rows, not every order."""
    return (
        alt.Chart(inline(bins))
        .mark_bar(color=NEUTRAL, opacity=0.85)
        .encode(
            alt.X("bin_start:Q", title=title, bin="binned"),
            alt.X2("bin_end:Q"),
            alt.Y("count:Q", title="Orders"),
            tooltip=[
                alt.Tooltip("bin_start:Q", format=".1f", title="from"),
                alt.Tooltip("bin_end:Q", format=".1f", title="to"),
                alt.Tooltip("count:Q", format=","),
            ],
        )
        .properties(height=260)
    )


def bars_with_ci(
    df: pl.DataFrame, group: str, value: str, title: str, dim_col: str | None = "small_sample"
) -> alt.LayerChart:
    """Horizontal bars of ``value`` by ``group`` with 95% interval whiskers (``<value>_lo``/``_hi``); groups
    flagged by ``dim_col`` are greyed out (too few orders to trust)."""
    lo, hi = f"{value}_lo", f"{value}_hi"
    data = df.with_columns(pl.col(group).cast(pl.String)).sort(value, descending=True, nulls_last=True)
    order = data[group].to_list()  # one explicit order for both layers, so whiskers sit on their bars
    base = alt.Chart(inline(data)).encode(
        alt.Y(f"{group}:N", sort=order, title=None, axis=alt.Axis(labelOverlap=False))
    )
    color = (
        alt.condition(f"datum.{dim_col}", alt.value("#bdbdbd"), alt.value(NEUTRAL))
        if dim_col and dim_col in df.columns
        else alt.value(NEUTRAL)
    )
    tip = [
        alt.Tooltip(f"{group}:N"),
        alt.Tooltip(f"{value}:Q", format=".2f", title=title),
        alt.Tooltip(f"{lo}:Q", format=".2f", title="95% low"),
        alt.Tooltip(f"{hi}:Q", format=".2f", title="95% high"),
        alt.Tooltip("orders:Q", format=","),
    ]
    bars = base.mark_bar(opacity=0.85).encode(alt.X(f"{value}:Q", title=title), color=color, tooltip=tip)
    whiskers = base.mark_rule(color="black").encode(alt.X(f"{lo}:Q"), alt.X2(f"{hi}:Q"), tooltip=tip)
    return (bars + whiskers).properties(height=max(140, 40 * df.height))


def markout_lines(curve: pl.DataFrame, group: str | None = None) -> alt.LayerChart:
    data = curve.with_columns(pl.col("horizon_s").cast(pl.Float64))
    enc = {"color": alt.Color(f"{group}:N", title=group.capitalize())} if group else {}
    base = alt.Chart(inline(data)).encode(
        alt.X("horizon_s:Q", scale=alt.Scale(type="log"), title="Horizon after the fill (s, log scale)"),
        alt.Y("markout_bps:Q", title="Markout (bps, + = adverse)"),
        **enc,
    )
    tip = [*([f"{group}:N"] if group else []), alt.Tooltip("horizon_s:Q", title="horizon (s)"),
           alt.Tooltip("markout_bps:Q", format=".2f"), alt.Tooltip("lo:Q", format=".2f"), alt.Tooltip("hi:Q", format=".2f"),
           alt.Tooltip("n:Q", title="fills", format=",")]  # fmt: skip
    line = base.mark_line(point=True).encode(tooltip=tip)
    band = base.mark_area(opacity=0.15).encode(alt.Y("lo:Q"), alt.Y2("hi:Q"))
    return (band + line).properties(height=300)


def waterfall(steps: pl.DataFrame) -> alt.LayerChart:
    data = steps.with_columns(
        pl.when(pl.col("step") == "Total IS")
        .then(pl.lit("total"))
        .when(pl.col("bps") >= 0)
        .then(pl.lit("cost"))
        .otherwise(pl.lit("gain"))
        .alias("kind")
    )
    base = alt.Chart(inline(data)).encode(alt.X("step:N", sort=None, title=None))
    bars = base.mark_bar().encode(
        alt.Y("start:Q", title="bps of paper notional"),
        alt.Y2("end:Q"),
        alt.Color("kind:N", scale=alt.Scale(domain=["cost", "gain", "total"], range=[BAD, GOOD, NEUTRAL]), legend=None),
        tooltip=["step:N", alt.Tooltip("bps:Q", format=".2f"), alt.Tooltip("currency:Q", format=",.2f")],
    )
    labels = base.mark_text(dy=-8).encode(alt.Y("end:Q"), text=alt.Text("bps:Q", format=".1f"))
    return (bars + labels).properties(height=280)


def order_path(quotes: pl.DataFrame, trades: pl.DataFrame, fills: pl.DataFrame, levels: pl.DataFrame) -> alt.LayerChart:
    """NBBO band, market prints, the order's fills (sized by quantity, coloured by venue) and the benchmark
    prices as horizontal rules."""
    # only the encoded columns go into the spec: a fill row carries ~30 marks the chart never draws
    quotes = quotes.select("ts", "bid", "ask", "mid")
    trades = trades.select("ts", "price", "size", "venue")
    fills = fills.select("ts", "p", "q", "venue", "liquidity")
    x = alt.X("ts:T", title="Time (UTC)", scale=alt.Scale(type="utc"), axis=alt.Axis(format="%H:%M"))
    q = alt.Chart(inline(quotes)).encode(x)
    band = q.mark_area(opacity=0.18, color=NEUTRAL, interpolate="step-after").encode(
        alt.Y("bid:Q", scale=alt.Scale(zero=False), title="Price"), alt.Y2("ask:Q")
    )
    mid = q.mark_line(color="black", strokeWidth=1.2, interpolate="step-after").encode(alt.Y("mid:Q"))
    prints = (
        alt.Chart(inline(trades))
        .mark_circle(color="#9e9e9e", opacity=0.35, size=12)
        .encode(x, alt.Y("price:Q"), tooltip=["ts:T", "price:Q", "size:Q", "venue:N"])
    )
    own = (
        alt.Chart(inline(fills))
        .mark_point(filled=True, opacity=0.7, stroke="white", strokeWidth=0.5)
        .encode(
            x,
            alt.Y("p:Q"),
            alt.Size("q:Q", title="Fill qty", scale=alt.Scale(range=[15, 160])),
            alt.Color("venue:N", title="Venue"),
            tooltip=[
                "ts:T",
                alt.Tooltip("p:Q", title="price"),
                alt.Tooltip("q:Q", title="qty"),
                "venue:N",
                "liquidity:N",
            ],
        )
    )
    rules = (
        alt.Chart(inline(levels))
        .mark_rule(strokeDash=[6, 3])
        .encode(alt.Y("price:Q"), alt.Color("benchmark:N", title="Benchmark"), tooltip=["benchmark:N", "price:Q"])
    )
    return (band + mid + prints + rules + own).resolve_scale(color="independent").properties(height=380)


def law_fit(buckets: pl.DataFrame, fit, y: str, title: str) -> alt.LayerChart:
    """Bucket means of ``y`` (with 95% whiskers) against the law's regressor, and the fitted line."""
    pts = alt.Chart(inline(buckets)).encode(
        alt.X("sqrt_x:Q", title="σ (bps/day) × √(size / ADV)"),
        alt.Y(f"{y}:Q", title=title),
        tooltip=["bucket:N", alt.Tooltip(f"{y}:Q", format=".2f"), alt.Tooltip("orders:Q", format=",")],
    )
    layers = [pts.mark_point(filled=True, size=70, color=NEUTRAL), pts.mark_rule(color=NEUTRAL).encode(
        alt.Y(f"{y}_lo:Q"), alt.Y2(f"{y}_hi:Q"))]  # fmt: skip
    if fit is not None and buckets.height:
        xs = [0.0, float(buckets["sqrt_x"].max()) * 1.1]
        line = pl.DataFrame({"sqrt_x": xs, "fit": [fit.intercept + fit.coefficient * x for x in xs]})
        layers.append(
            alt.Chart(inline(line)).mark_line(color=BAD, strokeDash=[6, 3]).encode(alt.X("sqrt_x:Q"), alt.Y("fit:Q"))
        )
    return alt.layer(*layers).properties(height=300)


def stacked_components(decomp: pl.DataFrame, group: str) -> alt.Chart:
    long = decomp.unpivot(
        index=[group],
        on=[c for c in decomp.columns if c.endswith("_bps") and c != "total_bps"],
        variable_name="component",
        value_name="bps",
    ).with_columns(pl.col("component").str.strip_suffix("_bps"), pl.col(group).cast(pl.String))
    return (
        alt.Chart(inline(long))
        .mark_bar()
        .encode(
            alt.Y(f"{group}:N", title=None),
            alt.X("bps:Q", title="bps of paper notional (stacked; + = cost)"),
            alt.Color("component:N", title="Component"),
            tooltip=[f"{group}:N", "component:N", alt.Tooltip("bps:Q", format=".2f")],
        )
        .properties(height=max(140, 34 * decomp.height))
    )


def reversion(curve: pl.DataFrame) -> alt.LayerChart:
    base = alt.Chart(inline(curve)).encode(alt.X("horizon_s:Q", title="Seconds after the order's end"))
    line = base.mark_line(point=True, color=NEUTRAL).encode(
        alt.Y("reversion_bps:Q", title="Mid move since the end (bps, side-signed)"),
        tooltip=[
            alt.Tooltip("horizon_s:Q"),
            alt.Tooltip("reversion_bps:Q", format=".2f"),
            alt.Tooltip("n:Q", format=","),
        ],
    )
    band = base.mark_area(opacity=0.15, color=NEUTRAL).encode(alt.Y("lo:Q"), alt.Y2("hi:Q"))
    return (band + line).properties(height=300)


def trend(daily: pl.DataFrame, value: str, title: str, height: int = 120) -> alt.Chart:
    """A small daily line (sparkline-sized) of ``value`` by ``day`` with a tooltip per day."""
    big = "notional" in value or value == "orders"
    fmt = ",.0f" if big else ".2f"
    return (
        alt.Chart(inline(daily.select("day", value)))
        .mark_line(point=alt.OverlayMarkDef(size=18), color=NEUTRAL)
        .encode(
            alt.X("yearmonthdate(day):T", title=None, axis=alt.Axis(format="%b %d", tickCount="day")),
            alt.Y(f"{value}:Q", title=title, axis=alt.Axis(format="~s" if big else ".1f")),
            tooltip=[alt.Tooltip("day:T"), alt.Tooltip(f"{value}:Q", format=fmt, title=title)],
        )
        .properties(height=height)
    )


def frontier(front: pl.DataFrame) -> alt.LayerChart:
    """The Almgren-Chriss cost-risk frontier (``impact_models.frontier``): expected impact against timing risk
    per horizon, the recommended horizon marked with a diamond."""
    pts = alt.Chart(inline(front)).encode(
        alt.X("timing_risk_bps:Q", title="Timing risk (bps, 1 sd)"),
        alt.Y("expected_cost_bps:Q", title="Expected impact (bps)"),
        tooltip=[
            "horizon_days:Q",
            alt.Tooltip("pov:Q", format=".1%"),
            alt.Tooltip("expected_cost_bps:Q", format=".1f"),
            alt.Tooltip("timing_risk_bps:Q", format=".1f"),
        ],
    )
    return pts.mark_line(point=True, color=NEUTRAL) + pts.mark_point(
        size=220, color=BAD, shape="diamond"
    ).transform_filter("datum.recommended")


def estimate_bands(est: pl.DataFrame) -> alt.LayerChart:
    """Each model's expected cost (point) and its 90% band (rule): ``analytics.pretrade.model_estimates`` rows."""
    data = alt.Data(values=est.to_dicts())
    point = (
        alt.Chart(data)
        .mark_point(filled=True, size=90, color=NEUTRAL)
        .encode(
            alt.Y("model:N", title=None),
            alt.X("expected_cost_bps:Q", title="Expected cost (bps), 90% band"),
            tooltip=["model:N", "version:N", "target:N", "expected_cost_bps:Q", "lo_bps:Q", "hi_bps:Q"],
        )
    )
    band = alt.Chart(data).mark_rule().encode(alt.Y("model:N"), alt.X("lo_bps:Q"), alt.X2("hi_bps:Q"))
    return (band + point).properties(height=alt.Step(36))  # a fixed height is squeezed by Streamlit's layout


def start_times(starts: pl.DataFrame) -> alt.LayerChart:
    """Expected impact, timing risk and their objective by start time (``pretrade.start_times``), the recommended
    start marked with a diamond."""
    long = starts.unpivot(["expected_cost_bps", "timing_risk_bps", "objective_bps"], index=["start", "recommended"])
    names = {"expected_cost_bps": "expected impact", "timing_risk_bps": "timing risk", "objective_bps": "cost + λ·risk"}
    long = long.with_columns(pl.col("variable").replace_strict(names).alias("measure"))
    base = alt.Chart(inline(long)).encode(
        alt.X("start:O", title="Start (New York), then to the close"),
        alt.Y("value:Q", title="bps"),
        alt.Color("measure:N", title=None),
        tooltip=["start:O", "measure:N", alt.Tooltip("value:Q", format=".1f")],
    )
    best = base.transform_filter("datum.recommended && datum.variable == 'objective_bps'")
    return base.mark_line(point=True) + best.mark_point(size=220, color=BAD, shape="diamond")


def residuals(expected, realised, limit: int = 3000) -> alt.LayerChart:
    """Residual (realised - expected, bps; + = cost above the model) against expected cost per order, at most
    ``limit`` orders drawn at random (seeded), with the zero line: a model without bias scatters evenly about it
    at every level of expected cost."""
    d = pl.DataFrame({"expected_bps": expected, "residual_bps": pl.Series(realised) - pl.Series(expected)})
    d = d.filter(pl.col("residual_bps").is_finite())
    d = d.sample(limit, seed=0) if d.height > limit else d
    pts = (
        alt.Chart(inline(d))
        .mark_circle(size=14, opacity=0.35, color=NEUTRAL)
        .encode(
            alt.X("expected_bps:Q", title="Expected (bps)"),
            alt.Y("residual_bps:Q", title="Realised − expected (bps)"),
            tooltip=[alt.Tooltip("expected_bps:Q", format=".1f"), alt.Tooltip("residual_bps:Q", format=".1f")],
        )
    )
    zero = alt.Chart(alt.Data(values=[{"y": 0}])).mark_rule(color="gray", strokeDash=[4, 4]).encode(y="y:Q")
    return pts + zero


def gap_over_time(gaps: pl.DataFrame, period: str = "day") -> alt.LayerChart:
    """Realised minus expected cost per ``period`` (``analytics.expectation.gap_by`` rows): the notional-weighted
    gap with its 95% band and a zero line (above zero = the desk paid more than the model expected)."""
    x = alt.X(f"{period}:T", title=None, scale=alt.Scale(type="utc"), axis=alt.Axis(format="%b %d"))
    base = alt.Chart(inline(gaps)).encode(x)
    tip = [alt.Tooltip(f"{period}:T"), alt.Tooltip("gap_bps:Q", format=".2f", title="realised − expected (bps)"),
           alt.Tooltip("gap_bps_lo:Q", format=".2f", title="95% low"),
           alt.Tooltip("gap_bps_hi:Q", format=".2f", title="95% high"), alt.Tooltip("orders:Q", format=",")]  # fmt: skip
    band = base.mark_area(opacity=0.18, color=NEUTRAL).encode(
        alt.Y("gap_bps_lo:Q", title="Realised − expected (bps)"), alt.Y2("gap_bps_hi:Q")
    )
    line = base.mark_line(point=True, color=NEUTRAL).encode(alt.Y("gap_bps:Q"), tooltip=tip)
    zero = alt.Chart(alt.Data(values=[{"y": 0}])).mark_rule(color="gray", strokeDash=[4, 4]).encode(y="y:Q")
    return (band + zero + line).properties(height=260)
