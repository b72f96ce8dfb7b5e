"""The ``mmcli`` command: parse -> call one core function -> render. Nothing else lives here.

Heavy modules (torch, open_clip, numpy, PIL) are imported inside the commands, so ``mmcli --help``
stays instant (a test checks ``sys.modules``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer
from typer.core import TyperCommand

from mmcli import __version__
from mmcli.errors import ExitCode, MmcliError, NoImagesError, UsageError

app = typer.Typer(
    name="mmcli",
    help="Zero-shot image classification and text-to-image search with CLIP models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

MULTI_VALUE_OPTIONS = ("--labels", "-l", "--text", "-t")


def expand_multi_values(args: Sequence[str], options: Sequence[str] = MULTI_VALUE_OPTIONS) -> list[str]:
    """``--labels cat dog -f csv`` -> ``--labels cat --labels dog -f csv``.

    The values of a multi-value option run up to the next argument that starts with "-" (an
    option, "--", or "-" for stdin). Put inputs before the option, or after "--".
    """
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        out.append(arg)
        i += 1
        if arg == "--":
            out.extend(args[i:])
            break
        if arg in options:
            first = True
            while i < len(args) and not args[i].startswith("-"):
                if not first:
                    out.append(arg)
                out.append(args[i])
                first = False
                i += 1
    return out


class MultiValueCommand(TyperCommand):
    """A command whose ``--labels`` / ``--text`` take several values after one flag."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_multi_values(args))


# ------------------------------------------------------------------------------ messages, errors
def say(message: str) -> None:
    """A line for people, on stderr."""
    from mmcli.images import stdout_safe

    print(stdout_safe(message), file=sys.stderr, flush=True)


def warn(message: str) -> None:
    say(f"mmcli: warning: {message}")


def fail(exc: MmcliError) -> NoReturn:
    say(f"mmcli: error: {exc.message}")
    if exc.hint:
        say(f"hint: {exc.hint}")
    raise typer.Exit(int(exc.exit_code))


@contextmanager
def funnel() -> Iterator[None]:
    """Turn expected failures into ``mmcli: error: ...`` and an exit code; Ctrl-C into 130."""
    try:
        yield
    except MmcliError as exc:
        fail(exc)
    except KeyboardInterrupt:
        say("mmcli: interrupted")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except BrokenPipeError:  # `mmcli ... | head`: the reader is gone, which is fine
        _silence_stdout()
        raise typer.Exit(0) from None


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


# --------------------------------------------------------------------------------- shared options
ModelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        "-m",
        help="ARCH:TAG, hf-hub:ORG/REPO, local-dir:DIR or an alias (see `mmcli models`). "
        "Default: $MMCLI_MODEL or ViT-B-32-256:datacomp_s34b_b86k.",
        show_default=False,
    ),
]
WeightsOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--weights",
        help="Local checkpoint (safetensors or a PyTorch state dict) for the ARCH given with --model.",
        show_default=False,
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda | mps (auto: cuda, then mps, then cpu).")]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision", help="auto | fp32 | bf16 | fp16 (auto: fp16 on GPUs; bf16 on CPUs with native bf16, else fp32)."
    ),
]
FormatOpt = Annotated[
    Optional[str],
    typer.Option(
        "--format",
        "-f",
        help="table | json | jsonl | csv | tsv (default: table on a terminal, jsonl when piped).",
        show_default=False,
    ),
]
NullOpt = Annotated[bool, typer.Option("-0", "--null", help="Paths read from stdin ('-') are NUL-separated.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Images per model batch.")]
WorkersOpt = Annotated[
    Optional[int],
    typer.Option(
        "--workers",
        min=0,
        help="Decoding processes (default: CPU count; 0 or 1 decodes in-process).",
        show_default=False,
    ),
]
MaxPixelsOpt = Annotated[
    int,
    typer.Option(
        "--max-pixels", min=1, envvar="MMCLI_MAX_PIXELS", help="Refuse images with more pixels (decompression bombs)."
    ),
]
HiddenOpt = Annotated[bool, typer.Option("--include-hidden", help="Also walk hidden files and folders.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary on stderr.")]
LabelsOpt = Annotated[
    Optional[list[str]],
    typer.Option("--labels", "-l", help="Labels: --labels cat dog, --labels cat,dog, or repeated.", show_default=False),
]
LabelsFileOpt = Annotated[
    Optional[Path], typer.Option("--labels-file", help="A file with one label per line.", show_default=False)
]
ServerOpt = Annotated[
    Optional[str],
    typer.Option(
        "--server",
        help="Use a running `mmcli serve` at this URL (default: $MMCLI_SERVER, or one found running; "
        "MMCLI_SERVER=off never uses one).",
        show_default=False,
    ),
]
HtmlOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--html", help="Also write a self-contained HTML page of the results (thumbnails embedded).", show_default=False
    ),
]
GridOpt = Annotated[
    Optional[Path], typer.Option("--grid", help="Also write a PNG contact sheet of the results.", show_default=False)
]
InputsArg = Annotated[
    Optional[list[str]],
    typer.Argument(
        help="Image files, folders (searched recursively), or - to read paths from stdin.", show_default=False
    ),
]


