"""Ingesting a folder: find videos, fingerprint them, store them; one bad file never stops a batch."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import VidretError, VideoError
from .fingerprint import Sampling, fingerprint_video
from .store import READY, Store, StoreMeta
from .video import probe

if TYPE_CHECKING:  # the torch model's type only: importing it would import torch and timm
    from .model import FingerprintModel

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .wmv .flv .mpg .mpeg .ts .m2ts .mts .3gp .3g2 .ogv .vob .mxf .f4v .asf .y4m".split()
)


@dataclasses.dataclass
class IngestReport:
    ingested: list[tuple[str, int, int]] = dataclasses.field(default_factory=list)  # path, video id, frames
    present: list[tuple[str, int, str]] = dataclasses.field(default_factory=list)  # path, video id, stored path
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # path, reason
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # not videos: path, why (no video extension)
    removed_incomplete: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "ingested": [{"path": p, "video_id": v, "frames": n} for p, v, n in self.ingested],
            "already_present": [{"path": p, "video_id": v, "stored_path": s} for p, v, s in self.present],
            "failed": [{"path": p, "reason": r} for p, r in self.failed],
            "skipped_not_video": [{"path": p, "reason": r} for p, r in self.skipped],
            "removed_incomplete": self.removed_incomplete,
        }


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def discover(root: str | Path, recursive: bool = False) -> tuple[list[str], list[str]]:
    """(candidate files, problems) under ``root`` in a stable order, following no symlinked folders.

    Every regular file is a candidate; whether it is a video is decided by probing it.
    """
    root = Path(root)
    problems: list[str] = []
    if root.is_file():
        return [os.path.abspath(root)], problems
    if not root.is_dir():
        raise VidretError(f"{root}: no such file or folder")
    files: list[str] = []

    def onerror(exc: OSError) -> None:
        problems.append(f"{exc.filename}: {exc.strerror}")

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            files.append(os.path.abspath(os.path.join(dirpath, name)))
    return files, problems


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` (0 <= i < N) -> ``(i, N)``."""
    try:
        i_text, n_text = str(text).strip().split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise VidretError(f"--shard must be i/N with 0 <= i < N (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise VidretError(f"--shard must be i/N with 0 <= i < N (e.g. 0/4), got {text!r}")
    return i, n


def shard_of(path: str, n: int) -> int:
    """The shard (of ``n``) a file belongs to: a stable hash of its absolute path.

    The same on every machine and every run (sha256, not Python's salted ``hash``), so N
    workers given the same file list split it without talking to each other, and a worker
    that is re-run (a retried Kubernetes Job pod) takes the same files again.
    """
    digest = hashlib.sha256(os.path.abspath(path).encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % n


def select_shard(paths: Iterable[str], i: int, n: int) -> list[str]:
    """The paths of shard ``i`` of ``n`` (order kept): the N shards partition ``paths``."""
    if isinstance(i, bool) or isinstance(n, bool) or not (int(n) >= 1 and 0 <= int(i) < int(n)):
        raise VidretError(f"shard must be i/N with 0 <= i < N, got {i}/{n}")
    return [p for p in paths if shard_of(p, int(n)) == int(i)]


def is_video_candidate(path: str) -> tuple[bool, str | None]:
    """(is a video, error) by probing the container; an error on a video-named file is a failure."""
    try:
        probe(path)
        return True, None
    except VideoError as exc:
        if Path(path).suffix.lower() in VIDEO_EXTENSIONS:
            return True, exc.reason
        return False, exc.reason


def ingest_paths(
    store: Store,
    model: FingerprintModel,
    paths: Iterable[str],
    sampling: Sampling = Sampling(),
    on_video_start: Callable[[str], None] | None = None,
    on_video_done: Callable[[str, str], None] | None = None,
    on_frames: Callable[[int], None] | None = None,
    shard: tuple[int, int] | None = None,
    on_expected_frames: Callable[[int | None], None] | None = None,
) -> IngestReport:
    """Fingerprint and store each path. Idempotent: a file already stored (same sha256) is skipped.

    ``shard=(i, N)``: this is one of N parallel workers (``paths`` already selected with
    :func:`select_shard`); it then cleans up only interrupted ingests of its own shard's paths,
    never rows another worker is writing right now.
    """
    report = IngestReport()
    store.ensure_collections(
        StoreMeta(model_id=model.model_id, embed_dim=model.config.embed_dim, code_bits=model.config.code_bits, fps=sampling.fps, keyframes=sampling.keyframes)
    )
    if shard is None:
        report.removed_incomplete = [v.path for v in store.remove_incomplete()]
    else:
        i, n = shard
        report.removed_incomplete = [v.path for v in store.remove_incomplete(select=lambda v: shard_of(v.path, n) == i)]
    for path in paths:
        if on_video_start:
            on_video_start(path)
        status = "failed"
        try:
            is_video, err = is_video_candidate(path)
            if not is_video:
                report.skipped.append((path, err or "not a video"))
                status = "skipped"
                continue
            if err is not None:
                raise VideoError(path, err)
            sha = sha256_file(path)
            existing = store.find_by_sha(sha)
            if existing is not None and existing.status == READY:
                report.present.append((path, existing.video_id, existing.path))
                status = "present"
                continue
            if existing is not None:  # an interrupted earlier attempt
                store.delete_video(existing.video_id)
            vid = store.free_video_id(sha)
            desc = fingerprint_video(path, model, sampling, video_id=vid, on_frames=on_frames, on_expected=on_expected_frames)
            store.add_video(desc, sha)
            report.ingested.append((desc.path, vid, desc.num_frames))
            status = "ingested"
        except VidretError as exc:
            report.failed.append((path, str(exc).removeprefix(f"{path}: ")))
        except OSError as exc:
            report.failed.append((path, exc.strerror or str(exc)))
        except Exception as exc:  # a decoder or model fault on one file must not stop the batch
            report.failed.append((path, f"unexpected error: {type(exc).__name__}: {exc}"))
        finally:
            if on_video_done:
                on_video_done(path, status)
    return report
