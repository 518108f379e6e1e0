"""Negative mining (patent S2011-S2018).

For each similar pair (sample a, edited copy p): sort the texture distances from a to the
other samples of the set, ascending; drop the nearest ``k`` percent (they are likely
near-duplicates of a, i.e. label noise); take the next ``m`` as negatives, giving ``m``
triplets (a, p, n).

Rounding of the dropped count (explicit, tested on the patent's Table 1):
``n_drop = floor(n * k / 100 + 1/2)`` (round half up) of the ``n`` candidates. For Table 1's
7 candidates and k = 25 %, 1.75 -> 2: samples 3 and 6 are dropped, 7, 4, 5 kept (m = 3),
8 and 9 left out.
"""

from __future__ import annotations

import math

import torch


def n_dropped(n: int, k_percent: float) -> int:
    """How many of ``n`` nearest candidates are dropped: round half up of n * k / 100."""
    if not 0 <= k_percent < 100:
        raise ValueError(f"k must be in [0, 100) percent, got {k_percent}")
    # The small epsilon keeps exact halves (e.g. 10 * 15 / 100 = 1.5) from falling below by float error.
    return int(math.floor(n * k_percent / 100.0 + 0.5 + 1e-9))


def mine_negatives(
    dist: torch.Tensor, candidates: torch.Tensor, k_percent: float, m: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick negatives per row.

    dist: (B, N) texture distances from each sample to the N samples of the set.
    candidates: (B, N) bool, True where the set member may be a negative (not the sample
    itself, not its copy, not a known near-duplicate of it).
    Returns (idx (B, m) long, valid (B, m) bool): per row, the members at sorted positions
    n_drop .. n_drop + m - 1 among its candidates; ``valid`` is False where a row has too few.
    """
    if dist.shape != candidates.shape:
        raise ValueError(f"dist {tuple(dist.shape)} and candidates {tuple(candidates.shape)} differ")
    d = dist.detach().float().masked_fill(~candidates, math.inf)
    order = torch.argsort(d, dim=1, stable=True)
    n_valid = candidates.sum(1)
    n_drop = torch.floor(n_valid.double() * k_percent / 100.0 + 0.5 + 1e-9).long()
    pos = n_drop[:, None] + torch.arange(m, device=dist.device)[None, :]
    valid = pos < n_valid[:, None]
    idx = order.gather(1, pos.clamp(max=dist.shape[1] - 1))
    return idx, valid


def batch_triplets(
    emb: torch.Tensor, gids: torch.Tensor, k_percent: float, m: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """In-batch mining: the set is the batch's samples. emb (B, D) texture embeddings of the
    samples; gids (B,) group ids (same group = near-duplicate, never a negative).
    Returns (anchor index (T,), negative index (T,)) of the T valid triplets; the positive of
    anchor i is copy i."""
    with torch.no_grad():
        dist = torch.cdist(emb.detach().float(), emb.detach().float())
        cand = gids[:, None] != gids[None, :]
        idx, valid = mine_negatives(dist, cand, k_percent, m)
    rows = torch.arange(len(emb), device=emb.device)[:, None].expand_as(idx)
    return rows[valid], idx[valid]
