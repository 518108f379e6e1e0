"""The review page server: pick or upload a query clip, search, review the copied segments.

Standard library only (``http.server.ThreadingHTTPServer``). One process holds the store
open (Milvus Lite allows one process per database file) and the model, loaded once; searches
(and every other store access) are serialised by a lock, while media requests run in their
own threads.

Routes (anything else is 404; no URL is ever turned into a filesystem path):

=========================  ====  ==============================================================
``/``                      GET   the page (``static/index.html``)
``/static/<name>``         GET   the page's own files, from a fixed list
``/api/videos``            GET   stored videos: ``[{"video_id", "name", "duration"}]``
``/api/upload``            POST  the raw file as the body (``X-Filename`` header optional),
                                 at most ``max_upload`` bytes -> ``{"query": "upload:<token>"}``
``/api/search``            POST  JSON ``{"query": "upload:<token>" | "video:<id>", "top_n",
                                 "mode"}`` -> the ``search --json`` object plus ``query_url``
                                 and each result's ``url``
``/media/video/<id>``      GET   a stored video, looked up by its numeric id (Range requests)
``/media/upload/<token>``  GET   an uploaded query (Range requests)
=========================  ====  ==============================================================
"""

from __future__ import annotations

import dataclasses
import json
import mimetypes
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..errors import VidretError
from ..search import Mode, SearchParams, search_video
from ..store import READY, Store, VideoRow

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"review.js": "text/javascript; charset=utf-8", "review.css": "text/css; charset=utf-8"}
MAX_JSON_BODY = 16 * 1024
CHUNK = 256 * 1024
KEEP_UPLOADS = 32  # older uploads are deleted

_ROUTES_GET = {
    "index": re.compile(r"/"),
    "static": re.compile(r"/static/([a-z]+\.(?:js|css))"),
    "videos": re.compile(r"/api/videos"),
    "video": re.compile(r"/media/video/([0-9]{1,20})"),
    "upload": re.compile(r"/media/upload/([0-9a-f]{32})"),
}
_QUERY_RE = re.compile(r"(upload):([0-9a-f]{32})|(video):([0-9]{1,20})")
_EXT_RE = re.compile(r"\.[A-Za-z0-9]{1,5}")


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class Upload:
    path: Path
    name: str
    size: int


