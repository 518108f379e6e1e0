"""Ingest speed of the ONNX copy-detection models side by side: what each costs to fingerprint.

    .venv/bin/python benchmarks/bench_backbones.py [--threads 2] [--seconds 60] [--repeats 3]

For each model (by default: the default checkpoint, the 224 px student with the identity texture head, the student at 288 px, the SSCD + student
ensemble checkpoint, and SSCD alone with untrained heads; ``--checkpoint`` / ``--backbone``
name others) it measures, with the same
threads, in the same run:

* model images/s: ``embed_frames`` on one batch of 32 real decoded frames (the whole model:
  resize to the short side 288, the graph or graphs, both heads);
* realtime factor: video seconds per wall second of ``fingerprint_video`` at 1 fps on a 60 s
  1280x720 H.264 clip of real footage (decode overlapped with the model), the issue's ingest
  measure (goal >= 20x realtime);
* decode alone on the same clip, for scale.

The models alternate within each repetition and the best repetition is kept: the machine is
shared and noisy, so compare the ratios (printed against the default).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _common import ROOT, clip_720p, save
from vidret_milvus.fingerprint import Sampling, fingerprint_video
from vidret_milvus.model import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--checkpoint", type=Path, nargs="*", default=[ROOT / "vidret_milvus/models/sscd_whitened", ROOT / "vidret_milvus/models/sscd_distilled_224", ROOT / "vidret_milvus/models/sscd_distilled", ROOT / "vidret_milvus/models/sscd_ensemble"])
    ap.add_argument("--backbone", nargs="*", default=["sscd"], help="untrained heads on these backbones as well")
    ap.add_argument("--name", default="")
    args = ap.parse_args()
    models = {str(c.relative_to(ROOT) if c.is_relative_to(ROOT) else c): load_model(checkpoint=c, threads=args.threads) for c in args.checkpoint}
    models.update({f"--backbone {b}": load_model(backbone=b, threads=args.threads) for b in args.backbone})
    clip = clip_720p(args.seconds)
    sampling = Sampling(fps=1.0)
    frames = next(iter(sampling.decode(clip, 288))).frames[:32]
    best_ips = dict.fromkeys(models, 0.0)
    best_rt = dict.fromkeys(models, 0.0)
    best_dec = 0.0
    for rep in range(args.repeats):
        t = time.perf_counter()
        n = sum(len(b) for b in sampling.decode(clip, 288))
        best_dec = max(best_dec, args.seconds / (time.perf_counter() - t))
        for name, m in models.items():
            m.embed_frames(frames[:2])  # warm the session
            t = time.perf_counter()
            m.embed_frames(frames)
            best_ips[name] = max(best_ips[name], len(frames) / (time.perf_counter() - t))
            t = time.perf_counter()
            d = fingerprint_video(clip, m, sampling)
            best_rt[name] = max(best_rt[name], args.seconds / (time.perf_counter() - t))
            assert d.num_frames == n
        print(f"repeat {rep + 1}: " + ", ".join(f"{k} {best_rt[k]:.1f}x" for k in models), flush=True)
    base = next(iter(models))
    rows = []
    for name in models:
        rows.append({"model": name, "model_id": models[name].model_id, "images_per_s": round(best_ips[name], 1),
                     "realtime_x": round(best_rt[name], 1), "realtime_vs_default": round(best_rt[name] / best_rt[base], 2)})
        print(f"{name}: model {best_ips[name]:.1f} img/s, fingerprinting {best_rt[name]:.1f}x realtime ({rows[-1]['realtime_vs_default']:.2f} of {base})")
    print(f"decode alone: {best_dec:.1f}x realtime ({n} frames of a {args.seconds:g} s 720p clip at 1 fps)")
    load = os.getloadavg()[0]
    print(f"load average at the end: {load:.1f}")
    save("bench_backbones" + (f"-{args.name}" if args.name else ""), {
        "threads": args.threads, "seconds": args.seconds, "repeats": args.repeats, "clip": str(clip.relative_to(ROOT)),
        "decode_realtime_x": round(best_dec, 1), "load_average_end": round(load, 2), "rows": rows})


if __name__ == "__main__":
    main()
