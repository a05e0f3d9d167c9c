"""Desk execution: parent orders, algo schedules, child fills and their prices.

Orders are drawn before any price is known (window, target participation, size from ADV);
fills get times, quantities, venues and liquidity flags from the algo's schedule; prices are
set afterwards from the prevailing NBBO (``price_fills``), so the same orders can be replayed
on another market path, or the same market path re-executed under another algo.

Units: times in seconds (float) or microseconds (int) since the session open; quantities in
shares; prices in USD; ``side`` is s = +1 buy / -1 sell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .calendar import SESSION_SECONDS, US_PER_SECOND
from .market import LIT_VENUES, LIT_WEIGHTS, ImpactParams, intraday_curve, window_volume_share

T = SESSION_SECONDS
ALGOS = ("VWAP", "TWAP", "POV", "IS", "LIQSEEK")
BROKERS = ("Alder", "Birchwood", "Crescent", "Dovetail", "Eastgate")
SLICES = ("ADD", "REMOVE", "DRKA", "DRKB", "MIDP")  # where a child slice executes
LIQUIDITY = ("ADD", "REMOVE", "MIDPOINT", "AUCTION")
ADD, REMOVE, MIDPOINT, AUCTION = range(4)


@dataclass(frozen=True)
class ExecutionParams:
    """Planted broker/algo behaviour (all recorded in ground_truth.json).

    first_fill_median_s: median delay from the order's NEW to its first fill (lognormal,
    sigma 0.5). p_done: probability an order is fully filled (DONE); otherwise it is cancelled
    at the end of its window having filled a uniform fraction in ``partial_fill``.
    commission_cps: commission in US cents per share. slice_mix: probability of each SLICES
    entry per algo. sec_fee_rate: USD per USD of sell notional (SEC Section 31);
    taf_per_share / taf_cap: FINRA TAF on sells, applied at settlement only.
    routing_latency_ms: median time from the child order's receipt at the venue (``received_ts``) to its
    execution, per venue (lognormal, sigma 0.5); the listing exchange's closing cross takes the lit default.
    """

    algo_weights: tuple[float, ...] = (0.30, 0.15, 0.20, 0.15, 0.20)
    first_fill_median_s: tuple[tuple[str, float], ...] = (
        ("Alder", 4.0),
        ("Birchwood", 4.0),
        ("Crescent", 12.0),
        ("Dovetail", 4.0),
        ("Eastgate", 4.0),
    )
    p_done: tuple[tuple[str, float], ...] = (
        ("Alder", 0.88),
        ("Birchwood", 0.88),
        ("Crescent", 0.55),
        ("Dovetail", 0.88),
        ("Eastgate", 0.88),
    )
    partial_fill: tuple[tuple[str, float, float], ...] = (
        ("Alder", 0.35, 0.95),
        ("Birchwood", 0.35, 0.95),
        ("Crescent", 0.20, 0.85),
        ("Dovetail", 0.35, 0.95),
        ("Eastgate", 0.35, 0.95),
    )
    commission_cps: tuple[tuple[str, float], ...] = (
        ("Alder", 1.0),
        ("Birchwood", 1.5),
        ("Crescent", 0.8),
        ("Dovetail", 2.0),
        ("Eastgate", 1.2),
    )
    slice_mix: tuple[tuple[str, tuple[float, ...]], ...] = (
        ("VWAP", (0.35, 0.40, 0.08, 0.08, 0.09)),
        ("TWAP", (0.35, 0.40, 0.08, 0.08, 0.09)),
        ("POV", (0.35, 0.40, 0.08, 0.08, 0.09)),
        ("IS", (0.20, 0.60, 0.07, 0.07, 0.06)),
        ("LIQSEEK", (0.10, 0.30, 0.27, 0.08, 0.25)),
    )
    pov_range: tuple[float, float] = (0.02, 0.30)  # log-uniform target participation
    volume_share_range: tuple[float, float] = (0.005, 0.30)  # log-uniform share of day volume
    to_close_within_s: float = 1800.0  # windows ending after 15:30 run to the close
    auction_share: tuple[float, float] = (0.10, 0.25)  # of a VWAP-to-close order's fills
    sec_fee_rate: float = 27.8e-6
    taf_per_share: float = 0.000166
    taf_cap: float = 8.30
    routing_latency_ms: tuple[tuple[str, float], ...] = (
        ("XNYS", 0.8),
        ("XNAS", 0.5),
        ("ARCX", 0.6),
        ("BATS", 0.4),
        ("EDGX", 0.4),
        ("DRKA", 8.0),
        ("DRKB", 25.0),
        ("MIDP", 3.0),
    )
    default_latency_ms: float = 0.8

    def by_broker(self, table: tuple, broker_idx: np.ndarray, col: int = 1) -> np.ndarray:
        return np.array([row[col] for row in table])[broker_idx]


def received_ts_us(
    fill_ts_us: np.ndarray, venue: np.ndarray, ep: ExecutionParams, rng: np.random.Generator
) -> np.ndarray:
    """Rule 605's time of order receipt of each fill's child order (us since epoch): the fill time minus the
    venue's routing latency (lognormal about ``routing_latency_ms``, sigma 0.5), at least 1 us before the fill."""
    med = dict(ep.routing_latency_ms)
    ms = np.array([med.get(str(v), ep.default_latency_ms) for v in np.unique(venue)])
    per = ms[np.unique(venue, return_inverse=True)[1]]
    lat_us = np.maximum(per * 1000.0 * np.exp(0.5 * rng.standard_normal(len(venue))), 1.0)
    return fill_ts_us - np.round(lat_us).astype(np.int64)


