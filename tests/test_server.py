"""The integration scenario against a real Milvus server, BIN_IVF_FLAT recall, and sharded ingest.

Server tests (``@pytest.mark.server``) get their server from ``tests/server.py``: the URI in
``VIDRET_TEST_SERVER_URI`` (``make test`` starts the embedded Milvus 2.3.5 and sets it), or a
testcontainers Milvus when Docker runs, else they are skipped with the reason. Every server
test works under its own collection prefix and drops it at the end. Tests that need no server
(shard selection, version choice, the kNN recall guard on a fake client) always run.

The Lite-only tests (one process per database file) stay in test_pipeline.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import test_pipeline as tp
from server import drop_prefix, server_prefix, server_uri, unique_prefix  # noqa: F401  (fixtures)
from test_pipeline import media, model  # noqa: F401  (module fixtures: generated videos, the model)
from vidret_milvus.cli import app
from vidret_milvus.descriptor import VideoDescriptor
from vidret_milvus.errors import ModelMismatchError, StoreError, VidretError
from vidret_milvus.fingerprint import Sampling
from vidret_milvus.ingest import ingest_paths, parse_shard, select_shard, shard_of
from vidret_milvus.search import Mode, SearchParams, search_video
from vidret_milvus.store import (
    INGESTING, READY, Store, StoreMeta, frame_ids, in_filter, ivf_nlist_for, parse_server_version,
)

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Target:
    uri: str
    prefix: str

    @property
    def args(self) -> list[str]:
        return ["--uri", self.uri, "--prefix", self.prefix]

    def connect(self, **kw: Any) -> Store:
        return Store.connect(self.uri, prefix=self.prefix, **kw)


def _stats(t: Target) -> dict:
    res = runner.invoke(app, ["stats", *t.args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


# ====================================================================== the scenario on a server
@pytest.fixture(scope="module")
def srv(server_uri: str, media: dict[str, Path], model) -> Iterator[Target]:  # noqa: ANN001, F811
    """The references ingested once through the CLI into a fresh prefix on the server."""
    t = Target(server_uri, unique_prefix("pipe"))
    try:
        res = runner.invoke(app, ["ingest", str(media["refs"]), *t.args, "--json"])
        assert res.exit_code == 0, res.output
        report = json.loads(res.stdout)
        assert sorted(Path(r["path"]).name for r in report["ingested"]) == ["a.mp4", "b.mp4"]
        assert [Path(r["path"]).name for r in report["failed"]] == ["broken.mp4"]
        assert [Path(p["path"]).name for p in report["skipped_not_video"]] == ["notes.txt"]
        yield t
    finally:
        drop_prefix(t.uri, t.prefix)


@pytest.fixture
def on_prefix(srv: Target, monkeypatch: pytest.MonkeyPatch) -> Target:
    """The Lite tests of test_pipeline pass only ``--uri``: the prefix comes from VIDRET_PREFIX."""
    monkeypatch.setenv("VIDRET_PREFIX", srv.prefix)
    return srv


@pytest.mark.server
def test_server_is_a_real_server_with_strong_consistency(srv: Target) -> None:
    with srv.connect() as store:
        assert not store.is_lite
        assert store.server_version() is not None and store.server_version() >= (2, 3, 0)
        assert store.meta() is not None and store.meta().model_id.startswith("vm-")  # description-based metadata
        assert store.code_index() == ("BIN_FLAT", 0)
        # Strong consistency: what was just written is visible to the next query and count(*).
        n = store.count(store.codes)
        assert n == sum(3 * len(s) for s in tp.REF_SCENES.values())
        ids = frame_ids(1 << 40, 3)
        codes = np.zeros((3, 16), np.uint8)
        store.client.insert(store.codes, [{"id": int(i), "video_id": 1 << 40, "t": 0.0, "code": c.tobytes()} for i, c in zip(ids, codes)])
        assert store.count(store.codes) == n + 3
        hits = store.range_search_codes(codes[:1], radius=0, video_ids=[1 << 40])
        assert sorted(hits.ids.tolist()) == ids.tolist()
        # Through the store (its reads are Strong for a few seconds after its own deletes; a
        # Session read would not see a delete made behind its back).
        store.delete_video(1 << 40)
        assert store.count(store.codes) == n


@pytest.mark.server
def test_server_copy_found_first_with_segment(on_prefix: Target, media: dict[str, Path]) -> None:  # noqa: F811
    tp.test_copy_found_first_with_segment(on_prefix.uri, media)


@pytest.mark.server
def test_server_unrelated_clip_gets_no_copy(on_prefix: Target, media: dict[str, Path]) -> None:  # noqa: F811
    tp.test_unrelated_clip_gets_no_copy(on_prefix.uri, media)


@pytest.mark.server
@pytest.mark.parametrize("mode", [m.value for m in Mode])
def test_server_every_mode_ranks_the_copy_first(srv: Target, media: dict[str, Path], model, mode: str) -> None:  # noqa: ANN001, F811
    with srv.connect() as store:
        resp = search_video(store, model, media["copy"], SearchParams(mode=Mode(mode)))
        neg = search_video(store, model, media["negative"], SearchParams(mode=Mode(mode)))
    assert resp.results and resp.results[0].path.endswith("a.mp4")
    assert not any(r.is_copy for r in neg.results)
    assert resp.results[0].score > max([r.score for r in neg.results], default=0.0)


@pytest.mark.server
def test_server_reingest_adds_nothing(on_prefix: Target, media: dict[str, Path]) -> None:  # noqa: F811
    tp.test_reingest_adds_nothing(on_prefix.uri, media)


@pytest.mark.server
def test_server_model_mismatch_refused(tmp_path: Path, srv: Target, media: dict[str, Path]) -> None:  # noqa: F811
    import timm
    import torch

    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), tmp_path / "r18.pth")
    res = runner.invoke(app, ["search", str(media["copy"]), *srv.args, "--backbone", "resnet18", "--weights", str(tmp_path / "r18.pth")])
    assert res.exit_code == 1
    assert "codes of model" in res.output or "never mix" in res.output
    with srv.connect() as store:
        with pytest.raises(ModelMismatchError):
            store.ensure_collections(StoreMeta(model_id="vm-0000000000000000", embed_dim=256, code_bits=128, fps=1.0, keyframes=False))


@pytest.mark.server
def test_server_interrupted_video_invisible_then_cleaned_then_deleted(server_uri: str, server_prefix: str, media: dict[str, Path], model) -> None:  # noqa: ANN001, F811
    """Frames stored but the row never marked ready: search must not see it; the next ingest
    removes it and stores it again; then `delete` by path removes it (one prefix: creating
    collections costs ~10 s on Milvus 2.3)."""
    from vidret_milvus.fingerprint import fingerprint_video
    from vidret_milvus.ingest import sha256_file

    t = Target(server_uri, server_prefix)
    path = media["refs"] / "a.mp4"
    with t.connect() as store:
        store.ensure_collections(StoreMeta(model.model_id, model.config.embed_dim, model.config.code_bits, 1.0, False))
        sha = sha256_file(path)
        desc = fingerprint_video(path, model, Sampling(), video_id=store.free_video_id(sha))
        store.add_video(desc, sha)
        row = store.client.query(store.videos, filter=in_filter("video_id", [desc.video_id]), output_fields=["*"])[0]
        store.client.upsert(store.videos, [{**dict(row), "status": INGESTING}])
        assert store.get_videos([desc.video_id]) == {}
        assert search_video(store, model, media["copy"]).results == []
        rep = ingest_paths(store, model, [str(path)], Sampling())
        assert rep.removed_incomplete == [str(path)] and len(rep.ingested) == 1
        assert store.get_videos([desc.video_id])[desc.video_id].status == READY
        assert store.count(store.codes) == desc.num_frames  # no duplicates left behind
        assert search_video(store, model, media["copy"]).results[0].is_copy
    res = runner.invoke(app, ["delete", str(path), *t.args])
    assert res.exit_code == 0, res.output
    stats = _stats(t)
    assert stats["videos"] == 0 and stats["frames"] == 0
    with t.connect() as store:
        assert search_video(store, model, media["copy"]).results == []
    res = runner.invoke(app, ["delete", "/no/such/file.mp4", *t.args])
    assert res.exit_code == 1 and "no such stored video" in res.output


# ====================================================================== BIN_IVF_FLAT recall
RADIUS = 32
IVF_DIM = 8  # embedding size of the synthetic store (only the codes matter here)


def _near(rng: np.random.Generator, center: np.ndarray, d: int) -> np.ndarray:
    bits = center.copy()
    bits[rng.choice(128, d, replace=False)] ^= 1
    return bits


def _ivf_data(seed: int = 5) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """(query codes, codes of each video, the planted dense-query index)."""
    rng = np.random.default_rng(seed)
    queries = rng.integers(0, 2, (7, 128), dtype=np.uint8)
    planted = [_near(rng, q, d) for q in queries[:6] for d in range(0, RADIUS + 1) for _ in range(3)]  # 6 x 99 at known distances
    dense = [_near(rng, queries[6], int(d)) for d in rng.integers(0, 25, 1100)]  # > KNN_FIRST_K within the radius
    background = list(rng.integers(0, 2, (18_000, 128), dtype=np.uint8))  # ~64 bits from any query
    allbits = np.array(planted + dense + background, np.uint8)
    rng.shuffle(allbits)
    codes = np.packbits(allbits, axis=1)
    return np.packbits(queries, axis=1), np.array_split(codes, 10), np.int64(6)


def _truth(store_codes: np.ndarray, store_ids: np.ndarray, queries: np.ndarray) -> set[tuple[int, int]]:
    out = set()
    for qi, q in enumerate(queries):
        d = np.unpackbits(store_codes ^ q, axis=1).sum(1)
        out |= {(qi, int(i)) for i in store_ids[d <= RADIUS]}
    return out


def _pairs(hits: Any) -> set[tuple[int, int]]:
    return set(zip(hits.query_index.tolist(), hits.ids.tolist()))


@pytest.mark.server
@pytest.mark.slow
def test_bin_ivf_flat_loses_no_near_duplicate_once_indexed(server_uri: str, server_prefix: str) -> None:
    queries, videos, dense_q = _ivf_data()
    rows = sum(len(v) for v in videos)
    meta = StoreMeta(model_id="vm-1f1f1f1f1f1f1f1f", embed_dim=IVF_DIM, code_bits=128, fps=1.0, keyframes=False)
    rng = np.random.default_rng(0)
    with Store.connect(server_uri, prefix=server_prefix, binary_index="BIN_IVF_FLAT", nlist=ivf_nlist_for(rows)) as store:
        store.ensure_collections(meta)
        assert store.code_index() == ("BIN_IVF_FLAT", ivf_nlist_for(rows))
        all_ids, all_codes = [], []
        for k, codes in enumerate(videos):
            n = len(codes)
            emb = rng.normal(size=(n, IVF_DIM)).astype(np.float32)
            desc = VideoDescriptor(0, f"/synthetic/{k}.mp4", float(n), np.arange(n, dtype=np.float32), emb, codes, 1.0, meta.model_id)
            sha = hashlib.sha256(f"ivf-{k}".encode()).hexdigest()
            vid = store.add_video(desc, sha)
            all_ids.append(frame_ids(vid, n))
            all_codes.append(codes)
        truth = _truth(np.concatenate(all_codes), np.concatenate(all_ids), queries)
        assert len(truth) >= 6 * 99 + 1100

        def found(guard: str, **kw: Any) -> set[tuple[int, int]]:
            store.ivf_guard = guard
            got = _pairs(store.range_search_codes(queries, RADIUS, **kw))
            assert got <= truth  # never anything outside the radius
            return got

        numbers: dict[str, Any] = {"rows": rows, "nlist": ivf_nlist_for(rows), "true_pairs": len(truth), "server": store.server_version()}
        # Before the index is built, the server scans raw rows: it looks exact whatever the guard.
        numbers["before_index_plain_range"] = len(found("off"))
        numbers["before_index_guarded"] = len(found("auto"))
        numbers["index"] = store.wait_for_index(timeout=240)
        numbers["after_index_plain_range"] = len(found("off"))
        knn = found("knn")
        numbers["after_index_knn_guard"] = len(knn)
        store.ivf_guard = "auto"
        numbers["auto_mode"] = store.ivf_search_mode()
        auto = found("auto")
        numbers["after_index_auto_guard"] = len(auto)
        print("BIN_IVF_FLAT recall:", json.dumps(numbers))
        assert knn == truth and auto == truth  # none lost once the index is in use
        if store.server_version() is not None and store.server_version() >= (2, 4, 0):
            assert found("range") == truth
        # The dense query has more than KNN_FIRST_K neighbours: none lost, nothing capped;
        # with a small limit it is capped at exactly that limit.
        store.ivf_guard = "knn"
        hits = store.range_search_codes(queries, RADIUS)
        assert not hits.capped.any()
        small = store.range_search_codes(queries[dense_q : dense_q + 1], RADIUS, limit=50)
        assert small.capped.tolist() == [True] and len(small.ids) == 50
        # Codes of one video only (the filter path of the guard).
        one = store.range_search_codes(queries, RADIUS, video_ids=[int(all_ids[0][0] >> 16)])
        assert _pairs(one) == {p for p in truth if p[1] >> 16 == int(all_ids[0][0] >> 16)}
    # The collections keep their index: not given, it is whatever exists; given, it must match.
    with Store.connect(server_uri, prefix=server_prefix) as store:
        store.ensure_collections(meta)
        assert store.code_index() == ("BIN_IVF_FLAT", ivf_nlist_for(rows))
        assert _pairs(store.range_search_codes(queries, RADIUS)) == truth
    with Store.connect(server_uri, prefix=server_prefix, binary_index="bin_flat") as store:
        with pytest.raises(StoreError, match="have a BIN_IVF_FLAT index"):
            store.ensure_collections(meta)


# ====================================================================== no server needed
def test_lite_refuses_bin_ivf_flat(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="only supports BIN_FLAT"):
        Store.connect(str(tmp_path / "x.db"), binary_index="BIN_IVF_FLAT")
    with pytest.raises(StoreError, match="BIN_FLAT or BIN_IVF_FLAT"):
        Store.connect("http://127.0.0.1:1", binary_index="HNSW")
    res = runner.invoke(app, ["ingest", str(tmp_path), "--uri", str(tmp_path / "x.db"), "--binary-index", "BIN_IVF_FLAT"])
    assert res.exit_code == 1 and "only supports BIN_FLAT" in res.output


def test_server_version_parsing_and_guard_choice() -> None:
    assert parse_server_version("v2.3.5-lite") == (2, 3, 5)
    assert parse_server_version("2.5.16") == (2, 5, 16)
    assert parse_server_version("v2.4") == (2, 4, 0)
    assert parse_server_version("latest") is None
    for version, mode in [("v2.3.5-lite", "knn"), ("v2.4.0", "range"), ("v2.5.16", "range"), ("weird", "knn")]:
        store = Store(FakeIvfClient(np.zeros((0, 16), np.uint8), version=version), "http://fake:19530")
        assert store.ivf_search_mode() == mode, version
    store = Store(FakeIvfClient(np.zeros((0, 16), np.uint8), version="v2.5.0"), "http://fake:19530", ivf_guard="knn")
    assert store.ivf_search_mode() == "knn"


class FakeIvfClient:
    """Just enough of MilvusClient for range_search_codes on a BIN_IVF_FLAT collection: exact
    kNN and range search in numpy, with Milvus' conventions (topk limit, range_filter <= d < radius)."""

    def __init__(self, codes: np.ndarray, version: str = "v2.3.5", nlist: int = 8) -> None:
        self.codes, self.version, self.nlist = codes, version, nlist
        self.calls: list[dict[str, Any]] = []

    def get_server_version(self, timeout: float | None = None) -> str:
        return self.version

    def list_indexes(self, name: str, field_name: str = "", timeout: float | None = None) -> list[str]:
        return ["code"]

    def describe_index(self, name: str, index_name: str, timeout: float | None = None) -> dict[str, Any]:
        return {"index_type": "BIN_IVF_FLAT", "metric_type": "HAMMING", "nlist": str(self.nlist)}

    def has_collection(self, name: str, timeout: float | None = None) -> bool:
        return True

    def describe_collection(self, name: str, timeout: float | None = None) -> dict[str, Any]:
        # the collections' description: what range_search_codes checks the codes' length against
        return {"description": StoreMeta("fake", 8, int(self.codes.shape[1]) * 8, 1.0, False).to_json()}

    def search(self, coll: str, data: list[bytes], anns_field: str, search_params: dict, limit: int, filter: str, output_fields: list[str], timeout: float,  # noqa: A002
               consistency_level: str | None = None) -> list[list[dict]]:
        self.calls.append({"nq": len(data), "limit": limit, "params": dict(search_params["params"])})
        p = search_params["params"]
        out = []
        for q in data:
            d = np.unpackbits(self.codes ^ np.frombuffer(q, np.uint8), axis=1).sum(1)
            order = np.argsort(d, kind="stable")
            if "radius" in p:
                order = order[(d[order] >= p["range_filter"]) & (d[order] < p["radius"])]
            order = order[:limit]
            out.append([{"id": int(i), "distance": float(d[i]), "entity": {"video_id": int(i) >> 16, "t": 0.0}} for i in order])
        return out


