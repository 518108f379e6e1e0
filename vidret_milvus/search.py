"""The retrieval pipeline: category recall (Hamming) -> re-rank (L2) -> decide + localise.

Patent modes for the copy decision:
  1. ``embedding``: a candidate is a copy when its nearest texture-embedding distance to a
     query frame is under ``embedding_threshold``;
  2. ``duration``: from the time-aligned segments (:mod:`vidret_milvus.decision`): a copy
     when the calibrated confidence ``p`` reaches ``copy_threshold`` and the best segment
     lasts ``min_copy_seconds``, or (``repetition_rule``, the patent's rule) when the content
     repetition degree (matched duration / duration of the shorter video) reaches
     ``duration_threshold``; the score is ``p``, whose meaning does not depend on the query's
     length. The repetition degree is still reported;
  3. ``codes``: when the duration covered by equal codes / duration of the shorter video
     reaches ``codes_threshold``.

Two refinements of the frame similarities that the alignment (segments, mode 2) uses:

* **Common frames are down-weighted** (``common_frame_videos``, on by default). A query frame
  that the category recall finds in many different candidate videos (black, white, a logo,
  a title card) says little about which video was copied. Per query frame, with ``n`` the
  number of distinct candidate videos its codes recall and ``k`` = ``common_frame_videos``:
  ``weight = min(1, log2(1 + k) / log2(1 + n))`` (1 up to k videos; 0.5 at n = k^2 + 2k for
  k = 4, i.e. 24 videos; ~0.23 at 1000). The weight scales the frame's matches in the
  temporal alignment, its share of the repetition degree (each matched query second
  counts ``weight`` seconds) and the confidence of the segments covering it, so a clip
  matched only through black frames and logos is not a copy. Segment ``score`` stays the
  plain mean similarity.
* **Background normalisation** (VSC22 style, ``background_beta``, off by default): each
  frame similarity becomes ``s - beta * s_bg`` where ``s_bg`` is the query frame's similarity
  to its ``background_k``-th nearest background frame, excluding frames of the candidate
  video itself. The background is a ``.npy`` matrix of unit embeddings
  (``background_path``), or else a seeded random sample of ``background_size`` stored frames
  (drawn as frame ids the package generated, cached per store until the stored videos
  change). Frames that look like everything (generic scenery, black) lose more than
  distinctive ones. With ``beta > 0`` the segment scores and ``align.min_score`` are on the
  normalised scale: lower ``min_score`` to match (the benchmark reports tuned pairs). The
  segment confidence of mode 2 then measures scores against ``1 - beta * background_default``
  (identical frames against the model's typical background) instead of 1.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import numpy as np

from .decision import (  # noqa: F401  (SearchParams, Result, Mode, ... are this module's API too)
    RERANK_SCOPES,
    Calibration,
    Matches,
    Mode,
    Result,
    SearchParams,
    common_frame_weights,
    confidence_ceiling,
    decide_query,
    decision_settings,
    l2_to_similarity,
    score_candidate,
)
from .descriptor import VideoDescriptor
from .errors import VidretError
from .fingerprint import Sampling, fingerprint_video
from .ids import MAX_FRAMES, MAX_LIMIT, frame_ids_at, window_frame_ids
from .regions import QueryViews
from .store import READY, FrameHits, Store, StoreMeta, VideoRow

if TYPE_CHECKING:  # the torch model's type only: importing it would import torch and timm
    from .model import FingerprintModel


@dataclasses.dataclass
class SearchResponse:
    query: str
    query_duration: float
    results: list[Result]
    timing_ms: dict[str, float]
    candidates: dict[str, Any]
    # What decided "copy": the model and the settings in force (an audit trail for a reviewer).
    decision: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "query_duration": round(self.query_duration, 3),
            "results": [r.to_json() for r in self.results],
            "timing_ms": {k: round(v, 1) for k, v in self.timing_ms.items()},
            "candidates": self.candidates,
            "decision": self.decision,
        }


@dataclasses.dataclass
class Background:
    """Background frames for score normalisation: unit embeddings and their video ids (-1: none)."""

    embeddings: np.ndarray  # (M, D) float32
    video_ids: np.ndarray  # (M,) int64

    @classmethod
    def load(cls, path: str | Path) -> "Background":
        """Read a .npy background (cached per file version: search loads it on every query)."""
        try:
            st = Path(path).stat()
        except OSError as exc:
            raise VidretError(f"{path}: cannot read background embeddings: {exc}") from None
        key = ("file", str(Path(path).resolve()), st.st_mtime_ns, st.st_size)
        hit = _BACKGROUND_CACHE.get(key)
        if hit is not None:
            return hit
        return _cache_background(key, cls._read(path))

    @classmethod
    def _read(cls, path: str | Path) -> "Background":
        try:
            emb = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise VidretError(f"{path}: cannot read background embeddings: {exc}") from None
        if emb.ndim != 2 or not np.issubdtype(emb.dtype, np.floating) or not np.all(np.isfinite(emb)):
            raise VidretError(f"{path}: background must be a finite (M, D) float matrix")
        emb = emb.astype(np.float32)
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return cls(emb, np.full(len(emb), -1, np.int64))

    def similarity(self, query: np.ndarray, k: int = 1, depth: int = 32) -> "BackgroundSimilarity":
        """The query frames' top ``depth`` background similarities, for :meth:`BackgroundSimilarity.kth`."""
        if len(self.embeddings) == 0:
            z = np.zeros((len(query), 0))
            return BackgroundSimilarity(z, np.zeros((len(query), 0), np.int64), k, frozenset())
        if query.shape[1] != self.embeddings.shape[1]:
            raise VidretError(f"background embeddings have dim {self.embeddings.shape[1]}, the query {query.shape[1]}")
        sims = np.asarray(query, np.float32) @ self.embeddings.T  # (Q, M) cosine: both unit length
        m = min(depth + k, sims.shape[1])
        top = np.argpartition(-sims, m - 1, axis=1)[:, :m]
        vals = np.take_along_axis(sims, top, 1)
        order = np.argsort(-vals, axis=1, kind="stable")
        return BackgroundSimilarity(np.take_along_axis(vals, order, 1).astype(np.float64), self.video_ids[np.take_along_axis(top, order, 1)], k,
                                    frozenset(np.unique(self.video_ids).tolist()))


