"""Query-side regions: where in a frame a copied video may sit (numpy only, no torch).

A picture-in-picture copy shows the reference as an inset over other footage, so the
full-frame descriptor of the query is mostly the surrounding content. What gives the inset
away is its border: an axis-aligned edge that stays at the same place while the content on
both sides of it changes. :func:`find_inner_rectangles` looks for exactly that:

1. frames -> grey, block-averaged to ~160 px on the long side (edges of an inset survive
   this; the cost does not depend on the input size after it);
2. per window of consecutive frames, the temporal *median* of the vertical and horizontal
   gradient magnitudes: moving content blurs out, a fixed border stays sharp;
3. a line must be a ridge across its neighbours two pixels away (a textured area is high
   everywhere, a border only on its line), above an absolute contrast floor;
4. rows / columns with long runs of such ridge pixels are candidate sides; every pair of
   rows x pair of columns is a candidate rectangle, scored by the fraction of each of its
   four sides that has edge support (the weakest side decides); the frame border itself
   can never be a side (a gradient needs pixels on both sides), so letterbox or
   pillarbox bars (two sides at most) give no rectangle;
5. a box whose inside does not change over time is dropped (a still picture's own
   straight edges, a static frame graphic);
6. boxes from all windows are clustered (IoU) and ranked by their summed support, so an
   inset shown for only part of the query is found too.

Cost (benchmarks/bench_regions.py, this shared 2-core machine, one run): about 5 ms per
frame at 256 px short side input, i.e. ~0.1 s for a 20 s query at 1 fps: small next to one
embedding pass of the model (~220 ms per frame here). The views it adds are what cost.

On 16 generated picture-in-picture cases (each bundled photo as background, another as a
30 % inset, 16 frames) the inset was found within 3 % in 13; the misses were insets or
backgrounds of fine texture (gravel, moon, text), where a side of the border is no ridge.
Plain full-frame footage of the same photos gave a false box once (grass) in 16.

:func:`find_bars` finds the other frame a copy is put in: letterbox or pillarbox bars
(padding), flat static lines from two opposite edges of the frame inward. The picture
between them is searched as its own view, trimmed, at its own aspect ratio (bars keep the
content's aspect in the usual case; a squashed copy stays squashed, which the descriptor
tolerates).

:func:`find_band` finds a caption band (a strip laid over the bottom or top of the picture,
e.g. subtitles on a tinted bar): a straight line across the whole width that persists in
every frame, within the outer 35 % of the height. The picture beside it is searched as its
own view. On the hard tuning sets, cutting the band away raised copied frames' similarity
to their reference from 0.50 to 0.64 on average (unrelated references: 0.33 -> 0.36).

:func:`find_screen` finds a filmed screen (a camcorder copy): the picture is a tilted
quadrilateral inside dark, static margins. The view is the quadrilateral warped back to the
whole frame (:func:`warp_frames`). On the first hard tuning set this raised copied frames'
similarity to their reference from 0.41 to 0.51 on average (the centre 70 % crop: 0.48).

:func:`fixed_crops` are the regions searched whatever is detected (a camcorder copy's
screen is a slightly tilted quadrilateral with dark or moire margins: no axis-aligned
border to find, but a centre crop drops most of the margin).
"""

from __future__ import annotations

import dataclasses
import enum
import math

import numpy as np

__all__ = ["Box", "FIXED_CROPS", "GreySample", "QueryViews", "Quad", "crop_frames", "find_band", "find_bars", "find_inner_rectangles", "find_screen", "fixed_crops",
           "warp_frames"]


class QueryViews(str, enum.Enum):
    """What of each query frame is searched (views.py); the names are the CLI's choices."""

    full = "full"  # the whole frame only
    insets = "insets"  # plus, when shown: picture-in-picture insets, the picture inside bars, beside a caption band or on a filmed screen (the default)
    all = "all"  # plus a fixed centre crop (crops, camcorder): one more model pass always

    @property
    def crops(self) -> tuple[str, ...]:
        """The fixed crops searched with these views (fingerprint_views' ``crops``)."""
        return DEFAULT_FIXED if self is QueryViews.all else ()


