"""Impact models: I-Star and the Almgren power law against hand calculations, fits recovering known parameters
(synthetic data drawn from the model, and the simulator's planted law), bootstrap coverage, the cost-risk
frontier's shape, and the pre-trade estimate."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest

from analytics import impact_models as im


# --------------------------------------------------------------------------- formulas by hand
def test_istar_published_parameters_by_hand():
    # size 10% ADV, sigma 25% annualised, POV 20%, a1=708, a2=.55, a3=.71, a4=.5, b1=.98:
    # 0.1^0.55 = 0.2818383; 0.25^0.71 = exp(0.71 * ln 0.25) = exp(-0.9842687) = 0.3737123
    # I* = 708 * 0.2818383 * 0.3737123 = 74.5711
    # MI = 0.98 * 74.5711 * sqrt(0.2) + 0.02 * 74.5711 = 32.6823 + 1.4914 = 34.1737
    # TR = 0.25 * sqrt(1/3 * 1/250 * 0.1 * 0.8 / 0.2) * 1e4 = 0.25 * sqrt(0.4 / 750) * 1e4 = 57.7350
    c = im.istar_components(np.array([0.1]), np.array([0.25]), np.array([0.2]))
    assert c["instantaneous_impact_bps"][0] == pytest.approx(74.5711, abs=1e-3)
    assert c["market_impact_bps"][0] == pytest.approx(34.1737, abs=1e-3)
    assert c["timing_risk_bps"][0] == pytest.approx(57.7350, abs=1e-3)
    assert c["total_cost_bps"][0] == c["market_impact_bps"][0]


def test_istar_limits():
    # POV = 100%: MI = b1 I* + (1 - b1) I* = I*, and no time to wait -> no timing risk
    c = im.istar_components(np.array([0.05]), np.array([0.3]), np.array([1.0]))
    assert c["market_impact_bps"][0] == pytest.approx(c["instantaneous_impact_bps"][0], rel=1e-12)
    assert c["timing_risk_bps"][0] == 0.0


def test_almgren_form_by_hand():
    # sigma 2%/day = 200 bps, size 4% ADV, POV 9%, gamma .25, alpha .5, eta .15, beta .5, LIQSEEK-like mult 1.6:
    # perm = .25 * 200 * sqrt(.04) = 10; ATHL rate = .09 / .91 = 0.0989011; temp = .15 * 1.6 * 200 * sqrt(0.0989011)
    # = 48 * 0.3144855 = 15.09530; cost = 10 / 2 + 15.09530 = 20.09530
    # TR = 200 * sqrt(.04 * (1 - .09) / .09 / 3) = 200 * sqrt(0.1348148) = 73.4343
    p = im.AlmgrenParams(gamma=0.25, alpha=0.5, eta=0.15, beta=0.5)
    c = im.almgren_components(np.array([0.04]), np.array([0.02]), np.array([0.09]), p, 1.6)
    assert c["permanent_bps"][0] == pytest.approx(10.0)
    assert c["temporary_bps"][0] == pytest.approx(15.09530, abs=1e-4)
    assert c["market_impact_bps"][0] == pytest.approx(20.09530, abs=1e-4)
    assert c["timing_risk_bps"][0] == pytest.approx(73.4343, abs=1e-3)


# --------------------------------------------------------------------------- synthetic recovery
TRUE_ALMGREN = {"gamma": 0.25, "alpha": 0.5, "eta": 0.15, "beta": 0.5, "mult_LIQSEEK": 1.6}
N, B = 800, 60  # one shape for every synthetic fit: JAX compiles the solver once


def synthetic(n: int, seed: int, noise: float = 0.08) -> pl.DataFrame:
    """Orders drawn from the Almgren power law above (VWAP multiplier 1, LIQSEEK 1.6) with Student-t(4) noise of
    ``noise`` daily sigmas (heavy tails: the Huber loss must cope)."""
    rng = np.random.default_rng(seed)
    x = np.exp(rng.uniform(math.log(1e-4), math.log(0.1), n))
    pov = np.exp(rng.uniform(math.log(0.02), math.log(0.3), n))
    sig = rng.uniform(0.01, 0.04, n)
    algo = rng.choice(["VWAP", "LIQSEEK"], n)
    mult = np.where(algo == "LIQSEEK", 1.6, 1.0)
    s = sig * 1e4
    t = TRUE_ALMGREN
    perm = t["gamma"] * s * x ** t["alpha"]
    temp = t["eta"] * mult * s * (pov / (1 - pov)) ** t["beta"]  # on ATHL's trade rate
    eps = lambda: noise * s * rng.standard_t(4, n)  # noqa: E731
    return pl.DataFrame({
        "arrival_ts": np.arange(n), "algo": algo, "exec_adv": x, "pov": pov, "sigma_daily": sig,
        "permanent_impact_bps": perm + eps(), "temporary_impact_bps": temp + eps(),
        "impact_cost_bps": perm / 2 + temp + eps(), "filled_notional": rng.lognormal(12, 1, n),
    })  # fmt: skip


def test_almgren_fit_recovers_known_parameters():
    """A large synthetic desk: every estimate within a few standard errors of the truth and inside its own
    interval (the interval's coverage over many desks is the next tests' business)."""
    fit = im.fit_almgren(synthetic(4000, seed=1, noise=0.05), n_boot=B, seed=3, weights="equal")
    tol = {"gamma": 0.05, "alpha": 0.06, "eta": 0.03, "beta": 0.06, "mult_LIQSEEK": 0.15}
    for k, v in TRUE_ALMGREN.items():
        assert fit.params[k] == pytest.approx(v, abs=tol[k]), (k, fit.params[k])
        lo, hi = fit.intervals[k]
        assert lo <= fit.params[k] <= hi and hi - lo < 4 * tol[k]
    assert fit.n == 4000 and fit.model == "almgren" and np.isfinite(fit.loss)
    assert len(fit.draws) == B and fit.algos == ("VWAP", "LIQSEEK")


def test_notional_weights_follow_the_large_orders():
    """Half the orders (notional 1e6) follow gamma = 0.4, the other half (notional 1) gamma = 0.1: weighted by
    notional the fit follows the large orders; equal weights land in between."""
    tf = synthetic(N, seed=7, noise=0.02)
    big = np.arange(N) % 2 == 0
    s, x = tf["sigma_daily"].to_numpy() * 1e4, tf["exec_adv"].to_numpy()
    perm = np.where(big, 0.4, 0.1) * s * np.sqrt(x)
    old = TRUE_ALMGREN["gamma"] * s * np.sqrt(x)  # the realised cost carries half the permanent impact: move it too
    tf = tf.with_columns(pl.Series("permanent_impact_bps", perm), pl.col("impact_cost_bps") + (perm - old) / 2,
                         pl.Series("filled_notional", np.where(big, 1e6, 1.0)))  # fmt: skip
    g_notional = im.fit_almgren(tf, n_boot=0, weights="notional").params["gamma"]
    g_equal = im.fit_almgren(tf, n_boot=0, weights="equal").params["gamma"]
    assert g_notional == pytest.approx(0.4, abs=0.03)
    assert 0.12 < g_equal < 0.38


def test_bootstrap_interval_coverage():
    """Over independent synthetic desks the 95% bootstrap interval of alpha and beta must cover the truth in
    most of them (binomial: 12 draws at 95% cover >= 10 with probability 0.98)."""
    hits = {"alpha": 0, "beta": 0}
    for seed in range(12):
        fit = im.fit_almgren(synthetic(N, seed=100 + seed), n_boot=B, seed=seed, weights="equal")
        for k in hits:
            lo, hi = fit.intervals[k]
            hits[k] += lo <= TRUE_ALMGREN[k] <= hi
    assert hits["alpha"] >= 10 and hits["beta"] >= 10, hits


def test_istar_fit_recovers_known_parameters():
    rng = np.random.default_rng(5)
    n = 4000
    truth = im.IStarParams(a1=500.0, a2=0.6, a3=0.8, a4=0.4, b1=0.9)
    x = np.exp(rng.uniform(math.log(1e-3), math.log(0.2), n))
    pov = np.exp(rng.uniform(math.log(0.02), math.log(0.5), n))
    sig = rng.uniform(0.008, 0.05, n)
    mi = im.istar_components(x, sig * math.sqrt(250), pov, truth)["market_impact_bps"]
    tf = pl.DataFrame({"arrival_ts": np.arange(n), "algo": "VWAP", "exec_adv": x, "pov": pov, "sigma_daily": sig,
                       "impact_cost_bps": mi + 0.03 * sig * 1e4 * rng.standard_normal(n),
                       "filled_notional": np.ones(n)})  # fmt: skip
    fit = im.fit_istar(tf, n_boot=B, seed=2)
    # from the published starting point (a2 = .55, a3 = .71, a4 = .5, b1 = .98) the fit moved to the truth; a1
    # trades off against a3 (sigma^a3 with sigma near 0.3), so it is judged through the predictions
    tol = {"a2": 0.03, "a3": 0.08, "a4": 0.07, "b1": 0.08}  # b1 and a4 trade off: b1 is the loosest
    for k, t in tol.items():
        assert fit.params[k] == pytest.approx(getattr(truth, k), abs=t), (k, fit.params[k])
        lo, hi = fit.intervals[k]
        assert lo <= fit.params[k] <= hi
    got = im.predict(fit, tf)["expected_cost_bps"].to_numpy()
    assert np.median(np.abs(got / mi - 1)) < 0.03


# --------------------------------------------------------------------------- pre-trade and frontier
def test_pretrade_estimate_published_and_fitted():
    orders = pl.DataFrame({"size_adv": [0.1, 0.01], "sigma_daily": [0.25 / math.sqrt(250), 0.02], "pov": [0.2, 0.1]})
    est = im.pretrade_estimate("istar", orders)
    assert est["expected_cost_bps"][0] == pytest.approx(34.1737, abs=1e-3)  # the hand calculation above
    assert est["cost_lo_bps"].to_list() == est["expected_cost_bps"].to_list()  # published: no parameter interval
    assert (est["outcome_lo_bps"] < est["expected_cost_bps"]).all()
    assert (est["expected_cost_bps"] < est["outcome_hi_bps"]).all()
    fit = im.fit_almgren(synthetic(N, seed=2), n_boot=B)
    e2 = im.pretrade_estimate(fit, orders.with_columns(pl.lit("LIQSEEK").alias("algo")))
    assert (e2["cost_lo_bps"] <= e2["expected_cost_bps"]).all() and (e2["expected_cost_bps"] <= e2["cost_hi_bps"]).all()
    assert (e2["cost_lo_bps"] < e2["cost_hi_bps"]).all()
    # the LIQSEEK multiplier raises the temporary part only
    e1 = im.pretrade_estimate(fit, orders.with_columns(pl.lit("VWAP").alias("algo")))
    assert (e2["temporary_bps"] > e1["temporary_bps"]).all()
    assert e2["permanent_bps"].to_list() == e1["permanent_bps"].to_list()


def test_fit_json_round_trip():
    fit = im.fit_almgren(synthetic(N, seed=4), n_boot=B)
    back = im.ImpactFit.from_json(fit.to_json())
    assert back == fit
    assert json.loads(fit.to_json())["model"] == "almgren"


@pytest.mark.parametrize("model", ["istar", "almgren"])
def test_frontier_longer_horizon_lower_cost_higher_risk(model):
    f = im.frontier(model, size_adv=0.05, sigma_daily=0.02, risk_aversion=0.3)
    cost, risk = f["expected_cost_bps"].to_numpy(), f["timing_risk_bps"].to_numpy()
    assert (np.diff(cost) < 0).all() and (np.diff(risk) > 0).all()
    # sqrt(T / 3) * 200 bps at T = 3 days: 200
    assert risk[f["horizon_days"].to_list().index(3.0)] == pytest.approx(200.0)
    obj = cost + 0.3 * risk
    assert f.filter(pl.col("recommended"))["horizon_days"][0] == f["horizon_days"][int(np.argmin(obj))]
    # a more risk-averse trader never trades slower
    t = [im.frontier(model, 0.05, 0.02, risk_aversion=lam).filter(pl.col("recommended"))["horizon_days"][0]
         for lam in (0.01, 0.3, 3.0)]  # fmt: skip
    assert t[0] >= t[1] >= t[2] and t[0] > t[2]


# --------------------------------------------------------------------------- the simulator's planted law
@pytest.fixture(scope="module")
def sparse_desk(tmp_path_factory):
    """A sparse desk: ~4 orders per symbol and day, so the desk's own concurrent flow (75% buys in the
    simulator's long-only portfolios) barely contaminates an order's permanent impact."""
    from analytics import tca
    from analytics.filters import Filters
    from analytics.ingest import ingest
    from analytics.simulate import SimConfig, simulate
    from analytics.store import Lake

    d = tmp_path_factory.mktemp("planted_law")
    cfg = SimConfig(days=20, symbols=120, orders_per_day=500, fills_per_order=3, quotes_per_day=60_000,
                    trades_per_day=20_000, seed=21)  # fmt: skip
    simulate(d / "files", cfg)
    lake = Lake(d / "lake")
    ingest([d / "files"], lake)
    tca.ensure(lake)
    con = lake.connect()
    orders = tca.load_orders(lake, con, Filters())
    con.close()
    truth = json.loads((d / "files" / "ground_truth.json").read_text())["impact"]
    return im.training_frame(orders), truth


@pytest.mark.slow
def test_fit_recovers_the_planted_permanent_law(sparse_desk):
    """perm_bps = gamma * sigma_daily_bps * sqrt(X / ADV) is planted (gamma = 0.25): the fitted exponent and
    coefficient hold the planted values in their 95% bootstrap intervals, and the exponent's interval rules out
    ATHL's linear law (alpha = 1) and a size-independent impact (alpha = 0). Algos with multiplier 1 only, one
    temporary law; equal weights (notional weights give the same centre with wider intervals)."""
    tf, truth = sparse_desk
    ones = [a for a, m in truth["algo_multiplier"].items() if m == 1.0]
    fit = im.fit_almgren(tf.filter(pl.col("algo").is_in(ones)), per_algo=False, weights="equal", n_boot=100)
    a_lo, a_hi = fit.intervals["alpha"]
    g_lo, g_hi = fit.intervals["gamma"]
    assert a_lo <= 0.5 <= a_hi, fit.intervals
    assert g_lo <= truth["gamma"] <= g_hi, fit.intervals
    assert a_lo > 0.1 and a_hi < 1.0


def test_cli_estimate_published_istar(run_cli, tmp_path):
    # the hand calculation of test_istar_published_parameters_by_hand, through the real entry point
    r = run_cli("estimate", "--model", "istar", "--size-adv", "0.1", "--volatility", "0.25", "--pov", "0.2",
                "--json", "--lake", str(tmp_path / "lake"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["source"] == "published" and out["version"] is None  # no champion in an empty lake
    assert out["instantaneous_impact_bps"] == pytest.approx(74.5711, abs=1e-3)
    assert out["market_impact_bps"] == pytest.approx(34.1737, abs=1e-3)
    assert out["timing_risk_bps"] == pytest.approx(57.7350, abs=1e-3)
    assert out["total_cost_bps"] == out["market_impact_bps"]


def _shared_path_desk(n: int, rng: np.random.Generator) -> pl.DataFrame:
    """One algo, the planted law gamma = 0.25, alpha = 0.5, eta = 0.15, beta = 0.5; each order's two measured
    quantities (permanent impact, realised cost) share one draw of the order's mid path (0.05 daily sigma) plus
    a small own noise (0.01): the structure of TCA's rows, where both are read off the same mid path."""
    x = np.exp(rng.uniform(math.log(1e-3), math.log(0.1), n))
    pov = np.exp(rng.uniform(math.log(0.02), math.log(0.3), n))
    s = np.full(n, 0.02) * 1e4
    perm, temp = 0.25 * s * x**0.5, 0.15 * s * (pov / (1 - pov)) ** 0.5
    path = 0.05 * s * rng.standard_normal(n)
    return pl.DataFrame({
        "arrival_ts": np.arange(n), "algo": ["VWAP"] * n, "exec_adv": x, "pov": pov, "sigma_daily": s / 1e4,
        "permanent_impact_bps": perm + path + 0.01 * s * rng.standard_normal(n), "temporary_impact_bps": temp,
        "impact_cost_bps": perm / 2 + temp + path + 0.01 * s * rng.standard_normal(n), "filled_notional": np.ones(n),
    })  # fmt: skip


@pytest.mark.slow
def test_almgren_bootstrap_resamples_orders_coverage():
    """Monte Carlo (issue 16, defect 6): 200 seeded desks of 300 orders whose two rows share the order's mid path;
    the 95% intervals of gamma and alpha must cover the planted values in 90-99% of desks (binomial sd 1.5 points).
    Resampling orders covers 93.0% / 93.5% here (92.5% / 92.5% with seed 17); resampling rows covered 85.5% /
    87.5% (86.5% / 86.5%)."""
    rng = np.random.default_rng(16)
    reps, hits = 200, {"gamma": 0, "alpha": 0}
    for r in range(reps):
        fit = im.fit_almgren(_shared_path_desk(300, rng), n_boot=100, seed=r, per_algo=False)
        for k, truth in (("gamma", 0.25), ("alpha", 0.5)):
            lo, hi = fit.intervals[k]
            hits[k] += lo <= truth <= hi
    cover = {k: v / reps for k, v in hits.items()}
    assert all(0.90 <= c <= 0.99 for c in cover.values()), cover
