"""The command line (analytics/__main__.py): ``ingest`` and ``lake``, their JSON and text output, exit codes.

Most tests call ``main([...])`` in process (fast, output captured); a few run ``python -m analytics`` as a
subprocess to check the real entry point, exit codes and the ANALYTICS_LAKE default.
"""

from __future__ import annotations

import json

import pytest

from analytics.__main__ import main
from analytics.store import Lake


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def batch(files, ev):
    """3 events (1 order, 1 fill, 1 fill with quantity 0) + 2 quotes in CSV, one crossed."""
    return [
        files.jsonl("events.jsonl", [ev.order(), ev.fill(), ev.fill(event_id="f2", fill_id="F2", quantity=0)]),
        files.csv("quotes_0302.csv", [ev.bare(ev.quote()), ev.bare(ev.quote(bid=100.05))]),
    ]


def test_ingest_json_prints_one_object_with_the_accounting(capsys, lake, batch):
    code, out, err = run(capsys, "ingest", *map(str, batch), "--lake", str(lake.root), "--json")
    assert code == 0 and err == ""
    d = json.loads(out)  # exactly one JSON object on stdout
    assert {"version", "tables", "totals", "quarantine_reasons", "files"} <= set(d)
    assert d["version"] == 1 and d["version_before"] == 0 and d["lake"] == str(lake.root)
    assert d["tables"] == {
        "fills": {"read": 2, "accepted": 1, "duplicate": 0, "quarantined": 1, "held": 0},
        "orders": {"read": 1, "accepted": 1, "duplicate": 0, "quarantined": 0, "held": 0},
        "quotes": {"read": 2, "accepted": 1, "duplicate": 0, "quarantined": 1, "held": 0},
    }
    assert d["totals"] == {"read": 5, "accepted": 3, "duplicate": 0, "quarantined": 2, "held": 0}
    assert d["quarantine_reasons"] == {"crossed_quote": 1, "non_positive": 1}
    assert [(f["path"], f["format"], f["status"], f["read"]) for f in d["files"]] == [
        (str(batch[0]), "jsonl", "ingested", 3),
        (str(batch[1]), "csv", "ingested", 2),
    ]

    code, out, _ = run(capsys, "ingest", *map(str, batch), "--lake", str(lake.root), "--json")
    d = json.loads(out)
    assert code == 0 and d["version"] == 1
    # The same files again: a no-op reported with true counts (the two bad rows are quarantined again).
    assert d["totals"] == {"read": 5, "accepted": 0, "duplicate": 3, "quarantined": 2, "held": 0}
    assert {f["status"] for f in d["files"]} == {"already_ingested"}


def test_ingest_text_output(capsys, lake, batch):
    code, out, _ = run(capsys, "ingest", *map(str, batch), "--lake", str(lake.root))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["table", "read", "accepted", "duplicate", "quarantined", "held"]
    assert lines[1].split() == ["fills", "2", "1", "0", "1", "0"]
    assert "total: read 5 = accepted 3 + duplicate 0 + quarantined 2 + held 0" in lines
    assert "quarantined by reason: crossed_quote 1, non_positive 1" in lines
    assert lines[-1] == f"lake {lake.root} version 1"

    code, out, _ = run(capsys, "ingest", *map(str, batch), "--lake", str(lake.root))
    assert "2 file(s) already ingested before (no-op)" in out
    assert out.splitlines()[-1] == f"lake {lake.root} version 1 (unchanged)"


def test_lake_json_and_text(capsys, lake, batch):
    run(capsys, "ingest", *map(str, batch), "--lake", str(lake.root))
    code, out, _ = run(capsys, "lake", "--lake", str(lake.root), "--json")
    assert code == 0
    d = json.loads(out)
    assert d["version"] == 1
    by = {t["table"]: t for t in d["tables"]}
    assert {k: by["fills"][k] for k in ("rows", "start", "end")} == {
        "rows": 1,
        "start": "2026-03-02",
        "end": "2026-03-02",
    }
    assert by["quotes"]["rows"] == 1 and by["orders"]["rows"] == 1
    assert by["settlements"] == {"table": "settlements", "rows": 0, "files": 0, "start": None, "end": None}
    assert sorted((q["table"], q["reason"], q["rows"]) for q in d["quarantine"]) == [
        ("fills", "non_positive", 1),
        ("quotes", "crossed_quote", 1),
    ]
    code, out, _ = run(capsys, "lake", "--lake", str(lake.root))
    assert code == 0
    assert out.splitlines()[0] == f"lake {lake.root} version 1"
    assert "quarantine by reason:" in out