@dataclasses.dataclass(frozen=True)
class Box:
    """An axis-aligned region as fractions of the frame: x0 < x1 and y0 < y1 in [0, 1]."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0  # edge support of the four sides (1 for a fixed crop)

    def __post_init__(self) -> None:
        vals = (self.x0, self.y0, self.x1, self.y1)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in vals):
            raise ValueError(f"box coordinates must be finite numbers, got {vals}")
        if not (0.0 <= self.x0 < self.x1 <= 1.0 and 0.0 <= self.y0 < self.y1 <= 1.0):
            raise ValueError(f"box must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, got {vals}")
        if not math.isfinite(self.score):
            raise ValueError(f"box score must be finite, got {self.score}")

    @property
    def area(self) -> float:
        return (self.x1 - self.x0) * (self.y1 - self.y0)

    def overlap(self, other: "Box") -> float:
        """Fraction of this box's area that lies inside ``other``."""
        ix = max(0.0, min(self.x1, other.x1) - max(self.x0, other.x0))
        iy = max(0.0, min(self.y1, other.y1) - max(self.y0, other.y0))
        return ix * iy / self.area

    def iou(self, other: "Box") -> float:
        ix = max(0.0, min(self.x1, other.x1) - max(self.x0, other.x0))
        iy = max(0.0, min(self.y1, other.y1) - max(self.y0, other.y0))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


# Searched for every query when fixed crops are on. Centre 70 %: its 15 % margins cover the
# camcorder edit's corner displacement (up to 14 % of a side) and the border moire, while
# keeping the scale close to the reference's (a tighter crop zooms further away from it).
# Centre 50 % is offered for heavier crops but costs one more embedding pass.
FIXED_CROPS: dict[str, Box] = {
    "centre70": Box(0.15, 0.15, 0.85, 0.85),
    "centre50": Box(0.25, 0.25, 0.75, 0.75),
}
DEFAULT_FIXED = ("centre70",)


def fixed_crops(names: tuple[str, ...] = DEFAULT_FIXED) -> list[tuple[str, Box]]:
    """The named fixed crops (default: centre 70 % only; see :data:`FIXED_CROPS`)."""
    unknown = [n for n in names if n not in FIXED_CROPS]
    if unknown:
        raise ValueError(f"unknown fixed crop(s) {unknown}; choose from {sorted(FIXED_CROPS)}")
    return [(n, FIXED_CROPS[n]) for n in names]


def crop_frames(frames: np.ndarray, box: Box) -> np.ndarray:
    """``frames[:, y0:y1, x0:x1]`` for a fractional ``box`` (a view, no copy; >= 2 px each way)."""
    if frames.ndim != 4:
        raise ValueError(f"frames must be (N, H, W, C), got shape {frames.shape}")
    h, w = frames.shape[1:3]
    x0, x1 = int(round(box.x0 * w)), int(round(box.x1 * w))
    y0, y1 = int(round(box.y0 * h)), int(round(box.y1 * h))
    x1, y1 = min(w, max(x1, x0 + 2)), min(h, max(y1, y0 + 2))
    x0, y0 = max(0, min(x0, x1 - 2)), max(0, min(y0, y1 - 2))
    return frames[:, y0:y1, x0:x1]


# Detection settings, in pixels of the downscaled grey frames unless said otherwise.
_TARGET = 160  # long side after block averaging
_RIDGE_GAP = 2  # a ridge is compared with the gradient this many rows/columns away
_MIN_CONTRAST = 8.0  # grey levels: the median contrast across a border, at least
_MIN_SIDE = 0.1  # a candidate line has at least this fraction of the frame's side as support
_MAX_LINES = 40  # candidate rows (and columns) kept per window, strongest first
_MIN_COVER = 0.6  # each side of a box: fraction of its length with edge support
_MIN_WINDOW = 3  # fewer frames than this cannot tell a persistent edge from content
_MIN_MOTION = 1.0  # grey levels: mean frame-to-frame change inside a box, at least


