"""Checkpoints (safetensors weights + JSON config), model ids, and model loading."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file, save_file

from ..errors import ModelError
from .backbone import Backbone, bn_feature_stats, load_backbone_weights
from .fingerprinter import FingerprintModel, ModelConfig, Precision
from .heads import init_random_projection
from .onnx_model import OnnxFingerprintModel, is_onnx_backbone, load_onnx_model

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
BACKGROUND_FILE = "background.npy"  # optional: the model's normalisation background
# The trained default model ships inside the package (issue C); until then this folder is absent.
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "models" / "default"
# Thresholds a checkpoint may carry (benchmarks/tune_thresholds.py writes them), with their
# types and valid ranges; search.SearchParams.for_model applies them.
THRESHOLD_KEYS: dict[str, tuple[type, float, float]] = {
    "radius": (int, 0, 128),
    "frame_match_l2": (float, 0.0, 2.0),
    "align_min_score": (float, -1.0, 1.0),
    "duration_threshold": (float, 0.0, 1.0),
    "background_beta": (float, 0.0, 2.0),
    "background_default": (float, -1.0, 1.0),
    "embedding_threshold": (float, 0.0, 2.0),
    "codes_threshold": (float, 0.0, 1.0),
    "code_equal_bits": (int, 0, 128),
    # Mode-2 decision (vidret_milvus/decision.py): the calibrated-confidence cut, the shortest
    # copy, whether the patent's repetition rule also decides (0/1), and the logistic
    # calibration (calib_w0..calib_w3 pair with decision.FEATURES; all five keys or none).
    "copy_threshold": (float, 0.0, 1.0),
    "min_copy_seconds": (float, 0.0, 3600.0),
    "repetition_rule": (int, 0, 1),
    "calib_w0": (float, -100.0, 100.0),
    "calib_w1": (float, -100.0, 100.0),
    "calib_w2": (float, -100.0, 100.0),
    "calib_w3": (float, -100.0, 100.0),
    "calib_bias": (float, -100.0, 100.0),
}


# Thresholds tuned for untrained heads, by model id (the id hashes every tensor, so a value
# applies to exactly the model it was measured on; any other untrained model, e.g. another
# backbone, gets the search defaults). From benchmarks/tune_thresholds.py --name untrained
# (benchmarks/results/tune-untrained.json: tuning sets muAP 0.917, detected 0.85, FPR 0.033).
UNTRAINED_THRESHOLDS: dict[str, dict[str, float]] = {
    "vm-398be1cabc122d3f": {"radius": 32, "frame_match_l2": 1.0, "align_min_score": 0.3, "duration_threshold": 0.4,
                            "background_beta": 0.6, "background_default": 0.59},
}


def parse_thresholds(raw: object, where: str) -> dict[str, float]:
    """Validate a checkpoint's ``thresholds`` block: known keys, numbers in range."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ModelError(f"{where}: 'thresholds' must be an object, got {type(raw).__name__}")
    out: dict[str, float] = {}
    for key, value in raw.items():
        if key not in THRESHOLD_KEYS:
            raise ModelError(f"{where}: unknown threshold {key!r} (known: {sorted(THRESHOLD_KEYS)})")
        kind, lo, hi = THRESHOLD_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and float(value) != int(value)):
            raise ModelError(f"{where}: threshold {key!r} must be a{'n integer' if kind is int else ' number'}, got {value!r}")
        if not lo <= value <= hi:
            raise ModelError(f"{where}: threshold {key!r} = {value} is outside [{lo}, {hi}]")
        out[key] = kind(value)
    calib = [k for k in out if k.startswith("calib_")]
    if calib and len(calib) != sum(k.startswith("calib_") for k in THRESHOLD_KEYS):
        # Half a fitted calibration mixed with the hand-set defaults would mean nothing.
        raise ModelError(f"{where}: calibration keys must come together (got {sorted(calib)})")
    return out


