"""The mode-2 copy decision: segment evidence, a calibrated confidence, and the rule.

The patent's repetition degree (matched duration / duration of the SHORTER video) makes the
verdict depend on the upload's length: a clean 5 s copy inside a 25 s upload reaches 0.2
and misses a 0.3 threshold, while a long weak partial match of an unrelated video can
pass. A reviewer calls a confident 4 s match a copy whatever the upload's length, so the
decision here rests on absolute evidence about the aligned segments; the repetition degree
is still computed and reported (and can still decide, see the rule).

Evidence of one candidate (:func:`segment_evidence`), from its aligned segments:

* segment confidence ``c_g = clip((score_g - min_score) / (ceiling - min_score), 0, 1)``:
  how far the segment's mean frame similarity ``score_g`` rises above the aligner's
  acceptance threshold ``min_score`` (0 at the threshold), relative to ``ceiling``, the
  similarity of identical frames on the scale in use (1 for plain cosine; ``1 - beta * s_bg``
  with background normalisation, see ``search``), times the mean common-frame weight
  ``w_g`` of the query frames the segment covers (a segment of black frames and logos is
  no evidence);
* ``matched_seconds``: length of the union of the segments' query spans (each query second
  counts once);
* ``weighted_seconds``: the same union, each piece counted ``length * max c_g * w_g`` over
  the segments covering it ("confident seconds");
* the best segment (the largest ``query_length * c_g * w_g``): its length in query seconds,
  its raw mean similarity and its weighted confidence;
* ``best_frame_similarity``: the best single frame match (cosine, un-normalised), which
  ranks candidates that have no segment at all;
* ``repetition_degree``: the patent's matched duration / shorter duration, scaled by the
  mean weight of the covered query frames (reported; the optional old rule);
* the query context (:func:`with_query_context`, over all candidates of one query), at the
  query frame where the candidate matches best: ``best_frame_margin``, its similarity there
  minus the best of the query's OTHER candidates at that frame, and ``best_frame_rank``, how
  many other candidates match that frame better. A copied reference stands out from the
  look-alikes a query also recalls; an unrelated query's candidates all look alike; two
  references copied into different parts of a query do not compete. (On the hard tuning
  split, two-fold by query, these two raised muAP from 0.662 to 0.766; chosen there, never on
  the test split.)

Calibrated confidence (:class:`Calibration`), the same meaning for every query:
``p = sigmoid(w . x + b)`` with the feature vector (:data:`FEATURES`)
``x = [log1p(weighted_seconds), best_segment_confidence, log1p(best_segment_seconds),
best_frame_similarity, best_frame_margin, 1 / (1 + best_frame_rank)]``. The logs make the 3rd..30th second of evidence count more than the
300th. ``w`` and ``b`` are fitted on a tuning set (:func:`fit_calibration`, plain L2
logistic regression) and stored with the model; until then the hand-set defaults below
apply.

The rule (:func:`decide`): a candidate is a copy when

    (p >= copy_threshold  AND  best_segment_seconds >= min_copy_seconds)
    OR  repetition_degree >= duration_threshold   (the patent's rule; None switches it off)

and its mode-2 score is ``p``. ``min_copy_seconds`` (3 s) is the shortest excerpt a reviewer
can judge; ``copy_threshold`` (0.5) is the probability cut. Those are the class defaults; a tuned
model carries its own (the default model: p >= 0.6 and 3 s).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .align import AlignParams, Segment, align, repetition_degree, union_length
from .descriptor import MAX_CODE_BITS
from .ids import MAX_LIMIT

if TYPE_CHECKING:  # a plain data class; importing the model package here would load onnxruntime
    from .model.settings import Thresholds


class Mode(str, enum.Enum):
    """The patent's three copy decisions; the names are the CLI's and the API's choices."""

    embedding = "embedding"  # mode 1: nearest embedding distance
    duration = "duration"  # mode 2: matched segments (calibrated, see above)
    codes = "codes"  # mode 3: equal codes


