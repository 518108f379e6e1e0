"""The benchmarks' interval for a rate of flagged negatives (benchmarks/_common.wilson)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _common import wilson  # noqa: E402


def test_wilson_hand_computed() -> None:
    # k = 2 of n = 100, z = 1.96: centre (0.02 + z^2/200) / (1 + z^2/100) = 0.037758,
    # half-width z * sqrt(0.02 * 0.98 / 100 + z^2 / 40000) / (1 + z^2/100) = 0.032256 (exactly 0.0700132 at the top).
    lo, hi = wilson(2, 100)
    assert lo == pytest.approx(0.005502, abs=1e-6) and hi == pytest.approx(0.070013, abs=1e-6)
    # None flagged of 50: [0, z^2 / (n + z^2)] = [0, 3.8416 / 53.8416]
    assert wilson(0, 50) == pytest.approx((0.0, 0.071350), abs=1e-6)
    # all flagged mirrors it; no sample says nothing
    assert wilson(50, 50) == pytest.approx((1 - 0.071350, 1.0), abs=1e-6)
    assert wilson(0, 0) == (0.0, 1.0)


def test_wilson_narrows_with_more_negatives() -> None:
    # the reason for 300 test negatives: the same 4 % rate, about a third of the width
    lo50, hi50 = wilson(2, 50)
    lo300, hi300 = wilson(12, 300)
    assert hi300 - lo300 < 0.5 * (hi50 - lo50) and lo300 < 0.04 < hi300
