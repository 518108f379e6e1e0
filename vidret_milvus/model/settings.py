"""Search settings tuned for a model, held beside it (not on it).

A checkpoint's ``config.json`` may carry a ``"thresholds"`` block (written by
``benchmarks/tune_thresholds.py``) and a ``background.npy`` beside it. They change decisions,
not what the model computes, so they are not part of the model id and the model object does
not carry them: :func:`load_thresholds` reads them into a :class:`Thresholds`, which
``SearchParams.for_model(thresholds, ...)`` turns into search settings. Torch-free.
"""

from __future__ import annotations

import dataclasses
import json
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..descriptor import MAX_CODE_BITS
from ..errors import ModelError

CONFIG_FILE = "config.json"
BACKGROUND_FILE = "background.npy"  # optional: the model's normalisation background

# Thresholds a checkpoint may carry (benchmarks/tune_thresholds.py writes them), with their
# types and valid ranges; decision.SearchParams.for_model applies them.
THRESHOLD_KEYS: dict[str, tuple[type, float, float]] = {
    "radius": (int, 0, MAX_CODE_BITS),  # bits; the store checks it against the code length
    "frame_match_l2": (float, 0.0, 2.0),
    "min_code_votes": (int, 1, 1000),
    "max_candidates": (int, 1, 16384),  # the CLI's --max-candidates range
    "align_min_score": (float, -1.0, 1.0),
    "duration_threshold": (float, 0.0, 1.0),
    "background_beta": (float, 0.0, 2.0),
    "background_default": (float, -1.0, 1.0),
    "embedding_threshold": (float, 0.0, 2.0),
    "codes_threshold": (float, 0.0, 1.0),
    "code_equal_bits": (int, 0, MAX_CODE_BITS),
    # Mode-2 decision (vidret_milvus/decision.py): the calibrated-confidence cut, the shortest
    # copy, whether the patent's repetition rule also decides (0/1), and the logistic
    # calibration (calib_w0..calib_w5 pair with decision.FEATURES; all seven keys or none; a
    # fit from before the query-context features has calib_w0..calib_w3 and calib_bias, and
    # gives those features weight 0).
    "copy_threshold": (float, 0.0, 1.0),
    "min_copy_seconds": (float, 0.0, 3600.0),
    "repetition_rule": (int, 0, 1),
    "calib_w0": (float, -100.0, 100.0),
    "calib_w1": (float, -100.0, 100.0),
    "calib_w2": (float, -100.0, 100.0),
    "calib_w3": (float, -100.0, 100.0),
    "calib_w4": (float, -100.0, 100.0),
    "calib_w5": (float, -100.0, 100.0),
    "calib_bias": (float, -100.0, 100.0),
}


# Thresholds tuned for untrained heads, by model id (the id hashes every tensor, so a value
# applies to exactly the model it was measured on; any other untrained model, e.g. another
# backbone, gets the search defaults). From benchmarks/tune_thresholds.py --name untrained
# (benchmarks/results/tune-untrained.json: tuning sets muAP 0.917, detected 0.85, FPR 0.033).
UNTRAINED_THRESHOLDS: dict[str, dict[str, float]] = {
    "vm-398be1cabc122d3f": {"radius": 32, "frame_match_l2": 1.0, "align_min_score": 0.3, "duration_threshold": 0.4,
                            "background_beta": 0.6, "background_default": 0.59},
}


def for_code_length(values: Mapping[str, float], code_bits: int, where: str) -> dict[str, float]:
    """A checkpoint's thresholds for its code length: a radius or "equal codes" count beyond
    the code is refused (ModelError naming ``where``), and for a code other than the patent's
    128 bits a missing one is the search default scaled to the length (radius 32 of 128 would
    be an eighth of a 256-bit code's reach, silently)."""
    from ..decision import SearchParams  # its defaults; imported here: decision is the caller's layer

    out = dict(values)
    for key in ("radius", "code_equal_bits"):
        if key in out:
            if out[key] > code_bits:
                raise ModelError(f"{where}: threshold {key!r} is {int(out[key])} bits, more than the model's {code_bits}-bit codes")
        elif code_bits != 128:
            out[key] = getattr(SearchParams, key) * code_bits // 128
    return out


