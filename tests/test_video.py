"""vidret_milvus.video: probing, frame sampling and every kind of bad input.

Sampling is checked against a reference that decodes every frame the plain way and applies
the rule from the docs ("the frame on screen at k / fps, each frame once"), so the fast path
(threads, selective skipping of non-reference frames) must match it exactly.
"""

from __future__ import annotations

import math
import os
import shutil
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
from media import (
    Scene,
    can_write_rotation,
    flat_index,
    make_audio_only,
    make_rotated_video,
    make_vfr_video,
    make_video,
    truncate,
    write_png,
    write_random_bytes,
    write_zero_bytes,
)

from vidret_milvus.errors import VideoError
from vidret_milvus.video import FrameBatch, VideoDecodeWarning, VideoInfo, iter_frames, probe, read_all

HALF_FRAME = 0.02  # at 25 fps

# A good file must never warn; the tests of damaged files catch their warnings explicitly.
pytestmark = pytest.mark.filterwarnings("error::vidret_milvus.video.VideoDecodeWarning")


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("video_media")


@pytest.fixture(scope="session")
def clip10(media_dir: Path) -> Path:
    """10 s, 25 fps, 320x240, keyframe every 25 frames, three shots, with audio."""
    scenes: list[Scene | str] = ["astronaut", Scene("coffee", mirror=True), Scene("chelsea", crop=(0, 0, 0.6, 1))]
    return make_video(media_dir / "clip10.mp4", scenes, duration=10.0, fps=25, size=(320, 240), gop=25, audio=True, seed=1)


@pytest.fixture(scope="session")
def clip8_faststart(media_dir: Path) -> Path:
    return make_video(media_dir / "clip8.mp4", ["rocket", "coffee"], duration=8.0, fps=25, gop=25, faststart=True, seed=2)


def decode_reference(path: Path, arrays: bool = False) -> tuple[list[float], list[bool], list[np.ndarray]]:
    """Every frame's time (from stream start), keyframe flag and optionally RGB, decoded plainly."""
    times: list[float] = []
    keys: list[bool] = []
    images: list[np.ndarray] = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        start = s.start_time or 0
        for f in c.decode(s):
            assert f.pts is not None and s.time_base is not None
            times.append(float((f.pts - start) * s.time_base))
            keys.append(bool(f.key_frame))
            if arrays:
                images.append(f.to_ndarray(format="rgb24"))
    return times, keys, images


def expected_times(times: list[float], duration: float, fps: float) -> list[float]:
    """The documented rule, written the slow obvious way."""
    out: list[float] = []
    k = 0
    while k / fps < duration:
        shown = [t for t in times if t <= k / fps + 1e-6]
        t = shown[-1] if shown else times[0]
        if not out or out[-1] != t:
            out.append(t)
        k += 1
    return out


# --- probe -------------------------------------------------------------------------------


def test_probe_reports_metadata(clip10: Path) -> None:
    info = probe(clip10)
    assert isinstance(info, VideoInfo)
    assert info.path == str(clip10.resolve()) and os.path.isabs(info.path)
    assert info.duration == pytest.approx(10.0, abs=0.05)
    assert (info.width, info.height, info.rotation) == (320, 240, 0)
    assert info.avg_fps == pytest.approx(25.0)
    assert info.codec in {"h264", "mpeg4"}
    assert "mp4" in info.format
    assert info.has_audio


