"""Does centring (and partly whitening) the student's descriptor help the re-rank on the hard tuning sets?

    .venv/bin/python benchmarks/whitening_study.py                          # prints the plain detector per variant
    .venv/bin/python benchmarks/whitening_study.py --out runs/sscd_whitened # and writes the best as a checkpoint
    .venv/bin/python benchmarks/tune_thresholds.py --data benchmarks/data_hard_tune benchmarks/data_hard_tune2 \\
        benchmarks/data_hard_tune3 benchmarks/data_hard_trainneg --checkpoint runs/sscd_whitened \\
        --min-score 0.3,0.35,0.4,0.45,0.5 --frame-match-l2 1.2 --radius 40 --name hard-whitened

Copy descriptors share a common component: every frame, copy or not, points partly the same
way, which lifts the cosine of unrelated frames (look-alike strips of one photo most of all).
Subtracting a mean before the cosine and shrinking the dominant principal directions (PCA
whitening with exponent ``p``: ``A = diag((lambda + eps)^(-p/2)) U^T``, ``eps`` the median
eigenvalue; p = 1 is full whitening; "centred" subtracts the mean first, "uncentred" does not)
is the standard unsupervised fix (descriptor whitening in the DISC21 / VSC22 baselines). The
statistics come from the TRAINING split only (``--stats``): by default the reference frames of a
training-split hard set (``data_hard_trainpos``, made by make_dataset.py --split train; its
labels are never read, its queries only with ``--stats-queries``), or ``train_images``, the training images with their seeded
edited copies (train.frozen.descriptor_cache, as train-heads caches them); never a tuning or
test frame. The map is the texture head (no new weights at run time):

    e = normalize(A (x - c))     with x the backbone's unit descriptor, c the mean or 0

so the float embedding, the L2 re-rank, alignment and decision see it, while the codes (the
quantization head reads x) and the Hamming recall stay the base checkpoint's. The base
(``--checkpoint``, the 224 px student) must have the identity texture head: its embedding is x.
Each variant is judged on the tuning sets by texture_head_study.plain_detector (per copied
segment its best frame similarity to the true reference, per negative query its best similarity
to any reference; copies above the cut that flags 2 % of the negatives), then the chosen one in
the real pipeline by tune_thresholds.py. ``--out`` fills the new model's tune cache from the
base's, checked against a fresh fingerprint. Test sets are refused. Writes
benchmarks/results/whitening_study.json (``--name``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from _common import ROOT, save
from texture_head_study import load_set, plain_detector
from tune_thresholds import cache_dir, check_filled_cache, fill_mapped_cache, fingerprints
from vidret_milvus.fingerprint import Sampling
from vidret_milvus.model import load_model
from vidret_milvus.model.checkpoint import save_onnx_checkpoint
from vidret_milvus.model.onnx_model import OnnxFingerprintModel, replace_heads
from vidret_milvus.train.data import SampleSet
from vidret_milvus.train.frozen import config_from_overrides, descriptor_cache

BASE = "vidret_milvus/models/sscd_distilled_224"  # identity texture head: its embedding is the descriptor
SETS = ("data_hard_tune", "data_hard_tune2", "data_hard_tune3", "data_hard_trainneg")


def training_statistics(model: OnnxFingerprintModel, source: str, with_queries: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Mean, eigenvalues (descending) and eigenvectors of training-split descriptors at the
    model's input size: ``train_images``, the training images and their seeded edited copies
    (as train-heads caches them), or the name of a training-split hard set (benchmarks/NAME,
    made by make_dataset.py --split train), whose REFERENCE frames are used (video frames as
    the library holds them), with ``with_queries`` its queries' whole frames too; labels are never read."""
    if source == "train_images":
        if with_queries:
            raise SystemExit("--stats-queries needs a hard set as --stats (train_images has no queries)")
        samples = SampleSet.load(ROOT / "train_cache" / "train.npz")
        recipe = config_from_overrides([], steps1=0, lr=0.0, quant_lr=0.001)  # the default's recipe: the same seeded copies
        orig, cop = descriptor_cache(model, samples, recipe, ROOT / "runs" / "frozen_cache")
        X = np.concatenate([orig, cop.reshape(-1, cop.shape[-1])]).astype(np.float64)
    else:
        data = ROOT / "benchmarks" / source
        gt = json.loads((data / "ground_truth.json").read_text())
        if gt.get("split") != "train":
            raise SystemExit(f"{data}: split {gt.get('split')!r}; the statistics must come from the training split")
        refs = fingerprints(model, data, [r["name"] for r in gt["references"]], "refs", cache_dir(model, data), Sampling())
        parts = [d.embeddings for d in refs.values()]
        if with_queries:  # the set's queries, whole frame: edited copies, so edit directions count as spread
            parts += [d.embeddings for d in fingerprints(model, data, [q["name"] for q in gt["queries"]], "queries", cache_dir(model, data), Sampling()).values()]
        X = np.concatenate(parts).astype(np.float64)
    return (*pca_statistics(X), len(X))


