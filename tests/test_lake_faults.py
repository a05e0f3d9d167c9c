"""Fault injection on the lake (issue 15): a missing or corrupt ``CURRENT``, a corrupt manifest, a deleted ``_lock``
with two writers that both read version N, bit flips, deleted and truncated files, killed writers' leftovers.

Every test builds its own tiny lake with direct writer appends (or one small ingest) and checks the outcome
against what the test itself wrote: file bytes hashed here with hashlib, rows counted by hand.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time

import polars as pl
import pytest

from analytics import store
from analytics.store import MANIFEST_DIR, WRITERS_DIR, Lake, LakeCorrupt, empty_frame

D = dt.date(2026, 3, 2)


def returns_frame(day: dt.date, symbol: str, r: float) -> pl.DataFrame:
    df = pl.DataFrame({"date": [day], "symbol": [symbol], "return": [r]})
    return (
        df.with_columns(pl.lit(None, pl.Float64).alias("fx_return"))
        .with_columns(extra=pl.lit(None, pl.String), _batch=pl.lit("b"), _hash=pl.lit(None, pl.String))
        .select(list(empty_frame("returns").columns))
    )


def commit(lake: Lake, day: dt.date, symbol: str = "AAPL", r: float = 0.01) -> int:
    with lake.writer() as w:
        w.append("returns", returns_frame(day, symbol, r))
    return w.committed_version


def all_files(lake: Lake) -> dict[str, bytes]:
    """Every file under tables/ and _manifest/ with its bytes (what a bad sweep would delete)."""
    out = {}
    for sub in ("tables", MANIFEST_DIR):
        for p in (lake.root / sub).rglob("*"):
            if p.is_file() and p.name != "CURRENT":
                out[str(p.relative_to(lake.root))] = p.read_bytes()
    return out


@pytest.fixture
def two_versions(lake: Lake) -> Lake:
    commit(lake, D, "AAPL", 0.01)
    commit(lake, D + dt.timedelta(days=1), "MSFT", 0.02)
    assert lake.version() == 2
    return lake


# --- 1. a missing or corrupt CURRENT never wipes the lake ------------------------------------------------
@pytest.mark.parametrize("current", [None, "-1", "0", "", "two", "3\x00"])
def test_unreadable_current_with_data_is_corrupt_and_no_writer_deletes_anything(two_versions, current):
    lake = two_versions
    before = all_files(lake)
    cur = lake.root / MANIFEST_DIR / "CURRENT"
    if current is None:
        cur.unlink()
    else:
        cur.write_text(current)
    with pytest.raises(LakeCorrupt, match=r"lake repair"):
        lake.version()
    with pytest.raises(LakeCorrupt), lake.writer() as w:  # the writer refuses before sweeping
        w.append("returns", returns_frame(D, "IBM", 0.5))
    assert all_files(lake) == before  # nothing deleted (the bug swept every manifest and data file)
    rep = lake.repair()
    assert rep["version"] == 2 and rep["restored_from"] is None
    assert sorted(lake.read("returns")["symbol"].to_list()) == ["AAPL", "MSFT"]


def test_data_files_without_any_manifest_are_not_an_empty_lake(two_versions):
    lake = two_versions
    for p in (lake.root / MANIFEST_DIR).iterdir():
        p.unlink()
    data = all_files(lake)
    with pytest.raises(LakeCorrupt, match="data file"):
        lake.version()
    with pytest.raises(LakeCorrupt), lake.writer():
        pass
    assert all_files(lake) == data


def test_current_naming_a_missing_or_corrupt_manifest_is_corrupt_and_repair_falls_back(two_versions):
    lake = two_versions
    (lake.root / MANIFEST_DIR / "v00000002.json").write_text('{"version": 2, "tables": {"returns": [{"pa')
    with pytest.raises(LakeCorrupt, match=r"v00000002.json is corrupt"):
        Lake(lake.root).manifest()
    with pytest.raises(LakeCorrupt), Lake(lake.root).writer():
        pass
    rep = Lake(lake.root).repair()  # v2 unreadable: v1 verifies and is committed again as v3
    assert rep == {"version": 3, "restored_from": 1, "skipped": [(2, rep["skipped"][0][1])]}
    fresh = Lake(lake.root)
    assert fresh.version() == 3 and fresh.manifest().restored_from == 1
    assert fresh.read("returns")["symbol"].to_list() == ["AAPL"]
    assert commit(fresh, D, "IBM") == 4  # writers work again and never reuse a number


def test_a_killed_first_writer_leaves_an_empty_lake_that_the_next_writer_cleans(lake, tmp_path):
    """No manifest yet, data files that a dead writer's marker claims: provably uncommitted, so version 0."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(proc.stdout)
    batch = "20260302T000000-0badf00d"
    f = lake.root / "tables/returns/month=2026-03" / f"{batch}-00001.parquet"
    f.parent.mkdir(parents=True)
    returns_frame(D, "AAPL", 0.01).write_parquet(f)
    (lake.root / WRITERS_DIR).mkdir()
    (lake.root / WRITERS_DIR / batch).write_text(json.dumps({"pid": dead_pid, "host": os.uname().nodename}))
    assert lake.version() == 0
    assert commit(lake, D, "MSFT") == 1
    assert not f.exists() and not (lake.root / WRITERS_DIR / batch).exists()
    assert lake.read("returns")["symbol"].to_list() == ["MSFT"]


