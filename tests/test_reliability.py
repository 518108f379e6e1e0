"""Reliability and security: a corpus of bad inputs, kill -9 during ingest, concurrent searches,
and user text that must never reach a filter expression."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from media import Scene, make_audio_only, make_rotated_video, make_vfr_video, make_video, truncate, write_png, write_random_bytes, write_zero_bytes
from vidret_milvus.cli import app
from vidret_milvus.fingerprint import Sampling
from vidret_milvus.ingest import discover, ingest_paths
from vidret_milvus.model import load_model
from vidret_milvus.search import SearchParams, search_video
from vidret_milvus.errors import StoreError
from vidret_milvus.store import INGESTING, READY, Store, in_filter

runner = CliRunner()


@pytest.fixture(scope="module")
def model():  # noqa: ANN201
    return load_model()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str | None]]:
    """A folder of bad (and a few odd but valid) inputs -> expected error fragment (None = ingests)."""
    d = tmp_path_factory.mktemp("corpus")
    good = make_video(d / "good.mp4", [Scene("chelsea"), Scene("coffee")], duration=6, fps=25, seed=1)
    expect: dict[str, str | None] = {"good.mp4": None}
    truncate(good, d / "truncated.mp4", 0.4)
    expect["truncated.mp4"] = "not a media file"  # moov atom at the end: nothing can be read
    write_zero_bytes(d / "zero.mp4")
    expect["zero.mp4"] = "empty file"
    write_random_bytes(d / "random.mp4", 20_000, seed=3)
    expect["random.mp4"] = "not a media file"
    make_audio_only(d / "audio_only.mp4", 1.0)
    expect["audio_only.mp4"] = "no video stream"
    make_audio_only(d / "song.m4a", 1.0)
    expect["song.m4a"] = None  # not a video by name or content: skipped with its reason
    write_png(d / "still.png")
    expect["still.png"] = None  # skipped with its reason, never stored
    write_png(d / "still_named.png").rename(d / "still_named.mp4")
    expect["still_named.mp4"] = "image file"
    make_video(d / "one_frame.mp4", [Scene("coins")], duration=0.04, fps=25, seed=6)
    expect["one_frame.mp4"] = None
    make_video(d / "tiny_1x1.mp4", lambda i, t: np.full((1, 1, 3), i * 9 % 255, np.uint8), duration=2, fps=5, size=(1, 1), codec="mpeg4")
    expect["tiny_1x1.mp4"] = None
    make_video(d / "large_3840x2160.mp4", [Scene("rocket")], duration=0.4, fps=5, size=(3840, 2160), gop=5)
    expect["large_3840x2160.mp4"] = None
    make_vfr_video(d / "vfr.mp4")
    expect["vfr.mp4"] = None
    make_rotated_video(d / "rotated.mp4", rotation=90, duration=2.0)
    expect["rotated.mp4"] = None
    weird = 'x" or 1==1 or "q\'uote ünï cödé sp ace\nnewline.mp4'
    make_video(d / weird, [Scene("astronaut")], duration=3, fps=25, seed=5)
    expect[weird] = None
    os.symlink("loop.mp4", d / "loop.mp4")
    expect["loop.mp4"] = "symbolic links"
    return d, expect


def test_bad_inputs_reported_batch_continues(corpus: tuple[Path, dict[str, str | None]], model, tmp_path: Path) -> None:  # noqa: ANN001
    d, expect = corpus
    db = tmp_path / "c.db"
    files, problems = discover(d)
    assert problems == []
    with Store.connect(str(db)) as store:
        rep = ingest_paths(store, model, files, Sampling())
        failed = {Path(p).name: r for p, r in rep.failed}
        ingested = {Path(p).name for p, _, _ in rep.ingested}
        for name, fragment in expect.items():
            if fragment is None:
                assert name in ingested or name in ("still.png", "song.m4a"), (name, failed.get(name))
            else:
                assert name in failed, name
                assert fragment in failed[name], (name, failed[name])
        skipped = {Path(p).name: r for p, r in rep.skipped}
        assert set(skipped) == {"song.m4a", "still.png"}
        assert "image file" in skipped["still.png"] and "no video stream" in skipped["song.m4a"]
        # Nothing stored for a failed file; every stored video is complete.
        rows = store.list_videos()
        assert {Path(r.path).name for r in rows} == ingested
        for r in rows:
            assert r.status == READY
            assert store.count(store.codes, in_filter("video_id", [r.video_id])) == r.frames
            assert store.count(store.embeddings, in_filter("video_id", [r.video_id])) == r.frames


def test_cli_names_every_bad_file(corpus: tuple[Path, dict[str, str | None]], tmp_path: Path) -> None:
    d, expect = corpus
    res = runner.invoke(app, ["ingest", str(d), "--uri", str(tmp_path / "cli.db"), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    failed = {Path(f["path"]).name: f["reason"] for f in report["failed"]}
    assert set(failed) == {n for n, f in expect.items() if f}
    # The odd file name round-trips exactly (JSON escapes the newline and quotes).
    assert any(Path(i["path"]).name.startswith('x" or 1==1') for i in report["ingested"])


def test_filter_injection_file_name_is_harmless(corpus: tuple[Path, dict[str, str | None]], model, tmp_path: Path) -> None:  # noqa: ANN001
    d, _ = corpus
    weird = next(p for p in d.iterdir() if p.name.startswith('x" or'))
    db = tmp_path / "inj.db"
    with Store.connect(str(db)) as store:
        ingest_paths(store, model, [str(d / "good.mp4"), str(weird)], Sampling())
        assert len(store.find_by_path(str(weird))) == 1
        assert store.find_by_path(str(d / 'nothing" or video_id > 0 or "')) == []
    res = runner.invoke(app, ["delete", str(d / 'x" or 1==1 or "'), "--uri", str(db)])
    assert res.exit_code == 1 and "no such stored video" in res.output
    with Store.connect(str(db)) as store:
        assert len(store.list_videos()) == 2
    with pytest.raises(StoreError, match="integers"):
        in_filter("video_id", ["1 or 1==1"])  # type: ignore[list-item]


_INGEST = """
import sys
from vidret_milvus.cli import main
sys.argv = ["vidret-milvus", "ingest", sys.argv[1], "--uri", sys.argv[2]]
main()
"""


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kill_9_during_ingest_never_shows_half_a_video(tmp_path_factory: pytest.TempPathFactory, model, seed: int) -> None:  # noqa: ANN001
    rng = np.random.default_rng(seed)
    d = tmp_path_factory.mktemp(f"kill{seed}")
    refs = d / "refs"
    refs.mkdir()
    for i, photos in enumerate([["chelsea", "coffee", "rocket"], ["astronaut", "camera", "coins"], ["moon", "brick", "text"]]):
        make_video(refs / f"v{i}.mp4", [Scene(p) for p in photos], duration=30, fps=10, size=(160, 120), seed=seed * 10 + i)
    db = d / "k.db"
    proc = subprocess.Popen([sys.executable, "-c", _INGEST, str(refs), str(db)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(float(rng.uniform(4.0, 14.0)))  # model load takes ~2-5 s: kill before, during or after writes
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)  # the embedded Milvus Lite server notices its parent is gone
    with Store.connect(str(db)) as store:
        if store.meta() is not None:
            for r in store.list_videos(READY):
                assert store.count(store.codes, in_filter("video_id", [r.video_id])) == r.frames
            resp = search_video(store, model, refs / "v1.mp4", SearchParams())
            ready = {r.video_id for r in store.list_videos(READY)}
            assert {r.video_id for r in resp.results} <= ready
        rep = ingest_paths(store, model, sorted(str(p) for p in refs.iterdir()), Sampling())
        assert not rep.failed
        rows = store.list_videos()
        assert len(rows) == 3 and all(r.status == READY for r in rows)
        for r in rows:
            assert store.count(store.codes, in_filter("video_id", [r.video_id])) == r.frames
        assert store.count(store.codes) == sum(r.frames for r in rows)


# The real CLI ingest, with one fault injected: after the SECOND video's codes are written (its
# row is 'ingesting', its embeddings not yet written) the process says so and waits to be killed.
_INGEST_PAUSED = """
import sys, time
from vidret_milvus.cli import main
from vidret_milvus.store import Store
real_call = Store._call
writes = []
def _call(self, what, fn, *args, **kw):
    out = real_call(self, what, fn, *args, **kw)
    if what == "upsert" and args and args[0] == self.codes:
        writes.append(1)
        if len(writes) == 2:
            print("MIDWRITE", flush=True)
            time.sleep(600)
    return out
