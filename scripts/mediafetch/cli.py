"""``python3 scripts/fetch_media.py [--only SOURCE] [--out DIR] [--quiet] [--force]
[--cache-dir DIR]``: every source in turn, the manifest saved after each."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .bbb import fetch_bbb
from .common import FetchError, Log
from .debian import Apt
from .manifest import MANIFEST_NAME, load_manifest, write_manifest
from .photos import PACKAGES, fetch_package
from .videos import VIDEO_SOURCE_NAMES, VIDEO_SOURCES, fetch_video_source

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_OUT = REPO_ROOT / "resources"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Fetch Big Buck Bunny, videos from Debian/PyPI packages and Debian "
                    "wallpaper photos into resources/.",
    )
    ap.add_argument("--only", choices=("bbb", "photos", "videos", *VIDEO_SOURCE_NAMES),
                    help="fetch only this source ('videos': every video source but bbb)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help=f"output folder (default: {DEFAULT_OUT})")
    ap.add_argument("--quiet", action="store_true", help="print only warnings, errors and failures")
    ap.add_argument("--force", action="store_true", help="refetch even if present and verified")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="keep downloaded sdist/.deb files here (default: temporary, deleted)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = Log(args.quiet)
    out_dir: Path = args.out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = args.cache_dir.resolve() if args.cache_dir else None
    manifest_path = out_dir / MANIFEST_NAME
    manifest = load_manifest(manifest_path)
    t_start = time.monotonic()
    summaries: list[str] = []
    failures: list[str] = []

    jobs: list[tuple[str, Callable[[dict[str, Any]], tuple[dict[str, Any], str]]]] = []
    if args.only in (None, "bbb"):
        jobs.append(("bbb", lambda m: fetch_bbb(out_dir, m, cache_dir, args.force, log)))
    apt = Apt(log)
    for vsrc in VIDEO_SOURCES:
        if args.only in (None, "videos", vsrc.name):
            jobs.append((vsrc.name, lambda m, s=vsrc: fetch_video_source(
                s, out_dir, m, apt, cache_dir, args.force, log)))
    if args.only in (None, "photos"):
        for spec in PACKAGES:
            jobs.append((f"photos:{spec.slot}",
                         lambda m, s=spec: fetch_package(s, out_dir, m, apt, cache_dir, args.force, log)))

    for name, job in jobs:
        try:
            manifest, summary = job(manifest)
            summaries.append(summary)
        except FetchError as e:
            log.error(f"{name}: {e}")
            failures.append(f"{name}: {e}")
        except Exception as e:  # noqa: BLE001 - report and go on with the other sources
            log.error(f"{name}: unexpected {type(e).__name__}: {e}")
            failures.append(f"{name}: unexpected {type(e).__name__}: {e}")
        # Save after each source so an interrupted run keeps what it fetched.
        write_manifest(manifest_path, manifest)

    elapsed = time.monotonic() - t_start
    photos = [f for f in manifest["files"] if f.get("kind") == "photo"]
    videos = [f for f in manifest["files"] if f.get("kind") == "video"]
    video_s = sum(f.get("duration_s", 0.0) for f in videos)
    log.info("")
    log.info("Summary:")
    for s in summaries:
        log.info(f"  ok    {s}")
    for f in failures:
        print(f"  FAIL  {f}", file=sys.stderr)
    log.info(f"  manifest: {manifest_path} ({len(manifest['files'])} files, {len(videos)} videos "
             f"({video_s:.0f} s), {len(photos)} photos)")
    log.info(f"  took {elapsed:.1f} s")
    if failures:
        print(f"fetch_media: {len(failures)} source(s) failed; see above.", file=sys.stderr)
        return 1
    return 0
