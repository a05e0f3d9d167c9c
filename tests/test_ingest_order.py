"""Out-of-order events and plausibility (issue 15 items 2 and 8): held rows, the hold limit, overfill,
fills before their order, values and times beyond the stated limits.

Counts are (read, accepted, duplicate, quarantined, held), worked out by hand in each test.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from analytics.ingest import ingest
from analytics.validate import Limits

T = dt.datetime(2026, 3, 3, 9, 0, tzinfo=dt.UTC)  # the wall clock of the first batch
NO_HOLD = Limits(hold_limit=dt.timedelta(0))


def counts(res, table: str) -> tuple[int, int, int, int, int]:
    c = res.tables[table]
    assert c.read == c.accepted + c.duplicate + c.quarantined + c.held
    return (c.read, c.accepted, c.duplicate, c.quarantined, c.held)


def fills_of(ev, n: int, order_id: str = "O1", **over) -> list[dict]:
    return [ev.fill(event_id=f"f{i}", fill_id=f"F{i}", order_id=order_id, **over) for i in range(n)]


def test_fills_before_their_order_are_held_then_accepted_issue_reproduction(lake, files, ev):
    """Issue 15 item 2: fills, the same fills, their orders, the fills again. Before: 0 fills stored and the
    second send counted 10 duplicates. Now: held twice (stored once), accepted when the order arrives."""
    fills = files.jsonl("fills.jsonl", fills_of(ev, 10))
    orders = files.jsonl("orders.jsonl", [ev.order()])
    r1 = ingest([fills], lake, now=T)
    assert counts(r1, "fills") == (10, 0, 0, 0, 10)
    assert lake.read("fills").height == 0 and lake.read("held_fills").height == 10
    r2 = ingest([fills], lake, now=T + dt.timedelta(hours=1))  # the same bytes: still held, nothing written
    assert counts(r2, "fills") == (10, 0, 0, 0, 10) and r2.version == r1.version
    r3 = ingest([orders], lake, now=T + dt.timedelta(hours=2))  # no command: the order releases them
    assert counts(r3, "orders") == (1, 1, 0, 0, 0)
    assert "fills" not in r3.tables  # not read in this batch ...
    assert r3.to_dict()["held_before"] == {"fills": {"accepted": 10}}  # ... but accepted from the hold
    assert sorted(lake.read("fills")["event_id"].to_list()) == sorted(f"f{i}" for i in range(10))
    r4 = ingest([fills], lake, now=T + dt.timedelta(hours=3))
    assert counts(r4, "fills") == (10, 0, 10, 0, 0)
    # The same fills in other bytes (another file) are duplicates too.
    again = files.csv("fills_again.csv", [ev.bare(f) for f in fills_of(ev, 10)])
    assert counts(ingest([again], lake, now=T + dt.timedelta(hours=4)), "fills") == (10, 0, 10, 0, 0)
    assert lake.read("fills").height == 10 and lake.read("quarantine").height == 0


def test_a_held_row_resent_in_other_bytes_is_held_again_not_stored_twice(lake, files, ev):
    ingest([files.jsonl("a.jsonl", fills_of(ev, 2))], lake, now=T)
    res = ingest(
        [files.jsonl("b.jsonl", [*fills_of(ev, 3), ev.fill(event_id="f0", fill_id="F0", price=1.5)])], lake, now=T
    )
    # f0, f1 echo the held rows (held); f2 is new (held); f0 with other content is a conflict.
    assert counts(res, "fills") == (4, 0, 0, 1, 3)
    assert lake.read("held_fills").height == 3
    ingest([files.jsonl("o.jsonl", [ev.order()])], lake, now=T)
    assert sorted(lake.read("fills")["event_id"].to_list()) == ["f0", "f1", "f2"]
    assert lake.read("fills").filter(pl.col("event_id") == "f0")["price"].to_list() == [100.01]


def test_amendments_before_new_and_settlements_before_fills_are_held(lake, files, ev):
    r1 = ingest([files.jsonl("early.jsonl", [ev.order_action("CANCEL"), ev.settlement(), ev.fill()])], lake, now=T)
    assert counts(r1, "orders") == (1, 0, 0, 0, 1)
    assert counts(r1, "fills") == (1, 0, 0, 0, 1)
    assert counts(r1, "settlements") == (1, 0, 0, 0, 1)
    r2 = ingest([files.jsonl("new.jsonl", [ev.order()])], lake, now=T + dt.timedelta(hours=1))
    # The NEW releases the CANCEL and the fill, and the fill releases its settlement, in one batch.
    assert r2.to_dict()["held_before"] == {
        "fills": {"accepted": 1},
        "orders": {"accepted": 1},
        "settlements": {"accepted": 1},
    }
    assert sorted(lake.read("orders")["action"].to_list()) == ["CANCEL", "NEW"]
    assert lake.read("settlements")["fill_id"].to_list() == ["F1"]
    # Nothing is held any more: a further batch releases nothing.
    r3 = ingest([files.jsonl("x.jsonl", [ev.order(event_id="o2", order_id="O2")])], lake, now=T)
    assert r3.to_dict()["held_before"] == {}


def test_hold_limit_quarantines_as_unknown_order_and_a_late_order_still_resolves_it(lake, files, ev):
    limits = Limits(hold_limit=dt.timedelta(hours=24))
    fills = files.jsonl("fills.jsonl", fills_of(ev, 2))
    ingest([fills], lake, now=T, limits=limits)
    # 23 h later (another order's batch): still held. 25 h later: quarantined, once.
    other = files.jsonl("other.jsonl", [ev.order(event_id="o2", order_id="O2")])
    r = ingest([other], lake, now=T + dt.timedelta(hours=23), limits=limits)
    assert r.to_dict()["held_before"] == {"fills": {"held": 2}} and lake.read("quarantine").height == 0
    r = ingest(
        [files.jsonl("o3.jsonl", [ev.order(event_id="o3", order_id="O3")])], lake, now=T + dt.timedelta(hours=25)
    )
    assert r.to_dict()["held_before"] == {"fills": {"quarantined": 2}}
    q = lake.read("quarantine")
    assert q["reason"].to_list() == ["unknown_order"] * 2 and set(q["source_file"]) == {str(fills)}
    r = ingest(
        [files.jsonl("o4.jsonl", [ev.order(event_id="o4", order_id="O4")])], lake, now=T + dt.timedelta(hours=26)
    )
    assert r.to_dict()["held_before"] == {} and lake.read("quarantine").height == 2  # not quarantined twice
    # The same fills sent again now: quarantined again (not duplicate, not a new quarantine row).
    again = files.csv("fills_again.csv", [ev.bare(f) for f in fills_of(ev, 2)])
    r = ingest([again], lake, now=T + dt.timedelta(hours=27))
    assert counts(r, "fills") == (2, 0, 0, 2, 0) and r.quarantine_reasons == {"unknown_order": 2}
    # The order arrives two days late: the fills are accepted and their quarantine rows marked resolved.
    r = ingest([files.jsonl("o1.jsonl", [ev.order()])], lake, now=T + dt.timedelta(hours=50))
    assert r.to_dict()["held_before"] == {"fills": {"accepted": 2}}
    assert sorted(lake.read("fills")["event_id"].to_list()) == ["f0", "f1"]
    rel = lake.read("held_released").sort("released_at", "event_id")
    assert rel.select("event_id", "outcome").rows() == [
        ("f0", "expired"),
        ("f1", "expired"),
        ("f0", "accepted"),
        ("f1", "accepted"),
    ]


def test_zero_hold_limit_quarantines_at_once_and_still_accepts_later(lake, files, ev):
    r = ingest([files.jsonl("f.jsonl", [ev.fill()])], lake, limits=NO_HOLD)
    assert counts(r, "fills") == (1, 0, 0, 1, 0) and r.quarantine_reasons == {"unknown_order": 1}
    r = ingest([files.jsonl("o.jsonl", [ev.order()])], lake, limits=NO_HOLD)
    assert r.to_dict()["held_before"] == {"fills": {"accepted": 1}}
    assert lake.read("fills")["event_id"].to_list() == ["f1"]


def test_a_held_fill_is_checked_against_its_order_when_it_arrives(lake, files, ev):
    """Released rows go through every rule: a held SELL fill of a BUY order is an order_mismatch."""
    ingest([files.jsonl("f.jsonl", [ev.fill(side="SELL")])], lake, now=T)
    r = ingest([files.jsonl("o.jsonl", [ev.order()])], lake, now=T)
    assert r.to_dict()["held_before"] == {"fills": {"quarantined": 1}}
    q = lake.read("quarantine")
    assert q.select("reason", "source_file", "event_id").rows() == [
        ("order_mismatch", str(files.root / "f.jsonl"), "f1")
    ]
    assert lake.read("fills").height == 0
    assert (
        ingest([files.jsonl("o2.jsonl", [ev.order(event_id="o9", order_id="O9")])], lake).to_dict()["held_before"] == {}
    )


# --- plausibility (item 8) ------------------------------------------------------------------------
def test_overfill_is_quarantined_across_batches(lake, files, ev):
    """Order of 4,400 shares; fills 1,000, 1,000,000, 3,000, 400 in time order: the 1,000,000 would take the
    total past 4,400 (overfill), the others add up to exactly 4,400. A later 1-share fill is an overfill."""
    order = ev.order(quantity=4400)
    fills = [
        ev.fill(event_id="a", fill_id="A", quantity=1000, ts="2026-03-02T14:31:00Z"),
        ev.fill(event_id="b", fill_id="B", quantity=1_000_000, ts="2026-03-02T14:32:00Z"),
        ev.fill(event_id="c", fill_id="C", quantity=3000, ts="2026-03-02T14:33:00Z"),
        ev.fill(event_id="d", fill_id="D", quantity=400, ts="2026-03-02T14:34:00Z"),
    ]
    r = ingest([files.jsonl("day.jsonl", [order, *reversed(fills)])], lake)
    assert counts(r, "fills") == (4, 3, 0, 1, 0) and r.quarantine_reasons == {"overfill": 1}
    assert lake.read("quarantine")["event_id"].to_list() == ["b"]
    assert lake.read("fills")["quantity"].sum() == 4400
    r = ingest([files.jsonl("late.jsonl", [ev.fill(event_id="e", fill_id="E", quantity=1)])], lake)
    assert counts(r, "fills") == (1, 0, 0, 1, 0) and r.quarantine_reasons == {"overfill": 1}
    # A REPLACE raising the quantity to 5,000 leaves room for 600 more.
    r = ingest(
        [
            files.jsonl(
                "rep.jsonl",
                [ev.order_action("REPLACE", quantity=5000), ev.fill(event_id="g", fill_id="G", quantity=600)],
            )
        ],
        lake,
    )
    assert counts(r, "fills") == (1, 1, 0, 0, 0)


def test_fill_before_its_orders_new_is_quarantined(lake, files, ev):
    r = ingest(
        [
            files.jsonl(
                "d.jsonl", [ev.order(), ev.fill(ts="2026-03-02T14:29:59Z"), ev.fill(event_id="f2", fill_id="F2")]
            )
        ],
        lake,
    )
    assert counts(r, "fills") == (2, 1, 0, 1, 0) and r.quarantine_reasons == {"fill_before_order": 1}
    assert "before its order's NEW" in lake.read("quarantine")["detail"][0]


def test_values_and_times_beyond_the_limits_are_quarantined_with_their_own_codes(lake, files, ev):
    rows = [
        ev.order(),
        ev.fill(event_id="p", fill_id="P", price=1e308),  # finite, but no price: out_of_range
        ev.fill(event_id="q", fill_id="Q", quantity=1e12),  # beyond max_quantity 1e11
        ev.fill(event_id="t", fill_id="T", ts="9999-12-31T00:00:00Z"),  # valid time, outside the window
        ev.fill(event_id="y", fill_id="Y", ts="10000-01-01T00:00:00Z"),  # year beyond 9999: not a time
        ev.fill(event_id="ok", fill_id="OK"),
    ]
    csv_rows = [
        {"date": "9999-12-31", "symbol": "AAPL", "return": 0.01},
        {"date": "10000-01-01", "symbol": "AAPL", "return": 0.01},
        {"date": "2026-03-02", "symbol": "AAPL", "return": 1e300},
    ]
    r = ingest([files.jsonl("d.jsonl", rows), files.csv("returns_x.csv", csv_rows)], lake, now=T)
    assert counts(r, "fills") == (5, 1, 0, 4, 0)
    assert counts(r, "returns") == (3, 0, 0, 3, 0)
    q = lake.read("quarantine").sort("source_file", "line")
    assert q.select("event_id", "reason").rows()[:4] == [
        ("p", "out_of_range"),
        ("q", "out_of_range"),
        ("t", "out_of_window"),
        ("y", "bad_timestamp"),
    ]
    assert q.filter(pl.col("table") == "returns")["reason"].to_list() == ["out_of_window", "bad_value", "out_of_range"]
    # The limits are configurable: with a six-year window ahead, a fill dated 2031 is accepted.
    wide = Limits(max_ahead=dt.timedelta(days=6 * 365))
    r = ingest(
        [files.jsonl("far.jsonl", [ev.fill(event_id="z", fill_id="Z", ts="2031-01-02T00:00:00Z")])],
        lake,
        now=T,
        limits=wide,
    )
    assert counts(r, "fills") == (1, 1, 0, 0, 0)


# --- input forms (items 5, 10, 4) -----------------------------------------------------------------
def test_user_columns_named_like_internal_ones_are_kept_as_extra_fields(lake, files, ev, quarantine):
    """Issue 15 item 5: a user column ``_raw`` was taken for the quarantine's raw content, so two different
    bad rows with the same ``_raw`` looked identical and the second was stored nowhere."""
    user = {"_raw": "same", "_line": "77", "extra": "mine"}
    rows = [
        ev.bare(ev.fill(event_id="b1", fill_id="B1", quantity=-1)) | user,
        ev.bare(ev.fill(event_id="b2", fill_id="B2", quantity=-2)) | user,
        ev.bare(ev.fill()) | user,
    ]
    for name, write in (("fills_u.csv", files.csv), ("fills_u.parquet", files.parquet)):
        lk = type(lake)(lake.root.parent / name)
        ingest([files.jsonl("o.jsonl", [ev.order()])], lk)
        res = ingest([write(name, rows)], lk)
        assert (res.tables["fills"].accepted, res.tables["fills"].quarantined) == (1, 2), name
        q = quarantine(lk)
        assert q["event_id"].to_list() == ["b1", "b2"] and q["line"].to_list() == (
            [2, 3] if name.endswith("csv") else [0, 1]
        )
        # The raw row keeps the user's fields (a batch file's extra fields as the row's `extra` object).
        assert [json.loads(json.loads(r)["extra"])["_raw"] for r in q["raw"]] == ["same", "same"]
        extra = json.loads(lk.read("fills")["extra"][0])
        assert {k: str(v) for k, v in extra.items()} == user


def test_duplicate_keys_bom_and_cr_line_endings(lake, files, ev, quarantine):
    """Issue 15 item 10: {"quantity": 10, "quantity": -10} is quarantined as duplicate_key (a parser keeps
    either value); a UTF-8 BOM and CR-only line endings are read as any other JSON Lines file."""
    o = json.dumps(ev.order())
    dup = json.dumps(ev.fill()).replace('"quantity": 100', '"quantity": 10, "quantity": -10')
    data = (
        b"\xef\xbb\xbf"
        + o.encode()
        + b"\r"
        + dup.encode()
        + b"\r"
        + json.dumps(ev.fill(event_id="f2", fill_id="F2")).encode()
        + b"\r"
    )
    res = ingest([files.raw("mac.jsonl", data)], lake)
    assert (res.tables["orders"].accepted, res.tables["fills"].accepted, res.tables["fills"].quarantined) == (1, 1, 1)
    q = quarantine(lake)
    assert q.select("line", "reason", "detail", "raw").rows() == [
        (2, "duplicate_key", "key appears more than once: quantity", dup)
    ]


def test_folder_lists_every_file_it_skips_reads_gzip_and_stays_inside(lake, files, ev, tmp_path):
    """Issue 15 items 4 and 14: fills_a.json, *.JSONL.txt and _fills_c.jsonl were skipped silently;
    *.jsonl.gz was not read; a symbolic link out of the folder was followed."""
    import gzip

    d = tmp_path / "drop"
    (d / "sub").mkdir(parents=True)
    (d / "orders.jsonl").write_text(json.dumps(ev.order()) + "\n")
    (d / "sub" / "fills_b.jsonl.gz").write_bytes(gzip.compress((json.dumps(ev.fill()) + "\n").encode()))
    (d / "fills_gz.csv.gz").write_bytes(
        gzip.compress(
            b"event_id,fill_id,order_id,ts,symbol,side,quantity,price,venue\n"
            b"f2,F2,O1,2026-03-02T14:32:00Z,AAPL,BUY,50,100.02,XNAS\n"
        )
    )
    (d / "fills_a.json").write_text(json.dumps(ev.fill(event_id="fa", fill_id="FA")) + "\n")
    (d / "fills.JSONL.txt").write_text("{}\n")
    (d / "_fills_c.jsonl").write_text("{}\n")
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "fills_x.jsonl").write_text(json.dumps(ev.fill(event_id="fx", fill_id="FX")) + "\n")
    (d / "linked.jsonl").symlink_to(outside / "fills_x.jsonl")
    (d / "linked_dir").symlink_to(outside)
    res = ingest([d], lake)
    by = {Path(f["path"]).name: f for f in res.files}
    assert {n: f["status"] for n, f in by.items()} == {
        "orders.jsonl": "ingested",
        "fills_b.jsonl.gz": "ingested",
        "fills_gz.csv.gz": "ingested",
        "fills_a.json": "skipped",
        "fills.JSONL.txt": "skipped",
        "_fills_c.jsonl": "skipped",
        "linked.jsonl": "skipped",
        "linked_dir": "skipped",
    }
    assert "outside the folder" in by["linked.jsonl"]["reason"] and "not followed" in by["linked_dir"]["reason"]
    assert "metadata" in by["_fills_c.jsonl"]["reason"] and "unknown format" in by["fills_a.json"]["reason"]
    assert sorted(lake.read("fills")["event_id"].to_list()) == ["f1", "f2"]


def test_quarantine_purge_before_a_date(lake, files, ev, capsys):
    """Issue 15 item 14: retention. Rows quarantined on 2026-03-03 (a bad quote, a junk line) and 2026-03-05
    (two bad quotes, and the fill held since 03-03, expired then as unknown_order); purge --before 2026-03-04
    keeps the three of 03-05; the held row itself is not touched."""
    from analytics.__main__ import main

    ingest([files.jsonl("a.jsonl", [ev.quote(bid=-1), "junk", ev.fill()])], lake, now=T)  # 2 rejected, 1 held
    later = T + dt.timedelta(days=2)
    ingest([files.jsonl("b.jsonl", [ev.quote(bid=-2), ev.quote(ask=-3)])], lake, now=later)
    assert lake.read("quarantine").height == 5
    assert main(["quarantine", "purge", "--before", "2026-03-04", "--lake", str(lake.root)]) == 0
    assert "removed 2 row(s)" in capsys.readouterr().out
    q = lake.read("quarantine").sort("reason")
    assert q.select("reason", pl.col("source_file").str.split("/").list.last()).rows() == [
        ("non_positive", "b.jsonl"),
        ("non_positive", "b.jsonl"),
        ("unknown_order", "a.jsonl"),
    ]
    assert lake.read("held_fills").height == 1
    with pytest.raises(SystemExit) as bad_date:  # a usage error (argparse): exit 2, one line
        main(["quarantine", "purge", "--before", "2026-02-30", "--lake", str(lake.root)])
    assert bad_date.value.code == 2


def test_upload_names_every_table_the_cli_does_and_messages_name_the_users_file(lake, files, ev, tmp_path):
    """Issue 15 item 15: the Data page took the first word only (benchmark_weights_* -> 'benchmark': no
    table) and messages named the temp file. The page now uses ingest.table_hint and display_names."""
    from analytics.ingest import IngestError, table_hint

    assert table_hint("benchmark_weights_2026-03.csv") == "benchmark_weights"
    assert table_hint("factor_returns.csv") == "factor_returns"
    assert table_hint("factor_exposures-2026.parquet") == "factor_exposures"
    assert table_hint("fills_2026-03-02.jsonl.gz") == "fills"
    assert table_hint("misc.csv") is None
    tmp = files.raw("upload_000.csv", b"a,b\n1,2\n")  # the page's own name; the user called it "my prices.csv"
    try:
        ingest([tmp], lake, display_names={str(tmp): "my prices.csv"})
    except IngestError as e:
        assert str(e).startswith("my prices.csv: cannot tell which table") and "upload_000" not in str(e)
    else:
        raise AssertionError("a file naming no table must be refused")
    bad = files.raw("upload_001.unknown", b"x")
    try:
        ingest([bad], lake, display_names={str(bad): "prices.xlsx"})
    except IngestError as e:
        assert str(e).startswith("prices.xlsx: unknown format") and "upload_001" not in str(e)
    w = files.csv(
        "benchmark_weights_000.csv", [{"date": "2026-03-02", "benchmark_id": "B", "symbol": "A", "weight": 1}]
    )
    res = ingest([w], lake, display_names={str(w): "benchmark_weights_march.csv"})
    assert res.tables["benchmark_weights"].accepted == 1 and res.files[0]["path"] == "benchmark_weights_march.csv"


def test_market_data_without_seq_resent_is_recognised_by_content(lake, files, ev):
    """Issue 15 item 11: 13,197 trades without seq went in twice. The same trades in other bytes (another
    format, another file) are duplicates; equal trades within one feed stay distinct events (multiset)."""
    t1 = ev.bare(ev.trade(ts="2026-03-02T14:30:00Z"))
    t2 = ev.bare(ev.trade(ts="2026-03-02T14:30:01Z", price=100.02))
    feed = [t1, t1, t2]  # two equal trades in one second: two trades
    r = ingest([files.csv("trades_a.csv", feed)], lake)
    assert (r.tables["trades"].accepted, r.tables["trades"].duplicate) == (3, 0)
    # Re-sent as Parquet (the streaming path), and as JSON Lines with one more trade at the end.
    pq = files.parquet(
        "trades_b.parquet", pl.DataFrame(feed).with_columns(pl.col("ts").str.to_datetime(time_zone="UTC"))
    )
    r = ingest([pq], lake)
    assert (r.tables["trades"].accepted, r.tables["trades"].duplicate) == (0, 3)
    t3 = ev.trade(ts="2026-03-02T14:30:02Z")
    r = ingest([files.jsonl("trades_c.jsonl", [ev.trade(ts="2026-03-02T14:30:00Z")] * 3 + [t3])], lake)
    # The lake holds t1 twice: two of the three t1 are duplicates, the third is a new trade; t3 is new.
    assert (r.tables["trades"].accepted, r.tables["trades"].duplicate) == (2, 2)
    assert lake.read("trades").height == 5


def test_json_lines_read_in_blocks_give_the_same_result_as_whole(tmp_path, files, ev, monkeypatch):
    """Issue 15 item 15 (bounded memory): JSON Lines are read in blocks; a block boundary inside a line, a
    CRLF pair or a BOM changes no count, no line number and no raw content in the quarantine (rows rejected
    after their block was released are read again from the file)."""
    from analytics import ingest as ing
    from analytics.store import Lake

    rows = [ev.order(), "junk", ev.fill(quantity=-1), ev.fill(event_id="f2", fill_id="F2", order_id="O404")]
    rows += [ev.fill(event_id=f"g{i}", fill_id=f"G{i}", side="SELL" if i % 3 == 0 else "BUY") for i in range(8)]
    data = (
        b"\xef\xbb\xbf"
        + b"\r\n".join(r.encode() if isinstance(r, str) else json.dumps(r).encode() for r in rows)
        + b"\r\n"
    )
    path = files.raw("events.jsonl", data)
    got = []
    for block in (1 << 20, 64, 7):
        monkeypatch.setattr(ing, "JSONL_BLOCK_BYTES", block)
        lake = Lake(tmp_path / f"lake{block}")
        res = ing.ingest([path], lake, limits=NO_HOLD).to_dict()
        q = lake.read("quarantine").sort("line").select("line", "reason", "raw").rows()
        got.append((res["tables"], q))
    assert got[0] == got[1] == got[2]
    tables, q = got[0]
    # 3 SELL fills of a BUY order (g0, g3, g6): order_mismatch; f1 non_positive; f2 unknown_order; junk.
    assert tables["fills"]["accepted"] == 5 and tables["fills"]["quarantined"] == 5
    assert [(n, r) for n, r, _ in q] == [
        (2, "unparseable"),
        (3, "non_positive"),
        (4, "unknown_order"),
        (5, "order_mismatch"),
        (8, "order_mismatch"),
        (11, "order_mismatch"),
    ]
    assert q[3][2] == json.dumps(rows[4])  # the line as received, read again from the file


def test_any_split_and_order_of_batches_ends_in_the_one_batch_result(tmp_path, ev):
    """The claim of the ingest docstring: holding is a function of (batch, lake snapshot), so events sent in
    any order, split into any micro-batches within the hold limit, end in the same lake as one batch."""
    import random

    from analytics.store import Lake

    events = []
    for o in range(4):
        events.append(ev.order(event_id=f"o{o}", order_id=f"O{o}"))
        events.append(ev.order_action("DONE", event_id=f"d{o}", order_id=f"O{o}"))
        for k in range(3):
            fid = f"F{o}{k}"
            events.append(ev.fill(event_id=f"f{o}{k}", fill_id=fid, order_id=f"O{o}", quantity=100 + k))
            events.append(ev.settlement(event_id=f"s{o}{k}", fill_id=fid))

    def final(lake):
        return {t: sorted(lake.read(t)["event_id"].to_list()) for t in ("orders", "fills", "settlements", "quarantine")}

    def write(path, rows):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    one = Lake(tmp_path / "one")
    ingest([write(tmp_path / "all.jsonl", events)], one)
    expected = final(one)
    assert [len(expected[t]) for t in ("orders", "fills", "settlements", "quarantine")] == [8, 12, 12, 0]
    rng = random.Random(7)
    for trial in range(3):
        shuffled = rng.sample(events, len(events))
        cuts = sorted(rng.sample(range(1, len(events)), 4))
        lake = Lake(tmp_path / f"split{trial}")
        for i, (a, b) in enumerate(zip([0, *cuts], [*cuts, len(events)], strict=True)):
            res = ingest([write(tmp_path / f"t{trial}_b{i}.jsonl", shuffled[a:b])], lake, now=T)
            assert res.to_dict()["totals"]["quarantined"] == 0
        assert final(lake) == expected, trial
        # Nothing is left waiting: every row that was held has been released as accepted.
        held = {e for t in ("orders", "fills", "settlements") for e in lake.read(f"held_{t}")["event_id"]}
        released = lake.read("held_released")
        assert held == set(released.filter(pl.col("outcome") == "accepted")["event_id"]), trial


def test_held_status_counts_held_expired_and_resolved(lake, files, ev):
    from analytics.ingest import held_status

    ingest([files.jsonl("a.jsonl", [*fills_of(ev, 3), ev.fill(event_id="z", fill_id="Z", order_id="O9")])], lake, now=T)
    ingest(
        [files.jsonl("b.jsonl", [ev.fill(event_id="y", fill_id="Y", order_id="O8")])],
        lake,
        now=T + dt.timedelta(hours=30),
    )
    # At +30 h: the four of a.jsonl expired (quarantined); y is held. Then O1 arrives: f0..f2 resolved.
    ingest([files.jsonl("c.jsonl", [ev.order()])], lake, now=T + dt.timedelta(hours=31))
    con = lake.connect()
    try:
        got = held_status(con).rows()
    finally:
        con.close()
    assert got == [("fills", 1, 1, 3)]
