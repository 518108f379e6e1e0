"""Load test of the review server: 8 concurrent clients on loopback for a bounded time.

    .venv/bin/python benchmarks/bench_serve.py [--clients 8] [--seconds 30]

Ingests the benchmark references (benchmarks/data/refs, made by make_dataset.py) into a fresh
Milvus Lite file, starts `vidret-milvus serve`'s server in-process on 127.0.0.1 (a free port),
and has each client POST /api/search for stored videos (a search re-fingerprints the clip:
decode + model + recall + re-rank + align) and GET byte ranges of /media/video/ID, until the
time is up. Reports requests, errors, and latency p50/p95 per kind.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import threading
import time

import numpy as np

from _common import ROOT, save
from vidret_milvus.fingerprint import Sampling
from vidret_milvus.ingest import ingest_paths
from vidret_milvus.model import load_model
from vidret_milvus.store import Store
from vidret_milvus.web.app import ReviewApp, make_server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    refs = sorted((ROOT / "benchmarks" / "data" / "refs").glob("*.mp4"))
    if not refs:
        raise SystemExit("run benchmarks/make_dataset.py first")
    work = ROOT / "benchmarks" / "out" / "serve"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    model = load_model()
    store = Store.connect(str(work / "serve.db"))
    rep = ingest_paths(store, model, [str(p) for p in refs], Sampling())
    ids = [v for _, v, _ in rep.ingested]
    app = ReviewApp(store, model)
    httpd = make_server(app, "127.0.0.1", 0)
    port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    lat: dict[str, list[float]] = {"search": [], "range": []}
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds

    def client(k: int) -> None:
        rng = np.random.default_rng(k)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while time.monotonic() < deadline:
            vid = int(ids[int(rng.integers(len(ids)))])
            try:
                t = time.perf_counter()
                if rng.random() < 0.5:
                    conn.request("POST", "/api/search", body=json.dumps({"query": f"video:{vid}", "top_n": 5}), headers={"Content-Type": "application/json"})
                    kind = "search"
                else:
                    start = int(rng.integers(0, 100_000))
                    conn.request("GET", f"/media/video/{vid}", headers={"Range": f"bytes={start}-{start + 65535}"})
                    kind = "range"
                resp = conn.getresponse()
                body = resp.read()
                ok = resp.status == (200 if kind == "search" else 206)
                if kind == "search" and ok:
                    ok = json.loads(body)["results"][0]["video_id"] == vid
                with lock:
                    if ok:
                        lat[kind].append(time.perf_counter() - t)
                    else:
                        errors.append(f"{kind} {resp.status}")
            except (OSError, http.client.HTTPException, ValueError, KeyError, IndexError) as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.seconds + 180)
    wall = time.perf_counter() - t0
    httpd.shutdown()
    app.close()
    store.close()
    res: dict[str, object] = {"clients": args.clients, "seconds": round(wall, 1), "errors": len(errors), "error_examples": errors[:5]}
    for kind, xs in lat.items():
        ms = np.array(xs) * 1e3
        res[kind] = {"requests": len(xs), "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(xs) else None,
                     "p95_ms": round(float(np.percentile(ms, 95)), 1) if len(xs) else None, "per_s": round(len(xs) / wall, 2)}
    for k, v in res.items():
        print(f"{k:14s} {v}")
    save("serve", res)


if __name__ == "__main__":
    main()