def _grey_small(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, h, w) float32 grey, block-averaged to ~_TARGET px long side."""
    n, h, w = frames.shape[:3]
    f = max(1, int(math.ceil(max(h, w) / _TARGET)))
    hh, ww = (h // f) * f, (w // f) * f
    # Integer-factor block means keep straight edges straight (no resampling kernel).
    grey = frames[:, :hh, :ww].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return grey.reshape(n, hh // f, f, ww // f, f).mean(axis=(2, 4))


@dataclasses.dataclass(frozen=True)
class GreySample:
    """Frames of one query as the detectors see them: grey, block-averaged (``_grey_small``),
    plus the frames' own size. Made once (:meth:`of`) and shared by all detectors
    (views.detect_views): the conversion is most of their cost."""

    small: np.ndarray  # (N, h, w) float32
    size: tuple[int, int]  # (H, W) of the frames

    @classmethod
    def of(cls, frames: "np.ndarray | GreySample") -> "GreySample":
        """``frames``: (N, H, W, 3) uint8 RGB (or a GreySample, returned as it is)."""
        if isinstance(frames, GreySample):
            return frames
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (N, H, W, 3), got {frames.shape} {frames.dtype}")
        return cls(_grey_small(frames), (int(frames.shape[1]), int(frames.shape[2])))

    def __len__(self) -> int:
        return len(self.small)

    @property
    def usable(self) -> bool:
        """Enough to detect anything: at least 3 frames (a still picture's own edges cannot be
        told from a border with fewer) and 8 px each way, in the frames and after the block
        averaging (a sliver of a frame, of extreme aspect, has nothing to measure)."""
        return len(self) >= _MIN_WINDOW and min(self.size) >= 8 and min(self.small.shape[1:]) >= 8


def _ridges(edge: np.ndarray) -> np.ndarray:
    """Boolean ridge map of a (L, M) median gradient image across axis 0 (lines along axis 1)."""
    g = _RIDGE_GAP
    pad = np.pad(edge, ((g, g), (0, 0)), mode="edge")
    # A border is a line: stronger than the rows two away on both sides. Textured content
    # is about as strong there as on the row itself (comparing with the weaker side only,
    # or the mean, was tried: many false boxes on plain footage, few more insets found).
    around = np.maximum(pad[: -2 * g], pad[2 * g :])
    return (edge - around >= _MIN_CONTRAST * 0.5) & (edge >= _MIN_CONTRAST)


def _candidate_lines(on: np.ndarray, min_len: int) -> np.ndarray:
    """Indices (along axis 0) of the strongest lines, after suppressing neighbours."""
    count = on.sum(axis=1)
    order = np.argsort(-count, kind="stable")
    kept: list[int] = []
    for i in order.tolist():
        if count[i] < min_len or len(kept) >= _MAX_LINES:
            break
        if all(abs(i - k) > 1 for k in kept):
            kept.append(i)
    return np.array(sorted(kept), np.int64)


def _wobble(on: np.ndarray) -> np.ndarray:
    """A ridge map (lines along axis 1) dilated by one row each way: one pixel of wobble."""
    dil = on.copy()
    dil[1:] |= on[:-1]
    dil[:-1] |= on[1:]
    return dil


def _side_cover(on: np.ndarray, lines: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Cover[i, p]: fraction of line ``lines[i]`` with support between the p-th pair of ``other``."""
    dil = _wobble(on)  # a side may use its line or the rows next to it
    pref = np.concatenate([np.zeros((len(on), 1)), np.cumsum(dil, axis=1)], axis=1)[lines]  # (L, M+1)
    a, b = np.triu_indices(len(other), k=1)
    lo, hi = other[a], other[b] + 1  # from one side's pixel to the other's, inclusive
    return (pref[:, hi] - pref[:, lo]) / np.maximum(hi - lo, 1)


