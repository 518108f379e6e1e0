"""Write benchmarks/RESULTS.md from benchmarks/results/*.json (run after the benchmarks)."""

from __future__ import annotations

import json

from _common import RESULTS, ROOT


def table(rows: list[list[object]], head: list[str]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def main() -> None:
    parts = ["# Benchmark results", "", "Made by `benchmarks/report.py` from `benchmarks/results/*.json`. "
             "Each section names the command that produced it. Machine: see each JSON's `machine`.", ""]
    fp = RESULTS / "fingerprint.json"
    if fp.is_file():
        d = json.loads(fp.read_text())
        parts += ["## Fingerprinting (`benchmarks/bench_fingerprint.py`)", "",
                  f"60 s 1280x720 H.264 clip of Big Buck Bunny, 1 fps, {d['threads']} threads, measured {d['when']}.", ""]
        rows = [[k, v] for k, v in d.items() if k not in ("when", "machine", "clip", "threads", "seconds")]
        parts += [table(rows, ["measure", "value"]), ""]
    for f in sorted(RESULTS.glob("retrieval*.json"), key=lambda p: (p.stem != "retrieval", p.stem)):
        d = json.loads(f.read_text())
        parts += [f"## Copy detection (`benchmarks/eval_retrieval.py`{' --name ' + f.stem.split('-', 1)[1] if '-' in f.stem else ''})", "",
                  f"Model `{d['model_id']}` (checkpoint: {d['checkpoint'] or 'the default'}), radius {d['radius']}, "
                  f"segment min similarity {d.get('align_min_score', 0.6)}, frame match L2 <= {d.get('frame_match_l2', 1.0)}, "
                  f"repetition threshold {d.get('duration_threshold', 0.3)}, background beta {d.get('background_beta', 0.0)}, {d['references']} references "
                  f"({d['reference_seconds']} s), {d['queries']} queries ({d['positives']} with a copy). Ingest {d['ingest_realtime_x']}x realtime; "
                  f"search p50 {d['search_ms_p50']} ms, p95 {d['search_ms_p95']} ms (after fingerprinting; fingerprint p50 {d['fingerprint_ms_p50']} ms). "
                  f"Hamming stage: {d['hamming_recall_of_l2_nn']:.1%} of copied query frames have their exhaustive L2 nearest neighbour within the radius; "
                  f"{d['reference_frames_reaching_rerank']:.1%} of reference frames reach the re-rank. Measured {d['when']}.", ""]
        cols = ["muAP", "recall_at_p90", "top1", "detected", "negatives_fpr", "segment_precision", "segment_recall", "segment_f1"]
        parts += [table([[n] + [m[c] for c in cols] for n, m in d["systems"].items()], ["system"] + cols), ""]
        png = RESULTS / ("pr" + (f"-{f.stem.split('-', 1)[1]}" if "-" in f.stem else "") + ".png")
        if png.is_file():
            parts += [f"![precision-recall](results/{png.name})", ""]
        edits = sorted(next(iter(d["systems"].values()))["per_edit"])
        parts += ["Per edit type (detected / top-1):", "",
                  table([[n] + [f"{m['per_edit'].get(e, {}).get('detected', '-')}/{m['per_edit'].get(e, {}).get('top1', '-')}" for e in edits] for n, m in d["systems"].items()], ["system"] + edits), ""]
    for f in sorted(RESULTS.glob("tune-*.json")):
        d = json.loads(f.read_text())
        c = d["chosen"]
        parts += [f"## Threshold tuning (`benchmarks/tune_thresholds.py --name {f.stem.split('-', 1)[1]}`)", "",
                  f"Model `{d['model_id']}` on the tuning sets {', '.join(d['data']) if isinstance(d['data'], list) else d['data']} "
                  f"({d['negatives']} negative queries), never the test set. Rule: {d['rule']}. Chosen: radius {c['radius']}, "
                  f"segment min similarity {c['align_min_score']}, frame match L2 <= {c['frame_match_l2']}, repetition threshold "
                  f"{c['duration_threshold']}, background beta {c.get('background_beta', 0.0)} (background: {d.get('background', 'store sample')}): "
                  + ", ".join(f"{k} {v}" for k, v in c["metrics"].items()) + f". Measured {d['when']}.", ""]
        if d.get("radius_tradeoff"):
            parts += ["Hamming radius trade-off (exhaustive, from the descriptors): share of copied query frames whose L2-nearest "
                      "reference frame is within the radius, and share of reference frames within the radius of negative queries' frames:", "",
                      table([[r["radius"], r["copied_frames_l2nn_within"], r["negative_ref_frames_within"]] for r in d["radius_tradeoff"]],
                            ["radius", "copies' L2-NN within", "non-copy frames within"]), ""]
    s = RESULTS / "search.json"
    if s.is_file():
        d = json.loads(s.read_text())
        parts += ["## Store and search at scale (`benchmarks/bench_search.py`)", "",
                  f"Milvus Lite, radius {d['radius']}, {d['queries']} queries of 20 frames; real + synthetic fingerprints; measured {d['when']}.", ""]
        cols = ["frames", "insert_frames_per_s", "search_p50_ms", "search_p95_ms", "hamming_recall_vs_exhaustive", "candidate_frames_mean", "db_bytes"]
        rows = []
        for r in d["sizes"].values():
            h = r.get("hamming_stage_p50_ms") or {}
            rows.append([f"{r['frames']} ({r['frames'] / 3600:.0f} h)"] + [r[c] for c in cols[1:]] + [h.get("milvus_range_search", "-"), h.get("faiss_IndexBinaryFlat", "-"), h.get("numpy_exhaustive", "-")])
        parts += [table(rows, ["frames (hours at 1 fps)"] + cols[1:] + ["Hamming stage p50 ms: Milvus", "FAISS IndexBinaryFlat", "numpy"]), "",
                  "Stored bytes per reference hour (Milvus Lite file, 1 fps, 256-d float + 128-bit code + row): "
                  + ", ".join(f"{r['bytes_per_reference_hour'] / 1e6:.2f} MB" for r in d["sizes"].values() if r.get("bytes_per_reference_hour")) + ".",
                  "The 1,000,000-frame row was measured while other jobs loaded the 2 cores (insert rate and latency are pessimistic).", ""]
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            rs = list(d["sizes"].values())
            hours = [r["frames"] / 3600 for r in rs]
            fig, ax = plt.subplots(figsize=(6, 4))
            ax.plot(hours, [r["search_p50_ms"] for r in rs], "o-", label="search p50 (20-frame query)")
            ax.plot(hours, [r["search_p95_ms"] for r in rs], "s--", label="search p95")
            ax.set_xscale("log")
            ax.set_xlabel("hours of references (1 fps)")
            ax.set_ylabel("ms")
            ax.set_title("Milvus Lite search latency vs size (2 cores)")
            ax.legend()
            fig.savefig(RESULTS / "latency_vs_size.png", dpi=110, bbox_inches="tight")
            parts += ["![latency vs size](results/latency_vs_size.png)", ""]
        except ImportError:
            pass
    sv = RESULTS / "serve.json"
    if sv.is_file():
        d = json.loads(sv.read_text())
        parts += ["## Review server under load (`benchmarks/bench_serve.py`)", ""]
        if "runs" in d:  # 1 and 8 clients against `serve --workers N` on a Milvus server
            ratio = next((v for k, v in d.items() if k.startswith("ratio_")), None)
            parts += [f"`vidret-milvus serve --workers {d['workers']} --threads {d['threads']}` on {d['store']}, {d['references']} stored "
                      "20-50 s references; each client loops over half searches of a stored video (re-fingerprinted: decode + model + "
                      "recall + re-rank + align; the top result must be the video itself) and half 64 KiB byte ranges of one. "
                      f"Searches/s at {max(r['clients'] for r in d['runs'])} clients over 1 client: {ratio} (goal >= 1.5, 0 errors). "
                      "Load average: the 1-minute load of the shared 2-core machine before and after each run; while other jobs load the cores, part of the gain at 8 clients is a larger share of the cores taken from them (more runnable threads), so on an idle 2-core machine the ratio is likely lower.", "",
                      table([[r["clients"], r["seconds"], r["search"]["requests"], r["search"]["per_s"], r["search"]["p50_ms"], r["search"]["p95_ms"],
                              r["range"]["requests"], r["range"]["p50_ms"], r["errors"], " / ".join(map(str, r.get("load_avg", [])))] for r in d["runs"]],
                            ["clients", "s", "searches", "searches/s", "p50 ms", "p95 ms", "ranges", "range p50 ms", "errors", "load avg"]), ""]
        else:  # the format before the FastAPI port: one run, Milvus Lite
            parts += [f"{d['clients']} concurrent clients on loopback for {d['seconds']} s, Milvus Lite, searches serialised by one lock "
                      f"(each search fingerprints a stored 20-50 s clip). Errors: {d['errors']}.", "",
                      table([[k, d[k]["requests"], d[k]["p50_ms"], d[k]["p95_ms"], d[k]["per_s"]] for k in ("search", "range")], ["request", "count", "p50 ms", "p95 ms", "per s"]), ""]
    (ROOT / "benchmarks" / "RESULTS.md").write_text("\n".join(parts))
    print("wrote benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
