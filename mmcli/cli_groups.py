"""The `dupes`, `cluster` and `serve` commands (registered on the app of ``mmcli.cli``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mmcli.cli import (
    DeviceOpt,
    FormatOpt,
    HtmlOpt,
    IndexOpt,
    LabelsFileOpt,
    LabelsOpt,
    ModelOpt,
    MultiValueCommand,
    PrecisionOpt,
    WeightsOpt,
    app,
    choose_templates,
    funnel,
    say,
)
from mmcli.errors import UsageError


@app.command(
    epilog=(
        "Examples:\n\n"
        "  mmcli dupes\n\n"
        "  mmcli dupes --threshold 0.9 --html dupes.html\n\n"
        "  mmcli dupes -f paths -0 | xargs -0 ls -l"
    )
)
def dupes(
    threshold: Annotated[
        float,
        typer.Option("--threshold", min=0.0, max=1.0, help="Cosine similarity that makes two images near-duplicates."),
    ] = 0.95,
    index: IndexOpt = None,
    fmt: Annotated[
        Optional[str],
        typer.Option(
            "--format",
            "-f",
            help="table | json | jsonl | paths (default: table on a terminal, jsonl when piped).",
            show_default=False,
        ),
    ] = None,
    null: Annotated[
        bool, typer.Option("-0", "--null", help="With -f paths: NUL after each path, and an extra NUL between groups.")
    ] = False,
    html_out: HtmlOpt = None,
) -> None:
    """Groups of near-duplicate images in an index, largest first (exact copies always group)."""
    with funnel():
        import json
        from dataclasses import asdict

        from mmcli.dupes import find_dupes
        from mmcli.index.open import index_folder
        from mmcli.output import json_line, render_records_table, resolve_format

        if fmt == "paths" or null:
            out_format = "paths"
        else:
            out_format = resolve_format(fmt, sys.stdout)
            if out_format in ("csv", "tsv"):
                raise UsageError("dupes prints table, json, jsonl or paths")
        groups = find_dupes(index_folder(index), threshold)
        if out_format == "paths":
            sep = "\0" if null else "\n"
            for g in groups:
                for p in g.paths:
                    sys.stdout.buffer.write(p.encode("utf-8", "surrogateescape") + sep.encode())
                sys.stdout.buffer.write(sep.encode())
            sys.stdout.flush()
        elif out_format == "jsonl":
            for g in groups:
                print(json_line(asdict(g)))
        elif out_format == "json":
            print(json.dumps([asdict(g) for g in groups], ensure_ascii=False, indent=2))
        else:
            rows = [
                {"group": g.group, "size": len(g.paths), "min_score": f"{g.min_score:.3f}", "paths": "\n".join(g.paths)}
                for g in groups
            ]
            render_records_table(rows, ["group", "size", "min_score", "paths"], sys.stdout)
        if html_out is not None:
            from mmcli.pictures import Tile, write_html

            tiles = [
                Tile(p, (f"group {g.group} ({len(g.paths)} images)", f"min score {g.min_score:.3f}"))
                for g in groups
                for p in g.paths
            ]
            write_html(html_out, tiles, "mmcli dupes", f"threshold {threshold}; {len(groups)} groups")
            say(f"wrote {html_out}")
        say(
            f"{len(groups)} group{'s' if len(groups) != 1 else ''} of near-duplicates "
            f"({sum(len(g.paths) for g in groups)} images) at threshold {threshold}"
        )


@app.command(
    cls=MultiValueCommand,
    epilog=(
        "Examples:\n\n  mmcli cluster -k 20\n\n  mmcli cluster -k 8 --labels beach mountain city food people -f jsonl"
    ),
)
def cluster(
    k: Annotated[int, typer.Option("-k", "--clusters", min=1, help="How many clusters.")] = 10,
    labels: LabelsOpt = None,
    labels_file: LabelsFileOpt = None,
    template: Annotated[
        Optional[list[str]], typer.Option("--template", help="Prompt template(s) with {}.", show_default=False)
    ] = None,
    samples: Annotated[int, typer.Option("--samples", min=1, help="Sample paths per cluster.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="k-means seed.")] = 1234,
    index: IndexOpt = None,
    fmt: FormatOpt = None,
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
) -> None:
    """k-means over an index: each cluster's size, sample images and best-matching labels."""
    with funnel():
        import json
        from dataclasses import asdict

        from mmcli.cli import collect_labels
        from mmcli.cluster import cluster_index
        from mmcli.index.open import index_folder
        from mmcli.output import json_line, render_records_table, resolve_format

        out_format = resolve_format(fmt, sys.stdout)
        tags = collect_labels(labels, labels_file) if labels or labels_file else []
        clusters = cluster_index(
            index_folder(index),
            k,
            tags,
            choose_templates(template, None),
            samples=samples,
            seed=seed,
            model=model,
            weights=str(weights) if weights else None,
            device=device,
            precision=precision,
        )
        if out_format == "jsonl":
            for c in clusters:
                print(json_line(asdict(c)))
        elif out_format == "json":
            print(json.dumps([asdict(c) for c in clusters], ensure_ascii=False, indent=2))
        elif out_format == "table":
            rows = [
                {
                    "cluster": c.cluster,
                    "size": c.size,
                    "labels": ", ".join(f"{ls.label} {ls.score:.2f}" for ls in c.labels),
                    "samples": "\n".join(c.samples),
                }
                for c in clusters
            ]
            render_records_table(rows, ["cluster", "size", "labels", "samples"], sys.stdout)
        else:
            raise UsageError("cluster prints table, json or jsonl")


@app.command(
    epilog=(
        "Examples:\n\n"
        "  mmcli serve                                  (then: mmcli search 'a red car' uses it)\n\n"
        "  mmcli serve --index holiday --port 9000 --allow-root ~/Pictures\n\n"
        '  curl -s localhost:8765/search -d \'{"query": "a red car", "top_k": 3}\''
    )
)
def serve(
    index: IndexOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind (keep 127.0.0.1 unless you mean it).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8765,
    allow_root: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--allow-root",
            help="Folders whose images requests may name (repeatable; default: the current folder).",
            show_default=False,
        ),
    ] = None,
    max_body: Annotated[int, typer.Option("--max-body", min=1024, help="Largest request body, bytes.")] = 1_000_000,
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
) -> None:
    """Keep the model and index in memory behind a local HTTP JSON API (/search, /classify, /health)."""
    with funnel():
        try:
            import fastapi  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            raise UsageError("mmcli serve needs FastAPI and uvicorn", hint='pip install "mmcli[serve]"') from None
        from mmcli.index.open import index_folder
        from mmcli.serve import Engine, run_server

        folder = index_folder(index)
        roots = allow_root or [Path.cwd()]
        engine = Engine(folder, model, str(weights) if weights else None, device, precision, roots)
        say(
            f"mmcli serve: http://{host}:{port} (index {folder}, model {engine.spec.name}); "
            f"images allowed under: {', '.join(str(r) for r in roots)}; docs at /docs"
        )
        run_server(engine, host, port, max_body)
