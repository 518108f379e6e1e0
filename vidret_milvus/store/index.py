"""The codes' binary index (BIN_FLAT / BIN_IVF_FLAT) and its recall guard."""

from __future__ import annotations

import time
from typing import Any

from ..errors import StoreError


def ivf_nlist_for(rows: int) -> int:
    """BIN_IVF_FLAT list count for ``rows`` codes: ~40 rows a list, at most 1024."""
    return int(min(1024, max(1, int(rows) // 40)))


class IndexMixin:
    """The code index in use (part of :class:`~vidret_milvus.store.Store`)."""

    def _check_binary_index(self) -> None:
        if self.binary_index is None:
            return
        have, _ = self.code_index()
        if have != self.binary_index:
            raise StoreError(
                f"the codes of prefix {self.prefix!r} have a {have} index, not {self.binary_index}; the binary index is "
                "chosen when the collections are created: use another --prefix (or delete the collections) to change it"
            )

    def code_index(self) -> tuple[str, int]:
        """(index type, nlist) of the existing codes collection (cached); nlist is 0 for BIN_FLAT."""
        if self._code_index is None:
            if self.is_lite:
                self._code_index = ("BIN_FLAT", 0)
            else:
                names = self._call("list_indexes", self.client.list_indexes, self.codes, field_name="code")
                if not names:
                    raise StoreError(f"collection {self.codes} has no index on its codes")
                d = self._call("describe_index", self.client.describe_index, self.codes, names[0])
                params = d.get("params") if isinstance(d.get("params"), dict) else d
                self._code_index = (str(d.get("index_type", "")).upper(), int(params.get("nlist", 0) or 0))
        return self._code_index

    def ivf_search_mode(self) -> str:
        """How a BIN_IVF_FLAT range search keeps every neighbour within the radius.

        Before Milvus 2.4 an IVF range search loses results once the index is built, whatever
        nprobe (knowhere #454): 'knn' runs an exhaustive kNN (nprobe = nlist) and applies the
        radius here. From 2.4, 'range' is a range search with max_empty_result_buckets = nlist.
        """
        if self.ivf_guard != "auto":
            return self.ivf_guard
        v = self.server_version()
        return "range" if v is not None and v >= (2, 4, 0) else "knn"

    def index_progress(self) -> dict[str, Any]:
        """The codes index's build state and how many rows the query nodes serve sealed."""
        from pymilvus import utility
        from pymilvus.grpc_gen import common_pb2

        names = self._call("list_indexes", self.client.list_indexes, self.codes, field_name="code")
        d = self._call("describe_index", self.client.describe_index, self.codes, names[0])
        try:
            segs = utility.get_query_segment_info(self.codes, timeout=self.timeout, using=self.client._using)
        except Exception as exc:
            raise StoreError(f"Milvus get_query_segment_info failed: {exc}") from exc
        served = sum(int(g.num_rows) for g in segs if int(g.state) != common_pb2.SegmentState.Growing)
        return {
            "index_type": str(d.get("index_type", "")), "state": str(d.get("state", "")), "total_rows": int(d.get("total_rows", 0) or 0),
            "indexed_rows": int(d.get("indexed_rows", 0) or 0), "pending_index_rows": int(d.get("pending_index_rows", 0) or 0),
            "served_sealed_rows": served, "fail_reason": str(d.get("fail_reason", "") or ""),
        }

    def storage_ids(self) -> dict[str, tuple[int, list[int]]]:
        """Per collection of this prefix, its server-side id and the ids of its loaded segments
        (where its files live in a server's storage: the scale benchmark measures their disk).
        Servers only."""
        if self.is_lite:
            raise StoreError("storage ids exist on a Milvus server only")
        from pymilvus import utility

        out: dict[str, tuple[int, list[int]]] = {}
        for coll in (self.codes, self.embeddings, self.videos):
            cid = int(self._call("describe_collection", self.client.describe_collection, coll)["collection_id"])
            segs = self._call("get_query_segment_info", utility.get_query_segment_info, coll, using=self.client._using)
            out[coll] = (cid, sorted(int(g.segmentID) for g in segs))
        return out

    def wait_for_index(self, timeout: float = 300.0, poll: float = 0.5) -> dict[str, Any]:
        """Flush the codes and wait until search uses the built index for every stored code.

        A server builds the index per sealed segment after a flush; until then, and until the
        query nodes load the indexed segment (some seconds after describe_index already says
        indexed_rows == total_rows), a search scans raw rows and looks exact. Tests of an
        index's recall must wait for this. No-op on Milvus Lite (BIN_FLAT only).
        """
        if self.is_lite:
            return {}
        self._call("flush", self.client.flush, self.codes)
        deadline = time.monotonic() + timeout
        while True:
            info = self.index_progress()
            if info["state"] == "Failed":
                raise StoreError(f"building the index of {self.codes} failed: {info['fail_reason']}")
            total = info["total_rows"]
            if total == 0 or (info["indexed_rows"] >= total and info["pending_index_rows"] == 0 and info["served_sealed_rows"] >= total):
                return info
            if time.monotonic() > deadline:
                raise StoreError(f"the index of {self.codes} was not in use after {timeout:.0f} s: {info}")
            time.sleep(poll)
