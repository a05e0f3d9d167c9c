"""The folder source end to end, through the real entry point (``python -m analytics live``): events appended to
a watched folder reach the lake (counts by hand), only whole lines are read, a restart resumes at the committed
byte offset without doubling anything, and a crash between a commit and its offsets is a no-op on restart."""

from __future__ import annotations

import json
import signal

import pytest

from analytics.ingest import ingest
from analytics.store import Lake
from tests.live_helpers import counts, events, lines, snapshot, start_engine, stop_engine, wait_for


@pytest.mark.slow
def test_folder_end_to_end_and_restart(tmp_path):
    lake, inbox = tmp_path / "lake", tmp_path / "inbox"
    inbox.mkdir()
    f = inbox / "desk.jsonl"
    ev1 = events(5)  # 1 order, 5 fills, 5 + 1 quotes, 5 trades
    data = lines(ev1)
    # The first write ends in the middle of the last line: only whole lines may be read.
    f.write_bytes(data[:-20])
    proc = start_engine(lake, f"dir:{inbox}", 0.3, log=tmp_path / "engine.log")
    try:
        wait_for(lambda: counts(lake)["fills"] == 5 and counts(lake)["quotes"] == 5)
        with open(f, "ab") as fh:
            fh.write(data[-20:])
        wait_for(lambda: counts(lake)["quotes"] == 6)
        assert counts(lake) == {"orders": 1, "fills": 5, "quotes": 6, "trades": 5}
        # The snapshot shows the working order with its fills (published every second).
        # (the snapshot is rewritten every second: wait for one taken after the commits)
        snap = wait_for(
            lambda: (s := snapshot(lake)) and s["orders"] and s["orders"][0]["filled_qty"] == 500
            and s["status"]["events_committed"] == len(ev1) and s
        )  # fmt: skip
        assert snap["orders"][0]["arrival_price"] == pytest.approx(100.0)
        assert snap["status"]["last_commit_version"] >= 1
        assert stop_engine(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    offsets = json.loads((lake / "live" / "offsets.json").read_text())
    assert offsets[str(inbox)] == {"desk.jsonl": len(data)}
    # More events appended while the engine is down; the restart reads from the committed offset only.
    with open(f, "ab") as fh:
        fh.write(lines(events(3, start=5)))  # 3 fills, 3 + 1 quotes, 3 trades
    proc = start_engine(lake, f"dir:{inbox}", 0.3, log=tmp_path / "engine.log")
    try:
        wait_for(lambda: counts(lake)["fills"] == 8)
        wait_for(lambda: counts(lake)["quotes"] == 10)
        assert stop_engine(proc, signal.SIGINT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert counts(lake) == {"orders": 1, "fills": 8, "quotes": 10, "trades": 8}


@pytest.mark.slow
def test_crash_between_commit_and_offsets_is_a_no_op(tmp_path):
    """The batch was committed but the engine died before recording its offsets: pending.json names the sealed
    segment and the offsets it completes. The restart re-ingests the same segment (a no-op: same bytes) and applies
    the offsets, so the quote without seq (no identity in the lake) is not doubled and no line is read twice."""
    lake_root, inbox = tmp_path / "lake", tmp_path / "inbox"
    inbox.mkdir()
    data = lines(events(4))
    (inbox / "desk.jsonl").write_bytes(data)
    live = lake_root / "live"
    (live / "spool").mkdir(parents=True)
    seg = live / "spool" / "seg-1-1-000001.jsonl"
    seg.write_bytes(data)
    ingest([seg], lake=Lake(lake_root))  # the commit that happened before the crash
    before = counts(lake_root)
    assert before == {"orders": 1, "fills": 4, "quotes": 5, "trades": 4}
    (live / "pending.json").write_text(
        json.dumps({"segment": str(seg), "state": {"offsets": {"desk.jsonl": len(data)}}})
    )
    proc = start_engine(lake_root, f"dir:{inbox}", 0.3, log=tmp_path / "engine.log")
    try:
        wait_for(lambda: (s := snapshot(lake_root)) and s["status"]["heartbeat"] and s)
        with open(inbox / "desk.jsonl", "ab") as fh:
            fh.write(lines(events(1, start=4)))
        wait_for(lambda: counts(lake_root)["fills"] == 5)
        assert stop_engine(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert counts(lake_root) == {"orders": 1, "fills": 5, "quotes": 7, "trades": 5}
    assert not (live / "pending.json").exists()


@pytest.mark.slow
def test_sigterm_makes_a_final_commit(tmp_path):
    """With a commit interval longer than the test, the events received before SIGTERM reach the lake at exit."""
    lake_root, inbox = tmp_path / "lake", tmp_path / "inbox"
    inbox.mkdir()
    proc = start_engine(lake_root, f"dir:{inbox}", 600.0, log=tmp_path / "engine.log")
    try:
        wait_for(lambda: (s := snapshot(lake_root)) and s["status"]["heartbeat"])
        (inbox / "desk.jsonl").write_bytes(lines(events(2)))  # 1 + 2 + 3 + 2 = 8 events
        wait_for(lambda: (s := snapshot(lake_root)) and s["status"]["events_received"] == 8)
        assert counts(lake_root)["fills"] == 0
        assert stop_engine(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert counts(lake_root) == {"orders": 1, "fills": 2, "quotes": 3, "trades": 2}
