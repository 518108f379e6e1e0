"""Checkpoints (safetensors weights + JSON config), model ids, and model loading."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy

from ..errors import ModelError
from .config import Backbone, ModelConfig, Precision
from .exported import ONNX_FILE, ExportedOnnxModel, open_exported
from .onnx_model import OnnxFingerprintModel, descriptor_dim, is_onnx_backbone, load_onnx_model
from .settings import BACKGROUND_FILE, CONFIG_FILE, THRESHOLD_KEYS, UNTRAINED_THRESHOLDS, Thresholds, for_code_length, parse_thresholds, remember  # noqa: F401

# torch and timm are imported inside the functions that need them: load_model must be able to
# open an exported model.onnx (or an ONNX backbone) without paying for them (issue 13).
if TYPE_CHECKING:
    from .fingerprinter import FingerprintModel

WEIGHTS_FILE = "model.safetensors"
# Which runtime load_model uses: "auto" (onnxruntime when the checkpoint has an up-to-date
# model.onnx, else torch), "onnx" (error when it cannot), "torch". Env: VIDRET_RUNTIME.
RUNTIMES = ("auto", "onnx", "torch")
# The shipped default (issue 12, the hard benchmark): the SSCD student at a 224 px shorter side
# with a trained quantization head and a whitened texture head (a fixed linear map fitted without
# labels on training-split frames; README, "A whitened texture head"). The earlier defaults stay
# selectable: models/sscd_distilled_224 (identity texture head), models/sscd_distilled (288 px),
# models/lite0.
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "models" / "sscd_whitened"


def model_id(model: FingerprintModel) -> str:
    """Hash of the config and of every tensor: two ids are equal only for identical models."""
    import torch

    h = hashlib.sha256(model.config.to_json().encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return "vm-" + h.hexdigest()[:16]


def save_checkpoint(model: FingerprintModel, directory: str | Path, include_backbone: bool | list[str] = False,
                    thresholds: Thresholds | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (heads, feature norm, and the backbone
    tensors named by ``include_backbone``: True for all, a list of prefixes for fine-tuned blocks)."""
    import torch
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for name, t in model.state_dict().items():
        if name.startswith("backbone."):
            sub = name.removeprefix("backbone.")
            keep = include_backbone is True or (
                isinstance(include_backbone, list) and any(sub.startswith(p) for p in include_backbone)
            )
            if not keep:
                continue
        tensors[name] = t.detach().cpu().contiguous()
    save_file(tensors, str(out / WEIGHTS_FILE), metadata={"model_id": model_id(model)})
    config = json.loads(model.config.to_json())
    if thresholds is not None and thresholds.values:
        config["thresholds"] = thresholds.to_config()
    (out / CONFIG_FILE).write_text(json.dumps(config, sort_keys=True) + "\n")
    _drop_stale_export(out, model.config)
    return out


def _drop_stale_export(out: Path, config: ModelConfig) -> None:
    """Saving other weights over an exported checkpoint leaves its model.onnx stale: remove it
    (load_model would only warn and use torch) so that `export` is the one way to make it."""
    path = out / ONNX_FILE
    if not path.is_file():
        return
    exported, _ = open_exported(out, config, out / WEIGHTS_FILE, None, threads=1)
    if exported is None:
        path.unlink()


