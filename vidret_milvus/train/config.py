"""Training configuration: dataclasses with defaults (the CPU default), loadable from JSON (or
YAML when PyYAML is installed) and overridable with dotted ``section.key=value`` pairs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any


@dataclasses.dataclass
class DataConfig:
    cache_dir: str = "train_cache"  # prepared by data.prepare_cache (train.npz, val.npz)
    resources: str = "resources"  # where to prepare it from when it is missing
    synthetic: int = 0  # > 0: train on this many generated pictures instead (tests)
    synthetic_size: int = 96
    input_size: int = 160  # training resolution (the model keeps its own inference size)
    batch: int = 24  # pairs (sample, edited copy) per step
    workers: int = 0  # DataLoader worker processes (0: in the main process)
    edits: tuple[int, int] = (1, 4)  # min, max edits per copy
    ops: tuple[str, ...] = ()  # edits to draw from (augment.OPS names); empty: all
    pip_other: float = 0.5  # chance a picture-in-picture copy gets another sample as background


@dataclasses.dataclass
class ModelCfg:
    backbone: str | None = None  # None: tf_efficientnet_lite0 with its embedded weights
    weights: str | None = None
    checkpoint: str | None = None  # start from a trained checkpoint instead
    trainable: tuple[str, ...] = ("blocks.5", "blocks.6", "conv_head", "bn2")  # backbone prefixes trained
    feature_norm: str = "data"  # "data": standardise with statistics of training images; "bn": keep
    feature_norm_samples: int = 256


@dataclasses.dataclass
class MiningConfig:
    k_percent: float = 10.0  # nearest k % of the candidates dropped (likely near-duplicates)
    m: int = 3  # negatives kept per pair -> m triplets


@dataclasses.dataclass
class Stage1Config:
    steps: int = 800  # step budget
    time_s: float = 600.0  # wall-clock budget (0: none)
    lr: float = 0.02  # texture head
    backbone_lr: float = 0.001  # the backbone's trainable blocks
    momentum: float = 0.9
    weight_decay: float = 1e-5
    margin_em: float = 0.3
    threshold: float = 0.002  # stop when the running L_em is at or below this
    warmup: int = 10  # steps before the threshold may stop the stage


@dataclasses.dataclass
class Stage2Config:
    steps: int = 1000
    time_s: float = 780.0
    variant: str = "v1"  # v1 adaptive margin, v2 Formula 8, fixed (ablation)
    lr: float = 0.02  # texture head (L_em')
    quant_lr: float = 0.002  # quantization head (L_q)
    # the backbone's trainable blocks (L_q). L_q is in bits, its gradients are larger than L_em's:
    # at 0.001 the codes drift towards constant bits (measured), hence lower than in stage 1.
    backbone_lr: float = 0.0002
    momentum: float = 0.9
    weight_decay: float = 1e-5
    # margin_i = margin0 * L_em,i / M_em bits. L_em,i / M_em of an active triplet is a few bits
    # while copies and unrelated pictures are ~30 bits apart, hence a gain above 1 (measured on
    # the H200: 4 -> codes compress, negatives 60 -> 45 bits; 12 -> 55 bits, better mAP).
    margin0: float = 12.0
    max_margin: float = 32.0  # bits; caps margin_i (guard, not in the patent; 0: no cap)
    m_em: float = 0.0  # 0: measured on training data at the start of stage 2
    center_quant: bool = True  # at the start of stage 2, centre each code bit on the training data
    fixed_margin: float = 24.0  # bits, for variant "fixed"
    w21: float = 1.0
    w22: float = 0.01
    threshold_em: float = 0.002
    threshold_q: float = 0.05
    warmup: int = 10
    enabled: bool = True


@dataclasses.dataclass
class RunConfig:
    out: str = "runs/cpu"
    seed: int = 0
    device: str = "cpu"
    threads: int = 2
    ckpt_every: int = 100  # steps between resumable state saves
    log_every: int = 1  # steps between CSV rows
    resume: bool = True
    eval: bool = True
    eval_max_samples: int = 160  # validation originals used by the evaluation
    eval_copies: int = 3  # edited copies per validation original
    eval_variants: tuple[str, ...] = ("untrained", "stage1", "final")
    amp: bool = False  # bf16 autocast on CUDA
    export_onnx: bool = True  # write final/model.onnx: ingest, search and serve run it with onnxruntime


@dataclasses.dataclass
class TrainConfig:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelCfg = dataclasses.field(default_factory=ModelCfg)
    mining: MiningConfig = dataclasses.field(default_factory=MiningConfig)
    stage1: Stage1Config = dataclasses.field(default_factory=Stage1Config)
    stage2: Stage2Config = dataclasses.field(default_factory=Stage2Config)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        cfg = cls()
        for section, values in d.items():
            if section.startswith("_"):  # comments
                continue
            if not hasattr(cfg, section) or not isinstance(values, dict):
                raise ValueError(f"unknown config section {section!r}")
            for k, v in values.items():
                set_value(cfg, f"{section}.{k}", v)
        return cfg


def _coerce(current: Any, field_type: Any, value: Any) -> Any:
    t = str(field_type)
    if isinstance(value, str) and value.lower() in ("none", "null") and "None" in t:
        return None
    if t.startswith("tuple"):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        items = list(value)
        if "int" in t:
            items = [int(v) for v in items]
        return tuple(items)
    if t == "bool":
        if isinstance(value, str):
            if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(f"not a boolean: {value!r}")
            return value.lower() in ("1", "true", "yes")
        return bool(value)
    if t == "int":
        return int(value)
    if t == "float":
        return float(value)
    return None if value is None else str(value)


def set_value(cfg: TrainConfig, dotted: str, value: Any) -> None:
    """Set ``section.key`` to ``value`` (strings are converted to the field's type)."""
    section, _, key = dotted.partition(".")
    sec = getattr(cfg, section, None)
    if sec is None or not dataclasses.is_dataclass(sec):
        raise ValueError(f"unknown config section {section!r} in {dotted!r}")
    fields = {f.name: f for f in dataclasses.fields(sec)}
    if key not in fields:
        raise ValueError(f"unknown config key {dotted!r}; {section} has {sorted(fields)}")
    setattr(sec, key, _coerce(getattr(sec, key), fields[key].type, value))


def load_config(path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None) -> TrainConfig:
    """Defaults, then the file (JSON, or YAML if PyYAML is installed), then the overrides."""
    cfg = TrainConfig()
    if path is not None:
        p = Path(path)
        text = p.read_text()
        if p.suffix in (".yaml", ".yml"):
            import yaml  # optional

            d = yaml.safe_load(text)
        else:
            d = json.loads(text)
        cfg = TrainConfig.from_dict(d)
    items = overrides.items() if isinstance(overrides, dict) else [o.split("=", 1) for o in overrides or []]
    for item in items:
        if len(item) != 2:
            raise ValueError(f"override must be section.key=value, got {item!r}")
        set_value(cfg, item[0], item[1])
    return cfg