def test_knn_guard_keeps_every_neighbour_and_redoes_full_frames() -> None:
    rng = np.random.default_rng(3)
    qbits = rng.integers(0, 2, (3, 128), dtype=np.uint8)
    rows = [_near(rng, qbits[0], int(d)) for d in rng.integers(0, 33, 1500)]  # 1500 within: needs the second pass
    rows += [_near(rng, qbits[1], int(d)) for d in range(0, 40)]  # 33 within, 7 beyond
    rows += list(rng.integers(0, 2, (3000, 128), dtype=np.uint8))
    codes = np.packbits(np.array(rows, np.uint8), axis=1)
    queries = np.packbits(qbits, axis=1)
    client = FakeIvfClient(codes)
    store = Store(client, "http://fake:19530")
    hits = store.range_search_codes(queries, RADIUS)
    ids = np.arange(len(codes))
    assert _pairs(hits) == _truth(codes, ids, queries)
    assert np.all(np.diff(hits.query_index) >= 0) and np.all(hits.distance <= RADIUS)
    assert hits.capped.tolist() == [False, False, False]
    assert [c["params"] for c in client.calls] == [{"nprobe": 8}, {"nprobe": 8}]  # kNN, exhaustive
    assert [c["limit"] for c in client.calls] == [1024, 16384] and client.calls[1]["nq"] == 1
    capped = store.range_search_codes(queries, RADIUS, limit=100)
    assert capped.capped.tolist() == [True, False, False]
    assert np.bincount(capped.query_index, minlength=3).tolist() == [100, 33, 0]
    # From 2.4 on: a range search with max_empty_result_buckets (its result is exact here).
    client.version, client.calls = "v2.4.5", []
    store = Store(client, "http://fake:19530")
    assert _pairs(store.range_search_codes(queries, RADIUS)) == _truth(codes, ids, queries)
    assert client.calls[0]["params"] == {"radius": RADIUS + 1, "range_filter": 0, "nprobe": 8, "max_empty_result_buckets": 8}


