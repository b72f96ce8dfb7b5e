"""Messages for people (stderr) and the one error funnel of every command."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from mmcli.errors import ExitCode, MmcliError


def stdout_safe(text: str) -> str:
    """Replace surrogate escapes (non-UTF-8 file names) so printing never crashes."""
    return text.encode(sys.getfilesystemencoding(), "surrogateescape").decode("utf-8", "replace")


def say(message: str) -> None:
    """A line for people, on stderr."""
    print(stdout_safe(message), file=sys.stderr, flush=True)


def warn(message: str) -> None:
    say(f"mmcli: warning: {message}")


def warn_all(messages: Iterator[str] | tuple[str, ...] | list[str]) -> None:
    for message in messages:
        warn(message)


def report(exc: MmcliError) -> int:
    """Say ``mmcli: error: ...`` (and ``hint: ...``) on stderr; the exit code."""
    say(f"mmcli: error: {exc.message}")
    if exc.hint:
        say(f"hint: {exc.hint}")
    return int(exc.exit_code)


def fail(exc: MmcliError) -> NoReturn:
    import typer

    raise typer.Exit(report(exc))


def handled(exc: BaseException) -> int | None:
    """For an expected failure: say what went wrong and give the exit code; None for any other exception.

    ``MmcliError``: ``mmcli: error: ...``; Ctrl-C: 130; a closed pipe (``mmcli ... | head``, the reader is
    gone, which is fine): 0; an ``OSError`` (the machine said no: a full disk, a read-only folder, a file
    where a folder goes): an error naming it."""
    if isinstance(exc, MmcliError):
        return report(exc)
    if isinstance(exc, KeyboardInterrupt):
        say("mmcli: interrupted")
        return int(ExitCode.INTERRUPTED)
    if isinstance(exc, BrokenPipeError):
        _silence_stdout()
        return 0
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            _silence_stdout()  # (stdout may be the full device: nothing more can go there)
        return report(MmcliError(describe_os_error(exc)))
    return None


@contextmanager
def funnel() -> Iterator[None]:
    """Turn expected failures into ``mmcli: error: ...`` and an exit code (see ``handled``)."""
    try:
        yield
    except (MmcliError, KeyboardInterrupt, OSError) as exc:
        import typer  # (here, not at the top: the fast path, ``mmcli.cli.fast``, runs without Typer)

        raise typer.Exit(handled(exc) or 0) from None


def describe_os_error(exc: OSError) -> str:
    what = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "not permitted",
        errno.ENOTDIR: "a part of the path is not a folder",
        errno.EISDIR: "it is a folder",
    }.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    where = exc.filename if exc.filename is not None else "writing the output"
    return f"{what}: {where}"


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


RATE_MIN_IMAGES = 64  # fewer images: a rate would mostly measure start-up (the model load), so none is shown


def counted(n: int, noun: str) -> str:
    """``1 image``, ``3 images``, ``0 videos``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def summary(verb: str, images: int, failed: int, seconds: float, quiet: bool, videos: int = 0) -> None:
    """``classified 120 images, 2 videos, 1 failed in 8.0 s (15.0 images/s)`` on a terminal; the rate only
    for runs of images long enough to measure one."""
    if quiet or not sys.stderr.isatty():
        return
    done = ", ".join([counted(images, "image")] + ([counted(videos, "video")] if videos else []))
    extra = f", {failed} failed" if failed else ""
    rate = f" ({images / seconds:.1f} images/s)" if images >= RATE_MIN_IMAGES and not videos and seconds > 0 else ""
    say(f"{verb} {done}{extra} in {seconds:.1f} s{rate}")
