"""Reading videos with PyAV: metadata (:func:`probe`) and sampled RGB frames (:func:`iter_frames`).

Every unusable input becomes a :class:`~vidret_milvus.errors.VideoError` naming the file and
the reason, so a batch job can log it and move on. Damage found only while decoding (a
cut-off download, corrupt packets) is not fatal: the frames decoded so far are kept and a
:class:`VideoDecodeWarning` is issued; only when too few frames come out is it an error.

Frames are streamed in bounded batches, never the whole video, and come out upright
(rotation metadata applied) as ``uint8`` RGB.
"""

from __future__ import annotations

import math
import os
import stat
import warnings
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import av.error
import numpy as np

from .errors import VideoError

__all__ = [
    "FrameBatch",
    "VideoDecodeWarning",
    "VideoError",
    "VideoInfo",
    "iter_frames",
    "probe",
    "read_all",
]

# Codecs that PyAV/FFmpeg use for still pictures; with no duration they are a photo.
# (GIF is left out: an animated GIF is a video, and it has a duration.)
_IMAGE_CODECS = frozenset(
    {"png", "apng", "mjpeg", "jpegls", "jpeg2000", "bmp", "tiff", "webp", "qoi", "ppm", "pgm", "pam", "jpegxl"}
)

# Tolerance when comparing float times: pts * time_base rarely lands exactly on k / fps.
_EPS = 1e-6


class VideoDecodeWarning(UserWarning):
    """Part of a video could not be decoded (truncated or corrupt); the rest was used."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns about a video without decoding it all.

    width/height are the size of the frames :func:`iter_frames` returns without
    ``short_side``: the coded size turned by ``rotation`` (pixel aspect ratio is not
    applied). ``rotation`` is the clockwise turn, in degrees (0, 90, 180 or 270), a
    player applies to show the picture upright; the legacy MP4 ``rotate`` tag and
    exiftool use the same convention (a portrait phone clip is usually 90).
    """

    path: str
    duration: float
    width: int
    height: int
    rotation: int
    avg_fps: float | None
    codec: str
    format: str
    has_audio: bool


@dataclass
class FrameBatch:
    """Consecutive sampled frames.

    timestamps: ``(B,)`` float64, each frame's own presentation time in seconds from the
        start of the video stream.
    frames: ``(B, H, W, 3)`` uint8 RGB, upright.
    """

    timestamps: np.ndarray
    frames: np.ndarray

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])


def _reason(exc: BaseException) -> str:
    # FFmpegError's str() repeats errno and file name; strerror is the useful part.
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text)


