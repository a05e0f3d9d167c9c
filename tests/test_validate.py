"""Row rules of analytics/validate.py, each with a hand-made bad row sent through the real ``ingest()``.

Every case writes one file holding a valid row then the bad row, in each format where the rule can be
expressed (a Parquet float column cannot hold ``'abc'``). The files of one format are ingested together in
one batch (ids are unique per case, so cases cannot interact; one ingest per format keeps the suite fast),
and each case checks its own file: counts (read 2 = 1 accepted + 1 quarantined), the reason code, the
detail text, the source file, the line (JSON Lines: 1-based line; CSV: the header is line 1; Parquet:
0-based row) and the raw content. Expected values are written by hand from ../shared/EVENTS.md.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import polars as pl
import pytest

from analytics.ingest import ingest
from analytics.schema import TABLES
from analytics.store import Lake
from analytics.validate import TS_FORMAT, validate

DROP = "<drop>"  # in a case's overrides: remove the field
ALL = ("jsonl", "csv", "parquet")
TEXT = ("jsonl", "csv")  # the bad value is text: no typed Parquet column can hold it
LINE_OF_SECOND_ROW = {"jsonl": 2, "csv": 3, "parquet": 1}


def returns_row(**over):
    return {"date": "2026-03-02", "symbol": "AAPL", "return": 0.0125} | over


def holdings_row(**over):
    return {"date": "2026-03-02", "portfolio_id": "P1", "symbol": "AAPL", "weight": 1.0} | over


def security_row(**over):
    base = {"symbol": "AAPL", "name": "Apple", "asset_class": "equity", "sector": "Tech"}
    return base | {"industry": "Hardware", "country": "US", "currency": "USD"} | over


# table -> (row builder, the fields made unique per case so that cases sharing one batch do not collide)
SHAPES = {
    "quotes": ("quote", ("symbol",)),
    "trades": ("trade", ("symbol",)),
    "bars": ("bar", ("symbol",)),
    "decisions": ("decision", ("event_id", "decision_id")),
    "orders": ("order", ("event_id", "order_id")),
    "fills": ("fill", ("event_id", "fill_id")),  # of order O1 (seeded), so the symbol stays AAPL
    "settlements": ("settlement", ("event_id",)),  # of fill F1 (seeded)
    "returns": (returns_row, ("symbol",)),
    "holdings": (holdings_row, ("portfolio_id",)),
    "securities": (security_row, ("symbol",)),
}


@dataclass(frozen=True)
class Case:
    id: str
    table: str
    over: dict
    reason: str
    detail: str
    formats: tuple[str, ...] = ALL
    parquet_over: dict = field(default_factory=dict)  # replaces ``over`` values in the Parquet file


CASES = [
    Case("missing", "quotes", {"bid": DROP}, "missing_field", "bid is missing"),
    Case("blank", "quotes", {"symbol": "   "}, "missing_field", "symbol is missing"),
    Case("missing_ref", "securities", {"name": DROP}, "missing_field", "name is missing"),
    Case("not_number", "quotes", {"bid": "abc"}, "bad_value", "bid is not a number: 'abc'", TEXT),
    Case("not_int", "quotes", {"seq": 1.5}, "bad_value", "seq is not an integer: '1.5'"),
    Case(
        "not_date",
        "returns",
        {"date": "03/02/2026"},
        "bad_value",
        "date is not a date (YYYY-MM-DD): '03/02/2026'",
        TEXT,
    ),
    Case(
        "not_settle_date",
        "settlements",
        {"settle_date": "2026-3-4x"},
        "bad_value",
        "settle_date is not a date",
        TEXT,
    ),
    Case("naive", "quotes", {"ts": "2026-03-02T14:30:00"}, "naive_timestamp", "ts has no time zone", TEXT),
    Case("naive_space", "fills", {"ts": "2026-03-02 14:31:00.5"}, "naive_timestamp", "no time zone", TEXT),
    Case("bad_ts", "quotes", {"ts": "yesterday"}, "bad_timestamp", "ts is not an ISO-8601 UTC time: 'yesterday'"),
    Case("feb30", "trades", {"ts": "2026-02-30T14:30:00Z"}, "bad_timestamp", "'2026-02-30T14:30:00Z'", TEXT),
    Case("side", "fills", {"side": "HOLD"}, "bad_side", "side must be one of BUY|SELL, got 'HOLD'"),
    Case("side_decision", "decisions", {"side": "short"}, "bad_side", "got 'SHORT'"),
    Case("urgency", "decisions", {"urgency": "URGENT"}, "bad_enum", "urgency must be one of LOW|MEDIUM|HIGH"),
    Case("action", "orders", {"action": "AMEND"}, "bad_enum", "action must be one of NEW|REPLACE|CANCEL|DONE"),
    Case("liquidity", "fills", {"liquidity": "maker"}, "bad_enum", "got 'MAKER'"),
    Case("zero_size", "quotes", {"bid_size": 0}, "non_positive", "bid_size must be > 0, got 0.0"),
    Case("neg_qty", "decisions", {"quantity": -5}, "non_positive", "quantity must be > 0, got -5.0"),
    Case("neg_price", "trades", {"price": -1.5}, "non_positive", "price must be > 0, got -1.5"),
    Case("neg_commission", "fills", {"commission": -0.01}, "negative", "commission must be >= 0, got -0.01"),
    Case("neg_volume", "bars", {"volume": -1}, "negative", "volume must be >= 0, got -1.0"),
    Case("inf", "quotes", {"ask": "inf"}, "non_finite", "ask is not finite", parquet_over={"ask": float("inf")}),
    Case("nan", "fills", {"price": "NaN"}, "non_finite", "price is not finite", parquet_over={"price": float("nan")}),
    Case(
        "crossed",
        "quotes",
        {"bid": 100.03, "ask": 100.02},
        "crossed_quote",
        "crossed quote: bid 100.03 > ask 100.02",
    ),
    Case("high_below_close", "bars", {"high": 100.5}, "bar_range", "high/low do not bound open/close"),
    Case("low_above_open", "bars", {"low": 100.5}, "bar_range", "high/low do not bound open/close"),
    Case("minus_100pct", "returns", {"return": -1.0}, "return_range", "return <= -100%"),
    Case("minus_150pct", "returns", {"return": -1.5}, "return_range", "return <= -100%"),
    Case("new_no_broker", "orders", {"broker": DROP}, "missing_field", "broker is missing (required on NEW)"),
    Case("new_no_qty", "orders", {"quantity": DROP}, "missing_field", "quantity is missing (required on NEW)"),
    Case(
        "no_weight_no_mv",
        "holdings",
        {"weight": DROP},
        "missing_field",
        "weight or market_value is required",
    ),
]

# Rows near a rule's edge that are valid: (id, table, overrides of the second row).
VALID_EDGES = [
    ("locked_quote", "quotes", {"bid": 100.02, "ask": 100.02}),
    ("negative_fees_rebate", "fills", {"fees": -0.35}),
    ("return_minus_99.9pct", "returns", {"return": -0.999}),
    ("flat_bar_no_volume", "bars", {"open": 5, "high": 5, "low": 5, "close": 5, "volume": 0}),
    ("lowercase_enum_and_side", "decisions", {"urgency": "high", "side": "sell"}),
    ("numbers_as_text", "quotes", {"bid": "100.01", "ask": " 100.02 "}),
    ("integral_float_seq", "quotes", {"seq": 7.0}),
    ("cancel_needs_no_order_fields", "orders", {"action": "CANCEL", "symbol": DROP, "broker": DROP, "algo": DROP}),
]


def _rows(ev, table: str, tag: str, over: dict) -> list[dict]:
    """[a valid row, the row with ``over``]; the table's identifying fields carry ``tag``."""
    builder, unique = SHAPES[table]
    make = getattr(ev, builder) if isinstance(builder, str) else builder
    rows = []
    for kind, extra in (("v", {}), ("b", over)):
        fields = {u: f"{tag}{kind}" for u in unique} | extra
        row = make(**{k: v for k, v in fields.items() if not (isinstance(v, str) and v == DROP)})
        rows.append({k: v for k, v in row.items() if not (isinstance(fields.get(k), str) and fields[k] == DROP)})
    if table == "orders" and over.get("action") == "CANCEL":
        rows[1]["order_id"] = rows[0]["order_id"]  # cancels the NEW of the first row
    return rows


