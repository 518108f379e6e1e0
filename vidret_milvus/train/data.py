"""Training data from the real media: Big Buck Bunny frames, the other fetched videos' frames and the photos.

Preparation (:func:`prepare_cache`, needs PyAV) decodes the film and loads the photos once into
a small cache, ``<cache>/{train,val}.npz`` (JPEG bytes + metadata, uint8 only), so training and
evaluation need no video decoder (the GPU machine has none).

Splits: the rule is :mod:`vidret_milvus.splits` (DATA.md). ``train`` here is ``Split.train``;
``val`` is everything held out from training (``Split.tune`` and ``Split.test``).

- Big Buck Bunny by time: [0, ``BBB_TRAIN_END`` = 357.9 s) is training, the rest validation.
  A guard gap of ``guard`` seconds is kept on each side of the cut and any shot that reaches
  into the gap is dropped whole, so no shot feeds both sides.
- Photos and the other fetched videos (manifest ``kind`` "video") by the hash bucket of their
  manifest ``group`` (``splits.split_of_group``): a whole video is on one side. Video frames are
  taken at ``video_fps`` (sparser than the film: these clips are short and slow, so denser frames
  would mostly add near-duplicates of one another).

Every sample has a ``group``: the photo's or video's manifest group, or ``bbb/shot<N>`` for film frames
(shots found by a thumbnail difference). Samples of one group are near-duplicates: they are
never used as each other's negatives, and evaluation ignores them ("junk").
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..splits import BBB_TRAIN_END, Split, split_of_group
from .augment import random_edit, view

CACHE_VERSION = 2  # 2: frames of the fetched videos besides the film and photos


def cache_split(group: str) -> str:
    """'train' (``Split.train``) or 'val' (held out: tune or test) for a photo group."""
    return "train" if split_of_group(group) is Split.train else "val"


@dataclasses.dataclass
class SampleSet:
    """Images kept as JPEG bytes (decoded on demand), with where they come from."""

    jpegs: list[bytes]
    groups: list[str]
    sources: list[str]  # "bbb" or "photo"
    times: np.ndarray  # film time in s (NaN for photos)
    names: list[str]
    _decoded: dict[int, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)
    keep_decoded: bool = False

    def __len__(self) -> int:
        return len(self.jpegs)

    def image(self, i: int) -> np.ndarray:
        """RGB uint8 (H, W, 3)."""
        if i in self._decoded:
            return self._decoded[i]
        a = np.asarray(Image.open(io.BytesIO(self.jpegs[i])).convert("RGB"))
        if self.keep_decoded:
            self._decoded[i] = a
        return a

    def group_ids(self) -> np.ndarray:
        """An integer per sample; equal for samples of one group."""
        index: dict[str, int] = {}
        return np.asarray([index.setdefault(g, len(index)) for g in self.groups], np.int64)

    def subset(self, idx: list[int] | np.ndarray) -> "SampleSet":
        idx = [int(i) for i in idx]
        return SampleSet([self.jpegs[i] for i in idx], [self.groups[i] for i in idx], [self.sources[i] for i in idx],
                         self.times[idx], [self.names[i] for i in idx], keep_decoded=self.keep_decoded)

    def save(self, path: Path) -> None:
        lens = np.asarray([len(b) for b in self.jpegs], np.int64)
        np.savez(
            path, version=np.asarray(CACHE_VERSION), jpeg=np.frombuffer(b"".join(self.jpegs), np.uint8),
            offsets=np.concatenate([[0], np.cumsum(lens)]).astype(np.int64), times=self.times.astype(np.float64),
            meta=np.frombuffer(json.dumps({"groups": self.groups, "sources": self.sources, "names": self.names}).encode(), np.uint8),
        )

    @classmethod
    def load(cls, path: str | Path, keep_decoded: bool = False) -> "SampleSet":
        with np.load(path) as z:
            if int(z["version"]) != CACHE_VERSION:
                raise ValueError(f"{path}: cache version {int(z['version'])}, expected {CACHE_VERSION}: prepare it again")
            buf, off = z["jpeg"].tobytes(), z["offsets"]
            meta = json.loads(z["meta"].tobytes().decode())
            jpegs = [buf[off[i] : off[i + 1]] for i in range(len(off) - 1)]
            return cls(jpegs, meta["groups"], meta["sources"], z["times"].copy(), meta["names"], keep_decoded=keep_decoded)

    @classmethod
    def from_arrays(cls, images: list[np.ndarray], groups: list[str], quality: int = 90) -> "SampleSet":
        """Build a set from in-memory RGB images (tests, synthetic data)."""
        return cls([_jpeg(a, quality) for a in images], list(groups), ["synthetic"] * len(images),
                   np.full(len(images), np.nan), [f"img{i}" for i in range(len(images))])


def _jpeg(a: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def _resize_short(img: Image.Image, short: int) -> Image.Image:
    w, h = img.size
    if min(w, h) <= short:
        return img
    s = short / min(w, h)
    return img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)


def _shots(frames: list[np.ndarray], threshold: float = 0.22) -> np.ndarray:
    """Shot index per frame: a new shot where a 32x18 grey thumbnail changes a lot (mean abs
    difference > ``threshold`` of the range, or the colour histogram moves)."""
    thumbs = [np.asarray(Image.fromarray(f).convert("L").resize((32, 18), Image.Resampling.BILINEAR), np.float32) / 255 for f in frames]
    hists = [np.histogram(t, bins=16, range=(0, 1))[0] / t.size for t in thumbs]
    shot = np.zeros(len(frames), np.int64)
    for i in range(1, len(frames)):
        diff = float(np.abs(thumbs[i] - thumbs[i - 1]).mean())
        hdiff = float(np.abs(hists[i] - hists[i - 1]).sum()) / 2
        shot[i] = shot[i - 1] + int(diff > threshold or hdiff > 0.5)
    return shot


def prepare_cache(
    resources: str | Path,
    cache_dir: str | Path,
    fps: float = 2.0,
    val_fps: float = 1.0,
    short_side: int = 256,
    photo_short_side: int = 320,
    video_fps: float = 0.5,
    guard: float = 3.0,
    quality: int = 85,
    log: Callable[[str], None] = print,
) -> dict:
    """Decode Big Buck Bunny (``fps`` frames/s over the training span, ``val_fps`` over the held-out
    span, short side ``short_side``) and load the photos (short side ``photo_short_side``) into
    ``cache_dir/train.npz`` and ``cache_dir/val.npz``. Returns (and writes as index.json) a summary."""
    from ..video import iter_frames  # PyAV: only needed here

    res, out = Path(resources), Path(cache_dir)
    out.mkdir(parents=True, exist_ok=True)
    sets = {s: SampleSet([], [], [], np.zeros(0), []) for s in ("train", "val")}
    times: dict[str, list[float]] = {"train": [], "val": []}

    bbb = res / "bbb.mp4"
    if bbb.is_file():
        frames, ts = [], []
        step = max(1, int(round(fps / val_fps)))
        for batch in iter_frames(bbb, fps=fps, short_side=short_side, batch_size=64):
            frames.extend(list(batch.frames))
            ts.extend(batch.timestamps.tolist())
        t = np.asarray(ts)
        shot = _shots(frames)
        lo, hi = BBB_TRAIN_END - guard, BBB_TRAIN_END + guard
        in_gap = (t >= lo) & (t < hi)
        bad_shots = set(shot[in_gap].tolist()) | (set(shot[t < lo].tolist()) & set(shot[t >= hi].tolist()))
        n_val = 0
        for i, (f, ti, si) in enumerate(zip(frames, t, shot)):
            if si in bad_shots or in_gap[i]:
                continue
            split = "train" if ti < lo else "val"
            if split == "val":
                n_val += 1
                if (n_val - 1) % step:
                    continue
            s = sets[split]
            s.jpegs.append(_jpeg(f, quality))
            s.groups.append(f"bbb/shot{int(si)}")
            s.sources.append("bbb")
            s.names.append(f"bbb@{ti:.2f}")
            times[split].append(float(ti))
        log(f"bbb: {len(frames)} frames decoded, {int(shot.max()) + 1} shots, {len(bad_shots)} dropped at the cut")
    else:
        log(f"{bbb}: missing (run scripts/fetch_media.py --only bbb); training on photos only")

    manifest = res / "manifest.json"
    if manifest.is_file():
        files = [f for f in json.loads(manifest.read_text())["files"] if f.get("kind") == "photo"]
        for f in files:
            split = cache_split(f["group"])
            img = _resize_short(Image.open(res / f["path"]).convert("RGB"), photo_short_side)
            s = sets[split]
            s.jpegs.append(_jpeg(np.asarray(img), quality))
            s.groups.append(f["group"])
            s.sources.append("photo")
            s.names.append(f["path"])
            times[split].append(float("nan"))
        log(f"photos: {len(files)} loaded")
        # the film is split by time above; every other video whole, by its group
        videos = [f for f in json.loads(manifest.read_text())["files"] if f.get("kind") == "video" and f.get("source") != "bbb"]
        n_frames = 0
        for f in videos:
            split = cache_split(f["group"])
            s = sets[split]
            for batch in iter_frames(res / f["path"], fps=video_fps, short_side=short_side, batch_size=64):
                for frame, ti in zip(batch.frames, batch.timestamps.tolist()):
                    s.jpegs.append(_jpeg(frame, quality))
                    s.groups.append(f["group"])
                    s.sources.append("video")
                    s.names.append(f"{f['path']}@{ti:.2f}")
                    times[split].append(float(ti))
                    n_frames += 1
        log(f"videos: {len(videos)} decoded, {n_frames} frames")
    summary: dict = {"version": CACHE_VERSION, "fps": fps, "val_fps": val_fps, "short_side": short_side,
                     "photo_short_side": photo_short_side, "video_fps": video_fps, "guard": guard, "quality": quality, "splits": {}}
    for split, s in sets.items():
        s.times = np.asarray(times[split], np.float64)
        if not len(s):
            raise ValueError(f"no {split} samples: is {res} the fetched resources/ folder?")
        s.save(out / f"{split}.npz")
        summary["splits"][split] = {
            "samples": len(s), "bbb": s.sources.count("bbb"), "photos": s.sources.count("photo"), "video_frames": s.sources.count("video"),
            "groups": len(set(s.groups)), "bytes": (out / f"{split}.npz").stat().st_size,
        }
    (out / "index.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def cache_ready(cache_dir: str | Path) -> bool:
    d = Path(cache_dir)
    return all((d / f).is_file() for f in ("train.npz", "val.npz", "index.json"))


def synthetic_images(n: int, size: int, rng: np.random.Generator, groups_of: int = 1) -> tuple[list[np.ndarray], list[str]]:
    """Small random pictures (gradients, rectangles, disks) for tests; ``groups_of`` consecutive
    images share a group."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    images, groups = [], []
    for i in range(n):
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        ang = rng.uniform(0, 2 * np.pi)
        t = (np.cos(ang) * xx + np.sin(ang) * yy)[..., None]
        img = c0 * (1 - t) + c1 * t
        for _ in range(int(rng.integers(2, 6))):
            col = rng.uniform(0, 255, 3)
            x0, y0 = rng.uniform(0, 0.8, 2)
            r = rng.uniform(0.08, 0.3)
            if rng.random() < 0.5:
                m = (xx >= x0) & (xx < x0 + r) & (yy >= y0) & (yy < y0 + r * rng.uniform(0.5, 2))
            else:
                m = (xx - x0) ** 2 + (yy - y0) ** 2 < r * r
            img[m] = col
        img += rng.normal(0, 6, img.shape)
        images.append(np.clip(img, 0, 255).astype(np.uint8))
        groups.append(f"syn/{i // groups_of}")
    return images, groups


