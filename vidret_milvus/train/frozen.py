"""The patent's two stages on a FROZEN copy-detection descriptor (SSCD and its student).

With an ONNX backbone (model/onnx_model.py) nothing below the heads can learn, so the image
sub-model's output is computed once per training image and per edited copy and cached
(``features-<backbone>.npz``); both stages then train only the small heads, in minutes on CPU:

* stage 1 (S202-S205) trains the **texture head alone** (there is no trainable backbone) with
  L_em on in-batch mined triplets (drop the nearest k %, take the next m);
* stage 2 (S206-S210) trains the texture head with L_em and the **quantization head** with
  L_q = w21 L_triplet (adaptive margin margin0 * L_em,i / M_em, variant 1; or variant 2 / fixed)
  + w22 L_coding.

Initialisation keeps the untrained baseline as the starting point: the feature standardisation
is the training descriptors' mean and std, the texture head undoes it (so at step 0 the
embedding IS the descriptor, or its orthonormal projection when ``embed_dim`` is shorter than
the descriptor; 0, the default, is the descriptor's length: 512, or 1024 for ``sscd_ensemble``), and the
quantization head starts as random hyperplanes through the data's centre (centred SimHash,
``quant_init="simhash"``, the shipped model) or as PCA-ITQ (``"itq"``, Gong & Lazebnik 2011:
the top principal directions of the training descriptors, rotated to minimise the
quantization error ||B - V R||^2). The default model keeps SimHash: ITQ's gain on the hard
tuning split was within the seeds' spread (README, "The code stage"; benchmarks/code_heads.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..descriptor import MAX_CODE_BITS
from ..model.onnx_model import OnnxFingerprintModel, replace_heads, untrained_heads
from .augment import random_edit
from .data import SampleSet
from .losses import m_em_from_data, stage2_quant_loss, triplet_em
from .mining import batch_triplets

FEATURES_VERSION = 1
QUANT_INITS = ("simhash", "itq")


@dataclasses.dataclass(frozen=True)
class FrozenConfig:
    copies: int = 6  # edited copies per training image (each 1-3 stacked edits)
    embed_dim: int = 0  # 0: the descriptor's length, so the texture head starts at the identity
    # Code length: the patent's 128 bits, or longer (256 passes fewer look-alikes at equal
    # recall: benchmarks/code_heads.py --bits, README "The code stage").
    bits: int = 128
    steps1: int = 400
    steps2: int = 1500
    batch: int = 96  # anchors per step (each with one random copy)
    lr: float = 1e-3
    quant_lr: float = 3e-3
    margin_em: float = 0.3
    k_percent: float = 10.0
    m: int = 3
    variant: str = "v1"
    quant_init: str = "simhash"  # "simhash" (random hyperplanes) or "itq" (PCA-ITQ): stage 2's start
    itq_iters: int = 50
    margin0: float = 12.0
    max_margin: float = 32.0
    fixed_margin: float = 24.0
    w21: float = 1.0
    w22: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        if self.copies < 1 or self.batch < 4 or self.steps1 < 0 or self.steps2 < 0:
            raise ValueError("copies >= 1, batch >= 4, steps >= 0")
        if self.bits % 8 or not 8 <= self.bits <= MAX_CODE_BITS:
            raise ValueError(f"bits must be a multiple of 8 in [8, {MAX_CODE_BITS}], got {self.bits}")
        if self.itq_iters < 0:
            raise ValueError(f"itq_iters >= 0, got {self.itq_iters}")
        if self.quant_init not in QUANT_INITS:
            raise ValueError(f"quant_init must be one of {QUANT_INITS}, got {self.quant_init!r}")


def config_from_overrides(items: list[str], **base: object) -> FrozenConfig:
    """A FrozenConfig from ``base`` then ``KEY=VALUE`` strings (train-heads --set, code_heads.py --set)."""
    fields = {f.name: f.type for f in dataclasses.fields(FrozenConfig)}
    kw: dict[str, object] = dict(base)
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"--set needs KEY=VALUE with KEY one of {sorted(fields)}, got {item!r}")
        kw[key] = {"int": int, "float": float}.get(str(fields[key]), str)(value)
    return FrozenConfig(**kw)  # type: ignore[arg-type]


def _cache_key(model: OnnxFingerprintModel, samples: SampleSet, cfg: FrozenConfig) -> str:
    h = hashlib.sha256(f"v{FEATURES_VERSION}:{model.config.backbone}:{model.config.input_size}:{cfg.copies}:{cfg.seed}".encode())
    for b in samples.jpegs:
        h.update(hashlib.sha256(b).digest())
    return h.hexdigest()[:16]


def descriptor_cache(model: OnnxFingerprintModel, samples: SampleSet, cfg: FrozenConfig, cache_dir: Path,
                     log: Callable[[str], None] = print) -> tuple[np.ndarray, np.ndarray]:
    """Descriptors of every sample (N, F) and of ``cfg.copies`` edited copies (N, C, F),
    computed once (seeded edits) and kept in ``cache_dir``."""
    key = _cache_key(model, samples, cfg)
    path = Path(cache_dir) / f"features-{model.config.backbone}-{key}.npz"
    if path.is_file():
        with np.load(path) as z:
            return z["orig"], z["copies"]
    rng = np.random.default_rng([cfg.seed, 7])
    n = len(samples)
    t0 = time.perf_counter()
    orig = np.empty((n, model.config.num_features), np.float32)
    cop = np.empty((n, cfg.copies, model.config.num_features), np.float32)
    for i in range(n):
        img = samples.image(i)
        other = samples.image(int(rng.integers(n)))  # picture-in-picture background
        edits = [np.asarray(random_edit(img, rng, other, n_ops=(1, 3)).convert("RGB")) for _ in range(cfg.copies)]
        d = model.descriptors([img, *edits])
        orig[i], cop[i] = d[0], d[1:]
        if (i + 1) % 100 == 0:
            log(f"  descriptors {i + 1}/{n} ({time.perf_counter() - t0:.0f} s)")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, orig=orig, copies=cop)
    return orig, cop


class Heads(torch.nn.Module):
    """The two heads over standardised descriptors (tensor names as in the checkpoints)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, embed_dim: int, bits: int, gen: torch.Generator) -> None:
        super().__init__()
        f = len(mean)
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        self.texture = torch.nn.Linear(f, embed_dim)
        self.quant = torch.nn.Linear(f, bits)
        with torch.no_grad():
            base = torch.eye(f) if embed_dim == f else torch.linalg.qr(torch.randn(f, embed_dim, generator=gen))[0].T
            # e = base (std * z + mean) = base x: the untrained embedding at step 0.
            self.texture.weight.copy_(base * self.std[None, :])
            self.texture.bias.copy_(base @ self.mean)
            self.quant.weight.copy_(torch.randn(bits, f, generator=gen) / np.sqrt(f))
            self.quant.bias.zero_()

    def set_quant_projection(self, proj: np.ndarray, x: np.ndarray) -> None:
        """Start the code head as u = (x - mean) @ proj, each output scaled to unit spread on
        ``x`` (tanh then starts in its working range, not saturated); bits are unchanged by
        the scaling. In standardised coordinates z: W = (proj / spread).T * std, bias 0."""
        mean, std = self.mean.numpy(), self.std.numpy()
        spread = np.maximum(((x - mean) @ proj).std(0), 1e-12)
        with torch.no_grad():
            self.quant.weight.copy_(torch.from_numpy(((proj / spread[None]).T * std[None, :]).astype(np.float32)))
            self.quant.bias.zero_()

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.standardise(x)
        return F.normalize(self.texture(z), dim=-1), torch.tanh(self.quant(z))

    def tensors(self) -> dict[str, np.ndarray]:
        g = lambda t: t.detach().cpu().numpy().astype(np.float32)  # noqa: E731
        return {"feature_norm.mean": g(self.mean), "feature_norm.std": g(self.std),
                "texture_head.proj.weight": g(self.texture.weight), "texture_head.proj.bias": g(self.texture.bias),
                "quant_head.proj.weight": g(self.quant.weight), "quant_head.proj.bias": g(self.quant.bias)}