Store._call = _call
sys.argv = ["vidret-milvus", "ingest", sys.argv[1], "--uri", sys.argv[2]]
main()
"""


def test_kill_9_mid_write_leaves_an_interrupted_row_that_is_hidden_then_cleaned(tmp_path: Path, model) -> None:  # noqa: ANN001
    refs = tmp_path / "refs"
    refs.mkdir()
    for i, photos in enumerate([["chelsea", "coffee", "rocket"], ["astronaut", "camera", "coins"]]):
        make_video(refs / f"v{i}.mp4", [Scene(p) for p in photos], duration=12, fps=10, size=(160, 120), seed=40 + i)
    db = tmp_path / "k.db"
    proc = subprocess.Popen([sys.executable, "-c", _INGEST_PAUSED, str(refs), str(db)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "MIDWRITE"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(1.0)  # the embedded Milvus Lite server notices its parent is gone
    with Store.connect(str(db)) as store:
        rows = store.list_videos()
        interrupted = [r for r in rows if r.status == INGESTING]
        assert [Path(r.path).name for r in interrupted] == ["v1.mp4"] and [r.status for r in rows if r not in interrupted] == [READY]
        resp = search_video(store, model, refs / "v1.mp4", SearchParams(radius=128))
        assert interrupted[0].video_id not in {r.video_id for r in resp.results}  # never shown half-written
        rep = ingest_paths(store, model, sorted(str(p) for p in refs.iterdir()), Sampling())
        assert rep.removed_incomplete == [interrupted[0].path] and not rep.failed
        rows = store.list_videos()
        assert len(rows) == 2 and all(r.status == READY for r in rows)
        assert store.count(store.codes) == store.count(store.embeddings) == sum(r.frames for r in rows)


def test_concurrent_searches(tmp_path: Path, model) -> None:  # noqa: ANN001
    """8 clients searching at once through one store: no errors, same answers as alone."""
    refs = tmp_path / "refs"
    refs.mkdir()
    make_video(refs / "a.mp4", [Scene("chelsea"), Scene("coffee"), Scene("rocket")], duration=9, fps=10, seed=1)
    make_video(refs / "b.mp4", [Scene("astronaut"), Scene("camera"), Scene("coins")], duration=9, fps=10, seed=2)
    with Store.connect(str(tmp_path / "l.db")) as store:
        ingest_paths(store, model, [str(refs / "a.mp4"), str(refs / "b.mp4")], Sampling())
        from vidret_milvus.fingerprint import fingerprint_video
        from vidret_milvus.search import search_descriptor

        queries = [fingerprint_video(refs / n, model) for n in ("a.mp4", "b.mp4")]
        expected = [search_descriptor(store, q).results[0].path for q in queries]
        errors: list[BaseException] = []
        latencies: list[float] = []
        lock = threading.Lock()
        deadline = time.monotonic() + 5.0

        def client(k: int) -> None:
            n = 0
            while time.monotonic() < deadline and n < 50:
                q = k % 2
                t = time.perf_counter()
                try:
                    top = search_descriptor(store, queries[q]).results[0].path
                    assert top == expected[q]
                except BaseException as exc:  # collected and re-raised in the test thread
                    errors.append(exc)
                    return
                with lock:
                    latencies.append(time.perf_counter() - t)
                n += 1

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert not errors, errors[0]
    assert len(latencies) >= 8


class _Flaky:
    """Stands in for the network only: fails ``n`` times with a transport error, then answers."""

    def __init__(self, n: int, exc: Exception) -> None:
        self.n, self.exc, self.calls = n, exc, 0

    def has_collection(self, name: str, timeout: float | None = None) -> bool:
        self.calls += 1
        assert timeout is not None  # every RPC carries a timeout
        if self.calls <= self.n:
            raise self.exc
        return False


def test_transient_failures_are_retried_with_backoff_then_reported() -> None:
    from vidret_milvus.errors import StoreError

    flaky = _Flaky(2, ConnectionError("StatusCode.UNAVAILABLE: connection refused"))
    store = Store(flaky, "http://127.0.0.1:19530", timeout=1.0)
    store.backoff_s = 0.01
    assert store.exists() is False and flaky.calls == 3
    dead = _Flaky(99, ConnectionError("StatusCode.UNAVAILABLE: connection refused"))
    store = Store(dead, "http://127.0.0.1:19530", timeout=1.0)
    store.backoff_s = 0.01
    t = time.perf_counter()
    with pytest.raises(StoreError, match="not answering"):
        store.exists()
    assert dead.calls == store.retries + 1 and time.perf_counter() - t < 5
    refused = _Flaky(99, ValueError("collection not found"))
    store = Store(refused, "http://127.0.0.1:19530", timeout=1.0)
    with pytest.raises(StoreError):
        store.exists()
    assert refused.calls == 1  # a refused request is not retried


def test_no_server_gives_clear_error_quickly(tmp_path: Path) -> None:
    """A server URI nobody answers on: a clear error within the timeout, no hang; the token is not echoed."""
    from vidret_milvus.errors import StoreError

    t = time.perf_counter()
    res = runner.invoke(app, ["stats", "--uri", "http://127.0.0.1:9", "--token", "root:s3cret-token"], env={"VIDRET_TIMEOUT": "3"})
    assert res.exit_code == 1
    assert "s3cret-token" not in res.output
    assert "127.0.0.1:9" in res.output
    assert time.perf_counter() - t < 120
    with pytest.raises(StoreError):
        Store.connect("http://127.0.0.1:9", token="root:s3cret-token", timeout=2)


_KILL_SERVER = """
import os, signal, sys, time
from pathlib import Path
from vidret_milvus.store import Store
from vidret_milvus.errors import StoreError
db = sys.argv[1]
store = Store.connect(db, timeout=5)
store.backoff_s = 0.05
assert store.stats()["videos"] == 1
pids = []
for entry in Path("/proc").iterdir():
    if entry.name.isdigit():
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "milvus" in cmd and db in cmd and int(entry.name) != os.getpid():
            pids.append(int(entry.name))
