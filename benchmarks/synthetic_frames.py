"""Synthetic reference frames whose code and embedding statistics match real fingerprints.

bench_search.py fills Milvus with up to 1,000 hours of references (3.6M frames at 1 fps): far
more footage than this repository holds, so the frames are drawn from a generative model fitted
to REAL fingerprints of diverse footage (resources/bbb.mp4 and resources/videos/*, fetched by
scripts/fetch_media.py), made with the model in use (dims read from it: embed_dim, code_bits).

Measured on the real clips at 1 fps (:func:`real_fingerprints`):

* **unrelated**: frame pairs of two videos from different sources (resources/videos/<source>),
* **same video, lag k s**: frame pairs k seconds apart in one video (k = 1, 2, 5, 10, 30),
* **copy**: a frame against the same frame after one random edit of benchmarks/video_edits.py
  (crop, colour, blur, caption, logo, padding, low quality, perspective, rotation; one edit per
  video), which the planted queries reproduce,

each as a Hamming distance histogram of the codes and an L2 histogram of the embeddings.

The generative model (:class:`FrameModel`) is a Gaussian latent model of the joint vector
[embedding ; code-bit latents] (a Gaussian copula for the bits: bit j = latent_j > -Phi^-1(p_j), so
every bit keeps its real marginal frequency; bit-bit correlations go through the arcsine law and
embedding-bit correlations through sqrt(pi/2)):

    x(v, t) = mu + sqrt(a) * B g_v  +  sqrt(w) * W h(v, t)
    h(v, t) = sqrt(s) * shot centre (new at each cut, cuts every ~L s)  +  sqrt(1 - s) * AR(1) noise (coefficient r)

B is the square root of the covariance of all real frames (video-balanced), W that of the
frames around their own video's mean (the within-video variation), g_v and the shot centres and
noise standard normal. The embedding is the normalised first D coordinates, the code the
thresholded bit latents. The five numbers (a, w, s, r, L) are fitted (Nelder-Mead) so that the
quantiles of the six real histograms (unrelated, lag 1/2/5/10/30, Hamming and L2 both) are
matched; the copy edit (:meth:`FrameModel.edit`) adds independent within-video noise of a
fitted scale (c) to every frame of a copy. :func:`compare` gives the real vs synthetic
histograms (plotted by bench_search.py).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "out"
LAGS = (1, 2, 5, 10, 30)
EDIT_KINDS = ("crop", "colour", "blur", "caption", "logo", "padding", "lowq", "perspective", "rotation")
POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1).astype(np.uint8)


def real_clips() -> list[tuple[str, Path]]:
    """(source, path) of the real clips: Big Buck Bunny and every video under resources/videos/<source>/.
    benchmarks/data_hard_test (the held-out test set) is never read."""
    out = []
    bbb = ROOT / "resources" / "bbb.mp4"
    if bbb.is_file():
        out.append(("bbb", bbb))
    for d in sorted((ROOT / "resources" / "videos").glob("*")):
        for f in sorted(d.iterdir()) if d.is_dir() else []:
            if f.is_file() and f.name != "copyright" and not f.name.startswith("."):
                out.append((d.name, f))
    if len(out) < 3:
        raise SystemExit("fewer than 3 real clips: run `python3 scripts/fetch_media.py` first")
    return out


@dataclasses.dataclass
class RealSet:
    """Real 1 fps fingerprints: per frame its video, source, time, embedding, code, and the
    embedding and code of the same frame after its video's edit."""

    model_id: str
    video: np.ndarray  # (N,) int
    source: np.ndarray  # (N,) int
    t: np.ndarray  # (N,) float
    emb: np.ndarray  # (N, D) float32
    codes: np.ndarray  # (N, B/8) uint8
    emb_edit: np.ndarray
    codes_edit: np.ndarray
    paths: list[str]
    sources: list[str]
    edits: list[str]  # per video

    @property
    def dim(self) -> int:
        return int(self.emb.shape[1])

    @property
    def bits(self) -> int:
        return int(self.codes.shape[1] * 8)


