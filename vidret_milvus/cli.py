"""Command line. Only parses and prints: the work is done by the package's modules."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup

from . import __version__
from .decision import Mode
from .descriptor import MAX_CODE_BITS
from .regions import QueryViews
from .errors import VidretError
from .model.config import Precision

# No markup by default: file names such as "clip [copy].mp4" must print as they are. The few
# styled lines opt in with markup=True and escape() the user's text inside them.
def _stdout_gone() -> typer.Exit:
    """The reader of stdout went away (``| head``): Python's advice is to point stdout at
    devnull, so that flushing it at exit cannot raise again, and leave without a message;
    141 is what a shell reports for a writer killed by SIGPIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return typer.Exit(141)


class _Stdout(Console):
    def on_broken_pipe(self) -> None:  # rich's default exits 1, like a failure
        self.quiet = True
        raise _stdout_gone()


out = _Stdout(markup=False)
err = Console(stderr=True, markup=False)


class _ErrorBoundary(TyperGroup):
    """The one place where the package's errors become exit codes: a domain error (VidretError),
    a value the library refused (ValueError) or a file it could not read or write (OSError)
    prints "error: ..." on stderr and exits 1 (with ``--debug`` / VIDRET_DEBUG=1 the traceback
    follows). Usage errors stay click's (exit 2). A reader of stdout that stops early (``| head``)
    ends the command quietly with 141, as a shell reports a pipe writer killed by SIGPIPE (where
    stdout is written: the ``out`` console and JSON Lines; any other broken pipe is an error)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (VidretError, ValueError, OSError) as exc:
            if _DEBUG["on"]:
                err.print_exception(show_locals=False)
            raise _fail(exc) from None


app = typer.Typer(cls=_ErrorBoundary, no_args_is_help=True, help="Near-duplicate / copied-video retrieval on Milvus.")
# Settings of every Milvus connection, given once before the command (or by their env vars).
_STORE_SETTINGS: dict[str, Any] = {"timeout": 30.0, "nlist": None}
_DEBUG = {"on": False}


def _version(value: bool) -> None:
    if value:
        out.print(f"vidret-milvus {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True)] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds each Milvus call may take (transient failures are retried 3 times with backoff).",
                                           envvar="VIDRET_TIMEOUT", min=0.1)] = 30.0,
    ivf_nlist: Annotated[Optional[int], typer.Option("--ivf-nlist", help="Lists of a BIN_IVF_FLAT code index when collections are created (default 1024).",
                                                     envvar="VIDRET_IVF_NLIST", min=1, max=65536, show_default=False)] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Print the traceback of an error as well as its message.", envvar="VIDRET_DEBUG")] = False,
) -> None:
    """Near-duplicate / copied-video retrieval on Milvus."""
    _STORE_SETTINGS.update(timeout=timeout, nlist=ivf_nlist)
    _DEBUG["on"] = debug


def _finite(value: Optional[float]) -> Optional[float]:
    # float("nan") parses, but a NaN threshold flags nothing and puts NaN into the JSON: a usage error (exit 2)
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, got {value}")
    return value

# ---------------------------------------------------------------- shared options
UriOpt = Annotated[str, typer.Option("--uri", help="Milvus Lite file (*.db) or server URI (http://host:19530).", envvar="VIDRET_MILVUS_URI")]
TokenOpt = Annotated[str, typer.Option("--token", help="Milvus server token (user:password); never printed.", envvar="VIDRET_MILVUS_TOKEN", show_default=False)]
PrefixOpt = Annotated[str, typer.Option("--prefix", help="Collection name prefix.", envvar="VIDRET_PREFIX")]
CheckpointOpt = Annotated[Optional[Path], typer.Option("--checkpoint", help="Trained model folder (config.json + model.safetensors).", envvar="VIDRET_CHECKPOINT")]
BackboneOpt = Annotated[Optional[str], typer.Option("--backbone", help="Backbone with untrained heads: sscd, sscd_distilled, sscd_ensemble (both side by side) or sscd_ensemble_224 (SSCD at 224 px) (copy-detection descriptors, ONNX), or a timm name (tf_efficientnet_lite0, resnet101, ...).", envvar="VIDRET_BACKBONE")]
WeightsOpt = Annotated[Optional[str], typer.Option("--weights", help="Backbone ImageNet weights: a local .pth/.safetensors file, or 'hub' to download through timm.", envvar="VIDRET_WEIGHTS")]
PrecisionOpt = Annotated[Precision, typer.Option("--precision", help="Inference arithmetic: bf16 is faster with torch, codes may differ in a few bits.", envvar="VIDRET_PRECISION")]
ThreadsOpt = Annotated[int, typer.Option("--threads", help="CPU threads for decoding and for the model.", envvar="VIDRET_THREADS", min=1)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.", envvar="VIDRET_JSON")]
BinaryIndexOpt = Annotated[Optional[str], typer.Option(
    "--binary-index", envvar="VIDRET_BINARY_INDEX", show_default=False,
    help="Index of the codes when the collections are created: BIN_FLAT (default, exact) or BIN_IVF_FLAT (server only; "
    "searched with a recall guard; lists: VIDRET_IVF_NLIST, default 1024). Must match existing collections.",
)]


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(1)


def _load_model(checkpoint: Optional[Path], backbone: Optional[str], weights: Optional[str], precision: Precision, threads: int):  # noqa: ANN202
    # No torch here: load_model runs an exported model.onnx (or an ONNX backbone) with
    # onnxruntime, and sets torch's thread count itself when it falls back to torch.
    from .model import load_model

    return load_model(checkpoint=checkpoint, backbone=backbone, weights=weights, precision=precision, threads=threads)


def _connect(uri: str, token: str, prefix: str, binary_index: Optional[str] = None, create: bool = True):  # noqa: ANN202
    """``create=False`` for commands that only read: a missing Lite file is an error, not a new store."""
    from .store import Store

    return Store.connect(uri=uri, token=token, prefix=prefix, binary_index=binary_index, nlist=_STORE_SETTINGS["nlist"],
                         timeout=_STORE_SETTINGS["timeout"], create=create)


@app.command()
def fingerprint(
    video: Annotated[Path, typer.Argument(help="Video file.")],
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Write the descriptor as .npz.")] = None,
    fps: Annotated[float, typer.Option("--fps", help="Frames sampled per second.", envvar="VIDRET_FPS")] = 1.0,
    keyframes: Annotated[bool, typer.Option("--keyframes", help="Sample only keyframes (fps ignored).", envvar="VIDRET_KEYFRAMES")] = False,
    checkpoint: CheckpointOpt = None,
    backbone: BackboneOpt = None,
    weights: WeightsOpt = None,
    precision: PrecisionOpt = Precision.fp32,
    threads: ThreadsOpt = 2,
    as_json: JsonOpt = False,
) -> None:
    """Fingerprint one video: per-frame texture embeddings and binary codes (the model's length, 128 bits in the patent) with timestamps."""
    from .fingerprint import Sampling, fingerprint_video

    model = _load_model(checkpoint, backbone, weights, precision, threads)
    t0 = time.perf_counter()
    desc = fingerprint_video(video, model, Sampling(fps=fps, keyframes=keyframes, threads=threads))
    took = time.perf_counter() - t0
    if out_file is not None:
        desc.save(out_file)
    summary = {
        "path": desc.path, "frames": desc.num_frames, "duration": round(desc.duration, 3), "embedding_dim": desc.dim,
        "code_bits": desc.codes.shape[1] * 8, "model_id": desc.model_id, "seconds": round(took, 3),
        "realtime_factor": round(desc.duration / took, 2) if took > 0 else None, "out": str(out_file) if out_file else None,
    }
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        out.print(
            f"{desc.path}: {desc.num_frames} frames over {desc.duration:.1f} s, embedding {desc.dim}-d, "
            f"{summary['code_bits']}-bit codes, model {desc.model_id}, {took:.2f} s ({summary['realtime_factor']}x realtime)",
            highlight=False, soft_wrap=True,
        )


@app.command()
def ingest(
    directory: Annotated[Path, typer.Argument(help="Folder of videos (or one file).")],
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")] = False,
    fps: Annotated[float, typer.Option("--fps", help="Frames sampled per second.", envvar="VIDRET_FPS")] = 1.0,
    keyframes: Annotated[bool, typer.Option("--keyframes", help="Sample only keyframes.", envvar="VIDRET_KEYFRAMES")] = False,
    batch: Annotated[int, typer.Option("--batch", help="Frames per model batch.", envvar="VIDRET_BATCH", min=1)] = 32,
    shard: Annotated[Optional[str], typer.Option(
        "--shard", envvar="VIDRET_SHARD", show_default=False,
        help="i/N: ingest only shard i of N (split by a hash of each file's absolute path), for N parallel workers "
        "on one server, e.g. a Kubernetes indexed Job with --shard $JOB_COMPLETION_INDEX/N.",
    )] = None,
    binary_index: BinaryIndexOpt = None,
    uri: UriOpt = "./vidret.db",
    token: TokenOpt = "",
    prefix: PrefixOpt = "vidret",
    checkpoint: CheckpointOpt = None,
    backbone: BackboneOpt = None,
    weights: WeightsOpt = None,
    precision: PrecisionOpt = Precision.fp32,
    threads: ThreadsOpt = 2,
    as_json: JsonOpt = False,
) -> None:
    """Fingerprint every video in DIRECTORY and store it; already stored files are skipped."""
    from .fingerprint import Sampling
    from .ingest import discover, ingest_paths, parse_shard, select_shard

    shard_in = parse_shard(shard) if shard else None
    files, problems = discover(directory, recursive)
    if shard_in is not None:
        files = select_shard(files, *shard_in)
    sampling = Sampling(fps=fps, keyframes=keyframes, threads=threads, batch_size=batch)
    model = _load_model(checkpoint, backbone, weights, precision, threads)
    store = _connect(uri, token, prefix, binary_index)
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[extra]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=as_json or not err.is_terminal, transient=False,
    )
    with store, progress:
        vids = progress.add_task("videos", total=len(files), extra="")
        # Frames of the video being fingerprinted, against what its duration promises (a
        # total for the whole batch would need every file probed before the first starts).
        frames = progress.add_task("frames", total=None, extra="")

        def start(p: str) -> None:
            progress.update(vids, extra=os.path.basename(p)[:40])

        def expected(n: int | None) -> None:
            progress.reset(frames, total=n)

        def done(p: str, status: str) -> None:
            progress.advance(vids)

        report = ingest_paths(
            store, model, files, sampling, on_video_start=start, on_video_done=done, on_frames=lambda n: progress.advance(frames, n), shard=shard_in,
            on_expected_frames=expected,
        )
    for p in problems:
        report.failed.append((p, "cannot read folder"))
    if as_json:
        out.print_json(json.dumps(report.to_json()))
    else:
        for p, v, n in report.ingested:
            out.print(f"[green]ingested[/] {escape(p)} (id {v}, {n} frames)", highlight=False, markup=True, soft_wrap=True)
        for p, v, s in report.present:
            same = "" if s == p else f" (same content as {s})"
            out.print(f"[yellow]already present[/] {escape(p)}{escape(same)}", highlight=False, markup=True, soft_wrap=True)
        for p, r in report.failed:
            out.print(f"[red]failed[/] {escape(p)}: {escape(r)}", highlight=False, markup=True, soft_wrap=True)
        for p, r in report.skipped:
            out.print(f"[dim]skipped (not a video)[/] {escape(p)}: {escape(r)}", highlight=False, markup=True, soft_wrap=True)
        out.print(
            f"{len(report.ingested)} ingested, {len(report.present)} already present, {len(report.failed)} failed, "
            f"{len(report.skipped)} not videos" + (f", {len(report.removed_incomplete)} interrupted ingests cleaned up" if report.removed_incomplete else ""),
            highlight=False,
        )
    if report.failed and not report.ingested and not report.present:
        raise typer.Exit(1)


