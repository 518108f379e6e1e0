"""The main job on real footage: ingest reference clips, then search an edited copy.

Cuts three 30 s reference clips from the test span of Big Buck Bunny (resources/bbb.mp4,
fetched by scripts/fetch_media.py; ``Split.test`` in vidret_milvus/splits.py: footage the
model was not trained on) and a 17 s query that copies 12 s of one of them (cropped,
brightened, re-encoded at low quality) between other, never-ingested test footage, ingests the
references into demo_data/vidret.db (Milvus Lite) and runs `vidret-milvus search` on the query.
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
from vidret_milvus.splits import Split, bbb_span  # noqa: E402

BBB = ROOT / "resources" / "bbb.mp4"
OUT = ROOT / "demo_data"
SIZE = (640, 360)
TEST_START, TEST_END = bbb_span(Split.test)  # [475, 596.5) s
REF_LEN = 30.0
REFS = {"bbb_476.mp4": 476.0, "bbb_508.mp4": 508.0, "bbb_540.mp4": 540.0}  # 476-570 s
COPY_OF, COPY_START, COPY_LEN = "bbb_508.mp4", 515.0, 12.0
LEAD, TAIL = (575.0, 578.0), (585.0, 587.0)  # test footage never ingested
assert all(TEST_START <= s and s + REF_LEN <= TEST_END for s in REFS.values())
assert TEST_START <= LEAD[0] and TAIL[1] <= TEST_END and REFS[COPY_OF] <= COPY_START and COPY_START + COPY_LEN <= REFS[COPY_OF] + REF_LEN


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
    for stale in refs.iterdir():  # clips of an older demo (e.g. from the training span)
        if stale.name not in REFS:
            stale.unlink()
    for name, start in REFS.items():
        if not (refs / name).is_file():
            print(f"cutting {name} ({start:.0f}-{start + REF_LEN:.0f} s of the film, test split)")
            cut(BBB, refs / name, start, start + REF_LEN, SIZE, fps=24)
    query = OUT / "query_copy.mp4"
    print(f"making {query.name}: 3 s other footage + {COPY_START:.0f}-{COPY_START + COPY_LEN:.0f} s cropped/brightened + 2 s other footage")
    lead = [f for _, f in read_span(BBB, *LEAD, SIZE)]
    body = [crop_brighten(f) for _, f in read_span(BBB, COPY_START, COPY_START + COPY_LEN, SIZE)]
    tail = [f for _, f in read_span(BBB, *TAIL, SIZE)]
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
          f"{COPY_START - REFS[COPY_OF]:.0f}-{COPY_START - REFS[COPY_OF] + COPY_LEN:.0f} s of {COPY_OF}.")


if __name__ == "__main__":
    main()
