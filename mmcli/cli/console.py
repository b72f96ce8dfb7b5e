"""Messages for people (stderr) and the one error funnel of every command."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer

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
    except OSError as exc:  # the machine said no: a full disk, a read-only folder, a file where a folder goes
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            _silence_stdout()  # (stdout may be the full device: nothing more can go there)
        fail(MmcliError(describe_os_error(exc)))


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
