"""Big Buck Bunny (the full 596 s film), from the PyPI sdist of moviepy."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Iterable

from .common import FetchError, Log, copy_stream_hashed, human_bytes, sha256_file, use_cached
from .headers import mp4_info
from .manifest import source_files, update_manifest
from .pypi import download_pypi_file

BBB_SOURCE = "bbb"
BBB_SDIST_NAME = "moviepy"
BBB_SDIST_VERSION = "2.2.1"
BBB_SDIST_FILENAME = "moviepy-2.2.1.tar.gz"
BBB_SDIST_SHA256 = "c80cb56815ece94e5e3e2d361aa40070eeb30a09d23a24c4e684d03e16deacb1"
BBB_TAR_MEMBER = (
    "moviepy-2.2.1/docs/_static/medias/getting_started/"
    "moviepy_10_minutes/moviepy_10_minutes.zip"
)
# The zip also holds a trailer script, logos and a font; the film is the only
# (and largest) mp4.  Expected member, checked after the "largest mp4" search:
BBB_ZIP_MEMBER = "moviepy_10_minutes/resources/bbb.mp4"
BBB_FILENAME = "bbb.mp4"
BBB_SHA256 = "475fbbf34c4c367998f80c29ea03b15a743941179b12da3373fc6706e68621d0"
BBB_LICENSE = "CC-BY-3.0"
BBB_ATTRIBUTION = "(c) copyright 2008, Blender Foundation / www.bigbuckbunny.org"


def find_film_member(names_sizes: Iterable[tuple[str, int]]) -> str:
    """The largest ``.mp4`` in the zip (the full film)."""
    mp4s = [(size, name) for name, size in names_sizes if name.lower().endswith(".mp4")]
    if not mp4s:
        raise FetchError("no .mp4 in the moviepy docs zip")
    return max(mp4s)[1]


def fetch_bbb(out_dir: Path, manifest: dict[str, Any], cache_dir: Path | None, force: bool, log: Log):
    """Return (manifest, summary)."""
    dest = out_dir / BBB_FILENAME
    log.info(f"[bbb] Big Buck Bunny from PyPI sdist {BBB_SDIST_NAME}=={BBB_SDIST_VERSION}")
    recorded = source_files(manifest, BBB_SOURCE)
    if not force and dest.is_file():
        digest = sha256_file(dest)
        if digest == BBB_SHA256:
            if recorded and recorded[0].get("sha256") == digest:
                log.info(f"  {dest} present, sha256 verified: skip")
                return manifest, f"bbb: verified, skipped ({human_bytes(dest.stat().st_size)})"
            log.info(f"  {dest} present, sha256 verified; recording it in the manifest")
            return _record_bbb(out_dir, manifest, dest, digest), "bbb: verified, recorded"
        log.warn(f"{dest} has sha256 {digest}, expected {BBB_SHA256}: refetching")

    tmp_holder = None
    if cache_dir is None:
        tmp_holder = tempfile.TemporaryDirectory(prefix="fetch_media_sdist_")
        work = Path(tmp_holder.name)
    else:
        work = cache_dir / "pypi"
        work.mkdir(parents=True, exist_ok=True)
    try:
        sdist = work / BBB_SDIST_FILENAME
        if not use_cached(sdist, BBB_SDIST_SHA256, log):
            t0 = time.monotonic()
            sdist = download_pypi_file(BBB_SDIST_NAME, BBB_SDIST_VERSION, BBB_SDIST_FILENAME,
                                       work, log, timeout=300)
            log.info(f"  downloaded {sdist.name} ({human_bytes(sdist.stat().st_size)}) "
                     f"in {time.monotonic() - t0:.1f} s")
            got = sha256_file(sdist)
            if got != BBB_SDIST_SHA256:
                raise FetchError(f"{sdist.name}: sha256 {got} != pinned {BBB_SDIST_SHA256}")
        log.info(f"  sdist sha256 verified; extracting {BBB_TAR_MEMBER}")
        try:
            with tarfile.open(sdist, "r:gz") as tar:
                zf_obj = tar.extractfile(BBB_TAR_MEMBER)
                if zf_obj is None:
                    raise FetchError(f"{BBB_TAR_MEMBER} is not a regular file in the sdist")
                # The zip is ~50 MB; spool it so zipfile can seek.
                with tempfile.TemporaryFile(dir=work) as spool:
                    shutil.copyfileobj(zf_obj, spool, 1 << 20)
                    spool.seek(0)
                    with zipfile.ZipFile(spool) as zf:
                        member = find_film_member((i.filename, i.file_size) for i in zf.infolist())
                        if member != BBB_ZIP_MEMBER:
                            log.warn(f"film member is {member}, expected {BBB_ZIP_MEMBER}")
                        log.info(f"  extracting zip member {member} -> {dest}")
                        with zf.open(member) as src:
                            digest, size = copy_stream_hashed(src, dest)
        except KeyError as e:
            raise FetchError(f"member missing from the sdist/zip: {e}") from e
        except (tarfile.TarError, zipfile.BadZipFile, OSError) as e:
            raise FetchError(f"could not unpack {sdist.name}: {e}") from e
        if digest != BBB_SHA256:
            dest.unlink()
            raise FetchError(f"{BBB_FILENAME}: sha256 {digest} != pinned {BBB_SHA256}")
        log.info(f"  wrote {dest} ({human_bytes(size)}), sha256 {digest[:16]}... verified")
    finally:
        if tmp_holder is not None:
            tmp_holder.cleanup()
    return _record_bbb(out_dir, manifest, dest, digest), f"bbb: fetched ({human_bytes(size)})"


def _record_bbb(out_dir: Path, manifest: dict[str, Any], dest: Path, digest: str) -> dict[str, Any]:
    info = mp4_info(dest)
    source_info = {
        "kind": "pypi-sdist",
        "sdist": f"{BBB_SDIST_NAME}=={BBB_SDIST_VERSION}",
        "sdist_filename": BBB_SDIST_FILENAME,
        "sdist_sha256": BBB_SDIST_SHA256,
        "tar_member": BBB_TAR_MEMBER,
        "zip_member": BBB_ZIP_MEMBER,
        "title": "Big Buck Bunny",
        "license": BBB_LICENSE,
        "attribution": BBB_ATTRIBUTION,
    }
    entry = {
        "path": dest.relative_to(out_dir).as_posix(),
        "kind": "video",
        "version": f"{BBB_SDIST_NAME}=={BBB_SDIST_VERSION}",
        "license": BBB_LICENSE,
        "attribution": BBB_ATTRIBUTION,
        "sha256": digest,
        "bytes": dest.stat().st_size,
        **info,
    }
    return update_manifest(manifest, BBB_SOURCE, source_info, [entry])
