"""The live commands' edges: ``alerts`` lists the alert log (``--since`` filters on the raise time, ``--json`` one
object per line) and ``live`` refuses a source it cannot read."""

from __future__ import annotations

import json

import polars as pl

from analytics.live import alerts as al
from analytics.live.config import load
from analytics.live.engine import live_dir


def test_alerts_command(tmp_path, run_cli):
    lake = tmp_path / "lake"
    book = al.AlertBook(live_dir(lake), {"quarantine_spike": "critical"})
    spike = al.quarantine_spike(100, 10, "b1", 1_700_000_000.0, load()["quarantine_spike"])
    book.update(spike, {"quarantine_spike"}, now=1_700_000_000.5)  # 2023-11-14T22:13:20.5Z
    gap = pl.DataFrame(
        {"rule": ["sequence_gap"], "subject_type": ["feed"], "subject": ["quote:AAA"], "metric": ["missing_seq"],
         "value": [2.0], "expected": [0.0], "threshold": [0.0], "message": ["gap"], "trigger_event_ids": [[]],
         "trigger_ts": [1_700_000_100.0]}, schema=al.BREACH_SCHEMA,
    )  # fmt: skip
    book.update(gap, {"sequence_gap"}, now=1_700_000_100.25)
    r = run_cli("alerts", "--lake", str(lake), "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["rule"] for x in rows] == ["sequence_gap", "quarantine_spike"]  # newest first
    assert rows[1]["severity"] == "critical" and rows[1]["latency_ms"] == 500.0 and rows[1]["open"] is True
    r = run_cli("alerts", "--lake", str(lake), "--json", "--since", "2023-11-14T22:14:00Z")
    assert [json.loads(x)["rule"] for x in r.stdout.splitlines()] == ["sequence_gap"]
    r = run_cli("alerts", "--lake", str(lake), "--since", "2023-11-14T22:14:00")
    assert r.returncode == 2 and "time zone" in r.stderr
    r = run_cli("alerts", "--lake", str(lake))
    assert r.returncode == 0 and "quote:AAA" in r.stdout


def test_live_refuses_an_unknown_source(tmp_path, run_cli):
    r = run_cli("live", "--lake", str(tmp_path / "lake"), "--source", "kafka://x:1/y")
    assert r.returncode == 2 and "nats://HOST:PORT/SUBJECT or dir:PATH" in r.stderr


def test_live_refuses_a_non_loopback_alert_sink(tmp_path, run_cli):
    rules = tmp_path / "rules.toml"
    rules.write_text('[delivery]\nwebhook_url = "https://hooks.example.com/desk"\n')
    r = run_cli("live", "--lake", str(tmp_path / "lake"), "--rules", str(rules))
    assert r.returncode == 2 and "not loopback" in r.stderr and "allow_hosts" in r.stderr
