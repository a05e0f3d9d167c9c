"""Live alerts: rules over the live state, one open alert per (rule, subject), the alert log under the lake.

Each rule is a pure function returning its current breaches, one row per subject, with the columns of
``PerformanceAnomalyAlertEvent`` (EVENTS.md) that the rule knows: ``rule, subject_type, subject, metric, value,
expected, threshold, message, trigger_event_ids, trigger_ts`` (trigger_ts: the latest trigger's arrival at the
intake, epoch seconds). :class:`AlertBook` turns breaches into events: a breach of a (rule, subject) with no open
alert raises one (``alert_id, ts, severity, latency_ms`` added); an open alert whose breach is gone is cleared.
Thresholds and severities come from ``alerts.toml`` (see that file for each rule's definition).

Storage (append-only JSON Lines under ``<lake>/live/``, each record one ``write`` of one line with O_APPEND,
fsynced; a torn last line after a crash is skipped by the reader):
- ``alerts.jsonl``: the PerformanceAnomalyAlertEvent of every raised alert;
- ``alert_actions.jsonl``: ``{"alert_id", "action": "clear" | "ack" | "snooze", "ts", "until"}`` (the engine
  writes clears, the Live page acknowledgements and snoozes).
They are not lake tables (the lake's contract is the desk's inputs); ``python -m analytics alerts`` reads them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from pathlib import Path

import polars as pl

from analytics.tca import clustered_mean_ci

ALERTS_FILE = "alerts.jsonl"
ACTIONS_FILE = "alert_actions.jsonl"
Z90 = 1.645  # the 90% outcome band of impact_models.predict is +-1.645 sigma (its published resid_q)

BREACH_SCHEMA = {
    "rule": pl.String,
    "subject_type": pl.String,
    "subject": pl.String,
    "metric": pl.String,
    "value": pl.Float64,
    "expected": pl.Float64,
    "threshold": pl.Float64,
    "message": pl.String,
    "trigger_event_ids": pl.List(pl.String),
    "trigger_ts": pl.Float64,
}


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=BREACH_SCHEMA)


def _fmt(x: pl.Expr, digits: int = 1) -> pl.Expr:
    return x.round(digits).cast(pl.String)


# ---------------------------------------------------------------------------------------------------
# Expectations at NEW
# ---------------------------------------------------------------------------------------------------
def expectations(new_orders: pl.DataFrame, contexts: pl.DataFrame) -> pl.DataFrame:
    """Per order (``order_id, symbol, order_qty, target_pov, urgency``) with a market context (``symbol, adv,
    sigma_daily``: pretrade.market_contexts): ``expected_impact_bps`` (published I-Star market impact, bps, +=
    cost, spread excluded) at size / ADV, daily sigma and participation = target_pov (else the urgency's default
    pretrade.URGENCY_POV), and ``sigma_impact_bps`` = its 90% outcome band / (2 x 1.645)."""
    from analytics.impact_models import pretrade_estimate  # JAX: imported on first use (the engine warms it)
    from analytics.pretrade import DEFAULT_POV, URGENCY_POV

    f = new_orders.join(contexts.select("symbol", "adv", "sigma_daily"), on="symbol", how="inner").filter(
        (pl.col("adv") > 0) & pl.col("sigma_daily").is_not_null()
    )
    if f.height == 0:
        return pl.DataFrame(schema={"order_id": pl.String, "expected_impact_bps": pl.Float64,
                                    "sigma_impact_bps": pl.Float64})  # fmt: skip
    pov = pl.coalesce("target_pov", pl.col("urgency").replace_strict(URGENCY_POV, default=DEFAULT_POV))
    f = f.with_columns((pl.col("order_qty") / pl.col("adv")).alias("size_adv"), pov.alias("pov"))
    est = pretrade_estimate("istar", f.select("order_id", "size_adv", "sigma_daily", "pov"))
    return est.select(
        "order_id",
        pl.col("expected_cost_bps").alias("expected_impact_bps"),
        ((pl.col("outcome_hi_bps") - pl.col("outcome_lo_bps")) / (2 * Z90)).alias("sigma_impact_bps"),
    )


def order_triggers(orders: pl.DataFrame, fills: pl.DataFrame, n: int = 3) -> pl.DataFrame:
    """Per order: the event ids of its NEW and last ``n`` fills (by arrival) and the latest arrival time."""
    new = orders.filter(pl.col("action") == "NEW").select("order_id", "event_id", "_recv")
    ev = pl.concat([new, fills.select("order_id", "event_id", "_recv")], how="vertical_relaxed")
    return (
        ev.sort("_recv", nulls_last=False)
        .group_by("order_id")
        .agg(pl.col("event_id").tail(n).alias("trigger_event_ids"), pl.col("_recv").max().alias("trigger_ts"))
    )


def _breaches(
    d: pl.DataFrame,
    rule: str,
    subject_type: str,
    subject: pl.Expr,
    metric: str,
    value: pl.Expr,
    expected: pl.Expr,
    threshold: pl.Expr,
    message: pl.Expr,
    trigger_ids: pl.Expr | None = None,
    trigger_ts: pl.Expr | None = None,
) -> pl.DataFrame:
    """The breaches of ``rule`` found in ``d``, in :data:`BREACH_SCHEMA`'s columns and order (one place for every
    rule). ``trigger_ids`` / ``trigger_ts`` default to ``d``'s own ``trigger_event_ids`` / ``trigger_ts``."""
    return d.select(
        pl.lit(rule).alias("rule"),
        pl.lit(subject_type).alias("subject_type"),
        subject.alias("subject"),
        pl.lit(metric).alias("metric"),
        value.alias("value"),
        expected.alias("expected"),
        threshold.alias("threshold"),
        message.alias("message"),
        (pl.col("trigger_event_ids") if trigger_ids is None else trigger_ids).alias("trigger_event_ids"),
        (pl.col("trigger_ts") if trigger_ts is None else trigger_ts).alias("trigger_ts"),
    )


