"""Helpers of the live tests: hand-made events, the engine as a subprocess (the real entry point), waiting on the
lake, and a loopback nats-server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from analytics.store import Lake

REPO = Path(__file__).resolve().parents[1]


def t(s: float) -> str:
    return f"2026-03-02T15:{int(s) // 60:02d}:{s % 60:09.6f}Z"


def events(n_fills: int, start: int = 0, oid: str = "O1") -> list[dict]:
    """An order NEW (when start == 0), ``n_fills`` fills of 100 numbered from ``start``, and per fill one quote
    and one trade with seq, plus one quote WITHOUT seq (no row identity in the lake: only the intake's
    exactly-once keeps it single)."""
    ev = []
    if start == 0:
        ev.append({"event_type": "OrderEvent", "event_id": f"{oid}-new", "order_id": oid, "ts": t(0), "action": "NEW",
                   "symbol": "AAA", "side": "BUY", "quantity": 100000, "broker": "B1", "algo": "VWAP"})  # fmt: skip
    for k in range(start, start + n_fills):
        s = 1 + k
        ev += [
            {"event_type": "MarketDataEvent", "kind": "quote", "symbol": "AAA", "ts": t(s), "bid": 99.9, "ask": 100.1,
             "bid_size": 100, "ask_size": 100, "seq": k + 1},
            {"event_type": "MarketDataEvent", "kind": "trade", "symbol": "AAA", "ts": t(s + 0.1), "price": 100.0,
             "size": 500, "venue": "XNAS", "seq": k + 1},
            {"event_type": "TradeExecutedEvent", "event_id": f"{oid}-f{k}", "fill_id": f"{oid}-F{k}", "order_id": oid,
             "ts": t(s + 0.2), "symbol": "AAA", "side": "BUY", "quantity": 100, "price": 100.05, "venue": "XNAS"},
        ]  # fmt: skip
    ev.append({"event_type": "MarketDataEvent", "kind": "quote", "symbol": "AAA", "ts": t(start + n_fills + 0.5),
               "bid": 99.8, "ask": 100.2, "bid_size": 100, "ask_size": 100})  # fmt: skip
    return ev


def lines(evs: list[dict]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in evs)


def counts(lake_root: Path) -> dict[str, int]:
    lake = Lake(lake_root)
    con = lake.connect()
    try:
        return {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("orders", "fills", "quotes", "trades")
        }
    finally:
        con.close()


def wait_for(cond, timeout: float = 20.0, every: float = 0.1):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = cond()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting; last value {last!r}")


def start_engine(lake: Path, source: str, commit_interval: float, rules: Path | None = None, log: Path | None = None):
    args = [sys.executable, "-m", "analytics", "live", "--source", source, "--lake", str(lake),
            "--commit-interval", str(commit_interval)]  # fmt: skip
    if rules:
        args += ["--rules", str(rules)]
    err = open(log or os.devnull, "a")  # noqa: SIM115 (handed to the child)
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)


def stop_engine(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
    os.kill(proc.pid, sig)
    return proc.wait(timeout)


def snapshot(lake: Path) -> dict | None:
    p = lake / "live" / "state.json"
    try:
        return json.loads(p.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
