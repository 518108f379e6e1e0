"""The fingerprint model on real photos, with the real embedded ImageNet weights."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from vidret_milvus.errors import ModelError
from vidret_milvus.model import FingerprintModel, ModelConfig, load_model, model_id, save_checkpoint
from vidret_milvus.model.backbone import lukemelas_to_timm
from vidret_milvus.model.checkpoint import DEFAULT_CHECKPOINT
from vidret_milvus.model.heads import pack_codes, unpack_codes

LITE0 = DEFAULT_CHECKPOINT.parent / "lite0"


@pytest.fixture(scope="module")
def model() -> FingerprintModel:
    # These tests look inside the torch model (backbone, heads) of the shipped Lite0 checkpoint
    # (no longer the default); it would otherwise load as its exported model.onnx
    # (tests/test_export.py covers that runtime).
    return load_model(checkpoint=LITE0, runtime="torch")


def _photos() -> dict[str, np.ndarray]:
    return {"chelsea": data.chelsea(), "coffee": data.coffee(), "rocket": data.rocket(), "astronaut": data.astronaut()}


def _edit(img: np.ndarray) -> np.ndarray:
    """Crop to 80 %, brightness +20 %, JPEG quality 40 re-encode."""
    h, w = img.shape[:2]
    ch, cw = int(h * 0.8), int(w * 0.8)
    y, x = (h - ch) // 3, (w - cw) // 2
    out = np.clip(img[y : y + ch, x : x + cw].astype(np.float32) * 1.2, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, format="JPEG", quality=40)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _hamming(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.unpackbits(np.bitwise_xor(a, b)).sum())


@pytest.mark.parametrize(("name", "classes"), [("chelsea", {281, 282, 285}), ("coffee", {967}), ("rocket", {657, 744})])
def test_imagenet_weights_mapped(model: FingerprintModel, name: str, classes: set[int]) -> None:
    # 281/282/285 tabby/tiger/Egyptian cat, 967 espresso, 657/744 missile/projectile.
    x = model.preprocess(_photos()[name][None])
    with torch.inference_mode():
        top = int(model.backbone(x).argmax(-1))
    assert top in classes


def test_shapes_dtypes_determinism(model: FingerprintModel) -> None:
    frames = np.stack([_photos()["chelsea"][:256, :256], _photos()["coffee"][:256, :256]])
    e1, c1 = model.embed_frames(frames)
    e2, c2 = model.embed_frames(frames[::-1].copy())
    assert e1.shape == (2, 256) and e1.dtype == np.float32
    assert c1.shape == (2, 16) and c1.dtype == np.uint8
    np.testing.assert_allclose(np.linalg.norm(e1, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(e1, e2[::-1], atol=1e-5)
    assert np.array_equal(c1, c2[::-1])
    assert load_model(checkpoint=LITE0).model_id == model.model_id


def test_codes_are_sign_of_head_output(model: FingerprintModel) -> None:
    frames = np.stack([_photos()["rocket"][:300, :300]])
    _, codes = model.embed_frames(frames)
    with torch.inference_mode():
        _, u = model(model.preprocess(frames))
    assert np.array_equal(unpack_codes(codes)[0], (u[0].numpy() >= 0).astype(np.uint8))


def test_packbits_msb_first_round_trip() -> None:
    rng = np.random.default_rng(0)
    u = torch.from_numpy(rng.standard_normal((5, 128)).astype(np.float32))
    packed = pack_codes(u)
    assert packed.shape == (5, 16)
    assert np.array_equal(unpack_codes(packed), (u.numpy() >= 0).astype(np.uint8))
    first = torch.full((1, 128), -1.0)
    first[0, 0] = 1.0
    assert pack_codes(first)[0, 0] == 0b1000_0000


def test_edited_copy_nearer_than_unrelated(model: FingerprintModel) -> None:
    photos = _photos()
    names = list(photos)
    originals = [photos[n] for n in names]
    edited = [_edit(photos[n]) for n in names]
    emb_o = np.concatenate([model.embed_frames(p[None])[0] for p in originals])
    emb_e = np.concatenate([model.embed_frames(p[None])[0] for p in edited])
    cod_o = np.concatenate([model.embed_frames(p[None])[1] for p in originals])
    cod_e = np.concatenate([model.embed_frames(p[None])[1] for p in edited])
    for i in range(len(names)):
        d_copy = np.linalg.norm(emb_o[i] - emb_e[i])
        h_copy = _hamming(cod_o[i], cod_e[i])
        for j in range(len(names)):
            if i == j:
                continue
            assert d_copy < np.linalg.norm(emb_o[i] - emb_o[j]), (names[i], names[j])
            assert h_copy < _hamming(cod_o[i], cod_o[j]), (names[i], names[j])


def test_checkpoint_round_trip(tmp_path, model: FingerprintModel) -> None:
    with torch.no_grad():
        model_copy = load_model(backbone="tf_efficientnet_lite0")  # untrained: only the heads are saved
        model_copy.quant_head.proj.bias.add_(0.01)
    model_copy.model_id = model_id(model_copy)
    assert model_copy.model_id != model.model_id
    save_checkpoint(model_copy, tmp_path / "ckpt")
    loaded = load_model(checkpoint=tmp_path / "ckpt")
    assert loaded.model_id == model_copy.model_id
    frames = _photos()["coffee"][None]
    assert np.array_equal(loaded.embed_frames(frames)[1], model_copy.embed_frames(frames)[1])


def test_checkpoint_carries_tuned_thresholds(tmp_path, model: FingerprintModel) -> None:
    """Thresholds tuned for a model travel in its config.json, do not change its id, and
    become the search defaults; options the user sets still win."""
    import dataclasses

    from vidret_milvus.model.settings import Thresholds, thresholds_for
    from vidret_milvus.search import Mode, SearchParams

    copy = load_model(backbone="tf_efficientnet_lite0")
    untrained_id = copy.model_id
    tuned = Thresholds({"radius": 40, "frame_match_l2": 0.7, "align_min_score": 0.75, "duration_threshold": 0.35})
    save_checkpoint(copy, tmp_path / "ckpt", thresholds=tuned)
    loaded = load_model(checkpoint=tmp_path / "ckpt")
    # held beside the model, not on it: read from the folder it was loaded from
    assert not hasattr(loaded, "thresholds") and loaded.source == str(tmp_path / "ckpt")
    assert thresholds_for(loaded) == tuned and loaded.model_id == untrained_id
    # read once, at load: a later edit of the folder does not change a running process's settings
    cfg = tmp_path / "ckpt" / "config.json"
    cfg.write_text(cfg.read_text().replace('"radius": 40', '"radius": 12'))
    assert thresholds_for(loaded) == tuned and dict(thresholds_for(load_model(checkpoint=tmp_path / "ckpt")).values)["radius"] == 12
    p = SearchParams.for_model(thresholds_for(loaded), top_n=5, radius=None)
    assert (p.radius, p.frame_match_l2, p.align.min_score, p.duration_threshold, p.top_n) == (40, 0.7, 0.75, 0.35, 5)
    assert p.align.max_gap == SearchParams().align.max_gap  # untouched fields keep their defaults
    p = SearchParams.for_model(thresholds_for(loaded), radius=20, duration_threshold=0.5, mode=Mode.codes)
    assert (p.radius, p.duration_threshold, p.mode) == (20, 0.5, Mode.codes)
    bare = dataclasses.replace(SearchParams(), top_n=3)
    assert SearchParams.for_model(None, top_n=3) == bare  # no thresholds: the class defaults
    assert SearchParams.for_model(Thresholds(), top_n=3) == bare
    with pytest.raises(TypeError, match="Thresholds"):
        SearchParams.for_model(loaded)  # type: ignore[arg-type]  # the model itself is no settings


@pytest.mark.parametrize(
    ("block", "message"),
    [({"radius": 2000}, "outside"), ({"radius": 400}, "400 bits, more than the model's 128-bit codes"), ({"radius": 3.5}, "integer"), ({"duration_threshold": "high"}, "number"), ({"speed": 1.0}, "unknown threshold"), ([1, 2], "must be an object")],
)
def test_bad_thresholds_rejected(tmp_path, model: FingerprintModel, block: object, message: str) -> None:
    import json

    save_checkpoint(model, tmp_path / "ckpt")
    cfg = tmp_path / "ckpt" / "config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "thresholds": block}))
    with pytest.raises(ModelError, match=message) as exc:
        load_model(checkpoint=tmp_path / "ckpt")
    assert "config.json" in str(exc.value)


def test_other_backbone_needs_weights(tmp_path) -> None:
    with pytest.raises(ModelError, match="--weights"):
        load_model(backbone="resnet18")
    bad = tmp_path / "w.pth"
    torch.save({"foo": torch.zeros(3)}, bad)
    with pytest.raises(ModelError, match="do not fit"):
        load_model(backbone="resnet18", weights=bad)
    with pytest.raises(ModelError, match="unknown backbone"):
        load_model(backbone="no_such_net")


def test_local_weights_file_for_other_backbone(tmp_path) -> None:
    # A user with their own ResNet weights: any timm state dict file works.
    import timm

    net = timm.create_model("resnet18", pretrained=False)
    torch.save(net.state_dict(), tmp_path / "r18.pth")
    m = load_model(backbone="resnet18", weights=tmp_path / "r18.pth")
    assert m.config.backbone == "resnet18" and m.config.num_features == 512
    e, c = m.embed_frames(_photos()["coffee"][None])
    assert e.shape == (1, 256) and c.shape == (1, 16)


def test_lukemelas_mapping_checks_shapes() -> None:
    net = FingerprintModel(ModelConfig()).backbone
    with pytest.raises(ModelError):
        lukemelas_to_timm({"a": torch.zeros(1)}, net)


def test_shipped_trained_checkpoint(model: FingerprintModel) -> None:
    """The trained model in the repo (patent stage 2, variant 1) loads, differs from the
    default, and keeps edited copies nearer than unrelated photos in Hamming distance."""
    from pathlib import Path

    import vidret_milvus

    ckpt = Path(vidret_milvus.__file__).parent / "models" / "patent_v1"
    trained = load_model(checkpoint=ckpt)
    assert trained.config.trained and trained.model_id != model.model_id
    photos = _photos()
    for name in ("chelsea", "coffee", "rocket"):
        _, c_orig = trained.embed_frames(photos[name][None])
        _, c_edit = trained.embed_frames(_edit(photos[name])[None])
        others = [trained.embed_frames(photos[o][None])[1] for o in photos if o != name]
        assert _hamming(c_orig[0], c_edit[0]) < min(_hamming(c_orig[0], o[0]) for o in others)
