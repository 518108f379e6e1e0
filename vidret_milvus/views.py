"""Query views: the full frame plus regions of it, fingerprinted from one decode and searched
side by side (picture-in-picture, padded, captioned and camcorder copies are found through a region).

A view is a ``(name, VideoDescriptor)`` pair: ``"full"`` (always first), ``"box0"``,
``"box1"`` (insets found by :func:`~vidret_milvus.regions.find_inner_rectangles`),
``"bars"`` (the picture inside letterbox / pillarbox bars, :func:`~vidret_milvus.regions.find_bars`),
``"band"`` (the picture beside a caption band, :func:`~vidret_milvus.regions.find_band`),
``"screen"`` (a filmed screen warped back to the whole frame, :func:`~vidret_milvus.regions.find_screen`)
and the fixed crops (``"centre70"``...). Crops keep the query's timestamps, so segments of a region
view are in query time like the full view's.

Cost: each view is one more embedding pass over every sampled frame, so fingerprinting
costs about ``1 + views`` times the full-frame model time (the detection itself is a few ms
per frame; a query with a detected view is decoded twice); benchmarks/bench_regions.py measures it.
Memory is bounded by a batch of frames plus the detection's sample, whatever the length.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .descriptor import VideoDescriptor
from .errors import ModelMismatchError, VidretError, VideoError
from .fingerprint import Sampling, fingerprint_video
from .regions import DEFAULT_FIXED, Box, GreySample, Quad, crop_frames, find_band, find_bars, find_inner_rectangles, find_screen, fixed_crops, warp_frames
from .decision import Mode, decide_query
from .search import Background, Result, SearchParams, SearchResponse, search_descriptor
from .store import Store
from .video import FrameBatch

if TYPE_CHECKING:  # the torch model's type only: importing it would import torch and timm
    from .model import FingerprintModel

__all__ = ["detect_views", "fingerprint_views", "search_views"]

# Frames the detectors look at, evenly spread over the query: enough for the temporal
# medians of several windows, and a bounded cost for long queries.
DETECT_FRAMES = 64


def _detect_sample(kept: list[np.ndarray], stride: int, frame: np.ndarray, index: int) -> int:
    """Keep every ``stride``-th frame; when more than 2 x DETECT_FRAMES are kept, drop every
    other one and double the stride: evenly spread frames of a query of unknown length, in
    bounded memory (under 2 x DETECT_FRAMES frames, all of them: what the detection saw before)."""
    if index % stride == 0:
        kept.append(frame.copy())  # not a view into the batch, which is dropped
        if len(kept) > 2 * DETECT_FRAMES:
            kept[:] = kept[::2]
            return stride * 2
    return stride


_WHOLE = Box(0.0, 0.0, 1.0, 1.0)
_SAME_VIEW = 0.8  # IoU of two views' boxes above which they show the same picture
_NEARLY_WHOLE = 0.9  # a crop's IoU with the whole frame above which it adds nothing (padding of 15 %: 0.85)


def _region_box(region: Box | Quad) -> Box:
    return region if isinstance(region, Box) else region.bounds()


def _region_frames(frames: np.ndarray, region: Box | Quad) -> np.ndarray:
    """A view's frames: a box is cropped, a filmed screen's quad warped onto the whole frame."""
    return crop_frames(frames, region) if isinstance(region, Box) else warp_frames(frames, region)


def detect_views(sample: np.ndarray, max_boxes: int = 2) -> list[tuple[str, Box | Quad]]:
    """The views a query shows, from evenly spread frames of it (uint8 (N, H, W, 3)), in this
    order of precedence: ``screen``, insets ``box0``, ``box1``..., ``bars``, ``band``. A
    filmed screen comes first: its picture may also pass as an inset or its dark margins as
    bars, and only its view undoes the tilt. A crop that is nearly the whole frame (thin
    black lines), or nearly a view already kept, shows the same picture: it is left out (no
    second pass for it)."""
    grey = GreySample.of(sample)  # once for all detectors
    found: list[tuple[str, Box | Quad | None]] = [("screen", find_screen(grey))]
    found += [(f"box{i}", b) for i, b in enumerate(find_inner_rectangles(grey, max_boxes=max_boxes))]
    found += [("bars", find_bars(grey)), ("band", find_band(grey))]
    views: list[tuple[str, Box | Quad]] = []
    for name, region in found:
        if region is None or (isinstance(region, Box) and region.iou(_WHOLE) >= _NEARLY_WHOLE):
            continue
        if all(_region_box(region).iou(_region_box(v)) < _SAME_VIEW for _, v in views):
            views.append((name, region))
    return views


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
    """Fingerprint the full frame and, with ``regions``, the detected views (insets, the
    picture inside bars, beside a caption band or on a filmed screen) and the fixed crops
    (``crops`` names them; ``()`` for the detected views only).

    The full view is :func:`~vidret_milvus.fingerprint.fingerprint_video` itself (decoding
    overlapped with the model); each decoded batch also gives the fixed crops' embeddings and
    the frames the detectors look at (up to :data:`DETECT_FRAMES`, evenly spread), so memory
    stays bounded for any length of query. Only when a view is detected is the video decoded
    a second time, to embed its frames (they must come out at the same times). A query
    without any costs the full view plus the detection (a few ms per frame).
    """
    fixed = fixed_crops(crops) if regions else []
    crop_parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name, _ in fixed}
    kept: list[np.ndarray] = []
    state = {"stride": 1, "seen": 0}

    def on_batch(batch: FrameBatch) -> None:
        for name, box in fixed:
            crop_parts[name].append(model.embed_frames(crop_frames(batch.frames, box), batch_size=sampling.batch_size))
        if regions:
            for f in batch.frames:
                state["stride"] = _detect_sample(kept, state["stride"], f, state["seen"])
                state["seen"] += 1

    full = fingerprint_video(path, model, sampling, video_id=video_id, on_batch=on_batch)
    named_boxes: list[tuple[str, Box | Quad]] = []
    if regions and kept:
        pick = np.unique(np.linspace(0, len(kept) - 1, min(len(kept), DETECT_FRAMES)).round().astype(np.int64))
        named_boxes = detect_views(np.stack([kept[i] for i in pick]), max_boxes=max_boxes)
    kept.clear()  # the detection is done: free the sample
    for name, _ in named_boxes:
        crop_parts[name] = []
    if named_boxes:  # second decode: the detected views' frames, frame for frame the first decode's
        n = 0
        with contextlib.closing(sampling.decode(full.path, model.config.resize_size)) as batches:
            for batch in batches:
                if not np.array_equal(batch.timestamps.astype(np.float32), full.timestamps[n : n + len(batch)]):
                    raise VideoError(full.path, "a second decode gave other frames than the first (the file changed while it was searched?)")
                n += len(batch)
                for name, region in named_boxes:
                    crop_parts[name].append(model.embed_frames(_region_frames(batch.frames, region), batch_size=sampling.batch_size))
        if n != full.num_frames:
            raise VideoError(full.path, f"a second decode gave {n} frames, the first {full.num_frames} (the file changed while it was searched?)")

    views: list[tuple[str, VideoDescriptor]] = [("full", full)]
    for name in [*(n for n, _ in named_boxes), *(n for n, _ in fixed)]:
        views.append((name, dataclasses.replace(full, embeddings=np.concatenate([e for e, _ in crop_parts[name]]),
                                                codes=np.concatenate([c for _, c in crop_parts[name]]).reshape(-1, full.codes.shape[1]))))
    return views


def _strength(r: Result, params: SearchParams) -> tuple[float, ...]:
    """Which view's result of one reference is kept. Mode 2: its confident seconds (segment
    evidence), then its best frame, not the calibrated p: a calibration is fitted on the
    candidates this choice makes (benchmarks/tune_thresholds.py), so the choice must not
    depend on it. Other modes: the mode's score."""
    ev = r.evidence_detail
    if params.mode is Mode.duration and ev is not None:
        return (round(ev.weighted_seconds, 9), round(ev.best_frame_similarity, 9))
    return (r.score,)