_NO_TRIGGER = pl.lit([], pl.List(pl.String))  # a silence or a drawdown has no triggering event


# ---------------------------------------------------------------------------------------------------
# Rules: state -> breaches
# ---------------------------------------------------------------------------------------------------
def cost_vs_expectation(state: pl.DataFrame, exp: pl.DataFrame, trig: pl.DataFrame, cfg: dict) -> pl.DataFrame:
    """Orders whose impact_cost_bps so far exceeds expected_impact_bps + k_sigma x sigma_impact_bps, once
    fill_rate >= min_fill_rate and fill_count >= min_fills."""
    thr = pl.col("expected_impact_bps") + cfg["k_sigma"] * pl.col("sigma_impact_bps")
    d = (
        state.join(exp, on="order_id", how="inner")
        .filter((pl.col("fill_rate") >= cfg["min_fill_rate"]) & (pl.col("fill_count") >= cfg["min_fills"]))
        .with_columns(thr.alias("threshold"))
        .filter(pl.col("impact_cost_bps") > pl.col("threshold"))
    )
    return _breaches(
        d.join(trig, on="order_id", how="left"),
        "cost_vs_expectation",
        "order",
        pl.col("order_id"),
        "impact_cost_bps",
        pl.col("impact_cost_bps"),
        pl.col("expected_impact_bps"),
        pl.col("threshold"),
        pl.concat_str(
            pl.lit("Order "),
            "order_id",
            pl.lit(" ("),
            "symbol",
            pl.lit(") has cost "),
            _fmt(pl.col("impact_cost_bps")),
            pl.lit(" bps of impact so far against an I-Star expectation of "),
            _fmt(pl.col("expected_impact_bps")),
            pl.lit(" bps (threshold "),
            _fmt(pl.col("threshold")),
            pl.lit(" bps)."),
        ),
    )


