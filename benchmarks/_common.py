"""Shared bits of the benchmark scripts: where results go, the 720p test clip."""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion k / n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def machine() -> dict[str, object]:
    import os

    import torch

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "torch": torch.__version__, "processor": platform.processor() or platform.machine()}


def save(name: str, data: dict[str, object]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(), **data}
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def clip_720p(seconds: float = 60.0) -> Path:
    """A 1280x720 H.264 clip of real footage: Big Buck Bunny 300-360 s (fetched by scripts/fetch_media.py)."""
    from vidret_milvus.clips import cut

    src = ROOT / "resources" / "bbb.mp4"
    if not src.is_file():
        sys.exit(f"{src} missing: run `python3 scripts/fetch_media.py --only bbb` first")
    dst = ROOT / "benchmarks" / "out" / f"bbb_720p_{int(seconds)}s.mp4"
    if not dst.is_file():
        cut(src, dst, 300.0, 300.0 + seconds, (1280, 720), fps=24, crf=20)
    return dst


# set bits of each byte value: Hamming distances of packed codes by table lookup
POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1)


def copied_frames_nearest(query, match: dict, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The query frames inside one ground-truth copied span (``match``: query_start/query_end),
    as a mask over the query's frames; the index in ``emb`` (all reference frames, unit vectors)
    of each one's L2-nearest reference frame; and that L2 distance. What the code stage is
    measured against (eval_retrieval, tune_thresholds, code_heads)."""
    sel = (query.timestamps >= match["query_start"]) & (query.timestamps < match["query_end"])
    sim = query.embeddings[sel] @ emb.T  # unit vectors: L2^2 = 2 - 2 cos, so max cosine = min L2
    nn = np.argmax(sim, axis=1) if sel.any() else np.zeros(0, np.int64)
    l2 = np.sqrt(np.maximum(2.0 - 2.0 * sim[np.arange(len(nn)), nn], 0.0))
    return sel, nn, l2


def nearest_view_hamming(views: list, match: dict, emb: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """The code stage as the default search runs it (the whole frame and the query's detected
    views, each recalling with its own codes), for the query frames inside one copied span:
    per frame, the view whose embedding comes nearest to a reference frame (a
    picture-in-picture's inset, not the frame around it), and the Hamming distance from that
    view's code to that nearest reference frame's code. ``views``: the query's
    VideoDescriptors, the whole frame first, all on the same timestamps."""
    near = [copied_frames_nearest(v, match, emb) for v in views]
    if not near[0][0].any():
        return np.zeros(0, np.int64)
    best = np.argmin(np.stack([l2 for _, _, l2 in near]), axis=0)
    return np.array([int(POPCOUNT[views[k].codes[near[k][0]][j] ^ codes[near[k][1][j]]].sum()) for j, k in enumerate(best)], np.int64)
