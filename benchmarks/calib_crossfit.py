"""Does the mode-2 cut chosen on some tuning sets keep its negatives' rate on another?

    .venv/bin/python benchmarks/tune_thresholds.py --data benchmarks/data_hard_tune benchmarks/data_hard_tune2 \\
        [benchmarks/data_hard_tune3] --checkpoint vidret_milvus/models/sscd_distilled --min-score 0.45 \\
        --frame-match-l2 1.2 --radius 40 --dump-candidates benchmarks/out/candidates.npz
    .venv/bin/python benchmarks/calib_crossfit.py benchmarks/out/candidates.npz [--l2 1 10] [--max-fpr 0.02 0]

Leave one tuning set out (tuning data only): fit the calibration (decision.fit_calibration) on
the other sets' candidates, take the lowest copy threshold whose negatives' rate there is
<= --max-fpr (best segment >= --min-copy-seconds; the 288 px student's, the default when this was written is 4 s), and apply both to the set left out. Prints,
per fold, the in-sample and the held-out set's rate of negative queries flagged and of positive
queries detected (a true reference called a copy: eval_retrieval's and tune_thresholds'
"detected"; none for a set of negatives only), with the 95 % Wilson interval of the held-out
rate (a few dozen negatives are a coarse sample), then each target's folds together. ``--goal
G`` names the largest ``--max-fpr`` whose held-out rate, all folds together, stays <= G: the
target to tune with when the goal is about new data (a cut fitted at exactly G may exceed it
there). The rule belongs to the candidates of one grid point (the dump's first): run it per point.
Writes benchmarks/results/calib_crossfit.json (``--name``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from _common import ROOT, save, wilson
from vidret_milvus.decision import FEATURES, TIME_TOLERANCE, fit_calibration

THRESHOLDS = np.r_[np.arange(0.05, 0.95, 0.05), 0.95, 0.97, 0.98, 0.99, 0.995, 0.999]


def calibrated(X_fit: np.ndarray, y_fit: np.ndarray, X: np.ndarray, l2: float) -> np.ndarray:
    """The default's calibration (decision.fit_calibration) fitted on some rows, applied to all."""
    c = fit_calibration(X_fit, y_fit, l2=l2)
    return 1.0 / (1.0 + np.exp(-(X @ np.asarray(c.weights) + c.bias)))


