"""Choose a model's copy-decision thresholds and fit its mode-2 calibration on a tuning set
(never on the test set).

    .venv/bin/python benchmarks/make_dataset.py --split tune --hard --seed 1      # once: data_hard_tune
    .venv/bin/python benchmarks/tune_thresholds.py --data benchmarks/data_hard_tune \\
        (--checkpoint DIR | --backbone NAME | --untrained) [--write-config DIR]

The thresholds that decide "copy" depend on the model: a trained texture head puts copies
AND same-film non-copies closer together than untrained heads do, so thresholds tuned for
one model flag many negatives with another. This script runs the real pipeline (Milvus Lite,
recall -> re-rank -> align, mode 2) once per grid point of (``align.min_score``,
``frame_match_l2``, ``background_beta``, ``radius``). Every candidate (query, reference) of
every query yields its evidence features (``decision.FEATURES``, ``Result.evidence``) and a
label (the reference is one of the query's true ``matches``). Per grid point:

* the calibration ``p = sigmoid(w . x + b)`` is fitted on ALL those candidates
  (``decision.fit_calibration``, L2 logistic regression, ``--calib-l2``), so that ``p`` is
  the probability that a candidate of this kind is a true copy, the same meaning for every
  query; the mode-2 score is ``p``;
* every (``copy_threshold``, ``min_copy_seconds``) pair of the grid is evaluated with the
  patent's repetition rule OFF (``repetition_rule`` 0): copy when ``p >= copy_threshold`` and
  the best segment lasts ``min_copy_seconds`` (the cut only decides; scores and segments do
  not change);
* for comparison only, the old rule (copy when the repetition degree >= ``duration_threshold``
  and a segment exists; score = the repetition degree) and the hand-set calibration
  (``decision.Calibration()``) and the model's own (shipped) calibration at the same cuts.

The Hamming radius trades speed at scale for recall, which a small set cannot price: pass the
one chosen from the printed radius table (``radius_tradeoff``). With ``background_beta`` > 0,
``background_default`` (the median similarity of negative queries' frames to their nearest
stored frame) is measured before the grid and used in it, so that the fitted features are on
the scale the search will use.

The queries are searched the way ``search`` does with ``--views`` (default ``insets``, the
default search: the whole frame plus the views the query shows, views.py), so that the
calibration is fitted on the candidates the search will score. Descriptors (and each query's
views) are fingerprinted once and cached under benchmarks/out/tune_cache/MODEL_ID/.

Selection rule: among the calibrated rows (grid point, copy threshold, min copy seconds) whose
negatives' false-positive rate (a negative query with any result flagged) is <= --max-fpr,
the highest mean of muAP (ranking by ``p``), detection rate (true reference flagged) and
segment F1 (localisation): the three things a reviewer sees. Ties go to the higher copy
threshold, then to min_copy_seconds nearest 3. The fit and the choice are in-sample on the
tuning set: the test split measures them. A cut fitted at exactly the goal's rate tends to exceed
it on new data; ``--held-out-goal G`` gives each grid point its own target instead: the largest
of ``--held-out-targets`` whose leave-one-set-out rate (calib_crossfit.crossfit: calibration and
cut fitted without one tuning set, counted on it; all folds together) stays <= G. The result is written to
benchmarks/results/tune-NAME.json (fitted calibrations, chosen values, the whole table), and
``--write-config DIR`` writes the chosen values as the ``"thresholds"`` block of DIR/config.json
(DIR: the checkpoint folder itself, or a new folder that receives a copy of the checkpoint; for
untrained heads given with --backbone/--untrained, the model is first saved there as a
checkpoint, e.g. vidret_milvus/models/sscd/), then checks that ``load_model(checkpoint=DIR)``
gives the same model id.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import shutil
import time
from pathlib import Path

import numpy as np

from _common import POPCOUNT, ROOT, copied_frames_nearest, nearest_view_hamming, save
from calib_crossfit import crossfit, goal_target
from eval_retrieval import evaluate
from vidret_milvus.align import AlignParams
from vidret_milvus.decision import FEATURES, TIME_TOLERANCE, Calibration, fit_calibration
from vidret_milvus.descriptor import VideoDescriptor
from vidret_milvus.fingerprint import Sampling, fingerprint_video
from vidret_milvus.ingest import sha256_file
from vidret_milvus.model import load_model, save_checkpoint
from vidret_milvus.model.settings import thresholds_for
from vidret_milvus.model.checkpoint import BACKGROUND_FILE, CONFIG_FILE, WEIGHTS_FILE, save_onnx_checkpoint
from vidret_milvus.model.onnx_model import OnnxFingerprintModel
from vidret_milvus.search import Mode, SearchParams, search_descriptor
from vidret_milvus.regions import QueryViews
from vidret_milvus.store import Store, StoreMeta
from vidret_milvus.views import fingerprint_views, search_views


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def fingerprints(model, data: Path, names: list[str], sub: str, cache: Path, sampling: Sampling) -> dict[str, VideoDescriptor]:
    out = {}
    for n in names:
        f = cache / sub / (n + ".npz")
        if f.is_file():
            out[n] = VideoDescriptor.load(f)
            continue
        d = fingerprint_video(data / sub / n, model, sampling)
        f.parent.mkdir(parents=True, exist_ok=True)
        d.save(f)
        out[n] = d
    return out


def detectors_version() -> str:
    """A hash of the code that decides a query's views (regions.py, views.py)."""
    import hashlib

    import vidret_milvus.regions
    import vidret_milvus.views

    h = hashlib.sha256()
    for mod in (vidret_milvus.regions, vidret_milvus.views):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()[:12]


