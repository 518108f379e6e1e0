"""Evidence on the validation split: does training make copies near and others far, for the
float embeddings and for the 128-bit codes, and do the two rankings agree?

The evaluation set: up to ``max_samples`` validation originals (a fixed choice, the same for
every model) and ``copies`` edited copies of each (fixed seeds). Images are shown to the model
exactly as at inference (``FingerprintModel.embed_frames``: short side to the model's resize
size, centre crop). For each original q:

- positives: its copies; junk (ignored): q itself and every item of q's group (other frames of
  the same shot, other files of the same photo family, and their copies); the rest negatives.
- ``map``: mean average precision of ranking everything else by distance (L2 for embeddings,
  Hamming for codes; Hamming ties broken by a fixed random order).
- ``triplet_acc``: over (q, copy of q, other original n): P(d(q, copy) < d(q, n)), ties 1/2.
- ``top1``: for each copy, is its own original the nearest of all originals (other groups and
  its own)? Ties count 1/(number tied).
- ``spearman``: per original, Spearman rank correlation of the Hamming and embedding distances
  to all non-junk items; the mean over originals.
- distance statistics: positive (original-copy) and negative (original-original of other
  groups) distances, and the fraction within the search thresholds (Hamming 16 = "equal code",
  32 = default recall radius; L2 0.8 = mode-1 decision).
"""

from __future__ import annotations

import numpy as np
import torch

from ..model import FingerprintModel
from .augment import random_edit, view
from .data import SampleSet

EVAL_SEED = 20240917  # independent of the training seed: every model sees the same set


def build_eval_set(val: SampleSet, max_samples: int, copies: int, resize: int) -> dict[str, np.ndarray]:
    """Originals and edited copies as (N, resize, resize, 3) uint8 squares, with labels."""
    rng = np.random.default_rng(EVAL_SEED)
    n = len(val)
    chosen = np.sort(rng.choice(n, size=min(max_samples, n), replace=False))
    gids_all = val.group_ids()
    images, sample, is_copy, gids = [], [], [], []
    for j, i in enumerate(chosen):
        img = val.image(int(i))
        images.append(view(img, resize, resize))
        sample.append(j), is_copy.append(False), gids.append(gids_all[i])
        for c in range(copies):
            r = np.random.default_rng([EVAL_SEED, int(i), c])
            other = val.image(int(r.integers(n))) if r.random() < 0.5 else None
            images.append(view(random_edit(img, r, other=other), resize, resize))
            sample.append(j), is_copy.append(True), gids.append(gids_all[i])
    return {"images": np.stack(images), "sample": np.asarray(sample), "is_copy": np.asarray(is_copy),
            "gid": np.asarray(gids)}


def embed(model: FingerprintModel, images: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings float32 (N, D), code bits uint8 (N, bits))."""
    was_training = model.training
    model.eval()
    emb, codes = model.embed_frames(images, batch_size=batch)
    model.train(was_training)
    return emb, np.unpackbits(codes, axis=1, bitorder="big")


def _rank_avg(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 along the last axis, ties given their average rank."""
    order = np.argsort(x, kind="stable")
    xs = np.take_along_axis(x, order, -1)
    ranks = np.empty(len(x), np.float64)
    n = len(x)
    i = 0
    out = np.empty(n, np.float64)
    while i < n:
        j = i
        while j + 1 < n and xs[j + 1] == xs[i]:
            j += 1
        out[i : j + 1] = (i + j) / 2.0
        i = j + 1
    ranks[order] = out
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _rank_avg(np.asarray(a, np.float64)), _rank_avg(np.asarray(b, np.float64))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else 0.0


def average_precision(dist: np.ndarray, positive: np.ndarray) -> float:
    """AP of ranking by ascending ``dist`` (already tie-broken) with ``positive`` labels."""
    order = np.argsort(dist, kind="stable")
    pos = positive[order]
    if not pos.any():
        return float("nan")
    hits = np.cumsum(pos)
    ranks = np.nonzero(pos)[0] + 1
    return float((hits[pos] / ranks).mean())


