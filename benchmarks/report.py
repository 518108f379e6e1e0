"""Write benchmarks/RESULTS.md from benchmarks/results/*.json (run after the benchmarks)."""

from __future__ import annotations

import json

from _common import RESULTS, ROOT


def table(rows: list[list[object]], head: list[str]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _gb(v: object) -> str:
    return f"{v / 1e9:.2f}" if isinstance(v, (int, float)) and v else "-"


def search_section(d: dict) -> list[str]:
    """bench_search.py: one table per backend (server, Lite), the synthetic frames' fit, the latency plot."""
    parts = ["## Store and search at scale (`benchmarks/bench_search.py`)", ""]
    if "backends" not in d:  # the format before the server runs: Lite only, frames around one film
        return parts + [f"Milvus Lite, radius {d['radius']}, {d['queries']} queries; measured {d['when']} (old format).", ""]
    syn = d.get("synthetic", {})
    dist = syn.get("distances", {})
    b0 = next(iter(d["backends"].values()))
    m = b0["model"]
    parts += [
        f"Model `{m['id']}` ({m['embed_dim']}-d embeddings, {m['code_bits']}-bit codes) with its tuned thresholds (radius {b0['radius']}); "
        f"per size {b0['queries']} edited copies of stored segments and {b0['queries']} novel clips, {b0['query_frames']} frames each, "
        "already fingerprinted; each searched with the re-rank over every frame of the candidate videos (`video`), over the frames "
        f"within {b0['rerank_window_s']:g} s of the recalled ones (`window`), and that with the code stage bounded for a large library "
        "(`window_top`: `--recall-limit 128 --max-candidates 50`). One library grows through the sizes; each size is "
        "measured after its rows are flushed and indexed. Commands: `.venv/bin/python benchmarks/bench_search.py --hours 1 10 100 1000` "
        "(embedded Milvus server) and `--backend lite`. Measured " + d["when"] + ".", "",
        f"Synthetic references: a Gaussian latent model of [embedding ; code bits] fitted to {syn.get('real_frames')} real 1 fps frames "
        f"of {syn.get('real_videos')} clips from {syn.get('real_sources')} sources (resources/bbb.mp4, resources/videos/*) made with this "
        "model: video centres, shots, frame noise, per-video motion, copy edits (`benchmarks/synthetic_frames.py`; parameters "
        f"{json.dumps(syn.get('params', {}))}). Real vs synthetic distances (mean; 5/50/95 % quantiles):", ""]
    rows = []
    for kind, v in dist.items():
        for met in ("hamming", "l2"):
            r_, s_ = v[met]["real"], v[met]["synthetic"]
            rows.append([kind, met, f"{r_['mean']} ({r_['q'][0]} / {r_['q'][2]} / {r_['q'][4]})", f"{s_['mean']} ({s_['q'][0]} / {s_['q'][2]} / {s_['q'][4]})"])
    parts += [table(rows, ["pairs", "distance", "real", "synthetic"]), "", "![real vs synthetic](results/search_synthetic_vs_real.png)", ""]
    for name, b in d["backends"].items():
        title = f"Milvus server {b['server_version']} (embedded standalone, PyPI `milvus`)" if name == "server" else "Milvus Lite"
        parts += [f"### {title}", ""]
        rows, top_rows = [], []
        for r in b["sizes"].values():
            w, v = r["window"], r["video"]
            t = r.get("window_top")
            if t:
                st = t["stage_p50_ms"]
                top_rows.append([f"{r['hours']:g} h", f"{t['search_p50_ms']} / {t['search_p95_ms']}", f"{st['recall']} / {st['rerank']} / {st['align']}",
                                 f"{t['rerank_frames_share_mean'] * 100:.3f}", t["candidate_videos_mean"], t["copies_found"], t["novel_false_copies"],
                                 r.get("same_top_result_window_top_vs_video", "-")])
            h = r.get("hamming_stage_p50_ms") or {}
            rows.append([f"{r['hours']:g} h ({r['frames']:,} frames, {r['videos']:,} videos)", r["insert_frames_per_s"], _gb(r.get("disk_bytes")),
                         _gb(r.get("server_rss_bytes_after_search") or r.get("server_rss_bytes")),
                         f"{w['search_p50_ms']} / {w['search_p95_ms']}", f"{v['search_p50_ms']} / {v['search_p95_ms']}",
                         f"{w['rerank_frames_share_mean'] * 100:.3f} / {v['rerank_frames_share_mean'] * 100:.2f}", w["candidate_videos_mean"],
                         f"{w['copies_found']} / {v['copies_found']}", f"{w['novel_false_copies']} / {v['novel_false_copies']}",
                         r["hamming_recall_vs_exhaustive"], r["queries_capped"],
                         f"{h.get('milvus_range_search', '-')} / {h.get('faiss_IndexBinaryFlat', '-')} / {h.get('numpy_exhaustive') or '-'}",
                         r.get("load_avg", "-")])
        parts += [table(rows, ["references", "insert frames/s", "disk GB", "server RSS GB", "search p50 / p95 ms: window", "video",
                               "% of frames re-ranked: window / video", "candidate videos", "copies found: window / video",
                               "novel clips called copies: window / video", "Hamming recall vs exhaustive", "queries capped",
                               "Hamming stage p50 ms: Milvus / FAISS flat / numpy", "load avg"]), ""]
        if top_rows:
            parts += ["The same queries with the code stage bounded (`window_top`), the setting for a large library:", "",
                      table(top_rows, ["references", "search p50 / p95 ms", "stage p50 ms: recall / re-rank / align", "% of frames re-ranked",
                                       "candidate videos", "copies found", "novel clips called copies", "same top result as `video`"]), ""]
        stopped = [r["stopped"] for r in b["sizes"].values() if r.get("stopped")]
        if stopped:
            parts += [f"Growth stopped: {stopped[-1]}.", ""]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for name, b in d["backends"].items():
            rs = list(b["sizes"].values())
            hours = [r["hours"] for r in rs]
            for scope, style in (("window_top", "D-"), ("window", "o-"), ("video", "s--")):
                have = [r for r in rs if scope in r]
                ax.plot([r["hours"] for r in have], [r[scope]["search_p50_ms"] for r in have], style, label=f"{name}, {scope}: p50")
            have = [r for r in rs if "window_top" in r]
            ax.plot([r["hours"] for r in have], [r["window_top"]["search_p95_ms"] for r in have], ":", label=f"{name}, window_top: p95")
        ax.axhline(300, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("hours of references (1 fps)")
        ax.set_ylabel("search ms (20-frame query, after fingerprinting)")
        ax.set_title("Search latency vs library size (2 shared cores)")
        ax.legend(fontsize=7)
        fig.savefig(RESULTS / "latency_vs_size.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        parts += ["![latency vs size](results/latency_vs_size.png)", ""]
    except ImportError:
        pass
    return parts


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
    bb = RESULTS / "bench_backbones.json"
    if bb.is_file():
        d = json.loads(bb.read_text())
        parts += ["## Ingest speed of the ONNX models (`benchmarks/bench_backbones.py`)", "",
                  f"{d['seconds']:g} s 1280x720 H.264 clip, 1 fps, {d['threads']} threads, models alternating, best of {d['repeats']}; "
                  f"decode alone {d['decode_realtime_x']}x realtime; measured {d['when']} (load average {d['load_average_end']} at the end).", "",
                  table([[r["model"], r["model_id"], r["images_per_s"], r["realtime_x"], r["realtime_vs_default"]] for r in d["rows"]],
                        ["model", "id", "model img/s (batch of 32)", "fingerprinting x realtime", "of the first"]), ""]
    for f in sorted(RESULTS.glob("retrieval*.json"), key=lambda p: (p.stem != "retrieval", p.stem)):
        d = json.loads(f.read_text())
        parts += [f"## Copy detection (`benchmarks/eval_retrieval.py`{' --name ' + f.stem.split('-', 1)[1] if '-' in f.stem else ''})", "",
                  f"Model `{d['model_id']}` (checkpoint: {d['checkpoint'] or 'the default'}), radius {d['radius']}, "
                  f"segment min similarity {d.get('align_min_score', 0.6)}, frame match L2 <= {d.get('frame_match_l2', 1.0)}, "
                  f"repetition threshold {d.get('duration_threshold', 0.3)}, background beta {d.get('background_beta', 0.0)}, {d['references']} references "
                  f"({d['reference_seconds']} s), {d['queries']} queries ({d['positives']} with a copy). Ingest {d['ingest_realtime_x']}x realtime; "
                  f"search p50 {d['search_ms_p50']} ms, p95 {d['search_ms_p95']} ms (after fingerprinting; fingerprint p50 {d['fingerprint_ms_p50']} ms). "
                  f"Hamming stage: {d['hamming_recall_of_l2_nn']:.1%} of copied query frames have their exhaustive L2 nearest neighbour within the radius; "
                  f"{d['reference_frames_reaching_rerank']:.1%} of reference frames belong to the videos it passes to the re-rank"
                  + (f" ({d['reference_frames_reranked_window']:.1%} are searched by the window re-rank; {d['true_refs_reaching_rerank']:.1%} of the true references are among them)"
                     if "true_refs_reaching_rerank" in d else "")
                  + f". Measured {d['when']}.", ""]
        if d.get("hamming_recall_by_nn_l2"):
            parts += ["Hamming recall of the L2-nearest reference frame, by its L2 distance:", "",
                      table([[band, v["frames_share"], v["nn_in_true_reference"], v["within_radius"]] for band, v in d["hamming_recall_by_nn_l2"].items()],
                            ["L2 to the nearest reference frame", "share of copied frames", "nearest is in the true reference", f"within radius {d['radius']}"]), ""]
        cols = ["muAP", "recall_at_p90", "top1", "detected", "negatives_fpr", "segment_precision", "segment_recall", "segment_f1"]
        parts += [table([[n] + [m[c] for c in cols] for n, m in d["systems"].items()], ["system"] + cols), ""]
        if d.get("systems_main"):  # eval_retrieval --extra-negatives: the table above pools them
            parts += [f"The set's own queries only (the table above adds {d['extra_negatives']['queries']} negatives of `{d['extra_negatives']['data']}`):", "",
                      table([[n] + [m[c] for c in cols] for n, m in d["systems_main"].items()], ["system"] + cols), ""]
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
                  f"segment min similarity {c['align_min_score']}, frame match L2 <= {c['frame_match_l2']}, "
                  # calibrated mode 2 (decision.py) since issue 12; older files hold a repetition threshold
                  + (f"copy at p >= {c['copy_threshold']} with a segment >= {c.get('min_copy_seconds', 3)} s" if "copy_threshold" in c
                     else f"repetition threshold {c['duration_threshold']}")
                  + f", background beta {c.get('background_beta', 0.0)} (background: {d.get('background', 'store sample')}): "
                  + ", ".join(f"{k} {v}" for k, v in c["metrics"].items()) + f". Measured {d['when']}.", ""]
        if d.get("radius_tradeoff"):
            parts += ["Hamming radius trade-off (exhaustive, from the descriptors): share of copied query frames whose L2-nearest "
                      "reference frame is within the radius, and share of reference frames within the radius of negative queries' frames:", "",
                      table([[r["radius"], r["copied_frames_l2nn_within"], r["negative_ref_frames_within"], r.get("negative_ref_frames_reached", "-")]
                             for r in d["radius_tradeoff"]],
                            ["radius", "copies' L2-NN within", "non-copy frame pairs within", "reference frames a negative reaches"]), ""]
    s = RESULTS / "search.json"
    if s.is_file():
        parts += search_section(json.loads(s.read_text()))
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
