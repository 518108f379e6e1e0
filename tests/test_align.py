"""Alignment of frame matches into segments, on synthetic match sets.

A match set is what the re-rank stage hands to the aligner for one (query, reference) pair:
per query frame (1 fps) its few nearest reference frames with their similarity. The copies
below are built from a true mapping query time -> reference time, with the neighbouring
reference frames as weaker alternatives (adjacent seconds of a shot look alike) and random
unrelated matches as noise, as the real pipeline produces.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidret_milvus.align import (
    AlignParams,
    Segment,
    align,
    align_offset_voting,
    covering_score,
    dominant_speed,
    repetition_degree,
    union_length,
)

P = AlignParams()


def matches(
    copies: list[tuple[float, float, float, float]], q_len: int, r_len: int, seed: int = 0, noise: int = 2,
    sim: float = 0.85, skip: tuple[int, ...] = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Matches for copies ``(q0, q1, r0, speed)``: query second t in [q0, q1) shows reference
    time r0 + speed * (t - q0). Query frames in ``skip`` get no true match (a gap). Each query
    frame also gets ``noise`` random matches with similarity 0.5-0.6."""
    rng = np.random.default_rng(seed)
    q, r, s = [], [], []
    for q0, q1, r0, speed in copies:
        for t in np.arange(q0, q1, 1.0):
            if int(t) in skip:
                continue
            rt = r0 + speed * (t - q0)
            near = float(np.floor(rt))  # the reference frame on the 1 fps grid
            alt = min(0.7, sim - 0.1)
            for dr, sv in ((0.0, sim + rng.uniform(-0.05, 0.05)), (-1.0, alt), (1.0, alt)):
                if 0 <= near + dr < r_len:
                    q.append(t)
                    r.append(near + dr)
                    s.append(sv)
    for t in range(q_len):
        for _ in range(noise):
            q.append(float(t))
            r.append(float(rng.integers(0, r_len)))
            s.append(rng.uniform(0.5, 0.6))
    return np.array(q), np.array(r), np.array(s)


def close(seg: Segment, q0: float, q1: float, r0: float, r1: float, tol: float = 1.5) -> bool:
    return (abs(seg.query_start - q0) <= tol and abs(seg.query_end - q1) <= tol
            and abs(seg.ref_start - r0) <= tol and abs(seg.ref_end - r1) <= tol)


def test_plain_offset_copy() -> None:
    q, r, s = matches([(3, 15, 20, 1.0)], q_len=20, r_len=60)
    for fn in (align, align_offset_voting):
        segs = fn(q, r, s, P)
        assert len(segs) == 1, (fn.__name__, segs)
        assert close(segs[0], 3, 15, 20, 32), segs
        assert segs[0].score > 0.8 and segs[0].frames >= 11


def test_gap_stays_one_segment() -> None:
    # Frames 8-10 of the copy have no match (a dropped / replaced stretch of 3 s).
    q, r, s = matches([(2, 20, 30, 1.0)], q_len=24, r_len=60, skip=(8, 9, 10))
    segs = align(q, r, s, P)
    assert len(segs) == 1 and close(segs[0], 2, 20, 30, 48), segs


@pytest.mark.parametrize("speed", [0.5, 2.0])
def test_speed_change(speed: float) -> None:
    # speed 2: the query plays the reference twice as fast (12 query s = 24 reference s).
    q_len = 16
    q, r, s = matches([(2, 14, 10, speed)], q_len=q_len, r_len=60, seed=int(speed * 10))
    segs = align(q, r, s, P)
    assert len(segs) == 1, segs
    g = segs[0]
    assert close(g, 2, 14, 10, 10 + 12 * speed, tol=2.0), g
    assert repetition_degree(segs, q_len, 60) >= 0.6
    # The offset vote spreads a speed-changed copy over many offsets: it breaks it up.
    base = align_offset_voting(q, r, s, P)
    assert max((b.query_length for b in base), default=0) <= g.query_length - 2, base


def test_two_segments() -> None:
    q, r, s = matches([(0, 8, 40, 1.0), (12, 22, 5, 1.0)], q_len=25, r_len=60)
    for fn in (align, align_offset_voting):
        segs = fn(q, r, s, P)
        assert len(segs) == 2, (fn.__name__, segs)
        assert close(segs[0], 0, 8, 40, 48) and close(segs[1], 12, 22, 5, 15), segs


def test_no_copy_gives_nothing() -> None:
    q, r, s = matches([], q_len=30, r_len=60, noise=3)
    assert align(q, r, s, P) == []
    assert align_offset_voting(q, r, s, P) == []
    assert align(np.zeros(0), np.zeros(0), np.zeros(0), P) == []


