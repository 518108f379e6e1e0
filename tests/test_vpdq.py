"""The vPDQ baseline of benchmarks/eval_retrieval.py: per-frame PDQ hashes, a frame match at
Hamming <= 31 of 256 bits. An edited frame stays close, an unrelated one is far."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

pytest.importorskip("pdqhash")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from eval_retrieval import PDQ_MATCH_BITS, PDQ_MIN_SIM, hamming, pdq_hashes, pdq_similarity  # noqa: E402

from vidret_milvus.train.data import synthetic_images  # noqa: E402


def test_vpdq_edited_close_unrelated_far() -> None:
    imgs, _ = synthetic_images(2, 256, np.random.default_rng(4))
    a, other = imgs
    edited = np.asarray(ImageEnhance.Brightness(Image.fromarray(a)).enhance(1.2).resize((200, 200)).resize((256, 256)))
    h = pdq_hashes(np.stack([a, edited, other]))
    assert h.shape == (3, 32) and h.dtype == np.uint8
    d = hamming(h, h)
    assert d[0, 0] == 0 and d[0, 1] <= PDQ_MATCH_BITS < d[0, 2]
    sim = pdq_similarity(h[:1], h)
    assert sim[0, 1] >= PDQ_MIN_SIM > sim[0, 2]
    assert PDQ_MIN_SIM == pytest.approx(1 - 31 / 256)
