"""The model registry's champions, mirrored in small files beside the MLflow store.

MLflow's registry (``analytics.tracking``) is the source of truth; importing MLflow to ask it which version is
champion, and to download that model, costs 3-6 s, which a cold page cannot afford. So after every promotion
decision :func:`tracking.promote_if_better` writes a snapshot of every registered model's champion here:
``<lake>/mlflow/champions/<name>.json`` (the model as logged: ``ImpactFit`` or ``CostModel`` JSON) and, last,
the index ``<lake>/mlflow/champions.json`` (name -> version and run id). Readers need only the standard library.

A lake trained before the mirror existed has an MLflow store and no index: :func:`versions` returns None and
callers ask MLflow (the next promotion writes the mirror, whole). Each write that changes a champion appends it
to ``<lake>/mlflow/champions_history.json`` (:func:`history`), so a figure that moved because the model changed
can say so.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from analytics.store import write_text_atomic

INDEX = "champions.json"
HISTORY = "champions_history.json"  # every champion change, oldest first (the Overview says when it changed)


def _dir(lake) -> Path:
    return Path(lake.root) / "mlflow"


def versions(lake) -> dict[str, dict] | None:
    """``{registered name: {"version", "run_id"}}`` of every champion, ``{}`` when the lake was never trained,
    or None when there is an MLflow store but no mirror (ask MLflow)."""
    p = _dir(lake) / INDEX
    if p.exists():
        return json.loads(p.read_text())
    return None if (_dir(lake) / "mlflow.db").exists() else {}


def model_text(lake, name: str) -> str | None:
    """The champion of ``name`` as logged (JSON text), or None."""
    p = _dir(lake) / "champions" / f"{name}.json"
    return p.read_text() if p.exists() else None


def write(lake, champions: dict[str, tuple[str, str, str]]) -> None:
    """Replace the mirror with ``champions``: name -> (version, run id, model JSON text). The models are written
    first and the index last, each atomically, so a reader never sees an index naming a model not yet there."""
    before = versions(lake) or {}
    for name, (_, _, text) in champions.items():
        write_text_atomic(_dir(lake) / "champions" / f"{name}.json", text)
    index = {name: {"version": str(v), "run_id": rid} for name, (v, rid, _) in champions.items()}
    changed = [
        {"name": n, "version": e["version"], "previous": before.get(n, {}).get("version"), "at": _now()}
        for n, e in sorted(index.items())
        if before.get(n, {}).get("version") != e["version"]
    ]
    if changed:  # before the index, so a reader of the new index finds its change recorded
        write_text_atomic(_dir(lake) / HISTORY, json.dumps(history(lake) + changed, indent=1))
    write_text_atomic(_dir(lake) / INDEX, json.dumps(index, indent=1, sort_keys=True))


def history(lake, name: str | None = None) -> list[dict]:
    """Every champion change the mirror saw, oldest first: ``{"name", "version", "previous" (None: the first
    champion, replacing the published parameters), "at" (UTC ISO time the mirror recorded it)}``, of ``name``
    only when given. Empty for a lake never trained (or trained before the history existed)."""
    p = _dir(lake) / HISTORY
    rows = json.loads(p.read_text()) if p.exists() else []
    return [r for r in rows if name is None or r["name"] == name]


def champion_note(lake, name: str) -> str | None:
    """One sentence saying since when ``name``'s current champion has priced the figures and what it replaced,
    or None without a recorded change."""
    h = history(lake, name)
    if not h:
        return None
    last = h[-1]
    was = f"v{last['previous']}" if last["previous"] else "the published parameters"
    return f"Champion v{last['version']} since {last['at'][:16].replace('T', ' ')} UTC (replaced {was})."


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