class ReviewApp:
    """State shared by the request threads: store, model, uploads, the search lock."""

    def __init__(self, store: Store, model: Any, params: SearchParams = SearchParams(), max_upload: int = 200 * 1024 * 1024,
                 upload_dir: str | Path | None = None) -> None:
        self.store = store
        self.model = model
        self.params = params
        self.max_upload = int(max_upload)
        self.lock = threading.Lock()  # one store/model user at a time
        self._own_dir = upload_dir is None
        self.upload_dir = Path(tempfile.mkdtemp(prefix="vidret-uploads-") if upload_dir is None else upload_dir)
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        self.uploads: OrderedDict[str, Upload] = OrderedDict()
        self._uploads_lock = threading.Lock()
        self._videos: dict[int, VideoRow] = {}

    # ----------------------------------------------------------- lookups
    def list_videos(self) -> list[VideoRow]:
        with self.lock:
            rows = self.store.list_videos(READY) if self.store.meta() is not None else []
        self._videos.update({r.video_id: r for r in rows})
        return sorted(rows, key=lambda r: (os.path.basename(r.path), r.video_id))

    def video_path(self, video_id: int) -> Path:
        row = self._videos.get(video_id)
        if row is None:
            with self.lock:
                row = self.store.get_videos([video_id]).get(video_id) if self.store.meta() is not None else None
            if row is None:
                raise HttpError(404, "no such video")
            self._videos[video_id] = row
        return Path(row.path)

    def upload(self, token: str) -> Upload:
        with self._uploads_lock:
            up = self.uploads.get(token)
        if up is None:
            raise HttpError(404, "no such upload")
        return up

    # ----------------------------------------------------------- actions
    def save_upload(self, stream: Any, length: int, filename: str) -> str:
        if length > self.max_upload:
            raise HttpError(413, f"upload larger than the limit ({self.max_upload} bytes)")
        if length <= 0:
            raise HttpError(400, "empty upload")
        token = secrets.token_hex(16)
        m = _EXT_RE.fullmatch(Path(filename).suffix) if filename else None
        path = self.upload_dir / f"{token}{m.group(0).lower() if m else '.bin'}"
        left = length
        with open(path, "wb") as f:
            while left > 0:
                block = stream.read(min(CHUNK, left))
                if not block:
                    break
                f.write(block)
                left -= len(block)
        if left:
            path.unlink(missing_ok=True)
            raise HttpError(400, "upload cut short")
        name = os.path.basename(filename)[:200] if filename else path.name
        with self._uploads_lock:
            self.uploads[token] = Upload(path, name, length)
            while len(self.uploads) > KEEP_UPLOADS:
                _, old = self.uploads.popitem(last=False)
                old.path.unlink(missing_ok=True)
        return token

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        q = body.get("query")
        m = _QUERY_RE.fullmatch(q) if isinstance(q, str) else None
        if m is None:
            raise HttpError(400, 'query must be "upload:<token>" or "video:<id>"')
        params = self.params
        try:
            if "top_n" in body:
                params = dataclasses.replace(params, top_n=int(body["top_n"]))
            if "mode" in body:
                params = dataclasses.replace(params, mode=Mode(str(body["mode"])))
            if "radius" in body:
                params = dataclasses.replace(params, radius=int(body["radius"]))
        except (TypeError, ValueError) as exc:
            raise HttpError(400, f"bad search option: {exc}") from None
        if params.top_n > 200:
            raise HttpError(400, "top_n must be <= 200")
        if m.group(1):
            token = m.group(2)
            path, query_url = self.upload(token).path, f"/media/upload/{token}"
        else:
            vid = int(m.group(4))
            path, query_url = self.video_path(vid), f"/media/video/{vid}"
        try:
            with self.lock:
                resp = search_video(self.store, self.model, path, params)
        except VidretError as exc:
            raise HttpError(400, str(exc)) from None
        out = resp.to_json()
        out["query_url"] = query_url
        if m.group(1):
            out["query_name"] = self.upload(m.group(2)).name
        for r in resp.results:
            self._videos[r.video_id] = VideoRow(r.video_id, r.path, "", r.duration, 0.0, 0, "", READY, 0)
        for r in out["results"]:
            r["url"] = f"/media/video/{int(r['video_id'])}"
        return out

    def close(self) -> None:
        with self._uploads_lock:
            self.uploads.clear()
        if self._own_dir:
            shutil.rmtree(self.upload_dir, ignore_errors=True)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive for a single ``bytes=`` range; None to send the whole file.

    Raises HttpError(416) when the range cannot be satisfied.
    """
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if m is None:
        return None  # multiple or malformed ranges: the whole file (allowed by RFC 9110)
    a, b = m.groups()
    if not a and not b:
        return None
    if not a:  # suffix: the last b bytes
        n = int(b)
        if n == 0:
            raise HttpError(416, "empty suffix range")
        return max(0, size - n), size - 1
    start = int(a)
    end = min(int(b), size - 1) if b else size - 1
    if start >= size or (b and int(b) < start):
        raise HttpError(416, "range not satisfiable")
    return start, end


class Handler(BaseHTTPRequestHandler):
    server_version = "vidret-review"
    protocol_version = "HTTP/1.1"
    app: ReviewApp  # set on the subclass made by make_server
    quiet = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        if not self.quiet:
            super().log_message(format, *args)

    # ----------------------------------------------------------- responses
    def _headers(self, status: int, ctype: str, length: int, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()

    def _send_bytes(self, status: int, data: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self._headers(status, ctype, len(data), extra)
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_json(self, status: int, obj: Any) -> None:
        self._send_bytes(status, json.dumps(obj).encode(), "application/json", {"Cache-Control": "no-store"})

    def _send_error(self, err: HttpError) -> None:
        if err.status == 416:
            self._send_bytes(416, b"", "text/plain", {"Content-Range": "bytes */*"})
            return
        self._send_json(err.status, {"error": str(err)})

    def _send_file(self, path: Path, ctype: str | None = None) -> None:
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError:
            raise HttpError(404, "file not readable") from None
        with f:
            size = os.fstat(f.fileno()).st_size
            ctype = ctype or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            header = self.headers.get("Range")
            rng = _parse_range(header, size) if header else None
            extra = {"Accept-Ranges": "bytes", "Cache-Control": "no-cache"}
            if rng is None:
                start, end, status = 0, size - 1, 200
            else:
                start, end = rng
                status = 206
                extra["Content-Range"] = f"bytes {start}-{end}/{size}"
            length = max(0, end - start + 1)
            self._headers(status, ctype, length, extra)
            if self.command == "HEAD":
                return
            f.seek(start)
            left = length
            while left > 0:
                block = f.read(min(CHUNK, left))
                if not block:
                    break
                self.wfile.write(block)
                left -= len(block)

    # ----------------------------------------------------------- dispatch
    def _route(self, table: dict[str, re.Pattern[str]]) -> tuple[str, re.Match[str]]:
        raw = self.path
        if not raw.startswith("/") or raw.startswith("//"):
            raise HttpError(404, "not found")
        path = urlsplit(raw).path
        for name, rx in table.items():
            m = rx.fullmatch(path)
            if m:
                return name, m
        raise HttpError(404, "not found")

    def _get(self) -> None:
        name, m = self._route(_ROUTES_GET)
        if name == "index":
            self._send_file(STATIC_DIR / "index.html", "text/html; charset=utf-8")
        elif name == "static":
            fname = m.group(1)
            if fname not in STATIC_FILES:
                raise HttpError(404, "not found")
            self._send_file(STATIC_DIR / fname, STATIC_FILES[fname])
        elif name == "videos":
            rows = self.app.list_videos()
            self._send_json(200, [{"video_id": r.video_id, "name": os.path.basename(r.path), "duration": round(r.duration, 3)} for r in rows])
        elif name == "video":
            self._send_file(self.app.video_path(int(m.group(1))))
        elif name == "upload":
            self._send_file(self.app.upload(m.group(1)).path)

    def _handle(self, fn: Any) -> None:
        try:
            fn()
        except HttpError as err:
            if err.status == 413:
                self.close_connection = True  # the unread body stays on the socket
            self._send_error(err)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - one bad request must not stop the server
            self.close_connection = True
            try:
                self._send_json(500, {"error": f"internal error: {type(exc).__name__}"})
            except OSError:
                pass

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._handle(self._get)

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._handle(self._post)

    def _length(self) -> int:
        text = self.headers.get("Content-Length")
        if text is None or not text.isdigit():
            raise HttpError(411, "Content-Length required")
        return int(text)

    def _post(self) -> None:
        path = urlsplit(self.path).path if self.path.startswith("/") else ""
        if path == "/api/upload":
            length = self._length()
            token = self.app.save_upload(self.rfile, length, unquote(self.headers.get("X-Filename", "") or ""))
            self._send_json(200, {"query": f"upload:{token}"})
        elif path == "/api/search":
            length = self._length()
            if length > MAX_JSON_BODY:
                raise HttpError(413, "request too large")
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                raise HttpError(400, "body must be JSON") from None
            if not isinstance(body, dict):
                raise HttpError(400, "body must be a JSON object")
            self._send_json(200, self.app.search(body))
        else:
            raise HttpError(404, "not found")


class ReviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A browser dropping a keep-alive or media connection is routine, not an error.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def make_server(app: ReviewApp, host: str = "127.0.0.1", port: int = 8000, quiet: bool = True) -> ThreadingHTTPServer:
    """A bound (not yet serving) HTTP server for ``app``; ``port=0`` picks a free port."""
    handler = type("ReviewHandler", (Handler,), {"app": app, "quiet": quiet})
    httpd = ReviewServer((host, port), handler)
    httpd.daemon_threads = True
    return httpd