FEATURES: tuple[str, ...] = (
    "log1p_weighted_seconds",
    "best_segment_confidence",
    "log1p_best_segment_seconds",
    "best_frame_similarity",
    "best_frame_margin",
    "inverse_best_frame_rank",
)
# The query-context features (the last ones): a calibration fitted before they existed
# (4 weights in a checkpoint) gives them weight 0 and keeps its meaning.
CONTEXT_FEATURES: tuple[str, ...] = ("best_frame_margin", "inverse_best_frame_rank")
# Hand-set, monotone defaults (NOT fitted): every feature raises p. On the raw cosine
# scale (ceiling 1, min_score 0.7) they give: a 4 s segment of mean similarity 0.9 (c 0.67,
# best frame 0.95) p ~ 0.83; 3 s at 0.85 (c 0.5, best frame 0.9) p ~ 0.5; 15 s at 0.72
# (c 0.07, best frame 0.8) p ~ 0.09; 30 s at c 0.1 p ~ 0.3; no segment, best frame 0.95,
# p ~ 0.016. A tuner replaces them (fit_calibration on a tuning set).
DEFAULT_WEIGHTS: tuple[float, ...] = (1.5, 5.0, 0.25, 2.0, 0.0, 0.0)
DEFAULT_BIAS: float = -6.0
# Checkpoint keys (model config.json "thresholds") of a calibration: calib_w0.. and calib_bias.
CALIBRATION_KEYS: tuple[str, ...] = tuple(f"calib_w{i}" for i in range(len(FEATURES))) + ("calib_bias",)
# Decoded timestamps jitter by a few hundredths of a second: a 3-frame segment at 1 fps may
# measure 2.98 s and must still pass a 3 s minimum.
TIME_TOLERANCE = 0.05
_MIN_SPAN = 0.05  # smallest ceiling - min_score used (guards a misconfigured scale)


@dataclasses.dataclass(frozen=True)
class Evidence:
    """Length-independent evidence that a candidate holds a copy (module docstring)."""

    matched_seconds: float
    weighted_seconds: float
    best_segment_seconds: float
    best_segment_score: float  # raw mean similarity of the best segment (0 when none)
    best_segment_confidence: float  # c_g * w_g of the best segment, in [0, 1]
    matched_frames: int
    best_frame_similarity: float
    repetition_degree: float  # the patent's, reported
    # The query context (with_query_context); as if the candidate were the query's only one
    # until that is applied.
    best_frame_margin: float | None = None
    best_frame_rank: int = 0
    # Per query frame, the best similarity of the candidate's frames (0: none): the query
    # context compares candidates where each one matches best.
    frame_similarity: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)

    def features(self) -> np.ndarray:
        """The calibration's input, in the order of :data:`FEATURES`."""
        margin = self.best_frame_similarity if self.best_frame_margin is None else self.best_frame_margin
        return np.array([
            math.log1p(max(0.0, self.weighted_seconds)),
            self.best_segment_confidence,
            math.log1p(max(0.0, self.best_segment_seconds)),
            self.best_frame_similarity,
            margin,
            1.0 / (1.0 + self.best_frame_rank),
        ])


def with_query_context(evidence: Sequence[Evidence], compete: Sequence[bool] | None = None) -> list[Evidence]:
    """The evidence of all candidates of ONE query, each with its query context, taken at the
    query frame where the candidate matches best (``frame_similarity``): the margin of its
    similarity there over the best of the other candidates at that frame (over 0 when it is
    the only one), and how many other candidates match that frame strictly better. Two
    references copied into different parts of one query do not compete; look-alikes matching
    the same query frames do. ``compete`` False: a candidate that is not compared against (the
    query's own file, when a stored video is searched: it matches every frame perfectly and
    would push its copies down). Evidence without per-frame similarities (made by hand) is
    compared by ``best_frame_similarity`` alone. A candidate with no frame match at all ranks
    behind every rival with margin minus the best rival similarity."""
    if not evidence:
        return []
    n = len(evidence)
    frames = [e.frame_similarity for e in evidence]
    if all(f is not None for f in frames) and len({len(f) for f in frames}) == 1 and len(frames[0]):  # type: ignore[arg-type]
        S = np.maximum(np.stack(frames), 0)  # type: ignore[arg-type]  # below 0 counts as no match, as in score_candidate
    else:
        S = np.maximum(np.array([[e.best_frame_similarity] for e in evidence], np.float64), 0.0)
    best = np.argmax(S, axis=1)  # each candidate's best query frame
    own = S[np.arange(n), best].astype(np.float64)
    comp = np.ones(n, bool) if compete is None else np.asarray(compete, bool)
    rivals = np.flatnonzero(comp)
    # Only the query frames that are some candidate's best are needed (a long query has
    # thousands): per such frame, the rivals' sorted similarities (plus a 0: no rival), its
    # leader and the two best values, so each candidate meets the others in O(n log n).
    used, col_of = np.unique(best, return_inverse=True)
    R = np.vstack([S[np.ix_(rivals, used)].astype(np.float64), np.zeros((1, len(used)))])
    rows = np.sort(R.T, axis=1)  # one sorted row per used query frame (contiguous for searchsorted)
    second = rows[:, -2] if len(R) > 1 else np.zeros(len(used))
    leader = rivals[np.argmax(R[:-1], axis=0)] if len(rivals) else np.full(len(used), -1)
    other = np.where(leader[col_of] == np.arange(n), second[col_of], rows[:, -1][col_of])
    better = np.array([len(R) - np.searchsorted(rows[c], v, side="right") for c, v in zip(col_of.tolist(), own.tolist())], np.int64)
    # A candidate without any frame match has no best frame: it ranks behind every rival, and
    # its margin is minus the best rival similarity anywhere (not frame 0's by accident).
    none = own <= 0
    if none.any():
        other[none] = float(S.max(axis=1)[rivals].max()) if len(rivals) else 0.0
        better[none] = len(rivals) - comp[none]
    return [dataclasses.replace(e, best_frame_margin=float(own[i] - other[i]), best_frame_rank=int(better[i])) for i, e in enumerate(evidence)]


