"""The aligner as it was before the speed-up of 2026-12-03 (numpy per match, a 4-key lexsort
in dominant_speed, the plain early stop): the reference that vidret_milvus.align must equal
exactly (tests/test_align.py compares them on seeded random match sets)."""

from __future__ import annotations

import numpy as np

from vidret_milvus.align import _EPS, AlignParams, Segment, _acceptable, _inputs, _segment


def dominant_speed_reference(q: np.ndarray, r: np.ndarray, vote: np.ndarray, params: AlignParams, steps: int = 9) -> float:
    """The playback speed (reference seconds per query second) that lines up the most match
    weight: a Hough vote on ``r - speed * q`` over a geometric grid of speeds within
    ``[1/max_speed, max_speed]``; speed 1 unless another is clearly (10 %) better."""
    if len(q) == 0 or params.max_speed <= 1.0 or not np.any(vote > 0):
        return 1.0
    grid = np.geomspace(1.0 / params.max_speed, params.max_speed, steps)
    grid = np.unique(np.r_[grid, 1.0])
    q0 = q - q.min()

    qf = np.round(q0 / params.frame_interval).astype(np.int64)
    # Per speed, each query frame counts once per offset bin (its best match within +-1 bin),
    # so a static block, which any speed fits, favours no speed. All speeds in one pass: rows
    # are speeds, and bins are numbered per speed from that speed's lowest one.
    m = len(grid)
    b = np.round((r[None, :] - grid[:, None] * q0[None, :]) / params.frame_interval).astype(np.int64)
    b = np.concatenate([b - 1, b, b + 1], axis=1)
    b -= b.min(axis=1, keepdims=True)
    sp = np.repeat(np.arange(m), b.shape[1])
    b, f, w = b.ravel(), np.tile(qf, 3 * m), np.tile(vote, 3 * m)
    order = np.lexsort((-w, f, b, sp))
    sp, b, f, w = sp[order], b[order], f[order], w[order]
    first = np.r_[True, (sp[1:] != sp[:-1]) | (b[1:] != b[:-1]) | (f[1:] != f[:-1])]
    width = int(b.max()) + 1
    tally = np.bincount(sp[first] * width + b[first], weights=w[first], minlength=m * width).reshape(m, width)
    scores = {float(v): float(tally[i].max()) for i, v in enumerate(grid)}
    best = max(scores, key=lambda v: (scores[v], -abs(np.log(v))))
    return best if scores[best] > 1.1 * scores[1.0] else 1.0


def align_reference(
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
    while alive.any() and len(segments) < params.max_segments and rejected < params.max_rejected:
        # No acceptable segment can come from what is left: a path visits each query time at
        # most once, so it needs min_frames distinct query times, and its mean similarity is
        # at most the best one (saves the work on the many unrelated candidates of a large store).
        if len(np.unique(q[alive])) < params.min_frames or s[alive].max() < params.min_score - _EPS:
            break
        speed = dominant_speed_reference(q[alive], r[alive], np.clip(node[alive], 0.0, None), params)
        best = np.where(alive, node, -np.inf)
        prev = np.full(len(q), -1)
        for j in np.flatnonzero(alive):
            lo, hi = lo_all[j], hi_all[j]
            if hi <= lo:
                continue
            dq = q[j] - q[lo:hi]
            dr = r[j] - r[lo:hi]
            ok = alive[lo:hi] & (dr >= -_EPS) & (dr <= dq * sp + iv + _EPS) & (dr >= dq / sp - iv - _EPS)
            if not ok.any():
                continue
            # A small cost per second of drift from the dominant speed (or from speed 1, which
            # needs no vote): among near-equal paths (static shots, repeated frames) the
            # straight one wins.
            drift = np.minimum(np.abs(dr - speed * dq), np.abs(dr - dq))
            cand = np.where(ok, best[lo:hi] - params.drift_cost * drift, -np.inf)
            k = int(np.argmax(cand))
            if cand[k] > 0:  # a predecessor path adds weight
                best[j] = node[j] + cand[k]
                prev[j] = lo + k
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