MaxCandidatesOpt = Annotated[Optional[int], typer.Option(
    "--max-candidates", help="Videos sent to the re-rank, most coherent code votes first (default 2000; 50 keeps a search of 1,000 h of references near 300 ms, see benchmarks/RESULTS.md).",
    envvar="VIDRET_MAX_CANDIDATES", min=1, max=16384, show_default=False)]
MinCodeVotesOpt = Annotated[Optional[int], typer.Option(
    "--min-code-votes", help="Query frames that must recall a video at one time offset before it is re-ranked (default: the model's tuned value, 1: every recalled video; "
    "2 passes about a third fewer reference frames on the hard tuning sets for about 1 point of muAP, see README 'The code stage').",
    envvar="VIDRET_MIN_CODE_VOTES", min=1, max=1000, show_default=False)]
RecallLimitOpt = Annotated[Optional[int], typer.Option(
    "--recall-limit", help="Nearest codes kept per query frame in the code recall (default 16384, Milvus' cap; 128 for a large library).",
    envvar="VIDRET_RECALL_LIMIT", min=1, max=16384, show_default=False)]


@app.command()
def search(
    clips: Annotated[Optional[list[Path]], typer.Argument(help="Query clips, or folders of clips (their sub-folders too with --recursive).", show_default=False)] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders of the folders given.")] = False,
    from_file: Annotated[Optional[str], typer.Option("--from-file", help="Read more query paths from this file, one per line ('-': standard input; blank lines and lines starting with # are skipped).", show_default=False)] = None,
    top_n: Annotated[int, typer.Option("--top-n", help="Number of results.", envvar="VIDRET_TOP_N", min=1)] = 20,
    radius: Annotated[Optional[int], typer.Option("--radius", help="Hamming radius of the code recall (bits, inclusive, at most the code length; default: the model's tuned value, 32 untrained).", envvar="VIDRET_RADIUS", min=0, max=MAX_CODE_BITS)] = None,
    max_candidates: MaxCandidatesOpt = None,
    recall_limit: RecallLimitOpt = None,
    min_code_votes: MinCodeVotesOpt = None,
    mode: Annotated[Mode, typer.Option("--mode", help="Copy decision: embedding (mode 1), duration (mode 2), codes (mode 3).", envvar="VIDRET_MODE")] = Mode.duration,
    threshold: Annotated[Optional[float], typer.Option("--threshold", help="Decision threshold of the mode (default: the model's tuned value for the mode, see README).", callback=_finite)] = None,
    binary_index: BinaryIndexOpt = None,
    uri: UriOpt = "./vidret.db",
    token: TokenOpt = "",
    prefix: PrefixOpt = "vidret",
    checkpoint: CheckpointOpt = None,
    backbone: BackboneOpt = None,
    weights: WeightsOpt = None,
    precision: PrecisionOpt = Precision.fp32,
    threads: ThreadsOpt = 2,
    as_json: JsonOpt = False,
    report: Annotated[Optional[Path], typer.Option("--report", help="Also write the review page as one static HTML file (videos linked by relative path; one clip only).")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Also write a timeline plot (PNG) of the matched segments (one clip only).")] = None,
    report_dir: Annotated[Optional[Path], typer.Option("--report-dir", help="Also write the review page as DIR/index.html with copies of the videos it shows in DIR/media/ (movable, zippable; one clip only).")] = None,
    report_excerpts: Annotated[bool, typer.Option("--report-excerpts", help="With --report-dir: short excerpts around each result's matched segments instead of whole copies.")] = False,
    views: Annotated[Optional[QueryViews], typer.Option("--views", help="What of each frame is searched: full (the whole frame), insets (also, when the clip shows them, picture-in-picture insets, the picture inside letterbox bars, the picture beside a caption band and a filmed screen warped back: a second decode and one model pass per such view only then; the default), all (also a centre crop, for crops and camcorder copies: about 2-3x the fingerprinting time).", envvar="VIDRET_VIEWS", show_default="insets")] = None,
    regions: Annotated[Optional[bool], typer.Option("--regions/--no-regions", help="The older switch: --regions is --views all, --no-regions is --views full.", envvar="VIDRET_REGIONS")] = None,
    wide: Annotated[bool, typer.Option("--wide", help="Show full paths in the table (--json always has them).")] = False,
) -> None:
    """Find the stored videos that copy each CLIP, and the seconds that match.

    Several clips share one model and one store connection. With --json, one clip file prints
    one JSON object; several clips, a folder or --from-file print JSON Lines in input order, each line as soon as its clip is done
    ({"query": ..., "error": ...} for a clip that failed; the batch goes on, exit 1 at the end)."""
    from .ingest import discover
    from .decision import mode_threshold_field
    from .model.settings import thresholds_for
    from .search import SearchParams, check_store, search_video

    if regions is not None and views is not None and views is not (QueryViews.all if regions else QueryViews.full):
        raise typer.BadParameter(f"--{'' if regions else 'no-'}regions is --views {'all' if regions else 'full'}; it contradicts --views {views.value}", param_hint="--views")
    chosen = views or (QueryViews.insets if regions is None else QueryViews.all if regions else QueryViews.full)
    queries, problems = _query_paths(clips or [], recursive, from_file, discover)
    if not queries and not problems:
        raise VidretError("no query clips: give CLIP paths, a folder or --from-file")
    if len(queries) + len(problems) > 1 and (report, plot, report_dir) != (None, None, None):
        raise VidretError("--report, --report-dir and --plot take one clip")
    # One clip named as a file: one JSON object. A folder or a list is a stream whatever it
    # holds (a consumer reading JSON Lines must not meet a pretty-printed object).
    single = len(queries) == 1 and not problems and from_file is None and len(clips or []) == 1 and not Path(clips[0]).is_dir()  # type: ignore[index]
    failed = 0
    with _connect(uri, token, prefix, binary_index, create=False) as store:  # first: a mistyped --uri fails fast
        with _status("loading the model"):
            model = _load_model(checkpoint, backbone, weights, precision, threads)
        field = mode_threshold_field(mode)
        params = SearchParams.for_model(thresholds_for(model), top_n=top_n, radius=radius, mode=mode, max_candidates=max_candidates, recall_limit=recall_limit, min_code_votes=min_code_votes, **{field: threshold})
        if params.radius > model.config.code_bits:  # before any clip is fingerprinted
            raise typer.BadParameter(f"{params.radius} exceeds the model's {model.config.code_bits}-bit codes", param_hint="--radius")
        check_store(store, model)
        for problem in problems:  # folders that could not be read: reported first, like ingest
            failed += 1
            _print_failure(problem[0], problem[1], as_json)
        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[extra]}"),
                            TimeElapsedColumn(), console=err, disable=single or not err.is_terminal, transient=True)
        with progress:
            task = progress.add_task("searching", total=len(queries), extra="")
            for clip in queries:
                progress.update(task, extra=os.path.basename(clip)[:40])
                try:
                    with _status(f"fingerprinting and searching {os.path.basename(clip)}", single):
                        resp = search_video(store, model, clip, params, views=chosen)
                    doc = resp.to_json()
                    text = json.dumps(doc, allow_nan=False) if as_json else ""  # strict JSON: NaN is an error of this clip
                except (VidretError, ValueError, OSError) as exc:
                    if single:
                        raise  # the error boundary reports it (exit 1)
                    failed += 1
                    _print_failure(clip, str(exc), as_json)
                else:
                    # the result first: a report that cannot be written must not hide it
                    if as_json and single:
                        out.print_json(text)
                    elif as_json:
                        _json_line(doc)
                    else:
                        _print_response(resp, wide)
                    if (report, plot, report_dir) != (None, None, None):
                        _write_extras(resp, report, plot, report_dir, report_excerpts)
                progress.advance(task)
    if failed:
        if not as_json:
            err.print(f"{failed} of {len(queries) + len(problems)} queries failed", highlight=False)
        raise typer.Exit(1)