def model_id(model: FingerprintModel) -> str:
    """Hash of the config and of every tensor: two ids are equal only for identical models."""
    h = hashlib.sha256(model.config.to_json().encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return "vm-" + h.hexdigest()[:16]


def save_checkpoint(model: FingerprintModel, directory: str | Path, include_backbone: bool | list[str] = False) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (heads, feature norm, and the backbone
    tensors named by ``include_backbone``: True for all, a list of prefixes for fine-tuned blocks)."""
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
    if model.thresholds:
        config["thresholds"] = dict(sorted(model.thresholds.items()))
    (out / CONFIG_FILE).write_text(json.dumps(config, sort_keys=True) + "\n")
    return out


def save_onnx_checkpoint(model: OnnxFingerprintModel, directory: str | Path) -> Path:
    """``config.json`` + ``model.safetensors`` (the head tensors only: the backbone is the
    packaged ONNX file, whose sha256 is part of the model id)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    save_numpy({k: np.ascontiguousarray(v) for k, v in model.heads.items()}, str(out / WEIGHTS_FILE), metadata={"model_id": model.model_id})
    config = json.loads(model.config.to_json())
    if model.thresholds:
        config["thresholds"] = dict(sorted(model.thresholds.items()))
    (out / CONFIG_FILE).write_text(json.dumps(config, sort_keys=True) + "\n")
    return out


def _finish(model: FingerprintModel, device: str, precision: Precision) -> FingerprintModel:
    model.eval().to(device)
    model.backbone.to(memory_format=torch.channels_last)
    model.precision = Precision(precision)
    model.model_id = model_id(model)
    return model


def build_untrained(config: ModelConfig, weights: str | Path | None = None) -> FingerprintModel:
    """ImageNet backbone + fixed-seed random-projection heads (the sound untrained baseline)."""
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


def load_model(
    checkpoint: str | Path | None = None,
    backbone: str | None = None,
    weights: str | Path | None = None,
    input_size: int | None = None,
    device: str = "cpu",
    precision: Precision | str = Precision.fp32,
    threads: int | None = None,
) -> FingerprintModel | OnnxFingerprintModel:
    """Build a ready-to-use model in eval mode.

    - ``checkpoint``: a folder with config.json + model.safetensors (a trained model);
    - else ``backbone`` (any timm name; default the embedded tf_efficientnet_lite0) with
      ImageNet ``weights`` and untrained heads;
    - with neither, the shipped trained default when present, else untrained Lite0.

    ONNX backbones (``sscd``, ``sscd_distilled``: model/onnx_model.py) give an
    :class:`OnnxFingerprintModel` (onnxruntime with ``threads``; no torch at inference).
    """
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
        thresholds = parse_thresholds(json.loads(text).get("thresholds"), str(cfg_path))
        if is_onnx_backbone(config.backbone):
            try:
                heads = load_numpy(str(w_path))
            except Exception as exc:
                raise ModelError(f"{ckpt}: cannot read checkpoint ({exc})") from exc
            onnx_model = load_onnx_model(config, heads, threads, where=str(w_path))
            onnx_model.thresholds = thresholds
            if (ckpt / BACKGROUND_FILE).is_file():
                onnx_model.background_path = str(ckpt / BACKGROUND_FILE)
            return onnx_model
        try:
            tensors = load_file(str(w_path))
        except Exception as exc:
            raise ModelError(f"{ckpt}: cannot read checkpoint ({exc})") from exc
        has_full_backbone = sum(k.startswith("backbone.") for k in tensors) >= len(
            [k for k in FingerprintModel(config).backbone.state_dict()]
        )
        model = FingerprintModel(config) if has_full_backbone else build_untrained(config, weights)
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        if unexpected or (has_full_backbone and missing):
            raise ModelError(f"{ckpt}: checkpoint does not fit its config ({unexpected[:3] or missing[:3]})")
        model.thresholds = thresholds
        if (ckpt / BACKGROUND_FILE).is_file():
            model.background_path = str(ckpt / BACKGROUND_FILE)
        return _finish(model, device, Precision(precision))
    if backbone is not None and is_onnx_backbone(backbone):
        # Untrained heads on a copy-detection descriptor: the descriptor itself as embedding.
        onnx_model = load_onnx_model(ModelConfig.for_backbone(backbone, input_size, embed_dim=512), None, threads)
        onnx_model.thresholds = dict(UNTRAINED_THRESHOLDS.get(onnx_model.model_id, {}))
        return onnx_model
    config = ModelConfig.for_backbone(backbone or Backbone.efficientnet_lite0.value, input_size)
    model = _finish(build_untrained(config, weights), device, Precision(precision))
    model.thresholds = dict(UNTRAINED_THRESHOLDS.get(model.model_id, {}))
    return model
