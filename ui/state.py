"""Cached access to the lake for the pages.

The DuckDB connection is cached per (lake root, lake version): an ingest bumps the version, so the next
page run opens a connection over the new snapshot and every ``st.cache_data`` entry keyed by the version
is naturally bypassed. Each query runs on its own cursor (DuckDB connections are not shared across threads).
"""

from __future__ import annotations

import threading

import duckdb
import polars as pl
import streamlit as st

from analytics import catalog, registry
from analytics.store import Lake, default_lake_path


@st.cache_resource(show_spinner=False)
def _lake(root: str) -> Lake:
    return Lake(root)


def lake() -> Lake:
    """The lake of ``ANALYTICS_LAKE`` (else ``data/lake``), resolved on every run so tests can switch it."""
    return _lake(str(default_lake_path()))


@st.cache_resource(show_spinner=False, max_entries=4)
def _connection(root: str, version: int) -> duckdb.DuckDBPyConnection:
    return Lake(root).connect(Lake(root).manifest(version))


def cursor() -> duckdb.DuckDBPyConnection:
    """A cursor over the current lake snapshot."""
    lk = lake()
    return _connection(str(lk.root), lk.version()).cursor()


def version() -> int:
    return lake().version()


@st.cache_data(show_spinner=False, max_entries=8)
def filter_options(root: str, version: int) -> dict:
    kept = catalog.kept_options(Lake(root), version)  # a cold start needs no connection for the sidebar
    return (
        kept if kept is not None else catalog.filter_options(_connection(root, version).cursor(), Lake(root), version)
    )


def options() -> dict:
    lk = lake()
    return filter_options(str(lk.root), lk.version())


# --- TCA --------------------------------------------------------------------------------------------
def ensure_tca(f) -> int:
    """Make sure the TCA of the filter's dates is stored for the current version (computing the missing
    days with a progress display); returns the version."""
    from analytics import tca

    lk = lake()
    v = lk.version()
    missing = tca.missing_days(lk, v, f.start, f.end)
    if missing:
        with st.status(f"Computing TCA for {len(missing)} day(s)…", expanded=False) as status:
            bar = st.progress(0.0)
            tca.ensure(lk, f.start, f.end, progress=lambda x, m: bar.progress(min(x, 1.0), text=m), version=v)
            status.update(label="TCA ready", state="complete")
    return v


# A filter's orders (up to a year: ~1M rows) are cached as a resource (shared, never pickled: st.cache_data
# would serialise them on every hit); Polars frames are immutable, so sharing them between sessions is safe.
# Fills (a year: ~25M) are never loaded whole: their aggregates run in DuckDB over the stored files.
@st.cache_resource(show_spinner=False, max_entries=16)
def _tca_orders(root: str, version: int, f) -> pl.DataFrame:
    from analytics import tca

    rows = tca.load_orders(Lake(root), _connection(root, version).cursor(), f, version)
    return tca.with_buckets(rows) if rows.height else rows


def tca_orders(f) -> pl.DataFrame:
    """The filter's stored TCA rows, with size and time-of-day buckets."""
    lk = lake()
    return _tca_orders(str(lk.root), ensure_tca(f), f)


@st.cache_data(show_spinner=False, max_entries=64)
def _fill_aggregates(root: str, version: int, f, kind: str) -> pl.DataFrame:
    from analytics import tca

    con = _connection(root, version).cursor()
    if kind == "venue_costs":
        return tca.venue_costs(Lake(root), con, f, version)
    return tca.markouts_sql(Lake(root), con, f, kind == "markouts_venue", version)


def venue_costs(f) -> pl.DataFrame:
    """Fill arrival cost by venue (notional-weighted, 95% intervals), cached per version and filters."""
    lk = lake()
    return _fill_aggregates(str(lk.root), ensure_tca(f), f, "venue_costs")


def markouts(f, by_venue: bool) -> pl.DataFrame:
    lk = lake()
    return _fill_aggregates(str(lk.root), ensure_tca(f), f, "markouts_venue" if by_venue else "markouts")


@st.cache_resource(show_spinner=False, max_entries=32)
def _top(root: str, version: int, f, n: int) -> pl.DataFrame:
    from analytics import tca

    return tca.top(_tca_orders(root, version, f), n)


def top_orders(f, n: int) -> pl.DataFrame:
    """The ``n`` orders of the filters with the highest IS (tca.top), cached per version and filters."""
    lk = lake()
    return _top(str(lk.root), ensure_tca(f), f, n)


@st.cache_data(show_spinner=False, max_entries=64)
def _tape(root: str, version: int, symbol: str, start, end):
    from analytics import tca

    return tca.order_tape(_connection(root, version).cursor(), symbol, start, end, Lake(root))


