"""Texture processing sub-model (float embedding) and quantization processing sub-model (codes).

Both heads read the same pooled backbone features, in parallel.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class FeatureNorm(nn.Module):
    """Fixed standardisation of pooled features: (x - mean) / std, kept in the checkpoint."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("std", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class TextureHead(nn.Module):
    """Float embedding, L2-normalised so that distances live in [0, 2] for every model."""

    def __init__(self, num_features: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(num_features, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(x), dim=-1)


class QuantizationHead(nn.Module):
    """``bits`` real values u in (-1, 1) (tanh; 128 in the patent); the code bit is u >= 0."""

    def __init__(self, num_features: int, bits: int) -> None:
        super().__init__()
        self.proj = nn.Linear(num_features, bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.proj(x))


def init_random_projection(head: nn.Module, generator: torch.Generator, orthogonal: bool) -> None:
    """Untrained baseline: random hyperplanes through the (standardised) feature centre.

    For the code head this is sign random projection (SimHash), an LSH for angular distance;
    for the texture head an orthonormal random projection (Johnson-Lindenstrauss).
    """
    lin: nn.Linear = head.proj
    out_f, in_f = lin.weight.shape
    w = torch.randn(max(out_f, in_f), min(out_f, in_f), generator=generator)
    if orthogonal:
        w, _ = torch.linalg.qr(w)
    w = w[:out_f, :in_f] if out_f >= in_f else w.T[:out_f, :in_f]
    with torch.no_grad():
        lin.weight.copy_(w / np.sqrt(in_f) if not orthogonal else w)
        lin.bias.zero_()


def pack_codes(u: torch.Tensor) -> np.ndarray:
    """Quantization outputs (N, bits) -> packed codes (N, bits/8) uint8, MSB first, bit = u >= 0."""
    bits = (u >= 0).cpu().numpy().astype(np.uint8)
    return np.packbits(bits, axis=1, bitorder="big")


def unpack_codes(codes: np.ndarray) -> np.ndarray:
    """Packed codes (N, B) uint8 -> bits (N, 8B) uint8 in {0, 1}."""
    return np.unpackbits(codes, axis=1, bitorder="big")