def _read_stdin_paths(nul: bool) -> list[str]:
    stream = getattr(sys.stdin, "buffer", None)
    data = stream.read() if stream is not None else sys.stdin.read().encode("utf-8", "surrogateescape")
    parts = data.split(b"\0") if nul else data.splitlines()
    return [os.fsdecode(p) for p in parts if p.strip()]


def gather_paths(inputs: Sequence[str] | None, nul: bool, include_hidden: bool) -> list[str]:
    from mmcli.images import expand_inputs

    if not inputs:
        raise UsageError("no inputs given", hint="pass image files or folders, or - to read paths from stdin")
    if inputs.count("-") > 1:
        raise UsageError("'-' (stdin) can be given only once")
    items: list[str] = []
    for item in inputs:
        items.extend(_read_stdin_paths(nul) if item == "-" else [item])
    paths = [os.fsdecode(p) for p in expand_inputs(items, include_hidden)]
    if not paths:
        raise NoImagesError(
            "no image files found in the inputs",
            hint="image types: jpg, png, webp, gif, bmp, tiff (heic with pillow-heif)",
        )
    return paths


def _load(model: str | None, weights: Path | None, device: str, precision: str) -> Any:
    from mmcli.models import load_encoder, parse_model_spec

    spec = parse_model_spec(model, weights)
    return load_encoder(spec, device=device, precision=precision)


def _summary(verb: str, ok: int, failed: int, seconds: float, quiet: bool) -> None:
    if quiet or not sys.stderr.isatty():
        return
    rate = ok / seconds if seconds > 0 else 0.0
    extra = f", {failed} failed" if failed else ""
    say(f"{verb} {ok} image{'s' if ok != 1 else ''}{extra} in {seconds:.1f} s ({rate:.1f} images/s)")


