"""Brinson attribution, multi-period linking, factor attribution and the tracking-error split.

Hand-made data with the answers worked out in comments; hypothesis for the identities (effects sum to the active
return for every method and linking); the simulator for the planted factor loadings.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import attribution as attr
from analytics.ingest import ingest
from analytics.store import Lake

D1, D2 = dt.date(2026, 3, 2), dt.date(2026, 3, 3)
EVENT_COLUMNS = [  # EVENTS.md PerformanceAttributionEvent, plus the lineage every output carries
    "event_id", "ts", "portfolio_id", "benchmark_id", "start", "end", "method", "linking", "grouping", "group",
    "portfolio_weight", "benchmark_weight", "portfolio_return", "benchmark_return", "allocation", "selection",
    "interaction", "total", "source_version", "code_version",
]  # fmt: skip


def positions(rows: list[tuple]) -> pl.DataFrame:
    """(date, symbol, group, w_p, w_b, r) tuples -> the frame load_positions returns."""
    return pl.DataFrame(
        rows,
        schema={"date": pl.Date, "symbol": pl.String, "group": pl.String, "w_p": pl.Float64, "w_b": pl.Float64,
                "r": pl.Float64},
        orient="row",
    )  # fmt: skip


def by_group(df: pl.DataFrame, key: str = "group") -> dict[str, dict]:
    return {r[key]: r for r in df.to_dicts()}


# ---------------------------------------------------------------------------------------------------
# Textbook example (single period)
# ---------------------------------------------------------------------------------------------------
# The three-market layout of Bacon (2008), Practical Portfolio Performance Measurement and Attribution, 2nd ed.,
# ch. 5 (UK, Japanese and US equities). The published table could not be checked here, so every figure below is
# hand-computed from the weights and returns:
#            w_p   w_b   R_p    R_b
#   UK       40%   40%   20%    10%
#   Japan    30%   20%   -5%    -4%
#   US       30%   40%    6%     8%
#   R_p = .4*20 + .3*-5 + .3*6 = 8.3%;  R_b = .4*10 + .2*-4 + .4*8 = 6.4%;  active 1.9%
# BHB allocation (w_p-w_b) R_b,i:  UK 0, Japan .1*-4 = -0.4%, US -.1*8 = -0.8%          -> -1.2%
# BF allocation (w_p-w_b)(R_b,i-R_b): UK 0, Japan .1*(-4-6.4) = -1.04%, US -.1*(8-6.4) = -0.16%  -> -1.2%
# selection w_b (R_p,i-R_b,i): UK .4*10 = 4.0%, Japan .2*-1 = -0.2%, US .4*-2 = -0.8%      -> 3.0%
# interaction (w_p-w_b)(R_p,i-R_b,i): UK 0, Japan .1*-1 = -0.1%, US -.1*-2 = +0.2%          -> 0.1%
# The portfolio and the benchmark hold different securities in each market, so group returns differ.
TEXTBOOK = positions(
    [
        (D1, "UK_P", "UK", 0.40, 0.0, 0.20), (D1, "UK_B", "UK", 0.0, 0.40, 0.10),
        (D1, "JP_P", "Japan", 0.30, 0.0, -0.05), (D1, "JP_B", "Japan", 0.0, 0.20, -0.04),
        (D1, "US_P", "US", 0.30, 0.0, 0.06), (D1, "US_B", "US", 0.0, 0.40, 0.08),
    ]
)  # fmt: skip


@pytest.mark.parametrize("linking", attr.LINKINGS)
def test_textbook_bhb_and_bf(linking):
    bhb = by_group(attr.attribute(TEXTBOOK, "bhb", linking).groups)
    bf = by_group(attr.attribute(TEXTBOOK, "brinson_fachler", linking).groups)
    expect_bhb_alloc = {"UK": 0.0, "Japan": -0.004, "US": -0.008, "TOTAL": -0.012}
    expect_bf_alloc = {"UK": 0.0, "Japan": -0.0104, "US": -0.0016, "TOTAL": -0.012}
    expect_sel = {"UK": 0.04, "Japan": -0.002, "US": -0.008, "TOTAL": 0.030}
    expect_int = {"UK": 0.0, "Japan": -0.001, "US": 0.002, "TOTAL": 0.001}
    for g in expect_sel:
        assert bhb[g]["allocation"] == pytest.approx(expect_bhb_alloc[g], abs=1e-15)
        assert bf[g]["allocation"] == pytest.approx(expect_bf_alloc[g], abs=1e-15)
        for res in (bhb, bf):
            assert res[g]["selection"] == pytest.approx(expect_sel[g], abs=1e-15)
            assert res[g]["interaction"] == pytest.approx(expect_int[g], abs=1e-15)
    for res in (bhb, bf):
        assert res["TOTAL"]["total"] == pytest.approx(0.019, abs=1e-15)
        assert res["TOTAL"]["portfolio_return"] == pytest.approx(0.083, abs=1e-15)
        assert res["TOTAL"]["benchmark_return"] == pytest.approx(0.064, abs=1e-15)
        assert res["Japan"]["portfolio_weight"] == 0.30 and res["Japan"]["benchmark_weight"] == 0.20
        assert res["Japan"]["portfolio_return"] == pytest.approx(-0.05) and res["Japan"][
            "benchmark_return"
        ] == pytest.approx(-0.04)


def test_cfa_style_four_sector_example():
    # A CFA-curriculum-style four-sector table (hand-computed; not the curriculum's own numbers):
    #   Tech 35/28 12%/10%, Health 25/22 8%/9%, Fin 20/30 6%/5%, Energy 20/20 4%/3%
    #   R_b = 2.80 + 1.98 + 1.50 + 0.60 = 6.88%;  R_p = 4.20 + 2.00 + 1.20 + 0.80 = 8.20%;  active 1.32%
    #   Tech BF: allocation .07*(10-6.88) = 0.2184%, selection .28*2 = 0.56%, interaction .07*2 = 0.14%
    #   Fin BF:  allocation -.10*(5-6.88) = 0.188%, selection .30*1 = 0.30%, interaction -.10*1 = -0.10%
    rows = []
    for g, wp, wb, rp, rb in [("Tech", .35, .28, .12, .10), ("Health", .25, .22, .08, .09),
                              ("Fin", .20, .30, .06, .05), ("Energy", .20, .20, .04, .03)]:  # fmt: skip
        rows += [(D1, f"{g}_P", g, wp, 0.0, rp), (D1, f"{g}_B", g, 0.0, wb, rb)]
    res = by_group(attr.attribute(positions(rows), "brinson_fachler").groups)
    assert res["Tech"]["allocation"] == pytest.approx(0.002184, abs=1e-15)
    assert res["Tech"]["selection"] == pytest.approx(0.0056, abs=1e-15)
    assert res["Tech"]["interaction"] == pytest.approx(0.0014, abs=1e-15)
    assert res["Fin"]["allocation"] == pytest.approx(0.00188, abs=1e-15)
    assert res["Fin"]["selection"] == pytest.approx(0.003, abs=1e-15)
    assert res["Fin"]["interaction"] == pytest.approx(-0.001, abs=1e-15)
    assert res["TOTAL"]["total"] == pytest.approx(0.0132, abs=1e-15)


# ---------------------------------------------------------------------------------------------------
# Two days, empty groups, cash, GRAP by hand
# ---------------------------------------------------------------------------------------------------
# Day 1: P holds A .5 (Tech), C .3 (Energy), CASH .2 (not in securities); B holds A .3, B .3, C .2, D .2 (Util).
#        returns A 2%, B -1%, C 5%, D 1%; CASH none (earns 0).
#   Tech  w_p .5 R_p 2%;  w_b .6 R_b (.006-.003)/.6 = 0.5%
#   R_p = .01 + .015 = 2.5%;  R_b = .006 - .003 + .01 + .002 = 1.5%;  active 1.0%
#   BF Tech: alloc (-.1)(.005-.015) = .001, sel .6(.02-.005) = .009, inter (-.1)(.015) = -.0015 -> .0085
#   Energy: alloc .1(.05-.015) = .0035 -> .0035.   Util (portfolio empty, R_p := R_b,i): alloc -.2(.01-.015) = .001
#   (unclassified) (benchmark empty, R_b,i := R_b): alloc 0, sel 0, inter .2(0-.015) = -.003
#   BHB allocations: Tech -.1*.005 = -.0005, Energy .1*.05 = .005, Util -.2*.01 = -.002, uncl .2*.015 = .003
# Day 2: P holds A .4, B .2, C .4; B the same weights; returns A -1%, B 3%, C 0%, D 2%.
#   R_p = -.004 + .006 = .2%;  R_b = -.003 + .009 + .004 = 1.0%;  active -0.8%
#   Tech: w .6/.6, R_p .002/.6 = 1/3%, R_b .006/.6 = 1%: sel .6(1/3% - 1%) = -.004
#   Energy: alloc .2(0 - .01) = -.002;  Util: alloc -.2(.02 - .01) = -.002
# GRAP over both days: day-1 effects x (1 + R_b,2) = 1.01, day-2 effects x (1 + R_p,1) = 1.025
#   Tech total .0085*1.01 - .004*1.025 = .004485 (alloc .00101, sel .00909 - .0041 = .00499, inter -.001515)
#   Energy .0035*1.01 - .002*1.025 = .001485;  Util .001*1.01 - .002*1.025 = -.00104;  uncl -.003*1.01 = -.00303
#   sum .0019 = 1.025*1.002 - 1.015*1.01 = 1.02705 - 1.02515
TWO_DAYS = positions(
    [
        (D1, "A", "Tech", 0.5, 0.3, 0.02), (D1, "B", "Tech", 0.0, 0.3, -0.01), (D1, "C", "Energy", 0.3, 0.2, 0.05),
        (D1, "D", "Util", 0.0, 0.2, 0.01), (D1, "CASH", attr.UNCLASSIFIED, 0.2, 0.0, 0.0),
        (D2, "A", "Tech", 0.4, 0.3, -0.01), (D2, "B", "Tech", 0.2, 0.3, 0.03), (D2, "C", "Energy", 0.4, 0.2, 0.0),
        (D2, "D", "Util", 0.0, 0.2, 0.02),
    ]
)  # fmt: skip
GRAP_TOTALS = {"Tech": 0.004485, "Energy": 0.001485, "Util": -0.00104, attr.UNCLASSIFIED: -0.00303, "TOTAL": 0.0019}


def test_single_day_with_empty_groups_and_cash():
    day1 = TWO_DAYS.filter(pl.col("date") == D1)
    bf = by_group(attr.attribute(day1, "brinson_fachler").groups)
    assert bf["Tech"]["allocation"] == pytest.approx(0.001, abs=1e-15)
    assert bf["Tech"]["selection"] == pytest.approx(0.009, abs=1e-15)
    assert bf["Tech"]["interaction"] == pytest.approx(-0.0015, abs=1e-15)
    assert bf["Util"]["allocation"] == pytest.approx(0.001, abs=1e-15)
    assert bf["Util"]["selection"] == 0 and bf["Util"]["interaction"] == 0
    assert bf["Util"]["portfolio_return"] == pytest.approx(0.01)  # R_p := R_b,i when the portfolio holds none
    assert bf[attr.UNCLASSIFIED]["allocation"] == pytest.approx(0.0, abs=1e-15)  # R_b,i := R_b: no allocation
    assert bf[attr.UNCLASSIFIED]["interaction"] == pytest.approx(-0.003, abs=1e-15)
    assert bf[attr.UNCLASSIFIED]["benchmark_return"] == pytest.approx(0.015)
    assert bf["TOTAL"]["total"] == pytest.approx(0.010, abs=1e-15)
    bhb = by_group(attr.attribute(day1, "bhb").groups)
    for g, alloc in {"Tech": -0.0005, "Energy": 0.005, "Util": -0.002, attr.UNCLASSIFIED: 0.003}.items():
        assert bhb[g]["allocation"] == pytest.approx(alloc, abs=1e-15)
    assert bhb["TOTAL"]["allocation"] == pytest.approx(bf["TOTAL"]["allocation"], abs=1e-15)  # .0055 both


def test_grap_two_days_by_hand():
    res = by_group(attr.attribute(TWO_DAYS, "brinson_fachler", "grap").groups)
    for g, v in GRAP_TOTALS.items():
        assert res[g]["total"] == pytest.approx(v, abs=1e-15), g
    assert res["Tech"]["allocation"] == pytest.approx(0.00101, abs=1e-15)
    assert res["Tech"]["selection"] == pytest.approx(0.00499, abs=1e-15)
    assert res["Tech"]["interaction"] == pytest.approx(-0.001515, abs=1e-15)
    assert res["TOTAL"]["portfolio_return"] == pytest.approx(0.02705, abs=1e-15)
    assert res["TOTAL"]["benchmark_return"] == pytest.approx(0.02515, abs=1e-15)
    # first day's weights; compounded group return: Tech (1.02)(1 + 1/300) - 1
    assert res["Tech"]["portfolio_weight"] == 0.5 and res["Tech"]["benchmark_weight"] == pytest.approx(0.6)
    assert res["Tech"]["portfolio_return"] == pytest.approx(1.02 * (1 + 1 / 300) - 1, abs=1e-15)


def test_carino_and_menchero_two_days_by_hand():
    # Carino: k_t = ln((1+R_p,t)/(1+R_b,t)) / (R_p,t - R_b,t); K the same on the compounded returns
    k1, k2 = math.log(1.025 / 1.015) / 0.01, math.log(1.002 / 1.010) / -0.008
    big_k = math.log(1.02705 / 1.02515) / 0.0019
    # Menchero: M = (A/T) / ((1+R_p)^(1/T) - (1+R_b)^(1/T)), α_t = (A - M Σa) a_t / Σa²
    m = (0.0019 / 2) / (math.sqrt(1.02705) - math.sqrt(1.02515))
    c = (0.0019 - m * (0.01 - 0.008)) / (0.01**2 + 0.008**2)
    tech1, tech2 = 0.0085, -0.004  # daily BF Tech totals (hand-computed above)
    car = by_group(attr.attribute(TWO_DAYS, "brinson_fachler", "carino").groups)
    assert car["Tech"]["total"] == pytest.approx((tech1 * k1 + tech2 * k2) / big_k, abs=1e-14)
    men = by_group(attr.attribute(TWO_DAYS, "brinson_fachler", "menchero").groups)
    assert men["Tech"]["total"] == pytest.approx(tech1 * (m + c * 0.01) + tech2 * (m - c * 0.008), abs=1e-14)
    for res in (car, men):
        assert res["TOTAL"]["total"] == pytest.approx(0.0019, abs=1e-15)
        assert sum(v["total"] for g, v in res.items() if g != "TOTAL") == pytest.approx(0.0019, abs=1e-15)


def test_drill_into_a_group_sums_to_its_total():
    # Tech securities (BF, GRAP): A day 1 (.5-.3)(.02-.015) = .001, day 2 (.4-.3)(-.01-.01) = -.002
    #   -> .001*1.01 - .002*1.025 = -.00104;  B day 1 (-.3)(-.01-.015) = .0075, day 2 (-.1)(.03-.01) = -.002
    #   -> .0075*1.01 - .002*1.025 = .005525;  sum .004485 = Tech's GRAP total
    d = by_group(attr.drill(TWO_DAYS, "Tech", "brinson_fachler", "grap"), "symbol")
    assert d["A"]["contribution"] == pytest.approx(-0.00104, abs=1e-15)
    assert d["B"]["contribution"] == pytest.approx(0.005525, abs=1e-15)
    assert d["B"]["active_weight"] == pytest.approx(-0.3)
    for method in attr.METHODS:
        for linking in attr.LINKINGS:
            grp = by_group(attr.attribute(TWO_DAYS, method, linking).groups)["Tech"]["total"]
            assert attr.drill(TWO_DAYS, "Tech", method, linking)["contribution"].sum() == pytest.approx(grp, abs=1e-15)


def test_unknown_method_linking_and_empty_period():
    with pytest.raises(attr.AttributionError):
        attr.attribute(TWO_DAYS, "geometric")
    with pytest.raises(attr.AttributionError):
        attr.attribute(TWO_DAYS, "bhb", "frongello")
    with pytest.raises(attr.AttributionError):
        attr.attribute(TWO_DAYS.head(0))


# ---------------------------------------------------------------------------------------------------
# Identities (hypothesis)
# ---------------------------------------------------------------------------------------------------
@st.composite
def random_positions(draw):
    """Up to 25 days, 1-6 groups, 1-3 securities per group on each side; weights sum to 1 per side and day;
    some groups held by only one side; daily returns in (-20%, +25%)."""
    n_days = draw(st.integers(1, 25))
    n_groups = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(n_days):  # test data builder
        day = D1 + dt.timedelta(days=d)
        wp = rng.random((n_groups, 3)) * (rng.random((n_groups, 1)) < 0.8)
        wb = rng.random((n_groups, 3)) * (rng.random((n_groups, 1)) < 0.8)
        wp[0, 0] += 0.01  # never all-zero
        wb[-1, -1] += 0.01
        wp, wb = wp / wp.sum(), wb / wb.sum()
        r = rng.uniform(-0.2, 0.25, (n_groups, 3))
        for g in range(n_groups):
            for j in range(3):
                rows.append((day, f"S{g}{j}", f"G{g}", float(wp[g, j]), float(wb[g, j]), float(r[g, j])))
    return positions(rows)


def _compounded_active(pos: pl.DataFrame) -> float:
    t = attr.daily_totals(pos)
    return float((1 + t["r_p"]).product() - (1 + t["r_b"]).product())


@settings(max_examples=60, deadline=None)
@given(pos=random_positions(), method=st.sampled_from(attr.METHODS), linking=st.sampled_from(attr.LINKINGS))
def test_linked_effects_sum_to_compounded_active_return(pos, method, linking):
    g = attr.attribute(pos, method, linking).groups
    groups, total = g.filter(pl.col("group") != attr.TOTAL), g.filter(pl.col("group") == attr.TOTAL).row(0, named=True)
    active = _compounded_active(pos)
    assert total["total"] == pytest.approx(active, abs=1e-12)
    assert groups["total"].sum() == pytest.approx(active, abs=1e-12)
    assert sum(total[e] for e in attr.EFFECTS) == pytest.approx(active, abs=1e-12)
    # each group's effects add up to its total
    diff = groups.select((pl.col("allocation") + pl.col("selection") + pl.col("interaction") - pl.col("total")).abs())
    assert diff.to_series().max() < 1e-15


@settings(max_examples=30, deadline=None)
@given(pos=random_positions(), linking=st.sampled_from(attr.LINKINGS))
def test_effects_over_time_reconcile_every_day(pos, linking):
    att = attr.attribute(pos, "brinson_fachler", linking)
    ot = attr.link(att.daily, att.totals, linking, over_time=True)
    cum = attr.cumulative_returns(att.totals)
    chk = ot.group_by("date").agg(pl.col("total").sum()).join(cum, on="date")
    assert (chk["total"] - chk["active"]).abs().max() < 1e-12
    last = ot.filter(pl.col("date") == ot["date"].max()).sort("group")
    final = att.groups.filter(pl.col("group") != attr.TOTAL).sort("group")
    assert np.allclose(last["allocation"].to_numpy(), final["allocation"].to_numpy(), atol=1e-14)


@settings(max_examples=60, deadline=None)
@given(pos=random_positions().map(lambda p: p.filter(pl.col("date") == D1)))
def test_bhb_and_bf_differ_exactly_as_theory_says(pos):
    # BF allocation uses (R_b,i - R_b), BHB uses R_b,i: per group they differ by (w_p,i - w_b,i) R_b; the sums are
    # equal because both weight sets sum to 1; selection and interaction are the same.
    bf = attr.brinson(attr.group_returns(pos), "brinson_fachler").sort("group")
    bhb = attr.brinson(attr.group_returns(pos), "bhb").sort("group")
    expect = ((bf["w_p"] - bf["w_b"]) * bf["r_b"]).to_numpy()
    assert np.allclose((bhb["allocation"] - bf["allocation"]).to_numpy(), expect, atol=1e-15)
    assert bhb["allocation"].sum() == pytest.approx(bf["allocation"].sum(), abs=1e-14)
    assert bhb["selection"].equals(bf["selection"]) and bhb["interaction"].equals(bf["interaction"])
    assert bf["total"].sum() == pytest.approx(float(bf["r_p"][0] - bf["r_b"][0]), abs=1e-14)


def test_menchero_and_carino_single_day_are_the_plain_effects():
    day1 = TWO_DAYS.filter(pl.col("date") == D1)
    plain = attr.brinson(attr.group_returns(day1)).sort("group")
    for linking in attr.LINKINGS:
        linked = (
            attr.attribute(day1, "brinson_fachler", linking).groups.filter(pl.col("group") != attr.TOTAL).sort("group")
        )
        assert np.allclose(linked["total"].to_numpy(), plain["total"].to_numpy(), atol=1e-15)


def test_equal_daily_returns_do_not_divide_by_zero():
    # Portfolio = benchmark every day: every linked effect is 0 and finite in each method.
    same = TWO_DAYS.with_columns(pl.col("w_b").alias("w_p"))
    for linking in attr.LINKINGS:
        g = attr.attribute(same, "brinson_fachler", linking).groups
        assert g.select(pl.col(*attr.EFFECTS, "total").abs().max()).to_numpy().max() < 1e-15


# ---------------------------------------------------------------------------------------------------
# Factor attribution and the TE decomposition, by hand
# ---------------------------------------------------------------------------------------------------
def test_holdings_based_factor_attribution_one_day():
    # X (x=1.2, y=0.5 exposure to MKT), Y (x=0.8): portfolio .6/.4, benchmark .5/.5; MKT return 1%.
    # returns X 1.5%, Y 0.5%: R_p = .009 + .002 = 1.1%, R_b = .0075 + .0025 = 1.0%
    # exposures: x_p = .6*1.2 + .4*.8 = 1.04, x_b = 1.0, active .04
    # contributions: portfolio 1.04*1% = 1.04%, benchmark 1.0%, active .04%; specific p .06%, b 0, active .06%
    pos = positions([(D1, "X", "g", 0.6, 0.5, 0.015), (D1, "Y", "g", 0.4, 0.5, 0.005)])
    exp = pl.DataFrame({"date": [D1, D1], "symbol": ["X", "Y"], "factor": ["MKT", "MKT"], "exposure": [1.2, 0.8]})
    fr = pl.DataFrame({"date": [D1], "factor": ["MKT"], "return": [0.01]})
    res = by_group(attr.factor_attribution(pos, exp, fr), "factor")
    assert res["MKT"]["portfolio_exposure"] == pytest.approx(1.04)
    assert res["MKT"]["active_exposure"] == pytest.approx(0.04)
    assert res["MKT"]["portfolio_contribution"] == pytest.approx(0.0104, abs=1e-15)
    assert res["MKT"]["benchmark_contribution"] == pytest.approx(0.0100, abs=1e-15)
    assert res["MKT"]["active_contribution"] == pytest.approx(0.0004, abs=1e-15)
    assert res[attr.SPECIFIC]["portfolio_contribution"] == pytest.approx(0.0006, abs=1e-15)
    assert res[attr.SPECIFIC]["active_contribution"] == pytest.approx(0.0006, abs=1e-15)
    assert res["TOTAL"]["active_contribution"] == pytest.approx(0.001, abs=1e-15)
    assert res["TOTAL"]["portfolio_contribution"] == pytest.approx(0.011, abs=1e-15)


def test_tracking_error_decomposition_by_hand():
    # Two days, one factor F with returns +1%, -1%: sample variance (ddof 1) = 2 * .01² / 1 = .0002.
    # X: exposure 1, returns 1.5%, -0.5% -> specific .5%, .5% -> variance 0.
    # Y: exposure 0, returns 1%, -1% -> specific = return -> variance .0002.
    # Active weights on the last day: X +.2, Y -.2. x_a = .2; factor var .04*.0002 = 8e-6; specific .04*.0002 = 8e-6
    # TE daily = √1.6e-5 = .004; annualised .004√252. Factor and specific each half; X's share: a_X (Σa)_X / TE
    #   (Σa)_X = 1*.0002*.2 + 0 = 4e-5 -> .2*4e-5 = 8e-6 (half), Y: -.2 * (0 + .0002*-.2) = 8e-6 (half)
    rows = []
    for d, (rx, ry) in zip((D1, D2), [(0.015, 0.01), (-0.005, -0.01)], strict=True):
        rows += [(d, "X", "gx", 0.6, 0.4, rx), (d, "Y", "gy", 0.4, 0.6, ry)]
    pos = positions(rows)
    exp = pl.DataFrame({"date": [D1, D2, D1, D2], "symbol": ["X", "X", "Y", "Y"], "factor": ["F"] * 4,
                        "exposure": [1.0, 1.0, 0.0, 0.0]})  # fmt: skip
    fr = pl.DataFrame({"date": [D1, D2], "factor": ["F", "F"], "return": [0.01, -0.01]})
    rd = attr.risk_decomposition(pos, exp, fr)
    assert rd.te == pytest.approx(0.004 * math.sqrt(252), rel=1e-12)
    assert rd.factor_te == pytest.approx(math.sqrt(8e-6) * math.sqrt(252), rel=1e-12)
    f = by_group(rd.by_factor, "factor")
    assert f["F"]["contribution_te"] == pytest.approx(rd.te / 2, rel=1e-12)
    assert f[attr.SPECIFIC]["pct_te"] == pytest.approx(0.5, rel=1e-12)
    p = by_group(rd.by_position, "symbol")
    assert p["X"]["contribution_te"] == pytest.approx(rd.te / 2, rel=1e-12)
    assert rd.by_position["contribution_te"].sum() == pytest.approx(rd.te, rel=1e-12)


def test_returns_regression_recovers_exact_loadings():
    # y = 0.0001 + 1.5 f1 - 0.5 f2 exactly: coefficients recovered, R² = 1.
    rng = np.random.default_rng(3)
    days = [D1 + dt.timedelta(days=i) for i in range(40)]
    f = rng.normal(0, 0.01, (40, 2))
    fr = pl.DataFrame({"date": days * 2, "factor": ["f1"] * 40 + ["f2"] * 40, "return": np.r_[f[:, 0], f[:, 1]]})
    y = pl.DataFrame({"date": days, "r_p": 0.0001 + 1.5 * f[:, 0] - 0.5 * f[:, 1]})
    reg = attr.returns_regression(y, fr)
    coef = dict(zip(reg.table["term"], reg.table["coefficient"], strict=True))
    assert coef["alpha"] == pytest.approx(0.0001, abs=1e-12)
    assert coef["f1"] == pytest.approx(1.5, abs=1e-10) and coef["f2"] == pytest.approx(-0.5, abs=1e-10)
    assert reg.r2 == pytest.approx(1.0) and reg.n == 40


# ---------------------------------------------------------------------------------------------------
# Through the lake and the CLI: the hand-made two days
# ---------------------------------------------------------------------------------------------------
def write_two_day_lake(files_at, folder: Path) -> Lake:
    """The TWO_DAYS example as contract files (CSV), ingested; portfolio P1 benchmarked to B1, also P2 (= the
    benchmark) for peer tables."""
    f = files_at(folder / "in")
    f.csv("securities.csv", [
        {"symbol": s, "name": s, "asset_class": "Equity", "sector": g, "industry": f"{g} ind", "country": "US",
         "currency": "USD"} for s, g in [("A", "Tech"), ("B", "Tech"), ("C", "Energy"), ("D", "Util")]
    ])  # fmt: skip
    f.csv("portfolios.csv", [
        {"portfolio_id": "P1", "name": "One", "strategy": "growth", "benchmark_id": "B1", "base_currency": "USD"},
        {"portfolio_id": "P2", "name": "Two", "strategy": "index", "benchmark_id": "B1", "base_currency": "USD"},
    ])  # fmt: skip
    hold = [("2026-03-02", "A", .5), ("2026-03-02", "C", .3), ("2026-03-02", "CASH", .2),
            ("2026-03-03", "A", .4), ("2026-03-03", "B", .2), ("2026-03-03", "C", .4)]  # fmt: skip
    bw = [(d, s, w) for d in ("2026-03-02", "2026-03-03") for s, w in [("A", 0.3), ("B", 0.3), ("C", 0.2), ("D", 0.2)]]
    f.csv("holdings.csv", [{"date": d, "portfolio_id": "P1", "symbol": s, "weight": w} for d, s, w in hold]
          + [{"date": d, "portfolio_id": "P2", "symbol": s, "weight": w} for d, s, w in bw])  # fmt: skip
    f.csv("benchmark_weights.csv", [{"date": d, "benchmark_id": "B1", "symbol": s, "weight": w} for d, s, w in bw])
    rets = [("2026-03-02", "A", .02), ("2026-03-02", "B", -.01), ("2026-03-02", "C", .05), ("2026-03-02", "D", .01),
            ("2026-03-03", "A", -.01), ("2026-03-03", "B", .03), ("2026-03-03", "C", 0.0), ("2026-03-03", "D", .02)]  # fmt: skip
    f.csv("returns.csv", [{"date": d, "symbol": s, "return": r} for d, s, r in rets])
    lake = Lake(folder / "lake")
    res = ingest([f.root], lake)
    assert res.to_dict()["totals"]["quarantined"] == 0
    return lake


@pytest.fixture(scope="module")
def two_day_lake(tmp_path_factory, files_at) -> Lake:
    return write_two_day_lake(files_at, tmp_path_factory.mktemp("attr"))


def test_load_positions_from_the_lake(two_day_lake):
    con = two_day_lake.connect()
    pos = attr.load_positions(con, "P1", "B1", D1, D2, "sector")
    got = pos.sort("date", "symbol").select("date", "symbol", "group", "w_p", "w_b", "r")
    want = TWO_DAYS.sort("date", "symbol")
    assert got.select("date", "symbol", "group").equals(want.select("date", "symbol", "group"))
    assert np.allclose(got.select("w_p", "w_b", "r").to_numpy(), want.select("w_p", "w_b", "r").to_numpy(), atol=1e-15)
    assert attr.benchmark_of(con, "P1") == "B1"
    assert {"sector", "industry", "country", "currency", "asset_class", "symbol"} <= set(attr.grouping_columns(con))
    with pytest.raises(attr.AttributionError):
        attr.load_positions(con, "P1", "B1", D1, D2, "sector; DROP TABLE x")
    custom = attr.load_positions(
        con, "P1", "B1", D1, D2, mapping=pl.DataFrame({"symbol": ["A", "B"], "group": ["AB"] * 2})
    )
    assert set(custom["group"]) == {"AB", attr.UNCLASSIFIED}


def test_cli_exports_performance_attribution_events(two_day_lake, run_cli, tmp_path):
    out = tmp_path / "attr.jsonl"
    p = run_cli("attribution", "--portfolio", "P1", "--start", "2026-03-02", "--end", "2026-03-03",
                "--linking", "grap", "--lake", str(two_day_lake.root), "--out", str(out))  # fmt: skip
    assert p.returncode == 0, p.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert list(rows[0]) == EVENT_COLUMNS
    got = {r["group"]: r for r in rows}
    assert set(got) == set(GRAP_TOTALS)
    for g, v in GRAP_TOTALS.items():
        assert got[g]["total"] == pytest.approx(v, abs=1e-15)
    t = got["TOTAL"]
    assert (t["benchmark_id"], t["method"], t["linking"], t["grouping"]) == ("B1", "brinson_fachler", "grap", "sector")
    assert (t["start"], t["end"], t["source_version"]) == ("2026-03-02", "2026-03-03", "lake@1")
    assert len({r["event_id"] for r in rows}) == len(rows)
    # a single day: nothing to link
    p = run_cli("attribution", "--portfolio", "P1", "--start", "2026-03-02", "--end", "2026-03-02", "--method", "bhb",
                "--group-by", "industry", "--lake", str(two_day_lake.root), "--json")  # fmt: skip
    rows = {r["group"]: r for r in json.loads(p.stdout)}
    assert rows["TOTAL"]["linking"] == "none" and rows["Energy ind"]["allocation"] == pytest.approx(0.005)
    bad = run_cli("attribution", "--portfolio", "P1", "--start", "2026-03-02", "--end", "2026-03-03",
                  "--group-by", "nope", "--lake", str(two_day_lake.root))  # fmt: skip
    assert bad.returncode == 2 and "unknown grouping" in bad.stderr
    empty = run_cli("attribution", "--portfolio", "P1", "--start", "2027-01-04", "--end", "2027-01-05",
                    "--lake", str(two_day_lake.root))  # fmt: skip
    assert empty.returncode == 2 and "no day in the period" in empty.stderr


# ---------------------------------------------------------------------------------------------------
# The simulator's planted factor model
# ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from analytics.simulate import SimConfig, simulate

    d = tmp_path_factory.mktemp("attr_sim")
    cfg = SimConfig(days=60, symbols=30, orders_per_day=5, seed=11, fills_per_order=2, quotes_per_day=200,
                    trades_per_day=100)  # fmt: skip
    simulate(d / "files", cfg)
    lake = Lake(d / "lake")
    tables = (
        "securities",
        "portfolios",
        "holdings",
        "benchmark_weights",
        "returns",
        "factor_exposures",
        "factor_returns",
    )
    ingest([d / "files" / f"{t}.parquet" for t in tables], lake)  # the portfolio side only: faster
    return lake


@pytest.mark.parametrize("portfolio", ["P01", "P02"])
def test_factor_attribution_recovers_planted_loadings(sim, portfolio):
    # The simulator plants r = Σ_f x_f f_f + u (analytics/simulate/market.py). A regression of the portfolio's daily
    # returns on the factor returns must find loadings equal to its holdings-weighted planted exposures (time
    # average) within sampling error (4 standard errors), and explain most of the variance.
    con = sim.connect()
    bench = attr.benchmark_of(con, portfolio)
    start, end = dt.date(2026, 3, 2), dt.date(2026, 5, 22)
    pos = attr.load_positions(con, portfolio, bench, start, end)
    exp, fr = attr.load_factors(con, pos, start, end)
    reg = attr.returns_regression(attr.daily_totals(pos), fr)
    planted = attr.factor_exposures_daily(pos, exp).group_by("factor").agg(pl.col("x_p").mean())
    coef = reg.table.join(planted, left_on="term", right_on="factor")
    assert coef.height == 5
    assert ((coef["coefficient"] - coef["x_p"]).abs() < 4 * coef["std_error"]).all(), coef
    assert reg.r2 > 0.7
    assert (coef.filter(pl.col("term") == "market")["t_stat"] > 5).all()
    # holdings-based: the linked factor + specific contributions reconcile to the returns exactly
    fa = by_group(attr.factor_attribution(pos, exp, fr), "factor")
    t = attr.daily_totals(pos)
    rp, rb = float((1 + t["r_p"]).product() - 1), float((1 + t["r_b"]).product() - 1)
    assert fa["TOTAL"]["portfolio_contribution"] == pytest.approx(rp, abs=1e-12)
    assert fa["TOTAL"]["benchmark_contribution"] == pytest.approx(rb, abs=1e-12)
    assert fa["TOTAL"]["active_contribution"] == pytest.approx(rp - rb, abs=1e-12)
    rd = attr.risk_decomposition(pos, exp, fr)
    assert rd.by_factor["contribution_te"].sum() == pytest.approx(rd.te, rel=1e-10)
    assert rd.by_position["contribution_te"].sum() == pytest.approx(rd.te, rel=1e-10)
    assert 0 < rd.factor_te < rd.te
