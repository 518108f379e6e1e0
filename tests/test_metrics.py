"""Metrics on hand-computed toy cases."""

import pytest

from vidret_milvus.metrics import micro_ap, precision_recall_curve, recall_at_precision, segment_prf

GT = {("q1", "a"), ("q2", "b"), ("q3", "c")}


def test_micro_ap_hand_computed() -> None:
    preds = [("q1", "a", 0.9), ("q2", "x", 0.8), ("q2", "b", 0.7), ("q4", "y", 0.1)]
    # ranks: +, -, +, -  -> P@1 = 1, P@3 = 2/3; GT has 3 pairs (q3/c never predicted)
    assert micro_ap(preds, GT) == pytest.approx((1 + 2 / 3) / 3)


def test_ties_are_pessimistic() -> None:
    preds = [("q1", "a", 0.5), ("q1", "z", 0.5)]
    # the negative is ranked first among the tie: P@2 = 1/2
    assert micro_ap(preds, {("q1", "a")}) == pytest.approx(0.5)


def test_duplicate_pairs_keep_best_score() -> None:
    preds = [("q1", "a", 0.2), ("q1", "a", 0.9), ("q1", "z", 0.5)]
    assert micro_ap(preds, {("q1", "a")}) == pytest.approx(1.0)


def test_recall_at_precision() -> None:
    preds = [("q1", "a", 0.9), ("q2", "b", 0.8), ("q2", "x", 0.7), ("q3", "c", 0.6)]
    p, r = precision_recall_curve(preds, GT)
    assert p == pytest.approx([1, 1, 2 / 3, 3 / 4]) and r == pytest.approx([1 / 3, 2 / 3, 2 / 3, 1])
    assert recall_at_precision(preds, GT, 0.9) == pytest.approx(2 / 3)
    assert recall_at_precision([], GT) == 0.0


def test_segment_prf_hand_computed() -> None:
    gt = {("q", "r"): [(0.0, 10.0, 20.0, 30.0)]}
    pred = {("q", "r"): [(5.0, 15.0, 25.0, 35.0)], ("q", "other"): [(0.0, 10.0, 0.0, 10.0)]}
    # query axis: overlap 5, predicted 10 + 10, true 10 -> Pq = 0.25, Rq = 0.5; same on reference axis
    p, r, f1 = segment_prf(pred, gt)
    assert p == pytest.approx(0.25) and r == pytest.approx(0.5) and f1 == pytest.approx(1 / 3)


def test_segment_prf_unions_overlapping_predictions() -> None:
    gt = {("q", "r"): [(0.0, 10.0, 0.0, 10.0)]}
    pred = {("q", "r"): [(0.0, 6.0, 0.0, 6.0), (4.0, 10.0, 4.0, 10.0)]}
    assert segment_prf(pred, gt) == pytest.approx((1.0, 1.0, 1.0))
    assert segment_prf({}, gt) == (0.0, 0.0, 0.0)
