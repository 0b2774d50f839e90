"""The studentized range: survival function and quantile against scipy's adaptive integration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from sweeper import stats as S


def test_studentized_range_sf_matches_scipy():
    for k, df in [(3, 2), (10, 36), (40, 150)]:
        q = st.studentized_range.ppf([0.5, 0.95, 0.99, 0.999], k, df)
        ref = st.studentized_range.sf(q, k, df)
        np.testing.assert_allclose(S.studentized_range_sf(q, k, df), ref, rtol=1e-4)
    # k = 2 is the two-sided t-test
    assert S.studentized_range_sf(3.0, 2, 7) == pytest.approx(2 * st.t.sf(3.0 / math.sqrt(2), 7))


@pytest.mark.parametrize("alpha, k, df", [(0.05, 2, 4), (0.05, 6, 10), (0.05, 20, 3.5), (0.01, 40, 150)])
def test_studentized_range_quantile_matches_scipy(alpha, k, df):
    assert S.studentized_range_isf(alpha, k, df) == pytest.approx(st.studentized_range.ppf(1 - alpha, k, df),
                                                                  rel=2e-5)
