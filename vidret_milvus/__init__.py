"""vidret-milvus: near-duplicate / copied-video retrieval on Milvus.

Data flows one way: video (``video``) -> descriptor (``model``, ``fingerprint``,
``descriptor``) -> store (``store``, ids in ``ids``) -> results (``search``: recall and re-rank;
``align`` and ``decision``: segments, scores, the copy decision).

The Python API (for notebooks and services) is what the CLI uses::

    from vidret_milvus import Store, load_model, ingest_paths, search_video

    model = load_model()                      # the shipped default model
    with Store.connect("refs.db") as store:   # Milvus Lite file, or "http://host:19530"
        ingest_paths(store, model, ["a.mp4", "b.mp4"])
        resp = search_video(store, model, "upload.mp4")
    for r in resp.results:                    # best first
        print(r.path, r.is_copy, r.score, [(g.query_start, g.ref_start) for g in r.segments])

``resp.to_json()`` is the ``search --json`` object. The names are imported on first use, so
``import vidret_milvus`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_API: dict[str, str] = {
    "Store": "store",
    "StoreMeta": "store",
    "load_model": "model",
    "Thresholds": "model.settings",
    "thresholds_for": "model.settings",
    "Sampling": "fingerprint",
    "fingerprint_video": "fingerprint",
    "VideoDescriptor": "descriptor",
    "ingest_paths": "ingest",
    "discover": "ingest",
    "Mode": "decision",
    "SearchParams": "decision",
    "SearchResponse": "search",
    "Result": "decision",
    "search_video": "search",
    "search_descriptor": "search",
    "Segment": "align",
    "VidretError": "errors",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
