"""Frame sizes and durations read from file headers: PNG/JPEG (pure Python), MP4 ``moov``
(pure Python), any container with PyAV when it is importable."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any, BinaryIO, Iterable

# --------------------------------------------------------------------------- #
# Image size from PNG / JPEG headers
# --------------------------------------------------------------------------- #
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers carrying the frame size (not DHT=C4, JPG=C8, DAC=CC).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# Markers without a length field.
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def image_size_from_bytes(head: bytes) -> tuple[str, int, int] | None:
    """Return ``(format, width, height)`` for PNG or JPEG data, else ``None``.

    ``head`` may be a prefix of the file: the PNG size is in the first 24
    bytes; a JPEG's SOF segment normally follows EXIF/ICC blocks, so callers
    should pass enough bytes (``image_size`` reads up to 4 MiB).
    """
    if head.startswith(PNG_SIGNATURE):
        if len(head) < 24 or head[12:16] != b"IHDR":
            return None
        width, height = struct.unpack(">II", head[16:24])
        return "png", width, height
    if head[:2] == b"\xff\xd8":
        i, n = 2, len(head)
        while i < n:
            # Find the next marker: 0xFF followed by a non-0xFF, non-zero byte.
            if head[i] != 0xFF:
                i += 1
                continue
            while i < n and head[i] == 0xFF:
                i += 1
            if i >= n:
                return None
            marker = head[i]
            i += 1
            if marker == 0x00 or marker in _JPEG_STANDALONE:
                continue
            if marker in (0xD9, 0xDA):  # end of image / start of scan: no SOF seen
                return None
            if i + 2 > n:
                return None
            (seg_len,) = struct.unpack(">H", head[i : i + 2])
            if marker in _JPEG_SOF:
                if i + 7 > n:
                    return None
                height, width = struct.unpack(">HH", head[i + 3 : i + 7])
                return "jpeg", width, height
            i += seg_len
        return None
    return None


def image_size(path: Path, max_bytes: int = 4 << 20) -> tuple[str, int, int] | None:
    """Size of a PNG/JPEG file; reads 64 KiB, then up to ``max_bytes`` for JPEGs whose
    frame header sits behind large EXIF/ICC/thumbnail segments."""
    with open(path, "rb") as f:
        head = f.read(64 << 10)
        found = image_size_from_bytes(head)
        if found is None and head[:2] == b"\xff\xd8" and len(head) == 64 << 10:
            found = image_size_from_bytes(head + f.read(max_bytes - len(head)))
        return found


# --------------------------------------------------------------------------- #
# MP4 duration / frame size from the moov box (pure Python, for reporting)
# --------------------------------------------------------------------------- #
def _iter_boxes(f: BinaryIO, start: int, end: int) -> Iterable[tuple[bytes, int, int]]:
    """Yield (type, payload_start, box_end) for ISO-BMFF boxes in [start, end)."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        header = f.read(8)
        if len(header) < 8:
            return
        size, kind = struct.unpack(">I4s", header)
        payload = pos + 8
        if size == 1:
            (size,) = struct.unpack(">Q", f.read(8))
            payload = pos + 16
        elif size == 0:
            size = end - pos
        if size < 8:
            return
        yield kind, payload, pos + size
        pos += size


def mp4_info(path: Path) -> dict[str, Any]:
    """Duration (s) from ``mvhd`` and the first video track's size from ``tkhd``."""
    info: dict[str, Any] = {}
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        for kind, payload, box_end in _iter_boxes(f, 0, end):
            if kind != b"moov":
                continue
            for sub, spay, send in _iter_boxes(f, payload, box_end):
                f.seek(spay)
                if sub == b"mvhd":
                    version = f.read(4)[0]
                    if version == 1:
                        _, _, timescale, duration = struct.unpack(">QQIQ", f.read(28))
                    else:
                        _, _, timescale, duration = struct.unpack(">IIII", f.read(16))
                    if timescale:
                        info["duration_s"] = round(duration / timescale, 3)
                elif sub == b"trak" and "width" not in info:
                    for tsub, tpay, tend in _iter_boxes(f, spay, send):
                        if tsub == b"tkhd":
                            # width/height are the last 8 bytes, 16.16 fixed point
                            f.seek(tend - 8)
                            w, h = struct.unpack(">II", f.read(8))
                            if w and h:
                                info["width"], info["height"] = w >> 16, h >> 16
            break
    return info


# --------------------------------------------------------------------------- #
# Any container, with PyAV
# --------------------------------------------------------------------------- #
def probe_video(path: Path) -> dict[str, Any]:
    """``duration_s``, ``width``, ``height`` with PyAV when it is importable.

    The script must run without the project's virtualenv: without PyAV, MP4s
    still get their numbers from the pure-Python ``moov`` reader, other
    containers get none (the fields are then left out of the manifest).
    """
    try:
        import av  # type: ignore[import-not-found]
    except ImportError:
        av = None
    if av is not None:
        try:
            with av.open(str(path)) as c:
                streams = [s for s in c.streams if s.type == "video"]
                if not streams:
                    return {}
                s = streams[0]
                info: dict[str, Any] = {}
                if c.duration:
                    info["duration_s"] = round(c.duration / 1_000_000, 3)
                elif s.duration and s.time_base:
                    info["duration_s"] = round(float(s.duration * s.time_base), 3)
                if s.codec_context.width and s.codec_context.height:
                    info["width"] = s.codec_context.width
                    info["height"] = s.codec_context.height
                return info
        except Exception:  # noqa: BLE001 - a probe failure only drops the numbers
            return {}
    if path.suffix.lower() in (".mp4", ".mov", ".m4v"):
        try:
            return mp4_info(path)
        except (OSError, struct.error):
            return {}
    return {}
