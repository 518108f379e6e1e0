"""Copy-detection accuracy and speed of the real system on the benchmark dataset.

    .venv/bin/python benchmarks/make_dataset.py          # once
    .venv/bin/python benchmarks/eval_retrieval.py [--checkpoint DIR] [--uri URI] [--radius 32]

Runs the real pipeline (PyAV decoding, the model, Milvus Lite or a server with --uri,
recall -> re-rank -> align) and reports, for each decision mode (1 embedding, 2 duration,
3 codes) and for baselines computed in the same run on the same sampled frames:
- muAP over all (query, reference, score) pooled and sorted by score, pessimistic ties,
  recall over all ground-truth pairs; recall at 90 % precision; top-1 accuracy;
- segment precision / recall / F1 (VSC22 matching style, vidret_milvus.metrics);
- false-positive rate on the negative queries (any is_copy result);
- the Hamming stage's recall: the share of query frames (inside true copied spans) whose
  exhaustive nearest reference frame by L2 lies within the Hamming radius, also split by that
  neighbour's L2 distance (hamming_recall_by_nn_l2), the share of reference frames in the
  videos the code stage recalls (as search.py picks them: by votes, at most max_candidates),
  the share the default window re-rank searches (reference_frames_reranked_window), and the
  share of (positive query, true reference) pairs whose reference is among the recalled videos
  (true_refs_reaching_rerank);
- per edit type: detection rate (true reference flagged as a copy) and top-1 (a query with
  stacked edits counts under each of its edits, ground truth "edits");
- per copy length (<= 6 s, 6-12 s, > 12 s; per copied segment): detected and top-1;
- segment precision / recall / F1 over the queries with two copied segments.
Baselines: per-frame 64-bit pHash with the same alignment; vPDQ (per-second PDQ 256-bit
hashes via pdqhash, a frame match at Hamming <= 31, the same alignment), the baseline trust and
safety teams know; float embeddings searched exhaustively (no code stage). Untrained vs trained
heads: run once per --checkpoint. ``--limit-queries N`` (and ``--limit-refs M``) runs a quick
check on a subset. ``--extra-negatives DIR`` adds the negative queries of another set made for
the SAME references (``make_dataset.py --hard`` with the set's split and seed, ``--positives 0
--negatives N``; checked): every metric is then over all queries, and ``systems_main`` keeps
the metrics of ``--data``'s own queries (comparable with runs without it).
Writes benchmarks/results/retrieval[-NAME].json and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _common import POPCOUNT, ROOT, copied_frames_nearest, nearest_view_hamming, save, wilson
from vidret_milvus.align import align, repetition_degree
from vidret_milvus.descriptor import VideoDescriptor
from vidret_milvus.fingerprint import Sampling, fingerprint_video
from vidret_milvus.ingest import sha256_file
from vidret_milvus.metrics import micro_ap, precision_recall_curve, recall_at_precision, segment_prf
from vidret_milvus.model import load_model
from vidret_milvus.model.settings import thresholds_for
from vidret_milvus.decision import TIME_TOLERANCE, Matches, Result, decide_query, score_candidate
from vidret_milvus.search import Background, Mode, SearchParams, search_descriptor, select_candidates
from vidret_milvus.store import Store, StoreMeta
from vidret_milvus.video import iter_frames

DATA = ROOT / "benchmarks" / "data"


# ----------------------------------------------------------------------------- baselines
def phash(frames: np.ndarray) -> np.ndarray:
    """64-bit perceptual hash per frame: DCT of 32x32 grey, top-left 8x8 above its median."""
    n = 32
    k = np.arange(n)
    dct = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))
    out = np.empty((len(frames), 8), np.uint8)
    for i, f in enumerate(frames):
        g = np.asarray(Image.fromarray(f).convert("L").resize((n, n), Image.Resampling.BILINEAR), np.float64)
        c = (dct @ g @ dct.T)[:8, :8].ravel()
        out[i] = np.packbits(c > np.median(c[1:]))
    return out


PDQ_MATCH_BITS = 31  # vPDQ's usual frame-match threshold (of 256 bits)


def pdq_hashes(frames: np.ndarray) -> np.ndarray:
    """256-bit PDQ hash per frame (pdqhash.compute on RGB uint8), packed to 32 bytes each."""
    import pdqhash

    out = np.empty((len(frames), 32), np.uint8)
    for i, f in enumerate(frames):
        bits, _quality = pdqhash.compute(np.ascontiguousarray(f, dtype=np.uint8))
        out[i] = np.packbits(np.asarray(bits, np.uint8))
    return out


def pdq_similarity(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """1 - Hamming / 256 between packed PDQ hashes (query frames x reference frames); a frame
    match is similarity >= :data:`PDQ_MIN_SIM` (Hamming <= 31)."""
    return 1.0 - hamming(q, r) / 256.0


PDQ_MIN_SIM = 1.0 - PDQ_MATCH_BITS / 256.0


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return POPCOUNT[a[:, None, :] ^ b[None, :, :]].sum(2)


def exhaustive_decision(qd: VideoDescriptor, rd: VideoDescriptor, params: SearchParams, bg: np.ndarray | None = None) -> Result:
    """The system's decision (decision.score_candidate, then decision.decide_query over ALL
    references of the query, where search has only the recalled candidates, so the query
    context differs a little; the calibration was fitted on search's) with an
    exhaustive re-rank: every frame of the reference is searched, without the code stage, so
    every query frame weighs 1 (no common-frame weights). Equal codes (mode 3) come from all
    code pairs. ``bg``: per query frame, the background similarity (params.background_beta)."""
    sim = qd.embeddings @ rd.embeddings.T
    k = min(params.rerank_per_video, sim.shape[1])
    top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    qi = np.repeat(np.arange(qd.num_frames), k)
    rj = top.ravel()
    d2 = np.maximum(0.0, 2.0 - 2.0 * sim[qi, rj]).astype(np.float32)
    ham = hamming(qd.codes, rd.codes)
    cq, cr = np.nonzero(ham <= params.radius)
    res = score_candidate(
        params, video_id=rd.video_id, path=rd.path, duration=rd.duration, query_times=qd.timestamps, query_duration=qd.duration,
        frame_interval=1.0 / qd.fps, rerank=Matches(qi, rd.timestamps[rj], d2), codes=Matches(cq, rd.timestamps[cr], ham[cq, cr].astype(np.float32)),
        frame_weights=np.ones(qd.num_frames), background=bg,
    )
    return res


NN_L2_BANDS = ((0.0, 0.8), (0.8, 1.0), (1.0, 1.2), (1.2, 2.01))  # 2.01: the largest unit-vector L2 (2) included


def code_stage_recall(q_desc: dict[str, VideoDescriptor], ref_desc: dict[str, VideoDescriptor], queries: list[dict], radius: int) -> dict[str, object]:
    """The Hamming stage against exhaustive L2, inside the true copied spans: the share of
    copied query frames whose L2-nearest reference frame lies within ``radius`` ("recall"), and
    the same split by that neighbour's L2 distance (unit vectors: L2 0.8 is cosine 0.68, 1.2 is
    0.28), with each band's share of the frames and how often its neighbour is a frame of the
    true reference: what the code stage loses is told apart from what the descriptor never
    had."""
    emb = np.concatenate([d.embeddings for d in ref_desc.values()])
    codes = np.concatenate([d.codes for d in ref_desc.values()])
    owner = np.concatenate([np.full(d.num_frames, name, dtype=object) for name, d in ref_desc.items()])
    l2, ham, true_ref = [], [], []
    for q in queries:
        qd = q_desc[q["name"]]
        for m in q["matches"]:
            sel, nn, d = copied_frames_nearest(qd, m, emb)
            if not sel.any():
                continue
            l2.append(d)
            ham.append(POPCOUNT[qd.codes[sel] ^ codes[nn]].sum(1))
            true_ref.append(owner[nn] == m["ref"])
    if not l2:
        return {"recall": None}
    d, h, t = np.concatenate(l2), np.concatenate(ham), np.concatenate(true_ref).astype(bool)
    out: dict[str, object] = {"recall": round(float(np.mean(h <= radius)), 4)}
    for lo, hi in NN_L2_BANDS:
        s = (d >= lo) & (d < hi)
        if s.any():
            out[f"{lo:.1f}-{hi:.1f}" if hi <= 2.0 else f">= {lo:.1f}"] = {"frames_share": round(float(s.mean()), 4), "within_radius": round(float(np.mean(h[s] <= radius)), 4),
                                                  "nn_in_true_reference": round(float(t[s].mean()), 4)}
    return out


def code_stage_recall_views(q_views: dict[str, list[tuple[str, VideoDescriptor]]], ref_desc: dict[str, VideoDescriptor], queries: list[dict],
                            radius: int) -> float | None:
    """The code stage as the default search runs it (the whole frame and the query's detected
    views, each searched with its own codes): the share of copied query frames whose
    L2-nearest reference frame, taken in the view that comes nearest (a picture-in-picture's
    inset, not the frame around it), lies within ``radius`` of that view's code."""
    emb = np.concatenate([d.embeddings for d in ref_desc.values()])
    codes = np.concatenate([d.codes for d in ref_desc.values()])
    ham = [nearest_view_hamming([v for _, v in q_views[q["name"]]], m, emb, codes) for q in queries for m in q["matches"]]
    found, total = sum(int((h <= radius).sum()) for h in ham), sum(len(h) for h in ham)
    return round(found / total, 4) if total else None


