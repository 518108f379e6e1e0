"""Four tries at more copies above the default's negatives' cut that were not adopted (session 16).

    .venv/bin/python benchmarks/detector_tries.py [--tries ensemble views smoothing calibration]

Tuning data only (test sets are refused). The first three are judged like whitening_study's
variants, by texture_head_study.plain_detector on the four tuning sets: per copied segment the
best similarity of its frames, in any view, to the true reference; per negative query its best
similarity to any reference; the share of the 240 copies above the cut that flags 2 % of the 600
negatives (the default, ``models/sscd_whitened``: 0.629).

- ``ensemble``: SSCD (ResNet-50) fed a 224 px shorter side beside the default's student, each
  whitened as whitening_study does (uncentred, exponent p; statistics from the 1,979 reference
  frames of the training-split set ``data_hard_trainpos``), fused by score as
  ensemble_study does (``alpha`` SSCD's weight). SSCD's half comes from the untrained
  ``sscd_ensemble_224`` backbone's cache, the student's from ``models/sscd_distilled_224``'s
  (the identity head: the descriptor itself); the views both caches detected are compared.
- ``views``: query views searched for every query (not only when a detector finds one): the
  frame rotated by +-8 degrees and cropped by 10 % (against the rotation edit, the weakest), and
  a centre 80 % crop; embedded by the default, cached in benchmarks/out/detector_tries/.
- ``smoothing``: each frame's embedding averaged with its neighbours' (``k`` on each side,
  weight ``w``), on both sides or on the references only.
- ``calibration``: a non-linear mode-2 calibration, judged as calib_crossfit.py judges the
  default's (leave one tuning set out, the cut at a target rate of the other sets' negatives, 3 s)
  on the candidates of the default's grid point, dumped by

      .venv/bin/python benchmarks/tune_thresholds.py --data benchmarks/data_hard_tune benchmarks/data_hard_tune2 \\
          benchmarks/data_hard_tune3 benchmarks/data_hard_trainneg --checkpoint vidret_milvus/models/sscd_whitened \\
          --min-score 0.3 --frame-match-l2 1.2 --radius 40 --max-fpr 0.02 \\
          --dump-candidates benchmarks/out/candidates_whitened_03.npz

  the six features alone, with their pairwise products, with their squares, or with four
  products (best frame x margin, best frame x seconds, margin x seconds, segment confidence x
  margin); standardised on the fitted sets, L2-penalised logistic (decision.fit_logistic).

Writes benchmarks/results/detector_tries.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable

import numpy as np
from PIL import Image

from _common import ROOT, save
from calib_crossfit import crossfit
from feature_study import unit
from texture_head_study import load_set, plain_detector
from tune_thresholds import cache_dir, cached_set, fingerprints
from vidret_milvus.decision import FEATURES, fit_logistic
from vidret_milvus.fingerprint import Sampling
from vidret_milvus.model import load_model
from vidret_milvus.video import iter_frames
from whitening_study import pca_statistics, whitening

SETS = ("data_hard_tune", "data_hard_tune2", "data_hard_tune3", "data_hard_trainneg")
DEFAULT = "vidret_milvus/models/sscd_whitened"
STUDENT = "vidret_milvus/models/sscd_distilled_224"  # the default before whitening: its embedding is the descriptor
STATS = "data_hard_trainpos"
CANDIDATES = ROOT / "benchmarks" / "out" / "candidates_whitened_03.npz"


def ensemble_try() -> list[dict]:
    ens, stu = load_model(backbone="sscd_ensemble_224"), load_model(checkpoint=STUDENT)

    def sscd_half(e: np.ndarray) -> np.ndarray:  # the untrained ensemble's embedding is [x_sscd, x_student] / sqrt(2)
        return e[:, :512].astype(np.float64) * np.sqrt(2.0)

    data = ROOT / "benchmarks" / STATS
    names = [r["name"] for r in json.loads((data / "ground_truth.json").read_text())["references"]]
    stats_s = pca_statistics(np.concatenate([sscd_half(d.embeddings) for d in fingerprints(ens, data, names, "refs", cache_dir(ens, data), Sampling()).values()]))
    stats_t = pca_statistics(np.concatenate([d.embeddings.astype(np.float64) for d in fingerprints(stu, data, names, "refs", cache_dir(stu, data), Sampling()).values()]))
    print(f"statistics from {len(names)} references of {STATS}", flush=True)
    raw = []
    for s in SETS:
        gt, r1, v1 = cached_set(ens, ROOT / "benchmarks" / s, refuse_test=True)
        _, r2, v2 = cached_set(stu, ROOT / "benchmarks" / s, refuse_test=True)
        views = {}
        for q in v1:  # the views both models detected (their decodes differ in size)
            d1 = dict(v1[q])
            views[q] = [(d1[n], d2) for n, d2 in v2[q] if n in d1]
        raw.append((gt, {n: (sscd_half(r1[n].embeddings), r2[n].embeddings.astype(np.float64)) for n in r1}, views))
    rows = []
    for ps, pt in [(0.0, 0.0), (0.0, 0.3), (0.3, 0.3), (0.5, 0.3), (0.3, 0.5)]:
        A_s, c_s = whitening(*stats_s, ps, False)
        A_t, c_t = whitening(*stats_t, pt, False)

        for alpha in (0.0, 0.25, 0.4, 0.5, 0.6, 0.75, 1.0):
            def fuse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
                return np.concatenate([np.sqrt(alpha) * unit((a - c_s) @ A_s.T), np.sqrt(1 - alpha) * unit((b - c_t) @ A_t.T)], 1).astype(np.float32)

            sets = [(gt, {n: fuse(*refs[n]) for n in refs},
                     {q: [dataclasses.replace(a, embeddings=fuse(sscd_half(a.embeddings), b.embeddings.astype(np.float64))) for a, b in vs] for q, vs in views.items()})
                    for gt, refs, views in raw]
            row = {"sscd_p": ps, "student_p": pt, "alpha": alpha, **plain_detector(sets, np.eye(1024, dtype=np.float32))}
            rows.append(row)
            print(f"ensemble: SSCD p {ps:g}, student p {pt:g}, alpha {alpha:g}: plain detector {row['detected']:.4f} (cut {row['cut']:.3f})", flush=True)
    return rows


def rotated(f: np.ndarray, angle: float, margin: float) -> np.ndarray:
    """The frame rotated about its centre, cropped by ``margin`` on each side (the rotation edit's
    corners), resized back to its size."""
    h, w = f.shape[:2]
    img = Image.fromarray(f).rotate(angle, Image.Resampling.BILINEAR, expand=False)
    return np.asarray(img.crop((int(w * margin), int(h * margin), int(w * (1 - margin)), int(h * (1 - margin)))).resize((w, h), Image.Resampling.BILINEAR))


EXTRA_VIEWS = {"rot+8": lambda f: rotated(f, 8.0, 0.1), "rot-8": lambda f: rotated(f, -8.0, 0.1), "zoom80": lambda f: rotated(f, 0.0, 0.1)}


def views_try() -> list[dict]:
    model = load_model(checkpoint=DEFAULT)
    base = []
    for s in SETS:
        data = ROOT / "benchmarks" / s
        gt, refs, views = cached_set(model, data, refuse_test=True)
        path = ROOT / "benchmarks" / "out" / "detector_tries" / model.model_id / f"{s}.npz"
        if not path.exists():  # one decode per query, every extra view embedded
            extra = {}
            for q in gt["queries"]:
                frames = np.concatenate([b.frames for b in iter_frames(data / "queries" / q["name"], short_side=model.config.resize_size)])
                for n, fn in EXTRA_VIEWS.items():
                    extra[f"{q['name']}|{n}"] = model.embed_frames(np.stack([fn(f) for f in frames]))[0]
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, **extra)
            print(f"{s}: extra views embedded", flush=True)
        extra = dict(np.load(path))
        base.append((gt, {n: d.embeddings for n, d in refs.items()}, {q: [d for _, d in vs] for q, vs in views.items()}, extra))
    rows = []
    for names in ([], ["rot+8", "rot-8"], ["zoom80"], ["rot+8", "rot-8", "zoom80"]):
        sets = [(gt, refs, {q: vs + [dataclasses.replace(vs[0], embeddings=extra[f"{q}|{n}"]) for n in names] for q, vs in views.items()})
                for gt, refs, views, extra in base]
        row = {"extra_views": names, **plain_detector(sets, np.eye(model.config.embed_dim, dtype=np.float32))}
        rows.append(row)
        print(f"views: detected views + {names or 'nothing'}: plain detector {row['detected']:.4f} (cut {row['cut']:.3f})", flush=True)
    return rows


def smoothed(e: np.ndarray, k: int, w: float) -> np.ndarray:
    """Each frame's embedding plus ``w`` times its ``k`` neighbours' on each side, unit length."""
    out = e.astype(np.float64).copy()
    for d in range(1, k + 1):
        out[d:] += w * e[:-d]
        out[:-d] += w * e[d:]
    return unit(out)


def smoothing_try() -> list[dict]:
    model = load_model(checkpoint=DEFAULT)
    sets = [load_set(model, ROOT / "benchmarks" / s) for s in SETS]
    rows = []
    for k, w in ((0, 0.0), (1, 0.5), (1, 1.0), (2, 0.5)):
        for side in ("both", "references"):
            mapped = [(gt, {n: smoothed(e, k, w) for n, e in refs.items()},
                       {q: [dataclasses.replace(v, embeddings=smoothed(v.embeddings, k, w)) if side == "both" else v for v in vs] for q, vs in queries.items()})
                      for gt, refs, queries in sets]
            row = {"k": k, "w": w, "side": side, **plain_detector(mapped, np.eye(model.config.embed_dim, dtype=np.float32))}
            rows.append(row)
            print(f"smoothing: k {k}, w {w:g}, {side}: plain detector {row['detected']:.4f} (cut {row['cut']:.3f})", flush=True)
    return rows


def _four_products(X: np.ndarray) -> np.ndarray:
    bf, margin, secs, conf = (FEATURES.index(f) for f in ("best_frame_similarity", "best_frame_margin", "log1p_weighted_seconds", "best_segment_confidence"))
    return np.column_stack([X, X[:, bf] * X[:, margin], X[:, bf] * X[:, secs], X[:, margin] * X[:, secs], X[:, conf] * X[:, margin]])


# The six features, and with the products and squares tried beside them.
FEATURE_SETS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "six features": lambda X: X,
    "+ pairwise products": lambda X: np.column_stack([X] + [X[:, i] * X[:, j] for i in range(X.shape[1]) for j in range(i, X.shape[1])]),
    "+ squares": lambda X: np.column_stack([X, X**2]),
    "+ four products": _four_products,
}


def calibration_try() -> list[dict]:
    if not CANDIDATES.exists():
        raise SystemExit(f"{CANDIDATES}: dump the default's candidates first (the command in this script's docstring)")
    d = np.load(CANDIDATES)
    q, y, X = d["query_0"], d["label_0"], d["X_0"]
    names = sorted({s.split("/")[0] for s in q})
    gts = {s: json.loads((ROOT / "benchmarks" / s / "ground_truth.json").read_text()) for s in names}
    if any(g.get("split") == "test" for g in gts.values()):
        raise SystemExit("the candidates hold a test set")
    rows = []
    for fname, extend in FEATURE_SETS.items():
        def fit(X_fit: np.ndarray, y_fit: np.ndarray, X_all: np.ndarray, l2: float) -> np.ndarray:
            F_fit, F = extend(X_fit), extend(X_all)
            mu, sd = F_fit.mean(0), F_fit.std(0) + 1e-9  # standardised on the fitted sets
            w, bias = fit_logistic((F_fit - mu) / sd, y_fit, l2=l2)
            return 1.0 / (1.0 + np.exp(-(((F - mu) / sd) @ w + bias)))

        for l2 in (1.0, 3.0, 10.0):
            _, summary = crossfit(q, y, X, gts, [l2], [0.01, 0.015, 0.02], 3.0, log=False, fit=fit)
            rows += [{"features": fname, "l2": l2, "target": r["max_fpr"], "held_out_flagged": r["held_out_flagged"],
                      "held_out_detected": r["held_out_detected"]} for r in summary]
            print(f"calibration: {fname:24s} l2 {l2:4g}: " + "  ".join(
                f"target {r['max_fpr']:g}: {r['held_out_flagged']} negatives, {r['held_out_detected']} detected" for r in summary), flush=True)
    print(f"(held out, all folds: of {summary[0]['held_out_negatives']} negatives and {summary[0]['held_out_positives']} positive queries)")
    return rows


TRIES = {"ensemble": ensemble_try, "views": views_try, "smoothing": smoothing_try, "calibration": calibration_try}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tries", nargs="+", choices=list(TRIES), default=list(TRIES))
    ap.add_argument("--name", default="detector_tries")
    args = ap.parse_args()
    save(args.name, {"sets": list(SETS), "default": DEFAULT, **{t: TRIES[t]() for t in args.tries}})


if __name__ == "__main__":
    main()
