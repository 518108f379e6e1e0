"""Build the copy-detection benchmark dataset from held-out real footage (seeded, reproducible).

    .venv/bin/python benchmarks/make_dataset.py [--seed 0] [--out benchmarks/data]

Sources (fetched by scripts/fetch_media.py; training never sees them, see vidret_milvus/splits.py):
- Big Buck Bunny [363, 553) s cut into reference clips of 20-60 s; [555, 596) s is never
  ingested and feeds negatives and filler (same film: hard negatives).
- Held-out photos animated with slow pan/zoom: references of 4-6 shots; reserved photos feed
  negatives and filler.
Queries: 6-20 s excerpts with one edit each (benchmarks/video_edits.py: crop, flip, colour,
blur, caption, logo, picture-in-picture, padding, low quality, frame-rate change, speed
0.8-1.25x, camcorder perspective, rotation), half of them inside unrelated filler; a third of
the queries are negatives with no copy. Ground truth with segment times: ground_truth.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from _common import ROOT
from video_edits import EDIT_TYPES, make_edit
from vidret_milvus.clips import ken_burns, read_span, write_clip
from vidret_milvus.splits import BBB_HELDOUT_START, photos

FPS = 24
SIZE = (640, 360)
BBB = ROOT / "resources" / "bbb.mp4"
BBB_REF_END = 553.0
BBB_POOL = (555.0, 596.0)


def load_photo(path: Path) -> np.ndarray:
    img = Image.open(path).convert("RGB")
    img.thumbnail((1280, 1280))
    return np.asarray(img)


def photo_frames(paths: list[Path], seconds: list[float], rng: np.random.Generator) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for p, s in zip(paths, seconds):
        out.extend(ken_burns(load_photo(p), int(round(s * FPS)), SIZE, rng))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "data")
    ap.add_argument("--queries-per-ref", type=int, default=4)
    args = ap.parse_args()
    if not BBB.is_file():
        raise SystemExit(f"{BBB} missing: run `python3 scripts/fetch_media.py` first")
    rng = np.random.default_rng(args.seed)
    shutil.rmtree(args.out, ignore_errors=True)
    (args.out / "refs").mkdir(parents=True)
    (args.out / "queries").mkdir()
    refs: list[dict] = []

    # --- references: Big Buck Bunny held-out span
    t = BBB_HELDOUT_START
    i = 0
    while t + 20 <= BBB_REF_END:
        length = float(min(rng.uniform(20, 50), BBB_REF_END - t))
        name = f"bbb_{i:02d}.mp4"
        write_clip(args.out / "refs" / name, (f for _, f in read_span(BBB, t, t + length, SIZE)), FPS, SIZE)
        refs.append({"name": name, "source": f"bbb.mp4 {t:.1f}-{t + length:.1f} s", "duration": length})
        t += length
        i += 1
    # --- references: held-out photos, 4-6 shots of 4-8 s each
    held = photos(ROOT / "resources", "heldout")
    order = rng.permutation(len(held))
    reserved = [held[j] for j in order[:10]]  # never ingested: negatives and filler
    pool = [held[j] for j in order[10:]]
    k = 0
    while len(pool) >= 4:
        n = int(min(len(pool), rng.integers(4, 7)))
        shots, pool = pool[:n], pool[n:]
        secs = [float(rng.uniform(4, 8)) for _ in shots]
        name = f"photos_{k:02d}.mp4"
        write_clip(args.out / "refs" / name, photo_frames(shots, secs, rng), FPS, SIZE)
        refs.append({"name": name, "source": "photos " + ", ".join(p.name for p in shots), "duration": sum(secs)})
        k += 1

    def filler(seconds: float) -> list[np.ndarray]:
        """Unrelated footage: the never-ingested end of the film or a reserved photo."""
        if rng.random() < 0.5:
            s = float(rng.uniform(BBB_POOL[0], BBB_POOL[1] - seconds))
            return [f for _, f in read_span(BBB, s, s + seconds, SIZE)]
        return photo_frames([reserved[int(rng.integers(len(reserved)))]], [seconds], rng)

    def edited(frames: list[np.ndarray], kind: str) -> tuple[list[np.ndarray], float, float]:
        """Apply ``kind``; returns frames, output fps, speed (reference seconds per query second)."""
        edit = make_edit(kind, rng, background=filler(1.0)[0])
        speed, out_fps = 1.0, FPS
        if kind == "speed":
            speed = float(rng.uniform(0.8, 1.25))
            idx = np.arange(0, len(frames), speed).round().astype(int)
            frames = [frames[j] for j in idx if j < len(frames)]
        if kind == "fps_change":
            out_fps = int(rng.choice([10, 12, 15]))
            idx = np.arange(0, len(frames), FPS / out_fps).round().astype(int)
            frames = [frames[j] for j in idx if j < len(frames)]
        return [edit(f) for f in frames], out_fps, speed

    queries: list[dict] = []
    kinds = list(EDIT_TYPES)
    q = 0
    for r in refs:
        for _ in range(args.queries_per_ref):
            kind = kinds[q % len(kinds)]
            length = float(min(rng.uniform(6, 20), r["duration"] - 1))
            start = float(rng.uniform(0, r["duration"] - length))
            src = [f for _, f in read_span(args.out / "refs" / r["name"], start, start + length, SIZE)]
            body, out_fps, speed = edited(src, kind)
            lead = tail = 0.0
            if rng.random() < 0.5:
                lead, tail = float(rng.uniform(2, 5)), float(rng.uniform(0, 4))
            pre = filler(lead) if lead else []
            post = filler(tail) if tail else []
            step = FPS / out_fps
            pre = [pre[int(j)] for j in np.arange(0, len(pre), step)] if pre else []
            post = [post[int(j)] for j in np.arange(0, len(post), step)] if post else []
            name = f"q{q:03d}_{kind}.mp4"
            write_clip(args.out / "queries" / name, pre + body + post, out_fps, SIZE, crf=40 if kind == "lowq" else 28)
            copy_len = len(body) / out_fps
            q_start = len(pre) / out_fps
            queries.append({
                "name": name, "edit": kind, "positive": True, "duration": (len(pre) + len(body) + len(post)) / out_fps,
                "matches": [{"ref": r["name"], "query_start": round(q_start, 3), "query_end": round(q_start + copy_len, 3),
                             "ref_start": round(start, 3), "ref_end": round(start + min(length, copy_len * speed), 3)}],
            })
            q += 1
    n_neg = max(1, q // 2)  # a third of all queries
    for j in range(n_neg):
        kind = kinds[(q + j) % len(kinds)]
        length = float(rng.uniform(6, 20))
        body, out_fps, _ = edited(filler(length), kind)
        name = f"q{q + j:03d}_neg_{kind}.mp4"
        write_clip(args.out / "queries" / name, body, out_fps, SIZE, crf=28)
        queries.append({"name": name, "edit": kind, "positive": False, "duration": len(body) / out_fps, "matches": []})
    gt = {"seed": args.seed, "fps": FPS, "size": SIZE, "references": refs, "queries": queries}
    (args.out / "ground_truth.json").write_text(json.dumps(gt, indent=1) + "\n")
    print(f"{len(refs)} references ({sum(r['duration'] for r in refs):.0f} s), {len(queries)} queries "
          f"({sum(x['positive'] for x in queries)} positive) in {args.out}")


if __name__ == "__main__":
    main()