def _loguniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(lo), np.log(hi), n))


def make_orders(
    n: int, adv: np.ndarray, pick_weight: np.ndarray, rng: np.random.Generator, ep: ExecutionParams
) -> dict[str, np.ndarray]:
    """Parent orders of one day (sides are provisional: the portfolio layer may flip sells).

    Window: a share ``vf`` of the expected day volume starting at a uniform volume-time point,
    mapped to clock time by the U-curve; start >= 2 minutes after the open. Quantity
    Q = target_pov * ADV * (volume share of the window), in round lots, >= 100.
    """
    _, cdf = intraday_curve()
    grid = np.arange(T + 1, dtype=np.float64)
    sym = rng.choice(len(adv), n, p=pick_weight / pick_weight.sum())
    side = np.where(rng.random(n) < 0.5, 1, -1)
    pov = _loguniform(rng, *ep.pov_range, n)
    vf = _loguniform(rng, *ep.volume_share_range, n)
    u0 = rng.random(n) * (1 - vf)
    start = np.maximum(np.interp(u0, cdf, grid), 120.0 + 60.0 * rng.random(n))
    end = np.maximum(np.interp(u0 + vf, cdf, grid), start + 120.0)
    to_close = end >= T - ep.to_close_within_s
    end = np.where(to_close, float(T), end)
    share = np.interp(end, grid, cdf) - np.interp(start, grid, cdf)
    qty = np.maximum(np.round(pov * adv[sym] * share / 100.0) * 100, 100).astype(np.int64)
    algo = rng.choice(len(ALGOS), n, p=np.array(ep.algo_weights))
    broker = rng.integers(0, len(BROKERS), n)
    done = rng.random(n) < ep.by_broker(ep.p_done, broker)
    lo = ep.by_broker(ep.partial_fill, broker, 1)
    hi = ep.by_broker(ep.partial_fill, broker, 2)
    frac = np.where(done, 1.0, lo + (hi - lo) * rng.random(n))
    filled = np.clip(np.round(qty * frac / 100.0) * 100, 100, qty).astype(np.int64)
    auction = (to_close & (np.asarray(ALGOS)[algo] == "VWAP") & (filled >= 200)).astype(bool)
    a_share = rng.uniform(*ep.auction_share, n)
    auction_qty = np.where(auction, np.clip(np.round(filled * a_share / 100) * 100, 100, filled - 100), 0)
    delay = ep.by_broker(ep.first_fill_median_s, broker) * np.exp(0.5 * rng.standard_normal(n))
    first = start + np.minimum(delay, 0.5 * (end - start))
    return {
        "sym": sym,
        "side": side,
        "target_pov": pov,
        "start_s": start,
        "first_s": first,
        "end_s": end,
        "to_close": to_close,
        "qty": qty,
        "filled": filled,
        "auction_qty": auction_qty.astype(np.int64),
        "auction_share": a_share,  # drawn for every order: a replay under VWAP-to-close sizes its cross with it
        "algo": algo,
        "broker": broker,
        "replace": rng.random(n) < 0.05,
    }