def _window_boxes(small: np.ndarray, min_area: float, max_area: float, keep: int) -> list[Box]:
    n, h, w = small.shape
    # Median over time of central differences (across two pixels, so an edge that the
    # downscale spread over two pixels keeps its full contrast). ey[y] is centred on row y.
    ey = np.median(np.abs(small[:, 2:] - small[:, :-2]), axis=0)  # (h-2, w), row y+1
    ex = np.median(np.abs(small[:, :, 2:] - small[:, :, :-2]), axis=0)  # (h, w-2), column x+1
    on_y = np.pad(_ridges(ey), ((1, 1), (0, 0)))  # horizontal lines, (h, w)
    on_x = np.pad(_ridges(ex.T), ((1, 1), (0, 0)))  # vertical lines, transposed: (w, h)
    rows = _candidate_lines(on_y, int(_MIN_SIDE * w))
    cols = _candidate_lines(on_x, int(_MIN_SIDE * h))
    if len(rows) < 2 or len(cols) < 2:
        return []
    top_bottom = _side_cover(on_y, rows, cols)  # (R, C pairs)
    left_right = _side_cover(on_x, cols, rows)  # (C, R pairs)
    ra, rb = np.triu_indices(len(rows), k=1)
    ca, cb = np.triu_indices(len(cols), k=1)
    # sides[k, r_pair, c_pair]: top, bottom, left, right cover
    sides = np.stack([top_bottom[ra], top_bottom[rb], left_right[ca].T, left_right[cb].T])
    weakest = sides.min(axis=0)
    score = np.where(weakest >= _MIN_COVER, sides.mean(axis=0), 0.0)
    # A line found on pixel row y is the edge at y + 0.5 (between the rows it differences).
    y0, y1 = (rows[ra] + 0.5) / h, (rows[rb] + 0.5) / h
    x0, x1 = (cols[ca] + 0.5) / w, (cols[cb] + 0.5) / w
    area = (y1 - y0)[:, None] * (x1 - x0)[None, :]
    score[(area < min_area) | (area > max_area)] = 0.0
    # An inset plays video: its inside changes. A still picture's own straight edges (a
    # window, a table) make rectangles too, but nothing inside them moves.
    motion = np.abs(np.diff(small, axis=0)).mean(axis=0)
    integral = np.pad(motion.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    r0, r1 = (rows[ra] + 1)[:, None], rows[rb][:, None]
    c0, c1 = (cols[ca] + 1)[None, :], cols[cb][None, :]
    inside = (integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0]) / np.maximum((r1 - r0) * (c1 - c0), 1)
    score[inside < _MIN_MOTION] = 0.0
    # Rank by support plus a bonus for area: a textured inset (bricks, text) adds straight
    # lines of its own, and the boxes they make inside it are about as well supported as
    # the inset's; the outer one is the inset. (0.25: a box of weak sides, mean support
    # 0.7, does not beat a well-supported inset even at twice its area.)
    rank = np.where(score > 0, score + 0.25 * area, -1.0)
    out: list[Box] = []
    for flat in np.argsort(-rank, axis=None, kind="stable").tolist():
        i, j = divmod(flat, score.shape[1])
        if score[i, j] <= 0 or len(out) >= keep:
            break
        box = Box(float(x0[j]), float(y0[i]), float(x1[j]), float(y1[i]), float(score[i, j]))
        # Overlapping most of a better box, or inside it: the same inset (or a box made of
        # its sides and a stray line): keep the better only.
        if all(box.iou(b) < 0.5 and box.overlap(b) < 0.8 for b in out):
            out.append(box)
    return out


def find_inner_rectangles(
    frames: "np.ndarray | GreySample", max_boxes: int = 2, min_area: float = 0.08, max_area: float = 0.7, window: int = 16
) -> list[Box]:
    """Persistent axis-aligned rectangles inside the picture (inset borders), best first.

    frames: (N, H, W, 3) uint8 RGB, consecutive samples of one video (e.g. 1 fps).
    min_area / max_area: fractions of the frame area a box may cover; the default upper
        bound leaves out boxes that are nearly the whole frame (borders, bars).
    window: frames per detection window; the medians need content to move within one, and
        a box is reported if it is found in any window (summed support ranks the boxes).

    Returns [] for fewer than 3 frames: with so few, a still picture's own straight edges
    cannot be told from an inset's border.
    """
    grey = GreySample.of(frames)
    if not 0 < min_area < max_area <= 1:
        raise ValueError(f"need 0 < min_area < max_area <= 1, got {min_area}, {max_area}")
    if max_boxes < 1 or window < _MIN_WINDOW:
        raise ValueError(f"max_boxes must be >= 1 and window >= {_MIN_WINDOW}")
    n = len(grey)
    if not grey.usable:
        return []
    # Windows of equal length covering every frame (the last one shares frames if needed).
    starts = list(range(0, max(1, n - window + 1), window))
    if starts[-1] + window < n:
        starts.append(n - window)
    clusters: list[list[Box]] = []
    for s in starts:
        for box in _window_boxes(grey.small[s : s + window], min_area, max_area, keep=max_boxes + 2):
            for members in clusters:
                if members[0].iou(box) >= 0.6:
                    members.append(box)
                    break
            else:
                clusters.append([box])
    ranked = sorted(clusters, key=lambda m: -sum(b.score for b in m))
    out: list[Box] = []
    for members in ranked[:max_boxes]:
        # The median of the windows' boxes: one window's off-by-one line does not move it.
        c = np.median(np.array([[b.x0, b.y0, b.x1, b.y1] for b in members]), axis=0)
        out.append(Box(float(c[0]), float(c[1]), float(c[2]), float(c[3]), float(sum(b.score for b in members) / len(starts))))
    return out