def _check_file(path: str | os.PathLike[str]) -> str:
    """Absolute path of ``path`` after checking it is a non-empty readable regular file."""
    abspath = os.path.abspath(os.fspath(path))
    try:
        st = os.stat(abspath)
    except (FileNotFoundError, NotADirectoryError):
        raise VideoError(abspath, "file not found") from None
    except PermissionError:
        raise VideoError(abspath, "permission denied (cannot access the file)") from None
    except OSError as exc:
        raise VideoError(abspath, f"cannot access the file: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise VideoError(abspath, "not a regular file (it is a directory)")
    if not stat.S_ISREG(st.st_mode):
        raise VideoError(abspath, "not a regular file")
    if st.st_size == 0:
        raise VideoError(abspath, "empty file (0 bytes)")
    try:
        # A real open, not os.access: access() answers for the real uid and lies under root.
        with open(abspath, "rb"):
            pass
    except PermissionError:
        raise VideoError(abspath, "permission denied (file is not readable)") from None
    except OSError as exc:
        raise VideoError(abspath, f"cannot read the file: {exc.strerror or exc}") from None
    return abspath


def _open(abspath: str) -> Any:
    try:
        return av.open(abspath, metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise VideoError(abspath, f"not a media file PyAV can read: {_reason(exc)}") from None
    except (UnicodeDecodeError, ValueError, EOFError) as exc:
        # Some garbage makes the demuxer fail outside FFmpegError (e.g. bad metadata).
        raise VideoError(abspath, f"not a media file PyAV can read: {_reason(exc)}") from None


def _is_attached_picture(stream: Any) -> bool:
    # Cover art in an MP3/M4A is a "video" stream holding one picture.
    disposition = getattr(stream, "disposition", None)
    flag = getattr(getattr(av.stream, "Disposition", None), "attached_pic", None)
    if disposition is None or flag is None:
        return False
    try:
        return bool(disposition & flag)
    except TypeError:
        return False


def _video_stream(container: Any, abspath: str) -> Any:
    streams = [s for s in container.streams.video if not _is_attached_picture(s)]
    if streams:
        if streams[0].codec_context is None:
            raise VideoError(abspath, "no decoder for its video codec in this PyAV build")
        return streams[0]
    if container.streams.audio:
        raise VideoError(abspath, "no video stream (audio only)")
    raise VideoError(abspath, "no video stream")


def _is_still_image(container: Any, stream: Any) -> bool:
    names = container.format.name.split(",")
    if any("image2" in n or n.endswith("_pipe") for n in names):
        return True
    codec = stream.codec_context.name
    # A PNG/JPEG inside a generic container with no timing is still one picture; Motion
    # JPEG video has a duration and more than one frame, so it passes.
    untimed = not stream.duration and not container.duration
    return codec in _IMAGE_CODECS and untimed and (stream.frames or 0) <= 1


def _rotation_cw(frame: Any | None, stream: Any) -> int:
    """Clockwise display rotation in degrees (0/90/180/270) from the frame or the stream."""
    ccw: float | None = None
    if frame is not None:
        try:
            ccw = frame.rotation  # PyAV >= 13 reads the frame's display matrix
        except AttributeError:
            ccw = None
    if not ccw:
        # Older FFmpeg exported the display matrix as the legacy "rotate" tag (clockwise).
        tag = stream.metadata.get("rotate")
        if tag:
            try:
                ccw = -float(tag)
            except ValueError:
                ccw = None
    if not ccw:
        return 0
    return int(round(-ccw / 90.0)) * 90 % 360


def _packet_end(container: Any, stream: Any) -> int | None:
    """Largest ``pts + duration`` among the packets from the current position to the end."""
    end: int | None = None
    untimed = 0  # summed durations of packets without pts (raw elementary streams)
    for packet in container.demux(stream):
        if packet.pts is None:
            untimed += packet.duration or 0
            continue
        stop = packet.pts + (packet.duration or 0)
        end = stop if end is None else max(end, stop)
    if end is None and untimed:
        return (stream.start_time or 0) + untimed
    return end


def _measured_duration(container: Any, stream: Any, start: int, abspath: str) -> float:
    """Duration from packet timestamps, for streams whose header gives none (MKV, raw H.264).

    Matroska and friends only store a container duration, which some muxers write as the
    end timestamp instead of the length (wrong when the stream starts late), so the
    packets of the last GOP are read instead: seek to the end, demux (no decoding) to EOF.
    """
    tb = stream.time_base
    if tb is None:
        return container.duration / av.time_base if container.duration else 0.0
    hint = container.duration / av.time_base if container.duration else None
    end: int | None = None
    if hint is not None:
        try:
            container.seek(start + int(hint / tb), stream=stream, backward=True)
            end = _packet_end(container, stream)
        except av.error.FFmpegError:
            end = None
        if end is None:
            return hint
    else:
        # Nothing to go by: read every packet (I/O only, no decoding). A fresh container,
        # because raw elementary streams refuse to seek back to the start.
        try:
            with av.open(abspath, metadata_errors="ignore") as fresh:
                end = _packet_end(fresh, fresh.streams[stream.index])
        except (av.error.FFmpegError, IndexError):
            end = None
    return float((end - start) * tb) if end is not None else 0.0


def _first_frame(container: Any, stream: Any) -> Any:
    for frame in container.decode(stream):
        return frame
    return None


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Open ``path``, check it is a usable video and return its :class:`VideoInfo`.

    Decodes only the first frame (for the rotation, and to prove the stream decodes).
    Raises :class:`VideoError` for a missing, unreadable, empty or non-media file, an
    audio-only file, a still image, a zero-length video or one with no decodable frame.
    """
    abspath = _check_file(path)
    with _open(abspath) as container:
        stream = _video_stream(container, abspath)
        if _is_still_image(container, stream):
            raise VideoError(abspath, f"image file, not a video ({container.format.name}, {stream.codec_context.name})")
        try:
            frame = _first_frame(container, stream)
        except av.error.FFmpegError as exc:
            raise VideoError(abspath, f"could not decode any frame: {_reason(exc)}") from None
        if frame is None:
            raise VideoError(abspath, "could not decode any frame: the video stream is empty")
        rotation = _rotation_cw(frame, stream)
        width, height = frame.width, frame.height
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        else:
            start = stream.start_time if stream.start_time is not None else (frame.pts or 0)
            duration = _measured_duration(container, stream, start, abspath)
        if not duration > 0:
            raise VideoError(abspath, "zero duration")
        if rotation in (90, 270):
            width, height = height, width
        rate = stream.average_rate
        return VideoInfo(
            path=abspath,
            duration=duration,
            width=int(width),
            height=int(height),
            rotation=rotation,
            avg_fps=float(rate) if rate else None,
            codec=stream.codec_context.name,
            format=container.format.name,
            has_audio=bool(container.streams.audio),
        )


def _scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int] | None:
    """Coded size to convert to so the short side is ``short_side`` (None: keep as is)."""
    if short_side is None or min(width, height) <= short_side:
        return None
    scale = short_side / min(width, height)
    if width <= height:
        return short_side, max(1, round(height * scale))
    return max(1, round(width * scale)), short_side


def _to_rgb(frame: Any, short_side: int | None, rotation_cw: int) -> np.ndarray:
    size = _scaled_size(frame.width, frame.height, short_side)
    if size is None:
        array = frame.to_ndarray(format="rgb24")
    else:
        # swscale resizes while converting, far cheaper than converting then resizing.
        array = frame.to_ndarray(width=size[0], height=size[1], format="rgb24", interpolation="AREA")
    if rotation_cw:
        array = np.rot90(array, k=-rotation_cw // 90)
    return array


def _is_keyframe(frame: Any) -> bool:
    if frame.key_frame:
        return True
    # Non-IDR I-frames are kept by skip_frame="NONKEY" too; they are just as self-contained.
    return getattr(frame.pict_type, "name", str(frame.pict_type)) == "I"


def _validate(fps: float, batch_size: int, threads: int, short_side: int | None, min_frames: int) -> None:
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads must be an integer >= 0 (0 = FFmpeg decides), got {threads!r}")
    if short_side is not None and (isinstance(short_side, bool) or not isinstance(short_side, int) or short_side < 1):
        raise ValueError(f"short_side must be None or an integer >= 1, got {short_side!r}")
    if isinstance(min_frames, bool) or not isinstance(min_frames, int) or min_frames < 0:
        raise ValueError(f"min_frames must be an integer >= 0, got {min_frames!r}")


def iter_frames(
    path: str | os.PathLike[str],
    fps: float = 1.0,
    keyframes: bool = False,
    batch_size: int = 32,
    threads: int = 2,
    short_side: int | None = None,
    min_frames: int = 1,
) -> Iterator[FrameBatch]:
    """Sample frames of a video as upright RGB, in batches of at most ``batch_size``.

    Uniform mode (default): for each target time ``k / fps`` (k = 0, 1, ... while it is
    before the end of the video) take the frame on screen at that time, i.e. the last
    frame whose pts is <= the target (the first frame for targets before it). Each
    frame is returned at most once, with its own pts as timestamp, so a frame rate below
    ``fps`` gives fewer frames than targets. Works for variable frame rate and streams
    whose pts do not start at 0 (times are relative to the stream start).

    keyframes=True: every keyframe instead, ``fps`` ignored (only keyframes are decoded).

    short_side: downscale (never upscale) so the shorter side has this many pixels,
    keeping the aspect ratio. threads: decoder threads (0 lets FFmpeg choose).

    Bad files raise :class:`VideoError` at once (before iteration). Damage met while
    decoding issues a :class:`VideoDecodeWarning` and ends the stream after the frames
    already decoded; if fewer than ``min_frames`` frames came out in total, a
    :class:`VideoError` is raised at the end of iteration.
    """
    _validate(fps, batch_size, threads, short_side, min_frames)
    info = probe(path)
    return _generate(info, float(fps), keyframes, batch_size, threads, short_side, min_frames)


def read_all(path: str | os.PathLike[str], **kwargs: Any) -> FrameBatch:
    """All sampled frames of ``path`` in one batch (keyword arguments as :func:`iter_frames`).

    Holds every frame in memory: meant for short clips and tests.
    """
    batches = list(iter_frames(path, **kwargs))
    if not batches:
        return FrameBatch(np.zeros((0,), np.float64), np.zeros((0, 0, 0, 3), np.uint8))
    return FrameBatch(
        np.concatenate([b.timestamps for b in batches]),
        np.concatenate([b.frames for b in batches]),
    )


class _Lookahead:
    """Demuxes packets a little ahead and says which ones sampling may need decoded.

    Decoding every frame is the main cost at low sampling rates, and roughly half of
    H.264/HEVC frames are non-reference B-frames that nothing else depends on. A packet's
    frame is *needed* unless another packet with a later pts, still at or before the next
    target time, is in view: then that later frame is the one on screen at the target.
    Unneeded packets are decoded with ``skip_frame="NONREF"``, which drops them only when
    no other frame refers to them. Whenever the window cannot prove a frame unneeded it
    counts as needed, so the result is exactly that of decoding everything.
    """

    _AHEAD = 32  # packets read ahead; > any real B-frame reorder depth (H.264 max 16)

    def __init__(self, demuxer: Iterator[Any], stream: Any, start: int | None, fps: float, selective: bool) -> None:
        self._demuxer = demuxer
        self._tb = stream.time_base
        self.start = start  # pts of the stream start; found from packets when None
        self._fps = fps
        self._selective = selective and self._tb is not None
        self._ahead: deque[tuple[Any, float | None]] = deque()
        self._behind: deque[float] = deque(maxlen=2 * self._AHEAD)
        self._min_t = math.inf
        self._eof = False
        self.error: str | None = None  # why reading stopped early, if it did
        self.corrupt: str | None = None  # set when a damaged packet was dropped
        self.corrupt_at = 0.0
        self._untimed = 0
        self._timed = True
        self.end_time = 0.0  # end of the last packet read, seconds from stream start

    def _read(self) -> Any | None:
        """The next packet worth decoding, or None at the end (or when reading failed)."""
        while not self._eof:
            try:
                packet = next(self._demuxer)
            except StopIteration:
                self._eof = True
                break
            except av.error.FFmpegError as exc:
                # Truncated or corrupt container: stop reading, keep what was read.
                self.error = _reason(exc)
                self._eof = True
                break
            if packet.size == 0:
                continue  # PyAV's end-of-stream marker; the decoder is flushed explicitly
            if getattr(packet, "is_corrupt", False):
                # Typically the cut-off last packet of a truncated file. Decoding it makes
                # a frame-threaded decoder fail during the final flush and lose the frames
                # still in flight, so it is dropped.
                if self.corrupt is None:
                    self.corrupt = "incomplete or corrupt packet"
                    self.corrupt_at = self.end_time
                continue
            return packet
        return None

    def _fill(self) -> None:
        if self.start is None:
            # No start_time in the headers: the smallest pts among the first packets is
            # the start (the first packet in decode order need not be the first shown).
            first: list[Any] = []
            while len(first) < self._AHEAD and (packet := self._read()) is not None:
                first.append(packet)
            timed = [p.pts for p in first if p.pts is not None]
            self.start = min(timed) if timed else 0
            self._timed = bool(timed)
            for packet in first:
                self._push(packet)
        while len(self._ahead) < self._AHEAD:
            packet = self._read()
            if packet is None:
                break
            self._push(packet)

    def _push(self, packet: Any) -> None:
        t: float | None = None
        if packet.pts is not None and self._tb is not None:
            t = float((packet.pts - (self.start or 0)) * self._tb)
            self._min_t = min(self._min_t, t)
            span = float(packet.duration * self._tb) if packet.duration else 0.0
            self.end_time = max(self.end_time, t + span)
        elif packet.duration and self._tb is not None:
            # Raw elementary streams have no pts, only durations: count them up.
            self._untimed += packet.duration
            self.end_time = max(self.end_time, float(self._untimed * self._tb))
        self._ahead.append((packet, t))

    @property
    def timed(self) -> bool:
        """Whether the first packets carry pts (false for raw H.264/HEVC streams)."""
        self._fill()
        return self._timed

    def _needed(self, t: float | None) -> bool:
        if not self._selective or t is None or t <= self._min_t:
            return True  # untimed, or the earliest frame (which takes targets before it)
        target = math.ceil((t - _EPS) * self._fps) / self._fps
        limit = target + _EPS
        if any(t < other <= limit for other in self._behind):
            return False
        return not any(ahead is not None and t < ahead <= limit for _, ahead in self._ahead)

    def __iter__(self) -> Iterator[tuple[Any, float | None, bool]]:
        while True:
            self._fill()
            if not self._ahead:
                return
            packet, t = self._ahead.popleft()
            needed = self._needed(t)
            if t is not None:
                self._behind.append(t)
            yield packet, t, needed


class _Batcher:
    """Collects converted frames and hands out full batches."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.times: list[float] = []
        self.frames: list[np.ndarray] = []
        self.total = 0

    def add(self, t: float, array: np.ndarray) -> FrameBatch | None:
        self.times.append(t)
        self.frames.append(array)
        self.total += 1
        if len(self.times) >= self.batch_size:
            return self.flush()
        return None

    def flush(self) -> FrameBatch | None:
        if not self.times:
            return None
        batch = FrameBatch(np.asarray(self.times, dtype=np.float64), np.stack(self.frames))
        self.times, self.frames = [], []
        return batch


def _generate(
    info: VideoInfo,
    fps: float,
    keyframes: bool,
    batch_size: int,
    threads: int,
    short_side: int | None,
    min_frames: int,
) -> Iterator[FrameBatch]:
    path = info.path
    batcher = _Batcher(batch_size)
    error: str | None = None  # first decoding problem, for the warning
    error_at = 0.0  # stream time it happened at

    with _open(path) as container:
        stream = _video_stream(container, path)
        ctx = stream.codec_context
        # Frame + slice threads; frame threading is what scales H.264 decoding.
        stream.thread_type = "AUTO"
        ctx.thread_count = threads
        tb: Fraction = stream.time_base
        frame_step = 1.0 / info.avg_fps if info.avg_fps else 0.04

        # Uniform-sampling state: the previous frame is kept (unconverted) until the next
        # one shows whether it was on screen at a target time.
        k = 0  # index of the next target time k / fps
        prev: Any = None
        prev_t = -math.inf
        prev_taken = False

        packets = _Lookahead(container.demux(stream), stream, stream.start_time, fps, selective=not keyframes)
        if keyframes and packets.timed:
            # Without pts, times are counted frame by frame, so every frame must come out.
            ctx.skip_frame = "NONKEY"

        def frames() -> Iterator[Any]:
            nonlocal error, error_at
            decode_errors = 0
            skip = ctx.skip_frame
            for packet, packet_t, needed in packets:
                if not keyframes:
                    # Changing skip_frame per packet is honoured even with frame threads
                    # (FFmpeg copies it into the worker context on each submission).
                    want = "DEFAULT" if needed else "NONREF"
                    if want != skip:
                        ctx.skip_frame = skip = want
                try:
                    yield from stream.decode(packet)
                except av.error.FFmpegError as exc:
                    # One bad packet: note it and go on, as players do.
                    if error is None:
                        error, error_at = _reason(exc), packet_t or 0.0
                    decode_errors += 1
                    if decode_errors > 50:
                        break
            try:
                # Drain the frames still buffered in the decoder (reordering, threads).
                yield from stream.decode(None)
            except (av.error.FFmpegError, EOFError) as exc:
                if error is None:
                    error, error_at = _reason(exc), packets.end_time

        for frame in frames():
            if frame.pts is not None and tb is not None:
                t = float((frame.pts - (packets.start or 0)) * tb)
            else:
                # No timestamp at all (rare raw streams): assume a constant rate.
                t = prev_t + frame_step if prev is not None else 0.0
            if prev is not None and t <= prev_t:
                continue  # duplicate or out-of-order pts after damage: keep the first

            if keyframes:
                if _is_keyframe(frame):
                    batch = batcher.add(t, _to_rgb(frame, short_side, info.rotation))
                    if batch is not None:
                        yield batch
                prev, prev_t = frame, t
                continue

            # Targets strictly before this frame's pts were showing the previous frame;
            # before the first frame, they take the first frame. A target within _EPS
            # of this pts belongs to this frame and is settled by the next one.
            if k / fps < t - _EPS:
                taken_now = False
                if prev is None:
                    batch = batcher.add(t, _to_rgb(frame, short_side, info.rotation))
                    taken_now = True
                elif not prev_taken:
                    batch = batcher.add(prev_t, _to_rgb(prev, short_side, info.rotation))
                else:
                    batch = None
                # Jump, not step: a damaged pts far in the future must not spin here.
                k = max(k + 1, math.ceil((t - _EPS) * fps))
                if batch is not None:
                    yield batch
            else:
                taken_now = False
            prev, prev_t, prev_taken = frame, t, taken_now

        # A cut-off file often still parses (the index survives) and just ends early.
        truncated = packets.error is not None or packets.end_time < info.duration - max(1.0, 0.05 * info.duration)
        if error is None and (packets.error or packets.corrupt):
            error = packets.error or packets.corrupt
            error_at = packets.end_time if packets.error else packets.corrupt_at
        if truncated and error is None:
            error, error_at = f"stream ends at {packets.end_time:.1f}s of {info.duration:.1f}s", packets.end_time
        if not keyframes and prev is not None and not prev_taken:
            # The last frame stays on screen until the end of the video; when the file
            # was cut short, that end is unknown and only a target at its own pts counts.
            end = prev_t + _EPS if truncated else max(info.duration, prev_t + _EPS)
            if k / fps < end:
                batch = batcher.add(prev_t, _to_rgb(prev, short_side, info.rotation))
                if batch is not None:
                    yield batch

    if error is not None:
        warnings.warn(f"{path}: truncated or corrupt after {error_at:.1f}s: {error}", VideoDecodeWarning, stacklevel=2)
    batch = batcher.flush()
    if batch is not None:
        yield batch
    if batcher.total < min_frames:
        if batcher.total == 0:
            raise VideoError(path, f"could not decode any frame: {error or 'no frame decoded'}")
        raise VideoError(
            path, f"only {batcher.total} frame(s) decoded, fewer than min_frames={min_frames}" + (f": {error}" if error else "")
        )
