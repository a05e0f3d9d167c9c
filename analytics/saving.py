"""Realised saving of following a cost model's algo/horizon recommendation, measured on the desk simulator.

Walk-forward (issue 8, item 3): for each simulated day d >= ``train_days``, the Almgren et al. (2005) power law with
per-algo temporary multipliers (analytics/impact_models.py) is fitted on the stored TCA of the days before d only;
each order of day d gets the choice (algo, horizon) with the lowest expected cost (plus ``risk_aversion`` x timing
risk, 0 by default); the order is replayed under that choice on the same exogenous market path
(analytics/simulate/replay.py) and under what was actually done.

Expected cost of a candidate (bps of notional, positive = cost, spread excluded as in impact_models):
``permanent / 2 + eta * m[algo] * sigma_daily_bps * (pov / (1 - pov))^beta`` with pov = Q / (ADV x volume share of the window x
horizon + Q): the order's expected participation over its window [NEW, end] in volume time (the intraday volume
profile, ``market.intraday_curve``, with the closing cross for orders to the close), Q the order quantity, ADV and
sigma_daily the order's point-in-time TCA inputs (20 days before its day). Timing risk (Almgren & Chriss 2000, as
``impact_models.frontier``): sigma_daily_bps * sqrt(T / 3), T = the window's share of a day's volume x horizon.

Saving per order = realised ``is_total_bps`` as done - realised ``is_total_bps`` under the recommendation (Perold IS
in bps of the paper notional, replay.py's docstring; positive = the recommendation was cheaper). Averages:
equal-weighted and weighted by paper notional, each with a 95% interval from the sandwich standard error
(``tca.weighted_mean_ci``; orders treated as independent: a replay's difference is mostly the order's own schedule
and spread noise, the shared market path cancels in the pair).

``planted_bound_bps``: what the planted temporary multipliers allow from algo choice alone, in expectation:
temp_bps x (1 - m_min / m[algo]) per order (LIQSEEK's x1.6 against 1.0: 37.5% of a LIQSEEK order's planted
temporary impact; 0 for every other algo).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from analytics import impact_models as im
from analytics import tca
from analytics.conventions import BPS
from analytics.filters import Filters
from analytics.simulate.config import SimConfig
from analytics.simulate.execution import ALGOS
from analytics.simulate.market import window_volume_share
from analytics.simulate.replay import Day, day_state, replay


@dataclass(frozen=True)
class SavingConfig:
    """train_days: days fitted before the first recommended day (expanding window after it); algos, horizons: the
    candidate choices (horizon = window multiplier in volume time, 1 = as done); risk_aversion: lambda of
    cost + lambda x timing risk (0 = lowest expected cost); weights and n_boot: of the Almgren fit."""

    train_days: int = 2
    algos: tuple[str, ...] = ALGOS
    horizons: tuple[float, ...] = (1.0,)
    risk_aversion: float = 0.0
    weights: str = "equal"
    n_boot: int = 0


def fit_almgren(history: pl.DataFrame, cfg: SavingConfig) -> im.ImpactFit:
    """The desk's Almgren fit with per-algo multipliers on its TCA rows ``history``."""
    return im.fit_almgren(im.training_frame(history), weights=cfg.weights, n_boot=cfg.n_boot)


def planted_fit(cfg: SavingConfig | None = None, ip=None) -> im.ImpactFit:
    """The simulator's planted law as an Almgren :class:`~analytics.impact_models.ImpactFit` (alpha = beta = 1/2,
    gamma, eta and the algo multipliers of ``ImpactParams``): the recommendation a perfectly specified model
    would make, the reference against which the desk's fitted model is judged."""
    from analytics.simulate.market import ImpactParams

    ip = ip or ImpactParams()
    p = {"gamma": ip.gamma, "alpha": 0.5, "eta": ip.eta, "beta": 0.5, **{f"mult_{a}": m for a, m in ip.algo_multiplier}}
    return im.ImpactFit("almgren", p, {k: (v, v) for k, v in p.items()}, 0, float("nan"), source="planted")