@st.cache_data(show_spinner=False, max_entries=64)
def _order_fills(root: str, version: int, order_id: str, day) -> pl.DataFrame:
    from analytics import tca

    return tca.order_fills(Lake(root), _connection(root, version).cursor(), order_id, day, version=version)


def order_fills(order_id: str, day) -> pl.DataFrame:
    """One order's fills for the drill-down (read from its day's stored file, not from the page's frame)."""
    lk = lake()
    return _order_fills(str(lk.root), lk.version(), order_id, day)


@st.cache_data(show_spinner=False, max_entries=32)
def _order_path_spec(root: str, version: int, order_id: str, day, symbol: str, start, end, levels: tuple) -> dict:
    from ui import charts

    quotes, prints = _tape(root, version, symbol, start, end)
    fills = _order_fills(root, version, order_id, day)
    lv = pl.DataFrame(list(levels), schema=["benchmark", "price"], orient="row")
    return charts.order_path(quotes, prints, fills, lv).to_dict(validate=False)


def order_path_spec(order_id: str, day, symbol: str, start, end, levels: tuple) -> dict:
    """The drill-down chart's Vega-Lite spec, built once per order and version (thousands of quote rows)."""
    lk = lake()
    return _order_path_spec(str(lk.root), lk.version(), order_id, day, symbol, start, end, levels)


@st.cache_data(show_spinner=False, max_entries=8)
def _lake_summary(root: str, version: int) -> dict:
    return Lake(root).summary()


def lake_summary() -> dict:
    """Lake.summary() (tables, rows, quarantine by reason), cached per version."""
    lk = lake()
    return _lake_summary(str(lk.root), lk.version())


@st.cache_data(show_spinner=False, max_entries=32)
def _portfolios(root: str, version: int, start, end, ids: tuple[str, ...]) -> pl.DataFrame:
    from analytics import overview

    return overview.portfolios(_connection(root, version).cursor(), start, end, ids)


# Aggregates of the filter's orders that the pages redraw on every rerun: computed once per (version, filters,
# function, arguments). Only these named functions can be called (no user text reaches the dispatch).
def _order_functions() -> dict:
    from analytics import cost_attribution, impact, tca

    return {
        "summary": tca.summary,
        "histogram": tca.histogram,
        "by_group": tca.by_group,
        "fit_sqrt_law": impact.fit_sqrt_law,
        "buckets": impact.buckets,
        "reversion_curve": impact.reversion_curve,
        "decompose": cost_attribution.decompose,
        "compare": cost_attribution.compare,
    }


@st.cache_data(show_spinner=False, max_entries=128)
def _on_orders(root: str, version: int, f, name: str, args: tuple):
    return _order_functions()[name](_tca_orders(root, version, f), *args)


def on_orders(f, name: str, *args):
    """``name``(orders, *args) for the filter's orders (summary, histogram, by_group, fit_sqrt_law,
    buckets, reversion_curve, decompose, compare), cached per version, filters and arguments."""
    lk = lake()
    return _on_orders(str(lk.root), ensure_tca(f), f, name, args)


@st.cache_resource(show_spinner=False, max_entries=4)
def _champions(root: str, stamp: int) -> dict:
    from analytics import tracking

    lk = Lake(root)
    out = {m: tracking.load_champion(lk, m) for m in ("istar", "almgren")}
    out["learned"] = tracking.load_learned_champion(lk)
    return out


def champions() -> dict:
    """(model, version) of each model's champion in the lake's MLflow registry: ``istar`` and ``almgren`` (their
    published parameters and None before any training) and ``learned`` ((None, None) before any training).
    Reloaded after a retrain from the app, which bumps ``models_stamp``."""
    return _champions(str(lake().root), st.session_state.get("models_stamp", 0))


@st.cache_data(show_spinner=False, max_entries=16)
def _overview(root: str, version: int, f, champion: str | None, stamp: int) -> dict:
    from analytics import overview

    lk = Lake(root)
    key = overview.figures_key(f, champion)
    figs = overview.stored_figures(lk, version, key)
    if figs is None:
        prev = overview.previous_period(f)
        orders = _tca_orders(root, version, f)
        figs = overview.figures(
            orders,
            _tca_orders(root, version, prev) if prev is not None else None,
            _fill_aggregates(root, version, f, "venue_costs") if orders.height else None,
            _portfolios(root, version, f.start, f.end, f.portfolio),
            _champions(root, stamp)["istar"][0],
        )
        overview.store_figures(lk, version, key, figs)
    return figs


