"""The one place that turns decoded frames into model input."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def to_model_input(
    frames: np.ndarray | torch.Tensor,
    input_size: int,
    resize_size: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> torch.Tensor:
    """RGB uint8 frames (B, H, W, 3) -> normalised float tensor (B, 3, S, S), channels_last.

    Resize the short side to ``resize_size`` (bilinear, antialiased, as timm's eval
    transform), centre-crop ``input_size``, scale to [0, 1], then ``(x - mean) / std``.
    """
    if isinstance(frames, np.ndarray):
        # torch refuses to wrap read-only arrays safely; decoded frames are often read-only.
        arr = np.ascontiguousarray(frames)
        x = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    else:
        x = frames
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 (B, H, W, 3), got {tuple(x.shape)} {x.dtype}")
    x = x.permute(0, 3, 1, 2).float()
    h, w = x.shape[-2:]
    scale = resize_size / min(h, w)
    nh, nw = max(input_size, round(h * scale)), max(input_size, round(w * scale))
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - input_size) // 2, (nw - input_size) // 2
    x = x[:, :, top : top + input_size, left : left + input_size]
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    return ((x - m) / s).contiguous(memory_format=torch.channels_last)
