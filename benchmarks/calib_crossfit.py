"""Does the mode-2 cut chosen on one tuning set keep its negatives' rate on another?

    .venv/bin/python benchmarks/tune_thresholds.py --data benchmarks/data_hard_tune benchmarks/data_hard_tune2 \\
        --checkpoint vidret_milvus/models/sscd_distilled --min-score 0.45 --frame-match-l2 1.2 --radius 40 \\
        --dump-candidates benchmarks/out/candidates.npz
    .venv/bin/python benchmarks/calib_crossfit.py benchmarks/out/candidates.npz [--l2 1 10] [--max-fpr 0.02 0]

Two-fold by tuning set (tuning data only): fit the calibration (decision.fit_calibration) on one
set's candidates, take the lowest copy threshold whose negatives' rate there is <= --max-fpr
(best segment >= 3 s, as the default), and apply both to the other set. Prints, per fold, the
in-sample and the other set's rate of negative queries flagged and of positive queries detected
(a true reference called a copy: eval_retrieval's and tune_thresholds' "detected"),
with the 95 % Wilson interval of the other set's rate (a few dozen negatives are a coarse
sample). Writes benchmarks/results/calib_crossfit.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from _common import ROOT, save, wilson
from vidret_milvus.decision import FEATURES, TIME_TOLERANCE, fit_calibration

THRESHOLDS = np.r_[np.arange(0.05, 0.95, 0.05), 0.95, 0.97, 0.98, 0.99, 0.995, 0.999]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dump", type=Path, help="tune_thresholds.py --dump-candidates file (its first grid point)")
    ap.add_argument("--l2", type=float, nargs="+", default=[1.0, 10.0], help="L2 penalties of the fit")
    ap.add_argument("--max-fpr", type=float, nargs="+", default=[0.02, 0.0])
    ap.add_argument("--min-copy-seconds", type=float, default=3.0)
    args = ap.parse_args()
    z = np.load(args.dump)
    q, y, X = z["query_0"], z["label_0"], z["X_0"]
    sets = np.array([s.split("/")[0] for s in q])
    names = sorted(set(sets.tolist()))
    if len(names) != 2:
        raise SystemExit(f"need candidates of exactly two tuning sets, got {names}")
    gts = {s: json.loads((ROOT / "benchmarks" / s / "ground_truth.json").read_text()) for s in names}
    negs = {s: {f"{s}/{x['name']}" for x in g["queries"] if not x["positive"]} for s, g in gts.items()}
    poss = {s: {f"{s}/{x['name']}" for x in g["queries"] if x["positive"]} for s, g in gts.items()}
    secs = np.expm1(X[:, FEATURES.index("log1p_best_segment_seconds")])

    def flagged(p: np.ndarray, mask: np.ndarray, s: str, th: float) -> tuple[int, float]:
        copy = (p >= th) & (secs[mask] >= args.min_copy_seconds - TIME_TOLERANCE)  # as decision.decide
        neg = {x for x, c in zip(q[mask], copy) if c and x in negs[s]}
        found = {x for x, c, t in zip(q[mask], copy, y[mask]) if c and t == 1}
        return len(neg), len(found) / len(poss[s])

    rows = []
    for l2 in args.l2:
        for max_fpr in args.max_fpr:
            for a, b in ((names[0], names[1]), (names[1], names[0])):
                ma, mb = sets == a, sets == b
                c = fit_calibration(X[ma], y[ma], l2=l2)
                prob = lambda m: 1.0 / (1.0 + np.exp(-(X[m] @ np.asarray(c.weights) + c.bias)))  # noqa: E731
                pa, pb = prob(ma), prob(mb)
                th = next((t for t in THRESHOLDS if flagged(pa, ma, a, t)[0] <= max_fpr * len(negs[a])), None)
                if th is None:
                    print(f"l2 {l2:g} max FPR {max_fpr:g}: fit on {a}: no threshold keeps its negatives' rate <= {max_fpr:g}", flush=True)
                    rows.append({"l2": l2, "max_fpr": max_fpr, "fit_on": a, "applied_to": b, "threshold": None})
                    continue
                ka, da = flagged(pa, ma, a, th)
                kb, db = flagged(pb, mb, b, th)
                lo, hi = wilson(kb, len(negs[b]))
                row = {"l2": l2, "max_fpr": max_fpr, "fit_on": a, "applied_to": b, "threshold": round(float(th), 3),
                       "fpr_in_sample": round(ka / len(negs[a]), 4), "detected_in_sample": round(da, 4),
                       "fpr_other": round(kb / len(negs[b]), 4), "fpr_other_95": [round(lo, 4), round(hi, 4)], "detected_other": round(db, 4),
                       "negatives": [len(negs[a]), len(negs[b])]}
                rows.append(row)
                print(f"l2 {l2:g} max FPR {max_fpr:g}: fit on {a}, p >= {th:.2f}: FPR {row['fpr_in_sample']:.2f} detected {da:.2f} "
                      f"-> {b}: FPR {row['fpr_other']:.2f} (95 % {lo:.2f}-{hi:.2f}) detected {db:.2f}", flush=True)
    save("calib_crossfit", {"dump": str(args.dump), "rows": rows})


if __name__ == "__main__":
    main()
