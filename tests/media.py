"""Deterministic synthetic media for the tests: videos, and files that are not videos.

Everything here is built from scikit-image's bundled sample photos (they ship inside
the wheel, so no network is needed) and written with PyAV, so a test can make the
exact input it needs in well under a second. Randomness always comes from an explicit
``np.random.Generator`` seeded by the caller: the same arguments give the same source
frames, timestamps and keyframe positions. The encoded pixels are not bit-identical from
run to run (libx264 here varies by a few grey levels even single-threaded), so tests
compare a file with itself or with tolerances, never with stored checksums.

Typical use::

    path = make_video(tmp_path / "a.mp4", ["astronaut", Scene("coffee", mirror=True)],
                      duration=6.0, fps=25, size=(320, 240), gop=25)
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
from PIL import Image

from vidret_milvus.clips import ken_burns

__all__ = [
    "PHOTOS",
    "FramesFn",
    "Scene",
    "photo",
    "ken_burns",
    "make_video",
    "make_vfr_video",
    "make_rotated_video",
    "make_audio_only",
    "write_zero_bytes",
    "write_random_bytes",
    "write_png",
    "truncate",
    "encoder_available",
]

# Colour photos bundled in the scikit-image wheel (no pooch download). Grey ones are
# listed too and are returned as 3 identical channels.
_COLOUR = {
    "astronaut": "astronaut",
    "chelsea": "chelsea",
    "coffee": "coffee",
    "rocket": "rocket",
    "immunohistochemistry": "immunohistochemistry",
    "hubble_deep_field": "hubble_deep_field",
    "retina": "retina",
    "colorwheel": "colorwheel",
}
_GREY = ("camera", "coins", "moon", "brick", "grass", "gravel", "text")
PHOTOS: tuple[str, ...] = (*_COLOUR, "motorcycle", *_GREY)
"""Names accepted by :func:`photo`."""

FramesFn = Callable[[int, float], np.ndarray]
"""``fn(index, seconds) -> (H, W, 3) uint8 RGB`` frame generator for :func:`make_video`."""


@functools.cache
def _photo_cached(name: str) -> np.ndarray:
    import skimage.data as data

    if name in _COLOUR:
        img = getattr(data, _COLOUR[name])()
    elif name == "motorcycle":
        img = data.stereo_motorcycle()[0]
    elif name in _GREY:
        img = getattr(data, name)()
    else:
        raise KeyError(f"unknown photo {name!r}; choose from {', '.join(PHOTOS)}")
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = np.ascontiguousarray(img[:, :, :3]).astype(np.uint8, copy=False)
    img.flags.writeable = False  # shared by the cache: callers must copy to modify
    return img


def photo(name: str) -> np.ndarray:
    """A bundled scikit-image sample photo as ``(H, W, 3)`` uint8 RGB (read-only array).

    ``name`` is one of :data:`PHOTOS`; grey images are expanded to three channels.
    """
    return _photo_cached(name)


@dataclass(frozen=True)
class Scene:
    """One shot of a synthetic video: a slow pan/zoom over (part of) a photo.

    image: a :data:`PHOTOS` name or an ``(H, W, 3)`` uint8 array.
    seconds: relative length of this shot; ``None`` means an equal share of the video.
    mirror: flip the photo left-right first (a typical near-duplicate edit).
    crop: ``(x0, y0, x1, y1)`` as fractions of the photo, to use only a region of it,
        e.g. two shots from different halves of one photo.
    """

    image: str | np.ndarray
    seconds: float | None = None
    mirror: bool = False
    crop: tuple[float, float, float, float] | None = None

    def pixels(self) -> np.ndarray:
        img = photo(self.image) if isinstance(self.image, str) else np.asarray(self.image, np.uint8)
        if self.crop is not None:
            h, w = img.shape[:2]
            x0, y0, x1, y1 = self.crop
            img = img[int(y0 * h) : max(int(y1 * h), int(y0 * h) + 2), int(x0 * w) : max(int(x1 * w), int(x0 * w) + 2)]
        if self.mirror:
            img = img[:, ::-1]
        return np.ascontiguousarray(img)


def encoder_available(name: str) -> bool:
    """Whether this PyAV build can encode with codec ``name``."""
    try:
        av.codec.Codec(name, "w")
    except Exception:  # noqa: BLE001 - PyAV raises different types across versions
        return False
    return True


def _scene_frames(
    content: Sequence[Scene | str], n_frames: int, size: tuple[int, int], rng: np.random.Generator
) -> Iterator[np.ndarray]:
    scenes = [s if isinstance(s, Scene) else Scene(s) for s in content]
    if not scenes:
        raise ValueError("empty scene list")
    weights = np.array([1.0 if s.seconds is None else float(s.seconds) for s in scenes])
    # Cumulative frame boundaries so the scene lengths add up to exactly n_frames.
    bounds = np.round(np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum() * n_frames).astype(int)
    for scene, lo, hi in zip(scenes, bounds[:-1], bounds[1:], strict=True):
        yield from ken_burns(scene.pixels(), int(hi - lo), size, rng)


def _open_encoder(
    container: av.container.OutputContainer,
    codec: str,
    rate: Fraction,
    size: tuple[int, int],
    gop: int,
    crf: int | None,
    bitrate: int | None,
    bframes: int | None,
    preset: str,
    pix_fmt: str | None,
) -> av.video.stream.VideoStream:
    if not encoder_available(codec):
        codec = "mpeg4"
    width, height = size
    if pix_fmt is None:
        # libx264 refuses odd sizes in 4:2:0; 4:4:4 keeps every size encodable.
        pix_fmt = "yuv444p" if codec == "libx264" and (width % 2 or height % 2) else "yuv420p"
    options: dict[str, str] = {}
    if codec == "libx264":
        # Fixed GOP and no scene-cut keyframes, so tests can predict keyframe times.
        params = [f"keyint={gop}", f"min-keyint={gop}", "scenecut=0"]
        if bframes is not None:
            params.append(f"bframes={bframes}")
        options["x264-params"] = ":".join(params)
        options["preset"] = preset
        if bitrate is None:
            options["crf"] = str(23 if crf is None else crf)
    elif codec == "mpeg4":
        options["sc_threshold"] = "1000000000"
        if bframes is not None:
            options["bf"] = str(bframes)
    stream = cast(av.video.stream.VideoStream, container.add_stream(codec, rate=rate, options=options))
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    stream.codec_context.gop_size = gop
    if bitrate is not None:
        stream.bit_rate = bitrate
    elif codec != "libx264":
        stream.bit_rate = 2_000_000
    return stream


def _encode(container: av.container.OutputContainer, stream: av.video.stream.VideoStream, frame: av.VideoFrame | None) -> None:
    for packet in stream.encode(frame):
        container.mux(packet)


def make_video(
    path: str | Path,
    content: FramesFn | Sequence[Scene | str] = ("astronaut",),
    duration: float = 4.0,
    fps: float = 25,
    size: tuple[int, int] = (320, 240),
    codec: str = "libx264",
    gop: int = 50,
    crf: int | None = None,
    bitrate: int | None = None,
    seed: int = 0,
    *,
    bframes: int | None = None,
    preset: str = "veryfast",
    pix_fmt: str | None = None,
    rotation: int = 0,
    audio: bool = False,
    faststart: bool = False,
    start: float = 0.0,
) -> Path:
    """Write a synthetic video and return its path.

    content: either a list of :class:`Scene` (or photo names), each a Ken Burns shot, or
        a function ``fn(index, seconds) -> (H, W, 3) uint8`` producing every frame.
    duration, fps: ``round(duration * fps)`` frames with pts ``i / fps`` (constant rate).
    size: ``(width, height)``; odd sizes are fine (4:4:4 is used for libx264).
    codec: ``"libx264"`` (falls back to ``"mpeg4"`` when this PyAV build lacks it).
    gop: exact keyframe interval in frames (scene-cut keyframes are disabled).
    crf / bitrate: quality control; CRF 23 by default for libx264.
    seed: seeds the pan/zoom paths.
    bframes: force the number of B-frames (``0`` for none); ``None`` keeps the default.
    preset: x264 preset (``veryfast`` keeps test set-up quick).
    rotation: display rotation, degrees clockwise (0/90/180/270) that a player turns the
        coded frames to show them upright; the convention of ``VideoInfo.rotation`` and
        of the legacy MP4 ``rotate`` tag (a portrait phone clip is 90).
    audio: add a quiet AAC sine track of the same length.
    faststart: put the MP4 index first, so a truncated copy stays readable.
    start: pts of the first frame in seconds (rounded to whole frames), for streams that
        do not start at 0 (as cut from a broadcast, or an MPEG-TS capture).
    """
    path = Path(path)
    rate = Fraction(fps).limit_denominator(100_000)
    n_frames = max(1, round(duration * fps))
    first_pts = round(start * fps)
    rng = np.random.Generator(np.random.PCG64(seed))
    if callable(content):
        fn = content
        frames: Iterator[np.ndarray] = (fn(i, i / fps) for i in range(n_frames))
    else:
        frames = _scene_frames(content, n_frames, size, rng)
    options = {"movflags": "+faststart"} if faststart else {}
    # Other suffixes (.ts, .mkv, .avi, .h264) pick their muxer by name.
    muxer = "mp4" if path.suffix.lower() in {".mp4", ".m4v", ""} else None
    with av.open(str(path), "w", format=muxer, options=options) as container:
        stream = _open_encoder(container, codec, rate, size, gop, crf, bitrate, bframes, preset, pix_fmt)
        if rotation:
            _set_rotation(stream, rotation)
        audio_stream = _add_audio(container) if audio else None
        for i, pixels in enumerate(frames):
            if pixels.shape != (size[1], size[0], 3):
                raise ValueError(f"frame {i} has shape {pixels.shape}, expected {(size[1], size[0], 3)}")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels, dtype=np.uint8), format="rgb24")
            frame.pts = first_pts + i
            frame.time_base = 1 / rate
            _encode(container, stream, frame)
        _encode(container, stream, None)
        if audio_stream is not None:
            _write_sine(container, audio_stream, n_frames / fps)
    return path


def make_vfr_video(
    path: str | Path,
    times: Sequence[float] | None = None,
    size: tuple[int, int] = (160, 120),
    seed: int = 0,
    *,
    codec: str = "libx264",
    gop: int = 30,
) -> Path:
    """Write a variable-frame-rate MP4 whose frames have the given pts (seconds).

    Timestamps are quantised to milliseconds (encoder time base 1/1000). Without ``times``
    a seeded irregular schedule over ~6 s is used (gaps of 10-300 ms). Each frame is a flat
    colour derived from its index so a test can tell frames apart, and B-frames are off
    (the MP4 muxer under-reports duration for VFR streams with B-frames).
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    if times is None:
        gaps = rng.uniform(0.010, 0.300, size=40)
        times = [0.0, *np.cumsum(gaps).tolist()]
    ms = [round(t * 1000) for t in times]
    if any(b <= a for a, b in zip(ms, ms[1:], strict=False)):
        raise ValueError("times must be strictly increasing (at millisecond precision)")
    width, height = size
    path = Path(path)
    with av.open(str(path), "w", format="mp4") as container:
        stream = _open_encoder(container, codec, Fraction(25), size, gop, None, None, 0, "veryfast", None)
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.time_base = Fraction(1, 1000)
        for i, t in enumerate(ms):
            frame = av.VideoFrame.from_ndarray(flat_frame(i, width, height), format="rgb24")
            frame.pts = t
            frame.time_base = Fraction(1, 1000)
            _encode(container, stream, frame)
        _encode(container, stream, None)
    return path