def overview_figures(f) -> dict:
    """overview.figures of the filters (headline vs the previous period, board, daily, portfolios, realised vs
    expected under the I-Star champion, ``champion``: its version), read from the lake when stored for this
    version, else computed from the cached orders and stored."""
    from analytics import overview

    lk = lake()
    v = ensure_tca(f)
    prev = overview.previous_period(f)
    if prev is not None:
        ensure_tca(prev)
    stamp = st.session_state.get("models_stamp", 0)
    mirror = registry.versions(lk)  # no MLflow import on a cold start when the champions are mirrored
    if mirror is None:  # trained before the mirror existed: write it once (MLflow imported this one time)
        from analytics import tracking

        mirror = tracking.sync_mirror(lk)
    champion = mirror.get("impact-istar", {}).get("version")
    return {**_overview(str(lk.root), v, f, champion, stamp), "champion": champion}


_warming: set = set()


def prewarm_orders(f) -> None:
    """Load the filter's orders into the shared cache on a background thread: the landing page draws from
    stored figures, and the page the user opens next needs the orders. Once per (lake, version, filters)."""
    lk = lake()
    key = (str(lk.root), lk.version(), f)
    if key in _warming:
        return
    _warming.add(key)
    threading.Thread(target=_tca_orders, args=key, daemon=False, name="prewarm-orders").start()


@st.cache_data(show_spinner=False, max_entries=8)
def _datasets(root: str, version: int) -> list[dict]:
    from analytics import datasets, overview

    return overview.dataset_status(datasets.list_datasets(Lake(root)))


def dataset_status() -> list[dict]:
    """The latest version of each training dataset with its quality figure."""
    lk = lake()
    return _datasets(str(lk.root), lk.version())


# --- Execution quality: per (version, filters, dimension) over the stored per-(order, venue) day sums (the fills
# are summed once per lake version); a rerun (toggle, highlight, period) only redraws ---------------------------
@st.cache_data(show_spinner="Aggregating fills…", max_entries=32)
def _quality_analysis(root: str, version: int, f, dim: str):
    from analytics import quality

    orders = _tca_orders(root, version, f)
    return quality.analyse(Lake(root), _connection(root, version).cursor(), f, dim, version, orders=orders)


def quality_analysis(f, dim: str):
    """quality.analyse of the filters by ``dim`` (metrics, bootstrap intervals, scores, trends), cached."""
    lk = lake()
    return _quality_analysis(str(lk.root), ensure_tca(f), f, dim)


@st.cache_data(show_spinner="Adjusting for difficulty…", max_entries=32)
def _quality_adjusted(root: str, version: int, f, dim: str):
    from analytics import quality

    con = _connection(root, version).cursor()
    units = quality.adjustment_units(Lake(root), con, f, dim, _tca_orders(root, version, f), version)
    return quality.adjust(units, dimension=dim)


def quality_adjusted(f, dim: str):
    """quality.adjust (raw and difficulty-adjusted cost per key, Holm-corrected pairs) of the filters, cached."""
    lk = lake()
    return _quality_adjusted(str(lk.root), ensure_tca(f), f, dim)


@st.cache_data(show_spinner=False, max_entries=16)
def _rule605(root: str, version: int, f) -> pl.DataFrame:
    from analytics import quality

    orders = _tca_orders(root, version, f)
    return quality.rule605(Lake(root), _connection(root, version).cursor(), f, version, orders=orders)


def rule605(f) -> pl.DataFrame:
    """The Rule 605-style monthly report of the filters, cached per version."""
    lk = lake()
    return _rule605(str(lk.root), ensure_tca(f), f)


# --- Post-trade vs expectation: realised minus the I-Star champion's expectation per broker, algo or period ------
@st.cache_data(show_spinner=False, max_entries=32)
def _post_vs_expected(root: str, version: int, f, stamp: int, by: str, min_orders: int) -> pl.DataFrame:
    from analytics import expectation

    fit, _ = _champions(root, stamp)["istar"]
    return expectation.post_vs_expected(_tca_orders(root, version, f), fit, by, min_orders)


def post_vs_expected(f, by: str, min_orders: int = 30) -> pl.DataFrame:
    """expectation.post_vs_expected of the filter's orders under the I-Star champion, cached per (version,
    filters, champion stamp, grouping); recomputed after a retrain from the app (``models_stamp``)."""
    lk = lake()
    v = ensure_tca(f)
    return _post_vs_expected(str(lk.root), v, f, st.session_state.get("models_stamp", 0), by, min_orders)


@st.cache_data(show_spinner=False, max_entries=16)
def _volume_profile(root: str, version: int, asof) -> pl.DataFrame:
    from analytics import pretrade

    return pretrade.volume_profile(_connection(root, version).cursor(), asof)


def volume_profile(asof) -> pl.DataFrame:
    """pretrade.volume_profile (the market's intraday volume shape before ``asof``), cached per version."""
    lk = lake()
    return _volume_profile(str(lk.root), lk.version(), asof)