@dataclasses.dataclass
class BackgroundSimilarity:
    values: np.ndarray  # (Q, m) descending
    video_ids: np.ndarray  # (Q, m)
    k: int
    all_videos: frozenset[int]  # every video id in the background (-1: frames of no stored video)

    def kth(self, exclude_video: int | None = None, default: float = 0.0) -> np.ndarray:
        """Per query frame, the k-th highest background similarity, skipping frames of
        ``exclude_video`` (the candidate being scored: its own frames are no background).
        ``default`` when there is no background apart from the candidate itself."""
        q, m = self.values.shape
        if m == 0 or (exclude_video is not None and self.all_videos <= {exclude_video}):
            return np.full(q, float(default))
        vals = self.values
        if exclude_video is not None:
            vals = np.where(self.video_ids == exclude_video, -np.inf, vals)
            vals = -np.sort(-vals, axis=1)
        col = min(self.k, m) - 1
        out = vals[:, col]
        # All of the top entries excluded: the deepest kept value is an upper bound.
        return np.where(np.isfinite(out), out, self.values[:, -1])


def background_similarity(query: np.ndarray, background: np.ndarray, k: int = 1) -> np.ndarray:
    """Per query frame, the cosine similarity to its k-th nearest background frame.

    ``query`` (Q, D) and ``background`` (M, D) are unit-length embeddings (rows); the
    VSC22-style normalised similarity of a match is then ``s - beta * result[query_frame]``.
    """
    bg = Background(np.asarray(background, np.float32), np.full(len(background), -1, np.int64))
    return bg.similarity(np.asarray(query, np.float32), k).kth()


_BACKGROUND_CACHE: dict[tuple[Any, ...], Background] = {}


def _cache_background(key: tuple[Any, ...], bg: Background) -> Background:
    """Remember ``bg`` under ``key`` (a few entries at most: one per store or file in use)."""
    if len(_BACKGROUND_CACHE) > 8:
        _BACKGROUND_CACHE.clear()
    _BACKGROUND_CACHE[key] = bg
    return bg


