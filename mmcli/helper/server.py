"""The resident helper: one warm ``LocalEngine`` behind a private Unix socket, started by the first
`mmcli search` or `mmcli classify` that worked in-process (``mmcli.cli.engines``) and gone after
``MMCLI_HELPER_IDLE`` seconds without a query.

It is `mmcli serve`'s engine and wire format (``mmcli.wire``) by another way in: a socket only this
user can reach instead of HTTP, and requests built by the same builder (``mmcli.queries.build``).
Where it listens and who it must be: ``mmcli.helper.place``; the protocol: ``mmcli.helper.talk``; its
client: ``mmcli.helper.engine``. One helper per identity: the searches of one index or the
classifications with one model, each with the engine's settings.

Life: ``main`` detaches (the command started it with ``setsid``; it forks once more, so it is no
session leader and no child of the command), takes ``<name>.lock`` (a second helper for the same
identity exits at once), warms up (the index's model, its ONNX text tower, the FAISS index), then
binds a fresh socket and renames it over ``<name>.sock``, which replaces a stale one. Until then
commands work in-process. It exits after the idle time, on SIGTERM, on a ``stop`` request, when its
socket file is removed or replaced, or when the index's model changes; the socket file goes with it.
The engine's work runs one request at a time in one thread; each connection has a thread that
acknowledges at once and sends a heartbeat while the work waits or runs. Decoding processes of a
classification die with it (``PR_SET_PDEATHSIG``, ``mmcli.embedding.batch``).
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmcli import wire
from mmcli.errors import MmcliError
from mmcli.helper.place import Helper
from mmcli.helper.talk import HEARTBEAT, peer_uid, send_line

if TYPE_CHECKING:
    from mmcli.engine.local import LocalEngine

READ_TIMEOUT = 10.0  # seconds a client has to send its request
MAX_REQUEST = 64 * 1024 * 1024
TICK = 0.5  # seconds between looks at the idle time, the socket file and the stop flag

Send = Any  # a callable taking one message (dict)


def main() -> None:
    """``python -c ... main() SPEC``: SPEC is ``{"identity", "socket", "idle"}`` (``place.start``)."""
    spec = json.loads(sys.argv[1])
    if os.fork():
        os._exit(0)  # the second fork: the helper is no session leader and the command's child has exited
    os.umask(0o077)
    helper = Helper(spec["identity"], Path(spec["socket"]))
    code = 0
    try:
        run(helper, float(spec["idle"]))
    except SystemExit as exc:  # SIGTERM
        code = exc.code if isinstance(exc.code, int) else 0
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stderr.flush()
    os._exit(code)  # the socket is gone already; no waiting on the work thread or on library finalisers


def run(helper: Helper, idle: float) -> None:
    lock = _take_lock(helper.sibling(".lock"))
    if lock is None:
        return  # another helper for this identity is starting or running
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        engine = warm_engine(helper.identity)
    except Exception as exc:  # (commands keep working in-process; this is not tried again for a while)
        if not isinstance(exc, MmcliError):
            traceback.print_exc()
        _set_off(helper, getattr(exc, "message", None) or f"{exc.__class__.__name__}: {exc}")
        return
    if engine.notes:  # e.g. texts with torch: said once here, but by every command in-process
        _set_off(helper, "; ".join(engine.notes))
        return
    listener, inode = _bind(helper.path)
    _log(f"serving the {helper.identity['kind']} of {helper.identity['target'] or 'the default model'}")
    why = "SIGTERM"
    try:
        why = Resident(engine, helper, idle).serve(listener, inode)
    finally:
        listener.close()
        _remove_if_ours(helper.path, inode)
        helper.sibling(".lock").unlink(missing_ok=True)  # (a helper starting meanwhile finds it locked, or
        os.close(lock)  # locks a new one; two that both run resolve it: the one whose socket was replaced exits)
        _log(f"exiting: {why}")


def warm_engine(ident: dict[str, Any]) -> LocalEngine:
    """The engine a command would use, with what it needs loaded: for searches the index's model, its
    text tower and FAISS index; for classifications the model's text and (small jobs) image towers."""
    import mmcli.embedding.textcache  # noqa: F401  (what the first query would import: here, before it)
    import mmcli.media.images  # noqa: F401
    import mmcli.queries.build  # noqa: F401
    from mmcli.engine.local import LocalEngine

    settings = ident["engine"]
    if ident["kind"] == "search":
        import mmcli.engine.search  # noqa: F401
        from mmcli.index.open import open_index

        engine = LocalEngine(Path(ident["target"]), **settings, warm=True)
        engine.text_encoder().encode_texts(["a photo"])  # the runtime's first call allocates
        store = open_index(Path(ident["target"]))
        try:
            with store.snapshot():
                engine._vectors(store)  # the FAISS index, kept by the warm engine (not written)
        finally:
            store.close()
    else:
        import mmcli.engine.classify  # noqa: F401
        import mmcli.media.video  # noqa: F401

        engine = LocalEngine(None, ident["target"] or None, **settings, warm=True)
        engine.text_encoder().encode_texts(["a photo"])
        engine.image_encoder(1)
    return engine


