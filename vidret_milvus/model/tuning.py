"""Helpers for fine-tuning a :class:`FingerprintModel` (used by ``vidret_milvus.train``).

Nothing here changes how a model is built or loaded: these act on a model already in memory.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .fingerprinter import FingerprintModel


def set_trainable_backbone(model: FingerprintModel, prefixes: Iterable[str]) -> list[str]:
    """Freeze the backbone except the parameters whose name (inside the backbone) starts with
    one of ``prefixes`` (e.g. ``blocks.5``, ``conv_head``). Returns the trainable names.
    Raises ValueError when a prefix matches nothing (a typo would silently freeze all)."""
    prefixes = tuple(prefixes)
    def under(name: str, q: str) -> bool:
        q = q.rstrip(".")
        return name == q or name.startswith(q + ".")

    params = list(model.backbone.named_parameters())
    for q in prefixes:
        if not any(under(n, q) for n, _ in params):
            raise ValueError(f"no backbone parameter under {q!r} in {model.config.backbone}")
    names = []
    for name, p in params:
        p.requires_grad_(any(under(name, q) for q in prefixes))
        if p.requires_grad:
            names.append(name)
    return names


def freeze_batchnorm(module: nn.Module) -> None:
    """Put every BatchNorm in eval mode: running statistics stay the ImageNet ones (small
    fine-tuning batches would only add noise). Call after ``module.train()``."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


@torch.no_grad()
def pooled_features(model: FingerprintModel, x: torch.Tensor) -> torch.Tensor:
    """Raw pooled backbone features (before the feature standardisation), float32 (B, F)."""
    return model.backbone.forward_head(model.backbone.forward_features(x), pre_logits=True).float()


@torch.no_grad()
def feature_stats(model: FingerprintModel, batches: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of the pooled features over model-input batches (B, 3, S, S)."""
    total, s1, s2 = 0, None, None
    for x in batches:
        f = pooled_features(model, x).double()
        s1 = f.sum(0) if s1 is None else s1 + f.sum(0)
        s2 = (f * f).sum(0) if s2 is None else s2 + (f * f).sum(0)
        total += len(f)
    if not total or s1 is None or s2 is None:
        raise ValueError("feature_stats needs at least one image")
    mean = s1 / total
    std = (s2 / total - mean * mean).clamp_min(0).sqrt()
    return mean.float(), std.float().clamp_min(1e-3)


@torch.no_grad()
def set_feature_norm(model: FingerprintModel, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Replace the fixed standardisation (kept in checkpoints as ``feature_norm.mean/std``)."""
    model.feature_norm.mean.copy_(mean.to(model.feature_norm.mean))
    model.feature_norm.std.copy_(std.to(model.feature_norm.std))