def hash_decision(q_t: np.ndarray, q_dur: float, r_t: np.ndarray, r_dur: float, sim: np.ndarray, params: SearchParams, min_sim: float) -> tuple[float, bool, list]:
    """The decision of the perceptual-hash baselines (pHash, vPDQ) on a (query frames x
    reference frames) similarity matrix: the same alignment, then the patent's repetition
    rule, scored by the covered seconds times their similarity. Not the system's calibrated
    rule: its calibration is fitted to the model's cosine scale, which a hash similarity is not."""
    k = min(params.rerank_per_video, sim.shape[1])
    top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    qi = np.repeat(np.arange(len(q_t)), k)
    rj = top.ravel()
    s = sim[qi, rj]
    keep = s >= min_sim
    interval = float(np.median(np.diff(q_t))) if len(q_t) > 1 else 1.0
    segs = align(q_t[qi[keep]], r_t[rj[keep]], s[keep], dataclasses.replace(params.align, frame_interval=interval))
    rep = repetition_degree(segs, q_dur, r_dur)
    shorter = min(q_dur, r_dur)
    weighted = min(1.0, sum(g.query_length * g.score for g in segs) / shorter) if shorter > 0 else 0.0
    return weighted, rep >= params.duration_threshold, segs


def recall_candidates(store: Store, query: VideoDescriptor, params: SearchParams) -> list[int]:
    """The videos the code (Hamming) stage sends to the re-rank, as search_descriptor picks them
    (search.select_candidates: coherent code votes, at most ``max_candidates``)."""
    return select_candidates(query.timestamps, store.range_search_codes(query.codes, radius=params.radius, limit=params.recall_limit), params)


