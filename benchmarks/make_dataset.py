"""Build a copy-detection benchmark dataset from one split of the real media (seeded, reproducible).

    .venv/bin/python benchmarks/make_dataset.py [--split test|tune] [--seed 0] [--out DIR]          # easy set
    .venv/bin/python benchmarks/make_dataset.py --hard [--split test|tune] [--seed 0] [--out DIR]   # hard set

Footage and photos come only from ``--split`` (vidret_milvus/splits.py): a tuning set and a
test set never share footage or photos, and neither shares any with training. ``--split train
--hard --positives 0`` makes a set of negatives only from the training split, whose many
sources the small tuning split lacks (extra tuning negatives; the heads were trained on this
footage, the frozen descriptor was not); ``--split train --hard --negatives 0 --out DIR`` makes
hard copies of training footage to train heads on (benchmarks/texture_head_study.py), never to
tune or test with. Default output:
benchmarks/data (easy test), benchmarks/data_tune (easy tune), benchmarks/data_hard_test,
benchmarks/data_hard_tune.

Easy set (the original recipe): Big Buck Bunny's span of the split cut into reference clips of
20-50 s, its last 22 % never ingested (negatives and filler); the split's photos (one per
near-duplicate group) animated with slow pan/zoom into references of 4-6 shots, some photos
reserved for negatives and filler. Queries: 6-20 s excerpts with ONE edit each
(benchmarks/video_edits.py), half of them inside unrelated filler; a third are negatives.

Hard set (``--hard``):
- References of 10-40 s (~``--ref-minutes`` in all, aiming at >= 100): disjoint time windows of
  Big Buck Bunny's span and of every other video of the split (manifest kind "video"),
  consecutive windows of one clip being separate references (look-alikes), clips under 20 s
  joined into compilations; and photo references: each photo (one per near-duplicate group)
  cut into 2-12 pixel-disjoint crops (grid_for), each crop a separate Ken Burns reference
  (sibling crops of one photo are look-alikes); at most 55 % of the reference time from photos.
- Never ingested: some gaps between the windows of a clip (unused footage adjacent in time to a
  reference), one sibling crop of half the photos, and a few whole photos / videos.
- Queries (``--queries``, ~2/3 positive; ``--positives`` / ``--negatives`` set the counts): copies of 3-20 s (about 40 % <= 6 s), 2-3 STACKED
  edits per query applied to the whole query (video_edits.draw_stack: at most one temporal edit,
  pip_inset puts the copy at 25-45 % of the frame area over moving footage), 20 % of positives
  with TWO copied segments (from one or two references) separated by filler; half the positives
  inside filler. Negatives: half near-misses (footage adjacent in time to a reference window, or
  a sibling strip of an ingested photo), half unrelated reserved footage.

ground_truth.json: references (name, source, duration, kind, group) and queries (name, edit,
edits, positive, near_miss, duration, matches [{ref, query_start, query_end, ref_start,
ref_end, copy_seconds}]; times in seconds, copy_seconds on the query's clock).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _common import ROOT
from video_edits import EDIT_TYPES, HARD_EDIT_TYPES, compose, draw_stack, make_edit
from vidret_milvus.clips import ken_burns, read_span, write_clip
from vidret_milvus.splits import BBB_PATH, Split, bbb_span, photo_entries, video_entries

FPS = 24
SIZE = (640, 360)
RES = ROOT / "resources"
BBB = RES / BBB_PATH


def load_photo(path: Path, long_side: int = 1280) -> np.ndarray:
    img = Image.open(path).convert("RGB")
    img.thumbnail((long_side, long_side))
    return np.asarray(img)


def photo_frames(paths: list[Path], seconds: list[float], rng: np.random.Generator) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for p, s in zip(paths, seconds):
        out.extend(ken_burns(load_photo(p), int(round(s * FPS)), SIZE, rng))
    return out


def one_per_group(entries: list[dict]) -> list[dict]:
    """The largest existing photo of each near-duplicate group (two of a group in one set would
    make a 'negative' that is a copy, or two references that are copies of each other)."""
    best: dict[str, dict] = {}
    for e in entries:
        if not (RES / e["path"]).is_file():
            continue
        g = e["group"]
        if g not in best or e.get("width", 0) * e.get("height", 0) > best[g].get("width", 0) * best[g].get("height", 0):
            best[g] = e
    return [best[g] for g in sorted(best)]


# ----------------------------------------------------------------------------- footage
@dataclasses.dataclass
class Footage:
    """A video file read as 640x360 frames at FPS (cover-scaled and centre-cropped, resampled)."""

    path: Path
    group: str
    span: tuple[float, float]
    width: int
    height: int

    @classmethod
    def probe(cls, path: Path, group: str, span: tuple[float, float] | None = None) -> "Footage":
        import av

        with av.open(str(path)) as c:
            s = c.streams.video[0]
            w, h = s.codec_context.width, s.codec_context.height
            dur = float(s.duration * s.time_base) if s.duration else float(c.duration or 0) / 1e6
        return cls(path, group, span or (0.0, dur), w, h)

    def frames(self, t0: float, t1: float) -> list[np.ndarray]:
        n = int(round((t1 - t0) * FPS))
        scale = max(SIZE[0] / self.width, SIZE[1] / self.height)
        cw, ch = max(SIZE[0], math.ceil(self.width * scale)), max(SIZE[1], math.ceil(self.height * scale))
        x0, y0 = (cw - SIZE[0]) // 2, (ch - SIZE[1]) // 2
        out: list[np.ndarray] = []
        prev = None
        for t, f in read_span(self.path, t0, t1 + 1.0, (cw, ch)):
            f = f[y0 : y0 + SIZE[1], x0 : x0 + SIZE[0]]
            while len(out) < n and len(out) / FPS < t - 1e-3:
                out.append(prev if prev is not None else f)
            prev = f
            if len(out) >= n:
                break
        while len(out) < n and prev is not None:
            out.append(prev)
        return [np.ascontiguousarray(f) for f in out]


def video_sources(split: Split) -> list[Footage]:
    """Big Buck Bunny's span of ``split`` and every other video of the split (by manifest group)."""
    out = []
    if BBB.is_file():
        out.append(Footage(BBB, "bbb", bbb_span(split), 1280, 720))
    for e in video_entries(RES, split):
        p = RES / e["path"]
        if not p.is_file():
            print(f"skipping {e['path']}: not fetched")
            continue
        try:
            f = Footage.probe(p, e.get("group") or e["path"])
        except Exception as exc:  # noqa: BLE001 - a broken download should not stop the set
            print(f"skipping {e['path']}: {exc}")
            continue
        if e.get("duration_s"):
            f.span = (0.0, min(f.span[1] or math.inf, float(e["duration_s"])))
        if f.span[1] - f.span[0] >= 4:
            out.append(f)
    return out


