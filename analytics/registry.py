"""The model registry's champions, mirrored in small files beside the MLflow store.

MLflow's registry (``analytics.tracking``) is the source of truth; importing MLflow to ask it which version is
champion, and to download that model, costs 3-6 s, which a cold page cannot afford. So after every promotion
decision :func:`tracking.promote_if_better` writes a snapshot of every registered model's champion here:
``<lake>/mlflow/champions/<name>.json`` (the model as logged: ``ImpactFit`` or ``CostModel`` JSON) and, last,
the index ``<lake>/mlflow/champions.json`` (name -> version and run id). Readers need only the standard library.

A lake trained before the mirror existed has an MLflow store and no index: :func:`versions` returns None and
callers ask MLflow (the next promotion writes the mirror, whole).
"""

from __future__ import annotations

import json
from pathlib import Path

from analytics.store import write_text_atomic

INDEX = "champions.json"


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
    for name, (_, _, text) in champions.items():
        write_text_atomic(_dir(lake) / "champions" / f"{name}.json", text)
    index = {name: {"version": str(v), "run_id": rid} for name, (v, rid, _) in champions.items()}
    write_text_atomic(_dir(lake) / INDEX, json.dumps(index, indent=1, sort_keys=True))
