"""Edited copies of an image, made the way copies are made: crop, flip, colour, blur, captions and
logos, JPEG re-encode, picture-in-picture, padding, perspective, rotation, grayscale.

Everything is deterministic given the ``np.random.Generator`` passed in (no global seeds), and
needs only numpy and Pillow (the GPU machine has no PyAV and no OpenCV).
"""

from __future__ import annotations

import io
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

Op = Callable[[Image.Image, np.random.Generator, "Image.Image | None"], Image.Image]

_WORDS = ("LIVE", "NEWS", "HD", "EXCLUSIVE", "FULL MOVIE", "watch now", "@channel", "2024", "REUPLOAD",
          "subscribe", "BREAKING", "Episode 3", "FREE", "1080p", "TV", "www.example.com", "mirror #2")


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _color(rng: np.random.Generator, alpha: int | None = None) -> tuple[int, ...]:
    c = tuple(int(v) for v in rng.integers(0, 256, 3))
    return c if alpha is None else (*c, alpha)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def crop(img: Image.Image, rng: np.random.Generator, _other: Image.Image | None = None) -> Image.Image:
    """Keep 40-90 % of the area, aspect ratio jittered a little, anywhere in the frame."""
    w, h = img.size
    area = _u(rng, 0.4, 0.9)
    ratio = np.exp(_u(rng, -0.2, 0.2))
    cw = int(min(w, round(w * np.sqrt(area) * ratio)))
    ch = int(min(h, round(h * np.sqrt(area) / ratio)))
    x = int(rng.integers(0, w - cw + 1))
    y = int(rng.integers(0, h - ch + 1))
    return img.crop((x, y, x + cw, y + ch))


def flip(img: Image.Image, rng: np.random.Generator, _other: Image.Image | None = None) -> Image.Image:
    return ImageOps.mirror(img)


def colour(img: Image.Image, rng: np.random.Generator, _other: Image.Image | None = None) -> Image.Image:
    """Brightness, contrast and saturation jitter, and a hue-like channel gain."""
    img = ImageEnhance.Brightness(img).enhance(_u(rng, 0.6, 1.4))
    img = ImageEnhance.Contrast(img).enhance(_u(rng, 0.6, 1.4))
    img = ImageEnhance.Color(img).enhance(_u(rng, 0.5, 1.5))
    if rng.random() < 0.5:
        gains = rng.uniform(0.85, 1.15, 3).astype(np.float32)
        a = np.asarray(img).astype(np.float32) * gains
        img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    return img


def blur(img: Image.Image, rng: np.random.Generator, _other: Image.Image | None = None) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(radius=_u(rng, 0.6, 2.5) * max(img.size) / 512))


