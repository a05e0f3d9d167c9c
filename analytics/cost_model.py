"""A learned pre-trade cost model: a small heteroscedastic MLP in JAX that predicts an order's expected
implementation shortfall and its uncertainty from what is known when the order arrives.

Target: ``is_total_bps`` (Perold IS in bps of paper notional, positive = cost, EVENTS.md), winsorised at
``clip_bps`` for training only (a few runaway orders must not steer the fit; evaluation uses the raw value).
Output per order: ``expected_cost_bps`` (mean) and ``cost_std_bps`` (the predicted standard deviation:
the network's second head is log sigma, trained with the Gaussian negative log-likelihood, so the interval
widens where outcomes are noisier, e.g. for large orders in volatile names), and the 90% interval
``mean ± 1.645 sigma``.

Inputs (pre-trade only, no look-ahead: nothing realised during or after the order):
- ``size_pct_adv`` (order quantity / 20-day ADV from prior days; decimal) as log and square root,
- ``daily_volatility`` (decimal, prior 20 days) in bps, and the square-root-law regressor
  sigma_bps * sqrt(size / ADV) (Almgren et al. 2005; Kissell 2013),
- ``spread_at_arrival_bps`` (quoted spread at arrival), time of day (fraction of the session),
- one-hot ``algo`` and ``urgency`` (the choices a trader makes, so the model can price them).
Realised participation, duration or fill counts are deliberately left out: they are outcomes.

Weights: each order by its paper notional (normalised to mean 1), so the model fits the desk's money, not
its order count. Training: AdamW (optax) on full batches, jit-compiled, seeded (the same data and seed give
the same parameters), with early stopping on the latest 20% of the orders by arrival time.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl

from analytics.conventions import BPS

Z90 = 1.6448536269514722  # two-sided 90% normal interval
CHUNK = 100  # optimisation steps between two validation checks
NUMERIC = ("log_size", "sqrt_size", "vol_bps", "sqrt_law", "spread_bps", "time_of_day")
CATEGORICAL = ("algo", "urgency")
SESSION_OPEN_MIN, SESSION_MIN = 9 * 60 + 30, 390  # New York regular session


@dataclass(frozen=True)
class CostModelConfig:
    hidden: tuple[int, ...] = (16,)
    steps: int = 3000  # at most; training stops when the validation loss has not improved for `patience` chunks
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    validation_share: float = 0.2
    patience: int = 3
    clip_bps: float = 500.0
    target: str = "is_total_bps"
    seed: int = 0


@dataclass
class CostModel:
    """A fitted model: network weights, the input standardisation and the category levels seen in training."""

    cfg: CostModelConfig
    params: list[dict[str, list]]
    x_mean: list[float]
    x_std: list[float]
    levels: dict[str, list[str]]
    y_scale: float
    train_rows: int
    columns: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> CostModel:
        raw = json.loads(text)
        raw["cfg"] = CostModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw["cfg"].items()})
        return CostModel(**raw)


def _numeric(df: pl.DataFrame) -> pl.DataFrame:
    size = pl.col("size_pct_adv").fill_null(0.0).clip(1e-6, 1.0)
    vol = (pl.col("daily_volatility").fill_null(pl.col("daily_volatility").median()) * BPS).fill_null(200.0)
    arrival_ny = pl.col("arrival_ts").dt.convert_time_zone("America/New_York")
    minutes = arrival_ny.dt.hour().cast(pl.Float64) * 60 + arrival_ny.dt.minute().cast(pl.Float64)
    return df.select(
        size.log().alias("log_size"),
        size.sqrt().alias("sqrt_size"),
        vol.alias("vol_bps"),
        (vol * size.sqrt()).alias("sqrt_law"),
        pl.col("spread_at_arrival_bps")
        .fill_null(pl.col("spread_at_arrival_bps").median())
        .fill_null(5.0)
        .alias("spread_bps"),
        ((minutes - SESSION_OPEN_MIN) / SESSION_MIN).clip(0.0, 1.0).alias("time_of_day"),
    )


def design(
    df: pl.DataFrame, levels: dict[str, list[str]] | None = None
) -> tuple[np.ndarray, dict[str, list[str]], list[str]]:
    """The input matrix (numeric columns then one-hot categories), the category levels, and column names.
    Levels come from training; a level unseen in training is all zeros (the base case)."""
    num = _numeric(df)
    levels = levels or {c: sorted(df[c].drop_nulls().unique().to_list()) for c in CATEGORICAL if c in df.columns}
    cols, names = [num.to_numpy().astype(np.float64)], list(NUMERIC)
    for c, lv in levels.items():
        vals = df[c].cast(pl.String).to_numpy() if c in df.columns else np.full(df.height, None)
        cols.append(np.stack([(vals == v).astype(np.float64) for v in lv], axis=1) if lv else np.zeros((df.height, 0)))
        names += [f"{c}={v}" for v in lv]
    return np.concatenate(cols, axis=1), levels, names


def _init(key, sizes: list[int]):
    import jax

    params = []
    for i, (m, n) in enumerate(itertools.pairwise(sizes)):
        k = jax.random.fold_in(key, i)
        params.append({"w": jax.random.normal(k, (m, n)) * math.sqrt(2.0 / m), "b": jax.numpy.zeros(n)})
    return params


def _forward(params, x):
    import jax.numpy as jnp

    h = x
    for layer in params[:-1]:
        h = jnp.tanh(h @ layer["w"] + layer["b"])
    out = h @ params[-1]["w"] + params[-1]["b"]
    return out[:, 0], jnp.clip(out[:, 1], -7.0, 7.0)  # mean, log sigma (scaled units)


def fit(df: pl.DataFrame, cfg: CostModelConfig | None = None) -> CostModel:
    """Fit on the orders of ``df`` that have the target and a paper notional (rows without are skipped)."""
    import jax
    import jax.numpy as jnp
    import optax

    cfg = cfg or CostModelConfig()
    df = df.filter(pl.col(cfg.target).is_not_null() & (pl.col("paper_notional") > 0))
    if df.height < 20:
        raise ValueError(f"need at least 20 orders with {cfg.target} to fit, got {df.height}")
    df = df.sort("arrival_ts")
    x, levels, names = design(df)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    xs = (x - mean) / std
    y = df[cfg.target].to_numpy().clip(-cfg.clip_bps, cfg.clip_bps)
    y_scale = float(np.std(y)) or 1.0
    w = df["paper_notional"].to_numpy()
    w = w / w.mean()
    # early stopping on the latest orders (time-ordered: the model is judged on later orders, never on a
    # random sample of its own past)
    cut = int(len(y) * (1 - cfg.validation_share))
    tr = (jnp.asarray(xs[:cut]), jnp.asarray(y[:cut] / y_scale), jnp.asarray(w[:cut]))
    va = (jnp.asarray(xs[cut:]), jnp.asarray(y[cut:] / y_scale), jnp.asarray(w[cut:]))

    def loss(p, data):
        xb, yb, wb = data
        mu, log_s = _forward(p, xb)
        nll = log_s + 0.5 * ((yb - mu) * jnp.exp(-log_s)) ** 2
        return jnp.sum(wb * nll) / jnp.sum(wb)

    opt = optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay)
    params = _init(jax.random.PRNGKey(cfg.seed), [xs.shape[1], *cfg.hidden, 2])
    state = opt.init(params)

    @jax.jit
    def run(params, state):
        def step(carry, _):
            p, s = carry
            g = jax.grad(loss)(p, tr)
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), None

        (params, state), _ = jax.lax.scan(step, (params, state), None, length=CHUNK)
        return params, state, loss(params, va)

    best, best_loss, stale = params, float("inf"), 0
    for _ in range(max(cfg.steps // CHUNK, 1)):
        params, state, val = run(params, state)
        if float(val) < best_loss - 1e-4:
            best, best_loss, stale = params, float(val), 0
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    params = best
    as_lists = [{k: np.asarray(v).tolist() for k, v in layer.items()} for layer in params]
    return CostModel(cfg, as_lists, mean.tolist(), std.tolist(), levels, y_scale, df.height, names)


def predict(model: CostModel, df: pl.DataFrame) -> pl.DataFrame:
    """Per row of ``df``: ``expected_cost_bps``, ``cost_std_bps`` and the 90% interval ``cost_lo_bps`` /
    ``cost_hi_bps`` (bps of paper notional, positive = cost)."""
    import jax.numpy as jnp

    x, _, _ = design(df, model.levels)
    xs = (x - np.asarray(model.x_mean)) / np.asarray(model.x_std)
    params = [{k: jnp.asarray(v) for k, v in layer.items()} for layer in model.params]
    mu, log_s = _forward(params, jnp.asarray(xs))
    mean = np.asarray(mu) * model.y_scale
    sd = np.exp(np.asarray(log_s)) * model.y_scale
    return pl.DataFrame(
        {
            "expected_cost_bps": mean,
            "cost_std_bps": sd,
            "cost_lo_bps": mean - Z90 * sd,
            "cost_hi_bps": mean + Z90 * sd,
        }
    )
