"""The benchmarks' statistics: the interval for a rate of flagged negatives (benchmarks/_common.wilson) and the
shares of reference frames the code stage passes on (benchmarks/code_heads.passed_shares)."""

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


def test_code_stage_pass_shares_hand_computed() -> None:
    """benchmarks/code_heads.passed_shares: the share of reference frames a query sends to the
    re-rank under the two pass rules the code-stage goal is measured with."""
    import numpy as np

    from code_heads import passed_shares

    # Video 0 holds reference frames 0-2, video 1 frame 3. Each reference frame's distance to its
    # nearest query frame: [0.2, 0.4, 0.9, 0.5].
    dist = np.array([[0.2, 0.9, 0.9, 0.5],
                     [0.8, 0.4, 0.95, 0.7]])
    owner = np.array([0, 0, 0, 1])
    video, frame = passed_shares(dist, owner, (0.1, 0.3, 0.45, 0.6, 1.0))
    # 0.3: frame 0 is within, so all 3 frames of video 0 pass (3/4), but only frame 0 by itself (1/4);
    # 0.45: frames 0, 1 (video 0 still 3/4; 2/4); 0.6: frame 3 brings video 1 (4/4; 3/4).
    assert video.tolist() == pytest.approx([0.0, 0.75, 0.75, 1.0, 1.0])
    assert frame.tolist() == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert np.all(frame <= video)  # the frame pass never sends more
    # Video labels are any integers, frames of one video need not be adjacent: the same case with
    # video 0 labelled 7 and video 1 labelled 3, its frame moved to the front.
    video2, frame2 = passed_shares(dist[:, [3, 0, 1, 2]], np.array([3, 7, 7, 7]), (0.1, 0.3, 0.45, 0.6, 1.0))
    assert video2.tolist() == pytest.approx(video.tolist()) and frame2.tolist() == pytest.approx(frame.tolist())
