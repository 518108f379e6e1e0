"""Train / held-out splits of the real media (see DATA.md, 'Splits'). One place for all users.

Big Buck Bunny is split by time: training uses [0, 357.9) s (the first 60 %), validation
and the benchmark use [363, end) (a 5 s guard so no shot feeds both sides). Photos are
split by a hash of their near-duplicate ``group`` (manifest.json), never by file name.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

BBB_TRAIN_END = 357.9
BBB_HELDOUT_START = 363.0


def photo_in_training(group: str) -> bool:
    return int(hashlib.sha256(group.encode("utf-8")).hexdigest(), 16) % 10 < 7


def photos(resources: str | Path, split: str) -> list[Path]:
    """Photo files of ``split`` ('train' or 'heldout'), sorted, from resources/manifest.json."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    root = Path(resources)
    manifest = json.loads((root / "manifest.json").read_text())
    out = []
    for f in manifest["files"]:
        if f.get("kind") != "photo":
            continue
        if photo_in_training(f["group"]) == (split == "train"):
            out.append(root / f["path"])
    return sorted(out)
