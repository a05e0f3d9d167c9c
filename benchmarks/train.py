"""Benchmark: fitting the impact models on W1-size data (20K orders) with the bootstrap, and pre-trade latency.

The orders are synthetic (drawn from the Almgren power law the simulator plants, with Student-t noise) so the
figure measures the fit, not the TCA (``benchmarks/tca.py`` times that). Per model, in this process:

(a) first fit:  compile (jit of the robust Levenberg-Marquardt solve and of its vmapped bootstrap) + run
(b) warm fit:   the same fit again (the compiled solvers are cached by shape)
(c) fit without bootstrap (warm), to separate the point fit from the ``--boot`` resamples
(d) pre-trade:  ``pretrade_estimate`` for one order (warm, median of 50) and for all the orders at once
(e) frontier:   ``frontier`` for one order across 8 horizons (warm, median of 50)

Figures to read, not a test.

    .venv/bin/python benchmarks/train.py [--orders 20000] [--boot 100]

Targets (issue 8): retrain under 60 s (on 1M orders: not measured here, see --orders), one estimate under 50 ms.
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from analytics import impact_models as im  # noqa: E402


def synthetic(n: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = np.exp(rng.uniform(math.log(1e-4), math.log(0.1), n))
    pov = np.exp(rng.uniform(math.log(0.02), math.log(0.3), n))
    sig = rng.uniform(0.01, 0.04, n)
    algo = rng.choice(["VWAP", "TWAP", "POV", "IS", "LIQSEEK"], n)
    mult = np.where(algo == "LIQSEEK", 1.6, 1.0)
    s = sig * 1e4
    perm, temp = 0.25 * s * np.sqrt(x), 0.15 * mult * s * np.sqrt(pov)
    noise = lambda: 0.3 * s * rng.standard_t(4, n)  # noqa: E731 - about the simulator's mid noise
    return pl.DataFrame({
        "arrival_ts": np.arange(n), "algo": algo, "exec_adv": x, "pov": pov, "sigma_daily": sig,
        "permanent_impact_bps": perm + noise(), "temporary_impact_bps": temp + noise(),
        "impact_cost_bps": perm / 2 + temp + noise(), "filled_notional": rng.lognormal(12, 1, n),
    })  # fmt: skip


def timed(f):
    t = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=20_000)
    ap.add_argument("--boot", type=int, default=100)
    a = ap.parse_args()
    tf = synthetic(a.orders)
    print(f"{a.orders} orders, {a.boot} bootstrap resamples, 2-core CPU, float64")
    for model in ("istar", "almgren"):
        fit, t_first = timed(lambda m=model: im.fit(tf, m, n_boot=a.boot))
        _, t_warm = timed(lambda m=model: im.fit(tf, m, n_boot=a.boot))
        _, t_point = timed(lambda m=model: im.fit(tf, m, n_boot=0))
        print(
            f"{model:8s} fit+bootstrap first {t_first:6.2f} s   warm {t_warm:6.2f} s   point fit only (warm) {t_point:5.2f} s"
        )
        ks = list(fit.params)[:4]
        print(
            "         "
            + "  ".join(f"{k}={fit.params[k]:.3f} [{fit.intervals[k][0]:.3f}, {fit.intervals[k][1]:.3f}]" for k in ks)
        )
        one = pl.DataFrame({"size_adv": [0.02], "sigma_daily": [0.02], "pov": [0.1], "algo": ["VWAP"]})
        im.pretrade_estimate(fit, one)
        lat = [timed(lambda f=fit, o=one: im.pretrade_estimate(f, o))[1] for _ in range(50)]
        orders = tf.select("exec_adv", "sigma_daily", "pov", "algo")
        _, t_all = timed(lambda f=fit, o=orders: im.pretrade_estimate(f, o))
        fr = [timed(lambda f=fit: im.frontier(f, 0.02, 0.02, algo="VWAP"))[1] for _ in range(50)]
        print(f"         pre-trade one order {statistics.median(lat) * 1e3:6.2f} ms (warm median)   "
              f"{a.orders} orders {t_all * 1e3:7.1f} ms   frontier {statistics.median(fr) * 1e3:6.2f} ms")  # fmt: skip
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")


if __name__ == "__main__":
    main()