def retrieval_metrics(emb: np.ndarray, bits: np.ndarray, sample: np.ndarray, is_copy: np.ndarray, gid: np.ndarray) -> dict:
    d_emb = _cdist(emb)
    b = bits.astype(np.int32)
    d_ham = (b @ (1 - b).T + (1 - b) @ b.T).astype(np.float64)
    tie = np.random.default_rng(EVAL_SEED).random(len(emb)) * 1e-3  # fixed tie-break order for Hamming
    origs = np.nonzero(~is_copy)[0]
    out: dict[str, dict] = {}
    for name, d, jitter in (("embedding", d_emb, 0.0), ("codes", d_ham, 1.0)):
        aps, trip, top1 = [], [], []
        for q in origs:
            pos = (sample == sample[q]) & is_copy
            junk = (gid == gid[q]) & ~pos
            keep = ~junk
            aps.append(average_precision(d[q, keep] + jitter * tie[keep], pos[keep]))
            negs = origs[gid[origs] != gid[q]]
            dp, dn = d[q, pos][:, None], d[q, negs][None, :]
            trip.append(((dp < dn).mean() + 0.5 * (dp == dn).mean()) if negs.size else np.nan)
        for c in np.nonzero(is_copy)[0]:
            own = origs[sample[origs] == sample[c]][0]
            others = origs[gid[origs] != gid[c]]
            dc = d[c, own]
            closer = int((d[c, others] < dc).sum())
            ties = int((d[c, others] == dc).sum())
            top1.append(0.0 if closer else 1.0 / (1 + ties))
        same = sample[:, None] == sample[None, :]
        pos_pairs = d[np.ix_(origs, np.arange(len(d)))][(same[origs] & is_copy[None, :])]
        neg_mask = (gid[origs][:, None] != gid[origs][None, :])
        neg_pairs = d[np.ix_(origs, origs)][neg_mask]
        res = {"map": float(np.nanmean(aps)), "triplet_acc": float(np.nanmean(trip)), "top1": float(np.mean(top1)),
               "pos_mean": float(pos_pairs.mean()), "neg_mean": float(neg_pairs.mean()),
               "neg_p01": float(np.quantile(neg_pairs, 0.01))}
        if name == "codes":
            res.update({"pos_le16": float((pos_pairs <= 16).mean()), "pos_le32": float((pos_pairs <= 32).mean()),
                        "neg_le16": float((neg_pairs <= 16).mean()), "neg_le32": float((neg_pairs <= 32).mean()),
                        "bit_balance": float(np.abs(bits.mean(0) - 0.5).mean())})
        else:
            res.update({"pos_lt08": float((pos_pairs < 0.8).mean()), "neg_lt08": float((neg_pairs < 0.8).mean())})
        out[name] = res
    rhos = []
    for q in origs:
        keep = (gid != gid[q]) | ((sample == sample[q]) & is_copy)
        rhos.append(spearman(d_ham[q, keep], d_emb[q, keep]))
    return {"embedding": out["embedding"], "codes": out["codes"], "spearman_hamming_vs_embedding": float(np.mean(rhos)),
            "originals": int(len(origs)), "copies": int(is_copy.sum())}


def _cdist(x: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(x.astype(np.float32))
    return torch.cdist(t, t).numpy().astype(np.float64)


def evaluate_model(model: FingerprintModel, eval_set: dict[str, np.ndarray], batch: int = 64) -> dict:
    emb, bits = embed(model, eval_set["images"], batch)
    return retrieval_metrics(emb, bits, eval_set["sample"], eval_set["is_copy"], eval_set["gid"])


def evaluate_checkpoint(checkpoint: str | None, val: SampleSet, max_samples: int = 160, copies: int = 3,
                        device: str = "cpu", backbone: str | None = None, weights: str | None = None) -> dict:
    """Load a checkpoint (None: the untrained heads of ``backbone``) and evaluate it."""
    from ..model import load_model

    if checkpoint is None:
        model = load_model(backbone=backbone or "tf_efficientnet_lite0", weights=weights, device=device)
    else:
        model = load_model(checkpoint=checkpoint, weights=weights, device=device, runtime="torch")
    es = build_eval_set(val, max_samples, copies, model.config.resize_size)
    res = evaluate_model(model, es)
    res["model_id"] = model.model_id
    return res
