"""Impact-model fits on large desks: above ``BOOT_MAX_ROWS`` rows the point fit starts on a subsample and is
polished on every row, and the bootstrap is m-out-of-n (resamples of ``BOOT_MAX_ROWS`` rows, deviations rescaled by
sqrt(m / n)); they must give the point estimate and about the intervals of the plain fit on the same data. The threshold is lowered here so the comparison runs in seconds."""

from __future__ import annotations

import numpy as np
import pytest

from analytics import impact_models as im
from tests.test_impact_models import TRUE_ALMGREN, synthetic

N_ORDERS = 6000  # the Almgren fit stacks 2 rows per order: 12,000 rows
M_ROWS = 4000  # resample size of the m-out-of-n bootstrap in this test (3 x fewer rows than the data)


@pytest.fixture(scope="module")
def desk():
    return synthetic(N_ORDERS, seed=41)


def test_m_out_of_n_bootstrap_matches_the_plain_bootstrap(desk, monkeypatch):
    plain = im.fit_almgren(desk, n_boot=200, seed=1, weights="equal")
    monkeypatch.setattr(im, "BOOT_MAX_ROWS", M_ROWS)
    sub = im.fit_almgren(desk, n_boot=200, seed=1, weights="equal")
    # the point fit: solved on a subsample of M_ROWS, then polished on every row: the all-row estimate again
    assert sub.params == pytest.approx(plain.params, rel=1e-4)
    assert len(sub.draws) == 200
    for k in ("gamma", "alpha", "eta", "beta"):
        w_plain = plain.intervals[k][1] - plain.intervals[k][0]
        w_sub = sub.intervals[k][1] - sub.intervals[k][0]
        # without the sqrt(m / n) = sqrt(4000 / 12000) = 0.58 rescaling the width would be ~1.7 x the plain one
        assert 0.6 < w_sub / w_plain < 1.6, (k, w_sub, w_plain)
        assert sub.intervals[k][0] <= TRUE_ALMGREN[k] <= sub.intervals[k][1], k


def test_draws_stay_within_the_bounds(desk, monkeypatch):
    monkeypatch.setattr(im, "BOOT_MAX_ROWS", M_ROWS)
    fit = im.fit_istar(desk, n_boot=50, seed=2)
    draws = np.asarray(fit.draws)
    assert draws.shape == (50, 5)
    assert (draws[:, 1:4] >= 0.05).all() and (draws[:, 1:4] <= 1.5).all()  # a2, a3, a4 in (0.05, 1.5)
    assert (draws[:, 4] >= 0).all() and (draws[:, 4] <= 1).all()  # b1 in (0, 1)
