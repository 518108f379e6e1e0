"""Vector reads: Hamming range search of codes, L2 re-rank of embeddings, embeddings by frame id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..descriptor import MAX_CODE_BITS
from ..errors import StoreError
from ..ids import MAX_LIMIT
from .base import FRAME_FILTER_CHUNK, ID_CHUNK, KNN_FIRST_K, FrameHits, _chunks, _int_list, _merge_nearest, _take_hits, in_filter


class VectorsMixin:
    """Searches of the two vector collections (part of :class:`~vidret_milvus.store.Store`)."""

    # ------------------------------------------------------------------ searching
    def range_search_codes(self, codes: np.ndarray, radius: int, limit: int = MAX_LIMIT, video_ids: Sequence[int] | None = None) -> FrameHits:
        """Per query code, every stored code within Hamming distance ``radius`` (inclusive)."""
        if (not isinstance(codes, np.ndarray) or codes.dtype != np.uint8 or codes.ndim != 2
                or not 1 <= codes.shape[1] <= MAX_CODE_BITS // 8):
            raise StoreError(f"codes must be uint8 (N, code_bits / 8) with at most {MAX_CODE_BITS} bits")
        bits = codes.shape[1] * 8
        if not isinstance(radius, (int, np.integer)) or not 0 <= int(radius) <= bits:
            raise StoreError(f"radius must be an integer in [0, {bits}] (the code length), got {radius!r}")
        limit = self._check_limit(limit)
        meta = self.meta()
        if meta is None:
            raise StoreError("the store holds no vidret-milvus collections (empty, or made by something else): nothing to search")
        if meta.code_bits != bits:
            raise StoreError(f"codes of {bits} bits, but the store holds {meta.code_bits}-bit codes")
        filt = in_filter("video_id", video_ids) if video_ids is not None else ""
        data = [c.tobytes() for c in codes]
        # Milvus range search keeps range_filter <= d < radius; ours is inclusive.
        params: dict[str, Any] = {"metric_type": "HAMMING", "params": {"radius": int(radius) + 1, "range_filter": 0}}
        index, nlist = self.code_index()
        if index == "BIN_IVF_FLAT":
            guard = self.ivf_search_mode()
            if guard == "knn":
                return self._knn_within(data, int(radius), limit, filt, nlist)
            params["params"]["nprobe"] = max(1, min(nlist, 65536))
            if guard == "range":
                params["params"]["max_empty_result_buckets"] = max(1, min(nlist, 65535))
        return self._search(self.codes, "code", data, params, limit, filt)

    def _knn_within(self, data: list[Any], radius: int, limit: int, filt: str, nlist: int) -> FrameHits:
        """Recall guard for BIN_IVF_FLAT before Milvus 2.4: exhaustive kNN, radius applied here.

        nprobe = nlist visits every list, so the k nearest are exact. A query frame whose
        first ``KNN_FIRST_K`` nearest all lie within the radius may have more: it is searched
        again with k = ``limit``; one that fills ``limit`` too is marked capped.
        """
        nq = len(data)
        params = {"metric_type": "HAMMING", "params": {"nprobe": max(1, min(nlist, 65536))}}
        k0 = min(limit, KNN_FIRST_K)
        first = self._search(self.codes, "code", data, params, k0, filt)
        within = first.distance <= radius
        n_within = np.bincount(first.query_index[within], minlength=nq)
        redo = np.nonzero(n_within >= k0)[0] if k0 < limit else np.zeros(0, np.int64)
        parts = [_take_hits(first, within & ~np.isin(first.query_index, redo))]
        if len(redo):
            second = self._search(self.codes, "code", [data[i] for i in redo], params, limit, filt)
            second.query_index = redo[second.query_index]
            parts.append(_take_hits(second, second.distance <= radius))
        qi = np.concatenate([p.query_index for p in parts])
        order = np.argsort(qi, kind="stable")
        return FrameHits(
            query_index=qi[order],
            ids=np.concatenate([p.ids for p in parts])[order],
            video_ids=np.concatenate([p.video_ids for p in parts])[order],
            t=np.concatenate([p.t for p in parts])[order],
            distance=np.concatenate([p.distance for p in parts])[order],
            capped=np.bincount(qi, minlength=nq) >= limit,
        )

    def search_embeddings(self, embeddings: np.ndarray, video_ids: Sequence[int], limit: int, frame_ids: Sequence[int] | np.ndarray | None = None) -> FrameHits:
        """Per query embedding, the ``limit`` nearest stored frames (squared L2) of ``video_ids``,
        or with ``frame_ids`` of those frames only (the mapping table filtered by frame id, e.g.
        the recalled frames and their neighbours: search.rerank_frame_ids). A long id list is
        searched in parts of ``FRAME_FILTER_CHUNK`` ids whose hits are merged (the same
        ``limit`` nearest per query frame as one search)."""
        meta = self.meta()
        if not isinstance(embeddings, np.ndarray) or embeddings.dtype != np.float32 or embeddings.ndim != 2:
            raise StoreError("embeddings must be float32 (N, D)")
        if meta is not None and embeddings.shape[1] != meta.embed_dim:
            raise StoreError(f"embeddings have dim {embeddings.shape[1]}, store has {meta.embed_dim}")
        if not np.all(np.isfinite(embeddings)):
            raise StoreError("embeddings contain NaN or inf")
        limit = self._check_limit(limit)
        params = {"metric_type": "L2", "params": {}}
        data = [e.tolist() for e in embeddings]
        if frame_ids is not None:
            fids = np.unique(np.asarray(_int_list(frame_ids), np.int64))
            if len(fids) == 0:
                return FrameHits.empty(len(embeddings))
            parts = [self._search(self.embeddings, "embedding", data, params, limit, in_filter("id", chunk))
                     for chunk in _chunks(fids.tolist(), FRAME_FILTER_CHUNK)]
            return parts[0] if len(parts) == 1 else _merge_nearest(parts, len(embeddings), limit)
        ids = _int_list(video_ids)
        if not ids:
            return FrameHits.empty(len(embeddings))
        return self._search(self.embeddings, "embedding", data, params, limit, in_filter("video_id", ids))

    def _check_limit(self, limit: int) -> int:
        if not isinstance(limit, (int, np.integer)) or not 1 <= int(limit) <= MAX_LIMIT:
            raise StoreError(f"limit must be an integer in [1, {MAX_LIMIT}], got {limit!r}")
        return int(limit)

    def _search(self, coll: str, field: str, data: list[Any], params: dict[str, Any], limit: int, filt: str) -> FrameHits:
        nq = len(data)
        parts: list[tuple[np.ndarray, ...]] = []
        # Keep each request's result count (nq * limit) bounded for the gRPC message size.
        step = max(1, min(256, MAX_LIMIT * 4 // max(limit, 1)))
        for s in range(0, nq, step):
            chunk = data[s : s + step]
            raw = self._call("search", self._search_raw, coll, chunk, field, params, limit, filt) if self.raw_search else None
            counts, *cols = _parse_raw(raw, len(chunk)) if raw is not None else self._search_public(coll, chunk, field, params, limit, filt)
            parts.append((np.repeat(np.arange(s, s + len(chunk), dtype=np.int64), counts), *cols, counts >= limit))
        if not parts:
            return FrameHits.empty(nq)
        qi, ids, vids, t, dist, capped = (np.concatenate(c) for c in zip(*parts))
        return FrameHits(query_index=qi, ids=ids, video_ids=vids, t=t, distance=dist, capped=capped)

    # Searches read their hits straight from the response message with numpy: pymilvus makes a
    # dict per hit (a window re-rank and a code recall return ~5,000 hits: 30-40 ms of Python per
    # query, a tenth of a search at 1,000 h). The request is still made and sent by pymilvus;
    # raw_search = False (or a pymilvus without these internals) takes its public path.
    raw_search: bool = True

    def _search_raw(self, coll: str, data: list[Any], field: str, params: dict[str, Any], limit: int, filt: str, timeout: float | None = None) -> Any:
        """The ``SearchResultData`` message of one search (None: this pymilvus has no such path)."""
        conn_of = getattr(self.client, "_get_connection", None)
        conn = conn_of() if conn_of is not None else None
        try:
            from pymilvus.client.utils import check_status
        except ImportError:
            check_status = None
        if conn is None or check_status is None:
            self.raw_search = False
            return None
        fut = conn.search(coll, data, field, params, limit=limit, expression=filt, output_fields=list(_HIT_FIELDS),
                          timeout=timeout, _async=True, **self.read_kw())
        grpc_future = getattr(fut, "_future", None)
        if grpc_future is None:
            fut.result()  # raises what pymilvus met while making the request
            self.raw_search = False
            return None
        resp = grpc_future.result(timeout=timeout)
        check_status(resp.status)
        return resp.results

    def _search_public(self, coll: str, data: list[Any], field: str, params: dict[str, Any], limit: int, filt: str) -> tuple[np.ndarray, ...]:
        """``(hits per query, ids, video ids, t, distances)`` through pymilvus' public search."""
        res = self._call("search", self.client.search, coll, data=data, anns_field=field, search_params=params,
                         limit=limit, filter=filt, output_fields=list(_HIT_FIELDS), **self.read_kw())
        counts = np.zeros(len(data), np.int64)
        cols: dict[str, list[Any]] = {"id": [], "video_id": [], "t": [], "distance": []}
        for j, hits in enumerate(res):
            counts[j] = len(hits)
            for h in hits:
                ent = h.get("entity", h)
                cols["id"].append(h["id"])
                cols["video_id"].append(ent["video_id"])
                cols["t"].append(ent["t"])
                cols["distance"].append(h["distance"])
        return (counts, np.asarray(cols["id"], np.int64), np.asarray(cols["video_id"], np.int64),
                np.asarray(cols["t"], np.float32), np.asarray(cols["distance"], np.float32))

    def frame_embeddings(self, ids: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(embeddings (M, D) float32, video ids (M,))`` of the stored frames among ``ids``
        (frame ids made by :mod:`vidret_milvus.ids`; ids not stored are skipped), read
        ``ID_CHUNK`` ids per query."""
        fids = _int_list(ids)
        meta = self.meta()
        dim = meta.embed_dim if meta is not None else 0
        embs, vids = [], []
        for chunk in _chunks(fids, ID_CHUNK):
            res = self._call("query", self.client.query, self.embeddings, filter=in_filter("id", chunk),
                             output_fields=["embedding", "video_id"], limit=len(chunk), **self.read_kw())
            for r in res:
                embs.append(np.asarray(r["embedding"], np.float32))
                vids.append(int(r["video_id"]))
        return (np.stack(embs) if embs else np.zeros((0, dim), np.float32)), np.asarray(vids, np.int64)


_HIT_FIELDS = ("video_id", "t")  # read with each hit (its id and distance come anyway)


def _parse_raw(res: Any, nq: int) -> tuple[np.ndarray, ...]:
    """``(hits per query, ids, video ids, t, distances)`` of a ``SearchResultData`` message."""
    counts = np.zeros(nq, np.int64)
    topks = np.asarray(res.topks, np.int64)
    n = int(topks.sum())
    if n == 0:  # no hits: Milvus Lite then sends no per-query counts and no field columns
        z = np.zeros(0, np.int64)
        return counts, z, z, np.zeros(0, np.float32), np.zeros(0, np.float32)
    if len(topks) != nq:
        raise StoreError(f"Milvus search answered hit counts for {len(topks)} of {nq} query vectors")
    counts[:] = topks
    ids = np.asarray(res.ids.int_id.data, np.int64)
    dist = np.asarray(res.scores, np.float32)
    fields = {f.field_name: f for f in res.fields_data}
    if len(ids) != n or len(dist) != n or any(k not in fields for k in _HIT_FIELDS):
        raise StoreError(f"Milvus search answered {len(ids)} ids and {len(dist)} distances for {n} hits, fields {sorted(fields)}")
    vids = np.asarray(fields["video_id"].scalars.long_data.data, np.int64)
    t = np.asarray(fields["t"].scalars.float_data.data, np.float32)
    if len(vids) != n or len(t) != n:
        raise StoreError(f"Milvus search answered {len(vids)} video ids and {len(t)} times for {n} hits")
    return counts, ids, vids, t, dist
