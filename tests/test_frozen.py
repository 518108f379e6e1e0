"""Head training on a frozen descriptor (train/frozen.py): the PCA-ITQ start of the code head
and a short two-stage run on synthetic descriptors (no ONNX model, no cache: seconds)."""

from __future__ import annotations

import dataclasses

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
    # Each Procrustes step is the exact minimiser for the current B, so the error never rises
    # (a transposed rotation also ends low, but not monotonically).
    errors = [_quant_error(xc @ itq_projection(x, 16, np.random.default_rng(1), iters=k)) for k in range(15)]
    assert all(b <= a + 1e-6 for a, b in zip(errors, errors[1:]))


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
    with torch.no_grad():  # unit spread before the tanh: neither saturated nor flat
        np.testing.assert_allclose(heads.quant(heads.standardise(torch.from_numpy(x))).numpy().std(0), 1.0, atol=1e-3)


def _clusters(seed: int, n: int = 160, f: int = 48, copies: int = 3, noise: float = 0.35) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    orig = rng.standard_normal((n, f)).astype(np.float32)
    orig /= np.linalg.norm(orig, axis=1, keepdims=True)
    cop = orig[:, None, :] + noise * rng.standard_normal((n, copies, f)).astype(np.float32) / np.sqrt(f)
    cop /= np.linalg.norm(cop, axis=2, keepdims=True)
    return orig, cop.astype(np.float32), np.arange(n)


def _code_bits(t: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    z = (x - t["feature_norm.mean"]) / t["feature_norm.std"]
    return (z @ t["quant_head.proj.weight"].T + t["quant_head.proj.bias"]) >= 0


def _copy_and_other_hamming(t: dict[str, np.ndarray], orig: np.ndarray, cop: np.ndarray) -> tuple[float, float]:
    bo, bc = _code_bits(t, orig), _code_bits(t, cop.reshape(-1, cop.shape[-1]))
    same = float((np.repeat(bo, cop.shape[1], axis=0) != bc).sum(1).mean())
    other = float((bo[:, None] != bo[None]).sum(2)[~np.eye(len(bo), dtype=bool)].mean())
    return same, other


@pytest.mark.parametrize("init", ["itq", "simhash"])
def test_short_frozen_run_brings_copies_nearer_in_hamming(init: str) -> None:
    orig, cop, gids = _clusters(5, noise=0.9)
    cfg = FrozenConfig(copies=3, embed_dim=48, steps1=5, steps2=200, batch=32, quant_init=init, seed=0)
    t, summary = train_heads(orig, cop, gids, dataclasses.replace(cfg, bits=16), log=lambda s: None)
    t0, _ = train_heads(orig, cop, gids, dataclasses.replace(cfg, steps1=0, steps2=0, bits=16), log=lambda s: None)
    assert summary["stage2"]["steps"] == 200 and summary["config"]["quant_init"] == init
    same, other = _copy_and_other_hamming(t, orig, cop)
    same0, _ = _copy_and_other_hamming(t0, orig, cop)
    assert same < 0.93 * same0 and same < 0.5 * other  # stage 2 pulled the copies' codes in


def test_itq_start_is_the_itq_code_of_the_training_descriptors() -> None:
    orig, cop, gids = _clusters(6)
    run = lambda init, seed: train_heads(orig, cop, gids, FrozenConfig(copies=3, embed_dim=48, steps1=0, steps2=0, batch=32, quant_init=init, seed=seed,  # noqa: E731
                                                                          bits=16), log=lambda s: None)[0]
    t = run("itq", 0)
    allx = np.concatenate([orig, cop.reshape(-1, orig.shape[1])])
    want = (allx - allx.mean(0)) @ itq_projection(allx, 16, np.random.default_rng([0, 11])) >= 0
    assert (_code_bits(t, allx) == want).mean() > 0.999
    np.testing.assert_array_equal(t["quant_head.proj.weight"], run("itq", 0)["quant_head.proj.weight"])
    assert not np.allclose(t["quant_head.proj.weight"], run("simhash", 0)["quant_head.proj.weight"])


def test_unknown_quant_init_is_refused() -> None:
    with pytest.raises(ValueError, match="quant_init"):
        FrozenConfig(quant_init="pca")


@pytest.mark.parametrize("bits", [0, 12, 2048])
def test_code_length_is_a_multiple_of_8_within_bounds(bits: int) -> None:
    with pytest.raises(ValueError, match="bits"):
        FrozenConfig(bits=bits)


def test_config_from_overrides_parses_types_and_refuses_unknown_keys() -> None:
    from vidret_milvus.train.frozen import config_from_overrides

    cfg = config_from_overrides(["bits=256", "max_margin=64", "quant_init=itq"], steps1=0)
    assert (cfg.bits, cfg.max_margin, cfg.quant_init, cfg.steps1) == (256, 64.0, "itq", 0)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        config_from_overrides(["speed=2"])
