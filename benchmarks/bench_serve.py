"""Load test of the review server on a Milvus server: 1 client, then 8, for a bounded time each.

    .venv/bin/python benchmarks/bench_serve.py [--seconds 120] [--clients 1 8] [--workers 4]
                                               [--uri http://host:19530]

Runs the real thing as separate processes: `vidret-milvus ingest` puts the benchmark references
(benchmarks/data/refs, made by make_dataset.py) under a fresh collection prefix of a Milvus
SERVER, then `vidret-milvus serve --workers N` serves them on 127.0.0.1 (a free port). The
server is --uri, else $VIDRET_TEST_SERVER_URI, else the embedded Milvus standalone that
`make test` uses (scripts/milvus_server.py, started with a lease here and released at the end).

Each client (a thread here; the server is another process, so the clients do not compete with
it for the GIL) loops until its time is up: half its requests POST /api/search for a stored
video (a search re-fingerprints the clip: decode + model + recall + re-rank + align; the top
result must be the video itself, else it counts as an error), half GET a 64 KiB byte range of
/media/video/ID. Reported per setting: searches/s, p50/p95 latency, errors; then the ratio of
searches/s at the most clients to one client. Writes benchmarks/results/serve.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from _common import ROOT, save

CLI = [sys.executable, "-c", "import sys; from vidret_milvus.cli import main; sys.exit(main())"]
MILVUS_SERVER = [sys.executable, str(ROOT / "scripts" / "milvus_server.py")]


def server_uri(arg: str | None) -> tuple[str, str | None]:
    """(URI, lease to release at the end or None)."""
    uri = arg or os.environ.get("VIDRET_TEST_SERVER_URI", "").strip()
    if uri:
        return uri, None
    lease = f"bench_serve_{os.getpid()}"
    res = subprocess.run([*MILVUS_SERVER, "start", "--owner", str(os.getpid()), "--lease", lease], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"could not start the embedded Milvus server:\n{res.stderr}")
    return res.stdout.strip().splitlines()[-1], lease


def start_serve(uri: str, prefix: str, workers: int, threads: int, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`vidret-milvus serve` on a free port; returns (process, port) once the page answers."""
    err = open(log, "w")  # noqa: SIM115 - the child writes to it until it ends
    proc = subprocess.Popen([*CLI, "serve", "--uri", uri, "--prefix", prefix, "--port", "0", "--workers", str(workers), "--threads", str(threads)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        m = re.search(r"review page on http://[^:]+:(\d+)/", log.read_text())
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            raise SystemExit(f"serve exited with {proc.returncode}:\n{log.read_text()}")
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"serve did not start in 180 s:\n{log.read_text()}")


def get_json(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def load(port: int, ids: list[int], sizes: dict[int, int], clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` threads for ``seconds``: per-kind latency percentiles, rates and errors."""
    lat: dict[str, list[float]] = {"search": [], "range": []}
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(k: int) -> None:
        rng = np.random.default_rng(1000 * clients + k)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        while time.monotonic() < deadline:
            vid = int(ids[int(rng.integers(len(ids)))])
            kind = "search" if rng.random() < 0.5 else "range"
            try:
                t = time.perf_counter()
                if kind == "search":
                    conn.request("POST", "/api/search", body=json.dumps({"query": f"video:{vid}", "top_n": 5}), headers={"Content-Type": "application/json"})
                else:
                    start = int(rng.integers(0, max(1, sizes[vid] - 65536)))
                    conn.request("GET", f"/media/video/{vid}", headers={"Range": f"bytes={start}-{start + 65535}"})
                resp = conn.getresponse()
                body = resp.read()
                ok = resp.status == (200 if kind == "search" else 206)
                if kind == "search" and ok:
                    ok = json.loads(body)["results"][0]["video_id"] == vid
                with lock:
                    if ok:
                        lat[kind].append(time.perf_counter() - t)
                    else:
                        errors.append(f"{kind} {resp.status} {body[:200]!r}")
            except (OSError, http.client.HTTPException, ValueError, KeyError, IndexError) as exc:
                with lock:
                    errors.append(f"{kind} {type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()  # a request started before the deadline is waited for: it counts
    wall = time.perf_counter() - t0
    # The 1-minute load average before and after: the 2 cores are shared, so say how busy they were.
    res: dict[str, Any] = {"clients": clients, "seconds": round(wall, 1), "errors": len(errors), "error_examples": errors[:5],
                           "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    for kind, xs in lat.items():
        ms = np.array(xs) * 1e3
        res[kind] = {"requests": len(xs), "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(xs) else None,
                     "p95_ms": round(float(np.percentile(ms, 95)), 1) if len(xs) else None, "per_s": round(len(xs) / wall, 3)}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8], help="client counts, one run each (default 1 8)")
    ap.add_argument("--seconds", type=float, default=120.0, help="length of each run (default 120)")
    ap.add_argument("--workers", type=int, default=4, help="serve --workers (default 4)")
    ap.add_argument("--threads", type=int, default=2, help="serve --threads: decoder and model threads per search (default 2)")
    ap.add_argument("--uri", help="Milvus server URI (default $VIDRET_TEST_SERVER_URI, else the embedded server)")
    ap.add_argument("--no-save", action="store_true", help="print only (short trial runs)")
    args = ap.parse_args()
    refs = sorted((ROOT / "benchmarks" / "data" / "refs").glob("*.mp4"))
    if not refs:
        raise SystemExit("run benchmarks/make_dataset.py first")
    work = ROOT / "benchmarks" / "out" / "serve"
    work.mkdir(parents=True, exist_ok=True)
    uri, lease = server_uri(args.uri)
    if not uri.startswith(("http://", "https://", "tcp://", "unix:")):
        raise SystemExit(f"{uri}: this benchmark measures a Milvus server (Milvus Lite serialises searches by design)")
    prefix = f"bench_serve_{uuid.uuid4().hex[:12]}"
    proc = None
    try:
        t = time.perf_counter()
        ing = subprocess.run([*CLI, "ingest", str(refs[0].parent), "--uri", uri, "--prefix", prefix, "--json"], capture_output=True, text=True)
        if ing.returncode != 0:
            raise SystemExit(f"ingest failed:\n{ing.stdout}\n{ing.stderr}")
        print(f"ingested {len(refs)} references into {uri} (prefix {prefix}) in {time.perf_counter() - t:.1f} s", flush=True)
        proc, port = start_serve(uri, prefix, args.workers, args.threads, work / "serve.log")
        st, videos = get_json(port, "GET", "/api/videos")
        assert st == 200 and len(videos) == len(refs), videos
        ids = [int(v["video_id"]) for v in videos]
        sizes = {int(v["video_id"]): (ROOT / "benchmarks" / "data" / "refs" / v["name"]).stat().st_size for v in videos}
        # Warm-up (not measured): first searches load the background sample and fill caches.
        for vid in ids:
            st, out = get_json(port, "POST", "/api/search", {"query": f"video:{vid}", "top_n": 5})
            assert st == 200 and out["results"][0]["video_id"] == vid, out
        model_id = out["decision"].get("model_id")
        runs = []
        for n in args.clients:
            r = load(port, ids, sizes, n, args.seconds)
            s = r["search"]
            print(f"{n} client(s), {r['seconds']} s: {s['per_s']} searches/s, p50 {s['p50_ms']} ms, p95 {s['p95_ms']} ms, "
                  f"{r['range']['requests']} range requests (p50 {r['range']['p50_ms']} ms), errors {r['errors']} {r['error_examples'][:2]}", flush=True)
            runs.append(r)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        try:
            sys.path.insert(0, str(ROOT))
            from vidret_milvus.store import Store

            with Store.connect(uri, prefix=prefix) as store:
                version = store.server_version()
                store.drop()
        except Exception as exc:  # noqa: BLE001 - clean-up must not hide the result
            version = None
            print(f"warning: could not drop prefix {prefix}: {exc}")
        if lease is not None:
            subprocess.run([*MILVUS_SERVER, "stop", "--lease", lease], capture_output=True)
    res: dict[str, Any] = {
        "store": f"Milvus server {'.'.join(map(str, version)) if version else '?'} ({'embedded, PyPI milvus' if lease or 'VIDRET_TEST_SERVER_URI' in os.environ else uri})",
        "workers": args.workers, "threads": args.threads, "references": len(refs), "model_id": model_id,
        "runs": runs,
    }
    base = next((r for r in runs if r["clients"] == 1), None)
    top = max(runs, key=lambda r: r["clients"])
    if base is not None and top is not base and base["search"]["per_s"]:
        key = f"ratio_{top['clients']}_to_1"
        res[key] = round(top["search"]["per_s"] / base["search"]["per_s"], 2)
        print(f"searches/s, {top['clients']} clients / 1 client: {res[key]}")
    if not args.no_save:
        save("serve", res)


if __name__ == "__main__":
    main()