# ------------------------------------------------------------------------------------- classify
def read_labels_file(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"labels file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read labels file {path}: {exc}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def collect_labels(labels: Sequence[str] | None, labels_file: Path | None) -> list[str]:
    found: list[str] = []
    for value in labels or []:
        found.extend(part for part in value.split(","))
    if labels_file is not None:
        found.extend(read_labels_file(labels_file))
    if not any(label.strip() for label in found):
        raise UsageError("no labels given", hint="e.g. --labels cat dog, --labels cat,dog or --labels-file FILE")
    return found


def choose_templates(template: Sequence[str] | None, templates: str | None) -> list[str]:
    from mmcli.classify import check_templates
    from mmcli.config import templates_named

    if template and templates:
        raise UsageError("give --template or --templates, not both")
    return check_templates(list(template) if template else templates_named(templates or "default"))


@app.command(
    cls=MultiValueCommand,
    epilog=(
        "Examples:\n\n"
        "  mmcli classify photo.jpg --labels cat dog\n\n"
        "  mmcli classify ./photos --labels-file labels.txt --templates imagenet -f csv > out.csv\n\n"
        "  find . -name '*.jpg' -print0 | mmcli classify - -0 --labels indoor outdoor | jq .labels[0]"
    ),
)
def classify(
    inputs: InputsArg = None,
    labels: LabelsOpt = None,
    labels_file: LabelsFileOpt = None,
    template: Annotated[
        Optional[list[str]],
        typer.Option(
            "--template",
            help='Prompt template with {} for the label (repeat to average several); "{}" uses '
            'labels as they are. Default: "a photo of a {}."',
            show_default=False,
        ),
    ] = None,
    templates: Annotated[
        Optional[str],
        typer.Option(
            "--templates",
            help="A template set from configs/templates.toml: default, simple (7), imagenet (80), raw.",
            show_default=False,
        ),
    ] = None,
    multi_label: Annotated[
        bool,
        typer.Option(
            "--multi-label", help="An independent score per label (see README) instead of a softmax over labels."
        ),
    ] = False,
    threshold: Annotated[
        Optional[float],
        typer.Option(
            "--threshold",
            min=0.0,
            max=1.0,
            help="Show only labels scoring at least this (default: 0.5 with --multi-label, else all).",
            show_default=False,
        ),
    ] = None,
    top_k: Annotated[
        Optional[int], typer.Option("--top-k", "-k", min=1, help="Show at most K labels per image.", show_default=False)
    ] = None,
    fmt: FormatOpt = None,
    null: NullOpt = False,
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    batch_size: BatchOpt = 32,
    workers: WorkersOpt = None,
    max_pixels: MaxPixelsOpt = 256_000_000,
    include_hidden: HiddenOpt = False,
    quiet: QuietOpt = False,
    server: ServerOpt = None,
    html_out: HtmlOpt = None,
    grid_out: GridOpt = None,
) -> None:
    """Zero-shot classify images against labels."""
    with funnel():
        from mmcli.classify import build_label_set, classify_stream
        from mmcli.output import ClassificationWriter, Progress, resolve_format
        from mmcli.results import Classification, FileFailure
        from mmcli.textcache import TextCache

        out_format = resolve_format(fmt, sys.stdout)
        raw_labels = collect_labels(labels, labels_file)
        prompt_templates = choose_templates(template, templates)
        paths = gather_paths(inputs, null, include_hidden)
        start = time.perf_counter()
        cut = threshold if threshold is not None else (0.5 if multi_label else None)
        items = _classify_via_server(
            server, model, weights, paths, raw_labels, prompt_templates, multi_label, top_k, cut
        )
        progress = Progress(len(paths), "classifying", enabled=not quiet and items is None)
        if items is None:
            encoder = _load(model, weights, device, precision)
            label_set = build_label_set(encoder, raw_labels, prompt_templates, TextCache())
            for note in label_set.warnings:
                warn(note)
            items = classify_stream(
                encoder,
                paths,
                label_set,
                multi_label=multi_label,
                top_k=top_k,
                threshold=cut,
                batch_size=batch_size,
                workers=workers,
                max_pixels=max_pixels,
                on_progress=progress.update,
            )
        writer = ClassificationWriter(out_format)
        done: list[Classification] = []
        failed = 0
        try:
            for item in items:
                if isinstance(item, FileFailure):
                    failed += 1
                    warn(f"skipped {item.path}: {item.reason}")
                else:
                    done.append(item)
                    writer.write(item)
        finally:
            progress.close()
        writer.close()
        _summary("classified", len(done), failed, time.perf_counter() - start, quiet)
        if done and (html_out or grid_out):
            from mmcli.pictures import Tile

            tiles = [Tile(c.path, tuple(f"{ls.label} {ls.score:.3f}" for ls in c.labels[:2])) for c in done]
            _write_pictures(tiles, html_out, grid_out, "mmcli classify", f"labels: {', '.join(raw_labels[:12])}")
        if not done:
            raise NoImagesError(f"no image could be classified ({failed} failed)")


def _classify_via_server(
    server: str | None,
    model: str | None,
    weights: Path | None,
    paths: list[str],
    labels: list[str],
    templates: list[str],
    multi_label: bool,
    top_k: int | None,
    threshold: float | None,
) -> list[Any] | None:
    """Classifications from a running server, or None to work in-process."""
    from mmcli.client import call, find_server
    from mmcli.results import Classification, FileFailure, LabelScore

    url, explicit = find_server(server, None)
    if url is None:
        return None
    payload = {
        "paths": [os.path.abspath(p) for p in paths],
        "labels": labels,
        "templates": templates,
        "multi_label": multi_label,
        "top_k": top_k,
        "threshold": threshold,
    }
    from mmcli.config import default_model

    health = _health(url)
    if weights is not None or health is None or health.get("model") != (model or default_model()):
        return None  # the server holds another model than this command would use
    reply = call(url, "/classify", payload, explicit=explicit)
    if reply is None:
        if explicit:
            warn(f"no mmcli server answers at {url}; working in-process")
        return None
    for note in reply.get("warnings", []):
        warn(note)
    out: list[Any] = []
    for r, original in zip(reply["results"], paths):
        if r["kind"] == "failure":
            out.append(FileFailure(original, r["reason"]))
        else:
            out.append(Classification(original, tuple(LabelScore(x["label"], x["score"]) for x in r["labels"])))
    return out


def _health(url: str) -> dict[str, Any] | None:
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


def _write_pictures(tiles: list[Any], html_out: Path | None, grid_out: Path | None, title: str, subtitle: str) -> None:
    from mmcli.pictures import write_grid, write_html

    if html_out is not None:
        write_html(html_out, tiles, title, subtitle)
        say(f"wrote {html_out}")
    if grid_out is not None:
        write_grid(grid_out, tiles)
        say(f"wrote {grid_out}")


# ----------------------------------------------------------------------------------------- embed
@app.command(
    cls=MultiValueCommand,
    epilog=(
        "Examples:\n\n"
        "  mmcli embed ./photos --output photos.npy     (also writes photos.paths.json)\n\n"
        "  mmcli embed --text 'a red car' 'a blue car' | jq '.embedding | length'"
    ),
)
def embed(
    inputs: InputsArg = None,
    text: Annotated[
        Optional[list[str]],
        typer.Option(
            "--text", "-t", help="Embed these texts instead of images: --text 'a cat' 'a dog'.", show_default=False
        ),
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            "-o",
            help="Write a float32 .npy (rows in input order) and FILE.paths.json / "
            "FILE.texts.json beside it, instead of JSON Lines on stdout.",
            show_default=False,
        ),
    ] = None,
    null: NullOpt = False,
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    batch_size: BatchOpt = 32,
    workers: WorkersOpt = None,
    max_pixels: MaxPixelsOpt = 256_000_000,
    include_hidden: HiddenOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """L2-normalised embeddings of images or texts."""
    with funnel():
        import numpy as np

        from mmcli.atomic import write_embeddings
        from mmcli.embed import embed_stream
        from mmcli.output import Progress, json_line
        from mmcli.results import FileFailure

        if text and inputs:
            raise UsageError("give images or --text, not both")
        if output is not None and output.suffix != ".npy":
            raise UsageError(f"--output must end in .npy: {output}")
        start = time.perf_counter()
        if text:
            encoder = _load(model, weights, device, precision)
            for t in text:
                if encoder.too_long(t):
                    warn(
                        f"text {t[:40]!r}... is longer than the model's context "
                        f"({encoder.context_length} tokens) and was truncated"
                    )
            vectors = encoder.encode_texts(list(text))
            keys, key_name, vecs = list(text), "text", vectors
        else:
            paths = gather_paths(inputs, null, include_hidden)
            encoder = _load(model, weights, device, precision)
            progress = Progress(len(paths), "embedding", enabled=not quiet)
            keys, rows, failed = [], [], 0
            try:
                for item in embed_stream(
                    encoder,
                    paths,
                    batch_size=batch_size,
                    workers=workers,
                    max_pixels=max_pixels,
                    on_progress=progress.update,
                ):
                    if isinstance(item, FileFailure):
                        failed += 1
                        warn(f"skipped {item.path}: {item.reason}")
                        continue
                    if output is None:
                        sys.stdout.write(json_line({"path": item.path, "embedding": item.vector.tolist()}) + "\n")
                    keys.append(item.path)
                    rows.append(item.vector)
            finally:
                progress.close()
            _summary("embedded", len(keys), failed, time.perf_counter() - start, quiet)
            if not keys:
                raise NoImagesError(f"no image could be embedded ({failed} failed)")
            key_name = "path"
            vecs = np.stack(rows)
        if output is not None:
            companion = write_embeddings(output, vecs, keys, key_name)
            if not quiet:
                say(f"wrote {len(keys)} x {vecs.shape[1]} embeddings to {output} (+ {companion.name})")
        elif text:
            for key, vec in zip(keys, vecs):
                sys.stdout.write(json_line({key_name: key, "embedding": vec.tolist()}) + "\n")


# ----------------------------------------------------------------------------------------- index
IndexOpt = Annotated[
    Optional[str],
    typer.Option(
        "--index",
        "-i",
        help="Index name (under $MMCLI_HOME/indexes, default 'default') or a folder path.",
        show_default=False,
    ),
]


@app.command(
    "index",
    epilog=(
        "Examples:\n\n"
        "  mmcli index ~/Pictures                      (again later: only new or changed files are embedded)\n\n"
        "  mmcli index ./photos --index holiday --exclude '*.tmp.jpg' --model mmcli-tiny\n\n"
        "  mmcli index ~/Pictures --rebuild --model vit-b-16"
    ),
)
def index_cmd(
    paths: Annotated[list[str], typer.Argument(help="Folders (walked recursively) or image files.")],
    index: IndexOpt = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Forget every entry and embed everything again (needed to switch models).")
    ] = False,
    exclude: Annotated[
        Optional[list[str]],
        typer.Option("--exclude", help="Skip names or paths matching this glob (repeatable).", show_default=False),
    ] = None,
    include_hidden: HiddenOpt = False,
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    batch_size: BatchOpt = 32,
    workers: WorkersOpt = None,
    max_pixels: MaxPixelsOpt = 256_000_000,
    quiet: QuietOpt = False,
) -> None:
    """Add folders of images to an index, incrementally (new, changed, renamed, deleted files)."""
    with funnel():
        from mmcli.index.open import index_folder
        from mmcli.index.sync import run_index
        from mmcli.output import Progress

        folder = index_folder(index)
        progress: list[Progress] = []

        def on_progress(done: int, total: int) -> None:
            if not progress:
                progress.append(Progress(total, "indexing", enabled=not quiet))
            progress[0].update(done, total)

        try:
            summary = run_index(
                folder,
                paths,
                model=model,
                weights=str(weights) if weights else None,
                device=device,
                precision=precision,
                rebuild=rebuild,
                include_hidden=include_hidden,
                exclude=exclude or (),
                batch_size=batch_size,
                workers=workers,
                max_pixels=max_pixels,
                on_progress=on_progress,
                on_failure=lambda f: warn(f"skipped {f.path}: {f.reason}"),
            )
        finally:
            for bar in progress:
                bar.close()
        if not quiet:
            s = summary
            rate = f", {s.images_per_second:.1f} images/s" if s.embedded else ""
            say(
                f"indexed {folder}: {s.scanned} scanned, {s.added} added, {s.updated} updated, {s.renamed} renamed, "
                f"{s.copied} copied, {s.removed} removed, {s.failed} failed, {s.unchanged} unchanged "
                f"in {s.seconds:.1f} s{rate}" + ("" if s.model_loaded else " (no model loaded)")
            )