def segment_confidence(score: float, min_score: float, ceiling: float = 1.0) -> float:
    """``clip((score - min_score) / (ceiling - min_score), 0, 1)`` (the span at least 0.05)."""
    span = max(ceiling - min_score, _MIN_SPAN)
    return float(np.clip((score - min_score) / span, 0.0, 1.0))


def _mean_weight(seg: Segment, query_times: np.ndarray, frame_weights: np.ndarray | None) -> float:
    """Mean common-frame weight of the query frames inside ``seg`` (1 without weights or frames)."""
    if frame_weights is None or len(query_times) == 0:
        return 1.0
    inside = (query_times >= seg.query_start - 1e-6) & (query_times < seg.query_end - 1e-6)
    return float(frame_weights[inside].mean()) if inside.any() else 1.0


def _weighted_union(spans: list[tuple[float, float, float]]) -> float:
    """Sum over the union of ``(start, end, value)`` spans of ``length * max value covering``."""
    cuts = sorted({t for s, e, _ in spans for t in (s, e)})
    total = 0.0
    for a, b in zip(cuts[:-1], cuts[1:]):
        cover = [v for s, e, v in spans if s <= a + 1e-9 and e >= b - 1e-9]
        if cover:
            total += (b - a) * max(cover)
    return total


def segment_evidence(
    segments: Sequence[Segment],
    query_times: np.ndarray,
    query_duration: float,
    ref_duration: float,
    min_score: float,
    ceiling: float = 1.0,
    frame_weights: np.ndarray | None = None,
    best_frame_similarity: float = 0.0,
) -> Evidence:
    """Evidence of one candidate from its aligned ``segments`` (module docstring).

    ``query_times`` are the query's frame timestamps and ``frame_weights`` their
    common-frame weights (None: all 1); ``min_score`` and ``ceiling`` set the confidence
    scale; ``best_frame_similarity`` is the candidate's best frame match.
    """
    qt = np.asarray(query_times, np.float64)
    fw = None if frame_weights is None else np.asarray(frame_weights, np.float64)
    if fw is not None and len(fw) != len(qt):
        raise ValueError("frame_weights must have one weight per query frame")
    # Spans clipped to the query: the last frame's interval may reach past its end.
    spans = [(g.query_start, min(g.query_end, query_duration)) for g in segments]
    conf = [segment_confidence(g.score, min_score, ceiling) * _mean_weight(g, qt, fw) for g in segments]
    matched = union_length([s for s in spans if s[1] > s[0]])
    weighted = _weighted_union([(s, e, c) for (s, e), c in zip(spans, conf) if e > s])
    covered = np.zeros(len(qt), bool)
    for g in segments:
        covered |= (qt >= g.query_start - 1e-6) & (qt < g.query_end - 1e-6)
    rep = repetition_degree(list(segments), query_duration, ref_duration)
    if fw is not None and covered.any():
        rep *= float(fw[covered].mean())  # each matched query second counts its weight
    if segments:
        # Best = most confident seconds; ties to the longer, then the earlier segment.
        k = max(range(len(segments)), key=lambda i: (segments[i].query_length * conf[i], segments[i].query_length, -i))
        best_len, best_score, best_conf = segments[k].query_length, segments[k].score, conf[k]
    else:
        best_len = best_score = best_conf = 0.0
    return Evidence(
        matched_seconds=float(matched), weighted_seconds=float(weighted), best_segment_seconds=float(best_len),
        best_segment_score=float(best_score), best_segment_confidence=float(best_conf), matched_frames=int(covered.sum()),
        best_frame_similarity=float(best_frame_similarity), repetition_degree=float(rep),
    )


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # Split by sign so that neither branch overflows.
    out = np.empty_like(z, dtype=np.float64)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _finite_number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Logistic map from :meth:`Evidence.features` to a copy probability.

    ``weights`` pair with :data:`FEATURES`; the defaults are hand-set (module docstring),
    not fitted.
    """

    weights: tuple[float, ...] = DEFAULT_WEIGHTS
    bias: float = DEFAULT_BIAS

    def __post_init__(self) -> None:
        w = tuple(_finite_number(v, "calibration weight") for v in self.weights)
        if len(w) != len(FEATURES):
            raise ValueError(f"calibration needs {len(FEATURES)} weights ({', '.join(FEATURES)}), got {len(w)}")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "bias", _finite_number(self.bias, "calibration bias"))

    def probability(self, features: np.ndarray | Sequence[float]) -> float:
        x = np.asarray(features, np.float64)
        if x.shape != (len(FEATURES),) or not np.all(np.isfinite(x)):
            raise ValueError(f"features must be {len(FEATURES)} finite numbers, got {x.tolist()}")
        return float(_sigmoid(np.array([float(x @ np.asarray(self.weights)) + self.bias]))[0])

    def to_keys(self) -> dict[str, float]:
        """The checkpoint keys (:data:`CALIBRATION_KEYS`) holding this calibration."""
        return {**{f"calib_w{i}": w for i, w in enumerate(self.weights)}, "calib_bias": self.bias}

    @classmethod
    def from_keys(cls, values: Mapping[str, float]) -> "Calibration | None":
        """The calibration stored under :data:`CALIBRATION_KEYS` in ``values``; None when
        none of the keys is there. A partial set is an error (half a fit is no fit), except
        that a fit from before the query-context features (no weights for them) gives them 0."""
        present = [k for k in CALIBRATION_KEYS if k in values]
        if not present:
            return None
        context = {f"calib_w{FEATURES.index(f)}" for f in CONTEXT_FEATURES}
        missing = sorted(set(CALIBRATION_KEYS) - set(present))
        if missing and set(missing) != context:
            raise ValueError(f"calibration keys must come together; missing {missing}")
        return cls(tuple(values.get(f"calib_w{i}", 0.0) for i in range(len(FEATURES))), values["calib_bias"])


def fit_calibration(
    X: np.ndarray, y: np.ndarray, l2: float = 1.0, sample_weight: np.ndarray | None = None, max_iter: int = 100, tol: float = 1e-10
) -> Calibration:
    """L2-regularised logistic regression (:func:`fit_logistic`) of :data:`FEATURES`.

    ``X`` (n, len(FEATURES)) holds :meth:`Evidence.features` rows of a TUNING set, ``y`` 1
    for true copies and 0 otherwise.
    """
    X = np.asarray(X, np.float64)
    if X.ndim != 2 or X.shape[1] != len(FEATURES):
        raise ValueError(f"X must be (n, {len(FEATURES)}) and y (n,), n >= 1")
    w, b = fit_logistic(X, y, l2, sample_weight, max_iter, tol)
    return Calibration(tuple(float(v) for v in w), b)


def fit_logistic(
    X: np.ndarray, y: np.ndarray, l2: float = 1.0, sample_weight: np.ndarray | None = None, max_iter: int = 100, tol: float = 1e-10
) -> tuple[np.ndarray, float]:
    """``(weights, bias)`` of an L2-regularised logistic regression by Newton's method (IRLS),
    deterministic, for any number of columns (benchmarks/feature_study.py tries candidate
    features with it). ``l2`` > 0 penalises the weights (not the bias) and keeps them finite on
    separable data. Steps are halved while they fail to lower the penalised loss, so the fit
    converges from the zero start.
    """
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64).ravel()
    if X.ndim != 2 or len(X) != len(y) or len(y) == 0:
        raise ValueError("X must be (n, k) and y (n,), n >= 1")
    if not (np.all(np.isfinite(X)) and np.all((y == 0) | (y == 1))):
        raise ValueError("X must be finite and y 0/1")
    if not l2 > 0:
        raise ValueError("l2 must be > 0")
    sw = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, np.float64).ravel()
    if len(sw) != len(y) or not np.all(np.isfinite(sw)) or np.any(sw < 0):
        raise ValueError("sample_weight must be finite, >= 0, one per row")
    A = np.hstack([X, np.ones((len(X), 1))])
    pen = np.r_[np.full(X.shape[1], l2), 0.0]

    def loss(theta: np.ndarray) -> float:
        z = A @ theta
        # log(1 + e^z) - y z, computed stably
        return float(np.sum(sw * (np.logaddexp(0.0, z) - y * z)) + 0.5 * np.sum(pen * theta**2))

    theta = np.zeros(A.shape[1])
    cur = loss(theta)
    for _ in range(max_iter):
        p = _sigmoid(A @ theta)
        grad = A.T @ (sw * (p - y)) + pen * theta
        hess = (A * (sw * p * (1 - p))[:, None]).T @ A + np.diag(pen) + 1e-12 * np.eye(A.shape[1])
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-8:
            new = loss(theta - t * step)
            if new <= cur:
                break
            t /= 2
        else:
            break  # no descent left: converged to numerical precision
        theta, gain, cur = theta - t * step, cur - new, new
        if gain < tol * max(1.0, abs(cur)):
            break
    return theta[:-1].copy(), float(theta[-1])


def decide(
    evidence: Evidence,
    calibration: Calibration = Calibration(),
    copy_threshold: float = 0.5,
    min_copy_seconds: float = 3.0,
    duration_threshold: float | None = None,
) -> tuple[float, bool]:
    """``(p, is_copy)`` by the rule of the module docstring; ``p`` is the mode-2 score.

    The old rule needs at least one segment (a repetition degree of 0 with no segment at
    threshold 0 is no copy).
    """
    p = calibration.probability(evidence.features())
    by_segment = p >= copy_threshold and evidence.best_segment_seconds >= min_copy_seconds - TIME_TOLERANCE
    by_repetition = duration_threshold is not None and evidence.matched_seconds > 0 and evidence.repetition_degree >= duration_threshold
    return p, bool(by_segment or by_repetition)


# ----------------------------------------------------------------------------- search settings and results

RERANK_SCOPES = ("window", "video")


@dataclasses.dataclass(frozen=True)
class SearchParams:
    """Search options. Defaults were chosen on generated copies (see README, 'Thresholds')."""

    top_n: int = 20
    radius: int = 32  # Hamming radius of the category recall (bits, inclusive)
    mode: Mode = Mode.duration
    embedding_threshold: float = 0.8  # mode 1: L2 distance (embeddings are unit length)
    duration_threshold: float = 0.3  # mode 2, patent rule: content repetition degree
    # Mode 2 (vidret_milvus.decision): copy when the calibrated confidence reaches
    # copy_threshold and the best segment lasts min_copy_seconds; repetition_rule keeps the
    # patent's rule (repetition degree >= duration_threshold) as a second way to be a copy.
    copy_threshold: float = 0.5
    min_copy_seconds: float = 3.0
    repetition_rule: bool = True
    calibration: Calibration = Calibration()  # hand-set defaults until a tuner fits one
    codes_threshold: float = 0.2  # mode 3: equal-code duration / shorter duration
    # mode 3: codes this close count as "equal". The patent means identical codes from a
    # trained head; untrained LSH codes of a copy differ by 10-30 bits, hence 16 (of 128; a
    # longer code's checkpoint carries its own, tune_thresholds.py writes code_bits / 8).
    code_equal_bits: int = 16
    frame_match_l2: float = 1.0  # an L2 re-rank hit farther than this is no frame match
    rerank_per_video: int = 3  # nearest reference frames kept per (query frame, video)
    # Which reference frames the L2 re-rank searches: "window" (the patent's mapping table
    # filtered by candidate frame ids: every frame within rerank_window_s of a frame the code
    # stage recalled, in the candidate videos) or "video" (every frame of every candidate).
    rerank_scope: str = "window"
    rerank_window_s: float = 5.0
    max_candidates: int = 2000  # videos sent to re-rank (most coherent code votes first)
    # A video reaches the re-rank when at least min_code_votes distinct query frames recall it
    # in one window of time offsets (2 x vote_tolerance_s wide; search.code_votes): 1 passes
    # every video the codes recall. Candidates are ranked by these votes.
    min_code_votes: int = 1
    vote_tolerance_s: float = 2.0
    recall_limit: int = MAX_LIMIT  # hits per query frame in the Hamming stage
    align: AlignParams = AlignParams()
    # Down-weighting of query frames recalled in many candidate videos (module docstring);
    # 0 turns it off.
    common_frame_videos: int = 4
    # Background normalisation (module docstring); beta 0 turns it off.
    background_beta: float = 0.0
    background_k: int = 1  # similarity to the k-th nearest background frame
    background_size: int = 5000  # stored frames sampled when no background_path is given
    background_path: str | None = None  # .npy (M, D) float32 of background frame embeddings
    background_seed: int = 0
    # Background similarity assumed when the background holds no frame of another video (a
    # store with one video): the thresholds of a model tuned with beta > 0 are on the
    # normalised scale, so "nothing to subtract" would make them lax. Tuned per model.
    background_default: float = 0.0

    def __post_init__(self) -> None:
        if self.top_n < 1:
            raise ValueError("top_n must be >= 1")
        if not 0 <= self.radius <= MAX_CODE_BITS:  # the store checks it against the code length
            raise ValueError(f"radius must be in [0, {MAX_CODE_BITS}]")
        if self.rerank_scope not in RERANK_SCOPES:
            raise ValueError(f"rerank_scope must be one of {RERANK_SCOPES}")
        if not 0.0 <= self.rerank_window_s <= 3600.0:
            raise ValueError("rerank_window_s must be in [0, 3600]")
        if self.min_code_votes < 1:
            raise ValueError("min_code_votes must be >= 1")
        if self.max_candidates < 1:
            raise ValueError("max_candidates must be >= 1")
        if not 0.0 < self.vote_tolerance_s <= 3600.0:
            raise ValueError("vote_tolerance_s must be in (0, 3600]")
        if self.common_frame_videos < 0:
            raise ValueError("common_frame_videos must be >= 0")
        if not 0.0 <= self.background_beta <= 2.0:
            raise ValueError("background_beta must be in [0, 2]")
        if self.background_k < 1 or self.background_size < 1:
            raise ValueError("background_k and background_size must be >= 1")
        if not 0.0 <= self.copy_threshold <= 1.0:
            raise ValueError("copy_threshold must be in [0, 1]")
        if not self.min_copy_seconds >= 0:
            raise ValueError("min_copy_seconds must be >= 0")
        if not isinstance(self.calibration, Calibration):
            raise ValueError("calibration must be a decision.Calibration")
        object.__setattr__(self, "repetition_rule", bool(self.repetition_rule))
        object.__setattr__(self, "mode", Mode(self.mode))

    @classmethod
    def for_model(cls, thresholds: "Thresholds | None", **overrides: Any) -> "SearchParams":
        """Defaults with a model's tuned ``thresholds`` (the :class:`~vidret_milvus.model.settings.Thresholds`
        read from its checkpoint by ``model.settings.thresholds_for(model)``: config.json
        ``"thresholds"``, written by benchmarks/tune_thresholds.py, and ``background.npy``),
        then ``overrides`` (``None`` values are ignored, so CLI options left unset keep the
        model's values). None, or a model without tuned thresholds (another backbone, an
        untuned checkpoint), gets the class defaults. The ``calib_w*`` / ``calib_bias`` keys
        (all or none) become ``calibration``; ``background.npy`` becomes ``background_path``."""
        tuned: dict[str, Any] = {}
        if thresholds is not None:
            if not isinstance(getattr(thresholds, "values", None), Mapping):
                raise TypeError("SearchParams.for_model takes the model's Thresholds (vidret_milvus.model.settings.thresholds_for(model)), "
                                f"got {type(thresholds).__name__}")
            tuned = dict(thresholds.values)
            if thresholds.background_path:
                tuned["background_path"] = thresholds.background_path
        min_score = tuned.pop("align_min_score", None)
        calibration = Calibration.from_keys(tuned)
        tuned = {k: v for k, v in tuned.items() if not k.startswith("calib_")}
        if calibration is not None:
            tuned["calibration"] = calibration
        kw = {**tuned, **{k: v for k, v in overrides.items() if v is not None}}
        align = kw.pop("align", cls.align)
        if min_score is not None and "align" not in overrides:
            align = dataclasses.replace(align, min_score=float(min_score))
        return cls(align=align, **kw)


@dataclasses.dataclass
class Result:
    video_id: int
    path: str
    duration: float
    score: float
    is_copy: bool
    repetition_degree: float
    min_distance: float
    code_ratio: float
    segments: list[Segment]
    # Mode-2 evidence (decision.py): union of the segments' query spans, and the calibrated
    # copy probability (the mode-2 score).
    matched_seconds: float = 0.0
    confidence: float = 0.0
    view: str = "full"  # which query view found it (views.search_views: a region or crop)
    self_match: bool = False  # the result is the query's own file (search_video sets it)
    # decision.Evidence.features() of the candidate (FEATURES order), for calibration fits
    # (benchmarks/tune_thresholds.py), and the Evidence itself; not part of to_json.
    evidence: np.ndarray | None = None
    evidence_detail: Evidence | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "video_id": self.video_id,
            "path": self.path,
            "duration": round(self.duration, 3),
            "score": round(self.score, 4),
            "is_copy": self.is_copy,
            "repetition_degree": round(self.repetition_degree, 4),
            "matched_seconds": round(self.matched_seconds, 3),
            "confidence": round(self.confidence, 4),
            "segments": [g.to_json() for g in self.segments],
            # Only region views say so: plain full-frame results keep their JSON keys.
            **({"view": self.view} if self.view != "full" else {}),
            **({"self_match": True} if self.self_match else {}),
        }


def decision_settings(params: SearchParams) -> dict[str, Any]:
    """The settings that decide a result, as reported with it."""
    threshold = getattr(params, mode_threshold_field(params.mode))
    out = {"mode": params.mode.value, "threshold": threshold, "radius": params.radius, "min_code_votes": params.min_code_votes, "max_candidates": params.max_candidates, "vote_tolerance_s": params.vote_tolerance_s, "segment_min_score": params.align.min_score,
           "segment_min_frames": params.align.min_frames, "frame_match_l2": params.frame_match_l2, "background_beta": params.background_beta}
    if params.mode is Mode.duration:
        out.update({"copy_threshold": params.copy_threshold, "min_copy_seconds": params.min_copy_seconds,
                    "repetition_rule": params.repetition_rule, "confidence_ceiling": round(confidence_ceiling(params), 4),
                    "calibration": {"features": list(FEATURES), "weights": list(params.calibration.weights), "bias": params.calibration.bias,
                                    "hand_set": params.calibration == Calibration()}})
    return out


def confidence_ceiling(params: SearchParams) -> float:
    """The similarity of identical frames on the scale in use: 1, less the background term."""
    return 1.0 - params.background_beta * params.background_default


def l2_to_similarity(d2: np.ndarray) -> np.ndarray:
    """Squared L2 between unit vectors -> cosine similarity (1 - d^2 / 2)."""
    return 1.0 - np.asarray(d2, np.float64) / 2.0


def common_frame_weights(query_index: np.ndarray, video_ids: np.ndarray, num_frames: int, free_videos: int) -> np.ndarray:
    """Per query frame, ``min(1, log2(1 + free_videos) / log2(1 + n))`` where ``n`` is the
    number of distinct videos among its recall hits ``(query_index[k], video_ids[k])``.
    All ones when ``free_videos`` is 0 (off)."""
    w = np.ones(num_frames)
    if free_videos <= 0 or len(query_index) == 0:
        return w
    pairs = np.unique(np.stack([np.asarray(query_index, np.int64), np.asarray(video_ids, np.int64)], 1), axis=0)
    n = np.bincount(pairs[:, 0], minlength=num_frames)[:num_frames]
    many = n > free_videos
    w[many] = np.log2(1 + free_videos) / np.log2(1 + n[many])
    return w


def mode_score(mode: Mode, confidence: float, min_dist: float, code_ratio: float) -> float:
    """One number in [0, 1], higher = more similar, comparable across queries for a mode.
    Mode 2: the calibrated copy probability (its best-frame feature still ranks candidates
    without an accepted segment, which keeps pooled ranking informative below the cut)."""
    if mode is Mode.embedding:
        return float(max(0.0, 1.0 - min_dist / 2.0))
    if mode is Mode.codes:
        return float(code_ratio)
    return float(confidence)


def mode_threshold_field(mode: Mode) -> str:
    """The SearchParams field that holds ``mode``'s copy threshold."""
    return {Mode.embedding: "embedding_threshold", Mode.duration: "copy_threshold", Mode.codes: "codes_threshold"}[Mode(mode)]


