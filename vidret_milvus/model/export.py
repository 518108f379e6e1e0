"""Export a torch :class:`FingerprintModel` to ONNX (``model.onnx`` beside its safetensors).

The exported graph is the whole fingerprint model, so that ingest, search and serve run it
with onnxruntime and never import torch or timm (issue 13):

* input ``frames``: uint8 RGB, NHWC, any batch and any height/width (like the SSCD graphs);
* the preprocessing of :func:`~vidret_milvus.model.preprocess.to_model_input`, fixed inside the
  graph: short side resized to ``resize_size`` (bilinear, antialiased), centre crop of
  ``input_size``, ``(x - mean) / std``;
* backbone, feature standardisation, texture head and quantization head;
* outputs ``embedding`` (N, embed_dim) L2-normalised and ``quant`` (N, code_bits) in (-1, 1):
  the code bit is ``quant >= 0``, packed by the runtime exactly as :func:`heads.pack_codes`.

The network is traced by torch's ONNX exporter at the fixed input size with a dynamic batch;
the preprocessing, whose output size depends on the input's, is written as ONNX operators
here (``Shape`` arithmetic + ``Resize(antialias=1)`` + ``Slice``) because tracing would bake
the example's size into the graph.

What the file was made from is recorded in its metadata (see :mod:`.exported`): the model id
(which needs torch to compute, so it is computed here once), the config, the sha256 of the
checkpoint's safetensors and where the rest of the backbone's weights came from. The runtime
compares them with the checkpoint before using the file, so a stale ``model.onnx`` is never
used for other weights.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ModelError
from .exported import (
    FORMAT_VERSION,
    INPUT_NAME,
    META_BASE_WEIGHTS,
    META_CONFIG,
    META_FORMAT,
    META_MODEL_ID,
    META_WEIGHTS_SHA256,
    ONNX_FILE,
    OUTPUT_NAMES,
    base_weights_tag,
)
from .fingerprinter import FingerprintModel
from .onnx_model import file_sha256

OPSET = 18  # Resize's ``antialias`` attribute needs opset 18


class _Network(nn.Module):
    """Normalised (B, 3, S, S) input -> (embedding, quant): what is traced."""

    def __init__(self, model: FingerprintModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(x)


def _trace_network(model: FingerprintModel, path: Path) -> None:
    """The network at the fixed input size, batch dynamic, as an ONNX file at ``path``."""
    size = model.config.input_size
    example = torch.zeros(2, 3, size, size)
    net = _Network(model).eval()
    # The TorchScript-based exporter: seconds on 2 cores, folds BatchNorm into the convolutions,
    # and needs no onnxscript. torch.export's exporter took over 10 minutes here on the same net.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (example,), str(path), dynamo=False, opset_version=OPSET, do_constant_folding=True,
            input_names=["x"], output_names=list(OUTPUT_NAMES),
            dynamic_axes={"x": {0: "batch"}, OUTPUT_NAMES[0]: {0: "batch"}, OUTPUT_NAMES[1]: {0: "batch"}},
        )


def _prepend_preprocessing(graph: object, model: FingerprintModel) -> None:
    """Replace the graph's float input ``x`` by uint8 NHWC ``frames`` + to_model_input's steps.

    Mirrors preprocess.to_model_input operation for operation: the output size is computed in
    float64 like Python's ``round(h * (resize_size / min(h, w)))`` (ONNX Round is round half to
    even, as Python's), floored at ``input_size``; the crop offset is ``(n - input_size) // 2``.
    """
    from onnx import TensorProto, helper, numpy_helper

    c = model.config
    g = graph
    old = [i for i in g.input if i.name == "x"]
    if len(old) != 1:
        raise ModelError("exported network has no input 'x'")
    g.input.remove(old[0])
    g.input.insert(0, helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["batch", "height", "width", 3]))

    def const(name: str, value: np.ndarray) -> str:
        g.initializer.append(numpy_helper.from_array(value, name))
        return name

    p = "pre/"
    k_resize = const(p + "resize_size", np.array([float(c.resize_size)], np.float64))
    k_input_d = const(p + "input_size_f", np.array([float(c.input_size)], np.float64))
    k_input = const(p + "input_size", np.array([c.input_size, c.input_size], np.int64))
    k_two = const(p + "two", np.array([2, 2], np.int64))
    k_0, k_2, k_4 = (const(p + f"i{v}", np.array([v], np.int64)) for v in (0, 2, 4))
    k_axes = const(p + "axes_hw", np.array([2, 3], np.int64))
    k_mean = const(p + "mean", (np.array(c.mean, np.float32) * np.float32(255.0)).reshape(1, 3, 1, 1))
    k_std = const(p + "std", (np.array(c.std, np.float32) * np.float32(255.0)).reshape(1, 3, 1, 1))
    n = helper.make_node
    nodes = [
        n("Cast", [INPUT_NAME], [p + "f"], to=TensorProto.FLOAT),
        n("Transpose", [p + "f"], [p + "nchw"], perm=[0, 3, 1, 2]),
        n("Shape", [p + "nchw"], [p + "shape"]),
        n("Slice", [p + "shape", k_0, k_2], [p + "nc"]),
        n("Slice", [p + "shape", k_2, k_4], [p + "hw"]),
        n("Cast", [p + "hw"], [p + "hw_d"], to=TensorProto.DOUBLE),
        n("ReduceMin", [p + "hw_d"], [p + "short"], keepdims=1),
        n("Div", [k_resize, p + "short"], [p + "scale"]),
        n("Mul", [p + "hw_d", p + "scale"], [p + "hw_scaled"]),
        n("Round", [p + "hw_scaled"], [p + "hw_round"]),
        n("Max", [p + "hw_round", k_input_d], [p + "new_hw_d"]),
        n("Cast", [p + "new_hw_d"], [p + "new_hw"], to=TensorProto.INT64),
        n("Concat", [p + "nc", p + "new_hw"], [p + "sizes"], axis=0),
        # Resize to the input's own size is the identity (to_model_input skips it then).
        n("Resize", [p + "nchw", "", "", p + "sizes"], [p + "resized"], mode="linear", antialias=1,
          coordinate_transformation_mode="half_pixel"),
        n("Sub", [p + "new_hw", k_input], [p + "margin"]),
        n("Div", [p + "margin", k_two], [p + "start"]),  # int64 Div of non-negatives: floor
        n("Add", [p + "start", k_input], [p + "end"]),
        n("Slice", [p + "resized", p + "start", p + "end", k_axes], [p + "crop"]),
        n("Sub", [p + "crop", k_mean], [p + "centred"]),
        n("Div", [p + "centred", k_std], ["x"]),
    ]
    body = list(g.node)
    del g.node[:]
    g.node.extend(nodes + body)


def export_onnx(model: FingerprintModel, path: str | Path, weights_sha256: str = "", base_weights: str = "") -> Path:
    """Write ``model`` (eval mode, fp32) as one ONNX file with its provenance in the metadata."""
    import onnx

    from .checkpoint import model_id

    path = Path(path)
    model = model.eval()
    mid = getattr(model, "model_id", None) or model_id(model)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "network.onnx"
        _trace_network(model, raw)
        proto = onnx.load(str(raw))
    _prepend_preprocessing(proto.graph, model)
    proto.graph.name = "vidret_fingerprint"
    proto.doc_string = (f"vidret-milvus fingerprint model {mid}: uint8 RGB frames (N, H, W, 3) -> embedding "
                        f"(N, {model.config.embed_dim}), quant (N, {model.config.code_bits}); code bit = quant >= 0")
    meta = {META_FORMAT: FORMAT_VERSION, META_MODEL_ID: mid, META_CONFIG: model.config.to_json(),
            META_WEIGHTS_SHA256: weights_sha256, META_BASE_WEIGHTS: base_weights}
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_name(path.name + ".tmp")
    onnx.save(proto, str(tmp_path))
    tmp_path.replace(path)  # never leave a half-written model.onnx where load_model looks
    return path


def check_agreement(model: FingerprintModel, path: str | Path, frames: list[np.ndarray] | None = None,
                    threads: int = 2) -> dict[str, float]:
    """Run torch and the exported file on the same frames: worst embedding cosine and mean code
    bits that differ. Default frames: smooth seeded images of a few sizes (no media needed)."""
    from .exported import ExportedOnnxModel
    from .onnx_model import make_session

    if frames is None:
        frames = _smooth_images(np.random.default_rng(0), [(240, 320), (256, 455), (720, 1280), (180, 180)])
    onnx_model = ExportedOnnxModel(model.config, make_session(Path(path), threads), "", str(path))
    cos, bits = [], []
    for f in frames:
        e_t, c_t = model.embed_frames(f[None])
        e_o, c_o = onnx_model.embed_frames(f[None])
        cos.append(float((e_t * e_o).sum()))
        bits.append(int(np.unpackbits(c_t ^ c_o).sum()))
    return {"frames": len(frames), "min_cosine": min(cos), "mean_code_bits_differing": float(np.mean(bits)),
            "max_code_bits_differing": int(max(bits))}


def _smooth_images(rng: np.random.Generator, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """Images with structure at several scales (upsampled noise), so features are not degenerate."""
    from PIL import Image

    out = []
    for h, w in sizes:
        acc = np.zeros((h, w, 3), np.float32)
        for cells, weight in ((4, 0.5), (16, 0.3), (64, 0.2)):
            small = (rng.random((cells, cells, 3)) * 255).astype(np.uint8)
            acc += weight * np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC), np.float32)
        out.append(np.clip(acc, 0, 255).astype(np.uint8))
    return out


def export_checkpoint(checkpoint: str | Path, weights: str | Path | None = None, check: bool = True,
                      log: Callable[[str], None] | None = None) -> dict[str, object]:
    """Export the checkpoint folder's model to ``<checkpoint>/model.onnx``; returns a summary.

    ``weights``: the backbone ImageNet weights its untrained blocks come from (as for
    load_model; default the embedded Lite0 weights). With ``check``, torch and onnxruntime are
    compared on seeded images and a disagreement beyond the issue's bounds is an error.
    """
    from .checkpoint import WEIGHTS_FILE, has_full_backbone, load_model

    ckpt = Path(checkpoint)
    model = load_model(checkpoint=ckpt, weights=weights, runtime="torch")
    if not isinstance(model, FingerprintModel):
        raise ModelError(f"{ckpt}: backbone {model.config.backbone!r} already runs with onnxruntime; nothing to export")
    full = has_full_backbone(ckpt / WEIGHTS_FILE, model)
    path = export_onnx(model, ckpt / ONNX_FILE, weights_sha256=file_sha256(ckpt / WEIGHTS_FILE),
                       base_weights="" if full else base_weights_tag(weights))
    summary: dict[str, object] = {"checkpoint": str(ckpt), "onnx": str(path), "model_id": model.model_id,
                                  "bytes": path.stat().st_size}
    if check:
        agree = check_agreement(model, path)
        summary["agreement"] = agree
        if agree["min_cosine"] < 0.999 or agree["mean_code_bits_differing"] > 2:
            path.unlink()
            raise ModelError(f"{path}: onnxruntime disagrees with torch ({json.dumps(agree)}); file removed")
    if log is not None:
        log(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, model {model.model_id})")
    return summary
