"""The one definition of the train / tune / test splits of the real media (DATA.md, 'Splits').

Every user imports its rule from here: training (``vidret_milvus.train.data``), the benchmark
datasets (``benchmarks/make_dataset.py --split tune|test``, and ``--split train`` for a set of
extra tuning negatives) and the demo (``scripts/demo.py``).

- Big Buck Bunny (``bbb.mp4``) by time: train [0, 357.9) s (the first 60 %, what the shipped
  model was trained on), tune [363, 470) s, test [475, end). The 5 s gaps are guards so no shot
  feeds two splits.
- Photos by a hash of their near-duplicate ``group`` (manifest.json), never by file name:
  bucket ``int(sha256(group), 16) % 10``; 0-6 train, 7 tune, 8-9 test.
- Every other video of the manifest (``kind == "video"``) by the same buckets of its manifest
  ``group`` (the source video: all clips of one film land in one split).

So tuning and test sets never share footage or photos, and neither shares any with training.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from pathlib import Path


class Split(str, enum.Enum):
    train = "train"
    tune = "tune"
    test = "test"


BBB_PATH = "bbb.mp4"
BBB_DURATION = 596.474  # s (manifest duration_s)
BBB_TRAIN_END = 357.9  # 60 % of the film
BBB_TUNE = (363.0, 470.0)
BBB_TEST_START = 475.0
BBB_GUARD = 5.0  # gap between the spans of two splits

TRAIN_BUCKETS = range(0, 7)
TUNE_BUCKETS = range(7, 8)
TEST_BUCKETS = range(8, 10)


def _split(split: Split | str) -> Split:
    try:
        return Split(split)
    except ValueError:
        raise ValueError(f"split must be one of {[s.value for s in Split]}, got {split!r}") from None


def bucket(group: str) -> int:
    """Hash bucket 0-9 of a manifest group."""
    return int(hashlib.sha256(group.encode("utf-8")).hexdigest(), 16) % 10


def split_of_group(group: str) -> Split:
    """The split of a photo or video by its manifest ``group``."""
    b = bucket(group)
    if b in TRAIN_BUCKETS:
        return Split.train
    return Split.tune if b in TUNE_BUCKETS else Split.test


def bbb_span(split: Split | str, duration: float = BBB_DURATION) -> tuple[float, float]:
    """``(start, end)`` seconds of Big Buck Bunny in ``split`` (end exclusive)."""
    split = _split(split)
    if split is Split.train:
        return 0.0, BBB_TRAIN_END
    if split is Split.tune:
        return BBB_TUNE
    return BBB_TEST_START, float(duration)


def bbb_split_of_time(t: float) -> Split | None:
    """The split of film time ``t`` (None inside a guard gap)."""
    for s in Split:
        lo, hi = bbb_span(s, math.inf)
        if lo <= t < hi:
            return s
    return None


def manifest_files(resources: str | Path) -> list[dict]:
    """The ``files`` of resources/manifest.json (empty if there is no manifest)."""
    path = Path(resources) / "manifest.json"
    if not path.is_file():
        return []
    return list(json.loads(path.read_text())["files"])


def photo_entries(resources: str | Path, split: Split | str) -> list[dict]:
    """Manifest entries of the photos of ``split``, sorted by path."""
    split = _split(split)
    return sorted((f for f in manifest_files(resources) if f.get("kind") == "photo" and split_of_group(f["group"]) is split),
                  key=lambda f: f["path"])


def photos(resources: str | Path, split: Split | str) -> list[Path]:
    """Photo files of ``split``, sorted, from resources/manifest.json."""
    return [Path(resources) / f["path"] for f in photo_entries(resources, split)]


def video_entries(resources: str | Path, split: Split | str) -> list[dict]:
    """Manifest entries of the videos other than Big Buck Bunny whose ``group`` falls in ``split``,
    sorted by path (an entry without a group counts as its own group, its path)."""
    split = _split(split)
    out = [f for f in manifest_files(resources)
           if f.get("kind") == "video" and f["path"] != BBB_PATH and split_of_group(f.get("group") or f["path"]) is split]
    return sorted(out, key=lambda f: f["path"])


def videos(resources: str | Path, split: Split | str) -> list[Path]:
    """Video files (other than Big Buck Bunny) of ``split``, sorted."""
    return [Path(resources) / f["path"] for f in video_entries(resources, split)]