def crossfit(q: np.ndarray, y: np.ndarray, X: np.ndarray, gts: dict[str, dict], l2_values: list[float], targets: list[float],
             min_copy_seconds: float, log: bool = True,
             fit: Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray] = calibrated) -> tuple[list[dict], list[dict]]:
    """Leave one tuning set out, for every (L2 penalty, target): the fold rows and, per target,
    the folds summed (``held_out_flagged`` of ``held_out_negatives``; None where a fold found no
    threshold). ``q`` names candidates' queries as ``SET/QUERY``; ``gts`` each set's ground truth.
    ``fit(X_fit, y_fit, X, l2)`` gives every row's copy probability from a fit on the other sets'
    rows (the default's calibration; benchmarks/detector_tries.py tries other ones)."""
    sets = np.array([s.split("/")[0] for s in q])
    names = sorted(set(sets.tolist()))
    if len(names) < 2:
        raise SystemExit(f"need candidates of at least two tuning sets, got {names}")
    negs = {f"{s}/{x['name']}" for s, g in gts.items() for x in g["queries"] if not x["positive"]}
    n_neg = {s: sum(not x["positive"] for x in g["queries"]) for s, g in gts.items()}
    n_pos = {s: sum(bool(x["positive"]) for x in g["queries"]) for s, g in gts.items()}
    secs = np.expm1(X[:, FEATURES.index("log1p_best_segment_seconds")])
    say = print if log else (lambda *a, **k: None)

    def detected(p: np.ndarray, mask: np.ndarray, th: float) -> int:
        """Positive queries whose true reference is called a copy among rows ``mask``."""
        copy = (p >= th) & (secs[mask] >= min_copy_seconds - TIME_TOLERANCE)  # as decision.decide
        return len({x for x, c, t in zip(q[mask], copy, y[mask]) if c and t == 1})

    def rates(p: np.ndarray, mask: np.ndarray, in_sets: set[str], th: float) -> tuple[int, int, float | None]:
        """Negatives flagged, negatives, share of positives detected (None: no positives) of ``in_sets``."""
        copy = (p >= th) & (secs[mask] >= min_copy_seconds - TIME_TOLERANCE)  # as decision.decide
        neg = {x for x, c in zip(q[mask], copy) if c and x in negs}
        npos = sum(n_pos[s] for s in in_sets)
        return len(neg), sum(n_neg[s] for s in in_sets), (detected(p, mask, th) / npos if npos else None)

    def fmt(d: float | None) -> str:
        return "-" if d is None else f"{d:.2f}"

    rows = []
    for l2 in l2_values:
        fits = {}
        for b in names:  # the fit does not depend on the target
            ma = sets != b
            fits[b] = fit(X[ma], y[ma], X, l2)
        for max_fpr in targets:
            for b in names:
                mb = sets == b
                ma = ~mb
                fit_on = [s for s in names if s != b]
                pa, pb = fits[b][ma], fits[b][mb]
                th = next((t for t in THRESHOLDS if rates(pa, ma, set(fit_on), t)[0] <= max_fpr * sum(n_neg[s] for s in fit_on) + 1e-9), None)
                if th is None:
                    say(f"l2 {l2:g} max FPR {max_fpr:g}: fit on {'+'.join(fit_on)}: no threshold keeps its negatives' rate <= {max_fpr:g}", flush=True)
                    rows.append({"l2": l2, "max_fpr": max_fpr, "fit_on": fit_on, "applied_to": b, "threshold": None})
                    continue
                ka, na, da = rates(pa, ma, set(fit_on), th)
                kb, nb, db = rates(pb, mb, {b}, th)
                lo, hi = wilson(kb, nb)
                rows.append({"l2": l2, "max_fpr": max_fpr, "fit_on": fit_on, "applied_to": b, "threshold": round(float(th), 3),
                             "fpr_in_sample": round(ka / max(1, na), 4), "detected_in_sample": None if da is None else round(da, 4),
                             "fpr_other": round(kb / max(1, nb), 4), "fpr_other_95": [round(lo, 4), round(hi, 4)], "detected_other": None if db is None else round(db, 4),
                             "negatives": [na, nb], "flagged": [ka, kb], "detected_other_count": detected(pb, mb, th), "positives_other": n_pos[b]})
                say(f"l2 {l2:g} max FPR {max_fpr:g}: fit on {'+'.join(fit_on)}, p >= {th:.2f}: {ka} of {na} negatives ({ka / max(1, na):.3f}) detected {fmt(da)} "
                    f"-> {b}: {kb} of {nb} ({kb / max(1, nb):.3f}, 95 % {lo:.3f}-{hi:.3f}) detected {fmt(db)}", flush=True)
    # Per target, all folds together: the rate a cut chosen that way flags on tuning data it was
    # not fitted on (a cut fitted at exactly the goal may exceed it on new data).
    summary = []
    for l2 in l2_values:
        for max_fpr in targets:
            done = [r for r in rows if r["l2"] == l2 and r["max_fpr"] == max_fpr]
            if any(r["threshold"] is None for r in done):
                say(f"l2 {l2:g} max FPR {max_fpr:g}: a fold has no threshold; no held-out rate (not a --goal candidate)", flush=True)
                summary.append({"l2": l2, "max_fpr": max_fpr, "held_out_flagged": None, "held_out_negatives": None, "held_out_fpr": None})
                continue
            k, n = sum(r["flagged"][1] for r in done), sum(r["negatives"][1] for r in done)
            found, npos = sum(r["detected_other_count"] for r in done), sum(r["positives_other"] for r in done)
            lo, hi = wilson(k, n)
            summary.append({"l2": l2, "max_fpr": max_fpr, "held_out_flagged": k, "held_out_negatives": n, "held_out_fpr": round(k / max(1, n), 4),
                            "held_out_fpr_95": [round(lo, 4), round(hi, 4)], "held_out_detected": found, "held_out_positives": npos})
            say(f"l2 {l2:g} max FPR {max_fpr:g}, all folds: held out {k} of {n} negatives flagged ({k / max(1, n):.4f}, 95 % {lo:.3f}-{hi:.3f}), "
                f"{found} of {npos} positives detected", flush=True)
    return rows, summary


def goal_target(summary: list[dict], goal: float) -> dict | None:
    """The summary row of the largest target whose folds together flag <= ``goal`` of their
    negatives (ties: the smaller L2 penalty); None when no target does."""
    ok = [r for r in summary if r["held_out_flagged"] is not None and r["held_out_flagged"] <= goal * r["held_out_negatives"] + 1e-9]  # float products
    return max(ok, key=lambda r: (r["max_fpr"], -r["l2"])) if ok else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dump", type=Path, help="tune_thresholds.py --dump-candidates file (its first grid point)")
    ap.add_argument("--l2", type=float, nargs="+", default=[1.0, 10.0], help="L2 penalties of the fit")
    ap.add_argument("--max-fpr", type=float, nargs="+", default=[0.02, 0.0])
    ap.add_argument("--min-copy-seconds", type=float, default=4.0, help="the cut's shortest best segment (the 288 px student's, the default when this was written)")
    ap.add_argument("--goal", type=float, default=None,
                    help="the negatives' rate to keep on held-out sets: prints the largest --max-fpr whose folds together stay within it")
    ap.add_argument("--name", default="", help="suffix of the results file")
    args = ap.parse_args()
    z = np.load(args.dump)
    q, y, X = z["query_0"], z["label_0"], z["X_0"]
    names = sorted({s.split("/")[0] for s in q})
    gts = {s: json.loads((ROOT / "benchmarks" / s / "ground_truth.json").read_text()) for s in names}
    rows, summary = crossfit(q, y, X, gts, args.l2, args.max_fpr, args.min_copy_seconds)
    chosen = None
    if args.goal is not None:
        chosen = goal_target(summary, args.goal)
        print(f"goal {args.goal:g}: " + (f"the largest target keeping it held out is --max-fpr {chosen['max_fpr']:g} (l2 {chosen['l2']:g})" if chosen
                                         else "no target tried keeps it held out"), flush=True)
    save("calib_crossfit" + (f"-{args.name}" if args.name else ""), {"dump": str(args.dump), "rows": rows, "summary": summary, "goal": args.goal,
                                                                     "chosen": chosen})


if __name__ == "__main__":
    main()