def candidates(orders: pl.DataFrame, fit: im.ImpactFit, cfg: SavingConfig) -> pl.DataFrame:
    """Expected cost of every (order, algo, horizon): ``orders`` has ``order_id``, ``order_qty``, ``adv``,
    ``daily_volatility`` (decimal per day), ``share`` (``market.window_volume_share``). Adds ``pov``, ``expected_cost_bps``,
    ``timing_risk_bps`` and ``objective_bps`` (= cost + risk_aversion x risk), all bps."""
    grid = (
        pl.DataFrame({"algo": list(cfg.algos)})
        .join(pl.DataFrame({"horizon": list(cfg.horizons)}), how="cross", maintain_order="left_right")
        .with_row_index("cand")  # the candidates' order: a tie goes to the first
    )
    c = orders.join(grid, how="cross").with_columns(
        pov=pl.col("order_qty") / (pl.col("adv") * pl.col("share") * pl.col("horizon") + pl.col("order_qty")),
        size_adv=pl.col("order_qty") / pl.col("adv"),
        sigma_daily=pl.col("daily_volatility"),
    )
    est = im.predict(fit, c.select("size_adv", "sigma_daily", "pov", "algo"))
    risk = c["sigma_daily"] * BPS * (c["share"] * c["horizon"] / 3).sqrt()
    return c.with_columns(
        expected_cost_bps=est["expected_cost_bps"],
        timing_risk_bps=risk,
        objective_bps=est["expected_cost_bps"] + cfg.risk_aversion * risk,
    )


def recommend(cands: pl.DataFrame, actual_algo: pl.DataFrame) -> pl.DataFrame:
    """Per order the candidate with the lowest ``objective_bps``; a tie keeps what was done (the actual algo at
    horizon 1), else the first candidate in ``SavingConfig.algos`` order. ``actual_algo``: order_id, actual_algo."""
    c = (
        cands.with_row_index("_row")
        .join(actual_algo, on="order_id")
        .with_columns(
            done=(pl.col("algo") == pl.col("actual_algo")) & (pl.col("horizon") == 1.0),
            rank=pl.col("cand") if "cand" in cands.columns else pl.col("_row"),
        )
    )
    best = c.with_columns(m=pl.col("objective_bps").min().over("order_id")).filter(
        pl.col("objective_bps") <= pl.col("m") * (1 + 1e-12)
    )
    return (
        best.sort("order_id", "done", "rank", descending=[False, True, False])
        .group_by("order_id", maintain_order=True)
        .first()
        .select("order_id", "algo", "horizon", "pov", "expected_cost_bps", "objective_bps")
    )


def mean_ci(df: pl.DataFrame, x: str, w: str | None = None) -> dict:
    """Mean of column ``x`` (weighted by column ``w``, or equal) with its 95% interval and n (tca.weighted_mean_ci)."""
    weight = pl.col(w) if w else pl.lit(1.0)
    return df.select(tca.weighted_mean_ci(pl.col(x), weight)).row(0, named=True)


def _day_orders(day: Day, history: pl.DataFrame) -> pl.DataFrame:
    o = day.orders
    sim = pl.DataFrame({
        "order_id": day.order_id, "idx": np.arange(len(o["qty"])), "actual_algo": np.asarray(ALGOS)[o["algo"]],
        "share": window_volume_share(o["start_s"], o["end_s"], o["to_close"]),
    })  # fmt: skip
    inputs = history.select("order_id", "order_qty", "adv", "daily_volatility")
    return sim.join(inputs, on="order_id", how="left")


@dataclass
class SavingResult:
    orders: pl.DataFrame  # one row per recommended order: choice, expected and realised costs, saving
    summary: dict
    fits: dict  # day -> ImpactFit used for it


