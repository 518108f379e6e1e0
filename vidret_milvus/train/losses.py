"""The patent's losses (EP 4 390 725 A1, S202-S210), on per-triplet tensors.

Distances:
- texture: Euclidean ``|xa - xb|`` between the L2-normalised embeddings, in [0, 2];
- quantization: ``|ua - ub|^2 / 4`` on the tanh outputs u in (-1, 1)^bits, which equals the
  Hamming distance when u is binary in {-1, 1}^bits (each differing bit adds (2)^2 / 4 = 1).

Stage 1:  L_em = mean_i max(0, |xa-xp| - |xa-xn| + margin_em).
Stage 2, per triplet i (L_em,i from the texture head, detached where it sets a margin/weight):
- variant 1 (adaptive margin): margin_i = margin0 * L_em,i / M_em (in bits);
  L_triplet = mean_i max(0, dq(a,p) - dq(a,n) + margin_i);
  L_q = w21 * L_triplet + w22 * L_coding.
- variant 2 (Formula 8): L_q = w21 * mean_i(L_em,i * max(0, dq(a,p) - dq(a,n) + margin_em / M_em))
  + w22 * L_coding; margin_em is the texture margin, carried to the Hamming scale by M_em.
- fixed margin (ablation): margin_i = a constant number of bits.
L_coding = sum over bits of (sign(u) - u)^2, averaged over the images of the batch (the patent's
sum over i, divided by the batch size so that w22 does not depend on it).

M_em is the ratio between the texture-distance scale and the Hamming scale: texture units per
bit, measured on the data (see :func:`m_em_from_data`): mean texture distance between unrelated
samples / mean Hamming distance between their codes. margin0 * L_em,i / M_em is then L_em,i
carried to bits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

VARIANTS = ("v1", "v2", "fixed")


def texture_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distance per row. A small epsilon keeps the gradient finite at 0."""
    return ((a - b).pow(2).sum(-1) + 1e-12).sqrt()


def quant_distance(ua: torch.Tensor, ub: torch.Tensor) -> torch.Tensor:
    """|ua - ub|^2 / 4: the Hamming distance for u in {-1, 1}^bits, its relaxation otherwise."""
    return (ua - ub).pow(2).sum(-1) / 4.0


def triplet_em(xa: torch.Tensor, xp: torch.Tensor, xn: torch.Tensor, margin: float) -> torch.Tensor:
    """Per-triplet L_em,i = max(0, |xa-xp| - |xa-xn| + margin), shape (T,)."""
    return F.relu(texture_distance(xa, xp) - texture_distance(xa, xn) + margin)


def adaptive_margin(l_em: torch.Tensor, margin0: float, m_em: float) -> torch.Tensor:
    """margin_i = margin0 * L_em,i / M_em (bits). Detached: the margin is a target, not a path."""
    if m_em <= 0:
        raise ValueError(f"M_em must be positive, got {m_em}")
    return margin0 * l_em.detach() / m_em


def triplet_q(ua: torch.Tensor, up: torch.Tensor, un: torch.Tensor, margin: torch.Tensor | float) -> torch.Tensor:
    """Per-triplet max(0, dq(a,p) - dq(a,n) + margin_i), shape (T,)."""
    return F.relu(quant_distance(ua, up) - quant_distance(ua, un) + margin)


def coding_loss(u: torch.Tensor) -> torch.Tensor:
    """sum over bits of (sign(u) - u)^2, mean over images."""
    return (torch.sign(u).detach() - u).pow(2).sum(-1).mean()


def stage2_quant_loss(
    variant: str,
    l_em: torch.Tensor,
    ua: torch.Tensor,
    up: torch.Tensor,
    un: torch.Tensor,
    u_all: torch.Tensor,
    *,
    m_em: float,
    margin0: float,
    margin_em: float,
    fixed_margin: float,
    w21: float,
    w22: float,
    max_margin: float = 0.0,
) -> dict[str, torch.Tensor]:
    """L_q for one batch of T triplets; ``l_em`` (T,) the texture head's per-triplet loss (used
    only detached); ``u_all`` every quantization output of the batch (for L_coding);
    ``max_margin`` > 0 caps the adaptive margin (a guard, not in the patent: a margin beyond
    what the code length allows only saturates the outputs).
    Returns l_q, l_triplet, l_coding and the mean margin (bits)."""
    l_em = l_em.detach()
    if variant == "v1":
        margin = adaptive_margin(l_em, margin0, m_em)
        if max_margin > 0:
            margin = margin.clamp(max=max_margin)
        lt = triplet_q(ua, up, un, margin)
        l_triplet = lt.mean()
        weighted = l_triplet
    elif variant == "v2":
        margin = torch.full_like(l_em, margin_em / m_em)
        lt = triplet_q(ua, up, un, margin)
        l_triplet = lt.mean()
        weighted = (l_em * lt).mean()
    elif variant == "fixed":
        margin = torch.full_like(l_em, float(fixed_margin))
        lt = triplet_q(ua, up, un, margin)
        l_triplet = lt.mean()
        weighted = l_triplet
    else:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    l_coding = coding_loss(u_all)
    return {"l_q": w21 * weighted + w22 * l_coding, "l_triplet": l_triplet, "l_coding": l_coding,
            "margin": margin.mean() if margin.numel() else torch.zeros(())}


def m_em_from_data(emb: torch.Tensor, u: torch.Tensor, gids: torch.Tensor) -> float:
    """M_em = mean texture distance / mean Hamming distance over pairs of different groups.

    ``emb`` (N, D) texture embeddings, ``u`` (N, bits) quantization outputs (binarised here:
    the Hamming scale is that of the codes), ``gids`` (N,) group ids."""
    with torch.no_grad():
        d_tex = torch.cdist(emb.float(), emb.float())
        b = torch.where(u >= 0, 1.0, -1.0)
        d_ham = torch.cdist(b, b).pow(2) / 4
        mask = gids[:, None] != gids[None, :]
        if not bool(mask.any()):
            raise ValueError("M_em needs pairs of samples from different groups")
        ham = float(d_ham[mask].mean())
        return float(d_tex[mask].mean()) / max(ham, 1.0)
