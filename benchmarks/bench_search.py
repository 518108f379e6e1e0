"""Store and search at scale on Milvus Lite (or a server with --uri).

    .venv/bin/python benchmarks/bench_search.py [--sizes 10000 100000 1000000] [--radius 32]

Reference frames: the real fingerprints of Big Buck Bunny at 1 fps (596 frames, the
planted copy source) plus synthetic videos drawn around them: each synthetic video is a
real run of frames whose codes get a per-video bit-flip rate of 30-50 % and whose
embeddings get Gaussian noise, so distances look like those between different content.
Queries are 20 consecutive real frames with 10 % of bits flipped and small embedding noise
(an edited copy). Reports insert rate, search latency p50/p95 of a 20-frame query (recall +
re-rank + align, excluding fingerprinting), and the Hamming stage's recall against an
exhaustive numpy search of the same codes.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import time
from pathlib import Path

import numpy as np

import json

from _common import RESULTS, ROOT, save
from vidret_milvus.descriptor import VideoDescriptor
from vidret_milvus.search import SearchParams, search_descriptor
from vidret_milvus.store import Store, StoreMeta

OUT = ROOT / "benchmarks" / "out"
FRAMES_PER_VIDEO = 600


def real_descriptor() -> VideoDescriptor:
    cache = OUT / "bbb_1fps.npz"
    if cache.is_file():
        return VideoDescriptor.load(cache)
    from vidret_milvus.fingerprint import fingerprint_video
    from vidret_milvus.model import load_model

    src = ROOT / "resources" / "bbb.mp4"
    if not src.is_file():
        raise SystemExit(f"{src} missing: run `python3 scripts/fetch_media.py --only bbb` first")
    desc = fingerprint_video(src, load_model())
    OUT.mkdir(parents=True, exist_ok=True)
    desc.save(cache)
    return desc


def flip(codes: np.ndarray, p: float | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    bits = np.unpackbits(codes, axis=1)
    mask = rng.random(bits.shape) < (p if np.isscalar(p) else np.asarray(p)[:, None])
    return np.packbits(bits ^ mask, axis=1)


def noisy(emb: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    e = emb + rng.normal(0, sigma, emb.shape).astype(np.float32)
    return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)


def popcount_dist(q: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Exhaustive Hamming distances (Q, N) with numpy."""
    table = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1).astype(np.uint8)
    return np.stack([table[np.bitwise_xor(codes, qq[None])].sum(1, dtype=np.int32) for qq in q])


def sha(i: int) -> str:
    return hashlib.sha256(f"synthetic-{i}".encode()).hexdigest()