# ----------------------------------------------------------------------------- easy set
def make_easy(args: argparse.Namespace, rng: np.random.Generator) -> tuple[list[dict], list[dict]]:
    if not BBB.is_file():
        raise SystemExit(f"{BBB} missing: run `python3 scripts/fetch_media.py` first")
    s0, s1 = bbb_span(args.split)
    pool_start = s1 - 0.22 * (s1 - s0)
    ref_end, bbb_pool = pool_start - 2.0, (pool_start, s1 - 0.5)
    refs: list[dict] = []
    t, i = s0, 0
    while t + 20 <= ref_end:
        length = float(min(rng.uniform(20, 50), ref_end - t))
        name = f"bbb_{i:02d}.mp4"
        write_clip(args.out / "refs" / name, (f for _, f in read_span(BBB, t, t + length, SIZE)), FPS, SIZE)
        refs.append({"name": name, "source": f"bbb.mp4 {t:.1f}-{t + length:.1f} s", "duration": length, "kind": "video", "group": "bbb"})
        t += length
        i += 1
    held = [RES / e["path"] for e in one_per_group(photo_entries(RES, args.split))]
    order = rng.permutation(len(held))
    n_res = min(10, max(2, round(0.35 * len(held))))
    reserved = [held[j] for j in order[:n_res]]  # never ingested: negatives and filler
    pool = [held[j] for j in order[n_res:]]
    k = 0
    while len(pool) >= 4:
        n = int(min(len(pool), rng.integers(4, 7)))
        shots, pool = pool[:n], pool[n:]
        secs = [float(rng.uniform(4, 8)) for _ in shots]
        name = f"photos_{k:02d}.mp4"
        write_clip(args.out / "refs" / name, photo_frames(shots, secs, rng), FPS, SIZE)
        refs.append({"name": name, "source": "photos " + ", ".join(p.name for p in shots), "duration": sum(secs), "kind": "photo", "group": "photos"})
        k += 1

    def filler(seconds: float) -> list[np.ndarray]:
        """Unrelated footage: the never-ingested end of the span or a reserved photo."""
        if rng.random() < 0.5 or not reserved:
            s = float(rng.uniform(bbb_pool[0], max(bbb_pool[0], bbb_pool[1] - seconds)))
            return [f for _, f in read_span(BBB, s, s + seconds, SIZE)]
        return photo_frames([reserved[int(rng.integers(len(reserved)))]], [seconds], rng)

    def edited(frames: list[np.ndarray], kind: str) -> tuple[list[np.ndarray], float, float]:
        """Apply ``kind``; returns frames, output fps, speed (reference seconds per query second)."""
        edit = make_edit(kind, rng, background=filler(1.0)[0])
        speed, out_fps = 1.0, FPS
        if kind == "speed":
            speed = float(rng.uniform(0.8, 1.25))
            idx = np.arange(0, len(frames), speed).round().astype(int)
            frames = [frames[j] for j in idx if j < len(frames)]
        if kind == "fps_change":
            out_fps = int(rng.choice([10, 12, 15]))
            idx = np.arange(0, len(frames), FPS / out_fps).round().astype(int)
            frames = [frames[j] for j in idx if j < len(frames)]
        return [edit(f) for f in frames], out_fps, speed

    queries: list[dict] = []
    kinds = list(EDIT_TYPES)
    q = 0
    for r in refs:
        for _ in range(args.queries_per_ref):
            kind = kinds[q % len(kinds)]
            length = float(min(rng.uniform(6, 20), r["duration"] - 1))
            start = float(rng.uniform(0, r["duration"] - length))
            src = [f for _, f in read_span(args.out / "refs" / r["name"], start, start + length, SIZE)]
            body, out_fps, speed = edited(src, kind)
            lead = tail = 0.0
            if rng.random() < 0.5:
                lead, tail = float(rng.uniform(2, 5)), float(rng.uniform(0, 4))
            pre = filler(lead) if lead else []
            post = filler(tail) if tail else []
            step = FPS / out_fps
            pre = [pre[int(j)] for j in np.arange(0, len(pre), step)] if pre else []
            post = [post[int(j)] for j in np.arange(0, len(post), step)] if post else []
            name = f"q{q:03d}_{kind}.mp4"
            write_clip(args.out / "queries" / name, pre + body + post, out_fps, SIZE, crf=40 if kind == "lowq" else 28)
            copy_len = len(body) / out_fps
            q_start = len(pre) / out_fps
            queries.append({
                "name": name, "edit": kind, "edits": [kind], "positive": True, "duration": (len(pre) + len(body) + len(post)) / out_fps,
                "matches": [{"ref": r["name"], "query_start": round(q_start, 3), "query_end": round(q_start + copy_len, 3),
                             "ref_start": round(start, 3), "ref_end": round(start + min(length, copy_len * speed), 3),
                             "copy_seconds": round(copy_len, 3)}],
            })
            q += 1
    n_neg = max(1, q // 2)  # a third of all queries
    for j in range(n_neg):
        kind = kinds[(q + j) % len(kinds)]
        length = float(rng.uniform(6, 20))
        body, out_fps, _ = edited(filler(length), kind)
        name = f"q{q + j:03d}_neg_{kind}.mp4"
        write_clip(args.out / "queries" / name, body, out_fps, SIZE, crf=28)
        queries.append({"name": name, "edit": kind, "edits": [kind], "positive": False, "duration": len(body) / out_fps, "matches": []})
    return refs, queries


# ----------------------------------------------------------------------------- hard set
@dataclasses.dataclass
class PoolItem:
    """Never-ingested material for negatives and filler: a footage span or a photo strip."""

    near: bool  # adjacent in time to a reference window / sibling strip of an ingested photo
    label: str
    footage: Footage | None = None
    span: tuple[float, float] = (0.0, 0.0)
    strip: np.ndarray | None = None

    def frames(self, seconds: float, rng: np.random.Generator, margin: float = 0.0) -> list[np.ndarray]:
        if self.footage is not None:
            lo, hi = self.span[0] + margin, self.span[1] - margin
            seconds = min(seconds, hi - lo)
            s = float(rng.uniform(lo, hi - seconds))
            return self.footage.frames(s, s + seconds)
        return list(ken_burns(self.strip, int(round(seconds * FPS)), SIZE, rng))

    def seconds(self, margin: float = 0.0) -> float:
        return self.span[1] - self.span[0] - 2 * margin if self.footage is not None else math.inf


def crops(img: np.ndarray, cols: int, rows: int) -> list[np.ndarray]:
    """A ``cols`` x ``rows`` grid of pixel-disjoint crops (2 % of the side between them)."""
    h, w = img.shape[:2]
    gx, gy = int(0.02 * w), int(0.02 * h)
    cw, ch = (w - gx * (cols - 1)) // cols, (h - gy * (rows - 1)) // rows
    return [np.ascontiguousarray(img[r * (ch + gy) : r * (ch + gy) + ch, c * (cw + gx) : c * (cw + gx) + cw])
            for r in range(rows) for c in range(cols)]


def grid_for(img: np.ndarray) -> tuple[int, int]:
    """Crops per photo, from 4 x 3 for the largest photos down to 2 strips for small ones
    (transposed for portrait photos); each crop still holds a sharp 640x360 view."""
    h, w = img.shape[:2]
    long_, short = max(h, w), min(h, w)
    g = ((4, 3) if long_ >= 3800 and short >= 2100 else (3, 3) if long_ >= 2800 and short >= 1600 else
         (3, 2) if long_ >= 2400 and short >= 1300 else (2, 2) if long_ >= 1600 and short >= 900 else (2, 1))
    return g if w >= h else (g[1], g[0])


def make_hard(args: argparse.Namespace, rng: np.random.Generator) -> tuple[list[dict], list[dict]]:
    refs: list[dict] = []
    pool: list[PoolItem] = []
    budget = args.ref_minutes * 60.0

    def add_ref(name: str, frames: list[np.ndarray], source: str, kind: str, group: str) -> None:
        write_clip(args.out / "refs" / name, frames, FPS, SIZE)
        refs.append({"name": name, "source": source, "duration": round(len(frames) / FPS, 3), "kind": kind, "group": group})

    # --- photo references: strips of one photo are separate references (look-alikes)
    photos = one_per_group(photo_entries(RES, args.split))
    order = rng.permutation(len(photos)).tolist()
    n_far = max(1, round(0.1 * len(photos))) if len(photos) >= 4 else 0
    units: list[tuple[str, int, np.ndarray]] = []  # (photo group, strip index, pixels)
    for rank, j in enumerate(order):
        e = photos[j]
        img = load_photo(RES / e["path"], 3840)
        parts = crops(img, *grid_for(img))
        n = len(parts)
        if rank < n_far:  # whole photo reserved: unrelated negatives / filler
            pool.append(PoolItem(False, f"photo {e['group']} (reserved)", strip=load_photo(RES / e["path"], 1280)))
            continue
        withhold = int(rng.integers(n)) if rng.random() < 0.5 else -1
        for k, part in enumerate(parts):
            if k == withhold:
                pool.append(PoolItem(True, f"photo {e['group']} strip {k}/{n} (sibling not ingested)", strip=part))
            else:
                units.append((e["group"], k, part))
    perm = rng.permutation(len(units)).tolist()
    units = [units[i] for i in perm]
    k = 0
    photo_secs = 0.0
    while units and photo_secs < 0.55 * budget:  # at most 55 % of the reference time from photos
        first = units.pop(0)
        shots = [first]
        if rng.random() < 0.2:  # two shots of different photos in one reference
            other = next((u for u in units if u[0] != first[0]), None)
            if other is not None:
                units.remove(other)
                shots.append(other)
        secs = [float(rng.uniform(10, 16))] if len(shots) == 1 else [float(rng.uniform(6, 10)) for _ in shots]
        frames = [f for (_, _, part), s in zip(shots, secs) for f in ken_burns(part, int(round(s * FPS)), SIZE, rng)]
        add_ref(f"photo_{k:03d}.mp4", frames, "photos " + ", ".join(f"{g} strip {i}" for g, i, _ in shots), "photo", shots[0][0])
        photo_secs += sum(secs)
        k += 1
    for g, i, part in units:  # left over: never ingested
        sib = any(g in r["source"] for r in refs)
        pool.append(PoolItem(sib, f"photo {g} strip {i}" + (" (sibling not ingested)" if sib else " (reserved)"), strip=part))
    photo_seconds = sum(r["duration"] for r in refs)
    print(f"{len(refs)} photo references ({photo_seconds:.0f} s) from {len(photos)} photos", flush=True)

    # --- video references: disjoint windows of each clip, some gaps between them never ingested
    sources = video_sources(args.split)
    others = [s for s in sources if s.group != "bbb"]
    far_videos = set()
    if len(others) >= 4:
        far_videos = {others[i].group for i in rng.permutation(len(others))[: max(1, round(0.15 * len(others)))]}
    others_order = rng.permutation(len(sources)).tolist()
    sources = [sources[i] for i in others_order]
    video_budget = max(budget - photo_seconds, 120.0)
    active = [s for s in sources if s.group not in far_videos]
    for s in sources:
        if s.group in far_videos:
            pool.append(PoolItem(False, f"{s.path.name} (reserved)", footage=s, span=s.span))
    shorts = [s for s in active if s.span[1] - s.span[0] < 20]
    active = [s for s in active if s.span[1] - s.span[0] >= 20]
    v = 0
    while shorts:  # short clips: compilations of whole clips, 10-40 s
        take: list[Footage] = []
        while shorts and sum(s.span[1] - s.span[0] for s in take) < 10:
            take.append(shorts.pop(0))
        if sum(s.span[1] - s.span[0] for s in take) < 10:
            for s in take:
                pool.append(PoolItem(False, f"{s.path.relative_to(RES)} (left over)", footage=s, span=s.span))
            break
        frames = [f for s in take for f in s.frames(*s.span)]
        add_ref(f"video_{v:03d}.mp4", frames, "clips " + ", ".join(str(s.path.relative_to(RES)) for s in take), "video", take[0].group)
        v += 1
    per_source = max(0.0, video_budget - sum(r["duration"] for r in refs if r["name"].startswith("video_"))) / max(1, len(active))
    for src in active:
        a, b = src.span
        length = b - a
        n_ch = 1 if length <= 1.5 * per_source else max(1, math.ceil(per_source / 100))
        ch_len = length if n_ch == 1 else min(length / n_ch, 1.35 * per_source / n_ch)
        starts = [a] if n_ch == 1 else [a + (i + 0.5) * length / n_ch - ch_len / 2 for i in range(n_ch)]
        spent = 0.0
        for c0 in starts:
            t, end = c0, c0 + ch_len
            while t + 10 <= end and spent < per_source:
                L = float(min(rng.uniform(10, 20) if rng.random() < 0.8 else rng.uniform(20, 40), end - t))
                frames = src.frames(t, t + L)
                if len(frames) < 10 * FPS * 0.9:
                    break
                add_ref(f"video_{v:03d}.mp4", frames, f"{src.path.relative_to(RES)} {t:.1f}-{t + L:.1f} s", "video", src.group)
                v += 1
                spent += L
                t += L + 1.0  # 1 s guard: consecutive windows are look-alikes, not copies
                room = end - t
                if room >= 7 and rng.random() < 0.4:
                    g = float(min(rng.uniform(7, 14), room))
                    pool.append(PoolItem(True, f"{src.path.relative_to(RES)} {t:.1f}-{t + g:.1f} s (next to a reference)", footage=src, span=(t, t + g)))
                    t += g + 1.0
            if spent >= per_source:
                break
        print(f"{src.path.name}: {spent:.0f} s of references", flush=True)
    print(f"{len(refs)} references ({sum(r['duration'] for r in refs):.0f} s), pool of {len(pool)} never-ingested items "
          f"({sum(p.near for p in pool)} near)", flush=True)
    if len(refs) < 100:
        print(f"WARNING: only {len(refs)} references (the split has too little footage for 100)")
    near = [p for p in pool if p.near]
    far = [p for p in pool if not p.near] or near
    if not pool:
        raise SystemExit("no never-ingested footage for negatives and filler")

    def filler(seconds: float) -> list[np.ndarray]:
        """Never-ingested footage (any pool item, whole seconds it has)."""
        items = [p for p in pool if p.seconds() >= seconds] or pool
        return items[int(rng.integers(len(items)))].frames(seconds, rng)

    def copy_len() -> float:
        return float(rng.uniform(3, 6)) if rng.random() < 0.4 else float(rng.uniform(6, 20))

    def build(timeline: list[tuple[str, object]], edits: list[str], speed: float, name: str) -> tuple[float, list[dict]]:
        """timeline: ('fill', seconds), ('frames', frames) or ('copy', (ref, ref_start, ref_seconds)).
        Applies the edit stack to the whole query (``speed`` to the copies); returns its duration
        and the matches."""
        out_fps = int(rng.choice([10, 12, 15])) if "fps_change" in edits else FPS
        frames: list[np.ndarray] = []
        matches: list[dict] = []
        for kind, what in timeline:
            if kind == "fill":
                frames += filler(float(what)) if what else []
                continue
            if kind == "frames":
                frames += what
                continue
            r, rs, rl = what
            src = [f for _, f in read_span(args.out / "refs" / r["name"], rs, rs + rl, SIZE)]
            idx = np.arange(0, len(src), speed).round().astype(int)
            body = [src[j] for j in idx if j < len(src)]
            q0 = len(frames) / FPS
            frames += body
            matches.append({"ref": r["name"], "query_start": round(q0, 3), "query_end": round(len(frames) / FPS, 3),
                            "ref_start": round(rs, 3), "ref_end": round(rs + min(rl, len(body) * speed / FPS), 3),
                            "copy_seconds": round(len(body) / FPS, 3)})
        bg = filler(3.0)[:: 2] if "pip_inset" in edits else None
        edit = compose([make_edit(e, rng, background=bg) for e in edits])
        if out_fps != FPS:
            frames = [frames[int(j)] for j in np.arange(0, len(frames), FPS / out_fps) if int(j) < len(frames)]
        write_clip(args.out / "queries" / name, (edit(f) for f in frames), out_fps, SIZE, crf=38 if "lowq" in edits else 28)
        return round(len(frames) / out_fps, 3), matches

    n_pos = round(args.queries * 2 / 3) if args.positives is None else args.positives
    n_neg = args.queries - round(args.queries * 2 / 3) if args.negatives is None else args.negatives
    queries: list[dict] = []
    ref_order = [refs[i] for i in rng.permutation(len(refs))]
    for qi in range(n_pos):
        edits = draw_stack(rng, int(rng.integers(2, 4)))
        speed = float(rng.uniform(0.8, 1.25)) if "speed" in edits else 1.0
        r = ref_order[qi % len(ref_order)]
        timeline: list[tuple[str, object]] = []
        if rng.random() < 0.5:
            timeline.append(("fill", float(rng.uniform(1, 5))))
        if qi % 5 == 2:  # 20 %: two copied segments separated by filler
            c1, c2 = copy_len(), copy_len()
            r2 = r if rng.random() < 0.5 and r["duration"] >= (c1 + c2) * speed + 2 else ref_order[(qi + 1 + len(ref_order) // 2) % len(ref_order)]
            if r2 is r:
                l1, l2 = c1 * speed, c2 * speed
                s1 = float(rng.uniform(0, r["duration"] - l1 - l2 - 1))
                s2 = float(rng.uniform(s1 + l1 + 1, r["duration"] - l2))
                segs = [(r, s1, l1), (r, s2, l2)]
                if rng.random() < 0.5:
                    segs.reverse()
            else:
                segs = []
                for rr, c in ((r, c1), (r2, c2)):
                    ln = min(c * speed, rr["duration"] - 0.5)
                    segs.append((rr, float(rng.uniform(0, rr["duration"] - ln)), ln))
            timeline += [("copy", segs[0]), ("fill", float(rng.uniform(2, 6))), ("copy", segs[1])]
        else:
            ln = min(copy_len() * speed, r["duration"] - 0.5)
            timeline.append(("copy", (r, float(rng.uniform(0, r["duration"] - ln)), ln)))
        if timeline[0][0] == "fill" and rng.random() < 0.7:
            timeline.append(("fill", float(rng.uniform(1, 4))))
        name = f"q{qi:03d}_{'+'.join(edits)}.mp4"
        dur, matches = build(timeline, edits, speed, name)
        queries.append({"name": name, "edit": "+".join(edits), "edits": edits, "positive": True, "near_miss": False, "duration": dur, "matches": matches})
        if qi % 25 == 0:
            print(f"query {qi}/{n_pos}", flush=True)
    for j in range(n_neg):
        qi = n_pos + j
        edits = draw_stack(rng, int(rng.integers(2, 4)))
        is_near = j % 2 == 0 and bool(near)
        item = (near if is_near else far)[int(rng.integers(len(near if is_near else far)))]
        length = min(copy_len(), item.seconds(margin=1.0))
        name = f"q{qi:03d}_neg{'_near' if is_near else ''}_{'+'.join(edits)}.mp4"
        dur, _ = build([("frames", item.frames(length, rng, margin=1.0))], edits, 1.0, name)
        queries.append({"name": name, "edit": "+".join(edits), "edits": edits, "positive": False, "near_miss": is_near,
                        "negative_source": item.label, "duration": dur, "matches": []})
        if j % 25 == 0:
            print(f"negative {j}/{n_neg}", flush=True)
    return refs, queries


def stats(refs: list[dict], queries: list[dict]) -> dict:
    pos = [q for q in queries if q["positive"]]
    copies = [m["copy_seconds"] for q in pos for m in q["matches"]]
    return {
        "references": len(refs), "reference_seconds": round(sum(r["duration"] for r in refs), 1),
        "reference_kinds": {k: sum(r.get("kind") == k for r in refs) for k in ("video", "photo")},
        "queries": len(queries), "positives": len(pos),
        "copies": len(copies), "copies_le_6s": round(float(np.mean(np.asarray(copies) <= 6)), 3) if copies else 0.0,
        "two_segment_positives": round(sum(len(q["matches"]) == 2 for q in pos) / max(1, len(pos)), 3),
        "negatives": len(queries) - len(pos), "near_miss_negatives": sum(bool(q.get("near_miss")) for q in queries),
        "edits_per_query": round(float(np.mean([len(q.get("edits", [q["edit"]])) for q in queries])), 2) if queries else 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=[s.value for s in Split], default=Split.test.value,
                    help="the split the footage and photos come from; train (the heads were trained on it, so it is in-sample "
                         "for them) only with --hard --out DIR and either --positives 0 (more varied tuning negatives than the small "
                         "tune split holds) or --negatives 0 (hard copies to train heads on)")
    ap.add_argument("--hard", action="store_true", help="the hard set (see above)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None,
                    help="default: benchmarks/data (easy test), data_tune, data_hard_test, data_hard_tune")
    ap.add_argument("--queries-per-ref", type=int, default=4, help="easy set")
    ap.add_argument("--queries", type=int, default=150, help="hard set: number of queries (2/3 positive)")
    ap.add_argument("--positives", type=int, default=None, help="hard set: positive queries (default 2/3 of --queries)")
    ap.add_argument("--negatives", type=int, default=None,
                    help="hard set: negative queries (default 1/3 of --queries). The references and the pool come first from the "
                         "seed, so --positives 0 --negatives N with a set's seed and split gives N fresh negatives for the same references")
    ap.add_argument("--ref-minutes", type=float, default=40.0, help="hard set: at most about this much reference video")
    args = ap.parse_args()
    args.split = Split(args.split)
    if any(n is not None and n < 0 for n in (args.positives, args.negatives)):
        ap.error("--positives and --negatives must be >= 0")
    if (args.positives is not None or args.negatives is not None) and (not args.hard or args.out is None):
        # the default folders are the main sets: never replace one with a set of other counts
        ap.error("--positives / --negatives need --hard and --out DIR")
    if args.split is Split.train and 0 not in (args.positives, args.negatives):
        ap.error("--split train makes sets of negatives (--hard --positives 0 --out DIR) or of copies to train on (--hard --negatives 0 --out DIR)")
    if args.out is None:
        args.out = ROOT / "benchmarks" / ("data" + ("_hard" if args.hard else "") + ("_tune" if args.split is Split.tune else ("_test" if args.hard else "")))
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    shutil.rmtree(args.out, ignore_errors=True)
    (args.out / "refs").mkdir(parents=True)
    (args.out / "queries").mkdir()
    refs, queries = (make_hard if args.hard else make_easy)(args, rng)
    st = stats(refs, queries)
    gt = {"seed": args.seed, "split": args.split.value, "hard": args.hard, "fps": FPS, "size": SIZE, "stats": st,
          "references": refs, "queries": queries}
    (args.out / "ground_truth.json").write_text(json.dumps(gt, indent=1) + "\n")
    print(json.dumps(st))
    print(f"{len(refs)} references ({st['reference_seconds']:.0f} s), {len(queries)} queries ({st['positives']} positive) "
          f"in {args.out} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