class PairDataset:
    """Map-style dataset of (sample, edited copy) pairs, indexed by a global draw number.

    Item ``g`` (step ``g // batch``, slot ``g % batch``) draws its sample and its edits from a
    generator seeded with ``(seed, g)``: the stream is the same for any number of loader
    workers, and resuming at step s just starts at ``g = s * batch``. Returns uint8 tensors
    (S, S, 3) for the sample's view and the copy's view, and the sample's group id.
    """

    def __init__(self, samples: SampleSet, size: int, seed: int, pip_other: float = 0.5,
                 n_ops: tuple[int, int] = (1, 4), ops: tuple[str, ...] | None = None) -> None:
        self.samples, self.size, self.seed = samples, size, seed
        self.gids = samples.group_ids()
        self.pip_other, self.n_ops, self.ops = pip_other, n_ops, tuple(ops) if ops else None

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, g: int):  # noqa: ANN204
        import torch

        rng = np.random.default_rng([self.seed, int(g)])
        i = int(rng.integers(len(self.samples)))
        img = self.samples.image(i)
        other = self.samples.image(int(rng.integers(len(self.samples)))) if rng.random() < self.pip_other else None
        copy = random_edit(img, rng, other=other, n_ops=self.n_ops, ops=self.ops)
        a, p = view(img, self.size), view(copy, self.size)
        return torch.from_numpy(a.copy()), torch.from_numpy(p.copy()), int(self.gids[i])


class StepSampler:
    """Yields global draw numbers ``start * batch, start * batch + 1, ...`` (for a DataLoader)."""

    def __init__(self, start_step: int, batch: int) -> None:
        self.start, self.batch = start_step, batch

    def __iter__(self):  # noqa: ANN204
        g = self.start * self.batch
        while True:
            yield g
            g += 1

    def __len__(self) -> int:
        return 2**62