def _parquet_frame(rows: list[dict], table: str) -> pl.DataFrame:
    """Rows as a Parquet batch would carry them: time columns typed (UTC) where every value parses."""
    df = pl.DataFrame(rows, infer_schema_length=None)
    for f in TABLES[table].fields:
        if f.name not in df.columns or df[f.name].dtype != pl.String or f.kind not in ("ts", "date"):
            continue
        s = df[f.name]
        conv = (
            s.str.to_datetime(TS_FORMAT, time_unit="us", time_zone="UTC", strict=False)
            if f.kind == "ts"
            else s.str.to_date("%Y-%m-%d", strict=False)
        )
        if conv.null_count() == s.null_count():
            df = df.with_columns(conv)
    return df


def _write(files, ev, fmt: str, table: str, name: str, rows: list[dict]):
    path = f"{table}_{name}.{fmt}"
    if fmt == "jsonl":
        return files.jsonl(path, rows)
    bare = [ev.bare(r) for r in rows]
    if fmt == "csv":
        return files.csv(path, bare)
    return files.parquet(path, _parquet_frame(bare, table))


@dataclass
class Outcome:
    """One ingest of every case's file of one format (cases get unique ids, so they cannot collide)."""

    res: dict
    rows: dict  # case id -> the two rows sent
    paths: dict  # case id -> file
    quarantine: pl.DataFrame
    tables: dict  # table -> its rows after the ingest

    def file(self, case_id: str) -> dict:
        return next(f for f in self.res["files"] if f["path"] == str(self.paths[case_id]))