def real_fingerprints(model: object, fps: float = 1.0, seed: int = 0) -> RealSet:
    """Fingerprint the real clips (and one edited copy of each) with ``model``; cached per model id."""
    model_id = str(getattr(model, "model_id", "model"))
    cache = OUT / f"real_stats_{model_id}.npz"
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        meta = json.loads(str(z["meta"]))
        return RealSet(model_id, z["video"], z["source"], z["t"], z["emb"], z["codes"], z["emb_edit"], z["codes_edit"], meta["paths"], meta["sources"], meta["edits"])
    from video_edits import make_edit

    from vidret_milvus.video import iter_frames

    rng = np.random.default_rng(seed)
    clips = real_clips()
    sources = sorted({s for s, _ in clips})
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("video", "source", "t", "emb", "codes", "emb_edit", "codes_edit")}
    edits = []
    for vi, (src, path) in enumerate(clips):
        kind = str(rng.choice(EDIT_KINDS))
        edit = make_edit(kind, np.random.default_rng([seed, vi]))
        edits.append(kind)
        n = 0
        for batch in iter_frames(path, fps=fps, short_side=getattr(model.config, "resize_size", None)):  # type: ignore[attr-defined]
            e, c = model.embed_frames(batch.frames)  # type: ignore[attr-defined]
            ee, ce = model.embed_frames(np.stack([edit(f) for f in batch.frames]))  # type: ignore[attr-defined]
            for k, v in (("t", batch.timestamps), ("emb", e), ("codes", c), ("emb_edit", ee), ("codes_edit", ce)):
                cols[k].append(np.asarray(v))
            n += len(batch.frames)
        cols["video"].append(np.full(n, vi))
        cols["source"].append(np.full(n, sources.index(src)))
        print(f"real stats: {path.relative_to(ROOT)} {n} frames, edit {kind}", file=sys.stderr, flush=True)
    arr = {k: np.concatenate(v) for k, v in cols.items()}
    meta = {"paths": [str(p.relative_to(ROOT)) for _, p in clips], "sources": sources, "edits": edits}
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, meta=json.dumps(meta), **arr)
    return real_fingerprints(model, fps, seed)


# ---------------------------------------------------------------------------- distances
def hamming_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Hamming distance of two (N, B/8) uint8 code arrays."""
    return POPCOUNT[np.bitwise_xor(a, b)].sum(1, dtype=np.int32)


def l2_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a.astype(np.float32) - b.astype(np.float32), axis=1)


def pair_index(video: np.ndarray, source: np.ndarray, t: np.ndarray, kind: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j) of ``n`` frame pairs of one kind: 'unrelated' (other source; each side a
    uniformly drawn video, then frame) or 'lag<k>' (same video, k s apart, videos drawn uniformly)."""
    vids = np.unique(video)
    starts = {v: np.nonzero(video == v)[0] for v in vids}
    if kind == "unrelated":
        vsrc = np.array([source[starts[v][0]] for v in vids])
        a = rng.integers(0, len(vids), n * 2)
        b = rng.integers(0, len(vids), n * 2)
        ok = vsrc[a] != vsrc[b]
        a, b = a[ok][:n], b[ok][:n]
        i = np.array([rng.choice(starts[vids[x]]) for x in a])
        j = np.array([rng.choice(starts[vids[x]]) for x in b])
        return i, j
    k = int(kind[3:])
    cand = [v for v in vids if len(starts[v]) > k]
    pick = rng.choice(len(cand), n)
    i = np.empty(n, np.int64)
    for m, c in enumerate(pick):
        idx = starts[cand[c]]
        i[m] = idx[rng.integers(0, len(idx) - k)]
    return i, i + k  # 1 fps: k frames apart is k seconds apart


