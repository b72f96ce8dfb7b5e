"""`mmcli index DIR --watch`: after the first pass, keep the index current as files appear, change,
move or vanish.

The watcher (watchfiles: inotify, FSEvents, ReadDirectoryChangesW; the ``watch`` extra) starts
before the first pass, so nothing written meanwhile is missed. Its events are only a trigger: each
batch is an ordinary incremental run (``run_index`` of the same job: the walk finds what
changed, a moved file's vector is found by its hash, a vanished file is kept as missing or
pruned), so a batch commits as `mmcli index` commits, one model batch per transaction. Events are
gathered until none came for ``STEP_MS`` (at most ``DEBOUNCE_MS``), and events that come while a
batch runs wait for the next one: copying thousands of photos in makes a few large batches, not
thousands of small ones. The model is loaded once, on first need, and kept (``KeptModel``). The index lock is
held only while a batch runs, so `mmcli index` and `mmcli search` work alongside; a batch that finds
the index locked is tried again a moment later. Ctrl-C stops the watcher between or during
batches; what was committed stays.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from mmcli.config import install_command
from mmcli.errors import IndexLocked, UsageError
from mmcli.index.job import IndexJob, KeptModel
from mmcli.index.sync import IndexSummary, run_index

DEBOUNCE_MS = 1600  # the longest a batch gathers events once the first came
STEP_MS = 300  # a batch starts once no event came for this long
TICK_MS = 500  # how often an idle watcher wakes (a locked index is retried then; the stop event is seen)
INSTALL_HINT = f"{install_command('watch')} (watchfiles)"


class StopEvent(Protocol):
    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class WatchBatch:
    """One run of the watcher: ``events`` file events led to it (0: the first pass), ``summary`` is
    what it did, ``model_loads`` how many times a model was loaded so far (stays 1 when kept)."""

    number: int
    events: int
    summary: IndexSummary
    model_loads: int


def watchfiles_available() -> bool:
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        return False
    return True


def media_filter(folder: Path, include_hidden: bool) -> Callable[[Any, str], bool]:
    """The events that may change the index: images, videos, and anything that may be a folder (a
    folder moved in or out); not the index's own files, not hidden ones unless asked for."""
    from mmcli.media.images import VIDEO_EXTENSIONS, image_extensions

    media = image_extensions() | VIDEO_EXTENSIONS
    own = os.fsdecode(folder.resolve()).rstrip(os.sep) + os.sep

    def wanted(_change: Any, path: str) -> bool:
        if path.startswith(own) or (not include_hidden and os.path.basename(path).startswith(".")):
            return False
        if os.path.splitext(path)[1].lower() in media:
            return True
        return not os.path.isfile(path)  # a folder, or something gone (a folder, maybe)

    return wanted


def watch_index(
    folder: Path,
    job: IndexJob,
    on_batch: Callable[[WatchBatch], None],
    *,
    stop: StopEvent | None = None,
    on_busy: Callable[[str], None] | None = None,
) -> None:
    """Index ``job.roots`` into ``folder`` (``run_index`` with ``job``), then again after each batch
    of changes under them, until ``stop`` is set (returns) or Ctrl-C (KeyboardInterrupt). Each run's
    result goes to ``on_batch``; ``on_busy`` hears when a batch waits for the index lock."""
    if not watchfiles_available():
        raise UsageError("mmcli index --watch needs watchfiles", hint=INSTALL_HINT)
    from watchfiles import watch

    keep = KeptModel()
    paths = [Path(r) for r in job.roots]
    for p in paths:
        if not p.exists():
            raise UsageError(f"no such file or folder: {p}")
    events = watch(
        *paths,
        watch_filter=media_filter(folder, job.include_hidden),
        debounce=DEBOUNCE_MS,
        step=STEP_MS,
        rust_timeout=TICK_MS,
        yield_on_timeout=True,
        stop_event=stop,
        raise_interrupt=True,
    )
    try:
        next(events, None)  # the watcher runs from here on: what changes during the first pass is seen
        number, pending = 0, 0

        def run(count: int) -> None:
            nonlocal number
            summary = run_index(folder, replace(job, keep=keep))
            on_batch(WatchBatch(number, count, summary, keep.loads))
            number += 1

        run(0)
        job = replace(job, rebuild=False)  # (a --rebuild is the first pass's)
        for changes in events:
            pending += len(changes)
            if not pending:
                continue
            try:
                run(pending)
                pending = 0
            except IndexLocked as exc:  # another `mmcli index` is running: next tick
                if on_busy is not None:
                    on_busy(exc.message)
    finally:
        events.close()
