"""Fingerprinting throughput: decode only, decode + model, and the backbone alone.

    .venv/bin/python benchmarks/bench_fingerprint.py [--threads 2] [--seconds 60]

Prints video seconds per wall second (realtime factor) at 1 fps for a 60 s 1280x720 H.264
clip of real footage, and backbone images/s at 224 px, batch 32, for several execution
modes measured side by side in one run (this machine is noisy: compare ratios).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _common import clip_720p, save
from vidret_milvus.fingerprint import Sampling, fingerprint_video
from vidret_milvus.model import Precision, load_model
from vidret_milvus.video import iter_frames


def best_of(fn, repeats: int = 2) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clip = clip_720p(args.seconds)
    model = load_model()
    res: dict[str, object] = {"clip": str(clip.name), "threads": args.threads, "seconds": args.seconds}

    # Backbone alone, one batch of real frames at the model's input size.
    frames = np.concatenate([b.frames for b in iter_frames(clip, fps=1.0, short_side=256)])[: args.batch]
    x = model.preprocess(frames)
    x_nchw = x.contiguous()
    modes = {}

    def run(inp: torch.Tensor, bf16: bool, inference: bool) -> None:
        ctx = torch.inference_mode() if inference else torch.no_grad()
        with ctx, torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model.backbone.forward_features(inp)

    model.backbone.to(memory_format=torch.contiguous_format)
    run(x_nchw, False, False)
    modes["eager_nchw_fp32"] = args.batch / best_of(lambda: run(x_nchw, False, False))
    model.backbone.to(memory_format=torch.channels_last)
    run(x, False, True)
    modes["inference_channels_last_fp32"] = args.batch / best_of(lambda: run(x, False, True))
    run(x, True, True)
    modes["inference_channels_last_bf16"] = args.batch / best_of(lambda: run(x, True, True))
    with torch.inference_mode():
        a = model.backbone.forward_features(x).float().flatten(1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            b = model.backbone.forward_features(x).float().flatten(1)
    cos = torch.nn.functional.cosine_similarity(a, b).mean().item()
    res["backbone_images_per_s"] = {k: round(v, 1) for k, v in modes.items()}
    res["bf16_vs_fp32_feature_cosine"] = round(cos, 4)

    # Decode only (what iter_frames does for the model: 1 fps, short side 256).
    n = [0]

    def decode() -> None:
        n[0] = sum(len(b) for b in iter_frames(clip, fps=1.0, short_side=256, threads=args.threads))

    t_dec = best_of(decode)
    res["decode_only"] = {"frames": n[0], "wall_s": round(t_dec, 2), "realtime_x": round(args.seconds / t_dec, 1)}

    # Full decode of every frame, for reference.
    def decode_all() -> None:
        import av

        with av.open(str(clip)) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            s.thread_count = args.threads
            for _ in c.decode(s):
                pass

    t_all = best_of(decode_all, 1)
    res["decode_every_frame"] = {"wall_s": round(t_all, 2), "realtime_x": round(args.seconds / t_all, 1)}

    # Decode + model end to end (decode overlapped with inference), fp32 and bf16.
    for prec in (Precision.fp32, Precision.bf16):
        model.precision = prec
        sampling = Sampling(fps=1.0, threads=args.threads, batch_size=args.batch)
        t = best_of(lambda: fingerprint_video(clip, model, sampling))
        res[f"fingerprint_{prec.value}"] = {"wall_s": round(t, 2), "realtime_x": round(args.seconds / t, 1)}
    model.precision = Precision.fp32
    d32 = fingerprint_video(clip, model, Sampling())
    model.precision = Precision.bf16
    d16 = fingerprint_video(clip, model, Sampling())
    flips = np.unpackbits(d32.codes ^ d16.codes, axis=1).sum(1)
    res["bf16_code_bits_differing_mean"] = round(float(flips.mean()), 2)

    for k, v in res.items():
        print(f"{k:34s} {v}")
    save("fingerprint", res)


if __name__ == "__main__":
    main()