assert pids, "Milvus Lite runs its server as a child process"
for pid in pids:
    os.kill(pid, signal.SIGKILL)
time.sleep(1)
t = time.perf_counter()
try:
    store.stats()
    print("NO ERROR")
except StoreError as exc:
    print(f"ERROR after {time.perf_counter() - t:.1f}s: {exc}"[:300])
"""


def test_server_stopped_mid_run_then_restarted(tmp_path: Path) -> None:
    """The embedded Milvus (Lite's server process) dies under a running process: its next call
    fails with a clear, bounded error (retried, then reported); the next run works, data intact."""
    make_video(tmp_path / "a.mp4", [Scene("chelsea"), Scene("coffee")], duration=6, fps=10, seed=1)
    db = str(tmp_path / "s.db")
    cli = [sys.executable, "-m", "vidret_milvus.cli"]
    assert subprocess.run([*cli, "ingest", str(tmp_path / "a.mp4"), "--uri", db], capture_output=True, timeout=300).returncode == 0
    out = subprocess.run([sys.executable, "-c", _KILL_SERVER, db], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith("ERROR after") and "Milvus" in line, line
    assert float(line.split()[2].rstrip("s:")) < 60
    res = subprocess.run([*cli, "stats", "--uri", db, "--json"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["videos"] == 1
