"""Query regions: inset detection on generated footage, and a picture-in-picture copy found
end to end through a region view (real decoding, the untrained Lite0 model, Milvus Lite)."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edits import decode_all
from media import Scene, make_video
from vidret_milvus.clips import ken_burns
from vidret_milvus.fingerprint import Sampling
from vidret_milvus.ingest import ingest_paths
from vidret_milvus.model import load_model
from vidret_milvus.model.settings import thresholds_for
from vidret_milvus.regions import Box, QueryViews, Quad, crop_frames, find_band, find_bars, find_inner_rectangles, find_screen, fixed_crops, warp_frames
from vidret_milvus.search import Background, SearchParams, search_descriptor, search_video
from vidret_milvus.store import Store
from vidret_milvus.views import DETECT_FRAMES, _detect_sample, detect_views, fingerprint_views, search_views

W, H = 455, 256  # what a 16:9 query decodes to at the model's short side (256)


def footage(name: str, n: int, size: tuple[int, int], seed: int) -> np.ndarray:
    """``n`` frames of a slow pan/zoom over a bundled photo, (n, H, W, 3) uint8."""
    return np.stack(list(ken_burns(np.asarray(Scene(name).pixels()), n, size, np.random.default_rng(seed))))


def with_inset(outer: np.ndarray, inner: np.ndarray, x: float, y: float) -> tuple[np.ndarray, np.ndarray]:
    """``inner`` frames pasted at fractional (x, y) over ``outer``; also the true box (fractions)."""
    h, w = outer.shape[1:3]
    ih, iw = inner.shape[1:3]
    px, py = int(x * w), int(y * h)
    out = outer.copy()
    out[:, py : py + ih, px : px + iw] = inner
    return out, np.array([px / w, py / h, (px + iw) / w, (py + ih) / h])


def inset_size(area: float = 0.3) -> tuple[int, int]:
    s = math.sqrt(area)
    return int(W * s), int(H * s)


def coords(box: Box) -> np.ndarray:
    return np.array([box.x0, box.y0, box.x1, box.y1])


@pytest.mark.parametrize(
    ("outer", "inner", "x", "y", "still"),
    [
        ("coffee", "astronaut", 0.3, 0.2, False),
        ("rocket", "chelsea", 0.08, 0.4, False),
        ("hubble_deep_field", "coins", 0.4, 0.1, False),
        # A still background: its own edges persist too, but they make no long straight
        # lines, and nothing moves inside the boxes they could make.
        ("coffee", "astronaut", 0.3, 0.2, True),
    ],
)
def test_inset_found_where_it_is(outer: str, inner: str, x: float, y: float, still: bool) -> None:
    n = 16
    bg = footage(outer, n, (W, H), seed=1)
    if still:
        bg = np.repeat(bg[:1], n, axis=0)
    frames, truth = with_inset(bg, footage(inner, n, inset_size(0.3), seed=2), x, y)
    boxes = find_inner_rectangles(frames)
    assert boxes, "no box found"
    # Within 1.5 % of the frame on every side (one pixel of the 151 px detection scale is 0.7 %).
    assert np.abs(coords(boxes[0]) - truth).max() < 0.015, (boxes[0], truth)
    assert boxes[0].area == pytest.approx(0.3, abs=0.03)


def test_inset_shown_for_part_of_the_query_is_found() -> None:
    # 16 s of plain footage, then 16 s with an inset: the windowed medians still see it.
    plain = footage("rocket", 16, (W, H), seed=3)
    pip, truth = with_inset(footage("coffee", 16, (W, H), seed=4), footage("chelsea", 16, inset_size(0.35), seed=5), 0.1, 0.15)
    boxes = find_inner_rectangles(np.concatenate([plain, pip]))
    assert boxes and np.abs(coords(boxes[0]) - truth).max() < 0.015


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket", "camera", "text"])
def test_plain_footage_gives_no_box(name: str) -> None:
    assert find_inner_rectangles(footage(name, 16, (W, H), seed=6)) == []


def test_letterbox_and_pillarbox_and_stills_give_no_box() -> None:
    content = footage("astronaut", 16, (W, 176), seed=7)
    letterbox = np.zeros((16, H, W, 3), np.uint8)
    letterbox[:, 40:216] = content  # bars above and below: two sides only
    assert find_inner_rectangles(letterbox) == []
    narrow = footage("chelsea", 16, (300, H), seed=8)
    pillarbox = np.zeros((16, H, W, 3), np.uint8)
    pillarbox[:, :, 77:377] = narrow
    assert find_inner_rectangles(pillarbox) == []
    # A still frame with an inset-like rectangle drawn on it: it persists, but nothing in it moves.
    still = np.repeat(footage("coffee", 1, (W, H), seed=9), 16, axis=0)
    still[:, 60:180, 100:350] = 30
    still[:, 62:178, 102:348] = 200
    assert find_inner_rectangles(still) == []
    # Too few frames to tell a persistent edge from content.
    pip, _ = with_inset(footage("coffee", 2, (W, H), seed=1), footage("astronaut", 2, inset_size(), seed=2), 0.3, 0.2)
    assert find_inner_rectangles(pip) == []


@pytest.mark.parametrize("fill", [(0, 0, 0), (40, 22, 51)])
def test_letterbox_and_pillarbox_bars_are_found(fill: tuple[int, int, int]) -> None:
    """The picture inside bars of any plain colour (a padded re-upload): top and bottom,
    left and right, both, and with a caption band or a logo over one bar."""
    content = footage("astronaut", 16, (W, 176), seed=7)
    letterbox = np.empty((16, H, W, 3), np.uint8)
    letterbox[:] = fill
    letterbox[:, 40:216] = content
    assert coords(find_bars(letterbox)) == pytest.approx([0, 40 / H, 1, 216 / H], abs=0.025)
    narrow = footage("chelsea", 16, (300, H), seed=8)
    pillarbox = np.empty((16, H, W, 3), np.uint8)
    pillarbox[:] = fill
    pillarbox[:, :, 77:377] = narrow
    assert coords(find_bars(pillarbox)) == pytest.approx([77 / W, 0, 377 / W, 1], abs=0.025)
    both = np.empty((16, H, W, 3), np.uint8)
    both[:] = fill
    both[:, 30:226, 60:395] = footage("coffee", 16, (335, 196), seed=3)
    assert coords(find_bars(both)) == pytest.approx([60 / W, 30 / H, 395 / W, 226 / H], abs=0.025)
    # A static caption band with text over the bottom bar and the picture's edge: the top
    # bar alone sets the trim of both.
    captioned = letterbox.copy()
    captioned[:, 200:] = (200, 40, 40)
    captioned[:, 215:235, 30:300:7] = 255
    assert coords(find_bars(captioned)) == pytest.approx([0, 40 / H, 1, 216 / H], abs=0.025)
    logo = pillarbox.copy()  # a logo over a corner of the left bar
    logo[:, 10:60, 5:90] = (250, 200, 0)
    assert coords(find_bars(logo)) == pytest.approx([77 / W, 0, 377 / W, 1], abs=0.025)


def test_no_bars_in_plain_footage_insets_or_stills() -> None:
    for i, name in enumerate(["astronaut", "chelsea", "coffee", "rocket", "camera", "text"]):
        assert find_bars(footage(name, 16, (W, H), seed=6 + i)) is None, name
    # One bar only (a static band along one edge, e.g. a ticker): not a frame around a picture.
    band = footage("coffee", 16, (W, H), seed=4)
    band[:, :40] = 0
    assert find_bars(band) is None
    pip, _ = with_inset(footage("coffee", 16, (W, H), seed=1), footage("astronaut", 16, inset_size(), seed=2), 0.3, 0.2)
    assert find_bars(pip) is None
    still = np.zeros((16, H, W, 3), np.uint8)
    still[:, 40:216] = footage("astronaut", 1, (W, 176), seed=7)
    assert find_bars(still) is None  # nothing moves: nothing to tell a bar from the picture
    assert find_bars(still[:2]) is None
    with pytest.raises(ValueError):
        find_bars(np.zeros((4, 10, 10), np.uint8))


def captioned(frames: np.ndarray, y0: float, y1: float, colour: tuple[int, int, int] = (30, 60, 160)) -> np.ndarray:
    """A tinted caption band (2/3 opaque, as a subtitle bar) with white text blocks, rows y0..y1."""
    out = frames.copy()
    h, w = out.shape[1:3]
    a, b = int(y0 * h), int(y1 * h)
    out[:, a:b] = (out[:, a:b] * (1 / 3) + np.array(colour) * (2 / 3)).astype(np.uint8)
    out[:, a + (b - a) // 3 : b - (b - a) // 3, int(0.05 * w) : int(0.6 * w) : 9] = 255
    return out


def test_caption_band_is_found() -> None:
    """The picture beside a caption band, at the bottom or the top, over moving or still footage."""
    moving = footage("astronaut", 16, (W, H), seed=5)
    assert coords(find_band(captioned(moving, 0.78, 1.0))) == pytest.approx([0, 0, 1, 0.78], abs=0.012)
    assert coords(find_band(captioned(moving, 0.0, 0.2, (200, 200, 40)))) == pytest.approx([0, 0.2, 1, 1], abs=0.012)
    still = np.repeat(footage("coffee", 1, (W, H), seed=2), 8, axis=0)
    assert coords(find_band(captioned(still, 0.75, 1.0))) == pytest.approx([0, 0, 1, 0.75], abs=0.012)
    # No band: plain footage, an inset (its sides span less than the width), too few frames.
    for i, name in enumerate(["astronaut", "chelsea", "coffee", "rocket", "camera", "text"]):
        assert find_band(footage(name, 16, (W, H), seed=6 + i)) is None, name
    pip, _ = with_inset(footage("coffee", 16, (W, H), seed=1), footage("astronaut", 16, inset_size(0.45), seed=2), 0.1, 0.3)
    assert find_band(pip) is None
    assert find_band(captioned(moving, 0.78, 1.0)[:2]) is None
    with pytest.raises(ValueError):
        find_band(np.zeros((4, 10, 10), np.uint8))


def filmed(frames: np.ndarray, k: float, seed: int = 0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A camcorder-like copy: the picture on a tilted quadrilateral (corners as fractions)
    inside dark margins, dimmed, with sensor noise; also the true corners."""
    h, w = frames.shape[1:3]
    corners = [(k, k * 0.6), (1 - k * 0.5, 0.0), (1.0, 1.0), (k * 0.4, 1 - k)]  # benchmarks/video_edits.py's camcorder
    src = [(0, 0), (w, 0), (w, h), (0, h)]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from video_edits import _perspective_coeffs  # the benchmark's camcorder, not the code under test

    coeffs = _perspective_coeffs([(x * w, y * h) for x, y in corners], src)  # output pixel -> input pixel
    rng = np.random.default_rng(seed)
    out = np.stack([np.asarray(Image.fromarray(f).transform((w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR, fillcolor=(10, 10, 10)))
                    for f in frames]).astype(np.float32)
    out = out * 0.75 + rng.normal(0, 6, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8), corners


def test_filmed_screen_is_found_and_warped_back() -> None:
    moving = footage("astronaut", 12, (W, H), seed=5)
    for k in (0.07, 0.12):
        copy, corners = filmed(moving, k)
        quad = find_screen(copy)
        assert quad is not None
        assert np.array(quad.corners) == pytest.approx(np.array(corners), abs=0.03)
        back = warp_frames(copy, quad).astype(np.float32)
        grey = lambda f: f.astype(np.float32).mean(axis=-1).ravel()  # noqa: E731
        # Warped back, the picture lines up with the original again (far better than the copy did).
        assert np.corrcoef(grey(back[0]), grey(moving[0]))[0, 1] > np.corrcoef(grey(copy[0]), grey(moving[0]))[0, 1] + 0.2
    # No screen: plain footage, a letterbox (axis-aligned: bars), too few frames, a dark still.
    for i, name in enumerate(["astronaut", "chelsea", "coffee", "rocket", "camera", "text"]):
        assert find_screen(footage(name, 12, (W, H), seed=6 + i)) is None, name
    letterbox = np.zeros((12, H, W, 3), np.uint8)
    letterbox[:, 40:216] = footage("astronaut", 12, (W, 176), seed=7)
    assert find_screen(letterbox) is None
    copy, _ = filmed(moving, 0.1)
    assert find_screen(copy[:2]) is None
    dark_still = np.repeat(footage("coffee", 1, (W, H), seed=3) // 6, 12, axis=0)  # all dark, nothing moves
    assert find_screen(dark_still) is None
    with pytest.raises(ValueError):
        find_screen(np.zeros((4, 10, 10), np.uint8))
    with pytest.raises(ValueError):
        Quad(((0, 0), (0, 1), (1, 1), (1, 0)))  # counter-clockwise


def test_detected_views_prefer_the_screen_and_skip_near_whole_crops() -> None:
    """detect_views: a filmed screen with dark margins on all four sides passes as bars too,
    but is searched once, warped; thin black lines (a crop of nearly the whole frame) and a
    plain clip give no view; a padded and captioned clip gives both of its views."""
    moving = footage("astronaut", 12, (W, H), seed=5)
    small = np.stack([np.asarray(Image.fromarray(f).resize((int(W * 0.88), int(H * 0.88)), Image.Resampling.BILINEAR)) for f in moving])
    boxed = np.full_like(moving, 8)
    boxed[:, int(H * 0.06) : int(H * 0.06) + small.shape[1], int(W * 0.06) : int(W * 0.06) + small.shape[2]] = small
    copy, corners = filmed(boxed, 0.08)  # the screen tilted inside margins on every side
    names = [n for n, _ in detect_views(copy)]
    assert find_bars(copy) is not None and names == ["screen"], names
    lines = moving.copy()
    lines[:, :8] = 0
    lines[:, -8:] = 0
    assert detect_views(lines) == []
    assert detect_views(moving) == []
    padded = np.full_like(moving, 20)
    padded[:, 40:216] = footage("coffee", 12, (W, 176), seed=3)
    assert {"bars", "band"} <= {n for n, _ in detect_views(captioned(padded, 0.0, 0.35))}


def test_quad_and_warp_validation() -> None:
    q = Quad(((0.1, 0.05), (np.float32(0.95), 0.0), (1.0, 1.0), (0.05, 0.9)))  # numpy numbers are numbers
    assert q.bounds() == Box(0.05, 0.0, 1.0, 1.0)
    for bad in [((0, 0), (1, 0), (1, 0), (0, 1)),  # a triangle
                ((0, 0), (1, 0), (0.2, 0.2), (0, 1)),  # not convex
                ((0, 0), (1, 0), (1, 1)),
                ((0, 0), (1.2, 0), (1, 1), (0, 1)),
                ((0, 0), (True, 0), (1, 1), (0, 1))]:
        with pytest.raises(ValueError):
            Quad(bad)
    with pytest.raises(ValueError, match="uint8"):
        warp_frames(np.zeros((2, 10, 10, 3), np.float32), q)
    # A sliver of a frame (extreme aspect ratio): nothing to detect, no error.
    sliver = np.random.default_rng(0).integers(0, 255, (4, 8, 1200, 3), dtype=np.uint8)
    assert find_bars(sliver) is None and find_band(sliver) is None and find_screen(sliver) is None and find_inner_rectangles(sliver) == []


def test_box_validation_and_crops() -> None:
    b = Box(0.1, 0.2, 0.6, 0.9)
    assert b.area == pytest.approx(0.35)
    for bad in [(0.5, 0.2, 0.4, 0.9), (0.1, 0.2, 0.1, 0.9), (-0.1, 0, 0.5, 0.5), (0, 0, 1.1, 1), (0, float("nan"), 1, 1), (True, 0, 1, 1)]:
        with pytest.raises(ValueError):
            Box(*bad)
    with pytest.raises(ValueError):
        fixed_crops(("nope",))
    frames = np.zeros((3, 100, 200, 3), np.uint8)
    assert crop_frames(frames, b).shape == (3, 70, 100, 3)
    assert crop_frames(frames, Box(0.0, 0.0, 0.001, 0.001)).shape == (3, 2, 2, 3)  # never empty
    assert [n for n, _ in fixed_crops()] == ["centre70"]
    with pytest.raises(ValueError):
        find_inner_rectangles(np.zeros((4, 10, 10), np.uint8))


# ---------------------------------------------------------------- end to end


REF = ["chelsea", "coffee", "rocket", "astronaut"]  # 3 s shots
DECOY = ["text", "moon", "camera", "brick"]
FILLER = ["hubble_deep_field", "retina"]  # the footage around the inset: in no reference


@pytest.fixture(scope="module")
def pip_setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pip")
    ref = make_video(root / "ref.mp4", [Scene(s) for s in REF], duration=12.0, fps=10, size=(320, 180), gop=10, seed=11)
    make_video(root / "decoy.mp4", [Scene(s) for s in DECOY], duration=12.0, fps=10, size=(320, 180), gop=10, seed=12)
    # The query: the whole reference shrunk to a 30 % inset over other moving footage.
    frames, rate = decode_all(ref)
    qw, qh = 480, 270
    s = math.sqrt(0.3)
    iw, ih = int(qw * s), int(qh * s)
    inset = np.stack([np.asarray(Image.fromarray(f).resize((iw, ih), Image.Resampling.BILINEAR)) for f in frames])
    rng = np.random.default_rng(13)
    filler = np.concatenate([np.stack(list(ken_burns(np.asarray(Scene(n).pixels()), len(frames) // 2 + 1, (qw, qh), rng))) for n in FILLER])
    query, _ = with_inset(filler[: len(frames)], inset, 0.42, 0.4)  # bottom right: off the centre
    make_video(root / "pip.mp4", lambda i, _t: query[i], duration=len(query) / rate, fps=rate, size=(qw, qh), gop=10, crf=28)
    return {"root": root, "ref": ref, "decoy": root / "decoy.mp4", "query": root / "pip.mp4"}


def test_pip_copy_found_through_a_region_view(pip_setup: dict[str, Path]) -> None:
    model = load_model(backbone="tf_efficientnet_lite0")
    params = SearchParams.for_model(thresholds_for(model))
    with Store.connect(str(pip_setup["root"] / "pip.db")) as store:
        rep = ingest_paths(store, model, [str(pip_setup["ref"]), str(pip_setup["decoy"])], Sampling())
        assert len(rep.ingested) == 2
        ref_id = next(v for p, v, _ in rep.ingested if Path(p).name == "ref.mp4")
        views = fingerprint_views(pip_setup["query"], model, Sampling())
        names = [n for n, _ in views]
        assert names[0] == "full" and "box0" in names and "centre70" in names
        full, box = views[0][1], dict(views)["box0"]
        assert np.array_equal(full.timestamps, box.timestamps)  # crops keep query time
        assert not np.allclose(full.embeddings, box.embeddings)

        resp = search_views(store, views, params)
        top = resp.results[0]
        assert top.video_id == ref_id and top.view == "box0", [(r.video_id, r.view, r.score) for r in resp.results]
        assert top.to_json()["view"] == "box0"
        # What the full frame alone gives for the reference (its score, 0 if not even a
        # candidate): the region view must do better, which is the point of searching it.
        alone = search_descriptor(store, full, params)
        full_score = next((r.score for r in alone.results if r.video_id == ref_id), 0.0)
        print(f"reference score: full frame {full_score:.3f} (copy: {any(r.is_copy for r in alone.results if r.video_id == ref_id)}), "
              f"box0 {top.score:.3f} (copy: {top.is_copy})")
        assert top.score > full_score
        assert top.is_copy
        # The segment is in query time: the inset shows the whole 12 s reference from 0 s.
        seg = max(top.segments, key=lambda g: g.query_end - g.query_start)
        assert seg.query_start <= 2.0 and seg.query_end >= 9.0
        assert abs((seg.ref_start - seg.query_start)) <= 1.5
        assert "view_box0" in resp.timing_ms and resp.decision["views"] == names
        # Candidate videos are counted once over the views (the store holds two), per view kept.
        per_view = resp.candidates["views"]
        assert resp.candidates["videos"] == len({r.video_id for r in resp.results}) <= 2 < sum(c["videos"] for c in per_view.values())
        # An explicit normalisation background serves every view. The query's own frames as
        # background cancel every match (each frame's similarity minus itself); the store's
        # sample (the candidate's own frames excluded) leaves the reference's match standing.
        own = np.concatenate([v.embeddings for _, v in views])
        bg_params = dataclasses.replace(params, background_beta=1.0)
        cancelled = search_views(store, views, bg_params, Background(own, np.full(len(own), -1, np.int64)))
        assert cancelled.results and not any(r.segments or r.is_copy for r in cancelled.results)
        sampled = search_views(store, views, bg_params)
        assert any(r.segments for r in sampled.results if r.video_id == ref_id)


def test_default_search_finds_the_pip_copy_and_leaves_plain_queries_alone(pip_setup: dict[str, Path]) -> None:
    """search_video's default (views=insets): the inset's crop is searched when the query shows
    one, nothing more otherwise (the same results as the whole frame alone); ``all`` adds the
    centre crop."""
    model = load_model(backbone="tf_efficientnet_lite0")
    params = SearchParams.for_model(thresholds_for(model))
    with Store.connect(str(pip_setup["root"] / "pip_default.db")) as store:
        rep = ingest_paths(store, model, [str(pip_setup["ref"]), str(pip_setup["decoy"])], Sampling())
        ref_id = next(v for p, v, _ in rep.ingested if Path(p).name == "ref.mp4")
        resp = search_video(store, model, pip_setup["query"], params)
        assert resp.decision["views"][:2] == ["full", "box0"] and "centre70" not in resp.decision["views"]
        top = resp.results[0]
        assert top.video_id == ref_id and top.view.startswith("box") and top.is_copy
        assert search_video(store, model, pip_setup["query"], params, views=QueryViews.all).decision["views"][-1] == "centre70"
        # A plain query (the reference itself, no inset): one view, the whole frame's results.
        plain = search_video(store, model, pip_setup["decoy"], params)
        alone = search_video(store, model, pip_setup["decoy"], params, views=QueryViews.full)
        assert plain.decision["views"] == ["full"]
        key = lambda resp: [(r.video_id, round(r.score, 6), r.is_copy, [g.to_json() for g in r.segments]) for r in resp.results]  # noqa: E731
        assert key(plain) == key(alone)
        assert key(search_video(store, model, pip_setup["decoy"], params, views="full")) == key(alone)  # a plain string works too


def test_default_search_trims_letterbox_bars(pip_setup: dict[str, Path]) -> None:
    """A padded copy (the reference squeezed between dark bars) gets a ``bars`` view: the
    picture inside them, in query time, searched beside the whole frame."""
    frames, rate = decode_all(pip_setup["ref"])
    qw, qh = 480, 270
    pic = np.stack([np.asarray(Image.fromarray(f).resize((qw, 200), Image.Resampling.BILINEAR)) for f in frames])
    padded = np.empty((len(frames), qh, qw, 3), np.uint8)
    padded[:] = (25, 18, 30)
    padded[:, 35:235] = pic
    path = pip_setup["root"] / "padded.mp4"
    make_video(path, lambda i, _t: padded[i], duration=len(padded) / rate, fps=rate, size=(qw, qh), gop=10, crf=28)
    model = load_model(backbone="tf_efficientnet_lite0")
    views = dict(fingerprint_views(path, model, Sampling(), crops=()))
    assert list(views) == ["full", "bars"]
    assert np.array_equal(views["full"].timestamps, views["bars"].timestamps)
    params = SearchParams.for_model(thresholds_for(model))
    with Store.connect(str(pip_setup["root"] / "bars.db")) as store:
        rep = ingest_paths(store, model, [str(pip_setup["ref"]), str(pip_setup["decoy"])], Sampling())
        ref_id = next(v for p, v, _ in rep.ingested if Path(p).name == "ref.mp4")
        resp = search_video(store, model, path, params)
        assert resp.decision["views"] == ["full", "bars"]
        assert resp.results[0].video_id == ref_id and resp.results[0].is_copy


def test_views_decode_once_without_an_inset_and_check_the_second_decode(pip_setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import vidret_milvus.fingerprint as fingerprint_mod
    from vidret_milvus.errors import VideoError
    from vidret_milvus.video import FrameBatch, iter_frames

    model = load_model(backbone="tf_efficientnet_lite0")
    calls: list[int] = []
    shift = {"second": 0.0}

    def counting(*a, **k):  # noqa: ANN002, ANN003, ANN202  (every decode goes through Sampling.decode)
        calls.append(1)
        for b in iter_frames(*a, **k):
            yield FrameBatch(timestamps=b.timestamps + (shift["second"] if len(calls) > 1 else 0.0), frames=b.frames)

    monkeypatch.setattr(fingerprint_mod, "iter_frames", counting)
    assert [n for n, _ in fingerprint_views(pip_setup["decoy"], model, Sampling(), crops=())] == ["full"]
    assert len(calls) == 1  # no inset: one decode
    calls.clear()
    assert [n for n, _ in fingerprint_views(pip_setup["query"], model, Sampling(), crops=())][:2] == ["full", "box0"]
    assert len(calls) == 2
    calls.clear()
    shift["second"] = 0.5  # the second decode gives frames at other times: refused
    with pytest.raises(VideoError, match="second decode"):
        fingerprint_views(pip_setup["query"], model, Sampling(), crops=())


def test_detection_sample_is_evenly_spread_and_bounded() -> None:
    """The inset detection's frames for a query of unknown length: every stride-th frame, the
    stride doubling whenever 2 x DETECT_FRAMES are kept."""
    for n in (5, DETECT_FRAMES, 2 * DETECT_FRAMES + 1, 1000, 5000):
        kept: list[np.ndarray] = []
        stride = 1
        for i in range(n):
            stride = _detect_sample(kept, stride, np.array([i]), i)
        idx = np.array([int(k[0]) for k in kept])
        assert len(idx) <= 2 * DETECT_FRAMES and (len(idx) > DETECT_FRAMES or len(idx) == n)
        assert n > 2 * DETECT_FRAMES or len(idx) == n  # short queries: every frame, as before
        assert idx[0] == 0 and set(np.diff(idx).tolist()) <= {stride}  # evenly spread
        assert n - 1 - idx[-1] < stride  # reaches the end


def test_cli_views_option(pip_setup: dict[str, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vidret_milvus.cli import app

    runner = CliRunner()
    db = tmp_path / "cli_views.db"
    assert runner.invoke(app, ["ingest", str(pip_setup["ref"]), "--uri", str(db), "--backbone", "tf_efficientnet_lite0"]).exit_code == 0
    common = ["search", str(pip_setup["query"]), "--uri", str(db), "--backbone", "tf_efficientnet_lite0", "--json"]
    for extra, views in (([], ["full", "box0"]), (["--views", "full"], ["full"]), (["--regions"], ["full", "box0", "centre70"])):
        res = runner.invoke(app, common + extra)
        assert res.exit_code == 0, res.output
        got = json.loads(res.stdout)["decision"]["views"]
        assert [v for v in got if not v.startswith("box") or v == "box0"] == views, (extra, got)
    for extra, env in ((["--no-regions"], {}), ([], {"VIDRET_VIEWS": "full"})):
        res = runner.invoke(app, common + extra, env=env)
        assert res.exit_code == 0 and json.loads(res.stdout)["decision"]["views"] == ["full"], (extra, env)
    bad = runner.invoke(app, common + ["--views", "crops"])
    assert bad.exit_code == 2 and "crops" in bad.output
    clash = runner.invoke(app, common + ["--regions", "--views", "full"])
    assert clash.exit_code == 2 and "contradicts" in clash.output