def parse_thresholds(raw: object, where: str) -> dict[str, float]:
    """Validate a checkpoint's ``thresholds`` block: known keys, numbers in range."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ModelError(f"{where}: 'thresholds' must be an object, got {type(raw).__name__}")
    out: dict[str, float] = {}
    for key, value in raw.items():
        if key not in THRESHOLD_KEYS:
            raise ModelError(f"{where}: unknown threshold {key!r} (known: {sorted(THRESHOLD_KEYS)})")
        kind, lo, hi = THRESHOLD_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and float(value) != int(value)):
            raise ModelError(f"{where}: threshold {key!r} must be a{'n integer' if kind is int else ' number'}, got {value!r}")
        if not lo <= value <= hi:
            raise ModelError(f"{where}: threshold {key!r} = {value} is outside [{lo}, {hi}]")
        out[key] = kind(value)
    calib = {k for k in out if k.startswith("calib_")}
    every = {k for k in THRESHOLD_KEYS if k.startswith("calib_")}
    if calib and calib != every and calib != every - {"calib_w4", "calib_w5"}:
        # Half a fitted calibration mixed with the hand-set defaults would mean nothing.
        raise ModelError(f"{where}: calibration keys must come together (got {sorted(calib)})")
    return out


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """The tuned search settings of one model: ``values`` (keys of :data:`THRESHOLD_KEYS`,
    validated) and the path of its normalisation background, if any. Empty: the defaults."""

    values: Mapping[str, float] = dataclasses.field(default_factory=dict)
    background_path: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", MappingProxyType(parse_thresholds(dict(self.values), "thresholds")))
        if self.background_path is not None and not isinstance(self.background_path, str):
            raise ModelError(f"background_path must be a path string, got {self.background_path!r}")

    def to_config(self) -> dict[str, Any]:
        """The ``"thresholds"`` block of a checkpoint's config.json (sorted keys)."""
        return dict(sorted(self.values.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Thresholds) and dict(self.values) == dict(other.values) and self.background_path == other.background_path

    def __hash__(self) -> int:
        return hash((tuple(sorted(self.values.items())), self.background_path))


def load_thresholds(checkpoint: str | Path | None = None, model_id: str | None = None) -> Thresholds:
    """The thresholds of the checkpoint folder ``checkpoint`` (its config.json block and
    background.npy), or, without one, those measured for the untrained model ``model_id``
    (:data:`UNTRAINED_THRESHOLDS`; none for any other)."""
    if checkpoint is None:
        return Thresholds(dict(UNTRAINED_THRESHOLDS.get(model_id or "", {})))
    ckpt = Path(checkpoint)
    cfg = ckpt / CONFIG_FILE
    try:
        doc = json.loads(cfg.read_text())
        raw, bits = doc.get("thresholds"), int(doc.get("code_bits", 128))
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise ModelError(f"{cfg}: cannot read the checkpoint's thresholds ({exc})") from exc
    background = str(ckpt / BACKGROUND_FILE) if (ckpt / BACKGROUND_FILE).is_file() else None
    return Thresholds(for_code_length(parse_thresholds(raw, str(cfg)), bits, str(cfg)), background)


# The thresholds read when each model was loaded (load_model): held beside the model, and what
# every search of a process uses, whatever happens to the checkpoint folder afterwards.
_LOADED: "weakref.WeakKeyDictionary[Any, Thresholds]" = weakref.WeakKeyDictionary()


def remember(model: Any, thresholds: Thresholds) -> None:
    """Keep ``thresholds`` as the ones of ``model`` (load_model calls this once)."""
    _LOADED[model] = thresholds


def thresholds_for(model: Any) -> Thresholds:
    """The thresholds of a loaded model: those read from its checkpoint when it was loaded
    (``model.source``), or those of its untrained model id."""
    got = _LOADED.get(model)
    if got is None:
        got = load_thresholds(model.source, model.model_id)
        _LOADED[model] = got
    return got
