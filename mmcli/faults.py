"""Test-only fault points: make the process die (or pause) at a named moment, deterministically.

``MMCLI_FAULT=NAME[:N[:stop]][,...]`` makes the process SIGKILL itself the Nth time (default: the
first) it reaches ``fault_point(NAME)``; with ``:stop`` it SIGSTOPs itself there instead, so a test
can act while it is paused at a known moment (holding the index lock, say) and then SIGCONT it.
With ``:hold`` (needs ``MMCLI_FAULT_MARKS``) only the calling thread waits there: it creates
``DIR/NAME.held`` and blocks until a test creates ``DIR/NAME.release``, so the rest of a server
can be checked while one request is known to be mid-work.
Kill tests use it instead of sleeping and hoping the kill lands mid-work. With the variable unset a
fault point costs one dictionary lookup.

With ``MMCLI_FAULT_MARKS=DIR`` a point fires only in the process that first creates the file
``DIR/NAME`` (once across all processes: a Ray actor that is restarted after the kill runs on).

Named points (grep ``fault_point(`` for the list):
    index.scanned       after the folders are walked, before anything is hashed or embedded
    index.commit        after a batch of embeddings (or one video's moments) is committed to SQLite;
                        `index --from-embeddings`: after a batch of imported rows is
    index.decoding      in the parent, after a decoded image came back from the forked decoding
                        processes while they are running (``mmcli index --workers 2`` or more, 8+ files)
    index.faiss-write   after the FAISS file's temporary copy is written, before it replaces the old one
    index.rebuild-swap  `--rebuild`: the new database is complete, just before it replaces the old one
    index.rebuild-swapped  `--rebuild`: just after the swap, before the leftovers are removed
    ray.embed           in a Ray actor (`--ray`), before it embeds a batch (each actor counts its own)
    onnx.export         a tower's ONNX files are written and checked, before the sidecar that names them
    serve.classify      `mmcli serve`: a /classify request is running, before its images are classified
    ocr.read            `mmcli ocr`, before each picture is read (with --workers 2 or more: in a reading process)
"""

from __future__ import annotations

import os
import signal
import time

_seen: dict[str, int] = {}
HOLD = "hold"
_ACTIONS = {"stop": signal.SIGSTOP, "": signal.SIGKILL, "kill": signal.SIGKILL}


def _armed() -> dict[str, tuple[int, signal.Signals | str]]:
    from mmcli.config import settings

    wanted: dict[str, tuple[int, signal.Signals | str]] = {}
    for part in settings().fault.split(","):
        name, _, rest = part.strip().partition(":")
        nth, _, action = rest.partition(":")
        if name:
            how = HOLD if action == HOLD else _ACTIONS.get(action, signal.SIGKILL)
            wanted[name] = (int(nth) if nth.isdigit() else 1, how)
    return wanted


def _hold(name: str) -> None:
    """Block this thread until ``MMCLI_FAULT_MARKS/NAME.release`` exists (``NAME.held`` says it waits)."""
    from mmcli.config import settings

    marks = settings().fault_marks
    if not marks:
        raise RuntimeError(f"MMCLI_FAULT {name}:N:hold needs MMCLI_FAULT_MARKS")
    with open(os.path.join(marks, name + ".held"), "w"):
        pass
    release = os.path.join(marks, name + ".release")
    while not os.path.exists(release):
        time.sleep(0.01)


def fault_point(name: str) -> None:
    """SIGKILL (or SIGSTOP) this process here if ``MMCLI_FAULT`` names this point and this is its Nth visit."""
    if not os.environ.get("MMCLI_FAULT"):
        return
    armed = _armed().get(name)
    if armed is None:
        return
    nth, action = armed
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] != nth:
        return
    if action == HOLD:
        _hold(name)
    elif _first_here(name):  # once: a stopped process that is continued runs on
        os.kill(os.getpid(), action)


def _first_here(name: str) -> bool:
    """True unless ``MMCLI_FAULT_MARKS`` is set and another process already fired this point."""
    from mmcli.config import settings

    marks = settings().fault_marks
    if not marks:
        return True
    try:
        os.close(os.open(os.path.join(marks, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    return True
