"""Temporal alignment of frame matches into copied segments.

Two aligners with one signature, ``fn(q_t, r_t, sim, params, weight=None) -> list[Segment]``:

:func:`align` (the default; Temporal-Network style)
    Nodes are frame matches (query time, reference time, similarity). An edge joins match i
    to a later match j when the query time advances by at most ``max_gap`` seconds and the
    reference time advances at a speed ratio within ``[1/max_speed, max_speed]`` (one frame
    interval of slack either way, since both videos are sampled on their own grid; the
    reference may also hold still: static shots, slow motion). Each node weighs
    ``weight * (similarity - path_bias)`` (the bias defaults to ``min_score``), and each edge
    costs ``drift_cost`` per second that it drifts from the pair's dominant speed (a Hough
    vote over speeds, :func:`dominant_speed`; 1 unless another speed lines up clearly more
    matches) or from speed 1, whichever is nearer, which picks the straight path through
    near-static shots (a step at speed 1 is never charged: a dominant speed voted by weak
    unrelated matches must not break up a short copy at the original speed, nor a second
    copy at another speed than the first); the heaviest path (dynamic programming over the
    DAG) is one copied segment. Its matches are removed, together with every match lying
    within ``max_gap`` of the path in reference time over the path's query span (the
    alternative matches of the same copied content), and the search repeats, so several
    segments in one pair are found: several copied excerpts, a query that repeats a
    reference excerpt, or a reference that holds the query's content more than once.
    Paths that are too short (``min_frames``), too dissimilar (mean similarity under
    ``min_score``), too fast or slow as a whole, or that overlap an already accepted segment
    on both axes (``max_overlap``) are dropped. Gaps up to ``max_gap`` seconds (dropped or
    inserted frames, an edited-out shot) and speed changes of 0.5-2x stay one segment.

:func:`align_offset_voting` (the baseline)
    The classic temporal Hough vote: every match votes for its offset ``ref - query`` (bins
    of one frame interval, weighted by ``weight * (similarity - path_bias)``, smoothed over the neighbouring bins); the
    best offset's matches, split where the query jumps more than ``max_gap``, become
    segments; repeat on what is left. Exact for copies at the original speed, but a speed
    change spreads a copy over many offsets, so it breaks it up or misses it.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

_EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class Segment:
    query_start: float
    query_end: float
    ref_start: float
    ref_end: float
    score: float  # mean frame similarity along the path
    frames: int

    @property
    def query_length(self) -> float:
        return self.query_end - self.query_start

    @property
    def ref_length(self) -> float:
        return self.ref_end - self.ref_start

    def to_json(self) -> dict[str, float]:
        return {
            "query_start": round(self.query_start, 3),
            "query_end": round(self.query_end, 3),
            "ref_start": round(self.ref_start, 3),
            "ref_end": round(self.ref_end, 3),
            "score": round(self.score, 4),
        }


@dataclasses.dataclass(frozen=True)
class AlignParams:
    max_gap: float = 5.0  # seconds the query time may jump between two matches of a path
    max_speed: float = 2.0  # speed change tolerated (0.5x .. 2x)
    min_frames: int = 3
    # Mean similarity along a segment. 0.7 was chosen on the tuning set (make_dataset.py --seed 1):
    # negatives flagged 45 % -> 0 %, copies detected 90 % -> 82.5 % at repetition >= 0.3.
    min_score: float = 0.7
    max_segments: int = 10
    frame_interval: float = 1.0  # 1 / sampling fps: a match at t covers [t, t + interval)
    # Subtracted from each match's similarity to give its node weight (None: ``min_score``): a
    # match lengthens a path only by how much it beats the bias, so segment ends stay tight
    # and weak stretches inside a copy are jumped over (within max_gap) rather than walked.
    path_bias: float | None = None
    # A segment overlapping an accepted one by more than this fraction (of its own length) on
    # the query axis AND on the reference axis is the same copy found twice: dropped.
    max_overlap: float = 0.5
    # Weight lost per second that a path step drifts from the pair's dominant speed or speed 1 (see
    # align()): resolves the ambiguity of near-static shots, where every frame of a shot
    # matches every frame of its copy about equally.
    drift_cost: float = 0.1
    # Rejected paths tried before giving up (bounds the work on unrelated pairs).
    max_rejected: int = 30

    def __post_init__(self) -> None:
        if self.max_speed < 1.0:
            raise ValueError("max_speed must be >= 1")
        if self.max_gap <= 0 or self.frame_interval <= 0:
            raise ValueError("max_gap and frame_interval must be > 0")


def _inputs(q_t: np.ndarray, r_t: np.ndarray, sim: np.ndarray, weight: np.ndarray | None) -> tuple[np.ndarray, ...]:
    q_t, r_t, sim = (np.asarray(a, np.float64).ravel() for a in (q_t, r_t, sim))
    w = np.ones(len(q_t)) if weight is None else np.asarray(weight, np.float64).ravel()
    if not (len(q_t) == len(r_t) == len(sim) == len(w)):
        raise ValueError("q_t, r_t, sim (and weight) must have the same length")
    if not (np.all(np.isfinite(q_t)) and np.all(np.isfinite(r_t)) and np.all(np.isfinite(sim)) and np.all(np.isfinite(w))):
        raise ValueError("q_t, r_t, sim and weight must be finite")
    order = np.lexsort((r_t, q_t))
    return q_t[order], r_t[order], sim[order], np.clip(w[order], 0.0, None)


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _duplicate(seg: Segment, accepted: list[Segment], max_overlap: float) -> bool:
    for g in accepted:
        oq = _overlap(seg.query_start, seg.query_end, g.query_start, g.query_end) / max(seg.query_length, _EPS)
        orf = _overlap(seg.ref_start, seg.ref_end, g.ref_start, g.ref_end) / max(seg.ref_length, _EPS)
        if oq > max_overlap and orf > max_overlap:
            return True
    return False


def _segment(q: np.ndarray, r: np.ndarray, s: np.ndarray, interval: float) -> Segment:
    return Segment(
        query_start=float(q.min()), query_end=float(q.max() + interval),
        ref_start=float(r.min()), ref_end=float(r.max() + interval),
        score=float(s.mean()), frames=len(q),
    )


def _acceptable(seg: Segment, params: AlignParams, accepted: list[Segment]) -> bool:
    if seg.frames < params.min_frames or seg.score < params.min_score - _EPS:
        return False
    # The pairwise speed bound lets a long path drift (many query seconds onto one held
    # reference frame); bound the whole segment's speed too.
    iv = params.frame_interval
    if seg.ref_length + iv < seg.query_length / params.max_speed - _EPS or seg.query_length + iv < seg.ref_length / params.max_speed - _EPS:
        return False
    return not _duplicate(seg, accepted, params.max_overlap)


@functools.lru_cache(maxsize=16)
def _speed_grid(max_speed: float, steps: int) -> np.ndarray:
    grid = np.unique(np.r_[np.geomspace(1.0 / max_speed, max_speed, steps), 1.0])
    grid.flags.writeable = False
    return grid


def dominant_speed(q: np.ndarray, r: np.ndarray, vote: np.ndarray, params: AlignParams, steps: int = 9) -> float:
    """The playback speed (reference seconds per query second) that lines up the most match
    weight: a Hough vote on ``r - speed * q`` over a geometric grid of speeds within
    ``[1/max_speed, max_speed]``; speed 1 unless another is clearly (10 %) better."""
    if len(q) == 0 or params.max_speed <= 1.0 or not np.any(vote > 0):
        return 1.0
    grid = _speed_grid(params.max_speed, steps)
    q0 = q - q.min()

    qf = np.round(q0 / params.frame_interval).astype(np.int64)
    # Per speed, each query frame counts once per offset bin (its best match within +-1 bin),
    # so a static block, which any speed fits, favours no speed. All speeds in one pass: rows
    # are speeds, and bins are numbered per speed from that speed's lowest one; one integer key
    # per (speed, bin, query frame), sorted, gives each group's best weight.
    m = len(grid)
    b = np.round((r[None, :] - grid[:, None] * q0[None, :]) / params.frame_interval).astype(np.int64)
    b = np.concatenate([b - 1, b, b + 1], axis=1)
    b -= b.min(axis=1, keepdims=True)
    width = int(b.max()) + 1
    nf = int(qf.max()) + 1
    cell = (np.arange(m)[:, None] * width + b).ravel()
    key = cell * nf + np.tile(qf, 3 * m)
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    top = np.maximum.reduceat(np.tile(vote, 3 * m)[order], starts)
    tally = np.bincount(key[starts] // nf, weights=top, minlength=m * width).reshape(m, width)
    scores = {float(v): float(tally[i].max()) for i, v in enumerate(grid)}
    best = max(scores, key=lambda v: (scores[v], -abs(np.log(v))))
    return best if scores[best] > 1.1 * scores[1.0] else 1.0


def align(
    q_t: np.ndarray, r_t: np.ndarray, sim: np.ndarray, params: AlignParams = AlignParams(), weight: np.ndarray | None = None
) -> list[Segment]:
    """Segments from matches ``(q_t[k], r_t[k], sim[k])`` of one (query, reference) pair.

    ``weight`` (optional, per match, in [0, 1]) scales a match's node weight, so that matches
    of uninformative query frames (black, logos; see ``search``) steer paths less; segment
    scores and the ``min_score`` filter use the plain similarities. Ties between equally
    heavy paths go to the one ending earliest in query time, then in reference time (the
    sort order), so results are deterministic. Returned sorted by query, then reference start.
    """
    q, r, s, w = _inputs(q_t, r_t, sim, weight)
    bias = params.min_score if params.path_bias is None else params.path_bias
    node = w * (s - bias)
    alive = np.ones(len(q), bool)
    segments: list[Segment] = []
    rejected = 0
    iv, sp, gap = params.frame_interval, params.max_speed, params.max_gap
    # Predecessor windows depend only on query times: compute them once.
    lo_all = np.searchsorted(q, q - gap - _EPS, side="left")
    hi_all = np.searchsorted(q, q - _EPS, side="left")
    q_l, r_l, node_l = q.tolist(), r.tolist(), node.tolist()
    lo_l, hi_l = lo_all.tolist(), hi_all.tolist()
    while alive.any() and len(segments) < params.max_segments and rejected < params.max_rejected:
        # No acceptable segment can come from what is left: a path visits each query time at
        # most once, so it needs min_frames distinct query times, and its mean similarity is at
        # most the mean of the min_frames best per-time maxima (saves the work on the many
        # unrelated candidates of a large store; exact, the output is unchanged).
        qa = q[alive]
        tops = np.maximum.reduceat(s[alive], np.flatnonzero(np.r_[True, qa[1:] != qa[:-1]]))
        need = max(1, params.min_frames)
        if len(tops) < need or np.sort(tops)[-need:].mean() < params.min_score - _EPS:
            break
        speed = dominant_speed(q[alive], r[alive], np.clip(node[alive], 0.0, None), params)
        best = np.where(alive, node, -np.inf)
        alive_l = alive.tolist()
        # The DP in plain Python floats: a pair holds tens of matches with a handful of
        # predecessors each, where numpy's per-call overhead would dominate (same IEEE
        # arithmetic and the same first-maximum tie rule as a vectorised argmax).
        best_l = best.tolist()
        prev_l = [-1] * len(q_l)
        lo_cost = params.drift_cost
        for j in np.flatnonzero(alive).tolist():
            lo, hi = lo_l[j], hi_l[j]
            if hi <= lo:
                continue
            qj, rj = q_l[j], r_l[j]
            top, arg = -math.inf, -1
            for k in range(lo, hi):
                if not alive_l[k]:
                    continue
                dq = qj - q_l[k]
                dr = rj - r_l[k]
                if dr >= -_EPS and dr <= dq * sp + iv + _EPS and dr >= dq / sp - iv - _EPS:
                    # A small cost per second of drift from the dominant speed (or from speed
                    # 1, which needs no vote): among near-equal paths (static shots, repeated
                    # frames) the straight one wins.
                    c = best_l[k] - lo_cost * min(abs(dr - speed * dq), abs(dr - dq))
                    if c > top:
                        top, arg = c, k
            if top > 0:  # a predecessor path adds weight
                best_l[j] = node_l[j] + top
                prev_l[j] = arg
        best = np.asarray(best_l)
        prev = prev_l
        end = int(np.argmax(best))
        if not np.isfinite(best[end]) or best[end] <= 0:
            break
        path = [end]
        while prev[path[-1]] >= 0:
            path.append(int(prev[path[-1]]))
        p = np.asarray(path[::-1])
        seg = _segment(q[p], r[p], s[p], iv)
        alive[p] = False
        if _acceptable(seg, params, segments):
            segments.append(seg)
            # The alternatives to this copy (other near matches along the same diagonal) are
            # not new segments: remove matches within max_gap of the path's reference time.
            band = alive & (q >= seg.query_start - _EPS) & (q < seg.query_end - _EPS)
            idx = np.flatnonzero(band)
            if len(idx):
                r_path = np.interp(q[idx], q[p], r[p])
                alive[idx[np.abs(r[idx] - r_path) <= gap + _EPS]] = False
        else:
            rejected += 1
    segments.sort(key=lambda g: (g.query_start, g.ref_start))
    return segments


def align_offset_voting(
    q_t: np.ndarray, r_t: np.ndarray, sim: np.ndarray, params: AlignParams = AlignParams(), weight: np.ndarray | None = None
) -> list[Segment]:
    """Baseline: temporal Hough voting on the offset ``ref - query`` (same signature as :func:`align`)."""
    q, r, s, w = _inputs(q_t, r_t, sim, weight)
    iv = params.frame_interval
    off = np.round((r - q) / iv).astype(np.int64)
    # As in align(): a match counts by how much it beats the bias; weaker ones never vote.
    bias = params.min_score if params.path_bias is None else params.path_bias
    vote = w * (s - bias)
    alive = vote > 0
    segments: list[Segment] = []
    rejected = 0
    while alive.any() and len(segments) < params.max_segments and rejected < params.max_rejected:
        bins, inv = np.unique(off[alive], return_inverse=True)
        tally = np.bincount(inv, weights=vote[alive])
        # Smooth over the neighbouring bins (sampling jitter between the two frame grids).
        pos = np.searchsorted(bins, bins - 1)
        smooth = tally.copy()
        left = (pos < len(bins)) & (bins[np.minimum(pos, len(bins) - 1)] == bins - 1)
        smooth[left] += tally[pos[left]]
        pos = np.searchsorted(bins, bins + 1)
        right = (pos < len(bins)) & (bins[np.minimum(pos, len(bins) - 1)] == bins + 1)
        smooth[right] += tally[pos[right]]
        centre = bins[int(np.argmax(smooth))]
        pick = np.flatnonzero(alive & (np.abs(off - centre) <= 1))
        alive[pick] = False
        # One match per query frame (the most similar), then split at query jumps > max_gap.
        qp, sp = q[pick], s[pick]
        order = np.lexsort((-sp, qp))
        pick = pick[order]
        first = np.r_[True, q[pick][1:] != q[pick][:-1]]
        pick = pick[first]
        cuts = np.flatnonzero(np.diff(q[pick]) > params.max_gap + _EPS) + 1
        found = False
        for run in np.split(pick, cuts):
            if len(run) == 0:
                continue
            seg = _segment(q[run], r[run], s[run], iv)
            if _acceptable(seg, params, segments) and len(segments) < params.max_segments:
                segments.append(seg)
                found = True
        if not found:
            rejected += 1
    segments.sort(key=lambda g: (g.query_start, g.ref_start))
    return segments


def union_length(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by the union of ``[start, end)`` intervals."""
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s  # type: ignore[operator]
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s  # type: ignore[operator]
    return total


def repetition_degree(segments: list[Segment], query_duration: float, ref_duration: float) -> float:
    """Patent mode 2: matched duration / duration of the shorter video, in [0, 1].

    The matched duration is the union of the segments on the query axis (each second of
    the query counts once, however many reference places it matches).
    """
    shorter = min(query_duration, ref_duration)
    if shorter <= 0:
        return 0.0
    matched = union_length([(g.query_start, min(g.query_end, query_duration)) for g in segments])
    return float(min(1.0, matched / shorter))


def covering_score(segments: list[Segment], q_times: np.ndarray) -> np.ndarray:
    """Per query frame time, the best score of a segment covering it (NaN where none does)."""
    q_times = np.asarray(q_times, np.float64)
    out = np.full(len(q_times), -np.inf)
    for g in segments:
        inside = (q_times >= g.query_start - _EPS) & (q_times < g.query_end - _EPS)
        out[inside] = np.maximum(out[inside], g.score)
    out[np.isneginf(out)] = np.nan
    return out