def sample_background(store: Store, size: int = 5000, seed: int = 0) -> Background:
    """A seeded uniform sample of ``size`` stored frames (of ready videos) with their video ids.

    Frame ids are built from the stored video ids and frame counts (never from user text);
    the sample is cached until the set of stored videos changes.
    """
    # Two integer fields of every ready video, read by id ranges (any number of videos).
    rows = sorted(store.video_frame_counts(READY).items())
    key = (store.uri, store.prefix, size, seed, tuple(rows))
    hit = _BACKGROUND_CACHE.get(key)
    if hit is not None:
        return hit
    counts = np.array([n for _, n in rows], np.int64)
    total = int(counts.sum())
    if total == 0:
        meta = store.meta()
        return Background(np.zeros((0, meta.embed_dim if meta is not None else 0), np.float32), np.zeros(0, np.int64))
    rng = np.random.default_rng(seed)
    pos = np.sort(rng.choice(total, size=min(size, total), replace=False))
    owner = np.searchsorted(np.cumsum(counts), pos, side="right")
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    vids = np.array([v for v, _ in rows], np.int64)[owner]
    embs, got_vids = store.frame_embeddings(frame_ids_at(vids, pos - starts[owner]))
    return _cache_background(key, Background(embs, got_vids))


def _rows_by_video(video_ids: np.ndarray) -> dict[int, np.ndarray]:
    """{video id: indices of its hits, in hit order}: one sort instead of a mask per candidate."""
    order = np.argsort(video_ids, kind="stable")
    uniq, starts = np.unique(video_ids[order], return_index=True)
    bounds = np.r_[starts, len(order)]
    return {int(v): order[bounds[i] : bounds[i + 1]] for i, v in enumerate(uniq.tolist())}


def code_votes(query_times: np.ndarray, hits: FrameHits, tolerance: float) -> dict[int, tuple[int, int]]:
    """Per recalled video: (coherent votes, hits). Coherent votes: the most distinct query
    frames whose code hits in that video fall in one window of time offsets (reference time -
    query time), the code stage's own temporal vote; a copy lines its frames up, a look-alike
    that shares a few codes by chance does not. Offsets are binned ``tolerance`` wide and each
    hit votes in the window of its bin and of the bin before: windows are 2 x ``tolerance``
    wide on a fixed grid, and any two hits whose offsets differ by at most ``tolerance`` share
    one. Numpy only, one sort of packed integer keys: a query recalls up to frames x
    recall_limit hits."""
    if len(hits.video_ids) == 0:
        return {}
    off = hits.t.astype(np.float64) - query_times[hits.query_index]
    b = np.floor(off / tolerance).astype(np.int64)  # tolerance > 0: SearchParams checks it
    vids, vinv, nhits = np.unique(hits.video_ids, return_inverse=True, return_counts=True)
    w = np.r_[b, b - 1] - (int(b.min()) - 1)  # windows from 0
    nw, nq = int(w.max()) + 1, int(hits.query_index.max()) + 1
    if len(vids) * nw * nq >= 2**62:  # offsets too spread to pack: sort the triples instead
        keys = np.unique(np.stack([np.r_[vinv, vinv], w, np.r_[hits.query_index, hits.query_index]]), axis=1)
        vw = keys[0] * nw + keys[1]
    else:
        # sort + run starts, not np.unique: numpy 2.4's unique of 600k int64 took 30x longer here
        packed = np.sort((np.r_[vinv, vinv].astype(np.int64) * nw + w) * nq + np.r_[hits.query_index, hits.query_index])
        vw = packed[np.r_[True, packed[1:] != packed[:-1]]] // nq  # one per distinct (video, window, query frame), sorted
    # runs of equal (video, window) in the sorted entries: distinct query frames per window
    starts = np.flatnonzero(np.r_[True, vw[1:] != vw[:-1]])
    per_win = np.diff(np.r_[starts, len(vw)])
    vid_of = vw[starts] // nw  # sorted too: the best window per video is a reduceat
    first = np.flatnonzero(np.r_[True, vid_of[1:] != vid_of[:-1]])
    best = np.zeros(len(vids), np.int64)
    best[vid_of[first]] = np.maximum.reduceat(per_win, first)
    return {int(v): (int(c), int(n)) for v, c, n in zip(vids.tolist(), best.tolist(), nhits.tolist())}


