"""How the code head's start (quant_init: simhash | itq) and length (bits) move the code stage's trade-off.

    .venv/bin/python benchmarks/code_heads.py [--data benchmarks/data_hard_tune] [--seeds 0 1 2]
        [--inits simhash itq] [--bits 128 256] [--backbone sscd --bits]   (the latter: its ceiling only)
        [--set max_margin=64 ...]   (the recipe's FrozenConfig values, as train-heads --set)
        [--siblings]   (also train on look-alikes: pixel-disjoint halves of the training photos and video frames)
    .venv/bin/python benchmarks/code_heads.py --checkpoint DIR [--data ...]   (a shipped model: its ceiling and its own codes)

Trains the heads of the shipped default's recipe (train-heads --backbone sscd_distilled --set
steps1=0 --set lr=0 --set quant_lr=0.001; training images only, train_cache/) once per start
and seed, on the descriptors cached by train-heads (runs/frozen_cache). The texture head stays
the identity, so every variant shares the embeddings; only the codes differ. On the TUNING
split's cached descriptors (tune_thresholds.py fills benchmarks/out/tune_cache) it sweeps the
radius and prints, at equal shares of reference frames passed to the re-rank (frames of the
videos with any frame within the radius, interpolated over radii 20-60), the share of copied
frames whose L2-nearest reference frame lies within the radius and the share of true
references among the recalled videos. Radii scale with the code length (20-60 at 128 bits).
Beside the codes it prints the CEILING of any code: the same curves with the exact float L2
distance in place of the Hamming distance (a video passes when any of its frames is within an
L2 radius of a query frame), which no code approximating this descriptor's distance can beat (a
code head trained on copy labels measures its own distance and is not strictly bounded by it). ``--backbone sscd``
measures another descriptor (untrained heads: the embedding is its descriptor), fingerprinting
the tuning set into its own tune cache first; ``--checkpoint DIR`` measures a trained model as it
ships (its embedding, e.g. a whitened texture head, and its own codes, read from its tune cache;
no heads are trained).
Each curve is also given for the finest pass rule, ``frame pass``: only the reference frames
within the radius of some query frame reach the re-rank (not their whole videos); its share is
of those frames. Whether a copied frame's neighbour lies within the radius (the goal's measure)
does not depend on the rule, and at each radius the frame pass sends no more frames, so at an
equal share it has at least as many neighbours within the radius. (Under the video pass a
neighbour outside the radius can still reach the re-rank with its video; that is not counted.)
The goal (>= 99 % of the copied frames' neighbours within the radius while <= 5 % of the
reference frames reach the re-rank) is out of reach of codes that approximate a descriptor's
distance, searched with one fixed radius, when its float frame-pass ceiling is below 99 % at 5 %.
Writes benchmarks/results/code_heads.json (or --name; with --checkpoint
code_heads-CHECKPOINT-SET.json).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from _common import POPCOUNT, ROOT, copied_frames_nearest, save
from vidret_milvus.descriptor import VideoDescriptor
from vidret_milvus.model import load_model
from vidret_milvus.model.onnx_model import replace_heads
from vidret_milvus.train.data import SampleSet
from vidret_milvus.train.frozen import QUANT_INITS, config_from_overrides, descriptor_cache, train_heads

SHARES = (0.05, 0.1, 0.2, 0.3)
L2_RADII = tuple(np.round(np.arange(0.5, 1.41, 0.01), 2))


def sibling_halves(samples: SampleSet) -> SampleSet:
    """Look-alike training images, as the hard set's look-alike references are made: every
    photo and video frame of the training split (not the film's frames) cut into two
    pixel-disjoint halves across its longer side, each half its own group, so that in-batch
    mining can take a half's sibling as a negative."""
    images, groups = [], []
    for i in range(len(samples)):
        if samples.sources[i] == "bbb":
            continue
        a = samples.image(i)
        h, w = a.shape[:2]
        halves = (a[:, : w // 2], a[:, w // 2 :]) if w >= h else (a[: h // 2], a[h // 2 :])
        for k, half in enumerate(halves):
            images.append(np.ascontiguousarray(half))
            groups.append(f"{samples.groups[i]}/half{k}")
    return SampleSet.from_arrays(images, groups)


def radii(bits: int) -> tuple[int, ...]:
    return tuple(range(20 * bits // 128, 60 * bits // 128 + 1))


def passed_shares(dist: np.ndarray, owner: np.ndarray, radii_: tuple[float, ...] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For one query, per radius: the share of the reference frames that reach the re-rank when
    a video passes whole as soon as any of its frames is within the radius of a query frame
    (video pass), and when only the frames within the radius pass (frame pass). ``dist`` (query
    frames, reference frames), ``owner`` each reference frame's video index."""
    per_frame = dist.min(axis=0)  # each reference frame's distance to the nearest query frame
    r = np.asarray(radii_, np.float64)[:, None]
    within = per_frame[None, :] <= r  # (radii, reference frames)
    videos = np.unique(owner)
    video_hit = np.stack([within[:, owner == v].any(axis=1) for v in videos], axis=1)  # (radii, videos)
    frames = np.array([np.sum(owner == v) for v in videos])
    return (video_hit * frames).sum(axis=1) / len(owner), within.mean(axis=1)


def curves(model, gt: dict, refs: dict[str, VideoDescriptor], queries: dict[str, VideoDescriptor], float_l2: bool = False,
           cached_codes: bool = False) -> dict[str, list[float]]:
    """At each share in SHARES: copied frames' L2-NN within the radius, and true references
    recalled (a video passes with any frame within the radius), then copied frames' L2-NN
    within the radius under the frame pass (only frames within the radius pass; the share is of
    frames); ``float_l2``: with the exact L2 distance in place of the codes' Hamming distance.
    The codes are ``model``'s from the embeddings (an identity texture head: embedding =
    descriptor), or with ``cached_codes`` the descriptors' own (a checkpoint as it ships)."""
    names = [r["name"] for r in gt["references"]]
    emb = np.concatenate([refs[n].embeddings for n in names])
    owner = np.concatenate([np.full(refs[n].num_frames, i) for i, n in enumerate(names)])
    if float_l2:
        radii_: tuple[float, ...] = L2_RADII
    else:
        codes = np.concatenate([refs[n].codes for n in names]) if cached_codes else model.heads_from_descriptors(emb)[1]
        radii_ = radii(codes.shape[1] * 8)
    nn_ham, ref_ham, shares, frame_shares = [], [], [], []
    for q in gt["queries"]:
        qd = queries[q["name"]]
        if float_l2:
            ham = np.sqrt(np.maximum(2.0 - 2.0 * qd.embeddings @ emb.T, 0.0))
        else:
            qcodes = qd.codes if cached_codes else model.heads_from_descriptors(qd.embeddings)[1]
            ham = POPCOUNT[qcodes[:, None, :] ^ codes[None]].sum(2)
        per_video = np.array([ham[:, owner == i].min() for i in range(len(names))])
        video_share, frame_share = passed_shares(ham, owner, radii_)
        shares.append(video_share)
        frame_shares.append(frame_share)
        for m in q["matches"]:
            sel, nn, _ = copied_frames_nearest(qd, m, emb)
            if sel.any():
                nn_ham.append(ham[sel][np.arange(len(nn)), nn])
                ref_ham.append(per_video[names.index(m["ref"])])
    h, rh, share, fshare = np.concatenate(nn_ham), np.array(ref_ham), np.mean(shares, axis=0), np.mean(frame_shares, axis=0)
    for what, sh in (("videos", share), ("frames", fshare)):
        if sh[0] > SHARES[0] or sh[-1] < SHARES[-1]:  # np.interp would clamp silently
            print(f"warning: the radii swept pass {sh[0]:.3f}-{sh[-1]:.3f} of the reference frames ({what}), not all of {SHARES}")
    frame_recall = np.array([np.mean(h <= r) for r in radii_])
    ref_recall = np.array([np.mean(rh <= r) for r in radii_])
    return {"frames_nn_within": [round(float(np.interp(s, share, frame_recall)), 4) for s in SHARES],
            "true_refs_recalled": [round(float(np.interp(s, share, ref_recall)), 4) for s in SHARES],
            "frame_pass_nn_within": [round(float(np.interp(s, fshare, frame_recall)), 4) for s in SHARES]}


def checkpoint_curves(checkpoint: Path, data: Path, name: str, threads: int) -> None:
    """The float ceiling of a shipped model's embedding and the curves of its own codes (whole
    frame), both pass rules; descriptors from tune_thresholds' cache (filled when missing)."""
    from tune_thresholds import fingerprints

    from vidret_milvus.fingerprint import Sampling

    model = load_model(checkpoint=checkpoint, threads=threads)
    gt = json.loads((data / "ground_truth.json").read_text())
    if gt.get("split") == "test":
        raise SystemExit(f"{data}: a test set; the code stage is studied on tuning sets only")
    cache = ROOT / "benchmarks" / "out" / "tune_cache" / model.model_id / data.name
    refs = fingerprints(model, data, [r["name"] for r in gt["references"]], "refs", cache, Sampling())
    queries = fingerprints(model, data, [q["name"] for q in gt["queries"]], "queries", cache, Sampling())  # the whole frame
    out = {"ceiling": curves(model, gt, refs, queries, float_l2=True), "codes": curves(model, gt, refs, queries, cached_codes=True)}
    print(f"{checkpoint} ({model.model_id}) on {data.name}, at shares {SHARES} of reference frames passed on:")
    for what, c in out.items():
        print(f"  {what:8s} video pass: L2-NN within {c['frames_nn_within']}  true refs {c['true_refs_recalled']}; "
              f"frame pass: L2-NN within {c['frame_pass_nn_within']}")
    save(name, {"data": data.name, "checkpoint": str(checkpoint), "model_id": model.model_id, "shares": SHARES, **out})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "data_hard_tune")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--inits", nargs="+", choices=QUANT_INITS, default=list(QUANT_INITS))
    ap.add_argument("--bits", type=int, nargs="*", default=[128], help="code lengths (multiples of 8); none: the ceiling only")
    ap.add_argument("--backbone", choices=["sscd_distilled", "sscd"], default="sscd_distilled")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default=None, help="results file (default code_heads, or code_heads-CHECKPOINT-SET with --checkpoint)")
    ap.add_argument("--siblings", action="store_true", help="add sibling halves of the training photos and video frames (look-alike negatives)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="a FrozenConfig value of the recipe (as train-heads --set), e.g. max_margin=64")
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="a trained model folder: its embedding's ceiling and its own codes, from its tune cache "
                         "(no heads trained: not with --seeds, --inits, --bits, --backbone, --siblings or --set)")
    args = ap.parse_args()
    if args.checkpoint is not None:
        training = ("seeds", "inits", "bits", "backbone", "siblings", "overrides")
        given = [k for k in training if getattr(args, k) != ap.get_default(k)]
        if given:
            ap.error(f"--checkpoint measures the model as it ships, no heads are trained: drop {', '.join(given)}")
        checkpoint_curves(args.checkpoint, args.data, args.name or f"code_heads-{args.checkpoint.name}-{args.data.name}", args.threads)
        return
    args.name = args.name or "code_heads"
    import torch

    torch.set_num_threads(args.threads)
    model = load_model(backbone=args.backbone, threads=args.threads)
    # the shipped student's recipe (models/sscd_distilled/training.json), then --set
    recipe = config_from_overrides(args.overrides, steps1=0, lr=0.0, quant_lr=0.001)
    samples = SampleSet.load(ROOT / "train_cache" / "train.npz")
    gt = json.loads((args.data / "ground_truth.json").read_text())
    if args.backbone == "sscd_distilled":  # the 288 px student's cache (its texture head is the identity; 288 px as trained here)
        cache = ROOT / "benchmarks" / "out" / "tune_cache" / load_model(checkpoint=ROOT / "vidret_milvus" / "models" / "sscd_distilled").model_id / args.data.name
        refs = {r["name"]: VideoDescriptor.load(cache / "refs" / f"{r['name']}.npz") for r in gt["references"]}
        queries = {q["name"]: VideoDescriptor.load(cache / "queries" / f"{q['name']}.npz") for q in gt["queries"]}
    else:
        from tune_thresholds import fingerprints

        from vidret_milvus.fingerprint import Sampling

        cache = ROOT / "benchmarks" / "out" / "tune_cache" / model.model_id / args.data.name
        refs = fingerprints(model, args.data, [r["name"] for r in gt["references"]], "refs", cache, Sampling())
        queries = fingerprints(model, args.data, [q["name"] for q in gt["queries"]], "queries", cache, Sampling())
    if args.bits:
        orig, cop = descriptor_cache(model, samples, recipe, ROOT / "runs" / "frozen_cache")  # features of seed 0's edits
        gids = samples.group_ids()
        if args.siblings:
            halves = sibling_halves(samples)
            o2, c2 = descriptor_cache(model, halves, recipe, ROOT / "runs" / "frozen_cache")
            orig, cop = np.concatenate([orig, o2]), np.concatenate([cop, c2])
            gids = np.concatenate([gids, gids.max() + 1 + halves.group_ids()])
            print(f"training on {len(samples)} images and {len(halves)} sibling halves", flush=True)
    rows: dict[str, list[dict]] = {}
    ceiling = curves(model, gt, refs, queries, float_l2=True)
    print("float L2 ceiling", json.dumps(ceiling), flush=True)
    for bits in args.bits:
        config = dataclasses.replace(model.config, code_bits=bits)
        for init in args.inits:
            key = init if bits == 128 else f"{init}-{bits}"
            for seed in args.seeds:
                heads, _ = train_heads(orig, cop, gids, dataclasses.replace(recipe, quant_init=init, seed=seed, bits=bits), log=lambda s: None)
                row = {"seed": seed, **curves(replace_heads(model, heads, config), gt, refs, queries)}
                rows.setdefault(key, []).append(row)
                print(key, json.dumps(row), flush=True)
    keys = ("frames_nn_within", "true_refs_recalled", "frame_pass_nn_within")
    summary = {init: {k: [round(float(np.mean([r[k][i] for r in rs])), 4) for i in range(len(SHARES))] for k in keys}
               | {k + "_spread": [round(float(np.ptp([r[k][i] for r in rs])), 4) for i in range(len(SHARES))] for k in keys}
               for init, rs in rows.items()}
    print(f"at shares {SHARES} of reference frames passed on (mean over seeds {args.seeds}; spread = max - min):")
    print(f"  float L2 ceiling: L2-NN within {ceiling['frames_nn_within']}  true refs {ceiling['true_refs_recalled']}  "
          f"frame pass: L2-NN within {ceiling['frame_pass_nn_within']}")
    for init, s in summary.items():
        print(f"  {init:8s} L2-NN within {s['frames_nn_within']} (spread {s['frames_nn_within_spread']})  "
              f"true refs {s['true_refs_recalled']} (spread {s['true_refs_recalled_spread']})  frame pass: L2-NN within {s['frame_pass_nn_within']}")
    save(args.name, {"data": args.data.name, "backbone": args.backbone, "recipe": dataclasses.asdict(recipe), "siblings": args.siblings, "shares": SHARES, "float_l2_ceiling": ceiling, "runs": rows, "mean": summary})


if __name__ == "__main__":
    main()