def test_the_sweep_keeps_files_a_rollback_needs_and_files_of_a_live_writer(two_versions):
    lake = two_versions
    v1_files = {e.path for e in lake.manifest(1).all_entries()}
    lake.repair(to=1)  # v3 = v1's files: v2's file is referenced by v2 only
    assert lake.version() == 3
    v2_only = {e.path for e in lake.manifest(2).all_entries()} - v1_files
    commit(lake, D, "IBM")
    assert all((lake.root / p).exists() for p in v2_only)  # v2 is still on disk, so are its files
    lake.repair(to=2)  # and rolling forward again works
    assert sorted(lake.read("returns")["symbol"].to_list()) == ["AAPL", "MSFT"]


# --- 3. compare-and-swap at commit -----------------------------------------------------------------------
def test_deleted_lock_two_writers_that_both_read_n_both_commit(two_versions):
    """Writer A reads v2; the lock file is deleted, so writer B's flock does not wait; B commits v3 (its sweep
    must not delete A's uncommitted files: A is alive); A then finds CURRENT moved, rebases and commits v4."""
    lake = two_versions
    with lake.writer() as a:
        a.append("returns", returns_frame(D, "A-ROW", 1.0))
        (lake.root / "_lock").unlink()
        other = Lake(lake.root)
        with other.writer() as b:
            b.append("returns", returns_frame(D, "B-ROW", 2.0))
        assert b.committed_version == 3 and b.version_before == 2
        assert all((lake.root / e.path).exists() for e in a.new["returns"])
    assert a.base.version == 2 and a.version_before == 3 and a.committed_version == 4 and a.rebased == 1
    fresh = Lake(lake.root)
    assert fresh.version() == 4
    assert sorted(fresh.read("returns")["symbol"].to_list()) == ["A-ROW", "AAPL", "B-ROW", "MSFT"]
    assert fresh.verify()["ok"]


def test_two_ingests_of_the_same_events_under_a_broken_lock_store_each_row_once(lake, files, ev, monkeypatch):
    """flock ignored; while ingest A (two orders) is about to commit, ingest B of the same file commits first.
    Listing A's files on B's version would store both orders twice. A finds CURRENT moved, commits nothing and
    re-runs its whole batch on B's version: both orders are then duplicates, each stored once."""
    from analytics.ingest import ingest

    monkeypatch.setattr(store.fcntl, "flock", lambda *a, **k: None)
    path = files.jsonl("o.jsonl", [ev.order(event_id="o1", order_id="O1"), ev.order(event_id="o2", order_id="O2")])
    commit = store.Writer._commit
    raced: list = []

    def racing_commit(self):
        if not raced:
            raced.append(None)
            raced[0] = ingest([path], Lake(lake.root))  # writer B, nested: lands between A's read and commit
        commit(self)

    monkeypatch.setattr(store.Writer, "_commit", racing_commit)
    res = ingest([path], lake)
    assert raced[0].version == 1 and raced[0].tables["orders"].accepted == 2
    assert res.tables["orders"].duplicate == 2 and res.tables["orders"].accepted == 0
    fresh = Lake(lake.root)
    assert sorted(fresh.read("orders")["event_id"].to_list()) == ["o1", "o2"] and fresh.version() == 1
    with fresh.writer():  # the aborted attempt's files are swept, none is listed
        pass
    on_disk = {str(p.relative_to(lake.root)) for p in (lake.root / "tables").rglob("*.parquet")}
    assert on_disk == {e.path for e in fresh.manifest().all_entries()}


def test_a_manifest_is_never_overwritten_and_a_stuck_commit_fails_loudly(two_versions, monkeypatch):
    """v3.json appears (another writer between its manifest and CURRENT) and CURRENT never moves: the commit
    retries a bounded number of times, then raises; v3.json is untouched and CURRENT still says 2."""
    lake = two_versions
    monkeypatch.setattr(store, "COMMIT_ATTEMPTS", 3)
    monkeypatch.setattr(store.time, "sleep", lambda s: None)
    with pytest.raises(store.CommitConflictError, match="could not commit"), lake.writer() as w:
        w.append("returns", returns_frame(D, "LOST?", 1.0))
        squatter = store.Manifest(3, "x", lake.manifest(2).tables, batch="other")
        assert store._link_manifest(lake.root / MANIFEST_DIR, squatter, "other")
    assert (lake.root / MANIFEST_DIR / "v00000003.json").read_text() == squatter.to_json()
    assert (lake.root / MANIFEST_DIR / "CURRENT").read_text() == "2"