def select_candidates(query_times: np.ndarray, recall: FrameHits, params: SearchParams) -> list[int]:
    """The videos the code stage sends to the re-rank: those with at least
    ``params.min_code_votes`` coherent votes (:func:`code_votes`), most votes first (then most
    hits, then the lower id), at most ``params.max_candidates``."""
    votes = code_votes(query_times, recall, params.vote_tolerance_s)
    keep = [v for v, (c, _) in votes.items() if c >= params.min_code_votes]
    return sorted(keep, key=lambda v: (-votes[v][0], -votes[v][1], v))[: params.max_candidates]


def rerank_frame_ids(recall: FrameHits, cand: list[int], videos: dict[int, VideoRow], window: int) -> np.ndarray:
    """Frame ids the window re-rank searches: per candidate video, every stored frame within
    ``window`` frames of a frame the code stage recalled (sorted, unique). Built only from the
    ids the store returned and the frame counts of its video rows."""
    keep = np.isin(recall.video_ids, np.asarray(cand, np.int64))
    return window_frame_ids(recall.ids[keep], {v: videos[v].frames for v in cand}, window)


def search_descriptor(
    store: Store, query: VideoDescriptor, params: SearchParams = SearchParams(), background: Background | None = None,
    own_video_ids: Collection[int] = (), _context: bool = True,
) -> SearchResponse:
    """Run the pipeline for an already fingerprinted query.

    ``background`` overrides where the normalisation background comes from (used only when
    ``params.background_beta > 0``). ``own_video_ids``: stored videos that are the query's
    own file (``search_video`` finds them): no rival in the query context. ``_context`` False (views.py): every candidate, scored
    alone, not cut to ``top_n``; the caller applies the context (``decision.decide_query``).
    """
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    interval = 1.0 / query.fps
    # 1. category recall
    recall = store.range_search_codes(query.codes, radius=params.radius, limit=params.recall_limit)
    ranked = select_candidates(query.timestamps, recall, params)
    videos = store.get_videos(ranked, ready_only=True)  # never a half-ingested video
    cand = [v for v in ranked if v in videos]
    t1 = time.perf_counter()
    timing["recall"] = (t1 - t0) * 1e3
    # 2. re-rank on the mapping table, filtered to the candidates (their frames around the
    # recalled ones, or all their frames)
    limit = min(MAX_LIMIT, max(16, params.rerank_per_video * len(cand)))
    if not cand:
        rer, rerank_frames = FrameHits.empty(query.num_frames), 0
    elif params.rerank_scope == "window":
        scope = rerank_frame_ids(recall, cand, videos, int(np.ceil(params.rerank_window_s * query.fps - 1e-9)))
        rer, rerank_frames = store.search_embeddings(query.embeddings, cand, limit, frame_ids=scope), len(scope)
    else:
        rer, rerank_frames = store.search_embeddings(query.embeddings, cand, limit), sum(videos[v].frames for v in cand)
    t2 = time.perf_counter()
    timing["rerank"] = (t2 - t1) * 1e3
    # 3. decide and localise, per candidate video
    results = []
    qts = query.timestamps
    in_cand = np.isin(recall.video_ids, np.asarray(cand, np.int64))
    fweight = common_frame_weights(recall.query_index[in_cand], recall.video_ids[in_cand], query.num_frames, params.common_frame_videos)
    bgsim = None
    if params.background_beta > 0 and cand:
        if background is None:
            background = Background.load(params.background_path) if params.background_path else sample_background(store, params.background_size, params.background_seed)
        bgsim = background.similarity(query.embeddings, params.background_k)
    rer_of, recall_of = _rows_by_video(rer.video_ids), _rows_by_video(recall.video_ids)
    none = np.zeros(0, np.int64)
    for vid in cand:
        row: VideoRow = videos[vid]
        m, rm = rer_of.get(vid, none), recall_of.get(vid, none)
        results.append(score_candidate(
            params, video_id=vid, path=row.path, duration=row.duration, query_times=qts, query_duration=query.duration,
            frame_interval=interval, rerank=Matches(rer.query_index[m], rer.t[m], rer.distance[m]),
            codes=Matches(recall.query_index[rm], recall.t[rm], recall.distance[rm]), frame_weights=fweight,
            background=bgsim.kth(exclude_video=vid, default=params.background_default) if bgsim is not None else None,
        ))
    # Each candidate against the query's others, except the query's own file when a stored
    # video is searched (it matches every frame perfectly and would push its copies down).
    if _context:
        own = set(own_video_ids)
        results = decide_query(params, results, compete=[v not in own for v in cand])
    # Ties broken by video id so that the order is deterministic.
    results.sort(key=lambda r: (-r.score, r.video_id))
    t3 = time.perf_counter()
    timing["align"] = (t3 - t2) * 1e3
    return SearchResponse(
        query=query.path,
        query_duration=query.duration,
        results=results[: params.top_n] if _context else results,
        timing_ms=timing,
        candidates={"frames": int(len(recall.ids)), "videos": len(cand), "capped": bool(recall.capped.any()), "rerank_frames": int(rerank_frames)},
        decision=decision_settings(params),
    )