def pca_statistics(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, eigenvalues (descending) and eigenvectors of the covariance of the rows of ``X``."""
    mu = X.mean(0)
    lam, U = np.linalg.eigh(np.cov((X - mu).T))
    return mu, lam[::-1].copy(), U[:, ::-1].copy()


def whitening(mu: np.ndarray, lam: np.ndarray, U: np.ndarray, p: float, center: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(A, c)`` with the map ``x -> A (x - c)``."""
    eps = float(np.median(lam))
    A = np.eye(len(mu)) if p == 0 else np.diag((np.maximum(lam, 0) + eps) ** (-p / 2)) @ U.T
    return A, (mu if center else np.zeros_like(mu))


def mapped_set(s: tuple, A: np.ndarray, c: np.ndarray) -> tuple:
    """texture_head_study.load_set's triple with every embedding moved by ``x -> A (x - c)``
    (plain_detector normalises after its own map, the identity here)."""
    gt, refs, queries = s
    f = lambda x: ((x - c) @ A.T).astype(np.float32)  # noqa: E731
    return gt, {n: f(e) for n, e in refs.items()}, {n: [dataclasses.replace(v, embeddings=f(v.embeddings)) for v in vs] for n, vs in queries.items()}


def check_identity(model: OnnxFingerprintModel) -> None:
    """The study maps the descriptor itself, read from the base's cached embeddings: its texture
    head must undo the heads' standardisation (``W = diag(s)``, ``b = m``), i.e. be the identity."""
    h = model.heads
    m, s = h["feature_norm.mean"].astype(np.float64), h["feature_norm.std"].astype(np.float64)
    if not np.allclose(h["texture_head.proj.weight"], np.diag(s), atol=1e-6) or not np.allclose(h["texture_head.proj.bias"], m, atol=1e-6):
        raise SystemExit(f"model {model.model_id}: its texture head is not the identity on its descriptor (a whitened model?); "
                         f"pass --checkpoint {BASE}")


def heads_with(model: OnnxFingerprintModel, A: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    """The base's heads with the texture head ``normalize(A (x - c))``. The heads standardise
    first (``f = (x - m) / s``) and the base's texture head undoes it, so
    ``A (x - c) = (A diag(s)) f + A (m - c)``; the quantization head is untouched."""
    check_identity(model)
    h = {k: v.copy() for k, v in model.heads.items()}
    m, s = h["feature_norm.mean"].astype(np.float64), h["feature_norm.std"].astype(np.float64)
    h["texture_head.proj.weight"] = (A @ np.diag(s)).astype(np.float32)
    h["texture_head.proj.bias"] = (A @ (m - c)).astype(np.float32)
    return h


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=BASE, help="the model whose descriptor is mapped (its texture head must be the identity)")
    ap.add_argument("--sets", nargs="+", default=list(SETS), help="tuning sets (benchmarks/NAME) the plain detector runs on")
    ap.add_argument("--stats", default="data_hard_trainpos", help="where the mean and covariance come from: train_images, or a training-split hard set's references")
    ap.add_argument("--stats-queries", action="store_true", help="with a hard set as --stats: its queries' whole frames too (no labels read)")
    ap.add_argument("--powers", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.5], help="whitening exponents p (0: centring only)")
    ap.add_argument("--variant", default=None, help="write this variant (its printed name) instead of the plain detector's best")
    ap.add_argument("--out", type=Path, default=None, help="write the checkpoint of the best variant here (and fill its tune cache)")
    ap.add_argument("--name", default="")
    args = ap.parse_args()
    model = load_model(checkpoint=args.checkpoint)
    check_identity(model)
    mu, lam, U, n = training_statistics(model, args.stats, args.stats_queries)
    if args.stats in args.sets:
        raise SystemExit(f"{args.stats}: the statistics' set cannot also judge them")
    print(f"training statistics from {n} descriptors; |mean| {np.linalg.norm(mu):.3f}, top eigenvalues {np.round(lam[:3], 4).tolist()}, median {np.median(lam):.2e}", flush=True)
    sets = [load_set(model, ROOT / "benchmarks" / s) for s in args.sets]
    variants = [("identity", 0.0, False)] + [(f"centred, p {p:g}", p, True) for p in args.powers] + [(f"uncentred, p {p:g}", p, False) for p in args.powers if p > 0]
    rows = []
    for name, p, center in variants:
        A, c = whitening(mu, lam, U, p, center)
        row = {"variant": name, "p": p, "centred": center, **plain_detector([mapped_set(s, A, c) for s in sets], np.eye(len(mu), dtype=np.float32))}
        rows.append(row)
        print(f"{name:24s} plain detector {row['detected']:.4f} (cut {row['cut']:.3f}, {row['copies']} copies, {row['negatives']} negatives)", flush=True)
    best = max(rows, key=lambda r: (r["detected"], -r["p"]))  # ties: the smaller change
    if args.variant is not None:
        best = next((r for r in rows if r["variant"] == args.variant), None) or ap.error(f"--variant: one of {[r['variant'] for r in rows]}")
    out = {"checkpoint": args.checkpoint, "model_id": model.model_id, "statistics": {"descriptors": n, "source": args.stats, "queries": args.stats_queries},
           "sets": args.sets, "rows": rows, "best": best["variant"]}
    if args.out is not None:
        A, c = whitening(mu, lam, U, best["p"], best["centred"])
        new = replace_heads(model, heads_with(model, A, c))  # untuned: tune_thresholds.py --write-config gives it thresholds
        save_onnx_checkpoint(new, args.out)
        (args.out / "training.json").write_text(json.dumps({"made_by": "benchmarks/whitening_study.py", "variant": best["variant"], "p": best["p"],
                                                            "centred": best["centred"], "from": args.checkpoint, "from_model_id": model.model_id,
                                                            "statistics_from": out["statistics"]}, indent=1) + "\n")
        def whiten(e: np.ndarray) -> np.ndarray:  # the base's embedding is the unit descriptor itself
            y = (e.astype(np.float64) - c) @ A.T
            return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)

        for s in args.sets:
            fill_mapped_cache(model, new, ROOT / "benchmarks" / s, whiten)
        err = check_filled_cache(args.out, ROOT / "benchmarks" / args.sets[0])
        print(f"wrote {args.out} (model {new.model_id}, {best['variant']}); its tune cache filled from {model.model_id} (checked: {err:.1g})")
        out["written"] = {"path": str(args.out), "model_id": new.model_id}
    save("whitening_study" + (f"-{args.name}" if args.name else ""), out)


if __name__ == "__main__":
    main()
