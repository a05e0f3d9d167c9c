"""analytics/store.py: versions, manifest, pruning, half-open scans, summary, snapshots, atomic commits.

The kill tests run the real CLI in a subprocess and SIGKILL it at chosen points of the commit protocol
(while data files are being written; right before ``CURRENT`` is replaced, when the data files and the next
manifest are on disk) and once at a moment found by polling, then check that a reader sees exactly the lake
from before and that the next ingest removes the orphans and works.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import polars as pl
import pytest

from analytics import store
from analytics.ingest import ingest
from analytics.store import MANIFEST_DIR, Lake, empty_frame
from analytics.validate import Limits

UTC = dt.UTC


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def returns_frame(rows: list[tuple[dt.date, str, float]]) -> pl.DataFrame:
    df = pl.DataFrame(rows, schema={"date": pl.Date, "symbol": pl.String, "return": pl.Float64}, orient="row")
    return (
        df.with_columns(pl.lit(None, pl.Float64).alias("fx_return"))
        .with_columns(extra=pl.lit(None, pl.String), _batch=pl.lit("b"), _hash=pl.lit(None, pl.String))
        .select(list(empty_frame("returns").columns))
    )


def data_files(lake: Lake) -> set[str]:
    return {str(p.relative_to(lake.root)) for p in (lake.root / "tables").rglob("*") if p.is_file()}


def listed_files(lake: Lake) -> set[str]:
    return {e.path for es in lake.manifest().tables.values() for e in es}


# --- versions and the manifest ------------------------------------------------------------------
def test_empty_lake_reads_as_empty_tables(lake):
    assert lake.version() == 0 and not lake.exists()
    assert lake.source_version() == "lake@0"
    df = lake.read("fills")
    assert df.height == 0
    assert df.schema == empty_frame("fills").schema
    con = lake.connect()
    assert con.execute("SELECT version FROM lake_version").fetchall() == [(0,)]
    assert con.execute("SELECT count(*) FROM quotes").fetchall() == [(0,)]
    con.close()
    s = lake.summary()
    assert s["version"] == 0 and s["quarantine"] == []
    assert all(t["rows"] == 0 and t["start"] is None for t in s["tables"])


def test_version_increments_only_when_a_commit_writes_something(lake):
    with lake.writer():
        pass  # nothing appended: no commit
    assert lake.version() == 0
    assert not (lake.root / MANIFEST_DIR / "CURRENT").exists()
    with lake.writer() as w:
        w.append("returns", returns_frame([]))  # an empty frame writes nothing
    assert lake.version() == 0
    with lake.writer() as w:
        w.append("returns", returns_frame([(dt.date(2026, 3, 2), "AAPL", 0.01)]))
    assert lake.version() == 1
    assert (lake.root / MANIFEST_DIR / "CURRENT").read_text() == "1"
    assert lake.manifest().version == 1
    with lake.writer() as w:
        w.append("returns", returns_frame([(dt.date(2026, 3, 3), "AAPL", 0.02)]))
    assert lake.version() == 2
    # Versions only add files: v2 lists v1's file plus its own; v1 is still readable as it was.
    assert [e.rows for e in lake.manifest(1).entries("returns")] == [1]
    assert [e.rows for e in lake.manifest(2).entries("returns")] == [1, 1]
    assert lake.read("returns")["return"].sort().to_list() == [0.01, 0.02]


def test_failed_writer_block_commits_nothing_and_its_files_are_removed_by_the_next_writer(lake):
    with lake.writer() as w:
        w.append("returns", returns_frame([(dt.date(2026, 3, 2), "AAPL", 0.01)]))
    kept = data_files(lake)
    with pytest.raises(RuntimeError), lake.writer() as w:
        w.append("returns", returns_frame([(dt.date(2026, 3, 3), "MSFT", 0.5)]))
        raise RuntimeError("crash after writing a data file")
    assert lake.version() == 1
    assert len(data_files(lake)) == 2  # the orphan is on disk ...
    assert lake.read("returns")["symbol"].to_list() == ["AAPL"]  # ... but invisible
    with lake.writer():
        pass
    assert data_files(lake) == kept


def test_next_writer_removes_every_kind_of_leftover(lake):
    with lake.writer() as w:
        w.append("returns", returns_frame([(dt.date(2026, 3, 2), "AAPL", 0.01)]))
    live = data_files(lake)
    mdir = lake.root / MANIFEST_DIR
    leftovers = [
        lake.root / "tables/returns/month=2026-03/dead-00001.parquet",
        lake.root / "tables/quotes/day=2026-03-02/dead-00002.parquet.tmp",
        mdir / "v00000002.json",  # a manifest no CURRENT points to
        mdir / "v00000002.json.tmp",
        mdir / "CURRENT.20260302T000000-deadbeef",
    ]
    for p in leftovers:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    assert lake.version() == 1 and lake.read("returns").height == 1
    with lake.writer():
        pass
    assert not any(p.exists() for p in leftovers)
    assert data_files(lake) == live
    assert (mdir / "v00000001.json").exists()


# --- pruning and scans --------------------------------------------------------------------------
def test_files_prunes_by_date_and_the_manifest_records_partitions(lake, files, ev):
    quotes = [ev.quote(ts=f"2026-03-0{d}T15:00:00Z") for d in (2, 3, 4)]
    rets = [{"date": d, "symbol": "AAPL", "return": 0.01} for d in ("2026-02-27", "2026-03-02")]
    ingest([files.jsonl("q.jsonl", quotes), files.csv("returns_x.csv", rets)], lake)

    parts = sorted(e.part for e in lake.manifest().entries("quotes"))
    assert parts == ["2026-03-02", "2026-03-03", "2026-03-04"]
    assert sorted(e.part for e in lake.manifest().entries("returns")) == ["2026-02", "2026-03"]
    d = dt.date
    assert len(lake.files("quotes")) == 3
    assert [p.parent.name for p in lake.files("quotes", d(2026, 3, 3), d(2026, 3, 3))] == ["day=2026-03-03"]
    assert len(lake.files("quotes", start=d(2026, 3, 3))) == 2
    assert len(lake.files("quotes", end=d(2026, 3, 2))) == 1
    assert lake.files("quotes", d(2026, 3, 5), d(2026, 3, 9)) == []
    assert [p.parent.name for p in lake.files("returns", d(2026, 3, 1), d(2026, 3, 31))] == ["month=2026-03"]
    assert all(p.exists() for p in lake.files("quotes"))


def test_scan_is_half_open_on_timestamps_and_inclusive_on_dates(lake, files, ev):
    bars = [
        ev.bar(symbol="A", ts="2026-03-01T00:00:00Z"),
        ev.bar(symbol="B", ts="2026-03-02T23:59:59.999999Z"),
        ev.bar(symbol="C", ts="2026-03-03T00:00:00Z"),  # the first instant of the next day
    ]
    rets = [{"date": f"2026-03-0{i}", "symbol": "AAPL", "return": 0.01 * i} for i in (1, 2, 3)]
    ingest([files.jsonl("bars.jsonl", bars), files.jsonl("returns.jsonl", rets)], lake)
    assert len(lake.files("bars")) == 1  # monthly partition: one file, so only the filter can exclude rows

    d = dt.date
    con = lake.connect()

    def symbols(table, start, end):
        rel = lake.scan(con, table, start, end)
        return sorted(r[0] for r in rel.select("symbol").fetchall())

    assert symbols("bars", d(2026, 3, 2), d(2026, 3, 2)) == ["B"]
    assert symbols("bars", d(2026, 3, 1), d(2026, 3, 2)) == ["A", "B"]
    assert symbols("bars", d(2026, 3, 3), None) == ["C"]
    assert symbols("bars", None, d(2026, 3, 1)) == ["A"]
    assert symbols("bars", None, None) == ["A", "B", "C"]
    got = lake.scan(con, "returns", d(2026, 3, 2), d(2026, 3, 3)).pl()
    assert got["date"].sort().to_list() == [d(2026, 3, 2), d(2026, 3, 3)]
    con.close()
    assert lake.read("returns", d(2026, 3, 3), d(2026, 3, 3))["return"].to_list() == [0.03]


def test_summary_counts_rows_files_dates_and_quarantine(lake, files, ev):
    ingest(
        [
            files.jsonl(
                "ev.jsonl",
                [
                    ev.quote(ts="2026-03-02T15:00:00Z"),
                    ev.quote(ts="2026-03-05T15:00:00Z"),
                    ev.quote(bid=-1),
                    ev.quote(bid=-2),
                    ev.fill(),  # no order: unknown_order (quarantined at once with a zero hold limit)
                    "junk",
                ],
            )
        ],
        lake,
        limits=Limits(hold_limit=dt.timedelta(0)),
    )
    s = lake.summary()
    assert s["version"] == 1 and s["lake"] == str(lake.root)
    by = {t["table"]: t for t in s["tables"]}
    assert (by["quotes"]["rows"], by["quotes"]["files"]) == (2, 2)
    assert (by["quotes"]["start"], by["quotes"]["end"]) == ("2026-03-02", "2026-03-05")
    assert by["fills"]["rows"] == 0 and by["fills"]["start"] is None
    assert by["quarantine"]["rows"] == 4
    assert s["quarantine"] == [
        {"table": "quotes", "reason": "non_positive", "rows": 2},
        {"table": "fills", "reason": "unknown_order", "rows": 1},
        {"table": "unknown", "reason": "unparseable", "rows": 1},
    ]


# --- snapshots ----------------------------------------------------------------------------------
def test_a_connection_keeps_its_snapshot_while_a_new_ingest_commits(lake, files, ev):
    ingest([files.jsonl("a.jsonl", [ev.quote(symbol="A"), ev.quote(symbol="B")])], lake)
    con = lake.connect()
    ingest([files.jsonl("b.jsonl", [ev.quote(symbol="C")])], lake)
    assert lake.version() == 2
    assert con.execute("SELECT count(*) FROM quotes").fetchall() == [(2,)]
    assert con.execute("SELECT version FROM lake_version").fetchall() == [(1,)]
    assert lake.scan(con, "quotes").pl().height == 2  # scan reads the connection's snapshot too
    con.close()
    assert lake.read("quotes").height == 3
    old = lake.connect(lake.manifest(1))
    assert old.execute("SELECT count(*) FROM quotes").fetchall() == [(2,)]
    old.close()


# --- atomicity under SIGKILL --------------------------------------------------------------------
# Runs the CLI with os.replace wrapped so that the process kills itself at one step of the commit: "data"
# when the second data file is about to be renamed into place (one is complete, one is a .tmp), "current"
# when every data file and the next manifest are written and only CURRENT is left to replace.
KILLER = """
import os, signal, sys
point = sys.argv[1]
real_replace = os.replace
data_files = []
def replace(src, dst, *a, **kw):
    name = os.path.basename(str(dst))
    if name.endswith(".parquet"):
        data_files.append(name)
    if (point == "data" and len(data_files) == 2) or (point == "current" and name == "CURRENT"):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *a, **kw)