def participation_limit(state: pl.DataFrame, trig: pl.DataFrame, cfg: dict) -> pl.DataFrame:
    """Working orders whose participation_rate exceeds their limit (the algo's listed limit, else target_pov x
    pov_multiplier, else default_limit), once interval_volume >= min_interval_volume."""
    limits = cfg.get("limits") or {}
    listed = pl.col("algo").replace_strict(limits, default=None, return_dtype=pl.Float64) if limits else pl.lit(None)
    limit = pl.coalesce(listed, pl.col("target_pov") * cfg["pov_multiplier"], pl.lit(cfg["default_limit"]))
    d = (
        state.filter(pl.col("working") & (pl.col("interval_volume") >= cfg["min_interval_volume"]))
        .with_columns(limit.cast(pl.Float64).alias("threshold"))
        .filter(pl.col("participation_rate") > pl.col("threshold"))
    )
    return _breaches(
        d.join(trig, on="order_id", how="left"),
        "participation_limit",
        "order",
        pl.col("order_id"),
        "participation_rate",
        pl.col("participation_rate"),
        pl.col("target_pov"),
        pl.col("threshold"),
        pl.concat_str(
            pl.lit("Order "),
            "order_id",
            pl.lit(" ("),
            "symbol",
            pl.lit(", "),
            "algo",
            pl.lit(") is "),
            _fmt(pl.col("participation_rate") * 100),
            pl.lit("% of the market volume since arrival, above its limit of "),
            _fmt(pl.col("threshold") * 100),
            pl.lit("%."),
        ),
    )


def stale_quote(
    state: pl.DataFrame,
    quotes: pl.DataFrame,
    clock: dt.datetime | None,
    recv: float,
    cfg: dict,
    observed_from: dt.datetime | None = None,
) -> pl.DataFrame:
    """Symbols with a working order whose latest quote is older, on the event clock, than its limit: max(max_age_s,
    gap_multiple x the median gap between the symbol's quotes today) once the symbol has min_quotes_for_cadence
    quotes, else no_cadence_age_s (its cadence is not known yet). Without any quote, the age runs from the later of
    the order's arrival and ``observed_from`` (the first event time the engine saw today: it cannot know of quotes
    before). A silence has no triggering event: ``trigger_event_ids`` is empty and ``trigger_ts`` = ``recv``, the
    arrival of the event that moved the clock past the limit."""
    if clock is None:
        return _empty()
    gap = pl.col("ts").sort().diff().dt.total_microseconds().median() / 1e6
    last = quotes.group_by("symbol").agg(
        pl.col("ts").max().alias("last_quote_ts"), gap.alias("median_gap_s"), pl.len().alias("n_quotes")
    )
    w = state.filter(pl.col("working")).join(last, on="symbol", how="left")
    start = pl.col("arrival_ts") if observed_from is None else pl.max_horizontal("arrival_ts", pl.lit(observed_from))
    ref = pl.coalesce("last_quote_ts", start)
    age = (pl.lit(clock) - ref).dt.total_microseconds() / 1e6
    known = pl.col("n_quotes").fill_null(0) >= cfg["min_quotes_for_cadence"]
    limit = (
        pl.when(known)
        .then(pl.max_horizontal(pl.lit(float(cfg["max_age_s"])), pl.col("median_gap_s") * cfg["gap_multiple"]))
        .otherwise(pl.lit(float(cfg["no_cadence_age_s"])))
    )
    d = (
        w.with_columns(age.alias("age"), limit.alias("limit"))
        .filter(pl.col("age") > pl.col("limit"))
        .group_by("symbol")
        .agg(
            pl.col("age").max(),
            pl.col("limit").first(),
            pl.col("order_id").n_unique(),
        )
    )
    return _breaches(
        d,
        "stale_quote",
        "feed",
        pl.concat_str(pl.lit("quotes:"), "symbol"),
        "quote_age_s",
        pl.col("age"),
        pl.lit(None, pl.Float64),
        pl.col("limit"),
        pl.concat_str(
            pl.lit("No quote for "),
            "symbol",
            pl.lit(" for "),
            _fmt(pl.col("age")),
            pl.lit(" s while "),
            pl.col("order_id").cast(pl.String),
            pl.lit(" order(s) work in it."),
        ),
        _NO_TRIGGER,
        pl.lit(recv, pl.Float64),
    )


