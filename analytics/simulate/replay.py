"""Counterfactual replay of simulated orders: the same exogenous market, another execution choice.

A simulated day is regenerated from its seed (``day_state``): the unaffected 1-second mid path, the quote times,
quoted spreads and displayed sizes (``market.quote_draws``: they never depend on the mid), the day's orders, their
sides, child-fill schedules and planted impact, and the permanent impact carried from earlier days. ``replay``
then re-runs chosen orders under another choice (algo and/or horizon) and prices them on that same path:

* exogenous, held exactly: the unaffected mid path, the quotes' times / spreads / sizes, every OTHER desk order
  (its fills, its planted impact, its adverse-selection footprint), the carry from earlier days, the order's
  arrival, first-fill time, quantity and filled quantity (completion is the broker's, not the algo's);
* recomputed for the choice: the order's own child schedule (``execution.schedule_fills`` re-run on the day's
  fill stream with only this order changed, so the order's slice mix and timing follow the new algo), its planted
  impact (``execution.order_impact_bps``: temporary eta * m[algo] * sigma * sqrt(POV / (1 - POV)) with the POV of the new
  window; permanent gamma * sigma * sqrt(X / ADV) accrued over the new window), its adverse selection at the
  planted venue, hence the mid path of its symbol, the quotes' bid/ask on it, its fill prices
  (``execution.price_fills``), the closing price (for an auction fill) and its end mid.

Replaying an order under its own choice reproduces its simulated fills bit for bit (tests/test_replay.py). When the
new choice changes the order's continuous quantity (a VWAP-to-close order sends part of it to the closing cross,
other algos do not), the fill stream's draws for that order come from the same day stream but at other positions:
another realisation of the same algo's randomness, never a change to anything exogenous.

Horizon: ``horizon`` scales the order's window [first fill, end] in volume time (the U-curve), capped at the close;
a window ending within ``ExecutionParams.to_close_within_s`` of the close runs to the close, as in ``make_orders``.

Costs, as analytics/tca.py (EVENTS.md; positive = the client is worse off, s = +1 buy / -1 sell):
``is_total_bps`` = Perold (1988) implementation shortfall split as Wagner: delay s (P0 - Pd) Q + trading
s sum_j (p_j - P0) q_j + opportunity s (Pn - P0) unfilled + fees, over the paper notional Pd Q, times 1e4; P0 = NBBO
mid prevailing at the order's NEW, Pd = the decision price (a quant strategy's rounded decision mid, else the mid
at the decision), Pn = the mid at the order's end (DONE: last fill + 1 ms; CANCEL: the later of its window's end
and last fill + 1 ms). ``arrival_cost_bps`` = s (avg fill price - P0) / P0 * 1e4. Fees are the settled values
without the simulator's random +-2% commission adjustments on 10% of fills (so ``is_total_bps`` matches TCA's
to ~0.05 bps; ``arrival_cost_bps`` matches exactly).

The replay loops over the replayed orders (each needs its own symbol's mid row); every step inside is set-based.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import polars as pl

from .calendar import SESSION_SECONDS, US_PER_SECOND, prior_trading_days, session_open_us, trading_days
from .config import SimConfig
from .execution import ALGOS, SLICES, ExecutionParams, order_impact_bps, price_fills, schedule_fills
from .market import ImpactParams, base_mid_grid, daily_model, impact_bps_grid, intraday_curve, price_quotes, quote_draws
from .portfolio import MODEL_ID, apply_fills, initial_shares, make_portfolios
from .simulator import (
    CHUNK_ROWS,
    N_PRIOR_DAYS,
    QUOTES_PER_SYMBOL,
    S_DAILY,
    S_FILLS,
    S_HOLDINGS,
    S_PATH,
    S_QUOTES,
    S_UNIVERSE,
    TRADES_PER_SYMBOL,
    _allocate,
    _chunks,
    _rng,
    desk_day,
)
from .universe import build_universe

T = SESSION_SECONDS
BPS = 1e4


@dataclass
class Day:
    """One simulated day regenerated from its seed (see the module docstring); arrays indexed like the
    simulator's (orders by their index in the day, fills sorted by (order, time))."""

    cfg: SimConfig
    ip: ImpactParams
    ep: ExecutionParams
    date: date
    t: int  # index of the day in the daily model (prior days first)
    open_us: int
    symbols: np.ndarray
    sigma_daily: np.ndarray  # (N,) decimal per day
    adv: np.ndarray  # (N,) shares
    volume: np.ndarray  # (N,) the day's background volume, shares
    commission_cps: np.ndarray  # (n_orders,) US cents per share of the order's broker
    carry: np.ndarray  # (N,) permanent impact carried into the day, signed bps
    orders: dict[str, np.ndarray]
    fills: dict[str, np.ndarray]
    impact: dict[str, np.ndarray]
    base: np.ndarray  # (N, T + 1) unaffected mid, USD
    dec_rel_us: np.ndarray  # (n_orders,) decision time, us since the open
    quant: np.ndarray  # (n_orders,) the decision carries a decision price (quant strategy)
    order_id: np.ndarray  # (n_orders,) the lake's order_id
    spread_bps: np.ndarray  # (N,) the names' typical quoted spread
    quote_lots: np.ndarray  # (N,)
    q_count: np.ndarray
    chunks: list[tuple[int, int]]
    _draws: dict[int, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    def quote_draws(self, sym: int) -> dict[str, np.ndarray]:
        """The exogenous quote draws (times, spreads, sizes) of symbol ``sym`` this day."""
        if sym not in self._draws:
            ci, (lo, hi) = next((c, b) for c, b in enumerate(self.chunks) if b[0] <= sym < b[1])
            rng = _rng(self.cfg.seed, S_QUOTES, self.t, ci)
            d = quote_draws(self.q_count[lo:hi], self.spread_bps[lo:hi], self.quote_lots[lo:hi], rng)
            for s in range(lo, hi):  # cache every symbol of the chunk: one draw serves them all
                m = d["sym"] == s - lo
                self._draws[s] = {k: (np.zeros(int(m.sum()), np.int64) if k == "sym" else v[m]) for k, v in d.items()}
        return self._draws[sym]


def day_state(cfg: SimConfig, day: int, ip: ImpactParams | None = None, ep: ExecutionParams | None = None) -> Day:
    """Regenerate simulated day ``day`` (0-based among ``cfg``'s simulated days) exactly as ``simulate`` drew it:
    the earlier days' orders and fills are redrawn (cheap, no market data) for the carried permanent impact and
    the long-only positions that decide the sides."""
    ip, ep = ip or ImpactParams(adverse_bps=cfg.adverse_bps), ep or ExecutionParams()
    seed = cfg.seed
    sim_days = trading_days(cfg.start, cfg.days)
    if not 0 <= day < len(sim_days):
        raise ValueError(f"day must be in [0, {len(sim_days)})")
    n_prior = len(prior_trading_days(sim_days[0], N_PRIOR_DAYS))
    uni = build_universe(cfg.symbols, _rng(seed, S_UNIVERSE))
    n = uni.n
    model = daily_model(uni, n_prior + len(sim_days), _rng(seed, S_DAILY))
    pick_w = (uni.adv * uni.price0) ** 0.25
    strategies = np.asarray(make_portfolios(cfg.portfolios)["strategy"].to_list())
    shares = initial_shares(uni, cfg.portfolios, _rng(seed, S_HOLDINGS))
    carry = np.zeros(n)
    for d in range(day + 1):  # loop over days: the carry and positions need every earlier day
        t = n_prior + d
        orders, port, fills, dec_rel_us = desk_day(cfg, uni.adv, pick_w, shares, t, ep)
        imp = order_impact_bps(orders, uni.sigma_daily, uni.adv, model.volume[t], ip)
        if d == day:
            break
        np.add.at(carry, orders["sym"], orders["side"] * imp["perm_bps"])
        f_order = fills["order"]
        shares = apply_fills(shares, port[f_order], orders["sym"][f_order], orders["side"][f_order] * fills["qty"])
    o_px = model.closes[t - 1] * np.exp(model.gaps[t])
    base = base_mid_grid(o_px, model.closes[t], uni.sigma_daily, _rng(seed, S_PATH, t))
    liq = np.sqrt(uni.adv / uni.adv.max())
    q_count = _allocate(cfg.quotes_per_day or QUOTES_PER_SYMBOL * n, liq, 50)
    t_count = _allocate(cfg.trades_per_day or TRADES_PER_SYMBOL * n, liq, 20)
    open_us = session_open_us(sim_days[day])
    start_us = open_us + (orders["start_s"] * US_PER_SECOND).astype(np.int64)
    n_orders = len(orders["qty"])
    rank = np.empty(n_orders, dtype=np.int64)
    rank[np.lexsort((np.arange(n_orders), start_us))] = np.arange(n_orders)
    tag = sim_days[day].strftime("%Y%m%d")
    order_id = np.asarray([f"O{tag}-{r + 1:06d}" for r in rank.tolist()])
    cps = np.array([c for _, c in ep.commission_cps])[orders["broker"]]
    return Day(
        cfg=cfg, ip=ip, ep=ep, date=sim_days[day], t=t, open_us=open_us, symbols=uni.symbols,
        sigma_daily=uni.sigma_daily, adv=uni.adv, volume=model.volume[t], commission_cps=cps, carry=carry,
        orders=orders, fills=fills, impact=imp, base=base, dec_rel_us=dec_rel_us,
        quant=np.array([s in MODEL_ID for s in strategies[port].tolist()]), order_id=order_id, spread_bps=uni.spread_bps,
        quote_lots=uni.quote_lots, q_count=q_count, chunks=_chunks(q_count + t_count, CHUNK_ROWS),
    )  # fmt: skip


def with_choices(day: Day, idx: np.ndarray, algo: np.ndarray, horizon: np.ndarray) -> dict[str, np.ndarray]:
    """The day's orders with orders ``idx`` switched to ``algo`` (names) and their window scaled by ``horizon``
    in volume time (1 = as done; capped at the close, to the close within ``to_close_within_s``); the closing
    cross re-sized for VWAP-to-close (the order's own ``auction_share`` draw)."""
    o = {k: v.copy() for k, v in day.orders.items()}
    ep = day.ep
    _, cdf = intraday_curve()
    grid = np.arange(T + 1, dtype=np.float64)
    h = np.asarray(horizon, dtype=np.float64)
    first, end = o["first_s"][idx], o["end_s"][idx]
    v0 = np.interp(first, grid, cdf)
    v1 = np.minimum(v0 + h * (np.interp(end, grid, cdf) - v0), 1.0)
    new_end = np.maximum(np.interp(v1, cdf, grid), first + 60.0)
    to_close = new_end >= T - ep.to_close_within_s
    new_end = np.where(to_close, float(T), new_end)
    same = h == 1.0  # as done: keep the drawn window exactly
    o["end_s"][idx] = np.where(same, end, new_end)
    o["to_close"][idx] = np.where(same, o["to_close"][idx], to_close)
    o["algo"][idx] = np.array([ALGOS.index(a) for a in np.asarray(algo).tolist()], dtype=o["algo"].dtype)
    filled = o["filled"][idx]
    auction = o["to_close"][idx] & (o["algo"][idx] == ALGOS.index("VWAP")) & (filled >= 200)
    a_qty = np.clip(np.round(filled * o["auction_share"][idx] / 100) * 100, 100, filled - 100)
    o["auction_qty"][idx] = np.where(auction, a_qty, 0).astype(np.int64)
    return o


def _own_fills(day: Day, orders: dict[str, np.ndarray], idx: np.ndarray) -> dict[int, dict[str, np.ndarray]]:
    """Each order's child fills under ``orders`` (orders ``idx`` changed): one schedule draw for every order whose
    continuous quantity is unchanged (the day stream's draws then sit at the same positions), one per order
    otherwise (only that order changed)."""
    cont_new = orders["filled"][idx] - orders["auction_qty"][idx]
    cont_old = day.orders["filled"][idx] - day.orders["auction_qty"][idx]
    rng_fills = lambda: _rng(day.cfg.seed, S_FILLS, day.t)  # noqa: E731 - the day's fill stream, from its start
    out: dict[int, dict[str, np.ndarray]] = {}
    keep = idx[cont_new == cont_old]
    if len(keep):
        batch = {k: v.copy() for k, v in day.orders.items()}
        for k in ("algo", "end_s", "to_close", "auction_qty"):
            batch[k][keep] = orders[k][keep]
        f = schedule_fills(batch, day.cfg.fills_per_order, rng_fills(), day.ep)
        bounds = np.searchsorted(f["order"], np.stack([keep, keep + 1]))
        for i, a, b in zip(keep.tolist(), bounds[0].tolist(), bounds[1].tolist(), strict=True):
            out[i] = {k: v[a:b] for k, v in f.items()}
    for i in idx[cont_new != cont_old].tolist():  # loop over the few orders whose cross moved
        single = {k: v.copy() for k, v in day.orders.items()}
        for k in ("algo", "end_s", "to_close", "auction_qty"):
            single[k][i] = orders[k][i]
        f = schedule_fills(single, day.cfg.fills_per_order, rng_fills(), day.ep)
        m = f["order"] == i
        out[i] = {k: v[m] for k, v in f.items()}
    return out


def _mid_row(day: Day, i: int, own_fills: dict[str, np.ndarray], k1: int, perm: float, temp: float) -> np.ndarray:
    """The mid path (USD, T + 1 seconds) of order ``i``'s symbol with order ``i``'s impact and adverse fills
    replaced; every other order's contribution as simulated. Same operations, in the same order, as the
    simulator's row, so an unchanged order gives the simulated row bit for bit."""
    o, f, ip = day.orders, day.fills, day.ip
    j = int(o["sym"][i])
    on = np.flatnonzero(o["sym"] == j)
    k1s = np.floor(o["end_s"][on])
    perms, temps = day.impact["perm_bps"][on].copy(), day.impact["temp_bps"][on].copy()
    at = int(np.searchsorted(on, i))
    k1s[at], perms[at], temps[at] = k1, perm, temp
    adv_slice = SLICES.index(ip.adverse_venue)
    f_sym = o["sym"][f["order"]]
    other = (f_sym == j) & (f["slice"] == adv_slice) & (f["order"] != i)
    own = own_fills["slice"] == adv_slice
    a_order = np.concatenate([f["order"][other], np.full(int(own.sum()), i)])
    a_sec = np.concatenate([f["rel_us"][other], own_fills["rel_us"][own]]) // US_PER_SECOND
    seq = np.argsort(a_order, kind="stable")  # the simulator's (order, time) sequence
    shift = impact_bps_grid(
        1, day.carry[j : j + 1], np.zeros(len(on), np.int64), o["side"][on], np.floor(o["first_s"][on]), k1s,
        perms, temps, np.zeros(len(seq), np.int64), o["side"][a_order[seq]], a_sec[seq], ip,
    )  # fmt: skip
    return day.base[j : j + 1] * (1.0 + shift / 1e4)


def replay(
    day: Day, idx, algo=None, horizon=None, fills: bool = False
) -> pl.DataFrame | tuple[pl.DataFrame, pl.DataFrame]:
    """Replay orders ``idx`` (indices into the day's orders, unique) under ``algo`` (names; None = as done) and
    ``horizon`` (window multiplier in volume time; None = 1, as done). One row per order: ``order_id``, the
    choice (``algo``, ``horizon``, ``actual`` = the choice is what was done), the planted ``pov``, ``perm_bps``,
    ``temp_bps``, the IS components in bps of the paper notional (``is_delay_bps``, ``is_trading_bps``,
    ``is_opportunity_bps``, ``is_fees_bps``, ``is_total_bps``), ``arrival_cost_bps`` and the prices (module
    docstring for definitions and signs). With ``fills=True`` also the replayed fills (``order_id``, ``rel_us``,
    ``qty``, ``liquidity``, ``price``, ``mid`` = the grid mid at the fill's second, ``base_mid`` = its
    unaffected value)."""
    idx = np.atleast_1d(np.asarray(idx, dtype=np.int64))
    if len(np.unique(idx)) != len(idx):
        raise ValueError("replay one choice per order per call (idx must be unique)")
    o0 = day.orders
    algo = np.asarray(ALGOS)[o0["algo"][idx]] if algo is None else np.broadcast_to(np.asarray(algo), idx.shape)
    horizon = np.ones(len(idx)) if horizon is None else np.broadcast_to(np.asarray(horizon, np.float64), idx.shape)
    alt = with_choices(day, idx, algo, horizon)
    imp = order_impact_bps(alt, day.sigma_daily, day.adv, day.volume, day.ip)
    own_fills = _own_fills(day, alt, idx)
    rows, fill_parts = [], []
    for r, i in enumerate(idx.tolist()):  # loop over replayed orders: each needs its symbol's own mid row
        f = own_fills[i]
        mid = _mid_row(day, i, f, int(np.floor(alt["end_s"][i])), float(imp["perm_bps"][i]), float(imp["temp_bps"][i]))
        q = price_quotes(day.quote_draws(int(o0["sym"][i])), mid)
        s = int(o0["side"][i])
        qi = np.searchsorted(q["us"], f["rel_us"], side="right") - 1
        px = price_fills(np.full(len(qi), s), f["qty"], f["liquidity"], q["bid"][qi], q["ask"][qi],
                         q["bid_size"][qi], q["ask_size"][qi], np.round(mid[0, T], 2))  # fmt: skip
        qmid = (q["bid"] + q["ask"]) / 2

        def mid_at(rel_us: int, qmid=qmid, q=q) -> float:
            return float(qmid[np.searchsorted(q["us"], rel_us, side="right") - 1])

        Q, filled = int(o0["qty"][i]), int(f["qty"].sum())
        p0 = mid_at(int(o0["start_s"][i] * US_PER_SECOND))
        dmid = mid_at(int(day.dec_rel_us[i]))
        pd_ = round(dmid, 4) if day.quant[i] else dmid
        last = int(f["rel_us"].max())
        end_rel = last + 1000 if filled == Q else max(int(alt["end_s"][i] * US_PER_SECOND), last + 1000)
        pn = mid_at(end_rel)
        notional = f["qty"] * px
        fees = np.round(day.commission_cps[i] * f["qty"] / 100.0, 2).sum()
        if s < 0:
            fees += np.round(notional * day.ep.sec_fee_rate + np.minimum(f["qty"] * day.ep.taf_per_share, day.ep.taf_cap), 2).sum()  # fmt: skip
        paper = pd_ * Q
        parts = {
            "is_delay_bps": s * (p0 - pd_) * Q,
            "is_trading_bps": s * (notional.sum() - p0 * filled),
            "is_opportunity_bps": s * (pn - p0) * (Q - filled),
            "is_fees_bps": float(fees),
        }
        avg = notional.sum() / filled
        rows.append({
            "order_id": str(day.order_id[i]), "idx": i, "symbol": str(day.symbols[o0["sym"][i]]), "side": s,
            "algo": str(algo[r]), "horizon": float(horizon[r]),
            "actual": bool(algo[r] == ALGOS[o0["algo"][i]] and horizon[r] == 1.0),
            "order_qty": Q, "filled_qty": filled, "fill_count": len(qi), "end_s": float(alt["end_s"][i]),
            "pov": float(imp["pov"][i]), "perm_bps": float(imp["perm_bps"][i]), "temp_bps": float(imp["temp_bps"][i]),
            "decision_price": pd_, "arrival_price": p0, "end_price": pn, "avg_fill_price": avg,
            "paper_notional": paper,
            **{k: v / paper * BPS for k, v in parts.items()},
            "is_total_bps": sum(parts.values()) / paper * BPS,
            "arrival_cost_bps": s * (avg - p0) / p0 * BPS,
        })  # fmt: skip
        if fills:
            sec = f["rel_us"] // US_PER_SECOND
            fill_parts.append(pl.DataFrame({
                "order_id": [str(day.order_id[i])] * len(qi), "rel_us": f["rel_us"], "qty": f["qty"],
                "liquidity": f["liquidity"], "slice": f["slice"], "price": px, "mid": mid[0, sec],
                "base_mid": day.base[o0["sym"][i], sec],
            }))  # fmt: skip
    out = pl.DataFrame(rows)
    if fills:
        return out, pl.concat(fill_parts) if fill_parts else pl.DataFrame()
    return out
