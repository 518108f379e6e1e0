"""Temporal alignment of frame matches into copied segments (Temporal-Network style).

Nodes are frame matches (query time, reference time, similarity). An edge joins two
matches when both times advance (the reference may also hold still: static shots), each by
at most ``max_gap`` seconds, at a speed ratio within ``[1/max_speed, max_speed]``. The
heaviest path (sum of similarities) is one copied segment; its matches are removed and the
search repeats, so several segments in one pair are found. Segments that are too short, too
dissimilar, or that overlap a better one on the query axis are dropped.
"""

from __future__ import annotations

import dataclasses

import numpy as np


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
    max_gap: float = 5.0  # seconds either time may jump between two matches of a path
    max_speed: float = 2.0  # speed change tolerated (0.5x .. 2x)
    min_frames: int = 3
    min_score: float = 0.6  # mean cosine similarity along a segment
    max_segments: int = 10
    frame_interval: float = 1.0  # 1 / sampling fps: a match at t covers [t, t + interval)


def align(q_t: np.ndarray, r_t: np.ndarray, sim: np.ndarray, params: AlignParams = AlignParams()) -> list[Segment]:
    """Segments from matches ``(q_t[k], r_t[k], sim[k])`` of one (query, reference) pair.

    Ties between equally heavy paths go to the one ending earliest in query time, then in
    reference time (the sort order), so results are deterministic.
    """
    q_t, r_t, sim = (np.asarray(a, np.float64).ravel() for a in (q_t, r_t, sim))
    if not (len(q_t) == len(r_t) == len(sim)):
        raise ValueError("q_t, r_t and sim must have the same length")
    order = np.lexsort((r_t, q_t))
    q, r, s = q_t[order], r_t[order], np.clip(sim[order], 0.0, None)
    alive = np.ones(len(q), bool)
    segments: list[Segment] = []
    eps = 1e-6
    while alive.any() and len(segments) < params.max_segments:
        idx = np.flatnonzero(alive)
        qa, ra, sa = q[idx], r[idx], s[idx]
        n = len(idx)
        best = sa.copy()
        prev = np.full(n, -1)
        for j in range(n):
            # predecessors: strictly earlier in query time, within the gap
            lo = np.searchsorted(qa, qa[j] - params.max_gap - eps, side="left")
            hi = np.searchsorted(qa, qa[j] - eps, side="left")
            if hi <= lo:
                continue
            dq = qa[j] - qa[lo:hi]
            dr = ra[j] - ra[lo:hi]
            ok = (dr >= -eps) & (dr <= params.max_gap + eps) & (dr <= dq * params.max_speed + eps) & (dr >= dq / params.max_speed - params.frame_interval - eps)
            if not ok.any():
                continue
            cand = np.where(ok, best[lo:hi], -np.inf)
            k = int(np.argmax(cand))
            if cand[k] + sa[j] > best[j]:
                best[j] = cand[k] + sa[j]
                prev[j] = lo + k
        end = int(np.argmax(best))
        path = [end]
        while prev[path[-1]] >= 0:
            path.append(int(prev[path[-1]]))
        path.reverse()
        p = np.asarray(path)
        seg_q0, seg_q1 = qa[p[0]], qa[p[-1]] + params.frame_interval
        seg = Segment(
            query_start=float(seg_q0), query_end=float(seg_q1),
            ref_start=float(ra[p].min()), ref_end=float(ra[p].max() + params.frame_interval),
            score=float(sa[p].mean()), frames=len(p),
        )
        # Remove the path's matches and every match inside its query span: those are
        # alternatives to the same copied content, not new segments.
        inside = (qa >= seg_q0 - eps) & (qa < seg_q1 - eps)
        alive[idx[inside]] = False
        alive[idx[p]] = False
        # The pairwise speed bound lets a long path drift (many query seconds onto one held
        # reference frame); bound the whole segment's speed too.
        q_len, r_len = seg.query_end - seg.query_start, seg.ref_end - seg.ref_start
        speed_ok = r_len + params.frame_interval >= q_len / params.max_speed and q_len + params.frame_interval >= r_len / params.max_speed
        if seg.frames >= params.min_frames and seg.score >= params.min_score and speed_ok:
            segments.append(seg)
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