def test_repeated_content_in_reference() -> None:
    # The reference holds the copied excerpt twice (a replay): both places are found.
    q, r, s = matches([(2, 12, 10, 1.0), (2, 12, 40, 1.0)], q_len=15, r_len=60)
    segs = align(q, r, s, P)
    assert len(segs) == 2, segs
    assert sorted(round(g.ref_start) for g in segs) == [10, 40]
    assert all(close(g, 2, 12, g.ref_start, g.ref_start + 10) for g in segs)
    # Each query second counts once in the repetition degree.
    assert repetition_degree(segs, 15, 60) == pytest.approx(10 / 15, abs=0.07)


def test_repeated_content_in_query() -> None:
    # The query shows the same reference excerpt twice.
    q, r, s = matches([(0, 8, 20, 1.0), (14, 22, 20, 1.0)], q_len=24, r_len=60)
    segs = align(q, r, s, P)
    assert len(segs) == 2 and close(segs[0], 0, 8, 20, 28) and close(segs[1], 14, 22, 20, 28), segs


def test_static_shot_does_not_multiply_segments() -> None:
    # A 10 s static shot: every query second matches every reference second of it equally.
    q, r, s = [], [], []
    for t in range(10):
        for u in range(30, 40):
            q.append(t)
            r.append(u)
            s.append(0.9)
    segs = align(np.array(q, float), np.array(r, float), np.array(s), P)
    assert len(segs) == 1 and segs[0].query_length == pytest.approx(10), segs


def test_short_or_dissimilar_paths_dropped() -> None:
    q, r, s = matches([(3, 5, 20, 1.0)], q_len=10, r_len=60, noise=0)  # 2 frames only
    assert align(q, r, s, P) == []
    q, r, s = matches([(0, 10, 20, 1.0)], q_len=10, r_len=60, noise=0, sim=0.55)
    assert align(q, r, s, P) == []


def test_weights_steer_paths_and_deterministic() -> None:
    q, r, s = matches([(3, 15, 20, 1.0)], q_len=20, r_len=60, seed=4)
    a = align(q, r, s, P)
    perm = np.random.default_rng(1).permutation(len(q))
    assert align(q[perm], r[perm], s[perm], P) == a
    # Weight 0 on every match: no path has any weight, nothing is found.
    assert align(q, r, s, P, weight=np.zeros(len(q))) == []
    with pytest.raises(ValueError):
        align(q, r[:-1], s, P)


def test_covering_score_and_union() -> None:
    segs = [Segment(0, 4, 10, 14, 0.8, 4), Segment(2, 6, 30, 34, 0.9, 4)]
    cov = covering_score(segs, np.arange(8.0))
    assert cov[:6].tolist() == [0.8, 0.8, 0.9, 0.9, 0.9, 0.9] and np.isnan(cov[6:]).all()
    assert union_length([(0, 4), (2, 6), (10, 11)]) == 7
    assert repetition_degree(segs, 10, 100) == pytest.approx(0.6)


def test_near_static_shots_follow_the_diagonal() -> None:
    # The reference is a series of 3 s near-static shots: within a shot every query second
    # matches every reference second about equally (+-0.04). The copy (query 3-12 -> reference
    # 6-15, speed 1) must still be placed exactly, not drift inside the shots.
    rng = np.random.default_rng(7)
    q, r, s = [], [], []
    for t in range(3, 12):
        shot = (t - 3 + 6) // 3
        for u in range(3 * shot, 3 * shot + 3):
            q.append(t)
            r.append(u)
            s.append(0.84 + rng.uniform(-0.04, 0.04))
    segs = align(np.array(q, float), np.array(r, float), np.array(s), P)
    assert len(segs) == 1 and close(segs[0], 3, 12, 6, 15, tol=0.5), segs


def test_weak_fast_copy_found() -> None:
    # A 2x copy only a little above the segment threshold (0.7): the dominant speed (2) costs it nothing.
    q, r, s = matches([(2, 14, 10, 2.0)], q_len=16, r_len=60, sim=0.76, seed=9)
    segs = align(q, r, s, P)
    assert len(segs) == 1 and close(segs[0], 2, 14, 10, 34, tol=2.0), segs


