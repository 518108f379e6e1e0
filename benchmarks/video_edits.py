"""Edits that copiers apply to video frames, for the benchmark dataset (seeded, PIL + numpy).

Each edit is ``fn(frame RGB uint8, rng, ctx) -> frame`` with per-query parameters drawn
once (``make_edit`` returns a closure), so the whole query gets one consistent edit.
Temporal edits (speed change, frame-rate change) are handled by make_dataset.py.
The hard set stacks 2-3 edits per query (``draw_stack`` + ``compose``) and uses ``pip_inset``
(the copy as an inset of 25-45 % of the frame area over other, moving footage).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

Edit = Callable[[np.ndarray], np.ndarray]

EDIT_TYPES = (
    "crop", "flip", "colour", "blur", "caption", "logo", "pip", "padding", "lowq", "fps_change", "speed", "perspective", "rotation",
)

HARD_EDIT_TYPES = tuple(k if k != "pip" else "pip_inset" for k in EDIT_TYPES)
TEMPORAL = ("fps_change", "speed")
# Order in which stacked edits are applied: content edits, then the copy is placed in a frame
# (inset / padding), then overlays, quality loss, and last the camcorder filming the screen.
STACK_ORDER = {"crop": 0, "flip": 0, "rotation": 0, "colour": 1, "blur": 1, "pip": 2, "pip_inset": 2, "padding": 2,
               "caption": 3, "logo": 3, "lowq": 4, "perspective": 5, "fps_change": 6, "speed": 6}

_WORDS = "breaking news exclusive full movie watch now hd free upload original clip best moments".split()


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype("DejaVuSans-Bold.ttf", size)
    except OSError:
        return ImageFont.load_default()


def draw_stack(rng: np.random.Generator, n: int, kinds: tuple[str, ...] = HARD_EDIT_TYPES) -> list[str]:
    """``n`` distinct edit kinds in the order they are applied: at most one temporal edit, at
    most one that places the copy in a frame (pip, pip_inset, padding)."""
    out: list[str] = []
    for k in rng.permutation(np.asarray(kinds)).tolist():
        if len(out) == n:
            break
        if any(STACK_ORDER[k] == STACK_ORDER[o] == s for o in out for s in (2, 6)):
            continue
        out.append(k)
    return sorted(out, key=lambda k: STACK_ORDER[k])


def compose(edits: list[Edit]) -> Edit:
    """One edit applying ``edits`` in order."""

    def stacked(f: np.ndarray) -> np.ndarray:
        for e in edits:
            f = e(f)
        return f

    return stacked


def make_edit(kind: str, rng: np.random.Generator, background: np.ndarray | list[np.ndarray] | None = None) -> Edit:
    """A frame edit of ``kind`` with parameters drawn from ``rng``. ``background`` (pip,
    pip_inset): one frame, or a list of frames played back and forth, one per call."""
    if kind == "crop":
        s = rng.uniform(0.6, 0.8)
        ox, oy = rng.uniform(0, 1 - s, 2)

        def crop(f: np.ndarray) -> np.ndarray:
            h, w = f.shape[:2]
            box = (int(ox * w), int(oy * h), int((ox + s) * w), int((oy + s) * h))
            return np.asarray(Image.fromarray(f).crop(box).resize((w, h), Image.Resampling.BILINEAR))

        return crop
    if kind == "flip":
        return lambda f: np.ascontiguousarray(f[:, ::-1])
    if kind == "colour":
        b, c, s = rng.uniform(0.65, 1.4), rng.uniform(0.65, 1.4), rng.uniform(0.3, 1.8)
        shift = rng.integers(-25, 25, 3)

        def colour(f: np.ndarray) -> np.ndarray:
            img = ImageEnhance.Color(ImageEnhance.Contrast(ImageEnhance.Brightness(Image.fromarray(f)).enhance(b)).enhance(c)).enhance(s)
            return np.clip(np.asarray(img, np.int16) + shift, 0, 255).astype(np.uint8)

        return colour
    if kind == "blur":
        r = rng.uniform(2.0, 4.0)
        return lambda f: np.asarray(Image.fromarray(f).filter(ImageFilter.GaussianBlur(r)))
    if kind == "caption":
        text = " ".join(rng.choice(_WORDS, 4))
        colour_ = tuple(int(v) for v in rng.integers(0, 255, 3))

        def caption(f: np.ndarray) -> np.ndarray:
            img = Image.fromarray(f).convert("RGBA")
            h, w = f.shape[:2]
            over = Image.new("RGBA", img.size, (0, 0, 0, 0))
            d = ImageDraw.Draw(over)
            d.rectangle((0, int(h * 0.78), w, h), fill=(*colour_, 170))
            d.text((int(w * 0.04), int(h * 0.81)), text.upper(), font=_font(max(12, h // 12)), fill=(255, 255, 255, 255))
            return np.asarray(Image.alpha_composite(img, over).convert("RGB"))

        return caption
    if kind == "logo":
        corner = int(rng.integers(0, 4))
        text = str(rng.choice(["TV24", "HDX", "CLIPS", "WOW"]))

        def logo(f: np.ndarray) -> np.ndarray:
            img = Image.fromarray(f).convert("RGBA")
            h, w = f.shape[:2]
            over = Image.new("RGBA", img.size, (0, 0, 0, 0))
            d = ImageDraw.Draw(over)
            bw, bh = int(w * 0.22), int(h * 0.16)
            x = int(w * 0.03) if corner % 2 == 0 else w - bw - int(w * 0.03)
            y = int(h * 0.04) if corner < 2 else h - bh - int(h * 0.04)
            d.ellipse((x, y, x + bw, y + bh), fill=(255, 200, 0, 150))
            d.text((x + bw // 5, y + bh // 4), text, font=_font(max(10, bh // 2)), fill=(20, 20, 20, 230))
            return np.asarray(Image.alpha_composite(img, over).convert("RGB"))

        return logo
    if kind == "pip":
        scale = rng.uniform(0.5, 0.7)
        pos = rng.uniform(0.05, 0.95 - scale, 2)

        def pip(f: np.ndarray) -> np.ndarray:
            h, w = f.shape[:2]
            base = Image.fromarray(background).resize((w, h)) if background is not None else Image.new("RGB", (w, h), (40, 40, 40))
            small = Image.fromarray(f).resize((int(w * scale), int(h * scale)), Image.Resampling.BILINEAR)
            base.paste(small, (int(pos[0] * w), int(pos[1] * h)))
            return np.asarray(base)

        return pip
    if kind == "pip_inset":
        area = rng.uniform(0.25, 0.45)
        scale = float(np.sqrt(area))
        pos = rng.uniform(0.02, 0.98 - scale, 2)
        frames = [background] if isinstance(background, np.ndarray) else list(background or [])
        calls = [0]

        def pip_inset(f: np.ndarray) -> np.ndarray:
            h, w = f.shape[:2]
            if frames:
                n, i = len(frames), calls[0]
                j = i % (2 * n - 1) if n > 1 else 0
                bg = frames[j if j < n else 2 * n - 2 - j]
                base = Image.fromarray(bg).resize((w, h)) if bg.shape[:2] != (h, w) else Image.fromarray(bg.copy())
            else:
                base = Image.new("RGB", (w, h), (40, 40, 40))
            calls[0] += 1
            small = Image.fromarray(f).resize((max(2, int(w * scale)), max(2, int(h * scale))), Image.Resampling.BILINEAR)
            base.paste(small, (int(pos[0] * w), int(pos[1] * h)))
            return np.asarray(base)

        return pip_inset
    if kind == "padding":
        scale = rng.uniform(0.7, 0.85)
        fill = tuple(int(v) for v in rng.integers(0, 60, 3))

        def padding(f: np.ndarray) -> np.ndarray:
            h, w = f.shape[:2]
            canvas = Image.new("RGB", (w, h), fill)
            sw, sh = (int(w * scale), h) if rng_pad_vertical else (w, int(h * scale))
            canvas.paste(Image.fromarray(f).resize((sw, sh), Image.Resampling.BILINEAR), ((w - sw) // 2, (h - sh) // 2))
            return np.asarray(canvas)

        rng_pad_vertical = bool(rng.integers(0, 2))
        return padding
    if kind == "lowq":
        factor = rng.uniform(2.5, 4.0)

        def lowq(f: np.ndarray) -> np.ndarray:
            h, w = f.shape[:2]
            small = Image.fromarray(f).resize((max(16, int(w / factor)), max(16, int(h / factor))), Image.Resampling.BILINEAR)
            return np.asarray(small.resize((w, h), Image.Resampling.NEAREST))

        return lowq
    if kind == "perspective":
        k = rng.uniform(0.06, 0.14)
        dark = rng.uniform(0.65, 0.85)
        noise_rng = np.random.default_rng(int(rng.integers(0, 2**31)))

        def perspective(f: np.ndarray) -> np.ndarray:
            h, w = f.shape[:2]
            src = [(0, 0), (w, 0), (w, h), (0, h)]
            dst = [(w * k, h * k * 0.6), (w * (1 - k * 0.5), 0), (w, h), (w * k * 0.4, h * (1 - k))]
            coeffs = _perspective_coeffs(dst, src)
            img = Image.fromarray(f).transform((w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR, fillcolor=(10, 10, 10))
            out = np.asarray(img, np.float32) * dark + noise_rng.normal(0, 6, (h, w, 3))
            return np.clip(out, 0, 255).astype(np.uint8)

        return perspective
    if kind == "rotation":
        angle = float(rng.uniform(5, 15) * rng.choice([-1, 1]))

        def rotation(f: np.ndarray) -> np.ndarray:
            h, w = f.shape[:2]
            img = Image.fromarray(f).rotate(angle, Image.Resampling.BILINEAR, expand=False)
            m = 0.12
            return np.asarray(img.crop((int(w * m), int(h * m), int(w * (1 - m)), int(h * (1 - m)))).resize((w, h)))

        return rotation
    if kind in ("fps_change", "speed"):  # temporal: frames untouched here
        return lambda f: f
    raise ValueError(f"unknown edit {kind!r}")


def _perspective_coeffs(pa: list[tuple[float, float]], pb: list[tuple[float, float]]) -> list[float]:
    rows = []
    for (x, y), (u, v) in zip(pa, pb):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    a = np.asarray(rows, np.float64)
    b = np.asarray(pb, np.float64).reshape(8)
    return np.linalg.solve(a, b).tolist()
