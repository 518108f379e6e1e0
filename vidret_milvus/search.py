"""The retrieval pipeline: category recall (Hamming) -> re-rank (L2) -> decide + localise.

Patent modes for the copy decision:
  1. ``embedding``: a candidate is a copy when its nearest texture-embedding distance to a
     query frame is under ``embedding_threshold``;
  2. ``duration``: when its content repetition degree (matched duration / duration of the
     shorter video, from time-aligned frame matches) reaches ``duration_threshold``;
  3. ``codes``: when the duration covered by equal codes / duration of the shorter video
     reaches ``codes_threshold``.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from pathlib import Path
from typing import Any

import numpy as np

from .align import AlignParams, Segment, align, repetition_degree
from .descriptor import VideoDescriptor
from .errors import VidretError
from .fingerprint import Sampling, fingerprint_video
from .model import FingerprintModel
from .store import MAX_LIMIT, FrameHits, Store, VideoRow


class Mode(str, enum.Enum):
    embedding = "embedding"  # patent mode 1
    duration = "duration"  # patent mode 2
    codes = "codes"  # patent mode 3


@dataclasses.dataclass(frozen=True)
class SearchParams:
    """Search options. Defaults were chosen on generated copies (see README, 'Thresholds')."""

    top_n: int = 20
    radius: int = 32  # Hamming radius of the category recall (bits, inclusive)
    mode: Mode = Mode.duration
    embedding_threshold: float = 0.8  # mode 1: L2 distance (embeddings are unit length)
    duration_threshold: float = 0.3  # mode 2: content repetition degree
    codes_threshold: float = 0.2  # mode 3: equal-code duration / shorter duration
    # mode 3: codes this close count as "equal". The patent means identical codes from a
    # trained head; untrained LSH codes of a copy differ by 10-30 bits, hence 16.
    code_equal_bits: int = 16
    frame_match_l2: float = 1.0  # an L2 re-rank hit farther than this is no frame match
    rerank_per_video: int = 3  # nearest reference frames kept per (query frame, video)
    max_candidates: int = 2000  # videos sent to re-rank (most recalled first)
    recall_limit: int = MAX_LIMIT  # hits per query frame in the Hamming stage
    align: AlignParams = AlignParams()

    def __post_init__(self) -> None:
        if self.top_n < 1:
            raise ValueError("top_n must be >= 1")
        if not 0 <= self.radius <= 128:
            raise ValueError("radius must be in [0, 128]")
        object.__setattr__(self, "mode", Mode(self.mode))


@dataclasses.dataclass
class Result:
    video_id: int
    path: str
    duration: float
    score: float
    is_copy: bool
    repetition_degree: float
    min_distance: float
    code_ratio: float
    segments: list[Segment]

    def to_json(self) -> dict[str, Any]:
        return {
            "video_id": self.video_id,
            "path": self.path,
            "duration": round(self.duration, 3),
            "score": round(self.score, 4),
            "is_copy": self.is_copy,
            "repetition_degree": round(self.repetition_degree, 4),
            "segments": [g.to_json() for g in self.segments],
        }


@dataclasses.dataclass
class SearchResponse:
    query: str
    query_duration: float
    results: list[Result]
    timing_ms: dict[str, float]
    candidates: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "query_duration": round(self.query_duration, 3),
            "results": [r.to_json() for r in self.results],
            "timing_ms": {k: round(v, 1) for k, v in self.timing_ms.items()},
            "candidates": self.candidates,
        }


def l2_to_similarity(d2: np.ndarray) -> np.ndarray:
    """Squared L2 between unit vectors -> cosine similarity (1 - d^2 / 2)."""
    return 1.0 - np.asarray(d2, np.float64) / 2.0


def _score(mode: Mode, rep: float, weighted_rep: float, min_dist: float, code_ratio: float) -> float:
    """One number in [0, 1], higher = more similar, comparable across queries for a mode."""
    if mode is Mode.embedding:
        return float(max(0.0, 1.0 - min_dist / 2.0))
    if mode is Mode.codes:
        return float(code_ratio)
    return float(weighted_rep)


def search_descriptor(store: Store, query: VideoDescriptor, params: SearchParams = SearchParams()) -> SearchResponse:
    """Run the pipeline for an already fingerprinted query."""
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    interval = 1.0 / query.fps
    # 1. category recall
    recall = store.range_search_codes(query.codes, radius=params.radius, limit=params.recall_limit)
    votes: dict[int, int] = {}
    for v in recall.video_ids.tolist():
        votes[v] = votes.get(v, 0) + 1
    ranked = sorted(votes, key=lambda v: (-votes[v], v))[: params.max_candidates]
    videos = store.get_videos(ranked, ready_only=True)  # never a half-ingested video
    cand = [v for v in ranked if v in videos]
    t1 = time.perf_counter()
    timing["recall"] = (t1 - t0) * 1e3
    # 2. re-rank on the mapping table, filtered to the candidates
    limit = min(MAX_LIMIT, max(16, params.rerank_per_video * len(cand)))
    rer = store.search_embeddings(query.embeddings, cand, limit) if cand else FrameHits.empty(query.num_frames)
    t2 = time.perf_counter()
    timing["rerank"] = (t2 - t1) * 1e3
    # 3. decide and localise, per candidate video
    results = []
    aparams = dataclasses.replace(params.align, frame_interval=interval)
    qts = query.timestamps
    for vid in cand:
        row: VideoRow = videos[vid]
        m = rer.video_ids == vid
        qi, rt, d2 = rer.query_index[m], rer.t[m], rer.distance[m]
        if len(qi):
            # keep the nearest few per query frame
            order = np.lexsort((rt, d2, qi))
            qi, rt, d2 = qi[order], rt[order], d2[order]
            first = np.r_[True, qi[1:] != qi[:-1]]
            rank = np.arange(len(qi)) - np.maximum.accumulate(np.where(first, np.arange(len(qi)), 0))
            keep = rank < params.rerank_per_video
            qi, rt, d2 = qi[keep], rt[keep], d2[keep]
        min_dist = float(np.sqrt(max(0.0, d2.min()))) if len(d2) else 2.0
        good = np.sqrt(np.maximum(d2, 0)) <= params.frame_match_l2
        segs = align(qts[qi[good]], rt[good], l2_to_similarity(d2[good]), aparams)
        rep = repetition_degree(segs, query.duration, row.duration)
        shorter = min(query.duration, row.duration)
        weighted = min(1.0, sum(g.query_length * g.score for g in segs) / shorter) if shorter > 0 else 0.0
        rm = recall.video_ids == vid
        eq_frames = np.unique(recall.query_index[rm][recall.distance[rm] <= params.code_equal_bits])
        code_ratio = float(min(1.0, len(eq_frames) * interval / shorter)) if shorter > 0 else 0.0
        if params.mode is Mode.embedding:
            is_copy = min_dist < params.embedding_threshold
        elif params.mode is Mode.codes:
            is_copy = code_ratio >= params.codes_threshold
        else:
            is_copy = rep >= params.duration_threshold
        results.append(Result(
            video_id=vid, path=row.path, duration=row.duration,
            score=_score(params.mode, rep, weighted, min_dist, code_ratio), is_copy=bool(is_copy),
            repetition_degree=rep, min_distance=min_dist, code_ratio=code_ratio, segments=segs,
        ))
    # Ties broken by video id so that the order is deterministic.
    results.sort(key=lambda r: (-r.score, r.video_id))
    t3 = time.perf_counter()
    timing["align"] = (t3 - t2) * 1e3
    return SearchResponse(
        query=query.path,
        query_duration=query.duration,
        results=results[: params.top_n],
        timing_ms=timing,
        candidates={"frames": int(len(recall.ids)), "videos": len(cand), "capped": bool(recall.capped.any())},
    )


def search_video(store: Store, model: FingerprintModel, path: str | Path, params: SearchParams = SearchParams()) -> SearchResponse:
    """Fingerprint a query clip with the store's own sampling and search it."""
    meta = store.meta()
    if meta is None:
        raise VidretError(f"{store.uri}: nothing ingested yet (no collections with prefix {store.prefix!r})")
    if meta.model_id != getattr(model, "model_id", None):
        from .errors import ModelMismatchError

        raise ModelMismatchError(f"store holds codes of model {meta.model_id}; the model in use is {getattr(model, 'model_id', '?')}")
    t0 = time.perf_counter()
    desc = fingerprint_video(path, model, Sampling(fps=meta.fps, keyframes=meta.keyframes))
    t1 = time.perf_counter()
    resp = search_descriptor(store, desc, params)
    resp.timing_ms = {"fingerprint": (t1 - t0) * 1e3, **resp.timing_ms}
    resp.timing_ms["total"] = (time.perf_counter() - t0) * 1e3
    return resp