class Resident:
    """The helper's loop: a thread per connection, the engine's work one request at a time in one thread."""

    def __init__(self, engine: LocalEngine, helper: Helper, idle: float) -> None:
        self.engine, self.helper, self.idle = engine, helper, idle
        self.jobs: queue.Queue[Callable[[], None]] = queue.Queue()  # the engine's work: one at a time, one thread
        threading.Thread(target=self._worker, name="mmcli-work", daemon=True).start()
        self.started = self.last = time.monotonic()
        self.active = 0
        self.count = threading.Lock()
        self.stopping = threading.Event()
        self.stop_reason = "asked to stop"

    # ------------------------------------------------------------------------------ the loop
    def serve(self, listener: socket.socket, inode: int) -> str:
        """Answer until there is a reason to stop; the reason."""
        listener.settimeout(TICK)
        while not self.stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                if self._idle_over():
                    return f"idle for {self.idle:g} s"
                if not _still_ours(self.helper.path, inode):
                    return "its socket file was removed or replaced"
                continue
            with self.count:
                self.active += 1
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()
        return self.stop_reason

    def _worker(self) -> None:
        while True:
            self.jobs.get()()

    def _idle_over(self) -> bool:
        with self.count:
            return self.active == 0 and time.monotonic() - self.last > self.idle

    def _connection(self, conn: socket.socket) -> None:
        try:
            with conn:
                self._handle(conn)
        except Exception:  # one client's trouble never ends the helper
            traceback.print_exc()
        finally:
            with self.count:
                self.active -= 1

    def _handle(self, conn: socket.socket) -> None:
        if peer_uid(conn) != os.getuid():
            return  # another user: not a word
        conn.settimeout(READ_TIMEOUT)
        request = _read_request(conn)
        if request is None:
            return
        op, body = request.get("op"), request.get("body")
        send_line(conn, {"ack": self.helper.identity})
        if op in ("status", "stop"):
            send_line(conn, {"reply": self.status()})
            if op == "stop":
                self.stopping.set()
            return
        if request.get("identity") != self.helper.identity:
            send_line(conn, {"decline": "another identity"})
            return
        if op != self.helper.identity["kind"] or not isinstance(body, dict):
            send_line(conn, {"decline": f"this helper does not {op}"})
            return
        try:
            self._relay(conn, op, body)
        finally:
            with self.count:
                self.last = time.monotonic()  # (only queries keep it: `mmcli helper status` does not)

    def _relay(self, conn: socket.socket, op: str, body: dict[str, Any]) -> None:
        """Run ``op`` in the work thread; pass on what it says, with a heartbeat while it says nothing."""
        messages: queue.Queue[dict[str, Any]] = queue.Queue()
        gone = threading.Event()
        self.jobs.put(lambda: self._work(op, body, messages.put, gone))
        while True:
            try:
                message = messages.get(timeout=HEARTBEAT)
            except queue.Empty:
                message = None
            try:
                if message is None:
                    conn.sendall(b"\n")
                    continue
                send_line(conn, message)
            except OSError:
                gone.set()  # the client left: the work stops at its next item
                return
            if next(iter(message)) in ("reply", "error", "decline"):
                return

    def _work(self, op: str, body: dict[str, Any], send: Send, gone: threading.Event) -> None:
        if gone.is_set():
            return
        try:
            if op == "search":
                self._search(body, send)
            else:
                self._classify(body, send, gone)
        except MmcliError as exc:  # (a request the builder refuses too: the command says it, as in-process)
            send({"error": wire.error_value(exc)})
        except Exception as exc:  # a failure: the command does it in-process
            traceback.print_exc()
            send({"decline": f"{exc.__class__.__name__}: {exc}"[:500]})

    # ------------------------------------------------------------------------------ the work
    def _search(self, body: dict[str, Any], send: Send) -> None:
        from mmcli.index.open import model_spec_for, open_index
        from mmcli.queries.build import search_request

        request = search_request(**body)
        store = open_index(Path(self.helper.identity["target"]))
        try:
            spec = model_spec_for(store.meta(), self.engine.model, self.engine.weights)
        finally:
            store.close()
        if spec != self.engine.spec:  # the index was rebuilt with another model: a new helper loads it
            self.stop_reason = "the index's model changed"
            self.stopping.set()
            send({"decline": "the index's model changed"})
            return
        send({"reply": wire.value(self.engine.search(request))})

    def _classify(self, body: dict[str, Any], send: Send, gone: threading.Event) -> None:
        from mmcli.queries.build import classify_request

        request = classify_request(**body["request"])
        progress = body.get("progress") is True

        def images(done: int, total: int) -> None:
            if progress:
                send({"progress": [done, total]})

        def labels(done: int, total: int) -> None:
            if progress:
                send({"labels": [done, total]})

        run = self.engine.classify(request, images, labels)
        send({"warnings": list(run.warnings)})
        count = 0
        try:
            for item in run.items:
                count += 1
                send({"item": wire.item_value(item)})
                if gone.is_set():
                    break
        finally:
            close = getattr(run.items, "close", None)
            if close is not None:
                close()  # stops its decoding processes
        send({"reply": {"items": count}})

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        health = self.engine.health()
        return {
            "identity": self.helper.identity,
            "pid": os.getpid(),
            "model": health.model,
            "served": health.served,
            "up_s": round(now - self.started, 1),
            "idle_s": round(now - self.last, 1),
            "idle_limit_s": self.idle,
        }


