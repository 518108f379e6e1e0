"""An optional fixed score-normalisation background for a checkpoint.

Background normalisation (``SearchParams.background_beta``, VSC22 style) subtracts from each
frame similarity ``beta`` x the query frame's similarity to its nearest *background* frame, so
frames that look like much else count less than distinctive ones. By default the background is
a seeded sample of the store's own frames. ``vidret-milvus train-background`` writes instead the
embeddings of the training split's images (``train_cache/train.npz``: Big Buck Bunny's training
span and the training photos, never held-out media) as ``background.npy`` beside a checkpoint;
search then uses that file. It makes the normalisation independent of what is stored, but on the
tuning sets it does far worse than the store sample (objective 0.768 vs 0.904,
benchmarks/results/tune-cpu_trained_filebg.json), so the shipped model does not carry one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..model import FingerprintModel
from ..model.checkpoint import BACKGROUND_FILE
from .data import SampleSet


def build_background(model: FingerprintModel, cache_dir: str | Path, max_frames: int = 4000, seed: int = 0) -> np.ndarray:
    """Unit embeddings (N, D) float32 of up to ``max_frames`` training-split images (a seeded
    sample when there are more)."""
    samples = SampleSet.load(Path(cache_dir) / "train.npz")
    idx = np.arange(len(samples))
    if len(idx) > max_frames:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_frames, replace=False))
    # Images differ in size (film frames, photos): one call each keeps the model's own resize
    # and centre crop.
    emb = np.concatenate([model.embed_frames(samples.image(int(i))[None])[0] for i in idx]).astype(np.float32)
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
