"""The one split definition (vidret_milvus/splits.py): train / tune / test are disjoint for film
time, photos and other videos, and training data uses the same rule."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from vidret_milvus import splits
from vidret_milvus.splits import Split, bbb_span, bbb_split_of_time, split_of_group

GROUPS = [f"pkg{i % 7}/photo_{i}" for i in range(400)]


def test_bbb_spans_disjoint_and_train_unchanged() -> None:
    spans = sorted(bbb_span(s) for s in Split)
    assert bbb_span(Split.train) == (0.0, 357.9)  # what the shipped model was trained on
    assert bbb_span("tune") == (363.0, 470.0) and bbb_span(Split.test)[0] == 475.0
    assert bbb_span(Split.test)[1] == pytest.approx(596.474)
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert a0 < a1 <= b0 - splits.BBB_GUARD + 1e-9
    for t, want in ((0.0, Split.train), (357.8, Split.train), (360.0, None), (363.0, Split.tune), (472.0, None), (500.0, Split.test)):
        assert bbb_split_of_time(t) == want
    assert bbb_span(Split.test, duration=math.inf)[1] == math.inf
    with pytest.raises(ValueError):
        bbb_span("heldout")


def test_group_buckets() -> None:
    for g in GROUPS:
        b = int(hashlib.sha256(g.encode()).hexdigest(), 16) % 10
        want = Split.train if b < 7 else Split.tune if b == 7 else Split.test
        assert split_of_group(g) is want
    counts = {s: sum(split_of_group(g) is s for g in GROUPS) for s in Split}
    assert all(counts.values()) and counts[Split.train] > counts[Split.test] > counts[Split.tune]


def _manifest(tmp_path: Path) -> Path:
    files = [{"kind": "video", "path": "bbb.mp4", "source": "bbb"}]
    for i, g in enumerate(GROUPS[:60]):
        files.append({"kind": "photo", "path": f"photos/{g}_{i}.jpg", "group": g})
        files.append({"kind": "photo", "path": f"photos/{g}_{i}_small.jpg", "group": g})  # a near-duplicate
    for i in range(40):
        src = f"src{i % 3}"
        for part in range(2):
            files.append({"kind": "video", "source": src, "path": f"videos/{src}/v{i}_{part}.mp4", "group": f"{src}/v{i}", "duration_s": 60.0})
    (tmp_path / "manifest.json").write_text(json.dumps({"files": files}))
    return tmp_path


def test_photos_and_videos_partitioned(tmp_path: Path) -> None:
    res = _manifest(tmp_path)
    ph = {s: set(splits.photos(res, s)) for s in Split}
    vi = {s: set(splits.videos(res, s)) for s in Split}
    for a in Split:
        for b in Split:
            if a is not b:
                assert not ph[a] & ph[b] and not vi[a] & vi[b]
    assert sum(map(len, ph.values())) == 120 and sum(map(len, vi.values())) == 80  # bbb.mp4 is not among the videos
    assert all(p.name != "bbb.mp4" for v in vi.values() for p in v)
    # by group, never by file: the near-duplicates and both parts of one video share a split
    for s in Split:
        groups = {e["group"] for e in splits.photo_entries(res, s)} | {e["group"] for e in splits.video_entries(res, s)}
        assert all(split_of_group(g) is s for g in groups)
        others = [e["group"] for t in Split if t is not s for e in splits.photo_entries(res, t) + splits.video_entries(res, t)]
        assert not groups & set(others)
    assert splits.photos(tmp_path / "missing", Split.test) == []
    with pytest.raises(ValueError):
        splits.photos(res, "heldout")


def test_training_data_uses_the_split_rule() -> None:
    from vidret_milvus.train import data

    assert data.BBB_TRAIN_END == splits.BBB_TRAIN_END == bbb_span(Split.train)[1]
    assert not hasattr(data, "photo_split")
    for g in GROUPS:
        assert data.cache_split(g) == ("train" if split_of_group(g) is Split.train else "val")


def test_real_manifest_disjoint() -> None:
    res = Path(__file__).resolve().parents[1] / "resources"
    if not (res / "manifest.json").is_file():
        pytest.skip("resources not fetched")
    ph = {s: {Path(p).name for p in splits.photos(res, s)} for s in Split}
    assert ph[Split.tune] and ph[Split.test]
    groups = {s: {e["group"] for e in splits.photo_entries(res, s) + splits.video_entries(res, s)} for s in Split}
    assert not groups[Split.tune] & groups[Split.test] and not groups[Split.train] & (groups[Split.tune] | groups[Split.test])
