"""Cost of query region views: fingerprint_views with regions vs the full frame only.

    .venv/bin/python benchmarks/bench_regions.py [--threads 2] [--seconds 20]

Writes a 640x360 H.264 clip of generated footage with a 30 % picture-in-picture inset (so
the detector finds a box and the region views are what a PiP query really costs), then
times, side by side in one run, the full frame only (``fingerprint_views(regions=False)``,
which is ``fingerprint_video`` itself), the default search's views (``crops=()``: the full
frame plus the detected insets, bars, caption band or filmed screen, decoded twice) and all views (``regions=True``) at 1 fps with
the default model (``--backbone`` for another), on that clip and on the same footage without
the inset, and the detection alone (insets, bars, band and screen). Prints only (nothing saved). This machine is noisy: read the ratio, not
the absolute times.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from _common import ROOT
from vidret_milvus.clips import ken_burns, write_clip
from vidret_milvus.fingerprint import Sampling
from vidret_milvus.model import load_model
from vidret_milvus.video import read_all
from vidret_milvus.views import detect_views, fingerprint_views


def pip_clip(seconds: float, fps: int = 24, inset: bool = True) -> str:
    import skimage.data as data

    path = ROOT / "benchmarks" / "out" / f"{'pip' if inset else 'plain'}_640x360_{int(seconds)}s.mp4"
    if path.is_file():
        return str(path)
    n = int(seconds * fps)
    rng = np.random.default_rng(0)
    s = math.sqrt(0.3)
    iw, ih = int(640 * s) // 2 * 2, int(360 * s) // 2 * 2
    outer = ken_burns(data.coffee(), n, (640, 360), rng)
    inner = ken_burns(data.astronaut(), n, (iw, ih), rng)

    def frames():  # noqa: ANN202
        for o, i in zip(outer, inner):
            f = np.array(o)
            if inset:
                f[60 : 60 + ih, 250 : 250 + iw] = i
            yield f

    write_clip(path, frames(), fps, (640, 360), crf=23)
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--backbone", default=None, help="default: the default model (e.g. tf_efficientnet_lite0 for the torch Lite0)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clip = pip_clip(args.seconds)
    plain = pip_clip(args.seconds, inset=False)
    model = load_model(backbone=args.backbone, threads=args.threads) if args.backbone else load_model(threads=args.threads)
    sampling = Sampling(threads=args.threads)
    # A clip without an inset: the default search's views cost the full frame plus the detection.
    fingerprint_views(plain, model, sampling, regions=False)
    t = time.perf_counter()
    fingerprint_views(plain, model, sampling, regions=False)
    t_plain_full = time.perf_counter() - t
    t = time.perf_counter()
    plain_views = fingerprint_views(plain, model, sampling, crops=())
    t_plain_insets = time.perf_counter() - t
    fingerprint_views(clip, model, sampling, regions=False)  # warm-up (first torch call, file cache)

    t = time.perf_counter()
    full = fingerprint_views(clip, model, sampling, regions=False)
    t_full = time.perf_counter() - t
    t = time.perf_counter()
    insets = fingerprint_views(clip, model, sampling, crops=())
    t_insets = time.perf_counter() - t
    t = time.perf_counter()
    views = fingerprint_views(clip, model, sampling, regions=True)
    t_regions = time.perf_counter() - t
    frames = read_all(clip, fps=1.0, short_side=model.config.resize_size).frames
    t = time.perf_counter()
    boxes = detect_views(frames)  # every detector, on one grey sample
    t_detect = time.perf_counter() - t

    n = full[0][1].num_frames
    print(f"{args.seconds:.0f} s 640x360 clip, {n} frames at 1 fps, {args.threads} threads, model {model.model_id}")
    print(f"no inset: full frame only {t_plain_full:.2f} s, insets (default) {t_plain_insets:.2f} s "
          f"(ratio {t_plain_insets / t_plain_full:.2f}x; views {[name for name, _ in plain_views]})")
    print(f"views with regions: {[name for name, _ in views]} (detected: {boxes})")
    print(f"{'full frame only':>18}: {t_full:7.2f} s")
    print(f"{'insets (default)':>18}: {t_insets:7.2f} s   ratio {t_insets / t_full:.2f}x for {len(insets)} views")
    print(f"{'all views':>18}: {t_regions:7.2f} s   ratio {t_regions / t_full:.2f}x for {len(views)} views")
    print(f"{'detection alone':>18}: {t_detect * 1e3:7.1f} ms ({t_detect / n * 1e3:.1f} ms/frame)")


if __name__ == "__main__":
    main()
