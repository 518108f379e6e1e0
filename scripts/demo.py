"""The main job on real footage: ingest reference clips, then search an edited copy.

Cuts four 40 s reference clips from Big Buck Bunny (resources/bbb.mp4, fetched by
scripts/fetch_media.py) and a 17 s query that copies 12 s of one of them (cropped,
brightened, re-encoded at low quality) between other footage, ingests the references into
demo_data/vidret.db (Milvus Lite) and runs `vidret-milvus search` on the query.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidret_milvus.clips import cut, read_span, write_clip  # noqa: E402

BBB = ROOT / "resources" / "bbb.mp4"
OUT = ROOT / "demo_data"
SIZE = (640, 360)
REFS = {"bbb_060.mp4": 60.0, "bbb_200.mp4": 200.0, "bbb_330.mp4": 330.0, "bbb_450.mp4": 450.0}
COPY_OF, COPY_START, COPY_LEN = "bbb_200.mp4", 215.0, 12.0


def crop_brighten(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    y, x = int(h * 0.08), int(w * 0.1)
    img = Image.fromarray(frame[y : h - y, x : w - x]).resize((w, h), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(img, np.float32) * 1.2 + 10, 0, 255).astype(np.uint8)


def main() -> None:
    if not BBB.is_file():
        sys.exit(f"{BBB} is missing: run `python3 scripts/fetch_media.py --only bbb` first")
    refs = OUT / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    for name, start in REFS.items():
        if not (refs / name).is_file():
            print(f"cutting {name} ({start:.0f}-{start + 40:.0f} s of the film)")
            cut(BBB, refs / name, start, start + 40.0, SIZE, fps=24)
    query = OUT / "query_copy.mp4"
    if not query.is_file():
        print(f"making {query.name}: 3 s other footage + {COPY_START:.0f}-{COPY_START + COPY_LEN:.0f} s cropped/brightened + 2 s other footage")
        lead = [f for _, f in read_span(BBB, 540.0, 543.0, SIZE)]
        body = [crop_brighten(f) for _, f in read_span(BBB, COPY_START, COPY_START + COPY_LEN, SIZE)]
        tail = [f for _, f in read_span(BBB, 560.0, 562.0, SIZE)]
        write_clip(query, lead + body + tail, fps=24, size=SIZE, crf=33)
    db = OUT / "vidret.db"
    # The demo's own scratch store: start empty, so a demo run after a model upgrade does not
    # meet codes of the previous model (which the store rightly refuses to mix).
    for stale in OUT.glob("vidret.db*"):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    cli = [sys.executable, "-m", "vidret_milvus.cli"]
    for args in (["ingest", str(refs), "--uri", str(db)], ["search", str(query), "--uri", str(db), "--top-n", "5"]):
        print("\n$ vidret-milvus " + " ".join(args), flush=True)
        subprocess.run(cli + args, check=True)
    print(f"\nExpected: {COPY_OF} first, copy = yes, segment about 3-15 s of the query -> "
          f"{COPY_START - 200:.0f}-{COPY_START - 200 + COPY_LEN:.0f} s of {COPY_OF}.")


if __name__ == "__main__":
    main()
