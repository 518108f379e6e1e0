"""The videos table and writing: rows, lookups by sha / path / id ranges, add and delete."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ..descriptor import VideoDescriptor
from ..errors import ModelMismatchError, StoreError
from ..ids import MAX_LIMIT, VIDEO_ID_BITS, check_sha, frame_ids, path_key, video_id_from_sha
from .base import ID_CHUNK, INGESTING, INSERT_CHUNK, READY, VIDEO_PAGE, VideoRow, _chunks, _int_list, in_filter


class VideosMixin:
    """Video rows and their frames (part of :class:`~vidret_milvus.store.Store`)."""

    _VIDEO_FIELDS = ["video_id", "path", "sha256", "duration", "fps", "frames", "model_id", "status", "updated_at"]

    # ------------------------------------------------------------------ videos table
    def _rows_to_videos(self, rows: Iterable[dict[str, Any]]) -> list[VideoRow]:
        return [
            VideoRow(
                video_id=int(r["video_id"]), path=str(r["path"]), sha256=str(r["sha256"]), duration=float(r["duration"]),
                fps=float(r["fps"]), frames=int(r["frames"]), model_id=str(r["model_id"]), status=str(r["status"]),
                updated_at=int(r["updated_at"]),
            )
            for r in rows
        ]

    def get_videos(self, video_ids: Iterable[int], ready_only: bool = True) -> dict[int, VideoRow]:
        ids = sorted(set(_int_list(video_ids)))
        out: dict[int, VideoRow] = {}
        for chunk in _chunks(ids, ID_CHUNK):
            expr = in_filter("video_id", chunk) + (f' and status == "{READY}"' if ready_only else "")
            rows = self._call("query", self.client.query, self.videos, filter=expr, output_fields=self._VIDEO_FIELDS, limit=len(chunk), **self.read_kw())
            out.update({v.video_id: v for v in self._rows_to_videos(rows)})
        return out

    def _slot_for_sha(self, sha256: str) -> tuple[int, VideoRow | None]:
        """(video id, stored row) for this file content: the first probed id that is free or
        already holds the same sha256 (ids are 47 bits of the hash, collisions probed)."""
        check_sha(sha256)
        for probe in range(8):
            vid = video_id_from_sha(sha256, probe)
            row = self.get_videos([vid], ready_only=False).get(vid)
            if row is None or row.sha256 == sha256:
                return vid, row
        raise StoreError("too many video id collisions")

    def find_by_sha(self, sha256: str) -> VideoRow | None:
        """The video stored for this file content (any status)."""
        return self._slot_for_sha(sha256)[1]

    def free_video_id(self, sha256: str) -> int:
        """The id this file content is (or would be) stored under."""
        return self._slot_for_sha(sha256)[0]

    def find_by_path(self, path: str) -> list[VideoRow]:
        key = path_key(path)
        rows = self._call("query", self.client.query, self.videos, filter=f"path_key == {int(key)}", output_fields=self._VIDEO_FIELDS, limit=100, **self.read_kw())
        return [v for v in self._rows_to_videos(rows) if v.path == path]

    def list_videos(self, status: str | None = None, limit: int | None = None) -> list[VideoRow]:
        """Every stored video (of ``status``), or the first ``limit`` by video id.

        Milvus returns at most 16,384 rows per query, so the rows are read by video id ranges
        (:meth:`iter_video_rows`): a store of 100k videos lists completely."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0):
            raise StoreError(f"limit must be a non-negative integer, got {limit!r}")
        rows = self._rows_to_videos(self.iter_video_rows(status, self._VIDEO_FIELDS))
        rows.sort(key=lambda v: v.video_id)
        return rows if limit is None else rows[: int(limit)]

    def video_frame_counts(self, status: str | None = READY) -> dict[int, int]:
        """{video id: stored frames} of every video (of ``status``): two integer fields only, so
        cheap to read for a large store (the background sample's cache key)."""
        return {int(r["video_id"]): int(r["frames"]) for r in self.iter_video_rows(status, ["video_id", "frames"])}

    def iter_video_rows(self, status: str | None = None, fields: Sequence[str] | None = None, page: int = VIDEO_PAGE) -> Iterable[dict[str, Any]]:
        """The videos table's rows (of ``status``), page by page: the id space [1, 2^47) is cut
        into ranges of about ``page`` rows each (ids are uniform hashes; a range that fills a
        page is halved and read again), so no query reaches Milvus' 16,384-row limit. The
        filters hold only the status constants and integers made here."""
        if status not in (None, READY, INGESTING):
            raise StoreError(f"unknown status {status!r}")
        if not 1 <= int(page) < MAX_LIMIT:
            raise StoreError(f"page must be in [1, {MAX_LIMIT})")
        fields = list(fields or self._VIDEO_FIELDS)
        if any(f not in self._VIDEO_FIELDS for f in fields):
            raise StoreError(f"unknown video fields {fields!r}")
        base = f'status == "{status}" and ' if status else ""
        total = self.count(self.videos, base + "video_id > 0")
        if total == 0:
            return
        top = 1 << VIDEO_ID_BITS  # ids are in [1, 2^47)
        n = max(1, -(-total * 2 // int(page)))  # ~page/2 rows expected per range
        bounds = [1 + (top - 1) * i // n for i in range(n + 1)]
        todo = list(zip(bounds[:-1], bounds[1:]))[::-1]
        while todo:
            lo, hi = todo.pop()
            expr = base + f"video_id >= {int(lo)} and video_id < {int(hi)}"
            rows = self._call("query", self.client.query, self.videos, filter=expr, output_fields=fields, limit=int(page), **self.read_kw())
            if len(rows) >= int(page) and hi - lo > 1:
                mid = (lo + hi) // 2  # maybe more than a page here: read both halves instead
                todo += [(mid, hi), (lo, mid)]
                continue
            yield from rows

    # ------------------------------------------------------------------ writing
    def add_video(self, desc: VideoDescriptor, sha256: str) -> int:
        """Store a whole video: row 'ingesting' first, then frames, then the row 'ready'.

        A crash at any point leaves either nothing or an 'ingesting' row that search never
        returns and :meth:`remove_incomplete` deletes (with its frames) on the next start.
        """
        meta = self.meta(fresh=True)
        if meta is None:
            raise StoreError("collections do not exist: call ensure_collections first")
        check_sha(sha256)
        if desc.model_id and desc.model_id != meta.model_id:
            raise ModelMismatchError(f"{desc.path}: fingerprinted with model {desc.model_id}, store holds {meta.model_id}")
        if desc.dim != meta.embed_dim or desc.codes.shape[1] * 8 != meta.code_bits:
            raise StoreError(f"{desc.path}: descriptor dims ({desc.dim}, {desc.codes.shape[1] * 8} bits) do not fit the store ({meta.embed_dim}, {meta.code_bits})")
        if desc.num_frames == 0:
            raise StoreError(f"{desc.path}: no frames to store")
        vid = desc.video_id or self.free_video_id(sha256)
        ids = frame_ids(vid, desc.num_frames)
        mean = desc.embeddings.mean(0)
        mean = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
        row = {
            "video_id": vid, "path": desc.path, "path_key": path_key(desc.path), "sha256": sha256,
            "duration": float(desc.duration), "fps": float(desc.fps), "frames": int(desc.num_frames),
            "model_id": meta.model_id, "status": INGESTING, "updated_at": int(time.time()), "mean_embedding": mean.tolist(),
        }
        if len(desc.path.encode("utf-8", "surrogateescape")) > 4096:
            raise StoreError(f"{desc.path[:200]}...: path longer than 4096 bytes")
        self._call("upsert", self.client.upsert, self.videos, [row])
        ts = desc.timestamps.astype(np.float32)
        for s in range(0, desc.num_frames, INSERT_CHUNK):
            e = slice(s, s + INSERT_CHUNK)
            # upsert (not insert): re-running after a crash must not create duplicate rows.
            self._call("upsert", self.client.upsert, self.codes, [
                {"id": int(i), "video_id": vid, "t": float(t), "code": c.tobytes()}
                for i, t, c in zip(ids[e], ts[e], desc.codes[e])
            ])
            self._call("upsert", self.client.upsert, self.embeddings, [
                {"id": int(i), "video_id": vid, "t": float(t), "embedding": v}
                for i, t, v in zip(ids[e], ts[e], desc.embeddings[e])
            ])
        row["status"] = READY
        row["updated_at"] = int(time.time())
        self._call("upsert", self.client.upsert, self.videos, [row])
        return vid

    def delete_video(self, video_id: int) -> None:
        """Row first (so search stops returning it at once), then its frames."""
        (vid,) = _int_list([video_id])
        self._call("delete", self.client.delete, self.videos, filter=in_filter("video_id", [vid]))
        self._delete_frames(vid)

    def _delete_frames(self, vid: int) -> None:
        for coll in (self.codes, self.embeddings):
            self._call("delete", self.client.delete, coll, filter=in_filter("video_id", [vid]))

    def remove_incomplete(self, older_than_s: float = 0.0, select: Callable[[VideoRow], bool] | None = None) -> list[VideoRow]:
        """Delete videos that never became ready (an interrupted ingest) and their frames.

        ``select``: only those rows (a sharded ingest worker cleans up its own shard only).
        """
        now = time.time()
        stale = [v for v in self.list_videos(INGESTING) if now - v.updated_at >= older_than_s and (select is None or select(v))]
        # Frames first, then the rows (a crash in between leaves rows that the next start
        # removes again); a thousand videos per delete, so many stale rows stay cheap.
        for chunk in _chunks([v.video_id for v in stale], ID_CHUNK):
            for coll in (self.codes, self.embeddings):
                self._call("delete", self.client.delete, coll, filter=in_filter("video_id", chunk))
            self._call("delete", self.client.delete, self.videos, filter=in_filter("video_id", chunk))
        return stale

    def flush(self) -> None:
        for n in (self.codes, self.embeddings, self.videos):
            try:
                self.client.flush(n, timeout=self.timeout)
            except Exception:  # Lite has no flush on some versions; data is already durable there
                pass
