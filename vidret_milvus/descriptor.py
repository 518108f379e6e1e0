"""One descriptor type for a whole video: timestamps and per-frame embeddings and codes."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from .errors import DescriptorError

# Codes are packed MSB first (np.packbits). The patent's code has 128 bits; a model may use
# longer ones (ModelConfig.code_bits, a multiple of 8): at 256 bits more copied frames fall within
# the radius at the same share of reference frames (README, "Longer codes").
MAX_CODE_BITS = 1024
# A saved descriptor's arrays, uncompressed: 65,536 frames (the most a stored video may have) of
# 1,024-d float32 embeddings is 256 MiB; twice that is room and still a bound.
MAX_LOAD_BYTES = 512 * 1024 * 1024


@dataclasses.dataclass
class VideoDescriptor:
    """Fingerprint of one video.

    ``timestamps[i]`` is the presentation time in seconds of the frame whose texture
    embedding is ``embeddings[i]`` and whose packed binary code is ``codes[i]``.
    """

    video_id: int
    path: str
    duration: float
    timestamps: np.ndarray  # (N,) float32, non-decreasing
    embeddings: np.ndarray  # (N, D) float32
    codes: np.ndarray  # (N, code_bits / 8) uint8, packed MSB first
    fps: float = 1.0
    model_id: str = ""

    def __post_init__(self) -> None:
        self.timestamps = np.ascontiguousarray(self.timestamps, dtype=np.float32)
        if self.embeddings.dtype != np.float32:
            raise DescriptorError(f"embeddings must be float32, got {self.embeddings.dtype}")
        if self.codes.dtype != np.uint8:
            raise DescriptorError(f"codes must be uint8, got {self.codes.dtype}")
        n = len(self.timestamps)
        if self.timestamps.ndim != 1:
            raise DescriptorError(f"timestamps must be 1-D, got shape {self.timestamps.shape}")
        if self.embeddings.ndim != 2 or self.embeddings.shape[0] != n:
            raise DescriptorError(f"embeddings must be ({n}, D), got {self.embeddings.shape}")
        if self.codes.ndim != 2 or self.codes.shape[0] != n or not 1 <= self.codes.shape[1] <= MAX_CODE_BITS // 8:
            raise DescriptorError(f"codes must be ({n}, B) packed bytes with 1 <= B <= {MAX_CODE_BITS // 8}, got {self.codes.shape}")
        if n and np.any(np.diff(self.timestamps) < 0):
            raise DescriptorError("timestamps must be non-decreasing")
        if not np.all(np.isfinite(self.embeddings)):
            raise DescriptorError("embeddings contain NaN or inf")
        if not (np.isfinite(self.duration) and self.duration >= 0):
            raise DescriptorError(f"duration must be finite and >= 0, got {self.duration}")
        self.video_id = int(self.video_id)

    @property
    def num_frames(self) -> int:
        return len(self.timestamps)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def code_bits(self) -> int:
        return int(self.codes.shape[1]) * 8

    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` without pickled objects (metadata travels as JSON text)."""
        meta = {
            "video_id": self.video_id,
            "path": self.path,
            "duration": float(self.duration),
            "fps": float(self.fps),
            "model_id": self.model_id,
        }
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
            timestamps=self.timestamps,
            embeddings=self.embeddings,
            codes=self.codes,
        )
        Path(path).write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: str | Path, max_bytes: int = MAX_LOAD_BYTES) -> "VideoDescriptor":
        """Read a ``.npz`` written by :meth:`save`. Its arrays may hold at most ``max_bytes``
        once decompressed (checked from the zip directory before anything is inflated: an
        uploaded file is small on the wire and must not be allowed to expand without bound)."""
        _check_sizes(path, max_bytes)
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(z["meta"].tobytes().decode("utf-8"))
                return cls(
                    video_id=meta["video_id"],
                    path=meta["path"],
                    duration=meta["duration"],
                    fps=meta.get("fps", 1.0),
                    model_id=meta.get("model_id", ""),
                    timestamps=z["timestamps"],
                    embeddings=z["embeddings"],
                    codes=z["codes"],
                )
        except DescriptorError as exc:  # arrays of the wrong shape or type: name the file
            raise DescriptorError(f"{path}: {exc}") from exc
        except (OSError, KeyError, ValueError, MemoryError) as exc:
            raise DescriptorError(f"{path}: not a vidret descriptor file ({type(exc).__name__}: {exc})") from exc


def _check_sizes(path: str | Path, max_bytes: int) -> None:
    """Refuse a ``.npz`` whose arrays would take more than ``max_bytes``, before any is read:
    the zip directory gives each member's inflated size, and each ``.npy`` header its declared
    shape, from which numpy would allocate (a tiny file can declare a huge shape)."""
    from numpy.lib import format as npy

    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
            inflated = sum(i.file_size for i in members)
            if inflated > max_bytes:
                raise DescriptorError(f"{path}: descriptor too large ({inflated} bytes uncompressed, at most {max_bytes})")
            declared = 0
            for info in members:
                with zf.open(info) as fh:
                    version = npy.read_magic(fh)
                    if version not in ((1, 0), (2, 0)):
                        raise DescriptorError(f"{path}: array {info.filename} has .npy format {version}, not 1.0 or 2.0")
                    read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                    shape, _, dtype = read(fh)
                size = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                if size > info.file_size:  # a header promising more data than the member holds
                    raise DescriptorError(f"{path}: array {info.filename} declares {size} bytes but holds {info.file_size}")
                declared += size
    except DescriptorError:
        raise
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise DescriptorError(f"{path}: not a vidret descriptor file ({type(exc).__name__}: {exc})") from exc
    if declared > max_bytes:
        raise DescriptorError(f"{path}: descriptor too large ({declared} bytes, at most {max_bytes})")
