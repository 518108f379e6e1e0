"""Cutting and editing clips with PyAV (demo, benchmark data, training data)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import av
import numpy as np
from PIL import Image

from .errors import VideoError

FrameEdit = Callable[[np.ndarray, float], np.ndarray]
"""``edit(rgb_frame, seconds_into_output) -> rgb_frame``."""


def read_span(src: str | Path, start: float, end: float, size: tuple[int, int] | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Decoded RGB frames of ``src`` with start <= t < end, optionally resized to ``size=(W, H)``."""
    try:
        container = av.open(str(src))
    except av.error.FFmpegError as exc:
        raise VideoError(src, f"cannot open: {exc}") from exc
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        base = stream.start_time or 0
        tb = float(stream.time_base)
        if start > 0:
            container.seek(int((start + base * tb) / tb), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            t = (frame.pts - base) * tb
            if t < start - 1e-6:
                continue
            if t >= end - 1e-6:
                break
            kw = {"width": size[0], "height": size[1]} if size else {}
            yield t - start, frame.to_ndarray(format="rgb24", **kw)


def write_clip(dst: str | Path, frames: Iterable[np.ndarray], fps: float, size: tuple[int, int], crf: int = 23, gop: int | None = None) -> Path:
    """Encode RGB frames of ``size=(W, H)`` as H.264 MP4 (yuv420p, even size required)."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    from fractions import Fraction

    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast", **({"g": str(gop)} if gop else {})}
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dst


def cut(src: str | Path, dst: str | Path, start: float, end: float, size: tuple[int, int], fps: float, edit: FrameEdit | None = None, crf: int = 23) -> Path:
    """Cut ``[start, end)`` of ``src`` to ``dst`` at ``size``, applying ``edit`` to each frame."""
    frames = (edit(f, t) if edit else f for t, f in read_span(src, start, end, size))
    return write_clip(dst, frames, fps, size, crf)


def ken_burns(
    img: np.ndarray, n_frames: int, size: tuple[int, int], rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """Yield ``n_frames`` frames of a slow pan and zoom over ``img`` at ``size=(W, H)``.

    A crop box with the output's aspect ratio moves linearly from a random start box to a
    random end box (60-100 % of the largest box that fits), with bilinear subpixel
    resampling, so consecutive frames differ slightly but smoothly, like real footage.
    Frames are generated lazily so long HD clips never sit in memory.
    """
    width, height = size
    ih, iw = img.shape[:2]
    aspect = width / height
    # Largest box of the output aspect ratio that fits in the photo.
    full_w = min(iw, ih * aspect)
    full_h = full_w / aspect

    def random_box() -> np.ndarray:
        scale = rng.uniform(0.6, 1.0)
        bw, bh = full_w * scale, full_h * scale
        x0 = rng.uniform(0, iw - bw)
        y0 = rng.uniform(0, ih - bh)
        return np.array([x0, y0, x0 + bw, y0 + bh])

    start, end = random_box(), random_box()
    pil = Image.fromarray(np.ascontiguousarray(img))
    for i in range(n_frames):
        a = i / max(n_frames - 1, 1)
        x0, y0, x1, y1 = ((1 - a) * start + a * end).tolist()
        box = (x0, y0, x1, y1)
        yield np.asarray(pil.resize((width, height), Image.Resampling.BILINEAR, box=box))
