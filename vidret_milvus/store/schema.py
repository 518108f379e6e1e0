"""The three collections: their schemas (schemas/*.json), creation, the meta in their description."""

from __future__ import annotations

import json
import time
from typing import Any

from ..errors import ModelMismatchError, StoreError
from .base import DEFAULT_NLIST, META_TTL_S, SCHEMA_DIR, StoreMeta


def _load_schema(name: str, **subst: object) -> dict[str, Any]:
    text = (SCHEMA_DIR / f"{name}.json").read_text()
    spec = json.loads(text)

    def sub(v: Any) -> Any:
        if isinstance(v, str) and v.startswith("{") and v.endswith("}") and v[1:-1] in subst:
            return subst[v[1:-1]]
        if isinstance(v, str):
            return v.format(**subst) if "{" in v else v
        if isinstance(v, dict):
            return {k: sub(x) for k, x in v.items()}
        if isinstance(v, list):
            return [sub(x) for x in v]
        return v

    return sub(spec)


class SchemaMixin:
    """Collections of one prefix (part of :class:`~vidret_milvus.store.Store`)."""

    def exists(self) -> bool:
        return bool(self._call("has_collection", self.client.has_collection, self.videos))

    def meta(self, fresh: bool = False) -> StoreMeta | None:
        """What the collections were made with (None: there are none). Reads may use a copy
        up to META_TTL_S old; ``fresh`` asks Milvus (every check before a write does, so that
        codes of two models never mix, whatever another process did a moment ago)."""
        if not fresh and self._meta is not None and time.monotonic() - self._meta[1] < META_TTL_S:
            return self._meta[0]
        self._meta = None
        if not self.exists():
            return None
        desc = self._call("describe_collection", self.client.describe_collection, self.videos)
        meta = StoreMeta.from_description(desc.get("description", ""))
        if meta is not None:
            self._meta = (meta, time.monotonic())
        return meta

    def ensure_collections(self, meta: StoreMeta, _retry: bool = True) -> None:
        """Create the collections for ``meta`` or check the existing ones were made with it."""
        names = [self.codes, self.embeddings, self.videos]
        have = [bool(self._call("has_collection", self.client.has_collection, n)) for n in names]
        if any(have) and not all(have) and not self.is_lite:
            # Parallel ingest workers (--shard i/N) may be creating them right now: give them time.
            deadline = time.monotonic() + min(self.timeout, 30.0)
            while any(have) and not all(have) and time.monotonic() < deadline:
                time.sleep(0.5)
                have = [bool(self._call("has_collection", self.client.has_collection, n)) for n in names]
        if all(have):
            found = self.meta(fresh=True)
            if found is None:
                raise StoreError(f"collections {names} exist but were not made by vidret-milvus")
            if found.model_id != meta.model_id:
                raise ModelMismatchError(
                    f"the collections (prefix {self.prefix!r}) hold codes of model {found.model_id}, "
                    f"not of the model in use ({meta.model_id}); codes of two models must never mix: "
                    "use another --prefix or database, or the model they were made with"
                )
            if (found.fps, found.keyframes) != (meta.fps, meta.keyframes):
                raise StoreError(
                    f"the collections were ingested with fps={found.fps} keyframes={found.keyframes}; "
                    f"got fps={meta.fps} keyframes={meta.keyframes}"
                )
            self._check_binary_index()
            self._ensure_loaded(names)
            return
        if any(have) and have[2]:
            missing = [n for n, h in zip(names, have) if not h]
            raise StoreError(f"collections of prefix {self.prefix!r} are incomplete (missing {missing}); delete them and re-ingest")
        if any(have):
            # The videos table is created last, so without it the set was interrupted while
            # being created (a crash): nothing in it was ever visible. Start it again.
            for n, h in zip(names, have):
                if h:
                    self._call("drop_collection", self.client.drop_collection, n)
        index = self.binary_index or "BIN_FLAT"
        params = {"nlist": int(self.nlist or DEFAULT_NLIST)} if index == "BIN_IVF_FLAT" else {}
        subst = dict(prefix=self.prefix, code_bits=meta.code_bits, embed_dim=meta.embed_dim, binary_index=index, binary_index_params=params)
        # The videos table is created last: its existence (with the meta) marks a complete set.
        # Creating an identical collection again is a no-op on a server, so workers racing here
        # are fine; one that made them differently (another model) makes ours fail: say why.
        try:
            for name in ("codes", "embeddings", "videos"):
                self._create(_load_schema(name, **subst), meta.to_json())
        except StoreError:
            if not _retry or not all(self._call("has_collection", self.client.has_collection, n) for n in names):
                raise
            self.ensure_collections(meta, _retry=False)
        self._code_index = None
        self._meta = None

    def _ensure_loaded(self, names: list[str]) -> None:
        """On a server, wait until the collections are loaded: another ingest worker may have
        just created them and still be loading them ("collection not loaded" otherwise)."""
        if self.is_lite:
            return
        from pymilvus.client.types import LoadState

        for n in names:
            state = self._call("get_load_state", self.client.get_load_state, n)
            if state.get("state") != LoadState.Loaded:
                self._call("load_collection", self.client.load_collection, n)

    def _create(self, spec: dict[str, Any], description: str) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=description)
        for f in spec["fields"]:
            kw: dict[str, Any] = {}
            if "dim" in f:
                kw["dim"] = int(f["dim"])
            if "max_length" in f:
                kw["max_length"] = int(f["max_length"])
            schema.add_field(f["name"], getattr(DataType, f["dtype"]), is_primary=bool(f.get("is_primary", False)), **kw)
        ip = self.client.prepare_index_params()
        vi = spec["vector_index"]
        ip.add_index(field_name=vi["field"], index_type=vi["index_type"], metric_type=vi["metric_type"], params=vi.get("params") or {})
        if not self.uri.endswith(".db"):
            for si in spec.get("scalar_indexes", []):
                ip.add_index(field_name=si["field"], index_type=si["index_type"])
        self._call("create_collection", self.client.create_collection, spec["name"], schema=schema, index_params=ip, consistency_level="Strong")

    def drop(self) -> None:
        for n in (self.videos, self.codes, self.embeddings):
            if self._call("has_collection", self.client.has_collection, n):
                self._call("drop_collection", self.client.drop_collection, n)
        self._code_index = None
        self._meta = None
