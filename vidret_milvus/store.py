"""Milvus layer: the category index (codes), the mapping table (embeddings) and the videos table.

Every public method validates its inputs before any RPC and raises this package's own
exceptions. Filter expressions are built only from integers (and constant strings) that
this package generated, never from user text. Every RPC carries a timeout.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .descriptor import CODE_BYTES, VideoDescriptor
from .errors import DatabaseInUseError, ModelMismatchError, StoreError
from .ids import FRAME_BITS, MAX_FRAMES, MAX_LIMIT, VIDEO_ID_BITS, check_sha, frame_ids, path_key, video_id_from_sha  # noqa: F401 (re-exported)

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
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


def _file_head(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(_SQLITE_MAGIC))
    except OSError:
        return b""


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


def is_lite_uri(uri: str) -> bool:
    """A Milvus Lite file path, not a server address."""
    return not uri.startswith(("http://", "https://", "tcp://", "unix:"))


def ivf_nlist_for(rows: int) -> int:
    """BIN_IVF_FLAT list count for ``rows`` codes: ~40 rows a list, at most 1024."""
    return int(min(1024, max(1, int(rows) // 40)))


def parse_server_version(text: str) -> tuple[int, int, int] | None:
    """``"v2.3.5-lite"`` -> ``(2, 3, 5)``; None when it is not a version."""
    m = re.match(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?", str(text or ""))
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else None


def _int_list(ids: Iterable[int]) -> list[int]:
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
    return f"{field} in [{','.join(str(v) for v in _int_list(ids))}]"


def _chunks(seq: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


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


_TRANSIENT = ("unavailable", "deadline", "connection refused", "connect failed", "fail connecting", "socket closed", "timeout", "not ready")


def is_transient(exc: BaseException) -> bool:
    """A failure worth retrying: the server is unreachable or slow, not a refused request."""
    text = f"{type(exc).__name__} {exc}".lower()
    return any(t in text for t in _TRANSIENT)


def _new_client(uri: str, token: str, timeout: float) -> Any:
    import logging
    import warnings

    with warnings.catch_warnings():
        # milvus-lite 2.5.1 imports pkg_resources, which warns on import; nothing to act on.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        from pymilvus import MilvusClient

        try:
            import milvus_lite  # noqa: F401
        except ImportError:  # a server-only install
            pass
    # pymilvus and milvus-lite (on the root logger) log a failed open at ERROR before it
    # raises; we raise our own clear error instead, so they are quiet during the connect.
    loggers = [logging.getLogger(n) for n in ("pymilvus", "pymilvus.milvus_client", "")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        return MilvusClient(uri=uri, token=token, timeout=timeout)
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


class Store:
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

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # closing is best effort
            pass

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Bounded retries of transient failures (server restarting, network blip). Every call this
    # class makes is idempotent (upserts, deletes by id, reads), so repeating one is safe.
    retries: int = 3
    backoff_s: float = 0.5

    def _call(self, what: str, fn: Any, *args: Any, **kw: Any) -> Any:
        if what == "delete":
            self._strong_reads_until = time.monotonic() + STRONG_AFTER_DELETE_S
        for attempt in range(self.retries + 1):
            try:
                return fn(*args, timeout=self.timeout, **kw)
            except StoreError:
                raise
            except Exception as exc:
                if attempt < self.retries and is_transient(exc):
                    time.sleep(self.backoff_s * 2**attempt)
                    continue
                hint = " (the Milvus server is not answering: is it running?)" if is_transient(exc) else ""
                detail = " ".join(str(exc).split())  # pymilvus messages span lines
                raise StoreError(f"Milvus {what} failed{hint}: {detail[:500]}") from exc
        raise AssertionError("unreachable")

    def exists(self) -> bool:
        return bool(self._call("has_collection", self.client.has_collection, self.videos))

    def meta(self) -> StoreMeta | None:
        """What the collections were made with (None: there are none)."""
        if self._meta is not None and time.monotonic() - self._meta[1] < META_TTL_S:
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
            found = self.meta()
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

    def _check_binary_index(self) -> None:
        if self.binary_index is None:
            return
        have, _ = self.code_index()
        if have != self.binary_index:
            raise StoreError(
                f"the codes of prefix {self.prefix!r} have a {have} index, not {self.binary_index}; the binary index is "
                "chosen when the collections are created: use another --prefix (or delete the collections) to change it"
            )

    # ------------------------------------------------------------------ binary index (BIN_FLAT / BIN_IVF_FLAT)
    def read_kw(self) -> dict[str, str]:
        """The consistency level of reads on a server (READ_CONSISTENCY); Lite has one process."""
        if self.is_lite:
            return {}
        return {"consistency_level": "Strong" if time.monotonic() < self._strong_reads_until else self.read_consistency}

    def server_version(self) -> tuple[int, int, int] | None:
        """The server's version, e.g. (2, 3, 5); None when it cannot be told (cached)."""
        if self._server_version is False:
            try:
                self._server_version = parse_server_version(self.client.get_server_version(timeout=self.timeout))
            except Exception:  # an old or odd server: the callers pick the safe path
                self._server_version = None
        return self._server_version  # type: ignore[return-value]

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

    _VIDEO_FIELDS = ["video_id", "path", "sha256", "duration", "fps", "frames", "model_id", "status", "updated_at"]

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
        meta = self.meta()
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

    # ------------------------------------------------------------------ searching
    def range_search_codes(self, codes: np.ndarray, radius: int, limit: int = MAX_LIMIT, video_ids: Sequence[int] | None = None) -> FrameHits:
        """Per query code, every stored code within Hamming distance ``radius`` (inclusive)."""
        if not isinstance(codes, np.ndarray) or codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[1] != CODE_BYTES:
            raise StoreError(f"codes must be uint8 (N, {CODE_BYTES})")
        if not isinstance(radius, (int, np.integer)) or not 0 <= int(radius) <= CODE_BYTES * 8:
            raise StoreError(f"radius must be an integer in [0, {CODE_BYTES * 8}], got {radius!r}")
        limit = self._check_limit(limit)
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
            fids = np.unique(np.asarray(_int_list(frame_ids.tolist() if isinstance(frame_ids, np.ndarray) else frame_ids), np.int64))
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
        qi: list[np.ndarray] = []
        cols: dict[str, list[Any]] = {"id": [], "video_id": [], "t": [], "distance": []}
        capped = np.zeros(nq, bool)
        # Keep each request's result count (nq * limit) bounded for the gRPC message size.
        step = max(1, min(256, MAX_LIMIT * 4 // max(limit, 1)))
        for s in range(0, nq, step):
            res = self._call(
                "search", self.client.search, coll, data=data[s : s + step], anns_field=field, search_params=params,
                limit=limit, filter=filt, output_fields=["video_id", "t"], **self.read_kw(),
            )
            for j, hits in enumerate(res):
                capped[s + j] = len(hits) >= limit
                qi.append(np.full(len(hits), s + j, np.int64))
                for h in hits:
                    ent = h.get("entity", h)
                    cols["id"].append(h["id"])
                    cols["video_id"].append(ent["video_id"])
                    cols["t"].append(ent["t"])
                    cols["distance"].append(h["distance"])
        if not qi:
            return FrameHits.empty(nq)
        return FrameHits(
            query_index=np.concatenate(qi),
            ids=np.asarray(cols["id"], np.int64),
            video_ids=np.asarray(cols["video_id"], np.int64),
            t=np.asarray(cols["t"], np.float32),
            distance=np.asarray(cols["distance"], np.float32),
            capped=capped,
        )

    def frame_embeddings(self, ids: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(embeddings (M, D) float32, video ids (M,))`` of the stored frames among ``ids``
        (frame ids made by :mod:`vidret_milvus.ids`; ids not stored are skipped), read
        ``ID_CHUNK`` ids per query."""
        fids = _int_list(ids.tolist() if isinstance(ids, np.ndarray) else ids)
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