os.replace = replace
from analytics.__main__ import main
sys.exit(main(sys.argv[2:]))
"""


def _env():
    env = {**os.environ, "PYTHONPATH": str(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))}
    env.pop("ANALYTICS_LAKE", None)
    return env


def _second_batch(files, ev):
    """Files of a second ingest touching several tables, including a quarantined row."""
    return [
        files.jsonl("day2.jsonl", [ev.fill(event_id="f2", fill_id="F2"), ev.quote(symbol="MSFT"), "junk"]),
        files.csv("returns_0302.csv", [{"date": "2026-03-02", "symbol": "AAPL", "return": 0.01}]),
    ]


def _assert_orphans_cleaned_by_next_ingest(lake, files, ev, paths):
    res = ingest(paths, lake)
    assert res.version == 2
    assert res.to_dict()["totals"] == {"read": 4, "accepted": 3, "duplicate": 0, "quarantined": 1, "held": 0}
    assert data_files(lake) == listed_files(lake)
    mdir = lake.root / MANIFEST_DIR
    assert sorted(p.name for p in mdir.iterdir()) == ["CURRENT", "v00000001.json", "v00000002.json"]
    assert lake.read("fills")["fill_id"].sort().to_list() == ["F1", "F2"]


@pytest.mark.parametrize("point", ["data", "current"])
def test_kill_during_commit_leaves_the_lake_unchanged(point, seeded, files, ev, lake_state):
    lake = seeded
    before = lake_state(lake)
    paths = _second_batch(files, ev)
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, point, "ingest", *map(str, paths), "--lake", str(lake.root), "--json"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout == ""
    assert lake_state(lake) == before
    assert data_files(lake) - listed_files(lake)  # it did get as far as writing data
    if point == "current":
        assert (lake.root / MANIFEST_DIR / "v00000002.json").exists()  # written, never made current
    _assert_orphans_cleaned_by_next_ingest(lake, files, ev, paths)


def test_kill_at_a_real_moment_during_a_big_ingest(seeded, files, ev, lake_state):
    """SIGKILL as soon as the ingest has put a new file in the lake folder (polling), retrying if the
    process had committed already."""
    lake = seeded
    n = 300_000
    t0 = utc(2026, 3, 2, 14, 30)
    df = pl.DataFrame(
        {
            "symbol": ["AAPL", "MSFT", "IBM"] * (n // 3),
            "ts": pl.datetime_range(t0, t0 + dt.timedelta(microseconds=n - 1), "1us", eager=True, time_zone="UTC"),
        }
    ).with_columns(bid=pl.lit(100.0), ask=pl.lit(100.01), bid_size=pl.lit(100.0), ask_size=pl.lit(200.0))
    big = files.parquet("quotes_big.parquet", df)
    before = lake_state(lake)
    backup = files.root.parent / "lake_backup"
    shutil.copytree(lake.root, backup)
    known = {str(p.relative_to(lake.root)) for p in lake.root.rglob("*") if p.is_file()}
    killed = False
    for _ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-m", "analytics", "ingest", str(big), "--lake", str(lake.root)],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if {str(p.relative_to(lake.root)) for p in lake.root.rglob("*") if p.is_file()} - known:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.001)
        rc = proc.wait(timeout=60)
        if rc == -signal.SIGKILL and lake.version() == 1:
            killed = True
            break
        # It committed before the kill landed: put the seeded lake back and try again.
        shutil.rmtree(lake.root)
        shutil.copytree(backup, lake.root)
    assert killed
    assert lake_state(lake) == before
    res = ingest([files.jsonl("after.jsonl", [ev.quote(symbol="IBM")])], lake)
    assert res.version == 2
    assert data_files(lake) == listed_files(lake)
    assert lake.read("quotes").height == 1


def test_bundle_round_trips_frames_dates_and_decimals_and_never_pickles(tmp_path):
    frame = pl.DataFrame(
        {
            "day": [dt.date(2026, 3, 2), None],
            "ts": [dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC), None],
            "n": pl.Series([1, 2], dtype=pl.UInt32),
            "x": [1.5, float("nan")],
            "s": ["a", None],
        }
    )
    obj = {
        "frame": frame,
        "day": dt.date(2026, 3, 2),
        "when": dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC),
        "cost": decimal.Decimal("1234.5600"),
        "rows": [{"key": "VWAP", "bps": -1.25, "ok": True, "none": None}],
    }
    path = store.write_bundle(tmp_path / "b.json", obj)
    text = path.read_text()
    assert json.loads(text)["rows"][0]["key"] == "VWAP"  # plain JSON on disk
    back = store.read_bundle(path)
    assert back["frame"].schema == frame.schema
    assert back["frame"].equals(frame)
    assert back["day"] == dt.date(2026, 3, 2) and back["when"] == obj["when"] and back["when"].tzinfo is not None
    assert back["cost"] == decimal.Decimal("1234.5600")
    assert back["rows"] == obj["rows"]
    assert store.read_bundle(tmp_path / "missing.json") is None
    with pytest.raises(TypeError, match="cannot store object"):
        store.write_bundle(tmp_path / "c.json", {"x": object()})
    assert not (tmp_path / "c.json").exists()
