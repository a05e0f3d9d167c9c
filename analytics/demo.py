"""The demo lake the app builds on first run: a small simulated desk, with faults, ingested.

Same code path as a user's: :func:`analytics.simulate.simulate` writes contract files, then
:func:`analytics.ingest.ingest` loads them. Faults are on so the quarantine browser has something to show; the
simulator's fault record is kept beside the lake (``demo_faults.jsonl``, with the row rules' flags) so the demo's
datasets score their quality rules against the demo's own faults.
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
        res = ingest([tmp], lake, progress=lambda f, m: report(0.6 + 0.35 * f, f"ingesting: {m}"))
        # Keep the simulator's ground truth beside the lake: the tests and the later analyses read it.
        truth = tmp / "ground_truth.json"
        if truth.exists():
            shutil.copy(truth, lake.root / "demo_ground_truth.json")
        report(0.95, "keeping the simulator's fault record beside the lake")
        keep_faults(tmp, lake.root)
        report(1.0, f"demo lake ready (version {res.version})")
        return res.to_dict()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def keep_faults(files: Path, root: Path) -> None:
    """Keep beside the lake the simulator's record of the faults it injected into ``files`` and what the row rules
    flag on those raw files (:func:`analytics.dataquality.lake_fault_scores` scores the lake's datasets with them;
    the raw files are not kept). Each file is written to a temp name and renamed."""
    import duckdb

    from analytics import dataquality

    con = duckdb.connect(":memory:")
    con.execute("SET enable_progress_bar = false")
    try:
        flags = dataquality.row_rule_flags(con, files)
    finally:
        con.close()
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{dataquality.lake_flags_name()}.tmp"
    flags.write_parquet(tmp)
    tmp.replace(root / dataquality.lake_flags_name())
    src = files / "_faults.jsonl"
    tmp = root / f".{dataquality.LAKE_FAULTS}.tmp"
    if src.exists():
        shutil.copy(src, tmp)
    else:
        tmp.write_text("")  # no fault injected: an empty record, so precision/recall still come from this lake
    tmp.replace(root / dataquality.LAKE_FAULTS)


def ensure_demo_lake(lake: Lake, progress: Callable[[float, str], None] | None = None) -> dict | None:
    """Build the demo lake when ``lake`` is empty; None when it already holds data."""
    if lake.exists():
        return None
    return build_demo_lake(lake, progress)
