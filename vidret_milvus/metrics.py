"""Copy-detection metrics (DISC21 / VSC22 descriptor-track style), on plain Python data.

Predictions are ``(query, reference, score)`` triples; ground truth is a set of
``(query, reference)`` pairs. Segment predictions are ``(qs, qe, rs, re)`` intervals per pair.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

Pair = tuple[str, str]
Pred = tuple[str, str, float]
Interval = tuple[float, float, float, float]


def _dedupe(preds: Iterable[Pred]) -> list[Pred]:
    """One prediction per (query, reference): the highest score."""
    best: dict[Pair, float] = {}
    for q, r, s in preds:
        if (q, r) not in best or s > best[(q, r)]:
            best[(q, r)] = float(s)
    return [(q, r, s) for (q, r), s in best.items()]


def _ranked(preds: Iterable[Pred], gt: set[Pair]) -> list[bool]:
    """Relevance flags in rank order: score descending; among equal scores the negatives
    come first (pessimistic ties), then by (query, reference) so the order is total."""
    items = _dedupe(preds)
    items.sort(key=lambda p: (-p[2], (p[0], p[1]) in gt, p[0], p[1]))
    return [(q, r) in gt for q, r, _ in items]


def precision_recall_curve(preds: Iterable[Pred], gt: set[Pair]) -> tuple[list[float], list[float]]:
    """Precision and recall after each rank (recall over all ground-truth pairs)."""
    flags = _ranked(preds, gt)
    p, r, tp = [], [], 0
    for k, rel in enumerate(flags, 1):
        tp += rel
        p.append(tp / k)
        r.append(tp / len(gt) if gt else 0.0)
    return p, r


def micro_ap(preds: Iterable[Pred], gt: set[Pair]) -> float:
    """muAP = sum_k P(k) * rel(k) / |GT|, over all predictions pooled and sorted by score.

    Ground-truth pairs never predicted count as misses (recall is over all of GT).
    """
    if not gt:
        return 0.0
    flags = _ranked(preds, gt)
    tp, total = 0, 0.0
    for k, rel in enumerate(flags, 1):
        if rel:
            tp += 1
            total += tp / k
    return total / len(gt)


def recall_at_precision(preds: Iterable[Pred], gt: set[Pair], precision: float = 0.9) -> float:
    """The largest recall reached at any rank whose precision is >= ``precision``."""
    p, r = precision_recall_curve(preds, gt)
    return max([ri for pi, ri in zip(p, r) if pi >= precision], default=0.0)


def _union(intervals: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted((min(a, b), max(a, b)) for a, b in intervals):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _length(u: Sequence[tuple[float, float]]) -> float:
    return sum(e - s for s, e in u)


def _overlap(a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]]) -> float:
    total, i, j = 0.0, 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        total += max(0.0, hi - lo)
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def segment_prf(pred: Mapping[Pair, Sequence[Interval]], gt: Mapping[Pair, Sequence[Interval]]) -> tuple[float, float, float]:
    """Segment precision, recall, F1 (VSC22 matching style, per-axis unions).

    For each (query, reference) pair, the predicted intervals and the true intervals are
    each merged into a union on the query axis and on the reference axis. Summed over all
    pairs: Pq = |pred_q & true_q| / |pred_q|, Rq = |pred_q & true_q| / |true_q| (likewise
    on the reference axis); P = sqrt(Pq * Pr), R = sqrt(Rq * Rr), F1 = 2PR / (P + R).
    Predictions on pairs that are not copies add to |pred| only, so they cost precision.
    """
    inter = [0.0, 0.0]
    plen = [0.0, 0.0]
    glen = [0.0, 0.0]
    for pair in set(pred) | set(gt):
        ps, gs = pred.get(pair, ()), gt.get(pair, ())
        for axis in (0, 1):
            pu = _union([(iv[2 * axis], iv[2 * axis + 1]) for iv in ps])
            gu = _union([(iv[2 * axis], iv[2 * axis + 1]) for iv in gs])
            inter[axis] += _overlap(pu, gu)
            plen[axis] += _length(pu)
            glen[axis] += _length(gu)
    pq = inter[0] / plen[0] if plen[0] else 0.0
    pr = inter[1] / plen[1] if plen[1] else 0.0
    rq = inter[0] / glen[0] if glen[0] else 0.0
    rr = inter[1] / glen[1] if glen[1] else 0.0
    p, r = math.sqrt(pq * pr), math.sqrt(rq * rr)
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f1
