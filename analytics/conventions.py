"""Every convention constant in one place (units, calendars, default horizons), as empyrical's periods.py.

Units inside the package: prices in the instrument's currency, returns and rates as decimals, costs in basis
points where a name ends in ``_bps``; conversion for display happens at the page edge with these constants.
Sign: a cost is positive when the client is worse off (EVENTS.md): cost_bps = s * (exec - benchmark) /
benchmark * 1e4 with s = +1 for BUY, -1 for SELL.
"""

from __future__ import annotations

BPS = 1e4  # decimal -> basis points
TRADING_DAYS_PER_YEAR = 252  # annualisation of daily returns and volatility (empyrical's convention)
ADV_WINDOW_DAYS = 20  # average daily volume and daily volatility look back this many trading days
MARKOUT_HORIZONS_S: tuple[float, ...] = (1, 5, 30, 60, 300, 1800)  # TCA markouts (EVENTS.md)
REALIZED_SPREAD_HORIZONS_S: tuple[float, ...] = (0.05, 1, 15, 60, 300)  # Rule 605 (2024 amendments)
POST_TRADE_HORIZONS_S: tuple[float, ...] = (60, 300, 900, 1800)  # mid after the order's end: reversion curve
PERMANENT_HORIZON_S = 1800  # permanent impact = mid 30 min after the end vs arrival (Almgren et al. 2005)
SESSION_SECONDS = 23_400  # a regular US equity session (09:30-16:00 New York): one trading day of price noise
PWP_TARGET_RATE = 0.10  # participation-weighted price: market volume until order qty / 10% has traded


def horizon_label(seconds: float) -> str:
    """``1s``, ``60s``, ``1800s``, ``50ms``: the suffix of markout and realized-spread column names."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{seconds}s"