# ====================================================================== sharded ingest
def test_select_shard_partitions_stably() -> None:
    paths = [f"/data/videos/{k:05d}.mp4" for k in range(2000)]
    shards = [select_shard(paths, i, 4) for i in range(4)]
    assert sorted(p for s in shards for p in s) == sorted(paths)  # each path in exactly one shard
    assert all(400 <= len(s) <= 600 for s in shards)  # roughly balanced
    assert shards[1] == select_shard(paths, 1, 4) == [p for p in paths if shard_of(p, 4) == 1]  # deterministic, order kept
    # A stable hash (not Python's salted hash()): the same in a fresh interpreter.
    code = "from vidret_milvus.ingest import shard_of; print(shard_of('/data/videos/00001.mp4', 7))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "123"})
    assert int(other.stdout) == shard_of("/data/videos/00001.mp4", 7)
    assert select_shard(paths, 0, 1) == paths
    assert parse_shard("2/5") == (2, 5) and parse_shard(" 0/1 ") == (0, 1)
    for bad in ["5/5", "-1/3", "1", "a/b", "1/0", "1/2/3"]:
        with pytest.raises(VidretError, match="i/N"):
            parse_shard(bad)


def _shard_reports(outs: list[str]) -> list[dict]:
    return [json.loads(o) for o in outs]