def schedule_fills(
    orders: dict[str, np.ndarray], fills_per_order: float, rng: np.random.Generator, ep: ExecutionParams
) -> dict[str, np.ndarray]:
    """Child fills of every order: times, quantities, slice (venue class) and liquidity.

    Continuous fills split ``filled - auction_qty`` over [first fill, end] following the algo:
    VWAP and POV in volume time (U-curve), TWAP uniform in clock time, IS front-loaded
    (density 2(1 - x)), LIQSEEK in 2-8 short bursts. The first fill is exactly at ``first_s``.
    VWAP orders to the close add one AUCTION fill at 16:00:00. Rows sorted by (order, time).
    """
    _, cdf = intraday_curve()
    grid = np.arange(T + 1, dtype=np.float64)
    n_orders = len(orders["qty"])
    cont = orders["filled"] - orders["auction_qty"]
    w = cont.astype(np.float64) ** 0.4
    w = w / w.mean()
    n = 1 + rng.poisson(max(fills_per_order - 1.0, 0.0) * w)
    n = np.minimum(n, cont)
    total = int(n.sum())
    oidx = np.repeat(np.arange(n_orders), n)
    starts = np.cumsum(n) - n
    g = rng.gamma(2.0, size=total)
    cg = np.cumsum(g)
    within = cg - (cg[starts] - g[starts])[oidx]
    cumfrac = within / np.bincount(oidx, g, minlength=n_orders)[oidx]
    unit = np.where((cont >= 200 * n) & (cont % 100 == 0), 100, 1)[oidx]
    cq = cont[oidx]
    cum = np.minimum(np.round(cumfrac * cq / unit) * unit, cq).astype(np.int64)
    last = starts + n - 1
    cum[last] = cont
    prev = np.concatenate([[0], cum[:-1]])
    prev[starts] = 0
    q = cum - prev
    u = (prev + 0.5 * q) / cq
    u = np.clip(u + (rng.random(total) - 0.5) * q / cq, 0.0, 1.0)

    algo = orders["algo"][oidx]
    first = orders["first_s"][oidx]
    end = orders["end_s"][oidx]
    dur = end - first
    name = np.asarray(ALGOS)[algo]
    x = np.where(name == "IS", 1.0 - np.sqrt(1.0 - u), u)
    t = first + x * dur
    vol_time = (name == "VWAP") | (name == "POV")
    v0 = np.interp(first, grid, cdf)
    v1 = np.interp(end, grid, cdf)
    t = np.where(vol_time, np.interp(v0 + u * (v1 - v0), cdf, grid), t)
    k = (2 + np.minimum(rng.poisson(2.0, n_orders), 6))[oidx]
    burst = np.minimum(np.floor(u * k), k - 1)
    centre_noise = rng.random((n_orders, 8))[oidx, burst.astype(np.int64)]
    t_burst = first + (burst + 0.1 + 0.8 * centre_noise) / k * dur + 10.0 * rng.standard_normal(total)
    t = np.where(name == "LIQSEEK", t_burst, t)
    t = np.clip(t, first, np.minimum(end, T - 1e-3))
    t = t[np.lexsort((t, oidx))]  # oidx is sorted, so this sorts times within each order

    keep = q > 0
    mix = np.array([m for _, m in ep.slice_mix])
    cum_mix = np.cumsum(mix, axis=1)[algo]
    slc = (rng.random(total)[:, None] > cum_mix).sum(axis=1)
    slc = np.minimum(slc, len(SLICES) - 1)
    lit = rng.choice(len(LIT_VENUES), total, p=LIT_WEIGHTS)
    rel_us = (t[keep] * US_PER_SECOND).astype(np.int64)
    first_kept = np.searchsorted(oidx[keep], np.arange(n_orders))
    rel_us[first_kept] = (orders["first_s"] * US_PER_SECOND).astype(np.int64)
    fills = {
        "order": oidx[keep],
        "rel_us": rel_us,
        "qty": q[keep],
        "slice": slc[keep],
        "lit_venue": lit[keep],
    }
    # closing auction fills of VWAP-to-close orders
    a = np.flatnonzero(orders["auction_qty"] > 0)
    fills = {
        "order": np.concatenate([fills["order"], a]),
        "rel_us": np.concatenate([fills["rel_us"], np.full(len(a), T * US_PER_SECOND, np.int64)]),
        "qty": np.concatenate([fills["qty"], orders["auction_qty"][a]]),
        "slice": np.concatenate([fills["slice"], np.full(len(a), -1)]),
        "lit_venue": np.concatenate([fills["lit_venue"], np.zeros(len(a), np.int64)]),
    }
    order = np.lexsort((fills["rel_us"], fills["order"]))
    fills = {k2: v[order] for k2, v in fills.items()}
    s = fills["slice"]
    fills["liquidity"] = np.select([s == 0, s == 1, s == -1], [ADD, REMOVE, AUCTION], MIDPOINT)
    return fills


