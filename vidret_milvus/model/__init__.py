"""The fingerprint model: an image backbone with a texture head and a quantization head.

Two runtimes compute it. Training, ``export`` and evaluation use torch + timm
(:class:`FingerprintModel`); ingest, search and serve use onnxruntime (the checkpoint's
``model.onnx``, or the ONNX copy-detection backbones). Importing this package imports neither
torch nor timm: the torch-side names below are resolved on first use (PEP 562), so a search
never pays their ~6 s import. Nothing here downloads or reads files in a constructor; loading
weights is the separate function :func:`load_model`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .checkpoint import load_model, model_id, save_checkpoint  # torch imported inside, when called
from .config import Backbone, ModelConfig, Precision

if TYPE_CHECKING:
    from .backbone import BackboneSpec, resolve_backbone
    from .fingerprinter import FingerprintModel
    from .preprocess import to_model_input

# name -> submodule that defines it; each of these submodules imports torch (and timm).
_LAZY = {
    "BackboneSpec": "backbone",
    "resolve_backbone": "backbone",
    "FingerprintModel": "fingerprinter",
    "to_model_input": "preprocess",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this hook
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Backbone",
    "BackboneSpec",
    "FingerprintModel",
    "ModelConfig",
    "Precision",
    "load_model",
    "model_id",
    "resolve_backbone",
    "save_checkpoint",
    "to_model_input",
]
