"""Settings of the live engine and its alert rules: defaults in ``alerts.toml`` beside this module, overridden
key by key by ``<lake>/live/alerts.toml`` or a file given on the command line."""

from __future__ import annotations

import tomllib
from pathlib import Path

DEFAULTS_FILE = Path(__file__).with_name("alerts.toml")
RULES = (
    "cost_vs_expectation",
    "participation_limit",
    "stale_quote",
    "sequence_gap",
    "quarantine_spike",
    "venue_markout",
    "strategy_drawdown",
)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if k not in base:
            raise ValueError(f"unknown setting {k!r} (known: {', '.join(base)})")
        out[k] = _merge(base[k], v) if isinstance(base[k], dict) and isinstance(v, dict) else v
    return out


def load(lake_root: Path | None = None, path: Path | None = None) -> dict:
    """The settings: the defaults, then ``<lake_root>/live/alerts.toml`` if present, then ``path``."""
    cfg = tomllib.loads(DEFAULTS_FILE.read_text())
    for p in (lake_root / "live" / "alerts.toml" if lake_root else None, path):
        if p is not None and Path(p).is_file():
            cfg = _merge(cfg, tomllib.loads(Path(p).read_text()))
    return cfg
