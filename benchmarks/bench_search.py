"""Store and search at scale: 1 to 1,000 hours of references (1 fps: 3.6k to 3.6M frames) on a
Milvus server (the embedded Milvus 2.3.5 standalone that `make test` uses, by default) or on
Milvus Lite.

    .venv/bin/python benchmarks/bench_search.py --hours 1 10 100 1000        # embedded Milvus server
    .venv/bin/python benchmarks/bench_search.py --backend lite --hours 1 10 100
    .venv/bin/python benchmarks/bench_search.py --uri http://host:19530 --hours 1 10   # any server
    (--checkpoint DIR: another model than the default; --queries N per kind and size)

Reference frames are synthetic, drawn by benchmarks/synthetic_frames.py from a generative model
fitted to REAL fingerprints (made with the model in use) of the repository's real clips: the
distance distributions of unrelated videos, of frames 1-30 s apart in one video and of edited
copies are reproduced (real vs synthetic histograms: results/search_synthetic_vs_real.png).
Video lengths are log-normal (median 5 min, 20 s to 1 h). One library grows through the sizes
(videos are only added), each size is measured once all its rows are flushed and indexed.

Per size: insert rate (Store.add_video, the ingest path), disk, server memory (RSS of the Milvus
process), and over 2 x ``--queries`` 20-frame queries (edited copies of stored segments and novel
clips, already fingerprinted): search p50/p95 (code recall + re-rank + alignment, the tuned
thresholds of the model) with the re-rank over every frame of every candidate video
(``rerank_scope=video``), over the frames within 5 s of the recalled ones (``window``), and that
with the code stage bounded to the 128 nearest codes per query frame and the 50 videos with the
most coherent code votes (``window_top``: ``recall_limit=128, max_candidates=50``; and
``window_top_votes2``: only videos with at least 2 votes, ``min_code_votes=2``); the
share of reference frames each re-rank searches, copies found (top 1 is the planted video, a
copy, at the right place) and false copies of the novel clips; the code stage's Hamming recall
against an exhaustive search, and FAISS IndexBinaryFlat (the `bench` extra) as its floor.

A run stops growing when the machine's available memory falls under ``--min-free-gb`` and
measures the size it reached (reported as such).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import RESULTS, ROOT, save
from synthetic_frames import OUT, FrameModel, compare, fitted_model, plot_compare
from vidret_milvus.descriptor import VideoDescriptor
from vidret_milvus.search import SearchParams, search_descriptor
from vidret_milvus.store import Store, StoreMeta

SERVER_DIR = ROOT / ".milvus-test"  # scripts/milvus_server.py's default base folder
QUERY_FRAMES = 20
# The settings each query is searched with: the re-rank over every frame of the candidate videos
# (today's), over the frames around the recalled ones, and that with the code stage bounded to
# the 128 nearest codes per query frame and the 50 videos with the most coherent code votes (a
# large library).
SETTINGS = {
    "video": {"rerank_scope": "video"},
    "window": {"rerank_scope": "window"},
    "window_top": {"rerank_scope": "window", "recall_limit": 128, "max_candidates": 50},
    # the same, with candidates that at least 2 query frames recall at one time offset
    "window_top_votes2": {"rerank_scope": "window", "recall_limit": 128, "max_candidates": 50, "min_code_votes": 2},
}
SCOPES = tuple(SETTINGS)
POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1).astype(np.uint8)


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def rss(pid: int) -> dict[str, int]:
    """Resident and peak resident bytes of a process."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"rss_bytes": out.get("VmRSS", 0), "peak_rss_bytes": out.get("VmHWM", 0)}


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def collection_disk(store: Store) -> dict[str, int]:
    """Bytes the store's three collections hold in the embedded server's local storage: their
    binlogs (insert, delta, stats: data/<kind>_log/<collection id>) and the index files of their
    segments (data/index_files/<build>/<version>/<partition>/<segment>). The server's message
    log (data/rocksmq) keeps inserted rows for up to 3 days or 8 GB besides."""
    data = SERVER_DIR / "data"
    out = {"binlogs": 0, "index_files": 0}
    segments: set[str] = set()
    for cid, segs in store.storage_ids().values():
        out["binlogs"] += sum(du(data / kind / str(cid)) for kind in ("insert_log", "delta_log", "stats_log"))
        segments |= {str(s) for s in segs}
    for seg in (data / "index_files").glob("*/*/*/*") if (data / "index_files").is_dir() else []:
        if seg.name in segments:
            out["index_files"] += du(seg)
    return out