def sequence_gap(market: pl.DataFrame, clock: dt.datetime | None, cfg: dict) -> pl.DataFrame:
    """Gaps in ``seq`` per (kind, symbol, venue) of ``market`` (columns kind, symbol, venue, seq, ts, _recv): a
    missing number whose next received number has ts <= clock - grace_s."""
    if clock is None or market.height == 0:
        return _empty()
    m = market.filter(pl.col("seq").is_not_null()).select(
        "kind", "symbol", pl.col("venue").fill_null(""), "seq", "ts", "_recv"
    )
    # Only streams whose numbers are not contiguous (max - min + 1 > distinct count: a hash aggregate, no sort) are
    # sorted to find where; the book holds each (symbol, venue, seq) once.
    keys = ["kind", "symbol", "venue"]
    holed = (
        m.group_by(keys)
        .agg((pl.col("seq").max() - pl.col("seq").min() + 1 > pl.col("seq").n_unique()).alias("holed"))
        .filter("holed")
    )
    if holed.height == 0:
        return _empty()
    m = m.join(holed.select(keys), on=keys, how="semi")
    m = m.sort("kind", "symbol", "venue", "seq").unique([*keys, "seq"], maintain_order=True)
    g = m.with_columns(pl.col("seq").shift(1).over("kind", "symbol", "venue").alias("prev")).filter(
        (pl.col("seq") - pl.col("prev") > 1)
        & (pl.col("ts") <= pl.lit(clock) - pl.duration(microseconds=round(cfg["grace_s"] * 1e6)))
    )
    d = g.group_by("kind", "symbol", "venue").agg(
        (pl.col("seq") - pl.col("prev") - 1).sum().alias("missing"),
        pl.col("prev").first().alias("after"),
        pl.col("_recv").max().alias("trigger_ts"),
    )
    subject = pl.concat_str(pl.col("kind"), pl.lit(":"), "symbol", pl.when(pl.col("venue") != "").then(
        pl.concat_str(pl.lit("@"), "venue")).otherwise(pl.lit("")))  # fmt: skip
    return _breaches(
        d,
        "sequence_gap",
        "feed",
        subject,
        "missing_seq",
        pl.col("missing").cast(pl.Float64),
        pl.lit(0.0),
        pl.lit(0.0),
        pl.concat_str(
            subject,
            pl.lit(": "),
            pl.col("missing").cast(pl.String),
            pl.lit(" sequence number(s) missing, first after "),
            pl.col("after").cast(pl.Int64).cast(pl.String),
            pl.lit("."),
        ),
        _NO_TRIGGER,
    )


def quarantine_spike(read: int, quarantined: int, batch_id: str | None, recv: float, cfg: dict) -> pl.DataFrame:
    """The intake when one commit quarantined at least max_rate of at least min_rows rows read."""
    if read < cfg["min_rows"] or quarantined / max(read, 1) < cfg["max_rate"]:
        return _empty()
    rate = quarantined / read
    return pl.DataFrame(
        {
            "rule": ["quarantine_spike"],
            "subject_type": ["feed"],
            "subject": ["intake"],
            "metric": ["quarantine_rate"],
            "value": [rate],
            "expected": [None],
            "threshold": [float(cfg["max_rate"])],
            "message": [f"The last commit quarantined {quarantined} of {read} rows ({rate:.1%})."],
            "trigger_event_ids": [[batch_id] if batch_id else []],
            "trigger_ts": [recv],
        },
        schema=BREACH_SCHEMA,
    )