@pytest.fixture(scope="module")
def outcome(tmp_path_factory, files_at, ev, seed_lake):
    cache: dict[str, Outcome] = {}

    def run(fmt: str) -> Outcome:
        if fmt not in cache:
            root = tmp_path_factory.mktemp(f"rules_{fmt}")
            files = files_at(root / "in")
            lake = seed_lake(Lake(root / "lake"), files)
            rows, paths = {}, {}
            todo = [(c.id, c.table, {**c.over, **(c.parquet_over if fmt == "parquet" else {})}) for c in CASES]
            todo += VALID_EDGES if fmt == "jsonl" else []
            for i, (cid, table, over) in enumerate(todo):
                rows[cid] = _rows(ev, table, f"c{i}", over)
                paths[cid] = _write(files, ev, fmt, table, cid, rows[cid])
            valid = [c.id for c in CASES if fmt in c.formats] + ([e[0] for e in VALID_EDGES] if fmt == "jsonl" else [])
            res = ingest([paths[c] for c in valid], lake).to_dict()
            assert res["version"] == 2
            con = lake.connect()
            tables = {t: lake.scan(con, t).pl() for t in [*SHAPES, "quarantine"]}
            con.close()
            cache[fmt] = Outcome(res, rows, paths, tables.pop("quarantine"), tables)
        return cache[fmt]

    return run


