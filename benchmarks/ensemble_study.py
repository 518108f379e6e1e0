"""Does SSCD (ResNet-50) beside the default's student improve the re-rank on the hard tuning sets?

    .venv/bin/python benchmarks/ensemble_study.py --out runs/sscd_ensemble      # prints, writes the checkpoint
    .venv/bin/python benchmarks/tune_thresholds.py --data benchmarks/data_hard_tune benchmarks/data_hard_tune2 \\
        benchmarks/data_hard_tune3 benchmarks/data_hard_trainneg --checkpoint runs/sscd_ensemble \\
        --min-score 0.45 --frame-match-l2 1.2 --radius 40 --name hard-ensemble \\
        --dump-candidates benchmarks/out/candidates_ensemble.npz
    .venv/bin/python benchmarks/calib_crossfit.py benchmarks/out/candidates_ensemble.npz --l2 1 --max-fpr 0.02 --name ensemble

The default model's embedding is the SSCD student's descriptor (its texture head is the
identity) and its codes come from its trained quantization head. The ``sscd_ensemble``
backbone runs each frame through both graphs (SSCD ``sscd_disc_mixup`` and the student) and
concatenates the two unit descriptors (model/onnx_model.py). Its checkpoint written here keeps
the default's codes (the quantization head reads the student's half only, with the default's
weights: equal up to float rounding, a bit in millions may flip) and weights the halves in the
texture head,

    e = [sqrt(alpha) x_sscd, sqrt(1 - alpha) x_student]        (unit length)
    e . e' = alpha cos_sscd + (1 - alpha) cos_student           (score fusion)

so the Hamming recall is the default's and only the L2 re-rank, alignment and decision see
the fused similarity. ``alpha`` is chosen here on the tuning sets (``--eval``) by a plain
detector (texture_head_study.plain_detector: per copied segment the best similarity of its
frames, in any view, to the true reference; per negative query its best similarity to any
reference; the share of copies above the cut that flags 2 % of the negatives), then measured in
the real pipeline by tune_thresholds.py. ``--backbone sscd_ensemble_224`` does the same for
the variant that feeds SSCD a 224 px shorter side (its SSCD half is read from the untrained
``sscd_ensemble_224`` model's cache, whose embedding is the concatenation itself). Descriptors
come from tune_thresholds.py's cache
(``cached_set``, filled when missing: SSCD costs about 4 min per tuning set on 2 cores). Test
sets are refused. ``--out`` fills the new model's cache from the two (a fresh fingerprint of
one reference is checked against it), so the pipeline runs without fingerprinting again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np

from _common import ROOT, save
from texture_head_study import plain_detector
from tune_thresholds import cache_dir, cached_set, check_filled_cache
from vidret_milvus.descriptor import VideoDescriptor
from vidret_milvus.model import ModelConfig, load_model
from vidret_milvus.model.checkpoint import save_onnx_checkpoint
from vidret_milvus.model.onnx_model import DESCRIPTOR_DIM, OnnxFingerprintModel, descriptor_dim, load_onnx_model

# The 288 px student: the default when this study ran (its caches and results are keyed to it).
DEFAULT = "vidret_milvus/models/sscd_distilled"


def sscd_part(source: OnnxFingerprintModel, e: np.ndarray) -> np.ndarray:
    """SSCD's unit descriptor from ``source``'s cached embeddings: SSCD alone (untrained: the
    descriptor itself), or an untrained ensemble (the concatenation over sqrt(2): its first half)."""
    if source.config.num_features == DESCRIPTOR_DIM:
        return e
    return (e[:, :DESCRIPTOR_DIM] * np.sqrt(2.0)).astype(np.float32)


def fused(x_sscd: np.ndarray, x_student: np.ndarray, alpha: float) -> np.ndarray:
    """The ensemble checkpoint's embedding from the two unit descriptors."""
    return np.concatenate([np.sqrt(alpha) * x_sscd, np.sqrt(1.0 - alpha) * x_student], axis=1).astype(np.float32)


