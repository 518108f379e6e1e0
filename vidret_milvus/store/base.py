"""The store's shared vocabulary: constants, row types, hit sets and filters (numpy only)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
SCHEMA_VERSION = 1
INSERT_CHUNK = 2000
ID_CHUNK = 1000
FRAME_FILTER_CHUNK = 16384  # frame ids per "id in [...]" filter of a re-rank search
VIDEO_PAGE = 8192  # videos-table rows per query when listing (Milvus caps a query at 16,384)
READY, INGESTING = "ready", "ingesting"
BINARY_INDEXES = ("BIN_FLAT", "BIN_IVF_FLAT")
DEFAULT_NLIST = 1024  # BIN_IVF_FLAT lists when none is given (ivf_nlist_for sizes it to known data)
IVF_GUARDS = ("auto", "knn", "range", "off")
# Consistency of the reads on a Milvus server (searches, queries, counts). "Session" sees every
# write this process made at once, and other processes' writes within about a second (Milvus'
# time tick); "Strong" waits for the time tick on every request (~200 ms each on Milvus 2.3).
READ_CONSISTENCY = ("Session", "Strong", "Bounded", "Eventually")
STRONG_AFTER_DELETE_S = 5.0
META_TTL_S = 30.0
KNN_FIRST_K = 1024  # kNN recall guard: first pass size; frames that fill it are redone with the limit
_SQLITE_MAGIC = b"SQLite format 3\x00"
_PREFIX_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")


@dataclasses.dataclass(frozen=True)
class StoreMeta:
    """What the collections were written with; stored in the collections' description."""

    model_id: str
    embed_dim: int
    code_bits: int
    fps: float
    keyframes: bool
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps({"vidret": dataclasses.asdict(self)}, sort_keys=True)

    @classmethod
    def from_description(cls, text: str) -> "StoreMeta | None":
        try:
            d = json.loads(text)["vidret"]
            return cls(**d)
        except (ValueError, KeyError, TypeError):
            return None


@dataclasses.dataclass(frozen=True)
class VideoRow:
    video_id: int
    path: str
    sha256: str
    duration: float
    fps: float
    frames: int
    model_id: str
    status: str
    updated_at: int


@dataclasses.dataclass
class FrameHits:
    """Flat hit lists: hit k is reference frame ``ids[k]`` for query frame ``query_index[k]``."""

    query_index: np.ndarray  # (K,) int64
    ids: np.ndarray  # (K,) int64
    video_ids: np.ndarray  # (K,) int64
    t: np.ndarray  # (K,) float32
    distance: np.ndarray  # (K,) float32 (Hamming bits, or squared L2)
    capped: np.ndarray  # (Q,) bool: query frame hit the result cap

    @classmethod
    def empty(cls, nq: int) -> "FrameHits":
        z = np.zeros(0, np.int64)
        return cls(z, z, z, np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(nq, bool))


def _take_hits(h: FrameHits, keep: np.ndarray) -> FrameHits:
    return FrameHits(h.query_index[keep], h.ids[keep], h.video_ids[keep], h.t[keep], h.distance[keep], h.capped)


def _merge_nearest(parts: Sequence[FrameHits], nq: int, limit: int) -> FrameHits:
    """Hits of several searches over disjoint frame sets -> the ``limit`` nearest per query frame."""
    qi = np.concatenate([p.query_index for p in parts])
    dist = np.concatenate([p.distance for p in parts])
    ids = np.concatenate([p.ids for p in parts])
    order = np.lexsort((ids, dist, qi))
    qi_s = qi[order]
    first = np.r_[True, qi_s[1:] != qi_s[:-1]] if len(qi_s) else np.zeros(0, bool)
    rank = np.arange(len(qi_s)) - np.maximum.accumulate(np.where(first, np.arange(len(qi_s)), 0)) if len(qi_s) else np.zeros(0, np.int64)
    keep = order[rank < limit]
    merged = FrameHits(qi, ids, np.concatenate([p.video_ids for p in parts]), np.concatenate([p.t for p in parts]), dist, np.zeros(nq, bool))
    out = _take_hits(merged, keep)
    out.capped = np.bincount(out.query_index, minlength=nq)[:nq] >= limit
    return out


def _int_list(ids: Iterable[int]) -> list[int]:
    if isinstance(ids, np.ndarray):  # an id array (a re-rank scope has thousands): no per-item check needed
        if ids.dtype.kind not in "iu":
            raise StoreError(f"ids must be integers, got an array of {ids.dtype}")
        return ids.ravel().tolist()
    if isinstance(ids, list) and all(type(v) is int for v in ids):
        return list(ids)
    out = []
    for v in ids:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise StoreError(f"ids must be integers, got {type(v).__name__}")
        out.append(int(v))
    return out


def in_filter(field: str, ids: Iterable[int]) -> str:
    """``field in [1,2,3]`` from integers only: the one way a filter gets values."""
    if not re.fullmatch(r"[a-z_]+", field):
        raise StoreError(f"bad field name {field!r}")
    return f"{field} in [{','.join(map(str, _int_list(ids)))}]"


def _chunks(seq: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]