def save_onnx_checkpoint(model: OnnxFingerprintModel, directory: str | Path, thresholds: Thresholds | None = None) -> Path:
    """``config.json`` + ``model.safetensors`` (the head tensors only: the backbone is the
    packaged ONNX file, whose sha256 is part of the model id)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    save_numpy({k: np.ascontiguousarray(v) for k, v in model.heads.items()}, str(out / WEIGHTS_FILE), metadata={"model_id": model.model_id})
    config = json.loads(model.config.to_json())
    if thresholds is not None and thresholds.values:
        config["thresholds"] = thresholds.to_config()
    (out / CONFIG_FILE).write_text(json.dumps(config, sort_keys=True) + "\n")
    return out


def _onnx_only(backbone: str, runtime: str, precision: Precision, device: str, where: str) -> None:
    """An ONNX descriptor (the packaged int8 graph) runs with onnxruntime on the CPU in fp32
    only: a request for torch, bf16 or a GPU must fail, not be silently ignored."""
    asked = [w for w, bad in ((f"VIDRET_RUNTIME / runtime={runtime}", runtime == "torch"), (f"--precision {precision.value}", precision is not Precision.fp32),
                              (f"--device {device}", device != "cpu")) if bad]
    if asked:
        raise ModelError(f"{where}: the {backbone} model runs with onnxruntime (fp32, CPU) only; {', '.join(asked)} cannot apply")


def _finish(model: FingerprintModel, device: str, precision: Precision, threads: int | None = None) -> FingerprintModel:
    import torch

    if threads:
        torch.set_num_threads(threads)
    model.eval().to(device)
    model.backbone.to(memory_format=torch.channels_last)
    model.precision = Precision(precision)
    model.model_id = model_id(model)
    return model


def build_untrained(config: ModelConfig, weights: str | Path | None = None) -> FingerprintModel:
    """ImageNet backbone + fixed-seed random-projection heads (the sound untrained baseline)."""
    import torch

    from .backbone import bn_feature_stats, load_backbone_weights
    from .fingerprinter import FingerprintModel
    from .heads import init_random_projection

    model = FingerprintModel(config)
    load_backbone_weights(model.backbone, config.backbone, weights)
    stats = bn_feature_stats(model.backbone)
    if stats is not None:
        model.feature_norm.mean.copy_(stats[0])
        model.feature_norm.std.copy_(stats[1])
    gen = torch.Generator().manual_seed(config.head_seed)
    init_random_projection(model.texture_head, gen, orthogonal=True)
    init_random_projection(model.quant_head, gen, orthogonal=False)
    return model


def has_full_backbone(weights_file: Path, model: FingerprintModel) -> bool:
    """Whether the safetensors file holds every backbone tensor (else the rest are ImageNet's)."""
    with safe_open(str(weights_file), framework="np") as fh:
        n = sum(k.startswith("backbone.") for k in fh.keys())
    return n >= len(model.backbone.state_dict())


def _runtime(runtime: str | None) -> str:
    value = (runtime or os.environ.get("VIDRET_RUNTIME", "") or "auto").strip().lower()
    if value not in RUNTIMES:
        raise ModelError(f"runtime must be one of {list(RUNTIMES)}, got {value!r} (VIDRET_RUNTIME)")
    return value


def _load_torch_checkpoint(ckpt: Path, config: ModelConfig, weights: str | Path | None) -> FingerprintModel:
    from safetensors.torch import load_file

    from .fingerprinter import FingerprintModel

    w_path = ckpt / WEIGHTS_FILE
    try:
        tensors = load_file(str(w_path))
    except Exception as exc:
        raise ModelError(f"{ckpt}: cannot read checkpoint ({exc})") from exc
    full = sum(k.startswith("backbone.") for k in tensors) >= len(FingerprintModel(config).backbone.state_dict())
    model = FingerprintModel(config) if full else build_untrained(config, weights)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected or (full and missing):
        raise ModelError(f"{ckpt}: checkpoint does not fit its config ({unexpected[:3] or missing[:3]})")
    return model


def load_model(
    checkpoint: str | Path | None = None,
    backbone: str | None = None,
    weights: str | Path | None = None,
    input_size: int | None = None,
    device: str = "cpu",
    precision: Precision | str = Precision.fp32,
    threads: int | None = None,
    runtime: str | None = None,
) -> FingerprintModel | OnnxFingerprintModel | ExportedOnnxModel:
    """Build a ready-to-use model in eval mode.

    - ``checkpoint``: a folder with config.json + model.safetensors (a trained model);
    - else ``backbone`` (any timm name; default the embedded tf_efficientnet_lite0) with
      ImageNet ``weights`` and untrained heads;
    - with neither, the shipped trained default when present, else untrained Lite0.

    ``runtime`` (default ``VIDRET_RUNTIME`` or "auto"): a checkpoint with an up-to-date
    ``model.onnx`` (``vidret-milvus export``) runs with onnxruntime as an
    :class:`ExportedOnnxModel` -- same model id, no torch or timm imported -- unless torch is
    asked for (``runtime="torch"``, ``precision="bf16"`` or a device other than the CPU).
    "onnx" makes a missing or stale export an error instead of a fall back to torch.

    ONNX backbones (``sscd``, ``sscd_distilled``: model/onnx_model.py) give an
    :class:`OnnxFingerprintModel` (onnxruntime with ``threads``; no torch at inference).
    """
    runtime = _runtime(runtime)
    precision = Precision(precision)
    if checkpoint is None and backbone is None and (DEFAULT_CHECKPOINT / CONFIG_FILE).is_file():
        checkpoint = DEFAULT_CHECKPOINT
    if checkpoint is not None:
        ckpt = Path(checkpoint)
        cfg_path, w_path = ckpt / CONFIG_FILE, ckpt / WEIGHTS_FILE
        if not cfg_path.is_file() or not w_path.is_file():
            raise ModelError(f"{ckpt}: not a checkpoint folder (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
        try:
            text = cfg_path.read_text()
            config = ModelConfig.from_json(text)
        except Exception as exc:
            raise ModelError(f"{ckpt}: cannot read checkpoint ({exc})") from exc
        # Read once, here: a bad block fails at load, and the model's searches use this copy
        # (settings.thresholds_for) even if the folder changes while the process runs.
        thresholds = Thresholds(for_code_length(parse_thresholds(json.loads(text).get("thresholds"), str(cfg_path)), config.code_bits, str(cfg_path)),
                                str(ckpt / BACKGROUND_FILE) if (ckpt / BACKGROUND_FILE).is_file() else None)
        if is_onnx_backbone(config.backbone):
            _onnx_only(config.backbone, runtime, precision, device, str(ckpt))
            try:
                heads = load_numpy(str(w_path))
            except Exception as exc:
                raise ModelError(f"{ckpt}: cannot read checkpoint ({exc})") from exc
            onnx_model = load_onnx_model(config, heads, threads, where=str(w_path))
            onnx_model.source = str(ckpt)
            remember(onnx_model, thresholds)
            return onnx_model
        if runtime != "torch":
            if precision is not Precision.fp32 or device != "cpu":
                exported, why = None, f"{precision.value} on {device} needs torch (the export computes fp32 on the CPU)"
            else:
                exported, why = open_exported(ckpt, config, w_path, weights, threads)
            if exported is not None:
                exported.source = str(ckpt)
                remember(exported, thresholds)
                return exported
            if runtime == "onnx":
                raise ModelError(f"{ckpt}: cannot run with onnxruntime: {why}")
            if (ckpt / ONNX_FILE).is_file() and precision is Precision.fp32 and device == "cpu":
                # A stale export must never give other fingerprints under this model's id;
                # torch computes the right ones, only slower to start.
                warnings.warn(f"{why}; using torch", stacklevel=2)
        model = _load_torch_checkpoint(ckpt, config, weights)
        model.source = str(ckpt)
        remember(model, thresholds)
        return _finish(model, device, precision, threads)
    if backbone is not None and is_onnx_backbone(backbone):
        _onnx_only(backbone, runtime, precision, device, f"--backbone {backbone}")
        # Untrained heads on a copy-detection descriptor: the descriptor itself as embedding.
        return load_onnx_model(ModelConfig.for_backbone(backbone, input_size, embed_dim=descriptor_dim(backbone)), None, threads)
    if runtime == "onnx":
        raise ModelError("untrained heads on a timm backbone run with torch: save a checkpoint and export it first")
    config = ModelConfig.for_backbone(backbone or Backbone.efficientnet_lite0.value, input_size)
    return _finish(build_untrained(config, weights), device, precision, threads)
