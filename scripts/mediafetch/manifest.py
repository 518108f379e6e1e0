"""``<out>/manifest.json``: what was fetched from which source, written deterministically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from .common import sha256_file

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = 1


def empty_manifest() -> dict[str, Any]:
    return {
        "schema": MANIFEST_SCHEMA,
        "generated_by": "scripts/fetch_media.py",
        "sources": {},
        "files": [],
    }


def load_manifest(path: Path) -> dict[str, Any]:
    if not path.exists():
        return empty_manifest()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return empty_manifest()
    if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
        return empty_manifest()
    data.setdefault("sources", {})
    data.setdefault("files", [])
    return data


def update_manifest(
    manifest: dict[str, Any],
    source: str,
    source_info: dict[str, Any],
    files: list[dict[str, Any]],
) -> dict[str, Any]:
    """Replace everything recorded for ``source``; entries of other sources are kept."""
    out = dict(manifest)
    out["sources"] = {k: v for k, v in manifest.get("sources", {}).items() if k != source}
    out["sources"][source] = source_info
    kept = [f for f in manifest.get("files", []) if f.get("source") != source]
    out["files"] = sorted(kept + [dict(f, source=source) for f in files], key=lambda f: f["path"])
    return out


def remove_source(manifest: dict[str, Any], source: str) -> dict[str, Any]:
    out = dict(manifest)
    out["sources"] = {k: v for k, v in manifest.get("sources", {}).items() if k != source}
    out["files"] = [f for f in manifest.get("files", []) if f.get("source") != source]
    return out


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write deterministically (sorted keys, files sorted by path) and atomically."""
    data = dict(manifest)
    data["files"] = sorted(data.get("files", []), key=lambda f: f["path"])
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def source_files(manifest: dict[str, Any], source: str) -> list[dict[str, Any]]:
    return [f for f in manifest.get("files", []) if f.get("source") == source]


def verify_recorded(
    out_dir: Path, entries: list[dict[str, Any]], hasher: Callable[[Path], str] = sha256_file
) -> list[str]:
    """Problems with the recorded files of one source (empty list: all present and intact)."""
    if not entries:
        return ["nothing recorded"]
    problems = []
    for entry in entries:
        p = out_dir / entry["path"]
        if not p.is_file():
            problems.append(f"missing {entry['path']}")
        elif p.stat().st_size != entry.get("bytes", p.stat().st_size):
            problems.append(f"size mismatch {entry['path']}")
        elif hasher(p) != entry.get("sha256"):
            problems.append(f"sha256 mismatch {entry['path']}")
    return problems