def _status(what: str, show: bool = True):  # noqa: ANN202
    """A spinner on stderr saying what a long step is doing (terminals only: logs stay clean)."""
    return err.status(what + "...") if show and err.is_terminal else contextlib.nullcontext()


def _query_paths(clips: list[Path], recursive: bool, from_file: Optional[str], discover) -> tuple[list[str], list[tuple[str, str]]]:  # noqa: ANN001
    """Query files in input order: files as given, folders expanded (sorted; sub-folders with
    ``recursive``), then the lines of ``from_file``. Unreadable folders are (path, reason)."""
    given = [str(c) for c in clips]
    if from_file is not None:
        try:
            text = sys.stdin.read() if from_file == "-" else Path(from_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise VidretError(f"{from_file}: cannot read the list of queries ({exc})") from None
        given += [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    files: list[str] = []
    problems: list[tuple[str, str]] = []
    for g in given:
        if os.path.isdir(g):
            found, bad = discover(g, recursive)
            files += found
            problems += [(b.split(": ", 1)[0], b.split(": ", 1)[-1]) for b in bad]
        else:
            files.append(g)  # a missing file is that query's error, not the batch's
    return files, problems


def _write_extras(resp, report: Optional[Path], plot: Optional[Path], report_dir: Optional[Path] = None, excerpts: bool = False) -> None:  # noqa: ANN001
    from .report import write_plot, write_report, write_report_dir

    try:
        if report is not None:
            err.print(f"report: {write_report(resp, report)}", highlight=False, soft_wrap=True)
        if report_dir is not None:
            with _status("copying the videos" if not excerpts else "cutting the excerpts"):
                index = write_report_dir(resp, report_dir, media="excerpt" if excerpts else "copy")
            err.print(f"report: {index}", highlight=False, soft_wrap=True)
        if plot is not None:
            err.print(f"plot: {write_plot(resp, plot)}", highlight=False, soft_wrap=True)
    except OSError as exc:
        raise VidretError(f"cannot write the report or plot: {exc}") from None


def _json_line(obj: dict) -> None:
    # JSON Lines: one compact object per line, flushed so a consumer sees each clip when it is done
    try:
        out.file.write(json.dumps(obj, allow_nan=False) + "\n")
        out.file.flush()
    except BrokenPipeError:
        raise _stdout_gone() from None


def _print_failure(query: str, reason: str, as_json: bool) -> None:
    if as_json:
        _json_line({"query": query, "error": reason})
    else:
        err.print(f"[bold red]error:[/] {escape(query)}: {escape(reason)}", highlight=False, markup=True, soft_wrap=True)


def _print_response(resp, wide: bool = False) -> None:  # noqa: ANN001
    """One line per result, readable at 80 columns: the file name (full path with ``wide``),
    short headers, segments as query -> reference seconds, the timing on one line."""
    name = resp.query if wide else os.path.basename(resp.query)
    copies = sum(r.is_copy and not r.self_match for r in resp.results)
    selfs = [i for i, r in enumerate(resp.results, 1) if r.self_match]
    title = f"{name} ({resp.query_duration:.1f} s): {copies} {'copy' if copies == 1 else 'copies'}" + (f"; #{selfs[0]} is the query itself" if selfs else "")
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("copy")
    table.add_column("video", overflow="fold" if wide else "ellipsis", no_wrap=not wide, max_width=None if wide else 28)
    table.add_column("dur s", justify="right")
    table.add_column("q s -> ref s", overflow="fold" if wide else "ellipsis", no_wrap=not wide)
    for i, r in enumerate(resp.results, 1):
        segs = ", ".join(f"{g.query_start:.0f}-{g.query_end:.0f}->{g.ref_start:.0f}-{g.ref_end:.0f}" for g in r.segments)
        table.add_row(str(i), f"{r.score:.2f}", "itself" if r.self_match else "yes" if r.is_copy else "no", r.path if wide else os.path.basename(r.path), f"{r.duration:.0f}", segs or "-")
    out.print(table)
    c = resp.candidates
    out.print(
        f"{c['frames']} frames/{c['videos']} videos recalled" + (" (cap hit: lower --radius)" if c["capped"] else "")
        # the fingerprinting and the total only, so the line fits 80 columns (--json has every step)
        + f" | fingerprint {resp.timing_ms.get('fingerprint', 0):.0f} ms, total {resp.timing_ms.get('total', 0):.0f} ms",
        highlight=False, soft_wrap=True,
    )


@app.command("list")
def list_videos(
    uri: UriOpt = "./vidret.db",
    token: TokenOpt = "",
    prefix: PrefixOpt = "vidret",
    wide: Annotated[bool, typer.Option("--wide", help="Show full paths.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The stored videos: id, name, duration and frames."""
    with _connect(uri, token, prefix, create=False) as store:
        rows = [] if store.meta() is None else sorted(store.list_videos(), key=lambda r: r.video_id)
    if as_json:
        out.print_json(json.dumps([{"video_id": r.video_id, "path": r.path, "duration": round(r.duration, 3), "frames": r.frames, "status": r.status} for r in rows]))
        return
    table = Table(title=f"{len(rows)} stored {'video' if len(rows) == 1 else 'videos'}", title_justify="left")
    table.add_column("id", justify="right")
    table.add_column("video", overflow="fold" if wide else "ellipsis", no_wrap=not wide)
    table.add_column("dur s", justify="right")
    table.add_column("frames", justify="right")
    for r in rows:
        table.add_row(str(r.video_id), (r.path if wide else os.path.basename(r.path)) + ("" if r.status == "ready" else f" ({r.status})"), f"{r.duration:.1f}", str(r.frames))
    out.print(table)


@app.command()
def stats(uri: UriOpt = "./vidret.db", token: TokenOpt = "", prefix: PrefixOpt = "vidret", as_json: JsonOpt = False) -> None:
    """Counts of videos and frames, and the model the collections were made with."""
    with _connect(uri, token, prefix, create=False) as store:
        s = store.stats()
    if as_json:
        out.print_json(json.dumps(s))
    else:
        for k, v in s.items():
            out.print(f"{k}: {v}", highlight=False)


@app.command()
def delete(
    target: Annotated[str, typer.Argument(help="Stored video path or numeric video id.")],
    uri: UriOpt = "./vidret.db",
    token: TokenOpt = "",
    prefix: PrefixOpt = "vidret",
) -> None:
    """Remove a video (its row first, then its frames)."""
    with _connect(uri, token, prefix, create=False) as store:
        if store.meta() is None:
            raise VidretError("nothing ingested yet")
        if target.isdigit():
            rows = list(store.get_videos([int(target)], ready_only=False).values())
        else:
            rows = store.find_by_path(os.path.abspath(target))
        if not rows:
            raise VidretError(f"{target}: no such stored video")
        for r in rows:
            store.delete_video(r.video_id)
            out.print(f"deleted {r.path} (id {r.video_id})", highlight=False, soft_wrap=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (127.0.0.1: this machine only).", envvar="VIDRET_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (0: any free port).", envvar="VIDRET_PORT", min=0, max=65535)] = 8000,
    max_upload_mb: Annotated[int, typer.Option("--max-upload-mb", help="Largest query clip accepted for upload, in MiB.", envvar="VIDRET_MAX_UPLOAD_MB", min=1)] = 200,
    top_n: Annotated[int, typer.Option("--top-n", help="Default number of results.", envvar="VIDRET_TOP_N", min=1)] = 10,
    uri: UriOpt = "./vidret.db",
    token: TokenOpt = "",
    prefix: PrefixOpt = "vidret",
    checkpoint: CheckpointOpt = None,
    backbone: BackboneOpt = None,
    weights: WeightsOpt = None,
    precision: PrecisionOpt = Precision.fp32,
    threads: ThreadsOpt = 2,
    workers: Annotated[int, typer.Option("--workers", help="Concurrent searches on a Milvus server (Milvus Lite: always 1).",
                                         envvar="VIDRET_WORKERS", min=1, max=64)] = 4,
    verbose: Annotated[bool, typer.Option("--verbose", help="Log every request.", envvar="VIDRET_VERBOSE")] = False,
    max_candidates: MaxCandidatesOpt = None,
    recall_limit: RecallLimitOpt = None,
    min_code_votes: MinCodeVotesOpt = None,
    verdicts: Annotated[Optional[Path], typer.Option("--verdicts", help="The reviewer's verdicts file (SQLite; default: beside a Lite .db, else ./vidret-verdicts.sqlite).",
                                                     envvar="VIDRET_VERDICTS", show_default=False)] = None,
) -> None:
    """Serve the review page: upload or pick a query, see each target video with its copied segments marked."""
    from .model.settings import thresholds_for
    from .search import SearchParams
    from .web import ReviewApp, make_server

    model = _load_model(checkpoint, backbone, weights, precision, threads)
    store = _connect(uri, token, prefix, create=False)  # serving a mistyped --uri would answer "nothing ingested" to every search
    review = ReviewApp(store, model, SearchParams.for_model(thresholds_for(model), top_n=top_n, max_candidates=max_candidates, recall_limit=recall_limit, min_code_votes=min_code_votes), max_upload=max_upload_mb * 1024 * 1024, workers=workers,
                       verdicts=verdicts)
    try:
        httpd = make_server(review, host, port, quiet=not verbose)
    except OSError as exc:
        review.close()
        store.close()
        raise _fail(VidretError(f"cannot listen on {host}:{port}: {exc}")) from None
    h, p = httpd.server_address[:2]
    pool = f"{review.workers} search workers" if review.concurrent else "Milvus Lite: one search at a time"
    err.print(f"review page on http://{h}:{p}/ (store {uri}, prefix {prefix}; {pool}; verdicts {review.verdicts.path}; API docs /docs); Ctrl-C stops", highlight=False, soft_wrap=True)
    import signal

    def _stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)  # clean up (uploads, store) on kill too
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        review.close()
        store.close()


@app.command()
def train(
    config: Annotated[Optional[Path], typer.Option("--config", help="Training config (JSON, or YAML); e.g. configs/cpu.json, configs/gpu.json.")] = None,
    out_dir: Annotated[Optional[str], typer.Option("--out", help="Run folder (checkpoints, loss CSVs and plot, eval.json).")] = None,
    cache: Annotated[Optional[str], typer.Option("--cache", help="Training cache folder (prepared from --resources when missing).")] = None,
    resources: Annotated[Optional[str], typer.Option("--resources", help="Fetched media (scripts/fetch_media.py).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu or cuda.", envvar="VIDRET_DEVICE")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the data stream (sampling, edits).")] = None,
    variant: Annotated[Optional[str], typer.Option("--variant", help="Stage 2 loss: v1 (adaptive margin), v2 (Formula 8), fixed (ablation).")] = None,
    stage1_steps: Annotated[Optional[int], typer.Option("--stage1-steps", help="Stage 1 step budget (0 skips it).", min=0)] = None,
    stage2_steps: Annotated[Optional[int], typer.Option("--stage2-steps", help="Stage 2 step budget (0 skips it).", min=0)] = None,
    resume: Annotated[Optional[bool], typer.Option("--resume/--no-resume", help="Continue from the run folder's state.pt.")] = None,
    evaluate: Annotated[Optional[bool], typer.Option("--eval/--no-eval", help="Evaluate on the validation split at the end.")] = None,
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="Any config value: SECTION.KEY=VALUE (repeatable).")] = None,
    prepare_only: Annotated[bool, typer.Option("--prepare-only", help="Only build the training cache.")] = False,
    plot_only: Annotated[bool, typer.Option("--plot-only", help="Only draw loss.png of the run folder (--out, else the config's run.out) from its loss CSVs (needs matplotlib).")] = False,
    print_every: Annotated[Optional[int], typer.Option("--print-every", help="A plain line every N steps (and the log) on stderr instead of the progress bars, for logs of unattended runs.",
                                                       min=1, show_default=False)] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="CPU threads for decoding and for the model (default: the config's run.threads, 2).",
                                                   envvar="VIDRET_THREADS", min=1, show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train the texture and quantization heads (and the last backbone blocks) in two stages."""
    from .train.config import load_config, set_value
    from .train.data import prepare_cache
    from .train.trainer import Hooks, plot_losses
    from .train.trainer import train as run_training

    opts = {"run.out": out_dir, "data.cache_dir": cache, "data.resources": resources, "run.device": device, "run.seed": seed,
            "stage2.variant": variant, "stage1.steps": stage1_steps, "stage2.steps": stage2_steps, "run.resume": resume,
            "run.eval": evaluate, "run.threads": threads}
    cfg = load_config(config, {k: v for k, v in opts.items() if v is not None})
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set needs SECTION.KEY=VALUE, got {item!r}")
        set_value(cfg, key, value)
    if prepare_only:
        summary = prepare_cache(cfg.data.resources, cfg.data.cache_dir, log=lambda s: err.print(s, highlight=False))
        if as_json:
            out.print_json(json.dumps(summary))
        else:
            out.print(json.dumps(summary["splits"]), highlight=False)
        return
    if plot_only:
        path = plot_losses(cfg.run.out)
        if path is None:
            raise VidretError(f"{cfg.run.out}: no loss CSV, or matplotlib is not installed: no plot")
        out.print(f"wrote {path}", highlight=False, soft_wrap=True)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[extra]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=as_json or print_every is not None, transient=False,
    )
    tasks: dict[int, int] = {}

    def on_stage(stage: int, start: int, total: int) -> None:
        tasks[stage] = progress.add_task(f"stage {stage}", total=total, completed=start, extra="")

    def on_step(stage: int, step: int, total: int, row: dict) -> None:
        keys = ("l_em_ema",) if stage == 1 else ("l_em_ema", "l_q_ema", "l_coding", "margin")
        progress.update(tasks[stage], completed=step, extra=" ".join(f"{k} {row[k]:.4g}" for k in keys if k in row))
        if print_every is not None and (step % print_every == 0 or step == total):
            err.print(f"stage {stage} step {step}/{total} " + " ".join(f"{k}={v}" for k, v in row.items()), highlight=False, soft_wrap=True)

    try:  # beyond the boundary's errors: torch reports out-of-memory and device faults as RuntimeError
        with progress:
            summary = run_training(cfg, Hooks(on_stage=on_stage, on_step=on_step, log=lambda s: progress.console.print(s, highlight=False, soft_wrap=True)))
    except (VidretError, ValueError, OSError, RuntimeError) as exc:
        raise _fail(exc) from None
    if as_json:
        out.print_json(json.dumps(summary))
        return
    out.print(f"trained model: {summary['final']} (M_em {summary['m_em']:.5f}; steps {summary['steps']}; stopped by {summary['stop_reason']})", highlight=False, soft_wrap=True)
    if summary.get("eval"):
        table = Table(title="validation (embedding | binary codes)")
        for col in ("model", "emb mAP", "emb top1", "codes mAP", "codes top1", "copy bits", "other bits", "copies <=16 bits", "spearman"):
            table.add_column(col)
        for name, r in summary["eval"].items():
            e, c = r["embedding"], r["codes"]
            table.add_row(name, f"{e['map']:.3f}", f"{e['top1']:.3f}", f"{c['map']:.3f}", f"{c['top1']:.3f}", f"{c['pos_mean']:.1f}",
                          f"{c['neg_mean']:.1f}", f"{c['pos_le16']:.2f}", f"{r['spearman_hamming_vs_embedding']:.3f}")
        out.print(table)


@app.command("train-heads")
def train_heads(
    backbone: Annotated[str, typer.Option("--backbone", help="Frozen ONNX descriptor: sscd, sscd_distilled, sscd_ensemble or sscd_ensemble_224 (both, 1024-d; the texture head keeps its length unless --set embed_dim=N).", envvar="VIDRET_BACKBONE")] = "sscd",
    out_dir: Annotated[Path, typer.Option("--out", help="Checkpoint folder to write (config.json, model.safetensors, training.json).")] = Path("runs/sscd_heads"),
    cache: Annotated[str, typer.Option("--cache", help="Training cache folder (train.npz: training split; val.npz: validation).")] = "train_cache",
    features: Annotated[Path, typer.Option("--features", help="Where the descriptors of the training images and their copies are cached.")] = Path("runs/frozen_cache"),
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="A FrozenConfig value: KEY=VALUE (repeatable), e.g. steps2=2000.")] = None,
    threads: ThreadsOpt = 2,
) -> None:
    """Train the texture and quantization heads on a frozen copy-detection descriptor (stage 1 texture head alone, stage 2 both)."""
    from .model import load_model
    from .model.checkpoint import save_onnx_checkpoint
    from .model.onnx_model import OnnxFingerprintModel
    from .train.data import SampleSet, cache_ready
    from .train.frozen import config_from_overrides, train_frozen

    cfg = config_from_overrides(overrides or [])
    model = load_model(backbone=backbone, threads=threads)
    if not isinstance(model, OnnxFingerprintModel):
        raise VidretError(f"--backbone {backbone!r} is not a frozen ONNX descriptor (sscd, sscd_distilled, sscd_ensemble, sscd_ensemble_224); use `train`")
    if not cache_ready(cache):
        raise VidretError(f"{cache}: no training cache (run `vidret-milvus train --prepare-only` first)")
    trained, summary = train_frozen(model, SampleSet.load(Path(cache) / "train.npz"), SampleSet.load(Path(cache) / "val.npz"), cfg, features,
                                    log=lambda s: err.print(s, highlight=False))
    save_onnx_checkpoint(trained, out_dir)
    (out_dir / "training.json").write_text(json.dumps(summary, indent=1) + "\n")
    out.print(f"trained heads: {out_dir} (model {trained.model_id})", highlight=False, soft_wrap=True)


@app.command()
def export(
    checkpoints: Annotated[list[Path], typer.Argument(help="Checkpoint folder(s) (config.json + model.safetensors).")],
    weights: WeightsOpt = None,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Compare torch and onnxruntime on seeded images; refuse the file if they disagree.")] = True,
    threads: ThreadsOpt = 2,
    as_json: JsonOpt = False,
) -> None:
    """Write model.onnx beside each checkpoint's weights: ingest, search and serve then run it with onnxruntime (no torch)."""
    import torch

    from .model.export import export_checkpoint

    torch.set_num_threads(threads)
    summaries = []
    for ckpt in checkpoints:
        summaries.append(export_checkpoint(ckpt, weights=weights, check=check))
    if as_json:
        out.print_json(json.dumps(summaries if len(summaries) > 1 else summaries[0]))
        return
    for s in summaries:
        agree = s.get("agreement")
        tail = f"; vs torch: cosine >= {agree['min_cosine']:.6f}, {agree['mean_code_bits_differing']:.2f} code bits differ on average" if agree else ""
        out.print(f"wrote {s['onnx']} ({int(s['bytes']) / 1e6:.1f} MB, model {s['model_id']}{tail})", highlight=False, soft_wrap=True)


@app.command("train-eval")
def train_eval(
    checkpoints: Annotated[Optional[list[Path]], typer.Option("--checkpoint", help="Trained model folder (repeatable).")] = None,
    untrained: Annotated[bool, typer.Option("--untrained", help="Also evaluate the untrained heads.")] = False,
    cache: Annotated[str, typer.Option("--cache", help="Training cache folder (its validation split is used).")] = "train_cache",
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.", envvar="VIDRET_DEVICE")] = "cpu",
    max_samples: Annotated[int, typer.Option("--max-samples", help="Validation originals used.", min=2)] = 160,
    copies: Annotated[int, typer.Option("--copies", help="Edited copies per original.", min=1)] = 3,
    threads: ThreadsOpt = 2,
    combine: Annotated[bool, typer.Option("--combine", help="Evaluate nothing: merge the EVAL_JSON files of earlier runs (with each run's summary.json) into one table keyed run/variant.")] = False,
    evals: Annotated[Optional[list[Path]], typer.Argument(help="eval.json files of run folders (with --combine).", metavar="EVAL_JSON...", show_default=False)] = None,
) -> None:
    """Evidence on the validation split as JSON: triplet accuracy, mAP, top-1 for embeddings and codes; Spearman."""
    from .train.trainer import combine_evals, evaluate_checkpoints

    if combine != bool(evals):
        raise typer.BadParameter("--combine goes with EVAL_JSON files (and they with it)")
    if combine:
        out.print_json(json.dumps(combine_evals([str(e) for e in evals or []])))
        return
    cks: list = ([None] if untrained or not checkpoints else []) + [str(c) for c in checkpoints or []]
    res = evaluate_checkpoints(cks, cache, max_samples=max_samples, copies=copies, device=device, threads=threads)
    out.print_json(json.dumps(res))


@app.command("train-background")
def train_background(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Trained model folder: background.npy is written into it.")],
    cache: Annotated[str, typer.Option("--cache", help="Training cache folder (its training split is the background).")] = "train_cache",
    max_frames: Annotated[int, typer.Option("--max-frames", help="Most background images (a seeded sample beyond).", min=1)] = 4000,
    threads: ThreadsOpt = 2,
) -> None:
    """Write the model's score-normalisation background (embeddings of training-split images)."""
    from .train.background import write_background

    model = _load_model(checkpoint, None, None, "fp32", threads)
    if not (Path(cache) / "train.npz").is_file():
        raise VidretError(f"{cache}: no training cache (run `vidret-milvus train --prepare-only` first)")
    path = write_background(model, checkpoint, cache, max_frames=max_frames)
    out.print(f"wrote {path}", highlight=False, soft_wrap=True)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
