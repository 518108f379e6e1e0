"""Which candidate-video rule the code stage should use: hits, distinct query frames, or
coherent votes (distinct query frames at one time offset, search.code_votes).

    .venv/bin/python benchmarks/code_votes.py [--data benchmarks/data_hard_tune] [--radius 36 40 44]

On a TUNING set's descriptors (tune_thresholds.py's cache, benchmarks/out/tune_cache: the
references, the queries and their views of the default search, fingerprinted there if
missing), exhaustively in numpy: each
query's views are matched against every reference frame's code within the radius; per
reference video, each rule's count is taken in the view that gives the most (the default
search keeps a video any view recalls). For each rule and threshold it prints the share of
true references kept and the mean share of reference frames in the kept videos (positives,
negatives, all queries); also the top-k rule: per view the k videos with most coherent votes
(max_candidates). Writes benchmarks/results/code_votes.json (``--name``).

``--timing``: only the cost of counting the votes (search.code_votes) beside the plain per-hit
count and rank it replaced, on random hits (20 query frames, 9,000 videos, offsets over an
hour), median of 3, side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from _common import POPCOUNT, ROOT, save
from tune_thresholds import detectors_version, fingerprints, query_views
from vidret_milvus.descriptor import VideoDescriptor
from vidret_milvus.fingerprint import Sampling
from vidret_milvus.model import load_model
from vidret_milvus.regions import QueryViews
from vidret_milvus.search import code_votes
from vidret_milvus.store import FrameHits

RULES = ("hits", "distinct query frames", "coherent votes")
TOP_K = "top-k by coherent votes"


def per_view_counts(views: list[VideoDescriptor], codes: np.ndarray, owner: np.ndarray, ref_t: np.ndarray, radius: int, tolerance: float) -> list[dict[int, tuple[int, ...]]]:
    """Per view: {reference index: (hits, distinct query frames, coherent votes)}."""
    out: list[dict[int, tuple[int, ...]]] = []
    for v in views:
        ham = POPCOUNT[v.codes[:, None, :] ^ codes[None]].sum(2)
        qi, fi = np.nonzero(ham <= radius)
        per: dict[int, tuple[int, ...]] = {}
        if len(qi):
            hits = FrameHits(qi.astype(np.int64), fi.astype(np.int64), owner[fi], ref_t[fi], ham[qi, fi].astype(np.float32), np.zeros(v.num_frames, bool))
            votes = code_votes(v.timestamps.astype(np.float64), hits, tolerance)
            for vid in votes:
                per[vid] = (votes[vid][1], len(np.unique(qi[owner[fi] == vid])), votes[vid][0])
        out.append(per)
    return out


def kept_videos(per_view: list[dict[int, tuple[int, ...]]], rule: str, threshold: int) -> set[int]:
    """The videos a rule keeps. Threshold rules: a video any view counts ``threshold`` times
    (the default search keeps a video any view recalls). TOP_K: per view the ``threshold``
    videos with most coherent votes, then hits, then the lower id (search.select_candidates
    with max_candidates), united over the views."""
    keep: set[int] = set()
    for per in per_view:
        if rule == TOP_K:
            keep.update(sorted(per, key=lambda v: (-per[v][2], -per[v][0], v))[:threshold])
        else:
            k = RULES.index(rule)
            keep.update(v for v, c in per.items() if c[k] >= threshold)
    return keep


def time_votes(sizes: tuple[int, ...] = (5_000, 54_000, 300_000, 1_000_000), seed: int = 0) -> list[dict[str, float]]:
    """Milliseconds of code_votes and of the old count-and-rank per number of hits."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        qi, vid = rng.integers(0, 20, n), rng.integers(0, 9000, n)
        hits = FrameHits(qi.astype(np.int64), np.arange(n, dtype=np.int64), vid.astype(np.int64), rng.uniform(0, 3600, n).astype(np.float32),
                         np.zeros(n, np.float32), np.zeros(20, bool))
        qt = np.arange(20, dtype=np.float64)
        new, old = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            code_votes(qt, hits, 2.0)
            t1 = time.perf_counter()
            count: dict[int, int] = {}
            for v in hits.video_ids.tolist():  # what search_descriptor did before the votes
                count[v] = count.get(v, 0) + 1
            sorted(count, key=lambda v: (-count[v], v))
            new.append(t1 - t0)
            old.append(time.perf_counter() - t1)
        rows.append({"hits": n, "code_votes_ms": round(1e3 * float(np.median(new)), 1), "old_count_ms": round(1e3 * float(np.median(old)), 1)})
        print(f"{n:>9} hits: code_votes {rows[-1]['code_votes_ms']} ms, old count and rank {rows[-1]['old_count_ms']} ms")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "data_hard_tune", help="a TUNING set (never the test set)")
    ap.add_argument("--radius", type=int, nargs="+", default=[36, 40, 44])
    ap.add_argument("--thresholds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--top-k", type=int, nargs="+", default=[3, 5, 8, 12], help="max_candidates of the top-k rule (per view)")
    ap.add_argument("--tolerance", type=float, default=2.0, help="vote_tolerance_s")
    ap.add_argument("--name", default="code_votes", help="results/<name>.json")
    ap.add_argument("--timing", action="store_true", help="only time the vote count (random hits)")
    args = ap.parse_args()
    if args.timing:
        save("code_votes_timing", {"rows": time_votes()})
        return
    model = load_model()
    # The tuning script's own cache and views (made here if missing; a changed detector never
    # reuses stale views: the cache is keyed by detectors_version)
    cache = ROOT / "benchmarks" / "out" / "tune_cache" / model.model_id / args.data.name
    gt = json.loads((args.data / "ground_truth.json").read_text())
    names = [r["name"] for r in gt["references"]]
    sampling = Sampling()
    ref_desc = fingerprints(model, args.data, names, "refs", cache, sampling)
    q_desc = fingerprints(model, args.data, [q["name"] for q in gt["queries"]], "queries", cache, sampling)
    q_views = query_views(model, args.data, list(q_desc), QueryViews.insets, cache, sampling, q_desc)
    refs = [ref_desc[n] for n in names]
    codes = np.concatenate([d.codes for d in refs])
    owner = np.concatenate([np.full(d.num_frames, i, np.int64) for i, d in enumerate(refs)])
    ref_t = np.concatenate([d.timestamps for d in refs]).astype(np.float32)
    frames = np.array([d.num_frames for d in refs])
    queries = [(q, [v for _, v in q_views[q["name"]]]) for q in gt["queries"]]
    table = []
    for radius in args.radius:
        counts = [(q, per_view_counts(views, codes, owner, ref_t, radius, args.tolerance)) for q, views in queries]
        print(f"radius {radius}: rule >= threshold: true references kept / reference frames in kept videos (positives, negatives, all)")
        for rule, thresholds in [(r, args.thresholds) for r in RULES] + [(TOP_K, args.top_k)]:
            for th in thresholds:
                kept, total, share = 0, 0, {True: [], False: []}
                for q, per_view in counts:
                    keep = kept_videos(per_view, rule, th)
                    share[q["positive"]].append(float(frames[list(keep)].sum() / frames.sum()) if keep else 0.0)
                    for m in q["matches"]:
                        total += 1
                        kept += names.index(m["ref"]) in keep
                row = {"radius": radius, "rule": rule, "threshold": th, "true_refs_kept": round(kept / max(1, total), 4),
                       "ref_frames_positives": round(float(np.mean(share[True])), 4), "ref_frames_negatives": round(float(np.mean(share[False])), 4),
                       "ref_frames_all": round(float(np.mean(share[True] + share[False])), 4)}
                table.append(row)
                sign = "k =" if rule == TOP_K else ">="
                print(f"  {rule:>23} {sign} {th}: {row['true_refs_kept']:.3f} / {row['ref_frames_positives']:.3f} {row['ref_frames_negatives']:.3f} {row['ref_frames_all']:.3f}")
    save(args.name, {"model_id": model.model_id, "data": args.data.name, "views": f"insets-{detectors_version()}", "tolerance": args.tolerance, "rows": table})


if __name__ == "__main__":
    main()