def flat_frame(index: int, width: int, height: int) -> np.ndarray:
    """A flat-colour frame whose colour encodes ``index`` (see :func:`flat_index`)."""
    # Big steps per channel survive lossy coding; 6 levels ** 3 = 216 distinct frames.
    levels = np.array([index % 6, (index // 6) % 6, (index // 36) % 6]) * 40 + 20
    return np.broadcast_to(levels.astype(np.uint8), (height, width, 3)).copy()


def flat_index(frame: np.ndarray) -> int:
    """Recover the index written by :func:`flat_frame` from a decoded frame."""
    levels = np.clip(np.round((frame.reshape(-1, 3).mean(axis=0) - 20) / 40), 0, 5).astype(int)
    return int(levels[0] + 6 * levels[1] + 36 * levels[2])


def _set_rotation(stream: av.video.stream.VideoStream, degrees_cw: int) -> None:
    if hasattr(stream, "set_display_rotation"):
        # PyAV's helper takes counter-clockwise degrees (VideoFrame.rotation's sign).
        stream.set_display_rotation(-degrees_cw)
    else:
        # Older FFmpeg mov muxers turn the legacy tag into a display matrix.
        stream.metadata["rotate"] = str(degrees_cw % 360)


def can_write_rotation() -> bool:
    """Whether this PyAV can store a display matrix (``VideoStream.set_display_rotation``)."""
    return hasattr(av.video.stream.VideoStream, "set_display_rotation")


def make_rotated_video(
    path: str | Path, rotation: int = 90, duration: float = 1.0, size: tuple[int, int] = (64, 32), fps: float = 10
) -> Path:
    """Write a video with a display-matrix rotation (degrees clockwise, as ``make_video``).

    Each frame is black with a white top-left quarter-block and a grey top-right one in
    *coded* orientation, so a test can check which way the frames were turned.
    """
    width, height = size

    def fn(i: int, t: float) -> np.ndarray:
        a = np.zeros((height, width, 3), np.uint8)
        a[: height // 2, : width // 4] = 255
        a[: height // 2, -width // 4 :] = 128
        return a

    return make_video(path, fn, duration=duration, fps=fps, size=size, gop=int(fps), rotation=rotation)


def _add_audio(container: av.container.OutputContainer) -> av.audio.stream.AudioStream:
    stream = container.add_stream("aac", rate=44_100)
    stream.layout = "mono"
    return stream


def _write_sine(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream, seconds: float) -> None:
    rate = stream.codec_context.sample_rate
    n = int(seconds * rate)
    t = np.arange(n) / rate
    samples = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    chunk = 1024
    fmt = stream.codec_context.format.name  # aac encodes planar float ("fltp")
    for start in range(0, n, chunk):
        block = samples[start : start + chunk][None, :]
        frame = av.AudioFrame.from_ndarray(block, format=fmt, layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def make_audio_only(path: str | Path, seconds: float = 2.0) -> Path:
    """Write an audio-only file (AAC in MP4/M4A, or PCM for ``.wav``)."""
    path = Path(path)
    if path.suffix.lower() == ".wav":
        rate = 16_000
        with av.open(str(path), "w", format="wav") as container:
            stream = container.add_stream("pcm_s16le", rate=rate)
            stream.layout = "mono"
            n = int(seconds * rate)
            samples = (3000 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.int16)[None, :]
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = 0
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        return path
    with av.open(str(path), "w", format="mp4") as container:
        _write_sine(container, _add_audio(container), seconds)
    return path


def write_zero_bytes(path: str | Path) -> Path:
    """Create an empty file."""
    path = Path(path)
    path.write_bytes(b"")
    return path


def write_random_bytes(path: str | Path, n: int = 100_000, seed: int = 0) -> Path:
    """Write ``n`` seeded random bytes (not any media format, whatever the suffix says)."""
    path = Path(path)
    path.write_bytes(np.random.Generator(np.random.PCG64(seed)).bytes(n))
    return path


def write_png(path: str | Path, name: str = "chelsea") -> Path:
    """Write a bundled photo as a PNG (or JPEG, by suffix) still image."""
    path = Path(path)
    Image.fromarray(np.ascontiguousarray(photo(name))).save(path)
    return path


def truncate(src: str | Path, dst: str | Path, fraction: float) -> Path:
    """Copy the first ``fraction`` of ``src``'s bytes to ``dst`` (a cut-off download).

    Use an MP4 written with ``faststart=True`` when the copy should stay openable: a
    default MP4 keeps its index at the end, so any cut makes it unreadable.
    """
    src, dst = Path(src), Path(dst)
    if not 0 <= fraction <= 1:
        raise ValueError("fraction must be in [0, 1]")
    data = src.read_bytes()
    if fraction == 1:
        shutil.copyfile(src, dst)
    else:
        dst.write_bytes(data[: int(len(data) * fraction)])
    return dst
