"""The review page server: pick or upload a query clip, search, review the copied segments.

A FastAPI app served by uvicorn. One process holds the store and the model (loaded once).
Searches run in a worker pool (``workers`` threads) when the store is a Milvus server; on
Milvus Lite (a local ``.db`` file, one process per file) the pool has one thread and every
store access goes through one lock, as before. Media are served by Starlette's ``FileResponse``
(single and multiple byte ranges, ``416`` with ``Content-Range: bytes */size``). The OpenAPI
description is at ``/openapi.json`` and the interactive docs at ``/docs``.

Routes (anything else is 404; no URL is ever turned into a filesystem path):

=========================  ====  ==============================================================
``/``                      GET   the page (``static/index.html``)
``/static/<name>``         GET   the page's own files, from a fixed list
``/favicon.ico``           GET   the page's icon
``/api/videos``            GET   stored videos: ``[{"video_id", "name", "duration"}]``
``/api/upload``            POST  the raw file as the body (``X-Filename`` header optional),
                                 at most ``max_upload`` bytes -> ``{"query": "upload:<token>"}``
``/api/search``            POST  JSON ``{"query": "upload:<token>" | "video:<id>", "top_n",
                                 "mode", "radius"}`` -> the ``search --json`` object plus
                                 ``query_name``, ``query_url``, ``query_sha256``, ``search_id`` and each
                                 result's ``url``, ``self_match`` and ``verdict``
``/api/verdict``           POST  JSON ``{"query", "video_id", "verdict": "confirm" | "reject" |
                                 "clear", "search_id"}`` -> the verdict kept (a result of that
                                 search; without search_id, of the query's latest)
``/api/verdicts.json``     GET   every verdict with its segments (download)
``/api/verdicts.csv``      GET   the same, one line per segment (download)
``/media/video/<id>``      GET   a stored video, looked up by its numeric id (Range requests)
``/media/upload/<token>``  GET   an uploaded query (Range requests)
=========================  ====  ==============================================================

Errors are ``{"error": "..."}`` with a 4xx status (malformed input never gives a 500).

Verdicts live in a small SQLite file (:mod:`vidret_milvus.verdicts`), keyed by the query clip's
sha256 and the reference's id: they come back with the next search of the same clip.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import re
import secrets
import shutil
import socket
import sqlite3
import stat
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote

import anyio
from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..descriptor import MAX_CODE_BITS
from ..errors import StoreError, VideoError, VidretError
from ..search import Mode, SearchParams, search_video
from ..store import READY, Store, VideoRow
from ..verdicts import VerdictStore, default_path, to_csv

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"review.js": "text/javascript", "review.css": "text/css", "favicon.svg": "image/svg+xml"}
MAX_JSON_BODY = 16 * 1024
KEEP_UPLOADS = 32  # older uploads are deleted
DEFAULT_WORKERS = 4
# Searches waiting for a worker, per worker, before new ones get 503 (a bounded queue keeps a
# flooded server answering instead of piling up minutes of work).
QUEUE_PER_WORKER = 16
INT64_MAX = 2**63 - 1  # Milvus ids are int64: a longer number is no stored video
KEEP_SHOWN = 512  # searches (and each query's latest) whose results are remembered: a verdict names one

_VIDEO_ID_RE = re.compile(r"[0-9]{1,19}")
_TOKEN_RE = re.compile(r"[0-9a-f]{32}")
_QUERY_RE = re.compile(r"(upload):([0-9a-f]{32})|(video):([0-9]{1,19})")
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
    sha256: str


# ---------------------------------------------------------------- API shapes (OpenAPI)

class SearchRequest(BaseModel):
    """Body of ``POST /api/search``. Strict integers: ``"10"``, ``true`` or ``1e400`` are refused (400)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"query": "video:42", "top_n": 10, "mode": "duration"}]})

    query: str = Field(pattern=r"^(upload:[0-9a-f]{32}|video:[0-9]{1,19})$",
                       description='"upload:<token>" (from /api/upload) or "video:<id>" (from /api/videos)')
    top_n: int | None = Field(None, strict=True, ge=1, le=200, description="results to return (default: serve --top-n)")
    mode: Mode | None = Field(None, description="copy decision: duration (default), embedding or codes")
    radius: int | None = Field(None, strict=True, ge=0, le=MAX_CODE_BITS, description="Hamming radius of the recall in bits, at most the code length (default: the model's)")