# ---------------------------------------------------------------------------------------- search
SEARCH_FORMATS = ("table", "json", "jsonl", "csv", "tsv", "paths")


@app.command(
    cls=MultiValueCommand,
    epilog=(
        "Examples:\n\n"
        "  mmcli search 'a red car'\n\n"
        "  mmcli search --image beach.jpg -k 20 --format paths\n\n"
        "  mmcli search 'a dog' --add 2:beach --sub indoors --in ~/Pictures/2024\n\n"
        "  mmcli search 'sunset' -0 | xargs -0 open"
    ),
)
def search(
    query: Annotated[
        Optional[list[str]], typer.Argument(help="Text to search for (words are joined).", show_default=False)
    ] = None,
    image: Annotated[Optional[str], typer.Option("--image", help="Query by example image.", show_default=False)] = None,
    add: Annotated[
        Optional[list[str]],
        typer.Option(
            "--add",
            help="Add a term: [WEIGHT:]TEXT or an image path (repeatable), e.g. --add 2:sunset.",
            show_default=False,
        ),
    ] = None,
    sub: Annotated[
        Optional[list[str]],
        typer.Option("--sub", help="Subtract a term: [WEIGHT:]TEXT or an image path (repeatable).", show_default=False),
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="How many results.")] = 10,
    threshold: Annotated[
        Optional[float],
        typer.Option("--threshold", help="Only results with at least this cosine similarity.", show_default=False),
    ] = None,
    within: Annotated[
        Optional[str], typer.Option("--in", help="Only results under this folder.", show_default=False)
    ] = None,
    exact: Annotated[bool, typer.Option("--exact", help="Brute-force search even on large indexes.")] = False,
    index: IndexOpt = None,
    fmt: Annotated[
        Optional[str],
        typer.Option(
            "--format",
            "-f",
            help="table | json | jsonl | csv | tsv | paths (default: table on a terminal, jsonl when piped).",
            show_default=False,
        ),
    ] = None,
    null: Annotated[bool, typer.Option("-0", "--null", help="NUL-separated paths (for xargs -0).")] = False,
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    server: ServerOpt = None,
    html_out: HtmlOpt = None,
    grid_out: GridOpt = None,
) -> None:
    """Search an index by text, by example image, or both combined."""
    with funnel():
        from mmcli.index.open import index_folder
        from mmcli.output import render_hits
        from mmcli.search import build_terms, run_search

        out_format = "paths" if null else fmt
        if out_format is not None and out_format not in SEARCH_FORMATS:
            raise UsageError(f"unknown format {out_format!r}", hint=f"choose one of: {', '.join(SEARCH_FORMATS)}")
        text = " ".join(query) if query else None
        terms = build_terms(text, image, add or (), sub or ())
        folder = index_folder(index)
        hits = None
        if model is None and weights is None:
            hits = _search_via_server(server, folder, text, image, add, sub, top_k, threshold, within, exact)
        if hits is None:
            notes: list[str] = []
            hits = run_search(
                folder,
                terms,
                top_k=top_k,
                threshold=threshold,
                within=within,
                exact=exact,
                model=model,
                weights=str(weights) if weights else None,
                device=device,
                precision=precision,
                notes=notes,
            )
            for note in notes:
                warn(note)
        render_hits(hits, out_format, sys.stdout, nul=null)
        if not hits:
            say("mmcli: no results" + (" above the threshold" if threshold is not None else ""))
        elif html_out or grid_out:
            from mmcli.pictures import Tile

            tiles = [Tile(h.path, (f"#{h.rank}  {h.score:.4f}",)) for h in hits]
            what = text or (f"like {image}" if image else "combined query")
            _write_pictures(tiles, html_out, grid_out, f"mmcli search: {what}", f"index {folder}")