# ----------------------------------------------------------------------------- evaluation
def evaluate(preds: dict[str, list[dict]], gt: dict, queries: list[dict]) -> dict[str, object]:
    """Metrics for one system. preds[query] = [{ref, score, is_copy, segments}]."""
    names = {q["name"] for q in queries}
    preds = {k: v for k, v in preds.items() if k in names}
    gt_pairs = {(q["name"], m["ref"]) for q in queries for m in q["matches"]}
    flat = [(q, p["ref"], p["score"]) for q, ps in preds.items() for p in ps]
    seg_pred = {(q, p["ref"]): [(g["query_start"], g["query_end"], g["ref_start"], g["ref_end"]) for g in p["segments"]] for q, ps in preds.items() for p in ps if p["is_copy"]}
    seg_gt: dict[tuple[str, str], list] = {}
    for q in queries:
        for m in q["matches"]:  # two segments of one query may copy the same reference
            seg_gt.setdefault((q["name"], m["ref"]), []).append((m["query_start"], m["query_end"], m["ref_start"], m["ref_end"]))
    p, r, f1 = segment_prf(seg_pred, seg_gt)
    two = {q["name"] for q in queries if len(q["matches"]) >= 2}
    p2, r2, f12 = segment_prf({k: v for k, v in seg_pred.items() if k[0] in two}, {k: v for k, v in seg_gt.items() if k[0] in two})
    pos = [q for q in queries if q["positive"]]
    neg = [q for q in queries if not q["positive"]]

    def top1(q: dict) -> bool:
        ps = sorted(preds.get(q["name"], []), key=lambda x: (-x["score"], x["ref"]))
        return bool(ps) and ps[0]["ref"] in {m["ref"] for m in q["matches"]}

    def detected(q: dict) -> bool:
        return any(x["is_copy"] and x["ref"] in {m["ref"] for m in q["matches"]} for x in preds.get(q["name"], []))

    def edits(q: dict) -> list[str]:
        return list(q.get("edits") or [q["edit"]])

    flagged = sum(any(x["is_copy"] for x in preds.get(q["name"], [])) for q in neg)
    per_edit: dict[str, dict[str, float]] = {}
    for kind in sorted({e for q in pos for e in edits(q)}):
        qs = [q for q in pos if kind in edits(q)]
        per_edit[kind] = {"n": len(qs), "detected": round(sum(map(detected, qs)) / len(qs), 3), "top1": round(sum(map(top1, qs)) / len(qs), 3)}
    # per copied segment, by its length on the query's clock
    per_len: dict[str, dict[str, float]] = {}
    segs = [(q, m, float(m.get("copy_seconds", m["query_end"] - m["query_start"]))) for q in pos for m in q["matches"]]
    for label, lo, hi in COPY_BINS:
        sel = [(q, m) for q, m, c in segs if lo < c <= hi]
        if sel:
            det = [any(x["is_copy"] and x["ref"] == m["ref"] for x in preds.get(q["name"], [])) for q, m in sel]
            per_len[label] = {"n": len(sel), "detected": round(float(np.mean(det)), 3), "top1": round(float(np.mean([top1(q) for q, _ in sel])), 3)}
    return {
        "muAP": round(micro_ap(flat, gt_pairs), 4),
        "recall_at_p90": round(recall_at_precision(flat, gt_pairs, 0.9), 4),
        "top1": round(sum(map(top1, pos)) / len(pos), 4),
        "detected": round(sum(map(detected, pos)) / len(pos), 4),
        "negatives_fpr": round(flagged / max(1, len(neg)), 4), "negatives_flagged": flagged, "negatives": len(neg),
        "segment_precision": round(p, 4), "segment_recall": round(r, 4), "segment_f1": round(f1, 4),
        "two_segment_queries": len(two),
        "two_segment_precision": round(p2, 4), "two_segment_recall": round(r2, 4), "two_segment_f1": round(f12, 4),
        "per_edit": per_edit,
        "per_copy_length": per_len,
        "_pr": precision_recall_curve(flat, gt_pairs),
    }