# Shipped models a store may have been made with: a store from before a default change names
# the checkpoint to pass instead of only refusing.
# The first word of a label is the folder under vidret_milvus/models/ (tests check the ids).
_KNOWN_MODELS = {"vm-ce433d093d6185e6": "lite0 (the default before 2026-12-03)", "vm-049a04652c81059f": "patent_v1",
                 "vm-c50cb323564f0e4f": "sscd_distilled (the default until 2026-12-04, session 14; 288 px)",
                 "vm-27e9577875f81748": "sscd_distilled_224 (the default of 2026-12-04, session 14; identity texture head)",
                 "vm-bab67a25d21a70cf": "sscd_distilled_256 (256-bit codes)", "vm-4fb3ad94637a396a": "sscd_ensemble (SSCD + student)",
                 "vm-ad393d84bec4c4ff": "sscd_whitened (the default from 2026-12-04, session 15; whitened texture head)"}


def check_store(store: Store, model: FingerprintModel) -> StoreMeta:
    """The store's metadata, once it is known to hold codes of ``model``: a batch of queries
    checks this once, so a wrong store or model fails the batch instead of every clip."""
    meta = store.meta()
    if meta is None:
        raise VidretError(f"{store.uri}: nothing ingested yet (no collections with prefix {store.prefix!r})")
    if meta.model_id != getattr(model, "model_id", None):
        from .errors import ModelMismatchError

        raise ModelMismatchError(
            f"store holds codes of model {meta.model_id}; the model in use is {getattr(model, 'model_id', '?')}"
            + (f" (the store was made with {_KNOWN_MODELS[meta.model_id]}: pass --checkpoint vidret_milvus/models/{_KNOWN_MODELS[meta.model_id].split()[0]})"
               if meta.model_id in _KNOWN_MODELS else " (search with the model the store was ingested with, or ingest into another --prefix)"))
    return meta


def saved_query(path: str | Path, meta: StoreMeta) -> VideoDescriptor:
    """A saved descriptor (``fingerprint --out``) as a query: it must come from the store's
    model and sampling rate, or its codes and timestamps mean something else."""
    return _checked_saved(VideoDescriptor.load(path), path, meta)


def _checked_saved(desc: VideoDescriptor, path: str | Path, meta: StoreMeta) -> VideoDescriptor:
    if desc.model_id != meta.model_id:
        from .errors import ModelMismatchError

        raise ModelMismatchError(f"{path}: descriptor of model {desc.model_id or '?'}; the store holds codes of model {meta.model_id}")
    if not meta.keyframes and abs(desc.fps - meta.fps) > 1e-6:
        raise VidretError(f"{path}: descriptor sampled at {desc.fps:g} fps; the store's videos at {meta.fps:g} fps")
    if desc.dim != meta.embed_dim:  # a file that claims the model id but not its shape
        raise VidretError(f"{path}: descriptor embeddings are {desc.dim}-d; the store's model makes {meta.embed_dim}-d")
    if desc.code_bits != meta.code_bits:
        raise VidretError(f"{path}: descriptor codes have {desc.code_bits} bits; the store's model makes {meta.code_bits}-bit codes")
    if not 0 < desc.num_frames <= MAX_FRAMES:
        raise VidretError(f"{path}: descriptor has {desc.num_frames} frames (1 to {MAX_FRAMES} can be searched)")
    return dataclasses.replace(desc, path=str(path))


