"""Trading calendar of the desk simulator.

Trading days are weekdays only: exchange holidays are deliberately ignored (a simulated
2026-04-03 Good Friday is a trading day). The regular session runs 09:30-16:00
America/New_York; it is converted to UTC per day with ``zoneinfo`` so the daylight-saving
switch moves the UTC open from 14:30Z (EST) to 13:30Z (EDT).

Times inside the simulator are integers: microseconds since the Unix epoch (UTC), or
microseconds/seconds since the day's session open where a name says ``rel``.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
SESSION_OPEN = time(9, 30)
SESSION_SECONDS = 23_400  # 09:30 -> 16:00 is 6.5 hours
US_PER_SECOND = 1_000_000


def is_trading_day(day: date) -> bool:
    """True on Monday-Friday (holidays ignored)."""
    return day.weekday() < 5


def trading_days(start: date, n: int) -> list[date]:
    """The first ``n`` trading days on or after ``start``, ascending."""
    out: list[date] = []
    day = start
    while len(out) < n:
        if is_trading_day(day):
            out.append(day)
        day += timedelta(days=1)
    return out


def prior_trading_days(first: date, n: int) -> list[date]:
    """The ``n`` trading days strictly before ``first``, ascending."""
    out: list[date] = []
    day = first - timedelta(days=1)
    while len(out) < n:
        if is_trading_day(day):
            out.append(day)
        day -= timedelta(days=1)
    return out[::-1]


def next_trading_day(day: date) -> date:
    """The next trading day after ``day`` (used for T+1 settlement)."""
    day += timedelta(days=1)
    while not is_trading_day(day):
        day += timedelta(days=1)
    return day


def session_open_us(day: date) -> int:
    """09:30 New York time on ``day`` as microseconds since the epoch (UTC)."""
    return int(datetime.combine(day, SESSION_OPEN, tzinfo=NEW_YORK).timestamp()) * US_PER_SECOND


def session_close_us(day: date) -> int:
    """16:00 New York time on ``day`` as microseconds since the epoch (UTC)."""
    return session_open_us(day) + SESSION_SECONDS * US_PER_SECOND
