"""Does a texture head trained on hard copies of training footage help the default search?

    .venv/bin/python benchmarks/make_dataset.py --hard --split train --seed 5 --positives 200 --negatives 0 \\
        --out benchmarks/data_hard_trainpos
    .venv/bin/python benchmarks/texture_head_study.py --out runs/sscd_distilled_texture    # prints, writes the checkpoint
    .venv/bin/python benchmarks/tune_thresholds.py --data benchmarks/data_hard_tune benchmarks/data_hard_tune2 \\
        benchmarks/data_hard_tune3 benchmarks/data_hard_trainneg --checkpoint runs/sscd_distilled_texture \\
        --min-score 0.45 --frame-match-l2 1.2 --radius 40 --name hard-texture-head \\
        --dump-candidates benchmarks/out/candidates_texture.npz
    .venv/bin/python benchmarks/calib_crossfit.py benchmarks/out/candidates_texture.npz --l2 1 --max-fpr 0.02 --name texture-head

The default model keeps its texture head at the identity (the embedding is the SSCD student's
descriptor). Here a linear map ``W`` (512 x 512, started at the identity) is put in front of it,
``e' = normalize(W e)``, and trained on the copies of a training-split hard set (``--train``,
positives only: training footage, never tuning or test media): each copied query frame (in the
view, whole frame or detected inset, nearest the true reference) against its nearest frame of
the true reference, with

    L = mean softplus(20 (t - s_pos)) + mean softplus(20 (s_neg - t)) + mean relu(0.1 + s_neg - s_pos)
        + lambda ||W - I||^2

where ``s_neg`` is the frame's similarity to the nearest frame of any OTHER reference of the set
(sibling strips, neighbouring windows) and ``t`` a learned cut: copies above one similarity,
look-alikes below it, across queries. The descriptors come from tune_thresholds.py's cache
(``cached_set``: the default search's views; filled when missing). Test sets are refused.

Printed: a plain detector on the tuning sets (``--eval``) before and after: per copied segment
the best similarity of its frames (any view) to the true reference, per negative query its best
similarity to any reference, and the share of copies above the cut that flags 2 % of the
negatives. ``--out DIR`` writes the default checkpoint with ``W`` folded into its texture head
(the quantization head, and so the codes, are unchanged) and fills the new model's cache from
the old one (embeddings mapped through ``W``; a fresh fingerprint of one reference is checked
against it), so that tune_thresholds.py / calib_crossfit.py then measure it in the real
pipeline without fingerprinting again. Full-batch steps from the identity draw no random
numbers (``--seed`` seeds torch all the same), so a rerun gives the same ``W``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from _common import ROOT, save
from tune_thresholds import cached_set, check_filled_cache, fill_mapped_cache
from vidret_milvus.descriptor import VideoDescriptor
from vidret_milvus.model import load_model
from vidret_milvus.model.checkpoint import save_onnx_checkpoint
from vidret_milvus.model.onnx_model import replace_heads

# The 288 px student: the default when this study ran (its caches and results are keyed to it).
DEFAULT = "vidret_milvus/models/sscd_distilled"


def load_set(model, data: Path) -> tuple[dict, dict[str, np.ndarray], dict[str, list[VideoDescriptor]]]:
    """Ground truth, reference embeddings by name, each query's views (whole frame first;
    tune_thresholds.cached_set, filled when missing). Never the test split."""
    gt, refs, views = cached_set(model, data, refuse_test=True)
    return gt, {n: d.embeddings for n, d in refs.items()}, {q: [d for _, d in vs] for q, vs in views.items()}


def mapped(x: np.ndarray, W: np.ndarray) -> np.ndarray:
    y = x @ W.T
    return (y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def plain_detector(sets: list[tuple], W: np.ndarray, max_fpr: float = 0.02) -> dict[str, float]:
    """Share of copied segments whose best frame similarity to the true reference beats the cut
    that flags ``max_fpr`` of the negative queries (by their best similarity to any reference)."""
    pos, neg = [], []
    for gt, refs, queries in sets:
        names = list(refs)
        E = mapped(np.concatenate([refs[n] for n in names]), W)
        owner = np.concatenate([np.full(len(refs[n]), i) for i, n in enumerate(names)])
        for q in gt["queries"]:
            views = [mapped(v.embeddings, W) for v in queries[q["name"]]]
            if not q["positive"]:
                neg.append(max(float((v @ E.T).max()) for v in views))
                continue
            ts = queries[q["name"]][0].timestamps
            for m in q["matches"]:
                sel = (ts >= m["query_start"]) & (ts < m["query_end"])
                cols = owner == names.index(m["ref"])
                pos.append(max(float((v[sel] @ E[cols].T).max()) for v in views) if sel.any() else -1.0)
    cut = float(np.quantile(neg, 1 - max_fpr))
    return {"detected": round(float(np.mean(np.array(pos) > cut)), 4), "cut": round(cut, 4), "copies": len(pos), "negatives": len(neg)}


def training_pairs(gt: dict, refs: dict[str, np.ndarray], queries: dict[str, list[VideoDescriptor]]) -> tuple[np.ndarray, ...]:
    """(query frame, true reference frame, mask of other references' frames) per copied frame, and all reference frames."""
    names = list(refs)
    E = np.concatenate([refs[n] for n in names])
    owner = np.concatenate([np.full(len(refs[n]), i) for i, n in enumerate(names)])
    A, P, other = [], [], []
    for q in gt["queries"]:
        views = queries[q["name"]]
        for m in q["matches"]:
            sel = (views[0].timestamps >= m["query_start"]) & (views[0].timestamps < m["query_end"])
            cols = np.flatnonzero(owner == names.index(m["ref"]))
            for fi in np.flatnonzero(sel):
                v = max((v.embeddings[fi] for v in views), key=lambda e: float((E[cols] @ e).max()))
                A.append(v)
                P.append(E[cols[int(np.argmax(E[cols] @ v))]])
                other.append(owner != names.index(m["ref"]))
    return np.array(A), np.array(P), np.array(other), E


def train(A: np.ndarray, P: np.ndarray, other: np.ndarray, E: np.ndarray, lam: float, steps: int, lr: float, seed: int) -> np.ndarray:
    import torch  # training only; the search never needs it

    torch.manual_seed(seed)
    a0, p0, o, e0 = (torch.tensor(x) for x in (A, P, other, E))
    W = torch.nn.Parameter(torch.eye(A.shape[1]))
    t = torch.nn.Parameter(torch.tensor(0.75))
    opt = torch.optim.Adam([W, t], lr=lr)
    eye = torch.eye(A.shape[1])
    for _ in range(steps):
        a, p, e = (torch.nn.functional.normalize(x @ W.T, dim=1) for x in (a0, p0, e0))
        s_pos = (a * p).sum(1)
        s_neg = torch.where(o, a @ e.T, torch.tensor(-2.0)).max(1).values
        sp = torch.nn.functional.softplus
        loss = sp(20 * (t - s_pos)).mean() + sp(20 * (s_neg - t)).mean() + torch.relu(0.1 + s_neg - s_pos).mean() + lam * ((W - eye) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return W.detach().numpy().astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=Path, default=ROOT / "benchmarks" / "data_hard_trainpos", help="a training-split hard set of copies")
    ap.add_argument("--eval", type=Path, nargs="+", default=[ROOT / "benchmarks" / d for d in ("data_hard_tune", "data_hard_tune2", "data_hard_tune3")])
    ap.add_argument("--lambda", dest="lam", type=float, nargs="+", default=[0.5, 1.0], help="pull of W towards the identity")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the checkpoint of the first --lambda here (and fill its cache)")
    ap.add_argument("--fill", type=Path, nargs="*", default=[ROOT / "benchmarks" / "data_hard_trainneg"],
                    help="sets whose cache --out also fills, beside the --eval sets (the tuning run's fourth set)")
    ap.add_argument("--name", default="")
    args = ap.parse_args()
    base = load_model(checkpoint=DEFAULT)
    gt, refs, queries = load_set(base, args.train)
    if gt.get("split") != "train" or any(not q["positive"] for q in gt["queries"]):
        raise SystemExit(f"{args.train}: need a training-split set of copies (make_dataset.py --hard --split train --negatives 0)")
    evals = [load_set(base, d) for d in args.eval]
    A, P, other, E = training_pairs(gt, refs, queries)
    eye = np.eye(A.shape[1], dtype=np.float32)
    before = plain_detector(evals, eye)
    print(f"{len(A)} copied frames of {args.train.name}; plain detector on {', '.join(d.name for d in args.eval)}: identity {before['detected']:.3f} "
          f"(cut {before['cut']:.3f}, {before['copies']} copies, {before['negatives']} negatives)", flush=True)
    rows, first = [], None
    for lam in args.lam:
        W = train(A, P, other, E, lam, args.steps, args.lr, args.seed)
        after = plain_detector(evals, W)
        rows.append({"lambda": lam, "distance_from_identity": round(float(np.linalg.norm(W - eye)), 3), **after})
        print(f"lambda {lam:g}: |W - I| {rows[-1]['distance_from_identity']:.2f}, plain detector {after['detected']:.3f} (cut {after['cut']:.3f})", flush=True)
        first = W if first is None else first
    out = {"train": args.train.name, "eval": [d.name for d in args.eval], "steps": args.steps, "lr": args.lr, "seed": args.seed,
           "identity": before, "trained": rows}
    if args.out is not None and first is not None:
        h = {k: v.copy() for k, v in base.heads.items()}
        # e' = normalize(W normalize(T f + b)) = normalize(W T f + W b): W folds into the head.
        h["texture_head.proj.weight"] = (first @ h["texture_head.proj.weight"]).astype(np.float32)
        h["texture_head.proj.bias"] = (first @ h["texture_head.proj.bias"]).astype(np.float32)
        model = replace_heads(base, h)
        save_onnx_checkpoint(model, args.out)
        for d in {*args.eval, *args.fill}:
            cached_set(base, d, refuse_test=True)  # the default's descriptors, fingerprinted if missing
            fill_mapped_cache(base, model, d, lambda e: mapped(e, first))
        err = check_filled_cache(args.out, args.eval[0])
        print(f"wrote {args.out} (model {model.model_id}, lambda {args.lam[0]:g}); its cache filled from {base.model_id} (checked: {err:.1g})")
        out["checkpoint"] = {"path": str(args.out), "model_id": model.model_id, "lambda": args.lam[0]}
    save("texture_head_study" + (f"-{args.name}" if args.name else ""), out)


if __name__ == "__main__":
    main()
