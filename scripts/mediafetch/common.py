"""What every source uses: the error type, the log, hashing, atomic copies, subprocesses,
cached downloads and the staging folders that are swapped in whole."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO


class FetchError(RuntimeError):
    """A source could not be fetched or verified."""


# --------------------------------------------------------------------------- #
# Output
# --------------------------------------------------------------------------- #
class Log:
    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def info(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)

    def warn(self, msg: str) -> None:
        print(f"WARNING: {msg}", file=sys.stderr, flush=True)

    def error(self, msg: str) -> None:
        print(f"ERROR: {msg}", file=sys.stderr, flush=True)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- #
# Hashing and atomic file writes
# --------------------------------------------------------------------------- #
def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                return h.hexdigest()
            h.update(block)


def copy_stream_hashed(src: BinaryIO, dest: Path, chunk: int = 1 << 20) -> tuple[str, int]:
    """Copy ``src`` to ``dest`` atomically (via ``dest.tmp``); return (sha256, size)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    h = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "wb") as out:
            while True:
                block = src.read(chunk)
                if not block:
                    break
                h.update(block)
                out.write(block)
                size += len(block)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return h.hexdigest(), size


# --------------------------------------------------------------------------- #
# Subprocess helper
# --------------------------------------------------------------------------- #
def run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    except FileNotFoundError as e:
        raise FetchError(f"command not found: {cmd[0]}") from e
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise FetchError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): " + " | ".join(tail))
    return proc.stdout


# --------------------------------------------------------------------------- #
# Downloads kept in --cache-dir, staging folders
# --------------------------------------------------------------------------- #
def use_cached(path: Path, sha256: str, log: Log) -> bool:
    """Is ``path`` a kept download matching its pinned digest?  A stale or corrupt copy is
    deleted (pip would reuse it)."""
    if path.is_file() and sha256_file(path) == sha256:
        log.info(f"  using cached {path}")
        return True
    if path.exists():
        path.unlink()
    return False


def download_dir(cache_dir: Path | None, kind: str, work: Path) -> Path:
    """``<cache>/<kind>`` when downloads are kept, else ``<work>/dl`` (deleted with ``work``)."""
    d = cache_dir / kind if cache_dir is not None else work / "dl"
    d.mkdir(parents=True, exist_ok=True)
    return d


def new_stage(final: Path) -> Path:
    """An empty ``.<name>.staging`` folder beside ``final``, to build a source's files in."""
    stage = final.parent / f".{final.name}.staging"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    return stage


def swap_in(stage: Path, final: Path) -> None:
    """Replace ``final`` by ``stage`` (so files no longer listed disappear)."""
    if final.exists():
        old = final.parent / f".{final.name}.old"
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
        os.replace(stage, final)
        shutil.rmtree(old)
    else:
        os.replace(stage, final)