# Bars (letterbox / pillarbox), in grey levels of the downscaled frames.
_BAR_STATIC = 2.0  # a bar line's mean temporal standard deviation, at most
_BAR_FLAT = 6.0  # a bar pixel is within this of its line's median ...
_BAR_FLAT_SHARE = 0.7  # ... for at least this share of the line (a logo may sit on a bar)
_BAR_MIN = 0.03  # a bar covers at least this fraction of the side (and 2 px)
_BAR_MAX = 0.3  # each bar at most this fraction: the picture keeps >= 40 % of the side


def _bar_depth(ok: np.ndarray) -> int:
    """How many lines from the start of ``ok`` are all True."""
    bad = np.flatnonzero(~ok)
    return int(bad[0]) if len(bad) else len(ok)


def _bars_on_axis(tstd: np.ndarray, med: np.ndarray) -> tuple[int, int] | None:
    """Bars at the two ends of axis 0 of (L, M) line statistics: their depths in lines, or None.

    A bar line is static (it does not change over time) and flat (most of it one grey
    level). Both ends need bars (the picture is centred between them), but one end's bar
    may be covered by a static overlay (a caption band, a logo): it then only has to be
    static as deep as the other end's bar. Where both ends are flat, the shallower depth is
    taken for both (a flat edge of the picture itself continues one of them)."""
    n = len(tstd)
    static = tstd.mean(axis=1) < _BAR_STATIC
    flat = (np.abs(med - np.median(med, axis=1, keepdims=True)) <= _BAR_FLAT).mean(axis=1) >= _BAR_FLAT_SHARE
    bar = static & flat
    lo_bar, hi_bar = _bar_depth(bar), _bar_depth(bar[::-1])
    lo_static, hi_static = _bar_depth(static), _bar_depth(static[::-1])
    least = max(2, int(math.ceil(_BAR_MIN * n)))
    if min(lo_bar, hi_bar) >= least:
        d = min(lo_bar, hi_bar)
        lo = hi = d
    elif lo_bar >= least and hi_static >= lo_bar:
        lo = hi = lo_bar
    elif hi_bar >= least and lo_static >= hi_bar:
        lo = hi = hi_bar
    else:
        return None
    if max(lo, hi) > _BAR_MAX * n:
        return None
    return lo, hi


def find_bars(frames: "np.ndarray | GreySample") -> Box | None:
    """The picture inside letterbox (top and bottom) and/or pillarbox (left and right) bars,
    or None when the frames show none.

    frames: (N, H, W, 3) uint8 RGB, samples of one video (e.g. the detection's sample). A
    bar is a band of lines along an edge of the frame that do not change over time and are
    mostly one grey level (any colour: black, or the dark fill of a padded re-upload), on
    two opposite edges. Fewer than 3 frames: None (a still frame's plain sky or floor would
    look like a bar)."""
    grey = GreySample.of(frames)
    if not grey.usable:
        return None
    small = grey.small
    # A still query has nothing static to tell apart: the whole frame would pass as a bar.
    if np.abs(np.diff(small, axis=0)).mean() < _MIN_MOTION:
        return None
    tstd, med = small.std(axis=0), np.median(small, axis=0)
    h, w = tstd.shape
    rows = _bars_on_axis(tstd, med)
    cols = _bars_on_axis(tstd.T, med.T)
    if rows is None and cols is None:
        return None
    y0, y1 = (rows[0] / h, 1 - rows[1] / h) if rows else (0.0, 1.0)
    x0, x1 = (cols[0] / w, 1 - cols[1] / w) if cols else (0.0, 1.0)
    return Box(x0, y0, x1, y1)


