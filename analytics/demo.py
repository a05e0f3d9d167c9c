"""The demo lake the app builds on first run: a small simulated desk, with faults, ingested.

Same code path as a user's: :func:`analytics.simulate.simulate` writes contract files, then
:func:`analytics.ingest.ingest` loads them. Faults are on so the quarantine browser has something to show.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from analytics.ingest import ingest
from analytics.store import Lake

DEMO_CONFIG = {"days": 5, "symbols": 40, "orders_per_day": 400, "seed": 7, "faults": 0.01}


def build_demo_lake(lake: Lake, progress: Callable[[float, str], None] | None = None, **overrides) -> dict:
    """Simulate the demo desk and ingest it into ``lake`` (whatever it already holds stays). Returns the
    ingest summary. ``progress(fraction, message)`` is told of each step."""
    from analytics.simulate import SimConfig, simulate

    def report(frac: float, msg: str) -> None:
        if progress:
            progress(frac, msg)

    cfg = SimConfig(**{**DEMO_CONFIG, **overrides})
    tmp = Path(tempfile.mkdtemp(prefix="demo-desk-"))
    try:
        report(0.0, "simulating the demo desk")
        simulate(tmp, cfg, progress=lambda f, m: report(0.6 * f, f"simulating: {m}"))
        report(0.6, "ingesting the simulated files")
        res = ingest([tmp], lake, progress=lambda f, m: report(0.6 + 0.4 * f, f"ingesting: {m}"))
        # Keep the simulator's ground truth beside the lake: the tests and the later analyses read it.
        truth = tmp / "ground_truth.json"
        if truth.exists():
            shutil.copy(truth, lake.root / "demo_ground_truth.json")
        report(1.0, f"demo lake ready (version {res.version})")
        return res.to_dict()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_demo_lake(lake: Lake, progress: Callable[[float, str], None] | None = None) -> dict | None:
    """Build the demo lake when ``lake`` is empty; None when it already holds data."""
    if lake.exists():
        return None
    return build_demo_lake(lake, progress)
