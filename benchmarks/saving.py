"""Benchmark: the realised saving of following the cost model's recommendation (issue 8, "5+ bps average saving").

Simulates a desk (or reuses ``--dir``), ingests it, stores its TCA, then walks forward (analytics/saving.py): for
each day after the first ``--train-days``, the Almgren model with per-algo multipliers is fitted on the earlier
days' TCA, each order gets the algo (and, in the horizon rows, the window multiplier in {0.5, 1, 2}) with the
lowest expected cost, and the order is replayed under that choice on the same market path
(analytics/simulate/replay.py). Rows:

  fitted / algo           the desk's walk-forward fit, algo only (the order's window kept)
  fitted / algo+horizon   the same fit, algo and horizon
  planted / algo          the simulator's planted law as the model (a perfectly specified model), algo only
  planted / algo+horizon  the planted law, algo and horizon
  planted bound           expected saving the planted multipliers allow from algo choice (LIQSEEK x1.6 -> x1.0)

Saving = realised IS as done - realised IS under the recommendation (bps of the paper notional; positive = the
recommendation was cheaper), equal- and notional-weighted, 95% intervals. Figures to read, not a test.

    .venv/bin/python benchmarks/saving.py [--days 8] [--symbols 40] [--orders 400] [--seed 7] [--train-days 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analytics import saving, tca  # noqa: E402
from analytics.ingest import ingest  # noqa: E402
from analytics.simulate import SimConfig, simulate  # noqa: E402
from analytics.store import Lake  # noqa: E402


def _ci(d: dict | None) -> str:
    return "n/a" if d is None else f"{d['mean']:+6.2f} [{d['lo']:+6.2f}, {d['hi']:+6.2f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=8)
    ap.add_argument("--symbols", type=int, default=40)
    ap.add_argument("--orders", type=int, default=400)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--train-days", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="work directory (kept; reused when it holds the lake)")
    a = ap.parse_args()
    sim = SimConfig(days=a.days, symbols=a.symbols, orders_per_day=a.orders, seed=a.seed)
    work = a.dir or Path(tempfile.mkdtemp(prefix="saving-"))
    lake = Lake(work / "lake")
    t0 = time.perf_counter()
    if not (work / "lake" / "_manifest").exists():
        simulate(work / "files", sim)
        ingest([work / "files"], lake)
        tca.ensure(lake)
    print(f"desk: {a.days} days x {a.symbols} symbols x {a.orders} orders/day, seed {a.seed}; lake {work / 'lake'} "
          f"ready in {time.perf_counter() - t0:.1f} s; recommend on days {a.train_days + 1}..{a.days}")  # fmt: skip
    print(f"{'model / choice':24} {'orders':>6} {'switched':>8}  {'saving bps (equal) [95%]':>28}  "
          f"{'saving bps (notional) [95%]':>28}  {'arrival-cost saving':>28}  time  choices")  # fmt: skip
    con = lake.connect()
    last = None
    for name, fit_fn, horizons in (
        ("fitted / algo", saving.fit_almgren, (1.0,)),
        ("fitted / algo+horizon", saving.fit_almgren, (0.5, 1.0, 2.0)),
        ("planted / algo", lambda h, c: saving.planted_fit(c), (1.0,)),
        ("planted / algo+horizon", lambda h, c: saving.planted_fit(c), (0.5, 1.0, 2.0)),
    ):
        t1 = time.perf_counter()
        r = saving.measure(lake, sim, saving.SavingConfig(train_days=a.train_days, horizons=horizons), fit_fn, con)
        s = r.summary
        top = ", ".join(f"{al}x{h:g}:{n}" for al, h, n in s["choices"][:4])
        print(f"{name:24} {s['orders']:6d} {s['switched']:8d}  {_ci(s['saving_bps']):>28}  "
              f"{_ci(s['saving_bps_notional']):>28}  {_ci(s['saving_arrival_bps']):>28}  "
              f"{time.perf_counter() - t1:4.0f}s  {top}")  # fmt: skip
        if name == "fitted / algo":
            fits = r.fits
        last = s
    print(f"{'planted bound (algo)':24} {last['orders']:6d} {'':8}  {_ci(last['planted_bound_bps']):>28}  "
          f"{_ci(last['planted_bound_bps_notional']):>28}")  # fmt: skip
    print("walk-forward fits (fitted rows): day: eta, beta, multipliers")
    for d, f in fits.items():
        mult = " ".join(f"{k[5:]}={v:.2f}" for k, v in f.params.items() if k.startswith("mult_"))
        print(f"  {d}: eta={f.params['eta']:.3f} beta={f.params['beta']:.2f} {mult} (n={f.n})")


if __name__ == "__main__":
    main()
