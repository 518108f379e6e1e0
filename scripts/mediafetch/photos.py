"""Photos: wallpapers from Debian packages (raster images with both sides >= 640 px)."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import posixpath
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .common import (FetchError, Log, copy_stream_hashed, download_dir, human_bytes, new_stage,
                     sha256_file, swap_in)
from .debian import (Apt, copy_copyright, copyright_path, deb_field, fetch_candidate_deb,
                     license_for, parse_dep5, unpack_deb)
from .headers import image_size
from .manifest import remove_source, source_files, update_manifest, verify_recorded

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
# Licenses
# --------------------------------------------------------------------------- #
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
# Fetch one slot
# --------------------------------------------------------------------------- #
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
        deb = fetch_candidate_deb(package, version, apt, download_dir(cache_dir, "debs", work), log)
        deb_version = deb_field(deb, "Version")
        deb_sha = sha256_file(deb)
        root = work / "root"
        log.info(f"  $ dpkg-deb -x {deb.name} <tmp>")
        unpack_deb(deb, root)

        cp = copyright_path(root, package)
        if not cp.is_file():
            raise FetchError(f"{package}: usr/share/doc/{package}/copyright missing from the deb")
        stanzas = parse_dep5(cp.read_text(encoding="utf-8", errors="replace"))

        kept, skipped, base = select_photos(root, spec.image_roots, exclude=spec.exclude)
        if not kept:
            raise FetchError(f"{package} {deb_version}: no images with both sides >= {MIN_SIDE} px")
        log.info(f"  {len(kept)} photos kept from /{base or ''}, {len(skipped)} skipped "
                 f"({skip_summary(skipped)})")

        # Build into a staging folder, then swap it in (removes stale files).
        final = out_dir / "photos" / package
        stage = new_stage(final)
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
        entries.append(copy_copyright(root, package, deb_version, stage, f"photos/{package}",
                                      "deb_path"))
        swap_in(stage, final)

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
