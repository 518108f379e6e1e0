"""Query views: the full frame plus regions of it, fingerprinted from one decode and searched
side by side (picture-in-picture and camcorder copies are found through a region).

A view is a ``(name, VideoDescriptor)`` pair: ``"full"`` (always first), ``"box0"``,
``"box1"`` (insets found by :func:`~vidret_milvus.regions.find_inner_rectangles`) and the
fixed crops (``"centre70"``...). Crops keep the query's timestamps, so segments of a region
view are in query time like the full view's.

Cost: each view is one more embedding pass over every sampled frame, so fingerprinting
costs about ``1 + views`` times the full-frame model time (the detection itself is a few ms
per frame; a query with an inset is decoded twice); benchmarks/bench_regions.py measures it.
Memory is bounded by a batch of frames plus the detection's sample, whatever the length.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .descriptor import CODE_BYTES, VideoDescriptor
from .errors import ModelMismatchError, VidretError, VideoError
from .fingerprint import Sampling
from .regions import DEFAULT_FIXED, crop_frames, find_inner_rectangles, fixed_crops
from .decision import decide_query
from .search import Result, SearchParams, SearchResponse, search_descriptor
from .store import Store
from .video import iter_frames, probe

if TYPE_CHECKING:  # the torch model's type only: importing it would import torch and timm
    from .model import FingerprintModel

__all__ = ["fingerprint_views", "search_views"]

# Frames the box detection looks at, evenly spread over the query: enough for the temporal
# medians of several windows, and a bounded cost for long queries.
DETECT_FRAMES = 64


def _detect_sample(kept: list[np.ndarray], stride: int, frame: np.ndarray, index: int) -> int:
    """Keep every ``stride``-th frame; when 2 x DETECT_FRAMES are kept, drop every other one and
    double the stride: evenly spread frames of a query of unknown length, in bounded memory."""
    if index % stride == 0:
        kept.append(frame.copy())  # not a view into the batch, which is dropped
        if len(kept) >= 2 * DETECT_FRAMES:
            kept[:] = kept[::2]
            return stride * 2
    return stride


def fingerprint_views(
    path: str | Path,
    model: FingerprintModel,
    sampling: Sampling = Sampling(),
    regions: bool = True,
    *,
    max_boxes: int = 2,
    crops: tuple[str, ...] = DEFAULT_FIXED,
    video_id: int = 0,
) -> list[tuple[str, VideoDescriptor]]:
    """Fingerprint the full frame and, with ``regions``, the detected insets and fixed crops
    (``crops`` names them; ``()`` for insets only).

    Memory stays bounded for any length of query: the first decode embeds the full frame and
    the fixed crops batch by batch and keeps only the frames the inset detection looks at (up
    to :data:`DETECT_FRAMES`, evenly spread); only when an inset is found is the video decoded
    a second time, to embed its crops. A query without an inset costs one model pass plus
    the detection (a few ms per frame).
    """
    info = probe(path)
    fixed = fixed_crops(crops) if regions else []
    decode = dict(fps=sampling.fps, keyframes=sampling.keyframes, batch_size=sampling.batch_size, threads=sampling.threads,
                  short_side=model.config.resize_size)
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in ["full", *(n for n, _ in fixed)]}
    times: list[np.ndarray] = []
    kept: list[np.ndarray] = []
    stride, seen = 1, 0
    for batch in iter_frames(info.path, **decode):
        times.append(batch.timestamps)
        parts["full"].append(model.embed_frames(batch.frames, batch_size=sampling.batch_size))
        for name, box in fixed:
            parts[name].append(model.embed_frames(crop_frames(batch.frames, box), batch_size=sampling.batch_size))
        if regions:
            for f in batch.frames:
                stride = _detect_sample(kept, stride, f, seen)
                seen += 1
    if not times:
        raise VideoError(info.path, "no frame could be sampled")
    ts = np.concatenate(times).astype(np.float32)
    boxes = []
    if regions and kept:
        pick = np.unique(np.linspace(0, len(kept) - 1, min(len(kept), DETECT_FRAMES)).round().astype(np.int64))
        boxes = find_inner_rectangles(np.stack([kept[i] for i in pick]), max_boxes=max_boxes)
    del kept
    named_boxes = [(f"box{i}", b) for i, b in enumerate(boxes)]
    if named_boxes:  # second decode: the insets' crops
        for name, _ in named_boxes:
            parts[name] = []
        n = 0
        for batch in iter_frames(info.path, **decode):
            n += len(batch)
            for name, box in named_boxes:
                parts[name].append(model.embed_frames(crop_frames(batch.frames, box), batch_size=sampling.batch_size))
        if n != len(ts):
            raise VideoError(info.path, f"the second decode gave {n} frames, the first {len(ts)} (the file changed?)")

    views: list[tuple[str, VideoDescriptor]] = []
    for name in ["full", *(n for n, _ in named_boxes), *(n for n, _ in fixed)]:
        emb = np.concatenate([e for e, _ in parts[name]])
        codes = np.concatenate([c for _, c in parts[name]])
        views.append((name, VideoDescriptor(
            video_id=video_id, path=info.path, duration=float(info.duration), timestamps=ts, embeddings=emb,
            codes=codes.reshape(-1, CODE_BYTES), fps=sampling.fps, model_id=getattr(model, "model_id", ""),
        )))
    return views


def search_views(store: Store, views: list[tuple[str, VideoDescriptor]], params: SearchParams = SearchParams(),
                 own_video_ids: Collection[int] = ()) -> SearchResponse:
    """Search every view and merge per reference video: the view whose result scores best on
    its own wins, with the best similarity of any view at each query frame; the query context
    (``decision.decide_query``) is then applied once over the merged candidates, so that every
    view's scores stay on one scale (a crop recalling few candidates would otherwise look
    unrivalled). ``own_video_ids`` as in ``search.search_descriptor``.

    Each result says which view found it (``Result.view``); timings are summed over views
    (plus ``"view_<name>"``: each view's own total), candidates summed, with the per-view counts kept.
    """
    if not views or views[0][0] != "full":
        raise ValueError("views must start with the 'full' view (fingerprint_views makes them so)")
    meta = store.meta()
    if meta is None:
        raise VidretError(f"{store.uri}: nothing ingested yet (no collections with prefix {store.prefix!r})")
    for name, desc in views:
        if desc.model_id != meta.model_id:
            raise ModelMismatchError(f"store holds codes of model {meta.model_id}; view {name!r} was made with {desc.model_id or '?'}")
    best: dict[int, Result] = {}
    frame_sim: dict[int, np.ndarray] = {}
    timing: dict[str, float] = {}
    per_view_cand: dict[str, Any] = {}
    first: SearchResponse | None = None
    for name, desc in views:
        resp = search_descriptor(store, desc, params, own_video_ids=own_video_ids, _context=False)
        first = first or resp
        for key, ms in resp.timing_ms.items():
            timing[key] = timing.get(key, 0.0) + ms
        timing[f"view_{name}"] = sum(resp.timing_ms.values())
        per_view_cand[name] = resp.candidates
        for r in resp.results:
            # Scored alone, every view's candidates compare (same store, same settings); the
            # earlier view (full first) keeps a tie.
            if r.video_id not in best or r.score > best[r.video_id].score:
                best[r.video_id] = dataclasses.replace(r, view=name)
            fs = r.evidence_detail.frame_similarity  # type: ignore[union-attr]  # score_candidate always sets it
            if fs is not None:  # views share the query's timestamps: per frame, the best view
                have = frame_sim.get(r.video_id)
                frame_sim[r.video_id] = fs if have is None or len(have) != len(fs) else np.maximum(have, fs)
    assert first is not None
    merged = [dataclasses.replace(r, evidence_detail=dataclasses.replace(r.evidence_detail, frame_similarity=frame_sim[v]))  # type: ignore[arg-type]
              if v in frame_sim else r for v, r in best.items()]
    own = set(own_video_ids)
    merged = decide_query(params, merged, compete=[r.video_id not in own for r in merged])
    results = sorted(merged, key=lambda r: (-r.score, r.video_id))[: params.top_n]
    candidates = {
        "frames": sum(c["frames"] for c in per_view_cand.values()),
        "videos": sum(c["videos"] for c in per_view_cand.values()),
        "capped": any(c["capped"] for c in per_view_cand.values()),
        "rerank_frames": sum(c.get("rerank_frames", 0) for c in per_view_cand.values()),
        "views": per_view_cand,
    }
    return SearchResponse(
        query=first.query, query_duration=first.query_duration, results=results, timing_ms=timing,
        candidates=candidates, decision={"model_id": meta.model_id, **first.decision, "views": [n for n, _ in views]},
    )
