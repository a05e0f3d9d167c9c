"""Reports: the overview's figures and the detail pages' tables and charts, composed into one document and
rendered as a self-contained HTML file (charts as inline SVG, no script, no CDN) or a PDF with the same
content (charts as PNG rendered offline by vl-convert, laid out by fpdf2: pure-Python wheels, no system
libraries, so a fresh machine installs it with pip alone).

compute (``analytics``) -> chart (``ui.charts``) -> compose (:func:`build`) -> render (:func:`to_html`,
:func:`to_pdf`). No Streamlit here: the CLI (``python -m analytics report``) and the Reports page call the
same functions, so the page's download equals the CLI's file.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import altair as alt
import polars as pl

from analytics import overview, risk, tca
from analytics.conventions import BPS
from analytics.filters import Filters
from analytics.store import snapshot_version, write_text_atomic
from ui import charts

SECTIONS = {
    "summary": "Executive summary",
    "tca": "Transaction cost analysis",
    "quality": "Execution quality",
    "attribution": "Performance attribution",
    "models": "Cost models",
}
TABLE_ROWS = 25  # rows of a table shown in a report (the full tables are in the app's downloads)


@dataclass
class Section:
    key: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[tuple[str, pl.DataFrame]] = field(default_factory=list)
    charts: list[tuple[str, alt.TopLevelMixin]] = field(default_factory=list)


@dataclass
class Report:
    title: str
    period: str
    source: str
    generated: str
    sections: list[Section]


@dataclass(frozen=True)
class Definition:
    """A saved report: name, sections, period (``YYYY-MM`` or start/end) and the sidebar filters."""

    name: str
    sections: tuple[str, ...] = tuple(SECTIONS)
    start: str | None = None
    end: str | None = None
    portfolio: tuple[str, ...] = ()
    symbol: tuple[str, ...] = ()
    broker: tuple[str, ...] = ()
    algo: tuple[str, ...] = ()
    venue: tuple[str, ...] = ()

    def filters(self) -> Filters:
        d = dt.date.fromisoformat
        return Filters(
            start=d(self.start) if self.start else None,
            end=d(self.end) if self.end else None,
            portfolio=self.portfolio,
            symbol=self.symbol,
            broker=self.broker,
            algo=self.algo,
            venue=self.venue,
        )


def month_span(period: str) -> tuple[dt.date, dt.date]:
    """``2026-03`` -> (2026-03-01, 2026-03-31)."""
    if not re.fullmatch(r"\d{4}-\d{2}", period):
        raise ValueError(f"period must be YYYY-MM, got {period!r}")
    start = dt.date.fromisoformat(f"{period}-01")
    nxt = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return start, nxt - dt.timedelta(days=1)


# --- compose ----------------------------------------------------------------------------------------
def _summary(lake, con, f: Filters, orders: pl.DataFrame, progress) -> Section:
    prev_f = overview.previous_period(f)
    prev = tca.load_orders(lake, con, prev_f) if prev_f else None
    head = overview.headline(orders, prev)
    board = overview.board(orders, tca.venue_costs(lake, con, f)) if orders.height else []
    status = overview.data_status(lake.summary())
    books = overview.portfolios(con, f.start, f.end, f.portfolio)
    from analytics import tracking

    expect = overview.expectation(orders, tracking.load_champion(lake, "istar")[0]) if orders.height else None
    sec = Section("summary", SECTIONS["summary"], paragraphs=overview.narrative(head, board, status, books, expect))
    rows = [
        ("Traded notional", f"{head.get('filled_notional', 0):,.0f}"),
        ("Orders", f"{head.get('orders', 0):,}"),
        ("Fills", f"{head.get('fills', 0):,}"),
        ("IS (bps of paper notional)", _fmt(head.get("is_total_bps"))),
        ("IS (currency)", f"{head.get('is_total_cost', 0):,.0f}"),
        ("Arrival cost (bps)", _fmt(head.get("arrival_cost_bps"))),
        ("IS, previous period (bps)", _fmt(head.get("is_total_bps_prev"))),
    ]
    sec.tables.append(("Headline", pl.DataFrame(rows, schema=["figure", "value"], orient="row")))
    if orders.height:
        day = overview.daily(orders)
        sec.charts.append(("Implementation shortfall by day (bps)", charts.trend(day, "is_total_bps", "IS (bps)")))
        sec.charts.append(("Traded notional by day", charts.trend(day, "filled_notional", "Notional")))
    return sec


def _tca(lake, con, f: Filters, orders: pl.DataFrame, progress) -> Section:
    sec = Section("tca", SECTIONS["tca"])
    if orders.is_empty():
        sec.paragraphs.append("No orders in this period.")
        return sec
    sec.paragraphs.append(
        charts.COST_NOTE + " arrival_cost_bps: the filled orders' arrival cost weighted by filled notional (the same "
        "figure as the execution quality section's). Whiskers and lo/hi columns: 95% intervals, each order one "
        "independent unit (Student t); markout intervals resample whole parent orders, never single fills."
    )
    comp = tca.with_buckets(orders)
    for dim in ("broker", "algo", "size_bucket"):
        g = tca.by_group(comp, dim, "arrival_cost_bps", min_orders=30)
        sec.tables.append((f"Arrival cost by {dim} (bps; small_sample: fewer than 30 orders)", g.drop("n")))
        if dim != "size_bucket":
            sec.charts.append(
                (f"Arrival cost by {dim} (bps)", charts.bars_with_ci(g, dim, "arrival_cost_bps", "Arrival cost (bps)"))
            )
    curve = tca.markouts_sql(lake, con, f, by_venue=True)
    if curve.height:
        sec.charts.append(("Markouts by venue (bps)", charts.markout_lines(curve, "venue")))
    return sec


def _attribution(lake, con, f: Filters, orders: pl.DataFrame, progress) -> Section:
    sec = Section("attribution", SECTIONS["attribution"])
    books = overview.portfolios(con, f.start, f.end, f.portfolio)
    if books.is_empty():
        sec.paragraphs.append("No portfolio has holdings and benchmark weights in this period.")
        return sec
    sec.paragraphs.append(
        "Brinson-Fachler by sector, linked with Carino (1999); effects in bps, positive = added to the active "
        "return. Returns are compounded over the period."
    )
    bps = [
        (pl.col(c) * BPS).round(1).alias(f"{c}_bps")
        for c in ("portfolio_return", "benchmark_return", "active_return", "top_value")
    ]
    sec.tables.append(("Portfolios", books.select("portfolio_id", "benchmark_id", *bps, "top_group", "top_effect")))
    peers = risk.peer_table(risk.daily_returns(con, f.start, f.end, list(f.portfolio) or None))
    if peers.height:
        keep = [c for c in ("portfolio_id", "strategy", "rank_ir", "annual_return", "annual_volatility", "sharpe_ratio",
                            "information_ratio", "tracking_error", "max_drawdown") if c in peers.columns]  # fmt: skip
        sec.tables.append(("Risk-adjusted returns and peer ranking (annualised, 252 days)", peers.select(keep)))
    return sec


def _quality(lake, con, f: Filters, orders: pl.DataFrame, progress) -> Section:
    from analytics import quality

    sec = Section("quality", SECTIONS["quality"])
    if orders.is_empty():
        sec.paragraphs.append("No orders in this period.")
        return sec
    v = snapshot_version(con)  # the snapshot the report reads, not whatever is current by now
    quality.ensure_sums(lake, con, f.start, f.end, v)
    sec.paragraphs.append(
        "Venues by their fills (Rule 605 definitions: effective over quoted spread, price improvement against the "
        "NBBO at the time of order receipt where the fill carries it, see nbbo_at; realized spreads); brokers and "
        "algos by adjusted_bps, the arrival cost adjusted for what was known at arrival (the regression's expected "
        "cost on the desk's average mix, each order weighted equally), beside arrival_cost_bps, the raw cost "
        "weighted by filled notional: the TCA section's figure, one name per definition. Intervals: 95%, "
        "clustered on parent orders (cluster-robust, Student t)."
    )
    an = quality.analyse(lake, con, f, "venue", v, orders=orders)
    keep = ["key", "orders", "fills", "score", "arrival_cost_bps", "effective_spread_bps", "eq_ratio",
            "price_improvement_bps", "markout_cost_bps_60s", "nbbo_at", "small_sample"]  # fmt: skip
    sec.tables.append(("Venues", an.leaderboard.select([c for c in keep if c in an.leaderboard.columns])))
    for dim in ("broker", "algo"):
        adj = quality.adjust(quality.adjustment_units(lake, con, f, dim, orders, v), dimension=dim)
        if adj.table.height:
            raw = tca.by_group(orders, dim, "arrival_cost_bps").select(pl.col(dim).alias("key"), "arrival_cost_bps")
            sec.tables.append((
                f"{dim.capitalize()}s, difficulty-adjusted arrival cost (bps)",
                adj.table.select("key", "n", "adjusted_bps", "adjusted_lo", "adjusted_hi", "small_sample").join(
                    raw, on="key", how="left"
                ),
            ))  # fmt: skip
    r605 = quality.rule605(lake, con, f, v, orders=orders)
    if r605.height:
        sec.tables.append(("Rule 605-style report (by order type and notional size)", r605))
    return sec


def _models(lake, con, f: Filters, orders: pl.DataFrame, progress) -> Section:
    from analytics import expectation as ex
    from analytics import tracking

    sec = Section("models", SECTIONS["models"])
    champs = {m: tracking.load_champion(lake, m) for m in ("istar", "almgren")}
    rows = [
        {
            "model": tracking.registered_name(m),
            "champion": ver or "published",
            **{k: float(x) for k, x in fit.params.items()},
        }
        for m, (fit, ver) in champs.items()
    ]
    sec.tables.append(("Impact model champions (parameters)", pl.DataFrame(rows, infer_schema_length=None)))
    runs = tracking.runs(lake)
    if runs.height:
        keep = [c for c in ("start", "model", "dataset", "holdout_mae_bps", "holdout_coverage", "holdout_bias_bps",
                            "holdout_bucket_accuracy") if c in runs.columns]  # fmt: skip
        sec.tables.append(("Training runs (holdout: the latest 25% of days)", runs.select(keep)))
    fit, ver = champs["istar"]
    gaps = ex.per_order(orders, fit)
    if gaps.height:
        e = ex.summary(gaps, fit)  # the summary section's figure too (overview.expectation): one definition
        sec.paragraphs.append(
            f"Realised vs expected impact (I-Star {e['model_version']}, filled-notional weighted over {e['orders']:,} "
            f"orders): realised {e['realised_bps']:+.1f} bps, expected {e['expected_bps']:+.1f} bps, realised − "
            f"expected {e['gap_bps']:+.1f} bps (95% interval {e['gap_lo_bps']:+.1f} to {e['gap_hi_bps']:+.1f}; + = worse "
            "than expected)."
        )
        dr = tracking.drift(gaps, tracking.registered_name("istar"), ver, "1w")
        sec.paragraphs.append(
            "Drift by week, out of sample only (orders after the champion's training data: "
            f"{int(gaps['out_of_sample'].sum()):,} of {gaps.height:,}): realised − expected with its 95% interval "
            "(bias = its opposite, the former column); a week is flagged for retraining when the interval excludes "
            f"zero and |gap| exceeds {tracking.DRIFT_THRESHOLD_BPS:g} bps."
        )
        if dr.height:
            sec.tables.append(("Drift (PredictiveAnalyticsEvent)", dr.drop("event_type", "code_version")))
    return sec


BUILDERS = {"summary": _summary, "tca": _tca, "quality": _quality, "attribution": _attribution, "models": _models}


def build(
    lake, f: Filters, sections: tuple[str, ...] = tuple(SECTIONS), progress=None, title: str | None = None
) -> Report:
    """Compose the chosen sections for the filters (computing any missing TCA days first)."""
    unknown = [s for s in sections if s not in BUILDERS]
    if unknown:
        raise ValueError(f"unknown section(s) {unknown}; choose from {list(BUILDERS)}")
    say = progress or (lambda x, m: None)
    say(0.0, "TCA for the period")
    v = tca.ensure(lake, f.start, f.end)
    con = lake.connect(lake.manifest(v))
    try:
        orders = tca.load_orders(lake, con, f, v)
        out = []
        for i, key in enumerate(sections):
            say(0.2 + 0.7 * i / len(sections), SECTIONS[key])
            out.append(BUILDERS[key](lake, con, f, orders, progress))
    finally:
        con.close()
    period = f"{f.start or 'start'} to {f.end or 'end'}"
    say(1.0, "composed")
    return Report(
        title=title or "Post-trade analytics report",
        period=period,
        source=f"lake@{v} · tca {tca.CODE_VERSION}",
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        sections=out,
    )


# --- render -----------------------------------------------------------------------------------------
def _fmt(x) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:,.0f}" if abs(x) >= 1e5 else f"{x:,.2f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _cells(df: pl.DataFrame) -> tuple[list[str], list[list[str]]]:
    df = df.head(TABLE_ROWS)
    return df.columns, [[_fmt(v) for v in row] for row in df.iter_rows()]


def _spec(chart: alt.TopLevelMixin, width: int = 640) -> dict:
    return chart.properties(width=width).to_dict()


CSS = """body{font-family:Helvetica,Arial,sans-serif;margin:2em auto;max-width:60em;color:#222}
h1{color:#1f4e79}h2{border-bottom:2px solid #1f4e79;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.85em}th,td{border:1px solid #ccc;padding:.25em .6em}
th{background:#eef3f8;text-align:left}td{text-align:right}td:first-child{text-align:left}
.meta{color:#666;font-size:.9em}figure{margin:1em 0}figcaption{font-weight:bold;margin-bottom:.3em}"""


def to_html(report: Report) -> str:
    """One self-contained HTML document: inline CSS, charts as inline SVG (no JavaScript, no external URL)."""
    import vl_convert as vlc

    e = html.escape
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(report.title)}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>{e(report.title)}</h1><p class='meta'>Period {e(report.period)} · source {e(report.source)} · "
        f"generated {e(report.generated)}</p>",
    ]
    for sec in report.sections:
        parts.append(f"<section id='{e(sec.key)}'><h2>{e(sec.title)}</h2>")
        parts += [f"<p>{e(p)}</p>" for p in sec.paragraphs]
        for name, chart in sec.charts:
            svg = vlc.vegalite_to_svg(_spec(chart))
            parts.append(f"<figure><figcaption>{e(name)}</figcaption>{svg}</figure>")
        for name, df in sec.tables:
            cols, rows = _cells(df)
            head = "".join(f"<th>{e(c)}</th>" for c in cols)
            body = "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in r) + "</tr>" for r in rows)
            more = (
                f"<p class='meta'>{df.height - TABLE_ROWS:,} more rows in the app.</p>"
                if df.height > TABLE_ROWS
                else ""
            )
            parts.append(f"<h3>{e(name)}</h3><table><tr>{head}</tr>{body}</table>{more}")
        parts.append("</section>")
    parts.append("</body></html>")
    return "".join(parts)


def _latin1(text: str) -> str:
    """PDF core fonts are Latin-1: map the few typographic characters we use, replace the rest."""
    text = text.replace("−", "-").replace("–", "-").replace("—", "-").replace("·", "|").replace("≥", ">=")
    return text.encode("latin-1", "replace").decode("latin-1")


def to_pdf(report: Report) -> bytes:
    """The same content as :func:`to_html` as an A4 PDF (charts as 2x PNG from vl-convert)."""
    import vl_convert as vlc
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_title(_latin1(report.title))
    pdf.set_creator("post-trade analytics")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.multi_cell(0, 10, _latin1(report.title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    pdf.multi_cell(
        0, 5, _latin1(f"Period {report.period} | source {report.source} | generated {report.generated}"),
        new_x="LMARGIN", new_y="NEXT",
    )  # fmt: skip
    for sec in report.sections:
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", 14)
        pdf.multi_cell(0, 8, _latin1(sec.title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10)
        for p in sec.paragraphs:
            pdf.multi_cell(0, 5, _latin1(p), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1)
        for name, chart in sec.charts:
            png = vlc.vegalite_to_png(_spec(chart, 520), scale=2)
            w_px, h_px = _png_size(png)
            height = pdf.epw * h_px / w_px
            if pdf.get_y() + height + 8 > pdf.page_break_trigger:  # keep the caption with its chart
                pdf.add_page()
            pdf.set_font("Helvetica", "B", 10)
            pdf.multi_cell(0, 6, _latin1(name), new_x="LMARGIN", new_y="NEXT")
            pdf.image(io.BytesIO(png), w=pdf.epw)
            pdf.ln(2)
        for name, df in sec.tables:
            cols, rows = _cells(df)
            pdf.set_font("Helvetica", "B", 10)
            pdf.multi_cell(0, 6, _latin1(name), new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", "", 6 if len(cols) > 8 else 8)
            with pdf.table(headings_style=FontFace(emphasis="BOLD", fill_color=(238, 243, 248))) as table:
                for r in [cols, *rows]:
                    row = table.row()
                    for v in r:
                        row.cell(_latin1(str(v)))
            if df.height > TABLE_ROWS:
                pdf.multi_cell(0, 5, f"{df.height - TABLE_ROWS:,} more rows in the app.", new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
    return bytes(pdf.output())


def _png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (bytes 16-24)."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def render(report: Report, fmt: str) -> bytes:
    if fmt == "html":
        return to_html(report).encode("utf-8")
    if fmt == "pdf":
        return to_pdf(report)
    raise ValueError(f"format must be html or pdf, got {fmt!r}")


# --- saved definitions ------------------------------------------------------------------------------
def _slug(name: str) -> str:
    """A file-name-safe key for a definition's name: the user's text never becomes a path."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]
    if not slug:
        raise ValueError("a report definition needs a name with letters or digits")
    return slug


def definitions_dir(lake) -> Path:
    return Path(lake.root) / "reports" / "definitions"


def save_definition(lake, d: Definition, replace: bool = False) -> Path:
    """Save a definition as JSON under the lake, atomically; returns its path. Saving under the same name again
    updates it. A different name that maps to the same file ("Board pack", "board-pack!") raises ValueError
    instead of overwriting the other definition silently, and so does a file there that cannot be read, unless
    ``replace``."""
    path = definitions_dir(lake) / f"{_slug(d.name)}.json"
    if path.exists() and not replace:
        try:
            other = _read_definition(path).name
        except ValueError as e:
            raise ValueError(
                f"'{d.name}' would replace {path.name}, a saved report that cannot be read ({e})"
            ) from None
        if other != d.name:
            raise ValueError(
                f"'{d.name}' would replace the saved report '{other}' (the same file name): choose another name"
            )
    return write_text_atomic(path, json.dumps(asdict(d), indent=2))


def _read_definition(path: Path) -> Definition:
    """One saved definition, checked field by field; ValueError saying what is wrong."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"not readable JSON: {e}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"].strip():
        raise ValueError("not a report definition (no name)")
    known = {f.name for f in fields(Definition)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}")
    kw = {}
    for k, v in raw.items():
        if k in ("start", "end"):
            if v is not None and not isinstance(v, str):
                raise ValueError(f"{k} is not a date")
            if v:
                try:
                    dt.date.fromisoformat(v)
                except ValueError:
                    raise ValueError(f"{k} {v!r} is not a date (YYYY-MM-DD)") from None
            kw[k] = v
        elif k != "name":
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ValueError(f"{k} is not a list of names")
            kw[k] = tuple(v)
    bad = [x for x in kw.get("sections", ()) if x not in SECTIONS]
    if bad:
        raise ValueError(f"unknown section(s) {bad}")
    return Definition(name=raw["name"], **kw)


def scan_definitions(lake) -> tuple[list[Definition], list[dict]]:
    """(the saved definitions that read, in file order; the files that do not: ``{"file", "problem"}``)."""
    folder = definitions_dir(lake)
    out, unreadable = [], []
    for p in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            out.append(_read_definition(p))
        except ValueError as e:
            unreadable.append({"file": p.name, "problem": str(e)})
    return out, unreadable


def load_definitions(lake) -> list[Definition]:
    """The saved definitions that can be read (:func:`scan_definitions` also lists those that cannot)."""
    return scan_definitions(lake)[0]