class VerdictRequest(BaseModel):
    """Body of ``POST /api/verdict``: the reviewer's verdict on one result of a query's last search."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"query": "video:42", "video_id": 7, "verdict": "confirm"}]})

    query: str = Field(pattern=r"^(upload:[0-9a-f]{32}|video:[0-9]{1,19})$", description="the query as sent to /api/search")
    video_id: int = Field(strict=True, ge=0, le=INT64_MAX, description="the result's video_id")
    verdict: Literal["confirm", "reject", "clear"] = Field(description="clear removes the verdict")
    search_id: str | None = Field(None, pattern=r"^[0-9a-f]{32}$",
                                  description="the search_id of the response the reviewer saw (default: the query's latest search, "
                                              "which may be another reviewer's with other settings)")


class VerdictOut(BaseModel):
    query: str
    video_id: int
    verdict: Literal["confirm", "reject"] | None = Field(description="null once cleared")
    decided_at: str | None = None


class SegmentOut(BaseModel):
    query_start: float
    query_end: float
    ref_start: float
    ref_end: float
    score: float


class ResultOut(BaseModel):
    """One reference video; ``url`` plays it. Further keys as in ``search --json`` may appear."""

    model_config = ConfigDict(extra="allow")

    video_id: int
    path: str = Field(description="the stored video's path on the server")
    url: str = Field(description="/media/video/<video_id>")
    duration: float
    score: float
    is_copy: bool
    repetition_degree: float
    matched_seconds: float
    confidence: float
    segments: list[SegmentOut]
    self_match: bool = Field(False, description="this result is the query itself (the stored video searched, or the same file uploaded)")
    verdict: Literal["confirm", "reject"] | None = Field(None, description="the reviewer's verdict kept for this query and video")


class SearchOut(BaseModel):
    """The ``search --json`` object for the query, plus where the browser finds the media."""

    model_config = ConfigDict(extra="allow")

    query: str = Field(description="the query as sent (an upload's server path is never shown)")
    query_name: str = Field(description="the upload's file name, or the stored video's")
    query_url: str = Field(description="/media/upload/<token> or /media/video/<id>")
    query_sha256: str = Field(description="the query clip's sha256 (verdicts are kept under it)")
    search_id: str = Field(description="names this search's results in POST /api/verdict")
    query_duration: float
    results: list[ResultOut]
    timing_ms: dict[str, float]
    candidates: dict[str, Any]
    decision: dict[str, Any]


class VideoOut(BaseModel):
    video_id: int
    name: str = Field(description="file name (no folders)")
    duration: float


class UploadOut(BaseModel):
    query: str = Field(description='"upload:<token>", for /api/search')


class ErrorOut(BaseModel):
    error: str


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"model": ErrorOut} for c in codes}


# ---------------------------------------------------------------- state

class ReviewApp:
    """State shared by the request handlers: store, model, uploads, the search pool.

    ``workers``: concurrent searches on a Milvus server. On Milvus Lite it is 1 and ``lock``
    serialises every store and model use (the file belongs to this process, and Lite is not
    made for concurrent callers); on a server ``lock`` is a no-op context manager.

    ``verdicts``: the reviewer's verdicts file (default: :func:`vidret_milvus.verdicts.default_path`,
    beside a Lite store or ``./vidret-verdicts.sqlite`` for a server).
    """

    def __init__(self, store: Store, model: Any, params: SearchParams = SearchParams(), max_upload: int = 200 * 1024 * 1024,
                 upload_dir: str | Path | None = None, workers: int = DEFAULT_WORKERS, verdicts: str | Path | None = None) -> None:
        if int(workers) < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.store = store
        self.model = model
        self.params = params
        self.max_upload = int(max_upload)
        # A store that cannot say what it is counts as Lite: serialising is always safe.
        self.concurrent = not bool(getattr(store, "is_lite", True))
        self.workers = int(workers) if self.concurrent else 1
        self.lock: contextlib.AbstractContextManager[Any] = contextlib.nullcontext() if self.concurrent else threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="vidret-search")
        self.max_pending = QUEUE_PER_WORKER * self.workers
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._own_dir = upload_dir is None
        self.upload_dir = Path(tempfile.mkdtemp(prefix="vidret-uploads-") if upload_dir is None else upload_dir)
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        self.uploads: OrderedDict[str, Upload] = OrderedDict()
        self._uploads_lock = threading.Lock()
        self._videos: dict[int, VideoRow] = {}
        if verdicts is None:
            verdicts = default_path(str(getattr(store, "uri", "vidret.db")), not self.concurrent)
        self.verdicts = VerdictStore(verdicts)
        # Per query clip (sha256): its last search's results by video id, its name and mode.
        self._shown: OrderedDict[str, tuple[str, str, dict[int, dict[str, Any]]]] = OrderedDict()
        self._shown_lock = threading.Lock()

    # ----------------------------------------------------------- lookups (blocking: call from a thread)
    def list_videos(self) -> list[VideoRow]:
        with self.lock:
            rows = self.store.list_videos(READY) if self.store.meta() is not None else []
        self._videos.update({r.video_id: r for r in rows})
        return sorted(rows, key=lambda r: (os.path.basename(r.path), r.video_id))

    def video_row(self, video_id: int, need_sha: bool = False) -> VideoRow:
        if not 0 <= video_id <= INT64_MAX:
            raise HttpError(404, "no such video")
        row = self._videos.get(video_id)
        if row is None or (need_sha and not row.sha256):  # rows known from search results lack the sha256
            with self.lock:
                row = self.store.get_videos([video_id]).get(video_id) if self.store.meta() is not None else None
            if row is None:
                raise HttpError(404, "no such video")
            self._videos[video_id] = row
        return row

    def video_path(self, video_id: int) -> Path:
        return Path(self.video_row(video_id).path)

    def resolve_query(self, query: str) -> tuple[Path, str, str, str, int | None]:
        """(file, media url, display name, sha256, stored video id or None) of an API query string."""
        m = _QUERY_RE.fullmatch(query)
        if m is None:  # the models' patterns already refused it; kept so this never trusts its caller
            raise HttpError(400, 'query must be "upload:<token>" or "video:<id>"')
        if m.group(1):
            up = self.upload(m.group(2))
            return up.path, f"/media/upload/{m.group(2)}", up.name, up.sha256, None
        vid = int(m.group(4))
        row = self.video_row(vid, need_sha=True)
        return Path(row.path), f"/media/video/{vid}", os.path.basename(row.path), row.sha256, vid

    def upload(self, token: str) -> Upload:
        with self._uploads_lock:
            up = self.uploads.get(token)
        if up is None:
            raise HttpError(404, "no such upload")
        return up

    # ----------------------------------------------------------- actions
    async def save_upload(self, chunks: Any, length: int, filename: str) -> str:
        """Write the body (an async iterator of bytes, ``length`` bytes announced) to a new upload."""
        if length > self.max_upload:
            raise HttpError(413, f"upload larger than the limit ({self.max_upload} bytes)")
        if length <= 0:
            raise HttpError(400, "empty upload")
        token = secrets.token_hex(16)
        m = _EXT_RE.fullmatch(Path(filename).suffix) if filename else None
        path = self.upload_dir / f"{token}{m.group(0).lower() if m else '.bin'}"
        got = 0
        digest = hashlib.sha256()
        try:
            f = await anyio.open_file(path, "wb")
            try:
                async for block in chunks:
                    got += len(block)
                    if got > length:  # more than announced: h11 refuses this already; never trust it
                        raise HttpError(400, "body longer than Content-Length")
                    digest.update(block)
                    await f.write(block)
            finally:
                await f.aclose()
        except ClientDisconnect:
            got = -1
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if got != length:
            path.unlink(missing_ok=True)
            raise HttpError(400, "upload cut short")
        name = os.path.basename(filename)[:200] if filename else path.name
        with self._uploads_lock:
            self.uploads[token] = Upload(path, name, length, digest.hexdigest())
            while len(self.uploads) > KEEP_UPLOADS:
                _, old = self.uploads.popitem(last=False)
                old.path.unlink(missing_ok=True)
        return token

    async def search(self, req: SearchRequest) -> dict[str, Any]:
        """Run :meth:`search_blocking` in the worker pool (503 when its queue is full)."""
        with self._pending_lock:
            if self._pending >= self.max_pending:
                raise HttpError(503, f"busy: {self._pending} searches waiting; try again later")
            self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, self.search_blocking, req)
        finally:
            with self._pending_lock:
                self._pending -= 1

    def search_blocking(self, req: SearchRequest) -> dict[str, Any]:
        path, query_url, query_name, sha, self_id = self.resolve_query(req.query)
        params = self.params
        try:
            if req.top_n is not None:
                params = dataclasses.replace(params, top_n=req.top_n)
            if req.mode is not None:
                params = dataclasses.replace(params, mode=req.mode)
            if req.radius is not None:
                if req.radius > self.model.config.code_bits:
                    raise ValueError(f"radius {req.radius} exceeds the model's {self.model.config.code_bits}-bit codes")
                params = dataclasses.replace(params, radius=req.radius)
        except (TypeError, ValueError) as exc:
            raise HttpError(400, f"bad search option: {exc}") from None
        try:
            with self.lock:
                # search_video finds the query's own stored file (an upload of a stored video's
                # content too) and marks it self_match.
                resp = search_video(self.store, self.model, path, params, own_video_ids=() if self_id is None else (self_id,))
        except StoreError as exc:
            raise HttpError(503, f"store unavailable: {exc}") from None
        except VidretError as exc:
            # The reason names the file: say it with the name the browser knows, never the
            # upload's path on this machine.
            reason = self.scrub(exc.reason if isinstance(exc, VideoError) else str(exc), path, query_name)
            raise HttpError(400, reason if reason.startswith(f"{query_name}: ") else f"{query_name}: {reason}") from None
        out = resp.to_json()
        out["query"] = req.query
        out["query_name"] = query_name
        out["query_url"] = query_url
        out["query_sha256"] = sha
        # Each search is remembered by its own id: two reviewers searching one clip with other
        # settings each judge the results they saw.
        search_id = secrets.token_hex(16)
        out["search_id"] = search_id
        for r in resp.results:
            self._videos.setdefault(r.video_id, VideoRow(r.video_id, r.path, "", r.duration, 0.0, 0, "", READY, 0))
        try:
            kept = self.verdicts.for_query(sha)
        except (sqlite3.Error, OSError):  # a broken verdicts file never stops a search
            kept = {}
        for r in out["results"]:
            vid = int(r["video_id"])
            r["url"] = f"/media/video/{vid}"
            r["self_match"] = bool(r.get("self_match"))
            r["verdict"] = kept[vid]["verdict"] if vid in kept else None
        shown = (query_name, params.mode.value, {int(r["video_id"]): r for r in out["results"]}, sha)
        with self._shown_lock:
            for key in (search_id, sha):  # this search, and the query's latest
                self._shown[key] = shown
                self._shown.move_to_end(key)
            while len(self._shown) > KEEP_SHOWN:
                self._shown.popitem(last=False)
        return out

    def scrub(self, text: str, path: Path, name: str) -> str:
        """``text`` with every spelling of the upload's server path (and folder) replaced."""
        spellings = {str(path): name, os.path.realpath(path): name, str(self.upload_dir): "", os.path.realpath(self.upload_dir): "", path.name: name}
        for k in sorted(spellings, key=len, reverse=True):
            text = text.replace(k, spellings[k])
        return text

    def set_verdict(self, req: VerdictRequest) -> dict[str, Any]:
        """Keep (or clear) the verdict on one result of the query's last search."""
        _, _, query_name, sha, _ = self.resolve_query(req.query)
        if req.verdict == "clear":
            self.verdicts.clear(sha, req.video_id)
            return {"query": req.query, "video_id": req.video_id, "verdict": None, "decided_at": None}
        with self._shown_lock:
            shown = self._shown.get(req.search_id or sha)
        if req.search_id is not None and (shown is None or shown[3] != sha):
            # Another query's search must never lend its results to this query's verdict.
            raise HttpError(404, f"search {req.search_id} is not a search of this query (too old, another query, or the server restarted): search again")
        result = shown[2].get(req.video_id) if shown else None
        if result is None:
            raise HttpError(404, f"video {req.video_id} is not a result of this query's {'search' if req.search_id else 'last search'} (search it first)")
        kept = self.verdicts.set(sha, req.video_id, req.verdict, query_name=query_name, reference_path=str(result.get("path", "")),
                                 result=result, mode=shown[1] if shown else None)
        return {"query": req.query, "video_id": req.video_id, "verdict": kept["verdict"], "decided_at": kept["decided_at"]}

    def close(self) -> None:
        # Queued searches are cancelled; running ones finish before the uploads (and, in the
        # caller, the store) they use go away.
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._uploads_lock:
            self.uploads.clear()
        if self._own_dir:
            shutil.rmtree(self.upload_dir, ignore_errors=True)