def lite_pid(db: Path) -> int | None:
    """The milvus-lite process serving ``db`` (a child of this process)."""
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "milvus_lite" in cmd and str(db) in cmd:
                return int(d.name)
    return None


def popcount_within(q: np.ndarray, codes: np.ndarray, radius: int) -> int:
    """Exhaustive numpy count of (query frame, reference frame) pairs within ``radius``."""
    return int(sum(int((POPCOUNT[np.bitwise_xor(codes, qq[None])].sum(1, dtype=np.int32) <= radius).sum()) for qq in q))


@dataclasses.dataclass
class Library:
    """The synthetic reference videos: video i has ``lengths[i]`` frames drawn with seed (seed, i)."""

    fm: FrameModel
    seed: int
    lengths: list[int] = dataclasses.field(default_factory=list)
    video_ids: list[int] = dataclasses.field(default_factory=list)
    codes: list[np.ndarray] = dataclasses.field(default_factory=list)

    @property
    def frames(self) -> int:
        return int(sum(self.lengths))

    def draw_length(self, rng: np.random.Generator) -> int:
        return int(np.clip(round(float(rng.lognormal(np.log(300.0), 0.8))), 20, 3600))

    def latents(self, i: int) -> np.ndarray:
        return self.fm.latent_video(self.lengths[i], np.random.default_rng([self.seed, i]))

    def descriptor(self, i: int, model_id: str) -> VideoDescriptor:
        e, c = self.fm.to_frames(self.latents(i))
        n = self.lengths[i]
        return VideoDescriptor(0, f"/bench/synthetic_{i:06d}.mp4", float(n), np.arange(n, dtype=np.float32), e, c, model_id=model_id)


def grow(store: Store, lib: Library, target: int, model_id: str, min_free: int, rng: np.random.Generator) -> dict[str, object]:
    """Add videos until the library holds ``target`` frames (or memory runs short)."""
    t0 = time.perf_counter()
    added = 0
    stopped = None
    while lib.frames < target:
        if mem_available() < min_free:
            stopped = f"available memory under {min_free / 2**30:.1f} GiB at {lib.frames} frames"
            break
        i = len(lib.lengths)
        lib.lengths.append(min(lib.draw_length(rng), target - lib.frames))
        d = lib.descriptor(i, model_id)
        lib.video_ids.append(store.add_video(d, hashlib.sha256(f"bench-video-{i}".encode()).hexdigest()))
        lib.codes.append(d.codes)
        added += d.num_frames
        if i % 200 == 0:
            print(f"  {lib.frames} frames ({len(lib.lengths)} videos), {added / (time.perf_counter() - t0):.0f} frames/s, "
                  f"{mem_available() / 2**30:.1f} GiB free", file=sys.stderr, flush=True)
    insert_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    store.flush()
    if not store.is_lite:
        store.wait_for_index(timeout=3600)
    return {"added_frames": added, "insert_s": round(insert_s, 1), "insert_frames_per_s": round(added / insert_s, 1) if insert_s > 0 else None,
            "flush_index_s": round(time.perf_counter() - t1, 1), "stopped": stopped}


