"""The :class:`Store` facade: one object, the only door to Milvus, made of the parts beside it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatabaseInUseError, StoreError
from .base import _PREFIX_RE, _SQLITE_MAGIC, BINARY_INDEXES, INGESTING, IVF_GUARDS, READ_CONSISTENCY, READY, StoreMeta
from .client import ClientMixin, _file_head, _new_client, is_lite_uri
from .index import IndexMixin
from .schema import SchemaMixin
from .vectors import VectorsMixin
from .videos import VideosMixin


class Store(ClientMixin, SchemaMixin, IndexMixin, VideosMixin, VectorsMixin):
    """Connection to Milvus (Lite file or server) and the three collections of one prefix.

    Use :meth:`connect`; the constructor takes an existing ``MilvusClient`` and does no I/O.
    """

    def __init__(
        self, client: Any, uri: str, prefix: str = "vidret", timeout: float = 30.0, binary_index: str | None = None,
        nlist: int | None = None, ivf_guard: str = "auto", read_consistency: str = "Session",
    ) -> None:
        self.client = client
        self.read_consistency = read_consistency
        # Deletes are not covered by a Session read on Milvus 2.3 (their timestamp is not
        # returned): reads are Strong for a few seconds after this store deleted something.
        self._strong_reads_until = 0.0
        self.uri = uri
        self.prefix = prefix
        self.timeout = timeout
        # The codes' index when this store creates the collections (None: BIN_FLAT); searches
        # always follow the index the existing collection really has (see code_index()).
        self.binary_index = binary_index
        self.nlist = nlist
        # BIN_IVF_FLAT recall guard: auto (by server version), knn, range, off (measurements only).
        self.ivf_guard = ivf_guard
        self._code_index: tuple[str, int] | None = None
        # meta() is read several times per search: cached (with the time it was read) and
        # dropped on this store's create/drop; another process's drop and re-create (another
        # model under the same prefix) is seen within META_TTL_S.
        self._meta: tuple[StoreMeta, float] | None = None
        self.is_lite = is_lite_uri(uri)  # decided once
        self._server_version: tuple[int, int, int] | None | bool = False  # False: not asked yet
        self.codes = f"{prefix}_codes"
        self.embeddings = f"{prefix}_embeddings"
        self.videos = f"{prefix}_videos"

    # ------------------------------------------------------------------ connect / schema
    @classmethod
    def connect(
        cls, uri: str = "./vidret.db", token: str = "", prefix: str = "vidret", timeout: float = 30.0, binary_index: str | None = None,
        nlist: int | None = None, ivf_guard: str = "auto", create: bool = True, read_consistency: str | None = None,
    ) -> "Store":
        """``binary_index``: BIN_FLAT (default) or BIN_IVF_FLAT (servers only), used when the
        collections are created; given explicitly, it must match existing collections at ingest.
        ``nlist``: BIN_IVF_FLAT lists (default 1024; :func:`ivf_nlist_for` sizes it to the data).
        ``create=False``: a Milvus Lite file that does not exist is an error instead of a new,
        empty store (read-only commands: a mistyped path must not answer "0 videos")."""
        if not _PREFIX_RE.match(prefix):
            raise StoreError(f"collection prefix must be letters, digits and _ (<= 41 chars), got {prefix!r}")
        if binary_index is not None:
            binary_index = str(binary_index).upper()
            if binary_index not in BINARY_INDEXES:
                raise StoreError(f"binary index must be BIN_FLAT or BIN_IVF_FLAT, got {binary_index!r}")
        if nlist is not None and (isinstance(nlist, bool) or not isinstance(nlist, (int, np.integer)) or not 1 <= int(nlist) <= 65536):
            raise StoreError(f"nlist must be an integer in [1, 65536], got {nlist!r}")
        if ivf_guard not in IVF_GUARDS:
            raise StoreError(f"ivf_guard must be one of {IVF_GUARDS}, got {ivf_guard!r}")
        read_consistency = read_consistency or os.environ.get("VIDRET_READ_CONSISTENCY", "").strip() or "Session"
        if read_consistency not in READ_CONSISTENCY:
            raise StoreError(f"read consistency must be one of {READ_CONSISTENCY}, got {read_consistency!r}")
        if is_lite_uri(uri):
            p = Path(uri)
            if p.suffix != ".db":
                raise StoreError(f"{uri}: a Milvus Lite file must end in .db (or give an http:// server URI)")
            if p.parent and not p.parent.exists():
                raise StoreError(f"{uri}: folder {p.parent} does not exist")
            if not create and not p.is_file():
                raise StoreError(f"{uri}: no such store (no Milvus Lite file there); check --uri, or ingest first")
            if p.is_file() and p.stat().st_size > 0 and _file_head(p) != _SQLITE_MAGIC:
                # Milvus Lite keeps its data in SQLite; on any other file it fails in a way that
                # looks like a lock ("Open local milvus failed"): name the real cause instead.
                raise StoreError(f"{uri}: not a Milvus Lite database (the file is not SQLite: corrupt, or another kind of file)")
            if binary_index not in (None, "BIN_FLAT"):
                raise StoreError("Milvus Lite only supports BIN_FLAT for binary vectors (BIN_IVF_FLAT needs a Milvus server)")
        try:
            client = _new_client(uri, token, timeout)
        except Exception as exc:
            text = str(exc)
            if "Open local milvus failed" in text or "lock" in text.lower():
                raise DatabaseInUseError(
                    f"{uri}: database in use by another process (Milvus Lite allows one process per file; "
                    "wait for it to finish, or use a Milvus server)"
                ) from exc
            # The token must never be printed: the exception text could carry the URI only.
            raise StoreError(f"cannot connect to Milvus at {uri}: {text.replace(token, '***') if token else text}") from exc
        return cls(client, uri, prefix, timeout, binary_index, None if nlist is None else int(nlist), ivf_guard, read_consistency)

    # ------------------------------------------------------------------ stats
    def count(self, coll: str, expr: str = "", strong: bool = False) -> int:
        """Rows of ``coll`` (matching ``expr``); ``strong``: every write of every process so far counts."""
        kw = {"consistency_level": "Strong"} if strong and not self.is_lite else self.read_kw()
        res = self._call("query", self.client.query, coll, filter=expr, output_fields=["count(*)"], **kw)
        return int(res[0]["count(*)"]) if res else 0

    def stats(self) -> dict[str, Any]:
        meta = self.meta()
        if meta is None:
            return {"videos": 0, "frames": 0, "model_id": None, "collections": {}, "uri": self.uri}
        return {
            # Strong: `stats` right after other processes' ingest counts their videos too.
            "videos": self.count(self.videos, f'status == "{READY}"', strong=True),
            "incomplete": self.count(self.videos, f'status == "{INGESTING}"', strong=True),
            "frames": self.count(self.codes, strong=True),
            "model_id": meta.model_id,
            "embed_dim": meta.embed_dim,
            "code_bits": meta.code_bits,
            "fps": meta.fps,
            "keyframes": meta.keyframes,
            "collections": {c: self.count(c, strong=True) for c in (self.codes, self.embeddings, self.videos)},
            "uri": self.uri,
        }
