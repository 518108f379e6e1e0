"""Scale: a store of many videos never meets Milvus' 16,384-row query limit (listing, stats, the
background sample, the clean-up of interrupted ingests, ingest and search), and the re-rank
around the recalled frames (``rerank_scope="window"``) against the whole-video one.

The many-video stores get their rows inserted directly (one frame per video). The number of
videos is VIDRET_TEST_MANY_VIDEOS (default 20,000, above the limit); the slow-marked test holds
100,000. Runs on Milvus Lite, and on a Milvus server when one is given (server-marked).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pytest

from server import server_prefix, server_uri  # noqa: F401  (fixtures)
from vidret_milvus.descriptor import VideoDescriptor
from vidret_milvus.errors import StoreError
from vidret_milvus.search import SearchParams, rerank_frame_ids, sample_background, search_descriptor
from vidret_milvus.store import FRAME_BITS, INGESTING, MAX_LIMIT, READY, FrameHits, Store, StoreMeta, VideoRow, path_key, video_id_from_sha

MANY = int(os.environ.get("VIDRET_TEST_MANY_VIDEOS", "20000"))
DIM = 8
META = StoreMeta(model_id="scale-test", embed_dim=DIM, code_bits=128, fps=1.0, keyframes=False)


def _sha(i: int) -> str:
    return hashlib.sha256(f"many-{i}".encode()).hexdigest()


def fill_many(store: Store, n: int, ingesting: int = 0, seed: int = 0, batch: int = 5000) -> dict[int, str]:
    """``n`` one-frame videos inserted directly (the last ``ingesting`` of them left 'ingesting');
    returns {video id: status}."""
    rng = np.random.default_rng(seed)
    status: dict[int, str] = {}
    now = int(time.time()) - 3600
    for s in range(0, n, batch):
        vrows, crows, erows = [], [], []
        for i in range(s, min(n, s + batch)):
            vid = video_id_from_sha(_sha(i))
            st = INGESTING if i >= n - ingesting else READY
            status[vid] = st
            emb = rng.standard_normal(DIM).astype(np.float32)
            emb /= np.linalg.norm(emb)
            path = f"/many/video_{i:06d}.mp4"
            vrows.append({"video_id": vid, "path": path, "path_key": path_key(path), "sha256": _sha(i), "duration": 1.0, "fps": 1.0, "frames": 1,
                          "model_id": META.model_id, "status": st, "updated_at": now, "mean_embedding": emb.tolist()})
            code = rng.integers(0, 256, 16, dtype=np.uint8)
            crows.append({"id": vid << FRAME_BITS, "video_id": vid, "t": 0.0, "code": code.tobytes()})
            erows.append({"id": vid << FRAME_BITS, "video_id": vid, "t": 0.0, "embedding": emb.tolist()})
        store.client.insert(store.codes, crows)
        store.client.insert(store.embeddings, erows)
        store.client.insert(store.videos, vrows)
    assert len(status) == n, "video id collision in the test data"
    return status


def planted(store: Store, seed: int = 1) -> VideoDescriptor:
    """A 30-frame video stored through add_video; its frames have codes far from the random ones."""
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((30, DIM)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    codes = np.zeros((30, 16), np.uint8)
    codes[:, :2] = np.arange(30, dtype=np.uint8)[:, None]  # distinct codes, close to each other
    desc = VideoDescriptor(0, "/many/planted.mp4", 30.0, np.arange(30, dtype=np.float32), emb, codes, model_id=META.model_id)
    desc.video_id = store.add_video(desc, hashlib.sha256(b"planted").hexdigest())
    return desc


def check_many(store: Store, status: dict[int, str]) -> None:
    ready = {v for v, s in status.items() if s == READY}
    ingesting = {v for v, s in status.items() if s == INGESTING}
    rows = store.list_videos()
    assert len(rows) == len(status) > MAX_LIMIT
    assert [r.video_id for r in rows] == sorted(status)
    assert {r.video_id for r in store.list_videos(READY)} == ready
    assert {r.video_id for r in store.list_videos(INGESTING)} == ingesting
    assert [r.video_id for r in store.list_videos(limit=5)] == sorted(status)[:5]
    assert store.video_frame_counts(READY) == {v: 1 for v in ready}
    st = store.stats()
    assert (st["videos"], st["incomplete"], st["frames"]) == (len(ready), len(ingesting), len(status))
    # the background sample draws from every ready video, however many
    bg = sample_background(store, size=5000, seed=0)
    assert len(bg.embeddings) == 5000 and set(bg.video_ids.tolist()) <= ready
    assert len(set(bg.video_ids.tolist())) == 5000  # one frame per video: 5000 different videos
    # search: the planted video is found among all the others
    desc = planted(store)
    q = VideoDescriptor(0, "/q.mp4", 10.0, np.arange(10, dtype=np.float32), desc.embeddings[5:15].copy(), desc.codes[5:15].copy(), model_id=META.model_id)
    for scope in ("window", "video"):
        resp = search_descriptor(store, q, SearchParams(radius=8, rerank_scope=scope, background_beta=0.0))
        assert resp.results and resp.results[0].video_id == desc.video_id, scope
    # interrupted ingests are removed in batches; the ready rows stay
    removed = store.remove_incomplete()
    assert {v.video_id for v in removed} == ingesting
    assert store.stats()["incomplete"] == 0 and store.stats()["videos"] == len(ready) + 1
    assert store.count(store.codes, f'video_id in [{",".join(map(str, sorted(ingesting)[:1000]))}]') == 0


def test_many_videos_lite(tmp_path: Path) -> None:
    store = Store.connect(str(tmp_path / "many.db"), prefix="many")
    try:
        store.ensure_collections(META)
        status = fill_many(store, MANY, ingesting=MANY // 10)
        check_many(store, status)
    finally:
        store.close()


@pytest.mark.slow
def test_100k_videos_lite(tmp_path: Path) -> None:
    store = Store.connect(str(tmp_path / "many100k.db"), prefix="many")
    try:
        store.ensure_collections(META)
        status = fill_many(store, 100_000, ingesting=20_000)  # ingesting rows alone exceed the limit
        check_many(store, status)
    finally:
        store.close()


@pytest.mark.server
def test_many_videos_server(server_uri: str, server_prefix: str) -> None:  # noqa: F811
    with Store.connect(server_uri, prefix=server_prefix) as store:
        store.ensure_collections(META)
        status = fill_many(store, MANY, ingesting=MANY // 10)
        store.flush()
        check_many(store, status)


def test_list_videos_pages_by_id_range(tmp_path: Path) -> None:
    """A page that fills is halved and read again: nothing is lost at any page size."""
    store = Store.connect(str(tmp_path / "pages.db"), prefix="pages")
    try:
        store.ensure_collections(META)
        status = fill_many(store, 300, ingesting=40)
        for page in (1, 7, 64, 1000):
            assert sorted(r["video_id"] for r in store.iter_video_rows(None, ["video_id"], page=page)) == sorted(status)
            assert sorted(r["video_id"] for r in store.iter_video_rows(INGESTING, ["video_id"], page=page)) == sorted(v for v, s in status.items() if s == INGESTING)
    finally:
        store.close()


# ---------------------------------------------------------------------------- window re-rank
def _row(vid: int, frames: int) -> VideoRow:
    return VideoRow(vid, f"/v{vid}.mp4", "0" * 64, float(frames), 1.0, frames, "m", READY, 0)


def test_rerank_frame_ids_window() -> None:
    ids = np.array([(5 << FRAME_BITS) + 0, (5 << FRAME_BITS) + 10, (5 << FRAME_BITS) + 11, (7 << FRAME_BITS) + 3, (9 << FRAME_BITS) + 1], np.int64)
    z = np.zeros(len(ids))
    recall = FrameHits(np.zeros(len(ids), np.int64), ids, ids >> FRAME_BITS, z.astype(np.float32), z.astype(np.float32), np.zeros(1, bool))
    videos = {5: _row(5, 12), 7: _row(7, 4)}
    got = rerank_frame_ids(recall, [5, 7], videos, 2)  # video 9 is no candidate
    want = [(5 << FRAME_BITS) + i for i in (0, 1, 2, 8, 9, 10, 11)] + [(7 << FRAME_BITS) + i for i in (1, 2, 3)]
    assert got.tolist() == want
    assert rerank_frame_ids(recall, [5, 7], videos, 0).tolist() == [ids[0], ids[1], ids[2], ids[3]]


def test_search_embeddings_by_frame_ids_in_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Filtered by frame ids, in parts of any size, the hits are those of one search."""
    import vidret_milvus.store.vectors as store_mod  # where the re-rank splits its id filter

    store = Store.connect(str(tmp_path / "ids.db"), prefix="ids")
    try:
        store.ensure_collections(META)
        rng = np.random.default_rng(3)
        vids = []
        for k in range(3):
            emb = rng.standard_normal((40, DIM)).astype(np.float32)
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            d = VideoDescriptor(0, f"/v{k}.mp4", 40.0, np.arange(40, dtype=np.float32), emb, rng.integers(0, 256, (40, 16), dtype=np.uint8), model_id=META.model_id)
            vids.append(store.add_video(d, hashlib.sha256(f"v{k}".encode()).hexdigest()))
        q = rng.standard_normal((6, DIM)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        scope = np.array([(vids[0] << FRAME_BITS) + i for i in range(5, 25)] + [(vids[2] << FRAME_BITS) + i for i in range(30, 40)], np.int64)
        one = store.search_embeddings(q, vids, 7, frame_ids=scope)
        assert set(one.ids.tolist()) <= set(scope.tolist()) and np.bincount(one.query_index).tolist() == [7] * 6
        monkeypatch.setattr(store_mod, "FRAME_FILTER_CHUNK", 4)
        parts = store.search_embeddings(q, vids, 7, frame_ids=scope)
        key = lambda h: sorted(zip(h.query_index.tolist(), h.ids.tolist()))  # noqa: E731
        assert key(parts) == key(one)
        assert parts.capped.all()
        assert len(store.search_embeddings(q, vids, 7, frame_ids=np.zeros(0, np.int64)).ids) == 0
    finally:
        store.close()


def _hits_equal_both_ways(store: Store) -> int:
    """Searches read from the response message (the default) give exactly pymilvus' hits:
    code recall (with hits, capped, none), re-rank by frame ids and by videos. Returns the hits
    compared."""
    store.ensure_collections(META)
    rng = np.random.default_rng(11)
    vids, descs = [], []
    for k in range(4):
        n = 25 + 5 * k
        emb = rng.standard_normal((n, DIM)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        codes = np.zeros((n, 16), np.uint8)
        codes[:, 0] = np.arange(n, dtype=np.uint8)  # near each other: many hits per query code
        codes[:, 1] = k
        d = VideoDescriptor(0, f"/raw{k}.mp4", float(n), np.arange(n, dtype=np.float32) * 0.5 + k, emb, codes, model_id=META.model_id)
        vids.append(store.add_video(d, hashlib.sha256(f"raw{k}".encode()).hexdigest()))
        descs.append(d)
    store.flush()
    q_codes = np.concatenate([descs[1].codes[3:9], np.full((2, 16), 0xFF, np.uint8)])  # the last two recall nothing
    q_emb = descs[2].embeddings[:5] + rng.standard_normal((5, DIM)).astype(np.float32) * 0.05
    scope = np.array([(vids[0] << FRAME_BITS) + i for i in range(2, 20)] + [(vids[2] << FRAME_BITS) + i for i in range(30)], np.int64)
    calls = [
        lambda: store.range_search_codes(q_codes, radius=6),
        lambda: store.range_search_codes(q_codes, radius=6, limit=7),
        lambda: store.range_search_codes(q_codes[-2:], radius=3),
        lambda: store.range_search_codes(q_codes, radius=6, video_ids=vids[1:3]),
        lambda: store.search_embeddings(q_emb, vids, 9, frame_ids=scope),
        lambda: store.search_embeddings(q_emb, vids[2:], 40),
    ]
    compared = 0
    for call in calls:
        store.raw_search = True
        fast = call()
        assert store.raw_search is True  # the numpy path ran (it switches itself off where it cannot)
        store.raw_search = False
        slow = call()
        for f in ("query_index", "ids", "video_ids", "t", "distance", "capped"):
            a, b = getattr(fast, f), getattr(slow, f)
            assert a.dtype == b.dtype and np.array_equal(a, b), f
        compared += len(fast.ids)
    assert store.raw_search is False  # the switch is the store's own: nothing global changed
    return compared


def test_search_hits_read_from_the_message_equal_pymilvus_hits(tmp_path: Path) -> None:
    store = Store.connect(str(tmp_path / "raw.db"), prefix="raw")
    try:
        assert store.raw_search is True
        assert _hits_equal_both_ways(store) > 100
    finally:
        store.close()


@pytest.mark.server
def test_search_hits_read_from_the_message_equal_pymilvus_hits_server(server_uri: str, server_prefix: str) -> None:  # noqa: F811
    with Store.connect(server_uri, prefix=server_prefix) as store:
        assert _hits_equal_both_ways(store) > 100


def test_window_rerank_matches_video_rerank_on_a_copy(tmp_path: Path) -> None:
    """A copy of 20 s of a 300 s reference: both scopes find it with the same segment; the
    window one searches far fewer frames."""
    store = Store.connect(str(tmp_path / "win.db"), prefix="win")
    try:
        store.ensure_collections(META)
        rng = np.random.default_rng(5)
        n = 300
        emb = np.cumsum(rng.standard_normal((n, DIM)).astype(np.float32) * 0.3, 0) + rng.standard_normal(DIM).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        codes = rng.integers(0, 256, (n, 16), dtype=np.uint8)
        ref = VideoDescriptor(0, "/ref.mp4", float(n), np.arange(n, dtype=np.float32), emb, codes, model_id=META.model_id)
        vid = store.add_video(ref, hashlib.sha256(b"ref").hexdigest())
        other = VideoDescriptor(0, "/other.mp4", 100.0, np.arange(100, dtype=np.float32), np.roll(emb[:100], 1, axis=1),
                                rng.integers(0, 256, (100, 16), dtype=np.uint8), model_id=META.model_id)
        store.add_video(other, hashlib.sha256(b"other").hexdigest())
        qe = emb[100:120] + rng.standard_normal((20, DIM)).astype(np.float32) * 0.02
        qe /= np.linalg.norm(qe, axis=1, keepdims=True)
        qc = codes[100:120].copy()
        qc[::3] ^= 0xFF  # a third of the query frames recall nothing: the window covers them
        q = VideoDescriptor(0, "/q.mp4", 20.0, np.arange(20, dtype=np.float32), qe, qc, model_id=META.model_id)
        out = {}
        for scope in ("window", "video"):
            out[scope] = search_descriptor(store, q, SearchParams(radius=4, rerank_scope=scope, min_copy_seconds=3.0, background_beta=0.0))
        w, v = out["window"], out["video"]
        assert w.results[0].video_id == v.results[0].video_id == vid and w.results[0].is_copy and v.results[0].is_copy
        assert [(round(s.query_start), round(s.query_end), round(s.ref_start), round(s.ref_end)) for s in w.results[0].segments] == \
               [(round(s.query_start), round(s.query_end), round(s.ref_start), round(s.ref_end)) for s in v.results[0].segments]
        assert w.candidates["rerank_frames"] < v.candidates["rerank_frames"] == n
        assert w.candidates["rerank_frames"] <= 20 + 2 * 5 + 1
    finally:
        store.close()


def test_rerank_scope_is_checked() -> None:
    with pytest.raises(ValueError):
        SearchParams(rerank_scope="everything")
    with pytest.raises(ValueError):
        SearchParams(rerank_window_s=-1.0)


def test_read_consistency() -> None:
    """On a server, reads are Session (no ~200 ms wait for Milvus' time tick per request), and
    Strong for a few seconds after this store deleted something (deletes carry no timestamp a
    Session read could wait for on Milvus 2.3); Lite reads pass no level."""

    with pytest.raises(StoreError):
        Store.connect("http://127.0.0.1:1", read_consistency="Sometimes")
    srv = Store(client=None, uri="http://127.0.0.1:19530", prefix="p")
    assert srv.read_kw() == {"consistency_level": "Session"}
    srv._call("delete", lambda **kw: None)
    assert srv.read_kw() == {"consistency_level": "Strong"}
    srv._strong_reads_until = 0.0
    assert Store(client=None, uri="http://h:1", prefix="p", read_consistency="Bounded").read_kw() == {"consistency_level": "Bounded"}
    assert Store(client=None, uri="/tmp/x.db", prefix="p").read_kw() == {}


def test_meta_is_cached_for_reads_but_fresh_before_writes(tmp_path: Path) -> None:
    """meta() is cached for searches; when another process drops the collections and makes them
    again for another model, the next write checks Milvus itself: codes of two models never mix."""
    from vidret_milvus.errors import ModelMismatchError

    uri = str(tmp_path / "meta.db")
    a = Store.connect(uri, prefix="m")
    b = Store.connect(uri, prefix="m")
    try:
        a.ensure_collections(StoreMeta(model_id="vm-aaaaaaaaaaaaaaaa", embed_dim=8, code_bits=128, fps=1.0, keyframes=False))
        assert a.meta().model_id == "vm-aaaaaaaaaaaaaaaa"  # now cached in a
        b.drop()
        b.ensure_collections(StoreMeta(model_id="vm-bbbbbbbbbbbbbbbb", embed_dim=8, code_bits=128, fps=1.0, keyframes=False))
        assert a.meta().model_id == "vm-aaaaaaaaaaaaaaaa"  # a read may use the cached copy (META_TTL_S)
        assert a.meta(fresh=True).model_id == "vm-bbbbbbbbbbbbbbbb"
        rng = np.random.default_rng(0)
        emb = rng.standard_normal((3, 8)).astype(np.float32)
        desc = VideoDescriptor(0, "/x/a.mp4", 3.0, np.arange(3, dtype=np.float32), emb / np.linalg.norm(emb, axis=1, keepdims=True),
                               rng.integers(0, 256, (3, 16), dtype=np.uint8), model_id="vm-aaaaaaaaaaaaaaaa")
        a._meta = (StoreMeta(model_id="vm-aaaaaaaaaaaaaaaa", embed_dim=8, code_bits=128, fps=1.0, keyframes=False), time.monotonic())
        with pytest.raises(ModelMismatchError):
            a.add_video(desc, "ab" * 32)  # the stale copy says model a; the write asks Milvus
        assert b.count(b.codes) == 0
    finally:
        a.close()
        b.close()


def test_longer_codes_use_every_bit_and_refuse_other_lengths(tmp_path: Path) -> None:
    """A 256-bit store (a model with code_bits=256): the range search measures all 256 bits,
    accepts radii up to 256, and refuses codes of another length before the search RPC."""
    meta = StoreMeta(model_id="bits-256", embed_dim=DIM, code_bits=256, fps=1.0, keyframes=False)
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (1, 32), dtype=np.uint8)
    codes = np.repeat(base, 4, axis=0)
    flips = [0, 40, 150, 200]  # Hamming distance of each frame's code from ``base``
    for i, f in enumerate(flips):
        bits = np.unpackbits(codes[i])
        bits[:f] ^= 1  # the second half of the code matters: 150 and 200 reach past bit 128
        codes[i] = np.packbits(bits)
    emb = rng.standard_normal((4, DIM)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    d = VideoDescriptor(0, "/long.mp4", 4.0, np.arange(4, dtype=np.float32), emb, codes, model_id=meta.model_id)
    assert d.code_bits == 256
    with Store.connect(str(tmp_path / "b.db")) as store:
        store.ensure_collections(meta)
        vid = store.add_video(d, _sha(1))
        store.flush()
        for radius, want in ((0, 1), (39, 1), (40, 2), (149, 2), (150, 3), (256, 4)):
            hits = store.range_search_codes(base, radius=radius)
            assert sorted(hits.distance.tolist()) == flips[:want], radius
            assert set(hits.video_ids.tolist()) == {vid}
        with pytest.raises(StoreError, match="256-bit codes"):
            store.range_search_codes(base[:, :16], radius=3)
        with pytest.raises(StoreError, match=r"\[0, 256\]"):
            store.range_search_codes(base, radius=257)
