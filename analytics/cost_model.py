"""A learned pre-trade cost model in JAX: a structured square-root-law offset, corrected by a small heteroscedastic
MLP (residual learning), with a conformally calibrated 90% interval.

Target (default ``impact_cost_bps``, the same column the parametric models fit, see
``analytics.impact_models.training_frame``): the fills' prevailing mids against the arrival mid, per filled
notional, in bps, positive = cost (EVENTS.md); spread and fees excluded, price drift while the order works
included. ``target="is_total_bps"`` (Perold IS per paper notional) is still accepted. The target is winsorised at
``clip_bps`` for training only (evaluation uses the raw value).

Model, in bps: an additive, structured offset (the square-root law of Almgren et al. 2005 / Kissell 2013 plus the
temporary impact's scaling with sigma per algo and per urgency, urgency being the pre-trade proxy of the
participation), which a small network corrects (residual learning):
  offset(x) = c0 + c1 * sigma_bps * sqrt(size / ADV) + sigma_bps * (a[algo] + u[urgency])
              fitted on the training part by least absolute deviations (``"laplace"``) or least squares
  mean(x)   = offset(x) + s_y * f_mu(x)         f = MLP(tanh) on the standardised inputs, output layer starts at 0
  scale(x)  = s_y * exp(f_log_s(x))             heteroscedastic: wider for noisier orders
so the network starts exactly at the offset and only moves away from it where the training orders say so, with
early stopping on the ``validation_share`` of the orders (whole UTC days) that follow the training ones by arrival
time; its mean correction is then weighted (0, 1/4, ..., 1) by what lowers those validation orders' MAE. On the
simulated desks (8K and 16K orders) that weight comes out 0: the structured offset carries the mean, the network the heteroscedastic scale. s_y is the
standard deviation of the offset's training residual. Loss: ``"laplace"`` negative log-likelihood (default: the
location is the conditional median, which is what minimises the MAE the model is judged on; ``cost_std_bps`` =
sqrt(2) b) or ``"gaussian"`` (the conditional mean, ``cost_std_bps`` = sigma).

Interval: ``mean ± z * scale`` where z is calibrated on the latest ``calibration_share`` of the orders (whole UTC
days, after the validation days: orders that neither trained the network nor chose when it stopped or how much of
its mean is kept, so their scores are exchangeable with later orders'; split conformal prediction on the
normalised residual |y - mean| / scale, y unclipped; Vovk et al. 2005, Lei et al. 2018): the ceil((n + 1) 0.9) / n
quantile, so a 90% interval holds about 90% of later outcomes whatever the noise's shape (the Gaussian 1.645
assumes it; simulated costs have fat tails). ``CostModel.split`` records the three parts.

Inputs (pre-trade only, no look-ahead: nothing realised during or after the order):
- ``size_pct_adv`` (order quantity / 20-day ADV from prior days; decimal) as log and square root,
- ``daily_volatility`` (decimal, prior 20 days) in bps, and the square-root-law regressor
  sigma_bps * sqrt(size / ADV),
- ``spread_at_arrival_bps`` (quoted spread at arrival), time of day (fraction of the session),
- one-hot ``algo`` and ``urgency`` (the choices a trader makes, so the model can price them).
Realised participation, duration or fill counts are deliberately left out: they are outcomes.

Weights: ``"equal"`` (default: the evaluation's MAE counts orders, and the desk's notionals span six orders of
magnitude, so notional weights leave a few orders steering the fit) or ``"notional"`` (paper notional, normalised
to mean 1). Training: AdamW (optax), jit-compiled, seeded (the same data and seed give the same parameters);
full batches up to ``batch_size`` training orders, seeded minibatches of that size above it (1M orders train in
seconds, not minutes).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl

from analytics.conventions import BPS

Z90 = 1.6448536269514722  # two-sided 90% normal interval (the interval of models saved before calibration)
CHUNK = 100  # optimisation steps between two validation checks
NUMERIC = ("log_size", "sqrt_size", "vol_bps", "sqrt_law", "spread_bps", "time_of_day")
CATEGORICAL = ("algo", "urgency")
SESSION_OPEN_MIN, SESSION_MIN = 9 * 60 + 30, 390  # New York regular session
LAPLACE_SD = math.sqrt(2.0)  # sd of a Laplace variable of scale 1


@dataclass(frozen=True)
class CostModelConfig:
    hidden: tuple[int, ...] = (16,)
    steps: int = 3000  # at most; training stops when the validation loss has not improved for `patience` chunks
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    validation_share: float = 0.1  # the orders (whole days) after the training ones: early stopping, mean weight
    calibration_share: float = 0.1  # the latest orders (whole days): the interval's conformal calibration only
    patience: int = 3
    clip_bps: float = 500.0
    target: str = "impact_cost_bps"
    seed: int = 0
    residual: bool = True  # the structured offset (square-root law, sigma x algo, sigma x urgency) the network corrects
    loss: str = "laplace"  # or "gaussian"
    weights: str = "equal"  # or "notional"
    level: float = 0.90  # the interval's coverage, calibrated on the calibration days
    batch_size: int = 16384  # full batch up to this many training orders, minibatches above


@dataclass
class CostModel:
    """A fitted model: network weights, the input standardisation, the category levels seen in training, the
    offset coefficients (bps; see offset_design) and the calibrated interval multiplier."""

    cfg: CostModelConfig
    params: list[dict[str, list]]
    x_mean: list[float]
    x_std: list[float]
    levels: dict[str, list[str]]
    y_scale: float
    train_rows: int
    columns: list[str] = field(default_factory=list)
    offset: list[float] = field(default_factory=lambda: [0.0])
    interval_z: float = Z90
    mean_weight: float = 1.0  # the weight of the network's mean correction (chosen on the validation orders)
    split: dict = field(default_factory=dict)  # rows and first arrival of the validation and calibration parts

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> CostModel:
        raw = json.loads(text)
        cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in raw["cfg"].items()}
        if "residual" not in cfg:  # saved before the offset existed: a plain MLP on total IS
            cfg |= {
                "residual": False,
                "loss": "gaussian",
                "weights": "notional",
                "target": cfg.get("target", "is_total_bps"),
            }
        raw["cfg"] = CostModelConfig(**cfg)
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


SQRT_LAW_COL = NUMERIC.index("sqrt_law")
VOL_COL = NUMERIC.index("vol_bps")
MEAN_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # candidate weights of the network's mean correction
LAD_ITERATIONS = 40  # IRLS steps of the least-absolute-deviations offset (converges to ~1e-3 bps in ~20)


def offset_design(x: np.ndarray, names: list[str]) -> np.ndarray:
    """The offset's regressors from a :func:`design` matrix: 1, sigma_bps * sqrt(size / ADV), and sigma_bps times
    each algo and urgency indicator (temporary impact scales with sigma and with the algo and participation, of
    which urgency is the pre-trade proxy: Almgren et al. 2005)."""
    vol = x[:, VOL_COL : VOL_COL + 1]
    cats = [i for i, n in enumerate(names) if "=" in n]
    return np.concatenate([np.ones((len(x), 1)), x[:, SQRT_LAW_COL : SQRT_LAW_COL + 1], vol * x[:, cats]], axis=1)


def fit_offset(f: np.ndarray, y: np.ndarray, lad: bool = True) -> list[float]:
    """Coefficients of y ~ f: least squares, then (``lad``) least absolute deviations by iteratively reweighted
    least squares with weights 1 / max(|r|, 1 bps) (so exactly: Huber's M-estimate with delta = 1 bps, LAD for
    every residual beyond 1 bp); minimum-norm where indicators are collinear."""
    coef, *_ = np.linalg.lstsq(f, y, rcond=None)
    for _ in range(LAD_ITERATIONS if lad else 0):
        sw = np.sqrt(1.0 / np.maximum(np.abs(y - f @ coef), 1.0))
        coef, *_ = np.linalg.lstsq(f * sw[:, None], y * sw, rcond=None)
    return [float(c) for c in coef]


def _offset(model_offset: list[float], x: np.ndarray, names: list[str]) -> np.ndarray:
    return offset_design(x, names)[:, : len(model_offset)] @ np.asarray(model_offset)


def _init(key, sizes: list[int], zero_last: bool = False):
    import jax

    params = []
    for i, (m, n) in enumerate(itertools.pairwise(sizes)):
        k = jax.random.fold_in(key, i)
        w = jax.random.normal(k, (m, n)) * math.sqrt(2.0 / m)
        if zero_last and i == len(sizes) - 2:
            w = w * 0.0  # the correction starts at 0: the model starts as its offset
        params.append({"w": w, "b": jax.numpy.zeros(n)})
    return params


def _forward(params, x):
    import jax.numpy as jnp

    h = x
    for layer in params[:-1]:
        h = jnp.tanh(h @ layer["w"] + layer["b"])
    out = h @ params[-1]["w"] + params[-1]["b"]
    return out[:, 0], jnp.clip(out[:, 1], -7.0, 7.0)  # mean, log scale (scaled units)


def _nll(kind: str):
    import jax.numpy as jnp

    if kind == "laplace":
        return lambda y, mu, log_s: log_s + jnp.abs(y - mu) * jnp.exp(-log_s)
    if kind == "gaussian":
        return lambda y, mu, log_s: log_s + 0.5 * ((y - mu) * jnp.exp(-log_s)) ** 2
    raise ValueError(f"unknown loss {kind!r} (gaussian | laplace)")


def conformal_z(abs_z: np.ndarray, level: float) -> float:
    """Split-conformal multiplier: the ceil((n + 1) level)-th smallest of the normalised absolute residuals
    (infinite when n is too small for the level)."""
    n = len(abs_z)
    k = math.ceil((n + 1) * level)
    return float(np.sort(abs_z)[k - 1]) if 0 < k <= n else float("inf")


def fit(df: pl.DataFrame, cfg: CostModelConfig | None = None) -> CostModel:
    """Fit on the orders of ``df`` that have a finite target (and, for notional weights, a paper notional)."""
    import jax
    import jax.numpy as jnp
    import optax

    cfg = cfg or CostModelConfig()
    df = df.filter(pl.col(cfg.target).is_not_null() & pl.col(cfg.target).is_finite())
    if cfg.weights == "notional":
        df = df.filter(pl.col("paper_notional") > 0)
    if df.height < 20:
        raise ValueError(f"need at least 20 orders with {cfg.target} to fit, got {df.height}")
    df = df.sort("arrival_ts")
    x, levels, names = design(df)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    xs = (x - mean) / std
    y = df[cfg.target].to_numpy().astype(np.float64).clip(-cfg.clip_bps, cfg.clip_bps)
    w = df["paper_notional"].to_numpy().astype(np.float64) if cfg.weights == "notional" else np.ones(df.height)
    w = w / w.mean()
    # time-ordered parts (the model is judged on later orders, never on a random sample of its own past): train,
    # then validation days (early stopping, the mean weight), then calibration days (the conformal interval only:
    # scores on orders that chose nothing about the model stay exchangeable with the next orders')
    cut, cal = time_split(df["arrival_ts"], cfg.validation_share, cfg.calibration_share)
    offset = fit_offset(offset_design(x[:cut], names), y[:cut], cfg.loss == "laplace") if cfg.residual else [0.0]
    r = y - _offset(offset, x, names)
    y_scale = float(np.std(r[:cut])) or 1.0
    f32 = jnp.float32
    tr = (jnp.asarray(xs[:cut], f32), jnp.asarray(r[:cut] / y_scale, f32), jnp.asarray(w[:cut], f32))
    va = (jnp.asarray(xs[cut:cal], f32), jnp.asarray(r[cut:cal] / y_scale, f32), jnp.asarray(w[cut:cal], f32))
    nll = _nll(cfg.loss)

    def loss(p, data):
        xb, yb, wb = data
        mu, log_s = _forward(p, xb)
        return jnp.sum(wb * nll(yb, mu, log_s)) / jnp.sum(wb)

    opt = optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay)
    key = jax.random.PRNGKey(cfg.seed)
    params = _init(key, [xs.shape[1], *cfg.hidden, 2], zero_last=cfg.residual)
    state = opt.init(params)
    batch = cut if cut <= cfg.batch_size else cfg.batch_size

    @jax.jit
    def run(params, state, k, tr, va):
        def step(carry, i):
            p, s = carry
            if batch < tr[0].shape[0]:  # static: seeded minibatch, drawn with replacement
                idx = jax.random.randint(jax.random.fold_in(k, i), (batch,), 0, tr[0].shape[0])
                data = tuple(a[idx] for a in tr)
            else:
                data = tr
            g = jax.grad(loss)(p, data)
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), None

        (params, state), _ = jax.lax.scan(step, (params, state), jnp.arange(CHUNK))
        return params, state, loss(params, va)

    best, best_loss, stale = params, float(loss(params, va)) if cfg.residual else float("inf"), 0
    for c in range(max(cfg.steps // CHUNK, 1)):
        params, state, val = run(params, state, jax.random.fold_in(key, 10_000 + c), tr, va)
        if float(val) < best_loss - 1e-4:
            best, best_loss, stale = params, float(val), 0
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    params = best
    mu_va = np.asarray(_forward(params, va[0])[0], dtype=np.float64)
    # The likelihood's early stopping is driven mostly by the scale head; the mean's correction is kept only as
    # far as it lowers the validation orders' MAE (its weight chosen on a grid; 0 = the offset alone).
    r_va = r[cut:cal] / y_scale
    weight = min(MEAN_WEIGHTS, key=lambda a: np.mean(np.abs(r_va - a * mu_va))) if cfg.residual else 1.0
    # calibration on the raw target (not the training clip): the interval is judged on raw outcomes
    r_ca = (df[cfg.target].to_numpy()[cal:].astype(np.float64) - _offset(offset, x[cal:], names)) / y_scale
    mu_ca, log_s_ca = (np.asarray(a, dtype=np.float64) for a in _forward(params, jnp.asarray(xs[cal:], f32)))
    z = conformal_z(np.abs(r_ca - weight * mu_ca) * np.exp(-log_s_ca), cfg.level)
    as_lists = [{k: np.asarray(v).tolist() for k, v in layer.items()} for layer in params]
    ts = df["arrival_ts"]
    split = {"train_rows": cut, "validation_rows": cal - cut, "calibration_rows": len(y) - cal,
             "validation_from": str(ts[cut]), "calibration_from": str(ts[cal])}  # fmt: skip
    return CostModel(cfg, as_lists, mean.tolist(), std.tolist(), levels, y_scale, df.height, names, offset, z,
                     float(weight), split)  # fmt: skip


def time_split(arrival: pl.Series, validation_share: float, calibration_share: float) -> tuple[int, int]:
    """Cut points (cut, cal) of time-sorted orders: rows [0, cut) train, [cut, cal) validation, [cal, n)
    calibration. Each cut sits at the first order of a UTC day (the one at or after the share's position; else
    the last day boundary before it) so that no day is split between two parts; with too few days, at the share's
    position itself. Every part keeps at least one order."""
    n = arrival.len()
    day = arrival.dt.date().to_numpy()
    starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])[1:]  # first row of every day but the first

    def snap(pos: int, lo: int, hi: int) -> int:
        later = starts[(starts >= pos) & (starts < hi)]
        earlier = starts[(starts < pos) & (starts > lo)]
        return int(later[0]) if len(later) else int(earlier[-1]) if len(earlier) else pos

    pos_cal = min(max(round(n * (1 - calibration_share)), 2), n - 1)
    cal = snap(pos_cal, 1, n)
    pos_cut = min(max(round(n * (1 - calibration_share - validation_share)), 1), cal - 1)
    cut = snap(pos_cut, 0, cal)
    if not 0 < cut < cal < n:  # days too few or too uneven to keep three parts: the share's positions
        cut, cal = pos_cut, pos_cal
    return cut, cal


def predict(model: CostModel, df: pl.DataFrame) -> pl.DataFrame:
    """Per row of ``df``: ``expected_cost_bps`` (the model's location: mean for the Gaussian loss, median for the
    Laplace), ``cost_std_bps`` and the calibrated interval ``cost_lo_bps`` / ``cost_hi_bps`` (``cfg.level``,
    90% by default), all in bps, positive = cost, of the model's target (``cfg.target``)."""
    import jax.numpy as jnp

    x, _, _ = design(df, model.levels)
    xs = (x - np.asarray(model.x_mean)) / np.asarray(model.x_std)
    params = [{k: jnp.asarray(v) for k, v in layer.items()} for layer in model.params]
    mu, log_s = _forward(params, jnp.asarray(xs))
    mean = (
        _offset(model.offset, x, model.columns) + model.mean_weight * np.asarray(mu, dtype=np.float64) * model.y_scale
    )
    scale = np.exp(np.asarray(log_s, dtype=np.float64)) * model.y_scale
    sd = scale * (LAPLACE_SD if model.cfg.loss == "laplace" else 1.0)
    return pl.DataFrame(
        {
            "expected_cost_bps": mean,
            "cost_std_bps": sd,
            "cost_lo_bps": mean - model.interval_z * scale,
            "cost_hi_bps": mean + model.interval_z * scale,
        }
    )
