"""Benchmark: training each cost model (I-Star, Almgren, the learned model) on N orders, and pre-trade latency.

The orders are synthetic (drawn from the Almgren power law the simulator plants, with Student-t noise) so the
figure measures the fit, not the TCA (``benchmarks/tca.py`` times that). Per model, in this process:

(a) first fit:  compile (jit of the solver / training loop) + run, with the bootstrap for the impact models
    (above ``impact_models.BOOT_MAX_ROWS`` rows an m-out-of-n bootstrap of 50K-row resamples)
(b) warm fit:   the same fit again (the impact models' compiled solvers are cached by shape; the learned model's
    training loop is compiled per fit, so (a) and (b) are close)
(c) impact models: the point fit alone (warm), to separate it from the ``--boot`` resamples
(d) pre-trade:  one order (warm, median of 50) and 20K orders at once (warm)
(e) frontier:   one order across 8 horizons (warm, median of 50)
Peak memory is the process's peak RSS after each model (it only grows: read the increments).

Figures to read, not a test.

    .venv/bin/python benchmarks/train.py [--orders 20000] [--boot 100] [--models istar almgren learned]
    .venv/bin/python benchmarks/train.py --orders 1000000        # issue 8 item 9

Targets (issue 8): retrain under 60 s on 1M orders on the 2-core CPU, one estimate under 50 ms warm. The machine
is shared: print ``uptime`` with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from analytics import cost_model  # noqa: E402
from analytics import impact_models as im  # noqa: E402

LATENCY_ORDERS = 20_000


def synthetic(n: int, seed: int = 0) -> pl.DataFrame:
    """n orders over 250 days: Almgren law (permanent 0.25 sigma sqrt(X/ADV), temporary 0.15 m[algo] sigma
    sqrt(POV / (1 - POV)), LIQSEEK m = 1.6) + Student-t(4) noise of 0.3 sigma; urgency from POV as the simulator sets it."""
    rng = np.random.default_rng(seed)
    x = np.exp(rng.uniform(math.log(1e-4), math.log(0.1), n))
    pov = np.exp(rng.uniform(math.log(0.02), math.log(0.3), n))
    sig = rng.uniform(0.01, 0.04, n)
    algo = rng.choice(["VWAP", "TWAP", "POV", "IS", "LIQSEEK"], n)
    mult = np.where(algo == "LIQSEEK", 1.6, 1.0)
    s = sig * 1e4
    perm, temp = 0.25 * s * np.sqrt(x), 0.15 * mult * s * np.sqrt(pov / (1 - pov))  # ATHL's trade rate
    noise = lambda: 0.3 * s * rng.standard_t(4, n)  # noqa: E731 - about the simulator's mid noise
    t0 = dt.datetime(2026, 1, 5, 14, 35, tzinfo=dt.UTC)
    arrival = (np.sort(rng.integers(0, 250, n)) * 86_400 + rng.integers(0, 380 * 60, n)) * 1_000_000
    return pl.DataFrame({
        "arrival_ts": pl.Series(arrival).cast(pl.Duration("us")) + t0, "algo": algo, "exec_adv": x,
        "size_pct_adv": x, "pov": pov, "sigma_daily": sig, "daily_volatility": sig,
        "urgency": np.where(pov > 0.12, "HIGH", np.where(pov < 0.04, "LOW", "MEDIUM")),
        "spread_at_arrival_bps": rng.uniform(1, 20, n),
        "permanent_impact_bps": perm + noise(), "temporary_impact_bps": temp + noise(),
        "impact_cost_bps": perm / 2 + temp + noise(), "filled_notional": rng.lognormal(12, 1, n),
    }).with_columns(pl.col("filled_notional").alias("paper_notional"))  # fmt: skip


CPU = {}  # the last timed call's CPU seconds (all threads): on a shared machine wall time is not the work


def timed(f):
    t, c = time.perf_counter(), time.process_time()
    out = f()
    CPU["last"] = time.process_time() - c
    return out, time.perf_counter() - t


def cpu() -> str:
    return f"(cpu {CPU['last']:.1f} s)"


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def impact(tf: pl.DataFrame, model: str, boot: int) -> None:
    fit, t_first = timed(lambda: im.fit(tf, model, n_boot=boot))
    c_first = cpu()
    _, t_warm = timed(lambda: im.fit(tf, model, n_boot=boot))
    c_warm = cpu()
    _, t_point = timed(lambda: im.fit(tf, model, n_boot=0))
    print(f"{model:8s} fit+bootstrap first {t_first:6.2f} s {c_first}   warm {t_warm:6.2f} s {c_warm}   point fit "
          f"only (warm) {t_point:5.2f} s {cpu()}   peak RSS {peak_gb():.2f} GB")  # fmt: skip
    ks = list(fit.params)[:4]
    print("         " + "  ".join(f"{k}={fit.params[k]:.3f} [{fit.intervals[k][0]:.3f}, {fit.intervals[k][1]:.3f}]"
                                  for k in ks))  # fmt: skip
    one = pl.DataFrame({"size_adv": [0.02], "sigma_daily": [0.02], "pov": [0.1], "algo": ["VWAP"]})
    im.pretrade_estimate(fit, one)
    lat = [timed(lambda: im.pretrade_estimate(fit, one))[1] for _ in range(50)]
    batch = tf.head(LATENCY_ORDERS).select("exec_adv", "sigma_daily", "pov", "algo")
    im.pretrade_estimate(fit, batch)
    _, t_batch = timed(lambda: im.pretrade_estimate(fit, batch))
    fr = [timed(lambda: im.frontier(fit, 0.02, 0.02, algo="VWAP"))[1] for _ in range(50)]
    print(f"         pre-trade one order {statistics.median(lat) * 1e3:6.2f} ms (warm median)   "
          f"{batch.height} orders {t_batch * 1e3:7.1f} ms   frontier {statistics.median(fr) * 1e3:6.2f} ms")  # fmt: skip


def learned(tf: pl.DataFrame) -> None:
    cfg = cost_model.CostModelConfig()
    model, t_first = timed(lambda: cost_model.fit(tf, cfg))
    c_first = cpu()
    _, t_warm = timed(lambda: cost_model.fit(tf, cfg))
    print(f"learned  fit first {t_first:6.2f} s {c_first}   warm {t_warm:6.2f} s {cpu()}   peak RSS {peak_gb():.2f} GB   "
          f"(batch {min(cfg.batch_size, model.split['train_rows'])}, interval z "
          f"{model.interval_z:.2f}, mean correction weight {model.mean_weight})")  # fmt: skip
    one = tf.head(1)
    cost_model.predict(model, one)
    lat = [timed(lambda: cost_model.predict(model, one))[1] for _ in range(50)]
    batch = tf.head(LATENCY_ORDERS)
    cost_model.predict(model, batch)
    p, t_batch = timed(lambda: cost_model.predict(model, batch))
    y = batch["impact_cost_bps"].to_numpy()
    cov = np.mean((y >= p["cost_lo_bps"].to_numpy()) & (y <= p["cost_hi_bps"].to_numpy()))
    print(f"         pre-trade one order {statistics.median(lat) * 1e3:6.2f} ms (warm median)   "
          f"{batch.height} orders {t_batch * 1e3:7.1f} ms   (in-sample 90% coverage {cov:.3f})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=20_000)
    ap.add_argument("--boot", type=int, default=100)
    ap.add_argument("--models", nargs="+", default=["istar", "almgren", "learned"])
    a = ap.parse_args()
    tf, t_gen = timed(lambda: synthetic(a.orders))
    print(f"{a.orders} orders ({t_gen:.1f} s to draw), {a.boot} bootstrap resamples, {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")  # fmt: skip
    for model in a.models:
        learned(tf) if model == "learned" else impact(tf, model, a.boot)
    print(f"peak RSS {peak_gb():.2f} GB   load average after {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
