"""`mmcli search`: text, example images and combined queries against an index."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from mmcli.cli.console import funnel, say, warn_all
from mmcli.cli.groups import ModelChoice, PictureChoice, index_model_options, picture_options
from mmcli.cli.options import IndexOpt, NulOutOpt, PreviewOpt, ServerOpt, command, format_option
from mmcli.cli.views import HITS

TermsOpt = Optional[list[str]]

HitsFormat = format_option(HITS)


@command(
    short="Search an index by text, example image, or both.",
    examples=(
        "mmcli search 'a red car'",
        "mmcli search --image beach.jpg -k 20 --format paths",
        "mmcli search 'a dog' --add 2:beach --sub indoors --in ~/Pictures/2024",
        "mmcli search 'sunset' -0 | xargs -0 open",
        "mmcli search 'snow' --after 2023-12 --before 2024-02 --sort date",
        "mmcli search 'a person on stage' --all-moments -f urls   (file:///talk.mp4#t=12.0 for a player)",
        "mmcli search 'a red car' --threshold auto --explain",
        "mmcli search 'a red car' --rerank vit-l-14 --rerank-k 50",
        "mmcli search 'a red car' --preview            (thumbnails in the terminal: kitty, iTerm2, sixel or blocks)",
    ),
    multi_value=True,
)
@index_model_options
@picture_options
def search(
    query: Annotated[
        TermsOpt, typer.Argument(help="Text to search for (words are joined).", show_default=False)
    ] = None,
    image: Annotated[Optional[str], typer.Option("--image", help="Query by example image.", show_default=False)] = None,
    add: Annotated[
        TermsOpt,
        typer.Option(
            "--add",
            help="Add a term: [WEIGHT:]TEXT or an image path (repeatable), e.g. --add 2:sunset.",
            show_default=False,
        ),
    ] = None,
    sub: Annotated[
        TermsOpt,
        typer.Option("--sub", help="Subtract a term: [WEIGHT:]TEXT or an image path (repeatable).", show_default=False),
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="How many results.")] = 10,
    threshold: Annotated[
        Optional[str],
        typer.Option(
            "--threshold",
            help="Only results with at least this cosine similarity, or 'auto': a cut-off chosen per query "
            "where its scores stand out of the index's (said on stderr).",
            show_default=False,
        ),
    ] = None,
    within: Annotated[
        Optional[str], typer.Option("--in", help="Only results under this folder.", show_default=False)
    ] = None,
    exact: Annotated[bool, typer.Option("--exact", help="Brute-force search even on large indexes.")] = False,
    after: Annotated[
        Optional[str],
        typer.Option(
            "--after",
            help="Only pictures taken at or after the start of this date: YYYY, YYYY-MM, YYYY-MM-DD or an ISO "
            "date and time (2024-05-01T10:00, +02:00 or Z allowed; without an offset, UTC). The date is EXIF "
            "DateTimeOriginal, else the file's mtime.",
            show_default=False,
        ),
    ] = None,
    before: Annotated[
        Optional[str],
        typer.Option(
            "--before",
            help="Only pictures taken before the end of this date (same forms): --before 2024-06-30 includes "
            "June 30; --after 2024 --before 2024 is the whole year.",
            show_default=False,
        ),
    ] = None,
    sort: Annotated[
        str,
        typer.Option(
            "--sort",
            help="score (best first) | date (oldest first) | -date (newest first). "
            "Dates order the top-k matches; ranks follow the order shown.",
        ),
    ] = "score",
    all_moments: Annotated[
        bool,
        typer.Option("--all-moments", help="Videos: every matching moment (default: each video once, its best)."),
    ] = False,
    rerank: Annotated[
        Optional[str],
        typer.Option(
            "--rerank",
            help="Re-score the index's best --rerank-k hits with this second model (a spec or alias), embedded "
            "on the fly and cached beside the index; results follow its scores.",
            show_default=False,
        ),
    ] = None,
    rerank_weights: Annotated[
        Optional[str],
        typer.Option("--rerank-weights", help="A checkpoint file for the --rerank architecture.", show_default=False),
    ] = None,
    rerank_k: Annotated[int, typer.Option("--rerank-k", min=1, help="How many hits --rerank re-scores.")] = 100,
    explain: Annotated[
        bool, typer.Option("--explain", help='Show each query term\'s part in each score (JSON: "explain").')
    ] = False,
    index: IndexOpt = None,
    fmt: HitsFormat = None,
    null: NulOutOpt = False,
    server: ServerOpt = None,
    preview: PreviewOpt = None,
    *,
    model_choice: ModelChoice,
    pictures: PictureChoice,
) -> None:
    """Search an index by text, by example image, or both combined."""
    with funnel():
        from mmcli.cli.output import choose_format, render
        from mmcli.cli.preview import open_preview
        from mmcli.cli.views import HITS, HITS_EXPLAINED
        from mmcli.engine.local import LocalEngine
        from mmcli.index.open import index_folder
        from mmcli.media.taken import period
        from mmcli.queries import SearchRequest, build_terms, describe, parse_threshold
        from mmcli.serve.client import choose_engine

        view = HITS_EXPLAINED if explain else HITS
        shown = open_preview(preview, fmt, null)
        out_format = "table" if shown else choose_format(view, fmt, sys.stdout, nul=null)
        terms = build_terms(" ".join(query) if query else None, image, add or (), sub or ())
        start, stop = period(after, before)
        request = SearchRequest(
            terms,
            top_k,
            parse_threshold(threshold),
            SearchRequest.folder(within),
            exact,
            after=start,
            before=stop,
            sort=sort,
            all_moments=all_moments,
            rerank=SearchRequest.model_here(rerank),
            rerank_weights=SearchRequest.file_here(rerank_weights),
            rerank_k=rerank_k,
            explain=explain,
        )
        folder = index_folder(index)
        result = choose_engine(server, LocalEngine(folder, *model_choice.args, on_note=say)).search(request)
        warn_all(result.warnings)
        if result.threshold is not None:
            why = f" ({result.cutoff})" if result.cutoff else ""
            say(f"mmcli: --threshold auto: {result.threshold:.4f}{why}")
        render(result.hits, view, out_format, nul=null, preview=shown)
        if not result.hits:
            say("mmcli: no results" + (" above the threshold" if threshold is not None else ""))
        elif pictures.html or pictures.grid:
            from mmcli.cli.pictures import Tile
            from mmcli.media.video import format_time

            tiles = [
                Tile(
                    h.path,
                    (f"#{h.rank}  {h.score:.4f}" + (f"  at {format_time(h.time)}" if h.time is not None else ""),),
                    h.time,
                )
                for h in result.hits
            ]
            pictures.write(tiles, f"mmcli search: {describe(terms)}", f"index {folder}")
