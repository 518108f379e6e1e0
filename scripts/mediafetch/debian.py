"""Debian sources: apt/dpkg-deb wrappers, cached .deb downloads and the package's
machine-readable ``copyright`` file (DEP-5)."""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import FetchError, Log, copy_stream_hashed, human_bytes, run, sha256_file

if TYPE_CHECKING:
    from .photos import PackageSpec


# --------------------------------------------------------------------------- #
# apt / dpkg-deb
# --------------------------------------------------------------------------- #
class Apt:
    """apt-cache / apt-get wrappers; runs ``apt-get update`` at most once if needed."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.updated = False

    def candidate(self, package: str) -> str | None:
        try:
            out = run(["apt-cache", "policy", package])
        except FetchError:
            return None
        m = re.search(r"^\s*Candidate:\s*(\S+)", out, re.M)
        if not m or m.group(1) == "(none)":
            return None
        return m.group(1)

    def update(self) -> bool:
        if self.updated:
            return False
        self.updated = True
        if hasattr(os, "geteuid") and os.geteuid() != 0:
            self.log.warn("package lists may be stale and `apt-get update` needs root; skipped")
            return False
        self.log.info("  $ apt-get update")
        try:
            run(["apt-get", "update", "-qq"])
        except FetchError as e:
            self.log.warn(str(e))
            return False
        return True

    def resolve(self, spec: PackageSpec) -> tuple[str | None, str | None, list[str]]:
        """First candidate package with an installable version: (package, version, notes)."""
        notes: list[str] = []
        for attempt in range(2):
            for pkg in spec.candidates:
                ver = self.candidate(pkg)
                if ver:
                    return pkg, ver, notes
            if attempt == 0 and not self.update():
                break
        notes.append(f"none of {', '.join(spec.candidates)} is available from apt")
        return None, None, notes

    def download(self, package: str, workdir: Path, glob: str | None = None) -> Path:
        """``apt-get download PACKAGE`` (``PACKAGE`` may be ``name=version``);
        ``glob`` finds the result (default ``<package>_*.deb``)."""
        # As root, apt drops privileges to _apt, which cannot write to a
        # root-owned temp dir; download as root instead (no warning noise).
        cmd = ["apt-get", "download", "-q", package]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd[1:1] = ["-o", "APT::Sandbox::User=root"]
        run(cmd, cwd=workdir)
        debs = sorted(workdir.glob(glob or f"{package}_*.deb"))
        if len(debs) != 1:
            raise FetchError(f"apt-get download {package}: expected one .deb, found {len(debs)}")
        return debs[0]


def deb_field(deb: Path, name: str) -> str:
    return run(["dpkg-deb", "-f", str(deb), name]).strip()


def _downloaded(deb: Path, t0: float, log: Log) -> Path:
    log.info(f"  downloaded {deb.name} ({human_bytes(deb.stat().st_size)}) "
             f"in {time.monotonic() - t0:.1f} s")
    return deb


def fetch_candidate_deb(package: str, version: str, apt: Apt, dl_dir: Path, log: Log) -> Path:
    """The .deb of apt's candidate ``version``: the cached one if it is that version, else
    ``apt-get download PACKAGE`` (older cached copies are deleted)."""
    cached = sorted(dl_dir.glob(f"{package}_*.deb"))
    if cached:
        c = cached[-1]
        try:
            if deb_field(c, "Version") == version:
                log.info(f"  using cached {c}")
                return c
        except FetchError:
            pass
    for c in cached:
        c.unlink()
    t0 = time.monotonic()
    log.info(f"  $ apt-get download {package}   (candidate {version})")
    return _downloaded(apt.download(package, dl_dir), t0, log)


def fetch_pinned_deb(package: str, version: str, sha256: str, apt: Apt, dl_dir: Path,
                     log: Log) -> Path:
    """The pinned .deb (cached, or ``apt-get download PKG=VERSION``), else apt's candidate."""
    for c in sorted(dl_dir.glob(f"{package}_*.deb")):
        try:
            if deb_field(c, "Version") == version and sha256_file(c) == sha256:
                log.info(f"  using cached {c}")
                return c
        except FetchError:
            pass
        c.unlink()
    t0 = time.monotonic()
    log.info(f"  $ apt-get download {package}={version}")
    try:
        deb = apt.download(f"{package}={version}", dl_dir, glob=f"{package}_*.deb")
    except FetchError as e:
        candidate = apt.candidate(package)
        if candidate is None and apt.update():
            candidate = apt.candidate(package)
        if candidate is None:
            raise FetchError(f"{package}: pinned {version} not downloadable ({e}) "
                             "and apt has no candidate") from e
        log.warn(f"{package} {version} not downloadable; trying apt's candidate "
                 f"{candidate} (the pinned file digests must still match)")
        deb = apt.download(package, dl_dir)
    return _downloaded(deb, t0, log)


