"""The package's own exceptions. The CLI turns every ``VidretError`` into exit code 1."""

from __future__ import annotations

from pathlib import Path


class VidretError(Exception):
    """Base class of every error this package raises on purpose."""


class VideoError(VidretError):
    """A file could not be used as a video. Always names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DescriptorError(VidretError):
    """A descriptor's arrays are inconsistent (shapes, dtypes, order)."""


class ModelError(VidretError):
    """A model could not be built or its weights could not be loaded."""


class StoreError(VidretError):
    """A Milvus operation failed or was refused before it was sent."""


class DatabaseInUseError(StoreError):
    """A Milvus Lite file is already opened by another process."""


class ModelMismatchError(StoreError):
    """The collections were written by another model: codes of two models must never mix."""
