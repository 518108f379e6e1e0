"""The score-normalisation background that ships with a trained model.

Background normalisation (``SearchParams.background_beta``, VSC22 style) subtracts from each
frame similarity ``beta`` x the query frame's similarity to its nearest *background* frame, so
frames that look like much else (generic scenery, the film's usual look) count less than
distinctive ones. Sampling the background from the store makes the normalisation depend on
what happens to be stored: a store with one video has no background at all, one with two
unrelated videos a useless one, and the thresholds tuned on a benchmark no longer mean the
same. So a trained model carries a fixed background: the embeddings of the training split's
images (Big Buck Bunny's training span and the training photos, ``train_cache/train.npz``),
never the held-out media that the benchmark uses. ``background.npy`` sits beside the
checkpoint (float16, about 0.4 MB for 750 x 256) and search uses it whenever it is there.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..model import FingerprintModel
from ..model.checkpoint import BACKGROUND_FILE
from .data import SampleSet


def build_background(model: FingerprintModel, cache_dir: str | Path, max_frames: int = 4000, seed: int = 0, batch: int = 32) -> np.ndarray:
    """Unit embeddings (N, D) float32 of up to ``max_frames`` training-split images (a seeded
    sample when there are more)."""
    samples = SampleSet.load(Path(cache_dir) / "train.npz")
    idx = np.arange(len(samples))
    if len(idx) > max_frames:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_frames, replace=False))
    out = []
    for s in range(0, len(idx), batch):
        frames = [samples.image(int(i)) for i in idx[s : s + batch]]
        # Images differ in size (film frames, photos): one call each keeps the model's own
        # resize + centre crop.
        out += [model.embed_frames(f[None])[0] for f in frames]
    emb = np.concatenate(out).astype(np.float32)
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def write_background(model: FingerprintModel, checkpoint: str | Path, cache_dir: str | Path, max_frames: int = 4000, seed: int = 0) -> Path:
    """Build the background for ``model`` and store it beside its checkpoint."""
    emb = build_background(model, cache_dir, max_frames, seed)
    path = Path(checkpoint) / BACKGROUND_FILE
    np.save(path, emb.astype(np.float16))
    (Path(checkpoint) / "background.json").write_text(json.dumps({
        "frames": int(len(emb)), "source": f"{Path(cache_dir) / 'train.npz'} (training split only)", "seed": seed,
        "model_id": getattr(model, "model_id", None)}, indent=1) + "\n")
    return path
