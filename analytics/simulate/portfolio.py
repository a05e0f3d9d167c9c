"""Portfolios, their holdings and benchmarks, and the decisions they send to the desk.

Holdings dated D are start-of-day positions: shares(D) = shares(D-1) + signed fills of D-1,
valued at the close of D-1; weight = market_value / portfolio market value (sums to 1).
Benchmarks are capitalisation-weighted (shares outstanding x previous close). Portfolios are
long-only: a day's sells of a name are capped at half the start-of-day position, otherwise
those decisions become buys.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from .universe import TIERS, Universe

STRATEGIES = ("momentum", "value", "event", "rebalance", "stat_arb", "quality")
HORIZON_DAYS = {"momentum": 20, "value": 60, "event": 3, "rebalance": 1, "stat_arb": 5, "quality": 40}
MODEL_ID = {"momentum": "mom-v3", "value": "val-v2", "stat_arb": "sa-v1", "quality": "qual-v1"}
BENCHMARKS = ("BM_ALL", "BM_LARGE")


def make_portfolios(n: int) -> pl.DataFrame:
    """``n`` portfolios cycling through STRATEGIES; even ones benchmarked to BM_ALL (all names),
    odd ones to BM_LARGE (mega and large caps)."""
    strategies = [STRATEGIES[i % len(STRATEGIES)] for i in range(n)]
    return pl.DataFrame(
        {
            "portfolio_id": [f"P{i + 1:02d}" for i in range(n)],
            "name": [f"{s.replace('_', ' ').title()} Fund {i + 1}" for i, s in enumerate(strategies)],
            "strategy": strategies,
            "benchmark_id": [BENCHMARKS[i % 2] for i in range(n)],
            "base_currency": ["USD"] * n,
        }
    )


def benchmark_members(uni: Universe) -> dict[str, np.ndarray]:
    """Boolean membership mask per benchmark id."""
    large = np.isin(uni.tier, [TIERS.index("mega"), TIERS.index("large")])
    return {"BM_ALL": np.ones(uni.n, dtype=bool), "BM_LARGE": large}


def initial_shares(uni: Universe, n_portfolios: int, rng: np.random.Generator) -> np.ndarray:
    """Start-of-first-day positions, shape (P, N), shares >= 0.

    Each portfolio holds ~70% of its benchmark's names with weights ~ cap^0.8 x lognormal tilt
    and a size of a quarter of the universe's daily traded value, so positions dwarf orders.
    """
    members = benchmark_members(uni)
    cap = uni.shares_outstanding * uni.price0
    aum = 0.25 * float((uni.adv * uni.price0).sum())
    shares = np.zeros((n_portfolios, uni.n), dtype=np.int64)
    for p in range(n_portfolios):  # loop over portfolios only
        held = members[BENCHMARKS[p % 2]] & (rng.random(uni.n) < 0.7)
        if not held.any():
            held[np.argmax(cap)] = True
        w = np.where(held, cap**0.8 * np.exp(0.5 * rng.standard_normal(uni.n)), 0.0)
        w = w / w.sum()
        shares[p] = np.where(held, np.maximum(np.floor(w * aum / uni.price0), 1), 0).astype(np.int64)
    return shares


def long_only_sides(
    port: np.ndarray, sym: np.ndarray, side: np.ndarray, qty: np.ndarray, shares: np.ndarray
) -> np.ndarray:
    """Flip a day's sells of (portfolio, symbol) to buys when they exceed half the position."""
    sells = np.zeros(shares.shape)
    np.add.at(sells, (port, sym), np.where(side < 0, qty, 0))
    too_big = sells > 0.5 * shares
    return np.where((side < 0) & too_big[port, sym], 1, side)


def apply_fills(shares: np.ndarray, port: np.ndarray, sym: np.ndarray, signed_qty: np.ndarray) -> np.ndarray:
    """End-of-day positions: start-of-day shares plus signed filled quantity."""
    out = shares.copy()
    np.add.at(out, (port, sym), signed_qty)
    return out


def holdings_frame(
    day: date, shares: np.ndarray, prev_close: np.ndarray, uni: Universe, portfolio_ids: list[str]
) -> pl.DataFrame:
    """Start-of-day holdings rows (positive positions only); weights sum to 1 per portfolio."""
    p_idx, s_idx = np.nonzero(shares > 0)
    qty = shares[p_idx, s_idx]
    mv = qty * prev_close[s_idx]
    total = np.bincount(p_idx, mv, minlength=shares.shape[0])
    return pl.DataFrame(
        {
            "date": [day] * len(p_idx),
            "portfolio_id": np.asarray(portfolio_ids)[p_idx],
            "symbol": uni.symbols[s_idx],
            "weight": mv / total[p_idx],
            "quantity": qty.astype(np.int64),
            "market_value": np.round(mv, 2),
            "currency": ["USD"] * len(p_idx),
        }
    )


def benchmark_frame(day: date, prev_close: np.ndarray, uni: Universe) -> pl.DataFrame:
    """Cap-weighted benchmark weights at the start of ``day``; sum to 1 per benchmark."""
    parts = []
    for bm, mask in benchmark_members(uni).items():
        cap = np.where(mask, uni.shares_outstanding * prev_close, 0.0)
        idx = np.flatnonzero(mask)
        parts.append(
            pl.DataFrame(
                {
                    "date": [day] * len(idx),
                    "benchmark_id": [bm] * len(idx),
                    "symbol": uni.symbols[idx],
                    "weight": cap[idx] / cap.sum(),
                }
            )
        )
    return pl.concat(parts)
