"""Caption-band and filmed-screen copies found end to end through their region views: real
PyAV-encoded queries, the detectors in views.fingerprint_views, the Lite0 model and the
embedded Milvus Lite store, as test_regions.py does for picture-in-picture and bars."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from edits import decode_all
from media import Scene, make_video
from test_regions import DECOY, REF, captioned, filmed
from vidret_milvus.descriptor import VideoDescriptor
from vidret_milvus.fingerprint import Sampling
from vidret_milvus.ingest import ingest_paths
from vidret_milvus.model import load_model
from vidret_milvus.model.settings import thresholds_for
from vidret_milvus.regions import Box, Quad, crop_frames, warp_frames
from vidret_milvus.search import SearchParams, search_descriptor, search_video
from vidret_milvus.store import Store
from vidret_milvus.views import detect_views, fingerprint_views

QW, QH = 480, 270  # a 16:9 query, as the PiP and bars queries of test_regions.py


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The reference and a decoy as test_regions' pip_setup makes them (without its PiP
    query, which these tests do not need), ingested once for the module."""
    root = tmp_path_factory.mktemp("views_e2e")
    ref = make_video(root / "ref.mp4", [Scene(s) for s in REF], duration=12.0, fps=10, size=(320, 180), gop=10, seed=11)
    decoy = make_video(root / "decoy.mp4", [Scene(s) for s in DECOY], duration=12.0, fps=10, size=(320, 180), gop=10, seed=12)
    model = load_model(backbone="tf_efficientnet_lite0")
    with Store.connect(str(root / "views.db")) as store:
        rep = ingest_paths(store, model, [str(ref), str(decoy)], Sampling())
        assert len(rep.ingested) == 2
        ref_id = next(v for p, v, _ in rep.ingested if Path(p).name == "ref.mp4")
        yield {"root": root, "ref": ref, "store": store, "ref_id": ref_id, "model": model,
               "params": SearchParams.for_model(thresholds_for(model))}


def _encode(path: Path, frames: np.ndarray, rate: float) -> Path:
    """Frames re-encoded at a copy's lower quality (crf 28, as the PiP and bars queries)."""
    h, w = frames.shape[1:3]
    return make_video(path, lambda i, _t: frames[i], duration=len(frames) / rate, fps=rate, size=(w, h), gop=10, crf=28)


def _resized(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BILINEAR)) for f in frames])


