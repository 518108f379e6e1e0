"""Milvus layer: the category index (codes), the mapping table (embeddings) and the videos table.

Every public method validates its inputs before any RPC and raises this package's own
exceptions. Filter expressions are built only from integers (and constant strings) that
this package generated, never from user text. Every RPC carries a timeout.
"""

from __future__ import annotations

from ..ids import (  # noqa: F401
    FRAME_BITS, MAX_FRAMES, MAX_LIMIT, VIDEO_ID_BITS, check_sha, frame_ids, path_key, video_id_from_sha,
)
from .base import (  # noqa: F401  (the facade: callers import these from vidret_milvus.store)
    SCHEMA_VERSION,
    INSERT_CHUNK,
    ID_CHUNK,
    FRAME_FILTER_CHUNK,
    VIDEO_PAGE,
    READY,
    INGESTING,
    BINARY_INDEXES,
    DEFAULT_NLIST,
    IVF_GUARDS,
    READ_CONSISTENCY,
    STRONG_AFTER_DELETE_S,
    META_TTL_S,
    KNN_FIRST_K,
    StoreMeta,
    VideoRow,
    FrameHits,
    in_filter,
)
from .client import is_lite_uri, is_transient, parse_server_version
from .core import Store
from .index import ivf_nlist_for
