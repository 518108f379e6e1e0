"""Would another piece of evidence move the mode-2 decision? Candidate features, tried offline
on the tuning sets only (never the test split).

    .venv/bin/python benchmarks/tune_thresholds.py --data benchmarks/data_hard_tune benchmarks/data_hard_tune2 \\
        benchmarks/data_hard_tune3 benchmarks/data_hard_trainneg --checkpoint vidret_milvus/models/sscd_distilled \\
        --min-score 0.45 --frame-match-l2 1.2 --radius 40 --dump-candidates benchmarks/out/candidates4.npz
    .venv/bin/python benchmarks/feature_study.py benchmarks/out/candidates4.npz --name 4sets

Every candidate (query, reference) of the dump (its first grid point) gets, from the cached
descriptors of the dump's model (``--checkpoint``; tune_thresholds.cached_set: the references,
each query's whole frame and the views the default search makes), exhaustively in numpy:

* ``ref_margin``: the reference-side margin. With ``col_j`` the best similarity of any query
  frame (any view) to reference frame ``j`` and ``sib_j`` the similarity of frame ``j`` to its
  nearest frame of ANOTHER stored reference (a sibling strip, a neighbouring window):
  ``col_j* - sib_j*`` at ``j* = argmax col``. A copy should stand out from what the library
  already holds near that frame; a look-alike matches about as well as the siblings match
  each other. ``ref_margin_max``: ``max_j (col_j - sib_j)``; ``ref_margin_top3``: the mean of
  its three largest; ``ref_sibling``: ``sib_j*`` itself;
* ``cand_margin``: the same with ``sib`` taken over the query's OTHER candidates only (what a
  search has at hand without another Milvus search);
* ``store_bg_margin``: query side, the best frame similarity minus that query frame's
  similarity to its nearest frame of another stored reference (VSC22-style background, the
  store as background);
* ``noise_bg_margin``: the same against a noise set of another split (tuning sets: the training
  split's references; training-split sets: the tuning sets' references), and ``noise_bg``
  itself.
* ``ref_static``: how still the reference is (the mean similarity of its consecutive frames; a
  photo's clip is near 1), where a long segment is no evidence of temporal coherence; with its
  products with the best segment's log-seconds and the best frame similarity
  (``static_x_seconds``, ``static_x_similarity``), so that the fit can weigh them per kind.

Each is appended to ``decision.FEATURES`` and judged the way the default's cut is chosen: the
logistic calibration (``decision.fit_logistic``, L2 1) fitted, the lowest probability cut
flagging <= 2 % of the negatives (best segment >= 4 s, the 288 px student's, then the default); leave one tuning set
out (fit and cut on the others, count on the one left out) and in-sample on all. The row
``two_tier`` keeps the six features and adds a second cut: 3 s segments pass at a higher
probability. Writes benchmarks/results/feature_study.json (``--name``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from _common import ROOT, save
from eval_retrieval import evaluate
from tune_thresholds import cached_set
from vidret_milvus.decision import FEATURES, TIME_TOLERANCE, fit_logistic
from vidret_milvus.model import load_model

THRESHOLDS = [round(float(t), 3) for t in np.r_[np.arange(0.05, 0.95, 0.05), 0.95, 0.97, 0.98, 0.99, 0.995, 0.999]]  # as calib_crossfit
EXTRA = ("ref_margin", "ref_margin_max", "ref_margin_top3", "ref_sibling", "cand_margin", "store_bg_margin", "noise_bg_margin", "noise_bg",
         "ref_static", "static_x_seconds", "static_x_similarity")
VARIANTS: dict[str, tuple[str, ...]] = {
    "six features (the default's)": (),
    "+ ref_margin": ("ref_margin",),
    "+ ref_margin_max": ("ref_margin_max",),
    "+ ref_margin_top3": ("ref_margin_top3",),
    "+ ref_margin, ref_sibling": ("ref_margin", "ref_sibling"),
    "+ cand_margin": ("cand_margin",),
    "+ store_bg_margin": ("store_bg_margin",),
    "+ noise_bg_margin": ("noise_bg_margin",),
    "+ noise_bg_margin, noise_bg": ("noise_bg_margin", "noise_bg"),
    "+ ref_static": ("ref_static",),
    "+ ref_static, x seconds, x similarity": ("ref_static", "static_x_seconds", "static_x_similarity"),
}


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def load_set(model, data: Path) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Ground truth, reference embeddings by name, and each query's frames of all its views
    stacked (tune_thresholds.cached_set: the default search's views). Never the test split."""
    gt, refs, views = cached_set(model, data, refuse_test=True)
    return gt, {n: unit(d.embeddings) for n, d in refs.items()}, {q: unit(np.concatenate([d.embeddings for _, d in vs])) for q, vs in views.items()}


