"""Cost attribution: the decomposition sums to the IS, Holm's adjustment, and comparisons that find a real
difference and do not invent one."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import cost_attribution as ca

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(finite, finite, finite, finite, st.floats(0, 1e4), st.floats(1e3, 1e8)), min_size=1, max_size=20)
)
def test_components_sum_to_the_total(rows):
    df = pl.DataFrame(
        rows,
        schema=[
            "trading_spread_cost",
            "trading_impact_cost",
            "is_delay_cost",
            "is_opportunity_cost",
            "is_fees",
            "paper_notional",
        ],
        orient="row",
    ).with_columns(
        (
            pl.col("trading_spread_cost")
            + pl.col("trading_impact_cost")
            + pl.col("is_delay_cost")
            + pl.col("is_opportunity_cost")
            + pl.col("is_fees")
        ).alias("is_total_cost"),
        pl.lit("A").alias("algo"),
    )
    d = ca.decompose(df, "algo").row(0, named=True)
    parts = sum(d[f"{k}_bps"] for k in ca.COMPONENTS)
    assert parts == pytest.approx(d["total_bps"], rel=1e-9, abs=1e-6)
    assert d["total_bps"] == pytest.approx(
        df["is_total_cost"].sum() / df["paper_notional"].sum() * 1e4, rel=1e-9, abs=1e-6
    )


def test_holm_adjustment_by_hand():
    # sorted p: 0.01*3 = 0.03; 0.03*2 = 0.06; 0.04*1 = 0.04 -> monotone: 0.06
    assert ca._holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def orders(effects: dict[str, float], n: int = 400, sd: float = 20.0, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    frames = [
        pl.DataFrame({"algo": [a] * n, "arrival_cost_bps": rng.normal(mu, sd, n), "size_bucket": ["1-2% ADV"] * n})
        for a, mu in effects.items()
    ]
    return pl.concat(frames)


def test_compare_finds_a_real_difference():
    out = ca.compare(orders({"VWAP": 10.0, "LIQSEEK": 18.0}))
    row = out.row(0, named=True)
    assert row["best"] == "VWAP" and row["algo"] == "LIQSEEK" and row["significant"]
    assert row["diff_lo"] < 8.0 < row["diff_hi"]
    assert "VWAP cost" in row["finding"] and "less than LIQSEEK" in row["finding"]


def test_compare_does_not_invent_a_difference_between_equal_algos():
    false_alarms = sum(
        ca.compare(orders({"VWAP": 10.0, "POV": 10.0, "TWAP": 10.0}, seed=s))["significant"].any() for s in range(40)
    )
    assert false_alarms <= 4  # Holm keeps the family-wise error near 5%


def test_small_groups_are_left_out():
    df = pl.concat([orders({"VWAP": 10.0}), orders({"IS": 50.0}, n=10)])
    assert ca.compare(df).is_empty()
