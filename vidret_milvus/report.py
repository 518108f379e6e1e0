"""Static outputs of a search: the review page as one HTML file or a movable folder, and a timeline plot.

``write_report`` writes the same view as ``vidret-milvus serve`` (players whose progress bars
mark the copied segments, triangle markers that seek) as a single self-contained file: the
page's CSS, script and the results are inlined; the videos are referenced by relative path
from the report's folder (or by ``file://`` URL), never copied, so moving the file breaks them.
``write_report_dir`` writes the page as ``index.html`` in a folder together with the videos it
shows under ``media/`` (copies, or with ``media="excerpt"`` short H.264 excerpts around the
matched segments cut with PyAV), so the folder can be moved or zipped. ``write_plot`` draws the
query and each matched reference on a time axis, with the copied segments joined.
"""

from __future__ import annotations

import html
import json
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .search import SearchResponse, same_file

STATIC_DIR = Path(__file__).resolve().parent / "web" / "static"
EXCERPT_PAD = 3.0  # seconds kept before the first and after the last matched segment
MEDIA_MODES = ("copy", "excerpt")


def video_url(path: str | Path, report_dir: str | Path, links: str = "relative") -> str:
    """How the report refers to a video: a URL-quoted relative path, or a ``file://`` URL."""
    p = Path(path).resolve()
    if links == "relative":
        try:
            rel = os.path.relpath(p, Path(report_dir).resolve())
        except ValueError:  # another drive (Windows)
            return p.as_uri()
        return quote(Path(rel).as_posix())
    if links == "file":
        return p.as_uri()
    raise ValueError("links must be 'relative' or 'file'")


def report_data(resp: SearchResponse | dict[str, Any], report_dir: str | Path, links: str = "relative") -> dict[str, Any]:
    """The search's JSON with where the page finds each video (``url``) and ``self_match`` on
    the result that is the query's own file (a stored video searched finds itself)."""
    data = resp.to_json() if isinstance(resp, SearchResponse) else json.loads(json.dumps(resp))
    data["query_url"] = video_url(data["query"], report_dir, links)
    for r in data["results"]:
        r["url"] = video_url(r["path"], report_dir, links)
        r["self_match"] = bool(r.get("self_match")) or same_file(r["path"], data["query"])
    return data


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def summary(data: dict[str, Any]) -> str:
    """``3 candidates, 1 copy; #1 is the query itself`` (the page's status line)."""
    results = data["results"]
    n_copy = sum(1 for r in results if r["is_copy"] and not r.get("self_match"))
    selfs = [i for i, r in enumerate(results, 1) if r.get("self_match")]
    return f"{plural(len(results), 'candidate')}, {plural(n_copy, 'copy', 'copies')}" + (f"; #{selfs[0]} is the query itself" if selfs else "")


def _script_json(obj: Any) -> str:
    # Safe inside <script>: no "</script>", no "<!--", no line separators.
    text = json.dumps(obj)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_report(data: dict[str, Any]) -> str:
    css = (STATIC_DIR / "review.css").read_text(encoding="utf-8")
    js = (STATIC_DIR / "review.js").read_text(encoding="utf-8").replace("</script", "<\\/script")
    title = f"vidret-milvus report: {os.path.basename(str(data['query']))}"
    icon = "data:image/svg+xml," + quote((STATIC_DIR / "favicon.svg").read_text(encoding="utf-8").strip())
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="icon" href="{html.escape(icon)}" type="image/svg+xml">
<style>
{css}
</style>
</head>
<body>
<header>
  <h1>vidret-milvus <span class="sub">copied-segment review (static report)</span></h1>
  <div id="status">{html.escape(os.path.basename(str(data['query'])))}: {html.escape(summary(data))}</div>
</header>
<main id="view"></main>
<script>window.VIDRET_DATA = {_script_json(data)};</script>
<script>
{js}
</script>
</body>
</html>
"""


def write_report(resp: SearchResponse | dict[str, Any], out: str | Path, links: str = "relative") -> Path:
    """Write the review page for ``resp`` (a search response or its JSON) to ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(report_data(resp, out.parent, links)), encoding="utf-8")
    return out


def _media_name(tag: str, path: str | Path, suffix: str | None = None) -> str:
    ext = (suffix if suffix is not None else Path(path).suffix).lower()
    ext = ext if ext[1:].isalnum() and len(ext) <= 6 else ".bin"
    return f"{tag}{ext}"


def _cut_excerpt(src: str | Path, dst: Path, start: float, end: float) -> None:
    """``[start, end)`` of ``src`` re-encoded as H.264 MP4 at its own frame rate and size (no audio)."""
    import av

    from .clips import read_span, write_clip
    from .errors import VideoError

    try:
        with av.open(str(src)) as c:
            st = c.streams.video[0]
            fps = float(st.average_rate or st.guessed_rate or 25)
            w, h = st.codec_context.width, st.codec_context.height
    except (av.error.FFmpegError, IndexError) as exc:
        raise VideoError(src, f"cannot open for an excerpt: {exc}") from None
    size = (max(2, w - w % 2), max(2, h - h % 2))
    try:
        write_clip(dst, (f for _, f in read_span(src, start, end, size)), fps if 1 <= fps <= 240 else 25.0, size)
    except av.error.FFmpegError as exc:
        dst.unlink(missing_ok=True)
        raise VideoError(src, f"cannot cut an excerpt: {exc}") from None


