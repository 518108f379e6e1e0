"""Localisation benchmark: Temporal-Network alignment vs offset voting, and background normalisation.

Part 1 (always; numpy only, seconds): synthetic match sets with known copied segments, built the
way the re-rank stage produces them (per query frame at 1 fps: the true reference frame, its two
neighbours as weaker alternatives, random unrelated matches as noise), in scenarios: plain
offset, gap, speed 0.5x / 0.75x / 1.5x / 2x, two segments, repeated content (the reference holds
the excerpt twice), near-static shots, no copy. Each aligner is scored per scenario over many
seeds: segment recall / precision (a true segment counts as found when a predicted one overlaps
it by IoU >= 0.5 on the query axis and on the reference axis), query-seconds F1 (the copied
seconds of the query recovered), and the time per pair.

Part 2 (``--background``; needs resources/bbb.mp4 and ``make demo``'s demo_data): VSC22-style
normalisation ``s - beta * s_bg`` on real footage. Positives: frames of demo_data's query copy
inside its copied span against their true reference frame. Negatives: frames of three clips cut
from other parts of the same film (hard negatives: same look, other scenes) against their
nearest stored frame. Reported per beta: ROC AUC of positive vs negative frame similarity and the
gap between the 5th percentile of positives and the 95th of negatives.

    python benchmarks/bench_align.py [--seeds 50] [--background]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from _common import ROOT, save  # noqa: I001 - _common puts the project on sys.path

from vidret_milvus.align import AlignParams, Segment, align, align_offset_voting

Copy = tuple[float, float, float, float]  # query start, query end, reference start, speed

SCENARIOS: dict[str, dict[str, Any]] = {
    "offset": {"copies": [(4, 20, 30, 1.0)]},
    "gap_3s": {"copies": [(2, 22, 10, 1.0)], "skip": (9, 10, 11)},
    "speed_0.5x": {"copies": [(2, 18, 20, 0.5)]},
    "speed_0.75x": {"copies": [(2, 18, 20, 0.75)]},
    "speed_1.5x": {"copies": [(2, 18, 10, 1.5)]},
    "speed_2x": {"copies": [(2, 18, 10, 2.0)]},
    "two_segments": {"copies": [(0, 10, 40, 1.0), (14, 26, 5, 1.0)]},
    "repeated_in_reference": {"copies": [(2, 12, 10, 1.0), (2, 12, 40, 1.0)]},
    "near_static_shots": {"copies": [(3, 18, 9, 1.0)], "static": 3},
    "no_copy": {"copies": []},
}
Q_LEN, R_LEN = 30, 60


def make_matches(copies: list[Copy], rng: np.random.Generator, skip: tuple[int, ...] = (), static: int = 0,
                 noise: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q, r, s = [], [], []
    for q0, q1, r0, speed in copies:
        for t in np.arange(q0, q1, 1.0):
            if int(t) in skip:
                continue
            near = float(np.floor(r0 + speed * (t - q0)))
            if static:  # the whole shot matches about equally
                shot = int(near) // static * static
                cands = [(float(u), 0.84 + rng.uniform(-0.04, 0.04)) for u in range(shot, shot + static)]
            else:
                sim = 0.82 + rng.uniform(-0.08, 0.08)
                cands = [(near, sim), (near - 1, min(0.7, sim - 0.1)), (near + 1, min(0.7, sim - 0.1))]
            for u, sv in cands:
                if 0 <= u < R_LEN:
                    q.append(t)
                    r.append(u)
                    s.append(sv)
    for t in range(Q_LEN):
        for _ in range(noise):
            q.append(float(t))
            r.append(float(rng.integers(0, R_LEN)))
            s.append(rng.uniform(0.5, 0.62))
    return np.array(q), np.array(r), np.array(s)


def truth_segments(copies: list[Copy]) -> list[Segment]:
    return [Segment(q0, q1, r0, r0 + sp * (q1 - q0), 1.0, int(q1 - q0)) for q0, q1, r0, sp in copies]


def iou(a0: float, a1: float, b0: float, b1: float) -> float:
    inter = max(0.0, min(a1, b1) - max(a0, b0))
    union = max(a1, b1) - min(a0, b0)
    return inter / union if union > 0 else 0.0


def matched(p: Segment, g: Segment) -> bool:
    return iou(p.query_start, p.query_end, g.query_start, g.query_end) >= 0.5 and iou(p.ref_start, p.ref_end, g.ref_start, g.ref_end) >= 0.5


def query_seconds(segs: list[Segment]) -> set[int]:
    out: set[int] = set()
    for g in segs:
        out.update(range(int(round(g.query_start)), int(round(g.query_end))))
    return out


def part1(seeds: int) -> dict[str, Any]:
    params = AlignParams()
    out: dict[str, Any] = {}
    for name, sc in SCENARIOS.items():
        row: dict[str, Any] = {}
        for fn in (align, align_offset_voting):
            tp_g = n_g = tp_p = n_p = 0
            qs_tp = qs_p = qs_g = 0
            took = 0.0
            for seed in range(seeds):
                rng = np.random.default_rng(seed)
                q, r, s = make_matches(sc["copies"], rng, sc.get("skip", ()), sc.get("static", 0))
                t0 = time.perf_counter()
                pred = fn(q, r, s, params)
                took += time.perf_counter() - t0
                gt = truth_segments(sc["copies"])
                n_g += len(gt)
                n_p += len(pred)
                tp_g += sum(any(matched(p, g) for p in pred) for g in gt)
                tp_p += sum(any(matched(p, g) for g in gt) for p in pred)
                # Seconds the true copies hold, excluding the skipped (gap) ones.
                ps, gs = query_seconds(pred), query_seconds(gt)
                qs_tp, qs_p, qs_g = qs_tp + len(ps & gs), qs_p + len(ps), qs_g + len(gs)
            prec = qs_tp / qs_p if qs_p else 1.0
            rec = qs_tp / qs_g if qs_g else 1.0
            row[fn.__name__] = {
                "segment_recall": round(tp_g / n_g, 3) if n_g else None,
                "segment_precision": round(tp_p / n_p, 3) if n_p else (1.0 if not n_g else 0.0),
                "false_segments_per_pair": round((n_p - tp_p) / seeds, 3),
                "query_seconds_f1": round(2 * prec * rec / (prec + rec), 3) if prec + rec > 0 else 0.0,
                "ms_per_pair": round(took / seeds * 1e3, 2),
            }
        out[name] = row
    return out


def print_part1(res: dict[str, Any]) -> None:
    print(f"{'scenario':24} {'aligner':20} {'seg recall':>10} {'seg prec':>9} {'false/pair':>10} {'q-sec F1':>9} {'ms/pair':>8}")
    for name, row in res.items():
        for fn, m in row.items():
            rec = "-" if m["segment_recall"] is None else f"{m['segment_recall']:.3f}"
            print(f"{name:24} {fn:20} {rec:>10} {m['segment_precision']:>9.3f} {m['false_segments_per_pair']:>10.3f} {m['query_seconds_f1']:>9.3f} {m['ms_per_pair']:>8.2f}")


# scripts/demo.py: the query shows bbb_508.mp4 from 7 s (film 515 s) at its 3 s
DEMO_COPY_OF, DEMO_OFFSET = "bbb_508.mp4", 515.0 - 508.0 - 3.0


def part2(betas: list[float]) -> dict[str, Any]:
    from vidret_milvus.clips import cut
    from vidret_milvus.fingerprint import Sampling, fingerprint_video
    from vidret_milvus.model import load_model
    from vidret_milvus.search import sample_background
    from vidret_milvus.store import Store

    demo = ROOT / "demo_data"
    bbb = ROOT / "resources" / "bbb.mp4"
    if not (demo / "vidret.db").is_file() or not bbb.is_file():
        raise SystemExit("part 2 needs resources/bbb.mp4 and demo_data (run `make demo` first)")
    out_dir = ROOT / "benchmarks" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    negs = []
    for start in (100.0, 380.0, 440.0):  # scenes none of the demo's references (476-570 s) holds
        p = out_dir / f"bbb_neg_{int(start)}.mp4"
        if not p.is_file():
            cut(bbb, p, start, start + 15.0, (640, 360), fps=24)
        negs.append(p)
    model = load_model(threads=2)
    samp = Sampling(fps=1.0)
    qcopy = fingerprint_video(demo / "query_copy.mp4", model, samp)
    neg_desc = [fingerprint_video(p, model, samp) for p in negs]
    # A copy of the database, so that the demo's own file is never held.
    import shutil

    db = out_dir / "bench_align_demo.db"
    shutil.copyfile(demo / "vidret.db", db)
    with Store.connect(str(db)) as store:
        rows = {r.path.rsplit("/", 1)[-1]: r for r in store.list_videos()}
        ref = rows[DEMO_COPY_OF]
        all_ids = [r.video_id for r in rows.values()]
        # Positives: query 3-15 s shows reference 7-19 s (the demo's truth, scripts/demo.py).
        pos_frames = np.flatnonzero((qcopy.timestamps >= 3.0) & (qcopy.timestamps < 15.0))
        hits = store.search_embeddings(qcopy.embeddings[pos_frames], [ref.video_id], 8)
        pos_sim, pos_vid = [], []
        for j, qf in enumerate(pos_frames):
            m = hits.query_index == j
            want = qcopy.timestamps[qf] + DEMO_OFFSET
            near = np.abs(hits.t[m] - want) <= 1.0
            if near.any():
                pos_sim.append(1 - hits.distance[m][near].min() / 2)
                pos_vid.append((int(qf), ref.video_id))
        neg_sim, neg_vid, neg_q = [], [], []
        for d in neg_desc:
            h = store.search_embeddings(d.embeddings, all_ids, 1)
            for k in range(len(h.query_index)):
                neg_sim.append(1 - h.distance[k] / 2)
                neg_vid.append(int(h.video_ids[k]))
                neg_q.append((d, int(h.query_index[k])))
        bg = sample_background(store, size=5000, seed=0)
    bg_pos = bg.similarity(qcopy.embeddings, 1)
    bg_pos_v = bg_pos.kth(exclude_video=ref.video_id)
    res: dict[str, Any] = {"positives": len(pos_sim), "negatives": len(neg_sim), "background_frames": len(bg.embeddings)}
    cache: dict[int, Any] = {}
    neg_bg = []
    for (d, qi), v in zip(neg_q, neg_vid):
        key = id(d)
        if key not in cache:
            cache[key] = bg.similarity(d.embeddings, 1)
        neg_bg.append(cache[key].kth(exclude_video=v)[qi])
    pos_s, neg_s = np.array(pos_sim), np.array(neg_sim)
    pos_b, neg_b = np.array([bg_pos_v[qf] for qf, _ in pos_vid]), np.array(neg_bg)
    for beta in betas:
        p, n = pos_s - beta * pos_b, neg_s - beta * neg_b
        auc = float((p[:, None] > n[None, :]).mean() + 0.5 * (p[:, None] == n[None, :]).mean())
        res[f"beta_{beta}"] = {
            "auc": round(auc, 4),
            "pos_p05_minus_neg_p95": round(float(np.percentile(p, 5) - np.percentile(n, 95)), 4),
            "pos_median": round(float(np.median(p)), 4), "neg_median": round(float(np.median(n)), 4),
        }
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--background", action="store_true", help="also run part 2 (real footage, needs demo_data)")
    args = ap.parse_args()
    res: dict[str, Any] = {"seeds": args.seeds, "alignment": part1(args.seeds)}
    print_part1(res["alignment"])
    if args.background:
        res["background"] = part2([0.0, 0.25, 0.5, 0.75, 1.0])
        print(res["background"])
    save("align", res)


if __name__ == "__main__":
    main()