def test_common_frame_weights() -> None:
    from vidret_milvus.search import common_frame_weights

    # Frame 0 recalls 1 video, frame 1 recalls 4 (the allowance), frame 2 recalls 24, frame 3 none.
    qi = np.r_[0, 0, [1] * 4, [2] * 24, 2]
    vid = np.r_[7, 7, 1, 2, 3, 4, np.arange(24), 0]
    w = common_frame_weights(qi, vid, 4, free_videos=4)
    assert w[0] == 1 and w[1] == 1 and w[3] == 1
    assert w[2] == pytest.approx(np.log2(5) / np.log2(25)) and w[2] == pytest.approx(0.5)
    assert (common_frame_weights(qi, vid, 4, free_videos=0) == 1).all()


def test_background_similarity() -> None:
    from vidret_milvus.search import Background, background_similarity

    rng = np.random.default_rng(0)
    bg = rng.normal(size=(50, 8)).astype(np.float32)
    bg /= np.linalg.norm(bg, axis=1, keepdims=True)
    q = bg[:3] * 0.9 + 0.1 * rng.normal(size=(3, 8)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    want = np.sort(q @ bg.T, axis=1)[:, ::-1]
    assert np.allclose(background_similarity(q, bg), want[:, 0], atol=1e-5)
    assert np.allclose(background_similarity(q, bg, k=3), want[:, 2], atol=1e-5)
    # Frames of the candidate video itself are no background: excluded.
    vids = np.arange(50)
    sims = Background(bg, vids).similarity(q, 1)
    own = sims.kth(exclude_video=0)
    assert own[0] < want[0, 0] - 1e-6 and np.isclose(own[0], want[0, 1], atol=1e-5)
    # A background made only of the candidate's own frames (a store with one video) is none.
    alone = Background(bg, np.full(50, 7)).similarity(q, 1)
    assert (alone.kth(exclude_video=7) == 0).all() and np.allclose(alone.kth(exclude_video=8), want[:, 0], atol=1e-5)
    assert (alone.kth(exclude_video=7, default=0.7) == 0.7).all()  # the model's typical background instead


@pytest.mark.parametrize("length", [3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_short_copy_found_with_default_params(length: int, seed: int) -> None:
    # A 3-4 s copy (3-4 matched frames at 1 fps) inside a 25 s upload, with noise matches.
    q, r, s = matches([(10, 10 + length, 42, 1.0)], q_len=25, r_len=90, seed=seed, sim=0.82)
    segs = align(q, r, s, P)
    assert len(segs) == 1 and close(segs[0], 10, 10 + length, 42, 42 + length, tol=0.5), segs
    assert segs[0].frames == length and segs[0].query_length == pytest.approx(length)


def test_two_short_copies_of_one_reference() -> None:
    # Query 2-6 s shows reference 40-44 s, query 15-19 s shows reference 10-14 s (each 4 s),
    # and query 7-10 s reference 70-73 s (3 s, a third excerpt).
    q, r, s = matches([(2, 6, 40, 1.0), (7, 10, 70, 1.0), (15, 19, 10, 1.0)], q_len=25, r_len=90, sim=0.82, seed=5)
    segs = align(q, r, s, P)
    assert len(segs) == 3, segs
    assert close(segs[0], 2, 6, 40, 44, 0.5) and close(segs[1], 7, 10, 70, 73, 0.5) and close(segs[2], 15, 19, 10, 14, 0.5), segs


def test_two_short_copies_close_in_query_and_reference() -> None:
    # Two 4 s excerpts 1 s apart in the query, from reference places 30 s apart in the same
    # order: the reference jump is far beyond the speed bound, so they stay two segments.
    q, r, s = matches([(3, 7, 10, 1.0), (8, 12, 40, 1.0)], q_len=15, r_len=60, sim=0.82, seed=6)
    segs = align(q, r, s, P)
    assert len(segs) == 2 and close(segs[0], 3, 7, 10, 14, 0.5) and close(segs[1], 8, 12, 40, 44, 0.5), segs


def test_two_copies_of_two_references() -> None:
    # One query holds 4 s of reference A (query 1-5) and 5 s of reference B (query 12-17): the
    # aligner runs per (query, reference) pair, and each pair sees its own copy plus the
    # other's frames as unrelated (noise) matches.
    qa, ra, sa = matches([(1, 5, 20, 1.0)], q_len=20, r_len=60, sim=0.82, seed=7)
    qb, rb, sb = matches([(12, 17, 33, 1.0)], q_len=20, r_len=60, sim=0.82, seed=8)
    a, b = align(qa, ra, sa, P), align(qb, rb, sb, P)
    assert len(a) == 1 and close(a[0], 1, 5, 20, 24, 0.5), a
    assert len(b) == 1 and close(b[0], 12, 17, 33, 38, 0.5), b


def test_short_copy_with_a_dropped_frame() -> None:
    # 4 s copied, one frame in the middle without its match: 3 matched frames still make a
    # segment, spanning the 4 s.
    q, r, s = matches([(6, 10, 50, 1.0)], q_len=20, r_len=90, sim=0.82, seed=3, skip=(8,))
    segs = align(q, r, s, P)
    assert len(segs) == 1 and segs[0].frames == 3 and close(segs[0], 6, 10, 50, 54, 0.5), segs


def test_short_copy_survives_a_dominant_speed_voted_by_weak_matches() -> None:
    # A 3 s copy at the original speed (query 20-22 -> reference 50-52, similarity ~0.8) and six
    # weak unrelated matches (0.78, isolated: more than max_gap apart) that happen to line up
    # at speed 2. They out-vote the copy for the pair's dominant speed; a step at speed 1
    # must still cost nothing, or the copy breaks into single frames and is lost.
    decoy_q = np.array([0.0, 6.0, 12.0, 30.0, 36.0, 42.0])
    q = np.r_[20.0, 21.0, 22.0, decoy_q]
    r = np.r_[50.0, 51.0, 52.0, 2 * decoy_q + 5]
    s = np.r_[0.79, 0.8, 0.79, np.full(6, 0.78)]
    assert dominant_speed(q, r, s - P.min_score, P) == pytest.approx(2.0)
    segs = align(q, r, s, P)
    assert len(segs) == 1 and close(segs[0], 20, 23, 50, 53, 0.01) and segs[0].frames == 3, segs


def test_no_segment_when_the_best_frames_average_under_min_score() -> None:
    # One strong frame among weak ones on the diagonal: the 3 best per-second maxima average
    # (0.9 + 0.45 + 0.45) / 3 = 0.6 < 0.7, so no path of min_frames=3 can reach min_score.
    q = np.arange(6, dtype=float)
    s = np.array([0.9, 0.45, 0.45, 0.45, 0.45, 0.45])
    assert align(q, q + 10, s, AlignParams(min_score=0.7, min_frames=3, path_bias=0.0)) == []
    # Three strong frames: with the default bias (min_score) the weak ones weigh < 0, so the
    # path is the three strong seconds (mean 0.9): one segment.
    s2 = np.array([0.9, 0.9, 0.9, 0.45, 0.45, 0.45])
    segs = align(q, q + 10, s2, AlignParams(min_score=0.7, min_frames=3))
    assert [(g.query_start, g.query_end, g.ref_start, g.frames) for g in segs] == [(0.0, 3.0, 10.0, 3)]


GOLDEN = Path(__file__).parent / "data" / "align_golden.json"


def _random_match_sets(seed: int):  # noqa: ANN202
    """Seeded random match sets: unrelated matches, offset copies with noise, speed changes."""
    rng = np.random.default_rng(seed)
    for it in range(60):
        nq, n = int(rng.integers(1, 30)), int(rng.integers(0, 120))
        q = rng.integers(0, nq, n).astype(float)
        kind = it % 3
        if kind == 0:
            r = rng.uniform(0, 100, n)
        elif kind == 1:
            r = q + rng.integers(-2, 3, n) + rng.choice([0, 30], n)
        else:
            r = np.round(q * rng.choice([0.5, 1, 2]) + rng.normal(0, 1, n))
        sim = rng.uniform(0.2, 1, n)
        w = rng.uniform(0, 1, n) if it % 2 else None
        p = AlignParams(min_score=float(rng.choice([0.3, 0.5, 0.7])), min_frames=int(rng.integers(1, 6)), max_rejected=int(rng.choice([3, 30])))
        vote = np.clip(rng.normal(0.1, 0.2, n), 0, None)
        yield q, r, sim, w, p, vote


@pytest.mark.parametrize("seed", range(4))
def test_fast_aligner_equals_the_recorded_outputs_exactly(seed: int) -> None:
    """The plain-Python DP, the one-key speed vote and the tighter early stop changed nothing:
    segments (times, scores, frame counts, bit for bit) and speeds equal those the aligner gave
    before the speed-up of 2026-12-03 on these match sets (tests/data/align_golden.json,
    recorded with that code: 493 segments)."""
    golden = json.loads(GOLDEN.read_text())[str(seed)]
    for (q, r, sim, w, p, vote), want in zip(_random_match_sets(seed), golden, strict=True):
        got = [[g.query_start, g.query_end, g.ref_start, g.ref_end, g.score, g.frames] for g in align(q, r, sim, p, weight=w)]
        assert got == want["segments"]
        assert dominant_speed(np.sort(q), r, vote, p) == want["speed"]