# Caption bands.
_BAND_REACH = 0.35  # a band's inner edge lies within this fraction of the height from the top or bottom
_BAND_COVER = 0.8  # ... and is a ridge over at least this share of the width


def find_band(frames: "np.ndarray | GreySample") -> Box | None:
    """The picture beside a caption band at the bottom and/or top, or None.

    frames: (N, H, W, 3) uint8 RGB, samples of one video. The band's inner edge is a line
    of ridges (the temporal median gradient, as for insets) across at least 80 % of the
    width, within the outer 35 % of the height; of several such lines, the one nearest the
    middle of the frame (the band's edge, not a line of its text). Unlike bars, the band may
    let the picture through (a tinted bar) and the query may not move (a still shown with
    a caption): a full-width straight edge that stays put is evidence enough; an inset's
    edges cover less of the width. Fewer than 3 frames: None."""
    grey = GreySample.of(frames)
    if not grey.usable:
        return None
    small = grey.small
    h = small.shape[1]
    ey = np.median(np.abs(small[:, 2:] - small[:, :-2]), axis=0)
    on = np.pad(_ridges(ey), ((1, 1), (0, 0)))
    covered = _wobble(on).mean(axis=1) >= _BAND_COVER  # wobble as for an inset's sides, for the coverage only
    # Each run of covered rows is one line; it lies on its row of most (undilated) ridge
    # pixels, and a line on row y is the edge at y + 0.5. The frame's own first and last
    # rows are no band.
    count = on.sum(axis=1)
    lines = [int(run[np.argmax(count[run])]) for run in np.split(np.flatnonzero(covered), np.flatnonzero(np.diff(np.flatnonzero(covered)) > 1) + 1) if len(run)]
    bottom = [y for y in lines if (1 - _BAND_REACH) * h <= y < h - 2]
    top = [y for y in lines if 2 <= y <= _BAND_REACH * h]
    if not bottom and not top:
        return None
    y0 = (max(top) + 0.5) / h if top else 0.0
    y1 = (min(bottom) + 0.5) / h if bottom else 1.0
    return Box(0.0, y0, 1.0, y1)


@dataclasses.dataclass(frozen=True)
class Quad:
    """A quadrilateral as fractions of the frame: corners top-left, top-right, bottom-right,
    bottom-left, each an (x, y) pair in [0, 1]."""

    corners: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        c = self.corners
        number = (int, float, np.integer, np.floating)
        if len(c) != 4 or not all(len(p) == 2 and all(isinstance(v, number) and not isinstance(v, bool) and 0.0 <= v <= 1.0 for v in p) for p in c):
            raise ValueError(f"a quad is 4 (x, y) corners in [0, 1], got {c}")
        # Convex and clockwise on screen (y down): every turn between edges goes the same way.
        turns = [(c[(i + 1) % 4][0] - c[i][0]) * (c[(i + 2) % 4][1] - c[(i + 1) % 4][1])
                 - (c[(i + 1) % 4][1] - c[i][1]) * (c[(i + 2) % 4][0] - c[(i + 1) % 4][0]) for i in range(4)]
        if min(turns) <= 1e-9:
            raise ValueError(f"quad corners must run clockwise (top-left first) around a convex area, got {c}")

    def bounds(self) -> Box:
        xs, ys = [p[0] for p in self.corners], [p[1] for p in self.corners]
        return Box(min(xs), min(ys), max(xs), max(ys))


