"""The shared filters every page applies (sidebar: date range, portfolio, symbol, broker, algo, venue).

Filters are plain values; :func:`where` turns them into a SQL predicate with bound parameters, never
formatting a value into SQL text. Dates are inclusive on both ends; on timestamps that is the half-open
interval ``ts >= start AND ts < end + 1 day`` (UTC).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from analytics.store import quote_ident


@dataclass(frozen=True)
class Filters:
    start: dt.date | None = None
    end: dt.date | None = None
    portfolio: tuple[str, ...] = ()
    symbol: tuple[str, ...] = ()
    broker: tuple[str, ...] = ()
    algo: tuple[str, ...] = ()
    venue: tuple[str, ...] = ()

    def where(self, columns: dict[str, str], time_col: str | None = None) -> tuple[str, list]:
        """SQL predicate and its parameters for the filters that apply to a relation.

        ``columns`` maps a filter name (portfolio, symbol, broker, algo, venue) to the column that holds
        it in the relation; filters without a column are ignored. ``time_col`` takes the date range.
        """
        parts: list[str] = []
        params: list = []
        if time_col and self.start:
            parts.append(f"{quote_ident(time_col)} >= ?")
            params.append(dt.datetime.combine(self.start, dt.time(), dt.UTC))
        if time_col and self.end:
            parts.append(f"{quote_ident(time_col)} < ?")
            params.append(dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), dt.UTC))
        for name, col in columns.items():
            values = getattr(self, name)
            if values:
                parts.append(f"{quote_ident(col)} IN (SELECT unnest(?::VARCHAR[]))")
                params.append(list(values))
        return (" AND ".join(parts) or "true"), params