def query_views(model, data: Path, names: list[str], views: QueryViews, cache: Path, sampling: Sampling,
                full: dict[str, VideoDescriptor]) -> dict[str, list[tuple[str, VideoDescriptor]]]:
    """Each query's views as the search with ``views`` makes them (views.fingerprint_views), cached
    per query under ``cache/queries-VIEWS-DETECTORS/NAME/`` (``views.json`` keeps their order;
    DETECTORS: :func:`detectors_version`, so a changed detector never reuses old views). The
    full view is the cached whole-frame descriptor (the same function makes it)."""
    if views is QueryViews.full:
        return {n: [("full", full[n])] for n in names}
    out = {}
    root = cache / f"queries-{views.value}-{detectors_version()}"
    for n in names:
        d = root / n
        order = d / "views.json"
        if order.is_file():
            out[n] = [(v, full[n] if v == "full" else VideoDescriptor.load(d / f"{v}.npz")) for v in json.loads(order.read_text())]
            continue
        made = fingerprint_views(data / "queries" / n, model, sampling, regions=True, crops=views.crops)
        d.mkdir(parents=True, exist_ok=True)
        for v, desc in made[1:]:
            desc.save(d / f"{v}.npz")
        order.write_text(json.dumps([v for v, _ in made]))
        out[n] = [("full", full[n]), *made[1:]]
    return out


def cache_dir(model, data: Path) -> Path:
    """Where a set's descriptors of ``model`` are cached: benchmarks/out/tune_cache/MODEL_ID/SET."""
    return ROOT / "benchmarks" / "out" / "tune_cache" / model.model_id / data.name


def cached_set(model, data: Path, views: QueryViews = QueryViews.insets, sampling: Sampling = Sampling(),
               refuse_test: bool = False) -> tuple[dict, dict[str, VideoDescriptor], dict[str, list[tuple[str, VideoDescriptor]]]]:
    """A set's ground truth, its references' descriptors by name and each query's views (whole
    frame first), fingerprinted once and then read from :func:`cache_dir` (the offline studies,
    feature_study.py and texture_head_study.py, read the same cache). ``refuse_test``: a test set
    is an error (for studies that must never see the test split)."""
    gt = json.loads((data / "ground_truth.json").read_text())
    if refuse_test and gt.get("split") == "test":
        raise SystemExit(f"{data}: a test set; this study uses tuning and training sets only")
    cache = cache_dir(model, data)
    refs = fingerprints(model, data, [r["name"] for r in gt["references"]], "refs", cache, sampling)
    names = [q["name"] for q in gt["queries"]]
    full = fingerprints(model, data, names, "queries", cache, sampling)
    return gt, refs, query_views(model, data, names, views, cache, sampling, full)

