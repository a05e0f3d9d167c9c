"""Configuration of the desk simulator (defaults in one place)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class SimConfig:
    """What to simulate.

    days: trading days to simulate (weekdays from ``start``; exchange holidays are ignored).
    symbols: universe size (>= 4 so every liquidity tier is present).
    orders_per_day: parent orders (one decision each) per day.
    seed: root seed; every random stream is derived from (seed, stream, day[, chunk]).
    faults: injected faulty rows per clean event/row (0.02 = 2%); 0 disables faults.
    start: first trading day (moved forward to a weekday if needed).
    fills_per_order: mean child fills per parent order.
    quotes_per_day / trades_per_day: totals over all symbols per day (None: ~2000 quotes and
    ~500 background prints per symbol), split across symbols by liquidity.
    events_format: "jsonl" or "parquet" for decisions/orders/fills/settlements.
    portfolios: number of client portfolios sending decisions.
    adverse_bps: the dark pool's adverse selection (``ImpactParams.adverse_bps``: after each desk fill at DRKB the
    mid moves this many bps against the fill for 90 s); 0 plants the impact law alone (tests of its recovery).
    """

    days: int = 5
    symbols: int = 40
    orders_per_day: int = 400
    seed: int = 7
    faults: float = 0.0
    start: date = date(2026, 3, 2)
    fills_per_order: float = 50.0
    quotes_per_day: int | None = None
    trades_per_day: int | None = None
    events_format: str = "jsonl"
    portfolios: int = 4
    adverse_bps: float = 4.0

    def validate(self) -> None:
        if self.days < 1:
            raise ValueError("days must be >= 1")
        if self.symbols < 4:
            raise ValueError("symbols must be >= 4 (one per liquidity tier)")
        if self.orders_per_day < 1 or self.portfolios < 1:
            raise ValueError("orders_per_day and portfolios must be >= 1")
        if not 0.0 <= self.faults < 1.0:
            raise ValueError("faults is a rate in [0, 1)")
        if self.fills_per_order < 1.0:
            raise ValueError("fills_per_order must be >= 1")
        if self.adverse_bps < 0:
            raise ValueError("adverse_bps must be >= 0")
        if self.events_format not in ("jsonl", "parquet"):
            raise ValueError("events_format must be 'jsonl' or 'parquet'")
