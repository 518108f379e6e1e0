"""Copies made the way infringers make them: excerpt, crop, brightness, re-encode, inside filler."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

from media import Scene, ken_burns, make_video


def decode_all(path: str | Path) -> tuple[np.ndarray, float]:
    """Every frame of a small test video as RGB, and its frame rate."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        rate = float(s.average_rate)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(s)])
    return frames, rate


def crop_brighten(frame: np.ndarray, crop: float = 0.8, gain: float = 1.15) -> np.ndarray:
    h, w = frame.shape[:2]
    ch, cw = int(h * crop), int(w * crop)
    y, x = (h - ch) // 2, (w - cw) // 3
    img = Image.fromarray(frame[y : y + ch, x : x + cw]).resize((w, h), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(img).astype(np.float32) * gain, 0, 255).astype(np.uint8)


def make_copy(
    ref: str | Path, out: str | Path, start: float, end: float, filler: str, lead: float = 3.0, tail: float = 2.0,
    size: tuple[int, int] = (320, 240), seed: int = 0,
) -> tuple[Path, tuple[float, float]]:
    """A query: ``lead`` s of unrelated footage, the reference's [start, end) cropped and
    brightened, then ``tail`` s of filler; re-encoded at lower quality. Returns the path and
    the copied span in query time."""
    frames, rate = decode_all(ref)
    excerpt = frames[int(round(start * rate)) : int(round(end * rate))]
    rng = np.random.default_rng(seed)
    n_lead, n_tail = int(round(lead * rate)), int(round(tail * rate))
    fill = list(ken_burns(np.asarray(Scene(filler).pixels()), n_lead + n_tail, size, rng))
    seq = fill[:n_lead] + [crop_brighten(np.asarray(Image.fromarray(f).resize(size))) for f in excerpt] + fill[n_lead:]

    def fn(i: int, _t: float) -> np.ndarray:
        return seq[i]

    make_video(out, fn, duration=len(seq) / rate, fps=rate, size=size, crf=32, seed=seed)
    return Path(out), (lead, lead + (end - start))