def test_probe_relative_path_becomes_absolute(clip10: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(clip10.parent)
    assert probe(clip10.name).path == str(clip10.resolve())


def test_video_without_audio(media_dir: Path) -> None:
    path = make_video(media_dir / "silent.mp4", ["moon"], duration=2.0, gop=25)
    assert not probe(path).has_audio
    assert len(read_all(path)) == 2


# --- uniform sampling --------------------------------------------------------------------


@pytest.mark.parametrize(("fps", "count"), [(1.0, 10), (2.0, 20)])
def test_uniform_sampling_times(clip10: Path, fps: float, count: int) -> None:
    batch = read_all(clip10, fps=fps)
    assert batch.frames.shape == (count, 240, 320, 3) and batch.frames.dtype == np.uint8
    assert batch.timestamps.dtype == np.float64
    np.testing.assert_allclose(batch.timestamps, np.arange(count) / fps, atol=HALF_FRAME)
    assert np.all(np.diff(batch.timestamps) > 0)


@pytest.mark.parametrize("fps", [1.0, 3.3, 0.3, 60.0])
def test_uniform_sampling_matches_reference(clip10: Path, fps: float) -> None:
    times, _, _ = decode_reference(clip10)
    got = read_all(clip10, fps=fps, threads=2).timestamps
    np.testing.assert_allclose(got, expected_times(times, probe(clip10).duration, fps), atol=1e-6)


def test_sampling_above_frame_rate_returns_each_frame_once(clip10: Path) -> None:
    got = read_all(clip10, fps=60.0).timestamps
    assert len(got) == 250
    np.testing.assert_allclose(got, np.arange(250) / 25, atol=1e-6)


def test_sampled_pixels_equal_full_decode(clip10: Path) -> None:
    # Skipping unneeded frames must not change the frames that are returned.
    times, _, images = decode_reference(clip10, arrays=True)
    batch = read_all(clip10, fps=1.7, threads=2)
    for t, frame in zip(batch.timestamps, batch.frames, strict=True):
        np.testing.assert_array_equal(frame, images[times.index(t)])


def test_batches_are_bounded_and_consistent(clip10: Path) -> None:
    batches = list(iter_frames(clip10, fps=1.0, batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert all(isinstance(b, FrameBatch) and b.frames.shape[0] == b.timestamps.shape[0] for b in batches)
    whole = read_all(clip10, fps=1.0)
    np.testing.assert_array_equal(np.concatenate([b.timestamps for b in batches]), whole.timestamps)
    np.testing.assert_array_equal(np.concatenate([b.frames for b in batches]), whole.frames)


def test_iteration_is_lazy_and_can_stop_early(clip10: Path) -> None:
    it = iter_frames(clip10, fps=2.0, batch_size=2)
    first = next(it)
    assert list(first.timestamps) == pytest.approx([0.0, 0.48], abs=HALF_FRAME)
    it.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("suffix", [".ts", ".mp4", ".mkv"])
def test_pts_not_starting_at_zero(media_dir: Path, suffix: str) -> None:
    path = make_video(media_dir / f"late{suffix}", ["chelsea"], duration=4.0, gop=25, start=7.0)
    info = probe(path)
    assert info.duration == pytest.approx(4.0, abs=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a late start must not look like a truncated file
        got = read_all(path, fps=1.0).timestamps
    np.testing.assert_allclose(got, [0, 1, 2, 3], atol=HALF_FRAME)


def test_variable_frame_rate(media_dir: Path) -> None:
    times = [0.0, 0.04, 0.08, 0.2, 0.24, 0.5, 0.52, 0.9, 1.0, 1.5, 1.6, 2.4, 2.44, 2.9, 3.3, 3.35, 4.2]
    path = make_vfr_video(media_dir / "vfr.mp4", times)
    duration = probe(path).duration
    for fps in (1.0, 2.0, 5.0, 30.0):
        batch = read_all(path, fps=fps)
        np.testing.assert_allclose(batch.timestamps, expected_times(times, duration, fps), atol=1e-3)
        # The pixels are those of the frame at that pts, not a neighbour.
        assert [times[flat_index(f)] for f in batch.frames] == pytest.approx(list(batch.timestamps), abs=1e-3)


def test_variable_frame_rate_random_schedule(media_dir: Path) -> None:
    path = make_vfr_video(media_dir / "vfr_random.mp4", seed=5)
    times, _, _ = decode_reference(path)
    duration = probe(path).duration
    for fps in (1.0, 4.0):
        np.testing.assert_allclose(read_all(path, fps=fps).timestamps, expected_times(times, duration, fps), atol=1e-6)


# --- keyframes ---------------------------------------------------------------------------


def test_keyframe_mode_returns_exactly_the_keyframes(media_dir: Path) -> None:
    path = make_video(media_dir / "gop25.mp4", ["astronaut", "rocket"], duration=8.0, fps=25, gop=25)
    times, keys, _ = decode_reference(path)
    expected = [t for t, k in zip(times, keys, strict=True) if k]
    np.testing.assert_allclose(expected, np.arange(8), atol=1e-6)  # the encoder honoured gop
    batch = read_all(path, keyframes=True, fps=123.0)  # fps is ignored
    np.testing.assert_allclose(batch.timestamps, expected, atol=1e-6)
    assert batch.frames.shape == (8, 240, 320, 3)


# --- geometry ----------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_odd_frame_size(media_dir: Path, codec: str) -> None:
    path = make_video(media_dir / f"odd_{codec}.mp4", ["coffee"], duration=2.0, size=(97, 55), codec=codec, gop=25)
    info = probe(path)
    assert (info.width, info.height) == (97, 55)
    batch = read_all(path, fps=1.0)
    assert batch.frames.shape == (2, 55, 97, 3)
    assert read_all(path, short_side=30).frames.shape == (2, 30, 53, 3)


def test_short_side_downscales_keeping_aspect(clip10: Path) -> None:
    small = read_all(clip10, fps=0.5, short_side=120)
    assert small.frames.shape == (5, 120, 160, 3)
    np.testing.assert_allclose(small.timestamps, [0, 2, 4, 6, 8], atol=HALF_FRAME)
    # Never upscales.
    assert read_all(clip10, fps=0.5, short_side=1000).frames.shape == (5, 240, 320, 3)
    # The downscaled picture is the full-size one, smaller.
    full = read_all(clip10, fps=0.5).frames.astype(np.float32)
    reduced = full.reshape(5, 120, 2, 160, 2, 3).mean(axis=(2, 4))
    assert np.abs(reduced - small.frames).mean() < 4.0


@pytest.mark.skipif(not can_write_rotation(), reason="this PyAV cannot write a display matrix")
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata_gives_upright_frames(media_dir: Path, rotation: int) -> None:
    path = make_rotated_video(media_dir / f"rot{rotation}.mp4", rotation=rotation, size=(64, 32))
    info = probe(path)
    assert info.rotation == rotation
    assert (info.width, info.height) == ((32, 64) if rotation in (90, 270) else (64, 32))
    frames = read_all(path, fps=1.0).frames
    assert frames.shape[1:3] == (info.height, info.width)
    # The coded picture: white block top-left, grey block top-right, the rest black.
    coded = np.zeros((32, 64), np.float32)
    coded[:16, :16] = 255
    coded[:16, -16:] = 128
    upright = np.rot90(coded, k=-rotation // 90)  # turned clockwise, as a player shows it
    assert np.abs(frames[0].mean(axis=2) - upright).mean() < 12
    small = read_all(path, fps=1.0, short_side=16).frames
    assert small.shape[1:3] == ((32, 16) if rotation in (90, 270) else (16, 32))


# --- bad input ---------------------------------------------------------------------------


def assert_video_error(path: Path, reason: str) -> None:
    for call in (lambda: probe(path), lambda: iter_frames(path), lambda: read_all(path)):
        with pytest.raises(VideoError) as excinfo:
            call()
        message = str(excinfo.value)
        assert path.name in message and reason in message, message
        assert excinfo.value.path == os.path.abspath(path)


def test_missing_file(tmp_path: Path) -> None:
    assert_video_error(tmp_path / "nope.mp4", "file not found")


def test_directory(tmp_path: Path) -> None:
    d = tmp_path / "dir.mp4"
    d.mkdir()
    assert_video_error(d, "not a regular file")


def test_zero_bytes(tmp_path: Path) -> None:
    assert_video_error(write_zero_bytes(tmp_path / "empty.mp4"), "empty file")


@pytest.mark.parametrize("seed", [0, 1])
def test_random_bytes_named_mp4(tmp_path: Path, seed: int) -> None:
    assert_video_error(write_random_bytes(tmp_path / f"noise{seed}.mp4", 50_000, seed=seed), "not a media file PyAV can read")


@pytest.mark.parametrize("name", ["voice.m4a", "voice.wav"])
def test_audio_only(tmp_path: Path, name: str) -> None:
    assert_video_error(make_audio_only(tmp_path / name, seconds=1.0), "no video stream (audio only)")


@pytest.mark.parametrize("name", ["cat.png", "cat.jpg"])
def test_still_image(tmp_path: Path, name: str) -> None:
    path = write_png(tmp_path / name)
    assert_video_error(path, "image file, not a video")
    disguised = shutil.copyfile(path, tmp_path / f"{name}.mp4")
    assert_video_error(Path(disguised), "image file, not a video")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(clip10: Path, tmp_path: Path) -> None:
    path = Path(shutil.copyfile(clip10, tmp_path / "locked.mp4"))
    path.chmod(0)
    try:
        assert_video_error(path, "permission denied")
    finally:
        path.chmod(0o644)


def test_unreadable_file_reported(clip10: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real check above needs a non-root user; this one simulates the refusal.
    import builtins

    import vidret_milvus.video as video

    path = Path(shutil.copyfile(clip10, tmp_path / "secret.mp4"))

    def refuse(file: object, *args: object, **kwargs: object) -> object:
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return builtins.open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(video, "open", refuse, raising=False)
    assert_video_error(path, "permission denied")


def test_truncated_without_index(clip10: Path, tmp_path: Path) -> None:
    # A default MP4 keeps its index at the end: any cut leaves nothing readable.
    assert_video_error(truncate(clip10, tmp_path / "cut.mp4", 0.5), "not a media file PyAV can read")


def test_truncated_keeps_decoded_frames_and_warns(clip8_faststart: Path, tmp_path: Path) -> None:
    cut = truncate(clip8_faststart, tmp_path / "cut.mp4", 0.6)
    with pytest.warns(VideoDecodeWarning, match=r"cut\.mp4: truncated or corrupt after \d+\.\ds") as record:
        batch = read_all(cut, fps=1.0)
    assert len(record) == 1
    assert 2 <= len(batch) < 8
    full = read_all(clip8_faststart, fps=1.0)
    np.testing.assert_array_equal(batch.timestamps, full.timestamps[: len(batch)])
    np.testing.assert_array_equal(batch.frames, full.frames[: len(batch)])
    # Fewer frames than the caller needs: the frames still come, then a VideoError.
    with pytest.warns(VideoDecodeWarning), pytest.raises(VideoError, match=r"cut\.mp4: only \d frame\(s\) decoded"):
        for _ in iter_frames(cut, fps=1.0, min_frames=8):
            pass
    # Keyframe mode on the same file.
    with pytest.warns(VideoDecodeWarning):
        keys = read_all(cut, keyframes=True)
    assert 2 <= len(keys) < 8


def test_truncated_to_almost_nothing(clip8_faststart: Path, tmp_path: Path) -> None:
    # Keep the index and the first 200 bytes of frame data: not even one whole frame.
    data = clip8_faststart.read_bytes()
    cut = truncate(clip8_faststart, tmp_path / "stub.mp4", (data.index(b"mdat") + 200) / len(data))
    with pytest.raises(VideoError) as excinfo:
        read_all(cut)
    assert "stub.mp4" in str(excinfo.value) and "could not decode any frame" in str(excinfo.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fps": 0},
        {"fps": -1.0},
        {"fps": math.nan},
        {"fps": math.inf},
        {"batch_size": 0},
        {"short_side": 0},
        {"min_frames": -1},
        {"threads": -1},
    ],
)
def test_invalid_arguments(clip10: Path, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        iter_frames(clip10, **kwargs)  # type: ignore[arg-type]
