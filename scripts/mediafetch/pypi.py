"""PyPI sources: one pinned file, with pip or, without it, the PyPI JSON API."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

from .common import FetchError, Log, copy_stream_hashed, run


def download_pypi_file(name: str, version: str, filename: str, dest: Path, log: Log,
                       timeout: float = 600) -> Path:
    """``pip download --no-deps`` of one pinned file (a wheel, else the sdist), else the PyPI
    JSON API (``timeout``: seconds for the file itself)."""
    binary = filename.endswith(".whl")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps",
           "--only-binary" if binary else "--no-binary", ":all:",
           f"{name}=={version}", "-d", str(dest)]
    log.info(f"  $ {' '.join(cmd[2:])}")
    try:
        run(cmd)
        if (dest / filename).is_file():
            return dest / filename
        raise FetchError(f"pip download did not produce {filename}")
    except FetchError as e:
        log.warn(f"pip download failed ({e}); trying the PyPI JSON API")
    url = f"https://pypi.org/pypi/{name}/{version}/json"
    try:
        log.info(f"  GET {url}")
        with urllib.request.urlopen(url, timeout=60) as r:
            meta = json.load(r)
        for u in meta.get("urls", []):
            if u.get("filename") == filename:
                log.info(f"  GET {u['url']}")
                with urllib.request.urlopen(u["url"], timeout=timeout) as r:
                    copy_stream_hashed(r, dest / filename)
                return dest / filename
    except (OSError, ValueError) as e:
        raise FetchError(f"could not download {filename}: {e}") from e
    raise FetchError(f"{filename} not listed at {url}")