def itq_projection(x: np.ndarray, bits: int, rng: np.random.Generator, iters: int = 50) -> np.ndarray:
    """PCA-ITQ (Gong & Lazebnik, "Iterative quantization", CVPR 2011): (F, bits) projection
    P R of centred data, with P the top ``bits`` principal directions and R the orthogonal
    rotation that alternately minimises ||B - V R||_F^2 over B = sign(V R) and R (orthogonal
    Procrustes: R = W U^T from the SVD B^T V = U S W^T)."""
    xc = x - x.mean(0)
    if bits > min(xc.shape):
        raise ValueError(f"ITQ needs at least {bits} samples and features, got {xc.shape}")
    p = np.linalg.svd(xc, full_matrices=False)[2][:bits].T  # (F, bits)
    v = xc @ p
    r = np.linalg.qr(rng.standard_normal((bits, bits)))[0]
    for _ in range(iters):
        u, _s, wt = np.linalg.svd(np.sign(v @ r).T @ v)
        r = (u @ wt).T
    return p @ r


def _batch(rng: np.random.Generator, orig: np.ndarray, cop: np.ndarray, gids: np.ndarray, size: int) -> tuple[torch.Tensor, ...]:
    idx = rng.choice(len(orig), size=min(size, len(orig)), replace=False)
    c = rng.integers(cop.shape[1], size=len(idx))
    return torch.from_numpy(orig[idx]), torch.from_numpy(cop[idx, c]), torch.from_numpy(gids[idx])


