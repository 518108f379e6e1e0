"""The fingerprint model: an ImageNet backbone with a texture head and a quantization head.

This package imports only torch, timm and numpy. Nothing here downloads or reads files in a
constructor; loading weights is the separate function :func:`load_model`.
"""

from .backbone import Backbone, BackboneSpec, resolve_backbone
from .checkpoint import load_model, model_id, save_checkpoint
from .fingerprinter import FingerprintModel, ModelConfig, Precision
from .preprocess import to_model_input

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
