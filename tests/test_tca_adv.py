"""TCA's ADV and daily volatility come from the daily bars strictly before the order's day (issue 16, defect 9),
as features.py's do: same-day TCA, before the day's own bar exists, still has size_pct_adv."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.test_tca import D1, end, fill, order, quote, run_tca

PRIOR = [("2026-02-25", 100.0, 1_000), ("2026-02-26", 102.0, 2_000), ("2026-02-27", 99.96, 3_000)]


def bar(day: str, close: float, volume: int) -> dict:
    return {"event_type": "MarketDataEvent", "kind": "bar", "symbol": "XYZ", "ts": f"{day}T00:00:00Z",
            "interval": "1d", "open": close, "high": close + 1, "low": close - 1, "close": close, "volume": volume}  # fmt: skip


def events(with_own_bar: bool) -> list[dict]:
    ev = [bar(*b) for b in PRIOR]
    if with_own_bar:  # the order day's own bar: a huge volume and a jump, which must change nothing
        ev.append(bar(D1, 130.0, 1_000_000))
    return [*ev, quote("XYZ", f"{D1}T14:29:00Z", 99.98, 100.02), order("O1", f"{D1}T14:30:00Z", "XYZ", "BUY", 500),
            fill("F1", "O1", f"{D1}T14:31:00Z", "XYZ", "BUY", 500, 100.03), end("O1", f"{D1}T14:35:00Z")]  # fmt: skip


@pytest.mark.parametrize("with_own_bar", [False, True])
def test_adv_and_volatility_from_the_bars_before_the_day(tmp_path, with_own_bar):
    """ADV = mean volume of the 3 bars before 03-02 = 2,000 shares: size_pct_adv = 500 / 2,000 = 0.25;
    volatility = sample stdev of the 2 log returns between them; prev_close = the last close before the day."""
    r = run_tca(tmp_path, events(with_own_bar)).orders.row(0, named=True)
    lr = np.diff(np.log([c for _, c, _ in PRIOR]))
    assert r["adv"] == pytest.approx(2_000.0)
    assert r["size_pct_adv"] == pytest.approx(0.25)
    assert r["daily_volatility"] == pytest.approx(float(np.std(lr, ddof=1)))
    assert r["prev_close"] == pytest.approx(99.96)


def test_adv_window_counts_bars_not_days(tmp_path):
    """adv_days = 2: the two bars before the day (2,000 and 3,000) and their two log returns (each against the
    close before it); adv_days = 1: the last bar alone, one return: no volatility (a stdev needs 2)."""
    r = run_tca(tmp_path / "2", events(False), adv_days=2).orders.row(0, named=True)
    assert r["adv"] == pytest.approx(2_500.0) and r["size_pct_adv"] == pytest.approx(0.2)
    assert r["daily_volatility"] == pytest.approx(abs(math.log(102 / 100) - math.log(99.96 / 102)) / math.sqrt(2))
    r = run_tca(tmp_path / "1", events(False), adv_days=1).orders.row(0, named=True)
    assert r["adv"] == pytest.approx(3_000.0) and r["daily_volatility"] is None


def test_a_quote_stamped_at_the_event_does_not_prevail_at_it(tmp_path):
    """Issue 16, defect 10: the quote prevailing at t is the last one stamped strictly before t (features.py's rule,
    tests/test_features.py: the quote at T is ignored). Quotes: mid 100.00 at 14:29, 100.50 at exactly the
    arrival 14:30, 101.00 at exactly the fill 14:31. The arrival price is 100.00, the fill's mid 100.50; the
    arrival cost of the fill at 100.60 is (100.60 - 100.00) / 100.00."""
    t = f"{D1}T14:"
    ev = [bar(*b) for b in PRIOR] + [
        quote("XYZ", f"{t}29:00Z", 99.98, 100.02), quote("XYZ", f"{t}30:00Z", 100.48, 100.52),
        quote("XYZ", f"{t}31:00Z", 100.98, 101.02), order("O1", f"{t}30:00Z", "XYZ", "BUY", 500),
        fill("F1", "O1", f"{t}31:00Z", "XYZ", "BUY", 500, 100.60), end("O1", f"{t}35:00Z"),
    ]  # fmt: skip
    res = run_tca(tmp_path, ev)
    r = res.orders.row(0, named=True)
    assert r["arrival_price"] == pytest.approx(100.00)
    assert r["spread_at_arrival_bps"] == pytest.approx(0.04 / 100.00 * 1e4)
    assert res.fills["mid"].to_list() == pytest.approx([100.50])
    assert r["arrival_cost_bps"] == pytest.approx(60.0)
