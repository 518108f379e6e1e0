"""The reviewer's verdicts: confirm / reject per (query, reference video), in a small SQLite file.

A verdict is keyed by the query's content (``sha256`` of the clip, so a re-upload of the same
file, or picking the stored video it is, finds it again) and the reference's numeric video id.
Each verdict keeps what the reviewer saw when deciding: the query's and the reference's names,
the search's copy decision, score and matched segments. Nothing here talks to Milvus.

Where the file lives (:func:`default_path`): beside a Milvus Lite store (``vidret.db`` ->
``vidret.verdicts.sqlite``), or ``./vidret-verdicts.sqlite`` in the working folder for a Milvus
server; ``serve --verdicts PATH`` (``VIDRET_VERDICTS``) chooses another.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

VERDICTS = ("confirm", "reject")
SERVER_DEFAULT = "vidret-verdicts.sqlite"
_SHA_RE = re.compile(r"[0-9a-f]{64}")

CSV_FIELDS = ["query_name", "query_sha256", "video_id", "reference", "reference_path", "verdict", "decided_at", "is_copy", "score", "mode",
              "segment", "query_start", "query_end", "ref_start", "ref_end", "similarity"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    query_sha256 TEXT NOT NULL,
    video_id INTEGER NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('confirm', 'reject')),
    query_name TEXT NOT NULL,
    reference_path TEXT NOT NULL,
    is_copy INTEGER,
    score REAL,
    mode TEXT,
    segments TEXT NOT NULL,
    decided_at REAL NOT NULL,
    PRIMARY KEY (query_sha256, video_id)
)
"""


def default_path(uri: str, is_lite: bool) -> Path:
    """Beside a Lite file (``x.db`` -> ``x.verdicts.sqlite``); ``./vidret-verdicts.sqlite`` for a server."""
    if is_lite:
        p = Path(uri)
        return p.with_name((p.stem if p.suffix == ".db" else p.name) + ".verdicts.sqlite")
    return Path(SERVER_DEFAULT)


class VerdictStore:
    """Verdicts in SQLite (``path``; created on first write). Safe from several threads and
    processes: one short connection per call, SQLite's own locking between processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._ready = False

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if not create and not self.path.exists():
            return None
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(str(self.path), timeout=10.0)
        if create and not self._ready:
            con.execute(_SCHEMA)
            con.commit()
            self._ready = True
        return con

    def _rows(self, where: str = "", args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            con = self._connect(create=False)
            if con is None:
                return []
            try:
                con.row_factory = sqlite3.Row
                try:
                    rows = con.execute(f"SELECT * FROM verdicts {where} ORDER BY decided_at, query_sha256, video_id", args).fetchall()
                except sqlite3.OperationalError as exc:
                    if "no such table" in str(exc):
                        return []
                    raise
            finally:
                con.close()
        return [_row_out(dict(r)) for r in rows]

    def set(self, query_sha256: str, video_id: int, verdict: str, *, query_name: str, reference_path: str,
            result: dict[str, Any] | None = None, mode: str | None = None) -> dict[str, Any]:
        """Record (or replace) a verdict; ``result`` is the search result the reviewer saw."""
        _check_key(query_sha256, video_id)
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
        result = result or {}
        segments = [{k: round(float(g[k]), 3) for k in ("query_start", "query_end", "ref_start", "ref_end", "score")} for g in result.get("segments", [])]
        row = (query_sha256, int(video_id), verdict, str(query_name), str(reference_path),
               None if result.get("is_copy") is None else int(bool(result["is_copy"])),
               None if result.get("score") is None else float(result["score"]), mode, json.dumps(segments), time.time())
        with self._lock:
            con = self._connect(create=True)
            assert con is not None
            try:
                with con:
                    con.execute("INSERT OR REPLACE INTO verdicts (query_sha256, video_id, verdict, query_name, reference_path, is_copy, score, mode, "
                                "segments, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            finally:
                con.close()
        return self.get(query_sha256, video_id) or {}

    def clear(self, query_sha256: str, video_id: int) -> bool:
        """Remove a verdict; True when there was one."""
        _check_key(query_sha256, video_id)
        with self._lock:
            con = self._connect(create=False)
            if con is None:
                return False
            try:
                with con:
                    cur = con.execute("DELETE FROM verdicts WHERE query_sha256 = ? AND video_id = ?", (query_sha256, int(video_id)))
                return cur.rowcount > 0
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return False
                raise
            finally:
                con.close()

    def get(self, query_sha256: str, video_id: int) -> dict[str, Any] | None:
        rows = self._rows("WHERE query_sha256 = ? AND video_id = ?", (query_sha256, int(video_id)))
        return rows[0] if rows else None

    def for_query(self, query_sha256: str) -> dict[int, dict[str, Any]]:
        """The verdicts on one query's results, by video id."""
        return {r["video_id"]: r for r in self._rows("WHERE query_sha256 = ?", (query_sha256,))}

    def all(self, query_sha256: str | None = None) -> list[dict[str, Any]]:
        """Every verdict (one query's with ``query_sha256``), oldest first."""
        if query_sha256 is None:
            return self._rows()
        return list(self.for_query(query_sha256).values())


def _check_key(query_sha256: str, video_id: int) -> None:
    if not isinstance(query_sha256, str) or not _SHA_RE.fullmatch(query_sha256):
        raise ValueError("query_sha256 must be 64 lowercase hex digits")
    if isinstance(video_id, bool) or not isinstance(video_id, int) or not 0 <= video_id < 2**63:
        raise ValueError("video_id must be a non-negative 64-bit integer")


def _row_out(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "query_sha256": r["query_sha256"], "query_name": r["query_name"], "video_id": int(r["video_id"]),
        "reference": Path(r["reference_path"]).name if r["reference_path"] else "", "reference_path": r["reference_path"],
        "verdict": r["verdict"], "decided_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["decided_at"])),
        "is_copy": None if r["is_copy"] is None else bool(r["is_copy"]), "score": r["score"], "mode": r["mode"],
        "segments": json.loads(r["segments"]),
    }


def _cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run as a formula (text starting = + - @ gets a quote)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(rows: list[dict[str, Any]]) -> str:
    """One line per matched segment (a verdict without segments: one line, segment columns empty)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_FIELDS)
    for r in rows:
        base = [_cell(r["query_name"]), r["query_sha256"], r["video_id"], _cell(r["reference"]), _cell(r["reference_path"]), r["verdict"],
                r["decided_at"], "" if r["is_copy"] is None else str(r["is_copy"]).lower(), "" if r["score"] is None else r["score"], r["mode"] or ""]
        if not r["segments"]:
            w.writerow(base + [""] * 6)
        for i, g in enumerate(r["segments"], 1):
            w.writerow(base + [i, g["query_start"], g["query_end"], g["ref_start"], g["ref_end"], g["score"]])
    return buf.getvalue()


__all__ = ["CSV_FIELDS", "VERDICTS", "VerdictStore", "default_path", "to_csv"]
