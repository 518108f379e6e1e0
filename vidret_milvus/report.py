"""Static outputs of a search: the review page as one HTML file, and a timeline plot.

``write_report`` writes the same view as ``vidret-milvus serve`` (players whose progress bars
mark the copied segments, triangle markers that seek) as a single self-contained file: the
page's CSS, script and the results are inlined; the videos are referenced by relative path
from the report's folder (or by ``file://`` URL), never copied. ``write_plot`` draws the
query and each matched reference on a time axis, with the copied segments joined.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .search import SearchResponse

STATIC_DIR = Path(__file__).resolve().parent / "web" / "static"


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
    data = resp.to_json() if isinstance(resp, SearchResponse) else json.loads(json.dumps(resp))
    data["query_url"] = video_url(data["query"], report_dir, links)
    for r in data["results"]:
        r["url"] = video_url(r["path"], report_dir, links)
    return data


def _script_json(obj: Any) -> str:
    # Safe inside <script>: no "</script>", no "<!--", no line separators.
    text = json.dumps(obj)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_report(data: dict[str, Any]) -> str:
    css = (STATIC_DIR / "review.css").read_text(encoding="utf-8")
    js = (STATIC_DIR / "review.js").read_text(encoding="utf-8").replace("</script", "<\\/script")
    title = f"vidret-milvus report: {os.path.basename(str(data['query']))}"
    n_copy = sum(1 for r in data["results"] if r["is_copy"])
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
{css}
</style>
</head>
<body>
<header>
  <h1>vidret-milvus <span class="sub">copied-segment review (static report)</span></h1>
  <div id="status">{html.escape(str(data['query']))}: {len(data['results'])} candidates, {n_copy} copies</div>
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
