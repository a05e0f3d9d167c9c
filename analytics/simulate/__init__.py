"""Desk simulator: a seeded, reproducible US equity desk with planted, known effects.

    from analytics.simulate import SimConfig, simulate
    summary = simulate(Path("data/sim"), SimConfig(days=5, symbols=40))

Modules: ``calendar`` (sessions, DST), ``universe`` (securities and liquidity tiers), ``market``
(factor model, 1-second mid path, impact law, quotes and prints), ``execution`` (orders, algo
schedules, fill prices), ``portfolio`` (holdings, benchmarks, decisions), ``faults`` and
``writer`` (the EVENTS.md file contract); ``simulator`` orchestrates. Trading days are weekdays:
exchange holidays are ignored. The planted parameters are in ``ground_truth.json``.
"""

from .config import SimConfig
from .execution import ExecutionParams
from .market import ImpactParams
from .simulator import simulate

__all__ = ["ExecutionParams", "ImpactParams", "SimConfig", "simulate"]