def unpack_deb(deb: Path, root: Path) -> None:
    run(["dpkg-deb", "-x", str(deb), str(root)])


# --------------------------------------------------------------------------- #
# The package's copyright file
# --------------------------------------------------------------------------- #
def copyright_path(root: Path, package: str) -> Path:
    """Where an unpacked package keeps its copyright file."""
    return root / "usr/share/doc" / package / "copyright"


def copy_copyright(root: Path, package: str, version: str, stage: Path, dest_dir: str,
                   origin_key: str) -> dict[str, Any]:
    """Copy the package's copyright file to ``stage/copyright``; return its manifest entry
    (``dest_dir/copyright``; its place in the package under ``origin_key``)."""
    with open(copyright_path(root, package), "rb") as src:
        digest, size = copy_stream_hashed(src, stage / "copyright")
    return {
        "path": f"{dest_dir}/copyright",
        "kind": "license",
        "package": package,
        "version": version,
        origin_key: f"usr/share/doc/{package}/copyright",
        "license": "n/a (license text)",
        "sha256": digest,
        "bytes": size,
    }


def parse_dep5(text: str) -> list[dict[str, str]]:
    """Split a machine-readable debian/copyright into stanzas of {field: value}.

    Continuation lines are joined with newlines; field names are lower-cased.
    """
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
            continue
        if line[0] in " \t":
            if key is not None:
                current[key] += "\n" + line.strip()
            continue
        m = re.match(r"^([A-Za-z][A-Za-z0-9-]*):\s?(.*)$", line)
        if m:
            key = m.group(1).lower()
            current[key] = m.group(2).strip()
        # anything else (malformed) is ignored
    if current:
        stanzas.append(current)
    return stanzas


def _dep5_pattern_matches(pattern: str, deb_path: str) -> bool:
    """Does a ``Files:`` pattern (source-tree relative) match an installed path?

    Installed paths differ from source paths by a prefix (``abstract/Flow.png``
    is installed as ``usr/share/backgrounds/mate/abstract/Flow.png``) or by a
    source folder that is dropped (lomiri's ``16.04/x.jpg`` is installed as
    ``usr/share/backgrounds/x.jpg``), so match the whole path, any suffix, or
    the base name.
    """
    if pattern == "*":
        return True
    if fnmatch.fnmatchcase(deb_path, pattern) or fnmatch.fnmatchcase(deb_path, "*/" + pattern):
        return True
    base = posixpath.basename(pattern)
    return base not in ("", "*") and fnmatch.fnmatchcase(posixpath.basename(deb_path), base)


def license_for(stanzas: list[dict[str, str]], deb_path: str) -> tuple[str, str]:
    """(License short name, Copyright) of the last ``Files`` stanza matching the path."""
    lic, holder = "", ""
    for st in stanzas:
        if "files" not in st:
            continue
        if any(_dep5_pattern_matches(p, deb_path) for p in st["files"].split()):
            lic = st.get("license", "").split("\n", 1)[0].strip()
            holder = " ".join(st.get("copyright", "").split())
    return lic, holder
