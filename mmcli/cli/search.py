"""`mmcli search`: text, example images and combined queries against an index.

``COMMAND`` declares its options once; ``search`` is its body, run alike by Typer and by the fast path
(``mmcli.cli.fast``). No Typer here.
"""

from __future__ import annotations

import sys

from mmcli.cli.declare import (
    INDEX,
    NULL,
    PICTURE_OPTIONS,
    PREVIEW,
    SERVER,
    Command,
    ModelChoice,
    Option,
    PictureChoice,
    Values,
    choice,
    format_option,
    model_options,
)
from mmcli.cli.views import HITS
from mmcli.queries.requests import RERANK_K

OPTIONS = (
    Option("query", (), "Text to search for (words are joined).", kind="words", request=True),
    Option("image", ("--image",), "Query by example image.", request=True),
    Option(
        "add",
        ("--add",),
        "Add a term: [WEIGHT:]TEXT or an image path (repeatable), e.g. --add 2:sunset.",
        kind="many",
        request=True,
    ),
    Option(
        "sub", ("--sub",), "Subtract a term: [WEIGHT:]TEXT or an image path (repeatable).", kind="many", request=True
    ),
    Option("top_k", ("--top-k", "-k"), "How many results.", 10, request=True),
    Option(
        "threshold",
        ("--threshold",),
        "Only results with at least this cosine similarity, or 'auto': a cut-off chosen per query where its scores "
        "stand out of the index's (said on stderr).",
        request=True,
    ),
    Option("within", ("--in",), "Only results under this folder.", request=True),
    Option("exact", ("--exact",), "Brute-force search even on large indexes.", kind="flag", request=True),
    Option(
        "after",
        ("--after",),
        "Only pictures taken at or after the start of this date: YYYY, YYYY-MM, YYYY-MM-DD or an ISO date and time "
        "(2024-05-01T10:00, +02:00 or Z allowed; without an offset, UTC). The date is EXIF DateTimeOriginal, else "
        "the file's mtime.",
        request=True,
    ),
    Option(
        "before",
        ("--before",),
        "Only pictures taken before the end of this date (same forms): --before 2024-06-30 includes June 30; "
        "--after 2024 --before 2024 is the whole year.",
        request=True,
    ),
    Option(
        "sort",
        ("--sort",),
        "score (best first) | date (oldest first) | -date (newest first). Dates order the top-k matches; ranks "
        "follow the order shown.",
        "score",
        request=True,
    ),
    Option(
        "all_moments",
        ("--all-moments",),
        "Videos: every matching moment (default: each video once, its best).",
        kind="flag",
        request=True,
    ),
    Option(
        "rerank",
        ("--rerank",),
        "Re-score the index's best --rerank-k hits with this second model (a spec or alias), embedded on the fly "
        "and cached beside the index; results follow its scores.",
        request=True,
    ),
    Option("rerank_weights", ("--rerank-weights",), "A checkpoint file for the --rerank architecture.", request=True),
    Option("rerank_k", ("--rerank-k",), "How many hits --rerank re-scores.", RERANK_K, request=True),
    Option(
        "explain",
        ("--explain",),
        'Show each query term\'s part in each score (JSON: "explain").',
        kind="flag",
        request=True,
    ),
    INDEX,
    format_option(HITS),
    NULL,
    SERVER,
    PREVIEW,
    *model_options("index"),
    *PICTURE_OPTIONS,
)


def search(values: Values) -> int:
    """Search an index by text, by example image, or both combined."""
    from mmcli.cli.console import say, warn_all
    from mmcli.cli.engines import choose_engine
    from mmcli.cli.output import choose_format, render
    from mmcli.cli.preview import open_preview
    from mmcli.cli.views import HITS_EXPLAINED
    from mmcli.index.open import index_folder
    from mmcli.queries.build import search_request

    model, pictures = choice(ModelChoice, values), choice(PictureChoice, values)
    view = HITS_EXPLAINED if values["explain"] else HITS
    fmt, null = values["fmt"], values["null"]
    shown = open_preview(values["preview"], fmt, null)
    out_format = "table" if shown else choose_format(view, fmt, sys.stdout, nul=null)
    request = search_request(**COMMAND.requested(values))
    folder = index_folder(values["index"])
    result = choose_engine("search", folder, model, values["server"], on_note=say).search(request)
    warn_all(result.warnings)
    if result.threshold is not None:
        why = f" ({result.cutoff})" if result.cutoff else ""
        say(f"mmcli: --threshold auto: {result.threshold:.4f}{why}")
    render(result.hits, view, out_format, nul=null, preview=shown)
    if not result.hits:
        say("mmcli: no results" + (" above the threshold" if request.threshold is not None else ""))
    elif pictures.html or pictures.grid:
        from mmcli.cli.pictures import Tile
        from mmcli.media.video import format_time
        from mmcli.queries.terms import describe

        tiles = [
            Tile(
                h.path,
                (f"#{h.rank}  {h.score:.4f}" + (f"  at {format_time(h.time)}" if h.time is not None else ""),),
                h.time,
            )
            for h in result.hits
        ]
        pictures.write(tiles, f"mmcli search: {describe(request.terms)}", f"index {folder}")
    return 0


COMMAND = Command(
    "search",
    short="Search an index by text, example image, or both.",
    doc=search.__doc__ or "",
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
    options=OPTIONS,
    body=search,
    multi_value=True,
)