def train_heads(orig: np.ndarray, cop: np.ndarray, gids: np.ndarray, cfg: FrozenConfig,
                log: Callable[[str], None] = print) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Stage 1 then stage 2 on cached descriptors; returns the head tensors (codes of
    ``cfg.bits`` bits) and a loss summary."""
    bits = cfg.bits
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    allx = np.concatenate([orig, cop.reshape(-1, cop.shape[-1])])
    heads = Heads(allx.mean(0), np.maximum(allx.std(0), 1e-4), cfg.embed_dim or allx.shape[1], bits, gen)
    if cfg.quant_init == "itq":  # its own RNG stream: the batches stay those of "simhash"
        heads.set_quant_projection(itq_projection(allx, bits, np.random.default_rng([cfg.seed, 11]), cfg.itq_iters), allx)
    summary: dict[str, object] = {"config": dataclasses.asdict(cfg), "samples": len(orig)}
    # Stage 1: texture head alone, L_em.
    opt = torch.optim.Adam(heads.texture.parameters(), lr=cfg.lr)
    t0 = time.perf_counter()
    ema = None
    for step in range(cfg.steps1):
        xa, xp, g = _batch(rng, orig, cop, gids, cfg.batch)
        ea, _ = heads(xa)
        ep, _ = heads(xp)
        a, n = batch_triplets(ea, g, cfg.k_percent, cfg.m)
        loss = triplet_em(ea[a], ep[a], ea[n], cfg.margin_em).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema = float(loss.detach()) if ema is None else 0.95 * ema + 0.05 * float(loss.detach())
    summary["stage1"] = {"steps": cfg.steps1, "l_em_ema": ema, "time_s": round(time.perf_counter() - t0, 1)}
    log(f"stage 1: {cfg.steps1} steps, L_em (EMA) {ema}")
    # Stage 2: texture head (L_em) and quantization head (L_q).
    with torch.no_grad():
        sub = torch.from_numpy(allx[rng.choice(len(allx), size=min(2000, len(allx)), replace=False)])
        e, u = heads(sub)
        sub_g = torch.arange(len(sub))  # distinct samples: every pair counts as unrelated
        m_em = m_em_from_data(e, u, sub_g)
    opt_t = torch.optim.Adam(heads.texture.parameters(), lr=cfg.lr)
    opt_q = torch.optim.Adam(heads.quant.parameters(), lr=cfg.quant_lr)
    t0 = time.perf_counter()
    ema_em = ema_q = None
    for step in range(cfg.steps2):
        xa, xp, g = _batch(rng, orig, cop, gids, cfg.batch)
        ea, ua = heads(xa)
        ep, up = heads(xp)
        a, n = batch_triplets(ea, g, cfg.k_percent, cfg.m)
        l_em_i = triplet_em(ea[a], ep[a], ea[n], cfg.margin_em)
        q = stage2_quant_loss(cfg.variant, l_em_i, ua[a], up[a], ua[n], torch.cat([ua, up]), m_em=m_em, margin0=cfg.margin0,
                              margin_em=cfg.margin_em, fixed_margin=cfg.fixed_margin, w21=cfg.w21, w22=cfg.w22, max_margin=cfg.max_margin)
        opt_t.zero_grad()
        opt_q.zero_grad()
        (l_em_i.mean() + q["l_q"]).backward()
        opt_t.step()
        opt_q.step()
        l_em, l_q = float(l_em_i.mean().detach()), float(q["l_q"].detach())
        ema_em = l_em if ema_em is None else 0.95 * ema_em + 0.05 * l_em
        ema_q = l_q if ema_q is None else 0.95 * ema_q + 0.05 * l_q
    summary["stage2"] = {"steps": cfg.steps2, "m_em": m_em, "l_em_ema": ema_em, "l_q_ema": ema_q, "time_s": round(time.perf_counter() - t0, 1)}
    log(f"stage 2: {cfg.steps2} steps, M_em {m_em:.4f}, L_em {ema_em}, L_q {ema_q}")
    return heads.tensors(), summary


def hamming_table(model: OnnxFingerprintModel, orig: np.ndarray, cop: np.ndarray, radii: tuple[int, ...] | None = None) -> dict[str, object]:
    """Validation on descriptors of held-out images and their copies: the share of copies
    whose original lies within each Hamming radius (default 24-48 bits per 128), and the
    share of the other originals that come along (what a radius costs), plus the embedding's top-1."""
    bits = model.config.code_bits
    radii = radii or tuple(r * bits // 128 for r in (24, 32, 40, 48))
    e_o, c_o = model.heads_from_descriptors(orig)
    flat = cop.reshape(-1, cop.shape[-1])
    e_c, c_c = model.heads_from_descriptors(flat)
    owner = np.repeat(np.arange(len(orig)), cop.shape[1])
    bits_o = np.unpackbits(c_o, axis=1).astype(np.int32)
    bits_c = np.unpackbits(c_c, axis=1).astype(np.int32)
    ham = bits_c.sum(1)[:, None] + bits_o.sum(1)[None, :] - 2 * bits_c @ bits_o.T  # (copies, originals)
    true = ham[np.arange(len(owner)), owner]
    other = np.ones_like(ham, bool)
    other[np.arange(len(owner)), owner] = False
    top1 = float(np.mean(np.argmax(e_c @ e_o.T, axis=1) == owner))
    return {"embedding_top1": round(top1, 4), "copy_hamming_mean": round(float(true.mean()), 2),
            "other_hamming_mean": round(float(ham[other].mean()), 2),
            "radius": {str(r): {"copies_within": round(float(np.mean(true <= r)), 4), "others_within": round(float(np.mean(ham[other] <= r)), 5)}
                       for r in radii}}


def train_frozen(model: OnnxFingerprintModel, train: SampleSet, val: SampleSet, cfg: FrozenConfig, cache_dir: Path,
                 log: Callable[[str], None] = print) -> tuple[OnnxFingerprintModel, dict[str, object]]:
    """Cache descriptors, train both stages, and validate against the untrained heads."""
    if cfg.quant_init == "itq" and cfg.bits > model.config.num_features:  # before minutes of caching
        raise ValueError(f"quant_init=itq needs bits <= the descriptor's {model.config.num_features} features, got {cfg.bits}")
    orig, cop = descriptor_cache(model, train, cfg, cache_dir, log)
    v_orig, v_cop = descriptor_cache(model, val, dataclasses.replace(cfg, copies=3), cache_dir, log)
    tensors, summary = train_heads(orig, cop, train.group_ids(), cfg, log)
    config = dataclasses.replace(model.config, embed_dim=cfg.embed_dim or model.config.num_features, code_bits=cfg.bits, trained=True)
    trained = replace_heads(model, tensors, config)
    if model.config.code_bits != cfg.bits:  # compare with untrained codes of the same length
        untrained_cfg = dataclasses.replace(model.config, code_bits=cfg.bits)
        model = replace_heads(model, untrained_heads(untrained_cfg), untrained_cfg)
    summary["validation"] = {"untrained": hamming_table(model, v_orig, v_cop), "trained": hamming_table(trained, v_orig, v_cop)}
    log(json.dumps(summary["validation"]))
    return trained, summary