def search_views(store: Store, views: list[tuple[str, VideoDescriptor]], params: SearchParams = SearchParams(),
                 background: Background | None = None, own_video_ids: Collection[int] = ()) -> SearchResponse:
    """Search every view and merge per reference video: the view whose result is strongest on
    its own wins (:func:`_strength`), with the best similarity of any view at each query frame; the query context
    (``decision.decide_query``) is then applied once over the merged candidates, so that every
    view's scores stay on one scale (a crop recalling few candidates would otherwise look
    unrivalled). ``background`` and ``own_video_ids`` as in ``search.search_descriptor`` (one
    background for every view: they are frames of the same query).

    Each result says which view found it (``Result.view``); timings are summed over views
    (plus ``"view_<name>"``: each view's own total); candidate frames are summed (the work
    done), candidate videos counted once over all views, with the per-view counts kept.
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
        resp = search_descriptor(store, desc, params, background, own_video_ids=own_video_ids, _context=False)
        first = first or resp
        for key, ms in resp.timing_ms.items():
            timing[key] = timing.get(key, 0.0) + ms
        timing[f"view_{name}"] = sum(resp.timing_ms.values())
        per_view_cand[name] = resp.candidates
        for r in resp.results:
            # Scored alone, every view's candidates compare (same store, same settings); the
            # earlier view (full first) keeps a tie.
            if r.video_id not in best or _strength(r, params) > _strength(best[r.video_id], params):
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
        "videos": len(best),  # distinct: the views of one query recall the same videos
        "capped": any(c["capped"] for c in per_view_cand.values()),
        "rerank_frames": sum(c.get("rerank_frames", 0) for c in per_view_cand.values()),
        "views": per_view_cand,
    }
    return SearchResponse(
        query=first.query, query_duration=first.query_duration, results=results, timing_ms=timing,
        candidates=candidates, decision={"model_id": meta.model_id, **first.decision, "views": [n for n, _ in views]},
    )
