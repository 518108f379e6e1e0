"""The id scheme of the store, in one place (numpy only).

Videos are content-addressed: ``video_id`` is 47 bits of the file's sha256 (plus a probe on a
collision), never 0. A frame's id packs its video and its index among the video's sampled
frames: ``frame_id = video_id << FRAME_BITS | index``. Filters sent to Milvus are built only
from ids made here (``store.in_filter`` takes integers), never from user text.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from .errors import StoreError

FRAME_BITS = 16  # frame id = video_id << 16 | frame index
MAX_FRAMES = 1 << FRAME_BITS  # sampled frames a video may have
VIDEO_ID_BITS = 47  # video ids are in [1, 2^47): a frame id stays within int64
# Milvus returns at most 16,384 rows per search vector or query (topk and range search).
MAX_LIMIT = 16384
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def check_sha(sha: str) -> None:
    if not isinstance(sha, str) or not _SHA_RE.match(sha):
        raise StoreError(f"not a sha256 hex digest: {sha!r}")


def video_id_from_sha(sha256: str, probe: int = 0) -> int:
    """Content-addressed video id: 47 bits of the file hash (+ probe on a collision)."""
    check_sha(sha256)
    base = int(sha256[: (VIDEO_ID_BITS + 3) // 4], 16) & ((1 << VIDEO_ID_BITS) - 1)
    return ((base + probe) % ((1 << VIDEO_ID_BITS) - 1)) + 1  # never 0


def path_key(path: str) -> int:
    """Stable 63-bit key of an absolute path (so a path lookup is an integer filter)."""
    return int.from_bytes(hashlib.sha256(path.encode("utf-8", "surrogateescape")).digest()[:8], "big") >> 1


def frame_ids(video_id: int, n: int) -> np.ndarray:
    """The ids of a video's ``n`` sampled frames, in order."""
    if n > MAX_FRAMES:
        raise StoreError(f"video has {n} sampled frames, more than {MAX_FRAMES}: lower --fps")
    return (np.int64(video_id) << FRAME_BITS) + np.arange(n, dtype=np.int64)


def split_frame_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(video ids, frame indices)`` of frame ids."""
    ids = np.asarray(ids, np.int64)
    return ids >> FRAME_BITS, ids & (MAX_FRAMES - 1)


def frame_ids_at(video_ids: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Frame ids of ``(video id, frame index)`` pairs (elementwise)."""
    return (np.asarray(video_ids, np.int64) << FRAME_BITS) + np.asarray(index, np.int64)


def window_frame_ids(ids: np.ndarray, frames_of: dict[int, int], window: int) -> np.ndarray:
    """Every frame id within ``window`` frames of one of ``ids`` in the same video (sorted,
    unique); ``frames_of`` gives each video's stored frame count, so no id falls outside it."""
    ids = np.unique(np.asarray(ids, np.int64))
    if len(ids) == 0 or window <= 0:
        return ids
    vid, idx = split_frame_ids(ids)
    frames = np.array([frames_of[int(v)] for v in vid.tolist()], np.int64)
    near = idx[:, None] + np.arange(-window, window + 1, dtype=np.int64)[None]
    ok = (near >= 0) & (near < frames[:, None])
    return np.unique(frame_ids_at(np.broadcast_to(vid[:, None], near.shape), near)[ok])