def make_queries(lib: Library, n: int, model_id: str, rng: np.random.Generator) -> list[tuple[str, VideoDescriptor, int, int]]:
    """(kind, query, planted video index or -1, start frame) for n copies and n novel clips."""
    out = []
    long_enough = np.array([i for i, n_ in enumerate(lib.lengths) if n_ >= QUERY_FRAMES + 2])
    w = np.array([lib.lengths[i] for i in long_enough], float)
    ts = np.arange(QUERY_FRAMES, dtype=np.float32)
    for k in range(n):
        i = int(rng.choice(long_enough, p=w / w.sum()))
        s = int(rng.integers(0, lib.lengths[i] - QUERY_FRAMES))
        lat = lib.fm.edit(lib.latents(i)[s : s + QUERY_FRAMES], rng)
        e, c = lib.fm.to_frames(lat)
        out.append(("copy", VideoDescriptor(0, f"/bench/copy_{k}.mp4", float(QUERY_FRAMES), ts, e, c, model_id=model_id), i, s))
        e, c = lib.fm.video(QUERY_FRAMES, rng)
        out.append(("novel", VideoDescriptor(0, f"/bench/novel_{k}.mp4", float(QUERY_FRAMES), ts, e, c, model_id=model_id), -1, 0))
    return out


def pct(x: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(x, float), q)), 1) if x else float("nan")


def measure(store: Store, lib: Library, params: SearchParams, n_queries: int, rng: np.random.Generator, model_id: str) -> dict[str, object]:
    codes_all = np.concatenate(lib.codes)
    try:
        import faiss  # the `bench` extra

        findex = faiss.IndexBinaryFlat(codes_all.shape[1] * 8)
        findex.add(codes_all)
    except ImportError:
        findex = None
    queries = make_queries(lib, n_queries, model_id, rng)
    vid_of = {v: i for i, v in enumerate(lib.video_ids)}
    by_scope = {s: dataclasses.replace(params, **SETTINGS[s]) for s in SCOPES}
    for _, q, _, _ in queries[:2]:  # warm-up (caches, loaded segments): not counted
        for s in SCOPES:
            search_descriptor(store, q, by_scope[s])
    rec: dict[str, dict[str, list[float]]] = {s: {k: [] for k in ("ms", "recall_ms", "rerank_ms", "align_ms", "rerank_share", "cand_videos")} for s in SCOPES}
    found = {s: [] for s in SCOPES}
    false_copy = {s: [] for s in SCOPES}
    same_top, same_top_bounded = [], []
    ham = {"milvus": [], "faiss": [], "numpy": []}
    recall, capped, hits_per_frame = [], [], []
    for qn, (kind, q, planted, start) in enumerate(queries):
        tops = {}
        for s in (SCOPES if qn % 2 == 0 else SCOPES[::-1]):  # alternate the order: no setting always runs last
            t = time.perf_counter()
            resp = search_descriptor(store, q, by_scope[s])
            ms = (time.perf_counter() - t) * 1e3
            r = rec[s]
            r["ms"].append(ms)
            for k in ("recall", "rerank", "align"):
                r[f"{k}_ms"].append(resp.timing_ms[k])
            r["rerank_share"].append(resp.candidates["rerank_frames"] / lib.frames)
            r["cand_videos"].append(resp.candidates["videos"])
            top = resp.results[0] if resp.results else None
            tops[s] = (top.video_id, top.is_copy) if top else None
            if kind == "copy":
                ok = bool(top and top.is_copy and vid_of.get(top.video_id) == planted and any(
                    abs(g.ref_start - start) <= 3 for g in top.segments))
                found[s].append(ok)
            else:
                false_copy[s].append(any(r_.is_copy for r_ in resp.results))
        same_top.append(tops["video"] == tops["window"])
        same_top_bounded.append(tops["video"] == tops["window_top"])
        t = time.perf_counter()
        hits = store.range_search_codes(q.codes, params.radius)
        ham["milvus"].append((time.perf_counter() - t) * 1e3)
        capped.append(bool(hits.capped.any()))
        truth = None
        if findex is not None:
            t = time.perf_counter()
            lims, _, _ = findex.range_search(q.codes, params.radius + 1)  # FAISS keeps d < radius
            ham["faiss"].append((time.perf_counter() - t) * 1e3)
            truth = int(lims[-1])
        if len(codes_all) <= 400_000 and qn < 10:
            t = time.perf_counter()
            exact = popcount_within(q.codes, codes_all, params.radius)
            ham["numpy"].append((time.perf_counter() - t) * 1e3)
            assert truth is None or truth == exact, (truth, exact)
            truth = exact
        if truth is not None:
            recall.append(len(hits.ids) / truth if truth else 1.0)
        hits_per_frame.append(len(hits.ids) / QUERY_FRAMES)
    out: dict[str, object] = {}
    for s in SCOPES:
        r = rec[s]
        out[s] = {
            "search_p50_ms": pct(r["ms"], 50), "search_p95_ms": pct(r["ms"], 95),
            "stage_p50_ms": {k: pct(r[f"{k}_ms"], 50) for k in ("recall", "rerank", "align")},
            "rerank_frames_share_mean": round(float(np.mean(r["rerank_share"])), 5),
            "rerank_frames_share_p95": round(float(np.percentile(r["rerank_share"], 95)), 5),
            "candidate_videos_mean": round(float(np.mean(r["cand_videos"])), 1),
            "copies_found": round(float(np.mean(found[s])), 3), "novel_false_copies": round(float(np.mean(false_copy[s])), 3),
        }
    out["same_top_result_both_scopes"] = round(float(np.mean(same_top)), 3)
    out["same_top_result_window_top_vs_video"] = round(float(np.mean(same_top_bounded)), 3)
    out["settings"] = SETTINGS
    out["hamming_recall_vs_exhaustive"] = round(float(np.mean(recall)), 4) if recall else None
    out["queries_capped"] = round(float(np.mean(capped)), 3)
    out["code_hits_per_query_frame_mean"] = round(float(np.mean(hits_per_frame)), 1)
    out["hamming_stage_p50_ms"] = {
        "milvus_range_search": pct(ham["milvus"], 50), "faiss_IndexBinaryFlat": pct(ham["faiss"], 50) if ham["faiss"] else None,
        "numpy_exhaustive": pct(ham["numpy"], 50) if ham["numpy"] else None,
    }
    return out


