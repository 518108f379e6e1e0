"""Head training on a frozen descriptor (train/frozen.py): the PCA-ITQ start of the code head
and a short two-stage run on synthetic descriptors (no ONNX model, no cache: seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidret_milvus.train.frozen import FrozenConfig, Heads, itq_projection, train_heads


def _quant_error(v: np.ndarray) -> float:
    return float(((np.sign(v) - v) ** 2).sum())


def _anisotropic(rng: np.random.Generator, n: int = 600, f: int = 32) -> np.ndarray:
    return rng.standard_normal((n, f)) * np.linspace(3.0, 0.2, f)[None, :] + 1.5


def test_itq_rotation_is_orthonormal_and_lowers_the_quantization_error() -> None:
    rng = np.random.default_rng(0)
    x = _anisotropic(rng)
    a = itq_projection(x, 16, np.random.default_rng(1), iters=50)
    assert a.shape == (32, 16)
    np.testing.assert_allclose(a.T @ a, np.eye(16), atol=1e-8)  # PCA directions, rotated
    xc = x - x.mean(0)
    pca = np.linalg.svd(xc, full_matrices=False)[2][:16].T
    # The same subspace as PCA, with a lower ||B - V R||^2 than PCA itself or a random rotation.
    np.testing.assert_allclose(pca @ pca.T @ a, a, atol=1e-8)
    random_rot = pca @ np.linalg.qr(np.random.default_rng(2).standard_normal((16, 16)))[0]
    # (On this data ITQ: 26,245; PCA 28,097; random rotations 27,360-27,619.)
    assert _quant_error(xc @ a) < min(_quant_error(xc @ pca), _quant_error(xc @ random_rot)) - 500
    assert _quant_error(xc @ a) < _quant_error(xc @ itq_projection(x, 16, np.random.default_rng(1), iters=0)) - 500


def test_itq_needs_enough_samples() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        itq_projection(np.zeros((8, 32)), 16, np.random.default_rng(0))


def test_quant_projection_start_keeps_the_itq_bits() -> None:
    """The head in standardised coordinates gives exactly sign((x - mean) @ P R)."""
    rng = np.random.default_rng(3)
    x = _anisotropic(rng).astype(np.float32)
    mean, std = x.mean(0), x.std(0)
    heads = Heads(mean, std, 32, 16, torch.Generator().manual_seed(0))
    a = itq_projection(x, 16, np.random.default_rng(4))
    heads.set_quant_projection(a, x)
    with torch.no_grad():
        _, u = heads(torch.from_numpy(x))
    want = (x - mean) @ a
    assert ((u.numpy() >= 0) == (want >= 0)).mean() > 0.999
    assert 0.3 < float(u.abs().mean()) < 0.9  # unit spread: tanh neither saturated nor flat


def _clusters(seed: int, n: int = 160, f: int = 48, copies: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    orig = rng.standard_normal((n, f)).astype(np.float32)
    orig /= np.linalg.norm(orig, axis=1, keepdims=True)
    cop = orig[:, None, :] + 0.35 * rng.standard_normal((n, copies, f)).astype(np.float32) / np.sqrt(f)
    cop /= np.linalg.norm(cop, axis=2, keepdims=True)
    return orig, cop.astype(np.float32), np.arange(n)


def _code_bits(t: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    z = (x - t["feature_norm.mean"]) / t["feature_norm.std"]
    return (z @ t["quant_head.proj.weight"].T + t["quant_head.proj.bias"]) >= 0


@pytest.mark.parametrize("init", ["itq", "simhash"])
def test_short_frozen_run_keeps_copies_nearer_in_hamming(init: str) -> None:
    orig, cop, gids = _clusters(5)
    cfg = FrozenConfig(copies=3, embed_dim=48, steps1=5, steps2=40, batch=32, quant_init=init, seed=0)
    t, summary = train_heads(orig, cop, gids, cfg, bits=16, log=lambda s: None)
    assert summary["stage2"]["steps"] == 40 and summary["config"]["quant_init"] == init
    bo, bc = _code_bits(t, orig), _code_bits(t, cop[:, 0])
    same = (bo != bc).sum(1).mean()
    other = (bo[:, None] != bo[None]).sum(2)[~np.eye(len(bo), dtype=bool)].mean()
    assert same < 0.5 * other


def test_itq_start_differs_from_simhash_and_is_seeded() -> None:
    orig, cop, gids = _clusters(6)
    run = lambda init, seed: train_heads(orig, cop, gids, FrozenConfig(copies=3, embed_dim=48, steps1=0, steps2=0, batch=32, quant_init=init, seed=seed),  # noqa: E731
                                         bits=16, log=lambda s: None)[0]["quant_head.proj.weight"]
    np.testing.assert_array_equal(run("itq", 0), run("itq", 0))
    assert not np.allclose(run("itq", 0), run("simhash", 0))


def test_unknown_quant_init_is_refused() -> None:
    with pytest.raises(ValueError, match="quant_init"):
        FrozenConfig(quant_init="pca")