def run_size(n_frames: int, real: VideoDescriptor, uri: str | None, radius: int, queries: int, rng: np.random.Generator) -> dict[str, object]:
    work = OUT / f"search_{n_frames}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    store = Store.connect(uri or str(work / "bench.db"), prefix=f"bench{n_frames}")
    store.drop()
    meta = StoreMeta(model_id="bench", embed_dim=real.dim, code_bits=128, fps=1.0, keyframes=False)
    store.ensure_collections(meta)
    all_codes = [real.codes]
    t0 = time.perf_counter()
    real_planted = VideoDescriptor(0, "/bench/bbb.mp4", real.duration, real.timestamps, real.embeddings, real.codes, model_id="bench")
    store.add_video(real_planted, sha(-1))
    stored = real.num_frames
    i = 0
    while stored < n_frames:
        n = min(FRAMES_PER_VIDEO, n_frames - stored)
        start = int(rng.integers(0, max(1, real.num_frames - n)))
        idx = (start + np.arange(n)) % real.num_frames
        codes = flip(real.codes[idx], float(rng.uniform(0.3, 0.5)), rng)
        emb = noisy(real.embeddings[idx], float(rng.uniform(0.08, 0.15)), rng)
        d = VideoDescriptor(0, f"/bench/synthetic_{i:06d}.mp4", float(n), np.arange(n, dtype=np.float32), emb, codes, model_id="bench")
        store.add_video(d, sha(i))
        all_codes.append(codes)
        stored += n
        i += 1
    insert_s = time.perf_counter() - t0
    store.flush()
    codes_all = np.concatenate(all_codes)
    lat, recalls, cand_frames = [], [], []
    ham_milvus, ham_faiss, ham_numpy, faiss_agree = [], [], [], []
    try:
        import faiss  # optional: pip install faiss-cpu (the `bench` extra)

        findex = faiss.IndexBinaryFlat(128)
        findex.add(codes_all)
    except ImportError:
        findex = None
    params = SearchParams(radius=radius)
    for _ in range(queries):
        s = int(rng.integers(0, real.num_frames - 20))
        q = VideoDescriptor(0, "/bench/query.mp4", 20.0, real.timestamps[s : s + 20] - real.timestamps[s], noisy(real.embeddings[s : s + 20], 0.03, rng), flip(real.codes[s : s + 20], 0.1, rng))
        t = time.perf_counter()
        resp = search_descriptor(store, q, params)
        lat.append(time.perf_counter() - t)
        cand_frames.append(resp.candidates["frames"])
        t = time.perf_counter()
        hits = store.range_search_codes(q.codes, radius)
        ham_milvus.append(time.perf_counter() - t)
        t = time.perf_counter()
        truth = int((popcount_dist(q.codes, codes_all) <= radius).sum())
        ham_numpy.append(time.perf_counter() - t)
        recalls.append(len(hits.ids) / truth if truth else 1.0)
        if findex is not None:
            t = time.perf_counter()
            lims, _, _ = findex.range_search(q.codes, radius + 1)  # faiss keeps d < radius
            ham_faiss.append(time.perf_counter() - t)
            faiss_agree.append(int(lims[-1]) == truth)
    store.close()
    lat_ms = np.array(lat) * 1e3
    out: dict[str, object] = {
        "frames": int(len(codes_all)),
        "videos": i + 1,
        "insert_frames_per_s": round(len(codes_all) / insert_s, 1),
        "insert_s": round(insert_s, 1),
        "search_p50_ms": round(float(np.percentile(lat_ms, 50)), 1),
        "search_p95_ms": round(float(np.percentile(lat_ms, 95)), 1),
        "hamming_recall_vs_exhaustive": round(float(np.mean(recalls)), 4),
        "candidate_frames_mean": round(float(np.mean(cand_frames)), 1),
        "db_bytes": sum(f.stat().st_size for f in work.rglob("*") if f.is_file()) if uri is None else None,
        "hamming_stage_p50_ms": {
            "milvus_range_search": round(float(np.percentile(ham_milvus, 50)) * 1e3, 2),
            "faiss_IndexBinaryFlat": round(float(np.percentile(ham_faiss, 50)) * 1e3, 2) if ham_faiss else None,
            "numpy_exhaustive": round(float(np.percentile(ham_numpy, 50)) * 1e3, 2),
        },
        "faiss_same_hits": bool(all(faiss_agree)) if faiss_agree else None,
    }
    if out["db_bytes"]:
        out["bytes_per_reference_hour"] = int(out["db_bytes"] / (out["frames"] / 3600.0))  # 1 fps
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--radius", type=int, default=SearchParams.radius)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--uri", default=None, help="Milvus server URI (default: a fresh Milvus Lite file per size)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    real = real_descriptor()
    results = {}
    for n in args.sizes:
        r = run_size(n, real, args.uri, args.radius, args.queries, rng)
        results[str(n)] = r
        print(f"{n:>9} frames: " + ", ".join(f"{k} {v}" for k, v in r.items()), flush=True)
    previous = RESULTS / "search.json"
    if previous.is_file():  # keep sizes measured by earlier runs (1M frames takes long)
        old = json.loads(previous.read_text())
        if old.get("radius") == args.radius:
            results = {**old.get("sizes", {}), **results}
    save("search", {"radius": args.radius, "queries": args.queries, "sizes": dict(sorted(results.items(), key=lambda kv: int(kv[0])))})


if __name__ == "__main__":
    main()
