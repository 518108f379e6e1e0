"""Video -> :class:`VideoDescriptor`: decode (video.py) overlapped with the model."""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .descriptor import VideoDescriptor
from .errors import VideoError
from .video import FrameBatch, iter_frames, probe

if TYPE_CHECKING:  # the torch model's type only: importing it would import torch and timm
    from .model import FingerprintModel


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How frames are taken from a video (stored with each video: queries must match)."""

    fps: float = 1.0
    keyframes: bool = False
    threads: int = 2
    batch_size: int = 32

    def __post_init__(self) -> None:
        if not (self.fps > 0 and np.isfinite(self.fps)):
            raise ValueError(f"fps must be a positive number, got {self.fps}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")

    def decode(self, path: str | Path, short_side: int | None) -> Iterator[FrameBatch]:
        """The sampled frames of ``path`` in batches (video.iter_frames with these settings)."""
        return iter_frames(path, fps=self.fps, keyframes=self.keyframes, batch_size=self.batch_size, threads=self.threads, short_side=short_side)


_DONE = object()


def fingerprint_video(
    path: str | Path,
    model: FingerprintModel,
    sampling: Sampling = Sampling(),
    video_id: int = 0,
    on_frames: Callable[[int], None] | None = None,
    on_expected: Callable[[int | None], None] | None = None,
    on_batch: Callable[[FrameBatch], None] | None = None,
) -> VideoDescriptor:
    """Fingerprint one video. ``on_frames(n)`` after each batch of ``n`` frames;
    ``on_expected(n)`` once, before decoding, with the number of frames uniform sampling will
    give (duration x fps; None for keyframes, which only decoding counts); ``on_batch(batch)``
    with each decoded batch, in the decoding thread while the model embeds the previous one
    (views.py: more views of the same frames from one decode).

    Decoding runs in this thread (so decode warnings reach the caller) while the model runs
    on the previous batch in a worker thread: torch releases the GIL, so the two overlap.
    At most two batches are in flight, so memory stays bounded for any length of video.
    """
    info = probe(path)
    if on_expected is not None:
        on_expected(None if sampling.keyframes else max(1, math.ceil(info.duration * sampling.fps - 1e-6)))
    todo: queue.Queue[object] = queue.Queue(maxsize=2)
    results: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    failure: list[BaseException] = []

    def worker() -> None:
        while True:
            item = todo.get()
            if item is _DONE:
                return
            if failure:
                continue  # drain so the producer never blocks
            batch: FrameBatch = item  # type: ignore[assignment]
            try:
                emb, codes = model.embed_frames(batch.frames, batch_size=sampling.batch_size)
                results.append((batch.timestamps, emb, codes))
                if on_frames is not None:
                    on_frames(len(batch))
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)

    thread = threading.Thread(target=worker, name="vidret-embed", daemon=True)
    thread.start()
    try:
        for batch in sampling.decode(info.path, model.config.resize_size):
            if failure:
                break
            if on_batch is not None:
                on_batch(batch)
            todo.put(batch)
    finally:
        todo.put(_DONE)
        thread.join()
    if failure:
        raise failure[0]
    if not results:
        raise VideoError(info.path, "no frame could be sampled")
    ts = np.concatenate([r[0] for r in results]).astype(np.float32)
    emb = np.concatenate([r[1] for r in results])
    codes = np.concatenate([r[2] for r in results]).reshape(-1, model.config.code_bits // 8)
    duration = float(info.duration)
    return VideoDescriptor(
        video_id=video_id,
        path=info.path,
        duration=duration,
        timestamps=ts,
        embeddings=emb,
        codes=codes,
        fps=sampling.fps,
        model_id=getattr(model, "model_id", ""),
    )