@dataclasses.dataclass(frozen=True)
class Matches:
    """Frame matches of one (query, candidate) pair: query frame index, reference time and
    distance (squared L2 for re-rank hits, Hamming bits for code hits)."""

    query_index: np.ndarray
    t: np.ndarray
    distance: np.ndarray

    @classmethod
    def empty(cls) -> "Matches":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32))


def nearest_per_query_frame(m: Matches, k: int) -> Matches:
    """The ``k`` nearest matches of each query frame (ties to the earlier reference time)."""
    if len(m.query_index) == 0:
        return m
    order = np.lexsort((m.t, m.distance, m.query_index))
    qi, rt, d2 = m.query_index[order], m.t[order], m.distance[order]
    first = np.r_[True, qi[1:] != qi[:-1]]
    rank = np.arange(len(qi)) - np.maximum.accumulate(np.where(first, np.arange(len(qi)), 0))
    keep = rank < k
    return Matches(qi[keep], rt[keep], d2[keep])


def score_candidate(
    params: SearchParams,
    *,
    video_id: int,
    path: str,
    duration: float,
    query_times: np.ndarray,
    query_duration: float,
    frame_interval: float,
    rerank: Matches,
    codes: Matches,
    frame_weights: np.ndarray,
    background: np.ndarray | None = None,
) -> Result:
    """The decision for one candidate video, from its frame matches, as if it were the query's
    only candidate (:func:`decide_query` then applies the context of all of them): its
    segments (align), mode-2 evidence and calibrated confidence, the mode-1 distance and the mode-3 equal-code
    share, its score and whether it is a copy under ``params.mode``.

    ``rerank``: its L2 re-rank hits (squared distances), of which the ``rerank_per_video``
    nearest per query frame count; ``codes``: its code-stage hits (Hamming bits);
    ``frame_weights``: the common-frame weight of each query frame; ``background``: per query
    frame, the background similarity to subtract (times ``background_beta``), or None.
    """
    m = nearest_per_query_frame(rerank, params.rerank_per_video)
    qi, rt, d2 = m.query_index, m.t, m.distance
    min_dist = float(np.sqrt(max(0.0, d2.min()))) if len(d2) else 2.0  # in d2's dtype (float32 from Milvus), as always
    good = np.sqrt(np.maximum(d2, 0)) <= params.frame_match_l2
    sim = l2_to_similarity(d2[good])
    if background is not None:
        sim = sim - params.background_beta * np.asarray(background, np.float64)[qi[good]]
    aparams = dataclasses.replace(params.align, frame_interval=frame_interval)
    segs = align(query_times[qi[good]], rt[good], sim, aparams, weight=frame_weights[qi[good]])
    ev = segment_evidence(segs, query_times, query_duration, duration, min_score=aparams.min_score, ceiling=confidence_ceiling(params),
                          frame_weights=frame_weights, best_frame_similarity=max(0.0, 1.0 - min_dist**2 / 2.0))
    frame_sim = np.zeros(len(query_times), np.float32)  # float32: 2,000 candidates x an hour of query frames
    if len(qi):
        np.maximum.at(frame_sim, qi, np.maximum(l2_to_similarity(d2), 0.0).astype(np.float32))
    ev = dataclasses.replace(ev, frame_similarity=frame_sim)
    confidence, dur_copy = decide(ev, params.calibration, params.copy_threshold, params.min_copy_seconds,
                                  params.duration_threshold if params.repetition_rule else None)
    shorter = min(query_duration, duration)
    eq_frames = np.unique(codes.query_index[codes.distance <= params.code_equal_bits])
    code_ratio = float(min(1.0, len(eq_frames) * frame_interval / shorter)) if shorter > 0 else 0.0
    if params.mode is Mode.embedding:
        is_copy = min_dist < params.embedding_threshold
    elif params.mode is Mode.codes:
        is_copy = code_ratio >= params.codes_threshold
    else:
        is_copy = dur_copy
    return Result(
        video_id=video_id, path=path, duration=duration,
        score=mode_score(params.mode, confidence, min_dist, code_ratio), is_copy=bool(is_copy),
        repetition_degree=ev.repetition_degree, min_distance=min_dist, code_ratio=code_ratio, segments=segs,
        matched_seconds=ev.matched_seconds, confidence=confidence, evidence=ev.features(), evidence_detail=ev,
    )


def decide_query(params: SearchParams, results: Sequence[Result], compete: Sequence[bool] | None = None) -> list[Result]:
    """All candidates of ONE query (from :func:`score_candidate`) with the query context
    applied (:func:`with_query_context`, ``compete`` as there): their mode-2 confidence,
    verdict and score are decided again with it. Same order as given."""
    evs = with_query_context([r.evidence_detail for r in results], compete)  # type: ignore[misc]
    out = []
    for r, ev in zip(results, evs):
        confidence, dur_copy = decide(ev, params.calibration, params.copy_threshold, params.min_copy_seconds,
                                      params.duration_threshold if params.repetition_rule else None)
        out.append(dataclasses.replace(
            r, confidence=confidence, is_copy=dur_copy if params.mode is Mode.duration else r.is_copy,
            score=mode_score(params.mode, confidence, r.min_distance, r.code_ratio), evidence=ev.features(), evidence_detail=ev,
        ))
    return out