def overlay(img: Image.Image, rng: np.random.Generator, _other: Image.Image | None = None) -> Image.Image:
    """Captions (text, optionally on a bar) and logos (shapes, semi-transparent) drawn on top."""
    img = img.convert("RGBA")
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    w, h = img.size
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.random()
        if kind < 0.5:  # caption
            text = " ".join(rng.choice(_WORDS, size=int(rng.integers(1, 4))))
            size = max(8, int(h * _u(rng, 0.05, 0.12)))
            font = _font(size)
            x, y = int(rng.integers(0, max(1, w // 2))), int(rng.integers(0, max(1, h - size)))
            if rng.random() < 0.5:
                draw.rectangle((0, y - 2, w, y + size + 4), fill=_color(rng, int(rng.integers(120, 230))))
            draw.text((x, y), text, fill=_color(rng, 255), font=font)
        elif kind < 0.8:  # logo: a few shapes in a corner
            s = int(min(w, h) * _u(rng, 0.1, 0.25))
            cx = int(rng.choice([s // 2 + 4, w - s // 2 - 4]))
            cy = int(rng.choice([s // 2 + 4, h - s // 2 - 4]))
            a = int(rng.integers(140, 256))
            draw.ellipse((cx - s // 2, cy - s // 2, cx + s // 2, cy + s // 2), fill=_color(rng, a))
            draw.rectangle((cx - s // 4, cy - s // 4, cx + s // 4, cy + s // 4), fill=_color(rng, a))
            draw.text((cx - s // 4, cy - s // 8), "TV", fill=_color(rng, 255), font=_font(max(8, s // 3)))
        else:  # a banner or box
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            x1, y1 = x0 + int(w * _u(rng, 0.1, 0.4)), y0 + int(h * _u(rng, 0.05, 0.2))
            draw.rectangle((x0, y0, x1, y1), fill=_color(rng, int(rng.integers(100, 256))))
    return Image.alpha_composite(img, layer).convert("RGB")


def jpeg(img: Image.Image, rng: np.random.Generator, _other: Image.Image | None = None) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(rng.integers(15, 60)))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def pip(img: Image.Image, rng: np.random.Generator, other: Image.Image | None = None) -> Image.Image:
    """Picture in picture: the image, shrunk to 55-85 % of the width, pasted on a background
    (another picture when given, else a flat or noisy colour)."""
    w, h = img.size
    if other is not None:
        bg = ImageOps.fit(other.convert("RGB"), (w, h), Image.Resampling.BILINEAR)
    elif rng.random() < 0.5:
        bg = Image.new("RGB", (w, h), _color(rng))
    else:
        bg = Image.fromarray(rng.integers(0, 256, (max(1, h // 8), max(1, w // 8), 3), dtype=np.uint8)).resize((w, h))
    s = _u(rng, 0.55, 0.85)
    sw, sh = max(1, int(w * s)), max(1, int(h * s))
    small = img.resize((sw, sh), Image.Resampling.BILINEAR)
    x, y = int(rng.integers(0, w - sw + 1)), int(rng.integers(0, h - sh + 1))
    bg.paste(small, (x, y))
    return bg


def pad(img: Image.Image, rng: np.random.Generator, _other: Image.Image | None = None) -> Image.Image:
    """Letterbox / pillarbox / border in a flat colour (black most of the time)."""
    w, h = img.size
    fill = (0, 0, 0) if rng.random() < 0.6 else _color(rng)
    if rng.random() < 0.5:  # letterbox to a taller frame
        extra = int(h * _u(rng, 0.1, 0.5))
        left = right = 0
        top = int(rng.integers(0, extra + 1))
        bottom = extra - top
    else:
        extra = int(w * _u(rng, 0.1, 0.5))
        top = bottom = 0
        left = int(rng.integers(0, extra + 1))
        right = extra - left
    return ImageOps.expand(img, border=(left, top, right, bottom), fill=fill)


def perspective(img: Image.Image, rng: np.random.Generator, _other: Image.Image | None = None) -> Image.Image:
    """A camera-filmed-screen look: each corner moved by up to 12 % of the size."""
    w, h = img.size
    d = 0.12
    src = [(0, 0), (w, 0), (w, h), (0, h)]
    dst = [(x + _u(rng, -d, d) * w, y + _u(rng, -d, d) * h) for x, y in src]
    # Solve the 8 coefficients mapping output (dst) to input (src) coordinates.
    a, b = [], []
    for (xd, yd), (xs, ys) in zip(dst, src):
        a.append([xd, yd, 1, 0, 0, 0, -xs * xd, -xs * yd])
        a.append([0, 0, 0, xd, yd, 1, -ys * xd, -ys * yd])
        b.extend([xs, ys])
    coeffs = np.linalg.solve(np.asarray(a, np.float64), np.asarray(b, np.float64))
    return img.transform((w, h), Image.Transform.PERSPECTIVE, tuple(coeffs), Image.Resampling.BILINEAR)


def rotate(img: Image.Image, rng: np.random.Generator, _other: Image.Image | None = None) -> Image.Image:
    angle = _u(rng, 3, 15) * (1 if rng.random() < 0.5 else -1)
    out = img.rotate(angle, resample=Image.Resampling.BILINEAR, expand=False, fillcolor=_color(rng) if rng.random() < 0.3 else (0, 0, 0))
    if rng.random() < 0.5:  # zoom in so that no corner is blank
        w, h = img.size
        f = 1.0 / (np.cos(np.radians(abs(angle))) + np.sin(np.radians(abs(angle))) * max(w / h, h / w))
        cw, ch = int(w * f), int(h * f)
        out = out.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch))
    return out


def grayscale(img: Image.Image, rng: np.random.Generator, _other: Image.Image | None = None) -> Image.Image:
    return ImageOps.grayscale(img).convert("RGB")


OPS: dict[str, Op] = {
    "crop": crop, "flip": flip, "colour": colour, "blur": blur, "overlay": overlay, "jpeg": jpeg,
    "pip": pip, "pad": pad, "perspective": perspective, "rotate": rotate, "grayscale": grayscale,
}
# Relative frequencies: the common edits of re-uploads first.
WEIGHTS: dict[str, float] = {
    "crop": 3.0, "flip": 1.0, "colour": 2.0, "blur": 1.0, "overlay": 2.0, "jpeg": 2.0,
    "pip": 1.0, "pad": 1.5, "perspective": 1.0, "rotate": 1.0, "grayscale": 0.7,
}
# Geometry first, then pixels, then what is drawn on top, then the re-encode.
_ORDER = ("crop", "rotate", "perspective", "flip", "pip", "pad", "colour", "grayscale", "blur", "overlay", "jpeg")


def random_edit(
    img: Image.Image | np.ndarray,
    rng: np.random.Generator,
    other: Image.Image | np.ndarray | None = None,
    n_ops: tuple[int, int] = (1, 4),
    ops: tuple[str, ...] | None = None,
) -> Image.Image:
    """An edited copy of ``img``: ``n_ops[0]``..``n_ops[1]`` distinct edits drawn by ``WEIGHTS``
    (restricted to ``ops`` when given), applied in a fixed, plausible order."""
    pil = Image.fromarray(img) if isinstance(img, np.ndarray) else img.convert("RGB")
    oth = Image.fromarray(other) if isinstance(other, np.ndarray) else other
    names = list(ops or OPS)
    for n in names:
        if n not in OPS:
            raise ValueError(f"unknown edit {n!r}; known: {sorted(OPS)}")
    p = np.asarray([WEIGHTS[n] for n in names], np.float64)
    k = int(rng.integers(n_ops[0], min(n_ops[1], len(names)) + 1))
    chosen = set(rng.choice(names, size=k, replace=False, p=p / p.sum()).tolist())
    for name in _ORDER:
        if name in chosen:
            pil = OPS[name](pil, rng, oth)
    return pil


def view(img: Image.Image | np.ndarray, size: int, resize: int | None = None) -> np.ndarray:
    """The model's view of an image, as at inference: short side to ``resize`` (default
    size * 256 / 224), centre crop ``size`` x ``size``; uint8 (size, size, 3)."""
    pil = Image.fromarray(img) if isinstance(img, np.ndarray) else img
    resize = resize or int(round(size * 256 / 224))
    w, h = pil.size
    s = resize / min(w, h)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    pil = pil.convert("RGB").resize((nw, nh), Image.Resampling.BILINEAR)
    x, y = (nw - size) // 2, (nh - size) // 2
    return np.asarray(pil.crop((x, y, x + size, y + size)))
