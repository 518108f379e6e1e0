#!/usr/bin/env python3
"""Fetch the real media used for training, benchmarks and the demo into ``resources/``.

Standard library only: this runs before any virtualenv exists::

    python3 scripts/fetch_media.py                 # everything
    python3 scripts/fetch_media.py --only bbb      # just the film
    python3 scripts/fetch_media.py --only photos   # just the Debian wallpapers
    python3 scripts/fetch_media.py --only videos   # every packaged video source but bbb
    python3 scripts/fetch_media.py --only planetblupi   # one video source (mediafetch/videos.py)
    python3 scripts/fetch_media.py --out /data/resources --quiet

The code is the package ``scripts/mediafetch/`` (its docstring describes the sources; DATA.md
their versions and licenses).
"""

import sys

from mediafetch.cli import main

if __name__ == "__main__":
    sys.exit(main())
