"""The whole fingerprint model: backbone -> (texture head || quantization head)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .backbone import build_backbone
from .config import ModelConfig, Precision  # noqa: F401  (re-exported: they used to live here)
from .heads import FeatureNorm, QuantizationHead, TextureHead, pack_codes
from .preprocess import to_model_input


class FingerprintModel(nn.Module):
    """Backbone + feature standardisation + texture head + quantization head.

    Build it with :func:`vidret_milvus.model.load_model`; the constructor does no I/O and
    leaves the backbone uninitialised.
    """

    runtime = "torch"  # ExportedOnnxModel / OnnxFingerprintModel say "onnxruntime"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone)
        self.feature_norm = FeatureNorm(config.num_features)
        self.texture_head = TextureHead(config.num_features, config.embed_dim)
        self.quant_head = QuantizationHead(config.num_features, config.code_bits)
        self.precision = Precision.fp32
        # The checkpoint folder it was loaded from (None: built untrained). Its search
        # settings are read from there, beside the model (model.settings.thresholds_for).
        self.source: str | None = None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (B, F), standardised."""
        f = self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)
        return self.feature_norm(f.float())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings (B, D) L2-normalised, u (B, bits) in (-1, 1))."""
        f = self.features(x)
        return self.texture_head(f), self.quant_head(f)

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        c = self.config
        return to_model_input(frames, c.input_size, c.resize_size, c.mean, c.std)

    @torch.inference_mode()
    def embed_frames(self, frames: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """RGB uint8 frames (N, H, W, 3) -> (embeddings float32 (N, D), codes uint8 (N, bits/8))."""
        if self.training:
            raise RuntimeError("embed_frames needs eval mode")
        n = len(frames)
        embs = np.empty((n, self.config.embed_dim), np.float32)
        codes = np.empty((n, self.config.code_bits // 8), np.uint8)
        device = next(self.parameters()).device
        for start in range(0, n, batch_size):
            x = self.preprocess(frames[start : start + batch_size]).to(device)
            with torch.autocast(
                device.type, dtype=torch.bfloat16, enabled=self.precision is Precision.bf16
            ):
                f = self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)
            f = self.feature_norm(f.float())
            e, u = self.texture_head(f), self.quant_head(f)
            embs[start : start + len(x)] = e.cpu().numpy()
            codes[start : start + len(x)] = pack_codes(u)
        return embs, codes
