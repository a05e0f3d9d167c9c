"""End to end on the simulator: a faulty simulated desk ingests to exactly the counts its ground truth
predicts, re-ingest changes nothing, and `lake` reports what `ingest` wrote."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from analytics.ingest import ingest
from analytics.simulate import SimConfig, simulate
from analytics.store import Lake
from analytics.validate import Limits

# The simulator's ground truth says a fill of an unknown order is quarantined: true once the hold limit
# has passed (ingest holds it first, see test_ingest_order.py); a zero hold limit makes it so at once.
NO_HOLD = Limits(hold_limit=dt.timedelta(0))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def faulty_desk(tmp_path_factory):
    out = tmp_path_factory.mktemp("desk")
    summary = simulate(out, SimConfig(days=2, symbols=12, orders_per_day=150, seed=11, faults=0.03))
    return out, summary


def test_faulty_batch_reconciles_exactly_with_ground_truth(faulty_desk, tmp_path):
    out, summary = faulty_desk
    lake = Lake(tmp_path / "lake")
    res = ingest([out], lake, limits=NO_HOLD).to_dict()
    expected = summary["expected"]
    assert sum(expected[t]["quarantined"] for t in res["tables"] if t in expected) > 0  # faults were injected
    for table, c in res["tables"].items():
        assert c["read"] == c["accepted"] + c["duplicate"] + c["quarantined"], table
        assert {k: c[k] for k in ("accepted", "duplicate", "quarantined")} == expected[table], table
    t = res["totals"]
    assert t["read"] == t["accepted"] + t["duplicate"] + t["quarantined"]
    # Every fault the simulator recorded as "quarantined" is in the quarantine.
    faults = [json.loads(x) for x in (out / "_faults.jsonl").read_text().splitlines()]
    assert sum(1 for f in faults if f["expected"] == "quarantined") == t["quarantined"]
    # What the lake says equals what ingest said.
    info = {r["table"]: r["rows"] for r in lake.summary()["tables"]}
    for table, c in res["tables"].items():
        assert info[table] == c["accepted"], table
    assert info["quarantine"] == t["quarantined"]


def test_reingest_of_the_whole_desk_changes_nothing(faulty_desk, tmp_path):
    out, _ = faulty_desk
    lake = Lake(tmp_path / "lake")
    first = ingest([out], lake, limits=NO_HOLD)
    before = {r["table"]: r["rows"] for r in lake.summary()["tables"]}
    again = ingest([out], lake, limits=NO_HOLD).to_dict()
    assert again["version"] == first.version
    # Every row reported as it stands: what was quarantined is quarantined again (not a duplicate).
    t0 = first.to_dict()["totals"]
    assert again["totals"]["accepted"] == 0 and again["totals"]["quarantined"] == t0["quarantined"]
    assert again["totals"]["duplicate"] == t0["accepted"] + t0["duplicate"]
    assert again["totals"]["read"] == t0["read"]
    assert {r["table"]: r["rows"] for r in lake.summary()["tables"]} == before