def ensemble_heads(student: OnnxFingerprintModel, alpha: float) -> dict[str, np.ndarray]:
    """Heads on the 1024-d ensemble descriptor d = [x_sscd, x_student] / sqrt(2) that give
    :func:`fused` as the embedding and ``student``'s codes."""
    h = student.heads
    f = h["feature_norm.mean"].shape[0]
    # The algebra below needs the student's texture head to map its standardised features back
    # to its descriptor (the default's: weight diag(std), bias mean).
    if not (np.allclose(h["texture_head.proj.weight"], np.diag(h["feature_norm.std"]))
            and np.allclose(h["texture_head.proj.bias"], h["feature_norm.mean"])):
        raise SystemExit("the student's texture head is not the identity on its descriptor")
    r2 = np.float32(np.sqrt(2.0))
    # Standardisation: the SSCD half is only undone from the 1/sqrt(2) (f = x_sscd); the
    # student's half gets the student's own (x_s - m) / s, so its quantization head applies as is.
    mean = np.concatenate([np.zeros(f, np.float32), h["feature_norm.mean"] / r2])
    std = np.concatenate([np.full(f, 1.0 / r2, np.float32), h["feature_norm.std"] / r2])
    # Texture: sqrt(alpha) x_sscd = sqrt(alpha) f_sscd; sqrt(1-alpha) x_s = sqrt(1-alpha) (T_s f_s + b_s)
    # (the student's texture head maps its standardised features back to its descriptor).
    a, b = np.float32(np.sqrt(alpha)), np.float32(np.sqrt(1.0 - alpha))
    wt = np.zeros((2 * f, 2 * f), np.float32)
    wt[:f, :f] = a * np.eye(f, dtype=np.float32)
    wt[f:, f:] = b * h["texture_head.proj.weight"]
    bt = np.concatenate([np.zeros(f, np.float32), b * h["texture_head.proj.bias"]])
    wq = np.concatenate([np.zeros_like(h["quant_head.proj.weight"]), h["quant_head.proj.weight"]], axis=1)
    return {"feature_norm.mean": mean, "feature_norm.std": std, "texture_head.proj.weight": wt,
            "texture_head.proj.bias": bt, "quant_head.proj.weight": wq, "quant_head.proj.bias": h["quant_head.proj.bias"].copy()}


Pair = tuple[dict, tuple[dict, dict], tuple[dict, dict]]  # ground truth, (refs, refs), (views, views)


def paired(student: OnnxFingerprintModel, sscd: OnnxFingerprintModel, data: Path) -> Pair:
    """Both models' cached descriptors of a set (``sscd``'s as :func:`sscd_part`), checked to be
    the same frames and views."""
    gt, r1, q1 = cached_set(student, data, refuse_test=True)
    _, r2, q2 = cached_set(sscd, data, refuse_test=True)
    r2 = {n: dataclasses.replace(d, embeddings=sscd_part(sscd, d.embeddings)) for n, d in r2.items()}
    q2 = {n: [(v, dataclasses.replace(d, embeddings=sscd_part(sscd, d.embeddings))) for v, d in vs] for n, vs in q2.items()}
    for n in r1:
        if not np.array_equal(r1[n].timestamps, r2[n].timestamps):
            raise SystemExit(f"{data}/refs/{n}: the two caches hold other frames")
    for n in q1:
        if [v for v, _ in q1[n]] != [v for v, _ in q2[n]] or any(
                not np.array_equal(a.timestamps, b.timestamps) for (_, a), (_, b) in zip(q1[n], q2[n])):
            raise SystemExit(f"{data}/queries/{n}: the two caches hold other views or frames")
    return gt, (r1, r2), (q1, q2)


def fused_set(pair: Pair, alpha: float) -> tuple[dict, dict[str, np.ndarray], dict[str, list[VideoDescriptor]]]:
    gt, (r1, r2), (q1, q2) = pair
    refs = {n: fused(r2[n].embeddings, r1[n].embeddings, alpha) for n in r1}
    queries = {n: [dataclasses.replace(a, embeddings=fused(b.embeddings, a.embeddings, alpha)) for (_, a), (_, b) in zip(q1[n], q2[n])]
               for n in q1}
    return gt, refs, queries


