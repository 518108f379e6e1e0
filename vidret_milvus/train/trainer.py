"""Two-stage training of the fingerprint model (patent EP 4 390 725 A1, S201-S210).

Stage 1 (S202-S205): the backbone's trainable blocks and the texture head learn from in-batch
mined triplets with L_em, until the running L_em is at or under a threshold or the step / time
budget is spent.

Stage 2 (S206-S210): per triplet, L_em' trains the texture head alone (its input is detached
from the backbone); L_q (variant v1 adaptive margin, v2 Formula 8, or a fixed margin) trains the
quantization head and the backbone's trainable blocks. It stops when both running losses are
under their thresholds, or at the budget.

Outputs in ``run.out``: ``stage1/`` and ``final/`` checkpoints (load_model(checkpoint=...)),
``state.pt`` (resumable every ``ckpt_every`` steps), ``loss_stage1.csv``, ``loss_stage2.csv``,
``loss.png`` (when matplotlib is installed), ``train_config.json``, ``summary.json`` and
``eval.json``.

Run with ``vidret-milvus train --config configs/gpu.json --out runs/gpu`` (without installing the
package: ``python3 -m vidret_milvus.cli train ...``, as ``scripts/train_gpu.sh`` does).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ..model import FingerprintModel, load_model, save_checkpoint
from ..model.tuning import feature_stats, freeze_batchnorm, set_feature_norm, set_trainable_backbone
from .config import TrainConfig
from .data import PairDataset, SampleSet, StepSampler, cache_ready, prepare_cache, synthetic_images
from .losses import m_em_from_data, stage2_quant_loss, triplet_em
from .mining import batch_triplets

STATE_FILE = "state.pt"
STAGE1_COLUMNS = ["step", "time_s", "l_em", "l_em_ema", "triplets", "active", "lr"]
STAGE2_COLUMNS = ["step", "time_s", "l_em", "l_triplet", "l_coding", "l_q", "l_em_ema", "l_q_ema", "margin", "m_em", "triplets", "lr"]

StepCallback = Callable[[int, int, int, dict[str, float]], None]


@dataclasses.dataclass
class Hooks:
    """What a front end (the CLI's progress bars) wants to hear about."""

    on_stage: Callable[[int, int, int], None] = lambda stage, start, total: None  # noqa: E731
    on_step: StepCallback = lambda stage, step, total, losses: None  # noqa: E731
    log: Callable[[str], None] = print


# ------------------------------------------------------------------------------------- data
def load_samples(cfg: TrainConfig, log: Callable[[str], None] = print) -> tuple[SampleSet, SampleSet]:
    """(train, val) sample sets: the prepared cache (prepared first when missing) or synthetic."""
    if cfg.data.synthetic:
        rng = np.random.default_rng([cfg.run.seed, 99])
        imgs, groups = synthetic_images(cfg.data.synthetic, cfg.data.synthetic_size, rng)
        n_val = max(4, cfg.data.synthetic // 5)
        return (SampleSet.from_arrays(imgs[n_val:], groups[n_val:]), SampleSet.from_arrays(imgs[:n_val], groups[:n_val]))
    cache = Path(cfg.data.cache_dir)
    if not cache_ready(cache):
        log(f"preparing the training cache {cache} from {cfg.data.resources} (needs PyAV)")
        prepare_cache(cfg.data.resources, cache, log=log)
    return SampleSet.load(cache / "train.npz"), SampleSet.load(cache / "val.npz")


def _collate(items: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    a, p, g = zip(*items)
    return torch.stack(a), torch.stack(p), torch.tensor(g, dtype=torch.long)


def batches(ds: PairDataset, start_step: int, batch: int, workers: int, pin: bool) -> Iterator:
    """Endless batches from step ``start_step`` on; the same stream for any worker count."""
    if workers <= 0:
        step = start_step
        while True:
            yield _collate([ds[step * batch + j] for j in range(batch)])
            step += 1
    from torch.utils.data import DataLoader

    dl = DataLoader(ds, batch_size=batch, sampler=StepSampler(start_step, batch), num_workers=workers,
                    collate_fn=_collate, pin_memory=pin, prefetch_factor=4, persistent_workers=False)
    yield from dl


def to_input(u8: torch.Tensor, model: FingerprintModel, device: torch.device) -> torch.Tensor:
    """uint8 (B, S, S, 3) views -> normalised float (B, 3, S, S), as ``to_model_input``."""
    x = u8.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    m = torch.tensor(model.config.mean, device=device).view(1, 3, 1, 1) * 255.0
    s = torch.tensor(model.config.std, device=device).view(1, 3, 1, 1) * 255.0
    return ((x - m) / s).contiguous(memory_format=torch.channels_last)


# ------------------------------------------------------------------------------------ state
@dataclasses.dataclass
class State:
    stage: int = 1
    step: int = 0  # steps done in the current stage
    elapsed: float = 0.0  # training seconds spent in the current stage
    m_em: float = 0.0
    ema: dict[str, float] = dataclasses.field(default_factory=dict)
    stop_reason: dict[str, str] = dataclasses.field(default_factory=dict)
    steps_done: dict[str, int] = dataclasses.field(default_factory=dict)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    probe: dict[str, dict] = dataclasses.field(default_factory=dict)  # validation-pair losses after each stage


class Trainer:
    def __init__(self, cfg: TrainConfig, hooks: Hooks | None = None) -> None:
        self.cfg = cfg
        self.hooks = hooks or Hooks()
        self.out = Path(cfg.run.out)
        self.device = torch.device(cfg.run.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("--device cuda but no CUDA device is available")
        self.amp = bool(cfg.run.amp and self.device.type == "cuda")
        self.state = State()
        self.model: FingerprintModel | None = None
        self.opts: list[torch.optim.Optimizer] = []

    # -- set-up
    def _build_model(self) -> FingerprintModel:
        c = self.cfg.model
        if c.checkpoint:
            model = load_model(checkpoint=c.checkpoint, weights=c.weights)
        else:
            model = load_model(backbone=c.backbone or "tf_efficientnet_lite0", weights=c.weights)
        model.config = dataclasses.replace(model.config, trained=True)
        # Thresholds belong to the weights they were tuned on: the trained checkpoint is saved
        # without any (benchmarks/tune_thresholds.py --write-config gives it its own).
        model.to(self.device)
        set_trainable_backbone(model, c.trainable)
        return model

    def _feats(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        assert m is not None
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            f = m.backbone.forward_head(m.backbone.forward_features(x), pre_logits=True)
        return m.feature_norm(f.float())

    def _dataset(self, stage: int, train: SampleSet) -> PairDataset:
        return PairDataset(train, self.cfg.data.input_size, seed=self.cfg.run.seed * 1000 + stage,
                           pip_other=self.cfg.data.pip_other, n_ops=tuple(self.cfg.data.edits), ops=self.cfg.data.ops)  # type: ignore[arg-type]

    def _backbone_params(self) -> list[torch.nn.Parameter]:
        assert self.model is not None
        return [p for p in self.model.backbone.parameters() if p.requires_grad]

    def _make_opts(self, stage: int) -> None:
        assert self.model is not None
        c = self.cfg.stage1 if stage == 1 else self.cfg.stage2
        bb = self._backbone_params()

        def sgd(groups: list[dict]) -> torch.optim.Optimizer:
            return torch.optim.SGD([g for g in groups if g["params"]], lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)

        if stage == 1:
            self.opts = [sgd([{"params": list(self.model.texture_head.parameters()), "lr": c.lr},
                              {"params": bb, "lr": c.backbone_lr}])]
        else:
            s2 = self.cfg.stage2
            self.opts = [sgd([{"params": list(self.model.texture_head.parameters()), "lr": s2.lr}]),
                         sgd([{"params": list(self.model.quant_head.parameters()), "lr": s2.quant_lr},
                              {"params": bb, "lr": s2.backbone_lr}])]

    def _lr_at(self, stage: int, step: int, elapsed: float) -> float:
        """Cosine decay to 10 % over the budget, after a short linear warm-up. Progress is the
        larger of the step fraction and the time fraction, so a time budget also decays it."""
        c = self.cfg.stage1 if stage == 1 else self.cfg.stage2
        warm = max(1, min(c.warmup, c.steps // 10 or 1))
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, c.steps - warm)
        if c.time_s:
            t = max(t, elapsed / c.time_s)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    def _set_lr(self, stage: int, step: int, elapsed: float = 0.0) -> float:
        f = self._lr_at(stage, step, elapsed)
        for opt in self.opts:
            for g in opt.param_groups:
                g.setdefault("base_lr", g["lr"])
                g["lr"] = g["base_lr"] * f
        c = self.cfg.stage1 if stage == 1 else self.cfg.stage2
        return c.lr * f

    # -- checkpoints
    def save_state(self) -> None:
        assert self.model is not None
        tmp = self.out / (STATE_FILE + ".tmp")
        torch.save({"state": dataclasses.asdict(self.state), "model": self.model.state_dict(),
                    "opts": [o.state_dict() for o in self.opts], "config": self.cfg.to_dict()}, tmp)
        os.replace(tmp, self.out / STATE_FILE)

    def _load_state(self) -> bool:
        path = self.out / STATE_FILE
        if not (self.cfg.run.resume and path.is_file()):
            return False
        blob = torch.load(path, map_location="cpu", weights_only=False)
        assert self.model is not None
        old, new = json.loads(json.dumps(blob["config"])), json.loads(self.cfg.to_json())
        changed = sorted(f"{sec}.{k}" for sec, vals in new.items() for k, v in vals.items() if old.get(sec, {}).get(k) != v)
        if changed:
            self.hooks.log(f"warning: resuming {path} with changed settings: {', '.join(changed)}")
        self.model.load_state_dict(blob["model"])
        self.state = State(**blob["state"])
        if self.state.stage in (1, 2):
            self._make_opts(self.state.stage)
            for o, sd in zip(self.opts, blob["opts"]):
                o.load_state_dict(sd)
        self.state.probe = dict(self.state.probe)
        where = "already finished (--no-resume starts again)" if self.state.stage > 2 else f"stage {self.state.stage}, step {self.state.step}"
        self.hooks.log(f"resumed from {path}: {where}")
        return True

    def _save_model(self, name: str) -> Path:
        assert self.model is not None
        d = save_checkpoint(self.model, self.out / name, include_backbone=list(self.cfg.model.trainable))
        meta = {"stage": name, "m_em": self.state.m_em, "steps": self.state.steps_done, "seconds": self.state.seconds,
                "stop_reason": self.state.stop_reason, "train_config": self.cfg.to_dict()}
        (d / "training.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        return d

    def _export(self, checkpoint: Path) -> None:
        """model.onnx beside the final weights, so that ingest/search/serve run it without torch.
        A failed export is logged, not raised: the trained checkpoint is already safe on disk."""
        from ..errors import ModelError
        from ..model.export import export_checkpoint

        try:
            s = export_checkpoint(checkpoint, weights=self.cfg.model.weights, check=True)
        except (ModelError, ValueError, RuntimeError, OSError, ImportError) as exc:
            self.hooks.log(f"warning: {checkpoint}: no model.onnx written ({exc}); `vidret-milvus export {checkpoint}` retries")
            return
        agree = s["agreement"]
        self.hooks.log(f"exported {s['onnx']} ({int(s['bytes']) / 1e6:.1f} MB; vs torch: cosine >= {agree['min_cosine']:.5f}, "
                       f"{agree['mean_code_bits_differing']:.2f} code bits differ on average)")

    def _csv(self, stage: int) -> tuple[Any, Any]:
        path = self.out / f"loss_stage{stage}.csv"
        cols = STAGE1_COLUMNS if stage == 1 else STAGE2_COLUMNS
        rows: list[dict] = []
        if path.is_file():  # resume: keep the rows up to the resumed step
            with path.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= self.state.step]
        fh = path.open("w", newline="")
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
        return fh, w

    # -- the two stages
    def _stage(self, stage: int, train: SampleSet) -> None:
        assert self.model is not None
        cfg, st = self.cfg, self.state
        c = cfg.stage1 if stage == 1 else cfg.stage2
        if st.step == 0 and not self.opts:
            self._make_opts(stage)
        self.hooks.on_stage(stage, st.step, c.steps)
        fh, writer = self._csv(stage)
        it = batches(self._dataset(stage, train), st.step, cfg.data.batch, cfg.data.workers, self.device.type == "cuda")
        model = self.model
        model.train()
        freeze_batchnorm(model)
        alpha = 0.1
        reason = "step budget"
        t_start = time.perf_counter() - st.elapsed
        try:
            while st.step < c.steps:
                if c.time_s and time.perf_counter() - t_start >= c.time_s:
                    reason = "time budget"
                    break
                a, p, g = next(it)
                lr = self._set_lr(stage, st.step, time.perf_counter() - t_start)
                x = to_input(torch.cat([a, p]), model, self.device)
                g = g.to(self.device)
                b = len(a)
                f = self._feats(x)
                if stage == 1:
                    e = model.texture_head(f)
                    ai, ni = batch_triplets(e[:b], g, cfg.mining.k_percent, cfg.mining.m)
                    if len(ai) == 0:
                        st.step += 1
                        continue
                    l_em = triplet_em(e[:b][ai], e[b:][ai], e[:b][ni], cfg.stage1.margin_em)
                    loss = l_em.mean()
                    losses = {"l_em": float(loss.detach())}
                else:
                    e = model.texture_head(f.detach())  # L_em' reaches the texture head only
                    u = model.quant_head(f)
                    ai, ni = batch_triplets(e[:b], g, cfg.mining.k_percent, cfg.mining.m)
                    if len(ai) == 0:
                        st.step += 1
                        continue
                    l_em = triplet_em(e[:b][ai], e[b:][ai], e[:b][ni], cfg.stage1.margin_em)
                    q = stage2_quant_loss(
                        cfg.stage2.variant, l_em, u[:b][ai], u[b:][ai], u[:b][ni], u, m_em=st.m_em,
                        margin0=cfg.stage2.margin0, margin_em=cfg.stage1.margin_em, fixed_margin=cfg.stage2.fixed_margin,
                        w21=cfg.stage2.w21, w22=cfg.stage2.w22, max_margin=cfg.stage2.max_margin,
                    )
                    loss = l_em.mean() + q["l_q"]
                    losses = {"l_em": float(l_em.detach().mean()), **{k: float(v.detach()) for k, v in q.items()}}
                if not math.isfinite(float(loss.detach())):
                    raise FloatingPointError(f"stage {stage} step {st.step}: loss is {float(loss.detach())}")
                for o in self.opts:
                    o.zero_grad(set_to_none=True)
                loss.backward()
                for o in self.opts:
                    o.step()
                st.step += 1
                for k in ("l_em", "l_q"):
                    if k in losses:
                        key = f"{k}{stage}"
                        st.ema[key] = losses[k] if key not in st.ema else (1 - alpha) * st.ema[key] + alpha * losses[k]
                elapsed = time.perf_counter() - t_start
                st.elapsed = elapsed
                row: dict[str, Any] = {"step": st.step, "time_s": round(elapsed, 3), "l_em": round(losses["l_em"], 6),
                                       "triplets": int(len(ai)), "lr": round(lr, 6)}
                if stage == 1:
                    row.update({"l_em_ema": round(st.ema["l_em1"], 6), "active": round(float((l_em > 0).float().mean()), 4)})
                else:
                    row.update({k: round(losses[k], 6) for k in ("l_triplet", "l_coding", "l_q")})
                    row.update({"l_em_ema": round(st.ema["l_em2"], 6), "l_q_ema": round(st.ema["l_q2"], 6),
                                "margin": round(losses["margin"], 4), "m_em": round(st.m_em, 6)})
                if st.step % max(1, cfg.run.log_every) == 0 or st.step == c.steps:
                    writer.writerow(row)
                    fh.flush()
                self.hooks.on_step(stage, st.step, c.steps, {k: v for k, v in row.items() if k not in ("step",)})
                if cfg.run.ckpt_every and st.step % cfg.run.ckpt_every == 0:
                    self.save_state()
                if st.step >= c.warmup:
                    if stage == 1 and st.ema["l_em1"] <= cfg.stage1.threshold:
                        reason = "loss threshold"
                        break
                    if stage == 2 and st.ema["l_em2"] <= cfg.stage2.threshold_em and st.ema["l_q2"] <= cfg.stage2.threshold_q:
                        reason = "loss thresholds"
                        break
        finally:
            fh.close()
            del it
        st.stop_reason[f"stage{stage}"] = reason
        st.steps_done[f"stage{stage}"] = st.step
        st.seconds[f"stage{stage}"] = round(st.elapsed, 1)
        self.hooks.log(f"stage {stage}: {st.step} steps in {st.elapsed:.0f} s, stopped by {reason}; "
                       + ", ".join(f"{k} {v:.4f}" for k, v in st.ema.items() if k.endswith(str(stage))))

    @torch.no_grad()
    def _feature_norm_from_data(self, train: SampleSet) -> None:
        assert self.model is not None
        ds = PairDataset(train, self.cfg.data.input_size, seed=self.cfg.run.seed * 1000 + 7, pip_other=0.0)
        n, b = self.cfg.model.feature_norm_samples, 32
        self.model.eval()

        def gen() -> Iterator[torch.Tensor]:
            for s in range(0, n, b):
                a, p, _ = _collate([ds[i] for i in range(s, min(n, s + b))])
                yield to_input(torch.cat([a, p]), self.model, self.device)  # type: ignore[arg-type]

        mean, std = feature_stats(self.model, gen())
        set_feature_norm(self.model, mean, std)

    @torch.no_grad()
    def _stage2_init(self, train: SampleSet) -> float:
        """Start of stage 2, on ``max(64, 8 * batch)`` training samples seen by the stage-1 model:
        centre the quantization head (``stage2.center_quant``: each bit's bias set so that the bit
        splits the samples in half; stage 1 moved the features the untrained hyperplanes were
        centred on, and an off-centre head lets every code collapse to one value), then measure
        M_em (unless configured). Returns M_em."""
        assert self.model is not None
        self.model.eval()
        ds = PairDataset(train, self.cfg.data.input_size, seed=self.cfg.run.seed * 1000 + 8, pip_other=0.0)
        feats, gs = [], []
        n = max(64, 8 * self.cfg.data.batch)
        for s in range(0, n, 32):
            a, _, g = _collate([ds[i] for i in range(s, min(n, s + 32))])
            feats.append(self._feats(to_input(a, self.model, self.device))), gs.append(g)
        f = torch.cat(feats)
        if self.cfg.stage2.center_quant:
            lin = self.model.quant_head.proj
            lin.bias.sub_((f @ lin.weight.T + lin.bias).median(0).values)
        if self.cfg.stage2.m_em:
            return float(self.cfg.stage2.m_em)
        return m_em_from_data(self.model.texture_head(f).cpu(), self.model.quant_head(f).cpu(), torch.cat(gs))

    @torch.no_grad()
    def probe(self, samples: SampleSet, n_batches: int = 4) -> dict[str, float]:
        """Losses of the current model on fixed pairs of ``samples`` (the same pairs every time):
        L_em over mined triplets, and the Hamming distances of copies and of the mined negatives."""
        assert self.model is not None
        was = self.model.training
        self.model.eval()
        ds = PairDataset(samples, self.cfg.data.input_size, seed=self.cfg.run.seed * 1000 + 9, pip_other=self.cfg.data.pip_other,
                         n_ops=tuple(self.cfg.data.edits), ops=self.cfg.data.ops)  # type: ignore[arg-type]
        b = self.cfg.data.batch
        l_em, hp, hn = [], [], []
        for k in range(n_batches):
            a, p, g = _collate([ds[k * b + j] for j in range(b)])
            f = self._feats(to_input(torch.cat([a, p]), self.model, self.device))
            e, u = self.model.texture_head(f), self.model.quant_head(f)
            ai, ni = batch_triplets(e[:b], g.to(self.device), self.cfg.mining.k_percent, self.cfg.mining.m)
            l_em.append(triplet_em(e[:b][ai], e[b:][ai], e[:b][ni], self.cfg.stage1.margin_em))
            bits = (u >= 0).float()
            hp.append((bits[:b][ai] != bits[b:][ai]).sum(1)), hn.append((bits[:b][ai] != bits[:b][ni]).sum(1))
        self.model.train(was)
        return {"l_em": round(float(torch.cat(l_em).mean()), 5), "hamming_copy": round(float(torch.cat(hp).float().mean()), 2),
                "hamming_negative": round(float(torch.cat(hn).float().mean()), 2)}

    def run(self) -> dict:
        cfg, st = self.cfg, self.state
        torch.set_num_threads(cfg.run.threads)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "train_config.json").write_text(cfg.to_json() + "\n")
        t0 = time.perf_counter()
        train, val = load_samples(cfg, self.hooks.log)
        self.hooks.log(f"data: {len(train)} training samples ({len(set(train.groups))} groups), {len(val)} validation")
        self.model = self._build_model()
        resumed = self._load_state()
        st = self.state  # replaced by a resume
        if not resumed and cfg.model.feature_norm == "data" and not cfg.model.checkpoint:
            self._feature_norm_from_data(train)
        if not resumed:
            st.probe["start"] = self.probe(val)
        if st.stage == 1:
            if cfg.stage1.steps > 0:
                self._stage(1, train)
                st.probe["stage1"] = self.probe(val)
                self._save_model("stage1")
            st.stage, st.step, st.elapsed, self.opts = 2, 0, 0.0, []
            self.save_state()
        if st.stage == 2:
            if cfg.stage2.enabled and cfg.stage2.steps > 0:
                if st.step == 0 or not st.m_em:
                    st.m_em = self._stage2_init(train)
                    self.hooks.log(f"M_em = {st.m_em:.5f} texture units per bit"
                                   + (" (measured on training data)" if not cfg.stage2.m_em else " (configured)"))
                self._stage(2, train)
                st.probe["stage2"] = self.probe(val)
            st.stage, self.opts = 3, []
            self.save_state()
        final = self._save_model("final")
        if cfg.run.export_onnx:
            self._export(final)
        summary = {"out": str(self.out), "final": str(final), "m_em": st.m_em, "steps": st.steps_done, "seconds": st.seconds,
                   "stop_reason": st.stop_reason, "ema": st.ema, "probe_val": st.probe, "variant": cfg.stage2.variant if cfg.stage2.enabled else None,
                   "wall_s": round(time.perf_counter() - t0, 1)}
        plot_losses(self.out)
        if cfg.run.eval:
            summary["eval"] = self.evaluate(val)
            (self.out / "eval.json").write_text(json.dumps(summary["eval"], indent=1) + "\n")
        summary["wall_s"] = round(time.perf_counter() - t0, 1)
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        return summary

    def evaluate(self, val: SampleSet) -> dict:
        from .evaluate import build_eval_set, evaluate_model

        cfg = self.cfg
        results: dict[str, Any] = {}
        es = None
        for name in cfg.run.eval_variants:
            t = time.perf_counter()
            if name == "untrained":
                model = load_model(backbone=cfg.model.backbone or "tf_efficientnet_lite0", weights=cfg.model.weights, device=str(self.device))
            elif name == "stage1":
                if not (self.out / "stage1" / "config.json").is_file():
                    continue
                model = load_model(checkpoint=self.out / "stage1", weights=cfg.model.weights, device=str(self.device), runtime="torch")
            elif name == "final":
                model = load_model(checkpoint=self.out / "final", weights=cfg.model.weights, device=str(self.device), runtime="torch")
            else:
                raise ValueError(f"unknown eval variant {name!r}: untrained, stage1 or final")
            if es is None:
                es = build_eval_set(val, cfg.run.eval_max_samples, cfg.run.eval_copies, model.config.resize_size)
            label = name if name != "final" else (f"stage2_{cfg.stage2.variant}" if cfg.stage2.enabled and cfg.stage2.steps else "final")
            results[label] = evaluate_model(model, es) | {"model_id": model.model_id, "seconds": round(time.perf_counter() - t, 1)}
            self.hooks.log(f"eval {label}: " + _short(results[label]))
        return results


def _short(r: dict) -> str:
    e, c = r["embedding"], r["codes"]
    return (f"emb mAP {e['map']:.3f} trip {e['triplet_acc']:.3f} top1 {e['top1']:.3f} | codes mAP {c['map']:.3f} "
            f"trip {c['triplet_acc']:.3f} top1 {c['top1']:.3f} pos {c['pos_mean']:.1f} neg {c['neg_mean']:.1f} bits "
            f"| spearman {r['spearman_hamming_vs_embedding']:.3f}")


def plot_losses(out: str | Path) -> Path | None:
    """``loss.png`` from the stage CSVs; None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    out = Path(out)
    data = {}
    for s in (1, 2):
        p = out / f"loss_stage{s}.csv"
        if p.is_file():
            with p.open() as f:
                rows = list(csv.DictReader(f))
            if rows:
                data[s] = rows
    if not data:
        return None
    fig, axes = plt.subplots(1, len(data), figsize=(6 * len(data), 4), squeeze=False)
    for ax, (s, rows) in zip(axes[0], data.items()):
        step = [int(r["step"]) for r in rows]
        keys = ["l_em", "l_em_ema"] if s == 1 else ["l_em", "l_triplet", "l_coding", "l_q", "l_q_ema"]
        for k in keys:
            ax.plot(step, [float(r[k]) for r in rows], label=k, lw=1.5 if "ema" in k else 0.6)
        ax.set_title(f"stage {s}" + (" (backbone + texture head)" if s == 1 else " (texture head | backbone + quant head)"))
        ax.set_xlabel("step")
        if s == 2:  # zeros (satisfied hinges) are common: symmetric log
            ax.set_yscale("symlog", linthresh=1e-3)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "loss.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def train(cfg: TrainConfig, hooks: Hooks | None = None) -> dict:
    """Run (or resume) training as configured; returns the summary (also ``summary.json``)."""
    return Trainer(cfg, hooks).run()


def evaluate_checkpoints(checkpoints: list[str | None], cache_dir: str = "train_cache", max_samples: int = 160,
                         copies: int = 3, device: str = "cpu", weights: str | None = None, threads: int = 2) -> dict:
    """Evaluation JSON for checkpoints (None = untrained heads), on the cache's validation split."""
    from .evaluate import build_eval_set, evaluate_model

    torch.set_num_threads(threads)
    val = SampleSet.load(Path(cache_dir) / "val.npz")
    res: dict[str, Any] = {}
    es = None
    for ck in checkpoints:
        model = load_model(checkpoint=ck, weights=weights, device=device, runtime="torch") if ck else load_model(backbone="tf_efficientnet_lite0", weights=weights, device=device)
        if es is None:
            es = build_eval_set(val, max_samples, copies, model.config.resize_size)
        res[ck or "untrained"] = evaluate_model(model, es) | {"model_id": model.model_id}
    return res


def combine_evals(paths: list[str]) -> dict:
    """Merge eval.json files of several runs into one table keyed by run/variant."""
    out: dict[str, Any] = {}
    for p in paths:
        run = Path(p).parent.name
        summary_path = Path(p).parent / "summary.json"
        for k, v in json.loads(Path(p).read_text()).items():
            out[f"{run}/{k}"] = v
        if summary_path.is_file():
            s = json.loads(summary_path.read_text())
            out[f"{run}/_training"] = {k: s.get(k) for k in ("steps", "seconds", "stop_reason", "m_em", "ema", "probe_val", "variant", "wall_s")}
    return out
