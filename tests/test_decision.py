"""The mode-2 decision (vidret_milvus/decision.py) on hand-computed toy candidates.

Scale of the toy cases: raw cosine (ceiling 1), aligner threshold min_score 0.7, so a
segment of mean similarity s has confidence (s - 0.7) / 0.3.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from vidret_milvus.align import Segment
from vidret_milvus.decision import (
    CALIBRATION_KEYS,
    FEATURES,
    Calibration,
    Evidence,
    decide,
    fit_calibration,
    fit_logistic,
    segment_confidence,
    segment_evidence,
)


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def test_clean_short_copy_in_long_query_is_a_copy() -> None:
    # A clean 4 s copy (query 10-14 s, mean similarity 0.9) inside a 25 s upload.
    seg = Segment(10.0, 14.0, 50.0, 54.0, 0.9, 4)
    ev = segment_evidence([seg], np.arange(25.0), 25.0, 120.0, min_score=0.7, best_frame_similarity=0.95)
    c = 0.2 / 0.3
    assert ev.repetition_degree == pytest.approx(4 / 25)  # 0.16: the patent's rule says no
    assert (ev.matched_seconds, ev.best_segment_seconds, ev.matched_frames) == (pytest.approx(4.0), pytest.approx(4.0), 4)
    assert ev.best_segment_confidence == pytest.approx(c) and ev.weighted_seconds == pytest.approx(4 * c)
    want = sigmoid(1.5 * math.log1p(4 * c) + 5.0 * c + 0.25 * math.log1p(4.0) + 2.0 * 0.95 - 6.0)  # ~0.83
    p, is_copy = decide(ev, Calibration(), copy_threshold=0.5, min_copy_seconds=3.0, duration_threshold=0.3)
    assert p == pytest.approx(want) and 0.8 < p < 0.86
    assert is_copy
    # The old rule alone would miss it.
    assert decide(ev, Calibration(), copy_threshold=1.0, duration_threshold=0.3)[1] is False


def test_long_weak_partial_match_is_not_a_copy() -> None:
    # A negative: 15 s aligned at mean similarity 0.72, barely over the aligner's 0.7.
    seg = Segment(0.0, 15.0, 30.0, 45.0, 0.72, 15)
    ev = segment_evidence([seg], np.arange(20.0), 20.0, 60.0, min_score=0.7, best_frame_similarity=0.8)
    c = 0.02 / 0.3
    want = sigmoid(1.5 * math.log1p(15 * c) + 5.0 * c + 0.25 * math.log1p(15.0) + 2.0 * 0.8 - 6.0)  # ~0.09
    p, is_copy = decide(ev, Calibration(), duration_threshold=None)
    assert p == pytest.approx(want) and p < 0.1 and not is_copy
    # It outranks nothing: the clean 4 s copy of the previous test scores far higher.
    clean = segment_evidence([Segment(10.0, 14.0, 50.0, 54.0, 0.9, 4)], np.arange(25.0), 25.0, 120.0, min_score=0.7, best_frame_similarity=0.95)
    assert decide(clean)[0] > p + 0.5
    # Its repetition degree is 0.75: the patent's rule, when kept, still flags it.
    assert ev.repetition_degree == pytest.approx(0.75)
    assert decide(ev, duration_threshold=0.3)[1] is True


def test_too_short_segment_is_not_a_copy_however_confident() -> None:
    seg = Segment(0.0, 2.0, 5.0, 7.0, 0.99, 2)
    ev = segment_evidence([seg], np.arange(10.0), 10.0, 30.0, min_score=0.7, best_frame_similarity=0.99)
    p, is_copy = decide(ev, min_copy_seconds=3.0)
    assert p > 0.9 and not is_copy
    assert decide(ev, min_copy_seconds=2.0)[1] is True
    # Timestamp jitter: a 3-frame segment measuring 2.98 s passes a 3 s minimum.
    jit = segment_evidence([Segment(0.0, 2.98, 5.0, 8.0, 0.99, 3)], np.arange(10.0), 10.0, 30.0, min_score=0.7, best_frame_similarity=0.99)
    assert decide(jit, min_copy_seconds=3.0)[1] is True


def test_overlapping_segments_count_each_query_second_once() -> None:
    # The reference holds the query's seconds 2-4 twice: segments overlap on the query axis.
    segs = [Segment(0.0, 4.0, 10.0, 14.0, 0.9, 4), Segment(2.0, 6.0, 40.0, 44.0, 0.8, 4)]
    ev = segment_evidence(segs, np.arange(10.0), 10.0, 100.0, min_score=0.7)
    c1, c2 = 0.2 / 0.3, 0.1 / 0.3
    assert ev.matched_seconds == pytest.approx(6.0) and ev.matched_frames == 6
    # 0-4 at c1 (the better segment wins the overlap 2-4), 4-6 at c2.
    assert ev.weighted_seconds == pytest.approx(4 * c1 + 2 * c2)
    assert (ev.best_segment_seconds, ev.best_segment_score) == (pytest.approx(4.0), pytest.approx(0.9))
    assert ev.repetition_degree == pytest.approx(0.6)


def test_common_frame_weights_lower_the_confidence() -> None:
    # A segment made of black frames / logos (weight 0.25 each) is weak evidence.
    seg = Segment(0.0, 4.0, 10.0, 14.0, 0.9, 4)
    w = np.r_[np.full(4, 0.25), np.ones(6)]
    ev = segment_evidence([seg], np.arange(10.0), 10.0, 100.0, min_score=0.7, frame_weights=w, best_frame_similarity=0.95)
    assert ev.best_segment_confidence == pytest.approx(0.25 * 0.2 / 0.3)
    assert ev.repetition_degree == pytest.approx(0.4 * 0.25)
    assert not decide(ev)[1]
    with pytest.raises(ValueError):
        segment_evidence([seg], np.arange(10.0), 10.0, 100.0, min_score=0.7, frame_weights=np.ones(3))


def test_confidence_scale_and_no_segment() -> None:
    assert segment_confidence(0.7, 0.7) == 0.0 and segment_confidence(1.0, 0.7) == pytest.approx(1.0)
    assert segment_confidence(0.5, 0.7) == 0.0 and segment_confidence(1.2, 0.7) == 1.0
    # Normalised scale (background beta 0.8, typical background 0.735): ceiling 0.412.
    assert segment_confidence(0.306, 0.2, ceiling=0.412) == pytest.approx(0.5)
    ev = segment_evidence([], np.arange(10.0), 10.0, 30.0, min_score=0.7, best_frame_similarity=0.95)
    assert (ev.matched_seconds, ev.weighted_seconds, ev.best_segment_seconds, ev.matched_frames, ev.repetition_degree) == (0, 0, 0, 0, 0)
    p, is_copy = decide(ev, duration_threshold=0.0)  # no segment: no copy even at threshold 0
    assert p == pytest.approx(sigmoid(2.0 * 0.95 - 6.0)) and not is_copy
    # Without a segment the best frame still ranks candidates.
    worse = segment_evidence([], np.arange(10.0), 10.0, 30.0, min_score=0.7, best_frame_similarity=0.6)
    assert decide(worse)[0] < p


def test_fit_calibration_separates_and_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(0, 3, 80), rng.uniform(0, 1, 80), rng.uniform(0, 3, 80), rng.uniform(0.5, 1, 80),
                         rng.uniform(-0.5, 0.5, 80), rng.uniform(0, 1, 80)])
    X = X[np.abs(X[:, 0] + 2 * X[:, 1] - 2.5) > 0.2]  # separable by a plane, with a margin
    y = (X[:, 0] + 2 * X[:, 1] > 2.5).astype(float)
    cal = fit_calibration(X, y, l2=0.01)
    p = np.array([cal.probability(x) for x in X])
    assert np.all((p >= 0.5) == (y == 1))
    assert fit_calibration(X, y, l2=0.01) == cal  # bit-identical refit
    # At the optimum the penalised gradient vanishes (the fit is the L2 logistic regression).
    w, b = np.asarray(cal.weights), cal.bias
    grad_w = X.T @ (p - y) + 0.01 * w
    assert np.abs(grad_w).max() < 1e-5 and abs(float((p - y).sum())) < 1e-5
    # The features that carry no signal get small weights next to the ones that do.
    assert min(abs(w[0]), abs(w[1])) > 3 * max(abs(w[2:]))
    with pytest.raises(ValueError):
        fit_calibration(X, y, l2=0.0)
    with pytest.raises(ValueError):
        fit_calibration(X[:, :4], y)
    with pytest.raises(ValueError):
        fit_calibration(X, np.where(y == 1, 2.0, 0.0))
    # The same regression on any number of columns (benchmarks/feature_study.py adds columns).
    w7, b7 = fit_logistic(np.column_stack([X, np.zeros(len(X))]), y, l2=0.01)
    assert np.allclose(w7[:6], w, atol=1e-8) and abs(w7[6]) < 1e-12 and b7 == pytest.approx(b, abs=1e-8)
    w2, _ = fit_logistic(X[:, :2], y, l2=0.01)
    assert w2.shape == (2,) and w2[1] > w2[0] > 0  # the plane x0 + 2 x1 = 2.5
    w6, b6 = fit_logistic(X, y, l2=0.01)
    assert tuple(float(v) for v in w6) == cal.weights and b6 == cal.bias  # fit_calibration is this fit
    for bad_x, bad_y in ((X, y[:-1]), (X[:0], y[:0]), (X[:, 0], y)):
        with pytest.raises(ValueError):
            fit_logistic(bad_x, bad_y)


def test_invalid_calibration_raises() -> None:
    for bad in [dict(weights=(1.0, 2.0, 3.0, 4.0)), dict(weights=(1.0, float("nan"), 0.0, 0.0, 0.0, 0.0)), dict(weights=(1.0, True, 0.0, 0.0, 0.0, 0.0)),
                dict(bias=float("inf")), dict(weights=(1.0, "2", 0.0, 0.0, 0.0, 0.0))]:
        with pytest.raises(ValueError):
            Calibration(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Calibration().probability([1.0, 2.0])
    with pytest.raises(ValueError):
        Calibration().probability([1.0, float("nan"), 0.0, 0.0, 0.0, 0.0])
    # Checkpoint keys round-trip; a partial set is refused; none means "not stored".
    cal = Calibration((0.5, 1.0, -0.25, 2.0, 1.5, 0.5), -3.0)
    assert Calibration.from_keys(cal.to_keys()) == cal and set(cal.to_keys()) == set(CALIBRATION_KEYS)
    assert Calibration.from_keys({"radius": 3}) is None
    with pytest.raises(ValueError, match="together"):
        Calibration.from_keys({"calib_w0": 1.0, "calib_bias": 0.0})
    with pytest.raises(ValueError, match="together"):
        Calibration.from_keys({k: v for k, v in cal.to_keys().items() if k != "calib_w4"})  # one context weight without the other
    # A fit from before the query-context features (4 weights) gives them weight 0.
    old = {f"calib_w{i}": w for i, w in enumerate((0.5, 1.0, -0.25, 2.0))} | {"calib_bias": -3.0}
    assert Calibration.from_keys(old) == Calibration((0.5, 1.0, -0.25, 2.0, 0.0, 0.0), -3.0)
    # Extreme evidence saturates without overflow.
    assert Calibration((100.0, 0, 0, 0, 0, 0), 0).probability([50.0, 0, 0, 0, 0, 0]) == 1.0
    assert Calibration((-100.0, 0, 0, 0, 0, 0), 0).probability([50.0, 0, 0, 0, 0, 0]) == 0.0
    assert len(FEATURES) == len(Evidence(0, 0, 0, 0, 0, 0, 0, 0).features())


def test_search_params_take_the_calibration_from_the_checkpoint_keys() -> None:
    from vidret_milvus.model.checkpoint import THRESHOLD_KEYS, parse_thresholds
    from vidret_milvus.errors import ModelError
    from vidret_milvus.search import Mode, SearchParams, decision_settings

    assert set(CALIBRATION_KEYS) | {"copy_threshold", "min_copy_seconds", "repetition_rule"} <= set(THRESHOLD_KEYS)

    from vidret_milvus.model.settings import Thresholds

    tuned = Thresholds(parse_thresholds({**Calibration((0.5, 1.0, -0.25, 2.0, 1.0, 0.5), -3.0).to_keys(), "copy_threshold": 0.7,
                                         "min_copy_seconds": 4, "repetition_rule": 0, "duration_threshold": 0.35}, "config.json"))
    p = SearchParams.for_model(tuned)
    assert p.calibration == Calibration((0.5, 1.0, -0.25, 2.0, 1.0, 0.5), -3.0)
    assert (p.copy_threshold, p.min_copy_seconds, p.repetition_rule, p.duration_threshold) == (0.7, 4.0, False, 0.35)
    d = decision_settings(p)
    assert (d["copy_threshold"], d["min_copy_seconds"], d["repetition_rule"]) == (0.7, 4.0, False)
    assert d["calibration"]["weights"] == [0.5, 1.0, -0.25, 2.0, 1.0, 0.5] and d["calibration"]["bias"] == -3.0 and not d["calibration"]["hand_set"]
    # A model without the new keys keeps the defaults.
    old = SearchParams.for_model(Thresholds({"duration_threshold": 0.4}))
    assert (old.calibration, old.copy_threshold, old.min_copy_seconds, old.repetition_rule) == (Calibration(), 0.5, 3.0, True)
    assert decision_settings(old)["calibration"]["hand_set"] and "copy_threshold" not in decision_settings(SearchParams(mode=Mode.codes))
    with pytest.raises(ModelError, match="together"):
        parse_thresholds({"calib_w0": 1.0}, "config.json")
    # A checkpoint tuned before the query-context features: its four weights, the others 0.
    legacy = {f"calib_w{i}": w for i, w in enumerate((0.5, 1.0, -0.25, 2.0))} | {"calib_bias": -3.0}
    assert SearchParams.for_model(Thresholds(parse_thresholds(legacy, "config.json"))).calibration == Calibration((0.5, 1.0, -0.25, 2.0, 0.0, 0.0), -3.0)
    with pytest.raises(ModelError, match="together"):
        parse_thresholds({**legacy, "calib_w5": 1.0}, "config.json")
    with pytest.raises(ModelError, match="outside"):
        parse_thresholds({"copy_threshold": 1.5}, "config.json")
    # the code stage's vote threshold is a tuned key too, a whole number >= 1
    assert SearchParams.for_model(Thresholds(parse_thresholds({"min_code_votes": 2}, "config.json"))).min_code_votes == 2
    assert decision_settings(SearchParams(min_code_votes=3))["min_code_votes"] == 3
    for bad, why in ((0, "outside"), (1.5, "integer")):
        with pytest.raises(ModelError, match=why):
            parse_thresholds({"min_code_votes": bad}, "config.json")
    # and the shortlist size: a tuned key, reported, at least 1; the CLI still overrides it
    tuned = Thresholds(parse_thresholds({"max_candidates": 8}, "config.json"))
    assert SearchParams.for_model(tuned).max_candidates == 8
    assert SearchParams.for_model(tuned, max_candidates=50).max_candidates == 50
    assert decision_settings(SearchParams(max_candidates=5))["max_candidates"] == 5
    for bad, why in ((0, "outside"), (16385, "outside"), (2.5, "integer")):  # 16384: the CLI's bound
        with pytest.raises(ModelError, match=why):
            parse_thresholds({"max_candidates": bad}, "config.json")
    for bad_params in ({"min_copy_seconds": -1}, {"max_candidates": 0}):
        with pytest.raises(ValueError):
            SearchParams(**bad_params)


# ----------------------------------------------------------------------------- score_candidate
def _toy_candidate(mode: str, d2: float = 0.02) -> "object":
    """A 10 s query whose seconds 0-4 copy seconds 10-14 of a 30 s reference (squared L2
    ``d2`` each, plus one far match of query second 7), and three code hits of query seconds
    0, 1, 2 at 0, 3 and 16 bits, with one at 20 bits (not equal)."""
    from vidret_milvus.decision import Matches, Mode, SearchParams, score_candidate

    qi = np.array([0, 1, 2, 3, 4, 7])
    rerank = Matches(qi, np.array([10.0, 11, 12, 13, 14, 25], np.float32), np.array([d2] * 5 + [1.5], np.float32))
    codes = Matches(np.array([0, 1, 2, 5]), np.array([10.0, 11, 12, 20], np.float32), np.array([0, 3, 16, 20], np.float32))
    params = SearchParams(mode=Mode(mode), repetition_rule=False)
    return score_candidate(params, video_id=7, path="/refs/r.mp4", duration=30.0, query_times=np.arange(10, dtype=np.float64),
                           query_duration=10.0, frame_interval=1.0, rerank=rerank, codes=codes, frame_weights=np.ones(10))


def test_score_candidate_mode_1_nearest_distance() -> None:
    r = _toy_candidate("embedding")
    # min distance sqrt(0.02) = 0.1414 < 0.8: a copy; score 1 - 0.1414 / 2 = 0.9293
    assert r.is_copy and r.min_distance == pytest.approx(math.sqrt(0.02), abs=1e-6)
    assert r.score == pytest.approx(1 - math.sqrt(0.02) / 2, abs=1e-6)
    far = _toy_candidate("embedding", d2=0.81)  # distance 0.9 >= 0.8
    assert not far.is_copy and far.score == pytest.approx(1 - 0.9 / 2, abs=1e-6)


def test_score_candidate_mode_2_segment_and_calibrated_confidence() -> None:
    r = _toy_candidate("duration")
    # One segment: query 0-5 s onto reference 10-15 s, mean similarity 1 - 0.02 / 2 = 0.99;
    # the far match (distance 1.22 > frame_match_l2 1.0) is no frame match.
    assert [(g.query_start, g.query_end, g.ref_start, g.ref_end, g.frames) for g in r.segments] == [(0.0, 5.0, 10.0, 15.0, 5)]
    assert r.segments[0].score == pytest.approx(0.99, abs=1e-6) and r.matched_seconds == pytest.approx(5.0)
    # c = (0.99 - 0.7) / 0.3 = 0.9667; x = [log1p(5 c), c, log1p(5), 0.99] with the hand-set
    # weights (1.5, 5, 0.25, 2) and bias -6: z = 2.6454 + 4.8333 + 0.4479 + 1.98 - 6 = 3.9067
    c = 0.29 / 0.3
    z = 1.5 * math.log1p(5 * c) + 5.0 * c + 0.25 * math.log1p(5.0) + 2.0 * 0.99 - 6.0
    assert r.confidence == pytest.approx(sigmoid(z), abs=1e-6) and r.score == r.confidence
    assert r.confidence == pytest.approx(0.9803, abs=1e-4) and r.is_copy  # p >= 0.5 and 5 s >= 3 s
    # The repetition degree is reported: 5 s over the shorter video's 10 s.
    assert r.repetition_degree == pytest.approx(0.5)


def test_score_candidate_mode_3_equal_codes() -> None:
    r = _toy_candidate("codes")
    # Query seconds 0, 1, 2 have codes within 16 bits (second 5's 20 bits do not count):
    # 3 s / min(10, 30) s = 0.3 >= 0.2
    assert r.code_ratio == pytest.approx(0.3) and r.score == pytest.approx(0.3) and r.is_copy


def test_nearest_per_query_frame_keeps_k_per_frame_ties_to_the_earlier_time() -> None:
    from vidret_milvus.decision import Matches, nearest_per_query_frame

    m = Matches(np.array([1, 0, 0, 0, 1]), np.array([5.0, 3.0, 1.0, 2.0, 4.0]), np.array([0.2, 0.5, 0.1, 0.1, 0.3]))
    got = nearest_per_query_frame(m, 2)
    assert got.query_index.tolist() == [0, 0, 1, 1]
    assert got.t.tolist() == [1.0, 2.0, 5.0, 4.0] and got.distance.tolist() == pytest.approx([0.1, 0.1, 0.2, 0.3])


# ----------------------------------------------------------------------------- query context
def _ev(best_frame: float, seconds: float = 0.0) -> Evidence:
    return Evidence(matched_seconds=seconds, weighted_seconds=seconds, best_segment_seconds=seconds, best_segment_score=0.0,
                    best_segment_confidence=0.0, matched_frames=int(seconds), best_frame_similarity=best_frame, repetition_degree=0.0)


def test_query_context_margin_and_rank_by_hand() -> None:
    from vidret_milvus.decision import with_query_context

    out = with_query_context([_ev(0.9), _ev(0.7), _ev(0.9), _ev(0.5)])
    # margins over the best OTHER candidate: 0.9-0.9, 0.7-0.9, 0.9-0.9, 0.5-0.9; ranks: how many strictly better
    assert [round(e.best_frame_margin, 6) for e in out] == [0.0, -0.2, 0.0, -0.4]
    assert [e.best_frame_rank for e in out] == [0, 2, 0, 3]
    assert out[1].features()[4:].tolist() == pytest.approx([-0.2, 1 / 3])
    (alone,) = with_query_context([_ev(0.8)])
    assert (alone.best_frame_margin, alone.best_frame_rank) == (0.8, 0)
    # before the context is applied a candidate counts as the only one
    assert _ev(0.8).features()[4:].tolist() == [0.8, 1.0]
    assert with_query_context([]) == []


def test_query_context_is_taken_where_each_candidate_matches_best() -> None:
    from vidret_milvus.decision import with_query_context

    def ev(frames: list[float]) -> Evidence:
        return dataclasses.replace(_ev(max(frames)), frame_similarity=np.array(frames))

    # A and C match query frame 0 (look-alikes: they compete); B matches frame 2 (another copy)
    a, b, c = with_query_context([ev([0.9, 0.2, 0.0, 0.0]), ev([0.1, 0.3, 0.8, 0.0]), ev([0.85, 0.0, 0.5, 0.0])])
    assert (round(a.best_frame_margin, 6), a.best_frame_rank) == (0.05, 0)  # 0.9 - max(0.1, 0.85)
    assert (round(b.best_frame_margin, 6), b.best_frame_rank) == (0.3, 0)  # 0.8 - max(0.0, 0.5): not 0.8 - 0.9
    assert (round(c.best_frame_margin, 6), c.best_frame_rank) == (-0.05, 1)  # 0.85 - 0.9
    # A candidate that does not compete (the query's own file) is nobody's rival: C now leads
    # at frame 0 over B's 0.1, and A itself still meets C there
    a2, b2, c2 = with_query_context([ev([0.9, 0.2, 0.0, 0.0]), ev([0.1, 0.3, 0.8, 0.0]), ev([0.85, 0.0, 0.5, 0.0])], compete=[False, True, True])
    assert (round(c2.best_frame_margin, 6), c2.best_frame_rank) == (0.75, 0)
    assert (round(a2.best_frame_margin, 6), a2.best_frame_rank) == (0.05, 0) and (round(b2.best_frame_margin, 6), b2.best_frame_rank) == (0.3, 0)
    # Nothing competes (a stored video searched, recalling only itself): no crash, no rival
    (alone,) = with_query_context([ev([0.9, 0.2, 0.0, 0.0])], compete=[False])
    assert (round(alone.best_frame_margin, 6), alone.best_frame_rank) == (0.9, 0)
    x, y = with_query_context([ev([0.9, 0.2, 0.0, 0.0]), ev([0.1, 0.3, 0.8, 0.0])], compete=[False, False])
    assert (round(x.best_frame_margin, 6), x.best_frame_rank, round(y.best_frame_margin, 6), y.best_frame_rank) == (0.9, 0, 0.8, 0)
    # No frame match at all: behind every rival, margin minus the best rival similarity anywhere
    # (not whatever matches query frame 0)
    _, _, z = with_query_context([ev([0.0, 0.6, 0.0, 0.0]), ev([0.0, 0.0, 0.7, 0.0]), ev([0.0, 0.0, 0.0, 0.0])])
    assert (round(z.best_frame_margin, 6), z.best_frame_rank) == (-0.7, 2)
    # by best frame alone B would lose to A: what the per-frame context avoids
    g = with_query_context([_ev(0.9), _ev(0.8), _ev(0.85)])
    assert (round(g[1].best_frame_margin, 6), g[1].best_frame_rank) == (-0.1, 2)


def test_decide_query_scores_each_candidate_against_the_others() -> None:
    from vidret_milvus.decision import Calibration, Mode, SearchParams, decide_query

    params = SearchParams(mode=Mode.duration, repetition_rule=False, copy_threshold=0.5, min_copy_seconds=3.0,
                          calibration=Calibration((0, 0, 0, 0, 10.0, 0), 0.0))
    first = _toy_candidate("duration", d2=0.1)  # best frame 1 - 0.1/2 = 0.95, a 5 s segment
    second = dataclasses.replace(first, video_id=8, evidence_detail=_ev(0.6, seconds=5.0))
    a, b = decide_query(params, [first, second])
    assert a.confidence == pytest.approx(sigmoid(10 * (0.95 - 0.6))) and a.score == a.confidence and a.is_copy
    assert b.confidence == pytest.approx(sigmoid(10 * (0.6 - 0.95))) and not b.is_copy
    assert a.evidence.tolist()[4:] == pytest.approx([0.35, 1.0]) and b.evidence.tolist()[4:] == pytest.approx([-0.35, 0.5])
    # mode 1 keeps its own verdict and score; the confidence still carries the context
    e1 = _toy_candidate("embedding", d2=0.1)
    e2 = dataclasses.replace(e1, video_id=8, evidence_detail=_ev(0.6, seconds=5.0))
    c, _ = decide_query(dataclasses.replace(params, mode=Mode.embedding), [e1, e2])
    assert (c.is_copy, c.score) == (e1.is_copy, e1.score) and c.confidence == pytest.approx(a.confidence)