# ---------------------------------------------------------------- HTTP

def _file(path: Path, media_type: str | None = None) -> FileResponse:
    """A FileResponse (Range requests handled by Starlette) for an existing regular file, else 404."""
    try:
        st = os.stat(path)
    except OSError:
        raise HttpError(404, "file not readable") from None
    if not stat.S_ISREG(st.st_mode):
        raise HttpError(404, "file not readable")
    return FileResponse(path, media_type=media_type, stat_result=st, headers={"Cache-Control": "no-cache"})


def _content_length(text: str | None) -> int:
    # h11 has checked the syntax already; the length cap keeps int() cheap whatever comes.
    if text is None:
        raise HttpError(411, "Content-Length required")
    text = text.strip()
    if not text.isdigit() or len(text) > 18:
        raise HttpError(400, "bad Content-Length")
    return int(text)


class _NoSniff:
    """Adds ``X-Content-Type-Options: nosniff`` to every response (pure ASGI: no buffering)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-content-type-options", b"nosniff")]
            await send(message)

        await self.app(scope, receive, send_with_header)


def create_app(review: ReviewApp) -> FastAPI:
    """The FastAPI application for ``review`` (routes in the module docstring)."""
    api = FastAPI(
        title="vidret-milvus review server", version=__version__, redirect_slashes=False, redoc_url=None,
        # A JSON body without a Content-Type header is still read as JSON (as before the port).
        strict_content_type=False,
        description="Upload or pick a query clip, search it, play each reference with its copied segments. "
                    "Errors are `{\"error\": \"...\"}`.",
    )
    api.add_middleware(_NoSniff)
    api.state.review = review

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})

    @api.exception_handler(HttpError)
    async def _http_error(_: Request, exc: HttpError) -> JSONResponse:
        # 413: the unread body stays on the socket, so this connection cannot be reused.
        return error(exc.status, str(exc), {"Connection": "close"} if exc.status == 413 else None)

    @api.exception_handler(StarletteHTTPException)
    async def _starlette_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @api.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        # 400 as before (not FastAPI's 422), naming the field and the rule, never echoing input.
        parts = []
        for e in exc.errors()[:5]:
            if e.get("type") == "json_invalid":
                return error(400, "body must be JSON")
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{loc}: {e.get('msg', 'invalid')}" if loc else str(e.get("msg", "invalid")))
        return error(400, "bad request: " + "; ".join(parts))

    @api.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        return error(500, f"internal error: {type(exc).__name__}")

    def get(path: str, **kw: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """GET route with HEAD beside it (HEAD kept out of the docs: same answer, no body)."""
        def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
            api.head(path, include_in_schema=False, **{k: v for k, v in kw.items() if k not in ("response_model", "include_in_schema")})(fn)
            return api.get(path, **kw)(fn)
        return deco

    # Plain ``def`` handlers: FastAPI runs them in its thread pool (they may wait for the store).
    @get("/", include_in_schema=False)
    def index() -> FileResponse:
        return _file(STATIC_DIR / "index.html", "text/html")

    @get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        if name not in STATIC_FILES:
            raise HttpError(404, "not found")
        return _file(STATIC_DIR / name, STATIC_FILES[name])

    @get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return _file(STATIC_DIR / "favicon.ico", "image/x-icon")

    @get("/api/videos", response_model=list[VideoOut], summary="Stored videos (ready ones), by name")
    def videos() -> JSONResponse:
        rows = review.list_videos()
        return JSONResponse([{"video_id": r.video_id, "name": os.path.basename(r.path), "duration": round(r.duration, 3)} for r in rows],
                            headers={"Cache-Control": "no-store"})

    @get("/media/video/{video_id}", summary="A stored video (byte ranges supported)", response_class=FileResponse,
         responses={200: {"content": {"video/mp4": {}}}, 206: {"description": "partial content"}, **_errors(404, 416)})
    def media_video(video_id: str) -> FileResponse:
        if not _VIDEO_ID_RE.fullmatch(video_id):
            raise HttpError(404, "not found")
        return _file(review.video_path(int(video_id)))

    @get("/media/upload/{token}", summary="An uploaded query (byte ranges supported)", response_class=FileResponse,
         responses={200: {"content": {"video/mp4": {}}}, 206: {"description": "partial content"}, **_errors(404, 416)})
    def media_upload(token: str) -> FileResponse:
        if not _TOKEN_RE.fullmatch(token):
            raise HttpError(404, "not found")
        return _file(review.upload(token).path)

    @api.post(
        "/api/upload", response_model=UploadOut, summary="Upload a query clip (the raw file is the body)",
        responses=_errors(400, 411, 413),
        openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                                       "description": "the clip's bytes; Content-Length required, at most the server's --max-upload-mb"}},
    )
    async def upload(request: Request,
                     x_filename: Annotated[str, Header(description="the clip's file name, percent-encoded (optional)")] = "") -> UploadOut:
        length = _content_length(request.headers.get("content-length"))
        token = await review.save_upload(request.stream(), length, unquote(x_filename or ""))
        return UploadOut(query=f"upload:{token}")

    @api.post("/api/search", response_model=SearchOut, summary="Search a query clip",
              responses=_errors(400, 404, 413, 503), max_body_size=MAX_JSON_BODY)
    async def search(body: SearchRequest) -> dict[str, Any]:
        return await review.search(body)

    def verdicts_guard(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except (sqlite3.Error, OSError) as exc:
            raise HttpError(503, f"verdicts file unavailable: {type(exc).__name__}") from None

    @api.post("/api/verdict", response_model=VerdictOut, summary="Confirm, reject or clear the verdict on one result",
              responses=_errors(400, 404, 413, 503), max_body_size=MAX_JSON_BODY)
    def verdict(body: VerdictRequest) -> JSONResponse:
        return JSONResponse(verdicts_guard(lambda: review.set_verdict(body)), headers={"Cache-Control": "no-store"})

    def download(name: str) -> dict[str, str]:
        return {"Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="{name}"'}

    @get("/api/verdicts.json", summary="Every verdict, with the segments the reviewer saw (download)")
    def verdicts_json() -> JSONResponse:
        return JSONResponse(verdicts_guard(review.verdicts.all), headers=download("vidret-verdicts.json"))

    @get("/api/verdicts.csv", summary="Every verdict, one line per segment (download)", response_class=Response,
         responses={200: {"content": {"text/csv": {}}}})
    def verdicts_csv() -> Response:
        text = verdicts_guard(lambda: to_csv(review.verdicts.all()))
        return Response(text, media_type="text/csv; charset=utf-8", headers=download("vidret-verdicts.csv"))

    return api


class ReviewServer:
    """uvicorn serving :func:`create_app` on a socket bound here, so ``port=0`` gives a free port
    known before serving. The surface of the old ``http.server`` one: ``server_address``,
    ``serve_forever()`` (blocks; in the main thread Ctrl-C/SIGTERM stop it gracefully),
    ``shutdown()`` (from another thread) and ``server_close()``."""

    def __init__(self, review: ReviewApp, host: str = "127.0.0.1", port: int = 8000, quiet: bool = True) -> None:
        import uvicorn
        from uvicorn.config import LOGGING_CONFIG

        self.review = review
        self.app = create_app(review)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=128)
        config = uvicorn.Config(
            self.app, http="h11", lifespan="off", access_log=not quiet, log_level="warning" if quiet else "info",
            # Quiet: leave the process's logging alone (warnings still reach stderr).
            log_config=None if quiet else LOGGING_CONFIG, timeout_graceful_shutdown=10,
        )
        self._server = uvicorn.Server(config)
        self._stopped = threading.Event()

    @property
    def server_address(self) -> tuple[Any, ...]:
        return self.socket.getsockname()

    def serve_forever(self) -> None:
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def shutdown(self, timeout: float = 30.0) -> None:
        self._server.should_exit = True
        self._stopped.wait(timeout)

    def server_close(self) -> None:
        self.socket.close()


def make_server(app: ReviewApp, host: str = "127.0.0.1", port: int = 8000, quiet: bool = True) -> ReviewServer:
    """A bound (not yet serving) server for ``app``; ``port=0`` picks a free port."""
    return ReviewServer(app, host, port, quiet)


__all__ = ["ReviewApp", "ReviewServer", "SearchOut", "SearchRequest", "VerdictRequest", "create_app", "make_server"]