def test_ingest_log_records_the_version_the_batch_really_produced(seeded, files, ev, monkeypatch):
    """Another writer commits while the ingest holds a (deleted) lock: the ingest's log row and result name the
    version it produced (3), not base + 1 (2)."""
    lake = seeded
    assert lake.version() == 1
    real = store.Writer._commit

    def racing_commit(self):
        if self.lake.root == lake.root and not getattr(racing_commit, "done", False):
            racing_commit.done = True
            (lake.root / "_lock").unlink()
            commit(Lake(lake.root), D, "RACE")
        return real(self)

    monkeypatch.setattr(store.Writer, "_commit", racing_commit)
    from analytics.ingest import ingest

    res = ingest([files.jsonl("b.jsonl", [ev.fill(event_id="f2", fill_id="F2")])], lake)
    assert (res.version_before, res.version) == (2, 3)
    log = Lake(lake.root).read("ingests")
    assert sorted(log["version"].unique().to_list()) == [1, 3]


# --- 6. integrity: sizes, hashes, verify, repair, clear reader errors ------------------------------------
def test_manifest_records_size_and_sha256_of_each_file_bytes(two_versions):
    lake = two_versions
    for e in lake.manifest().all_entries():
        data = (lake.root / e.path).read_bytes()
        assert e.size == len(data) and e.sha256 == hashlib.sha256(data).hexdigest()
    assert lake.verify() == {"version": 2, "files": 2, "ok": True, "unhashed": 0, "problems": []}


