"""`mmcli serve`: keep the model and an index warm behind a local HTTP JSON API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mmcli.cli.console import funnel, say, warn
from mmcli.cli.groups import ModelChoice, index_model_options
from mmcli.cli.options import IndexOpt, command

Names = Optional[list[str]]


@command(
    short="Keep model and index warm: HTTP API, search page.",
    examples=(
        "mmcli serve                                  (then: mmcli search 'a red car' uses it)",
        "mmcli serve --allow-root ~/Pictures          (then open http://127.0.0.1:8765/ to search in a browser)",
        "mmcli serve --index holiday --port 9000 --allow-root ~/Pictures",
        'curl -s localhost:8765/search -d \'{"query": "a red car", "top_k": 3}\'',
    ),
)
@index_model_options
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
    allow_host: Annotated[
        Names,
        typer.Option(
            "--allow-host",
            help="Also answer requests for this host name (repeatable; loopback names and IP addresses always).",
            show_default=False,
        ),
    ] = None,
    allow_origin: Annotated[
        Names,
        typer.Option(
            "--allow-origin",
            help="Also accept browser requests from this origin, e.g. http://photos.lan:8080 (repeatable).",
            show_default=False,
        ),
    ] = None,
    max_body: Annotated[int, typer.Option("--max-body", min=1024, help="Largest request body, bytes.")] = 1_000_000,
    max_upload: Annotated[
        int, typer.Option("--max-upload", min=1024, help="Largest image sent to the search page's upload, bytes.")
    ] = 50_000_000,
    *,
    model_choice: ModelChoice,
) -> None:
    """Keep the model and index in memory behind a local HTTP JSON API (/search, /classify, /health)
    and a search page (/)."""
    with funnel():
        from mmcli.engine.local import LocalEngine
        from mmcli.errors import UsageError
        from mmcli.index.open import index_folder, open_index

        try:
            import fastapi  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            from mmcli.config import install_command

            raise UsageError("mmcli serve needs FastAPI and uvicorn", hint=install_command("serve")) from None
        from mmcli.serve.app import ServerConfig, beyond_loopback, listen, refuse_second_server, run_server

        refuse_second_server()  # before the model loads and the banner says it is up
        roots = tuple(root.expanduser() for root in allow_root or [Path.cwd()])
        for root in roots:
            if not root.is_dir():  # (every file under it would be refused, without a word)
                raise UsageError(f"--allow-root {root}: {'not a folder' if root.exists() else 'no such folder'}")
        folder = index_folder(index)
        open_index(folder).close()  # a missing or empty index is an error now, not at the first request
        config = ServerConfig(
            roots,
            host,
            port,
            max_body,
            tuple(allow_host or ()),
            tuple(allow_origin or ()),
            max_upload=max_upload,
            warn=warn,
        )
        sock = listen(host, port)  # a port in use: one error line, before the model loads or "up" is said
        try:
            engine = LocalEngine(folder, *model_choice.args, workers=1, warm=True)
            engine.encoder()  # load the model and the towers small jobs use before saying the server is ready
            engine.text_encoder()
            engine.image_encoder(1)
            if beyond_loopback(host):
                warn(
                    f"--host {host!r} listens beyond this machine: anyone who can reach port {port} can search "
                    "this index and see its file names"
                )
            say(
                f"mmcli serve: http://{host}:{port}/ (search page; index {folder}, model {engine.spec.name}); "
                f"images allowed under: {', '.join(str(r) for r in roots)}; docs at /docs"
            )
            run_server(engine, config, sock)
        finally:
            sock.close()