def _search_via_server(
    server: str | None,
    folder: Path,
    text: str | None,
    image: str | None,
    add: list[str] | None,
    sub: list[str] | None,
    top_k: int,
    threshold: float | None,
    within: str | None,
    exact: bool,
) -> list[Any] | None:
    from mmcli.client import call, find_server
    from mmcli.results import Hit

    url, explicit = find_server(server, folder)
    if url is None:
        return None

    def absolute(term: str) -> str:
        return os.path.abspath(term) if os.path.isfile(term) else term

    payload = {
        "query": text,
        "image": os.path.abspath(image) if image else None,
        "add": [absolute(t) for t in add or []],
        "sub": [absolute(t) for t in sub or []],
        "top_k": top_k,
        "threshold": threshold,
        "within": os.path.abspath(os.path.expanduser(within)) if within else None,
        "exact": exact,
    }
    reply = call(url, "/search", payload, explicit=explicit)
    if reply is None:
        if explicit:
            warn(f"no mmcli server answers at {url}; working in-process")
        return None
    return [Hit(h["rank"], h["path"], h["score"]) for h in reply["hits"]]


# ------------------------------------------------------------------------------------------ info
@app.command(epilog="Examples:\n\n  mmcli info\n\n  mmcli info --index holiday -f json")
def info(index: IndexOpt = None, fmt: FormatOpt = None) -> None:
    """Where an index lives, its model, counts, size and last update."""
    with funnel():
        from dataclasses import asdict

        from mmcli.index.open import index_folder, index_info
        from mmcli.output import json_line, render_records_table, resolve_format

        record = asdict(index_info(index_folder(index)))
        out_format = resolve_format(fmt, sys.stdout)
        if out_format == "table":
            render_records_table([{"key": k, "value": v} for k, v in record.items()], ["key", "value"], sys.stdout)
        elif out_format in ("json", "jsonl"):
            print(json_line(record))
        else:
            raise UsageError("info prints table, json or jsonl")