def extra_features(query: np.ndarray, ref: np.ndarray, model) -> tuple[np.ndarray, list[dict]]:
    """The :data:`EXTRA` columns of every candidate (rows of the dump)."""
    sets = sorted({s.split("/")[0] for s in query})
    loaded = {s: load_set(model, ROOT / "benchmarks" / s) for s in sets}
    split = {s: loaded[s][0].get("split") for s in sets}
    out = np.zeros((len(query), len(EXTRA)))
    for s in sets:
        gt, refs, queries = loaded[s]
        rnames = list(refs)
        E = np.concatenate([refs[n] for n in rnames])
        owner = np.concatenate([np.full(len(refs[n]), i) for i, n in enumerate(rnames)])
        start = dict(zip(rnames, np.r_[0, np.cumsum([len(refs[n]) for n in rnames])[:-1]].tolist()))
        G = E @ E.T
        G[owner[:, None] == owner[None, :]] = -1.0
        sibling = G.max(1)  # each reference frame's nearest frame of another reference
        # The noise set comes from another split (the tuning sets cut the same footage at
        # other points, so one tuning set's references can hold another's copies).
        noise_sets = [o for o in sets if split[o] != split[s]]
        noise = np.concatenate([np.concatenate(list(loaded[o][1].values())) for o in noise_sets]) if noise_sets else np.zeros((0, E.shape[1]), np.float32)
        rows = np.flatnonzero(np.char.startswith(query.astype(str), s + "/"))
        by_query: dict[str, list[int]] = {}
        for k in rows:
            by_query.setdefault(str(query[k]), []).append(int(k))
        for qname, ks in by_query.items():
            V = queries[qname.split("/", 1)[1]]
            cand = [str(ref[k]).split("/", 1)[1] for k in ks]
            for k, rn in zip(ks, cand):
                a, b = start[rn], start[rn] + len(refs[rn])
                S = V @ E[a:b].T
                col = S.max(0)
                j = int(np.argmax(col))
                d = col - sibling[a:b]
                others = [i for r in cand if r != rn for i in range(start[r], start[r] + len(refs[r]))]
                csib = (E[a:b] @ E[others].T).max(1) if others else np.zeros(b - a)
                v = V[int(np.argmax(S.max(1)))]
                rest = np.r_[0:a, b:len(E)]
                store_bg = float((E[rest] @ v).max()) if len(rest) else 0.0
                noise_bg = float((noise @ v).max()) if len(noise) else 0.0
                R_ = E[a:b]
                static = float((R_[1:] * R_[:-1]).sum(1).mean()) if len(R_) > 1 else 1.0
                out[k, :8] = [d[j], d.max(), np.sort(d)[-3:].mean(), sibling[a + j], col[j] - csib[j], S.max() - store_bg, S.max() - noise_bg, noise_bg]
                out[k, 8] = static
    return out, [{"set": s, "split": split[s], "noise_from": [o for o in sets if split[o] != split[s]]} for s in sets]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dump", type=Path, help="tune_thresholds.py --dump-candidates file (its first grid point)")
    ap.add_argument("--checkpoint", default="vidret_milvus/models/sscd_distilled", help="the model the dump was made with (its cached descriptors are read)")
    ap.add_argument("--max-fpr", type=float, default=0.02)
    ap.add_argument("--min-copy-seconds", type=float, default=4.0, help="the cut's shortest best segment (the 288 px student's)")
    ap.add_argument("--name", default="")
    args = ap.parse_args()
    z = np.load(args.dump)
    Q, R, y, X = z["query_0"], z["ref_0"], z["label_0"], z["X_0"]
    if list(z["features"]) != list(FEATURES):
        raise SystemExit(f"{args.dump}: dumped with features {list(z['features'])}, this code has {list(FEATURES)}")
    extra, noise_info = extra_features(Q, R, load_model(checkpoint=args.checkpoint))
    extra[:, EXTRA.index("static_x_seconds")] = extra[:, EXTRA.index("ref_static")] * X[:, FEATURES.index("log1p_best_segment_seconds")]
    extra[:, EXTRA.index("static_x_similarity")] = extra[:, EXTRA.index("ref_static")] * X[:, FEATURES.index("best_frame_similarity")]
    qset = np.array([q.split("/")[0] for q in Q])
    sets = sorted(set(qset.tolist()))
    gts = {s: json.loads((ROOT / "benchmarks" / s / "ground_truth.json").read_text()) for s in sets}
    negq = {f"{s}/{q['name']}" for s in sets for q in gts[s]["queries"] if not q["positive"]}
    npos = {s: sum(bool(q["positive"]) for q in gts[s]["queries"]) for s in sets}
    nneg = {s: len(gts[s]["queries"]) - npos[s] for s in sets}
    secs = np.expm1(X[:, FEATURES.index("log1p_best_segment_seconds")])

    def counts(p: np.ndarray, m: np.ndarray, t1: float, t2: float = 2.0) -> tuple[int, int]:
        """(negative queries flagged, positive queries detected) among rows ``m``: copy when p >= t1
        with a best segment of --min-copy-seconds, or p >= t2 with one second less."""
        copy = ((p >= t1) & (secs[m] >= args.min_copy_seconds - TIME_TOLERANCE)) | ((p >= t2) & (secs[m] >= args.min_copy_seconds - 1 - TIME_TOLERANCE))
        return (len({q for q, c in zip(Q[m], copy) if c and q in negq}), len({q for q, c, t in zip(Q[m], copy, y[m]) if c and t == 1}))

    def cut(p: np.ndarray, m: np.ndarray, in_sets: list[str], two_tier: bool) -> tuple[float, float]:
        limit = args.max_fpr * sum(nneg[s] for s in in_sets)
        best: tuple[int, float, float] | None = None
        for t1 in THRESHOLDS:
            for t2 in ([t for t in THRESHOLDS if t >= t1] + [2.0] if two_tier else [2.0]):  # 2.0: no second cut
                f, d = counts(p, m, t1, t2)
                if f <= limit and (best is None or d > best[0]):
                    best = (d, t1, t2)
        if best is None:
            raise SystemExit("no cut keeps the negatives' rate")
        return best[1], best[2]

    def muap(p: np.ndarray, m: np.ndarray, in_sets: list[str]) -> float | None:
        if not sum(npos[s] for s in in_sets):
            return None
        queries = [{**q, "name": f"{s}/{q['name']}", "matches": [{**x, "ref": f"{s}/{x['ref']}"} for x in q["matches"]]} for s in in_sets for q in gts[s]["queries"]]
        preds: dict[str, list[dict]] = {q["name"]: [] for q in queries}
        for q, r, pp in zip(Q[m], R[m], p):
            preds[str(q)].append({"ref": str(r), "score": float(pp), "is_copy": False, "segments": []})
        return float(evaluate(preds, {}, queries)["muAP"])

    rows = []
    variants = [(name, cols, False) for name, cols in VARIANTS.items()] + [("two_tier (six features; 1 s shorter at a higher cut)", (), True)]
    for name, cols, two in variants:
        F = np.hstack([X, extra[:, [EXTRA.index(c) for c in cols]]])
        prob = lambda w, b, m: 1.0 / (1.0 + np.exp(-(F[m] @ w + b)))  # noqa: E731
        held = []
        for s in sets:
            mb, ma = qset == s, qset != s
            fit_on = [o for o in sets if o != s]
            w, b = fit_logistic(F[ma], y[ma], l2=1.0)
            t1, t2 = cut(prob(w, b, ma), ma, fit_on, two)
            f, d = counts(prob(w, b, mb), mb, t1, t2)
            held.append({"left_out": s, "cut": [t1, t2] if two else t1, "flagged": f, "negatives": nneg[s], "detected": d, "positives": npos[s]})
        allm = np.ones(len(y), bool)
        w, b = fit_logistic(F, y, l2=1.0)
        t1, t2 = cut(prob(w, b, allm), allm, sets, two)
        f, d = counts(prob(w, b, allm), allm, t1, t2)
        row = {"variant": name, "features": list(FEATURES) + list(cols), "held_out": held,
               "held_out_flagged": sum(h["flagged"] for h in held), "held_out_negatives": sum(h["negatives"] for h in held),
               "held_out_detected": sum(h["detected"] for h in held), "held_out_positives": sum(h["positives"] for h in held),
               "in_sample": {"cut": [t1, t2] if two else t1, "flagged": f, "negatives": sum(nneg.values()), "detected": d,
                             "positives": sum(npos.values()), "muAP": muap(prob(w, b, allm), allm, sets), "weights": [round(float(v), 3) for v in w], "bias": round(b, 3)}}
        rows.append(row)
        ins = row["in_sample"]
        print(f"{name:55s} left out: flagged {row['held_out_flagged']:3d} of {row['held_out_negatives']}, detected {row['held_out_detected']:3d} of {row['held_out_positives']} | "
              f"in-sample: flagged {ins['flagged']:3d} of {ins['negatives']}, detected {ins['detected']:3d} of {ins['positives']}, muAP {ins['muAP']:.3f}", flush=True)
    true, neg = y == 1, np.isin(Q, list(negq))
    spread = {c: {"true_p10_p50_p90": np.round(np.percentile(extra[true, i], [10, 50, 90]), 3).tolist(),
                  "negative_queries_candidates_p50_p90_p99": np.round(np.percentile(extra[neg, i], [50, 90, 99]), 3).tolist()} for i, c in enumerate(EXTRA)}
    for c, v in spread.items():
        print(f"  {c:16s} true candidates p10/50/90 {v['true_p10_p50_p90']}  negative queries' candidates p50/90/99 {v['negative_queries_candidates_p50_p90_p99']}")
    save("feature_study" + (f"-{args.name}" if args.name else ""), {"dump": str(args.dump), "sets": sets, "noise": noise_info, "max_fpr": args.max_fpr,
                                                                      "min_copy_seconds": args.min_copy_seconds, "rows": rows, "spread": spread})


if __name__ == "__main__":
    main()