@pytest.mark.parametrize(
    ("case", "fmt"),
    [pytest.param(c, f, id=f"{c.id}-{f}") for c in CASES for f in c.formats],
)
def test_row_rule_quarantines_the_bad_row(case: Case, fmt: str, outcome, ev):
    o = outcome(fmt)
    path, (good, bad) = o.paths[case.id], o.rows[case.id]
    assert {k: o.file(case.id)[k] for k in ("read", "accepted", "duplicate", "quarantined")} == {
        "read": 2,
        "accepted": 1,
        "duplicate": 0,
        "quarantined": 1,
    }
    q = o.quarantine.filter(pl.col("source_file") == str(path))
    assert q.height == 1
    row = q.row(0, named=True)
    assert row["table"] == case.table
    assert row["reason"] == case.reason
    assert case.detail in row["detail"]
    assert row["line"] == LINE_OF_SECOND_ROW[fmt]
    if "event_id" in TABLES[case.table].columns:
        assert row["event_id"] == bad["event_id"]
    if fmt == "jsonl":
        assert row["raw"] == json.dumps(bad)  # the line exactly as sent
    else:
        raw = json.loads(row["raw"])  # the row's received fields as a JSON object
        assert "event_type" not in raw
        assert set(raw) - {"extra"} <= set(ev.bare(good)) | set(ev.bare(bad))
    # The valid row is in its table, the bad one is not.
    _, unique = SHAPES[case.table]
    stored = o.tables[case.table][unique[0]].to_list()
    assert good[unique[0]] in stored
    assert bad[unique[0]] not in stored


@pytest.mark.parametrize("edge", [e[0] for e in VALID_EDGES])
def test_valid_edge_rows_are_accepted(edge, outcome):
    o = outcome("jsonl")
    assert {k: o.file(edge)[k] for k in ("read", "accepted", "duplicate", "quarantined")} == {
        "read": 2,
        "accepted": 2,
        "duplicate": 0,
        "quarantined": 0,
    }
    assert o.quarantine.filter(pl.col("source_file") == str(o.paths[edge])).height == 0


def test_accepted_values_are_typed_and_normalised(seeded, files, ev):
    path = files.jsonl(
        "decisions_norm.jsonl",
        [
            ev.decision(
                side=" sell ", urgency="medium", quantity="250", alpha_bps="-3.5", ts="2026-03-02T09:30:00-05:00"
            )
        ],
    )
    ingest([path], seeded)
    row = seeded.read("decisions").row(0, named=True)
    assert row["side"] == "SELL"
    assert row["urgency"] == "MEDIUM"
    assert row["quantity"] == 250.0
    assert row["alpha_bps"] == -3.5
    assert row["ts"] == dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)


def test_parquet_naive_timestamp_column_rejects_every_row(lake, files, quarantine, table_counts):
    naive = [dt.datetime(2026, 3, 2, 14, 30), dt.datetime(2026, 3, 2, 14, 31), dt.datetime(2026, 3, 2, 14, 32)]
    df = pl.DataFrame(
        {
            "symbol": ["AAPL", "MSFT", "IBM"],
            "ts": naive,
            "bid": [10.0, 20.0, 30.0],
            "ask": [10.1, 20.1, 30.1],
            "bid_size": [1.0, 1.0, 1.0],
            "ask_size": [1.0, 1.0, 1.0],
        }
    )
    assert df.schema["ts"] == pl.Datetime("us", None)
    path = files.parquet("quotes_naive.parquet", df)
    res = ingest([path], lake)
    assert table_counts(res, "quotes") == (3, 0, 0, 3)
    q = quarantine(lake)
    assert q["reason"].to_list() == ["naive_timestamp"] * 3
    assert q["line"].to_list() == [0, 1, 2]  # Parquet: 0-based row
    assert json.loads(q["raw"][1])["symbol"] == "MSFT"
    assert lake.read("quotes").height == 0


def test_parquet_timestamps_in_another_zone_and_nanoseconds_are_stored_in_utc_us(lake, files):
    ts = pl.Series([dt.datetime(2026, 3, 2, 15, 30)]).dt.cast_time_unit("ns").dt.replace_time_zone("Europe/Paris")
    ts = ts + dt.timedelta(microseconds=123_456) + pl.Series([1], dtype=pl.Duration("ns")) * 789
    df = pl.DataFrame({"symbol": ["AAPL"], "ts": ts, "price": [10.0], "size": [5.0], "seq": [1]})
    ingest([files.parquet("trades_paris.parquet", df)], lake)
    out = lake.read("trades")
    # 15:30 Paris (UTC+1 in March before DST) = 14:30 UTC; 123456789 ns -> 123456 us (truncated).
    assert out["ts"].to_list() == [dt.datetime(2026, 3, 2, 14, 30, 0, 123456, tzinfo=dt.UTC)]
    assert out.schema["ts"] == pl.Datetime("us", "UTC")