def fill_mapped_cache(base, model, data: Path, embed_map) -> None:
    """``model``'s tune cache of ``data`` from ``base``'s, for a model that differs from the base
    only by a map of its embeddings (a texture head folded onto the base's): every descriptor with
    the same frames and codes and ``embed_map(embeddings)`` (float32 rows), other files copied.
    Check the result with :func:`check_filled_cache`."""
    src, dst = cache_dir(base, data), cache_dir(model, data)
    for f in sorted(src.rglob("*")):
        if f.is_dir():
            continue
        out = dst / f.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        if f.suffix == ".npz":
            d = VideoDescriptor.load(f)
            dataclasses.replace(d, embeddings=np.asarray(embed_map(d.embeddings), np.float32), model_id=model.model_id).save(out)
        else:
            shutil.copy2(f, out)


def check_filled_cache(checkpoint: Path, data: Path) -> float:
    """Fingerprint ``data``'s first reference afresh with the checkpoint and compare it with the
    cache a study filled for that model without fingerprinting (texture_head_study.py,
    ensemble_study.py, whitening_study.py); exits when they differ. Returns the largest embedding difference."""
    model = load_model(checkpoint=str(checkpoint))
    ref0 = json.loads((data / "ground_truth.json").read_text())["references"][0]["name"]
    fresh = fingerprint_video(data / "refs" / ref0, model, Sampling())
    filled = VideoDescriptor.load(cache_dir(model, data) / "refs" / (ref0 + ".npz"))
    err = float(np.abs(fresh.embeddings - filled.embeddings).max())
    if err > 1e-4 or not np.array_equal(fresh.codes, filled.codes):
        raise SystemExit(f"{checkpoint}: the filled cache of {data.name} differs from a fresh fingerprint ({err:.2g})")
    return err