def venue_markout(
    fm: pl.DataFrame,
    fills: pl.DataFrame,
    cfg: dict,
    recv: float | None = None,
    horizon: str = "60s",
    baseline: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Venues whose ``markout_cost_bps_<horizon>`` today (quantity-weighted over fills whose horizon elapsed) has
    the lower end of its 95% interval above the venue's baseline, with n >= min_fills. The interval treats the
    venue's parent orders, not its fills, as the independent units (fills of one order share its price path):
    :func:`analytics.tca.clustered_mean_ci` (CR1 sandwich, Student t on orders - 1 df); a venue with fills of one
    order only has no interval and is not judged. The baseline: the upper end of the venue's
    own trailing interval when ``baseline`` (``analytics.live.baseline``: rows with dimension = "venue", key and
    ``base_markout_cost_bps_<horizon>`` with ``_hi``) has one for it (today's interval lies wholly above the
    baseline's: ``expected`` = the baseline mean, ``threshold`` = its upper end); else the configured constant
    (``baselines`` by venue, else ``default_baseline_bps``) for both. What trips it is a horizon elapsing on
    the event clock: ``trigger_ts`` = ``recv`` (the clock-moving event's arrival) when given, else the latest
    fill's; ``trigger_event_ids`` = the venue's latest fills (context)."""
    col = f"markout_cost_bps_{horizon}"
    if fm.height == 0:
        return _empty()
    base = cfg.get("baselines") or {}
    w, x = pl.col("quantity"), pl.col(col)
    mean = (w * x).sum() / w.sum()
    f = fm.filter(x.is_not_null()).join(fills.select("event_id", "_recv"), on="event_id", how="left")
    ci = clustered_mean_ci(f, col, "quantity", by=["venue"], cluster="order_id")
    d = (
        f.group_by("venue")
        .agg(
            mean.alias("m"),
            pl.len().alias("n"),
            pl.col("event_id").sort_by("_recv").tail(3).alias("trigger_event_ids"),
            pl.col("_recv").max().alias("trigger_ts"),
        )
        .join(ci.select("venue", "lo"), on="venue", how="left")
    )
    constant = (
        pl.col("venue").replace_strict(base, default=cfg["default_baseline_bps"], return_dtype=pl.Float64)
        if base
        else pl.lit(float(cfg["default_baseline_bps"]))
    )
    d = d.with_columns(
        constant.alias("expected"),
        constant.alias("threshold"),
        pl.lit(None, pl.Float64).alias("base_hi"),
    )
    if baseline is not None and baseline.height:
        bcol = f"base_markout_cost_bps_{horizon}"
        b = baseline.filter((pl.col("dimension") == "venue") & pl.col(f"{bcol}_hi").is_not_null()).select(
            pl.col("key").alias("venue"), pl.col(bcol).alias("_bm"), pl.col(f"{bcol}_hi").alias("_bhi")
        )
        d = d.join(b, on="venue", how="left").with_columns(
            pl.coalesce("_bm", "expected").alias("expected"),
            pl.coalesce("_bhi", "threshold").alias("threshold"),
            pl.col("_bhi").alias("base_hi"),
        )
    if recv is not None:
        d = d.with_columns(pl.lit(recv, pl.Float64).alias("trigger_ts"))
    d = d.filter((pl.col("n") >= cfg["min_fills"]) & pl.col("lo").is_not_null() & (pl.col("lo") > pl.col("threshold")))
    against = (
        pl.when(pl.col("base_hi").is_not_null())
        .then(pl.concat_str(pl.lit("above its trailing baseline of "), _fmt(pl.col("expected")), pl.lit(
            " bps (95% interval up to "), _fmt(pl.col("threshold")), pl.lit(" bps).")))
        .otherwise(pl.concat_str(pl.lit("above its configured baseline of "), _fmt(pl.col("expected")), pl.lit(" bps.")))
    )  # fmt: skip
    return _breaches(
        d,
        "venue_markout",
        "venue",
        pl.col("venue"),
        col,
        pl.col("m"),
        pl.col("expected"),
        pl.col("threshold"),
        pl.concat_str(
            pl.lit("Venue "),
            "venue",
            pl.lit(" marks out at "),
            _fmt(pl.col("m")),
            pl.lit(f" bps after {horizon} today (95% lower bound "),
            _fmt(pl.col("lo")),
            pl.lit(" bps, "),
            pl.col("n").cast(pl.String),
            pl.lit(" fills), "),
            against,
        ),
    )


def strategy_drawdown(cur: pl.DataFrame, cfg: dict, recv: float | None = None) -> pl.DataFrame:
    """Portfolios / strategies whose intraday P&L (``analytics.live.pnl``: Σ s (mid - p) q over today's fills of
    their decisions, marked to live mids) has fallen from the day's peak by more than ``max_drawdown_bps`` of their
    traded notional and by at least ``min_drawdown`` (currency). ``cur``: ``DrawdownTracker.update``'s frame
    (portfolio_id, strategy, pnl, notional, peak, drawdown, drawdown_bps). Subject ``PORTFOLIO/STRATEGY``; value =
    drawdown_bps, expected = 0, threshold = max_drawdown_bps; ``trigger_ts`` = ``recv`` (the arrival of the event
    that moved the clock or a mid)."""
    if cur.height == 0:
        return _empty()
    d = cur.filter((pl.col("drawdown_bps") > cfg["max_drawdown_bps"]) & (pl.col("drawdown") >= cfg["min_drawdown"]))
    subject = pl.concat_str(pl.col("portfolio_id"), pl.lit("/"), pl.col("strategy"))
    return _breaches(
        d,
        "strategy_drawdown",
        "portfolio",
        subject,
        "drawdown_bps",
        pl.col("drawdown_bps"),
        pl.lit(0.0),
        pl.lit(float(cfg["max_drawdown_bps"])),
        pl.concat_str(
            pl.lit("Portfolio "),
            subject,
            pl.lit(" is down "),
            _fmt(pl.col("drawdown"), 0),
            pl.lit(" from its intraday peak P&L of "),
            _fmt(pl.col("peak"), 0),
            pl.lit(" ("),
            _fmt(pl.col("drawdown_bps")),
            pl.lit(" bps of its "),
            _fmt(pl.col("notional"), 0),
            pl.lit(" traded today; P&L now "),
            _fmt(pl.col("pnl"), 0),
            pl.lit(")."),
        ),
        _NO_TRIGGER,
        pl.lit(recv, pl.Float64),
    )


# ---------------------------------------------------------------------------------------------------
# The open-alert book and the log
# ---------------------------------------------------------------------------------------------------
def _append(path: Path, records: list[dict]) -> None:
    if not records:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, separators=(",", ":"), default=str) + "\n" for r in records).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_lines(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a torn last line after a crash
            continue
    return out


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z")


class AlertBook:
    """Open alerts keyed by (rule, subject), persisted under ``folder`` (``<lake>/live``)."""

    def __init__(self, folder: Path, severities: dict[str, str], deliver=None):
        """``deliver``: called with the list of raised alerts after they are logged (``delivery.Delivery.submit``:
        it only enqueues)."""
        self.folder = Path(folder)
        self.severities = severities
        self.deliver = deliver
        self.open: dict[tuple[str, str], dict] = {}
        cleared = {a["alert_id"] for a in _read_lines(self.folder / ACTIONS_FILE) if a.get("action") == "clear"}
        for a in _read_lines(self.folder / ALERTS_FILE):
            if a["alert_id"] not in cleared:
                self.open[(a["rule"], a["subject"])] = a

    def update(self, breaches: pl.DataFrame, rules: set[str], now: float | None = None) -> list[dict]:
        """Raise an alert for each breach with no open alert; clear the open alerts of ``rules`` (the rules that
        were evaluated) that no longer breach. Returns the raised alerts."""
        now = time.time() if now is None else now
        raised, cleared = [], []
        current = set()
        for b in breaches.iter_rows(named=True):  # a handful of rows: the breaches, never the events
            key = (b["rule"], b["subject"])
            current.add(key)
            if key in self.open:
                continue
            trig = b["trigger_ts"] if b["trigger_ts"] is not None else now
            a = {
                "alert_id": f"AL-{uuid.uuid4().hex[:16]}",
                "ts": _iso(now),
                "rule": b["rule"],
                "severity": self.severities.get(b["rule"], "warning"),
                **{k: b[k] for k in ("subject_type", "subject", "metric", "value", "expected", "threshold", "message")},
                "trigger_event_ids": list(b["trigger_event_ids"] or []),
                "trigger_ts": _iso(trig),
                "latency_ms": round((now - trig) * 1000, 3),
            }
            self.open[key] = a
            raised.append(a)
        for key in [k for k in self.open if k[0] in rules and k not in current]:
            cleared.append({"alert_id": self.open.pop(key)["alert_id"], "action": "clear", "ts": _iso(now)})
        _append(self.folder / ALERTS_FILE, raised)
        _append(self.folder / ACTIONS_FILE, cleared)
        if raised and self.deliver is not None:
            self.deliver(raised)
        return raised


def act(folder: Path, alert_id: str, action: str, snooze_s: float | None = None) -> None:
    """Acknowledge (``ack``) or snooze (``snooze`` for ``snooze_s`` seconds) an alert: one line in the actions log."""
    if action not in ("ack", "snooze"):
        raise ValueError("action is ack or snooze")
    now = time.time()
    rec = {"alert_id": alert_id, "action": action, "ts": _iso(now)}
    if action == "snooze":
        rec["until"] = _iso(now + float(snooze_s or 0))
    _append(Path(folder) / ACTIONS_FILE, [rec])


def read(folder: Path, since: dt.datetime | None = None, now: dt.datetime | None = None) -> pl.DataFrame:
    """Every alert raised (optionally since ``since``), newest first, with its state from the actions log:
    ``open`` (not cleared), ``cleared_ts``, ``acked``, ``snoozed_until`` and ``snoozed`` (until > now)."""
    alerts = _read_lines(Path(folder) / ALERTS_FILE)
    cols = [*BREACH_SCHEMA, "alert_id", "ts", "severity", "latency_ms"]
    if not alerts:
        return pl.DataFrame(schema={c: pl.String for c in cols} | {"open": pl.Boolean})
    df = pl.DataFrame(alerts, infer_schema_length=None).with_columns(
        pl.col("ts").str.to_datetime(time_zone="UTC"), pl.col("trigger_ts").str.to_datetime(time_zone="UTC")
    )
    if since is not None:
        df = df.filter(pl.col("ts") >= since)
    acts = _read_lines(Path(folder) / ACTIONS_FILE)
    a = (
        pl.DataFrame(acts, schema={"alert_id": pl.String, "action": pl.String, "ts": pl.String, "until": pl.String})
        if acts
        else pl.DataFrame(schema={"alert_id": pl.String, "action": pl.String, "ts": pl.String, "until": pl.String})
    )
    st = a.group_by("alert_id").agg(
        pl.col("ts").filter(pl.col("action") == "clear").first().alias("cleared_ts"),
        (pl.col("action") == "ack").any().alias("acked"),
        pl.col("until").filter(pl.col("action") == "snooze").max().alias("snoozed_until"),
    )
    now = now or dt.datetime.now(dt.UTC)
    df = df.join(st, on="alert_id", how="left").with_columns(
        pl.col("cleared_ts").is_null().alias("open"),
        pl.col("acked").fill_null(False),
        pl.col("snoozed_until").str.to_datetime(time_zone="UTC"),
    )
    return df.with_columns(pl.col("snoozed_until").fill_null(dt.datetime.min.replace(tzinfo=dt.UTC)).gt(now).alias(
        "snoozed")).sort("ts", descending=True)  # fmt: skip
