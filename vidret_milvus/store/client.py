"""The connection: Lite or server, the pymilvus client, bounded retries of transient failures."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, TypeVar

from ..errors import StoreError
from .base import _SQLITE_MAGIC, STRONG_AFTER_DELETE_S


def is_lite_uri(uri: str) -> bool:
    """A Milvus Lite file path, not a server address."""
    return not uri.startswith(("http://", "https://", "tcp://", "unix:"))


def _file_head(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(_SQLITE_MAGIC))
    except OSError:
        return b""


def parse_server_version(text: str) -> tuple[int, int, int] | None:
    """``"v2.3.5-lite"`` -> ``(2, 3, 5)``; None when it is not a version."""
    m = re.match(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?", str(text or ""))
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else None


_TRANSIENT = ("unavailable", "deadline", "connection refused", "connect failed", "fail connecting", "socket closed", "timeout", "not ready",
              "rate limit", "ratelimit")  # a server shedding load (pymilvus' own retry is bypassed by the raw search path)


def is_transient(exc: BaseException) -> bool:
    """A failure worth retrying: the server is unreachable or slow, not a refused request."""
    text = f"{type(exc).__name__} {exc}".lower()
    return any(t in text for t in _TRANSIENT)


def _new_client(uri: str, token: str, timeout: float) -> Any:
    import logging
    import warnings

    with warnings.catch_warnings():
        # milvus-lite 2.5.1 imports pkg_resources, which warns on import; nothing to act on.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        from pymilvus import MilvusClient

        try:
            import milvus_lite  # noqa: F401
        except ImportError:  # a server-only install
            pass
    # pymilvus and milvus-lite (on the root logger) log a failed open at ERROR before it
    # raises; we raise our own clear error instead, so they are quiet during the connect.
    loggers = [logging.getLogger(n) for n in ("pymilvus", "pymilvus.milvus_client", "")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        return MilvusClient(uri=uri, token=token, timeout=timeout)
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


_S = TypeVar("_S", bound="ClientMixin")


class ClientMixin:
    """Retries, consistency of reads, closing (part of :class:`~vidret_milvus.store.Store`)."""

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # closing is best effort
            pass

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    retries: int = 3
    backoff_s: float = 0.5

    def _call(self, what: str, fn: Any, *args: Any, **kw: Any) -> Any:
        if what == "delete":
            self._strong_reads_until = time.monotonic() + STRONG_AFTER_DELETE_S
        for attempt in range(self.retries + 1):
            try:
                return fn(*args, timeout=self.timeout, **kw)
            except StoreError:
                raise
            except Exception as exc:
                if attempt < self.retries and is_transient(exc):
                    time.sleep(self.backoff_s * 2**attempt)
                    continue
                hint = " (the Milvus server is not answering: is it running?)" if is_transient(exc) else ""
                detail = " ".join(str(exc).split())  # pymilvus messages span lines
                raise StoreError(f"Milvus {what} failed{hint}: {detail[:500]}") from exc
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ binary index (BIN_FLAT / BIN_IVF_FLAT)
    def read_kw(self) -> dict[str, str]:
        """The consistency level of reads on a server (READ_CONSISTENCY); Lite has one process."""
        if self.is_lite:
            return {}
        return {"consistency_level": "Strong" if time.monotonic() < self._strong_reads_until else self.read_consistency}

    def server_version(self) -> tuple[int, int, int] | None:
        """The server's version, e.g. (2, 3, 5); None when it cannot be told (cached)."""
        if self._server_version is False:
            try:
                self._server_version = parse_server_version(self.client.get_server_version(timeout=self.timeout))
            except Exception:  # an old or odd server: the callers pick the safe path
                self._server_version = None
        return self._server_version  # type: ignore[return-value]