def radius_tradeoff(sets: list[tuple], bits: int = 128) -> list[dict[str, float]]:
    """What the category recall costs and finds at each Hamming radius, from the descriptors
    alone (exhaustive numpy, no Milvus): the share of copied query frames whose L2-nearest
    reference frame lies within the radius (of the whole frame's code, and, as the default
    search recalls, in the query view that comes nearest, of that view's code), and the share of reference frames within the
    radius of a negative query's frames (same-film non-copies: what the re-rank must sift; at
    scale this is what fills the per-frame result cap), and the share of reference frames
    within the radius of ANY frame of a negative query (the frames a recall passes on). The radius is a speed/recall choice a
    10-reference set cannot price, so it is chosen from this table, not by the grid search.
    Radii 16-60 in steps of 4 per 128 bits of code."""
    radii = tuple(r * bits // 128 for r in range(16, 61, 4))
    found = dict.fromkeys(radii, 0)
    found_views = dict.fromkeys(radii, 0)  # the default search: each copied frame in its nearest view
    total = 0
    noise: dict[int, list[float]] = {r: [] for r in radii}
    reach: dict[int, list[float]] = {r: [] for r in radii}
    for _, _, _, q_desc, gt, ref_desc, q_views in sets:
        names = [r["name"] for r in gt["references"]]
        emb = np.concatenate([ref_desc[n].embeddings for n in names])
        codes = np.concatenate([ref_desc[n].codes for n in names])
        for q in gt["queries"]:
            qd = q_desc[q["name"]]
            ham = POPCOUNT[qd.codes[:, None, :] ^ codes[None]].sum(2)
            if not q["positive"]:
                for r in radii:
                    noise[r].append(float((ham <= r).mean()))
                    reach[r].append(float((ham <= r).any(axis=0).mean()))
            views = [v for _, v in q_views[q["name"]]]
            for m in q["matches"]:
                sel, nn, _ = copied_frames_nearest(qd, m, emb)
                if sel.any():
                    d = ham[sel][np.arange(int(sel.sum())), nn]
                    dv = nearest_view_hamming(views, m, emb, codes)
                    for r in radii:
                        found[r] += int((d <= r).sum())
                        found_views[r] += int((dv <= r).sum())
                    total += int(sel.sum())
    return [{"radius": r, "copied_frames_l2nn_within": round(found[r] / max(1, total), 4), "with_views": round(found_views[r] / max(1, total), 4),
             "negative_ref_frames_within": round(float(np.mean(noise[r])) if noise[r] else 0.0, 4),
             "negative_ref_frames_reached": round(float(np.mean(reach[r])) if reach[r] else 0.0, 4)} for r in radii]


def background_default(sets: list[tuple]) -> float:
    """What a store with no other video stands in for (SearchParams.background_default): the
    median similarity of negative queries' frames to their nearest stored frame."""
    near = [(q_desc[q["name"]].embeddings @ np.concatenate([d.embeddings for d in ref_desc.values()]).T).max(1)
            for _, _, _, q_desc, gt, ref_desc, _ in sets for q in gt["queries"] if not q["positive"]]
    return round(float(np.median(np.concatenate(near))), 3) if near else 0.0


def metrics(preds: dict[str, list[dict]], queries: list[dict]) -> dict[str, object]:
    m = evaluate(preds, {}, queries)
    m.pop("_pr")
    m.pop("per_edit")
    m["objective"] = round((m["muAP"] + m["detected"] + m["segment_f1"]) / 3, 4)
    return m


def preference(row: dict) -> tuple[float, ...]:
    """Order of rows that meet the FPR: objective, then (ties) the higher copy threshold and
    min_copy_seconds nearest 3, or for the old rule the lower duration threshold."""
    if row["rule"] == "repetition":
        return (row["objective"], -row["duration_threshold"])
    return (row["objective"], row["copy_threshold"], -abs(row["min_copy_seconds"] - 3))


def write_config(model: object, args: argparse.Namespace, out: Path, thresholds: dict[str, float], source: str) -> Path:
    """Write ``thresholds`` into OUT/config.json: in place for the checkpoint folder, else into a
    copy of the checkpoint (or, for untrained heads, a checkpoint saved there first); then check
    that the folder loads as the same model."""
    out.mkdir(parents=True, exist_ok=True)
    if args.checkpoint:
        src = Path(args.checkpoint)
        if src.resolve() != out.resolve():
            for f in (CONFIG_FILE, WEIGHTS_FILE, BACKGROUND_FILE):
                if (src / f).is_file():
                    shutil.copy2(src / f, out / f)
    elif isinstance(model, OnnxFingerprintModel):
        save_onnx_checkpoint(model, out)
    else:
        save_checkpoint(model, out)  # heads only: the backbone is rebuilt from its ImageNet weights
    cfg_path = out / CONFIG_FILE
    cfg = json.loads(cfg_path.read_text())
    cfg["thresholds"] = dict(sorted(thresholds.items()))
    cfg["thresholds_source"] = source
    cfg_path.write_text(json.dumps(cfg, sort_keys=True) + "\n")
    back = load_model(checkpoint=out)
    if back.model_id != model.model_id:
        raise SystemExit(f"{out}: loads as model {back.model_id}, tuned {model.model_id}")
    print(f"wrote thresholds into {cfg_path} (loads as {back.model_id})")
    return cfg_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, nargs="+", default=[ROOT / "benchmarks" / "data_tune"], help="one or more tuning sets (never the test set)")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", default=None, help="a checkpoint folder (trained heads)")
    which.add_argument("--backbone", default=None, help="untrained heads on this backbone (e.g. sscd, sscd_distilled, tf_efficientnet_lite0)")
    which.add_argument("--untrained", action="store_true", help="the untrained heads on the embedded Lite0 backbone instead of the default model")
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime threads (ONNX backbones)")
    ap.add_argument("--name", default="")
    ap.add_argument("--min-score", type=floats, default=floats("0.6,0.65,0.7,0.75,0.8,0.85,0.9"))
    ap.add_argument("--frame-match-l2", type=floats, default=floats("0.6,0.7,0.8,0.9,1.0"))
    ap.add_argument("--radius", type=floats, default=None, help="Hamming radii to try (default: 32 per 128 bits of the model's code)")
    ap.add_argument("--min-code-votes", type=ints, default=[1], help="candidate videos need this many coherent code votes (search.code_votes)")
    ap.add_argument("--max-candidates", type=ints, default=[SearchParams.max_candidates],
                    help="candidate videos per view sent to the re-rank, most coherent code votes first (search.select_candidates)")
    ap.add_argument("--background-beta", type=floats, default=[0.0], help="background normalisation strengths to try (search.py)")
    ap.add_argument("--copy-threshold", type=floats, default=[round(x, 3) for x in np.r_[np.arange(0.05, 0.95, 0.05), 0.95, 0.97, 0.98, 0.99]],
                    help="calibrated-probability cuts to try")
    ap.add_argument("--min-copy-seconds", type=floats, default=floats("2,3,4"))
    ap.add_argument("--calib-l2", type=float, default=1.0, help="L2 penalty of the calibration fit (decision.fit_calibration)")
    ap.add_argument("--duration-threshold", type=floats, default=[round(x, 2) for x in np.arange(0.1, 0.75, 0.05)],
                    help="the old repetition rule's thresholds (printed for comparison, never chosen)")
    ap.add_argument("--max-fpr", type=float, default=0.02)
    ap.add_argument("--held-out-goal", type=float, default=None, metavar="G",
                    help="instead of one --max-fpr: per grid point, the largest of --held-out-targets whose leave-one-set-out rate "
                         "(calib_crossfit.crossfit, all folds together) flags <= G of the negatives; a point with none is not chosen")
    ap.add_argument("--held-out-targets", type=floats, default=floats("0.01,0.0125,0.015,0.0175,0.02"))
    ap.add_argument("--held-out-min-copy-seconds", type=float, default=3.0,
                    help="the folds' shortest best segment (the folds cut at the lowest probability keeping the target with this one "
                         "minimum, a simpler rule than the grid's choice among --min-copy-seconds by objective)")
    ap.add_argument("--dump-candidates", type=Path, default=None, metavar="NPZ",
                    help="also save every grid point's candidates (query, reference, label, evidence features) for offline study")
    ap.add_argument("--views", choices=[v.value for v in QueryViews], default=QueryViews.insets.value,
                    help="the query views searched, as `search --views` (default: insets, the default search): the calibration is fitted "
                         "on the candidates the search will score")
    ap.add_argument("--write-config", nargs="?", const="", default=None, metavar="DIR",
                    help="write the chosen thresholds into DIR/config.json (no DIR: the --checkpoint folder)")
    args = ap.parse_args()
    if args.held_out_goal is not None and len(args.data) < 2:
        raise SystemExit("--held-out-goal leaves one tuning set out at a time: give at least two --data sets")
    if args.write_config == "" and not args.checkpoint:
        raise SystemExit("--write-config without DIR needs --checkpoint")
    if args.untrained:
        args.backbone = "tf_efficientnet_lite0"
    model = load_model(backbone=args.backbone, threads=args.threads) if args.backbone else load_model(checkpoint=args.checkpoint, threads=args.threads)
    bg_path = thresholds_for(model).background_path
    shipped = Calibration.from_keys(thresholds_for(model).values)  # None: the model was never tuned
    print(f"model {model.model_id} ({args.checkpoint or 'untrained heads on ' + str(args.backbone or 'default')})")
    sampling = Sampling()
    work = ROOT / "benchmarks" / "out" / "tune"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    # One store per dataset: the tuning sets cut the same held-out footage at other points, so
    # a query of one set would truly match references of another. Names get the set's prefix
    # and the metrics pool all sets' queries.
    sets = []
    queries: list[dict] = []
    for i, data in enumerate(args.data):
        t0 = time.perf_counter()
        gt, ref_desc, q_views = cached_set(model, data, QueryViews(args.views), sampling)
        q_desc = {n: vs[0][1] for n, vs in q_views.items()}
        cache = cache_dir(model, data)
        print(f"{data.name}: {len(ref_desc)} references, {len(q_desc)} queries; fingerprints ready in {time.perf_counter() - t0:.0f} s (cache {cache.relative_to(ROOT)})")
        store = Store.connect(str(work / f"tune{i}.db"), prefix=f"tune{i}")
        store.ensure_collections(StoreMeta(model.model_id, model.config.embed_dim, model.config.code_bits, sampling.fps, sampling.keyframes))
        by_id = {}
        for r in gt["references"]:
            sha = sha256_file(data / "refs" / r["name"])
            d = dataclasses.replace(ref_desc[r["name"]], video_id=store.free_video_id(sha), path=str(data / "refs" / r["name"]))
            store.add_video(d, sha)
            by_id[d.video_id] = f"{data.name}/{r['name']}"
        sets.append((data.name, store, by_id, q_desc, gt, ref_desc, q_views))
        queries += [{**q, "name": f"{data.name}/{q['name']}", "matches": [{**m, "ref": f"{data.name}/{m['ref']}"} for m in q["matches"]]} for q in gt["queries"]]
    truth = {(q["name"], m["ref"]) for q in queries for m in q["matches"]}
    neg = [q for q in queries if not q["positive"]]

    radius_rows = radius_tradeoff(sets, model.config.code_bits)
    if args.radius is None:
        args.radius = [32.0 * model.config.code_bits // 128]
    print("radius: copied frames' L2-NN within (whole frame, in the nearest of the query's views) / negative query-reference frame pairs within / "
          "reference frames reached by a negative query (whole frame)\n  "
          + "\n  ".join(f"{r['radius']}: {r['copied_frames_l2nn_within']:.3f}, {r['with_views']:.3f} / {r['negative_ref_frames_within']:.4f} / {r['negative_ref_frames_reached']:.4f}" for r in radius_rows))
    bg_default = background_default(sets) if any(b > 0 for b in args.background_beta) else 0.0

    def within_target(r: dict) -> bool:
        """The row's negatives' rate keeps its grid point's target (--max-fpr or the held-out rule's)."""
        return r["point_max_fpr"] is not None and r["negatives_fpr"] <= r["point_max_fpr"]

    rows: list[dict] = []
    calibrations: list[dict] = []
    dumps: dict[str, tuple[np.ndarray, ...]] = {}
    frames_in = {name: sum(d.num_frames for d in ref_desc.values()) for name, _, _, _, _, ref_desc, _ in sets}
    ref_frames = {f"{name}/{n}": d.num_frames for name, _, _, _, _, ref_desc, _ in sets for n, d in ref_desc.items()}
    for ms, l2, radius, beta, votes, cap in itertools.product(args.min_score, args.frame_match_l2, args.radius, args.background_beta, args.min_code_votes, args.max_candidates):
        raw: dict[str, list] = {}
        passed: list[float] = []
        rerank_share: list[float] = []
        for name, store, ids, q_desc, gt, _, q_views in sets:
            # repetition_rule off: is_copy is recomputed below anyway; every candidate is kept.
            params = SearchParams(mode=Mode.duration, radius=int(radius), top_n=len(gt["references"]), frame_match_l2=l2, duration_threshold=0.0,
                                  repetition_rule=False, background_beta=beta, background_default=bg_default if beta > 0 else 0.0,
                                  background_path=bg_path, align=dataclasses.replace(AlignParams(), min_score=ms), min_code_votes=int(votes),
                                  max_candidates=int(cap))
            for qn, vs in q_views.items():
                resp = search_views(store, vs, params) if len(vs) > 1 else search_descriptor(store, vs[0][1], params)
                raw[f"{name}/{qn}"] = [(ids[r.video_id], r) for r in resp.results]
                # What the code stage passes on: the share of the set's reference frames that
                # belong to candidate videos, and that the window re-rank searches (summed over
                # the views: each view searches on its own).
                passed.append(sum(ref_frames[ids[r.video_id]] for r in resp.results) / frames_in[name])
                rerank_share.append(resp.candidates.get("rerank_frames", 0) / frames_in[name])
        base = {"min_score": ms, "frame_match_l2": l2, "radius": int(radius), "background_beta": beta, "min_code_votes": int(votes), "max_candidates": int(cap)}
        true_reached = sum((qn, ref) in truth for qn, rs in raw.items() for ref, _ in rs) / max(1, len(truth))
        code_stage = {"ref_frames_in_candidates": round(float(np.mean(passed)), 4), "ref_frames_reranked": round(float(np.mean(rerank_share)), 4),
                      "true_refs_reaching_rerank": round(true_reached, 4)}
        pairs = [(qn, ref, r) for qn, rs in raw.items() for ref, r in rs]
        X = np.stack([r.evidence for _, _, r in pairs]) if pairs else np.zeros((0, len(FEATURES)))
        y = np.array([(qn, ref) in truth for qn, ref, _ in pairs], np.float64)
        if len(y) == 0 or y.min() == y.max():
            print(f"{base}: {len(y)} candidates, {int(y.sum())} true: nothing to fit, skipped")
            continue
        calib = fit_calibration(X, y, l2=args.calib_l2)
        # The negatives' target of this point: --max-fpr, or the --held-out-goal rule on its candidates.
        point_fpr: float | None = args.max_fpr
        held_out: dict = {}
        if args.held_out_goal is not None:
            _, summary = crossfit(np.array([qn for qn, _, _ in pairs]), y, X, {name: gt for name, _, _, _, gt, _, _ in sets}, [args.calib_l2],
                                  args.held_out_targets, args.held_out_min_copy_seconds, log=False)
            picked = goal_target(summary, args.held_out_goal)
            held_out = {"held_out_targets": summary, "held_out_target": None if picked is None else picked["max_fpr"]}
            point_fpr = None if picked is None else picked["max_fpr"]
            print(f"  (min_score {ms:.2f} l2 {l2:.2f}) held out, flagged / negatives per target: " + ", ".join(f"{r['max_fpr']:g}: {r['held_out_flagged']}/{r['held_out_negatives']}" for r in summary)
                  + f" -> target {point_fpr}", flush=True)
        if args.dump_candidates is not None:
            dumps[json.dumps(base, sort_keys=True)] = (np.array([qn for qn, _, _ in pairs]), np.array([ref for _, ref, _ in pairs]), y, X)
        p_fit = (1.0 / (1.0 + np.exp(-(X @ np.asarray(calib.weights) + calib.bias)))).tolist()
        p_hand = [r.confidence for _, _, r in pairs]  # the search ran with the hand-set Calibration()
        best_seconds = np.expm1(X[:, FEATURES.index("log1p_best_segment_seconds")]).tolist()
        calibrations.append({**base, "weights": dict(zip(FEATURES, calib.weights)), "bias": calib.bias,
                             "candidates": len(y), "true_candidates": int(y.sum()), **held_out})

        def by_query(score: list[float], copy: list[bool]) -> dict[str, list[dict]]:
            preds: dict[str, list[dict]] = {qn: [] for qn in raw}
            for (qn, ref, r), sc, c in zip(pairs, score, copy):
                preds[qn].append({"ref": ref, "score": sc, "is_copy": c, "segments": [g.to_json() for g in r.segments]})
            return preds

        here = []
        compared = [("calibrated", p_fit), ("hand-set", p_hand)]
        if shipped is not None:  # the model's own calibration (as it was tuned), on these candidates
            compared.append(("shipped", (1.0 / (1.0 + np.exp(-(X @ np.asarray(shipped.weights) + shipped.bias)))).tolist()))
        for rule, probs in compared:
            for th, mcs in itertools.product(args.copy_threshold, args.min_copy_seconds):
                copy = [p >= th and s >= mcs - TIME_TOLERANCE for p, s in zip(probs, best_seconds)]
                here.append({**base, **code_stage, "rule": rule, "copy_threshold": th, "min_copy_seconds": mcs, "point_max_fpr": point_fpr,
                             **metrics(by_query(probs, copy), queries)})
        rep = [r.repetition_degree for _, _, r in pairs]
        for th in args.duration_threshold:
            copy = [d >= th and bool(r.segments) for d, (_, _, r) in zip(rep, pairs)]
            here.append({**base, "rule": "repetition", "duration_threshold": th, "point_max_fpr": point_fpr, **metrics(by_query(rep, copy), queries)})
        rows += here
        print(f"min_score {ms:.2f} l2 {l2:.2f} radius {int(radius)} beta {beta:.2f} min_code_votes {int(votes)} max_candidates {int(cap)}: {len(y)} candidates ({int(y.sum())} true); fitted w "
              + " ".join(f"{w:+.2f}" for w in calib.weights) + f" b {calib.bias:+.2f}")
        print(f"    code stage: reference frames in candidate videos {code_stage['ref_frames_in_candidates']:.3f}, re-ranked {code_stage['ref_frames_reranked']:.3f}; "
              f"true references reaching the re-rank {code_stage['true_refs_reaching_rerank']:.3f}")
        for rule in ("calibrated", "hand-set", *(("shipped",) if shipped is not None else ()), "repetition"):
            cand = [r for r in here if r["rule"] == rule]
            best = max(cand, key=lambda r: (within_target(r), *preference(r)))
            cut = f"th {best['duration_threshold']:.2f}      " if rule == "repetition" else f"p>={best['copy_threshold']:.2f} >={best['min_copy_seconds']:.0f}s"
            print(f"    {rule:10s} {cut}  objective {best['objective']:.3f} muAP {best['muAP']:.3f} detected {best['detected']:.3f} "
                  f"FPR {best['negatives_fpr']:.3f} segF1 {best['segment_f1']:.3f}" + ("" if within_target(best) else "  (no cut meets the FPR)"), flush=True)
    for _, store, *_ in sets:
        store.close()
    if args.dump_candidates is not None:
        np.savez_compressed(args.dump_candidates, features=np.array(FEATURES), **{
            f"{k}_{i}": a for i, arrs in enumerate(dumps.values()) for k, a in zip(("query", "ref", "label", "X"), arrs)},
            points=np.array(list(dumps)))

    ok = [r for r in rows if r["rule"] == "calibrated" and within_target(r)]
    if not ok:
        raise SystemExit("no calibrated grid point keeps the negatives' FPR within its target")
    chosen = max(ok, key=lambda r: (*preference(r), -r["min_score"], r["frame_match_l2"]))
    grid_key = ("min_score", "frame_match_l2", "radius", "background_beta", "min_code_votes", "max_candidates")
    fit = next(c for c in calibrations if all(c[k] == chosen[k] for k in grid_key))
    calib = Calibration(tuple(fit["weights"][f] for f in FEATURES), fit["bias"])
    thresholds: dict[str, float] = {"radius": chosen["radius"], "min_code_votes": chosen["min_code_votes"], "max_candidates": chosen["max_candidates"],
                                    "frame_match_l2": chosen["frame_match_l2"], "align_min_score": chosen["min_score"],
                                    "background_beta": chosen["background_beta"], **calib.to_keys(),
                                    "copy_threshold": chosen["copy_threshold"], "min_copy_seconds": chosen["min_copy_seconds"], "repetition_rule": 0,
                                    # mode 3's "equal" codes: 1/8 of the code length (16 of the patent's 128 bits)
                                    "code_equal_bits": model.config.code_bits // 8}
    if chosen["background_beta"] > 0:
        thresholds["background_default"] = bg_default
    same_point = [r for r in rows if all(r[k] == chosen[k] for k in grid_key)]
    old = max((r for r in same_point if r["rule"] == "repetition"), key=lambda r: (within_target(r), *preference(r)))
    keys = ("objective", "muAP", "detected", "negatives_fpr", "segment_f1", "top1")
    print(f"background: {bg_path or 'sampled from each store'}")
    print("chosen:", json.dumps(thresholds), {k: chosen[k] for k in keys})
    print(f"  old repetition rule at the same grid point: th {old['duration_threshold']:.2f}", {k: old[k] for k in keys})
    save("tune" + (f"-{args.name}" if args.name else ""), {
        "model_id": model.model_id, "checkpoint": args.checkpoint, "backbone": args.backbone, "background": bg_path or "store sample",
        "data": [d.name for d in args.data], "views": args.views, "detectors_version": detectors_version(), "max_fpr": args.max_fpr if args.held_out_goal is None else None,
        "held_out_goal": args.held_out_goal, "held_out_targets": args.held_out_targets if args.held_out_goal is not None else None, "calib_l2": args.calib_l2, "features": list(FEATURES),
        "rule": "calibrated rows (repetition_rule 0): max mean(muAP, detected, segment F1) over (grid point, copy_threshold, min_copy_seconds) "
                "with negatives FPR <= max_fpr (with held_out_goal: <= the grid point's own target, chosen.max_fpr_of_its_point); ties: higher copy_threshold, then min_copy_seconds nearest 3. Calibration fitted per grid point "
                "on all candidates of the tuning queries (in-sample). 'hand-set', 'shipped' (the model's calibration before this run) and 'repetition' rows are for comparison only.",
        "chosen": {**thresholds, "max_fpr_of_its_point": chosen["point_max_fpr"], "calibration": {"weights": fit["weights"], "bias": fit["bias"], "candidates": fit["candidates"], "true_candidates": fit["true_candidates"]},
                   "metrics": {k: chosen[k] for k in ("muAP", "recall_at_p90", "top1", "detected", "negatives_fpr", "segment_f1", "objective")},
                   "old_repetition_rule_same_point": {"duration_threshold": old["duration_threshold"], **{k: old[k] for k in keys}}},
        "calibrations": calibrations, "radius_tradeoff": radius_rows, "rows": rows, "negatives": len(neg), "queries": len(queries),
    })
    if args.write_config is not None:
        out = Path(args.write_config or args.checkpoint)
        target = f"max FPR {args.max_fpr}" if args.held_out_goal is None else f"max FPR {chosen['point_max_fpr']} by the held-out rule (goal {args.held_out_goal})"
        source = (f"benchmarks/tune_thresholds.py on {'+'.join(d.name for d in args.data)} (--views {args.views}, {target}, calibration fitted on "
                  f"{fit['candidates']} candidates): muAP {chosen['muAP']}, detected {chosen['detected']}, negatives FPR {chosen['negatives_fpr']}, "
                  f"segment F1 {chosen['segment_f1']}")
        write_config(model, args, out, thresholds, source)


if __name__ == "__main__":
    main()