def test_flipped_byte_deleted_and_truncated_files_are_named(two_versions):
    lake = two_versions
    a, b = (e.path for e in lake.manifest().entries("returns"))
    data = bytearray((lake.root / a).read_bytes())
    data[len(data) // 2] ^= 0x01
    (lake.root / a).write_bytes(bytes(data))
    assert lake.verify()["problems"] == [{"path": a, "table": "returns", "problem": "sha256"}]
    with pytest.raises(LakeCorrupt, match="does not match its SHA-256"):
        lake.check_hashes(lake.manifest().entries("returns"))
    (lake.root / b).write_bytes((lake.root / b).read_bytes()[:-5])
    with pytest.raises(LakeCorrupt, match=rf"{b} has \d+ bytes"):
        lake.connect()
    (lake.root / b).unlink()
    rep = lake.verify()
    assert not rep["ok"] and {(p["path"], p["problem"]) for p in rep["problems"]} == {(a, "sha256"), (b, "missing")}
    with pytest.raises(LakeCorrupt, match=rf"{b} of the current version is missing.*lake repair"):
        lake.read("returns")  # one clear error, not a DuckDB IOException
    # v1 holds file a only, which is damaged too: no version verifies
    with pytest.raises(LakeCorrupt, match="no manifest verifies"):
        lake.repair()


def test_rollback_to_a_verified_version(two_versions):
    lake = two_versions
    b = lake.manifest().entries("returns")[1].path
    (lake.root / b).unlink()
    rep = lake.repair()  # v2 misses a file; v1 verifies
    assert rep["version"] == 3 and rep["restored_from"] == 1
    assert lake.read("returns")["symbol"].to_list() == ["AAPL"]
    assert lake.verify()["ok"]


def test_manifests_written_before_hashes_still_read_and_verify_as_unhashed(two_versions):
    lake = two_versions
    path = lake.root / MANIFEST_DIR / "v00000002.json"
    d = json.loads(path.read_text())
    for es in d["tables"].values():
        for e in es:
            del e["size"], e["sha256"]
    del d["batch"], d["restored_from"]
    path.write_text(json.dumps(d))
    fresh = Lake(lake.root)
    assert sorted(fresh.read("returns")["symbol"].to_list()) == ["AAPL", "MSFT"]
    assert fresh.verify() == {"version": 2, "files": 2, "ok": True, "unhashed": 2, "problems": []}
    assert commit(fresh, D, "IBM") == 3


def test_leftover_temp_files_of_dead_writers_go_but_young_ones_stay(two_versions):
    """The sweep deletes only what is older than the writer's own start (a file written after it started may
    belong to a writer that is still running without the lock)."""
    lake = two_versions
    old = lake.root / "tables/returns/month=2026-03/20260101T000000-00000000-00001.parquet.tmp"
    old.write_bytes(b"x")
    t = time.time() - 60
    os.utime(old, (t, t))
    with lake.writer():
        young = lake.root / "tables/returns/month=2026-03/20260101T000000-11111111-00001.parquet.tmp"
        young.write_bytes(b"y")
    assert not old.exists()
    with lake.writer():
        pass
    assert not young.exists()  # older than this second writer's start


# --- the CLI: verify, repair, and usage errors (12) --------------------------------------------------------
def cli(capsys, *args: str) -> tuple[int, str, str]:
    """``python -m analytics ARGS`` in-process: (exit code, stdout, stderr)."""
    from analytics.__main__ import main

    try:
        rc = main(list(args))
    except SystemExit as e:  # argparse's usage errors
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def test_lake_verify_and_repair_commands(two_versions, capsys):
    lake = two_versions
    root = str(lake.root)
    rc, out, _ = cli(capsys, "lake", "verify", "--lake", root, "--json")
    assert rc == 0 and json.loads(out)["ok"]
    a = lake.manifest().entries("returns")[1].path
    (lake.root / a).unlink()
    rc, out, err = cli(capsys, "lake", "verify", "--lake", root)
    assert rc == 1 and f"missing: {a}" in err and "lake repair" in err
    rc, _, err = cli(capsys, "lake", "--lake", root)  # any reader: one clear line, exit 3
    assert rc == 3 and err.count("\n") == 1 and a in err and "lake repair" in err
    (lake.root / MANIFEST_DIR / "CURRENT").write_text("-1")
    rc, _, err = cli(capsys, "tca", "--lake", root)
    assert rc == 3 and "CURRENT holds -1" in err and err.count("\n") == 1
    rc, out, _ = cli(capsys, "lake", "repair", "--lake", root, "--json")
    assert rc == 0 and json.loads(out)["version"] == 3 and json.loads(out)["restored_from"] == 1
    rc, out, _ = cli(capsys, "lake", "repair", "--to", "2", "--lake", root, "--json")  # v2 misses a file
    assert rc == 3
    rc, out, err = cli(capsys, "lake", "repair", "--to", "9", "--lake", root)
    assert rc == 3 and "no manifest of version 9" in err


@pytest.mark.parametrize(
    "args, says",
    [
        (["tca", "--start", "2026-02-30"], "'2026-02-30' is not a date"),
        (["quality", "--end", "March"], "'March' is not a date"),
        (["attribution", "--portfolio", "P", "--start", "2026-03-01", "--end", "x"], "'x' is not a date"),
        (["dataset", "show", "execution@abc"], "must be a number"),
        (["dataset", "show", "../../etc"], "dataset name '../../etc'"),
        (["lake", "--lake", "/etc/hostname"], "/etc/hostname is not a directory"),
        (["tca", "--lake", "/etc/hostname"], "/etc/hostname is not a directory"),
        (["lake", "--to", "3"], "--to goes with `lake repair`"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_every_argument_error_is_one_line_and_exit_2(args, says, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("ANALYTICS_LAKE", str(tmp_path / "lake"))
    rc, out, err = cli(capsys, *args)
    assert rc == 2 and out == "" and says in err and err.count("\n") == 1, err


def test_unwritable_out_is_a_usage_error(seeded, capsys):
    rc, _, err = cli(capsys, "tca", "--lake", str(seeded.root), "--out", "/etc/hostname/tca.csv")
    assert rc == 2 and "/etc/hostname" in err and err.count("\n") == 1, err


# --- 7. derived results keyed by their inputs, not by a version number -------------------------------------
D1, D2 = "2026-03-02", "2026-03-03"


def _day(ev, d: str, n: int, tag: str) -> list[dict]:
    """``n`` BUY orders of 100 AAPL arriving on day ``d`` at 14:30, each filled at 100.05; quotes mid 100.00."""
    rows = [ev.quote(ts=f"{d}T14:00:00Z", bid=99.99, ask=100.01), ev.quote(ts=f"{d}T15:00:00Z", bid=99.99, ask=100.01)]
    for i in range(n):
        oid = f"{tag}{i}"
        rows += [
            ev.order(event_id=f"o-{oid}", order_id=oid, ts=f"{d}T14:30:00Z", quantity=100),
            ev.fill(event_id=f"f-{oid}", fill_id=f"F-{oid}", order_id=oid, ts=f"{d}T14:31:00Z", price=100.05,
                    commission=1.0),
        ]  # fmt: skip
    return rows


def _orders(lake: Lake, version: int | None = None) -> pl.DataFrame:
    from analytics import tca

    v = tca.ensure(lake, version=version)
    con = lake.connect(lake.manifest(v))
    try:
        return tca.results(lake, con, version=v).pl()
    finally:
        con.close()


def test_a_manual_rollback_then_new_data_never_serves_the_stale_tca(lake, files, ev):
    """The bug: TCA stored under v2 (3 orders) was served after CURRENT went back to 1 and a different batch
    became v2. Keyed by input fingerprints, the new v2 gets its own result."""
    from analytics.ingest import ingest

    ingest([files.jsonl("a.jsonl", _day(ev, D1, 2, "A"))], lake)
    ingest([files.jsonl("b.jsonl", _day(ev, D1, 1, "B")[2:])], lake)
    assert sorted(_orders(lake)["order_id"].to_list()) == ["A0", "A1", "B0"]
    old_v2 = {e.path for e in lake.manifest(2).all_entries()} - {e.path for e in lake.manifest(1).all_entries()}
    (lake.root / MANIFEST_DIR / "CURRENT").write_text("1")  # an old-style rollback, by hand
    ingest([files.jsonl("c.jsonl", _day(ev, D1, 1, "C")[2:])], lake)
    assert lake.version() == 2
    # the hand-discarded v2 was committed once: set aside, not deleted, and its files kept
    assert len(list((lake.root / MANIFEST_DIR).glob("v00000002.json.superseded-*"))) == 1
    assert all((lake.root / p).exists() for p in old_v2)
    out = _orders(Lake(lake.root))
    assert sorted(out["order_id"].to_list()) == ["A0", "A1", "C0"]
    assert out["source_version"].unique().to_list() == ["lake@2"]


def test_repair_rollback_reads_the_results_of_the_restored_files_without_recomputing(lake, files, ev, monkeypatch):
    from analytics import tca
    from analytics.ingest import ingest

    ingest([files.jsonl("a.jsonl", _day(ev, D1, 2, "A"))], lake)
    v1 = _orders(lake)
    ingest([files.jsonl("b.jsonl", _day(ev, D1, 3, "B")[2:])], lake)
    assert _orders(lake).height == 5
    lake.repair(to=1)
    calls = []
    real = tca.compute
    monkeypatch.setattr(tca, "compute", lambda *a, **k: calls.append(1) or real(*a, **k))
    back = _orders(lake)
    assert calls == []  # a lookup: v3 lists v1's files, whose TCA is stored
    assert back.height == 2 and back["source_version"].unique().to_list() == ["lake@3"]
    cols = ["order_id", "is_total_bps", "input_fingerprint"]
    assert back.select(cols).sort("order_id").equals(v1.select(cols).sort("order_id"))


def test_a_commit_touching_one_day_recomputes_only_the_days_whose_inputs_changed(lake, files, ev):
    from analytics import tca
    from analytics.ingest import ingest

    ingest([files.jsonl("a.jsonl", _day(ev, D1, 1, "A") + _day(ev, D2, 1, "B"))], lake)
    _orders(lake)
    assert tca.missing_days(lake, lake.version()) == []
    # a quote on D2 only: D2's inputs change, D1's do not
    ingest([files.jsonl("q.jsonl", [ev.quote(ts=f"{D2}T16:00:00Z", bid=99.0, ask=99.02)])], lake)
    assert tca.missing_days(lake, lake.version()) == [dt.date(2026, 3, 3)]
    _orders(lake)
    # a settlement dated D2 for D1's fill overrides its fees: D1's TCA reads it, so D1 is recomputed
    before = _orders(lake).filter(pl.col("order_id") == "A0")["is_fees"].item()
    st = ev.settlement(event_id="s-A0", fill_id="F-A0", ts=f"{D2}T10:00:00Z", settle_date=D2, commission=7.0)
    ingest([files.jsonl("s.jsonl", [st])], lake)
    assert tca.missing_days(lake, lake.version()) == [dt.date(2026, 3, 2)]
    after = _orders(lake).filter(pl.col("order_id") == "A0")["is_fees"].item()
    assert (before, after) == (1.0, 7.0)  # hand: the settled commission replaces the execution-time one


def test_a_flipped_byte_in_an_input_file_is_an_error_not_a_different_tca(lake, files, ev):
    from analytics import tca
    from analytics.ingest import ingest

    ingest([files.jsonl("a.jsonl", _day(ev, D1, 2, "A"))], lake)
    (e,) = lake.manifest().entries("quotes")
    p = lake.root / e.path
    data = bytearray(p.read_bytes())
    data[len(data) // 3] ^= 0x10
    p.write_bytes(bytes(data))
    store._VERIFIED.clear()
    with pytest.raises(LakeCorrupt, match=rf"{e.path} does not match its SHA-256"):
        tca.ensure(lake)


def test_temp_files_of_a_killed_tca_or_dataset_build_are_removed_by_the_next_run(lake, files, ev):
    from analytics import tca
    from analytics.ingest import ingest

    ingest([files.jsonl("a.jsonl", _day(ev, D1, 1, "A"))], lake)
    fp = tca.input_fingerprints(lake)[dt.date(2026, 3, 2)]
    left = lake.derived_path(tca.RESULTS, dt.date(2026, 3, 2), fp, "orders").with_name(".orders.parquet.dead.tmp")
    left.parent.mkdir(parents=True)
    left.write_bytes(b"half a parquet file")
    ds_tmp = lake.root / "datasets" / "execution" / ".tmp-deadbeef0000"
    ds_tmp.mkdir(parents=True)
    (ds_tmp / "data.parquet").write_bytes(b"half")
    t = store._PROCESS_START - 3600  # left by a run killed before this process started
    for p in (left, ds_tmp / "data.parquet", ds_tmp):
        os.utime(p, (t, t))
    young = left.with_name(".fills.parquet.alive.tmp")
    young.write_bytes(b"being written by another run")
    tca.ensure(lake)
    assert not left.exists() and young.exists()
    from analytics import datasets

    with pytest.raises(datasets.DatasetError, match="no orders arrived"):
        datasets.build(lake, "execution", dt.date(2026, 1, 5), dt.date(2026, 1, 6))
    assert not ds_tmp.exists()


# --- 13. saved report definitions -------------------------------------------------------------------------
def test_report_definitions_two_names_one_file_and_unreadable_files(tmp_path):
    from ui import report

    class L:
        root = tmp_path / "lake"

    report.save_definition(L, report.Definition(name="Board pack", sections=("tca",)))
    with pytest.raises(ValueError, match="would replace the saved report 'Board pack'"):
        report.save_definition(L, report.Definition(name="board-pack!", sections=("summary",)))
    report.save_definition(L, report.Definition(name="Board pack", sections=("summary",)))  # same name: update
    (d,) = report.load_definitions(L)
    assert d.sections == ("summary",)
    folder = report.definitions_dir(L)
    (folder / "broken.json").write_text('{"name": "Broken", "sections": ["tca"')
    (folder / "odd.json").write_text(json.dumps({"name": "Odd", "sections": ["nope"]}))
    (folder / "typed.json").write_text(json.dumps({"name": "Typed", "start": "2026-13-01"}))
    (folder / "list.json").write_text("[1, 2]")
    ok, bad = report.scan_definitions(L)
    assert [x.name for x in ok] == ["Board pack"]
    assert {b["file"]: b["problem"].split(" ")[0] for b in bad} == {
        "broken.json": "not", "list.json": "not", "odd.json": "unknown", "typed.json": "start"
    }  # fmt: skip
    with pytest.raises(ValueError, match="cannot be read"):
        report.save_definition(L, report.Definition(name="Broken!"))


# --- kill points of the new commit steps (the data-file and CURRENT points are in test_store.py) -------------
KILLER = """
import os, signal, sys
point = sys.argv[1]
real_link, real_replace = os.link, os.replace
def link(src, dst, *a, **kw):
    if point == "link":  # every data file written, the manifest about to be created
        os.kill(os.getpid(), signal.SIGKILL)
    return real_link(src, dst, *a, **kw)
def replace(src, dst, *a, **kw):
    if point == "before_current" and os.path.basename(str(dst)) == "CURRENT":  # manifest linked, CURRENT not
        os.kill(os.getpid(), signal.SIGKILL)
    out = real_replace(src, dst, *a, **kw)
    if point == "after_current" and os.path.basename(str(dst)) == "CURRENT":  # committed, marker not yet removed
        os.kill(os.getpid(), signal.SIGKILL)
    return out
os.link, os.replace = link, replace
from analytics.__main__ import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("point", ["link", "after_current"])
def test_kill_at_the_manifest_link_or_after_current(point, seeded, files, ev, lake_state):
    lake = seeded
    before = lake_state(lake)
    batch = [files.jsonl("b.jsonl", [ev.fill(event_id="f2", fill_id="F2"), ev.quote(symbol="MSFT")])]
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, point, "ingest", *map(str, batch), "--lake", str(lake.root), "--json"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    assert len(list((lake.root / WRITERS_DIR).iterdir())) == 1  # the dead writer's marker is left behind
    fresh = Lake(lake.root)
    if point == "link":
        assert lake_state(fresh) == before
    else:
        assert fresh.version() == 2 and fresh.verify()["ok"]
    with fresh.writer():
        pass  # the next writer sweeps: uncommitted files go, committed ones stay
    assert not list((lake.root / WRITERS_DIR).iterdir())
    listed = {e.path for e in fresh.manifest().all_entries()}
    on_disk = {str(p.relative_to(lake.root)) for p in (lake.root / "tables").rglob("*") if p.is_file()}
    assert on_disk == listed and fresh.verify()["ok"]
    assert sorted(fresh.read("fills")["fill_id"].to_list()) == (["F1"] if point == "link" else ["F1", "F2"])


def test_a_first_ingest_killed_before_current_leaves_an_empty_lake_not_a_corrupt_one(lake, files, ev):
    """Killed between its manifest v1 and CURRENT, the very first writer leaves v1.json and data files that its
    dead marker claims: the lake is empty (version 0), and the next ingest sweeps them and commits v1."""
    batch = [files.jsonl("a.jsonl", [ev.order(), ev.fill()])]
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, "before_current", "ingest", *map(str, batch), "--lake", str(lake.root)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    assert (lake.root / MANIFEST_DIR / "v00000001.json").exists()
    assert Lake(lake.root).version() == 0
    from analytics.ingest import ingest

    res = ingest([files.jsonl("b.jsonl", [ev.order(event_id="o9", order_id="O9")])], Lake(lake.root))
    assert res.version == 1 and Lake(lake.root).read("orders")["order_id"].to_list() == ["O9"]
    assert Lake(lake.root).verify()["ok"]


RACER = """
import datetime as dt, fcntl, sys, time
fcntl.flock = lambda *a, **k: None  # a filesystem that ignores flock
import polars as pl
from analytics.store import Lake, empty_frame
root, tag, n, t0 = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
cols = list(empty_frame("returns").columns)
time.sleep(max(0.0, t0 - time.time()))  # both start together
rebased = 0
for i in range(n):
    df = pl.DataFrame({"date": [dt.date(2026, 3, 2)], "symbol": [f"{tag}{i}"], "return": [0.01]}).with_columns(
        fx_return=pl.lit(None, pl.Float64), extra=pl.lit(None, pl.String), _batch=pl.lit("b"), _hash=pl.lit(None, pl.String))
    with Lake(root).writer() as w:
        w.append("returns", df.select(cols))
    rebased += w.rebased
print(rebased)
"""


@pytest.mark.slow
def test_two_processes_committing_without_a_working_lock_lose_nothing(two_versions):
    """Two writers in separate processes, flock a no-op, N commits each, started together: every row is in the
    lake, the versions are 2 + 2N with no gap and no reuse, every file verifies and none is left unlisted."""
    lake = two_versions
    n = 25
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    t0 = str(time.time() + 4)
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    procs = [
        subprocess.Popen([sys.executable, "-c", RACER, str(lake.root), tag, str(n), t0], env=env, **pipes)
        for tag in ("A", "B")
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    fresh = Lake(lake.root)
    assert fresh.version() == 2 + 2 * n
    got = sorted(fresh.read("returns")["symbol"].to_list())
    assert got == sorted(["AAPL", "MSFT", *(f"{t}{i}" for t in "AB" for i in range(n))])
    assert fresh.verify()["ok"] and fresh.manifest_versions() == list(range(1, 3 + 2 * n))
    with fresh.writer():
        pass
    on_disk = {str(p.relative_to(lake.root)) for p in (lake.root / "tables").rglob("*") if p.is_file()}
    assert on_disk == {e.path for e in fresh.manifest().all_entries()}


# --- 9. the snapshot a result names is the one it read ------------------------------------------------------
def test_tca_of_a_named_version_reads_that_snapshot_while_a_newer_one_is_current(lake, files, ev):
    """The pages read the version first and then asked ensure() for "the current" one: an ingest in between made
    them compute one snapshot and label it with another. ensure(version=) computes exactly the named one."""
    from analytics import tca
    from analytics.ingest import ingest

    ingest([files.jsonl("a.jsonl", _day(ev, D1, 2, "A"))], lake)
    ingest([files.jsonl("b.jsonl", _day(ev, D1, 1, "B")[2:])], lake)  # lands after the page read version 1
    assert tca.ensure(lake, version=1) == 1
    con = lake.connect(lake.manifest(1))
    rows = tca.results(lake, con, version=1).pl()
    assert sorted(rows["order_id"].to_list()) == ["A0", "A1"] and rows["source_version"].unique().to_list() == [
        "lake@1"
    ]
    assert tca.missing_days(lake, 2) == [dt.date(2026, 3, 2)]  # version 2's day has other inputs


def test_a_tick_scan_checks_the_hashes_of_the_files_it_reads(lake, files, ev):
    from analytics.ingest import ingest

    ingest([files.jsonl("a.jsonl", _day(ev, D1, 1, "A"))], lake)
    (e,) = lake.manifest().entries("quotes")
    p = lake.root / e.path
    data = bytearray(p.read_bytes())
    data[-20] ^= 0x04
    p.write_bytes(bytes(data))
    store._VERIFIED.clear()
    with pytest.raises(LakeCorrupt, match="does not match its SHA-256"):
        store.scan_day_files(lake, "quotes", dt.date(2026, 3, 2), dt.date(2026, 3, 2), ["symbol", "ts", "bid"])


def test_repair_never_commits_what_a_killed_writer_left_and_leaves_a_valid_lake_alone(two_versions):
    lake = two_versions
    assert lake.repair() == {"version": 2, "restored_from": None, "skipped": []}  # valid: nothing to do
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    batch = "20260302T000000-0badf00d"
    (lake.root / WRITERS_DIR).mkdir(exist_ok=True)
    (lake.root / WRITERS_DIR / batch).write_text(json.dumps({"pid": int(proc.stdout), "host": os.uname().nodename}))
    killed = store.Manifest(3, "x", lake.manifest(1).tables, batch=batch)  # all its files verify
    assert store._link_manifest(lake.root / MANIFEST_DIR, killed, "t")
    (lake.root / MANIFEST_DIR / "CURRENT").unlink()
    rep = Lake(lake.root).repair()
    assert rep["version"] == 2 and rep["skipped"][0][0] == 3 and "never committed" in rep["skipped"][0][1]
    fresh = Lake(lake.root)
    with fresh.writer() as w:  # the next writer sweeps the killed writer's manifest and takes its number
        w.append("returns", returns_frame(D, "IBM", 0.3))
    assert w.committed_version == 3 and sorted(fresh.read("returns")["symbol"].to_list()) == ["AAPL", "IBM", "MSFT"]


def test_a_file_removed_under_an_open_connection_is_diagnosed_by_name(two_versions):
    import duckdb

    lake = two_versions
    con = lake.connect()  # opened while every file is there
    gone = lake.manifest().entries("returns")[0].path
    (lake.root / gone).unlink()
    with pytest.raises(duckdb.IOException):
        con.execute("SELECT count(*) FROM returns").fetchall()  # what a cached page connection then raises
    found = lake.diagnose()
    assert isinstance(found, LakeCorrupt) and gone in str(found) and "lake repair" in str(found)


def test_day_fingerprint_changes_with_the_day_s_files_only(lake, files, ev):
    from analytics.ingest import ingest

    ingest([files.jsonl("a.jsonl", _day(ev, D1, 1, "A") + _day(ev, D2, 1, "B"))], lake)
    d1, d2 = dt.date(2026, 3, 2), dt.date(2026, 3, 3)
    fp = {d: lake.day_fingerprint(d, ["quotes", "fills"]) for d in (d1, d2)}
    by_hand = hashlib.sha256()  # the documented recipe: sorted "path\0sha256" lines
    for e in sorted(lake.entries("quotes", d1, d1) + lake.entries("fills", d1, d1), key=lambda e: e.path):
        by_hand.update(f"{e.path}\0{e.sha256}".encode() + b"\n")
    assert fp[d1] == by_hand.hexdigest()[:24]
    ingest([files.jsonl("q.jsonl", [ev.quote(ts=f"{D2}T16:00:00Z", bid=99.0, ask=99.02)])], lake)
    assert lake.day_fingerprint(d1, ["quotes", "fills"]) == fp[d1]
    assert lake.day_fingerprint(d2, ["quotes", "fills"]) != fp[d2]
    assert lake.day_fingerprint(d1, ["quotes", "fills"], extra=("code-2",)) != fp[d1]


@pytest.mark.slow
def test_forty_random_bit_flips_never_change_is_silently(lake, files, ev):
    """The issue's experiment: 40 random single-bit flips anywhere in the lake's data files (seeded). Each one
    is named by ``verify``; the TCA then either refuses (LakeCorrupt naming the file) or, when the flipped file
    is not one it reads, gives exactly the IS of the intact lake. Before, 5 of 40 flips changed IS silently."""
    import random
    import shutil

    from analytics import tca
    from analytics.ingest import ingest

    ingest([files.jsonl("a.jsonl", _day(ev, D1, 3, "A") + _day(ev, D2, 2, "B") + ["junk"])], lake)

    def is_bps() -> dict:
        shutil.rmtree(lake.root / "derived", ignore_errors=True)
        tca._EVENTS_CACHE.clear(), tca._FP_CACHE.clear(), store._VERIFIED.clear()  # a fresh process each time
        return dict(_orders(lake).select("order_id", "is_total_bps").iter_rows())

    base = is_bps()
    entries = lake.manifest().all_entries()
    rng = random.Random(15)
    refused = 0
    for _ in range(40):
        e = rng.choice(entries)
        p = lake.root / e.path
        good = p.read_bytes()
        bad = bytearray(good)
        i = rng.randrange(len(bad))
        bad[i] ^= 1 << rng.randrange(8)
        p.write_bytes(bytes(bad))
        try:
            assert [(x["path"], x["problem"]) for x in lake.verify()["problems"]] == [(e.path, "sha256")]
            try:
                assert is_bps() == base, e.path
            except LakeCorrupt as err:
                assert e.path in str(err)
                refused += 1
        finally:
            p.write_bytes(good)
    assert refused > 20  # most files are TCA inputs (orders, fills, quotes), so most flips are refused


def test_an_absurd_scheduled_end_time_does_not_make_fingerprints_slow(lake, files, ev):
    """An algo end_time in year 9999 widens the day's market-data span to 8,000 years: only the partitions
    present in it are looked at."""
    from analytics import tca
    from analytics.ingest import ingest

    rows = _day(ev, D1, 1, "A")
    rows[2]["algo_params"] = {"end_time": "9999-12-31T00:00:00Z"}
    ingest([files.jsonl("a.jsonl", rows)], lake)
    (ev_row,) = tca._event_hashes(lake, lake.manifest()).iter_rows(named=True)
    assert ev_row["hi_day"] == dt.date(9999, 12, 31)
    t = time.perf_counter()
    tca._FP_CACHE.clear()
    assert list(tca.input_fingerprints(lake)) == [dt.date(2026, 3, 2)]
    assert time.perf_counter() - t < 1.0


def test_repair_of_no_lake_is_a_no_op_and_of_data_without_manifests_says_what_to_do(lake, two_versions):
    assert Lake(lake.root.parent / "nothing").repair() == {"version": 0, "restored_from": None, "skipped": []}
    for p in (two_versions.root / MANIFEST_DIR).iterdir():
        p.unlink()
    with pytest.raises(LakeCorrupt, match="restore the _manifest folder from a backup"):
        two_versions.repair()