def _own_video_ids(store: Store, path: str | Path, source: str | None) -> set[int]:
    """Stored videos that are the query's own file, by one rule for every caller: the same
    content (sha256 of the clip; a symlink, a hard link or a byte-identical copy elsewhere
    counts too) or, for a saved descriptor, the clip it was made from (by path)."""
    from .ingest import sha256_file  # ingest builds on the store, not on search

    own: set[int] = set()
    try:
        if source is not None:
            own |= {row.video_id for row in store.find_by_path(os.path.abspath(source))}
        else:
            row = store.find_by_sha(sha256_file(path))
            if row is not None:
                own.add(row.video_id)
    except OSError:  # unreadable: fingerprinting says why
        pass
    return own


def search_video(
    store: Store, model: FingerprintModel, path: str | Path, params: SearchParams | None = None, background: Background | None = None,
    views: QueryViews = QueryViews.insets, own_video_ids: Collection[int] = (),
) -> SearchResponse:
    """Fingerprint a query clip with the store's own sampling and search it (``params``:
    default the thresholds tuned for ``model``: ``SearchParams.for_model(thresholds_for(model))``).

    ``views`` (views.py): ``insets`` (default) also searches the views the query shows
    (picture-in-picture insets, the picture inside bars or beside a caption band, a filmed
    screen warped back), which costs the detection (a few ms per frame) and, only when one is
    found, a second decode and one more model pass per view; ``all`` adds a centre
    crop (camcorder copies, crops) always; ``full`` searches the whole frame alone. Views are
    merged per reference. A saved descriptor (.npz) is searched as it is (``views`` does not
    apply). ``own_video_ids``: stored videos known to be the query's
    very file (e.g. by its sha256): marked ``self_match`` and no rival in the query context.
    """
    if params is None:
        from .model.settings import thresholds_for

        params = SearchParams.for_model(thresholds_for(model))
    views = QueryViews(views)  # a plain "insets" works too
    meta = check_store(store, model)
    t0 = time.perf_counter()
    sampling = Sampling(fps=meta.fps, keyframes=meta.keyframes)
    if str(path).lower().endswith(".npz"):  # a descriptor saved by `fingerprint --out`: searched as it is
        loaded = VideoDescriptor.load(path)
        desc = _checked_saved(loaded, path, meta)  # saved_query: named after the .npz
        own_video_ids = set(own_video_ids) | _own_video_ids(store, path, loaded.path or None)  # the clip it was made from
        t1 = time.perf_counter()
        resp = search_descriptor(store, desc, params, background, own_video_ids=own_video_ids)
    elif views is not QueryViews.full:
        from .views import fingerprint_views, search_views  # views builds on this module

        own_video_ids = set(own_video_ids) | _own_video_ids(store, path, None)
        found = fingerprint_views(path, model, sampling, crops=views.crops)
        t1 = time.perf_counter()
        if len(found) == 1:  # no detected view: the plain search (the same result, without the merge)
            resp = search_descriptor(store, found[0][1], params, background, own_video_ids=own_video_ids)
        else:
            resp = search_views(store, found, params, background, own_video_ids=own_video_ids)
            resp.decision.pop("model_id", None)
    else:
        own_video_ids = set(own_video_ids) | _own_video_ids(store, path, None)
        desc = fingerprint_video(path, model, sampling)
        t1 = time.perf_counter()
        resp = search_descriptor(store, desc, params, background, own_video_ids=own_video_ids)
    resp.decision = {"model_id": meta.model_id, **resp.decision}
    resp.decision.setdefault("views", ["full"])  # what of the query's frames was searched
    resp.timing_ms = {"fingerprint": (t1 - t0) * 1e3, **resp.timing_ms}
    for r in resp.results:  # a stored video searched finds itself: say so, a reviewer skips it
        r.self_match = r.video_id in own_video_ids
    resp.timing_ms["total"] = (time.perf_counter() - t0) * 1e3
    return resp


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file (by inode; by absolute path when either is gone)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)
