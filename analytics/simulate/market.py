"""Market path generation, independent of the desk's execution.

* ``daily_model``: close-to-close returns from a factor model,
  r[d, i] = sum_f exposure[d, i, f] * factor_return[d, f] + specific[d, i] (decimal returns),
  plus overnight gaps and daily volumes.
* ``base_mid_grid``: the unaffected mid on a 1-second grid (index k = seconds since the open,
  k = 0..23400, k = 23400 is the 16:00 close), a Brownian bridge in log-price from the day's
  open to its close, with U-shaped intraday variance.
* ``impact_bps_grid``: the desk's displacement of the mid, in bps, signed (+ = mid pushed up),
  built set-based from difference arrays (see ``ImpactParams`` for the law).
* ``sample_quotes`` / ``sample_background_trades``: consolidated NBBO quotes and market prints
  drawn from the (impacted) mid grid; times in microseconds since the open.

Seeds: each function takes its own ``numpy.random.Generator``; the caller derives one per
(stream, day) so a market path can be regenerated without re-running execution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .calendar import SESSION_SECONDS, US_PER_SECOND
from .universe import Universe

T = SESSION_SECONDS
FACTORS = ("market", "size", "value", "momentum", "volatility")
FACTOR_VOL_DAILY = np.array([0.010, 0.004, 0.003, 0.004, 0.003])
FACTOR_DRIFT_DAILY = np.array([0.0003, 0.0, 0.0, 0.0, 0.0])
GAP_VAR_SHARE = 0.15  # share of daily variance realised overnight
AUCTION_VOLUME_SHARE = 0.05  # share of the day's volume printed in the closing cross
LIT_VENUES = ("XNYS", "XNAS", "ARCX", "BATS", "EDGX")
LIT_WEIGHTS = np.array([0.25, 0.25, 0.15, 0.20, 0.15])
DARK_VENUES = ("DRKA", "DRKB", "MIDP")
KEY_SHIFT = 36  # key = symbol index << 36 | microseconds since the open (23.4e9 < 2**36)


def intraday_curve() -> tuple[np.ndarray, np.ndarray]:
    """U-shaped intensity per second of the session and its cumulative share.

    Returns ``(weight, cdf)``: ``weight[k]`` (k = 0..T-1) has mean 1; ``cdf`` has T + 1 points
    with cdf[0] = 0 and cdf[T] = 1 (share of the day's volume traded before second k).
    The same curve drives trade volume, quote intensity and intraday variance.
    """
    x = (np.arange(T) + 0.5) / T
    w = 0.55 + 3.0 * (x - 0.5) ** 2 + 1.6 * np.exp(-x / 0.025) + 1.4 * np.exp(-(1 - x) / 0.02)
    w = w / w.mean()
    cdf = np.concatenate([[0.0], np.cumsum(w)]) / w.sum()
    return w, cdf


def window_volume_share(start_s, end_s, to_close) -> np.ndarray:
    """Expected share of a day's volume traded over [start_s, end_s] (seconds since the open) by the intraday
    profile, the closing cross (``AUCTION_VOLUME_SHARE``) included for orders to the close. Decimal."""
    _, cdf = intraday_curve()
    grid = np.arange(T + 1, dtype=np.float64)
    share = np.interp(end_s, grid, cdf) - np.interp(start_s, grid, cdf)
    return (1 - AUCTION_VOLUME_SHARE) * share + AUCTION_VOLUME_SHARE * np.asarray(to_close, dtype=np.float64)


def spread_multiplier(sec: np.ndarray) -> np.ndarray:
    """Quoted spread relative to midday at ``sec`` seconds after the open: ~2.5x at 09:30."""
    return 1.0 + 1.5 * np.exp(-sec / 600.0) + 0.15 * np.exp(-(T - sec) / 900.0)


@dataclass(frozen=True)
class DailyModel:
    """Daily factor model over all days (prior days first), shapes (D, N[, F])."""

    exposures: np.ndarray  # (D, N, F)
    factor_returns: np.ndarray  # (D, F), decimal
    specific: np.ndarray  # (D, N), decimal
    returns: np.ndarray  # (D, N) close-to-close of the unaffected path, decimal
    closes: np.ndarray  # (D, N) unaffected closes, USD
    gaps: np.ndarray  # (D, N) log overnight gap: open = previous close * exp(gap)
    volume: np.ndarray  # (D, N) shares traded that day


def daily_model(uni: Universe, n_days: int, rng: np.random.Generator) -> DailyModel:
    """Factor exposures, factor returns, specific returns, closes, gaps and volumes."""
    n = uni.n
    f = len(FACTORS)
    log_cap = np.log(uni.shares_outstanding * uni.price0)
    beta = np.clip(1.0 + 0.25 * rng.standard_normal(n), 0.4, 1.8)
    size = (log_cap - log_cap.mean()) / (log_cap.std() + 1e-12)
    value = rng.standard_normal(n)
    volz = (uni.vol_annual - uni.vol_annual.mean()) / (uni.vol_annual.std() + 1e-12)
    mom = np.empty((n_days, n))
    mom[0] = rng.standard_normal(n)
    shocks = rng.standard_normal((n_days, n))
    for d in range(1, n_days):  # AR(1) exposure drift, loop over days only
        mom[d] = 0.97 * mom[d - 1] + np.sqrt(1 - 0.97**2) * shocks[d]
    exposures = np.empty((n_days, n, f))
    exposures[:, :, 0] = beta
    exposures[:, :, 1] = size
    exposures[:, :, 2] = value
    exposures[:, :, 3] = mom
    exposures[:, :, 4] = volz
    exposures = np.round(exposures, 6)
    factor_returns = FACTOR_DRIFT_DAILY + FACTOR_VOL_DAILY * rng.standard_normal((n_days, f))
    sigma = uni.sigma_daily
    factor_var = ((exposures.mean(axis=0) * FACTOR_VOL_DAILY) ** 2).sum(axis=1)
    spec_sigma = np.sqrt(np.maximum(sigma**2 - factor_var, (0.35 * sigma) ** 2))
    specific = spec_sigma * rng.standard_normal((n_days, n))
    returns = np.einsum("dnf,df->dn", exposures, factor_returns) + specific
    returns = np.maximum(returns, -0.5)
    closes = uni.price0 * np.cumprod(1.0 + returns, axis=0)
    gaps = np.sqrt(GAP_VAR_SHARE) * sigma * rng.standard_normal((n_days, n))
    volume = uni.adv * np.exp(0.25 * rng.standard_normal((n_days, n)) - 0.03)
    return DailyModel(exposures, factor_returns, specific, returns, closes, gaps, volume)


def base_mid_grid(
    open_px: np.ndarray, close_px: np.ndarray, sigma_daily: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Unaffected mid, shape (N, T + 1): Brownian bridge in log price from open to close.

    Per-second variance follows the U-curve; the intraday share of daily variance is
    1 - GAP_VAR_SHARE. Values in USD, not rounded.
    """
    w, _ = intraday_curve()
    n = len(open_px)
    sd = sigma_daily[:, None] * np.sqrt((1 - GAP_VAR_SHARE) * w[None, :] / T)
    steps = (rng.standard_normal((n, T), dtype=np.float32) * sd).astype(np.float64)
    walk = np.zeros((n, T + 1))
    np.cumsum(steps, axis=1, out=walk[:, 1:])
    var_share = np.concatenate([[0.0], np.cumsum(w)]) / w.sum()
    drift = np.log(close_px / open_px)[:, None] - walk[:, -1:]
    return open_px[:, None] * np.exp(walk + var_share[None, :] * drift)


@dataclass(frozen=True)
class ImpactParams:
    """The planted market-impact law (Almgren et al. 2005 square-root form).

    For a parent order of executed quantity X (shares) in a name with daily volatility
    sigma_bps (bps) and average daily volume ADV, trading at participation POV = X / (market
    volume over its window, desk included):
      permanent  perm_bps = gamma * sigma_bps * sqrt(X / ADV), accrued linearly from the first
                 fill to the order's end and kept (carried to later days);
      temporary  temp_bps = eta * algo_multiplier * sigma_bps * sqrt(POV / (1 - POV)) (ATHL's trade rate X /
                 the other participants' volume), present from the first
                 fill to the end, then decaying linearly to zero over ``tau_s`` seconds.
    The mid is displaced by s * (perm + temp) bps (s = +1 buy, -1 sell): buys push it up.
    Adverse selection at ``adverse_venue``: after each desk fill there the mid moves against
    the desk (down after a buy) by ``adverse_bps`` over ``adverse_ramp_s`` seconds, holds until
    ``adverse_hold_s`` and reverts linearly over ``adverse_revert_s``.
    """

    eta: float = 0.15
    gamma: float = 0.25
    tau_s: int = 180
    algo_multiplier: tuple[tuple[str, float], ...] = (
        ("VWAP", 1.0),
        ("TWAP", 1.0),
        ("POV", 1.0),
        ("IS", 1.0),
        ("LIQSEEK", 1.6),
    )
    adverse_venue: str = "DRKB"
    adverse_bps: float = 4.0
    adverse_ramp_s: int = 3
    adverse_hold_s: int = 90
    adverse_revert_s: int = 60

    def multiplier(self, algo: str) -> float:
        return dict(self.algo_multiplier)[algo]


def impact_bps_grid(
    n_symbols: int,
    carry_bps: np.ndarray,
    order_sym: np.ndarray,
    order_sign: np.ndarray,
    order_k0: np.ndarray,
    order_k1: np.ndarray,
    perm_bps: np.ndarray,
    temp_bps: np.ndarray,
    adverse_sym: np.ndarray,
    adverse_sign: np.ndarray,
    adverse_k: np.ndarray,
    p: ImpactParams,
) -> np.ndarray:
    """Signed mid displacement in bps, shape (N, T + 1), set-based (no loop over orders).

    A piecewise-linear function is encoded by its jumps ``J`` and slope changes ``S`` on the
    grid; f = cumsum(J + cumsum(S)). ``order_k0`` is the second of the first fill (impact starts
    the second after), ``order_k1`` the order's last second; ``carry_bps`` the permanent impact
    kept from earlier days. ``adverse_*``: one entry per desk fill at the adverse venue
    (``adverse_sign`` = the desk's side s, so the mid moves by -s * adverse_bps).
    """
    pad = max(p.tau_s, p.adverse_hold_s + p.adverse_revert_s) + 4
    width = T + 1 + pad
    jumps = np.zeros(n_symbols * width)
    slopes = np.zeros(n_symbols * width)
    jumps[np.arange(n_symbols) * width] += carry_bps
    base = order_sym.astype(np.int64) * width
    k0 = order_k0.astype(np.int64) + 1
    k1 = np.maximum(order_k1.astype(np.int64), k0 + 1)
    rate = order_sign * perm_bps / (k1 - k0)
    np.add.at(slopes, base + k0 + 1, rate)
    np.add.at(slopes, base + k1 + 1, -rate)
    np.add.at(jumps, base + k0, order_sign * temp_bps)
    decay = order_sign * temp_bps / p.tau_s
    np.add.at(slopes, base + k1 + 1, -decay)
    np.add.at(slopes, base + k1 + p.tau_s + 1, decay)
    ab = adverse_sym.astype(np.int64) * width
    ka = adverse_k.astype(np.int64)
    a = -adverse_sign * p.adverse_bps
    np.add.at(slopes, ab + ka + 1, a / p.adverse_ramp_s)
    np.add.at(slopes, ab + ka + p.adverse_ramp_s + 1, -a / p.adverse_ramp_s)
    np.add.at(slopes, ab + ka + p.adverse_hold_s + 1, -a / p.adverse_revert_s)
    np.add.at(slopes, ab + ka + p.adverse_hold_s + p.adverse_revert_s + 1, a / p.adverse_revert_s)
    slopes = slopes.reshape(n_symbols, width)
    jumps = jumps.reshape(n_symbols, width)
    f = np.cumsum(jumps + np.cumsum(slopes, axis=1), axis=1)
    return f[:, : T + 1]


def sample_times_us(counts: np.ndarray, cdf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sorted keys (symbol index << KEY_SHIFT | microseconds since open) of ``counts[i]`` events
    per local symbol i, with times drawn from the intraday ``cdf``."""
    sym = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    sec = np.interp(rng.random(len(sym)), cdf, np.arange(T + 1, dtype=np.float64))
    us = np.minimum((sec * US_PER_SECOND).astype(np.int64), T * US_PER_SECOND - 1)
    key = (sym << KEY_SHIFT) | us
    key.sort()
    return key


def sample_quotes(
    counts: np.ndarray,
    mid_grid: np.ndarray,
    spread_bps: np.ndarray,
    lots: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """NBBO quotes for the local symbols of ``mid_grid`` (shape (n, T + 1)).

    The first quote of each symbol is at the open (so a quote always prevails); times are
    strictly increasing per symbol. bid/ask are the mid -/+ half the spread rounded to the
    cent, at least one tick apart; sizes in round lots of 100 shares.
    """
    return price_quotes(quote_draws(counts, spread_bps, lots, rng), mid_grid)


def quote_draws(
    counts: np.ndarray, spread_bps: np.ndarray, lots: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The exogenous part of :func:`sample_quotes`: quote times, quoted spread (bps, ``sbps``) and displayed
    sizes, which never depend on the mid (so a replay can re-price the same quotes on another mid path).
    Draws from ``rng`` in the same order as ``sample_quotes`` always did."""
    _, cdf = intraday_curve()
    key = sample_times_us(counts, cdf, rng)
    sym = key >> KEY_SHIFT
    starts = np.searchsorted(sym, np.arange(len(counts)))
    us = key & ((1 << KEY_SHIFT) - 1)
    us[starts] = 0
    key = (sym << KEY_SHIFT) | us
    idx = np.arange(len(key), dtype=np.int64)
    key = np.maximum.accumulate(key - idx) + idx  # strictly increasing within symbol
    us = key & ((1 << KEY_SHIFT) - 1)
    sec = us // US_PER_SECOND
    sbps = (
        spread_bps[sym]
        * spread_multiplier(sec.astype(np.float64))
        * np.exp(0.25 * rng.standard_normal(len(key)) - 0.03)
    )
    p = 1.0 / lots[sym]
    return {
        "key": key,
        "sym": sym,
        "us": us,
        "sbps": sbps,
        "bid_size": 100 * rng.geometric(p).astype(np.int64),
        "ask_size": 100 * rng.geometric(p).astype(np.int64),
    }


def price_quotes(draws: dict[str, np.ndarray], mid_grid: np.ndarray) -> dict[str, np.ndarray]:
    """Bid/ask of the drawn quotes (:func:`quote_draws`) on the mid path ``mid_grid`` (rows = the draws' local
    symbols): the mid at the quote's second -/+ half the spread, rounded to the cent, at least one tick apart."""
    sym, us, sbps = draws["sym"], draws["us"], draws["sbps"]
    mid = mid_grid[sym, us // US_PER_SECOND]
    half = mid * sbps / 2e4
    bid_c = np.round((mid - half) * 100.0)
    ask_c = np.maximum(np.round((mid + half) * 100.0), bid_c + 1)
    bid_c = np.maximum(bid_c, 1)
    ask_c = np.maximum(ask_c, bid_c + 1)
    return {
        "key": draws["key"],
        "sym": sym,
        "us": us,
        "bid": bid_c / 100.0,
        "ask": ask_c / 100.0,
        "bid_size": draws["bid_size"],
        "ask_size": draws["ask_size"],
    }


def prevailing(quote_key: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Index of the quote prevailing at each ``key`` (last quote with key <= probe)."""
    return np.searchsorted(quote_key, key, side="right") - 1


def sample_background_trades(
    counts: np.ndarray, volume: np.ndarray, quotes: dict[str, np.ndarray], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Market prints of other participants (continuous session only).

    Sizes are lognormal, scaled so each local symbol's prints sum to about
    (1 - AUCTION_VOLUME_SHARE) * ``volume``; odd lots (< 100) carry condition ``I``. 45% print at
    the ask, 45% at the bid (lit venues), 10% at the quote midpoint (dark venues).
    """
    _, cdf = intraday_curve()
    key = sample_times_us(counts, cdf, rng)
    sym = key >> KEY_SHIFT
    m = len(key)
    q = prevailing(quotes["key"], key)
    bid = quotes["bid"][q]
    ask = quotes["ask"][q]
    u = rng.random(m)
    at_mid = u >= 0.9
    price = np.where(u < 0.45, ask, np.where(at_mid, np.round((bid + ask) / 2, 4), bid))
    raw = np.exp(1.0 * rng.standard_normal(m))
    target = (1 - AUCTION_VOLUME_SHARE) * volume / np.maximum(counts, 1)
    raw = raw / np.bincount(sym, raw, minlength=len(counts))[sym] * counts[sym] * target[sym]
    size = np.where(raw >= 100, np.round(raw / 100) * 100, np.maximum(np.round(raw), 1)).astype(np.int64)
    lit = np.asarray(LIT_VENUES)[rng.choice(len(LIT_VENUES), m, p=LIT_WEIGHTS)]
    dark = np.asarray(DARK_VENUES)[rng.integers(0, len(DARK_VENUES), m)]
    return {
        "key": key,
        "price": price,
        "size": size,
        "venue": np.where(at_mid, dark, lit),
        "condition": np.where(size < 100, "I", "@"),
    }
