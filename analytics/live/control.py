"""Start and stop the embedded live engine (folder source) and the live demo feed as child processes of the app.

Both run as ``python -m analytics ...`` in their own session (they outlive a page rerun, not a stop), listen on
nothing (the folder source needs no server), and are recorded in ``<lake>/live/procs.json`` so any page run can
tell whether they run; they are stopped by the recorded pid only (SIGTERM: the engine makes its final commit)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from analytics.store import Lake, write_text_atomic

REPO = Path(__file__).resolve().parents[2]
PROCS_FILE = "procs.json"
DEMO_FEED = {"symbols": 40, "orders_per_day": 150, "seed": 7}  # the demo lake's universe (analytics.demo), fewer orders


def inbox(lake_root: Path) -> Path:
    """The watched folder of the embedded engine."""
    return Path(lake_root) / "live" / "inbox"


def _procs(lake_root: Path) -> dict:
    p = Path(lake_root) / "live" / PROCS_FILE
    return json.loads(p.read_text()) if p.is_file() else {}


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs and is one of ours (a recycled pid running something else is not)."""
    try:
        os.kill(pid, 0)
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (ProcessLookupError, PermissionError, FileNotFoundError):
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().split(")")[-1].split()[0] == "Z":  # exited, not yet reaped
                return False
    except OSError:
        return False
    return b"analytics" in cmd


def status(lake_root: Path) -> dict[str, dict]:
    """``{"engine": {"pid", "running"}, "feed": {...}}`` for the processes started from here."""
    return {name: {**p, "running": _alive(int(p["pid"]))} for name, p in _procs(lake_root).items()}


def _spawn(lake_root: Path, name: str, args: list[str]) -> int:
    live = Path(lake_root) / "live"
    live.mkdir(parents=True, exist_ok=True)
    cur = status(lake_root).get(name)
    if cur and cur["running"]:
        return int(cur["pid"])
    log = open(live / f"{name}.log", "a")  # noqa: SIM115 (handed to the child)
    proc = subprocess.Popen(
        [sys.executable, "-m", "analytics", *args], cwd=REPO, stdout=log, stderr=log, start_new_session=True
    )
    procs = _procs(lake_root)
    procs[name] = {"pid": proc.pid, "args": args, "started": dt.datetime.now(dt.UTC).isoformat()}
    write_text_atomic(live / PROCS_FILE, json.dumps(procs, indent=1))
    return proc.pid


def start_engine(lake_root: Path, commit_interval: float = 3.0) -> int:
    """The engine on the lake's watched folder (``<lake>/live/inbox``); returns its pid."""
    src = f"dir:{inbox(lake_root)}"
    return _spawn(lake_root, "engine", ["live", "--source", src, "--lake", str(lake_root),
                                        "--commit-interval", str(commit_interval)])  # fmt: skip


def demo_day(lake: Lake) -> dt.date:
    """The next weekday after the lake's last day of quotes (a live day the lake does not hold yet)."""
    last = max((e.max_t[:10] for e in lake.manifest().entries("quotes") if e.max_t), default=None)
    d = dt.date.fromisoformat(last) + dt.timedelta(days=1) if last else dt.date(2026, 3, 2)
    while d.weekday() >= 5:
        d += dt.timedelta(days=1)
    return d


def start_feed(lake_root: Path, speed: float = 10.0) -> int:
    """The live demo feed: one simulated day (the demo desk's universe) streamed into the watched folder."""
    day = demo_day(Lake(lake_root))
    args = ["simulate", "--live", "--speed", str(speed), "--to", f"dir:{inbox(lake_root)}", "--start", day.isoformat(),
            "--out", str(Path(lake_root) / "live" / f"demo-sim-{day}")]  # fmt: skip
    for k, v in DEMO_FEED.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return _spawn(lake_root, "feed", args)


def stop(lake_root: Path, name: str, timeout: float = 30.0) -> bool:
    """SIGTERM the recorded process ``name`` (the engine commits before it exits); True if it was running."""
    p = _procs(lake_root).get(name)
    if not p or not _alive(int(p["pid"])):
        return False
    os.kill(int(p["pid"]), signal.SIGTERM)
    deadline = dt.datetime.now() + dt.timedelta(seconds=timeout)
    while _alive(int(p["pid"])) and dt.datetime.now() < deadline:
        try:  # our child: reap it so it does not linger as a zombie
            if os.waitpid(int(p["pid"]), os.WNOHANG)[0]:
                break
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return True