def distance_sets(emb: np.ndarray, codes: np.ndarray, video: np.ndarray, source: np.ndarray, t: np.ndarray, n: int = 20000, seed: int = 1,
                  emb_edit: np.ndarray | None = None, codes_edit: np.ndarray | None = None) -> dict[str, dict[str, np.ndarray]]:
    """{kind: {'hamming': d, 'l2': d}} for unrelated, lag<k> and (with the edited arrays) copy pairs."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, np.ndarray]] = {}
    for kind in ["unrelated"] + [f"lag{k}" for k in LAGS]:
        i, j = pair_index(video, source, t, kind, n, rng)
        out[kind] = {"hamming": hamming_pairs(codes[i], codes[j]), "l2": l2_pairs(emb[i], emb[j])}
    if emb_edit is not None and codes_edit is not None:
        out["copy"] = {"hamming": hamming_pairs(codes, codes_edit), "l2": l2_pairs(emb, emb_edit)}
    return out


TAIL_RADII = (24, 32, 40, 48)
GENERIC = 4  # generic pictures shared by all videos (FrameModel.generic)


def unrelated_tail(codes: np.ndarray, video: np.ndarray, source: np.ndarray, radii: tuple[int, ...] = TAIL_RADII) -> np.ndarray:
    """P(Hamming <= r) over all frame pairs of different sources, every video weighing the same."""
    nv = np.bincount(video)
    w = 1.0 / nv[video]
    num = np.zeros(len(radii))
    den = 0.0
    for i in range(len(codes)):
        d = POPCOUNT[np.bitwise_xor(codes, codes[i][None])].sum(1)
        ww = w[i] * w * (source != source[i])
        den += ww.sum()
        num += np.array([(ww * (d <= r)).sum() for r in radii])
    return num / den


def sampled_tail(codes: np.ndarray, video: np.ndarray, rng: np.random.Generator, n: int = 300_000, radii: tuple[int, ...] = TAIL_RADII) -> np.ndarray:
    i, j = rng.integers(0, len(codes), n), rng.integers(0, len(codes), n)
    ok = video[i] != video[j]
    d = hamming_pairs(codes[i[ok]], codes[j[ok]])
    return np.array([(d <= r).mean() for r in radii])


QS = np.r_[0.005, 0.01, np.linspace(0.02, 0.98, 25), 0.99]


def _quantiles(d: np.ndarray) -> np.ndarray:
    return np.quantile(d.astype(np.float64), QS)


# ---------------------------------------------------------------------------- the generative model
def _sqrt_psd(c: np.ndarray, floor: float = 1e-9) -> np.ndarray:
    c = (c + c.T) / 2
    lam, u = np.linalg.eigh(c)
    lam = np.clip(lam, floor * max(lam.max(), 1e-12), None)
    return (u * np.sqrt(lam)).astype(np.float32)  # x = A @ g has covariance ~ c


@dataclasses.dataclass
class Component:
    """A zero-mean Gaussian over [embedding (D) ; bit latents (B)] split as
    z_e = Ae g_e,  z_b = M z_e + sqrt(nu) Ar g_b  (nu = 1: the covariance it was made from;
    nu < 1 ties the codes closer to the embeddings)."""

    ae: np.ndarray  # (D, D)
    m: np.ndarray  # (B, D)
    ar: np.ndarray  # (B, B)

    @classmethod
    def from_cov(cls, c: np.ndarray, d: int) -> "Component":
        c = (c + c.T) / 2
        cee, ceb, cbb = c[:d, :d], c[:d, d:], c[d:, d:]
        lam, u = np.linalg.eigh(cee)
        keep = lam > 1e-6 * lam.max()
        pinv = (u[:, keep] / lam[keep]) @ u[:, keep].T
        m = ceb.T @ pinv
        return cls(_sqrt_psd(cee), m.astype(np.float32), _sqrt_psd(cbb - m @ ceb))

    def draw(self, g: np.ndarray, nu: float) -> np.ndarray:
        """(n, D + B) standard normal -> (n, D + B) samples."""
        d = self.ae.shape[0]
        ze = g[:, :d] @ self.ae.T
        zb = ze @ self.m.T + np.float32(np.sqrt(nu)) * (g[:, d:] @ self.ar.T)
        return np.concatenate([ze, zb], 1)

    def bit_var(self, nu: float) -> np.ndarray:
        return ((self.m @ self.ae) ** 2).sum(1) + nu * (self.ar**2).sum(1)


def _copula(cov_s: np.ndarray, dim: int, bit_sd: np.ndarray) -> np.ndarray:
    """Covariance of [embedding ; sign(+-1) bits] -> covariance of [embedding ; Gaussian bit latents]
    whose signs have it: bit-bit correlations r -> sin(pi r / 2), embedding-bit -> r sqrt(pi/2)."""
    c = cov_s.astype(np.float64).copy()
    sd = np.sqrt(np.clip(np.diag(c), 1e-12, None))
    corr = c / np.outer(sd, sd)
    bb = corr[dim:, dim:]
    corr[dim:, dim:] = np.sin(np.pi / 2 * np.clip(bb, -1, 1))
    corr[:dim, dim:] = np.clip(corr[:dim, dim:] * np.sqrt(np.pi / 2), -0.99, 0.99)
    corr[dim:, :dim] = corr[:dim, dim:].T
    np.fill_diagonal(corr[dim:, dim:], 1.0)
    sd2 = np.r_[sd[:dim], bit_sd]
    return corr * np.outer(sd2, sd2)


@dataclasses.dataclass
class FrameModel:
    """Fitted generative model of one fingerprint model's frames (see the module docstring)."""

    mu: np.ndarray  # (D + B,) latent mean (bit latents: 0)
    thresh: np.ndarray  # (B,) bit j = latent_j / sd_j > thresh_j
    between: Component  # the total covariance (shape of the video centres)
    within: Component  # the within-video covariance
    dim: int
    bits: int
    a: float = 0.5  # video centres: a * total covariance
    s: float = 0.6  # shots: s * within-video covariance around the video centre
    j: float = 0.3  # frames: j * within-video covariance around the shot centre, AR(1) in time
    r: float = 0.8  # AR(1) coefficient of the frame term, per second
    shot_s: float = 8.0  # mean shot length, seconds
    c: float = 0.1  # copy edit: c * within-video covariance of independent noise per frame
    motion: float = 0.5  # log-sd of a per-video scale of the within terms (static to busy footage; busy: shorter shots)
    nu: float = 1.0  # bit latents' variance not explained by the embedding, relative to the real data's
    c_nu: float = 1.0  # the same for the copy edit's noise (edits move embeddings and codes differently)
    generic: float = 0.03  # share of shots that show one of a few generic pictures (black, fades, title cards)
    generic_g: np.ndarray | None = None  # (GENERIC, D + B) standard normal draws of the generic pictures

    @classmethod
    def from_real(cls, real: RealSet) -> "FrameModel":
        d, nb = real.dim, real.bits
        bits = np.unpackbits(real.codes, axis=1, bitorder="big").astype(np.float64)
        p = np.clip(bits.mean(0), 1e-3, 1 - 1e-3)
        from scipy.stats import norm

        s_bits = 2 * bits - 1
        z = np.concatenate([real.emb.astype(np.float64), s_bits], 1)
        # Video-balanced moments: every video weighs the same (BBB is half of the frames).
        vids = np.unique(real.video)
        wts = np.zeros(len(z))
        for v in vids:
            m = real.video == v
            wts[m] = 1.0 / m.sum() / len(vids)
        mu = (wts[:, None] * z).sum(0)
        zc = z - mu
        total = (zc * wts[:, None]).T @ zc
        vmeans = np.zeros_like(z)
        for v in vids:
            m = real.video == v
            vmeans[m] = z[m].mean(0)
        zw = z - vmeans
        within = (zw * wts[:, None]).T @ zw
        # The within-video share of each bit latent's variance follows that of the signs.
        share = np.clip(np.diag(within)[d:] / np.clip(np.diag(total)[d:], 1e-9, None), 0, 1)
        ct = _copula(total, d, np.ones(nb))
        cw = _copula(within, d, np.sqrt(share))
        latent_mu = np.r_[mu[:d], np.zeros(nb)]
        a0 = float(max(0.05, 1.0 - np.trace(within) / np.trace(total)))
        return cls(latent_mu.astype(np.float32), (-norm.ppf(p)).astype(np.float32), Component.from_cov(ct, d), Component.from_cov(cw, d), d, nb,
                   a=a0, s=0.7, j=0.3)

    # ---- drawing
    def params(self) -> dict[str, float]:
        return {k: round(float(getattr(self, k)), 4) for k in ("a", "s", "j", "r", "shot_s", "motion", "nu", "c", "c_nu", "generic")}

    def _bit_sd(self) -> np.ndarray:
        """Standard deviation of each bit latent under the current scales (so that every bit
        keeps its real frequency whatever the scales)."""
        return np.sqrt(self.a * self.between.bit_var(self.nu) + (self.s + self.j) * self.within.bit_var(self.nu)).astype(np.float32)

    def latent_video(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, D + B) latents of one video of n frames (1 fps)."""
        k = self.mu.shape[0]
        centre = self.mu + np.float32(np.sqrt(self.a)) * self.between.draw(rng.standard_normal((1, k)).astype(np.float32), self.nu)[0]
        mv = float(np.exp(self.motion * rng.standard_normal() - self.motion**2 / 2))  # mean 1
        # shots: a cut after each second with probability 1 / shot length (busy footage cuts more)
        cuts = np.r_[0, np.cumsum(rng.random(max(n - 1, 0)) < min(1.0, mv / max(self.shot_s, 1.0)))]
        # as many draws whatever the cuts (common random numbers while fitting)
        shots = rng.standard_normal((n, k)).astype(np.float32)[cuts]
        g = rng.standard_normal((n, k)).astype(np.float32)
        rr = float(np.clip(self.r, 0.0, 0.999))
        ar = np.empty_like(g)
        ar[0] = g[0]
        q = np.float32(np.sqrt(1 - rr * rr))
        for i in range(1, n):
            ar[i] = rr * ar[i - 1] + q * g[i]
        # A generic shot (black, fade, title card) shows one of a few pictures shared by all videos.
        starts = np.maximum.accumulate(np.where(np.r_[True, cuts[1:] != cuts[:-1]], np.arange(n), 0))
        u, which = rng.random(n)[starts], rng.integers(0, GENERIC, n)[starts]
        jitter = self.within.draw(np.float32(np.sqrt(max(self.j, 0.0) * mv)) * ar, self.nu)
        own = centre + self.within.draw(np.float32(np.sqrt(max(self.s, 0.0) * mv)) * shots, self.nu)
        gen = u < self.generic
        if gen.any():
            if self.generic_g is None:
                self.generic_g = np.random.default_rng(12345).standard_normal((GENERIC, k)).astype(np.float32)
            pictures = self.mu + np.float32(np.sqrt(self.a)) * self.between.draw(self.generic_g, self.nu)
            own[gen] = pictures[which[gen]]
        return own + jitter

    def to_frames(self, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Latents -> (unit embeddings float32 (n, D), packed codes uint8 (n, B/8))."""
        e = np.ascontiguousarray(lat[:, : self.dim], dtype=np.float32)
        e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        b = (lat[:, self.dim :] / self._bit_sd() > self.thresh).astype(np.uint8)
        return e, np.packbits(b, axis=1, bitorder="big")

    def edit(self, lat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A copy's latents: independent within-video noise of scale c on every frame."""
        return lat + np.float32(np.sqrt(self.c)) * self.within.draw(rng.standard_normal(lat.shape).astype(np.float32), self.nu * self.c_nu)

    def video(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return self.to_frames(self.latent_video(n, rng))

    # ---- fitting
    def sample_set(self, lengths: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        lat = [self.latent_video(int(n), rng) for n in lengths]
        e, c = self.to_frames(np.concatenate(lat))
        le, ce = self.to_frames(np.concatenate([self.edit(x, rng) for x in lat]))
        video = np.concatenate([np.full(int(n), i) for i, n in enumerate(lengths)])
        t = np.concatenate([np.arange(int(n), dtype=np.float64) for n in lengths])
        return {"emb": e, "codes": c, "video": video, "source": video, "t": t, "emb_edit": le, "codes_edit": ce}


def fit(real: RealSet, n_pairs: int = 4000, iters: int = 400, seed: int = 0) -> tuple[FrameModel, dict[str, object]]:
    """Fit (a, w, s, r, shot length) to the real unrelated and same-video histograms, then c to the copy one."""
    from scipy.optimize import minimize

    fm = FrameModel.from_real(real)
    target = distance_sets(real.emb, real.codes, real.video, real.source, real.t, n_pairs, seed + 1, real.emb_edit, real.codes_edit)
    tq = {k: {m: _quantiles(v[m]) for m in v} for k, v in target.items()}
    scale = {"hamming": float(real.bits), "l2": 2.0}
    lengths = np.full(60, 80)  # 60 synthetic videos of 80 s: lags up to 30 s everywhere

    # The low tail of the unrelated Hamming histogram sets how many reference frames the code
    # stage recalls (a radius of 24-48 bits keeps 0.01-5 % of them): matched on a log scale.
    real_tail = np.log10(np.maximum(unrelated_tail(real.codes, real.video, real.source), 1e-6))

    def loss(kinds: list[str], sample: dict[str, np.ndarray]) -> float:
        got = distance_sets(sample["emb"], sample["codes"], sample["video"], sample["source"], sample["t"], n_pairs, seed + 2,
                            sample["emb_edit"], sample["codes_edit"])
        # The unrelated histogram weighs 3x: it sets how many reference frames the code stage recalls.
        out = float(sum((3.0 if k == "unrelated" else 1.0) * np.mean(((_quantiles(got[k][m]) - tq[k][m]) / scale[m]) ** 2)
                        for k in kinds for m in ("hamming", "l2")))
        if "unrelated" in kinds:
            tail = np.log10(np.maximum(sampled_tail(sample["codes"], sample["video"], np.random.default_rng(seed + 4)), 1e-6))
            out += 0.05 * float(np.mean((tail - real_tail) ** 2))
        return out

    kinds = ["unrelated"] + [f"lag{k}" for k in LAGS]

    def set_x(x: np.ndarray) -> None:
        fm.a, fm.s, fm.j = float(np.exp(x[0])), float(np.exp(x[1])), float(np.exp(x[2]))
        fm.r = float(1 / (1 + np.exp(-x[3])))
        fm.shot_s = float(1.0 + np.exp(x[4]))
        fm.motion, fm.nu = float(np.exp(x[5])), float(np.exp(x[6]))
        fm.generic = float(1 / (1 + np.exp(-x[7])))

    def f(x: np.ndarray) -> float:
        set_x(x)
        return loss(kinds, fm.sample_set(lengths, seed + 3))

    x0 = np.array([np.log(fm.a), np.log(fm.s), np.log(fm.j), 1.5, np.log(7.0), np.log(0.7), 0.0, np.log(0.04 / 0.96)])
    simplex = np.vstack([x0] + [x0 + 0.4 * np.eye(len(x0))[i] for i in range(len(x0))])
    res = minimize(f, x0, method="Nelder-Mead", options={"maxiter": iters, "xatol": 1e-3, "fatol": 1e-6, "initial_simplex": simplex})
    set_x(res.x)

    def fc(x: np.ndarray) -> float:
        fm.c, fm.c_nu = float(np.exp(x[0])), float(np.exp(x[1]))
        return loss(["copy"], fm.sample_set(lengths, seed + 3))

    xc = np.array([np.log(fm.c), 0.0])
    resc = minimize(fc, xc, method="Nelder-Mead", options={"maxiter": 120, "xatol": 1e-3, "initial_simplex": np.vstack([xc, xc + [0.4, 0], xc + [0, -0.4]])})
    fc(resc.x)
    syn_tail = sampled_tail(fm.sample_set(np.full(300, 120), seed + 9)["codes"], np.repeat(np.arange(300), 120), np.random.default_rng(seed + 10), 2_000_000)
    tails = {f"P(d<={r})": {"real": float(f"{a:.3g}"), "synthetic": float(f"{b:.3g}")} for r, a, b in zip(TAIL_RADII, 10**real_tail, syn_tail)}
    return fm, {"loss_distances": round(float(res.fun), 6), "loss_copy": round(float(resc.fun), 6), "evaluations": int(res.nfev + resc.nfev),
                "unrelated_hamming_tail": tails}


def compare(real: RealSet, fm: FrameModel, n_pairs: int = 20000, seed: int = 5) -> dict[str, dict[str, dict[str, object]]]:
    """Real vs synthetic distance summaries per kind and metric (quantiles 5/25/50/75/95, mean)
    and the histograms (for the plot)."""
    real_d = distance_sets(real.emb, real.codes, real.video, real.source, real.t, n_pairs, seed, real.emb_edit, real.codes_edit)
    syn = fm.sample_set(np.full(200, 120), seed)
    syn_d = distance_sets(syn["emb"], syn["codes"], syn["video"], syn["source"], syn["t"], n_pairs, seed, syn["emb_edit"], syn["codes_edit"])
    out: dict[str, dict[str, dict[str, object]]] = {}
    for kind in real_d:
        out[kind] = {}
        for m in ("hamming", "l2"):
            r, s = real_d[kind][m].astype(np.float64), syn_d[kind][m].astype(np.float64)
            out[kind][m] = {
                "real": {"mean": round(float(r.mean()), 3), "q": [round(float(x), 3) for x in np.quantile(r, [0.05, 0.25, 0.5, 0.75, 0.95])]},
                "synthetic": {"mean": round(float(s.mean()), 3), "q": [round(float(x), 3) for x in np.quantile(s, [0.05, 0.25, 0.5, 0.75, 0.95])]},
                "_real": r, "_synthetic": s,
            }
    return out


def fitted_model(model: object, refit: bool = False) -> tuple[FrameModel, RealSet, dict[str, object]]:
    """The FrameModel for ``model`` (fitted once, cached in benchmarks/out)."""
    real = real_fingerprints(model)
    cache = OUT / f"frame_model_{real.model_id}.json"
    fm = FrameModel.from_real(real)
    if cache.is_file() and not refit:
        info = json.loads(cache.read_text())
        for k, v in info["params"].items():
            setattr(fm, k, float(v))
        return fm, real, info
    fm, info = fit(real)
    info = {"params": fm.params(), **info, "real_frames": int(len(real.t)), "real_videos": int(len(real.paths)), "real_sources": len(real.sources)}
    cache.write_text(json.dumps(info, indent=2) + "\n")
    return fm, real, info


def plot_compare(cmp: dict[str, dict[str, dict[str, object]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(cmp)
    fig, axes = plt.subplots(2, len(kinds), figsize=(3.0 * len(kinds), 5.6))
    for j, kind in enumerate(kinds):
        for i, m in enumerate(("hamming", "l2")):
            ax = axes[i, j]
            r, s = cmp[kind][m]["_real"], cmp[kind][m]["_synthetic"]
            hi = max(float(np.max(r)), float(np.max(s)))
            bins = np.arange(0, hi + 2) - 0.5 if m == "hamming" else np.linspace(0, max(hi, 1e-3), 40)
            if m == "hamming" and len(bins) > 60:
                bins = np.linspace(-0.5, hi + 0.5, 50)
            ax.hist(r, bins=bins, density=True, alpha=0.55, label="real")
            ax.hist(s, bins=bins, density=True, alpha=0.55, label="synthetic")
            ax.set_title(f"{kind} {m}", fontsize=9)
            ax.tick_params(labelsize=7)
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Fit (or show) the synthetic frame model for a fingerprint model")
    ap.add_argument("--checkpoint", default=None, help="model checkpoint folder (default: the shipped default model)")
    ap.add_argument("--refit", action="store_true")
    ap.add_argument("--plot", default=None)
    args = ap.parse_args()
    from vidret_milvus.model import load_model

    m = load_model(args.checkpoint)
    fm, real, info = fitted_model(m, refit=args.refit)
    print(json.dumps(info, indent=2))
    cmp = compare(real, fm)
    for kind, v in cmp.items():
        for met, d in v.items():
            print(f"{kind:>9} {met:>7}: real mean {d['real']['mean']:7.3f} q {d['real']['q']}  synthetic mean {d['synthetic']['mean']:7.3f} q {d['synthetic']['q']}")
    if args.plot:
        plot_compare(cmp, Path(args.plot), f"{m.model_id}: real vs synthetic frame distances")