# ---------------------------------------------------------------------------------- the files
def _take_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _set_off(helper: Helper, reason: str) -> None:
    """Remember that this helper cannot serve (for ``place.OFF_FOR``): commands stop starting it."""
    try:
        fd = os.open(helper.sibling(".off"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(reason + "\n")
    except OSError:
        pass
    _log(f"not serving: {reason}")


def _log(message: str) -> None:
    """A line in the helper's log (``<name>.log``: its stderr)."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} mmcli helper {os.getpid()}: {message}", file=sys.stderr, flush=True)


def _bind(path: Path) -> tuple[socket.socket, int]:
    """A listening socket at ``path`` (mode 0600), put there by a rename: a stale socket is replaced,
    and no client ever finds a socket that does not listen yet."""
    fresh = path.with_name(f".{path.name}.{os.getpid()}")
    fresh.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.fspath(fresh))
    os.chmod(fresh, 0o600)
    listener.listen(64)
    inode = os.stat(fresh).st_ino
    os.replace(fresh, path)
    return listener, inode


def _still_ours(path: Path, inode: int) -> bool:
    try:
        return os.stat(path).st_ino == inode
    except OSError:
        return False


def _remove_if_ours(path: Path, inode: int) -> None:
    if _still_ours(path, inode):
        path.unlink(missing_ok=True)


def _read_request(conn: socket.socket) -> dict[str, Any] | None:
    buffer = b""
    while b"\n" not in buffer:
        try:
            chunk = conn.recv(1 << 16)
        except OSError:
            return None
        if not chunk or len(buffer) > MAX_REQUEST:
            return None
        buffer += chunk
    try:
        request = json.loads(buffer.split(b"\n", 1)[0])
    except ValueError:
        return None
    return request if isinstance(request, dict) else None