def measure(
    lake,
    sim: SimConfig,
    cfg: SavingConfig = SavingConfig(),
    fit_fn: Callable[[pl.DataFrame, SavingConfig], im.ImpactFit] = fit_almgren,
    con=None,
) -> SavingResult:
    """Walk-forward saving of the model's recommendation over the simulated desk ``sim`` ingested in ``lake`` with
    its TCA stored (``tca.ensure``). ``fit_fn(history, cfg)``: the model fitted on the TCA rows before a day."""
    con = con or lake.connect()
    history = tca.load_orders(lake, con, Filters())
    history = history.with_columns(day=pl.col("arrival_ts").dt.date())
    parts, fits = [], {}
    for d in range(cfg.train_days, sim.days):  # walk forward: loop over days
        day = day_state(sim, d)
        fit = fit_fn(history.filter(pl.col("day") < day.date), cfg)
        fits[day.date] = fit
        orders = _day_orders(day, history.filter(pl.col("day") == day.date))
        ok = orders.drop_nulls(["order_qty", "adv", "daily_volatility"]).filter(pl.col("adv") > 0)
        rec = recommend(candidates(ok, fit, cfg), ok.select("order_id", "actual_algo"))
        rec = ok.select("order_id", "idx", "actual_algo").join(rec, on="order_id")
        actual = replay(day, rec["idx"].to_numpy())
        alt = pl.concat([
            replay(day, g["idx"].to_numpy(), g["algo"][0], g["horizon"][0])
            for _, g in rec.group_by("algo", "horizon", maintain_order=True)
        ])  # fmt: skip
        parts.append(
            rec.join(
                actual.select(
                    "order_id", "paper_notional", "pov", "temp_bps", pl.col("is_total_bps").alias("actual_bps"),
                    pl.col("arrival_cost_bps").alias("actual_arrival_bps"),
                ),
                on="order_id",
            )
            .join(
                alt.select(
                    "order_id", pl.col("is_total_bps").alias("replayed_bps"),
                    pl.col("arrival_cost_bps").alias("replayed_arrival_bps"), pl.col("pov").alias("replayed_pov"),
                ),
                on="order_id",
            )
            .with_columns(day=pl.lit(day.date))
        )  # fmt: skip
    if not parts:
        raise ValueError("no day to recommend on: sim.days must exceed cfg.train_days")
    out = pl.concat(parts).with_columns(
        saving_bps=pl.col("actual_bps") - pl.col("replayed_bps"),
        saving_arrival_bps=pl.col("actual_arrival_bps") - pl.col("replayed_arrival_bps"),
        switched=(pl.col("algo") != pl.col("actual_algo")) | (pl.col("horizon") != 1.0),
    )
    return SavingResult(out, summarize(out), fits)


def planted_bound(orders: pl.DataFrame, ip=None) -> pl.Expr:
    """Expected saving (bps) the planted multipliers allow from algo choice alone, per order (module docstring)."""
    from analytics.simulate.market import ImpactParams

    mult = dict((ip or ImpactParams()).algo_multiplier)
    m_min = min(mult.values())
    factor = pl.col("actual_algo").replace_strict({a: 1 - m_min / m for a, m in mult.items()}, return_dtype=pl.Float64)
    return pl.col("temp_bps") * factor


def summarize(out: pl.DataFrame) -> dict:
    """Saving figures of a :func:`measure` frame: equal- and notional-weighted means with 95% intervals (bps),
    on every order and on the switched ones; the arrival-cost saving; the planted bound; choices made."""
    bound = out.with_columns(bound=planted_bound(out))
    switched = out.filter(pl.col("switched"))
    return {
        "orders": out.height,
        "switched": switched.height,
        "days": out["day"].n_unique(),
        "saving_bps": mean_ci(out, "saving_bps"),
        "saving_bps_notional": mean_ci(out, "saving_bps", "paper_notional"),
        "saving_switched_bps": mean_ci(switched, "saving_bps") if switched.height else None,
        "saving_arrival_bps": mean_ci(out, "saving_arrival_bps"),
        "planted_bound_bps": mean_ci(bound, "bound"),
        "planted_bound_bps_notional": mean_ci(bound, "bound", "paper_notional"),
        "choices": out.group_by("algo", "horizon").len().sort("len", descending=True).rows(),
    }