def _sampled(path: Path, model: Any) -> np.ndarray:
    """The query's frames as fingerprint_views decodes them (1 fps, the model's short side):
    under 2 x DETECT_FRAMES of them, exactly the detectors' sample."""
    return np.concatenate([b.frames for b in Sampling().decode(path, model.config.resize_size)])


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) embedding arrays."""
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _check_found_through(stored: dict[str, Any], path: Path, view: str, full: VideoDescriptor, region: VideoDescriptor, gain: float) -> None:
    """The default search keeps ``view`` beside the full frame and finds the reference through
    it (first, called a copy, the decoy not); on their own, ``region``'s frames (the view)
    match the reference's by at least ``gain`` more than ``full``'s (the whole frame)."""
    store, model, params, ref_id = stored["store"], stored["model"], stored["params"], stored["ref_id"]
    resp = search_video(store, model, path, params)  # the default views (QueryViews.insets)
    assert resp.decision["views"] == ["full", view]
    top = resp.results[0]
    summary = [(r.video_id, r.view, round(r.score, 3), r.is_copy) for r in resp.results]
    assert top.video_id == ref_id and top.view == view and top.is_copy, summary
    assert not any(r.is_copy for r in resp.results[1:]), summary
    # The segment is in query time: the copy shows the whole 12 s reference from 0 s.
    seg = max(top.segments, key=lambda g: g.query_end - g.query_start)
    assert seg.query_start <= 2.0 and seg.query_end >= 9.0 and abs(seg.ref_start - seg.query_start) <= 1.5
    # The whole frame alone also calls these copies (the calibrated scores saturate near 1
    # for both), so the raw evidence is compared: without a closer match the view would only
    # cost a model pass.
    alone = {r.video_id: r for r in search_descriptor(store, full, params).results}
    mine = {r.video_id: r for r in search_descriptor(store, region, params).results}
    ev_full, ev_view = alone[ref_id].evidence_detail, mine[ref_id].evidence_detail
    assert ev_full is not None and ev_view is not None
    assert ev_full.frame_similarity is not None and ev_view.frame_similarity is not None
    print(f"{view}: score full {alone[ref_id].score:.3f} (copy: {alone[ref_id].is_copy}), merged {top.score:.3f}; "
          f"best segment similarity full {ev_full.best_segment_score:.3f}, {view} {ev_view.best_segment_score:.3f}; "
          f"mean frame similarity full {ev_full.frame_similarity.mean():.3f}, {view} {ev_view.frame_similarity.mean():.3f}")
    assert ev_view.frame_similarity.mean() > ev_full.frame_similarity.mean() + gain
    assert ev_view.best_segment_score > ev_full.best_segment_score


def test_caption_band_copy_found_through_the_band_view(stored: dict[str, Any]) -> None:
    """The reference (16:9, its own aspect) above a solid caption band with text, filling a
    4:3 frame: a ``band`` view whose frames are the picture above the band, and the copy
    found through it by the default search."""
    frames, rate = decode_all(stored["ref"])
    qh, edge = 360, 270  # the band covers the bottom 25 % (find_band looks in the outer 35 %)
    colour = (30, 60, 160)
    query = np.empty((len(frames), qh, QW, 3), np.uint8)
    query[:] = colour
    query[:, :edge] = _resized(frames, (QW, edge))
    query = captioned(query, edge / qh, 1.0, colour)  # tinting the band by its own colour keeps it solid; adds white text
    path = _encode(stored["root"] / "band.mp4", query, rate)

    model = stored["model"]
    sample = _sampled(path, model)
    found = detect_views(sample)
    assert [n for n, _ in found] == ["band"], found  # no bars: the picture reaches the top
    box = found[0][1]
    assert isinstance(box, Box)
    assert [box.x0, box.y0, box.x1, box.y1] == pytest.approx([0, 0, 1, edge / qh], abs=0.012)

    views = dict(fingerprint_views(path, model, Sampling(), crops=()))
    assert list(views) == ["full", "band"]
    assert np.array_equal(views["full"].timestamps, views["band"].timestamps)  # a crop keeps query time
    # The band view embeds the picture above the band: the model's embedding of the true
    # region (not the detected one) of the same decoded frames, unlike the whole frame.
    truth, _ = model.embed_frames(crop_frames(sample, Box(0.0, 0.0, 1.0, edge / qh)))
    band_sim, full_sim = _cosine(views["band"].embeddings, truth), _cosine(views["full"].embeddings, truth)
    print(f"band view vs the true picture: min {band_sim.min():.3f}; full frame: mean {full_sim.mean():.3f}")
    assert band_sim.min() > 0.97 and band_sim.mean() > full_sim.mean() + 0.1

    _check_found_through(stored, path, "band", views["full"], views["band"], gain=0.08)


def test_filmed_screen_copy_found_through_the_screen_view(stored: dict[str, Any]) -> None:
    """The reference shown on a filmed screen (the benchmark camcorder's tilted quadrilateral
    in dark margins, dimmed and noisy, via test_regions.filmed): a ``screen`` view warping the
    quad back to the whole frame, and the copy found through it by the default search."""
    frames, rate = decode_all(stored["ref"])
    query, corners = filmed(_resized(frames, (QW, QH)), 0.1, seed=3)
    path = _encode(stored["root"] / "screen.mp4", query, rate)

    model = stored["model"]
    sample = _sampled(path, model)
    found = detect_views(sample)
    assert [n for n, _ in found] == ["screen"], found
    quad = found[0][1]
    assert isinstance(quad, Quad)
    assert np.array(quad.corners) == pytest.approx(np.array(corners), abs=0.03)

    views = dict(fingerprint_views(path, model, Sampling(), crops=()))
    assert list(views) == ["full", "screen"]
    assert np.array_equal(views["full"].timestamps, views["screen"].timestamps)
    # The screen view embeds the picture warped back from the true quad (not the detected one).
    truth, _ = model.embed_frames(warp_frames(sample, Quad(tuple(corners))))
    screen_sim, full_sim = _cosine(views["screen"].embeddings, truth), _cosine(views["full"].embeddings, truth)
    print(f"screen view vs the true warp: min {screen_sim.min():.3f}; full frame: mean {full_sim.mean():.3f}")
    assert screen_sim.min() > 0.95 and screen_sim.mean() > full_sim.mean() + 0.03

    # A smaller gain than the band's: the whole frame already shows the tilted picture at
    # nearly full size (the margins are 2-10 % of a side), dimmed and noisy in both views.
    _check_found_through(stored, path, "screen", views["full"], views["screen"], gain=0.015)