def _homography(src: list[tuple[float, float]], dst: list[tuple[float, float]]) -> list[float]:
    """The 8 coefficients mapping ``src`` points to ``dst`` points (PIL's PERSPECTIVE transform
    takes the map from output to input pixels)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    return np.linalg.solve(np.asarray(rows, np.float64), np.asarray(rhs, np.float64)).tolist()


def warp_frames(frames: np.ndarray, quad: Quad) -> np.ndarray:
    """Each frame's ``quad`` warped onto the whole frame (same size), bilinear."""
    from PIL import Image  # a declared dependency; imported here, where the one warped view needs it

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (N, H, W, 3), got {frames.shape} {frames.dtype}")
    h, w = frames.shape[1:3]
    coeffs = _homography([(0, 0), (w, 0), (w, h), (0, h)], [(x * w, y * h) for x, y in quad.corners])
    out = np.empty_like(frames)
    for i, f in enumerate(frames):
        out[i] = np.asarray(Image.fromarray(f).transform((w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR))
    return out


# Filmed screens, in grey levels / fractions of the downscaled frames.
_SCREEN_DARK = 40.0  # a margin pixel's temporal median, at most
_SCREEN_STATIC = 3.0  # ... and its temporal standard deviation
_SCREEN_MARGIN = (0.02, 0.35)  # the margins' share of the frame
_SCREEN_CORNER = 0.25  # each corner of the picture within this of the frame's corner (x and y)
_SCREEN_TILT = 0.015  # two corners off the bounding box by this much, at least (else bars, find_bars)
_SCREEN_FIT = 0.8  # share of the margin pixels outside the quad, at least (and <= 5 % of the inside)


def find_screen(frames: "np.ndarray | GreySample") -> Quad | None:
    """The tilted picture of a filmed screen inside dark, static margins, or None.

    frames: (N, H, W, 3) uint8 RGB, samples of one video. Margin pixels are dark and do not
    change over time; the picture's corners are the extreme points of the rest (the
    top-left one minimises x + y, and so on). Accepted when the margins cover 2-35 % of the
    frame, every corner lies within 25 % of the frame's own corner, the quad is tilted (two
    corners off its bounding box; an axis-aligned one is a letterbox, :func:`find_bars`) and explains the margins (most
    margin pixels outside it, almost none inside). Fewer than 3 frames, or nothing moving:
    None (a dark still would be all margin)."""
    grey = GreySample.of(frames)
    if not grey.usable:
        return None
    small = grey.small
    if np.abs(np.diff(small, axis=0)).mean() < _MIN_MOTION:
        return None
    h, w = small.shape[1:]
    margin = (np.median(small, axis=0) < _SCREEN_DARK) & (small.std(axis=0) < _SCREEN_STATIC)
    if not _SCREEN_MARGIN[0] <= margin.mean() <= _SCREEN_MARGIN[1]:
        return None
    e = np.pad(~margin, 1, mode="edge")  # drop specks (a glint), on the frame's edges too: corners are picked there
    pic = e[1:-1, 1:-1] & e[:-2, 1:-1] & e[2:, 1:-1] & e[1:-1, :-2] & e[1:-1, 2:]
    ys, xs = np.nonzero(pic)
    if len(xs) == 0:
        return None
    fx, fy = (xs + 0.5) / w, (ys + 0.5) / h
    picks = [np.argmin(fx + fy), np.argmax(fx - fy), np.argmax(fx + fy), np.argmax(fy - fx)]
    corners = tuple((float(np.clip(fx[i], 0, 1)), float(np.clip(fy[i], 0, 1))) for i in picks)
    frame_corners = ((0, 0), (1, 0), (1, 1), (0, 1))
    if any(abs(x - cx) > _SCREEN_CORNER or abs(y - cy) > _SCREEN_CORNER for (x, y), (cx, cy) in zip(corners, frame_corners)):
        return None
    try:
        quad = Quad(corners)
    except ValueError:
        return None
    b = quad.bounds()
    box_corners = ((b.x0, b.y0), (b.x1, b.y0), (b.x1, b.y1), (b.x0, b.y1))
    # A perspective moves several corners; one corner pulled in is a dark patch of the picture
    # beside thin bars (or a logo on a bar).
    if sum(max(abs(x - bx), abs(y - by)) >= _SCREEN_TILT for (x, y), (bx, by) in zip(corners, box_corners)) < 2:
        return None
    # Inside the quad: on the inner side of all four edges (clockwise on screen).
    gx, gy = (np.arange(w) + 0.5) / w, (np.arange(h) + 0.5) / h
    X, Y = np.meshgrid(gx, gy)
    inside = np.ones((h, w), bool)
    for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1]):
        inside &= (x1 - x0) * (Y - y0) - (y1 - y0) * (X - x0) >= 0
    if (margin & ~inside).sum() < _SCREEN_FIT * margin.sum() or (margin & inside).sum() > 0.05 * inside.sum():
        return None
    return quad