COPY_BINS = (("<=6s", 0.0, 6.0), ("6-12s", 6.0, 12.0), (">12s", 12.0, float("inf")))


def mode2_cut_stat(r: Result, params: SearchParams) -> float:
    """What mode 2's copy cut compares with ``copy_threshold``: the calibrated p, when the best
    segment is long enough (``min_copy_seconds``), else 0."""
    ev = r.evidence_detail
    return float(r.confidence) if ev is not None and ev.best_segment_seconds >= params.min_copy_seconds - TIME_TOLERANCE else 0.0


def sweep(preds: dict[str, list[dict]], queries: list[dict], grid: np.ndarray, key: str = "stat") -> list[dict[str, float]]:
    """Detection rate (true reference above threshold) and negatives' FPR per threshold of a
    mode's decision statistic (``key`` of each prediction): how the default thresholds are chosen."""
    preds = {qn: [{**p, "stat": p[key]} for p in ps] for qn, ps in preds.items()}
    rows = []
    for th in grid:
        det = [any(p["stat"] >= th and p["ref"] in {m["ref"] for m in q["matches"]} for p in preds.get(q["name"], [])) for q in queries if q["positive"]]
        fp = [any(p["stat"] >= th for p in preds.get(q["name"], [])) for q in queries if not q["positive"]]
        wrong = [any(p["stat"] >= th and p["ref"] not in {m["ref"] for m in q["matches"]} for p in preds.get(q["name"], [])) for q in queries if q["positive"]]
        rows.append({"threshold": round(float(th), 3), "detected": round(float(np.mean(det)), 3), "negatives_fpr": round(float(np.mean(fp)), 3) if fp else 0.0,
                     "positives_with_wrong_ref": round(float(np.mean(wrong)), 3)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", default=None, help="trained model folder (default: the shipped/untrained default)")
    ap.add_argument("--uri", default=None, help="Milvus server URI (default: a fresh Milvus Lite file)")
    ap.add_argument("--radius", type=int, default=None, help="default: the model's tuned value (config.json thresholds), else 32")
    ap.add_argument("--name", default="", help="suffix of the results file")
    ap.add_argument("--data", type=Path, default=DATA, help="dataset folder (make_dataset.py --out)")
    ap.add_argument("--duration-threshold", type=float, default=None, help="default: the model's tuned value")
    ap.add_argument("--align-min-score", type=float, default=None, help="mean similarity a segment needs (default: the model's tuned value)")
    ap.add_argument("--frame-match-l2", type=float, default=None, help="L2 distance beyond which a re-rank hit is no frame match (default: the model's tuned value)")
    ap.add_argument("--min-code-votes", type=int, default=None, help="candidate videos need this many coherent code votes (default: the model's tuned value)")
    ap.add_argument("--max-candidates", type=int, default=None, help="candidate videos per view sent to the re-rank (default: the model's tuned value)")
    ap.add_argument("--background-beta", type=float, default=None, help="background normalisation strength (default: the model's tuned value)")
    ap.add_argument("--untrained", action="store_true", help="the untrained heads on the embedded Lite0 backbone instead of the default model")
    ap.add_argument("--backbone", default=None, help="untrained heads on this backbone (sscd, sscd_distilled, tf_efficientnet_lite0)")
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime threads (ONNX backbones)")
    ap.add_argument("--regions", action="store_true", help="also mode 2 with the query's region views (views.py): mode_duration_regions (all views), mode_duration_insets (full + the detected views: insets, bars, caption band, filmed screen; the default search), mode_duration_centre (full + fixed crops)")
    ap.add_argument("--no-baselines", action="store_true", help="skip the baselines (pHash, vPDQ, exhaustive float): a faster run")
    ap.add_argument("--extra-negatives", type=Path, default=None, metavar="DIR",
                    help="also the negative queries of DIR, a set made for the same references (make_dataset.py --positives 0)")
    ap.add_argument("--limit-queries", type=int, default=None, help="quick check: only N queries (2/3 positive, the rest negative)")
    ap.add_argument("--limit-refs", type=int, default=None, help="quick check: only the references those queries copy plus M others")
    args = ap.parse_args()
    if (args.limit_queries is not None or args.limit_refs is not None) and not args.name:
        args.name = "limited"  # never overwrite a full run's results with a quick check
    data = args.data
    gt = json.loads((data / "ground_truth.json").read_text())
    refs, queries = gt["references"], gt["queries"]
    qdir = {q["name"]: data / "queries" for q in queries}
    main_names = {q["name"] for q in queries}
    if args.extra_negatives is not None:
        extra = json.loads((args.extra_negatives / "ground_truth.json").read_text())
        same = lambda rs: [(r["name"], r["source"], r["duration"]) for r in rs]  # noqa: E731
        if same(extra["references"]) != same(refs) or any(q["positive"] for q in extra["queries"]):
            raise SystemExit(f"{args.extra_negatives}: not negatives for the references of {data} (make_dataset.py --hard with its split and seed, --positives 0)")
        for q in extra["queries"]:
            name = f"{args.extra_negatives.name}/{q['name']}"
            qdir[name] = args.extra_negatives / "queries"
            queries.append({**q, "name": name})
    if args.limit_queries is not None:
        n_pos = max(1, round(args.limit_queries * 2 / 3))
        queries = [q for q in queries if q["positive"]][:n_pos] + [q for q in queries if not q["positive"]][: max(0, args.limit_queries - n_pos)]
    if args.limit_refs is not None:
        used = {m["ref"] for q in queries for m in q["matches"]}
        refs = [r for r in refs if r["name"] in used] + [r for r in refs if r["name"] not in used][: args.limit_refs]

    def qpath(q: dict) -> Path:
        return qdir[q["name"]] / Path(q["name"]).name

    if args.untrained or args.backbone:
        model = load_model(backbone=args.backbone or "tf_efficientnet_lite0", threads=args.threads)
    else:
        model = load_model(checkpoint=args.checkpoint, threads=args.threads)
    # The model's tuned thresholds (SearchParams.for_model), overridden by the options given.
    tuned = SearchParams.for_model(thresholds_for(model), radius=args.radius, frame_match_l2=args.frame_match_l2, duration_threshold=args.duration_threshold,
                                   background_beta=args.background_beta, min_code_votes=args.min_code_votes,
                                   max_candidates=args.max_candidates)
    if args.align_min_score is not None:
        tuned = dataclasses.replace(tuned, align=dataclasses.replace(tuned.align, min_score=args.align_min_score))
    args.radius, args.frame_match_l2, args.duration_threshold, args.align_min_score = tuned.radius, tuned.frame_match_l2, tuned.duration_threshold, tuned.align.min_score
    # Runs of other names may go on beside on Milvus Lite (one file each); on a --uri server they share the prefix.
    work = ROOT / "benchmarks" / "out" / ("eval" + (f"-{args.name}" if args.name else ""))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    store = Store.connect(args.uri or str(work / "eval.db"), prefix="evalbench")
    store.drop()
    sampling = Sampling()
    store.ensure_collections(StoreMeta(model.model_id, model.config.embed_dim, model.config.code_bits, sampling.fps, sampling.keyframes))

    # ingest (timed: decode + model + store)
    ref_desc: dict[str, VideoDescriptor] = {}
    t0 = time.perf_counter()
    for r in refs:
        path = data / "refs" / r["name"]
        sha = sha256_file(path)
        d = fingerprint_video(path, model, sampling, video_id=store.free_video_id(sha))
        store.add_video(d, sha)
        ref_desc[r["name"]] = d
    ingest_s = time.perf_counter() - t0
    ref_seconds = sum(d.duration for d in ref_desc.values())
    by_id = {d.video_id: name for name, d in ref_desc.items()}
    # queries: fingerprint once, search in every mode
    q_desc: dict[str, VideoDescriptor] = {}
    fp_ms: list[float] = []
    for q in queries:
        t = time.perf_counter()
        q_desc[q["name"]] = fingerprint_video(qpath(q), model, sampling)
        fp_ms.append((time.perf_counter() - t) * 1e3)
    systems: dict[str, dict[str, list[dict]]] = {}
    search_ms: list[float] = []
    cand_share: list[float] = []  # frames of the candidate videos (whole videos)
    window_share: list[float] = []  # frames the default window re-rank actually searches
    true_reached: list[bool] = []  # per (positive query, true reference): among the candidates
    total_ref_frames = sum(d.num_frames for d in ref_desc.values())
    for mode in Mode:
        params = dataclasses.replace(tuned, mode=mode, top_n=len(refs))
        preds: dict[str, list[dict]] = {}
        for q in queries:
            t = time.perf_counter()
            resp = search_descriptor(store, q_desc[q["name"]], params)
            if mode is Mode.duration:
                search_ms.append((time.perf_counter() - t) * 1e3)
                cands = {by_id[v] for v in recall_candidates(store, q_desc[q["name"]], params) if v in by_id}
                cand_share.append(sum(ref_desc[n].num_frames for n in cands) / total_ref_frames)
                window_share.append(resp.candidates["rerank_frames"] / total_ref_frames)
                true_reached += [r in cands for r in {m["ref"] for m in q["matches"]}]
            preds[q["name"]] = [
                {"ref": by_id[r.video_id], "score": r.score, "is_copy": r.is_copy, "segments": [g.to_json() for g in r.segments],
                 "stat": {Mode.embedding: -r.min_distance, Mode.duration: r.repetition_degree, Mode.codes: r.code_ratio}[mode],
                 "cut_stat": mode2_cut_stat(r, params)}
                for r in resp.results
            ]
        systems[f"mode_{mode.value}"] = preds
    view_cost: dict[str, object] = {}
    if args.regions:
        from vidret_milvus.regions import FIXED_CROPS
        from vidret_milvus.views import fingerprint_views, search_views

        params = dataclasses.replace(tuned, mode=Mode.duration, top_n=len(refs))
        # The same views, also searched in part: which kind of view brings what. ``insets`` is
        # the default search (views.py with no fixed crop), fingerprinted and timed on its own.
        by_system: dict[str, dict[str, list[dict]]] = {"mode_duration_regions": {}, "mode_duration_insets": {}, "mode_duration_centre": {}}
        region_ms: list[float] = []
        insets_ms: list[float] = []
        shown: dict[str, int] = {}  # queries with each kind of detected view (box = an inset)
        q_views: dict[str, list] = {}
        views_share: list[float] = []
        views_true: list[bool] = []
        for q in queries:
            t = time.perf_counter()
            views = fingerprint_views(qpath(q), model, sampling)
            all_resp = search_views(store, views, params)
            region_ms.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            insets = fingerprint_views(qpath(q), model, sampling, crops=())
            insets_resp = search_views(store, insets, params) if len(insets) > 1 else search_descriptor(store, insets[0][1], params)
            insets_ms.append((time.perf_counter() - t) * 1e3)
            # The code stage of the default search: every candidate is returned (top_n = all)
            q_views[q["name"]] = insets
            got = {by_id[r.video_id] for r in insets_resp.results}
            views_share.append(sum(ref_desc[n].num_frames for n in got) / total_ref_frames)
            views_true += [r in got for r in {m["ref"] for m in q["matches"]}]
            for kind in {n.rstrip("0123456789") for n, _ in insets[1:]}:
                shown[kind] = shown.get(kind, 0) + 1
            centre_resp = search_views(store, [(n, v) for n, v in views if n == "full" or n in FIXED_CROPS], params)
            for system, resp in (("mode_duration_regions", all_resp), ("mode_duration_insets", insets_resp), ("mode_duration_centre", centre_resp)):
                by_system[system][q["name"]] = [
                    {"ref": by_id[r.video_id], "score": r.score, "is_copy": r.is_copy, "segments": [g.to_json() for g in r.segments],
                     "stat": r.repetition_degree, "cut_stat": mode2_cut_stat(r, params), "view": r.view} for r in resp.results]
        systems.update(by_system)
        view_cost = {"code_stage_recall_of_l2_nn": code_stage_recall_views(q_views, ref_desc, queries, params.radius),
                     "reference_frames_reaching_rerank": round(float(np.mean(views_share)), 4),
                     "true_refs_reaching_rerank": round(float(np.mean(views_true)), 4) if views_true else None,
                     "queries_with_inset": shown.get("box", 0), "queries_with_view": shown, "insets_ms_p50": round(float(np.percentile(insets_ms, 50)), 1),
                     "insets_ms_p95": round(float(np.percentile(insets_ms, 95)), 1), "all_views_ms_p50": round(float(np.percentile(region_ms, 50)), 1),
                     "all_views_ms_p95": round(float(np.percentile(region_ms, 95)), 1)}
        print(f"code stage of the default search (whole frame + detected views): copied frames' L2-NN within radius {view_cost['code_stage_recall_of_l2_nn']}, "
              f"reference frames in candidate videos {view_cost['reference_frames_reaching_rerank']}, true references reaching the re-rank {view_cost['true_refs_reaching_rerank']}")
        print(f"of {len(queries)} queries, with a detected view (box: an inset): {shown}; insets (the default search): fingerprint + search p50 "
              f"{np.percentile(insets_ms, 50):.0f} ms, p95 {np.percentile(insets_ms, 95):.0f} ms per query")
        print(f"region views (all): fingerprint + search p50 {np.percentile(region_ms, 50):.0f} ms per query "
              f"(full frame only: fingerprint p50 {np.percentile(fp_ms, 50):.0f} ms + search p50 {np.percentile(search_ms, 50):.0f} ms)")
    store.close()

    params = tuned
    if not args.no_baselines:  # baselines on the same sampled frames
        emb_preds: dict[str, list[dict]] = {}
        ph_preds: dict[str, list[dict]] = {}
        pdq_preds: dict[str, list[dict]] = {}
        ref_ph, ref_pdq = {}, {}
        for n in ref_desc:
            frames = np.concatenate([b.frames for b in iter_frames(data / "refs" / n, fps=1.0, short_side=256)])
            ref_ph[n], ref_pdq[n] = phash(frames), pdq_hashes(frames)
        # With background normalisation on, the baseline gets it too: all reference frames are the
        # background (the system samples up to 5000 stored frames; here that is all of them).
        ref_bg = Background.load(params.background_path) if params.background_path else Background(
            np.concatenate([d.embeddings for d in ref_desc.values()]), np.concatenate([np.full(d.num_frames, d.video_id, np.int64) for d in ref_desc.values()]))
        for q in queries:
            qd = q_desc[q["name"]]
            qframes = np.concatenate([b.frames for b in iter_frames(qpath(q), fps=1.0, short_side=256)])
            qph, qpdq = phash(qframes), pdq_hashes(qframes)
            emb_preds[q["name"]], ph_preds[q["name"]], pdq_preds[q["name"]] = [], [], []
            qbg = ref_bg.similarity(qd.embeddings, params.background_k) if params.background_beta > 0 else None
            exhaustive = []
            for name, rd in ref_desc.items():
                bg = qbg.kth(exclude_video=rd.video_id) if qbg is not None else None
                exhaustive.append(exhaustive_decision(qd, rd, params, bg))
                n = min(len(qph), len(qd.timestamps))
                sim = 1.0 - hamming(qph[:n], ref_ph[name][: rd.num_frames]) / 32.0
                sc, cp, segs = hash_decision(qd.timestamps[:n], qd.duration, rd.timestamps[: sim.shape[1]], rd.duration, sim, params, 0.5)
                ph_preds[q["name"]].append({"ref": name, "score": sc, "is_copy": cp, "segments": [g.to_json() for g in segs]})
                n = min(len(qpdq), len(qd.timestamps))
                sim = pdq_similarity(qpdq[:n], ref_pdq[name][: rd.num_frames])
                sc, cp, segs = hash_decision(qd.timestamps[:n], qd.duration, rd.timestamps[: sim.shape[1]], rd.duration, sim, params, PDQ_MIN_SIM)
                pdq_preds[q["name"]].append({"ref": name, "score": sc, "is_copy": cp, "segments": [g.to_json() for g in segs]})
            for name, r in zip(ref_desc, decide_query(params, exhaustive)):
                emb_preds[q["name"]].append({"ref": name, "score": r.score, "is_copy": r.is_copy, "segments": [g.to_json() for g in r.segments]})
        systems["baseline_exhaustive_float"] = emb_preds
        systems["baseline_phash64"] = ph_preds
        systems["baseline_vpdq"] = pdq_preds

    code_stage = code_stage_recall(q_desc, ref_desc, queries, args.radius)

    report: dict[str, object] = {
        "model_id": model.model_id, "checkpoint": args.checkpoint, "radius": args.radius, "min_code_votes": tuned.min_code_votes, "max_candidates": tuned.max_candidates,
        "align_min_score": args.align_min_score, "frame_match_l2": args.frame_match_l2, "duration_threshold": args.duration_threshold, "background_beta": tuned.background_beta, "background": tuned.background_path or "store sample",
        "data": str(data.relative_to(ROOT)) if data.is_relative_to(ROOT) else str(data),
        "references": len(refs), "reference_seconds": round(ref_seconds, 1), "queries": len(queries),
        "limited": args.limit_queries is not None or args.limit_refs is not None,
        "positives": sum(q["positive"] for q in queries),
        "ingest_realtime_x": round(ref_seconds / ingest_s, 1),
        "search_ms_p50": round(float(np.percentile(search_ms, 50)), 1), "search_ms_p95": round(float(np.percentile(search_ms, 95)), 1),
        "fingerprint_ms_p50": round(float(np.percentile(fp_ms, 50)), 1),
        "hamming_recall_of_l2_nn": code_stage.pop("recall"),
        "hamming_recall_by_nn_l2": code_stage,
        "reference_frames_reaching_rerank": round(float(np.mean(cand_share)), 4),
        "reference_frames_reranked_window": round(float(np.mean(window_share)), 4),
        "views_fingerprint_and_search": view_cost,
        "true_refs_reaching_rerank": round(float(np.mean(true_reached)), 4) if true_reached else None,
        "systems": {},
    }
    report["threshold_sweeps"] = {
        "mode_duration (repetition degree)": sweep(systems["mode_duration"], queries, np.round(np.arange(0.1, 0.95, 0.05), 2)),
        "mode_embedding (-min L2 distance)": sweep(systems["mode_embedding"], queries, -np.round(np.arange(0.3, 1.2, 0.05), 2)),
        "mode_codes (equal-code ratio)": sweep(systems["mode_codes"], queries, np.round(np.arange(0.05, 0.9, 0.05), 2)),
        "mode_duration (calibrated p, best segment >= min_copy_seconds)": sweep(systems["mode_duration"], queries, np.round(np.arange(0.05, 1.0, 0.05), 2), "cut_stat"),
    }
    for system in ("mode_duration_regions", "mode_duration_insets", "mode_duration_centre"):
        if system in systems:
            report["threshold_sweeps"][f"{system} (calibrated p, best segment >= min_copy_seconds)"] = sweep(
                systems[system], queries, np.round(np.arange(0.05, 1.0, 0.05), 2), "cut_stat")
    pr_curves = {}
    for name, preds in systems.items():
        m = evaluate(preds, gt, queries)
        pr_curves[name] = m.pop("_pr")
        report["systems"][name] = m  # type: ignore[index]
    if args.extra_negatives is not None:
        own = [q for q in queries if q["name"] in main_names]
        report["extra_negatives"] = {"data": str(args.extra_negatives), "queries": len(queries) - len(own)}
        report["systems_main"] = {}
        for name, preds in systems.items():
            m = evaluate(preds, gt, own)
            m.pop("_pr")
            report["systems_main"][name] = m  # type: ignore[index]
    print(f"model {model.model_id}  refs {len(refs)} ({ref_seconds:.0f} s)  queries {len(queries)}  ingest {report['ingest_realtime_x']}x realtime  "
          f"search p50 {report['search_ms_p50']} ms  Hamming recall of L2-NN {report['hamming_recall_of_l2_nn']}  "
          f"true references reaching the re-rank {report['true_refs_reaching_rerank']}  reference frames re-ranked (window) {report['reference_frames_reranked_window']}")
    print("Hamming recall of L2-NN by its L2 distance: " + "; ".join(f"{band} ({v['frames_share']:.0%} of frames, NN in the true reference {v['nn_in_true_reference']:.0%}): {v['within_radius']:.3f}"
                                                             for band, v in report["hamming_recall_by_nn_l2"].items()))  # type: ignore[union-attr]
    cols = ["muAP", "recall_at_p90", "top1", "detected", "negatives_fpr", "segment_precision", "segment_recall", "segment_f1"]
    print(f"{'system':28s}" + "".join(f"{c:>18s}" for c in cols))
    for name, m in report["systems"].items():  # type: ignore[union-attr]
        print(f"{name:28s}" + "".join(f"{m[c]:>18}" for c in cols))
    print(f"{'per copy length (det/top1)':28s}" + "".join(f"{label:>18s}" for label, _, _ in COPY_BINS) + f"{'2-segment F1':>18s}")
    for name, m in report["systems"].items():  # type: ignore[union-attr]
        cells = [f"{m['per_copy_length'][b]['detected']}/{m['per_copy_length'][b]['top1']}" if b in m["per_copy_length"] else "-" for b, _, _ in COPY_BINS]
        print(f"{name:28s}" + "".join(f"{c:>18s}" for c in cells) + f"{m['two_segment_f1']:>18}")
    if args.extra_negatives is not None:
        own = len(queries) - report["extra_negatives"]["queries"]  # type: ignore[index]
        print(f"--data's own {own} queries only (systems_main; the table above adds {report['extra_negatives']['queries']} negatives of {args.extra_negatives}):")
        for name, m in report["systems_main"].items():  # type: ignore[union-attr]
            print(f"{name:28s}" + "".join(f"{m[c]:>18}" for c in cols))
        for name, m in report["systems"].items():  # type: ignore[union-attr]
            k, n = m["negatives_flagged"], m["negatives"]
            if n:
                # as if independent: the negatives share a few sources each (DATA.md), so the true spread is wider
                lo, hi = wilson(k, n)
                m["negatives_95"] = [round(lo, 4), round(hi, 4)]
                print(f"{name:28s} negatives flagged {k} of {n} ({k / n:.1%}, 95 % Wilson interval {lo:.1%}-{hi:.1%} if independent)")
    save("retrieval" + (f"-{args.name}" if args.name else ""), report)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4.5))
        for name, (p, r) in pr_curves.items():
            ax.plot(r, p, label=name)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"precision-recall ({model.model_id})")
        ax.legend(fontsize=8)
        out = ROOT / "benchmarks" / "results" / f"pr{('-' + args.name) if args.name else ''}.png"
        fig.savefig(out, dpi=110, bbox_inches="tight")
        print(f"wrote {out.relative_to(ROOT)}")
    except ImportError:
        print("matplotlib not installed: no plot")


if __name__ == "__main__":
    main()
