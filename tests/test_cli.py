"""CLI conventions that need no model: version, usage errors exit 2, read-only commands on a
mistyped store path create nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vidret_milvus import __version__
from vidret_milvus.cli import app

runner = CliRunner()


def test_version() -> None:
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == f"vidret-milvus {__version__}"


@pytest.mark.parametrize("args", [
    ["--mode", "bogus"],
    ["--threshold", "nan"],
    ["--threshold", "inf"],
    ["--radius", "1025"],  # beyond any code (129 is beyond the default model: test_pipeline)
])
def test_usage_errors_exit_2_before_any_work(args: list[str], tmp_path: Path) -> None:
    db = tmp_path / "never.db"
    res = runner.invoke(app, ["search", "clip.mp4", "--uri", str(db), *args])
    assert res.exit_code == 2, res.output
    assert not db.exists()


def test_mode_choices_are_listed_in_help() -> None:
    res = runner.invoke(app, ["search", "--help"], terminal_width=200)
    assert res.exit_code == 0
    assert "embedding" in res.stdout and "duration" in res.stdout and "codes" in res.stdout


@pytest.mark.parametrize("command", [["stats"], ["list"], ["delete", "7"], ["search", "clip.mp4"]])
def test_read_only_commands_do_not_create_a_store(command: list[str], tmp_path: Path) -> None:
    db = tmp_path / "typo.db"
    res = runner.invoke(app, [*command, "--uri", str(db)])
    assert res.exit_code == 1, res.output
    assert "no such store" in res.output and str(db) in res.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["clip [red].mp4", "x [/bold] y.mp4"])
def test_file_names_print_as_they_are(name: str, tmp_path: Path) -> None:
    """Names with brackets are not console markup: errors show them verbatim (no traceback)."""
    res = runner.invoke(app, ["fingerprint", str(tmp_path / name)])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.exception  # not a MarkupError traceback
    assert name in res.output.replace("\n", "")


def test_a_corrupt_store_file_is_named_as_such(tmp_path: Path) -> None:
    db = tmp_path / "broken.db"
    data = np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    db.write_bytes(data)
    res = runner.invoke(app, ["stats", "--uri", str(db)])
    assert res.exit_code == 1 and "not a Milvus Lite database" in res.output and "in use" not in res.output
    assert db.read_bytes() == data  # never touched
