"""Contract validation: raw rows in, typed rows plus a reason for every rejected row out.

Every rule of docs/EVENTS.md that can be decided from one row (or one weight group) lives here as a
Polars expression; the rules that need the lake (duplicates, conflicts, unknown references) live in
:mod:`analytics.ingest`. A row fails with the *first* failing rule's code in ``reason`` and every failing
rule in ``detail``. Nothing is dropped: each input row comes out either typed or with a reason.

Reason codes: ``missing_field``, ``bad_value`` (not a number / not a date), ``naive_timestamp`` (no zone:
rejected, never guessed), ``bad_timestamp``, ``bad_side``, ``bad_enum``, ``non_positive``, ``negative``,
``non_finite``, ``out_of_range`` (a price, quantity or other number beyond :class:`Limits`: 1e308 is finite
but no price), ``out_of_window`` (a timestamp or date outside the window :class:`Limits` sets around the batch's
arrival: 9999-12-31 is a valid date but no trade date), ``crossed_quote`` (bid > ask; a locked quote bid == ask
is valid), ``bar_range`` (high/low do not bound open/close), ``return_range`` (a return <= -100%),
``weights_not_sum_1`` (|sum - 1| > 1e-6 for one portfolio or benchmark on one date: the whole group is
rejected).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from analytics.schema import KIND_DTYPES, TABLES, Field, Table

TS_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%#z"
_NAIVE_TS = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$"
WEIGHT_TOLERANCE = 1e-6

# Fields holding a price (currency per unit) and a quantity (shares, units), for the plausibility limits.
PRICE_FIELDS = frozenset(
    {"price", "bid", "ask", "open", "high", "low", "close", "vwap", "limit_price", "decision_price"}
)
QUANTITY_FIELDS = frozenset({"quantity", "size", "bid_size", "ask_size", "volume"})


@dataclass(frozen=True)
class Limits:
    """Plausibility limits of ingest, in one place (``ingest(limits=...)``, ``--hold-hours`` on the CLI).

    - ``max_price``: prices, in the instrument's currency per unit (the dearest listed share trades near
      1e6; 1e7 leaves room). ``max_quantity``: shares or units of one event (a day's volume of one name
      stays far below 1e11). ``max_abs_value``: any other number (fees, market values, exposures).
    - Time window around the batch's arrival time ``now``: event timestamps from ``now - max_age`` to
      ``now + max_ahead``; dates (trade dates, settle dates) up to ``now + max_ahead_date``. History can be
      back-filled for 50 years; a clock a day or two fast is tolerated.
    - ``hold_limit``: how long an event that arrived before its parent (a fill before its order, a
      settlement before its fill, an amendment before NEW) is held, measured in *arrival* time (the wall
      clock of the ingests), not event time: a back-fill of last year's fills must wait for its orders as
      long as a live fill does, and a live stream knows only when things arrived. Past it the row is
      quarantined as ``unknown_order`` / ``unknown_fill`` and still accepted if the parent arrives later.
      Zero quarantines at once (still accepted later). Checked on every ingest.
    """

    max_price: float = 1e7
    max_quantity: float = 1e11
    max_abs_value: float = 1e15
    max_age: dt.timedelta = dt.timedelta(days=50 * 365)
    max_ahead: dt.timedelta = dt.timedelta(days=2)
    max_ahead_date: dt.timedelta = dt.timedelta(days=400)
    hold_limit: dt.timedelta = dt.timedelta(hours=24)


DEFAULT_LIMITS = Limits()


def _typed(name: str) -> str:
    return f"__t_{name}"


def _tc(name: str) -> pl.Expr:
    """The typed column of contract field ``name``."""
    return pl.col(_typed(name))


def _cast_expr(f: Field, src: pl.DataType | None) -> pl.Expr:
    """Expression casting the raw column ``f.name`` (dtype ``src``; None when absent) to its storage
    type, giving null where the value cannot be read (a rule then reports it)."""
    target = KIND_DTYPES[f.kind]
    if src is None:
        return pl.lit(None, dtype=target)
    c = pl.col(f.name)
    is_str = src == pl.String
    if f.kind == "ts":
        if is_str:
            s = c.str.strip_chars().str.replace(" ", "T", literal=True)
            return s.str.to_datetime(TS_FORMAT, time_unit="us", time_zone="UTC", strict=False)
        if isinstance(src, pl.Datetime):
            if src.time_zone is None:
                return pl.lit(None, dtype=target)  # naive: rejected by the timestamp rule
            return c.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
        return pl.lit(None, dtype=target)
    if f.kind == "date":
        if is_str:
            return c.str.strip_chars().str.to_date("%Y-%m-%d", strict=False)
        if isinstance(src, pl.Datetime):
            return c.dt.date()
        if src == pl.Date:
            return c
        return pl.lit(None, dtype=target)
    if f.kind in ("float", "int"):
        base = c.str.strip_chars() if is_str else c
        if f.kind == "int":
            as_float = base.cast(pl.Float64, strict=False)
            return pl.when(as_float == as_float.round(0)).then(as_float).cast(pl.Int64, strict=False)
        return base.cast(pl.Float64, strict=False)
    if f.kind == "json":
        if isinstance(src, pl.Struct):
            return c.struct.json_encode()
        return c.cast(pl.String, strict=False)
    s = c.cast(pl.String, strict=False).str.strip_chars()
    if f.kind in ("side", "enum"):
        s = s.str.to_uppercase()
    return pl.when(s.str.len_chars() > 0).then(s)


def _rules(
    t: Table, schema: dict[str, pl.DataType], limits: Limits, now: dt.datetime
) -> list[tuple[str, pl.Expr, pl.Expr]]:
    """(code, failed, detail) for each row rule of table ``t``, in reporting order."""
    rules: list[tuple[str, pl.Expr, pl.Expr]] = []
    lo_ts = now - limits.max_age
    window = {
        "ts": (lo_ts, now + limits.max_ahead),
        "date": (lo_ts.date(), (now + limits.max_ahead_date).date()),
    }

    def raw_present(name: str) -> pl.Expr:
        if name not in schema:
            return pl.lit(False)
        c = pl.col(name)
        if schema[name] == pl.String:
            return c.is_not_null() & (c.str.strip_chars().str.len_chars() > 0)
        return c.is_not_null()

    def raw_text(name: str) -> pl.Expr:
        return pl.col(name).cast(pl.String, strict=False).fill_null("")

    for f in t.fields:
        tv = pl.col(_typed(f.name))
        if f.required:
            rules.append(("missing_field", ~raw_present(f.name), pl.lit(f"{f.name} is missing")))
        if f.kind == "ts" and f.name in schema:
            src = schema[f.name]
            if isinstance(src, pl.Datetime) and src.time_zone is None:
                naive = raw_present(f.name)
            elif src == pl.String:
                naive = raw_present(f.name) & tv.is_null() & pl.col(f.name).str.strip_chars().str.contains(_NAIVE_TS)
            else:
                naive = pl.lit(False)
            rules.append(
                (
                    "naive_timestamp",
                    naive,
                    pl.lit(f"{f.name} has no time zone (UTC required, not guessed)"),
                )
            )
            rules.append(
                (
                    "bad_timestamp",
                    raw_present(f.name) & tv.is_null() & ~naive,
                    pl.concat_str(
                        pl.lit(f"{f.name} is not an ISO-8601 UTC time: '"),
                        raw_text(f.name),
                        pl.lit("'"),
                    ),
                )
            )
        if f.kind in window and f.name in schema:
            lo, hi = window[f.kind]
            rules.append(
                (
                    "out_of_window",
                    tv.is_not_null() & ((tv < lo) | (tv > hi)),
                    pl.concat_str(
                        pl.lit(f"{f.name} "),
                        tv.cast(pl.String),
                        pl.lit(
                            f" is outside {lo.isoformat()[:10]}..{hi.isoformat()[:10]} (the window around the batch)"
                        ),
                    ),
                )
            )
        if f.kind == "ts":
            continue
        if f.kind in ("float", "int", "date") and f.name in schema:
            what = "a date (YYYY-MM-DD)" if f.kind == "date" else ("an integer" if f.kind == "int" else "a number")
            rules.append(
                (
                    "bad_value",
                    raw_present(f.name) & tv.is_null(),
                    pl.concat_str(
                        pl.lit(f"{f.name} is not {what}: '"),
                        raw_text(f.name),
                        pl.lit("'"),
                    ),
                )
            )
        if f.kind == "float":
            rules.append(
                (
                    "non_finite",
                    tv.is_not_null() & ~tv.is_finite(),
                    pl.lit(f"{f.name} is not finite"),
                )
            )
        if f.kind in ("float", "int") and f.name in schema:
            cap = (
                limits.max_price
                if f.name in PRICE_FIELDS
                else limits.max_quantity
                if f.name in QUANTITY_FIELDS
                else limits.max_abs_value
            )
            rules.append(
                (
                    "out_of_range",
                    tv.is_not_null() & tv.cast(pl.Float64).is_finite() & (tv.cast(pl.Float64).abs() > cap),
                    pl.concat_str(pl.lit(f"{f.name} beyond the limit {cap:g}: "), tv.cast(pl.String)),
                )
            )
        if f.choices:
            code = "bad_side" if f.kind == "side" else "bad_enum"
            rules.append(
                (
                    code,
                    tv.is_not_null() & ~tv.is_in(list(f.choices)),
                    pl.concat_str(
                        pl.lit(f"{f.name} must be one of {'|'.join(f.choices)}, got '"),
                        tv.fill_null(""),
                        pl.lit("'"),
                    ),
                )
            )
        if f.positive:
            rules.append(
                (
                    "non_positive",
                    tv.is_not_null() & (tv <= 0),
                    pl.concat_str(pl.lit(f"{f.name} must be > 0, got "), tv.cast(pl.String)),
                )
            )
        if f.nonneg:
            rules.append(
                (
                    "negative",
                    tv.is_not_null() & (tv < 0),
                    pl.concat_str(pl.lit(f"{f.name} must be >= 0, got "), tv.cast(pl.String)),
                )
            )

    if "crossed_quote" in t.extra_checks:
        rules.append(
            (
                "crossed_quote",
                _tc("bid") > _tc("ask"),
                pl.concat_str(
                    pl.lit("crossed quote: bid "),
                    _tc("bid").cast(pl.String),
                    pl.lit(" > ask "),
                    _tc("ask").cast(pl.String),
                ),
            )
        )
    if "bar_range" in t.extra_checks:
        bad = (_tc("high") < pl.max_horizontal(_tc("open"), _tc("close"), _tc("low"))) | (
            _tc("low") > pl.min_horizontal(_tc("open"), _tc("close"))
        )
        rules.append(("bar_range", bad, pl.lit("high/low do not bound open/close")))
    if "return_range" in t.extra_checks:
        rules.append(("return_range", _tc("return") <= -1, pl.lit("return <= -100%")))
    if "new_order_fields" in t.extra_checks:
        for name in ("symbol", "side", "quantity", "broker", "algo"):
            rules.append(
                (
                    "missing_field",
                    (_tc("action") == "NEW") & ~raw_present(name),
                    pl.lit(f"{name} is missing (required on NEW)"),
                )
            )
    if t.weight_group and "market_value" in t.columns:
        rules.append(
            (
                "missing_field",
                ~raw_present("weight") & ~raw_present("market_value"),
                pl.lit("weight or market_value is required"),
            )
        )
    return rules


def validate(
    table: str, df: pl.DataFrame, limits: Limits = DEFAULT_LIMITS, now: dt.datetime | None = None
) -> pl.DataFrame:
    """Cast ``df``'s contract columns to storage types and evaluate every row rule (``now``: the batch's
    arrival time, UTC, for the time window; default the wall clock).

    Returns ``df`` with the typed contract columns added under ``__t_<name>`` and ``_reason`` (first failed
    rule's code, null when the row is valid) and ``_detail`` (every failed rule, ``; `` separated).
    """
    t = TABLES[table]
    schema = dict(df.schema)
    typed = [_cast_expr(f, schema.get(f.name)).alias(_typed(f.name)) for f in t.fields]
    out = df.with_columns(typed)
    rules = _rules(t, schema, limits, now or dt.datetime.now(dt.UTC))
    if not rules:
        return out.with_columns(
            pl.lit(None, pl.String).alias("_reason"),
            pl.lit(None, pl.String).alias("_detail"),
        )
    # A rule over a null typed value yields null: treat as "not failed".
    failed = [r[1].fill_null(False) for r in rules]
    out = out.with_columns(
        pl.coalesce([pl.when(b).then(pl.lit(code)) for (code, _, _), b in zip(rules, failed, strict=True)]).alias(
            "_reason"
        ),
        pl.concat_str(
            [pl.when(b).then(d) for (_, _, d), b in zip(rules, failed, strict=True)],
            separator="; ",
            ignore_nulls=True,
        ).alias("_detail"),
    )
    if t.weight_group:
        out = _check_weight_groups(t, out)
    return out


def _check_weight_groups(t: Table, df: pl.DataFrame) -> pl.DataFrame:
    """Weights of one group (portfolio or benchmark on a date) must sum to 1 within 1e-6; holdings given
    as market values get weight = market_value / group total. The rule is judged over the group's rows
    in this batch that passed the row rules; a failing group is rejected whole."""
    keys = [_typed(k) for k in t.weight_group]
    w, ok = pl.col(_typed("weight")), pl.col("_reason").is_null()
    if "market_value" in t.columns:
        mv = pl.col(_typed("market_value"))
        derived = mv / mv.filter(ok).sum().over(keys)
        df = df.with_columns(pl.when(w.is_null()).then(derived).otherwise(w).alias(_typed("weight")))
    total = w.filter(ok).sum().over(keys)
    off = ok & ((total - 1.0).abs() > WEIGHT_TOLERANCE)
    detail = pl.concat_str(
        pl.lit("weights of the group sum to "),
        total.round(9).cast(pl.String),
        pl.lit(", not 1"),
    )
    return df.with_columns(
        pl.when(off).then(pl.lit("weights_not_sum_1")).otherwise(pl.col("_reason")).alias("_reason"),
        pl.when(off).then(detail).otherwise(pl.col("_detail")).alias("_detail"),
    )


def typed_frame(table: str, df: pl.DataFrame) -> pl.DataFrame:
    """The typed contract columns of validated rows, under their contract names, plus ``extra``."""
    t = TABLES[table]
    cols = [pl.col(_typed(f.name)).alias(f.name) for f in t.fields]
    extra = pl.col("extra") if "extra" in df.columns else pl.lit(None, pl.String)
    return df.select([*cols, extra.cast(pl.String).alias("extra")])