def write_report_dir(resp: SearchResponse | dict[str, Any], out_dir: str | Path, media: str = "copy",
                     pad: float = EXCERPT_PAD) -> Path:
    """Write ``out_dir/index.html`` and the videos it shows under ``out_dir/media/``, linked by
    relative path, so the folder can be moved or zipped.

    Only what a reviewer looks at is copied: the query and the results that are copies or have
    matched segments (a top-20 of a large library must not copy twenty unrelated videos); the
    others are listed without a video, and the query's own file found again shows the query's
    copy. ``media="copy"``: those videos copied whole. ``media="excerpt"``: the query copied,
    each result with matched segments as an excerpt from ``pad`` s before its first segment to
    ``pad`` s after its last (the page's bar and markers then cover the excerpt, labelled in the
    source's seconds). The page names files, never this machine's folders (the folder is made
    to be moved and shared). Returns the index file.
    """
    if media not in MEDIA_MODES:
        raise ValueError(f"media must be one of {', '.join(MEDIA_MODES)}")
    out_dir = Path(out_dir)
    media_dir = out_dir / "media"
    media_dir.mkdir(parents=True, exist_ok=True)
    data = resp.to_json() if isinstance(resp, SearchResponse) else json.loads(json.dumps(resp))
    query = str(data["query"])
    if query.lower().endswith(".npz"):  # a saved descriptor, not a video
        data["query_url"] = None
    else:
        qname = _media_name("query", query)
        shutil.copyfile(query, media_dir / qname)
        data["query_url"] = f"media/{quote(qname)}"
    for i, r in enumerate(data["results"], 1):
        r["self_match"] = bool(r.get("self_match")) or same_file(r["path"], query)
        tag = f"{i:02d}-{int(r['video_id'])}"
        if r["self_match"] and data["query_url"] is not None and media == "copy":
            r["url"] = data["query_url"]
        elif not (r["is_copy"] or r["segments"]):
            r["url"] = None
        elif media == "copy":
            name = _media_name(tag, r["path"])
            shutil.copyfile(r["path"], media_dir / name)
            r["url"] = f"media/{quote(name)}"
        elif r["segments"]:
            start = max(0.0, min(float(g["ref_start"]) for g in r["segments"]) - pad)
            end = min(float(r["duration"]), max(float(g["ref_end"]) for g in r["segments"]) + pad)
            name = _media_name(f"{tag}-excerpt", r["path"], ".mp4")
            _cut_excerpt(r["path"], media_dir / name, start, end)
            r["url"] = f"media/{quote(name)}"
            r["clip"] = {"start": round(start, 3), "end": round(end, 3)}
        else:
            r["url"] = None
    data["query"] = Path(query).name
    for r in data["results"]:
        r["path"] = Path(r["path"]).name
    index = out_dir / "index.html"
    index.write_text(render_report(data), encoding="utf-8")
    return index


def write_plot(resp: SearchResponse | dict[str, Any], out: str | Path, max_rows: int = 12) -> Path:
    """A timeline PNG: the query on top, each result with segments below, copies joined to
    the query seconds they copy (grey bands)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon, Rectangle

    data = resp.to_json() if isinstance(resp, SearchResponse) else resp
    rows = [r for r in data["results"] if r["segments"]][:max_rows]
    qd = float(data["query_duration"])
    span = max([qd] + [float(r["duration"]) for r in rows])
    h = 0.36  # half the bar height
    fig_h = 1.2 + 0.9 * (len(rows) + 1)
    fig, ax = plt.subplots(figsize=(10, fig_h), dpi=100)

    def lane(y: float, length: float, spans: list[tuple[float, float]], colour: str) -> None:
        ax.add_patch(Rectangle((0, y - h), length, 2 * h, facecolor="#202020", edgecolor="#202020"))
        for a, b in spans:
            ax.add_patch(Rectangle((a, y - h * 0.7), max(b - a, 0.05), 1.4 * h, facecolor=colour, edgecolor="none"))

    ys = {}
    q_spans = [(g["query_start"], min(g["query_end"], qd)) for r in rows if r["is_copy"] for g in r["segments"]]
    lane(0.0, qd, q_spans, "#9e9e9e")
    labels = [f"query: {os.path.basename(str(data['query']))}"]
    for i, r in enumerate(rows, 1):
        y = -float(i)
        ys[i] = y
        lane(y, float(r["duration"]), [(g["ref_start"], g["ref_end"]) for g in r["segments"]], "#9e9e9e" if r["is_copy"] else "#5c6bc0")
        for g in r["segments"]:
            poly = [(g["query_start"], -h), (g["query_end"], -h), (g["ref_end"], y + h), (g["ref_start"], y + h)]
            ax.add_patch(Polygon(poly, closed=True, facecolor="#d32f2f" if r["is_copy"] else "#5c6bc0", alpha=0.18 if len(rows) > 1 else 0.25, edgecolor="none"))
            ax.text((g["ref_start"] + g["ref_end"]) / 2, y - h - 0.08, f"similarity {g['score']:.2f}", ha="center", va="top", fontsize=7, color="#333")
        labels.append(f"#{i} {os.path.basename(str(r['path']))}" + (" (copy)" if r["is_copy"] else "") + f"  score {r['score']:.2f}")
    ax.set_yticks([0.0] + [ys[i] for i in range(1, len(rows) + 1)])
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlim(0, span * 1.02 if span > 0 else 1)
    ax.set_ylim(-len(rows) - 0.7, 0.7)
    ax.set_xlabel("seconds (query on top; each reference on its own time axis)")
    ax.set_title("Copied segments: query seconds -> reference seconds" if rows else "No matched segment", fontsize=10)
    for s in ("top", "right", "left"):
        ax.spines[s].set_visible(False)
    ax.tick_params(axis="y", length=0)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