def fill_venues(fills: dict[str, np.ndarray], listing_exchange: np.ndarray) -> np.ndarray:
    """Venue MIC of each fill: a lit venue for ADD/REMOVE, the dark pool / midpoint venue for
    dark slices, the listing exchange for the closing auction."""
    dark = np.asarray(SLICES)[np.clip(fills["slice"], 0, None)]
    lit = np.asarray(LIT_VENUES)[fills["lit_venue"]]
    s = fills["slice"]
    return np.where(s == -1, listing_exchange, np.where(s <= 1, lit, dark))


def order_impact_bps(
    orders: dict[str, np.ndarray],
    sigma_daily: np.ndarray,
    adv: np.ndarray,
    day_volume: np.ndarray,
    ip: ImpactParams,
) -> dict[str, np.ndarray]:
    """Planted permanent/temporary impact per order (bps, unsigned) and its participation.

    POV = X / (expected background volume over [first fill, end] + X) with X the executed
    quantity; the background volume is the day's realised volume times the U-curve share
    (plus the closing cross for orders to the close). The temporary impact is on ATHL's trade rate
    X / background volume = POV / (1 - POV) (Almgren et al. 2005's X / (V T)).
    """
    sym = orders["sym"]
    x = orders["filled"].astype(np.float64)
    bg = day_volume[sym] * window_volume_share(orders["first_s"], orders["end_s"], orders["to_close"])
    pov = x / (bg + x)
    sigma_bps = sigma_daily[sym] * 1e4
    mult = np.array([ip.multiplier(a) for a in ALGOS])[orders["algo"]]
    return {
        "pov": pov,
        "perm_bps": ip.gamma * sigma_bps * np.sqrt(x / adv[sym]),
        "temp_bps": ip.eta * mult * sigma_bps * np.sqrt(x / bg),
    }


def price_fills(
    side: np.ndarray,
    qty: np.ndarray,
    liquidity: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    bid_size: np.ndarray,
    ask_size: np.ndarray,
    close_px: np.ndarray,
) -> np.ndarray:
    """Fill price from the prevailing quote: REMOVE at the far touch plus one cent per extra
    displayed size consumed (at most 3 cents), ADD at the near touch, MIDPOINT at the mid
    (half-cent allowed), AUCTION at the closing price."""
    far = np.where(side > 0, ask, bid)
    near = np.where(side > 0, bid, ask)
    depth = np.where(side > 0, ask_size, bid_size)
    walk = 0.01 * np.clip(np.ceil(qty / depth) - 1, 0, 3)
    remove = np.maximum(far + side * walk, 0.01)
    mid = np.round((bid + ask) / 2.0, 4)
    price = np.select([liquidity == REMOVE, liquidity == ADD, liquidity == MIDPOINT], [remove, near, mid], close_px)
    return np.round(price, 4)