def test_lake_on_an_empty_folder(capsys, tmp_path):
    code, out, _ = run(capsys, "lake", "--lake", str(tmp_path / "nothing"))
    assert code == 0
    assert "version 0" in out and "quarantine: empty" in out


@pytest.mark.parametrize(
    ("make_bad", "message"),
    [
        (lambda f, tmp: tmp / "nope.jsonl", "no such file or folder"),
        (lambda f, tmp: f.raw("prices.xlsx", b"PK"), "unknown format '.xlsx'"),
        (lambda f, tmp: f.raw("quotes_x.parquet", b"not parquet"), "not a readable Parquet file"),
        (lambda f, tmp: f.csv("misc.csv", [{"a": 1}]), "cannot tell which table"),
    ],
    ids=["missing", "extension", "broken_parquet", "unnamed_csv"],
)
def test_unreadable_input_exits_2_and_writes_nothing(capsys, lake, batch, files, tmp_path, make_bad, message):
    bad = make_bad(files, tmp_path)
    code, out, err = run(capsys, "ingest", *map(str, batch), str(bad), "--lake", str(lake.root), "--json")
    assert code == 2
    assert out == ""
    assert err.startswith("ingest: error: ")
    assert message in err
    assert "nothing was written; the lake is unchanged" in err
    assert lake.version() == 0
    assert not list(lake.root.rglob("*.parquet"))


def test_bad_usage_exits_2(capsys, lake, batch):
    with pytest.raises(SystemExit) as e:
        main(["ingest", "--lake", str(lake.root)])  # no PATH
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["ingest", str(batch[0]), "--type", "nonsense"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_type_option_routes_an_unnamed_file(capsys, lake, files):
    path = files.csv("batch7.csv", [{"date": "2026-03-02", "symbol": "AAPL", "return": 0.01}])
    code, out, _ = run(capsys, "ingest", str(path), "--type", "returns", "--lake", str(lake.root), "--json")
    assert code == 0
    assert json.loads(out)["tables"] == {
        "returns": {"read": 1, "accepted": 1, "duplicate": 0, "quarantined": 0, "held": 0}
    }


def test_real_entry_point_exit_codes_and_lake_from_the_environment(run_cli, batch, tmp_path):
    env_lake = tmp_path / "envlake"
    proc = run_cli("ingest", *map(str, batch), "--json", env={"ANALYTICS_LAKE": str(env_lake)})
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["lake"] == str(env_lake.resolve()) and d["version"] == 1
    assert Lake(env_lake).read("orders").height == 1


def test_real_entry_point_exits_2_on_a_missing_file(run_cli, tmp_path):
    proc = run_cli("ingest", str(tmp_path / "missing.jsonl"), "--lake", str(tmp_path / "lake"))
    assert proc.returncode == 2
    assert "no such file or folder" in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "lake").exists() or Lake(tmp_path / "lake").version() == 0


def test_lake_option_wins_over_the_environment(capsys, batch, tmp_path, monkeypatch):
    monkeypatch.setenv("ANALYTICS_LAKE", str(tmp_path / "from_env"))
    code, out, _ = run(capsys, "ingest", str(batch[0]), "--lake", str(tmp_path / "from_option"), "--json")
    assert code == 0 and json.loads(out)["lake"] == str(tmp_path / "from_option")
    assert not (tmp_path / "from_env").exists()
    code, out, _ = run(capsys, "lake", "--json")
    assert json.loads(out)["lake"] == str(tmp_path / "from_env") and json.loads(out)["version"] == 0