def fill_cache(student: OnnxFingerprintModel, sscd: OnnxFingerprintModel, model: OnnxFingerprintModel, data: Path, alpha: float) -> None:
    """The ensemble's cache of ``data`` from the two models' caches: every descriptor file of the
    student's with its SSCD twin, checked to hold the same frames before anything is written."""
    src1, src2 = cache_dir(student, data), cache_dir(sscd, data)
    files = [f for f in sorted(src1.rglob("*")) if not f.is_dir()]
    pairs: dict[Path, tuple[VideoDescriptor, VideoDescriptor]] = {}
    for f in files:
        if f.suffix == ".npz":
            rel = f.relative_to(src1)
            if not (src2 / rel).is_file():
                raise SystemExit(f"{src2 / rel}: missing (SSCD's cache lacks a file of the student's)")
            a, b = VideoDescriptor.load(f), VideoDescriptor.load(src2 / rel)
            if not np.array_equal(a.timestamps, b.timestamps):
                raise SystemExit(f"{src1 / rel} and {src2 / rel}: other frames")
            pairs[f] = (a, b)
    for f in files:
        dst = cache_dir(model, data) / f.relative_to(src1)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if f in pairs:
            a, b = pairs[f]
            dataclasses.replace(a, embeddings=fused(sscd_part(sscd, b.embeddings), a.embeddings, alpha), model_id=model.model_id).save(dst)
        else:
            shutil.copy2(f, dst)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval", type=Path, nargs="+", default=[ROOT / "benchmarks" / d for d in ("data_hard_tune", "data_hard_tune2", "data_hard_tune3")])
    ap.add_argument("--alpha", type=float, nargs="+", default=[0.0, 0.25, 0.4, 0.5, 0.6, 0.75, 1.0], help="SSCD's weight in the fused similarity")
    ap.add_argument("--out", type=Path, default=None, help="write the checkpoint at the best --alpha here (and fill its cache)")
    ap.add_argument("--fill", type=Path, nargs="*", default=[ROOT / "benchmarks" / "data_hard_trainneg"],
                    help="sets whose cache --out also fills, beside the --eval sets (the tuning run's fourth set)")
    ap.add_argument("--backbone", default="sscd_ensemble", choices=["sscd_ensemble", "sscd_ensemble_224"])
    ap.add_argument("--name", default="")
    args = ap.parse_args()
    student = load_model(checkpoint=DEFAULT)
    # SSCD as the ensemble sees it: alone at 288 px, or inside the untrained 224 px ensemble.
    sscd = load_model(backbone="sscd" if args.backbone == "sscd_ensemble" else args.backbone)
    pairs = [paired(student, sscd, d) for d in args.eval]
    eye = np.eye(descriptor_dim(args.backbone), dtype=np.float32)
    rows = []
    for alpha in args.alpha:
        row = {"alpha": alpha, **plain_detector([fused_set(p, alpha) for p in pairs], eye)}
        rows.append(row)
        print(f"alpha {alpha:.2f}: plain detector {row['detected']:.3f} (cut {row['cut']:.3f}, {row['copies']} copies, {row['negatives']} negatives)", flush=True)
    best = max(rows, key=lambda r: (r["detected"], -abs(r["alpha"] - 0.5)))
    out = {"backbone": args.backbone, "eval": [d.name for d in args.eval], "rows": rows, "best_alpha": best["alpha"]}
    if args.out is not None:
        alpha = best["alpha"]
        config = dataclasses.replace(ModelConfig.for_backbone(args.backbone), embed_dim=descriptor_dim(args.backbone), code_bits=student.config.code_bits, trained=True)
        model = load_onnx_model(config, ensemble_heads(student, alpha))
        save_onnx_checkpoint(model, args.out)
        (args.out / "training.json").write_text(json.dumps({"made_by": "benchmarks/ensemble_study.py", "alpha": alpha,
                                                            "codes_from": DEFAULT, "student_model_id": student.model_id}, indent=1) + "\n")
        for d in {*args.eval, *args.fill}:
            paired(student, sscd, d)  # both caches, fingerprinted if missing, checked to agree
            fill_cache(student, sscd, model, d, alpha)
        err = check_filled_cache(args.out, args.eval[0])
        print(f"wrote {args.out} (model {model.model_id}, alpha {alpha:g}); its cache filled from {student.model_id} + {sscd.model_id} (checked: {err:.1g})")
        out["checkpoint"] = {"path": str(args.out), "model_id": model.model_id, "alpha": alpha}
    save("ensemble_study" + (f"-{args.name}" if args.name else ""), out)


if __name__ == "__main__":
    main()