# ---------------------------------------------------------------------------------------- models
@app.command(epilog="Examples:\n\n  mmcli models\n\n  mmcli models --all -f jsonl | jq -r 'select(.local) | .spec'")
def models(
    all_: Annotated[bool, typer.Option("--all", help="Also list every open_clip architecture:tag.")] = False,
    fmt: FormatOpt = None,
) -> None:
    """List model aliases and which weights are already on this machine (loads no model)."""
    with funnel():
        from mmcli.models.catalog import list_models
        from mmcli.output import json_line, render_records_table, resolve_format

        out_format = resolve_format(fmt, sys.stdout)
        records = [r.__dict__ for r in list_models(include_all=all_)]
        if out_format == "table":
            render_records_table(records, ["name", "spec", "local", "description"], sys.stdout)
        elif out_format == "json":
            import json

            print(json.dumps(records, indent=2))
        elif out_format == "jsonl":
            for rec in records:
                print(json_line(rec))
        else:
            import csv

            w = csv.writer(sys.stdout, delimiter="," if out_format == "csv" else "\t", lineterminator="\n")
            w.writerow(["name", "spec", "local", "description"])
            for rec in records:
                w.writerow([rec["name"], rec["spec"], rec["local"], rec["description"]])


# ------------------------------------------------------------------------------------------ demo
@app.command(epilog="Example:\n\n  mmcli demo --dir ./shapes --count 100")
def demo(
    folder: Annotated[
        Optional[Path],
        typer.Option(
            "--dir", help="Where to write the sample images (default: a new temporary folder).", show_default=False
        ),
    ] = None,
    count: Annotated[int, typer.Option("--count", min=8, max=5000, help="How many sample images.")] = 48,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated images.")] = 7,
) -> None:
    """Offline demo: generate shape images, index them, search and classify with the bundled mmcli-tiny."""
    with funnel():
        import tempfile

        from mmcli.demo import DEMO_QUERY, run_demo
        from mmcli.output import render_classification_table, render_hits

        target = (folder or Path(tempfile.mkdtemp(prefix="mmcli-demo-"))).resolve()
        say(f"1. writing {count} shape images to {target}")
        say("2. indexing them with the bundled mmcli-tiny model; 3. searching; 4. classifying")
        result = run_demo(target, count=count, seed=seed)
        s = result.summary
        say(f"\nindexed {s.added} images in {s.seconds:.1f} s (index: {result.index})")
        say(
            f'\nmmcli search "{DEMO_QUERY}" -> {result.red_circles_in_hits} of the top {len(result.hits)} '
            "are red circles:"
        )
        render_hits(list(result.hits), "table", sys.stdout)
        say(
            f"\nmmcli classify -> {result.correct}/{len(result.classifications)} top labels match the drawn shape "
            f"(32 labels: 'red circle', 'blue star', ...):"
        )
        render_classification_table(result.classifications, sys.stdout, relative_to=target)
        say(
            f"\ndone in {result.seconds:.1f} s. Try:\n"
            f"  mmcli search 'a yellow star' --index {result.index}\n"
            f"  mmcli classify {target} --model mmcli-tiny --labels red green blue --template 'a {{}} shape'"
        )


# ------------------------------------------------------------------------------------------ root
def _version(value: bool) -> None:
    if value:
        print(f"mmcli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Zero-shot image classification and text-to-image search with CLIP models.

    Exit codes: 0 ok, 1 error (nothing could be done), 2 usage error, 130 interrupted.
    """


def main() -> None:
    app()


from mmcli import cli_groups  # noqa: E402,F401  (registers dupes, cluster, serve on the app)