# --- weight groups ------------------------------------------------------------------------------
def bw(bench, symbol, weight, date="2026-03-02"):
    return {"date": date, "benchmark_id": bench, "symbol": symbol, "weight": weight}


def test_weights_not_summing_to_one_reject_the_whole_group(lake, files, quarantine, table_counts):
    rows = [
        bw("SPX", "AAPL", 0.5),  # SPX on 03-02: 0.5 + 0.4 = 0.9 -> both rejected
        bw("SPX", "MSFT", 0.4),
        bw("NDX", "AAPL", 0.6),  # NDX: 0.6 + 0.4000005 = 1.0000005, within 1e-6 -> accepted
        bw("NDX", "MSFT", 0.4000005),
        bw("SPX", "AAPL", 0.6, "2026-03-03"),  # SPX on 03-03: 0.6 + 0.400002 -> off by 2e-6 -> rejected
        bw("SPX", "MSFT", 0.400002, "2026-03-03"),
    ]
    path = files.csv("benchmark_weights_2026-03.csv", rows)
    res = ingest([path], lake)
    assert table_counts(res, "benchmark_weights") == (6, 2, 0, 4)
    q = quarantine(lake)
    assert q["reason"].to_list() == ["weights_not_sum_1"] * 4
    assert q["line"].to_list() == [2, 3, 6, 7]
    assert "sum to 0.9, not 1" in q["detail"][0]
    kept = lake.read("benchmark_weights").sort("symbol")
    assert kept["benchmark_id"].to_list() == ["NDX", "NDX"]


def test_holdings_given_as_market_values_get_derived_weights(lake, files, table_counts):
    rows = [
        {"date": "2026-03-02", "portfolio_id": "P1", "symbol": "AAPL", "market_value": 100.0},
        {"date": "2026-03-02", "portfolio_id": "P1", "symbol": "MSFT", "market_value": 300.0},
        {"date": "2026-03-02", "portfolio_id": "P2", "symbol": "AAPL", "weight": 0.7},  # 0.7 only: rejected
    ]
    res = ingest([files.jsonl("holdings_2026-03-02.jsonl", rows)], lake)
    assert table_counts(res, "holdings") == (3, 2, 0, 1)
    assert res.quarantine_reasons == {"weights_not_sum_1": 1}
    got = lake.read("holdings").sort("symbol")
    assert got["weight"].to_list() == [0.25, 0.75]  # 100/400, 300/400
    assert got["market_value"].to_list() == [100.0, 300.0]


# --- validate() directly ------------------------------------------------------------------------
def test_first_failing_rule_is_the_reason_and_detail_lists_every_failure():
    df = pl.DataFrame(
        {
            "symbol": ["AAPL", "AAPL", ""],
            "ts": ["2026-03-02T14:30:00Z", "2026-03-02T14:30:00", "2026-03-02T14:30:00Z"],
            "bid": ["10", "-1", "11"],
            "ask": ["10.5", "10.5", "10"],
            "bid_size": ["1", "1", "1"],
            "ask_size": ["1", "0", "1"],
        }
    )
    out = validate("quotes", df)
    assert out.height == 3  # nothing dropped
    assert out["_reason"].to_list() == [None, "naive_timestamp", "missing_field"]
    assert not out["_detail"][0]  # empty for a valid row
    assert out["_detail"][1].split("; ") == [
        "ts has no time zone (UTC required, not guessed)",
        "bid must be > 0, got -1.0",
        "ask_size must be > 0, got 0.0",
    ]
    assert out["_detail"][2].split("; ") == ["symbol is missing", "crossed quote: bid 11.0 > ask 10.0"]