def start_embedded() -> tuple[str, dict[str, object]]:
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "milvus_server.py"), "start", "--owner", str(os.getpid()), "--lease", f"bench_search_{os.getpid()}"],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"the embedded Milvus server did not start:\n{res.stderr}")
    state = json.loads((SERVER_DIR / "server.json").read_text())
    return res.stdout.strip().splitlines()[-1], state


def stop_embedded() -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "milvus_server.py"), "stop", "--lease", f"bench_search_{os.getpid()}"], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, nargs="+", default=[1, 10, 100, 1000])
    ap.add_argument("--backend", choices=["server", "lite"], default="server", help="server: the embedded Milvus 2.3.5 (or --uri); lite: a Milvus Lite file")
    ap.add_argument("--uri", default=None, help="an already running Milvus server (instead of the embedded one)")
    ap.add_argument("--checkpoint", default=None, help="model checkpoint (default: the shipped default model)")
    ap.add_argument("--queries", type=int, default=20, help="copies and as many novel clips per size")
    ap.add_argument("--min-free-gb", type=float, default=3.0, help="stop growing when the machine has less memory available")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="search", help="results/<name>.json")
    args = ap.parse_args()

    from vidret_milvus.model import load_model
    from vidret_milvus.model.settings import thresholds_for

    model = load_model(args.checkpoint)
    model_id = str(model.model_id)
    params = SearchParams.for_model(thresholds_for(model))
    fm, real, fit_info = fitted_model(model)
    cmp = compare(real, fm)
    plot_compare(cmp, RESULTS / "search_synthetic_vs_real.png",
                 f"{model_id} ({real.dim}-d, {real.bits} bits): real ({len(real.t)} frames, {len(real.paths)} clips) vs synthetic")
    synthetic = {**fit_info, "distances": {k: {m: {"real": d["real"], "synthetic": d["synthetic"]} for m, d in v.items()} for k, v in cmp.items()}}
    print(json.dumps(synthetic["params"]), file=sys.stderr)

    server_state: dict[str, object] = {}
    uri = args.uri
    started = False
    work = OUT / f"search_{args.backend}"
    if args.backend == "server" and uri is None:
        uri, server_state = start_embedded()
        started = True
    elif args.backend == "lite":
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        uri = str(work / "bench.db")
    sizes: dict[str, dict[str, object]] = {}
    rng = np.random.default_rng(args.seed)
    try:
        store = Store.connect(uri, prefix="bench_search", timeout=600)
        store.drop()
        store.ensure_collections(StoreMeta(model_id=model_id, embed_dim=real.dim, code_bits=real.bits, fps=1.0, keyframes=False))
        version = ".".join(map(str, store.server_version() or ())) or "unknown" if not store.is_lite else "lite"
        lib = Library(fm, args.seed)
        for hours in sorted(args.hours):
            target = int(round(hours * 3600))
            g = grow(store, lib, target, model_id, int(args.min_free_gb * 2**30), rng)
            if store.is_lite:
                pid = lite_pid(Path(uri))
                disk = du(work)
                parts = {}
            else:
                pid = int(server_state.get("milvus_pid", 0)) or None
                disk = du(SERVER_DIR / "data") if started else None
                parts = {d.name: du(d) for d in sorted((SERVER_DIR / "data").iterdir())} if started and (SERVER_DIR / "data").is_dir() else {}
                if started:
                    parts["bench_collections"] = collection_disk(store)  # type: ignore[assignment]
                    disk = sum(parts["bench_collections"].values())  # type: ignore[union-attr]
            row: dict[str, object] = {
                "hours": round(lib.frames / 3600, 3), "frames": lib.frames, "videos": len(lib.lengths), **g,
                # server: the bench collections' binlogs and index files (disk_bytes_by_folder: the whole data folder)
                "disk_bytes": disk, "bytes_per_reference_hour": int(disk / (lib.frames / 3600)) if disk else None,
                **({"disk_bytes_by_folder": parts} if parts else {}),
                **({f"server_{k}": v for k, v in rss(pid).items()} if pid else {}),
                "machine_mem_available_bytes": mem_available(), "load_avg": round(os.getloadavg()[0], 2),
            }
            print(f"{lib.frames} frames stored: " + json.dumps(row), file=sys.stderr, flush=True)
            row.update(measure(store, lib, params, args.queries, rng, model_id))
            if pid:
                row.update({f"server_{k}_after_search": v for k, v in rss(pid).items()})
            sizes[str(lib.frames)] = row
            print(f"{lib.frames} frames: " + json.dumps(row), flush=True)
            result = {"backend": args.backend, "server_version": version, "model": {"id": model_id, "embed_dim": real.dim, "code_bits": real.bits},
                      "radius": params.radius, "rerank_window_s": params.rerank_window_s, "queries": args.queries,
                      "query_frames": QUERY_FRAMES, "synthetic": synthetic, "sizes": sizes}
            write(args.name, args.backend, result)
            if g["stopped"]:
                print(f"stopped growing: {g['stopped']}", file=sys.stderr)
                break
        store.drop()
        store.close()
    finally:
        if started:
            stop_embedded()


def write(name: str, backend: str, result: dict[str, object]) -> None:
    """results/<name>.json holds one entry per backend; sizes of earlier runs with the same model
    and radius are kept (the 1,000 h run takes hours)."""
    path = RESULTS / f"{name}.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    backends = old.get("backends", {}) if isinstance(old.get("backends"), dict) else {}
    prev = backends.get(backend, {})
    if prev.get("model") == result["model"] and prev.get("radius") == result["radius"]:
        result = {**result, "sizes": dict(sorted({**prev.get("sizes", {}), **result["sizes"]}.items(), key=lambda kv: int(kv[0])))}  # type: ignore[dict-item]
    backends[backend] = result
    synthetic = result.pop("synthetic")
    save(name, {"synthetic": synthetic, "backends": backends})
    result["synthetic"] = synthetic


if __name__ == "__main__":
    main()