def _check_each_file_once(reports: list[dict], refs: Path) -> None:
    seen: list[str] = []
    for r in reports:
        seen += [x["path"] for x in r["ingested"]] + [x["path"] for x in r["already_present"]]
        seen += [x["path"] for x in r["failed"]] + [x["path"] for x in r["skipped_not_video"]]
    assert sorted(seen) == sorted(str(p) for p in refs.iterdir())  # every file, in exactly one shard
    ingested = sorted(Path(x["path"]).name for r in reports for x in r["ingested"])
    assert ingested == ["a.mp4", "b.mp4"]


def test_shards_together_ingest_each_file_once_lite(tmp_path: Path, media: dict[str, Path]) -> None:  # noqa: F811
    db = str(tmp_path / "shards.db")
    n = 3
    outs = []
    for i in range(n):
        res = runner.invoke(app, ["ingest", str(media["refs"]), "--uri", db, "--shard", f"{i}/{n}", "--json"])
        assert res.exit_code in (0, 1) and res.stdout.lstrip().startswith("{"), res.output  # 1: a shard of only the broken file
        outs.append(res.stdout)
    _check_each_file_once(_shard_reports(outs), media["refs"])
    stats = json.loads(runner.invoke(app, ["stats", "--uri", db, "--json"]).stdout)
    assert stats["videos"] == 2 and stats["frames"] == sum(3 * len(s) for s in tp.REF_SCENES.values())
    # Re-running a shard (a retried Job pod) adds nothing.
    again = runner.invoke(app, ["ingest", str(media["refs"]), "--uri", db, "--shard", f"0/{n}", "--json"])
    assert json.loads(again.stdout)["ingested"] == []


@pytest.mark.server
def test_shards_in_parallel_processes_ingest_each_file_once(server_uri: str, server_prefix: str, media: dict[str, Path]) -> None:  # noqa: F811
    """N worker processes at once on an empty server: they race to create the collections,
    then split the folder by path hash; together they store every file exactly once."""
    n = 3
    env = {**os.environ, "VIDRET_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "vidret_milvus.cli", "ingest", str(media["refs"]), "--uri", server_uri, "--prefix", server_prefix,
             "--shard", f"{i}/{n}", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
        )
        for i in range(n)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode in (0, 1) and out.lstrip().startswith("{"), err  # 1: a shard of only the broken file
        outs.append(out)
    _check_each_file_once(_shard_reports(outs), media["refs"])
    stats = _stats(Target(server_uri, server_prefix))
    assert stats["videos"] == 2 and stats["incomplete"] == 0
    assert stats["frames"] == sum(3 * len(s) for s in tp.REF_SCENES.values())
